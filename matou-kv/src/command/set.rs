//! The set commands: SADD, SREM, SISMEMBER, SMISMEMBER, SMEMBERS, SCARD,
//! SPOP, SRANDMEMBER, SINTER, SUNION, SDIFF and their *STORE forms,
//! SINTERCARD, SMOVE and SSCAN, with Redis 7.0's replies and errors.
//!
//! Every change is one record: the members it added
//! ([`LogRecord::SAdd`]) or removed ([`LogRecord::SRem`]; SPOP logs what it
//! popped, so replay draws nothing), SMOVE both in one `Multi`, and a
//! *STORE its destination whole ([`LogRecord::put`]) or its DEL when the
//! result is empty. A set whose last member goes is deleted
//! ([`Store::update`]). Every key a command names is type-checked before
//! anything changes: one of another type answers WRONGTYPE.

use super::exec::Tx;
use super::scan::{parse_cursor_args, pick, rand_count, Cursor, Rng};
use super::{NOT_INTEGER, SYNTAX, WRONGTYPE};
use crate::record::LogRecord;
use crate::resp::{parse_i64, Reply};
use crate::server::notify::Class;
use crate::store::{Store, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// A set's content.
type Members = HashSet<Vec<u8>>;

/// SINTER, SUNION or SDIFF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// Members in every set.
    Inter,
    /// Members in any set.
    Union,
    /// Members of the first set in none of the others.
    Diff,
}

/// A set read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetRead {
    /// SISMEMBER key member.
    IsMember(Vec<u8>, Vec<u8>),
    /// SMISMEMBER key member...
    MIsMember(Vec<u8>, Vec<Vec<u8>>),
    /// SMEMBERS key.
    Members(Vec<u8>),
    /// SCARD key.
    Card(Vec<u8>),
    /// SRANDMEMBER key [count] (`None`: one member or nil).
    RandMember(Vec<u8>, Option<i64>),
    /// SINTER / SUNION / SDIFF key...
    Combine(SetOp, Vec<Vec<u8>>),
    /// SINTERCARD numkeys key... [LIMIT limit] (0: no limit).
    InterCard(Vec<Vec<u8>>, usize),
    /// SSCAN key cursor [MATCH p] [COUNT n].
    Scan(Vec<u8>, Cursor),
}

/// A set write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetWrite {
    /// SADD key member...
    Add(Vec<u8>, Vec<Vec<u8>>),
    /// SREM key member...
    Rem(Vec<u8>, Vec<Vec<u8>>),
    /// SPOP key [count] (`None`: one member or nil).
    Pop(Vec<u8>, Option<usize>),
    /// SINTERSTORE / SUNIONSTORE / SDIFFSTORE destination key...
    Store(SetOp, Vec<u8>, Vec<Vec<u8>>),
    /// SMOVE source destination member.
    Move(Vec<u8>, Vec<u8>, Vec<u8>),
}

/// Whether `name` is one of this module's commands.
pub fn owns(name: &str) -> bool {
    matches!(
        name,
        "sadd"
            | "srem"
            | "sismember"
            | "smismember"
            | "smembers"
            | "scard"
            | "spop"
            | "srandmember"
            | "sinter"
            | "sunion"
            | "sdiff"
            | "sinterstore"
            | "sunionstore"
            | "sdiffstore"
            | "sintercard"
            | "smove"
            | "sscan"
    )
}

/// `numkeys key...` of SINTERCARD / ZINTERCARD / ZUNION...: the keys, and
/// the arguments after them.
///
/// # Errors
/// Redis's errors for a numkeys that is not a positive integer or names
/// more keys than there are arguments.
pub(super) fn numkeys(args: &[Vec<u8>], at: usize) -> Result<(Vec<Vec<u8>>, usize), Reply> {
    // Redis reads numkeys as a positive integer, with one error for both.
    let n = parse_i64(&args[at])
        .filter(|&n| n > 0)
        .ok_or(Reply::err("ERR numkeys should be greater than 0"))?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let first = at + 1;
    if n > args.len() - first {
        return Err(Reply::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok((args[first..first + n].to_vec(), first + n))
}

/// `LIMIT n` (the only option after SINTERCARD / ZINTERCARD's keys).
pub(super) fn limit_option(args: &[Vec<u8>], mut i: usize) -> Result<usize, Reply> {
    let mut limit = 0;
    while i < args.len() {
        if args[i].eq_ignore_ascii_case(b"limit") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1])
                .filter(|&n| n >= 0)
                .ok_or(Reply::err("ERR LIMIT can't be negative"))?;
            limit = usize::try_from(n).unwrap_or(usize::MAX);
            i += 2;
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }
    Ok(limit)
}

/// Parses one of this module's commands (arity already checked).
pub(super) fn parse(name: &str, args: &[Vec<u8>]) -> Result<super::Command, Reply> {
    use super::Command::{Read as R, Write as W};
    let key = args[1].clone();
    let rest = || args[2..].to_vec();
    let read = |r: SetRead| R(super::Read::Sets(r));
    let write = |w: SetWrite| W(super::Write::Sets(w));
    let op = |n: &str| match n.trim_end_matches("store") {
        "sinter" => SetOp::Inter,
        "sunion" => SetOp::Union,
        _ => SetOp::Diff,
    };
    Ok(match name {
        "sadd" => write(SetWrite::Add(key, rest())),
        "srem" => write(SetWrite::Rem(key, rest())),
        "sismember" => read(SetRead::IsMember(key, args[2].clone())),
        "smismember" => read(SetRead::MIsMember(key, rest())),
        "smembers" => read(SetRead::Members(key)),
        "scard" => read(SetRead::Card(key)),
        "spop" => {
            let count = match args.get(2) {
                None => None,
                Some(_) if args.len() > 3 => return Err(Reply::err(SYNTAX)),
                Some(c) => {
                    let n = parse_i64(c)
                        .ok_or(Reply::err("ERR value is out of range, must be positive"))?;
                    let n = usize::try_from(n)
                        .map_err(|_| Reply::err("ERR value is out of range, must be positive"))?;
                    Some(n)
                }
            };
            write(SetWrite::Pop(key, count))
        }
        "srandmember" => {
            let count = match args.get(2) {
                None => None,
                Some(_) if args.len() > 3 => return Err(Reply::err(SYNTAX)),
                Some(c) => Some(rand_count(parse_i64(c).ok_or(Reply::err(NOT_INTEGER))?, 1)?),
            };
            read(SetRead::RandMember(key, count))
        }
        "sinter" | "sunion" | "sdiff" => read(SetRead::Combine(op(name), args[1..].to_vec())),
        "sinterstore" | "sunionstore" | "sdiffstore" => {
            write(SetWrite::Store(op(name), key, rest()))
        }
        "sintercard" => {
            let (keys, next) = numkeys(args, 1)?;
            read(SetRead::InterCard(keys, limit_option(args, next)?))
        }
        "smove" => write(SetWrite::Move(key, args[2].clone(), args[3].clone())),
        "sscan" => read(SetRead::Scan(key, parse_cursor_args(args)?)),
        _ => return Err(Reply::err(SYNTAX)),
    })
}

/// The set at `key`: `Ok(None)` if absent, `Err` (WRONGTYPE) if another
/// type.
fn set<'a>(store: &'a Store, key: &[u8], now: u64) -> Result<Option<&'a Members>, Reply> {
    match store.read_value(key, now) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// The sets at `keys` (absent ones as `None`), or WRONGTYPE if any key
/// holds another type.
fn sets<'a>(
    store: &'a Store,
    keys: &[Vec<u8>],
    now: u64,
) -> Result<Vec<Option<&'a Members>>, Reply> {
    keys.iter().map(|k| set(store, k, now)).collect()
}

/// SINTER / SUNION / SDIFF of `sets` (absent ones empty).
fn combine(op: SetOp, sets: &[Option<&Members>]) -> Members {
    let empty = Members::new();
    let all: Vec<&Members> = sets.iter().map(|s| s.unwrap_or(&empty)).collect();
    match op {
        SetOp::Union => all.iter().flat_map(|s| s.iter().cloned()).collect(),
        SetOp::Inter => {
            // Walk the smallest, probe the others.
            let Some(small) = all.iter().min_by_key(|s| s.len()) else {
                return Members::new();
            };
            small
                .iter()
                .filter(|m| all.iter().all(|s| s.contains(*m)))
                .cloned()
                .collect()
        }
        SetOp::Diff => {
            let (first, others) = all.split_first().expect("at least one key");
            first
                .iter()
                .filter(|m| !others.iter().any(|s| s.contains(*m)))
                .cloned()
                .collect()
        }
    }
}

fn bulks<'a>(members: impl Iterator<Item = &'a Vec<u8>>) -> Vec<Reply> {
    members.map(|m| Reply::Bulk(m.clone())).collect()
}

/// Runs a set read.
pub(super) fn read(cmd: &SetRead, store: &Store, now: u64) -> Reply {
    match run_read(cmd, store, now) {
        Ok(r) | Err(r) => r,
    }
}

fn run_read(cmd: &SetRead, store: &Store, now: u64) -> Result<Reply, Reply> {
    Ok(match cmd {
        SetRead::IsMember(k, m) => Reply::Integer(i64::from(
            set(store, k, now)?.is_some_and(|s| s.contains(m)),
        )),
        SetRead::MIsMember(k, ms) => {
            let s = set(store, k, now)?;
            Reply::Array(
                ms.iter()
                    .map(|m| Reply::Integer(i64::from(s.is_some_and(|s| s.contains(m)))))
                    .collect(),
            )
        }
        SetRead::Members(k) => Reply::Set(bulks(set(store, k, now)?.into_iter().flatten())),
        SetRead::Card(k) => Reply::Integer(set(store, k, now)?.map_or(0, HashSet::len) as i64),
        SetRead::RandMember(k, count) => {
            let s = set(store, k, now)?;
            let mut rng = Rng::new();
            match (s, count) {
                (None, None) => Reply::Nil,
                (None, Some(_)) => Reply::Array(Vec::new()),
                (Some(s), None) => {
                    let i = rng.below(s.len());
                    Reply::Bulk(s.iter().nth(i).expect("in range").clone())
                }
                (Some(s), Some(c)) => {
                    let all: Vec<&Vec<u8>> = s.iter().collect();
                    let picked = pick(&mut rng, all.len(), *c);
                    Reply::Array(
                        picked
                            .into_iter()
                            .map(|i| Reply::Bulk(all[i].clone()))
                            .collect(),
                    )
                }
            }
        }
        SetRead::Combine(op, keys) => {
            let all = sets(store, keys, now)?;
            Reply::Set(bulks(combine(*op, &all).iter()))
        }
        SetRead::InterCard(keys, limit) => {
            let all = sets(store, keys, now)?;
            if all.iter().any(Option::is_none) {
                return Ok(Reply::Integer(0));
            }
            let all: Vec<&Members> = all.into_iter().flatten().collect();
            let small = all.iter().min_by_key(|s| s.len()).expect("numkeys > 0");
            let mut n = 0;
            for m in small.iter() {
                if all.iter().all(|s| s.contains(m)) {
                    n += 1;
                    if n == *limit {
                        break;
                    }
                }
            }
            Reply::Integer(n as i64)
        }
        SetRead::Scan(k, cursor) => {
            let s = set(store, k, now)?;
            let len = s.map_or(0, HashSet::len);
            cursor.step(
                len,
                s.into_iter().flatten().map(|m| (m.as_slice(), ())),
                |m, (), out| out.push(Reply::Bulk(m.to_vec())),
            )
        }
    })
}

/// The keys a set write may change, for the undo journal.
pub(super) fn touched(cmd: &SetWrite) -> Vec<&[u8]> {
    match cmd {
        SetWrite::Add(k, _) | SetWrite::Rem(k, _) | SetWrite::Pop(k, _) => vec![k],
        SetWrite::Store(_, dest, _) => vec![dest],
        SetWrite::Move(src, dst, _) => vec![src, dst],
    }
}

/// The members SADD / SREM change (journaled member by member; the other
/// writes journal their keys whole).
pub(super) fn members(cmd: &SetWrite) -> Option<(&[u8], &[Vec<u8>])> {
    match cmd {
        SetWrite::Add(k, ms) | SetWrite::Rem(k, ms) => Some((k, ms)),
        _ => None,
    }
}

/// An upper bound of the record's size.
pub(super) fn record_bound(cmd: &SetWrite) -> usize {
    let s = |b: &Vec<u8>| b.len() + 10;
    64 + match cmd {
        SetWrite::Add(k, ms) | SetWrite::Rem(k, ms) => s(k) + ms.iter().map(s).sum::<usize>(),
        // What is popped or stored is bounded by what the keys hold, which
        // a request cannot make larger than the log accepts: left to the
        // frame check of what is produced.
        SetWrite::Pop(k, _) => s(k),
        SetWrite::Store(_, d, ks) => s(d) + ks.iter().map(s).sum::<usize>(),
        SetWrite::Move(a, b, m) => 2 * (s(a) + s(b) + s(m)),
    }
}

/// Adds `members` to the set at `key` (created if absent): how many are
/// new. The caller checked the type.
pub fn add_members(store: &mut Store, key: &[u8], members: &[Vec<u8>]) -> usize {
    store.upsert(
        key,
        || Value::Set(HashSet::new()),
        |v| {
            let Value::Set(s) = v else {
                unreachable!("checked a set")
            };
            let (mut new, mut delta) = (0, 0isize);
            for m in members {
                if s.insert(m.clone()) {
                    new += 1;
                    delta += m.len() as isize;
                }
            }
            (new, delta)
        },
    )
}

/// Removes `members` from the set at `key`: the members removed, in order.
pub fn rem_members(store: &mut Store, key: &[u8], members: &[Vec<u8>]) -> Vec<Vec<u8>> {
    store
        .update(key, |v| {
            let Value::Set(s) = v else {
                return (Vec::new(), 0);
            };
            let (mut gone, mut delta) = (Vec::new(), 0isize);
            for m in members {
                if s.remove(m) {
                    delta -= m.len() as isize;
                    gone.push(m.clone());
                }
            }
            (gone, delta)
        })
        .unwrap_or_default()
}

/// Replaces `dest` with `result` (deleted if empty), without expiry: what
/// a *STORE does, notified as `event` of `class` (or `del` when it
/// removed `dest`). The record, if anything changed.
pub(super) fn store_whole(
    tx: &mut Tx<'_>,
    dest: Vec<u8>,
    result: Value,
    (class, event): (Class, &'static str),
) -> Option<LogRecord> {
    if result.is_empty_aggregate() {
        let removed = tx.store.remove(&dest);
        if removed {
            tx.store.notify(Class::GENERIC, "del", &dest);
        }
        return removed.then(|| LogRecord::Del { keys: vec![dest] });
    }
    let value = Arc::new(result);
    tx.store.put_arc(&dest, value.clone(), None);
    tx.store.notify(class, event, &dest);
    Some(LogRecord::put(dest, value, None))
}

/// Runs a set write.
pub(super) fn write(cmd: SetWrite, mut tx: Tx<'_>) -> (Reply, Option<LogRecord>) {
    for k in touched(&cmd) {
        tx.purge(k);
    }
    if let SetWrite::Store(_, _, keys) = &cmd {
        for k in keys {
            tx.purge(k);
        }
    }
    let now = tx.now;
    match cmd {
        SetWrite::Add(key, members) => {
            if let Err(e) = set(tx.store, &key, now) {
                return tx.done(e);
            }
            let new = add_members(tx.store, &key, &members);
            if new == 0 {
                return tx.done(Reply::Integer(0));
            }
            tx.notify_change(Class::SET, "sadd", &key);
            tx.logged(Reply::Integer(new as i64), LogRecord::SAdd { key, members })
        }
        SetWrite::Rem(key, members) => {
            if let Err(e) = set(tx.store, &key, now) {
                return tx.done(e);
            }
            let gone = rem_members(tx.store, &key, &members);
            if gone.is_empty() {
                return tx.done(Reply::Integer(0));
            }
            tx.notify_change(Class::SET, "srem", &key);
            let n = gone.len() as i64;
            tx.logged(Reply::Integer(n), LogRecord::SRem { key, members: gone })
        }
        SetWrite::Pop(key, count) => {
            let picked: Vec<Vec<u8>> = match set(tx.store, &key, now) {
                Err(e) => return tx.done(e),
                Ok(None) => Vec::new(),
                Ok(Some(s)) => {
                    let mut rng = Rng::new();
                    let want = count.unwrap_or(1);
                    if want >= s.len() {
                        s.iter().cloned().collect()
                    } else if want == 1 {
                        vec![s.iter().nth(rng.below(s.len())).expect("in range").clone()]
                    } else {
                        let all: Vec<&Vec<u8>> = s.iter().collect();
                        rng.distinct(all.len(), want)
                            .into_iter()
                            .map(|i| all[i].clone())
                            .collect()
                    }
                }
            };
            if picked.is_empty() {
                let r = if count.is_some() {
                    Reply::Set(Vec::new())
                } else {
                    Reply::Nil
                };
                return tx.done(r);
            }
            let gone = rem_members(tx.store, &key, &picked);
            tx.notify_change(Class::SET, "spop", &key);
            let reply = match count {
                None => Reply::Bulk(gone[0].clone()),
                Some(_) => Reply::Set(bulks(gone.iter())),
            };
            tx.logged(reply, LogRecord::SRem { key, members: gone })
        }
        SetWrite::Store(op, dest, keys) => {
            let result = match sets(tx.store, &keys, now) {
                Ok(all) => combine(op, &all),
                Err(e) => return tx.done(e),
            };
            let n = result.len() as i64;
            let event = match op {
                SetOp::Inter => "sinterstore",
                SetOp::Union => "sunionstore",
                SetOp::Diff => "sdiffstore",
            };
            match store_whole(&mut tx, dest, Value::Set(result), (Class::SET, event)) {
                Some(rec) => tx.logged(Reply::Integer(n), rec),
                None => tx.done(Reply::Integer(n)),
            }
        }
        SetWrite::Move(src, dst, member) => {
            // Redis answers 0 for an absent source before it checks the
            // destination's type.
            let from = match set(tx.store, &src, now) {
                Ok(Some(s)) => s,
                Ok(None) => return tx.done(Reply::Integer(0)),
                Err(e) => return tx.done(e),
            };
            let has = from.contains(&member);
            let to = match set(tx.store, &dst, now) {
                Ok(t) => t,
                Err(e) => return tx.done(e),
            };
            if !has {
                return tx.done(Reply::Integer(0));
            }
            if src == dst {
                return tx.done(Reply::Integer(1));
            }
            let in_dst = to.is_some_and(|s| s.contains(&member));
            let members = vec![member];
            rem_members(tx.store, &src, &members);
            tx.notify_change(Class::SET, "srem", &src);
            let srem = LogRecord::SRem {
                key: src,
                members: members.clone(),
            };
            if in_dst {
                return tx.logged(Reply::Integer(1), srem);
            }
            add_members(tx.store, &dst, &members);
            tx.store.notify(Class::SET, "sadd", &dst);
            let sadd = LogRecord::SAdd { key: dst, members };
            tx.logged(Reply::Integer(1), LogRecord::Multi(vec![srem, sadd]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::execute;
    use crate::record::LogRecord;
    use crate::resp::Reply;
    use crate::store::{Store, Value};
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    /// Runs `args` on `st` and applies its record (through its encoding)
    /// to `replica`.
    fn run(st: &mut Store, replica: &mut Store, args: &[String]) -> Reply {
        let a: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
        let (r, rec) = execute(st, &a, 1000);
        if let Some(rec) = rec {
            LogRecord::decode(&rec.to_bytes())
                .expect("decodes")
                .apply(replica);
        }
        r
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u8, Vec<u8>),
        Rem(u8, Vec<u8>),
        Pop(u8, u8),
        Move(u8, u8, u8),
        Store(u8, u8, u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let ms = || prop::collection::vec(0..8u8, 1..4);
        prop_oneof![
            (0..3u8, ms()).prop_map(|(k, m)| Op::Add(k, m)),
            (0..3u8, ms()).prop_map(|(k, m)| Op::Rem(k, m)),
            (0..3u8, 0..4u8).prop_map(|(k, n)| Op::Pop(k, n)),
            (0..3u8, 0..3u8, 0..8u8).prop_map(|(a, b, m)| Op::Move(a, b, m)),
            (0..3u8, 0..3u8, 0..3u8, 0..3u8).prop_map(|(o, d, a, b)| Op::Store(o, d, a, b)),
        ]
    }

    type Model = HashMap<String, HashSet<String>>;

    fn names(r: &Reply) -> Vec<String> {
        match r {
            Reply::Set(items) | Reply::Array(items) => items
                .iter()
                .map(|i| match i {
                    Reply::Bulk(b) => String::from_utf8(b.clone()).unwrap(),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Random set commands against a model; the records, replayed,
        /// give the same store.
        #[test]
        fn sets_match_a_model_and_replay(ops in prop::collection::vec(op(), 1..60)) {
            let (mut st, mut rep) = (Store::new(), Store::new());
            let mut model = Model::new();
            let k = |i: u8| format!("k{i}");
            for o in ops {
                match o {
                    Op::Add(key, ms) => {
                        let s = model.entry(k(key)).or_default();
                        let ms: Vec<String> = ms.iter().map(|m| format!("m{m}")).collect();
                        let new = ms.iter().filter(|m| s.insert((*m).clone())).count();
                        let mut args = vec!["sadd".to_string(), k(key)];
                        args.extend(ms);
                        prop_assert_eq!(run(&mut st, &mut rep, &args), Reply::Integer(new as i64));
                    }
                    Op::Rem(key, ms) => {
                        let s = model.entry(k(key)).or_default();
                        let ms: Vec<String> = ms.iter().map(|m| format!("m{m}")).collect();
                        let mut gone = 0;
                        for m in &ms {
                            gone += usize::from(s.remove(m));
                        }
                        let mut args = vec!["srem".to_string(), k(key)];
                        args.extend(ms);
                        prop_assert_eq!(run(&mut st, &mut rep, &args), Reply::Integer(gone as i64));
                    }
                    Op::Pop(key, n) => {
                        let s = model.entry(k(key)).or_default();
                        let r = run(&mut st, &mut rep, &["spop".into(), k(key), n.to_string()]);
                        let popped = names(&r);
                        prop_assert_eq!(popped.len(), s.len().min(usize::from(n)));
                        for m in popped {
                            prop_assert!(s.remove(&m), "popped {} not in the set", m);
                        }
                    }
                    Op::Move(a, b, m) => {
                        let m = format!("m{m}");
                        let had = model.get(&k(a)).is_some_and(|s| s.contains(&m));
                        if had {
                            model.get_mut(&k(a)).unwrap().remove(&m);
                            model.entry(k(b)).or_default().insert(m.clone());
                        }
                        let r = run(&mut st, &mut rep, &["smove".into(), k(a), k(b), m]);
                        prop_assert_eq!(r, Reply::Integer(i64::from(had)));
                    }
                    Op::Store(o, d, a, b) => {
                        let (x, y) = (model.get(&k(a)).cloned().unwrap_or_default(), model.get(&k(b)).cloned().unwrap_or_default());
                        let (name, result): (&str, HashSet<String>) = match o {
                            0 => ("sinterstore", x.intersection(&y).cloned().collect()),
                            1 => ("sunionstore", x.union(&y).cloned().collect()),
                            _ => ("sdiffstore", x.difference(&y).cloned().collect()),
                        };
                        let n = result.len() as i64;
                        model.insert(k(d), result);
                        let r = run(&mut st, &mut rep, &[name.into(), k(d), k(a), k(b)]);
                        prop_assert_eq!(r, Reply::Integer(n));
                    }
                }
                model.retain(|_, s| !s.is_empty());
            }
            prop_assert_eq!(st.len(), model.len());
            for (key, s) in &model {
                let want: HashSet<Vec<u8>> = s.iter().map(|m| m.as_bytes().to_vec()).collect();
                prop_assert_eq!(st.value(key.as_bytes(), 0), Some(&Value::Set(want)));
            }
            prop_assert!(st == rep, "replay differs");
            prop_assert_eq!(st.data_bytes(), rep.data_bytes());
        }
    }

    #[test]
    fn a_journaled_set_write_rolls_back_exactly() {
        use crate::command::{execute_write_journaled, parse, Command};
        use crate::databases::Databases;
        use crate::store::Undo;
        let setup = || {
            let mut dbs = Databases::new(1);
            let st = dbs.db_mut(0);
            super::add_members(st, b"s", &[b"a".to_vec(), b"b".to_vec()]);
            super::add_members(st, b"one", &[b"x".to_vec()]);
            st.set_expire(b"s", Some(5000));
            dbs
        };
        let cmds: &[&[&str]] = &[
            &["sadd", "s", "c", "a"],
            &["srem", "s", "a", "b"],
            &["srem", "one", "x"],
            &["sadd", "fresh", "x"],
            &["spop", "s"],
            &["smove", "s", "one", "a"],
            &["sunionstore", "s", "s", "one"],
        ];
        for c in cmds {
            let mut dbs = setup();
            let a: Vec<Vec<u8>> = c.iter().map(|s| s.as_bytes().to_vec()).collect();
            let Ok(Command::Write(w)) = parse(&a, true) else {
                panic!("{c:?}")
            };
            let mut undo = Undo::new();
            execute_write_journaled(w, dbs.db_mut(0), 1000, &mut undo);
            undo.rollback(&mut dbs);
            let before = setup();
            assert!(dbs == before, "{c:?} rolled back");
            assert_eq!(dbs.db(0).data_bytes(), before.db(0).data_bytes(), "{c:?}");
            assert_eq!(dbs.db(0).raw(b"s").unwrap().expire_at, Some(5000));
        }
    }
}
