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

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "matou-kv-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running server.
pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    pub args: Vec<String>,
    /// Extra environment of the server process (each spawn).
    pub env: Vec<(String, String)>,
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
        };
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
