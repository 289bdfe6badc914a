//! `AsyncFd` over descriptors the crate does not know (a pipe), `into_std`
//! on sockets, and `UnixStream` readiness.

mod common;

use common::{run, WORKERS};
use matou_unix::fd::AsyncFd;
use matou_unix::net::{TcpListener, TcpStream, UnixStream};
use matou_unix::reactor_stats;
use matou_unix::time::{sleep, timeout};
use std::io::{Read, Write};
use std::time::Duration;

fn pipe() -> (std::fs::File, std::fs::File) {
    let (r, w) = rustix::pipe::pipe().unwrap();
    (std::fs::File::from(r), std::fs::File::from(w))
}

#[test]
fn a_pipe_read_waits_for_the_writer_on_another_thread() {
    for extra in WORKERS {
        run("asyncfd_pipe", extra, async {
            let (r, mut w) = pipe();
            let r = AsyncFd::new_nonblocking(r).unwrap();
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                w.write_all(b"through the pipe").unwrap();
            });
            let mut buf = [0u8; 64];
            let n = r.read_with(|mut f| f.read(&mut buf)).await.unwrap();
            assert_eq!(&buf[..n], b"through the pipe");
            writer.join().unwrap();
            // The writer is gone: end of file.
            let n = r.read_with(|mut f| f.read(&mut buf)).await.unwrap();
            assert_eq!(n, 0);
        });
    }
}

#[test]
fn readable_waits_for_an_edge_and_a_cancelled_wait_is_forgotten() {
    run("asyncfd_readable", 0, async {
        let (r, mut w) = pipe();
        let r = AsyncFd::new_nonblocking(r).unwrap();
        let mut buf = [0u8; 8];
        let e = r.get_ref().read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        // Nothing written: the wait times out (and is cancelled).
        assert!(timeout(Duration::from_millis(30), r.readable())
            .await
            .is_err());
        sleep(Duration::from_millis(5)).await;
        assert_eq!(
            reactor_stats().unwrap().waiting,
            0,
            "cancelled wait left filed"
        );
        w.write_all(b"x").unwrap();
        timeout(Duration::from_secs(5), r.readable())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.get_ref().read(&mut buf).unwrap(), 1);
        // into_inner releases the registration.
        let f = r.into_inner();
        assert_eq!(reactor_stats().unwrap().registered, 0);
        drop(f);
    });
}

#[test]
fn write_with_waits_for_room_in_a_full_pipe() {
    run("asyncfd_write", 2, async {
        let (mut r, w) = pipe();
        let w = AsyncFd::new_nonblocking(w).unwrap();
        let chunk = vec![7u8; 65536];
        // Fill the pipe.
        while w.get_ref().write(&chunk).is_ok() {}
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            let mut buf = vec![0u8; 65536];
            r.read_exact(&mut buf).unwrap();
            r // Kept open until the write is done.
        });
        let n = timeout(
            Duration::from_secs(5),
            w.write_with(|mut f| f.write(&chunk)),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0);
        drop(reader.join().unwrap());
    });
}

#[test]
fn sockets_go_to_std_and_back() {
    for extra in WORKERS {
        run("into_std", extra, async {
            let l = TcpListener::bind(common::loopback4()).unwrap();
            let addr = l.local_addr().unwrap();
            let l = TcpListener::from_std(l.into_std()).unwrap();
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            let mut std_c = c.into_std();
            std_c.set_nonblocking(false).unwrap();
            std_c.write_all(b"std").unwrap();
            let mut buf = [0u8; 3];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"std");
            let c = TcpStream::from_std(std_c).unwrap();
            c.write_all(b"back").await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"back");

            let (a, b) = UnixStream::pair().unwrap();
            let mut std_a = a.into_std();
            std_a.set_nonblocking(false).unwrap();
            std_a.write_all(b"u").unwrap();
            let mut one = [0u8; 1];
            b.read_exact(&mut one).await.unwrap();
            let u = matou_unix::net::UdpSocket::bind(common::loopback4()).unwrap();
            let u = matou_unix::net::UdpSocket::from_std(u.into_std()).unwrap();
            assert!(u.local_addr().is_ok());
        });
    }
}

#[test]
fn unix_stream_readiness() {
    run("unix_ready", 0, async {
        let (a, b) = UnixStream::pair().unwrap();
        a.writable().await.unwrap();
        let mut buf = [0u8; 1];
        let reader = matou_core::spawn(async move {
            b.readable().await.unwrap();
            b.read(&mut buf).await.unwrap()
        });
        sleep(Duration::from_millis(20)).await;
        a.write_all(b"r").await.unwrap();
        assert_eq!(reader.await.unwrap(), 1);
    });
}
