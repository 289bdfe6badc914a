//! Host names and Happy Eyeballs, loopback only.

mod common;

use common::{has_ipv6, loopback4, loopback6, run, WORKERS};
use matou_unix::net::{lookup_host, TcpListener, TcpStream};
use matou_unix::time::timeout;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

// The tests count process-wide descriptors: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A loopback port with nothing listening (connects are refused at once).
fn refused_port() -> SocketAddr {
    let l = std::net::TcpListener::bind(loopback4()).unwrap();
    l.local_addr().unwrap()
}

#[test]
fn connect_accepts_host_names_and_tuples() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for extra in WORKERS {
        run("connect_localhost", extra, async {
            let l = TcpListener::bind(loopback4()).unwrap();
            let port = l.local_addr().unwrap().port();
            let server = matou_core::spawn(async move {
                for _ in 0..3 {
                    let (s, _) = l.accept().await.unwrap();
                    s.write_all(b"k").await.unwrap();
                }
            });
            let name = format!("localhost:{port}");
            for c in [
                TcpStream::connect(name.as_str()).await,
                TcpStream::connect(("localhost", port)).await,
                TcpStream::connect(("127.0.0.1".to_string(), port)).await,
            ] {
                let c = c.unwrap();
                let mut b = [0u8; 1];
                c.read_exact(&mut b).await.unwrap();
                assert!(c.peer_addr().unwrap().ip().is_loopback());
            }
            server.await.unwrap();
        });
    }
}

#[test]
fn connect_to_localhost_reaches_an_ipv6_listener() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !has_ipv6() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    run("connect_localhost6", 0, async {
        let l = TcpListener::bind(loopback6()).unwrap();
        let port = l.local_addr().unwrap().port();
        let addrs = lookup_host(("localhost", port)).await.unwrap();
        if !addrs.iter().any(SocketAddr::is_ipv6) {
            eprintln!("localhost has no IPv6 address here: skipped");
            return;
        }
        let accept = matou_core::spawn(async move { l.accept().await.map(|_| ()) });
        let c = TcpStream::connect(("localhost", port)).await.unwrap();
        assert!(c.peer_addr().unwrap().is_ipv6());
        accept.await.unwrap().unwrap();
    });
}

#[test]
fn happy_eyeballs_moves_on_at_once_after_a_refused_address_and_closes_the_loser() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for extra in WORKERS {
        run("happy_eyeballs", extra, async {
            let before = open_fds();
            let l = TcpListener::bind(loopback4()).unwrap();
            let good = l.local_addr().unwrap();
            let accept = matou_core::spawn(async move { l.accept().await.map(|_| ()) });
            let t0 = Instant::now();
            let c = TcpStream::connect(vec![refused_port(), good])
                .await
                .unwrap();
            // The refusal started the second attempt without the 250 ms stagger.
            assert!(
                t0.elapsed() < Duration::from_millis(200),
                "{:?}",
                t0.elapsed()
            );
            assert_eq!(c.peer_addr().unwrap(), good);
            accept.await.unwrap().unwrap();
            drop(c);
            assert_eq!(open_fds(), before, "a losing socket was left open");
            // All refused: the last error.
            let e = TcpStream::connect(vec![refused_port(), refused_port()])
                .await
                .unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        });
    }
}

#[test]
fn bad_addresses_are_clear_errors() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("bad_addrs", 0, async {
        for bad in ["no-port", "localhost:notaport", ":80"] {
            let e = TcpStream::connect(bad).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}: {e}");
        }
        let e = lookup_host(Vec::<SocketAddr>::new()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        // A name that does not resolve (reserved TLD, RFC 2606): an error, no hang.
        let r = timeout(
            Duration::from_secs(20),
            lookup_host("no-such-host.invalid:80"),
        )
        .await;
        assert!(r.unwrap().is_err());
    });
}

#[test]
fn cancelling_a_lookup_leaves_no_fd_behind() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("cancel_lookup", 0, async {
        let before = open_fds();
        // Cancelled at once: the getaddrinfo finishes on the pool.
        let r = timeout(Duration::ZERO, lookup_host("localhost:80")).await;
        drop(r);
        matou_unix::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(open_fds(), before);
    });
}

#[test]
fn happy_eyeballs_starts_the_next_address_after_250_ms_and_closes_the_hung_attempt() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("happy_eyeballs_stagger", 0, async {
        let before = open_fds();
        // A listener whose accept queue is full: the kernel drops further
        // SYNs, so a connect to it hangs (in SYN retries) like a blackhole.
        let full = TcpListener::options().backlog(0).bind(loopback4()).unwrap();
        let hung = full.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..2 {
            fillers.push(timeout(Duration::from_millis(300), TcpStream::connect(hung)).await);
        }
        if timeout(Duration::from_millis(300), TcpStream::connect(hung))
            .await
            .is_ok()
        {
            eprintln!("this kernel answers a full accept queue: skipped");
            return;
        }
        let l = TcpListener::bind(loopback4()).unwrap();
        let good = l.local_addr().unwrap();
        let accept = matou_core::spawn(async move { l.accept().await.map(|_| ()) });
        let t0 = Instant::now();
        let c = TcpStream::connect(vec![hung, good]).await.unwrap();
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(240) && took < Duration::from_secs(2),
            "second attempt started after {took:?}"
        );
        assert_eq!(c.peer_addr().unwrap(), good);
        accept.await.unwrap().unwrap();
        drop((c, fillers, full));
        matou_unix::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            open_fds(),
            before,
            "the hung attempt's socket was left open"
        );
    });
}

#[test]
fn happy_eyeballs_interleaves_families() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !has_ipv6() {
        eprintln!("no IPv6 loopback here: skipped");
        return;
    }
    run("happy_eyeballs_families", 0, async {
        let refused6 = {
            let l = std::net::TcpListener::bind(loopback6()).unwrap();
            l.local_addr().unwrap()
        };
        let l = TcpListener::bind(loopback4()).unwrap();
        let good = l.local_addr().unwrap();
        let accept = matou_core::spawn(async move { l.accept().await.map(|_| ()) });
        // Three refused IPv6 addresses then IPv4: v4 is tried second.
        let c = TcpStream::connect(vec![refused6, refused6, refused6, good])
            .await
            .unwrap();
        assert_eq!(c.peer_addr().unwrap(), good);
        accept.await.unwrap().unwrap();
    });
}
