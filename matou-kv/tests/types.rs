//! Hashes through the `redis` crate against the real server: replies,
//! WRONGTYPE, TYPE / OBJECT ENCODING, and a restart that replays them
//! from the log.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Commands, RedisResult};
use std::collections::HashMap;

#[test]
fn hashes_work_through_the_redis_crate_and_survive_a_restart() {
    let dir = temp_dir("types-hash");
    let mut server = Server::start(&dir, &[]);
    let mut c = server.client();
    let n: i64 = cmd("HSET")
        .arg("h")
        .arg(&["a", "1", "b", "2"])
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 2);
    let added: i64 = c.hset("h", "c", "3").unwrap();
    assert_eq!(added, 1);
    let v: String = c.hget("h", "a").unwrap();
    assert_eq!(v, "1");
    let n: i64 = c.hincr("h", "a", 41).unwrap();
    assert_eq!(n, 42);
    let all: HashMap<String, String> = c.hgetall("h").unwrap();
    let want: HashMap<String, String> = [("a", "42"), ("b", "2"), ("c", "3")]
        .into_iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    assert_eq!(all, want);
    let t: String = cmd("TYPE").arg("h").query(&mut c).unwrap();
    assert_eq!(t, "hash");
    let e: String = cmd("OBJECT")
        .arg("ENCODING")
        .arg("h")
        .query(&mut c)
        .unwrap();
    assert_eq!(e, "listpack");
    let wrong: RedisResult<String> = c.get("h");
    let err = wrong.unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err:?}");
    let gone: i64 = c.hdel("h", "b").unwrap();
    assert_eq!(gone, 1);
    let _: () = c.hset("emptied", "x", "1").unwrap();
    let _: i64 = c.hdel("emptied", "x").unwrap();
    drop(c);
    server.terminate();
    server.spawn();
    let mut c = server.client();
    let all: HashMap<String, String> = c.hgetall("h").unwrap();
    let want: HashMap<String, String> = [("a", "42"), ("c", "3")]
        .into_iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    assert_eq!(all, want, "replayed from the log");
    let exists: i64 = c.exists("emptied").unwrap();
    assert_eq!(exists, 0, "an emptied hash stays deleted");
}
