//! `OrphansHandle`: spawning into an `Orphans` set from the owner's worker,
//! from another worker and from a plain thread; the owner collecting every
//! task with `next`; refusals when the set is closed or gone.

use matou_core::sync::oneshot;
use matou_core::{call, current_worker, live_tasks, spawn, Builder, Orphans, RefusedReason};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts its drops, to check each spawned future is dropped exactly once.
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn handle_spawns_on_one_worker_and_next_drains_everything() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    Builder::new().extra_workers(0).run(async move {
        let before = live_tasks();
        let set = Orphans::new();
        let handle = set.handle().unwrap();
        // A sibling task (not the owner) spawns through the handle, a
        // non-`Send` future included.
        let h = handle.clone();
        let d2 = d.clone();
        let sibling = spawn(async move {
            let local = std::rc::Rc::new(5);
            let c = Counted(d2.clone());
            h.spawn_local(async move {
                let _c = c;
                *local
            })
            .unwrap();
            let c = Counted(d2);
            h.spawn(async move {
                let _c = c;
                7
            })
            .unwrap();
        });
        sibling.await.unwrap();
        let mut got = Vec::new();
        while let Some(r) = set.next().await.unwrap() {
            got.push(r.unwrap());
        }
        got.sort();
        assert_eq!(got, [5, 7]);
        assert!(set.is_empty());
        assert_eq!(live_tasks(), before);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn handle_spawns_from_a_plain_thread_run_on_the_owners_worker() {
    const N: usize = 200;
    Builder::new().extra_workers(1).run(async {
        let before = live_tasks();
        let set = Orphans::new();
        let handle = set.handle().unwrap();
        let owner = current_worker();
        let (done_tx, mut done_rx) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            for i in 0..N {
                handle.spawn(async move { (i, current_worker()) }).unwrap();
            }
            let _ = done_tx.send(());
        });
        // The thread may still be spawning while the set looks empty; once
        // it said it is done, `next` must see every one of its tasks.
        let mut seen = [false; N];
        let mut count = 0;
        let mut done = false;
        loop {
            match set.next().await.unwrap() {
                Some(r) => {
                    let (i, worker) = r.unwrap();
                    assert_eq!(worker, owner, "spawn runs on the owner's worker");
                    assert!(!seen[i], "task {i} reported twice");
                    seen[i] = true;
                    count += 1;
                }
                None if done => break,
                None => {
                    (&mut done_rx).await.unwrap();
                    done = true;
                }
            }
        }
        assert_eq!(count, N);
        thread.join().unwrap();
        assert_eq!(live_tasks(), before);
    });
}

#[test]
fn handle_spawns_and_calls_from_another_worker() {
    Builder::new().extra_workers(2).run(async {
        let before = live_tasks();
        let set = Orphans::new();
        let handle = set.handle().unwrap();
        let owner = current_worker();
        let remote = call(move || async move {
            let here = current_worker();
            handle.spawn(async { (0, current_worker()) }).unwrap();
            handle.call(|| async { (1, current_worker()) }).unwrap();
            // Not the owner's worker: a non-`Send` spawn is refused, the
            // future handed back.
            let refused = handle.spawn_local(std::future::ready((2, here)));
            assert_eq!(
                refused.unwrap_err().reason(),
                RefusedReason::NotOnOwnerWorker
            );
            here
        })
        .unwrap();
        let remote_worker = remote.await.unwrap();
        assert_ne!(remote_worker, owner);
        let mut got = Vec::new();
        while let Some(r) = set.next().await.unwrap() {
            got.push(r.unwrap());
        }
        got.sort();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (0, owner), "spawn runs on the owner's worker");
        assert_ne!(got[1].1, owner, "call runs elsewhere");
        assert!(!got[1].1.is_dom0(), "call never picks dom0");
        assert_eq!(live_tasks(), before);
    });
}

#[test]
fn a_closed_or_dropped_set_refuses_and_gives_the_future_back() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    Builder::new().extra_workers(1).run(async move {
        let set = Orphans::<()>::new();
        let handle = set.handle().unwrap();
        set.close();
        let c = Counted(d.clone());
        let refused = handle
            .spawn(async move {
                let _c = c;
            })
            .unwrap_err();
        assert_eq!(refused.reason(), RefusedReason::Closed);
        assert_eq!(d.load(Ordering::SeqCst), 0, "the future is given back");
        drop(refused.into_inner());
        assert_eq!(d.load(Ordering::SeqCst), 1);
        assert!(set.next().await.unwrap().is_none());
        drop(set);

        // Gone: refused on the owner's worker and from a thread alike.
        let r = handle.spawn(async {}).unwrap_err();
        assert_eq!(r.reason(), RefusedReason::OwnerGone);
        let h = handle.clone();
        let from_thread = std::thread::spawn(move || h.spawn(async {}).unwrap_err().reason())
            .join()
            .unwrap();
        assert_eq!(from_thread, RefusedReason::OwnerGone);
    });
}

#[test]
fn a_request_arriving_after_its_set_is_gone_is_dropped_unpolled() {
    let drops = Arc::new(AtomicUsize::new(0));
    let polled = Arc::new(AtomicUsize::new(0));
    let (d, p) = (drops.clone(), polled.clone());
    Builder::new().extra_workers(1).run(async move {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        // The owner, on worker 1, gives its handle out, then holds its
        // worker's thread until the request is queued, and drops the set
        // before that worker gets to the request.
        let owner = call(move || async move {
            let set = Orphans::<()>::new();
            handle_tx.send(set.handle().unwrap()).unwrap();
            go_rx.recv().unwrap();
            drop(set);
            // Still alive: the worker carries the request out meanwhile; a
            // child made now would be forgotten by this return.
            matou_core::yield_now().await;
            matou_core::yield_now().await;
        })
        .unwrap();
        let handle = handle_rx.recv().unwrap();
        let c = Counted(d.clone());
        let p2 = p.clone();
        handle
            .spawn(async move {
                let _c = c;
                p2.fetch_add(1, Ordering::SeqCst);
            })
            .expect("accepted: the set is still alive");
        go_tx.send(()).unwrap();
        owner.await.unwrap();
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped exactly once");
    assert_eq!(polled.load(Ordering::SeqCst), 0, "never polled");
}

#[test]
fn next_waits_for_a_request_still_on_its_way() {
    Builder::new().extra_workers(0).run(async {
        let set = Orphans::new();
        let handle = set.handle().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            handle.spawn(async { 9 }).unwrap();
            tx.send(()).unwrap();
        });
        // Hold the owner's worker: the request is queued, not carried out.
        rx.recv().unwrap();
        assert!(set.is_empty(), "not adopted yet");
        assert_eq!(set.next().await.unwrap().map(Result::unwrap), Some(9));
        assert!(set.next().await.unwrap().is_none());
        thread.join().unwrap();
    });
}

#[test]
fn handle_tasks_are_children_of_the_owner() {
    // Forgotten: the owner returns with a handle task still in its set.
    let err = Builder::new()
        .extra_workers(1)
        .try_run(async {
            let set = Orphans::<()>::new();
            let handle = set.handle().unwrap();
            std::thread::spawn(move || handle.spawn(std::future::pending()).unwrap())
                .join()
                .unwrap();
            matou_core::yield_now().await; // the worker carries the request out
            assert_eq!(set.len(), 1);
        })
        .unwrap_err();
    assert!(matches!(err, matou_core::Error::StillHasChildren { .. }));

    // Cancelling the owner cancels them (destructors run), and the handle
    // then refuses.
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    Builder::new().extra_workers(1).run(async move {
        let before = live_tasks();
        let (tx, rx) = oneshot::channel();
        let owner = spawn(async move {
            let set = Orphans::<()>::new();
            let _ = tx.send(set.handle().unwrap());
            std::future::pending::<()>().await; // until cancelled
            drop(set);
        });
        let handle = rx.await.unwrap();
        let c = Counted(d.clone());
        let handle = std::thread::spawn(move || {
            handle
                .spawn(async move {
                    let _c = c;
                    std::future::pending::<()>().await
                })
                .unwrap();
            handle
        })
        .join()
        .unwrap();
        matou_core::yield_now().await; // the request is carried out
        owner.cancel().await.unwrap();
        assert_eq!(d.load(Ordering::SeqCst), 1, "the set's task was cancelled");
        let refused = handle.spawn(async {}).unwrap_err();
        assert_eq!(refused.reason(), RefusedReason::OwnerGone);
        assert_eq!(live_tasks(), before);
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_set_that_outlives_its_owner_task_refuses() {
    Builder::new().extra_workers(0).run(async {
        let set = std::rc::Rc::new(Orphans::<()>::new());
        let s = set.clone();
        // A child becomes the owner, hands the handle out and terminates;
        // the set itself lives on in the parent.
        let handle = spawn(async move { s.handle().unwrap() }).await.unwrap();
        let refused = handle.spawn(async {}).unwrap_err();
        assert_eq!(refused.reason(), RefusedReason::OwnerGone);
        // A task spawned meanwhile may reuse the owner's slot: still refused.
        let other = spawn(std::future::pending::<()>());
        matou_core::yield_now().await;
        let refused = handle.spawn_local(async {}).unwrap_err();
        assert_eq!(refused.reason(), RefusedReason::OwnerGone);
        other.cancel().await.unwrap();
        assert!(set.is_empty());
    });
}

#[test]
fn every_accepted_spawn_is_collected_when_threads_race_close() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 150;
    Builder::new().extra_workers(2).run(async {
        let before = live_tasks();
        let set = Orphans::new();
        let handle = set.handle().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (handle, accepted) = (handle.clone(), accepted.clone());
                std::thread::spawn(move || {
                    // Spawn until refused (at most PER_THREAD); alternate the
                    // two placements.
                    for i in 0..PER_THREAD {
                        let r = if i % 2 == 0 {
                            handle.spawn(async {}).map_err(|r| r.reason())
                        } else {
                            handle.call(|| async {}).map_err(|r| r.reason())
                        };
                        match r {
                            Ok(()) => accepted.fetch_add(1, Ordering::SeqCst),
                            Err(reason) => {
                                assert_eq!(reason, RefusedReason::Closed, "thread {t}");
                                break;
                            }
                        };
                    }
                })
            })
            .collect();
        let mut collected = 0;
        // Close midway (the threads may or may not have finished by then).
        while collected < 200 {
            if let Some(r) = set.next().await.unwrap() {
                r.unwrap();
                collected += 1;
            } else {
                matou_core::yield_now().await;
            }
        }
        set.close();
        while let Some(r) = set.next().await.unwrap() {
            r.unwrap();
            collected += 1;
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(collected, accepted.load(Ordering::SeqCst));
        assert_eq!(live_tasks(), before);
    });
}
