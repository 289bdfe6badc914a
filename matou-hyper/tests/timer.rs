//! `MatouTimer`'s `Send + Sync` sleep: on time, never early; still on time
//! after being moved to another worker mid-wait; dropped on another worker,
//! its timer is cancelled, not leaked; and `reset` brings the deadline
//! forward.

use hyper::rt::Timer;
use matou_hyper::MatouTimer;
use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

#[test]
fn a_sleep_moved_to_another_worker_mid_wait_ends_on_time() {
    matou::builder().extra_workers(1).run(async {
        let start = Instant::now();
        let mut nap = MatouTimer.sleep(Duration::from_millis(60));
        // Filed on this worker's timer heap...
        let first = poll_fn(|cx| Poll::Ready(nap.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        // ...then finished on another worker (refiled there).
        let home = matou::current_worker().index();
        let there = matou::call(move || async move {
            nap.await;
            matou::current_worker().index()
        })
        .unwrap()
        .await
        .unwrap();
        assert_ne!(there, home);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(60), "early: {took:?}");
        assert!(took < Duration::from_millis(500), "late: {took:?}");
    });
}

#[test]
fn reset_brings_the_deadline_forward() {
    matou::builder().extra_workers(0).run(async {
        let start = Instant::now();
        let mut nap = MatouTimer.sleep(Duration::from_secs(30));
        let pending = poll_fn(|cx| Poll::Ready(nap.as_mut().poll(cx))).await;
        assert!(pending.is_pending());
        MatouTimer.reset(&mut nap, Instant::now() + Duration::from_millis(20));
        nap.as_mut().await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(20) && took < Duration::from_secs(1),
            "{took:?}"
        );
    });
}

#[test]
fn a_sleep_dropped_on_another_worker_cancels_its_timer() {
    matou::builder().extra_workers(1).run(async {
        let mut nap = MatouTimer.sleep(Duration::from_secs(30));
        let first = poll_fn(|cx| Poll::Ready(nap.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        assert_eq!(matou::unix::reactor_stats().unwrap().timers, 1);
        matou::call(move || async move { drop(nap) })
            .unwrap()
            .await
            .unwrap();
        // The owner forgets the timer at its next select (no leak, as a
        // thread-bound sleep forgotten off its thread would leave).
        matou::unix::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(matou::unix::reactor_stats().unwrap().timers, 0);
    });
}
