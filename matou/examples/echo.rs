//! The echo server of seed 002 on matou.
//!
//! ```text
//! cargo run --release -p matou --example echo -- [--port P] [--bind IP] [--parallel] [--workers N]
//! ```
//!
//! One accept loop whose clients are orphan tasks, collected before every
//! accept (Miou's `clean_up`); with `--parallel`, every worker runs its own
//! accept loop on its own duplicate of the one listening socket. SIGINT or
//! SIGTERM stops it gracefully: no more accepts, open clients cancelled, the
//! totals printed. The server logic lives in `matou::unix::echo`, shared
//! with the tests and the benches.

use matou::unix::echo::{self, EchoStats, Stop};
use matou::unix::net::TcpListener;
use matou::unix::signal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

struct Args {
    addr: SocketAddr,
    parallel: bool,
    workers: Option<usize>,
}

fn usage() -> ! {
    eprintln!("usage: echo [--port P (default 3000)] [--bind IP (default 127.0.0.1)] [--parallel] [--workers N]");
    std::process::exit(2)
}

fn parse() -> Args {
    let mut ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut port = 3000u16;
    let mut parallel = false;
    let mut workers = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                port = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--bind" => {
                ip = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--workers" => {
                workers = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--parallel" => parallel = true,
            _ => usage(),
        }
    }
    Args {
        addr: SocketAddr::new(ip, port),
        parallel,
        workers,
    }
}

async fn server(args: Args) -> std::io::Result<Vec<EchoStats>> {
    let listener = TcpListener::bind(args.addr)?;
    println!(
        "echo: listening on {} ({} worker(s){})",
        listener.local_addr()?,
        matou::worker_count(),
        if args.parallel {
            ", one accept loop each"
        } else {
            ""
        }
    );
    let stop = Stop::new();
    let on_signal = {
        let stop = stop.clone();
        matou::spawn(async move {
            match signal::shutdown().await {
                Ok(kind) => println!("echo: {kind:?}: stopping"),
                Err(e) => eprintln!("echo: cannot listen for signals ({e}): stopping"),
            }
            stop.trigger();
        })
    };
    let result = if args.parallel {
        echo::serve_parallel(listener, stop.clone()).await
    } else {
        echo::serve(listener, stop.clone()).await.map(|s| vec![s])
    };
    // The signal task is a child: await it if it fired, else cancel it.
    if stop.is_triggered() {
        let _ = on_signal.await;
    } else {
        let _ = on_signal.cancel().await;
    }
    result
}

fn main() -> ExitCode {
    let args = parse();
    let mut builder = matou::builder();
    if let Some(n) = args.workers {
        builder = builder.extra_workers(n.saturating_sub(1));
    }
    match builder.run(server(args)) {
        Ok(stats) => {
            for (i, s) in stats.iter().enumerate() {
                println!("echo: server {i}: {s:?}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}
