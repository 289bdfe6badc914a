//! hyper 1.x on matou.
//!
//! - [`MatouIo`]: hyper's `rt::Read`/`rt::Write` over matou's
//!   [`TcpStream`](matou::unix::net::TcpStream) and
//!   [`UnixStream`](matou::unix::net::UnixStream) (any futures-io stream);
//! - [`MatouExecutor`]: hyper's `rt::Executor`, spawning into a structured
//!   scope (an [`Orphans`](matou::Orphans) set) so nothing hyper starts
//!   outlives it;
//! - [`MatouTimer`]: hyper's `rt::Timer`, whose sleep is `Send + Sync`;
//! - [`serve`]: HTTP/1.1 and HTTP/2 on every worker with a graceful
//!   [`Shutdown`];
//! - [`MatouConnector`]: the connector of hyper-util's pooled client;
//! - `TokioCompat` (feature `tokio-io`): tokio's I/O traits over matou's
//!   streams, for tokio-io crates (codecs, tokio-rustls), and which
//!   tokio-bound crates cannot work on matou, and why.
//!
//! TLS needs nothing of this crate's: futures-rustls works on matou's
//! `TcpStream` as it is (and tokio-rustls through `TokioCompat`); wrap the
//! TLS stream in [`MatouIo`] for hyper. `examples/tls_echo.rs` and
//! `tests/tls.rs` (HTTPS, HTTP/1.1 and h2 by ALPN) show both.
//!
//! # Serving and requesting
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::{service::service_fn, Response};
//! use hyper_util::client::legacy::Client;
//! use matou::unix::net::TcpListener;
//! use matou_hyper::{serve, MatouConnector, MatouExecutor, MatouTimer, Shutdown};
//! use std::{convert::Infallible, time::Duration};
//!
//! matou::builder().extra_workers(1).run(async {
//!     let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
//!     let url = format!("http://{}/", listener.local_addr().unwrap());
//!     let hello = service_fn(|_req| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!     });
//!     let stop = Shutdown::new(Duration::from_secs(1));
//!     let server = matou::spawn(serve(listener, hello, stop.clone()));
//!
//!     let scope = matou::Orphans::new();
//!     let client: Client<_, Empty<Bytes>> = Client::builder(MatouExecutor::new(&scope).unwrap())
//!         .pool_timer(MatouTimer)
//!         .build(MatouConnector::new());
//!     let response = client.get(url.parse().unwrap()).await.unwrap();
//!     let body = response.into_body().collect().await.unwrap().to_bytes();
//!     assert_eq!(body, "hello");
//!
//!     drop(client); // its pooled connection's task ends with it
//!     scope.close();
//!     while scope.next().await.unwrap().is_some() {}
//!     stop.trigger();
//!     let report = server.await.unwrap().unwrap();
//!     assert_eq!(report.accepted, 1);
//! });
//! ```

mod client;
mod executor;
mod io;
mod server;
mod shutdown;
mod timer;
#[cfg(feature = "tokio-io")]
mod tokio_io;

pub use client::{ConnectFuture, MatouConnector};
pub use executor::{MatouExecutor, MatouLocalExecutor};
pub use io::MatouIo;
pub use server::{serve, ServeReport};
pub use shutdown::Shutdown;
pub use timer::{HyperSleep, MatouTimer};
#[cfg(feature = "tokio-io")]
pub use tokio_io::TokioCompat;

/// Compile-time checks that the adapters meet hyper's bounds: this fails to
/// build if one of them stops doing so.
#[allow(dead_code)]
fn _bounds_hold() {
    use hyper::rt::{Executor, Read, Sleep, Timer, Write};
    use matou::unix::net::{TcpStream, UnixStream};
    use std::future::Future;
    use std::pin::Pin;

    fn io<T: Read + Write + Unpin + Send + 'static>() {}
    io::<MatouIo<TcpStream>>();
    io::<MatouIo<UnixStream>>();

    fn timer<T: Timer + Send + Sync + Clone + 'static>() {}
    timer::<MatouTimer>();
    fn sleep<T: Sleep + Send + Sync + 'static>() {}
    sleep::<HyperSleep>();

    type Boxed = Pin<Box<dyn Future<Output = ()> + Send>>;
    fn exec<E: Executor<Boxed> + Clone + Send + Sync + 'static>() {}
    exec::<MatouExecutor>();
    type Local = Pin<Box<dyn Future<Output = ()>>>;
    fn local<E: Executor<Local> + Clone + 'static>() {}
    local::<MatouLocalExecutor>();

    fn connect<C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static>() {}
    connect::<MatouConnector>();
    fn send<T: Send + Sync + Clone>() {}
    send::<Shutdown>();
}
