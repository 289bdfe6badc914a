//! Every code example of seeds 000 and 001 (Miou's book), with the same
//! assertion, on one worker and on several where the example allows it.

use matou_core::*;
use std::cell::RefCell;
use std::rc::Rc;

fn with_workers(extra: usize) -> Builder {
    Builder::new().extra_workers(extra)
}

/// 000: `ignore (Miou.call_cc ...)` raises `Still_has_children`.
#[test]
fn forgotten_child_aborts_the_run() {
    for extra in [0, 2] {
        let err = with_workers(extra)
            .try_run(async {
                #[allow(unused_must_use)]
                {
                    spawn(async { "Hello World!" });
                }
            })
            .unwrap_err();
        match err {
            Error::StillHasChildren {
                task,
                children,
                first_child,
                spawn_sites,
            } => {
                assert_eq!(children, 1);
                assert_eq!(spawn_sites, [first_child]);
                assert!(task.file().ends_with("seeds.rs"), "{task}");
                assert!(first_child.file().ends_with("seeds.rs"));
            }
            other => panic!("expected StillHasChildren, got {other:?}"),
        }
    }
}

/// 000: the orphans clean-up loop of the echo server.
#[test]
fn orphans_clean_up_loop() {
    for extra in [0, 2] {
        let served = with_workers(extra).run(async {
            let orphans = Orphans::new();
            let mut served = 0;
            for client in 0..50 {
                while let Care::Ready(p) = orphans.care().unwrap() {
                    served += p.await.unwrap();
                }
                orphans
                    .spawn(async move {
                        for _ in 0..client % 3 {
                            yield_now().await;
                        }
                        1
                    })
                    .unwrap();
            }
            while let Some(p) = orphans.get().await.unwrap() {
                served += p.await.unwrap();
            }
            assert!(matches!(orphans.care().unwrap(), Care::Empty));
            served
        });
        assert_eq!(served, 50);
    }
}

/// 000: a parallel task runs on a domain other than the one it was created in.
#[test]
fn call_runs_on_another_domain() {
    let (u, v) = with_workers(2).run(async {
        let p = call(|| async {
            let u = current_worker();
            let q = call(|| async { current_worker() }).unwrap();
            (u, q.await.unwrap())
        })
        .unwrap();
        p.await.unwrap()
    });
    assert_ne!(u, v);
    assert!(!u.is_dom0() && !v.is_dom0());
}

/// 000: two calls may use the same domain (certain with one eligible worker).
#[test]
fn two_calls_may_share_a_domain() {
    let same = with_workers(1).run(async {
        let p = call(|| async { current_worker() }).unwrap();
        let q = call(|| async { current_worker() }).unwrap();
        p.await.unwrap() == q.await.unwrap()
    });
    assert!(same);
}

/// 000: `Miou.parallel task (List.init 3 ...)` covers each of 3 domains once.
#[test]
fn parallel_covers_each_worker_once() {
    let domains = with_workers(3).run(async {
        parallel(|()| async { current_worker().index() }, vec![(); 3])
            .await
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    assert_eq!(domains, vec![1, 2, 3]);
}

/// 000: dom0 takes part only through call_cc (spawn): [0; 1; 2; 3].
#[test]
fn dom0_joins_through_spawn() {
    let domains = with_workers(3).run(async {
        let prm = spawn(async { current_worker().index() });
        let mut all = vec![prm.await];
        all.extend(
            parallel(|()| async { current_worker().index() }, vec![(); 3])
                .await
                .unwrap(),
        );
        all.into_iter().map(Result::unwrap).collect::<Vec<_>>()
    });
    assert_eq!(domains, vec![0, 1, 2, 3]);
}

/// 000: "Cancel p1 / Do p0 / p1 cancelled".
#[test]
fn cancellation_lets_other_tasks_run() {
    for _ in 0..20 {
        let log = with_workers(2).run(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let p1 = call(|| async { yield_now().await }).unwrap();
            let l = log.clone();
            let p0 = spawn(async move { l.borrow_mut().push("Do p0") });
            log.borrow_mut().push("Cancel p1");
            p1.cancel().await.unwrap();
            log.borrow_mut().push("p1 cancelled");
            p0.await.unwrap();
            Rc::try_unwrap(log).unwrap().into_inner()
        });
        assert_eq!(log, ["Cancel p1", "Do p0", "p1 cancelled"]);
    }
}

/// 000: cancelling a resolved promise discards its result.
#[test]
fn cancelling_a_resolved_promise_loses_its_result() {
    for extra in [0, 2] {
        with_workers(extra).run(async move {
            let mut prm = if extra == 0 {
                spawn(async { 1 + 1 })
            } else {
                call(|| async { 1 + 1 }).unwrap()
            };
            assert_eq!((&mut prm).await.unwrap(), 2);
            prm.cancel().await.unwrap();
            assert!(matches!(prm.await, Err(Error::Cancelled)));
        });
    }
}

/// 000: cancellation reaches the children (an infinite yielder on another domain).
#[test]
fn cancellation_reaches_an_infinite_grandchild() {
    async fn infinite() {
        loop {
            yield_now().await;
        }
    }
    for extra in [0, 2] {
        with_workers(extra).run(async move {
            let p = spawn(async move {
                let q = if extra == 0 {
                    spawn(infinite())
                } else {
                    call(infinite).unwrap()
                };
                q.await.unwrap()
            });
            yield_now().await;
            p.cancel().await.unwrap();
            assert_eq!(live_tasks(), 1);
        });
    }
}

/// 000: the connect-or-timeout shape: await_first keeps the first result and
/// cancels the other, whose destructors have run before it returns.
#[test]
fn await_first_cancels_the_loser() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    for extra in [0, 2] {
        with_workers(extra).run(async move {
            let dropped = Arc::new(AtomicBool::new(false));
            let guard = Guard(dropped.clone());
            let timeout = move || async move {
                let _guard = guard;
                loop {
                    yield_now().await;
                }
                #[allow(unreachable_code)]
                Err::<&str, &str>("timeout")
            };
            let sleep = if extra == 0 {
                spawn(timeout())
            } else {
                call(timeout).unwrap()
            };
            let prm = spawn(async { Ok::<_, &str>("connected") });
            assert_eq!(
                await_first(vec![sleep, prm]).await.unwrap(),
                Ok("connected")
            );
            assert!(
                dropped.load(Ordering::SeqCst),
                "the loser's destructor ran before await_first returned"
            );
            assert_eq!(live_tasks(), 1);
        });
    }
}
