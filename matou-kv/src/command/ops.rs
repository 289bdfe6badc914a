//! Operations commands that need the server, not a command on one key:
//! CLIENT LIST / INFO / KILL / NO-EVICT / TRACKING, CONFIG SET, SLOWLOG,
//! SAVE / BGREWRITEAOF / LASTSAVE and DEBUG. This module owns their
//! typed form ([`Ops`]) and their parse, with Redis 7's error texts; the
//! server (`server::ops`) runs them against its registry of live
//! connections and its live settings.
//!
//! Invariants: a parsed [`Ops`] is fully checked for syntax (a filter's
//! value, a `yes|no`), so that running it can only fail on what needs the
//! server's state (an unknown parameter's value, a protected config).
//! CONFIG SET's parse only pairs names with values and refuses duplicates;
//! which names may change live is `server::ops`'s, since it is the
//! configuration's owner.

use super::{shown, SYNTAX};
use crate::resp::Reply;
use std::net::SocketAddr;

/// An operations command (the server runs it: `server::ops`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ops {
    /// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id...]`.
    ClientList(ListFilter),
    /// CLIENT INFO: this connection's line.
    ClientInfo,
    /// CLIENT KILL, either form.
    ClientKill(KillFilter),
    /// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: the id, and whether the
    /// client gets an error (rather than its timeout's answer).
    ClientUnblock(u64, bool),
    /// `CLIENT NO-EVICT on|off`.
    ClientNoEvict(bool),
    /// `CLIENT REPLY ON|OFF|SKIP`.
    ClientReply(ReplyMode),
    /// CLIENT TRACKING: refused (no client-side caching).
    ClientTracking,
    /// CONFIG REWRITE: the config file updated with the settings in force.
    ConfigRewrite,
    /// MONITOR: this connection shows every request from then on.
    Monitor,
    /// `CONFIG SET name value [name value...]`: lowercase names, in order.
    ConfigSet(Vec<(String, String)>),
    /// `SLOWLOG GET [count]` (`None`: all of them, from `-1`).
    SlowlogGet(Option<usize>),
    /// SLOWLOG LEN.
    SlowlogLen,
    /// SLOWLOG RESET.
    SlowlogReset,
    /// DEBUG subcommands run by the server itself (no store involved).
    Debug(Debug),
    /// What the storage task runs (it owns the store and the log).
    Storage(StorageOp),
}

/// Redis's refusal of DEBUG under `enable-debug-command`.
pub const DEBUG_REFUSED: &str =
    "ERR DEBUG command not allowed. If the enable-debug-command option \
     is set to \"local\", you can run it from a local connection, otherwise you need to set this \
     option in the configuration file, and then restart the server.";

impl Ops {
    /// Whether this is a DEBUG subcommand (`enable-debug-command` gates it).
    pub fn is_debug(&self) -> bool {
        matches!(
            self,
            Ops::Debug(_)
                | Ops::Storage(
                    StorageOp::DebugReload
                        | StorageOp::DebugObject(_)
                        | StorageOp::DebugSleep(_)
                        | StorageOp::DebugDigest
                        | StorageOp::DebugDigestValue(_)
                )
        )
    }

    /// The storage task's part, if this is one.
    pub fn storage(&self) -> Option<&StorageOp> {
        match self {
            Ops::Storage(op) => Some(op),
            _ => None,
        }
    }
}

/// Operations the storage task runs, since they need the store or the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// SAVE: the log rewritten now, synchronously, and fsynced (an
    /// AOF-only server's snapshot).
    Save,
    /// BGREWRITEAOF: the background rewrite started now.
    BgRewriteAof,
    /// `BGSAVE [SCHEDULE]`: a background rewrite started now, or (SCHEDULE)
    /// once the running one ends.
    BgSave {
        /// SCHEDULE.
        schedule: bool,
    },
    /// LASTSAVE: Unix seconds of the last successful save or rewrite.
    LastSave,
    /// DEBUG RELOAD: SAVE, then the store rebuilt from the log alone.
    DebugReload,
    /// DEBUG OBJECT key.
    DebugObject(Vec<u8>),
    /// `DEBUG SLEEP secs`: the storage task (every data command) blocked
    /// that long, as Redis's whole server is.
    DebugSleep(std::time::Duration),
    /// DEBUG DIGEST: one digest of every database's content.
    DebugDigest,
    /// DEBUG DIGEST-VALUE key...: one digest per key.
    DebugDigestValue(Vec<Vec<u8>>),
}

/// DEBUG subcommands answered without the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Debug {
    /// `DEBUG SET-ACTIVE-EXPIRE 0|1`.
    SetActiveExpire(bool),
    /// DEBUG CHANGE-REPL-ID: there is no replication, nothing to change.
    ChangeReplId,
    /// A tuning subcommand with nothing to tune here (answered OK).
    Accepted,
    /// `DEBUG PROTOCOL type`: a reply of that RESP type.
    Protocol(Reply),
    /// DEBUG HELP.
    Help,
}

/// CLIENT REPLY's argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// Replies again (this one's `+OK` included).
    On,
    /// No reply from this one on.
    Off,
    /// No reply to this one and to the next command.
    Skip,
}

/// Which clients CLIENT LIST shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// `TYPE`: `None` for any; only `normal` connections exist, so another
    /// type shows nothing.
    pub normal_only: Option<bool>,
    /// `ID id...`: only these.
    pub ids: Option<Vec<u64>>,
}

/// What CLIENT KILL matches; every given filter must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KillFilter {
    /// The old form `CLIENT KILL addr:port`: exactly one client by its
    /// address, answered `+OK` or `ERR No such client`.
    pub old_form: bool,
    /// `ID id`.
    pub id: Option<u64>,
    /// `ADDR ip:port`: the client's address.
    pub addr: Option<String>,
    /// `LADDR ip:port`: the server address it connected to.
    pub laddr: Option<String>,
    /// `TYPE`: `Some(false)` names a type no connection has.
    pub normal: Option<bool>,
    /// `MAXAGE secs`: only clients connected at least this long.
    pub max_age: Option<u64>,
    /// `SKIPME yes|no` (default yes in the new form, no in the old one).
    pub skip_me: bool,
}

impl KillFilter {
    /// Whether a connection with these fields matches (`me`: it is the
    /// caller's).
    pub fn matches(
        &self,
        id: u64,
        addr: &SocketAddr,
        laddr: &SocketAddr,
        age: u64,
        me: bool,
    ) -> bool {
        (!me || !self.skip_me)
            && self.id.is_none_or(|i| i == id)
            && self.addr.as_deref().is_none_or(|a| a == addr.to_string())
            && self.laddr.as_deref().is_none_or(|a| a == laddr.to_string())
            && self.normal != Some(false)
            && self.max_age.is_none_or(|m| age >= m)
    }
}

fn is(a: &[u8], w: &str) -> bool {
    a.eq_ignore_ascii_case(w.as_bytes())
}

fn text(a: &[u8]) -> String {
    String::from_utf8_lossy(a).into_owned()
}

/// Redis's check of a `TYPE` value: `Some(true)` normal, `Some(false)`
/// another known type.
fn client_type(a: &[u8]) -> Result<bool, Reply> {
    if is(a, "normal") {
        Ok(true)
    } else if ["master", "replica", "slave", "pubsub"]
        .iter()
        .any(|w| is(a, w))
    {
        Ok(false)
    } else {
        Err(Reply::err(format!(
            "ERR Unknown client type '{}'",
            shown(a, 128)
        )))
    }
}

fn positive_id(a: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| Reply::err("ERR client-id should be greater than 0"))
}

/// Parses an operations command; `name` is its table name (`client|kill`),
/// whose arity the table already checked.
///
/// # Errors
/// Redis's error reply for a bad option or value.
pub fn parse(name: &str, args: &[Vec<u8>]) -> Result<Ops, Reply> {
    match name {
        "client|list" => {
            let mut f = ListFilter::default();
            let mut i = 2;
            while i < args.len() {
                if is(&args[i], "type") && i + 1 < args.len() {
                    f.normal_only = Some(client_type(&args[i + 1])?);
                    i += 2;
                } else if is(&args[i], "id") && i + 1 < args.len() {
                    let ids = args[i + 1..]
                        .iter()
                        .map(|a| {
                            std::str::from_utf8(a)
                                .ok()
                                .and_then(|s| s.parse::<u64>().ok())
                                .filter(|&n| n > 0)
                                .ok_or_else(|| Reply::err("ERR Invalid client ID"))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    f.ids = Some(ids);
                    i = args.len();
                } else {
                    return Err(Reply::err(SYNTAX));
                }
            }
            Ok(Ops::ClientList(f))
        }
        "client|info" => Ok(Ops::ClientInfo),
        "client|kill" => parse_kill(args).map(Ops::ClientKill),
        "client|unblock" => {
            let id = crate::resp::parse_i64(&args[2]).ok_or(Reply::err(super::NOT_INTEGER))?;
            let error = match args.get(3) {
                None => false,
                Some(a) if is(a, "timeout") => false,
                Some(a) if is(a, "error") => true,
                Some(_) => {
                    return Err(Reply::err(
                        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                    ))
                }
            };
            Ok(Ops::ClientUnblock(id as u64, error))
        }
        "client|no-evict" => match &args[2] {
            a if is(a, "on") => Ok(Ops::ClientNoEvict(true)),
            a if is(a, "off") => Ok(Ops::ClientNoEvict(false)),
            _ => Err(Reply::err(SYNTAX)),
        },
        "client|tracking" => Ok(Ops::ClientTracking),
        "client|reply" => match &args[2] {
            a if is(a, "on") => Ok(Ops::ClientReply(ReplyMode::On)),
            a if is(a, "off") => Ok(Ops::ClientReply(ReplyMode::Off)),
            a if is(a, "skip") => Ok(Ops::ClientReply(ReplyMode::Skip)),
            _ => Err(Reply::err(SYNTAX)),
        },
        "monitor" => Ok(Ops::Monitor),
        "config|rewrite" => Ok(Ops::ConfigRewrite),
        "config|set" => {
            if args.len() % 2 != 0 {
                return Err(Reply::err(
                    "ERR wrong number of arguments for 'config|set' command",
                ));
            }
            let mut pairs: Vec<(String, String)> = Vec::new();
            for p in args[2..].chunks_exact(2) {
                let n = text(&p[0]).to_ascii_lowercase();
                if pairs.iter().any(|(m, _)| *m == n) {
                    return Err(set_failed(&n, "duplicate parameter"));
                }
                pairs.push((n, text(&p[1])));
            }
            Ok(Ops::ConfigSet(pairs))
        }
        "slowlog|get" => match args.get(2) {
            None => Ok(Ops::SlowlogGet(Some(10))),
            Some(a) => {
                let n = std::str::from_utf8(a)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .filter(|&n| n >= -1)
                    .ok_or_else(|| Reply::err("ERR count should be greater than or equal to -1"))?;
                Ok(Ops::SlowlogGet(usize::try_from(n).ok()))
            }
        },
        "slowlog|len" => Ok(Ops::SlowlogLen),
        "slowlog|reset" => Ok(Ops::SlowlogReset),
        "save" => Ok(Ops::Storage(StorageOp::Save)),
        "bgrewriteaof" => Ok(Ops::Storage(StorageOp::BgRewriteAof)),
        "bgsave" => match args.get(1) {
            None => Ok(Ops::Storage(StorageOp::BgSave { schedule: false })),
            Some(a) if args.len() == 2 && a.eq_ignore_ascii_case(b"schedule") => {
                Ok(Ops::Storage(StorageOp::BgSave { schedule: true }))
            }
            Some(_) => Err(Reply::err(super::SYNTAX)),
        },
        "lastsave" => Ok(Ops::Storage(StorageOp::LastSave)),
        "debug" => parse_debug(args),
        other => unreachable!("{other} is not an operations command"),
    }
}

/// Redis's CONFIG SET failure: `ERR CONFIG SET failed (possibly related to
/// argument 'NAME') - WHY`.
pub fn set_failed(name: &str, why: &str) -> Reply {
    Reply::err(format!(
        "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
    ))
}

/// DEBUG subcommands the test suites call that make sense here; the rest
/// are refused by name (`DEBUG JMAP` has no meaning without jemalloc...).
fn parse_debug(args: &[Vec<u8>]) -> Result<Ops, Reply> {
    let sub = text(&args[1]).to_ascii_lowercase();
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(Reply::err(format!(
                "ERR wrong number of arguments for 'debug|{sub}' command"
            )))
        }
    };
    let storage = |op| Ok(Ops::Storage(op));
    match sub.as_str() {
        "help" => Ok(Ops::Debug(Debug::Help)),
        "set-active-expire" => {
            arity(3)?;
            match args[2].as_slice() {
                b"0" => Ok(Ops::Debug(Debug::SetActiveExpire(false))),
                b"1" => Ok(Ops::Debug(Debug::SetActiveExpire(true))),
                _ => Err(Reply::err(super::NOT_INTEGER)),
            }
        }
        "change-repl-id" => Ok(Ops::Debug(Debug::ChangeReplId)),
        // Redis's size past which a list element gets a node of its own;
        // lists here are one deque whatever their elements' sizes, so the
        // threshold has nothing to change (a size is still checked).
        "quicklist-packed-threshold" => {
            arity(3)?;
            match std::str::from_utf8(&args[2])
                .ok()
                .and_then(|v| crate::config::size(v).ok())
            {
                Some(_) => Ok(Ops::Debug(Debug::Accepted)),
                None => Err(Reply::err("ERR argument must be a memory value")),
            }
        }
        "protocol" => {
            arity(3)?;
            protocol_reply(&args[2]).map(|r| Ops::Debug(Debug::Protocol(r)))
        }
        // LOADAOF (reload from the AOF alone) is RELOAD here: the log is
        // the only persistence, and the rewrite RELOAD does first keeps
        // exactly the state.
        "reload" | "loadaof" => storage(StorageOp::DebugReload),
        "object" => {
            arity(3)?;
            storage(StorageOp::DebugObject(args[2].clone()))
        }
        "sleep" => {
            arity(3)?;
            let secs = std::str::from_utf8(&args[2])
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
                .ok_or_else(|| Reply::err("ERR value is not a valid float"))?;
            storage(StorageOp::DebugSleep(std::time::Duration::from_secs_f64(
                secs,
            )))
        }
        "digest" => storage(StorageOp::DebugDigest),
        "digest-value" => storage(StorageOp::DebugDigestValue(args[2..].to_vec())),
        _ => Err(Reply::err(format!(
            "ERR DEBUG {} is not supported by matou-kv",
            shown(&args[1], 64).to_ascii_uppercase()
        ))),
    }
}

/// DEBUG PROTOCOL's replies, one per RESP type, as Redis gives them.
fn protocol_reply(kind: &[u8]) -> Result<Reply, Reply> {
    let r = match text(kind).to_ascii_lowercase().as_str() {
        "string" => Reply::Bulk(b"Hello World".to_vec()),
        "integer" => Reply::Integer(12345),
        "double" => Reply::Double("3.141".into()),
        "bignum" => Reply::BigNumber("1234567999999999999999999999999999999".into()),
        "null" => Reply::Nil,
        "array" => Reply::Array((0..3).map(Reply::Integer).collect()),
        "set" => Reply::Set((0..3).map(Reply::Integer).collect()),
        "map" => Reply::Map(
            (0..3)
                .map(|i| (Reply::Integer(i), Reply::Bool(i == 1)))
                .collect(),
        ),
        "true" => Reply::Bool(true),
        "false" => Reply::Bool(false),
        "attrib" => Reply::Attributed(
            vec![(
                Reply::Bulk(b"key-popularity".to_vec()),
                Reply::Array(vec![Reply::Bulk(b"key:123".to_vec()), Reply::Integer(90)]),
            )],
            Box::new(Reply::Bulk(
                b"Some real reply following the attribute".to_vec(),
            )),
        ),
        "verbatim" => Reply::Verbatim("txt", b"This is a verbatim\nstring".to_vec()),
        _ => {
            return Err(Reply::err(
                "ERR Wrong protocol type name. Please use one of the following: \
                 string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
            ))
        }
    };
    Ok(r)
}

fn parse_kill(args: &[Vec<u8>]) -> Result<KillFilter, Reply> {
    let mut f = KillFilter {
        old_form: false,
        id: None,
        addr: None,
        laddr: None,
        normal: None,
        max_age: None,
        skip_me: true,
    };
    if args.len() == 3 {
        f.old_form = true;
        f.skip_me = false;
        f.addr = Some(text(&args[2]));
        return Ok(f);
    }
    if args.len() % 2 != 0 {
        return Err(Reply::err(SYNTAX));
    }
    for p in args[2..].chunks_exact(2) {
        let (opt, v) = (&p[0], &p[1]);
        if is(opt, "id") {
            f.id = Some(positive_id(v)?);
        } else if is(opt, "addr") {
            f.addr = Some(text(v));
        } else if is(opt, "laddr") {
            f.laddr = Some(text(v));
        } else if is(opt, "type") {
            f.normal = Some(client_type(v)?);
        } else if is(opt, "user") {
            // `default` is the only user: any other names nobody.
            if !is(v, "default") {
                return Err(Reply::err(format!("ERR No such user '{}'", shown(v, 128))));
            }
        } else if is(opt, "skipme") {
            f.skip_me = if is(v, "yes") {
                true
            } else if is(v, "no") {
                false
            } else {
                return Err(Reply::err(SYNTAX));
            };
        } else if is(opt, "maxage") {
            f.max_age = Some(
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| Reply::err(super::NOT_INTEGER))?,
            );
        } else {
            return Err(Reply::err(SYNTAX));
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn kill_old_form_is_one_address_and_may_name_the_caller() {
        let f = parse_kill(&args(&["client", "kill", "127.0.0.1:5000"])).unwrap();
        assert!(f.old_form);
        let (a, l) = (addr("127.0.0.1:5000"), addr("127.0.0.1:6379"));
        assert!(f.matches(7, &a, &l, 0, true));
        assert!(!f.matches(7, &addr("127.0.0.1:5001"), &l, 0, false));
    }

    #[test]
    fn kill_filters_combine_and_skip_the_caller_by_default() {
        let f = parse_kill(&args(&[
            "client",
            "kill",
            "id",
            "7",
            "laddr",
            "127.0.0.1:6379",
        ]))
        .unwrap();
        let (a, l) = (addr("127.0.0.1:5000"), addr("127.0.0.1:6379"));
        assert!(f.matches(7, &a, &l, 0, false));
        assert!(!f.matches(7, &a, &l, 0, true), "SKIPME yes by default");
        assert!(!f.matches(8, &a, &l, 0, false));
        assert!(!f.matches(7, &a, &addr("127.0.0.1:6380"), 0, false));
        let f = parse_kill(&args(&["client", "kill", "id", "7", "skipme", "no"])).unwrap();
        assert!(f.matches(7, &a, &l, 0, true));
        let f = parse_kill(&args(&["client", "kill", "maxage", "10"])).unwrap();
        assert!(!f.matches(7, &a, &l, 9, false));
        assert!(f.matches(7, &a, &l, 10, false));
    }

    #[test]
    fn kill_errors_are_redis_texts() {
        let e = |w: &[&str]| parse_kill(&args(w)).unwrap_err();
        assert_eq!(
            e(&["client", "kill", "id", "x"]),
            Reply::err("ERR client-id should be greater than 0")
        );
        assert_eq!(
            e(&["client", "kill", "id", "0"]),
            Reply::err("ERR client-id should be greater than 0")
        );
        assert_eq!(
            e(&["client", "kill", "user", "bob"]),
            Reply::err("ERR No such user 'bob'")
        );
        assert_eq!(
            e(&["client", "kill", "type", "foo"]),
            Reply::err("ERR Unknown client type 'foo'")
        );
        assert_eq!(
            e(&["client", "kill", "id", "1", "skipme"]),
            Reply::err(SYNTAX)
        );
        assert_eq!(e(&["client", "kill", "nosuch", "1"]), Reply::err(SYNTAX));
        assert_eq!(
            e(&["client", "kill", "skipme", "maybe"]),
            Reply::err(SYNTAX)
        );
    }

    #[test]
    fn config_set_pairs_lowercase_and_refuses_duplicates() {
        assert_eq!(
            parse(
                "config|set",
                &args(&["config", "set", "Timeout", "5", "maxclients", "9"])
            )
            .unwrap(),
            Ops::ConfigSet(vec![
                ("timeout".into(), "5".into()),
                ("maxclients".into(), "9".into())
            ])
        );
        assert_eq!(
            parse(
                "config|set",
                &args(&["config", "set", "timeout", "5", "TIMEOUT", "6"])
            )
            .unwrap_err(),
            set_failed("timeout", "duplicate parameter")
        );
        assert!(parse("config|set", &args(&["config", "set", "timeout", "5", "x"])).is_err());
    }

    #[test]
    fn list_filters() {
        assert_eq!(
            parse("client|list", &args(&["client", "list", "id", "3", "4"])).unwrap(),
            Ops::ClientList(ListFilter {
                normal_only: None,
                ids: Some(vec![3, 4])
            })
        );
        assert_eq!(
            parse("client|list", &args(&["client", "list", "type", "pubsub"])).unwrap(),
            Ops::ClientList(ListFilter {
                normal_only: Some(false),
                ids: None
            })
        );
        assert_eq!(
            parse("client|list", &args(&["client", "list", "id", "x"])).unwrap_err(),
            Reply::err("ERR Invalid client ID")
        );
        assert_eq!(
            parse("client|list", &args(&["client", "list", "foo"])).unwrap_err(),
            Reply::err(SYNTAX)
        );
    }
}
