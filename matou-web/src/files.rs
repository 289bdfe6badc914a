//! Static files: maps a URL path onto the static directory, refusing any path
//! that would leave it, and reads the file through matou's blocking pool.
//!
//! Invariant: a file is served only if its canonical path (symlinks resolved)
//! lies under the canonical static directory. `..` segments (also written
//! `%2e%2e`), backslashes and NUL bytes are refused before the file system is
//! asked, so a refusal does not depend on what exists; a symlink pointing out
//! of the directory is refused after resolution.

use crate::body::{error, with_type, Body};
use hyper::{Response, StatusCode};
use percent_encoding::percent_decode_str;
use std::io;
use std::path::{Path, PathBuf};

/// Why a path is not served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// It would leave the static directory (`403`).
    Outside,
    /// It is not valid (bad escape, not UTF-8: `400`).
    Malformed,
}

/// The path under `root` that `url_path` (the part after the route's prefix,
/// still percent-encoded) names, without touching the file system.
pub(crate) fn relative(root: &Path, url_path: &str) -> Result<PathBuf, Refusal> {
    let decoded = percent_decode_str(url_path)
        .decode_utf8()
        .map_err(|_| Refusal::Malformed)?;
    if decoded.contains(['\0', '\\']) {
        return Err(Refusal::Malformed);
    }
    let mut path = root.to_path_buf();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(Refusal::Outside),
            s => path.push(s),
        }
    }
    Ok(path)
}

/// Serves `url_path` from `root` (canonical).
pub(crate) async fn serve(root: &Path, url_path: &str) -> Response<Body> {
    let candidate = match relative(root, url_path) {
        Ok(p) => p,
        Err(Refusal::Outside) => return error(StatusCode::FORBIDDEN, "path leaves the site"),
        Err(Refusal::Malformed) => return error(StatusCode::BAD_REQUEST, "malformed path"),
    };
    let not_found = || error(StatusCode::NOT_FOUND, "no such file");
    let mut real = match resolve(root, candidate).await {
        Ok(Some(p)) => p,
        Ok(None) => return error(StatusCode::FORBIDDEN, "path leaves the site"),
        Err(_) => return not_found(),
    };
    if matou::unix::fs::metadata(&real)
        .await
        .is_ok_and(|m| m.is_dir())
    {
        real = match resolve(root, real.join("index.html")).await {
            Ok(Some(p)) => p,
            Ok(None) => return error(StatusCode::FORBIDDEN, "path leaves the site"),
            Err(_) => return not_found(),
        };
    }
    match matou::unix::fs::read(&real).await {
        Ok(bytes) => with_type(StatusCode::OK, content_type(&real), bytes.into()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => not_found(),
        // A directory without index.html, a file we may not read, ...
        Err(_) => not_found(),
    }
}

/// The canonical form of `path`, or `None` when it lies outside `root`.
async fn resolve(root: &Path, path: PathBuf) -> io::Result<Option<PathBuf>> {
    let real = matou::unix::fs::canonicalize(path).await?;
    Ok(real.starts_with(root).then_some(real))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_is_refused_however_it_is_spelled() {
        let root = Path::new("/srv/site");
        for bad in [
            "../etc/passwd",
            "a/../../x",
            "%2e%2e/x",
            "a/%2E%2E/%2e%2e/x",
            "..",
        ] {
            assert_eq!(relative(root, bad), Err(Refusal::Outside), "{bad}");
        }
        for bad in ["a%00b", "a\\..\\b", "%5c", "%ff"] {
            assert_eq!(relative(root, bad), Err(Refusal::Malformed), "{bad}");
        }
        assert_eq!(
            relative(root, "css//./site%20a.css").unwrap(),
            Path::new("/srv/site/css/site a.css")
        );
    }
}
