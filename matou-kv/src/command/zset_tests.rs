//! Tests of the sorted-set commands: a property test against a model
//! with log replay, journaled rollback, encodings and both protocols.

use super::super::execute;
use crate::record::LogRecord;
use crate::resp::Reply;
use crate::store::Store;
use proptest::prelude::*;
use std::collections::HashMap;

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
    /// key, flags (nx xx gt lt ch bits), (member, score) pairs.
    Add(u8, u8, Vec<(u8, i8)>),
    Incr(u8, u8, i8),
    Rem(u8, Vec<u8>),
    PopMin(u8, u8),
    RemByScore(u8, i8, i8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..3u8,
            0..32u8,
            prop::collection::vec((0..8u8, -5..5i8), 1..4)
        )
            .prop_map(|(k, f, p)| Op::Add(k, f, p)),
        (0..3u8, 0..8u8, -5..5i8).prop_map(|(k, m, by)| Op::Incr(k, m, by)),
        (0..3u8, prop::collection::vec(0..8u8, 1..4)).prop_map(|(k, m)| Op::Rem(k, m)),
        (0..3u8, 0..4u8).prop_map(|(k, n)| Op::PopMin(k, n)),
        (0..3u8, -5..5i8, -5..5i8).prop_map(|(k, a, b)| Op::RemByScore(k, a, b)),
    ]
}

/// The model's members in Redis's order: by score, then member.
fn sorted(z: &HashMap<String, f64>) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
    v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
    v
}

fn flat(items: &[(String, f64)]) -> Reply {
    super::members_reply(items.iter().map(|(m, s)| (m.as_bytes(), *s)), true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    /// Random sorted-set commands against a model; ZRANGE agrees with
    /// it, and the records, replayed, give the same store.
    #[test]
    fn sorted_sets_match_a_model_and_replay(ops in prop::collection::vec(op(), 1..60)) {
        let (mut st, mut rep) = (Store::new(), Store::new());
        let mut model: HashMap<String, HashMap<String, f64>> = HashMap::new();
        let k = |i: u8| format!("k{i}");
        for o in ops {
            match o {
                Op::Add(key, f, pairs) => {
                    let (nx, xx, gt, lt, ch) = (f & 1 != 0, f & 2 != 0, f & 4 != 0, f & 8 != 0, f & 16 != 0);
                    let mut args = vec!["zadd".to_string(), k(key)];
                    for (on, w) in [(nx, "nx"), (xx, "xx"), (gt, "gt"), (lt, "lt"), (ch, "ch")] {
                        if on {
                            args.push(w.into());
                        }
                    }
                    for (m, s) in &pairs {
                        args.push(s.to_string());
                        args.push(format!("m{m}"));
                    }
                    let r = run(&mut st, &mut rep, &args);
                    // At most one of NX, GT, LT; NX excludes XX.
                    let refused = (nx && xx) || u8::from(nx) + u8::from(gt) + u8::from(lt) > 1;
                    if refused {
                        prop_assert!(r.is_error(), "{:?}", args);
                        continue;
                    }
                    let z = model.entry(k(key)).or_default();
                    let mut n = 0;
                    for (m, s) in pairs {
                        let (m, s) = (format!("m{m}"), f64::from(s));
                        let cur = z.get(&m).copied();
                        let skip = match cur {
                            None => xx,
                            Some(c) => nx || (gt && s <= c) || (lt && s >= c),
                        };
                        if skip {
                            continue;
                        }
                        if cur.is_none() || (ch && cur != Some(s)) {
                            n += 1;
                        }
                        z.insert(m, s);
                    }
                    prop_assert_eq!(r, Reply::Integer(n), "{:?}", args);
                }
                Op::Incr(key, m, by) => {
                    let z = model.entry(k(key)).or_default();
                    let m = format!("m{m}");
                    let new = z.get(&m).copied().unwrap_or(0.0) + f64::from(by);
                    z.insert(m.clone(), new);
                    let r = run(&mut st, &mut rep, &["zincrby".into(), k(key), by.to_string(), m]);
                    prop_assert_eq!(r, super::score_reply(new));
                }
                Op::Rem(key, ms) => {
                    let z = model.entry(k(key)).or_default();
                    let ms: Vec<String> = ms.iter().map(|m| format!("m{m}")).collect();
                    let mut gone = 0;
                    for m in &ms {
                        gone += i64::from(z.remove(m).is_some());
                    }
                    let mut args = vec!["zrem".to_string(), k(key)];
                    args.extend(ms);
                    prop_assert_eq!(run(&mut st, &mut rep, &args), Reply::Integer(gone));
                }
                Op::PopMin(key, n) => {
                    let z = model.entry(k(key)).or_default();
                    let want: Vec<(String, f64)> = sorted(z).into_iter().take(usize::from(n)).collect();
                    for (m, _) in &want {
                        z.remove(m);
                    }
                    let r = run(&mut st, &mut rep, &["zpopmin".into(), k(key), n.to_string()]);
                    prop_assert_eq!(r, flat(&want));
                }
                Op::RemByScore(key, a, b) => {
                    let z = model.entry(k(key)).or_default();
                    let before = z.len();
                    z.retain(|_, s| !(f64::from(a) <= *s && *s < f64::from(b)));
                    let n = (before - z.len()) as i64;
                    let r = run(&mut st, &mut rep, &["zremrangebyscore".into(), k(key), a.to_string(), format!("({b}")]);
                    prop_assert_eq!(r, Reply::Integer(n));
                }
            }
            model.retain(|_, z| !z.is_empty());
        }
        prop_assert_eq!(st.len(), model.len());
        for (key, z) in &model {
            let r = run(&mut st, &mut rep, &["zrange".into(), key.clone(), "0".into(), "-1".into(), "withscores".into()]);
            prop_assert_eq!(r, flat(&sorted(z)));
            let r = run(&mut st, &mut rep, &["zcard".into(), key.clone()]);
            prop_assert_eq!(r, Reply::Integer(z.len() as i64));
        }
        prop_assert!(st == rep, "replay differs");
        prop_assert_eq!(st.data_bytes(), rep.data_bytes());
    }
}

fn a(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[test]
fn an_unchanged_score_logs_nothing() {
    let mut st = Store::new();
    let (_, rec) = execute(&mut st, &a(&["zadd", "z", "0", "m"]), 0);
    assert!(rec.is_some());
    let (r, rec) = execute(&mut st, &a(&["zadd", "z", "0", "m"]), 0);
    assert_eq!(
        (r, rec),
        (Reply::Integer(0), None),
        "what redis-benchmark's ZADD repeats"
    );
    let (r, rec) = execute(&mut st, &a(&["zincrby", "z", "0", "m"]), 0);
    assert_eq!((r, rec), (super::score_reply(0.0), None));
    let (r, rec) = execute(&mut st, &a(&["zadd", "z", "ch", "1", "m"]), 0);
    assert_eq!(r, Reply::Integer(1));
    assert!(rec.is_some());
}

#[test]
fn type_encoding_scan_and_resp3_know_sorted_sets() {
    let mut st = Store::new();
    execute(&mut st, &a(&["zadd", "z", "1.5", "m", "2", "n"]), 0);
    execute(&mut st, &a(&["sadd", "s", "x"]), 0);
    assert_eq!(
        execute(&mut st, &a(&["type", "z"]), 0).0,
        Reply::Simple("zset".into())
    );
    assert_eq!(
        execute(&mut st, &a(&["object", "encoding", "z"]), 0).0,
        Reply::Bulk(b"listpack".to_vec())
    );
    let scan = execute(&mut st, &a(&["scan", "0", "type", "zset"]), 0).0;
    let want = Reply::Array(vec![
        Reply::Bulk(b"0".to_vec()),
        Reply::Array(vec![Reply::Bulk(b"z".to_vec())]),
    ]);
    assert_eq!(scan, want);
    let score = execute(&mut st, &a(&["zscore", "z", "m"]), 0).0;
    let mut wire = Vec::new();
    score.encode_proto(3, &mut wire);
    assert_eq!(wire, b",1.5\r\n", "a RESP3 double");
    assert_eq!(score.to_bytes(), b"$3\r\n1.5\r\n", "a RESP2 bulk string");
    let range = execute(&mut st, &a(&["zrange", "z", "0", "0", "withscores"]), 0).0;
    let mut wire = Vec::new();
    range.encode_proto(3, &mut wire);
    assert_eq!(
        wire, b"*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n",
        "RESP3 nests the pairs"
    );
    assert_eq!(
        range.to_bytes(),
        b"*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n",
        "RESP2 is flat"
    );
    let wrong = execute(&mut st, &a(&["zadd", "s", "1", "x"]), 0).0;
    assert_eq!(wrong, Reply::err(super::WRONGTYPE));
    let wrong = execute(&mut st, &a(&["zunion", "2", "z", "s"]), 0).0;
    assert!(!wrong.is_error(), "a set is a valid ZUNION source");
    assert_eq!(
        execute(&mut st, &a(&["smembers", "z"]), 0).0,
        Reply::err(super::WRONGTYPE)
    );
}

#[test]
fn a_journaled_sorted_set_write_rolls_back_exactly() {
    use crate::command::{execute_write_journaled, parse, Command};
    use crate::databases::Databases;
    use crate::record::Score;
    use crate::store::Undo;
    let setup = || {
        let mut dbs = Databases::new(1);
        let st = dbs.db_mut(0);
        super::add_scores(
            st,
            b"z",
            &[(b"a".to_vec(), Score(1.0)), (b"b".to_vec(), Score(2.0))],
        );
        st.set_expire(b"z", Some(5000));
        dbs
    };
    let cmds: &[&[&str]] = &[
        &["zadd", "z", "5", "a", "3", "c"],
        &["zincrby", "z", "1", "b"],
        &["zrem", "z", "a", "b"],
        &["zpopmax", "z", "5"],
        &["zremrangebyrank", "z", "0", "0"],
        &["zunionstore", "z", "1", "z", "weights", "2"],
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
        assert_eq!(dbs.db(0).raw(b"z").unwrap().expire_at, Some(5000));
    }
}
