//! [`MatouConnector`]: a `tower_service::Service<Uri>` that opens matou TCP
//! streams, for hyper-util's pooled `Client`.
//!
//! hyper-util wants the connect future `Send`, while a matou socket's wait
//! is parked on the worker that polls it. The future is therefore made lazily
//! on its first poll and then bound to that thread ([`ConnectFuture`]): a poll
//! from another thread gets an error instead of touching it, and a drop from
//! another thread leaks the parked registration rather than reaching into
//! another worker (hyper polls and drops the connect future inside the
//! request's task, which matou never moves).
//!
//! Host names go to the Unix layer's `TcpStream::connect`, which resolves
//! them on the blocking pool and races the addresses (Happy Eyeballs,
//! RFC 8305), so the worker never blocks.

use crate::MatouIo;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use matou::unix::net::TcpStream;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};

/// Connects hyper-util's legacy `Client` over matou's [`TcpStream`]
/// (`http://` only: no TLS). Sets `TCP_NODELAY` when asked (on by default).
///
/// ```
/// use matou_hyper::{MatouConnector, MatouExecutor, MatouTimer};
/// use hyper_util::client::legacy::Client;
/// use http_body_util::Empty;
/// use bytes::Bytes;
///
/// matou::run(async {
///     let scope = matou::Orphans::new();
///     let client: Client<_, Empty<Bytes>> =
///         Client::builder(MatouExecutor::new(&scope).unwrap())
///             .timer(MatouTimer)
///             .pool_timer(MatouTimer)
///             .build(MatouConnector::new());
///     // ... client.get(uri).await ...
///     drop(client);
///     scope.close();
///     while scope.next().await.unwrap().is_some() {}
/// });
/// ```
#[derive(Clone, Debug)]
pub struct MatouConnector {
    nodelay: bool,
}

impl Default for MatouConnector {
    fn default() -> Self {
        MatouConnector { nodelay: true }
    }
}

impl MatouConnector {
    /// A connector with `TCP_NODELAY` on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to set `TCP_NODELAY` on new connections.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }
}

impl Connection for MatouIo<TcpStream> {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl tower_service::Service<Uri> for MatouConnector {
    type Response = MatouIo<TcpStream>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        ConnectFuture {
            state: State::Unstarted(uri, self.nodelay),
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<MatouIo<TcpStream>>>>>;

enum State {
    /// The request: the URI and whether to set `TCP_NODELAY`.
    Unstarted(Uri, bool),
    Running(ThreadId, Connecting),
    Done,
}

/// The connect future of [`MatouConnector`]: made on its first poll and bound
/// to that thread (see the module doc). Dropping it while it connects closes
/// the socket.
#[must_use = "futures do nothing unless polled"]
pub struct ConnectFuture {
    state: State,
}

impl std::fmt::Debug for ConnectFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectFuture").finish_non_exhaustive()
    }
}

// SAFETY: the `!Send` connect future is only polled and dropped on the thread
// recorded with it (`poll` checks; `Drop` forgets it elsewhere); what crosses
// threads before the first poll is the `Send` request (a `Uri` and a flag).
unsafe impl Send for ConnectFuture {}

impl Future for ConnectFuture {
    type Output = io::Result<MatouIo<TcpStream>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let here = thread::current().id();
        if let State::Unstarted(..) = self.state {
            let State::Unstarted(uri, nodelay) = std::mem::replace(&mut self.state, State::Done)
            else {
                unreachable!("checked above")
            };
            self.state = State::Running(here, Box::pin(connect(uri, nodelay)));
        }
        let result = match &mut self.state {
            State::Running(home, fut) if *home == here => match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            },
            State::Running(..) => return Poll::Ready(Err(io::Error::other(
                "a matou connect future was polled on another thread than the one it started on",
            ))),
            State::Unstarted(..) => unreachable!("started above"),
            State::Done => panic!("ConnectFuture polled after completion"),
        };
        self.state = State::Done;
        Poll::Ready(result)
    }
}

impl Drop for ConnectFuture {
    fn drop(&mut self) {
        if let State::Running(home, fut) = std::mem::replace(&mut self.state, State::Done) {
            if home == thread::current().id() {
                drop(fut);
            } else {
                std::mem::forget(fut);
            }
        }
    }
}

async fn connect(uri: Uri, nodelay: bool) -> io::Result<MatouIo<TcpStream>> {
    let (host, port) = authority(&uri)?;
    // An IPv6 literal comes bracketed.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let stream = match literal.parse::<IpAddr>() {
        Ok(ip) => TcpStream::connect(SocketAddr::new(ip, port)).await?,
        Err(_) => TcpStream::connect((host, port)).await?,
    };
    if nodelay {
        stream.set_nodelay(true)?;
    }
    Ok(MatouIo::new(stream))
}

/// `uri`'s host and port (80 by default); only `http` is spoken.
fn authority(uri: &Uri) -> io::Result<(&str, u16)> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{why}: {uri}"));
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(invalid("MatouConnector speaks plain http only")),
        None => return Err(invalid("the URI has no scheme")),
    }
    let host = uri.host().ok_or_else(|| invalid("the URI has no host"))?;
    Ok((host, uri.port_u16().unwrap_or(80)))
}
