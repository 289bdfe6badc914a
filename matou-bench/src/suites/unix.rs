//! Suite `unix`: TCP echo, timer churn and a million pending timers.
//!
//! **Echo.** The same echo service on both runtimes, measured by one client
//! driver that is identical for both:
//! - matou: `matou::unix::echo::serve_parallel` in a
//!   `matou::builder().extra_workers(1)` run on its own thread (each worker
//!   accepting on a duplicate of one exclusive listener), stopped with
//!   `echo::Stop`;
//! - tokio: a `multi_thread(2)` runtime running the standard accept loop, one
//!   task per connection doing the same read-into-16-KiB / `write_all` copy
//!   as matou's `echo::handle`, `TCP_NODELAY` on both.
//!
//! The driver uses std blocking sockets on a few plain threads (at most 4),
//! each owning a share of the connections. A round writes one 1 KiB message
//! on each of its connections, then reads each echo back; a message's latency
//! is from its write to the end of its read. Connecting and one warm-up round
//! are outside the timed region (as is the server's runtime start). Reported:
//! time per message (elapsed / messages, the inverse of throughput) and the
//! p99 latency, for 1, 64 and 512 connections; each is a median over samples.
//! With `--backend uring` (or `both`) the echo rows are measured with matou's
//! workers on io_uring (`matou::unix::builder_on(Backend::Uring)`), suffixed
//! ` [uring]`, against the same tokio server.
//!
//! **Timer churn.** A million `timeout(10 s, f)` created and polled to
//! completion in chunks of 1 000 (the chunk is created first, then each is
//! awaited), matou (`extra_workers(0)`, epoll source) against tokio
//! `current_thread`: with `f` ready at once (the timer is never filed on
//! either side) and with `f` pending once (the timer is filed, then cancelled
//! when `f` completes). Reported in ns per timeout.
//!
//! **Pending timers.** One task holds a million `sleep(10 s)` futures (made
//! before the timed region, in one allocation on both sides), polls each once
//! (`insert`: each files its timer with its worker's wheel), then drops them
//! all (`cancel`: matou's time includes the yields until its reactor has
//! forgotten every one; tokio's drop removes the entry from its wheel at
//! once). matou `extra_workers(0)` against tokio `current_thread`, in ns per
//! timer; plus the resident memory the pending timers add (futures, wheel and
//! scheduler tables, from `/proc/self/statm`), in bytes per timer.

use crate::harness::{alternate, backend_label, drive_clients, ns, quantile, Config, Report, Row};
use matou::unix::echo;
use matou::unix::Backend;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const MSG: usize = 1024;
const CONNECTIONS: [usize; 3] = [1, 64, 512];
const MAX_CLIENT_THREADS: usize = 4;
const TIMEOUTS: usize = 1_000_000;
const CHUNK: usize = 1_000;
const PENDING_TIMERS: usize = 1_000_000;

/// Runs the suite.
pub fn run(cfg: &Config, report: &mut Report) {
    let rounds = if cfg.quick { 3 } else { 5 };
    let messages = if cfg.quick { 4_000 } else { 40_000 };
    for &backend in cfg.backends {
        for conns in CONNECTIONS {
            let (m, t) = alternate(
                rounds,
                || echo_sample(Server::Matou(backend), conns, messages),
                || echo_sample(Server::Tokio, conns, messages),
            );
            for (i, what) in ["time/msg", "p99 latency"].iter().enumerate() {
                report.push(Row {
                    suite: "unix",
                    name: format!("echo 1KiB c={conns} {what}{}", backend_label(backend)),
                    baseline: "multi_thread(2)".to_string(),
                    matou_ns: m[i],
                    tokio_ns: t[i],
                });
            }
        }
    }
    let timeouts = if cfg.quick { TIMEOUTS / 5 } else { TIMEOUTS };
    for pending in [false, true] {
        let (m, t) = alternate(
            rounds,
            || vec![matou_timer_churn(timeouts, pending)],
            || vec![tokio_timer_churn(timeouts, pending)],
        );
        let what = if pending { "pending once" } else { "ready" };
        report.push(Row {
            suite: "unix",
            name: format!("timer churn {what} (ns/timeout)"),
            baseline: "current_thread".to_string(),
            matou_ns: m[0],
            tokio_ns: t[0],
        });
    }
    let (timers, label) = if cfg.quick {
        (PENDING_TIMERS / 5, "200k")
    } else {
        (PENDING_TIMERS, "1M")
    };
    let (m, t) = alternate(
        rounds,
        || matou_pending_timers(timers),
        || tokio_pending_timers(timers),
    );
    let figures = [
        "insert (ns/timer)",
        "cancel (ns/timer)",
        "pending memory (bytes/timer)",
    ];
    for (i, what) in figures.iter().enumerate() {
        report.push(Row {
            suite: "unix",
            name: format!("timers {label} {what}"),
            baseline: "current_thread".to_string(),
            matou_ns: m[i],
            tokio_ns: t[i],
        });
    }
}

#[derive(Clone, Copy)]
enum Server {
    Matou(Backend),
    Tokio,
}

/// A running echo server: its address and how to stop it.
struct Running {
    addr: SocketAddr,
    stop: Box<dyn FnOnce()>,
    thread: JoinHandle<()>,
}

impl Running {
    fn shut_down(self) {
        (self.stop)();
        self.thread.join().expect("echo server thread");
    }
}

fn start_matou(backend: Backend) -> Running {
    let stop = echo::Stop::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let server_stop = stop.clone();
    let thread = thread::spawn(move || {
        matou::unix::builder_on(backend)
            .extra_workers(1)
            .run(async move {
                let listener =
                    matou::unix::net::TcpListener::bind(([127, 0, 0, 1], 0)).expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                echo::serve_parallel(listener, server_stop)
                    .await
                    .expect("matou echo server");
            });
    });
    let addr = rx.recv().expect("matou server address");
    // Let the second worker start accepting on its duplicate of the
    // listener before clients connect, so connections spread over both
    // workers.
    thread::sleep(Duration::from_millis(50));
    Running {
        addr,
        stop: Box::new(move || stop.trigger()),
        thread,
    }
}

async fn tokio_handle(mut s: tokio::net::TcpStream) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; echo::BUFFER];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
    }
}

fn start_tokio() -> Running {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let server = tokio::spawn(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        r = listener.accept() => {
                            let (s, _) = r.expect("accept");
                            let _ = s.set_nodelay(true);
                            tokio::spawn(tokio_handle(s));
                        }
                    }
                }
            });
            server.await.expect("tokio echo server");
        });
        rt.shutdown_timeout(Duration::from_secs(1));
    });
    let addr = rx.recv().expect("tokio server address");
    Running {
        addr,
        stop: Box::new(move || {
            let _ = stop_tx.send(());
        }),
        thread,
    }
}

/// One sample: start the server, connect, warm up, then time
/// `messages` (rounded up to whole rounds) round trips. Returns
/// `[ns per message, p99 latency ns]`.
fn echo_sample(server: Server, conns: usize, messages: usize) -> Vec<f64> {
    let running = match server {
        Server::Matou(backend) => start_matou(backend),
        Server::Tokio => start_tokio(),
    };
    let threads = conns.min(MAX_CLIENT_THREADS);
    let rounds = messages.div_ceil(conns);
    let mut shares: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..conns {
        let s = TcpStream::connect(running.addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        shares[i % threads].push(s);
    }
    let (elapsed, mut lat) = drive_clients(shares, rounds, round);
    running.shut_down();
    let per_msg = elapsed / lat.len() as f64;
    vec![per_msg, quantile(&mut lat, 0.99)]
}

/// Writes one message on every connection, then reads every echo; pushes
/// each message's round-trip time.
fn round(share: &mut [TcpStream], lat: &mut Vec<f64>) {
    let msg = [0x5a_u8; MSG];
    let mut buf = [0_u8; MSG];
    let mut sent = Vec::with_capacity(share.len());
    for s in share.iter_mut() {
        sent.push(Instant::now());
        s.write_all(&msg).expect("write");
    }
    for (s, at) in share.iter_mut().zip(sent) {
        s.read_exact(&mut buf).expect("read echo");
        lat.push(ns(at.elapsed()));
    }
    assert_eq!(buf, msg, "echo mismatch");
}

/// Ready on its second poll (waking itself on the first), or at once.
struct Ready {
    pending: bool,
}

impl Future for Ready {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if self.pending {
            self.pending = false;
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(1)
        }
    }
}

const TEN_S: Duration = Duration::from_secs(10);

async fn matou_churn(n: usize, pending: bool) {
    let mut sum = 0u32;
    for _ in 0..n / CHUNK {
        let chunk: Vec<_> = (0..CHUNK)
            .map(|_| matou::unix::time::timeout(TEN_S, Ready { pending }))
            .collect();
        for f in chunk {
            sum = sum.wrapping_add(f.await.expect("not elapsed"));
        }
    }
    std::hint::black_box(sum);
}

async fn tokio_churn(n: usize, pending: bool) {
    let mut sum = 0u32;
    for _ in 0..n / CHUNK {
        let chunk: Vec<_> = (0..CHUNK)
            .map(|_| tokio::time::timeout(TEN_S, Ready { pending }))
            .collect();
        for f in chunk {
            sum = sum.wrapping_add(f.await.expect("not elapsed"));
        }
    }
    std::hint::black_box(sum);
}

/// One matou sample, in ns per timeout (one warm-up chunk first).
fn matou_timer_churn(n: usize, pending: bool) -> f64 {
    matou::builder().extra_workers(0).run(async move {
        matou_churn(CHUNK, pending).await;
        let t = Instant::now();
        matou_churn(n, pending).await;
        ns(t.elapsed()) / n as f64
    })
}

/// One tokio sample, in ns per timeout (one warm-up chunk first).
fn tokio_timer_churn(n: usize, pending: bool) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r = rt.block_on(async move {
        tokio::spawn(async move {
            tokio_churn(CHUNK, pending).await;
            let t = Instant::now();
            tokio_churn(n, pending).await;
            ns(t.elapsed()) / n as f64
        })
        .await
        .expect("timing task")
    });
    drop(rt);
    r
}

/// This process's resident memory, in bytes (0 where `/proc` is missing).
fn resident_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    // The page size of every Linux target this bench runs on.
    pages * 4096.0
}

/// One matou sample: `[insert ns/timer, cancel ns/timer, bytes/timer]`.
fn matou_pending_timers(n: usize) -> Vec<f64> {
    matou::unix::builder().extra_workers(0).run(async move {
        let before = resident_bytes();
        let mut sleeps: Vec<_> = (0..n).map(|_| matou::unix::time::sleep(TEN_S)).collect();
        let t = Instant::now();
        std::future::poll_fn(|cx| {
            for s in &mut sleeps {
                assert!(Pin::new(s).poll(cx).is_pending(), "10 s have not passed");
            }
            Poll::Ready(())
        })
        .await;
        let insert = ns(t.elapsed()) / n as f64;
        let memory = (resident_bytes() - before) / n as f64;
        let pending = || matou::unix::reactor_stats().map_or(0, |s| s.timers);
        assert_eq!(pending(), n, "every sleep filed its timer");
        let t = Instant::now();
        drop(sleeps);
        while pending() > 0 {
            matou::yield_now().await;
        }
        let cancel = ns(t.elapsed()) / n as f64;
        vec![insert, cancel, memory]
    })
}

/// One tokio sample: `[insert ns/timer, cancel ns/timer, bytes/timer]`.
fn tokio_pending_timers(n: usize) -> Vec<f64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r = rt.block_on(async move {
        tokio::spawn(async move {
            let before = resident_bytes();
            // tokio's `Sleep` is `!Unpin`: the sleeps are pinned in one boxed
            // slice (one allocation, like matou's `Vec`).
            let mut sleeps: Pin<Box<[tokio::time::Sleep]>> =
                Box::into_pin((0..n).map(|_| tokio::time::sleep(TEN_S)).collect());
            let t = Instant::now();
            std::future::poll_fn(|cx| {
                // SAFETY: the slice stays in its pinned box until it is
                // dropped below; no sleep is moved out of its place, each is
                // only polled through a `Pin` of that place.
                let slice = unsafe { sleeps.as_mut().get_unchecked_mut() };
                for s in slice {
                    // SAFETY: `s` is an element of the pinned slice (above).
                    let s = unsafe { Pin::new_unchecked(s) };
                    assert!(s.poll(cx).is_pending(), "10 s have not passed");
                }
                Poll::Ready(())
            })
            .await;
            let insert = ns(t.elapsed()) / n as f64;
            let memory = (resident_bytes() - before) / n as f64;
            let t = Instant::now();
            drop(sleeps);
            let cancel = ns(t.elapsed()) / n as f64;
            vec![insert, cancel, memory]
        })
        .await
        .expect("timing task")
    });
    drop(rt);
    r
}
