//! node-redis (latest, with its defaults: RESP3 through `HELLO 3`, SETNAME
//! in the handshake, MULTI/EXEC transactions, pub/sub push frames) against
//! the real server: runs `tests/node/node_redis_defaults.mjs`. Needs node
//! and the package installed in `tests/node` (`npm ci --prefix
//! matou-kv/tests/node`; scripts/test does it); a missing one fails the test
//! with what to run, it is never skipped silently.

mod common;

use common::{run_client_program, temp_dir, Server};
use std::path::Path;
use std::process::Command;

#[test]
fn node_redis_with_its_defaults() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let have_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have_node && here.join("node_modules/redis").is_dir(),
        "node and node-redis are needed: `npm ci --prefix matou-kv/tests/node` (scripts/test does it)"
    );
    let dir = temp_dir("node-redis");
    let mut server = Server::start(&dir, &["--workers", "2"]);
    run_client_program(
        &mut server,
        "node",
        &here.join("node_redis_defaults.mjs"),
        "node-redis",
    );
}
