//! The string and key commands against the real server through the
//! `redis` crate: their replies, and that what they log comes back after a
//! SIGKILL, in any database and inside EXEC (RENAME's record is a Multi of
//! a DEL and a SET, which must go inside a database's wrapper and must not
//! nest in a transaction's).

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Connection};
use std::time::Duration;

fn db(server: &Server, n: u32) -> Connection {
    redis::Client::open(format!("{}{n}", server.url()))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

fn get(c: &mut Connection, k: &str) -> Option<Vec<u8>> {
    cmd("GET").arg(k).query(c).unwrap()
}

fn s(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

#[test]
fn string_and_bit_writes_reply_like_redis_and_survive_a_kill() {
    let dir = temp_dir("strings-kill");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut c = db(&server, 0);
    let n: i64 = cmd("SETRANGE")
        .arg("r")
        .arg(2)
        .arg("ab")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 4);
    let f: String = cmd("INCRBYFLOAT")
        .arg("f")
        .arg("2.5")
        .query(&mut c)
        .unwrap();
    assert_eq!(f, "2.5");
    let old: i64 = cmd("SETBIT").arg("b").arg(9).arg(1).query(&mut c).unwrap();
    assert_eq!(old, 0);
    let n: i64 = cmd("BITOP")
        .arg("OR")
        .arg("o")
        .arg("b")
        .arg("r")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 4);
    cmd("SET").arg("g").arg("v").query::<()>(&mut c).unwrap();
    let v: String = cmd("GETEX")
        .arg("g")
        .arg("EX")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    assert_eq!(v, "v");
    let range: String = cmd("GETRANGE")
        .arg("r")
        .arg(-2)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(range, "ab");
    let count: i64 = cmd("BITCOUNT").arg("o").query(&mut c).unwrap();
    assert_eq!(count, 1 + 3 + 3);
    let err = cmd("INCRBYFLOAT")
        .arg("r")
        .arg(1)
        .query::<String>(&mut c)
        .unwrap_err();
    assert_eq!(err.detail(), Some("value is not a valid float"), "{err:?}");
    server.kill();
    server.spawn();
    let mut c = db(&server, 0);
    assert_eq!(get(&mut c, "r"), Some(b"\0\0ab".to_vec()));
    assert_eq!(get(&mut c, "f"), s("2.5"));
    assert_eq!(get(&mut c, "b"), Some(vec![0, 0x40]));
    assert_eq!(get(&mut c, "o"), Some(vec![0, 0x40, b'a', b'b']));
    let ttl: i64 = cmd("TTL").arg("g").query(&mut c).unwrap();
    assert!((990..=1000).contains(&ttl), "{ttl}");
}

#[test]
fn rename_and_copy_across_databases_replay_after_a_kill() {
    let dir = temp_dir("strings-rename");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut d3 = db(&server, 3);
    cmd("SET").arg("a").arg("1").query::<()>(&mut d3).unwrap();
    cmd("PEXPIRE")
        .arg("a")
        .arg(900_000)
        .query::<()>(&mut d3)
        .unwrap();
    cmd("RENAME")
        .arg("a")
        .arg("b")
        .query::<()>(&mut d3)
        .unwrap();
    let copied: i64 = cmd("COPY")
        .arg("b")
        .arg("c")
        .arg("DB")
        .arg(5)
        .query(&mut d3)
        .unwrap();
    assert_eq!(copied, 1);
    let again: i64 = cmd("COPY")
        .arg("b")
        .arg("c")
        .arg("DB")
        .arg(5)
        .query(&mut d3)
        .unwrap();
    assert_eq!(again, 0, "no REPLACE, the destination exists");
    let err = cmd("COPY")
        .arg("b")
        .arg("c")
        .arg("DB")
        .arg(99)
        .query::<i64>(&mut d3)
        .unwrap_err();
    assert_eq!(err.detail(), Some("DB index is out of range"), "{err:?}");
    // RENAME inside EXEC: its Multi joins the transaction's record.
    cmd("SET").arg("x").arg("xv").query::<()>(&mut d3).unwrap();
    // So does MOVE's.
    cmd("SET").arg("m").arg("mv").query::<()>(&mut d3).unwrap();
    let (_, renamed, moved, n): (String, i64, i64, i64) = redis::pipe()
        .atomic()
        .cmd("RENAME")
        .arg("x")
        .arg("y")
        .cmd("RENAMENX")
        .arg("y")
        .arg("z")
        .cmd("MOVE")
        .arg("m")
        .arg(5)
        .cmd("DBSIZE")
        .query(&mut d3)
        .unwrap();
    assert_eq!((renamed, moved, n), (1, 1, 2));
    server.kill();
    server.spawn();
    let mut d3 = db(&server, 3);
    let mut d5 = db(&server, 5);
    let mut d0 = db(&server, 0);
    assert_eq!(get(&mut d3, "a"), None);
    assert_eq!(get(&mut d3, "b"), s("1"));
    assert_eq!(get(&mut d3, "x"), None);
    assert_eq!(get(&mut d3, "y"), None);
    assert_eq!(get(&mut d3, "z"), s("xv"));
    assert_eq!(get(&mut d5, "c"), s("1"));
    assert_eq!(get(&mut d5, "m"), s("mv"));
    assert_eq!(get(&mut d3, "m"), None);
    let ttl: i64 = cmd("PTTL").arg("c").query(&mut d5).unwrap();
    assert!(ttl > 800_000, "COPY keeps the expiry: {ttl}");
    let n: i64 = cmd("DBSIZE").query(&mut d0).unwrap();
    assert_eq!(n, 0, "nothing leaked into database 0");
}

#[test]
fn key_reads_answer_like_redis() {
    let dir = temp_dir("strings-reads");
    let server = Server::start(&dir, &[]);
    let mut c = db(&server, 0);
    let none: Option<String> = cmd("RANDOMKEY").query(&mut c).unwrap();
    assert_eq!(none, None);
    cmd("MSET")
        .arg("k1")
        .arg("ohmytext")
        .arg("k2")
        .arg("mynewtext")
        .query::<()>(&mut c)
        .unwrap();
    let k: String = cmd("RANDOMKEY").query(&mut c).unwrap();
    assert!(k == "k1" || k == "k2", "{k}");
    let lcs: String = cmd("LCS").arg("k1").arg("k2").query(&mut c).unwrap();
    assert_eq!(lcs, "mytext");
    let touched: i64 = cmd("TOUCH")
        .arg("k1")
        .arg("k2")
        .arg("k3")
        .query(&mut c)
        .unwrap();
    assert_eq!(touched, 2);
    let enc: String = cmd("OBJECT")
        .arg("ENCODING")
        .arg("k1")
        .query(&mut c)
        .unwrap();
    assert_eq!(enc, "embstr");
    let t: i64 = cmd("EXPIRETIME").arg("k1").query(&mut c).unwrap();
    assert_eq!(t, -1);
    let (secs, micros): (String, String) = cmd("TIME").query(&mut c).unwrap();
    assert!(secs.parse::<u64>().unwrap() > 1_700_000_000);
    assert!(micros.parse::<u32>().unwrap() < 1_000_000);
    let w: i64 = cmd("WAIT").arg(1).arg(0).query(&mut c).unwrap();
    assert_eq!(w, 0);
    let usage: i64 = cmd("MEMORY").arg("USAGE").arg("k1").query(&mut c).unwrap();
    assert!(usage > 10, "{usage}");
    let unlinked: i64 = cmd("UNLINK").arg("k1").arg("k2").query(&mut c).unwrap();
    assert_eq!(unlinked, 2);
}
