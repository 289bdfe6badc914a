//! Execution of data commands: reads on `&Store`, writes on `&mut Store`
//! returning the one [`LogRecord`] that replays them (see the parent
//! module's docs for the rules that make the record clock-free).

use super::{
    invalid_expire, parse, Command, Cond, Conn, ExpireCond, Expiry, Read, SetReply, Write,
    MAX_STRING, NOT_INTEGER, OVERFLOW, TOO_BIG, TOO_LARGE_FOR_LOG, WRONGTYPE,
};
use crate::aof::MAX_PAYLOAD;
use crate::record::LogRecord;
use crate::resp::{parse_i64, push_int, Reply};
use crate::server::notify::Class;
use crate::store::{Store, Undo};
use std::borrow::Cow;

fn now_i64(now: u64) -> i64 {
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// An upper bound on the bytes [`execute_read`] would produce for `cmd`,
/// computed without building the reply, for the commands whose reply can
/// dwarf their request (MGET names one big key many times: a 0.7 MiB
/// request asking for 10 GB); `0` for the others, whose reply is at most
/// one value or bounded by their own arguments.
pub fn read_reply_bound(cmd: &Read, store: &Store, now: u64) -> usize {
    match cmd {
        Read::MGet(keys) => keys.iter().fold(23, |n, k| {
            n.saturating_add(store.get(k, now).map_or(5, |v| v.len() + 25))
        }),
        _ => 0,
    }
}

/// Runs a read-only command. Expired keys are absent; nothing changes.
pub fn execute_read(cmd: &Read, store: &Store, now: u64) -> Reply {
    if super::types::wrong_type_read(cmd, store, now) {
        return Reply::err(WRONGTYPE);
    }
    match cmd {
        Read::Get(k) => Reply::opt_bulk(store.read(k, now)),
        Read::Strlen(k) => Reply::Integer(store.read(k, now).map_or(0, |v| v.len() as i64)),
        Read::MGet(keys) => Reply::Array(
            keys.iter()
                .map(|k| Reply::opt_bulk(store.read(k, now)))
                .collect(),
        ),
        Read::Exists(keys) => {
            Reply::Integer(keys.iter().filter(|k| store.contains(k, now)).count() as i64)
        }
        Read::Ttl { key, ms } => Reply::Integer(match store.entry(key, now) {
            None => -2,
            Some(e) => match e.expire_at {
                None => -1,
                Some(t) => {
                    let left = t.saturating_sub(now);
                    let left = i64::try_from(left).unwrap_or(i64::MAX);
                    // TTL rounds to the nearest second, as Redis does.
                    if *ms {
                        left
                    } else {
                        left.saturating_add(500) / 1000
                    }
                }
            },
        }),
        Read::Type(k) => Reply::Simple(Cow::Borrowed(
            store.value(k, now).map_or("none", |v| v.type_name()),
        )),
        Read::Keys(pattern) => Reply::Array(
            store
                .keys(pattern, now)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        ),
        Read::Scan {
            cursor,
            pattern,
            count,
            type_name,
        } => {
            let (next, mut keys) = store.scan(*cursor, pattern.as_deref(), *count, now);
            if let Some(t) = type_name {
                keys.retain(|k| {
                    store
                        .value(k, now)
                        .is_some_and(|v| v.type_name().as_bytes().eq_ignore_ascii_case(t))
                });
            }
            Reply::Array(vec![
                Reply::Bulk(next.to_string().into_bytes()),
                Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
            ])
        }
        Read::DbSize => Reply::Integer(store.len() as i64),
        Read::Hash(h) => super::hash::read(h, store, now),
        Read::List(l) => super::list::read(l, store, now),
        Read::Sets(r) => super::set::read(r, store, now),
        Read::ZSets(r) => super::zset::read(r, store, now),
        Read::Dump(key) => super::dump::dump(key, store, now),
        Read::BitFieldRo { key, ops } => super::bitfield::read(key, ops, store, now),
        Read::Sort(s) => super::sort::read(s, store, now),
        Read::Geo(g) => super::geo::read(g, store, now),
        other => super::strings::read(other, store, now),
    }
}

/// The state of one write: the store, the time, and the expired keys it
/// removed on its way (logged as a DEL if nothing else is logged).
pub(super) struct Tx<'a> {
    pub(super) store: &'a mut Store,
    pub(super) now: u64,
    purged: Vec<Vec<u8>>,
}

impl Tx<'_> {
    /// Lazy expiry of `key` (Redis's `lookupKeyWrite`): removes it if it
    /// expired, then returns its live entry's (string value, expiry). A
    /// key of another type gives an empty string: the commands that read
    /// the value refused it with WRONGTYPE before (`types`), the others
    /// only ask whether the key exists.
    pub(super) fn live(&mut self, key: &[u8]) -> Option<(&[u8], Option<u64>)> {
        self.purge(key);
        self.store.touch(key, self.now);
        self.store
            .raw(key)
            .map(|e| (e.value.as_str().unwrap_or_default(), e.expire_at))
    }

    /// Lazy expiry of `key`, logged (see [`live`](Self::live)).
    pub(super) fn purge(&mut self, key: &[u8]) {
        if self.store.purge_expired(key, self.now) {
            self.purged.push(key.to_vec());
        }
    }

    fn has_expiry(&mut self, key: &[u8]) -> Option<Option<u64>> {
        self.live(key).map(|(_, e)| e)
    }

    /// Keyspace event `event` of `class` on `key` after a change, then
    /// `del` if that change removed the key (its last element went), in
    /// Redis's order.
    pub(super) fn notify_change(&mut self, class: Class, event: &'static str, key: &[u8]) {
        self.store.notify(class, event, key);
        if self.store.raw(key).is_none() {
            self.store.notify(Class::GENERIC, "del", key);
        }
    }

    /// Whether an expired key was removed on the way.
    pub(super) fn purged_any(&self) -> bool {
        !self.purged.is_empty()
    }

    /// The outcome of a command that logged `record`: after the DEL of
    /// the expired keys it removed on its way, if any (a replaying store
    /// may still hold them), in one `Multi`.
    pub(super) fn logged(self, reply: Reply, record: LogRecord) -> (Reply, Option<LogRecord>) {
        if self.purged.is_empty() {
            return (reply, Some(record));
        }
        let del = LogRecord::Del { keys: self.purged };
        // A Multi never nests: a command's own (LMOVE's) is joined.
        let records = match record {
            LogRecord::Multi(inner) => std::iter::once(del).chain(inner).collect(),
            record => vec![del, record],
        };
        (reply, Some(LogRecord::Multi(records)))
    }

    /// The outcome when the command itself logged nothing.
    pub(super) fn done(self, reply: Reply) -> (Reply, Option<LogRecord>) {
        let rec = (!self.purged.is_empty()).then_some(LogRecord::Del { keys: self.purged });
        (reply, rec)
    }
}

fn int_bytes(n: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(20);
    push_int(&mut v, n);
    v
}

/// [`execute_write`], after recording in `undo` the prior state of every
/// key the command may change, so that a failed log commit can take it
/// back ([`Undo::rollback`]). The steps are recorded for the database
/// `undo` was last set to ([`Undo::in_db`]): the one `store` is.
pub fn execute_write_journaled(
    cmd: Write,
    store: &mut Store,
    now: u64,
    undo: &mut Undo,
) -> (Reply, Option<LogRecord>) {
    match &cmd {
        Write::Set { key, .. }
        | Write::GetDel(key)
        | Write::IncrBy { key, .. }
        | Write::Expire { key, .. }
        | Write::Persist(key) => undo.save_key(store, key),
        // A live key is appended to in place: its old length undoes it. An
        // expired one is purged and set anew: its entry does.
        Write::Append { key, .. } if store.contains(key, now) => undo.save_len(store, key),
        Write::Append { key, .. } => undo.save_key(store, key),
        Write::Del(keys) => keys.iter().for_each(|k| undo.save_key(store, k)),
        Write::MSet { pairs, .. } => pairs.iter().for_each(|(k, _)| undo.save_key(store, k)),
        Write::Flush | Write::FlushAll if store.is_empty() => {}
        Write::Flush | Write::FlushAll => undo.save_all(store),
        // Refused on one store alone (they need the databases): no change.
        Write::Move { .. } | Write::SwapDb(..) => {}
        Write::Restore { key, .. } | Write::BitField { key, .. } => undo.save_key(store, key),
        Write::Hash(h) => {
            undo.save_fields(store, super::hash::touched(h), super::hash::fields(h), now)
        }
        Write::List(l) => super::list::journal(l, store, now, undo),
        Write::Sort(s) => s.store.iter().for_each(|k| undo.save_key(store, k)),
        Write::Sets(w) => match super::set::members(w) {
            Some((key, members)) => {
                undo.save_members(store, key, members.iter().map(Vec::as_slice), now)
            }
            None => super::set::touched(w)
                .into_iter()
                .for_each(|k| undo.save_key(store, k)),
        },
        Write::ZSets(w) => match super::zset::members(w) {
            Some(members) => {
                undo.save_members(store, super::zset::touched(w)[0], members.into_iter(), now)
            }
            None => super::zset::touched(w)
                .into_iter()
                .for_each(|k| undo.save_key(store, k)),
        },
        other => super::strings::touched(other)
            .into_iter()
            .for_each(|k| undo.save_key(store, k)),
    }
    execute_write(cmd, store, now)
}

/// Runs a write command: the reply and, if the store changed, the record
/// that replays the change on the store as it was before the command.
pub fn execute_write(cmd: Write, store: &mut Store, now: u64) -> (Reply, Option<LogRecord>) {
    // A record must fit a log frame (4 GiB); refuse before changing
    // anything rather than hold a change the log cannot keep.
    if cmd.record_bound() > MAX_PAYLOAD {
        return (Reply::err(TOO_LARGE_FOR_LOG), None);
    }
    if super::types::wrong_type_write(&cmd, store, now) {
        return (Reply::err(WRONGTYPE), None);
    }
    store.advance(now);
    let mut tx = Tx {
        store,
        now,
        purged: Vec::new(),
    };
    match cmd {
        Write::Set {
            key,
            value,
            cond,
            expiry,
            reply,
            name,
        } => {
            // Redis computes the expiry (and fails on overflow) before it
            // looks the key up.
            let at = match expiry {
                Expiry::In(ms) => match now_i64(now).checked_add(ms) {
                    Some(t) => Some(Some(t as u64)),
                    None => return (invalid_expire(name), None),
                },
                Expiry::At(t) => Some(Some(t as u64)),
                Expiry::Clear => Some(None),
                Expiry::Keep => None,
            };
            let old = tx.live(&key).map(|(v, e)| {
                // Copy the old value only if the reply shows it.
                ((reply == SetReply::Old).then(|| v.to_vec()), e)
            });
            let blocked = match cond {
                Some(Cond::Nx) => old.is_some(),
                Some(Cond::Xx) => old.is_none(),
                None => false,
            };
            let old_value = || old.as_ref().and_then(|(v, _)| v.clone());
            if blocked {
                let r = match reply {
                    SetReply::Ok => Reply::Nil,
                    SetReply::Old => Reply::opt_bulk(old_value()),
                    SetReply::Flag => Reply::Integer(0),
                };
                return tx.done(r);
            }
            let expire_at = at.unwrap_or_else(|| old.as_ref().and_then(|(_, e)| *e));
            let r = match reply {
                SetReply::Ok => Reply::ok(),
                SetReply::Old => Reply::opt_bulk(old_value()),
                SetReply::Flag => Reply::Integer(1),
            };
            tx.store.set(&key, value.clone(), expire_at);
            tx.store.notify(Class::STRING, "set", &key);
            if matches!(expiry, Expiry::In(_) | Expiry::At(_)) {
                tx.store.notify(Class::GENERIC, "expire", &key);
            }
            (
                r,
                Some(LogRecord::Set {
                    key,
                    value,
                    expire_at_ms: expire_at,
                }),
            )
        }
        Write::GetDel(key) => match tx.live(&key).map(|(v, _)| v.to_vec()) {
            Some(v) => {
                tx.store.remove(&key);
                tx.store.notify(Class::GENERIC, "del", &key);
                (Reply::Bulk(v), Some(LogRecord::Del { keys: vec![key] }))
            }
            None => tx.done(Reply::Nil),
        },
        Write::Del(keys) => {
            let mut removed = Vec::new();
            let mut live = 0;
            for k in keys {
                let was_live = tx.store.contains(&k, now);
                if tx.store.remove(&k) {
                    if was_live {
                        tx.store.notify(Class::GENERIC, "del", &k);
                    }
                    live += i64::from(was_live);
                    removed.push(k);
                }
            }
            let rec = (!removed.is_empty()).then_some(LogRecord::Del { keys: removed });
            (Reply::Integer(live), rec)
        }
        Write::IncrBy { key, by } => {
            let (cur, expire_at) = match tx.live(&key) {
                None => (0, None),
                Some((v, e)) => match parse_i64(v) {
                    Some(n) => (n, e),
                    None => return tx.done(Reply::err(NOT_INTEGER)),
                },
            };
            let Some(new) = cur.checked_add(by) else {
                return tx.done(Reply::err(OVERFLOW));
            };
            let value = int_bytes(new);
            // INCR keeps the expiry, as Redis's dbReplaceValue does.
            tx.store.set(&key, value.clone(), expire_at);
            tx.store.notify(Class::STRING, "incrby", &key);
            (
                Reply::Integer(new),
                Some(LogRecord::Set {
                    key,
                    value,
                    expire_at_ms: expire_at,
                }),
            )
        }
        Write::Append { key, suffix } => match tx.live(&key).map(|(v, _)| v.len()) {
            Some(len) => {
                if len.saturating_add(suffix.len()) > MAX_STRING {
                    return tx.done(Reply::err(TOO_BIG));
                }
                let n = tx.store.append(&key, &suffix);
                tx.store.notify(Class::STRING, "append", &key);
                (
                    Reply::Integer(n as i64),
                    Some(LogRecord::Append { key, suffix }),
                )
            }
            None => {
                // Logged as a SET: if the key had expired, the replaying
                // store may still hold its old value, and an Append record
                // would append to it.
                let n = suffix.len();
                tx.store.set(&key, suffix.clone(), None);
                tx.store.notify(Class::STRING, "append", &key);
                (
                    Reply::Integer(n as i64),
                    Some(LogRecord::Set {
                        key,
                        value: suffix,
                        expire_at_ms: None,
                    }),
                )
            }
        },
        Write::MSet { pairs, nx } => {
            if nx {
                let mut any = false;
                for (k, _) in &pairs {
                    any |= tx.live(k).is_some();
                }
                if any {
                    return tx.done(Reply::Integer(0));
                }
            }
            for (k, v) in &pairs {
                tx.store.set(k, v.clone(), None);
                tx.store.notify(Class::STRING, "set", k);
            }
            let r = if nx { Reply::Integer(1) } else { Reply::ok() };
            (r, Some(LogRecord::MSet { pairs }))
        }
        Write::Expire {
            key,
            when,
            seconds,
            absolute,
            cond,
            name,
        } => expire(tx, key, when, seconds, absolute, cond, name),
        Write::Persist(key) => match tx.has_expiry(&key) {
            Some(Some(_)) => {
                tx.store.set_expire(&key, None);
                tx.store.notify(Class::GENERIC, "persist", &key);
                (Reply::Integer(1), Some(LogRecord::Persist { key }))
            }
            _ => tx.done(Reply::Integer(0)),
        },
        Write::Move { .. } | Write::SwapDb(..) => (
            Reply::err("ERR this command needs the databases of the server"),
            None,
        ),
        Write::Flush | Write::FlushAll => {
            if tx.store.is_empty() {
                (Reply::ok(), None)
            } else {
                tx.store.clear();
                (Reply::ok(), Some(LogRecord::FlushAll))
            }
        }
        Write::Hash(h) => super::hash::write(h, tx),
        Write::List(l) => super::list::write(l, tx),
        Write::Sets(w) => super::set::write(w, tx),
        Write::Sort(s) => super::sort::write(s, tx),
        Write::ZSets(w) => super::zset::write(w, tx),
        Write::Restore { .. } => super::dump::restore(cmd, tx),
        Write::BitField { key, ops } => super::bitfield::write(key, ops, tx),
        other => super::strings::write(other, tx),
    }
}

/// Redis 7's `expireGenericCommand`.
fn expire(
    mut tx: Tx<'_>,
    key: Vec<u8>,
    when: i64,
    seconds: bool,
    absolute: bool,
    cond: ExpireCond,
    name: &'static str,
) -> (Reply, Option<LogRecord>) {
    let base = if absolute { 0 } else { now_i64(tx.now) };
    let ms = if seconds {
        match when.checked_mul(1000) {
            Some(ms) => ms,
            None => return (invalid_expire(name), None),
        }
    } else {
        when
    };
    // Redis refuses only an overflow past the top; a very negative time is
    // just "in the past".
    if ms > i64::MAX - base {
        return (invalid_expire(name), None);
    }
    let at = ms + base;
    let Some(current) = tx.has_expiry(&key) else {
        return tx.done(Reply::Integer(0));
    };
    let cur = current.map(now_i64);
    let refused = (cond.nx && cur.is_some())
        || (cond.xx && cur.is_none())
        || (cond.gt && cur.is_none_or(|c| at <= c))
        || (cond.lt && cur.is_some_and(|c| at >= c));
    if refused {
        return tx.done(Reply::Integer(0));
    }
    if at <= now_i64(tx.now) {
        // Already in the past: Redis deletes the key (and logs a DEL).
        tx.store.remove(&key);
        tx.store.notify(Class::GENERIC, "del", &key);
        return (Reply::Integer(1), Some(LogRecord::Del { keys: vec![key] }));
    }
    let at = at as u64;
    tx.store.set_expire(&key, Some(at));
    tx.store.notify(Class::GENERIC, "expire", &key);
    (
        Reply::Integer(1),
        Some(LogRecord::PExpireAt { key, at_ms: at }),
    )
}

/// Parses and runs one data command for an authenticated client: the
/// storage task's entry point when it receives raw argument vectors.
/// Connection commands other than PING and ECHO are refused: they belong
/// to the connection (see [`super::Session`]).
pub fn execute(store: &mut Store, args: &[Vec<u8>], now: u64) -> (Reply, Option<LogRecord>) {
    match parse(args, true) {
        Err(e) => (e, None),
        Ok(Command::Read(r)) => (execute_read(&r, store, now), None),
        Ok(Command::Write(w)) => execute_write(w, store, now),
        Ok(Command::Conn(Conn::Ping(None))) => (Reply::Simple(Cow::Borrowed("PONG")), None),
        Ok(Command::Conn(Conn::Ping(Some(m)) | Conn::Echo(m))) => (Reply::Bulk(m), None),
        Ok(Command::Conn(_)) => (
            Reply::err("ERR this command must be handled by the connection"),
            None,
        ),
    }
}
