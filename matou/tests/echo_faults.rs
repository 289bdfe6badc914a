//! The echo server (in-process, `matou::unix::echo`) against what real
//! networks do: a client that resets mid-write, one that half-closes, one
//! that never reads; and the parallel form. Std blocking sockets are the
//! clients. The tests count this process's descriptors, so they run one at a
//! time.

use matou::unix::echo::{self, EchoStats, Stop};
use matou::unix::net::TcpListener;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// A server running on its own thread (a matou run with `extra` workers),
/// stopped and joined by `finish`.
struct Server {
    addr: SocketAddr,
    stop: Stop,
    thread: std::thread::JoinHandle<std::io::Result<Vec<EchoStats>>>,
}

fn start(extra: usize, parallel: bool) -> Server {
    let stop = Stop::new();
    let (tx, rx) = mpsc::channel();
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            matou::unix::builder().extra_workers(extra).run(async move {
                let l = TcpListener::options()
                    .reuse_port(parallel)
                    .bind(([127, 0, 0, 1], 0))?;
                tx.send(l.local_addr()?).unwrap();
                if parallel {
                    echo::serve_parallel(l, stop).await
                } else {
                    echo::serve(l, stop).await.map(|s| vec![s])
                }
            })
        })
    };
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server started");
    Server { addr, stop, thread }
}

impl Server {
    fn finish(self) -> Vec<EchoStats> {
        self.stop.trigger();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.thread.is_finished() {
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        self.thread.join().unwrap().unwrap()
    }
}

fn total(stats: &[EchoStats]) -> EchoStats {
    let mut t = EchoStats::default();
    for s in stats {
        t += *s;
    }
    t
}

/// A well-behaved client: sends `data`, half-closes, reads all the echo.
fn echo_roundtrip(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    got
}

/// Writes to a client socket that never reads until the writes stall (a
/// write blocks for `stall`); returns the bytes the network absorbed, or
/// panics past `cap` (an unbounded server would never stall).
fn write_until_stalled(s: &mut TcpStream, stall: Duration, cap: usize) -> usize {
    s.set_write_timeout(Some(stall)).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    loop {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return sent
            }
            Err(e) => panic!("write failed: {e}"),
        }
        assert!(
            sent <= cap,
            "the server absorbed {sent} bytes from a client that never reads"
        );
    }
}

#[test]
fn a_client_that_resets_mid_write_ends_only_its_own_task() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = open_fds();
    let server = start(0, false);
    // Stall the server in write_all (our receive buffer is full), then close
    // with unread data: the kernel resets the connection.
    let mut rude = TcpStream::connect(server.addr).unwrap();
    write_until_stalled(&mut rude, Duration::from_millis(300), 256 << 20);
    drop(rude);
    // The server goes on serving.
    let data = pattern(200_000);
    assert!(echo_roundtrip(server.addr, &data) == data);
    let stats = server.finish();
    let t = total(&stats);
    assert_eq!((t.accepted, t.failed, t.completed), (2, 1, 1), "{t:?}");
    assert_eq!(open_fds(), before, "no descriptor outlives the server");
}

#[test]
fn a_client_that_half_closes_gets_all_its_echo_then_the_end() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start(0, false);
    for size in [0, 1, 5000, 3 << 20] {
        let data = pattern(size);
        let got = echo_roundtrip(server.addr, &data);
        assert_eq!(got.len(), data.len());
        assert!(got == data);
    }
    let t = total(&server.finish());
    assert_eq!(
        (t.completed, t.failed, t.bytes),
        (4, 0, (5001 + (3 << 20)) as u64),
        "{t:?}"
    );
}

#[test]
fn a_client_that_never_reads_is_held_back_by_flow_control() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start(0, false);
    let mut lazy = TcpStream::connect(server.addr).unwrap();
    // Loopback socket buffers (both sides, both directions) hold some
    // megabytes; a server that buffered without bound would take far more.
    let absorbed = write_until_stalled(&mut lazy, Duration::from_millis(500), 64 << 20);
    assert!(absorbed > 0);
    // Still stalled a while later: nothing drains behind our back.
    let more = write_until_stalled(&mut lazy, Duration::from_millis(300), 64 << 20);
    assert!(more < (8 << 20), "{more} more bytes absorbed");
    // Meanwhile other clients are served.
    let data = pattern(100_000);
    assert!(echo_roundtrip(server.addr, &data) == data);
    drop(lazy);
    let t = total(&server.finish());
    assert_eq!(t.accepted, 2, "{t:?}");
    assert_eq!(t.completed, 1, "{t:?}");
}

#[test]
fn the_parallel_form_runs_an_accept_loop_per_worker_on_one_port() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = open_fds();
    let server = start(2, true);
    // Give the other workers time to bind their listeners.
    std::thread::sleep(Duration::from_millis(100));
    let clients: Vec<_> = (0..48)
        .map(|i| {
            let addr = server.addr;
            std::thread::spawn(move || {
                let data = pattern(1000 + i);
                echo_roundtrip(addr, &data) == data
            })
        })
        .collect();
    for c in clients {
        assert!(c.join().unwrap());
    }
    let stats = server.finish();
    assert_eq!(stats.len(), 3, "one server per worker");
    assert_eq!(total(&stats).accepted, 48);
    let busy = stats.iter().filter(|s| s.accepted > 0).count();
    assert!(
        busy >= 2,
        "the kernel spreads connections over the listeners: {stats:?}"
    );
    assert_eq!(open_fds(), before);
}

#[test]
fn stopping_the_server_cancels_connected_clients() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start(0, false);
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    idle.read_exact(&mut buf).unwrap();
    let t = total(&server.finish());
    assert_eq!((t.accepted, t.cancelled), (1, 1), "{t:?}");
    // The cancelled client's socket was closed: we read the end of stream.
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(idle.read(&mut buf).unwrap(), 0);
}
