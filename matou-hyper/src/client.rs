//! [`MatouConnector`]: a `tower_service::Service<Uri>` that opens matou TCP
//! streams, for hyper-util's pooled `Client`.
//!
//! hyper-util wants the connect future `Send`; matou's `TcpStream::connect`
//! future is, so [`ConnectFuture`] only boxes it (moved to another worker
//! mid-connect, it re-registers there: see `matou::unix::net`).
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
            connecting: Box::pin(connect(uri, self.nodelay)),
        }
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<MatouIo<TcpStream>>> + Send>>;

/// The connect future of [`MatouConnector`]. Dropping it while it connects
/// closes the socket.
#[must_use = "futures do nothing unless polled"]
pub struct ConnectFuture {
    connecting: Connecting,
}

impl std::fmt::Debug for ConnectFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectFuture").finish_non_exhaustive()
    }
}

impl Future for ConnectFuture {
    type Output = io::Result<MatouIo<TcpStream>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.connecting.as_mut().poll(cx)
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
