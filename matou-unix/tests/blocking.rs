//! The blocking pool: work runs off the workers, results and panics come
//! back, and a worker's timers keep firing on time meanwhile.

mod common;

use common::{run, WORKERS};
use matou_unix::blocking::unblock;
use matou_unix::time::sleep;
use std::time::{Duration, Instant};

/// How late a 50 ms timer fires on a worker while a 200 ms blocking call
/// runs on the pool.
fn timer_lateness_during_a_blocking_call(extra: usize) -> Duration {
    run("timer_vs_unblock", extra, async {
        let blocking = matou_core::spawn(async {
            unblock(|| {
                std::thread::sleep(Duration::from_millis(200));
                7
            })
            .await
        });
        let t0 = Instant::now();
        sleep(Duration::from_millis(50)).await;
        let late = t0.elapsed().saturating_sub(Duration::from_millis(50));
        assert_eq!(blocking.await.unwrap(), 7);
        assert!(t0.elapsed() >= Duration::from_millis(195));
        late
    })
}

#[test]
fn a_timer_fires_on_time_while_a_blocking_call_runs_on_the_pool() {
    for extra in WORKERS {
        // A blocked worker makes every attempt ~150 ms late; a loaded shared
        // machine may delay one attempt: the best of three must be on time.
        let mut lateness = Vec::new();
        for _ in 0..3 {
            let late = timer_lateness_during_a_blocking_call(extra);
            lateness.push(late);
            if late < Duration::from_millis(20) {
                break;
            }
        }
        assert!(
            lateness.iter().any(|l| *l < Duration::from_millis(20)),
            "timer late by {lateness:?} (extra workers: {extra})"
        );
    }
}

async fn fifty_jobs() -> u64 {
    let mut total = 0u64;
    for i in 0..50u64 {
        total += unblock(move || i * 2).await;
    }
    total
}

#[test]
fn many_jobs_from_every_worker_all_return_their_values() {
    let per_task: u64 = (0..50u64).map(|i| i * 2).sum();
    for extra in WORKERS {
        let sums = run("many_unblock", extra, async move {
            let mut ps = vec![
                matou_core::spawn(fifty_jobs()),
                matou_core::spawn(fifty_jobs()),
            ];
            for _ in 0..extra {
                ps.push(matou_core::call(fifty_jobs).unwrap());
            }
            let mut sums = Vec::new();
            for p in ps {
                sums.push(p.await.unwrap());
            }
            sums
        });
        assert_eq!(sums, vec![per_task; 2 + extra]);
    }
}

#[test]
fn a_panic_in_the_closure_is_resumed_in_the_awaiting_task() {
    let r = run("unblock_panic", 0, async {
        matou_core::spawn(async { unblock(|| panic!("boom in the pool")).await }).await
    });
    let err = r.unwrap_err();
    assert!(format!("{err:?}").contains("boom in the pool"), "{err:?}");
    // The pool survived the panic.
    assert_eq!(
        run("unblock_after_panic", 0, async { unblock(|| 1).await }),
        1
    );
}

#[test]
fn a_cancelled_wait_drops_the_result_on_the_pool_after_the_closure_ran() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let ran = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let (r, d) = (ran.clone(), dropped.clone());
    let (release, gate) = std::sync::mpsc::channel::<()>();
    run("unblock_cancel", 0, async move {
        let p = matou_core::spawn(async move {
            unblock(move || {
                gate.recv().unwrap();
                r.store(true, Ordering::SeqCst);
                Flag(d)
            })
            .await
        });
        sleep(Duration::from_millis(10)).await;
        // Cancelling returns while the closure is still blocked.
        let _ = p.cancel().await;
        assert!(!ran.load(Ordering::SeqCst));
        release.send(()).unwrap();
        let t0 = Instant::now();
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "result never dropped"
            );
            sleep(Duration::from_millis(5)).await;
        }
        assert!(ran.load(Ordering::SeqCst), "the closure ran to completion");
    });
}
