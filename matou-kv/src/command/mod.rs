//! Commands: from an argument vector to a typed [`Command`], with Redis's
//! exact errors, and their execution against the [`Store`](crate::store::Store).
//!
//! The pipeline, in Redis 7's order (so that clients see the same error
//! Redis would give them for the same bytes):
//! 1. [`lookup`]: the command table (case-insensitive, subcommands of
//!    CLIENT / CONFIG / COMMAND), `ERR unknown command ...`, `ERR unknown
//!    subcommand ...` and the arity check (`ERR wrong number of arguments
//!    for 'get' command`).
//! 2. The authentication gate (`NOAUTH Authentication required.`), passed
//!    by the commands flagged `no_auth` (AUTH, HELLO, QUIT) only.
//! 3. The typed parse of options and integers (`ERR syntax error`, `ERR
//!    value is not an integer or out of range`...).
//!
//! [`parse()`] does all three. The result is routed by its group:
//! - [`Command::Read`]: runs on `&Store` ([`execute_read`]), changes nothing,
//!   logs nothing (expired keys are merely treated as absent).
//! - [`Command::Write`]: runs on `&mut Store` ([`execute_write`]) and returns
//!   the reply and, if the store changed, exactly one [`LogRecord`] that
//!   replays the change without reading the clock: relative times become
//!   absolute (`SET EX` logs the expiry instant, EXPIRE logs PEXPIREAT),
//!   INCR logs the resulting SET, an EXPIRE in the past logs a DEL, and an
//!   expired key that a write removed on its way (lazy expiry) is logged as
//!   a DEL. A command that changed nothing logs nothing. Invariant (the
//!   property test below checks it): applying the record to a copy of the
//!   store taken before the command gives the store after it.
//! - [`Command::Conn`]: connection state and server introspection (AUTH,
//!   SELECT, CLIENT, HELLO, PING, ECHO, INFO, CONFIG, COMMAND, QUIT,
//!   SHUTDOWN), answered by the connection with [`Session`] and the reply
//!   builders ([`info_text`], [`config_get_reply`], [`command_reply`]), which take what they report as parameters.
//!
//! `now` is always the caller's, in Unix milliseconds; it should not go
//! backwards between commands (the storage task can keep the maximum it has
//! seen), which is what makes "expired" stay expired.

mod bitfield;
mod conn;
mod dump;
mod exec;
mod geo;
mod getkeys;
mod hash;
mod kind;
pub mod list;
#[cfg(test)]
mod list_tests;
pub mod multi;
pub mod ops;
mod parse;
pub mod pubsub;
mod scan;
pub mod script;
mod set;
mod sort;
mod strings;
#[cfg(test)]
mod strings_tests;
#[cfg(test)]
mod tests;
mod types;
mod wait;
mod zset;
mod zset_range;

pub use crate::record::LogRecord;
pub use conn::{
    command_reply, config_get_reply, help_reply, info_text, Action, ConfigView, InfoData, Session,
};
pub use exec::{execute, execute_read, execute_write, execute_write_journaled, read_reply_bound};
pub use hash::{del_fields as hash_del_fields, set_fields as hash_set_fields, HashRead, HashWrite};
pub use kind::{kind, Kind};
pub use list::{ListRead, ListWrite};
use parse::invalid_expire;
pub use parse::parse;
pub use scan::Cursor;
pub use set::{
    add_members as set_add_members, rem_members as set_rem_members, SetOp, SetRead, SetWrite,
};
pub use wait::Wait;
pub use zset::{
    add_scores as zset_add_scores, rem_members as zset_rem_members, AddFlags, ZSetRead, ZSetWrite,
};
pub use zset_range::{Aggregate, By, Combine, Form, Range, ZOp};

use crate::resp::Reply;
use std::borrow::Cow;

/// Redis's `proto-max-bulk-len`: the longest value APPEND may build.
pub const MAX_STRING: usize = 512 * 1024 * 1024;

/// `ERR syntax error`.
pub const SYNTAX: &str = "ERR syntax error";
/// `ERR value is not an integer or out of range`.
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// `ERR increment or decrement would overflow`.
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
/// `NOAUTH Authentication required.`
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// `WRONGTYPE ...`: a command on a key holding another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// APPEND past [`MAX_STRING`].
pub const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// A write whose record could not fit a log frame (over 4 GiB).
pub const TOO_LARGE_FOR_LOG: &str = "ERR request too large for the append-only log (over 4 GiB)";

/// Which executor a command goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Reads the store.
    Read,
    /// Changes the store (and is logged).
    Write,
    /// Connection / server commands: no store involved.
    Conn,
}

/// One row of the command table (what COMMAND reports, too).
#[derive(Debug)]
pub struct Spec {
    /// Lowercase full name: `get`, `client|setname`.
    pub name: &'static str,
    /// Redis arity: `n` exactly n arguments (name included), `-n` at least n.
    pub arity: i32,
    /// Redis command flags (`write`, `readonly`, `fast`, `no_auth`...).
    pub flags: &'static [&'static str],
    /// First key argument (0: none), last (-1: the last argument), step.
    pub keys: (i32, i32, i32),
    /// Where it runs.
    pub group: Group,
    /// Subcommands, for CLIENT, CONFIG and COMMAND.
    pub subcommands: &'static [Spec],
}

impl Spec {
    /// Whether it may run before AUTH.
    pub fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let a = i64::from(self.arity);
        if a >= 0 {
            argc == a
        } else {
            argc >= -a
        }
    }
}

const fn spec(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    keys: (i32, i32, i32),
    group: Group,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
        group,
        subcommands: &[],
    }
}

use Group::{Conn as C, Read as R, Write as W};

const RO: &[&str] = &["readonly", "fast"];
const RO_SLOW: &[&str] = &["readonly"];
const WR: &[&str] = &["write", "denyoom"];
const WR_FAST: &[&str] = &["write", "denyoom", "fast"];
const WR_DEL: &[&str] = &["write", "fast"];
const BLOCKING: &[&str] = &["write", "noscript", "blocking"];
const CONN: &[&str] = &["loading", "stale", "fast"];
const NO_AUTH: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth"];
const TXN: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];
const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);
const NONE: (i32, i32, i32) = (0, 0, 0);

const CLIENT_SUBS: &[Spec] = &[
    spec("client|setname", 3, CONN, NONE, C),
    spec("client|getname", 2, CONN, NONE, C),
    spec("client|id", 2, CONN, NONE, C),
    spec("client|setinfo", 4, CONN, NONE, C),
    spec("client|help", 2, CONN, NONE, C),
    // Operations (command/ops.rs, run by server/ops.rs).
    spec(
        "client|list",
        -2,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    spec("client|info", 2, CONN, NONE, C),
    spec(
        "client|kill",
        -3,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    spec(
        "client|unblock",
        -3,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    spec(
        "client|no-evict",
        3,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    spec("client|tracking", -3, CONN, NONE, C),
    spec("client|reply", 3, CONN, NONE, C),
];

const CONFIG_SUBS: &[Spec] = &[
    spec(
        "config|get",
        -3,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    spec(
        "config|set",
        -4,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    spec(
        "config|resetstat",
        2,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    spec("config|help", 2, CONN, NONE, C),
    // Operations (command/ops.rs, run by server/ops.rs).
    spec(
        "config|rewrite",
        2,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
];

const ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];

const SLOWLOG_SUBS: &[Spec] = &[
    spec("slowlog|get", -2, ADMIN, NONE, C),
    spec("slowlog|len", 2, ADMIN, NONE, C),
    spec("slowlog|reset", 2, ADMIN, NONE, C),
    spec("slowlog|help", 2, CONN, NONE, C),
];

// Scripting (`script`, run by the storage task: server/storage/script.rs).
const SCRIPTING: &[&str] = &["noscript", "skip_monitor", "may_replicate", "stale"];
const SCRIPTING_RO: &[&str] = &["noscript", "skip_monitor", "readonly", "stale"];
const SCRIPT_SUBS: &[Spec] = &[
    spec("script|load", 3, &["noscript", "stale"], NONE, C),
    spec("script|exists", -3, &["noscript"], NONE, C),
    spec("script|flush", -2, &["noscript"], NONE, C),
    spec("script|kill", 2, &["noscript", "allow_busy"], NONE, C),
];

const FUNCTION_SUBS: &[Spec] = &[
    spec("function|flush", -2, &["write", "noscript"], NONE, C),
    spec(
        "function|load",
        -3,
        &["write", "denyoom", "noscript"],
        NONE,
        C,
    ),
    spec("function|delete", 3, &["write", "noscript"], NONE, C),
    spec("function|list", -2, &["noscript"], NONE, C),
    spec("function|kill", 2, &["noscript", "allow_busy"], NONE, C),
    spec("function|stats", 2, &["noscript", "allow_busy"], NONE, C),
];

const OBJECT_SUBS: &[Spec] = &[
    spec("object|encoding", 3, RO_SLOW, (2, 2, 1), R),
    spec("object|freq", 3, RO_SLOW, (2, 2, 1), R),
    spec("object|idletime", 3, RO_SLOW, (2, 2, 1), R),
    spec("object|refcount", 3, RO_SLOW, (2, 2, 1), R),
    spec("object|help", 2, &["loading", "stale"], NONE, R),
];

const MEMORY_SUBS: &[Spec] = &[spec("memory|usage", -3, RO_SLOW, (2, 2, 1), R)];

const PS: &[&str] = &["pubsub", "loading", "stale"];
const PS_SUB: &[&str] = &["pubsub", "noscript", "loading", "stale"];
const PUBSUB_SUBS: &[Spec] = &[
    spec("pubsub|channels", -2, PS, NONE, C),
    spec("pubsub|numsub", -2, PS, NONE, C),
    spec("pubsub|numpat", 2, PS, NONE, C),
    spec("pubsub|shardchannels", -2, PS, NONE, C),
    spec("pubsub|shardnumsub", -2, PS, NONE, C),
    spec("pubsub|help", 2, CONN, NONE, C),
];

const COMMAND_SUBS: &[Spec] = &[
    spec("command|count", 2, CONN, NONE, C),
    spec("command|docs", -2, CONN, NONE, C),
    spec("command|info", -2, CONN, NONE, C),
    spec("command|list", -2, CONN, NONE, C),
    spec("command|help", 2, CONN, NONE, C),
    spec("command|getkeys", -3, CONN, NONE, C),
];

/// Every command matou-kv knows.
pub const TABLE: &[Spec] = &[
    spec("get", 2, RO, ONE, R),
    // Hashes (`hash`).
    spec("hset", -4, WR_FAST, ONE, W),
    spec("hmset", -4, WR_FAST, ONE, W),
    spec("hsetnx", 4, WR_FAST, ONE, W),
    spec("hdel", -3, WR_DEL, ONE, W),
    spec("hincrby", 4, WR_FAST, ONE, W),
    spec("hget", 3, RO, ONE, R),
    spec("hmget", -3, RO, ONE, R),
    spec("hexists", 3, RO, ONE, R),
    spec("hlen", 2, RO, ONE, R),
    spec("hgetall", 2, RO_SLOW, ONE, R),
    spec("hkeys", 2, RO_SLOW, ONE, R),
    spec("hvals", 2, RO_SLOW, ONE, R),
    spec("hstrlen", 3, RO, ONE, R),
    // Lists (`list`).
    spec("lpush", -3, WR_FAST, ONE, W),
    spec("rpush", -3, WR_FAST, ONE, W),
    spec("lpushx", -3, WR_FAST, ONE, W),
    spec("rpushx", -3, WR_FAST, ONE, W),
    spec("lpop", -2, WR_DEL, ONE, W),
    spec("rpop", -2, WR_DEL, ONE, W),
    spec("lrange", 4, RO_SLOW, ONE, R),
    spec("lindex", 3, RO_SLOW, ONE, R),
    spec("llen", 2, RO, ONE, R),
    spec("lpos", -3, RO_SLOW, ONE, R),
    spec("lset", 4, WR, ONE, W),
    spec("lrem", 4, &["write"], ONE, W),
    spec("ltrim", 4, &["write"], ONE, W),
    spec("linsert", 5, WR, ONE, W),
    spec("lmove", 5, WR, (1, 2, 1), W),
    spec("rpoplpush", 3, WR, (1, 2, 1), W),
    spec("lmpop", -4, &["write", "movablekeys"], NONE, W),
    spec("blpop", -3, BLOCKING, (1, -2, 1), W),
    spec("brpop", -3, BLOCKING, (1, -2, 1), W),
    spec("blmove", 6, BLOCKING, (1, 2, 1), W),
    spec("brpoplpush", 4, BLOCKING, (1, 2, 1), W),
    spec("blmpop", -5, &["write", "blocking", "movablekeys"], NONE, W),
    spec("hincrbyfloat", 4, WR_FAST, ONE, W),
    spec("hscan", -3, RO_SLOW, ONE, R),
    spec("hrandfield", -2, RO_SLOW, ONE, R),
    // Sets (`set`).
    spec("sadd", -3, WR_FAST, ONE, W),
    spec("srem", -3, WR_DEL, ONE, W),
    spec("spop", -2, WR_DEL, ONE, W),
    spec("smove", 4, WR_FAST, (1, 2, 1), W),
    spec("sinterstore", -3, WR, ALL, W),
    spec("sunionstore", -3, WR, ALL, W),
    spec("sdiffstore", -3, WR, ALL, W),
    spec("sismember", 3, RO, ONE, R),
    spec("smismember", -3, RO, ONE, R),
    spec("smembers", 2, RO_SLOW, ONE, R),
    spec("scard", 2, RO, ONE, R),
    spec("srandmember", -2, RO_SLOW, ONE, R),
    spec("sinter", -2, RO_SLOW, ALL, R),
    spec("sunion", -2, RO_SLOW, ALL, R),
    spec("sdiff", -2, RO_SLOW, ALL, R),
    spec("sintercard", -3, RO_SLOW, NONE, R),
    spec("sscan", -3, RO_SLOW, ONE, R),
    // Sorted sets (`zset`).
    spec("zadd", -4, WR_FAST, ONE, W),
    spec("zincrby", 4, WR_FAST, ONE, W),
    spec("zrem", -3, WR_DEL, ONE, W),
    spec("zpopmin", -2, WR_DEL, ONE, W),
    spec("zpopmax", -2, WR_DEL, ONE, W),
    spec("zremrangebyscore", 4, &["write"], ONE, W),
    spec("zremrangebyrank", 4, &["write"], ONE, W),
    spec("zremrangebylex", 4, &["write"], ONE, W),
    spec("zrangestore", -5, WR, (1, 2, 1), W),
    spec("zunionstore", -4, WR, ONE, W),
    spec("zinterstore", -4, WR, ONE, W),
    spec("zdiffstore", -4, WR, ONE, W),
    spec("zscore", 3, RO, ONE, R),
    spec("zmscore", -3, RO, ONE, R),
    spec("zcard", 2, RO, ONE, R),
    spec("zcount", 4, RO, ONE, R),
    spec("zlexcount", 4, RO, ONE, R),
    spec("zrange", -4, RO_SLOW, ONE, R),
    spec("zrangebyscore", -4, RO_SLOW, ONE, R),
    spec("zrevrangebyscore", -4, RO_SLOW, ONE, R),
    spec("zrangebylex", -4, RO_SLOW, ONE, R),
    spec("zrevrangebylex", -4, RO_SLOW, ONE, R),
    spec("zrevrange", -4, RO_SLOW, ONE, R),
    spec("zrank", 3, RO, ONE, R),
    spec("zrevrank", 3, RO, ONE, R),
    spec("zrandmember", -2, RO_SLOW, ONE, R),
    spec("zunion", -3, RO_SLOW, NONE, R),
    spec("zinter", -3, RO_SLOW, NONE, R),
    spec("zdiff", -3, RO_SLOW, NONE, R),
    spec("zintercard", -3, RO_SLOW, NONE, R),
    spec("zscan", -3, RO_SLOW, ONE, R),
    spec("zmpop", -4, &["write"], NONE, W),
    // SORT (`sort`): a write only with STORE.
    spec("sort", -2, &["write", "denyoom", "movablekeys"], ONE, W),
    spec("sort_ro", -2, &["readonly", "movablekeys"], ONE, R),
    // Geo on sorted sets (`geo`).
    spec("geoadd", -5, WR, ONE, W),
    spec("geopos", -2, RO_SLOW, ONE, R),
    spec("geodist", -4, RO_SLOW, ONE, R),
    spec("geohash", -2, RO_SLOW, ONE, R),
    spec("bzpopmin", -3, BLOCKING, (1, -2, 1), W),
    spec("bzpopmax", -3, BLOCKING, (1, -2, 1), W),
    spec("bzmpop", -5, &["write", "blocking", "movablekeys"], NONE, W),
    spec("strlen", 2, RO, ONE, R),
    spec("mget", -2, RO, ALL, R),
    spec("exists", -2, RO, ALL, R),
    spec("ttl", 2, RO, ONE, R),
    spec("pttl", 2, RO, ONE, R),
    spec("type", 2, RO, ONE, R),
    spec("keys", 2, RO_SLOW, NONE, R),
    spec("scan", -2, RO_SLOW, NONE, R),
    spec("dbsize", 1, RO, NONE, R),
    spec("getrange", 4, RO_SLOW, ONE, R),
    spec("substr", 4, RO_SLOW, ONE, R),
    spec("randomkey", 1, RO_SLOW, NONE, R),
    spec("touch", -2, RO, ALL, R),
    spec("expiretime", 2, RO, ONE, R),
    spec("pexpiretime", 2, RO, ONE, R),
    spec("time", 1, &["loading", "stale", "fast"], NONE, R),
    spec("wait", 3, &["noscript"], NONE, R),
    spec("getbit", 3, RO, ONE, R),
    spec("bitcount", -2, RO_SLOW, ONE, R),
    spec("bitpos", -3, RO_SLOW, ONE, R),
    spec("lcs", -3, RO_SLOW, (1, 2, 1), R),
    Spec {
        subcommands: OBJECT_SUBS,
        ..spec("object", -2, &[], NONE, R)
    },
    Spec {
        subcommands: MEMORY_SUBS,
        ..spec("memory", -2, &[], NONE, R)
    },
    spec("dump", 2, RO_SLOW, ONE, R),
    spec("bitfield_ro", -2, RO, ONE, R),
    spec("bitfield", -2, WR, ONE, W),
    spec("restore", -4, WR, ONE, W),
    spec("getex", -2, WR_DEL, ONE, W),
    spec("setrange", 4, WR, ONE, W),
    spec("incrbyfloat", 3, WR_FAST, ONE, W),
    spec("rename", 3, &["write"], (1, 2, 1), W),
    spec("renamenx", 3, WR_DEL, (1, 2, 1), W),
    spec("unlink", -2, WR_DEL, ALL, W),
    spec("copy", -3, &["write", "denyoom"], (1, 2, 1), W),
    spec("setbit", 4, WR, ONE, W),
    spec("bitop", -4, WR, (2, -1, 1), W),
    spec("set", -3, WR, ONE, W),
    spec("getset", 3, WR_FAST, ONE, W),
    spec("setnx", 3, WR_FAST, ONE, W),
    spec("setex", 4, WR, ONE, W),
    spec("psetex", 4, WR, ONE, W),
    spec("getdel", 2, WR_DEL, ONE, W),
    spec("del", -2, &["write"], ALL, W),
    spec("incr", 2, WR_FAST, ONE, W),
    spec("decr", 2, WR_FAST, ONE, W),
    spec("incrby", 3, WR_FAST, ONE, W),
    spec("decrby", 3, WR_FAST, ONE, W),
    spec("append", 3, WR_FAST, ONE, W),
    spec("mset", -3, WR, (1, -1, 2), W),
    spec("msetnx", -3, WR, (1, -1, 2), W),
    spec("expire", -3, WR_DEL, ONE, W),
    spec("pexpire", -3, WR_DEL, ONE, W),
    spec("expireat", -3, WR_DEL, ONE, W),
    spec("pexpireat", -3, WR_DEL, ONE, W),
    spec("persist", 2, WR_DEL, ONE, W),
    spec("flushdb", -1, &["write"], NONE, W),
    spec("flushall", -1, &["write"], NONE, W),
    spec("move", 3, WR_FAST, ONE, W),
    spec("swapdb", 3, &["write", "fast"], NONE, W),
    spec("ping", -1, &["fast"], NONE, C),
    spec("echo", 2, &["fast"], NONE, C),
    spec("auth", -2, NO_AUTH, NONE, C),
    spec("hello", -1, NO_AUTH, NONE, C),
    spec("quit", -1, NO_AUTH, NONE, C),
    spec("reset", 1, NO_AUTH, NONE, C),
    spec("select", 2, CONN, NONE, C),
    // Transactions: answered by the connection (`multi`) before any parse;
    // here for COMMAND and the command statistics.
    spec("multi", 1, TXN, NONE, C),
    spec(
        "exec",
        1,
        &["noscript", "loading", "stale", "skip_slowlog"],
        NONE,
        C,
    ),
    spec("discard", 1, TXN, NONE, C),
    spec("watch", -2, TXN, ALL, C),
    spec("unwatch", 1, TXN, NONE, C),
    // Operations (command/ops.rs, run by server/ops.rs).
    spec(
        "monitor",
        1,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    spec("info", -1, &["loading", "stale"], NONE, C),
    spec(
        "shutdown",
        -1,
        &["admin", "noscript", "loading", "stale"],
        NONE,
        C,
    ),
    Spec {
        subcommands: CLIENT_SUBS,
        ..spec("client", -2, &[], NONE, C)
    },
    Spec {
        subcommands: CONFIG_SUBS,
        ..spec("config", -2, &[], NONE, C)
    },
    Spec {
        subcommands: SLOWLOG_SUBS,
        ..spec("slowlog", -2, &[], NONE, C)
    },
    spec("save", 1, &["admin", "noscript"], NONE, C),
    spec("bgrewriteaof", 1, &["admin", "noscript"], NONE, C),
    spec("bgsave", -1, &["admin", "noscript"], NONE, C),
    spec("lastsave", 1, &["loading", "stale", "fast"], NONE, C),
    spec("debug", -2, ADMIN, NONE, C),
    Spec {
        subcommands: FUNCTION_SUBS,
        ..spec("function", -2, &[], NONE, C)
    },
    Spec {
        subcommands: SCRIPT_SUBS,
        ..spec("script", -2, &[], NONE, C)
    },
    spec("eval", -3, SCRIPTING, NONE, C),
    spec("evalsha", -3, SCRIPTING, NONE, C),
    spec("eval_ro", -3, SCRIPTING_RO, NONE, C),
    spec("evalsha_ro", -3, SCRIPTING_RO, NONE, C),
    spec("fcall", -3, SCRIPTING, NONE, C),
    spec("fcall_ro", -3, SCRIPTING_RO, NONE, C),
    // Pub/sub (`pubsub`).
    spec("subscribe", -2, PS_SUB, NONE, C),
    spec("psubscribe", -2, PS_SUB, NONE, C),
    spec("ssubscribe", -2, PS_SUB, ALL, C),
    spec("unsubscribe", -1, PS_SUB, NONE, C),
    spec("punsubscribe", -1, PS_SUB, NONE, C),
    spec("sunsubscribe", -1, PS_SUB, ALL, C),
    spec(
        "publish",
        3,
        &["pubsub", "loading", "stale", "fast"],
        NONE,
        C,
    ),
    spec(
        "spublish",
        3,
        &["pubsub", "loading", "stale", "fast"],
        ONE,
        C,
    ),
    Spec {
        subcommands: PUBSUB_SUBS,
        ..spec("pubsub", -2, &[], NONE, C)
    },
    Spec {
        subcommands: COMMAND_SUBS,
        ..spec("command", -1, &["loading", "stale"], NONE, C)
    },
];

/// Lossy text of a client byte string, at most `max` bytes of it, for an
/// error message (the encoder turns CR/LF into spaces).
fn shown(b: &[u8], max: usize) -> Cow<'_, str> {
    String::from_utf8_lossy(&b[..b.len().min(max)])
}

pub(crate) fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn unknown_command(args: &[Vec<u8>]) -> Reply {
    // Redis: each argument as `'%.*s' ` while the list is under 128 bytes.
    let mut list = String::new();
    for a in args.iter().skip(1) {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.push('\'');
        list.push_str(&shown(a, room));
        list.push_str("' ");
    }
    let name = args.first().map(|n| shown(n, 128)).unwrap_or_default();
    Reply::err(format!(
        "ERR unknown command '{name}', with args beginning with: {list}"
    ))
}

/// Finds the command (or subcommand) `args` names and checks its arity:
/// Redis's `lookupCommand`, `commandCheckExistence`, `commandCheckArity`.
///
/// # Errors
/// The error reply for an unknown command or subcommand or a wrong number
/// of arguments.
pub fn lookup(args: &[Vec<u8>]) -> Result<&'static Spec, Reply> {
    let spec = find(args)?;
    if spec.arity_ok(args.len()) {
        Ok(spec)
    } else {
        Err(wrong_arity(spec.name))
    }
}

/// The command (or subcommand) `args` names, whatever its arity: what
/// INFO commandstats counts a rejected call under.
pub fn command_name(args: &[Vec<u8>]) -> Option<&'static str> {
    find(args).ok().map(|s| s.name)
}

fn find(args: &[Vec<u8>]) -> Result<&'static Spec, Reply> {
    let name = args.first().ok_or_else(|| unknown_command(args))?;
    let top = TABLE
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
        .ok_or_else(|| unknown_command(args))?;
    let spec = match (top.subcommands.is_empty(), args.get(1)) {
        (false, Some(sub)) => {
            let full = top.name.len() + 1;
            top.subcommands
                .iter()
                .find(|s| s.name.as_bytes()[full..].eq_ignore_ascii_case(sub))
                .ok_or_else(|| {
                    Reply::err(format!(
                        "ERR unknown subcommand '{}'. Try {} HELP.",
                        shown(sub, 128),
                        top.name.to_ascii_uppercase()
                    ))
                })?
        }
        _ => top,
    };
    Ok(spec)
}

/// A parsed command, by group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Runs on `&Store`.
    Read(Read),
    /// Runs on `&mut Store`, logged.
    Write(Write),
    /// Connection / server command.
    Conn(Conn),
}

impl Command {
    /// The group (which executor it goes to).
    pub fn group(&self) -> Group {
        match self {
            Command::Read(_) => Group::Read,
            Command::Write(_) => Group::Write,
            Command::Conn(_) => Group::Conn,
        }
    }

    /// Whether it changes the store.
    pub fn is_write(&self) -> bool {
        matches!(self, Command::Write(_))
    }
}

/// Read-only data commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// GET key.
    Get(Vec<u8>),
    /// STRLEN key.
    Strlen(Vec<u8>),
    /// MGET key...
    MGet(Vec<Vec<u8>>),
    /// EXISTS key... (duplicates count twice, as in Redis).
    Exists(Vec<Vec<u8>>),
    /// TTL key (`ms: false`) or PTTL key.
    Ttl {
        /// The key.
        key: Vec<u8>,
        /// PTTL.
        ms: bool,
    },
    /// TYPE key.
    Type(Vec<u8>),
    /// KEYS pattern.
    Keys(Vec<u8>),
    /// SCAN cursor [MATCH p] [COUNT n] [TYPE t].
    Scan {
        /// Where to resume (0 to start).
        cursor: u64,
        /// MATCH pattern (`None` for `*`).
        pattern: Option<Vec<u8>>,
        /// COUNT (default 10).
        count: usize,
        /// TYPE filter: only keys of this type (as TYPE names it, any case).
        type_name: Option<Vec<u8>>,
    },
    /// DBSIZE.
    DbSize,
    /// GETRANGE (SUBSTR) key start end.
    GetRange {
        /// The key.
        key: Vec<u8>,
        /// First byte (negative: from the end).
        start: i64,
        /// Last byte, inclusive (negative: from the end).
        end: i64,
    },
    /// RANDOMKEY.
    RandomKey,
    /// TOUCH key...: how many exist.
    Touch(Vec<Vec<u8>>),
    /// EXPIRETIME key (`ms: false`) or PEXPIRETIME key.
    ExpireTime {
        /// The key.
        key: Vec<u8>,
        /// PEXPIRETIME.
        ms: bool,
    },
    /// TIME.
    Time,
    /// WAIT numreplicas timeout: there are no replicas, so 0.
    Wait,
    /// GETBIT key offset.
    GetBit {
        /// The key.
        key: Vec<u8>,
        /// The bit's offset (bit 0 is the top bit of byte 0).
        offset: u64,
    },
    /// BITCOUNT key [start end [BYTE|BIT]].
    BitCount {
        /// The key.
        key: Vec<u8>,
        /// The range, and whether it counts bits (BIT) rather than bytes.
        range: Option<(i64, i64, bool)>,
    },
    /// BITPOS key bit [start [end [BYTE|BIT]]].
    BitPos {
        /// The key.
        key: Vec<u8>,
        /// The bit looked for.
        bit: bool,
        /// Start (default 0).
        start: Option<i64>,
        /// End (default: the last).
        end: Option<i64>,
        /// BIT: the range counts bits.
        bit_unit: bool,
    },
    /// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN].
    Lcs {
        /// The two keys.
        keys: (Vec<u8>, Vec<u8>),
        /// LEN.
        len: bool,
        /// IDX.
        idx: bool,
        /// MINMATCHLEN.
        min_match: usize,
        /// WITHMATCHLEN.
        with_len: bool,
    },
    /// OBJECT ENCODING key.
    ObjectEncoding(Vec<u8>),
    /// OBJECT FREQ key (refused: no LFU policy tracks frequencies).
    ObjectFreq(Vec<u8>),
    /// OBJECT IDLETIME key: seconds since it was last read or written.
    ObjectIdleTime(Vec<u8>),
    /// OBJECT REFCOUNT key: what Redis would report (see `strings::read`).
    ObjectRefCount(Vec<u8>),
    /// OBJECT HELP.
    ObjectHelp,
    /// MEMORY USAGE key [SAMPLES n].
    MemoryUsage(Vec<u8>),
    /// A hash read (`hash`).
    Hash(HashRead),
    /// A list read (`list`).
    List(ListRead),
    /// A set read (`set`).
    Sets(SetRead),
    /// A sorted-set read (`zset`).
    ZSets(ZSetRead),
    /// DUMP key (`dump`).
    Dump(Vec<u8>),
    /// BITFIELD_RO key GET... (`bitfield`).
    BitFieldRo {
        /// The key.
        key: Vec<u8>,
        /// The GETs.
        ops: Vec<bitfield::FieldOp>,
    },
    /// SORT without STORE, SORT_RO (`sort`).
    Sort(sort::Sort),
    /// GEOPOS, GEODIST, GEOHASH (`geo`).
    Geo(geo::GeoRead),
}

/// How SET-like commands treat the expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Remove any expiry (plain SET, GETSET, MSET).
    Clear,
    /// KEEPTTL.
    Keep,
    /// EX / PX / SETEX / PSETEX: this many ms from now (> 0).
    In(i64),
    /// EXAT / PXAT: this Unix time in ms (> 0).
    At(i64),
}

/// NX / XX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// Only if absent.
    Nx,
    /// Only if present.
    Xx,
}

/// What a SET-like command answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetReply {
    /// `+OK`, or nil when NX/XX prevented it (SET, SETEX, PSETEX).
    Ok,
    /// The old value or nil (SET ... GET, GETSET).
    Old,
    /// `:1` if set, `:0` if not (SETNX).
    Flag,
}

/// EXPIRE's NX / XX / GT / LT, each checked in turn as Redis does (XX LT
/// needs an expiry and a sooner one; GT already implies an expiry, since
/// "no expiry" counts as infinite).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpireCond {
    /// Only if the key has no expiry.
    pub nx: bool,
    /// Only if it has one.
    pub xx: bool,
    /// Only if the new one is later.
    pub gt: bool,
    /// Only if the new one is sooner (or the key has none).
    pub lt: bool,
}

/// Data commands that change the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// SET, GETSET, SETNX, SETEX, PSETEX.
    Set {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// NX / XX.
        cond: Option<Cond>,
        /// The expiry to set.
        expiry: Expiry,
        /// The reply's form.
        reply: SetReply,
        /// The command's name, for `invalid expire time in '...'`.
        name: &'static str,
    },
    /// GETDEL key.
    GetDel(Vec<u8>),
    /// DEL key...
    Del(Vec<Vec<u8>>),
    /// INCR, DECR, INCRBY, DECRBY (as the increment).
    IncrBy {
        /// The key.
        key: Vec<u8>,
        /// The increment.
        by: i64,
    },
    /// APPEND key suffix.
    Append {
        /// The key.
        key: Vec<u8>,
        /// What is appended.
        suffix: Vec<u8>,
    },
    /// MSET (`nx: false`) or MSETNX.
    MSet {
        /// (key, value) pairs.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        /// MSETNX.
        nx: bool,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT.
    Expire {
        /// The key.
        key: Vec<u8>,
        /// The time argument as given.
        when: i64,
        /// The argument is in seconds (EXPIRE, EXPIREAT).
        seconds: bool,
        /// The argument is a Unix time (EXPIREAT, PEXPIREAT), not a delay.
        absolute: bool,
        /// NX / XX / GT / LT.
        cond: ExpireCond,
        /// The command's name, for `invalid expire time in '...'`.
        name: &'static str,
    },
    /// PERSIST key.
    Persist(Vec<u8>),
    /// FLUSHDB (of a [`Store`](crate::store::Store) alone: FLUSHALL).
    Flush,
    /// FLUSHALL: every database (the storage task's; on one store, as
    /// FLUSHDB).
    FlushAll,
    /// MOVE key db: needs the databases (the storage task's).
    Move {
        /// The key.
        key: Vec<u8>,
        /// The destination database, as given.
        db: i64,
    },
    /// SWAPDB a b: needs the databases (the storage task's).
    SwapDb(i64, i64),
    /// GETEX key [EX|PX|EXAT|PXAT t | PERSIST].
    GetEx {
        /// The key.
        key: Vec<u8>,
        /// The expiry to set: `None` leaves it, [`Expiry::Clear`] is
        /// PERSIST.
        expiry: Option<Expiry>,
    },
    /// SETRANGE key offset value.
    SetRange {
        /// The key.
        key: Vec<u8>,
        /// Where `value` is written (zero-padded up to it).
        offset: usize,
        /// The bytes written.
        value: Vec<u8>,
    },
    /// INCRBYFLOAT key increment (the increment as given: Redis checks the
    /// stored value before it).
    IncrByFloat {
        /// The key.
        key: Vec<u8>,
        /// The increment's text.
        by: Vec<u8>,
    },
    /// RENAME (`nx: false`) or RENAMENX.
    Rename {
        /// The source.
        from: Vec<u8>,
        /// The destination.
        to: Vec<u8>,
        /// RENAMENX.
        nx: bool,
    },
    /// COPY source destination [DB db] [REPLACE]; another database needs
    /// the storage task's databases.
    Copy {
        /// The source.
        from: Vec<u8>,
        /// The destination.
        to: Vec<u8>,
        /// DB, as given.
        db: Option<i64>,
        /// REPLACE.
        replace: bool,
    },
    /// A hash write (`hash`).
    Hash(HashWrite),
    /// A list write (`list`), blocking forms included.
    List(ListWrite),
    /// A set write (`set`).
    Sets(SetWrite),
    /// A sorted-set write (`zset`).
    ZSets(ZSetWrite),
    /// SETBIT key offset bit.
    SetBit {
        /// The key.
        key: Vec<u8>,
        /// The bit's offset.
        offset: u64,
        /// The bit's new value.
        bit: bool,
    },
    /// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`
    /// (`dump`).
    Restore {
        /// The key.
        key: Vec<u8>,
        /// Milliseconds to live (0: no expiry), or a Unix time in ms with
        /// `absttl`.
        ttl: i64,
        /// DUMP's payload.
        payload: Vec<u8>,
        /// REPLACE.
        replace: bool,
        /// ABSTTL.
        absttl: bool,
        /// IDLETIME: seconds since its last access.
        idle_secs: Option<u64>,
        /// FREQ: its LFU counter.
        freq: Option<u8>,
    },
    /// BITFIELD key [GET|SET|INCRBY|OVERFLOW...] (`bitfield`).
    BitField {
        /// The key.
        key: Vec<u8>,
        /// The subcommands, in order.
        ops: Vec<bitfield::FieldOp>,
    },
    /// BITOP AND|OR|XOR|NOT destkey key...
    BitOp {
        /// The operation.
        op: BitOp,
        /// Where the result goes.
        dest: Vec<u8>,
        /// The operands.
        keys: Vec<Vec<u8>>,
    },
    /// SORT ... STORE (`sort`).
    Sort(sort::Sort),
}

/// BITOP's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    /// AND.
    And,
    /// OR.
    Or,
    /// XOR.
    Xor,
    /// NOT (one operand).
    Not,
}

impl Write {
    /// An upper bound of the size of the record this write can produce:
    /// its byte strings plus a varint per string and a fixed part.
    pub fn record_bound(&self) -> usize {
        let strings = |v: &mut dyn Iterator<Item = &Vec<u8>>| {
            v.fold(32usize, |acc, b| {
                acc.saturating_add(b.len()).saturating_add(10)
            })
        };
        match self {
            Write::Set { key, value, .. } => strings(&mut [key, value].into_iter()),
            Write::Append { key, suffix } => strings(&mut [key, suffix].into_iter()),
            Write::MSet { pairs, .. } => strings(&mut pairs.iter().flat_map(|(k, v)| [k, v])),
            Write::Del(keys) => strings(&mut keys.iter()),
            Write::GetDel(key) | Write::Persist(key) => strings(&mut std::iter::once(key)),
            Write::IncrBy { key, .. } | Write::Expire { key, .. } => {
                strings(&mut std::iter::once(key)).saturating_add(32)
            }
            Write::Flush | Write::FlushAll | Write::SwapDb(..) => 32,
            Write::GetEx { key, .. } | Write::IncrByFloat { key, .. } => {
                strings(&mut std::iter::once(key)).saturating_add(400)
            }
            // The key (twice, in a Multi with the DEL of an expired one),
            // an offset and the bytes written.
            Write::SetRange { key, value, .. } => strings(&mut [key, key, value].into_iter()),
            Write::SetBit { key, .. } => strings(&mut [key, key].into_iter()).saturating_add(16),
            Write::BitOp { dest, .. } => {
                strings(&mut std::iter::once(dest)).saturating_add(MAX_STRING)
            }
            // Both keys (twice, within a Multi), and a value.
            Write::Rename { from, to, .. } | Write::Copy { from, to, .. } => {
                strings(&mut [from, to, from, to].into_iter())
                    .saturating_add(MAX_STRING)
                    .saturating_add(64)
            }
            Write::Hash(h) => hash::record_bound(h),
            Write::List(l) => list::record_bound(l),
            Write::Sets(w) => set::record_bound(w),
            Write::ZSets(w) => zset::record_bound(w),
            Write::Sort(s) => sort::record_bound(s),
            // The key (twice, with the DEL of an expired one) and at most
            // a whole string's bytes.
            Write::BitField { key, .. } => {
                strings(&mut [key, key].into_iter()).saturating_add(MAX_STRING)
            }
            // The key twice (a DEL of an expired one first) and the value,
            // which the payload holds with at most its own size.
            Write::Restore { key, payload, .. } => strings(&mut [key, key, payload].into_iter())
                .saturating_add(payload.len())
                .saturating_add(64),
            // The key twice, and a value (at most MAX_STRING).
            Write::Move { key, .. } => strings(&mut [key, key].into_iter())
                .saturating_add(MAX_STRING)
                .saturating_add(64),
        }
    }
}

/// Connection and server commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conn {
    /// `PING [message]`.
    Ping(Option<Vec<u8>>),
    /// ECHO message.
    Echo(Vec<u8>),
    /// `AUTH [username] password`.
    Auth {
        /// The username (only `default` exists).
        user: Option<Vec<u8>>,
        /// The password.
        password: Vec<u8>,
    },
    /// `HELLO [protover [AUTH username password] [SETNAME name]]`.
    Hello {
        /// The protocol version asked for.
        proto: Option<i64>,
        /// AUTH username password.
        auth: Option<(Vec<u8>, Vec<u8>)>,
        /// SETNAME name.
        setname: Option<Vec<u8>>,
    },
    /// SELECT index.
    Select(i64),
    /// CLIENT SETNAME name.
    ClientSetName(Vec<u8>),
    /// CLIENT GETNAME.
    ClientGetName,
    /// CLIENT ID.
    ClientId,
    /// CLIENT SETINFO attribute value.
    ClientSetInfo,
    /// CLIENT HELP, CONFIG HELP, COMMAND HELP.
    Help(&'static str),
    /// `INFO [section...]`.
    Info(Vec<Vec<u8>>),
    /// CONFIG GET pattern...
    ConfigGet(Vec<Vec<u8>>),
    /// CLIENT LIST / INFO / KILL..., CONFIG SET: run by the server.
    Ops(ops::Ops),
    /// CONFIG RESETSTAT.
    ConfigResetStat,
    /// EVAL, SCRIPT, FUNCTION...: run by the storage task (`script`).
    Script(script::ScriptCmd),
    /// COMMAND and its subcommands.
    Command(CommandQuery),
    /// A pub/sub command: run by the connection (`pubsub`).
    PubSub(pubsub::PubSub),
    /// QUIT.
    Quit,
    /// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]`.
    Shutdown,
}

/// What COMMAND is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandQuery {
    /// COMMAND: every command's info.
    All,
    /// COMMAND COUNT.
    Count,
    /// COMMAND DOCS [name...] (answered with an empty array).
    Docs,
    /// COMMAND INFO name...
    Info(Vec<Vec<u8>>),
    /// COMMAND LIST [FILTERBY ...] (the filter is ignored).
    List,
    /// COMMAND GETKEYS command arg...
    GetKeys(Vec<Vec<u8>>),
}
