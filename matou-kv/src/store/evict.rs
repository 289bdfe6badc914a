//! What eviction needs from one [`Store`]: LFU access counters and random
//! samples of keys with their LRU/LFU/TTL scores.
//!
//! The policy (which keys, when, the sampling pool across databases) is
//! the server's (`server::memory`); this module only keeps the per-entry
//! bookkeeping Redis keeps and samples from the store's own structures.
//!
//! - **LFU counters are Redis's** (`evict.c`): an 8-bit logarithmic counter
//!   that starts at [`LFU_INIT_VAL`], is incremented on access with
//!   probability `1 / ((counter - LFU_INIT_VAL) * lfu_log_factor + 1)`, and
//!   decays by one per `lfu_decay_time` minutes without access; packed
//!   with the 16-bit minute of the last decrement in one `AtomicU32`, so
//!   that reads through `&Store` can update it. Like access times they are
//!   bookkeeping: equality, records and snapshots ignore them.
//! - **Sampling is random and bounded**: a sample of all keys probes random
//!   slots (at most four probes per key wanted, so a sparse table cannot
//!   make it long); a sample of keys with an expiry picks random points of
//!   the expiry index. Either may return fewer keys than asked.

use super::{is_expired, Store};
use std::sync::atomic::{AtomicU64, Ordering};

/// A new key's LFU counter (Redis's `LFU_INIT_VAL`): new keys are not
/// evicted before they had a chance to be read.
pub const LFU_INIT_VAL: u8 = 5;

/// The LFU parameters (`lfu-log-factor`, `lfu-decay-time`) and whether an
/// LFU policy is in force (OBJECT FREQ answers only then, as in Redis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LfuParams {
    /// How many accesses it takes to saturate the counter (Redis: 10).
    pub log_factor: u32,
    /// Minutes without access per counter decrement (0: no decay).
    pub decay_time: u32,
    /// An LFU eviction policy is selected.
    pub enabled: bool,
}

impl Default for LfuParams {
    fn default() -> LfuParams {
        LfuParams {
            log_factor: 10,
            decay_time: 1,
            enabled: false,
        }
    }
}

/// A key offered for eviction, with what the policies rank it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The key.
    pub key: Vec<u8>,
    /// Milliseconds since its last access (LRU).
    pub idle_ms: u64,
    /// Its decayed LFU counter (LFU).
    pub freq: u8,
    /// Its expiry (TTL), if any.
    pub expire_at: Option<u64>,
}

/// Minutes on a 16-bit clock, as Redis's `LFUGetTimeInMinutes`.
fn minutes(now_ms: u64) -> u16 {
    ((now_ms / 60_000) & 0xffff) as u16
}

/// The counter of `packed` after decay at `now_ms` (Redis's `LFUDecrAndReturn`).
pub fn lfu_decayed(packed: u32, now_ms: u64, params: LfuParams) -> u8 {
    let counter = (packed & 0xff) as u8;
    let last = (packed >> 8) as u16;
    let now = minutes(now_ms);
    // The 16-bit clock wraps (about every 45 days), as Redis's does.
    let elapsed = if now >= last {
        now - last
    } else {
        (u16::MAX - last) + now
    };
    let periods = match params.decay_time {
        0 => 0,
        t => u32::from(elapsed) / t,
    };
    counter.saturating_sub(periods.min(255) as u8)
}

/// `packed` after one access at `now_ms`, `rand` uniform in `[0, 1)`
/// (Redis's `updateLFU`: decay, then a logarithmic increment).
pub fn lfu_accessed(packed: u32, now_ms: u64, params: LfuParams, rand: f64) -> u32 {
    let mut counter = lfu_decayed(packed, now_ms, params);
    if counter < 255 {
        let base = f64::from(counter.saturating_sub(LFU_INIT_VAL));
        let p = 1.0 / (base * f64::from(params.log_factor) + 1.0);
        if rand < p {
            counter += 1;
        }
    }
    lfu_packed(counter, now_ms)
}

/// The packed LFU state of `counter` as of `now_ms`.
pub fn lfu_packed(counter: u8, now_ms: u64) -> u32 {
    (u32::from(minutes(now_ms)) << 8) | u32::from(counter)
}

/// One step of a splitmix64 generator on `state`: cheap randomness for
/// LFU increments and samples, where quality matters little.
pub fn next_random(state: &AtomicU64) -> u64 {
    // Only the storage task advances it; a lost update between two readers
    // would merely repeat a number.
    let s = state
        .load(Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    state.store(s, Ordering::Relaxed);
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform float in `[0, 1)` from [`next_random`].
pub fn random_unit(state: &AtomicU64) -> f64 {
    (next_random(state) >> 11) as f64 / (1u64 << 53) as f64
}

impl Store {
    /// The LFU parameters this store counts accesses with.
    pub fn lfu_params(&self) -> LfuParams {
        self.lfu
    }

    /// Sets the LFU parameters (the server does on CONFIG SET and at
    /// start; a cleared store keeps them).
    pub fn set_lfu_params(&mut self, params: LfuParams) {
        self.lfu = params;
    }

    /// The decayed LFU counter of `key` at `now` (OBJECT FREQ), if live.
    pub fn lfu_freq(&self, key: &[u8], now: u64) -> Option<u8> {
        let e = self.entry_at(self.slot(key)?);
        if is_expired(e.expire_at, now) {
            return None;
        }
        Some(lfu_decayed(e.lfu.load(Ordering::Relaxed), now, self.lfu))
    }

    /// RESTORE's IDLETIME / FREQ: `key`'s last access set to `accessed`
    /// (Unix ms) and its LFU counter to `freq` (as of `now`), when given.
    /// Whether the key exists.
    pub fn set_access(
        &self,
        key: &[u8],
        accessed: Option<u64>,
        freq: Option<u8>,
        now: u64,
    ) -> bool {
        let Some(slot) = self.slot(key) else {
            return false;
        };
        let e = self.entry_at(slot);
        if let Some(at) = accessed {
            // 0 means "never since load"; the oldest stamp is 1 ms.
            e.accessed.store(at.max(1), Ordering::Relaxed);
        }
        if let Some(f) = freq {
            e.lfu.store(lfu_packed(f, now), Ordering::Relaxed);
        }
        true
    }

    /// Counts an access to the entry in `slot` at `now` in its LFU counter.
    pub(super) fn lfu_access(&self, slot: usize, now: u64) {
        let e = self.entry_at(slot);
        let r = random_unit(&self.rng);
        let packed = lfu_accessed(e.lfu.load(Ordering::Relaxed), now, self.lfu, r);
        e.lfu.store(packed, Ordering::Relaxed);
    }

    /// About `n` random keys (of those with an expiry if `volatile`),
    /// appended to `out`, with their scores at `now`; expired keys are
    /// offered too (they are the first to go). Fewer if the store has
    /// fewer, or the probes missed.
    pub fn eviction_sample(&self, n: usize, volatile: bool, now: u64, out: &mut Vec<Candidate>) {
        let slots = self.slots.len() as u64;
        if slots == 0 {
            return;
        }
        let mut found = 0;
        if volatile {
            let (Some(&(lo, _)), Some(&(hi, _))) = (self.expires.first(), self.expires.last())
            else {
                return;
            };
            for _ in 0..n {
                let t = lo + next_random(&self.rng) % (hi - lo + 1);
                if let Some(&(_, slot)) = self.expires.range((t, 0)..).next() {
                    self.push_candidate(slot, now, out);
                }
            }
            return;
        }
        for _ in 0..n.saturating_mul(4) {
            if found == n {
                break;
            }
            let slot = (next_random(&self.rng) % slots) as usize;
            if self.slots[slot].is_some() {
                self.push_candidate(slot, now, out);
                found += 1;
            }
        }
    }

    fn push_candidate(&self, slot: usize, now: u64, out: &mut Vec<Candidate>) {
        let e = self.entry_at(slot);
        let at = e.accessed.load(Ordering::Relaxed).max(self.loaded_at);
        out.push(Candidate {
            key: e.key.to_vec(),
            idle_ms: now.saturating_sub(at),
            freq: lfu_decayed(e.lfu.load(Ordering::Relaxed), now, self.lfu),
            expire_at: e.expire_at,
        });
    }

    /// What the entry of `key` costs ([`Store::entry_cost`]), if present.
    pub fn cost_of(&self, key: &[u8]) -> Option<usize> {
        self.raw(key)
            .map(|e| Store::value_cost(e.key.len(), e.value))
    }

    /// What every entry costs together: the sum of [`Store::entry_cost`]
    /// over the entries (the figure `maxmemory` is compared with).
    pub fn used_bytes(&self) -> usize {
        self.bytes + self.len() * Store::entry_cost(0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: LfuParams = LfuParams {
        log_factor: 10,
        decay_time: 1,
        enabled: true,
    };

    #[test]
    fn lfu_counter_grows_logarithmically_and_saturates() {
        let rng = AtomicU64::new(1);
        let mut packed = lfu_packed(LFU_INIT_VAL, 0);
        let mut at = Vec::new();
        for i in 1..=1_000_000u32 {
            packed = lfu_accessed(packed, 0, P, random_unit(&rng));
            if [100, 1000, 100_000, 1_000_000].contains(&i) {
                at.push(packed & 0xff);
            }
        }
        // Redis's table for lfu-log-factor 10: 100 hits ~ 10, 1000 ~ 18,
        // 100K ~ 142, 1M ~ 255.
        assert!((8..=13).contains(&at[0]), "{at:?}");
        assert!((15..=22).contains(&at[1]), "{at:?}");
        assert!((120..=160).contains(&at[2]), "{at:?}");
        assert_eq!(at[3], 255, "{at:?}");
    }

    #[test]
    fn lfu_counter_decays_one_per_period() {
        let packed = lfu_packed(20, 0);
        assert_eq!(lfu_decayed(packed, 59_999, P), 20);
        assert_eq!(lfu_decayed(packed, 3 * 60_000, P), 17);
        let slow = LfuParams { decay_time: 2, ..P };
        assert_eq!(lfu_decayed(packed, 4 * 60_000, slow), 18);
        let none = LfuParams { decay_time: 0, ..P };
        assert_eq!(lfu_decayed(packed, 100 * 60_000, none), 20);
        assert_eq!(lfu_decayed(packed, 1000 * 60_000, P), 0);
    }

    #[test]
    fn reads_count_in_the_lfu_counter_and_new_keys_start_at_init() {
        let mut st = Store::new();
        st.set_lfu_params(P);
        st.set(b"k", b"v".to_vec(), None);
        assert_eq!(st.lfu_freq(b"k", 0), Some(LFU_INIT_VAL));
        for _ in 0..200 {
            assert!(st.read(b"k", 0).is_some());
        }
        assert!(st.lfu_freq(b"k", 0).unwrap() > LFU_INIT_VAL + 3);
        assert_eq!(st.lfu_freq(b"nope", 0), None);
    }

    #[test]
    fn samples_offer_existing_keys_and_volatile_ones_only_with_a_ttl() {
        let mut st = Store::new();
        for i in 0..100u32 {
            let exp = (i % 2 == 0).then_some(1_000_000 + u64::from(i));
            st.set(format!("k{i}").as_bytes(), vec![0; 10], exp);
        }
        let mut out = Vec::new();
        st.eviction_sample(5, false, 0, &mut out);
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|c| st.raw(&c.key).is_some()));
        out.clear();
        st.eviction_sample(20, true, 0, &mut out);
        assert!(!out.is_empty());
        assert!(out.iter().all(|c| c.expire_at.is_some()));
        assert!(Store::new().used_bytes() == 0);
        assert_eq!(
            st.used_bytes(),
            st.iter()
                .map(|e| Store::value_cost(e.key.len(), e.value))
                .sum::<usize>()
        );
    }
}
