//! Blocking sorted-set pops (BZPOPMIN, BZPOPMAX, BZMPOP) against the real
//! server, through the `redis` crate and raw sockets: replies in RESP2 and
//! RESP3, FIFO service by ZADD from other connections and from within
//! MULTI/EXEC, waiters of another type left waiting, timeouts, CLIENT
//! UNBLOCK / KILL and disconnects leaving nothing behind, replay after
//! SIGKILL, and a stress test in which every added member is popped exactly
//! once while consumers come and go.

mod common;

use common::blocking::{
    blocked_clients, blocking, bulk, every_element_popped_once, wait_blocked, Churn,
};
use common::{temp_dir, Server};
use redis::{cmd, Commands, Value};
use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

/// BZPOPMIN / BZPOPMAX's reply: `[key, member, score]`.
fn single(key: &str, member: &str, score: &str) -> Value {
    Value::Array(vec![bulk(key), bulk(member), bulk(score)])
}

/// BZMPOP's reply: `[key, [[member, score]...]]`.
fn multi(key: &str, pairs: &[(&str, &str)]) -> Value {
    let pairs = pairs
        .iter()
        .map(|(m, s)| Value::Array(vec![bulk(m), bulk(s)]))
        .collect();
    Value::Array(vec![bulk(key), Value::Array(pairs)])
}

#[test]
fn bzpop_answers_at_once_or_serves_waiters_in_order_from_any_connection_and_exec() {
    let dir = temp_dir("bzpop-serve");
    let server = Server::start(&dir, &["--workers", "2"]);
    let mut c = server.client();
    // Something there: answered at once, as ZPOPMIN would.
    let _: i64 = c
        .zadd_multiple("z", &[(1, "a"), (2, "b"), (3, "c")])
        .unwrap();
    let v: Value = cmd("BZPOPMIN")
        .arg(&["none", "z", "0"])
        .query(&mut c)
        .unwrap();
    assert_eq!(v, single("z", "a", "1"));
    let v: Value = cmd("BZPOPMAX").arg(&["z", "0"]).query(&mut c).unwrap();
    assert_eq!(v, single("z", "c", "3"));
    let v: Value = cmd("BZMPOP")
        .arg(&["0", "2", "none", "z", "MIN", "COUNT", "5"])
        .query(&mut c)
        .unwrap();
    assert_eq!(v, multi("z", &[("b", "2")]));
    // FIFO: three clients (on either worker) on one key, one ZADD.
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let h = blocking(&server, &["BZPOPMIN", "q", "0"]);
            wait_blocked(&mut c, i + 1);
            h
        })
        .collect();
    let n: i64 = c
        .zadd_multiple("q", &[(3, "third"), (1, "first"), (2, "second")])
        .unwrap();
    assert_eq!(n, 3, "the ZADD answers what it added");
    for (w, (m, s)) in waiters
        .into_iter()
        .zip([("first", "1"), ("second", "2"), ("third", "3")])
    {
        assert_eq!(w.join().unwrap(), single("q", m, s));
    }
    assert_eq!(c.exists::<_, i64>("q").unwrap(), 0, "all popped");
    // Served after a MULTI/EXEC, which sees its own ZADD whole.
    let w = blocking(
        &server,
        &["BZMPOP", "0", "2", "none", "t", "MAX", "COUNT", "2"],
    );
    wait_blocked(&mut c, 1);
    let (added, card): (i64, i64) = redis::pipe()
        .atomic()
        .zadd_multiple("t", &[(1, "x"), (2, "y"), (3, "z")])
        .zcard("t")
        .query(&mut c)
        .unwrap();
    assert_eq!((added, card), (3, 3));
    assert_eq!(w.join().unwrap(), multi("t", &[("z", "3"), ("y", "2")]));
    let left: Vec<String> = c.zrange("t", 0, -1).unwrap();
    assert_eq!(left, ["x"]);
    // A *STORE that makes the key a sorted set serves too.
    let w = blocking(&server, &["BZPOPMAX", "u", "0"]);
    wait_blocked(&mut c, 1);
    let n: i64 = cmd("ZUNIONSTORE")
        .arg(&["u", "1", "t", "WEIGHTS", "10"])
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(w.join().unwrap(), single("u", "x", "10"));
    // Inside MULTI nothing blocks: a nil at once.
    let (v,): (Value,) = redis::pipe()
        .atomic()
        .cmd("BZPOPMIN")
        .arg(&["empty", "0"])
        .query(&mut c)
        .unwrap();
    assert_eq!(v, Value::Nil);
    assert_eq!(blocked_clients(&mut c), 0);
}

#[test]
fn a_waiter_is_served_only_by_its_type_and_wrong_types_answer_at_once() {
    let dir = temp_dir("bzpop-types");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let _: () = c.set("s", "x").unwrap();
    for args in [
        &["BZPOPMIN", "s", "0"][..],
        &["BZPOPMAX", "none", "s", "0"],
        &["BZMPOP", "0", "2", "none", "s", "MIN"],
    ] {
        let e = cmd(args[0])
            .arg(&args[1..])
            .query::<Value>(&mut c)
            .unwrap_err();
        assert_eq!(e.code(), Some("WRONGTYPE"), "{args:?}: {e}");
    }
    // A BZPOPMIN waiter first, a BLPOP waiter second, on one key: a list
    // push serves the second; the first waits on through the list (Redis
    // 7.0) until the key is a sorted set.
    let z = blocking(&server, &["BZPOPMIN", "k", "0"]);
    wait_blocked(&mut c, 1);
    let l = blocking(&server, &["BLPOP", "k", "0"]);
    wait_blocked(&mut c, 2);
    let _: i64 = c.rpush("k", &["e1", "e2"]).unwrap();
    assert_eq!(l.join().unwrap(), Value::Array(vec![bulk("k"), bulk("e1")]));
    wait_blocked(&mut c, 1);
    // The list stays; the waiter too.
    let rest: Vec<String> = c.lrange("k", 0, -1).unwrap();
    assert_eq!(rest, ["e2"]);
    let _: () = c.del("k").unwrap();
    let _: () = c.set("k", "string").unwrap();
    assert_eq!(blocked_clients(&mut c), 1, "a string serves no one");
    // Replaced by a sorted set (the type changes): served.
    let n: i64 = cmd("ZUNIONSTORE")
        .arg(&["k", "1", "src-none"])
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 0, "an empty result deletes the key");
    let _: i64 = c.zadd("k", "m", 5).unwrap();
    assert_eq!(z.join().unwrap(), single("k", "m", "5"));
    // Argument errors, as Redis words them.
    for (args, want) in [
        (&["BZPOPMIN", "k", "-1"][..], "timeout is negative"),
        (&["BZPOPMIN", "k", "x"], "timeout is not a float"),
        (&["BZMPOP", "0", "0", "k", "MIN"], "numkeys"),
        (&["BZMPOP", "0", "1", "k", "MIN", "COUNT", "0"], "count"),
        (&["BZMPOP", "0", "1", "k", "SIDEWAYS"], "syntax error"),
    ] {
        let e = cmd(args[0])
            .arg(&args[1..])
            .query::<Value>(&mut c)
            .unwrap_err();
        assert!(e.to_string().contains(want), "{args:?}: {e}");
    }
}

#[test]
fn resp3_replies_carry_doubles_and_timeouts_are_nulls() {
    let dir = temp_dir("bzpop-resp3");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let _: i64 = c.zadd_multiple("z", &[(1.5, "a"), (2.0, "b")]).unwrap();
    let mut s = server.raw();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"HELLO 3\r\n").unwrap();
    // Skip HELLO's map: read up to its last field's value.
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"modules\r\n*0\r\n") {
        s.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
    let mut exchange = |req: &[u8], want: &[u8]| {
        s.write_all(req).unwrap();
        let mut reply = vec![0; want.len()];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&reply),
            String::from_utf8_lossy(want)
        );
    };
    exchange(b"BZPOPMIN z 0\r\n", b"*3\r\n$1\r\nz\r\n$1\r\na\r\n,1.5\r\n");
    exchange(
        b"BZMPOP 0 1 z MAX\r\n",
        b"*2\r\n$1\r\nz\r\n*1\r\n*2\r\n$1\r\nb\r\n,2\r\n",
    );
    let start = Instant::now();
    exchange(b"BZPOPMAX z 0.2\r\n", b"_\r\n");
    assert!(start.elapsed() >= Duration::from_millis(190));
    exchange(b"BZMPOP 0.01 1 z MIN\r\n", b"_\r\n");
    // RESP2: the score is a bulk string, a timeout a nil array.
    let mut s2 = server.raw();
    s2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s2.write_all(b"BZPOPMIN z 0.05\r\n").unwrap();
    let mut reply = [0u8; 5];
    s2.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"*-1\r\n");
}

#[test]
fn timeouts_unblock_kill_and_disconnects_leave_nothing_behind() {
    let dir = temp_dir("bzpop-leave");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let start = Instant::now();
    let v: Value = cmd("BZPOPMIN").arg(&["q", "0.3"]).query(&mut c).unwrap();
    let took = start.elapsed();
    assert_eq!(v, Value::Nil);
    assert!(took >= Duration::from_millis(290), "{took:?}");
    // CLIENT UNBLOCK: as a timeout, or with an error.
    for (how, want_err) in [("TIMEOUT", false), ("ERROR", true)] {
        let mut b = server.client();
        let id: i64 = cmd("CLIENT").arg("ID").query(&mut b).unwrap();
        let w = thread::spawn(move || {
            cmd("BZMPOP")
                .arg(&["0", "1", "q", "MIN"])
                .query::<Value>(&mut b)
        });
        wait_blocked(&mut c, 1);
        let n: i64 = cmd("CLIENT")
            .arg(&["UNBLOCK", &id.to_string(), how])
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 1);
        match w.join().unwrap() {
            Ok(v) => assert!(!want_err && v == Value::Nil, "{v:?}"),
            Err(e) => assert!(want_err && e.code() == Some("UNBLOCKED"), "{e}"),
        }
    }
    // CLIENT KILL and a plain disconnect: no waiter left to take a member.
    let mut k = server.client();
    let id: i64 = cmd("CLIENT").arg("ID").query(&mut k).unwrap();
    let killed = thread::spawn(move || cmd("BZPOPMIN").arg(&["q", "0"]).query::<Value>(&mut k));
    let mut raw = server.raw();
    raw.write_all(b"BZPOPMAX q 0\r\n").unwrap();
    wait_blocked(&mut c, 2);
    let n: i64 = cmd("CLIENT")
        .arg(&["KILL", "ID", &id.to_string()])
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        killed.join().unwrap().is_err(),
        "the killed client got nothing"
    );
    drop(raw);
    wait_blocked(&mut c, 0);
    let _: i64 = c.zadd("q", "kept", 1).unwrap();
    let all: Vec<String> = c.zrange("q", 0, -1).unwrap();
    assert_eq!(all, ["kept"], "no departed client took it");
}

#[test]
fn sorted_sets_and_served_pops_replay_after_sigkill() {
    let dir = temp_dir("bzpop-replay");
    let mut server = Server::start(&dir, &[]);
    let mut c = server.client();
    let w = blocking(&server, &["BZPOPMIN", "w", "0"]);
    wait_blocked(&mut c, 1);
    let _: i64 = c
        .zadd_multiple("w", &[(1, "one"), (2, "two"), (3, "three")])
        .unwrap();
    assert_eq!(w.join().unwrap(), single("w", "one", "1"));
    let w = blocking(&server, &["BZMPOP", "0", "1", "v", "MAX", "COUNT", "2"]);
    wait_blocked(&mut c, 1);
    let (_, _): (i64, f64) = redis::pipe()
        .atomic()
        .zadd_multiple("v", &[(1, "a"), (2, "b"), (3, "c")])
        .zincr("v", "a", 10)
        .query(&mut c)
        .unwrap();
    assert_eq!(w.join().unwrap(), multi("v", &[("a", "11"), ("c", "3")]));
    let want: Vec<(String, Vec<(String, f64)>)> = ["w", "v"]
        .iter()
        .map(|k| (k.to_string(), c.zrange_withscores(*k, 0, -1).unwrap()))
        .collect();
    assert_eq!(
        want[0].1,
        [("two".to_string(), 2.0), ("three".to_string(), 3.0)]
    );
    assert_eq!(want[1].1, [("b".to_string(), 2.0)]);
    server.kill();
    server.spawn();
    let mut c = server.client();
    for (k, v) in &want {
        let got: Vec<(String, f64)> = c.zrange_withscores(k, 0, -1).unwrap();
        assert_eq!(&got, v, "{k} replayed");
    }
}

/// A tiny xorshift: the stress test's randomness, reproducible by seed.

#[test]
fn every_added_member_is_popped_exactly_once_while_consumers_come_and_go() {
    let dir = temp_dir("bzpop-stress");
    let server = Server::start(&dir, &["--fsync", "no", "--workers", "2"]);
    every_element_popped_once(
        &server,
        Churn {
            keys: ["z1", "z2"],
            per_producer: 300,
            request: |rng, key, t| {
                let name = ["BZPOPMIN", "BZPOPMAX"][rng.below(2) as usize];
                format!("{name} {key} {t}\r\n")
            },
            reply_len: 3,
            add: |c, key, member, i| {
                let _: i64 = c.zadd(key, member, i).unwrap();
            },
            left: |c, key| c.zrange(key, 0, -1).unwrap(),
        },
    );
}
