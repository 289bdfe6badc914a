//! The whole-value record ([`LogRecord::Value`](super::LogRecord::Value),
//! tag 20): a key set to a hash, list or set with its expiry. What a log
//! rewrite writes for a non-string key, and what COPY, MOVE and RENAME of
//! one log.
//!
//! Encoding: tag, key, a type byte (`h`, `l`, `s`, `z`), the element
//! count, the elements (a hash's as field, value pairs; a list's in order;
//! a sorted set's as member, score pairs in score order, the score as the
//! f64's bits, u64 little-endian), then
//! `0` or `1` and the expiry (u64 little-endian). A string never takes this
//! form (it is a `Set`), nor an empty aggregate (it would not be stored):
//! both are refused by decoding, so each state has one encoding.

use super::{put_bytes, put_varint, Input, Walk};
use crate::store::thresholds;
use crate::store::zset::ZSet;
use crate::store::Value;

/// The record's tag.
pub(super) const VALUE: u8 = 20;

pub(super) fn encode(out: &mut Vec<u8>, key: &[u8], value: &Value, expire_at_ms: Option<u64>) {
    out.push(VALUE);
    put_bytes(out, key);
    match value {
        Value::Str(v) => {
            // Not produced ([`LogRecord::put`] makes strings `Set`s), but
            // encodable under its own type byte rather than a panic.
            out.push(b't');
            put_varint(out, 1);
            put_bytes(out, v);
        }
        Value::Hash(h) => {
            out.push(b'h');
            put_varint(out, h.len() as u64);
            for (f, v) in h {
                put_bytes(out, f);
                put_bytes(out, v);
            }
        }
        Value::List(l) => {
            out.push(b'l');
            put_varint(out, l.len() as u64);
            for e in l {
                put_bytes(out, e);
            }
        }
        Value::Set(s) => {
            out.push(b's');
            put_varint(out, s.len() as u64);
            for m in s {
                put_bytes(out, m);
            }
        }
        Value::ZSet(z) => {
            out.push(b'z');
            put_varint(out, z.len() as u64);
            for (m, score) in z.iter() {
                put_bytes(out, m);
                out.extend_from_slice(&score.to_bits().to_le_bytes());
            }
        }
    }
    match expire_at_ms {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_le_bytes());
        }
    }
}

/// Decodes what follows the tag.
pub(super) fn decode(i: &mut Input<'_>) -> Option<(Vec<u8>, Value, Option<u64>)> {
    let key = i.bytes()?;
    let kind = i.byte()?;
    let value = match kind {
        b'h' => {
            let n = i.count(2)?;
            let mut h = std::collections::HashMap::with_capacity(n);
            for _ in 0..n {
                let f = i.bytes()?;
                // A repeated field has no meaning: refused.
                if h.insert(f, i.bytes()?).is_some() {
                    return None;
                }
            }
            Value::Hash(h)
        }
        b'l' => {
            let n = i.count(1)?;
            let mut l = std::collections::VecDeque::with_capacity(n);
            for _ in 0..n {
                l.push_back(i.bytes()?);
            }
            Value::List(l)
        }
        b's' => {
            let n = i.count(1)?;
            let mut s = std::collections::HashSet::with_capacity(n);
            for _ in 0..n {
                if !s.insert(i.bytes()?) {
                    return None;
                }
            }
            Value::Set(s)
        }
        b'z' => {
            let n = i.count(9)?;
            let mut z = ZSet::new();
            for _ in 0..n {
                let m = i.bytes()?;
                let score = f64::from_bits(i.u64()?);
                // NaN cannot be stored; a repeated member has no meaning.
                if score.is_nan() || z.insert(&m, score).is_some() {
                    return None;
                }
            }
            // Reloaded compactly when it fits, as Redis's RDB load does.
            let t = thresholds();
            z.reset_encoding(t.zset_entries, t.zset_value);
            Value::ZSet(z)
        }
        b't' => {
            if i.varint()? != 1 {
                return None;
            }
            Value::Str(i.bytes()?)
        }
        _ => return None,
    };
    if value.is_empty_aggregate() {
        return None;
    }
    let expire_at_ms = match i.byte()? {
        0 => None,
        1 => Some(i.u64()?),
        _ => return None,
    };
    Some((key, value, expire_at_ms))
}

/// [`has_record_layout`](super::has_record_layout) for what follows the
/// tag: walks the first `walk` elements, then requires a byte per
/// remaining string.
pub(super) fn layout<F: FnMut(u64) -> Option<u8>>(w: &mut Walk<F>, walk: u64) -> bool {
    if w.string().is_none() {
        return false;
    }
    // Strings per element, and fixed bytes after them (a score).
    let (per_item, fixed) = match w.next() {
        Some(b'h') => (2, 0),
        Some(b'l' | b's' | b't') => (1, 0),
        Some(b'z') => (1, 8),
        _ => return false,
    };
    let Some(n) = w.varint() else {
        return false;
    };
    for _ in 0..n.min(walk) {
        for _ in 0..per_item {
            if w.string().is_none() {
                return false;
            }
        }
        if w.skip(fixed).is_none() {
            return false;
        }
    }
    if n > walk {
        return (n - walk)
            .checked_mul(per_item + fixed)
            .is_some_and(|r| w.len - w.at > r);
    }
    match w.next() {
        Some(0) => w.at == w.len,
        Some(1) => w.skip(8).is_some() && w.at == w.len,
        _ => false,
    }
}
