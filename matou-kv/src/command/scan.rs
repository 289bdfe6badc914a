//! What the aggregate commands share: the cursor of SSCAN / HSCAN / ZSCAN
//! and the random picks of SPOP / SRANDMEMBER / HRANDFIELD / ZRANDMEMBER.
//!
//! The cursor is a position in a fixed order of the elements: that of a
//! hash of each element's name (a fixed-key SipHash, 63 bits), which no
//! insertion, removal or rehash changes. Each call returns the COUNT
//! elements of smallest hash from the cursor on (all those sharing the
//! last one's hash too), and the next cursor is that hash plus one, so an
//! iteration returns every element present throughout exactly once,
//! whatever changed in between: Redis's SCAN guarantee, which a position
//! in the table's own iteration order breaks as soon as an element before
//! it is removed (Redis's issue #4906). Each call costs a pass over the
//! aggregate, as skipping to a position did. A small aggregate (Redis's
//! compact encodings) is answered whole in one call, cursor 0, as Redis
//! does.
//!
//! Random picks use a xorshift generator seeded per command from the
//! standard library's random keys: no state between commands, and replay
//! never draws (a pop logs what it removed).

use super::parse::parse_scan;
use super::{Read, SYNTAX};
use crate::glob;
use crate::resp::Reply;
use std::hash::{DefaultHasher, Hash, Hasher};

/// An aggregate this small is scanned whole in one call, as Redis's
/// listpack / intset encodings are.
const WHOLE: usize = 128;

/// `key cursor [MATCH pattern] [COUNT count]` after the command name: the
/// cursor, the pattern (`None` for everything) and the count.
///
/// # Errors
/// `ERR invalid cursor`, `ERR syntax error`, a COUNT that is not an integer.
pub(super) fn parse_cursor_args(args: &[Vec<u8>]) -> Result<Cursor, Reply> {
    match parse_scan(&args[1..])? {
        Read::Scan {
            cursor,
            pattern,
            count,
            type_name: None,
        } => Ok(Cursor {
            at: cursor,
            pattern,
            count,
        }),
        _ => Err(Reply::err(SYNTAX)),
    }
}

/// A parsed `cursor [MATCH p] [COUNT n]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Where to resume (0 to start).
    pub at: u64,
    /// MATCH (`None`: all).
    pub pattern: Option<Vec<u8>>,
    /// COUNT: elements looked at per call.
    pub count: usize,
}

impl Cursor {
    /// One step over `items` (the aggregate's `len` elements in iteration
    /// order, each with the name MATCH tests): the reply `[next, [...]]`,
    /// each kept item expanded into its replies by `emit`.
    pub(super) fn step<'a, T: 'a>(
        &self,
        len: usize,
        items: impl Iterator<Item = (&'a [u8], T)>,
        mut emit: impl FnMut(&'a [u8], T, &mut Vec<Reply>),
    ) -> Reply {
        let mut out = Vec::new();
        let mut keep = |name: &'a [u8], item: T, out: &mut Vec<Reply>| {
            if self.pattern.as_ref().is_none_or(|p| glob::matches(p, name)) {
                emit(name, item, out);
            }
        };
        if len <= WHOLE {
            items.for_each(|(name, item)| keep(name, item, &mut out));
            return Reply::Array(vec![Reply::Bulk(b"0".to_vec()), Reply::Array(out)]);
        }
        let mut picked: Vec<(u64, &'a [u8], T)> = items
            .filter_map(|(name, item)| {
                let h = order(name);
                (h >= self.at).then_some((h, name, item))
            })
            .collect();
        let count = self.count.max(1);
        let mut next = 0;
        if picked.len() > count {
            picked.select_nth_unstable_by_key(count - 1, |p| p.0);
            let cut = picked[count - 1].0;
            picked.retain(|p| p.0 <= cut);
            // 63-bit hashes: `cut + 1` is never 0, the end's cursor.
            next = cut + 1;
        }
        picked.sort_unstable_by_key(|p| p.0);
        for (_, name, item) in picked {
            keep(name, item, &mut out);
        }
        Reply::Array(vec![
            Reply::Bulk(next.to_string().into_bytes()),
            Reply::Array(out),
        ])
    }
}

/// An element's place in the cursor's order (see the module docs): fixed
/// keys, so that it never changes while a cursor is out.
fn order(name: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish() >> 1
}

/// A xorshift64* generator: cheap, seeded per command.
pub(super) struct Rng(u64);

impl Rng {
    /// Seeded from the standard library's random keys.
    pub(super) fn new() -> Rng {
        Rng(super::strings::random_seed() | 1)
    }

    /// A number in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // Multiply-shift: no modulo bias worth noticing for n << 2^64.
        ((u128::from(x) * n as u128) >> 64) as usize
    }

    /// `count` distinct indexes of `0..len` (`count <= len`), in random
    /// order: a partial Fisher-Yates shuffle, O(len) memory.
    pub(super) fn distinct(&mut self, len: usize, count: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..len).collect();
        for i in 0..count.min(len) {
            let j = i + self.below(len - i);
            idx.swap(i, j);
        }
        idx.truncate(count);
        idx
    }
}

/// The count argument of SRANDMEMBER / HRANDFIELD / ZRANDMEMBER: a
/// positive count asks for distinct elements, a negative one for `-count`
/// picks that may repeat. Redis refuses a magnitude whose reply could not
/// be built.
///
/// # Errors
/// `ERR value is out of range`.
pub(super) fn rand_count(n: i64, per_item: i64) -> Result<i64, Reply> {
    if n < -(i64::MAX / per_item) || n > i64::MAX / per_item {
        return Err(Reply::err("ERR value is out of range"));
    }
    Ok(n)
}

/// What a random pick of `count` (as [`rand_count`] reads it) out of `len`
/// elements selects: indexes into the iteration order, distinct for a
/// positive count (all of them, in order, when `count >= len`).
pub(super) fn pick(rng: &mut Rng, len: usize, count: i64) -> Vec<usize> {
    if len == 0 || count == 0 {
        return Vec::new();
    }
    if count < 0 {
        let n = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        return (0..n).map(|_| rng.below(len)).collect();
    }
    let n = usize::try_from(count).unwrap_or(usize::MAX);
    if n >= len {
        return (0..len).collect();
    }
    rng.distinct(len, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_follow_the_count_rules() {
        let mut rng = Rng::new();
        assert_eq!(pick(&mut rng, 5, 10), vec![0, 1, 2, 3, 4]);
        let mut d = pick(&mut rng, 100, 30);
        assert_eq!(d.len(), 30);
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 30, "a positive count picks distinct elements");
        let r = pick(&mut rng, 3, -50);
        assert_eq!(r.len(), 50);
        assert!(r.iter().all(|&i| i < 3));
        assert!(pick(&mut rng, 0, -5).is_empty());
        assert!(rand_count(i64::MIN, 1).is_err());
        assert!(rand_count(i64::MAX / 2 + 1, 2).is_err());
    }

    #[test]
    fn a_cursor_walk_returns_everything_once() {
        let names: Vec<Vec<u8>> = (0..500).map(|i| format!("m{i}").into_bytes()).collect();
        let mut cur = Cursor {
            at: 0,
            pattern: None,
            count: 7,
        };
        let mut got = Vec::new();
        loop {
            let r = cur.step(
                names.len(),
                names.iter().map(|n| (n.as_slice(), ())),
                |n, (), out| out.push(Reply::Bulk(n.to_vec())),
            );
            let Reply::Array(parts) = r else { panic!() };
            let (Reply::Bulk(next), Reply::Array(items)) = (&parts[0], &parts[1]) else {
                panic!()
            };
            got.extend(items.iter().cloned());
            cur.at = std::str::from_utf8(next).unwrap().parse().unwrap();
            if cur.at == 0 {
                break;
            }
        }
        assert_eq!(got.len(), 500);
    }

    /// Redis's issue #4906: removing most elements mid-iteration must not
    /// make it miss any of those present throughout.
    #[test]
    fn removals_mid_walk_miss_nothing_present_throughout() {
        let mut names: Vec<Vec<u8>> = (0..1000).map(|i| i.to_string().into_bytes()).collect();
        let mut cur = Cursor {
            at: 0,
            pattern: None,
            count: 10,
        };
        let mut got = std::collections::HashSet::new();
        for call in 0.. {
            let r = cur.step(
                names.len(),
                names.iter().map(|n| (n.as_slice(), ())),
                |n, (), out| out.push(Reply::Bulk(n.to_vec())),
            );
            let Reply::Array(parts) = r else { panic!() };
            let (Reply::Bulk(next), Reply::Array(items)) = (&parts[0], &parts[1]) else {
                panic!()
            };
            got.extend(items.iter().map(|r| match r {
                Reply::Bulk(b) => b.clone(),
                other => panic!("{other:?}"),
            }));
            if call == 3 {
                // Most elements go, from everywhere in the order.
                names.retain(|n| std::str::from_utf8(n).unwrap().parse::<u32>().unwrap() % 5 == 0);
            }
            cur.at = std::str::from_utf8(next).unwrap().parse().unwrap();
            if cur.at == 0 {
                break;
            }
        }
        for n in &names {
            assert!(got.contains(n), "{n:?} missed");
        }
    }
}
