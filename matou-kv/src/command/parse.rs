//! The typed parse: options and integers of each command, after the
//! lookup and the authentication gate, with Redis 7's rules on which
//! options combine and in which order errors are reported.

use super::{
    lookup, shown, wrong_arity, BitOp, Command, CommandQuery, Cond, Conn, ExpireCond, Expiry, Read,
    SetReply, Write, MAX_STRING, NOAUTH, NOT_INTEGER, SYNTAX,
};
use crate::resp::{parse_i64, Reply};

fn int(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or(Reply::err(NOT_INTEGER))
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// A SCAN cursor as Redis 7.0 reads it (`strtoul` with the whole string
/// consumed): an optional sign then decimal digits, a negative one wrapping
/// around (`-1` is 2^64 - 1), the empty string 0; leading white space, any
/// other byte and a value past 2^64 - 1 are refused.
fn parse_cursor(b: &[u8]) -> Option<u64> {
    let (negative, digits) = match b.split_first() {
        None => return Some(0),
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        Some(_) => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some(if negative { n.wrapping_neg() } else { n })
}

/// `ERR bit offset is not an integer or out of range`: SETBIT/GETBIT
/// offsets address at most MAX_STRING bytes.
fn bit_offset(b: &[u8]) -> Result<u64, Reply> {
    parse_i64(b)
        .and_then(|n| u64::try_from(n).ok())
        .filter(|&n| n < (MAX_STRING as u64) * 8)
        .ok_or(Reply::err(
            "ERR bit offset is not an integer or out of range",
        ))
}

/// A 0 or 1 argument.
fn bit_value(b: &[u8]) -> Result<bool, Reply> {
    match parse_i64(b) {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(_) => Err(Reply::err("ERR The bit argument must be 1 or 0.")),
        None => Err(Reply::err(NOT_INTEGER)),
    }
}

/// Parses `args` into a [`Command`], checking, in Redis's order, the
/// command and its arity, then authentication (`authenticated` false lets
/// only AUTH, HELLO and QUIT through), then the options.
///
/// # Errors
/// The error reply Redis would send.
pub fn parse(args: &[Vec<u8>], authenticated: bool) -> Result<Command, Reply> {
    parse_spec(lookup(args)?, args, authenticated)
}

/// [`parse`] of a command already looked up (`spec` is `lookup(args)`'s),
/// for a caller that needs the spec too: the table is searched once.
///
/// # Errors
/// As [`parse`], from the authentication check on.
pub fn parse_spec(
    spec: &'static super::Spec,
    args: &[Vec<u8>],
    authenticated: bool,
) -> Result<Command, Reply> {
    if !authenticated && !spec.no_auth() {
        return Err(Reply::err(NOAUTH));
    }
    let key = || args[1].clone();
    let rest = || args[1..].to_vec();
    let read = |r: Read| Ok(Command::Read(r));
    let write = |w: Write| Ok(Command::Write(w));
    let conn = |c: Conn| Ok(Command::Conn(c));
    match spec.name {
        "get" => read(Read::Get(key())),
        "strlen" => read(Read::Strlen(key())),
        "mget" => read(Read::MGet(rest())),
        "exists" => read(Read::Exists(rest())),
        "ttl" => read(Read::Ttl {
            key: key(),
            ms: false,
        }),
        "pttl" => read(Read::Ttl {
            key: key(),
            ms: true,
        }),
        "type" => read(Read::Type(key())),
        "keys" => read(Read::Keys(key())),
        "scan" => parse_scan(args).map(Command::Read),
        "dbsize" => read(Read::DbSize),
        "getrange" | "substr" => read(Read::GetRange {
            key: key(),
            start: int(&args[2])?,
            end: int(&args[3])?,
        }),
        "randomkey" => read(Read::RandomKey),
        "touch" => read(Read::Touch(rest())),
        "expiretime" | "pexpiretime" => read(Read::ExpireTime {
            key: key(),
            ms: spec.name == "pexpiretime",
        }),
        "time" => read(Read::Time),
        "wait" => {
            int(&args[1])?;
            let timeout = parse_i64(&args[2])
                .ok_or(Reply::err("ERR timeout is not an integer or out of range"))?;
            if timeout < 0 {
                return Err(Reply::err("ERR timeout is negative"));
            }
            read(Read::Wait)
        }
        "getbit" => read(Read::GetBit {
            key: key(),
            offset: bit_offset(&args[2])?,
        }),
        "bitcount" => {
            let range = match args.len() {
                2 => None,
                4 | 5 => {
                    let (start, end) = (int(&args[2])?, int(&args[3])?);
                    let bit = match args.get(4) {
                        None => false,
                        Some(u) if is(u, "byte") => false,
                        Some(u) if is(u, "bit") => true,
                        Some(_) => return Err(Reply::err(SYNTAX)),
                    };
                    Some((start, end, bit))
                }
                _ => return Err(Reply::err(SYNTAX)),
            };
            read(Read::BitCount { key: key(), range })
        }
        "bitpos" => {
            if args.len() > 6 {
                return Err(Reply::err(SYNTAX));
            }
            let bit = bit_value(&args[2])?;
            let start = args.get(3).map(|a| int(a)).transpose()?;
            let end = args.get(4).map(|a| int(a)).transpose()?;
            let bit_unit = match args.get(5) {
                None => false,
                Some(u) if is(u, "byte") => false,
                Some(u) if is(u, "bit") => true,
                Some(_) => return Err(Reply::err(SYNTAX)),
            };
            read(Read::BitPos {
                key: key(),
                bit,
                start,
                end,
                bit_unit,
            })
        }
        "lcs" => parse_lcs(args).map(Command::Read),
        "object|encoding" => read(Read::ObjectEncoding(args[2].clone())),
        "object|freq" => read(Read::ObjectFreq(args[2].clone())),
        "object|idletime" => read(Read::ObjectIdleTime(args[2].clone())),
        "object|refcount" => read(Read::ObjectRefCount(args[2].clone())),
        "object|help" => read(Read::ObjectHelp),
        "dump" => read(super::dump::parse_dump(args)),
        "bitfield" => write(super::bitfield::parse_bitfield(args)?),
        "bitfield_ro" => read(super::bitfield::parse_bitfield_ro(args)?),
        "restore" => write(super::dump::parse_restore(args)?),
        "memory|usage" => {
            match args.len() {
                3 => {}
                5 if is(&args[3], "samples") => {
                    int(&args[4])?;
                }
                _ => return Err(Reply::err(SYNTAX)),
            }
            read(Read::MemoryUsage(args[2].clone()))
        }
        "getex" => parse_getex(args).map(Command::Write),
        "setrange" => {
            let offset = int(&args[2])?;
            let offset =
                usize::try_from(offset).map_err(|_| Reply::err("ERR offset is out of range"))?;
            write(Write::SetRange {
                key: key(),
                offset,
                value: args[3].clone(),
            })
        }
        "incrbyfloat" => write(Write::IncrByFloat {
            key: key(),
            by: args[2].clone(),
        }),
        "rename" | "renamenx" => write(Write::Rename {
            from: key(),
            to: args[2].clone(),
            nx: spec.name == "renamenx",
        }),
        "unlink" => write(Write::Del(rest())),
        "copy" => {
            let (mut db, mut replace) = (None, false);
            let mut j = 3;
            while j < args.len() {
                if is(&args[j], "replace") {
                    replace = true;
                } else if is(&args[j], "db") && j + 1 < args.len() {
                    db = Some(int(&args[j + 1])?);
                    j += 1;
                } else {
                    return Err(Reply::err(SYNTAX));
                }
                j += 1;
            }
            write(Write::Copy {
                from: key(),
                to: args[2].clone(),
                db,
                replace,
            })
        }
        "setbit" => {
            let offset = bit_offset(&args[2])?;
            let bit = match parse_i64(&args[3]) {
                Some(0) => false,
                Some(1) => true,
                _ => return Err(Reply::err("ERR bit is not an integer or out of range")),
            };
            write(Write::SetBit {
                key: key(),
                offset,
                bit,
            })
        }
        "bitop" => {
            let op = [
                ("and", BitOp::And),
                ("or", BitOp::Or),
                ("xor", BitOp::Xor),
                ("not", BitOp::Not),
            ]
            .into_iter()
            .find(|(w, _)| is(&args[1], w))
            .map(|(_, op)| op)
            .ok_or(Reply::err(SYNTAX))?;
            if op == BitOp::Not && args.len() != 4 {
                return Err(Reply::err(
                    "ERR BITOP NOT must be called with a single source key.",
                ));
            }
            write(Write::BitOp {
                op,
                dest: args[2].clone(),
                keys: args[3..].to_vec(),
            })
        }
        "set" => parse_set(args).map(Command::Write),
        "getset" | "setnx" => write(Write::Set {
            key: key(),
            value: args[2].clone(),
            cond: (spec.name == "setnx").then_some(Cond::Nx),
            expiry: Expiry::Clear,
            reply: if spec.name == "setnx" {
                SetReply::Flag
            } else {
                SetReply::Old
            },
            name: spec.name,
        }),
        "setex" | "psetex" => {
            let n = int(&args[2])?;
            let seconds = spec.name == "setex";
            if n <= 0 || (seconds && n > i64::MAX / 1000) {
                return Err(invalid_expire(spec.name));
            }
            write(Write::Set {
                key: key(),
                value: args[3].clone(),
                cond: None,
                expiry: Expiry::In(if seconds { n * 1000 } else { n }),
                reply: SetReply::Ok,
                name: spec.name,
            })
        }
        "getdel" => write(Write::GetDel(key())),
        "del" => write(Write::Del(rest())),
        "incr" | "decr" => write(Write::IncrBy {
            key: key(),
            by: if spec.name == "incr" { 1 } else { -1 },
        }),
        "incrby" => write(Write::IncrBy {
            key: key(),
            by: int(&args[2])?,
        }),
        "decrby" => {
            let by = int(&args[2])?;
            let by = by
                .checked_neg()
                .ok_or(Reply::err("ERR decrement would overflow"))?;
            write(Write::IncrBy { key: key(), by })
        }
        "append" => write(Write::Append {
            key: key(),
            suffix: args[2].clone(),
        }),
        "mset" | "msetnx" => {
            if args.len() % 2 == 0 {
                return Err(wrong_arity(spec.name));
            }
            let pairs = args[1..]
                .chunks_exact(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            write(Write::MSet {
                pairs,
                nx: spec.name == "msetnx",
            })
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let cond = parse_expire_cond(&args[3..])?;
            write(Write::Expire {
                key: key(),
                when: int(&args[2])?,
                seconds: !spec.name.starts_with('p'),
                absolute: spec.name.ends_with("at"),
                cond,
                name: spec.name,
            })
        }
        "persist" => write(Write::Persist(key())),
        "flushdb" | "flushall" => {
            let flush = match spec.name {
                "flushall" => Write::FlushAll,
                _ => Write::Flush,
            };
            match args.get(1) {
                None => write(flush),
                Some(a) if args.len() == 2 && (is(a, "sync") || is(a, "async")) => write(flush),
                Some(_) => Err(Reply::err(SYNTAX)),
            }
        }
        "move" => write(Write::Move {
            key: key(),
            db: int(&args[2])?,
        }),
        "swapdb" => {
            let index = |a: &[u8], which: &str| {
                parse_i64(a).ok_or_else(|| Reply::err(format!("ERR invalid {which} DB index")))
            };
            write(Write::SwapDb(
                index(&args[1], "first")?,
                index(&args[2], "second")?,
            ))
        }
        "ping" => match args.len() {
            1 => conn(Conn::Ping(None)),
            2 => conn(Conn::Ping(Some(args[1].clone()))),
            _ => Err(wrong_arity(spec.name)),
        },
        "echo" => conn(Conn::Echo(key())),
        "auth" => match args.len() {
            2 => conn(Conn::Auth {
                user: None,
                password: key(),
            }),
            3 => conn(Conn::Auth {
                user: Some(key()),
                password: args[2].clone(),
            }),
            _ => Err(Reply::err(SYNTAX)),
        },
        "hello" => parse_hello(args).map(Command::Conn),
        "quit" => conn(Conn::Quit),
        "select" => conn(Conn::Select(int(&args[1])?)),
        "info" => conn(Conn::Info(rest())),
        "shutdown" => {
            let ok = args[1..]
                .iter()
                .all(|a| ["nosave", "save", "now", "force"].iter().any(|w| is(a, w)));
            if ok {
                conn(Conn::Shutdown)
            } else {
                Err(Reply::err(SYNTAX))
            }
        }
        "client|setname" => conn(Conn::ClientSetName(args[2].clone())),
        "client|getname" => conn(Conn::ClientGetName),
        "client|id" => conn(Conn::ClientId),
        "client|setinfo" => {
            if is(&args[2], "lib-name") || is(&args[2], "lib-ver") {
                conn(Conn::ClientSetInfo)
            } else {
                Err(Reply::err(format!(
                    "ERR Unrecognized option '{}'",
                    shown(&args[2], 128)
                )))
            }
        }
        "client|help" => conn(Conn::Help("CLIENT")),
        "slowlog|help" => conn(Conn::Help("SLOWLOG")),
        "config|get" => conn(Conn::ConfigGet(args[2..].to_vec())),
        "config|set" | "client|list" | "client|info" | "client|kill" | "client|unblock"
        | "client|no-evict" | "client|tracking" | "client|reply" | "monitor" | "config|rewrite"
        | "slowlog|get" | "slowlog|len" | "slowlog|reset" | "save" | "bgrewriteaof" | "bgsave"
        | "lastsave" | "debug" => {
            super::ops::parse(spec.name, args).map(|o| Command::Conn(Conn::Ops(o)))
        }
        "config|resetstat" => conn(Conn::ConfigResetStat),
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "script|load"
        | "script|exists" | "script|flush" | "script|kill" | "function|kill" | "function|flush"
        | "function|delete" | "function|stats" | "function|load" | "function|list" => {
            super::script::parse(spec.name, args)
        }
        "config|help" => conn(Conn::Help("CONFIG")),
        "command" => conn(Conn::Command(CommandQuery::All)),
        "command|count" => conn(Conn::Command(CommandQuery::Count)),
        "command|docs" => conn(Conn::Command(CommandQuery::Docs)),
        "command|info" => conn(Conn::Command(CommandQuery::Info(args[2..].to_vec()))),
        "command|list" => conn(Conn::Command(CommandQuery::List)),
        "command|help" => conn(Conn::Help("COMMAND")),
        "command|getkeys" => conn(Conn::Command(CommandQuery::GetKeys(args[2..].to_vec()))),
        name if super::sort::owns(name) => super::sort::parse(name, args),
        name if super::geo::owns(name) => super::geo::parse(name, args),
        // The connection answers them before parsing (`multi`); a caller
        // without one (`execute`) gets this.
        "multi" | "exec" | "discard" | "watch" | "unwatch" => Err(Reply::err(format!(
            "ERR {} is answered by a connection, not on a store alone",
            spec.name.to_ascii_uppercase()
        ))),
        name if super::hash::owns(name) => super::hash::parse(name, args),
        name if super::list::owns(name) => super::list::parse(name, args),
        name if super::set::owns(name) => super::set::parse(name, args),
        name if super::zset::owns(name) => super::zset::parse(name, args),
        name if super::pubsub::owns(name) => super::pubsub::parse(name, args),
        "pubsub|help" => conn(Conn::Help("PUBSUB")),
        // The connection handler runs RESET before any parse (it changes
        // the handler's own state: transaction, subscriptions).
        "reset" => Err(Reply::err(
            "ERR RESET can only be run by a client connection",
        )),
        other => unreachable!("command {other} is in the table but not parsed"),
    }
}

pub(super) fn invalid_expire(name: &str) -> Reply {
    Reply::err(format!("ERR invalid expire time in '{name}' command"))
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`, with
/// Redis 7's rules on which options combine (`parseExtendedStringArguments`)
/// and its order of checks: options first, then the expiry's value.
fn parse_set(args: &[Vec<u8>]) -> Result<Write, Reply> {
    let (mut cond, mut get, mut keep) = (None, false, false);
    // (which of ex/px/exat/pxat, its argument)
    let mut expire: Option<(&str, &[u8])> = None;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        let next = args.get(j + 1);
        let other_expire = |name: &str| expire.is_some_and(|(n, _)| n != name);
        if is(opt, "nx") && cond != Some(Cond::Xx) {
            cond = Some(Cond::Nx);
        } else if is(opt, "xx") && cond != Some(Cond::Nx) {
            cond = Some(Cond::Xx);
        } else if is(opt, "get") {
            get = true;
        } else if is(opt, "keepttl") && expire.is_none() {
            keep = true;
        } else if let Some(which) = ["ex", "px", "exat", "pxat"]
            .into_iter()
            .find(|w| is(opt, w) && !keep && !other_expire(w) && next.is_some())
        {
            expire = Some((which, next.map(Vec::as_slice).unwrap_or_default()));
            j += 1;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    let expiry = match expire {
        None if keep => Expiry::Keep,
        None => Expiry::Clear,
        Some((which, arg)) => {
            let n = int(arg)?;
            let seconds = which == "ex" || which == "exat";
            if n <= 0 || (seconds && n > i64::MAX / 1000) {
                return Err(invalid_expire("set"));
            }
            let ms = if seconds { n * 1000 } else { n };
            if which.ends_with("at") {
                Expiry::At(ms)
            } else {
                Expiry::In(ms)
            }
        }
    };
    Ok(Write::Set {
        key: args[1].clone(),
        value: args[2].clone(),
        cond,
        expiry,
        reply: if get { SetReply::Old } else { SetReply::Ok },
        name: "set",
    })
}

/// `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`: one option at most
/// (Redis's `parseExtendedStringArguments` with `COMMAND_GET`).
fn parse_getex(args: &[Vec<u8>]) -> Result<Write, Reply> {
    let mut expiry = None;
    // Which option set it: the same one may repeat (the last wins), as in
    // Redis, another may not.
    let mut given: Option<&str> = None;
    let mut j = 2;
    while j < args.len() {
        let opt = &args[j];
        let free = |w: &str| given.is_none_or(|g| g == w);
        if is(opt, "persist") && free("persist") {
            given = Some("persist");
            expiry = Some(Expiry::Clear);
        } else if let Some(which) = ["ex", "px", "exat", "pxat"]
            .into_iter()
            .find(|w| is(opt, w) && free(w) && j + 1 < args.len())
        {
            given = Some(which);
            let n = int(&args[j + 1])?;
            let seconds = which == "ex" || which == "exat";
            if n <= 0 || (seconds && n > i64::MAX / 1000) {
                return Err(invalid_expire("getex"));
            }
            let ms = if seconds { n * 1000 } else { n };
            expiry = Some(if which.ends_with("at") {
                Expiry::At(ms)
            } else {
                Expiry::In(ms)
            });
            j += 1;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    Ok(Write::GetEx {
        key: args[1].clone(),
        expiry,
    })
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`.
fn parse_lcs(args: &[Vec<u8>]) -> Result<Read, Reply> {
    let (mut len, mut idx, mut min_match, mut with_len) = (false, false, 0usize, false);
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        if is(opt, "idx") {
            idx = true;
        } else if is(opt, "len") {
            len = true;
        } else if is(opt, "withmatchlen") {
            with_len = true;
        } else if is(opt, "minmatchlen") && j + 1 < args.len() {
            // Redis clamps a negative one to 0.
            min_match = usize::try_from(int(&args[j + 1])?.max(0)).unwrap_or(usize::MAX);
            j += 1;
        } else {
            return Err(Reply::err(SYNTAX));
        }
        j += 1;
    }
    if len && idx {
        return Err(Reply::err(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    Ok(Read::Lcs {
        keys: (args[1].clone(), args[2].clone()),
        len,
        idx,
        min_match,
        with_len,
    })
}

/// EXPIRE's options (Redis 7's `parseExtendedExpireArgumentsOrReply`).
fn parse_expire_cond(opts: &[Vec<u8>]) -> Result<ExpireCond, Reply> {
    let mut c = ExpireCond::default();
    for o in opts {
        if is(o, "nx") {
            c.nx = true;
        } else if is(o, "xx") {
            c.xx = true;
        } else if is(o, "gt") {
            c.gt = true;
        } else if is(o, "lt") {
            c.lt = true;
        } else {
            return Err(Reply::err(format!(
                "ERR Unsupported option {}",
                shown(o, 128)
            )));
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if c.gt && c.lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(c)
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
pub(super) fn parse_scan(args: &[Vec<u8>]) -> Result<Read, Reply> {
    let cursor = parse_cursor(&args[1]).ok_or(Reply::err("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_name) = (None, 10usize, None);
    let mut i = 2;
    while i < args.len() {
        let has_value = i + 1 < args.len();
        if is(&args[i], "count") && has_value {
            let n = int(&args[i + 1])?;
            if n < 1 {
                return Err(Reply::err(SYNTAX));
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if is(&args[i], "match") && has_value {
            let p = &args[i + 1];
            pattern = (p.as_slice() != b"*").then(|| p.clone());
        } else if is(&args[i], "type") && has_value {
            type_name = Some(args[i + 1].clone());
        } else {
            return Err(Reply::err(SYNTAX));
        }
        i += 2;
    }
    Ok(Read::Scan {
        cursor,
        pattern,
        count,
        type_name,
    })
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]].
fn parse_hello(args: &[Vec<u8>]) -> Result<Conn, Reply> {
    let mut proto = None;
    let mut j = 1;
    if let Some(v) = args.get(1) {
        let v = parse_i64(v).ok_or(Reply::err(
            "ERR Protocol version is not an integer or out of range",
        ))?;
        if v != 2 && v != 3 {
            return Err(Reply::err("NOPROTO unsupported protocol version"));
        }
        proto = Some(v);
        j = 2;
    }
    let (mut auth, mut setname) = (None, None);
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "auth") && more >= 2 {
            auth = Some((args[j + 1].clone(), args[j + 2].clone()));
            j += 3;
        } else if is(&args[j], "setname") && more >= 1 {
            setname = Some(args[j + 1].clone());
            j += 2;
        } else {
            return Err(Reply::err(format!(
                "ERR Syntax error in HELLO option '{}'",
                shown(&args[j], 128)
            )));
        }
    }
    Ok(Conn::Hello {
        proto,
        auth,
        setname,
    })
}
