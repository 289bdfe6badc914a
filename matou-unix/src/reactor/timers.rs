//! A worker's pending timers: a binary min-heap of `(deadline, uid)` with lazy
//! deletion.
//!
//! Owned by one reactor and touched only on its worker's thread. Invariants:
//! - `live` holds exactly the uids of timers that may still fire; a uid in the
//!   heap but not in `live` is stale (its sleeper was cancelled) and is skipped
//!   when it reaches the top;
//! - stale entries never outnumber live ones by more than [`SLACK`]: when they
//!   would, the heap is rebuilt from the live ones. So memory and time stay
//!   proportional to the number of *pending* timers, even under a churn of
//!   `timeout`s that mostly do not fire (the common case);
//! - deadlines are nanoseconds since the heap's epoch (8 bytes instead of a
//!   16-byte `Instant`); a deadline before the epoch fires at once.
//!
//! Costs: insert O(log n), cancel O(1) amortised (plus an O(n) compaction
//! paid for by the n cancellations before it), expiry O(log n) per timer.

use super::UidMap;
use matou_core::Uid;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// How many stale entries beyond the live count are tolerated before a
/// compaction, so small heaps are not rebuilt over and over.
const SLACK: usize = 1024;

pub(crate) struct TimerHeap {
    epoch: Instant,
    heap: BinaryHeap<Reverse<(u64, Uid)>>,
    live: UidMap<()>,
}

impl TimerHeap {
    pub(crate) fn new() -> Self {
        TimerHeap {
            epoch: Instant::now(),
            heap: BinaryHeap::new(),
            live: UidMap::default(),
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// How many timers may still fire.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Heap entries, stale ones included (for tests of the compaction bound).
    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Schedules `uid` to fire at `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, uid: Uid) {
        let at = self.nanos(deadline);
        self.heap.push(Reverse((at, uid)));
        self.live.insert(uid, ());
    }

    /// Forgets `uid` if it is a pending timer; returns whether it was.
    pub(crate) fn cancel(&mut self, uid: Uid) -> bool {
        if self.live.remove(&uid).is_none() {
            return false;
        }
        if self.heap.len() > 2 * self.live.len() + SLACK {
            let live = &self.live;
            self.heap.retain(|Reverse((_, u))| live.contains_key(u));
        }
        true
    }

    /// Drops stale entries from the top so that `peek` is a live timer.
    fn skip_stale(&mut self) {
        while let Some(Reverse((_, uid))) = self.heap.peek() {
            if self.live.contains_key(uid) {
                break;
            }
            self.heap.pop();
        }
    }

    /// How long until the nearest live deadline (zero if it has passed).
    pub(crate) fn next_timeout(&mut self, now: Instant) -> Option<Duration> {
        self.skip_stale();
        let Reverse((at, _)) = self.heap.peek()?;
        Some(Duration::from_nanos(at.saturating_sub(self.nanos(now))))
    }

    /// Removes every live timer whose deadline is at or before `now`, calling
    /// `fire` with each uid in deadline order.
    pub(crate) fn expire(&mut self, now: Instant, mut fire: impl FnMut(Uid)) {
        let now = self.nanos(now);
        while let Some(&Reverse((at, uid))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.live.remove(&uid).is_some() {
                fire(uid);
            }
        }
    }

    /// Forgets every timer (the run is over).
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
        self.live.clear();
    }
}

#[cfg(test)]
mod tests {
    // Uids can only be made by the core, inside a task; these tests run one.
    use super::*;

    fn with_uids(n: usize, f: impl FnOnce(Vec<Uid>) + 'static) {
        matou_core::Builder::new().extra_workers(0).run(async move {
            let calls: Vec<_> = (0..n).map(|_| matou_core::syscall()).collect();
            let uids = calls.iter().map(|c| c.uid()).collect();
            f(uids);
            drop(calls);
        });
    }

    #[test]
    fn fires_in_deadline_order_and_only_when_due() {
        with_uids(3, |u| {
            let mut t = TimerHeap::new();
            let now = Instant::now();
            t.insert(now + Duration::from_millis(30), u[0]);
            t.insert(now + Duration::from_millis(10), u[1]);
            t.insert(now + Duration::from_millis(20), u[2]);
            assert_eq!(t.next_timeout(now), Some(Duration::from_millis(10)));
            let mut fired = Vec::new();
            t.expire(now + Duration::from_millis(5), |x| fired.push(x));
            assert!(fired.is_empty());
            t.expire(now + Duration::from_millis(25), |x| fired.push(x));
            assert_eq!(fired, vec![u[1], u[2]]);
            assert_eq!(t.len(), 1);
        });
    }

    #[test]
    fn cancelled_timers_never_fire_and_do_not_set_the_timeout() {
        with_uids(2, |u| {
            let mut t = TimerHeap::new();
            let now = Instant::now();
            t.insert(now + Duration::from_millis(1), u[0]);
            t.insert(now + Duration::from_millis(50), u[1]);
            assert!(t.cancel(u[0]));
            assert!(!t.cancel(u[0]), "a second cancel finds nothing");
            assert_eq!(t.next_timeout(now), Some(Duration::from_millis(50)));
            let mut fired = Vec::new();
            t.expire(now + Duration::from_secs(1), |x| fired.push(x));
            assert_eq!(fired, vec![u[1]]);
        });
    }

    #[test]
    fn stale_entries_stay_bounded_under_churn() {
        with_uids(20_000, |u| {
            let mut t = TimerHeap::new();
            let far = Instant::now() + Duration::from_secs(3600);
            t.insert(far, u[0]);
            for &uid in &u[1..] {
                t.insert(far, uid);
                t.cancel(uid);
                assert!(
                    t.heap_len() <= 2 * t.len() + SLACK + 1,
                    "heap {} live {}",
                    t.heap_len(),
                    t.len()
                );
            }
            assert_eq!(t.len(), 1);
        });
    }

    #[test]
    fn past_deadlines_fire_at_once() {
        with_uids(1, |u| {
            let mut t = TimerHeap::new();
            let before = t
                .epoch
                .checked_sub(Duration::from_secs(1))
                .unwrap_or(t.epoch);
            t.insert(before, u[0]);
            assert_eq!(t.next_timeout(Instant::now()), Some(Duration::ZERO));
        });
    }
}
