//! SLOWLOG, INFO commandstats and sections, SAVE / BGREWRITEAOF / LASTSAVE,
//! DEBUG, DUMP / RESTORE and BITFIELD against the real server, with the
//! `redis` crate as the peer.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Connection, RedisResult, Value};

fn info(c: &mut Connection, section: &[&str]) -> String {
    let mut q = cmd("INFO");
    for s in section {
        q.arg(*s);
    }
    q.query(c).unwrap()
}

fn field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

fn config_set(c: &mut Connection, name: &str, value: &str) -> RedisResult<()> {
    cmd("CONFIG").arg("SET").arg(name).arg(value).query(c)
}

#[test]
fn slowlog_logs_what_crosses_the_threshold_and_obeys_its_settings() {
    let dir = temp_dir("admin-slowlog");
    let server = Server::start(&dir, &["--enable-debug-command", "yes"]);
    let mut c = server.client();
    config_set(&mut c, "slowlog-log-slower-than", "100000").unwrap();
    let _: () = cmd("SLOWLOG").arg("RESET").query(&mut c).unwrap();
    let _: () = cmd("SET").arg("fast").arg("1").query(&mut c).unwrap();
    let _: () = cmd("DEBUG").arg("SLEEP").arg("0.2").query(&mut c).unwrap();
    let len: i64 = cmd("SLOWLOG").arg("LEN").query(&mut c).unwrap();
    assert_eq!(len, 1, "only the sleep is slow");
    let entries: Vec<Value> = cmd("SLOWLOG").arg("GET").query(&mut c).unwrap();
    let Value::Array(e) = &entries[0] else {
        panic!("{entries:?}")
    };
    let Value::Int(micros) = e[2] else {
        panic!("{e:?}")
    };
    assert!(micros >= 200_000, "{micros}");
    assert_eq!(
        e[3],
        Value::Array(vec![
            Value::BulkString(b"DEBUG".to_vec()),
            Value::BulkString(b"SLEEP".to_vec()),
            Value::BulkString(b"0.2".to_vec()),
        ])
    );
    // 0 logs everything; max-len bounds the entries.
    config_set(&mut c, "slowlog-log-slower-than", "0").unwrap();
    config_set(&mut c, "slowlog-max-len", "3").unwrap();
    for i in 0..10 {
        let _: () = cmd("SET").arg("k").arg(i).query(&mut c).unwrap();
    }
    let len: i64 = cmd("SLOWLOG").arg("LEN").query(&mut c).unwrap();
    assert_eq!(len, 3);
    let got: Vec<Value> = cmd("SLOWLOG").arg("GET").arg(1).query(&mut c).unwrap();
    assert_eq!(got.len(), 1);
    let e: RedisResult<Value> = cmd("SLOWLOG").arg("GET").arg(-2).query(&mut c);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("greater than or equal to -1"));
    let _: () = cmd("SLOWLOG").arg("RESET").query(&mut c).unwrap();
    config_set(&mut c, "slowlog-log-slower-than", "-1").unwrap();
    let _: () = cmd("SET").arg("k").arg(1).query(&mut c).unwrap();
    let len: i64 = cmd("SLOWLOG").arg("LEN").query(&mut c).unwrap();
    assert_eq!(len, 1, "only the CONFIG SET that turned it off");
}

#[test]
fn info_commandstats_counts_calls_failures_and_rejections_and_resetstat_clears_them() {
    let dir = temp_dir("admin-cmdstats");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    for _ in 0..3 {
        let _: () = cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    }
    // A failure (it ran) and a rejection (wrong arity).
    let _: RedisResult<()> = cmd("INCR").arg("nosuch").arg("x").query(&mut c);
    let _: RedisResult<()> = cmd("HSET").arg("a").arg("f").arg("v").query(&mut c);
    let stats = info(&mut c, &["commandstats"]);
    let set = field(&stats, "cmdstat_set").expect(&stats);
    assert!(
        set.starts_with("calls=3,usec=") && set.ends_with("rejected_calls=0,failed_calls=0"),
        "{set}"
    );
    let incr = field(&stats, "cmdstat_incr").expect(&stats);
    assert!(
        incr.starts_with("calls=0,") && incr.contains("rejected_calls=1"),
        "{incr}"
    );
    let hset = field(&stats, "cmdstat_hset").expect(&stats);
    assert!(
        hset.starts_with("calls=1,") && hset.ends_with("failed_calls=1"),
        "{hset}"
    );
    assert!(
        field(&stats, "used_memory").is_none(),
        "only the section asked"
    );
    // Default INFO has no commandstats; all and everything do.
    assert!(!info(&mut c, &[]).contains("rejected_calls"));
    assert!(!info(&mut c, &["default"]).contains("rejected_calls"));
    for all in ["all", "everything"] {
        let text = info(&mut c, &[all]);
        assert!(text.contains("cmdstat_set:") && text.contains("used_memory:"));
    }
    let both = info(&mut c, &["cpu", "default"]);
    assert_eq!(both.matches("used_cpu_user_children").count(), 1);
    let _: () = cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let stats = info(&mut c, &["commandstats"]);
    assert!(field(&stats, "cmdstat_set").is_none(), "{stats}");
}

#[test]
fn save_and_lastsave_and_the_data_survives_a_kill() {
    let dir = temp_dir("admin-save");
    let mut server = Server::start(&dir, &["--fsync", "no"]);
    let mut c = server.client();
    for i in 0..500 {
        let _: () = cmd("SET").arg("k").arg(i).query(&mut c).unwrap();
    }
    let _: () = cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("v")
        .query(&mut c)
        .unwrap();
    let before: i64 = cmd("LASTSAVE").query(&mut c).unwrap();
    let size_before = std::fs::metadata(server.log_path()).unwrap().len();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let _: () = cmd("SAVE").query(&mut c).unwrap();
    let after: i64 = cmd("LASTSAVE").query(&mut c).unwrap();
    assert!(after > before, "{before} -> {after}");
    let size_after = std::fs::metadata(server.log_path()).unwrap().len();
    assert!(size_after < size_before, "{size_before} -> {size_after}");
    let persistence = info(&mut c, &["persistence"]);
    assert_eq!(
        field(&persistence, "rdb_changes_since_last_save").as_deref(),
        Some("0")
    );
    // SAVE is refused inside MULTI, as in Redis.
    let _: () = cmd("MULTI").query(&mut c).unwrap();
    let e: RedisResult<()> = cmd("SAVE").query(&mut c);
    assert!(e.unwrap_err().to_string().contains("not allowed"));
    let _: () = cmd("DISCARD").query(&mut c).unwrap();
    server.kill();
    server.spawn();
    let mut c = server.client();
    let k: String = cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(k, "499");
    let f: String = cmd("HGET").arg("h").arg("f").query(&mut c).unwrap();
    assert_eq!(f, "v");
}

#[test]
fn bgrewriteaof_answers_as_redis_and_completes() {
    let dir = temp_dir("admin-bgrewrite");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    for i in 0..200 {
        let _: () = cmd("SET").arg("k").arg(i).query(&mut c).unwrap();
    }
    let r: String = cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert_eq!(r, "Background append only file rewriting started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let p = info(&mut c, &["persistence"]);
        if field(&p, "aof_rewrite_in_progress").as_deref() == Some("0") {
            assert_eq!(field(&p, "aof_rewrites").as_deref(), Some("1"), "{p}");
            assert_eq!(
                field(&p, "aof_last_bgrewrite_status").as_deref(),
                Some("ok")
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "rewrite never ended");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let k: String = cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(k, "199");
}

#[test]
fn debug_is_refused_by_default_and_its_subcommands_work_when_enabled() {
    let dir = temp_dir("admin-debug-off");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    let e: RedisResult<()> = cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(0).query(&mut c);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("DEBUG command not allowed"));
    // Not through a transaction either.
    let _: () = cmd("MULTI").query(&mut c).unwrap();
    let _: () = cmd("DEBUG").arg("SLEEP").arg(0).query(&mut c).unwrap();
    let r: RedisResult<Value> = cmd("EXEC").query(&mut c);
    assert!(
        format!("{r:?}").contains("DEBUG command not allowed"),
        "{r:?}"
    );
    drop(server);

    let dir = temp_dir("admin-debug-on");
    let server = Server::start(&dir, &["--enable-debug-command", "local"]);
    let mut c = server.client();
    let _: () = cmd("SET").arg("s").arg("hello").query(&mut c).unwrap();
    let _: () = cmd("HSET")
        .arg("h")
        .arg("a")
        .arg(1)
        .arg("b")
        .arg(2)
        .query(&mut c)
        .unwrap();
    let obj: String = cmd("DEBUG").arg("OBJECT").arg("s").query(&mut c).unwrap();
    assert!(
        obj.contains("encoding:embstr") && obj.contains("lru_seconds_idle:"),
        "{obj}"
    );
    let e: RedisResult<String> = cmd("DEBUG").arg("OBJECT").arg("nosuch").query(&mut c);
    assert!(e.unwrap_err().to_string().contains("no such key"));
    // Active expiry off: a key past its TTL stays counted until read.
    let _: () = cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query(&mut c)
        .unwrap();
    let _: () = cmd("SET")
        .arg("t")
        .arg(1)
        .arg("PX")
        .arg(1)
        .query(&mut c)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let ks = info(&mut c, &["keyspace"]);
    assert!(ks.contains("db0:keys=3,"), "{ks}");
    let _: () = cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(1)
        .query(&mut c)
        .unwrap();
    // COPY keeps the digest; a change alters it; no key is 40 zeros.
    let _: () = cmd("COPY").arg("h").arg("h2").query(&mut c).unwrap();
    let d: Vec<String> = cmd("DEBUG")
        .arg("DIGEST-VALUE")
        .arg("h")
        .arg("h2")
        .arg("nosuch")
        .query(&mut c)
        .unwrap();
    assert_eq!(d[0], d[1]);
    assert_eq!(d[2], "0".repeat(40));
    let digest: String = cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
    // RELOAD: the log alone rebuilds the same data.
    let _: () = cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    let again: String = cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
    assert_eq!(digest, again);
    let s: String = cmd("GET").arg("s").query(&mut c).unwrap();
    assert_eq!(s, "hello");
    let _: () = cmd("DEBUG").arg("CHANGE-REPL-ID").query(&mut c).unwrap();
    let n: i64 = cmd("DEBUG")
        .arg("PROTOCOL")
        .arg("integer")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 12345);
    let e: RedisResult<()> = cmd("DEBUG").arg("JMAP").query(&mut c);
    assert!(e.unwrap_err().to_string().contains("not supported"));
    let _: () = cmd("FLUSHALL").query(&mut c).unwrap();
    let empty: String = cmd("DEBUG").arg("DIGEST").query(&mut c).unwrap();
    assert_eq!(empty, "0".repeat(40));
}

#[test]
fn config_set_takes_memory_settings_live_and_accepts_redis_no_effect_settings() {
    let dir = temp_dir("admin-config");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    config_set(&mut c, "maxmemory", "1mb").unwrap();
    config_set(&mut c, "maxmemory-policy", "noeviction").unwrap();
    let big = "x".repeat(300 * 1024);
    let mut refused = false;
    for i in 0..10 {
        let r: RedisResult<()> = cmd("SET").arg(format!("k{i}")).arg(&big).query(&mut c);
        if let Err(e) = r {
            assert!(e.to_string().contains("OOM"), "{e}");
            refused = true;
            break;
        }
    }
    assert!(refused, "maxmemory set live refuses writes over it");
    let mem = info(&mut c, &["memory"]);
    assert_eq!(field(&mem, "maxmemory").as_deref(), Some("1048576"));
    config_set(&mut c, "maxmemory", "0").unwrap();
    let _: () = cmd("SET").arg("k").arg(&big).query(&mut c).unwrap();

    config_set(&mut c, "hash-max-listpack-entries", "16").unwrap();
    let got: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("hash-max-listpack-entries")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec!["hash-max-listpack-entries", "16"]);
    let e = config_set(&mut c, "hz", "often").unwrap_err();
    assert!(e.to_string().contains("'hz'"), "{e}");
    // appendfsync reaches the log's owner: INFO shows the policy in force.
    config_set(&mut c, "appendfsync", "everysec").unwrap();
    let _: () = cmd("SET").arg("after").arg(1).query(&mut c).unwrap();
    let p = info(&mut c, &["persistence"]);
    assert_eq!(field(&p, "aof_fsync").as_deref(), Some("everysec"), "{p}");
    let e = config_set(&mut c, "appendfsync", "sometimes").unwrap_err();
    assert!(e.to_string().contains("'appendfsync'"), "{e}");
    let e = config_set(&mut c, "workers", "4").unwrap_err();
    assert!(e.to_string().contains("immutable"), "{e}");
}

#[test]
fn dump_and_restore_move_values_with_their_options_and_are_logged() {
    let dir = temp_dir("admin-dump");
    let mut server = Server::start(&dir, &[]);
    let mut c = server.client();
    let _: () = cmd("SET").arg("s").arg("bar").query(&mut c).unwrap();
    let _: () = cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("v")
        .arg("g")
        .arg("w")
        .query(&mut c)
        .unwrap();
    let s: Vec<u8> = cmd("DUMP").arg("s").query(&mut c).unwrap();
    // Redis 7.0.15's own DUMP of the same string, byte for byte.
    assert_eq!(s, b"\x00\x03bar\n\x00\xe6\xbeI`\xeef\xfd\x17".to_vec());
    let h: Vec<u8> = cmd("DUMP").arg("h").query(&mut c).unwrap();
    let none: Option<Vec<u8>> = cmd("DUMP").arg("nosuch").query(&mut c).unwrap();
    assert!(none.is_none());

    let e: RedisResult<()> = cmd("RESTORE").arg("s").arg(0).arg(&s).query(&mut c);
    assert!(e.unwrap_err().to_string().contains("BUSYKEY"));
    let _: () = cmd("RESTORE")
        .arg("s2")
        .arg(5000)
        .arg(&s)
        .query(&mut c)
        .unwrap();
    let pttl: i64 = cmd("PTTL").arg("s2").query(&mut c).unwrap();
    assert!((3000..=5000).contains(&pttl), "{pttl}");
    let _: () = cmd("RESTORE")
        .arg("h")
        .arg(0)
        .arg(&h)
        .arg("REPLACE")
        .arg("IDLETIME")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let idle: i64 = cmd("OBJECT")
        .arg("IDLETIME")
        .arg("h")
        .query(&mut c)
        .unwrap();
    assert!((100..=102).contains(&idle), "{idle}");
    let _: () = cmd("RESTORE")
        .arg("h2")
        .arg(0)
        .arg(&h)
        .query(&mut c)
        .unwrap();
    let all: std::collections::HashMap<String, String> =
        cmd("HGETALL").arg("h2").query(&mut c).unwrap();
    assert_eq!(all.get("g").map(String::as_str), Some("w"));
    // An absolute TTL in the past deletes what REPLACE would replace.
    let _: () = cmd("RESTORE")
        .arg("s")
        .arg(1)
        .arg(&s)
        .arg("ABSTTL")
        .arg("REPLACE")
        .query(&mut c)
        .unwrap();
    let n: i64 = cmd("EXISTS").arg("s").query(&mut c).unwrap();
    assert_eq!(n, 0);

    let mut bad = s.clone();
    bad[3] ^= 1;
    let e: RedisResult<()> = cmd("RESTORE").arg("x").arg(0).arg(&bad).query(&mut c);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("DUMP payload version or checksum are wrong"));
    let e: RedisResult<()> = cmd("RESTORE")
        .arg("x")
        .arg(0)
        .arg(&s)
        .arg("bogus")
        .query(&mut c);
    assert!(e.unwrap_err().to_string().contains("syntax"));
    let e: RedisResult<()> = cmd("RESTORE").arg("x").arg(-1).arg(&s).query(&mut c);
    assert!(e.unwrap_err().to_string().contains("Invalid TTL"));

    server.kill();
    server.spawn();
    let mut c = server.client();
    let v: String = cmd("GET").arg("s2").query(&mut c).unwrap();
    assert_eq!(v, "bar");
    let v: String = cmd("HGET").arg("h2").arg("f").query(&mut c).unwrap();
    assert_eq!(v, "v");
    let n: i64 = cmd("EXISTS").arg("s").query(&mut c).unwrap();
    assert_eq!(n, 0, "the RESTORE that deleted it is logged");
}

#[test]
fn bitfield_changes_replay_from_the_log_with_the_expiry_kept() {
    let dir = temp_dir("admin-bitfield");
    let mut server = Server::start(&dir, &[]);
    let mut c = server.client();
    let _: () = cmd("SET")
        .arg("b")
        .arg("\x01")
        .arg("EX")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    let r: Vec<i64> = cmd("BITFIELD")
        .arg("b")
        .arg("SET")
        .arg("u8")
        .arg("#2")
        .arg(200)
        .arg("INCRBY")
        .arg("i16")
        .arg(0)
        .arg(5)
        .arg("GET")
        .arg("u8")
        .arg(16)
        .query(&mut c)
        .unwrap();
    assert_eq!(r, vec![0, 256 + 5, 200]);
    let r: Vec<Option<i64>> = cmd("BITFIELD")
        .arg("b")
        .arg("OVERFLOW")
        .arg("FAIL")
        .arg("INCRBY")
        .arg("u8")
        .arg(16)
        .arg(100)
        .query(&mut c)
        .unwrap();
    assert_eq!(r, vec![None]);
    let ro: Vec<i64> = cmd("BITFIELD_RO")
        .arg("b")
        .arg("GET")
        .arg("u8")
        .arg(16)
        .query(&mut c)
        .unwrap();
    assert_eq!(ro, vec![200]);
    let before: Vec<u8> = cmd("GET").arg("b").query(&mut c).unwrap();
    assert_eq!(before, vec![0x01, 0x05, 200]);
    server.kill();
    server.spawn();
    let mut c = server.client();
    let after: Vec<u8> = cmd("GET").arg("b").query(&mut c).unwrap();
    assert_eq!(after, before);
    let ttl: i64 = cmd("TTL").arg("b").query(&mut c).unwrap();
    assert!(ttl > 900, "{ttl}");
}

#[test]
fn info_latencystats_follows_the_latency_tracking_settings() {
    let dir = temp_dir("admin-latency");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    for _ in 0..20 {
        let _: () = cmd("SET").arg("a").arg(1).query(&mut c).unwrap();
    }
    let text = info(&mut c, &["latencystats"]);
    let line = field(&text, "latency_percentiles_usec_set").expect(&text);
    assert!(
        line.starts_with("p50=") && line.contains(",p99=") && line.contains(",p99.9="),
        "{line}"
    );
    assert!(!info(&mut c, &[]).contains("latency_percentiles_usec"));
    assert!(info(&mut c, &["all"]).contains("latency_percentiles_usec_set:"));
    config_set(
        &mut c,
        "latency-tracking-info-percentiles",
        "0.0 50.0 100.0",
    )
    .unwrap();
    let got: Vec<String> = cmd("CONFIG")
        .arg("GET")
        .arg("latency-tracking-info-percentiles")
        .query(&mut c)
        .unwrap();
    assert_eq!(got[1], "0 50 100");
    let line = field(
        &info(&mut c, &["latencystats"]),
        "latency_percentiles_usec_set",
    )
    .unwrap();
    assert!(line.starts_with("p0=") && line.contains(",p100="), "{line}");
    let e = config_set(&mut c, "latency-tracking-info-percentiles", "101").unwrap_err();
    assert!(e.to_string().contains("percentiles"), "{e}");
    config_set(&mut c, "latency-tracking", "no").unwrap();
    assert!(field(
        &info(&mut c, &["latencystats"]),
        "latency_percentiles_usec_set"
    )
    .is_none());
}

#[test]
fn save_after_flushall_and_refcount_and_appendonly_answer_as_redis() {
    let dir = temp_dir("admin-empty-save");
    let server = Server::start(&dir, &[]);
    let mut c = server.client();
    // An emptied store saves (fallocate refused a zero-length reservation).
    cmd("SET").arg("k").arg("v").query::<()>(&mut c).unwrap();
    cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    assert_eq!(cmd("SAVE").query::<String>(&mut c).unwrap(), "OK");
    assert_eq!(
        cmd("BGREWRITEAOF").query::<String>(&mut c).unwrap(),
        "Background append only file rewriting started"
    );
    // Redis shares the objects of the integers 0-9999.
    for (v, refcount) in [
        ("5", i64::from(i32::MAX)),
        ("9999", i64::from(i32::MAX)),
        ("10000", 1),
        ("05", 1),
        ("x", 1),
    ] {
        cmd("SET").arg("n").arg(v).query::<()>(&mut c).unwrap();
        let got: i64 = cmd("OBJECT")
            .arg("REFCOUNT")
            .arg("n")
            .query(&mut c)
            .unwrap();
        assert_eq!(got, refcount, "{v}");
    }
    let none: Option<i64> = cmd("OBJECT")
        .arg("REFCOUNT")
        .arg("absent")
        .query(&mut c)
        .unwrap();
    assert_eq!(none, None);
    // The log is always on: `yes` is accepted, `no` refused.
    config_set(&mut c, "appendonly", "yes").unwrap();
    let e = config_set(&mut c, "appendonly", "no").unwrap_err();
    assert!(e.to_string().contains("always keeps its log"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
