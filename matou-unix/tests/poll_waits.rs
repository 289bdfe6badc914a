//! Poll-based reads and writes (`futures_io`'s `poll_read`/`poll_write`) that
//! are polled again while their wait is still filed, as hyper does several
//! times per request: the repeated polls skip the syscall (nothing became
//! ready since the `WouldBlock`), and the operation must still complete once
//! the peer makes it ready. A std socket is the peer; a lost wake-up hangs
//! the test until the watchdog aborts it.

mod common;

use common::{loopback4, pattern, run, WORKERS};
use futures_io::{AsyncRead, AsyncWrite};
use matou_unix::net::{TcpListener, TcpStream};
use std::io::{Read, Write};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// How many times a pending operation wakes its own task before it stops
/// doing so (so the wait then rests on the reactor's event alone).
const SPURIOUS_WAKES: u32 = 200;

/// Connects a matou stream to a std one on loopback.
async fn pair() -> (TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind(loopback4()).unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
    let (s, _) = listener.accept().await.unwrap();
    (s, peer.join().unwrap())
}

#[test]
fn a_read_polled_again_while_waiting_gets_the_data_that_comes_later() {
    for extra in WORKERS {
        let got = run("poll_read_repolled", extra, async {
            let (s, mut peer) = pair().await;
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                peer.write_all(b"late data").unwrap();
                peer
            });
            let mut buf = [0u8; 64];
            let mut wakes = 0;
            let n = std::future::poll_fn(|cx| match Pin::new(&mut &s).poll_read(cx, &mut buf) {
                Poll::Pending => {
                    if wakes < SPURIOUS_WAKES {
                        wakes += 1;
                        cx.waker().wake_by_ref();
                    }
                    Poll::Pending
                }
                ready => ready,
            })
            .await
            .unwrap();
            let _peer = writer.join().unwrap();
            buf[..n].to_vec()
        });
        assert_eq!(got, b"late data", "extra workers: {extra}");
    }
}

#[test]
fn a_write_polled_again_while_waiting_completes_once_the_peer_drains() {
    for extra in WORKERS {
        let (sent, drained) = run("poll_write_repolled", extra, async {
            let (s, mut peer) = pair().await;
            let chunk = pattern(64 * 1024);
            let mut sent = 0usize;
            // Fill the socket until a write would block (bounded: the kernel's
            // buffers are far below this).
            let mut blocked = false;
            for _ in 0..10_000 {
                let r = std::future::poll_fn(|cx| {
                    Poll::Ready(Pin::new(&mut &s).poll_write(cx, &chunk))
                })
                .await;
                match r {
                    Poll::Ready(n) => sent += n.unwrap(),
                    Poll::Pending => {
                        blocked = true;
                        break;
                    }
                }
            }
            assert!(blocked, "the socket never filled up");
            let reader = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                let mut total = 0usize;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match peer.read(&mut buf).unwrap() {
                        0 => return total,
                        n => total += n,
                    }
                }
            });
            let mut wakes = 0;
            let n = std::future::poll_fn(|cx| match Pin::new(&mut &s).poll_write(cx, &chunk) {
                Poll::Pending => {
                    if wakes < SPURIOUS_WAKES {
                        wakes += 1;
                        cx.waker().wake_by_ref();
                    }
                    Poll::Pending
                }
                ready => ready,
            })
            .await
            .unwrap();
            sent += n;
            drop(s);
            (sent, reader.join().unwrap())
        });
        assert!(sent > 0);
        assert_eq!(sent, drained, "extra workers: {extra}");
    }
}
