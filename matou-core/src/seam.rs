//! The seam between the scheduler and the system: Miou's `events` record.
//!
//! The scheduler knows no operating system. Each worker owns exactly one
//! [`EventSource`]; the scheduler talks to it through two operations only,
//! [`EventSource::select`] (on the worker's thread) and
//! [`Interrupt::interrupt`] (from any thread). The contract both sides keep
//! (threads, when `select` blocks, sticky interrupts, cancelled uids,
//! re-entrance, `finalize`) is written on those public traits, where users
//! writing a source read it; the wake-up protocol of `runtime::inbox` relies
//! on the sticky interrupts.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};

/// The identity of one parked syscall; unique within a process.
///
/// An event source keeps the uids it was handed (by whatever API it offers
/// its tasks) and returns them in [`Signal`]s.
///
/// ```
/// matou_core::run(async {
///     let a = matou_core::syscall();
///     let b = matou_core::syscall();
///     assert_ne!(a.uid(), b.uid());
///     assert_eq!(matou_core::Signal::new(a.uid()).uid().as_u64(), a.uid().as_u64());
/// });
/// ```
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
///
/// A signal for a uid that no task waits on any more (dropped, already
/// signalled, or of another worker) is ignored, so a source may signal
/// generously.
///
/// ```
/// use matou_core::{Signal, Uid};
///
/// fn ready(uids: &[Uid], signals: &mut Vec<Signal>) {
///     signals.extend(uids.iter().copied().map(Signal::new));
/// }
/// # let _ = ready;
/// ```
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
///
/// The contract the scheduler relies on (a remote spawn, wake or cancel is
/// never stranded only because of it):
/// - **sticky**: an interrupt that arrives while the worker is not inside
///   `select` (before it, or between two) makes the next
///   `select(block = true)` return at once. A flag set by `interrupt` and
///   cleared by `select`, as below, or an eventfd / self-pipe, has this
///   property; a bare condition-variable notify does not;
/// - **idempotent and cheap**: many interrupts before one `select` may cost
///   one wake-up; spurious ones are allowed and must be cheap to absorb;
/// - callable from any thread, at any time during the run, including while
///   `select` runs.
///
/// ```
/// use matou_core::Interrupt;
/// use std::sync::{Condvar, Mutex};
///
/// #[derive(Default)]
/// struct Wakeup {
///     pending: Mutex<bool>,
///     cond: Condvar,
/// }
///
/// impl Interrupt for Wakeup {
///     fn interrupt(&self) {
///         // Sticky: the flag stays set until a `select` consumes it.
///         *self.pending.lock().unwrap() = true;
///         self.cond.notify_one();
///     }
/// }
///
/// impl Wakeup {
///     /// What `select(block = true)` does: wait for the flag, then clear it.
///     fn wait(&self) {
///         let mut pending = self.pending.lock().unwrap();
///         while !*pending {
///             pending = self.cond.wait(pending).unwrap();
///         }
///         *pending = false;
///     }
/// }
///
/// let w = Wakeup::default();
/// w.interrupt(); // before anyone waits...
/// w.interrupt();
/// w.wait(); // ...still returns at once
/// ```
pub trait Interrupt: Send + Sync + 'static {
    /// Makes the current (or next) `select` of the owning worker return soon.
    /// Must be idempotent: many interrupts before one `select` cost one wake-up.
    fn interrupt(&self);
}

/// One worker's window on the system (Miou's `events` record).
///
/// Tasks park on a [`Syscall`](crate::Syscall): they hand its
/// [`uid`](crate::Syscall::uid) to the source (through whatever API the source
/// offers, typically a thread-local or a handle) and
/// [`suspend`](crate::suspend); the source's `select` returns a [`Signal`] for
/// each uid that may resume. What a source may rely on, and must provide:
///
/// - **Threads.** Created on the worker's own thread by the factory given to
///   [`Builder::event_source`](crate::Builder::event_source), so it need not
///   be `Send`; `select` and `finalize` are only ever called on that thread.
///   Only the [`Interrupt`] from [`interrupter`](EventSource::interrupter)
///   crosses threads. Every worker has its source installed before the main
///   future is first polled.
/// - **When `select` runs.** With `block == true` exactly when the worker has
///   nothing else to run: the source may then sleep until an event or an
///   interrupt. With `block == false` (a busy worker, every few dozen tasks,
///   and while it spins idle) it must not sleep.
/// - **Sticky interrupts** (see [`Interrupt`]): an interrupt that arrived
///   before `select(block = true)` makes it return at once. The remote wake-up
///   protocol depends on it; without it a message from another worker can be
///   stranded while the target sleeps.
/// - **Cancelled uids.** `cancelled` lists syscalls whose task stopped waiting
///   (cancelled, or its [`Suspend`](crate::Suspend) future dropped, e.g. by a
///   timeout or a race). They are never resumed afterwards: forget them
///   (registrations, timers). When a task is cancelled, its uids reach a
///   `select` before its canceller is released, so once `cancel` returns the
///   system side has forgotten them too. The exception is a syscall moved
///   away from its worker (its future was handed to another worker): its
///   uid reaches its own worker's `select`, shortly after, by a message.
/// - **Re-entrance.** The worker holds no borrow of its own state across
///   `select` or `finalize`, so both may drop `Syscall`s or `Suspend`
///   futures (which call back into the worker).
/// - **`finalize`** is called once, on the worker's thread, when the run
///   ends, after every task of the worker is gone and while the worker is
///   still installed; a last `select(false)` has delivered the final
///   cancelled uids. Release system resources there.
///
/// A complete source: every uid handed to it may resume at the next
/// `select` (a real one would wait for readiness or a deadline).
///
/// ```
/// use matou_core::{Builder, EventSource, Interrupt, Signal, Uid};
/// use std::cell::RefCell;
/// use std::sync::{Arc, Condvar, Mutex};
///
/// thread_local! {
///     // This worker's parked uids: the source's state is per worker.
///     static PARKED: RefCell<Vec<Uid>> = const { RefCell::new(Vec::new()) };
/// }
///
/// #[derive(Default)]
/// struct Wakeup(Mutex<bool>, Condvar);
/// impl Interrupt for Wakeup {
///     fn interrupt(&self) {
///         *self.0.lock().unwrap() = true; // sticky
///         self.1.notify_one();
///     }
/// }
///
/// struct Immediate(Arc<Wakeup>);
/// impl EventSource for Immediate {
///     fn select(&mut self, block: bool, cancelled: &[Uid], signals: &mut Vec<Signal>) {
///         PARKED.with(|p| {
///             let mut p = p.borrow_mut();
///             p.retain(|uid| !cancelled.contains(uid));
///             signals.extend(p.drain(..).map(Signal::new));
///         });
///         let mut pending = self.0 .0.lock().unwrap();
///         if block && signals.is_empty() {
///             while !*pending {
///                 pending = self.0 .1.wait(pending).unwrap();
///             }
///         }
///         *pending = false;
///     }
///     fn interrupter(&self) -> Arc<dyn Interrupt> {
///         self.0.clone()
///     }
///     fn finalize(&mut self) {
///         PARKED.with(|p| p.borrow_mut().clear());
///     }
/// }
///
/// let v = Builder::new()
///     .extra_workers(1)
///     .event_source(|_| Box::new(Immediate(Arc::default())))
///     .run(async {
///         let call = matou_core::syscall();
///         PARKED.with(|p| p.borrow_mut().push(call.uid()));
///         matou_core::suspend(call).await;
///         "resumed"
///     });
/// assert_eq!(v, "resumed");
/// ```
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
///
/// A syscall parked on it is never signalled; it ends only by being dropped
/// (its uid then reaches `select` in `cancelled`, which this source ignores).
///
/// ```
/// use matou_core::{Builder, ParkingEventSource};
///
/// let n = Builder::new()
///     .extra_workers(1)
///     .event_source(|_| Box::new(ParkingEventSource::new()))
///     .run(async { matou_core::call(|| async { 2 }).unwrap().await.unwrap() });
/// assert_eq!(n, 2);
/// ```
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
