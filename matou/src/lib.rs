//! matou: structured concurrency for Rust, after Miou.
//!
//! This crate is the facade users depend on. It re-exports the scheduler
//! ([`matou_core`]: tasks as resources, explicit placement, the event-source
//! seam, and [`sync`]) and the Unix layer ([`unix`]: epoll, timers, sockets,
//! signals), and its [`run`] is what a program means by "run": every worker
//! with the Unix event source, so sockets and timers work.
//!
//! Which `run` is which:
//! - [`matou::run`](run) / [`matou::builder`](builder): the Unix runtime (the
//!   same as [`unix::run`] / [`unix::builder`]);
//! - [`matou::run_bare`](run_bare) / [`matou::Builder::new`](Builder::new):
//!   the bare core ([`matou_core::run`]), whose workers have no system behind
//!   them (a [`ParkingEventSource`]) unless [`Builder::event_source`] gives
//!   one; for a program that brings its own event source, or needs no I/O.
//!
//! # A taste
//!
//! ```
//! use matou::{both, call, spawn};
//!
//! // One extra worker, asked for explicitly: `call` never places work on dom0
//! // (the thread that called `run`), nor on the caller's own worker.
//! matou::builder().extra_workers(1).run(async {
//!     // Concurrent on this worker (need not be Send), parallel on another one.
//!     let a = spawn(async { 1 + 1 });
//!     let b = call(|| async { matou::current_worker().index() }).unwrap();
//!     let (a, b) = both(a, b).await;
//!     assert_eq!(a.unwrap(), 2);
//!     assert!(b.unwrap() != 0); // never dom0
//! });
//! ```
//!
//! `matou::run` gives one extra worker per CPU beyond the first: on a 1-CPU
//! machine that is none, and the `call` above would fail with
//! [`Error::NoDomainAvailable`]. Placement is explicit in matou as in Miou, so a
//! program that needs parallel work says how many workers it wants (or handles
//! `NoDomainAvailable`, e.g. by falling back to `spawn`).

//!
//! # Waiting on several futures in one task
//!
//! ```
//! use matou::{select, sync, unix::time::sleep};
//! use std::time::Duration;
//!
//! matou::run(async {
//!     let (tx, rx) = sync::channel::<&str>(1);
//!     let sender = matou::spawn(async move { tx.send("job").await.unwrap() });
//!     // A receive loses nothing when the other branch wins, so this is a
//!     // safe "receive with a deadline".
//!     let got = select! {
//!         job = rx.recv() => job,
//!         () = sleep(Duration::from_secs(5)) => None,
//!     };
//!     assert_eq!(got, Some("job"));
//!     sender.await.unwrap();
//! });
//! ```
//!
//! # Seeing what is stuck
//!
//! [`task_tree`] lists every live task (id, name, parent, worker, spawn site,
//! state). A server can print it when asked, here on SIGUSR1
//! (`kill -USR1 <pid>`), from a task of its own:
//!
//! ```no_run
//! use matou::unix::signal::{SignalKind, Signals};
//!
//! matou::run(async {
//!     let mut usr1 = Signals::new(&[SignalKind::USR1]).unwrap();
//!     let dumper = matou::spawn_named("task-tree-dumper", async move {
//!         loop {
//!             usr1.recv().await;
//!             eprint!("{}", matou::task_tree().await);
//!         }
//!     });
//!     // ... serve (each connection handler a `spawn_named` task) ...
//!     matou::unix::signal::ctrl_c().await.unwrap();
//!     dumper.cancel().await.unwrap();
//! });
//! ```

pub use matou_core::*;

/// The Unix layer: an epoll event source per worker, timers, sockets, signals.
pub use matou_unix as unix;

/// `#[matou::main]`: runs `async fn main` on the Unix runtime ([`builder`]);
/// arguments `extra_workers = N`, `idle_spin_us = N` (both optional).
///
/// ```
/// #[matou::main(extra_workers = 1, idle_spin_us = 0)]
/// async fn main() {
///     assert_eq!(matou::worker_count(), 2);
///     let v = matou::call(|| async { 6 * 7 }).unwrap().await.unwrap();
///     assert_eq!(v, 42);
/// }
/// ```
pub use matou_macros::main;

/// `#[matou::test]`: an `async fn` test on the Unix runtime ([`builder`]),
/// argument `extra_workers = N` (and `idle_spin_us = N`). A panic fails the
/// test, and so does a task that forgets a child: the run aborts with
/// [`Error::StillHasChildren`], raised as a panic naming the spawn sites.
///
/// ```
/// #[matou::test(extra_workers = 0)]
/// async fn sleeps() {
///     matou::unix::time::sleep(std::time::Duration::from_millis(1)).await;
/// }
/// ```
pub use matou_macros::test;

use std::future::Future;

/// A [`Builder`] whose every worker owns the Unix event source
/// ([`unix::EpollSource`]); configure the rest (e.g. `extra_workers`) as
/// usual. The same as [`unix::builder`].
///
/// ```
/// let n = matou::builder().extra_workers(0).run(async {
///     matou::unix::time::sleep(std::time::Duration::from_millis(1)).await;
///     matou::worker_count()
/// });
/// assert_eq!(n, 1);
/// ```
pub fn builder() -> Builder {
    matou_unix::builder()
}

/// Runs `future` on the Unix runtime ([`builder`]'s defaults: one extra worker
/// per available CPU beyond the first) and returns its value. The core's bare
/// run is [`run_bare`].
///
/// ```
/// use std::time::Duration;
///
/// let late = matou::run(async {
///     matou::unix::time::timeout(Duration::from_millis(1), std::future::pending::<()>()).await
/// });
/// assert!(late.is_err()); // timers work: this is the Unix runtime
/// ```
///
/// # Panics
/// See [`Builder::run`].
#[track_caller]
pub fn run<F: Future + 'static>(future: F) -> F::Output {
    matou_unix::run(future)
}

/// The core's bare run ([`matou_core::run`]): every worker gets the
/// [`ParkingEventSource`], which knows no system, so sockets and timers of
/// [`unix`] cannot be used (they panic, naming the missing event source). For
/// programs that need no I/O, or that configure their own source through
/// [`Builder::event_source`].
///
/// ```
/// let v = matou::run_bare(async { matou::spawn(async { 7 }).await.unwrap() });
/// assert_eq!(v, 7);
/// ```
///
/// # Panics
/// See [`Builder::run`].
#[track_caller]
pub fn run_bare<F: Future + 'static>(future: F) -> F::Output {
    matou_core::run(future)
}
