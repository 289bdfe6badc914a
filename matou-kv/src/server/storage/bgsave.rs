//! BGSAVE: matou-kv's durable state is its log, so a background save is a
//! background log rewrite (the one BGREWRITEAOF starts), and this module
//! keeps what Redis reports of it: whether the running rewrite is a
//! BGSAVE, whether one is scheduled (`BGSAVE SCHEDULE` while another
//! rewrite runs), and the last one's outcome and duration (INFO
//! persistence's `rdb_bgsave_in_progress`, `rdb_last_bgsave_status`,
//! `rdb_last_bgsave_time_sec`, `rdb_current_bgsave_time_sec`).
//!
//! Invariants:
//! - `running` is true only while a rewrite runs (`Storage::rewriting`)
//!   that a BGSAVE started; its end, success or failure, clears it and
//!   records the outcome ([`BgSave::finished`]).
//! - A scheduled BGSAVE starts at the first turn of the storage loop with
//!   no rewrite running ([`Storage::start_scheduled_bgsave`]), then is no
//!   longer scheduled, whether or not it could start.

use super::{misconf, Storage};
use crate::resp::Reply;
use std::time::Instant;

/// The state of background saves.
#[derive(Debug)]
pub(super) struct BgSave {
    /// The running rewrite is a BGSAVE: since then.
    running: Option<Instant>,
    /// A BGSAVE waits for the running rewrite to end.
    scheduled: bool,
    /// The last BGSAVE failed.
    last_failed: bool,
    /// The last one's duration in seconds (-1: none yet).
    last_secs: i64,
}

impl Default for BgSave {
    fn default() -> BgSave {
        BgSave {
            running: None,
            scheduled: false,
            last_failed: false,
            last_secs: -1,
        }
    }
}

impl BgSave {
    /// A rewrite ended (`ok`: it replaced the log): if it was a BGSAVE,
    /// its outcome.
    pub(super) fn finished(&mut self, ok: bool) {
        if let Some(t) = self.running.take() {
            self.last_failed = !ok;
            self.last_secs = i64::try_from(t.elapsed().as_secs()).unwrap_or(i64::MAX);
        }
    }

    /// INFO's figures: (in progress, last failed, last duration, current
    /// duration), durations in seconds, -1 for none.
    pub(super) fn figures(&self) -> (bool, bool, i64, i64) {
        let current = self.running.map_or(-1, |t| {
            i64::try_from(t.elapsed().as_secs()).unwrap_or(i64::MAX)
        });
        (
            self.running.is_some(),
            self.last_failed,
            self.last_secs,
            current,
        )
    }
}

impl Storage {
    /// `BGSAVE [SCHEDULE]`, with Redis 7.0's replies.
    pub(super) fn bgsave(&mut self, schedule: bool) -> Reply {
        if self.bgsave.running.is_some() {
            return Reply::err("ERR Background save already in progress");
        }
        if self.rewriting.is_some() {
            if !schedule {
                return Reply::err(
                    "ERR Another child process is active (AOF?): can't BGSAVE right now. \
                     Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
                );
            }
            self.bgsave.scheduled = true;
            return Reply::Simple("Background saving scheduled".into());
        }
        if let Some(reason) = self.aof.refusal() {
            return misconf(reason);
        }
        if self.start_bgsave() {
            Reply::Simple("Background saving started".into())
        } else {
            Reply::err("ERR Background saving failed to start")
        }
    }

    /// Starts the rewrite as a BGSAVE: whether it started.
    fn start_bgsave(&mut self) -> bool {
        self.start_rewrite();
        if self.rewriting.is_some() {
            self.bgsave.running = Some(Instant::now());
            true
        } else {
            self.bgsave.last_failed = true;
            false
        }
    }

    /// Starts the scheduled BGSAVE once no rewrite runs.
    pub(super) fn start_scheduled_bgsave(&mut self) {
        if self.bgsave.scheduled && self.rewriting.is_none() {
            self.bgsave.scheduled = false;
            if self.aof.refusal().is_none() {
                self.start_bgsave();
            }
        }
    }
}
