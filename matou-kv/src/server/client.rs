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
//! count, this bounds their sum).

use super::storage::{Answer, DbCell, Job, Req};
use super::Shared;
use crate::command::multi::{Exec, Intercept, Multi, Queued};
use crate::command::{info_text, Action, Command, Conn, Session};
use crate::resp::{Decoder, ProtocolError, Reply};
use matou::sync::oneshot;
use matou::unix::net::TcpStream;
use matou::{race, Either};
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes a handler reads at a time.
const READ_CHUNK: usize = 16 * 1024;

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
}

/// What the connection does after its batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    Continue,
    /// Reply, then close (QUIT, a protocol error).
    Close,
    /// Stop the server, close without reply (SHUTDOWN).
    Shutdown,
}

/// Serves one client until it closes, QUITs, errs, or the server stops.
pub(super) async fn handle(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let _guard = ClientGuard(&shared.clients);
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    let mut session = Session::new(id, shared.config.requirepass.as_deref());
    let mut multi = Multi::new();
    let db = DbCell::default();
    // Resumable: a big request arriving in many reads is not re-parsed from
    // its start at each one.
    let mut decoder = Decoder::new(shared.config.limits());
    decoder.set_authenticated(session.authenticated);
    // Requests are read straight into `buf[end..]`; `buf[..end]` holds what
    // is not consumed yet (an incomplete request). The buffer stays
    // initialized at its full length, so a read zeroes nothing: only
    // growing it does.
    let mut buf: Vec<u8> = vec![0; READ_CHUNK];
    let mut end = 0;
    let mut wire = Vec::new();
    let mut outs = Vec::new();
    loop {
        // Between batches only: a batch in flight is always finished.
        if shared.stop.is_triggered() {
            return Ok(());
        }
        if buf.len() - end < READ_CHUNK / 2 {
            buf.resize(end + READ_CHUNK, 0);
        }
        let n = {
            let mut stopped = pin!(shared.stop.wait());
            let mut read = pin!(stream.read(&mut buf[end..]));
            match race(stopped.as_mut(), read.as_mut()).await {
                Either::Left(()) => return Ok(()),
                Either::Right(r) => r?,
            }
        };
        if n == 0 {
            return Ok(());
        }
        end += n;

        let mut reqs = Vec::new();
        // The protocol of each reply is the session's when its request was
        // parsed: (first reply, protocol) wherever a HELLO changed it.
        let batch_proto = session.proto;
        let mut switches: Vec<(usize, u8)> = Vec::new();
        let mut after = After::Continue;
        let mut consumed = 0;
        let mut bad = None;
        while after == After::Continue {
            match decoder.decode(&buf[consumed..end]) {
                Ok(Some((args, used))) => {
                    consumed += used;
                    if args.is_empty() {
                        continue;
                    }
                    shared.commands.fetch_add(1, Ordering::Relaxed);
                    let parsed = match multi.intercept(&args, session.authenticated) {
                        Intercept::Pass => session.parse(&args),
                        Intercept::Reply(r) => Err(r),
                        Intercept::Watch(keys, cell) => {
                            outs.push(Out::Storage);
                            reqs.push(Req::Watch(keys, cell));
                            continue;
                        }
                        Intercept::Exec(exec) => {
                            let (out, req) = exec_request(exec);
                            outs.push(out);
                            reqs.push(req);
                            continue;
                        }
                    };
                    match parsed {
                        Err(e) => outs.push(Out::Ready(e)),
                        Ok(Command::Read(r)) => {
                            outs.push(Out::Storage);
                            reqs.push(Req::Read(r));
                        }
                        Ok(Command::Write(w)) => {
                            outs.push(Out::Storage);
                            reqs.push(Req::Write(w));
                        }
                        Ok(Command::Conn(Conn::Select(i))) => {
                            outs.push(Out::Storage);
                            reqs.push(Req::Select(i));
                        }
                        Ok(Command::Conn(c)) => match session.execute(c, &shared.view) {
                            Action::Reply(r) => outs.push(Out::Ready(r)),
                            Action::Close(r) => {
                                outs.push(Out::Ready(r));
                                after = After::Close;
                            }
                            Action::Shutdown => after = After::Shutdown,
                            Action::Info(sections) => {
                                outs.push(Out::Info(sections));
                                reqs.push(Req::Info);
                            }
                        },
                    }
                    // AUTH lifts the decoder's pre-authentication caps.
                    decoder.set_authenticated(session.authenticated);
                    let proto_now = switches.last().map_or(batch_proto, |s| s.1);
                    if session.proto != proto_now {
                        // HELLO's own reply is in the protocol it asked for.
                        switches.push((outs.len().saturating_sub(1), session.proto));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        buf.copy_within(consumed..end, 0);
        end -= consumed;
        if bad.is_none() && after == After::Continue && end > shared.config.max_query_bytes {
            bad = Some(ProtocolError(format!(
                "ERR Protocol error: request larger than the query buffer limit ({} bytes, \
                 max-query-bytes)",
                shared.config.max_query_bytes
            )));
        }

        let answers = if reqs.is_empty() {
            Vec::new()
        } else {
            let (tx, rx) = oneshot::channel();
            let job = Job {
                reqs,
                db: db.clone(),
                reply: tx,
            };
            if shared.jobs.send(job).await.is_err() {
                // The storage task is gone (shutdown): nothing to answer with.
                return Ok(());
            }
            match rx.await {
                Ok(answers) => answers,
                Err(_) => return Ok(()),
            }
        };
        let mut answers = answers.into_iter();
        wire.clear();
        let mut proto = batch_proto;
        let mut switches = switches.into_iter().peekable();
        for (i, o) in outs.drain(..).enumerate() {
            while let Some((_, p)) = switches.next_if(|s| s.0 == i) {
                proto = p;
            }
            let r = render(o, &mut answers, &mut session, &shared, &mut after);
            r.encode_proto(proto, &mut wire);
        }
        // AUTH queued in a transaction ran just now.
        decoder.set_authenticated(session.authenticated);
        if let Some(e) = &bad {
            e.reply().encode(&mut wire);
        }
        if !wire.is_empty() {
            stream.write_all(&wire).await?;
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
            _ => return Ok(()),
        }
    }
}

/// The storage request of an EXEC, and where its answers go.
fn exec_request(exec: Exec) -> (Out, Req) {
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
    shared: &Shared,
    after: &mut After,
) -> Reply {
    match o {
        Out::Ready(r) => r,
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
                        .map(|o| render(o, &mut inner, session, shared, after))
                        .collect(),
                )
            }
            Some(Answer::Reply(r)) => r,
            _ => Reply::NilArray,
        },
        Out::Conn(c) => match session.execute(c, &shared.view) {
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
        },
    }
}
