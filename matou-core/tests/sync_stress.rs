//! The sync primitives under the randomized stress of the core: random
//! actors lock, wait, signal, send, receive and acquire on shared primitives,
//! spread over one to four workers, while random ones are cancelled wherever
//! they happen to be. Bounded in time, reproducible from the printed seed.
//!
//! What each run checks, i.e. the cancellation properties of `sync`:
//! - [`Mutex`]: never two holders at once; once every actor ended, the mutex
//!   is free (a task cancelled while waiting never ends up holding it) and
//!   its value counts every critical section entered;
//! - channel: every value's destructor runs exactly once; a value is
//!   received at most once; a completed send either delivered its value
//!   (it is received, by an actor or by the final drain) or handed it back,
//!   never both, and so does a send withdrawn with `SendFuture::cancel`
//!   (which says which); a value whose sender was cancelled mid-send is
//!   either received or dropped with the sender, never both. A receiver cancelled
//!   while handed a value must put it back, or the "delivered" value would
//!   never be received;
//! - [`Condition`]: once only waiters remain, no consumer waits while a
//!   ticket is left (a cancelled waiter passed on the signal meant for
//!   another); and likewise no receiver waits beside a buffered value, no
//!   sender beside free room (no wake-up lost);
//! - [`Semaphore`]: never more permits out than exist; all of them back at
//!   the end;
//! - the runtime: only the main task is alive at the end.

use matou_core::sync::{channel, Condition, Mutex, Receiver, Semaphore, SendError, Sender};
use matou_core::*;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// xorshift64*: enough randomness, no dependency, reproducible from a seed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

const ACTORS: usize = if cfg!(miri) { 6 } else { 24 };
const MAX_OPS: usize = if cfg!(miri) { 4 } else { 16 };
const PERMITS: usize = 3;

/// What happened to one channel value, by id.
#[derive(Default)]
struct Entry {
    dropped: AtomicU8,
    received: AtomicU8,
    /// The send returned `Err` with the value.
    returned: AtomicU8,
    /// The send returned `Ok`.
    sent: AtomicU8,
    /// A send of it is under way (still set: its sender was cancelled).
    pending: AtomicU8,
}

/// A channel value that reports its destruction.
struct Token {
    id: usize,
    shared: Arc<Shared>,
}

impl Drop for Token {
    fn drop(&mut self) {
        self.shared.ledger[self.id].dropped.fetch_add(1, SeqCst);
    }
}

struct Tickets {
    count: u64,
    closing: bool,
}

struct Shared {
    mutex: Mutex<u64>,
    /// Someone holds `mutex` (checked for exclusion).
    inside: AtomicBool,
    /// Critical sections entered.
    entered: AtomicU64,

    tickets: Mutex<Tickets>,
    cond: Condition,
    produced: AtomicU64,
    consumed: AtomicU64,
    cond_waiting: AtomicUsize,

    tx: Sender<Token>,
    rx: Receiver<Token>,
    next_id: AtomicUsize,
    ledger: Vec<Entry>,
    send_waiting: AtomicUsize,
    recv_waiting: AtomicUsize,

    sem: Semaphore,
    in_use: AtomicUsize,

    /// Invariants broken inside actors.
    violations: AtomicUsize,

    /// Actors alive and not parked in an operation that may wait forever
    /// (a condition wait, a send or a receive).
    busy: AtomicUsize,
}

/// Increments a counter for as long as it lives (also when the task is
/// cancelled meanwhile).
struct Count<'a>(&'a AtomicUsize);

impl<'a> Count<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, SeqCst);
        Count(c)
    }
}

impl Drop for Count<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// An actor's share of `busy`: taken when it is spawned (so an actor not
/// started yet counts), given up while it is parked, and for good when it
/// ends, cancelled or not, started or not.
struct Busy {
    shared: Arc<Shared>,
    parked: AtomicBool,
}

impl Busy {
    fn new(shared: Arc<Shared>) -> Self {
        shared.busy.fetch_add(1, SeqCst);
        Busy {
            shared,
            parked: AtomicBool::new(false),
        }
    }

    /// Runs `op`, counted as parked meanwhile.
    async fn parked<T>(&self, op: impl std::future::Future<Output = T>) -> T {
        self.parked.store(true, SeqCst);
        self.shared.busy.fetch_sub(1, SeqCst);
        let v = op.await;
        self.shared.busy.fetch_add(1, SeqCst);
        self.parked.store(false, SeqCst);
        v
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if !self.parked.load(SeqCst) {
            self.shared.busy.fetch_sub(1, SeqCst);
        }
    }
}

/// Clears `inside` when the critical section ends, cancelled or not.
struct Inside<'a>(&'a AtomicBool);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
    }
}

/// Polls `fut` once: `None` if it is pending.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut *fut).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

async fn yields(n: u64) {
    for _ in 0..n {
        yield_now().await;
    }
}

/// Records a broken invariant (so that one seen by an actor that is then
/// cancelled is not lost with it) and panics.
fn check(s: &Shared, ok: bool, what: impl FnOnce() -> String) {
    if !ok {
        s.violations.fetch_add(1, SeqCst);
        panic!("{}", what());
    }
}

async fn actor(busy: Busy, mut seed: u64) {
    let shared = busy.shared.clone();
    let s = &*shared;
    let ops = 1 + next(&mut seed) % MAX_OPS as u64;
    for _ in 0..ops {
        match next(&mut seed) % 7 {
            0 => {
                let mut g = s.mutex.lock().await;
                check(s, !s.inside.swap(true, SeqCst), || {
                    "two mutex holders".into()
                });
                let _inside = Inside(&s.inside); // dropped before `g`
                *g += 1;
                s.entered.fetch_add(1, SeqCst);
                yields(next(&mut seed) % 3).await;
            }
            1 => {
                // Produce a ticket: one signal per ticket.
                let mut t = s.tickets.lock().await;
                t.count += 1;
                s.produced.fetch_add(1, SeqCst);
                if next(&mut seed) % 2 == 0 {
                    s.cond.signal();
                    drop(t);
                } else {
                    drop(t);
                    s.cond.signal();
                }
            }
            2 => {
                // Consume a ticket, waiting for one.
                let mut t = s.tickets.lock().await;
                while t.count == 0 && !t.closing {
                    let _waiting = Count::new(&s.cond_waiting);
                    t = busy.parked(s.cond.wait(t)).await;
                }
                if t.count > 0 {
                    t.count -= 1;
                    s.consumed.fetch_add(1, SeqCst);
                }
            }
            3 => {
                let id = s.next_id.fetch_add(1, SeqCst);
                let token = Token {
                    id,
                    shared: shared.clone(),
                };
                let e = &s.ledger[id];
                e.pending.store(1, SeqCst);
                let r = {
                    let _waiting = Count::new(&s.send_waiting);
                    busy.parked(s.tx.send(token)).await
                };
                e.pending.store(0, SeqCst);
                match r {
                    Ok(()) => e.sent.fetch_add(1, SeqCst),
                    Err(SendError(token)) => {
                        check(s, token.id == id, || "another value handed back".into());
                        e.returned.fetch_add(1, SeqCst)
                    }
                };
            }
            4 => {
                // A send withdrawn with `SendFuture::cancel` if it has to
                // wait: the value comes back, or it entered the channel.
                let id = s.next_id.fetch_add(1, SeqCst);
                let token = Token {
                    id,
                    shared: shared.clone(),
                };
                let e = &s.ledger[id];
                e.pending.store(1, SeqCst);
                let mut send = s.tx.send(token);
                let r = match poll_once(&mut send).await {
                    Some(r) => r.map_err(|SendError(t)| t),
                    None => {
                        yields(next(&mut seed) % 3).await;
                        match send.cancel() {
                            Some(token) => Err(token),
                            None => Ok(()), // it entered the channel
                        }
                    }
                };
                e.pending.store(0, SeqCst);
                match r {
                    Ok(()) => e.sent.fetch_add(1, SeqCst),
                    Err(token) => {
                        check(s, token.id == id, || "another value handed back".into());
                        e.returned.fetch_add(1, SeqCst)
                    }
                };
            }
            5 => {
                let got = {
                    let _waiting = Count::new(&s.recv_waiting);
                    busy.parked(s.rx.recv()).await
                };
                if let Some(token) = got {
                    s.ledger[token.id].received.fetch_add(1, SeqCst);
                }
            }
            _ => {
                let n = 1 + (next(&mut seed) % PERMITS as u64) as usize;
                let _permit = s.sem.acquire_many(n).await.expect("never closed");
                let out = s.in_use.fetch_add(n, SeqCst) + n;
                check(s, out <= PERMITS, || {
                    format!("{out} permits out of {PERMITS}")
                });
                let _back = InUse(&s.in_use, n);
                yields(next(&mut seed) % 3).await;
            }
        }
        yields(next(&mut seed) % 3).await;
    }
}

/// Gives back its share of `in_use` (before the permit, declared earlier, is
/// released).
struct InUse<'a>(&'a AtomicUsize, usize);

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, SeqCst);
    }
}

/// Waits until only parked actors remain and no parked one is left waiting
/// for something that is there: a lost wake-up never gets there.
async fn quiescence(s: &Shared, seed: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (count, waiting) = {
            let t = s.tickets.lock().await;
            (t.count, s.cond_waiting.load(SeqCst))
        };
        let (len, senders, receivers) = (
            s.rx.len(),
            s.send_waiting.load(SeqCst),
            s.recv_waiting.load(SeqCst),
        );
        let cap = s.rx.capacity();
        let settled = s.busy.load(SeqCst) == 0
            && (count == 0 || waiting == 0)
            && (receivers == 0 || (len == 0 && senders == 0))
            && (senders == 0 || len >= cap);
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed:#x}: stuck: busy {}, tickets {count} with {waiting} waiting, \
             channel {len}/{cap} with {senders} senders and {receivers} receivers waiting",
            s.busy.load(SeqCst)
        );
        yield_now().await;
    }
}

/// One run: actors on every worker, random ones cancelled, then the checks.
async fn run_once(seed: u64) -> Summary {
    let mut rng = seed;
    let (tx, rx) = channel(next(&mut rng) as usize % 4);
    let shared = Arc::new(Shared {
        mutex: Mutex::new(0),
        inside: AtomicBool::new(false),
        entered: AtomicU64::new(0),
        tickets: Mutex::new(Tickets {
            count: 0,
            closing: false,
        }),
        cond: Condition::new(),
        produced: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        cond_waiting: AtomicUsize::new(0),
        tx,
        rx,
        next_id: AtomicUsize::new(0),
        ledger: (0..ACTORS * MAX_OPS).map(|_| Entry::default()).collect(),
        send_waiting: AtomicUsize::new(0),
        recv_waiting: AtomicUsize::new(0),
        sem: Semaphore::new(PERMITS),
        in_use: AtomicUsize::new(0),
        busy: AtomicUsize::new(0),
        violations: AtomicUsize::new(0),
    });

    let mut actors = Vec::new();
    for _ in 0..ACTORS {
        let a = next(&mut rng);
        let p = if next(&mut rng) % 3 == 0 {
            spawn(actor(Busy::new(shared.clone()), a))
        } else {
            let busy = Busy::new(shared.clone());
            match call(move || actor(busy, a)) {
                Ok(p) => p,
                Err(Error::NoDomainAvailable) => spawn(actor(Busy::new(shared.clone()), a)),
                Err(e) => panic!("unexpected {e}"),
            }
        };
        let doomed = next(&mut rng) % 3 == 0;
        actors.push((p, doomed));
    }

    // Cancel the doomed at random moments, wherever they are.
    let mut cancelled = 0;
    for (p, doomed) in &actors {
        if *doomed {
            cancelled += 1;
            yields(next(&mut rng) % 6).await;
            p.cancel().await.unwrap();
        }
    }
    quiescence(&shared, seed).await;

    // Release whoever still waits, then let everyone finish.
    shared.tx.close();
    {
        let mut t = shared.tickets.lock().await;
        t.closing = true;
        shared.cond.broadcast();
        drop(t);
    }
    for (p, doomed) in actors {
        match p.await {
            Ok(()) => assert!(!doomed, "seed {seed:#x}: a cancelled actor finished"),
            Err(Error::Cancelled) => assert!(doomed, "seed {seed:#x}: an actor was cancelled"),
            Err(e) => panic!("seed {seed:#x}: actor failed: {e}"),
        }
    }
    while let Ok(token) = shared.rx.try_recv() {
        shared.ledger[token.id].received.fetch_add(1, SeqCst);
    }

    let s = &*shared;
    assert_eq!(s.violations.load(SeqCst), 0, "seed {seed:#x}: see above");
    // Mutex.
    let g = s.mutex.try_lock();
    let g = g.unwrap_or_else(|| panic!("seed {seed:#x}: the mutex is still held"));
    assert_eq!(*g, s.entered.load(SeqCst), "seed {seed:#x}: lost updates");
    drop(g);
    assert!(!s.inside.load(SeqCst));
    // Condition.
    let t = s.tickets.try_lock().expect("tickets free");
    assert_eq!(
        t.count,
        s.produced.load(SeqCst) - s.consumed.load(SeqCst),
        "seed {seed:#x}: tickets"
    );
    drop(t);
    assert_eq!(s.cond_waiting.load(SeqCst), 0);
    // Semaphore.
    assert_eq!(
        s.sem.available_permits(),
        PERMITS,
        "seed {seed:#x}: permits lost"
    );
    assert!(s.sem.try_acquire_many(PERMITS).is_ok());
    assert_eq!(s.in_use.load(SeqCst), 0);
    // Channel.
    for (id, e) in s.ledger[..s.next_id.load(SeqCst)].iter().enumerate() {
        let [dropped, received, returned, sent, pending] =
            [&e.dropped, &e.received, &e.returned, &e.sent, &e.pending].map(|a| a.load(SeqCst));
        let what = format!(
            "seed {seed:#x}: value {id}: dropped {dropped}, received {received}, \
             returned {returned}, sent {sent}, pending {pending}"
        );
        assert_eq!(dropped, 1, "{what}");
        assert!(received + returned <= 1, "{what}");
        if pending == 0 {
            // The send completed: delivered exactly when it said so.
            assert_eq!(sent + returned, 1, "{what}");
            assert_eq!(sent, received, "{what}");
        } else {
            assert_eq!(sent + returned, 0, "{what}");
        }
    }
    assert_eq!(s.send_waiting.load(SeqCst), 0);
    assert_eq!(s.recv_waiting.load(SeqCst), 0);
    assert_eq!(s.busy.load(SeqCst), 0);
    Summary {
        cancelled,
        entered: s.entered.load(SeqCst),
        tickets: s.consumed.load(SeqCst),
        values: s.next_id.load(SeqCst) as u64,
        received: s
            .ledger
            .iter()
            .map(|e| u64::from(e.received.load(SeqCst)))
            .sum(),
        returned: s
            .ledger
            .iter()
            .map(|e| u64::from(e.returned.load(SeqCst)))
            .sum(),
        lost_with_sender: s
            .ledger
            .iter()
            .filter(|e| e.pending.load(SeqCst) == 1 && e.received.load(SeqCst) == 0)
            .count() as u64,
        ..Summary::default()
    }
}

/// What the runs did, printed so that a run that exercised nothing shows.
#[derive(Debug, Default)]
struct Summary {
    runs: u64,
    cancelled: u64,
    entered: u64,
    tickets: u64,
    values: u64,
    received: u64,
    returned: u64,
    lost_with_sender: u64,
}

impl std::ops::AddAssign for Summary {
    fn add_assign(&mut self, o: Summary) {
        self.runs += 1;
        self.cancelled += o.cancelled;
        self.entered += o.entered;
        self.tickets += o.tickets;
        self.values += o.values;
        self.received += o.received;
        self.returned += o.returned;
        self.lost_with_sender += o.lost_with_sender;
    }
}

#[test]
fn sync_primitives_keep_their_invariants_under_random_cancellation() {
    let deadline = Instant::now() + Duration::from_secs(if cfg!(miri) { 1 } else { 3 });
    let mut seed = 0x5EED_5EED_0000_0001u64 ^ 0x9E37_79B9_7F4A_7C15;
    let mut runs = 0;
    let mut summary = Summary::default();
    while Instant::now() < deadline || runs < 4 {
        let extra = runs % 4;
        let run_seed = next(&mut seed);
        let outcome = std::panic::catch_unwind(|| {
            Builder::new().extra_workers(extra).run(async move {
                let s = run_once(run_seed).await;
                (s, live_tasks())
            })
        });
        match outcome {
            Ok((s, live)) => {
                assert_eq!(live, 1, "seed {run_seed:#x}: tasks left alive");
                summary += s;
            }
            Err(panic) => {
                eprintln!("sync_stress: failed with seed {run_seed:#x}, {extra} extra workers");
                std::panic::resume_unwind(panic);
            }
        }
        runs += 1;
    }
    println!("sync_stress: {summary:?}");
    if !cfg!(miri) {
        // Too few runs under Miri to insist.
        assert!(summary.cancelled > 0 && summary.received > 0 && summary.tickets > 0);
    }
}
