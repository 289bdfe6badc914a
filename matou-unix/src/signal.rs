//! Process signals as awaitables: [`Signals`] for any catchable signal
//! ([`SignalKind::HUP`], ..., [`SignalKind::from_raw`]), and [`ctrl_c`] and
//! [`shutdown`] for SIGINT and SIGTERM, so a server can shut down gracefully.
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

/// A catchable signal: a named constant ([`SignalKind::HUP`], ...) or any
/// number through [`SignalKind::from_raw`].
///
/// ```
/// use matou_unix::signal::{SignalKind, Signals};
///
/// matou_unix::run(async {
///     // Listening replaces the default action (exit) for these kinds.
///     let _signals = Signals::new(&[SignalKind::INT, SignalKind::TERM]).unwrap();
///     assert_eq!(SignalKind::from_raw(1).unwrap(), SignalKind::HUP);
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignalKind(i32);

/// One past the highest signal number on Linux (`SIGRTMAX` is 64).
const MAX_SIGNAL: usize = 65;

impl SignalKind {
    /// SIGHUP: the terminal hung up; daemons take it as "reload".
    pub const HUP: SignalKind = SignalKind(libc_sig::HUP);
    /// SIGINT (Ctrl-C).
    pub const INT: SignalKind = SignalKind(libc_sig::INT);
    /// SIGQUIT (Ctrl-\).
    pub const QUIT: SignalKind = SignalKind(libc_sig::QUIT);
    /// SIGUSR1.
    pub const USR1: SignalKind = SignalKind(libc_sig::USR1);
    /// SIGUSR2.
    pub const USR2: SignalKind = SignalKind(libc_sig::USR2);
    /// SIGPIPE. Listening replaces Rust's default "ignore"; writes to a
    /// closed pipe still fail with `EPIPE` instead of killing the process.
    pub const PIPE: SignalKind = SignalKind(libc_sig::PIPE);
    /// SIGALRM.
    pub const ALRM: SignalKind = SignalKind(libc_sig::ALRM);
    /// SIGTERM (the polite "please stop" of service managers).
    pub const TERM: SignalKind = SignalKind(libc_sig::TERM);
    /// SIGCHLD: a child stopped or exited (the `process` module does not
    /// need it; listening does not change how children are reaped).
    pub const CHLD: SignalKind = SignalKind(libc_sig::CHLD);
    /// SIGCONT.
    pub const CONT: SignalKind = SignalKind(libc_sig::CONT);
    /// SIGWINCH: the terminal was resized.
    pub const WINCH: SignalKind = SignalKind(libc_sig::WINCH);

    /// SIGINT, under its earlier name.
    #[allow(non_upper_case_globals)]
    pub const Interrupt: SignalKind = SignalKind::INT;
    /// SIGTERM, under its earlier name.
    #[allow(non_upper_case_globals)]
    pub const Terminate: SignalKind = SignalKind::TERM;

    /// The signal numbered `signum` (e.g. `libc::SIGRTMIN() + 1`).
    ///
    /// # Errors
    /// `InvalidInput` for a number that is not a signal, or one that cannot
    /// or must not be caught: SIGKILL, SIGSTOP, SIGILL, SIGFPE, SIGSEGV
    /// (signal-hook's forbidden set).
    pub fn from_raw(signum: i32) -> io::Result<SignalKind> {
        let forbidden = [
            libc_sig::KILL,
            libc_sig::STOP,
            libc_sig::ILL,
            libc_sig::FPE,
            libc_sig::SEGV,
        ];
        if signum <= 0 || signum as usize >= MAX_SIGNAL || forbidden.contains(&signum) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("matou-unix: signal {signum} cannot be listened for"),
            ));
        }
        Ok(SignalKind(signum))
    }

    /// Its number.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    fn index(self) -> usize {
        self.0 as usize
    }
}

/// Signal numbers, from rustix (which knows the platform's values).
mod libc_sig {
    use rustix::process::Signal;
    pub(super) const HUP: i32 = Signal::HUP.as_raw();
    pub(super) const INT: i32 = Signal::INT.as_raw();
    pub(super) const QUIT: i32 = Signal::QUIT.as_raw();
    pub(super) const USR1: i32 = Signal::USR1.as_raw();
    pub(super) const USR2: i32 = Signal::USR2.as_raw();
    pub(super) const PIPE: i32 = Signal::PIPE.as_raw();
    pub(super) const ALRM: i32 = Signal::ALARM.as_raw();
    pub(super) const TERM: i32 = Signal::TERM.as_raw();
    pub(super) const CHLD: i32 = Signal::CHILD.as_raw();
    pub(super) const CONT: i32 = Signal::CONT.as_raw();
    pub(super) const WINCH: i32 = Signal::WINCH.as_raw();
    pub(super) const KILL: i32 = Signal::KILL.as_raw();
    pub(super) const STOP: i32 = Signal::STOP.as_raw();
    pub(super) const ILL: i32 = Signal::ILL.as_raw();
    pub(super) const FPE: i32 = Signal::FPE.as_raw();
    pub(super) const SEGV: i32 = Signal::SEGV.as_raw();
}

const KINDS: [SignalKind; 2] = [SignalKind::INT, SignalKind::TERM];

/// Process-wide state shared with the handlers.
struct Global {
    eventfd: OwnedFd,
    counts: [AtomicU64; MAX_SIGNAL],
    installed: Mutex<[bool; MAX_SIGNAL]>,
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
        counts: std::array::from_fn(|_| AtomicU64::new(0)),
        installed: Mutex::new([false; MAX_SIGNAL]),
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
        // errno). `SignalKind` never holds a forbidden signal (`from_raw`
        // rejects them), and signal-hook-registry checks again.
        unsafe { signal_hook_registry::register(kind.as_raw(), action) }?;
        installed[index] = true;
    }
    Ok(g)
}

/// A listener for a set of signals.
///
/// A stream of deliveries: call [`Signals::recv`] in a loop. Each call
/// reports one kind that was delivered since the previous call (or since the
/// listener was created). Coalescing: several deliveries of the same kind
/// in between count as one (as the kernel itself merges pending standard
/// signals); no delivery is missed. Every listener sees every delivery: any
/// number of `Signals`, on any workers, may listen for the same signal.
///
/// ```no_run
/// use matou_unix::signal::{SignalKind, Signals};
///
/// matou_unix::run(async {
///     let mut hup = Signals::new(&[SignalKind::HUP]).unwrap();
///     loop {
///         hup.recv().await;
///         println!("reloading the configuration");
///     }
/// });
/// ```
///
/// ```
/// use matou_unix::signal::{SignalKind, Signals};
///
/// matou_unix::run(async {
///     let mut signals = Signals::new(&[SignalKind::Terminate]).unwrap();
///     // Ourselves, for the example; a service manager would send it.
///     let pid = std::process::id().to_string();
///     std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
///     assert_eq!(signals.recv().await, SignalKind::Terminate);
/// });
/// ```
#[derive(Debug)]
pub struct Signals {
    /// The kinds listened for, each with the delivery count last seen.
    kinds: Vec<(SignalKind, u64)>,
}

impl Signals {
    /// Starts listening for `kinds` (installing their handlers if needed).
    ///
    /// # Errors
    /// When the handler or the eventfd cannot be set up.
    pub fn new(kinds: &[SignalKind]) -> io::Result<Signals> {
        let mut listened: Vec<(SignalKind, u64)> = Vec::with_capacity(kinds.len());
        for &k in kinds {
            let g = install(k)?;
            if listened.iter().all(|(seen, _)| *seen != k) {
                listened.push((k, g.counts[k.index()].load(Ordering::SeqCst)));
            }
        }
        Ok(Signals { kinds: listened })
    }

    fn take_delivered(&mut self, g: &Global) -> Option<SignalKind> {
        for (k, seen) in &mut self.kinds {
            let now = g.counts[k.index()].load(Ordering::SeqCst);
            if now != *seen {
                *seen = now;
                return Some(*k);
            }
        }
        None
    }

    /// Waits for the next delivery of one of the kinds. Cancel-safe: a
    /// delivery not reported is reported by the next call.
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

/// A listener for one signal: `signal(SignalKind::HUP)?.recv().await`.
///
/// # Errors
/// When the handler cannot be installed.
pub fn signal(kind: SignalKind) -> io::Result<Signals> {
    Signals::new(&[kind])
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
    unsafe { signal_hook_registry::register(SignalKind::HUP.as_raw(), || {}) }?;
    let _ = DONE.set(());
    Ok(())
}
