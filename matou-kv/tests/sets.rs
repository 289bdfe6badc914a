//! Sets through the `redis` crate against the real server: replies,
//! count semantics, WRONGTYPE, TYPE / OBJECT ENCODING, and a SIGKILL after
//! which the log replays every change.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Commands, RedisResult};
use std::collections::HashSet;

fn members(c: &mut redis::Connection, key: &str) -> HashSet<String> {
    c.smembers(key).unwrap()
}

fn set_of(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn sets_work_through_the_redis_crate_and_survive_a_kill() {
    let dir = temp_dir("sets");
    let mut server = Server::start(&dir, &["--fsync", "always"]);
    let mut c = server.client();
    let n: i64 = c.sadd("s", &["a", "b", "c", "a"]).unwrap();
    assert_eq!(n, 3);
    let n: i64 = c.sadd("s", "a").unwrap();
    assert_eq!(n, 0, "SADD counts new members only");
    let n: i64 = c.srem("s", &["c", "zz"]).unwrap();
    assert_eq!(n, 1);
    let yes: bool = c.sismember("s", "a").unwrap();
    assert!(yes);
    let flags: Vec<i64> = cmd("SMISMEMBER")
        .arg(&["s", "a", "zz", "b"])
        .query(&mut c)
        .unwrap();
    assert_eq!(flags, vec![1, 0, 1]);
    assert_eq!(members(&mut c, "s"), set_of(&["a", "b"]));
    let n: i64 = c.scard("s").unwrap();
    assert_eq!(n, 2);
    let t: String = cmd("TYPE").arg("s").query(&mut c).unwrap();
    assert_eq!(t, "set");
    let enc = |c: &mut redis::Connection, k: &str| -> String {
        cmd("OBJECT").arg("ENCODING").arg(k).query(c).unwrap()
    };
    assert_eq!(enc(&mut c, "s"), "hashtable");
    let _: i64 = c.sadd("ints", &["1", "2", "3"]).unwrap();
    assert_eq!(enc(&mut c, "ints"), "intset");

    // SRANDMEMBER: positive counts are distinct (capped), negative repeat.
    let r: Vec<String> = c.srandmember_multiple("ints", 10).unwrap();
    assert_eq!(r.iter().collect::<HashSet<_>>().len(), 3);
    let r: Vec<String> = cmd("SRANDMEMBER")
        .arg("ints")
        .arg(-10)
        .query(&mut c)
        .unwrap();
    assert_eq!(r.len(), 10);
    assert!(r.iter().all(|m| ["1", "2", "3"].contains(&m.as_str())));

    // The algebra.
    let _: i64 = c.sadd("t", &["b", "c", "d"]).unwrap();
    let inter: HashSet<String> = c.sinter(&["s", "t"]).unwrap();
    assert_eq!(inter, set_of(&["b"]));
    let union: HashSet<String> = c.sunion(&["s", "t"]).unwrap();
    assert_eq!(union, set_of(&["a", "b", "c", "d"]));
    let diff: HashSet<String> = c.sdiff(&["t", "s"]).unwrap();
    assert_eq!(diff, set_of(&["c", "d"]));
    let n: i64 = cmd("SINTERCARD")
        .arg(&["2", "s", "t"])
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    let n: i64 = c.sunionstore("u", &["s", "t"]).unwrap();
    assert_eq!(n, 4);
    let n: i64 = c.sinterstore("none", &["s", "missing"]).unwrap();
    assert_eq!(n, 0);
    let exists: bool = c.exists("none").unwrap();
    assert!(!exists, "an empty result stores nothing");
    let moved: bool = c.smove("t", "s", "d").unwrap();
    assert!(moved);
    assert_eq!(members(&mut c, "s"), set_of(&["a", "b", "d"]));
    let popped: Vec<String> = cmd("SPOP").arg("ints").arg(2).query(&mut c).unwrap();
    assert_eq!(popped.len(), 2);
    let left: HashSet<String> = members(&mut c, "ints");
    assert_eq!(left.len(), 1);

    // SSCAN returns every member over a full iteration.
    let many: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    let _: i64 = c.sadd("big", &many).unwrap();
    let mut cursor = 0u64;
    let mut seen = HashSet::new();
    loop {
        let (next, batch): (u64, Vec<String>) = cmd("SSCAN")
            .arg("big")
            .arg(cursor)
            .arg("COUNT")
            .arg(20)
            .query(&mut c)
            .unwrap();
        seen.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 300);

    // Errors.
    let _: () = c.set("str", "x").unwrap();
    let wrong: RedisResult<i64> = c.sadd("str", "a");
    assert_eq!(wrong.unwrap_err().code(), Some("WRONGTYPE"));
    let wrong: RedisResult<HashSet<String>> = c.sinter(&["s", "str"]);
    assert_eq!(wrong.unwrap_err().code(), Some("WRONGTYPE"));
    let bad: RedisResult<Vec<String>> = cmd("SPOP").arg("s").arg("-1").query(&mut c);
    assert!(format!("{:?}", bad.unwrap_err()).contains("out of range"));

    let before_ints = members(&mut c, "ints");
    drop(c);
    server.kill();
    server.spawn();
    let mut c = server.client();
    assert_eq!(members(&mut c, "s"), set_of(&["a", "b", "d"]), "replayed");
    assert_eq!(members(&mut c, "t"), set_of(&["b", "c"]));
    assert_eq!(members(&mut c, "u"), set_of(&["a", "b", "c", "d"]));
    assert_eq!(
        members(&mut c, "ints"),
        before_ints,
        "SPOP replays what it popped"
    );
    let n: i64 = c.scard("big").unwrap();
    assert_eq!(n, 300);
}
