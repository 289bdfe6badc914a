//! Runs the operations commands ([`Ops`]) against the server's state: the
//! registry of live connections (CLIENT LIST / INFO / KILL / NO-EVICT) and
//! the live settings (CONFIG SET).
//!
//! # Live settings
//! [`Live`] owns the settings that may change while the server runs and
//! publishes each where the hot path reads it without a lock (`timeout`,
//! `maxclients`, `client-output-buffer-limit` as atomics; `requirepass`
//! and what CONFIG GET lists in the [`ConfigView`] behind a `RwLock`,
//! read by connection commands only). Invariants:
//! - CONFIG SET is all or nothing: every pair is checked on a copy of the
//!   current configuration (with the config file's own checks,
//!   `Config::set`) and nothing is published unless all pass.
//! - Protected settings (`dir`) are refused as Redis refuses them with
//!   `enable-protected-configs no`; the ones this server fixes at start
//!   (the port, the workers, the databases...) are
//!   refused as immutable, never accepted and ignored. `appendfsync`
//!   changes live: the storage task, the log's owner, takes it up from an
//!   atomic before its next batch or tick (`Aof::set_policy`).
//! - Connections already authenticated stay so when `requirepass`
//!   changes (as in Redis); new ones need the new password.

use super::memory::Memory;
use super::notify::Notifier;
use super::pubsub::LiveLimit;
use super::registry::Entry;
use super::Shared;
use crate::aof::Fsync;
use crate::command::ops::{set_failed, Debug, Ops, ReplyMode};
use crate::command::{ConfigView, Session};
use crate::config::{Config, OutputLimit, ACCEPTED};
use crate::resp::Reply;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

/// Settings CONFIG SET may change, with their effect (and, without any,
/// every one of `config::ACCEPTED`).
const MUTABLE: &[&str] = &[
    "timeout",
    "maxclients",
    "requirepass",
    "client-output-buffer-limit",
    "notify-keyspace-events",
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "set-max-intset-entries",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    // Their pre-listpack aliases.
    "hash-max-ziplist-entries",
    "hash-max-ziplist-value",
    "zset-max-ziplist-entries",
    "zset-max-ziplist-value",
    "maxmemory",
    "maxmemory-policy",
    "maxmemory-samples",
    "lfu-log-factor",
    "lfu-decay-time",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "appendfsync",
    "appendonly",
];

/// The fsync policy CONFIG SET asks for, as a number (`fsync_code`); the
/// storage task, the log's owner, applies it (`storage::Storage::tick`
/// and each batch).
pub(super) type FsyncCell = Arc<std::sync::atomic::AtomicU8>;

/// `Fsync` as a number, for an [`FsyncCell`].
pub(super) fn fsync_code(f: Fsync) -> u8 {
    match f {
        Fsync::Always => 0,
        Fsync::EverySec => 1,
        Fsync::No => 2,
    }
}

/// The `Fsync` of an [`FsyncCell`]'s number.
pub(super) fn fsync_of(code: u8) -> Fsync {
    match code {
        0 => Fsync::Always,
        1 => Fsync::EverySec,
        _ => Fsync::No,
    }
}

/// Whether CONFIG SET may change `name`.
fn mutable(name: &str) -> bool {
    MUTABLE.contains(&name) || ACCEPTED.iter().any(|(n, _)| *n == name)
}
/// Settings Redis protects (`enable-protected-configs no`): refused.
const PROTECTED: &[&str] = &["dir", "dbfilename"];

/// The live settings (see the module docs).
pub(super) struct Live {
    timeout_secs: AtomicU64,
    maxclients: AtomicUsize,
    out_hard: AtomicUsize,
    out_soft: AtomicUsize,
    out_soft_secs: AtomicU64,
    slowlog_slower_than_us: AtomicI64,
    slowlog_max_len: AtomicUsize,
    /// Where maxmemory and its policy take effect (the storage task reads
    /// them there).
    memory: Arc<Memory>,
    /// `appendfsync`, for the storage task.
    fsync: FsyncCell,
    view: RwLock<ConfigView>,
    /// The configuration now in force; held while a CONFIG SET checks and
    /// publishes, so two of them do not interleave.
    config: Mutex<Config>,
    port: u16,
    /// `client-output-buffer-limit pubsub`, read by every mailbox.
    pubsub_limit: Arc<LiveLimit>,
    /// `notify-keyspace-events`.
    notifier: Arc<Notifier>,
}

impl Live {
    /// The settings of `config`, served on `port`; the memory settings
    /// are published in `memory`, the pubsub output limit in
    /// `pubsub_limit`, `notify-keyspace-events` in `notifier`.
    pub(super) fn new(
        config: &Config,
        port: u16,
        memory: Arc<Memory>,
        pubsub_limit: Arc<LiveLimit>,
        notifier: Arc<Notifier>,
    ) -> Live {
        let live = Live {
            timeout_secs: AtomicU64::new(0),
            maxclients: AtomicUsize::new(0),
            out_hard: AtomicUsize::new(0),
            out_soft: AtomicUsize::new(0),
            out_soft_secs: AtomicU64::new(0),
            slowlog_slower_than_us: AtomicI64::new(0),
            slowlog_max_len: AtomicUsize::new(0),
            memory,
            fsync: Arc::new(std::sync::atomic::AtomicU8::new(fsync_code(config.fsync))),
            view: RwLock::new(config.view(port)),
            config: Mutex::new(config.clone()),
            port,
            pubsub_limit,
            notifier,
        };
        live.publish(config);
        live
    }

    fn publish(&self, c: &Config) {
        self.timeout_secs.store(c.timeout_secs, Ordering::Relaxed);
        self.maxclients.store(c.maxclients, Ordering::Relaxed);
        self.out_hard.store(c.output_limit.hard, Ordering::Relaxed);
        self.out_soft.store(c.output_limit.soft, Ordering::Relaxed);
        self.out_soft_secs
            .store(c.output_limit.soft_secs, Ordering::Relaxed);
        crate::store::set_thresholds(c.encodings);
        self.pubsub_limit.set(c.pubsub_limit);
        // Checked by `Config::set` before it got here.
        if let Err(e) = self.notifier.set(&c.notify_keyspace_events) {
            eprintln!("matou-kv: notify-keyspace-events: {e}");
        }
        self.slowlog_slower_than_us
            .store(c.slowlog_slower_than_us, Ordering::Relaxed);
        self.slowlog_max_len
            .store(c.slowlog_max_len, Ordering::Relaxed);
        self.fsync.store(fsync_code(c.fsync), Ordering::Relaxed);
        if let Some(ms) = c.accepted.get("busy-reply-threshold") {
            crate::script::set_busy_threshold_ms(ms.parse().unwrap_or(5000));
        }
        let m = c.memory;
        self.memory.set_maxmemory(m.maxmemory);
        self.memory.set_policy(m.policy);
        self.memory.set_samples(m.samples);
        self.memory.set_lfu_log_factor(m.lfu_log_factor);
        self.memory.set_lfu_decay_time(m.lfu_decay_time);
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = c.view(self.port);
    }

    /// `timeout`: seconds idle before a connection is closed (0: never).
    pub(super) fn timeout_secs(&self) -> u64 {
        self.timeout_secs.load(Ordering::Relaxed)
    }

    /// `maxclients`.
    pub(super) fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    /// `client-output-buffer-limit normal`.
    pub(super) fn output_limit(&self) -> OutputLimit {
        OutputLimit {
            hard: self.out_hard.load(Ordering::Relaxed),
            soft: self.out_soft.load(Ordering::Relaxed),
            soft_secs: self.out_soft_secs.load(Ordering::Relaxed),
        }
    }

    /// `client-output-buffer-limit pubsub`, as mailboxes read it.
    pub(super) fn pubsub_limit(&self) -> Arc<LiveLimit> {
        self.pubsub_limit.clone()
    }

    /// `slowlog-log-slower-than` in microseconds (negative: log nothing).
    pub(super) fn slowlog_slower_than_us(&self) -> i64 {
        self.slowlog_slower_than_us.load(Ordering::Relaxed)
    }

    /// `slowlog-max-len`.
    pub(super) fn slowlog_max_len(&self) -> usize {
        self.slowlog_max_len.load(Ordering::Relaxed)
    }

    /// The cell the storage task reads `appendfsync` from.
    pub(super) fn fsync_cell(&self) -> FsyncCell {
        self.fsync.clone()
    }

    /// What connection commands see (`requirepass`, CONFIG GET).
    pub(super) fn view(&self) -> RwLockReadGuard<'_, ConfigView> {
        self.view.read().unwrap_or_else(|e| e.into_inner())
    }

    /// CONFIG REWRITE: the settings CONFIG SET may change, written into
    /// the config file the server started with.
    fn rewrite(&self) -> Reply {
        let current = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let Some(path) = &current.config_file else {
            return Reply::err("ERR The server is running without a config file");
        };
        let (now, default) = (current.view(self.port), Config::default().view(self.port));
        let value = |params: &[(&'static str, String)], name: &str| {
            params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let settings: Vec<(&str, String, bool)> = MUTABLE
            .iter()
            // An alias is written under its listpack name.
            .filter(|n| !n.contains("ziplist"))
            .copied()
            .chain(ACCEPTED.iter().map(|(n, _)| *n))
            .map(|n| {
                let v = value(&now.params, n);
                let changed = v != value(&default.params, n);
                (n, v, changed)
            })
            .collect();
        match crate::config::rewrite_file(path, &settings) {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::err(format!(
                "ERR Rewriting config file: {e} ({})",
                path.display()
            )),
        }
    }

    /// CONFIG SET: all the pairs or none.
    fn set(&self, pairs: &[(String, String)]) -> Reply {
        let mut current = self.config.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = current.clone();
        for (name, value) in pairs {
            if PROTECTED.contains(&name.as_str()) {
                return set_failed(name, "can't set protected config");
            }
            let mut probe = next.clone();
            if let Err(e) = probe.set(name, value) {
                if e.starts_with("unknown option") {
                    return Reply::err(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                    ));
                }
                return set_failed(name, &e);
            }
            if !mutable(name) {
                return set_failed(name, "can't set immutable config");
            }
            if name == "maxclients" {
                if let Some(limit) = super::open_files_limit() {
                    let fit = limit.saturating_sub(super::RESERVED_FDS);
                    if probe.maxclients > fit {
                        return set_failed(
                            name,
                            &format!(
                                "The operating system is not able to handle the specified \
                                 number of clients ({fit} at most: the open files limit is \
                                 {limit})"
                            ),
                        );
                    }
                }
            }
            next = probe;
        }
        self.publish(&next);
        *current = next;
        Reply::ok()
    }
}

/// Mirrors what CLIENT LIST shows of a session (name, protocol) into its
/// registry entry, after a connection command may have changed it.
pub(super) fn mirror(entry: &Entry, session: &Session) {
    entry
        .resp
        .store(u64::from(session.proto), Ordering::Relaxed);
    let mut name = entry.name.lock().unwrap_or_else(|e| e.into_inner());
    if *name != session.name {
        name.clone_from(&session.name);
    }
}

/// What the connection does after an operations command's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Then {
    Continue,
    /// CLIENT KILL named the caller.
    Close,
    /// MONITOR: serve the lines from now on (`server::monitor`).
    Monitor,
    /// CLIENT REPLY: which replies the connection sends from now on.
    Replies(ReplyMode),
}

/// An operations command's outcome.
pub(super) struct Done {
    pub reply: Reply,
    pub then: Then,
}

/// Runs `op` for the connection whose registry entry is `me`.
pub(super) fn run(op: Ops, me: &Entry, shared: &Shared) -> Done {
    let reply = |reply| Done {
        reply,
        then: Then::Continue,
    };
    match op {
        Ops::ClientList(f) => {
            me.touch("client|list");
            let mut out = String::new();
            for e in shared.registry.snapshot() {
                let shown = f.normal_only != Some(false)
                    && f.ids.as_ref().is_none_or(|ids| ids.contains(&e.id));
                if shown {
                    out.push_str(&e.line(e.id == me.id));
                    out.push('\n');
                }
            }
            reply(Reply::Verbatim("txt", out.into_bytes()))
        }
        Ops::ClientInfo => {
            me.touch("client|info");
            reply(Reply::Verbatim(
                "txt",
                format!("{}\n", me.line(true)).into_bytes(),
            ))
        }
        Ops::ClientKill(f) => {
            let mut killed = 0;
            let mut then = Then::Continue;
            for e in shared.registry.snapshot() {
                let age = e.created.elapsed().as_secs();
                if f.matches(e.id, &e.addr, &e.laddr, age, e.id == me.id) {
                    killed += 1;
                    if e.id == me.id {
                        // Its own handler is running this: it closes after
                        // the reply instead.
                        then = Then::Close;
                    } else {
                        e.kill.trigger();
                    }
                }
            }
            let reply = match (f.old_form, killed) {
                (true, 0) => Reply::err("ERR No such client"),
                (true, _) => Reply::ok(),
                (false, n) => Reply::Integer(n),
            };
            Done { reply, then }
        }
        Ops::ClientUnblock(id, error) => {
            let unblocked = shared
                .registry
                .snapshot()
                .iter()
                .find(|e| e.id == id)
                .is_some_and(|e| e.unblock.trigger(error));
            reply(Reply::Integer(i64::from(unblocked)))
        }
        Ops::ClientNoEvict(on) => {
            me.no_evict.store(on, Ordering::Relaxed);
            reply(Reply::ok())
        }
        Ops::ClientReply(mode) => Done {
            reply: Reply::ok(),
            then: Then::Replies(mode),
        },
        Ops::ClientTracking => reply(Reply::err(
            "ERR CLIENT TRACKING is not supported: matou-kv has no client-side caching",
        )),
        Ops::ConfigSet(pairs) => {
            let r = shared.live.set(&pairs);
            shared.slowlog.trim(shared.live.slowlog_max_len());
            reply(r)
        }
        Ops::ConfigRewrite => reply(shared.live.rewrite()),
        Ops::Monitor => Done {
            reply: Reply::ok(),
            then: Then::Monitor,
        },
        Ops::SlowlogGet(count) => reply(shared.slowlog.get(count)),
        Ops::SlowlogLen => reply(Reply::Integer(shared.slowlog.len() as i64)),
        Ops::SlowlogReset => {
            shared.slowlog.reset();
            reply(Reply::ok())
        }
        Ops::Debug(Debug::SetActiveExpire(on)) => {
            shared.memory.set_active_expire(on);
            reply(Reply::ok())
        }
        Ops::Debug(Debug::ChangeReplId | Debug::Accepted) => reply(Reply::ok()),
        Ops::Debug(Debug::Protocol(r)) => reply(r),
        Ops::Debug(Debug::Help) => reply(crate::command::help_reply("DEBUG")),
        // The handler sends these to the storage task.
        Ops::Storage(_) => reply(Reply::err(
            "ERR this command cannot run here (inside a transaction)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Live {
        let c = Config::default();
        Live::new(
            &c,
            6379,
            Arc::new(Memory::new(c.memory)),
            LiveLimit::new(crate::config::DEFAULT_PUBSUB_LIMIT),
            Arc::new(Notifier::new(super::super::pubsub::Registry::new())),
        )
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn get(l: &Live, name: &str) -> String {
        l.view()
            .params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    #[test]
    fn set_publishes_every_pair() {
        let l = live();
        let r = l.set(&pairs(&[
            ("timeout", "30"),
            ("maxclients", "50"),
            ("requirepass", "pw"),
            ("client-output-buffer-limit", "normal 100mb 10mb 5"),
        ]));
        assert_eq!(r, Reply::ok());
        assert_eq!(l.timeout_secs(), 30);
        assert_eq!(l.maxclients(), 50);
        assert_eq!(l.view().requirepass.as_deref(), Some("pw"));
        assert_eq!(l.output_limit().soft_secs, 5);
        assert_eq!(get(&l, "timeout"), "30");
    }

    #[test]
    fn set_is_all_or_nothing() {
        let l = live();
        let before = l.timeout_secs();
        let r = l.set(&pairs(&[("timeout", "30"), ("maxclients", "zero")]));
        assert!(
            matches!(&r, Reply::Error(m) if m.contains("'maxclients'")),
            "{r:?}"
        );
        assert_eq!(l.timeout_secs(), before);
        let r = l.set(&pairs(&[("timeout", "30"), ("dir", "/tmp")]));
        assert_eq!(r, set_failed("dir", "can't set protected config"));
        assert_eq!(l.timeout_secs(), before);
    }

    #[test]
    fn memory_and_slowlog_settings_take_effect_live() {
        let l = live();
        let r = l.set(&pairs(&[
            ("maxmemory", "10mb"),
            ("maxmemory-policy", "allkeys-lru"),
            ("slowlog-log-slower-than", "-1"),
            ("slowlog-max-len", "5"),
        ]));
        assert_eq!(r, Reply::ok());
        assert_eq!(l.memory.config().maxmemory, 10 << 20);
        assert_eq!(l.memory.config().policy.name(), "allkeys-lru");
        assert_eq!(l.slowlog_slower_than_us(), -1);
        assert_eq!(l.slowlog_max_len(), 5);
        assert_eq!(get(&l, "maxmemory"), (10u64 << 20).to_string());
        assert_eq!(l.set(&pairs(&[("appendfsync", "no")])), Reply::ok());
        assert_eq!(fsync_of(l.fsync_cell().load(Ordering::Relaxed)), Fsync::No);
        assert_eq!(get(&l, "appendfsync"), "no");
    }

    #[test]
    fn accepted_settings_are_stored_and_checked_by_kind() {
        let l = live();
        assert_eq!(get(&l, "hash-max-listpack-entries"), "128");
        assert_eq!(
            l.set(&pairs(&[
                ("hash-max-listpack-entries", "16"),
                ("hz", "100")
            ])),
            Reply::ok()
        );
        assert_eq!(get(&l, "hash-max-listpack-entries"), "16");
        assert_eq!(get(&l, "hz"), "100");
        let r = l.set(&pairs(&[("lazyfree-lazy-expire", "maybe")]));
        assert!(
            matches!(&r, Reply::Error(m) if m.contains("'lazyfree-lazy-expire'")),
            "{r:?}"
        );
        assert!(l.set(&pairs(&[("hz", "fast")])).is_error());
        assert_eq!(get(&l, "hz"), "100");
    }

    #[test]
    fn immutable_and_unknown_are_refused() {
        let l = live();
        assert_eq!(
            l.set(&pairs(&[("port", "1234")])),
            set_failed("port", "can't set immutable config")
        );
        assert_eq!(
            l.set(&pairs(&[("workers", "3")])),
            set_failed("workers", "can't set immutable config")
        );
        assert_eq!(
            l.set(&pairs(&[("enable-debug-command", "yes")])),
            set_failed("enable-debug-command", "can't set immutable config")
        );
        assert_eq!(
            l.set(&pairs(&[("nosuch", "1")])),
            Reply::err("ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'")
        );
    }
}
