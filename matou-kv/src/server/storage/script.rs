//! The storage task's half of scripting: runs EVAL / FCALL with the
//! [`Engine`] and answers SCRIPT / FUNCTION.
//!
//! A script runs here, inside the job that carries it, like an EXEC: its
//! `redis.call`s run one after the other through [`Storage::run`] (so each
//! write is journaled in the batch's undo, bumps the WATCH versions, and
//! a MOVE or SELECT works as in a transaction), nothing else runs in
//! between, and their records are appended as one [`LogRecord::Multi`]
//! frame (or the one record). The script's reply is then held until the
//! batch's commit like any write's. A script that fails halfway keeps
//! (and logs) the writes it made before the failure, as Redis does.
//!
//! While a script is busy (past `busy-reply-threshold`), the engine's hook
//! calls [`busy_poll`]'s closure, which takes the jobs behind the script
//! (the rest of its batch, then the channel's) and answers them at once (see `script`'s state
//! machine): `-BUSY`, or the outcome of SCRIPT KILL / FUNCTION KILL.

use super::{Answer, Answered, Job, Req, Storage};
use crate::command::script::{ScriptCmd, Source};
use crate::command::{parse, Command, Conn, Spec};
use crate::record::LogRecord;
use crate::resp::Reply;
use crate::script::{busy_reply, not_busy, Engine, Host, Poll, Target, Watch};
use matou::sync::Receiver;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Whether `batch` runs a script (EVAL, FCALL, alone or in an EXEC).
pub(super) fn runs_script(batch: &[Job]) -> bool {
    fn script(r: &Req) -> bool {
        match r {
            Req::Script(ScriptCmd::Run { .. }) => true,
            Req::Exec(reqs, _) => reqs.iter().any(script),
            _ => false,
        }
    }
    batch.iter().any(|j| j.reqs.iter().any(script))
}

/// Runs `batch` ([`Storage::execute`], commit included) on a thread of its
/// own, the storage task awaiting it, and gives the storage back: a busy
/// script then blocks that thread only, so the connections served on the
/// storage task's worker still read their requests and send them, to be
/// answered BUSY (or to SCRIPT KILL it). If the thread cannot be made,
/// the batch runs here.
///
/// # Errors
/// If the thread died (a panic): the storage is lost with it, the
/// server stops (what the log holds is what was committed).
pub(super) async fn execute_on_thread(
    s: Storage,
    batch: Vec<Job>,
) -> std::io::Result<(Storage, Vec<Job>)> {
    let (tx, rx) = matou::sync::oneshot::channel();
    // Handed back through the thread's result if it cannot start.
    let slot = Arc::new(Mutex::new(Some((s, batch))));
    let theirs = slot.clone();
    let spawned = std::thread::Builder::new()
        .name("matou-kv-script".into())
        .spawn(move || {
            let taken = theirs.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some((mut s, mut batch)) = taken {
                s.execute(&mut batch);
                let _ = tx.send((s, batch));
            }
        });
    if spawned.is_err() {
        let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some((mut s, mut batch)) = taken {
            s.execute(&mut batch);
            return Ok((s, batch));
        }
    }
    rx.await
        .map_err(|_| std::io::Error::other("the thread running a script died"))
}

/// The jobs of the batch in progress not run yet (see `Storage::execute`).
pub(super) type Pending = Arc<Mutex<VecDeque<Job>>>;

/// The pending jobs' lock (a panic cannot leave a queue half valid).
pub(super) fn pending(p: &Pending) -> MutexGuard<'_, VecDeque<Job>> {
    p.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The closure the engine's hook calls while a script is busy: answers
/// every job behind the script, those of its batch (`pending`) then those
/// queued on `jobs` since (see the module docs).
pub(super) fn busy_poll(jobs: Receiver<Job>, queue: Pending) -> Poll {
    Box::new(move |w: &Watch| {
        let next = || {
            let queued = pending(&queue).pop_front();
            queued.or_else(|| jobs.try_recv().ok())
        };
        while let Some(job) = next() {
            let answers: Vec<Answer> = job
                .reqs
                .into_iter()
                .map(|r| {
                    Answer::Reply(match r {
                        Req::Script(ScriptCmd::Kill { function }) => w.kill(function),
                        _ => busy_reply(w.is_function()),
                    })
                })
                .collect();
            let nanos = vec![0; answers.len()];
            // A handler that went away is no error.
            let _ = job.reply.send(Answered { answers, nanos });
        }
    })
}

/// The engine, or why there is none (answered to every script command).
pub(super) type Scripts = Result<Engine, String>;

/// One run's host: the storage, the database the script is on (a SELECT
/// in it does not change the connection's, as in Redis 7), and the
/// records so far.
struct ScriptHost<'a> {
    s: &'a mut Storage,
    db: &'a mut usize,
    now: u64,
    records: Vec<LogRecord>,
}

impl Host for ScriptHost<'_> {
    fn call(&mut self, args: Vec<Vec<u8>>, _spec: &'static Spec) -> Reply {
        if let Some(r) = self.s.memory.refusal(&args) {
            return r;
        }
        let req = match parse(&args, true) {
            Err(e) => return e,
            Ok(Command::Read(r)) => Req::Read(r),
            // Blocking commands run non-blocking in a script: an empty
            // source answers the timeout's null at once (Redis does so).
            Ok(Command::Write(w)) if w.would_block(self.s.store.db(*self.db), self.now) => {
                return Reply::NilArray;
            }
            Ok(Command::Write(w)) => Req::Write(w),
            Ok(Command::Conn(Conn::Select(i))) => Req::Select(i),
            Ok(Command::Conn(Conn::Ping(None))) => return Reply::Simple(Cow::Borrowed("PONG")),
            Ok(Command::Conn(Conn::Ping(Some(m)) | Conn::Echo(m))) => return Reply::Bulk(m),
            Ok(Command::Conn(_)) => {
                return Reply::err("ERR This Redis command is not allowed from script")
            }
        };
        if matches!(req, Req::Write(_)) {
            self.s.evict(self.now);
        }
        let (answer, record) = self.s.run(req, self.db, self.now);
        match record {
            // A Multi never nests (as in EXEC).
            Some(LogRecord::Multi(inner)) => self.records.extend(inner),
            other => self.records.extend(other),
        }
        match answer {
            Answer::Reply(r) => r,
            _ => Reply::err("ERR This Redis command is not allowed from script"),
        }
    }
}

impl Storage {
    /// Runs a scripting command on database `db`: its answer, and the
    /// record of a script's writes.
    pub(super) fn script(
        &mut self,
        cmd: ScriptCmd,
        db: &mut usize,
        now: u64,
    ) -> (Answer, Option<LogRecord>) {
        // Taken out for the run: the script's calls need the rest of the
        // storage mutably.
        let mut engine = match std::mem::replace(&mut self.scripts, Err(String::new())) {
            Ok(e) => e,
            Err(why) => {
                let reply = Reply::err(format!("ERR scripting is not available: {why}"));
                self.scripts = Err(why);
                return (Answer::Reply(reply), None);
            }
        };
        let mut record = None;
        let reply = match cmd {
            ScriptCmd::Run {
                source,
                keys,
                argv,
                read_only,
            } => {
                let target = match &source {
                    Source::Body(b) => Target::Body(b),
                    Source::Sha(s) => Target::Sha(s),
                    Source::Function(f) => Target::Function(f),
                };
                let read_only = read_only
                    || match &source {
                        Source::Function(f) => engine.function_is_read_only(f) == Some(true),
                        _ => false,
                    };
                // A SELECT in the script is the script's only (Redis 7).
                let mut script_db = *db;
                let mut host = ScriptHost {
                    s: self,
                    db: &mut script_db,
                    now,
                    records: Vec::new(),
                };
                let reply = engine.run(target, &keys, &argv, read_only, &mut host);
                let mut records = host.records;
                record = match records.len() {
                    0 => None,
                    1 => records.pop(),
                    _ => Some(LogRecord::Multi(records)),
                };
                reply
            }
            ScriptCmd::Load(body) => match engine.load(&body) {
                Ok(sha) => Reply::Bulk(sha.into_bytes()),
                Err(e) => e,
            },
            ScriptCmd::Exists(shas) => Reply::Array(
                shas.iter()
                    .map(|s| Reply::Integer(i64::from(engine.exists(s))))
                    .collect(),
            ),
            ScriptCmd::Flush => {
                engine.flush_scripts();
                Reply::ok()
            }
            // Here no script runs (a busy one's KILL is answered by the hook).
            ScriptCmd::Kill { .. } => not_busy(),
            ScriptCmd::FunctionLoad { code, replace } => match engine.function_load(&code, replace)
            {
                Ok(name) => Reply::Bulk(name.into_bytes()),
                Err(e) => e,
            },
            ScriptCmd::FunctionDelete(name) => {
                match engine.function_delete(&String::from_utf8_lossy(&name)) {
                    true => Reply::ok(),
                    false => Reply::err("ERR Library not found"),
                }
            }
            ScriptCmd::FunctionFlush => {
                engine.function_flush();
                Reply::ok()
            }
            ScriptCmd::FunctionList { pattern, with_code } => {
                engine.function_list(pattern.as_deref(), with_code)
            }
            ScriptCmd::FunctionStats => engine.function_stats(),
        };
        self.scripts = Ok(engine);
        (Answer::Reply(reply), record)
    }

    /// INFO's scripting figures: the Lua state's bytes, the cached scripts.
    pub(super) fn script_figures(&self) -> (usize, usize) {
        match &self.scripts {
            Ok(e) => (e.used_memory(), e.cached_scripts()),
            Err(_) => (0, 0),
        }
    }
}
