//! The log on real files: replay after reopen, damaged tails cut, group
//! commit, and rewrites (inline, on another thread, aborted, stale).

use super::*;
use crate::command::execute;
use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory (not created) under the system temp dir.
pub(super) fn dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "matou-kv-aof-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&d);
    d
}

pub(super) fn set(k: &str, v: &str) -> LogRecord {
    LogRecord::Set {
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
        expire_at_ms: None,
    }
}

/// Runs `cmd` on `store` and appends its record, as the owner does.
fn run(store: &mut Store, aof: &mut Aof, cmd: &[&str]) {
    let args: Vec<Vec<u8>> = cmd.iter().map(|s| s.as_bytes().to_vec()).collect();
    if let (_, Some(rec)) = execute(store, &args, 1_000) {
        aof.append(&rec);
    }
}

fn reopen(d: &Path) -> (Store, Aof, Replayed) {
    let mut store = Store::new();
    let (aof, replayed) = Aof::open(d, Fsync::Always, &mut store).unwrap();
    (store, aof, replayed)
}

#[test]
fn fsync_names_round_trip() {
    for f in [Fsync::Always, Fsync::EverySec, Fsync::No] {
        assert_eq!(Fsync::parse(f.name()), Some(f));
    }
    assert_eq!(Fsync::parse("sometimes"), None);
}

#[test]
fn open_creates_the_directory_and_replays_what_was_committed() {
    let d = dir("replay");
    let (mut store, mut aof, replayed) = reopen(&d);
    assert_eq!(replayed, Replayed::default());
    assert!(d.join(FILE_NAME).exists());
    run(&mut store, &mut aof, &["SET", "a", "1"]);
    run(&mut store, &mut aof, &["INCR", "a"]);
    run(&mut store, &mut aof, &["SET", "b", "x", "PXAT", "99999"]);
    run(&mut store, &mut aof, &["APPEND", "b", "y"]);
    assert!(aof.has_pending());
    assert_eq!(
        aof.size(),
        FILE_HEADER_LEN as u64,
        "the header only: nothing is written before the commit"
    );
    aof.commit().unwrap();
    assert!(!aof.has_pending());
    assert_eq!(aof.size(), fs::metadata(d.join(FILE_NAME)).unwrap().len());
    drop(aof);
    let (again, _, replayed) = reopen(&d);
    assert_eq!(replayed.records, 4);
    assert_eq!(replayed.cut, None);
    assert!(again == store);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn uncommitted_records_are_not_in_the_file() {
    let d = dir("pending");
    let (_, mut aof, _) = reopen(&d);
    aof.append(&set("a", "1"));
    aof.commit().unwrap();
    aof.append(&set("b", "2"));
    drop(aof);
    let (store, _, replayed) = reopen(&d);
    assert_eq!((replayed.records, store.len()), (1, 1));
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_torn_tail_is_cut_and_appends_resume_after_the_valid_prefix() {
    let d = dir("torn");
    let (_, mut aof, _) = reopen(&d);
    for i in 0..10 {
        aof.append(&set(&format!("k{i}"), "v"));
    }
    aof.commit().unwrap();
    let full = aof.size();
    drop(aof);
    let path = d.join(FILE_NAME);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(full - 3).unwrap();
    drop(f);
    let (store, mut aof, replayed) = reopen(&d);
    assert_eq!(replayed.records, 9);
    let cut = replayed.cut.unwrap();
    assert_eq!(cut.damage, Damage::Truncated);
    assert_eq!(cut.offset + cut.dropped, full - 3);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        cut.offset,
        "file truncated"
    );
    assert!(store.raw(b"k9").is_none() && store.raw(b"k8").is_some());
    aof.append(&set("after", "1"));
    aof.commit().unwrap();
    drop(aof);
    let (store, _, replayed) = reopen(&d);
    assert_eq!((replayed.records, replayed.cut), (10, None));
    assert!(store.raw(b"after").is_some());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_flipped_byte_refuses_the_open_and_repair_recovers_the_rest() {
    let d = dir("flip");
    let (_, mut aof, _) = reopen(&d);
    let mut starts = Vec::new();
    for i in 0..10 {
        starts.push(aof.size() + aof.pending.len() as u64);
        aof.append(&set(&format!("k{i}"), "value"));
    }
    aof.commit().unwrap();
    drop(aof);
    let path = d.join(FILE_NAME);
    let mut bytes = fs::read(&path).unwrap();
    bytes[starts[6] as usize + HEADER + 2] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let mut store = Store::new();
    let e = Aof::open(&d, Fsync::Always, &mut store).unwrap_err();
    let refused = Refused::of(&e).expect("a refusal");
    assert_eq!(
        (refused.cut.offset, refused.cut.damage, refused.cut.dropped),
        (
            starts[6],
            Damage::BadChecksum,
            bytes.len() as u64 - starts[6]
        )
    );
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert_eq!(fs::read(&path).unwrap(), bytes, "the file is untouched");
    let (aof, replayed, repaired) = Aof::open_with(&d, Fsync::Always, &mut store, true).unwrap();
    let repaired = repaired.expect("repaired");
    assert_eq!(
        fs::read(&repaired.damaged_copy).unwrap(),
        bytes,
        "copy kept"
    );
    assert_eq!((replayed.records, store.len()), (9, 9));
    assert!(store.raw(b"k6").is_none() && store.raw(b"k7").is_some());
    assert!(repaired
        .to_string()
        .contains(&format!("lost: bytes {}..{}", starts[6], starts[7])));
    drop(aof);
    let (again, _, replayed) = reopen(&d);
    assert_eq!((replayed.format, replayed.cut), (Format::Current, None));
    assert!(again == store);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_symlinked_or_special_log_is_refused_untouched() {
    let d = dir("symlink");
    fs::create_dir_all(&d).unwrap();
    let victim = d.with_extension("victim");
    fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, d.join(FILE_NAME)).unwrap();
    let e = Aof::open(&d, Fsync::Always, &mut Store::new()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    fs::remove_file(d.join(FILE_NAME)).unwrap();
    fs::create_dir(d.join(FILE_NAME)).unwrap();
    let e = Aof::open(&d, Fsync::Always, &mut Store::new()).unwrap_err();
    assert!(e.to_string().contains("a directory"), "{e}");
    fs::remove_dir_all(&d).unwrap();
    fs::remove_file(&victim).unwrap();
}

#[test]
fn the_directory_is_locked_while_a_log_is_open() {
    let d = dir("lock");
    let (_, aof, _) = reopen(&d);
    let e = Aof::open(&d, Fsync::Always, &mut Store::new()).unwrap_err();
    let pid = std::process::id();
    assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
    assert_eq!(
        fs::read_to_string(d.join(files::LOCK_FILE)).unwrap().trim(),
        pid.to_string()
    );
    drop(aof);
    let _ = reopen(&d);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_rewrite_never_renames_over_what_is_not_the_open_log() {
    let d = dir("rename-check");
    let (mut store, mut aof, _) = reopen(&d);
    run(&mut store, &mut aof, &["SET", "a", "1"]);
    aof.commit().unwrap();
    let path = d.join(FILE_NAME);
    // Someone replaces the log by a link to another file.
    let other = d.with_extension("other");
    fs::write(&other, b"not ours").unwrap();
    fs::rename(&path, d.join("moved")).unwrap();
    std::os::unix::fs::symlink(&other, &path).unwrap();
    let e = aof.rewrite(&store).unwrap_err();
    assert!(e.to_string().contains("refusing to rename"), "{e}");
    assert!(fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&other).unwrap(), b"not ours");
    assert_eq!(aof.rewrites(), 0);
    drop(aof);
    fs::remove_dir_all(&d).unwrap();
    fs::remove_file(&other).unwrap();
}

#[test]
fn files_are_private_and_rewrites_keep_the_header() {
    let d = dir("modes");
    let (mut store, mut aof, _) = reopen(&d);
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d), 0o700);
    assert_eq!(mode(&d.join(FILE_NAME)), 0o600);
    assert_eq!(mode(&d.join(files::LOCK_FILE)), 0o600);
    assert_eq!(fs::read(d.join(FILE_NAME)).unwrap(), FILE_HEADER);
    run(&mut store, &mut aof, &["SET", "a", "1"]);
    aof.rewrite(&store).unwrap();
    assert_eq!(mode(&d.join(FILE_NAME)), 0o600);
    assert!(fs::read(d.join(FILE_NAME))
        .unwrap()
        .starts_with(&FILE_HEADER));
    drop(aof);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_legacy_log_is_replayed_and_migrated_to_the_header() {
    let d = dir("legacy");
    fs::create_dir_all(&d).unwrap();
    let mut legacy = Vec::new();
    for i in 0..5 {
        assert!(frame(&set(&format!("k{i}"), "v"), &mut legacy));
    }
    // Torn, as a crash of the old version left it.
    legacy.extend_from_slice(&[9, 0, 0]);
    fs::write(d.join(FILE_NAME), &legacy).unwrap();
    let (store, aof, replayed) = reopen(&d);
    assert_eq!((replayed.format, replayed.records), (Format::Legacy, 5));
    assert_eq!(replayed.cut.map(|c| c.damage), Some(Damage::Truncated));
    assert_eq!(store.len(), 5);
    assert_eq!(aof.rewrites(), 1);
    drop(aof);
    assert!(fs::read(d.join(FILE_NAME))
        .unwrap()
        .starts_with(&FILE_HEADER));
    let (again, _, replayed) = reopen(&d);
    assert_eq!((replayed.format, replayed.cut), (Format::Current, None));
    assert!(again == store);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn inline_rewrite_compacts_and_preserves_the_store() {
    let d = dir("rewrite");
    let (mut store, mut aof, _) = reopen(&d);
    for i in 0..200 {
        run(&mut store, &mut aof, &["SET", "counter", &i.to_string()]);
        run(
            &mut store,
            &mut aof,
            &["SET", &format!("k{}", i % 7), "v", "PX", "5000"],
        );
    }
    run(&mut store, &mut aof, &["DEL", "k3"]);
    aof.commit().unwrap();
    let before = aof.size();
    aof.rewrite(&store).unwrap();
    assert!(aof.size() < before / 10, "{} -> {}", before, aof.size());
    assert_eq!((aof.rewrites(), aof.base_size()), (1, aof.size()));
    run(&mut store, &mut aof, &["SET", "after", "1"]);
    aof.commit().unwrap();
    drop(aof);
    let (again, _, replayed) = reopen(&d);
    assert_eq!(replayed.cut, None);
    assert!(again == store, "expiry times survive the rewrite too");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn rewrite_of_an_emptied_store_succeeds_and_replays_empty() {
    let d = dir("emptied");
    let (mut store, mut aof, _) = reopen(&d);
    for i in 0..100 {
        run(&mut store, &mut aof, &["SET", &format!("k{i}"), "v"]);
    }
    run(&mut store, &mut aof, &["FLUSHALL"]);
    aof.commit().unwrap();
    let job = aof.begin_rewrite(store.snapshot()).unwrap();
    let out = job
        .run()
        .expect("an empty snapshot is written, not refused");
    aof.finish_rewrite(out).unwrap();
    drop(aof);
    let (again, _, _) = reopen(&d);
    assert_eq!(again.len(), 0);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn rewrite_on_another_thread_while_the_owner_keeps_writing() {
    let d = dir("threaded");
    let (mut store, mut aof, _) = reopen(&d);
    for i in 0..1000 {
        run(
            &mut store,
            &mut aof,
            &["SET", &format!("k{}", i % 100), &i.to_string()],
        );
    }
    aof.commit().unwrap();
    let job = aof.begin_rewrite(store.snapshot()).unwrap();
    assert!(aof.rewrite_in_progress() && !aof.needs_rewrite());
    assert!(
        aof.begin_rewrite(store.snapshot()).is_err(),
        "one at a time"
    );
    let worker = std::thread::spawn(move || job.run());
    // Meanwhile the owner serves: these land in the old log and the side
    // buffer; some are committed, the last ones are still pending.
    for i in 0..50 {
        run(&mut store, &mut aof, &["APPEND", &format!("k{i}"), "+"]);
        if i % 10 == 0 {
            aof.commit().unwrap();
        }
    }
    run(&mut store, &mut aof, &["DEL", "k99"]);
    let out = worker.join().unwrap().unwrap();
    aof.finish_rewrite(out).unwrap();
    assert!(!aof.has_pending(), "finish committed the pending records");
    assert!(!aof.rewrite_in_progress());
    run(&mut store, &mut aof, &["SET", "after", "1"]);
    aof.commit().unwrap();
    let leftovers: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(REWRITE_PREFIX))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(aof);
    let (again, _, replayed) = reopen(&d);
    assert_eq!(replayed.cut, None);
    assert!(again == store);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_aborted_or_stale_rewrite_leaves_the_old_log_in_use() {
    let d = dir("abort");
    let (mut store, mut aof, _) = reopen(&d);
    run(&mut store, &mut aof, &["SET", "a", "1"]);
    aof.commit().unwrap();
    let job = aof.begin_rewrite(store.snapshot()).unwrap();
    let out = job.run().unwrap();
    aof.abort_rewrite();
    assert!(aof.last_rewrite_failed());
    run(&mut store, &mut aof, &["SET", "b", "2"]);
    assert!(aof.finish_rewrite(out).is_err(), "stale output refused");
    aof.commit().unwrap();
    assert_eq!(aof.rewrites(), 0);
    drop(aof);
    let (again, _, _) = reopen(&d);
    assert!(again == store);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_crashed_rewrites_temporary_file_is_removed_at_open() {
    let d = dir("leftover");
    fs::create_dir_all(&d).unwrap();
    let tmp = d.join(format!("{REWRITE_PREFIX}3"));
    fs::write(&tmp, b"half a snapshot").unwrap();
    let (store, _, _) = reopen(&d);
    assert!(store.is_empty());
    assert!(!tmp.exists());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn sync_and_tick_under_every_policy() {
    for policy in [Fsync::Always, Fsync::EverySec, Fsync::No] {
        let d = dir("policy");
        let mut store = Store::new();
        let (mut aof, _) = Aof::open(&d, policy, &mut store).unwrap();
        aof.append(&set("a", "1"));
        aof.commit().unwrap();
        assert_eq!(aof.unsynced, policy != Fsync::Always);
        aof.tick().unwrap();
        aof.append(&set("b", "2"));
        aof.sync().unwrap();
        assert!(!aof.unsynced && !aof.has_pending());
        assert_eq!(aof.policy(), policy);
        drop(aof);
        let (again, _, _) = reopen(&d);
        assert_eq!(again.len(), 2);
        fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn a_crash_before_the_rename_leaves_the_old_log_whole() {
    let d = dir("crash-mid-rewrite");
    let (mut store, mut aof, _) = reopen(&d);
    for i in 0..300 {
        run(
            &mut store,
            &mut aof,
            &["SET", &format!("k{}", i % 30), &i.to_string()],
        );
    }
    aof.commit().unwrap();
    let job = aof.begin_rewrite(store.snapshot()).unwrap();
    // The snapshot is written and fsynced, the owner goes on committing to
    // the old log, and the process dies before finish_rewrite's rename.
    let out = std::thread::spawn(move || job.run())
        .join()
        .unwrap()
        .unwrap();
    for i in 0..40 {
        run(
            &mut store,
            &mut aof,
            &["APPEND", &format!("k{}", i % 30), "+"],
        );
        aof.commit().unwrap();
    }
    run(&mut store, &mut aof, &["DEL", "k7"]);
    aof.commit().unwrap();
    let tmp = out.tmp.clone();
    assert!(tmp.exists());
    drop((out, aof));
    let (again, _, replayed) = reopen(&d);
    assert_eq!(replayed.cut, None);
    assert!(again == store, "every committed write is in the old log");
    assert!(!tmp.exists(), "the half-done rewrite is removed at open");
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn records_appended_during_a_rewrite_reach_the_new_log() {
    // Each step of the owner's side interleaved with the thread's: the
    // snapshot misses exactly what the side buffer holds.
    let d = dir("tail");
    let (mut store, mut aof, _) = reopen(&d);
    run(&mut store, &mut aof, &["SET", "base", "1"]);
    aof.commit().unwrap();
    let job = aof.begin_rewrite(store.snapshot()).unwrap();
    run(&mut store, &mut aof, &["SET", "during", "1"]);
    aof.commit().unwrap();
    let out = job.run().unwrap();
    run(&mut store, &mut aof, &["INCR", "base"]);
    // Pending (not committed) when the rewrite finishes: finish commits it.
    aof.finish_rewrite(out).unwrap();
    run(&mut store, &mut aof, &["SET", "after", "1"]);
    aof.commit().unwrap();
    drop(aof);
    let (again, _, _) = reopen(&d);
    assert!(again == store);
    assert_eq!(again.get(b"base", 0), Some(&b"2"[..]));
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_torn_creation_or_a_zeroed_tail_is_cut_like_a_torn_record() {
    let d = dir("torn-header");
    fs::create_dir_all(&d).unwrap();
    let path = d.join(FILE_NAME);
    fs::write(&path, &FILE_HEADER[..5]).unwrap();
    let (store, aof, replayed) = reopen(&d);
    assert!(store.is_empty());
    assert_eq!(replayed.cut.map(|c| c.damage), Some(Damage::Truncated));
    drop(aof);
    assert_eq!(
        fs::read(&path).unwrap(),
        FILE_HEADER,
        "the header rewritten"
    );
    // Zeros where the last records should be: the size reached the disk
    // before the data.
    let mut bytes = FILE_HEADER.to_vec();
    assert!(frame(&set("a", "1"), &mut bytes));
    let valid = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 4096]);
    fs::write(&path, &bytes).unwrap();
    let (store, aof, replayed) = reopen(&d);
    assert_eq!((store.len(), replayed.records), (1, 1));
    assert_eq!(replayed.cut.map(|c| c.offset), Some(valid));
    drop(aof);
    assert_eq!(fs::metadata(&path).unwrap().len(), valid);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_rewrite_keeps_hashes_lists_and_sets_in_every_database() {
    use crate::store::Value;
    let mut dbs = Databases::new(3);
    let h = [(b"f".to_vec(), b"v".to_vec()), (b"g".to_vec(), vec![])];
    dbs.db_mut(0)
        .set_value(b"h", Value::Hash(h.into_iter().collect()), Some(99));
    let l = [b"b".to_vec(), b"a".to_vec(), b"b".to_vec()];
    dbs.db_mut(2)
        .set_value(b"l", Value::List(l.into_iter().collect()), None);
    let s = [b"1".to_vec(), b"x".to_vec()];
    dbs.db_mut(2)
        .set_value(b"s", Value::Set(s.into_iter().collect()), None);
    dbs.db_mut(2).set(b"str", b"v".to_vec(), None);
    let mut bytes = Vec::new();
    write_snapshot(&dbs.snapshot(), &mut bytes).unwrap();
    let (records, _) = read_log(&bytes);
    assert_eq!(records.len(), 4);
    let mut back = Databases::new(3);
    for r in records {
        back.apply(r);
    }
    assert_eq!(back, dbs);
}
