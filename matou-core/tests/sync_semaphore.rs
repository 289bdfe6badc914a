//! `Semaphore` on matou's runtime, on one worker and across workers,
//! including tasks cancelled while they wait for permits.

use matou_core::sync::Semaphore;
use matou_core::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        yield_now().await;
    }
}

async fn settle() {
    for _ in 0..8 {
        yield_now().await;
    }
}

#[test]
fn permits_bound_concurrency_on_one_worker_and_across_workers() {
    for shape in [0, 2] {
        Builder::new().extra_workers(shape).run(async move {
            let sem = Arc::new(Semaphore::new(2));
            let inside = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..6)
                .map(|_| {
                    let (sem, inside, most) = (sem.clone(), inside.clone(), most.clone());
                    let body = move || async move {
                        for _ in 0..if cfg!(miri) { 5 } else { 50 } {
                            let _p = sem.acquire().await.unwrap();
                            let n = inside.fetch_add(1, SeqCst) + 1;
                            most.fetch_max(n, SeqCst);
                            yield_now().await;
                            inside.fetch_sub(1, SeqCst);
                        }
                    };
                    if shape == 0 {
                        spawn(body())
                    } else {
                        call(body).unwrap()
                    }
                })
                .collect();
            for r in await_all(tasks).await {
                r.unwrap();
            }
            assert!(most.load(SeqCst) <= 2, "more holders than permits");
            if shape == 0 {
                assert_eq!(most.load(SeqCst), 2, "permits were not used concurrently");
            }
            assert_eq!(sem.available_permits(), 2);
        });
    }
}

async fn cancel_acquirer_one_worker(granted_first: bool) {
    let sem = Arc::new(Semaphore::new(1));
    let held = sem.clone().acquire_owned().await.unwrap();
    let s2 = sem.clone();
    let got = Arc::new(AtomicBool::new(false));
    let g2 = got.clone();
    let waiter = spawn(async move {
        let p = s2.acquire().await.unwrap();
        g2.store(true, SeqCst);
        p.forget(); // would leak the permit if this ever ran
    });
    settle().await;
    if granted_first {
        drop(held); // granted to the waiter, which has not run yet
        waiter.cancel().await.unwrap();
    } else {
        waiter.cancel().await.unwrap();
        drop(held);
    }
    assert!(!got.load(SeqCst), "the cancelled waiter ran");
    assert_eq!(
        sem.available_permits(),
        1,
        "a cancelled waiter kept a permit"
    );
}

#[test]
fn cancelled_acquirer_never_keeps_permits_one_worker() {
    Builder::new()
        .extra_workers(0)
        .run(cancel_acquirer_one_worker(false));
    Builder::new()
        .extra_workers(0)
        .run(cancel_acquirer_one_worker(true));
}

#[test]
fn cancelled_acquirer_never_keeps_permits_across_workers() {
    Builder::new().extra_workers(2).run(async {
        let sem = Arc::new(Semaphore::new(2));
        for round in 0..if cfg!(miri) { 5 } else { 50 } {
            let held = sem.clone().acquire_many_owned(2).await.unwrap();
            let queued = Arc::new(AtomicBool::new(false));
            let (s2, q2) = (sem.clone(), queued.clone());
            let waiter = call(move || async move {
                q2.store(true, SeqCst);
                let _p = s2.acquire_many(2).await.unwrap();
                yield_now().await; // cancellation may land here too
            })
            .unwrap();
            until("waiter queued", || queued.load(SeqCst)).await;
            if round % 2 == 0 {
                std::thread::sleep(Duration::from_millis(1));
                waiter.cancel().await.unwrap();
                drop(held);
            } else {
                drop(held); // races the cancellation
                waiter.cancel().await.unwrap();
            }
            assert_eq!(sem.available_permits(), 2, "round {round}: permits lost");
        }
    });
}

#[test]
fn close_fails_a_waiter_on_another_worker() {
    Builder::new().extra_workers(2).run(async {
        let sem = Arc::new(Semaphore::new(0));
        let queued = Arc::new(AtomicBool::new(false));
        let (s2, q2) = (sem.clone(), queued.clone());
        let waiter = call(move || async move {
            q2.store(true, SeqCst);
            s2.acquire().await.is_err()
        })
        .unwrap();
        until("waiter queued", || queued.load(SeqCst)).await;
        sem.close();
        assert!(
            waiter.await.unwrap(),
            "acquire succeeded on a closed semaphore"
        );
    });
}
