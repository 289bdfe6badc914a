//! SORT / SORT_RO and BGSAVE against the real server, with the `redis`
//! crate as the peer: the orderings, patterns and errors Redis 7.0 gives,
//! a STORE that survives a kill and restart (it is logged), and a BGSAVE
//! that rewrites the log in the background and reports it in INFO.

mod common;

use common::{q, q_err, temp_dir, Server};
use redis::{cmd, Connection};
use std::time::{Duration, Instant};

fn persistence(c: &mut Connection) -> String {
    cmd("INFO").arg("persistence").query(c).unwrap()
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

#[test]
fn sort_orders_limits_and_maps_through_patterns_as_redis() {
    let dir = temp_dir("sort-orders");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let _: () = q(&mut c, &["RPUSH", "l", "3", "10", "1.5", "-2"]);
    let v: Vec<String> = q(&mut c, &["SORT", "l"]);
    assert_eq!(v, ["-2", "1.5", "3", "10"]);
    let v: Vec<String> = q(&mut c, &["SORT", "l", "DESC", "LIMIT", "1", "2"]);
    assert_eq!(v, ["3", "1.5"]);
    let v: Vec<String> = q(&mut c, &["SORT", "l", "ALPHA"]);
    assert_eq!(v, ["-2", "1.5", "10", "3"]);
    // BY a string key and a hash field; GET # and GET a field.
    let _: () = q(&mut c, &["DEL", "l"]);
    let _: () = q(&mut c, &["RPUSH", "l", "a", "b", "c"]);
    let _: () = q(&mut c, &["MSET", "w_a", "30", "w_b", "10", "w_c", "20"]);
    for (k, w) in [("o_a", "2"), ("o_b", "3"), ("o_c", "1")] {
        let _: () = q(&mut c, &["HSET", k, "weight", w, "name", &k.to_uppercase()]);
    }
    let v: Vec<String> = q(&mut c, &["SORT", "l", "BY", "w_*"]);
    assert_eq!(v, ["b", "c", "a"]);
    let v: Vec<String> = q(
        &mut c,
        &[
            "SORT_RO",
            "l",
            "BY",
            "o_*->weight",
            "GET",
            "#",
            "GET",
            "o_*->name",
        ],
    );
    assert_eq!(v, ["c", "O_C", "a", "O_A", "b", "O_B"]);
    // A GET naming nothing answers nil; BY nosort keeps the list's order.
    let v: Vec<Option<String>> = q(&mut c, &["SORT", "l", "BY", "nosort", "GET", "missing_*"]);
    assert_eq!(v, [None, None, None]);
    let v: Vec<String> = q(&mut c, &["SORT", "l", "BY", "nosort", "DESC"]);
    assert_eq!(v, ["c", "b", "a"]);
    // A sorted set BY nosort: by score.
    let _: () = q(&mut c, &["ZADD", "z", "1", "a", "5", "b", "2", "c"]);
    let v: Vec<String> = q(&mut c, &["SORT", "z", "BY", "nosort"]);
    assert_eq!(v, ["a", "c", "b"]);
    // The errors.
    let _: () = q(&mut c, &["SADD", "s", "1", "x"]);
    assert!(
        q_err(&mut c, &["SORT", "s"]).contains("One or more scores can't be converted into double")
    );
    assert!(q_err(&mut c, &["SORT", "l", "LIMIT", "x", "1"]).contains("not an integer"));
    assert!(q_err(&mut c, &["SORT", "l", "BOGUS"]).contains("syntax error"));
    assert!(q_err(&mut c, &["SORT_RO", "l", "STORE", "d"]).contains("syntax error"));
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert!(q_err(&mut c, &["SORT", "str"]).starts_with("WRONGTYPE"));
    let keys: Vec<String> = q(
        &mut c,
        &[
            "COMMAND", "GETKEYS", "SORT", "l", "STORE", "x", "STORE", "d",
        ],
    );
    assert_eq!(keys, ["l", "d"]);
}

#[test]
fn sort_store_is_logged_and_survives_a_restart() {
    let dir = temp_dir("sort-store");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut c = server.client();
    let _: () = q(&mut c, &["SADD", "s", "b", "c", "a"]);
    let _: () = q(&mut c, &["SET", "dest", "old"]);
    let _: () = q(&mut c, &["EXPIRE", "dest", "1000"]);
    // A set BY nosort with STORE is sorted ALPHA (deterministic).
    let n: i64 = q(&mut c, &["SORT", "s", "BY", "nosort", "STORE", "dest"]);
    assert_eq!(n, 3);
    let ttl: i64 = q(&mut c, &["TTL", "dest"]);
    assert_eq!(ttl, -1, "STORE replaces the destination, expiry included");
    let _: () = q(&mut c, &["RPUSH", "l", "2", "1"]);
    let n: i64 = q(
        &mut c,
        &["SORT", "l", "GET", "#", "GET", "nokey_*", "STORE", "dest2"],
    );
    assert_eq!(n, 4);
    // An empty result deletes the destination.
    let _: () = q(&mut c, &["SET", "gone", "x"]);
    let n: i64 = q(&mut c, &["SORT", "nothing", "STORE", "gone"]);
    assert_eq!(n, 0);
    server.kill();
    server.spawn();
    let mut c = server.client();
    let v: Vec<String> = q(&mut c, &["LRANGE", "dest", "0", "-1"]);
    assert_eq!(v, ["a", "b", "c"]);
    let v: Vec<String> = q(&mut c, &["LRANGE", "dest2", "0", "-1"]);
    assert_eq!(v, ["1", "", "2", ""]);
    let t: String = q(&mut c, &["TYPE", "dest"]);
    assert_eq!(t, "list");
    let e: i64 = q(&mut c, &["EXISTS", "gone"]);
    assert_eq!(e, 0);
}

#[test]
fn bgsave_rewrites_the_log_in_the_background_and_reports_it() {
    let dir = temp_dir("sort-bgsave");
    let mut server = Server::start(&dir, &["--fsync", "no"]);
    let mut c = server.client();
    for i in 0..300 {
        let _: () = q(&mut c, &["SET", "k", &i.to_string()]);
    }
    let size_before = std::fs::metadata(server.log_path()).unwrap().len();
    assert!(q_err(&mut c, &["BGSAVE", "NOW"]).contains("syntax error"));
    let r: String = q(&mut c, &["BGSAVE"]);
    assert_eq!(r, "Background saving started");
    let deadline = Instant::now() + Duration::from_secs(20);
    let p = loop {
        let p = persistence(&mut c);
        if field(&p, "rdb_bgsave_in_progress").as_deref() == Some("0") {
            break p;
        }
        assert!(Instant::now() < deadline, "BGSAVE never ended: {p}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        field(&p, "rdb_last_bgsave_status").as_deref(),
        Some("ok"),
        "{p}"
    );
    assert_eq!(field(&p, "aof_rewrites").as_deref(), Some("1"), "{p}");
    let size_after = std::fs::metadata(server.log_path()).unwrap().len();
    assert!(size_after < size_before, "{size_before} -> {size_after}");
    // While another rewrite runs, BGSAVE refuses and SCHEDULE schedules:
    // whether the rewrite is still running when BGSAVE arrives depends on
    // timing, so both outcomes are accepted, but the scheduled one must
    // then run to its end.
    let _: String = q(&mut c, &["BGREWRITEAOF"]);
    let r: String = match cmd("BGSAVE").arg("SCHEDULE").query(&mut c) {
        Ok(r) => r,
        Err(e) => panic!("BGSAVE SCHEDULE: {e}"),
    };
    assert!(
        r == "Background saving scheduled" || r == "Background saving started",
        "{r}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = persistence(&mut c);
        let rewrites: u64 = field(&p, "aof_rewrites").unwrap().parse().unwrap();
        if rewrites >= 3 && field(&p, "rdb_bgsave_in_progress").as_deref() == Some("0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduled BGSAVE never ran: {p}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    server.spawn();
    let mut c = server.client();
    let k: String = q(&mut c, &["GET", "k"]);
    assert_eq!(k, "299");
}
