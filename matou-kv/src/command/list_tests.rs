//! Tests of the list commands: replies as Redis 7.0 gives them, records
//! that replay every change, journal steps that roll back exactly.

use super::{execute, execute_write_journaled, parse, Command};
use crate::databases::Databases;
use crate::record::LogRecord;
use crate::resp::Reply;
use crate::store::{Store, Undo};
use proptest::prelude::*;

fn args(a: &[&str]) -> Vec<Vec<u8>> {
    a.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Runs `a` on `st` and applies its record (through its encoding) to
/// `replica`.
fn run(st: &mut Store, replica: &mut Store, a: &[&str]) -> Reply {
    let (r, rec) = execute(st, &args(a), 1000);
    if let Some(rec) = rec {
        let bytes = rec.to_bytes();
        assert!(
            crate::record::has_record_layout(bytes.len() as u64, |i| bytes
                .get(i as usize)
                .copied()),
            "{a:?}"
        );
        LogRecord::decode(&bytes).expect("decodes").apply(replica);
    }
    r
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

fn bulks(v: &[&str]) -> Reply {
    Reply::Array(v.iter().map(|s| bulk(s)).collect())
}

fn err(r: &Reply) -> String {
    match r {
        Reply::Error(e) => e.to_string(),
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn list_commands_answer_as_redis_and_replay() {
    let (mut st, mut rep) = (Store::new(), Store::new());
    let mut r = |a: &[&str]| run(&mut st, &mut rep, a);
    assert_eq!(r(&["rpush", "l", "a", "b", "c"]), Reply::Integer(3));
    assert_eq!(r(&["lpush", "l", "z", "y"]), Reply::Integer(5));
    assert_eq!(
        r(&["lrange", "l", "0", "-1"]),
        bulks(&["y", "z", "a", "b", "c"])
    );
    assert_eq!(r(&["lrange", "l", "-2", "100"]), bulks(&["b", "c"]));
    assert_eq!(r(&["lrange", "l", "3", "1"]), bulks(&[]));
    assert_eq!(r(&["lpushx", "nope", "a"]), Reply::Integer(0));
    assert_eq!(r(&["rpushx", "l", "d"]), Reply::Integer(6));
    assert_eq!(r(&["lindex", "l", "-1"]), bulk("d"));
    assert_eq!(r(&["lindex", "l", "99"]), Reply::Nil);
    assert_eq!(r(&["llen", "l"]), Reply::Integer(6));
    assert_eq!(r(&["lset", "l", "-1", "D"]), Reply::ok());
    assert_eq!(err(&r(&["lset", "l", "6", "x"])), "ERR index out of range");
    assert_eq!(err(&r(&["lset", "nope", "0", "x"])), "ERR no such key");
    assert_eq!(r(&["linsert", "l", "before", "a", "p"]), Reply::Integer(7));
    assert_eq!(r(&["linsert", "l", "AFTER", "a", "q"]), Reply::Integer(8));
    assert_eq!(r(&["linsert", "l", "after", "zz", "q"]), Reply::Integer(-1));
    assert_eq!(
        r(&["linsert", "nope", "after", "a", "q"]),
        Reply::Integer(0)
    );
    assert_eq!(
        err(&r(&["linsert", "l", "middle", "a", "q"])),
        "ERR syntax error"
    );
    assert_eq!(
        r(&["lrange", "l", "0", "-1"]),
        bulks(&["y", "z", "p", "a", "q", "b", "c", "D"])
    );
    assert_eq!(r(&["lpop", "l"]), bulk("y"));
    assert_eq!(r(&["rpop", "l", "2"]), bulks(&["D", "c"]));
    assert_eq!(r(&["lpop", "l", "0"]), bulks(&[]));
    assert_eq!(r(&["lpop", "nope", "2"]), Reply::NilArray);
    assert_eq!(r(&["lpop", "nope"]), Reply::Nil);
    assert_eq!(
        err(&r(&["lpop", "l", "-1"])),
        "ERR value is out of range, must be positive"
    );
    assert!(err(&r(&["lpop", "l", "1", "2"])).contains("wrong number"));
    assert_eq!(
        r(&["rpush", "r", "x", "a", "x", "b", "x"]),
        Reply::Integer(5)
    );
    assert_eq!(r(&["lrem", "r", "-2", "x"]), Reply::Integer(2));
    assert_eq!(r(&["lrange", "r", "0", "-1"]), bulks(&["x", "a", "b"]));
    assert_eq!(r(&["lrem", "r", "0", "zz"]), Reply::Integer(0));
    assert_eq!(r(&["ltrim", "r", "1", "-1"]), Reply::ok());
    assert_eq!(r(&["lrange", "r", "0", "-1"]), bulks(&["a", "b"]));
    assert_eq!(r(&["ltrim", "r", "5", "9"]), Reply::ok());
    assert_eq!(r(&["exists", "r"]), Reply::Integer(0), "trimmed away");
    // LPOS.
    r(&["rpush", "p", "a", "b", "c", "1", "2", "3", "c", "c"]);
    assert_eq!(r(&["lpos", "p", "c"]), Reply::Integer(2));
    assert_eq!(r(&["lpos", "p", "c", "rank", "2"]), Reply::Integer(6));
    assert_eq!(r(&["lpos", "p", "c", "rank", "-1"]), Reply::Integer(7));
    let ints = |v: &[i64]| Reply::Array(v.iter().map(|&i| Reply::Integer(i)).collect());
    assert_eq!(r(&["lpos", "p", "c", "count", "0"]), ints(&[2, 6, 7]));
    assert_eq!(
        r(&["lpos", "p", "c", "rank", "-1", "count", "2"]),
        ints(&[7, 6])
    );
    assert_eq!(
        r(&["lpos", "p", "c", "count", "0", "maxlen", "7"]),
        ints(&[2, 6])
    );
    assert_eq!(r(&["lpos", "p", "zz"]), Reply::Nil);
    assert_eq!(r(&["lpos", "nope", "zz", "count", "1"]), bulks(&[]));
    assert!(err(&r(&["lpos", "p", "c", "rank", "0"])).starts_with("ERR RANK can't be zero"));
    assert_eq!(
        err(&r(&["lpos", "p", "c", "count", "-1"])),
        "ERR COUNT can't be negative"
    );
    assert_eq!(err(&r(&["lpos", "p", "c", "rank"])), "ERR syntax error");
    // LMOVE, RPOPLPUSH, LMPOP.
    assert_eq!(r(&["lmove", "p", "q", "left", "right"]), bulk("a"));
    assert_eq!(r(&["rpoplpush", "p", "q"]), bulk("c"));
    assert_eq!(r(&["lrange", "q", "0", "-1"]), bulks(&["c", "a"]));
    assert_eq!(r(&["rpoplpush", "q", "q"]), bulk("a"));
    assert_eq!(r(&["lrange", "q", "0", "-1"]), bulks(&["a", "c"]));
    assert_eq!(r(&["lmove", "nope", "q", "left", "left"]), Reply::Nil);
    assert_eq!(
        r(&["lmpop", "3", "nope", "q", "p", "left", "count", "5"]),
        Reply::Array(vec![bulk("q"), bulks(&["a", "c"])])
    );
    assert_eq!(r(&["lmpop", "1", "nope", "right"]), Reply::NilArray);
    assert_eq!(
        err(&r(&["lmpop", "0", "q", "left"])),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(err(&r(&["lmpop", "2", "q", "left"])), "ERR syntax error");
    assert_eq!(
        err(&r(&["lmpop", "1", "q", "left", "count", "0"])),
        "ERR count should be greater than 0"
    );
    // Blocking forms on a plain store answer at once.
    assert_eq!(
        r(&["blpop", "nope", "p", "0"]),
        Reply::Array(vec![bulk("p"), bulk("b")])
    );
    assert_eq!(r(&["brpop", "nope", "1.5"]), Reply::NilArray);
    assert_eq!(r(&["blmove", "nope", "x", "left", "left", "0"]), Reply::Nil);
    assert_eq!(err(&r(&["blpop", "p", "-1"])), "ERR timeout is negative");
    assert_eq!(
        err(&r(&["blpop", "p", "abc"])),
        "ERR timeout is not a float or out of range"
    );
    assert_eq!(
        err(&r(&["blpop", "p", "0x7FFFFFFFFFFFFF"])),
        "ERR timeout is out of range"
    );
    // Types.
    r(&["set", "s", "v"]);
    for c in [
        &["lpush", "s", "a"][..],
        &["lrange", "s", "0", "1"],
        &["llen", "s"],
        &["lpop", "s"],
        &["lmove", "p", "s", "left", "left"],
        &["lmpop", "2", "nope", "s", "left"],
        &["blpop", "s", "0"],
    ] {
        assert!(err(&r(c)).starts_with("WRONGTYPE"), "{c:?}");
    }
    assert_eq!(r(&["type", "p"]), Reply::Simple("list".into()));
    assert_eq!(st, rep, "the records replay every change");
    assert_eq!(st.data_bytes(), rep.data_bytes());
}

#[test]
fn a_rotation_of_a_one_element_list_keeps_its_expiry() {
    let (mut st, mut rep) = (Store::new(), Store::new());
    run(&mut st, &mut rep, &["rpush", "l", "a"]);
    run(&mut st, &mut rep, &["pexpire", "l", "100000"]);
    assert_eq!(
        run(&mut st, &mut rep, &["lmove", "l", "l", "left", "right"]),
        bulk("a")
    );
    assert_eq!(st.raw(b"l").unwrap().expire_at, Some(101_000));
    assert_eq!(st, rep);
}

#[test]
fn journaled_list_writes_roll_back_exactly() {
    let setup = || {
        let mut dbs = Databases::new(1);
        let st = dbs.db_mut(0);
        super::list::push(
            st,
            b"l",
            false,
            &[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()],
        );
        super::list::push(st, b"one", false, &[b"x".to_vec()]);
        st.set_expire(b"one", Some(5000));
        super::list::push(st, b"old", false, &[b"x".to_vec()]);
        st.set_expire(b"old", Some(10));
        st.set(b"s", b"v".to_vec(), None);
        dbs
    };
    let cmds: &[&[&str]] = &[
        &["lpush", "l", "1", "2"],
        &["rpush", "l", "1"],
        &["rpush", "fresh", "1"],
        &["rpush", "old", "1"],
        &["lpop", "l", "2"],
        &["rpop", "l", "9"],
        &["lpop", "one"],
        &["lmove", "l", "one", "right", "left"],
        &["lmove", "one", "l", "left", "left"],
        &["lmove", "l", "l", "left", "right"],
        &["lmove", "l", "new", "left", "right"],
        &["lmpop", "3", "old", "one", "l", "right", "count", "2"],
        &["blpop", "old", "l", "0"],
        &["lset", "l", "1", "z"],
        &["lrem", "l", "0", "a"],
        &["ltrim", "l", "1", "1"],
        &["linsert", "l", "before", "b", "q"],
        &["lpush", "s", "1"],
    ];
    for c in cmds {
        let mut dbs = setup();
        let Ok(Command::Write(w)) = parse(&args(c), true) else {
            panic!("{c:?}")
        };
        let mut undo = Undo::new();
        let (r, rec) = execute_write_journaled(w, dbs.db_mut(0), 1000, &mut undo);
        assert!(
            rec.is_some() || r.is_error(),
            "{c:?} changed something: {r:?}"
        );
        undo.rollback(&mut dbs);
        let before = setup();
        assert!(dbs == before, "{c:?} rolled back");
        assert_eq!(dbs.db(0).data_bytes(), before.db(0).data_bytes(), "{c:?}");
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push(u8, bool, Vec<u8>),
    Pop(u8, bool, u8),
    Set(u8, i8, u8),
    Rem(u8, i8, u8),
    Trim(u8, i8, i8),
    Insert(u8, bool, u8, u8),
    Move(u8, u8, bool, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..3u8;
    prop_oneof![
        (
            k.clone(),
            any::<bool>(),
            prop::collection::vec(0..4u8, 1..4)
        )
            .prop_map(|(k, l, e)| Op::Push(k, l, e)),
        (k.clone(), any::<bool>(), 0..4u8).prop_map(|(k, l, n)| Op::Pop(k, l, n)),
        (k.clone(), -5..5i8, 0..4u8).prop_map(|(k, i, e)| Op::Set(k, i, e)),
        (k.clone(), -3..3i8, 0..4u8).prop_map(|(k, c, e)| Op::Rem(k, c, e)),
        (k.clone(), -6..6i8, -6..6i8).prop_map(|(k, a, b)| Op::Trim(k, a, b)),
        (k.clone(), any::<bool>(), 0..4u8, 0..4u8).prop_map(|(k, a, p, e)| Op::Insert(k, a, p, e)),
        (k.clone(), k, any::<bool>(), any::<bool>()).prop_map(|(a, b, l, r)| Op::Move(a, b, l, r)),
    ]
}

/// A model of one list command on `VecDeque`s, Redis's semantics.
fn model(
    m: &mut std::collections::HashMap<u8, std::collections::VecDeque<u8>>,
    o: &Op,
) -> (Vec<String>, Reply) {
    let side = |l: bool| if l { "left" } else { "right" }.to_string();
    let e = |x: u8| format!("e{x}");
    let key = |k: u8| format!("k{k}");
    let b = |x: u8| Reply::Bulk(e(x).into_bytes());
    let out = match o {
        Op::Push(k, left, els) => {
            let l = m.entry(*k).or_default();
            for x in els {
                if *left {
                    l.push_front(*x)
                } else {
                    l.push_back(*x)
                }
            }
            let mut a = vec![if *left { "lpush" } else { "rpush" }.to_string(), key(*k)];
            a.extend(els.iter().map(|x| e(*x)));
            (a, Reply::Integer(l.len() as i64))
        }
        Op::Pop(k, left, n) => {
            let a = vec![
                if *left { "lpop" } else { "rpop" }.to_string(),
                key(*k),
                n.to_string(),
            ];
            let r = match m.get_mut(k) {
                None => Reply::NilArray,
                Some(l) => Reply::Array(
                    (0..*n)
                        .filter_map(|_| if *left { l.pop_front() } else { l.pop_back() })
                        .map(b)
                        .collect(),
                ),
            };
            (a, r)
        }
        Op::Set(k, i, x) => {
            let a = vec!["lset".into(), key(*k), i.to_string(), e(*x)];
            let r = match m.get_mut(k) {
                None => Reply::err("ERR no such key"),
                Some(l) => {
                    let i = if *i < 0 {
                        l.len() as i64 + i64::from(*i)
                    } else {
                        i64::from(*i)
                    };
                    match usize::try_from(i).ok().and_then(|i| l.get_mut(i)) {
                        Some(slot) => {
                            *slot = *x;
                            Reply::ok()
                        }
                        None => Reply::err("ERR index out of range"),
                    }
                }
            };
            (a, r)
        }
        Op::Rem(k, c, x) => {
            let a = vec!["lrem".into(), key(*k), c.to_string(), e(*x)];
            let l = m.entry(*k).or_default();
            let mut idx: Vec<usize> = (0..l.len()).filter(|&i| l[i] == *x).collect();
            if *c < 0 {
                idx.reverse();
            }
            if *c != 0 {
                idx.truncate(c.unsigned_abs() as usize);
            }
            idx.sort_unstable();
            for i in idx.iter().rev() {
                l.remove(*i);
            }
            (a, Reply::Integer(idx.len() as i64))
        }
        Op::Trim(k, s, t) => {
            let a = vec!["ltrim".into(), key(*k), s.to_string(), t.to_string()];
            let l = m.entry(*k).or_default();
            let n = l.len() as i64;
            let mut s = i64::from(*s);
            let mut t = i64::from(*t);
            if s < 0 {
                s += n;
            }
            if t < 0 {
                t += n;
            }
            s = s.max(0);
            let kept: Vec<u8> = if s > t || s >= n {
                vec![]
            } else {
                l.iter()
                    .skip(s as usize)
                    .take((t.min(n - 1) - s + 1) as usize)
                    .copied()
                    .collect()
            };
            *l = kept.into();
            (a, Reply::ok())
        }
        Op::Insert(k, after, p, x) => {
            let where_ = if *after { "after" } else { "before" };
            let a = vec!["linsert".into(), key(*k), where_.into(), e(*p), e(*x)];
            let r = match m.get_mut(k) {
                None => Reply::Integer(0),
                Some(l) => match l.iter().position(|y| y == p) {
                    None => Reply::Integer(-1),
                    Some(i) => {
                        l.insert(i + usize::from(*after), *x);
                        Reply::Integer(l.len() as i64)
                    }
                },
            };
            (a, r)
        }
        Op::Move(f, t, fl, tl) => {
            let a = vec!["lmove".into(), key(*f), key(*t), side(*fl), side(*tl)];
            let popped = m
                .get_mut(f)
                .and_then(|l| if *fl { l.pop_front() } else { l.pop_back() });
            let r = match popped {
                None => Reply::Nil,
                Some(x) => {
                    let l = m.entry(*t).or_default();
                    if *tl {
                        l.push_front(x)
                    } else {
                        l.push_back(x)
                    }
                    b(x)
                }
            };
            (a, r)
        }
    };
    m.retain(|_, l| !l.is_empty());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Random list commands against a model of lists; the records,
    /// replayed, give the same store.
    #[test]
    fn lists_match_a_model_and_replay(ops in prop::collection::vec(op(), 1..60)) {
        let (mut st, mut rep) = (Store::new(), Store::new());
        let mut m = std::collections::HashMap::new();
        for o in ops {
            let (a, want) = model(&mut m, &o);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            prop_assert_eq!(run(&mut st, &mut rep, &a), want, "{:?}", a);
        }
        prop_assert_eq!(st.len(), m.len());
        for (k, l) in &m {
            let want: Vec<Reply> = l.iter().map(|x| Reply::Bulk(format!("e{x}").into_bytes())).collect();
            let (got, _) = execute(&mut st, &args(&["lrange", &format!("k{k}"), "0", "-1"]), 1000);
            prop_assert_eq!(got, Reply::Array(want));
        }
        prop_assert!(st == rep, "replay differs");
        prop_assert_eq!(st.data_bytes(), rep.data_bytes());
    }
}
