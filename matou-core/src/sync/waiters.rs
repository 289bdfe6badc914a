//! The waiter queue every primitive of [`crate::sync`] parks its futures in,
//! and the list of wakers to call once the primitive's lock is released.
//!
//! A [`WaitList`] is a FIFO of *entries*, each owned by one pending future. It
//! lives inside the primitive's lock; it never locks anything itself.
//!
//! Ownership of an entry, the rule that makes cancellation easy to get right:
//! - the future that pushed an entry (and only it) frees it, with
//!   [`WaitList::remove`], when it completes or is dropped; so a key is never
//!   reused while its future still holds it;
//! - whoever *notifies* an entry (grants a lock, signals, hands a value over)
//!   only unlinks it from the queue with [`WaitList::pop_front`] and writes the
//!   outcome into the entry's data; the entry stays in the slab until its owner
//!   reads that outcome.
//!
//! So "linked" means "still waiting", and an unlinked entry carries the outcome
//! that its owner must act on, including when it is dropped instead of polled
//! (pass a granted lock on, put a received value back, ...).
//!
//! Entries live in a [`Slab`] threaded into a doubly linked list by index:
//! O(1) push, pop and removal from the middle, and no allocation per wait once
//! the slab has grown to the largest number of simultaneous waiters.

use crate::loom::sync::{Mutex, MutexGuard};
use slab::Slab;
use std::task::Waker;

const NIL: usize = usize::MAX;

/// Locks a primitive's state, ignoring poisoning: no code of ours panics while
/// holding one of these locks with an invariant half-updated. User code does
/// not run under them (values are dropped and wakers woken after unlocking);
/// only the executor's waker `clone` and `drop` do, as in every waker-based
/// primitive.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A FIFO of waiting futures, each with a waker and a payload `D`.
pub(crate) struct WaitList<D> {
    nodes: Slab<Node<D>>,
    head: usize,
    tail: usize,
    /// Number of linked (still waiting) entries.
    len: usize,
}

struct Node<D> {
    prev: usize,
    next: usize,
    /// In the queue (waiting). False once notified by `pop_front`.
    linked: bool,
    waker: Option<Waker>,
    data: D,
}

impl<D> WaitList<D> {
    pub(crate) fn new() -> Self {
        WaitList {
            nodes: Slab::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    /// Number of entries still waiting.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a new waiting entry at the back; the caller owns the returned key.
    pub(crate) fn push_back(&mut self, waker: &Waker, data: D) -> usize {
        let key = self.nodes.insert(Node {
            prev: self.tail,
            next: NIL,
            linked: true,
            waker: Some(waker.clone()),
            data,
        });
        if self.tail == NIL {
            self.head = key;
        } else {
            self.nodes[self.tail].next = key;
        }
        self.tail = key;
        self.len += 1;
        key
    }

    /// The oldest waiting entry.
    pub(crate) fn front(&self) -> Option<usize> {
        (self.head != NIL).then_some(self.head)
    }

    /// Unlinks the oldest waiting entry (it is now *notified*) and returns its
    /// key and waker. The entry stays allocated for its owner to read.
    pub(crate) fn pop_front(&mut self) -> Option<(usize, Option<Waker>)> {
        let key = self.front()?;
        self.unlink(key);
        Some((key, self.nodes[key].waker.take()))
    }

    /// Whether the entry is still waiting (not yet notified).
    pub(crate) fn is_linked(&self, key: usize) -> bool {
        self.nodes[key].linked
    }

    pub(crate) fn data(&self, key: usize) -> &D {
        &self.nodes[key].data
    }

    pub(crate) fn data_mut(&mut self, key: usize) -> &mut D {
        &mut self.nodes[key].data
    }

    /// Records the waker of the latest poll, cloning only if it changed.
    pub(crate) fn set_waker(&mut self, key: usize, waker: &Waker) {
        let slot = &mut self.nodes[key].waker;
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Frees the entry (unlinking it first if it still waits) and returns
    /// whether it was still waiting, and its payload. Only the entry's owner
    /// calls this.
    pub(crate) fn remove(&mut self, key: usize) -> (bool, D) {
        let linked = self.nodes[key].linked;
        if linked {
            self.unlink(key);
        }
        (linked, self.nodes.remove(key).data)
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let n = &mut self.nodes[key];
            debug_assert!(n.linked, "unlinking an entry that is not queued");
            n.linked = false;
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
        self.len -= 1;
    }
}

/// Wakers collected under a primitive's lock, woken when this list is
/// dropped. Declare it *before* taking the lock so that it drops after the
/// guard: no waker (user code) ever runs under one of our locks, whatever path
/// the function returns by.
#[derive(Default)]
pub(crate) struct WakeList {
    first: Option<Waker>,
    /// Only allocates when one operation wakes more than one waiter (close,
    /// broadcast, a release of many permits).
    rest: Vec<Waker>,
}

impl WakeList {
    pub(crate) fn new() -> Self {
        WakeList::default()
    }

    pub(crate) fn push(&mut self, waker: Option<Waker>) {
        let Some(w) = waker else { return };
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.push(w);
        }
    }
}

impl Drop for WakeList {
    fn drop(&mut self) {
        if let Some(w) = self.first.take() {
            w.wake();
        }
        for w in self.rest.drain(..) {
            w.wake();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::testing::CountingWaker;

    #[test]
    fn fifo_order_and_removal_from_the_middle() {
        let w = CountingWaker::new();
        let mut l = WaitList::new();
        let a = l.push_back(&w.waker(), 'a');
        let b = l.push_back(&w.waker(), 'b');
        let c = l.push_back(&w.waker(), 'c');
        assert_eq!(l.len(), 3);
        assert_eq!(l.remove(b), (true, 'b'));
        let (k, waker) = l.pop_front().unwrap();
        assert_eq!(k, a);
        assert!(waker.is_some());
        assert!(!l.is_linked(a));
        assert_eq!(l.front(), Some(c));
        assert_eq!(l.remove(a), (false, 'a'));
        assert_eq!(l.pop_front().map(|p| p.0), Some(c));
        assert!(l.is_empty());
        assert_eq!(l.pop_front().map(|p| p.0), None);
        assert_eq!(l.remove(c), (false, 'c'));
        // The list is reusable after being emptied.
        let d = l.push_back(&w.waker(), 'd');
        assert_eq!(l.front(), Some(d));
    }

    #[test]
    fn wake_list_wakes_every_waker_once_on_drop() {
        let w = CountingWaker::new();
        let mut list = WakeList::new();
        list.push(Some(w.waker()));
        list.push(None);
        list.push(Some(w.waker()));
        list.push(Some(w.waker()));
        assert_eq!(w.count(), 0);
        drop(list);
        assert_eq!(w.count(), 3);
    }
}
