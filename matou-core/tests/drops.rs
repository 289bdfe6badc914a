//! Rust's control flow against Miou's rules: a promise dropped while being
//! awaited cancels its child and its parent waits for it; a forgotten child
//! fails its parent (not the run); a spent promise gives `AlreadyTaken`.
//! Each case on one worker and across workers, with destructors counted and
//! `live_tasks()` back to its start value.

use matou_core::*;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts its drops; the drop is slow so that a parent that did not wait for
/// it would be caught terminating first.
struct Slow(Arc<AtomicUsize>);
impl Drop for Slow {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(20));
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A child that never finishes on its own, holding a `Slow` from its spawn
/// on (so it is dropped exactly once even if the child never ran): spawned
/// here when `extra == 0`, on another worker otherwise.
#[track_caller]
fn pending_child(extra: usize, drops: &Arc<AtomicUsize>) -> Promise<()> {
    let slow = Slow(drops.clone());
    if extra == 0 {
        spawn(async move {
            let _s = slow;
            std::future::pending::<()>().await
        })
    } else {
        call(move || async move {
            let _s = slow;
            std::future::pending::<()>().await
        })
        .unwrap()
    }
}

fn builder(extra: usize) -> Builder {
    Builder::new().extra_workers(extra)
}

#[test]
fn a_promise_dropped_mid_await_cancels_its_child_before_the_parent_ends() {
    for extra in [0, 2] {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        builder(extra).run(async move {
            let before = live_tasks();
            let d2 = d.clone();
            let parent = spawn(async move {
                let child = pending_child(extra, &d2);
                // Let the child start, so its destructor has something to drop.
                for _ in 0..3 {
                    yield_now().await;
                }
                // The promise loses the race: polled, then dropped with it.
                let lost = matches!(
                    race(pin!(child), pin!(yield_now())).await,
                    Either::Right(())
                );
                assert!(lost);
                // The drop itself cancelled the child: it ends while its
                // parent still runs, not only at the parent's end.
                let give_up = std::time::Instant::now() + Duration::from_secs(10);
                while d2.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < give_up {
                    yield_now().await;
                }
                assert_eq!(d2.load(Ordering::SeqCst), 1, "cancelled at the drop");
                "parent done"
            });
            assert_eq!(parent.await.unwrap(), "parent done");
            assert_eq!(
                d.load(Ordering::SeqCst),
                1,
                "the abandoned child's destructor ran before its parent ended (extra {extra})"
            );
            assert_eq!(live_tasks(), before);
        });
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn combinators_dropped_midway_abandon_every_promise_they_hold() {
    for extra in [0, 2] {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        builder(extra).run(async move {
            let before = live_tasks();
            let d2 = d.clone();
            let parent = spawn(async move {
                let all = await_all(vec![pending_child(extra, &d2), pending_child(extra, &d2)]);
                let two = both(pending_child(extra, &d2), pending_child(extra, &d2));
                let r = race(pin!(all), pin!(yield_now())).await;
                assert!(matches!(r, Either::Right(())));
                let r = race(pin!(two), pin!(yield_now())).await;
                assert!(matches!(r, Either::Right(())));
            });
            parent.await.expect("abandoning is not forgetting");
            assert_eq!(d.load(Ordering::SeqCst), 4, "extra {extra}");
            assert_eq!(live_tasks(), before);
        });
    }
}

#[test]
fn a_forgotten_child_fails_its_parent_with_its_spawn_site_not_the_run() {
    for extra in [0, 2] {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        builder(extra).run(async move {
            let before = live_tasks();
            let d2 = d.clone();
            let line = line!() + 2;
            let parent = spawn(async move {
                drop(pending_child(extra, &d2)); // forgotten: never polled
                "returned anyway"
            });
            match parent.await {
                Err(Error::StillHasChildren {
                    children: 1,
                    spawn_sites,
                    ..
                }) => {
                    assert_eq!(spawn_sites.len(), 1);
                    assert_eq!(spawn_sites[0].line(), line, "{}", spawn_sites[0]);
                }
                other => panic!("expected StillHasChildren, got {other:?}"),
            }
            assert_eq!(
                d.load(Ordering::SeqCst),
                1,
                "the forgotten child was cancelled"
            );
            assert_eq!(live_tasks(), before);
        });
    }
}

#[test]
fn an_early_return_with_question_mark_fails_that_task_only_and_the_server_keeps_serving() {
    fn check(conn: u32) -> Result<(), Error> {
        if conn == 3 {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
    for extra in [0, 2] {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let (served, failed) = builder(extra).run(async move {
            let before = live_tasks();
            let handlers: Vec<_> = (0..6)
                .map(|conn| {
                    let d = d.clone();
                    spawn(async move {
                        let helper = pending_child(extra, &d);
                        check(conn)?; // connection 3 returns early, forgetting `helper`
                        helper.cancel().await?;
                        Ok::<u32, Error>(conn)
                    })
                })
                .collect();
            let mut served = 0;
            let mut failed = Vec::new();
            for (conn, r) in await_all(handlers).await.into_iter().enumerate() {
                match r {
                    Ok(Ok(_)) => served += 1,
                    Err(Error::StillHasChildren { children: 1, .. }) => failed.push(conn),
                    other => panic!("connection {conn}: {other:?}"),
                }
            }
            assert_eq!(d.load(Ordering::SeqCst), 6);
            assert_eq!(live_tasks(), before);
            (served, failed)
        });
        assert_eq!((served, failed), (5, vec![3]), "extra {extra}");
    }
}

#[test]
fn the_main_future_forgetting_a_child_fails_run_after_cancelling_it() {
    for extra in [0, 2] {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let err = builder(extra)
            .try_run(async move {
                drop(pending_child(extra, &d)); // forgotten: never polled
            })
            .unwrap_err();
        assert!(
            matches!(err, Error::StillHasChildren { children: 1, .. }),
            "{err}"
        );
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn awaiting_a_spent_promise_gives_already_taken_and_a_stranger_gets_not_a_child() {
    for extra in [0, 2] {
        builder(extra).run(async move {
            let mut p = if extra == 0 {
                spawn(async { 5 })
            } else {
                call(|| async { 5 }).unwrap()
            };
            assert_eq!((&mut p).await.unwrap(), 5);
            assert!(matches!((&mut p).await, Err(Error::AlreadyTaken)));
            assert!(matches!((&mut p).await, Err(Error::AlreadyTaken)));
            // Whatever the promise's state, another task is no parent.
            let stranger = spawn(async move { (&mut p).await.map(|_| ()) });
            assert!(matches!(stranger.await.unwrap(), Err(Error::NotAChild)));

            let c = spawn(async { 6 });
            c.cancel().await.unwrap();
            let stranger = spawn(async move { c.await.map(|_| ()) });
            assert!(matches!(stranger.await.unwrap(), Err(Error::NotAChild)));
        });
    }
}

#[test]
fn a_server_whose_handler_forgets_a_child_logs_that_connection_and_keeps_serving() {
    for extra in [0, 2] {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let (served, errors) = builder(extra).run(async move {
            let before = live_tasks();
            let orphans = Orphans::new();
            let (mut served, mut errors) = (0, Vec::new());
            let mut log = |r: Result<u32, Error>| match r {
                Ok(_) => served += 1,
                Err(e) => errors.push(e.to_string()),
            };
            for conn in 0..8u32 {
                while let Care::Ready(p) = orphans.care().unwrap() {
                    log(p.await);
                }
                let d = d.clone();
                orphans
                    .spawn(async move {
                        let helper = pending_child(extra, &d);
                        if conn == 5 {
                            return conn; // forgets `helper`
                        }
                        helper.cancel().await.unwrap();
                        conn
                    })
                    .unwrap();
            }
            while let Some(p) = orphans.get().await.unwrap() {
                log(p.await);
            }
            assert_eq!(d.load(Ordering::SeqCst), 8);
            assert_eq!(live_tasks(), before);
            (served, errors)
        });
        assert_eq!(served, 7, "extra {extra}");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("drops.rs"), "{}", errors[0]);
    }
}
