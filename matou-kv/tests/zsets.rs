//! Sorted sets through the `redis` crate against the real server: ZADD's
//! flags, ranges of every form, scores as redis-server 7.0 prints them,
//! the algebra, and a SIGKILL (and a log rewrite) after which the log
//! gives the same sets back.

mod common;

use common::{q, temp_dir, Server};
use redis::{cmd, Commands, RedisResult};
use std::time::{Duration, Instant};

#[test]
fn sorted_sets_work_through_the_redis_crate_and_survive_a_kill() {
    let dir = temp_dir("zsets");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut c = server.client();
    let n: i64 = q(&mut c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(n, 3);
    let n: i64 = q(&mut c, &["ZADD", "z", "NX", "10", "a", "4", "d"]);
    assert_eq!(n, 1, "NX adds only new members");
    let n: i64 = q(&mut c, &["ZADD", "z", "XX", "CH", "5", "b", "9", "nope"]);
    assert_eq!(n, 1, "XX CH counts the changed member only");
    let n: i64 = q(&mut c, &["ZADD", "z", "GT", "CH", "0", "a", "6", "c"]);
    assert_eq!(n, 1, "GT only raises");
    let s: Option<String> = q(&mut c, &["ZADD", "z", "INCR", "0.5", "a"]);
    assert_eq!(s.as_deref(), Some("1.5"));
    let s: String = q(&mut c, &["ZINCRBY", "z", "0.1", "d"]);
    assert_eq!(
        s, "4.0999999999999996",
        "scores print as %.17g, like redis 7.0"
    );
    // a 1.5, d 4.1, b 5, c 6
    let r: Vec<String> = c.zrange("z", 0, -1).unwrap();
    assert_eq!(r, ["a", "d", "b", "c"]);
    let r: Vec<String> = q(&mut c, &["ZRANGE", "z", "(5", "+inf", "BYSCORE"]);
    assert_eq!(r, ["c"]);
    let r: Vec<String> = q(
        &mut c,
        &[
            "ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2",
        ],
    );
    assert_eq!(r, ["b", "d"]);
    let r: Vec<String> = q(&mut c, &["ZREVRANGE", "z", "0", "0", "WITHSCORES"]);
    assert_eq!(r, ["c", "6"]);
    let r: Vec<String> = q(
        &mut c,
        &[
            "ZRANGEBYSCORE",
            "z",
            "-inf",
            "5",
            "WITHSCORES",
            "LIMIT",
            "0",
            "1",
        ],
    );
    assert_eq!(r, ["a", "1.5"]);
    let n: i64 = c.zcount("z", "2", "5").unwrap();
    assert_eq!(n, 2);
    let rank: Option<i64> = c.zrank("z", "b").unwrap();
    assert_eq!(rank, Some(2));
    let rank: Option<i64> = c.zrevrank("z", "b").unwrap();
    assert_eq!(rank, Some(1));
    let none: Option<i64> = c.zrank("z", "nope").unwrap();
    assert_eq!(none, None);
    let scores: Vec<Option<String>> = q(&mut c, &["ZMSCORE", "z", "a", "nope"]);
    assert_eq!(scores, [Some("1.5".to_string()), None]);
    let _: i64 = q(&mut c, &["ZADD", "inf", "inf", "top", "-inf", "bottom"]);
    let r: Vec<String> = q(&mut c, &["ZRANGE", "inf", "0", "-1", "WITHSCORES"]);
    assert_eq!(r, ["bottom", "-inf", "top", "inf"]);

    // Lex ranges (all scores equal).
    let _: i64 = q(
        &mut c,
        &["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"],
    );
    let r: Vec<String> = q(&mut c, &["ZRANGEBYLEX", "lex", "[b", "(d"]);
    assert_eq!(r, ["b", "c"]);
    let n: i64 = q(&mut c, &["ZLEXCOUNT", "lex", "-", "+"]);
    assert_eq!(n, 4);
    let n: i64 = q(&mut c, &["ZREMRANGEBYLEX", "lex", "[a", "[b"]);
    assert_eq!(n, 2);

    // The algebra and the stores.
    let _: i64 = q(&mut c, &["ZADD", "w", "10", "a", "20", "x"]);
    let n: i64 = q(
        &mut c,
        &["ZUNIONSTORE", "u", "2", "z", "w", "WEIGHTS", "2", "1"],
    );
    assert_eq!(n, 5);
    let s: String = q(&mut c, &["ZSCORE", "u", "a"]);
    assert_eq!(s, "13");
    let r: Vec<String> = q(
        &mut c,
        &["ZINTER", "2", "z", "w", "AGGREGATE", "MAX", "WITHSCORES"],
    );
    assert_eq!(r, ["a", "10"]);
    let n: i64 = q(&mut c, &["ZDIFFSTORE", "d", "2", "z", "w"]);
    assert_eq!(n, 3);
    let n: i64 = q(&mut c, &["ZRANGESTORE", "top2", "z", "0", "1", "REV"]);
    assert_eq!(n, 2);
    let popped: Vec<String> = q(&mut c, &["ZPOPMIN", "d"]);
    assert_eq!(popped, ["d", "4.0999999999999996"]);
    let popped: Vec<String> = q(&mut c, &["ZPOPMAX", "d", "5"]);
    assert_eq!(popped, ["c", "6", "b", "5"]);
    let exists: bool = c.exists("d").unwrap();
    assert!(!exists, "an emptied sorted set is deleted");
    let n: i64 = q(&mut c, &["ZREMRANGEBYRANK", "u", "0", "1"]);
    assert_eq!(n, 2);
    let n: i64 = q(&mut c, &["ZREMRANGEBYSCORE", "u", "(12", "13"]);
    assert_eq!(n, 1);

    // Encodings, TYPE, errors.
    let t: String = q(&mut c, &["TYPE", "z"]);
    assert_eq!(t, "zset");
    let e: String = q(&mut c, &["OBJECT", "ENCODING", "z"]);
    assert_eq!(e, "listpack");
    let long = "m".repeat(65);
    let _: i64 = q(&mut c, &["ZADD", "big", "1", &long]);
    let e: String = q(&mut c, &["OBJECT", "ENCODING", "big"]);
    assert_eq!(e, "skiplist");
    let _: () = c.set("str", "x").unwrap();
    let wrong: RedisResult<i64> = c.zadd("str", "a", 1);
    assert_eq!(wrong.unwrap_err().code(), Some("WRONGTYPE"));
    let bad: RedisResult<i64> = cmd("ZADD").arg(&["z", "NX", "XX", "1", "a"]).query(&mut c);
    assert!(format!("{:?}", bad.unwrap_err()).contains("not compatible"));
    let bad: RedisResult<i64> = cmd("ZADD").arg(&["z", "x", "a"]).query(&mut c);
    assert!(format!("{:?}", bad.unwrap_err()).contains("not a valid float"));

    let dump = |c: &mut redis::Connection, k: &str| -> Vec<String> {
        q(c, &["ZRANGE", k, "0", "-1", "WITHSCORES"])
    };
    let keys = ["z", "inf", "lex", "w", "u", "top2", "big"];
    let before: Vec<Vec<String>> = keys.iter().map(|k| dump(&mut c, k)).collect();
    drop(c);
    server.kill();
    server.spawn();
    let mut c = server.client();
    let after: Vec<Vec<String>> = keys.iter().map(|k| dump(&mut c, k)).collect();
    assert_eq!(after, before, "the log replays every sorted-set change");
}

#[test]
fn a_log_rewrite_keeps_sorted_sets_and_sets() {
    let dir = temp_dir("zsets-rewrite");
    let mut s = Server::start(&dir, &["--fsync", "no"]);
    let member = "x".repeat(1000);
    {
        let mut c = s.client();
        // ~3 MiB of score updates of 100 long members: compacted.
        for round in 0..30 {
            let mut p = redis::pipe();
            for k in 0..100 {
                p.cmd("ZADD")
                    .arg("z")
                    .arg(round * 1000 + k)
                    .arg(format!("{k}{member}"));
            }
            p.cmd("SADD").arg("s").arg(round);
            p.query::<()>(&mut c).unwrap();
        }
    }
    // An automatic rewrite may have run mid-way (how much it compacted
    // depends on how many writes came during it): ask for one at the end,
    // as often as one is refused for running already.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut c = s.client();
    loop {
        let size = std::fs::metadata(s.log_path()).unwrap().len();
        if size < 2 * 1024 * 1024 {
            break;
        }
        assert!(Instant::now() < deadline, "log not compacted: {size} bytes");
        let _ = redis::cmd("BGREWRITEAOF").query::<String>(&mut c);
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(c);
    assert!(s.terminate().success());
    s.spawn();
    let mut c = s.client();
    let n: i64 = c.zcard("z").unwrap();
    assert_eq!(n, 100);
    for k in [0, 42, 99] {
        let score: f64 = c.zscore("z", format!("{k}{member}")).unwrap();
        assert_eq!(score, (29 * 1000 + k) as f64);
    }
    let n: i64 = c.scard("s").unwrap();
    assert_eq!(n, 30);
    let e: String = q(&mut c, &["OBJECT", "ENCODING", "z"]);
    assert_eq!(e, "skiplist");
}
