//! A future moved to another worker mid-wait (polled once on dom0, then
//! handed to `call`) completes, or is cancelled, cleanly there: the wait on
//! dom0 is forgotten (its reactor ends with no registration, wait or timer
//! left), the worker it moved to re-registers, and no descriptor leaks. And a
//! socket waited on from two workers at once wakes both waiters.
//!
//! With one extra worker `call` always lands on worker 1, so both reactors
//! can be inspected. The tests count process-wide descriptors, so they run
//! one at a time.

mod common;

use common::run;
use futures_lite::AsyncReadExt;
use matou_unix::net::UnixStream;
use matou_unix::reactor_stats;
use matou_unix::time::{sleep, timeout};
use matou_unix::ReactorStats;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Polls `f` once from the calling task; it must be waiting.
async fn poll_pending_once<F: Future + Unpin>(f: &mut F) {
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx).is_pending()));
    assert!(first.await, "the future was expected to wait");
}

/// The reactor statistics of this worker and of worker 1, once both had a
/// `select` to process what was released or cancelled.
async fn stats_here_and_on_worker_1() -> (ReactorStats, ReactorStats) {
    let there = matou_core::call(|| async {
        sleep(Duration::from_millis(10)).await;
        reactor_stats().unwrap()
    })
    .unwrap()
    .await
    .unwrap();
    sleep(Duration::from_millis(10)).await;
    (reactor_stats().unwrap(), there)
}

const CLEAN: ReactorStats = ReactorStats {
    registered: 0,
    waiting: 0,
    timers: 0,
};

#[test]
fn a_read_moved_to_another_worker_mid_wait_completes_there() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("moved_read", 1, async {
        let (ours, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let ours = UnixStream::from_std(ours).unwrap();
        let mut read = Box::pin(async move {
            let mut buf = [0u8; 5];
            ours.read_exact(&mut buf).await.unwrap();
            (matou_core::current_worker().index(), buf)
        });
        poll_pending_once(&mut read).await;
        assert_eq!(reactor_stats().unwrap().waiting, 1, "parked on dom0");
        let moved = matou_core::call(move || read).unwrap();
        sleep(Duration::from_millis(10)).await; // it waits on worker 1 now
        peer.write_all(b"hello").unwrap();
        let (worker, buf) = timeout(Duration::from_secs(10), moved)
            .await
            .expect("the moved read never completed")
            .unwrap();
        assert_eq!((worker, &buf), (1, b"hello"));
        assert_eq!(stats_here_and_on_worker_1().await, (CLEAN, CLEAN));
    });
}

#[test]
fn a_moved_read_cancelled_on_its_new_worker_leaves_nothing_behind() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = open_fds();
    run("moved_cancel", 1, async {
        let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let ours = UnixStream::from_std(ours).unwrap();
        let mut read = Box::pin(async move {
            let mut buf = [0u8; 1];
            ours.read_exact(&mut buf).await
        });
        poll_pending_once(&mut read).await;
        let moved = matou_core::call(move || read).unwrap();
        sleep(Duration::from_millis(10)).await;
        moved.cancel().await.unwrap();
        drop(peer);
        assert_eq!(stats_here_and_on_worker_1().await, (CLEAN, CLEAN));
    });
    assert_eq!(open_fds(), before, "descriptors leaked");
}

#[test]
fn a_sleep_moved_to_another_worker_keeps_its_deadline() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("moved_sleep", 1, async {
        let start = Instant::now();
        let mut nap = Box::pin(sleep(Duration::from_millis(60)));
        poll_pending_once(&mut nap).await;
        assert_eq!(reactor_stats().unwrap().timers, 1, "filed on dom0");
        let moved = matou_core::call(move || async move {
            nap.await;
            Instant::now()
        })
        .unwrap();
        let woke = moved.await.unwrap();
        let slept = woke - start;
        assert!(slept >= Duration::from_millis(60), "woke early: {slept:?}");
        assert!(slept < Duration::from_secs(5), "woke late: {slept:?}");
        assert_eq!(stats_here_and_on_worker_1().await, (CLEAN, CLEAN));
    });
}

#[test]
fn a_timeout_moved_to_another_worker_still_fires() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("moved_timeout", 1, async {
        let start = Instant::now();
        let mut limited = Box::pin(timeout(
            Duration::from_millis(40),
            std::future::pending::<()>(),
        ));
        poll_pending_once(&mut limited).await;
        let moved = matou_core::call(move || limited).unwrap();
        assert!(moved.await.unwrap().is_err(), "the timeout did not fire");
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert_eq!(stats_here_and_on_worker_1().await, (CLEAN, CLEAN));
    });
}

/// A socket shared by two workers: a wait on worker 1 moves the registration
/// away from dom0, where a reader waits; dom0 must wake that reader (not
/// forget it) so it registers back and sees the data.
fn a_reader_survives_its_socket_being_waited_on_elsewhere(poll_based: bool) {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("shared_socket", 1, async move {
        let (ours, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let ours = Arc::new(UnixStream::from_std(ours).unwrap());
        let reader = {
            let ours = ours.clone();
            matou_core::spawn(async move {
                let mut buf = [0u8; 3];
                if poll_based {
                    // `AsyncRead::poll_read`: its wait is the reactor's own.
                    AsyncReadExt::read_exact(&mut &*ours, &mut buf)
                        .await
                        .unwrap();
                } else {
                    ours.read_exact(&mut buf).await.unwrap();
                }
                buf
            })
        };
        sleep(Duration::from_millis(10)).await; // the reader waits on dom0
        let elsewhere = ours.clone();
        matou_core::call(move || async move { elsewhere.writable().await.unwrap() })
            .unwrap()
            .await
            .unwrap();
        sleep(Duration::from_millis(10)).await;
        peer.write_all(b"abc").unwrap();
        let got = timeout(Duration::from_secs(10), reader)
            .await
            .expect("the reader on dom0 was never woken")
            .unwrap();
        assert_eq!(&got, b"abc");
    });
}

#[test]
fn a_reader_survives_its_socket_being_waited_on_elsewhere_async() {
    a_reader_survives_its_socket_being_waited_on_elsewhere(false);
}

#[test]
fn a_reader_survives_its_socket_being_waited_on_elsewhere_poll_based() {
    a_reader_survives_its_socket_being_waited_on_elsewhere(true);
}

/// As above, but with nothing else to wake dom0: it sleeps in the reactor
/// while worker 1 takes the socket's registration, and must be interrupted
/// to wake its reader (no timer or message would, before the 10 s limit).
#[test]
fn a_reader_on_a_sleeping_worker_is_woken_when_its_socket_is_taken() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("taken_while_asleep", 1, async {
        let (ours, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let ours = Arc::new(UnixStream::from_std(ours).unwrap());
        let reader = {
            let ours = ours.clone();
            matou_core::spawn(async move {
                let mut buf = [0u8; 3];
                ours.read_exact(&mut buf).await.unwrap();
                buf
            })
        };
        let elsewhere = ours.clone();
        let taker = matou_core::call(move || async move {
            sleep(Duration::from_millis(50)).await; // dom0 is asleep by now
            elsewhere.writable().await.unwrap();
            peer.write_all(b"xyz").unwrap();
        })
        .unwrap();
        let started = Instant::now();
        let got = timeout(Duration::from_secs(10), reader)
            .await
            .expect("the reader on dom0 was never woken")
            .unwrap();
        assert_eq!(&got, b"xyz");
        assert!(started.elapsed() < Duration::from_secs(5));
        taker.await.unwrap();
    });
}

#[test]
fn an_accept_and_a_udp_recv_moved_mid_wait_complete_on_their_new_worker() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("moved_accept_recv", 1, async {
        let listener = matou_unix::net::TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accept = Box::pin(async move {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
            matou_core::current_worker().index()
        });
        poll_pending_once(&mut accept).await;
        let udp = matou_unix::net::UdpSocket::bind(([127, 0, 0, 1], 0)).unwrap();
        let udp_addr = udp.local_addr().unwrap();
        let mut recv = Box::pin(async move {
            let mut buf = [0u8; 8];
            let (n, _) = udp.recv_from(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        poll_pending_once(&mut recv).await;
        assert_eq!(reactor_stats().unwrap().waiting, 2, "both parked on dom0");
        let accepted = matou_core::call(move || accept).unwrap();
        let received = matou_core::call(move || recv).unwrap();
        sleep(Duration::from_millis(10)).await;
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let sender = std::net::UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        sender.send_to(b"dgram", udp_addr).unwrap();
        let limit = Duration::from_secs(10);
        let on = timeout(limit, accepted)
            .await
            .expect("accept hung")
            .unwrap();
        let got = timeout(limit, received).await.expect("recv hung").unwrap();
        assert_eq!((on, got.as_slice()), (1, &b"dgram"[..]));
        assert_eq!(stats_here_and_on_worker_1().await, (CLEAN, CLEAN));
    });
}
