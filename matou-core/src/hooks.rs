//! Per-worker poll hooks (Miou's `Hook`) and task names: what a user sees of
//! a task from outside it.
//!
//! The hooks run on the polling worker's thread, just before and just after
//! each poll of a task's future, with no runtime borrow held; a hook that
//! panics is caught and ignored (it must not break the worker loop). With no
//! hook configured the cost is one branch per poll.

use crate::runtime::WorkerId;
use crate::task::TaskId;
use std::fmt;
use std::panic::Location;

/// What a poll hook learns about the task being polled.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let polls = Arc::new(AtomicUsize::new(0));
/// let p = polls.clone();
/// matou_core::Builder::new()
///     .extra_workers(0)
///     .on_task_poll(move |_info| { p.fetch_add(1, Ordering::Relaxed); }, |_info| {})
///     .run(async {
///         matou_core::spawn_named("greeter", async {}).await.unwrap();
///     });
/// assert!(polls.load(Ordering::Relaxed) >= 2); // the main task and "greeter"
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TaskInfo<'a> {
    /// The task's id.
    pub id: TaskId,
    /// Its name, when spawned with [`spawn_named`](crate::spawn_named).
    pub name: Option<&'a str>,
    /// The worker polling it (tasks never migrate: always the same one).
    pub worker: WorkerId,
    /// Where it was spawned (or where `run` was called, for the main task).
    pub spawned_at: &'static Location<'static>,
}

impl fmt::Display for TaskInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id.as_u64())?;
        if let Some(name) = self.name {
            write!(f, " {name:?}")?;
        }
        write!(
            f,
            " on worker {} (spawned at {})",
            self.worker.index(),
            self.spawned_at
        )
    }
}

type Hook = Box<dyn Fn(&TaskInfo<'_>) + Send + Sync>;

/// The two hooks of [`Builder::on_task_poll`](crate::Builder::on_task_poll).
pub(crate) struct PollHooks {
    pub(crate) start: Hook,
    pub(crate) stop: Hook,
}
