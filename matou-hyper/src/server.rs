//! [`serve`]: HTTP/1.1 and HTTP/2 (auto-detected) on every worker, every
//! connection a task of a scope, and a graceful shutdown.
//!
//! Per worker (each on a duplicate of the one listener, through
//! [`serve_on_every_worker`](matou::unix::net::serve_on_every_worker)) an
//! accept loop owns an [`Orphans`] scope: each connection is a task of it,
//! and hyper's own tasks (HTTP/2 streams) join it through
//! [`MatouLocalExecutor`]: a service's futures need not be `Send`. On [`Shutdown::trigger`]:
//! 1. the accept loop stops and drops its listener (new connections are
//!    refused by the kernel once every worker's listener is closed);
//! 2. every connection gets hyper's `graceful_shutdown` (HTTP/1 finishes the
//!    request in flight then closes, HTTP/2 sends GOAWAY) and runs until it
//!    ends or the deadline passes, when it is dropped (cancelled);
//! 3. the loop waits for the scope to empty until the deadline, then closes
//!    it and cancels what is left (HTTP/2 streams of cancelled connections).
//!
//! Invariant: `serve` returns only when every connection and every task hyper
//! spawned has ended and been collected; the [`ServeReport`] counts each
//! connection exactly once.

use crate::{MatouIo, MatouLocalExecutor, MatouTimer, Shutdown};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;
use matou::unix::net::{serve_on_every_worker, TcpListener};
use matou::unix::time::{sleep, sleep_until};
use matou::{select, Care, Orphans};
use std::cell::Cell;
use std::error::Error as StdError;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What [`serve`] did, summed over the workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeReport {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that ended by themselves or finished within the grace
    /// period (the client closed, or hyper completed a graceful shutdown).
    pub finished: u64,
    /// Connections that ended with a protocol or I/O error.
    pub failed: u64,
    /// Connections still running at the deadline, cancelled.
    pub cancelled: u64,
    /// Tasks of the scope (a connection, or an HTTP/2 stream) whose service
    /// panicked; a panicking connection is counted here and not above.
    pub panicked: u64,
}

impl ServeReport {
    fn add(self, other: ServeReport) -> ServeReport {
        ServeReport {
            accepted: self.accepted + other.accepted,
            finished: self.finished + other.finished,
            failed: self.failed + other.failed,
            cancelled: self.cancelled + other.cancelled,
            panicked: self.panicked + other.panicked,
        }
    }
}

/// Serves `service` on `listener` and, each on a duplicate of it (the same
/// listening socket), on every other worker `parallel` may use, until `shutdown`
/// is triggered; then shuts down gracefully (see the module doc) and returns
/// once every connection task has ended.
///
/// `listener` needs no
/// [`reuse_port`](matou::unix::net::TcpListenOptions::reuse_port): a plain
/// (exclusive) listener is shared by the workers, and no other socket can
/// bind its port meanwhile. HTTP/1.1 and HTTP/2 (prior knowledge, i.e.
/// `h2c`) are told apart by the connection's first bytes. A connection stays
/// on the worker that accepted it; the accept loops keep their numbers of
/// live connections within one of each other where they can (a loop over
/// its share lets the others accept first, for a few milliseconds at most).
///
/// ```no_run
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper::{service::service_fn, Response};
/// use matou::unix::net::TcpListener;
/// use matou_hyper::{serve, Shutdown};
/// use std::{convert::Infallible, time::Duration};
///
/// matou::run(async {
///     let listener = TcpListener::bind(([127, 0, 0, 1], 8080)).unwrap();
///     let hello = service_fn(|_req| async {
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
///     });
///     let stop = Shutdown::new(Duration::from_secs(10));
///     // e.g. trigger `stop` from a SIGTERM handler task
///     serve(listener, hello, stop).await.unwrap();
/// });
/// ```
///
/// # Errors
/// A listener that cannot be duplicated, or an accept error other than a
/// transient one (an aborted connection, a full descriptor table: those are
/// retried); the shutdown is triggered and every worker has drained before it
/// is returned.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: Shutdown,
) -> io::Result<ServeReport>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let stop = shutdown.clone();
    let balance = Arc::new(Balance::default());
    let reports = serve_on_every_worker(
        listener,
        move |listener| serve_here(listener, service.clone(), shutdown.clone(), balance.clone()),
        move || stop.trigger(),
    )
    .await?;
    Ok(reports
        .into_iter()
        .fold(ServeReport::default(), ServeReport::add))
}

/// How many consecutive times an accept loop over its share lets the others
/// take a connection first, [`DEFER_PAUSE`] each, before it accepts anyway
/// (so a stuck worker cannot leave connections in the backlog).
const MAX_DEFERS: u32 = 8;
const DEFER_PAUSE: Duration = Duration::from_millis(1);

/// The live connections of every worker's accept loop.
///
/// Every worker waits on the same listening socket and a new connection
/// wakes them all; whichever accepts first keeps the connection for its
/// life (matou never migrates tasks). Left to that race, the worker that
/// happens to be awake takes most of a burst (19 to 49 of 64 on two workers
/// in the http bench), and the busier one paces every client. So a loop
/// that holds more than one connection above the least-loaded other loop
/// defers: it leaves the connection to the others (woken by the same
/// readiness) for up to [`MAX_DEFERS`] short pauses. Two loops can never
/// both be over each other's count, so someone always accepts.
#[derive(Default)]
struct Balance {
    loops: Mutex<Vec<Arc<AtomicUsize>>>,
}

impl Balance {
    /// A new accept loop's live-connection count.
    fn join(&self) -> Arc<AtomicUsize> {
        let mine = Arc::new(AtomicUsize::new(0));
        self.loops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(mine.clone());
        mine
    }

    /// Whether `mine` holds more than one connection above another loop.
    fn over_share(&self, mine: &Arc<AtomicUsize>) -> bool {
        let loops = self.loops.lock().unwrap_or_else(PoisonError::into_inner);
        let own = mine.load(Ordering::Relaxed);
        loops
            .iter()
            .filter(|l| !Arc::ptr_eq(l, mine))
            .any(|l| l.load(Ordering::Relaxed) + 1 < own)
    }
}

/// Takes one off its loop's live count when a connection task ends.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of one worker's connections (tasks of one worker: `Cell`s).
#[derive(Default)]
struct Tally {
    finished: Cell<u64>,
    failed: Cell<u64>,
    cancelled: Cell<u64>,
    panicked: Cell<u64>,
}

impl Tally {
    fn bump(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }
}

/// A connection task's outcome, recorded exactly once: by `record`, or as
/// cancelled when the task is dropped first (a panic is the owner's count).
struct Outcome<'a> {
    tally: &'a Tally,
    recorded: bool,
}

impl Outcome<'_> {
    /// `Some(ok)` when hyper's connection ended, `None` when the deadline
    /// cut it off.
    fn record(&mut self, ended: Option<bool>) {
        self.recorded = true;
        Tally::bump(match ended {
            Some(true) => &self.tally.finished,
            Some(false) => &self.tally.failed,
            None => &self.tally.cancelled,
        });
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.recorded && !std::thread::panicking() {
            Tally::bump(&self.tally.cancelled);
        }
    }
}

/// One worker's accept loop, connections and drain.
async fn serve_here<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: Shutdown,
    balance: Arc<Balance>,
) -> io::Result<ServeReport>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let live = balance.join();
    let mut defers = 0;
    let scope = Orphans::<()>::new();
    let exec = MatouLocalExecutor::new(&scope).map_err(io::Error::other)?;
    let mut builder = auto::Builder::new(exec);
    builder.http1().timer(MatouTimer);
    builder.http2().timer(MatouTimer);
    let builder = Rc::new(builder);
    let tally = Rc::new(Tally::default());
    let mut accepted = 0u64;
    let mut failure = None;

    let mut stop = pin!(shutdown.triggered());
    let deadline = loop {
        collect_finished(&scope, &tally).await;
        if defers < MAX_DEFERS && balance.over_share(&live) {
            defers += 1;
            let paused = select! {
                at = stop.as_mut() => Err(at),
                () = sleep(DEFER_PAUSE) => Ok(()),
            };
            match paused {
                Err(deadline) => break deadline,
                Ok(()) => continue,
            }
        }
        defers = 0;
        let next = select! {
            at = stop.as_mut() => Err(at),
            conn = listener.accept() => Ok(conn),
        };
        let stream = match next {
            Err(deadline) => break deadline,
            Ok(Ok((stream, _peer))) => stream,
            Ok(Err(e)) if is_transient(&e) => {
                if is_out_of_descriptors(&e) {
                    // Let connections close before trying again.
                    sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
            Ok(Err(e)) => {
                failure = Some(e);
                shutdown.trigger();
                break shutdown.triggered().await;
            }
        };
        // Small responses go out at once rather than after Nagle's delay.
        let _ = stream.set_nodelay(true);
        accepted += 1;
        live.fetch_add(1, Ordering::Relaxed);
        let live = Live(live.clone());
        let (builder, service, shutdown, tally) = (
            builder.clone(),
            service.clone(),
            shutdown.clone(),
            tally.clone(),
        );
        scope
            .spawn(async move {
                let _live = live;
                // Counts the connection as cancelled unless it records an
                // outcome first: the owner may cancel it at the deadline.
                let mut outcome = Outcome {
                    tally: &tally,
                    recorded: false,
                };
                let conn = builder.serve_connection(MatouIo::new(stream), service);
                let mut conn = pin!(conn);
                let ended = select! {
                    r = conn.as_mut() => Some(r),
                    at = shutdown.triggered() => {
                        conn.as_mut().graceful_shutdown();
                        select! {
                            r = conn.as_mut() => Some(r),
                            () = sleep_until(at) => None,
                        }
                    }
                };
                outcome.record(ended.map(|r| r.is_ok()));
            })
            .map_err(io::Error::other)?;
    };
    // Stop accepting: once every worker's listener is gone, connects fail.
    drop(listener);

    // Let connections (and the HTTP/2 streams they spawned) finish in time.
    let mut past_deadline = pin!(sleep_until(deadline));
    loop {
        let more = select! {
            r = scope.next() => match r.map_err(io::Error::other)? {
                Some(Err(_panic)) => { Tally::bump(&tally.panicked); true }
                Some(Ok(())) => true,
                None => false,
            },
            () = past_deadline.as_mut() => false,
        };
        if !more {
            break;
        }
    }
    // Nothing may join after this drain; cancel what is left (tasks the
    // deadline caught: streams of cancelled connections, or hyper's spawns).
    scope.close();
    while let Some(task) = scope.take().map_err(io::Error::other)? {
        let _ = task.cancel().await;
    }
    // A handle spawn accepted just before `close` still lands in the set.
    while let Some(task) = scope.get().await.map_err(io::Error::other)? {
        let _ = task.cancel().await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(ServeReport {
        accepted,
        finished: tally.finished.get(),
        failed: tally.failed.get(),
        cancelled: tally.cancelled.get(),
        panicked: tally.panicked.get(),
    })
}

/// Collects the tasks of `scope` that have finished, without waiting, so the
/// set does not grow with a long-running server's past connections.
async fn collect_finished(scope: &Orphans<()>, tally: &Tally) {
    while let Ok(Care::Ready(done)) = scope.care() {
        // Finished: this returns at once. A panicking service is that
        // task's failure only.
        if done.await.is_err() {
            Tally::bump(&tally.panicked);
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || is_out_of_descriptors(e)
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux.
    matches!(e.raw_os_error(), Some(23 | 24))
}
