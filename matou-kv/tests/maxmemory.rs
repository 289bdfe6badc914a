//! maxmemory, eviction and active expiry against the real server, with
//! the `redis` crate as the client.

mod common;

use common::{temp_dir, Server};
use std::time::{Duration, Instant};

/// Redis's error, as the redis crate shows it (code, then detail).
fn is_oom(e: &redis::RedisError) -> bool {
    e.code() == Some("OOM")
        && e.detail() == Some("command not allowed when used memory > 'maxmemory'.")
}

fn info_field(con: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("everything").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

fn dbsize(con: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(con).unwrap()
}

#[test]
fn noeviction_answers_oom_to_writes_that_add_data_and_serves_the_rest() {
    let dir = temp_dir("maxmemory-noeviction");
    let server = Server::start(&dir, &["--maxmemory", "1mb"]);
    let mut con = server.client();
    let value = "v".repeat(100);
    let mut refused = None;
    for i in 0..50_000 {
        match redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(&value)
            .query::<String>(&mut con)
        {
            Ok(_) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (stored, e) = refused.expect("1 MiB never ran out");
    assert!(is_oom(&e), "{e}");
    assert!(stored > 1000, "only {stored} keys before OOM");
    assert!(info_field(&mut con, "used_memory") <= (1 << 20) + (64 << 10));
    // Reads, deletes and writes that add nothing are served.
    let v: String = redis::cmd("GET").arg("k0").query(&mut con).unwrap();
    assert_eq!(v, value);
    let e = redis::cmd("APPEND")
        .arg("k0")
        .arg("x")
        .query::<i64>(&mut con)
        .unwrap_err();
    assert!(is_oom(&e), "{e}");
    // Inside MULTI the refusal fails the transaction.
    redis::cmd("MULTI").query::<String>(&mut con).unwrap();
    assert!(redis::cmd("SET")
        .arg("t")
        .arg("1")
        .query::<String>(&mut con)
        .is_err());
    let e = redis::cmd("EXEC")
        .query::<redis::Value>(&mut con)
        .unwrap_err();
    assert_eq!(e.kind(), redis::ErrorKind::ExecAbortError, "{e}");
    // Deleting makes room again.
    let keys: Vec<String> = (0..stored / 2).map(|i| format!("k{i}")).collect();
    let n: u64 = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
    assert_eq!(n, keys.len() as u64);
    let _: String = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut con)
        .unwrap();
    assert_eq!(info_field(&mut con, "evicted_keys"), 0);
}

#[test]
fn allkeys_lru_stays_under_the_limit_keeps_hot_keys_and_replays_the_same() {
    let dir = temp_dir("maxmemory-lru");
    let mut server = Server::start(
        &dir,
        &[
            "--maxmemory",
            "2mb",
            "--maxmemory-policy",
            "allkeys-lru",
            "--fsync",
            "no",
        ],
    );
    let mut con = server.client();
    let value = "v".repeat(100);
    let _: String = redis::cmd("SET")
        .arg("hot")
        .arg("h")
        .query(&mut con)
        .unwrap();
    for batch in 0..100 {
        let mut pipe = redis::pipe();
        for i in 0..500 {
            pipe.cmd("SET")
                .arg(format!("k{batch}:{i}"))
                .arg(&value)
                .ignore();
        }
        pipe.cmd("GET").arg("hot").ignore();
        pipe.query::<()>(&mut con).unwrap();
    }
    let used = info_field(&mut con, "used_memory");
    // One round of a pipeline may pass the limit before the next eviction.
    assert!(used <= (2 << 20) + (256 << 10), "used_memory {used}");
    let evicted = info_field(&mut con, "evicted_keys");
    let keys = dbsize(&mut con);
    assert!(evicted > 20_000, "evicted {evicted}");
    assert_eq!(
        keys + evicted,
        50_001,
        "every key is either held or evicted"
    );
    let hot: Option<String> = redis::cmd("GET").arg("hot").query(&mut con).unwrap();
    assert_eq!(
        hot.as_deref(),
        Some("h"),
        "the key read all along was evicted"
    );
    // Evictions are in the log: a restart holds the same keys.
    server.terminate();
    server.spawn();
    let mut con = server.client();
    assert_eq!(dbsize(&mut con), keys);
}

#[test]
fn lfu_policy_counts_accesses_for_object_freq() {
    let dir = temp_dir("maxmemory-lfu");
    let server = Server::start(&dir, &["--maxmemory-policy", "allkeys-lfu"]);
    let mut con = server.client();
    let _: String = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let first: i64 = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("k")
        .query(&mut con)
        .unwrap();
    assert_eq!(first, 5, "a new key starts at LFU_INIT_VAL");
    for _ in 0..300 {
        let _: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    }
    let later: i64 = redis::cmd("OBJECT")
        .arg("FREQ")
        .arg("k")
        .query(&mut con)
        .unwrap();
    assert!(later > first + 3, "OBJECT FREQ {later} after 300 reads");
    assert_eq!(
        redis::cmd("OBJECT")
            .arg("FREQ")
            .arg("nope")
            .query::<Option<i64>>(&mut con)
            .unwrap(),
        None
    );
}

#[test]
fn volatile_policy_evicts_only_keys_with_a_ttl() {
    let dir = temp_dir("maxmemory-volatile");
    let server = Server::start(
        &dir,
        &[
            "--maxmemory",
            "1mb",
            "--maxmemory-policy",
            "volatile-lru",
            "--fsync",
            "no",
        ],
    );
    let mut con = server.client();
    let value = "v".repeat(100);
    // 2000 persistent keys (~0.3 MiB), then keys with a TTL beyond the limit.
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(&value).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    for i in 0..10_000 {
        let _: String = redis::cmd("SET")
            .arg(format!("t{i}"))
            .arg(&value)
            .arg("EX")
            .arg(3600)
            .query(&mut con)
            .unwrap();
    }
    assert!(info_field(&mut con, "evicted_keys") > 0);
    let persistent: Vec<Option<String>> = redis::cmd("MGET")
        .arg((0..2000).map(|i| format!("p{i}")).collect::<Vec<_>>())
        .query(&mut con)
        .unwrap();
    assert!(
        persistent.iter().all(Option::is_some),
        "a key without TTL was evicted"
    );
}

#[test]
fn never_read_keys_with_a_ttl_leave_dbsize_and_memory() {
    let dir = temp_dir("active-expire");
    let server = Server::start(&dir, &[]);
    let mut con = server.client();
    let baseline = info_field(&mut con, "used_memory");
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SET")
            .arg(format!("e{i}"))
            .arg("x".repeat(100))
            .arg("PX")
            .arg(200)
            .ignore();
    }
    pipe.cmd("SET").arg("stays").arg("1").ignore();
    pipe.query::<()>(&mut con).unwrap();
    assert!(info_field(&mut con, "used_memory") > baseline + 5000 * 100);
    // Nothing reads them: only the active cycle can remove them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while dbsize(&mut con) > 1 {
        assert!(
            Instant::now() < deadline,
            "expired keys still held: {}",
            dbsize(&mut con)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(info_field(&mut con, "expired_keys"), 5000);
    let used = info_field(&mut con, "used_memory");
    assert!(
        used < baseline + 1000,
        "used_memory {used} after expiry (baseline {baseline})"
    );
}
