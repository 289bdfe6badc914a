//! The errors of the core: what awaiting, cancelling, placing or running a task
//! can report. Every variant is an ordinary value for the caller.
//! [`Error::StillHasChildren`] is how Miou's rule that a task is a resource is
//! enforced: it is the failure of the task that forgot a child, and travels up
//! like a panic does (its parent sees it when it awaits the promise; `run`
//! fails with it only when the main future forgot a child).

use std::any::Any;
use std::fmt;
use std::panic::Location;
use std::sync::Mutex;

/// What went wrong with a task, a promise or a run.
///
/// ```
/// use matou_core::{Builder, Error};
///
/// Builder::new().extra_workers(0).run(async {
///     // With no worker besides dom0, `call` has nowhere to go.
///     let err = matou_core::call(|| async {}).unwrap_err();
///     assert!(matches!(err, Error::NoDomainAvailable));
///     println!("{err}"); // every variant says what happened
/// });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The task was cancelled (or its result was discarded by a cancellation).
    Cancelled,
    /// The task panicked; the payload is kept.
    Panicked(PanicPayload),
    /// Only the task that spawned a promise may await or cancel it.
    NotAChild,
    /// `call` or `parallel` found no worker other than dom0 and the caller's own.
    NoDomainAvailable,
    /// A task returned while some of its children were neither awaited nor
    /// cancelled (their promises dropped unpolled, or kept past the task's
    /// end). Those children were cancelled and awaited, and this error
    /// replaced the task's own result: the parent's await of its promise
    /// gives it, and [`run`](crate::run) fails with it when the task is the
    /// main future.
    StillHasChildren {
        /// Where the offending task was spawned (or where `run` was called).
        task: &'static Location<'static>,
        /// How many children it left behind.
        children: usize,
        /// Where the first of those children was spawned.
        first_child: &'static Location<'static>,
        /// Where each of those children was spawned, in spawn order.
        spawn_sites: Vec<&'static Location<'static>>,
    },
    /// The promise's result was already taken (it was awaited to the end
    /// before); checked after [`Error::NotAChild`].
    AlreadyTaken,
    /// An [`Orphans`](crate::Orphans) set was used by a task other than its owner.
    NotOwner,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled => f.write_str("the task was cancelled"),
            Error::Panicked(p) => write!(f, "the task panicked: {}", p.message()),
            Error::NotAChild => f.write_str("only the parent task may await or cancel this promise"),
            Error::NoDomainAvailable => {
                f.write_str("no worker is available for parallel work (dom0 and the caller's own worker are excluded)")
            }
            Error::StillHasChildren { task, children, first_child, .. } => write!(
                f,
                "the task spawned at {task} returned while {children} of its children were neither awaited nor cancelled (the first spawned at {first_child})"
            ),
            Error::NotOwner => f.write_str("this orphans set belongs to another task"),
            Error::AlreadyTaken => f.write_str("this promise's result was already taken by an earlier await"),
        }
    }
}

impl std::error::Error for Error {}

/// The value a task panicked with, kept so the parent can inspect or re-raise it.
///
/// ```
/// use matou_core::Error;
///
/// matou_core::run(async {
///     match matou_core::spawn(async { panic!("disk full") }).await {
///         Err(Error::Panicked(p)) => {
///             assert_eq!(p.message(), "disk full");
///             // or: std::panic::resume_unwind(p.into_inner())
///         }
///         other => unreachable!("{other:?}"),
///     }
/// });
/// ```
pub struct PanicPayload {
    message: String,
    // A `Mutex` only to make the payload `Sync`, so `Error` is `Send + Sync`.
    payload: Mutex<Option<Box<dyn Any + Send + 'static>>>,
}

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_owned()
        };
        PanicPayload {
            message,
            payload: Mutex::new(Some(payload)),
        }
    }

    /// The panic message when it was a string, else a placeholder.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The original payload, e.g. to `std::panic::resume_unwind` it.
    pub fn into_inner(self) -> Box<dyn Any + Send + 'static> {
        let message = self.message;
        self.payload
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_else(|| Box::new(message))
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PanicPayload").field(&self.message).finish()
    }
}
