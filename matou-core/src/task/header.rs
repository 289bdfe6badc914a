//! A task's one allocation: the shared header, then its typed body.
//!
//! `Arc<Header<TaskCell<G, F>>>` is made once per task, then seen through
//! the unsized [`TaskRef`] (`Arc<Header<dyn Body>>`) by everything that does
//! not know the future's type: the worker's slot and queues, the children
//! tables, the inbox messages, the promise. The header is what other threads
//! may touch (state bits, the parent's waker, the route to the worker); the
//! body is the worker's (see [`super::cell`]).
//!
//! Who holds a reference:
//! - the owning worker's slot for the task, until the task terminates;
//! - the parent's children table, until the parent awaits or cancels it;
//! - every `Waker` made for the task, and the queue entries that schedule it
//!   (a remote one sits in the header's own [`link`](Header::link): while
//!   the message is in a worker's inbox, the task holds itself alive);
//! - the [`Promise`](crate::Promise), and each child's `parent` link.
//!
//! Wakers point straight at the allocation: a `RawWaker` whose data is the
//! header's address and whose vtable, one per body type, knows the concrete
//! `Arc` type to count and drop ([`waker_vtable`]). So making, cloning and
//! waking a waker costs what an `Arc` clone costs, and no allocation.

use super::cell::Body;
use super::state::{ChildCount, Notify, State};
use super::waiter::WaiterSlot;
use super::Scheduler;
use super::TaskId;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::Arc;
use crate::runtime::inbox::Link;
use crate::runtime::shared::Remote;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::task::{RawWaker, RawWakerVTable, Waker};

/// Called when a task terminates, on its worker's thread (used by `Orphans`).
pub(crate) trait ExitHook: Send + Sync {
    fn task_exited(&self, key: usize, id: TaskId);
}

/// A task, typed by its body `B` when made, `dyn Body` everywhere else.
pub(crate) struct Header<B: ?Sized = dyn Body> {
    pub(crate) state: State,
    pub(crate) id: TaskId,
    /// Index of the worker that owns the task; fixed (tasks never migrate).
    pub(crate) worker: usize,
    /// Key of the task's slot in its worker's table; written and read by the
    /// owning worker's thread only (an atomic just to keep `Header: Sync`).
    pub(crate) slot: AtomicUsize,
    /// The run the task belongs to (its way back onto a queue).
    pub(crate) scheduler: Arc<dyn Scheduler>,
    pub(crate) parent: Option<TaskRef>,
    pub(crate) spawned_at: &'static Location<'static>,
    /// The name given by `spawn_named`, set before the task first runs.
    pub(crate) name: std::sync::OnceLock<Box<str>>,
    /// The task's span, made on its first poll (`crate::trace`).
    #[cfg(feature = "tracing")]
    pub(crate) span: std::sync::OnceLock<tracing::Span>,
    /// The waker of whoever awaits or cancels the promise.
    pub(crate) waiter: WaiterSlot,
    pub(crate) exit_hook: Option<(Arc<dyn ExitHook>, usize)>,
    /// The task's place in a worker's inbox, for its spawn or wake message
    /// (so a remote hand-off allocates nothing). Free whenever the task is
    /// not queued remotely: a task is in at most one queue at a time (see
    /// `state`), and its worker drains the message before it clears
    /// `NOTIFIED`, which the next pusher must set first.
    pub(crate) link: Link<Remote>,
    /// How many children have not terminated, and whether the task is
    /// cancelling (waiting for them).
    children: ChildCount,
    /// The future and then the result; last, so the header can be unsized.
    pub(crate) body: B,
}

/// A task whose body type has been forgotten.
pub(crate) type TaskRef = Arc<Header>;

impl<B: Body> Header<B> {
    pub(crate) fn new(
        scheduler: Arc<dyn Scheduler>,
        worker: usize,
        parent: Option<TaskRef>,
        spawned_at: &'static Location<'static>,
        exit_hook: Option<(Arc<dyn ExitHook>, usize)>,
        body: B,
    ) -> Header<B> {
        Header {
            state: State::new_scheduled(),
            id: TaskId::next(),
            worker,
            slot: AtomicUsize::new(usize::MAX),
            scheduler,
            parent,
            spawned_at,
            name: std::sync::OnceLock::new(),
            #[cfg(feature = "tracing")]
            span: std::sync::OnceLock::new(),
            waiter: WaiterSlot::new(),
            exit_hook,
            link: Link::new(),
            children: ChildCount::new(),
            body,
        }
    }
}

impl Header {
    /// Puts the task on its worker's run queue unless it is already queued or
    /// has terminated.
    pub(crate) fn schedule(self: &Arc<Self>) {
        if self.state.notify() == Notify::Enqueue {
            self.scheduler.enqueue(self.clone());
        }
    }

    /// Asks the task to cancel itself (and its subtree) and schedules it so
    /// that its worker notices, interrupting that worker if it sleeps.
    pub(crate) fn request_cancel(self: &Arc<Self>) {
        if self.state.request_cancel() == Notify::Enqueue {
            self.scheduler.enqueue(self.clone());
        }
    }

    /// A child was spawned (by this task's worker).
    pub(crate) fn child_spawned(&self) {
        self.children.spawned();
    }

    /// Called by a child's worker once the child has terminated: schedules
    /// this task if it is cancelling and that was its last child.
    pub(crate) fn child_terminated(self: &Arc<Self>) {
        if self.children.terminated() {
            self.schedule();
        }
    }

    /// Records that the task is cancelling; returns whether this is the
    /// first time (the caller then cancels the children). Its worker only.
    pub(crate) fn start_cancelling(&self) -> bool {
        self.children.start_cancelling()
    }

    /// Whether the task is cancelling (see `start_cancelling`).
    pub(crate) fn is_cancelling(&self) -> bool {
        self.children.is_cancelling()
    }

    /// Whether every child has terminated.
    pub(crate) fn children_all_ended(&self) -> bool {
        self.children.all_ended()
    }

    pub(crate) fn slot(&self) -> usize {
        self.slot.load(Ordering::Relaxed)
    }
}

/// A waker that owns one reference to `task`.
pub(crate) fn waker(task: TaskRef) -> Waker {
    let vtable = task.body.waker_vtable();
    let data = Arc::into_raw(task) as *const ();
    // SAFETY: `data` carries the reference just given up, and `vtable` is the
    // one for this task's body type (it came from the body itself), as
    // `waker_vtable`'s functions require.
    unsafe { Waker::from_raw(RawWaker::new(data, vtable)) }
}

/// Calls `f` with a `Waker` for `task` that borrows the caller's reference
/// instead of taking one, so polling a task costs no reference-count traffic.
pub(crate) fn with_waker_ref<R>(task: &TaskRef, f: impl FnOnce(&Waker) -> R) -> R {
    let data = Arc::as_ptr(task) as *const ();
    // SAFETY: as in `waker`, except that the reference is borrowed:
    // `ManuallyDrop` keeps the waker's drop (a decrement) from running, and
    // `task` outlives the call; a clone made inside `f` increments normally.
    let waker = ManuallyDrop::new(unsafe {
        Waker::from_raw(RawWaker::new(data, task.body.waker_vtable()))
    });
    f(&waker)
}

/// The raw-waker vtable of tasks whose body is `B`. Its functions take the
/// address of an `Arc<Header<B>>`'s header (the data pointer of the unsized
/// `TaskRef` is the same address).
pub(crate) fn waker_vtable<B: Body>() -> &'static RawWakerVTable {
    &VTable::<B>::VTABLE
}

struct VTable<B>(std::marker::PhantomData<B>);

impl<B: Body> VTable<B> {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        clone_waker::<B>,
        wake_by_val::<B>,
        wake_by_ref::<B>,
        drop_waker::<B>,
    );
}

/// # Safety (all four)
/// `data` is the address of a live `Arc<Header<B>>`'s header, and the waker
/// owns one reference to it (borrowed, for `wake_by_ref`).
unsafe fn clone_waker<B: Body>(data: *const ()) -> RawWaker {
    // SAFETY: see above; the new waker owns the reference counted here.
    unsafe { Arc::increment_strong_count(data as *const Header<B>) };
    RawWaker::new(data, waker_vtable::<B>())
}

unsafe fn wake_by_val<B: Body>(data: *const ()) {
    // SAFETY: see above; this takes over the waker's reference.
    let task: TaskRef = unsafe { Arc::from_raw(data as *const Header<B>) };
    if task.state.notify() == Notify::Enqueue {
        // The queue gets its own reference so that `task` keeps the
        // scheduler alive for the call (cloning the task's count, not the
        // run's, which every worker shares).
        task.scheduler.enqueue(task.clone());
    }
}

unsafe fn wake_by_ref<B: Body>(data: *const ()) {
    // SAFETY: see above; the reference is borrowed, not taken.
    let task = ManuallyDrop::new(unsafe { Arc::from_raw(data as *const Header<B>) });
    if task.state.notify() == Notify::Enqueue {
        task.scheduler.enqueue(Arc::<Header<B>>::clone(&task));
    }
}

unsafe fn drop_waker<B: Body>(data: *const ()) {
    // SAFETY: see above; the waker's reference is released.
    drop(unsafe { Arc::from_raw(data as *const Header<B>) });
}
