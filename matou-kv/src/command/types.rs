//! Type checks: which keys each string command reads as a string, so that
//! a key holding a hash, list or set makes it answer WRONGTYPE (and change
//! nothing), as Redis's `checkType` does, before the command runs.
//!
//! Invariant: a string command that gets past [`wrong_type_read`] /
//! [`wrong_type_write`] finds only strings (or nothing) at the keys it
//! reads as strings, so the string executors never meet another type.
//! Commands on any type (DEL, EXISTS, TYPE, EXPIRE, RENAME, COPY, MOVE...)
//! and those that overwrite whatever is there (SET without GET, MSET) are
//! not checked; MGET answers nil for a non-string, as Redis does.

use super::{Read, SetReply, Write};
use crate::store::Store;

/// Whether `key` is live at `now` and holds something other than a string.
fn not_str(store: &Store, key: &[u8], now: u64) -> bool {
    store.value(key, now).is_some_and(|v| v.as_str().is_none())
}

/// Whether this read must answer WRONGTYPE.
pub(super) fn wrong_type_read(cmd: &Read, store: &Store, now: u64) -> bool {
    match cmd {
        Read::Get(k)
        | Read::Strlen(k)
        | Read::GetRange { key: k, .. }
        | Read::GetBit { key: k, .. }
        | Read::BitCount { key: k, .. }
        | Read::BitPos { key: k, .. }
        | Read::BitFieldRo { key: k, .. } => not_str(store, k, now),
        Read::Lcs { keys, .. } => not_str(store, &keys.0, now) || not_str(store, &keys.1, now),
        _ => false,
    }
}

/// Whether this write must answer WRONGTYPE.
pub(super) fn wrong_type_write(cmd: &Write, store: &Store, now: u64) -> bool {
    match cmd {
        Write::Set { key, reply, .. } => *reply == SetReply::Old && not_str(store, key, now),
        Write::GetDel(k)
        | Write::IncrBy { key: k, .. }
        | Write::Append { key: k, .. }
        | Write::GetEx { key: k, .. }
        | Write::SetRange { key: k, .. }
        | Write::IncrByFloat { key: k, .. }
        | Write::SetBit { key: k, .. }
        | Write::BitField { key: k, .. } => not_str(store, k, now),
        Write::BitOp { keys, .. } => keys.iter().any(|k| not_str(store, k, now)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::execute;
    use crate::record::LogRecord;
    use crate::resp::Reply;
    use crate::store::{Store, Value};

    fn run(st: &mut Store, args: &[&str]) -> (Reply, Option<LogRecord>) {
        let a: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
        execute(st, &a, 1000)
    }

    fn wrongtype(r: &Reply) -> bool {
        matches!(r, Reply::Error(e) if e.starts_with("WRONGTYPE"))
    }

    fn with_aggregates() -> Store {
        let mut st = Store::new();
        let h = [(b"f".to_vec(), b"v".to_vec())].into_iter().collect();
        st.set_value(b"h", Value::Hash(h), None);
        st.set_value(
            b"l",
            Value::List([b"a".to_vec()].into_iter().collect()),
            None,
        );
        st.set_value(
            b"s",
            Value::Set([b"1".to_vec()].into_iter().collect()),
            None,
        );
        st.set(b"str", b"x".to_vec(), None);
        st
    }

    #[test]
    fn string_commands_on_other_types_answer_wrongtype_and_change_nothing() {
        let mut st = with_aggregates();
        let cmds: &[&[&str]] = &[
            &["get", "h"],
            &["strlen", "l"],
            &["getrange", "s", "0", "1"],
            &["getbit", "h", "0"],
            &["bitcount", "l"],
            &["bitpos", "s", "1"],
            &["lcs", "str", "h"],
            &["set", "h", "v", "get"],
            &["getdel", "l"],
            &["incr", "s"],
            &["incrbyfloat", "s", "1.5"],
            &["append", "h", "x"],
            &["getex", "l", "px", "100"],
            &["setrange", "h", "0", "x"],
            &["setbit", "l", "0", "1"],
            &["bitop", "and", "dest", "str", "s"],
        ];
        for c in cmds {
            let (r, rec) = run(&mut st, c);
            assert!(wrongtype(&r), "{c:?}: {r:?}");
            assert_eq!(rec, None, "{c:?} logged");
        }
        assert_eq!(st, with_aggregates(), "nothing changed");
    }

    #[test]
    fn commands_on_any_type_work_on_aggregates() {
        let mut st = with_aggregates();
        let t = |st: &mut Store, k: &str| run(st, &["type", k]).0;
        let simple = |s: &str| Reply::Simple(s.to_string().into());
        assert_eq!(t(&mut st, "h"), simple("hash"));
        assert_eq!(t(&mut st, "l"), simple("list"));
        assert_eq!(t(&mut st, "s"), simple("set"));
        assert_eq!(t(&mut st, "str"), simple("string"));
        assert_eq!(t(&mut st, "nope"), simple("none"));
        let enc = |st: &mut Store, k: &str| run(st, &["object", "encoding", k]).0;
        assert_eq!(enc(&mut st, "h"), Reply::Bulk(b"listpack".to_vec()));
        assert_eq!(enc(&mut st, "l"), Reply::Bulk(b"quicklist".to_vec()));
        assert_eq!(enc(&mut st, "s"), Reply::Bulk(b"intset".to_vec()));
        assert_eq!(
            run(&mut st, &["mget", "h", "str"]).0,
            Reply::Array(vec![Reply::Nil, Reply::Bulk(b"x".to_vec())])
        );
        assert!(matches!(run(&mut st, &["memory", "usage", "h"]).0, Reply::Integer(n) if n > 2));
        // RENAME and COPY move the value, whatever its type, and log it.
        let before = st.value(b"l", 0).cloned();
        let (r, rec) = run(&mut st, &["rename", "l", "l2"]);
        assert_eq!(r, Reply::ok());
        assert_eq!(st.value(b"l2", 0).cloned(), before);
        let mut replayed = with_aggregates();
        rec.unwrap().apply(&mut replayed);
        let (r, rec) = run(&mut st, &["copy", "h", "h2"]);
        assert_eq!(r, Reply::Integer(1));
        rec.unwrap().apply(&mut replayed);
        assert_eq!(replayed, st, "the records replay RENAME and COPY");
        // SET overwrites another type; EXPIRE and DEL take any.
        assert_eq!(run(&mut st, &["set", "s", "now a string"]).0, Reply::ok());
        assert_eq!(st.get(b"s", 0), Some(&b"now a string"[..]));
        assert_eq!(run(&mut st, &["expire", "h", "100"]).0, Reply::Integer(1));
        assert_eq!(run(&mut st, &["del", "h", "h2"]).0, Reply::Integer(2));
    }

    #[test]
    fn scan_type_filters_by_type() {
        let mut st = with_aggregates();
        let scan =
            |st: &mut Store, t: &str| match run(st, &["scan", "0", "count", "100", "type", t]).0 {
                Reply::Array(parts) => parts[1].clone(),
                other => panic!("{other:?}"),
            };
        let one = |k: &str| Reply::Array(vec![Reply::Bulk(k.as_bytes().to_vec())]);
        assert_eq!(scan(&mut st, "hash"), one("h"));
        assert_eq!(scan(&mut st, "LIST"), one("l"));
        assert_eq!(scan(&mut st, "set"), one("s"));
        assert_eq!(scan(&mut st, "string"), one("str"));
        assert_eq!(scan(&mut st, "zset"), Reply::Array(vec![]));
    }
}
