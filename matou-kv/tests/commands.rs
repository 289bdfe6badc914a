//! Every supported command, driven through the real binary with the `redis`
//! crate (a real Redis client), plus pipelining, AUTH, limits, malformed
//! input and restarts.

mod common;

use common::{q, q_err, send_and_expect, send_and_read_all, temp_dir, Server};
use redis::{cmd, Commands, Value};
use std::collections::HashSet;
use std::time::Duration;

fn start(name: &str, args: &[&str]) -> Server {
    Server::start(&temp_dir(name), args)
}

#[test]
fn strings_and_counters() {
    let s = start("strings", &[]);
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    assert_eq!(q::<String>(&mut c, &["PING", "hi"]), "hi");
    assert_eq!(q::<String>(&mut c, &["ECHO", "hello"]), "hello");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), None);
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v"]), "OK");
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
    // NX / XX / GET options.
    assert_eq!(q::<Option<String>>(&mut c, &["SET", "k", "w", "NX"]), None);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
    assert_eq!(q::<Option<String>>(&mut c, &["SET", "n", "w", "XX"]), None);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "n"]), None);
    assert_eq!(q::<String>(&mut c, &["SET", "k", "w", "XX"]), "OK");
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "x", "GET"]),
        Some("w".into())
    );
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "x");
    // EX / PX set a TTL.
    assert_eq!(q::<String>(&mut c, &["SET", "e", "1", "EX", "100"]), "OK");
    let ttl: i64 = q(&mut c, &["TTL", "e"]);
    assert!((99..=100).contains(&ttl), "{ttl}");
    assert_eq!(
        q::<String>(&mut c, &["SET", "p", "1", "PX", "100000"]),
        "OK"
    );
    let pttl: i64 = q(&mut c, &["PTTL", "p"]);
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
    // GETSET, SETNX, SETEX.
    assert_eq!(q::<String>(&mut c, &["GETSET", "k", "y"]), "x");
    assert_eq!(q::<Option<String>>(&mut c, &["GETSET", "new", "1"]), None);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "k", "z"]), 0);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "nx", "z"]), 1);
    assert_eq!(q::<String>(&mut c, &["SETEX", "sx", "50", "v"]), "OK");
    let ttl: i64 = q(&mut c, &["TTL", "sx"]);
    assert!((49..=50).contains(&ttl), "{ttl}");
    // DEL / EXISTS.
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k", "nx", "missing"]), 2);
    assert_eq!(q::<i64>(&mut c, &["DEL", "k", "nx", "missing"]), 2);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k"]), 0);
    // Counters.
    assert_eq!(q::<i64>(&mut c, &["INCR", "c"]), 1);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "c", "41"]), 42);
    assert_eq!(q::<i64>(&mut c, &["DECR", "c"]), 41);
    assert_eq!(q::<i64>(&mut c, &["DECRBY", "c", "50"]), -9);
    assert_eq!(q::<String>(&mut c, &["GET", "c"]), "-9");
    q::<String>(&mut c, &["SET", "s", "abc"]);
    assert!(q_err(&mut c, &["INCR", "s"]).contains("not an integer"));
    // APPEND / STRLEN.
    assert_eq!(q::<i64>(&mut c, &["APPEND", "s", "def"]), 6);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "fresh", "xy"]), 2);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "s"]), 6);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "missing"]), 0);
    // MSET / MGET.
    assert_eq!(q::<String>(&mut c, &["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["MGET", "a", "missing", "b"]),
        vec![Some("1".into()), None, Some("2".into())]
    );
    // Binary-safe values.
    let bin: Vec<u8> = (0..=255).collect();
    let _: () = cmd("SET").arg("bin").arg(&bin).query(&mut c).unwrap();
    let got: Vec<u8> = cmd("GET").arg("bin").query(&mut c).unwrap();
    assert_eq!(got, bin);
    // Errors.
    assert!(q_err(&mut c, &["NOSUCHCMD"])
        .to_lowercase()
        .contains("unknown"));
    assert!(q_err(&mut c, &["GET"]).contains("wrong number of arguments"));
}

#[test]
fn expiry_commands_and_active_expiry() {
    let s = start("expiry", &[]);
    let mut c = s.client();
    q::<String>(&mut c, &["SET", "k", "v"]);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    assert_eq!(q::<i64>(&mut c, &["TTL", "missing"]), -2);
    assert_eq!(q::<i64>(&mut c, &["PTTL", "missing"]), -2);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "k", "100"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "missing", "100"]), 0);
    let ttl: i64 = q(&mut c, &["TTL", "k"]);
    assert!((99..=100).contains(&ttl));
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "k", "50000"]), 1);
    let pttl: i64 = q(&mut c, &["PTTL", "k"]);
    assert!((49_000..=50_000).contains(&pttl));
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "k"]), 1);
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "k"]), 0);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    // A key really expires: lazily on access...
    q::<String>(&mut c, &["SET", "short", "v", "PX", "100"]);
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "short"]), None);
    // ... and actively, without any access (the 100 ms storage tick). The
    // TTL leaves a loaded machine time to count the 20 keys before they go.
    for i in 0..20 {
        q::<String>(&mut c, &["SET", &format!("t{i}"), "v", "PX", "1500"]);
    }
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 21);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while q::<i64>(&mut c, &["DBSIZE"]) != 1 {
        assert!(std::time::Instant::now() < deadline, "keys never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn keyspace_commands() {
    let s = start("keyspace", &[]);
    let mut c = s.client();
    for i in 0..50 {
        q::<String>(&mut c, &["SET", &format!("user:{i}"), "v"]);
    }
    q::<String>(&mut c, &["SET", "other", "v"]);
    assert_eq!(q::<String>(&mut c, &["TYPE", "other"]), "string");
    assert_eq!(q::<String>(&mut c, &["TYPE", "missing"]), "none");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 51);
    let keys: HashSet<String> = q(&mut c, &["KEYS", "user:1*"]);
    let want: HashSet<String> = ["user:1"]
        .into_iter()
        .map(String::from)
        .chain((10..20).map(|i| format!("user:{i}")))
        .collect();
    assert_eq!(keys, want);
    assert_eq!(q::<Vec<String>>(&mut c, &["KEYS", "*"]).len(), 51);
    // SCAN visits every key, with and without MATCH.
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys): (String, Vec<String>) = q(&mut c, &["SCAN", &cursor, "COUNT", "7"]);
        seen.extend(keys);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 51);
    let matched: HashSet<String> = c.scan_match("user:2*").unwrap().collect();
    assert_eq!(matched.len(), 11);
    assert_eq!(q::<String>(&mut c, &["FLUSHDB"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    q::<String>(&mut c, &["SET", "x", "1"]);
    assert_eq!(q::<String>(&mut c, &["FLUSHALL"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
}

#[test]
fn connection_commands() {
    let s = start("connection", &[]);
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["SELECT", "0"]), "OK");
    assert!(q_err(&mut c, &["SELECT", "16"]).contains("DB index is out of range"));
    assert_eq!(q::<Option<String>>(&mut c, &["CLIENT", "GETNAME"]), None);
    assert_eq!(q::<String>(&mut c, &["CLIENT", "SETNAME", "me"]), "OK");
    assert_eq!(
        q::<Option<String>>(&mut c, &["CLIENT", "GETNAME"]),
        Some("me".into())
    );
    q::<String>(&mut c, &["SET", "a", "1"]);
    q::<String>(&mut c, &["SET", "b", "1", "EX", "100"]);
    let info: String = q(&mut c, &["INFO"]);
    for section in ["# Server", "# Clients", "# Persistence", "# Keyspace"] {
        assert!(info.contains(section), "{section} missing in {info}");
    }
    assert!(info.contains("db0:keys=2,expires=1,avg_ttl=0"), "{info}");
    assert!(info.contains("connected_clients:1"), "{info}");
    let keyspace: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(keyspace.contains("db0:keys=2"));
    assert!(!keyspace.contains("# Server"));
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "save"]),
        vec!["save".to_string(), String::new()]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "appendonly"]),
        vec!["appendonly".to_string(), "yes".into()]
    );
    assert!(q::<Vec<String>>(&mut c, &["CONFIG", "GET", "nosuchparam"]).is_empty());
    let all: Vec<String> = q(&mut c, &["CONFIG", "GET", "*"]);
    assert!(all.len() >= 4 && all.chunks(2).all(|p| p.len() == 2));
    assert!(all.contains(&"appendfsync".to_string()));
    // COMMAND lists the command table (Redis 7's ten-field entries).
    let table: Vec<Value> = q(&mut c, &["COMMAND"]);
    assert!(table.len() > 30, "{}", table.len());
    assert_eq!(
        q::<Vec<Value>>(&mut c, &["COMMAND", "INFO", "get"])[0],
        table[0]
    );
    assert!(q::<Vec<Value>>(&mut c, &["COMMAND", "DOCS"]).is_empty());
    // QUIT: +OK, then the server closes.
    let mut raw = s.raw();
    let (out, closed) = send_and_read_all(&mut raw, b"QUIT\r\n");
    assert_eq!(out, b"+OK\r\n");
    assert!(closed);
    // The other client is unaffected.
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

#[test]
fn pipelining_100_commands() {
    let s = start("pipe", &[]);
    let mut c = s.client();
    let mut p = redis::pipe();
    for i in 0..50 {
        p.cmd("SET").arg(format!("k{i}")).arg(i);
    }
    for i in 0..50 {
        p.cmd("GET").arg(format!("k{i}"));
    }
    let replies: Vec<Value> = p.query(&mut c).unwrap();
    assert_eq!(replies.len(), 100);
    for (i, r) in replies[50..].iter().enumerate() {
        assert_eq!(r, &Value::BulkString(i.to_string().into_bytes()));
    }
    // A raw pipeline in one write gets its replies in order.
    let mut raw = s.raw();
    raw.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (out, closed) = send_and_read_all(&mut raw, b"PING\r\nSET x 1\r\nINCR x\r\nGET x\r\n");
    assert_eq!(out, b"+PONG\r\n+OK\r\n:2\r\n$1\r\n2\r\n");
    assert!(!closed);
}

#[test]
fn auth_and_requirepass() {
    let s = start("auth", &["--requirepass", "s3cret"]);
    let mut raw = s.raw();
    send_and_expect(
        &mut raw,
        b"GET k\r\nPING\r\n",
        b"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n",
    );
    send_and_expect(
        &mut raw,
        b"AUTH nope\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    send_and_expect(
        &mut raw,
        b"AUTH s3cret\r\nSET k v\r\nGET k\r\n",
        b"+OK\r\n+OK\r\n$1\r\nv\r\n",
    );
    // The redis crate authenticates from the URL.
    let url = format!("redis://:s3cret@127.0.0.1:{}/", s.port);
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
    assert_eq!(q::<String>(&mut c, &["AUTH", "default", "s3cret"]), "OK");
    // Without a password configured, AUTH is an error.
    let open = start("noauth", &[]);
    let mut c = open.client();
    assert!(q_err(&mut c, &["AUTH", "x"]).contains("without any password configured"));
}

#[test]
fn request_limits_close_only_that_connection() {
    let s = start(
        "limits",
        &["--max-request-bytes", "1024", "--max-args", "8"],
    );
    let mut good = s.client();
    q::<String>(&mut good, &["SET", "small", "v"]);
    // A bulk string over --max-request-bytes.
    let mut raw = s.raw();
    let big = format!(
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4096\r\n{}\r\n",
        "x".repeat(4096)
    );
    let (out, closed) = send_and_read_all(&mut raw, big.as_bytes());
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("-ERR Protocol error"), "{out}");
    assert!(closed);
    // Too many arguments.
    let mut raw = s.raw();
    let (out, closed) = send_and_read_all(&mut raw, b"*9\r\n$3\r\nDEL\r\n");
    assert!(String::from_utf8_lossy(&out).starts_with("-ERR Protocol error"));
    assert!(closed);
    assert_eq!(q::<Option<String>>(&mut good, &["GET", "k"]), None);
    assert_eq!(q::<String>(&mut good, &["GET", "small"]), "v");
}

#[test]
fn a_request_over_the_query_buffer_limit_is_refused() {
    let s = start(
        "querybuf",
        &["--max-request-bytes", "4096", "--max-query-bytes", "8192"],
    );
    let mut good = s.client();
    // Every argument is within --max-request-bytes, their sum is not.
    let arg = format!("$4000\r\n{}\r\n", "v".repeat(4000));
    let mut req = b"*9\r\n$4\r\nMSET\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(arg.as_bytes());
    }
    let mut raw = s.raw();
    let (out, closed) = send_and_read_all(&mut raw, &req);
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with("-ERR Protocol error: request larger"),
        "{out}"
    );
    assert!(closed);
    // Under the limit, the same shape of request is served.
    let mut p = redis::pipe();
    p.cmd("MSET")
        .arg("a")
        .arg("v".repeat(3000))
        .arg("b")
        .arg("w");
    p.query::<()>(&mut good).unwrap();
    assert_eq!(q::<String>(&mut good, &["GET", "b"]), "w");
}

#[test]
fn maxclients_refuses_the_extra_client() {
    let s = start("maxclients", &["--maxclients", "2"]);
    let mut a = s.client();
    let mut b = s.client();
    let mut third = s.raw();
    let (out, closed) = send_and_read_all(&mut third, b"PING\r\n");
    assert_eq!(out, b"-ERR max number of clients reached\r\n");
    assert!(closed);
    assert_eq!(q::<String>(&mut a, &["PING"]), "PONG");
    assert_eq!(q::<String>(&mut b, &["PING"]), "PONG");
    // A freed slot is reusable.
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut raw = s.raw();
        raw.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let (out, _) = send_and_read_all(&mut raw, b"PING\r\n");
        if out == b"+PONG\r\n" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn malformed_request_closes_only_that_connection() {
    let s = start("malformed", &[]);
    let mut other = s.client();
    q::<String>(&mut other, &["SET", "k", "v"]);
    let mut raw = s.raw();
    // A pipeline: a valid command, then garbage in a bulk length.
    let (out, closed) = send_and_read_all(&mut raw, b"SET a 1\r\n*2\r\n$x\r\nGET\r\n");
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("+OK\r\n-ERR Protocol error"), "{out}");
    assert!(closed);
    assert_eq!(q::<String>(&mut other, &["GET", "k"]), "v");
    assert_eq!(q::<String>(&mut other, &["GET", "a"]), "1");
}

#[test]
fn restart_keeps_data_and_shutdown_is_graceful() {
    let dir = temp_dir("restart");
    let mut s = Server::start(&dir, &["--fsync", "everysec"]);
    {
        let mut c = s.client();
        q::<String>(&mut c, &["SET", "k", "v"]);
        q::<String>(&mut c, &["SET", "ttl", "v", "EX", "1000"]);
        q::<i64>(&mut c, &["INCRBY", "n", "7"]);
        q::<String>(&mut c, &["SET", "gone", "v"]);
        q::<i64>(&mut c, &["DEL", "gone"]);
    }
    // SIGTERM: graceful, exit 0, log fsynced even under everysec.
    assert!(s.terminate().success());
    s.spawn();
    {
        let mut c = s.client();
        assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
        assert_eq!(q::<String>(&mut c, &["GET", "n"]), "7");
        assert_eq!(q::<Option<String>>(&mut c, &["GET", "gone"]), None);
        let ttl: i64 = q(&mut c, &["TTL", "ttl"]);
        assert!((990..=1000).contains(&ttl), "{ttl}");
        q::<String>(&mut c, &["SET", "k", "v2"]);
        // SHUTDOWN: the server closes the connection and exits 0.
        let _ = cmd("SHUTDOWN").query::<Value>(&mut c);
    }
    assert!(s.wait().success());
    s.spawn();
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v2");
}

#[test]
fn bad_flags_exit_2_and_help_exits_0() {
    let bin = env!("CARGO_BIN_EXE_matou-kv");
    let out = std::process::Command::new(bin)
        .arg("--nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = std::process::Command::new(bin)
        .args(["--fsync", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--port",
        "--dir",
        "--fsync",
        "--requirepass",
        "--maxclients",
        "--config",
    ] {
        assert!(help.contains(flag), "{flag} missing in --help");
    }
}

#[test]
fn a_single_worker_serves_clients_beside_the_storage_task() {
    // The default on small machines: every handler on dom0 (the flags given
    // last win over the harness's `--workers 1`).
    let s = start("oneworker", &["--workers", "0"]);
    let mut a = s.client();
    let mut b = s.client();
    let mut p = redis::pipe();
    for i in 0..20 {
        p.cmd("SET").arg(format!("k{i}")).arg(i);
    }
    p.cmd("GET").arg("k19");
    let got: Vec<Value> = p.query(&mut a).unwrap();
    assert_eq!(got.last(), Some(&Value::BulkString(b"19".to_vec())));
    assert_eq!(q::<String>(&mut b, &["GET", "k3"]), "3");
    let info: String = q(&mut b, &["INFO", "server"]);
    assert!(info.contains("workers:1"), "{info}");
}
