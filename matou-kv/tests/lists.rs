//! Lists and blocking commands against the real server, through the
//! `redis` crate and raw sockets: replies, blocking served by pushes from
//! other clients (plain, in MULTI/EXEC, by LMOVE), FIFO service, timeouts,
//! CLIENT UNBLOCK / KILL leaving nothing behind, replay after SIGKILL, and
//! a stress test in which every pushed element is popped exactly once
//! while consumers come and go.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Commands, Connection, Value};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn blocked_clients(c: &mut Connection) -> i64 {
    let info: String = cmd("INFO").arg("clients").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .expect("blocked_clients in INFO")
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `n` clients are blocked (the server counts them).
fn wait_blocked(c: &mut Connection, n: i64) {
    let start = Instant::now();
    while blocked_clients(c) != n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never {n} blocked"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a blocking command on its own connection, in a thread: its reply.
fn blocking(server: &Server, args: &[&str]) -> thread::JoinHandle<Value> {
    let mut c = server.client();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    thread::spawn(move || {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        cmd(&args[0]).arg(&args[1..]).query(&mut c).unwrap()
    })
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

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
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Reads whatever the server sends until it closes: the elements of the
/// BLPOP replies in it (`*2 $len key $len element`).
fn elements_of(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == "*2" && i + 4 < lines.len() {
            out.push(lines[i + 4].to_string());
            i += 5;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn every_pushed_element_is_popped_exactly_once_while_consumers_come_and_go() {
    const PRODUCERS: usize = 3;
    const PER_PRODUCER: usize = 400;
    const CONSUMERS: usize = 6;
    let dir = temp_dir("lists-stress");
    let server = Server::start(&dir, &["--fsync", "no"]);
    let popped = Arc::new(Mutex::new(Vec::<String>::new()));
    let producing = Arc::new(AtomicBool::new(true));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| {
            let (popped, producing) = (popped.clone(), producing.clone());
            let port = server.port;
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                let mut leaves = 0;
                while producing.load(Ordering::SeqCst) {
                    // A fresh connection: BLPOP a few times with short
                    // timeouts, then leave, sometimes while blocked. The
                    // leaving half-closes and reads to the end: a reply
                    // the server sent before it saw us go is counted.
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut got = Vec::new();
                    for _ in 0..rng.below(5) + 1 {
                        let key = ["q1", "q2"][rng.below(2) as usize];
                        let t = ["0.01", "0.05", "0.2"][rng.below(3) as usize];
                        let req = format!(
                            "*3\r\n$5\r\nBLPOP\r\n${}\r\n{key}\r\n${}\r\n{t}\r\n",
                            key.len(),
                            t.len()
                        );
                        s.write_all(req.as_bytes()).unwrap();
                        if rng.below(4) == 0 {
                            // Leave while (perhaps) blocked.
                            thread::sleep(Duration::from_millis(rng.below(30)));
                            break;
                        }
                        let mut reply = Vec::new();
                        let mut byte = [0u8; 1];
                        // One reply: `*-1\r\n`, or `*2` and four lines.
                        let mut lines = 0;
                        while lines < 5 {
                            s.read_exact(&mut byte).unwrap();
                            reply.push(byte[0]);
                            if reply.ends_with(b"\r\n") {
                                lines += 1;
                                if lines == 1 && reply.starts_with(b"*-1") {
                                    break;
                                }
                            }
                        }
                        got.extend_from_slice(&reply);
                    }
                    s.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).unwrap();
                    got.extend_from_slice(&rest);
                    leaves += 1;
                    popped.lock().unwrap().extend(elements_of(&got));
                }
                leaves
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut c = server.client();
            thread::spawn(move || {
                let mut rng = Rng(0xDEAD_BEEF ^ (p as u64 + 7));
                for i in 0..PER_PRODUCER {
                    let key = ["q1", "q2"][rng.below(2) as usize];
                    let _: i64 = c.rpush(key, format!("p{p}-{i}")).unwrap();
                    if rng.below(8) == 0 {
                        thread::sleep(Duration::from_millis(rng.below(5)));
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    // Let the consumers drain what is there, then stop them.
    let mut c = server.client();
    let start = Instant::now();
    while c.llen::<_, i64>("q1").unwrap() + c.llen::<_, i64>("q2").unwrap() > 0
        && start.elapsed() < Duration::from_secs(20)
    {
        thread::sleep(Duration::from_millis(20));
    }
    producing.store(false, Ordering::SeqCst);
    let leaves: usize = consumers.into_iter().map(|h| h.join().unwrap()).sum();
    let mut all = popped.lock().unwrap().clone();
    for k in ["q1", "q2"] {
        all.extend(c.lrange::<_, Vec<String>>(k, 0, -1).unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "an element was popped twice");
    let want: HashSet<String> = (0..PRODUCERS)
        .flat_map(|p| (0..PER_PRODUCER).map(move |i| format!("p{p}-{i}")))
        .collect();
    let got: HashSet<String> = all.into_iter().collect();
    assert_eq!(got.len(), want.len(), "an element was lost");
    assert_eq!(got, want);
    assert!(leaves > CONSUMERS, "consumers came and went: {leaves}");
    wait_blocked(&mut c, 0);
}

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
