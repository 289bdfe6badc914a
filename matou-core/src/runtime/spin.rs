//! When an idle worker spins: the adaptive spin policy.
//!
//! A spin pays when a hand-off from another thread (a remote wake or spawn
//! through the inbox) arrives while the worker still spins: the peer's
//! message is seen within nanoseconds instead of after an interrupt and a
//! trip through the OS scheduler. It costs a core for the whole budget when
//! nothing arrives, and on a small machine that core is taken from whoever
//! else wants it (a load generator on the same cores, such as wrk or
//! redis-benchmark, or the other workers).
//!
//! So each worker remembers how its last [`HISTORY`] idle periods ended: a
//! *hit* is an idle period ended by work (a hand-off, or an event that made
//! a task runnable, such as a client's next request) within the spin budget,
//! whether the worker was spinning then or had blocked and was woken that
//! soon, give or take its wake-up latency (which shows that a spin would
//! have caught it); a *miss* is any later end. The worker spins only while
//! at least [`MIN_HITS`] of the remembered periods were hits. A worker
//! whose work comes in slower than the budget (slow peers, timers, a
//! starved load generator) stops spinning after a few idle periods; one
//! whose work comes back that fast spins again after a few. Because a
//! blocked worker's wake-up itself takes time (tens of microseconds on a
//! virtual machine, which may exceed the budget), a worker that does not
//! spin still spins once every [`PROBE_EVERY`] idle periods, so work that
//! a spin would catch is noticed whatever the wake-up latency.
//!
//! Owned by one worker and touched by its thread only.

/// How many idle periods the policy remembers (the bits of `outcomes`).
pub(super) const HISTORY: u32 = u16::BITS;

/// Hits among the remembered periods needed to spin (a quarter: a spin
/// wasted costs the whole budget, a spin that hits saves about as much).
pub(super) const MIN_HITS: u32 = 4;
const _: () = assert!(MIN_HITS <= HISTORY);

/// A worker that does not spin spins anyway once per this many idle periods
/// (a probe: it costs at most one budget per `PROBE_EVERY` idle periods).
pub(super) const PROBE_EVERY: u8 = 16;

/// The outcomes of a worker's last idle periods.
#[derive(Clone, Copy, Debug)]
pub(super) struct SpinPolicy {
    /// One bit per idle period, newest in bit 0: 1 = hit.
    outcomes: u16,
    /// Idle periods since the last spin (for the probe).
    without_spin: u8,
}

impl SpinPolicy {
    /// A new worker spins (as if its last periods were all hits), so a
    /// run's first hand-offs are as fast as its later ones.
    pub(super) fn new() -> SpinPolicy {
        SpinPolicy {
            outcomes: u16::MAX,
            without_spin: 0,
        }
    }

    /// Whether the worker should spin before blocking (asked once per idle
    /// period).
    pub(super) fn should_spin(&mut self) -> bool {
        if self.outcomes.count_ones() >= MIN_HITS {
            self.without_spin = 0;
            return true;
        }
        self.without_spin += 1;
        if self.without_spin >= PROBE_EVERY {
            self.without_spin = 0;
            return true;
        }
        false
    }

    /// Records how an idle period ended: `hit` = by a hand-off within the
    /// spin budget.
    pub(super) fn record(&mut self, hit: bool) {
        self.outcomes = (self.outcomes << 1) | u16::from(hit);
    }
}

#[cfg(test)]
mod tests {
    use super::{SpinPolicy, HISTORY, MIN_HITS, PROBE_EVERY};

    #[test]
    fn misses_turn_the_spin_off_and_hits_turn_it_back_on() {
        let mut p = SpinPolicy::new();
        assert!(p.should_spin(), "a new worker spins");
        for _ in 0..HISTORY - MIN_HITS {
            p.record(false);
            assert!(p.should_spin(), "still enough hits remembered");
        }
        p.record(false);
        assert!(!p.should_spin(), "too few hits: block at once");
        for _ in 0..MIN_HITS - 1 {
            p.record(true);
            assert!(!p.should_spin());
        }
        p.record(true);
        assert!(p.should_spin(), "hand-offs are back: spin again");
    }

    #[test]
    fn a_worker_that_does_not_spin_probes_once_per_period() {
        let mut p = SpinPolicy::new();
        for _ in 0..HISTORY {
            p.record(false);
        }
        let spins: Vec<bool> = (0..3 * u32::from(PROBE_EVERY))
            .map(|_| {
                let spin = p.should_spin();
                p.record(false);
                spin
            })
            .collect();
        assert_eq!(spins.iter().filter(|&&s| s).count(), 3);
        let first = spins.iter().position(|&s| s).unwrap();
        assert_eq!(first, usize::from(PROBE_EVERY) - 1);
        assert!(spins[first + usize::from(PROBE_EVERY)]);
    }

    #[test]
    fn a_rare_hit_does_not_keep_the_worker_spinning() {
        let mut p = SpinPolicy::new();
        // One hit every eight idle periods: below a quarter.
        for i in 0..64 {
            p.record(i % 8 == 0);
        }
        assert!(!p.should_spin());
        // One in three: above.
        for i in 0..64 {
            p.record(i % 3 == 0);
        }
        assert!(p.should_spin());
    }
}
