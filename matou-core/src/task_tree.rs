//! [`task_tree`]: a snapshot of every live task of the run, to see what is
//! stuck.
//!
//! Nothing is recorded at spawn for it: each worker already keeps every live
//! task of its own in its table of slots, touched by its thread only. So
//! `task_tree` asks each worker for a copy of its table: the caller's own
//! worker directly, every other one by a `Remote::Run` job in its inbox
//! (which interrupts it if it sleeps), whose answer comes back on a
//! [`oneshot`] channel. Invariants:
//! - a worker copies its table between two polls (or, for the caller's own,
//!   during the caller's poll), so each worker's part is consistent at its own
//!   moment; the parts of different workers are taken at different moments;
//! - a worker whose inbox is closed (the run is ending) drops the job, which
//!   drops its sender: its part is missing, and `task_tree` still returns.

use crate::runtime::context;
use crate::runtime::shared::Remote;
use crate::runtime::worker::Worker;
use crate::runtime::WorkerId;
use crate::sync::oneshot;
use crate::task::TaskId;
use std::collections::HashMap;
use std::fmt;
use std::panic::Location;

/// What a task is doing at the moment of the snapshot, as its worker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Its worker is polling it right now (only ever the task that called
    /// [`task_tree`]: other workers answer between two polls).
    Running,
    /// Woken and queued: its worker will poll it soon (or is stuck in
    /// another task's long poll).
    Scheduled,
    /// Waiting to be woken: parked on a syscall, a promise, a channel, a lock.
    Idle,
    /// Ending, and waiting for its children to end first: its cancellation
    /// was requested (by its parent, a cancelled ancestor, a dropped promise),
    /// or it panicked, or its future returned with children still alive.
    Cancelling,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Running => "running",
            TaskState::Scheduled => "scheduled",
            TaskState::Idle => "idle",
            TaskState::Cancelling => "cancelling",
        })
    }
}

/// One live task in a [`TaskTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskSnapshot {
    /// The task's id.
    pub id: TaskId,
    /// Its name, when spawned with [`spawn_named`](crate::spawn_named).
    pub name: Option<String>,
    /// The task that spawned it (`None` for the main task).
    pub parent: Option<TaskId>,
    /// The worker it runs on (tasks never migrate).
    pub worker: WorkerId,
    /// Where it was spawned (or where `run` was called, for the main task).
    pub spawned_at: &'static Location<'static>,
    /// What it was doing when its worker answered.
    pub state: TaskState,
}

impl fmt::Display for TaskSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id.as_u64())?;
        if let Some(name) = &self.name {
            write!(f, " {name:?}")?;
        }
        write!(
            f,
            " [{}] on worker {}, spawned at {}",
            self.state,
            self.worker.index(),
            self.spawned_at
        )
    }
}

/// Every live task of the run (spawned and not yet terminated), sorted by id;
/// made by [`task_tree`].
///
/// Its `Display` prints one task per line, roots first, each child indented
/// two spaces under its parent, siblings by id:
///
/// ```text
/// task 1 [running] on worker 0, spawned at src/main.rs:3:5
///   task 2 "listener" [idle] on worker 0, spawned at src/main.rs:4:17
///     task 7 "conn" [scheduled] on worker 1, spawned at src/server.rs:40:13
/// ```
///
/// A task whose parent is not in the snapshot (the parts of different
/// workers are taken at different moments) is printed as a root.
#[derive(Debug, Clone, Default)]
pub struct TaskTree {
    tasks: Vec<TaskSnapshot>,
}

impl TaskTree {
    /// The tasks, sorted by id.
    pub fn tasks(&self) -> &[TaskSnapshot] {
        &self.tasks
    }

    /// The task with this id, if it was live.
    pub fn get(&self, id: TaskId) -> Option<&TaskSnapshot> {
        self.tasks
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .map(|i| &self.tasks[i])
    }
}

impl fmt::Display for TaskTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut children: HashMap<TaskId, Vec<&TaskSnapshot>> = HashMap::new();
        let mut roots = Vec::new();
        for t in &self.tasks {
            match t.parent.filter(|p| self.get(*p).is_some()) {
                Some(p) => children.entry(p).or_default().push(t),
                None => roots.push(t),
            }
        }
        // Depth first without recursion (a deep tree must not overflow the
        // stack); `tasks` is sorted, so every list is, and reversing it onto
        // the stack pops siblings by id.
        let mut stack: Vec<(usize, &TaskSnapshot)> =
            roots.into_iter().rev().map(|t| (0, t)).collect();
        while let Some((depth, t)) = stack.pop() {
            writeln!(f, "{:indent$}{t}", "", indent = depth * 2)?;
            if let Some(kids) = children.get(&t.id) {
                stack.extend(kids.iter().rev().map(|k| (depth + 1, *k)));
            }
        }
        Ok(())
    }
}

/// Copies `w`'s table of live tasks.
fn snapshot(w: &Worker) -> Vec<TaskSnapshot> {
    let current = w.current().map(|c| c.key);
    let tasks = w.tasks.borrow();
    tasks
        .iter()
        .map(|(key, slot)| {
            let h = &slot.header;
            let state = if current == Some(key) {
                TaskState::Running
            } else if h.is_cancelling() || h.state.is_cancel_requested() {
                TaskState::Cancelling
            } else if h.state.is_notified() {
                TaskState::Scheduled
            } else {
                TaskState::Idle
            };
            TaskSnapshot {
                id: h.id,
                name: h.name.get().map(|n| n.to_string()),
                parent: h.parent.as_ref().map(|p| p.id),
                worker: WorkerId::new(w.index),
                spawned_at: h.spawned_at,
                state,
            }
        })
        .collect()
}

/// Every live task of the run, with its name, parent, worker, spawn site and
/// state: what to look at when a server is stuck.
///
/// Each worker answers between two polls, so a worker stuck in a long
/// synchronous poll (a blocking call inside a task) delays the answer until
/// that poll returns; while waiting, the calling task is parked like any
/// other. Cancel safe: dropping the future drops the answers. A terminated
/// task is not listed, even if its result has not been collected yet; a task
/// sent to another worker by [`call`](crate::call) is listed once that worker
/// has received it.
///
/// # Panics
/// Outside a matou task.
///
/// # Example
///
/// ```
/// use matou_core::TaskState;
///
/// matou_core::Builder::new().extra_workers(1).run(async {
///     let (tx, rx) = matou_core::sync::oneshot::channel::<()>();
///     let waiter = matou_core::spawn_named("waiter", async move { rx.await.ok() });
///     matou_core::yield_now().await; // let it start and park
///     let tree = matou_core::task_tree().await;
///     let w = tree.get(waiter.id()).unwrap();
///     assert_eq!(w.name.as_deref(), Some("waiter"));
///     assert_eq!(w.state, TaskState::Idle);
///     eprint!("{tree}"); // the main task, and "waiter" indented under it
///     tx.send(()).unwrap();
///     waiter.await.unwrap();
/// });
/// ```
///
/// In a server, print it when asked, e.g. on SIGUSR1 (`kill -USR1 <pid>`),
/// from a task of its own. With the `matou` facade (this example is compiled
/// in the `matou` crate's docs, "Seeing what is stuck"; the core has no
/// signals):
///
/// ```ignore
/// use matou::unix::signal::{SignalKind, Signals};
///
/// let mut usr1 = Signals::new(&[SignalKind::USR1])?;
/// let dumper = matou::spawn_named("task-tree-dumper", async move {
///     loop {
///         usr1.recv().await;
///         eprint!("{}", matou::task_tree().await);
///     }
/// });
/// // ... serve; at shutdown: dumper.cancel().await;
/// ```
pub async fn task_tree() -> TaskTree {
    let (mut tasks, answers) = context::with_current("matou::task_tree", |w, _| {
        let answers: Vec<_> = (0..w.shared.workers.len())
            .filter(|&i| i != w.index)
            .map(|i| {
                let (tx, rx) = oneshot::channel();
                let job = move |w: &Worker| {
                    // The asker may have gone: then nobody wants the answer.
                    let _ = tx.send(snapshot(w));
                };
                w.shared.push_remote(i, Remote::Run(Box::new(job)));
                rx
            })
            .collect();
        (snapshot(w), answers)
    });
    for answer in answers {
        if let Ok(mut part) = answer.await {
            tasks.append(&mut part);
        }
    }
    tasks.sort_unstable_by_key(|t| t.id);
    TaskTree { tasks }
}
