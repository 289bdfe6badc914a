//! loom models of the task-state protocols, beside the code they check:
//! `RUSTFLAGS="--cfg loom" cargo test -p matou-core --lib loom`.

use crate::loom::sync::atomic::{AtomicBool, Ordering};
use crate::loom::sync::Arc;
use crate::loom::thread;

/// Remote cancel racing a remote wake: the task is enqueued exactly once,
/// and the worker sees the CANCEL bit when it runs it.
#[test]
fn cancel_and_wake_enqueue_once() {
    use crate::task::state::{Notify, State};
    loom::model(|| {
        let state = Arc::new(State::new_scheduled());
        let _ = state.take_notified(); // the task ran once and is idle
        let enqueued = Arc::new(AtomicBool::new(false));
        let (s1, e1) = (state.clone(), enqueued.clone());
        let canceller = thread::spawn(move || {
            if s1.request_cancel() == Notify::Enqueue {
                assert!(!e1.swap(true, Ordering::SeqCst), "enqueued twice");
            }
        });
        if state.notify() == Notify::Enqueue {
            assert!(!enqueued.swap(true, Ordering::SeqCst), "enqueued twice");
        }
        canceller.join().unwrap();
        assert!(enqueued.load(Ordering::SeqCst));
        assert!(state.take_notified().cancel_requested());
    });
}

/// Termination vs a parent registering its waker: the parent is never
/// left waiting, and the slot is never written while the worker reads
/// it (loom checks the `UnsafeCell` accesses). The parent registers
/// twice with different wakers, to cover the rewrite path.
#[test]
fn termination_is_never_missed() {
    use crate::task::state::State;
    use crate::task::waiter::{Registered, WaiterSlot};
    use std::task::{Wake, Waker};
    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    loom::model(|| {
        let state = Arc::new(State::new_scheduled());
        let waiter = Arc::new(WaiterSlot::new());
        let (s2, w2) = (state.clone(), waiter.clone());
        let worker = thread::spawn(move || {
            if s2.terminate().wake_parent() {
                // SAFETY: `terminate` saw `JOIN_WAKER`.
                unsafe { w2.wake() };
            }
        });
        let flags: Vec<_> = (0..2)
            .map(|_| std::sync::Arc::new(Flag(std::sync::atomic::AtomicBool::new(false))))
            .collect();
        let mut saw_it = false;
        for flag in &flags {
            let waker = Waker::from(flag.clone());
            // SAFETY: this thread is the only registrant.
            if unsafe { waiter.register(&state, &waker) } == Registered::Terminated {
                saw_it = true;
                break;
            }
        }
        worker.join().unwrap();
        // The last registered waker is the one that counts.
        let last = flags
            .iter()
            .rev()
            .find(|f| std::sync::Arc::strong_count(f) > 1);
        assert!(saw_it || last.is_some_and(|f| f.0.load(std::sync::atomic::Ordering::SeqCst)));
    });
}

/// A promise dropped while its task terminates: the untaken result is
/// dropped exactly once, by whichever side comes second (`DETACHED`), and
/// never touched by both at once (loom checks the `UnsafeCell` accesses).
#[test]
fn a_detached_result_is_dropped_once() {
    use crate::loom::cell::UnsafeCell;
    use crate::task::state::{Detached, State};
    struct Task {
        state: State,
        result: UnsafeCell<Option<u32>>,
        drops: std::sync::atomic::AtomicUsize,
    }
    impl Task {
        fn drop_result(&self) {
            // SAFETY: in this model, the handshake gives the result to one side.
            if self.result.with_mut(|r| unsafe { (*r).take() }).is_some() {
                self.drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
    loom::model(|| {
        let task = Arc::new(Task {
            state: State::new_scheduled(),
            result: UnsafeCell::new(None),
            drops: std::sync::atomic::AtomicUsize::new(0),
        });
        let t2 = task.clone();
        let worker = thread::spawn(move || {
            // SAFETY: in this model, before `terminate` the worker owns the stage.
            t2.result.with_mut(|r| unsafe { *r = Some(7) });
            if t2.state.terminate().result_unclaimed() {
                t2.drop_result();
            }
        });
        if task.state.detach(false) == Detached::DropResultHere {
            task.drop_result();
        }
        worker.join().unwrap();
        assert_eq!(task.drops.load(std::sync::atomic::Ordering::SeqCst), 1);
    });
}

/// The last child ending on another worker while its parent starts
/// cancelling: the parent either sees no unfinished child, or is scheduled
/// by that child; it never waits forever.
#[test]
fn last_child_wakes_its_cancelling_parent() {
    use crate::task::state::ChildCount;
    loom::model(|| {
        let count = Arc::new(ChildCount::new());
        count.spawned();
        count.spawned();
        let c = count.clone();
        let children = thread::spawn(move || {
            let first = c.terminated();
            let last = c.terminated();
            assert!(!first, "only the last child schedules the parent");
            last
        });
        let first_time = count.start_cancelling();
        assert!(first_time);
        let saw_none_left = count.all_ended();
        let scheduled = children.join().unwrap();
        assert!(
            saw_none_left || scheduled,
            "the parent is never left waiting"
        );
    });
}
