//! The append-only log `DIR/appendonly.mlog`: what makes matou-kv durable.
//!
//! Format: the 12-byte file header (`MATOU-KV`, format version 1), then
//! frames of `u32 LE length`, `u32 LE CRC-32`, payload (one
//! [`LogRecord`]); see [`frame`](mod@frame). A new log is created with its
//! header; a log that is a strict prefix of the header (a torn creation) or
//! empty gets it written again.
//!
//! One owner (the server's storage task) holds the [`Aof`] and is its only
//! writer. Invariants:
//! - **Ours alone.** [`Aof::open`] creates the directory `0700` if needed,
//!   then takes the directory's lock (`DIR/matou-kv.lock`, see [`files`])
//!   before touching anything else there, and holds it as long as the
//!   [`Aof`] lives. The log is opened without following a symbolic link and
//!   must be a regular file; files we create are `0600`, whatever the umask.
//! - **Only a torn tail is ever cut.** Replay stops at the first damaged
//!   frame. If what follows is a torn tail by the rule of [`scan`] (what a
//!   crash mid-append leaves), it is cut off (fsynced) and reported on
//!   stderr ([`Cut`]); a record is never half-applied and later appends
//!   never follow garbage. Any other damage, a file with our magic but
//!   another version, or a file that is not a log at all refuses the open
//!   with a [`Refused`] error naming the file, the offset and the bytes
//!   after it, **the file left byte for byte as it was**. Then
//!   [`Aof::open_with`] with `repair` ([`repair`]) moves it aside and
//!   starts from every intact record, and `matou-kv check-log` reports
//!   ([`scan::survey`]) without changing anything.
//! - **Header-less logs migrate.** A log written before the header existed
//!   (frames from byte 0) is accepted if its first frame is intact, replayed
//!   under the same rules, and rewritten at once (with the header) by an
//!   inline rewrite; if that rewrite fails, the server runs on the old file
//!   and the next rewrite adds the header.
//! - A failed write is cut back to the last whole record before the error
//!   is returned.
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
//!      size (`fallocate`) in a new `0600` temporary file, so that it
//!      cannot push the live log into ENOSPC half-way, then writes the
//!      header and the snapshot to it and fsyncs it, while the owner keeps
//!      serving and appending to the old log;
//!   3. owner: [`Aof::finish_rewrite`] commits what is pending to the old
//!      log, appends the side buffer to the new file, fsyncs it, checks
//!      that the log's path still names the file it has open (a regular
//!      file, same inode: the rename never replaces something that is not
//!      our log), renames the new file over it and fsyncs the directory,
//!      then appends to the new file.
//!
//!   A crash at any moment leaves the old log or the new one, each complete.
//!   If step 2 fails (no room, ENOSPC, EMFILE...), its temporary file is
//!   removed, [`Aof::abort_rewrite`] drops the side buffer and the old log
//!   goes on as if nothing happened; step 3 opens every descriptor it needs
//!   before the rename, so running out of them there aborts the same way.
//!   The owner retries later.

pub mod files;
pub mod frame;
pub mod repair;
pub mod scan;

pub use frame::{
    frame, frame_set, read_log, Cut, Damage, Format, LogBytes, LogFile, LogReader, Replayed, CHUNK,
    FILE_HEADER, FILE_HEADER_LEN, HEADER, MAX_PAYLOAD,
};
pub use repair::Repaired;

use crate::databases::{Databases, Snapshots};
use crate::record::LogRecord;
use crate::record::LogRecord as Record;
use crate::store::Store;
use std::fmt;
use std::fs::{self, File};
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
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Why [`Aof::open`] refused a log: damage that is not a torn tail (see
/// [`scan`]), another format version, or a foreign file. The file was left
/// as it was. Carried inside the `io::Error` (kind `InvalidData`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The log's path.
    pub path: PathBuf,
    /// Where and what.
    pub cut: Cut,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; refusing to start, the file was left unchanged. Inspect it with \
             `matou-kv check-log {}`, or start with --repair-log to move it aside (a copy is \
             kept) and load every intact record",
            self.path.display(),
            self.cut,
            self.path.display()
        )
    }
}

impl std::error::Error for Refused {}

impl Refused {
    /// The refusal inside `e`, if `e` is one.
    pub fn of(e: &io::Error) -> Option<&Refused> {
        e.get_ref().and_then(|e| e.downcast_ref::<Refused>())
    }
}

/// Replays the log open as `file` into `store`, record by record, and
/// truncates the file to its valid prefix (fsynced) if it had a torn tail.
/// Reports nothing: see [`Replayed::cut`].
///
/// # Errors
/// A [`Refused`] log (unchanged), or reading, truncating or syncing it.
fn replay(file: &File, path: &Path, store: &mut impl Replay) -> io::Result<Replayed> {
    let mut reader = LogReader::new(LogFile::new(file)?)?;
    while let Some(record) = reader.next_record()? {
        store.replay(record);
    }
    let outcome = reader.outcome();
    let Some(cut) = outcome.cut else {
        return Ok(outcome);
    };
    if scan::tail_is_torn(reader.source(), &cut, outcome.format, outcome.records)? {
        file.set_len(cut.offset)?;
        file.sync_all()?;
        return Ok(outcome);
    }
    let cut = if outcome.format == Format::Legacy && outcome.records == 0 {
        Cut {
            damage: Damage::Foreign,
            ..cut
        }
    } else {
        cut
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        Refused {
            path: path.to_path_buf(),
            cut,
        },
    ))
}

/// What a log is replayed into: a [`Store`] (database 0 alone) or all the
/// [`Databases`]. A repair also empties it first and snapshots it after.
pub trait Replay {
    /// Applies one record.
    fn replay(&mut self, record: Record);
    /// Forgets every key (a repair replays from scratch).
    fn reset(&mut self);
    /// Pointer copies of every key, for writing a new log.
    fn snapshots(&self) -> Snapshots;
    /// Keys held.
    fn keys(&self) -> usize;
}

impl Replay for Store {
    fn replay(&mut self, record: Record) {
        record.apply(self);
    }
    fn reset(&mut self) {
        *self = Store::new();
    }
    fn snapshots(&self) -> Snapshots {
        self.snapshot().into()
    }
    fn keys(&self) -> usize {
        self.len()
    }
}

impl Replay for Databases {
    fn replay(&mut self, record: Record) {
        self.apply(record);
    }
    fn reset(&mut self) {
        *self = Databases::new(self.count());
    }
    fn snapshots(&self) -> Snapshots {
        self.snapshot()
    }
    fn keys(&self) -> usize {
        self.len()
    }
}

/// Writes a whole log holding `snapshot` to `out`: the file header, then
/// `Set` frames (wrapped in their database's index but for database 0) in
/// pieces of about [`CHUNK`] bytes; the bytes written.
///
/// # Errors
/// The writer's, or `InvalidData` for an entry too large for a frame.
pub fn write_snapshot(snapshot: &Snapshots, out: &mut impl Write) -> io::Result<u64> {
    let mut buf = Vec::with_capacity(2 * CHUNK);
    buf.extend_from_slice(&FILE_HEADER);
    let mut total = 0u64;
    let entries = snapshot
        .0
        .iter()
        .flat_map(|(db, s)| s.iter().map(|e| (*db, e)));
    for (db, e) in entries {
        let framed = frame_set(&mut buf, db, e.key, e.value, e.expire_at);
        if !framed {
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
    snapshot: Snapshots,
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
            let mut file = files::create_private(&self.tmp)?;
            // Claim the space before writing, so that the snapshot cannot
            // take what the live log needs half-way through (KEEP_SIZE: the
            // file's length stays what is written). A file system without
            // fallocate only had the free-space check.
            // (An empty snapshot reserves nothing: fallocate refuses a zero
            // length with EINVAL, which made every rewrite after a FLUSHALL
            // fail.)
            let reserved = if estimate > 0 {
                rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, estimate)
            } else {
                Ok(())
            };
            match reserved {
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
            .0
            .iter()
            .flat_map(|(_, s)| s.iter())
            .map(|e| (e.key.len() + e.value.data_len() + 10 * e.value.items() + HEADER + 32) as u64)
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
    /// The directory's lock, held as long as the log is open.
    _lock: File,
    /// Tests: every write stops half-way with this errno, as on a full
    /// disk, and the probe fails.
    #[cfg(test)]
    pub(crate) fail_writes: Option<i32>,
    /// Tests: every fsync fails with this errno.
    #[cfg(test)]
    pub(crate) fail_fsyncs: Option<i32>,
}

impl Aof {
    /// Creates `dir` (`0700`) if needed, takes its lock, removes a
    /// rewrite's leftovers, replays the log into `store`, cuts a torn tail
    /// (reporting it on stderr), and opens the log for appending. Damage
    /// that is not a torn tail refuses the open (see the module docs).
    ///
    /// # Errors
    /// Another process holds the directory; a [`Refused`] log (left
    /// unchanged); creating, replaying, truncating or opening the file.
    pub fn open(dir: &Path, policy: Fsync, store: &mut impl Replay) -> io::Result<(Aof, Replayed)> {
        Self::open_with(dir, policy, store, false).map(|(aof, replayed, _)| (aof, replayed))
    }

    /// [`open`](Self::open), and with `repair`, a [`Refused`] log is
    /// repaired instead ([`repair::repair`]): what was done is returned
    /// (and `store` holds every intact record). A log that replays fine is
    /// left alone, and so is one of another format version (refused still:
    /// it needs the build that wrote it, a repair would drop it whole).
    ///
    /// # Errors
    /// As [`open`](Self::open), and the repair's.
    pub fn open_with(
        dir: &Path,
        policy: Fsync,
        store: &mut impl Replay,
        repair: bool,
    ) -> io::Result<(Aof, Replayed, Option<Repaired>)> {
        files::create_private_dir(dir)?;
        let lock = files::lock_dir(dir)?;
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
        let (mut file, created) = files::open_log(&path)?;
        if created {
            // Make the new file's name durable.
            sync_dir(dir)?;
        }
        let mut repaired = None;
        let replayed = match replay(&file, &path, store) {
            Ok(replayed) => {
                if let Some(cut) = &replayed.cut {
                    eprintln!(
                        "matou-kv: {}: {cut}; a torn tail (an append cut short by a crash): \
                         the log was truncated to its valid prefix of {} records ({} bytes)",
                        path.display(),
                        replayed.records,
                        replayed.valid_len
                    );
                }
                replayed
            }
            Err(e)
                if repair
                    && Refused::of(&e).is_some_and(|r| {
                        !matches!(r.cut.damage, Damage::UnsupportedVersion(_))
                    }) =>
            {
                eprintln!("matou-kv: {e}");
                let done = repair::repair(dir, &file, store)?;
                (file, _) = files::open_log(&path)?;
                let replayed = Replayed {
                    format: Format::Current,
                    records: done.survey.records,
                    valid_len: done.new_size,
                    cut: None,
                };
                repaired = Some(done);
                replayed
            }
            Err(e) => return Err(e),
        };
        if files::make_private(&file)? {
            eprintln!("matou-kv: {}: made private (mode 0600)", path.display());
        }
        if file.metadata()?.len() == 0 {
            // New, or a torn creation cut back to nothing.
            (&file).write_all(&FILE_HEADER)?;
            file.sync_all()?;
        }
        let size = file.metadata()?.len();
        let mut aof = Aof {
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
            _lock: lock,
            #[cfg(test)]
            fail_writes: None,
            #[cfg(test)]
            fail_fsyncs: None,
        };
        if replayed.format == Format::Legacy {
            match aof.rewrite(store) {
                Ok(()) => eprintln!(
                    "matou-kv: {}: a log without the format header (from an earlier version) \
                     was rewritten with it",
                    aof.path.display()
                ),
                Err(e) => eprintln!(
                    "matou-kv: {}: a log without the format header could not be rewritten \
                     with it yet ({e}); the next rewrite will",
                    aof.path.display()
                ),
            }
        }
        Ok((aof, replayed, repaired))
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
        #[cfg(debug_assertions)]
        if test_skip_fsync() {
            self.unsynced = false;
            self.last_fsync = Instant::now();
            return Ok(());
        }
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
    pub fn begin_rewrite(&mut self, snapshot: impl Into<Snapshots>) -> io::Result<RewriteJob> {
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
            snapshot: snapshot.into(),
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
            .and_then(|()| files::check_is_open_file(&self.path, &self.file))
            .and_then(|()| {
                let dir = File::open(&self.dir)?;
                fs::rename(&tmp, &self.path)?;
                Ok(dir)
            });
        let dir = match before_rename {
            Ok(dir) => dir,
            Err(e) => {
                self.abort_rewrite();
                return Err(e);
            }
        };
        self.rewriting = None;
        // The new file stays open (it was opened O_APPEND by
        // files::create_private) under its new name: nothing is reopened
        // by path.
        self.file = file;
        self.size = size + side_len;
        match dir.sync_all() {
            Ok(()) => {
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
    pub fn rewrite(&mut self, store: &impl Replay) -> io::Result<()> {
        let job = self.begin_rewrite(store.snapshots())?;
        match job.run() {
            Ok(out) => self.finish_rewrite(out),
            Err(e) => {
                self.abort_rewrite();
                Err(e)
            }
        }
    }

    /// Replays the log as the file holds it now into `store` (DEBUG
    /// RELOAD: proof that the log alone restores the state). Commit first:
    /// pending records are not in the file yet. A cut in the log (which a
    /// running server never leaves) is an error here, never repaired.
    ///
    /// # Errors
    /// Reading the file, or a log that does not read back whole.
    pub fn read_back(&self, store: &mut impl Replay) -> io::Result<()> {
        let file = File::open(&self.path)?;
        let mut reader = LogReader::new(LogFile::new(&file)?)?;
        while let Some(record) = reader.next_record()? {
            store.replay(record);
        }
        match reader.outcome().cut {
            None => Ok(()),
            Some(cut) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the log does not read back whole: {cut}"),
            )),
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

    /// Changes the fsync policy (CONFIG SET appendfsync). What was written
    /// before and not fsynced yet is covered by the next fsync the new
    /// policy makes (an fsync covers the whole file); a change to
    /// `always` fsyncs now, so that nothing acknowledged before it stays
    /// at the mercy of a machine crash longer than the old policy allowed.
    ///
    /// # Errors
    /// That fsync's (the log then refuses writes until restart).
    pub fn set_policy(&mut self, policy: Fsync) -> io::Result<()> {
        self.policy = policy;
        if policy == Fsync::Always && self.unsynced {
            self.fsync()?;
        }
        Ok(())
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

/// `MATOU_KV_TEST_SKIP_FSYNC=1`, honoured by debug builds only (release
/// builds do not contain this code): the log's fsync is skipped, so writes
/// are answered without being durable. It exists so that the power-cut
/// test (`tests/power_cut.rs`) can show that it detects a server that
/// answers before its fsync; never set it otherwise.
#[cfg(debug_assertions)]
fn test_skip_fsync() -> bool {
    static SKIP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SKIP.get_or_init(|| {
        let skip = std::env::var_os("MATOU_KV_TEST_SKIP_FSYNC").is_some_and(|v| v == "1");
        if skip {
            let _ = writeln!(
                io::stderr(),
                "matou-kv: MATOU_KV_TEST_SKIP_FSYNC=1: the log is NOT fsynced (test only)"
            );
        }
        skip
    })
}

#[cfg(test)]
mod refusal_tests;
#[cfg(test)]
mod tests;
