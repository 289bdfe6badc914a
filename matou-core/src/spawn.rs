//! Placement: `spawn` (concurrent, this worker), `call` (parallel, another
//! worker), `parallel` (one task per item over the other workers), and
//! `yield_now`.
//!
//! Every task made here is a child of the calling task: it is recorded in the
//! caller's children table and must be awaited or cancelled before the caller
//! returns. Placement rules: `call` and `parallel` never choose dom0 (worker 0)
//! nor the caller's own worker; with no such worker they fail with
//! [`Error::NoDomainAvailable`] at once. Tasks never migrate.

use crate::combinators::await_all;
use crate::error::Error;
use crate::promise::Promise;
use crate::runtime::context;
use crate::runtime::shared::Remote;
use crate::runtime::worker::{Current, Worker};
use crate::task::cell::{take_output, TaskCell};
use crate::task::header::{ExitHook, Header, TaskRef};
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Runs `future` as a new child task on the current worker, concurrently with
/// its parent. `future` need not be `Send`. The parent keeps running: the child
/// starts when the worker gets to it in FIFO order.
///
/// # Panics
/// Outside a matou task.
#[track_caller]
pub fn spawn<F>(future: F) -> Promise<F::Output>
where
    F: Future + 'static,
{
    let at = Location::caller();
    context::with_current("matou::spawn", |w, cur| {
        spawn_local(w, cur, future, at, None)
    })
}

/// Like [`spawn`], with a name that poll hooks (and logs) see in
/// [`TaskInfo::name`](crate::TaskInfo).
///
/// # Panics
/// Outside a matou task.
#[track_caller]
pub fn spawn_named<F>(name: impl Into<Box<str>>, future: F) -> Promise<F::Output>
where
    F: Future + 'static,
{
    let at = Location::caller();
    let name = name.into();
    context::with_current("matou::spawn_named", |w, cur| {
        let promise = spawn_local(w, cur, future, at, None);
        // The task is queued, not run: it has its name before its first poll.
        let _ = promise.header().name.set(name);
        promise
    })
}

/// Runs the future that `make` builds as a new child task on another worker,
/// in parallel with its parent. `make` runs on that worker, so the future it
/// returns need not be `Send`; only its output crosses back.
///
/// # Errors
/// [`Error::NoDomainAvailable`] when every worker is either dom0 or the
/// caller's own.
///
/// # Panics
/// Outside a matou task.
#[track_caller]
pub fn call<G, F>(make: G) -> Result<Promise<F::Output>, Error>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    let at = Location::caller();
    context::with_current("matou::call", |w, cur| {
        let target = w.shared.pick_worker(w.index)?;
        Ok(spawn_remote(w, cur, target, make, at, None))
    })
}

/// Runs `f(item)` for each item as a parallel task, round-robin over the
/// workers that are neither dom0 nor the caller's, awaits them all and returns
/// their results in input order.
///
/// # Errors
/// [`Error::NoDomainAvailable`] when no worker qualifies.
#[track_caller]
pub fn parallel<I, F, Fut>(
    f: F,
    items: I,
) -> impl Future<Output = Result<Vec<Result<Fut::Output, Error>>, Error>>
where
    I: IntoIterator,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> Fut + Send + Sync + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let at = Location::caller();
    async move {
        let f = Arc::new(f);
        let promises = context::with_current("matou::parallel", |w, cur| {
            let targets = w.shared.eligible(w.index);
            if targets.is_empty() {
                return Err(Error::NoDomainAvailable);
            }
            Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let f = f.clone();
                    spawn_remote(
                        w,
                        cur,
                        targets[i % targets.len()],
                        move || f(item),
                        at,
                        None,
                    )
                })
                .collect::<Vec<_>>())
        })?;
        Ok(await_all(promises).await)
    }
}

pub(crate) fn spawn_local<F>(
    w: &Worker,
    cur: Current,
    future: F,
    at: &'static Location<'static>,
    exit_hook: Option<(Arc<dyn ExitHook>, usize)>,
) -> Promise<F::Output>
where
    F: Future + 'static,
{
    let parent = w.header_of(cur);
    let task: TaskRef = Arc::new(Header::new(
        w.shared.clone(),
        w.index,
        Some(parent),
        at,
        exit_hook,
        TaskCell::running(future),
    ));
    w.shared.task_born(w.index);
    let child_key = w.add_child(cur, task.clone());
    w.insert_task(task.clone());
    // SAFETY: the task was made with a `TaskCell<fn() -> F, F>` body.
    unsafe { Promise::new(task, take_output::<fn() -> F, F>, cur.id, child_key) }
}

pub(crate) fn spawn_remote<G, F>(
    w: &Worker,
    cur: Current,
    target: usize,
    make: G,
    at: &'static Location<'static>,
    exit_hook: Option<(Arc<dyn ExitHook>, usize)>,
) -> Promise<F::Output>
where
    G: FnOnce() -> F + Send + 'static,
    F: Future + 'static,
    F::Output: Send + 'static,
{
    let parent = w.header_of(cur);
    let task: TaskRef = Arc::new(Header::new(
        w.shared.clone(),
        target,
        Some(parent),
        at,
        exit_hook,
        TaskCell::lazy(make),
    ));
    w.shared.task_born(w.index);
    let child_key = w.add_child(cur, task.clone());
    w.shared.push_remote(target, Remote::Spawn(task.clone()));
    // SAFETY: the task was made with a `TaskCell<G, F>` body.
    unsafe { Promise::new(task, take_output::<G, F>, cur.id, child_key) }
}

/// Lets the other runnable tasks of this worker run: the current task goes to
/// the back of the worker's FIFO queue.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
///
/// let log = matou_core::run(async {
///     let log = Rc::new(RefCell::new(Vec::new()));
///     let l = log.clone();
///     let child = matou_core::spawn(async move { l.borrow_mut().push("child") });
///     matou_core::yield_now().await; // the child, queued before us, runs now
///     log.borrow_mut().push("parent");
///     child.await.unwrap();
///     Rc::try_unwrap(log).unwrap().into_inner()
/// });
/// assert_eq!(log, ["child", "parent"]);
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
