//! A test-only `LD_PRELOAD` library that makes "not fsynced" mean "lost".
//!
//! A SIGKILL does not test fsync: the page cache survives the process, so a
//! server that never syncs passes every kill test. Loaded into a process
//! with `LD_PRELOAD=libmatou_kv_faultfs.so` and `MATOU_FAULTFS_DIR=DIR`, this
//! library interposes libc's `write`, `writev`, `pwrite`/`pwrite64`,
//! `fsync`, `fdatasync`, `sync_file_range`, `sync`, `ftruncate`/`ftruncate64`
//! and `close`, and for every file whose path is under `DIR` (checked
//! through `/proc/self/fd` the first time an fd is written) it holds the
//! written bytes in its own memory instead of passing them to the kernel.
//! `fsync` and `fdatasync` write the held bytes through (at the offsets
//! they were written at) and then sync for real. So when the process dies,
//! exactly the bytes written since the file's last fsync vanish, as a power
//! cut would take them. Files elsewhere (stderr, sockets, which matou
//! writes through raw syscalls anyway) are not touched.
//!
//! The model, and what it leaves out:
//! - `write` on an `O_APPEND` fd lands at the file's virtual end (its real
//!   size plus what is held); otherwise at the fd's offset, which is then
//!   moved past the bytes as the kernel would (`lseek`, which is allowed
//!   past the end of a file).
//! - `sync_file_range` starts no write-back of held bytes (it guarantees no
//!   durability, so a power cut may take them too); `sync` flushes all.
//! - `ftruncate` drops held bytes past the new length.
//! - `close` drops what the fd still holds: a crash before the kernel's
//!   write-back would lose it too. Reads see only synced bytes, and `fstat`
//!   the synced size: a process under test must not rely on reading back
//!   what it has not synced (matou-kv does not: it reads its log at start
//!   only).
//! - Without `MATOU_FAULTFS_DIR` every call passes straight through.
//!
//! It is a test instrument, never linked into matou-kv itself.

use libc::{c_int, c_uint, c_void, iovec, off64_t, off_t, size_t, ssize_t};
use std::collections::HashMap;
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

type WriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
type PwriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t, off64_t) -> ssize_t;
type FdFn = unsafe extern "C" fn(c_int) -> c_int;
type TruncateFn = unsafe extern "C" fn(c_int, off64_t) -> c_int;
type SyncFn = unsafe extern "C" fn();

/// The C functions this library wraps, found with `dlsym(RTLD_NEXT)`.
struct Real {
    write: WriteFn,
    pwrite64: PwriteFn,
    fsync: FdFn,
    fdatasync: FdFn,
    ftruncate64: TruncateFn,
    close: FdFn,
    sync: SyncFn,
}

/// `dlsym(RTLD_NEXT, name)`; aborts if libc lacks it (nothing sensible
/// can be done in a wrapped `write` without the real one).
fn next(name: &CStr) -> *mut c_void {
    // SAFETY: `name` is a NUL-terminated string; RTLD_NEXT is a valid
    // pseudo-handle in a shared object.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if p.is_null() {
        std::process::abort();
    }
    p
}

fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| {
        // SAFETY: for each transmute, the symbol is libc's function of that
        // name, whose C signature is the target type; a function pointer
        // and a data pointer have the same size on the targets we run on.
        unsafe {
            Real {
                write: std::mem::transmute::<*mut c_void, WriteFn>(next(c"write")),
                pwrite64: std::mem::transmute::<*mut c_void, PwriteFn>(next(c"pwrite64")),
                fsync: std::mem::transmute::<*mut c_void, FdFn>(next(c"fsync")),
                fdatasync: std::mem::transmute::<*mut c_void, FdFn>(next(c"fdatasync")),
                ftruncate64: std::mem::transmute::<*mut c_void, TruncateFn>(next(c"ftruncate64")),
                close: std::mem::transmute::<*mut c_void, FdFn>(next(c"close")),
                sync: std::mem::transmute::<*mut c_void, SyncFn>(next(c"sync")),
            }
        }
    })
}

/// What a tracked fd holds back from the kernel.
#[derive(Default)]
struct Held {
    /// (offset, bytes) in write order: replayed in that order, so a later
    /// write over an earlier one wins, as in the kernel.
    writes: Vec<(u64, Vec<u8>)>,
    /// The file's size as the process sees it: its synced size, extended
    /// by what is held.
    end: u64,
}

#[derive(Default)]
struct State {
    /// Per fd: `None` if it is not under the directory, else what it holds.
    fds: HashMap<c_int, Option<Held>>,
}

/// The directory whose files are held, from `MATOU_FAULTFS_DIR`.
fn dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("MATOU_FAULTFS_DIR").map(PathBuf::from))
        .as_ref()
}

fn state() -> MutexGuard<'static, State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The held state of `fd`, deciding on first sight whether it is tracked.
fn held(st: &mut State, fd: c_int) -> Option<&mut Held> {
    let dir = dir()?;
    st.fds
        .entry(fd)
        .or_insert_with(|| {
            let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
            if !path.starts_with(dir) {
                return None;
            }
            // SAFETY: an all-zero `stat` is a valid value for fstat to fill.
            let mut sb: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `sb` is a valid, writable `stat`.
            let size = match unsafe { libc::fstat(fd, &mut sb) } {
                0 => sb.st_size as u64,
                _ => 0,
            };
            Some(Held {
                writes: Vec::new(),
                end: size,
            })
        })
        .as_mut()
}

fn is_append(fd: c_int) -> bool {
    // SAFETY: F_GETFL takes no argument and reads no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    flags >= 0 && flags & libc::O_APPEND != 0
}

/// Holds `bytes` written to `fd` at its offset (`at: None`) or at `at`.
fn hold(h: &mut Held, fd: c_int, bytes: &[u8], at: Option<u64>) {
    let off = match at {
        Some(at) => at,
        None if is_append(fd) => h.end,
        None => {
            // SAFETY: lseek reads no memory.
            let cur = unsafe { libc::lseek64(fd, 0, libc::SEEK_CUR) };
            let cur = cur.max(0) as u64;
            // SAFETY: as above; past the end of a file is allowed.
            unsafe { libc::lseek64(fd, (cur + bytes.len() as u64) as off64_t, libc::SEEK_SET) };
            cur
        }
    };
    h.end = h.end.max(off + bytes.len() as u64);
    h.writes.push((off, bytes.to_vec()));
}

/// Writes what `fd` holds through, at its offsets (`O_APPEND` cleared
/// meanwhile: Linux's `pwrite` ignores the offset on an append fd).
/// Returns -1 with errno set if a write fails (what is left stays held).
fn flush(h: &mut Held, fd: c_int) -> c_int {
    if h.writes.is_empty() {
        return 0;
    }
    let r = real();
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags >= 0 && flags & libc::O_APPEND != 0 {
        // SAFETY: F_SETFL takes an int of flags.
        unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_APPEND) };
    }
    let mut result = 0;
    let mut done = 0;
    'writes: for (off, bytes) in &h.writes {
        let mut at = 0;
        while at < bytes.len() {
            // SAFETY: the pointer and length describe `bytes[at..]`.
            let n = unsafe {
                (r.pwrite64)(
                    fd,
                    bytes[at..].as_ptr().cast(),
                    bytes.len() - at,
                    (*off + at as u64) as off64_t,
                )
            };
            if n < 0 {
                result = -1;
                break 'writes;
            }
            at += n as usize;
        }
        done += 1;
    }
    if flags >= 0 && flags & libc::O_APPEND != 0 {
        // SAFETY: restores the flags read above.
        unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    }
    h.writes.drain(..done);
    result
}

/// `write` on a tracked fd: held; otherwise the real one.
///
/// # Safety
/// libc's `write` contract: `buf` points to `count` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    let mut st = state();
    if let Some(h) = held(&mut st, fd) {
        // SAFETY: the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), count) };
        hold(h, fd, bytes, None);
        return count as ssize_t;
    }
    drop(st);
    // SAFETY: the caller's contract.
    unsafe { (real().write)(fd, buf, count) }
}

/// `writev`: gathered, then as [`write`].
///
/// # Safety
/// libc's `writev` contract: `iov` points to `iovcnt` valid `iovec`s.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    let n = usize::try_from(iovcnt).unwrap_or(0);
    // SAFETY: the caller's contract.
    let iovs = unsafe { std::slice::from_raw_parts(iov, n) };
    let mut all = Vec::new();
    for v in iovs {
        // SAFETY: each iovec describes readable memory (the contract).
        all.extend_from_slice(unsafe {
            std::slice::from_raw_parts(v.iov_base.cast::<u8>(), v.iov_len)
        });
    }
    // SAFETY: `all` is `all.len()` readable bytes.
    unsafe { write(fd, all.as_ptr().cast(), all.len()) }
}

/// `pwrite64` on a tracked fd: held at `offset`; otherwise the real one.
///
/// # Safety
/// libc's `pwrite` contract.
#[no_mangle]
pub unsafe extern "C" fn pwrite64(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    offset: off64_t,
) -> ssize_t {
    let mut st = state();
    if let Some(h) = held(&mut st, fd) {
        // SAFETY: the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), count) };
        hold(h, fd, bytes, Some(offset.max(0) as u64));
        return count as ssize_t;
    }
    drop(st);
    // SAFETY: the caller's contract.
    unsafe { (real().pwrite64)(fd, buf, count, offset) }
}

/// `pwrite`: as [`pwrite64`] (`off_t` is 64-bit on the targets we test).
///
/// # Safety
/// libc's `pwrite` contract.
#[no_mangle]
pub unsafe extern "C" fn pwrite(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    offset: off_t,
) -> ssize_t {
    // SAFETY: the caller's contract.
    unsafe { pwrite64(fd, buf, count, offset as off64_t) }
}

fn sync_with(fd: c_int, sync: unsafe extern "C" fn(c_int) -> c_int) -> c_int {
    let mut st = state();
    if let Some(h) = held(&mut st, fd) {
        if flush(h, fd) != 0 {
            return -1;
        }
    }
    drop(st);
    // SAFETY: fsync/fdatasync take an fd and read no memory.
    unsafe { sync(fd) }
}

/// `fsync`: writes what `fd` holds through, then syncs for real.
#[no_mangle]
pub extern "C" fn fsync(fd: c_int) -> c_int {
    sync_with(fd, real().fsync)
}

/// `fdatasync`: as [`fsync`].
#[no_mangle]
pub extern "C" fn fdatasync(fd: c_int) -> c_int {
    sync_with(fd, real().fdatasync)
}

/// `sync_file_range`: no durability is promised, so held bytes stay held.
#[no_mangle]
pub extern "C" fn sync_file_range(
    _fd: c_int,
    _offset: off64_t,
    _nbytes: off64_t,
    _flags: c_uint,
) -> c_int {
    0
}

/// `sync`: every tracked fd written through, then the real one.
#[no_mangle]
pub extern "C" fn sync() {
    let mut st = state();
    let fds: Vec<c_int> = st.fds.keys().copied().collect();
    for fd in fds {
        if let Some(Some(h)) = st.fds.get_mut(&fd) {
            flush(h, fd);
        }
    }
    drop(st);
    // SAFETY: sync takes nothing.
    unsafe { (real().sync)() }
}

/// `ftruncate64`: drops held bytes past `len`, then the real one.
#[no_mangle]
pub extern "C" fn ftruncate64(fd: c_int, len: off64_t) -> c_int {
    let mut st = state();
    if let Some(h) = held(&mut st, fd) {
        let len_u = len.max(0) as u64;
        h.writes.retain_mut(|(off, bytes)| {
            if *off >= len_u {
                return false;
            }
            bytes.truncate((len_u - *off).min(bytes.len() as u64) as usize);
            true
        });
        h.end = len_u;
    }
    drop(st);
    // SAFETY: ftruncate reads no memory.
    unsafe { (real().ftruncate64)(fd, len) }
}

/// `ftruncate`: as [`ftruncate64`].
#[no_mangle]
pub extern "C" fn ftruncate(fd: c_int, len: off_t) -> c_int {
    ftruncate64(fd, len as off64_t)
}

/// `close`: forgets the fd and what it still holds (see the module docs).
#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    if dir().is_some() {
        state().fds.remove(&fd);
    }
    // SAFETY: close reads no memory.
    unsafe { (real().close)(fd) }
}
