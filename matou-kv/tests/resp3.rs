//! RESP3 against the real server: `HELLO 3` switches the connection, the
//! replies take Redis 7's RESP3 shapes (exact bytes on a raw socket), and
//! the `redis` crate in RESP3 mode works with its defaults, transactions
//! and databases included.

mod common;

use common::{temp_dir, Server};
use redis::{cmd, Value};
use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends `req` and reads exactly `want.len()` bytes.
fn exchange(s: &mut TcpStream, req: &str, want: &str) {
    s.write_all(req.as_bytes()).unwrap();
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want, "reply to {req:?}");
}

#[test]
fn hello_switches_the_protocol_and_the_reply_shapes() {
    let dir = temp_dir("resp3-raw");
    let server = Server::start(&dir, &[]);
    let mut s = server.raw();
    exchange(&mut s, "GET nokey\r\n", "$-1\r\n");
    exchange(
        &mut s,
        "HELLO 3\r\n",
        "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n\
         $5\r\nproto\r\n:3\r\n$2\r\nid\r\n",
    );
    // The rest of the map: the id, mode, role, modules.
    let mut rest = Vec::new();
    while !rest.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        rest.push(b[0]);
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.contains("$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"));
    exchange(&mut s, "GET nokey\r\n", "_\r\n");
    exchange(
        &mut s,
        "CONFIG GET appendonly\r\n",
        "%1\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n",
    );
    s.write_all(b"INFO keyspace\r\n").unwrap();
    let mut head = [0u8; 1];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[0], b'=', "INFO is a verbatim string in RESP3");
    let mut len = Vec::new();
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        if b[0] == b'\n' {
            break;
        }
        len.push(b[0]);
    }
    let n: usize = std::str::from_utf8(&len).unwrap().trim().parse().unwrap();
    let mut body = vec![0; n + 2];
    s.read_exact(&mut body).unwrap();
    assert!(body.starts_with(b"txt:# Keyspace"), "{body:?}");
    // A watched key changed: EXEC's null is RESP3's too.
    let mut other = server.raw();
    exchange(&mut s, "WATCH k\r\n", "+OK\r\n");
    exchange(&mut other, "SET k 1\r\n", "+OK\r\n");
    exchange(
        &mut s,
        "MULTI\r\nSET k 2\r\nEXEC\r\n",
        "+OK\r\n+QUEUED\r\n_\r\n",
    );
    // Unknown versions are refused and change nothing; HELLO 2 goes back.
    exchange(
        &mut s,
        "HELLO 4\r\n",
        "-NOPROTO unsupported protocol version\r\n",
    );
    exchange(&mut s, "GET nokey\r\n", "_\r\n");
    exchange(&mut s, "HELLO 2\r\n", "*14\r\n");
    let mut rest = Vec::new();
    while !rest.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        rest.push(b[0]);
    }
    exchange(&mut s, "GET nokey\r\n", "$-1\r\n");
    exchange(&mut other, "GET nokey\r\n", "$-1\r\n");
    // In one pipeline: the replies before HELLO 3 stay RESP2.
    exchange(&mut other, "GET nokey\r\nHELLO 3\r\n", "$-1\r\n%7\r\n");
    let mut rest = Vec::new();
    while !rest.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let mut b = [0u8; 1];
        other.read_exact(&mut b).unwrap();
        rest.push(b[0]);
    }
    exchange(&mut other, "GET nokey\r\n", "_\r\n");
}

#[test]
fn the_redis_crate_in_resp3_mode() {
    let dir = temp_dir("resp3-crate");
    let server = Server::start(&dir, &[]);
    let url = format!("{}1?protocol=resp3", server.url());
    // The crate sends HELLO 3 on connect (and fails on NOPROTO), then
    // SELECT 1.
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    let hello: Value = cmd("HELLO").arg(3).query(&mut c).unwrap();
    let Value::Map(pairs) = hello else {
        panic!("HELLO 3: {hello:?}")
    };
    assert!(pairs.contains(&(Value::BulkString(b"proto".to_vec()), Value::Int(3))));
    let v: Value = cmd("GET").arg("missing").query(&mut c).unwrap();
    assert_eq!(v, Value::Nil);
    let v: Value = cmd("CONFIG")
        .arg("GET")
        .arg("databases")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        v,
        Value::Map(vec![(
            Value::BulkString(b"databases".to_vec()),
            Value::BulkString(b"16".to_vec())
        )])
    );
    let v: Value = cmd("INFO").arg("server").query(&mut c).unwrap();
    assert!(matches!(v, Value::VerbatimString { .. }), "{v:?}");
    let (n, got): (i64, String) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("k")
        .arg("v")
        .ignore()
        .cmd("INCR")
        .arg("n")
        .cmd("GET")
        .arg("k")
        .query(&mut c)
        .unwrap();
    assert_eq!((n, got.as_str()), (1, "v"));
    // In database 1, not 0.
    let mut d0 = server.client();
    let v: Option<String> = cmd("GET").arg("k").query(&mut d0).unwrap();
    assert_eq!(v, None);
}

/// Replies are produced in rounds of about 1 MiB: the requests past a
/// round are answered in a later one, still in the protocol each was
/// parsed under (RESP3, then RESP2 after a `HELLO 2` in the same batch).
#[test]
fn replies_deferred_to_a_later_round_keep_their_protocol() {
    let dir = temp_dir("resp3-rounds");
    let server = Server::start(&dir, &[]);
    let mut s = server.raw();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let big = "v".repeat(700 * 1024);
    let set = format!(
        "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n{big}\r\n",
        big.len()
    );
    exchange(&mut s, &set, "+OK\r\n");
    s.write_all(b"HELLO 3\r\n").unwrap();
    let mut hello = Vec::new();
    while !hello.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        hello.push(b[0]);
    }
    // Two big GETs fill the first round; the rest is deferred.
    s.write_all(b"GET big\r\nGET big\r\nGET nokey\r\nHELLO 2\r\nGET nokey\r\n")
        .unwrap();
    let one = format!("${}\r\n{big}\r\n", big.len());
    let mut got = vec![0; 2 * one.len() + 3];
    s.read_exact(&mut got).unwrap();
    assert!(got.starts_with(one.as_bytes()) && got[one.len()..].starts_with(one.as_bytes()));
    assert_eq!(&got[2 * one.len()..], b"_\r\n", "RESP3 nil after the cut");
    let mut rest = Vec::new();
    while !rest.ends_with(b"*0\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        rest.push(b[0]);
    }
    assert!(rest.starts_with(b"*14\r\n"), "HELLO 2's reply in RESP2");
    let mut last = [0u8; 5];
    s.read_exact(&mut last).unwrap();
    assert_eq!(&last, b"$-1\r\n", "RESP2 nil after HELLO 2");
}
