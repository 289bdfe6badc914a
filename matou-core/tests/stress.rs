//! Randomized stress: random trees of spawn / call / await / cancel / panic /
//! drop mid-await / forget on every worker, bounded in time. After each run: every task ended, every
//! destructor ran exactly once, and the live-task count is back to one.

use matou_core::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Counters {
    created: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

struct Tracked(Counters);
impl Tracked {
    fn new(c: &Counters) -> Self {
        c.created.fetch_add(1, Ordering::SeqCst);
        Tracked(c.clone())
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// xorshift64*: enough randomness, no dependency, reproducible from a seed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn node(
    depth: u32,
    mut seed: u64,
    c: Counters,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64>>> {
    Box::pin(async move {
        let _t = Tracked::new(&c);
        let children = if depth == 0 { 0 } else { next(&mut seed) % 4 };
        let mut promises = Vec::new();
        for i in 0..children {
            let s = next(&mut seed) ^ i;
            let c2 = c.clone();
            let p = if next(&mut seed) % 2 == 0 {
                spawn(node(depth - 1, s, c2))
            } else {
                match call(move || node(depth - 1, s, c2)) {
                    Ok(p) => p,
                    Err(Error::NoDomainAvailable) => spawn(node(depth - 1, s, c.clone())),
                    Err(e) => panic!("unexpected {e}"),
                }
            };
            promises.push(p);
        }
        for _ in 0..next(&mut seed) % 3 {
            yield_now().await;
        }
        let mut sum = 0;
        for p in promises {
            match next(&mut seed) % 12 {
                0..=2 => p.cancel().await.unwrap(),
                // Dropped mid-await: the child is cancelled, this task waits
                // for it at its end.
                3 | 4 => {
                    let mut p = std::pin::pin!(p);
                    if let Either::Left(r) = race(p.as_mut(), yield_now()).await {
                        sum += r.unwrap_or(0);
                    }
                }
                // Forgotten: this task fails with StillHasChildren.
                5 => drop(p),
                _ => match p.await {
                    Ok(v) => sum += v,
                    Err(Error::Panicked(_))
                    | Err(Error::Cancelled)
                    | Err(Error::StillHasChildren { .. }) => {}
                    Err(e) => panic!("unexpected {e}"),
                },
            }
        }
        if next(&mut seed) % 13 == 0 {
            panic!("random failure");
        }
        sum + 1
    })
}

#[test]
fn random_trees_leak_nothing() {
    let deadline = Instant::now() + Duration::from_secs(if cfg!(miri) { 1 } else { 4 });
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut runs = 0;
    while Instant::now() < deadline || runs < 3 {
        let extra = (runs % 4) as usize;
        let c = Counters {
            created: Arc::default(),
            dropped: Arc::default(),
        };
        let root_seed = next(&mut seed);
        let c2 = c.clone();
        let live_after = Builder::new().extra_workers(extra).run(async move {
            let p = spawn(node(4, root_seed, c2));
            let _ = p.await;
            live_tasks()
        });
        assert_eq!(live_after, 1, "only the main task is alive at the end");
        assert_eq!(
            c.created.load(Ordering::SeqCst),
            c.dropped.load(Ordering::SeqCst),
            "every destructor ran exactly once (seed {root_seed:#x})"
        );
        runs += 1;
    }
}
