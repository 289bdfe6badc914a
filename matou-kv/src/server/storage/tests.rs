//! The storage task's batch with an injected log failure: the batch is
//! taken back, its writes answered `-MISCONF`, its reads executed on the
//! restored store; later writes are refused up front until a tick's probe
//! succeeds.

use super::*;
use crate::aof::Fsync;
use crate::command::{parse, Command};
use std::sync::atomic::{AtomicU32, Ordering};

const ENOSPC: i32 = 28;

fn storage(name: &str) -> (Storage, std::path::PathBuf) {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "matou-kv-storage-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    let mut store = Store::new();
    let (aof, _) = Aof::open(&d, Fsync::Always, &mut store).unwrap();
    let s = Storage {
        store,
        aof,
        clock: now_ms(),
        expired_keys: 0,
        rewriting: None,
        rewrite_not_before: Instant::now(),
        rewrite_backoff: REWRITE_RETRY_MIN,
        held: Vec::new(),
        undo: Undo::new(),
    };
    (s, d)
}

fn req(words: &[&str]) -> Req {
    let args: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
    match parse(&args, true).unwrap() {
        Command::Read(r) => Req::Read(r),
        Command::Write(w) => Req::Write(w),
        Command::Conn(_) => panic!("not a data command"),
    }
}

/// Runs one batch of jobs (each a list of commands) and returns the
/// replies, job by job.
fn batch(s: &mut Storage, jobs: &[&[&[&str]]]) -> Vec<Vec<Reply>> {
    let mut rxs = Vec::new();
    let mut batch = Vec::new();
    for cmds in jobs {
        let (tx, rx) = oneshot::channel();
        batch.push(Job {
            reqs: cmds.iter().map(|c| req(c)).collect(),
            reply: tx,
        });
        rxs.push(rx);
    }
    s.execute(&mut batch);
    rxs.into_iter()
        .map(|mut rx| {
            rx.try_recv()
                .expect("every job is answered")
                .into_iter()
                .map(|a| match a {
                    Answer::Reply(r) => r,
                    Answer::Info(_) => panic!("no INFO here"),
                })
                .collect()
        })
        .collect()
}

fn bulk(v: &str) -> Reply {
    Reply::Bulk(v.as_bytes().to_vec())
}

fn is_misconf(r: &Reply) -> bool {
    matches!(r, Reply::Error(e) if e.starts_with("MISCONF Errors writing to the AOF file: "))
}

#[test]
fn a_failed_commit_leaves_the_store_as_before_and_reads_do_not_see_it() {
    let (mut s, d) = storage("rollback");
    batch(
        &mut s,
        &[&[
            &["set", "k", "old"],
            &["set", "n", "10"],
            &["set", "gone", "x"],
            &["append", "a", "abc"],
            &["set", "t", "v", "px", "100000"],
        ]],
    );
    let before: Vec<(Vec<u8>, Vec<u8>, Option<u64>)> = s
        .store
        .iter()
        .map(|e| (e.key.to_vec(), e.value.to_vec(), e.expire_at))
        .collect();
    s.aof.fail_writes = Some(ENOSPC);
    let answers = batch(
        &mut s,
        &[
            // Answered before any write: durable state.
            &[&["get", "k"]],
            &[
                &["set", "k", "new"],
                &["get", "k"],
                &["incr", "n"],
                &["del", "gone"],
                &["append", "a", "def"],
                &["persist", "t"],
                &["set", "fresh", "1"],
                &["mget", "k", "fresh", "a"],
            ],
            &[&["flushall"], &["dbsize"]],
            &[&["get", "k"], &["exists", "gone"]],
        ],
    );
    assert_eq!(answers[0], vec![bulk("old")]);
    let j = &answers[1];
    assert!(is_misconf(&j[0]), "{:?}", j[0]);
    assert_eq!(j[1], bulk("old"), "a read saw a rolled-back write");
    for w in [2, 3, 4, 5, 6] {
        assert!(is_misconf(&j[w]), "write {w}: {:?}", j[w]);
    }
    assert_eq!(
        j[7],
        Reply::Array(vec![bulk("old"), Reply::Nil, bulk("abc")])
    );
    assert!(is_misconf(&answers[2][0]));
    assert_eq!(answers[2][1], Reply::Integer(5));
    assert_eq!(answers[3], vec![bulk("old"), Reply::Integer(1)]);
    let after: Vec<(Vec<u8>, Vec<u8>, Option<u64>)> = s
        .store
        .iter()
        .map(|e| (e.key.to_vec(), e.value.to_vec(), e.expire_at))
        .collect();
    let (mut b, mut a) = (before, after);
    b.sort();
    a.sort();
    assert_eq!(a, b, "the store changed");

    // The disk is still full: refused up front, reads served.
    let answers = batch(&mut s, &[&[&["set", "k", "again"], &["get", "k"]]]);
    assert!(is_misconf(&answers[0][0]));
    assert_eq!(answers[0][1], bulk("old"));
    s.tick();
    assert!(s.aof.refusal().is_some(), "the probe must fail while full");

    // Space is back: the next tick's probe lifts the refusal.
    s.aof.fail_writes = None;
    s.tick();
    let answers = batch(&mut s, &[&[&["set", "k", "new"], &["get", "k"]]]);
    assert_eq!(answers[0], vec![Reply::ok(), bulk("new")]);
    s.aof.sync().unwrap();
    let mut replayed = Store::new();
    drop(Aof::open(&d, Fsync::Always, &mut replayed).unwrap());
    assert_eq!(replayed, s.store, "the log and the store agree");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn after_a_failed_fsync_reads_are_served_and_writes_refused() {
    let (mut s, d) = storage("fsync");
    batch(&mut s, &[&[&["set", "k", "old"]]]);
    s.aof.fail_fsyncs = Some(5);
    let answers = batch(&mut s, &[&[&["set", "k", "new"], &["get", "k"]]]);
    assert!(is_misconf(&answers[0][0]), "{:?}", answers[0][0]);
    assert_eq!(answers[0][1], bulk("old"));
    s.aof.fail_fsyncs = None;
    for _ in 0..3 {
        s.tick();
    }
    let answers = batch(&mut s, &[&[&["set", "k", "x"], &["get", "k"]]]);
    assert!(
        is_misconf(&answers[0][0]),
        "a failed fsync must stay sticky"
    );
    assert_eq!(answers[0][1], bulk("old"));
    let _ = std::fs::remove_dir_all(&d);
}
