//! Clients blocked on lists (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP)
//! and sorted sets (BZPOPMIN, BZPOPMAX, BZMPOP): the storage task's queues
//! of waiters, and what a blocked handler holds.
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
//!   A waiter is served only by a key of its type ([`Wait::served_by`]):
//!   a list pushed where a BZPOPMIN waits leaves it waiting (Redis 7.0),
//!   and the next waiter of the right type in the queue is served.
//! - **Nothing is handed to a departed client.** A waiter is served only
//!   if its receiver is alive when the pop runs; its reply is sent after
//!   the pop's commit (durable first, as any write), and if the receiver
//!   went away meanwhile, the storage task puts the elements back where
//!   they were popped (a push, or a ZADD with their scores: logged), and
//!   serves the next waiter (`Storage::deliver`). A handler that gives up
//!   (timeout, disconnect) takes a reply already sent with `try_recv`
//!   before dropping its receiver, so a reply is either received or
//!   returned to its key.
//! - **Nothing is left behind.** A waiter is in [`Waiters`] only while its
//!   receiver may still take a reply; [`Waiters::sweep`] removes the
//!   others, and [`Waiters::blocked`] counts only live ones.

use crate::command::{Wait, Write};
use crate::resp::Reply;
use matou::sync::oneshot;
use std::collections::{HashMap, VecDeque};

/// What a blocked handler waits on: its reply, or its deadline.
#[derive(Debug)]
pub(super) struct Blocked {
    /// The reply, sent by the storage task once a key served it.
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
    cmd: Wait,
    tx: oneshot::Sender<Reply>,
}

/// A waiter picked to be served through a key.
pub(super) struct Pick {
    /// The non-blocking command to run for it, on that key.
    pub run: Write,
    /// The blocking command it serves (what to give back by).
    pub cmd: Wait,
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
    pub(super) fn block(&mut self, db: usize, cmd: Wait) -> Blocked {
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
            timeout_ms: cmd.timeout_ms(),
            timed_out: cmd.timed_out(),
        };
        self.waiters.insert(id, Waiter { db, cmd, tx });
        blocked
    }

    /// The first live waiter on `key` of database `db` that a value of
    /// type `type_name` serves, taken out of every queue (lazily: its
    /// other entries are skipped later). Waiters of another type keep
    /// their place.
    pub(super) fn next_for(&mut self, db: usize, key: &[u8], type_name: &str) -> Option<Pick> {
        let qk = (db, key.to_vec());
        let q = self.queues.get_mut(&qk)?;
        let waiters = &mut self.waiters;
        // Waiters gone (their handler gave up) leave here as they are met.
        q.retain(|id| match waiters.get(id).map(|w| w.tx.is_closed()) {
            Some(false) => true,
            Some(true) => {
                waiters.remove(id);
                false
            }
            None => false,
        });
        let at = q.iter().position(|id| waiters[id].cmd.served_by(type_name));
        let pick = at.and_then(|i| q.remove(i)).and_then(|id| {
            let w = waiters.remove(&id)?;
            debug_assert_eq!(w.db, db);
            Some(Pick {
                run: w.cmd.serve_on(key),
                cmd: w.cmd,
                tx: w.tx,
            })
        });
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
    /// any of them a list or a sorted set).
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
    use crate::command::{parse, Command};

    fn blocking(name: &str, keys: &[&str]) -> Wait {
        let mut a: Vec<Vec<u8>> = vec![name.as_bytes().to_vec()];
        a.extend(keys.iter().map(|k| k.as_bytes().to_vec()));
        a.push(b"0".to_vec());
        match parse(&a, true) {
            Ok(Command::Write(w)) => w.into_wait().expect("a blocking pop"),
            other => panic!("{other:?}"),
        }
    }

    fn blpop(keys: &[&str]) -> Wait {
        blocking("blpop", keys)
    }

    #[test]
    fn a_waiter_is_served_only_by_its_type_and_keeps_its_place() {
        let mut w = Waiters::default();
        let _z = w.block(0, blocking("bzpopmin", &["k"]));
        let _l = w.block(0, blpop(&["k"]));
        let _z2 = w.block(0, blocking("bzpopmax", &["k"]));
        let p = w.next_for(0, b"k", "list").expect("the list waiter");
        assert!(matches!(p.cmd, Wait::List(_)));
        assert!(w.next_for(0, b"k", "list").is_none());
        assert!(w.next_for(0, b"k", "string").is_none());
        let p = w.next_for(0, b"k", "zset").expect("the first zset waiter");
        assert!(matches!(
            p.run,
            Write::ZSets(crate::command::ZSetWrite::MPop { max: false, .. })
        ));
        assert_eq!(w.blocked(), 1);
    }

    #[test]
    fn waiters_are_served_in_order_and_departed_ones_are_skipped_and_swept() {
        let mut w = Waiters::default();
        let first = w.block(0, blpop(&["a", "b"]));
        let second = w.block(0, blpop(&["a"]));
        let third = w.block(0, blpop(&["b", "a"]));
        drop(second);
        assert_eq!(w.blocked(), 2);
        let p = w.next_for(0, b"a", "list").expect("the first");
        assert!(p.tx.send(Reply::Integer(1)).is_ok());
        let mut first = first;
        assert_eq!(first.rx.try_recv().ok(), Some(Reply::Integer(1)));
        // The second left: the third is next on `a`, and is gone from `b`.
        let p = w.next_for(0, b"a", "list").expect("the third");
        assert!(p.tx.send(Reply::Integer(3)).is_ok());
        assert!(w.next_for(0, b"b", "list").is_none());
        assert!(w.next_for(1, b"a", "list").is_none(), "another database");
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
