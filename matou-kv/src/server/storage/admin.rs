//! The storage task's operations on the store or the log as a whole: SAVE,
//! BGREWRITEAOF, BGSAVE (`bgsave`), LASTSAVE and the DEBUG subcommands that need the data
//! (RELOAD, OBJECT, SLEEP, DIGEST, DIGEST-VALUE).
//!
//! Invariants:
//! - SAVE and DEBUG RELOAD first commit what the batch appended so far,
//!   then rewrite the log synchronously (written, fsynced, renamed over the
//!   old one, directory fsynced: `Aof::rewrite`), so their `+OK` means the
//!   whole state is durable in a log holding nothing else. They refuse
//!   while a background rewrite runs (it would be overwritten) or while
//!   the log refuses writes.
//! - DEBUG RELOAD replaces the store only with what the log reads back
//!   whole (`Aof::read_back`): if the log cannot be read, the store in
//!   memory is kept and the error answered.
//! - A digest depends on the content only: the elements of a hash or set
//!   are combined in an order-independent way (as Redis's `xorDigest`), so
//!   a copy has the digest of its source, and an empty dataset (or a
//!   missing key) digests to 40 zeros.

use super::{misconf, Storage};
use crate::command::ops::StorageOp;
use crate::command::{execute_read, Read};
use crate::databases::Databases;
use crate::resp::Reply;
use crate::store::Value;

/// A 160-bit digest, shown as 40 hex digits.
type Digest = [u64; 3];

const ZERO: Digest = [0; 3];

/// FNV-1a over `bytes` from `seed`, finished with splitmix64 (spreads
/// every input bit over the output).
fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= bytes.len() as u64;
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn digest_of(parts: &[&[u8]]) -> Digest {
    let mut d = ZERO;
    for (i, slot) in d.iter_mut().enumerate() {
        let mut h = i as u64 + 1;
        for p in parts {
            h = hash64(h, p);
        }
        *slot = h;
    }
    d
}

fn xor(a: &mut Digest, b: Digest) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// A sequence's digest: order matters.
fn chain(a: Digest, b: Digest) -> Digest {
    let bytes: Vec<u8> = a.iter().chain(&b).flat_map(|w| w.to_le_bytes()).collect();
    digest_of(&[&bytes])
}

fn value_digest(v: &Value) -> Digest {
    match v {
        Value::Str(s) => digest_of(&[b"string", s]),
        Value::Hash(h) => {
            let mut d = digest_of(&[b"hash"]);
            for (f, val) in h {
                xor(&mut d, digest_of(&[f, val]));
            }
            d
        }
        Value::Set(s) => {
            let mut d = digest_of(&[b"set"]);
            for m in s {
                xor(&mut d, digest_of(&[m]));
            }
            d
        }
        Value::List(l) => l
            .iter()
            .fold(digest_of(&[b"list"]), |d, e| chain(d, digest_of(&[e]))),
        Value::ZSet(z) => {
            let mut d = digest_of(&[b"zset"]);
            for (m, score) in z.iter() {
                xor(&mut d, digest_of(&[m, &score.to_le_bytes()]));
            }
            d
        }
    }
}

fn hex(d: Digest) -> Vec<u8> {
    let mut s: String = d.iter().map(|w| format!("{w:016x}")).collect();
    s.truncate(40);
    s.into_bytes()
}

/// The digest of every database's content (40 zeros when all are empty).
pub(super) fn dataset_digest(dbs: &Databases, now: u64) -> Vec<u8> {
    let mut total = ZERO;
    for (i, store) in dbs.iter() {
        for e in store.iter() {
            if crate::store::is_expired(e.expire_at, now) {
                continue;
            }
            let expiry = e.expire_at.unwrap_or(0).to_le_bytes();
            let kv = chain(
                digest_of(&[&i.to_le_bytes(), e.key, &expiry]),
                value_digest(e.value),
            );
            xor(&mut total, kv);
        }
    }
    hex(total)
}

impl Storage {
    /// Runs `op` in database `db`.
    pub(super) fn admin(&mut self, op: StorageOp, db: usize, now: u64) -> Reply {
        match op {
            StorageOp::Save => self.save(),
            StorageOp::BgSave { schedule } => self.bgsave(schedule),
            StorageOp::BgRewriteAof => {
                if self.rewriting.is_some() {
                    return Reply::err(
                        "ERR Background append only file rewriting already in progress",
                    );
                }
                if let Some(reason) = self.aof.refusal() {
                    return misconf(reason);
                }
                self.start_rewrite();
                if self.rewriting.is_some() {
                    Reply::Simple("Background append only file rewriting started".into())
                } else {
                    Reply::err("ERR Background append only file rewriting failed to start")
                }
            }
            StorageOp::LastSave => Reply::Integer(self.last_save_unix as i64),
            StorageOp::DebugReload => {
                let saved = self.save();
                if saved.is_error() {
                    return saved;
                }
                let mut fresh = Databases::new(self.store.count());
                if let Err(e) = self.aof.read_back(&mut fresh) {
                    return Reply::err(format!("ERR Error trying to load the log: {e}"));
                }
                self.store = fresh;
                for i in 0..self.store.count() {
                    self.versions.touch_all(i, self.store.db(i));
                    self.store.db_mut(i).advance(now);
                }
                self.sync_lfu();
                Reply::ok()
            }
            StorageOp::DebugObject(key) => {
                let store = self.store.db(db);
                let Some(value) = store.value(&key, now) else {
                    return Reply::err("ERR no such key");
                };
                let encoding = match execute_read(&Read::ObjectEncoding(key.clone()), store, now) {
                    Reply::Bulk(e) => String::from_utf8_lossy(&e).into_owned(),
                    _ => "unknown".into(),
                };
                let idle = store.idle_ms(&key, now).unwrap_or(0) / 1000;
                Reply::Simple(
                    format!(
                        "Value at:0x0 refcount:1 encoding:{encoding} serializedlength:{} \
                         lru:0 lru_seconds_idle:{idle}",
                        value.data_len()
                    )
                    .into(),
                )
            }
            StorageOp::DebugSleep(d) => {
                // Blocking on purpose: DEBUG SLEEP stops the data commands
                // of every client, as it stops the whole of Redis.
                std::thread::sleep(d);
                Reply::ok()
            }
            StorageOp::DebugDigest => Reply::Bulk(dataset_digest(&self.store, now)),
            StorageOp::DebugDigestValue(keys) => {
                let store = self.store.db(db);
                Reply::Array(
                    keys.iter()
                        .map(|k| Reply::Bulk(hex(store.value(k, now).map_or(ZERO, value_digest))))
                        .collect(),
                )
            }
        }
    }

    /// SAVE (see the module docs).
    fn save(&mut self) -> Reply {
        if self.rewriting.is_some() {
            return Reply::err("ERR Background append only file rewriting already in progress");
        }
        if let Some(reason) = self.aof.refusal() {
            return misconf(reason);
        }
        // The batch's records so far: durable first, so that the rewrite
        // (which holds their effect) is not followed by them again.
        if let Err(e) = self.aof.commit() {
            self.log_refusal(&e);
            return misconf(self.aof.refusal().unwrap_or("the write failed"));
        }
        match self.aof.rewrite(&self.store) {
            Ok(()) => {
                self.saved();
                Reply::ok()
            }
            Err(e) => Reply::err(format!("ERR Saving the log failed: {e}")),
        }
    }

    /// A save or rewrite completed: LASTSAVE's moment.
    pub(super) fn saved(&mut self) {
        self.last_save_unix = super::now_ms() / 1000;
        self.changes_since_save = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn digests_ignore_element_order_of_hashes_and_sets_but_not_lists() {
        let h1: HashMap<Vec<u8>, Vec<u8>> = (0..50)
            .map(|i| (format!("f{i}").into_bytes(), format!("v{i}").into_bytes()))
            .collect();
        let mut h2 = HashMap::with_capacity(1000);
        let mut pairs: Vec<_> = h1.iter().collect();
        pairs.reverse();
        for (k, v) in pairs {
            h2.insert(k.clone(), v.clone());
        }
        assert_eq!(
            value_digest(&Value::Hash(h1.clone())),
            value_digest(&Value::Hash(h2))
        );
        let s: HashSet<Vec<u8>> = h1.keys().cloned().collect();
        assert_ne!(value_digest(&Value::Set(s)), value_digest(&Value::Hash(h1)));
        let l1 = Value::List([b"a".to_vec(), b"b".to_vec()].into());
        let l2 = Value::List([b"b".to_vec(), b"a".to_vec()].into());
        assert_ne!(value_digest(&l1), value_digest(&l2));
        assert_ne!(
            value_digest(&Value::Str(b"ab".to_vec())),
            value_digest(&Value::Str(b"ba".to_vec()))
        );
        assert_eq!(hex(value_digest(&Value::Str(b"x".to_vec()))).len(), 40);
    }

    #[test]
    fn an_empty_dataset_digests_to_zeros() {
        let dbs = Databases::new(2);
        assert_eq!(dataset_digest(&dbs, 0), vec![b'0'; 40]);
    }
}
