//! The append-only log `DIR/appendonly.mlog`: what makes matou-kv durable.
//!
//! Format: frames of `u32 LE length`, `u32 LE CRC-32`, payload (one
//! [`LogRecord`]); see [`frame()`]. No header: an empty file is an empty store.
//!
//! One owner (the server's storage task) holds the [`Aof`] and is its only
//! writer. Invariants:
//! - **Whole records only.** [`Aof::open`] replays the valid prefix and
//!   truncates the file to it (then fsyncs), reporting on stderr what it cut
//!   ([`Cut`]): a record is never half-applied and later appends never
//!   follow garbage. A failed write is cut back the same way before the
//!   error is returned.
//! - **Group commit.** [`Aof::append`] only buffers; [`Aof::commit`] writes
//!   everything buffered with one `write` and, under [`Fsync::Always`], one
//!   `fsync`. The owner executes a batch of commands, appends their records,
//!   commits once, and only then replies to any of them: a reply never
//!   reveals a write that is not durable under the policy.
//! - **A failed commit changes nothing, and the log then refuses writes.**
//!   A commit that fails drops what was pending (and its copy in a
//!   rewrite's side buffer) and cuts the file back to its last good size,
//!   so the file stays exactly the records of the commits that succeeded;
//!   the owner takes the batch back in the store too (`store::Undo`) and
//!   answers its writes with an error. From then on [`Aof::refusal`] says
//!   why writes are refused (the owner refuses them up front, `-MISCONF`,
//!   and keeps serving reads). Two kinds:
//!   - a failed *write* (ENOSPC, EDQUOT...) is retryable: the file was cut
//!     back, nothing half-written remains. [`Aof::probe`] (each tick)
//!     reserves a little space past the end (`fallocate` with
//!     `KEEP_SIZE`, which changes no byte of the log) and, when that
//!     works, lifts the refusal;
//!   - a failed *fsync* (EIO) is sticky until restart: after a failed
//!     fsync Linux may have marked the dirty pages clean and dropped them
//!     ("fsyncgate", PostgreSQL 2018), so a retried fsync can report
//!     success for data that never reached the disk; what the file holds
//!     on disk is unknown. Reads go on; a restart replays what the disk
//!     really holds. Under [`Fsync::Always`] the failed batch is cut off
//!     the file as well, so its writes (answered with an error) do not
//!     come back at the restart.
//! - **Rewrite without stopping service.** A rewrite replaces the log by a
//!   compact snapshot in three steps, so that only the cheap ones run on the
//!   owner:
//!   1. owner: [`Aof::begin_rewrite`] with `store.snapshot()` (pointer
//!      copies), taken with no append in between, returns a [`RewriteJob`]
//!      and starts copying every later appended record into a side buffer;
//!   2. anywhere (another thread): [`RewriteJob::run`] checks that the file
//!      system has room for the snapshot and for the live log's growth
//!      (`statvfs`, [`REWRITE_MARGIN`]), reserves the snapshot's estimated
//!      size (`fallocate`), so that the temporary file cannot push the
//!      live log into ENOSPC half-way, then writes the snapshot to it and
//!      fsyncs it, while the owner keeps serving and appending to the old
//!      log;
//!   3. owner: [`Aof::finish_rewrite`] commits what is pending to the old
//!      log, appends the side buffer to the new file, fsyncs it, renames it
//!      over the log and fsyncs the directory, then appends to the new file.
//!
//!   A crash at any moment leaves the old log or the new one, each complete.
//!   If step 2 fails (no room, ENOSPC, EMFILE...), its temporary file is
//!   removed, [`Aof::abort_rewrite`] drops the side buffer and the old log
//!   goes on as if nothing happened; step 3 opens every descriptor it needs
//!   before the rename, so running out of them there aborts the same way.
//!   The owner retries later.

mod frame;

pub use frame::{
    frame, frame_set, read_log, Cut, Damage, LogReader, Replayed, CHUNK, HEADER, MAX_PAYLOAD,
};

use crate::record::LogRecord;
use crate::store::{Snapshot, Store};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How much [`Aof::probe`] reserves past the end of the log to decide that
/// writes can resume.
pub const PROBE_BYTES: u64 = 64 * 1024;
/// Free space a rewrite leaves for the live log, beyond its own estimated
/// size (and an eighth of it): see [`RewriteJob::run`].
pub const REWRITE_MARGIN: u64 = 1024 * 1024;

/// The log's file name inside the data directory.
pub const FILE_NAME: &str = "appendonly.mlog";
/// Prefix of a rewrite's temporary file (`appendonly.mlog.rewrite-N`).
pub const REWRITE_PREFIX: &str = "appendonly.mlog.rewrite-";
/// No rewrite below this size: small logs replay fast anyway.
pub const MIN_REWRITE_SIZE: u64 = 1024 * 1024;

/// When the log is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// At every commit, before any reply: an acknowledged write survives a
    /// crash of the machine.
    Always,
    /// At most a second apart ([`Aof::tick`]): a machine crash may lose
    /// about a second of acknowledged writes (a process crash loses none).
    EverySec,
    /// Left to the kernel.
    No,
}

impl Fsync {
    /// The name used by `--fsync` and `CONFIG GET appendfsync`.
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        }
    }

    /// Parses a name given by [`Fsync::name`].
    pub fn parse(s: &str) -> Option<Fsync> {
        [Fsync::Always, Fsync::EverySec, Fsync::No]
            .into_iter()
            .find(|f| f.name() == s)
    }
}

/// Fsyncs a directory, so that a creation or rename inside it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replays the log at `path` into `store`, record by record, and truncates
/// the file to its valid prefix (fsynced) if it had a damaged tail. A
/// missing file is an empty log. Reports nothing: see [`Replayed::cut`].
///
/// # Errors
/// Reading, truncating or syncing the file.
pub fn replay(path: &Path, store: &mut Store) -> io::Result<Replayed> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replayed::default()),
        Err(e) => return Err(e),
    };
    let mut reader = LogReader::new(file);
    while let Some(record) = reader.next_record()? {
        record.apply(store);
    }
    let outcome = reader.outcome();
    if let Some(cut) = outcome.cut {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(cut.offset)?;
        f.sync_all()?;
    }
    Ok(outcome)
}

/// Writes `snapshot` as `Set` frames to `out`, in pieces of about
/// [`CHUNK`] bytes; the bytes written.
///
/// # Errors
/// The writer's, or `InvalidData` for an entry too large for a frame.
pub fn write_snapshot(snapshot: &Snapshot, out: &mut impl Write) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(2 * CHUNK);
    let mut total = 0u64;
    for e in snapshot.iter() {
        if !frame_set(&mut buf, e.key, e.value, e.expire_at) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an entry is too large for a log frame",
            ));
        }
        if buf.len() >= CHUNK {
            out.write_all(&buf)?;
            total += buf.len() as u64;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    Ok(total + buf.len() as u64)
}

/// Fails with `StorageFull` unless the file system of `dir` has room for
/// `need` bytes plus [`REWRITE_MARGIN`] and an eighth of `need`, left for
/// the live log while the rewrite runs.
fn check_free_space(dir: &Path, need: u64) -> io::Result<()> {
    let st = rustix::fs::statvfs(dir)?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let wanted = need.saturating_add(need / 8).saturating_add(REWRITE_MARGIN);
    if free < wanted {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "not enough free space for a log rewrite: {free} bytes free, {wanted} wanted \
                 (a snapshot of about {need} bytes and room for the live log)"
            ),
        ));
    }
    Ok(())
}

/// The heavy half of a rewrite, to run on any thread (see the module docs).
#[derive(Debug)]
pub struct RewriteJob {
    id: u64,
    dir: PathBuf,
    tmp: PathBuf,
    snapshot: Snapshot,
}

/// A written and fsynced snapshot, to hand back to [`Aof::finish_rewrite`].
#[derive(Debug)]
pub struct RewriteOutput {
    id: u64,
    tmp: PathBuf,
    file: File,
    size: u64,
}

impl RewriteJob {
    /// Writes the snapshot to the temporary file and fsyncs it. Touches
    /// nothing the owner uses.
    ///
    /// # Errors
    /// Creating, writing or syncing the temporary file (which is removed).
    pub fn run(self) -> io::Result<RewriteOutput> {
        let result = (|| {
            let estimate = self.estimated_size();
            check_free_space(&self.dir, estimate)?;
            let mut file = File::create(&self.tmp)?;
            // Claim the space before writing, so that the snapshot cannot
            // take what the live log needs half-way through (KEEP_SIZE: the
            // file's length stays what is written). A file system without
            // fallocate only had the free-space check.
            match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, estimate) {
                Ok(()) => {}
                Err(rustix::io::Errno::OPNOTSUPP) => {}
                Err(e) => return Err(io::Error::from(e)),
            }
            // write_snapshot writes in ~64 KiB pieces: no BufWriter needed.
            let size = write_snapshot(&self.snapshot, &mut file)?;
            // Give back what the estimate reserved beyond the end.
            file.set_len(size)?;
            file.sync_all()?;
            Ok((file, size))
        })();
        match result {
            Ok((file, size)) => Ok(RewriteOutput {
                id: self.id,
                tmp: self.tmp,
                file,
                size,
            }),
            Err(e) => {
                let _ = fs::remove_file(&self.tmp);
                Err(e)
            }
        }
    }

    /// About the snapshot's size in the log: each entry's bytes and a
    /// frame's overhead (header, tag, varints, expiry).
    pub fn estimated_size(&self) -> u64 {
        self.snapshot
            .iter()
            .map(|e| (e.key.len() + e.value.len() + HEADER + 32) as u64)
            .sum()
    }

    /// Keys in the snapshot.
    pub fn len(&self) -> usize {
        self.snapshot.len()
    }

    /// Whether the snapshot is empty.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_empty()
    }
}

/// A rewrite in progress: its id and the frames appended since it began.
#[derive(Debug)]
struct Rewriting {
    id: u64,
    side: Vec<u8>,
    /// Length of `side` at the last successful commit: a failed commit
    /// cuts it back here.
    side_committed: usize,
}

/// Why the log refuses writes (see the module docs).
#[derive(Debug)]
struct Refusal {
    reason: String,
    /// Until restart (a failed fsync), or lifted by [`Aof::probe`].
    sticky: bool,
}

/// The open log (see the module docs).
#[derive(Debug)]
pub struct Aof {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    policy: Fsync,
    /// Frames appended since the last commit.
    pending: Vec<u8>,
    /// Bytes in the file.
    size: u64,
    /// Size after the last rewrite (or at open).
    base_size: u64,
    /// Written but not fsynced.
    unsynced: bool,
    last_fsync: Instant,
    rewrites: u64,
    rewriting: Option<Rewriting>,
    next_rewrite_id: u64,
    last_rewrite_failed: bool,
    /// Set by a failed commit or fsync; every commit fails meanwhile.
    refusal: Option<Refusal>,
    /// Tests: every write stops half-way with this errno, as on a full
    /// disk, and the probe fails.
    #[cfg(test)]
    pub(crate) fail_writes: Option<i32>,
    /// Tests: every fsync fails with this errno.
    #[cfg(test)]
    pub(crate) fail_fsyncs: Option<i32>,
}

impl Aof {
    /// Creates `dir` if needed, removes a rewrite's leftovers, replays the
    /// log into `store`, cuts a damaged tail (reporting it on stderr), and
    /// opens the log for appending.
    ///
    /// # Errors
    /// Creating the directory, replaying, truncating or opening the file.
    pub fn open(dir: &Path, policy: Fsync, store: &mut Store) -> io::Result<(Aof, Replayed)> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(REWRITE_PREFIX)
            {
                // A rewrite interrupted by a crash: the log itself is whole.
                fs::remove_file(entry.path())?;
            }
        }
        let path = dir.join(FILE_NAME);
        let replayed = replay(&path, store)?;
        if let Some(cut) = &replayed.cut {
            eprintln!(
                "matou-kv: {}: {cut}; the log was truncated to its valid prefix of {} records \
                 ({} bytes)",
                path.display(),
                replayed.records,
                replayed.valid_len
            );
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        // The file may have just been created: make its name durable.
        sync_dir(dir)?;
        let size = file.metadata()?.len();
        Ok((
            Aof {
                dir: dir.to_path_buf(),
                path,
                file,
                policy,
                pending: Vec::new(),
                size,
                base_size: size,
                unsynced: false,
                last_fsync: Instant::now(),
                rewrites: 0,
                rewriting: None,
                next_rewrite_id: 0,
                last_rewrite_failed: false,
                refusal: None,
                #[cfg(test)]
                fail_writes: None,
                #[cfg(test)]
                fail_fsyncs: None,
            },
            replayed,
        ))
    }

    fn refuse(&mut self, reason: String, sticky: bool) {
        match &mut self.refusal {
            // A sticky refusal stays sticky.
            Some(r) if r.sticky => {}
            r => *r = Some(Refusal { reason, sticky }),
        }
    }

    /// Drops what waits for a commit, in the side buffer too.
    fn drop_pending(&mut self) {
        self.pending.clear();
        if let Some(r) = &mut self.rewriting {
            r.side.truncate(r.side_committed);
        }
    }

    /// Buffers `record`; nothing reaches the file before
    /// [`commit`](Self::commit). During a rewrite the frame is also kept
    /// for the new log.
    pub fn append(&mut self, record: &LogRecord) {
        let start = self.pending.len();
        if !frame(record, &mut self.pending) {
            // Larger than a frame can say (4 GiB): the command layer
            // refuses such requests; should one get here, fail loudly at
            // the next commit rather than lose it silently.
            self.refuse("a record too large for a frame".into(), true);
            return;
        }
        if let Some(r) = &mut self.rewriting {
            r.side.extend_from_slice(&self.pending[start..]);
        }
    }

    /// Whether records wait for a commit.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes every buffered record with one `write` and, under
    /// [`Fsync::Always`], makes them durable with one `fsync`: the group
    /// commit. Reply to the writes of the batch only after it returns.
    ///
    /// # Errors
    /// The write's or the fsync's, or the refusal in force ([`Aof::refusal`]).
    /// Then nothing of the batch is in the file (it was cut back to its last
    /// good size) nor pending: the owner must take the batch back and
    /// answer its writes with an error.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some(r) = &self.refusal {
            let e = io::Error::other(r.reason.clone());
            self.drop_pending();
            return Err(e);
        }
        if let Err(e) = self.write_pending() {
            self.drop_pending();
            // Cut a partial frame off, so the file stays a valid prefix.
            match self.file.set_len(self.size) {
                Ok(()) => self.refuse(e.to_string(), false),
                Err(cut) => self.refuse(format!("write: {e}, then truncate: {cut}"), true),
            }
            return Err(e);
        }
        let before = self.size;
        self.size += self.pending.len() as u64;
        self.unsynced = true;
        if self.policy == Fsync::Always {
            if let Err(e) = self.fsync() {
                // The batch gets an error: take it off the file too, so a
                // restart does not bring it back (best effort: the file's
                // state on disk is unknown anyway, see the module docs).
                self.drop_pending();
                if self.file.set_len(before).is_ok() {
                    self.size = before;
                }
                return Err(e);
            }
        }
        self.pending.clear();
        if let Some(r) = &mut self.rewriting {
            r.side_committed = r.side.len();
        }
        Ok(())
    }

    fn write_pending(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if let Some(errno) = self.fail_writes {
            self.file
                .write_all(&self.pending[..self.pending.len() / 2])?;
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.file.write_all(&self.pending)
    }

    /// Why writes are refused right now, if they are (see the module docs).
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_ref().map(|r| r.reason.as_str())
    }

    /// While a retryable refusal is in force (a failed write), checks
    /// whether writes can resume: reserves [`PROBE_BYTES`] past the end of
    /// the file without changing its length, and lifts the refusal if that
    /// works (or if the file system cannot tell: the next commit then
    /// tries for real, and fails safely). Whether writes are accepted now.
    pub fn probe(&mut self) -> bool {
        match &self.refusal {
            None => return true,
            Some(r) if r.sticky => return false,
            Some(_) => {}
        }
        #[cfg(test)]
        if self.fail_writes.is_some() {
            return false;
        }
        let flags = rustix::fs::FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(&self.file, flags, self.size, PROBE_BYTES) {
            Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => {
                self.refusal = None;
                true
            }
            Err(_) => false,
        }
    }

    fn fsync(&mut self) -> io::Result<()> {
        // fdatasync: the size change is metadata it covers too.
        #[cfg(test)]
        let synced = match self.fail_fsyncs {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => self.file.sync_data(),
        };
        #[cfg(not(test))]
        let synced = self.file.sync_data();
        if let Err(e) = synced {
            self.refuse(format!("fsync: {e}"), true);
            return Err(e);
        }
        self.unsynced = false;
        self.last_fsync = Instant::now();
        Ok(())
    }

    /// The periodic duty (call it every ~100 ms): under
    /// [`Fsync::EverySec`], fsyncs what was written if the last fsync is a
    /// second old.
    ///
    /// # Errors
    /// The fsync's (the log then refuses writes until restart).
    pub fn tick(&mut self) -> io::Result<()> {
        if self.policy == Fsync::EverySec
            && self.unsynced
            && self.last_fsync.elapsed() >= Duration::from_secs(1)
        {
            self.fsync()?;
        }
        Ok(())
    }

    /// Commits and fsyncs whatever the policy (at shutdown).
    ///
    /// # Errors
    /// The write's or the fsync's, or the sticky refusal in force (an
    /// earlier failed fsync).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(r) = self.refusal.as_ref().filter(|r| r.sticky) {
            // A "successful" fsync now would prove nothing (module docs).
            return Err(io::Error::other(format!(
                "the log refused writes since: {}",
                r.reason
            )));
        }
        self.commit()?;
        if self.unsynced {
            self.fsync()?;
        }
        Ok(())
    }

    /// Whether a rewrite is due: the log is past [`MIN_REWRITE_SIZE`], has
    /// doubled since the last rewrite, and no rewrite runs.
    pub fn needs_rewrite(&self) -> bool {
        self.rewriting.is_none() && self.size > MIN_REWRITE_SIZE && self.size > 2 * self.base_size
    }

    /// Whether a rewrite is in progress.
    pub fn rewrite_in_progress(&self) -> bool {
        self.rewriting.is_some()
    }

    /// Starts a rewrite from `snapshot`, which must be the store's state
    /// right now (no append between taking it and this call). Every record
    /// appended from now on is also kept for the new log.
    ///
    /// # Errors
    /// `AlreadyExists` if a rewrite is in progress.
    pub fn begin_rewrite(&mut self, snapshot: Snapshot) -> io::Result<RewriteJob> {
        if self.rewriting.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a log rewrite is already in progress",
            ));
        }
        let id = self.next_rewrite_id;
        self.next_rewrite_id += 1;
        self.rewriting = Some(Rewriting {
            id,
            side: Vec::new(),
            side_committed: 0,
        });
        Ok(RewriteJob {
            id,
            dir: self.dir.clone(),
            tmp: self.dir.join(format!("{REWRITE_PREFIX}{id}")),
            snapshot,
        })
    }

    /// Gives up the rewrite in progress (its job failed or was dropped):
    /// the old log goes on unchanged.
    pub fn abort_rewrite(&mut self) {
        if let Some(r) = self.rewriting.take() {
            let _ = fs::remove_file(self.dir.join(format!("{REWRITE_PREFIX}{}", r.id)));
            self.last_rewrite_failed = true;
        }
    }

    /// Completes a rewrite with its job's output (see the module docs).
    ///
    /// # Errors
    /// An output that is not the current rewrite's, or a file operation:
    /// before the rename the rewrite is aborted and the old log stays in
    /// use (running out of descriptors included: every handle the switch
    /// needs is opened before the rename); a failure after it (syncing the
    /// directory) makes the log refuse writes until restart, since which
    /// file survives a crash is then unknown.
    pub fn finish_rewrite(&mut self, out: RewriteOutput) -> io::Result<()> {
        if self.rewriting.as_ref().map(|r| r.id) != Some(out.id) {
            let _ = fs::remove_file(&out.tmp);
            return Err(io::Error::other("stale log rewrite output"));
        }
        // The old log first gets everything, so that it is complete too.
        if let Err(e) = self.commit() {
            self.abort_rewrite();
            return Err(e);
        }
        let RewriteOutput {
            tmp,
            mut file,
            size,
            ..
        } = out;
        let side = self.rewriting.as_ref().map_or(&[][..], |r| &r.side[..]);
        let side_len = side.len() as u64;
        // Every descriptor the switch needs is opened before the rename, so
        // that running out of them (EMFILE) aborts cleanly instead of
        // leaving a renamed log that cannot be opened.
        let before_rename = file
            .write_all(side)
            .and_then(|()| file.sync_all())
            .and_then(|()| {
                let log = OpenOptions::new().append(true).open(&tmp)?;
                let dir = File::open(&self.dir)?;
                fs::rename(&tmp, &self.path)?;
                Ok((log, dir))
            });
        let (log, dir) = match before_rename {
            Ok(handles) => handles,
            Err(e) => {
                self.abort_rewrite();
                return Err(e);
            }
        };
        self.rewriting = None;
        match dir.sync_all() {
            Ok(()) => {
                self.file = log;
                self.size = size + side_len;
                self.base_size = self.size;
                self.unsynced = false;
                self.rewrites += 1;
                self.last_rewrite_failed = false;
                Ok(())
            }
            Err(e) => {
                self.refuse(format!("fsync of the directory after a rewrite: {e}"), true);
                Err(e)
            }
        }
    }

    /// A whole rewrite inline on the caller (begin, run, finish): simple,
    /// but the owner is busy for the time it takes to write the snapshot.
    ///
    /// # Errors
    /// As [`RewriteJob::run`] and [`Aof::finish_rewrite`]; the old log
    /// stays in use after a failure before the rename.
    pub fn rewrite(&mut self, store: &Store) -> io::Result<()> {
        let job = self.begin_rewrite(store.snapshot())?;
        match job.run() {
            Ok(out) => self.finish_rewrite(out),
            Err(e) => {
                self.abort_rewrite();
                Err(e)
            }
        }
    }

    /// Bytes in the file (pending records excluded).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Size after the last rewrite (or at open).
    pub fn base_size(&self) -> u64 {
        self.base_size
    }

    /// Rewrites completed since open.
    pub fn rewrites(&self) -> u64 {
        self.rewrites
    }

    /// Whether the last rewrite failed.
    pub fn last_rewrite_failed(&self) -> bool {
        self.last_rewrite_failed
    }

    /// The fsync policy.
    pub fn policy(&self) -> Fsync {
        self.policy
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether writes are refused until restart (a failed fsync).
    pub fn is_broken(&self) -> bool {
        self.refusal.as_ref().is_some_and(|r| r.sticky)
    }
}

#[cfg(test)]
mod refusal_tests;
#[cfg(test)]
mod tests;
