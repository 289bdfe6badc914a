//! loom models of the channel's lock-free paths (the ring and the `waiting`
//! word; see `sync::mpmc`'s module docs):
//! `RUSTFLAGS="--cfg loom" cargo test -p matou-core --release --test loom_channel`.
//!
//! A lost wake-up shows as a deadlock, which loom reports; a lost or doubled
//! value as a failed assertion.
#![cfg(loom)]

use loom::thread;
use matou_core::sync::{channel, TrySendError};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// As in `loom_sync`: polls on loom's park/unpark.
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

/// A lock-free send (no receiver asleep when it looked) racing a receiver
/// that finds the ring empty and goes to sleep: the receiver gets the value.
#[test]
fn send_racing_a_receiver_going_to_sleep_wakes_it() {
    loom::model(|| {
        let (tx, rx) = channel(2);
        let t = thread::spawn(move || block_on(rx.recv()));
        tx.try_send(7).unwrap();
        assert_eq!(t.join().unwrap(), Some(7));
    });
}

/// A lock-free receive (no sender asleep when it looked) racing a sender
/// that finds the ring full and goes to sleep: the sender's value gets in.
#[test]
fn receive_racing_a_sender_going_to_sleep_wakes_it() {
    loom::model(|| {
        let (tx, rx) = channel(1);
        tx.try_send(1).unwrap();
        let t = thread::spawn(move || block_on(tx.send(2)).unwrap());
        assert_eq!(block_on(rx.recv()), Some(1));
        assert_eq!(block_on(rx.recv()), Some(2));
        t.join().unwrap();
    });
}

/// A close racing a lock-free send and a receive: a send that succeeded is
/// received (before the `None`), a refused one gets its value back, and the
/// receiver is never left asleep.
#[test]
fn close_racing_a_send_and_a_receive_loses_nothing() {
    loom::model(|| {
        let (tx, rx) = channel(1);
        let closer = tx.clone();
        let s = thread::spawn(move || match tx.try_send(1) {
            Ok(()) => true,
            Err(TrySendError::Closed(1)) => false,
            Err(other) => panic!("unexpected {other:?}"),
        });
        let r = thread::spawn(move || block_on(rx.recv()));
        closer.close();
        let sent = s.join().unwrap();
        let got = r.join().unwrap();
        assert_eq!(got, sent.then_some(1), "sent: {sent}");
    });
}
