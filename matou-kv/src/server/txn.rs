//! Transactions, the storage task's half: the key versions WATCH compares.
//!
//! [`Versions`] is a fixed table of counters indexed by a hash of the key:
//! every change of a key (each key of each [`LogRecord`] the storage task
//! logs, every key a flush removes) stores a new, never reused sequence
//! number in the key's slot. WATCH records the slot's number, EXEC aborts
//! if it moved.
//!
//! Why a hashed table rather than a version per key or a list of watchers:
//! it costs the same whatever the number of keys and of watching clients,
//! needs no clean-up when a client leaves mid-WATCH, and every change
//! already goes through a log record, so nothing else must remember to
//! bump it. The price is that two keys sharing a slot (one chance in
//! [`SLOTS`] per pair) make a change of one abort an EXEC watching the
//! other: a spurious abort, which the client retries as after any other; a
//! change is never missed.
//!
//! Expiry counts as a change (Redis 7): a key live at WATCH and expired at
//! EXEC aborts it even if nothing removed it yet; a key that was already
//! expired at WATCH does not abort by being removed, only by being there
//! again (set anew).

use crate::command::multi::Watched;
use crate::databases::Databases;
use crate::record::LogRecord;
use crate::store::Store;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Slots of the version table (a power of two).
pub const SLOTS: usize = 1 << 16;

/// The version table (see the module docs).
pub(super) struct Versions {
    slots: Vec<u64>,
    seq: u64,
}

fn slot(db: usize, key: &[u8]) -> usize {
    // Fixed keys: the slot of a key must not change while it is watched.
    let mut h = DefaultHasher::new();
    db.hash(&mut h);
    key.hash(&mut h);
    (h.finish() as usize) & (SLOTS - 1)
}

impl Versions {
    pub(super) fn new() -> Versions {
        Versions {
            slots: vec![0; SLOTS],
            seq: 0,
        }
    }

    /// Marks `key` of database `db` changed.
    pub(super) fn touch(&mut self, db: usize, key: &[u8]) {
        self.seq += 1;
        self.slots[slot(db, key)] = self.seq;
    }

    /// Marks every key `record` changes (a plain record is database 0's,
    /// as in the log). A flush or SWAPDB names no key: the caller touches
    /// the keys involved before it runs (see [`Self::touch_all`]).
    pub(super) fn touch_record(&mut self, record: &LogRecord) {
        self.touch_in(0, record);
    }

    fn touch_in(&mut self, db: usize, record: &LogRecord) {
        match record {
            LogRecord::Set { key, .. }
            | LogRecord::Append { key, .. }
            | LogRecord::PExpireAt { key, .. }
            | LogRecord::Persist { key }
            | LogRecord::SetRange { key, .. }
            | LogRecord::Value { key, .. }
            | LogRecord::HSet { key, .. }
            | LogRecord::HDel { key, .. }
            | LogRecord::SAdd { key, .. }
            | LogRecord::SRem { key, .. }
            | LogRecord::ZAdd { key, .. }
            | LogRecord::ZRem { key, .. } => self.touch(db, key),
            LogRecord::List(l) => self.touch(db, l.key()),
            LogRecord::MSet { pairs } => pairs.iter().for_each(|(k, _)| self.touch(db, k)),
            LogRecord::Del { keys } => keys.iter().for_each(|k| self.touch(db, k)),
            LogRecord::FlushAll | LogRecord::SwapDb(..) => {}
            LogRecord::Multi(records) => records.iter().for_each(|r| self.touch_in(db, r)),
            LogRecord::Db { db, record } => self.touch_in(*db as usize, record),
        }
    }

    /// Marks every key of `store`, database `db`, changed (before a flush
    /// or a SWAPDB).
    pub(super) fn touch_all(&mut self, db: usize, store: &Store) {
        for e in store.iter() {
            self.touch(db, e.key);
        }
    }

    /// Marks the live keys of `store` changed in database `db` (before a
    /// SWAPDB: a key expired in both databases changes in neither, as
    /// Redis's `touchAllWatchedKeysInDb` sees it).
    pub(super) fn touch_live(&mut self, db: usize, store: &Store, now: u64) {
        for e in store.iter() {
            if !crate::store::is_expired(e.expire_at, now) {
                self.touch(db, e.key);
            }
        }
    }

    /// WATCH: what EXEC will compare, for each key.
    pub(super) fn watch(
        &self,
        db: usize,
        keys: Vec<Vec<u8>>,
        store: &Store,
        now: u64,
    ) -> Vec<Watched> {
        keys.into_iter()
            .map(|key| Watched {
                db,
                version: self.slots[slot(db, &key)],
                expired: store.raw(&key).is_some() && !store.contains(&key, now),
                live: store.contains(&key, now),
                key,
            })
            .collect()
    }

    /// Whether none of the watched keys changed since WATCH.
    pub(super) fn unchanged(&self, watched: &[Watched], dbs: &Databases, now: u64) -> bool {
        watched.iter().all(|w| {
            let store = dbs.db(w.db);
            let moved = self.slots[slot(w.db, &w.key)] != w.version;
            let present = store.raw(&w.key).is_some();
            if w.expired {
                !(moved && present)
            } else if !w.live {
                // Arriving live touches it; arriving stale is no change.
                !moved
            } else {
                // Unchanged, and not expired since (absent is fine).
                !moved && (!present || store.contains(&w.key, now))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_expiry_and_flush_are_seen() {
        let mut dbs = Databases::new(2);
        let mut v = Versions::new();
        dbs.db_mut(0).set(b"a", b"1".to_vec(), Some(100));
        dbs.db_mut(0).set(b"b", b"1".to_vec(), None);
        let w = v.watch(0, vec![b"a".to_vec(), b"b".to_vec()], dbs.db(0), 50);
        assert!(v.unchanged(&w, &dbs, 100));
        assert!(!v.unchanged(&w, &dbs, 101), "a expired since WATCH");
        v.touch_record(&LogRecord::Persist { key: b"b".to_vec() });
        let wb = &w[1..];
        assert!(!v.unchanged(wb, &dbs, 0), "b changed");
        let wb = v.watch(0, vec![b"b".to_vec()], dbs.db(0), 0);
        v.touch_all(0, dbs.db(0));
        assert!(!v.unchanged(&wb, &dbs, 0), "flush");
        let wc = v.watch(0, vec![b"c".to_vec()], dbs.db(0), 0);
        v.touch_all(0, dbs.db(0));
        assert!(
            v.unchanged(&wc, &dbs, 0)
                || slot(0, b"c") == slot(0, b"a")
                || slot(0, b"c") == slot(0, b"b")
        );
    }

    #[test]
    fn a_swapdb_that_brings_or_replaces_only_stale_keys_is_no_change() {
        let mut dbs = Databases::new(2);
        let mut v = Versions::new();
        // Database 0 holds x expired; database 1 has no x, then a live y.
        dbs.db_mut(0).set(b"x", b"1".to_vec(), Some(10));
        let absent = v.watch(1, vec![b"x".to_vec()], dbs.db(1), 20);
        let stale = v.watch(0, vec![b"x".to_vec()], dbs.db(0), 20);
        for (x, y) in [(0, 1), (1, 0)] {
            v.touch_live(x, dbs.db(x), 20);
            v.touch_live(x, dbs.db(y), 20);
        }
        dbs.swap(0, 1);
        assert!(v.unchanged(&absent, &dbs, 20), "a stale key arrived");
        assert!(v.unchanged(&stale, &dbs, 20), "a stale key left");
        // A live key arriving is a change.
        dbs.db_mut(0).set(b"x", b"2".to_vec(), None);
        let watched = v.watch(1, vec![b"x".to_vec()], dbs.db(1), 20);
        for (x, y) in [(0, 1), (1, 0)] {
            v.touch_live(x, dbs.db(x), 20);
            v.touch_live(x, dbs.db(y), 20);
        }
        dbs.swap(0, 1);
        assert!(!v.unchanged(&watched, &dbs, 20));
    }

    #[test]
    fn removing_an_already_expired_key_is_no_change() {
        let mut dbs = Databases::new(2);
        let mut v = Versions::new();
        dbs.db_mut(0).set(b"a", b"1".to_vec(), Some(10));
        let w = v.watch(0, vec![b"a".to_vec()], dbs.db(0), 20);
        dbs.db_mut(0).remove(b"a");
        v.touch(0, b"a");
        assert!(v.unchanged(&w, &dbs, 20));
        dbs.db_mut(0).set(b"a", b"2".to_vec(), None);
        v.touch(0, b"a");
        assert!(!v.unchanged(&w, &dbs, 20));
    }
}
