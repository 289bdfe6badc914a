//! `matou-kv`: parses the flags, replays the log, then serves until shutdown.
//!
//! Exit status: 0 after a graceful shutdown, 1 when the server cannot start
//! or fails, 2 for bad flags.

use matou_kv::aof::Aof;
use matou_kv::config::{self, Parsed};
use matou_kv::databases::Databases;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match config::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("matou-kv: {e}");
            return ExitCode::from(2);
        }
    };
    // Replay before serving: no client ever sees a partly loaded store.
    let mut store = Databases::new(config.databases);
    let started = std::time::Instant::now();
    let aof = match Aof::open(&config.dir, config.fsync, &mut store) {
        Ok((aof, replayed)) => {
            eprintln!(
                "matou-kv: {}: {} records replayed, {} keys, in {:?}",
                aof.path().display(),
                replayed.records,
                store.len(),
                started.elapsed()
            );
            aof
        }
        Err(e) => {
            eprintln!(
                "matou-kv: cannot open the log in {}: {e}",
                config.dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if store.count() > config.databases {
        eprintln!(
            "matou-kv: the log uses {} databases, more than `databases` ({}): start with \
             --databases {} or more",
            store.count(),
            config.databases,
            store.count()
        );
        return ExitCode::FAILURE;
    }
    let workers = config.workers;
    match matou::unix::builder()
        .extra_workers(workers)
        .run(matou_kv::server::run(config, store, aof))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("matou-kv: {e}");
            ExitCode::FAILURE
        }
    }
}
