//! matou-core: Miou's structured concurrency for Rust, knowing no operating
//! system.
//!
//! Three promises:
//! 1. **Tasks are resources.** Every task is a child of the task that spawned
//!    it and must be awaited or cancelled before its parent returns; a task that
//!    returns having forgotten children fails with [`Error::StillHasChildren`]
//!    (they are cancelled first), a failure its parent sees like a panic; a
//!    promise dropped while being awaited cancels its child, and the parent
//!    waits for it (the rules are on [`Promise`]). Background work goes through
//!    [`Orphans`].
//! 2. **Placement is explicit.** [`spawn`] runs a task on the current worker,
//!    [`call`] on another one, [`parallel`] one per item over the others; dom0
//!    (the thread that called [`run`]) never receives parallel work. Tasks
//!    never migrate.
//! 3. **The scheduler knows no operating system.** Each worker owns one
//!    [`EventSource`]; tasks park on a [`Syscall`] and are resumed by the
//!    [`Signal`]s its `select` returns.
//!
//! ```
//! let (a, b) = matou_core::run(async {
//!     let a = matou_core::spawn(async { 1 + 1 });
//!     let b = matou_core::spawn(async { "two" });
//!     matou_core::both(a, b).await
//! });
//! assert_eq!((a.unwrap(), b.unwrap()), (2, "two"));
//! ```
//!
//! Inside one task, [`select!`], [`race!`], [`race_all`] and [`join!`] wait
//! on several futures without making tasks; code that is not a task (a
//! library's executor callback, another thread) spawns into an [`Orphans`]
//! set through its [`OrphansHandle`].
//!
//! A forgotten child is caught by the compiler's `must_use` lint first:
//!
//! ```compile_fail
//! #![deny(unused_must_use)]
//! matou_core::run(async { matou_core::spawn(async {}); });
//! ```

#![warn(missing_docs)]

mod combinators;
mod error;
mod hooks;
mod loom;
mod orphans;
mod promise;
mod runtime;
mod seam;
mod select;
mod spawn;
pub mod sync;
mod syscall;
mod task;
mod task_tree;
#[cfg(feature = "tracing")]
mod trace;
mod waker_cell;

pub use combinators::{await_all, await_first, await_one, both, race, Either, Race};
pub use error::{Error, PanicPayload};
pub use hooks::TaskInfo;
pub use orphans::{Care, Orphans, OrphansHandle, Refused, RefusedReason};
pub use promise::{Cancel, Promise};
pub use runtime::{
    current_worker, live_tasks, run, worker_count, Builder, WorkerId, DEFAULT_IDLE_SPIN,
};
pub use seam::{EventSource, Interrupt, ParkingEventSource, Signal, Uid};
pub use select::{race_all, RaceAll};
pub use spawn::{call, parallel, spawn, spawn_named, yield_now, YieldNow};
pub use syscall::{suspend, syscall, Suspend, Syscall};
pub use task::TaskId;
pub use task_tree::{task_tree, TaskSnapshot, TaskState, TaskTree};
#[cfg(feature = "tracing")]
pub use trace::{current_task_span, TASK_SPAN_TARGET};
