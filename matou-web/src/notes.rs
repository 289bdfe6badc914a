//! The notes store behind `/api/notes`: an in-memory map shared by every
//! worker.
//!
//! Invariants: ids are handed out in increasing order and never reused, so a
//! deleted note's id stays `404`; the lock is held for map operations only,
//! never across an await.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A stored note, as the API returns it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Note {
    pub(crate) id: u64,
    pub(crate) text: String,
}

/// What `POST /api/notes` accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewNote {
    pub(crate) text: String,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    notes: BTreeMap<u64, Note>,
}

/// The store. `Sync`: one per application, shared by every worker.
#[derive(Default)]
pub(crate) struct Notes {
    inner: Mutex<Inner>,
}

impl Notes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated
        // (each operation is one map call), so a poisoned lock is still good.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add(&self, new: NewNote) -> Note {
        let mut inner = self.lock();
        inner.next_id += 1;
        let note = Note {
            id: inner.next_id,
            text: new.text,
        };
        inner.notes.insert(note.id, note.clone());
        note
    }

    pub(crate) fn get(&self, id: u64) -> Option<Note> {
        self.lock().notes.get(&id).cloned()
    }

    pub(crate) fn remove(&self, id: u64) -> bool {
        self.lock().notes.remove(&id).is_some()
    }

    /// Every note, by id (oldest first).
    pub(crate) fn all(&self) -> Vec<Note> {
        self.lock().notes.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_and_are_not_reused_after_a_delete() {
        let notes = Notes::default();
        let a = notes.add(NewNote { text: "a".into() });
        assert!(notes.remove(a.id));
        assert!(!notes.remove(a.id));
        let b = notes.add(NewNote { text: "b".into() });
        assert!(b.id > a.id);
        assert_eq!(notes.get(a.id), None);
        assert_eq!(notes.all(), vec![b]);
    }
}
