//! The storage task: the one owner of the [`Store`] and of the [`Aof`].
//!
//! It receives [`Job`]s (one per handler batch) on a bounded
//! `matou::sync` channel and answers each through its `oneshot`. Invariants:
//! - **Serial.** Every command, read or write, runs here, in arrival
//!   order; nothing else touches the store or the log.
//! - **Group commit.** After one `recv().await` it takes every job already
//!   queued (`try_recv` until empty), executes them, appends their records,
//!   commits once (one `write`, and one `fsync` under `--fsync always`), and
//!   only then answers the jobs that wrote or came after a write of the
//!   batch. So no reply reveals a state that is not durable yet.
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
//! - **Shutdown.** When the channel is closed and drained the task waits
//!   for a rewrite in progress (and completes it), then commits and fsyncs
//!   whatever the policy.

use super::now_ms;
use crate::aof::{Aof, RewriteOutput};
use crate::command::{execute_read, execute_write, read_reply_bound, InfoData, Read, Write};
use crate::record::LogRecord;
use crate::resp::Reply;
use crate::store::Store;
use matou::sync::{oneshot, Receiver};
use matou::unix::time;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Period of the storage task's duties (active expiry, everysec fsync).
pub const TICK: Duration = Duration::from_millis(100);
/// Most keys `active_expire` may look at per tick, so that expiry never
/// stalls the commands behind it.
const EXPIRE_WORK: usize = 1000;
/// After a failed rewrite, how long before trying again (the log goes on
/// growing meanwhile, but a full disk is not hammered with snapshots).
const REWRITE_RETRY: Duration = Duration::from_secs(10);

/// One request for the storage task, parsed by the handler.
#[derive(Debug)]
pub(super) enum Req {
    Read(Read),
    Write(Write),
    /// The storage's figures for INFO.
    Info,
}

/// The storage task's answer to one [`Req`].
#[derive(Debug)]
pub(super) enum Answer {
    Reply(Reply),
    /// [`InfoData`] with the storage's fields filled (keyspace, memory,
    /// persistence, expired keys); the handler fills the rest.
    Info(Box<InfoData>),
    /// Not run: the job's replies reached its `budget` first. The handler
    /// sends it again, in order, once the replies before it are written.
    Deferred(Req),
    /// Not run: its reply would take this many bytes, over the job's
    /// `reply_limit`; the handler disconnects the client.
    TooLarge(usize),
}

/// One handler's batch, answered as a whole, in order.
pub(super) struct Job {
    pub reqs: Vec<Req>,
    /// Reply bytes after which the rest of `reqs` is deferred (answered
    /// [`Answer::Deferred`]): what bounds a batch's memory.
    pub budget: usize,
    /// The largest single reply the client accepts (0: no limit).
    pub reply_limit: usize,
    pub reply: oneshot::Sender<Vec<Answer>>,
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

fn fatal(what: &str, e: io::Error) -> ! {
    // The store already holds writes the log refused: replying (even with an
    // error) or carrying on would break the durability promise. Redis exits
    // too under `appendfsync always`.
    eprintln!("matou-kv: FATAL: cannot {what} the append-only log: {e}; exiting");
    std::process::exit(1);
}

struct Storage {
    store: Store,
    aof: Aof,
    /// The store's clock: the maximum `now_ms` seen, so that a wall-clock
    /// step back never revives expired keys.
    clock: u64,
    expired_keys: u64,
    rewriting: Option<Rewriting>,
    /// No rewrite starts before this instant (set after a failure).
    rewrite_not_before: Instant,
    /// Answers held until the batch's commit (reused between batches).
    held: Vec<(oneshot::Sender<Vec<Answer>>, Vec<Answer>)>,
}

/// Owns the store and the log until `jobs` is closed and drained.
pub(super) async fn run(store: Store, aof: Aof, jobs: Receiver<Job>) -> io::Result<()> {
    let mut s = Storage {
        store,
        aof,
        clock: now_ms(),
        expired_keys: 0,
        rewriting: None,
        rewrite_not_before: Instant::now(),
        held: Vec::new(),
    };
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
                s.execute(&mut batch);
            }
            Ok(Event::Job(None)) => break,
            Ok(Event::Rewritten(result)) => s.finish_rewrite(result),
            Err(_) => {} // the tick
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + TICK;
            s.tick();
        }
        s.maybe_start_rewrite();
    }
    // Closed only once every handler is gone: nothing more can arrive.
    if let Some(r) = s.rewriting.as_mut() {
        let result = (&mut r.done).await;
        s.finish_rewrite(result);
    }
    if let Err(e) = s.aof.sync() {
        fatal("fsync", e);
    }
    Ok(())
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
        self.clock = self.clock.max(now_ms());
        let now = self.clock;
        for job in batch.drain(..) {
            let mut answers = Vec::with_capacity(job.reqs.len());
            let mut produced = 0usize;
            for req in job.reqs {
                if produced >= job.budget {
                    // Everything after the cut waits, writes too: the
                    // client's order is kept.
                    answers.push(Answer::Deferred(req));
                    continue;
                }
                answers.push(match req {
                    Req::Read(r) => {
                        let bound = read_reply_bound(&r, &self.store, now);
                        if job.reply_limit != 0 && bound > job.reply_limit {
                            produced = usize::MAX;
                            Answer::TooLarge(bound)
                        } else {
                            let reply = execute_read(&r, &self.store, now);
                            produced = produced.saturating_add(reply.encoded_len_bound());
                            Answer::Reply(reply)
                        }
                    }
                    Req::Write(w) => {
                        let (reply, record) = execute_write(w, &mut self.store, now);
                        if let Some(r) = &record {
                            self.aof.append(r);
                        }
                        Answer::Reply(reply)
                    }
                    Req::Info => Answer::Info(Box::new(self.info())),
                });
            }
            if self.aof.has_pending() {
                self.held.push((job.reply, answers));
            } else {
                // Only durable state was seen: no need to wait for the
                // commit. A handler that went away is no error.
                let _ = job.reply.send(answers);
            }
        }
        if self.held.is_empty() {
            return;
        }
        // Group commit: one write + one fsync for every write of the batch,
        // and only then their replies.
        if let Err(e) = self.aof.commit() {
            fatal("write", e);
        }
        for (reply, answers) in self.held.drain(..) {
            let _ = reply.send(answers);
        }
    }

    /// The periodic duties: active expiry (logged as `Del`), everysec fsync.
    fn tick(&mut self) {
        self.clock = self.clock.max(now_ms());
        let removed = self.store.active_expire(self.clock, EXPIRE_WORK);
        if !removed.is_empty() {
            self.expired_keys += removed.len() as u64;
            self.aof.append(&LogRecord::Del { keys: removed });
            if let Err(e) = self.aof.commit() {
                fatal("write", e);
            }
        }
        if let Err(e) = self.aof.tick() {
            fatal("fsync", e);
        }
    }

    /// Starts a rewrite if the log doubled (see the module docs).
    fn maybe_start_rewrite(&mut self) {
        if !self.aof.needs_rewrite() || Instant::now() < self.rewrite_not_before {
            return;
        }
        let size_before = self.aof.size();
        // The snapshot and `begin_rewrite` with no append in between: the
        // side buffer then holds exactly what the snapshot lacks.
        let job = match self.aof.begin_rewrite(self.store.snapshot()) {
            Ok(job) => job,
            Err(e) => {
                eprintln!("matou-kv: log rewrite not started: {e}");
                self.rewrite_not_before = Instant::now() + REWRITE_RETRY;
                return;
            }
        };
        let (tx, rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("matou-kv-rewrite".into())
            .spawn(move || {
                // The task may be gone (shutdown after a fatal error): then
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
                eprintln!("matou-kv: log rewrite not started: cannot spawn its thread: {e}");
                self.aof.abort_rewrite();
                self.rewrite_not_before = Instant::now() + REWRITE_RETRY;
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
                    eprintln!(
                        "matou-kv: log rewritten in the background: {} -> {} bytes in {:?}",
                        r.size_before,
                        self.aof.size(),
                        r.started.elapsed()
                    );
                    return;
                }
                // After the rename, which file a crash would leave is
                // unknown: the log refuses writes, and so must we.
                Err(e) if self.aof.is_broken() => fatal("rewrite", e),
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
        // The old log is intact and still in use: retry later.
        eprintln!("matou-kv: log rewrite failed: {failed}");
        self.rewrite_not_before = Instant::now() + REWRITE_RETRY;
    }

    /// The storage's part of INFO.
    fn info(&self) -> InfoData {
        InfoData {
            expired_keys: self.expired_keys,
            used_memory: self.store.data_bytes(),
            keys: self.store.len(),
            expires: self.store.expires_len(),
            aof_fsync: self.aof.policy().name().into(),
            aof_current_size: self.aof.size(),
            aof_base_size: self.aof.base_size(),
            aof_rewrite_in_progress: self.aof.rewrite_in_progress(),
            aof_rewrites: self.aof.rewrites(),
            aof_last_rewrite_failed: self.aof.last_rewrite_failed(),
            ..InfoData::default()
        }
    }
}
