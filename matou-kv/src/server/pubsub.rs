//! The pub/sub registry: who is subscribed to which channel, pattern or
//! shard channel, and the hand-off of published messages from a publisher
//! on any worker to each subscriber's task.
//!
//! What it owns and the invariants it keeps:
//! - [`Registry`] maps each channel (and pattern, and shard channel) to the
//!   mailboxes of its subscribers, under one `std` mutex held only for map
//!   updates and for collecting a publish's targets: **never while a
//!   message is delivered or a socket written**. [`Registry::publish`]
//!   clones the targets' `Arc`s under the lock, drops it, then hands the
//!   message to each mailbox.
//! - Each [`Subscriber`] owns one mailbox: a `matou::sync` channel (the
//!   subscriber's task awaits [`Subscriber::recv`]) plus a count of the
//!   bytes queued and not yet taken. A message that would take the count
//!   past the `client-output-buffer-limit pubsub` hard limit (or past the
//!   mailbox's message capacity) is not queued: the mailbox is marked
//!   overflowed and closed, so the subscriber's task wakes, sees
//!   [`Delivery::Overflowed`] and disconnects its client (the mailbox's
//!   overflow hook also tells the connection at once, so a subscriber
//!   stuck on a full socket is disconnected too). The soft limit works as
//!   Redis's: queued bytes over it continuously for its seconds overflow
//!   the mailbox at the next message. Memory per slow subscriber is
//!   therefore bounded by the hard limit, whatever the publishers do.
//! - A map entry exists exactly while its subscriber is subscribed: an
//!   entry whose set becomes empty is removed, and dropping a
//!   [`Subscriber`] (its connection closed, its task cancelled) removes
//!   every entry it had, so a departed subscriber leaves nothing behind.
//! - The receivers counted by [`Registry::publish`] are the mailboxes that
//!   accepted the message (one per channel subscription plus one per
//!   matching pattern subscription, as Redis counts).
//!
//! Patterns are Redis's globs ([`crate::glob::matches`]).

use crate::config::OutputLimit;
use crate::glob;
use matou::sync::{channel, Receiver, Sender, TryRecvError, TrySendError};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Messages a mailbox holds at most, whatever their size (a bound on the
/// per-message overhead that the byte count does not see).
pub const MAILBOX_MESSAGES: usize = 64 * 1024;

/// Redis's default `client-output-buffer-limit pubsub` hard limit (32 MB).
pub const DEFAULT_PUBSUB_HARD: usize = 32 * 1024 * 1024;

/// Which namespace a subscription lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// SUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE: glob patterns matched against PUBLISH's channel.
    Pattern,
    /// SSUBSCRIBE / SPUBLISH (one shard here: its own namespace).
    Shard,
}

/// One published message as a subscriber receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The namespace it was delivered through.
    pub space: Space,
    /// The pattern that matched ([`Space::Pattern`] only).
    pub pattern: Option<Arc<[u8]>>,
    /// The channel it was published to.
    pub channel: Arc<[u8]>,
    /// Its payload (shared by every receiver: one copy per publish).
    pub payload: Arc<[u8]>,
}

impl Message {
    /// Bytes it is counted for against the output limit: what it costs on
    /// the wire, about.
    pub fn cost(&self) -> usize {
        self.channel.len() + self.payload.len() + self.pattern.as_ref().map_or(0, |p| p.len()) + 64
    }
}

/// What [`Subscriber::recv`] and [`Subscriber::try_recv`] give.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The next message.
    Message(Message),
    /// Nothing queued now ([`Subscriber::try_recv`] only).
    Empty,
    /// The subscriber fell behind by more than the limit: messages were
    /// dropped, its client must be disconnected.
    Overflowed,
}

/// What a mailbox calls once when it overflows (the connection's kill
/// switch).
pub type OverflowHook = Box<dyn Fn() + Send + Sync>;

/// `client-output-buffer-limit pubsub`, live: CONFIG SET stores it, every
/// mailbox reads it at each message (so a change applies to subscribers
/// already connected, as in Redis).
#[derive(Default)]
pub struct LiveLimit {
    hard: AtomicUsize,
    soft: AtomicUsize,
    soft_secs: AtomicU64,
}

impl LiveLimit {
    /// A limit set to `limit`.
    pub fn new(limit: OutputLimit) -> Arc<LiveLimit> {
        let live = Arc::new(LiveLimit::default());
        live.set(limit);
        live
    }

    /// Changes it (CONFIG SET).
    pub fn set(&self, limit: OutputLimit) {
        self.hard.store(limit.hard, Ordering::Relaxed);
        self.soft.store(limit.soft, Ordering::Relaxed);
        self.soft_secs.store(limit.soft_secs, Ordering::Relaxed);
    }

    /// The limit now.
    pub fn get(&self) -> OutputLimit {
        OutputLimit {
            hard: self.hard.load(Ordering::Relaxed),
            soft: self.soft.load(Ordering::Relaxed),
            soft_secs: self.soft_secs.load(Ordering::Relaxed),
        }
    }
}

struct Mailbox {
    tx: Sender<Message>,
    bytes: AtomicUsize,
    overflowed: AtomicBool,
    limit: Arc<LiveLimit>,
    /// Since when (ms on [`now_ms`]) the bytes queued are over the soft
    /// limit; 0: they are not.
    over_soft_since: AtomicU64,
    on_overflow: Option<OverflowHook>,
}

fn now_ms() -> u64 {
    crate::server::now_ms()
}

impl Mailbox {
    /// Queues `m`; false if it was not (overflow, or the subscriber left).
    fn offer(&self, m: &Message) -> bool {
        if self.overflowed.load(Ordering::Acquire) {
            return false;
        }
        let cost = m.cost();
        let limit = self.limit.get();
        let before = self.bytes.fetch_add(cost, Ordering::AcqRel);
        if (limit.hard != 0 && before + cost > limit.hard) || self.soft_expired(limit, before) {
            self.bytes.fetch_sub(cost, Ordering::AcqRel);
            self.overflow();
            return false;
        }
        match self.tx.try_send(m.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.bytes.fetch_sub(cost, Ordering::AcqRel);
                self.overflow();
                false
            }
            Err(_) => {
                self.bytes.fetch_sub(cost, Ordering::AcqRel);
                false
            }
        }
    }

    /// Whether `queued` bytes are over the soft limit and have been for
    /// its seconds (Redis's `checkClientOutputBufferLimits`).
    fn soft_expired(&self, limit: OutputLimit, queued: usize) -> bool {
        if limit.soft == 0 || queued <= limit.soft {
            self.over_soft_since.store(0, Ordering::Relaxed);
            return false;
        }
        let now = now_ms().max(1);
        match self
            .over_soft_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => false,
            Err(since) => now.saturating_sub(since) >= limit.soft_secs.saturating_mul(1000),
        }
    }

    fn overflow(&self) {
        if self.overflowed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Wakes the subscriber's task blocked in `recv`.
        self.tx.close();
        if let Some(hook) = &self.on_overflow {
            hook();
        }
    }
}

/// A publish's recipient: its mailbox, and the pattern that matched.
type Target = (Arc<Mailbox>, Option<Arc<[u8]>>);

type Subs = HashMap<Vec<u8>, HashMap<u64, Arc<Mailbox>>>;

#[derive(Default)]
struct Maps {
    channels: Subs,
    patterns: Subs,
    shards: Subs,
}

impl Maps {
    fn of(&mut self, space: Space) -> &mut Subs {
        match space {
            Space::Channel => &mut self.channels,
            Space::Pattern => &mut self.patterns,
            Space::Shard => &mut self.shards,
        }
    }
}

/// Every subscription of the server, shared by every worker.
#[derive(Default)]
pub struct Registry {
    maps: Mutex<Maps>,
    next_id: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    fn lock(&self) -> MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A subscriber with no subscription yet, whose pending messages are
    /// bounded by `hard_limit` bytes (0: only by [`MAILBOX_MESSAGES`]).
    pub fn subscriber(self: &Arc<Self>, hard_limit: usize) -> Subscriber {
        let limit = OutputLimit {
            hard: hard_limit,
            soft: 0,
            soft_secs: 0,
        };
        self.subscriber_with(LiveLimit::new(limit), None)
    }

    /// A subscriber bounded by `limit` (`client-output-buffer-limit
    /// pubsub`), whose overflow also calls `on_overflow`.
    pub fn subscriber_with(
        self: &Arc<Self>,
        limit: Arc<LiveLimit>,
        on_overflow: Option<OverflowHook>,
    ) -> Subscriber {
        let (tx, rx) = channel(MAILBOX_MESSAGES);
        Subscriber {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            registry: self.clone(),
            mailbox: Arc::new(Mailbox {
                tx,
                bytes: AtomicUsize::new(0),
                overflowed: AtomicBool::new(false),
                limit,
                over_soft_since: AtomicU64::new(0),
                on_overflow,
            }),
            rx,
            subs: BTreeSet::new(),
        }
    }

    /// Hands `payload` to every subscriber of `channel` in `space`
    /// ([`Space::Channel`]: channel and matching pattern subscribers;
    /// [`Space::Shard`]: shard subscribers). Returns how many received it.
    /// The lock is held only while the targets are collected.
    pub fn publish(&self, space: Space, channel: &[u8], payload: &[u8]) -> usize {
        let mut targets: Vec<Target> = Vec::new();
        {
            let mut maps = self.lock();
            if let Some(subs) = maps.of(space).get(channel) {
                targets.extend(subs.values().map(|m| (m.clone(), None)));
            }
            if space == Space::Channel {
                for (pattern, subs) in &maps.patterns {
                    if glob::matches(pattern, channel) {
                        let p: Arc<[u8]> = pattern.as_slice().into();
                        targets.extend(subs.values().map(|m| (m.clone(), Some(p.clone()))));
                    }
                }
            }
        }
        let channel: Arc<[u8]> = channel.into();
        let payload: Arc<[u8]> = payload.into();
        targets
            .into_iter()
            .filter(|(mailbox, pattern)| {
                let space = if pattern.is_some() {
                    Space::Pattern
                } else {
                    space
                };
                mailbox.offer(&Message {
                    space,
                    pattern: pattern.clone(),
                    channel: channel.clone(),
                    payload: payload.clone(),
                })
            })
            .count()
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: the active channels of `space`
    /// matching `pattern` (all of them for `None`), sorted.
    pub fn channels(&self, space: Space, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = self
            .lock()
            .of(space)
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c)))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of each channel.
    pub fn numsub(&self, space: Space, channels: &[Vec<u8>]) -> Vec<usize> {
        let mut maps = self.lock();
        let subs = maps.of(space);
        channels
            .iter()
            .map(|c| subs.get(c).map_or(0, HashMap::len))
            .collect()
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed to.
    pub fn numpat(&self) -> usize {
        self.lock().patterns.len()
    }
}

/// One client's subscriptions and its mailbox. Dropping it unsubscribes
/// from everything and drops whatever was still queued.
pub struct Subscriber {
    id: u64,
    registry: Arc<Registry>,
    mailbox: Arc<Mailbox>,
    rx: Receiver<Message>,
    subs: BTreeSet<(Space, Vec<u8>)>,
}

impl Subscriber {
    /// Subscribes to `name` in `space`; returns the client's subscription
    /// count after it (what SUBSCRIBE's reply reports: channels and
    /// patterns together, shard channels on their own, as Redis).
    pub fn subscribe(&mut self, space: Space, name: &[u8]) -> usize {
        if self.subs.insert((space, name.to_vec())) {
            self.registry
                .lock()
                .of(space)
                .entry(name.to_vec())
                .or_default()
                .insert(self.id, self.mailbox.clone());
        }
        self.count(space)
    }

    /// Unsubscribes from `name`; returns whether it was subscribed and the
    /// count after it.
    pub fn unsubscribe(&mut self, space: Space, name: &[u8]) -> (bool, usize) {
        let was = self.subs.remove(&(space, name.to_vec()));
        if was {
            self.forget(space, name);
        }
        (was, self.count(space))
    }

    /// The names subscribed to in `space`, sorted (an UNSUBSCRIBE without
    /// arguments unsubscribes from each).
    pub fn names(&self, space: Space) -> Vec<Vec<u8>> {
        self.subs
            .iter()
            .filter(|(s, _)| *s == space)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// How many names are subscribed to in `space` alone (CLIENT LIST's
    /// `sub`, `psub`, `ssub`).
    pub fn count_in(&self, space: Space) -> usize {
        self.subs.iter().filter(|(s, _)| *s == space).count()
    }

    /// The count SUBSCRIBE-family replies report for `space`.
    pub fn count(&self, space: Space) -> usize {
        let shard = space == Space::Shard;
        self.subs
            .iter()
            .filter(|(s, _)| (*s == Space::Shard) == shard)
            .count()
    }

    /// Whether any subscription is active (RESP2's subscribed mode).
    pub fn is_subscribed(&self) -> bool {
        !self.subs.is_empty()
    }

    /// The next message, without waiting.
    pub fn try_recv(&self) -> Delivery {
        match self.rx.try_recv() {
            Ok(m) => self.took(m),
            Err(TryRecvError::Empty) => Delivery::Empty,
            Err(_) => Delivery::Overflowed,
        }
    }

    /// Waits for the next message.
    ///
    /// Cancel safety: dropping the future loses no message (the channel's
    /// receive is cancellation-safe).
    pub async fn recv(&self) -> Delivery {
        match self.rx.recv().await {
            Some(m) => self.took(m),
            // Closed: only an overflow closes it (the sender lives as long
            // as this subscriber).
            None => Delivery::Overflowed,
        }
    }

    /// Bytes queued for this subscriber and not taken yet.
    pub fn pending_bytes(&self) -> usize {
        self.mailbox.bytes.load(Ordering::Acquire)
    }

    fn took(&self, m: Message) -> Delivery {
        if self.mailbox.overflowed.load(Ordering::Acquire) {
            return Delivery::Overflowed;
        }
        self.mailbox.bytes.fetch_sub(m.cost(), Ordering::AcqRel);
        Delivery::Message(m)
    }

    fn forget(&self, space: Space, name: &[u8]) {
        let mut maps = self.registry.lock();
        let subs = maps.of(space);
        if let Some(set) = subs.get_mut(name) {
            set.remove(&self.id);
            if set.is_empty() {
                subs.remove(name);
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        for (space, name) in std::mem::take(&mut self.subs) {
            self.forget(space, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(d: Delivery) -> Message {
        match d {
            Delivery::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn publish_reaches_channel_and_pattern_subscribers_and_counts_them() {
        let reg = Registry::new();
        let mut a = reg.subscriber(0);
        let mut b = reg.subscriber(0);
        assert_eq!(a.subscribe(Space::Channel, b"news"), 1);
        assert_eq!(b.subscribe(Space::Pattern, b"n*s"), 1);
        assert_eq!(b.subscribe(Space::Pattern, b"x*"), 2);
        assert_eq!(reg.publish(Space::Channel, b"news", b"hi"), 2);
        let m = msg(a.try_recv());
        assert_eq!(
            (&*m.channel, &*m.payload, m.pattern),
            (&b"news"[..], &b"hi"[..], None)
        );
        let m = msg(b.try_recv());
        assert_eq!(m.space, Space::Pattern);
        assert_eq!(m.pattern.as_deref(), Some(&b"n*s"[..]));
        assert_eq!(b.try_recv(), Delivery::Empty);
        assert_eq!(reg.publish(Space::Channel, b"other", b"x"), 0);
        assert_eq!(reg.numpat(), 2);
        assert_eq!(reg.channels(Space::Channel, None), vec![b"news".to_vec()]);
        assert_eq!(
            reg.numsub(Space::Channel, &[b"news".to_vec(), b"none".to_vec()]),
            vec![1, 0]
        );
    }

    #[test]
    fn shard_channels_are_their_own_namespace() {
        let reg = Registry::new();
        let mut a = reg.subscriber(0);
        a.subscribe(Space::Shard, b"s");
        a.subscribe(Space::Pattern, b"*");
        assert_eq!(a.count(Space::Shard), 1);
        assert_eq!(a.count(Space::Channel), 1);
        assert_eq!(reg.publish(Space::Shard, b"s", b"1"), 1);
        assert_eq!(msg(a.try_recv()).space, Space::Shard);
        // A pattern does not see shard messages, and PUBLISH no shard subscriber.
        assert_eq!(a.try_recv(), Delivery::Empty);
        assert_eq!(reg.channels(Space::Shard, Some(b"s*")), vec![b"s".to_vec()]);
    }

    #[test]
    fn unsubscribe_and_drop_leave_nothing_behind() {
        let reg = Registry::new();
        let mut a = reg.subscriber(0);
        a.subscribe(Space::Channel, b"c");
        a.subscribe(Space::Channel, b"d");
        assert_eq!(a.unsubscribe(Space::Channel, b"c"), (true, 1));
        assert_eq!(a.unsubscribe(Space::Channel, b"c"), (false, 1));
        assert_eq!(reg.channels(Space::Channel, None), vec![b"d".to_vec()]);
        a.subscribe(Space::Pattern, b"p*");
        a.subscribe(Space::Shard, b"s");
        drop(a);
        assert!(reg.channels(Space::Channel, None).is_empty());
        assert!(reg.channels(Space::Shard, None).is_empty());
        assert_eq!(reg.numpat(), 0);
        assert_eq!(reg.publish(Space::Channel, b"d", b"x"), 0);
    }

    #[test]
    fn a_slow_subscriber_overflows_at_the_hard_limit_holding_at_most_it() {
        let limit = 10_000;
        let reg = Registry::new();
        let mut slow = reg.subscriber(limit);
        let mut fast = reg.subscriber(0);
        slow.subscribe(Space::Channel, b"c");
        fast.subscribe(Space::Channel, b"c");
        let payload = vec![b'x'; 1000];
        let mut delivered_to_slow = 0;
        for _ in 0..100 {
            let n = reg.publish(Space::Channel, b"c", &payload);
            assert!(slow.pending_bytes() <= limit);
            if n == 2 {
                delivered_to_slow += 1;
            }
            assert!(matches!(fast.try_recv(), Delivery::Message(_)));
        }
        assert!(delivered_to_slow > 0 && delivered_to_slow < 100);
        assert_eq!(slow.try_recv(), Delivery::Overflowed);
        // Once overflowed, it receives nothing more (it is to be disconnected).
        assert_eq!(reg.publish(Space::Channel, b"c", b"y"), 1);
    }

    #[test]
    fn the_soft_limit_overflows_after_its_seconds_and_calls_the_hook() {
        let reg = Registry::new();
        let hooked = Arc::new(AtomicUsize::new(0));
        let limit = OutputLimit {
            hard: 0,
            soft: 500,
            soft_secs: 1,
        };
        let mut sub = reg.subscriber_with(
            LiveLimit::new(limit),
            Some(Box::new({
                let hooked = hooked.clone();
                move || {
                    hooked.fetch_add(1, Ordering::SeqCst);
                }
            })),
        );
        sub.subscribe(Space::Channel, b"c");
        let payload = vec![b'x'; 200];
        // Over the soft limit, but not for a second yet: still queued.
        for _ in 0..5 {
            assert_eq!(reg.publish(Space::Channel, b"c", &payload), 1);
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(reg.publish(Space::Channel, b"c", &payload), 0);
        assert_eq!(hooked.load(Ordering::SeqCst), 1);
        assert_eq!(reg.publish(Space::Channel, b"c", &payload), 0);
        assert_eq!(hooked.load(Ordering::SeqCst), 1, "the hook runs once");
        assert_eq!(sub.try_recv(), Delivery::Overflowed);
    }

    #[test]
    fn publishers_on_other_threads_reach_the_subscriber() {
        let reg = Registry::new();
        let mut sub = reg.subscriber(0);
        sub.subscribe(Space::Channel, b"c");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let reg = reg.clone();
                std::thread::spawn(move || {
                    (0..250)
                        .map(|i| reg.publish(Space::Channel, b"c", format!("{t}:{i}").as_bytes()))
                        .sum::<usize>()
                })
            })
            .collect();
        let sent: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sent, 1000);
        let mut got = 0;
        while let Delivery::Message(_) = sub.try_recv() {
            got += 1;
        }
        assert_eq!(got, 1000);
        assert_eq!(sub.pending_bytes(), 0);
    }

    #[test]
    fn a_subscriber_task_wakes_for_messages_published_on_another_worker() {
        let got = matou::builder().extra_workers(2).run(async {
            let reg = Registry::new();
            let mut sub = reg.subscriber(0);
            sub.subscribe(Space::Channel, b"c");
            let listener = matou::spawn(async move {
                let mut got = Vec::new();
                while got.len() < 100 {
                    match sub.recv().await {
                        Delivery::Message(m) => got.push(m.payload.to_vec()),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                got
            });
            let publisher = matou::call({
                let reg = reg.clone();
                move || async move {
                    let mut receivers = 0;
                    for i in 0..100u32 {
                        receivers += reg.publish(Space::Channel, b"c", &i.to_be_bytes());
                        matou::yield_now().await;
                    }
                    receivers
                }
            })
            .expect("a worker for the publisher");
            assert_eq!(publisher.await.unwrap(), 100);
            let got = listener.await.unwrap();
            // The listener is gone: its subscription with it.
            assert!(reg.channels(Space::Channel, None).is_empty());
            got
        });
        let want: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(got, want);
    }
}
