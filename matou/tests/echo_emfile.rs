//! The echo server running out of file descriptors: in a child process with
//! a low `RLIMIT_NOFILE`, `accept` fails with `EMFILE`; the server must back
//! off (not spin, not fail) and serve the waiting clients once descriptors
//! free up.
//!
//! The child is this test binary re-executed (through `sh -c 'ulimit -n ..'`)
//! with `MATOU_EMFILE_CHILD` set, running only `emfile_child`, which serves
//! until its stdin closes and prints its port and final statistics.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "MATOU_EMFILE_CHILD";
const FD_LIMIT: u32 = 48;
const CLIENTS: usize = 60;

/// The child's side (a no-op in a normal test run).
#[test]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let stop = matou::unix::echo::Stop::new();
    {
        // Stop when the parent closes our stdin.
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            stop.trigger();
        });
    }
    let stats = matou::unix::builder().extra_workers(0).run(async move {
        let l = matou::unix::net::TcpListener::bind(([127, 0, 0, 1], 0)).unwrap();
        println!("PORT {}", l.local_addr().unwrap().port());
        matou::unix::echo::serve(l, stop).await
    });
    println!("STATS {:?}", stats.unwrap());
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which ends with the last ')').
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn accept_backs_off_on_emfile_and_recovers() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\""))
        .arg(&exe)
        .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("the child printed its port").unwrap();
        // libtest may print "test emfile_child ... " on the same line.
        if let Some(at) = line.find("PORT ") {
            let digits: String = line[at + 5..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            break digits.parse().unwrap();
        }
    };

    // More clients than the child has descriptors: the kernel completes every
    // connection into the backlog; the server can accept only some.
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(format!("hi {i:03}").as_bytes()).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // While the server is out of descriptors it must sleep, not spin.
    let cpu0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(1000));
    let cpu = cpu_ticks(pid) - cpu0;
    assert!(
        cpu <= 30,
        "the server burnt {cpu} ticks in 1 s while out of descriptors"
    );
    assert!(
        open_fds(pid) >= FD_LIMIT as usize - 1,
        "the child is at its descriptor limit"
    );

    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for (i, mut s) in clients.drain(..).enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 6];
        match s.read(&mut buf) {
            Ok(6) => {
                assert_eq!(&buf, format!("hi {i:03}").as_bytes());
                served.push(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => waiting.push((i, s)),
            r => panic!("client {i}: unexpected {r:?}"),
        }
    }
    assert!(!served.is_empty(), "the server served some clients");
    assert!(!waiting.is_empty(), "the limit held some clients back");
    assert!(
        waiting.len() < served.len(),
        "the test is sized so one round of frees suffices"
    );

    // Free descriptors: the served clients leave, their tasks end, and the
    // backed-off accept picks the waiting clients up.
    let n_served = served.len();
    drop(served);
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, mut s) in waiting {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        let mut buf = [0u8; 6];
        s.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("client {i} was never served: {e}"));
        assert_eq!(&buf, format!("hi {i:03}").as_bytes());
    }

    drop(child.stdin.take());
    // Read the child's output to its end (closing the pipe early would fail
    // its harness's last prints).
    let out: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let stats = out
        .iter()
        .find(|l| l.contains("STATS"))
        .expect("final stats");
    let status = child.wait().unwrap();
    assert!(status.success(), "the child failed: {status}");
    assert!(
        stats.contains(&format!("accepted: {CLIENTS}")),
        "{stats} ({n_served} served first)"
    );
}
