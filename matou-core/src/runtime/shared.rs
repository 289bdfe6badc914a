//! What all the workers of one run share: their inboxes and interrupters, the
//! run's shutdown and abort flags, the live-task count, and the placement
//! counter for `call`.
//!
//! Invariants:
//! - `workers[0]` is dom0; [`Shared::pick_worker`] never returns 0, nor the
//!   caller's own index.
//! - `live` counts tasks from their spawn to their termination (or their drop
//!   during an aborted run's clean-up); it is back to 0 when `run` returns.
//! - The first abort error wins; an abort also begins the shutdown.

use super::inbox::{Inbox, Pushed};
use super::padded::Padded;
use crate::error::Error;
use crate::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::loom::sync::{Arc, Mutex};
use crate::seam::Interrupt;
use crate::task::header::TaskRef;
use std::ptr;
use std::sync::OnceLock;
use std::time::Duration;

/// A message for a worker from another thread.
pub(crate) enum Remote {
    /// Run this new task here; its body builds the future at the first poll,
    /// on this thread.
    Spawn(TaskRef),
    /// This task of yours was woken (its `NOTIFIED` bit is already set).
    Wake(TaskRef),
    /// Run this on your thread, outside any task (an `OrphansHandle` spawn
    /// from elsewhere: the child must be made by its parent's worker).
    Run(Box<dyn FnOnce(&super::worker::Worker) + Send>),
}

pub(crate) struct WorkerHandle {
    pub(crate) inbox: Inbox<Remote>,
    pub(crate) interrupter: OnceLock<Arc<dyn Interrupt>>,
}

pub(crate) struct Shared {
    pub(crate) workers: Box<[WorkerHandle]>,
    shutdown: AtomicBool,
    abort: Mutex<Option<Error>>,
    /// Per-worker counts, each on its own cache line so spawning and
    /// terminating never bounce a shared line between workers. Counter `i`
    /// has one writer, worker `i`'s thread (so an update is a load and a
    /// store, no read-modify-write); any thread may read them. A count may
    /// wrap below zero (a task born on one worker may end on another); only
    /// the wrapping sum is meaningful.
    live: Box<[Padded<AtomicUsize>]>,
    /// Written by every `call`; on a line of its own so that a spinning
    /// worker's reads of `shutdown` are not invalidated by it.
    next_call: Padded<AtomicUsize>,
    /// How long an idle worker spins before blocking (see `Builder::idle_spin`).
    pub(crate) idle_spin: Duration,
    /// `Builder::on_task_poll`'s hooks, if any.
    pub(crate) poll_hooks: Option<crate::hooks::PollHooks>,
}

impl Shared {
    pub(crate) fn new(
        workers: usize,
        idle_spin: Duration,
        poll_hooks: Option<crate::hooks::PollHooks>,
    ) -> Shared {
        Shared {
            workers: (0..workers)
                .map(|_| WorkerHandle {
                    inbox: Inbox::new(),
                    interrupter: OnceLock::new(),
                })
                .collect(),
            shutdown: AtomicBool::new(false),
            abort: Mutex::new(None),
            live: (0..workers).map(|_| Padded(AtomicUsize::new(0))).collect(),
            next_call: Padded(AtomicUsize::new(0)),
            idle_spin,
            poll_hooks,
        }
    }

    /// A task was spawned by worker `index`. Only on that worker's thread.
    pub(crate) fn task_born(&self, index: usize) {
        let c = &self.live[index].0;
        c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// A task ended on worker `index`. Only on that worker's thread.
    pub(crate) fn task_gone(&self, index: usize) {
        let c = &self.live[index].0;
        c.store(c.load(Ordering::Relaxed).wrapping_sub(1), Ordering::Release);
    }

    /// Tasks spawned and not yet ended, across all workers.
    pub(crate) fn live_count(&self) -> usize {
        self.live.iter().fold(0usize, |sum, c| {
            sum.wrapping_add(c.0.load(Ordering::Acquire))
        })
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Stops every worker: they leave their loops at the next iteration, and
    /// the ones blocked in `select` are interrupted.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for w in self.workers.iter() {
            if let Some(i) = w.interrupter.get() {
                i.interrupt();
            }
        }
    }

    /// Aborts the run with `err` (the first error wins).
    pub(crate) fn abort(&self, err: Error) {
        {
            let mut slot = self.abort.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(err);
            }
        }
        self.begin_shutdown();
    }

    pub(crate) fn take_abort(&self) -> Option<Error> {
        self.abort.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Hands `msg` to worker `index`, interrupting it if it may be asleep.
    pub(crate) fn push_remote(&self, index: usize, msg: Remote) {
        let handle = &self.workers[index];
        let link = match &msg {
            Remote::Spawn(task) | Remote::Wake(task) => Some(ptr::from_ref(&task.link)),
            Remote::Run(_) => None,
        };
        let pushed = match link {
            // SAFETY: a spawn or wake message is sent by the one thread that
            // flipped the task's `NOTIFIED` bit (or made it, born notified),
            // so the task is in no other queue and its link in no inbox; the
            // worker drained the link's last message before clearing
            // `NOTIFIED` (AcqRel), which this sender's flip read. `msg` holds
            // a reference to the task, so the link lives while queued.
            Some(link) => unsafe { handle.inbox.push_in(link, msg) },
            None => handle.inbox.push(msg),
        };
        match pushed {
            Pushed::Queued => {}
            Pushed::QueuedInterrupt => {
                if let Some(i) = handle.interrupter.get() {
                    i.interrupt();
                }
            }
            Pushed::Closed(msg) => self.discard(msg),
        }
    }

    /// Drops a message that no worker will ever process. A spawn message
    /// only ever comes from a worker thread (`call`, or a worker's own clean
    /// up), whose counter takes the task's end.
    pub(crate) fn discard(&self, msg: Remote) {
        if let Remote::Spawn(task) = &msg {
            // Never polled: the body holds only the `Send` closure, dropped
            // with the last reference; a result there is none. The run is
            // over: nobody will poll the parent again.
            let _ = task.state.terminate();
            let index = super::context::with_worker(|w| w.index)
                .expect("a spawn message is discarded on a worker thread");
            self.task_gone(index);
        }
        drop(msg);
    }

    /// The workers that may receive parallel work from worker `caller`:
    /// neither dom0 nor the caller itself.
    pub(crate) fn eligible(&self, caller: usize) -> Vec<usize> {
        (1..self.workers.len()).filter(|&i| i != caller).collect()
    }

    /// Round-robin choice among [`Shared::eligible`] workers.
    pub(crate) fn pick_worker(&self, caller: usize) -> Result<usize, Error> {
        let n = self.workers.len();
        let count = (1..n).filter(|&i| i != caller).count();
        if count == 0 {
            return Err(Error::NoDomainAvailable);
        }
        let k = self.next_call.0.fetch_add(1, Ordering::Relaxed) % count;
        // The k-th index in 1..n, skipping `caller`.
        let mut index = 1 + k;
        if caller >= 1 && index >= caller {
            index += 1;
        }
        Ok(index)
    }
}

impl crate::task::Scheduler for Shared {
    /// The local queue when the caller is the task's worker's thread, else
    /// the worker's inbox.
    fn enqueue(&self, task: TaskRef) {
        let mut task = Some(task);
        super::context::with_worker(|w| w.enqueue_if_local(&mut task));
        let Some(task) = task else { return };
        let index = task.worker;
        self.push_remote(index, Remote::Wake(task));
    }
}
