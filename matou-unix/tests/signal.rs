//! Signals: SIGINT and SIGTERM as awaitables. In their own test binary, since
//! installing the handlers changes the process's reaction to those signals.

mod common;

use common::run;
use matou_unix::signal::{ctrl_c, shutdown, SignalKind, Signals};
use matou_unix::time::{sleep, timeout};
use rustix::process::{getpid, kill_process, Signal};
use std::sync::Mutex;
use std::time::Duration;

// The tests raise process-wide signals: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn raise_later(sig: Signal, after: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        kill_process(getpid(), sig).unwrap();
    })
}

#[test]
fn shutdown_reports_sigterm() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let kind = run("sigterm", 0, async {
        let raiser = raise_later(Signal::TERM, Duration::from_millis(50));
        let k = timeout(Duration::from_secs(10), shutdown())
            .await
            .unwrap()
            .unwrap();
        raiser.join().unwrap();
        k
    });
    assert_eq!(kind, SignalKind::Terminate);
}

#[test]
fn ctrl_c_completes_on_sigint() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("sigint", 0, async {
        // Handlers are installed when the listener is made, before the raise.
        let waiting = ctrl_c();
        let raiser = raise_later(Signal::INT, Duration::from_millis(50));
        timeout(Duration::from_secs(10), waiting)
            .await
            .unwrap()
            .unwrap();
        raiser.join().unwrap();
    });
}

#[test]
fn every_worker_waiting_sees_one_delivery() {
    // A listener on dom0 and one on each other worker; one SIGTERM wakes all
    // of them (no reactor may swallow the edge of another).
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let kinds = run("signal_all_workers", 2, async {
        // `parallel` starts its tasks when first polled: run it in a task now.
        let remote = matou_core::spawn(matou_core::parallel(
            |()| async {
                let mut s = Signals::new(&[SignalKind::Terminate]).unwrap();
                timeout(Duration::from_secs(10), s.recv()).await
            },
            vec![(); 2],
        ));
        let mut here = Signals::new(&[SignalKind::Terminate]).unwrap();
        let local =
            matou_core::spawn(async move { timeout(Duration::from_secs(10), here.recv()).await });
        // Let the remote listeners file themselves first.
        sleep(Duration::from_millis(100)).await;
        let raiser = raise_later(Signal::TERM, Duration::ZERO);
        let mut kinds: Vec<_> = remote
            .await
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        kinds.push(local.await.unwrap());
        raiser.join().unwrap();
        kinds
    });
    assert_eq!(kinds, vec![Ok(SignalKind::Terminate); 3]);
}

#[test]
fn a_listener_sees_only_deliveries_after_its_creation() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    run("signal_fresh", 0, async {
        let mut first = Signals::new(&[SignalKind::Interrupt]).unwrap();
        kill_process(getpid(), Signal::INT).unwrap();
        assert_eq!(
            timeout(Duration::from_secs(10), first.recv()).await,
            Ok(SignalKind::Interrupt)
        );
        // A new listener does not see the past delivery.
        let mut second = Signals::new(&[SignalKind::Interrupt]).unwrap();
        assert!(timeout(Duration::from_millis(50), second.recv())
            .await
            .is_err());
    });
}
