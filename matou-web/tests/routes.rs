//! Every route of matou-web served in-process and requested with ureq (a
//! real HTTP client, in std threads): health, the notes API, static files and
//! refused traversal, the 413 body limit, the 503 timeout (and the 408 one
//! with hyper's client, which reads an answer sent before its upload ends).

use bytes::Bytes;
use matou::unix::net::TcpListener;
use matou_hyper::{ServeReport, Shutdown};
use matou_web::Config;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The server on its own thread (a matou run with one extra worker).
struct Server {
    addr: SocketAddr,
    stop: Shutdown,
    thread: Option<JoinHandle<ServeReport>>,
}

impl Server {
    fn start(config: Config) -> Server {
        let stop = Shutdown::new(Duration::from_secs(2));
        let (tx, rx) = mpsc::channel();
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            matou::builder().extra_workers(1).run(async move {
                let listener = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                matou_web::serve(listener, config, s).await.unwrap()
            })
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts down and gives what `serve` reported.
    fn stop(mut self) -> ServeReport {
        self.stop.trigger();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test still ends its server.
        self.stop.trigger();
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

/// Status and body of a response, an error status included.
fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
    match r {
        Ok(resp) => (resp.status(), resp.into_string().unwrap()),
        Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[test]
fn health_answers_ok_with_the_requests_in_flight() {
    let server = Server::start(Config::default());
    let (status, body) = answer(agent().get(&server.url("/health")).call());
    assert_eq!(status, 200);
    assert_eq!(parse(&body), json!({"status": "ok", "in_flight": 1}));
    let (status, _) = answer(agent().post(&server.url("/health")).call());
    assert_eq!(status, 405);
    let (status, _) = answer(agent().get(&server.url("/nowhere")).call());
    assert_eq!(status, 404);
    let report = server.stop();
    assert_eq!(report.accepted, report.finished);
}

#[test]
fn notes_are_created_listed_fetched_and_deleted() {
    let server = Server::start(Config::default());
    let a = agent();
    let (status, body) = answer(
        a.post(&server.url("/api/notes"))
            .send_json(json!({"text": "first"})),
    );
    assert_eq!(status, 201, "{body}");
    let first = parse(&body);
    assert_eq!(first["text"], "first");
    let (_, body) = answer(
        a.post(&server.url("/api/notes"))
            .send_json(json!({"text": "second"})),
    );
    let second = parse(&body);
    assert_ne!(first["id"], second["id"]);

    let (status, body) = answer(a.get(&server.url("/api/notes")).call());
    assert_eq!(status, 200);
    assert_eq!(parse(&body), json!([first, second]));

    let one = server.url(&format!("/api/notes/{}", first["id"]));
    let (status, body) = answer(a.get(&one).call());
    assert_eq!((status, parse(&body)), (200, first.clone()));
    let (status, body) = answer(a.delete(&one).call());
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, _) = answer(a.get(&one).call());
    assert_eq!(status, 404);
    let (status, _) = answer(a.delete(&one).call());
    assert_eq!(status, 404);
    let (status, body) = answer(a.get(&server.url("/api/notes")).call());
    assert_eq!((status, parse(&body)), (200, json!([second])));

    // Bad input: a clear error, and the store is unchanged.
    let (status, body) = answer(
        a.post(&server.url("/api/notes"))
            .set("content-type", "application/json")
            .send_string("{not json"),
    );
    assert_eq!(status, 400);
    assert!(parse(&body)["error"]
        .as_str()
        .unwrap()
        .contains("invalid note"));
    let (status, _) = answer(
        a.post(&server.url("/api/notes"))
            .send_json(json!({"txt": 1})),
    );
    assert_eq!(status, 400);
    let (status, _) = answer(a.put(&server.url("/api/notes")).send_string("{}"));
    assert_eq!(status, 405);
    let (_, body) = answer(a.get(&server.url("/api/notes")).call());
    assert_eq!(parse(&body), json!([second]));
    server.stop();
}

#[test]
fn a_body_over_the_limit_is_413_declared_or_chunked() {
    let config = Config {
        body_limit: 1024,
        ..Config::default()
    };
    let server = Server::start(config);
    let a = agent();
    let text = "x".repeat(2000);
    let big = serde_json::to_vec(&json!({ "text": text })).unwrap();
    // With a Content-Length: refused before the body is read.
    let (status, body) = answer(a.post(&server.url("/api/notes")).send_bytes(&big));
    assert_eq!(status, 413);
    assert!(parse(&body)["error"].as_str().unwrap().contains("1024"));
    // Chunked (no declared length): cut off once past the limit.
    let (status, _) = answer(a.post(&server.url("/api/notes")).send(&big[..]));
    assert_eq!(status, 413);
    // Just under the limit is fine, and nothing was stored before.
    let ok = serde_json::to_vec(&json!({ "text": "y".repeat(1000) })).unwrap();
    assert!(ok.len() <= 1024);
    let (status, _) = answer(a.post(&server.url("/api/notes")).send(&ok[..]));
    assert_eq!(status, 201);
    let (_, body) = answer(a.get(&server.url("/api/notes")).call());
    assert_eq!(parse(&body).as_array().unwrap().len(), 1);
    server.stop();
}

#[test]
fn a_slow_handler_is_503_and_a_slow_body_408_at_the_request_timeout() {
    let config = Config {
        request_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let server = Server::start(config);
    let started = Instant::now();
    let (status, body) = answer(agent().get(&server.url("/delay/3000")).call());
    assert_eq!(status, 503, "{body}");
    assert!(started.elapsed() < Duration::from_millis(2500));
    // A handler within the time answers.
    let (status, body) = answer(agent().get(&server.url("/delay/10")).call());
    assert_eq!((status, parse(&body)), (200, json!({"delayed_ms": 10})));

    // A body that stalls after its first bytes: hyper's own HTTP/1 client,
    // because it reads a response that comes before its upload is done
    // (ureq, curl would block writing first).
    let started = Instant::now();
    let addr = server.addr;
    let status = std::thread::spawn(move || {
        matou::builder().extra_workers(0).run(async move {
            let tcp = matou::unix::net::TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(matou_hyper::MatouIo::new(tcp))
                    .await
                    .unwrap();
            let conn = matou::spawn(conn);
            let req = hyper::Request::post("/api/notes")
                .header("host", "matou-web")
                .header("content-type", "application/json")
                .body(StallingBody(Some(Bytes::from_static(b"{\"text\": \"slo"))))
                .unwrap();
            let status =
                matou::unix::time::timeout(Duration::from_secs(10), send.send_request(req))
                    .await
                    .expect("an answer before the upload ends")
                    .unwrap()
                    .status();
            drop(send);
            let _ = conn.cancel().await;
            status
        })
    })
    .join()
    .unwrap();
    assert_eq!(status, 408);
    assert!(started.elapsed() < Duration::from_millis(2500));
    let (_, body) = answer(agent().get(&server.url("/api/notes")).call());
    assert_eq!(parse(&body), json!([]));
    server.stop();
}

/// A request body whose first frame comes at once and whose rest never does.
struct StallingBody(Option<Bytes>);

impl hyper::body::Body for StallingBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(first) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(first)))),
            None => std::task::Poll::Pending,
        }
    }
}

/// A fresh directory under the target dir's temp area, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("matou-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn static_files_are_served_and_paths_out_of_the_directory_refused() {
    let tmp = TempDir::new("static");
    let site = tmp.0.join("site");
    std::fs::create_dir_all(site.join("css")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>matou</h1>").unwrap();
    std::fs::write(site.join("css/site.css"), "h1{}").unwrap();
    std::fs::write(tmp.0.join("secret.txt"), "do not serve").unwrap();
    std::os::unix::fs::symlink(tmp.0.join("secret.txt"), site.join("link.txt")).unwrap();
    let server = Server::start(Config {
        static_dir: Some(site.clone()),
        ..Config::default()
    });
    let a = agent();

    let resp = a.get(&server.url("/")).call().unwrap();
    assert_eq!(resp.content_type(), "text/html");
    assert_eq!(resp.into_string().unwrap(), "<h1>matou</h1>");
    let resp = a.get(&server.url("/static/css/site.css")).call().unwrap();
    assert_eq!(resp.content_type(), "text/css");
    assert_eq!(resp.into_string().unwrap(), "h1{}");
    let (status, body) = answer(a.get(&server.url("/static/")).call());
    assert_eq!((status, body.as_str()), (200, "<h1>matou</h1>"));
    let (status, _) = answer(a.get(&server.url("/static/missing.txt")).call());
    assert_eq!(status, 404);

    // The client normalises `..` and `%2e%2e` away, but not an escaped slash:
    // `..%2f` reaches the server, which decodes it and refuses.
    for path in [
        "/static/..%2fsecret.txt",
        "/static/css%2f..%2f..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
    ] {
        let (status, body) = answer(a.get(&server.url(path)).call());
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.contains("do not serve"));
    }
    // A symlink pointing out of the directory is refused too.
    let (status, body) = answer(a.get(&server.url("/static/link.txt")).call());
    assert_eq!(status, 403, "{body}");
    let (status, _) = answer(a.get(&server.url("/static/a%5c..%5csecret.txt")).call());
    assert_eq!(status, 400);
    server.stop();
}

#[test]
fn a_missing_static_directory_is_a_clear_error() {
    let err = matou_web::App::new(Config {
        static_dir: Some("/nonexistent/matou-web".into()),
        ..Config::default()
    })
    .err()
    .expect("a missing directory is refused");
    assert!(err.to_string().contains("/nonexistent/matou-web"), "{err}");
}
