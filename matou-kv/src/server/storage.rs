//! The storage task: the one owner of the [`Databases`] and of the [`Aof`].
//!
//! It receives [`Job`]s (one per handler batch) on a bounded
//! `matou::sync` channel and answers each through its `oneshot`. Invariants:
//! - **Serial.** Every command, read or write, runs here, in arrival
//!   order; nothing else touches the store or the log.
//! - **EXEC is one piece.** A transaction's requests run back to back
//!   within its job, so no other client sees half of it, and its records
//!   are appended as one [`LogRecord::Multi`] frame, so no crash or cut log
//!   replays half of it; it is answered after the commit like any write.
//!   Every logged change (and every key a flush or SWAPDB affects) bumps
//!   the WATCH version table (`txn`), which EXEC checks first.
//! - **A script is one piece too** (EVAL, FCALL: `script`): its calls run
//!   back to back, its writes are logged as one record, and a batch that
//!   holds one runs on a thread of its own while this task awaits it, so
//!   that a busy script can be answered around (BUSY, SCRIPT KILL).
//! - **Databases.** Each job runs in its connection's database (a cell
//!   only this task writes, by SELECT, so that SELECT takes effect in
//!   request order, inside a transaction too); records of database `n > 0`
//!   are logged wrapped in [`LogRecord::Db`].
//! - **Group commit.** After one `recv().await` it takes every job already
//!   queued (`try_recv` until empty), executes them, appends their records,
//!   commits once (one `write`, and one `fsync` under `--fsync always`), and
//!   only then answers the jobs that wrote or came after a write of the
//!   batch. So no reply reveals a state that is not durable yet.
//! - **Rounds.** A job's replies stop at its `budget`: once they reach it,
//!   every later request of the job is answered [`Answer::Deferred`] without
//!   running (writes and SELECTs too, so order is kept), and the handler
//!   resends them once the round is written. An EXEC is never split: it
//!   runs whole in the round it starts in, or is deferred whole. The
//!   resent job starts on the database the cell holds, which the SELECTs
//!   that did run set. A rollback leaves deferred requests deferred (they
//!   changed nothing, so they are neither refused nor re-run).
//! - **Reads do not wait for a commit they do not depend on.** A job that
//!   runs while the log has no pending record (no write earlier in the
//!   batch, none of its own) only saw durable state: it is answered at
//!   once, before the batch's fsync.
//! - **The log rewrite never stops service.** When the log doubled, the
//!   task takes a snapshot (pointer copies: keys and values are shared)
//!   and hands it to a plain thread that writes and fsyncs the new file
//!   ([`RewriteJob::run`](crate::aof::RewriteJob::run)); the task keeps serving, the log keeping a copy
//!   of every record appended meanwhile. The thread's result comes back on
//!   a `oneshot` that the task awaits together with its jobs; then
//!   [`Aof::finish_rewrite`] appends that tail, fsyncs, renames over the
//!   log and fsyncs the directory. Until that rename the old log is
//!   complete and authoritative, so a crash at any moment loses nothing
//!   acknowledged.
//!
//!   Why a std thread and not `matou::call`: the job is blocking file I/O
//!   (seconds of `write` and an `fsync` on a big store). On a matou worker
//!   it would stall every connection of that worker, and `call` has no
//!   worker at all to offer with `--workers 0`. A thread blocks only
//!   itself, and owns nothing the task needs: the snapshot is its own.
//! - **A batch whose commit fails changes nothing.** Every change is
//!   executed with its prior state recorded in an [`Undo`] journal, in the
//!   database it changes: a write on the job's database, both databases
//!   of a MOVE, each database a FLUSHALL empties, a SWAPDB (undone by
//!   swapping back), each database's active expiry, and every write of an
//!   EXEC. If the batch's commit fails (a full disk, an I/O error), the log
//!   has cut itself back, the journal takes the whole batch back, and the
//!   held jobs are answered again on the restored databases: their writes
//!   get `-MISCONF`, their reads are executed anew (in the database they
//!   ran in), an EXEC that ran gets `-EXECABORT ... MISCONF ...` as a whole
//!   (its writes were taken back, so none of its answers stands), and the
//!   connection's database is what its SELECTs outside such an EXEC made
//!   it. So no reply reveals a rolled-back value: a client that got an
//!   error changed nothing; one that got a reply other than an error had it
//!   committed. The WATCH versions the rolled-back writes bumped stay
//!   bumped: at worst a later EXEC is aborted although nothing changed,
//!   which WATCH allows (it is optimistic).
//! - **Reads survive a full disk.** While the log refuses writes
//!   ([`Aof::refusal`]) every write is refused up front with `-MISCONF`,
//!   and an EXEC holding any write with `-EXECABORT ... MISCONF ...`
//!   (nothing of it runs, as Redis does); reads are served as usual; each
//!   tick probes the disk ([`Aof::probe`]) and writes resume as soon as
//!   space is back. A failed fsync is the exception: writes stay refused
//!   until restart (see the `aof` module docs), reads go on.
//! - **A rewrite that fails is retried, with backoff** (1 s doubling up to
//!   a minute): the old log stays in use meanwhile. It also checks free
//!   space and reserves it before writing (see `RewriteJob::run`).
//! - **Shutdown.** When the channel is closed and drained the task waits
//!   for a rewrite in progress (and completes it), then commits and fsyncs
//!   whatever the policy.

use super::blocking::{Blocked, Waiters};
use super::memory::{used_memory, EvictionPool, Memory};
use super::notify::Notifier;
use super::now_ms;
use super::txn::Versions;
use crate::aof::{Aof, RewriteOutput, MAX_PAYLOAD};
use crate::command::multi::WatchCell;
use crate::command::ops::StorageOp;
use crate::command::{
    execute_read, execute_write_journaled, read_reply_bound, InfoData, Read, Wait, Write,
    TOO_LARGE_FOR_LOG,
};
use crate::databases::Databases;
use crate::record::LogRecord;
use crate::resp::Reply;
use crate::store::Undo;
use matou::sync::{oneshot, Receiver};
use matou::unix::time;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Period of the storage task's duties (active expiry, everysec fsync).
pub const TICK: Duration = Duration::from_millis(100);
/// Most keys `active_expire` may look at per tick, so that expiry never
/// stalls the commands behind it.
const EXPIRE_WORK: usize = 1000;
/// After a failed rewrite, how long before trying again, doubled at each
/// failure up to [`REWRITE_RETRY_MAX`] (the log goes on growing meanwhile,
/// but a full disk is not hammered with snapshots).
const REWRITE_RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest wait between two rewrite attempts.
const REWRITE_RETRY_MAX: Duration = Duration::from_secs(64);
/// SELECT, MOVE or SWAPDB of a database that does not exist.
const DB_RANGE: &str = "ERR DB index is out of range";

/// One request for the storage task, parsed by the handler.
#[derive(Debug)]
pub(super) enum Req {
    Read(Read),
    Write(Write),
    /// The storage's figures for INFO.
    Info,
    /// WATCH: record these keys' versions in the cell.
    Watch(Vec<Vec<u8>>, WatchCell),
    /// EXEC: unless a key of the cell changed, run these (reads, writes,
    /// INFO, SELECT) in one piece, logged as one record (see
    /// `command::multi`).
    Exec(Vec<Req>, WatchCell),
    /// SELECT: the database of the requests after it, and of the
    /// connection's next jobs.
    Select(i64),
    /// SAVE, BGREWRITEAOF, DEBUG RELOAD...: operations on the store or
    /// the log as a whole (`admin`).
    Admin(StorageOp),
    /// EVAL, FCALL, SCRIPT, FUNCTION (`script`): a script runs in one
    /// piece like an EXEC, its writes logged as one record.
    Script(crate::command::script::ScriptCmd),
}

/// The connection's database, which only the storage task changes (by
/// SELECT), so that it is always the one of the requests in order.
pub(super) type DbCell = Arc<AtomicUsize>;

/// The storage task's answer to one [`Req`].
#[derive(Debug)]
pub(super) enum Answer {
    Reply(Reply),
    /// [`InfoData`] with the storage's fields filled (keyspace, memory,
    /// persistence, expired keys); the handler fills the rest.
    Info(Box<InfoData>),
    /// EXEC's answers, one per request, or `None` if a watched key changed.
    Exec(Option<Vec<Answer>>),
    /// Not run: the job's replies reached its `budget` first. The handler
    /// sends it again, in order, once the replies before it are written.
    Deferred(Req),
    /// Not run: its reply would take this many bytes, over the job's
    /// `reply_limit`; the handler disconnects the client.
    TooLarge(usize),
    /// A blocking command found nothing: the handler waits (see
    /// `blocking`); the rest of the job is [`Answer::Deferred`].
    Blocked(Blocked),
}

/// One handler's batch, answered as a whole, in order.
pub(super) struct Job {
    pub reqs: Vec<Req>,
    /// The connection's database.
    pub db: DbCell,
    /// Reply bytes after which the rest of `reqs` is deferred (answered
    /// [`Answer::Deferred`]): what bounds a batch's memory.
    pub budget: usize,
    /// The largest single reply the client accepts (0: no limit).
    pub reply_limit: usize,
    pub reply: oneshot::Sender<Answered>,
}

/// A job's answers, one per request, and how long each took to run (in
/// nanoseconds; 0 for one that did not run), for SLOWLOG and INFO
/// commandstats.
#[derive(Debug, Default)]
pub(super) struct Answered {
    pub answers: Vec<Answer>,
    pub nanos: Vec<u64>,
}

/// A rewrite whose heavy half runs on its thread.
struct Rewriting {
    done: oneshot::Receiver<io::Result<RewriteOutput>>,
    size_before: u64,
    started: Instant,
}

/// What woke the task up.
enum Event {
    /// A job, or `None` once the channel is closed and drained.
    Job(Option<Job>),
    /// The rewrite thread's result (`Err`: it died without one).
    Rewritten(Result<io::Result<RewriteOutput>, oneshot::RecvError>),
}

/// What a held request was, to answer it again after a rollback.
enum Redo {
    Read(Read),
    Write,
    Info,
    Watch,
    /// SELECT, and the database it selected (`None`: out of range).
    Select(Option<usize>),
    /// An EXEC that ran: answered as a whole with an error.
    Exec,
    /// An EXEC that ran nothing (a watched key changed, or refused): the
    /// same answer (`None`: the nil of an aborted EXEC).
    ExecNotRun(Option<Reply>),
    /// Not run at all ([`Answer::Deferred`], [`Answer::TooLarge`]): the
    /// same answer, so a deferred request is still resent, never refused.
    NotRun,
}

/// Writes one line on stderr, ignoring failure: stderr may be a file on
/// the very disk that is full, and `eprintln!` would panic there.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// A job answered only after the batch's commit.
struct Held {
    reply: oneshot::Sender<Answered>,
    /// The answers if the commit succeeds.
    answers: Vec<Answer>,
    /// How long each request took.
    nanos: Vec<u64>,
    /// What to answer again if it fails.
    redo: Vec<Redo>,
    /// The connection's database cell, and its value at the job's start.
    db: DbCell,
    db_start: usize,
}

/// Redis's error for a write refused because the log cannot be written.
fn misconf(reason: &str) -> Reply {
    Reply::err(misconf_text(reason))
}

fn misconf_text(reason: &str) -> String {
    format!("MISCONF Errors writing to the AOF file: {reason}")
}

/// Redis's answer to an EXEC whose writes the log cannot take (Redis's
/// `execCommandAbort` with the MISCONF error).
fn exec_misconf(reason: &str) -> Reply {
    Reply::err(format!(
        "EXECABORT Transaction discarded because of: {}",
        misconf_text(reason)
    ))
}

struct Storage {
    store: Databases,
    aof: Aof,
    /// The store's clock: the maximum `now_ms` seen, so that a wall-clock
    /// step back never revives expired keys.
    clock: u64,
    expired_keys: u64,
    /// Keys lazy expiry removed in this batch, counted in `expired_keys`
    /// once it commits.
    lazy_expired: u64,
    rewriting: Option<Rewriting>,
    /// What BGSAVE reports (see `bgsave`).
    bgsave: bgsave::BgSave,
    /// No rewrite starts before this instant (set after a failure).
    rewrite_not_before: Instant,
    /// The wait after the next rewrite failure.
    rewrite_backoff: Duration,
    /// Answers held until the batch's commit (reused between batches).
    held: Vec<Held>,
    /// What WATCH compares (see `txn`).
    versions: Versions,
    /// The prior state of what the batch changed (reused between batches).
    undo: Undo,
    /// The memory settings and figures (see `server::memory`).
    memory: Arc<Memory>,
    /// Eviction candidates, kept between evictions.
    pool: EvictionPool,
    /// Unix seconds of the last SAVE or completed rewrite (or the start):
    /// LASTSAVE.
    last_save_unix: u64,
    /// Records logged since then.
    changes_since_save: u64,
    /// The fsync policy CONFIG SET asks for (applied before each batch's
    /// commit and at each tick).
    fsync: super::ops::FsyncCell,
    /// Publishes the keyspace events of committed changes.
    notifier: Arc<Notifier>,
    /// The classes the stores record now ([`Notifier::store_mask`]).
    notify_mask: u32,
    /// The clients blocked on lists and sorted sets (see `blocking`).
    waiters: Waiters,
    /// Waiters served in this batch, answered after its commit.
    served: Vec<Served>,
    /// Keys waited on that may hold a list without the store having
    /// signalled it (a SWAPDB brings a whole database in).
    woken: Vec<(usize, Vec<u8>)>,
    /// The Lua engine (see `script`).
    scripts: script::Scripts,
    /// The batch's jobs not run yet, where a busy script's hook finds
    /// them too (to answer them BUSY: see `script`).
    pending: script::Pending,
}

/// A blocked client served by a pop, its reply held until the commit.
struct Served {
    tx: oneshot::Sender<Reply>,
    reply: Reply,
    db: usize,
    /// The blocking command it served (to give the elements back if the
    /// client is gone by the time of the reply).
    cmd: Wait,
}

/// Owns the store and the log until `jobs` is closed and drained.
pub(super) async fn run(
    mut store: Databases,
    aof: Aof,
    jobs: Receiver<Job>,
    memory: Arc<Memory>,
    notifier: Arc<Notifier>,
    fsync: super::ops::FsyncCell,
) -> io::Result<()> {
    // What the log loaded counts as accessed now (OBJECT IDLETIME).
    let loaded = now_ms();
    for i in 0..store.count() {
        store.db_mut(i).advance(loaded);
    }
    let mut s = Storage {
        store,
        aof,
        clock: now_ms(),
        expired_keys: 0,
        lazy_expired: 0,
        rewriting: None,
        bgsave: bgsave::BgSave::default(),
        rewrite_not_before: Instant::now(),
        rewrite_backoff: REWRITE_RETRY_MIN,
        held: Vec::new(),
        versions: Versions::new(),
        undo: Undo::new(),
        memory,
        pool: EvictionPool::new(),
        waiters: Waiters::default(),
        served: Vec::new(),
        woken: Vec::new(),
        notifier,
        notify_mask: 0,
        last_save_unix: now_ms() / 1000,
        changes_since_save: 0,
        fsync,
        scripts: Err(String::new()),
        pending: script::Pending::default(),
    };
    s.scripts = crate::script::Engine::new(script::busy_poll(jobs.clone(), s.pending.clone()))
        .map_err(|e| e.to_string());
    s.sync_lfu();
    let mut next_tick = Instant::now() + TICK;
    let mut batch = Vec::new();
    loop {
        match time::timeout_at(next_tick, next_event(&jobs, &mut s.rewriting)).await {
            Ok(Event::Job(Some(job))) => {
                batch.push(job);
                // Group commit: everything already queued goes in this batch.
                while let Ok(job) = jobs.try_recv() {
                    batch.push(job);
                }
                if script::runs_script(&batch) {
                    // Off this worker: see `script` (the storage is the
                    // thread's until it sends it back).
                    (s, batch) = script::execute_on_thread(s, batch).await?;
                } else {
                    s.execute(&mut batch);
                }
            }
            Ok(Event::Job(None)) => break,
            Ok(Event::Rewritten(result)) => s.finish_rewrite(result),
            Err(_) => {} // the tick
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK;
            s.tick();
        }
        s.start_scheduled_bgsave();
        s.maybe_start_rewrite();
    }
    // Closed only once every handler is gone: nothing more can arrive.
    if let Some(r) = s.rewriting.as_mut() {
        let result = (&mut r.done).await;
        s.finish_rewrite(result);
    }
    s.aof.sync().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot sync the append-only log at shutdown: {e}"),
        )
    })
}

/// The next job, or the rewrite's result if one runs and it came first.
async fn next_event(jobs: &Receiver<Job>, rewriting: &mut Option<Rewriting>) -> Event {
    let mut recv = pin!(jobs.recv());
    poll_fn(|cx| {
        if let Some(r) = rewriting.as_mut() {
            if let Poll::Ready(result) = Pin::new(&mut r.done).poll(cx) {
                return Poll::Ready(Event::Rewritten(result));
            }
        }
        recv.as_mut().poll(cx).map(Event::Job)
    })
    .await
}

impl Storage {
    /// Runs a batch of jobs with one commit (see the module docs).
    fn execute(&mut self, batch: &mut Vec<Job>) {
        self.apply_fsync_policy();
        self.clock = self.clock.max(now_ms());
        let now = self.clock;
        self.sync_lfu();
        self.sync_notify();
        script::pending(&self.pending).extend(batch.drain(..));
        loop {
            // Not borrowed while the job runs: a busy script's hook takes
            // the jobs behind it from here.
            let next = script::pending(&self.pending).pop_front();
            let Some(job) = next else { break };
            let mut answers = Vec::with_capacity(job.reqs.len());
            let mut nanos = Vec::with_capacity(job.reqs.len());
            let mut redo = Vec::with_capacity(job.reqs.len());
            // A connection only ever has one job in flight: no one else
            // changes its cell meanwhile.
            let db_start = job.db.load(Ordering::Relaxed).min(self.store.count() - 1);
            let mut db = db_start;
            let mut produced = 0usize;
            // One clock read per request: each one's end is the next one's
            // start.
            let mut started = Instant::now();
            for req in job.reqs {
                if produced >= job.budget {
                    // Everything after the cut waits, writes and SELECTs
                    // too: the client's order is kept, and the resent job
                    // starts on the database the requests run so far left
                    // in the cell.
                    answers.push(Answer::Deferred(req));
                    nanos.push(0);
                    redo.push(Redo::NotRun);
                    continue;
                }
                let answer = match req {
                    // Never split: it runs whole in this round (and may
                    // take it over its budget) or waits whole above.
                    Req::Exec(reqs, watched) => {
                        self.evict(now);
                        let answer = self.exec(reqs, &watched, &mut db, now);
                        redo.push(match &answer {
                            Answer::Exec(Some(_)) => Redo::Exec,
                            Answer::Reply(r) => Redo::ExecNotRun(Some(r.clone())),
                            _ => Redo::ExecNotRun(None),
                        });
                        answer
                    }
                    Req::Write(w)
                        if self.aof.refusal().is_none()
                            && w.would_block(self.store.db(db), now) =>
                    {
                        // Everything after it waits for its answer, as in
                        // Redis: the client is blocked.
                        produced = usize::MAX;
                        redo.push(Redo::NotRun);
                        let wait = w.into_wait().expect("a blocking pop would block");
                        Answer::Blocked(self.waiters.block(db, wait))
                    }
                    Req::Read(r) => {
                        let bound = read_reply_bound(&r, self.store.db(db), now);
                        if job.reply_limit != 0 && bound > job.reply_limit {
                            // The client is disconnected: nothing after runs.
                            produced = usize::MAX;
                            redo.push(Redo::NotRun);
                            Answer::TooLarge(bound)
                        } else {
                            let answer = Answer::Reply(execute_read(&r, self.store.db(db), now));
                            redo.push(Redo::Read(r));
                            self.reap_met_expired(db, now);
                            answer
                        }
                    }
                    req => {
                        redo.push(match &req {
                            Req::Write(_) => Redo::Write,
                            Req::Info => Redo::Info,
                            Req::Watch(..) => Redo::Watch,
                            Req::Select(i) => Redo::Select(self.db_index(*i)),
                            // What it did stands (a rewrite, a sleep):
                            // its answer too.
                            Req::Admin(_) => Redo::NotRun,
                            // Answered MISCONF like a write if its batch
                            // is rolled back (it may have written).
                            Req::Script(_) => Redo::Write,
                            Req::Read(_) | Req::Exec(..) => unreachable!("answered above"),
                        });
                        if matches!(req, Req::Write(_)) {
                            self.evict(now);
                        }
                        let (answer, record) = self.run(req, &mut db, now);
                        if let Some(r) = &record {
                            self.aof.append(r);
                            self.changes_since_save += 1;
                        }
                        answer
                    }
                };
                let ended = Instant::now();
                nanos.push(ended.duration_since(started).as_nanos() as u64);
                started = ended;
                produced = produced.saturating_add(answer_bytes(&answer));
                answers.push(answer);
                // Clients blocked on a key this request made a list (or a
                // sorted set) are served before the next request, as Redis
                // does.
                if self.waiters.is_empty() && self.woken.is_empty() {
                    // No one to wake: only forget what this request's
                    // database signalled (the others' signals, from a MOVE
                    // or COPY into them, wait for a request there; a client
                    // that blocks later checks the keys themselves).
                    drop(self.store.db_mut(db).take_ready());
                } else {
                    self.serve_ready(now);
                }
            }
            job.db.store(db, Ordering::Relaxed);
            if self.aof.has_pending() {
                self.held.push(Held {
                    reply: job.reply,
                    answers,
                    nanos,
                    redo,
                    db: job.db,
                    db_start,
                });
            } else {
                // Only durable state was seen: no need to wait for the
                // commit. A handler that went away is no error.
                let _ = job.reply.send(Answered { answers, nanos });
            }
        }
        if self.held.is_empty() && self.served.is_empty() {
            self.undo.clear();
            self.publish_memory(true);
            self.publish_events(true);
            return;
        }
        // Group commit: one write + one fsync for every write of the batch,
        // and only then their replies.
        let lazy_expired = std::mem::take(&mut self.lazy_expired);
        match self.aof.commit() {
            Ok(()) => {
                self.expired_keys += lazy_expired;
                self.undo.clear();
                // Before the replies: a client that saw its DEL answered
                // must find the room it made, and its events published.
                self.publish_memory(true);
                self.publish_events(true);
                for held in self.held.drain(..) {
                    let _ = held.reply.send(Answered {
                        answers: held.answers,
                        nanos: held.nanos,
                    });
                }
                self.deliver(now);
            }
            Err(e) => {
                self.log_refusal(&e);
                self.undo.rollback(&mut self.store);
                self.publish_memory(false);
                self.refuse_served();
                self.publish_events(false);
                let held = std::mem::take(&mut self.held);
                for h in held {
                    let answers = self.answer_again(h.redo, h.answers, h.db_start, &h.db, now);
                    let _ = h.reply.send(Answered {
                        answers,
                        nanos: h.nanos,
                    });
                }
            }
        }
    }

    /// A held job's answers after its batch was rolled back (see the
    /// module docs); sets its connection's database to what its SELECTs
    /// outside a rolled-back EXEC made it.
    fn answer_again(
        &self,
        redo: Vec<Redo>,
        first: Vec<Answer>,
        mut db: usize,
        cell: &DbCell,
        now: u64,
    ) -> Vec<Answer> {
        let reason = self.aof.refusal().unwrap_or("the write failed");
        let answers = redo
            .into_iter()
            .zip(first)
            .map(|(r, first)| match r {
                Redo::NotRun => first,
                Redo::Read(r) => Answer::Reply(execute_read(&r, self.store.db(db), now)),
                Redo::Write => Answer::Reply(misconf(reason)),
                Redo::Info => Answer::Info(Box::new(self.info())),
                Redo::Watch => Answer::Reply(Reply::ok()),
                Redo::Select(Some(i)) => {
                    db = i;
                    Answer::Reply(Reply::ok())
                }
                Redo::Select(None) => Answer::Reply(Reply::err(DB_RANGE)),
                Redo::Exec => Answer::Reply(exec_misconf(reason)),
                Redo::ExecNotRun(Some(r)) => Answer::Reply(r),
                Redo::ExecNotRun(None) => Answer::Exec(None),
            })
            .collect();
        cell.store(db, Ordering::Relaxed);
        answers
    }

    fn log_refusal(&self, e: &io::Error) {
        let until = if self.aof.is_broken() {
            "until restart"
        } else {
            "until the log can be written again"
        };
        note!("matou-kv: cannot write the append-only log: {e}; writes refused {until}");
    }

    /// Serves the clients blocked on the keys that became lists or sorted
    /// sets (as long as each stays one, each waiter by a key of its type),
    /// again for the keys those pops made lists (a BLMOVE's destination).
    /// Each pop runs as the non-blocking command,
    /// journaled and logged like any write; its reply waits for the
    /// commit in `served`.
    fn serve_ready(&mut self, now: u64) {
        loop {
            let mut ready = std::mem::take(&mut self.woken);
            for db in 0..self.store.count() {
                ready.extend(
                    self.store
                        .db_mut(db)
                        .take_ready()
                        .into_iter()
                        .map(|k| (db, k)),
                );
            }
            if ready.is_empty() || self.waiters.is_empty() {
                return;
            }
            for (db, key) in ready {
                while let Some(kind) = self
                    .store
                    .db(db)
                    .value(&key, now)
                    .filter(|v| v.wakes_waiters())
                    .map(|v| v.type_name())
                {
                    let Some(pick) = self.waiters.next_for(db, &key, kind) else {
                        break;
                    };
                    let mut at = db;
                    let cmd = pick.cmd;
                    let (answer, record) = self.run(Req::Write(pick.run), &mut at, now);
                    if let Some(r) = &record {
                        self.aof.append(r);
                    }
                    let Answer::Reply(reply) = answer else {
                        unreachable!("a write answers a reply")
                    };
                    self.served.push(Served {
                        tx: pick.tx,
                        reply,
                        db,
                        cmd,
                    });
                }
            }
        }
    }

    /// Sends the served waiters their (committed) replies. A waiter gone
    /// meanwhile gets nothing: what was popped for it goes back where it
    /// was (logged, committed), and the next waiter is served from it.
    fn deliver(&mut self, now: u64) {
        while !self.served.is_empty() {
            for s in std::mem::take(&mut self.served) {
                let Err(reply) = s.tx.send(s.reply) else {
                    continue;
                };
                if let Some(back) = s.cmd.give_back(reply) {
                    let mut at = s.db;
                    let (_, record) = self.run(Req::Write(back), &mut at, now);
                    if let Some(r) = &record {
                        self.aof.append(r);
                    }
                }
            }
            self.serve_ready(now);
            if !self.aof.has_pending() {
                // Nothing given back: no one else to serve.
                continue;
            }
            match self.aof.commit() {
                Ok(()) => self.undo.clear(),
                Err(e) => {
                    self.log_refusal(&e);
                    self.undo.rollback(&mut self.store);
                    self.refuse_served();
                }
            }
            self.publish_memory(true);
        }
    }

    /// The batch was rolled back: the pops made for waiters are undone,
    /// and the waiters told the write failed.
    fn refuse_served(&mut self) {
        let reason = self.aof.refusal().unwrap_or("the write failed").to_string();
        for s in self.served.drain(..) {
            let _ = s.tx.send(misconf(&reason));
        }
    }

    /// Runs one request outside EXEC: its answer and what to log.
    fn run(&mut self, req: Req, db: &mut usize, now: u64) -> (Answer, Option<LogRecord>) {
        match req {
            Req::Read(r) => (
                Answer::Reply(execute_read(&r, self.store.db(*db), now)),
                None,
            ),
            Req::Write(_) if self.aof.refusal().is_some() => (
                Answer::Reply(misconf(self.aof.refusal().unwrap_or_default())),
                None,
            ),
            Req::Write(w) => {
                let (reply, record) = self.write(w, *db, now);
                if let Some(r) = &record {
                    self.versions.touch_record(r);
                }
                (Answer::Reply(reply), record)
            }
            Req::Info => (Answer::Info(Box::new(self.info())), None),
            Req::Watch(keys, cell) => {
                let w = self.versions.watch(*db, keys, self.store.db(*db), now);
                lock(&cell).extend(w);
                (Answer::Reply(Reply::ok()), None)
            }
            Req::Exec(..) => (Answer::Reply(exec_in_exec()), None),
            Req::Admin(op) => (Answer::Reply(self.admin(op, *db, now)), None),
            Req::Script(cmd) => self.script(cmd, db, now),
            Req::Select(i) => match self.db_index(i) {
                Some(i) => {
                    *db = i;
                    (Answer::Reply(Reply::ok()), None)
                }
                None => (Answer::Reply(Reply::err(DB_RANGE)), None),
            },
        }
    }

    fn db_index(&self, i: i64) -> Option<usize> {
        usize::try_from(i).ok().filter(|&i| i < self.store.count())
    }

    /// A write on database `db`, journaled (see the module docs), and its
    /// record as the log holds it.
    fn write(&mut self, w: Write, db: usize, now: u64) -> (Reply, Option<LogRecord>) {
        match w {
            Write::Flush => self.versions.touch_all(db, self.store.db(db)),
            Write::FlushAll => {
                let mut records = Vec::new();
                for i in 0..self.store.count() {
                    if !self.store.db(i).is_empty() {
                        self.versions.touch_all(i, self.store.db(i));
                        self.undo.in_db(i).save_all(self.store.db(i));
                        self.store.db_mut(i).clear();
                        records.push(Databases::in_db(i, LogRecord::FlushAll));
                    }
                }
                let record = match records.len() {
                    0 => None,
                    1 => records.pop(),
                    _ => Some(LogRecord::Multi(records)),
                };
                return (Reply::ok(), record);
            }
            Write::Move { key, db: to } => {
                let Some(to) = self.db_index(to) else {
                    return (Reply::err(DB_RANGE), None);
                };
                if to == db {
                    return (
                        Reply::err("ERR source and destination objects are the same"),
                        None,
                    );
                }
                for i in [db, to] {
                    self.undo.in_db(i).save_key(self.store.db(i), &key);
                    self.store.db_mut(i).advance(now);
                }
                let (moved, record) = self.store.move_key(&key, db, to, now);
                return (Reply::Integer(i64::from(moved)), record);
            }
            Write::Copy {
                from,
                to,
                db: Some(d),
                replace,
            } => {
                let Some(d) = self.db_index(d) else {
                    return (Reply::err(DB_RANGE), None);
                };
                if d != db {
                    self.undo.in_db(d).save_key(self.store.db(d), &to);
                    self.store.db_mut(d).advance(now);
                    let (copied, record) = self.store.copy_key((db, &from), (d, &to), replace, now);
                    return (Reply::Integer(i64::from(copied)), record);
                }
                let same = Write::Copy {
                    from,
                    to,
                    db: None,
                    replace,
                };
                self.undo.in_db(db);
                let (reply, record) =
                    execute_write_journaled(same, self.store.db_mut(db), now, &mut self.undo);
                return (reply, record.map(|r| Databases::in_db(db, r)));
            }
            Write::SwapDb(a, b) => {
                let (Some(a), Some(b)) = (self.db_index(a), self.db_index(b)) else {
                    return (Reply::err(DB_RANGE), None);
                };
                if a != b {
                    // A key of either database changes in both (it appears
                    // in one, disappears from the other).
                    // Expired keys are absent: one replacing nothing, or
                    // another expired one, changes nothing.
                    for (x, y) in [(a, b), (b, a)] {
                        self.versions.touch_live(x, self.store.db(x), now);
                        self.versions.touch_live(x, self.store.db(y), now);
                    }
                    self.undo.save_swap(a, b);
                    self.store.swap(a, b);
                    for d in [a, b] {
                        let keys = self.waiters.keys_in(d);
                        self.woken.extend(keys.into_iter().map(|k| (d, k)));
                    }
                }
                let record = (a != b).then_some(LogRecord::SwapDb(a as u32, b as u32));
                return (Reply::ok(), record);
            }
            _ => {}
        }
        self.undo.in_db(db);
        let (reply, record) =
            execute_write_journaled(w, self.store.db_mut(db), now, &mut self.undo);
        (reply, record.map(|r| Databases::in_db(db, r)))
    }

    /// EXEC: nothing runs if a watched key changed; otherwise every request
    /// runs here with nothing in between, and their records are logged as
    /// one [`LogRecord::Multi`] (or the one record, if only one).
    fn exec(&mut self, reqs: Vec<Req>, watched: &WatchCell, db: &mut usize, now: u64) -> Answer {
        let watched = std::mem::take(&mut *lock(watched));
        if !self.versions.unchanged(&watched, &self.store, now) {
            return Answer::Exec(None);
        }
        let bound = reqs.iter().fold(0usize, |acc, r| match r {
            Req::Write(w) => acc.saturating_add(w.record_bound()),
            _ => acc,
        });
        if bound > MAX_PAYLOAD {
            return Answer::Reply(Reply::err(TOO_LARGE_FOR_LOG));
        }
        if let Some(reason) = self.aof.refusal() {
            if reqs.iter().any(|r| matches!(r, Req::Write(_))) {
                return Answer::Reply(exec_misconf(reason));
            }
        }
        let mut records = Vec::new();
        let mut answers = Vec::with_capacity(reqs.len());
        for req in reqs {
            let (answer, record) = self.run(req, db, now);
            answers.extend([answer]);
            // A Multi never nests: a command's own Multi (MOVE, RENAME)
            // joins the transaction's.
            match record {
                Some(LogRecord::Multi(inner)) => records.extend(inner),
                other => records.extend(other),
            }
        }
        match records.len() {
            0 => {}
            1 => self.aof.append(&records[0]),
            _ => self.aof.append(&LogRecord::Multi(records)),
        }
        Answer::Exec(Some(answers))
    }

    /// The periodic duties: the full-disk probe, active expiry in each
    /// database and eviction (see `evict`: logged as `Del`, journaled,
    /// skipped while writes are refused), everysec fsync.
    fn tick(&mut self) {
        self.apply_fsync_policy();
        self.clock = self.clock.max(now_ms());
        if self.aof.refusal().is_some() && !self.aof.is_broken() && self.aof.probe() {
            note!("matou-kv: the append-only log can be written again; writes accepted");
        }
        // What reads outside a batch's own loop (EXEC) met expired: removed,
        // or only forgotten while the log refuses writes.
        for db in 0..self.store.count() {
            self.reap_met_expired(db, self.clock);
        }
        if self.aof.refusal().is_none() {
            self.waiters.sweep();
            self.sync_notify();
            let expired = self.expire_cycle();
            let expired = expired + std::mem::take(&mut self.lazy_expired);
            self.evict(self.clock);
            match self.aof.commit() {
                Ok(()) => {
                    self.expired_keys += expired;
                    self.publish_memory(true);
                    self.publish_events(true);
                }
                Err(e) => {
                    self.log_refusal(&e);
                    self.undo.rollback(&mut self.store);
                    self.publish_memory(false);
                    self.publish_events(false);
                }
            }
            self.undo.clear();
        }
        if let Err(e) = self.aof.tick() {
            self.log_refusal(&e);
        }
    }

    /// Tells the stores which keyspace event classes to record, if
    /// `notify-keyspace-events` changed.
    fn sync_notify(&mut self) {
        let mask = self.notifier.store_mask();
        if mask != self.notify_mask {
            self.notify_mask = mask;
            for i in 0..self.store.count() {
                self.store.db_mut(i).set_notify_mask(mask);
            }
        }
    }

    /// Publishes the keyspace events the stores recorded, once their
    /// changes are `committed` to the log; drops them if they were taken
    /// back instead.
    fn publish_events(&mut self, committed: bool) {
        if self.notify_mask == 0 {
            return;
        }
        for i in 0..self.store.count() {
            for e in self.store.db_mut(i).take_events() {
                if committed {
                    self.notifier.notify(i, e.class, e.event, &e.key);
                }
            }
        }
    }

    /// Takes up the fsync policy CONFIG SET asked for, if it changed.
    fn apply_fsync_policy(&mut self) {
        let wanted = super::ops::fsync_of(self.fsync.load(Ordering::Relaxed));
        if wanted != self.aof.policy() {
            if let Err(e) = self.aof.set_policy(wanted) {
                self.log_refusal(&e);
            }
            note!("matou-kv: appendfsync is now {}", wanted.name());
        }
    }

    /// Starts a rewrite if the log doubled (see the module docs).
    fn maybe_start_rewrite(&mut self) {
        if !self.aof.needs_rewrite()
            || Instant::now() < self.rewrite_not_before
            || self.aof.refusal().is_some()
        {
            return;
        }
        self.start_rewrite();
    }

    /// Starts a background rewrite now (BGREWRITEAOF, or the log doubled);
    /// on failure `rewriting` stays `None` and the next attempt waits.
    fn start_rewrite(&mut self) {
        let size_before = self.aof.size();
        // The snapshot and `begin_rewrite` with no append in between: the
        // side buffer then holds exactly what the snapshot lacks.
        let job = match self.aof.begin_rewrite(self.store.snapshot()) {
            Ok(job) => job,
            Err(e) => {
                note!("matou-kv: log rewrite not started: {e}");
                self.rewrite_failed();
                return;
            }
        };
        let (tx, rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("matou-kv-rewrite".into())
            .spawn(move || {
                // The task may be gone (shutdown, or it failed): then
                // nobody wants the file, and the next open removes it.
                let _ = tx.send(job.run());
            });
        match spawned {
            // Detached: the thread owns nothing but its snapshot and file,
            // and the oneshot tells when it is done (or died: the sender
            // is then dropped).
            Ok(_detached) => {
                self.rewriting = Some(Rewriting {
                    done: rx,
                    size_before,
                    started: Instant::now(),
                });
            }
            Err(e) => {
                note!("matou-kv: log rewrite not started: cannot spawn its thread: {e}");
                self.aof.abort_rewrite();
                self.rewrite_failed();
            }
        }
    }

    /// Completes (or gives up) the rewrite with its thread's result.
    fn finish_rewrite(&mut self, result: Result<io::Result<RewriteOutput>, oneshot::RecvError>) {
        let Some(r) = self.rewriting.take() else {
            return;
        };
        let failed = match result {
            Ok(Ok(out)) => match self.aof.finish_rewrite(out) {
                Ok(()) => {
                    note!(
                        "matou-kv: log rewritten in the background: {} -> {} bytes in {:?}",
                        r.size_before,
                        self.aof.size(),
                        r.started.elapsed()
                    );
                    self.saved();
                    self.bgsave.finished(true);
                    self.rewrite_backoff = REWRITE_RETRY_MIN;
                    return;
                }
                // After the rename, which file a crash would leave is
                // unknown: the log refuses writes (reads go on).
                Err(e) if self.aof.is_broken() => {
                    self.log_refusal(&e);
                    self.bgsave.finished(false);
                    return;
                }
                Err(e) => e,
            },
            Ok(Err(e)) => {
                self.aof.abort_rewrite();
                e
            }
            Err(_) => {
                self.aof.abort_rewrite();
                io::Error::other("the rewrite thread died")
            }
        };
        self.bgsave.finished(false);
        // The old log is intact and still in use: retry later.
        note!(
            "matou-kv: log rewrite failed: {failed}; the current log stays in use, \
             next attempt in {:?}",
            self.rewrite_backoff
        );
        self.rewrite_failed();
    }

    /// Schedules the next rewrite attempt after a failure, with backoff.
    fn rewrite_failed(&mut self) {
        self.rewrite_not_before = Instant::now() + self.rewrite_backoff;
        self.rewrite_backoff = (self.rewrite_backoff * 2).min(REWRITE_RETRY_MAX);
    }

    /// The storage's part of INFO.
    fn info(&self) -> InfoData {
        let (used_memory_lua, cached_scripts) = self.script_figures();
        InfoData {
            used_memory_lua,
            cached_scripts,
            expired_keys: self.expired_keys,
            used_memory: used_memory(&self.store),
            evicted_keys: self.memory.evicted(),
            maxmemory: self.memory.config().maxmemory,
            maxmemory_policy: self.memory.config().policy.name().into(),
            keys: self.store.len(),
            expires: self.store.expires_len(),
            keyspace: self
                .store
                .iter()
                .map(|(i, s)| (i, s.len(), s.expires_len()))
                .collect(),
            aof_fsync: self.aof.policy().name().into(),
            aof_current_size: self.aof.size(),
            aof_base_size: self.aof.base_size(),
            aof_rewrite_in_progress: self.aof.rewrite_in_progress(),
            aof_rewrites: self.aof.rewrites(),
            aof_last_rewrite_failed: self.aof.last_rewrite_failed(),
            blocked_clients: self.waiters.blocked(),
            last_save_unix: self.last_save_unix,
            bgsave: self.bgsave.figures(),
            changes_since_save: self.changes_since_save,
            ..InfoData::default()
        }
    }
}

/// About the bytes `a` takes on the wire: what a job's budget counts.
fn answer_bytes(a: &Answer) -> usize {
    match a {
        Answer::Reply(r) => r.encoded_len_bound(),
        Answer::Exec(Some(answers)) => answers
            .iter()
            .fold(23, |n, a| n.saturating_add(answer_bytes(a))),
        // INFO's text is a few KiB at most.
        Answer::Info(_) => 4096,
        Answer::Exec(None) | Answer::Deferred(_) | Answer::TooLarge(_) | Answer::Blocked(_) => 23,
    }
}

fn exec_in_exec() -> Reply {
    Reply::err("ERR EXEC inside EXEC")
}

/// The cell's lock; a panic elsewhere cannot leave a list of keys half
/// valid, so a poisoned lock is used as is.
fn lock(cell: &WatchCell) -> std::sync::MutexGuard<'_, Vec<crate::command::multi::Watched>> {
    cell.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

mod admin;
mod bgsave;
mod evict;
mod script;
#[cfg(test)]
mod tests;
