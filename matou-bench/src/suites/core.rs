//! Suite `core`: the scheduler workloads of tokio's
//! `benches/rt_multi_threaded.rs`, with its constants.
//!
//! Each workload runs in two pairings: matou `extra_workers(1)` against tokio
//! `multi_thread(2)` (same worker count), and matou `extra_workers(0)` against
//! tokio `current_thread`. The figure is nanoseconds per workload.
//!
//! matou requires every child to be awaited (or cancelled), so the tokio side
//! awaits all its `JoinHandle`s too, and both sides do the same work; in
//! particular chained spawn awaits each link (a chain of 1 000 live tasks)
//! and ping-pong awaits the pong task and every ping task.
//!
//! Where things run:
//! - matou's timing loop is the root task, on dom0; tokio's is a task spawned
//!   from `block_on`, so it runs on a worker too (with `multi_thread`, its
//!   spawns go to that worker's local queue and may be stolen; matou's `spawn`
//!   stays on dom0, it never migrates).
//! - *spawn many remote*: tokio spawns from a non-runtime thread through the
//!   runtime handle (its inject queue); matou's mapping is `call` from the
//!   main task onto the other worker (its remote inbox). With no extra worker
//!   matou has no remote placement (`call` fails with `NoDomainAvailable`),
//!   so that row exists only for the two-worker pairing.
//! - *yield many*: tokio spreads the 200 tasks by work stealing; matou, which
//!   does not steal, places them round-robin over its workers (`spawn` for
//!   dom0, `call` for the others).
//! - *ping-pong* uses `tokio::sync::oneshot` on both sides (it works with any
//!   waker), so the channel is the same and only the scheduler differs.
//! - *cancel a task with 10,000 children*: matou spawns a task that spawns
//!   10 000 never-ending children, then cancels it and waits until the whole
//!   subtree has terminated; tokio fills a `JoinSet` with 10 000
//!   never-ending tasks, then `shutdown`s it (abort all, await all). Not in
//!   tokio's bench file: it measures that cancelling n children is O(n).
//!
//! Runtime construction is outside the timed region; each sample is the mean
//! of `inner` iterations after one warm-up inside one runtime.

use super::pairing::{bench, matou_sample, tokio_sample, Pairing, PAIRINGS};
use crate::harness::{ns, Config, Report};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const NUM_SPAWN: usize = 10_000;
const NUM_YIELD: usize = 1_000;
const YIELD_TASKS: usize = 200;
const NUM_PINGS: usize = 1_000;
const ITER: usize = 1_000;

/// Runs the suite.
pub fn run(cfg: &Config, report: &mut Report) {
    let inner = cfg.inner;
    for p in PAIRINGS {
        let workers = p.extra + 1;
        bench(
            cfg,
            report,
            "core",
            p,
            "spawn many local",
            || matou_sample(p.extra, inner, matou_spawn_many),
            || tokio_sample(p, inner, tokio_spawn_many),
        );
        if p.extra > 0 {
            bench(
                cfg,
                report,
                "core",
                p,
                "spawn many remote",
                || matou_sample(p.extra, inner, matou_spawn_many_remote),
                || tokio_remote_sample(p, inner),
            );
        }
        bench(
            cfg,
            report,
            "core",
            p,
            "yield many",
            || matou_sample(p.extra, inner, move || matou_yield_many(workers)),
            || tokio_sample(p, inner, tokio_yield_many),
        );
        bench(
            cfg,
            report,
            "core",
            p,
            "ping-pong",
            || matou_sample(p.extra, inner, matou_ping_pong),
            || tokio_sample(p, inner, tokio_ping_pong),
        );
        bench(
            cfg,
            report,
            "core",
            p,
            "chained spawn",
            || matou_sample(p.extra, inner, || matou_chain(ITER)),
            || tokio_sample(p, inner, || tokio_chain(ITER)),
        );
        bench(
            cfg,
            report,
            "core",
            p,
            "cancel a task with 10,000 children",
            || matou_sample(p.extra, inner, matou_cancel_wide),
            || tokio_sample(p, inner, tokio_cancel_wide),
        );
    }
}

async fn matou_cancel_wide() {
    let parent = matou::spawn(async {
        let children: Vec<_> = (0..NUM_SPAWN)
            .map(|_| matou::spawn(std::future::pending::<()>()))
            .collect();
        std::future::pending::<()>().await;
        drop(children);
    });
    // The parent runs once and spawns its children.
    matou::yield_now().await;
    parent.cancel().await.expect("cancel");
}

async fn tokio_cancel_wide() {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..NUM_SPAWN {
        set.spawn(std::future::pending::<()>());
    }
    tokio::task::yield_now().await;
    set.shutdown().await;
}

async fn matou_spawn_many() {
    let ps: Vec<_> = (0..NUM_SPAWN)
        .map(|i| {
            matou::spawn(async move {
                std::hint::black_box(i);
            })
        })
        .collect();
    for p in ps {
        p.await.expect("child");
    }
}

async fn tokio_spawn_many() {
    let hs: Vec<_> = (0..NUM_SPAWN)
        .map(|i| {
            tokio::spawn(async move {
                std::hint::black_box(i);
            })
        })
        .collect();
    for h in hs {
        h.await.expect("child");
    }
}

async fn matou_spawn_many_remote() {
    let ps: Vec<_> = (0..NUM_SPAWN)
        .map(|i| {
            matou::call(move || async move {
                std::hint::black_box(i);
            })
            .expect("an extra worker")
        })
        .collect();
    for p in ps {
        p.await.expect("child");
    }
}

/// tokio's remote spawn, as in its bench: from this (non-runtime) thread
/// through the runtime handle; the handles are then awaited in `block_on`.
fn tokio_remote_sample(p: Pairing, inner: usize) -> f64 {
    let rt = p.tokio_rt();
    let once = |rt: &tokio::runtime::Runtime| {
        let t = Instant::now();
        let hs: Vec<_> = (0..NUM_SPAWN)
            .map(|i| {
                rt.spawn(async move {
                    std::hint::black_box(i);
                })
            })
            .collect();
        rt.block_on(async {
            for h in hs {
                h.await.expect("child");
            }
        });
        ns(t.elapsed())
    };
    once(&rt);
    let total: f64 = (0..inner).map(|_| once(&rt)).sum();
    rt.shutdown_timeout(Duration::from_secs(1));
    total / inner.max(1) as f64
}

async fn yielder_matou() {
    for _ in 0..NUM_YIELD {
        matou::yield_now().await;
    }
}

async fn matou_yield_many(workers: usize) {
    let ps: Vec<_> = (0..YIELD_TASKS)
        .map(|i| {
            if i % workers == 0 {
                matou::spawn(yielder_matou())
            } else {
                matou::call(yielder_matou).expect("an extra worker")
            }
        })
        .collect();
    for p in ps {
        p.await.expect("child");
    }
}

async fn tokio_yield_many() {
    let hs: Vec<_> = (0..YIELD_TASKS)
        .map(|_| {
            tokio::spawn(async {
                for _ in 0..NUM_YIELD {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for h in hs {
        h.await.expect("child");
    }
}

async fn matou_ping_pong() {
    let outer = matou::spawn(async {
        let pings: Vec<_> = (0..NUM_PINGS)
            .map(|_| {
                matou::spawn(async {
                    let (tx1, rx1) = oneshot::channel::<()>();
                    let (tx2, rx2) = oneshot::channel::<()>();
                    let pong = matou::spawn(async move {
                        rx1.await.expect("ping");
                        tx2.send(()).expect("pong");
                    });
                    tx1.send(()).expect("ping");
                    rx2.await.expect("pong");
                    pong.await.expect("pong task");
                })
            })
            .collect();
        for p in pings {
            p.await.expect("ping task");
        }
    });
    outer.await.expect("outer task");
}

async fn tokio_ping_pong() {
    let outer = tokio::spawn(async {
        let pings: Vec<_> = (0..NUM_PINGS)
            .map(|_| {
                tokio::spawn(async {
                    let (tx1, rx1) = oneshot::channel::<()>();
                    let (tx2, rx2) = oneshot::channel::<()>();
                    let pong = tokio::spawn(async move {
                        rx1.await.expect("ping");
                        tx2.send(()).expect("pong");
                    });
                    tx1.send(()).expect("ping");
                    rx2.await.expect("pong");
                    pong.await.expect("pong task");
                })
            })
            .collect();
        for p in pings {
            p.await.expect("ping task");
        }
    });
    outer.await.expect("outer task");
}

/// Each link spawns the next and awaits it (matou's rule), down to `n == 0`.
fn matou_chain(n: usize) -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(async move {
        if n > 0 {
            matou::spawn(matou_chain(n - 1)).await.expect("link");
        }
    })
}

fn tokio_chain(n: usize) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if n > 0 {
            tokio::spawn(tokio_chain(n - 1)).await.expect("link");
        }
    })
}
