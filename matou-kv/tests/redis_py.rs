//! redis-py (latest, with its defaults: RESP3 and MULTI/EXEC pipelines)
//! against the real server: runs `tests/py/redis_py_defaults.py`. Needs
//! python3 with the `redis` package (scripts/test installs it); a missing
//! one fails the test with what to install, it is never skipped silently.

mod common;

use common::{require_redis_py, run_client_program, temp_dir, Server};
use std::path::Path;

#[test]
fn redis_py_with_its_defaults() {
    require_redis_py();
    let dir = temp_dir("redis-py");
    let mut server = Server::start(&dir, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/redis_py_defaults.py");
    run_client_program(&mut server, "python3", &script, "redis-py");
}
