//! Suite `http`: the same hyper hello-world service on matou and on tokio.
//!
//! Servers (each on its own thread, started before the timed region):
//! - matou: [`matou_hyper::serve`] in a `matou::builder().extra_workers(1)`
//!   run (dom0 and one worker each accept on a duplicate of one exclusive
//!   listener), stopped with its `Shutdown`;
//! - tokio: a `multi_thread(2)` runtime with the standard accept loop, one
//!   task per connection serving hyper-util's `auto::Builder` over
//!   `TokioIo` with `TokioExecutor`/`TokioTimer`: the same connection code
//!   (HTTP/1 + HTTP/2 sniffing) as matou-hyper's, `TCP_NODELAY` on both.
//!
//! Both serve `Full<Bytes>` "Hello, World!" on every request.
//!
//! Client: identical for both, std blocking sockets on 4 plain threads, 64
//! keep-alive HTTP/1.1 connections split among them. A round sends one
//! `GET /` on each of a thread's connections, then reads each response
//! (headers to the blank line, then `Content-Length` bytes). A request's
//! latency runs from its write to the end of its response. Connecting and a
//! warm-up round are outside the timed region. Reported: time per request
//! (the inverse of requests/s, so `ratio` < 1 means matou serves more) and
//! the p99 latency.
//!
//! Fairness on a small machine: the client's threads share the cores with
//! the server's two, the same for both sides, and samples alternate
//! (matou, tokio, matou, ...) so drifts hit both. matou's idle spin is off
//! (`idle_spin(0)`): tokio has no spin setting (its idle workers park after a
//! short search), and a spinning server would steal the client's CPU time.

use crate::harness::{alternate, drive_clients, ns, quantile, Config, Report, Row};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::Response;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 64;
const CLIENT_THREADS: usize = 4;
const BODY: &str = "Hello, World!";
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// Runs the suite.
pub fn run(cfg: &Config, report: &mut Report) {
    let rounds = if cfg.quick { 3 } else { 5 };
    let requests = if cfg.quick { 6_400 } else { 64_000 };
    let (m, t) = alternate(
        rounds,
        || sample(start_matou(), requests),
        || sample(start_tokio(), requests),
    );
    for (i, what) in ["time/req", "p99 latency"].iter().enumerate() {
        report.push(Row {
            suite: "http",
            name: format!("hyper hello c={CONNECTIONS} {what}"),
            baseline: "multi_thread(2)".to_string(),
            matou_ns: m[i],
            tokio_ns: t[i],
        });
    }
}

/// A running server: its address and how to stop it.
struct Running {
    addr: SocketAddr,
    stop: Box<dyn FnOnce()>,
    thread: JoinHandle<()>,
}

async fn hello<B>(_req: B) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        BODY.as_bytes(),
    ))))
}

fn start_matou() -> Running {
    let stop = matou_hyper::Shutdown::new(Duration::from_secs(1));
    let (tx, rx) = std::sync::mpsc::channel();
    let server_stop = stop.clone();
    let thread = thread::spawn(move || {
        matou::builder()
            .extra_workers(1)
            .idle_spin(Duration::ZERO)
            .run(async move {
                let listener =
                    matou::unix::net::TcpListener::bind(([127, 0, 0, 1], 0)).expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                matou_hyper::serve(listener, service_fn(hello), server_stop)
                    .await
                    .expect("matou http server");
            });
    });
    let addr = rx.recv().expect("matou server address");
    // Let the second worker bind its listener before clients connect.
    thread::sleep(Duration::from_millis(50));
    Running {
        addr,
        stop: Box::new(move || stop.trigger()),
        thread,
    }
}

fn start_tokio() -> Running {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            let builder = Arc::new(builder);
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    r = listener.accept() => {
                        let (s, _) = r.expect("accept");
                        let _ = s.set_nodelay(true);
                        let builder = builder.clone();
                        tokio::spawn(async move {
                            let _ = builder
                                .serve_connection(TokioIo::new(s), service_fn(hello))
                                .await;
                        });
                    }
                }
            }
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

/// One sample: connect, warm up, time `requests` (rounded up to whole
/// rounds) requests. Returns `[ns per request, p99 latency ns]`.
fn sample(running: Running, requests: usize) -> Vec<f64> {
    let rounds = requests.div_ceil(CONNECTIONS);
    let mut shares: Vec<Vec<Conn>> = (0..CLIENT_THREADS).map(|_| Vec::new()).collect();
    for i in 0..CONNECTIONS {
        let s = TcpStream::connect(running.addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        shares[i % CLIENT_THREADS].push(Conn::new(s));
    }
    let (elapsed, mut lat) = drive_clients(shares, rounds, round);
    (running.stop)();
    running.thread.join().expect("server thread");
    vec![elapsed / lat.len() as f64, quantile(&mut lat, 0.99)]
}

/// A keep-alive client connection with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Reads one response and checks its body.
    fn read_response(&mut self) {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).expect("ascii head");
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("content-length");
                let total = end + 4 + len;
                while self.buf.len() < total {
                    let n = self.stream.read(&mut chunk).expect("read body");
                    assert!(n > 0, "server closed mid-response");
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                assert_eq!(&self.buf[end + 4..total], BODY.as_bytes());
                self.buf.drain(..total);
                return;
            }
            let n = self.stream.read(&mut chunk).expect("read head");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends one request on every connection, then reads every response; pushes
/// each request's latency.
fn round(share: &mut [Conn], lat: &mut Vec<f64>) {
    let mut sent = Vec::with_capacity(share.len());
    for c in share.iter_mut() {
        sent.push(Instant::now());
        c.stream.write_all(REQUEST).expect("write request");
    }
    for (c, at) in share.iter_mut().zip(sent) {
        c.read_response();
        lat.push(ns(at.elapsed()));
    }
}
