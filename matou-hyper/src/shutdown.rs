//! [`Shutdown`]: the trigger of a server's graceful shutdown, fired from any
//! thread and seen by every worker's accept loop and every connection.
//!
//! It is a closed-channel broadcast: waiters `recv` on a channel that never
//! carries a value, and [`Shutdown::trigger`] closes it, which wakes every
//! receiver at once on whatever worker it waits. Invariant: the deadline is
//! stored before the channel is closed, so whoever sees the close reads the
//! deadline; the first trigger wins, later ones change nothing.

use matou::sync;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Starts a graceful shutdown of [`serve`](crate::serve): stop accepting, let
/// in-flight requests finish until the grace period ends, then cancel what is
/// left. `Clone + Send + Sync`; trigger it from a signal handler, another
/// task, or another thread.
///
/// ```
/// use matou_hyper::Shutdown;
/// use std::time::Duration;
///
/// let stop = Shutdown::new(Duration::from_secs(5));
/// assert!(!stop.is_triggered());
/// stop.trigger();
/// assert!(stop.is_triggered());
/// ```
#[derive(Clone, Debug)]
pub struct Shutdown {
    grace: Duration,
    deadline: Arc<OnceLock<Instant>>,
    closer: sync::Sender<()>,
    signal: sync::Receiver<()>,
}

impl Shutdown {
    /// A trigger whose shutdown lets in-flight work run for `grace` at most.
    pub fn new(grace: Duration) -> Self {
        let (closer, signal) = sync::channel(1);
        Shutdown {
            grace,
            deadline: Arc::new(OnceLock::new()),
            closer,
            signal,
        }
    }

    /// Starts the shutdown now (its deadline is now plus the grace period).
    /// Idempotent: only the first call sets the deadline.
    pub fn trigger(&self) {
        let deadline = Instant::now()
            .checked_add(self.grace)
            .unwrap_or_else(Instant::now);
        let _ = self.deadline.set(deadline);
        self.closer.close();
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        self.deadline.get().is_some()
    }

    /// Waits for the trigger and gives the deadline of in-flight work.
    /// Cancel safe (it only waits).
    pub async fn triggered(&self) -> Instant {
        // The channel carries no value: `recv` ends only when it is closed.
        let _closed = self.signal.recv().await;
        *self
            .deadline
            .get()
            .expect("the deadline is set before the channel is closed")
    }
}
