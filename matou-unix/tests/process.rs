//! Child processes against coreutils (`cat`, `sh -c`) as the peer. The tests
//! count process-wide descriptors and zombies, so they run one at a time.

mod common;

use common::{run, WORKERS};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use matou_unix::process::Command;
use matou_unix::time::{sleep, timeout};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Whether `pid` still exists (a zombie does: /proc/<pid> stays until reaped).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn gone(pid: u32) -> bool {
    let t0 = Instant::now();
    while exists(pid) {
        if t0.elapsed() > Duration::from_secs(5) {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
    true
}

#[test]
fn cat_echoes_its_piped_stdin() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for extra in WORKERS {
        run("cat", extra, async {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = child.stdout.take().unwrap();
            let data = common::pattern(1 << 20);
            let d2 = data.clone();
            // Writing 1 MiB needs a reader at the same time (pipes hold 64 KiB).
            let writer = matou_core::spawn(async move {
                stdin.write_all(&d2).await.unwrap();
                drop(stdin);
            });
            let mut got = Vec::new();
            stdout.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            assert!(got == data, "cat returned {} bytes", got.len());
            assert!(child.wait().await.unwrap().success());
        });
    }
}

#[test]
fn output_collects_stdout_stderr_and_the_exit_code() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for extra in WORKERS {
        run("sh_output", extra, async {
            let out = Command::new("sh")
                .arg("-c")
                .arg("echo out; echo err >&2; echo $GREETING; pwd; exit 3")
                .env("GREETING", "hi")
                .current_dir("/tmp")
                .output()
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(3));
            assert_eq!(out.stdout, b"out\nhi\n/tmp\n");
            assert_eq!(out.stderr, b"err\n");
            // Missing program: a clear error.
            let e = Command::new("/nonexistent/program").spawn().unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            // stdout null: nothing collected... and inherit keeps ours.
            let st = Command::new("true")
                .stdout(Stdio::null())
                .status()
                .await
                .unwrap();
            assert!(st.success());
        });
    }
}

#[test]
fn a_child_killed_by_a_signal_reports_it() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("killed", 0, async {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        child.kill().await.unwrap();
        let st = child.wait().await.unwrap();
        assert_eq!(st.signal(), Some(9), "{st:?}");
        // Killed by someone else (SIGTERM from sh itself).
        let st = Command::new("sh")
            .arg("-c")
            .arg("kill -TERM $$")
            .status()
            .await
            .unwrap();
        assert_eq!(st.signal(), Some(15), "{st:?}");
    });
}

#[test]
fn wait_does_not_block_the_worker() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("wait_nonblocking", 0, async {
        let mut child = Command::new("sleep").arg("0.3").spawn().unwrap();
        let waiter = matou_core::spawn(async move { child.wait().await.unwrap() });
        let t0 = Instant::now();
        sleep(Duration::from_millis(50)).await;
        assert!(
            t0.elapsed() < Duration::from_millis(150),
            "{:?}",
            t0.elapsed()
        );
        assert!(waiter.await.unwrap().success());
        assert!(t0.elapsed() >= Duration::from_millis(250));
    });
}

#[test]
fn dropping_with_kill_on_drop_leaves_no_zombie_and_no_fd() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for extra in WORKERS {
        run("kill_on_drop", extra, async {
            let before = open_fds();
            let child = Command::new("sleep")
                .arg("30")
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pid = child.id();
            assert!(exists(pid));
            drop(child);
            assert!(
                gone(pid).await,
                "child {pid} still in /proc (zombie or alive)"
            );
            assert_eq!(open_fds(), before);
        });
    }
}

#[test]
fn a_dropped_unwaited_child_keeps_running_then_is_reaped() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("drop_no_kill", 0, async {
        let child = Command::new("sleep").arg("0.2").spawn().unwrap();
        let pid = child.id();
        drop(child);
        sleep(Duration::from_millis(50)).await;
        assert!(exists(pid), "not killed without kill_on_drop");
        assert!(gone(pid).await, "child {pid} left as a zombie");
    });
}

#[test]
fn cancelling_a_wait_and_a_pipe_read_leaves_no_fd() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for extra in WORKERS {
        run("cancel_wait", extra, async {
            let before = open_fds();
            let mut child = Command::new("sleep")
                .arg("30")
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let pid = child.id();
            assert!(timeout(Duration::from_millis(30), child.wait())
                .await
                .is_err());
            let mut out = child.stdout.take().unwrap();
            let mut buf = [0u8; 8];
            assert!(timeout(Duration::from_millis(30), out.read(&mut buf))
                .await
                .is_err());
            // The status is still there to collect after a cancelled wait.
            child.start_kill().unwrap();
            assert_eq!(child.wait().await.unwrap().signal(), Some(9));
            drop((child, out));
            sleep(Duration::from_millis(5)).await;
            assert_eq!(open_fds(), before);
            assert!(gone(pid).await);
            let stats = matou_unix::reactor_stats().unwrap();
            assert_eq!((stats.registered, stats.waiting), (0, 0), "{stats:?}");
        });
    }
}
