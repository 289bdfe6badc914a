//! [`Value`]: what a key holds, one variant per Redis type, and what the
//! rest of the server asks of every type: its TYPE name, the OBJECT
//! ENCODING Redis would report for it, its byte size and its memory cost.
//!
//! Invariants:
//! - **An aggregate is never empty in a store**: a hash, list or set whose
//!   last element goes is deleted with its key (Redis semantics);
//!   [`Store::update`](super::Store::update) enforces it after every change.
//! - **`data_bytes` is the sum of element lengths** (a hash counts fields
//!   and values): what [`Value::data_len`] returns and the store keeps
//!   summed incrementally, so that no write walks a whole aggregate.
//! - The encoding reported is Redis 7's for the same content under the
//!   default thresholds (see the constants), whatever our representation:
//!   clients and Redis's own test suite read it to check conversions.
//!   Redis never converts back to the compact form when an aggregate
//!   shrinks, but neither does it report it again unless the key is
//!   rewritten; reporting from the current content is what a restart
//!   (which reloads compactly) would show.

use super::zset::{ZSet, DEFAULT_LISTPACK_ENTRIES, DEFAULT_LISTPACK_VALUE};
use crate::resp::parse_i64;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `hash-max-listpack-entries`: a hash with more fields is a `hashtable`.
pub const HASH_MAX_LISTPACK_ENTRIES: usize = 128;
/// `hash-max-listpack-value`: a hash with a longer field or value is a
/// `hashtable`.
pub const HASH_MAX_LISTPACK_VALUE: usize = 64;
/// `set-max-intset-entries`: an all-integer set with more members is a
/// `hashtable`.
pub const SET_MAX_INTSET_ENTRIES: usize = 512;
/// What OBJECT ENCODING names every list: Redis 7.0 keeps lists in a
/// quicklist of listpack nodes (`list-max-listpack-size -2`: 8 KiB each)
/// and reports `quicklist` whatever their size. (Redis 7.0 has no listpack
/// sets either: a set that is not an intset is a `hashtable`.)
pub const LIST_ENCODING: &str = "quicklist";

/// The encoding thresholds OBJECT ENCODING follows: Redis's
/// `hash-max-listpack-*`, `set-max-intset-entries` and
/// `zset-max-listpack-*`, which CONFIG SET changes (Redis's own test suite
/// sets them to reach each encoding). They are process-wide, as one server
/// runs per process: [`set_thresholds`] publishes them, [`thresholds`]
/// reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// `hash-max-listpack-entries`.
    pub hash_entries: usize,
    /// `hash-max-listpack-value`.
    pub hash_value: usize,
    /// `set-max-intset-entries`.
    pub set_intset_entries: usize,
    /// `zset-max-listpack-entries`.
    pub zset_entries: usize,
    /// `zset-max-listpack-value`.
    pub zset_value: usize,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            hash_entries: HASH_MAX_LISTPACK_ENTRIES,
            hash_value: HASH_MAX_LISTPACK_VALUE,
            set_intset_entries: SET_MAX_INTSET_ENTRIES,
            zset_entries: ZSET_MAX_LISTPACK_ENTRIES,
            zset_value: ZSET_MAX_LISTPACK_VALUE,
        }
    }
}

static THRESHOLDS: [AtomicUsize; 5] = [
    AtomicUsize::new(HASH_MAX_LISTPACK_ENTRIES),
    AtomicUsize::new(HASH_MAX_LISTPACK_VALUE),
    AtomicUsize::new(SET_MAX_INTSET_ENTRIES),
    AtomicUsize::new(ZSET_MAX_LISTPACK_ENTRIES),
    AtomicUsize::new(ZSET_MAX_LISTPACK_VALUE),
];

/// The thresholds in force.
pub fn thresholds() -> Thresholds {
    let t = |i: usize| THRESHOLDS[i].load(Ordering::Relaxed);
    Thresholds {
        hash_entries: t(0),
        hash_value: t(1),
        set_intset_entries: t(2),
        zset_entries: t(3),
        zset_value: t(4),
    }
}

/// Makes `t` the thresholds in force (CONFIG SET, and the server's start).
pub fn set_thresholds(t: Thresholds) {
    let all = [
        t.hash_entries,
        t.hash_value,
        t.set_intset_entries,
        t.zset_entries,
        t.zset_value,
    ];
    for (slot, v) in THRESHOLDS.iter().zip(all) {
        slot.store(v, Ordering::Relaxed);
    }
}

/// What a key holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A binary-safe string.
    Str(Vec<u8>),
    /// Field -> value.
    Hash(HashMap<Vec<u8>, Vec<u8>>),
    /// A sequence, O(1) at both ends.
    List(VecDeque<Vec<u8>>),
    /// Distinct members.
    Set(HashSet<Vec<u8>>),
    /// Members ordered by score ([`ZSet`]).
    ZSet(ZSet),
}

/// `zset-max-listpack-entries`: a sorted set with more members is a
/// `skiplist`.
pub const ZSET_MAX_LISTPACK_ENTRIES: usize = DEFAULT_LISTPACK_ENTRIES;
/// `zset-max-listpack-value`: a sorted set with a longer member is a
/// `skiplist`.
pub const ZSET_MAX_LISTPACK_VALUE: usize = DEFAULT_LISTPACK_VALUE;

impl Default for Value {
    fn default() -> Value {
        Value::Str(Vec::new())
    }
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&[u8]> {
        match self {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }

    /// Whether a key becoming this wakes clients blocked on it (BLPOP,
    /// BZPOPMIN...): the types blocking commands pop from.
    pub fn wakes_waiters(&self) -> bool {
        matches!(self, Value::List(_) | Value::ZSet(_))
    }

    /// TYPE's answer.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Whether this is an aggregate with no element left (to be deleted).
    pub fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }

    /// The sum of the lengths of its bytes (strings, elements, fields and
    /// values). O(n) for aggregates: writes keep the store's sum by deltas.
    pub fn data_len(&self) -> usize {
        match self {
            Value::Str(v) => v.len(),
            Value::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len()).sum(),
            Value::List(l) => l.iter().map(Vec::len).sum(),
            Value::Set(s) => s.iter().map(Vec::len).sum(),
            Value::ZSet(z) => z.data_bytes(),
        }
    }

    /// Number of elements (1 for a string).
    pub fn items(&self) -> usize {
        match self {
            Value::Str(_) => 1,
            Value::Hash(h) => h.len(),
            Value::List(l) => l.len(),
            Value::Set(s) => s.len(),
            Value::ZSet(z) => z.len(),
        }
    }

    /// OBJECT ENCODING, as Redis 7.0 names it for this content.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(v) => {
                if v.len() <= 20 && parse_i64(v).is_some() {
                    "int"
                } else if v.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::Hash(h) => {
                let t = thresholds();
                let small = h.len() <= t.hash_entries
                    && h.iter()
                        .all(|(f, v)| f.len() <= t.hash_value && v.len() <= t.hash_value);
                if small {
                    "listpack"
                } else {
                    "hashtable"
                }
            }
            Value::List(_) => LIST_ENCODING,
            Value::Set(s) => {
                let max = thresholds().set_intset_entries;
                if s.len() <= max && s.iter().all(|m| is_intset_member(m)) {
                    "intset"
                } else {
                    "hashtable"
                }
            }
            Value::ZSet(z) => z.encoding().name(),
        }
    }

    /// What holding this value costs beyond its bytes ([`data_len`](Self::data_len)):
    /// the containers' per-element overhead, as this representation lays
    /// it out (MEMORY USAGE adds the bytes and the entry's own cost).
    pub fn overhead(&self) -> usize {
        use std::mem::size_of;
        let vec = size_of::<Vec<u8>>();
        // A hashbrown bucket holds the element and one control byte; the
        // table runs at up to 7/8 load, so count 8/7 buckets per element.
        let table = |elem: usize, n: usize| (elem + 1) * n * 8 / 7;
        match self {
            Value::Str(_) => 0,
            Value::Hash(h) => table(2 * vec, h.capacity()),
            Value::List(l) => vec * l.capacity(),
            Value::Set(s) => table(vec, s.capacity()),
            // The map's member pointer and score, and a tree node (score,
            // member pointer, priority, two links, size).
            Value::ZSet(z) => table(16 + 8, z.len()) + 48 * z.len(),
        }
    }
}

/// Whether a set member would be held in an intset: a canonical decimal
/// integer that fits an i64 (Redis's `string2ll`).
fn is_intset_member(m: &[u8]) -> bool {
    m.len() <= 20 && parse_i64(m).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn encodings_follow_redis_thresholds() {
        let mut h = HashMap::new();
        h.insert(b("f"), b("v"));
        assert_eq!(Value::Hash(h.clone()).encoding(), "listpack");
        h.insert(b("long"), vec![b'x'; 65]);
        assert_eq!(Value::Hash(h.clone()).encoding(), "hashtable");
        let many: HashMap<_, _> = (0..129).map(|i| (b(&i.to_string()), b("v"))).collect();
        assert_eq!(Value::Hash(many).encoding(), "hashtable");
        let ints: HashSet<_> = (0..512).map(|i| b(&i.to_string())).collect();
        assert_eq!(Value::Set(ints.clone()).encoding(), "intset");
        let mut more = ints;
        more.insert(b("512"));
        assert_eq!(Value::Set(more).encoding(), "hashtable");
        let mixed: HashSet<_> = [b("1"), b("a")].into_iter().collect();
        assert_eq!(Value::Set(mixed).encoding(), "hashtable");
        let not_canonical: HashSet<_> = [b("01")].into_iter().collect();
        assert_eq!(Value::Set(not_canonical).encoding(), "hashtable");
        assert_eq!(Value::List(VecDeque::new()).encoding(), "quicklist");
        assert_eq!(Value::Str(b("12")).encoding(), "int");
    }

    #[test]
    fn data_len_counts_every_element() {
        let h: HashMap<_, _> = [(b("ab"), b("cde"))].into_iter().collect();
        assert_eq!(Value::Hash(h).data_len(), 5);
        let l: VecDeque<_> = [b("a"), b("bc")].into_iter().collect();
        assert_eq!(Value::List(l).data_len(), 3);
        assert!(Value::Set(HashSet::new()).is_empty_aggregate());
        assert!(!Value::Str(Vec::new()).is_empty_aggregate());
    }
}
