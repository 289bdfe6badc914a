//! The seam between the scheduler and the system: Miou's `events` record.
//!
//! The scheduler knows no operating system. Each worker owns exactly one
//! [`EventSource`]; the scheduler talks to it through two operations only:
//!
//! - [`EventSource::select`]: called on the worker's own thread, with
//!   `block == true` exactly when the worker has nothing else to run. It receives
//!   the uids of syscalls whose task stopped waiting for them (the task was
//!   cancelled, or the [`suspend`](crate::suspend) future was dropped) and
//!   pushes a [`Signal`] for each syscall that may now resume.
//! - [`Interrupt::interrupt`]: callable from any thread, idempotent; it makes a
//!   blocked (or the next) `select` return promptly. Spurious interrupts are
//!   allowed and must be cheap to absorb.
//!
//! Invariants the scheduler keeps for every event source:
//! - `select` is only ever called from the thread of the worker that created it.
//! - A uid passed in `cancelled` is never resumed afterwards; the source should
//!   forget it (a signal for it would be ignored anyway).
//! - `finalize` is called once, on the worker's thread, when the run ends, while
//!   the worker is still installed (it may drop syscalls).
//! - The worker holds no borrow of its own state across `select` or `finalize`,
//!   so both may drop [`Syscall`](crate::Syscall)s or
//!   [`Suspend`](crate::Suspend) futures, which call back into the worker.
//! - Interrupts must be sticky: an `interrupt` that arrives while the worker is
//!   not inside `select` makes the next `select(block = true)` return at once.
//!   The wake-up protocol of `runtime::inbox` relies on it.
//! - When a task is cancelled, the uids of its syscalls reach a `select` before
//!   its canceller is released.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};

/// The identity of one parked syscall; unique within a process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub(crate) u64);

impl Uid {
    /// The raw number, for logs and for keys in a user's own tables.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uid({})", self.0)
    }
}

/// "The syscall with this uid may resume": what [`EventSource::select`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(pub(crate) Uid);

impl Signal {
    /// A signal for the syscall with `uid`.
    pub fn new(uid: Uid) -> Signal {
        Signal(uid)
    }

    /// The uid this signal resumes.
    pub fn uid(self) -> Uid {
        self.0
    }
}

/// Wakes a worker blocked in [`EventSource::select`]; callable from any thread.
pub trait Interrupt: Send + Sync + 'static {
    /// Makes the current (or next) `select` of the owning worker return soon.
    /// Must be idempotent: many interrupts before one `select` cost one wake-up.
    fn interrupt(&self);
}

/// One worker's window on the system (Miou's `events` record).
///
/// Created on the worker's own thread by the factory given to
/// [`Builder::event_source`](crate::Builder::event_source), so it need not be `Send`.
pub trait EventSource: 'static {
    /// Waits for events and reports which syscalls may resume.
    ///
    /// - `block`: true when the worker has nothing else to run; the source may then
    ///   sleep until an event or an [`Interrupt::interrupt`]. When false it must
    ///   not sleep.
    /// - `cancelled`: uids whose task no longer waits; forget them.
    /// - `signals`: push one [`Signal`] per syscall that may resume.
    fn select(&mut self, block: bool, cancelled: &[Uid], signals: &mut Vec<Signal>);

    /// A handle that other threads use to interrupt this source's `select`.
    fn interrupter(&self) -> Arc<dyn Interrupt>;

    /// Called once on the worker's thread when the run ends (Miou's finaliser).
    fn finalize(&mut self) {}
}

/// The event source used when none is given: it has no syscalls of its own and
/// only sleeps until interrupted. It needs nothing beyond std's threads.
pub struct ParkingEventSource {
    interrupter: Arc<ParkingInterrupt>,
}

#[derive(Default)]
struct ParkingInterrupt {
    pending: Mutex<bool>,
    wake: Condvar,
}

impl Interrupt for ParkingInterrupt {
    fn interrupt(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !*pending {
            *pending = true;
            self.wake.notify_one();
        }
    }
}

impl ParkingEventSource {
    /// A new parking source.
    pub fn new() -> Self {
        ParkingEventSource {
            interrupter: Arc::new(ParkingInterrupt::default()),
        }
    }
}

impl Default for ParkingEventSource {
    fn default() -> Self {
        Self::new()
    }
}

impl EventSource for ParkingEventSource {
    fn select(&mut self, block: bool, _cancelled: &[Uid], _signals: &mut Vec<Signal>) {
        let interrupter = &self.interrupter;
        let mut pending = interrupter
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if block {
            while !*pending {
                pending = interrupter
                    .wake
                    .wait(pending)
                    .unwrap_or_else(|e| e.into_inner());
            }
        }
        *pending = false;
    }

    fn interrupter(&self) -> Arc<dyn Interrupt> {
        self.interrupter.clone()
    }
}
