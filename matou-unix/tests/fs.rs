//! `matou_unix::fs` against std as the peer: what one writes the other reads.

mod common;

use common::{pattern, run, WORKERS};
use futures_lite::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use matou_unix::fs;
use std::io::SeekFrom;
use std::path::PathBuf;

struct TempDir(PathBuf);

impl TempDir {
    /// On tmpfs (`/dev/shm`) where there is one: these tests compare the
    /// API with std, not the disk, and an `fsync` on the root disk of a
    /// machine that has just written gigabytes of build output can wait
    /// for all of it (ext4's ordered journal), which once outlasted the
    /// watchdog in CI.
    fn new(name: &str) -> TempDir {
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let p = base.join(format!("matou-fs-{name}-{}", std::process::id()));
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

#[test]
fn whole_file_functions_agree_with_std() {
    for extra in WORKERS {
        let dir = TempDir::new(&format!("whole{extra}"));
        let d = dir.0.clone();
        run("fs_whole", extra, async move {
            let data = pattern(300_000);
            let a = d.join("a/b/c");
            fs::create_dir_all(&a).await.unwrap();
            assert!(std::fs::metadata(&a).unwrap().is_dir());
            fs::write(a.join("f"), &data).await.unwrap();
            assert_eq!(std::fs::read(a.join("f")).unwrap(), data);
            std::fs::write(d.join("g"), b"from std").unwrap();
            assert_eq!(fs::read(d.join("g")).await.unwrap(), b"from std");
            assert_eq!(fs::read_to_string(d.join("g")).await.unwrap(), "from std");
            assert_eq!(
                fs::copy(a.join("f"), d.join("copy")).await.unwrap(),
                300_000
            );
            assert_eq!(std::fs::read(d.join("copy")).unwrap(), data);
            assert_eq!(fs::metadata(d.join("copy")).await.unwrap().len(), 300_000);
            fs::rename(d.join("copy"), d.join("moved")).await.unwrap();
            assert!(!d.join("copy").exists() && d.join("moved").exists());
            fs::remove_file(d.join("moved")).await.unwrap();
            assert!(!d.join("moved").exists());
            // Errors are std's, nothing was created.
            let e = fs::read(d.join("missing")).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            let e = fs::remove_file(d.join("missing")).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        });
    }
}

#[test]
fn read_dir_lists_every_entry_across_batches() {
    for extra in WORKERS {
        let dir = TempDir::new(&format!("readdir{extra}"));
        for i in 0..150 {
            std::fs::write(dir.0.join(format!("f{i:03}")), [i as u8]).unwrap();
        }
        let d = dir.0.clone();
        let mut names = run("fs_read_dir", extra, async move {
            let mut rd = fs::read_dir(&d).await.unwrap();
            let mut names = Vec::new();
            while let Some(e) = rd.next_entry().await.unwrap() {
                names.push(e.file_name().into_string().unwrap());
            }
            assert!(rd.next_entry().await.unwrap().is_none());
            names
        });
        names.sort();
        let want: Vec<_> = (0..150).map(|i| format!("f{i:03}")).collect();
        assert_eq!(names, want);
    }
}

#[test]
fn file_reads_writes_and_seeks_like_std() {
    for extra in WORKERS {
        let dir = TempDir::new(&format!("file{extra}"));
        let p = dir.0.join("f");
        let p2 = p.clone();
        // Past one job's buffer, with an odd tail.
        let data = pattern(fs::MAX_BUF + 64 * 1024 + 123);
        let d2 = data.clone();
        run("fs_file", extra, async move {
            let mut f = fs::File::create(&p2).await.unwrap();
            // Many small writes then one large one (beyond one job's buffer).
            for chunk in d2[..4096].chunks(100) {
                f.write_all(chunk).await.unwrap();
            }
            f.write_all(&d2[4096..]).await.unwrap();
            f.sync_all().await.unwrap();
            assert_eq!(std::fs::read(&p2).unwrap(), d2);

            let mut f = fs::File::open(&p2).await.unwrap();
            let mut head = [0u8; 10];
            f.read_exact(&mut head).await.unwrap();
            assert_eq!(&head, &d2[..10]);
            // The read fetched ahead; Current is relative to the caller's position.
            assert_eq!(f.seek(SeekFrom::Current(5)).await.unwrap(), 15);
            f.read_exact(&mut head).await.unwrap();
            assert_eq!(&head, &d2[15..25]);
            assert_eq!(
                f.seek(SeekFrom::End(-3)).await.unwrap(),
                d2.len() as u64 - 3
            );
            let mut tail = Vec::new();
            f.read_to_end(&mut tail).await.unwrap();
            assert_eq!(tail, &d2[d2.len() - 3..]);
            f.seek(SeekFrom::Start(0)).await.unwrap();
            // Sized up front: growing it in an unoptimised build costs more
            // than the reads.
            let mut all = Vec::with_capacity(d2.len() + 1);
            f.read_to_end(&mut all).await.unwrap();
            assert!(all == d2, "read_to_end differs");
            assert_eq!(f.metadata().await.unwrap().len(), d2.len() as u64);
        });

        // Read then write on one handle: the write lands at the reader's position.
        let p3 = dir.0.join("rw");
        std::fs::write(&p3, b"0123456789").unwrap();
        let p4 = p3.clone();
        run("fs_rw", extra, async move {
            let opts = std::fs::OpenOptions::new().read(true).write(true).clone();
            let mut f = fs::File::open_with(&p4, opts).await.unwrap();
            let mut two = [0u8; 2];
            f.read_exact(&mut two).await.unwrap();
            f.write_all(b"ab").await.unwrap();
            f.flush().await.unwrap();
            f.set_len(6).await.unwrap();
            f.sync_data().await.unwrap();
            let std_file = f.into_std().await.unwrap();
            drop(std_file);
        });
        assert_eq!(std::fs::read(&p3).unwrap(), b"01ab45");
    }
}

#[test]
fn a_write_error_is_reported_by_flush() {
    run("fs_write_error", 0, async {
        // /dev/full fails every write with ENOSPC.
        let opts = std::fs::OpenOptions::new().write(true).clone();
        let mut f = fs::File::open_with("/dev/full", opts).await.unwrap();
        // The write is accepted (write-behind); its error comes with flush.
        f.write(b"x").await.unwrap();
        let e = f.flush().await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28), "{e}");
        // Reported once.
        f.flush().await.unwrap();
    });
}
