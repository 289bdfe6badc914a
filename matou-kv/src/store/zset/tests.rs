//! The sorted set against its spelling rules and, by property tests,
//! against a naive model: a Vec of (score, member) kept sorted.

use super::*;
use proptest::prelude::*;

fn set(pairs: &[(&str, f64)]) -> ZSet {
    let mut z = ZSet::new();
    for (m, s) in pairs {
        z.insert(m.as_bytes(), *s);
    }
    z
}

fn members(it: Iter<'_>) -> Vec<String> {
    it.map(|(m, _)| String::from_utf8(m.to_vec()).unwrap())
        .collect()
}

#[test]
fn orders_by_score_then_member() {
    let z = set(&[("c", 1.0), ("a", 2.0), ("b", 1.0), ("d", -1.0)]);
    assert_eq!(members(z.iter()), ["d", "b", "c", "a"]);
    assert_eq!(z.rank(b"d"), Some(0));
    assert_eq!(z.rank(b"c"), Some(2));
    assert_eq!(z.rank(b"zz"), None);
    assert_eq!(z.nth(3), Some((&b"a"[..], 2.0)));
    assert_eq!(z.nth(4), None);
}

#[test]
fn rescoring_moves_the_member_and_returns_the_old_score() {
    let mut z = set(&[("a", 1.0), ("b", 2.0)]);
    assert_eq!(z.insert(b"a", 3.0), Some(1.0));
    assert_eq!(members(z.iter()), ["b", "a"]);
    assert_eq!(z.len(), 2);
    assert_eq!(z.remove(b"b"), Some(2.0));
    assert_eq!(z.remove(b"b"), None);
    assert_eq!(members(z.iter()), ["a"]);
}

#[test]
fn negative_zero_ties_with_zero_on_member() {
    let z = set(&[("b", 0.0), ("a", -0.0)]);
    assert_eq!(members(z.iter()), ["a", "b"]);
}

#[test]
fn score_spans_follow_inclusive_and_exclusive_bounds() {
    let z = set(&[("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.0)]);
    let p = |s: &str| ScoreBound::parse(s.as_bytes()).unwrap();
    assert_eq!(z.score_span(p("2"), p("2")), (1, 3));
    assert_eq!(z.score_span(p("(2"), p("+inf")), (3, 4));
    assert_eq!(z.score_span(p("-inf"), p("(2")), (0, 1));
    assert_eq!(z.score_span(p("(1"), p("(2")), (1, 1));
    assert_eq!(z.score_span(p("5"), p("1")), (4, 4));
    assert!(ScoreBound::parse(b"(").is_none());
    assert!(ScoreBound::parse(b"nan").is_none());
    assert!(ScoreBound::parse(b" 1").is_none());
}

#[test]
fn lex_spans_follow_the_bracket_rules() {
    let z = set(&[("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.0)]);
    let p = |s: &str| LexBound::parse(s.as_bytes()).unwrap();
    assert_eq!(z.lex_span(&p("-"), &p("+")), (0, 4));
    assert_eq!(z.lex_span(&p("[b"), &p("(d")), (1, 3));
    assert_eq!(z.lex_span(&p("(b"), &p("[b")), (2, 2));
    assert_eq!(z.lex_span(&p("+"), &p("-")), (4, 4));
    assert!(LexBound::parse(b"b").is_none());
    assert!(LexBound::parse(b"").is_none());
}

#[test]
fn reverse_walks_start_at_the_given_rank() {
    let z = set(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]);
    assert_eq!(members(z.iter_rev_from(2)), ["c", "b", "a"]);
    assert_eq!(members(z.iter_rev_from(3)), ["d", "c", "b", "a"]);
    assert!(members(z.iter_rev_from(4)).is_empty());
    assert_eq!(members(z.iter_from(3)), ["d"]);
    assert!(members(z.iter_from(4)).is_empty());
}

#[test]
fn pops_and_rank_removal_take_from_the_ends() {
    let mut z = set(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]);
    assert_eq!(z.pop(false), Some((b"a".to_vec(), 1.0)));
    assert_eq!(z.pop(true), Some((b"d".to_vec(), 4.0)));
    let gone = z.remove_ranks(0, 5);
    assert_eq!(gone, vec![(b"b".to_vec(), 2.0), (b"c".to_vec(), 3.0)]);
    assert!(z.is_empty());
    assert_eq!(z.pop(false), None);
}

#[test]
fn encoding_converts_past_either_threshold_and_rebuilds_back() {
    let mut z = ZSet::new();
    for i in 0..3 {
        z.insert(format!("m{i}").as_bytes(), i as f64);
    }
    z.note_encoding(2, 3, 64);
    assert_eq!(z.encoding(), Encoding::Listpack);
    z.insert(b"m3", 3.0);
    z.note_encoding(2, 3, 64);
    assert_eq!(z.encoding(), Encoding::Skiplist);
    z.remove(b"m3");
    z.note_encoding(0, 3, 64);
    assert_eq!(z.encoding(), Encoding::Skiplist, "conversion is one-way");
    z.reset_encoding(3, 64);
    assert_eq!(z.encoding(), Encoding::Listpack);
    z.insert(&[b'x'; 65], 0.0);
    z.remove(b"m0");
    z.note_encoding(65, 3, 64);
    assert_eq!(z.encoding(), Encoding::Skiplist);
    assert_eq!(Encoding::Skiplist.name(), "skiplist");
}

#[test]
fn scores_print_as_redis_does() {
    assert_eq!(score_text(1.5), b"1.5");
    assert_eq!(score_text(3.0), b"3");
    assert_eq!(score_text(-0.25), b"-0.25");
    assert_eq!(score_text(f64::INFINITY), b"inf");
    assert_eq!(score_text(f64::NEG_INFINITY), b"-inf");
    // What redis-server 7.0.15 replies (%.17g).
    assert_eq!(score_text(1e300), b"1.0000000000000001e+300");
    assert_eq!(score_text(1.1), b"1.1000000000000001");
    assert_eq!(score_text(0.1), b"0.10000000000000001");
    assert_eq!(score_text(1.2345678901234568e17), b"1.2345678901234568e+17");
    assert_eq!(score_text(1e16), b"10000000000000000");
    assert_eq!(score_text(1e-5), b"1.0000000000000001e-05");
    assert_eq!(score_text(0.000012345), b"1.2345e-05");
    assert_eq!(score_text(-0.0), b"0");
    for f in [0.1, 1e17, 123456.789, -1e-300, f64::MAX, f64::MIN_POSITIVE] {
        let back = parse_score(&score_text(f)).unwrap();
        assert_eq!(back, f, "{f} round-trips");
    }
    assert_eq!(parse_score(b"+inf"), Some(f64::INFINITY));
    assert_eq!(parse_score(b"-INF"), Some(f64::NEG_INFINITY));
    assert_eq!(parse_score(b"abc"), None);
    assert_eq!(parse_score(b""), None);
}

#[test]
fn a_large_set_keeps_its_indexes_in_step() {
    let mut z = ZSet::new();
    let n = 20_000u32;
    for i in 0..n {
        // A permutation of 0..n, so inserts arrive out of order.
        let k = (i.wrapping_mul(7919)) % n;
        z.insert(format!("{k:06}").as_bytes(), f64::from(k / 4));
    }
    assert_eq!(z.len(), n as usize);
    for k in (0..n).step_by(997) {
        assert_eq!(z.rank(format!("{k:06}").as_bytes()), Some(k as usize));
    }
    assert_eq!(z.iter().count(), n as usize);
    // Removing every even member halves the set and keeps the order.
    for k in (0..n).step_by(2) {
        assert!(z.remove(format!("{k:06}").as_bytes()).is_some());
    }
    let ranked: Vec<_> = z.iter().map(|(m, _)| m.to_vec()).collect();
    let want: Vec<_> = (1..n)
        .step_by(2)
        .map(|k| format!("{k:06}").into_bytes())
        .collect();
    assert_eq!(ranked, want);
    // Freed slots are reused, not grown past.
    assert!(z.tree.nodes.len() <= n as usize);
}

/// The model: (score, member) sorted as the set orders them.
#[derive(Default)]
struct Model(Vec<(f64, Vec<u8>)>);

impl Model {
    fn sort(&mut self) {
        self.0
            .sort_by(|a, b| cmp_score(a.0, b.0).then_with(|| a.1.cmp(&b.1)));
    }
    fn insert(&mut self, m: &[u8], s: f64) -> Option<f64> {
        let old = self.remove(m);
        self.0.push((s, m.to_vec()));
        self.sort();
        old
    }
    fn remove(&mut self, m: &[u8]) -> Option<f64> {
        let i = self.0.iter().position(|(_, x)| x == m)?;
        Some(self.0.remove(i).0)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u8, i8),
    Remove(u8),
    Pop(bool),
    RemoveRanks(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..40, -5i8..5).prop_map(|(m, s)| Op::Insert(m, s)),
        2 => (0u8..40).prop_map(Op::Remove),
        1 => any::<bool>().prop_map(Op::Pop),
        1 => (0u8..10, 0u8..10).prop_map(|(a, b)| Op::RemoveRanks(a, b)),
    ]
}

fn bound() -> impl Strategy<Value = ScoreBound> {
    (-6i8..6, any::<bool>()).prop_map(|(s, incl)| {
        let s = f64::from(s) / 2.0;
        if incl {
            ScoreBound::Incl(s)
        } else {
            ScoreBound::Excl(s)
        }
    })
}

fn lex_bound() -> impl Strategy<Value = LexBound> {
    prop_oneof![
        Just(LexBound::Min),
        Just(LexBound::Max),
        (0u8..40).prop_map(|m| LexBound::Incl(name(m))),
        (0u8..40).prop_map(|m| LexBound::Excl(name(m))),
    ]
}

fn name(m: u8) -> Vec<u8> {
    format!("m{m:02}").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn matches_a_sorted_vec_model(
        ops in proptest::collection::vec(op(), 0..120),
        min in bound(), max in bound(),
        lmin in lex_bound(), lmax in lex_bound(),
        start in 0usize..50,
    ) {
        let mut z = ZSet::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Insert(m, s) => {
                    let s = f64::from(s);
                    prop_assert_eq!(z.insert(&name(m), s), model.insert(&name(m), s));
                }
                Op::Remove(m) => prop_assert_eq!(z.remove(&name(m)), model.remove(&name(m))),
                Op::Pop(max) => {
                    let want = if max { model.0.pop() } else if model.0.is_empty() { None } else { Some(model.0.remove(0)) };
                    prop_assert_eq!(z.pop(max), want.map(|(s, m)| (m, s)));
                }
                Op::RemoveRanks(a, b) => {
                    let (a, b) = (usize::from(a), usize::from(b));
                    let hi = b.min(model.0.len());
                    let want: Vec<_> = if a < hi { model.0.drain(a..hi).map(|(s, m)| (m, s)).collect() } else { Vec::new() };
                    prop_assert_eq!(z.remove_ranks(a, b), want);
                }
            }
            prop_assert_eq!(z.len(), model.0.len());
        }
        let all: Vec<_> = z.iter().map(|(m, s)| (s, m.to_vec())).collect();
        prop_assert_eq!(&all, &model.0);
        for (r, (s, m)) in model.0.iter().enumerate() {
            prop_assert_eq!(z.rank(m), Some(r));
            prop_assert_eq!(z.score(m), Some(*s));
            prop_assert_eq!(z.nth(r).map(|(m, s)| (s, m.to_vec())), Some((*s, m.clone())));
        }
        let asc: Vec<_> = z.iter_from(start).map(|(m, _)| m.to_vec()).collect();
        let want: Vec<_> = model.0.iter().skip(start).map(|(_, m)| m.clone()).collect();
        prop_assert_eq!(asc, want);
        let desc: Vec<_> = z.iter_rev_from(start).map(|(m, _)| m.to_vec()).collect();
        let want: Vec<_> = if start < model.0.len() {
            model.0[..=start].iter().rev().map(|(_, m)| m.clone()).collect()
        } else { Vec::new() };
        prop_assert_eq!(desc, want);

        let (lo, hi) = z.score_span(min, max);
        let inside: Vec<usize> = (0..model.0.len())
            .filter(|&i| min.below(model.0[i].0) && max.above(model.0[i].0))
            .collect();
        prop_assert_eq!(hi - lo, inside.len());
        if let Some(&first) = inside.first() {
            prop_assert_eq!(lo, first);
        }
        let (lo, hi) = z.lex_span(&lmin, &lmax);
        // All scores equal is Redis's contract for lex ranges: check it on
        // the members alone.
        let mut flat = ZSet::new();
        for (_, m) in &model.0 { flat.insert(m, 0.0); }
        let (flo, fhi) = flat.lex_span(&lmin, &lmax);
        let mut names: Vec<_> = model.0.iter().map(|(_, m)| m.clone()).collect();
        names.sort();
        let inside: Vec<usize> = (0..names.len())
            .filter(|&i| lmin.below(&names[i]) && lmax.above(&names[i]))
            .collect();
        prop_assert_eq!(fhi - flo, inside.len());
        if let Some(&first) = inside.first() {
            prop_assert_eq!(flo, first);
        }
        prop_assert!(lo <= hi && hi <= z.len());
    }
}
