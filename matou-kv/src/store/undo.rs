//! [`Undo`]: a journal of the prior state of what a batch of writes is
//! about to change, so that the batch can be taken back when its log
//! commit fails (the storage task executes first and commits after).
//!
//! Invariant: recording a step before each change and then
//! [`Undo::rollback`] gives [`Databases`] equal (same keys, values and
//! expiry times in each database) to the ones before the first step. Each
//! step belongs to the database [`Undo::in_db`] last named (a write on
//! database `n`, each database of a FLUSHALL, both of a MOVE); a SWAPDB is
//! a step of its own, undone by swapping back. Slots
//! may differ (a restored key can land in another slot), which SCAN's
//! guarantee allows: the key was "removed and added again".
//!
//! Steps are pointer copies (values are `Arc`s), except APPEND to a live
//! key, which records the old length rather than a second reference to
//! the value: holding one would make the append copy the whole value.
//! Hash, set and sorted-set commands that name their elements (HSET,
//! SADD, SREM, ZADD, ZREM...) record those elements' prior state only
//! ([`Undo::save_fields`], [`Undo::save_members`]). Any other step that
//! shares an aggregate (a list, SPOP, ZPOPMIN...) makes the change that
//! follows copy it (`Arc::make_mut`): correct, but O(size) per such write.

use super::{Entry, EntryRef, Snapshot, Store, Value};
use crate::databases::Databases;
use std::sync::Arc;

enum Step {
    /// The key's entry before the change (`None`: absent).
    Key(Vec<u8>, Option<Entry>),
    /// The key's value was this long (an APPEND to a live key).
    Len(Vec<u8>, usize),
    /// Every entry (before a FLUSHDB or FLUSHALL).
    All(Snapshot),
    /// These two databases were swapped (SWAPDB).
    Swap(usize, usize),
    /// The live hash at the key had these fields (`None`: absent) and
    /// this expiry: what a hash command changes, without a copy of the
    /// hash.
    Fields(Vec<u8>, Option<u64>, Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// The live list at the key had this many elements pushed at its head
    /// (`true`) or tail: undone by popping them.
    ListPushed(Vec<u8>, bool, usize),
    /// These elements (in the order popped) were popped from the head
    /// (`true`) or tail of the live list at the key, which had this
    /// expiry: undone by pushing them back (recreating the key if the pop
    /// emptied it).
    ListPopped(Vec<u8>, bool, Vec<Vec<u8>>, Option<u64>),
    /// The live set or sorted set at the key had these members (or not)
    /// and this expiry.
    Members(Vec<u8>, Option<u64>, Prior),
}

/// Members of a set or sorted set before a change.
enum Prior {
    /// Whether each was in the set.
    Set(Vec<(Vec<u8>, bool)>),
    /// Each one's score, if it was in the sorted set.
    ZSet(Vec<(Vec<u8>, Option<f64>)>),
}

/// The prior state of what a batch changed, newest step last, each step
/// with its database.
#[derive(Default)]
pub struct Undo {
    steps: Vec<(usize, Step)>,
    /// The database of the steps recorded next.
    db: usize,
}

impl std::fmt::Debug for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undo")
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl Undo {
    /// An empty journal.
    pub fn new() -> Undo {
        Undo::default()
    }

    /// Makes `db` the database of the steps recorded next (the one whose
    /// [`Store`] the `save_*` calls are given).
    pub fn in_db(&mut self, db: usize) -> &mut Undo {
        self.db = db;
        self
    }

    fn push(&mut self, step: Step) {
        self.steps.push((self.db, step));
    }

    /// Records `key`'s entry as it is now, present or not.
    pub fn save_key(&mut self, store: &Store, key: &[u8]) {
        let entry = store.slot(key).map(|s| store.entry_at(s).clone());
        self.push(Step::Key(key.to_vec(), entry));
    }

    /// Records the length of `key`'s value before an append to it; falls
    /// back to [`save_key`](Self::save_key) if the key is absent.
    pub fn save_len(&mut self, store: &Store, key: &[u8]) {
        match store.raw(key).map(|e| e.value.as_str().map(<[u8]>::len)) {
            Some(Some(len)) => self.push(Step::Len(key.to_vec(), len)),
            _ => self.save_key(store, key),
        }
    }

    /// Records the `fields` of the hash at `key` before a hash command
    /// changes them (and nothing else of it). A key absent, expired at
    /// `now` (the command purges it whole) or of another type is recorded
    /// whole instead ([`save_key`](Self::save_key): cheap for those).
    pub fn save_fields<'a>(
        &mut self,
        store: &Store,
        key: &[u8],
        fields: impl Iterator<Item = &'a [u8]>,
        now: u64,
    ) {
        match store.entry(key, now) {
            Some(e) => match e.value {
                Value::Hash(h) => {
                    let old = fields.map(|f| (f.to_vec(), h.get(f).cloned())).collect();
                    self.push(Step::Fields(key.to_vec(), e.expire_at, old));
                }
                _ => self.save_key(store, key),
            },
            None => self.save_key(store, key),
        }
    }

    /// Records a push of `n` elements at the head (`left`) or tail of the
    /// list at `key`, before it happens, without a copy of the list. A key
    /// absent, expired at `now` or of another type is recorded whole
    /// ([`save_key`](Self::save_key): cheap for those).
    pub fn save_list_push(&mut self, store: &Store, key: &[u8], left: bool, n: usize, now: u64) {
        match store.entry(key, now).map(|e| e.value) {
            Some(Value::List(_)) => self.push(Step::ListPushed(key.to_vec(), left, n)),
            _ => self.save_key(store, key),
        }
    }

    /// Records a pop of at most `count` elements from the head (`left`) or
    /// tail of the list at `key`, before it happens: a copy of those
    /// elements only. Other cases as [`save_list_push`](Self::save_list_push).
    pub fn save_list_pop(&mut self, store: &Store, key: &[u8], left: bool, count: usize, now: u64) {
        match store.entry(key, now) {
            Some(EntryRef {
                value: Value::List(l),
                expire_at,
                ..
            }) => {
                let n = count.min(l.len());
                let popped = if left {
                    l.iter().take(n).cloned().collect()
                } else {
                    l.iter().rev().take(n).cloned().collect()
                };
                self.push(Step::ListPopped(key.to_vec(), left, popped, expire_at));
            }
            _ => self.save_key(store, key),
        }
    }

    /// Records the `members` of the set or sorted set at `key` before a
    /// command adds or removes them (and nothing else of it); like
    /// [`save_fields`](Self::save_fields), a key absent, expired or of
    /// another type is recorded whole.
    pub fn save_members<'a>(
        &mut self,
        store: &Store,
        key: &[u8],
        members: impl Iterator<Item = &'a [u8]>,
        now: u64,
    ) {
        let Some(e) = store.entry(key, now) else {
            return self.save_key(store, key);
        };
        let prior = match e.value {
            Value::Set(s) => Prior::Set(members.map(|m| (m.to_vec(), s.contains(m))).collect()),
            Value::ZSet(z) => Prior::ZSet(members.map(|m| (m.to_vec(), z.score(m))).collect()),
            _ => return self.save_key(store, key),
        };
        self.push(Step::Members(key.to_vec(), e.expire_at, prior));
    }

    /// Records every entry (pointer copies), before a change to all of them.
    pub fn save_all(&mut self, store: &Store) {
        self.push(Step::All(store.snapshot()));
    }

    /// Records that databases `a` and `b` are about to be swapped.
    pub fn save_swap(&mut self, a: usize, b: usize) {
        self.push(Step::Swap(a, b));
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Forgets every step: the changes are kept (committed).
    pub fn clear(&mut self) {
        self.steps.clear();
        self.db = 0;
    }

    /// Takes every recorded change back, newest first, and empties the
    /// journal.
    pub fn rollback(&mut self, dbs: &mut Databases) {
        self.db = 0;
        while let Some((db, step)) = self.steps.pop() {
            match step {
                Step::Key(key, entry) => dbs.db_mut(db).put_entry(&key, entry),
                Step::Len(key, len) => dbs.db_mut(db).truncate(&key, len),
                Step::Swap(a, b) => dbs.swap(a, b),
                Step::Fields(key, expire_at, old) => {
                    let store = dbs.db_mut(db);
                    if !matches!(store.raw(&key).map(|e| e.value), Some(Value::Hash(_))) {
                        // Deleted by the change (emptied): back, empty
                        // for a moment, then refilled below.
                        store.put_arc(&key, Arc::new(Value::Hash(Default::default())), None);
                    }
                    store.update(&key, |v| {
                        let Value::Hash(h) = v else {
                            unreachable!("made a hash above")
                        };
                        let mut delta = 0isize;
                        for (f, was) in old {
                            let flen = f.len() as isize;
                            if let Some(now) = h.remove(&f) {
                                delta -= flen + now.len() as isize;
                            }
                            if let Some(was) = was {
                                delta += flen + was.len() as isize;
                                h.insert(f, was);
                            }
                        }
                        ((), delta)
                    });
                    store.set_expire(&key, expire_at);
                }
                Step::ListPushed(key, left, n) => {
                    dbs.db_mut(db).update(&key, |v| {
                        let Value::List(l) = v else { return ((), 0) };
                        let n = n.min(l.len());
                        let gone: Vec<Vec<u8>> = if left {
                            l.drain(..n).collect()
                        } else {
                            l.drain(l.len() - n..).collect()
                        };
                        ((), -(gone.iter().map(Vec::len).sum::<usize>() as isize))
                    });
                }
                Step::ListPopped(key, left, popped, expire_at) => {
                    let store = dbs.db_mut(db);
                    if !matches!(store.raw(&key).map(|e| e.value), Some(Value::List(_))) {
                        // Deleted by the pop (emptied): back, empty for a
                        // moment, then refilled below.
                        store.put_arc(&key, Arc::new(Value::List(Default::default())), None);
                    }
                    store.update(&key, |v| {
                        let Value::List(l) = v else {
                            unreachable!("made a list above")
                        };
                        let delta = popped.iter().map(Vec::len).sum::<usize>() as isize;
                        for e in popped.into_iter().rev() {
                            if left {
                                l.push_front(e);
                            } else {
                                l.push_back(e);
                            }
                        }
                        ((), delta)
                    });
                    store.set_expire(&key, expire_at);
                }
                Step::Members(key, expire_at, prior) => {
                    dbs.db_mut(db).restore_members(&key, expire_at, prior);
                }
                Step::All(snapshot) => {
                    let store = dbs.db_mut(db);
                    store.clear();
                    for e in snapshot.entries {
                        let key = e.key.clone();
                        store.put_entry(&key, Some(e));
                    }
                }
            }
        }
    }
}

impl Store {
    /// Gives the members `prior` names back the state it recorded, at the
    /// set or sorted set at `key` (made again if the change deleted it).
    fn restore_members(&mut self, key: &[u8], expire_at: Option<u64>, prior: Prior) {
        let is_set = matches!(prior, Prior::Set(_));
        let right_type = match self.raw(key).map(|e| e.value) {
            Some(Value::Set(_)) => is_set,
            Some(Value::ZSet(_)) => !is_set,
            _ => false,
        };
        if !right_type {
            // Emptied by the change: back, empty for a moment, then
            // refilled below.
            let empty = if is_set {
                Value::Set(Default::default())
            } else {
                Value::ZSet(Default::default())
            };
            self.put_arc(key, Arc::new(empty), None);
        }
        self.update(key, |v| {
            let mut delta = 0isize;
            match (v, prior) {
                (Value::Set(s), Prior::Set(old)) => {
                    for (m, was) in old {
                        let len = m.len() as isize;
                        if s.remove(&m) {
                            delta -= len;
                        }
                        if was {
                            s.insert(m);
                            delta += len;
                        }
                    }
                }
                (Value::ZSet(z), Prior::ZSet(old)) => {
                    for (m, was) in old {
                        let len = m.len() as isize + 8;
                        if z.remove(&m).is_some() {
                            delta -= len;
                        }
                        if let Some(score) = was {
                            z.insert(&m, score);
                            delta += len;
                        }
                    }
                }
                _ => unreachable!("made the right type above"),
            }
            ((), delta)
        });
        self.set_expire(key, expire_at);
    }

    /// Puts `key` back as `entry` (`None`: removes it), keeping its slot
    /// if it is present.
    fn put_entry(&mut self, key: &[u8], entry: Option<Entry>) {
        let Some(entry) = entry else {
            self.remove(key);
            return;
        };
        match self.slot(key) {
            Some(slot) => {
                let e = self.entry_at_mut(slot);
                let old = std::mem::replace(&mut e.value, entry.value);
                let new_len = e.value.data_len();
                self.bytes = self.bytes - old.data_len() + new_len;
                self.set_expire_at_slot(slot, entry.expire_at);
            }
            None => {
                self.bytes += entry.key.len() + entry.value.data_len();
                let (key, expire_at) = (entry.key.clone(), entry.expire_at);
                let slot = self.alloc_slot(Entry {
                    expire_at: None,
                    ..entry
                });
                self.index.insert(key, slot);
                self.set_expire_at_slot(slot, expire_at);
            }
        }
    }

    /// Cuts `key`'s value to `len` bytes (a no-op if absent or shorter).
    fn truncate(&mut self, key: &[u8], len: usize) {
        if let Some(slot) = self.slot(key) {
            let e = self.entry_at_mut(slot);
            let cur = e.value.as_str().map_or(0, <[u8]>::len);
            if cur > len {
                super::str_mut(&mut e.value).truncate(len);
                self.bytes -= cur - len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(pairs: &[(&str, &str, Option<u64>)]) -> Store {
        let mut s = Store::new();
        for (k, v, e) in pairs {
            s.set(k.as_bytes(), v.as_bytes().to_vec(), *e);
        }
        s
    }

    #[test]
    fn rollback_restores_every_kind_of_change() {
        let before = store(&[("a", "1", None), ("b", "22", Some(50)), ("c", "x", None)]);
        let mut s = store(&[("a", "1", None), ("b", "22", Some(50)), ("c", "x", None)]);
        let mut undo = Undo::new();
        undo.save_key(&s, b"a");
        s.set(b"a", b"changed".to_vec(), Some(9));
        undo.save_key(&s, b"new");
        s.set(b"new", b"v".to_vec(), None);
        undo.save_len(&s, b"c");
        s.append(b"c", b"yyy");
        undo.save_key(&s, b"b");
        s.remove(b"b");
        undo.save_all(&s);
        s.clear();
        undo.save_key(&s, b"z");
        s.set(b"z", b"after the flush".to_vec(), None);
        assert_ne!(s, before);
        let mut dbs = alone(s);
        undo.rollback(&mut dbs);
        let s = dbs.db(0);
        assert_eq!(*s, before);
        assert_eq!(s.data_bytes(), before.data_bytes());
        assert_eq!(s.expires_len(), before.expires_len());
        assert!(undo.is_empty());
    }

    /// `store` as database 0 of one.
    fn alone(store: Store) -> Databases {
        let mut dbs = Databases::new(1);
        *dbs.db_mut(0) = store;
        dbs
    }

    #[test]
    fn rollback_restores_each_database_and_swaps_back() {
        let three = || {
            let mut dbs = Databases::new(3);
            dbs.db_mut(0).set(b"a", b"zero".to_vec(), None);
            dbs.db_mut(1).set(b"a", b"one".to_vec(), Some(70));
            dbs.db_mut(2).set(b"m", b"two".to_vec(), None);
            dbs
        };
        let (mut dbs, before) = (three(), three());
        let mut undo = Undo::new();
        undo.in_db(1).save_key(dbs.db(1), b"a");
        dbs.db_mut(1).set(b"a", b"changed".to_vec(), None);
        undo.save_swap(0, 2);
        dbs.swap(0, 2);
        // MOVE m from 0 (was 2) to 1.
        undo.in_db(0).save_key(dbs.db(0), b"m");
        undo.in_db(1).save_key(dbs.db(1), b"m");
        dbs.db_mut(0).remove(b"m");
        dbs.db_mut(1).set(b"m", b"two".to_vec(), None);
        for i in 0..3 {
            undo.in_db(i).save_all(dbs.db(i));
            dbs.db_mut(i).clear();
        }
        undo.in_db(2).save_key(dbs.db(2), b"late");
        dbs.db_mut(2).set(b"late", b"x".to_vec(), None);
        assert_ne!(dbs, before);
        undo.rollback(&mut dbs);
        assert_eq!(dbs, before);
    }

    #[test]
    fn append_to_a_value_a_journal_saw_does_not_copy_it() {
        let mut s = store(&[("k", "abc", None)]);
        let mut undo = Undo::new();
        undo.save_len(&s, b"k");
        s.append(b"k", b"def");
        assert_eq!(s.get(b"k", 0), Some(&b"abcdef"[..]));
        let mut dbs = alone(s);
        undo.rollback(&mut dbs);
        assert_eq!(dbs.db(0).get(b"k", 0), Some(&b"abc"[..]));
    }
}
