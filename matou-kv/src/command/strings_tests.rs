//! The string and key commands of `strings`, against what Redis 7.0
//! answers (the cases of its `type/string`, `keyspace`, `expire` and
//! `bitops` units), and their records.

use super::*;
use crate::resp::Reply;
use crate::store::Store;

const T0: u64 = 1_700_000_000_000;

fn args(cmd: &[&str]) -> Vec<Vec<u8>> {
    cmd.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn r(st: &mut Store, cmd: &[&str]) -> Reply {
    execute(st, &args(cmd), T0).0
}

fn rec(st: &mut Store, cmd: &[&str]) -> Option<LogRecord> {
    execute(st, &args(cmd), T0).1
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn err(st: &mut Store, cmd: &[&str]) -> String {
    match r(st, cmd) {
        Reply::Error(e) => e.into_owned(),
        other => panic!("{cmd:?}: expected an error, got {other:?}"),
    }
}

#[test]
fn getrange_clamps_like_redis() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["GETRANGE", "none", "0", "-1"]), bulk(""));
    r(&mut st, &["SET", "k", "Hello World"]);
    for (s, e, want) in [
        ("0", "3", "Hell"),
        ("0", "-1", "Hello World"),
        ("-4", "-1", "orld"),
        ("5", "3", ""),
        ("5", "5000", " World"),
        ("-5000", "10000", "Hello World"),
        ("-1", "-5", ""),
        ("0", "4294967297", "Hello World"),
    ] {
        assert_eq!(r(&mut st, &["GETRANGE", "k", s, e]), bulk(want), "{s} {e}");
    }
    assert_eq!(r(&mut st, &["SUBSTR", "k", "-3", "-1"]), bulk("rld"));
    assert_eq!(
        err(&mut st, &["GETRANGE", "k", "x", "1"]),
        "ERR value is not an integer or out of range"
    );
}

#[test]
fn setrange_pads_keeps_the_expiry_and_refuses_past_the_limit() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["SETRANGE", "k", "0", ""]), Reply::Integer(0));
    assert!(!st.contains(b"k", T0), "an empty SETRANGE creates nothing");
    assert_eq!(
        r(&mut st, &["SETRANGE", "k", "1", "foo"]),
        Reply::Integer(4)
    );
    assert_eq!(r(&mut st, &["GET", "k"]), Reply::Bulk(b"\0foo".to_vec()));
    r(&mut st, &["SET", "k", "foo", "PX", "5000"]);
    assert_eq!(
        r(&mut st, &["SETRANGE", "k", "4", "bar"]),
        Reply::Integer(7)
    );
    assert_eq!(r(&mut st, &["GET", "k"]), Reply::Bulk(b"foo\0bar".to_vec()));
    assert_eq!(r(&mut st, &["PTTL", "k"]), Reply::Integer(5000));
    assert_eq!(
        rec(&mut st, &["SETRANGE", "k", "0", "b"]),
        Some(LogRecord::SetRange {
            key: b"k".to_vec(),
            offset: 0,
            bytes: b"b".to_vec(),
        }),
        "the bytes written, not the whole value"
    );
    assert_eq!(r(&mut st, &["GET", "k"]), Reply::Bulk(b"boo\0bar".to_vec()));
    assert_eq!(r(&mut st, &["PTTL", "k"]), Reply::Integer(5000));
    assert_eq!(r(&mut st, &["SETRANGE", "k", "1", ""]), Reply::Integer(7));
    assert_eq!(
        err(&mut st, &["SETRANGE", "k", "-1", "world"]),
        "ERR offset is out of range"
    );
    let past = (512 * 1024 * 1024 - 4).to_string();
    assert_eq!(
        err(&mut st, &["SETRANGE", "k", &past, "world"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
}

#[test]
fn incrbyfloat_formats_and_refuses_like_redis() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["INCRBYFLOAT", "f", "1"]), bulk("1"));
    assert_eq!(r(&mut st, &["INCRBYFLOAT", "f", "0.25"]), bulk("1.25"));
    r(&mut st, &["SET", "f", "10.5", "EX", "100"]);
    assert_eq!(r(&mut st, &["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
    assert_eq!(
        r(&mut st, &["TTL", "f"]),
        Reply::Integer(100),
        "keeps the TTL"
    );
    r(&mut st, &["SET", "big", "17179869184"]);
    assert_eq!(
        r(&mut st, &["INCRBYFLOAT", "big", "1.5"]),
        bulk("17179869185.5")
    );
    r(&mut st, &["SET", "z", "1"]);
    assert_eq!(r(&mut st, &["INCRBYFLOAT", "z", "-1"]), bulk("0"), "no -0");
    r(&mut st, &["SET", "s", " 11"]);
    assert_eq!(
        err(&mut st, &["INCRBYFLOAT", "s", "1"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut st, &["INCRBYFLOAT", "f", "x"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        err(&mut st, &["INCRBYFLOAT", "f", "+inf"]),
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(
        r(&mut st, &["GET", "f"]),
        bulk("10.6"),
        "errors change nothing"
    );
}

#[test]
fn getex_sets_clears_or_keeps_the_expiry() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["GETEX", "none", "EX", "10"]), Reply::Nil);
    r(&mut st, &["SET", "k", "v"]);
    assert_eq!(r(&mut st, &["GETEX", "k"]), bulk("v"));
    assert_eq!(rec(&mut st, &["GETEX", "k"]), None);
    assert_eq!(
        rec(&mut st, &["GETEX", "k", "PX", "10000"]),
        Some(LogRecord::PExpireAt {
            key: b"k".to_vec(),
            at_ms: T0 + 10_000
        })
    );
    assert_eq!(
        rec(&mut st, &["GETEX", "k", "PERSIST"]),
        Some(LogRecord::Persist { key: b"k".to_vec() })
    );
    assert_eq!(r(&mut st, &["TTL", "k"]), Reply::Integer(-1));
    assert_eq!(rec(&mut st, &["GETEX", "k", "PERSIST"]), None);
    assert_eq!(r(&mut st, &["GETEX", "k", "EXAT", "1"]), bulk("v"));
    assert!(!st.contains(b"k", T0), "an expiry in the past deletes");
    assert_eq!(err(&mut st, &["GETEX", "k", "bad"]), "ERR syntax error");
    assert_eq!(
        err(&mut st, &["GETEX", "k", "EX", "10", "PERSIST"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(&mut st, &["GETEX", "k", "EX", "10", "PX", "10"]),
        "ERR syntax error"
    );
    r(&mut st, &["SET", "k", "v"]);
    assert_eq!(
        r(&mut st, &["GETEX", "k", "EX", "10", "EX", "20"]),
        bulk("v")
    );
    assert_eq!(
        r(&mut st, &["TTL", "k"]),
        Reply::Integer(20),
        "the last one wins"
    );
    assert_eq!(
        err(&mut st, &["GETEX", "k", "EX", "0"]),
        "ERR invalid expire time in 'getex' command"
    );
}

#[test]
fn rename_moves_value_and_ttl_in_one_record() {
    let mut st = Store::new();
    assert_eq!(err(&mut st, &["RENAME", "none", "x"]), "ERR no such key");
    assert_eq!(err(&mut st, &["RENAME", "none", "none"]), "ERR no such key");
    r(&mut st, &["SET", "a", "1", "PX", "700"]);
    assert_eq!(r(&mut st, &["RENAME", "a", "a"]), Reply::ok());
    assert_eq!(r(&mut st, &["RENAMENX", "a", "a"]), Reply::Integer(0));
    assert_eq!(
        rec(&mut st, &["RENAME", "a", "b"]),
        Some(LogRecord::Multi(vec![
            LogRecord::Del {
                keys: vec![b"a".to_vec()]
            },
            LogRecord::Set {
                key: b"b".to_vec(),
                value: b"1".to_vec(),
                expire_at_ms: Some(T0 + 700),
            },
        ]))
    );
    assert!(!st.contains(b"a", T0));
    assert_eq!(r(&mut st, &["PTTL", "b"]), Reply::Integer(700));
    r(&mut st, &["SET", "c", "3"]);
    assert_eq!(r(&mut st, &["RENAMENX", "b", "c"]), Reply::Integer(0));
    assert_eq!(r(&mut st, &["GET", "c"]), bulk("3"));
    assert_eq!(r(&mut st, &["RENAMENX", "b", "d"]), Reply::Integer(1));
    assert_eq!(r(&mut st, &["RENAME", "d", "c"]), Reply::ok());
    assert_eq!(r(&mut st, &["GET", "c"]), bulk("1"));
}

#[test]
fn copy_keeps_the_source_and_obeys_replace() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["COPY", "none", "x"]), Reply::Integer(0));
    r(&mut st, &["SET", "a", "v", "EX", "100"]);
    assert_eq!(
        err(&mut st, &["COPY", "a", "a"]),
        "ERR source and destination objects are the same"
    );
    assert_eq!(r(&mut st, &["COPY", "a", "b"]), Reply::Integer(1));
    assert_eq!(r(&mut st, &["TTL", "b"]), Reply::Integer(100));
    r(&mut st, &["SET", "b", "other"]);
    assert_eq!(r(&mut st, &["COPY", "a", "b"]), Reply::Integer(0));
    assert_eq!(r(&mut st, &["GET", "b"]), bulk("other"));
    assert_eq!(
        r(&mut st, &["COPY", "a", "b", "REPLACE"]),
        Reply::Integer(1)
    );
    assert_eq!(r(&mut st, &["GET", "b"]), bulk("v"));
    assert_eq!(r(&mut st, &["GET", "a"]), bulk("v"));
    assert_eq!(
        err(&mut st, &["COPY", "a", "b", "DB", "notanumber"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(err(&mut st, &["COPY", "a", "b", "FOO"]), "ERR syntax error");
}

#[test]
fn key_reads_randomkey_touch_expiretime_unlink() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["RANDOMKEY"]), Reply::Nil);
    r(&mut st, &["SET", "a", "1"]);
    r(&mut st, &["SET", "gone", "1", "PX", "1"]);
    for _ in 0..20 {
        // Only the live key, whatever slot the pick starts from.
        assert_eq!(execute(&mut st, &args(&["RANDOMKEY"]), T0 + 5).0, bulk("a"));
    }
    r(
        &mut st,
        &["SET", "b", "2", "PXAT", &(T0 + 1500).to_string()],
    );
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        if let Reply::Bulk(k) = r(&mut st, &["RANDOMKEY"]) {
            seen.insert(k);
        }
    }
    assert!(
        seen.contains(&b"a"[..]) && seen.contains(&b"b"[..]),
        "random"
    );
    assert_eq!(
        r(&mut st, &["TOUCH", "a", "b", "none", "a"]),
        Reply::Integer(3)
    );
    assert_eq!(
        r(&mut st, &["PEXPIRETIME", "b"]),
        Reply::Integer((T0 + 1500) as i64)
    );
    assert_eq!(
        r(&mut st, &["EXPIRETIME", "b"]),
        Reply::Integer((T0 / 1000 + 2) as i64)
    );
    assert_eq!(r(&mut st, &["EXPIRETIME", "a"]), Reply::Integer(-1));
    assert_eq!(r(&mut st, &["EXPIRETIME", "none"]), Reply::Integer(-2));
    assert_eq!(r(&mut st, &["UNLINK", "a", "b", "none"]), Reply::Integer(2));
    assert_eq!(r(&mut st, &["WAIT", "0", "0"]), Reply::Integer(0));
    assert_eq!(
        err(&mut st, &["WAIT", "0", "-1"]),
        "ERR timeout is negative"
    );
    let Reply::Array(t) = r(&mut st, &["TIME"]) else {
        panic!("TIME is an array")
    };
    let Reply::Bulk(secs) = &t[0] else { panic!() };
    let secs: u64 = String::from_utf8_lossy(secs).parse().unwrap();
    assert!(secs > 1_700_000_000, "{secs}");
}

#[test]
fn bits_set_get_count_find_and_combine() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["SETBIT", "b", "7", "1"]), Reply::Integer(0));
    assert_eq!(r(&mut st, &["SETBIT", "b", "7", "1"]), Reply::Integer(1));
    assert_eq!(
        rec(&mut st, &["SETBIT", "b", "9", "1"]),
        Some(LogRecord::SetRange {
            key: b"b".to_vec(),
            offset: 1,
            bytes: vec![0x40],
        }),
        "one byte, not the bitmap"
    );
    assert_eq!(r(&mut st, &["SETBIT", "b", "9", "0"]), Reply::Integer(1));
    assert_eq!(r(&mut st, &["GET", "b"]), Reply::Bulk(vec![1, 0]));
    assert_eq!(r(&mut st, &["GETBIT", "b", "7"]), Reply::Integer(1));
    assert_eq!(r(&mut st, &["GETBIT", "b", "6"]), Reply::Integer(0));
    assert_eq!(r(&mut st, &["GETBIT", "b", "100"]), Reply::Integer(0));
    assert_eq!(
        err(&mut st, &["SETBIT", "b", "-1", "1"]),
        "ERR bit offset is not an integer or out of range"
    );
    assert_eq!(
        err(&mut st, &["SETBIT", "b", "4294967296", "1"]),
        "ERR bit offset is not an integer or out of range"
    );
    assert_eq!(
        err(&mut st, &["SETBIT", "b", "1", "2"]),
        "ERR bit is not an integer or out of range"
    );
    r(&mut st, &["SET", "s", "foobar"]);
    assert_eq!(r(&mut st, &["BITCOUNT", "s"]), Reply::Integer(26));
    assert_eq!(r(&mut st, &["BITCOUNT", "s", "0", "0"]), Reply::Integer(4));
    assert_eq!(r(&mut st, &["BITCOUNT", "s", "1", "1"]), Reply::Integer(6));
    assert_eq!(
        r(&mut st, &["BITCOUNT", "s", "1", "1", "BYTE"]),
        Reply::Integer(6)
    );
    assert_eq!(
        r(&mut st, &["BITCOUNT", "s", "5", "30", "BIT"]),
        Reply::Integer(17)
    );
    assert_eq!(
        r(&mut st, &["BITCOUNT", "s", "-2", "-1"]),
        Reply::Integer(7)
    );
    assert_eq!(r(&mut st, &["BITCOUNT", "none"]), Reply::Integer(0));
    assert_eq!(err(&mut st, &["BITCOUNT", "s", "0"]), "ERR syntax error");
    r(&mut st, &["SET", "p", "\u{0}\u{7f}\u{0}"]);
    assert_eq!(r(&mut st, &["BITPOS", "p", "1"]), Reply::Integer(9));
    assert_eq!(r(&mut st, &["BITPOS", "p", "1", "2"]), Reply::Integer(-1));
    assert_eq!(r(&mut st, &["BITPOS", "p", "0", "1"]), Reply::Integer(8));
    assert_eq!(
        r(&mut st, &["BITPOS", "p", "1", "7", "15", "BIT"]),
        Reply::Integer(9)
    );
    assert_eq!(r(&mut st, &["BITPOS", "none", "0"]), Reply::Integer(0));
    assert_eq!(r(&mut st, &["BITPOS", "none", "1"]), Reply::Integer(-1));
    st.set(b"ones", vec![0xff, 0xff], None);
    assert_eq!(r(&mut st, &["BITPOS", "ones", "0"]), Reply::Integer(16));
    assert_eq!(
        r(&mut st, &["BITPOS", "ones", "0", "0", "-1"]),
        Reply::Integer(-1)
    );
    assert_eq!(
        err(&mut st, &["BITPOS", "p", "2"]),
        "ERR The bit argument must be 1 or 0."
    );
    st.set(b"x", vec![0b1100, 0xff], None);
    st.set(b"y", vec![0b1010], None);
    assert_eq!(
        r(&mut st, &["BITOP", "AND", "d", "x", "y"]),
        Reply::Integer(2)
    );
    assert_eq!(r(&mut st, &["GET", "d"]), Reply::Bulk(vec![0b1000, 0]));
    r(&mut st, &["BITOP", "OR", "d", "x", "y"]);
    assert_eq!(r(&mut st, &["GET", "d"]), Reply::Bulk(vec![0b1110, 0xff]));
    r(&mut st, &["BITOP", "XOR", "d", "x", "y"]);
    assert_eq!(r(&mut st, &["GET", "d"]), Reply::Bulk(vec![0b0110, 0xff]));
    r(&mut st, &["BITOP", "NOT", "d", "y"]);
    assert_eq!(r(&mut st, &["GET", "d"]), Reply::Bulk(vec![!0b1010u8]));
    assert_eq!(r(&mut st, &["BITOP", "OR", "d", "none"]), Reply::Integer(0));
    assert!(
        !st.contains(b"d", T0),
        "an empty result deletes the destination"
    );
    assert_eq!(
        err(&mut st, &["BITOP", "NOT", "d", "x", "y"]),
        "ERR BITOP NOT must be called with a single source key."
    );
    assert_eq!(
        err(&mut st, &["BITOP", "NAND", "d", "x"]),
        "ERR syntax error"
    );
}

#[test]
fn lcs_gives_the_string_length_and_ranges() {
    let mut st = Store::new();
    r(&mut st, &["MSET", "a", "ohmytext", "b", "mynewtext"]);
    assert_eq!(r(&mut st, &["LCS", "a", "b"]), bulk("mytext"));
    assert_eq!(r(&mut st, &["LCS", "a", "b", "LEN"]), Reply::Integer(6));
    let range = |s: i64, e: i64| Reply::Array(vec![Reply::Integer(s), Reply::Integer(e)]);
    let want = Reply::Map(vec![
        (
            bulk("matches"),
            Reply::Array(vec![
                Reply::Array(vec![range(4, 7), range(5, 8), Reply::Integer(4)]),
                Reply::Array(vec![range(2, 3), range(0, 1), Reply::Integer(2)]),
            ]),
        ),
        (bulk("len"), Reply::Integer(6)),
    ]);
    assert_eq!(r(&mut st, &["LCS", "a", "b", "IDX", "WITHMATCHLEN"]), want);
    let Reply::Map(m) = r(&mut st, &["LCS", "a", "b", "IDX", "MINMATCHLEN", "3"]) else {
        panic!()
    };
    assert_eq!(
        m[0].1,
        Reply::Array(vec![Reply::Array(vec![range(4, 7), range(5, 8)])])
    );
    assert_eq!(
        err(&mut st, &["LCS", "a", "b", "LEN", "IDX"]),
        "ERR If you want both the length and indexes, please just use IDX."
    );
    assert_eq!(r(&mut st, &["LCS", "a", "none"]), bulk(""));
}

#[test]
fn object_encoding_and_memory_usage() {
    let mut st = Store::new();
    r(&mut st, &["SET", "i", "12345"]);
    r(&mut st, &["SET", "e", "hello"]);
    let long = "x".repeat(45);
    r(&mut st, &["SET", "r", &long]);
    assert_eq!(r(&mut st, &["OBJECT", "ENCODING", "i"]), bulk("int"));
    assert_eq!(r(&mut st, &["OBJECT", "encoding", "e"]), bulk("embstr"));
    assert_eq!(r(&mut st, &["OBJECT", "ENCODING", "r"]), bulk("raw"));
    assert_eq!(r(&mut st, &["OBJECT", "ENCODING", "none"]), Reply::Nil);
    assert!(err(&mut st, &["OBJECT", "FREQ", "i"]).starts_with("ERR An LFU maxmemory policy"));
    let (Reply::Integer(small), Reply::Integer(big)) = (
        r(&mut st, &["MEMORY", "USAGE", "e"]),
        r(&mut st, &["MEMORY", "USAGE", "r", "SAMPLES", "5"]),
    ) else {
        panic!("integers")
    };
    assert_eq!(big - small, 40, "grows with the value");
    assert!(small > 6);
    assert_eq!(r(&mut st, &["MEMORY", "USAGE", "none"]), Reply::Nil);
}

#[test]
fn scan_reads_the_cursor_as_strtoul() {
    let mut st = Store::new();
    r(&mut st, &["SET", "a", "1"]);
    let next = |st: &mut Store, c: &str| match r(st, &["SCAN", c]) {
        Reply::Array(v) => v[0].clone(),
        other => other,
    };
    // -1 wraps to 2^64 - 1: past every slot, the iteration ends.
    assert_eq!(next(&mut st, "-1"), bulk("0"));
    assert_eq!(next(&mut st, "+0"), bulk("0"));
    assert_eq!(next(&mut st, ""), bulk("0"));
    for bad in [" 1", "1x", "-", "18446744073709551616"] {
        assert_eq!(
            next(&mut st, bad),
            Reply::err("ERR invalid cursor"),
            "{bad:?}"
        );
    }
}

#[test]
fn idletime_counts_from_the_last_read_or_write_not_from_ttl_type_exists() {
    let mut st = Store::new();
    let at = |st: &mut Store, now: u64, cmd: &[&str]| execute(st, &args(cmd), now).0;
    at(&mut st, T0, &["SET", "k", "v"]);
    at(&mut st, T0, &["SET", "j", "v"]);
    for cmd in [
        &["TTL", "k"][..],
        &["TYPE", "k"],
        &["EXISTS", "k"],
        &["OBJECT", "ENCODING", "k"],
    ] {
        at(&mut st, T0 + 2_000, cmd);
    }
    let idle = |st: &mut Store, now: u64, k: &str| at(st, now, &["OBJECT", "IDLETIME", k]);
    assert_eq!(idle(&mut st, T0 + 3_000, "k"), Reply::Integer(3));
    at(&mut st, T0 + 3_000, &["TOUCH", "k"]);
    assert_eq!(idle(&mut st, T0 + 4_500, "k"), Reply::Integer(1));
    at(&mut st, T0 + 5_000, &["GET", "j"]);
    assert_eq!(idle(&mut st, T0 + 5_000, "j"), Reply::Integer(0));
    at(&mut st, T0 + 9_000, &["APPEND", "k", "w"]);
    assert_eq!(
        idle(&mut st, T0 + 9_000, "k"),
        Reply::Integer(0),
        "a write accesses"
    );
    at(&mut st, T0 + 9_000, &["SET", "j", "new"]);
    assert_eq!(idle(&mut st, T0 + 10_000, "j"), Reply::Integer(1));
    assert_eq!(idle(&mut st, T0, "none"), Reply::Nil);
}

#[test]
fn setrange_on_a_key_that_expired_logs_its_del_first() {
    let mut st = Store::new();
    r(&mut st, &["SET", "k", "old value", "PX", "1"]);
    let (reply, record) = execute(&mut st, &args(&["SETRANGE", "k", "1", "ab"]), T0 + 10);
    assert_eq!(reply, Reply::Integer(3));
    assert_eq!(
        record,
        Some(LogRecord::Multi(vec![
            LogRecord::Del {
                keys: vec![b"k".to_vec()]
            },
            LogRecord::SetRange {
                key: b"k".to_vec(),
                offset: 1,
                bytes: b"ab".to_vec(),
            },
        ]))
    );
    assert_eq!(st.get(b"k", T0 + 10), Some(&b"\0ab"[..]));
    assert_eq!(st.raw(b"k").map(|e| e.expire_at), Some(None));
}

#[test]
fn a_string_changed_in_place_is_raw_until_set_anew() {
    let mut st = Store::new();
    let enc = |st: &mut Store| r(st, &["OBJECT", "ENCODING", "k"]);
    r(&mut st, &["SET", "k", "1234"]);
    assert_eq!(enc(&mut st), bulk("int"));
    // Writing nothing changes nothing.
    assert_eq!(r(&mut st, &["SETRANGE", "k", "0", ""]), Reply::Integer(4));
    assert_eq!(enc(&mut st), bulk("int"));
    assert_eq!(r(&mut st, &["SETRANGE", "k", "0", "2"]), Reply::Integer(4));
    assert_eq!(enc(&mut st), bulk("raw"));
    assert_eq!(r(&mut st, &["GET", "k"]), bulk("2234"));
    r(&mut st, &["SET", "k", "1234"]);
    assert_eq!(enc(&mut st), bulk("int"));
    r(&mut st, &["APPEND", "k", "5"]);
    assert_eq!(enc(&mut st), bulk("raw"));
    r(&mut st, &["INCR", "k"]);
    assert_eq!(enc(&mut st), bulk("int"));
    r(&mut st, &["SETBIT", "k", "0", "1"]);
    assert_eq!(enc(&mut st), bulk("raw"));
}
