//! Process signals as awaitables: [`ctrl_c`], [`shutdown`] and [`Signals`]
//! for SIGINT and SIGTERM, so a server can shut down gracefully.
//!
//! How a signal travels (a handler never runs user code in signal context):
//!
//! ```text
//!  signal context:  counter[kind] += 1; write(global eventfd, 1)
//!  every reactor watching the eventfd (edge-triggered) wakes its signal waiters
//!  each waiter compares the counters with what it saw last, in task context
//! ```
//!
//! Invariants:
//! - the handler is installed once per signal for the life of the process (by
//!   the first listener for it) through `signal-hook-registry`, and from then
//!   on replaces the default action (SIGINT no longer kills the process);
//! - the eventfd is never read: with edge-triggered epoll each write is an
//!   edge in *every* reactor watching it, whereas a reader draining it could
//!   race another reactor's harvest and hide the event from it;
//! - a waiter files itself only after its reactor watches the eventfd and
//!   after checking the counters, all in one poll, so a delivery is either
//!   seen by the check or raises an edge after it.

use crate::reactor;
use crate::sys;
use matou_core::{suspend, syscall};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The signals matou-unix can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalKind {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (the polite "please stop" of service managers).
    Terminate,
}

const KINDS: [SignalKind; 2] = [SignalKind::Interrupt, SignalKind::Terminate];

impl SignalKind {
    fn index(self) -> usize {
        self as usize
    }

    fn number(self) -> i32 {
        match self {
            SignalKind::Interrupt => rustix::process::Signal::INT.as_raw(),
            SignalKind::Terminate => rustix::process::Signal::TERM.as_raw(),
        }
    }
}

/// Process-wide state shared with the handlers.
struct Global {
    eventfd: OwnedFd,
    counts: [AtomicU64; 2],
    installed: Mutex<[bool; 2]>,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

fn global() -> io::Result<&'static Global> {
    if let Some(g) = GLOBAL.get() {
        return Ok(g);
    }
    let fd = sys::eventfd()?;
    // Another thread may have won the race; its eventfd is kept, ours dropped.
    Ok(GLOBAL.get_or_init(|| Global {
        eventfd: fd,
        counts: [AtomicU64::new(0), AtomicU64::new(0)],
        installed: Mutex::new([false; 2]),
    }))
}

fn install(kind: SignalKind) -> io::Result<&'static Global> {
    let g = global()?;
    let mut installed = g.installed.lock().unwrap_or_else(|e| e.into_inner());
    if !installed[kind.index()] {
        let index = kind.index();
        let action = move || {
            // Async-signal-safe: an atomic add and one raw write. `GLOBAL` is
            // initialised before any handler is installed.
            if let Some(g) = GLOBAL.get() {
                g.counts[index].fetch_add(1, Ordering::SeqCst);
                sys::eventfd_notify(g.eventfd.as_fd());
            }
        };
        // SAFETY: `register` requires the action to be async-signal-safe: it
        // only loads an initialised `OnceLock` (an atomic read), does an atomic
        // add and a raw `write(2)` through rustix (no allocation, no lock, no
        // errno). SIGINT and SIGTERM are not among the forbidden signals.
        unsafe { signal_hook_registry::register(kind.number(), action) }?;
        installed[index] = true;
    }
    Ok(g)
}

/// A listener for a set of signals.
///
/// Each call to [`Signals::recv`] reports one kind that was delivered since
/// the previous call (or since the listener was created); several deliveries
/// of the same kind in between count as one.
#[derive(Debug)]
pub struct Signals {
    kinds: Vec<SignalKind>,
    seen: [u64; 2],
}

impl Signals {
    /// Starts listening for `kinds` (installing their handlers if needed).
    ///
    /// # Errors
    /// When the handler or the eventfd cannot be set up.
    pub fn new(kinds: &[SignalKind]) -> io::Result<Signals> {
        let mut seen = [0; 2];
        for &k in kinds {
            let g = install(k)?;
            seen[k.index()] = g.counts[k.index()].load(Ordering::SeqCst);
        }
        let mut kinds = kinds.to_vec();
        kinds.dedup();
        Ok(Signals { kinds, seen })
    }

    fn take_delivered(&mut self, g: &Global) -> Option<SignalKind> {
        for &k in &self.kinds {
            let now = g.counts[k.index()].load(Ordering::SeqCst);
            if now != self.seen[k.index()] {
                self.seen[k.index()] = now;
                return Some(k);
            }
        }
        None
    }

    /// Waits for the next delivery of one of the kinds.
    ///
    /// # Panics
    /// When polled on a worker without matou-unix's event source.
    pub async fn recv(&mut self) -> SignalKind {
        let g = GLOBAL.get().expect("installed by Signals::new");
        loop {
            let call = {
                let reactor = reactor::current("matou_unix::signal");
                if let Err(e) = reactor.watch_signals(g.eventfd.as_fd()) {
                    panic!("matou-unix: cannot watch signals: {e}");
                }
                if let Some(k) = self.take_delivered(g) {
                    return k;
                }
                let call = syscall();
                reactor.add_signal_waiter(call.uid());
                call
            };
            suspend(call).await;
        }
    }
}

/// Waits for the next SIGINT (installing the handler at the first call).
///
/// # Errors
/// When the handler cannot be installed.
pub async fn ctrl_c() -> io::Result<()> {
    Signals::new(&[SignalKind::Interrupt])?.recv().await;
    Ok(())
}

/// Waits for the next SIGINT or SIGTERM and says which.
///
/// # Errors
/// When the handlers cannot be installed.
pub async fn shutdown() -> io::Result<SignalKind> {
    Ok(Signals::new(&KINDS)?.recv().await)
}

/// Makes SIGHUP harmless for the rest of the process's life: a closed
/// terminal or a service manager's reload signal no longer kills it
/// (SIGHUP's default action). The signal is then handled by a handler that
/// does nothing, rather than set to `SIG_IGN`, so child processes still
/// start with the default action. Idempotent.
///
/// # Errors
/// When the handler cannot be installed.
pub fn ignore_sighup() -> io::Result<()> {
    static DONE: OnceLock<()> = OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    // SAFETY: the action is empty, so it is trivially async-signal-safe;
    // SIGHUP is not among signal-hook-registry's forbidden signals.
    unsafe { signal_hook_registry::register(rustix::process::Signal::HUP.as_raw(), || {}) }?;
    let _ = DONE.set(());
    Ok(())
}
