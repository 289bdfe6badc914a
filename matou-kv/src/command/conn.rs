//! Connection commands: the per-connection [`Session`] (authentication,
//! client name, id) and the reply builders for INFO, CONFIG GET and COMMAND,
//! which take what they report as parameters so that no global state or
//! runtime is needed here.

use super::{parse, Command, CommandQuery, Conn, Spec, NOAUTH, TABLE};
use crate::glob;
use crate::resp::Reply;
use std::borrow::Cow;
use std::fmt::Write as _;

/// The version matou-kv reports as `redis_version` (INFO, HELLO): the Redis
/// whose command semantics and error texts it follows.
pub const REDIS_VERSION: &str = "7.0.15";

/// What the configuration shows to connection commands: the password, and
/// the parameters CONFIG GET lists (see `config::Config::view`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigView {
    /// `requirepass`, if set.
    pub requirepass: Option<String>,
    /// (name, value) pairs, lowercase names, as CONFIG GET lists them.
    pub params: Vec<(&'static str, String)>,
}

/// What the connection must do after a connection command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this reply and go on.
    Reply(Reply),
    /// Send this reply, then close the connection (QUIT).
    Close(Reply),
    /// Stop the server (SHUTDOWN); Redis sends no reply, the connection
    /// just closes.
    Shutdown,
    /// INFO: answer with a bulk of [`info_text`] for these sections, built
    /// from server-wide figures (the keyspace ones come from the storage).
    Info(Vec<Vec<u8>>),
    /// An operations command: the server runs it (`server::ops`).
    Ops(super::ops::Ops),
}

/// One connection's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// CLIENT ID.
    pub id: u64,
    /// Passed AUTH (or no password is configured).
    pub authenticated: bool,
    /// Wrong passwords given on this connection (AUTH or HELLO AUTH); the
    /// handler slows and then closes the connection as it grows.
    pub failed_auths: u32,
    /// CLIENT SETNAME.
    pub name: Option<Vec<u8>>,
    /// The protocol of the replies: 2 (RESP2) until `HELLO 3`.
    pub proto: u8,
}

/// Compares without an early exit, so that the time taken does not tell how
/// much of a password guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let diff = a
        .iter()
        .zip(b)
        .fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
    diff == 0
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

impl Session {
    /// A new connection's session; authenticated from the start when no
    /// password is configured.
    pub fn new(id: u64, requirepass: Option<&str>) -> Session {
        Session {
            id,
            authenticated: requirepass.is_none(),
            failed_auths: 0,
            name: None,
            proto: 2,
        }
    }

    /// RESET's part of the session: deauthenticated when a password is
    /// configured, no name, RESP2. Wrong passwords stay counted (a RESET
    /// must not wipe the guessing brake).
    pub fn reset(&mut self, requirepass: Option<&str>) {
        let failed_auths = self.failed_auths;
        *self = Session::new(self.id, requirepass);
        self.failed_auths = failed_auths;
    }

    /// [`parse()`] with this session's authentication state.
    ///
    /// # Errors
    /// The error reply Redis would send (NOAUTH included).
    pub fn parse(&self, args: &[Vec<u8>]) -> Result<Command, Reply> {
        parse(args, self.authenticated)
    }

    /// [`Session::parse`] of a command already looked up
    /// (`super::lookup(args)` gave `spec`).
    pub fn parse_spec(
        &self,
        spec: &'static super::Spec,
        args: &[Vec<u8>],
    ) -> Result<Command, Reply> {
        super::parse::parse_spec(spec, args, self.authenticated)
    }

    /// Whether `user`/`password` are the configured credentials (user
    /// `default` is the only one).
    fn check(&self, config: &ConfigView, user: &[u8], password: &[u8]) -> bool {
        user == b"default"
            && match &config.requirepass {
                // No password: the default user is "nopass".
                None => true,
                Some(pw) => same_secret(pw.as_bytes(), password),
            }
    }

    fn set_name(&mut self, name: Vec<u8>) -> Result<(), Reply> {
        if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
            return Err(Reply::err(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        self.name = (!name.is_empty()).then_some(name);
        Ok(())
    }

    /// Runs a connection command.
    pub fn execute(&mut self, cmd: Conn, config: &ConfigView) -> Action {
        let reply = match cmd {
            Conn::Ping(None) => Reply::Simple(Cow::Borrowed("PONG")),
            Conn::Ping(Some(m)) | Conn::Echo(m) => Reply::Bulk(m),
            Conn::Auth { user, password } => {
                if user.is_none() && config.requirepass.is_none() {
                    Reply::err(
                        "ERR AUTH <password> called without any password configured for \
                         the default user. Are you sure your configuration is correct?",
                    )
                } else if self.check(config, user.as_deref().unwrap_or(b"default"), &password) {
                    self.authenticated = true;
                    Reply::ok()
                } else {
                    self.failed_auths = self.failed_auths.saturating_add(1);
                    Reply::err(WRONGPASS)
                }
            }
            Conn::Hello {
                proto,
                auth,
                setname,
            } => {
                if let Some((user, password)) = auth {
                    if !self.check(config, &user, &password) {
                        return Action::Reply(Reply::err(WRONGPASS));
                    }
                    self.authenticated = true;
                }
                if !self.authenticated {
                    return Action::Reply(Reply::err(
                        "NOAUTH HELLO must be called with the client already authenticated, \
                         otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
                         authenticate the client and select the RESP protocol version at the \
                         same time",
                    ));
                }
                if let Some(name) = setname {
                    if let Err(e) = self.set_name(name) {
                        return Action::Reply(e);
                    }
                }
                // Checked by the parse: 2 or 3.
                if let Some(p) = proto {
                    self.proto = if p == 3 { 3 } else { 2 };
                }
                let b = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
                Reply::Map(vec![
                    (b("server"), b("redis")),
                    (b("version"), b(REDIS_VERSION)),
                    (b("proto"), Reply::Integer(i64::from(self.proto))),
                    (
                        b("id"),
                        Reply::Integer(i64::try_from(self.id).unwrap_or(i64::MAX)),
                    ),
                    (b("mode"), b("standalone")),
                    (b("role"), b("master")),
                    (b("modules"), Reply::Array(Vec::new())),
                ])
            }
            Conn::Select(0) => Reply::ok(),
            Conn::Select(_) => Reply::err("ERR DB index is out of range"),
            Conn::ClientSetName(name) => match self.set_name(name) {
                Ok(()) => Reply::ok(),
                Err(e) => e,
            },
            Conn::ClientGetName => Reply::opt_bulk(self.name.clone()),
            Conn::ClientId => Reply::Integer(i64::try_from(self.id).unwrap_or(i64::MAX)),
            Conn::ClientSetInfo | Conn::ConfigResetStat => Reply::ok(),
            // The connection sends them to the storage task; here only
            // if something else routes them wrongly.
            Conn::Script(_) => Reply::err("ERR scripting commands run in the storage task"),
            Conn::Help(what) => help(what),
            Conn::Info(sections) => return Action::Info(sections),
            Conn::ConfigGet(patterns) => config_get_reply(&config.params, &patterns),
            Conn::Ops(op) => return Action::Ops(op),
            // The connection runs them with its subscriptions (`pubsub`),
            // at EXEC too: a session alone has none to run them on.
            Conn::PubSub(_) => Reply::err("ERR pub/sub commands need a client connection"),
            Conn::Command(q) => command_reply(&q),
            Conn::Quit => return Action::Close(Reply::ok()),
            Conn::Shutdown => return Action::Shutdown,
        };
        Action::Reply(reply)
    }

    /// Whether a parse error means "authenticate first" (for counters).
    pub fn is_noauth(reply: &Reply) -> bool {
        matches!(reply, Reply::Error(m) if m == NOAUTH)
    }
}

/// The HELP reply of `what` (`CLIENT`, `CONFIG`, `SLOWLOG`, `DEBUG`,
/// `COMMAND`).
pub fn help_reply(what: &str) -> Reply {
    help(what)
}

fn help(what: &str) -> Reply {
    let lines: &[&str] = match what {
        "CLIENT" => &[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "SETINFO <LIB-NAME|LIB-VER> <value>",
            "    Accepted and ignored.",
            "LIST [TYPE <normal|master|replica|pubsub>] [ID <id> [<id> ...]]",
            "    Return information about client connections.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>,",
            "    LADDR <ip:port>, TYPE <type>, USER <username>, MAXAGE <secs>,",
            "    SKIPME (YES|NO) (default YES).",
            "NO-EVICT (ON|OFF)",
            "    Protect the current client connection from eviction.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
        ],
        "CONFIG" => &[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value> [<directive> <value> ...]",
            "    Set the configuration <directive>s (timeout, maxclients, requirepass,",
            "    client-output-buffer-limit, maxmemory*, lfu-*, slowlog-*, and Redis",
            "    settings accepted without effect such as hz) to <value>s, all or none.",
            "RESETSTAT",
            "    Reset the statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
        ],
        "PUBSUB" => &[
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
        ],
        "SLOWLOG" => &[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
        "DEBUG" => &[
            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANGE-REPL-ID",
            "    Accepted: there is no replication.",
            "DIGEST",
            "    Output a digest of the whole dataset (40 zeros when it is empty).",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a digest of each key's value.",
            "LOADAOF",
            "    The same as RELOAD (the log is the only persistence).",
            "OBJECT <key>",
            "    Show low level info about the key and its value.",
            "PROTOCOL <type>",
            "    Reply with a test value of the given RESP type.",
            "QUICKLIST-PACKED-THRESHOLD <size>",
            "    Accepted: lists are not quicklists here.",
            "RELOAD",
            "    Rewrite the log (as SAVE) and rebuild the data from it alone.",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Switch the active expiry of keys with a TTL off or on.",
            "SLEEP <seconds>",
            "    Stop serving data commands for <seconds> (decimals allowed).",
        ],
        _ => &[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands.",
            "DOCS",
            "    Return an empty array (no documentation is served).",
            "INFO <command-name> [<command-name> ...]",
            "    Return details about the given commands.",
            "LIST",
            "    Return the names of all commands.",
        ],
    };
    Reply::Array(
        lines
            .iter()
            .map(|l| Reply::Simple(Cow::Borrowed(*l)))
            .collect(),
    )
}

/// CONFIG GET: every `(name, value)` whose name matches one of `patterns`
/// (glob, case-insensitive), each parameter once, as a flat array.
pub fn config_get_reply(params: &[(&'static str, String)], patterns: &[Vec<u8>]) -> Reply {
    let mut out = Vec::new();
    for (name, value) in params {
        if patterns
            .iter()
            .any(|p| glob::matches_nocase(p, name.as_bytes()))
        {
            out.push((
                Reply::Bulk(name.as_bytes().to_vec()),
                Reply::Bulk(value.as_bytes().to_vec()),
            ));
        }
    }
    Reply::Map(out)
}

fn spec_info(s: &Spec) -> Reply {
    let (first, last, step) = s.keys;
    Reply::Array(vec![
        Reply::Bulk(s.name.as_bytes().to_vec()),
        Reply::Integer(i64::from(s.arity)),
        Reply::Array(
            s.flags
                .iter()
                .map(|f| Reply::Simple(Cow::Borrowed(*f)))
                .collect(),
        ),
        Reply::Integer(i64::from(first)),
        Reply::Integer(i64::from(last)),
        Reply::Integer(i64::from(step)),
        // ACL categories, tips, key specifications: none served.
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(s.subcommands.iter().map(spec_info).collect()),
    ])
}

fn all_specs() -> impl Iterator<Item = &'static Spec> {
    TABLE
        .iter()
        .flat_map(|s| std::iter::once(s).chain(s.subcommands.iter()))
}

/// COMMAND and its subcommands, from the command table (Redis 7's
/// ten-field entries). `COMMAND DOCS` is an empty array, which `redis-cli`
/// accepts (it then has no hints).
pub fn command_reply(q: &CommandQuery) -> Reply {
    match q {
        CommandQuery::All => Reply::Array(TABLE.iter().map(spec_info).collect()),
        CommandQuery::Count => Reply::Integer(TABLE.len() as i64),
        CommandQuery::Docs => Reply::Array(Vec::new()),
        CommandQuery::Info(names) => Reply::Array(
            names
                .iter()
                .map(|n| {
                    all_specs()
                        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(n))
                        .map_or(Reply::Nil, spec_info)
                })
                .collect(),
        ),
        CommandQuery::GetKeys(line) => super::getkeys::getkeys(line),
        CommandQuery::List => Reply::Array(
            all_specs()
                .map(|s| Reply::Bulk(s.name.as_bytes().to_vec()))
                .collect(),
        ),
    }
}

/// The figures INFO reports; the server fills what it has (the keyspace and
/// persistence ones come from the storage task).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfoData {
    /// TCP port served.
    pub port: u16,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Worker threads.
    pub workers: usize,
    /// Clients connected now.
    pub connected_clients: usize,
    /// Clients blocked on a list now (BLPOP and friends).
    pub blocked_clients: usize,
    /// `maxclients`.
    pub maxclients: usize,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Commands processed since start.
    pub total_commands: u64,
    /// Connections refused (maxclients).
    pub rejected_connections: u64,
    /// Keys removed by expiry since start.
    pub expired_keys: u64,
    /// Bytes the data costs (`server::memory::used_memory`).
    pub used_memory: usize,
    /// Bytes the Lua state uses (`script`).
    pub used_memory_lua: usize,
    /// Scripts in EVAL's cache.
    pub cached_scripts: usize,
    /// Keys evicted under `maxmemory` since start.
    pub evicted_keys: u64,
    /// `maxmemory` in force (0: none).
    pub maxmemory: u64,
    /// `maxmemory-policy` in force.
    pub maxmemory_policy: String,
    /// Keys held (`Store::len`).
    pub keys: usize,
    /// Keys with an expiry (`Store::expires_len`).
    pub expires: usize,
    /// (database, keys, keys with an expiry) of each non-empty database,
    /// for the keyspace section; empty: `db0` from `keys` and `expires`.
    pub keyspace: Vec<(usize, usize, usize)>,
    /// The log's fsync policy name.
    pub aof_fsync: String,
    /// The log's size in bytes.
    pub aof_current_size: u64,
    /// Its size after the last rewrite (or at start).
    pub aof_base_size: u64,
    /// A rewrite is running.
    pub aof_rewrite_in_progress: bool,
    /// Rewrites done since start.
    pub aof_rewrites: u64,
    /// The last rewrite failed.
    pub aof_last_rewrite_failed: bool,
    /// Error replies sent since start (or CONFIG RESETSTAT).
    pub total_error_replies: u64,
    /// (error code, replies) for the errorstats section.
    pub errorstats: Vec<(String, u64)>,
    /// CPU microseconds: (system, user, children's system, children's
    /// user).
    pub cpu: (u64, u64, u64, u64),
    /// (command, calls, microseconds, rejected calls, failed calls), for
    /// the commandstats section.
    pub commandstats: Vec<(&'static str, u64, u64, u64, u64)>,
    /// (command, (percentile, microseconds)...) for the latencystats
    /// section.
    pub latencystats: Vec<(&'static str, Vec<(f64, f64)>)>,
    /// Unix seconds of the last SAVE, rewrite or start (LASTSAVE).
    pub last_save_unix: u64,
    /// Changes logged since then.
    pub changes_since_save: u64,
    /// BGSAVE: (in progress, the last one failed, its seconds, the
    /// running one's seconds), -1 seconds for none.
    pub bgsave: (bool, bool, i64, i64),
}

/// Redis's `bytesToHuman`: `1023B`, `1.00K`, `12.50M`...
pub fn bytes_to_human(n: usize) -> String {
    let n = n as f64;
    let units = [
        ("K", 1024f64),
        ("M", 1024f64.powi(2)),
        ("G", 1024f64.powi(3)),
        ("T", 1024f64.powi(4)),
    ];
    match units.iter().rev().find(|(_, size)| n >= *size) {
        Some((unit, size)) => format!("{:.2}{unit}", n / size),
        None => format!("{n}B"),
    }
}

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "keyspace",
    "commandstats",
    "latencystats",
];

/// The sections INFO shows without arguments or with `default` (Redis 7:
/// all but `commandstats` and `latencystats`).
const DEFAULT_SECTIONS: usize = 9;

/// The INFO text for `sections` (none, `default`, `all` or `everything`:
/// every section), in Redis's format: `# Section` headers, `field:value`
/// lines, CRLF line ends, a blank line between sections.
pub fn info_text(d: &InfoData, sections: &[Vec<u8>]) -> String {
    let asked = |w: &str| {
        sections
            .iter()
            .any(|s| s.eq_ignore_ascii_case(w.as_bytes()))
    };
    let all = asked("all") || asked("everything");
    let default = sections.is_empty() || asked("default");
    let mut out = String::new();
    for (i, name) in SECTIONS.iter().enumerate() {
        if !(all || (default && i < DEFAULT_SECTIONS) || asked(name)) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let title = format!("{}{}", name[..1].to_ascii_uppercase(), &name[1..]);
        let _ = write!(out, "# {title}\r\n");
        let mut kv = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(out, "{k}:{v}\r\n");
        };
        match *name {
            "server" => {
                kv("redis_version", &REDIS_VERSION);
                kv("matou_kv_version", &env!("CARGO_PKG_VERSION"));
                kv("redis_mode", &"standalone");
                kv("os", &std::env::consts::OS);
                kv("arch_bits", &(usize::BITS));
                kv("process_id", &std::process::id());
                kv("tcp_port", &d.port);
                kv("uptime_in_seconds", &d.uptime_secs);
                kv("uptime_in_days", &(d.uptime_secs / 86_400));
                kv("executor", &"matou");
                kv("workers", &d.workers);
                if let Ok(exe) = std::env::current_exe() {
                    kv("executable", &exe.display());
                }
            }
            "clients" => {
                kv("connected_clients", &d.connected_clients);
                kv("maxclients", &d.maxclients);
                kv("blocked_clients", &d.blocked_clients);
            }
            "memory" => {
                kv("used_memory", &d.used_memory);
                kv("used_memory_human", &bytes_to_human(d.used_memory));
                kv("used_memory_lua", &d.used_memory_lua);
                kv("used_memory_scripts", &d.used_memory_lua);
                kv("number_of_cached_scripts", &d.cached_scripts);
                kv("maxmemory", &d.maxmemory);
                kv("maxmemory_policy", &d.maxmemory_policy);
            }
            "persistence" => {
                kv("loading", &0);
                kv("rdb_changes_since_last_save", &d.changes_since_save);
                kv("rdb_last_save_time", &d.last_save_unix);
                let (running, failed, last, current) = d.bgsave;
                kv("rdb_bgsave_in_progress", &u8::from(running));
                kv("rdb_last_bgsave_status", &if failed { "err" } else { "ok" });
                kv("rdb_last_bgsave_time_sec", &last);
                kv("rdb_current_bgsave_time_sec", &current);
                kv("aof_enabled", &1);
                kv("aof_fsync", &d.aof_fsync);
                kv(
                    "aof_rewrite_in_progress",
                    &u8::from(d.aof_rewrite_in_progress),
                );
                kv("aof_rewrites", &d.aof_rewrites);
                kv(
                    "aof_last_bgrewrite_status",
                    &if d.aof_last_rewrite_failed {
                        "err"
                    } else {
                        "ok"
                    },
                );
                kv("aof_last_write_status", &"ok");
                kv("aof_current_size", &d.aof_current_size);
                kv("aof_base_size", &d.aof_base_size);
            }
            "stats" => {
                kv("total_connections_received", &d.total_connections);
                kv("total_commands_processed", &d.total_commands);
                kv("rejected_connections", &d.rejected_connections);
                kv("expired_keys", &d.expired_keys);
                kv("evicted_keys", &d.evicted_keys);
                kv("total_error_replies", &d.total_error_replies);
            }
            "cpu" => {
                let secs = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
                let (sys, user, csys, cuser) = d.cpu;
                kv("used_cpu_sys", &secs(sys));
                kv("used_cpu_user", &secs(user));
                kv("used_cpu_sys_children", &secs(csys));
                kv("used_cpu_user_children", &secs(cuser));
            }
            "commandstats" => {
                for &(name, calls, usec, rejected, failed) in &d.commandstats {
                    // Redis names a subcommand `config|set` here too.
                    let per_call = if calls == 0 {
                        0.0
                    } else {
                        usec as f64 / calls as f64
                    };
                    kv(
                        &format!("cmdstat_{name}"),
                        &format!(
                            "calls={calls},usec={usec},usec_per_call={per_call:.2},\
                             rejected_calls={rejected},failed_calls={failed}"
                        ),
                    );
                }
            }
            "latencystats" => {
                for (name, points) in &d.latencystats {
                    let shown: Vec<String> = points
                        .iter()
                        .map(|(p, us)| format!("p{p}={us:.3}"))
                        .collect();
                    kv(
                        &format!("latency_percentiles_usec_{name}"),
                        &shown.join(","),
                    );
                }
            }
            "errorstats" => {
                for (code, count) in &d.errorstats {
                    kv(&format!("errorstat_{code}"), &format!("count={count}"));
                }
            }
            "replication" => {
                kv("role", &"master");
                kv("connected_slaves", &0);
                kv("master_repl_offset", &0);
            }
            _ => {
                let db0 = [(0, d.keys, d.expires)];
                let dbs = match d.keyspace.is_empty() {
                    true => &db0[..],
                    false => &d.keyspace[..],
                };
                for &(db, keys, expires) in dbs.iter().filter(|(_, keys, _)| *keys > 0) {
                    let _ = write!(out, "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n");
                }
            }
        }
    }
    out
}
