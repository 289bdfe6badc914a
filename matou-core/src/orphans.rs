//! `Orphans`: a set that owns background tasks and hands them back as they
//! finish, so a server can spawn one task per client and still await every one
//! of them (Miou's `orphans` / `care`); and its [`OrphansHandle`], through which
//! any thread spawns into the set.
//!
//! Invariants:
//! - the set is owned by the first task that uses it; any other task gets
//!   [`Error::NotOwner`];
//! - the tasks in the set are children of the owner, whoever asked for them
//!   (a handle's spawn is carried out by the owner's worker, see
//!   [`handle`]): the owner returning while the set is not empty is a
//!   forgotten child (`StillHasChildren`);
//! - a finished task is reported exactly once, in the order they finished
//!   (each task's worker pushes its id into the [`Mailbox`] when it
//!   terminates);
//! - the set counts as non-empty while a handle's spawn is on its way to the
//!   owner's worker (`Mailbox::requested`), so [`Orphans::next`] returns
//!   `None` only when every accepted spawn has been seen.

mod handle;

pub use handle::{OrphansHandle, Refused, RefusedReason};

use crate::error::Error;
use crate::loom::sync::{Mutex, MutexGuard};
use crate::promise::Promise;
use crate::runtime::context;
use crate::spawn::{spawn_local, spawn_remote};
use crate::syscall::UidHasher;
use crate::task::header::ExitHook;
use crate::task::TaskId;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::hash::BuildHasherDefault;
use std::panic::Location;
use std::sync::Arc;
use std::task::{Poll, Waker};

/// What [`Orphans::care`] found.
///
/// ```
/// use matou_core::{Care, Orphans};
///
/// matou_core::run(async {
///     let set = Orphans::new();
///     assert!(matches!(set.care().unwrap(), Care::Empty));
///     set.spawn(async { 5 }).unwrap();
///     // `care` never waits: the task has not run yet.
///     assert!(matches!(set.care().unwrap(), Care::Pending));
///     matou_core::yield_now().await;
///     match set.care().unwrap() {
///         Care::Ready(p) => assert_eq!(p.await.unwrap(), 5),
///         other => unreachable!("{other:?}"),
///     }
/// });
/// ```
#[derive(Debug)]
pub enum Care<T> {
    /// The set holds no task (and no handle's spawn is on its way).
    Empty,
    /// The set holds tasks, none finished yet.
    Pending,
    /// A finished task; await its promise for the result (it is ready).
    Ready(Promise<T>),
}

/// What the set shares with the workers of its tasks and with its handles.
#[derive(Default)]
pub(crate) struct Mailbox {
    /// Ids of the tasks that terminated, in that order.
    finished: VecDeque<TaskId>,
    /// Handle spawns accepted and not yet carried out by the owner's worker.
    requested: usize,
    /// No new handle spawn is accepted ([`Orphans::close`], or the set is gone).
    closed: bool,
    /// The set is gone: a spawn arriving now is dropped unpolled.
    dropped: bool,
    /// The owner waiting in [`Orphans::get`].
    waker: Option<Waker>,
}

impl Mailbox {
    fn refusal(&self) -> Result<(), RefusedReason> {
        if self.dropped {
            Err(RefusedReason::OwnerGone)
        } else if self.closed {
            Err(RefusedReason::Closed)
        } else {
            Ok(())
        }
    }
}

#[derive(Default)]
pub(crate) struct Shared(Mutex<Mailbox>);

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Mailbox> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why a handle spawn would be refused now, if it would.
    pub(crate) fn refusal(&self) -> Result<(), RefusedReason> {
        self.lock().refusal()
    }

    /// Accepts a handle spawn from away from the owner's worker: counts it
    /// as on its way, under the lock `close` takes.
    pub(crate) fn admit(&self) -> Result<(), RefusedReason> {
        let mut m = self.lock();
        m.refusal()?;
        m.requested += 1;
        Ok(())
    }

    /// An admitted spawn reached the owner's worker; returns whether the set
    /// still exists to take it.
    pub(crate) fn arrived(&self) -> bool {
        let mut m = self.lock();
        m.requested -= 1;
        !m.dropped
    }

    /// Wakes the owner if it waits in `get`.
    pub(crate) fn wake_owner(&self) {
        let waker = self.lock().waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl ExitHook for Shared {
    fn task_exited(&self, _key: usize, id: TaskId) {
        let waker = {
            let mut m = self.lock();
            m.finished.push_back(id);
            m.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The promises a handle's spawns made, on their way into the set's table.
/// Only the owner's worker thread pushes and pops (the lock is for the types:
/// the handle that holds it is `Sync`).
type Adopted<T> = Mutex<Vec<Promise<T>>>;

/// A set of background tasks owned by one task.
///
/// The set's tasks are children of its owner (the first task to use it); the
/// owner collects them as they finish with [`next`](Orphans::next),
/// [`get`](Orphans::get) or [`care`](Orphans::care), and must have emptied the
/// set before it returns. Code that is not the owner spawns into the set
/// through an [`OrphansHandle`].
///
/// ```
/// use matou_core::Orphans;
///
/// let total = matou_core::run(async {
///     let clients = Orphans::new();
///     for n in 1..=3 {
///         clients.spawn(async move { n * 10 }).unwrap();
///     }
///     let mut total = 0;
///     // `None` only once the set is empty: every task was collected.
///     while let Some(result) = clients.next().await.unwrap() {
///         total += result.unwrap();
///     }
///     total
/// });
/// assert_eq!(total, 60);
/// ```
pub struct Orphans<T> {
    owner: Cell<Option<TaskId>>,
    tasks: RefCell<HashMap<TaskId, Promise<T>, BuildHasherDefault<UidHasher>>>,
    shared: Arc<Shared>,
    adopted: OnceCell<Arc<Adopted<T>>>,
}

impl<T> Default for Orphans<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Orphans<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orphans")
            .field("len", &self.tasks.borrow().len())
            .finish()
    }
}

impl<T> Orphans<T> {
    /// An empty set, not owned yet.
    pub fn new() -> Self {
        Orphans {
            owner: Cell::new(None),
            tasks: RefCell::new(HashMap::default()),
            shared: Arc::default(),
            adopted: OnceCell::new(),
        }
    }

    fn check_owner(&self) -> Result<(), Error> {
        let Some(cur) = context::current() else {
            return Err(Error::NotOwner);
        };
        match self.owner.get() {
            None => {
                self.owner.set(Some(cur.id));
                Ok(())
            }
            Some(id) if id == cur.id => Ok(()),
            Some(_) => Err(Error::NotOwner),
        }
    }

    fn hook(&self) -> (Arc<dyn ExitHook>, usize) {
        (self.shared.clone() as Arc<dyn ExitHook>, 0)
    }

    fn insert(&self, p: Promise<T>) {
        self.tasks.borrow_mut().insert(p.id(), p);
    }

    /// Spawns `future` on the current worker into the set.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> Result<(), Error>
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        let at = Location::caller();
        self.check_owner()?;
        let hook = self.hook();
        let p = context::with_current("Orphans::spawn", |w, cur| {
            spawn_local(w, cur, future, at, Some(hook))
        });
        self.insert(p);
        Ok(())
    }

    /// Like [`call`](crate::call), into the set.
    ///
    /// # Errors
    /// [`Error::NotOwner`], or [`Error::NoDomainAvailable`].
    #[track_caller]
    pub fn call<G, F>(&self, make: G) -> Result<(), Error>
    where
        G: FnOnce() -> F + Send + 'static,
        F: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let at = Location::caller();
        self.check_owner()?;
        let hook = self.hook();
        let p = context::with_current("Orphans::call", |w, cur| {
            let target = w.shared.pick_worker(w.index)?;
            Ok(spawn_remote(w, cur, target, make, at, Some(hook)))
        })?;
        self.insert(p);
        Ok(())
    }

    /// A `Clone + Send + Sync` handle through which any code, on any thread,
    /// spawns tasks into this set (see [`OrphansHandle`]). The calling task
    /// becomes the owner if the set had none.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task (or the caller
    /// is not a matou task).
    pub fn handle(&self) -> Result<OrphansHandle<T>, Error>
    where
        T: Send + 'static,
    {
        self.check_owner()?;
        let owner = context::current().ok_or(Error::NotOwner)?;
        let adopted = self.adopted.get_or_init(Arc::default).clone();
        Ok(
            context::with_worker(|w| OrphansHandle::new(w, owner, self.shared.clone(), adopted))
                .expect("a current task runs on a worker"),
        )
    }

    /// Stops accepting spawns from [`OrphansHandle`]s: from now on they are
    /// refused with [`RefusedReason::Closed`]. Spawns already accepted still
    /// join the set, and [`next`](Orphans::next) waits for them. Call it before
    /// the final drain of a set whose handles may still be in use, so that no
    /// task arrives after the drain. The set's own `spawn` and `call` are not
    /// affected.
    pub fn close(&self) {
        self.shared.lock().closed = true;
    }

    /// Moves the promises made by handle spawns into the table.
    fn collect_adopted(&self) {
        if let Some(adopted) = self.adopted.get() {
            let mut adopted = adopted.lock().unwrap_or_else(|e| e.into_inner());
            let mut tasks = self.tasks.borrow_mut();
            for p in adopted.drain(..) {
                tasks.insert(p.id(), p);
            }
        }
    }

    /// A finished task if there is one, else whether the set is empty. Never
    /// waits.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task.
    pub fn care(&self) -> Result<Care<T>, Error> {
        self.check_owner()?;
        // Handle spawns are adopted on this thread (the owner's worker), so
        // none can slip in between the two steps below.
        self.collect_adopted();
        let mut tasks = self.tasks.borrow_mut();
        let mut mailbox = self.shared.lock();
        while let Some(id) = mailbox.finished.pop_front() {
            // An id whose task was `take`n out meanwhile is skipped.
            if let Some(p) = tasks.remove(&id) {
                return Ok(Care::Ready(p));
            }
        }
        Ok(if tasks.is_empty() && mailbox.requested == 0 {
            Care::Empty
        } else {
            Care::Pending
        })
    }

    /// Waits for the next task to finish and hands its promise back (awaiting
    /// it does not wait); `None` when the set is empty.
    ///
    /// Cancel safe: dropping the future while it waits loses nothing.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task.
    pub async fn get(&self) -> Result<Option<Promise<T>>, Error> {
        poll_fn(|cx| match self.care() {
            Err(e) => Poll::Ready(Err(e)),
            Ok(Care::Empty) => Poll::Ready(Ok(None)),
            Ok(Care::Ready(p)) => Poll::Ready(Ok(Some(p))),
            Ok(Care::Pending) => {
                let mut m = self.shared.lock();
                if !m.finished.is_empty() {
                    drop(m);
                    cx.waker().wake_by_ref();
                } else {
                    m.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }

    /// Waits while the set is not empty for the next task to finish, and
    /// gives its result; `Ok(None)` only when the set is empty (no task, and
    /// no handle spawn on its way).
    ///
    /// Cancel safe: the wait is [`get`](Orphans::get)'s, and the result of a
    /// finished task is taken without waiting, so dropping the future loses
    /// no result.
    ///
    /// ```
    /// use matou_core::Orphans;
    ///
    /// matou_core::run(async {
    ///     let set = Orphans::new();
    ///     set.spawn(async { panic!("one client failed") }).unwrap();
    ///     set.spawn(async { "ok" }).unwrap();
    ///     let mut failures = 0;
    ///     while let Some(r) = set.next().await.unwrap() {
    ///         failures += usize::from(r.is_err());
    ///     }
    ///     assert_eq!(failures, 1); // the panic is that task's error only
    /// });
    /// ```
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task.
    pub async fn next(&self) -> Result<Option<Result<T, Error>>, Error> {
        match self.get().await? {
            None => Ok(None),
            Some(p) => Ok(Some(p.await)),
        }
    }

    /// Takes any one task out of the set, finished or not (the caller then
    /// owns its promise).
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task.
    pub fn take(&self) -> Result<Option<Promise<T>>, Error> {
        self.check_owner()?;
        self.collect_adopted();
        let mut tasks = self.tasks.borrow_mut();
        let id = tasks.keys().next().copied();
        Ok(id.and_then(|id| tasks.remove(&id)))
    }

    /// How many tasks the set holds (finished or not; handle spawns count
    /// once the owner's worker has carried them out).
    pub fn len(&self) -> usize {
        self.collect_adopted();
        self.tasks.borrow().len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Orphans<T> {
    fn drop(&mut self) {
        {
            let mut m = self.shared.lock();
            m.closed = true;
            m.dropped = true;
        }
        // Every promise drops here, on the owner's thread, with the table (a
        // handle may keep the adopted list alive longer).
        self.collect_adopted();
    }
}
