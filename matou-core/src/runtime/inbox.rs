//! A worker's remote inbox and the sleep/interrupt handshake.
//!
//! Other threads hand a worker messages (spawn this task here, wake this task)
//! through its inbox, then interrupt the worker's event source if, and only if,
//! the worker may be asleep in `select(block = true)`. The protocol (checked by
//! the loom model in `tests/loom_core.rs`):
//!
//! ```text
//!   pusher                                  worker
//!   ------                                  ------
//!   lock; push; pending = true (SeqCst)     sleeping = true (SeqCst)
//!   unlock                                  if pending (SeqCst): sleeping = false, drain
//!   if sleeping (SeqCst): interrupt()       else select(block) ... sleeping = false
//! ```
//!
//! With sequentially consistent accesses to both flags, either the worker sees
//! `pending` before it sleeps, or the pusher sees `sleeping` and interrupts;
//! interrupts are sticky in every event source (an interrupt that arrives
//! before `select` makes it return at once), so no message is ever stranded.
//! Once [`Inbox::close`]d, pushes are refused and the message is handed back.

use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::Mutex;

pub(crate) struct Inbox<M> {
    queue: Mutex<(Vec<M>, bool)>,
    pending: AtomicBool,
    sleeping: AtomicBool,
}

/// What [`Inbox::push`] decided.
#[must_use]
pub(crate) enum Pushed<M> {
    /// Queued; the worker is awake and will see it.
    Queued,
    /// Queued; the worker may be asleep: interrupt its event source.
    QueuedInterrupt,
    /// The inbox is closed (the run is over); here is the message back.
    Closed(M),
}

impl<M> Inbox<M> {
    pub(crate) fn new() -> Self {
        Inbox {
            queue: Mutex::new((Vec::new(), false)),
            pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
        }
    }

    pub(crate) fn push(&self, msg: M) -> Pushed<M> {
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.1 {
                return Pushed::Closed(msg);
            }
            queue.0.push(msg);
            self.pending.store(true, Ordering::SeqCst);
        }
        if self.sleeping.load(Ordering::SeqCst) {
            Pushed::QueuedInterrupt
        } else {
            Pushed::Queued
        }
    }

    /// Cheap check for the worker's loop.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Moves every queued message into `into` (keeping their order).
    pub(crate) fn drain(&self, into: &mut Vec<M>) {
        if !self.pending.swap(false, Ordering::SeqCst) {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        into.append(&mut queue.0);
    }

    /// The worker is about to block. Returns false when messages arrived (do
    /// not block; drain instead).
    pub(crate) fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        if self.pending.load(Ordering::SeqCst) {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub(crate) fn finish_sleep(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Refuses further messages and returns those still queued.
    pub(crate) fn close(&self) -> Vec<M> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.1 = true;
        self.pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut queue.0)
    }
}
