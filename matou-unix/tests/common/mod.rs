//! Helpers shared by the integration tests: a bounded run on N workers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// Aborts the whole test process if the guard lives longer than `secs`:
/// a hung reactor must fail the suite, not stall it.
pub struct Watchdog(Option<mpsc::Sender<()>>);

pub fn watchdog(name: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("watchdog: test {name} still running after {secs}s: aborting");
            std::process::abort();
        }
    });
    Watchdog(Some(tx))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs `fut` with matou-unix's event source on dom0 plus `extra` workers,
/// under a 60-second watchdog.
pub fn run<Fut: Future + 'static>(name: &'static str, extra: usize, fut: Fut) -> Fut::Output {
    let _w = watchdog(name, 60);
    matou_unix::builder().extra_workers(extra).run(fut)
}

/// The worker counts every operation is tested with: one worker, several.
pub const WORKERS: [usize; 2] = [0, 2];

pub fn loopback4() -> std::net::SocketAddr {
    (std::net::Ipv4Addr::LOCALHOST, 0).into()
}

pub fn loopback6() -> std::net::SocketAddr {
    (std::net::Ipv6Addr::LOCALHOST, 0).into()
}

/// Whether IPv6 loopback is usable here (some sandboxes disable it).
pub fn has_ipv6() -> bool {
    std::net::TcpListener::bind(loopback6()).is_ok()
}

/// Deterministic test payload.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}
