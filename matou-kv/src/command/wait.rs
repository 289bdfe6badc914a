//! The blocking pops of every type (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
//! BLMPOP on lists; BZPOPMIN, BZPOPMAX, BZMPOP on sorted sets) as the
//! server's waiter queues see them: a [`Wait`].
//!
//! Each blocking form is an ordinary write ([`ListWrite`] or
//! [`ZSetWrite`] with `block: Some(timeout)`): run by
//! [`execute_write`](super::execute_write) (inside MULTI, on a plain
//! store) it answers as the non-blocking form would. This module owns
//! what the server needs on top of that:
//! - whether a write would wait ([`Write::would_block`]: a blocking form
//!   whose every source is absent);
//! - which type of value serves a waiter ([`Wait::served_by`]): a list
//!   push never serves a BZPOPMIN waiter, which stays blocked, as in
//!   Redis 7.0;
//! - the non-blocking command that serves it on one key
//!   ([`Wait::serve_on`]), and the write that gives back what that pop
//!   took when its client went away before the reply ([`Wait::give_back`]).
//!
//! Invariant: `serve_on` and `give_back` are plain writes, run, logged and
//! journaled like any other, so a pop for a waiter and its return are
//! each one log record that replay applies as it would the command.

use super::{ListWrite, Write, ZSetWrite};
use crate::record::Score;
use crate::resp::Reply;
use crate::store::zset::parse_score;
use crate::store::Store;

/// A blocking pop waiting for its sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP.
    List(ListWrite),
    /// BZPOPMIN, BZPOPMAX, BZMPOP.
    ZSet(ZSetWrite),
}

impl Write {
    /// Whether this is a blocking form that would wait: every source is
    /// absent (a key of another type makes it answer WRONGTYPE at once
    /// instead).
    pub fn would_block(&self, store: &Store, now: u64) -> bool {
        match Wait::sources_of(self) {
            Some((Some(_), keys)) => keys.iter().all(|k| !store.contains(k, now)),
            _ => false,
        }
    }

    /// The blocking pop this is, if it is a pop (blocking or not: the
    /// caller asked [`Write::would_block`]).
    pub fn into_wait(self) -> Option<Wait> {
        match self {
            Write::List(l) => Some(Wait::List(l)),
            Write::ZSets(z @ ZSetWrite::MPop { .. }) => Some(Wait::ZSet(z)),
            _ => None,
        }
    }
}

impl Wait {
    /// A write's timeout and sources, if it is a pop that may block
    /// (`None` as the timeout: its non-blocking form).
    fn sources_of(w: &Write) -> Option<(Option<u64>, &[Vec<u8>])> {
        match w {
            Write::List(l) => Some((l.block(), l.sources())),
            Write::ZSets(ZSetWrite::MPop { keys, block, .. }) => Some((*block, keys)),
            _ => None,
        }
    }

    /// How long to wait in ms (0: forever).
    pub fn timeout_ms(&self) -> u64 {
        match self {
            Wait::List(l) => l.block().unwrap_or(0),
            Wait::ZSet(ZSetWrite::MPop { block, .. }) => block.unwrap_or(0),
            Wait::ZSet(_) => 0,
        }
    }

    /// The keys it waits on, in the order given (repeats included).
    pub fn sources(&self) -> &[Vec<u8>] {
        match self {
            Wait::List(l) => l.sources(),
            Wait::ZSet(ZSetWrite::MPop { keys, .. }) => keys,
            Wait::ZSet(_) => &[],
        }
    }

    /// Whether a key holding a value of type `type_name` (TYPE's answer)
    /// serves it.
    pub fn served_by(&self, type_name: &str) -> bool {
        match self {
            Wait::List(_) => type_name == "list",
            Wait::ZSet(_) => type_name == "zset",
        }
    }

    /// The answer when the wait ends without a pop (a nil, or a nil
    /// array).
    pub fn timed_out(&self) -> Reply {
        match self {
            Wait::List(l) => l.timed_out(),
            Wait::ZSet(_) => Reply::NilArray,
        }
    }

    /// The non-blocking write that serves it once `key` holds a value it
    /// is [served by](Self::served_by).
    pub fn serve_on(&self, key: &[u8]) -> Write {
        match self {
            Wait::List(l) => Write::List(l.serve_on(key)),
            Wait::ZSet(ZSetWrite::MPop {
                max, count, single, ..
            }) => Write::ZSets(ZSetWrite::MPop {
                keys: vec![key.to_vec()],
                max: *max,
                count: *count,
                single: *single,
                block: None,
            }),
            Wait::ZSet(z) => Write::ZSets(z.clone()),
        }
    }

    /// The write that puts back what `reply`, the answer of
    /// [`serve_on`](Self::serve_on) for this waiter, popped; `None` if it
    /// popped nothing or moved it elsewhere (BLMOVE's element is in its
    /// destination: nothing is lost).
    pub fn give_back(&self, reply: Reply) -> Option<Write> {
        let Reply::Array(mut parts) = reply else {
            return None;
        };
        let key = match parts.first() {
            Some(Reply::Bulk(k)) => k.clone(),
            _ => return None,
        };
        match self {
            Wait::List(ListWrite::MPop { left, single, .. }) => {
                let popped: Vec<Reply> = match single {
                    true => parts.split_off(1),
                    false => match parts.pop() {
                        Some(Reply::Array(els)) => els,
                        _ => return None,
                    },
                };
                let mut elements: Vec<Vec<u8>> = popped.into_iter().filter_map(bulk).collect();
                // Pushed one by one at the end they came from: the last
                // popped first.
                elements.reverse();
                (!elements.is_empty()).then_some(Write::List(ListWrite::Push {
                    key,
                    left: *left,
                    elements,
                    only_existing: false,
                }))
            }
            Wait::List(_) => None,
            Wait::ZSet(ZSetWrite::MPop { single, .. }) => {
                let pairs: Vec<(Vec<u8>, Score)> = match single {
                    true => pair(parts.split_off(1)).into_iter().collect(),
                    false => match parts.pop() {
                        Some(Reply::Array(els)) => els
                            .into_iter()
                            .filter_map(|p| match p {
                                Reply::Array(p) => pair(p),
                                _ => None,
                            })
                            .collect(),
                        _ => return None,
                    },
                };
                (!pairs.is_empty()).then_some(Write::ZSets(ZSetWrite::Add {
                    key,
                    flags: super::AddFlags::default(),
                    pairs,
                }))
            }
            Wait::ZSet(_) => None,
        }
    }
}

fn bulk(r: Reply) -> Option<Vec<u8>> {
    match r {
        Reply::Bulk(b) => Some(b),
        _ => None,
    }
}

/// A `[member, score]` of a pop's reply, as ZADD takes it back (the score
/// is printed exactly: it parses back to the same double).
fn pair(p: Vec<Reply>) -> Option<(Vec<u8>, Score)> {
    let mut it = p.into_iter();
    let member = bulk(it.next()?)?;
    let score = match it.next()? {
        Reply::Double(text) => parse_score(text.as_bytes())?,
        Reply::Bulk(text) => parse_score(&text)?,
        _ => return None,
    };
    Some((member, Score(score)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{execute_read, execute_write, parse, Command};

    fn write(args: &[&str]) -> Write {
        let a: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
        match parse(&a, true) {
            Ok(Command::Write(w)) => w,
            other => panic!("{other:?}"),
        }
    }

    fn read(store: &Store, args: &[&str]) -> Reply {
        let a: Vec<Vec<u8>> = args.iter().map(|s| s.as_bytes().to_vec()).collect();
        match parse(&a, true) {
            Ok(Command::Read(r)) => execute_read(&r, store, 0),
            other => panic!("{other:?}"),
        }
    }

    fn run(store: &mut Store, w: Write) -> Reply {
        execute_write(w, store, 0).0
    }

    #[test]
    fn a_zset_pop_given_back_restores_members_and_scores() {
        for (block, popped) in [
            (&["bzpopmin", "z", "0"][..], 1),
            (&["bzpopmax", "z", "0"][..], 1),
            (&["bzmpop", "0", "1", "z", "min", "count", "2"][..], 2),
        ] {
            let mut st = Store::new();
            run(
                &mut st,
                write(&["zadd", "z", "1.5", "a", "-inf", "b", "3", "c"]),
            );
            let wait = write(block).into_wait().expect("a blocking pop");
            assert!(wait.served_by("zset") && !wait.served_by("list"));
            let reply = run(&mut st, wait.serve_on(b"z"));
            let left = read(&st, &["zcard", "z"]);
            assert_eq!(left, Reply::Integer(3 - popped), "{block:?}");
            let back = wait.give_back(reply).expect("something to give back");
            run(&mut st, back);
            let all = read(&st, &["zrange", "z", "0", "-1", "withscores"]);
            let pairs = |l: &[(&str, &str)]| {
                l.iter()
                    .map(|(m, s)| {
                        (
                            Reply::Bulk(m.as_bytes().to_vec()),
                            Reply::Double(s.to_string()),
                        )
                    })
                    .collect()
            };
            assert_eq!(
                all,
                Reply::Pairs(pairs(&[("b", "-inf"), ("a", "1.5"), ("c", "3")])),
                "{block:?}: every member back with its score"
            );
        }
    }

    #[test]
    fn only_blocking_forms_on_absent_keys_would_block() {
        let mut st = Store::new();
        assert!(write(&["bzpopmin", "a", "b", "0"]).would_block(&st, 0));
        assert!(!write(&["zmpop", "1", "a", "min"]).would_block(&st, 0));
        assert!(!write(&["zadd", "a", "1", "m"]).would_block(&st, 0));
        run(&mut st, write(&["set", "b", "x"]));
        // WRONGTYPE at once, as Redis answers.
        assert!(!write(&["bzpopmin", "a", "b", "0"]).would_block(&st, 0));
        let r = run(&mut st, write(&["bzpopmin", "a", "b", "0"]));
        assert!(matches!(r, Reply::Error(e) if e.starts_with("WRONGTYPE")));
        // Inside MULTI (no waiting): the nil array of a timeout.
        assert_eq!(
            run(&mut st, write(&["bzpopmax", "a", "1"])),
            Reply::NilArray
        );
        assert_eq!(
            write(&["bzmpop", "0.5", "1", "a", "max"])
                .into_wait()
                .map(|w| w.timeout_ms()),
            Some(500)
        );
    }
}
