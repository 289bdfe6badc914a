//! Running: the [`Builder`], [`run`], the workers' threads, and shutdown.
//!
//! `run` turns the calling thread into dom0 (worker 0), starts the extra
//! workers, runs the main future as the root task on dom0, and returns its
//! value. Invariants:
//! - every worker has installed its event source (and so its interrupter)
//!   before the main future is first polled, so a remote message can always
//!   interrupt its target;
//! - `run` returns only after every worker thread has been joined; nothing of
//!   the run outlives it;
//! - a run aborted (a worker's event source failed to build) drops every
//!   remaining task, on its own worker, before `run` reports the error;
//! - a main future that forgot children ends like any task that did (its
//!   children cancelled and awaited first), with `StillHasChildren` as its
//!   result, which `run` reports.

pub(crate) mod context;
pub(crate) mod inbox;
mod lifecycle;
mod padded;
pub(crate) mod shared;
mod spin;
pub(crate) mod worker;

pub(crate) use shared::Shared;

use crate::error::Error;
use crate::seam::{EventSource, ParkingEventSource};
use crate::task::cell::{Body, TaskCell};
use crate::task::header::{Header, TaskRef};
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::Duration;
use worker::Worker;

type Factory = Arc<dyn Fn(WorkerId) -> Box<dyn EventSource> + Send + Sync>;

/// Which worker a task runs on. Worker 0 is dom0, the thread that called `run`.
///
/// ```
/// use matou_core::{call, current_worker, Builder};
///
/// Builder::new().extra_workers(1).run(async {
///     assert!(current_worker().is_dom0()); // the main task runs on dom0
///     let there = call(|| async { current_worker() }).unwrap().await.unwrap();
///     assert_eq!(there.index(), 1); // `call` never picks dom0
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(usize);

impl WorkerId {
    pub(crate) fn new(index: usize) -> WorkerId {
        WorkerId(index)
    }

    /// 0 for dom0, then 1, 2, ... for the extra workers.
    pub fn index(self) -> usize {
        self.0
    }

    /// Whether this is dom0, which never receives parallel work from others.
    pub fn is_dom0(self) -> bool {
        self.0 == 0
    }
}

/// Configures a run: how many extra workers, and each worker's event source.
///
/// ```
/// use std::time::Duration;
///
/// let workers = matou_core::Builder::new()
///     .extra_workers(2)
///     .idle_spin(Duration::ZERO) // block at once when idle
///     .run(async { matou_core::worker_count() });
/// assert_eq!(workers, 3); // dom0 and two more
/// ```
pub struct Builder {
    extra_workers: Option<usize>,
    factory: Option<Factory>,
    idle_spin: Duration,
    poll_hooks: Option<crate::hooks::PollHooks>,
}

/// How long an idle worker keeps looking for work before it blocks in its
/// event source, unless [`Builder::idle_spin`] says otherwise.
pub const DEFAULT_IDLE_SPIN: Duration = Duration::from_micros(50);

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("extra_workers", &self.extra_workers)
            .field("idle_spin", &self.idle_spin)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Defaults: one extra worker per available core beyond the first, and the
    /// [`ParkingEventSource`] (no syscalls, sleeps until interrupted).
    pub fn new() -> Self {
        Builder {
            extra_workers: None,
            factory: None,
            idle_spin: DEFAULT_IDLE_SPIN,
            poll_hooks: None,
        }
    }

    /// How long a worker that runs out of tasks keeps looking for more
    /// (messages from other workers, events) before it blocks in its event
    /// source; default [`DEFAULT_IDLE_SPIN`].
    ///
    /// Waking a blocked thread costs an interrupt and a trip through the OS
    /// scheduler: tens of microseconds on a virtual machine, paid on every
    /// hand-off between tasks on different workers when the receiver has
    /// gone to sleep. A brief spin (pure at first, then yielding the CPU
    /// between checks) catches
    /// the reply of a busy peer instead, at the cost of at most this much CPU
    /// time each time the worker runs dry. `Duration::ZERO` blocks at once.
    ///
    /// The spin is adaptive: a worker spins only while work (hand-offs from
    /// other threads, events) has lately been arriving within this budget of
    /// it going idle; otherwise it blocks at once, so a worker that waits for
    /// slow peers, timers or a starved client leaves its core to other
    /// threads (a load generator on the same machine, say). It spins again
    /// once work comes back that soon.
    pub fn idle_spin(mut self, spin: Duration) -> Self {
        self.idle_spin = spin;
        self
    }

    /// Hooks run by each worker on its own thread just before (`start`) and
    /// just after (`stop`) it polls a task's future (Miou's `Hook`): for
    /// tracing, profiling, or finding the task that blocks a worker. A hook
    /// must not block; a panicking hook is caught and ignored. See
    /// [`TaskInfo`](crate::TaskInfo) for an example.
    pub fn on_task_poll<S, E>(mut self, start: S, stop: E) -> Self
    where
        S: Fn(&crate::TaskInfo<'_>) + Send + Sync + 'static,
        E: Fn(&crate::TaskInfo<'_>) + Send + Sync + 'static,
    {
        self.poll_hooks = Some(crate::hooks::PollHooks {
            start: Box::new(start),
            stop: Box::new(stop),
        });
        self
    }

    /// Workers besides dom0 (0 is allowed: everything then runs on dom0 and
    /// `call` reports [`Error::NoDomainAvailable`]).
    pub fn extra_workers(mut self, n: usize) -> Self {
        self.extra_workers = Some(n);
        self
    }

    /// The event source of each worker, built by `factory` on that worker's
    /// own thread when the run starts.
    pub fn event_source<E>(mut self, factory: E) -> Self
    where
        E: Fn(WorkerId) -> Box<dyn EventSource> + Send + Sync + 'static,
    {
        self.factory = Some(Arc::new(factory));
        self
    }

    /// Runs `future` to completion on this thread with the configured workers
    /// and returns its value.
    ///
    /// # Panics
    /// Re-raises the main future's panic; panics with the error when the run
    /// fails otherwise (e.g. [`Error::StillHasChildren`]: the main future
    /// forgot a child, or a child's `StillHasChildren` was returned by it).
    /// [`Builder::try_run`] gives the failure as a value instead.
    #[track_caller]
    pub fn run<F: Future + 'static>(self, future: F) -> F::Output {
        match self.try_run(future) {
            Ok(v) => v,
            Err(Error::Panicked(p)) => resume_unwind(p.into_inner()),
            Err(e) => panic!("matou: run aborted: {e}"),
        }
    }

    /// Like [`Builder::run`], with the failure as a value.
    ///
    /// # Errors
    /// [`Error::Panicked`] when the main future panicked,
    /// [`Error::StillHasChildren`] when the main future returned while some of
    /// its children were neither awaited nor cancelled (they were cancelled
    /// and awaited before `try_run` returns). A child task that forgot its own
    /// children fails alone: its parent sees the error on its promise.
    #[track_caller]
    pub fn try_run<F: Future + 'static>(self, future: F) -> Result<F::Output, Error> {
        let at = Location::caller();
        assert!(
            !context::is_installed(),
            "matou::run called from inside a matou worker"
        );
        let extra = self.extra_workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .saturating_sub(1)
        });
        let factory: Factory = self.factory.unwrap_or_else(|| {
            Arc::new(|_| Box::new(ParkingEventSource::new()) as Box<dyn EventSource>)
        });
        let shared = Arc::new(Shared::new(extra + 1, self.idle_spin, self.poll_hooks));
        let ready = Arc::new(Barrier::new(extra + 1));

        let threads: Vec<_> = (1..=extra)
            .map(|index| {
                let (shared, factory, ready) = (shared.clone(), factory.clone(), ready.clone());
                std::thread::Builder::new()
                    .name(format!("matou-worker-{index}"))
                    .spawn(move || worker_thread(shared, index, factory, ready))
                    .expect("matou: could not start a worker thread")
            })
            .collect();

        let root = Arc::new(Header::new(
            shared.clone(),
            0,
            None,
            at,
            None,
            TaskCell::running(future),
        ));
        let events = catch_unwind(AssertUnwindSafe(|| factory(WorkerId(0))));
        let dom0 = events.map(|events| Rc::new(Worker::new(shared.clone(), 0, events)));
        ready.wait();
        let mut started = false;
        if let Ok(dom0) = &dom0 {
            context::install(dom0.clone());
            if !shared.is_shutdown() {
                started = true;
                let root: TaskRef = root.clone();
                shared.task_born(0);
                dom0.insert_task(root.clone());
                dom0.run(Some(&root));
            }
        }
        if !started {
            // SAFETY: never polled, never handed to a worker: this thread, the
            // one that built the future, is the only one to touch it.
            unsafe { root.body.drop_future() };
        }
        shared.begin_shutdown();
        if let Ok(dom0) = &dom0 {
            dom0.clean_up();
            dom0.finalize();
            context::uninstall();
        }
        let mut worker_panic = None;
        for t in threads {
            if let Err(p) = t.join() {
                worker_panic.get_or_insert(p);
            }
        }
        if let Err(p) = dom0 {
            resume_unwind(p);
        }
        if let Some(p) = worker_panic {
            resume_unwind(p);
        }
        debug_assert_eq!(shared.live_count(), 0, "tasks outlived their run");
        if let Some(err) = shared.take_abort() {
            return Err(err);
        }
        // SAFETY: every worker has been joined and dom0 has cleaned up, so
        // the root has terminated (or was never started) and this thread is
        // the only one left to touch it; it has no promise to give the
        // result to.
        unsafe { root.body.take() }.unwrap_or(Err(Error::Cancelled))
    }
}

fn worker_thread(shared: Arc<Shared>, index: usize, factory: Factory, ready: Arc<Barrier>) {
    let events = catch_unwind(AssertUnwindSafe(|| factory(WorkerId(index))));
    let worker = match events {
        Ok(events) => Rc::new(Worker::new(shared.clone(), index, events)),
        Err(p) => {
            shared.abort(Error::Panicked(crate::error::PanicPayload::new(p)));
            ready.wait();
            return;
        }
    };
    ready.wait();
    context::install(worker.clone());
    worker.run(None);
    worker.clean_up();
    worker.finalize();
    context::uninstall();
}

/// Runs `future` with the default [`Builder`] and returns its value.
///
/// # Panics
/// See [`Builder::run`].
#[track_caller]
pub fn run<F: Future + 'static>(future: F) -> F::Output {
    Builder::new().run(future)
}

/// A pseudo-random number below `n` from this worker's generator (0 off a
/// worker thread).
pub(crate) fn random_below(n: usize) -> usize {
    context::with_worker(|w| w.random_below(n)).unwrap_or(0)
}

/// The worker the calling task runs on.
///
/// # Panics
/// Outside a matou worker.
pub fn current_worker() -> WorkerId {
    context::with_worker(|w| WorkerId(w.index))
        .expect("matou::current_worker called outside a matou worker")
}

/// How many workers this run has, dom0 included.
///
/// # Panics
/// Outside a matou worker.
pub fn worker_count() -> usize {
    context::with_worker(|w| w.shared.workers.len())
        .expect("matou::worker_count called outside a matou worker")
}

/// How many tasks of this run are alive (spawned and not yet terminated),
/// the main task included.
///
/// # Panics
/// Outside a matou worker.
pub fn live_tasks() -> usize {
    context::with_worker(|w| w.shared.live_count())
        .expect("matou::live_tasks called outside a matou worker")
}
