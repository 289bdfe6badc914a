//! The data directory's files as the log's owner handles them: the
//! directory lock, private modes, and opening without following links.
//!
//! Invariants:
//! - **One server per directory.** [`lock_dir`] takes an exclusive `flock`
//!   (rustix's, as std's `File::try_lock` is newer than our MSRV) on
//!   `DIR/matou-kv.lock` before anything else
//!   in the directory is touched, and writes the holder's pid into it; the
//!   lock lives as long as the returned file (the process, in the server).
//! - **Private.** A directory this module creates is `0700`, every file it
//!   creates `0600`, set with `chmod`/`fchmod` after creation so that no
//!   umask widens (or narrows) them.
//! - **The log is ours.** [`open_log`] never follows a symbolic link
//!   (`O_NOFOLLOW`), and refuses anything but a regular file, checked
//!   before opening (so a FIFO or device is never opened) and again on the
//!   open descriptor (so a swap in between is caught). [`check_is_open_file`]
//!   lets a rename over the log first make sure the path still names the
//!   file the log has open.

use rustix::fs::{flock, FlockOperation, OFlags};
use rustix::io::Errno;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "matou-kv.lock";

/// `O_NOFOLLOW | O_NONBLOCK` (the latter so that a FIFO put in the log's
/// place never blocks the open) and `O_CLOEXEC` (std sets it too).
fn no_follow() -> i32 {
    (OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32
}

/// Creates `dir` (and missing parents) `0700` if it does not exist; an
/// existing directory keeps its mode (it is the operator's).
///
/// # Errors
/// Creating or chmod-ing the directory.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    fs::set_permissions(dir, Permissions::from_mode(0o700))
}

/// Creates a new file `0600` for reading and appending, failing if
/// anything (a link included) is at `path`.
///
/// # Errors
/// `AlreadyExists`, or the open's or `fchmod`'s.
pub fn create_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(no_follow())
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Takes the directory's lock (see the module docs); keep the file open
/// for as long as the directory is in use.
///
/// # Errors
/// Another process holds it (the message names its pid), or a file
/// operation on the lock file.
pub fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(no_follow())
        .open(&path)
        .map_err(|e| with_path(e, &path))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == Errno::WOULDBLOCK => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                "another matou-kv process".to_string()
            } else {
                format!("another matou-kv process (pid {pid})")
            };
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "{} is in use by {holder}, which holds the lock {}: one server per data \
                     directory",
                    dir.display(),
                    path.display()
                ),
            ));
        }
        Err(e) => return Err(with_path(e.into(), &path)),
    }
    file.set_permissions(Permissions::from_mode(0o600))?;
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn not_regular(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is {what}, not a regular file: refusing to use it as the log (the file was \
             left as it is)",
            path.display()
        ),
    )
}

fn describe(meta: &fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// Opens the log at `path` for reading and appending, creating it `0600`
/// if nothing is there (see the module docs). `true` if it was created.
///
/// # Errors
/// Not a regular file (a symbolic link included), or the open's.
pub fn open_log(path: &Path) -> io::Result<(File, bool)> {
    let before = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return create_private(path).map(|f| (f, true));
        }
        Err(e) => return Err(with_path(e, path)),
    };
    if !before.file_type().is_file() {
        return Err(not_regular(path, describe(&before)));
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(no_follow())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // ELOOP: it became a symbolic link since the check.
            Some(e) if e == Errno::LOOP.raw_os_error() => not_regular(path, "a symbolic link"),
            _ => with_path(e, path),
        })?;
    let now = file.metadata()?;
    if !now.file_type().is_file() || (now.dev(), now.ino()) != (before.dev(), before.ino()) {
        return Err(not_regular(path, "a file that changed while being opened"));
    }
    Ok((file, false))
}

/// Opens `path` read-only for inspection (what `check-log` reads): links
/// are followed, but anything but a regular file is refused unopened.
///
/// # Errors
/// Not a regular file, or the open's.
pub fn open_for_reading(path: &Path) -> io::Result<File> {
    let meta = fs::metadata(path).map_err(|e| with_path(e, path))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, describe(&meta)));
    }
    File::open(path).map_err(|e| with_path(e, path))
}

/// Checks that `path` is, right now, a regular file and the very file
/// `open` is (same device and inode): what a rename over the log must
/// check first, so that it never replaces something that is not our log.
///
/// # Errors
/// `InvalidData` naming what is there instead, or `lstat`'s.
pub fn check_is_open_file(path: &Path, open: &File) -> io::Result<()> {
    let there = fs::symlink_metadata(path).map_err(|e| with_path(e, path))?;
    let ours = open.metadata()?;
    if there.file_type().is_file() && (there.dev(), there.ino()) == (ours.dev(), ours.ino()) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is no longer the log this server has open ({} there now): refusing to rename \
             over it",
            path.display(),
            if there.file_type().is_file() {
                "another file"
            } else {
                describe(&there)
            }
        ),
    ))
}

/// Tightens an existing log readable or writable by others to `0600`;
/// whether it changed anything.
///
/// # Errors
/// `fchmod`'s.
pub fn make_private(file: &File) -> io::Result<bool> {
    let mode = file.metadata()?.mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(true)
}
