//! A worker's pending timers: a hierarchical timing wheel with O(1) insert and
//! cancel.
//!
//! Owned by one reactor and touched only on its worker's thread. Time is cut
//! into ticks of [`TICK`] (1 ms) counted from the wheel's epoch. A deadline is
//! rounded *up* to a tick and a timer fires at the first [`TimerWheel::expire`]
//! whose `now`, rounded *down*, has reached that tick. So a timer never fires
//! before its deadline, and it fires less than one tick after it provided the
//! reactor calls `expire` by then. The reactor makes sure of that by sleeping
//! in epoll for [`TimerWheel::next_timeout`], the time until the earliest slot
//! that holds a timer (rounded up to epoll's resolution by `sys::epoll_wait`).
//! For a slot of an upper level that is the slot's start, earlier than its
//! timers: the wake-up then moves them down a level (a cascade) and sleeps
//! again, at most once per level.
//!
//! Layout: [`LEVELS`] levels of [`SLOTS`] slots; a slot of level `l` spans
//! `64^l` ticks, so the levels cover `64^6` ticks (about 2.2 years). A timer
//! further than that from the current tick waits in an overflow list that is
//! looked at again each time the top level turns over. Timers whose tick has
//! already been processed wait in a due list, fired at the next `expire`.
//! Each list is intrusive and doubly linked through the nodes of one slab
//! (`nodes`, vacant nodes chained through `next`), and `index` maps a key (the
//! uid of the parked syscall) to its node: insert is a table insert plus a
//! push, cancel a table remove plus an unlink, both O(1) (expected: the
//! table is at most half full). No `unsafe`: nodes are named by `u32` ids.
//!
//! Memory per pending timer: a 32-byte node and 4 to 8 bytes of index, plus
//! the core's own entry for the parked syscall and the `Sleep` future
//! (32 bytes); tokio keeps its whole timer entry, about 112 bytes, in its
//! `Sleep`.
//!
//! Invariants:
//! - `index` holds exactly the keys of the timers that may still fire, each
//!   mapped to an occupied node whose `list` names the one list it is linked
//!   in; `occupied[l]` has bit `s` set exactly when slot `s` of level `l` is
//!   not empty;
//! - every tick up to `elapsed` is processed: no timer of a level slot or of
//!   the overflow list has `when <= elapsed`;
//! - a timer in level `l` lies in the same `64^(l+1)`-tick block as
//!   `elapsed` but in a later `64^l`-tick slot (level 5 may also hold timers of
//!   the next block, in slots at or before `elapsed`'s); so a slot's start is
//!   after `elapsed`, at or before each of its timers, and the earliest start
//!   over all slots is at or before every pending deadline;
//! - memory is one node per pending timer plus the vacant nodes left by the
//!   peak (a churn of timeouts that never fire reuses the same nodes), and an
//!   index at most four times the peak in `u32`s.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// The wheel's resolution: deadlines are rounded up to a whole tick.
pub(crate) const TICK: Duration = Duration::from_millis(1);
const TICK_NANOS: u128 = TICK.as_nanos();
/// Bits of a tick number that pick the slot within one level.
const SLOT_BITS: u32 = 6;
/// Slots per level (one bit each in a `u64` occupancy mask).
pub(crate) const SLOTS: usize = 1 << SLOT_BITS;
/// Levels of the wheel.
pub(crate) const LEVELS: usize = 6;
/// Ticks the levels cover: a timer this far from `elapsed` or further waits in
/// the overflow list.
const RANGE: u64 = 1 << (SLOT_BITS * LEVELS as u32);
/// The list of timers whose tick is already processed.
const DUE: u16 = (LEVELS * SLOTS) as u16;
/// The list of timers beyond the levels' range.
const OVERFLOW: u16 = DUE + 1;
const LISTS: usize = LEVELS * SLOTS + 2;
/// No node (end of a list, empty list, no vacant node).
const NIL: u32 = u32::MAX;

/// Which timer node a key has: an open-addressed table (linear probing,
/// Robin Hood order) of node ids, each found again through its node's key, so a bucket is 4 bytes
/// and the table (at most half full) costs 4 to 8 bytes per timer.
///
/// A key's home bucket is its own low bits (mixed with high ones only
/// beyond 2^21): a worker's uids come mostly in runs of consecutive numbers,
/// so timers filed together sit in neighbouring buckets and a million inserts
/// or cancels walk the table instead of missing the cache on every one.
/// Invariants: every id in `slots` names an occupied node, at most one per
/// key; each lies at or after its home bucket with no empty bucket between
/// them, and along a probe run the distance to home never drops by more than
/// one from a bucket to the next (Robin Hood order), so a look-up stops at the
/// first id nearer its home than the key would be.
struct Index {
    slots: Vec<u32>,
    len: usize,
}

/// The bits of `key` that pick its home bucket.
fn key_bits<K: Hash>(key: &K) -> u64 {
    struct Bits(u64);
    impl Hasher for Bits {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n ^ (n >> 21);
        }
    }
    let mut bits = Bits(0);
    key.hash(&mut bits);
    bits.finish()
}

impl Index {
    fn new() -> Self {
        Index {
            slots: Vec::new(),
            len: 0,
        }
    }

    fn home<K: Hash>(&self, key: &K) -> usize {
        (key_bits(key) as usize) & (self.slots.len() - 1)
    }

    /// How far the id in bucket `pos` sits from its home bucket.
    fn distance<K: Hash>(&self, pos: usize, id: u32, nodes: &[Node<K>]) -> usize {
        pos.wrapping_sub(self.home(&nodes[id as usize].key)) & (self.slots.len() - 1)
    }

    /// The bucket holding `key`'s node id.
    fn find<K: Hash + Eq>(&self, key: &K, nodes: &[Node<K>]) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let (mut pos, mut distance) = (self.home(key), 0);
        loop {
            let id = self.slots[pos];
            if id == NIL || self.distance(pos, id, nodes) < distance {
                // Robin Hood order: `key` would have taken this bucket.
                return None;
            }
            if nodes[id as usize].key == *key {
                return Some(pos);
            }
            pos = (pos + 1) & mask;
            distance += 1;
        }
    }

    /// Maps `nodes[id].key` to `id`; returns the id it replaces.
    fn insert<K: Hash + Eq>(&mut self, id: u32, nodes: &[Node<K>]) -> Option<u32> {
        if let Some(pos) = self.find(&nodes[id as usize].key, nodes) {
            return Some(std::mem::replace(&mut self.slots[pos], id));
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(nodes);
        }
        self.place(id, nodes);
        self.len += 1;
        None
    }

    /// Robin Hood insertion of an id whose key is not in the table: an id
    /// further from its home takes the bucket of one nearer to its own.
    fn place<K: Hash>(&mut self, id: u32, nodes: &[Node<K>]) {
        let mask = self.slots.len() - 1;
        let mut carried = id;
        let (mut pos, mut distance) = (self.home(&nodes[id as usize].key), 0);
        loop {
            let here = self.slots[pos];
            if here == NIL {
                self.slots[pos] = carried;
                return;
            }
            let here_distance = self.distance(pos, here, nodes);
            if here_distance < distance {
                self.slots[pos] = carried;
                carried = here;
                distance = here_distance;
            }
            pos = (pos + 1) & mask;
            distance += 1;
        }
    }

    /// Forgets `key`; returns its node id.
    fn remove<K: Hash + Eq>(&mut self, key: &K, nodes: &[Node<K>]) -> Option<u32> {
        let mut pos = self.find(key, nodes)?;
        let id = self.slots[pos];
        self.len -= 1;
        // Backward shift: the ids after it move one bucket nearer their home,
        // up to an empty bucket or one already at home (so a run of
        // consecutive uids, each at home, costs one step).
        let mask = self.slots.len() - 1;
        loop {
            let next = (pos + 1) & mask;
            let moved = self.slots[next];
            if moved == NIL || self.distance(next, moved, nodes) == 0 {
                self.slots[pos] = NIL;
                return Some(id);
            }
            self.slots[pos] = moved;
            pos = next;
        }
    }

    fn grow<K: Hash>(&mut self, nodes: &[Node<K>]) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![NIL; size]);
        for id in old.into_iter().filter(|&id| id != NIL) {
            self.place(id, nodes);
        }
    }
}

/// One timer, or a vacant node (then only `next` means something).
struct Node<K> {
    /// The deadline, in ticks since the epoch (rounded up).
    when: u64,
    key: K,
    prev: u32,
    next: u32,
    /// The list this node is linked in.
    list: u16,
}

/// The pending timers of one worker, keyed by `K` (a syscall uid in the
/// reactor). See the module docs.
pub(crate) struct TimerWheel<K> {
    epoch: Instant,
    /// The last processed tick.
    elapsed: u64,
    nodes: Vec<Node<K>>,
    vacant: u32,
    index: Index,
    /// The first node of each list.
    heads: Box<[u32; LISTS]>,
    occupied: [u64; LEVELS],
}

/// The start of the first occupied slot of `level` after `elapsed`, with that
/// slot.
fn level_deadline(occupied: u64, level: usize, elapsed: u64) -> Option<(usize, u64)> {
    if occupied == 0 {
        return None;
    }
    let shift = SLOT_BITS * level as u32;
    let slot_span = 1u64 << shift;
    let level_span = slot_span << SLOT_BITS;
    let current = ((elapsed >> shift) as usize) & (SLOTS - 1);
    let ahead = occupied.rotate_right(current as u32).trailing_zeros() as usize;
    let slot = (current + ahead) % SLOTS;
    let mut start = (elapsed & !(level_span - 1)) + slot as u64 * slot_span;
    if start <= elapsed {
        // A slot at or before the current one holds timers of the next turn.
        start += level_span;
    }
    Some((slot, start))
}

impl<K: Copy + Eq + Hash> TimerWheel<K> {
    pub(crate) fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    fn starting_at(epoch: Instant) -> Self {
        TimerWheel {
            epoch,
            elapsed: 0,
            nodes: Vec::new(),
            vacant: NIL,
            index: Index::new(),
            heads: Box::new([NIL; LISTS]),
            occupied: [0; LEVELS],
        }
    }

    /// How many timers may still fire.
    pub(crate) fn len(&self) -> usize {
        self.index.len
    }

    /// `deadline` in ticks, rounded up (so firing at that tick is never early).
    fn deadline_tick(&self, deadline: Instant) -> u64 {
        let nanos = deadline.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos.div_ceil(TICK_NANOS)).unwrap_or(u64::MAX)
    }

    /// `now` in ticks, rounded down.
    fn now_tick(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos / TICK_NANOS).unwrap_or(u64::MAX)
    }

    /// The instant tick `tick` begins.
    fn tick_instant(&self, tick: u64) -> Option<Instant> {
        let nanos = u128::from(tick) * TICK_NANOS;
        self.epoch
            .checked_add(Duration::from_nanos(u64::try_from(nanos).ok()?))
    }

    /// Schedules `key` to fire at `deadline` (replacing a pending timer of the
    /// same key).
    pub(crate) fn insert(&mut self, deadline: Instant, key: K) {
        let when = self.deadline_tick(deadline);
        let node = Node {
            when,
            key,
            prev: NIL,
            next: NIL,
            list: DUE,
        };
        let idx = if self.vacant == NIL {
            let idx = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("matou-unix: too many pending timers");
            self.nodes.push(node);
            idx
        } else {
            let idx = self.vacant;
            self.vacant = self.nodes[idx as usize].next;
            self.nodes[idx as usize] = node;
            idx
        };
        if let Some(old) = self.index.insert(idx, &self.nodes) {
            self.unlink(old);
            self.free(old);
        }
        self.link(idx);
    }

    /// Forgets `key` if it is a pending timer; returns whether it was.
    pub(crate) fn cancel(&mut self, key: K) -> bool {
        let Some(idx) = self.index.remove(&key, &self.nodes) else {
            return false;
        };
        self.unlink(idx);
        self.free(idx);
        true
    }

    /// How long until the reactor must call [`expire`](Self::expire): zero
    /// when a timer is due, `None` when there is no timer. Never later than
    /// the earliest pending deadline rounded up to a tick.
    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        if self.index.len == 0 {
            return None;
        }
        if self.heads[DUE as usize] != NIL {
            return Some(Duration::ZERO);
        }
        let tick = self.next_deadline()?;
        Some(match self.tick_instant(tick) {
            Some(at) => at.saturating_duration_since(now),
            None => Duration::MAX,
        })
    }

    /// The earliest tick at which a list must be processed.
    fn next_deadline(&self) -> Option<u64> {
        let levels = (0..LEVELS).filter_map(|l| level_deadline(self.occupied[l], l, self.elapsed));
        let overflow = (self.heads[OVERFLOW as usize] != NIL).then(|| self.overflow_deadline());
        levels.map(|(_, start)| start).chain(overflow).min()
    }

    /// When the overflow list is looked at again: the top level's next turn.
    fn overflow_deadline(&self) -> u64 {
        (self.elapsed | (RANGE - 1)).saturating_add(1)
    }

    /// Removes every timer whose deadline has passed at `now`, calling `fire`
    /// with each key, tick by tick (the timers of one tick in no set order).
    pub(crate) fn expire(&mut self, now: Instant, mut fire: impl FnMut(K)) {
        let due = std::mem::replace(&mut self.heads[DUE as usize], NIL);
        self.process(due, &mut fire);
        let now = self.now_tick(now);
        while let Some(tick) = self.next_deadline().filter(|&t| t <= now) {
            // Detach every list due at `tick` before moving any timer, so
            // none is re-linked into a list that is processed at the same
            // tick (whose start would then look like next turn's).
            let mut lists = [NIL; LEVELS + 1];
            for (level, list) in lists.iter_mut().enumerate().take(LEVELS) {
                if let Some((slot, start)) =
                    level_deadline(self.occupied[level], level, self.elapsed)
                {
                    if start == tick {
                        self.occupied[level] &= !(1 << slot);
                        *list = std::mem::replace(&mut self.heads[level * SLOTS + slot], NIL);
                    }
                }
            }
            if self.heads[OVERFLOW as usize] != NIL && self.overflow_deadline() == tick {
                lists[LEVELS] = std::mem::replace(&mut self.heads[OVERFLOW as usize], NIL);
            }
            self.elapsed = tick;
            for head in lists {
                self.process(head, &mut fire);
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// Walks a detached list: fires its timers that are due at `elapsed` and
    /// links the others where they now belong (a lower level, usually).
    fn process(&mut self, mut idx: u32, fire: &mut impl FnMut(K)) {
        while idx != NIL {
            let node = &self.nodes[idx as usize];
            let (next, when, key) = (node.next, node.when, node.key);
            if when <= self.elapsed {
                self.index.remove(&key, &self.nodes);
                self.free(idx);
                fire(key);
            } else {
                self.link(idx);
            }
            idx = next;
        }
    }

    /// Which list a timer due at tick `when` belongs in, given `elapsed`.
    fn list_for(&self, when: u64) -> u16 {
        if when <= self.elapsed {
            return DUE;
        }
        if when - self.elapsed >= RANGE {
            return OVERFLOW;
        }
        // The highest bit where `when` and `elapsed` differ picks the level
        // (one block of the top level further counts as the top level).
        let differing = (self.elapsed ^ when) | (SLOTS as u64 - 1);
        let level = ((63 - differing.leading_zeros()) / SLOT_BITS) as usize;
        let level = level.min(LEVELS - 1);
        let slot = ((when >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1);
        (level * SLOTS + slot) as u16
    }

    /// Pushes node `idx` (not linked anywhere) onto the list its `when` picks.
    fn link(&mut self, idx: u32) {
        let list = self.list_for(self.nodes[idx as usize].when);
        let head = self.heads[list as usize];
        if head != NIL {
            self.nodes[head as usize].prev = idx;
        }
        let node = &mut self.nodes[idx as usize];
        node.list = list;
        node.prev = NIL;
        node.next = head;
        self.heads[list as usize] = idx;
        if list < DUE {
            let (level, slot) = (list as usize / SLOTS, list as usize % SLOTS);
            self.occupied[level] |= 1 << slot;
        }
    }

    /// Takes node `idx` out of its list.
    fn unlink(&mut self, idx: u32) {
        let Node {
            prev, next, list, ..
        } = self.nodes[idx as usize];
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.heads[list as usize] = next;
            if next == NIL && list < DUE {
                let (level, slot) = (list as usize / SLOTS, list as usize % SLOTS);
                self.occupied[level] &= !(1 << slot);
            }
        }
    }

    /// Makes node `idx` (unlinked) vacant.
    fn free(&mut self, idx: u32) {
        self.nodes[idx as usize].next = self.vacant;
        self.vacant = idx;
    }

    /// Forgets every timer (the run is over).
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.vacant = NIL;
        self.index = Index::new();
        self.heads.fill(NIL);
        self.occupied = [0; LEVELS];
    }
}

#[cfg(test)]
mod tests;
