//! The real `matou-web` binary under SIGTERM: a slow request in flight
//! completes, new connections are refused, and the process exits 0; with a
//! short grace period the slow request is cut off and the exit is still
//! prompt and clean. Requests are made with ureq.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

struct Web {
    child: Child,
    addr: SocketAddr,
}

impl Web {
    fn start(extra: &[&str]) -> Web {
        let mut child = Command::new(env!("CARGO_BIN_EXE_matou-web"))
            .args(["--addr", "127.0.0.1:0", "--workers", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Web { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; gives its status and stderr.
    fn wait(mut self, limit: Duration) -> (ExitStatus, String) {
        let until = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < until,
                "matou-web still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    }

    /// Polls `/health` until `n` requests are in flight (itself included).
    fn wait_in_flight(&self, n: u64) {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let health: serde_json::Value = ureq::get(&self.url("/health"))
                .call()
                .unwrap()
                .into_json()
                .unwrap();
            if health["in_flight"].as_u64().unwrap() >= n {
                return;
            }
            assert!(Instant::now() < until, "never {n} in flight: {health}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn refused_within(addr: SocketAddr, limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => {
                assert!(Instant::now() < until, "{addr} still accepts after SIGTERM");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_refuses_new_ones_and_exits_0() {
    let web = Web::start(&["--grace-ms", "10000"]);
    let slow_url = web.url("/delay/1000");
    let slow = std::thread::spawn(move || {
        let started = Instant::now();
        let body: serde_json::Value = ureq::get(&slow_url).call().unwrap().into_json().unwrap();
        (body, started.elapsed())
    });
    web.wait_in_flight(2);
    web.sigterm();
    refused_within(web.addr, Duration::from_secs(5));

    let (body, took) = slow.join().unwrap();
    assert_eq!(body, serde_json::json!({"delayed_ms": 1000}));
    assert!(took >= Duration::from_millis(1000));
    let (status, stderr) = web.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(stderr.contains("0 cancelled"), "{stderr}");
}

#[test]
fn past_the_grace_period_the_slow_request_is_cancelled_and_the_exit_is_clean() {
    let web = Web::start(&["--grace-ms", "300"]);
    let slow_url = web.url("/delay/20000");
    let slow = std::thread::spawn(move || {
        ureq::get(&slow_url)
            .call()
            .map(|r| r.status())
            .map_err(Box::new)
    });
    web.wait_in_flight(2);
    let signalled = Instant::now();
    web.sigterm();
    let (status, stderr) = web.wait(Duration::from_secs(10));
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("1 cancelled"), "{stderr}");
    // The cut-off request gets no response: its connection was closed.
    match slow.join().unwrap().map_err(|e| *e) {
        Err(ureq::Error::Transport(_)) => {}
        other => panic!("expected a closed connection, got {other:?}"),
    }
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_matou-web"))
        .args(["--body-limit", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--body-limit"));
}
