//! The slow log (SLOWLOG GET / LEN / RESET): the most recent commands that
//! took at least `slowlog-log-slower-than` microseconds, as Redis keeps it.
//!
//! Invariants:
//! - At most `slowlog-max-len` entries are kept, the newest first; ids
//!   grow by one per entry logged and are not reset by SLOWLOG RESET (as
//!   in Redis).
//! - An entry's size is bounded whatever the command: at most
//!   [`MAX_ARGS`] arguments (the last then says how many more there were)
//!   and [`MAX_ARG_BYTES`] bytes of each (with how many more there were),
//!   Redis's `SLOWLOG_ENTRY_MAX_ARGC` / `_MAX_STRING`.
//! - Only commands that ran are logged: the handler times each one (the
//!   storage task's execution of a data command, the handler's of a
//!   connection command), never the wait in the queue.

use crate::resp::Reply;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Arguments kept per entry.
pub const MAX_ARGS: usize = 32;
/// Bytes kept per argument.
pub const MAX_ARG_BYTES: usize = 128;

/// Commands whose arguments are secrets: logged as their name only.
const REDACTED: &[&str] = &["auth", "hello", "migrate"];
/// Settings whose value CONFIG SET's entry shows as `(redacted)`.
const SECRET_SETTINGS: &[&str] = &["requirepass", "masterauth"];

struct Entry {
    id: u64,
    unix_secs: u64,
    micros: u64,
    args: Vec<Vec<u8>>,
    peer: String,
    name: String,
}

#[derive(Default)]
struct Log {
    next_id: u64,
    entries: VecDeque<Entry>,
}

/// The slow log, shared by every handler.
#[derive(Default)]
pub(super) struct SlowLog(Mutex<Log>);

/// What the slow log may need of a request's arguments, kept while its
/// reply is made: the first [`MAX_ARGS`] arguments, the first
/// [`MAX_ARG_BYTES`] of each, and their full lengths and count. The
/// handler keeps these in one buffer reused across batches (the requests
/// themselves are freed as soon as parsed, as if there were no slow log).
#[derive(Default)]
pub(super) struct ArgPrefixes {
    bytes: Vec<u8>,
    /// (start in `bytes`, bytes kept, full length) per argument kept.
    args: Vec<(usize, usize, usize)>,
}

/// A request's arguments in an [`ArgPrefixes`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Prefixed {
    first: usize,
    end: usize,
    argc: usize,
}

impl ArgPrefixes {
    /// Keeps what the slow log may need of `args`.
    pub(super) fn push(&mut self, args: &[Vec<u8>]) -> Prefixed {
        let first = self.args.len();
        for a in args.iter().take(MAX_ARGS) {
            let kept = a.len().min(MAX_ARG_BYTES);
            self.args.push((self.bytes.len(), kept, a.len()));
            self.bytes.extend_from_slice(&a[..kept]);
        }
        Prefixed {
            first,
            end: self.args.len(),
            argc: args.len(),
        }
    }

    /// Forgets every request (none is waiting for its reply); a buffer a
    /// big pipeline grew is given back.
    pub(super) fn clear(&mut self) {
        if self.bytes.capacity() > 1 << 20 {
            *self = ArgPrefixes::default();
        }
        self.bytes.clear();
        self.args.clear();
    }

    fn views(&self, p: Prefixed) -> (Vec<(&[u8], usize)>, usize) {
        let views = self.args[p.first..p.end]
            .iter()
            .map(|&(start, kept, len)| (&self.bytes[start..start + kept], len))
            .collect();
        (views, p.argc)
    }
}

/// One entry's arguments, bounded (see the module docs), from each
/// argument's first bytes and full length (`args`, the first of `argc`).
fn bounded(command: &str, args: &[(&[u8], usize)], argc: usize) -> Vec<Vec<u8>> {
    if REDACTED.contains(&command) {
        return args.iter().take(1).map(|(a, _)| a.to_vec()).collect();
    }
    // A password set live is a secret too: its value is not kept.
    let secret_value = |i: usize| {
        command == "config|set"
            && i >= 3
            && i % 2 == 1
            && SECRET_SETTINGS
                .iter()
                .any(|s| args[i - 1].0.eq_ignore_ascii_case(s.as_bytes()))
    };
    let kept = if argc > MAX_ARGS { MAX_ARGS - 1 } else { argc }.min(args.len());
    let mut out: Vec<Vec<u8>> = args[..kept]
        .iter()
        .enumerate()
        .map(|(i, &(a, len))| {
            if secret_value(i) {
                b"(redacted)".to_vec()
            } else if len > MAX_ARG_BYTES {
                let mut b = a[..MAX_ARG_BYTES.min(a.len())].to_vec();
                b.extend_from_slice(format!("... ({} more bytes)", len - MAX_ARG_BYTES).as_bytes());
                b
            } else {
                a.to_vec()
            }
        })
        .collect();
    if kept < argc {
        out.push(format!("... ({} more arguments)", argc - kept).into_bytes());
    }
    out
}

impl SlowLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs a command (`command`: its table name) that took `micros`, if
    /// that is at least `slower_than` (negative: never); keeps `max_len`
    /// entries.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &self,
        slower_than: i64,
        max_len: usize,
        micros: u64,
        command: &str,
        prefixes: &ArgPrefixes,
        args: Prefixed,
        peer: &str,
        name: &[u8],
    ) {
        if slower_than < 0 || micros < slower_than.unsigned_abs() {
            return;
        }
        let unix_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let entry = Entry {
            id: 0,
            unix_secs,
            micros,
            args: {
                let (views, argc) = prefixes.views(args);
                bounded(command, &views, argc)
            },
            peer: peer.to_string(),
            name: String::from_utf8_lossy(name).into_owned(),
        };
        let mut log = self.lock();
        let id = log.next_id;
        log.next_id += 1;
        log.entries.push_front(Entry { id, ..entry });
        log.entries.truncate(max_len);
    }

    /// SLOWLOG GET: the newest `count` entries (`None`: all).
    pub(super) fn get(&self, count: Option<usize>) -> Reply {
        let log = self.lock();
        let n = count.unwrap_or(usize::MAX).min(log.entries.len());
        Reply::Array(
            log.entries
                .iter()
                .take(n)
                .map(|e| {
                    Reply::Array(vec![
                        Reply::Integer(e.id as i64),
                        Reply::Integer(e.unix_secs as i64),
                        Reply::Integer(e.micros as i64),
                        Reply::Array(e.args.iter().cloned().map(Reply::Bulk).collect()),
                        Reply::Bulk(e.peer.clone().into_bytes()),
                        Reply::Bulk(e.name.clone().into_bytes()),
                    ])
                })
                .collect(),
        )
    }

    /// SLOWLOG LEN.
    pub(super) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// SLOWLOG RESET.
    pub(super) fn reset(&self) {
        self.lock().entries.clear();
    }

    /// Drops the oldest entries past `max_len` (after CONFIG SET
    /// slowlog-max-len).
    pub(super) fn trim(&self, max_len: usize) {
        self.lock().entries.truncate(max_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    /// `SlowLog::record` of `words`, through an `ArgPrefixes` as the
    /// handler does.
    #[allow(clippy::too_many_arguments)]
    fn record(
        log: &SlowLog,
        slower: i64,
        max: usize,
        us: u64,
        cmd: &str,
        words: &[&str],
        peer: &str,
        name: &[u8],
    ) {
        let mut p = ArgPrefixes::default();
        let a = p.push(&args(words));
        log.record(slower, max, us, cmd, &p, a, peer, name);
    }

    fn bounded_of(cmd: &str, a: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut p = ArgPrefixes::default();
        let r = p.push(a);
        let (views, argc) = p.views(r);
        bounded(cmd, &views, argc)
    }

    fn entries(log: &SlowLog) -> Vec<Vec<Reply>> {
        match log.get(None) {
            Reply::Array(v) => v
                .into_iter()
                .map(|e| match e {
                    Reply::Array(f) => f,
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn logs_only_at_or_over_the_threshold_newest_first_bounded_by_max_len() {
        let log = SlowLog::default();
        record(&log, 100, 2, 99, "get", &["get", "a"], "1.2.3.4:5", b"");
        assert_eq!(log.len(), 0);
        record(&log, 100, 2, 100, "get", &["get", "a"], "1.2.3.4:5", b"n");
        record(
            &log,
            100,
            2,
            500,
            "set",
            &["set", "b", "c"],
            "1.2.3.4:5",
            b"",
        );
        record(&log, 100, 2, 700, "del", &["del", "d"], "1.2.3.4:5", b"");
        assert_eq!(log.len(), 2);
        let e = entries(&log);
        assert_eq!(e[0][0], Reply::Integer(2), "ids count every entry");
        assert_eq!(e[0][2], Reply::Integer(700));
        assert_eq!(
            e[0][3],
            Reply::Array(vec![
                Reply::Bulk(b"del".to_vec()),
                Reply::Bulk(b"d".to_vec())
            ])
        );
        assert_eq!(e[1][0], Reply::Integer(1));
        assert_eq!(e[1][4], Reply::Bulk(b"1.2.3.4:5".to_vec()));
        record(&log, -1, 2, 1_000_000, "get", &["get"], "", b"");
        assert_eq!(entries(&log)[0][0], Reply::Integer(2), "negative: off");
        log.reset();
        assert_eq!(log.len(), 0);
        record(&log, 0, 2, 0, "ping", &["ping"], "", b"");
        assert_eq!(entries(&log)[0][0], Reply::Integer(3), "ids survive RESET");
    }

    #[test]
    fn arguments_are_bounded_and_secrets_redacted() {
        let long = "x".repeat(200);
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let mut words = vec!["mset"];
        words.extend(many.iter().map(String::as_str));
        let b = bounded_of("mset", &args(&words));
        assert_eq!(b.len(), MAX_ARGS);
        assert_eq!(b[MAX_ARGS - 1], b"... (10 more arguments)".to_vec());
        let b = bounded_of("get", &args(&["get", &long]));
        assert_eq!(
            b[1],
            format!("{}... (72 more bytes)", "x".repeat(128)).into_bytes()
        );
        assert_eq!(
            bounded_of("auth", &args(&["auth", "secret"])),
            args(&["auth"])
        );
    }
}
