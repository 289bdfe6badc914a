//! `task_tree`: the snapshot lists exactly the live tasks, each with its
//! parent, worker, name, spawn site and state, on one worker and across
//! workers, and its `Display` indents children under their parent.

use matou_core::sync::oneshot;
use matou_core::*;
use std::future::{pending, poll_fn, Future};
use std::panic::Location;
use std::pin::Pin;
use std::task::Poll;

/// Drops `promise` while it is being awaited: its task is cancelled, and the
/// parent's end waits for it.
async fn abandon<T>(promise: Promise<T>) {
    let mut promise = Box::pin(promise);
    poll_fn(|cx| {
        let _ = Pin::new(&mut promise).poll(cx);
        Poll::Ready(())
    })
    .await;
    drop(promise);
}

fn ids(tree: &TaskTree) -> Vec<TaskId> {
    tree.tasks().iter().map(|t| t.id).collect()
}

fn sorted(mut v: Vec<TaskId>) -> Vec<TaskId> {
    v.sort();
    v
}

/// The one task without a parent (ids are unique, not ordered across
/// threads, so it need not come first).
fn main_task(tree: &TaskTree) -> TaskSnapshot {
    let mut roots = tree.tasks().iter().filter(|t| t.parent.is_none());
    let root = roots.next().expect("the main task is live").clone();
    assert!(roots.next().is_none(), "one root: {tree}");
    root
}

#[track_caller]
fn here() -> &'static Location<'static> {
    Location::caller()
}

#[test]
fn one_worker_lists_exactly_the_live_tasks() {
    Builder::new().extra_workers(0).run(async {
        let main = here();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let parent_line = line!() + 1;
        let parent = spawn_named("parent", async move {
            let (_keep, rx) = oneshot::channel::<()>();
            let child = spawn_named("child", async move { rx.await.ok() });
            let _ = release_rx.await;
            let _ = child.cancel().await;
        });
        let done = spawn(async {});
        let doomed_line = line!() + 1;
        let doomed = spawn_named("doomed", pending::<()>());
        let doomed_id = doomed.id();
        for _ in 0..4 {
            yield_now().await; // every child starts and parks; `done` ends
        }
        assert!(done.is_finished());
        abandon(doomed).await;

        let tree = task_tree().await;
        assert_eq!(tree.tasks().len(), 4, "{tree}");
        let root = &main_task(&tree);
        assert_eq!(root.parent, None);
        assert_eq!(root.state, TaskState::Running);
        assert_eq!(root.spawned_at.file(), main.file());
        let p = tree.get(parent.id()).expect("parent listed");
        assert_eq!(p.name.as_deref(), Some("parent"));
        assert_eq!(p.parent, Some(root.id));
        assert_eq!(p.worker.index(), 0);
        assert_eq!(p.spawned_at.line(), parent_line);
        assert_eq!(p.state, TaskState::Idle);
        let child = tree
            .tasks()
            .iter()
            .find(|t| t.name.as_deref() == Some("child"))
            .expect("child listed");
        assert_eq!(child.parent, Some(parent.id()));
        assert_eq!(child.state, TaskState::Idle);
        let d = tree.get(doomed_id).expect("doomed listed until it ends");
        assert_eq!(d.state, TaskState::Cancelling);
        assert_eq!(d.spawned_at.line(), doomed_line);
        assert!(
            tree.get(done.id()).is_none(),
            "a terminated task is not live"
        );
        assert_eq!(
            sorted(vec![root.id, parent.id(), child.id, doomed_id]),
            ids(&tree)
        );

        let text = tree.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with(&format!("task {} [running]", root.id.as_u64())));
        let parent_row = format!(
            "  task {} \"parent\" [idle] on worker 0",
            parent.id().as_u64()
        );
        let child_row = format!("    task {} \"child\" [idle]", child.id.as_u64());
        let at = lines.iter().position(|l| l.starts_with(&parent_row));
        let at = at.unwrap_or_else(|| panic!("parent row in\n{text}"));
        assert!(lines[at + 1].starts_with(&child_row), "{text}");
        assert!(text.contains(&format!(
            "  task {} \"doomed\" [cancelling]",
            doomed_id.as_u64()
        )));

        release_tx.send(()).unwrap();
        parent.await.unwrap();
        done.await.unwrap();
        // The doomed task has ended now: only the main task is left.
        yield_now().await;
        assert_eq!(ids(&task_tree().await), vec![root.id]);
    });
}

#[test]
fn across_workers_every_worker_answers() {
    Builder::new().extra_workers(2).run(async {
        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let far_line = line!() + 1;
        let far = call(move || async move {
            let (_keep, rx) = oneshot::channel::<()>();
            let near = spawn_named("near", async move { rx.await.ok() });
            let (there_tx, there_rx) = oneshot::channel();
            let farther = call(move || async move {
                let (_keep, rx) = oneshot::channel::<()>();
                let (parked_tx, parked_rx) = oneshot::channel();
                let leaf = spawn_named("leaf", async move {
                    let _ = parked_tx.send(()); // and parks in this same poll
                    rx.await.ok()
                });
                let _ = there_tx.send((leaf.id(), parked_rx));
                let _ = leaf.await; // parks for good: `_keep` lives on
            })
            .unwrap();
            let (leaf, parked) = there_rx.await.unwrap();
            parked.await.unwrap();
            let _ = started_tx.send((near.id(), farther.id(), leaf));
            let _ = release_rx.await;
            let _ = near.cancel().await;
            let _ = farther.cancel().await;
        })
        .unwrap();
        let doomed = spawn_named("doomed", pending::<()>());
        let doomed_id = doomed.id();
        let (near, farther, leaf) = started_rx.await.unwrap();
        yield_now().await;
        abandon(doomed).await;

        let tree = task_tree().await;
        let root = main_task(&tree);
        assert_eq!(
            ids(&tree),
            sorted(vec![root.id, far.id(), near, farther, leaf, doomed_id]),
            "{tree}"
        );
        let far_row = tree.get(far.id()).unwrap();
        assert_eq!(far_row.parent, Some(root.id));
        assert_eq!(far_row.worker.index(), 1, "call never picks dom0");
        assert_eq!(far_row.spawned_at.line(), far_line);
        assert_eq!(far_row.name, None);
        let near_row = tree.get(near).unwrap();
        assert_eq!(
            (near_row.parent, near_row.worker.index()),
            (Some(far.id()), 1)
        );
        assert_eq!(near_row.name.as_deref(), Some("near"));
        assert_eq!(near_row.state, TaskState::Idle);
        let farther_row = tree.get(farther).unwrap();
        assert_eq!(
            (farther_row.parent, farther_row.worker.index()),
            (Some(far.id()), 2)
        );
        let leaf_row = tree.get(leaf).unwrap();
        assert_eq!(
            (leaf_row.parent, leaf_row.worker.index()),
            (Some(farther), 2)
        );
        assert_eq!(leaf_row.name.as_deref(), Some("leaf"));
        assert_eq!(tree.get(doomed_id).unwrap().state, TaskState::Cancelling);

        let text = tree.to_string();
        assert!(
            text.contains(&format!("\n  task {} [", far.id().as_u64())),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "\n    task {} \"near\" [idle] on worker 1",
                near.as_u64()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "\n      task {} \"leaf\" [idle] on worker 2",
                leaf.as_u64()
            )),
            "{text}"
        );

        release_tx.send(()).unwrap();
        far.await.unwrap();
    });
}
