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

#[test]
fn sighup_is_delivered_to_two_listeners_on_one_worker_and_several() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for extra in common::WORKERS {
        run("sighup_two", extra, async move {
            let mut a = matou_unix::signal::signal(SignalKind::HUP).unwrap();
            let mut b = Signals::new(&[SignalKind::HUP, SignalKind::USR2]).unwrap();
            let other = if extra > 0 {
                // The second listener lives on another worker.
                matou_core::call(
                    move || async move { timeout(Duration::from_secs(10), b.recv()).await },
                )
                .unwrap()
            } else {
                matou_core::spawn(async move { timeout(Duration::from_secs(10), b.recv()).await })
            };
            sleep(Duration::from_millis(50)).await;
            kill_process(getpid(), Signal::HUP).unwrap();
            assert_eq!(
                timeout(Duration::from_secs(10), a.recv()).await,
                Ok(SignalKind::HUP)
            );
            assert_eq!(other.await.unwrap(), Ok(SignalKind::HUP));
            // Two deliveries before the listener looks coalesce into one.
            kill_process(getpid(), Signal::HUP).unwrap();
            kill_process(getpid(), Signal::HUP).unwrap();
            sleep(Duration::from_millis(20)).await;
            assert_eq!(
                timeout(Duration::from_secs(10), a.recv()).await,
                Ok(SignalKind::HUP)
            );
            assert!(timeout(Duration::from_millis(50), a.recv()).await.is_err());
        });
    }
}

#[test]
fn any_catchable_signal_by_number_and_forbidden_ones_are_refused() {
    let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let usr1 = Signal::USR1.as_raw();
    assert_eq!(SignalKind::from_raw(usr1).unwrap(), SignalKind::USR1);
    for bad in [0, -1, 9, 19, 11, 65, 1000] {
        let e = SignalKind::from_raw(bad).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
    }
    run("usr1_winch", 0, async move {
        let mut s =
            Signals::new(&[SignalKind::from_raw(usr1).unwrap(), SignalKind::WINCH]).unwrap();
        kill_process(getpid(), Signal::WINCH).unwrap();
        assert_eq!(
            timeout(Duration::from_secs(10), s.recv()).await,
            Ok(SignalKind::WINCH)
        );
        kill_process(getpid(), Signal::USR1).unwrap();
        assert_eq!(
            timeout(Duration::from_secs(10), s.recv()).await,
            Ok(SignalKind::USR1)
        );
    });
}
