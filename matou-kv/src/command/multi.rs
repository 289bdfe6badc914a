//! Transactions, the connection's half: MULTI, EXEC, DISCARD, WATCH,
//! UNWATCH with Redis 7's rules, as a state machine ([`Multi`]) that the
//! connection consults before it parses a request.
//!
//! Invariants:
//! - **Queue-time checks abort the whole transaction.** Inside MULTI a
//!   request that fails the command-table checks (unknown command or
//!   subcommand, wrong arity) or the authentication gate gets its error at
//!   once and marks the transaction failed: its EXEC answers
//!   [`EXECABORT`] and runs nothing. A request that passes them is answered
//!   `+QUEUED`; a typed-parse error (`ERR syntax error`...) is kept and
//!   becomes that command's slot in EXEC's reply, as Redis reports it
//!   then.
//! - **EXEC runs in one piece on the storage task** (see
//!   `server::storage`): the connection hands it every queued data
//!   command at once ([`Exec`]), the storage task runs them with nothing in
//!   between and logs them as one record, so no client and no crash ever
//!   sees half of a transaction.
//! - **WATCH state is filled in order.** The versions of watched keys can
//!   only be read on the storage task, and a WATCH and its EXEC may sit in
//!   the same pipeline. So WATCH sends the keys with a [`WatchCell`] that
//!   the storage task fills when it reaches them, and EXEC sends the same
//!   cell; both travel through the one ordered job queue, so EXEC always
//!   finds what its WATCHes recorded. UNWATCH, DISCARD and EXEC start a
//!   fresh cell: whatever the storage later writes in the old one is
//!   dropped with it, so the reset is ordered too.

use super::{lookup, Command, Conn, Read, Write, NOAUTH};
use crate::resp::Reply;
use std::sync::{Arc, Mutex};

/// EXEC of a transaction that had a queue-time error.
pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Commands refused inside MULTI (and failing the transaction), as Redis
/// 7.0 flags them `no-multi`.
const NO_MULTI: &[&str] = &["shutdown", "save"];

/// What the storage task recorded for one watched key, at WATCH time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    /// Its database.
    pub db: usize,
    /// The key.
    pub key: Vec<u8>,
    /// The version the storage task's table gave it.
    pub version: u64,
    /// Whether it was present but already expired: Redis does not count
    /// its later removal as a change.
    pub expired: bool,
    /// Whether it was live (present, not expired): an absent one changes
    /// only by a change of its own, not by a stale key it meets later
    /// (SWAPDB with a database holding it expired).
    pub live: bool,
}

/// The watched keys of one connection, shared with the storage task (which
/// alone fills it) until the next EXEC, DISCARD or UNWATCH.
pub type WatchCell = Arc<Mutex<Vec<Watched>>>;

/// One queued command of a transaction, in queue order.
#[derive(Debug)]
pub enum Queued {
    /// A read, run by the storage task.
    Read(Read),
    /// A write, run and logged by the storage task.
    Write(Write),
    /// INFO: the storage task's figures, completed by the connection.
    Info(Vec<Vec<u8>>),
    /// SELECT: switches the database of the commands after it (and of the
    /// connection), on the storage task.
    Select(i64),
    /// A connection command, run by the connection once EXEC's data part
    /// is done (so an aborted EXEC changes nothing there either).
    Conn(Conn),
    /// A reply known at queue time (a typed-parse error, UNWATCH's `+OK`).
    Ready(Reply),
}

/// An EXEC to run: the queued commands and the cell of the WATCHes.
#[derive(Debug)]
pub struct Exec {
    /// The commands, in order.
    pub queued: Vec<Queued>,
    /// What the storage task must check before running anything.
    pub watched: WatchCell,
}

/// What the connection does with a request, per [`Multi::intercept`].
#[derive(Debug)]
pub enum Intercept {
    /// Not a transaction matter: parse and run it as usual.
    Pass,
    /// Answer this (`+OK`, `+QUEUED`, an error...).
    Reply(Reply),
    /// WATCH: have the storage task record these keys' versions in the
    /// cell, then answer `+OK`.
    Watch(Vec<Vec<u8>>, WatchCell),
    /// EXEC: have the storage task run it; a nil reply if a watched key
    /// changed.
    Exec(Exec),
}

/// One connection's transaction state.
#[derive(Debug, Default)]
pub struct Multi {
    /// The queue, while in MULTI.
    queue: Option<Vec<Queued>>,
    /// A queue-time error happened since MULTI.
    failed: bool,
    watched: WatchCell,
}

fn is(name: &[u8], what: &str) -> bool {
    name.eq_ignore_ascii_case(what.as_bytes())
}

fn arity_error(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

impl Multi {
    /// No transaction, nothing watched.
    pub fn new() -> Multi {
        Multi::default()
    }

    /// Whether MULTI is open.
    pub fn in_multi(&self) -> bool {
        self.queue.is_some()
    }

    /// The commands queued, while MULTI is open (CLIENT LIST's `multi`).
    pub fn queued(&self) -> Option<usize> {
        self.queue.as_ref().map(Vec::len)
    }

    fn unwatch(&mut self) {
        self.watched = WatchCell::default();
    }

    /// Decides what happens to `args`: the transaction commands
    /// themselves, and every command while MULTI is open, are handled
    /// here; the rest goes on ([`Intercept::Pass`]). `authenticated` is the
    /// connection's state at this point of the pipeline.
    pub fn intercept(&mut self, args: &[Vec<u8>], authenticated: bool) -> Intercept {
        let Some(name) = args.first() else {
            return Intercept::Pass;
        };
        let own = ["multi", "exec", "discard", "watch", "unwatch"]
            .into_iter()
            .find(|n| is(name, n));
        let Some(own) = own else {
            return match self.queue.is_some() {
                true => Intercept::Reply(self.enqueue(args, authenticated)),
                false => Intercept::Pass,
            };
        };
        let arity_ok = if own == "watch" {
            args.len() >= 2
        } else {
            args.len() == 1
        };
        let refusal = if !arity_ok {
            Some(arity_error(own))
        } else if !authenticated {
            Some(Reply::err(NOAUTH))
        } else {
            None
        };
        if let Some(e) = refusal {
            self.failed |= self.queue.is_some();
            return Intercept::Reply(e);
        }
        match (own, self.queue.is_some()) {
            ("multi", true) => {
                // Redis rejects it without failing the transaction.
                Intercept::Reply(Reply::err("ERR MULTI calls can not be nested"))
            }
            ("multi", false) => {
                self.queue = Some(Vec::new());
                self.failed = false;
                Intercept::Reply(Reply::ok())
            }
            // Like a nested MULTI: refused, the transaction goes on (the
            // Redis suite's "WATCH inside MULTI is not allowed").
            ("watch", true) => {
                Intercept::Reply(Reply::err("ERR WATCH inside MULTI is not allowed"))
            }
            ("watch", false) => Intercept::Watch(args[1..].to_vec(), self.watched.clone()),
            ("unwatch", true) => Intercept::Reply(self.push(Queued::Ready(Reply::ok()))),
            ("unwatch", false) => {
                self.unwatch();
                Intercept::Reply(Reply::ok())
            }
            ("discard", true) => {
                self.queue = None;
                self.unwatch();
                Intercept::Reply(Reply::ok())
            }
            ("exec", true) => {
                let queued = self.queue.take().unwrap_or_default();
                let watched = std::mem::take(&mut self.watched);
                if self.failed {
                    Intercept::Reply(Reply::err(EXECABORT))
                } else {
                    Intercept::Exec(Exec { queued, watched })
                }
            }
            ("discard", false) => Intercept::Reply(Reply::err("ERR DISCARD without MULTI")),
            _ => Intercept::Reply(Reply::err("ERR EXEC without MULTI")),
        }
    }

    /// A command refused before it could be queued (`-OOM`): answered
    /// `r`, and an open MULTI is failed (its EXEC aborts), as Redis's
    /// `rejectCommand` does.
    pub fn refuse(&mut self, r: Reply) -> Reply {
        self.failed |= self.queue.is_some();
        r
    }

    fn push(&mut self, q: Queued) -> Reply {
        if let Some(queue) = &mut self.queue {
            queue.push(q);
        }
        Reply::Simple("QUEUED".into())
    }

    /// Queues a command inside MULTI, or fails the transaction.
    fn enqueue(&mut self, args: &[Vec<u8>], authenticated: bool) -> Reply {
        let spec = match lookup(args) {
            Ok(spec) => spec,
            Err(e) => {
                self.failed = true;
                return e;
            }
        };
        if !authenticated && !spec.no_auth() {
            self.failed = true;
            return Reply::err(NOAUTH);
        }
        // Redis's CMD_NO_MULTI among matou-kv's commands.
        if NO_MULTI.contains(&spec.name) {
            self.failed = true;
            return Reply::err("ERR Command not allowed inside a transaction");
        }
        let q = match super::parse(args, authenticated) {
            Ok(Command::Read(r)) => Queued::Read(r),
            Ok(Command::Write(w)) => Queued::Write(w),
            Ok(Command::Conn(Conn::Info(sections))) => Queued::Info(sections),
            Ok(Command::Conn(Conn::Select(db))) => Queued::Select(db),
            Ok(Command::Conn(c)) => Queued::Conn(c),
            Err(e) => Queued::Ready(e),
        };
        self.push(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &str) -> Vec<Vec<u8>> {
        words
            .split_whitespace()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    fn reply(m: &mut Multi, words: &str) -> Reply {
        match m.intercept(&args(words), true) {
            Intercept::Reply(r) => r,
            other => panic!("{words}: {other:?}"),
        }
    }

    #[test]
    fn queue_time_errors_abort_exec_and_parse_errors_do_not() {
        let mut m = Multi::new();
        assert!(matches!(m.intercept(&args("get k"), true), Intercept::Pass));
        assert_eq!(reply(&mut m, "multi"), Reply::ok());
        assert_eq!(reply(&mut m, "set k v"), Reply::Simple("QUEUED".into()));
        assert_eq!(
            reply(&mut m, "set k v ex nope"),
            Reply::Simple("QUEUED".into())
        );
        match m.intercept(&args("exec"), true) {
            Intercept::Exec(e) => {
                assert_eq!(e.queued.len(), 2);
                assert!(matches!(e.queued[1], Queued::Ready(Reply::Error(_))));
            }
            other => panic!("{other:?}"),
        }
        assert!(!m.in_multi());

        assert_eq!(reply(&mut m, "multi"), Reply::ok());
        assert_eq!(
            reply(&mut m, "multi"),
            Reply::err("ERR MULTI calls can not be nested")
        );
        assert_eq!(reply(&mut m, "set k v"), Reply::Simple("QUEUED".into()));
        assert!(matches!(reply(&mut m, "get"), Reply::Error(_)));
        assert_eq!(reply(&mut m, "exec"), Reply::err(EXECABORT));

        assert_eq!(reply(&mut m, "multi"), Reply::ok());
        assert!(matches!(reply(&mut m, "nosuch x"), Reply::Error(_)));
        assert_eq!(reply(&mut m, "exec"), Reply::err(EXECABORT));
        assert_eq!(reply(&mut m, "multi"), Reply::ok());
        assert_eq!(
            reply(&mut m, "shutdown"),
            Reply::err("ERR Command not allowed inside a transaction")
        );
        assert_eq!(reply(&mut m, "exec"), Reply::err(EXECABORT));
        assert_eq!(reply(&mut m, "multi"), Reply::ok());
        assert!(matches!(reply(&mut m, "watch k"), Reply::Error(_)));
        assert!(matches!(
            m.intercept(&args("exec"), true),
            Intercept::Exec(_)
        ));
    }

    #[test]
    fn without_multi_and_auth() {
        let mut m = Multi::new();
        assert_eq!(reply(&mut m, "exec"), Reply::err("ERR EXEC without MULTI"));
        assert_eq!(
            reply(&mut m, "discard"),
            Reply::err("ERR DISCARD without MULTI")
        );
        assert_eq!(
            reply(&mut m, "watch"),
            Reply::err("ERR wrong number of arguments for 'watch' command")
        );
        match m.intercept(&args("multi"), false) {
            Intercept::Reply(r) => assert_eq!(r, Reply::err(NOAUTH)),
            other => panic!("{other:?}"),
        }
        assert!(!m.in_multi());
        assert_eq!(reply(&mut m, "multi"), Reply::ok());
        assert_eq!(reply(&mut m, "discard"), Reply::ok());
        assert_eq!(reply(&mut m, "exec"), Reply::err("ERR EXEC without MULTI"));
    }

    #[test]
    fn watch_cells_are_reset_by_unwatch_discard_and_exec() {
        let mut m = Multi::new();
        let Intercept::Watch(keys, cell) = m.intercept(&args("watch a b"), true) else {
            panic!()
        };
        assert_eq!(keys, args("a b"));
        assert_eq!(reply(&mut m, "multi"), Reply::ok());
        let Intercept::Exec(e) = m.intercept(&args("exec"), true) else {
            panic!()
        };
        assert!(
            Arc::ptr_eq(&cell, &e.watched),
            "EXEC checks what WATCH filled"
        );
        let Intercept::Watch(_, again) = m.intercept(&args("watch a"), true) else {
            panic!()
        };
        assert!(!Arc::ptr_eq(&cell, &again), "EXEC unwatches");
        assert_eq!(reply(&mut m, "unwatch"), Reply::ok());
        let Intercept::Watch(_, third) = m.intercept(&args("watch a"), true) else {
            panic!()
        };
        assert!(!Arc::ptr_eq(&again, &third), "UNWATCH unwatches");
    }
}
