//! `await_one` / `await_first` choose as Miou does among promises that have
//! already finished: a success first, then at random among equals.

use matou_core::*;

/// Spawns the children and lets them all finish before the choice.
async fn finished<T: 'static>(children: Vec<Promise<T>>) -> Vec<Promise<T>> {
    while !children.iter().all(Promise::is_finished) {
        yield_now().await;
    }
    children
}

#[test]
fn a_success_is_preferred_over_failures_that_finished_with_it() {
    for extra in [0, 2] {
        Builder::new().extra_workers(extra).run(async {
            for _ in 0..20 {
                let children = finished(vec![
                    spawn(async { panic!("first, panicked") }),
                    spawn(async { panic!("second, panicked") }),
                    spawn(async { 3 }),
                ])
                .await;
                let (r, rest) = await_one(children).await;
                assert_eq!(r.unwrap(), 3);
                for p in rest {
                    let _ = p.await;
                }
                let children = finished(vec![
                    spawn(async { panic!("panicked") }),
                    spawn(async { 7 }),
                ])
                .await;
                assert_eq!(await_first(children).await.unwrap(), 7);
            }
        });
    }
}

#[test]
fn no_input_position_is_privileged_among_equals() {
    let picks = Builder::new().extra_workers(0).run(async {
        let mut picks = [0usize; 4];
        for _ in 0..400 {
            let children = finished((0..4).map(|i| spawn(async move { i })).collect()).await;
            let (r, rest) = await_one(children).await;
            picks[r.unwrap()] += 1;
            for p in rest {
                p.await.unwrap();
            }
        }
        picks
    });
    // Each position expects 100 of 400; 40 is more than 7 standard deviations
    // (8.7) below, so a fair choice fails this once in ~10^12 runs.
    assert!(picks.iter().all(|&n| n >= 40), "{picks:?}");
}
