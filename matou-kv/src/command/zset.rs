//! The sorted-set commands: ZADD (NX/XX/GT/LT/CH/INCR), ZINCRBY, ZREM,
//! ZPOPMIN/MAX, ZREMRANGEBYSCORE/RANK/LEX, ZRANGESTORE and Z{UNION,INTER,
//! DIFF}STORE (writes); ZSCORE, ZMSCORE, ZCARD, ZCOUNT, ZLEXCOUNT, ZRANGE
//! and its older forms, ZRANK, ZREVRANK, ZRANDMEMBER, ZUNION/ZINTER/ZDIFF,
//! ZINTERCARD and ZSCAN (reads), and ZMPOP, with Redis 7.0's replies and
//! errors.
//! Ranges are in `zset_range`.
//!
//! Every change is one record: the scores it set ([`LogRecord::ZAdd`]:
//! ZINCRBY and ZADD INCR log the resulting score, so replay adds nothing)
//! or the members it removed ([`LogRecord::ZRem`]); a *STORE logs its
//! destination whole, or its DEL when the result is empty. Scores reply
//! as doubles ([`score_reply`]): bulk strings in RESP2, `,` in RESP3.

use super::exec::Tx;
use super::scan::{parse_cursor_args, pick, rand_count, Cursor, Rng};
use super::set::{limit_option, numkeys, store_whole};
use super::zset_range::{
    combine, members_reply, parse_combine, parse_range, rank_span, score_reply, select, source,
    Combine, Form, Range, ZOp,
};
use super::{NOT_INTEGER, SYNTAX, WRONGTYPE};
use crate::record::{LogRecord, Score};
use crate::resp::{parse_i64, Reply};
use crate::server::notify::Class;
use crate::store::zset::{parse_score, ZSet};
use crate::store::{thresholds, Store, Value};

/// `ERR value is not a valid float`.
const NOT_FLOAT: &str = "ERR value is not a valid float";

/// ZADD's flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddFlags {
    /// Only add new members.
    pub nx: bool,
    /// Only update existing ones.
    pub xx: bool,
    /// Only update to a greater score.
    pub gt: bool,
    /// Only update to a lesser score.
    pub lt: bool,
    /// Count changed members too.
    pub ch: bool,
    /// Increment (one pair): reply the new score.
    pub incr: bool,
}

/// A sorted-set read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZSetRead {
    /// ZSCORE key member.
    Score(Vec<u8>, Vec<u8>),
    /// ZMSCORE key member...
    MScore(Vec<u8>, Vec<Vec<u8>>),
    /// ZCARD key.
    Card(Vec<u8>),
    /// ZCOUNT key min max.
    Count(Vec<u8>, Range),
    /// ZLEXCOUNT key min max.
    LexCount(Vec<u8>, Range),
    /// ZRANGE and its older forms.
    Range(Vec<u8>, Range),
    /// ZRANK (`rev: false`) / ZREVRANK key member.
    Rank(Vec<u8>, Vec<u8>, bool),
    /// ZRANDMEMBER key [count [WITHSCORES]].
    RandMember(Vec<u8>, Option<(i64, bool)>),
    /// ZUNION / ZINTER / ZDIFF.
    Combine(Combine),
    /// ZINTERCARD numkeys key... [LIMIT n] (0: no limit).
    InterCard(Vec<Vec<u8>>, usize),
    /// ZSCAN key cursor [MATCH p] [COUNT n].
    Scan(Vec<u8>, Cursor),
}

/// A sorted-set write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZSetWrite {
    /// ZADD key flags score member... (ZINCRBY is ZADD INCR with its reply).
    Add {
        /// The key.
        key: Vec<u8>,
        /// The flags.
        flags: AddFlags,
        /// (member, score or increment) pairs.
        pairs: Vec<(Vec<u8>, Score)>,
    },
    /// ZREM key member...
    Rem(Vec<u8>, Vec<Vec<u8>>),
    /// ZPOPMIN (`max: false`) / ZPOPMAX key [count].
    Pop(Vec<u8>, bool, Option<usize>),
    /// ZREMRANGEBYSCORE / RANK / LEX key a b.
    RemRange(Vec<u8>, Range),
    /// ZRANGESTORE dst src range.
    RangeStore(Vec<u8>, Vec<u8>, Range),
    /// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE dst ...
    Store(Vec<u8>, Combine),
    /// ZMPOP numkeys key... MIN|MAX [COUNT n], and BZMPOP, BZPOPMIN,
    /// BZPOPMAX (`block`): from the first non-empty key.
    MPop {
        /// The keys, tried in order.
        keys: Vec<Vec<u8>>,
        /// The greatest scores first (MAX, BZPOPMAX).
        max: bool,
        /// At most this many (at least 1).
        count: usize,
        /// BZPOPMIN / BZPOPMAX's reply, `[key, member, score]`, rather
        /// than ZMPOP's `[key, [[member, score]...]]`.
        single: bool,
        /// Blocking: the timeout in ms (0: forever).
        block: Option<u64>,
    },
}

/// Whether `name` is one of this module's commands.
pub fn owns(name: &str) -> bool {
    matches!(
        name,
        "zadd"
            | "zincrby"
            | "zrem"
            | "zpopmin"
            | "zpopmax"
            | "zremrangebyscore"
            | "zremrangebyrank"
            | "zremrangebylex"
            | "zrangestore"
            | "zunionstore"
            | "zinterstore"
            | "zdiffstore"
            | "zscore"
            | "zmscore"
            | "zcard"
            | "zcount"
            | "zlexcount"
            | "zrange"
            | "zrangebyscore"
            | "zrevrangebyscore"
            | "zrangebylex"
            | "zrevrangebylex"
            | "zrevrange"
            | "zrank"
            | "zrevrank"
            | "zrandmember"
            | "zunion"
            | "zinter"
            | "zdiff"
            | "zintercard"
            | "zscan"
            | "zmpop"
            | "bzmpop"
            | "bzpopmin"
            | "bzpopmax"
    )
}

fn parse_add(args: &[Vec<u8>]) -> Result<ZSetWrite, Reply> {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let is = |w: &str| a.eq_ignore_ascii_case(w.as_bytes());
        match () {
            () if is("nx") => f.nx = true,
            () if is("xx") => f.xx = true,
            () if is("gt") => f.gt = true,
            () if is("lt") => f.lt = true,
            () if is("ch") => f.ch = true,
            () if is("incr") => f.incr = true,
            () => break,
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(Reply::err(SYNTAX));
    }
    if f.nx && f.xx {
        return Err(Reply::err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(Reply::err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if f.incr && rest.len() > 2 {
        return Err(Reply::err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let pairs = rest
        .chunks(2)
        .map(|p| {
            parse_score(&p[0])
                .map(|s| (p[1].clone(), Score(s)))
                .ok_or(Reply::err(NOT_FLOAT))
        })
        .collect::<Result<_, _>>()?;
    Ok(ZSetWrite::Add {
        key: args[1].clone(),
        flags: f,
        pairs,
    })
}

fn pop_count(b: Option<&Vec<u8>>) -> Result<Option<usize>, Reply> {
    b.map(|c| {
        let n = parse_i64(c).ok_or(Reply::err(NOT_INTEGER))?;
        usize::try_from(n).map_err(|_| Reply::err("ERR value is out of range, must be positive"))
    })
    .transpose()
}

/// Parses one of this module's commands (arity already checked).
pub(super) fn parse(name: &str, args: &[Vec<u8>]) -> Result<super::Command, Reply> {
    use super::Command::{Read as R, Write as W};
    let key = args[1].clone();
    let read = |r: ZSetRead| R(super::Read::ZSets(r));
    let write = |w: ZSetWrite| W(super::Write::ZSets(w));
    let zr = Form::Zrange { store: false };
    let range = |f: Form, from: usize| parse_range(f, &args[from..]);
    let plain = |by: super::zset_range::By| Range {
        by,
        rev: false,
        limit: None,
        withscores: false,
    };
    Ok(match name {
        "zadd" => write(parse_add(args)?),
        "zincrby" => {
            let by = parse_score(&args[2]).ok_or(Reply::err(NOT_FLOAT))?;
            write(ZSetWrite::Add {
                key,
                flags: AddFlags {
                    incr: true,
                    ..AddFlags::default()
                },
                pairs: vec![(args[3].clone(), Score(by))],
            })
        }
        "zrem" => write(ZSetWrite::Rem(key, args[2..].to_vec())),
        "zpopmin" | "zpopmax" => {
            if args.len() > 3 {
                return Err(Reply::err(SYNTAX));
            }
            write(ZSetWrite::Pop(
                key,
                name == "zpopmax",
                pop_count(args.get(2))?,
            ))
        }
        "zremrangebyscore" => write(ZSetWrite::RemRange(key, range(Form::ByScore(false), 2)?)),
        "zremrangebylex" => write(ZSetWrite::RemRange(key, range(Form::ByLex(false), 2)?)),
        "zremrangebyrank" => write(ZSetWrite::RemRange(
            key,
            plain(super::zset_range::By::Rank(
                parse_i64(&args[2]).ok_or(Reply::err(NOT_INTEGER))?,
                parse_i64(&args[3]).ok_or(Reply::err(NOT_INTEGER))?,
            )),
        )),
        "zrangestore" => write(ZSetWrite::RangeStore(
            key,
            args[2].clone(),
            range(Form::Zrange { store: true }, 3)?,
        )),
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let op = match name {
                "zunionstore" => ZOp::Union,
                "zinterstore" => ZOp::Inter,
                _ => ZOp::Diff,
            };
            write(ZSetWrite::Store(
                key,
                parse_combine(op, name, args, 2, true)?,
            ))
        }
        "zunion" | "zinter" | "zdiff" => {
            let op = match name {
                "zunion" => ZOp::Union,
                "zinter" => ZOp::Inter,
                _ => ZOp::Diff,
            };
            read(ZSetRead::Combine(parse_combine(op, name, args, 1, false)?))
        }
        "zscore" => read(ZSetRead::Score(key, args[2].clone())),
        "zmscore" => read(ZSetRead::MScore(key, args[2..].to_vec())),
        "zcard" => read(ZSetRead::Card(key)),
        "zcount" => read(ZSetRead::Count(key, range(Form::ByScore(false), 2)?)),
        "zlexcount" => read(ZSetRead::LexCount(key, range(Form::ByLex(false), 2)?)),
        "zrange" => read(ZSetRead::Range(key, range(zr, 2)?)),
        "zrangebyscore" => read(ZSetRead::Range(key, range(Form::ByScore(false), 2)?)),
        "zrevrangebyscore" => read(ZSetRead::Range(key, range(Form::ByScore(true), 2)?)),
        "zrangebylex" => read(ZSetRead::Range(key, range(Form::ByLex(false), 2)?)),
        "zrevrangebylex" => read(ZSetRead::Range(key, range(Form::ByLex(true), 2)?)),
        "zrevrange" => read(ZSetRead::Range(key, range(Form::RevRank, 2)?)),
        "zrank" | "zrevrank" => read(ZSetRead::Rank(key, args[2].clone(), name == "zrevrank")),
        "zrandmember" => {
            let count = match args.len() {
                2 => None,
                3 | 4 => {
                    let ws = match args.get(3) {
                        None => false,
                        Some(w) if w.eq_ignore_ascii_case(b"withscores") => true,
                        Some(_) => return Err(Reply::err(SYNTAX)),
                    };
                    let n = parse_i64(&args[2]).ok_or(Reply::err(NOT_INTEGER))?;
                    Some((rand_count(n, if ws { 2 } else { 1 })?, ws))
                }
                _ => return Err(Reply::err(SYNTAX)),
            };
            read(ZSetRead::RandMember(key, count))
        }
        "zintercard" => {
            let (keys, next) = super::zset_range::combine_keys(name, args, 1)?;
            read(ZSetRead::InterCard(keys, limit_option(args, next)?))
        }
        "zscan" => read(ZSetRead::Scan(key, parse_cursor_args(args)?)),
        "zmpop" => {
            let (keys, max, count) = mpop_args(args, 1)?;
            write(ZSetWrite::MPop {
                keys,
                max,
                count,
                single: false,
                block: None,
            })
        }
        "bzmpop" => {
            let t = super::list::timeout(&args[1])?;
            let (keys, max, count) = mpop_args(args, 2)?;
            write(ZSetWrite::MPop {
                keys,
                max,
                count,
                single: false,
                block: Some(t),
            })
        }
        "bzpopmin" | "bzpopmax" => {
            let t = super::list::timeout(&args[args.len() - 1])?;
            write(ZSetWrite::MPop {
                keys: args[1..args.len() - 1].to_vec(),
                max: name == "bzpopmax",
                count: 1,
                single: true,
                block: Some(t),
            })
        }
        _ => return Err(Reply::err(SYNTAX)),
    })
}

/// ZMPOP / BZMPOP from `numkeys` (at `at`) on: the keys, MAX, the count.
fn mpop_args(args: &[Vec<u8>], at: usize) -> Result<(Vec<Vec<u8>>, bool, usize), Reply> {
    let (keys, mut i) = numkeys(args, at)?;
    let max = match args.get(i) {
        Some(w) if w.eq_ignore_ascii_case(b"min") => false,
        Some(w) if w.eq_ignore_ascii_case(b"max") => true,
        _ => return Err(Reply::err(SYNTAX)),
    };
    i += 1;
    let mut count = None;
    while i < args.len() {
        if count.is_none() && args[i].eq_ignore_ascii_case(b"count") && i + 1 < args.len() {
            let n = parse_i64(&args[i + 1])
                .filter(|&n| n > 0)
                .ok_or(Reply::err("ERR count should be greater than 0"))?;
            count = Some(usize::try_from(n).unwrap_or(usize::MAX));
            i += 2;
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }
    Ok((keys, max, count.unwrap_or(1)))
}

/// The sorted set at `key`: `Ok(None)` if absent, `Err` (WRONGTYPE) if
/// another type.
fn zset<'a>(store: &'a Store, key: &[u8], now: u64) -> Result<Option<&'a ZSet>, Reply> {
    match store.read_value(key, now) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// The sources of a combine, or WRONGTYPE.
fn sources<'a>(
    store: &'a Store,
    keys: &[Vec<u8>],
    now: u64,
) -> Result<Vec<super::zset_range::Source<'a>>, Reply> {
    keys.iter()
        .map(|k| source(store.read_value(k, now)).ok_or(Reply::err(WRONGTYPE)))
        .collect()
}

/// The ranks a range spans, ascending (ZCOUNT, ZREMRANGEBY*).
fn span(z: &ZSet, range: &Range) -> (usize, usize) {
    use super::zset_range::By;
    match &range.by {
        By::Rank(a, b) => rank_span(*a, *b, z.len()),
        By::Score(min, max) => z.score_span(*min, *max),
        By::Lex(min, max) => z.lex_span(min, max),
    }
}

/// Runs a sorted-set read.
pub(super) fn read(cmd: &ZSetRead, store: &Store, now: u64) -> Reply {
    match run_read(cmd, store, now) {
        Ok(r) | Err(r) => r,
    }
}

fn run_read(cmd: &ZSetRead, store: &Store, now: u64) -> Result<Reply, Reply> {
    Ok(match cmd {
        ZSetRead::Score(k, m) => match zset(store, k, now)?.and_then(|z| z.score(m)) {
            Some(s) => score_reply(s),
            None => Reply::Nil,
        },
        ZSetRead::MScore(k, ms) => {
            let z = zset(store, k, now)?;
            Reply::Array(
                ms.iter()
                    .map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Nil, score_reply))
                    .collect(),
            )
        }
        ZSetRead::Card(k) => Reply::Integer(zset(store, k, now)?.map_or(0, ZSet::len) as i64),
        ZSetRead::Count(k, r) | ZSetRead::LexCount(k, r) => {
            Reply::Integer(zset(store, k, now)?.map_or(0, |z| {
                let (lo, hi) = span(z, r);
                hi - lo
            }) as i64)
        }
        ZSetRead::Range(k, r) => match zset(store, k, now)? {
            None => Reply::Array(Vec::new()),
            Some(z) => members_reply(select(z, r).into_iter(), r.withscores),
        },
        ZSetRead::Rank(k, m, rev) => match zset(store, k, now)?.and_then(|z| {
            let r = z.rank(m)?;
            Some(if *rev { z.len() - 1 - r } else { r })
        }) {
            Some(r) => Reply::Integer(r as i64),
            None => Reply::Nil,
        },
        ZSetRead::RandMember(k, count) => {
            let z = zset(store, k, now)?;
            let mut rng = Rng::new();
            match (z, count) {
                (None, None) => Reply::Nil,
                (None, Some(_)) => Reply::Array(Vec::new()),
                (Some(z), None) => {
                    let (m, _) = z.nth(rng.below(z.len())).expect("in range");
                    Reply::Bulk(m.to_vec())
                }
                (Some(z), Some((c, ws))) => {
                    let picked = pick(&mut rng, z.len(), *c);
                    members_reply(picked.into_iter().map(|i| z.nth(i).expect("in range")), *ws)
                }
            }
        }
        ZSetRead::Combine(c) => {
            let srcs = sources(store, &c.keys, now)?;
            let z = combine(c, &srcs);
            members_reply(z.iter(), c.withscores)
        }
        ZSetRead::InterCard(keys, limit) => {
            let all = Combine {
                op: ZOp::Inter,
                keys: keys.clone(),
                weights: vec![1.0; keys.len()],
                aggregate: super::zset_range::Aggregate::Sum,
                withscores: false,
            };
            let srcs = sources(store, keys, now)?;
            let n = combine(&all, &srcs).len();
            Reply::Integer(if *limit > 0 { n.min(*limit) } else { n } as i64)
        }
        ZSetRead::Scan(k, cursor) => {
            let z = zset(store, k, now)?;
            let len = z.map_or(0, ZSet::len);
            cursor.step(len, z.into_iter().flat_map(ZSet::iter), |m, s, out| {
                out.push(Reply::Bulk(m.to_vec()));
                out.push(Reply::Bulk(crate::store::zset::score_text(s)));
            })
        }
    })
}

/// The key a sorted-set write changes (ZMPOP: its first).
fn key_of(cmd: &ZSetWrite) -> &[u8] {
    match cmd {
        ZSetWrite::Add { key, .. }
        | ZSetWrite::Rem(key, _)
        | ZSetWrite::Pop(key, ..)
        | ZSetWrite::RemRange(key, _)
        | ZSetWrite::RangeStore(key, ..)
        | ZSetWrite::Store(key, _) => key,
        ZSetWrite::MPop { keys, .. } => &keys[0],
    }
}

/// The keys a sorted-set write may change, for the undo journal.
pub(super) fn touched(cmd: &ZSetWrite) -> Vec<&[u8]> {
    match cmd {
        ZSetWrite::MPop { keys, .. } => keys.iter().map(Vec::as_slice).collect(),
        other => vec![key_of(other)],
    }
}

/// The members ZADD / ZINCRBY / ZREM change (journaled member by member;
/// the other writes journal their key whole).
pub(super) fn members(cmd: &ZSetWrite) -> Option<Vec<&[u8]>> {
    match cmd {
        ZSetWrite::Add { pairs, .. } => Some(pairs.iter().map(|(m, _)| m.as_slice()).collect()),
        ZSetWrite::Rem(_, ms) => Some(ms.iter().map(Vec::as_slice).collect()),
        _ => None,
    }
}

/// An upper bound of the record's size.
pub(super) fn record_bound(cmd: &ZSetWrite) -> usize {
    let s = |b: &Vec<u8>| b.len() + 10;
    64 + match cmd {
        ZSetWrite::Add { key, pairs, .. } => {
            s(key) + pairs.iter().map(|(m, _)| s(m) + 8).sum::<usize>()
        }
        ZSetWrite::Rem(k, ms) => s(k) + ms.iter().map(s).sum::<usize>(),
        ZSetWrite::Pop(k, ..) | ZSetWrite::RemRange(k, _) => s(k),
        ZSetWrite::RangeStore(d, src, _) => s(d) + s(src),
        ZSetWrite::Store(d, c) => s(d) + c.keys.iter().map(s).sum::<usize>(),
        ZSetWrite::MPop { keys, .. } => keys.iter().map(s).sum::<usize>(),
    }
}

/// Gives `pairs`' members their scores in the sorted set at `key`
/// (created if absent). The caller checked the type.
pub fn add_scores(store: &mut Store, key: &[u8], pairs: &[(Vec<u8>, Score)]) {
    store.upsert(
        key,
        || Value::ZSet(ZSet::new()),
        |v| {
            let Value::ZSet(z) = v else {
                unreachable!("checked a sorted set")
            };
            let (mut delta, mut longest) = (0isize, 0);
            for (m, s) in pairs {
                if z.insert(m, s.0).is_none() {
                    delta += m.len() as isize + 8;
                    longest = longest.max(m.len());
                }
            }
            let t = thresholds();
            z.note_encoding(longest, t.zset_entries, t.zset_value);
            ((), delta)
        },
    );
}

/// Removes `members` from the sorted set at `key`: those removed, in order.
pub fn rem_members(store: &mut Store, key: &[u8], members: &[Vec<u8>]) -> Vec<Vec<u8>> {
    store
        .update(key, |v| {
            let Value::ZSet(z) = v else {
                return (Vec::new(), 0);
            };
            let (mut gone, mut delta) = (Vec::new(), 0isize);
            for m in members {
                if z.remove(m).is_some() {
                    delta -= m.len() as isize + 8;
                    gone.push(m.clone());
                }
            }
            (gone, delta)
        })
        .unwrap_or_default()
}

/// ZADD's decision for one member: the score to set, or `None` to leave
/// it. `Err` when an increment gives NaN.
fn decide(f: AddFlags, cur: Option<f64>, given: f64) -> Result<Option<f64>, Reply> {
    let new = match (f.incr, cur) {
        (true, Some(c)) => c + given,
        _ => given,
    };
    if new.is_nan() {
        return Err(Reply::err("ERR resulting score is not a number (NaN)"));
    }
    let skip = match cur {
        None => f.xx,
        Some(c) => f.nx || (f.gt && new <= c) || (f.lt && new >= c),
    };
    Ok((!skip).then_some(new))
}

/// The keyspace event of a pop of the least (`max: false`) or greatest
/// scores (ZPOPMIN/MAX, BZPOPMIN/MAX, ZMPOP, BZMPOP).
fn pop_event(max: bool) -> &'static str {
    if max {
        "zpopmax"
    } else {
        "zpopmin"
    }
}

/// Runs a sorted-set write.
pub(super) fn write(cmd: ZSetWrite, mut tx: Tx<'_>) -> (Reply, Option<LogRecord>) {
    for k in touched(&cmd) {
        tx.purge(k);
    }
    let now = tx.now;
    match &cmd {
        ZSetWrite::RangeStore(_, src, _) => tx.purge(src),
        ZSetWrite::Store(_, c) => c.keys.iter().for_each(|k| tx.purge(k)),
        _ => {}
    }
    let current = match &cmd {
        // A *STORE overwrites whatever the destination holds.
        ZSetWrite::RangeStore(..) | ZSetWrite::Store(..) | ZSetWrite::MPop { .. } => None,
        _ => match zset(tx.store, key_of(&cmd), now) {
            Ok(z) => z,
            Err(e) => return tx.done(e),
        },
    };
    match cmd {
        ZSetWrite::Add { key, flags, pairs } => {
            let mut set = Vec::new();
            let (mut added, mut changed) = (0, 0);
            let mut incr_result = None;
            // Later pairs see earlier ones (ZADD k 1 a 2 a sets a to 2).
            let mut seen: std::collections::HashMap<&[u8], f64> = Default::default();
            let stored: Vec<Option<f64>> = pairs
                .iter()
                .map(|(m, _)| current.and_then(|z| z.score(m)))
                .collect();
            for ((m, s), stored) in pairs.iter().zip(stored) {
                let cur = seen.get(m.as_slice()).copied().or(stored);
                let new = match decide(flags, cur, s.0) {
                    Ok(n) => n,
                    Err(e) => return tx.done(e),
                };
                let Some(new) = new else { continue };
                incr_result = Some(new);
                match cur {
                    None => added += 1,
                    Some(c) if c != new => changed += 1,
                    // The same score: nothing changes, nothing is logged
                    // (Redis does not propagate it either).
                    Some(_) => continue,
                }
                seen.insert(m, new);
                set.push((m.clone(), Score(new)));
            }
            let reply = if flags.incr {
                incr_result.map_or(Reply::Nil, score_reply)
            } else {
                Reply::Integer(if flags.ch { added + changed } else { added })
            };
            if set.is_empty() {
                return tx.done(reply);
            }
            add_scores(tx.store, &key, &set);
            let event = if flags.incr { "zincr" } else { "zadd" };
            tx.store.notify(Class::ZSET, event, &key);
            tx.logged(reply, LogRecord::ZAdd { key, pairs: set })
        }
        ZSetWrite::Rem(key, members) => {
            let gone = rem_members(tx.store, &key, &members);
            if gone.is_empty() {
                return tx.done(Reply::Integer(0));
            }
            tx.notify_change(Class::ZSET, "zrem", &key);
            let n = gone.len() as i64;
            tx.logged(Reply::Integer(n), LogRecord::ZRem { key, members: gone })
        }
        ZSetWrite::Pop(key, max, count) => {
            let want = count.unwrap_or(1);
            let picked: Vec<(Vec<u8>, f64)> = match current {
                None => Vec::new(),
                Some(z) => {
                    let it: Box<dyn Iterator<Item = (&[u8], f64)>> = if max {
                        Box::new(z.iter_rev_from(z.len() - 1))
                    } else {
                        Box::new(z.iter())
                    };
                    it.take(want).map(|(m, s)| (m.to_vec(), s)).collect()
                }
            };
            let reply = match (count, picked.first()) {
                (None, Some((m, s))) => super::zset_range::flat_pair(m, *s),
                _ => members_reply(picked.iter().map(|(m, s)| (m.as_slice(), *s)), true),
            };
            if picked.is_empty() {
                return tx.done(reply);
            }
            let members: Vec<Vec<u8>> = picked.into_iter().map(|(m, _)| m).collect();
            rem_members(tx.store, &key, &members);
            tx.notify_change(Class::ZSET, pop_event(max), &key);
            tx.logged(reply, LogRecord::ZRem { key, members })
        }
        ZSetWrite::RemRange(key, range) => {
            let gone: Vec<Vec<u8>> = match current {
                None => Vec::new(),
                Some(z) => {
                    let (lo, hi) = span(z, &range);
                    z.iter_from(lo)
                        .take(hi - lo)
                        .map(|(m, _)| m.to_vec())
                        .collect()
                }
            };
            if gone.is_empty() {
                return tx.done(Reply::Integer(0));
            }
            let n = gone.len() as i64;
            rem_members(tx.store, &key, &gone);
            let event = match range.by {
                super::zset_range::By::Rank(..) => "zremrangebyrank",
                super::zset_range::By::Lex(..) => "zremrangebylex",
                _ => "zremrangebyscore",
            };
            tx.notify_change(Class::ZSET, event, &key);
            tx.logged(Reply::Integer(n), LogRecord::ZRem { key, members: gone })
        }
        ZSetWrite::RangeStore(dest, src, range) => {
            let result = match zset(tx.store, &src, now) {
                Err(e) => return tx.done(e),
                Ok(None) => ZSet::new(),
                Ok(Some(z)) => {
                    let mut out = ZSet::new();
                    for (m, s) in select(z, &range) {
                        out.insert(m, s);
                    }
                    let t = thresholds();
                    out.reset_encoding(t.zset_entries, t.zset_value);
                    out
                }
            };
            let n = result.len() as i64;
            match store_whole(
                &mut tx,
                dest,
                Value::ZSet(result),
                (Class::ZSET, "zrangestore"),
            ) {
                Some(rec) => tx.logged(Reply::Integer(n), rec),
                None => tx.done(Reply::Integer(n)),
            }
        }
        ZSetWrite::MPop {
            keys,
            max,
            count,
            single,
            ..
        } => {
            let mut from = None;
            for k in &keys {
                match zset(tx.store, k, now) {
                    Err(e) => return tx.done(e),
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        from = Some(k.clone());
                        break;
                    }
                }
            }
            let Some(key) = from else {
                return tx.done(Reply::NilArray);
            };
            let picked: Vec<(Vec<u8>, f64)> = match zset(tx.store, &key, now) {
                Ok(Some(z)) if max => z
                    .iter_rev_from(z.len() - 1)
                    .take(count)
                    .map(|(m, s)| (m.to_vec(), s))
                    .collect(),
                Ok(Some(z)) => z.iter().take(count).map(|(m, s)| (m.to_vec(), s)).collect(),
                _ => unreachable!("found above"),
            };
            let reply = if single {
                let (m, s) = &picked[0];
                Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Bulk(m.clone()),
                    score_reply(*s),
                ])
            } else {
                // ZMPOP's elements are [member, score] pairs in either
                // protocol.
                let pairs = picked
                    .iter()
                    .map(|(m, s)| super::zset_range::flat_pair(m, *s))
                    .collect();
                Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(pairs)])
            };
            let members: Vec<Vec<u8>> = picked.into_iter().map(|(m, _)| m).collect();
            rem_members(tx.store, &key, &members);
            tx.notify_change(Class::ZSET, pop_event(max), &key);
            tx.logged(reply, LogRecord::ZRem { key, members })
        }
        ZSetWrite::Store(dest, c) => {
            let result = match sources(tx.store, &c.keys, now) {
                Ok(srcs) => combine(&c, &srcs),
                Err(e) => return tx.done(e),
            };
            let n = result.len() as i64;
            let event = match c.op {
                ZOp::Union => "zunionstore",
                ZOp::Inter => "zinterstore",
                ZOp::Diff => "zdiffstore",
            };
            match store_whole(&mut tx, dest, Value::ZSet(result), (Class::ZSET, event)) {
                Some(rec) => tx.logged(Reply::Integer(n), rec),
                None => tx.done(Reply::Integer(n)),
            }
        }
    }
}

#[cfg(test)]
#[path = "zset_tests.rs"]
mod tests;
