//! The numbered databases (SELECT 0..n): one [`Store`] each, and what
//! spans several of them (MOVE, SWAPDB, FLUSHALL, a log replayed into
//! them all, a snapshot of them all).
//!
//! Invariants:
//! - The count is fixed by the configuration (`databases`, Redis's 16 by
//!   default), except while a log is replayed: a record for a database past
//!   the count makes room for it, so that nothing is dropped silently, and
//!   the server refuses to start if the log used more databases than it is
//!   configured for ([`Databases::count`] then tells how many).
//! - Records for database 0 carry no index (a plain record is database
//!   0's), so logs written before databases existed replay unchanged.

use crate::record::LogRecord;
use crate::server::notify::Class;
use crate::store::{Snapshot, Store};

/// Redis's default `databases`.
pub const DEFAULT_DATABASES: usize = 16;

/// The databases.
#[derive(Debug, PartialEq, Eq)]
pub struct Databases {
    dbs: Vec<Store>,
}

/// A snapshot of every non-empty database, for a log rewrite.
#[derive(Debug)]
pub struct Snapshots(pub Vec<(u32, Snapshot)>);

/// Database 0 alone.
impl From<Snapshot> for Snapshots {
    fn from(s: Snapshot) -> Snapshots {
        Snapshots(vec![(0, s)])
    }
}

impl Snapshots {
    /// Keys in all of them.
    pub fn len(&self) -> usize {
        self.0.iter().map(|(_, s)| s.len()).sum()
    }

    /// Whether there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Databases {
    /// `count` empty databases (at least one).
    pub fn new(count: usize) -> Databases {
        Databases {
            dbs: (0..count.max(1)).map(|_| Store::new()).collect(),
        }
    }

    /// How many there are.
    pub fn count(&self) -> usize {
        self.dbs.len()
    }

    /// Database `i` (`i < count()`).
    pub fn db(&self, i: usize) -> &Store {
        &self.dbs[i]
    }

    /// Database `i`, to change it (`i < count()`).
    pub fn db_mut(&mut self, i: usize) -> &mut Store {
        &mut self.dbs[i]
    }

    /// Every database with its index.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Store)> {
        self.dbs.iter().enumerate()
    }

    /// Keys in all databases.
    pub fn len(&self) -> usize {
        self.dbs.iter().map(Store::len).sum()
    }

    /// Whether no database holds a key.
    pub fn is_empty(&self) -> bool {
        self.dbs.iter().all(Store::is_empty)
    }

    /// Keys with an expiry, in all databases.
    pub fn expires_len(&self) -> usize {
        self.dbs.iter().map(Store::expires_len).sum()
    }

    /// Bytes of keys and values, in all databases.
    pub fn data_bytes(&self) -> usize {
        self.dbs.iter().map(Store::data_bytes).sum()
    }

    /// SWAPDB (`a`, `b` < `count()`).
    pub fn swap(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
    }

    /// Pointer copies of every non-empty database.
    pub fn snapshot(&self) -> Snapshots {
        Snapshots(
            self.iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(i, s)| (i as u32, s.snapshot()))
                .collect(),
        )
    }

    fn grown(&mut self, db: u32) -> &mut Store {
        let i = db as usize;
        if i >= self.dbs.len() {
            self.dbs.resize_with(i + 1, Store::new);
        }
        &mut self.dbs[i]
    }

    /// Applies a record as the log holds it (no clock involved).
    pub fn apply(&mut self, record: LogRecord) {
        match record {
            LogRecord::Db { db, record } => record.apply(self.grown(db)),
            LogRecord::SwapDb(a, b) => {
                self.grown(a.max(b));
                self.swap(a as usize, b as usize);
            }
            LogRecord::Multi(records) => records.into_iter().for_each(|r| self.apply(r)),
            plain => plain.apply(&mut self.dbs[0]),
        }
    }

    /// `record`, produced by a command on database `db`, as the log must
    /// hold it.
    pub fn in_db(db: usize, record: LogRecord) -> LogRecord {
        match (db, record) {
            (0, record) => record,
            // A `Db` wraps plain records only: it goes inside the Multi
            // (RENAME's), whose records are all of this database.
            (_, LogRecord::Multi(records)) => LogRecord::Multi(
                records
                    .into_iter()
                    .map(|r| Databases::in_db(db, r))
                    .collect(),
            ),
            (_, record) => LogRecord::Db {
                db: db as u32,
                record: Box::new(record),
            },
        }
    }

    /// COPY `key` of database `from` to `dest` of database `to` (another
    /// one): whether it copied, and the record (Redis copies a live key,
    /// onto a live destination only with `replace`).
    pub fn copy_key(
        &mut self,
        (from, key): (usize, &[u8]),
        (to, dest): (usize, &[u8]),
        replace: bool,
        now: u64,
    ) -> (bool, Option<LogRecord>) {
        let source = self.dbs[from]
            .contains(key, now)
            .then(|| self.dbs[from].shared(key))
            .flatten();
        let Some((value, expire_at)) = source else {
            return (false, None);
        };
        if !replace && self.dbs[to].contains(dest, now) {
            return (false, None);
        }
        // An expired destination is overwritten: no DEL needed.
        self.dbs[to].put_arc(dest, value.clone(), expire_at);
        self.dbs[to].notify(Class::GENERIC, "copy_to", dest);
        let record = LogRecord::put(dest.to_vec(), value, expire_at);
        (true, Some(Databases::in_db(to, record)))
    }

    /// MOVE `key` from database `from` to `to`: whether it moved, and the
    /// record (Redis moves a live key only to a database lacking it).
    pub fn move_key(
        &mut self,
        key: &[u8],
        from: usize,
        to: usize,
        now: u64,
    ) -> (bool, Option<LogRecord>) {
        let mut purged = Vec::new();
        for db in [from, to] {
            if self.dbs[db].purge_expired(key, now) {
                purged.push(Databases::in_db(
                    db,
                    LogRecord::Del {
                        keys: vec![key.to_vec()],
                    },
                ));
            }
        }
        let moving = match (self.dbs[from].raw(key), self.dbs[to].raw(key)) {
            (Some(_), None) => self.dbs[from].shared(key),
            _ => None,
        };
        let Some((value, expire_at)) = moving else {
            let rec = match purged.len() {
                0 => None,
                _ => Some(LogRecord::Multi(purged)),
            };
            return (false, rec);
        };
        self.dbs[from].remove(key);
        self.dbs[to].put_arc(key, value.clone(), expire_at);
        self.dbs[from].notify(Class::GENERIC, "move_from", key);
        self.dbs[to].notify(Class::GENERIC, "move_to", key);
        purged.push(Databases::in_db(
            from,
            LogRecord::Del {
                keys: vec![key.to_vec()],
            },
        ));
        purged.push(Databases::in_db(
            to,
            LogRecord::put(key.to_vec(), value, expire_at),
        ));
        (true, Some(LogRecord::Multi(purged)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_reach_their_database_and_replay_the_same() {
        let mut live = Databases::new(4);
        let mut log = Vec::new();
        live.db_mut(2).set(b"k", b"v".to_vec(), Some(50));
        log.push(Databases::in_db(
            2,
            LogRecord::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                expire_at_ms: Some(50),
            },
        ));
        let (moved, rec) = live.move_key(b"k", 2, 0, 10);
        assert!(moved);
        log.extend(rec);
        assert_eq!(live.move_key(b"absent", 2, 0, 10), (false, None));
        live.swap(0, 3);
        log.push(LogRecord::SwapDb(0, 3));
        assert_eq!(live.db(3).raw(b"k").unwrap().expire_at, Some(50));
        assert!(live.db(0).is_empty() && live.db(2).is_empty());

        let mut replayed = Databases::new(4);
        for r in log {
            replayed.apply(LogRecord::decode(&r.to_bytes()).unwrap());
        }
        assert_eq!(replayed, live);
    }

    #[test]
    fn a_log_using_more_databases_grows_the_set() {
        let mut d = Databases::new(2);
        d.apply(Databases::in_db(
            5,
            LogRecord::Set {
                key: b"k".to_vec(),
                value: vec![],
                expire_at_ms: None,
            },
        ));
        assert_eq!(d.count(), 6);
        assert_eq!(d.db(5).len(), 1);
    }
}
