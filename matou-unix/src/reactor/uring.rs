//! The io_uring poller: the reactor's readiness on an io_uring instead of an
//! epoll instance (issue 15, step 1).
//!
//! The reactor's tables (descriptors, waiters, timers, signal waiters) are
//! the same for both backends; this module only replaces the three things
//! epoll did: watching a descriptor, forgetting it, and waiting. A watched
//! descriptor has one multishot `IORING_OP_POLL_ADD` (both directions and
//! peer hang-up) whose `user_data` is the descriptor's reactor token, so a
//! completion is dispatched exactly like an epoll event.
//!
//! Invariants:
//! - the ring is touched only on its worker's thread (it lives in the
//!   reactor, which is thread-local); other threads reach it only through the
//!   reactor's forget list and interrupter;
//! - submissions are batched: `watch` and `forget` only queue entries, which
//!   reach the kernel at the next `wait` (one `io_uring_enter` per `select`),
//!   except `forget_now`, used when the caller is about to close the
//!   descriptor (an armed poll holds a reference to the file, so the socket
//!   would stay open, e.g. its port bound, until the removal is submitted);
//! - every watched token is in `polls` until it is forgotten, and only a
//!   token in `polls` is reported: a completion of a removed poll (its
//!   `-ECANCELED`, or an event that raced with the removal) is ignored, and a
//!   freed-then-reused slot has another generation, hence another token;
//! - a multishot poll that the kernel ended (a completion without
//!   `IORING_CQE_F_MORE`, e.g. after a completion-queue overflow) is re-armed
//!   at once, so a watched descriptor is never left unwatched; one that ended
//!   with an error wakes both directions (the retried syscall reports what is
//!   wrong) and is re-armed when a task waits on it again;
//! - readiness is edge-like, as with epoll's `EPOLLET`: the kernel posts a
//!   completion on each wake-up of the file (and one at arming time if it is
//!   already ready), which is all the reactor needs because every operation
//!   retries its syscall before it waits.
//!
//! # Cancel safety
//!
//! The io_uring backend runs the same readiness API as epoll: the kernel
//! tells which descriptor may be ready, and the operation itself (`read`,
//! `accept`, ...) is the task's own non-blocking syscall, made when the task
//! runs. No submission entry refers to user memory (polls and poll removals
//! carry only a descriptor, a mask and a `user_data`), so no buffer is ever
//! lent to the kernel and a dropped operation has nothing in flight: bytes
//! that arrived stay in the socket for the next read, and a connection that
//! arrived stays in the listener's backlog for the next accept
//! (`tests/cancel_safety.rs`, run on both backends). A readiness completion
//! of a cancelled wait is dispatched to no one, and removing a poll is
//! idempotent against its late completions (the `polls` table decides).

use crate::sys;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use rustix::io::Errno;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// Submission queue size; the completion queue is twice as large. Entries
/// beyond it wait in `pending` (flushed by an extra `io_uring_enter`).
const ENTRIES: u32 = 256;
/// The `user_data` of poll removals, whose own completions are ignored. No
/// token equals it: slot keys stay below `0xffff_ff00`.
const REMOVE_TAG: u64 = u64::MAX - 2;

/// One watched descriptor.
struct Watched {
    fd: RawFd,
    events: u32,
    /// A poll is armed in the kernel or queued in `pending`.
    armed: bool,
}

/// One worker's io_uring poller. See the module docs.
pub(crate) struct Ring {
    ring: IoUring,
    polls: HashMap<u64, Watched, std::hash::BuildHasherDefault<super::UidHasher>>,
    /// Entries not yet in the submission queue (it was full).
    pending: Vec<squeue::Entry>,
    /// Entries in the submission queue not yet submitted.
    queued: usize,
}

/// Why a ring could not be set up: shown once in the fallback log line.
pub(crate) fn explain(e: &io::Error) -> String {
    match Errno::from_io_error(e) {
        Some(Errno::NOSYS) => format!("the kernel has no io_uring ({e})"),
        Some(Errno::PERM) => format!(
            "io_uring is not permitted (kernel.io_uring_disabled, a seccomp filter or a \
             container policy: {e})"
        ),
        Some(Errno::NOMEM) => format!(
            "the ring's memory cannot be allocated (RLIMIT_MEMLOCK on kernels before 5.12, \
             `ulimit -l`: {e})"
        ),
        _ => e.to_string(),
    }
}

/// The test knob `MATOU_URING_SIMULATE_ERROR=<errno>` (a number or `ENOSYS`,
/// `EPERM`, `ENOMEM`): makes ring creation fail as the kernel would, so the
/// fallback to epoll can be tested on a kernel that has io_uring.
fn simulated_error() -> Option<io::Error> {
    let v = std::env::var("MATOU_URING_SIMULATE_ERROR").ok()?;
    let errno = match v.trim() {
        "ENOSYS" => Errno::NOSYS.raw_os_error(),
        "EPERM" => Errno::PERM.raw_os_error(),
        "ENOMEM" => Errno::NOMEM.raw_os_error(),
        other => other.parse().ok()?,
    };
    Some(io::Error::from_raw_os_error(errno))
}

impl Ring {
    /// A new ring, or why io_uring cannot serve as this worker's poller.
    pub(crate) fn new() -> io::Result<Ring> {
        if let Some(e) = simulated_error() {
            return Err(e);
        }
        let ring = IoUring::new(ENTRIES)?;
        let p = ring.params();
        // Waiting with a timeout needs IORING_ENTER_EXT_ARG (5.11); multishot
        // polls came with 5.13, whose marker feature is resource tagging.
        if !p.is_feature_ext_arg() || !p.is_feature_resource_tagging() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel's io_uring lacks multishot poll or timed waits (needs Linux 5.13)",
            ));
        }
        Ok(Ring {
            ring,
            polls: HashMap::default(),
            pending: Vec::new(),
            queued: 0,
        })
    }

    /// Starts watching `fd` (both directions) under `token`; armed at the
    /// next submission.
    ///
    /// # Errors
    /// `EPERM` for a regular file or a directory, as `epoll_ctl` reports
    /// (their poll is always ready, which would spin the reactor).
    pub(crate) fn watch(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        sys::check_pollable(fd)?;
        self.watch_with(fd.as_raw_fd(), token, sys::poll_interest());
        Ok(())
    }

    /// Starts watching an eventfd for input under `token` (the interrupter,
    /// the process-wide signal eventfd).
    pub(crate) fn watch_input(&mut self, fd: BorrowedFd<'_>, token: u64) {
        self.watch_with(fd.as_raw_fd(), token, sys::poll_input());
    }

    fn watch_with(&mut self, fd: RawFd, token: u64, events: u32) {
        self.polls.insert(
            token,
            Watched {
                fd,
                events,
                armed: true,
            },
        );
        self.push(poll_add(fd, events, token));
    }

    /// A task is about to wait on `token`: re-arms its poll if the kernel
    /// ended it with an error.
    pub(crate) fn ensure_armed(&mut self, token: u64) {
        let Some(w) = self.polls.get_mut(&token) else {
            return;
        };
        if !w.armed {
            w.armed = true;
            let e = poll_add(w.fd, w.events, token);
            self.push(e);
        }
    }

    /// Stops watching `token`; the removal is submitted with the next batch.
    pub(crate) fn forget(&mut self, token: u64) {
        if let Some(w) = self.polls.remove(&token) {
            if w.armed {
                let e = opcode::PollRemove::new(token).build().user_data(REMOVE_TAG);
                self.push(e);
            }
        }
    }

    /// [`Ring::forget`], submitted now: the caller closes the descriptor
    /// next, and the armed poll would keep its file open until then.
    pub(crate) fn forget_now(&mut self, token: u64) {
        self.forget(token);
        if self.queued > 0 || !self.pending.is_empty() {
            self.submit(false, None);
        }
    }

    fn push(&mut self, e: squeue::Entry) {
        if !self.pending.is_empty() {
            self.pending.push(e);
            return;
        }
        // SAFETY: poll and poll-removal entries refer to no memory of ours
        // (only a descriptor number, a mask and a user_data), so nothing
        // must outlive the submission.
        match unsafe { self.ring.submission().push(&e) } {
            Ok(()) => self.queued += 1,
            Err(_) => self.pending.push(e),
        }
    }

    /// Submits everything queued; with `wait`, also waits for at least one
    /// completion, at most `timeout` (`None`: until one arrives).
    fn submit(&mut self, wait: bool, timeout: Option<Duration>) {
        loop {
            // Move what did not fit into the (now drained) submission queue.
            let mut moved = 0;
            {
                let mut sq = self.ring.submission();
                for e in &self.pending {
                    // SAFETY: as in `push`: the entries refer to no memory.
                    if unsafe { sq.push(e) }.is_err() {
                        break;
                    }
                    moved += 1;
                }
            }
            self.pending.drain(..moved);
            self.queued += moved;
            let last = self.pending.is_empty();
            let sub = self.ring.submitter();
            let r = match (wait && last, timeout) {
                (false, _) => sub.submit(),
                (true, None) => sub.submit_and_wait(1),
                (true, Some(d)) => {
                    // Clamp absurd deadlines rather than fail: the wait is
                    // re-armed anyway.
                    let ts = types::Timespec::from(d.min(Duration::from_secs(86_400)));
                    let args = types::SubmitArgs::new().timespec(&ts);
                    sub.submit_with_args(1, &args)
                }
            };
            match r {
                Ok(_) => self.queued = 0,
                // A timeout, a signal, or a full completion queue (drained by
                // the caller next): all an empty wait, not an error.
                Err(e)
                    if matches!(
                        Errno::from_io_error(&e),
                        Some(Errno::TIME | Errno::INTR | Errno::BUSY)
                    ) =>
                {
                    // The entries were consumed if the kernel got that far;
                    // the queue's own head tells.
                    self.queued = self.ring.submission().len();
                }
                Err(e) => panic!("matou-unix: io_uring_enter failed: {e}"),
            }
            if last {
                return;
            }
        }
    }

    /// Submits the batch, waits as `timeout` says (`Some(ZERO)`: not at all),
    /// and reports `(token, readable, writable)` for each readiness
    /// completion into `events` (cleared first).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, events: &mut Vec<(u64, bool, bool)>) {
        events.clear();
        let block = timeout != Some(Duration::ZERO);
        let overflow = self.ring.submission().cq_overflow();
        if block || self.queued > 0 || !self.pending.is_empty() || overflow {
            self.submit(block, timeout);
        }
        let mut rearm = Vec::new();
        for cqe in self.ring.completion() {
            let token = cqe.user_data();
            let Some(w) = self.polls.get_mut(&token) else {
                // A removal's own completion, or a removed poll's last one.
                continue;
            };
            let res = cqe.result();
            if res < 0 {
                // The poll ended with an error: wake both directions; the
                // next waiter re-arms it (`ensure_armed`).
                w.armed = false;
                events.push((token, true, true));
                continue;
            }
            if !cqueue::more(cqe.flags()) {
                rearm.push(poll_add(w.fd, w.events, token));
            }
            let (readable, writable) = sys::poll_readiness(res as u32);
            events.push((token, readable, writable));
        }
        for e in rearm {
            self.push(e);
        }
    }
}

fn poll_add(fd: RawFd, events: u32, token: u64) -> squeue::Entry {
    opcode::PollAdd::new(types::Fd(fd), events)
        .multi(true)
        .build()
        .user_data(token)
}
