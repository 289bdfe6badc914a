//! The wheel's own tests. They use plain `u64` keys and a made-up clock (each
//! `now` is the epoch plus an offset), so they touch neither the core nor
//! epoll and run under Miri (`scripts/miri`).

use super::*;
use std::collections::HashMap;

/// A wheel whose epoch is a fixed instant, and that instant.
fn wheel() -> (TimerWheel<u64>, Instant) {
    let epoch = Instant::now();
    (TimerWheel::starting_at(epoch), epoch)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Fewer iterations under Miri, which is ~1000x slower.
fn scaled(native: usize, miri: usize) -> usize {
    if cfg!(miri) {
        miri
    } else {
        native
    }
}

/// What a reactor does: sleep for `next_timeout`, then `expire`. Runs until
/// no timer is left or `until`; checks at every wake-up that nothing fired
/// early and nothing pending is more than a tick late. Returns the fire
/// instant of each key and the number of wake-ups.
fn drive(
    t: &mut TimerWheel<u64>,
    start: Instant,
    deadlines: &HashMap<u64, Instant>,
    until: Instant,
) -> (HashMap<u64, Instant>, usize) {
    let mut fired = HashMap::new();
    let mut now = start;
    let mut wakeups = 0;
    while let Some(wait) = t.next_timeout(now) {
        now = now.checked_add(wait).expect("a reachable wake-up").max(now);
        if now > until {
            break;
        }
        wakeups += 1;
        t.expire(now, |k| {
            assert!(now >= deadlines[&k], "timer {k} fired early");
            assert!(now < deadlines[&k] + TICK, "timer {k} fired a tick late");
            assert!(fired.insert(k, now).is_none(), "timer {k} fired twice");
        });
        for (k, &d) in deadlines {
            if !fired.contains_key(k) {
                assert!(now < d + TICK, "timer {k} is more than a tick late");
            }
        }
        assert_eq!(t.len(), deadlines.len() - fired.len());
    }
    (fired, wakeups)
}

#[test]
fn never_fires_early_nor_more_than_a_tick_late() {
    let (mut t, epoch) = wheel();
    // Deadlines off the tick grid, on it, and around level boundaries.
    let mut deadlines = HashMap::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for k in 0..scaled(2_000, 40) as u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let nanos = match k % 4 {
            0 => x % 70_000_000,               // within level 0 and just past it
            1 => (x % 5_000) * 1_000_000,      // on the grid, up to level 2
            2 => x % 300_000_000_000,          // up to level 3
            _ => (x % 4) * 64 * 1_000_000 + 1, // just after a level-1 slot
        };
        let d = epoch + Duration::from_nanos(nanos);
        deadlines.insert(k, d);
        t.insert(d, k);
    }
    let (fired, _) = drive(&mut t, epoch, &deadlines, epoch + Duration::from_secs(400));
    assert_eq!(fired.len(), deadlines.len());
    assert_eq!(t.len(), 0);
    assert_eq!(t.next_timeout(epoch), None);
}

#[test]
fn polling_at_arbitrary_instants_is_never_early() {
    // A reactor also wakes for I/O: `expire` at instants the wheel did not ask
    // for, here every 0.3 ms, must not fire early either.
    let (mut t, epoch) = wheel();
    let offsets = [
        1u64, 999_999, 1_000_000, 1_000_001, 1_500_000, 64_000_000, 64_300_001,
    ];
    for (k, &n) in offsets.iter().enumerate() {
        t.insert(epoch + Duration::from_nanos(n), k as u64);
    }
    let mut pending: Vec<u64> = offsets.to_vec();
    let mut now_ns = 0;
    while now_ns < 70_000_000 {
        now_ns += 300_000;
        let now = epoch + Duration::from_nanos(now_ns);
        t.expire(now, |k| {
            let d = offsets[k as usize];
            assert!(now_ns >= d, "timer at {d} ns fired at {now_ns} ns");
            pending.retain(|&p| p != d);
        });
        for &d in &pending {
            assert!(
                now_ns < d + 1_000_000,
                "timer at {d} ns pending at {now_ns} ns"
            );
        }
    }
    assert!(pending.is_empty());
}

#[test]
fn timers_cascade_down_every_level() {
    // One timer just past the start of each level, and one in the middle of
    // the top level; each fires within a tick of its deadline, after a
    // bounded number of wake-ups (at most one per level it cascades through).
    let (mut t, epoch) = wheel();
    let mut deadlines = HashMap::new();
    for level in 0..LEVELS as u32 {
        let ticks = (1u64 << (SLOT_BITS * level)) * 3 + 5;
        let d = epoch + ms(ticks) + Duration::from_micros(300);
        deadlines.insert(u64::from(level), d);
        t.insert(d, u64::from(level));
    }
    let top = epoch + ms(RANGE / 2 + 12_345);
    deadlines.insert(99, top);
    t.insert(top, 99);
    let (fired, wakeups) = drive(&mut t, epoch, &deadlines, top + ms(10));
    assert_eq!(fired.len(), deadlines.len(), "fired {fired:?}");
    assert!(
        wakeups <= deadlines.len() * (LEVELS + 1),
        "{wakeups} wake-ups"
    );
}

#[test]
fn far_future_deadlines_beyond_the_wheel_fire_on_time() {
    let (mut t, epoch) = wheel();
    let year = Duration::from_secs(365 * 86_400);
    let mut deadlines = HashMap::new();
    // Just past the wheel's range, a few turns of the top level away (the
    // overflow list's re-examination meets a top-level slot there), and the
    // 30 years `sleep` uses for "forever".
    let far = [
        ms(RANGE) + ms(7),
        ms(RANGE * 3) + Duration::from_nanos(1),
        year * 30,
    ];
    for (k, &d) in far.iter().enumerate() {
        deadlines.insert(k as u64, epoch + d);
        t.insert(epoch + d, k as u64);
    }
    // Close to the top level's turn, a timer of the next turn goes to the top
    // level's slot 0, which is due at the same tick as the overflow list.
    let close = epoch + ms(RANGE - 1_000);
    t.expire(close, |k| panic!("timer {k} fired early"));
    deadlines.insert(10, epoch + ms(RANGE + 5));
    t.insert(epoch + ms(RANGE + 5), 10);
    let (fired, wakeups) = drive(&mut t, close, &deadlines, epoch + year * 31);
    assert_eq!(fired.len(), deadlines.len(), "fired {fired:?}");
    assert!(wakeups < 200, "{wakeups} wake-ups");
}

#[test]
fn cancel_of_pending_expired_and_unknown_timers() {
    let (mut t, epoch) = wheel();
    // Three timers in one slot: cancelling the middle, then the head, of
    // its list keeps the others.
    for k in 0..3 {
        t.insert(epoch + ms(10), k);
    }
    t.insert(epoch + ms(5_000), 7);
    assert!(t.cancel(1), "a pending timer is cancelled");
    assert!(!t.cancel(1), "a second cancel finds nothing");
    assert!(t.cancel(2));
    assert!(!t.cancel(42), "an unknown key is not a timer");
    assert_eq!(t.len(), 2);
    let mut fired = Vec::new();
    t.expire(epoch + ms(10), |k| fired.push(k));
    assert_eq!(fired, vec![0]);
    assert!(!t.cancel(0), "an expired timer is no longer pending");
    // The last one cancelled: nothing left to wake up for.
    assert!(t.cancel(7));
    assert_eq!((t.len(), t.next_timeout(epoch)), (0, None));
    t.expire(epoch + ms(10_000), |k| fired.push(k));
    assert_eq!(fired, vec![0]);
}

#[test]
fn cancelled_timers_do_not_set_the_timeout() {
    let (mut t, epoch) = wheel();
    t.insert(epoch + ms(1), 0);
    t.insert(epoch + ms(50), 1);
    assert_eq!(t.next_timeout(epoch), Some(ms(1)));
    assert!(t.cancel(0));
    assert_eq!(t.next_timeout(epoch), Some(ms(50)));
}

#[test]
fn many_timers_at_the_same_tick_fire_together() {
    let (mut t, epoch) = wheel();
    let n = scaled(10_000, 300) as u64;
    let at = epoch + ms(4_321) + Duration::from_nanos(1);
    for k in 0..n {
        t.insert(at, k);
    }
    for k in (0..n).step_by(2) {
        assert!(t.cancel(k));
    }
    let mut fired = Vec::new();
    t.expire(at - Duration::from_nanos(1), |k| fired.push(k));
    assert!(fired.is_empty(), "fired before the deadline");
    t.expire(at + TICK, |k| fired.push(k));
    fired.sort_unstable();
    assert_eq!(fired, (1..n).step_by(2).collect::<Vec<_>>());
    assert_eq!(t.len(), 0);
}

#[test]
fn fires_tick_by_tick_in_deadline_order() {
    let (mut t, epoch) = wheel();
    t.insert(epoch + ms(30), 0);
    t.insert(epoch + ms(10), 1);
    t.insert(epoch + ms(5_000), 3);
    t.insert(epoch + ms(20), 2);
    assert_eq!(t.next_timeout(epoch), Some(ms(10)));
    let mut fired = Vec::new();
    t.expire(epoch + ms(5), |k| fired.push(k));
    assert!(fired.is_empty());
    t.expire(epoch + ms(6_000), |k| fired.push(k));
    assert_eq!(fired, vec![1, 2, 0, 3]);
}

#[test]
fn past_deadlines_fire_at_once() {
    let (mut t, epoch) = wheel();
    t.expire(epoch + ms(100), |_| unreachable!("no timer yet"));
    // Before the epoch, and before the last processed tick.
    let before = epoch.checked_sub(Duration::from_secs(1)).unwrap_or(epoch);
    t.insert(before, 0);
    t.insert(epoch + ms(50), 1);
    assert_eq!(t.next_timeout(epoch + ms(100)), Some(Duration::ZERO));
    let mut fired = Vec::new();
    t.expire(epoch + ms(100), |k| fired.push(k));
    fired.sort_unstable();
    assert_eq!(fired, vec![0, 1]);
}

#[test]
fn reinserting_a_key_replaces_its_timer() {
    let (mut t, epoch) = wheel();
    t.insert(epoch + ms(10), 0);
    t.insert(epoch + ms(200), 0);
    assert_eq!(t.len(), 1);
    let mut fired = Vec::new();
    t.expire(epoch + ms(100), |k| fired.push(k));
    assert!(fired.is_empty(), "the replaced deadline fired");
    t.expire(epoch + ms(200), |k| fired.push(k));
    assert_eq!(fired, vec![0]);
}

#[test]
fn churn_reuses_nodes() {
    let (mut t, epoch) = wheel();
    t.insert(epoch + ms(3_600_000), u64::MAX);
    for k in 0..scaled(20_000, 500) as u64 {
        t.insert(epoch + ms(10_000 + k), k);
        assert!(t.cancel(k));
    }
    assert_eq!(t.len(), 1);
    assert!(
        t.nodes.len() <= 2,
        "{} nodes for 2 at the peak",
        t.nodes.len()
    );
    t.clear();
    assert_eq!((t.len(), t.next_timeout(epoch)), (0, None));
}

#[test]
fn the_index_keeps_colliding_keys_apart() {
    // Keys that share their home bucket (the last one, so probe runs wrap
    // around the table), cancelled in an order that makes every kind of
    // backward shift, while a run of consecutive keys shares the table.
    let (mut t, epoch) = wheel();
    let n = scaled(200, 40) as u64;
    let colliding: Vec<u64> = (0..n).map(|i| 0x1f_ffff + (i << 42)).collect();
    for (i, &k) in colliding.iter().enumerate() {
        t.insert(epoch + ms(10 + i as u64), k);
        t.insert(epoch + ms(10 + i as u64), i as u64);
    }
    assert_eq!(t.len(), 2 * n as usize);
    let mut order: Vec<u64> = colliding.clone();
    order.sort_by_key(|k| (k >> 42) % 7);
    for &k in order.iter().step_by(2) {
        assert!(t.cancel(k), "key {k:#x} lost");
        assert!(!t.cancel(k), "key {k:#x} cancelled twice");
    }
    let mut fired = Vec::new();
    t.expire(epoch + ms(10_000), |k| fired.push(k));
    let mut expected: Vec<u64> = order.iter().skip(1).step_by(2).copied().collect();
    expected.extend(0..n);
    expected.sort_unstable();
    fired.sort_unstable();
    assert_eq!(fired, expected);
    assert_eq!(t.len(), 0);
}
