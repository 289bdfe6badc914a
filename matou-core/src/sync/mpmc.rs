//! A bounded multi-producer multi-consumer channel (Eio's `Stream`): a full
//! channel suspends the sender, an empty one the receiver.
//!
//! The channel owns, under one lock: a buffer of at most `capacity` values, a
//! FIFO of blocked senders (each holding its value), a FIFO of blocked
//! receivers (each with an empty slot), and the `closed` flag. Invariants:
//! - a value is at every moment in exactly one place: a sender (its future),
//!   the buffer, a blocked sender's entry, a blocked receiver's slot, or the
//!   receiving caller. Hand-offs move it under the lock, so it is never lost
//!   and never delivered twice;
//! - receivers wait only when the buffer is empty and no sender waits;
//!   senders wait only when the buffer is full (or the capacity is 0 and no
//!   receiver waits). Both queues are FIFO, and a value arriving for a waiting
//!   receiver is handed to the oldest one, so neither side starves;
//! - capacity 0 is a rendezvous: a send completes when a receiver takes the
//!   value;
//! - closed (by [`Sender::close`], [`Receiver::close`], the last `Sender`
//!   dropped or the last `Receiver` dropped): sends fail and give their value
//!   back, including the blocked ones; receivers drain the buffer, then get
//!   `None`. Dropping the last receiver drops the buffered values.
//!
//! A receiver dropped after a value was handed to it but before it returned
//! puts the value back at the head of the channel (to the next waiting
//! receiver, else the front of the buffer, which may then briefly hold
//! `capacity + 1` values).

use super::waiters::{lock, WaitList, WakeList};
use crate::loom::sync::atomic::{AtomicUsize, Ordering::*};
use crate::loom::sync::{Arc, Mutex};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A bounded MPMC channel holding at most `capacity` values (0: rendezvous).
///
/// ```
/// matou_core::run(async {
///     let (tx, rx) = matou_core::sync::channel(1);
///     let p = matou_core::spawn(async move {
///         for i in 0..3 {
///             tx.send(i).await.unwrap(); // suspends while the channel is full
///         }
///     }); // the last sender is dropped: the channel closes
///     let mut got = Vec::new();
///     while let Some(v) = rx.recv().await {
///         got.push(v);
///     }
///     assert_eq!(got, [0, 1, 2]);
///     p.await.unwrap();
/// });
/// ```
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        capacity,
        state: Mutex::new(State {
            buf: VecDeque::with_capacity(capacity),
            senders: WaitList::new(),
            receivers: WaitList::new(),
            closed: false,
        }),
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

struct Chan<T> {
    capacity: usize,
    state: Mutex<State<T>>,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

struct State<T> {
    buf: VecDeque<T>,
    /// Blocked senders. Linked: waiting, holding `Some(value)`. Unlinked:
    /// `None` = the value was delivered; `Some` = closed, value handed back.
    senders: WaitList<Option<T>>,
    /// Blocked receivers. Linked: waiting, `None`. Unlinked: `Some` = a value
    /// handed over; `None` = woken by close.
    receivers: WaitList<Option<T>>,
    closed: bool,
}

impl<T> State<T> {
    /// Takes the next value (buffer first, then the oldest blocked sender),
    /// refilling the buffer from blocked senders.
    fn take(&mut self, capacity: usize, wakes: &mut WakeList) -> Option<T> {
        if let Some(v) = self.buf.pop_front() {
            if self.buf.len() < capacity {
                if let Some((k, waker)) = self.senders.pop_front() {
                    let moved = self
                        .senders
                        .data_mut(k)
                        .take()
                        .expect("queued sender has a value");
                    self.buf.push_back(moved);
                    wakes.push(waker);
                }
            }
            return Some(v);
        }
        let (k, waker) = self.senders.pop_front()?;
        wakes.push(waker);
        self.senders.data_mut(k).take()
    }

    /// Gives `v` to the oldest blocked receiver if any, else to the buffer if
    /// it has room; otherwise returns it.
    fn offer(&mut self, v: T, capacity: usize, wakes: &mut WakeList) -> Result<(), T> {
        if let Some((k, waker)) = self.receivers.pop_front() {
            *self.receivers.data_mut(k) = Some(v);
            wakes.push(waker);
            Ok(())
        } else if self.buf.len() < capacity {
            self.buf.push_back(v);
            Ok(())
        } else {
            Err(v)
        }
    }

    /// Puts back a value that a cancelled receiver had been handed.
    fn put_back(&mut self, v: T, wakes: &mut WakeList) {
        if let Some((k, waker)) = self.receivers.pop_front() {
            *self.receivers.data_mut(k) = Some(v);
            wakes.push(waker);
        } else {
            self.buf.push_front(v);
        }
    }
}

impl<T> Chan<T> {
    fn lock(&self) -> crate::loom::sync::MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    fn close(&self) {
        let mut wakes = WakeList::new();
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.closed = true;
        while let Some((_, waker)) = st.senders.pop_front() {
            wakes.push(waker); // keeps its value: handed back
        }
        while let Some((_, waker)) = st.receivers.pop_front() {
            wakes.push(waker);
        }
    }
}

/// The sending half of a [`channel`]. Clone it for more producers; the
/// channel closes when the last one is dropped.
///
/// ```
/// use matou_core::sync::channel;
///
/// matou_core::run(async {
///     let (tx, rx) = channel(1);
///     let tx2 = tx.clone();
///     tx.send("a").await.unwrap();
///     drop(tx);
///     assert!(!rx.is_closed()); // `tx2` still sends
///     assert!(tx2.try_send("b").is_err()); // full (capacity 1)
///     drop(tx2);
///     assert_eq!(rx.recv().await, Some("a")); // queued values outlive the close
///     assert_eq!(rx.recv().await, None);
/// });
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a [`channel`]. Clone it for more consumers; the
/// channel closes when the last one is dropped.
///
/// ```
/// use matou_core::sync::channel;
///
/// matou_core::run(async {
///     let (tx, rx) = channel::<u32>(4);
///     let worker = {
///         let rx = rx.clone();
///         matou_core::spawn(async move {
///             let mut sum = 0;
///             while let Some(v) = rx.recv().await {
///                 sum += v;
///             }
///             sum
///         })
///     };
///     for v in 1..=3 {
///         tx.send(v).await.unwrap();
///     }
///     drop((tx, rx)); // closes the channel: the loop ends
///     assert_eq!(worker.await.unwrap(), 6);
/// });
/// ```
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// The channel is closed; the value that could not be sent.
///
/// ```
/// matou_core::run(async {
///     let (tx, rx) = matou_core::sync::channel(1);
///     drop(rx);
///     let matou_core::sync::SendError(back) = tx.send(7).await.unwrap_err();
///     assert_eq!(back, 7); // nothing is lost
/// });
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_send`] failed; the value comes back either way.
///
/// ```
/// use matou_core::sync::{channel, TrySendError};
///
/// let (tx, rx) = channel(1);
/// tx.try_send(1).unwrap();
/// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
/// drop(rx);
/// assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full (for capacity 0: no receiver is waiting).
    Full(T),
    /// The channel is closed.
    Closed(T),
}

/// Why [`Receiver::try_recv`] failed.
///
/// ```
/// use matou_core::sync::{channel, TryRecvError};
///
/// let (tx, rx) = channel::<u8>(1);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
/// drop(tx);
/// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing to receive now.
    Empty,
    /// Closed, and nothing left to receive.
    Closed,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full.
    ///
    /// # Cancellation safety
    /// Safe, and the value is never lost silently nor delivered twice: if the
    /// future is dropped before the value entered the channel, the value is
    /// dropped with it and never delivered; once it entered the channel, it
    /// will be delivered as any other. [`SendFuture::cancel`] withdraws a
    /// pending send and hands the value back if it had not entered.
    ///
    /// # Errors
    /// [`SendError`] with the value if the channel is or gets closed before
    /// the value entered it.
    pub fn send(&self, value: T) -> SendFuture<'_, T> {
        SendFuture {
            chan: &self.chan,
            step: SendStep::Start(value),
        }
    }

    /// Sends `value` if that needs no waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] or [`TrySendError::Closed`], with the value.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut wakes = WakeList::new();
        let mut st = self.chan.lock();
        if st.closed {
            return Err(TrySendError::Closed(value));
        }
        st.offer(value, self.chan.capacity, &mut wakes)
            .map_err(TrySendError::Full)
    }

    /// Closes the channel for everyone: see the module documentation.
    pub fn close(&self) {
        self.chan.close();
    }

    /// Whether the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.chan.lock().closed
    }

    /// Values in the buffer now.
    pub fn len(&self) -> usize {
        self.chan.lock().buf.len()
    }

    /// Whether the buffer is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity given to [`channel`].
    pub fn capacity(&self) -> usize {
        self.chan.capacity
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Relaxed);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, AcqRel) == 1 {
            self.chan.close();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.chan.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting while the channel is empty. `None`
    /// once the channel is closed and drained.
    ///
    /// # Cancellation safety
    /// Safe, no value is lost: a value is taken from the channel only when
    /// this future returns it. If it is dropped after a value was handed to
    /// it, the value goes back to the head of the channel for the next
    /// receiver.
    pub fn recv(&self) -> RecvFuture<'_, T> {
        RecvFuture {
            chan: &self.chan,
            step: RecvStep::Start,
        }
    }

    /// Receives a value if that needs no waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or [`TryRecvError::Closed`] when closed and
    /// drained.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut wakes = WakeList::new();
        let mut st = self.chan.lock();
        match st.take(self.chan.capacity, &mut wakes) {
            Some(v) => Ok(v),
            None if st.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Closes the channel for everyone: see the module documentation.
    pub fn close(&self) {
        self.chan.close();
    }

    /// Whether the channel is closed (values may remain to be received).
    pub fn is_closed(&self) -> bool {
        self.chan.lock().closed
    }

    /// Values in the buffer now.
    pub fn len(&self) -> usize {
        self.chan.lock().buf.len()
    }

    /// Whether the buffer is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity given to [`channel`].
    pub fn capacity(&self) -> usize {
        self.chan.capacity
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.receivers.fetch_add(1, Relaxed);
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.chan.receivers.fetch_sub(1, AcqRel) == 1 {
            self.chan.close();
            // Nobody can receive them any more: drop them now (outside the lock).
            let rest = std::mem::take(&mut self.chan.lock().buf);
            drop(rest);
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.chan.capacity)
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Sender::send`]; see there for cancellation.
///
/// ```
/// use matou_core::sync::channel;
/// use std::future::Future;
/// use std::task::{Context, Waker};
///
/// let (tx, rx) = channel(1);
/// tx.try_send(1).unwrap();
/// let mut send = tx.send(2);
/// // The channel is full: the send waits...
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(std::pin::Pin::new(&mut send).poll(&mut cx).is_pending());
/// // ...and withdrawing it hands the value back.
/// assert_eq!(send.cancel(), Some(2));
/// assert_eq!(rx.try_recv(), Ok(1));
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, T> {
    chan: &'a Chan<T>,
    step: SendStep<T>,
}

enum SendStep<T> {
    Start(T),
    Queued(usize),
    Done,
}

// The value is never pinned (it is only ever moved), so the future can be
// moved freely whatever `T` is.
impl<T> Unpin for SendFuture<'_, T> {}

impl<T> SendFuture<'_, T> {
    /// Withdraws this send. `Some(value)` if the value had not entered the
    /// channel (it never will now); `None` if it had (it is delivered, or will
    /// be, as any other sent value) or if the future had already completed.
    pub fn cancel(mut self) -> Option<T> {
        self.withdraw()
    }

    fn withdraw(&mut self) -> Option<T> {
        match std::mem::replace(&mut self.step, SendStep::Done) {
            SendStep::Start(v) => Some(v),
            SendStep::Queued(key) => self.chan.lock().senders.remove(key).1,
            SendStep::Done => None,
        }
    }
}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut wakes = WakeList::new();
        let mut st = this.chan.lock();
        let out = match std::mem::replace(&mut this.step, SendStep::Done) {
            SendStep::Start(v) => {
                if st.closed {
                    Err(SendError(v))
                } else {
                    match st.offer(v, this.chan.capacity, &mut wakes) {
                        Ok(()) => Ok(()),
                        Err(v) => {
                            let key = st.senders.push_back(cx.waker(), Some(v));
                            // A rendezvous: the value is now available to a
                            // receiver, but none waits (offer checked).
                            this.step = SendStep::Queued(key);
                            return Poll::Pending;
                        }
                    }
                }
            }
            SendStep::Queued(key) => {
                if st.senders.is_linked(key) {
                    st.senders.set_waker(key, cx.waker());
                    this.step = SendStep::Queued(key);
                    return Poll::Pending;
                }
                match st.senders.remove(key).1 {
                    None => Ok(()),
                    Some(v) => Err(SendError(v)),
                }
            }
            SendStep::Done => panic!("SendFuture polled after completion"),
        };
        Poll::Ready(out)
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        // The value (if not delivered) is dropped here, outside the lock.
        drop(self.withdraw());
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let step = match self.step {
            SendStep::Start(_) => "start",
            SendStep::Queued(_) => "queued",
            SendStep::Done => "done",
        };
        f.debug_struct("SendFuture").field("step", &step).finish()
    }
}

/// The future returned by [`Receiver::recv`]; see there for cancellation.
///
/// A dropped receive loses no value, so it can lose a race and be retried:
///
/// ```
/// use matou_core::{race, sync::channel};
///
/// matou_core::run(async {
///     let (tx, rx) = channel::<u8>(1);
///     let (winner, _) = race!(async { rx.recv().await.map(|_| ()) }, async { Some(()) });
///     assert_eq!(winner, 1); // the receive lost and was dropped
///     tx.send(9).await.unwrap();
///     assert_eq!(rx.recv().await, Some(9)); // nothing was taken by the loser
/// });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFuture<'a, T> {
    chan: &'a Chan<T>,
    step: RecvStep,
}

#[derive(Debug, Clone, Copy)]
enum RecvStep {
    Start,
    Queued(usize),
    Done,
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let mut wakes = WakeList::new();
        let mut st = this.chan.lock();
        let out = match this.step {
            RecvStep::Start => match st.take(this.chan.capacity, &mut wakes) {
                Some(v) => Some(v),
                None if st.closed => None,
                None => {
                    this.step = RecvStep::Queued(st.receivers.push_back(cx.waker(), None));
                    return Poll::Pending;
                }
            },
            RecvStep::Queued(key) => {
                if st.receivers.is_linked(key) {
                    st.receivers.set_waker(key, cx.waker());
                    return Poll::Pending;
                }
                match st.receivers.remove(key).1 {
                    Some(v) => Some(v),
                    // Woken by close: drain what may remain.
                    None => st.take(this.chan.capacity, &mut wakes),
                }
            }
            RecvStep::Done => panic!("RecvFuture polled after completion"),
        };
        this.step = RecvStep::Done;
        Poll::Ready(out)
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        if let RecvStep::Queued(key) = self.step {
            let mut wakes = WakeList::new();
            let mut st = self.chan.lock();
            if let (_, Some(v)) = st.receivers.remove(key) {
                st.put_back(v, &mut wakes);
            }
        }
    }
}

impl<T> fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFuture")
            .field("step", &self.step)
            .finish()
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("channel closed")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "Full(..)",
            TrySendError::Closed(_) => "Closed(..)",
        })
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "channel full",
            TrySendError::Closed(_) => "channel closed",
        })
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "channel empty",
            TryRecvError::Closed => "channel closed",
        })
    }
}

impl std::error::Error for TryRecvError {}

#[cfg(all(test, not(loom)))]
mod tests;
