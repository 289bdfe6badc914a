//! The list commands: LPUSH/RPUSH(X), LPOP/RPOP (with a count), LRANGE,
//! LINDEX, LSET, LLEN, LREM, LTRIM, LINSERT, LPOS, LMOVE, RPOPLPUSH, LMPOP,
//! and the parse of the blocking forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
//! BLMPOP), with Redis 7.0's replies and errors.
//!
//! Every change is one record of what it did ([`ListRecord`]): a push logs
//! the pushed elements, a pop the count, LMOVE its pop and its push in one
//! `Multi`; indices are resolved when the command runs, so replay reads no
//! more than the list. A list whose last element goes is deleted
//! ([`Store::update`]).
//!
//! Blocking: a blocking form carries its timeout ([`ListWrite::block`]).
//! Run by [`execute_write`](super::execute_write) (inside MULTI, or on a
//! plain store) it answers as the non-blocking form would, nil when
//! nothing is there: it never waits. Waiting is the server's: it asks
//! [`Write::would_block`](super::Write::would_block) first, and serves a waiter later with
//! [`ListWrite::serve_on`], a non-blocking form run like any write (so
//! the pop it makes is logged and journaled like any pop).

mod parse;

pub(super) use parse::{owns, parse, timeout};

use super::exec::Tx;
use super::WRONGTYPE;
use crate::record::{ListRecord, LogRecord};
use crate::resp::Reply;
use crate::server::notify::Class;
use crate::store::{Store, Undo, Value};
use std::collections::VecDeque;

/// `ERR no such key` (LSET on an absent key).
const NO_SUCH_KEY: &str = "ERR no such key";
/// `ERR index out of range` (LSET).
const INDEX_RANGE: &str = "ERR index out of range";
/// LPOP/RPOP's count.
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";

/// A list read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListRead {
    /// LRANGE key start stop.
    Range(Vec<u8>, i64, i64),
    /// LINDEX key index.
    Index(Vec<u8>, i64),
    /// LLEN key.
    Len(Vec<u8>),
    /// LPOS key element [RANK rank] [COUNT num] [MAXLEN len].
    Pos {
        /// The key.
        key: Vec<u8>,
        /// The element looked for.
        element: Vec<u8>,
        /// Which match is the first reported (negative: from the tail).
        rank: i64,
        /// COUNT: how many matches (0: all); `None`: one index, not an
        /// array.
        count: Option<usize>,
        /// Elements compared at most (0: all).
        maxlen: usize,
    },
}

/// A list write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListWrite {
    /// LPUSH / RPUSH / LPUSHX / RPUSHX.
    Push {
        /// The key.
        key: Vec<u8>,
        /// At the head.
        left: bool,
        /// What is pushed, in order.
        elements: Vec<Vec<u8>>,
        /// The X forms: only onto an existing list.
        only_existing: bool,
    },
    /// LPOP / RPOP key [count].
    Pop {
        /// The key.
        key: Vec<u8>,
        /// From the head.
        left: bool,
        /// The count, if given (the reply is then an array).
        count: Option<usize>,
    },
    /// LSET key index element.
    Set(Vec<u8>, i64, Vec<u8>),
    /// LREM key count element.
    Rem(Vec<u8>, i64, Vec<u8>),
    /// LTRIM key start stop.
    Trim(Vec<u8>, i64, i64),
    /// LINSERT key BEFORE|AFTER pivot element.
    Insert {
        /// The key.
        key: Vec<u8>,
        /// AFTER.
        after: bool,
        /// The element it goes next to.
        pivot: Vec<u8>,
        /// What is inserted.
        element: Vec<u8>,
    },
    /// LMOVE / RPOPLPUSH, and BLMOVE / BRPOPLPUSH (`block`).
    Move {
        /// The source.
        from: Vec<u8>,
        /// The destination.
        to: Vec<u8>,
        /// Popped from the source's head.
        from_left: bool,
        /// Pushed at the destination's head.
        to_left: bool,
        /// Blocking: the timeout in ms (0: forever).
        block: Option<u64>,
    },
    /// LMPOP, and BLMPOP, BLPOP, BRPOP (`block`).
    MPop {
        /// The keys, tried in order.
        keys: Vec<Vec<u8>>,
        /// From the head.
        left: bool,
        /// At most this many (at least 1).
        count: usize,
        /// BLPOP / BRPOP's reply, `[key, element]`, rather than LMPOP's
        /// `[key, [elements]]`.
        single: bool,
        /// Blocking: the timeout in ms (0: forever).
        block: Option<u64>,
    },
}

/// The list at `key`: `Ok(None)` if absent, `Err` (WRONGTYPE) if another
/// type.
fn list<'a>(
    store: &'a Store,
    key: &[u8],
    now: u64,
) -> Result<Option<&'a VecDeque<Vec<u8>>>, Reply> {
    match store.read_value(key, now) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// Redis's range resolution (LRANGE, LTRIM): the first index and how many
/// elements from it, for a list of `len`.
fn resolve(start: i64, stop: i64, len: usize) -> (usize, usize) {
    let n = len as i64;
    let start = if start < 0 { (n + start).max(0) } else { start };
    let stop = if stop < 0 { n + stop } else { stop.min(n - 1) };
    if start > stop || start >= n {
        (0, 0)
    } else {
        (start as usize, (stop - start + 1) as usize)
    }
}

fn bulks<'a>(it: impl Iterator<Item = &'a Vec<u8>>) -> Reply {
    Reply::Array(it.map(|e| Reply::Bulk(e.clone())).collect())
}

/// Runs a list read.
pub(super) fn read(cmd: &ListRead, store: &Store, now: u64) -> Reply {
    let key = match cmd {
        ListRead::Range(k, ..) | ListRead::Index(k, _) | ListRead::Len(k) => k,
        ListRead::Pos { key, .. } => key,
    };
    let l = match list(store, key, now) {
        Ok(l) => l,
        Err(e) => return e,
    };
    match cmd {
        ListRead::Range(_, start, stop) => {
            let Some(l) = l else {
                return Reply::Array(Vec::new());
            };
            let (from, n) = resolve(*start, *stop, l.len());
            bulks(l.range(from..from + n))
        }
        ListRead::Index(_, i) => {
            let Some(l) = l else { return Reply::Nil };
            let i = if *i < 0 { l.len() as i64 + i } else { *i };
            Reply::opt_bulk(usize::try_from(i).ok().and_then(|i| l.get(i)).cloned())
        }
        ListRead::Len(_) => Reply::Integer(l.map_or(0, VecDeque::len) as i64),
        ListRead::Pos {
            element,
            rank,
            count,
            maxlen,
            ..
        } => {
            let Some(l) = l else {
                return match count {
                    Some(_) => Reply::Array(Vec::new()),
                    None => Reply::Nil,
                };
            };
            let len = l.len();
            let limit = if *maxlen == 0 {
                len
            } else {
                (*maxlen).min(len)
            };
            let want = match count {
                Some(0) => usize::MAX,
                Some(c) => *c,
                None => 1,
            };
            let mut skip = rank.unsigned_abs() - 1;
            let mut found = Vec::new();
            let indices: Box<dyn Iterator<Item = usize>> = if *rank > 0 {
                Box::new(0..limit)
            } else {
                Box::new((len - limit..len).rev())
            };
            for i in indices {
                if found.len() >= want {
                    break;
                }
                if l[i] == *element {
                    if skip > 0 {
                        skip -= 1;
                    } else {
                        found.push(Reply::Integer(i as i64));
                    }
                }
            }
            match count {
                Some(_) => Reply::Array(found),
                None => found.pop().unwrap_or(Reply::Nil),
            }
        }
    }
}

fn list_mut(v: &mut Value) -> &mut VecDeque<Vec<u8>> {
    match v {
        Value::List(l) => l,
        _ => unreachable!("checked a list"),
    }
}

/// Pushes `elements`, in order, at the head (`left`) or tail of the list at
/// `key` (created if absent): its length after. The caller checked the
/// type.
pub fn push(store: &mut Store, key: &[u8], left: bool, elements: &[Vec<u8>]) -> usize {
    store.upsert(
        key,
        || Value::List(VecDeque::new()),
        |v| {
            let l = list_mut(v);
            let mut delta = 0isize;
            for e in elements {
                delta += e.len() as isize;
                if left {
                    l.push_front(e.clone());
                } else {
                    l.push_back(e.clone());
                }
            }
            (l.len(), delta)
        },
    )
}

/// Pops at most `count` elements from the head (`left`) or tail of the
/// list at `key`, in the order popped.
pub fn pop(store: &mut Store, key: &[u8], left: bool, count: usize) -> Vec<Vec<u8>> {
    store
        .update(key, |v| {
            let Value::List(l) = v else {
                return (Vec::new(), 0);
            };
            let n = count.min(l.len());
            let popped: Vec<Vec<u8>> = if left {
                l.drain(..n).collect()
            } else {
                (0..n).filter_map(|_| l.pop_back()).collect()
            };
            let delta = popped.iter().map(Vec::len).sum::<usize>() as isize;
            (popped, -delta)
        })
        .unwrap_or_default()
}

/// Replaces the element at `index` of the list at `key`; `false` if out of
/// range.
pub fn set(store: &mut Store, key: &[u8], index: usize, element: Vec<u8>) -> bool {
    store
        .update(key, |v| {
            let Value::List(l) = v else {
                return (false, 0);
            };
            match l.get_mut(index) {
                Some(slot) => {
                    let delta = element.len() as isize - slot.len() as isize;
                    *slot = element;
                    (true, delta)
                }
                None => (false, 0),
            }
        })
        .unwrap_or(false)
}

/// Keeps `len` elements from `start` of the list at `key` (deleted if none).
pub fn trim(store: &mut Store, key: &[u8], start: usize, len: usize) {
    store.update(key, |v| {
        let Value::List(l) = v else { return ((), 0) };
        let before: usize = l.iter().map(Vec::len).sum();
        let start = start.min(l.len());
        l.drain(..start);
        l.truncate(len);
        let after: usize = l.iter().map(Vec::len).sum();
        ((), after as isize - before as isize)
    });
}

/// LREM on the list at `key`: how many were removed.
pub fn rem(store: &mut Store, key: &[u8], count: i64, element: &[u8]) -> usize {
    store
        .update(key, |v| {
            let Value::List(l) = v else { return (0, 0) };
            let limit = if count == 0 {
                usize::MAX
            } else {
                usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
            };
            let mut removed = 0;
            if count >= 0 {
                let mut i = 0;
                while i < l.len() && removed < limit {
                    if l[i] == element {
                        l.remove(i);
                        removed += 1;
                    } else {
                        i += 1;
                    }
                }
            } else {
                let mut i = l.len();
                while i > 0 && removed < limit {
                    i -= 1;
                    if l[i] == element {
                        l.remove(i);
                        removed += 1;
                    }
                }
            }
            (removed, -((removed * element.len()) as isize))
        })
        .unwrap_or(0)
}

/// Inserts `element` at `index` of the list at `key`: its length after.
pub fn insert(store: &mut Store, key: &[u8], index: usize, element: Vec<u8>) -> usize {
    store
        .update(key, |v| {
            let Value::List(l) = v else { return (0, 0) };
            let delta = element.len() as isize;
            l.insert(index.min(l.len()), element);
            (l.len(), delta)
        })
        .unwrap_or(0)
}

impl ListWrite {
    /// A blocking form's timeout in ms (0: forever); `None` for the others.
    pub fn block(&self) -> Option<u64> {
        match self {
            ListWrite::Move { block, .. } | ListWrite::MPop { block, .. } => *block,
            _ => None,
        }
    }

    /// The keys a blocking form waits on (its sources).
    pub fn sources(&self) -> &[Vec<u8>] {
        match self {
            ListWrite::Move { from, .. } => std::slice::from_ref(from),
            ListWrite::MPop { keys, .. } => keys,
            _ => &[],
        }
    }

    /// What a blocked waiter runs once `key` holds a list: the
    /// non-blocking form, on that key alone.
    pub fn serve_on(&self, key: &[u8]) -> ListWrite {
        match self {
            ListWrite::MPop {
                left,
                count,
                single,
                ..
            } => ListWrite::MPop {
                keys: vec![key.to_vec()],
                left: *left,
                count: *count,
                single: *single,
                block: None,
            },
            ListWrite::Move {
                to,
                from_left,
                to_left,
                ..
            } => ListWrite::Move {
                from: key.to_vec(),
                to: to.clone(),
                from_left: *from_left,
                to_left: *to_left,
                block: None,
            },
            other => other.clone(),
        }
    }

    /// The answer of a blocking form that timed out.
    pub fn timed_out(&self) -> Reply {
        match self {
            ListWrite::Move { .. } => Reply::Nil,
            _ => Reply::NilArray,
        }
    }
}

/// The keys a list write may change.
fn keys(cmd: &ListWrite) -> Vec<&[u8]> {
    match cmd {
        ListWrite::Push { key, .. }
        | ListWrite::Pop { key, .. }
        | ListWrite::Set(key, ..)
        | ListWrite::Rem(key, ..)
        | ListWrite::Trim(key, ..)
        | ListWrite::Insert { key, .. } => vec![key],
        ListWrite::Move { from, to, .. } => vec![from, to],
        ListWrite::MPop { keys, .. } => keys.iter().map(Vec::as_slice).collect(),
    }
}

/// An upper bound of the record's size.
pub(super) fn record_bound(cmd: &ListWrite) -> usize {
    let s = |b: &[u8]| b.len() + 10;
    let strings: usize = keys(cmd).iter().map(|k| 2 * s(k)).sum();
    64 + strings
        + match cmd {
            ListWrite::Push { elements, .. } => elements.iter().map(|e| s(e)).sum(),
            ListWrite::Set(_, _, e) | ListWrite::Rem(_, _, e) => s(e),
            ListWrite::Insert { element, .. } => s(element),
            _ => 0,
        }
}

/// [`super::execute_write_journaled`]'s step for a list write: element-level
/// inverses for pushes and pops (so that an LPUSH onto a long list does not
/// copy it), the whole entry for the others.
pub(super) fn journal(cmd: &ListWrite, store: &Store, now: u64, undo: &mut Undo) {
    // Keys a lazy expiry may remove on the way.
    for k in keys(cmd) {
        if store.raw(k).is_some() && !store.contains(k, now) {
            undo.save_key(store, k);
        }
    }
    match cmd {
        ListWrite::Push {
            key,
            left,
            elements,
            ..
        } => undo.save_list_push(store, key, *left, elements.len(), now),
        ListWrite::Pop { key, left, count } => {
            undo.save_list_pop(store, key, *left, count.unwrap_or(1), now)
        }
        ListWrite::MPop {
            keys, left, count, ..
        } => {
            if let Some(k) = keys.iter().find(|k| store.contains(k, now)) {
                undo.save_list_pop(store, k, *left, *count, now);
            }
        }
        ListWrite::Move {
            from,
            to,
            from_left,
            to_left,
            ..
        } => {
            if from == to {
                // A rotation: rare enough to journal whole.
                undo.save_key(store, from);
            } else {
                undo.save_list_pop(store, from, *from_left, 1, now);
                undo.save_list_push(store, to, *to_left, 1, now);
            }
        }
        ListWrite::Set(key, ..) | ListWrite::Rem(key, ..) | ListWrite::Trim(key, ..) => {
            undo.save_key(store, key)
        }
        ListWrite::Insert { key, .. } => undo.save_key(store, key),
    }
}

/// The keyspace event of a push at the head (`left`) or the tail.
fn push_event(left: bool) -> &'static str {
    if left {
        "lpush"
    } else {
        "rpush"
    }
}

/// The keyspace event of a pop from the head (`left`) or the tail.
fn pop_event(left: bool) -> &'static str {
    if left {
        "lpop"
    } else {
        "rpop"
    }
}

fn rec(r: ListRecord) -> LogRecord {
    LogRecord::List(r)
}

/// Runs a list write.
pub(super) fn write(cmd: ListWrite, mut tx: Tx<'_>) -> (Reply, Option<LogRecord>) {
    for k in keys(&cmd) {
        tx.purge(k);
    }
    let now = tx.now;
    match cmd {
        ListWrite::Push {
            key,
            left,
            elements,
            only_existing,
        } => {
            match list(tx.store, &key, now) {
                Err(e) => return tx.done(e),
                Ok(None) if only_existing => return tx.done(Reply::Integer(0)),
                Ok(_) => {}
            }
            let len = push(tx.store, &key, left, &elements);
            tx.notify_change(Class::LIST, push_event(left), &key);
            let r = ListRecord::Push {
                key,
                left,
                elements,
            };
            tx.logged(Reply::Integer(len as i64), rec(r))
        }
        ListWrite::Pop { key, left, count } => {
            match list(tx.store, &key, now) {
                Err(e) => return tx.done(e),
                Ok(None) => {
                    return tx.done(match count {
                        Some(_) => Reply::NilArray,
                        None => Reply::Nil,
                    })
                }
                Ok(Some(_)) => {}
            }
            if count == Some(0) {
                return tx.done(Reply::Array(Vec::new()));
            }
            let popped = pop(tx.store, &key, left, count.unwrap_or(1));
            tx.notify_change(Class::LIST, pop_event(left), &key);
            let r = ListRecord::Pop {
                key,
                left,
                count: popped.len() as u64,
            };
            let reply = match count {
                Some(_) => Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
                None => Reply::opt_bulk(popped.into_iter().next()),
            };
            tx.logged(reply, rec(r))
        }
        ListWrite::Set(key, index, element) => {
            let len = match list(tx.store, &key, now) {
                Err(e) => return tx.done(e),
                Ok(None) => return tx.done(Reply::err(NO_SUCH_KEY)),
                Ok(Some(l)) => l.len() as i64,
            };
            let i = if index < 0 { len + index } else { index };
            if i < 0 || i >= len {
                return tx.done(Reply::err(INDEX_RANGE));
            }
            set(tx.store, &key, i as usize, element.clone());
            tx.notify_change(Class::LIST, "lset", &key);
            let r = ListRecord::Set {
                key,
                index: i as u64,
                element,
            };
            tx.logged(Reply::ok(), rec(r))
        }
        ListWrite::Rem(key, count, element) => {
            match list(tx.store, &key, now) {
                Err(e) => return tx.done(e),
                Ok(None) => return tx.done(Reply::Integer(0)),
                Ok(Some(_)) => {}
            }
            let n = rem(tx.store, &key, count, &element);
            if n == 0 {
                return tx.done(Reply::Integer(0));
            }
            tx.notify_change(Class::LIST, "lrem", &key);
            let r = ListRecord::Rem {
                key,
                count,
                element,
            };
            tx.logged(Reply::Integer(n as i64), rec(r))
        }
        ListWrite::Trim(key, start, stop) => {
            let len = match list(tx.store, &key, now) {
                Err(e) => return tx.done(e),
                Ok(None) => return tx.done(Reply::ok()),
                Ok(Some(l)) => l.len(),
            };
            let (from, n) = resolve(start, stop, len);
            if from == 0 && n == len {
                // Redis notifies a trim that keeps everything too.
                tx.store.notify(Class::LIST, "ltrim", &key);
                return tx.done(Reply::ok());
            }
            trim(tx.store, &key, from, n);
            tx.notify_change(Class::LIST, "ltrim", &key);
            let r = ListRecord::Trim {
                key,
                start: from as u64,
                len: n as u64,
            };
            tx.logged(Reply::ok(), rec(r))
        }
        ListWrite::Insert {
            key,
            after,
            pivot,
            element,
        } => {
            let at = match list(tx.store, &key, now) {
                Err(e) => return tx.done(e),
                Ok(None) => return tx.done(Reply::Integer(0)),
                Ok(Some(l)) => l.iter().position(|e| *e == pivot),
            };
            let Some(at) = at else {
                return tx.done(Reply::Integer(-1));
            };
            let index = at + usize::from(after);
            let len = insert(tx.store, &key, index, element.clone());
            tx.notify_change(Class::LIST, "linsert", &key);
            let r = ListRecord::Insert {
                key,
                index: index as u64,
                element,
            };
            tx.logged(Reply::Integer(len as i64), rec(r))
        }
        ListWrite::Move {
            from,
            to,
            from_left,
            to_left,
            ..
        } => {
            let single = match list(tx.store, &from, now) {
                Err(e) => return tx.done(e),
                Ok(None) => return tx.done(Reply::Nil),
                Ok(Some(l)) => (l.len() == 1).then(|| l[0].clone()),
            };
            if let Err(e) = list(tx.store, &to, now) {
                return tx.done(e);
            }
            if let (true, Some(element)) = (from == to, single) {
                // Rotating a one-element list changes nothing (and must
                // not delete and recreate the key, losing its expiry);
                // Redis still reports its push and pop.
                tx.store.notify(Class::LIST, push_event(to_left), &to);
                tx.store.notify(Class::LIST, pop_event(from_left), &from);
                return tx.done(Reply::Bulk(element));
            }
            let Some(element) = pop(tx.store, &from, from_left, 1).pop() else {
                return tx.done(Reply::Nil);
            };
            push(tx.store, &to, to_left, std::slice::from_ref(&element));
            // Redis's order: the push, then the pop (and its `del`).
            tx.store.notify(Class::LIST, push_event(to_left), &to);
            tx.notify_change(Class::LIST, pop_event(from_left), &from);
            let records = vec![
                rec(ListRecord::Pop {
                    key: from,
                    left: from_left,
                    count: 1,
                }),
                rec(ListRecord::Push {
                    key: to,
                    left: to_left,
                    elements: vec![element.clone()],
                }),
            ];
            tx.logged(Reply::Bulk(element), LogRecord::Multi(records))
        }
        ListWrite::MPop {
            keys,
            left,
            count,
            single,
            ..
        } => {
            for key in keys {
                match list(tx.store, &key, now) {
                    Err(e) => return tx.done(e),
                    Ok(None) => continue,
                    Ok(Some(_)) => {}
                }
                let popped = pop(tx.store, &key, left, count);
                tx.notify_change(Class::LIST, pop_event(left), &key);
                let r = ListRecord::Pop {
                    key: key.clone(),
                    left,
                    count: popped.len() as u64,
                };
                let elements: Vec<Reply> = popped.into_iter().map(Reply::Bulk).collect();
                let reply = if single {
                    Reply::Array([vec![Reply::Bulk(key)], elements].concat())
                } else {
                    Reply::Array(vec![Reply::Bulk(key), Reply::Array(elements)])
                };
                return tx.logged(reply, rec(r));
            }
            tx.done(Reply::NilArray)
        }
    }
}
