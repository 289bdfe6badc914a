//! [`LogRecord`]: one mutation of the store, as the log holds it, with its
//! compact binary encoding and the way it is applied.
//!
//! Invariants:
//! - **Deterministic**: applying a record reads no clock and depends only on
//!   the store it is applied to. Times are absolute Unix milliseconds (a
//!   `SET EX 10` is logged with the instant it expires), so a log replayed a
//!   year later rebuilds the very same entries, expiry times included.
//! - **One command, one record**: a command's whole effect is one record
//!   (MSET is one [`LogRecord::MSet`], a DEL of several keys one
//!   [`LogRecord::Del`]), so a log cut at a record boundary never holds half
//!   a command.
//! - Replaying, on the store a command ran against, the record it produced
//!   gives the same physical state (same keys, values and expiry times,
//!   expired-but-present keys included): see the property test in
//!   `command`.
//!
//! Encoding (the payload of a log frame, see `aof`): a tag byte, then the
//! fields; byte strings are a LEB128 length then the bytes, counts are
//! LEB128, times are u64 little-endian. Decoding is strict: a truncated
//! field, an overlong varint, a length past the end, an unknown tag or a
//! trailing byte make the payload undecodable, and nothing is allocated
//! beyond the payload's own size.

mod list;
mod members;
mod value;

pub use list::ListRecord;

use crate::store::{Store, Value};
use std::sync::Arc;

const SET: u8 = 1;
const SET_EXPIRE: u8 = 2;
const MSET: u8 = 3;
const DEL: u8 = 4;
const APPEND: u8 = 5;
const PEXPIREAT: u8 = 6;
const PERSIST: u8 = 7;
const FLUSHALL: u8 = 8;
const MULTI: u8 = 9;
const DB: u8 = 10;
const SWAPDB: u8 = 11;
const SET_RANGE: u8 = 12;
/// Hash fields set (HSET, HSETNX, HINCRBY's result).
const HSET: u8 = 21;
/// Hash fields removed (HDEL).
const HDEL: u8 = 22;

/// Whether `b` is the tag byte of some record: the cheap first filter of a
/// log scan looking for where the next record starts (see `aof::scan`).
pub fn is_tag(b: u8) -> bool {
    (SET..=SET_RANGE).contains(&b)
        || matches!(b, value::VALUE | HSET | HDEL)
        || (list::PUSH..=list::EDIT).contains(&b)
        || members::is_tag(b)
}

/// Whether a payload of `len` bytes whose byte at offset `i` is `byte(i)`
/// has the layout of a record: its fields, walked by their lengths, end
/// exactly at `len`. A necessary condition for [`LogRecord::decode`]
/// (looser: varints are not checked for overlong forms, and a `MSET` or
/// `DEL` is walked over its first 1024 items only), that reads a few bytes
/// where decoding reads them all: what a log scan checks before the CRC of
/// a long candidate frame. `byte` returns `None` past the end of what it can
/// read.
pub fn has_record_layout(len: u64, byte: impl FnMut(u64) -> Option<u8>) -> bool {
    /// Most `MSET`/`DEL` items walked.
    const WALK: u64 = 1024;
    let mut w = Walk { byte, at: 0, len };
    let Some(tag) = w.next() else {
        return false;
    };
    let end = match tag {
        SET | APPEND => w.string().and_then(|()| w.string()),
        SET_EXPIRE => w
            .string()
            .and_then(|()| w.string())
            .and_then(|()| w.skip(8)),
        PEXPIREAT => w.string().and_then(|()| w.skip(8)),
        PERSIST => w.string(),
        value::VALUE => return value::layout(&mut w, WALK),
        list::PUSH..=list::EDIT => return list::layout(tag, &mut w, WALK),
        t if members::is_tag(t) => return members::layout(t, &mut w, WALK),
        FLUSHALL => Some(()),
        SWAPDB => w.varint().and_then(|_| w.varint()).map(|_| ()),
        SET_RANGE => w
            .string()
            .and_then(|()| w.varint())
            .and_then(|_| w.string()),
        // The database index, then a plain record: its tag is checked, the
        // rest is left to the CRC and the strict decode (looser, as allowed).
        DB => match w.varint().and_then(|_| w.next()) {
            Some(inner) if is_tag(inner) && !matches!(inner, MULTI | DB | SWAPDB) => {
                return true;
            }
            _ => None,
        },
        MSET | DEL | MULTI | HSET | HDEL => {
            if matches!(tag, HSET | HDEL) && w.string().is_none() {
                return false;
            }
            let per_item = if matches!(tag, MSET | HSET) { 2 } else { 1 };
            let Some(n) = w.varint() else {
                return false;
            };
            for _ in 0..n.min(WALK) * per_item {
                if w.string().is_none() {
                    return false;
                }
            }
            // Past the walked items, every remaining string takes a byte.
            return match n.checked_sub(WALK) {
                Some(rest) => rest
                    .checked_mul(per_item)
                    .is_some_and(|r| w.len - w.at >= r),
                None => w.at == w.len,
            };
        }
        _ => None,
    };
    end.is_some() && w.at == w.len
}

/// A cursor for [`has_record_layout`]: reads bytes through a callback,
/// never past `len`.
pub(crate) struct Walk<F> {
    byte: F,
    at: u64,
    len: u64,
}

impl<F: FnMut(u64) -> Option<u8>> Walk<F> {
    fn next(&mut self) -> Option<u8> {
        if self.at >= self.len {
            return None;
        }
        let b = (self.byte)(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// A LEB128 varint (overlong forms allowed: looser than decoding).
    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.next()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        self.at = self.at.checked_add(n).filter(|&end| end <= self.len)?;
        Some(())
    }

    /// A byte string: its length, then its bytes.
    fn string(&mut self) -> Option<()> {
        let n = self.varint()?;
        self.skip(n)
    }
}

/// One mutation of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogRecord {
    /// Replace `key` with `value` and this expiry (SET, GETSET, SETEX,
    /// INCR's result, APPEND to a key that had expired...).
    Set {
        /// The key.
        key: Vec<u8>,
        /// Its new value.
        value: Vec<u8>,
        /// Absolute expiry time (Unix ms), `None` for none.
        expire_at_ms: Option<u64>,
    },
    /// Replace each key with its value, without expiry (MSET, MSETNX).
    MSet {
        /// (key, value) pairs, applied in order.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Remove these keys (DEL, GETDEL, an EXPIRE in the past, and every
    /// expired key removed by lazy or active expiry).
    Del {
        /// The keys removed.
        keys: Vec<Vec<u8>>,
    },
    /// Append to the value of a live key, keeping its expiry (or create it).
    Append {
        /// The key.
        key: Vec<u8>,
        /// What is appended.
        suffix: Vec<u8>,
    },
    /// Set the expiry of an existing key (EXPIRE and friends, absolute).
    PExpireAt {
        /// The key.
        key: Vec<u8>,
        /// Absolute expiry time (Unix ms).
        at_ms: u64,
    },
    /// Remove the expiry of an existing key.
    Persist {
        /// The key.
        key: Vec<u8>,
    },
    /// Remove every key (FLUSHDB, FLUSHALL).
    FlushAll,
    /// A transaction (EXEC): its records, applied in order, as one frame,
    /// so that a log cut anywhere holds all of it or none. Never nested.
    Multi(Vec<LogRecord>),
    /// `record` applies to database `db` (a record without this wrapper
    /// applies to database 0, which keeps logs of before SELECT valid).
    /// The inner record is a plain one: no wrapper, transaction or SWAPDB.
    Db {
        /// The database index.
        db: u32,
        /// What happens there.
        record: Box<LogRecord>,
    },
    /// SWAPDB a b.
    SwapDb(u32, u32),
    /// Write `bytes` at `offset` of the value of `key`, zero-padding it up
    /// to there, keeping its expiry (or create it, without expiry): SETRANGE
    /// and SETBIT, logged by what changed rather than the whole value.
    SetRange {
        /// The key.
        key: Vec<u8>,
        /// Where the bytes go.
        offset: u64,
        /// What is written.
        bytes: Vec<u8>,
    },
    /// Set these fields of the hash at `key` (created if absent).
    HSet {
        /// The key.
        key: Vec<u8>,
        /// (field, value) pairs, applied in order.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Remove these fields of the hash at `key` (deleted if emptied).
    HDel {
        /// The key.
        key: Vec<u8>,
        /// The fields.
        fields: Vec<Vec<u8>>,
    },
    /// A change to one list (tags 23 to 27, see `record::list`).
    List(ListRecord),
    /// Add these members to the set at `key` (created if absent).
    SAdd {
        /// The key.
        key: Vec<u8>,
        /// The members (at least one).
        members: Vec<Vec<u8>>,
    },
    /// Remove these members of the set at `key` (deleted if emptied).
    SRem {
        /// The key.
        key: Vec<u8>,
        /// The members (at least one).
        members: Vec<Vec<u8>>,
    },
    /// Give these members of the sorted set at `key` these scores (added
    /// if absent; the set created if absent).
    ZAdd {
        /// The key.
        key: Vec<u8>,
        /// (member, score) pairs, applied in order (at least one).
        pairs: Vec<(Vec<u8>, Score)>,
    },
    /// Remove these members of the sorted set at `key` (deleted if
    /// emptied).
    ZRem {
        /// The key.
        key: Vec<u8>,
        /// The members (at least one).
        members: Vec<Vec<u8>>,
    },
    /// Replace `key` with this hash, list or set and this expiry (a log
    /// rewrite's form of a non-string key; COPY, MOVE, RENAME of one).
    Value {
        /// The key.
        key: Vec<u8>,
        /// Its new value (shared: a snapshot's or the store's).
        value: Arc<Value>,
        /// Absolute expiry time (Unix ms), `None` for none.
        expire_at_ms: Option<u64>,
    },
}

/// A sorted-set score in a record: a double that is never NaN, so records
/// compare (`Eq`) by the score's bits, which is what replay restores.
#[derive(Clone, Copy, Debug)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, other: &Score) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Score {}

impl LogRecord {
    /// The record that sets `key` to `value`: a `Set` for a string, a
    /// `Value` for another type.
    pub fn put(key: Vec<u8>, value: Arc<Value>, expire_at_ms: Option<u64>) -> LogRecord {
        match &*value {
            Value::Str(v) => LogRecord::Set {
                key,
                value: v.clone(),
                expire_at_ms,
            },
            _ => LogRecord::Value {
                key,
                value,
                expire_at_ms,
            },
        }
    }
}

/// Encodes the record of `key` holding `value` (a `Set` or a `Value`) from
/// borrowed parts: what a snapshot writer uses.
/// In database `db` (wrapped in a `Db` record unless it is 0).
pub fn encode_value(
    out: &mut Vec<u8>,
    db: u32,
    key: &[u8],
    value: &Value,
    expire_at_ms: Option<u64>,
) {
    if db != 0 {
        out.push(DB);
        put_varint(out, u64::from(db));
    }
    match value {
        Value::Str(v) => encode_set(out, key, v, expire_at_ms),
        _ => value::encode(out, key, value, expire_at_ms),
    }
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Encodes a `Set` record from borrowed parts: what a snapshot writer uses,
/// so that serialising a store copies each byte once, into `out`.
pub fn encode_set(out: &mut Vec<u8>, key: &[u8], value: &[u8], expire_at_ms: Option<u64>) {
    out.push(if expire_at_ms.is_some() {
        SET_EXPIRE
    } else {
        SET
    });
    put_bytes(out, key);
    put_bytes(out, value);
    if let Some(t) = expire_at_ms {
        out.extend_from_slice(&t.to_le_bytes());
    }
}

/// A cursor over a payload; every read fails cleanly past the end.
pub(crate) struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            // The 10th byte may only carry the top bit of a u64.
            if shift == 63 && part > 1 {
                return None;
            }
            n |= part << shift;
            if b & 0x80 == 0 {
                // Overlong forms (a final zero byte after the first) would
                // give one record two encodings: refuse them.
                if b == 0 && shift > 0 {
                    return None;
                }
                return Some(n);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(b.to_vec())
    }

    fn u64(&mut self) -> Option<u64> {
        if self.0.len() < 8 {
            return None;
        }
        let (b, rest) = self.0.split_at(8);
        self.0 = rest;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// A count of items that each take at least `min_size` bytes: refused
    /// if they cannot fit in what is left, so it is safe to preallocate.
    fn count(&mut self, min_size: usize) -> Option<usize> {
        let n = usize::try_from(self.varint()?).ok()?;
        (n.checked_mul(min_size)? <= self.0.len()).then_some(n)
    }
}

impl LogRecord {
    /// Appends the payload encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            LogRecord::SAdd { .. }
            | LogRecord::SRem { .. }
            | LogRecord::ZAdd { .. }
            | LogRecord::ZRem { .. } => members::encode(self, out),
            LogRecord::Set {
                key,
                value,
                expire_at_ms,
            } => encode_set(out, key, value, *expire_at_ms),
            LogRecord::MSet { pairs } => {
                out.push(MSET);
                put_varint(out, pairs.len() as u64);
                for (k, v) in pairs {
                    put_bytes(out, k);
                    put_bytes(out, v);
                }
            }
            LogRecord::Del { keys } => {
                out.push(DEL);
                put_varint(out, keys.len() as u64);
                for k in keys {
                    put_bytes(out, k);
                }
            }
            LogRecord::Append { key, suffix } => {
                out.push(APPEND);
                put_bytes(out, key);
                put_bytes(out, suffix);
            }
            LogRecord::PExpireAt { key, at_ms } => {
                out.push(PEXPIREAT);
                put_bytes(out, key);
                out.extend_from_slice(&at_ms.to_le_bytes());
            }
            LogRecord::Persist { key } => {
                out.push(PERSIST);
                put_bytes(out, key);
            }
            LogRecord::FlushAll => out.push(FLUSHALL),
            LogRecord::Db { db, record } => {
                out.push(DB);
                put_varint(out, u64::from(*db));
                record.encode(out);
            }
            LogRecord::SetRange { key, offset, bytes } => {
                out.push(SET_RANGE);
                put_bytes(out, key);
                put_varint(out, *offset);
                put_bytes(out, bytes);
            }
            LogRecord::Value {
                key,
                value,
                expire_at_ms,
            } => value::encode(out, key, value, *expire_at_ms),
            LogRecord::HSet { key, pairs } => {
                out.push(HSET);
                put_bytes(out, key);
                put_varint(out, pairs.len() as u64);
                for (f, v) in pairs {
                    put_bytes(out, f);
                    put_bytes(out, v);
                }
            }
            LogRecord::HDel { key, fields } => {
                out.push(HDEL);
                put_bytes(out, key);
                put_varint(out, fields.len() as u64);
                for f in fields {
                    put_bytes(out, f);
                }
            }
            LogRecord::List(l) => l.encode(out),
            LogRecord::SwapDb(a, b) => {
                out.push(SWAPDB);
                put_varint(out, u64::from(*a));
                put_varint(out, u64::from(*b));
            }
            LogRecord::Multi(records) => {
                out.push(MULTI);
                put_varint(out, records.len() as u64);
                let mut one = Vec::new();
                for r in records {
                    one.clear();
                    r.encode(&mut one);
                    put_bytes(out, &one);
                }
            }
        }
    }

    /// The payload encoding, in a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a whole payload; `None` if it is not exactly one record.
    pub fn decode(payload: &[u8]) -> Option<LogRecord> {
        let mut i = Input(payload);
        let r = match i.byte()? {
            SET => LogRecord::Set {
                key: i.bytes()?,
                value: i.bytes()?,
                expire_at_ms: None,
            },
            SET_EXPIRE => LogRecord::Set {
                key: i.bytes()?,
                value: i.bytes()?,
                expire_at_ms: Some(i.u64()?),
            },
            MSET => {
                let n = i.count(2)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((i.bytes()?, i.bytes()?));
                }
                LogRecord::MSet { pairs }
            }
            DEL => {
                let n = i.count(1)?;
                let mut keys = Vec::with_capacity(n);
                for _ in 0..n {
                    keys.push(i.bytes()?);
                }
                LogRecord::Del { keys }
            }
            APPEND => LogRecord::Append {
                key: i.bytes()?,
                suffix: i.bytes()?,
            },
            PEXPIREAT => LogRecord::PExpireAt {
                key: i.bytes()?,
                at_ms: i.u64()?,
            },
            PERSIST => LogRecord::Persist { key: i.bytes()? },
            FLUSHALL => LogRecord::FlushAll,
            MULTI => {
                let n = i.count(2)?;
                let mut records = Vec::with_capacity(n);
                for _ in 0..n {
                    let one = i.bytes()?;
                    // Not nested: bounds the decoder's recursion.
                    if one.first() == Some(&MULTI) {
                        return None;
                    }
                    records.push(LogRecord::decode(&one)?);
                }
                LogRecord::Multi(records)
            }
            DB => {
                let db = u32::try_from(i.varint()?).ok()?;
                if matches!(i.0.first(), Some(&(MULTI | DB | SWAPDB))) {
                    return None;
                }
                let record = LogRecord::decode(i.0)?;
                i.0 = &[];
                LogRecord::Db {
                    db,
                    record: Box::new(record),
                }
            }
            SET_RANGE => LogRecord::SetRange {
                key: i.bytes()?,
                offset: i.varint()?,
                bytes: i.bytes()?,
            },
            SWAPDB => LogRecord::SwapDb(
                u32::try_from(i.varint()?).ok()?,
                u32::try_from(i.varint()?).ok()?,
            ),
            HSET => {
                let key = i.bytes()?;
                let n = i.count(2)?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push((i.bytes()?, i.bytes()?));
                }
                LogRecord::HSet { key, pairs }
            }
            HDEL => {
                let key = i.bytes()?;
                let n = i.count(1)?;
                let mut fields = Vec::with_capacity(n);
                for _ in 0..n {
                    fields.push(i.bytes()?);
                }
                LogRecord::HDel { key, fields }
            }
            tag @ list::PUSH..=list::EDIT => LogRecord::List(ListRecord::decode(tag, &mut i)?),
            t if members::is_tag(t) => members::decode(t, &mut i)?,
            value::VALUE => {
                let (key, value, expire_at_ms) = value::decode(&mut i)?;
                LogRecord::Value {
                    key,
                    value: Arc::new(value),
                    expire_at_ms,
                }
            }
            _ => return None,
        };
        i.0.is_empty().then_some(r)
    }

    /// Applies the mutation to `store` (no clock involved). A record of
    /// several databases (`Db`, `SwapDb`) needs them all: see
    /// [`Databases::apply`](crate::databases::Databases::apply); here `Db`
    /// applies its inner record and `SwapDb` does nothing.
    pub fn apply(self, store: &mut Store) {
        match self {
            LogRecord::Set {
                key,
                value,
                expire_at_ms,
            } => store.set(&key, value, expire_at_ms),
            LogRecord::MSet { pairs } => {
                for (k, v) in pairs {
                    store.set(&k, v, None);
                }
            }
            LogRecord::Del { keys } => {
                for k in keys {
                    store.remove(&k);
                }
            }
            LogRecord::Append { key, suffix } => {
                store.append(&key, &suffix);
            }
            LogRecord::PExpireAt { key, at_ms } => {
                store.set_expire(&key, Some(at_ms));
            }
            LogRecord::Persist { key } => {
                store.set_expire(&key, None);
            }
            LogRecord::FlushAll => store.clear(),
            LogRecord::Multi(records) => {
                for r in records {
                    r.apply(store);
                }
            }
            LogRecord::Db { record, .. } => record.apply(store),
            LogRecord::SwapDb(..) => {}
            LogRecord::Value {
                key,
                value,
                expire_at_ms,
            } => store.put_arc(&key, value, expire_at_ms),
            // A key of another type is replaced, as a string write's
            // replay replaces what it finds (only a foreign store has one).
            LogRecord::HSet { key, pairs } => {
                if store
                    .raw(&key)
                    .is_some_and(|e| !matches!(e.value, Value::Hash(_)))
                {
                    store.remove(&key);
                }
                crate::command::hash_set_fields(store, &key, &pairs);
            }
            LogRecord::HDel { key, fields } => {
                crate::command::hash_del_fields(store, &key, &fields);
            }
            LogRecord::List(l) => l.apply(store),
            LogRecord::SAdd { key, members } => {
                if store
                    .raw(&key)
                    .is_some_and(|e| !matches!(e.value, Value::Set(_)))
                {
                    store.remove(&key);
                }
                crate::command::set_add_members(store, &key, &members);
            }
            LogRecord::SRem { key, members } => {
                crate::command::set_rem_members(store, &key, &members);
            }
            LogRecord::ZAdd { key, pairs } => {
                if store
                    .raw(&key)
                    .is_some_and(|e| !matches!(e.value, Value::ZSet(_)))
                {
                    store.remove(&key);
                }
                crate::command::zset_add_scores(store, &key, &pairs);
            }
            LogRecord::ZRem { key, members } => {
                crate::command::zset_rem_members(store, &key, &members);
            }
            LogRecord::SetRange { key, offset, bytes } => {
                // A record past what a usize addresses cannot come from
                // this server (values are at most MAX_STRING).
                if let Ok(offset) = usize::try_from(offset) {
                    store.set_range(&key, offset, &bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<LogRecord> {
        vec![
            LogRecord::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                expire_at_ms: None,
            },
            LogRecord::Set {
                key: vec![],
                value: vec![0; 300],
                expire_at_ms: Some(u64::MAX),
            },
            LogRecord::MSet {
                pairs: vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![])],
            },
            LogRecord::Del {
                keys: vec![b"a".to_vec(), b"b".to_vec()],
            },
            LogRecord::Del { keys: vec![] },
            LogRecord::Append {
                key: b"k".to_vec(),
                suffix: b"xyz".to_vec(),
            },
            LogRecord::PExpireAt {
                key: b"k".to_vec(),
                at_ms: 1_700_000_000_000,
            },
            LogRecord::Persist { key: b"k".to_vec() },
            LogRecord::SetRange {
                key: b"k".to_vec(),
                offset: 300,
                bytes: b"ab".to_vec(),
            },
            LogRecord::HSet {
                key: b"h".to_vec(),
                pairs: vec![(b"f".to_vec(), b"1".to_vec()), (b"g".to_vec(), vec![])],
            },
            LogRecord::HDel {
                key: b"h".to_vec(),
                fields: vec![b"f".to_vec()],
            },
            LogRecord::Value {
                key: b"h".to_vec(),
                value: Arc::new(Value::Hash(
                    [(b"f".to_vec(), b"v".to_vec())].into_iter().collect(),
                )),
                expire_at_ms: Some(7),
            },
            LogRecord::Value {
                key: b"l".to_vec(),
                value: Arc::new(Value::List(
                    [b"a".to_vec(), b"a".to_vec(), vec![]].into_iter().collect(),
                )),
                expire_at_ms: None,
            },
            LogRecord::Value {
                key: b"s".to_vec(),
                value: Arc::new(Value::Set([b"m".to_vec()].into_iter().collect())),
                expire_at_ms: None,
            },
            LogRecord::List(ListRecord::Push {
                key: b"l".to_vec(),
                left: true,
                elements: vec![b"a".to_vec(), vec![]],
            }),
            LogRecord::List(ListRecord::Pop {
                key: b"l".to_vec(),
                left: false,
                count: 300,
            }),
            LogRecord::List(ListRecord::Set {
                key: b"l".to_vec(),
                index: 7,
                element: b"x".to_vec(),
            }),
            LogRecord::List(ListRecord::Trim {
                key: b"l".to_vec(),
                start: 2,
                len: 0,
            }),
            LogRecord::List(ListRecord::Rem {
                key: b"l".to_vec(),
                count: i64::MIN,
                element: b"x".to_vec(),
            }),
            LogRecord::List(ListRecord::Rem {
                key: b"l".to_vec(),
                count: -3,
                element: vec![],
            }),
            LogRecord::List(ListRecord::Insert {
                key: b"l".to_vec(),
                index: 0,
                element: b"p".to_vec(),
            }),
            LogRecord::Multi(vec![
                LogRecord::List(ListRecord::Pop {
                    key: b"a".to_vec(),
                    left: true,
                    count: 1,
                }),
                LogRecord::List(ListRecord::Push {
                    key: b"b".to_vec(),
                    left: false,
                    elements: vec![b"e".to_vec()],
                }),
            ]),
            LogRecord::Value {
                key: b"z".to_vec(),
                value: Arc::new(Value::ZSet({
                    let mut z = crate::store::zset::ZSet::new();
                    z.insert(b"a", -0.5);
                    z.insert(b"", f64::INFINITY);
                    z
                })),
                expire_at_ms: Some(9),
            },
            LogRecord::SAdd {
                key: b"s".to_vec(),
                members: vec![b"m".to_vec(), vec![]],
            },
            LogRecord::SRem {
                key: b"s".to_vec(),
                members: vec![b"m".to_vec()],
            },
            LogRecord::ZAdd {
                key: b"z".to_vec(),
                pairs: vec![
                    (b"a".to_vec(), Score(1.5)),
                    (b"b".to_vec(), Score(f64::NEG_INFINITY)),
                ],
            },
            LogRecord::ZRem {
                key: b"z".to_vec(),
                members: vec![b"a".to_vec()],
            },
            LogRecord::FlushAll,
            LogRecord::Multi(vec![
                LogRecord::Del {
                    keys: vec![b"a".to_vec()],
                },
                LogRecord::FlushAll,
            ]),
            LogRecord::Multi(vec![]),
            LogRecord::Db {
                db: 15,
                record: Box::new(LogRecord::Persist { key: b"k".to_vec() }),
            },
            LogRecord::Multi(vec![
                LogRecord::Db {
                    db: 1,
                    record: Box::new(LogRecord::FlushAll),
                },
                LogRecord::SwapDb(0, 3),
            ]),
            LogRecord::SwapDb(u32::MAX, 0),
        ]
    }

    #[test]
    fn every_record_round_trips() {
        for r in samples() {
            assert_eq!(LogRecord::decode(&r.to_bytes()), Some(r.clone()), "{r:?}");
        }
    }

    #[test]
    fn every_record_has_the_layout_a_scan_checks() {
        for r in samples() {
            let b = r.to_bytes();
            let at = |i: u64| b.get(i as usize).copied();
            assert!(has_record_layout(b.len() as u64, at), "{r:?}");
            let cut = |i: u64| b.get(i as usize).copied();
            // A `Db` is checked up to its inner tag only (looser, as allowed).
            let loose = matches!(r, LogRecord::Db { .. });
            assert!(
                loose || !has_record_layout(b.len() as u64 - 1, cut),
                "{r:?} cut by one"
            );
        }
    }

    #[test]
    fn set_encoding_is_compact() {
        let r = LogRecord::Set {
            key: b"key".to_vec(),
            value: b"value".to_vec(),
            expire_at_ms: None,
        };
        assert_eq!(r.to_bytes(), b"\x01\x03key\x05value".to_vec());
    }

    #[test]
    fn truncations_and_trailing_bytes_are_refused() {
        for r in samples() {
            let b = r.to_bytes();
            for n in 0..b.len() {
                assert_eq!(LogRecord::decode(&b[..n]), None, "{r:?} cut at {n}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(LogRecord::decode(&longer), None, "{r:?} + trailing byte");
        }
    }

    #[test]
    fn malformed_varints_and_counts_are_refused_without_allocating() {
        assert_eq!(
            LogRecord::decode(&[PERSIST, 0x81, 0x00, b'k']),
            None,
            "overlong"
        );
        let mut huge = vec![DEL];
        huge.extend_from_slice(&[0xff; 9]);
        huge.push(0x01);
        assert_eq!(LogRecord::decode(&huge), None, "count past the payload");
        assert_eq!(
            LogRecord::decode(&[DEL, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            None
        );
        let mut eleven = vec![PERSIST];
        eleven.extend_from_slice(&[0x80; 10]);
        eleven.push(0);
        assert_eq!(LogRecord::decode(&eleven), None, "varint over 64 bits");
        assert_eq!(LogRecord::decode(&[99]), None, "unknown tag");
        assert_eq!(LogRecord::decode(&[]), None);
        let nested = LogRecord::Multi(vec![LogRecord::Multi(vec![])]).to_bytes();
        assert_eq!(LogRecord::decode(&nested), None, "nested transaction");
        let db_in_db = LogRecord::Db {
            db: 1,
            record: Box::new(LogRecord::SwapDb(1, 2)),
        };
        assert_eq!(
            LogRecord::decode(&db_in_db.to_bytes()),
            None,
            "SWAPDB in a database"
        );
    }

    #[test]
    fn apply_is_clock_free_and_exact() {
        let mut st = Store::new();
        for r in samples() {
            r.apply(&mut st);
        }
        // Last FlushAll wins.
        assert!(st.is_empty());
        let mut st = Store::new();
        LogRecord::Append {
            key: b"k".to_vec(),
            suffix: b"ab".to_vec(),
        }
        .apply(&mut st);
        LogRecord::PExpireAt {
            key: b"k".to_vec(),
            at_ms: 5,
        }
        .apply(&mut st);
        LogRecord::Append {
            key: b"k".to_vec(),
            suffix: b"c".to_vec(),
        }
        .apply(&mut st);
        let e = st.raw(b"k").unwrap();
        assert_eq!(
            (e.value.as_str(), e.expire_at),
            (Some(&b"abc"[..]), Some(5))
        );
        LogRecord::Persist { key: b"k".to_vec() }.apply(&mut st);
        assert_eq!(st.raw(b"k").unwrap().expire_at, None);
        LogRecord::PExpireAt {
            key: b"missing".to_vec(),
            at_ms: 5,
        }
        .apply(&mut st);
        assert_eq!(st.len(), 1, "PEXPIREAT of a missing key creates nothing");
    }
}
