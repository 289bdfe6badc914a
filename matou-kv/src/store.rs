//! The keyspace: keys to [`Value`]s (strings, hashes, lists, sets), each
//! with an optional absolute expiry time in Unix milliseconds.
//!
//! What it owns and promises:
//! - **Expiry is absolute and compared with a `now` the caller passes**, so
//!   the store reads no clock and the same operations give the same state
//!   whenever they are replayed. A key with `expire_at = t` is live while
//!   `now <= t` and expired once `now > t` (Redis's `keyIsExpired`).
//! - **Lazy expiry is logical on reads**: the read methods (`get`, `entry`,
//!   `keys`, `scan`...) take `&self` and treat an expired key as absent, so
//!   reads can run on a shared reference. Physical removal happens through
//!   [`Store::purge_expired`] (the write path calls it on the keys it
//!   touches, and logs the removal) and [`Store::active_expire`], which
//!   removes the expired keys in expiry order with a bound on the work done
//!   per call. [`Store::len`] counts physically present keys, expired or
//!   not, as Redis's DBSIZE does.
//! - **SCAN is stable**: a key keeps the slot it was created in until it is
//!   removed (overwriting it does not move it), and the cursor is a slot
//!   index. So a full iteration returns every key present for its whole
//!   duration; a key added or removed meanwhile may or may not appear, and
//!   may appear twice only if it was removed and added again. Freed slots
//!   are reused, and trailing free slots are dropped (a cursor past the end
//!   just ends the iteration).
//! - **Snapshots are cheap and owned**: keys are `Arc<[u8]>` and values
//!   `Arc<Value>`, so [`Store::snapshot`] copies pointers, not bytes, and
//!   the snapshot can be serialised on another thread while the store keeps
//!   changing. Changing a value a snapshot still holds copies it first
//!   (`Arc::make_mut`); otherwise values change in place.
//! - **No empty aggregate**: [`Store::update`] deletes a hash, list or set
//!   its change emptied, as Redis does.
//! - **Access times are bookkeeping, not state**: each entry keeps when it
//!   was last read or written (OBJECT IDLETIME), stamped by
//!   [`Store::touch`] through `&self` and by writes with the clock of
//!   [`Store::advance`]; equality, records and snapshots ignore it, so
//!   replay stays exact.
//! - The string accessors ([`Store::get`], [`Store::read`]) see strings
//!   only; a key of another type reads as absent there. The commands that
//!   read a value as a string refuse other types with WRONGTYPE first
//!   (`command::types`), so this only makes MGET's nil for them.

mod evict;
mod undo;
mod value;
pub mod zset;

pub use evict::{Candidate, LfuParams, LFU_INIT_VAL};
pub use undo::Undo;
pub use value::{
    set_thresholds, thresholds, Thresholds, Value, ZSET_MAX_LISTPACK_ENTRIES,
    ZSET_MAX_LISTPACK_VALUE,
};

use crate::glob;
use crate::server::notify::Class;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Whether a key with this expiry is expired at `now` (Unix ms).
pub fn is_expired(expire_at: Option<u64>, now: u64) -> bool {
    expire_at.is_some_and(|t| now > t)
}

/// A key and its value, by reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a Value,
    /// When it expires (Unix ms), if ever.
    pub expire_at: Option<u64>,
}

struct Entry {
    key: Arc<[u8]>,
    value: Arc<Value>,
    expire_at: Option<u64>,
    /// When it was last read or written (Unix ms; 0: not since the store
    /// was loaded), for OBJECT IDLETIME. Atomic so that reads, which hold
    /// `&Store`, can stamp it; not part of the entry's identity (equality,
    /// records and snapshots ignore it).
    accessed: AtomicU64,
    /// The LFU counter and the minute of its last decrement (see
    /// `evict`); bookkeeping like `accessed`.
    lfu: AtomicU32,
    /// The string was changed in place (APPEND, SETRANGE, SETBIT...):
    /// OBJECT ENCODING says `raw` whatever its content, as Redis's
    /// unshared string does until the key is set anew. Not part of the
    /// entry's identity (a reload forgets it, as Redis's does).
    in_place: bool,
}

impl Clone for Entry {
    fn clone(&self) -> Entry {
        Entry {
            key: self.key.clone(),
            value: self.value.clone(),
            expire_at: self.expire_at,
            accessed: AtomicU64::new(self.accessed.load(Ordering::Relaxed)),
            lfu: AtomicU32::new(self.lfu.load(Ordering::Relaxed)),
            in_place: self.in_place,
        }
    }
}

impl Entry {
    fn as_ref(&self) -> EntryRef<'_> {
        EntryRef {
            key: &self.key,
            value: &self.value,
            expire_at: self.expire_at,
        }
    }
}

/// The keyspace (see the module docs).
#[derive(Default)]
pub struct Store {
    /// Key -> slot.
    index: HashMap<Arc<[u8]>, usize>,
    /// The entries; a slot is stable while its key lives (SCAN's cursor).
    slots: Vec<Option<Entry>>,
    /// Free slots below `slots.len()`, to reuse (may hold stale indices,
    /// checked when popped).
    free: Vec<usize>,
    /// (expire_at, slot) of every key with an expiry, soonest first.
    expires: BTreeSet<(u64, usize)>,
    /// Sum of key and value lengths ([`Value::data_len`]; INFO's memory
    /// figure).
    bytes: usize,
    /// The latest `now` of a write ([`Store::advance`]): the access time
    /// [`Store::set`] gives the entries it writes.
    clock: u64,
    /// When the store was loaded ([`Store::advance`]'s first call): the
    /// access time of entries never accessed since.
    loaded_at: u64,
    /// How accesses count in the LFU counters (see `evict`).
    lfu: LfuParams,
    /// LFU increments' and eviction samples' randomness.
    rng: AtomicU64,
    /// Keys that became a list or a sorted set since the last
    /// [`Store::take_ready`]: the blocking commands' wake-up signal
    /// (bookkeeping, not state).
    ready: Vec<Vec<u8>>,
    /// The keyspace event classes recorded ([`Store::set_notify_mask`]);
    /// 0 (the default): none, and [`Store::notify`] costs a test.
    notify_mask: u32,
    /// Events recorded since the last [`Store::take_events`] (bookkeeping,
    /// not state).
    events: Vec<KeyEvent>,
    /// Expired keys reads met ([`Store::read_value`]), for the storage
    /// task to remove; a lock because reads hold `&Store`.
    met_expired: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// A keyspace event a change made (see [`Store::notify`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    /// Its class (`notify-keyspace-events`' letter).
    pub class: Class,
    /// Its name, as Redis's (`set`, `del`, `expired`, `lpush`...).
    pub event: &'static str,
    /// The key it happened to.
    pub key: Vec<u8>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("keys", &self.len())
            .field("expires", &self.expires.len())
            .finish()
    }
}

/// Two stores are equal when they hold the same keys with the same values
/// and expiry times (slot layout does not matter).
impl PartialEq for Store {
    fn eq(&self, other: &Store) -> bool {
        self.len() == other.len() && self.iter().all(|e| other.raw(e.key) == Some(e))
    }
}

impl Eq for Store {}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Keys physically held, expired ones not yet removed included (DBSIZE).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Keys that have an expiry time (INFO keyspace's `expires`).
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// Sum of the lengths of every key and value.
    pub fn data_bytes(&self) -> usize {
        self.bytes
    }

    fn slot(&self, key: &[u8]) -> Option<usize> {
        self.index.get(key).copied()
    }

    fn entry_at(&self, slot: usize) -> &Entry {
        self.slots[slot]
            .as_ref()
            .expect("indexed slots are occupied")
    }

    fn entry_at_mut(&mut self, slot: usize) -> &mut Entry {
        self.slots[slot]
            .as_mut()
            .expect("indexed slots are occupied")
    }

    // -- Reads: expired keys are absent. ---------------------------------

    /// Moves the clock the write path stamps entries with to `now` (it
    /// never goes back).
    pub fn advance(&mut self, now: u64) {
        self.clock = self.clock.max(now);
        if self.loaded_at == 0 {
            self.loaded_at = now;
        }
    }

    /// Records an access to `key` at `now` (what Redis's key lookups do,
    /// except those of TTL, TYPE, EXISTS and OBJECT).
    pub fn touch(&self, key: &[u8], now: u64) {
        if let Some(slot) = self.slot(key) {
            self.entry_at(slot).accessed.store(now, Ordering::Relaxed);
            if self.lfu.enabled {
                self.lfu_access(slot, now);
            }
        }
    }

    /// [`get`](Self::get) that counts as an access to a live key ([`touch`](Self::touch)), with one lookup.
    pub fn read(&self, key: &[u8], now: u64) -> Option<&[u8]> {
        self.read_value(key, now)?.as_str()
    }

    /// [`value`](Self::value) that counts as an access to a live key.
    /// An expired key it meets is noted for removal ([`Store::take_met_expired`]):
    /// Redis's `lookupKeyRead` deletes it.
    pub fn read_value(&self, key: &[u8], now: u64) -> Option<&Value> {
        let slot = self.slot(key)?;
        let e = self.entry_at(slot);
        if is_expired(e.expire_at, now) {
            self.met_expired
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(key.to_vec());
            return None;
        }
        e.accessed.store(now, Ordering::Relaxed);
        if self.lfu.enabled {
            self.lfu_access(slot, now);
        }
        Some(&e.value)
    }

    /// The value of `key` (expired or not) shared, with its expiry: what
    /// COPY, MOVE and RENAME move (a pointer copy).
    pub fn shared(&self, key: &[u8]) -> Option<(Arc<Value>, Option<u64>)> {
        let e = self.entry_at(self.slot(key)?);
        Some((e.value.clone(), e.expire_at))
    }

    /// The live value of `key` at `now`, of any type.
    pub fn value(&self, key: &[u8], now: u64) -> Option<&Value> {
        self.entry(key, now).map(|e| e.value)
    }

    /// How long ago `key` was last accessed, in ms (OBJECT IDLETIME).
    pub fn idle_ms(&self, key: &[u8], now: u64) -> Option<u64> {
        let e = self.entry_at(self.slot(key)?);
        // Never accessed since the log was loaded: idle since the load.
        let at = match e.accessed.load(Ordering::Relaxed) {
            0 => self.loaded_at,
            at => at,
        };
        Some(now.saturating_sub(at))
    }

    /// The live entry of `key` at `now`.
    pub fn entry(&self, key: &[u8], now: u64) -> Option<EntryRef<'_>> {
        self.raw(key).filter(|e| !is_expired(e.expire_at, now))
    }

    /// The live string value of `key` at `now` (`None` for another type).
    pub fn get(&self, key: &[u8], now: u64) -> Option<&[u8]> {
        self.entry(key, now).and_then(|e| e.value.as_str())
    }

    /// Whether `key` is live at `now`.
    pub fn contains(&self, key: &[u8], now: u64) -> bool {
        self.entry(key, now).is_some()
    }

    /// The expired keys reads met since the last call (duplicates
    /// possible; some may be gone or set anew since): the storage task
    /// removes those still expired, as Redis's lazy expiry does.
    pub fn take_met_expired(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(
            self.met_expired
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Whether the string at `key` was changed in place since it was set
    /// (OBJECT ENCODING's `raw`; see `Entry::in_place`).
    pub fn changed_in_place(&self, key: &[u8]) -> bool {
        self.slot(key).is_some_and(|s| self.entry_at(s).in_place)
    }

    /// The entry of `key` whether expired or not (the physical state).
    pub fn raw(&self, key: &[u8]) -> Option<EntryRef<'_>> {
        self.slot(key).map(|s| self.entry_at(s).as_ref())
    }

    /// The live keys matching `pattern` (KEYS), in slot order.
    pub fn keys(&self, pattern: &[u8], now: u64) -> Vec<Vec<u8>> {
        if !pattern
            .iter()
            .any(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'))
        {
            // No wildcard: one lookup instead of a walk over the keyspace.
            return self
                .entry(pattern, now)
                .map(|e| vec![e.key.to_vec()])
                .unwrap_or_default();
        }
        let all = pattern == b"*";
        self.slots
            .iter()
            .flatten()
            .filter(|e| !is_expired(e.expire_at, now))
            .filter(|e| all || glob::matches(pattern, &e.key))
            .map(|e| e.key.to_vec())
            .collect()
    }

    /// One SCAN step from `cursor`: examines about `count` keys (and at
    /// most `10 * count` slots, so that a sparse table cannot make one call
    /// long), returns the live ones matching `pattern` and the next cursor,
    /// 0 when the iteration is complete.
    pub fn scan(
        &self,
        cursor: u64,
        pattern: Option<&[u8]>,
        count: usize,
        now: u64,
    ) -> (u64, Vec<Vec<u8>>) {
        let count = count.max(1);
        let budget = count.saturating_mul(10);
        let mut i = usize::try_from(cursor).unwrap_or(usize::MAX);
        let (mut examined, mut visited) = (0, 0);
        let mut out = Vec::new();
        while i < self.slots.len() && examined < count && visited < budget {
            if let Some(e) = &self.slots[i] {
                examined += 1;
                if !is_expired(e.expire_at, now) && pattern.is_none_or(|p| glob::matches(p, &e.key))
                {
                    out.push(e.key.to_vec());
                }
            }
            i += 1;
            visited += 1;
        }
        let next = if i >= self.slots.len() { 0 } else { i as u64 };
        (next, out)
    }

    /// A live key, picked from a random slot (`seed`) onward: None if no
    /// key is live. Keys after a run of free slots are likelier picks.
    pub fn random_key(&self, seed: u64, now: u64) -> Option<&[u8]> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let start = (seed % n as u64) as usize;
        (0..n)
            .map(|i| (start + i) % n)
            .filter_map(|i| self.slots[i].as_ref())
            .find(|e| !is_expired(e.expire_at, now))
            .map(|e| &e.key[..])
    }

    /// What an entry of this key and value length costs this store, in
    /// bytes (MEMORY USAGE): the bytes, the two shared allocations'
    /// headers, the slot and the index's element.
    pub fn entry_cost(key_len: usize, value_len: usize) -> usize {
        use std::mem::size_of;
        // Each Arc allocation holds two counters before its data.
        let arc_header = 2 * size_of::<usize>();
        key_len
            + value_len
            + 2 * arc_header
            + size_of::<Vec<u8>>()
            + size_of::<Option<Entry>>()
            + size_of::<(Arc<[u8]>, usize)>()
    }

    /// [`entry_cost`](Self::entry_cost) of a key holding `value` of any
    /// type: its bytes plus its containers' overhead.
    pub fn value_cost(key_len: usize, value: &Value) -> usize {
        Store::entry_cost(key_len, value.data_len()) + value.overhead()
    }

    /// Every entry, expired ones included, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> {
        self.slots.iter().flatten().map(Entry::as_ref)
    }

    /// An owned, immutable copy of every entry (pointer copies), to
    /// serialise elsewhere while the store keeps changing.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            entries: self.slots.iter().flatten().cloned().collect(),
        }
    }

    // -- Writes: physical, no clock unless a `now` is passed. -------------

    fn alloc_slot(&mut self, e: Entry) -> usize {
        while let Some(i) = self.free.pop() {
            if i < self.slots.len() && self.slots[i].is_none() {
                self.slots[i] = Some(e);
                return i;
            }
        }
        self.slots.push(Some(e));
        self.slots.len() - 1
    }

    fn free_slot(&mut self, i: usize) -> Entry {
        let e = self.slots[i].take().expect("freeing an occupied slot");
        if i + 1 == self.slots.len() {
            while matches!(self.slots.last(), Some(None)) {
                self.slots.pop();
            }
            if self.slots.capacity() > 4 * self.slots.len() + 1024 {
                self.slots.shrink_to(2 * self.slots.len());
            }
        } else {
            self.free.push(i);
        }
        // Stale indices (dropped trailing slots) accumulate: prune them
        // before they outnumber the slots.
        if self.free.len() > 2 * self.slots.len() + 64 {
            let slots = &self.slots;
            self.free.retain(|&j| j < slots.len() && slots[j].is_none());
            self.free.sort_unstable();
            self.free.dedup();
        }
        e
    }

    fn set_expire_at_slot(&mut self, slot: usize, expire_at: Option<u64>) {
        let e = self.entry_at_mut(slot);
        let old = std::mem::replace(&mut e.expire_at, expire_at);
        if old == expire_at {
            return;
        }
        if let Some(t) = old {
            self.expires.remove(&(t, slot));
        }
        if let Some(t) = expire_at {
            self.expires.insert((t, slot));
        }
    }

    /// Sets `key` to `value` with `expire_at` (SET semantics: the previous
    /// value and expiry are replaced). An existing key keeps its slot.
    pub fn set(&mut self, key: &[u8], value: Vec<u8>, expire_at: Option<u64>) {
        self.set_value(key, Value::Str(value), expire_at);
    }

    /// [`set`](Self::set) of a value of any type (an empty aggregate is
    /// not stored: the key is removed instead).
    pub fn set_value(&mut self, key: &[u8], value: Value, expire_at: Option<u64>) {
        if value.is_empty_aggregate() {
            self.remove(key);
            return;
        }
        self.put_arc(key, Arc::new(value), expire_at);
    }

    /// [`set_value`](Self::set_value) of a shared value (COPY, MOVE,
    /// RENAME: a pointer copy, the first change copies it).
    pub fn put_arc(&mut self, key: &[u8], value: Arc<Value>, expire_at: Option<u64>) {
        // A key that changes type signals too: a BZPOPMIN waiter stays
        // blocked through a list at its key, and a sorted set replacing
        // that list must reach it.
        if value.wakes_waiters()
            && self
                .raw(key)
                .is_none_or(|e| e.value.type_name() != value.type_name())
        {
            self.ready.push(key.to_vec());
        }
        match self.slot(key) {
            Some(slot) => {
                let clock = self.clock;
                let e = self.entry_at_mut(slot);
                *e.accessed.get_mut() = clock;
                e.in_place = false;
                let old = std::mem::replace(&mut e.value, value);
                let new_len = e.value.data_len();
                self.bytes = self.bytes - old.data_len() + new_len;
                self.set_expire_at_slot(slot, expire_at);
            }
            None => {
                let key: Arc<[u8]> = Arc::from(key);
                self.bytes += key.len() + value.data_len();
                let slot = self.alloc_slot(Entry {
                    key: key.clone(),
                    value,
                    expire_at: None,
                    accessed: AtomicU64::new(self.clock),
                    lfu: AtomicU32::new(evict::lfu_packed(LFU_INIT_VAL, self.clock)),
                    in_place: false,
                });
                self.index.insert(key.clone(), slot);
                self.set_expire_at_slot(slot, expire_at);
                // Every new key passes here (Redis's `dbAdd`).
                self.notify(Class::NEW, "new", &key);
            }
        }
    }

    /// Appends `suffix` to the value of `key` (created empty, without
    /// expiry, if absent; an existing key keeps its expiry). Returns the
    /// new length.
    pub fn append(&mut self, key: &[u8], suffix: &[u8]) -> usize {
        self.ensure_str(key);
        match self.slot(key) {
            Some(slot) => {
                let e = self.entry_at_mut(slot);
                e.in_place = true;
                let v = str_mut(&mut e.value);
                let before = v.len();
                v.extend_from_slice(suffix);
                let after = v.len();
                self.bytes = self.bytes + after - before;
                after
            }
            None => {
                self.set(key, suffix.to_vec(), None);
                suffix.len()
            }
        }
    }

    /// Writes `bytes` at `offset` of the value of `key`, zero-padding it up
    /// to `offset` (created without expiry if absent; an existing key keeps
    /// its expiry). Returns the new length.
    pub fn set_range(&mut self, key: &[u8], offset: usize, bytes: &[u8]) -> usize {
        self.ensure_str(key);
        let slot = match self.slot(key) {
            Some(slot) => slot,
            None => {
                self.set(key, Vec::new(), None);
                self.slot(key).expect("just set")
            }
        };
        let clock = self.clock;
        let e = self.entry_at_mut(slot);
        *e.accessed.get_mut() = clock;
        e.in_place |= !bytes.is_empty();
        let v = str_mut(&mut e.value);
        let before = v.len();
        let end = offset.saturating_add(bytes.len());
        if v.len() < end {
            v.resize(end, 0);
        }
        v[offset..end].copy_from_slice(bytes);
        let after = v.len();
        self.bytes = self.bytes + after - before;
        after
    }

    /// Makes a present `key` of another type an empty string, keeping its
    /// expiry: what a string write replayed onto it does (only a record
    /// replayed on a store it did not come from can meet this).
    fn ensure_str(&mut self, key: &[u8]) {
        if let Some(e) = self.raw(key) {
            if e.value.as_str().is_none() {
                let expire_at = e.expire_at;
                self.set(key, Vec::new(), expire_at);
            }
        }
    }

    /// Changes the value of `key` in place (copying it first if a snapshot
    /// or journal shares it) with `f`, which returns its result and the
    /// change of the value's [`data_len`](Value::data_len) in bytes.
    /// `None` if `key` is absent. An aggregate left empty is removed with
    /// its key; otherwise the key keeps its slot and expiry.
    pub fn update<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Value) -> (R, isize)) -> Option<R> {
        let slot = self.slot(key)?;
        let clock = self.clock;
        let e = self.entry_at_mut(slot);
        *e.accessed.get_mut() = clock;
        let v = Arc::make_mut(&mut e.value);
        let (r, delta) = f(v);
        let emptied = v.is_empty_aggregate();
        self.bytes = self.bytes.saturating_add_signed(delta);
        if emptied {
            self.remove(key);
        }
        Some(r)
    }

    /// [`update`](Self::update), creating `key` as `empty` (without expiry)
    /// first if it is absent. `f` receiving `empty` and adding nothing
    /// leaves the key absent.
    pub fn upsert<R>(
        &mut self,
        key: &[u8],
        empty: impl FnOnce() -> Value,
        f: impl FnOnce(&mut Value) -> (R, isize),
    ) -> R {
        if self.slot(key).is_none() {
            // Inserted directly: set_value refuses empty aggregates.
            self.put_arc(key, Arc::new(empty()), None);
        }
        self.update(key, f).expect("just inserted")
    }

    /// Sets or clears the expiry of `key`; `false` if absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: Option<u64>) -> bool {
        match self.slot(key) {
            Some(slot) => {
                self.set_expire_at_slot(slot, expire_at);
                true
            }
            None => false,
        }
    }

    /// Removes `key` (expired or not); `false` if absent.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let Some(slot) = self.index.remove(key) else {
            return false;
        };
        self.set_expire_at_slot(slot, None);
        let e = self.free_slot(slot);
        self.bytes -= e.key.len() + e.value.data_len();
        if self.index.capacity() > 4 * self.index.len() + 1024 {
            self.index.shrink_to(2 * self.index.len());
        }
        true
    }

    /// Lazy expiry on a write path: removes `key` if it is present and
    /// expired at `now`. Returns whether it did (the caller logs a DEL).
    pub fn purge_expired(&mut self, key: &[u8], now: u64) -> bool {
        match self.raw(key) {
            Some(e) if is_expired(e.expire_at, now) => {
                self.notify(Class::EXPIRED, "expired", key);
                self.remove(key)
            }
            _ => false,
        }
    }

    /// The hook of the blocking commands (BLPOP, BZPOPMIN and friends): the
    /// keys that became a list or a sorted set (absent, or of another type,
    /// before) since the last
    /// call, in order, each as often as it did. The storage path calls it
    /// after a write (a command, an EXEC, a replayed record) to serve the
    /// clients blocked on those keys; a key may be gone again by then (a
    /// MULTI that pushed and popped), which the server checks. Pushing onto
    /// a list already present signals nothing: no one waits on it.
    pub fn take_ready(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.ready)
    }

    /// The one hook of keyspace notifications: command code calls it after
    /// a change, with the event Redis names for it, e.g.
    /// `store.notify(Class::LIST, "lpush", key)`. It records the event if
    /// `notify-keyspace-events` asks for its class; the storage task
    /// publishes what was recorded once the change is committed to the log
    /// (and drops it if the commit failed and the change was taken back).
    pub fn notify(&mut self, class: Class, event: &'static str, key: &[u8]) {
        if self.notify_mask & class.bits() != 0 {
            self.events.push(KeyEvent {
                class,
                event,
                key: key.to_vec(),
            });
        }
    }

    /// Which classes [`Store::notify`] records (the flags of
    /// `notify-keyspace-events`; 0: none).
    pub fn set_notify_mask(&mut self, mask: u32) {
        self.notify_mask = mask;
        if mask == 0 {
            self.events.clear();
        }
    }

    /// The events recorded since the last call, in order.
    pub fn take_events(&mut self) -> Vec<KeyEvent> {
        std::mem::take(&mut self.events)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        *self = Store {
            clock: self.clock,
            loaded_at: self.loaded_at,
            lfu: self.lfu,
            ready: std::mem::take(&mut self.ready),
            notify_mask: self.notify_mask,
            events: std::mem::take(&mut self.events),
            ..Store::new()
        };
    }

    /// Active expiry: removes up to `max` keys expired at `now`, soonest
    /// expiry first, and returns them (for the log's DEL). O(max log n).
    pub fn active_expire(&mut self, now: u64, max: usize) -> Vec<Vec<u8>> {
        self.active_expire_journaled(now, max, None)
    }

    /// [`active_expire`](Self::active_expire), recording each removed
    /// entry in `undo` first (if given), so that it can be taken back.
    pub fn active_expire_journaled(
        &mut self,
        now: u64,
        max: usize,
        mut undo: Option<&mut Undo>,
    ) -> Vec<Vec<u8>> {
        let mut removed = Vec::new();
        while removed.len() < max {
            let Some(&(t, slot)) = self.expires.first() else {
                break;
            };
            if !is_expired(Some(t), now) {
                break;
            }
            let key = self.entry_at(slot).key.to_vec();
            if let Some(u) = undo.as_deref_mut() {
                u.save_key(self, &key);
            }
            self.remove(&key);
            self.notify(Class::EXPIRED, "expired", &key);
            removed.push(key);
        }
        removed
    }
}

/// The string of a shared value, for an in-place string change (copied
/// first if shared); the callers made it a string ([`Store::ensure_str`]).
fn str_mut(v: &mut Arc<Value>) -> &mut Vec<u8> {
    match Arc::make_mut(v) {
        Value::Str(s) => s,
        _ => unreachable!("ensure_str made it a string"),
    }
}

/// An immutable copy of a [`Store`]'s entries, independent of it (`Send`,
/// `'static`): what a log rewrite serialises on another thread.
#[derive(Clone, Default)]
pub struct Snapshot {
    entries: Vec<Entry>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("keys", &self.entries.len())
            .finish()
    }
}

impl Snapshot {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, expired ones included (replay must not depend on when
    /// it runs; the restarted server expires them).
    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> {
        self.entries.iter().map(Entry::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn s(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn expiry_boundary_is_redis_keyisexpired() {
        let mut st = Store::new();
        st.set(b"k", b"v".to_vec(), Some(100));
        assert_eq!(st.get(b"k", 99), Some(&b"v"[..]));
        assert_eq!(st.get(b"k", 100), Some(&b"v"[..]), "live at its expiry ms");
        assert_eq!(st.get(b"k", 101), None, "expired after it");
        assert_eq!(st.len(), 1, "reads do not remove");
        assert!(!st.purge_expired(b"k", 100));
        assert!(st.purge_expired(b"k", 101));
        assert!(st.is_empty());
        assert_eq!(st.expires_len(), 0);
    }

    #[test]
    fn set_replaces_value_and_expiry_in_place() {
        let mut st = Store::new();
        st.set(b"a", b"1".to_vec(), Some(10));
        st.set(b"b", b"2".to_vec(), None);
        let before: Vec<_> = st.iter().map(|e| e.key.to_vec()).collect();
        st.set(b"a", b"11".to_vec(), None);
        let after: Vec<_> = st.iter().map(|e| e.key.to_vec()).collect();
        assert_eq!(before, after, "overwrite keeps the slot");
        assert_eq!(st.raw(b"a").unwrap().expire_at, None);
        assert_eq!(st.expires_len(), 0);
        assert_eq!(st.data_bytes(), 2 + 1 + 1 + 1);
    }

    #[test]
    fn append_keeps_expiry_and_copies_on_write_under_a_snapshot() {
        let mut st = Store::new();
        assert_eq!(st.append(b"k", b"ab"), 2);
        st.set_expire(b"k", Some(50));
        let snap = st.snapshot();
        assert_eq!(st.append(b"k", b"cd"), 4);
        assert_eq!(st.raw(b"k").unwrap().expire_at, Some(50));
        assert_eq!(st.get(b"k", 0), Some(&b"abcd"[..]));
        assert_eq!(
            snap.iter().next().unwrap().value.as_str(),
            Some(&b"ab"[..]),
            "snapshot unchanged"
        );
    }

    #[test]
    fn active_expire_removes_soonest_first_with_bounded_work() {
        let mut st = Store::new();
        for i in 0..10u64 {
            st.set(format!("k{i}").as_bytes(), vec![], Some(100 + i));
        }
        st.set(b"forever", vec![], None);
        assert_eq!(st.active_expire(100, 100), Vec::<Vec<u8>>::new());
        let got = st.active_expire(105, 3);
        assert_eq!(got, vec![b"k0".to_vec(), b"k1".to_vec(), b"k2".to_vec()]);
        let got = st.active_expire(105, 100);
        assert_eq!(got, vec![b"k3".to_vec(), b"k4".to_vec()]);
        assert_eq!(st.len(), 6);
        assert_eq!(st.active_expire(u64::MAX, 100).len(), 5);
        assert_eq!(st.len(), 1);
    }

    #[test]
    fn keys_uses_glob_and_skips_expired() {
        let mut st = Store::new();
        for k in ["hello", "hallo", "hxllo", "world"] {
            st.set(k.as_bytes(), vec![], None);
        }
        st.set(b"hillo", vec![], Some(5));
        let mut got: Vec<_> = st.keys(b"h[ae]llo", 10).iter().map(|k| s(k)).collect();
        got.sort();
        assert_eq!(got, ["hallo", "hello"]);
        assert_eq!(st.keys(b"*", 10).len(), 4);
        assert_eq!(st.keys(b"*", 5).len(), 5);
        assert_eq!(st.keys(b"world", 10), vec![b"world".to_vec()]);
        assert_eq!(st.keys(b"hillo", 10), Vec::<Vec<u8>>::new());
    }

    fn full_scan(st: &Store, count: usize) -> Vec<Vec<u8>> {
        let mut cursor = 0;
        let mut out = Vec::new();
        loop {
            let (next, keys) = st.scan(cursor, None, count, 0);
            out.extend(keys);
            if next == 0 {
                return out;
            }
            cursor = next;
        }
    }

    #[test]
    fn scan_visits_every_key_and_honours_match() {
        let mut st = Store::new();
        for i in 0..1000 {
            st.set(format!("key:{i}").as_bytes(), vec![], None);
        }
        let seen: HashSet<_> = full_scan(&st, 7).into_iter().collect();
        assert_eq!(seen.len(), 1000);
        let (_, first) = st.scan(0, None, 10, 0);
        assert_eq!(first.len(), 10, "COUNT keys examined per step");
        let mut cursor = 0;
        let mut matched = Vec::new();
        loop {
            let (next, keys) = st.scan(cursor, Some(b"key:1?"), 100, 0);
            matched.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(matched.len(), 10);
        assert_eq!(st.scan(u64::MAX, None, 10, 0), (0, vec![]));
    }

    #[test]
    fn scan_sees_keys_present_throughout_despite_churn() {
        let mut st = Store::new();
        for i in 0..500 {
            st.set(format!("stable:{i}").as_bytes(), vec![], None);
            st.set(format!("churn:{i}").as_bytes(), vec![], None);
        }
        let mut cursor = 0;
        let mut seen = HashSet::new();
        let mut round = 0;
        loop {
            let (next, keys) = st.scan(cursor, None, 13, 0);
            seen.extend(keys);
            // Between steps: delete churn keys and add as many new ones
            // (reusing freed slots, some behind the cursor, some ahead).
            if round < 25 {
                for j in 0..20 {
                    st.remove(format!("churn:{}", round * 20 + j).as_bytes());
                    st.set(format!("new:{round}:{j}").as_bytes(), vec![], None);
                }
            }
            round += 1;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for i in 0..500 {
            assert!(
                seen.contains(format!("stable:{i}").as_bytes()),
                "stable:{i}"
            );
        }
    }

    #[test]
    fn removal_reuses_slots_and_trims_the_tail() {
        let mut st = Store::new();
        for i in 0..100 {
            st.set(format!("k{i}").as_bytes(), vec![1], None);
        }
        for i in 0..100 {
            assert!(st.remove(format!("k{i}").as_bytes()));
        }
        assert!(!st.remove(b"k0"));
        assert!(st.is_empty());
        assert_eq!(st.slots.len(), 0, "trailing free slots are dropped");
        assert_eq!(st.data_bytes(), 0);
        st.set(b"x", vec![], None);
        assert_eq!(st.slots.len(), 1);
        assert_eq!(full_scan(&st, 1), vec![b"x".to_vec()]);
    }

    #[test]
    fn equality_ignores_layout() {
        let mut a = Store::new();
        let mut b = Store::new();
        a.set(b"x", b"1".to_vec(), None);
        a.set(b"y", b"2".to_vec(), Some(9));
        b.set(b"y", b"2".to_vec(), Some(9));
        b.set(b"x", b"1".to_vec(), None);
        assert_eq!(a, b);
        b.set_expire(b"x", Some(1));
        assert_ne!(a, b);
    }

    #[test]
    fn snapshot_is_independent_and_sendable() {
        fn is_send<T: Send + 'static>(_: &T) {}
        let mut st = Store::new();
        st.set(b"a", b"1".to_vec(), Some(3));
        let snap = st.snapshot();
        is_send(&snap);
        st.clear();
        let v: Vec<_> = snap
            .iter()
            .map(|e| (e.key.to_vec(), e.value.clone(), e.expire_at))
            .collect();
        assert_eq!(v, vec![(b"a".to_vec(), Value::Str(b"1".to_vec()), Some(3))]);
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|i| i.as_bytes().to_vec()).collect())
    }

    #[test]
    fn update_keeps_bytes_and_deletes_an_emptied_aggregate() {
        let mut st = Store::new();
        st.set_value(b"l", list(&["ab", "c"]), Some(9));
        assert_eq!(st.data_bytes(), 1 + 3);
        let snap = st.snapshot();
        let popped = st.update(b"l", |v| match v {
            Value::List(l) => {
                let e = l.pop_front().unwrap();
                let n = e.len() as isize;
                (e, -n)
            }
            _ => unreachable!(),
        });
        assert_eq!(popped, Some(b"ab".to_vec()));
        assert_eq!(st.data_bytes(), 1 + 1);
        assert_eq!(st.raw(b"l").unwrap().expire_at, Some(9), "expiry kept");
        assert_eq!(
            snap.iter().next().unwrap().value,
            &list(&["ab", "c"]),
            "the snapshot's copy is untouched"
        );
        st.update(b"l", |v| match v {
            Value::List(l) => {
                l.clear();
                ((), -1)
            }
            _ => unreachable!(),
        });
        assert!(st.is_empty(), "an emptied list is deleted");
        assert_eq!(st.data_bytes(), 0);
        assert_eq!(st.expires_len(), 0);
        assert_eq!(st.update(b"l", |_| ((), 0)), None);
    }

    #[test]
    fn upsert_that_adds_nothing_leaves_the_key_absent() {
        let mut st = Store::new();
        st.upsert(b"s", || Value::Set(Default::default()), |_| ((), 0));
        assert!(st.is_empty());
        st.upsert(
            b"s",
            || Value::Set(Default::default()),
            |v| match v {
                Value::Set(s) => (s.insert(b"m".to_vec()), 1),
                _ => unreachable!(),
            },
        );
        assert_eq!(st.value(b"s", 0).map(Value::type_name), Some("set"));
        assert_eq!(st.get(b"s", 0), None, "not a string");
        assert_eq!(st.data_bytes(), 2);
    }

    #[test]
    fn string_writes_replace_another_type_and_keep_bytes_exact() {
        let mut st = Store::new();
        st.set_value(b"k", list(&["xyz"]), None);
        st.append(b"k", b"ab");
        assert_eq!(st.get(b"k", 0), Some(&b"ab"[..]));
        assert_eq!(st.data_bytes(), 3);
        st.set_value(b"k", list(&["1234"]), None);
        st.set_range(b"k", 1, b"z");
        assert_eq!(st.get(b"k", 0), Some(&b"\0z"[..]));
        assert_eq!(st.data_bytes(), 3);
        assert!(st.remove(b"k"));
        assert_eq!(st.data_bytes(), 0);
    }

    #[test]
    fn a_key_becoming_a_list_is_signalled_once() {
        let mut st = Store::new();
        st.set(b"s", b"v".to_vec(), None);
        assert!(st.take_ready().is_empty(), "strings wake no one");
        st.upsert(
            b"l",
            || Value::List(Default::default()),
            |v| match v {
                Value::List(l) => {
                    l.push_back(b"a".to_vec());
                    ((), 1)
                }
                _ => unreachable!(),
            },
        );
        st.set_value(b"l", list(&["b"]), None);
        st.set_value(b"s", list(&["c"]), None);
        assert_eq!(st.take_ready(), vec![b"l".to_vec(), b"s".to_vec()]);
        assert!(st.take_ready().is_empty());
    }
}
