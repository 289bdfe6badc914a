//! Lazy expiry against the real server, with the `redis` crate as the
//! peer: with active expiry off (DEBUG SET-ACTIVE-EXPIRE 0), expired keys
//! stay counted by DBSIZE until a read meets them, which removes them as
//! Redis's `lookupKeyRead` does, counted in `expired_keys`.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Connection};
use std::time::Duration;

fn dbsize(c: &mut Connection) -> i64 {
    cmd("DBSIZE").query(c).unwrap()
}

fn expired_keys(c: &mut Connection) -> u64 {
    let info: String = cmd("INFO").arg("stats").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("expired_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("expired_keys in INFO stats")
}

#[test]
fn a_read_removes_the_expired_keys_it_meets() {
    let dir = temp_dir("lazy-expiry");
    let server = Server::start(&dir, &["--enable-debug-command", "yes"]);
    let mut c = server.client();
    let _: () = cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg("0")
        .query(&mut c)
        .unwrap();
    for k in ["a", "b", "c"] {
        let _: () = cmd("PSETEX").arg(k).arg(50).arg("v").query(&mut c).unwrap();
    }
    let _: () = cmd("SET").arg("live").arg("v").query(&mut c).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(dbsize(&mut c), 4, "active expiry is off: still there");
    let before = expired_keys(&mut c);
    let got: Vec<Option<String>> = cmd("MGET")
        .arg("a")
        .arg("b")
        .arg("live")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, [None, None, Some("v".to_string())]);
    assert_eq!(
        dbsize(&mut c),
        2,
        "the two read are gone, c is not read yet"
    );
    assert_eq!(expired_keys(&mut c), before + 2);
    let _: Option<String> = cmd("GET").arg("c").query(&mut c).unwrap();
    assert_eq!(dbsize(&mut c), 1);
    assert_eq!(expired_keys(&mut c), before + 3);
}
