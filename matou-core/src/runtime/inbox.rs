//! A worker's remote inbox and the sleep/interrupt handshake, without a lock
//! and, for the common messages, without an allocation.
//!
//! Other threads hand a worker messages (spawn this task here, wake this task)
//! through its inbox, then interrupt the worker's event source if, and only if,
//! the worker may be asleep in `select(block = true)`.
//!
//! The inbox is one atomic word, `head`, that is either a tag or the newest
//! [`Link`] of a singly linked stack of pushed messages (a Treiber stack; every
//! link points at the one pushed before it):
//!
//! | `head`     | meaning                                              |
//! | ---------- | ---------------------------------------------------- |
//! | `EMPTY`    | no message; the worker is awake                      |
//! | `SLEEPING` | no message; the worker is (about to be) asleep       |
//! | `CLOSED`   | the run is over: pushes are refused                  |
//! | a link     | messages are queued; the worker is awake or waking   |
//!
//! A link holds one message. It is either *lent* by the pusher
//! ([`Inbox::push_in`]: a task's header embeds one, so a remote spawn or wake
//! allocates nothing and frees nothing on the other thread) or *boxed* by the
//! inbox for the message ([`Inbox::push`], for the rare messages that have no
//! home of their own), and freed when drained. A lent link is in at most one
//! inbox at a time, and is the pusher's to write again only once the worker
//! has drained it and handed that fact over (for tasks: the `NOTIFIED` bit,
//! cleared by the worker after the drain, set by the next pusher with an
//! AcqRel read-modify-write, see `task::state`).
//!
//! Pushers (any thread) write the message and `next` into their link, then
//! compare-and-swap `head` from what they read to their link; the worker (the
//! only consumer) swaps the whole stack out at once and reverses it, so
//! messages keep their push order per pusher, and a drain costs one atomic
//! operation whatever the batch size. The protocol (checked by the loom models
//! below):
//!
//! ```text
//!   pusher                                  worker
//!   ------                                  ------
//!   write link.msg, link.next               CAS head: EMPTY -> SLEEPING
//!   CAS head: seen -> link                  if that succeeded: select(block)
//!   if seen was SLEEPING: interrupt()       CAS head: SLEEPING -> EMPTY
//!                                           (drain) swap head -> EMPTY, then
//!                                           take each link's msg and next
//! ```
//!
//! Both decisions are read-modify-writes of the same word, so they are
//! totally ordered: either the push comes first (the worker's CAS fails and it
//! drains instead of sleeping) or the worker's does (the pusher replaces
//! `SLEEPING` and interrupts). Interrupts are sticky in every event source (an
//! interrupt that arrives before `select` makes it return at once), so no
//! message is ever stranded. A pusher that replaced `SLEEPING` leaves a link,
//! so the worker's `SLEEPING -> EMPTY` CAS fails harmlessly and the messages
//! stay for the next drain.
//!
//! Release on every successful push and Acquire on the worker's swap make
//! every link of the stack visible to the worker: each push is a
//! read-modify-write, so the pushes form one release sequence that the swap
//! reads the end of. Only the worker reads links, after that swap; pushers
//! only write their own unpublished link. A queued link's message is what
//! keeps a lent link's memory alive (a task's queue reference), so the worker
//! touches the link only before it has moved the message out.
//! Once [`Inbox::close`]d, pushes are refused and the message is handed back.

use super::padded::Padded;
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicPtr, Ordering};
use std::marker::PhantomData;
use std::ptr;

/// A place for one message in an [`Inbox`]'s stack.
pub(crate) struct Link<M> {
    /// The link pushed just before this one (null for the oldest); written
    /// by the pusher while the link is unpublished.
    next: UnsafeCell<*mut Link<M>>,
    /// The message while the link is queued, `None` otherwise.
    msg: UnsafeCell<Option<M>>,
    /// Allocated by the inbox for its message (freed when drained), rather
    /// than lent by the pusher.
    boxed: bool,
}

// SAFETY: a link's cells are touched by one thread at a time: the pusher
// before it publishes the link (Release CAS on `head`), the worker after it
// took the stack (Acquire swap), and for a lent link the next pusher only
// after the worker's hand-over (see the module docs). What crosses threads
// is the message, hence `M: Send`.
unsafe impl<M: Send> Send for Link<M> {}
// SAFETY: as for `Send`: shared access never touches the cells concurrently.
unsafe impl<M: Send> Sync for Link<M> {}

impl<M> Link<M> {
    /// A link for a caller to embed and lend to [`Inbox::push_in`].
    pub(crate) fn new() -> Link<M> {
        Link::make(None, false)
    }

    fn make(msg: Option<M>, boxed: bool) -> Link<M> {
        Link {
            next: UnsafeCell::new(ptr::null_mut()),
            msg: UnsafeCell::new(msg),
            boxed,
        }
    }
}

/// `head` values that are not links. Links hold a pointer, so their
/// addresses are multiples of its alignment and never 1 or 2.
const EMPTY: usize = 0;
const SLEEPING: usize = 1;
const CLOSED: usize = 2;

fn tag<M>(value: usize) -> *mut Link<M> {
    ptr::without_provenance_mut(value)
}

fn is_link<M>(p: *mut Link<M>) -> bool {
    p.addr() > CLOSED
}

pub(crate) struct Inbox<M> {
    /// On its own cache line: the worker spins on it while idle, and only
    /// a push should invalidate its copy.
    head: Padded<AtomicPtr<Link<M>>>,
    /// The inbox owns its boxed links and every queued message.
    _owns: PhantomData<Box<Link<M>>>,
}

// SAFETY: the inbox moves `M`s from the pushing threads to the worker's
// thread (hence `M: Send`); the raw link pointers are only dereferenced by
// the single consumer after it took them out of `head`.
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

    /// Queues `msg` (from any thread) in a link allocated for it.
    pub(crate) fn push(&self, msg: M) -> Pushed<M> {
        let link = Box::into_raw(Box::new(Link::make(Some(msg), true)));
        // SAFETY: a fresh link, in no inbox; the inbox owns it from here
        // (freed by the drain, or below when refused).
        match unsafe { self.publish(link) } {
            Ok(pushed) => pushed,
            Err(()) => {
                // SAFETY: refused, so never published: still ours, from
                // `Box::into_raw` above.
                let link = unsafe { Box::from_raw(link) };
                let msg = link.msg.with_mut(|m| {
                    // SAFETY: the link is owned here.
                    unsafe { (*m).take() }
                });
                Pushed::Closed(msg.expect("a pushed link holds its message"))
            }
        }
    }

    /// Queues `msg` (from any thread) in `link`, which the caller lends: no
    /// allocation.
    ///
    /// # Safety
    /// - `link` is in no inbox: it was never pushed, or the worker has
    ///   drained it since and that drain happens-before this call;
    /// - `link` stays valid until the worker has taken `msg` out of it (e.g.
    ///   `msg` owns a reference to the allocation that holds `link`);
    /// - `link` was made by [`Link::new`].
    pub(crate) unsafe fn push_in(&self, link: *const Link<M>, msg: M) -> Pushed<M> {
        let link = link.cast_mut();
        // SAFETY: by the caller's contract nobody else touches the link's
        // cells until it is published.
        let link_ref = unsafe { &*link };
        // SAFETY: as above: this thread has the link to itself.
        link_ref.msg.with_mut(|m| unsafe { *m = Some(msg) });
        // SAFETY: as above.
        match unsafe { self.publish(link) } {
            Ok(pushed) => pushed,
            Err(()) => {
                // SAFETY: refused, so never published: still ours.
                let msg = link_ref.msg.with_mut(|m| unsafe { (*m).take() });
                Pushed::Closed(msg.expect("a pushed link holds its message"))
            }
        }
    }

    /// Links `link` (holding its message) onto the stack. `Err` when closed:
    /// the link was not published.
    ///
    /// # Safety
    /// `link` is valid, in no inbox, and this thread alone touches it.
    unsafe fn publish(&self, link: *mut Link<M>) -> Result<Pushed<M>, ()> {
        let mut seen = self.head.0.load(Ordering::Acquire);
        loop {
            if seen.addr() == CLOSED {
                return Err(());
            }
            let next = if is_link(seen) { seen } else { ptr::null_mut() };
            // SAFETY: `link` is not published yet: this thread owns it.
            unsafe { (*link).next.with_mut(|n| *n = next) };
            match self
                .head
                .0
                .compare_exchange_weak(seen, link, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if seen.addr() == SLEEPING => return Ok(Pushed::QueuedInterrupt),
                Ok(_) => return Ok(Pushed::Queued),
                Err(now) => seen = now,
            }
        }
    }

    /// Cheap check for the worker's loop.
    pub(crate) fn has_pending(&self) -> bool {
        is_link(self.head.0.load(Ordering::Acquire))
    }

    /// Moves every queued message into `into` (oldest first). Worker only.
    pub(crate) fn drain(&self, into: &mut Vec<M>) {
        if !self.has_pending() {
            return;
        }
        // Only pushers write `head` while the worker is awake and the inbox
        // open, and they only ever replace a link by a link.
        let newest = self.head.0.swap(tag(EMPTY), Ordering::Acquire);
        // SAFETY: taken out of `head` by this Acquire swap.
        unsafe { take_stack(newest, into) };
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
        // Fails when a pusher replaced `SLEEPING` by its link: the messages
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
        // SAFETY: taken out of `head` by this Acquire swap.
        unsafe { take_stack(newest, &mut rest) };
        rest
    }
}

/// Appends the messages of the stack whose newest link is `newest` (a tag
/// means none) to `into`, oldest first, and frees the boxed links.
///
/// # Safety
/// The caller took `newest` out of `head` with an Acquire read-modify-write
/// (or has the inbox to itself), so this thread owns the whole stack.
unsafe fn take_stack<M>(newest: *mut Link<M>, into: &mut Vec<M>) {
    let start = into.len();
    let mut at = newest;
    while is_link(at) {
        // SAFETY: the stack is ours (see above); every link was published
        // with Release by a push after its cells were written, and is valid
        // until its message is moved out (a lent link's message keeps it
        // alive; a boxed one is freed only below).
        let link = unsafe { &*at };
        // SAFETY: as above.
        let next = link.next.with(|n| unsafe { *n });
        let boxed = link.boxed;
        // SAFETY: as above. After this the link is not touched again: the
        // pusher may reuse a lent one once the worker hands it over.
        let msg = link.msg.with_mut(|m| unsafe { (*m).take() });
        if boxed {
            // SAFETY: boxed links come from `Box::into_raw` in `push`, and
            // the inbox owns them once published.
            drop(unsafe { Box::from_raw(at) });
        }
        into.push(msg.expect("a queued link holds its message"));
        at = next;
    }
    into[start..].reverse();
}

impl<M> Drop for Inbox<M> {
    fn drop(&mut self) {
        // `&mut self`: no other thread holds the inbox any more.
        let newest = self.head.0.load(Ordering::Acquire);
        let mut rest = Vec::new();
        // SAFETY: the inbox is ours alone (see above).
        unsafe { take_stack(newest, &mut rest) };
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

    /// A lent link (a task's header link) reused for a second push: the
    /// pusher's second write of the link never races the worker's read of
    /// the first message (loom checks the cells), the hand-over being the
    /// task's `NOTIFIED` bit as in the runtime, and a boxed message pushed
    /// meanwhile by another thread shares the stack with it.
    #[test]
    fn lent_link_is_reused_only_after_its_drain() {
        use super::Link;
        use crate::task::state::{Notify, State};
        struct Task {
            link: Link<(Arc<Task>, u32)>,
            state: State,
        }
        fn push_task(inbox: &Inbox<(Arc<Task>, u32)>, ev: &Sticky, t: &Arc<Task>, m: u32) {
            // SAFETY: only the thread that made the task or flipped
            // `NOTIFIED` pushes it, and the message keeps it alive.
            match unsafe { inbox.push_in(&t.link, (t.clone(), m)) } {
                Pushed::Queued => {}
                Pushed::QueuedInterrupt => ev.interrupt(),
                Pushed::Closed(_) => panic!("closed"),
            }
        }
        fn new_task() -> Arc<Task> {
            Arc::new(Task {
                link: Link::new(),
                state: State::new_scheduled(),
            })
        }
        loom::model(|| {
            let inbox = Arc::new(Inbox::new());
            let ev = Arc::new(Sticky::default());
            let task = new_task();
            // Spawned (born notified) and pushed by its maker.
            push_task(&inbox, &ev, &task, 1);
            let (i2, e2, t2) = (inbox.clone(), ev.clone(), task.clone());
            let waker = thread::spawn(move || {
                if t2.state.notify() == Notify::Enqueue {
                    push_task(&i2, &e2, &t2, 2);
                    true
                } else {
                    false
                }
            });
            let (i3, e3) = (inbox.clone(), ev.clone());
            let other = thread::spawn(move || match i3.push((new_task(), 9)) {
                Pushed::Queued => {}
                Pushed::QueuedInterrupt => e3.interrupt(),
                Pushed::Closed(_) => panic!("closed"),
            });
            let mut got = Vec::new();
            while !got.iter().any(|(_, m)| *m == 1) {
                inbox.drain(&mut got);
            }
            // The worker runs the task: the link is free again.
            let _ = task.state.take_notified();
            let woke = waker.join().unwrap();
            other.join().unwrap();
            let want = if woke { 3 } else { 2 };
            while got.len() < want {
                inbox.drain(&mut got);
                if got.len() < want && inbox.prepare_sleep() {
                    ev.block();
                    inbox.finish_sleep();
                }
            }
            let mut ms: Vec<u32> = got.iter().map(|(_, m)| *m).collect();
            ms.sort();
            assert_eq!(ms, if woke { vec![1, 2, 9] } else { vec![1, 9] });
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
    use super::{Inbox, Link, Pushed};
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

    /// A message that lends its own link, as a task header does.
    struct Item {
        link: Link<Arc<Item>>,
        id: u32,
    }

    fn item(id: u32) -> Arc<Item> {
        Arc::new(Item {
            link: Link::new(),
            id,
        })
    }

    fn push_item(inbox: &Inbox<Arc<Item>>, it: &Arc<Item>) -> Pushed<Arc<Item>> {
        // SAFETY: the tests push an item again only after draining it, and
        // the message keeps the item alive.
        unsafe { inbox.push_in(&it.link, it.clone()) }
    }

    #[test]
    fn lent_and_boxed_links_share_one_order_and_lent_ones_are_reused() {
        let inbox = Inbox::new();
        let (a, b) = (item(1), item(2));
        assert!(matches!(push_item(&inbox, &a), Pushed::Queued));
        assert!(matches!(inbox.push(item(3)), Pushed::Queued));
        assert!(matches!(push_item(&inbox, &b), Pushed::Queued));
        let mut got = Vec::new();
        inbox.drain(&mut got);
        let ids: Vec<u32> = got.drain(..).map(|i| i.id).collect();
        assert_eq!(ids, [1, 3, 2]);
        assert_eq!(
            Arc::strong_count(&a),
            1,
            "the drain took the queue's reference"
        );
        // Both links are free again: push them in the other order.
        assert!(matches!(push_item(&inbox, &b), Pushed::Queued));
        assert!(matches!(push_item(&inbox, &a), Pushed::Queued));
        inbox.drain(&mut got);
        let ids: Vec<u32> = got.iter().map(|i| i.id).collect();
        assert_eq!(ids, [2, 1]);
    }

    #[test]
    fn closed_inbox_hands_a_lent_message_back_and_frees_queued_ones() {
        let inbox = Inbox::new();
        let (a, b) = (item(1), item(2));
        assert!(matches!(push_item(&inbox, &a), Pushed::Queued));
        assert_eq!(Arc::strong_count(&a), 2);
        let rest = inbox.close();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].id, 1);
        drop(rest);
        assert_eq!(Arc::strong_count(&a), 1);
        match push_item(&inbox, &b) {
            Pushed::Closed(back) => assert_eq!(back.id, 2),
            _ => panic!("a closed inbox queued a message"),
        }
        assert_eq!(
            Arc::strong_count(&b),
            1,
            "nothing stays in the refused link"
        );
    }

    #[test]
    fn dropping_the_inbox_releases_lent_messages() {
        let a = item(1);
        let inbox = Inbox::new();
        assert!(matches!(push_item(&inbox, &a), Pushed::Queued));
        assert_eq!(Arc::strong_count(&a), 2);
        drop(inbox);
        assert_eq!(Arc::strong_count(&a), 1);
    }

    /// Each pusher re-pushes its one item as soon as the worker has drained
    /// it (the worker hands it back with a flag, as `NOTIFIED` does for
    /// tasks): every push arrives and links are never in two places.
    #[test]
    fn lent_links_reused_across_threads_lose_nothing() {
        use std::sync::atomic::{AtomicBool, Ordering};
        const ROUNDS: u32 = if cfg!(miri) { 30 } else { 5_000 };
        let inbox = Arc::new(Inbox::new());
        let items: Vec<_> = (0..3).map(item).collect();
        let free: Arc<Vec<AtomicBool>> = Arc::new((0..3).map(|_| AtomicBool::new(true)).collect());
        let pushers: Vec<_> = items
            .iter()
            .map(|it| {
                let (inbox, it, free) = (inbox.clone(), it.clone(), free.clone());
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        while !free[it.id as usize].swap(false, Ordering::AcqRel) {
                            std::thread::yield_now();
                        }
                        assert!(!matches!(push_item(&inbox, &it), Pushed::Closed(_)));
                    }
                })
            })
            .collect();
        let mut seen = [0u32; 3];
        let mut batch = Vec::new();
        while seen.iter().any(|&n| n < ROUNDS) {
            inbox.drain(&mut batch);
            for it in batch.drain(..) {
                seen[it.id as usize] += 1;
                free[it.id as usize].store(true, Ordering::Release);
            }
            std::thread::yield_now();
        }
        for p in pushers {
            p.join().unwrap();
        }
        assert_eq!(seen, [ROUNDS; 3]);
        assert!(!inbox.has_pending());
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
