//! Poll hooks and task names: each poll is bracketed by `start` and `stop`
//! on the polling worker's thread, with the task's name and worker.

use matou_core::*;
use std::sync::{Arc, Mutex};

type Log = Arc<Mutex<Vec<(String, u64, Option<String>, usize)>>>;

fn record(log: &Log, what: &str, info: &TaskInfo<'_>) {
    log.lock().unwrap().push((
        what.to_owned(),
        info.id.as_u64(),
        info.name.map(str::to_owned),
        info.worker.index(),
    ));
}

#[test]
fn every_poll_is_bracketed_by_start_and_stop_with_name_and_worker() {
    let log: Log = Arc::default();
    let (l1, l2) = (log.clone(), log.clone());
    let (named_id, remote_worker) = Builder::new()
        .extra_workers(2)
        .on_task_poll(
            move |i| record(&l1, "start", i),
            move |i| record(&l2, "stop", i),
        )
        .run(async {
            let named = spawn_named("greeter", async {
                yield_now().await;
            });
            let id = named.id().as_u64();
            named.await.unwrap();
            let remote = call(|| async { current_worker().index() }).unwrap();
            (id, remote.await.unwrap())
        });
    let log = log.lock().unwrap();
    // Per worker, polls do not nest: start and stop alternate, same task.
    for worker in 0..3 {
        let events: Vec<_> = log.iter().filter(|e| e.3 == worker).collect();
        for pair in events.chunks(2) {
            assert_eq!(pair.len(), 2, "a start without its stop: {pair:?}");
            assert_eq!((pair[0].0.as_str(), pair[1].0.as_str()), ("start", "stop"));
            assert_eq!(pair[0].1, pair[1].1);
        }
    }
    let greeter: Vec<_> = log.iter().filter(|e| e.1 == named_id).collect();
    assert_eq!(greeter.len(), 4, "two polls (one yield): {greeter:?}");
    assert!(greeter
        .iter()
        .all(|e| e.2.as_deref() == Some("greeter") && e.3 == 0));
    assert!(log.iter().any(|e| e.3 == remote_worker && e.3 != 0));
}
