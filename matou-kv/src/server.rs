//! The server: accept loops, client handlers and the storage task.
//!
//! Architecture (one run of `matou::unix::builder()`):
//! - **Storage task** (spawned on dom0): the only owner of the [`Store`] and
//!   of the [`Aof`]. It serializes every data command: it drains every job
//!   queued in its [`Inbox`], executes them in arrival order, appends their
//!   log records, commits once (one write, one fsync under `--fsync always`:
//!   group commit) and only then replies to all of them. So a reply, read or
//!   write, never reveals a state that is not durable yet. Every 100 ms it
//!   also expires keys (`active_expire`, logged as `Del`), runs the everysec
//!   fsync and compacts the log when it doubled.
//! - **Accept loops**: one on dom0 and one per other worker (`parallel`), each
//!   with its own `SO_REUSEPORT` listener on the same address, so the kernel
//!   spreads connections over the workers. Each client is a task in the
//!   loop's [`Orphans`] set, collected with `care()` before every accept.
//! - **Client handlers**: parse every complete request in the buffer
//!   (pipelining), answer connection commands (AUTH, SELECT, CLIENT, CONFIG,
//!   COMMAND, QUIT, SHUTDOWN, HELLO) themselves, send the data commands of
//!   the batch to the storage task as one job, and write all the replies of
//!   the batch with one `write`.
//!
//! The hand-off between handlers (any worker) and the storage task (dom0) is
//! a small cross-thread queue built on std (`Mutex<VecDeque>` + a `Waker`)
//! with a one-shot reply slot per job. It should move to `matou::sync`
//! (channel + oneshot) once that module is settled.
//!
//! Shutdown (SIGINT, SIGTERM or `SHUTDOWN`) flips one [`Stop`] switch: the
//! accept loops stop accepting; each handler finishes the batch it is
//! executing (the storage task is still running), replies, then closes; the
//! loops wait for their clients (up to [`DRAIN`], then cancel them); then the
//! inbox is closed and the storage task drains it, commits, fsyncs the log
//! whatever the policy, and returns.

use crate::aof::Aof;
use crate::command;
use crate::config::Config;
use crate::glob;
use crate::record::LogRecord;
use crate::resp::{Decoder, Limits, Reply};
use crate::store::Store;
use matou::unix::net::{TcpListener, TcpStream};
use matou::unix::time;
use matou::{Care, Orphans};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Period of the storage task's duties (active expiry, everysec fsync).
pub const TICK: Duration = Duration::from_millis(100);
/// Most keys `active_expire` may look at per tick, so that expiry never
/// stalls the commands behind it.
const EXPIRE_WORK: usize = 1000;
/// How long shutdown waits for clients to finish their batch before
/// cancelling them.
pub const DRAIN: Duration = Duration::from_secs(5);
/// Bytes a handler reads at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Milliseconds since the Unix epoch (the store's clock, so that expiry
/// times in the log mean the same across restarts).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The hand-off: handlers -> storage task.

/// One request for the storage task.
#[derive(Debug)]
enum Req {
    /// A data command (its full argument vector).
    Data(Vec<Vec<u8>>),
    /// The keyspace and persistence sections of INFO.
    Info,
}

/// One handler's batch, answered as a whole.
struct Job {
    reqs: Vec<Req>,
    slot: Arc<Slot>,
}

/// A one-shot reply slot: the storage task fills it, the handler awaits it.
#[derive(Default)]
struct Slot(Mutex<(Option<Vec<Reply>>, Option<Waker>)>);

impl Slot {
    fn fill(&self, replies: Vec<Reply>) {
        let waker = {
            let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
            s.0 = Some(replies);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    async fn wait(&self) -> Vec<Reply> {
        std::future::poll_fn(|cx| {
            let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match s.0.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

#[derive(Default)]
struct InboxState {
    jobs: VecDeque<Job>,
    waker: Option<Waker>,
    closed: bool,
}

/// The storage task's queue (multi-producer, single consumer).
#[derive(Default)]
struct Inbox(Mutex<InboxState>);

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a job; `false` once the inbox is closed.
    fn push(&self, job: Job) -> bool {
        let waker = {
            let mut s = self.lock();
            if s.closed {
                return false;
            }
            s.jobs.push_back(job);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    fn close(&self) {
        let waker = {
            let mut s = self.lock();
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Waits until a job is queued or the inbox is closed.
    async fn ready(&self) {
        std::future::poll_fn(|cx| {
            let mut s = self.lock();
            if !s.jobs.is_empty() || s.closed {
                Poll::Ready(())
            } else {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Everything queued, and whether the inbox is closed.
    fn drain(&self) -> (Vec<Job>, bool) {
        let mut s = self.lock();
        (s.jobs.drain(..).collect(), s.closed)
    }
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
    config: Config,
    limits: Limits,
    inbox: Inbox,
    stop: Stop,
    started: Instant,
    port: u16,
    clients: AtomicUsize,
    next_client_id: AtomicU64,
    connections: AtomicU64,
    commands: AtomicU64,
    rejected: AtomicU64,
}

/// Counts a connected client while alive (also when its task is cancelled).
struct ClientGuard<'a>(&'a AtomicUsize);

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls `a` then `b` until one is ready (a two-way race inside one task).
struct First<'a, A, B> {
    a: Pin<&'a mut A>,
    b: Pin<&'a mut B>,
}

impl<A: Future, B: Future> Future for First<'_, A, B> {
    type Output = Either<A::Output, B::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        self.b.as_mut().poll(cx).map(Either::Right)
    }
}

// ---------------------------------------------------------------------------
// The storage task.

fn fatal(what: &str, e: io::Error) -> ! {
    // The store already holds writes the log refused: replying (even with an
    // error) or carrying on would break the durability promise. Redis exits
    // too under `appendfsync always`.
    eprintln!("matou-kv: FATAL: cannot {what} the append-only log: {e}; exiting");
    std::process::exit(1);
}

/// The INFO keyspace and persistence sections (they need the store).
fn storage_info(store: &Store, aof: &Aof) -> String {
    let keys = store.len();
    let expires = store.expires_len();
    let mut s = String::from("# Persistence\r\nloading:0\r\naof_enabled:1\r\n");
    s.push_str(&format!(
        "aof_fsync:{}\r\naof_current_size:{}\r\naof_base_size:{}\r\naof_rewrites:{}\r\n\
         aof_last_write_status:ok\r\nrdb_changes_since_last_save:0\r\n\r\n# Keyspace\r\n",
        aof.policy().name(),
        aof.size(),
        aof.base_size(),
        aof.rewrites()
    ));
    if keys > 0 {
        s.push_str(&format!("db0:keys={keys},expires={expires},avg_ttl=0\r\n"));
    }
    s
}

/// Owns the store and the log until the inbox is closed and drained.
async fn storage(mut store: Store, mut aof: Aof, shared: Arc<Shared>) -> io::Result<()> {
    let mut next_tick = Instant::now() + TICK;
    // The store's clock never goes backwards (a wall-clock step back would
    // otherwise revive expired keys): keep the maximum seen.
    let mut clock = now_ms();
    loop {
        // Either work arrived or it is time for the periodic duties.
        let _ = time::timeout_at(next_tick, shared.inbox.ready()).await;
        let (jobs, closed) = shared.inbox.drain();
        if !jobs.is_empty() {
            clock = clock.max(now_ms());
            let now = clock;
            let mut answered = Vec::with_capacity(jobs.len());
            for job in jobs {
                let mut replies = Vec::with_capacity(job.reqs.len());
                for req in &job.reqs {
                    replies.push(match req {
                        Req::Data(args) => {
                            let (reply, record) = command::execute(&mut store, args, now);
                            if let Some(r) = &record {
                                aof.append(r);
                            }
                            reply
                        }
                        Req::Info => Reply::Bulk(storage_info(&store, &aof).into_bytes()),
                    });
                }
                answered.push((job.slot, replies));
            }
            // Group commit: one write + one fsync for every write drained,
            // and only then any reply.
            if let Err(e) = aof.commit() {
                fatal("write", e);
            }
            for (slot, replies) in answered {
                slot.fill(replies);
            }
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK;
            clock = clock.max(now_ms());
            let removed = store.active_expire(clock, EXPIRE_WORK);
            if !removed.is_empty() {
                aof.append(&LogRecord::Del { keys: removed });
                if let Err(e) = aof.commit() {
                    fatal("write", e);
                }
            }
            if let Err(e) = aof.tick() {
                fatal("fsync", e);
            }
        }
        if aof.needs_rewrite() {
            let before = aof.size();
            match aof.rewrite(&store) {
                Ok(()) => eprintln!("matou-kv: log rewritten: {before} -> {} bytes", aof.size()),
                // The old log is intact: keep appending to it, retry later.
                Err(e) => eprintln!("matou-kv: log rewrite failed: {e}"),
            }
        }
        if closed {
            // Closed is only set once every handler is gone: nothing more
            // can arrive, and the drain above took the last jobs.
            if let Err(e) = aof.sync() {
                fatal("fsync", e);
            }
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------
// Client handlers.

/// One connection's state.
struct Client {
    id: u64,
    authed: bool,
    name: Option<Vec<u8>>,
    addr: SocketAddr,
}

/// Where the reply to one request of a batch comes from.
enum Out {
    Ready(Reply),
    /// The n-th reply of the storage job.
    Storage(usize),
    /// INFO: the handler's sections plus the storage's (n-th reply).
    Info(Option<String>, usize),
}

/// An error reply with its code spelled out (`ERR ...`, `NOAUTH ...`).
fn error(msg: impl Into<Cow<'static, str>>) -> Reply {
    Reply::Error(msg.into())
}

fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

fn wrong_args(name: &str) -> Reply {
    error(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

impl Shared {
    /// The parameters CONFIG GET knows.
    fn config_params(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        vec![
            ("save", String::new()),
            ("appendonly", "yes".into()),
            ("appendfsync", c.fsync.name().into()),
            ("port", self.port.to_string()),
            ("bind", c.bind.clone()),
            ("dir", c.dir.display().to_string()),
            ("databases", "1".into()),
            ("maxclients", c.maxclients.to_string()),
            ("proto-max-bulk-len", c.max_request_bytes.to_string()),
            ("requirepass", c.requirepass.clone().unwrap_or_default()),
            ("timeout", "0".into()),
        ]
    }

    /// The INFO sections the handler knows (server, clients, stats).
    fn info_local(&self) -> String {
        format!(
            "# Server\r\nredis_version:7.0.0\r\nmatou_kv_version:{}\r\nredis_mode:standalone\r\n\
             os:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n\
             executor:matou\r\nworkers:{}\r\n\r\n\
             # Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n\
             # Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             rejected_connections:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            self.port,
            self.started.elapsed().as_secs(),
            self.config.workers + 1,
            self.clients.load(Ordering::SeqCst),
            self.config.maxclients,
            self.connections.load(Ordering::SeqCst),
            self.commands.load(Ordering::SeqCst),
            self.rejected.load(Ordering::SeqCst),
        )
    }
}

/// Builds the INFO text, keeping only `section` if given.
fn info_text(local: &str, storage: &[u8], section: Option<&str>) -> Vec<u8> {
    let all = format!("{local}{}", String::from_utf8_lossy(storage));
    let section = section.map(str::to_ascii_lowercase);
    match section.as_deref() {
        None | Some("all" | "everything" | "default") => all.into_bytes(),
        Some(want) => {
            let mut out = String::new();
            for block in all.split("\r\n\r\n") {
                let title = block.lines().next().unwrap_or("");
                if title.trim_start_matches("# ").eq_ignore_ascii_case(want) {
                    out.push_str(block.trim_end());
                    out.push_str("\r\n");
                }
            }
            out.into_bytes()
        }
    }
}

/// What a connection command asks of the handler besides its reply.
#[derive(PartialEq, Eq)]
enum After {
    Continue,
    /// Reply, then close (QUIT).
    Close,
    /// Stop the server, close without reply (SHUTDOWN).
    Shutdown,
}

impl Client {
    /// Answers `args` if it is a connection command; `None` sends it to the
    /// storage task.
    fn connection(
        &mut self,
        shared: &Shared,
        args: &[Vec<u8>],
        out: &mut Vec<Out>,
        reqs: &mut Vec<Req>,
    ) -> Option<After> {
        let name = upper(&args[0]);
        let n = args.len();
        let reply = match name.as_str() {
            "AUTH" => match (&shared.config.requirepass, n) {
                (_, 2 | 3) if shared.config.requirepass.is_none() => error(
                    "ERR AUTH <password> called without any password configured for the \
                     default user. Are you sure your configuration is correct?",
                ),
                (Some(pw), 2 | 3) => {
                    let user_ok = n == 2 || args[1] == b"default";
                    if user_ok && args[n - 1] == pw.as_bytes() {
                        self.authed = true;
                        Reply::ok()
                    } else {
                        error("WRONGPASS invalid username-password pair or user is disabled.")
                    }
                }
                _ => error("ERR syntax error"),
            },
            "HELLO" => self.hello(shared, args),
            "QUIT" => {
                out.push(Out::Ready(Reply::ok()));
                return Some(After::Close);
            }
            _ if !self.authed => {
                // Every other command, data commands included.
                out.push(Out::Ready(error("NOAUTH Authentication required.")));
                return Some(After::Continue);
            }
            "PING" if n <= 2 => match args.get(1) {
                None => Reply::Simple("PONG".into()),
                Some(m) => Reply::Bulk(m.clone()),
            },
            "PING" => wrong_args(&name),
            "ECHO" if n == 2 => Reply::Bulk(args[1].clone()),
            "ECHO" => wrong_args(&name),
            "SELECT" if n == 2 => match std::str::from_utf8(&args[1]).map(str::parse::<i64>) {
                Ok(Ok(0)) => Reply::ok(),
                Ok(Ok(_)) => error("ERR DB index is out of range"),
                _ => error("ERR value is not an integer or out of range"),
            },
            "SELECT" => wrong_args(&name),
            "CLIENT" => self.client_cmd(args),
            "CONFIG" => match args.get(1).map(|a| upper(a)).as_deref() {
                Some("GET") if n >= 3 => {
                    let mut items = Vec::new();
                    for (k, v) in shared.config_params() {
                        if args[2..]
                            .iter()
                            .any(|p| glob::matches_nocase(p, k.as_bytes()))
                        {
                            items.push(Reply::Bulk(k.as_bytes().to_vec()));
                            items.push(Reply::Bulk(v.into_bytes()));
                        }
                    }
                    Reply::Array(items)
                }
                Some("RESETSTAT") => Reply::ok(),
                Some("SET") => error("ERR CONFIG SET is not supported by matou-kv"),
                _ => error("ERR unknown subcommand or wrong number of arguments for 'config'"),
            },
            "COMMAND" => match args.get(1).map(|a| upper(a)).as_deref() {
                Some("COUNT") => Reply::Integer(0),
                // redis-cli only uses it for hints: an empty answer is enough.
                _ => Reply::Array(Vec::new()),
            },
            "INFO" => {
                let section = args.get(1).map(|s| String::from_utf8_lossy(s).into_owned());
                out.push(Out::Info(section, reqs.len()));
                reqs.push(Req::Info);
                return Some(After::Continue);
            }
            "SHUTDOWN" => return Some(After::Shutdown),
            _ => return None,
        };
        out.push(Out::Ready(reply));
        Some(After::Continue)
    }

    fn hello(&mut self, shared: &Shared, args: &[Vec<u8>]) -> Reply {
        let mut i = 1;
        if let Some(v) = args.get(1) {
            match std::str::from_utf8(v).map(str::parse::<i64>) {
                Ok(Ok(2)) => {}
                Ok(Ok(_)) => return error("NOPROTO unsupported protocol version"),
                _ => return error("ERR Protocol version is not an integer or out of range"),
            }
            i = 2;
        }
        while i < args.len() {
            match upper(&args[i]).as_str() {
                "AUTH" if i + 2 < args.len() => {
                    let ok = args[i + 1] == b"default"
                        && shared
                            .config
                            .requirepass
                            .as_ref()
                            .is_some_and(|pw| args[i + 2] == pw.as_bytes());
                    if !ok {
                        return error(
                            "WRONGPASS invalid username-password pair or user is disabled.",
                        );
                    }
                    self.authed = true;
                    i += 3;
                }
                "SETNAME" if i + 1 < args.len() => {
                    self.name = Some(args[i + 1].clone());
                    i += 2;
                }
                _ => return error("ERR syntax error in HELLO option"),
            }
        }
        if !self.authed {
            return error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        }
        let b = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
        Reply::Array(vec![
            b("server"),
            b("redis"),
            b("version"),
            b("7.0.0"),
            b("proto"),
            Reply::Integer(2),
            b("id"),
            Reply::Integer(self.id as i64),
            b("mode"),
            b("standalone"),
            b("role"),
            b("master"),
            b("modules"),
            Reply::Array(Vec::new()),
        ])
    }

    fn client_cmd(&mut self, args: &[Vec<u8>]) -> Reply {
        match args.get(1).map(|a| upper(a)).as_deref() {
            Some("SETNAME") if args.len() == 3 => {
                if args[2].iter().any(|&c| c <= b' ' || c > b'~') {
                    return error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                self.name = (!args[2].is_empty()).then(|| args[2].clone());
                Reply::ok()
            }
            Some("GETNAME") if args.len() == 2 => match &self.name {
                Some(n) => Reply::Bulk(n.clone()),
                None => Reply::Nil,
            },
            Some("ID") if args.len() == 2 => Reply::Integer(self.id as i64),
            Some("SETINFO") if args.len() == 4 => Reply::ok(),
            Some("INFO") if args.len() == 2 => Reply::Bulk(
                format!(
                    "id={} addr={} name={} db=0\n",
                    self.id,
                    self.addr,
                    String::from_utf8_lossy(self.name.as_deref().unwrap_or_default())
                )
                .into_bytes(),
            ),
            _ => error("ERR unknown subcommand or wrong number of arguments for 'client'"),
        }
    }
}

/// Serves one client until it closes, QUITs, errs, or the server stops.
async fn handle(stream: TcpStream, addr: SocketAddr, shared: Arc<Shared>) -> io::Result<()> {
    let _guard = ClientGuard(&shared.clients);
    let mut client = Client {
        id: shared.next_client_id.fetch_add(1, Ordering::SeqCst),
        authed: shared.config.requirepass.is_none(),
        name: None,
        addr,
    };
    // Requests are read straight into the tail of `buf`: one buffer per
    // client, sized by what the client sends (bounded by the parser limits).
    let mut buf: Vec<u8> = Vec::new();
    // Resumable: a big request arriving in many reads is not re-parsed from
    // its start at each one.
    let mut decoder = Decoder::new(shared.limits);
    let mut wire = Vec::new();
    loop {
        // Between batches only: a batch in flight is always finished.
        if shared.stop.is_triggered() {
            return Ok(());
        }
        let filled = buf.len();
        buf.resize(filled + READ_CHUNK, 0);
        let n = {
            let mut stopped = pin!(shared.stop.wait());
            let mut read = pin!(stream.read(&mut buf[filled..]));
            match (First {
                a: stopped.as_mut(),
                b: read.as_mut(),
            })
            .await
            {
                Either::Left(()) => return Ok(()),
                Either::Right(r) => r?,
            }
        };
        buf.truncate(filled + n);
        if n == 0 {
            return Ok(());
        }

        let mut outs = Vec::new();
        let mut reqs = Vec::new();
        let mut after = After::Continue;
        let mut consumed = 0;
        let mut bad = None;
        while after == After::Continue {
            match decoder.decode(&buf[consumed..]) {
                Ok(Some((args, used))) => {
                    consumed += used;
                    if args.is_empty() {
                        continue;
                    }
                    shared.commands.fetch_add(1, Ordering::Relaxed);
                    match client.connection(&shared, &args, &mut outs, &mut reqs) {
                        Some(a) => after = a,
                        None => {
                            outs.push(Out::Storage(reqs.len()));
                            reqs.push(Req::Data(args));
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        buf.drain(..consumed);

        let mut replies = Vec::new();
        if !reqs.is_empty() {
            let slot = Arc::new(Slot::default());
            if !shared.inbox.push(Job {
                reqs,
                slot: slot.clone(),
            }) {
                // The storage task is gone (shutdown): nothing to answer with.
                return Ok(());
            }
            replies = slot.wait().await;
        }
        let mut replies: Vec<Option<Reply>> = replies.into_iter().map(Some).collect();
        wire.clear();
        let mut local = None;
        for o in outs {
            let r = match o {
                Out::Ready(r) => r,
                Out::Storage(i) => replies[i].take().unwrap_or(Reply::Nil),
                Out::Info(section, i) => {
                    let storage = match replies[i].take() {
                        Some(Reply::Bulk(b)) => b,
                        _ => Vec::new(),
                    };
                    let local = local.get_or_insert_with(|| shared.info_local());
                    Reply::Bulk(info_text(local, &storage, section.as_deref()))
                }
            };
            r.encode(&mut wire);
        }
        if let Some(msg) = &bad {
            msg.reply().encode(&mut wire);
        }
        if !wire.is_empty() {
            stream.write_all(&wire).await?;
        }
        // Keep a huge buffer from staying allocated after a big request.
        if buf.is_empty() && buf.capacity() > 4 * READ_CHUNK {
            buf = Vec::new();
        }
        match after {
            After::Continue if bad.is_none() => {}
            After::Shutdown => {
                shared.stop.trigger();
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
}

/// Refuses a client over `maxclients`.
async fn refuse(stream: TcpStream) -> io::Result<()> {
    let mut wire = Vec::new();
    error("ERR max number of clients reached").encode(&mut wire);
    stream.write_all(&wire).await
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
        match (First {
            a: stopped.as_mut(),
            b: accept.as_mut(),
        })
        .await
        {
            Either::Left(()) => break Ok(()),
            Either::Right(Ok((stream, addr))) => {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let spawned =
                    if shared.clients.fetch_add(1, Ordering::SeqCst) >= shared.config.maxclients {
                        shared.clients.fetch_sub(1, Ordering::SeqCst);
                        shared.rejected.fetch_add(1, Ordering::Relaxed);
                        orphans.spawn(refuse(stream))
                    } else {
                        orphans.spawn(handle(stream, addr, shared.clone()))
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

/// One worker's loop; a loop that cannot start or fails stops the others.
async fn serve_or_stop(listener: io::Result<TcpListener>, shared: Arc<Shared>) -> io::Result<()> {
    let r = match listener {
        Ok(l) => serve(l, shared.clone()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &r {
        eprintln!("matou-kv: accept loop failed: {e}");
        shared.stop.trigger();
    }
    r
}

/// Runs the server until shutdown: to be called inside a run of
/// `matou::unix::builder()` (on dom0), with the store already replayed from
/// `aof`.
///
/// # Errors
/// Binding the address, or an accept loop that failed (after a clean stop of
/// everything else, the log included).
pub async fn run(config: Config, store: Store, aof: Aof) -> io::Result<()> {
    let ip: std::net::IpAddr = config
        .bind
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad bind address"))?;
    let listener = TcpListener::options()
        .reuse_port(true)
        .bind(SocketAddr::new(ip, config.port))?;
    let addr = listener.local_addr()?;
    let max_request = config.max_request_bytes;
    let shared = Arc::new(Shared {
        limits: Limits {
            max_bulk: max_request,
            max_args: config.max_args,
            max_inline: max_request.min(64 * 1024),
        },
        config,
        inbox: Inbox::default(),
        stop: Stop::new(),
        started: Instant::now(),
        port: addr.port(),
        clients: AtomicUsize::new(0),
        next_client_id: AtomicU64::new(1),
        connections: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let storage = matou::spawn(storage(store, aof, shared.clone()));
    let signals = matou::spawn({
        let stop = shared.stop.clone();
        async move {
            let mut stopped = pin!(stop.wait());
            let mut signal = pin!(matou::unix::signal::shutdown());
            if let Either::Right(r) = (First {
                a: stopped.as_mut(),
                b: signal.as_mut(),
            })
            .await
            {
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
    eprintln!(
        "matou-kv: ready on {addr} ({} workers, fsync {})",
        shared.config.workers + 1,
        shared.config.fsync.name()
    );
    let here = matou::spawn(serve_or_stop(Ok(listener), shared.clone()));
    let mut first_err = None;
    if shared.config.workers > 0 {
        let others = {
            let shared = shared.clone();
            matou::parallel(
                move |()| {
                    serve_or_stop(
                        TcpListener::options().reuse_port(true).bind(addr),
                        shared.clone(),
                    )
                },
                vec![(); matou::worker_count().saturating_sub(1)],
            )
            .await
        };
        match others {
            Ok(results) => {
                for r in results {
                    if let Err(e) = r.map_err(io::Error::other).and_then(|r| r) {
                        first_err.get_or_insert(e);
                    }
                }
            }
            Err(matou::Error::NoDomainAvailable) => {}
            Err(e) => {
                shared.stop.trigger();
                first_err = Some(io::Error::other(e));
            }
        }
    }
    if let Err(e) = here.await.map_err(io::Error::other).and_then(|r| r) {
        first_err.get_or_insert(e);
    }
    // Every handler is gone: close the inbox so that the storage task drains
    // it, commits, fsyncs and returns.
    shared.inbox.close();
    let stored = storage.await.map_err(io::Error::other).and_then(|r| r);
    shared.stop.trigger();
    let _ = signals.await;
    eprintln!("matou-kv: log synced, bye");
    match (first_err, stored) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(()),
    }
}
