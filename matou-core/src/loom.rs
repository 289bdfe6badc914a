//! The one place where atomics, locks and cells come from, so that the
//! cross-thread protocols can be model-checked by loom (`RUSTFLAGS="--cfg loom"`).
//!
//! Code in this crate imports `crate::loom::sync::...` instead of `std::sync::...`
//! for anything that another thread may touch.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::{cell, thread};

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) mod sync {
    pub(crate) use loom::sync::{atomic, Condvar, Mutex, MutexGuard};
    // Task headers become `std::task::Waker`s, which need std's `Arc`.
    pub(crate) use std::sync::Arc;
}

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) mod sync {
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) mod atomic {
        pub(crate) use std::sync::atomic::{
            fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering,
        };
    }
}

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::thread;

/// `UnsafeCell` with loom's `with`/`with_mut` API, for code that loom checks.
#[cfg(not(loom))]
pub(crate) mod cell {
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    #[allow(dead_code)]
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(data: T) -> UnsafeCell<T> {
            UnsafeCell(std::cell::UnsafeCell::new(data))
        }
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}
