//! The network side under adversarial clients and neighbours: the port is
//! exclusive, signals that must not kill the server do not. Each test
//! spawns the real binary (see `common`), on one worker and on several.

mod common;

use common::{temp_dir, Server};
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
        let _: () = redis::cmd("SET").arg("k").arg("first").query(&mut c).unwrap();

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
