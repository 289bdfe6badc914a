//! Durability beyond a process kill: the server runs with the
//! `matou-kv-faultfs` preload library, which holds every byte written to
//! the data directory in the process's memory until an fsync writes it
//! through. A SIGKILL then loses exactly what was not fsynced, as a power
//! cut would (a plain SIGKILL loses nothing the kernel already has).
//!
//! Eight clients write concurrently (SET, INCR, APPEND) and record every
//! acknowledged reply; the server is killed at a random moment and
//! restarted without the preload; every acknowledged write must be there.
//! The second test proves the first can fail: with the fsync before the
//! reply removed (`MATOU_KV_TEST_SKIP_FSYNC=1`, honoured by debug builds
//! only) acknowledged writes are lost, and the same check must see it.

mod common;

use common::{temp_dir, Server};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CLIENTS: usize = 8;

/// The preload library cargo built with this test (a dev-dependency of
/// matou-kv, so `cargo test -p matou-kv` builds its cdylib next to the
/// test executables).
fn preload_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for d in [deps, deps.parent().unwrap()] {
        let found = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libmatou_kv_faultfs") && n.ends_with(".so"))
            });
        if let Some(p) = found {
            return p;
        }
    }
    panic!(
        "libmatou_kv_faultfs.so not found near {}: build it with `cargo build -p matou-kv-faultfs`",
        exe.display()
    );
}

/// What one client had acknowledged when the server died.
#[derive(Default)]
struct Acked {
    /// `SET k{c}:{i} v{i}` acknowledged, by `i`.
    sets: Vec<u64>,
    /// The last reply of `INCR n{c}`.
    incr: i64,
    /// What `APPEND a{c}` had built when last acknowledged.
    appended: String,
}

impl Acked {
    fn count(&self) -> usize {
        self.sets.len() + self.incr as usize + self.appended.matches(';').count()
    }
}

/// One client: writes until the server goes away.
fn client(server_url: String, c: usize, stop: Arc<AtomicBool>) -> Acked {
    let mut acked = Acked::default();
    let Ok(mut con) = redis::Client::open(server_url)
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
    else {
        return acked;
    };
    con.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut appending = String::new();
    for i in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let ok = match i % 3 {
            0 => redis::cmd("SET")
                .arg(format!("k{c}:{i}"))
                .arg(format!("v{i}"))
                .query::<String>(&mut con)
                .map(|_| acked.sets.push(i))
                .is_ok(),
            1 => redis::cmd("INCR")
                .arg(format!("n{c}"))
                .query::<i64>(&mut con)
                .map(|n| acked.incr = n)
                .is_ok(),
            _ => {
                let piece = format!("{i};");
                appending.push_str(&piece);
                redis::cmd("APPEND")
                    .arg(format!("a{c}"))
                    .arg(&piece)
                    .query::<usize>(&mut con)
                    .map(|len| {
                        assert_eq!(len, appending.len(), "APPEND's reply");
                        acked.appended = appending.clone();
                    })
                    .is_ok()
            }
        };
        if !ok {
            break;
        }
    }
    acked
}

/// Runs the clients against a preloaded server, cuts the power at a random
/// moment, restarts, and returns (acknowledged writes, what was lost).
fn power_cut(skip_fsync: bool) -> (usize, Vec<String>) {
    let scratch = temp_dir("power-cut");
    let dir = scratch.canonicalize().unwrap();
    let lib = preload_library();
    let mut env = vec![
        ("LD_PRELOAD", lib.to_str().unwrap().to_string()),
        ("MATOU_FAULTFS_DIR", dir.to_str().unwrap().to_string()),
    ];
    if skip_fsync {
        env.push(("MATOU_KV_TEST_SKIP_FSYNC", "1".into()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start_with_env(&dir, &["--fsync", "always"], &env);
    // The preload is really in the server (else nothing is tested).
    let pid = server.child.as_ref().unwrap().id();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(
        maps.contains("matou_kv_faultfs"),
        "the preload library is not loaded"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (url, stop) = (server.url(), stop.clone());
            std::thread::spawn(move || client(url, c, stop))
        })
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(Duration::from_millis(400 + u64::from(nanos % 600)));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = clients.into_iter().map(|t| t.join().unwrap()).collect();

    // Back up without the preload: what the disk holds is all there is.
    server.env.clear();
    server.spawn();
    let mut con = server.client();
    let mut lost = Vec::new();
    for (c, a) in acked.iter().enumerate() {
        for i in &a.sets {
            let v: Option<String> = redis::cmd("GET")
                .arg(format!("k{c}:{i}"))
                .query(&mut con)
                .unwrap();
            if v.as_deref() != Some(format!("v{i}").as_str()) {
                lost.push(format!("SET k{c}:{i} acknowledged, now {v:?}"));
            }
        }
        let n: Option<i64> = redis::cmd("GET")
            .arg(format!("n{c}"))
            .query(&mut con)
            .unwrap();
        // One more than acknowledged is fine: durable, but the reply was lost.
        if n.unwrap_or(0) < a.incr {
            lost.push(format!("INCR n{c} acknowledged {}, now {n:?}", a.incr));
        }
        let s: Option<String> = redis::cmd("GET")
            .arg(format!("a{c}"))
            .query(&mut con)
            .unwrap();
        if !s.as_deref().unwrap_or("").starts_with(&a.appended) {
            lost.push(format!(
                "APPEND a{c} acknowledged {} bytes, now {} bytes",
                a.appended.len(),
                s.map_or(0, |s| s.len())
            ));
        }
    }
    (acked.iter().map(Acked::count).sum(), lost)
}

#[test]
fn no_acknowledged_write_is_lost_when_unsynced_data_vanishes() {
    let (acked, lost) = power_cut(false);
    assert!(
        acked >= 100,
        "only {acked} writes acknowledged before the cut"
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost of {acked}: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

#[test]
#[cfg(debug_assertions)]
fn the_power_cut_test_detects_replies_sent_before_the_fsync() {
    let (acked, lost) = power_cut(true);
    assert!(
        acked >= 100,
        "only {acked} writes acknowledged before the cut"
    );
    assert!(
        !lost.is_empty(),
        "without the fsync before the reply, no acknowledged write was lost: the test cannot bite"
    );
}
