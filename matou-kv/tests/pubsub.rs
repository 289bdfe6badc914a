//! Pub/sub and keyspace notifications against the real server, with real
//! clients: the `redis` crate's pub/sub for RESP2, raw sockets for the exact
//! bytes and for RESP3's push frames. Publishers and subscribers are spread
//! over several workers; a subscriber that does not read is disconnected at
//! `client-output-buffer-limit pubsub` while the others are served.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Commands};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends `req` and reads exactly `want.len()` bytes, which must be `want`.
fn exchange(s: &mut TcpStream, req: &[u8], want: &[u8]) {
    s.write_all(req).unwrap();
    expect(s, want);
}

/// Reads exactly `want.len()` bytes, which must be `want`.
fn expect(s: &mut TcpStream, want: &[u8]) {
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want),
        "after {:?}",
        String::from_utf8_lossy(want)
    );
}

/// One message of a subscription, as (channel, payload).
fn next(p: &mut redis::PubSub<'_>) -> (String, String) {
    let m = p.get_message().expect("a message before the timeout");
    (m.get_channel_name().to_string(), m.get_payload().unwrap())
}

#[test]
fn publishers_on_every_worker_reach_subscribers_on_every_worker() {
    let dir = temp_dir("pubsub-workers");
    let server = Server::start(&dir, &["--workers", "3"]);
    const SUBSCRIBERS: usize = 8;
    const PUBLISHERS: usize = 4;
    const EACH: usize = 200;
    // Half subscribe to the channel, half to a pattern matching it: each
    // message counts once per subscriber.
    let mut subs: Vec<redis::Connection> = (0..SUBSCRIBERS).map(|_| server.client()).collect();
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for (i, mut con) in subs.drain(..).enumerate() {
        let ready = ready_tx.clone();
        handles.push(std::thread::spawn(move || {
            let mut p = con.as_pubsub();
            p.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            if i % 2 == 0 {
                p.subscribe("news").unwrap();
            } else {
                p.psubscribe("ne*").unwrap();
            }
            ready.send(()).unwrap();
            let mut last = vec![None::<usize>; PUBLISHERS];
            for _ in 0..PUBLISHERS * EACH {
                let (channel, payload) = next(&mut p);
                assert_eq!(channel, "news");
                let (who, n) = payload.split_once(':').unwrap();
                let (who, n): (usize, usize) = (who.parse().unwrap(), n.parse().unwrap());
                // Each publisher's messages arrive in its order.
                assert_eq!(last[who].map_or(0, |l| l + 1), n, "from publisher {who}");
                last[who] = Some(n);
            }
            last
        }));
    }
    for _ in 0..SUBSCRIBERS {
        ready_rx.recv().unwrap();
    }
    let mut probe = server.client();
    let numsub: Vec<redis::Value> = cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("news")
        .query(&mut probe)
        .unwrap();
    assert_eq!(numsub[1], redis::Value::Int((SUBSCRIBERS / 2) as i64));
    let numpat: i64 = cmd("PUBSUB").arg("NUMPAT").query(&mut probe).unwrap();
    assert_eq!(numpat, 1);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|who| {
            let mut con = server.client();
            std::thread::spawn(move || {
                for n in 0..EACH {
                    let receivers: usize = con.publish("news", format!("{who}:{n}")).unwrap();
                    assert_eq!(receivers, SUBSCRIBERS);
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    for h in handles {
        let last = h.join().unwrap();
        assert!(last.iter().all(|l| *l == Some(EACH - 1)), "{last:?}");
    }
    // The subscribers are gone: so are their subscriptions.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let channels: Vec<String> = cmd("PUBSUB").arg("CHANNELS").query(&mut probe).unwrap();
        let numpat: i64 = cmd("PUBSUB").arg("NUMPAT").query(&mut probe).unwrap();
        if channels.is_empty() && numpat == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {channels:?} {numpat}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn resp2_subscribed_mode_answers_as_redis() {
    let dir = temp_dir("pubsub-resp2");
    let server = Server::start(&dir, &[]);
    let mut s = server.raw();
    exchange(
        &mut s,
        b"SUBSCRIBE a b\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
    );
    exchange(
        &mut s,
        b"GET k\r\n",
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
          RESET are allowed in this context\r\n",
    );
    exchange(&mut s, b"PING\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    exchange(
        &mut s,
        b"PSUBSCRIBE x*\r\n",
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\nx*\r\n:3\r\n",
    );
    let mut other = server.client();
    let n: i64 = other.publish("xy", "hello").unwrap();
    assert_eq!(n, 1);
    expect(
        &mut s,
        b"*4\r\n$8\r\npmessage\r\n$2\r\nx*\r\n$2\r\nxy\r\n$5\r\nhello\r\n",
    );
    let n: i64 = other.publish("a", "1").unwrap();
    assert_eq!(n, 1);
    expect(&mut s, b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\n1\r\n");
    exchange(
        &mut s,
        b"PUNSUBSCRIBE\r\n",
        b"*3\r\n$12\r\npunsubscribe\r\n$2\r\nx*\r\n:2\r\n",
    );
    exchange(
        &mut s,
        b"UNSUBSCRIBE a\r\n",
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n",
    );
    exchange(
        &mut s,
        b"UNSUBSCRIBE\r\n",
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n",
    );
    // Out of subscribed mode: any command again.
    exchange(&mut s, b"GET k\r\n", b"$-1\r\n");
    exchange(&mut s, b"PING\r\n", b"+PONG\r\n");
    // Shard channels: their own namespace and count.
    exchange(
        &mut s,
        b"SSUBSCRIBE s1\r\n",
        b"*3\r\n$10\r\nssubscribe\r\n$2\r\ns1\r\n:1\r\n",
    );
    let n: i64 = cmd("SPUBLISH")
        .arg("s1")
        .arg("v")
        .query(&mut other)
        .unwrap();
    assert_eq!(n, 1);
    let n: i64 = other.publish("s1", "v").unwrap();
    assert_eq!(n, 0, "PUBLISH does not reach shard subscribers");
    expect(&mut s, b"*3\r\n$8\r\nsmessage\r\n$2\r\ns1\r\n$1\r\nv\r\n");
    let shards: Vec<String> = cmd("PUBSUB")
        .arg("SHARDCHANNELS")
        .query(&mut other)
        .unwrap();
    assert_eq!(shards, vec!["s1".to_string()]);
    exchange(
        &mut s,
        b"SUNSUBSCRIBE\r\n",
        b"*3\r\n$12\r\nsunsubscribe\r\n$2\r\ns1\r\n:0\r\n",
    );
    exchange(
        &mut s,
        b"SUNSUBSCRIBE\r\n",
        b"*3\r\n$12\r\nsunsubscribe\r\n$-1\r\n:0\r\n",
    );
}

#[test]
fn resp3_subscribers_get_push_frames_and_may_run_any_command() {
    let dir = temp_dir("pubsub-resp3");
    let server = Server::start(&dir, &["--workers", "2"]);
    let mut s = server.raw();
    s.write_all(b"HELLO 3\r\n").unwrap();
    // Skip HELLO's map: it ends with the empty modules array.
    let mut seen = Vec::new();
    while !seen.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        seen.push(b[0]);
    }
    exchange(
        &mut s,
        b"SUBSCRIBE c\r\n",
        b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    );
    // No subscribed mode in RESP3.
    exchange(&mut s, b"SET k v\r\n", b"+OK\r\n");
    exchange(&mut s, b"GET k\r\n", b"$1\r\nv\r\n");
    exchange(&mut s, b"PING\r\n", b"+PONG\r\n");
    // Published from other connections (on other workers, likely).
    for i in 0..20 {
        let mut other = server.client();
        let n: i64 = other.publish("c", format!("m{i:02}")).unwrap();
        assert_eq!(n, 1);
        expect(
            &mut s,
            format!(">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$3\r\nm{i:02}\r\n").as_bytes(),
        );
    }
    // Published to itself: the message first, then the count (as Redis).
    exchange(
        &mut s,
        b"PUBLISH c self\r\n",
        b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$4\r\nself\r\n:1\r\n",
    );
    exchange(
        &mut s,
        b"UNSUBSCRIBE\r\n",
        b">3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n",
    );
    exchange(
        &mut s,
        b"UNSUBSCRIBE\r\n",
        b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n",
    );
}

/// Polls `f` until it is true (at most 10 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn numsub(con: &mut redis::Connection, channel: &str) -> i64 {
    let v: Vec<redis::Value> = cmd("PUBSUB").arg("NUMSUB").arg(channel).query(con).unwrap();
    match v[1] {
        redis::Value::Int(n) => n,
        ref other => panic!("{other:?}"),
    }
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_and_the_others_are_served() {
    let dir = temp_dir("pubsub-slow");
    let mut server = Server::start(
        &dir,
        &[
            "--workers",
            "2",
            "--client-output-buffer-limit",
            "pubsub 256kb 0 0",
        ],
    );
    // The slow one subscribes and then never reads.
    let mut slow = server.raw();
    exchange(
        &mut slow,
        b"SUBSCRIBE big\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$3\r\nbig\r\n:1\r\n",
    );
    const MESSAGES: usize = 3000;
    let payload = "x".repeat(16 * 1024);
    // The reading one reports its progress: the publisher stays at most a
    // few messages ahead of it, so that only the slow one falls behind.
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fast = {
        let mut con = server.client();
        let taken = taken.clone();
        std::thread::spawn(move || {
            let mut p = con.as_pubsub();
            p.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            p.subscribe("big").unwrap();
            let mut good = 0;
            for _ in 0..MESSAGES {
                good += usize::from(next(&mut p).1.len() == 16 * 1024);
                taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            good
        })
    };
    let mut publisher = server.client();
    eventually("both subscribed", || numsub(&mut publisher, "big") == 2);
    // 48 MB in all: far over what the socket buffers and the 256 KB limit
    // hold for the slow one.
    let mut receivers = Vec::new();
    for sent in 0..MESSAGES {
        while sent > taken.load(std::sync::atomic::Ordering::SeqCst) + 4 {
            std::thread::yield_now();
        }
        let n: i64 = publisher.publish("big", &payload).unwrap();
        receivers.push(n);
    }
    assert_eq!(
        fast.join().unwrap(),
        MESSAGES,
        "the reading subscriber got all"
    );
    assert_eq!(receivers[0], 2);
    assert_eq!(*receivers.last().unwrap(), 1, "the slow one was dropped");
    eventually("the slow one unsubscribed", || {
        numsub(&mut publisher, "big") == 0
    });
    // Its connection was closed (after whatever the socket still held).
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 20];
    loop {
        match slow.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let log = server.stderr();
    assert!(
        log.contains("client-output-buffer-limit pubsub"),
        "the reason is logged: {log}"
    );
    // Healthy: it answers, and new subscribers are served.
    let pong: String = cmd("PING").query(&mut publisher).unwrap();
    assert_eq!(pong, "PONG");
    let mut s = server.raw();
    exchange(
        &mut s,
        b"SUBSCRIBE big\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$3\r\nbig\r\n:1\r\n",
    );
    let n: i64 = publisher.publish("big", "small").unwrap();
    assert_eq!(n, 1);
    expect(
        &mut s,
        b"*3\r\n$7\r\nmessage\r\n$3\r\nbig\r\n$5\r\nsmall\r\n",
    );
    server.terminate();
}

#[test]
fn config_set_changes_the_pubsub_limit_of_connected_subscribers() {
    let dir = temp_dir("pubsub-limit-live");
    let server = Server::start(&dir, &[]);
    let mut admin = server.client();
    let limit: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("client-output-buffer-limit")
        .query(&mut admin)
        .unwrap();
    assert!(
        limit[1].ends_with("pubsub 33554432 8388608 60"),
        "{limit:?}"
    );
    let mut slow = server.raw();
    exchange(
        &mut slow,
        b"SUBSCRIBE c\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    );
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 64kb 0 0")
        .query(&mut admin)
        .unwrap();
    let bad: redis::RedisResult<()> = cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 1 2")
        .query(&mut admin);
    assert!(bad.is_err());
    let payload = "y".repeat(8 * 1024);
    // The socket buffers take a few MB; then the 64 KB limit drops it.
    eventually("the subscriber is dropped", || {
        for _ in 0..64 {
            let _: i64 = admin.publish("c", &payload).unwrap();
        }
        numsub(&mut admin, "c") == 0
    });
}

/// Collects the messages that arrive within `wait`.
fn drain(p: &mut redis::PubSub<'_>, wait: Duration) -> Vec<(String, String)> {
    p.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    while let Ok(m) = p.get_message() {
        out.push((m.get_channel_name().to_string(), m.get_payload().unwrap()));
    }
    out
}

#[test]
fn keyspace_notifications_for_set_expire_del_and_expired() {
    let dir = temp_dir("pubsub-keyspace");
    let server = Server::start(&dir, &["--workers", "2"]);
    let mut con = server.client();
    let mut sub = server.client();
    let mut p = sub.as_pubsub();
    p.psubscribe("__key*__:*").unwrap();
    // Off by default.
    let _: () = con.set("quiet", "1").unwrap();
    assert!(drain(&mut p, Duration::from_millis(200)).is_empty());
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KEA")
        .query(&mut con)
        .unwrap();
    let flags: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut con)
        .unwrap();
    assert_eq!(flags[1], "AKE");
    let bad: redis::RedisResult<()> = cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KEw")
        .query(&mut con);
    assert!(bad.is_err(), "an unknown class is refused");
    let _: () = con.set("k", "v").unwrap();
    let _: () = con.expire("k", 100).unwrap();
    let _: () = con.del("k").unwrap();
    let _: () = cmd("PSETEX")
        .arg("e")
        .arg(50)
        .arg("v")
        .query(&mut con)
        .unwrap();
    let got = drain(&mut p, Duration::from_millis(1500));
    let pair = |c: &str, d: &str| (c.to_string(), d.to_string());
    assert_eq!(
        got,
        vec![
            pair("__keyspace@0__:k", "set"),
            pair("__keyevent@0__:set", "k"),
            pair("__keyspace@0__:k", "expire"),
            pair("__keyevent@0__:expire", "k"),
            pair("__keyspace@0__:k", "del"),
            pair("__keyevent@0__:del", "k"),
            pair("__keyspace@0__:e", "set"),
            pair("__keyevent@0__:set", "e"),
            pair("__keyspace@0__:e", "expire"),
            pair("__keyevent@0__:expire", "e"),
            // Expired by the server in the background.
            pair("__keyspace@0__:e", "expired"),
            pair("__keyevent@0__:expired", "e"),
        ]
    );
    // A class mask: only expired events, only on keyevent channels.
    let _: () = cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Ex")
        .query(&mut con)
        .unwrap();
    let _: () = cmd("SELECT").arg(3).query(&mut con).unwrap();
    let _: () = cmd("PSETEX")
        .arg("f")
        .arg(30)
        .arg("v")
        .query(&mut con)
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Lazy expiry: the write finds it expired.
    let _: () = con.set("f", "again").unwrap();
    let got = drain(&mut p, Duration::from_millis(500));
    assert_eq!(got, vec![pair("__keyevent@3__:expired", "f")]);
}

#[test]
fn notify_keyspace_events_is_read_from_the_command_line() {
    let dir = temp_dir("pubsub-keyspace-flag");
    let server = Server::start(&dir, &["--notify-keyspace-events", "Kg"]);
    let mut con = server.client();
    let mut sub = server.client();
    let mut p = sub.as_pubsub();
    p.psubscribe("*").unwrap();
    let _: () = con.set("a", "1").unwrap();
    let _: () = cmd("RENAME").arg("a").arg("b").query(&mut con).unwrap();
    let got = drain(&mut p, Duration::from_millis(500));
    assert_eq!(
        got,
        vec![
            ("__keyspace@0__:a".to_string(), "rename_from".to_string()),
            ("__keyspace@0__:b".to_string(), "rename_to".to_string()),
        ]
    );
}

#[test]
fn evicted_and_new_key_events() {
    let dir = temp_dir("pubsub-evicted");
    let server = Server::start(
        &dir,
        &[
            "--maxmemory",
            "1mb",
            "--maxmemory-policy",
            "allkeys-lru",
            "--notify-keyspace-events",
            "Een",
        ],
    );
    let mut con = server.client();
    let mut sub = server.client();
    let mut p = sub.as_pubsub();
    p.psubscribe("__keyevent@0__:*").unwrap();
    let _: () = con.set("first", "1").unwrap();
    let _: () = con.set("first", "2").unwrap();
    let got = drain(&mut p, Duration::from_millis(300));
    // A second SET of the key is no new key.
    assert_eq!(
        got,
        vec![("__keyevent@0__:new".to_string(), "first".to_string())]
    );
    let value = "v".repeat(10 * 1024);
    for i in 0..300 {
        let _: () = con.set(format!("k{i}"), &value).unwrap();
    }
    let got = drain(&mut p, Duration::from_millis(500));
    let evicted: Vec<&String> = got
        .iter()
        .filter(|(c, _)| c == "__keyevent@0__:evicted")
        .map(|(_, k)| k)
        .collect();
    assert!(
        !evicted.is_empty(),
        "3 MB written under a 1 MB limit: {got:?}"
    );
    for k in &evicted {
        let exists: bool = con.exists(k.as_str()).unwrap();
        assert!(!exists, "{k} was evicted");
    }
}
