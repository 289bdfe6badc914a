//! TCP against std's blocking sockets as the peer, on loopback (IPv4 and
//! IPv6), on one worker and on several.

mod common;

use common::{has_ipv6, loopback4, loopback6, pattern, run, WORKERS};
use matou_unix::net::{TcpListener, TcpStream};
use matou_unix::time::{sleep, timeout};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// A std client thread that sends `data`, half-closes, and returns all it read.
fn std_echo_client(addr: SocketAddr, data: Vec<u8>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let writer = {
            let mut s = s.try_clone().unwrap();
            std::thread::spawn(move || {
                s.write_all(&data).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        got
    })
}

fn accept_read_write(bind: SocketAddr, extra: usize) {
    let data = pattern(3 * 1024 * 1024 + 17);
    let expected = data.clone();
    let got = run("accept_read_write", extra, async move {
        let listener = TcpListener::bind(bind).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), bind.ip());
        let client = std_echo_client(addr, data);
        let (s, peer) = listener.accept().await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), peer);
        assert_eq!(s.local_addr().unwrap(), addr);
        // Echo with small reads and whole writes, so both directions block
        // (the payload is far larger than the socket buffers).
        let mut buf = vec![0; 7000];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
        s.shutdown(Shutdown::Write).unwrap();
        drop(s);
        client
    });
    assert!(got.join().unwrap() == expected, "echoed bytes differ");
}

#[test]
fn accept_read_write_ipv4() {
    for extra in WORKERS {
        accept_read_write(loopback4(), extra);
    }
}

#[test]
fn accept_read_write_ipv6() {
    if !has_ipv6() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    for extra in WORKERS {
        accept_read_write(loopback6(), extra);
    }
}

fn connect_to_std_listener(bind: SocketAddr, extra: usize) {
    let listener = std::net::TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = [0u8; 4];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"ping");
        s.write_all(b"pong!").unwrap();
        // The client half-closes: we see the end of the stream.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        rest
    });
    run("connect_to_std_listener", extra, async move {
        let s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), addr);
        assert_eq!(s.local_addr().unwrap().ip(), addr.ip());
        s.set_nodelay(true).unwrap();
        assert!(s.nodelay().unwrap());
        s.set_nodelay(false).unwrap();
        assert!(!s.nodelay().unwrap());
        s.write_all(b"ping").await.unwrap();
        let mut reply = [0u8; 5];
        s.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"pong!");
        s.write_all(b"tail").await.unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // The server ends after our FIN: we then read the end of stream.
        let mut buf = [0u8; 8];
        assert_eq!(s.read(&mut buf).await.unwrap(), 0);
    });
    assert_eq!(server.join().unwrap(), b"tail");
}

#[test]
fn connect_read_exact_write_all_shutdown_ipv4() {
    for extra in WORKERS {
        connect_to_std_listener(loopback4(), extra);
    }
}

#[test]
fn connect_read_exact_write_all_shutdown_ipv6() {
    if !has_ipv6() {
        return;
    }
    for extra in WORKERS {
        connect_to_std_listener(loopback6(), extra);
    }
}

#[test]
fn read_exact_reports_unexpected_eof() {
    let listener = std::net::TcpListener::bind(loopback4()).unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"abc").unwrap();
    });
    run("read_exact_eof", 0, async move {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 10];
        let e = s.read_exact(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(&buf[..3], b"abc");
    });
    peer.join().unwrap();
}

#[test]
fn connect_refused_is_reported_with_its_errno() {
    for extra in WORKERS {
        // A port that was free a moment ago and has no listener now.
        let addr = std::net::TcpListener::bind(loopback4())
            .unwrap()
            .local_addr()
            .unwrap();
        let e = run("connect_refused", extra, async move {
            TcpStream::connect(addr).await.unwrap_err()
        });
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
        assert_eq!(e.raw_os_error(), Some(111), "ECONNREFUSED is kept: {e:?}");
    }
}

/// A listener whose accept queue is full: further SYNs are dropped, so a
/// connect to it hangs (in the kernel's SYN retries) until cancelled.
pub fn saturated_listener() -> (TcpListenerGuard, SocketAddr) {
    let l = std::net::TcpListener::bind(loopback4()).unwrap();
    let addr = l.local_addr().unwrap();
    // std listens with a backlog of 128; fill it (and then some) without
    // accepting. Connects beyond what the queue holds time out quickly here.
    let mut fillers = Vec::new();
    for _ in 0..300 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    (
        TcpListenerGuard {
            _l: l,
            _fillers: fillers,
        },
        addr,
    )
}

pub struct TcpListenerGuard {
    _l: std::net::TcpListener,
    _fillers: Vec<std::net::TcpStream>,
}

#[test]
fn connect_can_be_timed_out() {
    let (_guard, addr) = saturated_listener();
    for extra in WORKERS {
        let started = Instant::now();
        let r = run("connect_timeout", extra, async move {
            timeout(Duration::from_millis(200), TcpStream::connect(addr))
                .await
                .map(|_| ())
        });
        assert!(r.is_err(), "the connect should hang and be timed out");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}

#[test]
fn futures_io_traits_work_with_existing_utilities() {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    let expected = pattern(1024 * 1024);
    for extra in WORKERS {
        let data = expected.clone();
        let (got, copied) = run("futures_io", extra, async move {
            let listener = TcpListener::bind(loopback4()).unwrap();
            let addr = listener.local_addr().unwrap();
            // The server copies its input back with `futures_lite::io::copy`,
            // reading and writing through `&TcpStream`.
            let server = matou_core::spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                let n = futures_lite::io::copy(&s, &mut &s).await.unwrap();
                (&s).close().await.unwrap();
                n
            });
            let c = TcpStream::connect(addr).await.unwrap();
            // One future writes while another reads the echo, in one task.
            let write_all = async {
                let mut w = &c;
                w.write_all(&data).await.unwrap();
                w.close().await.unwrap();
            };
            let mut got = Vec::new();
            let read_all = async {
                let mut r = &c;
                r.read_to_end(&mut got).await.unwrap();
            };
            futures_lite::future::zip(write_all, read_all).await;
            (got, server.await.unwrap())
        });
        assert_eq!(copied as usize, expected.len());
        assert!(got == expected);
    }
}

#[test]
fn client_and_server_on_different_workers() {
    // The server accepts on dom0; the client runs on another worker (`call`).
    let data = pattern(512 * 1024);
    let expected = data.clone();
    let got = run("cross_worker", 2, async move {
        let listener = TcpListener::bind(loopback4()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = matou_core::call(move || async move {
            assert!(!matou_core::current_worker().is_dom0());
            let s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&data).await.unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break got;
                }
                got.extend_from_slice(&buf[..n]);
            }
        })
        .unwrap();
        let (s, _) = listener.accept().await.unwrap();
        assert_eq!(
            matou_unix::echo::handle(s).await.unwrap() as usize,
            expected.len()
        );
        client.await.unwrap()
    });
    assert!(got == pattern(512 * 1024));
}

#[test]
fn a_socket_moved_to_another_worker_keeps_working() {
    // The stream waits (and so registers) on dom0, then moves to worker 1 and
    // waits there: its registration must follow it.
    let listener = std::net::TcpListener::bind(loopback4()).unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"first").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"moved");
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"second").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    });
    run("moved_socket", 1, async move {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap(); // blocks on dom0 first
        assert_eq!(&buf, b"first");
        let p = matou_core::call(move || async move {
            s.write_all(b"moved").await.unwrap();
            let mut buf = [0u8; 6];
            s.read_exact(&mut buf).await.unwrap(); // blocks on worker 1
            assert_eq!(&buf, b"second");
            let mut end = [0u8; 1];
            assert_eq!(s.read(&mut end).await.unwrap(), 0);
            s // travels back to dom0 and is dropped there
        })
        .unwrap();
        let s = p.await.unwrap();
        sleep(Duration::from_millis(10)).await;
        drop(s);
    });
    peer.join().unwrap();
}

#[test]
fn many_concurrent_clients_on_several_workers() {
    let clients = 64;
    let got = run("many_clients", 2, async move {
        let listener = TcpListener::bind(loopback4()).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = matou_unix::echo::Stop::new();
        let server = matou_core::spawn(matou_unix::echo::serve(listener, stop.clone()));
        let results = matou_core::parallel(
            move |i: usize| async move {
                let s = TcpStream::connect(addr).await.unwrap();
                let data = pattern(10_000 + i);
                s.write_all(&data).await.unwrap();
                let mut back = vec![0; data.len()];
                s.read_exact(&mut back).await.unwrap();
                back == data
            },
            0..clients,
        )
        .await
        .unwrap();
        stop.trigger();
        let stats = server.await.unwrap().unwrap();
        (results, stats)
    });
    let (results, stats) = got;
    assert!(results.into_iter().all(|r| r.unwrap()));
    assert_eq!(stats.accepted, clients as u64);
}

#[test]
fn a_failing_write_keeps_the_os_error() {
    // Writing to a connection the peer reset gives ECONNRESET or EPIPE, as
    // raw OS errors.
    let listener = std::net::TcpListener::bind(loopback4()).unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        // Closing with unread data makes the kernel send a reset.
        drop(s);
    });
    let e = run("write_error", 0, async move {
        let s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"xx").await.unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match s.write(&chunk).await {
                Ok(_) if Instant::now() < deadline => sleep(Duration::from_millis(1)).await,
                Ok(_) => panic!("writes kept succeeding"),
                Err(e) => break e,
            }
        }
    });
    peer.join().unwrap();
    assert!(
        matches!(e.raw_os_error(), Some(104 | 32)),
        "ECONNRESET or EPIPE, got {e:?}"
    );
}

/// `serve_on_every_worker` runs the service once per eligible worker (this
/// one first, each on a duplicate of the one exclusive listener), and when one of
/// them fails it stops the others and reports that failure.
#[test]
fn serve_on_every_worker_fans_out_and_one_failure_stops_all() {
    use matou_unix::echo::Stop;
    use matou_unix::net::serve_on_every_worker;
    matou_unix::builder().extra_workers(2).run(async {
        for fail_on in [None, Some(2)] {
            let listener = TcpListener::bind(loopback4()).unwrap();
            let port = listener.local_addr().unwrap().port();
            let stop = Stop::new();
            let (serving, stopping) = (stop.clone(), stop.clone());
            let served = serve_on_every_worker(
                listener,
                move |l| {
                    let stop = serving.clone();
                    async move {
                        let me = matou_core::current_worker().index();
                        assert_eq!(l.local_addr()?.port(), port);
                        if Some(me) == fail_on {
                            return Err(std::io::Error::other(format!("worker {me} fails")));
                        }
                        if fail_on.is_none() && me == 0 {
                            // The port stays exclusive: nobody else, even
                            // asking for SO_REUSEPORT, can bind it.
                            let second = TcpListener::options()
                                .reuse_port(true)
                                .bind((std::net::Ipv4Addr::LOCALHOST, port));
                            assert_eq!(second.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
                            stop.trigger(); // everyone is up: end the test
                        }
                        stop.wait().await;
                        Ok(me)
                    }
                },
                move || stopping.trigger(),
            );
            let served = timeout(Duration::from_secs(10), served)
                .await
                .expect("every service ended");
            match (fail_on, served) {
                (None, Ok(workers)) => assert_eq!(workers, vec![0, 1, 2]),
                (Some(_), Err(e)) => {
                    assert_eq!(e.to_string(), "worker 2 fails");
                    assert!(stop.is_triggered());
                }
                (_, other) => panic!("unexpected outcome {other:?}"),
            }
        }
    });
}
