//! A background log rewrite while the server has run out of file
//! descriptors (started under `ulimit -n` with descriptors it inherits
//! open, connections holding the rest):
//! the rewrite fails, is logged and retried with backoff, the server keeps
//! serving from the current log, and the rewrite completes once
//! descriptors are free again. One descriptor is left free on purpose:
//! enough for the rewrite's temporary file, not for the log handle the
//! switch needs, the case that used to exit the server (`FATAL: cannot
//! rewrite the append-only log: Too many open files`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Descriptors the server inherits open (see `Limited::start`).
const INHERITED: u32 = 24;

/// The server under a low descriptor limit, killed on drop.
struct Limited {
    child: Child,
    port: u16,
    stderr: PathBuf,
}

impl Limited {
    fn start(dir: &std::path::Path, nofile: u32, workers: &str) -> Limited {
        let port = common::free_port();
        let stderr = dir.with_extension("stderr");
        // The server keeps `RESERVED_FDS` (32) descriptors out of
        // `maxclients`, so clients alone can no longer exhaust them: it
        // inherits INHERITED open descriptors it does not know of, which
        // leave the clients too few to reach `maxclients`.
        let script = format!(
            "ulimit -n {nofile} && for i in $(seq 10 $((9 + {INHERITED}))); do \
             eval \"exec $i</dev/null\"; done && \
             exec \"$0\" --port {port} --dir \"$1\" --workers {workers}"
        );
        let child = Command::new("bash")
            .args(["-c", &script, env!("CARGO_BIN_EXE_matou-kv")])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        let mut s = Limited {
            child,
            port,
            stderr,
        };
        if let Err(st) = common::wait_listening(port, &mut s.child) {
            panic!("exited at start: {st}: {}", s.log());
        }
        s
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_log(&mut self, what: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(what) {
            assert!(self.alive(), "the server died: {}", self.log());
            assert!(
                Instant::now() < deadline,
                "no {what:?} in the log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// A raw connection; whether the server answered its PING within `wait`.
fn ping(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(s.read_exact(&mut buf), Ok(()) if &buf == b"+PONG\r\n")
}

fn fd_exhaustion(workers: &str) {
    let dir = common::temp_dir("rewrite-fds");
    let mut server = Limited::start(&dir, 48, workers);
    let url = format!("redis://127.0.0.1:{}/", server.port);
    let mut c = redis::Client::open(url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap();

    // Take every descriptor: connect until one is left unaccepted.
    let mut held = Vec::new();
    let mut pending = loop {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        if !ping(&mut s, Duration::from_millis(500)) {
            break s;
        }
        held.push(s);
        assert!(held.len() < 100, "the descriptor limit did not apply");
    };
    // Free one, which the pending connection takes; then close that one:
    // exactly one descriptor free, and nobody waiting for it.
    held.pop();
    assert!(
        ping(&mut pending, Duration::from_secs(5)),
        "a freed descriptor did not serve the waiting connection"
    );
    drop(pending);
    std::thread::sleep(Duration::from_millis(200));

    // Grow the log past the rewrite threshold (1 MiB, doubled).
    let big = "x".repeat(100 * 1024);
    for i in 0..14 {
        let () = redis::cmd("SET")
            .arg(format!("k{}", i % 3))
            .arg(format!("{i}{big}"))
            .query(&mut c)
            .unwrap();
    }
    server.wait_log("log rewrite failed", Duration::from_secs(10));
    assert!(
        server.log().contains("Too many open files"),
        "{}",
        server.log()
    );
    // Still serving, from the current log.
    let v: String = redis::cmd("GET").arg("k1").query(&mut c).unwrap();
    assert_eq!(v, format!("13{big}"));
    let () = redis::cmd("SET")
        .arg("during")
        .arg("1")
        .query(&mut c)
        .unwrap();

    // Descriptors are back: the retry completes.
    drop(held);
    server.wait_log("log rewritten in the background", Duration::from_secs(20));
    assert!(!server.log().contains("FATAL"), "{}", server.log());
    let info: redis::InfoDict = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert_eq!(info.get::<u64>("aof_rewrites"), Some(1), "{info:?}");
    for (k, want) in [("k0", format!("12{big}")), ("k2", format!("11{big}"))] {
        let v: String = redis::cmd("GET").arg(k).query(&mut c).unwrap();
        assert_eq!(v, want);
    }
    let () = redis::cmd("SET")
        .arg("after")
        .arg("2")
        .query(&mut c)
        .unwrap();
    drop(c);
    drop(server);

    // The rewritten log holds everything.
    let mut again = common::Server::start(&dir, &[]);
    let mut c = again.client();
    let v: String = redis::cmd("GET").arg("k1").query(&mut c).unwrap();
    assert_eq!(v, format!("13{big}"));
    let n: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 5);
    drop(c);
    again.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rewrite_under_fd_exhaustion_one_worker() {
    fd_exhaustion("0");
}

#[test]
fn rewrite_under_fd_exhaustion_several_workers() {
    fd_exhaustion("2");
}
