//! A full disk, for real: the data directory is a small tmpfs the test
//! mounts (we run as root). Once it is full, writes get `-MISCONF` (never
//! OK), reads are served, nothing acknowledged is lost across a restart,
//! and writes resume once space is freed; under every fsync policy, on one
//! worker and on several.
//!
//! Where `mount` is not allowed the tests fail loudly, unless
//! `MATOU_KV_SKIP_MOUNT_TESTS` is set (then they say they were skipped).

mod common;

use common::Server;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Size of the file system.
const FS_SIZE: u64 = 4 * 1024 * 1024;
/// What the filler leaves free for the log.
const ROOM: u64 = 512 * 1024;

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Mount(common::ScratchDir);

impl Mount {
    fn new(name: &str) -> Option<Mount> {
        let dir = common::temp_dir(name);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        if out.status.success() {
            return Some(Mount(dir));
        }
        let why = String::from_utf8_lossy(&out.stderr);
        if std::env::var_os("MATOU_KV_SKIP_MOUNT_TESTS").is_some() {
            eprintln!("SKIPPED (MATOU_KV_SKIP_MOUNT_TESTS): cannot mount a tmpfs: {why}");
            return None;
        }
        panic!(
            "cannot mount a tmpfs on {} ({why}); the full-disk tests need root \
             (set MATOU_KV_SKIP_MOUNT_TESTS=1 to skip them explicitly)",
            dir.display()
        );
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // The directory itself goes with the `ScratchDir`, after this.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn value(i: usize) -> String {
    format!("{i:08}-").repeat(100)
}

fn fill(path: &Path, len: u64) {
    // Real pages (a sparse file would take nothing on tmpfs).
    std::fs::write(path, vec![0x5a; len as usize]).unwrap();
}

fn assert_misconf(r: redis::RedisResult<()>, what: &str) {
    match r {
        Ok(()) => panic!("{what}: a write was acknowledged on a full disk"),
        Err(e) => {
            assert_eq!(e.code(), Some("MISCONF"), "{what}: {e}");
            assert!(
                e.to_string().contains("Errors writing to the AOF file"),
                "{what}: {e}"
            );
        }
    }
}

fn full_disk(workers: &str, fsync: &str) {
    let Some(mount) = Mount::new("disk-full") else {
        return;
    };
    // The server's stderr file sits beside the mount point, not in it.
    let filler = mount.0.join("filler");
    fill(&filler, FS_SIZE - ROOM);
    let mut server = Server::start(&mount.0, &["--workers", workers, "--fsync", fsync]);
    let mut c = server.client();
    let mut acked = Vec::new();
    let mut refused = false;
    for i in 0..(2 * ROOM as usize / 1000) {
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(value(i))
            .query(&mut c);
        match r {
            Ok(()) => acked.push(i),
            Err(_) => {
                assert_misconf(r, "the first refused SET");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "the disk never filled up");
    assert!(!acked.is_empty(), "nothing fitted at all");
    // Refused from now on, whatever the write.
    for i in 0..20 {
        let r: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("late:{i}"))
            .arg("v")
            .query(&mut c);
        assert_misconf(r, "SET on a full disk");
    }
    assert_misconf(redis::cmd("DEL").arg("key:0").query(&mut c), "DEL");
    assert_misconf(redis::cmd("INCR").arg("counter").query(&mut c), "INCR");
    // Reads are served, and saw no refused write.
    let v: String = redis::cmd("GET").arg("key:0").query(&mut c).unwrap();
    assert_eq!(v, value(0));
    let n: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, acked.len(), "refused writes changed the store");
    let late: Option<String> = redis::cmd("GET").arg("late:0").query(&mut c).unwrap();
    assert_eq!(late, None);
    // A second client gets the same (a new connection works too).
    let mut c2 = server.client();
    let v: String = redis::cmd("GET")
        .arg(format!("key:{}", acked[acked.len() - 1]))
        .query(&mut c2)
        .unwrap();
    assert_eq!(v, value(acked[acked.len() - 1]));

    // Space is back: writes resume within a few ticks.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let resumed = loop {
        let r: redis::RedisResult<()> = redis::cmd("SET").arg("resumed").arg("yes").query(&mut c);
        match r {
            Ok(()) => break true,
            Err(_) if Instant::now() < deadline => {
                assert_misconf(r, "SET before the probe");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("writes did not resume after freeing space: {e}"),
        }
    };
    assert!(resumed);
    for i in 0..50 {
        let () = redis::cmd("SET")
            .arg(format!("after:{i}"))
            .arg(value(i))
            .query(&mut c)
            .unwrap();
    }
    assert!(server.stderr().contains("writes accepted"));
    drop((c, c2));

    // Nothing acknowledged is lost.
    assert!(server.terminate().success(), "{}", server.stderr());
    server.spawn();
    let mut c = server.client();
    for &i in &acked {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(v, Some(value(i)), "acknowledged key:{i} lost");
    }
    let v: String = redis::cmd("GET").arg("resumed").query(&mut c).unwrap();
    assert_eq!(v, "yes");
    let v: String = redis::cmd("GET").arg("after:49").query(&mut c).unwrap();
    assert_eq!(v, value(49));
    let late: Option<String> = redis::cmd("GET").arg("late:0").query(&mut c).unwrap();
    assert_eq!(late, None, "a refused write came back");
    let n: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, acked.len() + 51);
    drop(c);
    server.kill();
}

#[test]
fn full_disk_one_worker_every_policy() {
    for fsync in ["always", "everysec", "no"] {
        full_disk("0", fsync);
    }
}

#[test]
fn full_disk_several_workers() {
    full_disk("3", "everysec");
}

/// The rewrite's temporary file in the data directory, if any.
fn rewrite_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("appendonly.mlog.rewrite-"))
        .collect()
}

fn wait_for(server: &mut Server, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !server.stderr().contains(what) {
        assert!(
            Instant::now() < deadline,
            "no {what:?} in the log: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A rewrite that would not leave room for the live log does not start:
/// no temporary file, the old log goes on taking writes, and the rewrite
/// is retried and done once space is back.
fn rewrite_checks_free_space(workers: &str) {
    let Some(mount) = Mount::new("rewrite-space") else {
        return;
    };
    let mut server = Server::start(&mount.0, &["--workers", workers]);
    let mut c = server.client();
    // 1.2 MiB of log for a store of 300 KiB (overwrites): a rewrite is due.
    let big = "y".repeat(100 * 1024);
    // Leave about 0.9 MiB free: less than the snapshot and its margin.
    let filler = mount.0.join("filler");
    fill(&filler, FS_SIZE - 2 * 1024 * 1024 - 100 * 1024);
    for i in 0..12 {
        let () = redis::cmd("SET")
            .arg(format!("k{}", i % 3))
            .arg(format!("{i}{big}"))
            .query(&mut c)
            .unwrap();
    }
    wait_for(
        &mut server,
        "not enough free space for a log rewrite",
        Duration::from_secs(5),
    );
    assert_eq!(rewrite_leftovers(&mount.0), Vec::<String>::new());
    // The live log still takes writes (the rewrite took no space from it).
    for i in 0..5 {
        let () = redis::cmd("SET")
            .arg(format!("small{i}"))
            .arg("v")
            .query(&mut c)
            .unwrap();
    }
    std::fs::remove_file(&filler).unwrap();
    wait_for(
        &mut server,
        "log rewritten in the background",
        Duration::from_secs(20),
    );
    assert_eq!(rewrite_leftovers(&mount.0), Vec::<String>::new());
    let () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut c)
        .unwrap();
    drop(c);
    assert!(server.terminate().success());
    server.spawn();
    let mut c = server.client();
    let v: String = redis::cmd("GET").arg("k2").query(&mut c).unwrap();
    assert_eq!(v, format!("11{big}"));
    let n: usize = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 9);
    drop(c);
    server.kill();
}

#[test]
fn rewrite_checks_free_space_one_worker() {
    rewrite_checks_free_space("0");
}

#[test]
fn rewrite_checks_free_space_several_workers() {
    rewrite_checks_free_space("3");
}
