//! Three-way routing by command name alone, before any parse: a server
//! answers [`Kind::Connection`] itself, sends the other two to the task
//! that owns the [`crate::store::Store`] (and logs what [`Kind::Write`]
//! changes).

use super::{Group, TABLE};

/// Where a request goes, judged by its command name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Reads the store, or needs no state at all (PING, ECHO), or is
    /// unknown or empty: [`super::execute`] answers it, the error
    /// included.
    Read,
    /// May change the store: [`super::execute`] answers it and returns
    /// what to log.
    Write,
    /// Connection state or server introspection (AUTH, SELECT, CLIENT,
    /// QUIT, INFO, CONFIG, COMMAND, SHUTDOWN, HELLO...): the server's.
    Connection,
}

/// Commands the server answers, whether or not the command table has them.
const CONNECTION: &[&str] = &[
    "auth", "select", "client", "quit", "info", "config", "command", "shutdown", "hello",
];

/// The [`Kind`] of a request, by its command name (case-insensitive).
/// Unknown commands and the empty request are [`Kind::Read`], so that
/// [`super::execute`] gives Redis's error for them.
pub fn kind(args: &[Vec<u8>]) -> Kind {
    let Some(name) = args.first() else {
        return Kind::Read;
    };
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if is("ping") || is("echo") {
        return Kind::Read;
    }
    if CONNECTION.iter().any(|n| is(n)) {
        return Kind::Connection;
    }
    match TABLE.iter().find(|s| is(s.name)).map(|s| s.group) {
        Some(Group::Write) => Kind::Write,
        Some(Group::Conn) => Kind::Connection,
        Some(Group::Read) | None => Kind::Read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::execute;
    use crate::resp::Reply;
    use crate::store::Store;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn classifies_by_name_case_insensitively() {
        for w in [
            "get", "GET", "strlen", "mget", "exists", "ttl", "pttl", "type", "keys", "scan",
            "dbsize", "ping", "PiNg", "echo",
        ] {
            assert_eq!(kind(&args(&[w, "x"])), Kind::Read, "{w}");
        }
        for w in [
            "set", "SET", "getset", "setnx", "setex", "del", "incr", "decr", "incrby", "decrby",
            "append", "mset", "expire", "pexpire", "persist", "flushdb", "FlushAll",
        ] {
            assert_eq!(kind(&args(&[w, "x"])), Kind::Write, "{w}");
        }
        for w in [
            "auth", "SELECT", "client", "quit", "info", "config", "command", "shutdown", "HELLO",
        ] {
            assert_eq!(kind(&args(&[w])), Kind::Connection, "{w}");
        }
        assert_eq!(kind(&args(&["nosuch", "a"])), Kind::Read);
        assert_eq!(kind(&[]), Kind::Read);
    }

    #[test]
    fn every_read_or_write_kind_is_answered_by_execute() {
        let mut st = Store::new();
        let (r, rec) = execute(&mut st, &args(&["PING"]), 0);
        assert_eq!(r, Reply::Simple("PONG".into()));
        assert!(rec.is_none());
        let (r, _) = execute(&mut st, &args(&["echo", "hi"]), 0);
        assert_eq!(r, Reply::Bulk(b"hi".to_vec()));
        let (r, _) = execute(&mut st, &args(&["foo", "a", "b"]), 0);
        assert_eq!(
            r,
            Reply::err("ERR unknown command 'foo', with args beginning with: 'a' 'b' ")
        );
        let (r, rec) = execute(&mut st, &args(&["set", "k", "v"]), 0);
        assert_eq!(r, Reply::ok());
        assert!(rec.is_some());
    }
}
