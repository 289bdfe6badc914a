//! BITFIELD and BITFIELD_RO: integers of 1 to 64 bits at any bit offset of
//! a string, read, set and incremented with Redis's overflow policies.
//!
//! Invariants: the whole command is checked at parse time (every type,
//! offset and value), so running it cannot fail half-way; bit 0 is the top
//! bit of byte 0, as for SETBIT. A command with no SET or INCRBY never
//! creates the key; one that changes it logs only the bytes between the
//! first and the last bit it wrote (a `SetRange`), keeping the expiry. An
//! `OVERFLOW FAIL` that fails writes nothing for that operation (its reply
//! is nil) and the others still run, as in Redis.

use super::exec::Tx;
use super::{Read, Write, NOT_INTEGER, SYNTAX};
use crate::record::LogRecord;
use crate::resp::Reply;
use crate::server::notify::Class;
use crate::store::Store;

/// The highest bit a field may reach: the last of a 512 MiB string.
const MAX_BIT: u64 = 512 * 1024 * 1024 * 8 - 1;

/// A field's type: `i1`..`i64` or `u1`..`u63`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldType {
    /// Signed (`i`).
    pub signed: bool,
    /// Width in bits.
    pub bits: u32,
}

/// `OVERFLOW WRAP|SAT|FAIL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Modulo the type's range (the default).
    Wrap,
    /// Clamped to the type's minimum or maximum.
    Sat,
    /// Not done: the reply is nil.
    Fail,
}

/// One subcommand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldOp {
    /// GET type offset.
    Get(FieldType, u64),
    /// SET type offset value, under the overflow policy in force.
    Set(FieldType, u64, i64, Overflow),
    /// INCRBY type offset increment, likewise.
    IncrBy(FieldType, u64, i64, Overflow),
}

fn parse_type(a: &[u8]) -> Result<FieldType, Reply> {
    let bad = || {
        Reply::err(
            "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not \
             supported but i64 is.",
        )
    };
    let (signed, digits) = match a.first() {
        Some(b'i' | b'I') => (true, &a[1..]),
        Some(b'u' | b'U') => (false, &a[1..]),
        _ => return Err(bad()),
    };
    let bits: u32 = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let max = if signed { 64 } else { 63 };
    if bits == 0 || bits > max {
        return Err(bad());
    }
    Ok(FieldType { signed, bits })
}

/// `N` or `#N` (N times the type's width).
fn parse_offset(a: &[u8], t: FieldType) -> Result<u64, Reply> {
    let bad = || Reply::err("ERR bit offset is not an integer or out of range");
    let (times, digits) = match a.first() {
        Some(b'#') => (true, &a[1..]),
        _ => (false, a),
    };
    let n: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let offset = if times {
        n.checked_mul(u64::from(t.bits)).ok_or_else(bad)?
    } else {
        n
    };
    match offset.checked_add(u64::from(t.bits) - 1) {
        Some(last) if last <= MAX_BIT => Ok(offset),
        _ => Err(bad()),
    }
}

fn parse_int(a: &[u8]) -> Result<i64, Reply> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Reply::err(NOT_INTEGER))
}

fn parse_ops(args: &[Vec<u8>], read_only: bool) -> Result<Vec<FieldOp>, Reply> {
    let is = |a: &[u8], w: &str| a.eq_ignore_ascii_case(w.as_bytes());
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut i = 2;
    while i < args.len() {
        let left = args.len() - i - 1;
        let a = &args[i];
        if is(a, "get") && left >= 2 {
            let t = parse_type(&args[i + 1])?;
            ops.push(FieldOp::Get(t, parse_offset(&args[i + 2], t)?));
            i += 3;
        } else if (is(a, "set") || is(a, "incrby")) && left >= 3 {
            if read_only {
                return Err(Reply::err(
                    "ERR BITFIELD_RO only supports the GET subcommand",
                ));
            }
            let t = parse_type(&args[i + 1])?;
            let offset = parse_offset(&args[i + 2], t)?;
            let v = parse_int(&args[i + 3])?;
            ops.push(if is(a, "set") {
                FieldOp::Set(t, offset, v, overflow)
            } else {
                FieldOp::IncrBy(t, offset, v, overflow)
            });
            i += 4;
        } else if is(a, "overflow") && left >= 1 {
            if read_only {
                return Err(Reply::err(
                    "ERR BITFIELD_RO only supports the GET subcommand",
                ));
            }
            let w = &args[i + 1];
            overflow = if is(w, "wrap") {
                Overflow::Wrap
            } else if is(w, "sat") {
                Overflow::Sat
            } else if is(w, "fail") {
                Overflow::Fail
            } else {
                return Err(Reply::err("ERR Invalid OVERFLOW type specified"));
            };
            i += 2;
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }
    Ok(ops)
}

/// BITFIELD key [GET|SET|INCRBY|OVERFLOW ...]...
pub(super) fn parse_bitfield(args: &[Vec<u8>]) -> Result<Write, Reply> {
    Ok(Write::BitField {
        key: args[1].clone(),
        ops: parse_ops(args, false)?,
    })
}

/// BITFIELD_RO key [GET type offset]...
pub(super) fn parse_bitfield_ro(args: &[Vec<u8>]) -> Result<Read, Reply> {
    Ok(Read::BitFieldRo {
        key: args[1].clone(),
        ops: parse_ops(args, true)?,
    })
}

/// The `bits` bits at bit `offset` of `bytes` (zeros past its end), as an
/// unsigned number.
fn get_bits(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0u64, |v, i| {
        let at = offset + i;
        let byte = bytes.get((at >> 3) as usize).copied().unwrap_or(0);
        (v << 1) | u64::from((byte >> (7 - (at & 7))) & 1)
    })
}

/// Writes the low `bits` bits of `value` at bit `offset` (`bytes` already
/// long enough).
fn set_bits(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..u64::from(bits) {
        let at = offset + i;
        let mask = 1u8 << (7 - (at & 7));
        let byte = &mut bytes[(at >> 3) as usize];
        if (value >> (u64::from(bits) - 1 - i)) & 1 == 1 {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

impl FieldType {
    /// The raw bits read as this type's number.
    fn value(self, raw: u64) -> i64 {
        if self.signed && self.bits < 64 && raw >> (self.bits - 1) & 1 == 1 {
            (raw as i64) - (1i64 << self.bits)
        } else {
            raw as i64
        }
    }

    fn range(self) -> (i128, i128) {
        if self.signed {
            let max = (1i128 << (self.bits - 1)) - 1;
            (-max - 1, max)
        } else {
            (0, (1i128 << self.bits) - 1)
        }
    }

    /// `wanted` brought into range under `policy` (`None`: FAIL
    /// overflowed).
    fn fit(self, wanted: i128, policy: Overflow) -> Option<i64> {
        let (min, max) = self.range();
        if (min..=max).contains(&wanted) {
            return Some(wanted as i64);
        }
        match policy {
            Overflow::Fail => None,
            Overflow::Sat => Some(if wanted > max { max } else { min } as i64),
            Overflow::Wrap => {
                let modulus = 1i128 << self.bits;
                let low = wanted.rem_euclid(modulus);
                Some(self.value(low as u64))
            }
        }
    }

    fn raw(self, v: i64) -> u64 {
        let mask = if self.bits == 64 {
            u64::MAX
        } else {
            (1u64 << self.bits) - 1
        };
        (v as u64) & mask
    }
}

/// BITFIELD_RO (and a BITFIELD of GETs only).
pub(super) fn read(key: &[u8], ops: &[FieldOp], store: &Store, now: u64) -> Reply {
    let value = store.read(key, now).unwrap_or_default();
    Reply::Array(
        ops.iter()
            .map(|op| match *op {
                FieldOp::Get(t, offset) => Reply::Integer(t.value(get_bits(value, offset, t.bits))),
                _ => unreachable!("BITFIELD_RO parses GET only"),
            })
            .collect(),
    )
}

/// BITFIELD: the replies, and one `SetRange` record over what changed.
pub(super) fn write(key: Vec<u8>, ops: Vec<FieldOp>, mut tx: Tx<'_>) -> (Reply, Option<LogRecord>) {
    let mut bytes = tx.live(&key).map(|(v, _)| v.to_vec()).unwrap_or_default();
    let old_len = bytes.len();
    let mut changed: Option<(u64, u64)> = None;
    let mut replies = Vec::with_capacity(ops.len());
    for op in ops {
        let (t, offset, wanted, policy, reply_old) = match op {
            FieldOp::Get(t, offset) => {
                replies.push(Reply::Integer(t.value(get_bits(&bytes, offset, t.bits))));
                continue;
            }
            // Redis checks an unsigned SET's value as the u64 it becomes.
            FieldOp::Set(t, offset, v, policy) if !t.signed => {
                (t, offset, i128::from(v as u64), policy, true)
            }
            FieldOp::Set(t, offset, v, policy) => (t, offset, i128::from(v), policy, true),
            FieldOp::IncrBy(t, offset, by, policy) => {
                let old = t.value(get_bits(&bytes, offset, t.bits));
                (t, offset, i128::from(old) + i128::from(by), policy, false)
            }
        };
        let old = t.value(get_bits(&bytes, offset, t.bits));
        let Some(new) = t.fit(wanted, policy) else {
            replies.push(Reply::Nil);
            continue;
        };
        let last = offset + u64::from(t.bits) - 1;
        let need = (last >> 3) as usize + 1;
        if bytes.len() < need {
            bytes.resize(need, 0);
        }
        set_bits(&mut bytes, offset, t.bits, t.raw(new));
        changed = Some(changed.map_or((offset, last), |(a, b)| (a.min(offset), b.max(last))));
        replies.push(Reply::Integer(if reply_old { old } else { new }));
    }
    let reply = Reply::Array(replies);
    let Some((first, last)) = changed else {
        return tx.done(reply);
    };
    // From the first byte written to the end of the string if it grew
    // (the zero padding included), else to the last byte written.
    let from = (first >> 3) as usize;
    let to = if bytes.len() > old_len {
        bytes.len()
    } else {
        (last >> 3) as usize + 1
    };
    tx.store.notify(Class::STRING, "setbit", &key);
    let (r, record) = super::strings::set_range(tx, key, from, bytes[from..to].to_vec());
    debug_assert!(!r.is_error());
    (reply, record)
}

#[cfg(test)]
mod tests {
    use super::super::execute;
    use crate::resp::Reply;
    use crate::store::Store;

    fn run(st: &mut Store, words: &str) -> Reply {
        let a: Vec<Vec<u8>> = words
            .split_whitespace()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        execute(st, &a, 1000).0
    }

    fn ints(v: &[Option<i64>]) -> Reply {
        Reply::Array(
            v.iter()
                .map(|x| x.map_or(Reply::Nil, Reply::Integer))
                .collect(),
        )
    }

    #[test]
    fn set_get_and_incrby_as_redis_examples() {
        let mut st = Store::new();
        // From Redis's BITFIELD documentation.
        assert_eq!(
            run(&mut st, "bitfield k incrby i5 100 1 get u4 0"),
            ints(&[Some(1), Some(0)])
        );
        assert_eq!(
            run(
                &mut st,
                "bitfield m set i8 0 100 set i8 8 200 get i8 0 get i8 8"
            ),
            ints(&[Some(0), Some(0), Some(100), Some(-56)])
        );
        assert_eq!(
            run(&mut st, "bitfield c set u8 #1 255 get u8 8 get u16 0"),
            ints(&[Some(0), Some(255), Some(255)])
        );
        assert_eq!(run(&mut st, "get c"), Reply::Bulk(vec![0, 255]));
    }

    #[test]
    fn overflow_policies() {
        let mut st = Store::new();
        assert_eq!(
            run(
                &mut st,
                "bitfield k incrby u2 100 1 overflow sat incrby u2 102 1"
            ),
            ints(&[Some(1), Some(1)])
        );
        for expected in [[2, 2], [3, 3], [0, 3]] {
            assert_eq!(
                run(
                    &mut st,
                    "bitfield k incrby u2 100 1 overflow sat incrby u2 102 1"
                ),
                ints(&[Some(expected[0]), Some(expected[1])])
            );
        }
        assert_eq!(
            run(&mut st, "bitfield k overflow fail incrby u2 102 1"),
            ints(&[None])
        );
        assert_eq!(
            run(&mut st, "bitfield s set i8 0 127 incrby i8 0 1"),
            ints(&[Some(0), Some(-128)])
        );
        assert_eq!(
            run(&mut st, "bitfield s overflow sat incrby i8 0 -1000"),
            ints(&[Some(-128)])
        );
        assert_eq!(
            run(&mut st, "bitfield s64 set i64 0 -1 incrby i64 0 1"),
            ints(&[Some(0), Some(0)])
        );
        assert_eq!(
            run(&mut st, "bitfield u overflow sat set u8 0 -1 get u8 0"),
            ints(&[Some(0), Some(255)])
        );
    }

    #[test]
    fn reads_create_nothing_and_errors_are_redis_texts() {
        let mut st = Store::new();
        assert_eq!(run(&mut st, "bitfield k get u8 0"), ints(&[Some(0)]));
        assert_eq!(run(&mut st, "exists k"), Reply::Integer(0));
        let err = |st: &mut Store, w: &str| match run(st, w) {
            Reply::Error(e) => e.to_string(),
            other => panic!("{w}: {other:?}"),
        };
        assert!(err(&mut st, "bitfield k get u64 0").contains("Invalid bitfield type"));
        assert!(err(&mut st, "bitfield k get i0 0").contains("Invalid bitfield type"));
        assert!(err(&mut st, "bitfield k get u8 -1").contains("bit offset"));
        assert!(err(&mut st, "bitfield k get u8 4294967296").contains("bit offset"));
        assert!(err(&mut st, "bitfield k set u8 0 x").contains("not an integer"));
        assert!(err(&mut st, "bitfield k overflow maybe").contains("OVERFLOW"));
        assert!(err(&mut st, "bitfield k foo").contains("syntax"));
        assert!(err(&mut st, "bitfield_ro k set u8 0 1").contains("only supports the GET"));
        assert_eq!(
            run(&mut st, "bitfield_ro k get u8 0 get i4 #1"),
            ints(&[Some(0), Some(0)])
        );
        run(&mut st, "hset h f v");
        assert!(err(&mut st, "bitfield h get u8 0").starts_with("WRONGTYPE"));
        assert!(err(&mut st, "bitfield_ro h get u8 0").starts_with("WRONGTYPE"));
    }
}
