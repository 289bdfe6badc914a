//! The ranges of the sorted-set commands: ZRANGE's forms (by rank, score
//! or lex; REV; LIMIT) and the older ZRANGEBYSCORE / ZREVRANGE... family
//! parsed into one [`Range`], and how a range selects members of a
//! [`ZSet`]: one O(log n) descent to its first member, then O(1) per
//! member (the tree's [`Iter`](crate::store::zset::Iter)).
//!
//! Also ZUNION / ZINTER / ZDIFF's options ([`Combine`]) and the combining
//! itself, whose sources may be sets (every member scored 1, as Redis
//! allows).

use super::{NOT_INTEGER, SYNTAX};
use crate::resp::{parse_i64, Reply};
use crate::store::zset::{parse_score, LexBound, ScoreBound, ZSet};
use crate::store::{thresholds, Value};

/// `ERR min or max is not a float`.
const BAD_SCORE_BOUND: &str = "ERR min or max is not a float";
/// `ERR min or max not valid string range item`.
const BAD_LEX_BOUND: &str = "ERR min or max not valid string range item";

/// What a range is over.
#[derive(Clone, Debug, PartialEq)]
pub enum By {
    /// Ranks `start..=stop` (negative: from the end).
    Rank(i64, i64),
    /// Scores within `min..max`.
    Score(ScoreBound, ScoreBound),
    /// Members within `min..max`.
    Lex(LexBound, LexBound),
}

/// A parsed range.
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    /// Rank, score or lex.
    pub by: By,
    /// Descending (REV, ZREV...).
    pub rev: bool,
    /// LIMIT offset count (count < 0: all).
    pub limit: Option<(i64, i64)>,
    /// WITHSCORES.
    pub withscores: bool,
}

impl Eq for Range {}

fn score_bound(b: &[u8]) -> Result<ScoreBound, Reply> {
    ScoreBound::parse(b).ok_or(Reply::err(BAD_SCORE_BOUND))
}

fn lex_bound(b: &[u8]) -> Result<LexBound, Reply> {
    LexBound::parse(b).ok_or(Reply::err(BAD_LEX_BOUND))
}

fn int(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or(Reply::err(NOT_INTEGER))
}

/// Which command spelled the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// ZRANGE (`store`: ZRANGESTORE, which has no WITHSCORES).
    Zrange {
        /// ZRANGESTORE.
        store: bool,
    },
    /// ZRANGEBYSCORE / ZREVRANGEBYSCORE.
    ByScore(bool),
    /// ZRANGEBYLEX / ZREVRANGEBYLEX.
    ByLex(bool),
    /// ZREVRANGE.
    RevRank,
}

/// Parses `min max [options]` (`args[0]` is `min`) as `form` spells them.
///
/// # Errors
/// Redis's: a syntax error, a bound that is not a float or not a valid lex
/// item, a rank that is not an integer, LIMIT or WITHSCORES where they are
/// not supported.
pub fn parse_range(form: Form, args: &[Vec<u8>]) -> Result<Range, Reply> {
    let is = |a: &[u8], w: &str| a.eq_ignore_ascii_case(w.as_bytes());
    let (mut by_score, mut by_lex, mut rev) = match form {
        Form::Zrange { .. } => (false, false, false),
        Form::ByScore(rev) => (true, false, rev),
        Form::ByLex(rev) => (false, true, rev),
        Form::RevRank => (false, false, true),
    };
    let (mut limit, mut withscores) = (None, false);
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let zrange = matches!(form, Form::Zrange { .. });
        if is(a, "withscores") && !matches!(form, Form::ByLex(_) | Form::Zrange { store: true }) {
            withscores = true;
        } else if is(a, "limit") && i + 2 < args.len() && form != Form::RevRank {
            limit = Some((int(&args[i + 1])?, int(&args[i + 2])?));
            i += 2;
        } else if zrange && is(a, "byscore") {
            by_score = true;
        } else if zrange && is(a, "bylex") {
            by_lex = true;
        } else if zrange && is(a, "rev") {
            rev = true;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        i += 1;
    }
    if by_score && by_lex {
        return Err(Reply::err(SYNTAX));
    }
    if limit.is_some() && !by_score && !by_lex {
        return Err(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && by_lex {
        return Err(Reply::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // Descending score and lex ranges name the upper end first.
    let (lo, hi) = if rev && (by_score || by_lex) {
        (&args[1], &args[0])
    } else {
        (&args[0], &args[1])
    };
    let by = if by_score {
        By::Score(score_bound(lo)?, score_bound(hi)?)
    } else if by_lex {
        By::Lex(lex_bound(lo)?, lex_bound(hi)?)
    } else {
        By::Rank(int(lo)?, int(hi)?)
    };
    Ok(Range {
        by,
        rev,
        limit,
        withscores,
    })
}

/// Ranks `start..=stop` (negative from the end) as Redis clamps them to a
/// set of `len`: the half-open span, empty when they miss it.
pub fn rank_span(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let n = len as i64;
    let start = if start < 0 { (start + n).max(0) } else { start };
    let stop = if stop < 0 { stop + n } else { stop.min(n - 1) };
    if start > stop || start >= n {
        return (0, 0);
    }
    (start as usize, stop as usize + 1)
}

/// The members `range` selects of `z`, in the range's order.
pub fn select<'a>(z: &'a ZSet, range: &Range) -> Vec<(&'a [u8], f64)> {
    let len = z.len();
    let (lo, hi) = match &range.by {
        By::Rank(start, stop) => {
            // A rank range counts from the end it walks from.
            let (a, b) = rank_span(*start, *stop, len);
            if range.rev {
                (len - b, len - a)
            } else {
                (a, b)
            }
        }
        By::Score(min, max) => z.score_span(*min, *max),
        By::Lex(min, max) => z.lex_span(min, max),
    };
    let (skip, take) = match range.limit {
        None => (0, usize::MAX),
        Some((off, _)) if off < 0 => return Vec::new(),
        Some((off, count)) => (
            usize::try_from(off).unwrap_or(usize::MAX),
            usize::try_from(count).unwrap_or(usize::MAX),
        ),
    };
    let n = (hi - lo).saturating_sub(skip).min(take);
    if n == 0 {
        return Vec::new();
    }
    if range.rev {
        z.iter_rev_from(hi - 1 - skip).take(n).collect()
    } else {
        z.iter_from(lo + skip).take(n).collect()
    }
}

/// The members and scores as a reply: the members, or with `withscores`
/// (member, score) pairs (nested in RESP3, as Redis 7 sends them).
pub fn members_reply<'a>(items: impl Iterator<Item = (&'a [u8], f64)>, withscores: bool) -> Reply {
    if withscores {
        return Reply::Pairs(
            items
                .map(|(m, s)| (Reply::Bulk(m.to_vec()), score_reply(s)))
                .collect(),
        );
    }
    Reply::Array(items.map(|(m, _)| Reply::Bulk(m.to_vec())).collect())
}

/// One member and its score, flat in both protocols (ZPOPMIN without a
/// count, BZPOPMIN).
pub fn flat_pair(m: &[u8], s: f64) -> Reply {
    Reply::Array(vec![Reply::Bulk(m.to_vec()), score_reply(s)])
}

/// A score as a reply: a bulk string in RESP2, a double in RESP3.
pub fn score_reply(s: f64) -> Reply {
    Reply::Double(String::from_utf8(crate::store::zset::score_text(s)).expect("ascii"))
}

/// ZUNION, ZINTER or ZDIFF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZOp {
    /// Members in any source.
    Union,
    /// Members in every source.
    Inter,
    /// Members of the first source in none of the others.
    Diff,
}

/// AGGREGATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// The sum of the weighted scores (default).
    Sum,
    /// The least.
    Min,
    /// The greatest.
    Max,
}

/// A parsed ZUNION / ZINTER / ZDIFF (or *STORE).
#[derive(Clone, Debug, PartialEq)]
pub struct Combine {
    /// Which.
    pub op: ZOp,
    /// The sources (sorted sets or sets).
    pub keys: Vec<Vec<u8>>,
    /// WEIGHTS, one per key (1 by default).
    pub weights: Vec<f64>,
    /// AGGREGATE.
    pub aggregate: Aggregate,
    /// WITHSCORES (not in the *STORE forms).
    pub withscores: bool,
}

impl Eq for Combine {}

/// `numkeys key...` from `args[at]` as ZUNION, ZINTER, ZDIFF (and their
/// *STORE forms) and ZINTERCARD read it: the keys and the index after them.
///
/// # Errors
/// A numkeys that is not an integer, below 1 (`at least 1 input key is
/// needed for '<name>' command`) or past the arguments (a syntax error).
pub fn combine_keys(
    name: &str,
    args: &[Vec<u8>],
    at: usize,
) -> Result<(Vec<Vec<u8>>, usize), Reply> {
    let n = int(&args[at])?;
    if n < 1 {
        return Err(Reply::err(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > args.len() - at - 1 {
        return Err(Reply::err(SYNTAX));
    }
    Ok((args[at + 1..at + 1 + n].to_vec(), at + 1 + n))
}

/// Parses `numkeys key... [WEIGHTS w...] [AGGREGATE a] [WITHSCORES]` from
/// `args[at]` (`store`: the *STORE form, without WITHSCORES).
///
/// # Errors
/// Redis's for a bad numkeys, weight or option.
pub fn parse_combine(
    op: ZOp,
    name: &str,
    args: &[Vec<u8>],
    at: usize,
    store: bool,
) -> Result<Combine, Reply> {
    let is = |a: &[u8], w: &str| a.eq_ignore_ascii_case(w.as_bytes());
    let (keys, mut i) = combine_keys(name, args, at)?;
    let n = keys.len();
    let mut c = Combine {
        op,
        weights: vec![1.0; n],
        keys,
        aggregate: Aggregate::Sum,
        withscores: false,
    };
    while i < args.len() {
        let left = args.len() - i - 1;
        if op != ZOp::Diff && is(&args[i], "weights") && left >= n {
            for j in 0..n {
                c.weights[j] = parse_score(&args[i + 1 + j])
                    .ok_or(Reply::err("ERR weight value is not a float"))?;
            }
            i += n + 1;
        } else if op != ZOp::Diff && is(&args[i], "aggregate") && left >= 1 {
            c.aggregate = match &args[i + 1] {
                a if is(a, "sum") => Aggregate::Sum,
                a if is(a, "min") => Aggregate::Min,
                a if is(a, "max") => Aggregate::Max,
                _ => return Err(Reply::err(SYNTAX)),
            };
            i += 2;
        } else if !store && is(&args[i], "withscores") {
            c.withscores = true;
            i += 1;
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }
    Ok(c)
}

/// A source of a combine: a sorted set, or a set (scores 1).
pub enum Source<'a> {
    /// Absent: empty.
    None,
    /// A sorted set.
    Z(&'a ZSet),
    /// A set.
    S(&'a std::collections::HashSet<Vec<u8>>),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::None => 0,
            Source::Z(z) => z.len(),
            Source::S(s) => s.len(),
        }
    }

    fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            Source::None => None,
            Source::Z(z) => z.score(m),
            Source::S(s) => s.contains(m).then_some(1.0),
        }
    }

    fn each(&self, mut f: impl FnMut(&[u8], f64)) {
        match self {
            Source::None => {}
            Source::Z(z) => z.iter().for_each(|(m, s)| f(m, s)),
            Source::S(s) => s.iter().for_each(|m| f(m, 1.0)),
        }
    }
}

/// The source `value` is, or `None` if it is neither a set nor a sorted
/// set (WRONGTYPE).
pub fn source(value: Option<&Value>) -> Option<Source<'_>> {
    match value {
        None => Some(Source::None),
        Some(Value::ZSet(z)) => Some(Source::Z(z)),
        Some(Value::Set(s)) => Some(Source::S(s)),
        Some(_) => None,
    }
}

/// `x * w`, 0 where Redis's would be NaN (`inf * 0`).
fn weighted(x: f64, w: f64) -> f64 {
    let v = x * w;
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

fn aggregate(a: Aggregate, acc: f64, v: f64) -> f64 {
    match a {
        Aggregate::Sum => {
            let s = acc + v;
            // inf + -inf: Redis keeps 0.
            if s.is_nan() {
                0.0
            } else {
                s
            }
        }
        Aggregate::Min => acc.min(v),
        Aggregate::Max => acc.max(v),
    }
}

/// Combines `sources` as `c` asks: a new sorted set, encoded as Redis
/// would encode a set it just built.
pub fn combine(c: &Combine, sources: &[Source<'_>]) -> ZSet {
    let mut out = ZSet::new();
    match c.op {
        ZOp::Union => {
            let mut acc: std::collections::HashMap<Vec<u8>, f64> = Default::default();
            for (src, &w) in sources.iter().zip(&c.weights) {
                src.each(|m, s| {
                    let v = weighted(s, w);
                    match acc.get_mut(m) {
                        Some(a) => *a = aggregate(c.aggregate, *a, v),
                        None => {
                            acc.insert(m.to_vec(), v);
                        }
                    }
                });
            }
            for (m, s) in acc {
                out.insert(&m, s);
            }
        }
        ZOp::Inter => {
            if sources.iter().any(|s| s.len() == 0) {
                return out;
            }
            let (first, w0) = (&sources[0], c.weights[0]);
            first.each(|m, s| {
                let mut acc = weighted(s, w0);
                for (src, &w) in sources[1..].iter().zip(&c.weights[1..]) {
                    match src.score(m) {
                        Some(s) => acc = aggregate(c.aggregate, acc, weighted(s, w)),
                        None => return,
                    }
                }
                out.insert(m, acc);
            });
        }
        ZOp::Diff => {
            sources[0].each(|m, s| {
                if sources[1..].iter().all(|o| o.score(m).is_none()) {
                    out.insert(m, s);
                }
            });
        }
    }
    let t = thresholds();
    out.reset_encoding(t.zset_entries, t.zset_value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(w: &[&str]) -> Vec<Vec<u8>> {
        w.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn ranges_select_as_redis_does() {
        let mut z = ZSet::new();
        for (i, m) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            z.insert(m.as_bytes(), i as f64);
        }
        let names = |r: &Range| -> Vec<String> {
            select(&z, r)
                .into_iter()
                .map(|(m, _)| String::from_utf8(m.to_vec()).unwrap())
                .collect()
        };
        let p = |f: Form, a: &[&str]| parse_range(f, &args(a)).unwrap();
        let zr = Form::Zrange { store: false };
        assert_eq!(names(&p(zr, &["0", "-1"])), ["a", "b", "c", "d", "e"]);
        assert_eq!(names(&p(zr, &["1", "2", "rev"])), ["d", "c"]);
        assert_eq!(names(&p(zr, &["-2", "100"])), ["d", "e"]);
        assert!(names(&p(zr, &["3", "1"])).is_empty());
        assert_eq!(names(&p(zr, &["(1", "3", "byscore"])), ["c", "d"]);
        assert_eq!(
            names(&p(zr, &["+inf", "(1", "byscore", "rev", "limit", "1", "2"])),
            ["d", "c"]
        );
        assert_eq!(names(&p(zr, &["[b", "(d", "bylex"])), ["b", "c"]);
        assert_eq!(
            names(&p(Form::ByLex(true), &["+", "-", "limit", "0", "2"])),
            ["e", "d"]
        );
        assert_eq!(names(&p(Form::RevRank, &["0", "0"])), ["e"]);
        assert!(names(&p(zr, &["0", "10", "byscore", "limit", "-1", "2"])).is_empty());
        assert_eq!(
            names(&p(zr, &["0", "10", "byscore", "limit", "3", "-1"])),
            ["d", "e"]
        );
        let err = |f: Form, a: &[&str]| parse_range(f, &args(a)).unwrap_err();
        assert_eq!(err(zr, &["0", "1", "limit", "0", "1"]), Reply::err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"));
        assert_eq!(err(zr, &["a", "1", "byscore"]), Reply::err(BAD_SCORE_BOUND));
        assert_eq!(err(zr, &["a", "1", "bylex"]), Reply::err(BAD_LEX_BOUND));
        assert_eq!(err(zr, &["a", "1"]), Reply::err(NOT_INTEGER));
        assert_eq!(
            err(Form::Zrange { store: true }, &["0", "1", "withscores"]),
            Reply::err(SYNTAX)
        );
    }

    #[test]
    fn combines_with_weights_and_aggregates() {
        let mut a = ZSet::new();
        a.insert(b"x", 1.0);
        a.insert(b"y", 2.0);
        let s: std::collections::HashSet<Vec<u8>> = [b"y".to_vec(), b"z".to_vec()].into();
        let srcs = [Source::Z(&a), Source::S(&s)];
        let c = parse_combine(
            ZOp::Union,
            "zunion",
            &args(&["2", "a", "s", "weights", "2", "3"]),
            0,
            false,
        )
        .unwrap();
        let u = combine(&c, &srcs);
        assert_eq!(
            (u.score(b"x"), u.score(b"y"), u.score(b"z")),
            (Some(2.0), Some(7.0), Some(3.0))
        );
        let c = parse_combine(
            ZOp::Inter,
            "zinter",
            &args(&["2", "a", "s", "aggregate", "max"]),
            0,
            false,
        )
        .unwrap();
        let i = combine(&c, &srcs);
        assert_eq!((i.len(), i.score(b"y")), (1, Some(2.0)));
        let c = parse_combine(ZOp::Diff, "zdiff", &args(&["2", "a", "s"]), 0, false).unwrap();
        assert_eq!(combine(&c, &srcs).score(b"x"), Some(1.0));
        assert!(parse_combine(
            ZOp::Diff,
            "zdiff",
            &args(&["2", "a", "s", "weights", "1", "1"]),
            0,
            false
        )
        .is_err());
        assert_eq!(
            parse_combine(ZOp::Union, "zunion", &args(&["0", "a"]), 0, false).unwrap_err(),
            Reply::err("ERR at least 1 input key is needed for 'zunion' command")
        );
    }
}
