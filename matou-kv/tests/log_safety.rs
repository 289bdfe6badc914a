//! The log is never destroyed and never shared: each of issue 16's log and
//! directory scenarios, on the real binary. A refused start leaves the file
//! byte for byte as it was (compared whole, and by CRC-32 for the message);
//! `--repair-log` keeps a copy and recovers the intact records after the
//! damage; `check-log` reports without changing anything; a second server
//! on one directory exits naming the first's pid; files are private under
//! umask 000; the password can come from the environment.

mod common;

use common::{free_port, temp_dir, Server};
use redis::{cmd, Connection};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_matou-kv");

fn get(c: &mut Connection, k: &str) -> Option<String> {
    cmd("GET").arg(k).query(c).unwrap()
}

/// Runs the server on `dir` expecting it to exit at once (it must not
/// start serving): its status and stderr.
fn refused_start(dir: &Path, extra: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(["--port", &free_port().to_string(), "--workers", "0"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_log(file: &Path) -> Output {
    Command::new(BIN)
        .arg("check-log")
        .arg(file)
        .output()
        .unwrap()
}

/// Writes `n` keys through a server on `dir`, stops it, and returns the
/// log's bytes and each record's start.
fn make_log(dir: &Path, n: usize) -> (Vec<u8>, Vec<u64>) {
    let mut s = Server::start(dir, &["--fsync", "no"]);
    {
        let mut c = s.client();
        let mut p = redis::pipe();
        for i in 0..n {
            p.cmd("SET").arg(format!("k{i}")).arg(format!("v{i}"));
        }
        p.query::<()>(&mut c).unwrap();
    }
    assert!(s.terminate().success());
    let bytes = std::fs::read(s.log_path()).unwrap();
    let mut starts = Vec::new();
    let mut at = 12usize;
    while at < bytes.len() {
        starts.push(at as u64);
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    assert_eq!(starts.len(), n, "one record per SET");
    (bytes, starts)
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("appendonly.mlog")
}

/// Scenario 1: one flipped bit in record 10 of 5,000.
#[test]
fn a_flipped_bit_refuses_the_start_and_repair_recovers_every_intact_record() {
    let dir = temp_dir("flipped-bit");
    let (mut bytes, starts) = make_log(&dir, 5000);
    let path = log_path(&dir);
    bytes[starts[10] as usize + 8 + 3] ^= 0x04;
    std::fs::write(&path, &bytes).unwrap();
    let crc = crc32fast::hash(&bytes);
    let after = bytes.len() as u64 - starts[10];

    let (status, err) = refused_start(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&format!("at offset {}", starts[10])), "{err}");
    assert!(err.contains(&format!("{after} bytes from there")), "{err}");
    assert!(err.contains("--repair-log"), "{err}");
    let now = std::fs::read(&path).unwrap();
    assert_eq!(crc32fast::hash(&now), crc, "the log's checksum changed");
    assert_eq!(now, bytes, "the log was changed");

    // check-log reports the same, and changes nothing either.
    let out = check_log(&path);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("at offset {}", starts[10])),
        "{report}"
    );
    assert!(
        report.contains(&format!("{after} bytes from there")),
        "{report}"
    );
    assert!(report.contains("4989 intact records after it"), "{report}");
    assert!(report.contains("4999 intact records"), "{report}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    let mut s = Server::start(&dir, &["--repair-log"]);
    let err = s.stderr();
    assert!(err.contains("4999 intact records recovered"), "{err}");
    assert!(
        err.contains(&format!("lost: bytes {}..{}", starts[10], starts[11])),
        "{err}"
    );
    let mut c = s.client();
    assert_eq!(get(&mut c, "k10"), None);
    for i in (0..5000).filter(|&i| i != 10) {
        assert_eq!(get(&mut c, &format!("k{i}")), Some(format!("v{i}")), "k{i}");
    }
    let copies: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("appendonly.mlog.damaged-")
        })
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(
        std::fs::read(&copies[0]).unwrap(),
        bytes,
        "the copy is whole"
    );
    drop(c);
    assert!(s.terminate().success());
    let out = check_log(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The repaired log serves a plain restart.
    s.spawn();
    assert_eq!(get(&mut s.client(), "k4999").as_deref(), Some("v4999"));
}

/// Scenario 2: 1 MiB of unrelated bytes as the log.
#[test]
fn a_foreign_file_is_refused_untouched() {
    let dir = temp_dir("foreign");
    let mut seed = 0x853c_49e6_748f_ea9bu64 ^ u64::from(std::process::id());
    let junk: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    let path = log_path(&dir);
    std::fs::write(&path, &junk).unwrap();
    let (status, err) = refused_start(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("not a matou-kv log"), "{err}");
    assert!(err.contains("at offset 0, 1048576 bytes"), "{err}");
    assert_eq!(
        crc32fast::hash(&std::fs::read(&path).unwrap()),
        crc32fast::hash(&junk)
    );
    assert_eq!(std::fs::read(&path).unwrap(), junk);
    let out = check_log(&path);
    assert_eq!(out.status.code(), Some(1));
    // Another format version is refused the same way.
    let mut v2 = b"MATOU-KV\x02\0\0\0".to_vec();
    v2.extend_from_slice(&junk[..100]);
    std::fs::write(&path, &v2).unwrap();
    let (status, err) = refused_start(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("format version 2"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), v2);
    let (status, err) = refused_start(&dir, &["--repair-log"]);
    assert_eq!(status.code(), Some(1), "not repaired away: {err}");
    assert_eq!(std::fs::read(&path).unwrap(), v2);
    // A foreign file under --repair-log is moved aside whole, and the
    // server starts empty.
    std::fs::write(&path, &junk).unwrap();
    let mut s = Server::start(&dir, &["--repair-log"]);
    let n: i64 = cmd("DBSIZE").query(&mut s.client()).unwrap();
    assert_eq!(n, 0);
    assert!(s.stderr().contains("lost: the whole file (1048576 bytes)"));
    let kept = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(".damaged-"))
        .expect("a copy");
    assert_eq!(std::fs::read(kept).unwrap(), junk);
}

/// Scenario 3: `appendonly.mlog -> victim.txt`.
#[test]
fn a_symlinked_log_is_refused_and_its_target_untouched() {
    let dir = temp_dir("symlink");
    let victim = dir.with_extension("victim.txt");
    let text = b"someone else's file\n".repeat(100);
    std::fs::write(&victim, &text).unwrap();
    std::os::unix::fs::symlink(&victim, log_path(&dir)).unwrap();
    let (status, err) = refused_start(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), text);
    // --repair-log does not touch it either: it is not a log to repair.
    let (status, _) = refused_start(&dir, &["--repair-log"]);
    assert_eq!(status.code(), Some(1));
    assert_eq!(std::fs::read(&victim).unwrap(), text);
    std::fs::remove_file(&victim).unwrap();
}

/// Scenario 4: two servers on one data directory.
#[test]
fn a_second_server_on_the_same_directory_exits_naming_the_first() {
    let dir = temp_dir("two-servers");
    let mut first = Server::start(&dir, &[]);
    let pid = first.child.as_ref().unwrap().id();
    let (status, err) = refused_start(&dir, &[]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains("one server per data directory"), "{err}");
    let mut c = first.client();
    let pong: String = cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let () = cmd("SET").arg("still").arg("mine").query(&mut c).unwrap();
    drop(c);
    assert!(first.terminate().success());
    // Once the first is gone, the directory is free again.
    first.spawn();
    assert_eq!(get(&mut first.client(), "still").as_deref(), Some("mine"));
}

#[test]
fn a_torn_tail_is_still_cut_and_reported_and_check_log_says_so() {
    let dir = temp_dir("torn");
    let (bytes, starts) = make_log(&dir, 20);
    let path = log_path(&dir);
    let torn = &bytes[..bytes.len() - 3];
    std::fs::write(&path, torn).unwrap();
    let out = check_log(&path);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{report}");
    assert!(
        report.contains(&format!(
            "torn tail: torn record (incomplete write) at offset {}",
            starts[19]
        )),
        "{report}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        torn,
        "check-log changes nothing"
    );
    let mut s = Server::start(&dir, &[]);
    assert_eq!(get(&mut s.client(), "k18").as_deref(), Some("v18"));
    assert_eq!(get(&mut s.client(), "k19"), None);
    let err = s.stderr();
    assert!(
        err.contains("torn tail") && err.contains(&format!("offset {}", starts[19])),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), starts[19]);
}

#[test]
fn a_header_less_log_from_the_previous_version_is_migrated() {
    let dir = temp_dir("legacy");
    let mut legacy = Vec::new();
    for i in 0..100 {
        let rec = matou_kv::record::LogRecord::Set {
            key: format!("old{i}").into_bytes(),
            value: b"kept".to_vec(),
            expire_at_ms: None,
        };
        assert!(matou_kv::aof::frame(&rec, &mut legacy));
    }
    let path = log_path(&dir);
    std::fs::write(&path, &legacy).unwrap();
    let mut s = Server::start(&dir, &[]);
    let mut c = s.client();
    for i in 0..100 {
        assert_eq!(get(&mut c, &format!("old{i}")).as_deref(), Some("kept"));
    }
    assert!(s.stderr().contains("without the format header"));
    assert!(std::fs::read(&path)
        .unwrap()
        .starts_with(b"MATOU-KV\x01\0\0\0"));
    drop(c);
    assert!(s.terminate().success());
    assert!(check_log(&path).status.success());
}

#[test]
fn files_are_private_under_umask_000() {
    let base = temp_dir("umask");
    let dir = base.join("new").join("data");
    let port = free_port();
    let script = format!(
        "umask 000; exec '{BIN}' --port {port} --workers 0 --dir '{}'",
        dir.display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(port, &mut child).expect("the server exited");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let modes = (
        mode(&dir),
        mode(&dir.join("appendonly.mlog")),
        mode(&dir.join("matou-kv.lock")),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(modes, (0o700, 0o600, 0o600));
}

#[test]
fn requirepass_can_come_from_the_environment() {
    let dir = temp_dir("env-pass");
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["--port", &port.to_string(), "--workers", "0", "--dir"])
        .arg(&dir)
        .env("MATOU_KV_REQUIREPASS", "from-env")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_listening(port, &mut child).expect("the server exited");
    let url = |auth: &str| format!("redis://{auth}127.0.0.1:{port}/");
    let mut c = redis::Client::open(url(""))
        .unwrap()
        .get_connection()
        .unwrap();
    let e = cmd("PING").query::<String>(&mut c).unwrap_err();
    let with_pw = redis::Client::open(url(":from-env@"))
        .unwrap()
        .get_connection();
    let pong = with_pw.map(|mut c| cmd("PING").query::<String>(&mut c));
    let _ = child.kill();
    let _ = child.wait();
    assert!(e.to_string().contains("NOAUTH"), "{e}");
    assert_eq!(pong.unwrap().unwrap(), "PONG");
}
