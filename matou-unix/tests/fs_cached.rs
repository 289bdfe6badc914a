//! Reads the page cache answers on the worker (`fs::read`, `File` reads)
//! and every case that must still go to the pool, against std as the peer.

mod common;

use common::{pattern, watchdog};
use futures_lite::{AsyncReadExt, AsyncSeekExt};
use matou_unix::blocking::{BlockingPool, PoolConfig};
use matou_unix::fs;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

/// Under the system temp dir (a disk file system with page-cache reads),
/// not tmpfs, whose files refuse `RWF_NOWAIT` on many kernels.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("matou-fs-cached-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `fut` on one worker with a pool of its own, and returns its value
/// and how many threads that pool started.
fn run_counting_pool<T: 'static>(
    name: &'static str,
    fut: impl std::future::Future<Output = T> + 'static,
) -> (T, usize) {
    let _w = watchdog(name, 60);
    matou_unix::builder_with(PoolConfig::default())
        .extra_workers(0)
        .run(async move {
            let v = fut.await;
            (v, BlockingPool::current().threads())
        })
}

/// Whether the kernel reads `path` with `RWF_NOWAIT` (Linux 4.14 and a
/// file system that supports it): the precondition of the fast path.
fn nowait_reads_work(path: &Path) -> bool {
    let f = std::fs::File::open(path).unwrap();
    let mut b = [0u8; 1];
    rustix::io::preadv2(
        &f,
        &mut [std::io::IoSliceMut::new(&mut b)],
        0,
        rustix::io::ReadWriteFlags::NOWAIT,
    )
    .is_ok()
}

#[test]
fn cached_files_are_read_without_the_pool() {
    let dir = TempDir::new("fast");
    let small = dir.0.join("small");
    let data = pattern(5000);
    std::fs::write(&small, &data).unwrap();
    if !nowait_reads_work(&small) {
        eprintln!("skipped: {} refuses RWF_NOWAIT reads", dir.0.display());
        return;
    }
    let empty = dir.0.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let (p, e, d) = (small.clone(), empty.clone(), data.clone());
    let (((), file_bytes), threads) = run_counting_pool("fs_cached_fast", async move {
        for _ in 0..20 {
            assert_eq!(fs::read(&p).await.unwrap(), d);
        }
        assert_eq!(fs::read(&e).await.unwrap(), b"");
        assert_eq!(
            fs::read_to_string(&e).await.unwrap(),
            String::new(),
            "an empty file is an empty string"
        );
        // A `File` adopted from std, read to the end in small steps: every
        // read comes from the page cache.
        let mut f = fs::File::from_std(std::fs::File::open(&p).unwrap());
        let mut got = Vec::new();
        let mut chunk = [0u8; 777];
        loop {
            let n = f.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        ((), got)
    });
    assert_eq!(file_bytes, data);
    assert_eq!(threads, 0, "a cached read went to the blocking pool");
}

#[test]
fn what_the_cache_cannot_answer_goes_to_the_pool_with_std_results() {
    let dir = TempDir::new("fallback");
    // Past what one call reads on the worker, with an odd tail.
    let big = dir.0.join("big");
    let big_data = pattern(2 * fs::MAX_BUF + 7);
    std::fs::write(&big, &big_data).unwrap();
    let latin1 = dir.0.join("latin1");
    std::fs::write(&latin1, b"caf\xe9").unwrap();
    let d = dir.0.clone();
    let (kinds, threads) = run_counting_pool("fs_cached_fallback", async move {
        assert!(
            fs::read(&big).await.unwrap() == big_data,
            "big file differs"
        );
        // procfs has no non-blocking reads: the pool reads it.
        let ostype = "/proc/sys/kernel/ostype";
        assert_eq!(
            fs::read(ostype).await.unwrap(),
            std::fs::read(ostype).unwrap()
        );
        let mut f = fs::File::open(ostype).await.unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).await.unwrap();
        assert_eq!(s, std::fs::read_to_string(ostype).unwrap());
        let e = fs::read_to_string(&latin1).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        // A directory and a missing file fail as std fails.
        let dir_err = fs::read(&d).await.unwrap_err().kind();
        let missing = fs::read(d.join("missing")).await.unwrap_err().kind();
        (dir_err, missing)
    });
    assert_eq!(kinds.0, std::fs::read(&dir.0).unwrap_err().kind());
    assert_eq!(kinds.1, std::io::ErrorKind::NotFound);
    assert!(threads > 0, "the fallbacks never reached the pool");
}

#[test]
fn a_fifo_is_opened_on_the_pool_and_waits_for_its_writer() {
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
    let f2 = fifo.clone();
    // std's reader blocks in `open` until a writer comes; one that opened
    // the FIFO without blocking before the writer came would read an empty
    // FIFO without a writer, i.e. the end at once. The writer comes late
    // (on a loaded machine, maybe not late enough to catch that mistake,
    // but never too late for the right behaviour).
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::write(&f2, b"through the fifo").unwrap();
    });
    let (got, _) = run_counting_pool("fs_cached_fifo", async move { fs::read(&fifo).await });
    // Before joining: after the mistake, the writer would wait for a reader
    // forever.
    assert_eq!(got.unwrap(), b"through the fifo");
    writer.join().unwrap();
}

#[test]
fn reads_from_the_cache_keep_the_position_for_seeks_and_writes() {
    let dir = TempDir::new("seek");
    let p = dir.0.join("f");
    let data = pattern(100_000);
    std::fs::write(&p, &data).unwrap();
    let (p2, d2) = (p.clone(), data.clone());
    run_counting_pool("fs_cached_seek", async move {
        use futures_lite::AsyncWriteExt;
        let opts = std::fs::OpenOptions::new().read(true).write(true).clone();
        let mut f = fs::File::open_with(&p2, opts).await.unwrap();
        let mut ten = [0u8; 10];
        f.read_exact(&mut ten).await.unwrap();
        assert_eq!(&ten, &d2[..10]);
        assert_eq!(f.seek(SeekFrom::Current(5)).await.unwrap(), 15);
        f.read_exact(&mut ten).await.unwrap();
        assert_eq!(&ten, &d2[15..25]);
        // The write lands where the reader is.
        f.write_all(b"XY").await.unwrap();
        f.flush().await.unwrap();
        f.read_exact(&mut ten).await.unwrap();
        assert_eq!(&ten, &d2[27..37]);
    });
    let mut want = data;
    want[25..27].copy_from_slice(b"XY");
    assert!(std::fs::read(&p).unwrap() == want, "file differs");
}
