//! The runtime pairings and the sampling loop shared by the `core` and `sync`
//! suites: matou with one extra worker against tokio `multi_thread(2)` (the
//! same worker count), and matou with none against tokio `current_thread`.
//!
//! A sample builds its runtime once and returns the mean nanoseconds of
//! `inner` timed iterations of the workload after one warm-up, measured in a
//! task of that runtime (matou's root task, on dom0; a task spawned from
//! tokio's `block_on`, on a runtime worker). Runtime construction and
//! teardown are outside the timed region.

use crate::harness::{alternate, ns, Config, Report, Row};
use std::future::Future;
use std::time::{Duration, Instant};

/// One pairing: matou with `extra` extra workers against a tokio runtime.
#[derive(Clone, Copy)]
pub struct Pairing {
    pub extra: usize,
    /// tokio worker threads; `None` for `current_thread`.
    pub tokio_workers: Option<usize>,
}

impl Pairing {
    /// The tokio runtime compared against, as the report names it.
    pub fn baseline(self) -> String {
        match self.tokio_workers {
            Some(n) => format!("multi_thread({n})"),
            None => "current_thread".to_string(),
        }
    }

    /// A fresh tokio runtime of this pairing.
    pub fn tokio_rt(self) -> tokio::runtime::Runtime {
        match self.tokio_workers {
            Some(n) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
        .expect("tokio runtime")
    }
}

/// Both pairings, the multi-worker one first.
pub const PAIRINGS: [Pairing; 2] = [
    Pairing {
        extra: 1,
        tokio_workers: Some(2),
    },
    Pairing {
        extra: 0,
        tokio_workers: None,
    },
];

/// Alternates one matou sample and one tokio sample for `cfg.rounds` rounds
/// and pushes the medians as a row of `suite`.
pub fn bench(
    cfg: &Config,
    report: &mut Report,
    suite: &'static str,
    p: Pairing,
    name: impl Into<String>,
    matou: impl Fn() -> f64,
    tokio: impl Fn() -> f64,
) {
    let (m, t) = alternate(cfg.rounds, || vec![matou()], || vec![tokio()]);
    report.push(Row {
        suite,
        name: name.into(),
        baseline: p.baseline(),
        matou_ns: m[0],
        tokio_ns: t[0],
    });
}

/// Builds a matou run with `extra` extra workers and returns the mean
/// nanoseconds of `inner` timed iterations of `work` (after one warm-up),
/// measured in the root task (on dom0).
pub fn matou_sample<W, Fut>(extra: usize, inner: usize, work: W) -> f64
where
    W: Fn() -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    matou::Builder::new()
        .extra_workers(extra)
        .run(mean_ns(inner, work))
}

/// The tokio counterpart of [`matou_sample`]: the timing loop runs in a task
/// spawned from `block_on`, i.e. on a runtime worker.
pub fn tokio_sample<W, Fut>(p: Pairing, inner: usize, work: W) -> f64
where
    W: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = p.tokio_rt();
    let r = rt.block_on(async move {
        tokio::spawn(mean_ns(inner, work))
            .await
            .expect("tokio timing task")
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}

/// The timing loop both sides run inside their runtime: one warm-up, then
/// the mean nanoseconds of `inner` timed iterations of `work`.
async fn mean_ns<W, Fut>(inner: usize, work: W) -> f64
where
    W: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    work().await;
    let mut total = 0.0;
    for _ in 0..inner {
        let t = Instant::now();
        work().await;
        total += ns(t.elapsed());
    }
    total / inner.max(1) as f64
}
