//! A oneshot channel: one value, from one [`Sender`] to one [`Receiver`].
//!
//! Both halves share one allocation: the value cell, the receiver's waker
//! cell, the sender's waker cell (for [`Sender::closed`]), and one atomic
//! state word that says who may touch which cell. No lock: each step is one
//! or two atomic operations.
//!
//! # The state word
//!
//! | bit           | set by                                   | cleared by |
//! |---------------|------------------------------------------|------------|
//! | `COMPLETE`    | the sender: sent (`VALUE_SENT` too) or dropped | never |
//! | `VALUE_SENT`  | the sender, with `COMPLETE`              | never |
//! | `CLOSED`      | the receiver: `close` or drop            | never |
//! | `RX_TASK_SET` | the receiver, after writing its waker    | the receiver, before rewriting it, unless `COMPLETE` |
//! | `TX_TASK_SET` | the sender, after writing its waker      | the sender, before rewriting it, unless `CLOSED` |
//!
//! Who may touch each cell (the two waker cells are `waker_cell`'s
//! protocol):
//! - **value**: the sender writes it before setting `COMPLETE` (`Release`)
//!   and nobody else touches it until then; it takes it back if `CLOSED` won
//!   the race (then `COMPLETE` is never set). After `COMPLETE` it is the
//!   receiver's (`Acquire`).
//! - **receiver's waker**: written by the receiver only while `RX_TASK_SET`
//!   is clear; read (to wake it) by the sender only after its `COMPLETE`
//!   transition saw `RX_TASK_SET`, after which the receiver can no longer
//!   clear the bit, so never writes again.
//! - **sender's waker**: the mirror image, with `TX_TASK_SET` and `CLOSED`.
//!
//! Invariants: the value is sent at most once (`send` consumes the sender)
//! and received at most once; the receiver fails with [`RecvError`] only if
//! the sender was dropped without sending or the receiver closed before a
//! value came; a `send` fails, giving the value back, only if the receiver
//! was dropped or closed first. Every waker is woken after the transition
//! that decided it.

use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::Arc;
use crate::waker_cell::{StateWord, WakerCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

const COMPLETE: usize = 1 << 0;
const VALUE_SENT: usize = 1 << 1;
const CLOSED: usize = 1 << 2;
const RX_TASK_SET: usize = 1 << 3;
const TX_TASK_SET: usize = 1 << 4;

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
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: UnsafeCell::new(None),
        rx_task: WakerCell::new(),
        tx_task: WakerCell::new(),
    });
    (
        Sender {
            inner: Some(inner.clone()),
        },
        Receiver { inner },
    )
}

struct Inner<T> {
    state: AtomicUsize,
    value: UnsafeCell<Option<T>>,
    rx_task: WakerCell,
    tx_task: WakerCell,
}

// SAFETY: the cells are only touched under the state word's protocol (module
// docs): one side at a time, with `Release`/`Acquire` on the transitions that
// hand a cell over. The value crosses threads, hence `T: Send`.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T> StateWord for Inner<T> {
    fn bits(&self) -> usize {
        self.state.load(Ordering::Acquire)
    }

    fn update_unless(
        &self,
        change: impl Fn(usize) -> usize,
        unless: usize,
    ) -> Result<usize, usize> {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & unless != 0 {
                return Err(cur);
            }
            match self.state.compare_exchange_weak(
                cur,
                change(cur),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(prev) => return Ok(prev),
                Err(actual) => cur = actual,
            }
        }
    }
}

impl<T> Inner<T> {
    /// Takes the value, if one was sent.
    ///
    /// # Safety
    /// Only the receiver, after observing `COMPLETE`.
    unsafe fn take_value(&self) -> Option<T> {
        // SAFETY: the contract above: the value cell is the receiver's.
        self.value.with_mut(|v| unsafe { (*v).take() })
    }

    /// The receiver's `close`: refuse later sends, wake a sender waiting in
    /// `closed()`. Returns the state before.
    fn close(&self) -> usize {
        let prev = self.state.fetch_or(CLOSED, Ordering::AcqRel);
        // Only the transition that sets `CLOSED` wakes (once), and only a
        // sender that is still there (not `COMPLETE`).
        if prev & (TX_TASK_SET | COMPLETE | CLOSED) == TX_TASK_SET {
            // SAFETY: `CLOSED` (the done bit) is now set and `TX_TASK_SET`
            // was seen: the sender's waker is frozen.
            unsafe { self.tx_task.wake() };
        }
        prev
    }

    /// The sender's end (`send` or drop): set `COMPLETE` unless the receiver
    /// closed, and wake it. Returns whether the receiver will see it.
    fn complete(&self, bits: usize) -> bool {
        match self.update_unless(|s| s | COMPLETE | bits, CLOSED) {
            Ok(prev) => {
                if prev & RX_TASK_SET != 0 {
                    // SAFETY: `COMPLETE` (the done bit) is now set and
                    // `RX_TASK_SET` was seen: the receiver's waker is frozen.
                    unsafe { self.rx_task.wake() };
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Sends the one value. Dropping it without sending makes the receiver fail
/// with [`RecvError`].
///
/// ```
/// use matou_core::sync::oneshot;
///
/// // The sender may be on any thread; the receiver is awaited in a task.
/// let (tx, rx) = oneshot::channel();
/// std::thread::spawn(move || tx.send("hi").unwrap());
/// assert_eq!(matou_core::run(rx), Ok("hi"));
/// ```
pub struct Sender<T> {
    /// `None` once `send` consumed it (so `Drop` has nothing to do).
    inner: Option<Arc<Inner<T>>>,
}

/// Receives the one value: a future giving `Result<T, RecvError>`. It can be
/// polled through `&mut` (it is `Unpin`), e.g. raced against something else
/// and polled again later.
///
/// ```
/// use matou_core::{race, sync::oneshot};
///
/// matou_core::run(async {
///     let (tx, mut rx) = oneshot::channel::<u8>();
///     let (winner, _) = race!(async { (&mut rx).await.ok() }, async { None });
///     assert_eq!(winner, 1); // only the borrow lost
///     tx.send(4).unwrap();
///     assert_eq!(rx.await, Ok(4));
/// });
/// ```
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

/// The sender was dropped without sending, the receiver closed before a
/// value came, or the value was already taken.
///
/// ```
/// let (tx, rx) = matou_core::sync::oneshot::channel::<u8>();
/// drop(tx);
/// assert!(matou_core::run(rx).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvError(());

/// Why [`Receiver::try_recv`] failed.
///
/// ```
/// use matou_core::sync::oneshot::{channel, TryRecvError};
///
/// let (tx, mut rx) = channel::<u8>();
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// tx.send(1).unwrap();
/// assert_eq!(rx.try_recv(), Ok(1));
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed)); // already taken
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// No value yet; the sender may still send one.
    Empty,
    /// No value will come (the sender was dropped without sending, or the
    /// receiver closed first), or it was already taken.
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
        if inner.state.load(Ordering::Acquire) & CLOSED != 0 {
            return Err(value);
        }
        // SAFETY: before `COMPLETE` the value cell is the sender's alone.
        inner.value.with_mut(|v| unsafe { *v = Some(value) });
        if inner.complete(VALUE_SENT) {
            return Ok(());
        }
        // The receiver closed meanwhile; `COMPLETE` was not set, so the cell
        // is still ours: take the value back.
        // SAFETY: as above.
        let value = inner.value.with_mut(|v| unsafe { (*v).take() });
        Err(value.expect("the value was just stored"))
    }

    /// Whether the receiver was dropped or closed (a `send` would fail).
    pub fn is_closed(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.state.load(Ordering::Acquire) & CLOSED != 0)
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
        if let Some(inner) = self.inner.take() {
            inner.complete(0);
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
///
/// ```
/// use matou_core::sync::oneshot;
///
/// matou_core::run(async {
///     let (mut tx, rx) = oneshot::channel::<u64>();
///     let asker = matou_core::spawn(async move { drop(rx) }); // loses interest
///     tx.closed().await; // stop working on an answer nobody wants
///     assert!(tx.is_closed());
///     asker.await.unwrap();
/// });
/// ```
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
        // SAFETY: the sender owns `tx_task`; `&mut Sender` rules out re-entry.
        if unsafe {
            inner
                .tx_task
                .register(&**inner, TX_TASK_SET, CLOSED, cx.waker())
        } {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

impl<T> Receiver<T> {
    /// Takes the value if it is there.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if the sender may still send,
    /// [`TryRecvError::Closed`] if no value will come.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let state = self.inner.state.load(Ordering::Acquire);
        if state & COMPLETE != 0 {
            // SAFETY: `COMPLETE` observed: the value cell is ours.
            return unsafe { self.inner.take_value() }.ok_or(TryRecvError::Closed);
        }
        if state & CLOSED != 0 {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Refuses the value: later sends fail (giving the value back). A value
    /// sent before can still be received.
    pub fn close(&mut self) {
        self.inner.close();
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
        let inner = &self.inner;
        // SAFETY: the receiver owns `rx_task`; polling is not re-entrant.
        if unsafe {
            inner
                .rx_task
                .register(&**inner, RX_TASK_SET, COMPLETE | CLOSED, cx.waker())
        } {
            return Poll::Pending;
        }
        let state = inner.state.load(Ordering::Acquire);
        if state & COMPLETE != 0 {
            // SAFETY: `COMPLETE` observed: the value cell is ours.
            return Poll::Ready(unsafe { inner.take_value() }.ok_or(RecvError(())));
        }
        Poll::Ready(Err(RecvError(())))
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.inner.close() & COMPLETE != 0 {
            // SAFETY: `COMPLETE` was set before: the value cell is ours.
            drop(unsafe { self.inner.take_value() });
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state.load(Ordering::Acquire);
        f.debug_struct("Receiver")
            .field("sent", &(state & VALUE_SENT != 0))
            .field("sender_gone", &(state & COMPLETE != 0))
            .field("closed", &(state & CLOSED != 0))
            .finish()
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("oneshot closed without a value")
    }
}

impl std::error::Error for RecvError {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "no value yet",
            TryRecvError::Closed => "oneshot closed without a value",
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
    fn a_closed_receiver_with_no_value_is_closed_at_once() {
        let (tx, mut rx) = channel::<u8>();
        rx.close();
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(block_on(&mut rx), Err(RecvError(())));
        assert!(tx.is_closed());
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
