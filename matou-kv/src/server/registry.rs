//! The registry of live connections, shared by the handlers of every
//! worker: what CLIENT LIST / INFO show and what CLIENT KILL finds.
//!
//! Invariants:
//! - A connection is in the registry exactly while its handler runs: it is
//!   added when the handler starts and removed by its [`Registered`]
//!   guard's drop, which also runs when the task is cancelled.
//! - The registry's lock is taken on connect, on disconnect and by the
//!   CLIENT commands only, never per request; what changes per request
//!   (the last command, the last activity) is in the entry's own atomics
//!   and a short uncontended lock.
//! - A kill never touches the victim's socket from outside: it flips the
//!   entry's [`Kill`] switch and wakes the task waiting on it (matou's
//!   public waker), and the victim's handler, which races every read
//!   against that switch, ends itself and closes its own socket.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A one-way switch that a connection's handler waits on while idle.
#[derive(Default)]
pub(super) struct Kill {
    killed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Kill {
    /// Flips the switch and wakes the handler (from any thread).
    pub(super) fn trigger(&self) {
        self.killed.store(true, Ordering::SeqCst);
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }

    /// Whether it was flipped.
    pub(super) fn is_triggered(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }

    /// Completes once the switch is flipped. One handler waits at a time
    /// (the connection's own), so one waker slot suffices.
    pub(super) fn wait(&self) -> KillWait<'_> {
        KillWait(self)
    }
}

/// [`Kill::wait`]'s future.
pub(super) struct KillWait<'a>(&'a Kill);

impl Future for KillWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_triggered() {
            return Poll::Ready(());
        }
        *lock(&self.0.waker) = Some(cx.waker().clone());
        // Flipped between the check and the store: its wake found no
        // waker, so look again.
        if self.0.is_triggered() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for KillWait<'_> {
    fn drop(&mut self) {
        lock(&self.0.waker).take();
    }
}

/// CLIENT UNBLOCK's switch: armed while the connection's handler waits on
/// a blocking command ([`Entry::block`]), flipped by CLIENT UNBLOCK from
/// any worker, disarmed when the wait ends.
#[derive(Default)]
pub(super) struct Unblock {
    /// Whether the handler waits on a blocking command now.
    armed: AtomicBool,
    /// Flipped: 1 to answer as a timeout, 2 with an error.
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl Unblock {
    /// Unblocks the client (with an error if `error`): whether it was
    /// blocked.
    pub(super) fn trigger(&self, error: bool) -> bool {
        if !self.armed.load(Ordering::SeqCst) {
            return false;
        }
        let want = if error { 2 } else { 1 };
        if self
            .state
            .compare_exchange(0, want, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
        true
    }

    /// Completes once flipped: `true` for an error.
    pub(super) fn wait(&self) -> impl Future<Output = bool> + '_ {
        std::future::poll_fn(move |cx| {
            let flipped = |s: u8| (s != 0).then_some(s == 2);
            if let Some(e) = flipped(self.state.load(Ordering::SeqCst)) {
                return Poll::Ready(e);
            }
            *lock(&self.waker) = Some(cx.waker().clone());
            // Flipped between the check and the store: look again.
            match flipped(self.state.load(Ordering::SeqCst)) {
                Some(e) => Poll::Ready(e),
                None => Poll::Pending,
            }
        })
    }
}

/// Disarms [`Unblock`] when a blocked wait ends (cancelled included).
pub(super) struct Armed<'a>(&'a Unblock);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.0.armed.store(false, Ordering::SeqCst);
        self.0.state.store(0, Ordering::SeqCst);
        lock(&self.0.waker).take();
    }
}

/// One live connection, as CLIENT LIST shows it.
pub(super) struct Entry {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    /// Milliseconds after `created` of the last request.
    pub active_ms: AtomicU64,
    /// The name of the last command (`client|list`), as the table spells it.
    pub cmd: Mutex<&'static str>,
    /// CLIENT SETNAME, mirrored from the session.
    pub name: Mutex<Option<Vec<u8>>>,
    /// CLIENT NO-EVICT.
    pub no_evict: AtomicBool,
    /// The selected database (the handler's `DbCell`).
    pub db: Arc<AtomicUsize>,
    /// Bytes of the request being run (CLIENT LIST's `qbuf` for the
    /// caller: a connection running CLIENT LIST holds that request).
    pub request_bytes: AtomicUsize,
    /// RESP version (2 or 3), mirrored from the session.
    pub resp: AtomicU64,
    pub kill: Kill,
    /// CLIENT UNBLOCK's switch, armed while the client is blocked.
    pub unblock: Unblock,
    /// What CLIENT LIST shows of the connection's state, mirrored by its
    /// handler ([`Entry::mirror_state`]).
    pub state: ClientState,
}

/// The counts and flags of CLIENT LIST that the handler owns: channels
/// (`sub`), patterns (`psub`), shard channels (`ssub`) subscribed, and the
/// commands queued in MULTI (`multi`, -1 outside). Each is one atomic:
/// CLIENT LIST from another worker reads them without a lock; it may see
/// one handler's update half applied, as Redis's own is a snapshot too.
#[derive(Debug)]
pub(super) struct ClientState {
    sub: AtomicUsize,
    psub: AtomicUsize,
    ssub: AtomicUsize,
    multi: AtomicI64,
}

impl Default for ClientState {
    fn default() -> ClientState {
        ClientState {
            sub: AtomicUsize::new(0),
            psub: AtomicUsize::new(0),
            ssub: AtomicUsize::new(0),
            multi: AtomicI64::new(-1),
        }
    }
}

impl Entry {
    /// Arms CLIENT UNBLOCK for the time of a blocked wait.
    pub(super) fn block(&self) -> Armed<'_> {
        self.unblock.state.store(0, Ordering::SeqCst);
        self.unblock.armed.store(true, Ordering::SeqCst);
        Armed(&self.unblock)
    }

    /// Mirrors the handler's state for CLIENT LIST: subscriptions per
    /// space (channels, patterns, shard channels) and the commands queued
    /// in MULTI (`None`: not in MULTI).
    pub(super) fn mirror_state(&self, subs: [usize; 3], multi: Option<usize>) {
        let st = &self.state;
        st.sub.store(subs[0], Ordering::Relaxed);
        st.psub.store(subs[1], Ordering::Relaxed);
        st.ssub.store(subs[2], Ordering::Relaxed);
        let multi = multi.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        st.multi.store(multi, Ordering::Relaxed);
    }

    /// CLIENT LIST's `flags`, in Redis's order: `P` subscribed, `x` in
    /// MULTI, `b` blocked, `e` no-evict; `N` for none.
    fn flags(&self) -> String {
        let st = &self.state;
        let subscribed = st.sub.load(Ordering::Relaxed)
            + st.psub.load(Ordering::Relaxed)
            + st.ssub.load(Ordering::Relaxed)
            > 0;
        let mut flags = String::new();
        for (on, letter) in [
            (subscribed, 'P'),
            (st.multi.load(Ordering::Relaxed) >= 0, 'x'),
            (self.unblock.armed.load(Ordering::SeqCst), 'b'),
            (self.no_evict.load(Ordering::Relaxed), 'e'),
        ] {
            if on {
                flags.push(letter);
            }
        }
        if flags.is_empty() {
            flags.push('N');
        }
        flags
    }

    /// Records a request: CLIENT LIST's `idle` and `cmd`.
    pub(super) fn touch(&self, cmd: &'static str) {
        let ms = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.active_ms.store(ms, Ordering::Relaxed);
        *lock(&self.cmd) = cmd;
    }

    /// Redis's CLIENT LIST line (without the line end), as seen by the
    /// connection `me` is `true` for. `qbuf` is the request being run for
    /// that one and 0 for the others (their requests are consumed between
    /// batches); the other buffer fields are 0.
    pub(super) fn line(&self, me: bool) -> String {
        let qbuf = if me {
            self.request_bytes.load(Ordering::Relaxed)
        } else {
            0
        };
        let age = self.created.elapsed();
        let idle_ms = u64::try_from(age.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(self.active_ms.load(Ordering::Relaxed));
        let name = lock(&self.name)
            .as_deref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let st = &self.state;
        format!(
            "id={} addr={} laddr={} fd=-1 name={name} age={} idle={} flags={} db={} \
             sub={} psub={} ssub={} multi={} qbuf={qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 \
             rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 \
             resp={}",
            self.id,
            self.addr,
            self.laddr,
            age.as_secs(),
            idle_ms / 1000,
            self.flags(),
            self.db.load(Ordering::Relaxed),
            st.sub.load(Ordering::Relaxed),
            st.psub.load(Ordering::Relaxed),
            st.ssub.load(Ordering::Relaxed),
            st.multi.load(Ordering::Relaxed),
            *lock(&self.cmd),
            self.resp.load(Ordering::Relaxed),
        )
    }
}

/// Every live connection, by id (so CLIENT LIST is in connection order).
#[derive(Default)]
pub(super) struct Registry {
    clients: Mutex<BTreeMap<u64, Arc<Entry>>>,
}

/// Removes its entry from the registry when dropped.
pub(super) struct Registered<'a> {
    registry: &'a Registry,
    pub entry: Arc<Entry>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.registry.clients).remove(&self.entry.id);
    }
}

impl Registry {
    /// Adds a connection for as long as the guard lives.
    pub(super) fn register(
        &self,
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
        db: Arc<AtomicUsize>,
    ) -> Registered<'_> {
        let entry = Arc::new(Entry {
            id,
            addr,
            laddr,
            created: Instant::now(),
            active_ms: AtomicU64::new(0),
            cmd: Mutex::new("NULL"),
            name: Mutex::new(None),
            no_evict: AtomicBool::new(false),
            db,
            request_bytes: AtomicUsize::new(0),
            resp: AtomicU64::new(2),
            kill: Kill::default(),
            unblock: Unblock::default(),
            state: ClientState::default(),
        });
        lock(&self.clients).insert(id, entry.clone());
        Registered {
            registry: self,
            entry,
        }
    }

    /// The live entries, in id order (a snapshot: the lock is not held
    /// while the caller formats them).
    pub(super) fn snapshot(&self) -> Vec<Arc<Entry>> {
        lock(&self.clients).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_kill_wakes_the_waiting_handler_once_and_stays_flipped() {
        let kill = Kill::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut wait = Box::pin(kill.wait());
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
        kill.trigger();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
        assert_eq!(
            Box::pin(kill.wait()).as_mut().poll(&mut cx),
            Poll::Ready(())
        );
    }

    #[test]
    fn the_guard_unregisters() {
        let reg = Registry::default();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let g1 = reg.register(1, a, a, Arc::default());
        let g2 = reg.register(2, a, a, Arc::default());
        assert_eq!(
            reg.snapshot().iter().map(|e| e.id).collect::<Vec<_>>(),
            [1, 2]
        );
        drop(g1);
        assert_eq!(reg.snapshot().iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
        g2.entry.touch("get");
        assert!(
            g2.entry.line(false).contains(" cmd=get "),
            "{}",
            g2.entry.line(false)
        );
        drop(g2);
        assert!(reg.snapshot().is_empty());
    }
}
