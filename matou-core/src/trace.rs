//! The `tracing` feature: one [`tracing`] span per task, entered by its worker
//! around every poll of the task's future.
//!
//! Owns the span of each task (kept in the task's header) and the rule that
//! makes it. Invariants:
//! - a task's span is made once, on its first poll, on its own worker's
//!   thread: by then `spawn_named` has set the name, and the worker is final
//!   (tasks never migrate);
//! - a task's parent has been polled before the child (it spawned it), so the
//!   parent's span exists and is the child's span's parent: the task tree is
//!   the span tree. The main task's span is a child of whatever span was
//!   entered where `run` was called;
//! - with the feature off none of this is compiled: the worker's poll path
//!   is the same as without the feature (no field, no branch).
//!
//! The span's fields and an example are on [`current_task_span`].

use crate::runtime::context;
use crate::task::header::Header;
use tracing::Span;

/// The target of every task span (see the module doc of the `tracing`
/// feature): filter on it to keep or drop them.
pub const TASK_SPAN_TARGET: &str = "matou::task";

/// The span of `task`, made on its first poll (see the module invariants).
/// Called by the task's worker only.
pub(crate) fn span_of(task: &Header) -> &Span {
    task.span.get_or_init(|| {
        let name = task.name.get().map(|n| &**n);
        let parent_id = task.parent.as_ref().map(|p| p.id.as_u64());
        let spawned_at = tracing::field::display(task.spawned_at);
        match &task.parent {
            // The parent was polled first (it spawned this task), so its span
            // exists; `get` only falls back if that ever stops holding.
            Some(parent) => {
                let parent_span = parent.span.get().cloned().unwrap_or_else(Span::none);
                tracing::info_span!(
                    target: TASK_SPAN_TARGET,
                    parent: &parent_span,
                    "task",
                    id = task.id.as_u64(),
                    name,
                    worker = task.worker,
                    parent = parent_id,
                    spawned_at,
                )
            }
            None => tracing::info_span!(
                target: TASK_SPAN_TARGET,
                "task",
                id = task.id.as_u64(),
                name,
                worker = task.worker,
                parent = parent_id,
                spawned_at,
            ),
        }
    })
}

/// The span of the task being polled on this thread, or `None` outside a
/// matou task; to carry a task's context into work it hands elsewhere (a
/// thread, a blocking pool job: `let _g = span.enter();` there).
///
/// Available with the `tracing` feature, which gives every task a span that
/// its worker enters around each poll of the task's future, so events and
/// spans inside a task nest under it, and the task tree is the span tree.
///
/// The spans are named `task`, at level `INFO`, with target
/// [`TASK_SPAN_TARGET`] (`matou::task`), and carry:
/// - `id`: the task's [`TaskId`](crate::TaskId) as a number;
/// - `name`: its [`spawn_named`](crate::spawn_named) name (absent otherwise);
/// - `worker`: the index of the worker that polls it;
/// - `parent`: the id of the task that spawned it (absent for the main task);
/// - `spawned_at`: the source location of the spawn.
///
/// Worker threads see the global default subscriber (`set_global_default`,
/// or tracing-subscriber's `init`); `with_default`, as in this one-worker
/// example, covers the calling thread (dom0) only.
///
/// A subscriber that does not want them filters on the target, e.g.
/// `matou::task=off` with tracing-subscriber's `EnvFilter`.
///
/// ```
/// use tracing_subscriber::fmt::format::FmtSpan;
///
/// // Log each task's span as it closes, with its fields and busy time.
/// let subscriber = tracing_subscriber::fmt()
///     .with_span_events(FmtSpan::CLOSE)
///     .with_test_writer()
///     .finish();
/// tracing::subscriber::with_default(subscriber, || {
///     matou_core::Builder::new().extra_workers(0).run(async {
///         let child = matou_core::spawn_named("fetch", async {
///             // Events inside the task carry its span:
///             // `task{id=.. name="fetch" worker=0 parent=..}: working`.
///             tracing::info!("working");
///             assert!(matou_core::current_task_span().is_some());
///         });
///         child.await.unwrap();
///     });
/// });
/// ```
///
/// Returns a clone of the span: dropping it does not close the task's span,
/// which lives as long as the task's record.
pub fn current_task_span() -> Option<Span> {
    context::with_worker(|w| w.current().map(|c| span_of(&w.header_of(c)).clone())).flatten()
}
