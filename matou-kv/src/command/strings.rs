//! The string and key commands beyond GET/SET: ranges (GETRANGE,
//! SETRANGE), bits (GETBIT, SETBIT, BITCOUNT, BITPOS, BITOP), INCRBYFLOAT,
//! GETEX, RENAME, COPY, LCS, RANDOMKEY, TOUCH, EXPIRETIME, OBJECT (ENCODING,
//! FREQ, IDLETIME), MEMORY USAGE,
//! TIME and WAIT, with Redis 7.0's replies and range rules.
//!
//! Writes keep the parent module's rule: one record that replays the
//! change without a clock. SETRANGE and SETBIT are logged as a `SetRange`
//! of the bytes they wrote (a bitmap's SETBIT logs one byte, not the
//! bitmap); INCRBYFLOAT as the `Set` of its result with the key's expiry;
//! RENAME as one `Multi` of the source's `Del` and the destination's `Set`,
//! so a log cut never holds one without the other.

use super::exec::Tx;
use super::{BitOp, Expiry, Read, Write, MAX_STRING, TOO_BIG};
use crate::record::LogRecord;
use crate::resp::Reply;
use crate::server::notify::Class;
use crate::store::{Store, Value};
use std::borrow::Cow;

/// `ERR value is not a valid float`.
pub const NOT_FLOAT: &str = "ERR value is not a valid float";

fn now_i64(now: u64) -> i64 {
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// Redis's clamp of an inclusive `[start, end]` range over `len` items
/// (negative: from the end): `None` when it selects nothing.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (fix(start), fix(end).min(len - 1));
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize))
}

/// Runs one of this module's reads.
pub(super) fn read(cmd: &Read, store: &Store, now: u64) -> Reply {
    // The lookups that count as an access (Redis's lookupKey without
    // LOOKUP_NOTOUCH) use `read`; OBJECT and MEMORY use `get` / `entry`.
    let value = |k: &[u8]| store.read(k, now).unwrap_or_default();
    match cmd {
        Read::GetRange { key, start, end } => {
            let v = value(key);
            match clamp_range(*start, *end, v.len()) {
                Some((s, e)) => Reply::Bulk(v[s..=e].to_vec()),
                None => Reply::Bulk(Vec::new()),
            }
        }
        Read::RandomKey => Reply::opt_bulk(store.random_key(random_seed(), now)),
        Read::Touch(keys) => {
            Reply::Integer(keys.iter().filter(|k| store.read(k, now).is_some()).count() as i64)
        }
        Read::ExpireTime { key, ms } => Reply::Integer(match store.entry(key, now) {
            None => -2,
            Some(e) => match e.expire_at {
                None => -1,
                Some(t) => {
                    let t = now_i64(t);
                    if *ms {
                        t
                    } else {
                        t.saturating_add(500) / 1000
                    }
                }
            },
        }),
        Read::Time => {
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Reply::Array(vec![
                Reply::Bulk(since.as_secs().to_string().into_bytes()),
                Reply::Bulk(since.subsec_micros().to_string().into_bytes()),
            ])
        }
        // No replica exists: none acknowledged anything.
        Read::Wait => Reply::Integer(0),
        Read::GetBit { key, offset } => {
            let v = value(key);
            let byte = usize::try_from(offset >> 3).unwrap_or(usize::MAX);
            let bit = v.get(byte).map_or(0, |b| (b >> (7 - (offset & 7))) & 1);
            Reply::Integer(i64::from(bit))
        }
        Read::BitCount { key, range } => Reply::Integer(bitcount(value(key), *range)),
        Read::BitPos {
            key,
            bit,
            start,
            end,
            bit_unit,
        } => match store.read(key, now) {
            // A missing key is an empty string padded with zeros.
            None => Reply::Integer(if *bit { -1 } else { 0 }),
            Some(v) => Reply::Integer(bitpos(v, *bit, *start, *end, *bit_unit)),
        },
        Read::Lcs {
            keys,
            len,
            idx,
            min_match,
            with_len,
        } => lcs(
            value(&keys.0),
            value(&keys.1),
            *len,
            *idx,
            *min_match,
            *with_len,
        ),
        Read::ObjectEncoding(key) => match store.value(key, now) {
            None => Reply::Nil,
            Some(Value::Str(_)) if store.changed_in_place(key) => Reply::Bulk(b"raw".to_vec()),
            Some(v) => Reply::Bulk(v.encoding().as_bytes().to_vec()),
        },
        Read::ObjectFreq(key) => match store.lfu_freq(key, now) {
            None => Reply::Nil,
            // The counters under an LFU maxmemory-policy (`store::evict`).
            Some(f) if store.lfu_params().enabled => Reply::Integer(i64::from(f)),
            Some(_) => Reply::err(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                 Please note that when switching between policies at runtime LRU and LFU data \
                 will take some time to adjust.",
            ),
        },
        Read::ObjectIdleTime(key) => match store.entry(key, now) {
            None => Reply::Nil,
            Some(_) => Reply::Integer(store.idle_ms(key, now).map_or(0, |ms| ms / 1000) as i64),
        },
        // Values are never shared here, but Redis shares one object per
        // integer 0-9999 (refcount INT_MAX) unless an LFU policy needs
        // per-key counters; clients and Redis's tests read that.
        Read::ObjectRefCount(key) => match store.entry(key, now) {
            None => Reply::Nil,
            Some(e) => {
                let shared = !store.lfu_params().enabled
                    && e.value.as_str().is_some_and(|v| {
                        std::str::from_utf8(v)
                            .ok()
                            .and_then(|t| t.parse::<u16>().ok())
                            .is_some_and(|n| n < 10_000 && n.to_string().as_bytes() == v)
                    });
                Reply::Integer(if shared { i64::from(i32::MAX) } else { 1 })
            }
        },
        Read::ObjectHelp => Reply::Array(
            [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
                "HELP",
                "    Prints this help.",
            ]
            .into_iter()
            .map(|l| Reply::Simple(Cow::Borrowed(l)))
            .collect(),
        ),
        Read::MemoryUsage(key) => match store.entry(key, now) {
            None => Reply::Nil,
            Some(e) => Reply::Integer(Store::value_cost(e.key.len(), e.value) as i64),
        },
        other => unreachable!("{other:?} is not a string or key read"),
    }
}

/// A fresh random number (the standard library's per-map random keys).
pub(super) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A bit range `[start, end]` in bits as BITCOUNT and BITPOS see it: the
/// range in the command's unit (bytes unless `bit_unit`), clamped.
fn bit_range(len: usize, start: i64, end: i64, bit_unit: bool) -> Option<(u64, u64)> {
    let total = if bit_unit { len.saturating_mul(8) } else { len };
    let (s, e) = clamp_range(start, end, total)?;
    Some(if bit_unit {
        (s as u64, e as u64)
    } else {
        (s as u64 * 8, e as u64 * 8 + 7)
    })
}

fn bit_at(v: &[u8], i: u64) -> bool {
    (v[(i >> 3) as usize] >> (7 - (i & 7))) & 1 == 1
}

fn bitcount(v: &[u8], range: Option<(i64, i64, bool)>) -> i64 {
    let (start, end) = match range {
        None => (0, (v.len() as u64 * 8).saturating_sub(1)),
        Some((s, e, unit)) => match bit_range(v.len(), s, e, unit) {
            Some(r) => r,
            None => return 0,
        },
    };
    if v.is_empty() {
        return 0;
    }
    let (first, last) = ((start >> 3) as usize, (end >> 3) as usize);
    let whole: u32 = v[first..=last].iter().map(|b| b.count_ones()).sum();
    // Take off the bits of the edge bytes outside the range.
    let head = (start & 7) as u32;
    let tail = 7 - (end & 7) as u32;
    let head_bits = (u32::from(v[first]) >> (8 - head)).count_ones() * u32::from(head > 0);
    let tail_bits = (u32::from(v[last]) & ((1 << tail) - 1)).count_ones();
    i64::from(whole - head_bits - tail_bits)
}

fn bitpos(v: &[u8], bit: bool, start: Option<i64>, end: Option<i64>, bit_unit: bool) -> i64 {
    let total = if bit_unit { v.len() * 8 } else { v.len() };
    let last = i64::try_from(total).unwrap_or(i64::MAX) - 1;
    let Some((s, e)) = bit_range(v.len(), start.unwrap_or(0), end.unwrap_or(last), bit_unit) else {
        return -1;
    };
    let skip = if bit { 0x00 } else { 0xff };
    let mut i = s;
    while i <= e {
        if i & 7 == 0 && i + 7 <= e && v[(i >> 3) as usize] == skip {
            i += 8;
            continue;
        }
        if bit_at(v, i) == bit {
            return i as i64;
        }
        i += 1;
    }
    // Looking for a clear bit with no end given: the string is padded
    // with zeros on the right, as Redis says.
    if !bit && end.is_none() {
        e as i64 + 1
    } else {
        -1
    }
}

/// Redis 7.0's `lcsCommand`: the dynamic-programming table, then the walk
/// back that yields the string and the matching ranges (longest last).
fn lcs(a: &[u8], b: &[u8], len: bool, idx: bool, min_match: usize, with_len: bool) -> Reply {
    let cells = (a.len() + 1).checked_mul(b.len() + 1);
    if cells.is_none_or(|c| c.saturating_mul(4) > MAX_STRING) {
        return Reply::err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let w = b.len() + 1;
    let mut t = vec![0u32; (a.len() + 1) * w];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[a.len() * w + b.len()] as usize;
    if len {
        return Reply::Integer(total as i64);
    }
    let mut out = vec![0u8; total];
    let mut matches = Vec::new();
    let (mut i, mut j, mut k) = (a.len(), b.len(), total);
    let none = a.len();
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (none, 0, 0, 0);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            out[k - 1] = a[i - 1];
            if a_start == none {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            (i, j, k) = (i - 1, j - 1, k - 1);
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = a_start != none;
        }
        if emit {
            let n = a_end - a_start + 1;
            if idx && (min_match == 0 || n >= min_match) {
                let range = |s: usize, e: usize| {
                    Reply::Array(vec![Reply::Integer(s as i64), Reply::Integer(e as i64)])
                };
                let mut m = vec![range(a_start, a_end), range(b_start, b_end)];
                if with_len {
                    m.push(Reply::Integer(n as i64));
                }
                matches.push(Reply::Array(m));
            }
            a_start = none;
        }
    }
    if idx {
        let word = |s: &'static str| Reply::Bulk(s.as_bytes().to_vec());
        Reply::Map(vec![
            (word("matches"), Reply::Array(matches)),
            (word("len"), Reply::Integer(total as i64)),
        ])
    } else {
        Reply::Bulk(out)
    }
}

/// A float as Redis's `string2ld` accepts it: no white space around, no
/// NaN, within 5 KiB.
pub(super) fn parse_float(b: &[u8]) -> Option<f64> {
    if b.is_empty() || b.len() > 5 * 1024 || b[0].is_ascii_whitespace() {
        return None;
    }
    let f: f64 = std::str::from_utf8(b).ok()?.parse().ok()?;
    (!f.is_nan()).then_some(f)
}

/// INCRBYFLOAT's result text: the shortest decimal that reads back as the
/// same double, no exponent, no negative zero (Redis's human-friendly
/// form; Redis computes in long double, this in double).
pub(super) fn float_text(f: f64) -> Vec<u8> {
    let f = if f == 0.0 { 0.0 } else { f };
    format!("{f}").into_bytes()
}

fn set_record(key: Vec<u8>, value: Vec<u8>, expire_at_ms: Option<u64>) -> Option<LogRecord> {
    Some(LogRecord::Set {
        key,
        value,
        expire_at_ms,
    })
}

/// Writes `bytes` at `offset` of `key` (live or purged by `tx`): the new
/// length, and the record. A key that expired and was purged on the way is
/// logged as its DEL first, since a replaying store may still hold its old
/// value.
pub(super) fn set_range(
    tx: Tx<'_>,
    key: Vec<u8>,
    offset: usize,
    bytes: Vec<u8>,
) -> (Reply, Option<LogRecord>) {
    let n = tx.store.set_range(&key, offset, &bytes);
    let purged = tx.purged_any();
    let record = LogRecord::SetRange {
        key: key.clone(),
        offset: offset as u64,
        bytes,
    };
    let record = if purged {
        LogRecord::Multi(vec![LogRecord::Del { keys: vec![key] }, record])
    } else {
        record
    };
    (Reply::Integer(n as i64), Some(record))
}

/// Runs one of this module's writes.
pub(super) fn write(cmd: Write, mut tx: Tx<'_>) -> (Reply, Option<LogRecord>) {
    let now = tx.now;
    match cmd {
        Write::GetEx { key, expiry } => {
            let at = match expiry {
                Some(Expiry::In(ms)) => match now_i64(now).checked_add(ms) {
                    Some(t) => Some(t),
                    None => return (super::invalid_expire("getex"), None),
                },
                Some(Expiry::At(t)) => Some(t),
                _ => None,
            };
            let Some((value, current)) = tx.live(&key).map(|(v, e)| (v.to_vec(), e)) else {
                return tx.done(Reply::Nil);
            };
            let reply = Reply::Bulk(value);
            match (expiry, at) {
                (Some(Expiry::Clear), _) if current.is_some() => {
                    tx.store.set_expire(&key, None);
                    tx.store.notify(Class::GENERIC, "persist", &key);
                    (reply, Some(LogRecord::Persist { key }))
                }
                (_, Some(at)) if at <= now_i64(now) => {
                    tx.store.remove(&key);
                    tx.store.notify(Class::GENERIC, "del", &key);
                    (reply, Some(LogRecord::Del { keys: vec![key] }))
                }
                (_, Some(at)) => {
                    let at = at as u64;
                    tx.store.set_expire(&key, Some(at));
                    tx.store.notify(Class::GENERIC, "expire", &key);
                    (reply, Some(LogRecord::PExpireAt { key, at_ms: at }))
                }
                _ => tx.done(reply),
            }
        }
        Write::SetRange { key, offset, value } => {
            let current = tx.live(&key).map(|(v, _)| v.len());
            if value.is_empty() {
                return tx.done(Reply::Integer(current.map_or(0, |n| n as i64)));
            }
            if offset.saturating_add(value.len()) > MAX_STRING {
                return tx.done(Reply::err(TOO_BIG));
            }
            tx.store.notify(Class::STRING, "setrange", &key);
            set_range(tx, key, offset, value)
        }
        Write::IncrByFloat { key, by } => {
            let (cur, expire_at) = match tx.live(&key) {
                None => (0.0, None),
                Some((v, e)) => match parse_float(v) {
                    Some(f) => (f, e),
                    None => return tx.done(Reply::err(NOT_FLOAT)),
                },
            };
            let Some(by) = parse_float(&by) else {
                return tx.done(Reply::err(NOT_FLOAT));
            };
            let new = cur + by;
            if !new.is_finite() {
                return tx.done(Reply::err("ERR increment would produce NaN or Infinity"));
            }
            let text = float_text(new);
            tx.store.set(&key, text.clone(), expire_at);
            tx.store.notify(Class::STRING, "incrbyfloat", &key);
            (Reply::Bulk(text.clone()), set_record(key, text, expire_at))
        }
        Write::Rename { from, to, nx } => {
            tx.purge(&from);
            let Some((value, expire_at)) = tx.store.shared(&from) else {
                return tx.done(Reply::err("ERR no such key"));
            };
            let ok = || if nx { Reply::Integer(1) } else { Reply::ok() };
            if from == to {
                return tx.done(if nx { Reply::Integer(0) } else { Reply::ok() });
            }
            if nx && tx.live(&to).is_some() {
                return tx.done(Reply::Integer(0));
            }
            // An expired `to` purged above is overwritten by the Set.
            tx.store.remove(&from);
            tx.store.put_arc(&to, value.clone(), expire_at);
            tx.store.notify(Class::GENERIC, "rename_from", &from);
            tx.store.notify(Class::GENERIC, "rename_to", &to);
            let record = LogRecord::Multi(vec![
                LogRecord::Del { keys: vec![from] },
                LogRecord::put(to, value, expire_at),
            ]);
            (ok(), Some(record))
        }
        Write::Copy { db: Some(d), .. } if d != 0 => (
            Reply::err("ERR this command needs the databases of the server"),
            None,
        ),
        Write::Copy {
            from, to, replace, ..
        } => {
            if from == to {
                return (
                    Reply::err("ERR source and destination objects are the same"),
                    None,
                );
            }
            let src = tx
                .store
                .contains(&from, now)
                .then(|| tx.store.shared(&from))
                .flatten();
            let Some((value, expire_at)) = src else {
                return tx.done(Reply::Integer(0));
            };
            if !replace && tx.live(&to).is_some() {
                return tx.done(Reply::Integer(0));
            }
            tx.store.put_arc(&to, value.clone(), expire_at);
            tx.store.notify(Class::GENERIC, "copy_to", &to);
            (
                Reply::Integer(1),
                Some(LogRecord::put(to, value, expire_at)),
            )
        }
        Write::SetBit { key, offset, bit } => {
            let byte = (offset >> 3) as usize;
            let mask = 1u8 << (7 - (offset & 7));
            let old = tx
                .live(&key)
                .and_then(|(v, _)| v.get(byte).copied())
                .unwrap_or(0);
            let new = if bit { old | mask } else { old & !mask };
            tx.store.notify(Class::STRING, "setbit", &key);
            let (reply, record) = set_range(tx, key, byte, vec![new]);
            debug_assert!(!reply.is_error());
            (Reply::Integer(i64::from(old & mask != 0)), record)
        }
        Write::BitOp { op, dest, keys } => {
            let result = {
                let values: Vec<&[u8]> = keys
                    .iter()
                    .map(|k| tx.store.get(k, now).unwrap_or_default())
                    .collect();
                let n = values.iter().map(|v| v.len()).max().unwrap_or(0);
                let byte = |v: &[u8], i: usize| v.get(i).copied().unwrap_or(0);
                (0..n)
                    .map(|i| {
                        let mut it = values.iter().map(|v| byte(v, i));
                        let first = it.next().unwrap_or(0);
                        match op {
                            BitOp::And => it.fold(first, |a, b| a & b),
                            BitOp::Or => it.fold(first, |a, b| a | b),
                            BitOp::Xor => it.fold(first, |a, b| a ^ b),
                            BitOp::Not => !first,
                        }
                    })
                    .collect::<Vec<u8>>()
            };
            let n = result.len() as i64;
            if result.is_empty() {
                // Redis deletes the destination of an empty result.
                let removed = tx.store.remove(&dest);
                if removed {
                    tx.store.notify(Class::GENERIC, "del", &dest);
                }
                let record = removed.then(|| LogRecord::Del { keys: vec![dest] });
                return (Reply::Integer(0), record);
            }
            tx.store.set(&dest, result.clone(), None);
            tx.store.notify(Class::STRING, "set", &dest);
            (Reply::Integer(n), set_record(dest, result, None))
        }
        other => unreachable!("{other:?} is not a string or key write"),
    }
}

/// The keys a write of this module may change, for the undo journal.
pub(super) fn touched(cmd: &Write) -> Vec<&[u8]> {
    match cmd {
        Write::GetEx { key, .. }
        | Write::SetRange { key, .. }
        | Write::IncrByFloat { key, .. }
        | Write::SetBit { key, .. } => vec![key],
        Write::Rename { from, to, .. } | Write::Copy { from, to, .. } => vec![from, to],
        Write::BitOp { dest, .. } => vec![dest],
        _ => Vec::new(),
    }
}
