//! matou's Unix layer (Miou's `Miou_unix`), built on matou-core's public seam
//! only.
//!
//! - [`run`] / [`builder`]: a matou run whose every worker owns an epoll
//!   [`EpollSource`] (a per-worker reactor: epoll, an eventfd interrupter,
//!   timers). Tasks park on it with `syscall` + `suspend`; its `select` turns
//!   readiness and expired timers into `Signal`s. Each reactor runs on
//!   epoll or, with [`builder_on`]`(`[`Backend::Uring`]`)` or
//!   `MATOU_EVENT_SOURCE=uring`, on io_uring (falling back to epoll where
//!   io_uring is unavailable).
//! - [`time`]: `sleep`, `sleep_until`, `timeout`, `interval`.
//! - [`net`]: TCP, UDP and Unix-domain sockets, IPv4 and IPv6, with
//!   `futures-io` `AsyncRead`/`AsyncWrite` on the streams.
//! - [`signal`]: any catchable signal as a stream of deliveries; SIGINT and
//!   SIGTERM shortcuts.
//! - [`blocking`]: blocking closures on a thread pool ([`blocking::unblock`]).
//! - [`fs`]: files and directories, on the blocking pool.
//! - [`fd`]: [`fd::AsyncFd`], readiness of any descriptor.
//! - [`process`]: child processes with async pipes and `wait`.
//! - [`echo`]: the echo server of seed 002, reusable in-process.
//!
//! Layout: `sys` is the only module that calls the OS (through `rustix`),
//! besides `reactor::uring`, the io_uring poller (through `io-uring`);
//! `reactor` owns the per-worker state; the public modules are thin over both.
//!
//! ```
//! use matou_unix::net::{TcpListener, TcpStream};
//!
//! let echoed = matou_unix::builder().extra_workers(0).run(async {
//!     let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let server = matou_core::spawn(async move {
//!         let (s, _) = listener.accept().await.unwrap();
//!         let mut buf = [0; 5];
//!         s.read_exact(&mut buf).await.unwrap();
//!         s.write_all(&buf).await.unwrap();
//!     });
//!     let c = TcpStream::connect(addr).await.unwrap();
//!     c.write_all(b"hello").await.unwrap();
//!     let mut buf = [0; 5];
//!     c.read_exact(&mut buf).await.unwrap();
//!     server.await.unwrap();
//!     buf
//! });
//! assert_eq!(&echoed, b"hello");
//! ```

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod blocking;
pub mod echo;
pub mod fd;
pub mod fs;
pub mod net;
pub mod process;
mod reactor;
pub mod signal;
mod sys;
pub mod time;

pub use reactor::{reactor_backend, reactor_stats, Backend, EpollSource, ReactorStats};

use blocking::BlockingPool;
use std::future::Future;

/// A [`matou_core::Builder`] whose every worker gets an [`EpollSource`];
/// configure the rest (e.g. `extra_workers`) as usual.
///
/// # Panics
/// The run panics at start if a worker cannot create its epoll instance (e.g.
/// out of file descriptors).
pub fn builder() -> matou_core::Builder {
    with_pool(BlockingPool::global().clone(), None)
}

/// [`builder`] on `backend` whatever `MATOU_EVENT_SOURCE` says: every
/// worker's reactor runs on epoll or io_uring (falling back to epoll, with
/// the reason logged once, where io_uring is unavailable).
///
/// ```
/// use matou_unix::Backend;
///
/// let v = matou_unix::builder_on(Backend::Uring).run(async {
///     matou_unix::time::sleep(std::time::Duration::from_millis(1)).await;
///     7
/// });
/// assert_eq!(v, 7);
/// ```
pub fn builder_on(backend: Backend) -> matou_core::Builder {
    with_pool(BlockingPool::global().clone(), Some(backend))
}

/// [`builder`] whose run has its own blocking pool (for
/// [`blocking::unblock`], [`fs`], ...) configured by `pool`, instead of the
/// process-wide default one.
///
/// ```
/// use matou_unix::blocking::{unblock, PoolConfig};
///
/// let v = matou_unix::builder_with(PoolConfig::default().max_threads(4))
///     .run(async { unblock(|| 6 * 7).await });
/// assert_eq!(v, 42);
/// ```
pub fn builder_with(pool: blocking::PoolConfig) -> matou_core::Builder {
    with_pool(BlockingPool::new(pool), None)
}

/// The run's builder; `backend: None` reads `MATOU_EVENT_SOURCE` on each
/// worker ([`Backend::from_env`]).
fn with_pool(pool: BlockingPool, backend: Option<Backend>) -> matou_core::Builder {
    matou_core::Builder::new().event_source(move |worker| {
        pool.install();
        let backend = backend.unwrap_or_else(Backend::from_env);
        let source = EpollSource::with_backend(backend).unwrap_or_else(|e| {
            panic!(
                "matou-unix: worker {}: cannot create the epoll event source: {e}",
                worker.index()
            )
        });
        Box::new(source)
    })
}

/// Runs `future` with [`builder`]'s defaults and returns its value.
///
/// # Panics
/// See [`matou_core::Builder::run`].
#[track_caller]
pub fn run<F: Future + 'static>(future: F) -> F::Output {
    builder().run(future)
}
