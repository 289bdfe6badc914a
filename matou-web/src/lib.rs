//! matou-web: matou's HTTP flagship, a small JSON and static-file service on
//! [`matou_hyper::serve`] that uses only matou's public API.
//!
//! Routes (every error is JSON, `{"error": "..."}`, with the status below):
//!
//! | route | does |
//! | --- | --- |
//! | `GET /health` | `{"status":"ok","in_flight":N}` (N counts this request) |
//! | `GET /api/notes` | every note, oldest first |
//! | `POST /api/notes` `{"text":"..."}` | stores a note: `201` and the note; bad JSON `400`; body over the limit `413` |
//! | `GET /api/notes/{id}` | one note, or `404` |
//! | `DELETE /api/notes/{id}` | `204`, or `404` |
//! | `GET /delay/{ms}` | answers after `ms` milliseconds (at most 60 s): for timeouts and shutdown drills |
//! | `GET /` and `GET /static/{path}` | files of the static directory (`index.html` for `/` and directories); a path leaving the directory `403` |
//!
//! Another method on a known path is `405` with an `Allow` header; an unknown
//! path `404`.
//!
//! Limits: a request body over [`Config::body_limit`] gets `413` (at once when
//! its `Content-Length` says so, otherwise as soon as the limit is passed);
//! each request has [`Config::request_timeout`]: a body still arriving then
//! gets `408`, a handler still running `503`. Shutdown is
//! [`matou_hyper::Shutdown`]'s: stop accepting, in-flight requests finish until
//! the grace period ends, then the rest are cancelled.
//!
//! ```
//! use matou::unix::net::TcpListener;
//! use matou_hyper::Shutdown;
//! use matou_web::Config;
//! use std::time::Duration;
//!
//! matou::builder().extra_workers(1).run(async {
//!     let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
//!     let stop = Shutdown::new(Duration::from_secs(5));
//!     let server = matou::spawn(matou_web::serve(listener, Config::default(), stop.clone()));
//!     // ... serve until a signal: here at once.
//!     stop.trigger();
//!     let report = server.await.unwrap().unwrap();
//!     assert_eq!(report.accepted, 0);
//! });
//! ```

mod app;
mod body;
mod files;
mod notes;

pub use app::{App, Config};

use matou::unix::net::TcpListener;
use matou_hyper::{ServeReport, Shutdown};
use std::io;

/// Serves the application configured by `config` on `listener` (on every
/// worker) until `shutdown` is triggered and the graceful shutdown is over.
///
/// # Errors
/// The static directory cannot be resolved, or [`matou_hyper::serve`]
/// failed (the listener could not be shared or accept failed for good).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> io::Result<ServeReport> {
    let app = App::new(config)?;
    matou_hyper::serve(listener, app, shutdown).await
}
