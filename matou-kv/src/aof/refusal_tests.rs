//! A failed commit (an injected ENOSPC that stops half-way) leaves the
//! file as it was before the batch, refuses writes until a probe succeeds,
//! and keeps a rewrite's side buffer free of the failed batch.

use super::tests::{dir, set};
use super::*;

const ENOSPC: i32 = 28;

fn replayed(d: &Path) -> Store {
    let mut store = Store::new();
    Aof::open(d, Fsync::Always, &mut store).unwrap();
    store
}

#[test]
fn a_failed_write_is_cut_back_refused_then_retried() {
    for policy in [Fsync::Always, Fsync::EverySec, Fsync::No] {
        let d = dir("write");
        let (mut aof, _) = Aof::open(&d, policy, &mut Store::new()).unwrap();
        aof.append(&set("a", "1"));
        aof.commit().unwrap();
        let good = aof.size();
        aof.fail_writes = Some(ENOSPC);
        aof.append(&set("b", "a value long enough to be cut half-way"));
        let e = aof.commit().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(ENOSPC));
        assert!(!aof.has_pending(), "the failed batch is dropped");
        assert_eq!(aof.size(), good);
        assert_eq!(fs::metadata(aof.path()).unwrap().len(), good, "cut back");
        assert!(aof.refusal().unwrap().contains("No space left"));
        assert!(!aof.is_broken(), "a failed write is retryable");
        // Refused while the disk is still full, even with space back.
        assert!(!aof.probe());
        aof.fail_writes = None;
        aof.append(&set("c", "3"));
        assert!(aof.commit().is_err(), "refused until a probe succeeds");
        assert!(aof.probe());
        assert_eq!(aof.refusal(), None);
        aof.append(&set("d", "4"));
        aof.commit().unwrap();
        aof.sync().unwrap();
        drop(aof);
        let store = replayed(&d);
        let keys: Vec<&[u8]> = vec![b"a", b"d"];
        assert_eq!(store.len(), 2, "{policy:?}");
        for k in keys {
            assert!(store.raw(k).is_some());
        }
        let _ = fs::remove_dir_all(&d);
    }
}

#[test]
fn a_failed_batch_during_a_rewrite_is_not_in_the_new_log() {
    let d = dir("rewrite");
    let mut store = Store::new();
    let (mut aof, _) = Aof::open(&d, Fsync::Always, &mut store).unwrap();
    store.set(b"a", b"1".to_vec(), None);
    aof.append(&set("a", "1"));
    aof.commit().unwrap();
    let job = aof.begin_rewrite(store.snapshot()).unwrap();
    aof.append(&set("b", "2"));
    aof.commit().unwrap();
    aof.fail_writes = Some(ENOSPC);
    aof.append(&set("lost", "x"));
    assert!(aof.commit().is_err());
    aof.fail_writes = None;
    assert!(aof.probe());
    let out = job.run().unwrap();
    aof.finish_rewrite(out).unwrap();
    assert_eq!(aof.rewrites(), 1);
    drop(aof);
    let store = replayed(&d);
    assert!(store.raw(b"a").is_some() && store.raw(b"b").is_some());
    assert!(store.raw(b"lost").is_none(), "the failed batch came back");
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn a_rewrite_without_room_for_its_snapshot_fails_cleanly() {
    let d = dir("space");
    let mut store = Store::new();
    let (mut aof, _) = Aof::open(&d, Fsync::Always, &mut store).unwrap();
    let st = rustix::fs::statvfs(&d).unwrap();
    let free = st.f_bavail * st.f_frsize;
    assert!(
        check_free_space(&d, free).is_err(),
        "no room for the margin"
    );
    let e = check_free_space(&d, u64::MAX / 2).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    check_free_space(&d, 0).unwrap();
    store.set(b"a", b"1".to_vec(), None);
    aof.append(&set("a", "1"));
    aof.commit().unwrap();
    let job = aof.begin_rewrite(store.snapshot()).unwrap();
    assert!(job.estimated_size() >= 10);
    job.run().unwrap();
    let _ = fs::remove_dir_all(&d);
}

const EIO: i32 = 5;

#[test]
fn a_failed_fsync_refuses_writes_until_restart() {
    // Under `always` the failed batch is cut off the file too.
    let d = dir("fsync-always");
    let (mut aof, _) = Aof::open(&d, Fsync::Always, &mut Store::new()).unwrap();
    aof.append(&set("a", "1"));
    aof.commit().unwrap();
    let good = aof.size();
    aof.fail_fsyncs = Some(EIO);
    aof.append(&set("b", "2"));
    assert_eq!(aof.commit().unwrap_err().raw_os_error(), Some(EIO));
    assert_eq!(fs::metadata(aof.path()).unwrap().len(), good);
    assert!(aof.is_broken());
    aof.fail_fsyncs = None;
    // Sticky: fsyncgate, a later fsync cannot be trusted.
    assert!(!aof.probe());
    aof.append(&set("c", "3"));
    assert!(aof.commit().is_err());
    drop(aof);
    let store = replayed(&d);
    assert_eq!(store.len(), 1);
    assert!(store.raw(b"a").is_some());
    let _ = fs::remove_dir_all(&d);

    // Under `everysec` the failure comes from the tick, after the replies.
    let d = dir("fsync-everysec");
    let (mut aof, _) = Aof::open(&d, Fsync::EverySec, &mut Store::new()).unwrap();
    aof.append(&set("a", "1"));
    aof.commit().unwrap();
    aof.fail_fsyncs = Some(EIO);
    aof.last_fsync = Instant::now() - Duration::from_secs(2);
    assert!(aof.tick().is_err());
    assert!(aof.is_broken());
    assert!(aof.refusal().unwrap().starts_with("fsync: "));
    aof.fail_fsyncs = None;
    assert!(!aof.probe());
    aof.append(&set("b", "2"));
    assert!(aof.commit().is_err());
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn shutdown_after_a_failed_fsync_reports_it() {
    let d = dir("fsync-shutdown");
    let (mut aof, _) = Aof::open(&d, Fsync::No, &mut Store::new()).unwrap();
    aof.append(&set("a", "1"));
    aof.commit().unwrap();
    aof.fail_fsyncs = Some(EIO);
    assert!(aof.sync().is_err());
    aof.fail_fsyncs = None;
    let e = aof.sync().unwrap_err();
    assert!(e.to_string().contains("fsync"), "{e}");
    let _ = fs::remove_dir_all(&d);
}
