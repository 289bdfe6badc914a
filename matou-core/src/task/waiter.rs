//! The slot where the parent awaiting a promise leaves its waker: a
//! [`WakerCell`] guarded by the task's `JOIN_WAKER` bit, with `TERMINATED` as
//! its done bit (the protocol is in `waker_cell`). Only the parent, on its one
//! worker thread, ever registers; the worker wakes it once `terminate` saw
//! the bit.

use super::state::{State, JOIN_WAKER, TERMINATED};
use crate::waker_cell::WakerCell;
use std::task::Waker;

/// The parent's waker.
pub(crate) struct WaiterSlot(WakerCell);

/// What [`WaiterSlot::register`] found.
#[must_use]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Registered {
    /// The waker is published; the worker will wake it at termination.
    Waiting,
    /// The task has terminated: read the result now.
    Terminated,
}

impl WaiterSlot {
    pub(crate) fn new() -> Self {
        WaiterSlot(WakerCell::new())
    }

    /// Leaves `waker` to be woken when the task terminates.
    ///
    /// # Safety
    /// Only the task's parent calls this, from its one thread, never
    /// re-entrantly (the promise checks that the caller is the parent).
    pub(crate) unsafe fn register(&self, state: &State, waker: &Waker) -> Registered {
        // SAFETY: the parent is the cell's one owner (the contract above).
        if unsafe { self.0.register(state, JOIN_WAKER, TERMINATED, waker) } {
            Registered::Waiting
        } else {
            Registered::Terminated
        }
    }

    /// Wakes the parent's waker.
    ///
    /// # Safety
    /// Only by the task's worker, after [`State::terminate`] reported that
    /// `JOIN_WAKER` was set.
    pub(crate) unsafe fn wake(&self) {
        // SAFETY: `TERMINATED` is the done bit, just set, and `JOIN_WAKER`
        // was seen set.
        unsafe { self.0.wake() }
    }
}
