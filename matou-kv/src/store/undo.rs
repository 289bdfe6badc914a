//! [`Undo`]: a journal of the prior state of what a batch of writes is
//! about to change, so that the batch can be taken back when its log
//! commit fails (the storage task executes first and commits after).
//!
//! Invariant: recording a step before each change and then
//! [`Undo::rollback`] gives a store equal ([`Store`]'s `PartialEq`: same
//! keys, values and expiry times) to the one before the first step. Slots
//! may differ (a restored key can land in another slot), which SCAN's
//! guarantee allows: the key was "removed and added again".
//!
//! Steps are pointer copies (values are `Arc`s), except APPEND to a live
//! key, which records the old length rather than a second reference to
//! the value: holding one would make the append copy the whole value.

use super::{Entry, Snapshot, Store};

enum Step {
    /// The key's entry before the change (`None`: absent).
    Key(Vec<u8>, Option<Entry>),
    /// The key's value was this long (an APPEND to a live key).
    Len(Vec<u8>, usize),
    /// Every entry (before a FLUSHALL).
    All(Snapshot),
}

/// The prior state of what a batch changed, newest step last.
#[derive(Default)]
pub struct Undo {
    steps: Vec<Step>,
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

    /// Records `key`'s entry as it is now, present or not.
    pub fn save_key(&mut self, store: &Store, key: &[u8]) {
        let entry = store.slot(key).map(|s| store.entry_at(s).clone());
        self.steps.push(Step::Key(key.to_vec(), entry));
    }

    /// Records the length of `key`'s value before an append to it; falls
    /// back to [`save_key`](Self::save_key) if the key is absent.
    pub fn save_len(&mut self, store: &Store, key: &[u8]) {
        match store.raw(key) {
            Some(e) => self.steps.push(Step::Len(key.to_vec(), e.value.len())),
            None => self.save_key(store, key),
        }
    }

    /// Records every entry (pointer copies), before a change to all of them.
    pub fn save_all(&mut self, store: &Store) {
        self.steps.push(Step::All(store.snapshot()));
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Forgets every step: the changes are kept (committed).
    pub fn clear(&mut self) {
        self.steps.clear();
    }

    /// Takes every recorded change back, newest first, and empties the
    /// journal.
    pub fn rollback(&mut self, store: &mut Store) {
        while let Some(step) = self.steps.pop() {
            match step {
                Step::Key(key, entry) => store.put_entry(&key, entry),
                Step::Len(key, len) => store.truncate(&key, len),
                Step::All(snapshot) => {
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
                let new_len = e.value.len();
                self.bytes = self.bytes - old.len() + new_len;
                self.set_expire_at_slot(slot, entry.expire_at);
            }
            None => {
                self.bytes += entry.key.len() + entry.value.len();
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
            if e.value.len() > len {
                let cut = e.value.len() - len;
                std::sync::Arc::make_mut(&mut e.value).truncate(len);
                self.bytes -= cut;
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
        undo.rollback(&mut s);
        assert_eq!(s, before);
        assert_eq!(s.data_bytes(), before.data_bytes());
        assert_eq!(s.expires_len(), before.expires_len());
        assert!(undo.is_empty());
    }

    #[test]
    fn append_to_a_value_a_journal_saw_does_not_copy_it() {
        let mut s = store(&[("k", "abc", None)]);
        let mut undo = Undo::new();
        undo.save_len(&s, b"k");
        s.append(b"k", b"def");
        assert_eq!(s.get(b"k", 0), Some(&b"abcdef"[..]));
        undo.rollback(&mut s);
        assert_eq!(s.get(b"k", 0), Some(&b"abc"[..]));
    }
}
