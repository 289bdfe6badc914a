//! Cancel safety of reads and accepts whose event already happened: a read
//! cancelled after its bytes arrived (and after the reactor signalled it)
//! keeps them for the next read; an accept cancelled after the connection
//! arrived leaks no descriptor and leaves the connection for the next
//! accept. Both backends run the readiness API, where no buffer is lent to
//! the kernel, so nothing is ever in flight to lose; `scripts/test` runs this
//! file on epoll and on io_uring (`MATOU_EVENT_SOURCE=uring`).

mod common;

use common::{loopback4, run};
use matou_unix::net::{TcpListener, TcpStream};
use matou_unix::reactor_stats;
use matou_unix::time::sleep;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;

/// The tests count process-wide descriptors: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until the current worker's reactor has `n` parked I/O waits.
async fn until_waiting(n: usize) {
    for _ in 0..2000 {
        if reactor_stats().unwrap().waiting == n {
            return;
        }
        sleep(Duration::from_millis(1)).await;
    }
    panic!("never {n} waiting: {:?}", reactor_stats());
}

/// Blocks this worker's thread (no select runs) until the kernel has
/// delivered the event: `cond` true, checked by a syscall of the test's own.
fn spin_until(mut cond: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(10), "event never came");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_read_cancelled_after_its_bytes_arrived_keeps_them_for_the_next_read() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("cancelled_read_keeps_bytes", 0, async {
        let std_listener = std::net::TcpListener::bind(loopback4()).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let s = std::rc::Rc::new(TcpStream::connect(addr).await.unwrap());
        let (mut peer, _) = std_listener.accept().unwrap();
        for round in 0..3u8 {
            let reader = {
                let s = s.clone();
                matou_core::spawn(async move {
                    let mut buf = [0u8; 64];
                    let n = s.read(&mut buf).await.unwrap();
                    buf[..n].to_vec()
                })
            };
            until_waiting(1).await;
            let msg = [b'a' + round; 5];
            peer.write_all(&msg).unwrap();
            // The bytes are in the socket (a peek sees them), and the
            // readiness completion is posted (in the ring, on io_uring),
            // before the reader is cancelled; no scheduling point lies in
            // between, so the reader cannot have consumed them.
            let mut peek = [0u8; 5];
            spin_until(|| {
                rustix::net::recv(&*s, &mut peek, rustix::net::RecvFlags::PEEK)
                    .map(|(n, _)| n == 5)
                    .unwrap_or(false)
            });
            reader.cancel().await.unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], &msg, "round {round}");
        }
    });
}

#[test]
fn an_accept_cancelled_after_the_connection_arrived_leaks_no_descriptor() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("cancelled_accept_no_leak", 0, async {
        let listener = std::rc::Rc::new(TcpListener::bind(loopback4()).unwrap());
        let addr = listener.local_addr().unwrap();
        for round in 0..3 {
            let acceptor = {
                let l = listener.clone();
                matou_core::spawn(async move { l.accept().await.map(|_| ()) })
            };
            until_waiting(1).await;
            let before = open_fds();
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            // The connection is complete (in the backlog) before the cancel.
            client.write_all(b"hi").unwrap();
            spin_until(|| {
                rustix::event::poll(
                    &mut [rustix::event::PollFd::new(
                        &*listener,
                        rustix::event::PollFlags::IN,
                    )],
                    Some(&rustix::event::Timespec::default()),
                )
                .map(|n| n == 1)
                .unwrap_or(false)
            });
            acceptor.cancel().await.unwrap();
            sleep(Duration::from_millis(2)).await;
            // The client's socket is the only new descriptor: none accepted
            // by the cancelled task stayed open.
            assert_eq!(open_fds(), before + 1, "round {round}");
            // The connection was not lost either: the next accept gets it.
            let (s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 2];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hi");
            drop(s);
            let mut rest = Vec::new();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            assert_eq!(client.read_to_end(&mut rest).unwrap(), 0);
        }
    });
}
