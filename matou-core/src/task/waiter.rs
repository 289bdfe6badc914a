//! The slot where the parent awaiting a promise leaves its waker.
//!
//! No lock: who may touch the slot is decided by the `JOIN_WAKER` bit of the
//! task's state word (tokio's join-waker protocol, specialised to matou's
//! single awaiter: only the parent, on its one worker thread, ever
//! registers).
//!
//! ```text
//!   parent (register)                        worker (terminate)
//!   -----------------                        ------------------
//!   JOIN_WAKER clear: write the waker,       prev = fetch_or(TERMINATED)
//!     then CAS JOIN_WAKER on unless          if prev has JOIN_WAKER:
//!     TERMINATED                               read the slot, wake it
//!   JOIN_WAKER set: same waker? done.
//!     else CAS JOIN_WAKER off unless
//!     TERMINATED, rewrite, CAS it on again
//! ```
//!
//! - While `JOIN_WAKER` is clear, only the parent touches the slot (the
//!   worker reads it only if its `fetch_or` saw the bit).
//! - While it is set, the slot is only read (the parent comparing wakers,
//!   the worker waking): shared reads, no race.
//! - Both CASes fail once `TERMINATED` is set, so the parent can never write
//!   after the worker has decided to read.
//! - No lost wake-up: either the parent's CAS comes first (the worker sees
//!   the bit and wakes it), or `TERMINATED` does (the CAS fails and the
//!   parent reads the result instead of waiting).
//!
//! The waker stays in the slot after the wake and is dropped with the
//! header (exclusively, by the last owner).

use super::state::{State, Terminated};
use crate::loom::cell::UnsafeCell;
use std::task::Waker;

/// The parent's waker (see the module docs for who may touch it when).
pub(crate) struct WaiterSlot(UnsafeCell<Option<Waker>>);

/// What [`WaiterSlot::register`] found.
#[must_use]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Registered {
    /// The waker is published; the worker will wake it at termination.
    Waiting,
    /// The task has terminated: read the result now.
    Terminated,
}

// SAFETY: the slot is only accessed under the protocol of the module docs:
// writes by the one parent while `JOIN_WAKER` is clear (nobody else reads
// then), reads by the parent and the worker while it is set. A `Waker` is
// `Send + Sync`.
unsafe impl Sync for WaiterSlot {}

impl WaiterSlot {
    pub(crate) fn new() -> Self {
        WaiterSlot(UnsafeCell::new(None))
    }

    /// Leaves `waker` to be woken when the task terminates.
    ///
    /// # Safety
    /// Only the task's parent calls this, from its one thread, never
    /// re-entrantly (the promise checks that the caller is the parent).
    pub(crate) unsafe fn register(&self, state: &State, waker: &Waker) -> Registered {
        if state.is_terminated() {
            return Registered::Terminated;
        }
        if state.has_join_waker() {
            // SAFETY: `JOIN_WAKER` is set, so the slot is only read by
            // anyone, and we only read it.
            let same = self
                .0
                .with(|slot| unsafe { (*slot).as_ref().is_some_and(|w| w.will_wake(waker)) });
            if same {
                // If the task terminates now, the worker wakes that waker,
                // which wakes us.
                return Registered::Waiting;
            }
            if state.unset_join_waker() == Err(Terminated) {
                return Registered::Terminated;
            }
        }
        // SAFETY: `JOIN_WAKER` is clear and we are the only writer; the worker
        // does not read the slot unless it sees the bit set.
        self.0
            .with_mut(|slot| unsafe { *slot = Some(waker.clone()) });
        match state.set_join_waker() {
            Ok(()) => Registered::Waiting,
            Err(Terminated) => Registered::Terminated,
        }
    }

    /// Wakes the parent's waker.
    ///
    /// # Safety
    /// Only by the task's worker, after [`State::terminate`] reported that
    /// `JOIN_WAKER` was set (the slot is then frozen: read-only for good).
    pub(crate) unsafe fn wake(&self) {
        // SAFETY: the contract above: `TERMINATED` and `JOIN_WAKER` are both
        // set, so the parent can no longer write the slot.
        self.0.with(|slot| unsafe {
            if let Some(w) = &*slot {
                w.wake_by_ref();
            }
        });
    }
}
