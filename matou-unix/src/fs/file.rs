//! [`File`]: an open file whose reads, writes and seeks run on the blocking
//! pool, with `futures-io` `AsyncRead`, `AsyncWrite` and `AsyncSeek`.
//!
//! At most one operation is in flight per file. Its std file and buffer are
//! moved to the pool thread and come back with the result, so nothing is
//! shared with a running job. Writes are write-behind: `poll_write` copies
//! the bytes, starts the write and reports them accepted; the outcome is
//! reported by the next operation, `poll_flush` or `poll_close` (flush before
//! trusting that the data reached the kernel). A read the page cache can
//! answer is done at once on the worker, straight into the caller's buffer
//! (`RWF_NOWAIT`, see the `nowait` module: no trip to the pool, no copy);
//! other reads go to the pool and fetch up to [`MAX_BUF`] bytes at a time;
//! bytes read ahead of the caller stay in the buffer and a seek accounts
//! for them.
//!
//! Invariants:
//! - `State::Idle` holds the std file; `State::Busy` means a job owns it;
//! - in `Idle`, `buf[pos..filled]` are bytes read from the file but not yet
//!   returned (the kernel's offset is `filled - pos` ahead of the caller's);
//!   a write or seek first discards them, moving the offset back. `buf`
//!   keeps its length between reads, so a read job does not zero it again;
//! - a write's error is kept in `write_error` until an operation reports it.

use crate::blocking::{unblock, Unblock};
use futures_io::{AsyncRead, AsyncSeek, AsyncWrite};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The most bytes one read or write job moves.
pub const MAX_BUF: usize = 2 * 1024 * 1024;

enum Op {
    Read(io::Result<usize>),
    Write(io::Result<()>),
    /// A caller's seek (`AsyncSeek`).
    Seek(io::Result<u64>),
    /// Our own move back over read-ahead bytes.
    Rewind(io::Result<u64>),
}

type Job = Unblock<(std::fs::File, Vec<u8>, Op)>;

enum State {
    Idle(Option<(std::fs::File, Vec<u8>)>),
    Busy(Job),
}

/// An open file; see the module docs of `matou_unix::fs`.
///
/// Dropping it while a write is in flight lets the write finish on the pool,
/// then closes the file there; its error, if any, is lost (call
/// [`File::sync_all`] or flush first to see it).
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// # let dir = std::env::temp_dir().join(format!("matou-doc-file-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("hello.txt");
/// matou_unix::run(async move {
///     let mut f = matou_unix::fs::File::create(&path).await.unwrap();
///     f.write_all(b"hello").await.unwrap();
///     f.sync_all().await.unwrap();
///     let mut s = String::new();
///     matou_unix::fs::File::open(&path).await.unwrap().read_to_string(&mut s).await.unwrap();
///     assert_eq!(s, "hello");
/// });
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct File {
    state: State,
    /// Unread bytes of the last read are `buf[pos..filled]` (see the
    /// invariants).
    pos: usize,
    filled: usize,
    write_error: Option<io::Error>,
    /// The target of the caller's seek in flight, so that a seek polled
    /// again collects its own result and not that of an abandoned one.
    seeking: Option<SeekFrom>,
    /// Whether reads try the page cache on the worker first: cleared once
    /// the file says it cannot (a device, a write-only file, a file system
    /// without non-blocking reads).
    read_nowait: bool,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("File");
        if let State::Idle(Some((file, _))) = &self.state {
            d.field("std", file);
        }
        d.finish_non_exhaustive()
    }
}

impl File {
    /// Opens `path` read-only (`std::fs::File::open`).
    ///
    /// # Errors
    /// Those of std (e.g. `NotFound`).
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_path_buf();
        Ok(File::from_std(
            unblock(move || std::fs::File::open(path)).await?,
        ))
    }

    /// Creates or truncates `path` for writing (`std::fs::File::create`).
    ///
    /// # Errors
    /// Those of std (e.g. `PermissionDenied`).
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_path_buf();
        Ok(File::from_std(
            unblock(move || std::fs::File::create(path)).await?,
        ))
    }

    /// Opens `path` with std's options, e.g.
    /// `File::open_with(path, std::fs::OpenOptions::new().append(true).clone())`.
    ///
    /// # Errors
    /// Those of std.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: std::fs::OpenOptions,
    ) -> io::Result<File> {
        let path = path.as_ref().to_path_buf();
        Ok(File::from_std(unblock(move || options.open(path)).await?))
    }

    /// Adopts an open std file.
    pub fn from_std(file: std::fs::File) -> File {
        File {
            state: State::Idle(Some((file, Vec::new()))),
            pos: 0,
            filled: 0,
            write_error: None,
            seeking: None,
            read_nowait: true,
        }
    }

    /// Waits for the operation in flight, rewinds over read-ahead bytes and
    /// gives back the std file (positioned where this `File`'s reader was).
    ///
    /// # Errors
    /// A pending write's error, or the rewind's.
    pub async fn into_std(mut self) -> io::Result<std::fs::File> {
        self.idle().await?;
        match std::mem::replace(&mut self.state, State::Idle(None)) {
            State::Idle(Some((file, _))) => Ok(file),
            _ => unreachable!("idle() leaves the file idle"),
        }
    }

    /// Flushes, then runs `op` on the std file on the pool.
    async fn with_std<R: Send + 'static>(
        &mut self,
        op: impl FnOnce(&std::fs::File) -> io::Result<R> + Send + 'static,
    ) -> io::Result<R> {
        self.idle().await?;
        let State::Idle(slot) = &mut self.state else {
            unreachable!("idle() leaves the file idle")
        };
        let (file, buf) = slot.take().expect("an idle file has its std file");
        let (file, buf, r) = unblock(move || {
            let r = op(&file);
            (file, buf, r)
        })
        .await;
        self.state = State::Idle(Some((file, buf)));
        r
    }

    /// Waits until no operation is in flight and no byte is read ahead.
    async fn idle(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_idle(cx, true)).await
    }

    /// Writes the data written so far and the metadata to the disk
    /// (`fsync`). Cancel: the sync runs to completion anyway.
    ///
    /// # Errors
    /// A pending write's error, or the OS's.
    pub async fn sync_all(&mut self) -> io::Result<()> {
        self.with_std(|f| f.sync_all()).await
    }

    /// Like [`File::sync_all`] without the metadata not needed to read the
    /// data back (`fdatasync`).
    ///
    /// # Errors
    /// A pending write's error, or the OS's.
    pub async fn sync_data(&mut self) -> io::Result<()> {
        self.with_std(|f| f.sync_data()).await
    }

    /// Truncates or extends the file (`std::fs::File::set_len`).
    ///
    /// # Errors
    /// A pending write's error, or the OS's.
    pub async fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.with_std(move |f| f.set_len(len)).await
    }

    /// The file's metadata.
    ///
    /// # Errors
    /// A pending write's error, or the OS's.
    pub async fn metadata(&mut self) -> io::Result<std::fs::Metadata> {
        self.with_std(|f| f.metadata()).await
    }

    /// Drives the job in flight to completion, recording its outcome. With
    /// `rewind`, also discards read-ahead bytes (moving the offset back).
    /// `Ready(Err)` reports a write error once.
    fn poll_idle(&mut self, cx: &mut Context<'_>, rewind: bool) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Busy(job) => {
                    let (file, buf, op) = ready!(Pin::new(job).poll(cx));
                    self.state = State::Idle(Some((file, buf)));
                    self.seeking = None;
                    match op {
                        Op::Read(Ok(n)) => {
                            self.filled = n;
                            self.pos = 0;
                        }
                        Op::Read(Err(e)) | Op::Seek(Err(e)) | Op::Rewind(Err(e)) => {
                            self.clear_buf();
                            return Poll::Ready(Err(e));
                        }
                        Op::Write(Err(e)) => self.write_error = Some(e),
                        Op::Write(Ok(())) | Op::Seek(Ok(_)) | Op::Rewind(Ok(_)) => self.clear_buf(),
                    }
                }
                State::Idle(_) => {
                    if let Some(e) = self.write_error.take() {
                        return Poll::Ready(Err(e));
                    }
                    let ahead = self.ahead();
                    if !rewind || ahead == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    self.clear_buf();
                    let back = SeekFrom::Current(-(ahead as i64));
                    self.start(move |file, _| Op::Rewind(file.seek(back)));
                }
            }
        }
    }

    /// Reads what the page cache holds straight into `out`, on this thread;
    /// `None` when the pool must read (nothing cached, or such reads are not
    /// possible here: the pool then reports std's own outcome). Called idle,
    /// with no byte read ahead, so the kernel's offset is the caller's.
    fn read_cached(&mut self, out: &mut [u8]) -> Option<usize> {
        let State::Idle(Some((file, _))) = &self.state else {
            return None;
        };
        if !self.read_nowait {
            return None;
        }
        match crate::sys::read_nowait(file.as_fd(), out) {
            Ok(n) => Some(n),
            Err(e) => {
                if crate::sys::nowait_unsupported(&e) {
                    self.read_nowait = false;
                }
                None
            }
        }
    }

    fn ahead(&self) -> usize {
        self.filled - self.pos
    }

    fn clear_buf(&mut self) {
        self.filled = 0;
        self.pos = 0;
    }

    /// Starts `job` on the idle file (with its buffer).
    fn start(&mut self, job: impl FnOnce(&mut std::fs::File, &mut Vec<u8>) -> Op + Send + 'static) {
        let State::Idle(slot) = &mut self.state else {
            unreachable!("start() is called on an idle file")
        };
        let (mut file, mut buf) = slot.take().expect("an idle file has its std file");
        self.state = State::Busy(unblock(move || {
            let op = job(&mut file, &mut buf);
            (file, buf, op)
        }));
    }
}

impl AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            ready!(this.poll_idle(cx, false))?;
            let State::Idle(Some((_, buf))) = &this.state else {
                unreachable!("poll_idle leaves the file idle")
            };
            if this.pos < this.filled {
                let n = out.len().min(this.filled - this.pos);
                out[..n].copy_from_slice(&buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(n));
            }
            if out.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let want = out.len().min(MAX_BUF);
            if let Some(n) = this.read_cached(&mut out[..want]) {
                return Poll::Ready(Ok(n));
            }
            this.start(move |file, buf| {
                if buf.len() < want {
                    buf.resize(want, 0);
                }
                Op::Read(loop {
                    match file.read(&mut buf[..want]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        r => break r,
                    }
                })
            });
            ready!(this.poll_idle(cx, false))?;
            // A read of 0 bytes (end of file) comes back as an empty buffer.
            if this.ahead() == 0 {
                return Poll::Ready(Ok(0));
            }
        }
    }
}

impl AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_idle(cx, true))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = data.len().min(MAX_BUF);
        if let State::Idle(Some((_, buf))) = &mut this.state {
            buf.clear();
            buf.extend_from_slice(&data[..n]);
        }
        this.start(|file, buf| Op::Write(file.write_all(buf)));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_idle(cx, false)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_idle(cx, false)
    }
}

impl AsyncSeek for File {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        loop {
            if let State::Busy(job) = &mut this.state {
                if this.seeking == Some(pos) {
                    let (file, buf, op) = ready!(Pin::new(job).poll(cx));
                    this.state = State::Idle(Some((file, buf)));
                    this.seeking = None;
                    this.clear_buf();
                    match op {
                        Op::Seek(r) => return Poll::Ready(r),
                        _ => unreachable!("`seeking` is set only while a seek is in flight"),
                    }
                }
            }
            ready!(this.poll_idle(cx, false))?;
            // The caller's position is the kernel's minus the read-ahead.
            let target = match pos {
                SeekFrom::Current(d) => SeekFrom::Current(d - this.ahead() as i64),
                other => other,
            };
            this.clear_buf();
            this.start(move |file, _| Op::Seek(file.seek(target)));
            this.seeking = Some(pos);
        }
    }
}
