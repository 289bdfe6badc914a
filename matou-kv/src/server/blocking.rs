//! Clients blocked on lists (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP):
//! the storage task's queues of waiters, and what a blocked handler holds.
//!
//! The shape, in matou's terms: a blocked client is its handler task
//! suspended on a `matou::sync::oneshot` receiver (a [`Blocked`]), raced
//! against its timeout, its socket (a disconnect), CLIENT KILL, CLIENT
//! UNBLOCK and shutdown. The storage task keeps the sending half in
//! [`Waiters`]. Whatever ends the wait, the handler drops its receiver,
//! and that drop is the whole cancellation: the storage task sees the
//! sender closed and never serves it, and a sweep each tick forgets it.
//!
//! Invariants:
//! - **FIFO per key.** Each `(database, key)` has a queue of waiter ids in
//!   the order they blocked, across every worker (they all go through the
//!   one storage task). A waiter on several keys is in each queue; served
//!   through one, it leaves the map and its other entries are skipped.
//! - **Nothing is handed to a departed client.** A waiter is served only
//!   if its receiver is alive when the pop runs; its reply is sent after
//!   the pop's commit (durable first, as any write), and if the receiver
//!   went away meanwhile, the storage task pushes the elements back where
//!   they were popped (logged), and serves the next waiter
//!   (`Storage::deliver`). A handler that gives up (timeout, disconnect)
//!   takes a reply already sent with `try_recv` before dropping its
//!   receiver, so a reply is either received or returned to the list.
//! - **Nothing is left behind.** A waiter is in [`Waiters`] only while its
//!   receiver may still take a reply; [`Waiters::sweep`] removes the
//!   others, and [`Waiters::blocked`] counts only live ones.

use crate::command::ListWrite;
use crate::resp::Reply;
use matou::sync::oneshot;
use std::collections::{HashMap, VecDeque};

/// What a blocked handler waits on: its reply, or its deadline.
#[derive(Debug)]
pub(super) struct Blocked {
    /// The reply, sent by the storage task once a list served it.
    pub rx: oneshot::Receiver<Reply>,
    /// How long to wait in ms (0: forever).
    pub timeout_ms: u64,
    /// The answer when the wait ends without a reply (nil, or a nil
    /// array).
    pub timed_out: Reply,
}

struct Waiter {
    db: usize,
    /// The blocking command as parsed.
    cmd: ListWrite,
    tx: oneshot::Sender<Reply>,
}

/// A waiter picked to be served through a key.
pub(super) struct Pick {
    /// The non-blocking command to run for it, on that key.
    pub cmd: ListWrite,
    /// Where its reply goes.
    pub tx: oneshot::Sender<Reply>,
}

/// The waiters of every key of every database (the storage task's).
#[derive(Default)]
pub(super) struct Waiters {
    next_id: u64,
    waiters: HashMap<u64, Waiter>,
    queues: HashMap<(usize, Vec<u8>), VecDeque<u64>>,
}

impl Waiters {
    /// Whether no client waits.
    pub(super) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Registers `cmd` (a blocking form) as waiting on its sources in
    /// database `db`: what its handler waits on.
    pub(super) fn block(&mut self, db: usize, cmd: ListWrite) -> Blocked {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        for key in cmd.sources() {
            let q = self.queues.entry((db, key.clone())).or_default();
            // BLPOP k k: once in its queue is enough.
            if q.back() != Some(&id) {
                q.push_back(id);
            }
        }
        let blocked = Blocked {
            rx,
            timeout_ms: cmd.block().unwrap_or(0),
            timed_out: cmd.timed_out(),
        };
        self.waiters.insert(id, Waiter { db, cmd, tx });
        blocked
    }

    /// The first live waiter on `key` of database `db`, taken out of every
    /// queue (lazily: its other entries are skipped later).
    pub(super) fn next_for(&mut self, db: usize, key: &[u8]) -> Option<Pick> {
        let qk = (db, key.to_vec());
        let q = self.queues.get_mut(&qk)?;
        let mut pick = None;
        while let Some(id) = q.pop_front() {
            let Some(w) = self.waiters.remove(&id) else {
                continue;
            };
            if w.tx.is_closed() {
                continue;
            }
            debug_assert_eq!(w.db, db);
            pick = Some(Pick {
                cmd: w.cmd.serve_on(key),
                tx: w.tx,
            });
            break;
        }
        if q.is_empty() {
            self.queues.remove(&qk);
        }
        pick
    }

    /// Forgets the waiters whose handler went away (timed out,
    /// disconnected, killed) and the queue entries of every waiter gone.
    pub(super) fn sweep(&mut self) {
        self.waiters.retain(|_, w| !w.tx.is_closed());
        let waiters = &self.waiters;
        self.queues.retain(|_, q| {
            q.retain(|id| waiters.contains_key(id));
            !q.is_empty()
        });
    }

    /// The keys of database `db` someone waits on (a SWAPDB may have made
    /// any of them a list).
    pub(super) fn keys_in(&self, db: usize) -> Vec<Vec<u8>> {
        self.queues
            .keys()
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// How many clients wait now (INFO's `blocked_clients`).
    pub(super) fn blocked(&self) -> usize {
        self.waiters.values().filter(|w| !w.tx.is_closed()).count()
    }

    /// Queue entries held, gone waiters' included until a sweep (for the
    /// tests that check nothing is left behind).
    #[cfg(test)]
    pub(super) fn entries(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{parse, Command, Write};

    fn blpop(keys: &[&str]) -> ListWrite {
        let mut a: Vec<Vec<u8>> = vec![b"blpop".to_vec()];
        a.extend(keys.iter().map(|k| k.as_bytes().to_vec()));
        a.push(b"0".to_vec());
        match parse(&a, true) {
            Ok(Command::Write(Write::List(l))) => l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn waiters_are_served_in_order_and_departed_ones_are_skipped_and_swept() {
        let mut w = Waiters::default();
        let first = w.block(0, blpop(&["a", "b"]));
        let second = w.block(0, blpop(&["a"]));
        let third = w.block(0, blpop(&["b", "a"]));
        drop(second);
        assert_eq!(w.blocked(), 2);
        let p = w.next_for(0, b"a").expect("the first");
        assert!(p.tx.send(Reply::Integer(1)).is_ok());
        let mut first = first;
        assert_eq!(first.rx.try_recv().ok(), Some(Reply::Integer(1)));
        // The second left: the third is next on `a`, and is gone from `b`.
        let p = w.next_for(0, b"a").expect("the third");
        assert!(p.tx.send(Reply::Integer(3)).is_ok());
        assert!(w.next_for(0, b"b").is_none());
        assert!(w.next_for(1, b"a").is_none(), "another database");
        drop(third);
        assert!(w.is_empty());
        let gone = w.block(0, blpop(&["c", "d"]));
        drop(gone);
        assert_eq!(w.blocked(), 0);
        w.sweep();
        assert_eq!(w.entries(), 0, "nothing left behind");
        assert!(w.is_empty());
    }
}
