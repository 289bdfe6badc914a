//! The parse of the list commands and of their blocking forms: Redis
//! 7.0's argument checks and error texts (timeouts in fractional seconds,
//! LPOS's RANK / COUNT / MAXLEN, LMPOP's numkeys and COUNT).

use super::{ListRead, ListWrite, MUST_BE_POSITIVE};
use crate::command::{NOT_INTEGER, SYNTAX};
use crate::resp::{parse_i64, Reply};

/// Whether `name` is one of this module's commands.
pub fn owns(name: &str) -> bool {
    matches!(
        name,
        "lpush"
            | "rpush"
            | "lpushx"
            | "rpushx"
            | "lpop"
            | "rpop"
            | "lrange"
            | "lindex"
            | "lset"
            | "llen"
            | "lrem"
            | "ltrim"
            | "linsert"
            | "lpos"
            | "lmove"
            | "rpoplpush"
            | "lmpop"
            | "blpop"
            | "brpop"
            | "blmove"
            | "brpoplpush"
            | "blmpop"
    )
}

fn int(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or(Reply::err(NOT_INTEGER))
}

/// Redis's `getRangeLongFromObjectOrReply(min, LONG_MAX, msg)`: an integer
/// of at least `min`, `msg` for anything else.
fn at_least(b: &[u8], min: i64, msg: &'static str) -> Result<i64, Reply> {
    match parse_i64(b) {
        Some(n) if n >= min => Ok(n),
        _ => Err(Reply::err(msg)),
    }
}

fn side(b: &[u8]) -> Result<bool, Reply> {
    if b.eq_ignore_ascii_case(b"left") {
        Ok(true)
    } else if b.eq_ignore_ascii_case(b"right") {
        Ok(false)
    } else {
        Err(Reply::err(SYNTAX))
    }
}

/// A blocking command's timeout in seconds (fractions allowed, as Redis's
/// `getTimeoutFromObjectOrReply`): the wait in ms, 0 for forever.
pub(in crate::command) fn timeout(b: &[u8]) -> Result<u64, Reply> {
    let not_float = || Reply::err("ERR timeout is not a float or out of range");
    let text = std::str::from_utf8(b).map_err(|_| not_float())?;
    // strtold reads hexadecimal too; Rust's parse does not.
    let secs = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).map_err(|_| not_float())? as f64,
        None => text.parse::<f64>().map_err(|_| not_float())?,
    };
    if secs.is_nan() || text.trim() != text || text.is_empty() {
        return Err(not_float());
    }
    let ms = secs * 1000.0;
    if ms <= -1.0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    // Redis refuses a deadline past LLONG_MAX ms; a tenth of that is
    // still 29 million years.
    if ms >= (i64::MAX / 10) as f64 {
        return Err(Reply::err("ERR timeout is out of range"));
    }
    // Truncated, as Redis does (0.0001 s is 0: forever).
    Ok(ms.max(0.0) as u64)
}

/// LMPOP / BLMPOP from `numkeys` on: the keys, the side and the count.
fn mpop(args: &[Vec<u8>], at: usize) -> Result<(Vec<Vec<u8>>, bool, usize), Reply> {
    let numkeys = at_least(&args[at], 1, "ERR numkeys should be greater than 0")? as u64;
    let rest = (args.len() - at - 1) as u64;
    if numkeys >= rest {
        return Err(Reply::err(SYNTAX));
    }
    let n = numkeys as usize;
    let keys = args[at + 1..at + 1 + n].to_vec();
    let left = side(&args[at + 1 + n])?;
    let mut count = None;
    let mut j = at + 2 + n;
    while j < args.len() {
        if count.is_none() && args[j].eq_ignore_ascii_case(b"count") && j + 1 < args.len() {
            count = Some(at_least(
                &args[j + 1],
                1,
                "ERR count should be greater than 0",
            )?);
            j += 2;
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok((keys, left, count))
}

/// Parses one of this module's commands (arity already checked).
pub(in crate::command) fn parse(
    name: &str,
    args: &[Vec<u8>],
) -> Result<crate::command::Command, Reply> {
    use crate::command::Command::{Read as R, Write as W};
    let key = args[1].clone();
    let w = |l: ListWrite| Ok(W(crate::command::Write::List(l)));
    let r = |l: ListRead| Ok(R(crate::command::Read::List(l)));
    match name {
        "lpush" | "rpush" | "lpushx" | "rpushx" => w(ListWrite::Push {
            key,
            left: name.starts_with('l'),
            elements: args[2..].to_vec(),
            only_existing: name.ends_with('x'),
        }),
        "lpop" | "rpop" => {
            if args.len() > 3 {
                return Err(crate::command::wrong_arity(name));
            }
            let count = match args.get(2) {
                None => None,
                Some(c) => Some(at_least(c, 0, MUST_BE_POSITIVE)? as usize),
            };
            w(ListWrite::Pop {
                key,
                left: name == "lpop",
                count,
            })
        }
        "lrange" => r(ListRead::Range(key, int(&args[2])?, int(&args[3])?)),
        "lindex" => r(ListRead::Index(key, int(&args[2])?)),
        "llen" => r(ListRead::Len(key)),
        "lset" => w(ListWrite::Set(key, int(&args[2])?, args[3].clone())),
        "lrem" => w(ListWrite::Rem(key, int(&args[2])?, args[3].clone())),
        "ltrim" => w(ListWrite::Trim(key, int(&args[2])?, int(&args[3])?)),
        "linsert" => {
            let after = if args[2].eq_ignore_ascii_case(b"after") {
                true
            } else if args[2].eq_ignore_ascii_case(b"before") {
                false
            } else {
                return Err(Reply::err(SYNTAX));
            };
            w(ListWrite::Insert {
                key,
                after,
                pivot: args[3].clone(),
                element: args[4].clone(),
            })
        }
        "lpos" => {
            let (mut rank, mut count, mut maxlen) = (1, None, 0);
            let mut j = 3;
            while j < args.len() {
                let opt = &args[j];
                let Some(v) = args.get(j + 1) else {
                    return Err(Reply::err(SYNTAX));
                };
                if opt.eq_ignore_ascii_case(b"rank") {
                    rank = int(v)?;
                    if rank == i64::MIN {
                        return Err(Reply::err("ERR value is out of range"));
                    }
                    if rank == 0 {
                        return Err(Reply::err(
                            "ERR RANK can't be zero: use 1 to start from the first match, 2 \
                             from the second ... or use negative to start from the end of the \
                             list",
                        ));
                    }
                } else if opt.eq_ignore_ascii_case(b"count") {
                    count = Some(at_least(v, 0, "ERR COUNT can't be negative")? as usize);
                } else if opt.eq_ignore_ascii_case(b"maxlen") {
                    maxlen = at_least(v, 0, "ERR MAXLEN can't be negative")? as usize;
                } else {
                    return Err(Reply::err(SYNTAX));
                }
                j += 2;
            }
            r(ListRead::Pos {
                key,
                element: args[2].clone(),
                rank,
                count,
                maxlen,
            })
        }
        "lmove" | "blmove" => {
            let (from_left, to_left) = (side(&args[3])?, side(&args[4])?);
            let block = match name {
                "blmove" => Some(timeout(&args[5])?),
                _ => None,
            };
            w(ListWrite::Move {
                from: key,
                to: args[2].clone(),
                from_left,
                to_left,
                block,
            })
        }
        "rpoplpush" | "brpoplpush" => {
            let block = match name {
                "brpoplpush" => Some(timeout(&args[3])?),
                _ => None,
            };
            w(ListWrite::Move {
                from: key,
                to: args[2].clone(),
                from_left: false,
                to_left: true,
                block,
            })
        }
        "lmpop" => {
            let (keys, left, count) = mpop(args, 1)?;
            w(ListWrite::MPop {
                keys,
                left,
                count,
                single: false,
                block: None,
            })
        }
        "blmpop" => {
            let t = timeout(&args[1])?;
            let (keys, left, count) = mpop(args, 2)?;
            w(ListWrite::MPop {
                keys,
                left,
                count,
                single: false,
                block: Some(t),
            })
        }
        "blpop" | "brpop" => {
            let t = timeout(&args[args.len() - 1])?;
            w(ListWrite::MPop {
                keys: args[1..args.len() - 1].to_vec(),
                left: name == "blpop",
                count: 1,
                single: true,
                block: Some(t),
            })
        }
        _ => Err(Reply::err(SYNTAX)),
    }
}
