//! Suite `sync`: `matou::sync` against `tokio::sync` in the same process run.
//!
//! Rows (each in two pairings, as in the `core` suite: matou
//! `extra_workers(1)` against tokio `multi_thread(2)`, and matou
//! `extra_workers(0)` against tokio `current_thread`; the figure is
//! nanoseconds per workload):
//! - *mutex uncontended*: one task locks, increments and unlocks
//!   [`MUTEX_OPS`] times; nobody else touches the mutex.
//! - *mutex contended*: [`MUTEX_TASKS`] tasks meet at a start line, then
//!   each locks [`MUTEX_OPS_EACH`] times and holds the lock across a
//!   `yield_now`, so every other task finds it held: each acquisition goes
//!   through the waiter queue and a FIFO hand-off (on one worker too, where a
//!   lock that is never held across an await is never contended).
//!   `yield_now` costs the same on both sides (the `core` suite's *yield
//!   many* row compares it), so the row is dominated by the queue, the wake
//!   and the hand-off.
//! - *channel, P producers* (P = 1, 4, 16): P tasks send [`MESSAGES`] `u64`s
//!   in all through a bounded channel of capacity [`CAPACITY`] to one
//!   consumer, the timing task. matou: `matou::sync::channel` (MPMC, used
//!   here with one receiver); tokio: `tokio::sync::mpsc::channel`, its
//!   bounded channel and the natural counterpart (its MPSC specialisation is
//!   an advantage tokio is allowed to keep).
//! - *oneshot round trip*: [`ROUND_TRIPS`] times, task A sends a request to
//!   task B through a oneshot and awaits B's reply through another; the
//!   request carries the reply's sender and the receiver of the next request,
//!   so only oneshots are involved (two created, sent and received per round
//!   trip, each with a task switch).
//!
//! # Placement, and the one asymmetry
//! matou places tasks explicitly and never migrates them; tokio places them
//! by work stealing. With one worker, everything runs on it on both sides.
//! With two, the tokio side uses `tokio::spawn` throughout and its scheduler
//! decides, and the matou side runs:
//! - the contending mutex tasks round-robin over its two workers (`spawn` for
//!   dom0, `call` for the other one): a real cross-thread contention;
//! - the channel and oneshot rows twice: *(cross-worker)*, every producer
//!   (task B) on the other worker (`call`) while the consumer (task A) is the
//!   timing task on dom0, so every value crosses threads; and *(same
//!   worker)*, every task on dom0 (`spawn`).
//!
//! tokio, left to itself, mostly keeps these tasks on one thread (its LIFO
//! slot runs a woken task next on the waker's worker). Measured with thread
//! ids on this workload: all messages of the 1-producer channel, 73% (4
//! producers) and 88% (16 producers) of the others, and 98% of the oneshot
//! round trips were on the consumer's thread. So the *(same worker)* rows are
//! the like-for-like comparison of the primitives, and the *(cross-worker)*
//! rows show what a forced thread crossing costs matou: mostly waking the
//! other worker out of its sleep, a scheduler cost that no primitive can
//! avoid (tokio's own oneshot, run by matou across workers, costs the same).
//!
//! Every matou promise is awaited (matou's rule), and so is every tokio
//! `JoinHandle`. Runtime construction is outside the timed region; each
//! sample is the mean of `inner` iterations after one warm-up inside one
//! runtime, and samples alternate matou/tokio (see `harness`).

use super::pairing::{bench, matou_sample, tokio_sample, PAIRINGS};
use crate::harness::{Config, Report};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Lock/unlock pairs of the uncontended mutex row.
const MUTEX_OPS: usize = 10_000;
/// Tasks of the contended mutex row.
const MUTEX_TASKS: usize = 4;
/// Lock/unlock pairs per task of the contended mutex row.
const MUTEX_OPS_EACH: usize = 1_000;
/// Messages per channel workload, all producers together.
const MESSAGES: usize = 10_000;
/// Capacity of the bounded channels.
const CAPACITY: usize = 64;
/// Round trips of the oneshot row.
const ROUND_TRIPS: usize = 2_000;

/// Runs the suite.
pub fn run(cfg: &Config, report: &mut Report) {
    let inner = cfg.inner;
    for p in PAIRINGS {
        let workers = p.extra + 1;
        // With an extra worker, the channel and oneshot rows run twice on the
        // matou side: peers on the other worker, then on dom0 (see the module
        // documentation); the tokio side is the same both times.
        let placements: &[(bool, &str)] = if p.extra > 0 {
            &[(true, " (cross-worker)"), (false, " (same worker)")]
        } else {
            &[(false, "")]
        };
        bench(
            cfg,
            report,
            "sync",
            p,
            "mutex uncontended".to_string(),
            || matou_sample(p.extra, inner, matou_mutex_uncontended),
            || tokio_sample(p, inner, tokio_mutex_uncontended),
        );
        let spread = if p.extra > 0 { " (both workers)" } else { "" };
        bench(
            cfg,
            report,
            "sync",
            p,
            format!("mutex contended, {MUTEX_TASKS} tasks{spread}"),
            || matou_sample(p.extra, inner, move || matou_mutex_contended(workers)),
            || tokio_sample(p, inner, tokio_mutex_contended),
        );
        for &(remote, place) in placements {
            for producers in [1, 4, 16] {
                let plural = if producers == 1 { "" } else { "s" };
                bench(
                    cfg,
                    report,
                    "sync",
                    p,
                    format!("channel, {producers} producer{plural}{place}"),
                    || matou_sample(p.extra, inner, move || matou_channel(producers, remote)),
                    || tokio_sample(p, inner, move || tokio_channel(producers)),
                );
            }
        }
        for &(remote, place) in placements {
            bench(
                cfg,
                report,
                "sync",
                p,
                format!("oneshot round trip{place}"),
                || matou_sample(p.extra, inner, move || matou_round_trips(remote)),
                || tokio_sample(p, inner, tokio_round_trips),
            );
        }
    }
}

/// Runs `make()` on dom0 (`spawn`) or on another worker (`call`).
fn matou_place<G, F>(remote: bool, make: G) -> matou::Promise<F::Output>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    if remote {
        matou::call(make).expect("an extra worker")
    } else {
        matou::spawn(make())
    }
}

// Mutex.

/// A start line for the contending tasks: each arrives once, then waits
/// (yielding) until all [`MUTEX_TASKS`] have arrived. Without it, the tasks
/// started first (on the timing task's worker) can be done before the others
/// even start, and there is no contention to measure.
#[derive(Default)]
struct Gate(AtomicUsize);

impl Gate {
    /// Counts this task in; whether everyone is there.
    fn arrive(&self) -> bool {
        self.0.fetch_add(1, Ordering::AcqRel) + 1 >= MUTEX_TASKS
    }

    fn open(&self) -> bool {
        self.0.load(Ordering::Acquire) >= MUTEX_TASKS
    }
}

async fn matou_mutex_uncontended() {
    let m = matou::sync::Mutex::new(0u64);
    for _ in 0..MUTEX_OPS {
        *m.lock().await += 1;
    }
    assert_eq!(*m.lock().await, MUTEX_OPS as u64);
}

async fn tokio_mutex_uncontended() {
    let m = tokio::sync::Mutex::new(0u64);
    for _ in 0..MUTEX_OPS {
        *m.lock().await += 1;
    }
    assert_eq!(*m.lock().await, MUTEX_OPS as u64);
}

async fn matou_mutex_contended(workers: usize) {
    let m = Arc::new(matou::sync::Mutex::new(0u64));
    let gate = Arc::new(Gate::default());
    let ps: Vec<_> = (0..MUTEX_TASKS)
        .map(|i| {
            let (m, gate) = (m.clone(), gate.clone());
            matou_place(i % workers != 0, move || async move {
                if !gate.arrive() {
                    while !gate.open() {
                        matou::yield_now().await;
                    }
                }
                for _ in 0..MUTEX_OPS_EACH {
                    let mut g = m.lock().await;
                    *g += 1;
                    matou::yield_now().await;
                    drop(g);
                }
            })
        })
        .collect();
    for p in ps {
        p.await.expect("mutex task");
    }
    assert_eq!(*m.lock().await, (MUTEX_TASKS * MUTEX_OPS_EACH) as u64);
}

async fn tokio_mutex_contended() {
    let m = Arc::new(tokio::sync::Mutex::new(0u64));
    let gate = Arc::new(Gate::default());
    let hs: Vec<_> = (0..MUTEX_TASKS)
        .map(|_| {
            let (m, gate) = (m.clone(), gate.clone());
            tokio::spawn(async move {
                if !gate.arrive() {
                    while !gate.open() {
                        tokio::task::yield_now().await;
                    }
                }
                for _ in 0..MUTEX_OPS_EACH {
                    let mut g = m.lock().await;
                    *g += 1;
                    tokio::task::yield_now().await;
                    drop(g);
                }
            })
        })
        .collect();
    for h in hs {
        h.await.expect("mutex task");
    }
    assert_eq!(*m.lock().await, (MUTEX_TASKS * MUTEX_OPS_EACH) as u64);
}

// Channel.

/// Producer `i` of `producers` sends its share of [`MESSAGES`].
fn share(i: usize, producers: usize) -> std::ops::Range<u64> {
    let per = MESSAGES / producers;
    let extra = if i == producers - 1 {
        MESSAGES % producers
    } else {
        0
    };
    let start = (i * per) as u64;
    start..start + (per + extra) as u64
}

async fn matou_channel(producers: usize, remote: bool) {
    let (tx, rx) = matou::sync::channel::<u64>(CAPACITY);
    let ps: Vec<_> = (0..producers)
        .map(|i| {
            let tx = tx.clone();
            matou_place(remote, move || async move {
                for v in share(i, producers) {
                    tx.send(v).await.expect("receiver alive");
                }
            })
        })
        .collect();
    drop(tx);
    let mut sum = 0u64;
    while let Some(v) = rx.recv().await {
        sum += v;
    }
    for p in ps {
        p.await.expect("producer");
    }
    assert_eq!(sum, (MESSAGES as u64 * (MESSAGES as u64 - 1)) / 2);
}

async fn tokio_channel(producers: usize) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
    let hs: Vec<_> = (0..producers)
        .map(|i| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for v in share(i, producers) {
                    tx.send(v).await.expect("receiver alive");
                }
            })
        })
        .collect();
    drop(tx);
    let mut sum = 0u64;
    while let Some(v) = rx.recv().await {
        sum += v;
    }
    for h in hs {
        h.await.expect("producer");
    }
    assert_eq!(sum, (MESSAGES as u64 * (MESSAGES as u64 - 1)) / 2);
}

// Oneshot round trip.

/// A request from A to B: a value, where to reply, and where the next
/// request will arrive.
struct MatouReq {
    v: u64,
    reply: matou::sync::oneshot::Sender<u64>,
    next: matou::sync::oneshot::Receiver<MatouReq>,
}

struct TokioReq {
    v: u64,
    reply: tokio::sync::oneshot::Sender<u64>,
    next: tokio::sync::oneshot::Receiver<TokioReq>,
}

async fn matou_round_trips(remote: bool) {
    use matou::sync::oneshot;
    let (mut tx, rx) = oneshot::channel::<MatouReq>();
    let b = matou_place(remote, move || async move {
        let mut rx = rx;
        // Ends when A drops the sender of the next request.
        while let Ok(req) = rx.await {
            req.reply.send(req.v + 1).expect("A waits");
            rx = req.next;
        }
    });
    for v in 0..ROUND_TRIPS as u64 {
        let (reply_tx, reply_rx) = oneshot::channel();
        let (next_tx, next_rx) = oneshot::channel();
        let req = MatouReq {
            v,
            reply: reply_tx,
            next: next_rx,
        };
        if tx.send(req).is_err() {
            panic!("B is gone");
        }
        tx = next_tx;
        assert_eq!(reply_rx.await, Ok(v + 1));
    }
    drop(tx);
    b.await.expect("task B");
}

async fn tokio_round_trips() {
    use tokio::sync::oneshot;
    let (mut tx, rx) = oneshot::channel::<TokioReq>();
    let b = tokio::spawn(async move {
        let mut rx = rx;
        while let Ok(req) = rx.await {
            req.reply.send(req.v + 1).expect("A waits");
            rx = req.next;
        }
    });
    for v in 0..ROUND_TRIPS as u64 {
        let (reply_tx, reply_rx) = oneshot::channel();
        let (next_tx, next_rx) = oneshot::channel();
        let req = TokioReq {
            v,
            reply: reply_tx,
            next: next_rx,
        };
        if tx.send(req).is_err() {
            panic!("B is gone");
        }
        tx = next_tx;
        assert_eq!(reply_rx.await, Ok(v + 1));
    }
    drop(tx);
    b.await.expect("task B");
}
