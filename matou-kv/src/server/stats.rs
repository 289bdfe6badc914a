//! What INFO counts, shared by the handlers of every worker: error replies
//! (`total_error_replies` in `stats`, the `errorstats` section) and calls
//! per command (the `commandstats` section).
//!
//! Invariants: nothing is taken on the path of a reply that is not an
//! error; an error costs one atomic add and a short lock of the table by
//! code. The table holds at most [`ERROR_CODES`] codes, as Redis's does
//! (`ERRORSTATS_LIMIT`): past it new codes are counted in the total only,
//! so a client inventing error codes cannot grow it. The command table is
//! keyed by the command table's own names (`&'static str`), so it holds at
//! most one row per known command; a handler adds a whole batch's calls
//! under one lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Distinct error codes tracked at most.
pub const ERROR_CODES: usize = 128;

/// Counts of error replies.
#[derive(Default)]
pub(super) struct ErrorStats {
    total: AtomicU64,
    by_code: Mutex<BTreeMap<String, u64>>,
}

impl ErrorStats {
    /// Counts one error reply whose text is `message` (`ERR ...`): its
    /// code is the first word.
    pub(super) fn count(&self, message: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let code = message.split(' ').next().unwrap_or("ERR");
        let mut map = self.by_code.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(code) {
            *n += 1;
        } else if map.len() < ERROR_CODES {
            map.insert(code.to_string(), 1);
        }
    }

    /// (total, (code, count) by code).
    pub(super) fn snapshot(&self) -> (u64, Vec<(String, u64)>) {
        let map = self.by_code.lock().unwrap_or_else(|e| e.into_inner());
        (
            self.total.load(Ordering::Relaxed),
            map.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        )
    }

    /// CONFIG RESETSTAT.
    pub(super) fn reset(&self) {
        let mut map = self.by_code.lock().unwrap_or_else(|e| e.into_inner());
        map.clear();
        self.total.store(0, Ordering::Relaxed);
    }
}

/// One command's figures, as Redis's `cmdstat_<name>` line shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandStat {
    /// Times it ran (rejected calls excluded).
    pub calls: u64,
    /// Microseconds spent running it, in total.
    pub usec: u64,
    /// Refused before running (arity, NOAUTH, OOM...).
    pub rejected: u64,
    /// Ran and answered an error.
    pub failed: u64,
}

/// How one call ended, for [`CommandStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok,
    Failed,
    Rejected,
}

/// Calls per command.
#[derive(Default)]
pub(super) struct CommandStats(Mutex<HashMap<&'static str, CommandStat>>);

impl CommandStats {
    /// Adds `calls`: (command, microseconds, outcome) each.
    pub(super) fn add(&self, calls: &[(&'static str, u64, Outcome)]) {
        if calls.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for &(name, usec, outcome) in calls {
            let s = map.entry(name).or_default();
            match outcome {
                Outcome::Rejected => s.rejected += 1,
                Outcome::Ok | Outcome::Failed => {
                    s.calls += 1;
                    s.usec += usec;
                    s.failed += u64::from(outcome == Outcome::Failed);
                }
            }
        }
    }

    /// Every command's figures, by name (`client|list`...).
    pub(super) fn snapshot(&self) -> Vec<(&'static str, CommandStat)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
        rows.sort_unstable_by_key(|(k, _)| *k);
        rows
    }

    /// CONFIG RESETSTAT.
    pub(super) fn reset(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// This process's CPU microseconds (system, user, children's system, children's
/// user), from `/proc/self/stat` (what `getrusage` reports); zeros when it
/// cannot be read.
pub(super) fn cpu_times() -> (u64, u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces and
    // parentheses): state is field 3, utime 14, stime 15, cutime 16,
    // cstime 17.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = rustix::param::clock_ticks_per_second().max(1);
    let micros = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map_or(0, |t| t.saturating_mul(1_000_000) / tick)
    };
    (micros(12), micros(11), micros(14), micros(13))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_grow_with_work() {
        let (_, user0, _, _) = cpu_times();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let (sys, user, _, _) = cpu_times();
        assert!(user > user0 || sys > 0, "{user0} -> {user}");
        assert!(user > 0);
    }

    #[test]
    fn command_stats_split_calls_rejections_and_failures() {
        let s = CommandStats::default();
        s.add(&[
            ("get", 3, Outcome::Ok),
            ("get", 5, Outcome::Failed),
            ("get", 100, Outcome::Rejected),
            ("set", 1, Outcome::Ok),
        ]);
        let rows = s.snapshot();
        assert_eq!(
            rows,
            vec![
                (
                    "get",
                    CommandStat {
                        calls: 2,
                        usec: 8,
                        rejected: 1,
                        failed: 1
                    }
                ),
                (
                    "set",
                    CommandStat {
                        calls: 1,
                        usec: 1,
                        rejected: 0,
                        failed: 0
                    }
                ),
            ]
        );
        s.reset();
        assert!(s.snapshot().is_empty());
    }

    #[test]
    fn counts_by_code_and_bounds_the_table() {
        let s = ErrorStats::default();
        s.count("ERR syntax error");
        s.count("ERR wrong number of arguments for 'get' command");
        s.count("WRONGTYPE Operation against a key");
        assert_eq!(
            s.snapshot(),
            (3, vec![("ERR".into(), 2), ("WRONGTYPE".into(), 1)])
        );
        for i in 0..1000 {
            s.count(&format!("E{i} x"));
        }
        let (total, codes) = s.snapshot();
        assert_eq!(total, 1003);
        assert_eq!(codes.len(), ERROR_CODES);
        s.reset();
        assert_eq!(s.snapshot(), (0, vec![]));
    }
}
