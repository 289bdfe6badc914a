//! One worker: its run queue, its table of task slots, its parked syscalls, its
//! event source, and the loop that drives them.
//!
//! Everything here is touched by the worker's own thread only (hence `RefCell`
//! and `Cell`); other threads reach a worker through its inbox
//! ([`super::inbox`]). No `RefCell` borrow is ever held across a call into
//! user code (polling a future, dropping one, `select`), because user code
//! re-enters the worker (spawn, wake, syscall).
//!
//! The end of a task's life (cancel, finish, terminate) is in
//! [`super::lifecycle`].

use super::lifecycle::{drop_future_quietly, settle_end};
use super::shared::{Remote, Shared};
use super::spin::SpinPolicy;
use super::WorkerId;
use crate::hooks::TaskInfo;
use crate::loom::sync::atomic::Ordering;
use crate::loom::sync::Arc;
use crate::seam::{EventSource, Signal, Uid};
use crate::syscall::Syscalls;
use crate::task::header::{waker, with_waker_ref, TaskRef};
use crate::task::TaskId;
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How many tasks a busy worker runs between two non-blocking `select`s, so
/// I/O is never starved by runnable tasks (tokio uses the same number).
const EVENT_INTERVAL: u32 = 61;

/// How long a blocked worker may take to wake up once interrupted (a
/// futex or eventfd wake and a trip through the OS scheduler: tens of
/// microseconds on a virtual machine). A hand-off that ends a sleep within
/// the spin budget plus this counts as one a spin would have caught.
const WAKE_UP_SLACK: Duration = Duration::from_micros(100);

/// How an idle spin ended.
enum SpinEnd {
    /// A message from another thread arrived.
    HandOff,
    /// An event made a task runnable, or the run is shutting down.
    OtherWork,
    /// Nothing came within the budget.
    OutOfBudget,
}

/// The task a worker is polling right now.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Current {
    pub(crate) key: usize,
    pub(crate) id: TaskId,
}

/// A task as its worker keeps it.
pub(crate) struct Slot {
    pub(crate) header: TaskRef,
    /// Whether the task's future may be polled: false while it is being
    /// polled, and once it has returned or been dropped.
    pub(super) pollable: bool,
    /// Children neither awaited nor cancelled yet.
    pub(crate) children: Slab<TaskRef>,
    /// `children.len()` at which `add_child` next prunes the abandoned
    /// children that have ended (doubling, so pruning is amortised O(1)).
    pub(super) prune_at: usize,
}

/// The smallest table `add_child` bothers to prune.
const PRUNE_MIN: usize = 64;

pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    run_queue: RefCell<VecDeque<TaskRef>>,
    pub(crate) tasks: RefCell<Slab<Slot>>,
    current: Cell<Option<Current>>,
    pub(crate) syscalls: RefCell<Syscalls>,
    events: RefCell<Box<dyn EventSource>>,
    signals: RefCell<Vec<Signal>>,
    pub(super) cancelled: RefCell<Vec<Uid>>,
    remote: RefCell<Vec<Remote>>,
    /// Whether idling spins first, from how the last idle periods ended.
    spin_policy: Cell<SpinPolicy>,
    /// xorshift64 state, seeded per worker: `await_one`'s choice among
    /// promises that finished together.
    rng: Cell<u64>,
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, index: usize, events: Box<dyn EventSource>) -> Worker {
        let interrupter = events.interrupter();
        // A worker is created once per index per run.
        let _ = shared.workers[index].interrupter.set(interrupter);
        Worker {
            shared,
            index,
            run_queue: RefCell::new(VecDeque::with_capacity(256)),
            tasks: RefCell::new(Slab::with_capacity(256)),
            current: Cell::new(None),
            syscalls: RefCell::new(Syscalls::default()),
            events: RefCell::new(events),
            signals: RefCell::new(Vec::new()),
            cancelled: RefCell::new(Vec::new()),
            remote: RefCell::new(Vec::new()),
            spin_policy: Cell::new(SpinPolicy::new()),
            rng: Cell::new(seed_for(index)),
        }
    }

    /// A pseudo-random number below `n` (`n > 0`); cheap, not for secrets.
    pub(crate) fn random_below(&self, n: usize) -> usize {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        // The high bits are the better ones; the bias for small n is nil.
        ((u128::from(x) * n as u128) >> 64) as usize
    }

    pub(crate) fn current(&self) -> Option<Current> {
        self.current.get()
    }

    /// Pushes `header` on the local queue if this worker owns it.
    pub(crate) fn enqueue_if_local(&self, header: &mut Option<TaskRef>) {
        if let Some(h) = header {
            if h.worker == self.index && same_run(h, &self.shared) {
                self.run_queue
                    .borrow_mut()
                    .push_back(header.take().expect("checked"));
            }
        }
    }

    /// Inserts a task in the table and queues it. The task must be fresh
    /// (born `NOTIFIED`) and owned by this worker.
    pub(crate) fn insert_task(&self, header: TaskRef) {
        let key = self.tasks.borrow_mut().insert(Slot {
            header: header.clone(),
            pollable: true,
            children: Slab::new(),
            prune_at: PRUNE_MIN,
        });
        header.slot.store(key, Ordering::Relaxed);
        self.run_queue.borrow_mut().push_back(header);
    }

    /// Records `child` in the current task's children table; returns its key.
    pub(crate) fn add_child(&self, parent: Current, child: TaskRef) -> usize {
        let mut tasks = self.tasks.borrow_mut();
        let slot = &mut tasks[parent.key];
        slot.header.child_spawned();
        if slot.children.len() >= slot.prune_at {
            slot.children
                .retain(|_, c| !(c.state.is_abandoned() && c.state.is_terminated()));
            slot.prune_at = (slot.children.len() * 2).max(PRUNE_MIN);
        }
        slot.children.insert(child)
    }

    /// Forgets a child of the current task (it was awaited or cancelled).
    pub(crate) fn remove_child(&self, parent: Current, child_key: usize) {
        if let Some(slot) = self.tasks.borrow_mut().get_mut(parent.key) {
            slot.children.try_remove(child_key);
        }
    }

    /// Whether `task` still lives on this worker and may take new children
    /// (used by `OrphansHandle`): its slot is still its own (keys are
    /// reused), and it is neither terminated nor cancelling (a cancelling
    /// task cancelled the children it had once, and would wait forever for a
    /// new one). A task whose future returned with forgotten children is
    /// cancelling them (and will fail); one without is gone.
    pub(crate) fn accepts_children(&self, task: Current) -> bool {
        self.tasks.borrow().get(task.key).is_some_and(|slot| {
            slot.header.id == task.id
                && !slot.header.is_cancelling()
                && !slot.header.state.is_cancel_requested()
                && !slot.header.state.is_terminated()
        })
    }

    pub(crate) fn header_of(&self, task: Current) -> TaskRef {
        self.tasks.borrow()[task.key].header.clone()
    }

    pub(crate) fn waker_of(&self, task: Current) -> Waker {
        waker(self.tasks.borrow()[task.key].header.clone())
    }

    /// The worker loop. dom0 passes the root task and leaves when it has
    /// terminated; the other workers leave at shutdown.
    pub(crate) fn run(&self, root: Option<&TaskRef>) {
        let mut ticks = 0u32;
        loop {
            if self.shared.is_shutdown() {
                return;
            }
            if root.is_some_and(|r| r.state.is_terminated()) {
                return;
            }
            self.drain_inbox();
            let next = self.run_queue.borrow_mut().pop_front();
            match next {
                Some(header) => {
                    self.run_task(header);
                    ticks += 1;
                    if ticks >= EVENT_INTERVAL {
                        ticks = 0;
                        if self.has_syscalls() {
                            self.select(false);
                        }
                    }
                }
                None => {
                    ticks = 0;
                    self.idle();
                }
            }
        }
    }

    fn has_syscalls(&self) -> bool {
        !self.syscalls.borrow().is_empty() || !self.cancelled.borrow().is_empty()
    }

    fn drain_inbox(&self) {
        let inbox = &self.shared.workers[self.index].inbox;
        if !inbox.has_pending() {
            return;
        }
        let mut batch = std::mem::take(&mut *self.remote.borrow_mut());
        inbox.drain(&mut batch);
        for msg in batch.drain(..) {
            match msg {
                Remote::Wake(header) => self.run_queue.borrow_mut().push_back(header),
                Remote::Spawn(task) => self.insert_task(task),
                Remote::Run(job) => job(self),
            }
        }
        *self.remote.borrow_mut() = batch;
    }

    /// Nothing to run: look for work a little longer if work (hand-offs,
    /// events) has lately been arriving within the spin budget (see
    /// [`super::spin`]), then sleep in the event source until an event or an
    /// interrupt.
    fn idle(&self) {
        let budget = self.shared.idle_spin;
        if budget.is_zero() {
            self.block();
            return;
        }
        let started = Instant::now();
        let mut policy = self.spin_policy.get();
        let hit = if policy.should_spin() {
            match self.spin_for_work(budget, started) {
                SpinEnd::HandOff | SpinEnd::OtherWork => true,
                SpinEnd::OutOfBudget => self.block_found_work(started, budget),
            }
        } else {
            self.block_found_work(started, budget)
        };
        policy.record(hit);
        self.spin_policy.set(policy);
    }

    /// Blocks; then tells whether work (a hand-off, or an event that made a
    /// task runnable) ended the sleep so soon after the worker went idle at
    /// `started` that a spin would have found it. The time measured includes
    /// the wake-up itself, hence the slack.
    fn block_found_work(&self, started: Instant, budget: Duration) -> bool {
        let handed_off = self.block();
        (handed_off || !self.run_queue.borrow().is_empty())
            && started.elapsed() <= budget + WAKE_UP_SLACK
    }

    /// Sleeps in the event source until an event or an interrupt (at once
    /// when messages are already queued); returns whether the inbox holds
    /// messages on the way out, i.e. whether a hand-off (also) ended the
    /// sleep.
    fn block(&self) -> bool {
        let inbox = &self.shared.workers[self.index].inbox;
        if !inbox.prepare_sleep() {
            return true;
        }
        if !self.shared.is_shutdown() {
            self.select(true);
        }
        inbox.finish_sleep();
        inbox.has_pending()
    }

    /// Spins for up to `budget` from `started`, waiting for a remote
    /// message, an event or shutdown. The first rounds only spin; after them
    /// each round yields, so a worker that spins on gives its core to any
    /// other runnable thread (a client on the same machine, another worker).
    ///
    /// Events are polled without blocking every few rounds (a syscall for
    /// most event sources), so I/O that becomes ready during the spin is not
    /// delayed until the spin ends.
    fn spin_for_work(&self, budget: Duration, started: Instant) -> SpinEnd {
        // Rounds between two looks at the rest (shutdown, the event source,
        // the clock).
        const POLL_EVENTS_EVERY: u32 = 64;
        // The first rounds only spin (a peer's message is seen within
        // nanoseconds); later ones yield the core (a syscall per round).
        const PURE_SPIN_ROUNDS: u32 = 1024;
        let inbox = &self.shared.workers[self.index].inbox;
        let mut round = 0u32;
        loop {
            // The tight loop reads one line that only pushers write.
            if inbox.has_pending() {
                return SpinEnd::HandOff;
            }
            round = round.wrapping_add(1);
            if round % POLL_EVENTS_EVERY == 0 {
                if self.shared.is_shutdown() {
                    return SpinEnd::OtherWork;
                }
                if self.has_syscalls() {
                    self.select(false);
                    if !self.run_queue.borrow().is_empty() {
                        return SpinEnd::OtherWork;
                    }
                }
                if started.elapsed() >= budget {
                    return SpinEnd::OutOfBudget;
                }
            }
            if round <= PURE_SPIN_ROUNDS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    pub(super) fn select(&self, block: bool) {
        let cancelled = std::mem::take(&mut *self.cancelled.borrow_mut());
        let mut signals = std::mem::take(&mut *self.signals.borrow_mut());
        self.events
            .borrow_mut()
            .select(block, &cancelled, &mut signals);
        for signal in signals.drain(..) {
            let waker = self.syscalls.borrow_mut().signal(signal.uid());
            if let Some(w) = waker {
                w.wake();
            }
        }
        *self.signals.borrow_mut() = signals;
        let mut cancelled = cancelled;
        cancelled.clear();
        let mut slot = self.cancelled.borrow_mut();
        if slot.is_empty() {
            *slot = cancelled;
        }
    }

    /// A syscall of this worker will never be resumed: tell the event source.
    pub(crate) fn syscall_cancelled(&self, uid: Uid) {
        self.cancelled.borrow_mut().push(uid);
    }

    fn run_task(&self, header: TaskRef) {
        let snapshot = header.state.take_notified();
        let key = header.slot();
        {
            let mut tasks = self.tasks.borrow_mut();
            let Some(slot) = tasks.get_mut(key) else {
                return;
            };
            if !Arc::ptr_eq(&slot.header, &header) {
                return;
            }
            if snapshot.cancel_requested() || header.is_cancelling() {
                drop(tasks);
                self.advance_cancel(key).check(self, key);
                return;
            }
            if !slot.pollable {
                return;
            }
            slot.pollable = false;
        }
        let hooks = self.shared.poll_hooks.as_ref();
        let info = hooks.map(|_| TaskInfo {
            id: header.id,
            name: header.name.get().map(|n| &**n),
            worker: WorkerId::new(self.index),
            spawned_at: header.spawned_at,
        });
        if let (Some(h), Some(info)) = (hooks, &info) {
            let _ = catch_unwind(AssertUnwindSafe(|| (h.start)(info)));
        }
        let previous = self.current.replace(Some(Current { key, id: header.id }));
        // Entered around the poll only: the span's busy time is poll time.
        #[cfg(feature = "tracing")]
        let entered = crate::trace::span_of(&header).enter();
        let result = with_waker_ref(&header, |waker| {
            let mut cx = Context::from_waker(waker);
            // SAFETY: this is the task's worker, the task has not terminated
            // (its slot is here), and `pollable` was set, now cleared, so
            // nothing re-enters the body.
            catch_unwind(AssertUnwindSafe(|| unsafe { header.body.poll(&mut cx) }))
        });
        #[cfg(feature = "tracing")]
        drop(entered);
        self.current.set(previous);
        if let (Some(h), Some(info)) = (hooks, &info) {
            let _ = catch_unwind(AssertUnwindSafe(|| (h.stop)(info)));
        }
        match result {
            Ok(Poll::Pending) => {
                self.tasks.borrow_mut()[key].pollable = true;
            }
            Ok(Poll::Ready(())) => self.finished(key, false).check(self, key),
            Err(payload) => {
                // SAFETY: as for `poll` above.
                let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
                    header.body.store_panic(payload)
                }));
                self.finished(key, true).check(self, key);
            }
        }
    }

    /// Drops every task still here (an aborted run) and closes the inbox.
    pub(crate) fn clean_up(&self) {
        self.run_queue.borrow_mut().clear();
        loop {
            let slots: Vec<Slot> = self.tasks.borrow_mut().drain().collect();
            if slots.is_empty() {
                break;
            }
            for slot in slots {
                drop_future_quietly(&slot.header);
                self.shared.task_gone(self.index);
                settle_end(&slot.header);
            }
        }
        let mut pending = std::mem::take(&mut *self.remote.borrow_mut());
        self.shared.workers[self.index].inbox.drain(&mut pending);
        pending.extend(self.shared.workers[self.index].inbox.close());
        for msg in pending {
            self.shared.discard(msg);
        }
        self.run_queue.borrow_mut().clear();
        self.syscalls.borrow_mut().clear();
    }

    pub(crate) fn finalize(&self) {
        if !self.cancelled.borrow().is_empty() {
            self.select(false);
        }
        self.events.borrow_mut().finalize();
    }
}

/// A non-zero seed that differs per worker and per run.
fn seed_for(index: usize) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let x =
        (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos ^ crate::task::next_unique();
    x | 1
}

/// Whether `task` belongs to the run `shared` (compared by address: the
/// header sees its run only as a `dyn Scheduler`).
fn same_run(task: &TaskRef, shared: &Arc<Shared>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(&task.scheduler), Arc::as_ptr(shared))
}
