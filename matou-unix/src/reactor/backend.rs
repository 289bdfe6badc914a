//! Which poller a worker's reactor runs on: epoll or io_uring, chosen per
//! worker when its event source is built.
//!
//! Invariants:
//! - asking for io_uring never fails a run: when the ring cannot be set up
//!   (`ENOSYS`, `EPERM`, memory limits, an old kernel) the worker falls back
//!   to epoll, and the reason is written to stderr once per process, however
//!   many workers fall back;
//! - the environment variable is read when a source is built, never cached,
//!   so a test that forces a backend sees it on every worker.

use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that forces a backend: `uring` or `epoll`.
pub const ENV_VAR: &str = "MATOU_EVENT_SOURCE";

/// The readiness backend of a worker's reactor.
///
/// Both run the same socket, timer, signal and file API with the same
/// semantics; they differ in how the worker waits. Choose one per run with
/// [`crate::builder_on`] or [`crate::EpollSource::with_backend`]; the default
/// ([`Backend::from_env`]) is epoll unless `MATOU_EVENT_SOURCE=uring`.
///
/// ```
/// use matou_unix::{Backend, reactor_backend};
///
/// let used = matou_unix::builder_on(Backend::Uring)
///     .extra_workers(0)
///     .run(async { reactor_backend().unwrap() });
/// // io_uring where the kernel allows it, else epoll (the reason is logged).
/// assert!(matches!(used, Backend::Uring | Backend::Epoll));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// epoll, edge-triggered: one `epoll_ctl` per registration, one
    /// `epoll_wait` per blocking `select`.
    Epoll,
    /// io_uring: one multishot `IORING_OP_POLL_ADD` per descriptor,
    /// submissions batched into the `io_uring_enter` of each `select`, the
    /// next timer deadline as that call's timeout. Falls back to epoll
    /// when io_uring is unavailable.
    Uring,
}

impl Backend {
    /// The backend `MATOU_EVENT_SOURCE` names (`uring`/`io_uring`, or
    /// `epoll`); epoll when it is unset.
    ///
    /// # Panics
    /// When the variable holds anything else: a typo must not silently test
    /// the other backend.
    pub fn from_env() -> Backend {
        match std::env::var(ENV_VAR) {
            Err(std::env::VarError::NotPresent) => Backend::Epoll,
            Ok(v) => match v.trim() {
                "uring" | "io_uring" | "io-uring" => Backend::Uring,
                "epoll" | "" => Backend::Epoll,
                other => panic!("matou-unix: {ENV_VAR}={other:?}: expected `uring` or `epoll`"),
            },
            Err(e) => panic!("matou-unix: {ENV_VAR}: {e}"),
        }
    }
}

static FALLBACK_LOGGED: AtomicBool = AtomicBool::new(false);

/// Logs, once per process, why a worker runs on epoll although io_uring was
/// asked for.
pub(crate) fn log_fallback(reason: &str) {
    if !FALLBACK_LOGGED.swap(true, Ordering::Relaxed) {
        eprintln!("matou-unix: io_uring unavailable, using epoll: {reason}");
    }
}

/// Whether a worker of this process fell back (tests: an io_uring test that
/// ran on epoll must say so, not pass silently).
#[cfg(test)]
pub(crate) fn fell_back() -> bool {
    FALLBACK_LOGGED.load(Ordering::Relaxed)
}
