//! Reads that the kernel can answer from its caches, done on the calling
//! thread (the worker) instead of the blocking pool.
//!
//! A pool job costs two cross-thread hand-offs (wake the pool thread, wake
//! the worker back), each a trip through the OS scheduler: tens of
//! microseconds on a loaded machine, far more than reading a small file that
//! is in the page cache. So a read first tries the non-blocking forms the
//! kernel offers, the same attempt io_uring makes before it punts an
//! operation to its own worker threads:
//! - the path is resolved only from the lookup cache (`RESOLVE_CACHED`);
//! - only a regular file is opened (looked at first through an `O_PATH`
//!   handle, so no device's or FIFO's `open` runs here);
//! - data is read with `RWF_NOWAIT`, i.e. only what the page cache holds.
//!
//! Anything else (a lookup or a read that would wait for a disk, a file
//! system without non-blocking reads, any error) goes to the pool, which
//! then does the whole operation (or the rest of it) with std and reports
//! std's own errors: the fast path never changes a result, only where the
//! work runs.
//!
//! Invariant: at most [`MAX_BUF`] bytes are copied per call, so a worker is
//! held as long as a socket read of that size holds it, never longer.

use super::MAX_BUF;
use crate::sys::{self, CachedOpen};
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

/// How far [`read_cached`] got.
pub(super) enum Cached {
    /// The whole file.
    Done(Vec<u8>),
    /// The file is open and its first bytes read; the rest must be read on
    /// the pool (it is not all cached, or larger than [`MAX_BUF`]).
    Partial(std::fs::File, Vec<u8>),
    /// Nothing done: the pool must run the whole operation.
    Declined,
}

/// Reads the file at `path` as far as the kernel's caches allow.
pub(super) fn read_cached(path: &Path) -> Cached {
    // A look first, without opening: only a regular file is opened here.
    let Ok(handle) = sys::open_cached(path, CachedOpen::Handle) else {
        return Cached::Declined;
    };
    if !matches!(sys::cached_stat(handle.as_fd()), Ok((true, _))) {
        return Cached::Declined;
    }
    drop(handle);
    let Ok(fd) = sys::open_cached(path, CachedOpen::Read) else {
        return Cached::Declined;
    };
    // Again on what was opened: the path may have been replaced meanwhile.
    let len = match sys::cached_stat(fd.as_fd()) {
        Ok((true, len)) => len,
        _ => return Cached::Declined,
    };
    let file = std::fs::File::from(fd);
    // Room for the whole file and a few bytes more, so that the end is
    // usually seen without growing the buffer (the length may have changed).
    let want = usize::try_from(len).map_or(MAX_BUF, |l| l.saturating_add(32).min(MAX_BUF));
    let mut buf = vec![0; want];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() >= MAX_BUF {
                buf.truncate(filled);
                return Cached::Partial(file, buf);
            }
            let grown = (buf.len() * 2).clamp(64, MAX_BUF);
            buf.resize(grown, 0);
        }
        match sys::read_nowait(file.as_fd(), &mut buf[filled..]) {
            Ok(0) => {
                buf.truncate(filled);
                return Cached::Done(buf);
            }
            Ok(n) => filled += n,
            // Not cached, interrupted, unsupported or failed: the pool goes
            // on from here (and reports a real error as std does).
            Err(_) => {
                buf.truncate(filled);
                return Cached::Partial(file, buf);
            }
        }
    }
}

/// The whole file (`std::fs::read`): what [`read_cached`] could read here,
/// the rest (or all of it) on the pool.
pub(super) async fn read(path: std::path::PathBuf) -> io::Result<Vec<u8>> {
    use std::io::Read;
    match read_cached(&path) {
        Cached::Done(buf) => Ok(buf),
        Cached::Partial(mut file, mut buf) => {
            crate::blocking::unblock(move || file.read_to_end(&mut buf).map(|_| buf)).await
        }
        Cached::Declined => crate::blocking::unblock(move || std::fs::read(path)).await,
    }
}
