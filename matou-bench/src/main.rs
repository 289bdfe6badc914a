//! matou-bench: matou against tokio, side by side in one process.
//!
//! ```text
//! cargo run --release -p matou-bench -- [--json FILE] [--quick] [--backend B] [--list] [SUITE...]
//! ```
//!
//! Suites: `core` (the scheduler workloads of tokio's
//! `benches/rt_multi_threaded.rs`), `sync` (mutex, channels, oneshot, against
//! `tokio::sync`), `unix` (TCP echo, timer churn), `fs` (file copy, small
//! files, against `tokio::fs`), `http` (a hyper hello-world on matou-hyper
//! and on tokio). No
//! suite runs them all. Each benchmark alternates one matou sample and one
//! tokio sample for K rounds and reports the medians (see [`harness`]); the
//! table goes to stdout and, with `--json FILE`, one JSON object per line
//! `{"suite", "name", "baseline", "matou_ns", "tokio_ns", "ratio"}` goes to
//! `FILE`. `--quick` runs few iterations (`--quick core` is the CI smoke run).
//! `--backend epoll|uring|both` picks the reactor backend(s) of the I/O rows
//! (`unix` echo, `fs` small files; default epoll): rows on io_uring are
//! suffixed ` [uring]` (a worker where io_uring is unavailable falls back
//! to epoll and says so on stderr).

mod harness;
mod suites;

use harness::{Config, Report};
use std::process::ExitCode;

const SUITES: &[(&str, &str)] = &[
    (
        "core",
        "scheduler: spawn many local/remote, yield many, ping-pong, chained spawn",
    ),
    (
        "sync",
        "matou::sync vs tokio::sync: mutex, mpsc 1/4/16 producers, oneshot",
    ),
    (
        "http",
        "hyper hello-world, HTTP/1.1 keep-alive, 64 connections (time/req, p99)",
    ),
    (
        "unix",
        "TCP echo 1 KiB at 1/64/512 connections (time/msg, p99), timer churn",
    ),
    (
        "fs",
        "files: copy 256 MiB (fs::copy, File chunks), read 10,000 small files",
    ),
];

fn usage() -> &'static str {
    "usage: matou-bench [--json FILE] [--quick] [--backend epoll|uring|both] [--list] [SUITE...]"
}

fn main() -> ExitCode {
    let mut json = None;
    let mut quick = false;
    let mut backends: &'static [matou::unix::Backend] = &[matou::unix::Backend::Epoll];
    let mut selected: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => match args.next() {
                Some(f) => json = Some(f),
                None => {
                    eprintln!("--json needs a file\n{}", usage());
                    return ExitCode::FAILURE;
                }
            },
            "--quick" => quick = true,
            "--backend" => {
                use matou::unix::Backend::{Epoll, Uring};
                backends = match args.next().as_deref() {
                    Some("epoll") => &[Epoll],
                    Some("uring") => &[Uring],
                    Some("both") => &[Epoll, Uring],
                    other => {
                        eprintln!("--backend: {other:?}: epoll, uring or both\n{}", usage());
                        return ExitCode::FAILURE;
                    }
                };
            }
            "--list" => {
                for (name, what) in SUITES {
                    println!("{name:<6} {what}");
                }
                return ExitCode::SUCCESS;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            s if SUITES.iter().any(|(n, _)| *n == s) => selected.push(arg),
            other => {
                eprintln!("unknown argument or suite {other:?}\n{}", usage());
                return ExitCode::FAILURE;
            }
        }
    }
    if selected.is_empty() {
        selected = SUITES.iter().map(|(n, _)| n.to_string()).collect();
    }

    let cfg = Config {
        backends,
        ..Config::new(quick)
    };
    let mut report = Report::default();
    for suite in &selected {
        match suite.as_str() {
            "core" => suites::core::run(&cfg, &mut report),
            "sync" => suites::sync::run(&cfg, &mut report),
            "unix" => suites::unix::run(&cfg, &mut report),
            "fs" => suites::fs::run(&cfg, &mut report),
            "http" => suites::http::run(&cfg, &mut report),
            _ => unreachable!("checked above"),
        }
    }
    if let Some(path) = json {
        if let Err(e) = report.write_json(&path) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
