//! Numbered databases against the real server: SELECT isolates, FLUSHDB
//! empties only its database, MOVE and SWAPDB work, and all of it comes
//! back after a SIGKILL and after a log rewrite.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Connection};
use std::time::{Duration, Instant};

fn db(server: &Server, n: u32) -> Connection {
    // The crate sends SELECT n on connect, as `redis-cli -n n` does.
    redis::Client::open(format!("{}{n}", server.url()))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

fn get(c: &mut Connection, k: &str) -> Option<String> {
    cmd("GET").arg(k).query(c).unwrap()
}

fn set(c: &mut Connection, k: &str, v: &str) {
    cmd("SET").arg(k).arg(v).query::<()>(c).unwrap();
}

fn dbsize(c: &mut Connection) -> i64 {
    cmd("DBSIZE").query(c).unwrap()
}

fn keyspace(c: &mut Connection) -> Vec<String> {
    let info: String = cmd("INFO").arg("keyspace").query(c).unwrap();
    info.lines()
        .filter(|l| l.starts_with("db"))
        .map(String::from)
        .collect()
}

#[test]
fn select_isolates_and_flushdb_empties_only_its_database() {
    let dir = temp_dir("dbs-select");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut d0 = db(&server, 0);
    let mut d1 = db(&server, 1);
    set(&mut d0, "k", "zero");
    set(&mut d1, "k", "one");
    set(&mut d1, "only1", "x");
    cmd("EXPIRE")
        .arg("only1")
        .arg(1000)
        .query::<()>(&mut d1)
        .unwrap();
    assert_eq!(get(&mut d0, "k").as_deref(), Some("zero"));
    assert_eq!(get(&mut d1, "k").as_deref(), Some("one"));
    assert_eq!((dbsize(&mut d0), dbsize(&mut d1)), (1, 2));
    assert_eq!(
        keyspace(&mut d0),
        [
            "db0:keys=1,expires=0,avg_ttl=0",
            "db1:keys=2,expires=1,avg_ttl=0"
        ]
    );
    // `redis-cli -n 1 flushdb`: database 1 only.
    let mut f = db(&server, 1);
    cmd("FLUSHDB").query::<()>(&mut f).unwrap();
    assert_eq!(
        get(&mut d0, "k").as_deref(),
        Some("zero"),
        "FLUSHDB hit db 0"
    );
    assert_eq!(dbsize(&mut d1), 0);
    set(&mut d1, "again", "1");
    // Out of range: refused, and the connection stays where it was.
    let e = cmd("SELECT").arg(16).query::<()>(&mut d1).unwrap_err();
    assert!(e.to_string().contains("DB index is out of range"), "{e}");
    assert_eq!(get(&mut d1, "again").as_deref(), Some("1"));

    server.kill();
    server.spawn();
    let mut d0 = db(&server, 0);
    let mut d1 = db(&server, 1);
    assert_eq!(get(&mut d0, "k").as_deref(), Some("zero"));
    assert_eq!(get(&mut d1, "k"), None, "FLUSHDB of db 1 replayed on db 0?");
    assert_eq!(get(&mut d1, "again").as_deref(), Some("1"));
    assert_eq!((dbsize(&mut d0), dbsize(&mut d1)), (1, 1));
    // FLUSHALL empties them all, and so does its replay.
    cmd("FLUSHALL").query::<()>(&mut d1).unwrap();
    assert_eq!((dbsize(&mut d0), dbsize(&mut d1)), (0, 0));
    set(&mut d1, "after", "1");
    server.kill();
    server.spawn();
    let mut d0 = db(&server, 0);
    let mut d1 = db(&server, 1);
    assert_eq!((dbsize(&mut d0), dbsize(&mut d1)), (0, 1));
}

#[test]
fn move_and_swapdb_replay() {
    let dir = temp_dir("dbs-move");
    let mut server = Server::start(&dir, &["--databases", "4"]);
    let mut c = db(&server, 0);
    cmd("SET")
        .arg("m")
        .arg("v")
        .arg("EX")
        .arg(1000)
        .query::<()>(&mut c)
        .unwrap();
    set(&mut c, "stay", "0");
    let moved: i64 = cmd("MOVE").arg("m").arg(2).query(&mut c).unwrap();
    assert_eq!(moved, 1);
    let again: i64 = cmd("MOVE").arg("absent").arg(2).query(&mut c).unwrap();
    assert_eq!(again, 0);
    assert_eq!(get(&mut c, "m"), None);
    let mut d2 = db(&server, 2);
    assert_eq!(get(&mut d2, "m").as_deref(), Some("v"));
    let ttl: i64 = cmd("TTL").arg("m").query(&mut d2).unwrap();
    assert!(ttl > 990, "MOVE kept the expiry: {ttl}");
    // SWAPDB: every connection sees the other database's keys.
    cmd("SWAPDB").arg(0).arg(2).query::<()>(&mut c).unwrap();
    assert_eq!(get(&mut c, "m").as_deref(), Some("v"));
    assert_eq!(get(&mut d2, "stay").as_deref(), Some("0"));
    assert!(cmd("SWAPDB").arg(0).arg(4).query::<()>(&mut c).is_err());
    assert!(cmd("MOVE").arg("m").arg(0).query::<()>(&mut c).is_err());

    server.kill();
    server.spawn();
    let mut c = db(&server, 0);
    let mut d2 = db(&server, 2);
    assert_eq!(get(&mut c, "m").as_deref(), Some("v"));
    assert_eq!(get(&mut c, "stay"), None);
    assert_eq!(get(&mut d2, "stay").as_deref(), Some("0"));
    let ttl: i64 = cmd("TTL").arg("m").query(&mut c).unwrap();
    assert!(ttl > 990, "expiry replayed: {ttl}");
}

#[test]
fn log_rewrite_keeps_every_database() {
    let dir = temp_dir("dbs-rewrite");
    let mut s = Server::start(&dir, &["--fsync", "no"]);
    let value = "x".repeat(1000);
    {
        let mut d0 = db(&s, 0);
        let mut d3 = db(&s, 3);
        // Before the rewrites: it reaches the new log through a snapshot.
        set(&mut d3, "three", "3");
        for round in 0..30 {
            for (c, name) in [(&mut d0, "d0"), (&mut d3, "d3")] {
                let mut p = redis::pipe();
                for k in 0..50 {
                    p.cmd("SET")
                        .arg(format!("k{k}"))
                        .arg(format!("{name}{round}{value}"));
                }
                p.query::<()>(c).unwrap();
            }
        }
    }
    // At least one rewrite (in the background) must have landed: its
    // snapshot holds database 3's "three".
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.stderr().contains("log rewritten") {
        assert!(Instant::now() < deadline, "no log rewrite happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.terminate().success());
    s.spawn();
    let mut d0 = db(&s, 0);
    let mut d3 = db(&s, 3);
    assert_eq!((dbsize(&mut d0), dbsize(&mut d3)), (50, 51));
    assert_eq!(get(&mut d3, "three").as_deref(), Some("3"));
    assert_eq!(get(&mut d0, "three"), None);
    assert_eq!(get(&mut d3, "k7"), Some(format!("d329{value}")));
    assert_eq!(get(&mut d0, "k7"), Some(format!("d029{value}")));
}

#[test]
fn watch_is_per_database_and_select_in_multi_switches() {
    let dir = temp_dir("dbs-watch");
    let server = Server::start(&dir, &[]);
    let mut w = db(&server, 1);
    let mut other0 = db(&server, 0);
    cmd("WATCH").arg("k").query::<()>(&mut w).unwrap();
    set(&mut other0, "k", "db0");
    let r: Option<Vec<String>> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("k")
        .arg("db1")
        .query(&mut w)
        .unwrap();
    assert!(r.is_some(), "a write in db 0 aborted a WATCH of db 1");
    let mut other1 = db(&server, 1);
    cmd("WATCH").arg("k").query::<()>(&mut w).unwrap();
    set(&mut other1, "k", "changed");
    let r: Option<Vec<String>> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("k")
        .arg("lost")
        .query(&mut w)
        .unwrap();
    assert!(r.is_none(), "the write in db 1 did not abort");
    // SWAPDB touches a watched key that only the other database has (it
    // appears), and leaves alone one that neither has.
    set(&mut other0, "only0", "1");
    for (key, aborts) in [("only0", true), ("neither", false)] {
        cmd("WATCH").arg(key).query::<()>(&mut w).unwrap();
        cmd("SWAPDB")
            .arg(0)
            .arg(1)
            .query::<()>(&mut other0)
            .unwrap();
        let r: Option<Vec<String>> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg("z")
            .arg("1")
            .query(&mut w)
            .unwrap();
        assert_eq!(r.is_none(), aborts, "SWAPDB and a WATCH of {key}");
    }
    // SELECT inside MULTI switches the commands after it, and the
    // connection.
    let _: Vec<redis::Value> = redis::pipe()
        .atomic()
        .cmd("SELECT")
        .arg(2)
        .cmd("SET")
        .arg("in2")
        .arg("x")
        .query(&mut w)
        .unwrap();
    assert_eq!(get(&mut w, "in2").as_deref(), Some("x"));
    assert_eq!(get(&mut other1, "in2"), None);
}
