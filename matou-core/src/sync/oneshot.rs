//! A oneshot channel: one value, from one [`Sender`] to one [`Receiver`].
//!
//! Both halves share one allocation holding, under a short lock: the value
//! slot, the receiver's waker, the sender's waker (for [`Sender::closed`]),
//! and whether each side is gone. Invariants:
//! - the value is sent at most once (`send` consumes the sender) and received
//!   at most once;
//! - the receiver completes with `Err(RecvError)` only if the sender was
//!   dropped without sending; the sender's `send` fails, giving the value
//!   back, only if the receiver was dropped or closed before;
//! - every waker is called outside the lock.

use super::waiters::lock;
use crate::loom::sync::{Arc, Mutex};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A new oneshot channel.
///
/// ```
/// matou_core::run(async {
///     let (tx, rx) = matou_core::sync::oneshot::channel();
///     let p = matou_core::spawn(async move { tx.send(42).unwrap() });
///     assert_eq!(rx.await, Ok(42));
///     p.await.unwrap();
/// });
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(Inner {
        value: None,
        rx_waker: None,
        tx_waker: None,
        tx_gone: false,
        rx_closed: false,
    }));
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner },
    )
}

struct Inner<T> {
    value: Option<T>,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
    /// The sender sent or was dropped.
    tx_gone: bool,
    /// The receiver was dropped or closed: sends fail.
    rx_closed: bool,
}

/// Sends the one value. Dropping it without sending makes the receiver fail
/// with [`RecvError`].
pub struct Sender<T> {
    /// `None` once `send` consumed it (so `Drop` has nothing to do).
    inner: Option<Arc<Mutex<Inner<T>>>>,
}

/// Receives the one value: a future giving `Result<T, RecvError>`. It can be
/// polled through `&mut` (it is `Unpin`), e.g. raced against something else
/// and polled again later.
pub struct Receiver<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// The sender was dropped without sending (or the value was already taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError(());

/// Why [`Receiver::try_recv`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No value yet; the sender is still there.
    Empty,
    /// The sender was dropped without sending (or the value was already taken).
    Closed,
}

impl<T> Sender<T> {
    /// Sends the value, waking the receiver.
    ///
    /// # Errors
    /// `Err(value)` if the receiver was dropped or closed: the value is
    /// handed back, never silently lost.
    pub fn send(mut self, value: T) -> Result<(), T> {
        let inner = self.inner.take().expect("sender used once");
        let waker = {
            let mut st = lock(&inner);
            if st.rx_closed {
                st.tx_gone = true;
                return Err(value);
            }
            st.value = Some(value);
            st.tx_gone = true;
            st.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Whether the receiver was dropped or closed (a `send` would fail).
    pub fn is_closed(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| lock(i).rx_closed)
    }

    /// Waits until the receiver is dropped or closed (e.g. to stop computing
    /// a value nobody wants).
    ///
    /// # Cancellation safety
    /// Safe: it only observes.
    pub fn closed(&mut self) -> Closed<'_, T> {
        Closed { sender: self }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let waker = {
            let mut st = lock(&inner);
            st.tx_gone = true;
            st.tx_waker = None;
            st.rx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The future returned by [`Sender::closed`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Closed<'a, T> {
    sender: &'a mut Sender<T>,
}

impl<T> Future for Closed<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = self.sender.inner.as_ref() else {
            return Poll::Ready(());
        };
        let mut st = lock(inner);
        if st.rx_closed {
            return Poll::Ready(());
        }
        match &st.tx_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.tx_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Receiver<T> {
    /// Takes the value if it is there.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if the sender may still send,
    /// [`TryRecvError::Closed`] if it never will.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut st = lock(&self.inner);
        match st.value.take() {
            Some(v) => Ok(v),
            None if st.tx_gone => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Refuses the value: later sends fail (giving the value back). A value
    /// sent before can still be received.
    pub fn close(&mut self) {
        let waker = {
            let mut st = lock(&self.inner);
            st.rx_closed = true;
            st.tx_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// # Cancellation safety
/// Polling takes nothing until it returns `Ready`, so a `Receiver` that is
/// polled, then left aside, can be polled again later without loss. Dropping
/// the receiver refuses the value: a value already sent is dropped with it,
/// and later sends fail and give their value back.
impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = lock(&self.inner);
        if let Some(v) = st.value.take() {
            return Poll::Ready(Ok(v));
        }
        if st.tx_gone {
            return Poll::Ready(Err(RecvError(())));
        }
        match &st.rx_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.rx_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (waker, value) = {
            let mut st = lock(&self.inner);
            st.rx_closed = true;
            st.rx_waker = None;
            (st.tx_waker.take(), st.value.take())
        };
        drop(value);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner);
        f.debug_struct("Receiver")
            .field("ready", &st.value.is_some())
            .field("sender_gone", &st.tx_gone)
            .finish()
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot sender dropped without sending")
    }
}

impl std::error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "no value yet",
            TryRecvError::Closed => "oneshot sender dropped without sending",
        })
    }
}

impl std::error::Error for TryRecvError {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::testing::{block_on, poll_once, CountingWaker};

    #[test]
    fn send_then_receive() {
        let (tx, rx) = channel();
        assert!(!tx.is_closed());
        tx.send(3).unwrap();
        assert_eq!(block_on(rx), Ok(3));
    }

    #[test]
    fn receiver_is_woken_by_send_and_by_drop() {
        let w = CountingWaker::new();
        let (tx, mut rx) = channel();
        assert!(poll_once(&mut rx, &w.waker()).is_pending());
        tx.send("x").unwrap();
        assert_eq!(w.count(), 1);
        assert_eq!(poll_once(&mut rx, &w.waker()), Poll::Ready(Ok("x")));

        let (tx, mut rx) = channel::<u8>();
        assert!(poll_once(&mut rx, &w.waker()).is_pending());
        drop(tx);
        assert_eq!(w.count(), 2);
        assert!(matches!(
            poll_once(&mut rx, &w.waker()),
            Poll::Ready(Err(_))
        ));
    }

    #[test]
    fn send_to_a_dropped_or_closed_receiver_hands_the_value_back() {
        let (tx, rx) = channel();
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(String::from("back")), Err(String::from("back")));

        let (tx, mut rx) = channel();
        rx.close();
        assert_eq!(tx.send(1), Err(1));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    }

    #[test]
    fn value_sent_before_close_is_still_received() {
        let (tx, mut rx) = channel();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.send(9).unwrap();
        rx.close();
        assert_eq!(rx.try_recv(), Ok(9));
    }

    #[test]
    fn sender_closed_future_completes_when_the_receiver_goes() {
        let w = CountingWaker::new();
        let (mut tx, rx) = channel::<u8>();
        {
            let mut c = tx.closed();
            assert!(poll_once(&mut c, &w.waker()).is_pending());
            drop(rx);
            assert_eq!(w.count(), 1);
            assert!(poll_once(&mut c, &w.waker()).is_ready());
        }
        assert!(tx.is_closed());
    }

    #[test]
    fn round_trip_across_threads() {
        for _ in 0..if cfg!(miri) { 5 } else { 200 } {
            let (tx, rx) = channel();
            let t = std::thread::spawn(move || tx.send(7).unwrap());
            assert_eq!(block_on(rx), Ok(7));
            t.join().unwrap();
        }
    }
}
