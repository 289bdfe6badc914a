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

/// Sub-buckets per power of two of a [`Latencies`] histogram: a value is
/// known within 1/16 (about 6%) of itself.
const SUB_BUCKETS: usize = 16;
/// Powers of two covered, from 1 ns: up to about 18 minutes per call.
const OCTAVES: usize = 40;

/// A histogram of call durations in nanoseconds, log-linear (Redis keeps
/// an HdrHistogram per command for INFO latencystats; this is its cheap
/// cousin: one add per call, fixed 2.5 KiB per command that ran).
struct Latencies(Box<[u32; SUB_BUCKETS * OCTAVES]>);

impl Latencies {
    fn new() -> Latencies {
        Latencies(Box::new([0; SUB_BUCKETS * OCTAVES]))
    }

    fn bucket(nanos: u64) -> usize {
        let n = nanos.max(1);
        let octave = 63 - n.leading_zeros() as usize;
        // The bits right below the top one choose the sub-bucket.
        let sub = if octave >= 4 {
            ((n >> (octave - 4)) & 0xf) as usize
        } else {
            ((n << (4 - octave)) & 0xf) as usize
        };
        (octave * SUB_BUCKETS + sub).min(SUB_BUCKETS * OCTAVES - 1)
    }

    /// The largest value of bucket `i`, in nanoseconds.
    fn upper(i: usize) -> f64 {
        let (octave, sub) = (i / SUB_BUCKETS, i % SUB_BUCKETS);
        let base = (1u64 << octave) as f64;
        base + base * (sub as f64 + 1.0) / SUB_BUCKETS as f64
    }

    fn add(&mut self, nanos: u64) {
        let b = &mut self.0[Self::bucket(nanos)];
        *b = b.saturating_add(1);
    }

    /// The value under which `pct` percent of the calls fall, in
    /// microseconds (the bucket's upper bound).
    fn percentile(&self, pct: f64) -> f64 {
        let total: u64 = self.0.iter().map(|&c| u64::from(c)).sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((pct / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.0.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                return Self::upper(i) / 1000.0;
            }
        }
        Self::upper(self.0.len() - 1) / 1000.0
    }
}

#[derive(Default)]
struct Row {
    name: &'static str,
    calls: u64,
    nanos: u64,
    rejected: u64,
    failed: u64,
    latencies: Option<Latencies>,
}

/// Hashes a command by the address of its table name: the names are
/// `'static` and each spec has its own, so the address identifies the
/// command, and hashing it is one multiply (SipHash over the text would
/// cost more than the rest of a call's accounting).
#[derive(Default)]
struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type ByAddress = HashMap<usize, Row, std::hash::BuildHasherDefault<AddressHasher>>;

/// Calls per command.
#[derive(Default)]
pub(super) struct CommandStats(Mutex<ByAddress>);

impl CommandStats {
    /// Adds `calls`: (command, nanoseconds, outcome) each.
    pub(super) fn add(&self, calls: &[(&'static str, u64, Outcome)]) {
        if calls.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for &(name, nanos, outcome) in calls {
            let s = map.entry(name.as_ptr() as usize).or_insert_with(|| Row {
                name,
                ..Row::default()
            });
            match outcome {
                Outcome::Rejected => s.rejected += 1,
                Outcome::Ok | Outcome::Failed => {
                    s.calls += 1;
                    s.nanos += nanos;
                    s.failed += u64::from(outcome == Outcome::Failed);
                    s.latencies.get_or_insert_with(Latencies::new).add(nanos);
                }
            }
        }
    }

    /// Every command's figures, by name (`client|list`...).
    pub(super) fn snapshot(&self) -> Vec<(&'static str, CommandStat)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = map
            .values()
            .map(|r| {
                let stat = CommandStat {
                    calls: r.calls,
                    usec: r.nanos / 1000,
                    rejected: r.rejected,
                    failed: r.failed,
                };
                (r.name, stat)
            })
            .collect();
        rows.sort_unstable_by_key(|(k, _)| *k);
        rows
    }

    /// INFO latencystats: for each command that ran, the duration under
    /// which each of `percentiles` of its calls fall, in microseconds.
    pub(super) fn latencies(&self, percentiles: &[f64]) -> Vec<(&'static str, Vec<(f64, f64)>)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = map
            .values()
            .filter_map(|r| {
                let l = r.latencies.as_ref()?;
                Some((
                    r.name,
                    percentiles.iter().map(|&p| (p, l.percentile(p))).collect(),
                ))
            })
            .collect();
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
            ("get", 3000, Outcome::Ok),
            ("get", 5500, Outcome::Failed),
            ("get", 100_000, Outcome::Rejected),
            ("set", 1000, Outcome::Ok),
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
    fn latency_percentiles_are_within_a_sixteenth() {
        let s = CommandStats::default();
        // 1..=1000 microseconds, once each.
        let calls: Vec<_> = (1..=1000u64)
            .map(|us| ("get", us * 1000, Outcome::Ok))
            .collect();
        s.add(&calls);
        s.add(&[("set", 7, Outcome::Rejected)]);
        let rows = s.latencies(&[50.0, 99.0, 100.0]);
        assert_eq!(rows.len(), 1, "a command that never ran has none");
        let (name, p) = &rows[0];
        assert_eq!(*name, "get");
        for (&(pct, got), want) in p.iter().zip([500.0, 990.0, 1000.0]) {
            assert!(
                got >= want && got <= want * (1.0 + 1.0 / 16.0) + 0.001,
                "p{pct}: {got} for {want}"
            );
        }
        for n in [1u64, 2, 3, 15, 16, 17, 1 << 20, u64::MAX] {
            let b = Latencies::bucket(n);
            assert!(
                Latencies::upper(b) >= n as f64 || b == SUB_BUCKETS * OCTAVES - 1,
                "{n}"
            );
        }
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
