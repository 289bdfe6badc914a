//! The futures of socket operations, `sleep` and `timeout` are `Send` (when
//! their inputs are), so `Send`-bound libraries accept code that awaits them.
//!
//! Pinned twice: `assert_send` on each future built inside a task (a
//! missing `Send` fails to compile this file), and a const item that the
//! compiler checks without running anything. The run-time side (a future
//! moved to another worker mid-wait) is in `tests/moved_futures.rs`.

use matou_unix::fd::AsyncFd;
use matou_unix::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use matou_unix::time::{self, Sleep};
use std::future::Future;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::{Duration, Instant};

fn assert_send<T: Send>(_: &T) {}

/// Checked at compile time, with no value built: the `Sleep` type, and the
/// sockets that the `&self` futures borrow (a future holding `&S` is `Send`
/// exactly when `S` is `Sync`).
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    send::<Sleep>();
    send::<matou_core::Suspend>();
    send::<matou_core::Syscall>();
    sync::<TcpStream>();
    sync::<TcpListener>();
    sync::<UdpSocket>();
    sync::<UnixStream>();
    sync::<UnixListener>();
    sync::<AsyncFd<StdUnixStream>>();
};

/// Every future is built, checked and dropped unpolled (dropping an unpolled
/// future registers nothing).
#[test]
fn socket_timer_and_timeout_futures_are_send() {
    matou_unix::builder().extra_workers(0).run(async {
        let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut buf = [0u8; 4];

        let accept = listener.accept();
        assert_send(&accept);
        drop(accept);
        let connect = TcpStream::connect(addr);
        assert_send(&connect);
        let named = TcpStream::connect("localhost:1");
        assert_send(&named);
        drop(named);
        let stream = connect.await.unwrap();
        assert_send(&stream.read(&mut buf));
        assert_send(&stream.write(b"x"));
        assert_send(&stream.read_exact(&mut buf));
        assert_send(&stream.write_all(b"x"));
        assert_send(&stream.readable());
        assert_send(&stream.writable());

        let udp = UdpSocket::bind(([127, 0, 0, 1], 0)).unwrap();
        assert_send(&udp.connect(addr));
        assert_send(&udp.send_to(b"x", addr));
        assert_send(&udp.send_to(b"x", "localhost:1"));
        assert_send(&udp.recv_from(&mut buf));
        assert_send(&udp.send(b"x"));
        assert_send(&udp.recv(&mut buf));

        let dir = std::env::temp_dir().join(format!("matou-send-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let unix_listener = UnixListener::bind(&dir).unwrap();
        assert_send(&unix_listener.accept());
        assert_send(&UnixStream::connect(&dir));
        let (a, _b) = UnixStream::pair().unwrap();
        assert_send(&a.read(&mut buf));
        assert_send(&a.write(b"x"));
        assert_send(&a.read_exact(&mut buf));
        assert_send(&a.write_all(b"x"));
        assert_send(&a.readable());
        assert_send(&a.writable());
        drop(unix_listener);
        std::fs::remove_file(&dir).unwrap();

        let (fd, _peer) = StdUnixStream::pair().unwrap();
        let fd = AsyncFd::new(fd).unwrap();
        assert_send(&fd.readable());
        assert_send(&fd.writable());
        assert_send(&fd.read_with(|_| Ok(())));
        assert_send(&fd.write_with(|_| Ok(())));

        assert_send(&time::sleep(Duration::from_millis(1)));
        assert_send(&time::sleep_until(Instant::now()));
        assert_send(&time::timeout(Duration::from_millis(1), async { 1 }));
        assert_send(&time::timeout_at(Instant::now(), stream.read(&mut buf)));
        let mut every = time::interval(Duration::from_millis(1));
        assert_send(&every.tick());
        assert_send(&matou_unix::net::lookup_host("localhost:1"));

        // Beyond sockets and timers: the blocking pool, files, signals.
        assert_send(&matou_unix::blocking::unblock(|| 1));
        assert_send(&matou_unix::fs::read("/nonexistent"));
        assert_send(&matou_unix::fs::metadata("/"));
        let mut usr2 = matou_unix::signal::signal(matou_unix::signal::SignalKind::USR2).unwrap();
        assert_send(&usr2.recv());
    });
}

/// What a `Send`-bound library asks for: a boxed `dyn Future + Send` made of
/// code awaiting matou's futures, here actually run.
#[test]
fn a_send_bound_consumer_accepts_code_awaiting_sockets_and_timers() {
    fn boxed<F: Future + Send + 'static>(
        f: F,
    ) -> std::pin::Pin<Box<dyn Future<Output = F::Output> + Send>> {
        Box::pin(f)
    }
    let echoed = matou_unix::builder().extra_workers(0).run(async {
        let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = matou_core::spawn(boxed(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 2];
            s.read_exact(&mut buf).await.unwrap();
            time::sleep(Duration::from_millis(1)).await;
            s.write_all(&buf).await.unwrap();
        }));
        let client = boxed(async move {
            let c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"hi").await.unwrap();
            let mut buf = [0u8; 2];
            time::timeout(Duration::from_secs(10), c.read_exact(&mut buf))
                .await
                .unwrap()
                .unwrap();
            buf
        });
        let got = client.await;
        server.await.unwrap();
        got
    });
    assert_eq!(&echoed, b"hi");
}
