//! The end of a task's life, in one place: what its worker does when the
//! task's future returns, panics, or is cancelled, up to `TERMINATED`.
//!
//! States of a task on its worker, and who may move it on:
//!
//! | state | meaning | left by |
//! |-------|---------|---------|
//! | running | the future may be polled (`Slot::pollable`) | its worker: `finished` (the poll returned or panicked), `advance_cancel` (it saw `CANCEL`) |
//! | cancelling | waits for its children to end (`ChildCount`'s `CANCELLING`, the one record of it) | its worker, once the count is 0: drop the future, `terminate` |
//! | terminated | `TERMINATED` set, slot gone, result final | never |
//!
//! Who may *request* a move: the parent (`Promise::cancel`, a promise dropped
//! while awaited), the worker of a cancelling ancestor, the task's own worker
//! (a panic or a return with live children): all by setting `CANCEL` and
//! scheduling the task; the move itself is always made here, by the task's
//! worker. The last child to end schedules a cancelling parent (once).
//!
//! The life of a task on its worker:
//!
//! ```text
//!  dequeued ─┬─ CANCEL bit or already cancelling ─> advance_cancel:
//!            │      first time: request cancel of every live child;
//!            │      once every child has TERMINATED: drop the future, terminate
//!            └─ else, if `pollable`, poll the future (panics caught):
//!                 Pending  -> pollable again
//!                 Ready    -> forgotten children (not ABANDONED): the result
//!                             is replaced by Err(StillHasChildren)
//!                             then no live child: terminate
//!                             live children (abandoned or forgotten): set
//!                             CANCEL on itself, cancel them, and terminate
//!                             once they all have (keeping the result)
//!                 panicked -> no live child: terminate with Panicked
//!                             live children: set CANCEL on itself, cancel them,
//!                             and terminate once they all have (still Panicked)
//! ```
//!
//! A child whose promise was dropped while being awaited (`ABANDONED`) was
//! cancelled by that drop; it stays in the table so that the parent's end
//! waits for it, and is pruned from the table once it has terminated (by the
//! promise's drop when the child had already ended, else in batches by
//! `add_child`, so a long-lived parent's table stays as big as its live
//! children).
//!
//! `terminate` removes the slot, sets `TERMINATED`, then (`settle_end`) drops
//! the result if the promise was dropped first and wakes whoever awaits the
//! promise, counts the task out of its parent's unfinished children (waking
//! the parent if it is cancelling and this was the last one: a cancelling
//! task with n children is woken once, not n times, and never scans them),
//! and runs the exit hook (orphans).

use super::worker::{Slot, Worker};
use crate::error::Error;
use crate::task::header::TaskRef;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Where a transition left the task.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The task has terminated: its slot is gone.
    Terminated,
    /// The task is cancelling and waits for its children; the last of them
    /// schedules it again.
    WaitingForChildren,
}

impl End {
    /// Checks, in debug builds, that the slot agrees with the outcome.
    pub(super) fn check(self, worker: &Worker, key: usize) {
        if cfg!(debug_assertions) {
            let tasks = worker.tasks.borrow();
            let present = tasks.get(key).is_some();
            debug_assert_eq!(
                present,
                self == End::WaitingForChildren,
                "{self:?} but the task's slot is {}",
                if present { "still here" } else { "gone" }
            );
        }
    }
}

impl Worker {
    /// The task's future has returned (or panicked); see the module docs.
    /// Only on the task's worker, right after the poll that ended it.
    pub(super) fn finished(&self, key: usize, panicked: bool) -> End {
        let mut tasks = self.tasks.borrow_mut();
        let slot = &mut tasks[key];
        if slot.children.is_empty() {
            drop(tasks);
            self.terminate(key);
            return End::Terminated;
        }
        if !panicked {
            let spawn_sites: Vec<_> = slot
                .children
                .iter()
                .filter(|(_, c)| !c.state.is_abandoned())
                .map(|(_, c)| c.spawned_at)
                .collect();
            if let Some(&first_child) = spawn_sites.first() {
                let err = Error::StillHasChildren {
                    task: slot.header.spawned_at,
                    children: spawn_sites.len(),
                    first_child,
                    spawn_sites,
                };
                let header = slot.header.clone();
                drop(tasks);
                // SAFETY: this is the task's worker, the task has not
                // terminated and is not being polled (it just returned).
                let _ = catch_unwind(AssertUnwindSafe(|| unsafe { header.body.store_error(err) }));
                tasks = self.tasks.borrow_mut();
            }
            let slot = &tasks[key];
            if slot.header.children_all_ended() {
                drop(tasks);
                self.terminate(key);
                return End::Terminated;
            }
        }
        // Children still run: they are cancelled (a failed or finished task
        // owes none of them a result), and the task ends after them.
        tasks[key].header.state.set_cancel();
        drop(tasks);
        self.advance_cancel(key)
    }

    /// Moves a cancelled task forward: cancel its children once, then, when
    /// they have all terminated, drop its future and terminate it.
    pub(super) fn advance_cancel(&self, key: usize) -> End {
        let to_cancel: Vec<TaskRef> = {
            let tasks = self.tasks.borrow();
            let slot = &tasks[key];
            if slot.header.start_cancelling() {
                slot.children.iter().map(|(_, c)| c.clone()).collect()
            } else {
                Vec::new()
            }
        };
        for child in to_cancel {
            child.request_cancel();
        }
        // O(1) per wake: a count, not a scan of the children (the last one
        // to end schedules this task again).
        let header = {
            let mut tasks = self.tasks.borrow_mut();
            let slot = &mut tasks[key];
            if !slot.header.children_all_ended() {
                return End::WaitingForChildren;
            }
            slot.pollable = false;
            slot.header.clone()
        };
        drop_future_quietly(&header);
        // The syscalls the future held are now cancelled: tell the event source
        // before the canceller is released, so that when `cancel` returns the
        // system side has forgotten them too (registrations, timers).
        if !self.cancelled.borrow().is_empty() {
            self.select(false);
        }
        self.terminate(key);
        End::Terminated
    }

    fn terminate(&self, key: usize) {
        let slot = self.tasks.borrow_mut().remove(key);
        let Slot {
            header, children, ..
        } = slot;
        drop(children);
        self.shared.task_gone(self.index);
        settle_end(&header);
        if let Some(parent) = &header.parent {
            parent.child_terminated();
        }
        if let Some((hook, k)) = &header.exit_hook {
            hook.task_exited(*k, header.id);
        }
    }
}

/// Drops a task's future, keeping a panicking destructor from unwinding into
/// the worker loop.
///
/// Only for this worker's tasks that have not terminated yet.
pub(super) fn drop_future_quietly(task: &TaskRef) {
    // SAFETY: the caller is the task's worker and the task has not terminated
    // (the contract above); the task is not being polled (a worker polls one
    // task at a time and never calls this from inside a poll).
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe { task.body.drop_future() }));
}

/// Publishes a task's end (`TERMINATED`) and does what that leaves to the
/// worker: drop a result whose promise is gone, wake a parent that waits.
/// On the task's worker, once its future is dropped.
pub(super) fn settle_end(task: &TaskRef) {
    let ended = task.state.terminate();
    if ended.result_unclaimed() {
        // SAFETY: `terminate` saw `DETACHED`: the promise gave the result up
        // before the end, so it is ours, and this is the task's thread.
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe { task.body.drop_result() }));
    }
    if ended.wake_parent() {
        // SAFETY: we are the task's worker and `terminate` saw the parent's
        // waker published.
        unsafe { task.waiter.wake() };
    }
}
