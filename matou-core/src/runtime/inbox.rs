//! A worker's remote inbox and the sleep/interrupt handshake, without a lock.
//!
//! Other threads hand a worker messages (spawn this task here, wake this task)
//! through its inbox, then interrupt the worker's event source if, and only if,
//! the worker may be asleep in `select(block = true)`.
//!
//! The inbox is one atomic word, `head`, that is either a tag or the newest
//! node of a singly linked stack of pushed messages (a Treiber stack; every
//! node points at the one pushed before it):
//!
//! | `head`     | meaning                                              |
//! | ---------- | ---------------------------------------------------- |
//! | `EMPTY`    | no message; the worker is awake                      |
//! | `SLEEPING` | no message; the worker is (about to be) asleep       |
//! | `CLOSED`   | the run is over: pushes are refused                  |
//! | a node     | messages are queued; the worker is awake or waking   |
//!
//! Pushers (any thread) compare-and-swap `head` from what they read to their
//! node; the worker (the only consumer) swaps the whole stack out at once and
//! reverses it, so messages keep their push order per pusher, and a drain
//! costs one atomic operation whatever the batch size. The protocol (checked
//! by the loom models below):
//!
//! ```text
//!   pusher                                  worker
//!   ------                                  ------
//!   CAS head: seen -> node                  CAS head: EMPTY -> SLEEPING
//!   if seen was SLEEPING: interrupt()       if that succeeded: select(block)
//!                                           CAS head: SLEEPING -> EMPTY
//! ```
//!
//! Both decisions are read-modify-writes of the same word, so they are
//! totally ordered: either the push comes first (the worker's CAS fails and it
//! drains instead of sleeping) or the worker's does (the pusher replaces
//! `SLEEPING` and interrupts). Interrupts are sticky in every event source (an
//! interrupt that arrives before `select` makes it return at once), so no
//! message is ever stranded. A pusher that replaced `SLEEPING` leaves a node,
//! so the worker's `SLEEPING -> EMPTY` CAS fails harmlessly and the messages
//! stay for the next drain.
//!
//! Release on every successful push and Acquire on the worker's swap make
//! every message of the stack visible to the worker: each push is a
//! read-modify-write, so the pushes form one release sequence that the swap
//! reads the end of. Only the worker dereferences nodes, after that swap;
//! pushers only copy `head` into their own node's `next`.
//! Once [`Inbox::close`]d, pushes are refused and the message is handed back.

use super::padded::Padded;
use crate::loom::sync::atomic::{AtomicPtr, Ordering};
use std::marker::PhantomData;
use std::ptr;

struct Node<M> {
    msg: M,
    /// The node pushed just before this one (null for the oldest).
    next: *mut Node<M>,
}

/// `head` values that are not nodes. Nodes hold a pointer, so their
/// addresses are multiples of its alignment and never 1 or 2.
const EMPTY: usize = 0;
const SLEEPING: usize = 1;
const CLOSED: usize = 2;

fn tag<M>(value: usize) -> *mut Node<M> {
    ptr::without_provenance_mut(value)
}

fn is_node<M>(p: *mut Node<M>) -> bool {
    p.addr() > CLOSED
}

pub(crate) struct Inbox<M> {
    /// On its own cache line: the worker spins on it while idle, and only
    /// a push should invalidate its copy.
    head: Padded<AtomicPtr<Node<M>>>,
    /// The inbox owns the boxed nodes and their messages.
    _owns: PhantomData<Box<Node<M>>>,
}

// SAFETY: the inbox moves `M`s from the pushing threads to the worker's
// thread (hence `M: Send`); the raw node pointers are owned by the inbox and
// only dereferenced by the single consumer after it took them out of `head`.
unsafe impl<M: Send> Send for Inbox<M> {}
// SAFETY: as for `Send`: shared access only pushes (a CAS on `head`) or,
// on the worker's thread, takes the whole stack out.
unsafe impl<M: Send> Sync for Inbox<M> {}

/// What [`Inbox::push`] decided.
#[must_use]
pub(crate) enum Pushed<M> {
    /// Queued; the worker is awake and will see it.
    Queued,
    /// Queued; the worker may be asleep: interrupt its event source.
    QueuedInterrupt,
    /// The inbox is closed (the run is over); here is the message back.
    Closed(M),
}

impl<M> Inbox<M> {
    pub(crate) fn new() -> Self {
        Inbox {
            head: Padded(AtomicPtr::new(tag(EMPTY))),
            _owns: PhantomData,
        }
    }

    /// Queues `msg` (from any thread).
    pub(crate) fn push(&self, msg: M) -> Pushed<M> {
        let node = Box::into_raw(Box::new(Node {
            msg,
            next: ptr::null_mut(),
        }));
        let mut seen = self.head.0.load(Ordering::Acquire);
        loop {
            if seen.addr() == CLOSED {
                // SAFETY: `node` came from `Box::into_raw` above and was
                // never published.
                let node = unsafe { Box::from_raw(node) };
                return Pushed::Closed(node.msg);
            }
            let next = if is_node(seen) { seen } else { ptr::null_mut() };
            // SAFETY: `node` is not published yet: this thread owns it.
            unsafe { (*node).next = next };
            match self
                .head
                .0
                .compare_exchange_weak(seen, node, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if seen.addr() == SLEEPING => return Pushed::QueuedInterrupt,
                Ok(_) => return Pushed::Queued,
                Err(now) => seen = now,
            }
        }
    }

    /// Cheap check for the worker's loop.
    pub(crate) fn has_pending(&self) -> bool {
        is_node(self.head.0.load(Ordering::Acquire))
    }

    /// Moves every queued message into `into` (oldest first). Worker only.
    pub(crate) fn drain(&self, into: &mut Vec<M>) {
        if !self.has_pending() {
            return;
        }
        // Only pushers write `head` while the worker is awake and the inbox
        // open, and they only ever replace a node by a node.
        let newest = self.head.0.swap(tag(EMPTY), Ordering::Acquire);
        take_stack(newest, into);
    }

    /// The worker is about to block. Returns false when messages arrived (do
    /// not block; drain instead). Worker only.
    pub(crate) fn prepare_sleep(&self) -> bool {
        self.head
            .0
            .compare_exchange(
                tag(EMPTY),
                tag(SLEEPING),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// The worker woke up. Worker only.
    pub(crate) fn finish_sleep(&self) {
        // Fails when a pusher replaced `SLEEPING` by its node: the messages
        // stay queued for the next drain.
        let _ = self.head.0.compare_exchange(
            tag(SLEEPING),
            tag(EMPTY),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Refuses further messages and returns those still queued. Worker only.
    pub(crate) fn close(&self) -> Vec<M> {
        let newest = self.head.0.swap(tag(CLOSED), Ordering::Acquire);
        let mut rest = Vec::new();
        take_stack(newest, &mut rest);
        rest
    }
}

/// Appends the messages of the stack whose newest node is `newest` (a tag
/// means none) to `into`, oldest first, and frees the nodes.
fn take_stack<M>(newest: *mut Node<M>, into: &mut Vec<M>) {
    let start = into.len();
    let mut at = newest;
    while is_node(at) {
        // SAFETY: the caller took `newest` out of `head` with an Acquire
        // RMW, so this thread now owns the whole stack, and every node was
        // made by `Box::into_raw` in `push` and published with Release.
        let node = unsafe { Box::from_raw(at) };
        at = node.next;
        into.push(node.msg);
    }
    into[start..].reverse();
}

impl<M> Drop for Inbox<M> {
    fn drop(&mut self) {
        // `&mut self`: no other thread holds the inbox any more.
        let newest = self.head.0.load(Ordering::Acquire);
        let mut rest = Vec::new();
        take_stack(newest, &mut rest);
    }
}

/// loom models of the remote protocols: `RUSTFLAGS="--cfg loom" cargo test -p matou-core --lib loom`.
#[cfg(all(test, loom))]
pub(crate) mod loom_models {
    use super::{Inbox, Pushed};
    use crate::loom::sync::{Arc, Condvar, Mutex};
    use crate::loom::thread;

    /// A sticky interrupt, as every event source must provide (also used
    /// by the `OrphansHandle` model).
    #[derive(Default)]
    pub(crate) struct Sticky(Mutex<bool>, Condvar);
    impl Sticky {
        pub(crate) fn interrupt(&self) {
            *self.0.lock().unwrap() = true;
            self.1.notify_one();
        }
        pub(crate) fn block(&self) {
            let mut g = self.0.lock().unwrap();
            while !*g {
                g = self.1.wait(g).unwrap();
            }
            *g = false;
        }
    }

    fn push(inbox: &Inbox<u32>, ev: &Sticky, m: u32) {
        match inbox.push(m) {
            Pushed::Queued => {}
            Pushed::QueuedInterrupt => ev.interrupt(),
            Pushed::Closed(_) => panic!("closed"),
        }
    }

    /// Remote spawn / remote wake: a message pushed while the worker goes to
    /// sleep is always received (the worker never sleeps on a pending message).
    #[test]
    fn remote_message_is_never_stranded() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let ev = Arc::new(Sticky::default());
            let (i2, e2) = (inbox.clone(), ev.clone());
            let pusher = thread::spawn(move || push(&i2, &e2, 7));
            let mut got = Vec::new();
            while got.is_empty() {
                inbox.drain(&mut got);
                if got.is_empty() && inbox.prepare_sleep() {
                    ev.block();
                    inbox.finish_sleep();
                }
            }
            assert_eq!(got, [7]);
            pusher.join().unwrap();
        });
    }

    /// Two pushers (e.g. a remote wake and a remote cancel) both get through.
    #[test]
    fn two_pushers_both_arrive() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let ev = Arc::new(Sticky::default());
            let threads: Vec<_> = [1u32, 2]
                .into_iter()
                .map(|m| {
                    let (i, e) = (inbox.clone(), ev.clone());
                    thread::spawn(move || push(&i, &e, m))
                })
                .collect();
            let mut got = Vec::new();
            while got.len() < 2 {
                inbox.drain(&mut got);
                if got.len() < 2 && inbox.prepare_sleep() {
                    ev.block();
                    inbox.finish_sleep();
                }
            }
            got.sort();
            assert_eq!(got, [1, 2]);
            for t in threads {
                t.join().unwrap();
            }
        });
    }

    /// A push racing the worker's close: the message is either refused and
    /// handed back to the pusher, or returned by `close`; never lost, never
    /// both.
    #[test]
    fn push_racing_close_loses_nothing() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let i2 = inbox.clone();
            let pusher = thread::spawn(move || match i2.push(5u32) {
                Pushed::Closed(m) => Some(m),
                Pushed::Queued | Pushed::QueuedInterrupt => None,
            });
            let closed = inbox.close();
            let refused = pusher.join().unwrap();
            match refused {
                Some(m) => {
                    assert_eq!(m, 5);
                    assert!(closed.is_empty());
                }
                None => assert_eq!(closed, [5]),
            }
        });
    }

    /// One pusher's messages arrive in push order, across drains and a sleep.
    #[test]
    fn one_pusher_keeps_its_order() {
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let ev = Arc::new(Sticky::default());
            let (i2, e2) = (inbox.clone(), ev.clone());
            let pusher = thread::spawn(move || {
                push(&i2, &e2, 1);
                push(&i2, &e2, 2);
            });
            let mut got = Vec::new();
            while got.len() < 2 {
                inbox.drain(&mut got);
                if got.len() < 2 && inbox.prepare_sleep() {
                    ev.block();
                    inbox.finish_sleep();
                }
            }
            assert_eq!(got, [1, 2]);
            pusher.join().unwrap();
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Inbox, Pushed};
    use std::sync::Arc;

    fn queued(p: Pushed<u32>) -> bool {
        matches!(p, Pushed::Queued)
    }

    #[test]
    fn drains_oldest_first_and_in_one_go() {
        let inbox = Inbox::new();
        for m in 0..5 {
            assert!(queued(inbox.push(m)));
        }
        assert!(inbox.has_pending());
        let mut got = vec![99];
        inbox.drain(&mut got);
        assert_eq!(got, [99, 0, 1, 2, 3, 4]);
        assert!(!inbox.has_pending());
        inbox.drain(&mut got);
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn a_push_to_a_sleeping_worker_asks_for_an_interrupt_once() {
        let inbox = Inbox::new();
        assert!(inbox.prepare_sleep());
        assert!(matches!(inbox.push(1), Pushed::QueuedInterrupt));
        // The worker is woken already: the next push needs no interrupt.
        assert!(queued(inbox.push(2)));
        inbox.finish_sleep();
        assert!(inbox.has_pending(), "finish_sleep keeps the messages");
        assert!(!inbox.prepare_sleep(), "never sleeps on a message");
        let mut got = Vec::new();
        inbox.drain(&mut got);
        assert_eq!(got, [1, 2]);
        assert!(inbox.prepare_sleep());
        inbox.finish_sleep();
        assert!(queued(inbox.push(3)));
    }

    #[test]
    fn closed_inbox_hands_messages_back() {
        let inbox = Inbox::new();
        assert!(queued(inbox.push(1)));
        assert_eq!(inbox.close(), [1]);
        assert!(matches!(inbox.push(2), Pushed::Closed(2)));
        assert!(!inbox.has_pending());
        assert!(!inbox.prepare_sleep());
        let mut got = Vec::new();
        inbox.drain(&mut got);
        assert!(got.is_empty());
    }

    #[test]
    fn dropping_the_inbox_drops_queued_messages() {
        let token = Arc::new(());
        let inbox = Inbox::new();
        for _ in 0..3 {
            let _ = inbox.push(token.clone());
        }
        assert_eq!(Arc::strong_count(&token), 4);
        drop(inbox);
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn many_pushers_lose_nothing_and_keep_each_ones_order() {
        const PER: u32 = if cfg!(miri) { 50 } else { 20_000 };
        let inbox = Arc::new(Inbox::new());
        let pushers: Vec<_> = (0..4u32)
            .map(|p| {
                let inbox = inbox.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let _ = inbox.push((p, i));
                    }
                })
            })
            .collect();
        let mut next = [0u32; 4];
        let mut batch = Vec::new();
        while next.iter().any(|&n| n < PER) {
            inbox.drain(&mut batch);
            for (p, i) in batch.drain(..) {
                assert_eq!(i, next[p as usize], "pusher {p} out of order");
                next[p as usize] += 1;
            }
            std::hint::spin_loop();
        }
        for p in pushers {
            p.join().unwrap();
        }
        assert!(!inbox.has_pending());
    }
}
