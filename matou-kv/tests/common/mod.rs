//! Shared test harness: runs the real `matou-kv` binary on a free loopback
//! port with its own temporary data directory, and kills it on drop so that
//! a failing test never leaves a server behind.
#![allow(dead_code)]

pub mod blocking;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A port that was free a moment ago (redis URLs cannot say "port 0").
/// Whether a server listens on `port`. A connect to a free loopback port
/// can succeed by itself: the kernel may pick that very port as the
/// socket's own (a TCP self-connection), which would also keep the server
/// from binding it; such a connection does not count.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port))
        .is_ok_and(|s| s.local_addr().is_ok_and(|a| a.port() != port))
}

/// Waits (at most 10 s) until a server listens on `port`; `Err` with its
/// exit status if `child`, the server, exits first.
pub fn wait_listening(port: u16, child: &mut Child) -> Result<(), ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listening(port) {
        if let Some(st) = child.try_wait().unwrap() {
            return Err(st);
        }
        assert!(Instant::now() < deadline, "matou-kv did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh, empty directory under the system temp dir, removed (with the
/// server's `.stderr` file beside it) once this handle and every [`Server`]
/// started on it are gone, unless the test is panicking: a failed test keeps
/// its data for a look, and the next test process removes what processes
/// that no longer run left behind.
pub fn temp_dir(name: &str) -> ScratchDir {
    static N: AtomicU32 = AtomicU32::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_dead_processes_dirs);
    let dir = std::env::temp_dir().join(format!(
        "{SCRATCH_PREFIX}{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    scratch_holders().lock().unwrap().insert(dir.clone(), 1);
    ScratchDir { path: dir }
}

const SCRATCH_PREFIX: &str = "matou-kv-test-";

/// A directory made by [`temp_dir`]; derefs to its path.
pub struct ScratchDir {
    path: PathBuf,
}

impl std::ops::Deref for ScratchDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.path
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<std::ffi::OsStr> for ScratchDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        release_scratch(&self.path);
    }
}

/// How many holders (the [`ScratchDir`] and the servers running on it) each
/// live scratch directory has: a test may drop its servers and start new
/// ones on the same directory, or return a server whose directory handle
/// went out of scope; the directory goes only with its last holder.
fn scratch_holders() -> &'static std::sync::Mutex<std::collections::HashMap<PathBuf, usize>> {
    static HOLDERS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, usize>>,
    > = std::sync::OnceLock::new();
    HOLDERS.get_or_init(Default::default)
}

fn retain_scratch(dir: &Path) {
    if let Some(n) = scratch_holders().lock().unwrap().get_mut(dir) {
        *n += 1;
    }
}

fn release_scratch(dir: &Path) {
    let mut holders = scratch_holders().lock().unwrap();
    let Some(n) = holders.get_mut(dir) else {
        return;
    };
    *n -= 1;
    if *n > 0 {
        return;
    }
    holders.remove(dir);
    drop(holders);
    if !std::thread::panicking() {
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_file(dir.with_extension("stderr"));
    }
}

/// Removes the scratch directories (and stderr files) of test processes
/// that no longer run: those a failed test kept.
fn sweep_dead_processes_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)) else {
            continue;
        };
        let rest = rest.strip_suffix(".stderr").unwrap_or(rest);
        // `{name}-{pid}-{n}`: the pid is the second number from the end.
        let pid = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            let _ = std::fs::remove_dir_all(&path);
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A running server.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    pub args: Vec<String>,
    /// Extra environment of the server process (each spawn).
    pub env: Vec<(String, String)>,
    /// Constructed only by [`Server::start_with_env`], which counts the
    /// server as a holder of its scratch directory.
    _holds_dir: (),
}

impl Server {
    /// Starts a server on a fresh port with `dir` and the extra `args`, and
    /// waits until it accepts connections.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        Server::start_with_env(dir, args, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut s = Server {
            child: None,
            port: free_port(),
            dir: dir.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _holds_dir: (),
        };
        retain_scratch(dir);
        s.spawn();
        s
    }

    /// (Re)starts the process on the same port and directory.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(env!("CARGO_BIN_EXE_matou-kv"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .arg("--workers")
            .arg("1")
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.stderr_path())
                    .unwrap(),
            ))
            .spawn()
            .expect("start matou-kv");
        let child = self.child.insert(child);
        if let Err(st) = wait_listening(self.port, child) {
            panic!("matou-kv exited at start: {st}: {}", self.stderr());
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// A raw socket, for what the redis crate cannot send.
    pub fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Sends SIGTERM and waits for the exit (at most 10 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.as_ref().unwrap().id();
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.wait()
    }

    /// Waits for the process to exit (at most 10 s).
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(Instant::now() < deadline, "matou-kv did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Where the server's stderr goes (a file: a pipe nobody reads could
    /// fill up and block the server).
    pub fn stderr_path(&self) -> PathBuf {
        self.dir.with_extension("stderr")
    }

    /// Everything the server processes wrote on stderr so far.
    pub fn stderr(&mut self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("appendonly.mlog")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        release_scratch(&self.dir);
    }
}

/// Sends `bytes` and reads until the server closes the connection (or 5 s).
/// Sends `bytes` and reads until `expected.len()` bytes came (or 10 s of
/// silence, or a close), then compares: for exchanges whose reply is known,
/// where waiting for silence would make a loaded machine's slow reply look
/// like no reply.
pub fn send_and_expect(s: &mut TcpStream, bytes: &[u8], expected: &[u8]) {
    let before = s.read_timeout().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < expected.len() {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    s.set_read_timeout(before).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(expected),
        "reply to {:?}",
        String::from_utf8_lossy(bytes)
    );
}

pub fn send_and_read_all(s: &mut TcpStream, bytes: &[u8]) -> (Vec<u8>, bool) {
    // The server may have closed already (maxclients): a failed write is fine.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // Timeout: the connection is still open.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false)
            }
            // A reset is a close too: a server that closes with unread
            // input in its socket makes the kernel send RST, not FIN.
            Err(_) => return (out, true),
        }
    }
}

/// Runs `args` (the command name first) and returns its reply as `T`,
/// panicking with the command and the error if it failed.
pub fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// Runs `args`, which must fail, and returns the error's text.
pub fn q_err(c: &mut redis::Connection, args: &[&str]) -> String {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    match command.query::<redis::Value>(c) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} answered {v:?}, not an error"),
    }
}

/// Fails, saying what to install, unless python3 can import redis-py.
pub fn require_redis_py() {
    let have = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "python3 with redis-py is needed: `python3 -m pip install redis` (scripts/test does it)"
    );
}

/// Runs `program script PORT` (a client written in another language
/// against `server`) and fails with its output and the server's log unless
/// it exits successfully.
pub fn run_client_program(server: &mut Server, program: &str, script: &Path, what: &str) {
    let out = Command::new(program)
        .arg(script)
        .arg(server.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: {}{}\nserver: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
}
