//! MONITOR: every request any connection sends, on any worker, is shown to
//! the monitoring connections as one line in Redis's format:
//! `+1700000000.123456 [0 127.0.0.1:50000] "set" "k" "v"`.
//!
//! Invariants:
//! - The path of a request pays one relaxed atomic load while nobody
//!   monitors; lines are made only when someone does.
//! - A feeder never waits for a monitor: each monitor has a bounded queue
//!   (in lines, [`QUEUE_LINES`], and in bytes, [`QUEUE_BYTES`]); a monitor
//!   that does not keep up is disconnected (its kill switch flipped), as
//!   Redis disconnects a monitor over its output buffer limit. So a slow
//!   monitor costs bounded memory and cannot stall or deadlock anyone.
//! - A monitor is listed from before its MONITOR's `+OK` is written until
//!   its connection ends (a [`Listing`] guard removes it, also on
//!   cancellation): a request sent after the `+OK` was seen is shown.

use super::registry::Entry;
use super::Shared;
use crate::resp::{Decoder, Reply};
use matou::sync::{channel, Receiver, Sender};
use matou::unix::net::TcpStream;
use matou::{race, Either};
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines queued for one monitor at most.
pub const QUEUE_LINES: usize = 4096;
/// Bytes queued for one monitor at most.
pub const QUEUE_BYTES: usize = 32 << 20;

struct Monitor {
    entry: Arc<Entry>,
    tx: Sender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

/// The monitoring connections.
#[derive(Default)]
pub(super) struct Monitors {
    count: AtomicUsize,
    list: Mutex<Vec<Monitor>>,
}

impl Monitors {
    fn lock(&self) -> MutexGuard<'_, Vec<Monitor>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether anyone monitors (the cheap check before [`Monitors::feed`]).
    pub(super) fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Shows one request to every monitor (not to `from` itself).
    pub(super) fn feed(&self, from: u64, db: usize, addr: &SocketAddr, args: &[Vec<u8>]) {
        let line = line(now_micros(), db, addr, args);
        let mut list = self.lock();
        list.retain(|m| {
            if m.entry.id == from {
                return true;
            }
            let fits = m.queued.load(Ordering::Relaxed) + line.len() <= QUEUE_BYTES;
            if fits && m.tx.try_send(line.clone()).is_ok() {
                m.queued.fetch_add(line.len(), Ordering::Relaxed);
                true
            } else {
                eprintln!(
                    "matou-kv: client id={} addr={} closed: MONITOR output over {QUEUE_LINES} \
                     lines or {QUEUE_BYTES} bytes (the monitor does not keep up)",
                    m.entry.id, m.entry.addr
                );
                m.entry.kill.trigger();
                false
            }
        });
        self.count.store(list.len(), Ordering::Release);
    }

    fn add(&self, entry: Arc<Entry>) -> (Receiver<Vec<u8>>, Arc<AtomicUsize>) {
        let (tx, rx) = channel(QUEUE_LINES);
        let queued = Arc::new(AtomicUsize::new(0));
        let mut list = self.lock();
        list.push(Monitor {
            entry,
            tx,
            queued: queued.clone(),
        });
        self.count.store(list.len(), Ordering::Release);
        (rx, queued)
    }

    fn remove(&self, id: u64) {
        let mut list = self.lock();
        list.retain(|m| m.entry.id != id);
        self.count.store(list.len(), Ordering::Release);
    }
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

/// Redis's `sdscatrepr` of one argument: quoted, with `\n`, `\r`, `\t`,
/// `\a`, `\b`, `\\`, `\"` and `\xHH` for other unprintable bytes.
fn repr(out: &mut String, arg: &[u8]) {
    out.push('"');
    for &b in arg {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b' '..=b'~' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

/// One monitor line, encoded (a status reply, whatever the protocol, as
/// Redis sends it). AUTH's arguments are redacted.
fn line(micros: u128, db: usize, addr: &SocketAddr, args: &[Vec<u8>]) -> Vec<u8> {
    let mut s = format!(
        "+{}.{:06} [{db} {addr}]",
        micros / 1_000_000,
        micros % 1_000_000
    );
    let redact = args
        .first()
        .is_some_and(|n| n.eq_ignore_ascii_case(b"auth"));
    for (i, a) in args.iter().enumerate() {
        s.push(' ');
        if redact && i > 0 {
            s.push_str("\"(redacted)\"");
        } else {
            repr(&mut s, a);
        }
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// A connection listed as a monitor: made before its MONITOR's `+OK` is
/// written, so that every request another client sends once it has seen
/// that `+OK` is shown (listing it only when [`serve`] starts missed the
/// requests that raced the reply). Dropping it unlists the monitor, also
/// when the connection ends before `serve` runs.
pub(super) struct Listing<'a> {
    monitors: &'a Monitors,
    id: u64,
    rx: Receiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

impl<'a> Listing<'a> {
    pub(super) fn new(me: &Arc<Entry>, shared: &'a Shared) -> Listing<'a> {
        let (rx, queued) = shared.monitors.add(me.clone());
        Listing {
            monitors: &shared.monitors,
            id: me.id,
            rx,
            queued,
        }
    }
}

impl Drop for Listing<'_> {
    fn drop(&mut self) {
        self.monitors.remove(self.id);
    }
}

/// Serves a connection after its MONITOR: sends the lines as they come,
/// until it closes, sends QUIT, is killed (a slow monitor is) or the server
/// stops (`None`: the connection is done), or sends RESET (answered
/// `+RESET`; `Some` with the bytes read after it, for the connection to go
/// on as a plain one). Other requests are refused with an error.
pub(super) async fn serve(
    stream: &TcpStream,
    me: &Arc<Entry>,
    shared: &Shared,
    listing: Listing<'_>,
) -> io::Result<Option<Vec<u8>>> {
    let (rx, queued) = (&listing.rx, &listing.queued);
    let mut decoder = Decoder::new(shared.config.limits());
    decoder.set_authenticated(true);
    let mut buf = vec![0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let mut wire = Vec::new();
    loop {
        let event = {
            let mut stopped = pin!(race(shared.stop.wait(), me.kill.wait()));
            let mut read = pin!(stream.read(&mut buf));
            let mut line = pin!(rx.recv());
            race(race(stopped.as_mut(), read.as_mut()), line.as_mut()).await
        };
        wire.clear();
        match event {
            Either::Left(Either::Left(_)) => return Ok(None),
            Either::Left(Either::Right(read)) => {
                let n = read?;
                if n == 0 {
                    return Ok(None);
                }
                pending.extend_from_slice(&buf[..n]);
                let mut used_all = 0;
                let mut quit = false;
                let mut reset = false;
                while let Ok(Some((args, used))) = decoder.decode(&pending[used_all..]) {
                    used_all += used;
                    if args
                        .first()
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"quit"))
                    {
                        Reply::ok().encode(&mut wire);
                        quit = true;
                        break;
                    }
                    if args.len() == 1 && args[0].eq_ignore_ascii_case(b"reset") {
                        Reply::Simple("RESET".into()).encode(&mut wire);
                        reset = true;
                        break;
                    }
                    if !args.is_empty() {
                        Reply::err("ERR only QUIT is allowed while in MONITOR mode")
                            .encode(&mut wire);
                    }
                }
                pending.drain(..used_all);
                if !reset && pending.len() > super::client::PRE_AUTH_QUERY_BYTES {
                    return Ok(None);
                }
                stream.write_all(&wire).await?;
                if quit {
                    return Ok(None);
                }
                if reset {
                    // Off the list (`_listed`) as this returns.
                    return Ok(Some(pending));
                }
            }
            Either::Right(Some(first)) => {
                // Everything queued by now goes in one write.
                let mut bytes = first.len();
                wire.extend_from_slice(&first);
                while wire.len() < 64 * 1024 {
                    match rx.try_recv() {
                        Ok(l) => {
                            bytes += l.len();
                            wire.extend_from_slice(&l);
                        }
                        Err(_) => break,
                    }
                }
                let mut killed = pin!(me.kill.wait());
                let mut write = pin!(stream.write_all(&wire));
                match race(killed.as_mut(), write.as_mut()).await {
                    Either::Left(()) => return Ok(None),
                    Either::Right(r) => r?,
                }
                queued.fetch_sub(bytes, Ordering::Relaxed);
            }
            // The list dropped this monitor (it did not keep up).
            Either::Right(None) => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_in_redis_format() {
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let args = vec![b"set".to_vec(), b"k \"q\"".to_vec(), vec![b'\n', 0, 0xff]];
        let l = line(1_700_000_000_000_042, 3, &addr, &args);
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "+1700000000.000042 [3 127.0.0.1:5000] \"set\" \"k \\\"q\\\"\" \"\\n\\x00\\xff\"\r\n"
        );
        let l = line(0, 0, &addr, &[b"AUTH".to_vec(), b"pw".to_vec()]);
        assert!(String::from_utf8(l)
            .unwrap()
            .ends_with("\"AUTH\" \"(redacted)\"\r\n"));
    }
}
