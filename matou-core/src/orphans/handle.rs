//! [`OrphansHandle`]: spawning into an [`Orphans`](crate::Orphans) set from
//! anywhere, e.g. from a library's executor callback.
//!
//! A task of the set must be a child of the set's owner, and a task's
//! children table is touched only by its own worker's thread. So a handle
//! never makes the task itself when it is elsewhere: it counts the request in
//! the set's mailbox (`requested`, under the lock that `close` takes too) and
//! sends the owner's worker a `Remote::Run` job through that worker's inbox,
//! the path remote spawns and wakes already take. The job, on the owner's
//! thread, makes the child under the owner (if the owner still takes
//! children), leaves its promise in the set's adopted list, and wakes the
//! owner. On the owner's worker itself the handle does the same at once.
//!
//! Invariants:
//! - a spawn that returned `Ok` has been counted in `requested` before the
//!   handle returned, so the owner's `next` cannot report the set empty before
//!   the job has run (the loom model below checks this against `close`);
//! - a job whose owner is gone (the set dropped, the owner terminated or
//!   cancelling) drops the future unpolled, on the owner's worker.

use super::{Adopted, RefusedReason as Reason, Shared};
use crate::loom::sync::Arc;
use crate::promise::Promise;
use crate::runtime::context;
use crate::runtime::shared::Remote;
use crate::runtime::worker::{Current, Worker};
use crate::runtime::Shared as Run;
use crate::spawn::{spawn_local, spawn_remote};
use crate::task::header::ExitHook;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};

/// Why an [`OrphansHandle`] refused a spawn.
///
/// ```
/// use matou_core::{Builder, Orphans, RefusedReason};
///
/// Builder::new().extra_workers(0).run(async {
///     let set = Orphans::<()>::new();
///     let handle = set.handle().unwrap();
///     // Only dom0 exists: `call` has nowhere to go.
///     let refused = handle.call(|| async {}).unwrap_err();
///     assert_eq!(refused.reason(), RefusedReason::NoDomainAvailable);
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusedReason {
    /// The set was [`close`](crate::Orphans::close)d.
    Closed,
    /// The set or its owner task is gone (dropped, terminated, or being
    /// cancelled), so the task would have no parent to answer to.
    OwnerGone,
    /// [`OrphansHandle::spawn_local`] was called away from the owner's worker.
    NotOnOwnerWorker,
    /// [`OrphansHandle::call`] found no worker other than dom0 and the owner's.
    NoDomainAvailable,
}

/// A refused spawn: why, and the future (or closure) given back unpolled.
///
/// ```
/// use matou_core::{Orphans, RefusedReason};
///
/// matou_core::run(async {
///     let set = Orphans::<u8>::new();
///     let handle = set.handle().unwrap();
///     set.close();
///     let refused = handle.spawn(async { 1 }).unwrap_err();
///     assert_eq!(refused.reason(), RefusedReason::Closed);
///     let _future = refused.into_inner(); // nothing was lost
/// });
/// ```
pub struct Refused<F> {
    reason: Reason,
    value: F,
}

impl<F> Refused<F> {
    fn new(reason: Reason, value: F) -> Self {
        Refused { reason, value }
    }

    /// Why the spawn was refused.
    pub fn reason(&self) -> RefusedReason {
        self.reason
    }

    /// The future (or, for `call`, the closure) that was not spawned.
    pub fn into_inner(self) -> F {
        self.value
    }
}

impl<F> fmt::Debug for Refused<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for Refused<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.reason {
            Reason::Closed => "the orphans set is closed",
            Reason::OwnerGone => "the orphans set or its owner task is gone",
            Reason::NotOnOwnerWorker => "spawn_local called away from the owner's worker",
            Reason::NoDomainAvailable => {
                "no worker is available for parallel work (dom0 and the owner's worker are excluded)"
            }
        })
    }
}

impl<F> std::error::Error for Refused<F> {}

/// Spawns into an [`Orphans`](crate::Orphans) set from any code on any thread
/// (a library callback, another worker, a plain `std::thread`). Made by
/// [`Orphans::handle`](crate::Orphans::handle); `Clone + Send + Sync`.
///
/// The tasks are children of the set's owner, wherever the request came
/// from, and the owner collects them as usual. Placement stays explicit:
/// - [`spawn`](Self::spawn) (a `Send` future, from anywhere) and
///   [`spawn_local`](Self::spawn_local) (any future, only on the owner's
///   worker) run the task concurrently on the owner's worker;
/// - [`call`](Self::call) runs it in parallel on another worker (never dom0,
///   never the owner's).
///
/// Away from the owner's worker a spawn is carried out by that worker a
/// moment later: `Ok` means the request was accepted (the owner's `next` will
/// wait for it). Should the owner go away before its worker gets to the
/// request, the future is dropped unpolled. A refusal seen at once gives the
/// future back ([`Refused`]).
///
/// Call [`Orphans::close`](crate::Orphans::close) before the owner's final
/// drain if handles may still be used, so that nothing arrives after it.
///
/// A library's executor callback (hyper's `rt::Executor` has this shape:
/// `&self`, a `Send` future, any thread) is a thin wrapper:
///
/// ```
/// use matou_core::{Builder, Orphans, OrphansHandle};
/// use std::future::Future;
///
/// // The library's trait, e.g. `hyper::rt::Executor<F>`.
/// trait Executor<F> {
///     fn execute(&self, fut: F);
/// }
///
/// #[derive(Clone)]
/// struct MatouExecutor(OrphansHandle<()>);
///
/// impl<F: Future<Output = ()> + Send + 'static> Executor<F> for MatouExecutor {
///     fn execute(&self, fut: F) {
///         // Refused only once the server is closing: dropping the work is
///         // what the library expects then.
///         let _ = self.0.spawn(fut);
///     }
/// }
///
/// Builder::new().extra_workers(1).run(async {
///     let conns = Orphans::new();
///     let exec = MatouExecutor(conns.handle().unwrap());
///     exec.execute(async { /* a connection's background work */ });
///     conns.close(); // shutting down: no new work, then drain
///     while let Some(r) = conns.next().await.unwrap() {
///         r.unwrap();
///     }
/// });
/// ```
///
/// ```
/// use matou_core::{Builder, Orphans};
///
/// let sum = Builder::new().extra_workers(1).run(async {
///     let set = Orphans::new();
///     let handle = set.handle().unwrap();
///     // A library thread spawns into the set; the owner collects the task.
///     std::thread::spawn(move || handle.spawn(async { 40 + 2 }).unwrap())
///         .join()
///         .unwrap();
///     let mut sum = 0;
///     while let Some(r) = set.next().await.unwrap() {
///         sum += r.unwrap();
///     }
///     sum
/// });
/// assert_eq!(sum, 42);
/// ```
pub struct OrphansHandle<T> {
    owner: Current,
    worker: usize,
    run: Arc<Run>,
    set: Arc<Shared>,
    adopted: Arc<Adopted<T>>,
}

impl<T> Clone for OrphansHandle<T> {
    fn clone(&self) -> Self {
        OrphansHandle {
            owner: self.owner,
            worker: self.worker,
            run: self.run.clone(),
            set: self.set.clone(),
            adopted: self.adopted.clone(),
        }
    }
}

impl<T> fmt::Debug for OrphansHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrphansHandle")
            .field("owner", &self.owner.id)
            .field("worker", &self.worker)
            .finish()
    }
}

type Hook = (Arc<dyn ExitHook>, usize);

impl<T: Send + 'static> OrphansHandle<T> {
    pub(super) fn new(
        w: &Worker,
        owner: Current,
        set: Arc<Shared>,
        adopted: Arc<Adopted<T>>,
    ) -> Self {
        OrphansHandle {
            owner,
            worker: w.index,
            run: w.shared.clone(),
            set,
            adopted,
        }
    }

    /// Spawns `future` into the set, to run concurrently on the owner's
    /// worker. Callable from any thread; from the owner's worker the task is
    /// made at once, from elsewhere by the owner's worker shortly after.
    ///
    /// # Errors
    /// [`RefusedReason::Closed`] or [`RefusedReason::OwnerGone`], with the
    /// future given back.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Result<(), Refused<F>>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let at = Location::caller();
        let make = move |w: &Worker, owner: Current, future: F, hook: Hook| {
            spawn_local(w, owner, future, at, Some(hook))
        };
        match self.here(future, make) {
            Ok(result) => result,
            Err(future) => self.send(future, make),
        }
    }

    /// Spawns `future`, which need not be `Send`, into the set, to run
    /// concurrently on the owner's worker; only from that worker.
    ///
    /// # Errors
    /// [`RefusedReason::NotOnOwnerWorker`] away from the owner's worker,
    /// [`RefusedReason::Closed`] or [`RefusedReason::OwnerGone`]; the future
    /// is given back.
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> Result<(), Refused<F>>
    where
        F: Future<Output = T> + 'static,
    {
        let at = Location::caller();
        let make = move |w: &Worker, owner: Current, future: F, hook: Hook| {
            spawn_local(w, owner, future, at, Some(hook))
        };
        match self.here(future, make) {
            Ok(result) => result,
            Err(future) => Err(Refused::new(Reason::NotOnOwnerWorker, future)),
        }
    }

    /// Like [`call`](crate::call), into the set: the future `make` builds
    /// runs in parallel on a worker that is neither dom0 nor the owner's.
    /// Callable from any thread.
    ///
    /// # Errors
    /// [`RefusedReason::NoDomainAvailable`], [`RefusedReason::Closed`] or
    /// [`RefusedReason::OwnerGone`], with `make` given back.
    #[track_caller]
    pub fn call<G, F>(&self, make: G) -> Result<(), Refused<G>>
    where
        G: FnOnce() -> F + Send + 'static,
        F: Future<Output = T> + 'static,
    {
        let at = Location::caller();
        let Ok(target) = self.run.pick_worker(self.worker) else {
            return Err(Refused::new(Reason::NoDomainAvailable, make));
        };
        let spawn = move |w: &Worker, owner: Current, make: G, hook: Hook| {
            spawn_remote(w, owner, target, make, at, Some(hook))
        };
        match self.here(make, spawn) {
            Ok(result) => result,
            Err(make) => self.send(make, spawn),
        }
    }

    fn hook(&self) -> Hook {
        (self.set.clone() as Arc<dyn ExitHook>, 0)
    }

    /// Makes the task at once when this thread is the owner's worker; else
    /// gives `value` back (`Err`) for the caller to route.
    fn here<V, M>(&self, value: V, make: M) -> Result<Result<(), Refused<V>>, V>
    where
        M: FnOnce(&Worker, Current, V, Hook) -> Promise<T>,
    {
        let mut value = Some(value);
        let made = context::with_worker(|w| {
            if w.index != self.worker || !Arc::ptr_eq(&w.shared, &self.run) {
                return None;
            }
            let value = value.take().expect("taken once");
            Some(self.adopt_here(w, value, make))
        })
        .flatten();
        made.ok_or_else(|| value.take().expect("not taken"))
    }

    fn adopt_here<V, M>(&self, w: &Worker, value: V, make: M) -> Result<(), Refused<V>>
    where
        M: FnOnce(&Worker, Current, V, Hook) -> Promise<T>,
    {
        if let Err(reason) = self.set.refusal() {
            return Err(Refused::new(reason, value));
        }
        if !w.accepts_children(self.owner) {
            return Err(Refused::new(Reason::OwnerGone, value));
        }
        let p = make(w, self.owner, value, self.hook());
        self.adopted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p);
        self.set.wake_owner();
        Ok(())
    }

    /// Away from the owner's worker: counts the request, then hands the
    /// owner's worker a job that makes the task there.
    fn send<V, M>(&self, value: V, make: M) -> Result<(), Refused<V>>
    where
        V: Send + 'static,
        M: FnOnce(&Worker, Current, V, Hook) -> Promise<T> + Send + 'static,
    {
        if let Err(reason) = self.set.admit() {
            return Err(Refused::new(reason, value));
        }
        let (owner, set, adopted, hook) = (
            self.owner,
            self.set.clone(),
            self.adopted.clone(),
            self.hook(),
        );
        let job = move |w: &Worker| {
            let set_alive = set.arrived();
            if set_alive && w.accepts_children(owner) {
                let p = make(w, owner, value, hook);
                adopted.lock().unwrap_or_else(|e| e.into_inner()).push(p);
            } else {
                // The user's destructor must not unwind into the worker loop.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
            }
            set.wake_owner();
        };
        self.run
            .push_remote(self.worker, Remote::Run(Box::new(job)));
        Ok(())
    }
}

/// loom model of the request count against `close` and the owner's drain:
/// `RUSTFLAGS="--cfg loom" cargo test -p matou-core --lib loom`.
#[cfg(all(test, loom))]
mod loom_models {
    use super::super::Shared;
    use crate::loom::sync::atomic::{AtomicBool, Ordering};
    use crate::loom::sync::Arc;
    use crate::loom::thread;
    use crate::runtime::inbox::loom_models::Sticky;
    use crate::runtime::inbox::{Inbox, Pushed};

    /// A handle spawning from another thread while the owner closes the set
    /// and drains it: an accepted spawn is always carried out before the
    /// owner sees the set empty, and a refused one never is.
    #[test]
    fn an_accepted_handle_spawn_is_never_missed_by_the_drain() {
        loom::model(|| {
            let set = Arc::new(Shared::default());
            let inbox = Arc::new(Inbox::<u32>::new());
            let ev = Arc::new(Sticky::default());
            let accepted = Arc::new(AtomicBool::new(false));
            let (s, i, e, a) = (set.clone(), inbox.clone(), ev.clone(), accepted.clone());
            let handle = thread::spawn(move || {
                if s.admit().is_ok() {
                    a.store(true, Ordering::SeqCst);
                    match i.push(7) {
                        Pushed::Queued => {}
                        Pushed::QueuedInterrupt => e.interrupt(),
                        Pushed::Closed(_) => panic!("closed"),
                    }
                }
            });
            // The owner: close, then drain until the set looks empty.
            set.lock().closed = true;
            let mut adopted = Vec::new();
            let mut batch = Vec::new();
            loop {
                inbox.drain(&mut batch);
                for job in batch.drain(..) {
                    assert!(set.arrived(), "the set is alive");
                    adopted.push(job);
                }
                if set.lock().requested == 0 {
                    break;
                }
                if inbox.prepare_sleep() {
                    ev.block();
                    inbox.finish_sleep();
                }
            }
            handle.join().unwrap();
            let expected: &[u32] = if accepted.load(Ordering::SeqCst) {
                &[7]
            } else {
                &[]
            };
            assert_eq!(adopted, expected);
        });
    }
}
