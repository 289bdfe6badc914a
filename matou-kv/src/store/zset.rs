//! The sorted set: members (binary strings) each with a score (a double,
//! never NaN), ordered by (score, member).
//!
//! What it owns and promises:
//! - **Two indexes kept in step**: a hash map member → score answers ZSCORE
//!   and membership in O(1); an order-statistic tree (a treap in an arena,
//!   each node counting its subtree) orders the pairs by score, ties broken
//!   by the member's bytes (Redis's order). Every mutation updates both
//!   before it returns, so they always hold the same pairs.
//! - **Costs**: insert, remove, rank and select-by-rank are O(log n)
//!   (expected: the treap's priorities come from a per-set xorshift, so its
//!   shape is random but deterministic). A range by rank, by score or by lex
//!   is one O(log n) descent to find its start, then O(1) amortised per
//!   element ([`Iter`] keeps the path on a stack), so O(log n + m); a count
//!   by score or lex is two descents, O(log n).
//! - **Bounds as Redis spells them**: [`ScoreBound`] (`1.5`, `(1.5`, `-inf`,
//!   `+inf`) and [`LexBound`] (`-`, `+`, `[a`, `(a`). A range maps to the
//!   half-open span of ascending ranks `[lo, hi)` its elements occupy
//!   ([`ZSet::score_span`], [`ZSet::lex_span`]); a by-lex range is only
//!   meaningful when all scores are equal (Redis's contract), and is
//!   answered in the same way otherwise (by the tree's order), never with a
//!   panic.
//! - **The encoding is bookkeeping**: Redis answers OBJECT ENCODING
//!   `listpack` for a small set and `skiplist` once it has more than
//!   `zset-max-listpack-entries` members or a member longer than
//!   `zset-max-listpack-value`; the conversion is one-way except where a
//!   command rebuilds the set. [`ZSet::note_encoding`] applies that rule;
//!   equality ignores it, so replay compares content.
//! - `-0.0` and `0.0` compare equal (as in Redis), so they tie on member.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// An absent child in the arena.
const NIL: u32 = u32::MAX;

/// Redis's defaults for the compact encoding's thresholds.
pub const DEFAULT_LISTPACK_ENTRIES: usize = 128;
/// See [`DEFAULT_LISTPACK_ENTRIES`].
pub const DEFAULT_LISTPACK_VALUE: usize = 64;

/// What OBJECT ENCODING answers for a sorted set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Small: at most the entries threshold, every member within the value
    /// threshold.
    Listpack,
    /// Grown past a threshold (sticky until a command rebuilds the set).
    Skiplist,
}

impl Encoding {
    /// The name OBJECT ENCODING replies with.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Listpack => "listpack",
            Encoding::Skiplist => "skiplist",
        }
    }
}

/// One end of a score range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScoreBound {
    /// The score itself is in the range (`1.5`, `-inf`, `+inf`).
    Incl(f64),
    /// The score itself is not (`(1.5`).
    Excl(f64),
}

impl ScoreBound {
    /// Parses Redis's spelling: an optional `(` then a float (`inf`,
    /// `-inf`, `+inf` included). `None` for anything else, NaN included
    /// (the caller answers "min or max is not a float").
    pub fn parse(b: &[u8]) -> Option<ScoreBound> {
        match b.split_first() {
            Some((b'(', rest)) => parse_score(rest).map(ScoreBound::Excl),
            _ => parse_score(b).map(ScoreBound::Incl),
        }
    }

    /// Whether `score` lies at or above this lower bound.
    pub fn below(self, score: f64) -> bool {
        match self {
            ScoreBound::Incl(m) => m <= score,
            ScoreBound::Excl(m) => m < score,
        }
    }

    /// Whether `score` lies at or below this upper bound.
    pub fn above(self, score: f64) -> bool {
        match self {
            ScoreBound::Incl(m) => score <= m,
            ScoreBound::Excl(m) => score < m,
        }
    }
}

/// One end of a lexicographic range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: before every member.
    Min,
    /// `+`: after every member.
    Max,
    /// `[m`: `m` itself is in the range.
    Incl(Vec<u8>),
    /// `(m`: `m` itself is not.
    Excl(Vec<u8>),
}

impl LexBound {
    /// Parses Redis's spelling (`-`, `+`, `[m`, `(m`); `None` otherwise
    /// (the caller answers "min or max not valid string range item").
    pub fn parse(b: &[u8]) -> Option<LexBound> {
        match b {
            b"-" => Some(LexBound::Min),
            b"+" => Some(LexBound::Max),
            [b'[', rest @ ..] => Some(LexBound::Incl(rest.to_vec())),
            [b'(', rest @ ..] => Some(LexBound::Excl(rest.to_vec())),
            _ => None,
        }
    }

    /// Whether `member` lies at or above this lower bound.
    pub fn below(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(m) => m.as_slice() <= member,
            LexBound::Excl(m) => m.as_slice() < member,
        }
    }

    /// Whether `member` lies at or below this upper bound.
    pub fn above(&self, member: &[u8]) -> bool {
        match self {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(m) => member <= m.as_slice(),
            LexBound::Excl(m) => member < m.as_slice(),
        }
    }
}

/// A score as ZADD and the range bounds accept it: Redis's `strtod` rules
/// (no white space, `inf` spellings allowed), never NaN.
pub fn parse_score(b: &[u8]) -> Option<f64> {
    if b.is_empty() || b.len() > 5 * 1024 || b[0].is_ascii_whitespace() {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let f: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse().ok()?,
    };
    (!f.is_nan()).then_some(f)
}

/// A score as Redis 7.0 replies with it: `inf`/`-inf`, otherwise C's
/// `%.17g` (17 significant digits, trailing zeros dropped, an exponent
/// such as `1.0000000000000001e+300` below 1e-4 or from 1e17 up), so
/// `1.1` reads `1.1000000000000001` exactly as redis-server 7.0 writes it.
/// Zero is `0` whatever its sign (Redis's reply for `-0.0`).
pub fn score_text(f: f64) -> Vec<u8> {
    if f.is_infinite() {
        return if f > 0.0 {
            b"inf".to_vec()
        } else {
            b"-inf".to_vec()
        };
    }
    if f == 0.0 {
        return b"0".to_vec();
    }
    const PRECISION: i32 = 17;
    let e = format!("{f:.16e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..PRECISION).contains(&exp) {
        let decimals = usize::try_from(PRECISION - 1 - exp).unwrap_or(0);
        return strip(&format!("{f:.decimals$}")).into_bytes();
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{}e{sign}{:02}", strip(mant), exp.unsigned_abs()).into_bytes()
}

/// Compares scores as Redis does (`<`/`>`), so `-0.0 == 0.0`. Scores are
/// never NaN here; a NaN would compare equal rather than panic.
fn cmp_score(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

#[derive(Clone)]
struct Node {
    score: f64,
    member: Arc<[u8]>,
    prio: u32,
    left: u32,
    right: u32,
    /// Nodes in this subtree, this one included.
    size: u32,
}

/// The order-statistic treap: an arena of nodes (indexes, not pointers, so
/// the module stays safe code) with a free list.
#[derive(Clone)]
struct Tree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    /// xorshift state for the priorities.
    seed: u64,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn size(&self, t: u32) -> usize {
        if t == NIL {
            0
        } else {
            self.nodes[t as usize].size as usize
        }
    }

    fn len(&self) -> usize {
        self.size(self.root)
    }

    fn pull(&mut self, t: u32) {
        let n = &self.nodes[t as usize];
        let s = 1 + self.size(n.left) + self.size(n.right);
        self.nodes[t as usize].size = s as u32;
    }

    fn next_prio(&mut self) -> u32 {
        let mut x = self.seed;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        (x >> 32) as u32
    }

    fn alloc(&mut self, score: f64, member: Arc<[u8]>) -> u32 {
        let node = Node {
            score,
            member,
            prio: self.next_prio(),
            left: NIL,
            right: NIL,
            size: 1,
        };
        match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, t: u32) {
        // Drop the member's bytes now rather than when the slot is reused.
        self.nodes[t as usize].member = Arc::from(&[][..]);
        self.free.push(t);
    }

    /// Splits `t` into (the nodes for which `left_of` holds, the rest);
    /// `left_of` must hold for a prefix of the order.
    fn split(&mut self, t: u32, left_of: &impl Fn(&Node) -> bool) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if left_of(&self.nodes[t as usize]) {
            let (a, b) = self.split(self.nodes[t as usize].right, left_of);
            self.nodes[t as usize].right = a;
            self.pull(t);
            (t, b)
        } else {
            let (a, b) = self.split(self.nodes[t as usize].left, left_of);
            self.nodes[t as usize].left = b;
            self.pull(t);
            (a, t)
        }
    }

    /// Joins two treaps, every node of `a` ordered before every node of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio >= self.nodes[b as usize].prio {
            let r = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = r;
            self.pull(a);
            a
        } else {
            let l = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = l;
            self.pull(b);
            b
        }
    }

    fn insert(&mut self, score: f64, member: Arc<[u8]>) {
        let (l, r) = {
            let m = member.clone();
            self.split(self.root, &|n: &Node| before(n, score, &m))
        };
        let t = self.alloc(score, member);
        let l = self.merge(l, t);
        self.root = self.merge(l, r);
    }

    /// Removes the node (score, member), which must be present.
    fn remove(&mut self, score: f64, member: &[u8]) {
        let (l, r) = self.split(self.root, &|n: &Node| before(n, score, member));
        let (m, r) = self.split(r, &|n: &Node| !after(n, score, member));
        debug_assert!(self.size(m) == 1, "zset tree lost a node");
        if m != NIL {
            self.release(m);
        }
        self.root = self.merge(l, r);
    }

    /// How many nodes `left_of` holds for (a prefix of the order).
    fn count_prefix(&self, left_of: impl Fn(&Node) -> bool) -> usize {
        let mut t = self.root;
        let mut n = 0;
        while t != NIL {
            let node = &self.nodes[t as usize];
            if left_of(node) {
                n += self.size(node.left) + 1;
                t = node.right;
            } else {
                t = node.left;
            }
        }
        n
    }

    fn nth(&self, mut rank: usize) -> Option<u32> {
        let mut t = self.root;
        while t != NIL {
            let node = &self.nodes[t as usize];
            let ls = self.size(node.left);
            match rank.cmp(&ls) {
                Ordering::Less => t = node.left,
                Ordering::Equal => return Some(t),
                Ordering::Greater => {
                    rank -= ls + 1;
                    t = node.right;
                }
            }
        }
        None
    }
}

/// Whether node `n` orders strictly before (score, member).
fn before(n: &Node, score: f64, member: &[u8]) -> bool {
    cmp_score(n.score, score).then_with(|| (*n.member).cmp(member)) == Ordering::Less
}

/// Whether node `n` orders strictly after (score, member).
fn after(n: &Node, score: f64, member: &[u8]) -> bool {
    cmp_score(n.score, score).then_with(|| (*n.member).cmp(member)) == Ordering::Greater
}

/// A sorted set. See the module doc for its invariants and costs.
#[derive(Clone)]
pub struct ZSet {
    scores: HashMap<Arc<[u8]>, f64>,
    tree: Tree,
    encoding: Encoding,
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet::new()
    }
}

impl PartialEq for ZSet {
    /// Same members with the same scores; the encoding and the tree's shape
    /// are not compared.
    fn eq(&self, other: &ZSet) -> bool {
        self.scores == other.scores
    }
}

/// Scores are never NaN, so equality is an equivalence.
impl Eq for ZSet {}

impl fmt::Debug for ZSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(m, s)| (String::from_utf8_lossy(m).into_owned(), s)),
            )
            .finish()
    }
}

impl ZSet {
    /// An empty set (listpack-encoded).
    pub fn new() -> ZSet {
        ZSet {
            scores: HashMap::new(),
            tree: Tree::new(),
            encoding: Encoding::Listpack,
        }
    }

    /// Members.
    pub fn len(&self) -> usize {
        debug_assert_eq!(
            self.scores.len(),
            self.tree.len(),
            "zset indexes out of step"
        );
        self.scores.len()
    }

    /// Whether it has no members (the keyspace never holds an empty one).
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// `member`'s score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score (adding it if absent); returns its previous
    /// score. `score` must not be NaN (the command layer refuses NaN
    /// before calling, as Redis does).
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        debug_assert!(!score.is_nan());
        if let Some((key, old)) = self.scores.get_key_value(member) {
            let old = *old;
            if old.to_bits() != score.to_bits() {
                let key = key.clone();
                self.tree.remove(old, member);
                self.tree.insert(score, key.clone());
                self.scores.insert(key, score);
            }
            return Some(old);
        }
        let key: Arc<[u8]> = Arc::from(member);
        self.tree.insert(score, key.clone());
        self.scores.insert(key, score);
        None
    }

    /// Removes `member`; returns its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let old = self.scores.remove(member)?;
        self.tree.remove(old, member);
        Some(old)
    }

    /// `member`'s 0-based ascending rank.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.tree.count_prefix(|n| before(n, score, member)))
    }

    /// The member of ascending rank `rank` (0-based) and its score.
    pub fn nth(&self, rank: usize) -> Option<(&[u8], f64)> {
        let t = self.tree.nth(rank)?;
        let n = &self.tree.nodes[t as usize];
        Some((&n.member, n.score))
    }

    /// Every (member, score), ascending.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// From ascending rank `rank` upwards (empty if `rank >= len`).
    pub fn iter_from(&self, rank: usize) -> Iter<'_> {
        Iter::new(&self.tree, rank, false)
    }

    /// From ascending rank `rank` downwards to rank 0 (empty if
    /// `rank >= len`).
    pub fn iter_rev_from(&self, rank: usize) -> Iter<'_> {
        if rank >= self.len() {
            return Iter::new(&self.tree, usize::MAX, true);
        }
        Iter::new(&self.tree, self.len() - 1 - rank, true)
    }

    /// The half-open span `[lo, hi)` of ascending ranks whose scores lie
    /// within `min..max`; `lo == hi` when none do.
    pub fn score_span(&self, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
        let lo = self.tree.count_prefix(|n| !min.below(n.score));
        let hi = self.tree.count_prefix(|n| max.above(n.score));
        (lo, hi.max(lo))
    }

    /// The half-open span `[lo, hi)` of ascending ranks whose members lie
    /// within `min..max` (see the module doc on mixed scores).
    pub fn lex_span(&self, min: &LexBound, max: &LexBound) -> (usize, usize) {
        let lo = self.tree.count_prefix(|n| !min.below(&n.member));
        let hi = self.tree.count_prefix(|n| max.above(&n.member));
        (lo, hi.max(lo))
    }

    /// Removes and returns the lowest (`max == false`) or highest member.
    pub fn pop(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        let rank = if max { self.len().checked_sub(1)? } else { 0 };
        let (m, s) = self.nth(rank).map(|(m, s)| (m.to_vec(), s))?;
        self.remove(&m);
        Some((m, s))
    }

    /// Removes the members of ascending ranks `lo..hi`; returns them.
    pub fn remove_ranks(&mut self, lo: usize, hi: usize) -> Vec<(Vec<u8>, f64)> {
        let hi = hi.min(self.len());
        let gone: Vec<_> = self
            .iter_from(lo)
            .take(hi.saturating_sub(lo))
            .map(|(m, s)| (m.to_vec(), s))
            .collect();
        for (m, _) in &gone {
            self.remove(m);
        }
        gone
    }

    /// The encoding OBJECT ENCODING reports.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Applies Redis's one-way conversion after members were added: the set
    /// becomes `skiplist` once it exceeds `max_entries` members or
    /// `longest` (the longest member just added) exceeds `max_value`.
    pub fn note_encoding(&mut self, longest: usize, max_entries: usize, max_value: usize) {
        if self.len() > max_entries || longest > max_value {
            self.encoding = Encoding::Skiplist;
        }
    }

    /// The encoding a set rebuilt by a command (ZRANGESTORE, Z*STORE) gets:
    /// the compact one again when it fits (Redis's
    /// `zsetConvertToListpackIfNeeded`).
    pub fn reset_encoding(&mut self, max_entries: usize, max_value: usize) {
        let longest = self.scores.keys().map(|m| m.len()).max().unwrap_or(0);
        self.encoding = Encoding::Listpack;
        self.note_encoding(longest, max_entries, max_value);
    }

    /// Bytes the members and scores hold, for memory accounting.
    pub fn data_bytes(&self) -> usize {
        self.scores.keys().map(|m| m.len() + 8).sum()
    }
}

/// In-order walk of the tree from a rank, up or down, with the path kept
/// on a stack: O(log n) to start, O(1) amortised per step.
pub struct Iter<'a> {
    tree: &'a Tree,
    stack: Vec<u32>,
    rev: bool,
}

impl<'a> Iter<'a> {
    /// Starts at the node of rank `rank` counted from the low end (`rev ==
    /// false`) or from the high end (`rev == true`).
    fn new(tree: &'a Tree, mut rank: usize, rev: bool) -> Iter<'a> {
        let mut stack = Vec::new();
        let mut t = tree.root;
        // Mirror the children for a descending walk.
        let kids = |n: &Node| {
            if rev {
                (n.right, n.left)
            } else {
                (n.left, n.right)
            }
        };
        while t != NIL {
            let node = &tree.nodes[t as usize];
            let (near, far) = kids(node);
            let ns = tree.size(near);
            match rank.cmp(&ns) {
                Ordering::Less => {
                    stack.push(t);
                    t = near;
                }
                Ordering::Equal => {
                    stack.push(t);
                    break;
                }
                Ordering::Greater => {
                    rank -= ns + 1;
                    t = far;
                }
            }
        }
        if t == NIL {
            // Past the end: nothing to walk.
            stack.clear();
        }
        Iter { tree, stack, rev }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        let t = self.stack.pop()?;
        let node = &self.tree.nodes[t as usize];
        let mut c = if self.rev { node.left } else { node.right };
        while c != NIL {
            self.stack.push(c);
            let n = &self.tree.nodes[c as usize];
            c = if self.rev { n.right } else { n.left };
        }
        Some((&node.member, node.score))
    }
}

#[cfg(test)]
mod tests;
