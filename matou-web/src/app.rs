//! [`App`]: the service (routing, per-request deadline, in-flight count) and
//! its [`Config`].
//!
//! Invariants: every request gets exactly one response, built here (a
//! handler's failure is a status, never a dropped connection), and the
//! in-flight count is decremented when a request's future is dropped however
//! it ends (answered, timed out, or cancelled by the shutdown).

use crate::body::{error, json, read_limited, Body};
use crate::notes::{NewNote, Notes};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode};
use matou::unix::time::{sleep, timeout_at};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest `/delay/{ms}` accepted.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// How the service behaves.
///
/// ```
/// use matou_web::Config;
/// use std::time::Duration;
///
/// let config = Config {
///     static_dir: Some("./public".into()),
///     body_limit: 1 << 20,
///     request_timeout: Duration::from_secs(5),
/// };
/// assert_eq!(Config::default().body_limit, 64 * 1024);
/// # drop(config);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// The directory served at `/` and `/static/`; `None` serves no files.
    pub static_dir: Option<PathBuf>,
    /// The largest request body accepted, in bytes (default 64 KiB).
    pub body_limit: usize,
    /// How long a request may take, body included (default 10 s).
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            static_dir: None,
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(10),
        }
    }
}

struct Inner {
    config: Config,
    /// `config.static_dir`, canonical.
    root: Option<PathBuf>,
    notes: Notes,
    in_flight: AtomicUsize,
}

/// The application as a hyper service: give it to
/// [`matou_hyper::serve`] (or use [`crate::serve`]). Cheap to clone; clones
/// share the notes and the in-flight count. Dropping it drops nothing but a
/// reference.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl App {
    /// The application for `config`.
    ///
    /// # Errors
    /// The static directory does not exist or is not a directory.
    pub fn new(config: Config) -> io::Result<App> {
        let root = match &config.static_dir {
            Some(dir) => {
                let root = std::fs::canonicalize(dir).map_err(|e| {
                    io::Error::new(e.kind(), format!("static directory {}: {e}", dir.display()))
                })?;
                if !root.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("static directory {}: not a directory", dir.display()),
                    ));
                }
                Some(root)
            }
            None => None,
        };
        Ok(App {
            inner: Arc::new(Inner {
                config,
                root,
                notes: Notes::default(),
                in_flight: AtomicUsize::new(0),
            }),
        })
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight(Arc<Inner>);

impl InFlight {
    fn new(inner: Arc<Inner>) -> InFlight {
        inner.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(inner)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service<Request<Incoming>> for App {
    type Response = Response<Body>;
    type Error = Infallible;
    // Runs on the connection's worker: need not be `Send`.
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>>>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::new(self.inner.clone());
        Box::pin(async move {
            let inner = &guard.0;
            let deadline = Instant::now() + inner.config.request_timeout;
            // The body read inside has the same deadline and is polled first,
            // so a body still arriving is a 408, a slow handler a 503.
            let response = match timeout_at(deadline, route(inner, req, deadline)).await {
                Ok(r) => r,
                Err(_elapsed) => error(StatusCode::SERVICE_UNAVAILABLE, "request timed out"),
            };
            drop(guard);
            Ok(response)
        })
    }
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

async fn route(inner: &Inner, req: Request<Incoming>, deadline: Instant) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let method = &parts.method;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["health"] => match *method {
            Method::GET => json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "in_flight": inner.in_flight.load(Ordering::Relaxed),
                }),
            ),
            _ => not_allowed("GET"),
        },
        ["api", "notes"] => match *method {
            Method::GET => json(StatusCode::OK, &inner.notes.all()),
            Method::POST => {
                let bytes =
                    match read_limited(&parts.headers, body, inner.config.body_limit, deadline)
                        .await
                    {
                        Ok(b) => b,
                        Err(refused) => return refused,
                    };
                match serde_json::from_slice::<NewNote>(&bytes) {
                    Ok(new) => json(StatusCode::CREATED, &inner.notes.add(new)),
                    Err(e) => error(StatusCode::BAD_REQUEST, &format!("invalid note: {e}")),
                }
            }
            _ => not_allowed("GET, POST"),
        },
        ["api", "notes", id] => {
            let Ok(id) = id.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, "no such note");
            };
            match *method {
                Method::GET => match inner.notes.get(id) {
                    Some(note) => json(StatusCode::OK, &note),
                    None => error(StatusCode::NOT_FOUND, "no such note"),
                },
                Method::DELETE => {
                    if inner.notes.remove(id) {
                        let mut r = Response::new(Body::default());
                        *r.status_mut() = StatusCode::NO_CONTENT;
                        r
                    } else {
                        error(StatusCode::NOT_FOUND, "no such note")
                    }
                }
                _ => not_allowed("GET, DELETE"),
            }
        }
        ["delay", ms] => match (method, ms.parse::<u64>()) {
            (&Method::GET, Ok(ms)) if Duration::from_millis(ms) <= MAX_DELAY => {
                sleep(Duration::from_millis(ms)).await;
                json(StatusCode::OK, &serde_json::json!({ "delayed_ms": ms }))
            }
            (&Method::GET, _) => error(
                StatusCode::BAD_REQUEST,
                "delay: milliseconds, at most 60000",
            ),
            _ => not_allowed("GET"),
        },
        _ => match (&inner.root, path.strip_prefix("/static/"), path) {
            (Some(root), Some(rest), _) | (Some(root), None, rest @ "/") => match *method {
                Method::GET | Method::HEAD => crate::files::serve(root, rest).await,
                _ => not_allowed("GET, HEAD"),
            },
            _ => error(StatusCode::NOT_FOUND, "no such route"),
        },
    }
}
