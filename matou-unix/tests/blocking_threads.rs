//! Alone in its binary: it counts the process's threads (/proc/self/task).

mod common;

use matou_unix::blocking::{unblock, BlockingPool, PoolConfig};
use matou_unix::time::sleep;
use std::time::{Duration, Instant};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn cancelling_a_task_waiting_on_unblock_leaves_no_thread_after_the_idle_timeout() {
    let _w = common::watchdog("unblock_threads", 30);
    let before = threads();
    let pool = PoolConfig::default()
        .max_threads(4)
        .idle_timeout(Duration::from_millis(100));
    matou_unix::builder_with(pool).run(async {
        let during = threads();
        let p = matou_core::spawn(async {
            unblock(|| std::thread::sleep(Duration::from_millis(150))).await
        });
        sleep(Duration::from_millis(20)).await;
        assert_eq!(BlockingPool::current().threads(), 1);
        assert_eq!(threads(), during + 1, "one pool thread while the job runs");
        let _ = p.cancel().await;
        let t0 = Instant::now();
        while threads() > during {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "pool thread still alive: {} > {during}",
                threads()
            );
            sleep(Duration::from_millis(20)).await;
        }
        // Gone only after the job ended (150 ms) plus the idle timeout (100 ms).
        assert!(
            t0.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(BlockingPool::current().threads(), 0);
    });
    assert!(threads() <= before + 1, "{} threads vs {before}", threads());
}
