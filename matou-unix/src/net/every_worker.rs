//! One TCP service on every worker: the parallel form of an accept loop.
//!
//! The listener given by the caller serves on the caller's worker; every
//! other worker that `matou_core::parallel` may use (neither dom0 nor the
//! caller's) gets a duplicate of it ([`TcpListener::try_clone`]: the same
//! listening socket, a descriptor of its own) and runs the same service
//! there. Each duplicate registers with the reactor of the worker that
//! accepts on it; a connection wakes every worker waiting on the socket, one
//! of them accepts it and the others find the queue empty (`EAGAIN`) and
//! wait again. No socket is bound twice, so the listener may be (and by
//! default is) exclusive: no other process can bind the port while the
//! service runs, unlike one `SO_REUSEPORT` listener per worker.
//!
//! Invariants: when one service fails (to bind or while serving), `stop` is
//! called at once so the others end too; the function returns only once
//! every service has ended, with the first error if any.

use super::TcpListener;
use std::future::Future;
use std::io;

/// Runs `serve` on `listener` on this worker, and on a duplicate of it
/// ([`TcpListener::try_clone`]) on every other worker available to
/// `parallel`. Returns each service's value, this worker's first, once all
/// of them have ended. The listener needs no
/// [`reuse_port`](super::TcpListenOptions::reuse_port).
///
/// # Errors
/// The first failure (a descriptor that cannot be duplicated, a service
/// that fails);
/// `stop` has been called and every service has ended before it is
/// returned.
pub async fn serve_on_every_worker<T, S, Fut, P>(
    listener: TcpListener,
    serve: S,
    stop: P,
) -> io::Result<Vec<T>>
where
    S: Fn(TcpListener) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = io::Result<T>> + 'static,
    T: Send + 'static,
    P: Fn() + Clone + Send + Sync + 'static,
{
    let stop_all = stop.clone();
    let serve_or_stop = move |listener: io::Result<TcpListener>| {
        let (serve, stop) = (serve.clone(), stop.clone());
        async move {
            let r = match listener {
                Ok(l) => serve(l).await,
                Err(e) => Err(e),
            };
            if r.is_err() {
                stop();
            }
            r
        }
    };
    // `parallel` round-robins over the workers that are neither dom0 nor
    // this one: one item each.
    let n = matou_core::worker_count();
    let eligible = if matou_core::current_worker().is_dom0() {
        n - 1
    } else {
        n.saturating_sub(2)
    };
    // Duplicated here, registered there: a handle is unregistered until the
    // worker that accepts on it first waits.
    let copies: Vec<io::Result<TcpListener>> =
        (0..eligible).map(|_| listener.try_clone()).collect();
    let here = matou_core::spawn(serve_or_stop.clone()(Ok(listener)));
    let others = {
        let serve_or_stop = serve_or_stop.clone();
        matou_core::parallel(serve_or_stop, copies).await
    };
    let mut first_err = None;
    let mut all = Vec::with_capacity(eligible + 1);
    match others {
        Ok(results) => {
            for r in results {
                match r.map_err(io::Error::other).and_then(|r| r) {
                    Ok(v) => all.push(v),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        // No other worker: this one serves alone.
        Err(matou_core::Error::NoDomainAvailable) => {}
        Err(e) => {
            stop_all();
            first_err = Some(io::Error::other(e));
        }
    }
    match here.await.map_err(io::Error::other).and_then(|r| r) {
        Ok(v) => all.insert(0, v),
        Err(e) => {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(all),
    }
}
