//! A syscall is `Send`, and stays registered with the worker that made it
//! (its owner): a `Suspend` polled on another worker completes at once (a
//! spurious wake-up) and a syscall dropped on another thread is forgotten
//! too, both by the owner, whose next `select` sees the uid as cancelled
//! (never the foreign worker's). A source records who saw which cancelled
//! uid.

use matou_core::{
    call, current_worker, suspend, syscall, yield_now, Builder, EventSource, Interrupt,
    ParkingEventSource, Signal, Uid,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

type Log = Arc<Mutex<Vec<(usize, Uid)>>>;

/// The parking source, recording `(worker, uid)` for each cancelled uid.
struct Recording {
    worker: usize,
    log: Log,
    inner: ParkingEventSource,
}

impl EventSource for Recording {
    fn select(&mut self, block: bool, cancelled: &[Uid], signals: &mut Vec<Signal>) {
        let mut log = self.log.lock().unwrap();
        log.extend(cancelled.iter().map(|&uid| (self.worker, uid)));
        drop(log);
        self.inner.select(block, cancelled, signals);
    }
    fn interrupter(&self) -> Arc<dyn Interrupt> {
        self.inner.interrupter()
    }
}

fn recording_run<T>(f: impl Future<Output = T> + 'static) -> (T, Vec<(usize, Uid)>) {
    let log = Log::default();
    let for_sources = log.clone();
    let out = Builder::new()
        .extra_workers(1)
        .event_source(move |w| {
            Box::new(Recording {
                worker: w.index(),
                log: for_sources.clone(),
                inner: ParkingEventSource::new(),
            })
        })
        .run(f);
    let seen = log.lock().unwrap().clone();
    (out, seen)
}

/// Keeps dom0 busy long enough for its inbox and a non-blocking `select`
/// (every few dozen tasks run) to process what other threads sent it.
async fn let_dom0_select() {
    for _ in 0..500 {
        yield_now().await;
    }
}

const fn assert_send_sync<T: Send + Sync>() {}
const _: () = {
    assert_send_sync::<matou_core::Syscall>();
    assert_send_sync::<matou_core::Suspend>();
};

#[test]
fn a_suspend_polled_on_another_worker_completes_and_its_owner_forgets_it() {
    let (uid, seen) = recording_run(async {
        let parked = syscall();
        let uid = parked.uid();
        let mut waiting = Box::pin(suspend(parked));
        let first = std::future::poll_fn(|cx| {
            Poll::Ready(Pin::new(&mut waiting).as_mut().poll(cx).is_pending())
        });
        assert!(first.await, "nothing signals it on its owner");
        let elsewhere = call(move || async move {
            waiting.await; // spurious: the syscall is dom0's
            current_worker().index()
        })
        .unwrap()
        .await
        .unwrap();
        assert_eq!(elsewhere, 1);
        let_dom0_select().await;
        uid
    });
    assert_eq!(seen, vec![(0, uid)], "cancelled on its owner, once");
}

#[test]
fn a_syscall_dropped_on_another_thread_is_forgotten_by_its_owner() {
    let (uid, seen) = recording_run(async {
        let parked = syscall();
        let uid = parked.uid();
        std::thread::spawn(move || drop(parked)).join().unwrap();
        let_dom0_select().await;
        uid
    });
    assert_eq!(seen, vec![(0, uid)]);
}

#[test]
fn a_syscall_dropped_on_its_owner_is_cancelled_there_at_once() {
    let (uid, seen) = recording_run(async {
        let parked = syscall();
        let uid = parked.uid();
        drop(parked);
        let_dom0_select().await;
        uid
    });
    assert_eq!(seen, vec![(0, uid)]);
}
