//! hyper served and requested through matou-hyper: HTTP/1.1 and HTTP/2 with
//! hyper-util's pooled client (and curl, when installed), over TCP and a Unix
//! socket pair, and the graceful shutdown's three promises (in-flight
//! requests finish, new connections are refused, nothing outlives the run).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::client::legacy::Client;
use matou::unix::net::{TcpListener, TcpStream, UnixStream};
use matou::unix::time::{sleep, timeout};
use matou::{sync, Orphans};
use matou_hyper::{
    serve, MatouConnector, MatouExecutor, MatouIo, MatouTimer, ServeReport, Shutdown,
};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Workers for every test: dom0 plus two, so `serve` listens on two workers
/// besides the test's own task.
fn runtime() -> matou::Builder {
    matou::builder().extra_workers(2)
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Answers `/` with the protocol version it was asked in, `/slow` after
/// 300 ms (telling `entered` it started), `/hang` never.
async fn app(
    req: Request<Incoming>,
    entered: sync::Sender<&'static str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.uri().path() {
        "/slow" => {
            let _ = entered.try_send("slow");
            sleep(Duration::from_millis(300)).await;
            "slow done".to_owned()
        }
        "/hang" => {
            let _ = entered.try_send("hang");
            std::future::pending::<()>().await;
            unreachable!()
        }
        _ => format!("hello over {:?}", req.version()),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

type AppClient = Client<MatouConnector, Empty<Bytes>>;

/// A pooled client whose tasks live in `scope`; HTTP/2 only if `h2`.
fn client(scope: &Orphans<()>, h2: bool) -> AppClient {
    Client::builder(MatouExecutor::new(scope).unwrap())
        .timer(MatouTimer)
        .pool_timer(MatouTimer)
        .http2_only(h2)
        .build(MatouConnector::new())
}

/// Ends a client and collects every task it had spawned into `scope`.
async fn drain(client: AppClient, scope: Orphans<()>) {
    drop(client);
    scope.close();
    while let Some(r) = scope.next().await.unwrap() {
        r.unwrap();
    }
}

async fn get(client: &AppClient, url: &str) -> (StatusCode, Version, String) {
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    let (status, version) = (resp.status(), resp.version());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, version, String::from_utf8(body.to_vec()).unwrap())
}

/// Starts `serve` as a child task; returns it with the trigger and the
/// receiver of `entered` notes.
fn start(
    listener: TcpListener,
    grace: Duration,
) -> (
    matou::Promise<std::io::Result<ServeReport>>,
    Shutdown,
    sync::Receiver<&'static str>,
) {
    let (entered_tx, entered) = sync::channel(16);
    let service = service_fn(move |req| app(req, entered_tx.clone()));
    let stop = Shutdown::new(grace);
    let server = matou::spawn(serve(listener, service, stop.clone()));
    (server, stop, entered)
}

#[test]
fn http1_and_http2_through_the_pooled_client() {
    runtime().run(async {
        let (l, addr) = listener();
        let (server, stop, _entered) = start(l, Duration::from_secs(1));
        let url = format!("http://{addr}/");
        let scope = Orphans::new();
        for (h2, want) in [(false, Version::HTTP_11), (true, Version::HTTP_2)] {
            let c = client(&scope, h2);
            for _ in 0..3 {
                let (status, version, body) = get(&c, &url).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(version, want);
                assert_eq!(body, format!("hello over {want:?}"));
            }
            // Closing the client before the next round keeps the pool from
            // reusing its connection, so each round is one new connection.
            drain(c, Orphans::new()).await;
        }
        drain(client(&scope, false), scope).await;
        stop.trigger();
        let report = server.await.unwrap().unwrap();
        // One pooled connection per protocol, each reused for 3 requests.
        // Dropping the client hangs its HTTP/2 connection up, with or
        // without a GOAWAY depending on timing; hyper reports the latter as
        // that connection's error: either way it ended by itself.
        assert_eq!(report.accepted, 2, "{report:?}");
        assert!(report.finished >= 1, "{report:?}");
        assert_eq!(report.finished + report.failed, 2, "{report:?}");
        assert_eq!((report.cancelled, report.panicked), (0, 0), "{report:?}");
        assert_eq!(matou::live_tasks(), 1, "only the main task is left");
    });
}

#[test]
fn http2_streams_run_concurrently_on_one_connection() {
    runtime().run(async {
        let (l, addr) = listener();
        let (server, stop, _entered) = start(l, Duration::from_secs(1));
        let url = format!("http://{addr}/slow");
        let scope = Orphans::new();
        let c = client(&scope, true);
        let start = Instant::now();
        let (a, b) = matou::join!(get(&c, &url), get(&c, &url));
        assert_eq!((a.2.as_str(), b.2.as_str()), ("slow done", "slow done"));
        // Two 300 ms requests on one HTTP/2 connection, in parallel streams.
        assert!(
            start.elapsed() < Duration::from_millis(550),
            "{:?}",
            start.elapsed()
        );
        drain(c, scope).await;
        stop.trigger();
        let report = server.await.unwrap().unwrap();
        assert_eq!(report.accepted, 1, "{report:?}");
    });
}

/// Runs `curl` (Debian's) on a plain thread, so the worker does not block.
async fn curl(args: Vec<String>) -> std::process::Output {
    let (tx, rx) = sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::process::Command::new("curl").args(args).output());
    });
    rx.await.unwrap().expect("curl runs")
}

#[test]
fn curl_speaks_http1_and_http2_to_serve() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: curl is not installed (apt-get install curl)");
        return;
    }
    runtime().run(async {
        let (l, addr) = listener();
        let (server, stop, _entered) = start(l, Duration::from_secs(1));
        for (flag, want) in [
            ("--http1.1", "hello over HTTP/1.1"),
            ("--http2-prior-knowledge", "hello over HTTP/2.0"),
        ] {
            let out = curl(vec![
                "-sS".into(),
                "--max-time".into(),
                "5".into(),
                flag.into(),
                format!("http://{addr}/"),
            ])
            .await;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), want);
        }
        stop.trigger();
        let report = server.await.unwrap().unwrap();
        assert_eq!(report.accepted, 2, "{report:?}");
        // curl may hang up an HTTP/2 connection without a GOAWAY, which
        // hyper reports as that connection's error: either way it ended.
        assert_eq!(report.finished + report.failed, 2, "{report:?}");
        assert_eq!((report.cancelled, report.panicked), (0, 0), "{report:?}");
    });
}

#[test]
fn graceful_shutdown_finishes_in_flight_and_refuses_new_connections() {
    runtime().run(async {
        let (l, addr) = listener();
        let (server, stop, entered) = start(l, Duration::from_secs(5));
        let scope = Orphans::new();
        let c = client(&scope, false);
        let url = format!("http://{addr}/slow");
        let in_flight = {
            let c = c.clone();
            matou::spawn(async move { get(&c, &url).await })
        };
        assert_eq!(entered.recv().await, Some("slow"));
        let triggered = Instant::now();
        stop.trigger();

        // New connections are refused once every worker dropped its listener.
        // (The request in flight takes 300 ms: the refusal must come first.)
        let refused = timeout(Duration::from_millis(200), async {
            loop {
                match TcpStream::connect(addr).await {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                    _ => sleep(Duration::from_millis(5)).await,
                }
            }
        })
        .await;
        assert!(refused.is_ok(), "connections still accepted after shutdown");
        assert!(!in_flight.is_finished(), "refused only after the drain");

        // The request in flight finishes, well before the 5 s deadline.
        let (status, _, body) = in_flight.await.unwrap();
        assert_eq!((status, body.as_str()), (StatusCode::OK, "slow done"));
        let report = server.await.unwrap().unwrap();
        assert!(triggered.elapsed() < Duration::from_secs(2));
        // A probe above may have been accepted before the listeners were
        // dropped; it hangs up before sending a request, which hyper-util's
        // protocol detection reports as that connection's error. Either way
        // every connection ended by itself: none was cut off.
        assert!(report.finished >= 1, "{report:?}");
        assert_eq!(
            report.finished + report.failed,
            report.accepted,
            "{report:?}"
        );
        assert_eq!((report.cancelled, report.panicked), (0, 0), "{report:?}");
        drain(c, scope).await;
        assert_eq!(matou::live_tasks(), 1, "only the main task is left");
    });
}

#[test]
fn shutdown_cancels_what_outlives_the_grace_period() {
    runtime().run(async {
        let (l, addr) = listener();
        let (server, stop, entered) = start(l, Duration::from_millis(100));
        let scope = Orphans::new();
        for h2 in [false, true] {
            let c = client(&scope, h2);
            let url = format!("http://{addr}/hang");
            scope
                .spawn(async move {
                    // The server cancels the connection: the request fails.
                    assert!(c.get(url.parse().unwrap()).await.is_err());
                })
                .unwrap();
            assert_eq!(entered.recv().await, Some("hang"));
        }
        let triggered = Instant::now();
        stop.trigger();
        let report = server.await.unwrap().unwrap();
        let took = triggered.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert_eq!(report.accepted, 2, "{report:?}");
        assert_eq!(report.cancelled, 2, "{report:?}");
        scope.close();
        while let Some(r) = scope.next().await.unwrap() {
            r.unwrap();
        }
        assert_eq!(matou::live_tasks(), 1, "only the main task is left");
    });
}

#[test]
fn http1_over_a_unix_socket_pair() {
    runtime().run(async {
        let (server_end, client_end) = UnixStream::pair().unwrap();
        let conn = matou::spawn(async move {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(
                    MatouIo::new(server_end),
                    service_fn(|req: Request<Incoming>| async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        Ok::<_, Infallible>(Response::new(Full::new(body)))
                    }),
                )
                .await
        });
        let (mut sender, driver) = hyper::client::conn::http1::handshake(MatouIo::new(client_end))
            .await
            .unwrap();
        let driver = matou::spawn(driver);
        let req = Request::post("/echo")
            .body(Full::new(Bytes::from("ping")))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ping");
        drop(sender); // the client closes; both ends finish
        driver.await.unwrap().unwrap();
        conn.await.unwrap().unwrap();
    });
}

/// One blocking HTTP/1.1 GET from a plain thread (not a matou worker, so a
/// worker the service blocks cannot hold it up); the response's body.
fn blocking_get(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
}

#[test]
fn a_plain_listener_is_served_on_every_worker_and_keeps_its_port_exclusive() {
    runtime().run(async {
        // No SO_REUSEPORT: the workers share duplicates of this one socket.
        let l = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
        let addr = l.local_addr().unwrap();
        // Answers the worker it runs on, after blocking that worker for a
        // while, so that connections arriving meanwhile go to the others.
        let service = service_fn(|_req: Request<Incoming>| async {
            std::thread::sleep(Duration::from_millis(50));
            let me = matou::current_worker().index();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(me.to_string()))))
        });
        let stop = Shutdown::new(Duration::from_secs(1));
        let server = matou::spawn(serve(l, service, stop.clone()));
        // The port stays exclusive, even to a socket asking for SO_REUSEPORT.
        let second = TcpListener::options().reuse_port(true).bind(addr);
        assert_eq!(second.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
        let served = std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            // Rounds of concurrent requests until each of the 3 workers
            // (dom0 and the two extra) answered one, at most 20 rounds.
            for _ in 0..20 {
                let round: Vec<_> = (0..6)
                    .map(|_| std::thread::spawn(move || blocking_get(addr)))
                    .collect();
                seen.extend(round.into_iter().map(|t| t.join().unwrap()));
                if seen.len() == 3 {
                    break;
                }
            }
            seen
        });
        while !served.is_finished() {
            sleep(Duration::from_millis(10)).await;
        }
        let seen = served.join().unwrap();
        assert_eq!(seen.len(), 3, "workers that answered: {seen:?}");
        stop.trigger();
        server.await.unwrap().unwrap();
        assert_eq!(matou::live_tasks(), 1, "only the main task is left");
    });
}

#[test]
fn the_connector_resolves_host_names_and_refuses_https_clearly() {
    runtime().run(async {
        let (l, addr) = listener();
        let (server, stop, _entered) = start(l, Duration::from_secs(1));
        let scope = Orphans::new();
        let c = client(&scope, false);
        // `localhost` goes through the resolver (maybe `::1` first, which
        // refuses: the next address is tried).
        let (status, _, body) = get(&c, &format!("http://localhost:{}/", addr.port())).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "hello over HTTP/1.1")
        );
        let err = c
            .get(
                format!("https://127.0.0.1:{}/", addr.port())
                    .parse()
                    .unwrap(),
            )
            .await
            .unwrap_err();
        let why = std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default();
        assert!(why.contains("plain http only"), "{err:?}");
        drain(c, scope).await;
        stop.trigger();
        server.await.unwrap().unwrap();
    });
}

/// Connections are spread over the workers' accept loops: a loop holding
/// more than one connection above another lets the others accept first, so
/// the worker that happens to be awake does not take a whole burst (each
/// connection stays on the worker that accepted it).
#[test]
fn keep_alive_connections_are_spread_over_the_workers() {
    runtime().run(async {
        let (l, addr) = listener();
        let service = service_fn(|_req: Request<Incoming>| async {
            let me = matou::current_worker().index();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(me.to_string()))))
        });
        let stop = Shutdown::new(Duration::from_secs(1));
        let server = matou::spawn(serve(l, service, stop.clone()));
        const CONNECTIONS: usize = 36;
        let clients = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut open = Vec::new();
            let mut per_worker = std::collections::BTreeMap::<String, usize>::new();
            // One after another, each kept open (keep-alive) after its
            // answer, as a pool of clients connecting in a burst.
            for _ in 0..CONNECTIONS {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
                let mut got = Vec::new();
                let mut b = [0u8; 512];
                let body = loop {
                    let n = s.read(&mut b).unwrap();
                    assert!(n > 0, "closed early");
                    got.extend_from_slice(&b[..n]);
                    let text = String::from_utf8_lossy(&got).into_owned();
                    if let Some((_, body)) = text.split_once("\r\n\r\n") {
                        if !body.is_empty() {
                            break body.to_owned();
                        }
                    }
                };
                *per_worker.entry(body).or_default() += 1;
                open.push(s);
            }
            per_worker
        });
        while !clients.is_finished() {
            sleep(Duration::from_millis(10)).await;
        }
        let per_worker = clients.join().unwrap();
        let counts: Vec<usize> = per_worker.values().copied().collect();
        assert_eq!(counts.len(), 3, "workers that accepted: {per_worker:?}");
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(max - min <= 6, "connections per worker: {per_worker:?}");
        stop.trigger();
        server.await.unwrap().unwrap();
    });
}
