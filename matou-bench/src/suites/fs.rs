//! Suite `fs`: files on matou's blocking pool (`matou::unix::fs`) against
//! `tokio::fs`, both on one worker (matou `extra_workers(0)`, tokio
//! `current_thread`; each has its blocking pool).
//!
//! - **copy 256 MiB, fs::copy**: `fs::copy` of one file (both delegate to
//!   std's `copy_file_range`: this measures the hand-off, not the copy);
//! - **copy 256 MiB, File 1 MiB chunks**: open both files, read 1 MiB, write
//!   it, until the end, through each runtime's async `File`, then `sync_all`
//!   is *not* called (page cache only, like `fs::copy`); with the default
//!   idle spin and with `idle_spin(0)`;
//! - **read 10,000 small files**: `fs::read` of 10,000 files of 1 KiB, one
//!   after another in one task; once with matou's default idle spin and once
//!   with `idle_spin(0)` (the spinning worker competes with the pool thread
//!   for the CPU on a small machine).
//!   With `--backend uring|both`, the small-files rows also (or only) run
//!   with matou's worker on io_uring (suffix ` [uring]`): the pool's
//!   hand-back wakes the worker through its ring instead of epoll.
//!
//! The files were just written, so they are in the page cache: matou reads
//! them (and the File rows' source) on the worker without a trip to the
//! pool (`fs`'s `nowait` module), tokio on its blocking pool. The spin and
//! backend variants then differ only where a hand-off remains (the File
//! rows' writes, opens, `fs::copy`, and reads the cache cannot answer).
//! The workload is the same for both; on a machine shared with other work,
//! compare CPU time per row too (`perf stat`): wall time there is mostly
//! scheduling delay.
//!
//! The files live in a fresh directory under the system temp dir (created
//! before the timed region, removed at the end). `--quick`: 32 MiB and 1,000
//! files. Reported: ns per whole workload.

use crate::harness::{alternate, backend_label, ns, Config, Report, Row};
use futures_io::{AsyncRead, AsyncWrite};
use matou::unix::Backend;
use matou::DEFAULT_IDLE_SPIN;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

const BIG: usize = 256 * 1024 * 1024;
const SMALL_FILES: usize = 10_000;
const SMALL: usize = 1024;
const CHUNK: usize = 1024 * 1024;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the suite.
pub fn run(cfg: &Config, report: &mut Report) {
    let rounds = if cfg.quick { 3 } else { 5 };
    let (big, files) = if cfg.quick {
        (32 * 1024 * 1024, 1_000)
    } else {
        (BIG, SMALL_FILES)
    };
    let dir = Dir(std::env::temp_dir().join(format!("matou-bench-fs-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(dir.0.join("small")).expect("bench dir");
    let src = dir.0.join("big");
    let block: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8).collect();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&src).expect("big file");
        for _ in 0..big / CHUNK {
            f.write_all(&block).expect("write big file");
        }
    }
    for i in 0..files {
        std::fs::write(dir.0.join("small").join(i.to_string()), &block[..SMALL]).expect("small");
    }
    let mib = big / (1024 * 1024);

    let dst = dir.0.join("copy");
    let (m, t) = alternate(
        rounds,
        || vec![matou_copy(&src, &dst)],
        || vec![tokio_copy(&src, &dst)],
    );
    report.push(row(format!("copy {mib} MiB fs::copy"), m[0], t[0]));

    for (spin, label) in [(DEFAULT_IDLE_SPIN, ""), (Duration::ZERO, ", idle_spin 0")] {
        let (m, t) = alternate(
            rounds,
            || vec![matou_stream_copy(&src, &dst, big, spin)],
            || vec![tokio_stream_copy(&src, &dst, big)],
        );
        report.push(row(
            format!("copy {mib} MiB File 1MiB chunks{label}"),
            m[0],
            t[0],
        ));
    }

    let small = dir.0.join("small");
    for &backend in cfg.backends {
        let b = backend_label(backend);
        let (m, t) = alternate(
            rounds,
            || vec![matou_read_small(&small, files, DEFAULT_IDLE_SPIN, backend)],
            || vec![tokio_read_small(&small, files)],
        );
        report.push(row(format!("read {files} files of 1 KiB{b}"), m[0], t[0]));
        // The worker's idle spin competes with the pool thread for the CPU
        // (two cores here): the same workload without it.
        let (m, t) = alternate(
            rounds,
            || vec![matou_read_small(&small, files, Duration::ZERO, backend)],
            || vec![tokio_read_small(&small, files)],
        );
        report.push(row(
            format!("read {files} files of 1 KiB, idle_spin 0{b}"),
            m[0],
            t[0],
        ));
    }
}

fn row(name: String, matou_ns: f64, tokio_ns: f64) -> Row {
    Row {
        suite: "fs",
        name,
        baseline: "current_thread".to_string(),
        matou_ns,
        tokio_ns,
    }
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn matou_copy(src: &Path, dst: &Path) -> f64 {
    let (src, dst) = (src.to_path_buf(), dst.to_path_buf());
    matou::unix::builder().extra_workers(0).run(async move {
        let t0 = Instant::now();
        let n = matou::unix::fs::copy(&src, &dst).await.expect("copy");
        let e = t0.elapsed();
        assert!(n > 0);
        ns(e)
    })
}

fn tokio_copy(src: &Path, dst: &Path) -> f64 {
    tokio_rt().block_on(async {
        let t0 = Instant::now();
        let n = tokio::fs::copy(src, dst).await.expect("copy");
        let e = t0.elapsed();
        assert!(n > 0);
        ns(e)
    })
}

/// Reads `src` and writes `dst` in `CHUNK`s through matou's `File`.
fn matou_stream_copy(src: &Path, dst: &Path, len: usize, idle_spin: Duration) -> f64 {
    let (src, dst) = (src.to_path_buf(), dst.to_path_buf());
    matou::unix::builder()
        .extra_workers(0)
        .idle_spin(idle_spin)
        .run(async move {
            let t0 = Instant::now();
            let mut r = matou::unix::fs::File::open(&src).await.expect("open");
            let mut w = matou::unix::fs::File::create(&dst).await.expect("create");
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0;
            loop {
                let n = std::future::poll_fn(|cx| Pin::new(&mut r).poll_read(cx, &mut buf))
                    .await
                    .expect("read");
                if n == 0 {
                    break;
                }
                let mut done = 0;
                while done < n {
                    done +=
                        std::future::poll_fn(|cx| Pin::new(&mut w).poll_write(cx, &buf[done..n]))
                            .await
                            .expect("write");
                }
                total += n;
            }
            std::future::poll_fn(|cx| Pin::new(&mut w).poll_flush(cx))
                .await
                .expect("flush");
            let e = t0.elapsed();
            assert_eq!(total, len);
            ns(e)
        })
}

fn tokio_stream_copy(src: &Path, dst: &Path, len: usize) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio_rt().block_on(async {
        let t0 = Instant::now();
        let mut r = tokio::fs::File::open(src).await.expect("open");
        let mut w = tokio::fs::File::create(dst).await.expect("create");
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0;
        loop {
            let n = r.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).await.expect("write");
            total += n;
        }
        w.flush().await.expect("flush");
        let e = t0.elapsed();
        assert_eq!(total, len);
        ns(e)
    })
}

fn matou_read_small(dir: &Path, files: usize, idle_spin: Duration, backend: Backend) -> f64 {
    let dir = dir.to_path_buf();
    matou::unix::builder_on(backend)
        .extra_workers(0)
        .idle_spin(idle_spin)
        .run(async move {
            let t0 = Instant::now();
            let mut total = 0;
            for i in 0..files {
                total += matou::unix::fs::read(dir.join(i.to_string()))
                    .await
                    .expect("read")
                    .len();
            }
            let e = t0.elapsed();
            assert_eq!(total, files * SMALL);
            ns(e)
        })
}

fn tokio_read_small(dir: &Path, files: usize) -> f64 {
    tokio_rt().block_on(async {
        let t0 = Instant::now();
        let mut total = 0;
        for i in 0..files {
            total += tokio::fs::read(dir.join(i.to_string()))
                .await
                .expect("read")
                .len();
        }
        let e = t0.elapsed();
        assert_eq!(total, files * SMALL);
        ns(e)
    })
}
