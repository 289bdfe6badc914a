//! Replies and errors checked against what Redis 7 answers, and the
//! property that makes the log correct: a write's record, replayed on the
//! store as it was, gives the store as it is.

use super::*;
use crate::resp::Reply;
use crate::store::Store;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;

fn args(cmd: &[&str]) -> Vec<Vec<u8>> {
    cmd.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn exec(st: &mut Store, now: u64, cmd: &[&str]) -> (Reply, Option<LogRecord>) {
    execute(st, &args(cmd), now)
}

fn r(st: &mut Store, cmd: &[&str]) -> Reply {
    exec(st, T0, cmd).0
}

fn err(st: &mut Store, cmd: &[&str]) -> String {
    match r(st, cmd) {
        Reply::Error(e) => e.into_owned(),
        other => panic!("{cmd:?}: expected an error, got {other:?}"),
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn int(n: i64) -> Reply {
    Reply::Integer(n)
}

#[test]
fn arity_errors_name_the_command_in_lowercase() {
    let mut st = Store::new();
    assert_eq!(
        err(&mut st, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err(&mut st, &["Set", "k"]),
        "ERR wrong number of arguments for 'set' command"
    );
    assert_eq!(
        err(&mut st, &["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        err(&mut st, &["ping", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
    assert_eq!(
        lookup(&args(&["CLIENT", "SETNAME"])).unwrap_err(),
        Reply::err("ERR wrong number of arguments for 'client|setname' command")
    );
    assert_eq!(
        lookup(&args(&["config", "get"])).unwrap_err(),
        Reply::err("ERR wrong number of arguments for 'config|get' command")
    );
    assert_eq!(
        lookup(&args(&["client"])).unwrap_err(),
        Reply::err("ERR wrong number of arguments for 'client' command")
    );
}

#[test]
fn unknown_commands_and_subcommands_use_redis_wording() {
    let mut st = Store::new();
    assert_eq!(
        err(&mut st, &["foo", "a", "b"]),
        "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        err(&mut st, &["foo"]),
        "ERR unknown command 'foo', with args beginning with: "
    );
    let long = "x".repeat(200);
    let e = err(&mut st, &["foo", &long, "next"]);
    assert_eq!(
        e,
        format!(
            "ERR unknown command 'foo', with args beginning with: '{}' ",
            "x".repeat(128)
        ),
        "the argument list stops at 128 bytes"
    );
    assert_eq!(
        lookup(&args(&["client", "nope"])).unwrap_err(),
        Reply::err("ERR unknown subcommand 'nope'. Try CLIENT HELP.")
    );
}

#[test]
fn noauth_comes_after_lookup_and_arity_but_before_options() {
    let a = |c: &[&str]| parse(&args(c), false);
    assert_eq!(a(&["GET", "k"]), Err(Reply::err(NOAUTH)));
    assert_eq!(a(&["SET", "k", "v", "EX", "nope"]), Err(Reply::err(NOAUTH)));
    assert_eq!(
        a(&["GET"]),
        Err(Reply::err(
            "ERR wrong number of arguments for 'get' command"
        ))
    );
    assert!(matches!(a(&["nope"]), Err(Reply::Error(e)) if e.starts_with("ERR unknown command")));
    assert!(a(&["AUTH", "pw"]).is_ok());
    assert!(a(&["HELLO", "2"]).is_ok());
    assert!(a(&["QUIT"]).is_ok());
    assert_eq!(
        parse(&args(&["GET", "k"]), true).unwrap().group(),
        Group::Read
    );
    assert!(parse(&args(&["SET", "k", "v"]), true).unwrap().is_write());
    assert_eq!(parse(&args(&["PING"]), true).unwrap().group(), Group::Conn);
}

#[test]
fn set_options_like_redis_7() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["SET", "k", "v"]), Reply::ok());
    assert_eq!(r(&mut st, &["SET", "k", "w", "NX"]), Reply::Nil);
    assert_eq!(
        r(&mut st, &["SET", "k", "w", "nx", "GET"]),
        bulk("v"),
        "NX GET shows the old value"
    );
    assert_eq!(r(&mut st, &["SET", "n", "w", "XX"]), Reply::Nil);
    assert_eq!(r(&mut st, &["SET", "k", "w", "XX", "GET"]), bulk("v"));
    assert_eq!(r(&mut st, &["SET", "new", "1", "GET"]), Reply::Nil);
    assert_eq!(r(&mut st, &["GET", "k"]), bulk("w"));
    for bad in [
        &["SET", "k", "v", "NX", "XX"][..],
        &["SET", "k", "v", "EX", "10", "PX", "10"],
        &["SET", "k", "v", "EX", "10", "KEEPTTL"],
        &["SET", "k", "v", "KEEPTTL", "EX", "10"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "FOO"],
    ] {
        assert_eq!(err(&mut st, bad), SYNTAX, "{bad:?}");
    }
    assert_eq!(err(&mut st, &["SET", "k", "v", "EX", "ten"]), NOT_INTEGER);
    for bad in ["0", "-1", "9223372036854776"] {
        assert_eq!(
            err(&mut st, &["SET", "k", "v", "EX", bad]),
            "ERR invalid expire time in 'set' command",
            "EX {bad}"
        );
    }
    assert_eq!(
        err(&mut st, &["SET", "k", "v", "PX", "9223372036854775807"]),
        "ERR invalid expire time in 'set' command",
        "now + PX overflows"
    );
    assert_eq!(
        err(&mut st, &["SETEX", "k", "0", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        r(&mut st, &["GET", "k"]),
        bulk("w"),
        "failed SETs changed nothing"
    );
}

#[test]
fn set_expiry_is_logged_as_an_absolute_time() {
    let mut st = Store::new();
    let (reply, rec) = exec(&mut st, T0, &["SET", "k", "v", "EX", "10"]);
    assert_eq!(reply, Reply::ok());
    assert_eq!(
        rec,
        Some(LogRecord::Set {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            expire_at_ms: Some(T0 + 10_000),
        })
    );
    let (_, rec) = exec(&mut st, T0, &["SET", "k", "v2", "KEEPTTL"]);
    assert!(matches!(rec, Some(LogRecord::Set { expire_at_ms: Some(t), .. }) if t == T0 + 10_000));
    let (_, rec) = exec(&mut st, T0, &["SET", "k", "v3", "PXAT", "123"]);
    assert!(matches!(
        rec,
        Some(LogRecord::Set {
            expire_at_ms: Some(123),
            ..
        })
    ));
    let (_, rec) = exec(&mut st, T0, &["PSETEX", "p", "1500", "v"]);
    assert!(matches!(rec, Some(LogRecord::Set { expire_at_ms: Some(t), .. }) if t == T0 + 1500));
    assert_eq!(r(&mut st, &["PTTL", "p"]), int(1500));
    assert_eq!(
        r(&mut st, &["TTL", "p"]),
        int(2),
        "TTL rounds to the nearest second"
    );
}

#[test]
fn counters() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["INCR", "c"]), int(1));
    assert_eq!(r(&mut st, &["INCRBY", "c", "41"]), int(42));
    assert_eq!(r(&mut st, &["DECR", "c"]), int(41));
    assert_eq!(r(&mut st, &["DECRBY", "c", "-9"]), int(50));
    assert_eq!(r(&mut st, &["GET", "c"]), bulk("50"));
    assert_eq!(err(&mut st, &["INCRBY", "c", "x"]), NOT_INTEGER);
    assert_eq!(err(&mut st, &["INCRBY", "c", "01"]), NOT_INTEGER);
    r(&mut st, &["SET", "s", "abc"]);
    assert_eq!(err(&mut st, &["INCR", "s"]), NOT_INTEGER);
    r(&mut st, &["SET", "s", " 1"]);
    assert_eq!(err(&mut st, &["INCR", "s"]), NOT_INTEGER);
    r(&mut st, &["SET", "m", "9223372036854775807"]);
    assert_eq!(err(&mut st, &["INCR", "m"]), OVERFLOW);
    r(&mut st, &["SET", "m", "-9223372036854775808"]);
    assert_eq!(err(&mut st, &["DECR", "m"]), OVERFLOW);
    assert_eq!(
        err(&mut st, &["DECRBY", "m", "-9223372036854775808"]),
        "ERR decrement would overflow"
    );
    // INCR keeps the expiry and logs the resulting SET.
    r(&mut st, &["SET", "t", "1", "PX", "5000"]);
    let (_, rec) = exec(&mut st, T0, &["INCR", "t"]);
    assert_eq!(
        rec,
        Some(LogRecord::Set {
            key: b"t".to_vec(),
            value: b"2".to_vec(),
            expire_at_ms: Some(T0 + 5000),
        })
    );
}

#[test]
fn string_commands() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["APPEND", "a", "hel"]), int(3));
    assert_eq!(r(&mut st, &["APPEND", "a", "lo"]), int(5));
    assert_eq!(r(&mut st, &["STRLEN", "a"]), int(5));
    assert_eq!(r(&mut st, &["STRLEN", "nope"]), int(0));
    assert_eq!(r(&mut st, &["GETSET", "a", "x"]), bulk("hello"));
    assert_eq!(r(&mut st, &["GETSET", "b", "x"]), Reply::Nil);
    assert_eq!(r(&mut st, &["SETNX", "a", "y"]), int(0));
    assert_eq!(r(&mut st, &["SETNX", "c", "y"]), int(1));
    assert_eq!(r(&mut st, &["MSET", "m1", "1", "m2", "2"]), Reply::ok());
    assert_eq!(
        r(&mut st, &["MGET", "m1", "nope", "m2"]),
        Reply::Array(vec![bulk("1"), Reply::Nil, bulk("2")])
    );
    assert_eq!(r(&mut st, &["MSETNX", "m1", "9", "m3", "3"]), int(0));
    assert_eq!(
        r(&mut st, &["GET", "m3"]),
        Reply::Nil,
        "MSETNX is all or nothing"
    );
    assert_eq!(r(&mut st, &["MSETNX", "m3", "3", "m4", "4"]), int(1));
    assert_eq!(
        r(&mut st, &["EXISTS", "m1", "m1", "nope"]),
        int(2),
        "duplicates count"
    );
    assert_eq!(r(&mut st, &["DEL", "m1", "m1", "nope", "m2"]), int(2));
    assert_eq!(r(&mut st, &["GETDEL", "m3"]), bulk("3"));
    assert_eq!(r(&mut st, &["GETDEL", "m3"]), Reply::Nil);
    assert_eq!(r(&mut st, &["TYPE", "a"]), Reply::Simple("string".into()));
    assert_eq!(r(&mut st, &["TYPE", "zz"]), Reply::Simple("none".into()));
    assert_eq!(r(&mut st, &["DBSIZE"]), int(4));
    assert_eq!(
        exec(&mut st, T0, &["FLUSHALL"]),
        (Reply::ok(), Some(LogRecord::FlushAll))
    );
    assert_eq!(
        exec(&mut st, T0, &["FLUSHDB", "ASYNC"]),
        (Reply::ok(), None)
    );
    assert_eq!(err(&mut st, &["FLUSHDB", "NOW"]), SYNTAX);
    assert_eq!(r(&mut st, &["DBSIZE"]), int(0));
    assert_eq!(r(&mut st, &["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(r(&mut st, &["ECHO", "hi"]), bulk("hi"));
}

#[test]
fn expire_family() {
    let mut st = Store::new();
    assert_eq!(r(&mut st, &["EXPIRE", "nope", "10"]), int(0));
    r(&mut st, &["SET", "k", "v"]);
    assert_eq!(r(&mut st, &["TTL", "k"]), int(-1));
    assert_eq!(r(&mut st, &["TTL", "nope"]), int(-2));
    let (reply, rec) = exec(&mut st, T0, &["EXPIRE", "k", "100"]);
    assert_eq!(reply, int(1));
    assert_eq!(
        rec,
        Some(LogRecord::PExpireAt {
            key: b"k".to_vec(),
            at_ms: T0 + 100_000
        })
    );
    assert_eq!(r(&mut st, &["TTL", "k"]), int(100));
    assert_eq!(r(&mut st, &["EXPIRE", "k", "50", "NX"]), int(0));
    assert_eq!(r(&mut st, &["EXPIRE", "k", "50", "GT"]), int(0));
    assert_eq!(r(&mut st, &["EXPIRE", "k", "500", "GT"]), int(1));
    assert_eq!(r(&mut st, &["EXPIRE", "k", "600", "LT"]), int(0));
    assert_eq!(r(&mut st, &["EXPIRE", "k", "200", "LT", "XX"]), int(1));
    assert_eq!(r(&mut st, &["PEXPIRE", "k", "1500"]), int(1));
    assert_eq!(r(&mut st, &["PTTL", "k"]), int(1500));
    assert_eq!(r(&mut st, &["PERSIST", "k"]), int(1));
    assert_eq!(r(&mut st, &["PERSIST", "k"]), int(0));
    assert_eq!(r(&mut st, &["EXPIRE", "k", "10", "XX"]), int(0));
    assert_eq!(
        r(&mut st, &["EXPIRE", "k", "10", "GT"]),
        int(0),
        "no expiry is infinite"
    );
    assert_eq!(r(&mut st, &["EXPIRE", "k", "10", "LT"]), int(1));
    let (reply, rec) = exec(&mut st, T0, &["PEXPIREAT", "k", &(T0 + 7).to_string()]);
    assert_eq!(reply, int(1));
    assert_eq!(
        rec,
        Some(LogRecord::PExpireAt {
            key: b"k".to_vec(),
            at_ms: T0 + 7
        })
    );
    assert_eq!(
        r(&mut st, &["EXPIREAT", "k", "1"]),
        int(1),
        "in the past: deleted"
    );
    assert_eq!(r(&mut st, &["EXISTS", "k"]), int(0));
    r(&mut st, &["SET", "k", "v"]);
    let (reply, rec) = exec(&mut st, T0, &["EXPIRE", "k", "-1"]);
    assert_eq!(
        (reply, rec),
        (
            int(1),
            Some(LogRecord::Del {
                keys: vec![b"k".to_vec()]
            })
        )
    );
    assert_eq!(
        err(&mut st, &["EXPIRE", "k", "10", "FOO"]),
        "ERR Unsupported option FOO"
    );
    assert_eq!(
        err(&mut st, &["EXPIRE", "k", "10", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err(&mut st, &["EXPIRE", "k", "10", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(err(&mut st, &["EXPIRE", "k", "x"]), NOT_INTEGER);
    r(&mut st, &["SET", "k", "v"]);
    assert_eq!(
        err(&mut st, &["EXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'expire' command"
    );
    assert_eq!(
        err(&mut st, &["PEXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'pexpire' command"
    );
}

#[test]
fn a_write_that_meets_an_expired_key_logs_its_removal() {
    let mut st = Store::new();
    exec(&mut st, T0, &["SET", "k", "v", "PX", "10"]);
    let later = T0 + 11;
    assert_eq!(
        exec(&mut st, later, &["GET", "k"]),
        (Reply::Nil, None),
        "reads log nothing"
    );
    assert_eq!(st.len(), 1, "and remove nothing");
    let del = Some(LogRecord::Del {
        keys: vec![b"k".to_vec()],
    });
    assert_eq!(
        exec(&mut st, later, &["SET", "k", "w", "XX"]),
        (Reply::Nil, del.clone())
    );
    assert!(st.is_empty());
    exec(&mut st, T0, &["SET", "k", "v", "PX", "10"]);
    assert_eq!(
        exec(&mut st, later, &["DEL", "k"]),
        (int(0), del.clone()),
        "counted 0, still removed"
    );
    exec(&mut st, T0, &["SET", "k", "v", "PX", "10"]);
    assert_eq!(
        exec(&mut st, later, &["PERSIST", "k"]),
        (int(0), del.clone())
    );
    exec(&mut st, T0, &["SET", "k", "old", "PX", "10"]);
    let (reply, rec) = exec(&mut st, later, &["APPEND", "k", "new"]);
    assert_eq!(reply, int(3));
    assert_eq!(
        rec,
        Some(LogRecord::Set {
            key: b"k".to_vec(),
            value: b"new".to_vec(),
            expire_at_ms: None
        }),
        "absolute, so the replaying store's stale value is replaced"
    );
}

#[test]
fn keys_and_scan() {
    let mut st = Store::new();
    for k in ["user:1", "user:2", "other"] {
        r(&mut st, &["SET", k, "v"]);
    }
    let Reply::Array(mut keys) = r(&mut st, &["KEYS", "user:*"]) else {
        panic!()
    };
    keys.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(keys, vec![bulk("user:1"), bulk("user:2")]);
    assert_eq!(
        r(&mut st, &["SCAN", "0", "COUNT", "100"]),
        Reply::Array(vec![
            bulk("0"),
            Reply::Array(vec![bulk("user:1"), bulk("user:2"), bulk("other")])
        ])
    );
    assert_eq!(
        r(&mut st, &["SCAN", "0", "MATCH", "o*", "count", "100"]),
        Reply::Array(vec![bulk("0"), Reply::Array(vec![bulk("other")])])
    );
    assert_eq!(
        r(&mut st, &["SCAN", "0", "TYPE", "hash"]),
        Reply::Array(vec![bulk("0"), Reply::Array(vec![])])
    );
    assert_eq!(
        r(&mut st, &["SCAN", "0", "COUNT", "1"]),
        Reply::Array(vec![bulk("1"), Reply::Array(vec![bulk("user:1")])])
    );
    assert_eq!(err(&mut st, &["SCAN", "x"]), "ERR invalid cursor");
    // Redis 7.0 reads the cursor with strtoul: -1 is 2^64 - 1, past the end.
    assert_eq!(
        r(&mut st, &["SCAN", "-1"]),
        Reply::Array(vec![bulk("0"), Reply::Array(vec![])])
    );
    assert_eq!(err(&mut st, &["SCAN", "0", "COUNT", "0"]), SYNTAX);
    assert_eq!(err(&mut st, &["SCAN", "0", "COUNT"]), SYNTAX);
    assert_eq!(err(&mut st, &["SCAN", "0", "COUNT", "x"]), NOT_INTEGER);
}

fn view(pw: Option<&str>) -> ConfigView {
    ConfigView {
        requirepass: pw.map(String::from),
        params: vec![
            ("save", String::new()),
            ("appendonly", "yes".into()),
            ("appendfsync", "always".into()),
        ],
    }
}

fn conn(s: &mut Session, v: &ConfigView, cmd: &[&str]) -> Action {
    match s.parse(&args(cmd)) {
        Ok(Command::Conn(c)) => s.execute(c, v),
        Ok(other) => panic!("{other:?} is not a connection command"),
        Err(e) => Action::Reply(e),
    }
}

fn reply(a: Action) -> Reply {
    match a {
        Action::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn auth_and_hello() {
    let v = view(Some("secret"));
    let mut s = Session::new(7, Some("secret"));
    assert!(!s.authenticated);
    assert_eq!(reply(conn(&mut s, &v, &["PING"])), Reply::err(NOAUTH));
    assert_eq!(
        reply(conn(&mut s, &v, &["AUTH", "nope"])),
        Reply::err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["AUTH", "bob", "secret"])),
        Reply::err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["AUTH", "a", "b", "c"])),
        Reply::err(SYNTAX)
    );
    assert!(matches!(
        reply(conn(&mut s, &v, &["HELLO", "2"])),
        Reply::Error(e) if e.starts_with("NOAUTH HELLO must be called")
    ));
    assert_eq!(
        reply(conn(&mut s, &v, &["AUTH", "default", "secret"])),
        Reply::ok()
    );
    assert!(s.authenticated);
    assert_eq!(
        reply(conn(&mut s, &v, &["PING"])),
        Reply::Simple("PONG".into())
    );

    let mut s = Session::new(8, Some("secret"));
    let Reply::Map(hello) = reply(conn(
        &mut s,
        &v,
        &["HELLO", "2", "AUTH", "default", "secret", "SETNAME", "me"],
    )) else {
        panic!()
    };
    assert_eq!(hello[2], (bulk("proto"), int(2)));
    assert_eq!(hello[3], (bulk("id"), int(8)));
    assert_eq!(s.name.as_deref(), Some(&b"me"[..]));
    let Reply::Map(hello) = reply(conn(&mut s, &v, &["HELLO", "3"])) else {
        panic!()
    };
    assert_eq!((hello[2].clone(), s.proto), ((bulk("proto"), int(3)), 3));
    assert_eq!(
        reply(conn(&mut s, &v, &["HELLO", "4"])),
        Reply::err("NOPROTO unsupported protocol version")
    );
    assert_eq!(s.proto, 3, "a refused HELLO changes nothing");
    assert_eq!(
        reply(conn(&mut s, &v, &["HELLO", "2", "FOO"])),
        Reply::err("ERR Syntax error in HELLO option 'FOO'")
    );

    let open = view(None);
    let mut s = Session::new(1, None);
    assert!(s.authenticated);
    assert!(matches!(
        reply(conn(&mut s, &open, &["AUTH", "x"])),
        Reply::Error(e) if e.starts_with("ERR AUTH <password> called without any password")
    ));
    assert_eq!(
        reply(conn(&mut s, &open, &["AUTH", "default", "x"])),
        Reply::ok()
    );
}

#[test]
fn client_select_quit_shutdown() {
    let v = view(None);
    let mut s = Session::new(3, None);
    assert_eq!(reply(conn(&mut s, &v, &["CLIENT", "GETNAME"])), Reply::Nil);
    assert_eq!(
        reply(conn(&mut s, &v, &["CLIENT", "SETNAME", "app-1"])),
        Reply::ok()
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["client", "getname"])),
        bulk("app-1")
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["CLIENT", "SETNAME", "a b"])),
        Reply::err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["CLIENT", "SETNAME", ""])),
        Reply::ok()
    );
    assert_eq!(reply(conn(&mut s, &v, &["CLIENT", "GETNAME"])), Reply::Nil);
    assert_eq!(reply(conn(&mut s, &v, &["CLIENT", "ID"])), int(3));
    assert_eq!(
        reply(conn(
            &mut s,
            &v,
            &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]
        )),
        Reply::ok()
    );
    assert_eq!(reply(conn(&mut s, &v, &["SELECT", "0"])), Reply::ok());
    assert_eq!(
        reply(conn(&mut s, &v, &["SELECT", "1"])),
        Reply::err("ERR DB index is out of range")
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["SELECT", "x"])),
        Reply::err(NOT_INTEGER)
    );
    assert_eq!(conn(&mut s, &v, &["QUIT"]), Action::Close(Reply::ok()));
    assert_eq!(conn(&mut s, &v, &["SHUTDOWN", "NOSAVE"]), Action::Shutdown);
    assert_eq!(
        reply(conn(&mut s, &v, &["SHUTDOWN", "LATER"])),
        Reply::err(SYNTAX)
    );
    assert_eq!(
        conn(&mut s, &v, &["INFO", "keyspace"]),
        Action::Info(vec![b"keyspace".to_vec()])
    );
}

#[test]
fn what_redis_benchmark_and_redis_cli_ask_at_start() {
    let v = view(None);
    let mut s = Session::new(1, None);
    assert_eq!(
        reply(conn(&mut s, &v, &["CONFIG", "GET", "save"])).to_bytes(),
        Reply::Array(vec![bulk("save"), bulk("")]).to_bytes()
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["CONFIG", "GET", "APPENDONLY"])).to_bytes(),
        Reply::Array(vec![bulk("appendonly"), bulk("yes")]).to_bytes()
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["CONFIG", "GET", "append*", "save"])).to_bytes(),
        Reply::Array(vec![
            bulk("save"),
            bulk(""),
            bulk("appendonly"),
            bulk("yes"),
            bulk("appendfsync"),
            bulk("always")
        ])
        .to_bytes()
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["COMMAND", "DOCS"])),
        Reply::Array(vec![])
    );
    assert_eq!(
        reply(conn(&mut s, &v, &["COMMAND", "COUNT"])),
        int(TABLE.len() as i64)
    );
    let Reply::Array(info) = reply(conn(&mut s, &v, &["COMMAND", "INFO", "get", "nope"])) else {
        panic!()
    };
    assert_eq!(info[1], Reply::Nil);
    let Reply::Array(get) = &info[0] else {
        panic!()
    };
    assert_eq!(get.len(), 10);
    assert_eq!((&get[0], &get[1]), (&bulk("get"), &int(2)));
    let Reply::Array(all) = reply(conn(&mut s, &v, &["COMMAND"])) else {
        panic!()
    };
    assert_eq!(all.len(), TABLE.len());
}

#[test]
fn info_sections() {
    let d = InfoData {
        port: 6379,
        keys: 3,
        expires: 1,
        aof_fsync: "always".into(),
        ..InfoData::default()
    };
    let all = info_text(&d, &[]);
    assert!(all.starts_with("# Server\r\nredis_version:7.0.15\r\n"));
    assert!(all.contains("\r\n\r\n# Clients\r\n"));
    assert!(all.contains("aof_enabled:1\r\n"));
    assert!(all.ends_with("# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n"));
    assert_eq!(
        info_text(&d, &[b"KEYSPACE".to_vec()]),
        "# Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\n"
    );
    let two = info_text(&d, &[b"clients".to_vec(), b"replication".to_vec()]);
    assert!(
        two.starts_with("# Clients\r\n")
            && two.contains("\r\n\r\n# Replication\r\nrole:master\r\n")
    );
    assert_eq!(info_text(&d, &[b"nope".to_vec()]), "");
    let empty = InfoData::default();
    assert!(info_text(&empty, &[b"keyspace".to_vec()]) == "# Keyspace\r\n");
}

// -- The replay property. ---------------------------------------------------

/// A random command over a few keys (so that they collide), with times
/// that straddle the clock so that keys expire between commands.
fn arb_command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(String::from);
    let val = prop_oneof![
        Just("1".to_string()),
        Just("x".to_string()),
        (-5i64..5).prop_map(|n| n.to_string()),
    ];
    let ms = 1i64..40;
    prop_oneof![
        (key.clone(), val.clone()).prop_map(|(k, v)| vec!["SET".into(), k, v]),
        (
            key.clone(),
            val.clone(),
            ms.clone(),
            prop::sample::select(vec!["", "NX", "XX", "GET", "KEEPTTL"])
        )
            .prop_map(|(k, v, t, o)| {
                let mut c = vec!["SET".into(), k, v, "PX".into(), t.to_string()];
                if o == "KEEPTTL" {
                    c.truncate(3);
                }
                if !o.is_empty() {
                    c.push(o.into());
                }
                c
            }),
        (key.clone(), val.clone()).prop_map(|(k, v)| vec!["GETSET".into(), k, v]),
        (key.clone(), val.clone()).prop_map(|(k, v)| vec!["SETNX".into(), k, v]),
        (key.clone(), val.clone()).prop_map(|(k, v)| vec!["APPEND".into(), k, v]),
        (key.clone(), -3i64..3).prop_map(|(k, n)| vec!["INCRBY".into(), k, n.to_string()]),
        key.clone().prop_map(|k| vec!["INCR".into(), k]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["DEL".into(), a, b]),
        key.clone().prop_map(|k| vec!["GETDEL".into(), k]),
        (key.clone(), val.clone(), key.clone()).prop_map(|(a, v, b)| vec![
            "MSET".into(),
            a,
            v.clone(),
            b,
            v
        ]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec![
            "MSETNX".into(),
            a,
            "1".into(),
            b,
            "2".into()
        ]),
        (
            key.clone(),
            -10i64..40,
            prop::sample::select(vec!["", "NX", "XX", "GT", "LT"])
        )
            .prop_map(|(k, t, o)| {
                let mut c = vec!["PEXPIRE".into(), k, t.to_string()];
                if !o.is_empty() {
                    c.push(o.into());
                }
                c
            }),
        key.clone().prop_map(|k| vec!["PERSIST".into(), k]),
        key.clone().prop_map(|k| vec!["GET".into(), k]),
        (key.clone(), 0usize..4, val.clone()).prop_map(|(k, o, v)| vec![
            "SETRANGE".into(),
            k,
            o.to_string(),
            v
        ]),
        (key.clone(), prop::sample::select(vec!["0.5", "-1", "x"])).prop_map(|(k, by)| vec![
            "INCRBYFLOAT".into(),
            k,
            by.into()
        ]),
        (
            key.clone(),
            prop::sample::select(vec!["", "PERSIST", "PX 20", "PXAT 1"])
        )
            .prop_map(|(k, o)| {
                let mut c = vec!["GETEX".to_string(), k];
                c.extend(o.split_whitespace().map(String::from));
                c
            }),
        (key.clone(), key.clone(), any::<bool>()).prop_map(|(a, b, nx)| vec![
            if nx { "RENAMENX" } else { "RENAME" }.into(),
            a,
            b
        ]),
        (key.clone(), key.clone(), any::<bool>()).prop_map(|(a, b, replace)| {
            let mut c = vec!["COPY".to_string(), a, b];
            if replace {
                c.push("REPLACE".into());
            }
            c
        }),
        (key.clone(), 0u32..20, any::<bool>()).prop_map(|(k, o, b)| vec![
            "SETBIT".into(),
            k,
            o.to_string(),
            u8::from(b).to_string()
        ]),
        (
            prop::sample::select(vec!["AND", "OR", "XOR"]),
            key.clone(),
            key.clone(),
            key.clone()
        )
            .prop_map(|(op, d, a, b)| vec!["BITOP".into(), op.into(), d, a, b]),
        (key.clone(), key.clone()).prop_map(|(d, a)| vec!["BITOP".into(), "NOT".into(), d, a]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["UNLINK".into(), a, b]),
        Just(vec!["FLUSHALL".to_string()]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Every write's record, applied to a replica that only ever sees
    /// records (never the clock), keeps the replica physically equal to the
    /// store, active expiry included.
    #[test]
    fn records_replay_every_write_exactly(
        steps in prop::collection::vec((arb_command(), 0u64..15, any::<bool>()), 1..60)
    ) {
        let mut live = Store::new();
        let mut replica = Store::new();
        let mut now = T0;
        for (cmd, advance, expire_now) in steps {
            now += advance;
            let a: Vec<Vec<u8>> = cmd.iter().map(|s| s.as_bytes().to_vec()).collect();
            let (_, rec) = execute(&mut live, &a, now);
            if let Some(rec) = rec {
                // The encoded form is what the log holds: replay that.
                let decoded = LogRecord::decode(&rec.to_bytes()).expect("decodable");
                prop_assert_eq!(&decoded, &rec);
                decoded.apply(&mut replica);
            }
            if expire_now {
                let keys = live.active_expire(now, 2);
                if !keys.is_empty() {
                    LogRecord::Del { keys }.apply(&mut replica);
                }
            }
            prop_assert!(live == replica, "after {:?}: {:?} vs {:?}", cmd,
                live.iter().collect::<Vec<_>>(), replica.iter().collect::<Vec<_>>());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The undo journal of every write takes it back: after any history,
    /// a journaled write then a rollback leaves the store as it was.
    #[test]
    fn the_journal_takes_back_every_write(
        history in prop::collection::vec((arb_command(), 0u64..15), 0..20),
        last in arb_command(),
    ) {
        let mut live = Store::new();
        let mut now = T0;
        for (cmd, advance) in history {
            now += advance;
            let a: Vec<Vec<u8>> = cmd.iter().map(|s| s.as_bytes().to_vec()).collect();
            execute(&mut live, &a, now);
        }
        let before: Vec<_> = live
            .iter()
            .map(|e| (e.key.to_vec(), e.value.clone(), e.expire_at))
            .collect();
        let a: Vec<Vec<u8>> = last.iter().map(|s| s.as_bytes().to_vec()).collect();
        if let Ok(Command::Write(w)) = parse(&a, true) {
            let mut dbs = crate::databases::Databases::new(1);
            *dbs.db_mut(0) = live;
            let mut undo = crate::store::Undo::new();
            execute_write_journaled(w, dbs.db_mut(0), now + 3, &mut undo);
            undo.rollback(&mut dbs);
            let mut after: Vec<_> = dbs
                .db(0)
                .iter()
                .map(|e| (e.key.to_vec(), e.value.clone(), e.expire_at))
                .collect();
            let mut before = before;
            before.sort_by(|x, y| x.0.cmp(&y.0));
            after.sort_by(|x, y| x.0.cmp(&y.0));
            prop_assert_eq!(before, after, "{:?}", last);
        }
    }
}

#[test]
fn record_bound_covers_the_encoded_record() {
    let mut st = Store::new();
    for cmd in [
        &["SET", "key", "value", "EX", "100"][..],
        &["MSET", "a", "1", "b", "22", "c", ""],
        &["APPEND", "key", "more"],
        &["INCRBY", "n", "-12345"],
        &["PEXPIRE", "key", "500"],
        &["DEL", "a", "b", "zz"],
        &["SETRANGE", "key", "3", "xyz"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["GETEX", "key", "PX", "100"],
        &["COPY", "key", "key2"],
        &["RENAME", "key", "key3"],
        &["SETBIT", "bits", "100", "1"],
        &["BITOP", "OR", "dest", "bits", "key3"],
        &["FLUSHALL"],
    ] {
        let Ok(Command::Write(w)) = parse(&args(cmd), true) else {
            panic!("{cmd:?}")
        };
        let bound = w.record_bound();
        let (_, rec) = execute_write(w, &mut st, T0);
        let len = rec.expect("each changes the store").to_bytes().len();
        assert!(len <= bound, "{cmd:?}: {len} > {bound}");
    }
}

#[test]
fn every_table_entry_parses_without_reaching_unreachable() {
    let names = TABLE.iter().flat_map(|s| {
        std::iter::once(s.name.to_string())
            .chain(s.subcommands.iter().map(|sub| sub.name.replace('|', " ")))
    });
    for name in names {
        for extra in 0..6 {
            let mut a: Vec<Vec<u8>> = name.split(' ').map(|w| w.as_bytes().to_vec()).collect();
            a.extend(std::iter::repeat_n(b"1".to_vec(), extra));
            for authed in [true, false] {
                // Must return (Ok or a Redis error), never panic.
                let _ = parse(&a, authed);
            }
        }
    }
}
