//! `matou-kv`: parses the flags, replays the log, then serves until shutdown.
//!
//! Exit status: 0 after a graceful shutdown, 1 when the server cannot start
//! or fails, 2 for bad flags.

use matou_kv::aof::Aof;
use matou_kv::config::{self, Parsed};
use matou_kv::store::Store;
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
    // A closed terminal or a reload request must not kill the server
    // (SIGHUP's default action); it has no configuration to reload.
    match matou::unix::signal::ignore_sighup() {
        Ok(()) => eprintln!("matou-kv: SIGHUP is ignored"),
        Err(e) => eprintln!("matou-kv: cannot ignore SIGHUP: {e}"),
    }
    // Replay before serving: no client ever sees a partly loaded store.
    let mut store = Store::new();
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
