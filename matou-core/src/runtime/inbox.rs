//! A worker's remote inbox and the sleep/interrupt handshake.
//!
//! Other threads hand a worker messages (spawn this task here, wake this task)
//! through its inbox, then interrupt the worker's event source if, and only if,
//! the worker may be asleep in `select(block = true)`. The protocol (checked by
//! the loom models below):
//!
//! ```text
//!   pusher                                  worker
//!   ------                                  ------
//!   lock                                    lock
//!   push; pending = true                    if queue empty: sleeping = true
//!   must_interrupt = sleeping               unlock
//!   unlock                                  if it set sleeping: select(block)
//!   if must_interrupt: interrupt()          lock; sleeping = false; unlock
//! ```
//!
//! Both decisions are taken under the queue's lock, so either the worker sees
//! the message before it sleeps, or the pusher sees `sleeping` and interrupts.
//! Interrupts are sticky in every event source (an interrupt that arrives
//! before `select` makes it return at once), so no message is ever stranded.
//! The lock is only taken by pushers and by a worker about to sleep; the
//! worker's per-iteration check is the `pending` atomic.
//! Once [`Inbox::close`]d, pushes are refused and the message is handed back.

use super::padded::Padded;
use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::Mutex;

struct Queue<M> {
    messages: Vec<M>,
    sleeping: bool,
    closed: bool,
}

pub(crate) struct Inbox<M> {
    queue: Mutex<Queue<M>>,
    /// On its own cache line: the worker spins on it while idle, and only
    /// a push should invalidate its copy (not every lock and unlock).
    pending: Padded<AtomicBool>,
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
            queue: Mutex::new(Queue {
                messages: Vec::new(),
                sleeping: false,
                closed: false,
            }),
            pending: Padded(AtomicBool::new(false)),
        }
    }

    fn lock(&self) -> crate::loom::sync::MutexGuard<'_, Queue<M>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, msg: M) -> Pushed<M> {
        let mut queue = self.lock();
        if queue.closed {
            return Pushed::Closed(msg);
        }
        queue.messages.push(msg);
        self.pending.0.store(true, Ordering::Release);
        if queue.sleeping {
            Pushed::QueuedInterrupt
        } else {
            Pushed::Queued
        }
    }

    /// Cheap check for the worker's loop.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.0.load(Ordering::Acquire)
    }

    /// Moves every queued message into `into` (keeping their order).
    pub(crate) fn drain(&self, into: &mut Vec<M>) {
        let mut queue = self.lock();
        self.pending.0.store(false, Ordering::Relaxed);
        into.append(&mut queue.messages);
    }

    /// The worker is about to block. Returns false when messages arrived (do
    /// not block; drain instead).
    pub(crate) fn prepare_sleep(&self) -> bool {
        let mut queue = self.lock();
        if !queue.messages.is_empty() {
            return false;
        }
        queue.sleeping = true;
        true
    }

    pub(crate) fn finish_sleep(&self) {
        self.lock().sleeping = false;
    }

    /// Refuses further messages and returns those still queued.
    pub(crate) fn close(&self) -> Vec<M> {
        let mut queue = self.lock();
        queue.closed = true;
        self.pending.0.store(false, Ordering::Relaxed);
        std::mem::take(&mut queue.messages)
    }
}

/// loom models of the remote protocols: `RUSTFLAGS="--cfg loom" cargo test -p matou-core --lib loom`.
#[cfg(all(test, loom))]
pub(crate) mod loom_models {
    use super::{Inbox, Pushed};
    use crate::loom::sync::{Arc, Condvar, Mutex};
    use crate::loom::thread;

    /// A sticky interrupt, as every event source must provide (also used
    /// by the `OrphansHandle` model).
    #[derive(Default)]
    pub(crate) struct Sticky(Mutex<bool>, Condvar);
    impl Sticky {
        pub(crate) fn interrupt(&self) {
            *self.0.lock().unwrap() = true;
            self.1.notify_one();
        }
        pub(crate) fn block(&self) {
            let mut g = self.0.lock().unwrap();
            while !*g {
                g = self.1.wait(g).unwrap();
            }
            *g = false;
        }
    }

    fn push(inbox: &Inbox<u32>, ev: &Sticky, m: u32) {
        match inbox.push(m) {
            Pushed::Queued => {}
            Pushed::QueuedInterrupt => ev.interrupt(),
            Pushed::Closed(_) => panic!("closed"),
        }
    }

    /// Remote spawn / remote wake: a message pushed while the worker goes to
    /// sleep is always received (the worker never sleeps on a pending message).
    #[test]
    fn remote_message_is_never_stranded() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let ev = Arc::new(Sticky::default());
            let (i2, e2) = (inbox.clone(), ev.clone());
            let pusher = thread::spawn(move || push(&i2, &e2, 7));
            let mut got = Vec::new();
            while got.is_empty() {
                inbox.drain(&mut got);
                if got.is_empty() && inbox.prepare_sleep() {
                    ev.block();
                    inbox.finish_sleep();
                }
            }
            assert_eq!(got, [7]);
            pusher.join().unwrap();
        });
    }

    /// Two pushers (e.g. a remote wake and a remote cancel) both get through.
    #[test]
    fn two_pushers_both_arrive() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let ev = Arc::new(Sticky::default());
            let threads: Vec<_> = [1u32, 2]
                .into_iter()
                .map(|m| {
                    let (i, e) = (inbox.clone(), ev.clone());
                    thread::spawn(move || push(&i, &e, m))
                })
                .collect();
            let mut got = Vec::new();
            while got.len() < 2 {
                inbox.drain(&mut got);
                if got.len() < 2 && inbox.prepare_sleep() {
                    ev.block();
                    inbox.finish_sleep();
                }
            }
            got.sort();
            assert_eq!(got, [1, 2]);
            for t in threads {
                t.join().unwrap();
            }
        });
    }
}
