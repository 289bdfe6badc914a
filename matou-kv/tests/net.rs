//! The network side under adversarial clients and neighbours: the port is
//! exclusive, signals that must not kill the server do not. Each test
//! spawns the real binary (see `common`), on one worker and on several.

mod common;

use common::{temp_dir, Server};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A second server on the same port exits non-zero with `address in use`
/// naming the port, while the first keeps serving on every worker.
#[test]
fn second_server_on_the_same_port_is_refused() {
    for workers in ["1", "3"] {
        let dir = temp_dir("port-a");
        let first = Server::start(&dir, &["--workers", workers]);
        let mut c = first.client();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("first")
            .query(&mut c)
            .unwrap();

        let other_dir = temp_dir("port-b");
        let mut second = Command::new(env!("CARGO_BIN_EXE_matou-kv"))
            .args(["--port", &first.port.to_string(), "--workers", workers])
            .arg("--dir")
            .arg(&other_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run a second matou-kv");
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(st) = second.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = second.kill();
                let _ = second.wait();
                panic!("a second server on port {} kept running", first.port);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success(), "second server started: {stderr}");
        assert!(
            stderr.contains("address in use") && stderr.contains(&first.port.to_string()),
            "unclear message: {stderr}"
        );

        // Every new connection still reaches the first server.
        for _ in 0..20 {
            let mut c = first.client();
            let v: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
            assert_eq!(v, "first");
        }
    }
}

/// SIGHUP (a closed terminal, a service manager's reload) leaves the server
/// running and serving.
#[test]
fn sighup_does_not_kill_the_server() {
    for workers in ["1", "3"] {
        let dir = temp_dir("hup");
        let mut server = Server::start(&dir, &["--workers", workers]);
        let pid = server.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            let st = server.child.as_mut().unwrap().try_wait().unwrap();
            assert!(st.is_none(), "exited on SIGHUP: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut c = server.client();
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        assert!(server.terminate().success());
    }
}

/// The resident memory of a process, from /proc (bytes).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

fn mget_request(key: &str, times: usize) -> Vec<u8> {
    let mut req = format!("*{}\r\n$4\r\nMGET\r\n", times + 1).into_bytes();
    let one = format!("${}\r\n{key}\r\n", key.len());
    for _ in 0..times {
        req.extend_from_slice(one.as_bytes());
    }
    req
}

/// MGET of one 100 KiB key named 100,000 times (a 10 GB reply) disconnects
/// that client, with the reason logged, while the server keeps serving the
/// others and its memory stays far below the reply's size.
#[test]
fn huge_mget_disconnects_the_client_not_the_server() {
    for workers in ["1", "3"] {
        let dir = temp_dir("mget");
        let mut server = Server::start(&dir, &["--workers", workers]);
        let pid = server.child.as_ref().unwrap().id();
        let mut c = server.client();
        let value = vec![b'v'; 100 * 1024];
        let _: () = redis::cmd("SET")
            .arg("big")
            .arg(&value)
            .query(&mut c)
            .unwrap();

        let mut raw = server.raw();
        raw.write_all(&mget_request("big", 100_000)).unwrap();
        let mut sink = Vec::new();
        // The server closes the connection (EOF or reset), within seconds.
        let _ = raw.read_to_end(&mut sink);
        assert!(sink.len() < 1 << 30, "got {} bytes", sink.len());

        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut c).unwrap();
        assert_eq!(got, value);
        assert!(rss(pid) < 256 << 20, "RSS {} bytes", rss(pid));
        assert!(
            server.stderr().contains("client-output-buffer-limit"),
            "reason not logged: {}",
            server.stderr()
        );
    }
}

/// Eight clients pipelining GETs of a 100 KiB value without ever reading
/// the replies: the server stops reading them, its memory stays bounded,
/// and another client is answered at once meanwhile.
#[test]
fn clients_that_never_read_hold_bounded_memory() {
    for workers in ["1", "3"] {
        let dir = temp_dir("noread");
        let server = Server::start(&dir, &["--workers", workers]);
        let pid = server.child.as_ref().unwrap().id();
        let mut c = server.client();
        let _: () = redis::cmd("SET")
            .arg("big")
            .arg(vec![b'v'; 100 * 1024])
            .query(&mut c)
            .unwrap();
        let before = rss(pid);
        let gets: Vec<u8> = b"GET big\r\n".repeat(20_000);
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let mut s = server.raw();
                s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                let gets = gets.clone();
                std::thread::spawn(move || {
                    // Until the kernel buffers are full and the write times
                    // out: the server no longer reads.
                    for _ in 0..50 {
                        if s.write_all(&gets).is_err() {
                            break;
                        }
                    }
                    s
                })
            })
            .collect();
        let socks: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        let t = Instant::now();
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "PING took {:?}",
            t.elapsed()
        );
        let grown = rss(pid).saturating_sub(before);
        // 8 clients x 1 MiB rounds, plus the replies being encoded: far from
        // the gigabytes 8 x 50 x 20,000 GETs of 100 KiB would be.
        assert!(grown < 128 << 20, "RSS grew by {grown} bytes");
        drop(socks);
    }
}

/// `timeout N` closes a connection idle for N seconds (a slowloris one
/// included), and CONFIG GET answers it.
#[test]
fn idle_connections_are_closed_after_timeout() {
    let dir = temp_dir("idle");
    let server = Server::start(&dir, &["--timeout", "1"]);
    let mut c = server.client();
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("timeout")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, vec!["timeout".to_string(), "1".to_string()]);
    let mut slow = server.raw();
    slow.write_all(b"*2\r\n$3\r\nGET").unwrap();
    let t = Instant::now();
    let mut byte = [0u8; 1];
    let n = slow.read(&mut byte).unwrap_or(0);
    assert_eq!(n, 0, "the idle connection was answered instead of closed");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
}

/// Unauthenticated connections each holding an incomplete AUTH cost a few
/// KiB each (RSS measured), and one past the pre-AUTH bound is refused.
#[test]
fn memory_before_auth_is_a_few_kib_per_connection() {
    for workers in ["1", "3"] {
        let dir = temp_dir("preauth");
        let server = Server::start(&dir, &["--workers", workers, "--requirepass", "pw"]);
        let pid = server.child.as_ref().unwrap().id();
        let before = rss(pid);
        // An incomplete 10-argument AUTH of 3 KiB, within every limit.
        let mut partial = b"*10\r\n$4\r\nAUTH\r\n".to_vec();
        for _ in 0..3 {
            partial.extend_from_slice(b"$1000\r\n");
            partial.extend_from_slice(&[b'x'; 1000]);
            partial.extend_from_slice(b"\r\n");
        }
        let conns: Vec<_> = (0..400)
            .map(|_| {
                let mut s = server.raw();
                s.write_all(&partial).unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let per_conn = rss(pid).saturating_sub(before) / conns.len() as u64;
        assert!(per_conn < 24 * 1024, "{per_conn} bytes per connection");
        // More than the bound before AUTH: an error, then the close.
        let mut big = server.raw();
        let mut req = b"*10\r\n$4\r\nAUTH\r\n".to_vec();
        for _ in 0..5 {
            req.extend_from_slice(b"$1000\r\n");
            req.extend_from_slice(&[b'x'; 1000]);
            req.extend_from_slice(b"\r\n");
        }
        big.write_all(&req).unwrap();
        let mut answer = Vec::new();
        let _ = big.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"-ERR Protocol error"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
        drop(conns);
    }
}

/// Under a low descriptor limit, maxclients shrinks to fit and a client
/// past it gets `-ERR max number of clients reached` instead of silence.
#[test]
fn low_descriptor_limit_lowers_maxclients() {
    let dir = temp_dir("nofile");
    let port = common::free_port();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 64; exec {} --port {port} --workers 1 --dir {}",
            env!("CARGO_BIN_EXE_matou-kv"),
            dir.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(port, &mut child).expect("the server exited");
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut c)
        .unwrap();
    assert_eq!(v[1], "32");
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut answer = [0u8; 64];
        let n = s.read(&mut answer).expect("every connection is answered");
        let answer = &answer[..n];
        if answer.starts_with(b"-ERR max number of clients reached") {
            refused += 1;
        } else {
            assert_eq!(answer, b"+PONG\r\n");
        }
        held.push(s);
    }
    assert_eq!(refused, 40 - 31, "32 clients served, one of them `c`");
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let _ = child.kill();
    let _ = child.wait();
}

/// Wrong passwords pipelined on one connection: past the free ones each is
/// answered later, and the connection is closed after the tenth; a right
/// password on another connection is answered at once.
#[test]
fn password_guessing_is_slowed_then_disconnected() {
    let dir = temp_dir("guess");
    let server = Server::start(
        &dir,
        &["--requirepass", "right", "--auth-max-failures", "10"],
    );
    let mut raw = server.raw();
    let t = Instant::now();
    raw.write_all(&b"AUTH wrong\r\n".repeat(100_000))
        .unwrap_or(());
    let mut answers = Vec::new();
    let _ = raw.read_to_end(&mut answers);
    let text = String::from_utf8_lossy(&answers);
    assert_eq!(text.matches("WRONGPASS").count(), 10, "{text}");
    // 100 + 200 + ... + 600 ms of delays before the close.
    assert!(
        t.elapsed() >= Duration::from_millis(2000),
        "{:?}",
        t.elapsed()
    );

    let mut ok = server.raw();
    let t = Instant::now();
    ok.write_all(b"AUTH right\r\n").unwrap();
    let mut answer = [0u8; 5];
    ok.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"+OK\r\n");
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

/// The count of wrong passwords follows the client's address across
/// connections: reconnecting after ten does not buy fresh attempts, while
/// the right password is still answered at once.
#[test]
fn password_guessing_counts_per_address() {
    let dir = temp_dir("guess-addr");
    let server = Server::start(&dir, &["--requirepass", "right", "--workers", "3"]);
    let t = Instant::now();
    let mut wrong = 0;
    for _ in 0..10 {
        let mut s = server.raw();
        s.write_all(b"AUTH wrong\r\n").unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8; 256];
        let n = s.read(&mut byte).unwrap_or(0);
        answer.extend_from_slice(&byte[..n]);
        if answer.starts_with(b"-WRONGPASS") {
            wrong += 1;
        }
    }
    assert_eq!(wrong, 10);
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    // The eleventh, on a fresh connection: answered, then closed.
    let mut s = server.raw();
    s.write_all(b"AUTH wrong\r\nPING\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        !String::from_utf8_lossy(&rest).contains("NOAUTH"),
        "kept serving"
    );

    let mut ok = server.raw();
    let t = Instant::now();
    ok.write_all(b"AUTH right\r\n").unwrap();
    let mut answer = [0u8; 5];
    ok.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"+OK\r\n");
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
}

/// An AUTH pipelined before a request bigger than the pre-AUTH bound lifts
/// the bound for it: the request is served.
#[test]
fn auth_pipelined_before_a_big_request_lifts_the_bound() {
    let dir = temp_dir("auth-pipe");
    let server = Server::start(&dir, &["--requirepass", "pw"]);
    let mut s = server.raw();
    let value = vec![b'x'; 20_000];
    let mut req = b"AUTH pw\r\n".to_vec();
    req.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).as_bytes());
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).unwrap();
    let mut answer = [0u8; 10];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"+OK\r\n+OK\r\n");
}

/// A reply over the soft output limit that the client leaves unread for
/// the limit's seconds disconnects it, with the reason logged.
#[test]
fn unread_reply_over_the_soft_limit_disconnects() {
    let dir = temp_dir("soft");
    let mut server = Server::start(&dir, &["--client-output-buffer-limit", "normal 0 64kb 1"]);
    let mut c = server.client();
    let value = vec![b'v'; 32 << 20];
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query(&mut c)
        .unwrap();
    let mut lazy = server.raw();
    lazy.write_all(b"GET big\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.stderr().contains("client-output-buffer-limit soft") {
        assert!(
            Instant::now() < deadline,
            "not disconnected: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    drop(lazy);
}
