//! The hash commands: HSET (HMSET), HSETNX, HDEL, HINCRBY, HINCRBYFLOAT,
//! HGET, HMGET, HEXISTS, HLEN, HGETALL (a map in RESP3), HKEYS, HVALS,
//! HSTRLEN, HSCAN, HRANDFIELD, with Redis 7.0's replies and errors.
//!
//! Every change is one record: the fields it set, as a
//! [`LogRecord::HSet`] (HINCRBY and HINCRBYFLOAT log the result, so replay reads no
//! number), or the fields it removed, as a [`LogRecord::HDel`]. A hash
//! whose last field goes is deleted ([`Store::update`]).

use super::exec::Tx;
use super::scan::{parse_cursor_args, pick, rand_count, Cursor, Rng};
use super::strings::{float_text, parse_float, NOT_FLOAT};
use super::{NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE};
use crate::record::{LogRecord, Score};
use crate::resp::{parse_i64, push_int, Reply};
use crate::server::notify::Class;
use crate::store::{Store, Value};
use std::collections::HashMap;

/// A hash read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashRead {
    /// HGET key field.
    Get(Vec<u8>, Vec<u8>),
    /// HMGET key field...
    MGet(Vec<u8>, Vec<Vec<u8>>),
    /// HEXISTS key field.
    Exists(Vec<u8>, Vec<u8>),
    /// HLEN key.
    Len(Vec<u8>),
    /// HGETALL key.
    GetAll(Vec<u8>),
    /// HKEYS key.
    Keys(Vec<u8>),
    /// HVALS key.
    Vals(Vec<u8>),
    /// HSTRLEN key field.
    StrLen(Vec<u8>, Vec<u8>),
    /// HSCAN key cursor [MATCH p] [COUNT n].
    Scan(Vec<u8>, Cursor),
    /// HRANDFIELD key [count [WITHVALUES]].
    RandField(Vec<u8>, Option<(i64, bool)>),
}

/// A hash write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashWrite {
    /// HSET / HMSET key field value... (`ok`: HMSET's `+OK` reply).
    Set {
        /// The key.
        key: Vec<u8>,
        /// (field, value) pairs, in order.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        /// HMSET: answers OK rather than the count of new fields.
        ok: bool,
    },
    /// HSETNX key field value.
    SetNx(Vec<u8>, Vec<u8>, Vec<u8>),
    /// HDEL key field...
    Del(Vec<u8>, Vec<Vec<u8>>),
    /// HINCRBY key field increment.
    IncrBy(Vec<u8>, Vec<u8>, i64),
    /// HINCRBYFLOAT key field increment (parsed: Redis checks the
    /// increment before the stored value).
    IncrByFloat(Vec<u8>, Vec<u8>, Score),
}

/// Whether `name` is one of this module's commands.
pub fn owns(name: &str) -> bool {
    matches!(
        name,
        "hset"
            | "hmset"
            | "hsetnx"
            | "hdel"
            | "hincrby"
            | "hget"
            | "hmget"
            | "hexists"
            | "hlen"
            | "hgetall"
            | "hkeys"
            | "hvals"
            | "hstrlen"
            | "hincrbyfloat"
            | "hscan"
            | "hrandfield"
    )
}

/// Parses one of this module's commands (arity already checked).
pub(super) fn parse(name: &str, args: &[Vec<u8>]) -> Result<super::Command, Reply> {
    use super::Command::{Read as R, Write as W};
    let key = args[1].clone();
    let arg = |i: usize| args[i].clone();
    Ok(match name {
        "hset" | "hmset" => {
            if args.len() % 2 != 0 {
                return Err(super::wrong_arity(name));
            }
            let pairs = args[2..]
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            W(super::Write::Hash(HashWrite::Set {
                key,
                pairs,
                ok: name == "hmset",
            }))
        }
        "hsetnx" => W(super::Write::Hash(HashWrite::SetNx(key, arg(2), arg(3)))),
        "hdel" => W(super::Write::Hash(HashWrite::Del(key, args[2..].to_vec()))),
        "hincrby" => {
            let by = parse_i64(&args[3]).ok_or(Reply::err(NOT_INTEGER))?;
            W(super::Write::Hash(HashWrite::IncrBy(key, arg(2), by)))
        }
        "hget" => R(super::Read::Hash(HashRead::Get(key, arg(2)))),
        "hmget" => R(super::Read::Hash(HashRead::MGet(key, args[2..].to_vec()))),
        "hexists" => R(super::Read::Hash(HashRead::Exists(key, arg(2)))),
        "hlen" => R(super::Read::Hash(HashRead::Len(key))),
        "hgetall" => R(super::Read::Hash(HashRead::GetAll(key))),
        "hkeys" => R(super::Read::Hash(HashRead::Keys(key))),
        "hvals" => R(super::Read::Hash(HashRead::Vals(key))),
        "hstrlen" => R(super::Read::Hash(HashRead::StrLen(key, arg(2)))),
        "hincrbyfloat" => {
            let by = parse_float(&args[3]).ok_or(Reply::err(NOT_FLOAT))?;
            if by.is_infinite() {
                return Err(Reply::err("ERR value is NaN or Infinity"));
            }
            W(super::Write::Hash(HashWrite::IncrByFloat(
                key,
                arg(2),
                Score(by),
            )))
        }
        "hscan" => R(super::Read::Hash(HashRead::Scan(
            key,
            parse_cursor_args(args)?,
        ))),
        "hrandfield" => {
            let count = match args.len() {
                2 => None,
                3 | 4 => {
                    let wv = match args.get(3) {
                        None => false,
                        Some(w) if w.eq_ignore_ascii_case(b"withvalues") => true,
                        Some(_) => return Err(Reply::err(SYNTAX)),
                    };
                    let n = parse_i64(&args[2]).ok_or(Reply::err(NOT_INTEGER))?;
                    Some((rand_count(n, if wv { 2 } else { 1 })?, wv))
                }
                _ => return Err(Reply::err(SYNTAX)),
            };
            R(super::Read::Hash(HashRead::RandField(key, count)))
        }
        _ => return Err(Reply::err(SYNTAX)),
    })
}

/// A hash's content.
type Fields = HashMap<Vec<u8>, Vec<u8>>;

/// The hash at `key`: `Ok(None)` if absent, `Err` (WRONGTYPE) if another
/// type.
fn hash<'a>(store: &'a Store, key: &[u8], now: u64) -> Result<Option<&'a Fields>, Reply> {
    match store.read_value(key, now) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// Runs a hash read.
pub(super) fn read(cmd: &HashRead, store: &Store, now: u64) -> Reply {
    let key = match cmd {
        HashRead::Get(k, _)
        | HashRead::MGet(k, _)
        | HashRead::Exists(k, _)
        | HashRead::Len(k)
        | HashRead::GetAll(k)
        | HashRead::Keys(k)
        | HashRead::Vals(k)
        | HashRead::StrLen(k, _)
        | HashRead::Scan(k, _)
        | HashRead::RandField(k, _) => k,
    };
    let h = match hash(store, key, now) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let field = |f: &[u8]| h.and_then(|h| h.get(f));
    match cmd {
        HashRead::Get(_, f) => Reply::opt_bulk(field(f).map(Vec::as_slice)),
        HashRead::MGet(_, fs) => Reply::Array(
            fs.iter()
                .map(|f| Reply::opt_bulk(field(f).map(Vec::as_slice)))
                .collect(),
        ),
        HashRead::Exists(_, f) => Reply::Integer(i64::from(field(f).is_some())),
        HashRead::Len(_) => Reply::Integer(h.map_or(0, HashMap::len) as i64),
        HashRead::StrLen(_, f) => Reply::Integer(field(f).map_or(0, Vec::len) as i64),
        HashRead::Scan(_, cursor) => cursor.step(
            h.map_or(0, HashMap::len),
            h.into_iter().flatten().map(|(f, v)| (f.as_slice(), v)),
            |f, v, out| {
                out.push(Reply::Bulk(f.to_vec()));
                out.push(Reply::Bulk(v.clone()));
            },
        ),
        HashRead::RandField(_, count) => {
            let mut rng = Rng::new();
            match (h, count) {
                (None, None) => Reply::Nil,
                (None, Some(_)) => Reply::Array(Vec::new()),
                (Some(h), None) => {
                    let i = rng.below(h.len());
                    Reply::Bulk(h.keys().nth(i).expect("in range").clone())
                }
                (Some(h), Some((c, wv))) => {
                    let all: Vec<(&Vec<u8>, &Vec<u8>)> = h.iter().collect();
                    let picked = pick(&mut rng, all.len(), *c);
                    let field = |i: usize| Reply::Bulk(all[i].0.clone());
                    if *wv {
                        let value = |i: usize| Reply::Bulk(all[i].1.clone());
                        Reply::Pairs(picked.into_iter().map(|i| (field(i), value(i))).collect())
                    } else {
                        Reply::Array(picked.into_iter().map(field).collect())
                    }
                }
            }
        }
        HashRead::GetAll(_) => Reply::Map(
            h.into_iter()
                .flatten()
                .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                .collect(),
        ),
        HashRead::Keys(_) => Reply::Array(
            h.into_iter()
                .flatten()
                .map(|(f, _)| Reply::Bulk(f.clone()))
                .collect(),
        ),
        HashRead::Vals(_) => Reply::Array(
            h.into_iter()
                .flatten()
                .map(|(_, v)| Reply::Bulk(v.clone()))
                .collect(),
        ),
    }
}

/// The keys a hash write may change, for the undo journal.
pub(super) fn touched(cmd: &HashWrite) -> &[u8] {
    match cmd {
        HashWrite::Set { key, .. }
        | HashWrite::SetNx(key, ..)
        | HashWrite::Del(key, _)
        | HashWrite::IncrBy(key, ..)
        | HashWrite::IncrByFloat(key, ..) => key,
    }
}

/// The fields a hash write may change, for the undo journal.
pub(super) fn fields(cmd: &HashWrite) -> Box<dyn Iterator<Item = &[u8]> + '_> {
    match cmd {
        HashWrite::Set { pairs, .. } => Box::new(pairs.iter().map(|(f, _)| f.as_slice())),
        HashWrite::SetNx(_, f, _)
        | HashWrite::IncrBy(_, f, _)
        | HashWrite::IncrByFloat(_, f, _) => Box::new(std::iter::once(f.as_slice())),
        HashWrite::Del(_, fs) => Box::new(fs.iter().map(Vec::as_slice)),
    }
}

/// An upper bound of the record's size.
pub(super) fn record_bound(cmd: &HashWrite) -> usize {
    let s = |b: &Vec<u8>| b.len() + 10;
    32 + match cmd {
        HashWrite::Set { key, pairs, .. } => {
            s(key) + pairs.iter().map(|(f, v)| s(f) + s(v)).sum::<usize>()
        }
        HashWrite::SetNx(k, f, v) => s(k) + s(f) + s(v),
        HashWrite::Del(k, fs) => s(k) + fs.iter().map(s).sum::<usize>(),
        HashWrite::IncrBy(k, f, _) => s(k) + s(f) + 20,
        HashWrite::IncrByFloat(k, f, _) => s(k) + s(f) + 400,
    }
}

/// Sets `pairs` in the hash at `key` (created if absent): how many fields
/// are new. The caller checked the type.
pub fn set_fields(store: &mut Store, key: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> usize {
    store.upsert(
        key,
        || Value::Hash(HashMap::new()),
        |v| {
            let Value::Hash(h) = v else {
                unreachable!("checked a hash")
            };
            let (mut new, mut delta) = (0, 0isize);
            for (f, val) in pairs {
                delta += val.len() as isize;
                match h.insert(f.clone(), val.clone()) {
                    Some(old) => delta -= old.len() as isize,
                    None => {
                        new += 1;
                        delta += f.len() as isize;
                    }
                }
            }
            (new, delta)
        },
    )
}

/// Removes `fields` from the hash at `key`: the fields removed, in order.
pub fn del_fields(store: &mut Store, key: &[u8], fields: &[Vec<u8>]) -> Vec<Vec<u8>> {
    store
        .update(key, |v| {
            let Value::Hash(h) = v else {
                return (Vec::new(), 0);
            };
            let (mut gone, mut delta) = (Vec::new(), 0isize);
            for f in fields {
                if let Some(old) = h.remove(f) {
                    delta -= (f.len() + old.len()) as isize;
                    gone.push(f.clone());
                }
            }
            (gone, delta)
        })
        .unwrap_or_default()
}

/// Runs a hash write.
pub(super) fn write(cmd: HashWrite, mut tx: Tx<'_>) -> (Reply, Option<LogRecord>) {
    let key = touched(&cmd).to_vec();
    tx.purge(&key);
    let now = tx.now;
    let current = match hash(tx.store, &key, now) {
        Ok(h) => h,
        Err(e) => return tx.done(e),
    };
    match cmd {
        HashWrite::Set { key, pairs, ok } => {
            let new = set_fields(tx.store, &key, &pairs);
            tx.store.notify(Class::HASH, "hset", &key);
            let reply = if ok {
                Reply::ok()
            } else {
                Reply::Integer(new as i64)
            };
            tx.logged(reply, LogRecord::HSet { key, pairs })
        }
        HashWrite::SetNx(key, f, v) => {
            if current.is_some_and(|h| h.contains_key(&f)) {
                return tx.done(Reply::Integer(0));
            }
            let pairs = vec![(f, v)];
            set_fields(tx.store, &key, &pairs);
            tx.store.notify(Class::HASH, "hset", &key);
            tx.logged(Reply::Integer(1), LogRecord::HSet { key, pairs })
        }
        HashWrite::IncrBy(key, f, by) => {
            let cur = match current.and_then(|h| h.get(&f)) {
                None => 0,
                Some(v) => match parse_i64(v) {
                    Some(n) => n,
                    None => return tx.done(Reply::err("ERR hash value is not an integer")),
                },
            };
            let Some(new) = cur.checked_add(by) else {
                return tx.done(Reply::err(OVERFLOW));
            };
            let mut text = Vec::with_capacity(20);
            push_int(&mut text, new);
            let pairs = vec![(f, text)];
            set_fields(tx.store, &key, &pairs);
            tx.store.notify(Class::HASH, "hincrby", &key);
            tx.logged(Reply::Integer(new), LogRecord::HSet { key, pairs })
        }
        HashWrite::IncrByFloat(key, f, by) => {
            let cur = match current.and_then(|h| h.get(&f)) {
                None => 0.0,
                Some(v) => match parse_float(v) {
                    Some(n) => n,
                    None => return tx.done(Reply::err("ERR hash value is not a float")),
                },
            };
            let new = cur + by.0;
            if !new.is_finite() {
                return tx.done(Reply::err("ERR increment would produce NaN or Infinity"));
            }
            let text = float_text(new);
            let pairs = vec![(f, text.clone())];
            set_fields(tx.store, &key, &pairs);
            tx.store.notify(Class::HASH, "hincrbyfloat", &key);
            tx.logged(Reply::Bulk(text), LogRecord::HSet { key, pairs })
        }
        HashWrite::Del(key, fields) => {
            let gone = del_fields(tx.store, &key, &fields);
            if gone.is_empty() {
                return tx.done(Reply::Integer(0));
            }
            let n = gone.len() as i64;
            tx.notify_change(Class::HASH, "hdel", &key);
            tx.logged(Reply::Integer(n), LogRecord::HDel { key, fields: gone })
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
    use std::collections::HashMap;

    /// Runs `args` on `st` and applies its record to `replica`.
    fn run(st: &mut Store, replica: &mut Store, args: &[&str]) -> Reply {
        let a: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
        let (r, rec) = execute(st, &a, 1000);
        if let Some(rec) = rec {
            let rec = LogRecord::decode(&rec.to_bytes()).expect("decodes");
            rec.apply(replica);
        }
        r
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn hash_commands_answer_as_redis_and_replay() {
        let (mut st, mut rep) = (Store::new(), Store::new());
        let mut r = |a: &[&str]| run(&mut st, &mut rep, a);
        assert_eq!(r(&["hset", "h", "a", "1", "b", "2"]), Reply::Integer(2));
        assert_eq!(r(&["hset", "h", "a", "10", "c", "3"]), Reply::Integer(1));
        assert_eq!(r(&["hmset", "h", "d", "4"]), Reply::ok());
        assert_eq!(r(&["hget", "h", "a"]), bulk("10"));
        assert_eq!(r(&["hget", "h", "zz"]), Reply::Nil);
        assert_eq!(
            r(&["hmget", "h", "a", "zz", "b"]),
            Reply::Array(vec![bulk("10"), Reply::Nil, bulk("2")])
        );
        assert_eq!(r(&["hlen", "h"]), Reply::Integer(4));
        assert_eq!(r(&["hexists", "h", "c"]), Reply::Integer(1));
        assert_eq!(r(&["hstrlen", "h", "a"]), Reply::Integer(2));
        assert_eq!(r(&["hsetnx", "h", "a", "x"]), Reply::Integer(0));
        assert_eq!(r(&["hsetnx", "h", "e", "x"]), Reply::Integer(1));
        assert_eq!(r(&["hincrby", "h", "a", "-15"]), Reply::Integer(-5));
        assert_eq!(r(&["hincrby", "h", "new", "7"]), Reply::Integer(7));
        assert!(
            matches!(r(&["hincrby", "h", "e", "1"]), Reply::Error(e) if e.contains("not an integer"))
        );
        assert!(matches!(r(&["hset", "h", "a"]), Reply::Error(e) if e.contains("wrong number")));
        assert!(
            matches!(r(&["hincrby", "h", "a", "x"]), Reply::Error(e) if e.contains("not an integer"))
        );
        r(&["set", "s", "v"]);
        assert!(matches!(r(&["hget", "s", "a"]), Reply::Error(e) if e.starts_with("WRONGTYPE")));
        assert!(
            matches!(r(&["hset", "s", "a", "1"]), Reply::Error(e) if e.starts_with("WRONGTYPE"))
        );
        assert!(matches!(r(&["get", "h"]), Reply::Error(e) if e.starts_with("WRONGTYPE")));
        match r(&["hgetall", "h"]) {
            Reply::Map(m) => assert_eq!(m.len(), 6),
            other => panic!("{other:?}"),
        }
        assert_eq!(r(&["hdel", "h", "a", "zz", "b"]), Reply::Integer(2));
        assert_eq!(r(&["hdel", "h", "c", "d", "e", "new"]), Reply::Integer(4));
        assert_eq!(
            r(&["exists", "h"]),
            Reply::Integer(0),
            "emptied hash deleted"
        );
        assert_eq!(r(&["hlen", "h"]), Reply::Integer(0));
        assert_eq!(st, rep, "the records replay every change");
        assert_eq!(st.data_bytes(), rep.data_bytes());
    }

    #[test]
    fn hincrbyfloat_hscan_and_hrandfield_answer_as_redis_and_replay() {
        let (mut st, mut rep) = (Store::new(), Store::new());
        let mut r = |a: &[&str]| run(&mut st, &mut rep, a);
        r(&["hset", "h", "f", "1.5", "s", "x"]);
        assert_eq!(r(&["hincrbyfloat", "h", "f", "0.1"]), bulk("1.6"));
        assert_eq!(r(&["hincrbyfloat", "h", "new", "-2"]), bulk("-2"));
        assert_eq!(
            r(&["hincrbyfloat", "h", "s", "1"]),
            Reply::err("ERR hash value is not a float")
        );
        assert_eq!(
            r(&["hincrbyfloat", "h", "f", "+inf"]),
            Reply::err("ERR value is NaN or Infinity")
        );
        assert_eq!(
            r(&["hincrbyfloat", "h", "f", "abc"]),
            Reply::err("ERR value is not a valid float")
        );
        let Reply::Array(parts) = r(&["hscan", "h", "0", "match", "f*"]) else {
            panic!()
        };
        assert_eq!(parts[0], bulk("0"), "a small hash is scanned whole");
        assert_eq!(parts[1], Reply::Array(vec![bulk("f"), bulk("1.6")]));
        assert!(matches!(r(&["hscan", "h", "x"]), Reply::Error(e) if e.contains("invalid cursor")));
        let Reply::Pairs(p) = r(&["hrandfield", "h", "-5", "withvalues"]) else {
            panic!()
        };
        assert_eq!(p.len(), 5, "a negative count may repeat");
        let Reply::Array(f) = r(&["hrandfield", "h", "10"]) else {
            panic!()
        };
        assert_eq!(f.len(), 3, "a positive count is capped at the fields");
        assert_eq!(r(&["hrandfield", "nope"]), Reply::Nil);
        assert!(
            matches!(r(&["hrandfield", "h", "1", "bad"]), Reply::Error(e) if e.contains("syntax"))
        );
        assert_eq!(st, rep, "the records replay HINCRBYFLOAT");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Set(u8, u8, u8),
        SetNx(u8, u8, u8),
        Del(u8, Vec<u8>),
        Incr(u8, u8, i8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3u8, 0..6u8, 0..4u8).prop_map(|(k, f, v)| Op::Set(k, f, v)),
            (0..3u8, 0..6u8, 0..4u8).prop_map(|(k, f, v)| Op::SetNx(k, f, v)),
            (0..3u8, prop::collection::vec(0..6u8, 1..4)).prop_map(|(k, f)| Op::Del(k, f)),
            (0..3u8, 0..6u8, any::<i8>()).prop_map(|(k, f, by)| Op::Incr(k, f, by)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Random hash commands against a model of hashes; the log's
        /// records, replayed, give the same store.
        #[test]
        fn hashes_match_a_model_and_replay(ops in prop::collection::vec(op(), 1..60)) {
            let (mut st, mut rep) = (Store::new(), Store::new());
            let mut model: HashMap<String, HashMap<String, String>> = HashMap::new();
            for o in ops {
                let (k, f) = match &o {
                    Op::Set(k, f, _) | Op::SetNx(k, f, _) | Op::Incr(k, f, _) => (format!("k{k}"), format!("f{f}")),
                    Op::Del(k, _) => (format!("k{k}"), String::new()),
                };
                let h = model.entry(k.clone()).or_default();
                let (args, want): (Vec<String>, Reply) = match o {
                    Op::Set(_, _, v) => {
                        let new = h.insert(f.clone(), format!("v{v}")).is_none();
                        (vec!["hset".into(), k.clone(), f, format!("v{v}")], Reply::Integer(i64::from(new)))
                    }
                    Op::SetNx(_, _, v) => {
                        let new = !h.contains_key(&f);
                        if new {
                            h.insert(f.clone(), format!("v{v}"));
                        }
                        (vec!["hsetnx".into(), k.clone(), f, format!("v{v}")], Reply::Integer(i64::from(new)))
                    }
                    Op::Del(_, fs) => {
                        let mut fs: Vec<String> = fs.iter().map(|f| format!("f{f}")).collect();
                        let n = fs.iter().filter(|f| h.remove(*f).is_some()).count();
                        let mut args = vec!["hdel".into(), k.clone()];
                        args.append(&mut fs);
                        (args, Reply::Integer(n as i64))
                    }
                    Op::Incr(_, _, by) => {
                        let want = match h.get(&f).map(|v| v.parse::<i64>()) {
                            None => Reply::Integer(i64::from(by)),
                            Some(Ok(n)) => Reply::Integer(n + i64::from(by)),
                            Some(Err(_)) => Reply::err("ERR hash value is not an integer"),
                        };
                        if let Reply::Integer(n) = want {
                            h.insert(f.clone(), n.to_string());
                        }
                        (vec!["hincrby".into(), k.clone(), f, by.to_string()], want)
                    }
                };
                if h.is_empty() {
                    model.remove(&k);
                }
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                prop_assert_eq!(run(&mut st, &mut rep, &a), want, "{:?}", args);
            }
            prop_assert_eq!(st.len(), model.len());
            for (k, h) in &model {
                let want: HashMap<Vec<u8>, Vec<u8>> = h
                    .iter()
                    .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
                    .collect();
                prop_assert_eq!(st.value(k.as_bytes(), 0), Some(&Value::Hash(want)));
            }
            prop_assert!(st == rep, "replay differs");
            prop_assert_eq!(st.data_bytes(), rep.data_bytes());
        }
    }

    #[test]
    fn a_journaled_hash_write_rolls_back_exactly_without_copying_the_hash() {
        use crate::command::{execute_write_journaled, parse, Command};
        use crate::databases::Databases;
        use crate::store::Undo;
        let setup = || {
            let mut dbs = Databases::new(1);
            let st = dbs.db_mut(0);
            for (k, f, v) in [
                ("h", "a", "1"),
                ("h", "b", "x"),
                ("one", "f", "v"),
                ("old", "f", "v"),
            ] {
                super::set_fields(
                    st,
                    k.as_bytes(),
                    &[(f.as_bytes().to_vec(), v.as_bytes().to_vec())],
                );
            }
            st.set_expire(b"h", Some(5000));
            st.set_expire(b"old", Some(10));
            st.set(b"s", b"v".to_vec(), None);
            dbs
        };
        let cmds: &[&[&str]] = &[
            &["hset", "h", "a", "2", "new", "3"],
            &["hsetnx", "h", "c", "1"],
            &["hincrby", "h", "a", "5"],
            &["hdel", "h", "a", "b", "zz"],
            &["hdel", "one", "f"],
            &["hset", "old", "g", "1"],
            &["hset", "fresh", "g", "1"],
            &["hset", "s", "g", "1"],
        ];
        for c in cmds {
            let mut dbs = setup();
            let a: Vec<Vec<u8>> = c.iter().map(|s| s.as_bytes().to_vec()).collect();
            let Ok(Command::Write(w)) = parse(&a, true) else {
                panic!("{c:?}")
            };
            let mut undo = Undo::new();
            execute_write_journaled(w, dbs.db_mut(0), 1000, &mut undo);
            if let Some((shared, _)) = dbs.db(0).shared(b"h") {
                assert_eq!(
                    std::sync::Arc::strong_count(&shared),
                    2,
                    "{c:?}: the journal holds no copy"
                );
            }
            undo.rollback(&mut dbs);
            let before = setup();
            assert!(dbs == before, "{c:?} rolled back");
            assert_eq!(dbs.db(0).data_bytes(), before.db(0).data_bytes(), "{c:?}");
            assert_eq!(dbs.db(0).raw(b"h").unwrap().expire_at, Some(5000));
        }
    }
}
