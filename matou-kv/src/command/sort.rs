//! SORT and SORT_RO: the elements of a list, set or sorted set, ordered by
//! themselves (as numbers, or ALPHA as bytes) or by the values of other
//! keys (`BY weight_*`, `BY obj_*->field`), limited (LIMIT), mapped through
//! GET patterns (`GET #`, `GET data_*`, `GET obj_*->field`), and answered
//! or stored (STORE) as a list, with Redis 7.0's replies and errors
//! (`sort.c`).
//!
//! Invariants:
//! - A SORT without STORE (and every SORT_RO) is a read: it changes
//!   nothing and logs nothing. A SORT ... STORE is a write whose one record
//!   is its destination, whole ([`LogRecord::put`], a list without expiry),
//!   or the DEL of the destination when the result is empty, so a replay
//!   never re-sorts (the BY and GET keys may have changed since).
//! - Only the sorted key is type-checked (WRONGTYPE); a BY or GET key that
//!   is absent or of another type reads as missing, as in Redis.
//! - `BY` a pattern without `*` (`nosort`) keeps the native order (a
//!   list's, a sorted set's by score); a set has none, so a STORE of it is
//!   sorted ALPHA instead, to make the stored list deterministic, as Redis
//!   does for replication.

use super::exec::Tx;
use super::{Read, Write, NOT_INTEGER, SYNTAX, WRONGTYPE};
use crate::record::LogRecord;
use crate::resp::{parse_i64, Reply};
use crate::server::notify::Class;
use crate::store::zset::parse_score;
use crate::store::{Store, Value};
use std::cmp::Ordering;
use std::collections::VecDeque;

/// Redis's reply when a numeric SORT meets a value that is not a number.
pub const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// A parsed SORT / SORT_RO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The list, set or sorted set sorted.
    pub key: Vec<u8>,
    /// BY pattern (with a `*`: sort by the values it names).
    by: Option<Vec<u8>>,
    /// A BY pattern without `*` was given: no sorting at all.
    dontsort: bool,
    /// LIMIT offset count, as given.
    limit: Option<(i64, i64)>,
    /// GET patterns, in order.
    get: Vec<Vec<u8>>,
    /// DESC.
    desc: bool,
    /// ALPHA.
    alpha: bool,
    /// STORE destination (never for SORT_RO).
    pub store: Option<Vec<u8>>,
}

/// Whether `name` is one of this module's commands.
pub(super) fn owns(name: &str) -> bool {
    matches!(name, "sort" | "sort_ro")
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Parses SORT / SORT_RO (`args[0]` the name, `args[1]` the key) as Redis
/// does: options in any order, a later one overriding an earlier one
/// (the last STORE wins), STORE unknown to SORT_RO.
///
/// # Errors
/// `ERR syntax error`, or the integer error of a LIMIT argument.
pub fn parse_sort(args: &[Vec<u8>], readonly: bool) -> Result<Sort, Reply> {
    let mut s = Sort {
        key: args[1].clone(),
        by: None,
        dontsort: false,
        limit: None,
        get: Vec::new(),
        desc: false,
        alpha: false,
        store: None,
    };
    let mut j = 2;
    while j < args.len() {
        let a = &args[j];
        let left = args.len() - j - 1;
        if is(a, "asc") {
            s.desc = false;
        } else if is(a, "desc") {
            s.desc = true;
        } else if is(a, "alpha") {
            s.alpha = true;
        } else if is(a, "limit") && left >= 2 {
            let n = |b: &[u8]| parse_i64(b).ok_or_else(|| Reply::err(NOT_INTEGER));
            s.limit = Some((n(&args[j + 1])?, n(&args[j + 2])?));
            j += 2;
        } else if !readonly && is(a, "store") && left >= 1 {
            s.store = Some(args[j + 1].clone());
            j += 1;
        } else if is(a, "by") && left >= 1 {
            let p = &args[j + 1];
            if !p.contains(&b'*') {
                s.dontsort = true;
            }
            s.by = Some(p.clone());
            j += 1;
        } else if is(a, "get") && left >= 1 {
            s.get.push(args[j + 1].clone());
            j += 1;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    Ok(s)
}

/// The command SORT / SORT_RO parse to: a write only with STORE.
pub(super) fn parse(name: &str, args: &[Vec<u8>]) -> Result<super::Command, Reply> {
    let s = parse_sort(args, name == "sort_ro")?;
    Ok(if s.store.is_some() {
        super::Command::Write(Write::Sort(s))
    } else {
        super::Command::Read(Read::Sort(s))
    })
}

/// An upper bound of the size of the record SORT ... STORE produces, from
/// its arguments alone: what it stores is bounded by what the store
/// holds, left to the frame check of what is produced (as a *STORE's).
pub(super) fn record_bound(s: &Sort) -> usize {
    64 + s.store.as_ref().map_or(0, |d| d.len() + 10)
}

/// The value `pattern` names for the element `elem` (Redis's
/// `lookupKeyByPattern`): `#` is the element itself; otherwise the first
/// `*` is replaced by the element to name a key, whose string it is, or,
/// when `->field` follows the `*`, that field of its hash. A pattern
/// without `*`, an absent key or one of another type: `None`.
fn lookup<'a>(store: &'a Store, pattern: &[u8], elem: &'a [u8], now: u64) -> Option<&'a [u8]> {
    if pattern == b"#" {
        return Some(elem);
    }
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    // `->` with nothing after it is part of the key's name.
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&f| f + 2 < after.len());
    let (suffix, field) = match arrow {
        Some(f) => (&after[..f], Some(&after[f + 2..])),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(star + elem.len() + suffix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(suffix);
    match (store.read_value(&key, now)?, field) {
        (Value::Str(v), None) => Some(v),
        (Value::Hash(h), Some(f)) => h.get(f).map(Vec::as_slice),
        _ => None,
    }
}

/// A number as SORT reads it (C's `strtod` over the whole string): leading
/// white space allowed, the empty string is 0, NaN and overflow refused.
fn sort_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() {
        return Some(0.0);
    }
    let t = b.trim_ascii_start();
    let f = parse_score(t)?;
    // `parse` reads 1e400 as infinity where strtod reports ERANGE.
    let spelled_inf = t
        .iter()
        .any(|c| c.eq_ignore_ascii_case(&b'i') || c.eq_ignore_ascii_case(&b'n'));
    (f.is_finite() || spelled_inf).then_some(f)
}

/// The elements of the sorted value in the order and range asked, before
/// GET. `Err` is the reply (WRONGTYPE, not a double).
fn sorted<'a>(s: &Sort, store: &'a Store, now: u64) -> Result<Vec<&'a [u8]>, Reply> {
    let value = match store.read_value(&s.key, now) {
        None => None,
        Some(v @ (Value::List(_) | Value::Set(_) | Value::ZSet(_))) => Some(v),
        Some(_) => return Err(Reply::err(WRONGTYPE)),
    };
    let (mut dontsort, mut alpha, mut by) = (s.dontsort, s.alpha, s.by.as_deref());
    if dontsort && matches!(value, Some(Value::Set(_))) && s.store.is_some() {
        (dontsort, alpha, by) = (false, true, None);
    }
    let len = match value {
        None => 0,
        Some(Value::List(l)) => l.len(),
        Some(Value::Set(m)) => m.len(),
        Some(Value::ZSet(z)) => z.len(),
        Some(_) => unreachable!("checked above"),
    };
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    // Redis's LIMIT arithmetic: an inclusive [start, end] within the
    // elements, empty when end < start.
    let (offset, count) = s.limit.unwrap_or((0, -1));
    let mut start = offset.max(0);
    let mut end = if count < 0 {
        len - 1
    } else {
        start.saturating_add(count).saturating_sub(1)
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    end = end.min(len - 1);
    let take = usize::try_from(end - start + 1).unwrap_or(0);
    let skip = usize::try_from(start).unwrap_or(0);

    // No sorting: the native order, the range taken directly.
    if dontsort {
        return Ok(match value {
            None => Vec::new(),
            Some(Value::List(l)) if s.desc => l
                .iter()
                .rev()
                .skip(skip)
                .take(take)
                .map(Vec::as_slice)
                .collect(),
            Some(Value::List(l)) => l.iter().skip(skip).take(take).map(Vec::as_slice).collect(),
            Some(Value::ZSet(z)) if s.desc => z
                .iter_rev_from(z.len().saturating_sub(1 + skip))
                .take(take)
                .map(|(m, _)| m)
                .collect(),
            Some(Value::ZSet(z)) => z.iter_from(skip).take(take).map(|(m, _)| m).collect(),
            Some(Value::Set(m)) => m.iter().skip(skip).take(take).map(Vec::as_slice).collect(),
            Some(_) => unreachable!("checked above"),
        });
    }

    let elems: Vec<&[u8]> = match value {
        None => Vec::new(),
        Some(Value::List(l)) => l.iter().map(Vec::as_slice).collect(),
        Some(Value::Set(m)) => m.iter().map(Vec::as_slice).collect(),
        Some(Value::ZSet(z)) => z.iter().map(|(m, _)| m).collect(),
        Some(_) => unreachable!("checked above"),
    };
    let by_value = |e: &'a [u8]| match by {
        Some(p) => lookup(store, p, e, now),
        None => Some(e),
    };
    let mut ordered: Vec<&[u8]> = if alpha {
        // The missing BY values first; equal ones in no particular order.
        let mut keyed: Vec<(Option<&[u8]>, &[u8])> =
            elems.into_iter().map(|e| (by_value(e), e)).collect();
        keyed.sort_by(|a, b| {
            let o = if by.is_some() {
                a.0.cmp(&b.0)
            } else {
                a.1.cmp(b.1)
            };
            if s.desc {
                o.reverse()
            } else {
                o
            }
        });
        keyed.into_iter().map(|(_, e)| e).collect()
    } else {
        let mut keyed = Vec::with_capacity(elems.len());
        for e in elems {
            // A missing BY value counts as 0.
            let score = match by_value(e) {
                None => 0.0,
                Some(v) => sort_score(v).ok_or_else(|| Reply::err(NOT_DOUBLE))?,
            };
            keyed.push((score, e));
        }
        // Equal scores sub-sort by the elements' bytes: deterministic.
        keyed.sort_by(|a, b| {
            let o =
                a.0.partial_cmp(&b.0)
                    .unwrap_or(Ordering::Equal)
                    .then(a.1.cmp(b.1));
            if s.desc {
                o.reverse()
            } else {
                o
            }
        });
        keyed.into_iter().map(|(_, e)| e).collect()
    };
    ordered = ordered.into_iter().skip(skip).take(take).collect();
    Ok(ordered)
}

/// The output: the elements themselves, or per element one value per GET
/// pattern (`None` when it names nothing).
fn output<'a>(s: &Sort, store: &'a Store, now: u64) -> Result<Vec<Option<&'a [u8]>>, Reply> {
    let elems = sorted(s, store, now)?;
    if s.get.is_empty() {
        return Ok(elems.into_iter().map(Some).collect());
    }
    Ok(elems
        .into_iter()
        .flat_map(|e| s.get.iter().map(move |p| lookup(store, p, e, now)))
        .collect())
}

/// Runs a SORT without STORE, or a SORT_RO.
pub(super) fn read(s: &Sort, store: &Store, now: u64) -> Reply {
    match output(s, store, now) {
        Ok(out) => Reply::Array(
            out.into_iter()
                .map(|v| v.map_or(Reply::Nil, |v| Reply::Bulk(v.to_vec())))
                .collect(),
        ),
        Err(e) => e,
    }
}

/// Runs a SORT ... STORE: the destination becomes the output as a list
/// (a GET naming nothing stores an empty string), or is deleted if the
/// output is empty; the reply is the output's length.
pub(super) fn write(s: Sort, mut tx: Tx<'_>) -> (Reply, Option<LogRecord>) {
    let dest = s.store.clone().expect("a write SORT has a STORE");
    tx.purge(&s.key);
    tx.purge(&dest);
    let list: VecDeque<Vec<u8>> = match output(&s, tx.store, tx.now) {
        Ok(out) => out
            .into_iter()
            .map(|v| v.unwrap_or_default().to_vec())
            .collect(),
        Err(e) => return tx.done(e),
    };
    let n = list.len() as i64;
    match super::set::store_whole(&mut tx, dest, Value::List(list), (Class::LIST, "sortstore")) {
        Some(rec) => tx.logged(Reply::Integer(n), rec),
        None => tx.done(Reply::Integer(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::execute;
    use crate::resp::Reply;
    use crate::store::Store;

    fn run(st: &mut Store, args: &str) -> Reply {
        let a: Vec<Vec<u8>> = args.split(' ').map(|s| s.as_bytes().to_vec()).collect();
        execute(st, &a, 1_000).0
    }

    fn bulks(items: &[&str]) -> Reply {
        Reply::Array(
            items
                .iter()
                .map(|s| Reply::Bulk(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn sorted_set_by_nosort_keeps_score_order_both_ways() {
        let mut st = Store::new();
        run(&mut st, "zadd z 1 a 5 b 2 c 10 d 3 e");
        assert_eq!(
            run(&mut st, "sort z by nosort"),
            bulks(&["a", "c", "e", "b", "d"])
        );
        assert_eq!(
            run(&mut st, "sort z by nosort desc"),
            bulks(&["d", "b", "e", "c", "a"])
        );
        assert_eq!(
            run(&mut st, "sort z by nosort desc limit 1 2"),
            bulks(&["b", "e"])
        );
        assert_eq!(run(&mut st, "sort z by nosort limit 5 10"), bulks(&[]));
        assert_eq!(
            run(&mut st, "sort z by nosort limit -10 100"),
            bulks(&["a", "c", "e", "b", "d"])
        );
    }

    #[test]
    fn numbers_sort_by_value_then_bytes_and_bad_ones_are_refused() {
        let mut st = Store::new();
        run(&mut st, "rpush l 10 2 1.5 -3 2");
        assert_eq!(
            run(&mut st, "sort l"),
            bulks(&["-3", "1.5", "2", "2", "10"])
        );
        assert_eq!(
            run(&mut st, "sort l alpha"),
            bulks(&["-3", "1.5", "10", "2", "2"])
        );
        run(&mut st, "rpush l x");
        assert_eq!(run(&mut st, "sort l"), Reply::err(super::NOT_DOUBLE));
    }

    #[test]
    fn by_and_get_patterns_read_strings_and_hash_fields() {
        let mut st = Store::new();
        run(&mut st, "rpush l a b c");
        run(&mut st, "mset w_a 3 w_b 1 w_c 2");
        run(&mut st, "hset h_a f x");
        assert_eq!(run(&mut st, "sort l by w_*"), bulks(&["b", "c", "a"]));
        let got = run(&mut st, "sort l by w_* get # get h_*->f");
        let want = Reply::Array(vec![
            Reply::Bulk(b"b".to_vec()),
            Reply::Nil,
            Reply::Bulk(b"c".to_vec()),
            Reply::Nil,
            Reply::Bulk(b"a".to_vec()),
            Reply::Bulk(b"x".to_vec()),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn store_writes_a_list_and_an_empty_result_deletes_the_destination() {
        let mut st = Store::new();
        run(&mut st, "rpush l 3 1 2");
        assert_eq!(run(&mut st, "sort l store d"), Reply::Integer(3));
        assert_eq!(run(&mut st, "lrange d 0 -1"), bulks(&["1", "2", "3"]));
        assert_eq!(run(&mut st, "sort nothing store d"), Reply::Integer(0));
        assert_eq!(run(&mut st, "exists d"), Reply::Integer(0));
        assert_eq!(run(&mut st, "sort_ro l store d"), Reply::err(super::SYNTAX));
        run(&mut st, "set s x");
        assert_eq!(run(&mut st, "sort s"), Reply::err(super::WRONGTYPE));
    }
}
