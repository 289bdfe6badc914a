//! One client connection: read, decode, answer, write, until it closes.
//!
//! Per read, the handler decodes every complete request in its buffer (a
//! pipeline), parses each with the connection's [`Session`] (so parsing and
//! Redis's error texts cost the storage task nothing), answers connection
//! commands itself through [`Session::execute`], the one place they are
//! handled, sends the data commands of the batch to the storage task as one
//! [`Job`], and writes every reply of the batch with one `write`, in
//! request order.
//!
//! Transactions ([`Multi`]) are decided before the parse: inside MULTI a
//! request is queued (`+QUEUED`) or refused, and EXEC sends the whole queue
//! to the storage task as one request, whose answers become EXEC's array;
//! queued connection commands run when that array is built, so an aborted
//! EXEC changes nothing. Each reply is encoded in the protocol the session
//! had when its request was parsed (RESP3 from a `HELLO 3` on, its own
//! reply included).
//!
//! Memory per connection is bounded: the read buffer only holds the
//! incomplete request at its end, and a request that would grow it past
//! `--max-query-bytes` is answered with a protocol error and the
//! connection closed (the decoder's limits bound each argument and their
//! count, this bounds their sum). Before AUTH the bound is
//! [`PRE_AUTH_QUERY_BYTES`], buffer included.
//!
//! Memory for replies is bounded too: they are produced in rounds of about
//! [`ROUND_REPLY_BYTES`], each written before the next is made, and no
//! request is read while a round is unsent (backpressure), so a client that
//! never reads stalls itself, holding one round. A single reply over the
//! `client-output-buffer-limit` hard limit (an MGET naming one big key
//! 100,000 times is sized before it is built) disconnects the client, as
//! does one over the soft limit left unsent for its seconds; the reason is
//! logged. `timeout` closes a connection idle that long.
//!
//! Pub/sub: a connection's first SUBSCRIBE (or PSUBSCRIBE, SSUBSCRIBE)
//! gives it a mailbox ([`Subscriber`]) that publishers on any worker fill;
//! the handler awaits it beside the socket's read and writes the messages
//! between batches, never inside one, as RESP2 arrays or RESP3 pushes. The
//! mailbox is bounded by `client-output-buffer-limit pubsub`; its overflow
//! kills the connection, even one stuck writing to a subscriber that does
//! not read, and dropping it (the connection ends) unsubscribes from
//! everything. RESP2's subscribed mode is checked before anything else
//! runs (`command::pubsub`).
//!
//! Password guessing: a wrong password ends its batch; after
//! [`AUTH_FREE_FAILURES`] (per connection, or per client address over
//! `AUTH_FAILURES_FORGOTTEN`) each is answered [`AUTH_DELAY_STEP`] later
//! than the last, and at `auth-max-failures` the connection is closed. A
//! right password is answered at once.

use super::blocking::Blocked;
use super::pubsub::{Delivery, Space, Subscriber};
use super::registry::Entry;
use super::slowlog::{ArgPrefixes, Prefixed};
use super::stats::Outcome;
use super::storage::{Answer, Answered, DbCell, Job, Req};
use super::{ops, Shared};
use crate::command::multi::{Exec, Intercept, Multi, Queued};
use crate::command::ops::ReplyMode;
use crate::command::ops::{Ops, DEBUG_REFUSED};
use crate::command::pubsub::{self as pubsub_cmd, encode_message};
use crate::command::{info_text, Action, Command, Conn, Session};
use crate::config::OutputLimit;
use crate::resp::{Decoder, ProtocolError, Reply};
use matou::sync::oneshot;
use matou::unix::net::TcpStream;
use matou::unix::time;
use matou::{race, Either};
use std::collections::VecDeque;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes a handler reads at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Before AUTH (with `requirepass`): the most bytes a connection may
/// buffer, and read at a time, so an unauthenticated connection holds a
/// few KiB whatever it sends (an AUTH fits easily).
pub const PRE_AUTH_QUERY_BYTES: usize = 4 * 1024;

/// Wrong passwords a connection, or an address over its connections
/// within `AUTH_FAILURES_FORGOTTEN`, may give before it is slowed down.
pub const AUTH_FREE_FAILURES: u32 = 3;
/// The delay before answering the first slowed wrong password; each next
/// one waits this much longer (100 ms, 200 ms, ... 700 ms before the close).
pub const AUTH_DELAY_STEP: Duration = Duration::from_millis(100);

/// Reply bytes produced per round of a batch (see the module docs).
pub const ROUND_REPLY_BYTES: usize = 1 << 20;

/// The peer's address for a log line.
fn peer(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string())
}

/// Writes `wire`; a write over the soft output limit must be done within
/// its seconds, or the client is disconnected (the error says why).
/// Writes `wire` (if not empty) as [`write_within_soft_limit`] does, unless
/// the client is killed first: a killed client stuck on a full socket ends
/// at once. Returns false when it was killed.
async fn write_unless_killed(
    stream: &TcpStream,
    wire: &[u8],
    limit: OutputLimit,
    id: u64,
    me: &Entry,
) -> io::Result<bool> {
    if wire.is_empty() {
        return Ok(true);
    }
    let mut killed = pin!(me.kill.wait());
    let mut write = pin!(write_within_soft_limit(stream, wire, limit, id));
    match race(killed.as_mut(), write.as_mut()).await {
        Either::Left(()) => Ok(false),
        Either::Right(r) => r.map(|()| true),
    }
}

async fn write_within_soft_limit(
    stream: &TcpStream,
    wire: &[u8],
    limit: OutputLimit,
    id: u64,
) -> io::Result<()> {
    if limit.soft == 0 || limit.soft_secs == 0 || wire.len() <= limit.soft {
        return stream.write_all(wire).await;
    }
    let within = Duration::from_secs(limit.soft_secs);
    match time::timeout(within, stream.write_all(wire)).await {
        Ok(r) => r,
        Err(_) => {
            eprintln!(
                "matou-kv: client id={id} addr={} closed: {} reply bytes over \
                 client-output-buffer-limit soft {} bytes for {} s",
                peer(stream),
                wire.len(),
                limit.soft,
                limit.soft_secs
            );
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client-output-buffer-limit soft",
            ))
        }
    }
}

/// Counts a connected client while alive (also when its task is cancelled).
struct ClientGuard<'a>(&'a AtomicUsize);

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where the reply to one request of a batch comes from.
enum Out {
    Ready(Reply),
    /// The storage job's next answer.
    Storage,
    /// INFO for these sections: the job's next answer holds the storage's
    /// figures, the handler adds its own.
    Info(Vec<Vec<u8>>),
    /// EXEC: the job's next answer holds the answers of these, in order.
    Exec(Vec<Out>),
    /// A connection command queued in a transaction: run once EXEC ran.
    Conn(Conn),
    /// Made as the inner one, not sent (CLIENT REPLY OFF / SKIP).
    Muted(Box<Out>),
}

/// What INFO commandstats and SLOWLOG need of a request, kept beside its
/// [`Out`] until its reply is made.
struct Meta {
    /// Its command table name (`""`: an unknown command, counted nowhere).
    name: &'static str,
    /// What the slow log may need of its arguments.
    args: Prefixed,
    /// Time the handler spent running it (connection commands).
    nanos: u64,
    /// Refused before it ran (NOAUTH, arity, OOM, a MULTI refusal).
    rejected: bool,
}

/// Whether an error given instead of running a command is a rejection
/// (Redis's `rejected_calls`) rather than a failure of the command.
fn is_rejection(e: &Reply) -> bool {
    matches!(e, Reply::Error(m) if m.starts_with("ERR wrong number of arguments")
        || m.starts_with("NOAUTH")
        || m.starts_with("OOM")
        || m.starts_with("ERR Command not allowed inside a transaction"))
}

/// CLIENT REPLY's state: which of the coming replies are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mute {
    On,
    Off,
    /// CLIENT REPLY SKIP was just run: its own reply and the next one
    /// are not sent.
    SkipSelf,
    SkipNext,
}

/// Mutes the reply a request just pushed (if it pushed one) as the CLIENT
/// REPLY state says, and moves that state on.
fn silence(outs: &mut VecDeque<Out>, before: usize, mute: &mut Mute) {
    if outs.len() == before {
        return;
    }
    let silent = match *mute {
        Mute::On => false,
        Mute::Off => true,
        Mute::SkipSelf => {
            *mute = Mute::SkipNext;
            true
        }
        Mute::SkipNext => {
            *mute = Mute::On;
            true
        }
    };
    if silent {
        if let Some(o) = outs.pop_back() {
            outs.push_back(Out::Muted(Box::new(o)));
        }
    }
}

/// What the connection does after its batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    Continue,
    /// Reply, then close (QUIT, a protocol error).
    Close,
    /// Stop the server, close without reply (SHUTDOWN).
    Shutdown,
    /// Reply, then serve MONITOR lines.
    Monitor,
}

/// Serves one client until it closes, QUITs, errs, or the server stops.
pub(super) async fn handle(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let _guard = ClientGuard(&shared.clients);
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    let mut session = Session::new(id, shared.live.view().requirepass.as_deref());
    let mut multi = Multi::new();
    let db = DbCell::default();
    // In CLIENT LIST while this runs; CLIENT KILL flips `me.kill`.
    let registered =
        shared
            .registry
            .register(id, stream.peer_addr()?, stream.local_addr()?, db.clone());
    let me = &registered.entry;
    // Resumable: a big request arriving in many reads is not re-parsed from
    // its start at each one.
    let mut decoder = Decoder::new(shared.config.limits());
    decoder.set_authenticated(session.authenticated);
    // Requests are read straight into `buf[end..]`; `buf[..end]` holds what
    // is not consumed yet (an incomplete request). The buffer stays
    // initialized at its full length, so a read zeroes nothing: only
    // growing it does.
    let mut buf: Vec<u8> = Vec::new();
    let mut end = 0;
    let mut wire = Vec::new();
    let mut outs = VecDeque::new();
    let mut metas: VecDeque<Meta> = VecDeque::new();
    let mut prefixes = ArgPrefixes::default();
    let mut calls: Vec<(&'static str, u64, Outcome)> = Vec::new();
    let peer_text = me.addr.to_string();
    let debug_allowed = shared.config.debug_command.allows(me.addr.ip());
    let mut requests_buffered = false;
    let mut mute = Mute::On;
    // Made at the first subscription; dropping it (the connection ends)
    // unsubscribes from everything.
    let mut subscriber: Option<Subscriber> = None;
    let mut pushes = Vec::new();
    loop {
        // Between batches only: a batch in flight is always finished.
        if shared.stop.is_triggered() || me.kill.is_triggered() {
            return Ok(());
        }
        let chunk = if session.authenticated {
            READ_CHUNK
        } else {
            PRE_AUTH_QUERY_BYTES
        };
        // A batch cut short (after a wrong password) left whole requests
        // in the buffer: they are served before anything more is read.
        if !requests_buffered {
            if buf.len() - end < chunk / 2 {
                buf.resize(end + chunk, 0);
            }
            // Messages queued while the batch ran go out before the next
            // read (a RESP3 client that keeps sending requests still gets
            // them); after that a ready read wins a tie with a message, so
            // a flood of messages does not starve the requests either.
            if let Some(sub) = subscriber.as_ref() {
                let queued = sub.try_recv();
                if queued != Delivery::Empty
                    && !deliver(&stream, me, sub, queued, session.proto, &mut pushes).await?
                {
                    return Ok(());
                }
            }
            // The read and the stop signals live across the deliveries
            // (only the mailbox's wait is made anew after each): a message
            // costs no re-registration with the stop switch or the socket.
            let n = {
                let mut stopped = pin!(race(shared.stop.wait(), me.kill.wait()));
                let mut read = pin!(stream.read(&mut buf[end..]));
                loop {
                    let mut delivered = pin!(next_delivery(subscriber.as_ref()));
                    let read = race(race(stopped.as_mut(), read.as_mut()), delivered.as_mut());
                    // A subscriber waits for messages, not requests: no
                    // idle timeout for it (as in Redis).
                    let idle = match subscriber.as_ref().is_some_and(Subscriber::is_subscribed) {
                        true => 0,
                        false => shared.live.timeout_secs(),
                    };
                    let outcome = if idle == 0 {
                        Some(read.await)
                    } else {
                        time::timeout(Duration::from_secs(idle), read).await.ok()
                    };
                    match outcome {
                        None => {
                            eprintln!(
                                "matou-kv: client id={id} addr={} closed: idle for {idle} s \
                                 (timeout)",
                                peer(&stream)
                            );
                            return Ok(());
                        }
                        Some(Either::Left(Either::Left(_))) => return Ok(()),
                        Some(Either::Left(Either::Right(r))) => break r?,
                        Some(Either::Right(first)) => {
                            let Some(sub) = subscriber.as_ref() else {
                                continue;
                            };
                            if !deliver(&stream, me, sub, first, session.proto, &mut pushes).await?
                            {
                                return Ok(());
                            }
                        }
                    }
                }
            };
            if n == 0 {
                return Ok(());
            }
            end += n;
        }

        let failures_seen = session.failed_auths;
        requests_buffered = false;
        // Every earlier request was answered: their argument prefixes go.
        if metas.is_empty() {
            prefixes.clear();
        }
        let mut reqs = Vec::new();
        // The protocol of each reply is the session's when its request was
        // parsed: (first reply, protocol) wherever a HELLO changed it.
        let batch_proto = session.proto;
        let mut switches: Vec<(usize, u8)> = Vec::new();
        let mut after = After::Continue;
        let mut monitor_listing = None;
        let mut consumed = 0;
        let mut bad = None;
        // The batch's last command, for CLIENT LIST's `cmd`.
        let mut last_name = None;
        while after == After::Continue {
            match decoder.decode(&buf[consumed..end]) {
                Ok(Some((args, used))) => {
                    if consumed > 0 && args.len() == 1 && args[0].eq_ignore_ascii_case(b"reset") {
                        // RESET starts a batch of its own: what came before
                        // it is answered (EXEC's subscriptions made) first.
                        // (Never the batch's first request: no loop.)
                        requests_buffered = true;
                        break;
                    }
                    consumed += used;
                    if args.is_empty() {
                        continue;
                    }
                    mirror_state(me, multi.queued(), subscriber.as_ref());
                    shared.commands.fetch_add(1, Ordering::Relaxed);
                    me.request_bytes.store(used, Ordering::Relaxed);
                    let before = outs.len();
                    // Looked up once: its name for the stats, its spec for
                    // the parse (an arity error searches again, for the
                    // name only).
                    let found = crate::command::lookup(&args);
                    let name = match &found {
                        Ok(spec) => spec.name,
                        Err(_) => crate::command::command_name(&args).unwrap_or(""),
                    };
                    let mut meta = Meta {
                        name,
                        args: Prefixed::default(),
                        nanos: 0,
                        rejected: false,
                    };
                    if shared.monitors.active() {
                        shared
                            .monitors
                            .feed(id, db.load(Ordering::Relaxed), &me.addr, &args);
                    }
                    // RESP2's subscribed mode: only the subscription
                    // commands, PING and QUIT run (after the unknown
                    // command and NOAUTH errors, as in Redis).
                    let subscribed = session.proto == 2
                        && session.authenticated
                        && subscriber.as_ref().is_some_and(Subscriber::is_subscribed);
                    if subscribed {
                        if let Some(r) = pubsub_cmd::subscribed_refusal(&args) {
                            outs.push_back(Out::Ready(r));
                            silence(&mut outs, before, &mut mute);
                            last_name = Some(name);
                            continue;
                        }
                    }
                    // RESET runs at once, inside MULTI too (Redis never
                    // queues it), and in subscribed mode. It is first in
                    // its batch (see above): no job is in flight, so the
                    // database cell is the handler's to set.
                    if matches!(&found, Ok(spec) if spec.name == "reset") {
                        // Messages published before it was read go first
                        // (Redis wrote them to the client at PUBLISH).
                        if let Some(sub) = subscriber.as_ref() {
                            while let Delivery::Message(m) = sub.try_recv() {
                                outs.push_back(Out::Ready(pubsub_cmd::message_reply(&m)));
                            }
                        }
                        let state = (&mut multi, &mut subscriber, &mut session, &mut mute);
                        reset(state, me, &db, &shared);
                        outs.push_back(Out::Ready(Reply::Simple("RESET".into())));
                        meta.args = prefixes.push(&args);
                        metas.push_back(meta);
                        last_name = Some(name);
                        decoder.set_authenticated(session.authenticated);
                        if session.proto != switches.last().map_or(batch_proto, |s| s.1) {
                            switches.push((outs.len() - 1, session.proto));
                        }
                        continue;
                    }
                    // Over maxmemory with nothing to evict: `denyoom`
                    // commands get -OOM (and fail an open MULTI); before
                    // AUTH, NOAUTH comes first, as in Redis.
                    let oom = match session.authenticated {
                        true => shared.memory.refusal(&args).map(|r| multi.refuse(r)),
                        false => None,
                    };
                    let intercepted = match oom {
                        Some(r) => Intercept::Reply(r),
                        None => multi.intercept(&args, session.authenticated),
                    };
                    let mut pushed = false;
                    let parsed = match intercepted {
                        Intercept::Pass => found.and_then(|spec| session.parse_spec(spec, &args)),
                        Intercept::Reply(r) => {
                            meta.rejected = is_rejection(&r);
                            Err(r)
                        }
                        Intercept::Watch(keys, cell) => {
                            outs.push_back(Out::Storage);
                            reqs.push(Req::Watch(keys, cell));
                            silence(&mut outs, before, &mut mute);
                            meta.args = prefixes.push(&args);
                            metas.push_back(meta);
                            last_name = Some(name);
                            continue;
                        }
                        Intercept::Exec(exec) => {
                            // Subscriptions made by EXEC (when its replies
                            // are made) come before whatever follows it.
                            let subscribes = exec
                                .queued
                                .iter()
                                .any(|q| matches!(q, Queued::Conn(Conn::PubSub(_))));
                            let (out, req) = exec_request(exec, debug_allowed);
                            outs.push_back(out);
                            reqs.push(req);
                            silence(&mut outs, before, &mut mute);
                            meta.args = prefixes.push(&args);
                            metas.push_back(meta);
                            last_name = Some(name);
                            if subscribes {
                                requests_buffered = consumed < end;
                                break;
                            }
                            continue;
                        }
                    };
                    match parsed {
                        Err(e) => {
                            meta.rejected |= is_rejection(&e);
                            outs.push_back(Out::Ready(e));
                        }
                        Ok(Command::Conn(Conn::Ops(op))) if op.is_debug() && !debug_allowed => {
                            outs.push_back(Out::Ready(Reply::err(DEBUG_REFUSED)));
                        }
                        Ok(Command::Conn(Conn::Ops(Ops::Storage(op)))) => {
                            outs.push_back(Out::Storage);
                            reqs.push(Req::Admin(op));
                        }
                        Ok(Command::Read(r)) => {
                            outs.push_back(Out::Storage);
                            reqs.push(Req::Read(r));
                        }
                        Ok(Command::Write(w)) => {
                            outs.push_back(Out::Storage);
                            reqs.push(Req::Write(w));
                        }
                        Ok(Command::Conn(Conn::PubSub(p))) => {
                            // Subscription frames are pushes: CLIENT REPLY
                            // OFF does not mute them (as in Redis).
                            pushed = p.answers_with_pushes();
                            let publish = p.is_publish();
                            let frames =
                                pubsub_cmd::run(p, &mut subscriber, &shared.pubsub, || {
                                    new_subscriber(me, &shared)
                                });
                            // Published to itself: the message comes before
                            // the count, as in Redis.
                            if let Some(sub) = subscriber.as_ref().filter(|_| publish) {
                                while let Delivery::Message(m) = sub.try_recv() {
                                    let frame = pubsub_cmd::message_reply(&m);
                                    outs.push_back(Out::Ready(frame));
                                }
                            }
                            outs.extend(frames.into_iter().map(Out::Ready));
                        }
                        Ok(Command::Conn(Conn::Ping(m))) if subscribed => {
                            outs.push_back(Out::Ready(pubsub_cmd::subscribed_pong(m)));
                        }
                        Ok(Command::Conn(Conn::Select(i))) => {
                            outs.push_back(Out::Storage);
                            reqs.push(Req::Select(i));
                        }
                        // Scripting runs in the storage task (`script`).
                        Ok(Command::Conn(Conn::Script(cmd))) => {
                            outs.push_back(Out::Storage);
                            reqs.push(Req::Script(cmd));
                        }
                        Ok(Command::Conn(c)) => {
                            let started = Instant::now();
                            let action = conn(c, &mut session, me, &shared, &mut after, &mut mute);
                            meta.nanos = started.elapsed().as_nanos() as u64;
                            match action {
                                Action::Reply(r) => outs.push_back(Out::Ready(r)),
                                Action::Close(r) => {
                                    outs.push_back(Out::Ready(r));
                                    after = After::Close;
                                }
                                Action::Shutdown => after = After::Shutdown,
                                Action::Info(sections) => {
                                    outs.push_back(Out::Info(sections));
                                    reqs.push(Req::Info);
                                }
                                Action::Ops(_) => unreachable!("conn() runs operations commands"),
                            }
                        }
                    }
                    if !pushed {
                        silence(&mut outs, before, &mut mute);
                    }
                    if outs.len() > before {
                        meta.args = prefixes.push(&args);
                        metas.push_back(meta);
                    }
                    last_name = Some(name);
                    // AUTH lifts the decoder's pre-authentication caps.
                    decoder.set_authenticated(session.authenticated);
                    let proto_now = switches.last().map_or(batch_proto, |s| s.1);
                    if session.proto != proto_now {
                        // HELLO's own reply is in the protocol it asked for.
                        switches.push((outs.len().saturating_sub(1), session.proto));
                    }
                    // A wrong password ends the batch: it is answered
                    // (late, see below) before the next one is read.
                    if session.failed_auths > failures_seen {
                        requests_buffered = consumed < end;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        if let Some(name) = last_name {
            me.touch(if name.is_empty() { "NULL" } else { name });
        }
        buf.copy_within(consumed..end, 0);
        end -= consumed;
        // Checked with the state after the batch: an AUTH pipelined before
        // a big request lifts the bound for it.
        let max_query = if session.authenticated {
            shared.config.max_query_bytes
        } else {
            PRE_AUTH_QUERY_BYTES
        };
        if bad.is_none() && after == After::Continue && !requests_buffered && end > max_query {
            bad = Some(ProtocolError(if session.authenticated {
                format!(
                    "ERR Protocol error: request larger than the query buffer limit ({max_query} \
                     bytes, max-query-bytes)"
                )
            } else {
                format!("ERR Protocol error: unauthenticated request larger than {max_query} bytes")
            }));
        }

        // Password guessing: past a few wrong passwords each one is answered
        // later than the last, then the connection is closed. A right one
        // is never delayed.
        if session.failed_auths > failures_seen {
            let by_address = match stream.peer_addr() {
                Ok(a) => shared.auth_failed(a.ip()),
                Err(_) => 0,
            };
            let n = session.failed_auths.max(by_address);
            if n >= shared.config.auth_max_failures {
                eprintln!(
                    "matou-kv: client id={id} addr={} closed: {n} wrong passwords \
                     (from this connection or address)",
                    peer(&stream)
                );
                after = After::Close;
            } else if n > AUTH_FREE_FAILURES {
                time::sleep(AUTH_DELAY_STEP * (n - AUTH_FREE_FAILURES)).await;
            }
        }
        // Replies in rounds: the storage task stops producing once a round
        // holds `ROUND_REPLY_BYTES` and defers the rest, which is sent
        // again once the round is written. Nothing is read meanwhile, so a
        // client that does not read its replies stalls (TCP flow control)
        // holding one round, however long its pipeline.
        let limit = shared.live.output_limit();
        let mut pending = reqs;
        let mut proto = batch_proto;
        let mut switches = switches.into_iter().peekable();
        let mut rendered = 0;
        loop {
            let answered = if pending.is_empty() {
                Answered::default()
            } else {
                let (tx, rx) = oneshot::channel();
                let job = Job {
                    reqs: std::mem::take(&mut pending),
                    db: db.clone(),
                    budget: ROUND_REPLY_BYTES,
                    reply_limit: limit.hard,
                    reply: tx,
                };
                if shared.jobs.send(job).await.is_err() {
                    // The storage task is gone (shutdown): nothing to answer with.
                    return Ok(());
                }
                match rx.await {
                    Ok(answered) => answered,
                    Err(_) => return Ok(()),
                }
            };
            let mut answers = answered.answers.into_iter().peekable();
            let mut nanos = answered.nanos.into_iter();
            wire.clear();
            let mut too_large = None;
            let mut blocked = None;
            while let Some(o) = outs.front() {
                let inner = match o {
                    Out::Muted(inner) => &**inner,
                    o => o,
                };
                let from_storage = !matches!(inner, Out::Ready(_) | Out::Conn(_));
                match answers.peek() {
                    Some(Answer::Deferred(_)) if from_storage => break,
                    Some(Answer::Blocked(_)) if from_storage => {
                        if let Some(Answer::Blocked(b)) = answers.next() {
                            blocked = Some(b);
                        }
                        break;
                    }
                    Some(Answer::TooLarge(n)) if from_storage => {
                        too_large = Some(*n);
                        break;
                    }
                    _ => {}
                }
                let Some(o) = outs.pop_front() else { break };
                while let Some((_, p)) = switches.next_if(|s| s.0 == rendered) {
                    proto = p;
                }
                rendered += 1;
                let (o, muted) = match o {
                    Out::Muted(inner) => (*inner, true),
                    o => (o, false),
                };
                let r = render(
                    o,
                    &mut answers,
                    &mut session,
                    (me, &mut subscriber),
                    &shared,
                    &mut after,
                );
                mirror_state(me, multi.queued(), subscriber.as_ref());
                if let Some(meta) = metas.pop_front() {
                    let ran = if from_storage {
                        nanos.next().unwrap_or(0)
                    } else {
                        meta.nanos
                    };
                    account(
                        &meta, ran, &r, &mut calls, me, &prefixes, &peer_text, &shared,
                    );
                }
                if muted {
                    continue;
                }
                if let Reply::Error(m) = &r {
                    shared.errors.count(m);
                }
                let n = r.encoded_len_bound();
                if limit.hard != 0 && n > limit.hard {
                    too_large = Some(n);
                    break;
                }
                r.encode_proto(proto, &mut wire);
            }
            shared.command_stats.add(&calls);
            calls.clear();
            // AUTH queued in a transaction ran just now.
            decoder.set_authenticated(session.authenticated);
            pending = answers
                .filter_map(|a| match a {
                    Answer::Deferred(req) => Some(req),
                    _ => None,
                })
                .collect();
            if too_large.is_none() && pending.is_empty() && blocked.is_none() {
                if let Some(e) = &bad {
                    e.reply().encode(&mut wire);
                }
            }
            if after == After::Monitor && monitor_listing.is_none() {
                monitor_listing = Some(super::monitor::Listing::new(me, &shared));
            }
            if !write_unless_killed(&stream, &wire, limit, id, me).await? {
                return Ok(());
            }
            if let Some(b) = blocked {
                // Blocked (BLPOP and friends): the replies before it are
                // written; nothing after it runs until it is answered.
                let (reply, close) =
                    wait_blocked(b, &stream, &mut buf, &mut end, me, &shared).await;
                requests_buffered |= end > 0;
                let o = outs.pop_front();
                while let Some((_, p)) = switches.next_if(|s| s.0 == rendered) {
                    proto = p;
                }
                rendered += 1;
                wire.clear();
                if let (Some(r), false) = (reply, matches!(o, Some(Out::Muted(_)))) {
                    if let Reply::Error(m) = &r {
                        shared.errors.count(m);
                    }
                    r.encode_proto(proto, &mut wire);
                }
                if !close && pending.is_empty() {
                    if let Some(e) = &bad {
                        e.reply().encode(&mut wire);
                    }
                }
                if !write_unless_killed(&stream, &wire, limit, id, me).await? {
                    return Ok(());
                }
                if close {
                    return Ok(());
                }
            }
            if let Some(n) = too_large {
                eprintln!(
                    "matou-kv: client id={id} addr={} closed: a reply of {n} bytes is over \
                     client-output-buffer-limit hard {} bytes",
                    peer(&stream),
                    limit.hard
                );
                return Ok(());
            }
            if pending.is_empty() {
                break;
            }
        }
        // Keep a huge buffer from staying allocated after a big request.
        if end == 0 && buf.len() > 4 * READ_CHUNK {
            buf = vec![0; READ_CHUNK];
        }
        if wire.capacity() > 4 * READ_CHUNK {
            wire = Vec::new();
        }
        match after {
            After::Continue if bad.is_none() => {}
            After::Shutdown => {
                shared.stop.trigger();
                return Ok(());
            }
            After::Monitor => {
                let listing = monitor_listing
                    .take()
                    .unwrap_or_else(|| super::monitor::Listing::new(me, &shared));
                match super::monitor::serve(&stream, me, &shared, listing).await? {
                    // RESET left MONITOR: a plain connection again, with what
                    // was sent after it.
                    Some(rest) => {
                        let state = (&mut multi, &mut subscriber, &mut session, &mut mute);
                        reset(state, me, &db, &shared);
                        decoder = Decoder::new(shared.config.limits());
                        decoder.set_authenticated(session.authenticated);
                        end = rest.len();
                        if buf.len() < end {
                            buf.resize(end, 0);
                        }
                        buf[..end].copy_from_slice(&rest);
                        requests_buffered = end > 0;
                    }
                    None => return Ok(()),
                }
            }
            _ => return Ok(()),
        }
    }
}

/// Waits for a blocked command's reply (see `blocking`), reading what the
/// client sends meanwhile into `buf[end..]` (to notice it leave). Returns
/// the reply to write, if any, and whether to close the connection then:
/// on a timeout the command's nil; on a disconnect, CLIENT KILL or
/// shutdown, a close. Whatever ends the wait, the receiver is closed
/// first and a reply sent before is taken, so the storage task either
/// gets its send refused (and gives the elements back) or its reply is
/// written.
async fn wait_blocked(
    b: Blocked,
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    end: &mut usize,
    me: &Entry,
    shared: &Shared,
) -> (Option<Reply>, bool) {
    let Blocked {
        mut rx,
        timeout_ms,
        timed_out,
    } = b;
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms));
    let _blocked = me.block();
    loop {
        if buf.len() - *end < READ_CHUNK / 2 {
            buf.resize(*end + READ_CHUNK, 0);
        }
        // Past the query limit nothing more is read (the disconnect is
        // then noticed at the next read, after the reply).
        let can_read = *end <= shared.config.max_query_bytes;
        let outcome = {
            let mut stopped = pin!(race(
                race(shared.stop.wait(), me.kill.wait()),
                me.unblock.wait()
            ));
            let mut reply = pin!(&mut rx);
            let space = &mut buf[*end..];
            let mut read = pin!(async move {
                match can_read {
                    true => stream.read(space).await,
                    false => std::future::pending().await,
                }
            });
            let waits = race(stopped.as_mut(), race(reply.as_mut(), read.as_mut()));
            match deadline {
                None => Some(waits.await),
                Some(d) => time::timeout_at(d, waits).await.ok(),
            }
        };
        let give_up = |rx: &mut oneshot::Receiver<Reply>| {
            rx.close();
            rx.try_recv().ok()
        };
        match outcome {
            None => return (Some(give_up(&mut rx).unwrap_or(timed_out)), false),
            Some(Either::Left(Either::Left(_))) => return (give_up(&mut rx), true),
            Some(Either::Left(Either::Right(error))) => {
                let unblocked = match error {
                    true => Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
                    false => timed_out,
                };
                return (Some(give_up(&mut rx).unwrap_or(unblocked)), false);
            }
            Some(Either::Right(Either::Left(Ok(r)))) => return (Some(r), false),
            // The storage task is gone (shutdown).
            Some(Either::Right(Either::Left(Err(_)))) => return (None, true),
            Some(Either::Right(Either::Right(Ok(0) | Err(_)))) => return (give_up(&mut rx), true),
            Some(Either::Right(Either::Right(Ok(n)))) => *end += n,
        }
    }
}

/// Counts a request whose reply `r` was just made, which took `nanos` to
/// run, in `calls` (INFO commandstats, added per round) and in the slow
/// log.
#[allow(clippy::too_many_arguments)]
fn account(
    meta: &Meta,
    nanos: u64,
    r: &Reply,
    calls: &mut Vec<(&'static str, u64, Outcome)>,
    me: &Entry,
    prefixes: &ArgPrefixes,
    peer: &str,
    shared: &Shared,
) {
    if meta.name.is_empty() {
        return;
    }
    let micros = nanos / 1000;
    let outcome = if meta.rejected {
        Outcome::Rejected
    } else if r.is_error() {
        Outcome::Failed
    } else {
        Outcome::Ok
    };
    calls.push((meta.name, nanos, outcome));
    let slower_than = shared.live.slowlog_slower_than_us();
    if outcome != Outcome::Rejected && slower_than >= 0 && micros >= slower_than.unsigned_abs() {
        let name = me.name.lock().unwrap_or_else(|e| e.into_inner()).clone();
        shared.slowlog.record(
            slower_than,
            shared.live.slowlog_max_len(),
            micros,
            meta.name,
            prefixes,
            meta.args,
            peer,
            name.as_deref().unwrap_or_default(),
        );
    }
}

/// The storage request of an EXEC, and where its answers go (DEBUG in it
/// refused unless `debug_allowed`).
fn exec_request(exec: Exec, debug_allowed: bool) -> (Out, Req) {
    let mut outs = Vec::with_capacity(exec.queued.len());
    let mut reqs = Vec::new();
    for q in exec.queued {
        outs.push(match q {
            Queued::Read(r) => {
                reqs.push(Req::Read(r));
                Out::Storage
            }
            Queued::Write(w) => {
                reqs.push(Req::Write(w));
                Out::Storage
            }
            Queued::Info(sections) => {
                reqs.push(Req::Info);
                Out::Info(sections)
            }
            Queued::Select(i) => {
                reqs.push(Req::Select(i));
                Out::Storage
            }
            Queued::Conn(Conn::Ops(op)) if op.is_debug() && !debug_allowed => {
                Out::Ready(Reply::err(DEBUG_REFUSED))
            }
            Queued::Conn(Conn::Ops(Ops::Storage(op))) => {
                reqs.push(Req::Admin(op));
                Out::Storage
            }
            Queued::Conn(Conn::Script(cmd)) => {
                reqs.push(Req::Script(cmd));
                Out::Storage
            }
            Queued::Conn(c) => Out::Conn(c),
            Queued::Ready(r) => Out::Ready(r),
        });
    }
    (Out::Exec(outs), Req::Exec(reqs, exec.watched))
}

/// The reply for `o`, taking its answers from the storage's.
fn render(
    o: Out,
    answers: &mut impl Iterator<Item = Answer>,
    session: &mut Session,
    (me, subscriber): (&Arc<Entry>, &mut Option<Subscriber>),
    shared: &Shared,
    after: &mut After,
) -> Reply {
    match o {
        Out::Ready(r) => r,
        // Queued in MULTI: run at EXEC on the connection's subscriptions,
        // as Redis 7.0 does. Its frames (one per channel) fill the
        // command's slot: one frame as is, several as an array.
        Out::Conn(Conn::PubSub(p)) => {
            let mut frames =
                pubsub_cmd::run(p, subscriber, &shared.pubsub, || new_subscriber(me, shared));
            mirror_state(me, None, subscriber.as_ref());
            match frames.len() {
                1 => frames.pop().unwrap_or(Reply::Nil),
                _ => Reply::Array(frames),
            }
        }
        Out::Storage => match answers.next() {
            Some(Answer::Reply(r)) => r,
            _ => Reply::Nil,
        },
        Out::Info(sections) => {
            let mut data = match answers.next() {
                Some(Answer::Info(d)) => *d,
                _ => Default::default(),
            };
            shared.fill_info(&mut data);
            Reply::Verbatim("txt", info_text(&data, &sections).into_bytes())
        }
        Out::Exec(outs) => match answers.next() {
            Some(Answer::Exec(Some(inner))) => {
                let mut inner = inner.into_iter();
                Reply::Array(
                    outs.into_iter()
                        .map(|o| render(o, &mut inner, session, (me, subscriber), shared, after))
                        .collect(),
                )
            }
            Some(Answer::Reply(r)) => r,
            _ => Reply::NilArray,
        },
        Out::Muted(inner) => render(*inner, answers, session, (me, subscriber), shared, after),
        // CLIENT REPLY queued in a transaction changes nothing.
        Out::Conn(c) => match conn(c, session, me, shared, after, &mut Mute::On) {
            Action::Reply(r) => r,
            Action::Close(r) => {
                *after = After::Close;
                r
            }
            Action::Shutdown => {
                *after = After::Shutdown;
                Reply::ok()
            }
            // Queued as `Queued::Info`: never here.
            Action::Info(_) => Reply::err("ERR INFO could not run in this transaction"),
            Action::Ops(_) => unreachable!("conn() runs operations commands"),
        },
    }
}

/// RESET's part of the connection (Redis 7.0's `clearClientConnectionState`):
/// out of MULTI with nothing watched, unsubscribed from everything, the
/// session reset (no name, RESP2, deauthenticated if a password is set),
/// replies on, no-evict off, database 0. The caller makes sure no job of
/// this connection is in flight (the database cell is set here).
fn reset(
    (multi, subscriber, session, mute): (
        &mut Multi,
        &mut Option<Subscriber>,
        &mut Session,
        &mut Mute,
    ),
    me: &Entry,
    db: &DbCell,
    shared: &Shared,
) {
    db.store(0, Ordering::Relaxed);
    *multi = Multi::new();
    *subscriber = None;
    session.reset(shared.live.view().requirepass.as_deref());
    me.no_evict.store(false, Ordering::Relaxed);
    *mute = Mute::On;
    ops::mirror(me, session);
    mirror_state(me, None, None);
}

/// Mirrors what CLIENT LIST shows of the connection's subscriptions and
/// transaction into its registry entry.
fn mirror_state(me: &Entry, queued: Option<usize>, subscriber: Option<&Subscriber>) {
    let subs = subscriber.map_or([0; 3], |s| {
        [Space::Channel, Space::Pattern, Space::Shard].map(|sp| s.count_in(sp))
    });
    me.mirror_state(subs, queued);
}

/// Runs a connection command: the session's, or the server's for an
/// operations one (which becomes an `Action::Reply`, or `Action::Close`
/// when it killed the caller; MONITOR sets `after`).
fn conn(
    c: Conn,
    session: &mut Session,
    me: &Entry,
    shared: &Shared,
    after: &mut After,
    mute: &mut Mute,
) -> Action {
    // The view's guard is dropped at the end of this statement: CONFIG SET
    // (run below) takes it for writing.
    if matches!(c, Conn::ConfigResetStat) {
        shared.reset_stats();
    }
    let action = session.execute(c, &shared.live.view());
    let action = match action {
        Action::Ops(op) => {
            let done = ops::run(op, me, shared);
            match done.then {
                ops::Then::Continue => Action::Reply(done.reply),
                ops::Then::Close => Action::Close(done.reply),
                ops::Then::Monitor => {
                    *after = After::Monitor;
                    Action::Reply(done.reply)
                }
                ops::Then::Replies(mode) => {
                    *mute = match mode {
                        ReplyMode::On => Mute::On,
                        ReplyMode::Off => Mute::Off,
                        // SKIP while OFF changes nothing, as in Redis.
                        ReplyMode::Skip if *mute == Mute::Off => Mute::Off,
                        ReplyMode::Skip => Mute::SkipSelf,
                    };
                    Action::Reply(done.reply)
                }
            }
        }
        other => other,
    };
    ops::mirror(me, session);
    action
}

/// Most bytes of messages written at once to a subscriber: the messages
/// still queued stay counted against its `client-output-buffer-limit
/// pubsub` while these are written.
const PUSH_BYTES: usize = 64 * 1024;

/// The connection's mailbox's next delivery; never, for a connection that
/// never subscribed.
async fn next_delivery(subscriber: Option<&Subscriber>) -> Delivery {
    match subscriber {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// A mailbox for this connection: bounded by `client-output-buffer-limit
/// pubsub`; its overflow kills the connection (even one blocked writing),
/// with the reason logged.
fn new_subscriber(me: &Arc<Entry>, shared: &Shared) -> Subscriber {
    let entry = me.clone();
    let limit = shared.live.pubsub_limit();
    let in_force = limit.clone();
    shared.pubsub.subscriber_with(
        limit,
        Some(Box::new(move || {
            let shown = in_force.get();
            eprintln!(
                "matou-kv: client id={} addr={} closed: unread messages over \
                 client-output-buffer-limit pubsub (hard {} bytes, soft {} bytes for {} s)",
                entry.id, entry.addr, shown.hard, shown.soft, shown.soft_secs
            );
            entry.kill.trigger();
        })),
    )
}

/// Writes `first` and what else is queued (up to [`PUSH_BYTES`]) as
/// message frames in protocol `proto`; false if the connection is to close
/// (its mailbox overflowed, or it was killed while writing).
async fn deliver(
    stream: &TcpStream,
    me: &Entry,
    sub: &Subscriber,
    first: Delivery,
    proto: u8,
    wire: &mut Vec<u8>,
) -> io::Result<bool> {
    wire.clear();
    let mut next = first;
    loop {
        match next {
            Delivery::Message(m) => encode_message(&m, proto, wire),
            Delivery::Overflowed => return Ok(false),
            Delivery::Empty => break,
        }
        if wire.len() >= PUSH_BYTES {
            break;
        }
        next = sub.try_recv();
    }
    let written = {
        let mut killed = pin!(me.kill.wait());
        let mut write = pin!(stream.write_all(wire));
        match race(killed.as_mut(), write.as_mut()).await {
            Either::Left(()) => false,
            Either::Right(r) => {
                r?;
                true
            }
        }
    };
    if wire.capacity() > 4 * PUSH_BYTES {
        *wire = Vec::new();
    }
    Ok(written)
}
