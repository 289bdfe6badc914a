//! Seed 001's tutorial, "Sleepers": a user-written event source outside the
//! core. Each worker keeps its own priority queue of sleepers (thread-local, as
//! Miou's DLS); `select` signals the ones whose time has come, forgets the
//! cancelled uids, and sleeps until the next deadline or an interrupt.
//!
//! `cargo run -p matou --example sleepers` runs both programs of the tutorial.

use matou_core::{Builder, EventSource, Interrupt, Signal, Uid};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

thread_local! {
    /// This worker's sleepers: (deadline, uid), earliest first.
    static SLEEPERS: RefCell<BinaryHeap<Reverse<(Instant, Uid)>>> = const { RefCell::new(BinaryHeap::new()) };
}

/// Sleeps for `delay` (Miou tutorial's `Chat.sleep`).
pub async fn sleep(delay: Duration) {
    let syscall = matou_core::syscall();
    SLEEPERS.with(|s| {
        s.borrow_mut()
            .push(Reverse((Instant::now() + delay, syscall.uid())))
    });
    matou_core::suspend(syscall).await;
}

/// The interrupt: a flag and a condition variable instead of the tutorial's
/// pipe (no OS facility beyond std's threads).
#[derive(Default)]
struct Wakeup {
    pending: Mutex<bool>,
    cond: Condvar,
}

impl Interrupt for Wakeup {
    fn interrupt(&self) {
        *self.pending.lock().unwrap() = true;
        self.cond.notify_one();
    }
}

struct Sleepers {
    wakeup: Arc<Wakeup>,
    cancelled: HashSet<Uid>,
}

impl EventSource for Sleepers {
    fn select(&mut self, block: bool, cancelled: &[Uid], signals: &mut Vec<Signal>) {
        self.cancelled.extend(cancelled.iter().copied());
        SLEEPERS.with(|s| {
            let mut s = s.borrow_mut();
            // Drop cancelled sleepers at the top, then signal the due ones.
            let now = Instant::now();
            while let Some(Reverse((time, uid))) = s.peek().copied() {
                if self.cancelled.remove(&uid) {
                    s.pop();
                } else if time <= now {
                    s.pop();
                    signals.push(Signal::new(uid));
                } else {
                    break;
                }
            }
            if !signals.is_empty() || !block && s.is_empty() {
                return;
            }
            let timeout = match s.peek() {
                Some(Reverse((time, _))) => time.saturating_duration_since(now),
                None if block => Duration::from_secs(3600),
                None => Duration::ZERO,
            };
            let timeout = if block { timeout } else { Duration::ZERO };
            drop(s);
            let mut pending = self.wakeup.pending.lock().unwrap();
            if !*pending {
                pending = self.wakeup.cond.wait_timeout(pending, timeout).unwrap().0;
            }
            *pending = false;
        });
    }

    fn interrupter(&self) -> Arc<dyn Interrupt> {
        self.wakeup.clone()
    }
}

/// `Chat.run`: a run whose workers each use a sleepers event source.
pub fn run<F: Future + 'static>(extra_workers: usize, fut: F) -> F::Output {
    Builder::new()
        .extra_workers(extra_workers)
        .event_source(|_| {
            Box::new(Sleepers {
                wakeup: Arc::default(),
                cancelled: HashSet::new(),
            })
        })
        .run(fut)
}

/// The tutorial's first program: 1 s and 2 s sleepers run concurrently.
fn program_concurrent() -> Duration {
    let t0 = Instant::now();
    run(1, async {
        let a = matou_core::spawn(sleep(Duration::from_secs(1)));
        let b = matou_core::spawn(sleep(Duration::from_secs(2)));
        for r in matou_core::await_all(vec![a, b]).await {
            r.unwrap();
        }
    });
    t0.elapsed()
}

/// The tutorial's last program: a parallel 10 s sleeper cancelled at once.
fn program_cancel() -> Duration {
    let t0 = Instant::now();
    run(1, async {
        let prm = matou_core::call(|| sleep(Duration::from_secs(10))).unwrap();
        matou_core::yield_now().await;
        prm.cancel().await.unwrap();
    });
    t0.elapsed()
}

fn main() {
    println!("1 s + 2 s sleepers took {:?}", program_concurrent());
    println!(
        "a cancelled 10 s parallel sleeper took {:?}",
        program_cancel()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sleepers_finish_in_under_three_seconds() {
        let took = program_concurrent();
        assert!(took >= Duration::from_secs(2), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn a_parallel_sleeper_is_cancelled_at_once() {
        let took = program_cancel();
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    #[test]
    fn sleepers_on_every_worker() {
        let took = {
            let t0 = Instant::now();
            run(2, async {
                let r = matou_core::parallel(|ms| sleep(Duration::from_millis(ms)), [300u64, 300])
                    .await;
                assert!(r.unwrap().into_iter().all(|r| r.is_ok()));
            });
            t0.elapsed()
        };
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(550),
            "{took:?}"
        );
    }
}
