//! The server: accept loops, client handlers and the storage task, wired
//! on the matou runtime (one run of `matou::builder()`).
//!
//! - **Storage task** (`storage.rs`, spawned on dom0): the only owner of the
//!   [`Databases`] and of the [`Aof`]; it serializes every data command, read
//!   or write, commits the log once per batch of jobs (group commit), runs
//!   the periodic duties (active expiry, everysec fsync) and has the log
//!   rewritten on a thread of its own without stopping service.
//! - **Accept loops** (this module): one on dom0 and one per other worker
//!   (`parallel`, through `serve_on_every_worker`), all accepting on one
//!   listening socket, bound exclusively (no `SO_REUSEPORT`): each worker
//!   has a duplicate of its descriptor registered with its own epoll, and
//!   a worker woken for a connection another one accepted waits again. A
//!   second server on the same address therefore fails to start
//!   (`address in use`) instead of silently taking a share of the
//!   connections (and the passwords sent on them). Each
//!   client is a task in the loop's [`Orphans`] set, collected with
//!   `care()` before every accept.
//! - **Client handlers** (`client.rs`): decode and parse a pipeline, answer
//!   connection commands themselves (`command::Session`), send the data
//!   commands of the batch to the storage task as one job, write every
//!   reply with one `write`.
//! - **Operations** (`ops.rs`, `registry.rs`, `monitor.rs`, `stats.rs`,
//!   `slowlog.rs`, `storage/admin.rs`): the registry of live connections
//!   across workers (CLIENT LIST / KILL; a kill is a switch the victim's
//!   handler races, never its socket closed from outside), the settings
//!   CONFIG SET changes live, MONITOR's bounded fan-out, the error and
//!   per-command counts INFO shows, the slow log, and SAVE / BGREWRITEAOF /
//!   DEBUG, which the storage task runs since they need the store or the
//!   log. Each request is timed where it runs (the storage task for data
//!   commands, the handler for connection commands), so SLOWLOG and
//!   commandstats see execution, never the wait in the queue.
//!
//! # What one client can cost
//!
//! No client can take the server down (`client.rs` has the details):
//! replies are made and written in rounds of about [`ROUND_REPLY_BYTES`],
//! and requests are not read while a round is unsent, so a client that
//! never reads holds one round; `client-output-buffer-limit` disconnects a
//! client whose single reply is too big (sized before it is built) or stays
//! unsent too long; before AUTH a connection buffers at most a few KiB;
//! wrong passwords are answered later and later, then the connection is
//! closed (`auth-max-failures`, counted per connection and per address);
//! `timeout` closes idle connections; `maxclients` is lowered to fit the
//! open files limit ([`RESERVED_FDS`] kept), so a client past it is told
//! `-ERR max number of clients reached` rather than left unanswered.
//! SIGHUP is ignored (`main.rs`).
//!
//! # The hand-off, and why reads go through it too
//!
//! Handlers (on any worker) send jobs on one bounded `matou::sync` channel
//! (MPMC, used here as MPSC) and get their answers on a
//! `matou::sync::oneshot` per job. The channel's bound ([`QUEUE`]) is
//! backpressure only: each handler has at most one job in flight, so it
//! is reached only with more than [`QUEUE`] busy clients. The storage task
//! does one `recv().await`, then `try_recv`s until the channel is empty:
//! every job queued while it was busy (typically during an fsync) shares
//! the next commit.
//!
//! Reads are not served from a shared copy of the store beside the storage
//! task: a reply must never reveal a write that is not durable yet, and a
//! read on a shared store could see a write executed but not yet
//! committed. Reads take the same queue instead, and are made fast there:
//! parsing happens on the handler's worker (the storage task only
//! executes), a read costs one hash lookup on the task, and a job that saw
//! only committed state (no write before it in its batch) is answered
//! before the batch's fsync, so reads do not queue behind the disk. The
//! queue costs a lock and a wake-up per job, amortized over a whole
//! pipeline (one job per socket read, not per request).
//!
//! `matou::sync` against the hand-made `Mutex<VecDeque>` + waker inbox and
//! per-job reply slot it replaced: the same cost per job (a short lock and
//! a wake-up each way); with redis-benchmark on 2 shared cores the two
//! were within the run-to-run noise (±15%), and the server's CPU time per
//! request within a few percent, so the runtime's primitives are used.
//!
//! What does cost is crossing threads: a client served by a worker other
//! than dom0 pays two cross-thread wake-ups per batch (job, reply). Hence
//! the default worker count (`config::default_workers`): on small machines
//! every client is served on dom0, beside the storage task, where a job
//! and its reply are plain run-queue pushes.
//!
//! # Shutdown
//!
//! SIGINT, SIGTERM or `SHUTDOWN` flip one [`Stop`] switch: the accept loops
//! stop accepting; each handler finishes the batch it is executing (the
//! storage task is still running), replies, then closes; the loops wait for
//! their clients (up to [`DRAIN`], then cancel them); then the job channel
//! is closed and the storage task drains it, completes a rewrite in
//! progress, fsyncs the log whatever the policy, and returns.

mod blocking;
mod client;
pub mod memory;
mod monitor;
pub mod notify;
mod ops;
pub mod pubsub;
mod registry;
mod slowlog;
mod stats;
mod storage;
mod txn;

pub use client::ROUND_REPLY_BYTES;
pub use storage::TICK;

use crate::aof::Aof;
use crate::command::InfoData;
use crate::config::Config;
use crate::databases::Databases;
use matou::sync::Sender;
use matou::unix::net::{serve_on_every_worker, TcpListener, TcpStream};
use matou::unix::time;
use matou::{race, Care, Either, Orphans};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long shutdown waits for clients to finish their batch before
/// cancelling them.
pub const DRAIN: Duration = Duration::from_secs(5);
/// Capacity of the job channel (see the module docs).
pub const QUEUE: usize = 1024;

/// Milliseconds since the Unix epoch (the store's clock, so that expiry
/// times in the log mean the same across restarts).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The stop switch.

#[derive(Default)]
struct StopState {
    stopped: bool,
    next: u64,
    waiters: HashMap<u64, Waker>,
}

/// A cross-thread stop latch that every client awaits while idle. Unlike
/// `matou::unix::echo::Stop`, a waiter unregisters when its future is
/// dropped, so the set holds only the tasks waiting right now: it neither
/// grows with every connection ever served nor makes each read scan it.
#[derive(Clone, Default)]
pub struct Stop(Arc<Mutex<StopState>>);

impl Stop {
    fn lock(&self) -> std::sync::MutexGuard<'_, StopState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A switch not flipped yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Flips the switch and wakes every waiter (from any thread).
    pub fn trigger(&self) {
        let waiters = {
            let mut s = self.lock();
            s.stopped = true;
            std::mem::take(&mut s.waiters)
        };
        waiters.into_values().for_each(Waker::wake);
    }

    /// Whether the switch was flipped.
    pub fn is_triggered(&self) -> bool {
        self.lock().stopped
    }

    /// Waits until the switch is flipped.
    pub fn wait(&self) -> StopWait<'_> {
        StopWait {
            stop: self,
            id: None,
        }
    }
}

/// [`Stop::wait`]'s future.
pub struct StopWait<'a> {
    stop: &'a Stop,
    id: Option<u64>,
}

impl Future for StopWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.stop.lock();
        if s.stopped {
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                s.next += 1;
                s.next
            }
        };
        s.waiters.insert(id, cx.waker().clone());
        drop(s);
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for StopWait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.stop.lock().waiters.remove(&id);
        }
    }
}

// ---------------------------------------------------------------------------
// State shared by every task.

/// What every accept loop and handler sees.
struct Shared {
    /// The configuration at start (CONFIG SET changes `live`, not this).
    config: Config,
    /// The settings CONFIG SET may change, and what connection commands
    /// see of the configuration.
    live: ops::Live,
    /// Every live connection (CLIENT LIST / KILL).
    registry: registry::Registry,
    /// Error replies, for INFO.
    errors: stats::ErrorStats,
    /// Calls per command, for INFO commandstats.
    command_stats: stats::CommandStats,
    /// SLOWLOG's entries.
    slowlog: slowlog::SlowLog,
    /// MONITOR connections.
    monitors: monitor::Monitors,
    jobs: Sender<storage::Job>,
    stop: Stop,
    started: Instant,
    port: u16,
    clients: AtomicUsize,
    next_client_id: AtomicU64,
    connections: AtomicU64,
    commands: AtomicU64,
    rejected: AtomicU64,
    /// Wrong passwords per client address (see [`Shared::auth_failed`]).
    auth_failures: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
    /// maxmemory and its policy, live (see `memory`).
    memory: Arc<memory::Memory>,
    /// Every subscription, on any worker (see `pubsub`).
    pubsub: Arc<pubsub::Registry>,
}

/// How long an address's count of wrong passwords lasts after its last
/// one.
pub const AUTH_FAILURES_FORGOTTEN: Duration = Duration::from_secs(60);
/// Addresses tracked at most (a flood of addresses cannot grow the table
/// without bound; the oldest are forgotten first).
const AUTH_FAILURES_TRACKED: usize = 10_000;

impl Shared {
    /// Counts one wrong password from `ip`; returns the address's count in
    /// the last [`AUTH_FAILURES_FORGOTTEN`] (reconnecting does not reset it).
    fn auth_failed(&self, ip: std::net::IpAddr) -> u32 {
        let now = Instant::now();
        let mut map = self.auth_failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= AUTH_FAILURES_TRACKED {
            map.retain(|_, (_, last)| now.duration_since(*last) < AUTH_FAILURES_FORGOTTEN);
            if map.len() >= AUTH_FAILURES_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= AUTH_FAILURES_FORGOTTEN {
            entry.0 = 0;
        }
        *entry = (entry.0.saturating_add(1), now);
        entry.0
    }

    /// CONFIG RESETSTAT: zeroes the server-wide counters (the storage's
    /// `expired_keys` is its own and stays).
    fn reset_stats(&self) {
        self.connections.store(0, Ordering::Relaxed);
        self.commands.store(0, Ordering::Relaxed);
        self.rejected.store(0, Ordering::Relaxed);
        self.errors.reset();
        self.command_stats.reset();
    }

    /// Fills INFO's server, clients and stats figures.
    fn fill_info(&self, d: &mut InfoData) {
        d.port = self.port;
        d.uptime_secs = self.started.elapsed().as_secs();
        d.workers = self.config.workers + 1;
        d.connected_clients = self.clients.load(Ordering::Relaxed);
        d.maxclients = self.live.maxclients();
        d.total_connections = self.connections.load(Ordering::Relaxed);
        d.total_commands = self.commands.load(Ordering::Relaxed);
        d.rejected_connections = self.rejected.load(Ordering::Relaxed);
        (d.total_error_replies, d.errorstats) = self.errors.snapshot();
        d.cpu = stats::cpu_times();
        d.commandstats = self
            .command_stats
            .snapshot()
            .into_iter()
            .map(|(name, s)| (name, s.calls, s.usec, s.rejected, s.failed))
            .collect();
        let (tracking, percentiles) = {
            let view = self.live.view();
            let param = |n: &str| {
                view.params
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (
                param("latency-tracking") == "yes",
                crate::config::percentiles(&param("latency-tracking-info-percentiles"))
                    .unwrap_or_default(),
            )
        };
        if tracking {
            d.latencystats = self.command_stats.latencies(&percentiles);
        }
    }
}

// ---------------------------------------------------------------------------
// Accept loops.

/// How long a refused client's requests are read (and dropped) after its
/// error, at most.
const REFUSAL_LINGER: Duration = Duration::from_millis(250);

/// Refuses a client over `maxclients`.
///
/// The error is written, then the write side shut, then what the client
/// sent is read and dropped until it closes (or [`REFUSAL_LINGER`], or
/// 64 KiB): closing a socket with unread bytes makes the kernel answer with
/// a reset, which can reach the client before it has read the error (it
/// then sees "connection reset" instead of the reason).
async fn refuse(stream: TcpStream) -> io::Result<()> {
    let mut wire = Vec::new();
    crate::resp::Reply::err("ERR max number of clients reached").encode(&mut wire);
    stream.write_all(&wire).await?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = time::timeout(REFUSAL_LINGER, drain).await;
    Ok(())
}

/// Collects every finished client.
fn clean_up(orphans: &Orphans<io::Result<()>>) -> io::Result<Vec<matou::Promise<io::Result<()>>>> {
    let mut done = Vec::new();
    while let Care::Ready(p) = orphans.care().map_err(io::Error::other)? {
        done.push(p);
    }
    Ok(done)
}

/// One accept loop (one per worker) until the stop switch flips; then waits
/// for its clients (up to [`DRAIN`]) and cancels the rest.
async fn serve(listener: TcpListener, shared: Arc<Shared>) -> io::Result<()> {
    let orphans: Orphans<io::Result<()>> = Orphans::new();
    let mut stopped = pin!(shared.stop.wait());
    let result = loop {
        match clean_up(&orphans) {
            Ok(done) => {
                for p in done {
                    // A client's failure is that client's business.
                    let _ = p.await;
                }
            }
            Err(e) => break Err(e),
        }
        let mut accept = pin!(listener.accept());
        match race(stopped.as_mut(), accept.as_mut()).await {
            Either::Left(()) => break Ok(()),
            Either::Right(Ok((stream, _addr))) => {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let spawned =
                    if shared.clients.fetch_add(1, Ordering::SeqCst) >= shared.live.maxclients() {
                        shared.clients.fetch_sub(1, Ordering::SeqCst);
                        shared.rejected.fetch_add(1, Ordering::Relaxed);
                        orphans.spawn(refuse(stream))
                    } else {
                        orphans.spawn(client::handle(stream, shared.clone()))
                    };
                if let Err(e) = spawned {
                    break Err(io::Error::other(e));
                }
            }
            Either::Right(Err(e)) => {
                // EMFILE, ECONNABORTED...: a bad moment, not a reason to stop
                // serving; back off a little so as not to spin.
                eprintln!("matou-kv: accept: {e}");
                time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    drop(listener);
    let deadline = Instant::now() + DRAIN;
    loop {
        match time::timeout_at(deadline, orphans.get()).await {
            Ok(Ok(Some(p))) => {
                let _ = p.await;
            }
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(e)) => return Err(io::Error::other(e)),
        }
    }
    while let Some(p) = orphans.take().map_err(io::Error::other)? {
        let _ = p.cancel().await;
    }
    result
}

/// One worker's loop, logging its failure (`serve_on_every_worker` then
/// stops the others).
async fn serve_logged(listener: TcpListener, shared: Arc<Shared>) -> io::Result<()> {
    let r = serve(listener, shared).await;
    if let Err(e) = &r {
        eprintln!("matou-kv: accept loop failed: {e}");
    }
    r
}

/// Descriptors kept out of `maxclients` for the log, its rewrite, the
/// listeners and the reactors (Redis keeps 32 too).
pub const RESERVED_FDS: usize = 32;

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits`
/// (`None` when unknown or unlimited).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs the server until shutdown: to be called inside a run of
/// `matou::builder()` (on dom0), with the store already replayed from
/// `aof`.
///
/// # Errors
/// Binding the address, or an accept loop that failed (after a clean stop of
/// everything else, the log included).
pub async fn run(mut config: Config, store: Databases, aof: Aof) -> io::Result<()> {
    if let Some(fit) = open_files_limit().map(|n| n.saturating_sub(RESERVED_FDS).max(1)) {
        if fit < config.maxclients {
            eprintln!(
                "matou-kv: maxclients lowered from {} to {fit}: the open files limit is {} \
                 ({RESERVED_FDS} kept for the log and the server)",
                config.maxclients,
                fit + RESERVED_FDS
            );
            config.maxclients = fit;
        }
    }
    let ip: std::net::IpAddr = config
        .bind
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad bind address"))?;
    let wanted = SocketAddr::new(ip, config.port);
    let listener = TcpListener::bind(wanted).map_err(|e| {
        let what = if e.kind() == io::ErrorKind::AddrInUse {
            "address in use (is another server running on this port?)".to_string()
        } else {
            e.to_string()
        };
        io::Error::new(
            e.kind(),
            format!("cannot listen on {wanted} (port {}): {what}", wanted.port()),
        )
    })?;
    let addr = listener.local_addr()?;
    let (jobs, queue) = matou::sync::channel(QUEUE);
    let memory = Arc::new(memory::Memory::new(config.memory));
    let pubsub = pubsub::Registry::new();
    let notifier = Arc::new(notify::Notifier::new(pubsub.clone()));
    let pubsub_limit = pubsub::LiveLimit::new(config.pubsub_limit);
    let shared = Arc::new(Shared {
        live: ops::Live::new(
            &config,
            addr.port(),
            memory.clone(),
            pubsub_limit,
            notifier.clone(),
        ),
        pubsub,
        registry: registry::Registry::default(),
        errors: stats::ErrorStats::default(),
        command_stats: stats::CommandStats::default(),
        slowlog: slowlog::SlowLog::default(),
        monitors: monitor::Monitors::default(),
        config,
        jobs,
        stop: Stop::new(),
        started: Instant::now(),
        port: addr.port(),
        clients: AtomicUsize::new(0),
        next_client_id: AtomicU64::new(1),
        connections: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        auth_failures: Mutex::new(HashMap::new()),
        memory,
    });
    let storage = matou::spawn(storage::run(
        store,
        aof,
        queue,
        shared.memory.clone(),
        notifier,
        shared.live.fsync_cell(),
    ));
    let signals = matou::spawn({
        let stop = shared.stop.clone();
        async move {
            let mut stopped = pin!(stop.wait());
            let mut signal = pin!(matou::unix::signal::shutdown());
            if let Either::Right(r) = race(stopped.as_mut(), signal.as_mut()).await {
                match r {
                    Ok(kind) => eprintln!("matou-kv: {kind:?} received, shutting down"),
                    Err(e) => {
                        // No signal handling: only SHUTDOWN stops the server.
                        eprintln!("matou-kv: cannot watch signals: {e}");
                        stop.wait().await;
                    }
                }
                stop.trigger();
            }
        }
    });
    let workers = shared.config.workers + 1;
    eprintln!(
        "matou-kv: ready on {addr} ({workers} worker{}, fsync {})",
        if workers == 1 { "" } else { "s" },
        shared.config.fsync.name()
    );
    // One accept loop per worker (this one included), all on the one
    // listening socket; a loop that cannot start or fails stops them all.
    let served = {
        let (serving, stopping) = (shared.clone(), shared.clone());
        serve_on_every_worker(
            listener,
            move |l| serve_logged(l, serving.clone()),
            move || stopping.stop.trigger(),
        )
        .await
    };
    // Every handler is gone: close the channel so that the storage task
    // drains it, commits, fsyncs and returns.
    shared.jobs.close();
    let stored = storage.await.map_err(io::Error::other).and_then(|r| r);
    shared.stop.trigger();
    let _ = signals.await;
    eprintln!("matou-kv: log synced, bye");
    match (served, stored) {
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        (Ok(_), Ok(())) => Ok(()),
    }
}
