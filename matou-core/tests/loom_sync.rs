//! loom models of the sync primitives' cross-thread paths:
//! `RUSTFLAGS="--cfg loom" cargo test -p matou-core --release --test loom_sync`.
//!
//! Each model is two or three threads doing one or two operations; loom runs
//! it under every interleaving (and checks each access to a `Mutex`'s data
//! against the happens-before edges of the lock). "Cancelled" below means what
//! it means in matou: the pending future is dropped, here on its own thread
//! while another thread races it.
#![cfg(loom)]

use loom::thread;
use matou_core::sync::{channel, oneshot, Condition, Mutex, Semaphore, TryRecvError};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// `loom::future::block_on` needs loom's `futures` feature; this is the same
/// on loom's park/unpark (loom reports a deadlock if nothing ever wakes it).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// Polls once with a waker that does nothing (the model only needs the
/// future to queue itself).
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

/// Mutual exclusion across threads: the guarded read-modify-writes never
/// overlap (loom checks the data cell), and the lock is handed over, not lost.
#[test]
fn mutex_excludes_and_hands_off() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(0));
        let m2 = m.clone();
        let t = thread::spawn(move || block_on(async { *m2.lock().await += 1 }));
        block_on(async { *m.lock().await += 1 });
        t.join().unwrap();
        assert_eq!(*m.try_lock().expect("lock leaked"), 2);
    });
}

/// Three threads: two of them end up queued, so the unlock hands the lock
/// over through the queue (the slow path) at least once in most interleavings.
/// Exhaustive takes minutes; a preemption bound of 3 keeps it to seconds.
#[test]
fn mutex_three_threads_queue_and_hand_off() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let m = Arc::new(Mutex::new(0));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || block_on(async { *m.lock().await += 1 }))
            })
            .collect();
        block_on(async { *m.lock().await += 1 });
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(*m.try_lock().expect("lock leaked"), 3);
    });
}

/// A lock waiter cancelled on one thread while the holder unlocks on another
/// (so it may have been granted the lock already, or get it at once) never
/// leaves the lock held.
#[test]
fn mutex_cancelled_waiter_never_holds_the_lock() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(()));
        let guard = m.try_lock().unwrap();
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let mut waiter = m2.lock();
            let _ = poll_once(&mut waiter); // queued, or the lock at once
            drop(waiter); // cancelled
        });
        drop(guard);
        t.join().unwrap();
        assert!(m.try_lock().is_some(), "a cancelled waiter kept the lock");
    });
}

/// The classic: a waiter and a signaller on two threads; the wake-up is never
/// lost (loom reports a deadlock if the waiter could sleep forever).
#[test]
fn condition_signal_is_not_lost() {
    loom::model(|| {
        let s = Arc::new((Mutex::new(false), Condition::new()));
        let s2 = s.clone();
        let t = thread::spawn(move || {
            block_on(async {
                *s2.0.lock().await = true;
                s2.1.signal();
            })
        });
        block_on(async {
            let mut ready = s.0.lock().await;
            while !*ready {
                ready = s.1.wait(ready).await;
            }
        });
        t.join().unwrap();
    });
}

/// Two queued waiters; one is cancelled while another thread signals: the
/// other waiter still gets the signal, whoever the signal picked.
#[test]
fn condition_cancelled_waiter_does_not_swallow_the_signal() {
    loom::model(|| {
        let s = Arc::new((Mutex::new(()), Condition::new()));
        let (m, c) = (&s.0, &s.1);
        let mut a = c.wait(m.try_lock().unwrap());
        assert!(poll_once(&mut a).is_pending());
        let mut b = c.wait(m.try_lock().unwrap());
        assert!(poll_once(&mut b).is_pending());
        let s2 = s.clone();
        let t = thread::spawn(move || s2.1.signal());
        drop(a);
        t.join().unwrap();
        drop(block_on(b)); // deadlocks (loom fails) if the signal was swallowed
    });
}

/// Permits across threads: never more holders than permits, and a waiter
/// cancelled while a permit is released to it gives the permit back.
#[test]
fn semaphore_cancelled_waiter_returns_its_permit() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let held = sem.clone().try_acquire_owned().unwrap();
        let mut waiter = sem.acquire();
        assert!(poll_once(&mut waiter).is_pending());
        let t = thread::spawn(move || drop(held));
        drop(waiter);
        t.join().unwrap();
        assert_eq!(
            sem.available_permits(),
            1,
            "permit lost with a cancelled waiter"
        );
    });
}

#[test]
fn semaphore_two_threads_one_permit() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let m = Arc::new(Mutex::new(0)); // its data cell checks exclusion
        let (sem2, m2) = (sem.clone(), m.clone());
        let t = thread::spawn(move || {
            block_on(async {
                let _p = sem2.acquire().await.unwrap();
                *m2.try_lock().expect("two permit holders") += 1;
            })
        });
        block_on(async {
            let _p = sem.acquire().await.unwrap();
            *m.try_lock().expect("two permit holders") += 1;
        });
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// A full channel suspends the sender on one thread until the receiver on
/// another takes a value; values arrive in order, then the close.
#[test]
fn channel_send_recv_and_close_across_threads() {
    loom::model(|| {
        let (tx, rx) = channel(1);
        let t = thread::spawn(move || {
            block_on(async {
                tx.send(1).await.unwrap();
                tx.send(2).await.unwrap();
            })
        });
        let got = block_on(async { (rx.recv().await, rx.recv().await, rx.recv().await) });
        assert_eq!(got, (Some(1), Some(2), None));
        t.join().unwrap();
    });
}

/// Two producers and a consumer on three threads, through a one-slot
/// channel: both values arrive exactly once, then the close.
#[test]
fn channel_two_producers_one_consumer() {
    loom::model(|| {
        let (tx, rx) = channel(1);
        let ts: Vec<_> = [1, 2]
            .into_iter()
            .map(|v| {
                let tx = tx.clone();
                thread::spawn(move || block_on(tx.send(v)).unwrap())
            })
            .collect();
        drop(tx);
        let mut got = block_on(async {
            let mut got = Vec::new();
            while let Some(v) = rx.recv().await {
                got.push(v);
            }
            got
        });
        for t in ts {
            t.join().unwrap();
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

/// A receiver cancelled while a value is being sent to it never loses it:
/// the value stays in the channel for the next receive.
#[test]
fn channel_cancelled_receiver_loses_nothing() {
    loom::model(|| {
        let (tx, rx) = channel(1);
        let mut r = rx.recv();
        assert!(poll_once(&mut r).is_pending());
        let t = thread::spawn(move || tx.try_send(5).unwrap());
        drop(r);
        t.join().unwrap();
        assert_eq!(rx.try_recv(), Ok(5));
    });
}

/// A rendezvous sender cancelled while a receiver on another thread takes its
/// value: delivered or handed back, exactly one of the two.
#[test]
fn channel_cancelled_sender_delivered_xor_returned() {
    loom::model(|| {
        let (tx, rx) = channel(0);
        let mut s = tx.send(9);
        assert!(poll_once(&mut s).is_pending());
        let t = thread::spawn(move || rx.try_recv());
        let back = s.cancel();
        let received = t.join().unwrap();
        match (back, received) {
            (Some(9), Err(TryRecvError::Empty)) | (None, Ok(9)) => {}
            other => panic!("value both or neither delivered and returned: {other:?}"),
        }
    });
}

#[test]
fn oneshot_send_wakes_the_receiver() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel();
        let t = thread::spawn(move || tx.send(3).unwrap());
        assert_eq!(block_on(rx), Ok(3));
        t.join().unwrap();
    });
}

/// Sending while the receiver is dropped on another thread: the value is
/// either accepted or handed back, and a dropped sender ends the receiver.
#[test]
fn oneshot_races_with_drops() {
    loom::model(|| {
        let (tx, rx) = oneshot::channel::<u8>();
        let t = thread::spawn(move || drop(rx));
        let r = tx.send(1);
        t.join().unwrap();
        assert!(matches!(r, Ok(()) | Err(1)));

        let (tx, rx) = oneshot::channel::<u8>();
        let t = thread::spawn(move || drop(tx));
        assert!(block_on(rx).is_err());
        t.join().unwrap();
    });
}

/// A sender waiting in `closed()` while the receiver goes away on another
/// thread: the sender is woken (never left waiting), and the waker cell it
/// rewrites is never read at the same time (loom checks the cell).
#[test]
fn oneshot_closed_wakes_the_sender() {
    loom::model(|| {
        let (mut tx, mut rx) = oneshot::channel::<u8>();
        let t = thread::spawn(move || rx.close());
        block_on(tx.closed());
        assert!(tx.is_closed());
        assert_eq!(tx.send(5), Err(5));
        t.join().unwrap();
    });
}

/// The receiver re-registers (a second poll with another waker) while the
/// value arrives: it is woken or sees the value, and gets it exactly once.
#[test]
fn oneshot_rewritten_receiver_waker_is_not_lost() {
    loom::model(|| {
        let (tx, mut rx) = oneshot::channel::<u8>();
        let t = thread::spawn(move || tx.send(8).unwrap());
        if poll_once(&mut rx).is_ready() {
            t.join().unwrap();
            return;
        }
        assert_eq!(block_on(rx), Ok(8));
        t.join().unwrap();
    });
}
