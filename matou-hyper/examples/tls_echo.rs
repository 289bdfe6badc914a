//! A TLS echo server and client on matou with futures-rustls (ring provider)
//! over matou's `TcpStream`, with a certificate for `localhost` made at start
//! by rcgen and trusted by the client alone.
//!
//! ```text
//! cargo run -p matou-hyper --example tls_echo -- hello "over TLS"
//! ```
//!
//! The server echoes each connection's bytes until the client closes; the
//! client sends each argument, reads the echo and prints it, then closes
//! (TLS close_notify). Each connection is a task of the server's `Orphans`
//! set, collected as it finishes and drained before the server returns.

use futures_rustls::{TlsAcceptor, TlsConnector};
use futures_util::{AsyncReadExt, AsyncWriteExt};
use matou::unix::net::{TcpListener, TcpStream};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::sync::Arc;

/// The server's and the client's TLS settings, around one fresh certificate.
fn configs() -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), Box<dyn std::error::Error>> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert: CertificateDer<'static> = made.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    // The provider is named rather than installed process-wide.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key))?;
    let mut roots = RootCertStore::empty();
    roots.add(cert)?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(server), Arc::new(client)))
}

/// Echoes one TLS connection until the peer closes.
async fn echo(acceptor: TlsAcceptor, tcp: TcpStream) -> io::Result<u64> {
    let mut tls = acceptor.accept(tcp).await?;
    let mut buf = vec![0; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = tls.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        tls.write_all(&buf[..n]).await?;
        tls.flush().await?;
        total += n as u64;
    }
    tls.close().await?;
    Ok(total)
}

/// Serves `connections` TLS echo connections on `listener`, then returns the
/// bytes echoed per connection (a failed one is its error, the others go on).
async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    connections: usize,
) -> Vec<io::Result<u64>> {
    let scope = matou::Orphans::new();
    for _ in 0..connections {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let acceptor = acceptor.clone();
                if let Err(e) = scope.spawn(echo(acceptor, tcp)) {
                    eprintln!("cannot start a connection: {e}");
                }
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    scope.close();
    let mut results = Vec::new();
    while let Some(done) = scope.next().await.expect("the scope's owner drains it") {
        results.push(done.unwrap_or_else(|_| Err(io::Error::other("connection panicked"))));
    }
    results
}

/// Sends each message over one TLS connection to `addr` and returns the echoes.
async fn client(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
    messages: &[String],
) -> io::Result<Vec<String>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
    let mut echoes = Vec::new();
    for msg in messages {
        tls.write_all(msg.as_bytes()).await?;
        let mut back = vec![0; msg.len()];
        tls.read_exact(&mut back).await?;
        echoes.push(String::from_utf8(back).map_err(io::Error::other)?);
    }
    tls.close().await?;
    Ok(echoes)
}

/// The whole demo: a server for one connection and a client sending `messages`.
fn demo(messages: Vec<String>) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let (server_config, client_config) = configs()?;
    matou::builder()
        .extra_workers(0)
        .run(exchange(server_config, client_config, messages))
}

async fn exchange(
    server_config: Arc<ServerConfig>,
    client_config: Arc<ClientConfig>,
    messages: Vec<String>,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(([127, 0, 0, 1], 0))?;
    let addr = listener.local_addr()?;
    let server = matou::spawn(serve(listener, TlsAcceptor::from(server_config), 1));
    let echoed = client(addr, client_config, &messages).await;
    // The server ends once its one connection has: the client closed it (or
    // failed, which ends the connection too).
    for served in server.await? {
        served?;
    }
    Ok(echoed?)
}

fn main() -> std::process::ExitCode {
    let mut messages: Vec<String> = std::env::args().skip(1).collect();
    if messages.is_empty() {
        messages.push("hello over TLS".to_owned());
    }
    match demo(messages) {
        Ok(echoes) => {
            for e in echoes {
                println!("{e}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tls_echo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_message_comes_back_over_tls() {
        let msgs = vec!["one".to_owned(), "two two".to_owned(), "x".repeat(50_000)];
        assert_eq!(super::demo(msgs.clone()).unwrap(), msgs);
    }
}
