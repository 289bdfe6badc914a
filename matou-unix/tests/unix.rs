//! Unix-domain streams against std's blocking sockets as the peer.

mod common;

use common::{pattern, run, WORKERS};
use matou_unix::net::{UnixListener, UnixStream};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::PathBuf;

fn socket_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("matou-unix-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn listener_accepts_a_std_client() {
    for extra in WORKERS {
        let path = socket_path(&format!("accept{extra}"));
        let data = pattern(2 * 1024 * 1024);
        let expected = data.clone();
        let p2 = path.clone();
        let got = run("unix_accept", extra, async move {
            let listener = UnixListener::bind(&p2).unwrap();
            assert_eq!(
                listener.local_addr().unwrap().as_pathname(),
                Some(p2.as_path())
            );
            let client = std::thread::spawn(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&p2).unwrap();
                let mut r = s.try_clone().unwrap();
                let reader = std::thread::spawn(move || {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).unwrap();
                    got
                });
                s.write_all(&data).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                reader.join().unwrap()
            });
            let (s, addr) = listener.accept().await.unwrap();
            assert!(addr.is_unnamed(), "a client that did not bind is unnamed");
            let mut buf = vec![0; 10_000];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
            drop(s);
            client
        });
        assert!(got.join().unwrap() == expected);
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn stream_connects_to_a_std_listener() {
    for extra in WORKERS {
        let path = socket_path(&format!("connect{extra}"));
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        });
        let p2 = path.clone();
        run("unix_connect", extra, async move {
            let s = UnixStream::connect(&p2).await.unwrap();
            assert_eq!(s.peer_addr().unwrap().as_pathname(), Some(p2.as_path()));
            s.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            let mut end = [0u8; 1];
            assert_eq!(s.read(&mut end).await.unwrap(), 0);
        });
        server.join().unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn connect_to_a_missing_path_reports_enoent() {
    let path = socket_path("missing");
    let e = run("unix_enoent", 0, async move {
        UnixStream::connect(&path).await.unwrap_err()
    });
    assert_eq!(e.raw_os_error(), Some(2), "{e:?}");
}

#[test]
fn pair_works_with_futures_io() {
    use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
    run("unix_pair", 0, async {
        let (a, mut b) = UnixStream::pair().unwrap();
        let data = pattern(300_000);
        let writer = async {
            let mut a = &a;
            a.write_all(&data).await.unwrap();
            a.close().await.unwrap();
        };
        let mut got = Vec::new();
        futures_lite::future::zip(writer, b.read_to_end(&mut got))
            .await
            .1
            .unwrap();
        assert!(got == data);
    });
}
