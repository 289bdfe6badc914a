//! What the aggregate commands share: the cursor of SSCAN / HSCAN / ZSCAN
//! and the random picks of SPOP / SRANDMEMBER / HRANDFIELD / ZRANDMEMBER.
//!
//! The cursor is a position in the aggregate's iteration order (a hash
//! table's, or a sorted set's rank): an iteration with no change in
//! between returns every element exactly once. Unlike Redis's
//! reverse-binary cursor, a change that rehashes the table can make an
//! iteration miss or repeat elements present throughout; a small
//! aggregate (Redis's compact encodings) is answered whole in one call,
//! cursor 0, as Redis does.
//!
//! Random picks use a xorshift generator seeded per command from the
//! standard library's random keys: no state between commands, and replay
//! never draws (a pop logs what it removed).

use super::parse::parse_scan;
use super::{Read, SYNTAX};
use crate::glob;
use crate::resp::Reply;

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
        let start = usize::try_from(self.at).unwrap_or(usize::MAX);
        let take = if len <= WHOLE { usize::MAX } else { self.count };
        let mut out = Vec::new();
        let mut seen = 0;
        for (name, item) in items.skip(start).take(take) {
            seen += 1;
            if self.pattern.as_ref().is_none_or(|p| glob::matches(p, name)) {
                emit(name, item, &mut out);
            }
        }
        let next = start.saturating_add(seen);
        let next = if len <= WHOLE || next >= len { 0 } else { next };
        Reply::Array(vec![
            Reply::Bulk(next.to_string().into_bytes()),
            Reply::Array(out),
        ])
    }
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
}
