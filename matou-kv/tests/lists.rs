//! Lists and blocking commands against the real server, through the
//! `redis` crate and raw sockets: replies, blocking served by pushes from
//! other clients (plain, in MULTI/EXEC, by LMOVE), FIFO service, timeouts,
//! CLIENT UNBLOCK / KILL leaving nothing behind, replay after SIGKILL, and
//! a stress test in which every pushed element is popped exactly once
//! while consumers come and go.

mod common;

use common::blocking::{
    blocked_clients, blocking, bulk, every_element_popped_once, wait_blocked, Churn,
};
use common::{temp_dir, Server};
use redis::{cmd, Commands, Value};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn list_commands_answer_through_the_redis_crate() {
    let dir = temp_dir("lists-replies");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let n: i64 = c.rpush("l", &["a", "b", "c"]).unwrap();
    assert_eq!(n, 3);
    let n: i64 = c.lpush("l", "z").unwrap();
    assert_eq!(n, 4);
    let all: Vec<String> = c.lrange("l", 0, -1).unwrap();
    assert_eq!(all, ["z", "a", "b", "c"]);
    let v: String = c.lindex("l", -1).unwrap();
    assert_eq!(v, "c");
    let () = c.lset("l", 1, "A").unwrap();
    let n: i64 = c.linsert_before("l", "b", "p").unwrap();
    assert_eq!(n, 5);
    let pos: Option<i64> = cmd("LPOS").arg("l").arg("p").query(&mut c).unwrap();
    assert_eq!(pos, Some(2));
    let popped: Vec<String> = cmd("RPOP").arg("l").arg(2).query(&mut c).unwrap();
    assert_eq!(popped, ["c", "b"]);
    let moved: String = cmd("LMOVE")
        .arg(&["l", "m", "LEFT", "RIGHT"])
        .query(&mut c)
        .unwrap();
    assert_eq!(moved, "z");
    let v: Value = cmd("LMPOP")
        .arg(&["2", "nope", "l", "LEFT", "COUNT", "5"])
        .query(&mut c)
        .unwrap();
    assert_eq!(
        v,
        Value::Array(vec![bulk("l"), Value::Array(vec![bulk("A"), bulk("p")])])
    );
    let e: String = cmd("OBJECT")
        .arg("ENCODING")
        .arg("m")
        .query(&mut c)
        .unwrap();
    assert_eq!(e, "quicklist");
    let () = c.set("s", "v").unwrap();
    let err = c.lpush::<_, _, i64>("s", "x").unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));
    let err = cmd("BLPOP")
        .arg(&["m", "-1"])
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("timeout is negative"), "{err}");
}

#[test]
fn blocked_clients_are_served_in_order_by_pushes_exec_and_lmove() {
    let dir = temp_dir("lists-blocking");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    // FIFO: three clients on one key, one push of three elements.
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let h = blocking(&server, &["BLPOP", "q", "0"]);
            wait_blocked(&mut c, i + 1);
            h
        })
        .collect();
    let n: i64 = c.rpush("q", &["1", "2", "3"]).unwrap();
    assert_eq!(n, 3, "the push answers with the length it made");
    for (w, want) in waiters.into_iter().zip(["1", "2", "3"]) {
        assert_eq!(w.join().unwrap(), Value::Array(vec![bulk("q"), bulk(want)]));
    }
    assert_eq!(c.exists::<_, i64>("q").unwrap(), 0, "all popped");
    // Served from within MULTI/EXEC, after the transaction (which sees its
    // own push).
    let w = blocking(&server, &["BRPOP", "none", "t", "0"]);
    wait_blocked(&mut c, 1);
    let (len, all): (i64, Vec<String>) = redis::pipe()
        .atomic()
        .rpush("t", &["x", "y"])
        .lrange("t", 0, -1)
        .query(&mut c)
        .unwrap();
    assert_eq!((len, all), (2, vec!["x".to_string(), "y".to_string()]));
    assert_eq!(w.join().unwrap(), Value::Array(vec![bulk("t"), bulk("y")]));
    // By LMOVE into the key; BLMOVE moves on.
    let w = blocking(&server, &["BLMOVE", "dst", "final", "LEFT", "LEFT", "0"]);
    wait_blocked(&mut c, 1);
    let moved: String = cmd("RPOPLPUSH").arg(&["t", "dst"]).query(&mut c).unwrap();
    assert_eq!(moved, "x");
    assert_eq!(w.join().unwrap(), bulk("x"));
    let fin: Vec<String> = c.lrange("final", 0, -1).unwrap();
    assert_eq!(fin, ["x"]);
    // BLMPOP with a count.
    let w = blocking(
        &server,
        &["BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "2"],
    );
    wait_blocked(&mut c, 1);
    let _: i64 = c.rpush("b", &["1", "2", "3"]).unwrap();
    assert_eq!(
        w.join().unwrap(),
        Value::Array(vec![bulk("b"), Value::Array(vec![bulk("3"), bulk("2")])])
    );
    // Inside MULTI nothing blocks: nil at once.
    let (v,): (Value,) = redis::pipe()
        .atomic()
        .cmd("BLPOP")
        .arg(&["empty", "0"])
        .query(&mut c)
        .unwrap();
    assert_eq!(v, Value::Nil);
    assert_eq!(blocked_clients(&mut c), 0);
}

#[test]
fn timeouts_unblock_and_kill_leave_nothing_behind() {
    let dir = temp_dir("lists-timeouts");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    // A fractional timeout answers nil after about that long.
    let start = Instant::now();
    let v: Value = cmd("BLPOP").arg(&["q", "0.3"]).query(&mut c).unwrap();
    let took = start.elapsed();
    assert_eq!(v, Value::Nil);
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let v: Value = cmd("BLMOVE")
        .arg(&["q", "d", "LEFT", "RIGHT", "0.1"])
        .query(&mut c)
        .unwrap();
    assert_eq!(v, Value::Nil);
    // CLIENT UNBLOCK: as a timeout, or with an error.
    for (how, want_err) in [("TIMEOUT", false), ("ERROR", true)] {
        let mut b = server.client();
        let id: i64 = cmd("CLIENT").arg("ID").query(&mut b).unwrap();
        let w = thread::spawn(move || cmd("BLPOP").arg(&["q", "0"]).query::<Value>(&mut b));
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
        let n: i64 = cmd("CLIENT")
            .arg(&["UNBLOCK", &id.to_string()])
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 0, "not blocked any more");
    }
    // CLIENT KILL and a plain disconnect: no waiter left to take a push.
    let mut k = server.client();
    let id: i64 = cmd("CLIENT").arg("ID").query(&mut k).unwrap();
    let killed = thread::spawn(move || cmd("BLPOP").arg(&["q", "0"]).query::<Value>(&mut k));
    let mut raw = server.raw();
    raw.write_all(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")
        .unwrap();
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
    let _: i64 = c.rpush("q", &["kept"]).unwrap();
    let all: Vec<String> = c.lrange("q", 0, -1).unwrap();
    assert_eq!(all, ["kept"], "no departed client took it");
}

#[test]
fn lists_and_served_pops_replay_after_sigkill() {
    let dir = temp_dir("lists-replay");
    let mut server = Server::start(&dir, &[]);
    let mut c = server.client();
    let _: i64 = c.rpush("l", &["a", "b", "c", "d", "e"]).unwrap();
    let _: i64 = c.lrem("l", 1, "b").unwrap();
    let () = c.ltrim("l", 0, 2).unwrap();
    let () = c.lset("l", 0, "A").unwrap();
    let _: i64 = c.linsert_after("l", "c", "C").unwrap();
    let _: String = cmd("LMOVE")
        .arg(&["l", "m", "RIGHT", "LEFT"])
        .query(&mut c)
        .unwrap();
    let w = blocking(&server, &["BLPOP", "w", "0"]);
    wait_blocked(&mut c, 1);
    let _: i64 = c.rpush("w", &["1", "2"]).unwrap();
    assert_eq!(w.join().unwrap(), Value::Array(vec![bulk("w"), bulk("1")]));
    let want: HashMap<&str, Vec<String>> = [
        ("l", vec!["A", "c", "C"]),
        ("m", vec!["d"]),
        ("w", vec!["2"]),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.into_iter().map(String::from).collect()))
    .collect();
    for (k, v) in &want {
        assert_eq!(&c.lrange::<_, Vec<String>>(*k, 0, -1).unwrap(), v, "{k}");
    }
    server.kill();
    server.spawn();
    let mut c = server.client();
    for (k, v) in &want {
        assert_eq!(
            &c.lrange::<_, Vec<String>>(*k, 0, -1).unwrap(),
            v,
            "{k} replayed"
        );
    }
}

/// A tiny xorshift: the stress test's randomness, reproducible by seed.
/// The reliable-queue pattern under SIGKILL: producers push distinct
/// elements, a consumer moves them with BLMOVE to a processing list, and
/// the server is killed and restarted again and again. An acknowledged
/// push is never lost (it is in the queue, in the processing list, or was
/// received), and no element is ever in two places or twice in one.
#[test]
fn acknowledged_elements_survive_sigkill_during_pushes_and_blocking_moves() {
    let dir = temp_dir("lists-crash");
    let mut server = Server::start(&dir, &[]);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut next = 0usize;
    for _round in 0..5 {
        let stop = Arc::new(AtomicBool::new(false));
        let port = server.port;
        let connect = move || {
            redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .unwrap()
                .get_connection_with_timeout(Duration::from_secs(5))
                .unwrap()
        };
        let producer = {
            let (acked, stop) = (acked.clone(), stop.clone());
            let mut c = connect();
            let first = next;
            thread::spawn(move || {
                let mut i = first;
                while !stop.load(Ordering::SeqCst) {
                    let e = format!("e{i}");
                    i += 1;
                    match c.rpush::<_, _, i64>("q", &e) {
                        Ok(_) => acked.lock().unwrap().push(e),
                        Err(_) => break, // killed: this one may or may not be in
                    }
                }
                i
            })
        };
        let consumer = {
            let (received, stop) = (received.clone(), stop.clone());
            let mut c = connect();
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let r: redis::RedisResult<Option<String>> = cmd("BLMOVE")
                        .arg(&["q", "processing", "LEFT", "RIGHT", "0.05"])
                        .query(&mut c);
                    match r {
                        Ok(Some(e)) => received.lock().unwrap().push(e),
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })
        };
        thread::sleep(Duration::from_millis(300));
        server.kill();
        stop.store(true, Ordering::SeqCst);
        next = producer.join().unwrap() + 1;
        consumer.join().unwrap();
        server.spawn();
    }
    let mut c = server.client();
    let queue: Vec<String> = c.lrange("q", 0, -1).unwrap();
    let processing: Vec<String> = c.lrange("processing", 0, -1).unwrap();
    let received = received.lock().unwrap().clone();
    let mut stored: Vec<&String> = queue.iter().chain(&processing).collect();
    let n = stored.len();
    stored.sort();
    stored.dedup();
    assert_eq!(stored.len(), n, "an element is in two places");
    let in_queue: HashSet<&String> = queue.iter().collect();
    let got: HashSet<&String> = received.iter().collect();
    assert_eq!(got.len(), received.len(), "an element was received twice");
    assert!(
        got.iter().all(|e| !in_queue.contains(e)),
        "an element received is still queued"
    );
    let everywhere: HashSet<&String> = stored.into_iter().chain(&received).collect();
    let acked = acked.lock().unwrap();
    let lost: Vec<&String> = acked.iter().filter(|e| !everywhere.contains(e)).collect();
    assert!(lost.is_empty(), "acknowledged pushes lost: {lost:?}");
    assert!(acked.len() > 100, "pushes happened: {}", acked.len());
    assert!(!received.is_empty(), "moves happened");
}

#[test]
fn every_pushed_element_is_popped_exactly_once_while_consumers_come_and_go() {
    let dir = temp_dir("lists-stress");
    let server = Server::start(&dir, &["--fsync", "no"]);
    every_element_popped_once(
        &server,
        Churn {
            keys: ["q1", "q2"],
            per_producer: 400,
            request: |_, key, t| {
                format!(
                    "*3\r\n$5\r\nBLPOP\r\n${}\r\n{key}\r\n${}\r\n{t}\r\n",
                    key.len(),
                    t.len()
                )
            },
            reply_len: 2,
            add: |c, key, element, _| {
                let _: i64 = c.rpush(key, element).unwrap();
            },
            left: |c, key| c.lrange(key, 0, -1).unwrap(),
        },
    );
}
