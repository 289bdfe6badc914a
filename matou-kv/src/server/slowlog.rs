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

/// One entry's arguments, bounded (see the module docs).
fn bounded(command: &str, args: &[Vec<u8>]) -> Vec<Vec<u8>> {
    if REDACTED.contains(&command) {
        return args.iter().take(1).cloned().collect();
    }
    // A password set live is a secret too: its value is not kept.
    let secret_value = |i: usize| {
        command == "config|set"
            && i >= 3
            && i % 2 == 1
            && SECRET_SETTINGS
                .iter()
                .any(|s| args[i - 1].eq_ignore_ascii_case(s.as_bytes()))
    };
    let kept = if args.len() > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        args.len()
    };
    let mut out: Vec<Vec<u8>> = args[..kept]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if secret_value(i) {
                b"(redacted)".to_vec()
            } else if a.len() > MAX_ARG_BYTES {
                let mut b = a[..MAX_ARG_BYTES].to_vec();
                b.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes(),
                );
                b
            } else {
                a.clone()
            }
        })
        .collect();
    if kept < args.len() {
        out.push(format!("... ({} more arguments)", args.len() - kept).into_bytes());
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
        args: &[Vec<u8>],
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
            args: bounded(command, args),
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
        log.record(100, 2, 99, "get", &args(&["get", "a"]), "1.2.3.4:5", b"");
        assert_eq!(log.len(), 0);
        log.record(100, 2, 100, "get", &args(&["get", "a"]), "1.2.3.4:5", b"n");
        log.record(
            100,
            2,
            500,
            "set",
            &args(&["set", "b", "c"]),
            "1.2.3.4:5",
            b"",
        );
        log.record(100, 2, 700, "del", &args(&["del", "d"]), "1.2.3.4:5", b"");
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
        log.record(-1, 2, 1_000_000, "get", &args(&["get"]), "", b"");
        assert_eq!(entries(&log)[0][0], Reply::Integer(2), "negative: off");
        log.reset();
        assert_eq!(log.len(), 0);
        log.record(0, 2, 0, "ping", &args(&["ping"]), "", b"");
        assert_eq!(entries(&log)[0][0], Reply::Integer(3), "ids survive RESET");
    }

    #[test]
    fn arguments_are_bounded_and_secrets_redacted() {
        let long = "x".repeat(200);
        let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
        let mut words = vec!["mset"];
        words.extend(many.iter().map(String::as_str));
        let b = bounded("mset", &args(&words));
        assert_eq!(b.len(), MAX_ARGS);
        assert_eq!(b[MAX_ARGS - 1], b"... (10 more arguments)".to_vec());
        let b = bounded("get", &args(&["get", &long]));
        assert_eq!(
            b[1],
            format!("{}... (72 more bytes)", "x".repeat(128)).into_bytes()
        );
        assert_eq!(bounded("auth", &args(&["auth", "secret"])), args(&["auth"]));
    }
}
