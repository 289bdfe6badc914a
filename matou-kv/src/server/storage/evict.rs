//! The storage task's memory duties: the active expiry cycle and eviction
//! under `maxmemory` (the policy itself is `server::memory`'s).
//!
//! Both remove keys the way a DEL would: each removal is journaled in the
//! batch's [`Undo`](crate::store::Undo) (a failed commit takes it back),
//! logged as a [`LogRecord::Del`] of its database (so a replay removes the
//! same keys), and bumps the WATCH versions of the keys (an EXEC watching
//! an evicted or expired key aborts, as in Redis).
//!
//! **Active expiry** is Redis's adaptive cycle with one difference that
//! makes it exact: Redis samples keys with a TTL and repeats while more
//! than a quarter of a sample was expired, because its expiry dict is
//! unordered; here the expiry index is ordered by time, so each step
//! removes up to [`EXPIRE_WORK`](super::EXPIRE_WORK) keys that *are*
//! expired, soonest first, and the cycle repeats while a step was full
//! (every key examined was expired), within a time budget of
//! [`EXPIRE_BUDGET`] per tick (Redis's 25% of a 100 ms cycle). A never-read
//! key with a TTL is thus gone within a tick or so of its expiry, unless a
//! backlog of expired keys larger than the budget is being worked off.

use super::{Storage, EXPIRE_WORK};
use crate::databases::Databases;
use crate::record::LogRecord;
use crate::server::memory::{used_memory, Policy};
use crate::server::notify::Class;
use std::time::{Duration, Instant};

/// Time one tick's expiry cycle may take at most.
pub const EXPIRE_BUDGET: Duration = Duration::from_millis(25);

impl Storage {
    /// Gives every database the LFU parameters now in force (a CONFIG SET
    /// may have changed them); cheap when nothing changed.
    pub(super) fn sync_lfu(&mut self) {
        let lfu = self.memory.lfu_params();
        if self.store.db(0).lfu_params() != lfu {
            for i in 0..self.store.count() {
                self.store.db_mut(i).set_lfu_params(lfu);
            }
        }
    }

    /// Lazy expiry: removes the keys of database `db` that reads met
    /// expired and that still are at `now`, as active expiry does
    /// (journaled, logged as a DEL, counted once the batch commits).
    /// Nothing is removed while the log refuses writes.
    pub(super) fn reap_met_expired(&mut self, db: usize, now: u64) {
        let met = self.store.db_mut(db).take_met_expired();
        if met.is_empty() || self.aof.refusal().is_some() {
            return;
        }
        let mut removed = Vec::new();
        for key in met {
            let store = self.store.db_mut(db);
            if store
                .raw(&key)
                .is_some_and(|e| crate::store::is_expired(e.expire_at, now))
            {
                self.undo.in_db(db).save_key(store, &key);
                store.remove(&key);
                store.notify(Class::EXPIRED, "expired", &key);
                removed.push(key);
            }
        }
        if !removed.is_empty() {
            self.lazy_expired += removed.len() as u64;
            self.log_removal(db, removed);
        }
    }

    /// One active expiry cycle at `self.clock` (see the module docs);
    /// appends its DELs to the log and returns how many keys it removed.
    /// Does nothing while DEBUG SET-ACTIVE-EXPIRE 0 is in force.
    pub(super) fn expire_cycle(&mut self) -> u64 {
        if !self.memory.active_expire() {
            return 0;
        }
        let started = Instant::now();
        let mut expired = 0;
        for db in 0..self.store.count() {
            loop {
                let removed = self.store.db_mut(db).active_expire_journaled(
                    self.clock,
                    EXPIRE_WORK,
                    Some(self.undo.in_db(db)),
                );
                let full = removed.len() == EXPIRE_WORK;
                if !removed.is_empty() {
                    expired += removed.len() as u64;
                    self.log_removal(db, removed);
                }
                if !full || started.elapsed() >= EXPIRE_BUDGET {
                    break;
                }
            }
        }
        expired
    }

    /// Evicts keys under the memory policy until the used memory is within
    /// `maxmemory` or nothing more may be evicted, and publishes the figure
    /// and whether `denyoom` commands must be refused. Nothing is evicted
    /// while the log refuses writes (the removal could not be logged; the
    /// writes are refused with `-MISCONF` anyway).
    pub(super) fn evict(&mut self, now: u64) {
        let c = self.memory.config();
        if c.maxmemory == 0 {
            return;
        }
        let mut used = used_memory(&self.store);
        if used as u64 <= c.maxmemory || self.aof.refusal().is_some() {
            self.memory.publish(used, false);
            return;
        }
        let mut removed: Vec<Vec<Vec<u8>>> = vec![Vec::new(); self.store.count()];
        let mut evicted = 0;
        while used as u64 > c.maxmemory {
            let Some((db, key)) = self.pool.pick(&self.store, c, now) else {
                break;
            };
            used = used.saturating_sub(self.store.db(db).cost_of(&key).unwrap_or(0));
            self.undo.in_db(db).save_key(self.store.db(db), &key);
            self.store.db_mut(db).remove(&key);
            self.store
                .db_mut(db)
                .notify(Class::EVICTED, "evicted", &key);
            removed[db].push(key);
            evicted += 1;
        }
        for (db, keys) in removed.into_iter().enumerate() {
            if !keys.is_empty() {
                self.log_removal(db, keys);
            }
        }
        self.memory.count_evicted(evicted);
        self.memory.publish(used, used as u64 > c.maxmemory);
    }

    /// After a batch's commit: publishes the used memory, and lifts the refusal of
    /// `denyoom` commands if the batch (a DEL, a FLUSH) made room, or sets
    /// it under noeviction if the batch went over. Under an evicting policy
    /// an excess is left to the next write's eviction, which decides.
    ///
    /// `committed`: whether the batch's commit succeeded (its evictions
    /// count in `evicted_keys`) or was rolled back (they do not).
    pub(super) fn publish_memory(&self, committed: bool) {
        self.memory.settle_evicted(committed);
        let c = self.memory.config();
        // Published without a limit too: CONFIG SET maxmemory compares
        // the new limit with it.
        let used = used_memory(&self.store);
        if c.maxmemory == 0 || used as u64 <= c.maxmemory {
            self.memory.publish(used, false);
        } else if c.policy == Policy::NoEviction {
            self.memory.publish(used, true);
        } else {
            self.memory.publish(used, self.memory.is_over());
        }
    }

    /// Logs the removal of `keys` from `db` (see the module docs).
    fn log_removal(&mut self, db: usize, keys: Vec<Vec<u8>>) {
        let record = Databases::in_db(db, LogRecord::Del { keys });
        self.versions.touch_record(&record);
        self.aof.append(&record);
    }
}
