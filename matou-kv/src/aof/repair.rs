//! `--repair-log`: replaces a damaged log by a clean one holding every
//! intact record, keeping the damaged file.
//!
//! Steps, each leaving a startable directory if the process dies there:
//! 1. [`survey`] the damaged file into a fresh store
//!    (every intact record, those after damage found by resynchronising);
//! 2. write that store as a new log (header, then one `Set` per key) to a
//!    temporary file and fsync it;
//! 3. hard-link the damaged file as `appendonly.mlog.damaged-<unix time>`
//!    (the copy is kept: same bytes, same inode);
//! 4. check that the log's path still names the damaged file, rename the
//!    new log over it, fsync the directory.
//!
//! Until step 4 the damaged log is still in place (a restart refuses it
//! again); after it, the clean one is. Replaying what follows a gap on a
//! store that missed the gap's records is the best that can be done: a
//! lost `SET` leaves an older value, a lost `DEL` a key that should be
//! gone; the report says which byte ranges were skipped.

use super::files::{check_is_open_file, create_private};
use super::frame::LogFile;
use super::scan::{survey, Survey};
use super::{sync_dir, write_snapshot, Replay, FILE_NAME, REWRITE_PREFIX};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// What a repair did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repaired {
    /// Where the damaged file is kept.
    pub damaged_copy: PathBuf,
    /// What was found in it.
    pub survey: Survey,
    /// Keys in the new log.
    pub keys: usize,
    /// Bytes of the new log.
    pub new_size: u64,
}

impl fmt::Display for Repaired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.survey;
        writeln!(
            f,
            "log repaired: the damaged log is kept as {}; {} intact records recovered \
             ({} keys, new log of {} bytes)",
            self.damaged_copy.display(),
            s.records,
            self.keys,
            self.new_size
        )?;
        if let Some(r) = &s.refused {
            writeln!(
                f,
                "lost: the whole file ({} bytes): {}",
                r.dropped, r.damage
            )?;
        }
        for (i, g) in s.gaps.iter().enumerate() {
            let next = s.gaps.get(i + 1).map_or(s.records, |n| n.records_before);
            writeln!(
                f,
                "lost: bytes {}..{} ({} bytes, {}), after {} intact records; {} intact \
                 records recovered after them",
                g.start,
                g.end,
                g.end - g.start,
                g.damage,
                g.records_before,
                next - g.records_before
            )?;
        }
        if let Some(t) = &s.torn {
            writeln!(f, "lost: torn tail, {t}")?;
        }
        Ok(())
    }
}

/// A name for the kept copy that is not taken yet.
fn link_aside(dir: &Path, log: &Path) -> io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for n in 0u32.. {
        let name = match n {
            0 => format!("{FILE_NAME}.damaged-{secs}"),
            n => format!("{FILE_NAME}.damaged-{secs}-{n}"),
        };
        let copy = dir.join(name);
        match fs::hard_link(log, &copy) {
            Ok(()) => return Ok(copy),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 names exhausted")
}

/// Repairs the log `damaged` (open, at `dir`/[`FILE_NAME`]) into `store`,
/// which is reset first (see the module docs).
///
/// # Errors
/// Reading the damaged file, or writing, linking or renaming: the damaged
/// log is then still in place.
pub fn repair(dir: &Path, damaged: &File, store: &mut impl Replay) -> io::Result<Repaired> {
    let path = dir.join(FILE_NAME);
    store.reset();
    let survey = survey(&LogFile::new(damaged)?, |r| store.replay(r))?;
    let tmp = dir.join(format!("{REWRITE_PREFIX}repair"));
    let written = (|| {
        let mut new = create_private(&tmp)?;
        let size = write_snapshot(&store.snapshots(), &mut new)?;
        new.sync_all()?;
        Ok(size)
    })();
    let new_size = match written {
        Ok(size) => size,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let damaged_copy = link_aside(dir, &path)?;
    check_is_open_file(&path, damaged)?;
    fs::rename(&tmp, &path)?;
    sync_dir(dir)?;
    Ok(Repaired {
        damaged_copy,
        survey,
        keys: store.keys(),
        new_size,
    })
}
