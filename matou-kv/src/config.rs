//! The server's configuration: command-line flags, optionally on top of a
//! redis.conf-like file.
//!
//! Precedence: defaults, then the lines of `--config FILE`, then every
//! other flag, wherever `--config` appears on the command line (flags
//! override the file). A file line is `name value...` split as Redis splits
//! its config lines (quotes allowed, see [`crate::resp::split_inline`]);
//! `#` starts a comment line. Names are the flag names without `--`, plus
//! the redis.conf spellings `appendfsync`, `proto-max-bulk-len` and
//! `client-query-buffer-limit`.
//!
//! `requirepass` may also come from the environment (`MATOU_KV_REQUIREPASS`,
//! between the file and the flags), so that it need not be on the command
//! line. `--repair-log` is the one flag without a value.
//!
//! Parsing does no I/O besides reading that file, and prints nothing:
//! `main` decides how to report (`--help`: exit 0; an error: exit 2).

mod rewrite;
use crate::command::ConfigView;
use crate::resp::{self, Limits};
use crate::server::memory::{MemoryConfig, Policy};
pub use rewrite::{rewrite_file, rewrite_text};
use std::fmt;
use std::path::PathBuf;

pub use crate::aof::Fsync;

/// Default of [`Config::max_query_bytes`]: 1 GiB, as Redis's
/// `client-query-buffer-limit`.
pub const DEFAULT_MAX_QUERY: usize = 1024 * 1024 * 1024;

/// Everything the server needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// TCP port (0: any free port).
    pub port: u16,
    /// Address to bind (an IPv4 or IPv6 literal).
    pub bind: String,
    /// Data directory (holds the log); created if missing.
    pub dir: PathBuf,
    /// The log's fsync policy.
    pub fsync: Fsync,
    /// Worker threads besides the main one.
    pub workers: usize,
    /// When set, clients must AUTH before anything else.
    pub requirepass: Option<String>,
    /// Connections served at once; more are refused with an error.
    pub maxclients: usize,
    /// Longest argument (bulk string) of a request.
    pub max_request_bytes: usize,
    /// Most arguments in one request.
    pub max_args: usize,
    /// Most bytes a connection may buffer for one incomplete request
    /// (Redis's `client-query-buffer-limit`): over it, the client gets a
    /// protocol error and is disconnected.
    pub max_query_bytes: usize,
    /// `--repair-log`: a damaged log is moved aside and repaired instead of
    /// refusing the start.
    pub repair_log: bool,
    /// Numbered databases (SELECT 0 to this - 1).
    pub databases: usize,
    /// `client-output-buffer-limit normal`: when a client is disconnected
    /// for the replies it has not read.
    pub output_limit: OutputLimit,
    /// `client-output-buffer-limit pubsub`: when a subscriber is
    /// disconnected for the messages it has not read (queued bytes over
    /// `hard`, or over `soft` for `soft_secs`).
    pub pubsub_limit: OutputLimit,
    /// `notify-keyspace-events`: the keyspace notification classes, as
    /// given (checked by [`crate::server::notify::parse_flags`]).
    pub notify_keyspace_events: String,
    /// Seconds a connection may stay idle (no request) before it is
    /// closed; 0: never (Redis's `timeout`).
    pub timeout_secs: u64,
    /// Wrong passwords after which a connection is closed (counted per
    /// connection and per client address over a minute); past the first
    /// three each answer is delayed 100 ms more than the last.
    pub auth_max_failures: u32,
    /// `maxmemory` and its policy at start (changed live through
    /// [`crate::server::memory::Memory`]).
    pub memory: MemoryConfig,
    /// The encoding thresholds OBJECT ENCODING follows
    /// (`hash-max-listpack-entries`...; the `ziplist` names are aliases).
    pub encodings: crate::store::Thresholds,
    /// The `--config` file read at start (CONFIG REWRITE's target).
    pub config_file: Option<PathBuf>,
    /// `slowlog-log-slower-than`: commands taking at least this many
    /// microseconds are logged in the slow log (0: every one; negative:
    /// none).
    pub slowlog_slower_than_us: i64,
    /// `slowlog-max-len`: entries the slow log keeps (the oldest go first).
    pub slowlog_max_len: usize,
    /// `enable-debug-command`: who may run DEBUG (Redis 7's default: no
    /// one).
    pub debug_command: DebugCommand,
    /// Redis settings accepted and shown but without effect here (see
    /// [`ACCEPTED`]), by name; absent: the default.
    pub accepted: std::collections::BTreeMap<&'static str, String>,
}

/// `enable-debug-command`: which connections may run DEBUG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugCommand {
    /// Nobody.
    No,
    /// Every client.
    Yes,
    /// Clients connected over loopback only.
    Local,
}

impl DebugCommand {
    fn parse(value: &str) -> Result<DebugCommand, String> {
        match value.to_ascii_lowercase().as_str() {
            "no" => Ok(DebugCommand::No),
            "yes" => Ok(DebugCommand::Yes),
            "local" => Ok(DebugCommand::Local),
            _ => Err(format!(
                "invalid value `{value}`: expected no, yes or local"
            )),
        }
    }

    /// The setting's word.
    pub fn name(self) -> &'static str {
        match self {
            DebugCommand::No => "no",
            DebugCommand::Yes => "yes",
            DebugCommand::Local => "local",
        }
    }

    /// Whether a client from `peer` may run DEBUG.
    pub fn allows(self, peer: std::net::IpAddr) -> bool {
        match self {
            DebugCommand::No => false,
            DebugCommand::Yes => true,
            DebugCommand::Local => peer.is_loopback(),
        }
    }
}

/// Redis 7 settings that matou-kv accepts (config file, CONFIG SET) and
/// shows (CONFIG GET) with their Redis default, but that change nothing
/// here (except the two `latency-tracking` ones, which INFO latencystats
/// reads): replication, encodings' thresholds (every value has one
/// representation), lazy freeing (freeing is never deferred), the event
/// loop's `hz`, RDB snapshots (the log is the only persistence). Clients
/// and Redis's test suite set them routinely; refusing them would break
/// those callers for no gain. A value is checked against its default's
/// kind: a number takes a number, `yes`/`no` takes `yes` or `no`.
pub const ACCEPTED: &[(&str, &str)] = &[
    ("hz", "10"),
    ("dynamic-hz", "yes"),
    ("activerehashing", "yes"),
    ("active-expire-effort", "1"),
    ("save", ""),
    ("aof-use-rdb-preamble", "yes"),
    ("aof-rewrite-incremental-fsync", "yes"),
    ("rdbcompression", "yes"),
    ("rdbchecksum", "yes"),
    ("rdb-key-save-delay", "0"),
    ("key-load-delay", "0"),
    ("stop-writes-on-bgsave-error", "yes"),
    ("repl-ping-replica-period", "10"),
    ("repl-timeout", "60"),
    ("repl-backlog-size", "1048576"),
    ("repl-diskless-sync", "yes"),
    ("repl-diskless-sync-delay", "5"),
    ("replica-serve-stale-data", "yes"),
    ("replica-read-only", "yes"),
    ("replica-lazy-flush", "no"),
    ("min-replicas-to-write", "0"),
    ("min-replicas-max-lag", "10"),
    ("masterauth", ""),
    ("masteruser", ""),
    ("list-max-listpack-size", "-2"),
    ("list-max-ziplist-size", "-2"),
    ("list-compress-depth", "0"),
    ("set-max-listpack-entries", "128"),
    ("set-max-listpack-value", "64"),
    ("stream-node-max-bytes", "4096"),
    ("stream-node-max-entries", "100"),
    ("hll-sparse-max-bytes", "3000"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("lua-time-limit", "5000"),
    ("busy-reply-threshold", "5000"),
    ("latency-tracking", "yes"),
    ("latency-tracking-info-percentiles", "50 99 99.9"),
    ("latency-monitor-threshold", "0"),
    ("loglevel", "notice"),
    ("tracking-table-max-keys", "1000000"),
    ("maxmemory-clients", "0"),
    ("maxmemory-eviction-tenacity", "10"),
    ("shutdown-on-sigterm", "default"),
    ("shutdown-on-sigint", "default"),
    ("shutdown-timeout", "10"),
];

/// `latency-tracking-info-percentiles`: numbers from 0 to 100, space
/// separated (INFO latencystats shows these percentiles).
///
/// # Errors
/// A word that is not such a number.
pub fn percentiles(value: &str) -> Result<Vec<f64>, String> {
    value
        .split_whitespace()
        .map(|w| {
            w.parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or_else(|| format!("invalid value `{w}`: expected percentiles from 0 to 100"))
        })
        .collect()
}

/// The [`ACCEPTED`] entry named `name`.
fn accepted(name: &str) -> Option<(&'static str, &'static str)> {
    ACCEPTED.iter().copied().find(|(n, _)| *n == name)
}

/// Checks `value` for an [`ACCEPTED`] setting whose default is `default`.
fn check_accepted(default: &str, value: &str) -> Result<(), String> {
    if default.parse::<i64>().is_ok() && value.parse::<i64>().is_err() {
        return Err(format!("invalid value `{value}`: expected a number"));
    }
    if matches!(default, "yes" | "no") && !matches!(value, "yes" | "no") {
        return Err(format!("invalid value `{value}`: expected yes or no"));
    }
    Ok(())
}

/// Redis's `client-output-buffer-limit normal HARD SOFT SECONDS`, in bytes
/// (0: no limit). A reply over `hard` disconnects the client at once; one
/// over `soft` that is still not sent after `soft_secs` seconds too.
///
/// Replies are produced in rounds of about [`crate::server::ROUND_REPLY_BYTES`]
/// (each written before the next is made), so these limits only concern
/// one reply bigger than a round (a big GET, a huge MGET); the memory a
/// client that never reads holds is bounded by one round whatever they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimit {
    /// Bytes of one reply over which the client is disconnected at once.
    pub hard: usize,
    /// Bytes of unsent reply tolerated for `soft_secs` only.
    pub soft: usize,
    /// How long a reply over `soft` may stay unsent.
    pub soft_secs: u64,
}

/// Default of [`Config::output_limit`]: hard 1 GiB (above the largest
/// value, 512 MiB, so any single GET passes), soft 256 MiB for 60 s. Redis
/// ships `0 0 0` (unlimited), which lets one MGET exhaust memory.
pub const DEFAULT_OUTPUT_LIMIT: OutputLimit = OutputLimit {
    hard: 1 << 30,
    soft: 256 << 20,
    soft_secs: 60,
};

/// Default of [`Config::pubsub_limit`]: Redis's `pubsub 32mb 8mb 60`.
pub const DEFAULT_PUBSUB_LIMIT: OutputLimit = OutputLimit {
    hard: 32 << 20,
    soft: 8 << 20,
    soft_secs: 60,
};

/// Parses `client-output-buffer-limit`'s value into the limits it sets:
/// `HARD SOFT SECONDS` (the normal class), or groups of `CLASS HARD SOFT
/// SECONDS` for the classes `normal` and `pubsub` (`replica` and `slave`
/// are refused: there are no replicas). All or nothing.
fn parse_output_limits(
    value: &str,
    normal: OutputLimit,
    pubsub: OutputLimit,
) -> Result<(OutputLimit, OutputLimit), String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.len() == 3 {
        return Ok((OutputLimit::parse(value)?, pubsub));
    }
    if words.is_empty() || words.len() % 4 != 0 {
        return Err(format!(
            "invalid value `{value}`: expected `CLASS HARD SOFT SECONDS`..., the classes              normal and pubsub"
        ));
    }
    let (mut normal, mut pubsub) = (normal, pubsub);
    for group in words.chunks_exact(4) {
        let limit = OutputLimit::parse(&group[1..].join(" "))?;
        match group[0].to_ascii_lowercase().as_str() {
            "normal" => normal = limit,
            "pubsub" => pubsub = limit,
            other => {
                return Err(format!(
                    "invalid client class `{other}`: expected normal or pubsub (there are no                      replicas)"
                ))
            }
        }
    }
    Ok((normal, pubsub))
}

impl OutputLimit {
    /// Parses `[normal] HARD SOFT SECONDS`, sizes as bytes or with a
    /// `kb`/`mb`/`gb` suffix (powers of 1024, as redis.conf).
    fn parse(value: &str) -> Result<OutputLimit, String> {
        let words: Vec<&str> = value.split_whitespace().collect();
        let words = match words.as_slice() {
            ["normal", rest @ ..] => rest,
            rest => rest,
        };
        let [hard, soft, secs] = words else {
            return Err(format!(
                "invalid value `{value}`: expected `normal HARD SOFT SECONDS`"
            ));
        };
        Ok(OutputLimit {
            hard: size(hard)?,
            soft: size(soft)?,
            soft_secs: number(secs, "a number of seconds")?,
        })
    }

    fn show(&self) -> String {
        format!("normal {} {} {}", self.hard, self.soft, self.soft_secs)
    }

    /// The `CLASS HARD SOFT SECONDS` words of one class.
    fn show_class(&self, class: &str) -> String {
        format!("{class} {} {} {}", self.hard, self.soft, self.soft_secs)
    }
}

/// `N`, `Nkb`, `Nmb` or `Ngb` (case-insensitive) in bytes.
pub(crate) fn size(word: &str) -> Result<usize, String> {
    let lower = word.to_ascii_lowercase();
    // Redis's units (`memtoull`): k, m, g are powers of 1000, kb, mb, gb
    // of 1024; the two-letter ones are tried first.
    let (digits, unit) = [
        ("gb", 1usize << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1_000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(s, u)| lower.strip_suffix(s).map(|d| (d.to_string(), *u)))
    .unwrap_or((lower.clone(), 1));
    let n: usize = number(&digits, "a size (bytes, or with kb, mb, gb)")?;
    n.checked_mul(unit)
        .ok_or_else(|| format!("invalid value `{word}`: too large"))
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: "127.0.0.1".into(),
            dir: PathBuf::from("./matou-kv-data"),
            fsync: Fsync::Always,
            workers: default_workers(std::thread::available_parallelism().map_or(1, |n| n.get())),
            requirepass: None,
            maxclients: 10_000,
            max_request_bytes: resp::DEFAULT_MAX_BULK,
            max_args: resp::DEFAULT_MAX_ARGS,
            max_query_bytes: DEFAULT_MAX_QUERY,
            repair_log: false,
            databases: crate::databases::DEFAULT_DATABASES,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            pubsub_limit: DEFAULT_PUBSUB_LIMIT,
            notify_keyspace_events: String::new(),
            timeout_secs: 0,
            auth_max_failures: 10,
            memory: MemoryConfig::default(),
            encodings: crate::store::Thresholds::default(),
            config_file: None,
            slowlog_slower_than_us: 10_000,
            slowlog_max_len: 128,
            debug_command: DebugCommand::No,
            accepted: std::collections::BTreeMap::new(),
        }
    }
}

/// The default `--workers` on a machine with `cpus` CPUs: none below 4
/// CPUs, then three quarters of them minus dom0 (4 -> 2, 8 -> 5, 16 -> 11),
/// which is Redis's advice for its `io-threads`.
///
/// Why not one per CPU: every data command runs on the storage task (on
/// dom0), so a client served by another worker costs two cross-thread
/// wake-ups per batch (the job, the reply). Measured on 2 CPUs with
/// redis-benchmark (50 clients, no pipelining): one extra worker took 1.6x
/// the CPU per request and 8x the context switches of dom0 alone, and
/// 30-40% fewer requests per second. Extra workers pay off only when the
/// socket work they take off dom0 outweighs those wake-ups, which needs
/// cores to spare beside the clients and the kernel's network stack.
pub fn default_workers(cpus: usize) -> usize {
    if cpus < 4 {
        0
    } else {
        cpus * 3 / 4 - 1
    }
}

impl Config {
    /// The request limits for the decoder.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bulk: self.max_request_bytes,
            max_args: self.max_args,
            max_inline: resp::DEFAULT_MAX_INLINE.min(self.max_request_bytes),
        }
    }

    /// What AUTH and CONFIG GET see; `port` is the port actually bound.
    pub fn view(&self, port: u16) -> ConfigView {
        let accepted = |name: &str| {
            let default = accepted(name).map_or("", |(_, d)| d);
            self.accepted
                .get(name)
                .map_or(default, String::as_str)
                .to_string()
        };
        let mut params = vec![
            // What redis-benchmark asks at start: no RDB, AOF on.
            ("save", accepted("save")),
            ("appendonly", "yes".into()),
            ("appendfsync", self.fsync.name().into()),
            ("port", port.to_string()),
            ("bind", self.bind.clone()),
            ("dir", self.dir.display().to_string()),
            ("databases", self.databases.to_string()),
            ("maxclients", self.maxclients.to_string()),
            ("proto-max-bulk-len", self.max_request_bytes.to_string()),
            (
                "client-query-buffer-limit",
                self.max_query_bytes.to_string(),
            ),
            ("requirepass", self.requirepass.clone().unwrap_or_default()),
            ("timeout", self.timeout_secs.to_string()),
            (
                "client-output-buffer-limit",
                format!(
                    "{} {}",
                    self.output_limit.show(),
                    self.pubsub_limit.show_class("pubsub")
                ),
            ),
            (
                "notify-keyspace-events",
                crate::server::notify::parse_flags(&self.notify_keyspace_events)
                    .map_or_else(|_| String::new(), crate::server::notify::flags_text),
            ),
            ("maxmemory", self.memory.maxmemory.to_string()),
            ("maxmemory-policy", self.memory.policy.name().into()),
            ("maxmemory-samples", self.memory.samples.to_string()),
            ("lfu-log-factor", self.memory.lfu_log_factor.to_string()),
            ("lfu-decay-time", self.memory.lfu_decay_time.to_string()),
            (
                "slowlog-log-slower-than",
                self.slowlog_slower_than_us.to_string(),
            ),
            ("slowlog-max-len", self.slowlog_max_len.to_string()),
            ("enable-debug-command", self.debug_command.name().into()),
            (
                "hash-max-listpack-entries",
                self.encodings.hash_entries.to_string(),
            ),
            (
                "hash-max-listpack-value",
                self.encodings.hash_value.to_string(),
            ),
            (
                "set-max-intset-entries",
                self.encodings.set_intset_entries.to_string(),
            ),
            (
                "zset-max-listpack-entries",
                self.encodings.zset_entries.to_string(),
            ),
            (
                "zset-max-listpack-value",
                self.encodings.zset_value.to_string(),
            ),
            // Their pre-listpack names, which CONFIG GET answers too.
            (
                "hash-max-ziplist-entries",
                self.encodings.hash_entries.to_string(),
            ),
            (
                "hash-max-ziplist-value",
                self.encodings.hash_value.to_string(),
            ),
            (
                "zset-max-ziplist-entries",
                self.encodings.zset_entries.to_string(),
            ),
            (
                "zset-max-ziplist-value",
                self.encodings.zset_value.to_string(),
            ),
        ];
        params.extend(
            ACCEPTED
                .iter()
                .filter(|(name, _)| *name != "save")
                .map(|&(name, _)| (name, accepted(name))),
        );
        ConfigView {
            requirepass: self.requirepass.clone(),
            params,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Run with this configuration.
    Run(Box<Config>),
    /// Print [`HELP`] and exit 0.
    Help,
}

/// A bad command line or config file, with a message naming the culprit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The `--help` text.
pub const HELP: &str = "\
matou-kv: a durable key-value server speaking RESP2 and RESP3 (Redis clients work).

USAGE:
    matou-kv [FLAGS]
    matou-kv check-log FILE

FLAGS (each also accepts --flag=value):
    --port N               TCP port to listen on [default: 6379]
    --bind ADDR            IP address to listen on [default: 127.0.0.1]
    --dir PATH             data directory, created if missing; holds the
                           append-only log appendonly.mlog [default: ./matou-kv-data]
    --fsync POLICY         when the log is fsynced [default: always]
                             always:   before any write is acknowledged (one
                                       fsync per batch of writes: group commit)
                             everysec: once a second; a machine crash may lose
                                       the last second of writes
                             no:       left to the operating system
    --workers N            worker threads besides the main one, each serving
                           clients [default: 0 below 4 CPUs, else 3/4 of
                           the CPUs - 1]
    --requirepass PW       clients must send AUTH PW before any other command;
                           to keep it off the command line (visible to every
                           local user in ps), put `requirepass PW` in the
                           --config file or set MATOU_KV_REQUIREPASS=PW
    --maxclients N         connections served at once; more are refused [default: 10000]
    --max-request-bytes N  longest argument of a request [default: 536870912]
    --max-args N           most arguments in one request [default: 1048576]
    --max-query-bytes N    most bytes buffered for one incomplete request; a
                           bigger request gets an error and the connection is
                           closed [default: 1073741824]
    --databases N          numbered databases, SELECT 0 to N-1 [default: 16]
    --client-output-buffer-limit 'normal HARD SOFT SECS'
                           disconnect a client whose one unsent reply is over
                           HARD bytes, or over SOFT bytes for SECS seconds (0:
                           no limit; kb/mb/gb suffixes). Replies are produced
                           and written in rounds of about 1 MiB, and requests
                           are not read while a round is unsent, so a client
                           that never reads holds about one round of memory
                           whatever the limit [default: normal 1gb 256mb 60];
                           'pubsub HARD SOFT SECS' (also after the normal
                           class's words) disconnects a subscriber whose
                           unread messages are over HARD bytes, or over SOFT
                           bytes for SECS seconds [default: pubsub 32mb 8mb 60]
    --notify-keyspace-events CLASSES
                           keyspace notifications, Redis's letters: K
                           (__keyspace@db__), E (__keyevent@db__), and the
                           classes g $ l s h z x e t m d n, A for g$lshzxetd
                           [default: none]
    --timeout SECS         close a connection idle for SECS seconds (0: never)
                           [default: 0]
    --auth-max-failures N  close a connection after N wrong passwords, counted
                           per connection and per client address over the
                           last minute; after the third, each wrong answer
                           comes 100 ms later than the last (a right password
                           is never delayed) [default: 10]
    --maxmemory BYTES      memory limit of the data (keys, values and their
                           bookkeeping; kb/mb/gb suffixes; 0: none) [default: 0]
    --maxmemory-policy P   what happens over it: noeviction (writes that add
                           data get -OOM), allkeys-lru, allkeys-lfu,
                           allkeys-random, volatile-lru, volatile-lfu,
                           volatile-random, volatile-ttl [default: noeviction]
    --maxmemory-samples N  keys sampled per eviction, per database [default: 5]
    --lfu-log-factor N     LFU counter's logarithm factor [default: 10]
    --lfu-decay-time MIN   minutes per LFU counter decrement [default: 1]
    --hash-max-listpack-entries N, --hash-max-listpack-value N,
    --set-max-intset-entries N, --zset-max-listpack-entries N,
    --zset-max-listpack-value N
                           the thresholds OBJECT ENCODING reports (Redis's
                           defaults: 128, 64, 512, 128, 64; the ziplist
                           names are accepted in a config file)
    --slowlog-log-slower-than US
                           log commands taking at least US microseconds in
                           SLOWLOG (0: all, negative: none) [default: 10000]
    --slowlog-max-len N    slow log entries kept [default: 128]
    --enable-debug-command no|yes|local
                           who may run DEBUG (local: loopback clients only)
                           [default: no]
    --appendonly yes       accepted for redis.conf compatibility: the log is
                           always kept (`no` is refused)
    --config FILE          read `name value` lines first (redis.conf style; the
                           names are the flags' without `--`, or appendfsync,
                           proto-max-bulk-len and client-query-buffer-limit);
                           the flags override the file
    --repair-log           if the log is damaged (anything but a torn tail),
                           keep it as appendonly.mlog.damaged-<time>, load
                           every intact record (resynchronising past the
                           damage), write a clean log and print what was lost
                           (a log of another format version is never repaired)
    -h, --help             print this help and exit

    matou-kv check-log FILE
                           report on a log (intact records, damage offsets,
                           bytes after them) without changing it; exit status
                           0 if valid, 1 if damaged (the server would refuse
                           it), 3 if only a torn tail (the server cuts it)

ENVIRONMENT:
    MATOU_KV_REQUIREPASS   the password, as --requirepass (which overrides it);
                           it overrides the config file's requirepass

On start the log is replayed; a torn tail (an append cut short by a crash)
is reported and cut. Any other damage, or a file that is not a matou-kv log,
stops the start with the file left unchanged: see --repair-log and check-log.
One server per data directory: a second one on the same --dir exits at once.
SIGINT, SIGTERM or the SHUTDOWN command stop the server gracefully.
Exit status: 0 on a clean stop, 1 on a failure, 2 for bad flags.
";

/// Parses the arguments (without the program name).
///
/// # Errors
/// A message naming the bad flag, value or config file line.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, ConfigError> {
    let env_pass = std::env::var(REQUIREPASS_ENV).ok();
    parse_with_env(args, env_pass)
}

/// The environment variable that may hold `requirepass`.
pub const REQUIREPASS_ENV: &str = "MATOU_KV_REQUIREPASS";

/// [`parse`] with the value of [`REQUIREPASS_ENV`] given (`None`: unset).
/// Precedence: defaults, the file, the environment, the flags.
///
/// # Errors
/// As [`parse`].
pub fn parse_with_env<I: IntoIterator<Item = String>>(
    args: I,
    env_pass: Option<String>,
) -> Result<Parsed, ConfigError> {
    let mut repair_log = false;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut file: Option<String> = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        // The one flag without a value.
        if arg == "--repair-log" {
            repair_log = true;
            continue;
        }
        let Some(flag) = arg.strip_prefix("--").filter(|f| !f.is_empty()) else {
            return Err(ConfigError(format!(
                "unexpected argument `{arg}` (see --help)"
            )));
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let v = it
                    .next()
                    .ok_or_else(|| ConfigError(format!("--{flag} needs a value (see --help)")))?;
                (flag.to_string(), v)
            }
        };
        if name == "config" {
            file = Some(value);
        } else {
            // Check the name now, so that a typo is reported as a flag.
            if !FLAGS.contains(&name.as_str()) {
                return Err(ConfigError(format!("unknown flag --{name} (see --help)")));
            }
            pairs.push((name, value));
        }
    }
    let mut config = Config::default();
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("cannot read config file {path}: {e}")))?;
        apply_file(&mut config, &text).map_err(|e| ConfigError(format!("{path}:{e}")))?;
        config.config_file = Some(PathBuf::from(path));
    }
    if let Some(pw) = env_pass {
        apply(&mut config, "requirepass", &pw).expect("requirepass takes any value");
    }
    config.repair_log = repair_log;
    for (name, value) in pairs {
        apply(&mut config, &name, &value).map_err(|e| ConfigError(format!("--{name}: {e}")))?;
    }
    Ok(Parsed::Run(Box::new(config)))
}

/// The flag names (also the config file names).
const FLAGS: &[&str] = &[
    "appendonly",
    "port",
    "bind",
    "dir",
    "fsync",
    "workers",
    "requirepass",
    "maxclients",
    "max-request-bytes",
    "max-args",
    "max-query-bytes",
    "databases",
    "client-output-buffer-limit",
    "notify-keyspace-events",
    "timeout",
    "auth-max-failures",
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "lfu-log-factor",
    "lfu-decay-time",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "enable-debug-command",
];

/// Whether `name` is a setting (a flag or an [`ACCEPTED`] one).
fn known(name: &str) -> bool {
    FLAGS.contains(&name) || accepted(name).is_some()
}

/// Applies the lines of a config file; errors start with the line number.
fn apply_file(config: &mut Config, text: &str) -> Result<(), String> {
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words =
            resp::split_inline(line.as_bytes()).ok_or_else(|| format!("{n}: unbalanced quotes"))?;
        let words: Vec<String> = words
            .into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect();
        let joined;
        let (name, value) = match words.as_slice() {
            [name, value] => (name, value),
            // The one option whose value is several words.
            [name, rest @ ..] if name.eq_ignore_ascii_case("client-output-buffer-limit") => {
                joined = rest.join(" ");
                (name, &joined)
            }
            _ => return Err(format!("{n}: expected `name value`, got `{line}`")),
        };
        let name = name.to_ascii_lowercase();
        let name = file_alias(&name);
        if !known(name) {
            return Err(format!("{n}: unknown option `{name}`"));
        }
        apply(config, name, value).map_err(|e| format!("{n}: {name}: {e}"))?;
    }
    Ok(())
}

/// The flag a config-file (redis.conf) name stands for.
fn file_alias(name: &str) -> &str {
    match name {
        "appendfsync" => "fsync",
        "proto-max-bulk-len" => "max-request-bytes",
        "client-query-buffer-limit" => "max-query-bytes",
        // Redis 7 still accepts the names from before listpacks.
        "hash-max-ziplist-entries" => "hash-max-listpack-entries",
        "hash-max-ziplist-value" => "hash-max-listpack-value",
        "zset-max-ziplist-entries" => "zset-max-listpack-entries",
        "zset-max-ziplist-value" => "zset-max-listpack-value",
        other => other,
    }
}

impl Config {
    /// Sets one option by its config-file name (lowercase; the file's
    /// aliases such as `appendfsync` accepted), with the file's checks:
    /// what CONFIG SET validates a value with.
    ///
    /// # Errors
    /// An unknown option or a bad value, said in words.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let name = file_alias(name);
        if !known(name) {
            return Err(format!("unknown option `{name}`"));
        }
        apply(self, name, value)
    }
}

fn number<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("invalid value `{value}`: expected {what}"))
}

fn at_least_one(value: &str) -> Result<usize, String> {
    match number::<usize>(value, "a positive number")? {
        0 => Err(format!("invalid value `{value}`: must be at least 1")),
        n => Ok(n),
    }
}

/// Sets one option; `name` is a flag name without `--`.
fn apply(c: &mut Config, name: &str, value: &str) -> Result<(), String> {
    match name {
        "port" => c.port = number(value, "a port number (0-65535)")?,
        "bind" => {
            value
                .parse::<std::net::IpAddr>()
                .map_err(|_| format!("invalid value `{value}`: expected an IP address"))?;
            c.bind = value.to_string();
        }
        "dir" => {
            if value.is_empty() {
                return Err("the data directory cannot be empty".into());
            }
            c.dir = PathBuf::from(value);
        }
        "fsync" => {
            c.fsync = Fsync::parse(value).ok_or_else(|| {
                format!("invalid value `{value}`: expected always, everysec or no")
            })?;
        }
        "workers" => c.workers = number(value, "a number of threads")?,
        "requirepass" => c.requirepass = (!value.is_empty()).then(|| value.to_string()),
        "maxclients" => c.maxclients = at_least_one(value)?,
        // A request must at least carry a command name.
        "max-request-bytes" => c.max_request_bytes = at_least_one(value)?,
        "max-args" => c.max_args = at_least_one(value)?,
        "max-query-bytes" => c.max_query_bytes = at_least_one(value)?,
        "databases" => c.databases = at_least_one(value)?,
        "client-output-buffer-limit" => {
            (c.output_limit, c.pubsub_limit) =
                parse_output_limits(value, c.output_limit, c.pubsub_limit)?;
        }
        "notify-keyspace-events" => {
            crate::server::notify::parse_flags(value)?;
            c.notify_keyspace_events = value.to_string();
        }
        "timeout" => c.timeout_secs = number(value, "a number of seconds")?,
        "auth-max-failures" => {
            c.auth_max_failures = u32::try_from(at_least_one(value)?)
                .map_err(|_| format!("invalid value `{value}`: too large"))?;
        }
        "maxmemory" => c.memory.maxmemory = size(value)? as u64,
        "maxmemory-policy" => c.memory.policy = Policy::parse(value)?,
        "maxmemory-samples" => {
            c.memory.samples = u32::try_from(at_least_one(value)?)
                .map_err(|_| format!("invalid value `{value}`: too large"))?;
        }
        "lfu-log-factor" => c.memory.lfu_log_factor = number(value, "a number")?,
        "lfu-decay-time" => c.memory.lfu_decay_time = number(value, "a number of minutes")?,
        "hash-max-listpack-entries" => c.encodings.hash_entries = number(value, "a number")?,
        "hash-max-listpack-value" => c.encodings.hash_value = number(value, "a number")?,
        "set-max-intset-entries" => c.encodings.set_intset_entries = number(value, "a number")?,
        "zset-max-listpack-entries" => c.encodings.zset_entries = number(value, "a number")?,
        "zset-max-listpack-value" => c.encodings.zset_value = number(value, "a number")?,
        // The log is matou-kv's only persistence: always on.
        "appendonly" => match value {
            "yes" => {}
            "no" => return Err("matou-kv always keeps its log: appendonly stays yes".into()),
            other => return Err(format!("invalid value `{other}`: expected yes or no")),
        },
        "slowlog-log-slower-than" => {
            c.slowlog_slower_than_us = number(value, "a number of microseconds")?;
        }
        "slowlog-max-len" => c.slowlog_max_len = number(value, "a number of entries")?,
        "enable-debug-command" => c.debug_command = DebugCommand::parse(value)?,
        other => {
            let Some((name, default)) = accepted(other) else {
                return Err(format!("unknown option `{other}`"));
            };
            check_accepted(default, value)?;
            let value = match name {
                "latency-tracking-info-percentiles" => percentiles(value)?
                    .iter()
                    .map(f64::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => value.to_string(),
            };
            // One setting under two names (Redis 7's alias).
            match name {
                "lua-time-limit" => drop(c.accepted.insert("busy-reply-threshold", value.clone())),
                "busy-reply-threshold" => drop(c.accepted.insert("lua-time-limit", value.clone())),
                _ => {}
            }
            c.accepted.insert(name, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::config_get_reply;
    use crate::resp::Reply;

    #[test]
    fn output_limit_timeout_and_auth_failures() {
        let c = run("--timeout 5 --auth-max-failures 3");
        assert_eq!((c.timeout_secs, c.auth_max_failures), (5, 3));
        assert_eq!(c.output_limit, DEFAULT_OUTPUT_LIMIT);
        let c = match parse(vec![
            "--client-output-buffer-limit".to_string(),
            "normal 64mb 16kb 10".to_string(),
        ]) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            c.output_limit,
            OutputLimit {
                hard: 64 << 20,
                soft: 16 << 10,
                soft_secs: 10
            }
        );
        let mut file = Config::default();
        apply_file(
            &mut file,
            "client-output-buffer-limit normal 0 0 0\ntimeout 7\n",
        )
        .unwrap();
        assert_eq!(file.output_limit.hard, 0);
        assert_eq!(file.timeout_secs, 7);
        assert!(OutputLimit::parse("normal 1 2").is_err());
        let (normal, pubsub) = parse_output_limits(
            "pubsub 1mb 512kb 9 normal 0 0 0",
            DEFAULT_OUTPUT_LIMIT,
            DEFAULT_PUBSUB_LIMIT,
        )
        .unwrap();
        assert_eq!((normal.hard, normal.soft_secs), (0, 0));
        assert_eq!(
            (pubsub.hard, pubsub.soft, pubsub.soft_secs),
            (1 << 20, 512 << 10, 9)
        );
        let (normal, pubsub) =
            parse_output_limits("1 2 3", DEFAULT_OUTPUT_LIMIT, DEFAULT_PUBSUB_LIMIT).unwrap();
        assert_eq!((normal.hard, pubsub), (1, DEFAULT_PUBSUB_LIMIT));
        assert!(parse_output_limits("replica 1 2 3", normal, pubsub).is_err());
        assert!(parse_output_limits("pubsub 1 2", normal, pubsub).is_err());
        let mut c = Config::default();
        assert!(c.set("notify-keyspace-events", "KEq").is_err());
        c.set("notify-keyspace-events", "KEA").unwrap();
        c.set("client-output-buffer-limit", "normal 1 2 3").unwrap();
        let view = c.view(1);
        let shown = |n: &str| view.params.iter().find(|(k, _)| *k == n).unwrap().1.clone();
        assert_eq!(shown("notify-keyspace-events"), "AKE");
        assert_eq!(
            shown("client-output-buffer-limit"),
            "normal 1 2 3 pubsub 33554432 8388608 60"
        );
        assert!(OutputLimit::parse("1xb 2 3").is_err());
    }

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn run(s: &str) -> Config {
        match parse(args(s)) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn error(s: &str) -> String {
        parse(args(s)).unwrap_err().0
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = run("");
        assert_eq!(c.port, 6379);
        assert_eq!(c.bind, "127.0.0.1");
        assert_eq!(c.dir, PathBuf::from("./matou-kv-data"));
        assert_eq!(c.fsync, Fsync::Always);
        assert_eq!(c.requirepass, None);
        assert_eq!(
            c.workers,
            default_workers(std::thread::available_parallelism().map_or(1, |n| n.get()))
        );
        let by_cpus: Vec<usize> = [1, 2, 3, 4, 8, 16].map(default_workers).to_vec();
        assert_eq!(by_cpus, [0, 0, 0, 2, 5, 11]);
        assert_eq!(c.limits(), Limits::default());
    }

    #[test]
    fn every_flag_in_both_spellings() {
        let c = run(
            "--port 7000 --bind=::1 --dir /tmp/x --fsync=everysec --workers 3 \
                     --requirepass pw --maxclients 5 --max-request-bytes 1000 --max-args=9",
        );
        assert_eq!(c.port, 7000);
        assert_eq!(c.bind, "::1");
        assert_eq!(c.dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.fsync, Fsync::EverySec);
        assert_eq!(c.workers, 3);
        assert_eq!(c.requirepass.as_deref(), Some("pw"));
        assert_eq!(c.maxclients, 5);
        assert_eq!(
            c.limits(),
            Limits {
                max_bulk: 1000,
                max_args: 9,
                max_inline: 1000
            }
        );
        assert_eq!(parse(args("--port 1 --help")), Ok(Parsed::Help));
        assert_eq!(parse(args("-h")), Ok(Parsed::Help));
    }

    #[test]
    fn bad_flags_are_named() {
        assert_eq!(
            error("--port x"),
            "--port: invalid value `x`: expected a port number (0-65535)"
        );
        assert_eq!(
            error("--port 70000"),
            "--port: invalid value `70000`: expected a port number (0-65535)"
        );
        assert_eq!(
            error("--fsync sometimes"),
            "--fsync: invalid value `sometimes`: expected always, everysec or no"
        );
        assert_eq!(
            error("--bind localhost"),
            "--bind: invalid value `localhost`: expected an IP address"
        );
        assert_eq!(
            error("--maxclients 0"),
            "--maxclients: invalid value `0`: must be at least 1"
        );
        assert_eq!(error("--nope 1"), "unknown flag --nope (see --help)");
        assert_eq!(error("--port"), "--port needs a value (see --help)");
        assert_eq!(error("6379"), "unexpected argument `6379` (see --help)");
        assert_eq!(error("--"), "unexpected argument `--` (see --help)");
        assert!(error("--config /nonexistent/matou.conf").starts_with("cannot read config file"));
    }

    #[test]
    fn the_file_comes_first_and_flags_override_it() {
        let path = std::env::temp_dir().join(format!("matou-kv-conf-{}", std::process::id()));
        std::fs::write(
            &path,
            "# a comment\n\nport 7001\nappendfsync everysec\nMAXCLIENTS 5\n\
             requirepass \"two words\"\nproto-max-bulk-len 4096\n",
        )
        .unwrap();
        let p = path.display().to_string();
        let c = match parse(vec![
            "--port".into(),
            "7002".into(),
            "--config".into(),
            p.clone(),
        ]) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.port, 7002, "the flag wins although it comes first");
        assert_eq!(c.fsync, Fsync::EverySec);
        assert_eq!(c.maxclients, 5);
        assert_eq!(c.requirepass.as_deref(), Some("two words"));
        assert_eq!(c.max_request_bytes, 4096);
        std::fs::write(&path, "port 1\nbogus 2\n").unwrap();
        assert_eq!(
            parse(vec!["--config".into(), p.clone()]).unwrap_err().0,
            format!("{p}:2: unknown option `bogus`")
        );
        std::fs::write(&path, "port\n").unwrap();
        assert_eq!(
            parse(vec!["--config".into(), p.clone()]).unwrap_err().0,
            format!("{p}:1: expected `name value`, got `port`")
        );
        std::fs::write(&path, "fsync maybe\n").unwrap();
        assert!(parse(vec!["--config".into(), p.clone()])
            .unwrap_err()
            .0
            .starts_with(&format!("{p}:1: fsync: invalid value")));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_view_answers_what_redis_benchmark_asks() {
        let v = run("--fsync no").view(6380);
        let r = config_get_reply(&v.params, &[b"save".to_vec(), b"appendonly".to_vec()]);
        assert_eq!(
            r.to_bytes(),
            Reply::Array(vec![
                Reply::bulk("save"),
                Reply::bulk(""),
                Reply::bulk("appendonly"),
                Reply::bulk("yes"),
            ])
            .to_bytes()
        );
        let r = config_get_reply(&v.params, &[b"port".to_vec(), b"appendfsync".to_vec()]);
        assert_eq!(
            r.to_bytes(),
            Reply::Array(vec![
                Reply::bulk("appendfsync"),
                Reply::bulk("no"),
                Reply::bulk("port"),
                Reply::bulk("6380"),
            ])
            .to_bytes()
        );
    }

    #[test]
    fn requirepass_from_the_environment_and_repair_log() {
        let env = |a: &str, pw: Option<&str>| match parse_with_env(args(a), pw.map(String::from)) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            env("", Some("secret")).requirepass.as_deref(),
            Some("secret")
        );
        assert_eq!(
            env("--requirepass flag", Some("secret"))
                .requirepass
                .as_deref(),
            Some("flag"),
            "the flag overrides the environment"
        );
        assert_eq!(env("", None).requirepass, None);
        assert!(!env("--port 1", None).repair_log);
        let c = env("--repair-log --port 7", None);
        assert!(c.repair_log && c.port == 7, "--repair-log takes no value");
        assert!(HELP.contains(REQUIREPASS_ENV) && HELP.contains("check-log"));
    }

    #[test]
    fn help_mentions_every_flag() {
        for f in FLAGS.iter().chain(&["config", "help", "repair-log"]) {
            assert!(
                HELP.contains(&format!("--{f}")),
                "--{f} missing from --help"
            );
        }
    }
}
