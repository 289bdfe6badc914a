//! TLS over matou's TcpStream with rustls (ring provider), certificates made
//! at test time by rcgen: futures-rustls directly on the futures-io stream,
//! tokio-rustls through `TokioCompat` (feature `tokio-io`), an untrusted or
//! misnamed certificate refused on both sides, and HTTPS with hyper.

use bytes::Bytes;
use futures_rustls::{TlsAcceptor, TlsConnector};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::Response;
use matou::unix::net::{TcpListener, TcpStream};
use matou::unix::time::timeout;
use matou_hyper::MatouIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// No test may hang on a handshake that went wrong.
const LIMIT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate for `localhost` and its key.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn identity() -> Identity {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Identity {
        cert: made.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
    }
}

fn server_config(id: &Identity, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![id.cert.clone()],
            PrivateKeyDer::Pkcs8(id.key.clone_key()),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client trusting `trusted` only.
fn client_config(trusted: &Identity, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.cert.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// The rustls error inside a failed handshake's `io::Error`.
fn rustls_error(e: &io::Error) -> &rustls::Error {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .unwrap_or_else(|| panic!("not a TLS error: {e:?}"))
}

/// Echoes every message back upper-cased until the client closes; returns
/// how many bytes it echoed.
async fn upper_echo<S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin>(
    mut tls: S,
) -> usize {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = tls.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        tls.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
        tls.flush().await.unwrap();
    }
    tls.close().await.unwrap();
    total
}

#[test]
fn futures_rustls_handshake_and_echo_both_ways() {
    matou::builder().extra_workers(0).run(async {
        let id = identity();
        let (listener, addr) = listener();
        let acceptor = TlsAcceptor::from(server_config(&id, &[]));
        let server = matou::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = acceptor.accept(tcp).await.unwrap();
            let (_, session) = tls.get_ref();
            assert_eq!(session.server_name(), Some("localhost"));
            upper_echo(tls).await
        });
        let connector = TlsConnector::from(client_config(&id, &[]));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = timeout(LIMIT, connector.connect(localhost(), tcp))
            .await
            .unwrap()
            .unwrap();
        // Large enough to span several TLS records each way.
        let big = vec![b'x'; 100_000];
        let mut sent = 0;
        for msg in [&b"hello over tls"[..], &big] {
            tls.write_all(msg).await.unwrap();
            let mut back = vec![0; msg.len()];
            timeout(LIMIT, tls.read_exact(&mut back))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(back, msg.to_ascii_uppercase());
            sent += msg.len();
        }
        tls.close().await.unwrap();
        // The server's close_notify ends our stream cleanly.
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert_eq!(server.await.unwrap(), sent);
    });
}

#[test]
fn an_untrusted_certificate_fails_the_handshake_on_both_sides() {
    matou::builder().extra_workers(0).run(async {
        let (server_id, other) = (identity(), identity());
        let (listener, addr) = listener();
        let acceptor = TlsAcceptor::from(server_config(&server_id, &[]));
        let server = matou::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.map(|_| ())
        });
        // The client trusts another certificate than the server's.
        let connector = TlsConnector::from(client_config(&other, &[]));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let err = timeout(LIMIT, connector.connect(localhost(), tcp))
            .await
            .unwrap()
            .unwrap_err();
        // rcgen gives both certificates the same issuer name, so the chain
        // is built to the trusted one and fails on its signature (a
        // different issuer name would be UnknownIssuer): either way, refused.
        assert!(
            matches!(
                rustls_error(&err),
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                        | rustls::CertificateError::BadSignature
                )
            ),
            "{err:?}"
        );
        // The client's alert reaches the server, whose handshake fails too.
        let server_err = server.await.unwrap().unwrap_err();
        assert!(
            matches!(
                rustls_error(&server_err),
                rustls::Error::AlertReceived(
                    rustls::AlertDescription::UnknownCA | rustls::AlertDescription::DecryptError
                )
            ),
            "{server_err:?}"
        );
    });
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    matou::builder().extra_workers(0).run(async {
        let id = identity();
        let (listener, addr) = listener();
        let acceptor = TlsAcceptor::from(server_config(&id, &[]));
        let server = matou::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.map(|_| ())
        });
        let connector = TlsConnector::from(client_config(&id, &[]));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("elsewhere.example").unwrap();
        let err = timeout(LIMIT, connector.connect(name, tcp))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(
                rustls_error(&err),
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{err:?}"
        );
        assert!(server.await.unwrap().is_err());
    });
}

#[test]
fn https_with_hyper_over_futures_rustls_http1_and_h2_by_alpn() {
    matou::builder().extra_workers(0).run(async {
        let id = identity();
        let (listener, addr) = listener();
        let acceptor = TlsAcceptor::from(server_config(&id, &[b"h2", b"http/1.1"]));
        let scope = matou::Orphans::<()>::new();
        let exec = matou_hyper::MatouLocalExecutor::new(&scope).unwrap();
        let server = matou::spawn(async move {
            let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let body = format!("secure {:?} {}", req.version(), req.uri().path());
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
            });
            // One connection per protocol; hyper-util tells them apart.
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let tls = acceptor.accept(tcp).await.unwrap();
                hyper_util::server::conn::auto::Builder::new(exec.clone())
                    .serve_connection(MatouIo::new(tls), service)
                    .await
                    .unwrap();
            }
        });

        // HTTP/1.1, chosen by ALPN.
        let connector = TlsConnector::from(client_config(&id, &[b"http/1.1"]));
        let tls = connector
            .connect(localhost(), TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let (mut send, conn) = hyper::client::conn::http1::handshake(MatouIo::new(tls))
            .await
            .unwrap();
        let conn = matou::spawn(conn);
        let req = hyper::Request::get("https://localhost/one")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = timeout(LIMIT, send.send_request(req))
            .await
            .unwrap()
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "secure HTTP/1.1 /one");
        drop(send);
        conn.await.unwrap().unwrap();

        // HTTP/2, chosen by ALPN.
        let connector = TlsConnector::from(client_config(&id, &[b"h2"]));
        let tls = connector
            .connect(localhost(), TcpStream::connect(addr).await.unwrap())
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let client_scope = matou::Orphans::<()>::new();
        let client_exec = matou_hyper::MatouLocalExecutor::new(&client_scope).unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(client_exec, MatouIo::new(tls))
                .await
                .unwrap();
        let conn = matou::spawn(conn);
        let req = hyper::Request::get("https://localhost/two")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = timeout(LIMIT, send.send_request(req))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "secure HTTP/2.0 /two");
        drop(send);
        conn.await.unwrap().unwrap();
        client_scope.close();
        while let Some(r) = client_scope.next().await.unwrap() {
            r.unwrap();
        }

        server.await.unwrap();
        scope.close();
        while let Some(r) = scope.next().await.unwrap() {
            r.unwrap();
        }
    });
}

/// tokio-rustls, a tokio-io crate, through the compat layer: a tokio-rustls
/// client against a futures-rustls server, then the other way round.
#[cfg(feature = "tokio-io")]
#[test]
fn tokio_rustls_through_tokio_compat_both_ways() {
    use matou_hyper::TokioCompat;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    matou::builder().extra_workers(0).run(async {
        let id = identity();

        // tokio-rustls client, futures-rustls server.
        let (l, addr) = listener();
        let acceptor = TlsAcceptor::from(server_config(&id, &[]));
        let server = matou::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            upper_echo(acceptor.accept(tcp).await.unwrap()).await
        });
        let connector = tokio_rustls::TlsConnector::from(client_config(&id, &[]));
        let tcp = TokioCompat::new(TcpStream::connect(addr).await.unwrap());
        let mut tls = timeout(LIMIT, connector.connect(localhost(), tcp))
            .await
            .unwrap()
            .unwrap();
        tls.write_all(b"tokio side").await.unwrap();
        let mut back = [0; 10];
        tls.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"TOKIO SIDE");
        tls.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert_eq!(server.await.unwrap(), 10);

        // tokio-rustls server, futures-rustls client.
        let (l, addr) = listener();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&id, &[]));
        let server = matou::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let mut tls = acceptor.accept(TokioCompat::new(tcp)).await.unwrap();
            let mut got = Vec::new();
            tls.read_to_end(&mut got).await.unwrap();
            tls.write_all(&got.to_ascii_uppercase()).await.unwrap();
            tls.shutdown().await.unwrap();
            got.len()
        });
        let connector = TlsConnector::from(client_config(&id, &[]));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = timeout(LIMIT, connector.connect(localhost(), tcp))
            .await
            .unwrap()
            .unwrap();
        tls.write_all(b"futures side").await.unwrap();
        // close_notify ends the server's read_to_end; then it answers.
        tls.close().await.unwrap();
        let mut back = Vec::new();
        timeout(LIMIT, tls.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, b"FUTURES SIDE");
        assert_eq!(server.await.unwrap(), 12);
    });
}
