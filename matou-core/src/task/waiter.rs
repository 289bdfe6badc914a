//! The slot where the task awaiting a promise leaves its waker.
//!
//! Handshake with the terminating worker (no lost wake-up): the awaiting side
//! first [`register`](WaiterSlot::register)s its waker, then checks
//! `TERMINATED`; the terminating side first sets `TERMINATED`, then
//! [`wake`](WaiterSlot::wake)s. Both go through the same lock, so whichever
//! comes second sees the other's write.

use crate::loom::sync::Mutex;
use std::task::Waker;

#[derive(Default)]
pub(crate) struct WaiterSlot(Mutex<Option<Waker>>);

impl WaiterSlot {
    pub(crate) fn new() -> Self {
        WaiterSlot(Mutex::new(None))
    }

    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    pub(crate) fn wake(&self) {
        let waker = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}
