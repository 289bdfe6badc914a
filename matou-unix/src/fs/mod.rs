//! Files and directories: std's `std::fs` operations, run on the
//! [blocking pool](crate::blocking) so that they never stall a worker, and
//! [`File`] with `futures-io` `AsyncRead`/`AsyncWrite`/`AsyncSeek`.
//! Reads the kernel can answer from its caches without waiting for a disk
//! ([`read`], [`read_to_string`], [`File`]'s reads) are done at once on the
//! worker instead (module `nowait`): a trip to the pool costs more than they
//! do.
//!
//! Every function takes owned arguments (`impl AsRef<Path>` is copied into a
//! `PathBuf`) and returns a future that owns everything it needs, so an
//! io_uring backend can later take over without an API change.
//!
//! Cancellation: dropping one of these futures does not undo or stop the
//! operation, which runs to completion on the pool (a `write` may still
//! complete, a `rename` still happen); only its result is lost.

mod file;
mod nowait;

pub use file::{File, MAX_BUF};

use crate::blocking::unblock;
use std::io;
use std::path::{Path, PathBuf};

/// Runs the std function `op` on the blocking pool with an owned copy of the
/// path(s).
macro_rules! on_pool {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty => $conv:expr),*) -> $out:ty = $op:path) => {
        $(#[$doc])*
        ///
        /// # Errors
        /// Those of the std function of the same name.
        pub async fn $name($($arg: $ty),*) -> io::Result<$out> {
            $(let $arg = $conv;)*
            unblock(move || $op($($arg),*)).await
        }
    };
}

fn owned(p: impl AsRef<Path>) -> PathBuf {
    p.as_ref().to_path_buf()
}

/// The whole contents of a file (`std::fs::read`).
///
/// What the kernel has cached (the path's lookup, the file's pages) is read
/// at once on the calling worker, without a trip to the pool; the rest, or
/// all of it, on the pool (see `nowait`'s module docs).
///
/// # Errors
/// Those of `std::fs::read`.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    nowait::read(owned(path)).await
}

/// The whole contents of a file as UTF-8 (`std::fs::read_to_string`), read
/// as [`read`] reads.
///
/// # Errors
/// Those of `std::fs::read_to_string` (`InvalidData` if the file is not
/// UTF-8).
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let bytes = nowait::read(owned(path)).await?;
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}
on_pool!(
    /// Creates or truncates `path` and writes `contents` (`std::fs::write`).
    write(path: impl AsRef<Path> => owned(path), contents: impl AsRef<[u8]> => contents.as_ref().to_vec()) -> () = std::fs::write
);
on_pool!(
    /// Copies the contents and permissions of `from` to `to`; returns the
    /// bytes copied (`std::fs::copy`, which uses `copy_file_range` on Linux).
    copy(from: impl AsRef<Path> => owned(from), to: impl AsRef<Path> => owned(to)) -> u64 = std::fs::copy
);
on_pool!(
    /// The metadata of `path`, following symlinks (`std::fs::metadata`).
    metadata(path: impl AsRef<Path> => owned(path)) -> std::fs::Metadata = std::fs::metadata
);
on_pool!(
    /// The metadata of `path` itself (`std::fs::symlink_metadata`).
    symlink_metadata(path: impl AsRef<Path> => owned(path)) -> std::fs::Metadata = std::fs::symlink_metadata
);
on_pool!(
    /// Creates a directory (`std::fs::create_dir`).
    create_dir(path: impl AsRef<Path> => owned(path)) -> () = std::fs::create_dir
);
on_pool!(
    /// Creates a directory and its missing parents (`std::fs::create_dir_all`).
    create_dir_all(path: impl AsRef<Path> => owned(path)) -> () = std::fs::create_dir_all
);
on_pool!(
    /// Removes a file (`std::fs::remove_file`).
    remove_file(path: impl AsRef<Path> => owned(path)) -> () = std::fs::remove_file
);
on_pool!(
    /// Removes an empty directory (`std::fs::remove_dir`).
    remove_dir(path: impl AsRef<Path> => owned(path)) -> () = std::fs::remove_dir
);
on_pool!(
    /// Removes a directory and everything in it (`std::fs::remove_dir_all`).
    remove_dir_all(path: impl AsRef<Path> => owned(path)) -> () = std::fs::remove_dir_all
);
on_pool!(
    /// Renames `from` to `to`, replacing `to` if it exists (`std::fs::rename`).
    rename(from: impl AsRef<Path> => owned(from), to: impl AsRef<Path> => owned(to)) -> () = std::fs::rename
);
on_pool!(
    /// The absolute path with symlinks resolved (`std::fs::canonicalize`).
    canonicalize(path: impl AsRef<Path> => owned(path)) -> PathBuf = std::fs::canonicalize
);

/// How many entries one trip to the pool fetches.
const READ_DIR_BATCH: usize = 64;

/// Opens a directory for listing its entries with [`ReadDir::next_entry`]
/// (`std::fs::read_dir`).
///
/// # Errors
/// Those of `std::fs::read_dir` (e.g. `NotFound`).
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = owned(path);
    let dir = unblock(move || std::fs::read_dir(path)).await?;
    Ok(ReadDir {
        dir: Some(dir),
        batch: std::collections::VecDeque::new(),
    })
}

/// The entries of a directory, an async iterator: see [`read_dir`].
///
/// Entries come in batches of 64 from the pool. Like std, `.` and `..` are
/// skipped and the order is the file system's.
#[derive(Debug)]
pub struct ReadDir {
    /// `None` while a batch is being read on the pool (a cancelled
    /// `next_entry` loses the directory: the iterator then ends) or once the
    /// end was reached.
    dir: Option<std::fs::ReadDir>,
    batch: std::collections::VecDeque<io::Result<std::fs::DirEntry>>,
}

impl ReadDir {
    /// The next entry, or `None` at the end.
    ///
    /// Cancelling it while a batch is in flight ends the listing (the
    /// following calls return `None`).
    ///
    /// # Errors
    /// An error reading one entry is returned in its place; the listing
    /// goes on after it.
    pub async fn next_entry(&mut self) -> io::Result<Option<std::fs::DirEntry>> {
        if self.batch.is_empty() {
            let Some(mut dir) = self.dir.take() else {
                return Ok(None);
            };
            let (dir, batch) = unblock(move || {
                let batch: std::collections::VecDeque<_> =
                    dir.by_ref().take(READ_DIR_BATCH).collect();
                let more = batch.len() == READ_DIR_BATCH;
                (more.then_some(dir), batch)
            })
            .await;
            self.dir = dir;
            self.batch = batch;
        }
        self.batch.pop_front().transpose()
    }
}
