//! Child processes: [`Command`] (std's builder, spawned as usual) and
//! [`Child`], whose pipes are async streams and whose [`Child::wait`] never
//! blocks a worker.
//!
//! Waiting: on Linux ≥ 5.3 a pidfd (`pidfd_open`) is registered with the
//! worker's reactor through [`AsyncFd`]; it turns readable when the child
//! exits, and the child is then reaped with std's `try_wait`. Where
//! `pidfd_open` is missing (`ENOSYS`, older kernels, seccomp), the wait runs
//! on the [blocking pool](crate::blocking) as a `waitid(WNOWAIT)`: it costs
//! one pool thread per waiting child, and a cancelled wait keeps its thread
//! until the child exits.
//!
//! Drop policy: dropping a [`Child`] that was not reaped never leaves a
//! zombie. With [`Command::kill_on_drop`] the child is sent `SIGKILL`
//! first; without it, it keeps running. Either way it is handed to a
//! background reaper (a dedicated pool of threads, one blocked in
//! `waitpid` per orphan) which collects its status when it exits.
//!
//! Invariants: a child is reaped exactly once, by std's `Child` (so its pid
//! cannot be reused while a `Child` or the reaper holds it); the pidfd is
//! released from the reactor before it is closed.

mod pipes;

pub use pipes::{ChildStderr, ChildStdin, ChildStdout};

use crate::blocking::{BlockingPool, PoolConfig};
use crate::fd::AsyncFd;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;

/// A process builder: std's [`std::process::Command`] plus the async
/// parts. Stdio defaults are std's (inherited for `spawn`/`status`; for
/// `output`, stdout and stderr piped and stdin null).
#[derive(Debug)]
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    /// Which of stdin, stdout, stderr the user set (for `output`'s defaults).
    set: [bool; 3],
}

impl Command {
    /// A command running `program` (looked up in `PATH` as std does).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            std: std::process::Command::new(program),
            kill_on_drop: false,
            set: [false; 3],
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Command {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Removes an environment variable for the child.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's standard input: `Stdio::piped()`, `inherit()`, `null()`.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.set[0] = true;
        self
    }

    /// The child's standard output.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.set[1] = true;
        self
    }

    /// The child's standard error.
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.set[2] = true;
        self
    }

    /// Whether dropping the [`Child`] before it was reaped kills it
    /// (`SIGKILL`; default off). Reaping happens either way (module docs).
    pub fn kill_on_drop(&mut self, on: bool) -> &mut Command {
        self.kill_on_drop = on;
        self
    }

    /// std's builder, for settings not mirrored here (`uid`, `pre_exec`...).
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the child. `fork`/`exec` themselves run on the calling worker
    /// (as in std: they do not wait for the child).
    ///
    /// # Errors
    /// std's (e.g. `NotFound` for a missing program), or when a pipe cannot
    /// be made non-blocking.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let child = self.std.spawn()?;
        Child::new(child, self.kill_on_drop)
    }

    /// Runs the child to completion with its output collected. As in std,
    /// stdout and stderr default to piped (collected) and stdin to null;
    /// what was set explicitly on this `Command` wins. Unlike std, the
    /// defaults stay set on this `Command` afterwards (std's builder cannot
    /// unset them).
    ///
    /// # Errors
    /// As [`Command::spawn`] and [`Child::wait_with_output`].
    pub async fn output(&mut self) -> io::Result<Output> {
        if !self.set[0] {
            self.std.stdin(Stdio::null());
        }
        if !self.set[1] {
            self.std.stdout(Stdio::piped());
        }
        if !self.set[2] {
            self.std.stderr(Stdio::piped());
        }
        self.spawn()?.wait_with_output().await
    }

    /// Runs the child to completion and returns its status.
    ///
    /// # Errors
    /// As [`Command::spawn`] and [`Child::wait`].
    pub async fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait().await
    }
}

/// A running (or exited, not yet awaited) child process. See the module
/// docs for what dropping it does.
#[derive(Debug)]
pub struct Child {
    /// `None` only during drop.
    std: Option<std::process::Child>,
    /// `None` where the kernel has no pidfd: waits go to the pool.
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
    kill_on_drop: bool,
    /// The child's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if piped.
    pub stderr: Option<ChildStderr>,
}

impl Child {
    fn new(mut std: std::process::Child, kill_on_drop: bool) -> io::Result<Child> {
        let stdin = std.stdin.take().map(ChildStdin::new).transpose()?;
        let stdout = std.stdout.take().map(ChildStdout::new).transpose()?;
        let stderr = std.stderr.take().map(ChildStderr::new).transpose()?;
        // Only the absence of pidfds selects the fallback; other errors
        // (EMFILE...) are the caller's.
        let pidfd = match crate::sys::pidfd_open(std.id()) {
            Ok(fd) => Some(AsyncFd::new(fd)?),
            Err(e) if e.raw_os_error() == Some(38 /* ENOSYS */) => None,
            Err(e) => {
                let _ = std.kill();
                reap_in_background(std);
                return Err(e);
            }
        };
        Ok(Child {
            std: Some(std),
            pidfd,
            status: None,
            kill_on_drop,
            stdin,
            stdout,
            stderr,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.std().id()
    }

    fn std(&self) -> &std::process::Child {
        self.std.as_ref().expect("std child present until drop")
    }

    /// The exit status if the child has exited (reaping it), else `None`.
    ///
    /// # Errors
    /// The OS's (`waitpid`).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.std.as_mut().expect("std child").try_wait()?;
        }
        Ok(self.status)
    }

    /// Waits for the child to exit and returns its status (a child killed by
    /// a signal reports it: `ExitStatusExt::signal`). Closes stdin first, as
    /// std does, so a child reading it sees the end of input.
    ///
    /// Cancel-safe: dropping the future loses nothing (the status is kept
    /// for the next call).
    ///
    /// # Errors
    /// The OS's.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        if let Some(pidfd) = &self.pidfd {
            let std = self.std.as_mut().expect("std child");
            let status = pidfd
                .read_with(|_| match std.try_wait() {
                    Ok(Some(status)) => Ok(status),
                    Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
                    Err(e) => Err(e),
                })
                .await?;
            self.status = Some(status);
            return Ok(status);
        }
        let pid = self.id();
        crate::blocking::unblock(move || crate::sys::wait_exited_nowait(pid)).await?;
        self.try_wait()?
            .ok_or_else(|| io::Error::other("the child exited but is not waitable"))
    }

    /// Sends `SIGKILL` (a no-op error-free if it has already exited but is
    /// not reaped yet). Does not wait: see [`Child::kill`].
    ///
    /// # Errors
    /// The OS's.
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        self.std.as_mut().expect("std child").kill()
    }

    /// Kills the child and waits for it.
    ///
    /// # Errors
    /// The OS's.
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await.map(drop)
    }

    /// Reads stdout and stderr to their ends (those that are piped) while
    /// waiting for the child; the status comes with them.
    ///
    /// # Errors
    /// The OS's; the child is then left to the drop policy.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = read_both(self.stdout.take(), self.stderr.take()).await?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// Reads both pipes to the end at the same time (reading one then the other
/// could deadlock a child that fills the second pipe first).
async fn read_both(
    out: Option<ChildStdout>,
    err: Option<ChildStderr>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    use futures_io::AsyncRead;
    let mut out = out;
    let mut err = err;
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    let mut chunk = vec![0u8; 16 * 1024];
    std::future::poll_fn(|cx| {
        let mut step =
            |r: &mut (dyn AsyncRead + Unpin), buf: &mut Vec<u8>| -> Poll<io::Result<()>> {
                loop {
                    match std::pin::Pin::new(&mut *r).poll_read(cx, &mut chunk) {
                        Poll::Ready(Ok(0)) => return Poll::Ready(Ok(())),
                        Poll::Ready(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            };
        if let Some(o) = out.as_mut() {
            if let Poll::Ready(r) = step(o, &mut out_buf) {
                r?;
                out = None;
            }
        }
        if let Some(e) = err.as_mut() {
            if let Poll::Ready(r) = step(e, &mut err_buf) {
                r?;
                err = None;
            }
        }
        if out.is_none() && err.is_none() {
            Poll::Ready(Ok::<(), io::Error>(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    Ok((out_buf, err_buf))
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(mut std) = self.std.take() else {
            return;
        };
        if self.status.is_some() {
            return;
        }
        if self.kill_on_drop {
            let _ = std.kill();
        }
        if let Ok(None) = std.try_wait() {
            reap_in_background(std);
        }
    }
}

/// Hands a child that has not been reaped to the reaper pool.
fn reap_in_background(mut child: std::process::Child) {
    static REAPER: OnceLock<BlockingPool> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        BlockingPool::new(
            PoolConfig::default()
                .max_threads(1024)
                .idle_timeout(Duration::from_secs(1)),
        )
    });
    drop(reaper.unblock(move || {
        let _ = child.wait();
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn the_pool_fallback_waits_without_a_pidfd() {
        let st = crate::run(async {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg("sleep 0.1; exit 4")
                .spawn()
                .unwrap();
            // As on a kernel without pidfd_open.
            child.pidfd = None;
            let waiter = matou_core::spawn(async move { child.wait().await.unwrap() });
            let t0 = std::time::Instant::now();
            crate::time::sleep(Duration::from_millis(20)).await;
            assert!(
                t0.elapsed() < Duration::from_millis(90),
                "the worker was blocked"
            );
            let st = waiter.await.unwrap();
            let mut killed = Command::new("sleep").arg("30").spawn().unwrap();
            killed.pidfd = None;
            killed.start_kill().unwrap();
            assert_eq!(killed.wait().await.unwrap().signal(), Some(9));
            st
        });
        assert_eq!(st.code(), Some(4));
    }
}
