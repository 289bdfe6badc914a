//! The channel's buffer: a bounded lock-free MPMC ring (Dmitry Vyukov's
//! bounded queue, as crossbeam's array channel has it), with a close mark.
//!
//! Each slot carries a `stamp` that says whose turn it is: a slot at index
//! `i` is free for the push whose `tail` equals its stamp, and holds a value
//! for the pop whose `head` is one less than its stamp. `head` and `tail`
//! are an index plus a lap count (`one_lap` apart per trip round the
//! buffer), so a stamp is never confused between laps. A push claims a slot
//! by a compare-and-swap of `tail`, then writes the value and publishes it
//! with a Release store of the stamp; a pop claims by a CAS of `head`, reads,
//! and hands the slot to the next lap's push with another stamp store. So a
//! value is read by exactly one pop, after its push wrote it.
//!
//! Closing sets `mark` in `tail` with a read-modify-write; every push is a
//! CAS of `tail` that fails once it sees the mark, so each push is either
//! ordered before the close (its value is in the ring for the receivers to
//! drain) or refused (the value is handed back). A pop that finds its slot
//! claimed but not yet written (a push between its CAS and its stamp store)
//! waits for it rather than report "empty": so "empty" means every push that
//! claimed a slot before this pop read `tail` has been consumed.
//!
//! The ring never blocks and never takes a lock; the channel around it
//! decides who sleeps.

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{fence, AtomicUsize, Ordering};
use crate::runtime::padded::Padded;
use std::mem::MaybeUninit;

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded MPMC queue of at least one slot.
pub(super) struct Ring<T> {
    head: Padded<AtomicUsize>,
    /// `tail`, with `mark` set once closed.
    tail: Padded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    /// The smallest power of two above the capacity: the close mark in
    /// `tail`, and one more than the largest index.
    mark: usize,
    /// What `head` and `tail` add per trip round the buffer.
    one_lap: usize,
}

// SAFETY: values move between threads through the ring (hence `T: Send`);
// each slot's cell is written only by the push that claimed it and read only
// by the pop that claimed it after the push's Release stamp store.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send> Sync for Ring<T> {}

/// Why [`Ring::push`] refused a value (given back).
pub(super) enum Refused<T> {
    Full(T),
    Closed(T),
}

impl<T> Ring<T> {
    /// A ring of `capacity` slots (at least one).
    pub(super) fn new(capacity: usize) -> Ring<T> {
        assert!(capacity > 0, "a ring has at least one slot");
        let mark = (capacity + 1).next_power_of_two();
        Ring {
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            slots: (0..capacity)
                .map(|i| Slot {
                    stamp: AtomicUsize::new(i),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
            mark,
            one_lap: mark * 2,
        }
    }

    /// The position after `pos` (same lap, or the start of the next one).
    fn next(&self, pos: usize) -> usize {
        let index = pos & (self.mark - 1);
        if index + 1 < self.slots.len() {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Queues `value` unless the ring is full or closed.
    pub(super) fn push(&self, value: T) -> Result<(), Refused<T>> {
        let mut backoff = Backoff(0);
        let mut tail = self.tail.0.load(Ordering::Relaxed);
        loop {
            if tail & self.mark != 0 {
                return Err(Refused::Closed(value));
            }
            let slot = &self.slots[tail & (self.mark - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                match self.tail.0.compare_exchange_weak(
                    tail,
                    self.next(tail),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS claimed this slot for this lap: no
                        // other push writes it, and pops wait for the stamp.
                        slot.value.with_mut(|v| unsafe { (*v).write(value) });
                        slot.stamp.store(tail + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(now) => tail = now,
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds last lap's value: full, unless a pop
                // has claimed it and is reading it.
                fence(Ordering::SeqCst);
                let head = self.head.0.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return Err(Refused::Full(value));
                }
                backoff.pause();
                tail = self.tail.0.load(Ordering::Relaxed);
            } else {
                // Another push got this slot first and has not moved on.
                backoff.pause();
                tail = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest value, or `None` when the ring is empty.
    pub(super) fn pop(&self) -> Option<T> {
        let mut backoff = Backoff(0);
        let mut head = self.head.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[head & (self.mark - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head + 1 {
                match self.head.0.compare_exchange_weak(
                    head,
                    self.next(head),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the stamp (Acquire) says the push for this
                        // lap wrote the value; the CAS made it this pop's.
                        let value = slot.value.with(|v| unsafe { (*v).assume_init_read() });
                        slot.stamp
                            .store(head.wrapping_add(self.one_lap), Ordering::Release);
                        return Some(value);
                    }
                    Err(now) => head = now,
                }
            } else if stamp == head {
                fence(Ordering::SeqCst);
                let tail = self.tail.0.load(Ordering::Relaxed);
                if tail & !self.mark == head {
                    return None;
                }
                // A push claimed this slot and is writing it: wait for it.
                backoff.pause();
                head = self.head.0.load(Ordering::Relaxed);
            } else {
                // Another pop took this slot and has not moved on.
                backoff.pause();
                head = self.head.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Refuses every later push. Returns whether this call closed it.
    pub(super) fn close(&self) -> bool {
        self.tail.0.fetch_or(self.mark, Ordering::SeqCst) & self.mark == 0
    }

    /// Values queued now (a snapshot).
    pub(super) fn len(&self) -> usize {
        loop {
            let tail = self.tail.0.load(Ordering::SeqCst) & !self.mark;
            let head = self.head.0.load(Ordering::SeqCst);
            if self.tail.0.load(Ordering::SeqCst) & !self.mark == tail {
                let (hi, ti) = (head & (self.mark - 1), tail & (self.mark - 1));
                return if hi < ti {
                    ti - hi
                } else if hi > ti {
                    self.slots.len() - hi + ti
                } else if tail == head {
                    0
                } else {
                    self.slots.len()
                };
            }
        }
    }
}

/// Waiting for another thread's step between its claim and its stamp store
/// (a few instructions, unless that thread was preempted): spin a little,
/// then give the core away so that a preempted thread can finish.
struct Backoff(u32);

impl Backoff {
    fn pause(&mut self) {
        #[cfg(loom)]
        crate::loom::thread::yield_now();
        #[cfg(not(loom))]
        if self.0 < 6 {
            for _ in 0..1 << self.0 {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        self.0 += 1;
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // `&mut self`: no push or pop is under way; drop what is queued.
        while self.pop().is_some() {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Refused, Ring};
    use std::sync::Arc;

    #[test]
    fn fifo_up_to_capacity_across_laps_then_full() {
        let ring = Ring::new(3);
        for round in 0..5u32 {
            for i in 0..3 {
                assert!(ring.push(round * 10 + i).is_ok());
            }
            assert_eq!(ring.len(), 3);
            assert!(matches!(ring.push(99), Err(Refused::Full(99))));
            for i in 0..3 {
                assert_eq!(ring.pop(), Some(round * 10 + i));
            }
            assert_eq!(ring.pop(), None);
            assert_eq!(ring.len(), 0);
        }
    }

    #[test]
    fn closed_ring_refuses_pushes_and_keeps_its_values() {
        let ring = Ring::new(2);
        assert!(ring.push(1).is_ok());
        assert!(ring.close());
        assert!(!ring.close(), "closed once");
        assert!(matches!(ring.push(2), Err(Refused::Closed(2))));
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.pop(), Some(1));
        assert_eq!(ring.pop(), None);
    }

    #[test]
    fn dropping_the_ring_drops_queued_values() {
        let token = Arc::new(());
        let ring = Ring::new(4);
        for _ in 0..3 {
            assert!(ring.push(token.clone()).is_ok());
        }
        drop(ring.pop());
        drop(ring);
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn many_threads_each_value_popped_once() {
        const PER: u64 = if cfg!(miri) { 40 } else { 20_000 };
        let ring = Arc::new(Ring::new(4));
        let pushers: Vec<_> = (0..2u64)
            .map(|p| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let mut v = p * PER + i;
                        loop {
                            match ring.push(v) {
                                Ok(()) => break,
                                Err(Refused::Full(back)) => v = back,
                                Err(Refused::Closed(_)) => panic!("closed"),
                            }
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let poppers: Vec<_> = (0..2)
            .map(|_| {
                let ring = ring.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while got.len() < PER as usize {
                        match ring.pop() {
                            Some(v) => got.push(v),
                            None => std::thread::yield_now(),
                        }
                    }
                    got
                })
            })
            .collect();
        for p in pushers {
            p.join().unwrap();
        }
        let mut all: Vec<u64> = poppers
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..2 * PER).collect::<Vec<_>>());
    }
}
