//! Cancellation frees what a blocked task held: its descriptors (counted in
//! /proc/self/fd) and its registration and waits in the reactor
//! (`reactor_stats`). The tests count process-wide descriptors, so they run
//! one at a time.

mod common;

use common::{loopback4, run};
use matou_unix::net::{TcpListener, TcpStream};
use matou_unix::reactor_stats;
use matou_unix::time::{sleep, timeout};
use std::sync::Mutex;
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Lets the reactor's next `select` process the cancellations.
async fn settle() {
    sleep(Duration::from_millis(5)).await;
}

fn clean(what: &str) {
    let stats = reactor_stats().unwrap();
    assert_eq!(stats.registered, 0, "{what}: registrations left: {stats:?}");
    assert_eq!(stats.waiting, 0, "{what}: waits left: {stats:?}");
    assert_eq!(stats.timers, 0, "{what}: timers left: {stats:?}");
}

#[test]
fn cancelling_blocked_tasks_frees_their_fds_and_registrations() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before_run = open_fds();
    run("cancel_frees", 0, async {
        let before = open_fds();

        // Blocked in accept.
        let p = matou_core::spawn(async {
            let l = TcpListener::bind(loopback4()).unwrap();
            l.accept().await.map(|_| ())
        });
        sleep(Duration::from_millis(20)).await;
        assert_eq!(
            reactor_stats().unwrap().registered,
            1,
            "the listener is registered"
        );
        assert!(open_fds() > before);
        p.cancel().await.unwrap();
        settle().await;
        clean("accept");
        assert_eq!(open_fds(), before, "accept");

        // Blocked in read.
        let std_listener = std::net::TcpListener::bind(loopback4()).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let p = matou_core::spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            let mut buf = [0u8; 8];
            s.read(&mut buf).await
        });
        // Let the task connect and block in read before the (blocking) std
        // accept, which finds the connection in its backlog.
        sleep(Duration::from_millis(20)).await;
        let (peer, _) = std_listener.accept().unwrap();
        assert_eq!(reactor_stats().unwrap().waiting, 1, "the reader waits");
        p.cancel().await.unwrap();
        settle().await;
        clean("read");
        drop((peer, std_listener));
        assert_eq!(open_fds(), before, "read");

        // Blocked in sleep.
        let p = matou_core::spawn(sleep(Duration::from_secs(60)));
        sleep(Duration::from_millis(20)).await;
        assert_eq!(reactor_stats().unwrap().timers, 1);
        p.cancel().await.unwrap();
        settle().await;
        clean("sleep");
        assert_eq!(open_fds(), before, "sleep");
    });
    assert_eq!(
        open_fds(),
        before_run,
        "the run released its epoll and eventfd"
    );
}

#[test]
fn cancelling_or_timing_out_a_connect_closes_its_socket() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // A listener whose accept queue is full: connects to it hang.
    let l = std::net::TcpListener::bind(loopback4()).unwrap();
    let addr = l.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..300 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    run("cancel_connect", 0, async move {
        let before = open_fds();
        let p = matou_core::spawn(async move { TcpStream::connect(addr).await.map(|_| ()) });
        sleep(Duration::from_millis(50)).await;
        assert!(!p.is_finished(), "the connect hangs");
        assert_eq!(reactor_stats().unwrap().waiting, 1);
        p.cancel().await.unwrap();
        settle().await;
        clean("cancelled connect");
        assert_eq!(open_fds(), before, "cancelled connect");

        let r = timeout(Duration::from_millis(50), TcpStream::connect(addr)).await;
        assert!(r.is_err());
        settle().await;
        clean("timed-out connect");
        assert_eq!(open_fds(), before, "timed-out connect");
    });
    drop((l, fillers));
}

#[test]
fn a_socket_dropped_on_another_worker_is_forgotten_by_its_first() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("moved_forget", 1, async {
        let before = open_fds();
        let listener = TcpListener::bind(loopback4()).unwrap();
        // Register it on dom0 with an accept that times out.
        assert!(timeout(Duration::from_millis(10), listener.accept())
            .await
            .is_err());
        settle().await;
        assert_eq!(reactor_stats().unwrap().registered, 1);
        // Move it to worker 1, wait there, drop it there.
        let p = matou_core::call(move || async move {
            assert!(timeout(Duration::from_millis(10), listener.accept())
                .await
                .is_err());
            let here = reactor_stats().unwrap().registered;
            drop(listener);
            (here, reactor_stats().unwrap().registered)
        })
        .unwrap();
        let (while_held, after_drop) = p.await.unwrap();
        assert_eq!(
            (while_held, after_drop),
            (1, 0),
            "worker 1 registered it, then freed it"
        );
        settle().await;
        assert_eq!(
            reactor_stats().unwrap().registered,
            0,
            "dom0 forgot it at its next select"
        );
        assert_eq!(open_fds(), before);
    });
}
