//! The bounded MPMC channel and the oneshot on matou's runtime, on one worker
//! and across workers, including tasks cancelled while they send or receive.

use matou_core::sync::{channel, oneshot, SendError, TryRecvError};
use matou_core::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

/// Rounds of the racy cancellation tests (fewer under Miri, which is slow).
const ROUNDS: usize = if cfg!(miri) { 5 } else { 50 };

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        yield_now().await;
    }
}

async fn settle() {
    for _ in 0..8 {
        yield_now().await;
    }
}

/// A value that counts its drops, to tell "delivered" from "dropped".
struct Token {
    id: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

#[test]
fn every_value_arrives_once_with_many_producers_and_consumers() {
    const PER: usize = if cfg!(miri) { 30 } else { 300 };
    for shape in [0, 2] {
        Builder::new().extra_workers(shape).run(async move {
            let (tx, rx) = channel(4);
            let mut tasks = Vec::new();
            for p in 0..4 {
                let tx = tx.clone();
                let body = move || async move {
                    for i in 0..PER {
                        tx.send(p * PER + i).await.unwrap();
                    }
                    Vec::new()
                };
                tasks.push(if shape == 0 {
                    spawn(body())
                } else {
                    call(body).unwrap()
                });
            }
            drop(tx);
            for _ in 0..2 {
                let rx = rx.clone();
                let body = move || async move {
                    let mut got = Vec::new();
                    while let Some(v) = rx.recv().await {
                        got.push(v);
                    }
                    got
                };
                tasks.push(if shape == 0 {
                    spawn(body())
                } else {
                    call(body).unwrap()
                });
            }
            let mut all = Vec::new();
            while let Some(v) = rx.recv().await {
                all.push(v); // dom0 consumes too
            }
            for r in await_all(tasks).await {
                all.extend(r.unwrap());
            }
            all.sort_unstable();
            assert_eq!(all, (0..4 * PER).collect::<Vec<_>>());
        });
    }
}

#[test]
fn a_full_channel_suspends_the_sender_an_empty_one_the_receiver() {
    Builder::new().extra_workers(0).run(async {
        let (tx, rx) = channel(1);
        let sent = Arc::new(AtomicUsize::new(0));
        let s2 = sent.clone();
        let sender = spawn(async move {
            for i in 0..3 {
                tx.send(i).await.unwrap();
                s2.fetch_add(1, SeqCst);
            }
        });
        settle().await;
        assert_eq!(
            sent.load(SeqCst),
            1,
            "the sender did not wait on a full channel"
        );
        assert_eq!(rx.len(), 1);
        let mut got = Vec::new();
        while let Some(v) = rx.recv().await {
            got.push(v);
        }
        assert_eq!(got, [0, 1, 2]);
        sender.await.unwrap();

        let (tx, rx) = channel::<u8>(1);
        let done = Arc::new(AtomicBool::new(false));
        let d2 = done.clone();
        let receiver = spawn(async move {
            let v = rx.recv().await;
            d2.store(true, SeqCst);
            v
        });
        settle().await;
        assert!(
            !done.load(SeqCst),
            "the receiver did not wait on an empty channel"
        );
        tx.send(8).await.unwrap();
        assert_eq!(receiver.await.unwrap(), Some(8));
    });
}

#[test]
fn closing_is_observable_on_both_sides_across_workers() {
    Builder::new().extra_workers(2).run(async {
        // The last sender goes: a receiver waiting on another worker sees it.
        let (tx, rx) = channel::<u8>(2);
        let queued = Arc::new(AtomicBool::new(false));
        let q2 = queued.clone();
        let receiver = call(move || async move {
            q2.store(true, SeqCst);
            rx.recv().await
        })
        .unwrap();
        until("receiver waiting", || queued.load(SeqCst)).await;
        drop(tx);
        assert_eq!(receiver.await.unwrap(), None);

        // The receiver closes: a sender blocked on another worker gets its
        // value back.
        let (tx, rx) = channel(1);
        tx.try_send(1).unwrap();
        queued.store(false, SeqCst);
        let q2 = queued.clone();
        let sender = call(move || async move {
            q2.store(true, SeqCst);
            tx.send(2).await
        })
        .unwrap();
        until("sender waiting", || queued.load(SeqCst)).await;
        rx.close();
        assert!(matches!(sender.await.unwrap(), Err(SendError(2))));
        assert_eq!(rx.try_recv(), Ok(1), "buffered values survive the close");
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    });
}

/// One worker: the receiver was handed the value, then cancelled before it
/// ran; the value stays in the channel.
#[test]
fn cancelled_receiver_loses_no_message_one_worker() {
    Builder::new().extra_workers(0).run(async {
        let (tx, rx) = channel(1);
        let rx2 = rx.clone();
        let receiver = spawn(async move { rx2.recv().await });
        settle().await; // waiting
        tx.send(5).await.unwrap(); // handed to the waiting receiver
        receiver.cancel().await.unwrap();
        assert_eq!(
            rx.try_recv(),
            Ok(5),
            "the cancelled receiver lost the message"
        );
    });
}

#[test]
fn cancelled_receiver_loses_no_message_across_workers() {
    Builder::new().extra_workers(2).run(async {
        let (tx, rx) = channel(1);
        let record = Arc::new(StdMutex::new(Vec::new()));
        for round in 0..ROUNDS {
            let queued = Arc::new(AtomicBool::new(false));
            let (rx2, q2, rec) = (rx.clone(), queued.clone(), record.clone());
            let receiver = call(move || async move {
                q2.store(true, SeqCst);
                if let Some(v) = rx2.recv().await {
                    rec.lock().unwrap().push(v); // received for real
                }
            })
            .unwrap();
            until("receiver waiting", || queued.load(SeqCst)).await;
            tx.send(round).await.unwrap();
            receiver.cancel().await.unwrap(); // races the hand-over
            if let Ok(v) = rx.try_recv() {
                record.lock().unwrap().push(v);
            }
        }
        let got = record.lock().unwrap().clone();
        assert_eq!(
            got,
            (0..ROUNDS).collect::<Vec<_>>(),
            "a message was lost or duplicated"
        );
    });
}

/// A sender blocked on a full channel and cancelled: its value is either
/// delivered (once) or dropped with the task, never both, never neither.
async fn cancelled_sender(across: bool) {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel(1);
    for round in 0..if across { ROUNDS } else { 2 } {
        tx.try_send(Token {
            id: usize::MAX,
            drops: drops.clone(),
        })
        .ok()
        .unwrap(); // fills the channel
        let queued = Arc::new(AtomicBool::new(false));
        let (tx2, q2, d2) = (tx.clone(), queued.clone(), drops.clone());
        let body = move || async move {
            q2.store(true, SeqCst);
            let _ = tx2
                .send(Token {
                    id: round,
                    drops: d2,
                })
                .await;
        };
        let sender = if across {
            call(body).unwrap()
        } else {
            spawn(body())
        };
        until("sender waiting", || queued.load(SeqCst)).await;
        settle().await;
        // Round 0: cancelled while blocked. Round 1: a receive first moves its
        // value into the channel, then the cancellation.
        let filler = if round % 2 == 1 {
            rx.try_recv().ok()
        } else {
            None
        };
        let drops_before = drops.load(SeqCst);
        sender.cancel().await.unwrap();
        let dropped_with_task = drops.load(SeqCst) - drops_before;
        let mut delivered = Vec::new();
        // Dropped after the count, so their drops do not blur it.
        let mut received_tokens = Vec::new();
        if filler.is_none() {
            delivered.push(rx.try_recv().ok().unwrap().id); // the filler
        }
        while let Ok(t) = rx.try_recv() {
            delivered.push(t.id);
            received_tokens.push(t);
        }
        let received = delivered.iter().filter(|&&id| id == round).count();
        assert_eq!(
            received + dropped_with_task,
            1,
            "round {round}: value delivered {received} times and dropped {dropped_with_task} times"
        );
        if !across {
            let expect = if round == 0 { 0 } else { 1 };
            assert_eq!(received, expect, "round {round}");
        }
        drop(filler);
        drop(received_tokens);
    }
}

#[test]
fn cancelled_sender_value_delivered_or_dropped_never_both_one_worker() {
    Builder::new().extra_workers(0).run(cancelled_sender(false));
}

#[test]
fn cancelled_sender_value_delivered_or_dropped_never_both_across_workers() {
    Builder::new().extra_workers(2).run(cancelled_sender(true));
}

#[test]
fn oneshot_round_trip_across_workers() {
    Builder::new().extra_workers(2).run(async {
        for i in 0..20 {
            let (tx, rx) = oneshot::channel();
            let (back_tx, back_rx) = oneshot::channel();
            let p = call(move || async move {
                let v = rx.await.unwrap();
                back_tx.send(v * 2).unwrap();
            })
            .unwrap();
            tx.send(i).unwrap();
            assert_eq!(back_rx.await, Ok(i * 2));
            p.await.unwrap();
        }
    });
}

#[test]
fn cancelled_oneshot_receiver_closes_the_channel() {
    for shape in [0, 2] {
        Builder::new().extra_workers(shape).run(async move {
            let (mut tx, rx) = oneshot::channel::<u8>();
            let queued = Arc::new(AtomicBool::new(false));
            let q2 = queued.clone();
            let body = move || async move {
                q2.store(true, SeqCst);
                rx.await
            };
            let receiver = if shape == 0 {
                spawn(body())
            } else {
                call(body).unwrap()
            };
            until("receiver waiting", || queued.load(SeqCst)).await;
            assert!(!tx.is_closed());
            receiver.cancel().await.unwrap();
            assert!(tx.is_closed());
            tx.closed().await;
            assert_eq!(tx.send(4), Err(4), "the value was not handed back");
        });
    }
}
