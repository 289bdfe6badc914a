//! The thread-local link from a worker thread to its [`Worker`].
//!
//! Installed by `run` on dom0 and by each worker thread for the duration of
//! the run, and removed before the thread leaves it. Everything that needs
//! "the current worker" or "the current task" (spawn, promises, syscalls)
//! goes through here.

use super::worker::{Current, Worker};
use std::cell::RefCell;
use std::rc::Rc;

thread_local! {
    static WORKER: RefCell<Option<Rc<Worker>>> = const { RefCell::new(None) };
}

pub(crate) fn install(worker: Rc<Worker>) {
    WORKER.with(|w| {
        let mut w = w.borrow_mut();
        assert!(w.is_none(), "matou::run called from inside a matou worker");
        *w = Some(worker);
    });
}

pub(crate) fn uninstall() {
    let _ = WORKER.try_with(|w| w.borrow_mut().take());
}

pub(crate) fn is_installed() -> bool {
    WORKER.try_with(|w| w.borrow().is_some()).unwrap_or(false)
}

/// Runs `f` with this thread's worker, if it is one.
pub(crate) fn with_worker<R>(f: impl FnOnce(&Worker) -> R) -> Option<R> {
    WORKER
        .try_with(|w| w.borrow().as_ref().map(|w| f(w)))
        .ok()
        .flatten()
}

/// Runs `f` with this thread's worker and the task it is polling.
///
/// # Panics
/// Outside a matou task (no run on this thread, or between polls), with a
/// message naming `what`.
#[track_caller]
pub(crate) fn with_current<R>(what: &str, f: impl FnOnce(&Worker, Current) -> R) -> R {
    match with_worker(|w| w.current().map(|c| f(w, c))) {
        Some(Some(r)) => r,
        _ => panic!("{what} must be called from inside a matou task"),
    }
}

/// The current task, if this thread is polling one.
pub(crate) fn current() -> Option<Current> {
    with_worker(|w| w.current()).flatten()
}
