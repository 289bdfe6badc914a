//! Blocking work off the workers: [`unblock`] runs a closure on a bounded,
//! growable pool of threads and hands its result back to the awaiting task.
//!
//! The pool ([`BlockingPool`]) starts with no thread, spawns one when a job
//! arrives and no idle thread is waiting for it (up to `max_threads`; further
//! jobs queue), and lets a thread exit after it has been idle for
//! `idle_timeout`. The result travels back over matou-core's oneshot channel:
//! the pool thread's `send` wakes the awaiting task through the core's remote
//! wake, which interrupts its worker if that worker sleeps in `select`.
//!
//! Which pool: a run built with [`crate::builder_with`] installs its own pool
//! on every worker; [`crate::builder`] and code off a matou-unix worker use
//! the process-wide default pool ([`PoolConfig::default`]).
//!
//! Invariants:
//! - `queue.len() > idle` is the only condition under which a thread is
//!   spawned: every queued job either has an idle thread that will take it,
//!   or gets a new thread, or waits for a busy thread when the pool is full;
//! - a job is run exactly once, to completion, even if its awaiting task was
//!   cancelled (the closure cannot be interrupted); its result is then
//!   dropped on the pool thread;
//! - a panic in a job is caught on the pool thread (which survives) and
//!   resumed in the awaiting task.

use matou_core::sync::oneshot;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The settings of a [`BlockingPool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    max_threads: usize,
    idle_timeout: Duration,
}

impl Default for PoolConfig {
    /// At most 64 threads, each exiting after 10 s idle.
    fn default() -> Self {
        PoolConfig {
            max_threads: 64,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

impl PoolConfig {
    /// The most threads the pool runs at once (at least 1; default 64).
    /// Jobs beyond it wait in a FIFO queue.
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = n.max(1);
        self
    }

    /// How long a thread waits for a job before exiting (default 10 s).
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }
}

struct State {
    queue: VecDeque<Job>,
    /// Threads waiting on `wake` for a job.
    idle: usize,
    /// Threads alive (idle or busy).
    threads: usize,
}

struct Inner {
    config: PoolConfig,
    state: Mutex<State>,
    wake: Condvar,
}

/// A pool of threads for blocking work. Cheap to clone (shared).
#[derive(Clone)]
pub struct BlockingPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool")
            .field("config", &self.inner.config)
            .field("threads", &self.threads())
            .finish()
    }
}

thread_local! {
    static CURRENT_POOL: RefCell<Option<BlockingPool>> = const { RefCell::new(None) };
}

impl BlockingPool {
    /// A pool with no thread yet.
    pub fn new(config: PoolConfig) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                }),
                wake: Condvar::new(),
            }),
        }
    }

    /// The process-wide default pool ([`PoolConfig::default`]).
    pub fn global() -> &'static BlockingPool {
        static GLOBAL: OnceLock<BlockingPool> = OnceLock::new();
        GLOBAL.get_or_init(|| BlockingPool::new(PoolConfig::default()))
    }

    /// The pool [`unblock`] uses on this thread: the run's (see
    /// [`crate::builder_with`]) or the global one.
    pub fn current() -> BlockingPool {
        CURRENT_POOL
            .try_with(|p| p.borrow().clone())
            .ok()
            .flatten()
            .unwrap_or_else(|| BlockingPool::global().clone())
    }

    /// Makes this pool the current thread's (done by the run's workers).
    pub(crate) fn install(&self) {
        let _ = CURRENT_POOL.try_with(|p| *p.borrow_mut() = Some(self.clone()));
    }

    /// Its settings.
    pub fn config(&self) -> PoolConfig {
        self.inner.config
    }

    /// How many threads it has now (idle or busy): a diagnostic.
    pub fn threads(&self) -> usize {
        self.lock().threads
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on this pool; see [`unblock`].
    pub fn unblock<T, F>(&self, f: F) -> Unblock<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            // A cancelled awaiter closed the channel: the result comes back
            // and is dropped here, on the pool thread.
            drop(tx.send(result));
        }));
        Unblock { rx }
    }

    fn submit(&self, job: Job) {
        let mut st = self.lock();
        st.queue.push_back(job);
        if st.queue.len() <= st.idle {
            drop(st);
            self.inner.wake.notify_one();
            return;
        }
        if st.threads >= self.inner.config.max_threads {
            return; // A busy thread takes it when done.
        }
        st.threads += 1;
        let alive_before = st.threads - 1;
        drop(st);
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("matou-blocking".into())
            .spawn(move || worker_loop(&inner));
        if let Err(e) = spawned {
            let mut st = self.lock();
            st.threads -= 1;
            assert!(
                alive_before > 0,
                "matou-unix: cannot spawn a blocking-pool thread and none is alive: {e}"
            );
        }
    }
}

fn worker_loop(inner: &Inner) {
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(job) = st.queue.pop_front() {
            drop(st);
            job();
            st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        st.idle += 1;
        let (guard, waited) = inner
            .wake
            .wait_timeout(st, inner.config.idle_timeout)
            .unwrap_or_else(|e| e.into_inner());
        st = guard;
        st.idle -= 1;
        if waited.timed_out() && st.queue.is_empty() {
            st.threads -= 1;
            return;
        }
    }
}

/// Runs the blocking `f` on the current [`BlockingPool`] and resolves to its
/// value, without blocking the worker.
///
/// `f` is queued at once (not at the first poll). It always runs to
/// completion: dropping (cancelling) the future does not wait for it nor stop
/// it; its value is then dropped on the pool thread. A panic in `f` is resumed
/// when the future is polled.
///
/// ```
/// let n = matou_unix::run(async {
///     matou_unix::blocking::unblock(|| std::fs::read_dir(".").unwrap().count()).await
/// });
/// assert!(n > 0);
/// ```
pub fn unblock<T, F>(f: F) -> Unblock<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    BlockingPool::current().unblock(f)
}

/// The future of [`unblock`]. `Send` and `Unpin`; dropping it cancels only
/// the wait, not the closure.
#[must_use = "the closure runs anyway; await the future to get its value"]
pub struct Unblock<T> {
    rx: oneshot::Receiver<std::thread::Result<T>>,
}

impl<T> std::fmt::Debug for Unblock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unblock").finish_non_exhaustive()
    }
}

impl<T> Future for Unblock<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(Ok(v))) => Poll::Ready(v),
            Poll::Ready(Ok(Err(panic))) => std::panic::resume_unwind(panic),
            // The job owns the sender until it has sent; it is dropped
            // unsent only if the pool thread itself died mid-job.
            Poll::Ready(Err(_)) => panic!("matou-unix: a blocking-pool job was lost"),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_beyond_max_threads_queue_and_all_run() {
        let pool = BlockingPool::new(PoolConfig::default().max_threads(2));
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            drop(pool.unblock(move || {
                std::thread::sleep(Duration::from_millis(5));
                tx.send(i).unwrap();
            }));
            assert!(pool.threads() <= 2);
        }
        let mut got: Vec<i32> = (0..10).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn idle_threads_exit_after_the_timeout() {
        let pool = BlockingPool::new(
            PoolConfig::default()
                .max_threads(4)
                .idle_timeout(Duration::from_millis(50)),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        drop(pool.unblock(move || tx.send(()).unwrap()));
        rx.recv().unwrap();
        assert_eq!(pool.threads(), 1);
        let t0 = std::time::Instant::now();
        while pool.threads() > 0 {
            assert!(t0.elapsed() < Duration::from_secs(5), "thread never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
