//! Transactions against the real server, with the `redis` crate: EXEC is
//! atomic for other clients, a queue-time error applies nothing, WATCH
//! aborts on another client's write, on expiry and on FLUSHALL, and a
//! transaction is replayed all or nothing after a crash or a cut log.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Connection, Value};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn get(c: &mut Connection, k: &str) -> Option<String> {
    cmd("GET").arg(k).query(c).unwrap()
}

fn q(c: &mut Connection, words: &[&str]) -> redis::RedisResult<Value> {
    let mut command = cmd(words[0]);
    for w in &words[1..] {
        command.arg(*w);
    }
    command.query(c)
}

fn queued(c: &mut Connection, words: &[&str]) {
    assert_eq!(
        q(c, words).unwrap(),
        Value::SimpleString("QUEUED".into()),
        "{words:?}"
    );
}

#[test]
fn exec_is_atomic_for_a_concurrent_reader() {
    let dir = temp_dir("multi-atomic");
    let server = Server::start(&dir, &[]);
    let mut w = server.client();
    let port = server.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            let mut c = client.get_connection().unwrap();
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b): (Option<i64>, Option<i64>) =
                    cmd("MGET").arg("a").arg("b").query(&mut c).unwrap();
                assert_eq!(a, b, "a reader saw half a transaction");
                reads += 1;
            }
            reads
        })
    };
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        // One round trip per command: the queued SETs reach the server in
        // separate batches, so only the transaction keeps them together.
        assert_eq!(q(&mut w, &["MULTI"]).unwrap(), Value::Okay);
        queued(&mut w, &["SET", "a", &i.to_string()]);
        std::thread::sleep(Duration::from_millis(1));
        queued(&mut w, &["SET", "b", &i.to_string()]);
        let r: Vec<String> = cmd("EXEC").query(&mut w).unwrap();
        assert_eq!(r, ["OK", "OK"]);
        i += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(i > 50 && reads > 50, "{i} transactions, {reads} reads");
    // The crate's own transaction pipeline (MULTI ... EXEC, as redis-py's
    // default pipeline sends it).
    let (x, y): (i64, String) = redis::pipe()
        .atomic()
        .cmd("INCRBY")
        .arg("n")
        .arg(5)
        .cmd("GET")
        .arg("a")
        .query(&mut w)
        .unwrap();
    assert_eq!((x, y), (5, (i - 1).to_string()));
}

#[test]
fn execabort_applies_nothing_and_typed_errors_fail_alone() {
    let dir = temp_dir("multi-abort");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    for bad in [&["NOSUCH", "x"][..], &["GET"][..], &["EXEC", "x"][..]] {
        assert_eq!(q(&mut c, &["MULTI"]).unwrap(), Value::Okay);
        queued(&mut c, &["SET", "k", "v"]);
        assert!(q(&mut c, bad).is_err(), "{bad:?}");
        queued(&mut c, &["SET", "k2", "v2"]);
        let e = q(&mut c, &["EXEC"]).unwrap_err();
        assert_eq!(e.code(), Some("EXECABORT"), "{bad:?}: {e}");
        assert_eq!(get(&mut c, "k"), None, "{bad:?}: EXECABORT applied a write");
        assert_eq!(get(&mut c, "k2"), None);
    }
    // SHUTDOWN is refused inside MULTI (and fails it): the server lives on.
    assert_eq!(q(&mut c, &["MULTI"]).unwrap(), Value::Okay);
    let e = q(&mut c, &["SHUTDOWN"]).unwrap_err();
    assert!(
        e.to_string().contains("not allowed inside a transaction"),
        "{e}"
    );
    assert_eq!(q(&mut c, &["EXEC"]).unwrap_err().code(), Some("EXECABORT"));
    assert_eq!(
        q(&mut c, &["PING"]).unwrap(),
        Value::SimpleString("PONG".into())
    );
    // A typed-parse error is reported in EXEC's reply, the rest runs (raw:
    // the crate turns an error inside an array into an error of the whole).
    let mut raw = server.raw();
    raw.write_all(b"MULTI\r\nSET k v EX soon\r\nSET k2 v2\r\nEXEC\r\n")
        .unwrap();
    let want: &[u8] = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n\
        -ERR value is not an integer or out of range\r\n+OK\r\n";
    let mut got = vec![0; want.len()];
    raw.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    assert_eq!(get(&mut c, "k2").as_deref(), Some("v2"));
    assert_eq!(get(&mut c, "k"), None);
    // DISCARD drops the queue.
    assert_eq!(q(&mut c, &["MULTI"]).unwrap(), Value::Okay);
    queued(&mut c, &["SET", "gone", "1"]);
    assert_eq!(q(&mut c, &["DISCARD"]).unwrap(), Value::Okay);
    assert_eq!(get(&mut c, "gone"), None);
    assert!(q(&mut c, &["EXEC"]).is_err(), "EXEC without MULTI");
    // Nested MULTI and WATCH inside MULTI: refused, the transaction goes on.
    assert_eq!(q(&mut c, &["MULTI"]).unwrap(), Value::Okay);
    let e = q(&mut c, &["MULTI"]).unwrap_err();
    assert!(
        e.to_string().contains("MULTI calls can not be nested"),
        "{e}"
    );
    let e = q(&mut c, &["WATCH", "x"]).unwrap_err();
    assert!(
        e.to_string().contains("WATCH inside MULTI is not allowed"),
        "{e}"
    );
    queued(&mut c, &["SET", "kept", "1"]);
    assert_eq!(
        q(&mut c, &["EXEC"]).unwrap(),
        Value::Array(vec![Value::Okay])
    );
    assert_eq!(get(&mut c, "kept").as_deref(), Some("1"));
}

/// WATCH k, let `change` run on another connection, then MULTI SET EXEC:
/// whether EXEC ran.
fn exec_after(server: &Server, setup: &[&[&str]], change: &[&[&str]], wait: Duration) -> bool {
    let mut c = server.client();
    let mut other = server.client();
    for s in setup {
        q(&mut other, s).unwrap();
    }
    assert_eq!(q(&mut c, &["WATCH", "k"]).unwrap(), Value::Okay);
    for s in change {
        q(&mut other, s).unwrap();
    }
    std::thread::sleep(wait);
    assert_eq!(q(&mut c, &["MULTI"]).unwrap(), Value::Okay);
    queued(&mut c, &["SET", "done", "yes"]);
    let r = q(&mut c, &["EXEC"]).unwrap();
    let ran = match r {
        Value::Nil => false,
        Value::Array(v) => {
            assert_eq!(v, [Value::Okay]);
            true
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(get(&mut c, "done").is_some(), ran);
    q(&mut c, &["DEL", "done", "k"]).unwrap();
    ran
}

#[test]
fn watch_aborts_exec_when_the_key_changed() {
    let dir = temp_dir("multi-watch");
    let server = Server::start(&dir, &[]);
    let none = Duration::ZERO;
    assert!(exec_after(&server, &[&["SET", "k", "1"]], &[], none));
    assert!(exec_after(&server, &[], &[&["SET", "other", "1"]], none));
    assert!(!exec_after(&server, &[], &[&["SET", "k", "2"]], none));
    assert!(!exec_after(
        &server,
        &[&["SET", "k", "1"]],
        &[&["DEL", "k"]],
        none
    ));
    assert!(!exec_after(
        &server,
        &[&["SET", "k", "1"]],
        &[&["EXPIRE", "k", "100"]],
        none
    ));
    // Expiry, whether or not something removed the key yet. The TTL leaves
    // room for the WATCH to come first on a loaded machine (a key already
    // gone when watched is an absent key, which EXEC rightly runs on).
    assert!(!exec_after(
        &server,
        &[&["SET", "k", "1", "PX", "300"]],
        &[],
        Duration::from_millis(400)
    ));
    assert!(!exec_after(
        &server,
        &[&["SET", "k", "1", "PX", "300"]],
        &[],
        Duration::from_millis(1000)
    ));
    assert!(!exec_after(
        &server,
        &[&["SET", "k", "1"]],
        &[&["FLUSHALL"]],
        none
    ));
    assert!(!exec_after(
        &server,
        &[&["SET", "k", "1"]],
        &[&["FLUSHDB"]],
        none
    ));
    // UNWATCH forgets.
    let mut c = server.client();
    let mut other = server.client();
    q(&mut c, &["WATCH", "k"]).unwrap();
    q(&mut c, &["UNWATCH"]).unwrap();
    q(&mut other, &["SET", "k", "3"]).unwrap();
    let r: Vec<Value> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("k")
        .arg("4")
        .query(&mut c)
        .unwrap();
    assert_eq!(r, [Value::Okay]);
}

/// Transactions `t{i}`, each setting `t{i}:0..8` at once.
fn txn(c: &mut Connection, i: u64) -> redis::RedisResult<()> {
    let mut p = redis::pipe();
    p.atomic();
    for j in 0..8 {
        p.cmd("SET").arg(format!("t{i}:{j}")).arg(i);
    }
    p.query::<()>(c)
}

/// How many of `t{i}`'s keys exist (must be 0 or 8).
fn present(c: &mut Connection, i: u64) -> usize {
    let keys: Vec<String> = (0..8).map(|j| format!("t{i}:{j}")).collect();
    let v: Vec<Option<String>> = cmd("MGET").arg(&keys).query(c).unwrap();
    v.iter().filter(|x| x.is_some()).count()
}

#[test]
fn transactions_replay_all_or_nothing() {
    let dir = temp_dir("multi-crash");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    // SIGKILL in the middle of a transaction stream.
    let port = server.port;
    let writer = std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        let mut c = client.get_connection().unwrap();
        let mut acked = 0;
        while txn(&mut c, acked).is_ok() {
            acked += 1;
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(400));
    server.kill();
    let acked = writer.join().unwrap();
    assert!(acked > 10, "only {acked} transactions");
    server.spawn();
    let mut c = server.client();
    for i in 0..acked {
        assert_eq!(present(&mut c, i), 8, "acknowledged t{i} lost");
    }
    let n = present(&mut c, acked);
    assert!(n == 0 || n == 8, "t{acked}: {n} of 8 keys after SIGKILL");
    drop(c);
    assert!(server.terminate().success());

    // Cut the log at many points: every transaction is whole or absent.
    let log = std::fs::read(server.log_path()).unwrap();
    let total = acked + 1;
    for cut in 1..=12 {
        let at = log.len() - (log.len() / 4) * cut / 12 - cut;
        let d = temp_dir("multi-cut");
        std::fs::write(d.join("appendonly.mlog"), &log[..at]).unwrap();
        let s = Server::start(&d, &[]);
        let mut c = s.client();
        let mut whole = 0;
        for i in 0..total {
            match present(&mut c, i) {
                0 => {}
                8 => whole += 1,
                n => panic!("cut at {at}: t{i} has {n} of 8 keys"),
            }
        }
        assert!(whole > 0, "cut at {at} kept nothing");
    }
}
