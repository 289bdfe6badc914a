//! Helpers of the blocking-command tests (lists' BLPOP family, sorted
//! sets' BZPOP family): the server's count of blocked clients, a blocking
//! command on its own connection, and the churn test in which every
//! element added is popped exactly once while consumers come and go.

use super::Server;
use redis::{cmd, Connection, Value};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// INFO's `blocked_clients`.
pub fn blocked_clients(c: &mut Connection) -> i64 {
    let info: String = cmd("INFO").arg("clients").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .expect("blocked_clients in INFO")
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `n` clients are blocked (the server counts them).
pub fn wait_blocked(c: &mut Connection, n: i64) {
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
pub fn blocking(server: &Server, args: &[&str]) -> thread::JoinHandle<Value> {
    let mut c = server.client();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    thread::spawn(move || {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        cmd(&args[0]).arg(&args[1..]).query(&mut c).unwrap()
    })
}

pub fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// A small deterministic PRNG (xorshift), so a failing run can be rerun.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One blocking pop family under churn (see [`every_element_popped_once`]).
pub struct Churn {
    /// The two keys producers add to and consumers pop from.
    pub keys: [&'static str; 2],
    /// Elements per producer (3 producers).
    pub per_producer: usize,
    /// The pop request (RESP) for one key and timeout, picked with the rng.
    pub request: fn(&mut Rng, &str, &str) -> String,
    /// Array length of a served reply (`*2` for BLPOP, `*3` for BZPOPMIN);
    /// the element is its second bulk string.
    pub reply_len: usize,
    /// Adds element `i` (`member`) of a producer to `key`.
    pub add: fn(&mut Connection, &str, String, usize),
    /// What is still stored under a key at the end.
    pub left: fn(&mut Connection, &str) -> Vec<String>,
}

/// The elements of the served replies in `bytes` (`*N $ key $ element ...`).
fn elements_of(bytes: &[u8], reply_len: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.split("\r\n").collect();
    let header = format!("*{reply_len}");
    let span = 1 + 2 * reply_len;
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i] == header && i + span - 1 < lines.len() {
            out.push(lines[i + 4].to_string());
            i += span;
        } else {
            i += 1;
        }
    }
    out
}

/// 3 producers add distinct elements while 6 consumers pop them with short
/// timeouts on fresh connections that leave at random, sometimes while
/// blocked. Every element added is popped exactly once or still stored,
/// and no client is left blocked.
pub fn every_element_popped_once(server: &Server, churn: Churn) {
    const PRODUCERS: usize = 3;
    const CONSUMERS: usize = 6;
    let popped = Arc::new(Mutex::new(Vec::<String>::new()));
    let producing = Arc::new(AtomicBool::new(true));
    let (keys, request, reply_len) = (churn.keys, churn.request, churn.reply_len);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| {
            let (popped, producing) = (popped.clone(), producing.clone());
            let port = server.port;
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                let mut leaves = 0;
                while producing.load(Ordering::SeqCst) {
                    // A fresh connection: a few pops with short timeouts,
                    // then leave, sometimes while blocked. Leaving
                    // half-closes and reads to the end: a reply the server
                    // sent before it saw us go is counted.
                    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut got = Vec::new();
                    for _ in 0..rng.below(5) + 1 {
                        let key = keys[rng.below(2) as usize];
                        let t = ["0.01", "0.05", "0.2"][rng.below(3) as usize];
                        s.write_all(request(&mut rng, key, t).as_bytes()).unwrap();
                        if rng.below(4) == 0 {
                            thread::sleep(Duration::from_millis(rng.below(30)));
                            break;
                        }
                        // One reply: `*-1`, or the array's header and its
                        // bulk strings.
                        let mut reply = Vec::new();
                        let mut byte = [0u8; 1];
                        let mut lines = 0;
                        while lines < 1 + 2 * reply_len {
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
                    popped.lock().unwrap().extend(elements_of(&got, reply_len));
                }
                leaves
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut c = server.client();
            let (add, per_producer) = (churn.add, churn.per_producer);
            thread::spawn(move || {
                let mut rng = Rng(0xDEAD_BEEF ^ (p as u64 + 7));
                for i in 0..per_producer {
                    let key = keys[rng.below(2) as usize];
                    add(&mut c, key, format!("p{p}-{i}"), i);
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
    while keys
        .iter()
        .map(|k| (churn.left)(&mut c, k).len())
        .sum::<usize>()
        > 0
        && start.elapsed() < Duration::from_secs(20)
    {
        thread::sleep(Duration::from_millis(20));
    }
    producing.store(false, Ordering::SeqCst);
    let leaves: usize = consumers.into_iter().map(|h| h.join().unwrap()).sum();
    let mut all = popped.lock().unwrap().clone();
    for k in keys {
        all.extend((churn.left)(&mut c, k));
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "an element was popped twice");
    let want: HashSet<String> = (0..PRODUCERS)
        .flat_map(|p| (0..churn.per_producer).map(move |i| format!("p{p}-{i}")))
        .collect();
    let got: HashSet<String> = all.into_iter().collect();
    assert_eq!(got.len(), want.len(), "an element was lost");
    assert_eq!(got, want);
    assert!(leaves > CONSUMERS, "consumers came and went: {leaves}");
    wait_blocked(&mut c, 0);
}
