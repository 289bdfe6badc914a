//! Bodies: reading a request body within the size limit and the request's
//! deadline, and building the JSON responses every route returns.
//!
//! Invariant: no more than `limit` bytes of a request body are ever buffered
//! (a declared length over it is refused before reading, an undeclared one is
//! cut off by `Limited` as soon as it passes).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use matou::unix::time::timeout_at;
use serde::Serialize;
use std::time::Instant;

/// The body type of every response.
pub(crate) type Body = Full<Bytes>;

/// A JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, "application/json", bytes.into()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("encoding: {e}")),
    }
}

/// A JSON error response, `{"error": message}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    let bytes = serde_json::to_vec(&serde_json::json!({ "error": message }))
        .expect("a string map always encodes");
    with_type(status, "application/json", bytes.into())
}

/// A response with a body and its content type.
pub(crate) fn with_type(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(CONTENT_TYPE, v);
    }
    response
}

/// Reads `body` whole, refusing more than `limit` bytes (`413`) and a body
/// still arriving at `deadline` (`408`); a broken body is `400`.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, Response<Body>> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body over {limit} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_elapsed) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "request body not received in time",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("reading the body: {e}"),
        )),
    }
}
