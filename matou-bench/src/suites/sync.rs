//! Suite `sync`: `matou::sync` against `tokio::sync` (uncontended and
//! contended mutex, mpsc throughput with 1, 4 and 16 producers, oneshot round
//! trip).
//!
//! `matou-core/src/sync/mod.rs` is still a placeholder (no primitives yet), so
//! the suite only says so and is skipped.

use crate::harness::{Config, Report};

/// Runs the suite (currently: reports that `matou::sync` is not ready).
pub fn run(_cfg: &Config, _report: &mut Report) {
    println!("sync suite: matou::sync not ready");
}
