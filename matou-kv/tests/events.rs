//! Keyspace notifications of the list, set, sorted-set and hash commands
//! (the exact event names and order of Redis 7.0, checked against a
//! subscriber through the `redis` crate), RESET, SUBSCRIBE queued in
//! MULTI, and the CLIENT LIST fields of subscriptions, transactions and
//! blocked clients, against the real server.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Connection, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

/// The `__keyevent@0__` events (event, key) published until the `set` of
/// the key `end` (sent last by the caller), in order.
fn events_until_end(p: &mut redis::PubSub<'_>) -> Vec<(String, String)> {
    p.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    loop {
        let m = p.get_message().expect("an event before the timeout");
        let channel = m.get_channel_name().to_string();
        let key: String = m.get_payload().unwrap();
        let event = channel
            .strip_prefix("__keyevent@0__:")
            .unwrap_or_else(|| panic!("a keyevent channel: {channel}"))
            .to_string();
        if event == "set" && key == "end" {
            return out;
        }
        out.push((event, key));
    }
}

/// Runs each command (words split on spaces) on `c`, then `SET end 1`.
fn run_all(c: &mut Connection, commands: &[&str]) {
    for line in commands {
        let words: Vec<&str> = line.split(' ').collect();
        let _: Value = cmd(words[0]).arg(&words[1..]).query(c).unwrap();
    }
    let _: () = cmd("SET").arg(&["end", "1"]).query(c).unwrap();
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(e, k)| (e.to_string(), k.to_string()))
        .collect()
}

#[test]
fn list_set_zset_and_hash_commands_publish_redis_events() {
    let dir = temp_dir("events-types");
    let server = Server::start(&dir, &["--notify-keyspace-events", "KEA"]);
    let mut c = server.client();
    let mut sub = server.client();
    let mut p = sub.as_pubsub();
    p.psubscribe("__keyevent@0__:*").unwrap();
    // Lists.
    run_all(
        &mut c,
        &[
            "RPUSH l a b c d",
            "LPUSH l z",
            "RPUSHX nolist x",
            "LINSERT l BEFORE a y",
            "LSET l 0 Z",
            "LREM l 1 y",
            "LREM l 1 absent",
            "LTRIM l 0 -1",
            "LPOP l",
            "RPOP l 2",
            "LMOVE l l2 LEFT RIGHT",
            "RPOPLPUSH l2 l3",
            "LTRIM l3 5 10",
        ],
    );
    assert_eq!(
        events_until_end(&mut p),
        pairs(&[
            ("rpush", "l"),
            ("lpush", "l"),
            ("linsert", "l"),
            ("lset", "l"),
            ("lrem", "l"),
            // A trim that keeps everything is reported too.
            ("ltrim", "l"),
            ("lpop", "l"),
            ("rpop", "l"),
            // LMOVE: the push, then the pop (and an emptied source's del).
            ("rpush", "l2"),
            ("lpop", "l"),
            ("lpush", "l3"),
            ("rpop", "l2"),
            ("del", "l2"),
            ("ltrim", "l3"),
            ("del", "l3"),
        ])
    );
    // Sets.
    run_all(
        &mut c,
        &[
            "SADD s a b c",
            "SADD s a",
            "SREM s a",
            "SMOVE s s2 b",
            "SPOP s",
            "SADD t x y",
            "SINTERSTORE i s2 t",
            "SUNIONSTORE u s2 t",
            "SDIFFSTORE d t s2",
            "SREM s2 b",
        ],
    );
    assert_eq!(
        events_until_end(&mut p),
        pairs(&[
            ("sadd", "s"),
            ("srem", "s"),
            ("srem", "s"),
            ("sadd", "s2"),
            ("spop", "s"),
            ("del", "s"),
            ("sadd", "t"),
            // An empty intersection of an absent destination: nothing.
            ("sunionstore", "u"),
            ("sdiffstore", "d"),
            ("srem", "s2"),
            ("del", "s2"),
        ])
    );
    // Sorted sets.
    run_all(
        &mut c,
        &[
            "ZADD z 1 a 2 b 3 c 4 d 5 e",
            "ZADD z 1 a",
            "ZINCRBY z 10 a",
            "ZREM z b",
            "ZPOPMIN z",
            "ZPOPMAX z",
            "ZADD z 2 b 3 c 6 f",
            "ZREMRANGEBYSCORE z 0 2",
            "ZREMRANGEBYRANK z 0 0",
            "ZADD lex 0 a 0 b",
            "ZREMRANGEBYLEX lex [a [a",
            "ZUNIONSTORE zu 2 z lex",
            "ZINTERSTORE zi 2 z lex",
            "ZDIFFSTORE zd 1 z",
            "ZRANGESTORE zr z 0 0",
            "ZMPOP 1 zr MAX",
            "ZUNIONSTORE zu 1 nothing",
        ],
    );
    assert_eq!(
        events_until_end(&mut p),
        pairs(&[
            ("zadd", "z"),
            ("zincr", "z"),
            ("zrem", "z"),
            ("zpopmin", "z"),
            ("zpopmax", "z"),
            ("zadd", "z"),
            ("zremrangebyscore", "z"),
            ("zremrangebyrank", "z"),
            ("zadd", "lex"),
            ("zremrangebylex", "lex"),
            ("zunionstore", "zu"),
            ("zdiffstore", "zd"),
            ("zrangestore", "zr"),
            ("zpopmax", "zr"),
            ("del", "zr"),
            // An empty result deletes the destination.
            ("del", "zu"),
        ])
    );
    // A blocked BZPOPMIN served by a ZADD: the add, then the pop.
    let mut b = server.client();
    let waiter = thread::spawn(move || {
        cmd("BZPOPMIN")
            .arg(&["bz", "0"])
            .query::<Value>(&mut b)
            .unwrap()
    });
    let start = Instant::now();
    loop {
        let list: String = cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
        if list.contains("cmd=bzpopmin") && list.contains("flags=b") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never blocked");
        thread::sleep(Duration::from_millis(10));
    }
    run_all(&mut c, &["ZADD bz 1 m"]);
    waiter.join().unwrap();
    assert_eq!(
        events_until_end(&mut p),
        pairs(&[("zadd", "bz"), ("zpopmin", "bz"), ("del", "bz")])
    );
    // Hashes.
    run_all(
        &mut c,
        &[
            "HSET h f 1 g 2",
            "HSETNX h f 9",
            "HSETNX h n 9",
            "HINCRBY h f 1",
            "HINCRBYFLOAT h g 0.5",
            "HDEL h f g",
            "HDEL h n",
            "RENAME zd zd2",
        ],
    );
    assert_eq!(
        events_until_end(&mut p),
        pairs(&[
            ("hset", "h"),
            ("hset", "h"),
            ("hincrby", "h"),
            ("hincrbyfloat", "h"),
            ("hdel", "h"),
            ("hdel", "h"),
            ("del", "h"),
            ("rename_from", "zd"),
            ("rename_to", "zd2"),
        ])
    );
    // RESTORE and BITFIELD (a change; a read-only GET changes nothing).
    let payload: Vec<u8> = cmd("DUMP").arg("zd2").query(&mut c).unwrap();
    let _: () = cmd("RESTORE")
        .arg("copy")
        .arg(0)
        .arg(&payload)
        .query(&mut c)
        .unwrap();
    run_all(
        &mut c,
        &["BITFIELD bf SET u8 0 255", "BITFIELD bf GET u8 0"],
    );
    assert_eq!(
        events_until_end(&mut p),
        pairs(&[("restore", "copy"), ("setbit", "bf")])
    );
    // The class letters mask: only sets (`s`), on keyevent channels.
    let _: () = cmd("CONFIG")
        .arg(&["SET", "notify-keyspace-events", "Es$"])
        .query(&mut c)
        .unwrap();
    run_all(&mut c, &["RPUSH quiet x", "ZADD quiet2 1 x", "SADD loud x"]);
    assert_eq!(events_until_end(&mut p), pairs(&[("sadd", "loud")]));
}

/// Sends `req` and reads exactly `want.len()` bytes, which must be `want`
/// (a slow server only makes it wait, up to 10 s).
fn exchange(s: &mut TcpStream, req: &str, want: &str) {
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want.len() {
        let n = s
            .read(&mut buf[..want.len() - got.len()])
            .unwrap_or_else(|e| {
                panic!(
                    "{e} after {req:?}: got {:?} of {want:?}",
                    String::from_utf8_lossy(&got)
                )
            });
        assert!(
            n > 0,
            "closed after {req:?}: got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&got), want, "after {req:?}");
}

/// The value of `field` in a CLIENT INFO / LIST line.
fn field<'a>(line: &'a str, field: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(field).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{field} in {line}"))
}

/// The CLIENT LIST line of the client named `name`.
fn line_of(c: &mut Connection, name: &str) -> String {
    let list: String = cmd("CLIENT").arg("LIST").query(c).unwrap();
    list.lines()
        .find(|l| field(l, "name") == name)
        .unwrap_or_else(|| panic!("{name} in {list}"))
        .to_string()
}

#[test]
fn client_list_shows_subscriptions_transactions_and_blocked_clients() {
    let dir = temp_dir("events-client-list");
    let server = Server::start(&dir, &["--workers", "2"]);
    let mut admin = server.client();
    let mut s = server.raw();
    exchange(&mut s, "CLIENT SETNAME watched\r\n", "+OK\r\n");
    let queued = "+QUEUED\r\n";
    exchange(
        &mut s,
        "MULTI\r\nSET a 1\r\nGET a\r\n",
        &format!("+OK\r\n{queued}{queued}"),
    );
    let l = line_of(&mut admin, "watched");
    assert_eq!((field(&l, "flags"), field(&l, "multi")), ("x", "2"), "{l}");
    // Queued in MULTI, subscriptions are made by EXEC, as in Redis 7.0.
    exchange(
        &mut s,
        "SUBSCRIBE c1 c2\r\nPSUBSCRIBE p*\r\nSSUBSCRIBE sh\r\n",
        &queued.repeat(3),
    );
    // One slot per command: SUBSCRIBE c1 c2's two frames as an array.
    let frame = |kind: &str, name: &str, n: i64| {
        format!(
            "*3\r\n${}\r\n{kind}\r\n${}\r\n{name}\r\n:{n}\r\n",
            kind.len(),
            name.len()
        )
    };
    exchange(
        &mut s,
        "EXEC\r\n",
        &format!(
            "*5\r\n+OK\r\n$1\r\n1\r\n*2\r\n{}{}{}{}",
            frame("subscribe", "c1", 1),
            frame("subscribe", "c2", 2),
            frame("psubscribe", "p*", 3),
            frame("ssubscribe", "sh", 1)
        ),
    );
    let n: i64 = cmd("PUBLISH")
        .arg(&["c1", "hello"])
        .query(&mut admin)
        .unwrap();
    assert_eq!(n, 1, "subscribed by the EXEC");
    let l = line_of(&mut admin, "watched");
    assert_eq!(
        ["flags", "sub", "psub", "ssub", "multi"].map(|f| field(&l, f)),
        ["P", "2", "1", "1", "-1"],
        "{l}"
    );
    // RESET in subscribed mode: unsubscribed from everything, no name.
    exchange(
        &mut s,
        "RESET\r\n",
        "*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$5\r\nhello\r\n+RESET\r\n",
    );
    let n: i64 = cmd("PUBLISH")
        .arg(&["c1", "again"])
        .query(&mut admin)
        .unwrap();
    assert_eq!(n, 0, "unsubscribed by RESET");
    exchange(
        &mut s,
        "CLIENT SETNAME again\r\nBLPOP nothing 0\r\n",
        "+OK\r\n",
    );
    let start = Instant::now();
    let l = loop {
        let l = line_of(&mut admin, "again");
        if field(&l, "flags") == "b" {
            break l;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never blocked: {l}"
        );
        thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(
        ["flags", "sub", "psub", "ssub", "cmd"].map(|f| field(&l, f)),
        ["b", "0", "0", "0", "blpop"],
        "{l}"
    );
    let id = field(&l, "id").to_string();
    let n: i64 = cmd("CLIENT")
        .arg(&["UNBLOCK", &id])
        .query(&mut admin)
        .unwrap();
    assert_eq!(n, 1);
    exchange(&mut s, "", "*-1\r\n");
    assert_eq!(field(&line_of(&mut admin, "again"), "flags"), "N");
}

#[test]
fn reset_leaves_multi_watch_database_protocol_name_and_reply_mode() {
    let dir = temp_dir("events-reset");
    let server = Server::start(&dir, &[]);
    let mut admin = server.client();
    let mut s = server.raw();
    // A pipeline: RESET comes after the requests before it ran.
    // Out of MULTI (nothing queued ran), no name, database 0.
    exchange(
        &mut s,
        "CLIENT SETNAME named\r\nSELECT 3\r\nSET k three\r\nWATCH w\r\nMULTI\r\nSET k queued\r\n\
         RESET\r\nCLIENT GETNAME\r\nGET k\r\n",
        "+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n+RESET\r\n$-1\r\n$-1\r\n",
    );
    // The WATCH is gone: a change to `w` does not fail the next EXEC.
    let _: () = cmd("SET").arg(&["w", "changed"]).query(&mut admin).unwrap();
    exchange(
        &mut s,
        "MULTI\r\nSET k zero\r\nEXEC\r\n",
        "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n",
    );
    let three: String = cmd("SELECT")
        .arg(3)
        .query::<()>(&mut admin)
        .and_then(|()| cmd("GET").arg("k").query(&mut admin))
        .unwrap();
    assert_eq!(three, "three", "database 3 untouched by the queued SET");
    // RESP3 and CLIENT REPLY OFF: RESET answers, in RESP2, and replies are
    // on again.
    exchange(&mut s, "HELLO 3\r\n", "%7\r\n");
    // The rest of HELLO's map, up to its last field.
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"modules\r\n*0\r\n") {
        s.read_exact(&mut byte).unwrap();
        got.push(byte[0]);
    }
    // Muted PING; RESET answered; HGETALL's empty reply in RESP2 again.
    exchange(
        &mut s,
        "CLIENT REPLY OFF\r\nPING\r\nRESET\r\nHGETALL none\r\n",
        "+RESET\r\n*0\r\n",
    );
    // Out of MONITOR: a plain connection again (a request pipelined after
    // the RESET is served), no longer fed the others' commands.
    exchange(&mut s, "MONITOR\r\n", "+OK\r\n");
    exchange(&mut s, "RESET\r\nECHO back\r\n", "+RESET\r\n$4\r\nback\r\n");
    let _: () = cmd("SET").arg(&["unseen", "1"]).query(&mut admin).unwrap();
    exchange(&mut s, "PING\r\n", "+PONG\r\n");
    // Wrong arity is an error like any other.
    exchange(
        &mut s,
        "RESET now\r\n",
        "-ERR wrong number of arguments for 'reset' command\r\n",
    );
}

#[test]
fn reset_deauthenticates_when_a_password_is_set() {
    let dir = temp_dir("events-reset-auth");
    let server = Server::start(&dir, &["--requirepass", "secret"]);
    let mut s = server.raw();
    exchange(
        &mut s,
        "AUTH secret\r\nSET a 1\r\nRESET\r\nGET a\r\n",
        "+OK\r\n+OK\r\n+RESET\r\n-NOAUTH",
    );
}
