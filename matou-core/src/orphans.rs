//! `Orphans`: a set that owns background tasks and hands them back as they
//! finish, so a server can spawn one task per client and still await every one
//! of them (Miou's `orphans` / `care`).
//!
//! Invariants:
//! - the set is owned by the first task that uses it; any other task gets
//!   [`Error::NotOwner`];
//! - the tasks in the set are children of the owner: the owner returning while
//!   the set is not empty aborts the run (`StillHasChildren`), like any
//!   forgotten child;
//! - a finished task is reported exactly once, in the order they finished
//!   (each task's worker pushes its key here when it terminates).

use crate::error::Error;
use crate::promise::Promise;
use crate::runtime::context;
use crate::spawn::{spawn_local, spawn_remote};
use crate::task::header::ExitHook;
use crate::task::TaskId;
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// What [`Orphans::care`] found.
#[derive(Debug)]
pub enum Care<T> {
    /// The set holds no task.
    Empty,
    /// The set holds tasks, none finished yet.
    Pending,
    /// A finished task; await its promise for the result.
    Ready(Promise<T>),
}

#[derive(Default)]
struct Finished {
    keys: VecDeque<(usize, TaskId)>,
    waker: Option<Waker>,
}

#[derive(Default)]
struct Inbox(Mutex<Finished>);

impl ExitHook for Inbox {
    fn task_exited(&self, key: usize, id: TaskId) {
        let waker = {
            let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
            f.keys.push_back((key, id));
            f.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A set of background tasks owned by one task.
pub struct Orphans<T> {
    owner: Cell<Option<TaskId>>,
    tasks: RefCell<Slab<Promise<T>>>,
    finished: Arc<Inbox>,
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
            tasks: RefCell::new(Slab::new()),
            finished: Arc::default(),
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
        let key = self.tasks.borrow().vacant_key();
        (self.finished.clone() as Arc<dyn ExitHook>, key)
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
        self.tasks.borrow_mut().insert(p);
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
        self.tasks.borrow_mut().insert(p);
        Ok(())
    }

    /// A finished task if there is one, else whether the set is empty.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task.
    pub fn care(&self) -> Result<Care<T>, Error> {
        self.check_owner()?;
        let mut tasks = self.tasks.borrow_mut();
        loop {
            let next = self
                .finished
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keys
                .pop_front();
            let Some((key, id)) = next else { break };
            // A key whose task was `take`n out meanwhile may name another task now.
            if tasks.get(key).is_some_and(|p| p.id() == id) {
                return Ok(Care::Ready(tasks.remove(key)));
            }
        }
        Ok(if tasks.is_empty() {
            Care::Empty
        } else {
            Care::Pending
        })
    }

    /// Waits for the next task to finish and hands it back; `None` when the set
    /// is empty.
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task.
    pub async fn get(&self) -> Result<Option<Promise<T>>, Error> {
        poll_fn(|cx| match self.care() {
            Err(e) => Poll::Ready(Err(e)),
            Ok(Care::Empty) => Poll::Ready(Ok(None)),
            Ok(Care::Ready(p)) => Poll::Ready(Ok(Some(p))),
            Ok(Care::Pending) => {
                let mut f = self.finished.0.lock().unwrap_or_else(|e| e.into_inner());
                if !f.keys.is_empty() {
                    drop(f);
                    cx.waker().wake_by_ref();
                } else {
                    f.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }

    /// Takes any one task out of the set, finished or not (the caller then
    /// owns its promise).
    ///
    /// # Errors
    /// [`Error::NotOwner`] when the set belongs to another task.
    pub fn take(&self) -> Result<Option<Promise<T>>, Error> {
        self.check_owner()?;
        let mut tasks = self.tasks.borrow_mut();
        let key = tasks.iter().next().map(|(k, _)| k);
        Ok(key.map(|k| tasks.remove(k)))
    }

    /// How many tasks the set holds (finished or not).
    pub fn len(&self) -> usize {
        self.tasks.borrow().len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
