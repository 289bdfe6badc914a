//! DUMP and RESTORE: a value in Redis's serialization (an RDB object),
//! followed by the RDB version and a CRC-64 of it all, so that a payload
//! moves between matou-kv and Redis 7 either way.
//!
//! What is written: strings as `RDB_TYPE_STRING` (plain length-prefixed
//! bytes), hashes as `RDB_TYPE_HASH`, lists as `RDB_TYPE_LIST`, sets as
//! `RDB_TYPE_SET`: the plain forms every Redis since 2.x loads, Redis 7
//! included (it converts them to its compact encodings on load). What is
//! read: those, plus the string encodings Redis writes itself (integers,
//! LZF-compressed) and the compact forms Redis 7.0 writes for aggregates
//! (hash listpack, quicklist 2 of listpacks, intset; 7.2's set listpack),
//! so Redis's DUMP of any of these types restores here. Other encodings
//! (zsets, streams, the ziplists of older versions) are refused with `ERR
//! Bad data format`, never misread.
//!
//! Invariants: a payload is checked whole before anything changes: its
//! footer (version at most [`RDB_VERSION`], CRC-64 Jones of everything
//! before the checksum) gives `ERR DUMP payload version or checksum are
//! wrong`; a body that does not parse to exactly one value, to its last
//! byte, gives `ERR Bad data format`. Lengths are checked against the bytes
//! left before any allocation, so a forged length cannot allocate more
//! than the payload's size.

use super::exec::Tx;
use super::{Read, Write, NOT_INTEGER, SYNTAX};
use crate::record::LogRecord;
use crate::resp::Reply;
use crate::server::notify::Class;
use crate::store::zset::ZSet;
use crate::store::{Store, Value};
use std::collections::{HashMap, HashSet, VecDeque};

/// The RDB version written (Redis 7.0's), and the newest accepted.
pub const RDB_VERSION: u16 = 10;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_HASH: u8 = 4;
/// A sorted set: members with binary (little-endian f64) scores.
const TYPE_ZSET_2: u8 = 5;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_HASH_LISTPACK: u8 = 16;
/// A small sorted set: one listpack of member, score, member, score...
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_SET_LISTPACK: u8 = 20;
/// A quicklist node holding one element as is (not a listpack).
const QUICKLIST_NODE_PLAIN: usize = 1;

/// `ERR DUMP payload version or checksum are wrong`.
pub const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
/// `ERR Bad data format`.
pub const BAD_FORMAT: &str = "ERR Bad data format";

/// CRC-64 Jones (reflected, polynomial 0xad93d23594c935a9): Redis's
/// `crc64`, one table lookup per byte.
const CRC_TABLE: [u64; 256] = {
    const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Redis's `crc64(0, bytes)`.
pub fn crc64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |crc, &b| {
        CRC_TABLE[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len());
    out.extend_from_slice(s);
}

/// DUMP's payload for `value`.
pub fn serialize(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.data_len() + 32);
    match value {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            put_str(&mut out, s);
        }
        Value::List(l) => {
            out.push(TYPE_LIST);
            put_len(&mut out, l.len());
            l.iter().for_each(|e| put_str(&mut out, e));
        }
        Value::Set(s) => {
            out.push(TYPE_SET);
            put_len(&mut out, s.len());
            s.iter().for_each(|m| put_str(&mut out, m));
        }
        Value::Hash(h) => {
            out.push(TYPE_HASH);
            put_len(&mut out, h.len());
            for (f, v) in h {
                put_str(&mut out, f);
                put_str(&mut out, v);
            }
        }
        Value::ZSet(z) => {
            out.push(TYPE_ZSET_2);
            put_len(&mut out, z.len());
            for (m, score) in z.iter() {
                put_str(&mut out, m);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
    }
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A cursor over a payload's body; every read is bounds-checked.
struct Body<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// A length, or one of the special string encodings (`11xxxxxx`).
enum Len {
    Plain(usize),
    Encoded(u8),
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len())?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn len(&mut self) -> Option<Len> {
        let first = self.byte()?;
        Some(match first >> 6 {
            0 => Len::Plain(usize::from(first & 0x3f)),
            1 => Len::Plain((usize::from(first & 0x3f) << 8) | usize::from(self.byte()?)),
            2 if first == 0x80 => {
                Len::Plain(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize)
            }
            2 if first == 0x81 => Len::Plain(
                usize::try_from(u64::from_be_bytes(self.take(8)?.try_into().ok()?)).ok()?,
            ),
            2 => return None,
            _ => Len::Encoded(first & 0x3f),
        })
    }

    /// A count of elements: each takes at least one byte, so a count over
    /// the bytes left is a lie (and must not size an allocation).
    fn count(&mut self) -> Option<usize> {
        match self.len()? {
            Len::Plain(n) if n <= self.bytes.len() - self.at => Some(n),
            _ => None,
        }
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.len()? {
            Len::Plain(n) => self.take(n).map(<[u8]>::to_vec),
            // Integers, little-endian: 8, 16, 32 bits.
            Len::Encoded(0) => Some((self.byte()? as i8).to_string().into_bytes()),
            Len::Encoded(1) => Some(
                i16::from_le_bytes(self.take(2)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Len::Encoded(2) => Some(
                i32::from_le_bytes(self.take(4)?.try_into().ok()?)
                    .to_string()
                    .into_bytes(),
            ),
            Len::Encoded(3) => {
                let Len::Plain(packed) = self.len()? else {
                    return None;
                };
                let Len::Plain(size) = self.len()? else {
                    return None;
                };
                lzf_decompress(self.take(packed)?, size)
            }
            Len::Encoded(_) => None,
        }
    }
}

/// The elements of a listpack (Redis's `listpack.c` format: a 6-byte
/// header, entries each followed by their back-length, an 0xFF end), as
/// strings (integers in decimal, as Redis reads them back).
fn listpack(lp: &[u8]) -> Option<Vec<Vec<u8>>> {
    let total = u32::from_le_bytes(lp.get(..4)?.try_into().ok()?) as usize;
    if total != lp.len() {
        return None;
    }
    let mut b = Body { bytes: lp, at: 6 };
    let mut out = Vec::new();
    loop {
        let start = b.at;
        let first = b.byte()?;
        let int = |v: i64| Some(v.to_string().into_bytes());
        let entry = match first {
            0xff => break,
            f if f & 0x80 == 0 => int(i64::from(f))?,
            f if f & 0xc0 == 0x80 => b.take(usize::from(f & 0x3f))?.to_vec(),
            f if f & 0xe0 == 0xc0 => {
                let v = (i64::from(f & 0x1f) << 8) | i64::from(b.byte()?);
                int(if v >= 1 << 12 { v - (1 << 13) } else { v })?
            }
            f if f & 0xf0 == 0xe0 => {
                let n = (usize::from(f & 0x0f) << 8) | usize::from(b.byte()?);
                b.take(n)?.to_vec()
            }
            0xf0 => {
                let n = u32::from_le_bytes(b.take(4)?.try_into().ok()?) as usize;
                b.take(n)?.to_vec()
            }
            0xf1 => int(i64::from(i16::from_le_bytes(b.take(2)?.try_into().ok()?)))?,
            0xf2 => {
                let t = b.take(3)?;
                int(i64::from(i32::from_le_bytes([0, t[0], t[1], t[2]]) >> 8))?
            }
            0xf3 => int(i64::from(i32::from_le_bytes(b.take(4)?.try_into().ok()?)))?,
            0xf4 => int(i64::from_le_bytes(b.take(8)?.try_into().ok()?))?,
            _ => return None,
        };
        let len = b.at - start;
        let backlen = match len {
            0..=127 => 1,
            128..=16_383 => 2,
            16_384..=2_097_151 => 3,
            2_097_152..=268_435_455 => 4,
            _ => 5,
        };
        b.take(backlen)?;
        out.push(entry);
    }
    (b.at == lp.len()).then_some(out)
}

/// The members of an intset (`intset.c`: encoding width, count, then the
/// integers, little-endian).
fn intset(blob: &[u8]) -> Option<Vec<Vec<u8>>> {
    let width = u32::from_le_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let n = u32::from_le_bytes(blob.get(4..8)?.try_into().ok()?) as usize;
    if ![2, 4, 8].contains(&width) || blob.len() != 8 + n.checked_mul(width)? {
        return None;
    }
    Some(
        blob[8..]
            .chunks_exact(width)
            .map(|c| {
                let v = match width {
                    2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
                    4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                    _ => i64::from_le_bytes(c.try_into().unwrap_or_default()),
                };
                v.to_string().into_bytes()
            })
            .collect(),
    )
}

/// LZF decompression (liblzf's format, as Redis compresses strings) of
/// `input` into exactly `size` bytes; `None` if it does not decode to that.
fn lzf_decompress(input: &[u8], size: usize) -> Option<Vec<u8>> {
    // Compression never gains more than a factor of about 100 per byte of
    // input: a bigger claimed size is a forged one.
    if size > input.len().saturating_mul(256) {
        return None;
    }
    let mut out = Vec::with_capacity(size);
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            out.extend_from_slice(input.get(i..i + n)?);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(i)?);
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(i)?) + 1;
            i += 1;
            let from = out.len().checked_sub(back)?;
            for k in 0..len + 2 {
                let b = out[from + k];
                out.push(b);
            }
        }
        if out.len() > size {
            return None;
        }
    }
    (out.len() == size).then_some(out)
}

/// The value a payload holds (see the module docs for the errors).
///
/// # Errors
/// [`BAD_PAYLOAD`] or [`BAD_FORMAT`] as a reply.
pub fn deserialize(payload: &[u8]) -> Result<Value, Reply> {
    if payload.len() < 10 {
        return Err(Reply::err(BAD_PAYLOAD));
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(
        footer[2..]
            .try_into()
            .map_err(|_| Reply::err(BAD_PAYLOAD))?,
    );
    if version > RDB_VERSION || crc64(&payload[..payload.len() - 8]) != crc {
        return Err(Reply::err(BAD_PAYLOAD));
    }
    let mut b = Body { bytes: body, at: 0 };
    let value = (|| {
        Some(match b.byte()? {
            TYPE_STRING => Value::Str(b.string()?),
            TYPE_LIST => {
                let n = b.count()?;
                let mut l = VecDeque::with_capacity(n);
                for _ in 0..n {
                    l.push_back(b.string()?);
                }
                Value::List(l)
            }
            TYPE_SET => {
                let n = b.count()?;
                let mut s = HashSet::with_capacity(n);
                for _ in 0..n {
                    s.insert(b.string()?);
                }
                Value::Set(s)
            }
            TYPE_HASH_LISTPACK => {
                let items = listpack(&b.string()?)?;
                if items.len() % 2 != 0 {
                    return None;
                }
                let mut h = HashMap::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(f), Some(v)) = (it.next(), it.next()) {
                    h.insert(f, v);
                }
                Value::Hash(h)
            }
            TYPE_LIST_QUICKLIST_2 => {
                let nodes = b.count()?;
                let mut l = VecDeque::new();
                for _ in 0..nodes {
                    let Len::Plain(container) = b.len()? else {
                        return None;
                    };
                    let blob = b.string()?;
                    if container == QUICKLIST_NODE_PLAIN {
                        l.push_back(blob);
                    } else {
                        l.extend(listpack(&blob)?);
                    }
                }
                Value::List(l)
            }
            TYPE_SET_INTSET => Value::Set(intset(&b.string()?)?.into_iter().collect()),
            TYPE_SET_LISTPACK => Value::Set(listpack(&b.string()?)?.into_iter().collect()),
            TYPE_HASH => {
                let n = b.count()?;
                let mut h = HashMap::with_capacity(n);
                for _ in 0..n {
                    let f = b.string()?;
                    h.insert(f, b.string()?);
                }
                Value::Hash(h)
            }
            TYPE_ZSET_2 => {
                let n = b.count()?;
                let mut z = ZSet::default();
                for _ in 0..n {
                    let m = b.string()?;
                    let bits: [u8; 8] = b.take(8)?.try_into().ok()?;
                    let score = f64::from_le_bytes(bits);
                    if score.is_nan() {
                        return None;
                    }
                    z.insert(&m, score);
                }
                Value::ZSet(z)
            }
            TYPE_ZSET_LISTPACK => {
                let entries = listpack(&b.string()?)?;
                if entries.len() % 2 != 0 {
                    return None;
                }
                let mut z = ZSet::default();
                for pair in entries.chunks(2) {
                    let score: f64 = std::str::from_utf8(&pair[1]).ok()?.parse().ok()?;
                    if score.is_nan() {
                        return None;
                    }
                    z.insert(&pair[0], score);
                }
                Value::ZSet(z)
            }
            _ => return None,
        })
    })();
    match value {
        // An aggregate is never empty in a store.
        Some(v) if b.at == body.len() && !v.is_empty_aggregate() => Ok(v),
        _ => Err(Reply::err(BAD_FORMAT)),
    }
}

fn int(a: &[u8]) -> Result<i64, Reply> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Reply::err(NOT_INTEGER))
}

/// DUMP key.
pub(super) fn parse_dump(args: &[Vec<u8>]) -> Read {
    Read::Dump(args[1].clone())
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`, with
/// Redis's checks in its order (options, then the TTL).
pub(super) fn parse_restore(args: &[Vec<u8>]) -> Result<Write, Reply> {
    let is = |a: &[u8], w: &str| a.eq_ignore_ascii_case(w.as_bytes());
    let (mut replace, mut absttl, mut idle, mut freq) = (false, false, None, None);
    let mut i = 4;
    while i < args.len() {
        let more = i + 1 < args.len();
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "absttl") {
            absttl = true;
        } else if is(&args[i], "idletime") && more && freq.is_none() {
            let s = int(&args[i + 1])?;
            if s < 0 {
                return Err(Reply::err("ERR Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(s as u64);
            i += 1;
        } else if is(&args[i], "freq") && more && idle.is_none() {
            let f = int(&args[i + 1])?;
            let f = u8::try_from(f)
                .map_err(|_| Reply::err("ERR Invalid FREQ value, must be >= 0 and <= 255"))?;
            freq = Some(f);
            i += 1;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        i += 1;
    }
    let ttl = int(&args[2])?;
    if ttl < 0 {
        return Err(Reply::err("ERR Invalid TTL value, must be >= 0"));
    }
    Ok(Write::Restore {
        key: args[1].clone(),
        ttl,
        payload: args[3].clone(),
        replace,
        absttl,
        idle_secs: idle,
        freq,
    })
}

/// DUMP: the payload of `key`'s value, or nil.
pub(super) fn dump(key: &[u8], store: &Store, now: u64) -> Reply {
    match store.value(key, now) {
        Some(v) => Reply::Bulk(serialize(v)),
        None => Reply::Nil,
    }
}

/// RESTORE, in Redis's order: BUSYKEY before the payload's checks, then
/// the payload, then the key set (an absolute TTL already past only
/// deletes what REPLACE replaces, as Redis does).
pub(super) fn restore(cmd: Write, mut tx: Tx<'_>) -> (Reply, Option<LogRecord>) {
    let Write::Restore {
        key,
        ttl,
        payload,
        replace,
        absttl,
        idle_secs,
        freq,
    } = cmd
    else {
        unreachable!("restore() runs RESTORE only")
    };
    tx.purge(&key);
    let exists = tx.store.contains(&key, tx.now);
    if exists && !replace {
        return tx.done(Reply::err("BUSYKEY Target key name already exists."));
    }
    let value = match deserialize(&payload) {
        Ok(v) => v,
        Err(e) => return tx.done(e),
    };
    let now = tx.now;
    let expire_at = match (ttl, absttl) {
        (0, _) => None,
        (t, true) => Some(t as u64),
        (t, false) => match (now as i64).checked_add(t) {
            Some(at) => Some(at as u64),
            None => return tx.done(Reply::err("ERR Invalid TTL value, must be >= 0")),
        },
    };
    if expire_at.is_some_and(|at| at <= now) {
        if exists {
            tx.store.remove(&key);
            tx.store.notify(Class::GENERIC, "del", &key);
            return tx.logged(Reply::ok(), LogRecord::Del { keys: vec![key] });
        }
        return tx.done(Reply::ok());
    }
    let value = std::sync::Arc::new(value);
    tx.store.put_arc(&key, value.clone(), expire_at);
    let accessed = idle_secs.map(|s| now.saturating_sub(s.saturating_mul(1000)));
    tx.store.set_access(&key, accessed, freq, now);
    tx.store.notify(Class::GENERIC, "restore", &key);
    tx.logged(Reply::ok(), LogRecord::put(key, value, expire_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_redis_jones_crc() {
        // Redis's crc64 self-test value.
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn every_type_round_trips_and_long_lengths_too() {
        let long = vec![b'x'; 20_000];
        let values = [
            Value::Str(b"bar".to_vec()),
            Value::Str(long.clone()),
            Value::Str(vec![b'y'; 100]),
            Value::List([b"a".to_vec(), long.clone()].into()),
            Value::Set([b"m".to_vec(), b"n".to_vec()].into()),
            Value::Hash([(b"f".to_vec(), b"v".to_vec())].into()),
            Value::ZSet({
                let mut z = ZSet::default();
                z.insert(b"a", 1.0);
                z.insert(b"b", -2.5e300);
                z.insert(b"c", f64::INFINITY);
                z
            }),
        ];
        for v in values {
            assert_eq!(deserialize(&serialize(&v)).unwrap(), v);
        }
    }

    #[test]
    fn a_redis_7_listpack_sorted_set_restores() {
        // From redis-server 7.0.15: `ZADD z 1 a 2.5 b`, `DUMP z`.
        let z = b"\x11\x14\x14\x00\x00\x00\x04\x00\x81a\x02\x01\x01\x81b\x02\x832.5\x04\xff\n\x00\xd4Ln\xa4\xf6D\xd9\xd7";
        let Value::ZSet(got) = deserialize(z).unwrap() else {
            panic!("not a sorted set")
        };
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            vec![(&b"a"[..], 1.0), (&b"b"[..], 2.5)]
        );
    }

    #[test]
    fn payloads_are_redis_7s_both_ways() {
        // Taken from redis-server 7.0.15: `SET foo bar`, `DUMP foo`.
        let foo = b"\x00\x03bar\n\x00\xe6\xbeI`\xeef\xfd\x17";
        assert_eq!(serialize(&Value::Str(b"bar".to_vec())), foo.to_vec());
        assert_eq!(deserialize(foo).unwrap(), Value::Str(b"bar".to_vec()));
        // An integer-encoded string (`SET n 12345`) and an LZF one.
        let n = b"\x00\xc190\n\x00\x9d\x94\xea'\x93\xfc\x08\xb9";
        assert_eq!(deserialize(n).unwrap(), Value::Str(b"12345".to_vec()));
        let long = b"\x00\xc3\x0b$\x03abca\xe0\x15\x02\x01bc\n\x00\x8e\x87\x91\xca\x11\x00\x1e(";
        assert_eq!(
            deserialize(long).unwrap(),
            Value::Str(b"abcabcabcabcabcabcabcabcabcabcabcabc".to_vec())
        );
        // Redis 7's compact aggregates: a listpack hash (with 13- and
        // 24-bit integers), a quicklist list, an intset, a plain set.
        let h = b"\x10\r\r\x00\x00\x00\x02\x00\x81f\x02\x81v\x02\xff\n\x00 \xf1=D#T\x08\x9d";
        assert_eq!(
            deserialize(h).unwrap(),
            Value::Hash([(b"f".to_vec(), b"v".to_vec())].into())
        );
        let hi = b"\x10\x17\x17\x00\x00\x00\x04\x00\x81n\x02\xdf\xff\x02\x83big\x04\xf2\x87\xd6\x12\x04\xff\n\x001\xee\xc2\r\x96\x00\xfcm";
        assert_eq!(
            deserialize(hi).unwrap(),
            Value::Hash(
                [
                    (b"n".to_vec(), b"-1".to_vec()),
                    (b"big".to_vec(), b"1234567".to_vec())
                ]
                .into()
            )
        );
        let l = b"\x12\x01\x02\x1e\x1e\x00\x00\x00\x05\x00\x81a\x02\x82bb\x03{\x01\xf1x\xec\x03\xf4\xff\xe7vH\x17\x00\x00\x00\t\xff\n\x00\"\xe7\x86f\"\xb8uQ";
        assert_eq!(
            deserialize(l).unwrap(),
            Value::List(
                [&b"a"[..], b"bb", b"123", b"-5000", b"99999999999"]
                    .map(<[u8]>::to_vec)
                    .into()
            )
        );
        let si = b"\x0b\x0e\x02\x00\x00\x00\x03\x00\x00\x00\x01\x00\x02\x00,\x01\n\x00\xe5\x10\xb2\x8e{\x95)\xaa";
        assert_eq!(
            deserialize(si).unwrap(),
            Value::Set([&b"1"[..], b"2", b"300"].map(<[u8]>::to_vec).into())
        );
        let ss = b"\x02\x02\x01y\x01x\n\x00\x0c\xdfk=\xb30\xbc\xf0";
        assert_eq!(
            deserialize(ss).unwrap(),
            Value::Set([&b"x"[..], b"y"].map(<[u8]>::to_vec).into())
        );
        let mut bad = foo.to_vec();
        bad[3] ^= 1;
        assert_eq!(deserialize(&bad).unwrap_err(), Reply::err(BAD_PAYLOAD));
    }

    #[test]
    fn integer_and_lzf_strings_decode() {
        assert_eq!(lzf_decompress(&[2, b'a', b'b', b'c'], 3).unwrap(), b"abc");
        // "abc" then a back-reference of length 3+2... copying "abcab".
        assert_eq!(
            lzf_decompress(&[2, b'a', b'b', b'c', 0x60, 2], 8).unwrap(),
            b"abcabcab"
        );
        assert!(lzf_decompress(&[2, b'a', b'b', b'c', 0x60, 9], 8).is_none());
        let mut b = Body {
            bytes: &[0xc1, 0x39, 0x30],
            at: 0,
        };
        assert_eq!(b.string().unwrap(), b"12345");
    }

    #[test]
    fn bad_payloads_are_refused_with_redis_texts() {
        assert_eq!(deserialize(b"...").unwrap_err(), Reply::err(BAD_PAYLOAD));
        // A valid footer over a body that lies about its length.
        let mut forged = vec![TYPE_LIST, 0x80, 0xff, 0xff, 0xff, 0xff];
        forged.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64(&forged);
        forged.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(deserialize(&forged).unwrap_err(), Reply::err(BAD_FORMAT));
        // A newer RDB version.
        let mut newer = vec![TYPE_STRING, 1, b'x'];
        newer.extend_from_slice(&(RDB_VERSION + 1).to_le_bytes());
        let crc = crc64(&newer);
        newer.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(deserialize(&newer).unwrap_err(), Reply::err(BAD_PAYLOAD));
    }
}
