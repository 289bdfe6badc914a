//! UDP against std's blocking sockets as the peer, IPv4 and IPv6, on one
//! worker and on several.

mod common;

use common::{has_ipv6, loopback4, loopback6, run, WORKERS};
use matou_unix::net::UdpSocket;
use std::net::SocketAddr;
use std::time::Duration;

fn send_to_recv_from(bind: SocketAddr, extra: usize) {
    let peer = std::net::UdpSocket::bind(bind).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let peer_addr = peer.local_addr().unwrap();
    // The std peer answers each datagram with it reversed, after a delay so
    // that our `recv_from` has to wait.
    let echo = std::thread::spawn(move || {
        for _ in 0..3 {
            let mut buf = [0u8; 64];
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let mut reply = buf[..n].to_vec();
            reply.reverse();
            peer.send_to(&reply, from).unwrap();
        }
    });
    run("udp_send_to", extra, async move {
        let s = UdpSocket::bind(bind).unwrap();
        let me = s.local_addr().unwrap();
        for msg in [&b"abc"[..], b"hello", b"x"] {
            assert_eq!(s.send_to(msg, peer_addr).await.unwrap(), msg.len());
            let mut buf = [0u8; 64];
            let (n, from) = s.recv_from(&mut buf).await.unwrap();
            assert_eq!(from, peer_addr);
            let mut expected = msg.to_vec();
            expected.reverse();
            assert_eq!(&buf[..n], &expected[..]);
        }
        me
    });
    echo.join().unwrap();
}

#[test]
fn send_to_and_recv_from_ipv4() {
    for extra in WORKERS {
        send_to_recv_from(loopback4(), extra);
    }
}

#[test]
fn send_to_and_recv_from_ipv6() {
    if !has_ipv6() {
        return;
    }
    for extra in WORKERS {
        send_to_recv_from(loopback6(), extra);
    }
}

#[test]
fn connected_send_and_recv() {
    for extra in WORKERS {
        let peer = std::net::UdpSocket::bind(loopback4()).unwrap();
        let peer_addr = peer.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            tx.send(from).unwrap();
            peer.send_to(&buf[..n], from).unwrap();
        });
        let me = run("udp_connected", extra, async move {
            let s = UdpSocket::bind(loopback4()).unwrap();
            s.connect(peer_addr).await.unwrap();
            assert_eq!(s.peer_addr().unwrap(), peer_addr);
            s.send(b"ping").await.unwrap();
            let mut buf = [0u8; 16];
            let n = s.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"ping");
            s.local_addr().unwrap()
        });
        assert_eq!(rx.recv().unwrap(), me);
        echo.join().unwrap();
    }
}

#[test]
fn a_refused_datagram_reports_econnrefused() {
    // A connected UDP socket learns of the peer's ICMP "port unreachable".
    let closed = std::net::UdpSocket::bind(loopback4())
        .unwrap()
        .local_addr()
        .unwrap();
    let e = run("udp_refused", 0, async move {
        let s = UdpSocket::bind(loopback4()).unwrap();
        s.connect(closed).await.unwrap();
        s.send(b"anyone?").await.unwrap();
        let mut buf = [0u8; 8];
        s.recv(&mut buf).await.unwrap_err()
    });
    assert_eq!(e.raw_os_error(), Some(111), "{e:?}");
}

#[test]
fn connect_and_send_to_accept_host_names() {
    let peer = std::net::UdpSocket::bind(loopback4()).unwrap();
    let port = peer.local_addr().unwrap().port();
    run("udp_names", 0, async move {
        let s = UdpSocket::bind(loopback4()).unwrap();
        s.send_to(b"one", ("localhost", port)).await.unwrap();
        s.connect(format!("localhost:{port}")).await.unwrap();
        s.send(b"two").await.unwrap();
        let mut buf = [0u8; 8];
        for want in [&b"one"[..], b"two"] {
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], want);
            assert_eq!(from, s.local_addr().unwrap());
        }
        let e = s.send_to(b"x", "no-port").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    });
}
