//! Durability under crashes: SIGKILL at random moments never loses an
//! acknowledged write (`--fsync always`), and a torn tail is cut back to the
//! valid prefix at start (other damage refuses the start: see
//! `log_safety.rs`).

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Connection};
use std::time::{Duration, Instant};

fn set(c: &mut Connection, k: &str, v: &str) -> redis::RedisResult<()> {
    cmd("SET").arg(k).arg(v).query(c)
}

fn get(c: &mut Connection, k: &str) -> Option<String> {
    cmd("GET").arg(k).query(c).unwrap()
}

/// Cheap deterministic randomness (no dependency): xorshift.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let started = Instant::now();
    let dir = temp_dir("crash");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    // Every write the server acknowledged, with its value.
    let mut acked: Vec<(String, String)> = Vec::new();
    for round in 0..8 {
        let port = server.port;
        // A writer thread streams SETs (several connections, pipelined, so
        // that group commits carry many writes) until its socket dies.
        let writer = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            let Ok(mut c) = client.get_connection() else {
                return acked;
            };
            for i in 0.. {
                let mut p = redis::pipe();
                let batch: Vec<(String, String)> = (0..4)
                    .map(|j| (format!("r{round}:{i}:{j}"), format!("v{i}-{j}")))
                    .collect();
                for (k, v) in &batch {
                    p.cmd("SET").arg(k).arg(v);
                }
                match p.query::<()>(&mut c) {
                    Ok(()) => acked.extend(batch),
                    Err(_) => return acked,
                }
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(50 + rng(&mut seed) % 400));
        server.kill();
        let round_acked = writer.join().unwrap();
        assert!(
            !round_acked.is_empty() || round > 0,
            "no write acknowledged"
        );
        acked.extend(round_acked);
        server.spawn();
        let mut c = server.client();
        for (k, v) in &acked {
            assert_eq!(
                get(&mut c, k).as_deref(),
                Some(v.as_str()),
                "acknowledged write {k} lost after SIGKILL in round {round}"
            );
        }
    }
    assert!(acked.len() > 100, "too few writes to mean anything");
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Starts a server on `dir`, writes `n` keys, stops it gracefully, and
/// returns the log's record boundaries (offsets of each record's start).
fn make_log(dir: &std::path::Path, n: usize) -> (Server, Vec<u64>) {
    let mut s = Server::start(dir, &[]);
    {
        let mut c = s.client();
        for i in 0..n {
            set(&mut c, &format!("k{i}"), &format!("v{i}")).unwrap();
        }
    }
    assert!(s.terminate().success());
    let bytes = std::fs::read(s.log_path()).unwrap();
    assert!(bytes.starts_with(b"MATOU-KV\x01\0\0\0"), "the file header");
    let mut starts = Vec::new();
    let mut at = 12usize;
    while at < bytes.len() {
        starts.push(at as u64);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
    }
    assert_eq!(at, bytes.len());
    assert_eq!(starts.len(), n, "one record per SET");
    (s, starts)
}

#[test]
fn torn_tail_is_cut_and_the_prefix_kept() {
    let dir = temp_dir("torn");
    let (mut s, starts) = make_log(&dir, 10);
    let path = s.log_path();
    let full = std::fs::read(&path).unwrap();
    // Cut the last record in its middle, as a crash mid-write would.
    let last = starts[9] as usize;
    let torn_len = last + (full.len() - last) / 2;
    std::fs::write(&path, &full[..torn_len]).unwrap();
    s.spawn();
    let mut c = s.client();
    for i in 0..9 {
        assert_eq!(get(&mut c, &format!("k{i}")), Some(format!("v{i}")));
    }
    assert_eq!(get(&mut c, "k9"), None);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), starts[9]);
    let err = s.stderr();
    assert!(err.contains(&format!("offset {}", starts[9])), "{err}");
    assert!(err.contains("torn tail"), "{err}");
    // The log keeps working after the cut.
    set(&mut c, "after", "yes").unwrap();
    drop(c);
    assert!(s.terminate().success());
    s.spawn();
    let mut c = s.client();
    assert_eq!(get(&mut c, "after").as_deref(), Some("yes"));
    assert_eq!(get(&mut c, "k8").as_deref(), Some("v8"));
}

#[test]
fn log_rewrite_compacts_and_keeps_the_data() {
    let dir = temp_dir("rewrite");
    let mut s = Server::start(&dir, &["--fsync", "no"]);
    let value = "x".repeat(1000);
    {
        let mut c = s.client();
        // ~3 MiB of overwrites of 100 keys: the log must be compacted.
        for round in 0..30 {
            let mut p = redis::pipe();
            for k in 0..100 {
                p.cmd("SET")
                    .arg(format!("k{k}"))
                    .arg(format!("{round}{value}"));
            }
            p.query::<()>(&mut c).unwrap();
        }
    }
    // The rewrite runs in the background: give it time to land.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(s.log_path()).unwrap().len();
        if size < 2 * 1024 * 1024 {
            break;
        }
        assert!(Instant::now() < deadline, "log not compacted: {size} bytes");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.terminate().success());
    s.spawn();
    let mut c = s.client();
    for k in 0..100 {
        assert_eq!(get(&mut c, &format!("k{k}")), Some(format!("29{value}")));
    }
    let n: i64 = cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 100);
}

/// Background rewrites run while writers keep writing, and SIGKILL lands
/// at random moments, some of them mid-rewrite: after every restart each
/// key holds the last value acknowledged for it.
#[test]
fn background_rewrites_under_writes_and_crashes_lose_nothing() {
    let started = Instant::now();
    let dir = temp_dir("bgrewrite");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ u64::from(std::process::id());
    // The last acknowledged value of every key (the writers' key sets are
    // disjoint, and each writer's pipelines are answered in order), and the
    // value of the write in flight at the crash, which may or may not have
    // been made durable before it.
    let mut acked = std::collections::HashMap::new();
    let mut in_flight = std::collections::HashMap::new();
    let pad = "p".repeat(2000);
    for round in 0..5 {
        let port = server.port;
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let pad = pad.clone();
                std::thread::spawn(move || {
                    let mut last = std::collections::HashMap::new();
                    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
                    let Ok(mut c) = client.get_connection() else {
                        return (last, Vec::new());
                    };
                    for i in 0u64.. {
                        let mut p = redis::pipe();
                        let batch: Vec<(String, String)> = (0..16)
                            .map(|j| {
                                let k = format!("w{w}:k{}", (i * 16 + j) % 300);
                                (k, format!("{round}:{i}:{j}:{pad}"))
                            })
                            .collect();
                        for (k, v) in &batch {
                            p.cmd("SET").arg(k).arg(v);
                        }
                        match p.query::<()>(&mut c) {
                            Ok(()) => last.extend(batch),
                            Err(_) => return (last, batch),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300 + rng(&mut seed) % 700));
        server.kill();
        in_flight.clear();
        for w in writers {
            let (last, unsure) = w.join().unwrap();
            acked.extend(last);
            in_flight.extend(unsure);
        }
        server.spawn();
        let mut c = server.client();
        for (k, v) in acked.iter_mut() {
            let got = get(&mut c, k);
            assert!(
                got.as_deref() == Some(v.as_str()) || got.as_ref() == in_flight.get(k),
                "acknowledged write to {k} lost after SIGKILL in round {round}"
            );
            // Whichever it is, it is what the next round builds on.
            if let Some(got) = got {
                *v = got;
            }
        }
    }
    let err = server.stderr();
    assert!(
        err.contains("log rewritten in the background"),
        "no rewrite happened: {err}"
    );
    assert!(acked.len() >= 300, "too few writes: {}", acked.len());
    assert!(started.elapsed() < Duration::from_secs(90));
}
