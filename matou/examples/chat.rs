//! A chat server (seed 001 names its module `Chat`): clients connect over
//! TCP, and each line a client sends reaches every other client.
//!
//! ```text
//! cargo run --release -p matou --example chat -- [--port P] [--bind IP] [--workers N]
//! nc 127.0.0.1 7000        # in two or more terminals
//! ```
//!
//! This file owns the whole server, built on `matou`'s public API only:
//!
//! - **Workers.** Every worker runs its own accept loop (`parallel`) on its
//!   own duplicate of the one listening socket, so connections spread over
//!   the workers and no other process can bind the port.
//! - **Orphans.** Each connection is an orphan task of its worker's accept
//!   loop; finished ones are collected (`care`) before every accept. On
//!   SIGINT/SIGTERM the loops stop accepting and cancel the connections still
//!   open, so nothing outlives the run.
//! - **The room** is one value shared by every worker (`Arc`): a
//!   `matou::sync::Mutex` over the members, each member holding the `Sender`
//!   of a bounded `matou::sync::channel` of outgoing lines. A connection task
//!   reads its client's lines and broadcasts them itself; its child writer task
//!   drains its channel to the socket.
//!
//! Protocol and policies:
//!
//! - A client gets `* welcome NAME (worker W)` first, then `NAME: text` for
//!   each line another client sends (never its own), and `* NAME joined` /
//!   `* NAME left` notices. Empty lines are not broadcast; a trailing `\r` is
//!   dropped; invalid UTF-8 is replaced.
//! - **Long lines:** a line longer than [`MAX_LINE`] bytes (its ending not
//!   counted) gets `* error: line longer than MAX_LINE bytes` and the
//!   connection is closed; nothing of that line reaches anyone.
//! - **Slow clients:** a broadcast never waits for a receiver (`try_send`). A
//!   member whose queue already holds [`QUEUE`] lines is too far behind: it is
//!   removed from the room at once (the others see `* NAME left (too slow)`),
//!   its writer gets to flush what was queued, then it gets
//!   `* error: too slow` and is disconnected. Separately, a write that makes no
//!   progress for [`WRITE_TIMEOUT`] ends the connection, so a client that stops
//!   reading cannot pin its task forever.
//! - **Leaving:** a connection leaves the room when its client closes, errs,
//!   or is disconnected by a policy above. A connection cancelled at shutdown
//!   cannot run that step; its member is dropped by the next broadcast that
//!   finds its channel closed, so the room never keeps a dead member past one
//!   message.

use matou::sync::{channel, Mutex, Receiver, Sender, TryRecvError, TrySendError};
use matou::unix::net::{serve_on_every_worker, TcpListener, TcpStream};
use matou::unix::{signal, time};
use matou::{race, Care, Either, Orphans, Promise};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest line a client may send, in bytes, its line ending not counted.
pub const MAX_LINE: usize = 1024;
/// How many lines may wait for one client before it counts as too slow.
pub const QUEUE: usize = 256;
/// How long a write to a client may make no progress before it is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes the writer gathers from its queue into one `write`.
const BATCH: usize = 64 * 1024;
/// Lines a reader broadcasts between two yields to its worker's other tasks.
const YIELD_EVERY: u64 = 32;

/// One line on its way to clients, shared by all of them (one allocation per
/// broadcast, not per receiver).
type Line = Arc<str>;

// ---------------------------------------------------------------- the room

struct Member {
    id: u64,
    name: Arc<str>,
    tx: Sender<Line>,
}

/// A connection's identity in the room.
struct Me {
    id: u64,
    name: Arc<str>,
}

/// Everyone connected, on every worker.
#[derive(Default)]
pub struct Room {
    members: Mutex<Vec<Member>>,
    next_id: AtomicU64,
    /// `members.len()`, readable without the async lock (logs and tests).
    len: AtomicUsize,
    /// Members removed for being too slow, since the start.
    kicked: AtomicU64,
    /// Connection tasks alive, in the room or not (logs and tests).
    open: AtomicUsize,
}

impl Room {
    /// An empty room.
    pub fn new() -> Room {
        Room::default()
    }

    /// Members now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Members removed for being too slow so far.
    pub fn kicked(&self) -> u64 {
        self.kicked.load(Ordering::SeqCst)
    }

    /// Connection tasks alive now, whether in the room yet (or still) or not.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Adds a member whose outgoing lines go to `tx`; the room holds the only
    /// `Sender`, so removing the member closes its channel.
    async fn join(&self, tx: Sender<Line>) -> Me {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let name: Arc<str> = format!("guest{id}").into();
        let mut members = self.members.lock().await;
        self.deliver(&mut members, Some(id), format!("* {name} joined\n").into());
        members.push(Member {
            id,
            name: name.clone(),
            tx,
        });
        self.len.store(members.len(), Ordering::SeqCst);
        Me { id, name }
    }

    /// Removes `me` if it is still there (a broadcast may have removed it
    /// already) and tells the others.
    async fn leave(&self, me: &Me) {
        let mut members = self.members.lock().await;
        let before = members.len();
        members.retain(|m| m.id != me.id);
        if members.len() < before {
            self.deliver(&mut members, None, format!("* {} left\n", me.name).into());
        }
        self.len.store(members.len(), Ordering::SeqCst);
    }

    /// Broadcasts one line `me` sent.
    async fn say(&self, me: &Me, text: &[u8]) {
        let line = format!("{}: {}\n", me.name, String::from_utf8_lossy(text));
        let mut members = self.members.lock().await;
        self.deliver(&mut members, Some(me.id), line.into());
        self.len.store(members.len(), Ordering::SeqCst);
    }

    /// Queues `line` for every member but `from`, without waiting: see the
    /// module docs for the slow-client policy. Runs under the room lock, so
    /// every member sees the room's lines in one order.
    fn deliver(&self, members: &mut Vec<Member>, from: Option<u64>, line: Line) {
        let mut pending = vec![(from, line)];
        while let Some((from, line)) = pending.pop() {
            members.retain(|m| {
                if Some(m.id) == from {
                    return true;
                }
                match m.tx.try_send(line.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        // Waiting for it would stall every sender behind
                        // one slow reader; closing lets its writer flush
                        // what is queued, then end the connection.
                        m.tx.close();
                        self.kicked.fetch_add(1, Ordering::Relaxed);
                        pending.push((None, format!("* {} left (too slow)\n", m.name).into()));
                        false
                    }
                    // Its connection is gone without leaving (cancelled).
                    Err(TrySendError::Closed(_)) => false,
                }
            });
        }
    }
}

// ---------------------------------------------------------------- a stop switch

/// A graceful-shutdown latch built on a channel nobody sends on: closing it
/// wakes every waiter, on any worker; any thread may close it.
#[derive(Clone)]
pub struct Stop {
    tx: Sender<()>,
    rx: Receiver<()>,
}

impl Default for Stop {
    fn default() -> Self {
        let (tx, rx) = channel(0);
        Stop { tx, rx }
    }
}

impl Stop {
    /// A switch not flipped yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Flips the switch.
    pub fn trigger(&self) {
        self.tx.close();
    }

    /// Whether the switch was flipped.
    pub fn is_triggered(&self) -> bool {
        self.tx.is_closed()
    }

    /// Waits until the switch is flipped.
    pub async fn wait(&self) {
        while self.rx.recv().await.is_some() {}
    }
}

// ---------------------------------------------------------------- one client

/// How a connection ended, when it ended cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The client closed its side.
    Quit,
    /// The client sent a line over [`MAX_LINE`].
    TooLong,
    /// The client fell [`QUEUE`] lines behind.
    Kicked,
}

/// Writes all of `buf`, failing when one write makes no progress for
/// [`WRITE_TIMEOUT`].
async fn write_timed(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match time::timeout(WRITE_TIMEOUT, stream.write(buf)).await? {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The writer task: the welcome line, then the member's queue until it is
/// closed and drained.
async fn write_lines(stream: Rc<TcpStream>, welcome: String, rx: Receiver<Line>) -> io::Result<()> {
    write_timed(&stream, welcome.as_bytes()).await?;
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(line) = rx.recv().await {
        batch.clear();
        batch.extend_from_slice(line.as_bytes());
        // Whatever else is queued goes in the same syscall.
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(line) => batch.extend_from_slice(line.as_bytes()),
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        write_timed(&stream, &batch).await?;
    }
    Ok(())
}

enum ReadEnd {
    Eof,
    TooLong,
}

/// Reads the client's lines and broadcasts each, until the end of its
/// stream or a line over [`MAX_LINE`].
async fn read_lines(stream: &TcpStream, room: &Room, me: &Me) -> io::Result<ReadEnd> {
    // A line may end in "\r\n": allow for the '\r' before judging length.
    let too_long = |line: &[u8]| line.strip_suffix(b"\r").unwrap_or(line).len() > MAX_LINE;
    let mut pending = Vec::with_capacity(MAX_LINE + 2);
    let mut chunk = vec![0u8; 4096];
    let mut said = 0u64;
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            // A last line without its '\n' still counts.
            if too_long(&pending) {
                return Ok(ReadEnd::TooLong);
            }
            say(room, me, &pending).await;
            return Ok(ReadEnd::Eof);
        }
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = &pending[start..start + i];
            if too_long(line) {
                return Ok(ReadEnd::TooLong);
            }
            say(room, me, line).await;
            start += i + 1;
            said += 1;
            if said % YIELD_EVERY == 0 {
                // A read that finds data does not suspend: without this, a
                // flooding client would keep the writers of its worker
                // from draining, and get them dropped as too slow.
                matou::yield_now().await;
            }
        }
        pending.drain(..start);
        // Do not buffer a line we will refuse anyway.
        if pending.len() > MAX_LINE + 1 {
            return Ok(ReadEnd::TooLong);
        }
    }
}

async fn say(room: &Room, me: &Me, line: &[u8]) {
    let text = line.strip_suffix(b"\r").unwrap_or(line);
    if !text.is_empty() {
        room.say(me, text).await;
    }
}

/// Counts a connection task as open until it ends, cancelled or not.
struct Open<'a>(&'a Room);

impl<'a> Open<'a> {
    fn new(room: &'a Room) -> Self {
        room.open.fetch_add(1, Ordering::SeqCst);
        Open(room)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One connection: joins the room, runs its writer as a child task and its
/// reader inline, and leaves the room whichever ends first.
async fn client(stream: TcpStream, room: Arc<Room>) -> io::Result<End> {
    let _open = Open::new(&room);
    // Reader (here) and writer (a child on this worker) share the socket.
    let stream = Rc::new(stream);
    let (tx, rx) = channel(QUEUE);
    let me = room.join(tx).await;
    let welcome = format!(
        "* welcome {} (worker {})\n",
        me.name,
        matou::current_worker().index()
    );
    let mut writer: Promise<io::Result<()>> =
        matou::spawn(write_lines(stream.clone(), welcome, rx));
    // A reader still waiting when the writer ends is dropped with this block.
    let first_done = {
        let reading = pin!(read_lines(&stream, &room, &me));
        race(reading, &mut writer).await
    };
    // Leaving drops the room's `Sender`: the writer drains the queue, then ends.
    room.leave(&me).await;
    match first_done {
        Either::Left(Ok(ReadEnd::Eof)) => {
            let _ = writer.await; // best effort: the client may be gone
            Ok(End::Quit)
        }
        Either::Left(Ok(ReadEnd::TooLong)) => {
            // After the writer, so the notice is the last thing the client gets.
            writer.await.map_err(io::Error::other)??;
            let notice = format!("* error: line longer than {MAX_LINE} bytes\n");
            write_timed(&stream, notice.as_bytes()).await?;
            Ok(End::TooLong)
        }
        Either::Left(Err(e)) => {
            let _ = writer.cancel().await;
            Err(e)
        }
        // The writer drained a queue that closed while the client was still
        // talking: the room dropped it for being too slow.
        Either::Right(Ok(Ok(()))) => {
            write_timed(&stream, b"* error: too slow\n").await?;
            Ok(End::Kicked)
        }
        Either::Right(Ok(Err(e))) => Err(e),
        Either::Right(Err(e)) => Err(io::Error::other(e)),
    }
}

// ---------------------------------------------------------------- accept loops

/// What one worker's server did, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Clients that closed their side.
    pub quit: u64,
    /// Clients disconnected for a line over [`MAX_LINE`].
    pub too_long: u64,
    /// Clients disconnected for being [`QUEUE`] lines behind.
    pub kicked: u64,
    /// Ended by an I/O error (reset, write timeout, ...).
    pub failed: u64,
    /// Still connected at shutdown.
    pub cancelled: u64,
}

impl Stats {
    fn count(&mut self, r: Result<io::Result<End>, matou::Error>) {
        match r {
            Ok(Ok(End::Quit)) => self.quit += 1,
            Ok(Ok(End::TooLong)) => self.too_long += 1,
            Ok(Ok(End::Kicked)) => self.kicked += 1,
            // One client's failure (or panic) is that client's business.
            Ok(Err(_)) | Err(_) => self.failed += 1,
        }
    }
}

/// Collects every finished client (Miou's `clean_up`).
async fn clean_up(clients: &Orphans<io::Result<End>>, stats: &mut Stats) -> io::Result<()> {
    while let Care::Ready(p) = clients.care().map_err(io::Error::other)? {
        stats.count(p.await);
    }
    Ok(())
}

/// One worker's accept loop, until `stop`; then cancels its clients still
/// connected.
///
/// # Errors
/// `accept`'s (after the clients are cancelled).
pub async fn serve(listener: TcpListener, room: Arc<Room>, stop: Stop) -> io::Result<Stats> {
    let clients: Orphans<io::Result<End>> = Orphans::new();
    let mut stats = Stats::default();
    let mut stopped = pin!(stop.wait());
    let result = loop {
        if let Err(e) = clean_up(&clients, &mut stats).await {
            break Err(e);
        }
        let accept = pin!(listener.accept());
        match race(stopped.as_mut(), accept).await {
            Either::Left(()) => break Ok(()),
            Either::Right(Ok((stream, _))) => {
                stats.accepted += 1;
                // Chat lines are small and latency-bound.
                let _ = stream.set_nodelay(true);
                if let Err(e) = clients.spawn(client(stream, room.clone())) {
                    break Err(io::Error::other(e));
                }
            }
            Either::Right(Err(e)) => break Err(e),
        }
    };
    drop(listener);
    clean_up(&clients, &mut stats).await?;
    while let Some(p) = clients.take().map_err(io::Error::other)? {
        if p.is_finished() {
            stats.count(p.await);
        } else {
            stats.cancelled += 1;
            let _ = p.cancel().await;
        }
    }
    result.map(|()| stats)
}

/// Serves `listener` here and a duplicate of it on
/// every other worker that `parallel` may use, one room for all. Returns each
/// server's statistics (this worker's first) once all of them stopped.
///
/// # Errors
/// The first server error; every server is stopped and awaited first.
pub async fn serve_all(
    listener: TcpListener,
    room: Arc<Room>,
    stop: Stop,
) -> io::Result<Vec<Stats>> {
    let stopping = stop.clone();
    serve_on_every_worker(
        listener,
        move |l| serve(l, room.clone(), stop.clone()),
        move || stopping.trigger(),
    )
    .await
}

// ---------------------------------------------------------------- main

struct Args {
    addr: SocketAddr,
    workers: Option<usize>,
}

fn usage() -> ! {
    eprintln!(
        "usage: chat [--port P (default 7000)] [--bind IP (default 127.0.0.1)] [--workers N]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut port = 7000u16;
    let mut workers = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--bind" => ip = value().parse().unwrap_or_else(|_| usage()),
            "--workers" => workers = Some(value().parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    Args {
        addr: SocketAddr::new(ip, port),
        workers,
    }
}

async fn server(args: Args) -> io::Result<Vec<Stats>> {
    let listener = TcpListener::bind(args.addr)?;
    println!(
        "chat: listening on {} ({} worker(s), one accept loop each)",
        listener.local_addr()?,
        matou::worker_count()
    );
    let stop = Stop::new();
    let on_signal = {
        let stop = stop.clone();
        matou::spawn(async move {
            match signal::shutdown().await {
                Ok(kind) => println!("chat: {kind:?}: stopping"),
                Err(e) => eprintln!("chat: cannot listen for signals ({e}): stopping"),
            }
            stop.trigger();
        })
    };
    let room = Arc::new(Room::new());
    let result = serve_all(listener, room.clone(), stop.clone()).await;
    // The signal task is a child: await it if it fired, else cancel it.
    if stop.is_triggered() {
        let _ = on_signal.await;
    } else {
        let _ = on_signal.cancel().await;
    }
    println!(
        "chat: {} client(s) dropped for being too slow",
        room.kicked()
    );
    result
}

fn main() -> ExitCode {
    let args = parse();
    let mut builder = matou::builder();
    if let Some(n) = args.workers {
        builder = builder.extra_workers(n.saturating_sub(1));
    }
    match builder.run(server(args)) {
        Ok(stats) => {
            for (i, s) in stats.iter().enumerate() {
                println!("chat: server {i}: {s:?}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    //! The server in-process on a background thread, driven by blocking
    //! `std::net` clients on loopback. Every read has a timeout, so a broken
    //! server fails a test instead of hanging it.

    use super::*;
    use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
    use std::net::TcpStream as StdStream;
    use std::thread::JoinHandle;
    use std::time::Instant;

    const READ_TIMEOUT: Duration = Duration::from_secs(10);

    struct Server {
        addr: SocketAddr,
        room: Arc<Room>,
        stop: Stop,
        thread: Option<JoinHandle<io::Result<Vec<Stats>>>>,
    }

    impl Server {
        fn start(extra_workers: usize) -> Server {
            Server::start_with(extra_workers, matou::DEFAULT_IDLE_SPIN)
        }

        fn start_with(extra_workers: usize, idle_spin: Duration) -> Server {
            let room = Arc::new(Room::new());
            let stop = Stop::new();
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let (r, s) = (room.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                matou::builder()
                    .extra_workers(extra_workers)
                    .idle_spin(idle_spin)
                    .run(async move {
                        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
                        addr_tx.send(listener.local_addr()?).unwrap();
                        serve_all(listener, r, s).await
                    })
            });
            let addr = addr_rx
                .recv_timeout(READ_TIMEOUT)
                .expect("the server did not start");
            Server {
                addr,
                room,
                stop,
                thread: Some(thread),
            }
        }

        /// Stops the server; the per-worker statistics summed.
        fn stop(mut self) -> Stats {
            self.stop.trigger();
            let all = self
                .thread
                .take()
                .unwrap()
                .join()
                .expect("the server panicked")
                .expect("the server failed");
            all.iter().fold(Stats::default(), |mut t, s| {
                t.accepted += s.accepted;
                t.quit += s.quit;
                t.too_long += s.too_long;
                t.kicked += s.kicked;
                t.failed += s.failed;
                t.cancelled += s.cancelled;
                t
            })
        }

        fn until_members(&self, n: usize) {
            until(&format!("{n} members"), || self.room.len() == n);
        }

        /// Waits until every connection task ended, so that the statistics
        /// count them as ended rather than cancelled.
        fn until_all_closed(&self) {
            until("no connection open", || self.room.open() == 0);
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            // A failed test must not leave the server running.
            self.stop.trigger();
        }
    }

    fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + READ_TIMEOUT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    struct Client {
        reader: BufReader<StdStream>,
        writer: StdStream,
        name: String,
        worker: usize,
        /// Notices that `message` skipped, for `notice`.
        skipped: Vec<String>,
    }

    impl Client {
        fn connect(addr: SocketAddr) -> Client {
            let s = StdStream::connect(addr).unwrap();
            s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            let mut c = Client {
                reader: BufReader::new(s.try_clone().unwrap()),
                writer: s,
                name: String::new(),
                worker: 0,
                skipped: Vec::new(),
            };
            let welcome = c.line();
            let rest = welcome
                .strip_prefix("* welcome ")
                .unwrap_or_else(|| panic!("not a welcome: {welcome:?}"));
            let (name, worker) = rest.split_once(" (worker ").unwrap();
            c.name = name.to_owned();
            c.worker = worker.trim_end_matches(")\n").parse().unwrap();
            c
        }

        /// The next line, with its '\n'.
        fn line(&mut self) -> String {
            let mut l = String::new();
            match self.reader.read_line(&mut l) {
                Ok(0) => panic!("{}: unexpected end of stream", self.name),
                Ok(_) => l,
                Err(e) => panic!("{}: no line in time: {e}", self.name),
            }
        }

        /// The next chat line, skipping `* ` notices.
        fn message(&mut self) -> String {
            loop {
                let l = self.line();
                if !l.starts_with("* ") {
                    return l;
                }
                self.skipped.push(l);
            }
        }

        /// Reads up to and including the notice `want`, checking that no
        /// chat line comes before it.
        fn notice(&mut self, want: &str) {
            if let Some(i) = self.skipped.iter().position(|l| l == want) {
                self.skipped.drain(..=i);
                return;
            }
            loop {
                let l = self.line();
                assert!(l.starts_with("* "), "{}: unexpected {l:?}", self.name);
                if l == want {
                    return;
                }
            }
        }

        /// Leaves cleanly: closes our side, then reads until the server
        /// closes its own (dropping a socket with unread bytes would reset
        /// the connection instead).
        fn quit(mut self) {
            self.writer.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            self.reader.read_to_end(&mut rest).unwrap();
        }

        fn send(&mut self, bytes: &[u8]) {
            self.writer.write_all(bytes).unwrap();
        }

        /// Asserts the server closed the connection (a reset counts: it
        /// may come when the server closed with our bytes unread).
        fn expect_closed(&mut self) {
            let mut rest = Vec::new();
            match self.reader.read_to_end(&mut rest) {
                Ok(_) => assert!(rest.is_empty(), "{}: got {rest:?}", self.name),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                Err(e) => panic!("{}: not closed: {e}", self.name),
            }
        }
    }

    #[test]
    fn a_line_reaches_every_other_client_but_not_its_sender() {
        let server = Server::start(0);
        let mut a = Client::connect(server.addr);
        let mut b = Client::connect(server.addr);
        let mut c = Client::connect(server.addr);
        server.until_members(3);
        a.send(b"hello\r\n");
        assert_eq!(b.message(), format!("{}: hello\n", a.name));
        assert_eq!(c.message(), format!("{}: hello\n", a.name));
        b.send(b"ping\n");
        // The room queues lines in one order: had `a` been sent its own
        // line, it would come before this one.
        assert_eq!(a.message(), format!("{}: ping\n", b.name));
        assert_eq!(c.message(), format!("{}: ping\n", b.name));
        // Empty lines are not broadcast.
        c.send(b"\n\r\nlast\n");
        assert_eq!(a.message(), format!("{}: last\n", c.name));
        assert_eq!(b.message(), format!("{}: last\n", c.name));
        for c in [a, b, c] {
            c.quit();
        }
        server.until_members(0);
        server.until_all_closed();
        let stats = server.stop();
        assert_eq!((stats.accepted, stats.quit), (3, 3), "{stats:?}");
    }

    #[test]
    fn a_client_that_disconnects_leaves_the_room() {
        let server = Server::start(0);
        let mut a = Client::connect(server.addr);
        let mut b = Client::connect(server.addr);
        server.until_members(2);
        for i in 0..20 {
            let mut c = Client::connect(server.addr);
            a.notice(&format!("* {} joined\n", c.name));
            c.send(b"bye\n");
            assert_eq!(a.message(), format!("{}: bye\n", c.name));
            assert_eq!(b.message(), format!("{}: bye\n", c.name));
            let name = c.name.clone();
            if i % 2 == 0 {
                c.quit();
            } else {
                drop(c); // abruptly: a reset, as the notices went unread
            }
            a.notice(&format!("* {name} left\n"));
        }
        server.until_members(2);
        // The room still works, and sends nothing to the departed.
        a.send(b"still here\n");
        assert_eq!(b.message(), format!("{}: still here\n", a.name));
        let a_name = a.name.clone();
        a.quit();
        b.notice(&format!("* {a_name} left\n"));
        server.until_members(1);
        b.quit();
        server.until_members(0);
        server.until_all_closed();
        let stats = server.stop();
        assert_eq!(stats.accepted, 22, "{stats:?}");
        assert_eq!(stats.quit + stats.failed, 22, "{stats:?}");
        assert!(stats.quit >= 12, "{stats:?}");
    }

    #[test]
    fn clients_on_different_workers_all_get_every_line() {
        // Every worker accepts on the same listening socket: whichever is
        // first to take the readiness event wins. A worker spinning because
        // it just served a connection would win every sequential connect;
        // with no spin, both wait in epoll and both are woken, so the
        // connections spread. Connect until at least two workers serve some.
        let server = Server::start_with(2, Duration::ZERO);
        let mut clients = Vec::new();
        let mut workers = std::collections::BTreeSet::new();
        while clients.len() < 8 || (workers.len() < 2 && clients.len() < 64) {
            let c = Client::connect(server.addr);
            workers.insert(c.worker);
            clients.push(c);
        }
        assert!(workers.len() >= 2, "all on worker(s) {workers:?}");
        server.until_members(clients.len());
        let senders = [
            0,
            clients
                .iter()
                .position(|c| c.worker != clients[0].worker)
                .unwrap(),
        ];
        for (round, &s) in senders.iter().enumerate() {
            let text = format!("round {round}\n");
            clients[s].send(text.as_bytes());
            let want = format!("{}: {text}", clients[s].name);
            for (i, c) in clients.iter_mut().enumerate() {
                if i != s {
                    assert_eq!(c.message(), want, "client on worker {}", c.worker);
                }
            }
        }
        let n = clients.len() as u64;
        clients.into_iter().for_each(Client::quit);
        server.until_members(0);
        server.until_all_closed();
        let stats = server.stop();
        assert_eq!((stats.accepted, stats.quit), (n, n), "{stats:?}");
    }

    #[test]
    fn an_over_long_line_gets_an_error_and_a_disconnect() {
        let server = Server::start(0);
        let mut a = Client::connect(server.addr);
        let mut b = Client::connect(server.addr);
        server.until_members(2);
        // The longest line allowed, with "\r\n".
        let longest = "y".repeat(MAX_LINE);
        a.send(format!("{longest}\r\n").as_bytes());
        assert_eq!(b.message(), format!("{}: {longest}\n", a.name));
        // One byte more, newline or not: refused.
        for with_newline in [true, false] {
            let mut c = Client::connect(server.addr);
            b.notice(&format!("* {} joined\n", c.name));
            let mut line = vec![b'x'; MAX_LINE + 1];
            if with_newline {
                line.push(b'\n');
            } else {
                line.extend_from_slice(&[b'x'; 3 * MAX_LINE]);
            }
            c.send(&line);
            assert_eq!(
                c.line(),
                format!("* error: line longer than {MAX_LINE} bytes\n")
            );
            c.expect_closed();
            // Nothing of it reached `b`: the next thing is `c` leaving.
            b.notice(&format!("* {} left\n", c.name));
        }
        server.until_members(2);
        a.quit();
        b.quit();
        server.until_all_closed();
        let stats = server.stop();
        assert_eq!((stats.too_long, stats.quit), (2, 2), "{stats:?}");
    }

    #[test]
    fn a_client_that_stops_reading_is_dropped_and_the_others_go_on() {
        let server = Server::start(1);
        let mut slow = Client::connect(server.addr);
        let mut a = Client::connect(server.addr);
        let mut b = Client::connect(server.addr);
        server.until_members(3);
        let text = "z".repeat(1000);
        let mut sent = 0u64;
        // `b` keeps up (each burst is read before the next), `slow` reads
        // nothing: once the socket buffers toward it are full, its queue
        // fills and the room drops it.
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.room.kicked() == 0 {
            assert!(
                Instant::now() < deadline,
                "the slow client was never dropped"
            );
            let burst: String = (0..64).map(|i| format!("{} {text}\n", sent + i)).collect();
            a.send(burst.as_bytes());
            for i in 0..64 {
                assert_eq!(b.message(), format!("{}: {} {text}\n", a.name, sent + i));
            }
            sent += 64;
        }
        b.notice(&format!("* {} left (too slow)\n", slow.name));
        server.until_members(2);
        a.send(b"after\n");
        assert_eq!(b.message(), format!("{}: after\n", a.name));
        // `slow` gets what had been queued for it, in order, then the error.
        let mut got = 0u64;
        loop {
            let l = slow.line();
            if l.starts_with("* ") {
                if l == "* error: too slow\n" {
                    break;
                }
                continue;
            }
            assert_eq!(l, format!("{}: {got} {text}\n", a.name));
            got += 1;
        }
        assert!(0 < got && got < sent, "{got} of {sent}");
        slow.expect_closed();
        a.quit();
        b.quit();
        server.until_all_closed();
        let stats = server.stop();
        assert_eq!((stats.kicked, stats.quit), (1, 2), "{stats:?}");
    }
}
