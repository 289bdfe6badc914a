//! The cell that holds a [`Mutex`](super::Mutex)'s data: `std`'s `UnsafeCell`,
//! or loom's under `cfg(loom)` so that loom checks every guard access against
//! the lock's happens-before edges.
//!
//! This is `crate::loom::cell::UnsafeCell` plus `into_inner` and `get_mut`,
//! which a mutex needs and the crate facade does not offer (yet).

#[cfg(loom)]
pub(crate) struct DataCell<T>(loom::cell::UnsafeCell<T>);

#[cfg(not(loom))]
pub(crate) struct DataCell<T>(std::cell::UnsafeCell<T>);

impl<T> DataCell<T> {
    pub(crate) fn new(data: T) -> Self {
        #[cfg(loom)]
        return DataCell(loom::cell::UnsafeCell::new(data));
        #[cfg(not(loom))]
        return DataCell(std::cell::UnsafeCell::new(data));
    }

    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner()
    }

    /// Calls `f` with a pointer for shared access (a read, under loom).
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(loom)]
        return self.0.with(f);
        #[cfg(not(loom))]
        return f(self.0.get());
    }

    /// Calls `f` with a pointer for exclusive access (a write, under loom).
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(loom)]
        return self.0.with_mut(f);
        #[cfg(not(loom))]
        return f(self.0.get());
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` proves that no other access exists.
        self.with_mut(|p| unsafe { &mut *p })
    }
}
