//! Unit tests of the MPMC channel, polled by hand to reach every step.

use super::*;
use crate::sync::testing::{block_on, poll_once, CountingWaker};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

fn ready<F: Future + Unpin>(f: &mut F, w: &CountingWaker) -> F::Output {
    match poll_once(f, &w.waker()) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("expected ready"),
    }
}

#[test]
fn buffers_in_order_up_to_capacity() {
    let (tx, rx) = channel(2);
    assert_eq!((tx.capacity(), rx.len()), (2, 0));
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
    assert_eq!(rx.len(), 2);
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(block_on(rx.recv()), Some(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn full_channel_suspends_the_sender_until_a_receive() {
    let (tx, rx) = channel(1);
    let w = CountingWaker::new();
    tx.try_send(1).unwrap();
    let mut s = tx.send(2);
    assert!(poll_once(&mut s, &w.waker()).is_pending());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(w.count(), 1, "the blocked sender is woken");
    assert_eq!(rx.len(), 1, "its value moved into the buffer");
    assert_eq!(ready(&mut s, &w), Ok(()));
    assert_eq!(rx.try_recv(), Ok(2));
}

#[test]
fn empty_channel_suspends_the_receiver_until_a_send() {
    let (tx, rx) = channel(4);
    let w = CountingWaker::new();
    let mut r = rx.recv();
    assert!(poll_once(&mut r, &w.waker()).is_pending());
    tx.try_send(7).unwrap();
    assert_eq!(w.count(), 1);
    assert_eq!(rx.len(), 0, "handed straight to the waiting receiver");
    assert_eq!(ready(&mut r, &w), Some(7));
}

#[test]
fn capacity_zero_is_a_rendezvous() {
    let (tx, rx) = channel(0);
    let w = CountingWaker::new();
    assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))));
    let mut s = tx.send(1);
    assert!(poll_once(&mut s, &w.waker()).is_pending());
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(ready(&mut s, &w), Ok(()));
    let mut r = rx.recv();
    assert!(poll_once(&mut r, &w.waker()).is_pending());
    tx.try_send(2).unwrap(); // a receiver waits: no buffer needed
    assert_eq!(ready(&mut r, &w), Some(2));
}

#[test]
fn close_is_observable_on_both_sides() {
    let (tx, rx) = channel(1);
    let (ws, wr) = (CountingWaker::new(), CountingWaker::new());
    tx.try_send(1).unwrap();
    let mut s = tx.send(2);
    assert!(poll_once(&mut s, &ws.waker()).is_pending());
    rx.close();
    assert!(tx.is_closed() && rx.is_closed());
    assert_eq!(ws.count(), 1);
    assert_eq!(
        ready(&mut s, &ws),
        Err(SendError(2)),
        "blocked value handed back"
    );
    assert!(matches!(tx.try_send(3), Err(TrySendError::Closed(3))));
    assert_eq!(block_on(tx.send(4)), Err(SendError(4)));
    // Receivers drain the buffer, then see the end.
    assert_eq!(block_on(rx.recv()), Some(1));
    assert_eq!(block_on(rx.recv()), None);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));

    let (tx, rx) = channel::<u8>(1);
    let mut r = rx.recv();
    assert!(poll_once(&mut r, &wr.waker()).is_pending());
    drop(tx); // the last sender
    assert_eq!(wr.count(), 1);
    assert_eq!(ready(&mut r, &wr), None);
}

#[test]
fn dropping_the_last_receiver_closes_and_drops_buffered_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let (tx, rx) = channel(2);
    let rx2 = rx.clone();
    tx.try_send(D(drops.clone())).ok().unwrap();
    drop(rx);
    assert!(!tx.is_closed(), "a receiver remains");
    drop(rx2);
    assert!(tx.is_closed());
    assert_eq!(drops.load(SeqCst), 1);
    let Err(SendError(d)) = block_on(tx.send(D(drops.clone()))) else {
        panic!("send to a channel without receivers succeeded");
    };
    drop(d);
    assert_eq!(drops.load(SeqCst), 2);
}

#[test]
fn cancelled_receiver_with_a_handed_value_puts_it_back_first() {
    let (tx, rx) = channel(2);
    let (wa, wb) = (CountingWaker::new(), CountingWaker::new());
    let mut a = rx.recv();
    assert!(poll_once(&mut a, &wa.waker()).is_pending());
    tx.try_send(1).unwrap(); // handed to `a`
    tx.try_send(2).unwrap();
    drop(a); // cancelled before it ran
    assert_eq!(rx.len(), 2, "the value went back to the buffer");
    assert_eq!(rx.try_recv(), Ok(1), "and at its head");
    assert_eq!(rx.try_recv(), Ok(2));

    // With another receiver waiting, it goes straight to that one.
    let mut a = rx.recv();
    let mut b = rx.recv();
    assert!(poll_once(&mut a, &wa.waker()).is_pending());
    assert!(poll_once(&mut b, &wb.waker()).is_pending());
    tx.try_send(3).unwrap();
    drop(a);
    assert_eq!(wb.count(), 1);
    assert_eq!(ready(&mut b, &wb), Some(3));
}

#[test]
fn cancelled_sender_value_is_delivered_or_returned_never_both() {
    let (tx, rx) = channel(1);
    let w = CountingWaker::new();
    tx.try_send(0).unwrap();
    // Not yet in the channel: withdrawing hands it back.
    let mut s = tx.send(1);
    assert!(poll_once(&mut s, &w.waker()).is_pending());
    assert_eq!(s.cancel(), Some(1));
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(
        rx.try_recv(),
        Err(TryRecvError::Empty),
        "withdrawn value delivered"
    );

    // Already moved into the buffer: withdrawing gives nothing back, and
    // the value is delivered once.
    tx.try_send(0).unwrap();
    let mut s = tx.send(2);
    assert!(poll_once(&mut s, &w.waker()).is_pending());
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(s.cancel(), None);
    assert_eq!(rx.try_recv(), Ok(2));

    // Dropped while blocked: the value is never delivered.
    tx.try_send(0).unwrap();
    let mut s = tx.send(3);
    assert!(poll_once(&mut s, &w.waker()).is_pending());
    drop(s);
    assert_eq!(rx.try_recv(), Ok(0));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));

    // Rendezvous: taken by a receiver, then cancelled: delivered once.
    let (tx, rx) = channel(0);
    let mut s = tx.send(4);
    assert!(poll_once(&mut s, &w.waker()).is_pending());
    assert_eq!(rx.try_recv(), Ok(4));
    assert_eq!(s.cancel(), None);
}

#[test]
fn blocked_senders_are_served_in_fifo_order() {
    let (tx, rx) = channel(1);
    let w = CountingWaker::new();
    tx.try_send(0).unwrap();
    let mut s1 = tx.send(1);
    let mut s2 = tx.send(2);
    assert!(poll_once(&mut s1, &w.waker()).is_pending());
    assert!(poll_once(&mut s2, &w.waker()).is_pending());
    let got: Vec<_> = (0..3).map(|_| rx.try_recv().unwrap()).collect();
    assert_eq!(got, [0, 1, 2]);
    assert_eq!((ready(&mut s1, &w), ready(&mut s2, &w)), (Ok(()), Ok(())));
}

#[test]
fn many_threads_each_value_received_once() {
    let per = if cfg!(miri) { 10 } else { 1000 };
    let (tx, rx) = channel(if cfg!(miri) { 1 } else { 4 });
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    block_on(tx.send(p * per + i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(v) = block_on(rx.recv()) {
                    got.push(v);
                }
                got
            })
        })
        .collect();
    drop(rx);
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<_> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..3 * per).collect::<Vec<_>>());
}
