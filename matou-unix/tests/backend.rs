//! The reactor backend choice: `builder_on` and `MATOU_EVENT_SOURCE` reach
//! every worker, a bad value is refused, and io_uring falls back to epoll
//! (saying why, once) when it is unavailable.
//!
//! The environment-variable cases run this test binary again as a child
//! process (the `child_*` tests, ignored in a normal run) with the variables
//! set, so no test changes the environment of the others.

mod common;

use matou_unix::net::{TcpListener, TcpStream};
use matou_unix::{reactor_backend, Backend};
use std::process::{Command, Output};

/// What the fallback line starts with (`reactor::backend::log_fallback`).
const FALLBACK: &str = "matou-unix: io_uring unavailable, using epoll:";

/// A TCP round trip on the current run, and the backends of dom0 and of
/// another worker.
async fn round_trip_and_backends() -> (Backend, Backend) {
    let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = matou_core::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut buf = [0; 4];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
    });
    let c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"ping").await.unwrap();
    let mut buf = [0; 4];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    server.await.unwrap();
    let here = reactor_backend().unwrap();
    let there = matou_core::call(|| async { reactor_backend().unwrap() })
        .unwrap()
        .await
        .unwrap();
    (here, there)
}

#[test]
fn builder_on_epoll_is_epoll_on_every_worker() {
    let _w = common::watchdog("builder_on_epoll", 60);
    let got = matou_unix::builder_on(Backend::Epoll)
        .extra_workers(1)
        .run(round_trip_and_backends());
    assert_eq!(got, (Backend::Epoll, Backend::Epoll));
}

#[test]
fn builder_on_uring_gives_every_worker_the_same_backend() {
    let _w = common::watchdog("builder_on_uring", 60);
    let (here, there) = matou_unix::builder_on(Backend::Uring)
        .extra_workers(1)
        .run(round_trip_and_backends());
    assert_eq!(here, there);
}

/// Runs the child test `name` of this binary with `env` set.
fn child(name: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env_remove("MATOU_EVENT_SOURCE")
        .env_remove("MATOU_URING_SIMULATE_ERROR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("MATOU_TEST_CHILD", "1");
    cmd.output().unwrap()
}

/// The child's report: the backends its two workers ran on.
#[test]
#[ignore = "run as a child process by the tests below"]
fn child_report_backends() {
    assert_eq!(
        std::env::var("MATOU_TEST_CHILD").as_deref(),
        Ok("1"),
        "only meaningful as a child of the backend tests"
    );
    let _w = common::watchdog("child_report_backends", 60);
    let (here, there) = matou_unix::builder()
        .extra_workers(1)
        .run(round_trip_and_backends());
    println!("BACKENDS={here:?},{there:?}");
}

fn backends_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    stdout
        .lines()
        .find_map(|l| l.split_once("BACKENDS=").map(|(_, r)| r.trim()))
        .unwrap_or_else(|| panic!("no report in:\n{stdout}"))
        .to_string()
}

#[test]
fn the_variable_forces_epoll_and_unset_means_epoll() {
    for env in [&[("MATOU_EVENT_SOURCE", "epoll")][..], &[]] {
        let out = child("child_report_backends", env);
        assert_eq!(backends_of(&out), "Epoll,Epoll", "{env:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains(FALLBACK));
    }
}

#[test]
fn the_variable_forces_uring_or_says_why_not() {
    let out = child("child_report_backends", &[("MATOU_EVENT_SOURCE", "uring")]);
    let got = backends_of(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Either io_uring runs on both workers, or both fell back and said why.
    if stderr.contains(FALLBACK) {
        assert_eq!(got, "Epoll,Epoll");
    } else {
        assert_eq!(got, "Uring,Uring");
    }
}

#[test]
fn unavailable_io_uring_falls_back_to_epoll_and_logs_the_reason_once() {
    for (errno, reason) in [
        ("ENOSYS", "the kernel has no io_uring"),
        ("EPERM", "io_uring is not permitted"),
        ("ENOMEM", "RLIMIT_MEMLOCK"),
    ] {
        let out = child(
            "child_report_backends",
            &[
                ("MATOU_EVENT_SOURCE", "uring"),
                ("MATOU_URING_SIMULATE_ERROR", errno),
            ],
        );
        // Both workers run (on epoll) and serve the round trip...
        assert_eq!(backends_of(&out), "Epoll,Epoll", "{errno}");
        // ...and the reason is logged once, though two workers fell back.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(FALLBACK)).collect();
        assert_eq!(lines.len(), 1, "{errno}: {stderr}");
        assert!(lines[0].contains(reason), "{errno}: {}", lines[0]);
    }
}

#[test]
fn a_misspelt_backend_is_refused() {
    let out = child("child_report_backends", &[("MATOU_EVENT_SOURCE", "urnig")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MATOU_EVENT_SOURCE=\"urnig\": expected `uring` or `epoll`"),
        "{stderr}"
    );
}
