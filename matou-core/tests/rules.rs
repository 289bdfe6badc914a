//! One test per rule of the core (DESIGN.md's concept map), on one worker and
//! on several.

use matou_core::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SHAPES: [usize; 2] = [0, 2];

struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn run_returns_the_value_and_joins_workers() {
    for extra in SHAPES {
        let n = Builder::new()
            .extra_workers(extra)
            .run(async { worker_count() });
        assert_eq!(n, extra + 1);
    }
}

#[test]
fn call_without_another_worker_is_no_domain_available() {
    Builder::new().extra_workers(0).run(async {
        assert!(matches!(call(|| async {}), Err(Error::NoDomainAvailable)));
        assert!(matches!(
            parallel(|x: u8| async move { x }, [1]).await,
            Err(Error::NoDomainAvailable)
        ));
    });
    // One extra worker, called from it: neither dom0 nor itself remains.
    Builder::new().extra_workers(1).run(async {
        let p =
            call(|| async { matches!(call(|| async {}), Err(Error::NoDomainAvailable)) }).unwrap();
        assert!(p.await.unwrap());
    });
}

#[test]
fn call_never_lands_on_dom0_or_the_caller() {
    Builder::new().extra_workers(3).run(async {
        for _ in 0..30 {
            let p = call(|| async {
                let me = current_worker();
                let q = call(|| async { current_worker() }).unwrap();
                (me, q.await.unwrap())
            })
            .unwrap();
            let (me, other) = p.await.unwrap();
            assert!(!me.is_dom0() && !other.is_dom0());
            assert_ne!(me, other);
        }
    });
}

#[test]
fn spawn_stays_on_the_current_worker_and_need_not_be_send() {
    for extra in SHAPES {
        Builder::new().extra_workers(extra).run(async {
            let rc = std::rc::Rc::new(5);
            let p = spawn(async move { (*rc, current_worker()) });
            assert_eq!(p.await.unwrap(), (5, current_worker()));
        });
    }
}

#[test]
fn panics_become_errors_and_the_runtime_goes_on() {
    for extra in SHAPES {
        Builder::new().extra_workers(extra).run(async move {
            let p = spawn(async { panic!("boom") });
            match p.await {
                Err(Error::Panicked(payload)) => assert_eq!(payload.message(), "boom"),
                other => panic!("expected Panicked, got {other:?}"),
            }
            if extra > 0 {
                let p = call(|| async { panic!("far boom") }).unwrap();
                assert!(
                    matches!(p.await, Err(Error::Panicked(ref pl)) if pl.message() == "far boom")
                );
            }
            assert_eq!(spawn(async { 3 }).await.unwrap(), 3);
        });
    }
}

#[test]
fn a_panicking_task_cancels_its_children_without_violation() {
    for extra in SHAPES {
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        Builder::new().extra_workers(extra).run(async move {
            let d2 = d.clone();
            let p = spawn(async move {
                let flag = DropFlag(d2.clone());
                #[allow(unused_must_use)]
                {
                    spawn(async move {
                        let _f = flag;
                        std::future::pending::<()>().await
                    });
                }
                if extra > 0 {
                    let flag = DropFlag(d2);
                    #[allow(unused_must_use)]
                    {
                        call(move || async move {
                            let _f = flag;
                            std::future::pending::<()>().await
                        });
                    }
                }
                yield_now().await;
                panic!("parent fails")
            });
            assert!(matches!(p.await, Err(Error::Panicked(_))));
            assert_eq!(d.load(Ordering::SeqCst), if extra > 0 { 2 } else { 1 });
            assert_eq!(live_tasks(), 1);
        });
        assert_eq!(drops.load(Ordering::SeqCst), if extra > 0 { 2 } else { 1 });
    }
}

#[test]
fn still_has_children_on_another_worker_names_the_task() {
    let err = Builder::new()
        .extra_workers(2)
        .try_run(async {
            let p = call(|| async {
                #[allow(unused_must_use)]
                {
                    spawn(async {});
                }
            })
            .unwrap();
            p.await
        })
        .expect("the child's failure is its own, not the run's")
        .unwrap_err();
    match err {
        Error::StillHasChildren {
            task, children: 1, ..
        } => {
            assert!(task.file().ends_with("rules.rs"));
        }
        other => panic!("expected StillHasChildren, got {other:?}"),
    }
}

#[test]
fn still_has_children_for_the_main_future_names_run() {
    let line = line!() + 2;
    let err = Builder::new()
        .try_run(async {
            #[allow(unused_must_use)]
            {
                spawn(async {});
            }
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::StillHasChildren { task, .. } if task.line() == line),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "run aborted")]
fn run_panics_on_abort() {
    run(async {
        #[allow(unused_must_use)]
        {
            spawn(async {});
        }
    });
}

#[test]
fn only_the_parent_may_await_or_cancel() {
    for extra in SHAPES {
        Builder::new().extra_workers(extra).run(async {
            let mut p = spawn(async { 7 });
            let (r, c, p) = spawn(async move {
                let r = (&mut p).await;
                let c = p.cancel().await;
                (r, c, p)
            })
            .await
            .unwrap();
            assert!(matches!(r, Err(Error::NotAChild)));
            assert!(matches!(c, Err(Error::NotAChild)));
            assert_eq!(p.await.unwrap(), 7);
        });
    }
}

#[test]
fn cancel_returns_after_destructors_ran_on_every_worker() {
    for extra in SHAPES {
        Builder::new().extra_workers(extra).run(async move {
            let drops = Arc::new(AtomicUsize::new(0));
            let d = drops.clone();
            let p = spawn(async move {
                let mut kids = Vec::new();
                for _ in 0..4 {
                    let f = DropFlag(d.clone());
                    kids.push(spawn(async move {
                        let _f = f;
                        std::future::pending::<()>().await
                    }));
                    if extra > 0 {
                        let f = DropFlag(d.clone());
                        kids.push(
                            call(move || async move {
                                let _f = f;
                                std::future::pending::<()>().await
                            })
                            .unwrap(),
                        );
                    }
                }
                await_all(kids).await
            });
            yield_now().await;
            p.cancel().await.unwrap();
            assert_eq!(drops.load(Ordering::SeqCst), if extra > 0 { 8 } else { 4 });
            assert_eq!(live_tasks(), 1);
        });
    }
}

#[test]
fn await_all_keeps_input_order_without_short_circuit() {
    for extra in SHAPES {
        Builder::new().extra_workers(extra).run(async {
            let ps = (0..10u32)
                .map(|i| {
                    spawn(async move {
                        for _ in 0..(10 - i) {
                            yield_now().await;
                        }
                        if i == 3 {
                            panic!("three");
                        }
                        i
                    })
                })
                .collect();
            let rs = await_all(ps).await;
            for (i, r) in rs.into_iter().enumerate() {
                if i == 3 {
                    assert!(r.is_err());
                } else {
                    assert_eq!(r.unwrap(), i as u32);
                }
            }
        });
    }
}

#[test]
fn await_one_leaves_the_others_running() {
    for extra in SHAPES {
        Builder::new().extra_workers(extra).run(async {
            let slow = spawn(async {
                for _ in 0..50 {
                    yield_now().await;
                }
                "slow"
            });
            let fast = spawn(async { "fast" });
            let (first, rest) = await_one(vec![slow, fast]).await;
            assert_eq!(first.unwrap(), "fast");
            assert_eq!(rest.len(), 1);
            assert_eq!(await_all(rest).await.pop().unwrap().unwrap(), "slow");
        });
    }
}

#[test]
fn both_gives_both_results() {
    Builder::new().extra_workers(2).run(async {
        let (a, b) = both(spawn(async { 1 }), call(|| async { "b" }).unwrap()).await;
        assert_eq!((a.unwrap(), b.unwrap()), (1, "b"));
    });
}

#[test]
fn orphans_belong_to_their_first_user() {
    Builder::new().extra_workers(0).run(async {
        let orphans = Arc::new(Mutex::new(Orphans::<()>::new()));
        assert!(matches!(
            orphans.lock().unwrap().care().unwrap(),
            Care::Empty
        ));
        let o = orphans.clone();
        let other = spawn(async move {
            let o = o.lock().unwrap();
            (
                o.spawn(async {}).err().map(|e| e.to_string()),
                matches!(o.care(), Err(Error::NotOwner)),
            )
        });
        let (spawn_err, care_err) = other.await.unwrap();
        assert!(spawn_err.unwrap().contains("another task"));
        assert!(care_err);
    });
}

#[test]
fn forgotten_orphans_abort_the_run() {
    let err = Builder::new()
        .extra_workers(0)
        .try_run(async {
            let orphans = Orphans::new();
            orphans
                .spawn(async { std::future::pending::<()>().await })
                .unwrap();
            // Returning drops the set, not its task: the task is still a child.
        })
        .unwrap_err();
    assert!(matches!(err, Error::StillHasChildren { .. }));
}

#[test]
fn yield_now_goes_to_the_back_of_the_fifo() {
    let order = Builder::new().extra_workers(0).run(async {
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let tasks: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let log = log.clone();
                spawn(async move {
                    for i in 0..3 {
                        log.borrow_mut().push(format!("{name}{i}"));
                        yield_now().await;
                    }
                })
            })
            .collect();
        await_all(tasks).await;
        std::rc::Rc::try_unwrap(log).unwrap().into_inner()
    });
    assert_eq!(order, ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

/// Every select call: (block, cancelled uids).
type SelectLog = Arc<Mutex<Vec<(bool, Vec<Uid>)>>>;

/// An event source that records what the scheduler tells it and signals every
/// syscall registered through `PENDING` on the next select.
struct Recorder {
    interrupt: Arc<Flag>,
    log: SelectLog,
    ready: Arc<Mutex<Vec<Uid>>>,
}
#[derive(Default)]
struct Flag(Mutex<bool>, std::sync::Condvar);
impl Interrupt for Flag {
    fn interrupt(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }
}
impl EventSource for Recorder {
    fn select(&mut self, block: bool, cancelled: &[Uid], signals: &mut Vec<Signal>) {
        self.log.lock().unwrap().push((block, cancelled.to_vec()));
        signals.extend(self.ready.lock().unwrap().drain(..).map(Signal::new));
        let mut f = self.interrupt.0.lock().unwrap();
        if block && signals.is_empty() {
            while !*f {
                f = self.interrupt.1.wait(f).unwrap();
            }
        }
        *f = false;
    }
    fn interrupter(&self) -> Arc<dyn Interrupt> {
        self.interrupt.clone()
    }
}

#[test]
fn cancel_interrupts_a_blocked_worker_and_reports_the_uid() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let uid_seen = Arc::new(Mutex::new(None));
    let u = uid_seen.clone();
    let seen = uid_seen.clone();
    let t0 = Instant::now();
    Builder::new()
        .extra_workers(1)
        .event_source(move |_| {
            Box::new(Recorder {
                interrupt: Arc::default(),
                log: l.clone(),
                ready: Arc::default(),
            })
        })
        .run(async move {
            let p = call(move || async move {
                let sc = syscall();
                *u.lock().unwrap() = Some(sc.uid());
                suspend(sc).await; // never signalled
            })
            .unwrap();
            while seen.lock().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(20)); // let worker 1 block
            p.cancel().await.unwrap();
        });
    assert!(t0.elapsed() < Duration::from_secs(5));
    let uid = uid_seen.lock().unwrap().unwrap();
    assert!(
        log.lock().unwrap().iter().any(|(_, c)| c.contains(&uid)),
        "the cancelled uid reached select"
    );
}

#[test]
fn a_busy_worker_still_asks_for_events() {
    let ready = Arc::new(Mutex::new(Vec::new()));
    let r = ready.clone();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    Builder::new()
        .extra_workers(0)
        .event_source(move |_| {
            Box::new(Recorder {
                interrupt: Arc::default(),
                log: l.clone(),
                ready: r.clone(),
            })
        })
        .run(async move {
            let done = std::rc::Rc::new(std::cell::Cell::new(false));
            let d = done.clone();
            let busy = spawn(async move {
                while !d.get() {
                    yield_now().await;
                }
            });
            let sc = syscall();
            ready.lock().unwrap().push(sc.uid());
            suspend(sc).await;
            done.set(true);
            busy.await.unwrap();
        });
    assert!(
        log.lock().unwrap().iter().any(|(block, _)| !block),
        "a non-blocking select happened while busy"
    );
}

#[test]
fn a_signal_before_suspend_is_not_lost() {
    let ready = Arc::new(Mutex::new(Vec::new()));
    let r = ready.clone();
    Builder::new()
        .extra_workers(0)
        .event_source(move |_| {
            Box::new(Recorder {
                interrupt: Arc::default(),
                log: Arc::default(),
                ready: r.clone(),
            })
        })
        .run(async move {
            let sc = syscall();
            ready.lock().unwrap().push(sc.uid());
            // Let a select deliver the signal before we suspend.
            let idle = spawn(async {});
            idle.await.unwrap();
            suspend(sc).await;
        });
}

#[test]
fn live_tasks_counts_and_returns_to_one() {
    for extra in SHAPES {
        Builder::new().extra_workers(extra).run(async {
            assert_eq!(live_tasks(), 1);
            let ps: Vec<_> = (0..5)
                .map(|_| spawn(std::future::pending::<()>()))
                .collect();
            assert_eq!(live_tasks(), 6);
            for p in &ps {
                p.cancel().await.unwrap();
            }
            drop(ps);
            assert_eq!(live_tasks(), 1);
        });
    }
}

#[test]
fn main_panic_is_reported_by_try_run() {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let err = Builder::new()
        .extra_workers(1)
        .try_run(async move {
            let f = DropFlagBool(f);
            #[allow(unused_must_use)]
            {
                call(move || async move {
                    let _f = f;
                    std::future::pending::<()>().await
                });
            }
            yield_now().await;
            panic!("main fails");
        })
        .unwrap_err();
    assert!(matches!(err, Error::Panicked(ref p) if p.message() == "main fails"));
    assert!(
        flag.load(Ordering::SeqCst),
        "the child was cancelled and dropped"
    );
}

struct DropFlagBool(Arc<AtomicBool>);
impl Drop for DropFlagBool {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits (yielding) until `cond` holds, for at most five seconds.
async fn yield_until(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "condition never held");
        yield_now().await;
    }
}

/// A promise dropped with its result untaken gives the result up: dropped
/// exactly once, by the promise when the child had already finished, by the
/// child's worker when it finishes later; for a local child and a `call`
/// one. (The dropping task then fails, which cancels its remaining children
/// without violating the rules.)
#[test]
fn a_dropped_promise_gives_its_result_up_exactly_once() {
    for extra in SHAPES {
        for remote in [false, true] {
            if remote && extra == 0 {
                continue;
            }
            for finish_first in [true, false] {
                Builder::new().extra_workers(extra).run(async move {
                    let drops = Arc::new(AtomicUsize::new(0));
                    let go = Arc::new(AtomicBool::new(finish_first));
                    let (d, g, total) = (drops.clone(), go.clone(), drops.clone());
                    let p = spawn(async move {
                        let child = async move {
                            while !g.load(Ordering::SeqCst) {
                                yield_now().await;
                            }
                            DropFlag(d)
                        };
                        let c = if remote {
                            call(move || child).unwrap()
                        } else {
                            spawn(child)
                        };
                        if finish_first {
                            yield_until(|| c.is_finished()).await;
                        }
                        drop(c);
                        go.store(true, Ordering::SeqCst);
                        let seen = drops.clone();
                        yield_until(move || seen.load(Ordering::SeqCst) == 1).await;
                        panic!("leaving a child behind on purpose");
                    });
                    match p.await {
                        Err(Error::Panicked(why)) => {
                            assert_eq!(why.message(), "leaving a child behind on purpose")
                        }
                        other => panic!("expected the deliberate panic, got {other:?}"),
                    }
                    assert_eq!(total.load(Ordering::SeqCst), 1, "dropped exactly once");
                    assert_eq!(live_tasks(), 1);
                });
            }
        }
    }
}

/// Held by the tests that measure this process's CPU time, so that one's
/// spin does not count against another running in parallel.
#[cfg(not(miri))]
static CPU_MEASUREMENT: Mutex<()> = Mutex::new(());

/// CPU time (user + system) this process has used, in clock ticks.
#[cfg(not(miri))]
fn process_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name: state is field 3, utime
    // and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Idle workers spin only briefly (`Builder::idle_spin`), then block in
/// their event source: a run whose tasks all wait half a second on another
/// thread burns next to no CPU (Miou 0.7's dom0 spun at 100% here).
#[test]
#[cfg_attr(miri, ignore = "reads /proc")]
fn idle_workers_block_after_a_brief_spin() {
    #[cfg(not(miri))]
    let _alone = CPU_MEASUREMENT.lock().unwrap_or_else(|e| e.into_inner());
    #[cfg(not(miri))]
    Builder::new().extra_workers(2).run(async {
        let (tx, rx) = sync::oneshot::channel();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            tx.send(()).unwrap();
        });
        let before = process_cpu_ticks();
        let parked = call(|| async { yield_now().await }).unwrap();
        parked.await.unwrap();
        rx.await.unwrap();
        let burnt = process_cpu_ticks() - before;
        t.join().unwrap();
        // Three threads spinning for 0.5 s would be about 150 ticks (at 100
        // per second); blocking leaves a tick or two of noise.
        assert!(burnt <= 10, "idle workers burnt {burnt} ticks in 0.5 s");
    });
}

/// The spin is adaptive: a worker whose idle periods are not ended by
/// hand-offs within the spin budget stops spinning. Here the budget is 8 ms
/// and a plain thread wakes the root task every 20 ms, 60 times: a spin on
/// every idle period would burn up to 60 * 8 ms = 48 ticks (at 100 per
/// second; 24-26 measured on a loaded 2-core machine, as the spin yields its
/// core); the adaptive spin gives up after about a dozen periods, then
/// probes once every 16 periods (6-7 ticks measured).
#[test]
#[cfg_attr(miri, ignore = "reads /proc")]
fn idle_spin_stops_when_hand_offs_come_too_late_to_catch() {
    #[cfg(not(miri))]
    let _alone = CPU_MEASUREMENT.lock().unwrap_or_else(|e| e.into_inner());
    #[cfg(not(miri))]
    Builder::new()
        .extra_workers(0)
        .idle_spin(Duration::from_millis(8))
        .run(async {
            // Room for every value: a loaded machine may delay the worker.
            let (tx, rx) = sync::channel(60);
            let t = std::thread::spawn(move || {
                for i in 0..60u32 {
                    std::thread::sleep(Duration::from_millis(20));
                    tx.try_send(i).expect("the channel has room for all");
                }
            });
            let before = process_cpu_ticks();
            let mut got = 0;
            while let Some(i) = rx.recv().await {
                assert_eq!(i, got);
                got += 1;
            }
            let burnt = process_cpu_ticks() - before;
            t.join().unwrap();
            assert_eq!(got, 60);
            assert!(burnt <= 15, "the idle spin burnt {burnt} ticks in 1.2 s");
        });
}

/// With no spin at all, idle workers block at once and cross-worker wakes
/// still get through (the interrupt path).
#[test]
fn no_idle_spin_still_delivers_cross_worker_wakes() {
    Builder::new()
        .extra_workers(1)
        .idle_spin(Duration::ZERO)
        .run(async {
            for i in 0..50u32 {
                let (tx, rx) = sync::oneshot::channel();
                let p = call(move || async move { tx.send(i + 1).unwrap() }).unwrap();
                assert_eq!(rx.await, Ok(i + 1));
                p.await.unwrap();
            }
        });
}
