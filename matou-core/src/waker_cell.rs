//! A waker that one side leaves for the other, guarded by one bit of an
//! atomic state word: no lock. The task's join waiter (`task::waiter`, bit
//! `JOIN_WAKER`) and both ends of the oneshot (`sync::oneshot`, bits
//! `RX_TASK_SET` and `TX_TASK_SET`) are this protocol (tokio's join-waker
//! protocol), each with its own "done" bits.
//!
//! ```text
//!   owner (register)                         other side (finish)
//!   ----------------                         -------------------
//!   bit clear: write the waker, then         prev = fetch_or(done bit)
//!     CAS the bit on unless done             if prev has the bit:
//!   bit set: same waker? nothing to do.        read the cell, wake it
//!     else CAS the bit off unless done,
//!     rewrite, CAS it on again
//! ```
//!
//! - While the bit is clear, only the owner touches the cell (the other side
//!   reads it only if its transition saw the bit).
//! - While it is set, the cell is only read (the owner comparing wakers, the
//!   other side waking): shared reads, no race.
//! - Both CASes fail once a done bit is set, so the owner can never write
//!   after the other side decided to read.
//! - No lost wake-up: either the owner's CAS comes first (the other side sees
//!   the bit and wakes it), or the done bit does (the CAS fails and the owner
//!   looks at the state instead of waiting).
//!
//! The waker stays in the cell after the wake and is dropped with it.

use crate::loom::cell::UnsafeCell;
use std::task::Waker;

/// The atomic state word a [`WakerCell`] is guarded by.
pub(crate) trait StateWord {
    /// The current bits (`Acquire`).
    fn bits(&self) -> usize;

    /// Applies `change` (`AcqRel`) unless one of `unless` is set; returns the
    /// bits before, or `Err` with the bits that stopped it.
    fn update_unless(&self, change: impl Fn(usize) -> usize, unless: usize)
        -> Result<usize, usize>;
}

/// A waker left for the other side (see the module docs).
pub(crate) struct WakerCell(UnsafeCell<Option<Waker>>);

// SAFETY: the cell is only accessed under the protocol of the module docs:
// writes by its one owner while the guard bit is clear (nobody else reads
// then), only reads while it is set. A `Waker` is `Send + Sync`.
unsafe impl Sync for WakerCell {}

impl WakerCell {
    pub(crate) fn new() -> Self {
        WakerCell(UnsafeCell::new(None))
    }

    /// Leaves `waker` in the cell and publishes it with `bit` of `word`,
    /// unless one of `done` is set. Returns true when the waker is published
    /// (the other side will wake it), false when `done` was set first (look
    /// at the state instead of waiting).
    ///
    /// # Safety
    /// Only the cell's one owner calls this, never re-entrantly, always with
    /// the same `word`, `bit` and `done`.
    pub(crate) unsafe fn register(
        &self,
        word: &impl StateWord,
        bit: usize,
        done: usize,
        waker: &Waker,
    ) -> bool {
        let bits = word.bits();
        if bits & done != 0 {
            return false;
        }
        if bits & bit != 0 {
            // SAFETY: the bit is set, so the cell is only read, by anyone.
            let same = self
                .0
                .with(|w| unsafe { (*w).as_ref().is_some_and(|w| w.will_wake(waker)) });
            if same {
                // If `done` is set now, the other side wakes that waker,
                // which wakes us.
                return true;
            }
            if word.update_unless(|b| b & !bit, done).is_err() {
                return false;
            }
        }
        // SAFETY: the bit is clear and we are the only writer; the other side
        // does not read the cell unless it sees the bit set.
        self.0.with_mut(|w| unsafe { *w = Some(waker.clone()) });
        word.update_unless(|b| b | bit, done).is_ok()
    }

    /// Wakes the waker in the cell.
    ///
    /// # Safety
    /// Only by the other side, after a transition that set a done bit and saw
    /// the guard bit set (the cell is then frozen: read-only for good).
    pub(crate) unsafe fn wake(&self) {
        // SAFETY: the contract above.
        self.0.with(|w| unsafe {
            if let Some(w) = &*w {
                w.wake_by_ref();
            }
        });
    }
}
