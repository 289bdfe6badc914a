//! The reactor: one per worker, matou's event source on epoll or io_uring.
//!
//! A [`Reactor`] owns an epoll instance (or an io_uring poller, see
//! `uring`, chosen per worker by `backend`), the table of registered descriptors,
//! the worker's timers and its interrupter. It is created on its worker's
//! thread by [`EpollSource::new`] (the factory given to
//! `Builder::event_source`), and published in a thread-local so that the I/O
//! and timer futures of that worker find it. Tasks park on it only through the
//! core's public seam: they create a `syscall()`, file its uid here, and
//! `suspend`; [`Reactor::select`] turns epoll events and expired timers back
//! into `Signal`s.
//!
//! Invariants:
//! - `state` is touched only on the owning worker's thread; other threads
//!   reach a reactor only through [`Remote`] (epoll fd, forget list,
//!   interrupter), which is `Send + Sync`;
//! - every uid filed here is in `waits` (I/O and signal waiters) or in the
//!   timer wheel, until it is signalled (removed first) or reported in
//!   `cancelled` (removed then). So nothing stale is ever signalled;
//! - no `RefCell` borrow of `state` is held while calling code that could
//!   re-enter the reactor; dropping a core `Suspend` (which only talks to the
//!   core) is the one foreign call made under a borrow;
//! - a registered descriptor has exactly one entry in exactly one reactor; its
//!   token carries a generation so an event for a slot that was freed and
//!   reused is recognised and ignored;
//! - an entry released from another thread (its descriptor now waits on
//!   another reactor) signals every uid still waiting on it when it is freed,
//!   so no task of this worker sleeps on a registration that moved away; its
//!   poll-based `Suspend`s are kept in `retired` until the next `select`, so
//!   the core sees them signalled (and wakes their tasks) before they drop.
//!
//! There is no lost wake-up: an operation retries its syscall and files its
//! uid within one poll of its task, and `select` runs on the same thread only
//! between polls; an edge that happens in between stays queued in epoll
//! (or, on io_uring, in the ring's completion queue).

pub(crate) mod backend;
pub(crate) mod interrupt;
pub(crate) mod io;
pub(crate) mod timers;
mod uring;

use crate::sys;
pub use backend::Backend;
use interrupt::EventFdInterrupt;
use matou_core::{EventSource, Interrupt, Signal, Suspend, Uid};
use slab::Slab;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use timers::TimerWheel;

/// The epoll token of the interrupter's eventfd.
const WAKE_TOKEN: u64 = u64::MAX;
/// The epoll token of the process-wide signal eventfd.
const SIGNAL_TOKEN: u64 = u64::MAX - 1;
/// How many events one `epoll_wait` harvests; the rest wait for the next one.
const EVENTS_CAPACITY: usize = 1024;

/// A hasher for uids: they are distinct integers, so one multiplication
/// (Fibonacci hashing) spreads them well; SipHash would cost more than the
/// rest of a park.
#[derive(Default)]
pub(crate) struct UidHasher(u64);

impl Hasher for UidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type UidMap<V> = HashMap<Uid, V, BuildHasherDefault<UidHasher>>;

/// A direction of readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

/// Where a filed uid waits (timers live in the timer wheel instead).
#[derive(Clone, Copy, Debug)]
enum Wait {
    Io { key: usize, dir: Dir },
    Signal,
}

/// The uids waiting on one direction of one descriptor. Almost always zero or
/// one, so that case does not allocate.
#[derive(Default, Debug)]
enum Waiters {
    #[default]
    None,
    One(Uid),
    Many(Vec<Uid>),
}

impl Waiters {
    fn push(&mut self, uid: Uid) {
        *self = match std::mem::take(self) {
            Waiters::None => Waiters::One(uid),
            Waiters::One(a) => Waiters::Many(vec![a, uid]),
            Waiters::Many(mut v) => {
                v.push(uid);
                Waiters::Many(v)
            }
        };
    }

    fn remove(&mut self, uid: Uid) {
        match self {
            Waiters::One(a) if *a == uid => *self = Waiters::None,
            Waiters::Many(v) => v.retain(|u| *u != uid),
            _ => {}
        }
    }

    fn drain(&mut self, mut f: impl FnMut(Uid)) {
        match std::mem::take(self) {
            Waiters::None => {}
            Waiters::One(a) => f(a),
            Waiters::Many(v) => v.into_iter().for_each(f),
        }
    }
}

/// One registered descriptor.
struct Entry {
    generation: u32,
    waiters: [Waiters; 2],
    /// The parked syscall of a poll-based operation (`AsyncRead::poll_read`,
    /// ...), per direction. Poll-based callers have no place of their own to
    /// keep a `Suspend` (they are called with `&self`, and the socket may be
    /// shared between workers), so it lives here, on the worker that owns it.
    polled: [Option<Suspend>; 2],
}

/// The part of a reactor other threads may touch.
pub(crate) struct Remote {
    /// `None` on the io_uring backend, whose ring only its owner touches.
    epoll: Option<OwnedFd>,
    interrupter: Arc<EventFdInterrupt>,
    /// Tokens of descriptors that were moved to (or dropped on) another
    /// thread: their entries are freed by the owner's next `select`.
    forget: Mutex<Vec<u64>>,
    has_forget: AtomicBool,
}

impl Remote {
    /// Called from any thread, while `fd` is still open: stops watching `fd`
    /// and asks the owning reactor to free its entry.
    pub(crate) fn release(&self, token: u64, fd: BorrowedFd<'_>) {
        // EPOLL_CTL_DEL is thread-safe and also drops the fd's queued events.
        if let Some(epoll) = &self.epoll {
            let _ = sys::epoll_del(epoll.as_fd(), fd);
        }
        self.forget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token);
        self.has_forget.store(true, Ordering::Release);
        // The owner must run its `select` soon, even if it sleeps with
        // nothing else to wake it: tasks of its own may still wait on `fd`
        // there (it signals them when it frees the entry), and on io_uring
        // its ring polls the file (holding it open) until the owner submits
        // the removal.
        self.interrupter.interrupt();
    }
}

struct State {
    entries: Slab<Entry>,
    next_generation: u32,
    waits: UidMap<Wait>,
    /// How many uids wait on descriptors or signals: when none does and the
    /// select must not block, epoll has nothing to tell and is not asked.
    waiting: usize,
    timers: TimerWheel<Uid>,
    signal_waiters: Vec<Uid>,
    watching_signals: bool,
    events: Vec<sys::Event>,
    /// The io_uring poller's harvest: `(token, readable, writable)`.
    ring_events: Vec<(u64, bool, bool)>,
    /// Entries released from other threads at the last `select`, whose
    /// polled `Suspend`s were signalled then: dropped at the next one, once
    /// the core has seen the signals.
    retired: Vec<Entry>,
}

/// One worker's reactor. See the module docs.
pub(crate) struct Reactor {
    remote: Arc<Remote>,
    state: RefCell<State>,
    /// The io_uring poller; `None` on epoll. Never borrowed with `state`
    /// held across a call that could re-enter.
    uring: Option<RefCell<uring::Ring>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

/// The reactor of the calling worker.
///
/// # Panics
/// When this thread has no matou-unix reactor (the run was not started with
/// `matou_unix::run` / `matou_unix::builder()`), naming `what`.
#[track_caller]
pub(crate) fn current(what: &str) -> Rc<Reactor> {
    try_current().unwrap_or_else(|| {
        panic!(
            "{what} needs matou-unix's event source on this worker: start the run with \
             matou_unix::run or matou_unix::builder()"
        )
    })
}

pub(crate) fn try_current() -> Option<Rc<Reactor>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

fn token(key: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | key as u64
}

fn split(token: u64) -> (usize, u32) {
    ((token & 0xffff_ffff) as usize, (token >> 32) as u32)
}

impl Reactor {
    fn new() -> std::io::Result<Reactor> {
        Reactor::on(Backend::Epoll)
    }

    /// A reactor on `backend`, or on epoll when io_uring was asked for and
    /// is unavailable (the reason logged once).
    fn on(backend: Backend) -> std::io::Result<Reactor> {
        let interrupter = Arc::new(EventFdInterrupt::new()?);
        let mut ring = match backend {
            Backend::Epoll => None,
            Backend::Uring => match uring::Ring::new() {
                Ok(ring) => Some(ring),
                Err(e) => {
                    backend::log_fallback(&uring::explain(&e));
                    None
                }
            },
        };
        let epoll = match ring.as_mut() {
            Some(ring) => {
                ring.watch_input(interrupter.fd(), WAKE_TOKEN);
                None
            }
            None => {
                let epoll = sys::epoll_create()?;
                sys::epoll_add_input(epoll.as_fd(), interrupter.fd(), WAKE_TOKEN)?;
                Some(epoll)
            }
        };
        Ok(Reactor {
            uring: ring.map(RefCell::new),
            remote: Arc::new(Remote {
                epoll,
                interrupter,
                forget: Mutex::new(Vec::new()),
                has_forget: AtomicBool::new(false),
            }),
            state: RefCell::new(State {
                entries: Slab::new(),
                next_generation: 0,
                waits: UidMap::default(),
                waiting: 0,
                timers: TimerWheel::new(),
                signal_waiters: Vec::new(),
                watching_signals: false,
                events: Vec::with_capacity(EVENTS_CAPACITY),
                ring_events: Vec::new(),
                retired: Vec::new(),
            }),
        })
    }

    pub(crate) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    /// The backend this reactor runs on (after any fallback).
    pub(crate) fn backend(&self) -> Backend {
        if self.uring.is_some() {
            Backend::Uring
        } else {
            Backend::Epoll
        }
    }

    /// Starts watching `fd`; returns its token.
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> std::io::Result<u64> {
        let mut st = self.state.borrow_mut();
        let generation = st.next_generation;
        st.next_generation = generation.wrapping_add(1);
        let key = st.entries.vacant_key();
        assert!(
            key < 0xffff_ff00,
            "matou-unix: too many registered descriptors"
        );
        let tok = token(key, generation);
        match (&self.uring, &self.remote.epoll) {
            (Some(ring), _) => ring.borrow_mut().watch(fd, tok)?,
            (None, Some(epoll)) => sys::epoll_add(epoll.as_fd(), fd, tok)?,
            (None, None) => unreachable!("a reactor has a ring or an epoll"),
        }
        st.entries.insert(Entry {
            generation,
            waiters: Default::default(),
            polled: [None, None],
        });
        Ok(tok)
    }

    /// Stops watching `fd` (still open) and frees its entry, on this worker.
    pub(crate) fn deregister(&self, token: u64, fd: BorrowedFd<'_>) {
        match (&self.uring, &self.remote.epoll) {
            (Some(ring), _) => ring.borrow_mut().forget_now(token),
            (None, Some(epoll)) => {
                let _ = sys::epoll_del(epoll.as_fd(), fd);
            }
            (None, None) => {}
        }
        let entry = self.state.borrow_mut().remove_entry(token, |_| {});
        // The entry's parked syscalls are dropped outside the borrow.
        drop(entry);
    }

    /// Files `uid` as waiting for `dir` on the descriptor of `token`.
    pub(crate) fn add_io_waiter(&self, token: u64, dir: Dir, uid: Uid) {
        self.arm(token);
        self.state.borrow_mut().add_io_waiter(token, dir, uid);
    }

    /// On io_uring, makes sure `token`'s poll is armed before a task waits.
    fn arm(&self, token: u64) {
        if let Some(ring) = &self.uring {
            ring.borrow_mut().ensure_armed(token);
        }
    }

    /// The poll-based wait: parks the current task (waking `cx`) until `dir`
    /// may be ready on `token`'s descriptor. `Ready` means "retry the syscall".
    pub(crate) fn poll_io(&self, token: u64, dir: Dir, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(filed) = self.poll_filed(token, dir, cx) {
            return filed;
        }
        let (key, generation) = split(token);
        let mut st = self.state.borrow_mut();
        let Some(entry) = st
            .entries
            .get_mut(key)
            .filter(|e| e.generation == generation)
        else {
            return Poll::Ready(());
        };
        self.arm(token);
        let call = matou_core::syscall();
        let uid = call.uid();
        let mut parked = matou_core::suspend(call);
        // Registers `cx`'s waker; it cannot be ready: nothing signalled it yet.
        let _ = Pin::new(&mut parked).poll(cx);
        entry.polled[dir as usize] = Some(parked);
        st.add_io_waiter(token, dir, uid);
        Poll::Pending
    }

    /// The poll-based wait filed earlier on `token`'s `dir`, if any:
    /// `Pending` while it waits (refreshing the waker the core will wake),
    /// `Ready` once it was signalled (the wait is then over and dropped).
    /// `None` when there is no such wait (or no such entry).
    ///
    /// A caller that gets `Pending` knows that no readiness came since the
    /// `WouldBlock` that filed the wait (an event, or the entry's release,
    /// would have signalled it), so its syscall would only fail again.
    pub(crate) fn poll_filed(
        &self,
        token: u64,
        dir: Dir,
        cx: &mut Context<'_>,
    ) -> Option<Poll<()>> {
        let (key, generation) = split(token);
        let mut st = self.state.borrow_mut();
        let entry = st
            .entries
            .get_mut(key)
            .filter(|e| e.generation == generation)?;
        let parked = entry.polled[dir as usize].as_mut()?;
        // Polling refreshes the waker the core will wake for this uid.
        if Pin::new(parked).poll(cx).is_pending() {
            return Some(Poll::Pending);
        }
        let done = entry.polled[dir as usize].take();
        drop(st);
        // A consumed `Suspend` is dropped outside the borrow.
        drop(done);
        Some(Poll::Ready(()))
    }

    /// Files a timer for `uid`.
    pub(crate) fn add_timer(&self, deadline: Instant, uid: Uid) {
        self.state.borrow_mut().timers.insert(deadline, uid);
    }

    /// Makes sure this reactor watches the process-wide signal eventfd.
    pub(crate) fn watch_signals(&self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        let mut st = self.state.borrow_mut();
        if !st.watching_signals {
            match (&self.uring, &self.remote.epoll) {
                (Some(ring), _) => ring.borrow_mut().watch_input(fd, SIGNAL_TOKEN),
                (None, Some(epoll)) => sys::epoll_add_input(epoll.as_fd(), fd, SIGNAL_TOKEN)?,
                (None, None) => {}
            }
            st.watching_signals = true;
        }
        Ok(())
    }

    /// Files `uid` to be signalled at the next process signal delivery.
    pub(crate) fn add_signal_waiter(&self, uid: Uid) {
        let mut st = self.state.borrow_mut();
        st.signal_waiters.push(uid);
        st.waits.insert(uid, Wait::Signal);
        st.waiting += 1;
    }

    /// Miou's `select`; see [`EventSource::select`] and the module docs.
    fn select(&self, block: bool, cancelled: &[Uid], signals: &mut Vec<Signal>) {
        let mut st = self.state.borrow_mut();
        for &uid in cancelled {
            st.cancel(uid);
        }
        drop(st);
        // After the cancellations, so that no cancelled uid is signalled.
        let forgotten = self.drain_forget(Some(signals));
        let mut st = self.state.borrow_mut();
        let now = Instant::now();
        let timeout = if block {
            st.timers.next_timeout(now)
        } else {
            Some(Duration::ZERO)
        };
        if let Some(ring) = &self.uring {
            let mut events = std::mem::take(&mut st.ring_events);
            drop(st);
            // The only blocking call of a worker: no borrow of `state` is
            // held across it.
            ring.borrow_mut().wait(timeout, &mut events);
            st = self.state.borrow_mut();
            for &(tok, readable, writable) in &events {
                st.dispatch(tok, readable, writable, &self.remote.interrupter, signals);
            }
            st.ring_events = events;
        } else if block || st.waiting > 0 {
            let epoll = self.remote.epoll.as_ref().expect("an epoll reactor");
            let mut events = std::mem::take(&mut st.events);
            drop(st);
            // The only blocking call of a worker: no borrow is held across it.
            let waited = sys::epoll_wait(epoll.as_fd(), &mut events, timeout);
            if let Err(e) = waited {
                panic!("matou-unix: epoll_wait failed: {e}");
            }
            st = self.state.borrow_mut();
            for ev in &events {
                let (tok, r, w) = (
                    sys::token_of(ev),
                    sys::is_readable(ev),
                    sys::is_writable(ev),
                );
                st.dispatch(tok, r, w, &self.remote.interrupter, signals);
            }
            st.events = events;
        }
        if st.timers.len() > 0 {
            st.timers
                .expire(Instant::now(), |uid| signals.push(Signal::new(uid)));
        }
        drop(st);
        drop(forgotten);
    }

    /// Frees the entries of descriptors released from other threads, pushing
    /// a signal for each uid that waited on them (when `signals` is given:
    /// not at shutdown). Returns the entries retired by the previous call,
    /// to be dropped outside any borrow (see `State::retired`).
    fn drain_forget(&self, signals: Option<&mut Vec<Signal>>) -> Vec<Entry> {
        if !self.remote.has_forget.swap(false, Ordering::Acquire) {
            return std::mem::take(&mut self.state.borrow_mut().retired);
        }
        let tokens =
            std::mem::take(&mut *self.remote.forget.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(ring) = &self.uring {
            let mut ring = ring.borrow_mut();
            for &t in &tokens {
                // Submitted with this select's batch.
                ring.forget(t);
            }
        }
        let mut st = self.state.borrow_mut();
        let mut freed = Vec::with_capacity(tokens.len());
        let signals_given = signals.is_some();
        match signals {
            Some(signals) => {
                for t in tokens {
                    let Some(entry) = st.remove_entry(t, |uid| signals.push(Signal::new(uid)))
                    else {
                        continue;
                    };
                    signals.extend(entry.polled.iter().flatten().map(|p| Signal::new(p.uid())));
                    freed.push(entry);
                }
            }
            None => freed.extend(
                tokens
                    .into_iter()
                    .filter_map(|t| st.remove_entry(t, |_| {})),
            ),
        }
        let previous = std::mem::replace(&mut st.retired, freed);
        if signals_given {
            previous
        } else {
            // At shutdown nothing is signalled: drop everything now.
            let mut all = previous;
            all.append(&mut st.retired);
            all
        }
    }

    /// The run is over: forget everything this worker was waiting for.
    fn shutdown(&self) {
        let (entries, waiters) = {
            let mut st = self.state.borrow_mut();
            st.timers.clear();
            st.waits.clear();
            st.waiting = 0;
            let waiters = std::mem::take(&mut st.signal_waiters);
            (std::mem::take(&mut st.entries), waiters)
        };
        drop(entries);
        drop(waiters);
        drop(self.drain_forget(None));
    }
}

impl State {
    fn entry_mut(&mut self, token: u64) -> Option<&mut Entry> {
        let (key, generation) = split(token);
        self.entries
            .get_mut(key)
            .filter(|e| e.generation == generation)
    }

    fn add_io_waiter(&mut self, token: u64, dir: Dir, uid: Uid) {
        let (key, _) = split(token);
        let Some(entry) = self.entry_mut(token) else {
            return;
        };
        entry.waiters[dir as usize].push(uid);
        self.waits.insert(uid, Wait::Io { key, dir });
        self.waiting += 1;
    }

    /// Frees `token`'s entry, handing each uid that still waited on it to
    /// `on_waiter` (after forgetting it here).
    fn remove_entry(&mut self, token: u64, mut on_waiter: impl FnMut(Uid)) -> Option<Entry> {
        let (key, _) = split(token);
        self.entry_mut(token)?;
        let mut entry = self.entries.remove(key);
        for w in &mut entry.waiters {
            w.drain(|uid| {
                if self.waits.remove(&uid).is_some() {
                    self.waiting -= 1;
                    on_waiter(uid);
                }
            });
        }
        Some(entry)
    }

    /// A uid whose task stopped waiting: forget it wherever it is filed.
    fn cancel(&mut self, uid: Uid) {
        if self.timers.cancel(uid) {
            return;
        }
        match self.waits.remove(&uid) {
            Some(Wait::Io { key, dir }) => {
                self.waiting -= 1;
                if let Some(e) = self.entries.get_mut(key) {
                    e.waiters[dir as usize].remove(uid);
                }
            }
            Some(Wait::Signal) => {
                self.waiting -= 1;
                self.signal_waiters.retain(|u| *u != uid);
            }
            None => {}
        }
    }

    /// Turns one readiness event (of epoll or the ring) into signals.
    fn dispatch(
        &mut self,
        token: u64,
        readable: bool,
        writable: bool,
        interrupter: &EventFdInterrupt,
        signals: &mut Vec<Signal>,
    ) {
        match token {
            WAKE_TOKEN => interrupter.acknowledge(),
            SIGNAL_TOKEN => {
                for uid in std::mem::take(&mut self.signal_waiters) {
                    self.waits.remove(&uid);
                    self.waiting -= 1;
                    signals.push(Signal::new(uid));
                }
            }
            tok => {
                let Some(entry) = self.entry_mut(tok) else {
                    return;
                };
                let mut woken = Waiters::None;
                if readable {
                    std::mem::swap(&mut woken, &mut entry.waiters[Dir::Read as usize]);
                }
                let mut write_woken = Waiters::None;
                if writable {
                    std::mem::swap(&mut write_woken, &mut entry.waiters[Dir::Write as usize]);
                }
                for w in [&mut woken, &mut write_woken] {
                    w.drain(|uid| {
                        self.waits.remove(&uid);
                        self.waiting -= 1;
                        signals.push(Signal::new(uid));
                    });
                }
            }
        }
    }
}

/// What the current worker's reactor holds: a diagnostic for leak tests and
/// monitoring.
///
/// ```
/// use matou_unix::{reactor_stats, time};
/// use std::time::Duration;
///
/// matou_unix::builder().extra_workers(0).run(async {
///     let before = reactor_stats().unwrap();
///     // A timeout that fires cancels its inner wait; nothing stays behind.
///     let _ = time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
///     time::sleep(Duration::from_millis(1)).await; // a scheduling point
///     assert_eq!(reactor_stats().unwrap(), before);
/// });
/// assert!(reactor_stats().is_none()); // off a worker
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReactorStats {
    /// Descriptors registered with its epoll.
    pub registered: usize,
    /// Parked syscalls waiting for I/O readiness or a process signal.
    pub waiting: usize,
    /// Pending timers.
    pub timers: usize,
}

/// The current worker's [`ReactorStats`]; `None` off a matou-unix worker.
///
/// Cancelled waits are forgotten at the reactor's next `select`, so sample
/// after a scheduling point (e.g. a short sleep) to see them gone.
pub fn reactor_stats() -> Option<ReactorStats> {
    let r = try_current()?;
    let st = r.state.borrow();
    Some(ReactorStats {
        registered: st.entries.len(),
        waiting: st.waiting,
        timers: st.timers.len(),
    })
}

/// The backend of the current worker's reactor (after any fallback);
/// `None` off a matou-unix worker.
///
/// ```
/// let b = matou_unix::builder_on(matou_unix::Backend::Epoll)
///     .extra_workers(0)
///     .run(async { matou_unix::reactor_backend() });
/// assert_eq!(b, Some(matou_unix::Backend::Epoll));
/// assert_eq!(matou_unix::reactor_backend(), None);
/// ```
pub fn reactor_backend() -> Option<Backend> {
    try_current().map(|r| r.backend())
}

/// matou-unix's event source: a worker's reactor seen through the core's
/// seam, on epoll or (see [`EpollSource::with_backend`]) io_uring.
///
/// [`crate::builder`] installs one on every worker; build one yourself only to
/// compose it into your own `Builder::event_source` factory. Creating it makes
/// it the current thread's reactor, so it must be created on the worker's own
/// thread (the factory is called there).
///
/// ```
/// use matou_core::Builder;
/// use matou_unix::EpollSource;
///
/// // What `matou_unix::builder()` does, with an error policy of your own.
/// let ok = Builder::new()
///     .extra_workers(1)
///     .event_source(|worker| {
///         let source = EpollSource::new()
///             .unwrap_or_else(|e| panic!("worker {}: {e}", worker.index()));
///         Box::new(source)
///     })
///     .run(async {
///         matou_unix::time::sleep(std::time::Duration::from_millis(1)).await;
///         true
///     });
/// assert!(ok);
/// ```
pub struct EpollSource {
    reactor: Rc<Reactor>,
}

impl std::fmt::Debug for EpollSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpollSource").finish_non_exhaustive()
    }
}

impl EpollSource {
    /// A new epoll reactor, installed as this thread's.
    ///
    /// # Errors
    /// When the epoll instance or its eventfd cannot be created (e.g. out of
    /// file descriptors).
    pub fn new() -> std::io::Result<EpollSource> {
        Self::install(Reactor::new()?)
    }

    /// A new reactor on `backend`, installed as this thread's. Asking for
    /// [`Backend::Uring`] where io_uring is unavailable gives an epoll
    /// reactor (the reason is written to stderr once per process); see
    /// [`EpollSource::backend`].
    ///
    /// ```
    /// use matou_core::Builder;
    /// use matou_unix::{Backend, EpollSource};
    ///
    /// let ok = Builder::new()
    ///     .extra_workers(0)
    ///     .event_source(|_| Box::new(EpollSource::with_backend(Backend::Uring).unwrap()))
    ///     .run(async {
    ///         matou_unix::time::sleep(std::time::Duration::from_millis(1)).await;
    ///         true
    ///     });
    /// assert!(ok);
    /// ```
    ///
    /// # Errors
    /// As [`EpollSource::new`] (a failing ring is not an error: it falls
    /// back).
    pub fn with_backend(backend: Backend) -> std::io::Result<EpollSource> {
        Self::install(Reactor::on(backend)?)
    }

    /// The backend this source runs on, after any fallback.
    pub fn backend(&self) -> Backend {
        self.reactor.backend()
    }

    fn install(reactor: Reactor) -> std::io::Result<EpollSource> {
        let reactor = Rc::new(reactor);
        CURRENT.with(|c| *c.borrow_mut() = Some(reactor.clone()));
        Ok(EpollSource { reactor })
    }

    fn uninstall(&self) {
        let _ = CURRENT.try_with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref().is_some_and(|r| Rc::ptr_eq(r, &self.reactor)) {
                *c = None;
            }
        });
    }
}

impl EventSource for EpollSource {
    fn select(&mut self, block: bool, cancelled: &[Uid], signals: &mut Vec<Signal>) {
        self.reactor.select(block, cancelled, signals);
    }

    fn interrupter(&self) -> Arc<dyn Interrupt> {
        self.reactor.remote.interrupter.clone()
    }

    fn finalize(&mut self) {
        self.uninstall();
        self.reactor.shutdown();
    }
}

impl Drop for EpollSource {
    fn drop(&mut self) {
        self.uninstall();
    }
}

#[cfg(test)]
mod tests {
    // These drive a standalone reactor by hand (the run's own workers use the
    // core's default source); a run is needed only to mint syscall uids.
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Runs `f` in a task once per backend, with a standalone reactor on it.
    fn in_a_task(f: impl Fn(Reactor) + 'static) {
        matou_core::Builder::new().extra_workers(0).run(async move {
            for backend in [Backend::Epoll, Backend::Uring] {
                let r = Reactor::on(backend).unwrap();
                assert!(r.backend() == backend || backend::fell_back());
                f(r);
            }
        });
    }

    #[test]
    fn cancelled_uids_are_never_signalled() {
        in_a_task(|r| {
            let (a, mut b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let tok = r.register(a.as_fd()).unwrap();
            let mut signals = Vec::new();

            // An I/O waiter and a timer, both cancelled before their event.
            let io_call = matou_core::syscall();
            let timer_call = matou_core::syscall();
            r.add_io_waiter(tok, Dir::Read, io_call.uid());
            r.add_timer(Instant::now(), timer_call.uid());
            r.select(false, &[io_call.uid(), timer_call.uid()], &mut signals);
            b.write_all(b"x").unwrap();
            r.select(false, &[], &mut signals);
            assert!(signals.is_empty(), "stale uids signalled: {signals:?}");
            assert_eq!(r.state.borrow().waiting, 0);

            // A live waiter on the same descriptor is signalled at the next edge.
            let live = matou_core::syscall();
            r.add_io_waiter(tok, Dir::Read, live.uid());
            b.write_all(b"y").unwrap();
            r.select(false, &[], &mut signals);
            assert_eq!(signals, vec![Signal::new(live.uid())]);
            r.deregister(tok, a.as_fd());
            assert_eq!(r.state.borrow().entries.len(), 0);
        });
    }

    #[test]
    fn a_waiter_of_a_deregistered_descriptor_is_forgotten() {
        in_a_task(|r| {
            let (a, _b) = UnixStream::pair().unwrap();
            let tok = r.register(a.as_fd()).unwrap();
            let call = matou_core::syscall();
            r.add_io_waiter(tok, Dir::Write, call.uid());
            r.deregister(tok, a.as_fd());
            let st = r.state.borrow();
            assert_eq!((st.waiting, st.waits.len(), st.entries.len()), (0, 0, 0));
        });
    }

    #[test]
    fn a_deregistered_descriptor_is_closed_at_once() {
        use std::io::Read;
        in_a_task(|r| {
            let (a, mut b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            b.set_nonblocking(true).unwrap();
            let tok = r.register(a.as_fd()).unwrap();
            let call = matou_core::syscall();
            r.add_io_waiter(tok, Dir::Read, call.uid());
            let mut signals = Vec::new();
            // Arms the poll (io_uring holds the file while it is armed).
            r.select(false, &[], &mut signals);
            r.select(false, &[call.uid()], &mut signals);
            r.deregister(tok, a.as_fd());
            drop(a);
            // The peer sees the close now, not at the reactor's next select.
            let mut buf = [0u8; 1];
            assert_eq!(b.read(&mut buf).unwrap(), 0, "{:?}", r.backend());
        });
    }

    #[test]
    fn interrupts_are_sticky_and_coalesce() {
        in_a_task(|r| {
            let interrupter = r.remote.interrupter.clone();
            for _ in 0..100 {
                interrupter.interrupt();
            }
            // Sticky: interrupts made before the select make it return at once.
            let mut signals = Vec::new();
            let t0 = Instant::now();
            r.select(true, &[], &mut signals);
            assert!(t0.elapsed() < Duration::from_secs(1));
            // Coalesced: a hundred interrupts wrote the eventfd once (its
            // counter is never drained by the reactor, so it counts writes).
            let mut counter = [0u8; 8];
            rustix::io::read(interrupter.fd(), &mut counter).unwrap();
            assert_eq!(u64::from_ne_bytes(counter), 1);
            // Acknowledged: the next blocking select sleeps until its timer.
            let call = matou_core::syscall();
            r.add_timer(Instant::now() + Duration::from_millis(30), call.uid());
            let t0 = Instant::now();
            r.select(true, &[], &mut signals);
            assert!(
                t0.elapsed() >= Duration::from_millis(30),
                "{:?}",
                t0.elapsed()
            );
            assert_eq!(signals, vec![Signal::new(call.uid())]);
            // And a later interrupt writes again and wakes it.
            interrupter.interrupt();
            let t0 = Instant::now();
            r.select(true, &[], &mut signals);
            assert!(t0.elapsed() < Duration::from_secs(1));
        });
    }
}
