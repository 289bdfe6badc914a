//! The `matou-web` binary: serves [`matou_web`] until SIGTERM or SIGINT, then
//! shuts down gracefully and exits 0.
//!
//! ```text
//! matou-web [--addr 127.0.0.1:8080] [--static DIR] [--body-limit BYTES]
//!           [--timeout-ms MS] [--grace-ms MS] [--workers N]
//! ```
//!
//! Prints `listening on ADDR` on stdout once it accepts (with `--addr
//! 127.0.0.1:0` the OS picks the port), and a summary of the connections on
//! stderr when it is done. Exit status: 0 after a signal-driven shutdown, 1
//! when serving failed, 2 for bad arguments.

use matou::unix::net::TcpListener;
use matou::unix::signal::{SignalKind, Signals};
use matou_hyper::Shutdown;
use matou_web::Config;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

struct Args {
    addr: SocketAddr,
    config: Config,
    grace: Duration,
    workers: Option<usize>,
}

const USAGE: &str = "usage: matou-web [--addr IP:PORT] [--static DIR] [--body-limit BYTES] \
                     [--timeout-ms MS] [--grace-ms MS] [--workers N]";

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        config: Config::default(),
        grace: Duration::from_secs(10),
        workers: None,
    };
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        let bad = |v: &str| format!("{flag}: invalid value {v:?}");
        match flag.as_str() {
            "--addr" => {
                let v = value()?;
                args.addr = v.parse().map_err(|_| bad(&v))?;
            }
            "--static" => args.config.static_dir = Some(value()?.into()),
            "--body-limit" => {
                let v = value()?;
                args.config.body_limit = v.parse().map_err(|_| bad(&v))?;
            }
            "--timeout-ms" => {
                let v = value()?;
                args.config.request_timeout =
                    Duration::from_millis(v.parse().map_err(|_| bad(&v))?);
            }
            "--grace-ms" => {
                let v = value()?;
                args.grace = Duration::from_millis(v.parse().map_err(|_| bad(&v))?);
            }
            "--workers" => {
                let v = value()?;
                args.workers = Some(v.parse().map_err(|_| bad(&v))?);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let mut builder = matou::builder();
    if let Some(n) = args.workers {
        builder = builder.extra_workers(n);
    }
    builder.run(async move {
        // Handlers first: a SIGTERM right after "listening" must not kill us.
        let mut signals = match Signals::new(&[SignalKind::TERM, SignalKind::INT]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("matou-web: signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match TcpListener::bind(args.addr) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("matou-web: bind {}: {e}", args.addr);
                return ExitCode::FAILURE;
            }
        };
        let app = match matou_web::App::new(args.config) {
            Ok(app) => app,
            Err(e) => {
                eprintln!("matou-web: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(addr) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "listening on {addr}");
                let _ = out.flush();
            }
            Err(e) => eprintln!("matou-web: local address: {e}"),
        }
        let stop = Shutdown::new(args.grace);
        let on_signal = matou::spawn({
            let stop = stop.clone();
            async move {
                let kind = signals.recv().await;
                eprintln!("matou-web: {kind:?}: shutting down");
                stop.trigger();
            }
        });
        let served = matou_hyper::serve(listener, app, stop).await;
        // Over either way; a watcher that saw no signal is cancelled.
        let _ = on_signal.cancel().await;
        match served {
            Ok(report) => {
                eprintln!(
                    "matou-web: {} connections: {} finished, {} failed, {} cancelled, {} panicked",
                    report.accepted,
                    report.finished,
                    report.failed,
                    report.cancelled,
                    report.panicked
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("matou-web: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
