//! `matou-kv`: parses the flags, replays the log, then serves until shutdown;
//! or `matou-kv check-log FILE`, which reports on a log and changes nothing.
//!
//! Exit status: 0 after a graceful shutdown, 1 when the server cannot start
//! (a damaged log, a data directory in use) or fails, 2 for bad flags.
//! `check-log`: 0 valid, 1 damaged, 3 only a torn tail, 2 unreadable or a
//! bad command line.

use matou_kv::aof::{files, scan, Aof, LogFile};
use matou_kv::config::{self, Parsed};
use matou_kv::databases::Databases;
use std::path::Path;
use std::process::ExitCode;

/// `matou-kv check-log FILE` (see the module docs).
fn check_log(path: &Path) -> ExitCode {
    let survey =
        files::open_for_reading(path).and_then(|file| scan::survey(&LogFile::new(&file)?, |_| {}));
    match survey {
        Ok(s) => {
            print!("{}: {s}", path.display());
            if s.blocks_start() {
                ExitCode::FAILURE
            } else if s.torn.is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("matou-kv: check-log: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("check-log") {
        let rest: Vec<String> = args.skip(1).collect();
        let [file] = rest.as_slice() else {
            eprintln!("matou-kv: usage: matou-kv check-log FILE");
            return ExitCode::from(2);
        };
        return check_log(Path::new(file));
    }
    let config = match config::parse(args) {
        Ok(Parsed::Run(c)) => *c,
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
    let mut store = Databases::new(config.databases);
    let started = std::time::Instant::now();
    let aof = match Aof::open_with(&config.dir, config.fsync, &mut store, config.repair_log) {
        Ok((aof, replayed, repaired)) => {
            if let Some(r) = repaired {
                eprint!("matou-kv: {r}");
            } else if config.repair_log {
                eprintln!("matou-kv: --repair-log: the log needs no repair");
            }
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
    match matou::builder()
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
