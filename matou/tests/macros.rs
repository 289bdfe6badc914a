//! `#[matou::test]`: the body runs on the Unix runtime with the asked-for
//! workers, values come back, and a forgotten child fails the test with the
//! spawn site.

use std::time::Duration;

#[matou::test(extra_workers = 2)]
async fn runs_on_the_unix_runtime_with_the_asked_workers() {
    assert_eq!(matou::worker_count(), 3);
    // Timers need the Unix event source.
    matou::unix::time::sleep(Duration::from_millis(1)).await;
    let there = matou::call(|| async { matou::current_worker().index() })
        .unwrap()
        .await
        .unwrap();
    assert_ne!(there, 0);
}

#[matou::test(extra_workers = 0, idle_spin_us = 0)]
async fn returns_a_result() -> Result<(), std::io::Error> {
    assert_eq!(matou::worker_count(), 1);
    let l = matou::unix::net::TcpListener::bind(([127, 0, 0, 1], 0))?;
    l.local_addr()?;
    Ok(())
}

#[matou::test(extra_workers = 0)]
#[should_panic(
    expected = "neither awaited nor cancelled (the first spawned at matou/tests/macros.rs:"
)]
async fn a_forgotten_child_fails_the_test_naming_the_spawn_site() {
    // Not awaited and not cancelled: the run must abort.
    let _child = matou::spawn(async {});
}

#[matou::test(extra_workers = 1)]
#[should_panic(expected = "the body's own panic")]
async fn a_panic_fails_the_test() {
    matou::unix::time::sleep(Duration::from_millis(1)).await;
    panic!("the body's own panic");
}
