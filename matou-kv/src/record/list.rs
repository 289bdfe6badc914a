//! The per-operation list records (tags 23 to 27): a push, a pop, an LSET,
//! an LTRIM, an LREM or LINSERT, each logged by what it did rather than the
//! whole list, so that an LPUSH onto a million-element list logs one
//! element.
//!
//! Encoding (after the tag, the key):
//! - 23 push: a side byte (`0` left, `1` right), the count, the elements
//!   (in the order they were pushed).
//! - 24 pop: the side byte, the count popped (at least 1).
//! - 25 set: the index (varint, from the head, non-negative), the element.
//! - 26 trim: the first index kept and how many are kept (varints).
//! - 27 edit: a kind byte, then `0`: LREM, the count (zig-zag varint) and
//!   the element; `1`: LINSERT, the index the element goes at (varint)
//!   and the element.
//!
//! Every index is absolute (resolved against the list when the command
//! ran), so that replay reads nothing but the list the command saw.

use super::{put_bytes, put_varint, Input, Walk};
use crate::command::list as ops;
use crate::store::{Store, Value};

pub(super) const PUSH: u8 = 23;
pub(super) const POP: u8 = 24;
pub(super) const SET: u8 = 25;
pub(super) const TRIM: u8 = 26;
pub(super) const EDIT: u8 = 27;

/// One change to the list at `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListRecord {
    /// Push `elements`, in order, at the head (`left`) or the tail (the
    /// list is created if absent).
    Push {
        /// The key.
        key: Vec<u8>,
        /// At the head.
        left: bool,
        /// What is pushed.
        elements: Vec<Vec<u8>>,
    },
    /// Pop `count` elements from the head (`left`) or the tail (the list
    /// is deleted if emptied).
    Pop {
        /// The key.
        key: Vec<u8>,
        /// From the head.
        left: bool,
        /// How many.
        count: u64,
    },
    /// Replace the element at `index` (LSET).
    Set {
        /// The key.
        key: Vec<u8>,
        /// From the head, 0-based.
        index: u64,
        /// The new element.
        element: Vec<u8>,
    },
    /// Keep `len` elements from `start` on, drop the others (LTRIM).
    Trim {
        /// The key.
        key: Vec<u8>,
        /// The first index kept.
        start: u64,
        /// How many are kept (0: the list is deleted).
        len: u64,
    },
    /// Remove `count` occurrences of `element` as LREM does (negative:
    /// from the tail, 0: all).
    Rem {
        /// The key.
        key: Vec<u8>,
        /// LREM's count.
        count: i64,
        /// The element removed.
        element: Vec<u8>,
    },
    /// Insert `element` so that it is at `index` (LINSERT).
    Insert {
        /// The key.
        key: Vec<u8>,
        /// Its index once inserted.
        index: u64,
        /// The element.
        element: Vec<u8>,
    },
}

impl ListRecord {
    /// The key it changes.
    pub fn key(&self) -> &[u8] {
        match self {
            ListRecord::Push { key, .. }
            | ListRecord::Pop { key, .. }
            | ListRecord::Set { key, .. }
            | ListRecord::Trim { key, .. }
            | ListRecord::Rem { key, .. }
            | ListRecord::Insert { key, .. } => key,
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ListRecord::Push {
                key,
                left,
                elements,
            } => {
                out.push(PUSH);
                put_bytes(out, key);
                out.push(u8::from(!*left));
                put_varint(out, elements.len() as u64);
                for e in elements {
                    put_bytes(out, e);
                }
            }
            ListRecord::Pop { key, left, count } => {
                out.push(POP);
                put_bytes(out, key);
                out.push(u8::from(!*left));
                put_varint(out, *count);
            }
            ListRecord::Set {
                key,
                index,
                element,
            } => {
                out.push(SET);
                put_bytes(out, key);
                put_varint(out, *index);
                put_bytes(out, element);
            }
            ListRecord::Trim { key, start, len } => {
                out.push(TRIM);
                put_bytes(out, key);
                put_varint(out, *start);
                put_varint(out, *len);
            }
            ListRecord::Rem {
                key,
                count,
                element,
            } => {
                out.push(EDIT);
                put_bytes(out, key);
                out.push(0);
                put_varint(out, ((*count << 1) ^ (*count >> 63)) as u64);
                put_bytes(out, element);
            }
            ListRecord::Insert {
                key,
                index,
                element,
            } => {
                out.push(EDIT);
                put_bytes(out, key);
                out.push(1);
                put_varint(out, *index);
                put_bytes(out, element);
            }
        }
    }

    /// Decodes the fields after the tag (`tag` is one of this module's).
    pub(super) fn decode(tag: u8, i: &mut Input<'_>) -> Option<ListRecord> {
        let key = i.bytes()?;
        let side = |i: &mut Input<'_>| match i.byte()? {
            0 => Some(true),
            1 => Some(false),
            _ => None,
        };
        Some(match tag {
            PUSH => {
                let left = side(i)?;
                let n = i.count(1)?;
                if n == 0 {
                    return None;
                }
                let mut elements = Vec::with_capacity(n);
                for _ in 0..n {
                    elements.push(i.bytes()?);
                }
                ListRecord::Push {
                    key,
                    left,
                    elements,
                }
            }
            POP => {
                let left = side(i)?;
                let count = i.varint()?;
                if count == 0 {
                    return None;
                }
                ListRecord::Pop { key, left, count }
            }
            SET => ListRecord::Set {
                key,
                index: i.varint()?,
                element: i.bytes()?,
            },
            TRIM => ListRecord::Trim {
                key,
                start: i.varint()?,
                len: i.varint()?,
            },
            EDIT => match i.byte()? {
                0 => {
                    let z = i.varint()?;
                    ListRecord::Rem {
                        key,
                        count: ((z >> 1) as i64) ^ -((z & 1) as i64),
                        element: i.bytes()?,
                    }
                }
                1 => ListRecord::Insert {
                    key,
                    index: i.varint()?,
                    element: i.bytes()?,
                },
                _ => return None,
            },
            _ => return None,
        })
    }

    /// Applies it. A key of another type (only a foreign store has one)
    /// is replaced by a push and left alone by the others.
    pub(super) fn apply(self, store: &mut Store) {
        let is_list = |store: &Store, key: &[u8]| {
            store
                .raw(key)
                .is_some_and(|e| matches!(e.value, Value::List(_)))
        };
        if !matches!(self, ListRecord::Push { .. }) && !is_list(store, self.key()) {
            return;
        }
        match self {
            ListRecord::Push {
                key,
                left,
                elements,
            } => {
                if store.raw(&key).is_some() && !is_list(store, &key) {
                    store.remove(&key);
                }
                ops::push(store, &key, left, &elements);
            }
            ListRecord::Pop { key, left, count } => {
                ops::pop(
                    store,
                    &key,
                    left,
                    usize::try_from(count).unwrap_or(usize::MAX),
                );
            }
            ListRecord::Set {
                key,
                index,
                element,
            } => {
                if let Ok(index) = usize::try_from(index) {
                    ops::set(store, &key, index, element);
                }
            }
            ListRecord::Trim { key, start, len } => {
                let (start, len) = (
                    usize::try_from(start).unwrap_or(usize::MAX),
                    usize::try_from(len).unwrap_or(usize::MAX),
                );
                ops::trim(store, &key, start, len);
            }
            ListRecord::Rem {
                key,
                count,
                element,
            } => {
                ops::rem(store, &key, count, &element);
            }
            ListRecord::Insert {
                key,
                index,
                element,
            } => {
                if let Ok(index) = usize::try_from(index) {
                    ops::insert(store, &key, index, element);
                }
            }
        }
    }
}

/// [`super::has_record_layout`] for a list record: `w` is past the tag.
pub(super) fn layout<F: FnMut(u64) -> Option<u8>>(tag: u8, w: &mut Walk<F>, walk: u64) -> bool {
    if w.string().is_none() {
        return false;
    }
    let end = match tag {
        PUSH => {
            let (Some(_side), Some(n)) = (w.next(), w.varint()) else {
                return false;
            };
            for _ in 0..n.min(walk) {
                if w.string().is_none() {
                    return false;
                }
            }
            // Past the walked items, every remaining string takes a byte.
            return match n.checked_sub(walk) {
                Some(rest) => w.len - w.at >= rest,
                None => w.at == w.len,
            };
        }
        POP => w.next().and_then(|_| w.varint()).map(|_| ()),
        SET => w.varint().and_then(|_| w.string()),
        TRIM => w.varint().and_then(|_| w.varint()).map(|_| ()),
        EDIT => w.next().and_then(|_| w.varint()).and_then(|_| w.string()),
        _ => None,
    };
    end.is_some() && w.at == w.len
}
