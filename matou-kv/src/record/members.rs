//! The member records of sets and sorted sets: what SADD, SREM, ZADD and
//! ZREM (and the commands logged as them: SPOP, SMOVE, ZINCRBY, ZPOP*,
//! ZREMRANGEBY*) change, one record per command, without the rest of the
//! aggregate.
//!
//! Encoding: tag, key, the count, then each member (a byte string) and,
//! for [`ZADD`], its score as the f64's bits, u64 little-endian (so every
//! double, `-0.0` and the infinities included, replays bit for bit). A
//! score that is NaN cannot be stored and is refused by decoding; an empty
//! member list is refused too (no command logs one), so each change has
//! one encoding.

use super::{put_bytes, put_varint, Input, LogRecord, Score, Walk};

/// Set members added (SADD, SMOVE's destination).
pub(super) const SADD: u8 = 28;
/// Set members removed (SREM, SPOP, SMOVE's source).
pub(super) const SREM: u8 = 29;
/// Sorted-set members set to these scores (ZADD, ZINCRBY's result).
pub(super) const ZADD: u8 = 40;
/// Sorted-set members removed (ZREM, ZPOP*, ZREMRANGEBY*).
pub(super) const ZREM: u8 = 41;

/// Whether `tag` is one of this module's.
pub(super) fn is_tag(tag: u8) -> bool {
    matches!(tag, SADD | SREM | ZADD | ZREM)
}

/// Appends the payload of a member record (`r` is one of this module's).
pub(super) fn encode(r: &LogRecord, out: &mut Vec<u8>) {
    let (tag, key, members): (u8, &[u8], &[Vec<u8>]) = match r {
        LogRecord::SAdd { key, members } => (SADD, key, members),
        LogRecord::SRem { key, members } => (SREM, key, members),
        LogRecord::ZRem { key, members } => (ZREM, key, members),
        LogRecord::ZAdd { key, pairs } => {
            out.push(ZADD);
            put_bytes(out, key);
            put_varint(out, pairs.len() as u64);
            for (m, s) in pairs {
                put_bytes(out, m);
                out.extend_from_slice(&s.0.to_bits().to_le_bytes());
            }
            return;
        }
        _ => unreachable!("not a member record: {r:?}"),
    };
    out.push(tag);
    put_bytes(out, key);
    put_varint(out, members.len() as u64);
    for m in members {
        put_bytes(out, m);
    }
}

/// Decodes what follows `tag` (one of this module's).
pub(super) fn decode(tag: u8, i: &mut Input<'_>) -> Option<LogRecord> {
    let key = i.bytes()?;
    if tag == ZADD {
        let n = i.count(9)?;
        if n == 0 {
            return None;
        }
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let m = i.bytes()?;
            let s = f64::from_bits(i.u64()?);
            if s.is_nan() {
                return None;
            }
            pairs.push((m, Score(s)));
        }
        return Some(LogRecord::ZAdd { key, pairs });
    }
    let n = i.count(1)?;
    if n == 0 {
        return None;
    }
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        members.push(i.bytes()?);
    }
    Some(match tag {
        SADD => LogRecord::SAdd { key, members },
        SREM => LogRecord::SRem { key, members },
        ZREM => LogRecord::ZRem { key, members },
        _ => return None,
    })
}

/// [`has_record_layout`](super::has_record_layout) for what follows the
/// tag: walks the first `walk` members, then requires a byte per
/// remaining one (nine for a scored one).
pub(super) fn layout<F: FnMut(u64) -> Option<u8>>(tag: u8, w: &mut Walk<F>, walk: u64) -> bool {
    if w.string().is_none() {
        return false;
    }
    let Some(n) = w.varint() else {
        return false;
    };
    let score = if tag == ZADD { 8 } else { 0 };
    for _ in 0..n.min(walk) {
        if w.string().is_none() || w.skip(score).is_none() {
            return false;
        }
    }
    match n.checked_sub(walk) {
        Some(rest) => rest
            .checked_mul(1 + score)
            .is_some_and(|r| w.len - w.at >= r),
        None => w.at == w.len,
    }
}

#[cfg(test)]
mod tests {
    use super::super::LogRecord;
    use super::*;

    #[test]
    fn nan_scores_and_empty_member_lists_are_refused() {
        let mut out = Vec::new();
        encode(
            &LogRecord::ZAdd {
                key: b"z".to_vec(),
                pairs: vec![(b"m".to_vec(), Score(1.0))],
            },
            &mut out,
        );
        assert!(LogRecord::decode(&out).is_some());
        let n = out.len();
        out[n - 8..].copy_from_slice(&f64::NAN.to_bits().to_le_bytes());
        assert_eq!(LogRecord::decode(&out), None, "a NaN score");
        for tag in [SADD, SREM, ZADD, ZREM] {
            // tag, key "k", zero members
            assert_eq!(LogRecord::decode(&[tag, 1, b'k', 0]), None, "tag {tag}");
        }
    }
}
