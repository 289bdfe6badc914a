//! The storage task's batch with an injected log failure: the batch is
//! taken back, its writes answered `-MISCONF`, its reads executed on the
//! restored store; later writes are refused up front until a tick's probe
//! succeeds. The rollback covers every database, SWAPDB and EXEC. A job
//! with a reply budget defers the rest of its requests whole (an EXEC
//! too), in order, through SELECTs and rollbacks.

use super::*;
use crate::aof::Fsync;
use crate::command::multi::WatchCell;
use crate::command::{parse, Command};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

const ENOSPC: i32 = 28;

fn storage(name: &str) -> (Storage, std::path::PathBuf) {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "matou-kv-storage-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    let mut store = Databases::new(16);
    let (aof, _) = Aof::open(&d, Fsync::Always, &mut store).unwrap();
    let s = Storage {
        store,
        aof,
        clock: now_ms(),
        expired_keys: 0,
        lazy_expired: 0,
        rewriting: None,
        bgsave: super::bgsave::BgSave::default(),
        rewrite_not_before: Instant::now(),
        rewrite_backoff: REWRITE_RETRY_MIN,
        held: Vec::new(),
        versions: Versions::new(),
        undo: Undo::new(),
        memory: std::sync::Arc::new(crate::server::memory::Memory::new(Default::default())),
        pool: crate::server::memory::EvictionPool::new(),
        waiters: Waiters::default(),
        served: Vec::new(),
        woken: Vec::new(),
        notifier: std::sync::Arc::new(crate::server::notify::Notifier::new(
            crate::server::pubsub::Registry::new(),
        )),
        notify_mask: 0,
        last_save_unix: 0,
        changes_since_save: 0,
        fsync: std::sync::Arc::new(std::sync::atomic::AtomicU8::new(
            crate::server::ops::fsync_code(Fsync::Always),
        )),
        // No one else sends jobs here: a busy script has no one to answer.
        scripts: crate::script::Engine::new(Box::new(|_| {})).map_err(|e| e.to_string()),
        pending: Default::default(),
    };
    (s, d)
}

/// A data command, or `select N`, or `exec` followed by the commands of
/// the transaction separated by `;` (`["exec", "set", "a", "1", ";",
/// "get", "a"]`), with no key watched.
fn req(words: &[&str]) -> Req {
    match words {
        ["select", n] => return Req::Select(n.parse().unwrap()),
        ["exec", rest @ ..] => {
            let reqs = rest.split(|w| *w == ";").map(req).collect();
            return Req::Exec(reqs, WatchCell::default());
        }
        _ => {}
    }
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
    let cells: Vec<DbCell> = jobs.iter().map(|_| DbCell::default()).collect();
    batch_in(s, jobs, &cells)
}

/// [`batch`], each job run in the database of its cell.
fn batch_in(s: &mut Storage, jobs: &[&[&[&str]]], cells: &[DbCell]) -> Vec<Vec<Reply>> {
    let mut rxs = Vec::new();
    let mut batch = Vec::new();
    for (cmds, cell) in jobs.iter().zip(cells) {
        let (tx, rx) = oneshot::channel();
        batch.push(Job {
            reqs: cmds.iter().map(|c| req(c)).collect(),
            db: cell.clone(),
            budget: usize::MAX,
            reply_limit: 0,
            reply: tx,
        });
        rxs.push(rx);
    }
    s.execute(&mut batch);
    rxs.into_iter()
        .map(|mut rx| {
            rx.try_recv()
                .expect("every job is answered")
                .answers
                .into_iter()
                .map(|a| match a {
                    Answer::Reply(r) => r,
                    Answer::Exec(Some(answers)) => Reply::Array(
                        answers
                            .into_iter()
                            .map(|a| match a {
                                Answer::Reply(r) => r,
                                other => panic!("not a plain reply in EXEC: {other:?}"),
                            })
                            .collect(),
                    ),
                    Answer::Exec(None) => Reply::Nil,
                    other => panic!("not a reply here: {other:?}"),
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
    let before: Vec<(Vec<u8>, crate::store::Value, Option<u64>)> = s
        .store
        .db(0)
        .iter()
        .map(|e| (e.key.to_vec(), e.value.clone(), e.expire_at))
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
    let after: Vec<(Vec<u8>, crate::store::Value, Option<u64>)> = s
        .store
        .db(0)
        .iter()
        .map(|e| (e.key.to_vec(), e.value.clone(), e.expire_at))
        .collect();
    let (mut b, mut a) = (before, after);
    b.sort_by(|x, y| x.0.cmp(&y.0));
    a.sort_by(|x, y| x.0.cmp(&y.0));
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
    assert_replays_to_the_store(s, &d);
}

/// Closes the log (and its directory lock) and checks that replaying it
/// gives the store.
fn assert_replays_to_the_store(mut s: Storage, d: &std::path::Path) {
    s.aof.sync().unwrap();
    let Storage { store, aof, .. } = s;
    drop(aof);
    let mut replayed = Databases::new(16);
    drop(Aof::open(d, Fsync::Always, &mut replayed).unwrap());
    assert_eq!(replayed, store, "the log and the store agree");
    let _ = std::fs::remove_dir_all(d);
}

/// One key: its database, key, value and expiry.
type Row = (usize, Vec<u8>, crate::store::Value, Option<u64>);

/// Every key of every database, sorted.
fn contents(dbs: &Databases) -> Vec<Row> {
    let mut all: Vec<_> = dbs
        .iter()
        .flat_map(|(i, s)| {
            s.iter()
                .map(move |e| (i, e.key.to_vec(), e.value.clone(), e.expire_at))
        })
        .collect();
    all.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    all
}

fn cell(db: usize) -> DbCell {
    DbCell::new(AtomicUsize::new(db))
}

fn is_exec_misconf(r: &Reply) -> bool {
    matches!(r, Reply::Error(e)
        if e.starts_with("EXECABORT Transaction discarded because of: MISCONF "))
}

#[test]
fn a_failed_commit_takes_back_every_database_swapdb_and_exec() {
    let (mut s, d) = storage("databases");
    let setup: &[&[&str]] = &[
        &["set", "a", "zero"],
        &["select", "3"],
        &["set", "a", "three"],
        &["set", "m", "moved"],
        &["set", "t", "v", "px", "100000"],
        &["select", "9"],
        &["set", "nine", "9"],
    ];
    let ok = batch(&mut s, &[setup]);
    assert!(ok[0].iter().all(|r| *r == Reply::ok()), "{ok:?}");
    let before = contents(&s.store);
    assert_eq!(before.len(), 5);

    s.aof.fail_writes = Some(ENOSPC);
    let cells = [cell(3), cell(0), cell(3), cell(0), cell(9)];
    let answers = batch_in(
        &mut s,
        &[
            // A write on database 3, then a read of it.
            &[&["set", "a", "changed"], &["get", "a"]],
            // A SELECT outside EXEC stands; the write after it does not.
            &[&["select", "5"], &["set", "x", "1"], &["dbsize"]],
            // MOVE and SWAPDB, then a read of database 3.
            &[
                &["move", "m", "7"],
                &["swapdb", "0", "3"],
                &["get", "a"],
                &["get", "m"],
            ],
            // EXEC: a SELECT, writes, a FLUSHALL; then a read outside it.
            &[
                &[
                    "exec", "select", "2", ";", "set", "e", "1", ";", "get", "e", ";", "flushall",
                    ";", "set", "after", "flush",
                ],
                &["get", "a"],
            ],
            &[&["flushdb"], &["get", "nine"]],
        ],
        &cells,
    );
    assert!(is_misconf(&answers[0][0]), "{:?}", answers[0][0]);
    assert_eq!(
        answers[0][1],
        bulk("three"),
        "a read saw a rolled-back write"
    );
    assert_eq!(answers[1][0], Reply::ok());
    assert!(is_misconf(&answers[1][1]));
    assert_eq!(answers[1][2], Reply::Integer(0));
    assert!(is_misconf(&answers[2][0]) && is_misconf(&answers[2][1]));
    assert_eq!(answers[2][2..], [bulk("three"), bulk("moved")]);
    assert!(is_exec_misconf(&answers[3][0]), "{:?}", answers[3][0]);
    assert_eq!(answers[3][1], bulk("zero"), "EXEC's SELECT was taken back");
    assert!(is_misconf(&answers[4][0]));
    assert_eq!(answers[4][1], bulk("9"));
    assert_eq!(contents(&s.store), before, "the databases changed");
    let dbs: Vec<usize> = cells.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(dbs, [3, 5, 3, 0, 9], "each connection's database");

    // Still full: an EXEC with a write is refused whole, up front; one
    // with reads only runs.
    let answers = batch(
        &mut s,
        &[&[
            &["exec", "get", "a", ";", "set", "a", "x"],
            &["exec", "get", "a", ";", "select", "3", ";", "get", "a"],
            &["get", "a"],
        ]],
    );
    assert!(is_exec_misconf(&answers[0][0]), "{:?}", answers[0][0]);
    assert_eq!(
        answers[0][1],
        Reply::Array(vec![bulk("zero"), Reply::ok(), bulk("three")])
    );
    assert_eq!(answers[0][2], bulk("three"), "SELECT in a run EXEC stands");
    assert_eq!(contents(&s.store), before);

    // Space is back: the same changes now apply, and the log agrees.
    s.aof.fail_writes = None;
    s.tick();
    let answers = batch(
        &mut s,
        &[&[
            &["exec", "select", "2", ";", "set", "e", "1"],
            &["swapdb", "0", "3"],
            &["get", "e"],
            &["select", "0"],
            &["get", "a"],
        ]],
    );
    assert_eq!(
        answers[0],
        vec![
            Reply::Array(vec![Reply::ok(), Reply::ok()]),
            Reply::ok(),
            bulk("1"),
            Reply::ok(),
            bulk("three")
        ]
    );
    assert_eq!(contents(&s.store).len(), 6);
    assert_replays_to_the_store(s, &d);
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

/// One job of `reqs` in `cell`'s database with a reply budget of `budget`
/// bytes; its raw answers.
fn round(s: &mut Storage, reqs: Vec<Req>, cell: &DbCell, budget: usize) -> Vec<Answer> {
    let (tx, mut rx) = oneshot::channel();
    let mut batch = vec![Job {
        reqs,
        db: cell.clone(),
        budget,
        reply_limit: 0,
        reply: tx,
    }];
    s.execute(&mut batch);
    rx.try_recv().expect("the job is answered").answers
}

/// The requests of a round's answers that were deferred, in order; panics
/// if a deferred one is followed by one that ran.
fn deferred(answers: Vec<Answer>) -> (Vec<Answer>, Vec<Req>) {
    let cut = answers
        .iter()
        .position(|a| matches!(a, Answer::Deferred(_)))
        .unwrap_or(answers.len());
    let mut ran = answers;
    let rest = ran.split_off(cut);
    let rest = rest
        .into_iter()
        .map(|a| match a {
            Answer::Deferred(r) => r,
            other => panic!("ran after a deferred request: {other:?}"),
        })
        .collect();
    (ran, rest)
}

#[test]
fn a_round_defers_whole_requests_and_never_splits_an_exec() {
    let (mut s, d) = storage("round-exec");
    let cell = DbCell::default();
    // The first reply spends the budget: the EXEC after it waits, whole.
    let answers = round(
        &mut s,
        vec![
            req(&["set", "a", "1"]),
            req(&["exec", "set", "b", "2", ";", "get", "b"]),
        ],
        &cell,
        1,
    );
    let (ran, rest) = deferred(answers);
    assert_eq!(ran.len(), 1);
    assert_eq!(rest.len(), 1);
    assert!(
        s.store.db(0).get(b"b", now_ms()).is_none(),
        "nothing of it ran"
    );
    // Resent, it runs whole although its replies are over the budget; what
    // follows it waits.
    let mut reqs = rest;
    reqs.push(req(&["get", "b"]));
    let (ran, rest) = deferred(round(&mut s, reqs, &cell, 1));
    match ran.as_slice() {
        [Answer::Exec(Some(inner))] => assert_eq!(inner.len(), 2),
        other => panic!("EXEC not run whole: {other:?}"),
    }
    assert_eq!(rest.len(), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn deferred_requests_run_in_the_database_their_selects_left() {
    let (mut s, d) = storage("round-select");
    let cell = DbCell::default();
    // SELECT 1 ran, the cut comes after it: the rest is for database 1.
    let (ran, rest) = deferred(round(
        &mut s,
        vec![
            req(&["select", "1"]),
            req(&["set", "k", "one"]),
            req(&["select", "2"]),
            req(&["set", "k", "two"]),
        ],
        &cell,
        1,
    ));
    assert_eq!(ran.len(), 1);
    assert_eq!(cell.load(Ordering::Relaxed), 1);
    // Resent: the deferred SELECT 2 takes effect in its turn.
    let (ran, rest) = deferred(round(&mut s, rest, &cell, 1));
    assert_eq!(ran.len(), 1, "{ran:?}");
    let (_, rest) = deferred(round(&mut s, rest, &cell, usize::MAX));
    assert!(rest.is_empty());
    assert_eq!(cell.load(Ordering::Relaxed), 2);
    let now = now_ms();
    assert_eq!(
        s.store.db(1).get(b"k", now).map(|v| v.to_vec()),
        Some(b"one".to_vec())
    );
    assert_eq!(
        s.store.db(2).get(b"k", now).map(|v| v.to_vec()),
        Some(b"two".to_vec())
    );
    assert!(s.store.db(0).get(b"k", now).is_none());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_failed_commit_keeps_deferred_requests_deferred() {
    let (mut s, d) = storage("round-rollback");
    let cell = DbCell::default();
    s.aof.fail_writes = Some(ENOSPC);
    let answers = round(
        &mut s,
        vec![
            req(&["set", "k", "v"]),
            req(&["select", "1"]),
            req(&["set", "x", "1"]),
        ],
        &cell,
        1,
    );
    match answers.as_slice() {
        [Answer::Reply(r), Answer::Deferred(Req::Select(1)), Answer::Deferred(Req::Write(_))] => {
            assert!(is_misconf(r), "{r:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cell.load(Ordering::Relaxed),
        0,
        "the deferred SELECT did not run"
    );
    assert!(s.store.db(0).get(b"k", now_ms()).is_none());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn evictions_are_logged_counted_and_taken_back_with_a_failed_commit() {
    use crate::server::memory::{used_memory, Policy};
    let (mut s, d) = storage("evict");
    let value = "v".repeat(100);
    let sets: Vec<Vec<String>> = (0..200)
        .map(|i| vec!["set".into(), format!("k{i}"), value.clone()])
        .collect();
    let sets: Vec<Vec<&str>> = sets
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    let job: Vec<&[&str]> = sets.iter().map(Vec::as_slice).collect();
    batch(&mut s, &[&job]);
    let full = used_memory(&s.store);
    // A limit of about half: the next write evicts first.
    s.memory.set_maxmemory(full as u64 / 2);
    s.memory.set_policy(Policy::AllKeysRandom);
    let before = contents(&s.store);
    s.aof.fail_writes = Some(ENOSPC);
    let answers = batch(&mut s, &[&[&["set", "new", "1"]]]);
    assert!(is_misconf(&answers[0][0]), "{:?}", answers[0]);
    assert_eq!(contents(&s.store), before, "the evictions were taken back");
    assert_eq!(s.memory.evicted(), 0, "rolled-back evictions do not count");
    s.aof.fail_writes = None;
    s.tick();
    let answers = batch(&mut s, &[&[&["set", "new", "1"]]]);
    assert_eq!(answers[0], vec![Reply::ok()]);
    // Eviction runs before each write: the write itself may pass the
    // limit by its own entry.
    assert!(used_memory(&s.store) <= full / 2 + crate::store::Store::entry_cost(3, 1));
    // 201 keys written; the rolled-back evictions did not count.
    let held = s.store.len() as u64;
    assert!(held < 150, "{held} keys held");
    assert_eq!(
        s.memory.evicted(),
        201 - held,
        "evicted_keys counts what went"
    );
    assert!(!s.memory.is_over());
    // The evictions are in the log as DELs: a replay holds the same keys.
    assert_replays_to_the_store(s, &d);
}

fn list_write(words: &[&str]) -> Wait {
    match req(words) {
        Req::Write(Write::List(l)) => Wait::List(l),
        other => panic!("not a list write: {other:?}"),
    }
}

#[test]
fn an_element_popped_for_a_client_gone_before_its_reply_goes_back_to_the_next_waiter() {
    let (mut s, d) = storage("gone-waiter");
    let now = s.clock;
    let mut gone = s.waiters.block(0, list_write(&["blpop", "q", "0"]));
    let mut next = s.waiters.block(0, list_write(&["blpop", "q", "0"]));
    // The push is served to the first waiter (its pop logged), then that
    // client leaves before the commit sends its reply.
    crate::command::list::push(s.store.db_mut(0), b"q", false, &[b"e".to_vec()]);
    s.serve_ready(now);
    assert_eq!(s.served.len(), 1);
    assert!(s.store.db(0).value(b"q", now).is_none(), "popped for it");
    gone.rx.close();
    s.aof.commit().unwrap();
    s.deliver(now);
    assert!(
        gone.rx.try_recv().is_err(),
        "the departed client got nothing"
    );
    assert_eq!(
        next.rx.try_recv().ok(),
        Some(Reply::Array(vec![bulk("q"), bulk("e")])),
        "given back and served to the next waiter"
    );
    // With no one left, a departed client's element stays in the list.
    let mut last = s.waiters.block(0, list_write(&["brpop", "r", "0"]));
    crate::command::list::push(
        s.store.db_mut(0),
        b"r",
        false,
        &[b"1".to_vec(), b"2".to_vec()],
    );
    s.serve_ready(now);
    last.rx.close();
    s.aof.commit().unwrap();
    s.deliver(now);
    assert!(last.rx.try_recv().is_err());
    let (r, _) = crate::command::execute(
        s.store.db_mut(0),
        &[
            b"lrange".to_vec(),
            b"r".to_vec(),
            b"0".to_vec(),
            b"-1".to_vec(),
        ],
        now,
    );
    assert_eq!(
        r,
        Reply::Array(vec![bulk("1"), bulk("2")]),
        "back where it was"
    );
    s.waiters.sweep();
    assert!(s.waiters.is_empty(), "nothing left behind");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn a_blocking_command_defers_the_rest_of_its_job_and_a_push_in_exec_serves_it() {
    let (mut s, d) = storage("blocking-job");
    let (tx, mut rx) = oneshot::channel();
    let mut jobs = vec![Job {
        reqs: vec![req(&["blpop", "q", "0"]), req(&["set", "after", "1"])],
        db: DbCell::default(),
        budget: usize::MAX,
        reply_limit: 0,
        reply: tx,
    }];
    s.execute(&mut jobs);
    let mut answers = rx.try_recv().unwrap().answers.into_iter();
    let Some(Answer::Blocked(mut b)) = answers.next() else {
        panic!("blocked")
    };
    assert!(
        matches!(answers.next(), Some(Answer::Deferred(_))),
        "waits its turn"
    );
    assert_eq!(s.waiters.blocked(), 1);
    let replies = batch(
        &mut s,
        &[&[&["exec", "rpush", "q", "a", "b", ";", "llen", "q"]]],
    );
    assert_eq!(
        replies[0][0],
        Reply::Array(vec![Reply::Integer(2), Reply::Integer(2)]),
        "EXEC saw its own push whole"
    );
    assert_eq!(
        b.rx.try_recv().ok(),
        Some(Reply::Array(vec![bulk("q"), bulk("a")]))
    );
    let replies = batch(&mut s, &[&[&["lrange", "q", "0", "-1"]]]);
    assert_eq!(replies[0][0], Reply::Array(vec![bulk("b")]));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn save_rewrites_the_log_and_debug_reload_restores_the_state_from_it() {
    use crate::command::ops::StorageOp;
    let (mut s, d) = storage("save-reload");
    let cell = DbCell::default();
    for i in 0..200 {
        batch(&mut s, &[&[&["set", "k", &i.to_string()]]]);
    }
    batch(
        &mut s,
        &[&[
            &["set", "other", "v"],
            &["select", "3"],
            &["set", "in3", "x"],
        ]],
    );
    let size_before = s.aof.size();
    let answers = round(&mut s, vec![Req::Admin(StorageOp::Save)], &cell, usize::MAX);
    assert!(
        matches!(&answers[0], Answer::Reply(r) if *r == Reply::ok()),
        "{answers:?}"
    );
    assert!(
        s.aof.size() < size_before / 10,
        "{} -> {}",
        size_before,
        s.aof.size()
    );
    assert!(s.last_save_unix > 0);
    assert_eq!(s.changes_since_save, 0);
    let digest = super::admin::dataset_digest(&s.store, now_ms());
    // A write in the same job before the reload is part of what it keeps.
    let answers = round(
        &mut s,
        vec![
            req(&["set", "late", "1"]),
            Req::Admin(StorageOp::DebugReload),
        ],
        &cell,
        usize::MAX,
    );
    assert!(
        matches!(&answers[1], Answer::Reply(r) if *r == Reply::ok()),
        "{answers:?}"
    );
    assert_eq!(
        batch(&mut s, &[&[&["get", "k"], &["get", "late"]]])[0],
        vec![bulk("199"), bulk("1")]
    );
    assert_eq!(
        batch(&mut s, &[&[&["select", "3"], &["get", "in3"]]])[0][1],
        bulk("x")
    );
    assert_ne!(digest, super::admin::dataset_digest(&s.store, now_ms()));
    let _ = std::fs::remove_dir_all(&d);
}

fn wait_of(words: &[&str]) -> Wait {
    match req(words) {
        Req::Write(w) => w.into_wait().expect("a blocking pop"),
        other => panic!("not a write: {other:?}"),
    }
}

#[test]
fn a_member_popped_for_a_client_gone_goes_to_the_next_waiter_or_back_and_replays() {
    let (mut s, d) = storage("gone-zset-waiter");
    let now = s.clock;
    let mut gone = s.waiters.block(0, wait_of(&["bzpopmin", "z", "0"]));
    // A list waiter between them: a sorted set does not serve it.
    let mut list = s.waiters.block(0, wait_of(&["blpop", "z", "0"]));
    let mut next = s
        .waiters
        .block(0, wait_of(&["bzmpop", "0", "1", "z", "min", "count", "5"]));
    // A ZADD run and logged as the batch would, its waiters served, and
    // the commit still to come.
    let add = |s: &mut Storage, words: &[&str]| {
        let (_, record) = s.run(req(words), &mut 0, now);
        s.aof.append(&record.expect("a change"));
    };
    add(&mut s, &["zadd", "z", "2.5", "b", "1", "a"]);
    s.serve_ready(now);
    assert_eq!(s.served.len(), 2, "both sorted-set waiters served");
    // `gone` was served `a` (its pop logged); it left before the reply.
    gone.rx.close();
    s.aof.commit().unwrap();
    s.deliver(now);
    assert!(
        gone.rx.try_recv().is_err(),
        "the departed client got nothing"
    );
    assert!(
        list.rx.try_recv().is_err(),
        "a list waiter is not served by a sorted set"
    );
    // The next sorted-set waiter was served what was left, `b`; `a` went
    // back into the set (no sorted-set waiter left for it).
    let pair = |m: &str, sc: &str| Reply::Array(vec![bulk(m), Reply::Double(sc.into())]);
    assert_eq!(
        next.rx.try_recv().ok(),
        Some(Reply::Array(vec![
            bulk("z"),
            Reply::Array(vec![pair("b", "2.5")])
        ]))
    );
    let replies = batch(&mut s, &[&[&["zrange", "z", "0", "-1", "withscores"]]]);
    assert_eq!(
        replies[0][0],
        Reply::Pairs(vec![(bulk("a"), Reply::Double("1".into()))]),
        "given back with its score"
    );
    // The next waiter to come is served it.
    let mut again = s.waiters.block(0, wait_of(&["bzpopmin", "w", "0"]));
    let replies = batch(&mut s, &[&[&["zunionstore", "w", "1", "z"]]]);
    assert_eq!(replies[0][0], Reply::Integer(1));
    assert_eq!(
        again.rx.try_recv().ok(),
        Some(Reply::Array(vec![
            bulk("w"),
            bulk("a"),
            Reply::Double("1".into())
        ]))
    );
    // With no sorted-set waiter left, a departed one's member goes back.
    let mut last = s.waiters.block(0, wait_of(&["bzpopmax", "y", "0"]));
    add(&mut s, &["zadd", "y", "7", "m", "3", "n"]);
    s.serve_ready(now);
    last.rx.close();
    s.aof.commit().unwrap();
    s.deliver(now);
    assert!(last.rx.try_recv().is_err());
    let replies = batch(&mut s, &[&[&["zrange", "y", "0", "-1", "withscores"]]]);
    assert_eq!(
        replies[0][0],
        Reply::Pairs(vec![
            (bulk("n"), Reply::Double("3".into())),
            (bulk("m"), Reply::Double("7".into()))
        ]),
        "back where it was, with its score"
    );
    drop(list);
    s.waiters.sweep();
    assert!(s.waiters.is_empty(), "nothing left behind");
    assert_replays_to_the_store(s, &d);
}
