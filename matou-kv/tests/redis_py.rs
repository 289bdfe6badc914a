//! redis-py (latest, with its defaults: RESP3 and MULTI/EXEC pipelines)
//! against the real server: runs `tests/py/redis_py_defaults.py`. Needs
//! python3 with the `redis` package (scripts/test installs it); a missing
//! one fails the test with what to install, it is never skipped silently.

mod common;

use common::{temp_dir, Server};
use std::process::Command;

#[test]
fn redis_py_with_its_defaults() {
    let have = Command::new("python3")
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        have,
        "python3 with redis-py is needed: `python3 -m pip install redis` (scripts/test does it)"
    );
    let dir = temp_dir("redis-py");
    let mut server = Server::start(&dir, &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/redis_py_defaults.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(server.port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-py: {}{}\nserver: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
}
