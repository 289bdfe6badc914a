//! [`MatouExecutor`]: hyper's `rt::Executor` spawning into a structured
//! scope, an [`Orphans`](matou::Orphans) set, through its
//! [`OrphansHandle`].
//!
//! The tasks hyper spawns (HTTP/2 streams, a client connection's driver, the
//! pool's idle sweeper) are children of the set's owner, which must collect
//! them like any other child: nothing hyper starts outlives the scope.
//! Invariant: a spawn refused by the set (closed, or its owner gone) drops the
//! future unpolled, which hyper reads as the task being cancelled (an HTTP/2
//! stream is reset, a client connection closes).

use hyper::rt::Executor;
use matou::{Orphans, OrphansHandle};
use std::future::Future;

/// Spawns hyper's background futures into an [`Orphans`] set, concurrently on
/// the set owner's worker, from whichever thread hyper calls it.
///
/// `Clone + Send + Sync` as hyper requires. A refused spawn (the set was
/// [`close`](Orphans::close)d, or its owner is gone) drops the future.
///
/// ```
/// use matou::Orphans;
/// use matou_hyper::MatouExecutor;
/// use hyper::rt::Executor;
///
/// matou::run(async {
///     let scope = Orphans::new();
///     let exec = MatouExecutor::new(&scope).unwrap();
///     exec.execute(async { /* e.g. an HTTP/2 stream */ });
///     // The scope's owner collects what hyper started.
///     while let Some(done) = scope.next().await.unwrap() {
///         done.unwrap();
///     }
/// });
/// ```
#[derive(Clone)]
pub struct MatouExecutor {
    handle: OrphansHandle<()>,
}

impl std::fmt::Debug for MatouExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatouExecutor").finish_non_exhaustive()
    }
}

impl MatouExecutor {
    /// An executor spawning into `scope`; the calling task becomes the
    /// scope's owner if it had none.
    ///
    /// # Errors
    /// [`matou::Error::NotOwner`] when another task owns `scope`.
    pub fn new(scope: &Orphans<()>) -> Result<Self, matou::Error> {
        Ok(MatouExecutor {
            handle: scope.handle()?,
        })
    }

    /// An executor over an existing handle.
    pub fn from_handle(handle: OrphansHandle<()>) -> Self {
        MatouExecutor { handle }
    }
}

impl<F> Executor<F> for MatouExecutor
where
    F: Future + Send + 'static,
{
    fn execute(&self, fut: F) {
        // A refusal hands the future back; dropping it is hyper's
        // cancellation (see the module doc).
        let _refused = self.handle.spawn(async move {
            fut.await;
        });
    }
}

/// Spawns hyper's futures into an [`Orphans`] set on the set owner's worker,
/// without asking them to be `Send`: what [`serve`](crate::serve) uses, so a
/// service may hold what is not `Send` (an `Rc`, a `RefCell` borrow across
/// an await) and still serve HTTP/2, whose streams hyper spawns.
///
/// It must be called on the owner's worker, as hyper's server connections
/// do when they run as tasks of that scope; a call elsewhere (or into a
/// closed set) is refused and drops the future, hyper's cancellation. For
/// hyper-util's client, which may spawn from anywhere, use
/// [`MatouExecutor`].
///
/// ```
/// use matou::Orphans;
/// use matou_hyper::MatouLocalExecutor;
/// use hyper::rt::Executor;
/// use std::rc::Rc;
///
/// matou::run(async {
///     let scope = Orphans::new();
///     let exec = MatouLocalExecutor::new(&scope).unwrap();
///     let not_send = Rc::new(5);
///     exec.execute(async move { assert_eq!(*not_send, 5) });
///     while let Some(done) = scope.next().await.unwrap() {
///         done.unwrap();
///     }
/// });
/// ```
#[derive(Clone)]
pub struct MatouLocalExecutor {
    handle: OrphansHandle<()>,
}

impl std::fmt::Debug for MatouLocalExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatouLocalExecutor").finish_non_exhaustive()
    }
}

impl MatouLocalExecutor {
    /// An executor spawning into `scope`; the calling task becomes the
    /// scope's owner if it had none.
    ///
    /// # Errors
    /// [`matou::Error::NotOwner`] when another task owns `scope`.
    pub fn new(scope: &Orphans<()>) -> Result<Self, matou::Error> {
        Ok(MatouLocalExecutor {
            handle: scope.handle()?,
        })
    }
}

impl<F> Executor<F> for MatouLocalExecutor
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        let _refused = self.handle.spawn_local(async move {
            fut.await;
        });
    }
}
