//! The memory limit: `maxmemory`, Redis's eviction policies, and the
//! live settings the storage task and the handlers share (the active
//! expiry switch too: expiry is what frees memory without a limit).
//!
//! What it owns and promises:
//! - **[`Memory`] is the one copy of the settings** (`maxmemory`,
//!   `maxmemory-policy`, `maxmemory-samples`, `lfu-log-factor`,
//!   `lfu-decay-time`), made from the configuration at start and changed
//!   live through its setters (CONFIG SET), plus two figures the storage
//!   task publishes: the memory used and whether it is over the limit with
//!   nothing it may evict.
//! - **What "used memory" counts**: the store's own accounting, the sum of
//!   [`Store::entry_cost`](crate::store::Store::entry_cost) over every entry
//!   of every database (key and value bytes, the two shared allocations'
//!   headers, the slot and the index element). Not counted: connection
//!   buffers (each bounded by `client-query-buffer-limit` and one reply
//!   round), the log's pending bytes, allocator slack. As in Redis, the
//!   limit is on the data, not on the resident set.
//! - **Eviction is Redis's approximation** (`evict.c`): before each write,
//!   and at each tick, while the used memory is over `maxmemory` the
//!   storage task samples `maxmemory-samples` keys of each database into a
//!   pool of the [`POOL_SIZE`] best candidates (idlest for `*-lru`, least
//!   frequent for `*-lfu`, soonest to expire for `volatile-ttl`) and evicts
//!   the best one still present; `*-random` evicts a random sampled key.
//!   Evictions are logged as DELs (so replay matches) and counted
//!   (`evicted_keys`).
//! - **noeviction, or nothing left to evict**: the storage task sets the
//!   over-limit flag, and the handlers answer commands flagged `denyoom`
//!   with Redis's `-OOM command not allowed when used memory >
//!   'maxmemory'.` (inside MULTI too, which then aborts at EXEC). The flag
//!   is refreshed after every write batch, so the limit can be passed by
//!   the writes already in flight, at most one batch per connection.

use crate::command::lookup;
use crate::databases::Databases;
use crate::resp::Reply;
use crate::store::{Candidate, LfuParams};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Redis's answer to a `denyoom` command over the limit.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Candidates the pool keeps (Redis's `EVPOOL_SIZE`).
pub const POOL_SIZE: usize = 16;

/// Redis's `maxmemory-policy` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Evict nothing; refuse `denyoom` writes over the limit.
    NoEviction,
    /// Least recently used among all keys.
    AllKeysLru,
    /// Least frequently used among all keys.
    AllKeysLfu,
    /// Any key.
    AllKeysRandom,
    /// Least recently used among keys with an expiry.
    VolatileLru,
    /// Least frequently used among keys with an expiry.
    VolatileLfu,
    /// Any key with an expiry.
    VolatileRandom,
    /// The key with an expiry that expires soonest.
    VolatileTtl,
}

const POLICIES: [(Policy, &str); 8] = [
    (Policy::NoEviction, "noeviction"),
    (Policy::AllKeysLru, "allkeys-lru"),
    (Policy::AllKeysLfu, "allkeys-lfu"),
    (Policy::AllKeysRandom, "allkeys-random"),
    (Policy::VolatileLru, "volatile-lru"),
    (Policy::VolatileLfu, "volatile-lfu"),
    (Policy::VolatileRandom, "volatile-random"),
    (Policy::VolatileTtl, "volatile-ttl"),
];

impl Policy {
    /// The policy named `name` (case-insensitive), as redis.conf spells it.
    ///
    /// # Errors
    /// An unknown name, with the accepted ones.
    pub fn parse(name: &str) -> Result<Policy, String> {
        POLICIES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(p, _)| *p)
            .ok_or_else(|| {
                let names: Vec<&str> = POLICIES.iter().map(|(_, n)| *n).collect();
                format!(
                    "invalid value `{name}`: expected one of {}",
                    names.join(", ")
                )
            })
    }

    /// Its redis.conf name.
    pub fn name(self) -> &'static str {
        POLICIES
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("", |(_, n)| n)
    }

    /// Whether it evicts keys with an expiry only.
    pub fn volatile(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    /// Whether it ranks keys by their LFU counter.
    pub fn lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    fn random(self) -> bool {
        matches!(self, Policy::AllKeysRandom | Policy::VolatileRandom)
    }

    /// The candidate's score: the higher, the better to evict.
    fn score(self, c: &Candidate) -> u64 {
        match self {
            Policy::AllKeysLfu | Policy::VolatileLfu => 255 - u64::from(c.freq),
            Policy::VolatileTtl => u64::MAX - c.expire_at.unwrap_or(u64::MAX),
            _ => c.idle_ms,
        }
    }

    fn index(self) -> u8 {
        POLICIES.iter().position(|(p, _)| *p == self).unwrap_or(0) as u8
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The memory settings at start (from the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// `maxmemory` in bytes (0: no limit).
    pub maxmemory: u64,
    /// `maxmemory-policy`.
    pub policy: Policy,
    /// `maxmemory-samples` (Redis: 5).
    pub samples: u32,
    /// `lfu-log-factor` (Redis: 10).
    pub lfu_log_factor: u32,
    /// `lfu-decay-time` in minutes (Redis: 1).
    pub lfu_decay_time: u32,
}

impl Default for MemoryConfig {
    fn default() -> MemoryConfig {
        MemoryConfig {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
        }
    }
}

/// The live memory settings and figures, shared by the storage task and
/// the handlers (see the module docs). Every field is an atomic read or
/// written whole: a setting changed by CONFIG SET takes effect at the
/// storage task's next write or tick.
///
/// ```
/// use matou_kv::server::memory::{Memory, MemoryConfig, Policy};
/// let m = Memory::new(MemoryConfig::default());
/// m.set_maxmemory(100 << 20);
/// m.set_policy(Policy::AllKeysLru);
/// assert_eq!(m.config().policy, Policy::AllKeysLru);
/// ```
#[derive(Debug)]
pub struct Memory {
    maxmemory: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    lfu_log_factor: AtomicU32,
    lfu_decay_time: AtomicU32,
    /// Over the limit with nothing evictable: `denyoom` commands refused.
    over: AtomicBool,
    /// The used-memory figure at the last write or tick.
    used: AtomicU64,
    /// Keys evicted since start (INFO's `evicted_keys`).
    evicted: AtomicU64,
    /// Keys evicted in the batch not committed yet (a failed commit takes
    /// them back, and they do not count).
    evicted_pending: AtomicU64,
    /// Whether the active expiry cycle runs (DEBUG SET-ACTIVE-EXPIRE).
    active_expire: AtomicBool,
}

impl Memory {
    /// Settings from `c`, nothing used or evicted yet.
    pub fn new(c: MemoryConfig) -> Memory {
        Memory {
            maxmemory: AtomicU64::new(c.maxmemory),
            policy: AtomicU8::new(c.policy.index()),
            samples: AtomicU32::new(c.samples.max(1)),
            lfu_log_factor: AtomicU32::new(c.lfu_log_factor),
            lfu_decay_time: AtomicU32::new(c.lfu_decay_time),
            over: AtomicBool::new(false),
            used: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            evicted_pending: AtomicU64::new(0),
            active_expire: AtomicBool::new(true),
        }
    }

    /// The settings now.
    pub fn config(&self) -> MemoryConfig {
        MemoryConfig {
            maxmemory: self.maxmemory.load(Ordering::Relaxed),
            policy: POLICIES[usize::from(self.policy.load(Ordering::Relaxed)) % POLICIES.len()].0,
            samples: self.samples.load(Ordering::Relaxed),
            lfu_log_factor: self.lfu_log_factor.load(Ordering::Relaxed),
            lfu_decay_time: self.lfu_decay_time.load(Ordering::Relaxed),
        }
    }

    /// CONFIG SET maxmemory (bytes; 0: no limit).
    pub fn set_maxmemory(&self, bytes: u64) {
        self.maxmemory.store(bytes, Ordering::Relaxed);
        // Redis checks the limit at the next command: a limit set under
        // what is used refuses `denyoom` commands at once under
        // noeviction (the figure is the last batch's), rather than after
        // the storage task's next batch or tick.
        let over = bytes != 0 && self.used() > bytes && self.config().policy == Policy::NoEviction;
        if bytes == 0 || over {
            self.over.store(over, Ordering::Relaxed);
        }
    }

    /// CONFIG SET maxmemory-policy.
    pub fn set_policy(&self, p: Policy) {
        self.policy.store(p.index(), Ordering::Relaxed);
    }

    /// CONFIG SET maxmemory-samples (at least 1).
    pub fn set_samples(&self, n: u32) {
        self.samples.store(n.max(1), Ordering::Relaxed);
    }

    /// CONFIG SET lfu-log-factor.
    pub fn set_lfu_log_factor(&self, f: u32) {
        self.lfu_log_factor.store(f, Ordering::Relaxed);
    }

    /// CONFIG SET lfu-decay-time (minutes).
    pub fn set_lfu_decay_time(&self, minutes: u32) {
        self.lfu_decay_time.store(minutes, Ordering::Relaxed);
    }

    /// DEBUG SET-ACTIVE-EXPIRE: whether the storage task's periodic cycle
    /// removes expired keys (lazy expiry on access goes on either way).
    pub fn set_active_expire(&self, on: bool) {
        self.active_expire.store(on, Ordering::Relaxed);
    }

    /// Whether the active expiry cycle runs.
    pub fn active_expire(&self) -> bool {
        self.active_expire.load(Ordering::Relaxed)
    }

    /// The LFU parameters the stores should count with now.
    pub fn lfu_params(&self) -> LfuParams {
        let c = self.config();
        LfuParams {
            log_factor: c.lfu_log_factor,
            decay_time: c.lfu_decay_time,
            enabled: c.policy.lfu(),
        }
    }

    /// The used-memory figure at the storage task's last write or tick.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Keys evicted since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Whether `denyoom` commands are refused now.
    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// The `-OOM` error if `args` is a `denyoom` command and the server is
    /// over its limit with nothing to evict; `None` otherwise.
    pub fn refusal(&self, args: &[Vec<u8>]) -> Option<Reply> {
        if !self.is_over() {
            return None;
        }
        let spec = lookup(args).ok()?;
        spec.flags.contains(&"denyoom").then(|| Reply::err(OOM))
    }

    pub(super) fn publish(&self, used: usize, over: bool) {
        self.used.store(used as u64, Ordering::Relaxed);
        self.over.store(over, Ordering::Relaxed);
    }

    pub(super) fn count_evicted(&self, n: u64) {
        self.evicted_pending.fetch_add(n, Ordering::Relaxed);
    }

    /// The batch's commit: its evictions count (`committed`) or, rolled
    /// back, do not.
    pub(super) fn settle_evicted(&self, committed: bool) {
        let n = self.evicted_pending.swap(0, Ordering::Relaxed);
        if committed {
            self.evicted.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// The memory `maxmemory` is compared with (see the module docs).
pub fn used_memory(dbs: &Databases) -> usize {
    dbs.iter().map(|(_, s)| s.used_bytes()).sum()
}

/// One pool entry: a candidate of database `db` and its score.
#[derive(Debug)]
struct Pooled {
    score: u64,
    db: usize,
    key: Vec<u8>,
}

/// Redis's eviction pool: the best candidates seen over successive
/// samples, kept between evictions (so each eviction picks among more than
/// one sample's keys).
#[derive(Debug, Default)]
pub struct EvictionPool {
    /// Ascending score: the best candidate is last.
    pool: Vec<Pooled>,
    /// Sampling buffer, reused.
    sample: Vec<Candidate>,
}

impl EvictionPool {
    /// An empty pool.
    pub fn new() -> EvictionPool {
        EvictionPool::default()
    }

    /// Forgets the candidates (after a policy change, or a flush).
    pub fn clear(&mut self) {
        self.pool.clear();
    }

    /// The next key to evict under `c`: (database, key), or `None` if no
    /// database has a key the policy may evict. The key is present.
    pub fn pick(&mut self, dbs: &Databases, c: MemoryConfig, now: u64) -> Option<(usize, Vec<u8>)> {
        let policy = c.policy;
        if policy == Policy::NoEviction {
            return None;
        }
        let samples = c.samples.max(1) as usize;
        let eligible = |s: &crate::store::Store| {
            if policy.volatile() {
                s.expires_len() > 0
            } else {
                !s.is_empty()
            }
        };
        if policy.random() {
            for (db, s) in dbs.iter().filter(|(_, s)| eligible(s)) {
                self.sample.clear();
                s.eviction_sample(1, policy.volatile(), now, &mut self.sample);
                if let Some(c) = self.sample.pop() {
                    return Some((db, c.key));
                }
            }
            return None;
        }
        // A few rounds at most: each either finds a present candidate or
        // refills the pool from every database.
        for _ in 0..4 {
            for (db, s) in dbs.iter().filter(|(_, s)| eligible(s)) {
                self.sample.clear();
                s.eviction_sample(samples, policy.volatile(), now, &mut self.sample);
                for cand in self.sample.drain(..) {
                    let score = policy.score(&cand);
                    if self.pool.iter().any(|p| p.db == db && p.key == cand.key) {
                        continue;
                    }
                    if self.pool.len() == POOL_SIZE {
                        if score <= self.pool[0].score {
                            continue;
                        }
                        self.pool.remove(0);
                    }
                    let at = self.pool.partition_point(|p| p.score <= score);
                    self.pool.insert(
                        at,
                        Pooled {
                            score,
                            db,
                            key: cand.key,
                        },
                    );
                }
            }
            while let Some(best) = self.pool.pop() {
                let present = best.db < dbs.count() && dbs.db(best.db).raw(&best.key).is_some();
                if present {
                    return Some((best.db, best.key));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dbs_with(n: usize, ttl_every: usize) -> Databases {
        let mut dbs = Databases::new(2);
        for i in 0..n {
            let exp = (i % ttl_every == 0).then_some(1_000_000 + i as u64);
            dbs.db_mut(i % 2)
                .set(format!("k{i}").as_bytes(), vec![b'v'; 100], exp);
        }
        dbs
    }

    #[test]
    fn policies_parse_by_their_redis_names() {
        for (p, n) in POLICIES {
            assert_eq!(Policy::parse(n), Ok(p));
            assert_eq!(Policy::parse(&n.to_uppercase()), Ok(p));
            assert_eq!(p.name(), n);
        }
        assert!(Policy::parse("lru").unwrap_err().contains("allkeys-lru"));
    }

    #[test]
    fn memory_setters_change_what_config_reads() {
        let m = Memory::new(MemoryConfig::default());
        m.set_maxmemory(1234);
        m.set_policy(Policy::VolatileLfu);
        m.set_samples(0);
        m.set_lfu_log_factor(3);
        m.set_lfu_decay_time(7);
        let c = m.config();
        assert_eq!(
            c,
            MemoryConfig {
                maxmemory: 1234,
                policy: Policy::VolatileLfu,
                samples: 1,
                lfu_log_factor: 3,
                lfu_decay_time: 7
            }
        );
        assert!(m.lfu_params().enabled);
    }

    #[test]
    fn oom_refuses_denyoom_commands_only_when_over() {
        let m = Memory::new(MemoryConfig::default());
        let set = vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()];
        let del = vec![b"DEL".to_vec(), b"k".to_vec()];
        assert_eq!(m.refusal(&set), None);
        m.publish(10, true);
        assert_eq!(m.refusal(&set), Some(Reply::err(OOM)));
        assert_eq!(m.refusal(&del), None);
        assert_eq!(m.refusal(&[b"GET".to_vec(), b"k".to_vec()]), None);
    }

    #[test]
    fn noeviction_picks_nothing_and_volatile_only_keys_with_a_ttl() {
        let dbs = dbs_with(100, 3);
        let mut pool = EvictionPool::new();
        let mut c = MemoryConfig::default();
        assert_eq!(pool.pick(&dbs, c, 0), None);
        for p in [
            Policy::VolatileLru,
            Policy::VolatileLfu,
            Policy::VolatileRandom,
            Policy::VolatileTtl,
        ] {
            c.policy = p;
            for _ in 0..20 {
                let (db, key) = pool.pick(&dbs, c, 0).expect("a volatile key");
                assert!(dbs.db(db).raw(&key).unwrap().expire_at.is_some(), "{p}");
            }
        }
        let mut no_ttl = Databases::new(1);
        no_ttl.db_mut(0).set(b"k", b"v".to_vec(), None);
        c.policy = Policy::VolatileLru;
        assert_eq!(EvictionPool::new().pick(&no_ttl, c, 0), None);
    }

    #[test]
    fn lru_evicts_mostly_idle_keys() {
        // 1000 keys; the first 500 were accessed long ago, the rest now.
        let mut dbs = Databases::new(1);
        for i in 0..1000u64 {
            let s = dbs.db_mut(0);
            s.advance(if i < 500 { 1_000 } else { 1_000_000 });
            s.set(format!("k{i}").as_bytes(), vec![0; 10], None);
        }
        let c = MemoryConfig {
            policy: Policy::AllKeysLru,
            ..MemoryConfig::default()
        };
        let mut pool = EvictionPool::new();
        let mut old = 0;
        for _ in 0..200 {
            let (db, key) = pool.pick(&dbs, c, 1_000_001).unwrap();
            let i: u64 = std::str::from_utf8(&key[1..]).unwrap().parse().unwrap();
            old += usize::from(i < 500);
            dbs.db_mut(db).remove(&key);
        }
        // Sampling 5 at a time, an idle key is picked nearly always.
        assert!(old >= 190, "{old} of 200 evictions were idle keys");
    }

    #[test]
    fn ttl_evicts_the_soonest_to_expire_first() {
        let mut dbs = Databases::new(1);
        for i in 0..200u64 {
            dbs.db_mut(0).set(
                format!("k{i}").as_bytes(),
                vec![0; 10],
                Some(10_000 + i * 1000),
            );
        }
        let c = MemoryConfig {
            policy: Policy::VolatileTtl,
            samples: 10,
            ..MemoryConfig::default()
        };
        let mut pool = EvictionPool::new();
        let mut picked = Vec::new();
        for _ in 0..20 {
            let (db, key) = pool.pick(&dbs, c, 0).unwrap();
            picked.push(
                std::str::from_utf8(&key[1..])
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
            dbs.db_mut(db).remove(&key);
        }
        let mean = picked.iter().sum::<u64>() / picked.len() as u64;
        assert!(
            mean < 70,
            "mean index {mean} of keys picked by volatile-ttl: {picked:?}"
        );
    }
}
