//! The echo server of seed 002, as library functions so that the example,
//! the fault tests and the benches all run the same code in-process.
//!
//! - [`serve`]: Miou's accept loop. Each client is an orphan task of the
//!   server; finished clients are collected (`care`) before every accept, so
//!   the set holds only live clients plus those that ended since the last
//!   connection. When `stop` fires, the server stops accepting and cancels the
//!   clients still connected (their sockets close as their tasks drop), so
//!   nothing outlives it.
//! - [`serve_parallel`]: the parallel form: the same loop on every worker, each
//!   on its own duplicate of the one listening socket.
//! - [`handle`]: one client. It reads into a fixed buffer and writes all of it
//!   back before reading again, so a client that never reads stalls its own
//!   task (TCP flow control) instead of growing memory; a client that resets
//!   or half-closes ends its task, never the server.

use crate::net::{serve_on_every_worker, TcpListener, TcpStream};
use matou_core::{race, Care, Either, Orphans};
use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// Bytes a client task reads (and then writes back) at a time: its whole
/// memory footprint, whatever the client does.
pub const BUFFER: usize = 16 * 1024;

/// What a server did, for logs and tests.
///
/// ```
/// use matou_unix::echo::{serve, Stop};
/// use matou_unix::net::{TcpListener, TcpStream};
///
/// let stats = matou_unix::builder().extra_workers(0).run(async {
///     let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
///     let addr = listener.local_addr().unwrap();
///     let stop = Stop::new();
///     let server = matou_core::spawn(serve(listener, stop.clone()));
///     let c = TcpStream::connect(addr).await.unwrap();
///     c.write_all(b"ping").await.unwrap();
///     let mut buf = [0; 4];
///     c.read_exact(&mut buf).await.unwrap();
///     drop(c); // the client ends its stream: a completed connection
///     matou_unix::time::sleep(std::time::Duration::from_millis(20)).await;
///     stop.trigger();
///     server.await.unwrap().unwrap()
/// });
/// assert_eq!((stats.accepted, stats.completed, stats.bytes), (1, 1, 4));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Clients that ended with the end of their stream.
    pub completed: u64,
    /// Clients that ended with an error (reset, broken pipe, ...).
    pub failed: u64,
    /// Clients still connected when the server stopped (cancelled).
    pub cancelled: u64,
    /// Bytes echoed by completed clients.
    pub bytes: u64,
}

impl std::ops::AddAssign for EchoStats {
    fn add_assign(&mut self, o: EchoStats) {
        self.accepted += o.accepted;
        self.completed += o.completed;
        self.failed += o.failed;
        self.cancelled += o.cancelled;
        self.bytes += o.bytes;
    }
}

/// A stop switch that any thread can flip and any task on any worker can
/// await (a graceful-shutdown latch).
///
/// ```
/// use matou_unix::echo::Stop;
///
/// let stop = Stop::new();
/// let s = stop.clone();
/// matou_unix::run(async move {
///     let flipper = std::thread::spawn(move || s.trigger());
///     stop.wait().await; // returns once triggered, from any thread
///     assert!(stop.is_triggered());
///     flipper.join().unwrap();
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Stop {
    inner: Arc<Mutex<StopState>>,
}

#[derive(Debug, Default)]
struct StopState {
    stopped: bool,
    waiters: Vec<Waker>,
}

impl Stop {
    /// A switch not flipped yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Flips the switch and wakes every waiter (from any thread).
    pub fn trigger(&self) {
        let waiters = {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            s.stopped = true;
            std::mem::take(&mut s.waiters)
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    /// Whether the switch was flipped.
    pub fn is_triggered(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).stopped
    }

    /// Waits until the switch is flipped.
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if s.stopped {
                return Poll::Ready(());
            }
            if !s.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                s.waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }
}

/// Echoes one client until it closes its side; returns the bytes echoed.
/// The socket is closed when the task ends (or is cancelled).
///
/// # Errors
/// The socket's, e.g. `ECONNRESET` from a client that reset.
pub async fn handle(stream: TcpStream) -> io::Result<u64> {
    let mut buf = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

/// Collects every finished client (Miou's `clean_up`, in a loop).
async fn clean_up(orphans: &Orphans<io::Result<u64>>, stats: &mut EchoStats) -> io::Result<()> {
    while let Care::Ready(p) = orphans.care().map_err(io::Error::other)? {
        match p.await {
            Ok(Ok(n)) => {
                stats.completed += 1;
                stats.bytes += n;
            }
            // A client's failure (or panic) is that client's business.
            Ok(Err(_)) | Err(_) => stats.failed += 1,
        }
    }
    Ok(())
}

/// Runs the accept loop on `listener` until `stop` fires, then cancels the
/// clients still connected. See the module docs.
///
/// # Errors
/// `accept`'s errors other than descriptor exhaustion (which it rides out);
/// the clients are cancelled before the error is returned.
pub async fn serve(listener: TcpListener, stop: Stop) -> io::Result<EchoStats> {
    let orphans: Orphans<io::Result<u64>> = Orphans::new();
    let mut stats = EchoStats::default();
    let mut stopped = pin!(stop.wait());
    let result = loop {
        if let Err(e) = clean_up(&orphans, &mut stats).await {
            break Err(e);
        }
        let mut accept = pin!(listener.accept());
        match race(stopped.as_mut(), accept.as_mut()).await {
            Either::Left(()) => break Ok(()),
            Either::Right(Ok((client, _))) => {
                stats.accepted += 1;
                // Echo is latency-bound: do not let Nagle hold small replies.
                let _ = client.set_nodelay(true);
                if let Err(e) = orphans.spawn(handle(client)) {
                    break Err(io::Error::other(e));
                }
            }
            Either::Right(Err(e)) => break Err(e),
        }
    };
    drop(listener);
    clean_up(&orphans, &mut stats).await?;
    while let Some(p) = orphans.take().map_err(io::Error::other)? {
        if p.is_finished() {
            // Finished between the last `care` and now: count it as such.
            match p.await {
                Ok(Ok(n)) => {
                    stats.completed += 1;
                    stats.bytes += n;
                }
                Ok(Err(_)) | Err(_) => stats.failed += 1,
            }
        } else {
            stats.cancelled += 1;
            let _ = p.cancel().await;
        }
    }
    result.map(|()| stats)
}

/// The parallel form: `listener` serves on this worker, and every other
/// worker available to `matou_core::parallel` runs the same loop on a
/// duplicate of it (see [`serve_on_every_worker`]). Returns each
/// server's statistics (this worker's first) once all of them stopped.
///
/// # Errors
/// The first server error (a worker that cannot bind, or an `accept`
/// failure); every server is stopped and awaited before it is returned.
pub async fn serve_parallel(listener: TcpListener, stop: Stop) -> io::Result<Vec<EchoStats>> {
    let (serving, stopping) = (stop.clone(), stop);
    serve_on_every_worker(
        listener,
        move |l| serve(l, serving.clone()),
        move || stopping.trigger(),
    )
    .await
}
