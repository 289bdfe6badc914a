//! RESP2 on the wire: the request decoder (multibulk and inline forms) and
//! the reply type with its encoder.
//!
//! # Requests
//!
//! [`Decoder::decode`] looks at the bytes a connection has buffered and
//! returns one of three outcomes: a complete request (its arguments and the
//! number of bytes it used), "need more bytes" (`Ok(None)`), or a
//! [`ProtocolError`] worded as Redis words it (`ERR Protocol error: invalid
//! bulk length`), after which the connection is to be answered and closed.
//! A request whose first byte is `*` is a multibulk (what client libraries
//! send); anything else is an inline command, one line split the way
//! `redis-cli` and Redis split it (double quotes with `\n`, `\xHH`...
//! escapes, single quotes, see [`split_inline`]).
//!
//! Invariants (they are what makes the decoder safe to expose to anyone):
//! - Every limit in [`Limits`] is checked on the announced length, before
//!   the decoder waits for or copies the bytes it announces. Nothing is ever
//!   allocated from an untrusted length: an argument is copied only once all
//!   its bytes are in the buffer (so what is allocated is bounded by what was
//!   received), and the argument vector's initial capacity is capped.
//!   While a multibulk is incomplete the decoder holds no copy of its
//!   arguments at all, only offsets into the buffer ([`Decoder`] copies them
//!   once the last one is in), so the memory an incomplete request holds is
//!   its bytes on the wire, however many arguments it declares.
//! - A header line (`*N` or `$N`) longer than [`MAX_HEADER_LINE`] without its
//!   CRLF is an error, so a client cannot make the decoder rescan an
//!   ever-growing line.
//! - The decoder never panics on any input (property-tested on arbitrary
//!   and mutated bytes).
//! - Decoding is resumable: a [`Decoder`] remembers the arguments of a
//!   partly received multibulk, so a request arriving in many reads costs
//!   O(request), not O(request²). The contract that makes this sound: until a
//!   call returns a request (or an error), every call must be given the same
//!   buffer, possibly extended at its end. [`parse_request`] is the stateless
//!   form (it restarts from the first byte every time).
//!
//! # Replies
//!
//! [`Reply`] is what a command answers; [`Reply::encode`] appends its RESP2
//! form to a `Vec<u8>` so that the replies of a pipeline are written with one
//! `write`. Error and status texts never contain CR or LF (they are replaced
//! by spaces, as Redis does), so no reply can break the framing.

use std::borrow::Cow;
use std::fmt;

/// Redis's `proto-max-bulk-len` default: 512 MiB.
pub const DEFAULT_MAX_BULK: usize = 512 * 1024 * 1024;
/// Redis's historical cap on the number of arguments of one request.
pub const DEFAULT_MAX_ARGS: usize = 1024 * 1024;
/// Redis's `PROTO_INLINE_MAX_SIZE`: the longest inline request, 64 KiB.
pub const DEFAULT_MAX_INLINE: usize = 64 * 1024;
/// Longest `*N` / `$N` line waited for. The longest valid one, `$` and an
/// i64 with its sign, is 21 bytes plus CRLF; anything longer is garbage.
pub const MAX_HEADER_LINE: usize = 64;
/// Before AUTH, at most this many arguments (Redis 7's rule): enough for
/// AUTH and HELLO, too little to make the server buffer much.
pub const UNAUTHENTICATED_MAX_ARGS: usize = 10;
/// Before AUTH, the longest argument (Redis 7's rule).
pub const UNAUTHENTICATED_MAX_BULK: usize = 16 * 1024;
/// Cap on the argument vector's initial capacity, whatever `*N` announces:
/// a client announcing a million arguments gets room for them only as it
/// sends them.
const MAX_PREALLOC_ARGS: usize = 1024;

/// Bounds on one request, checked before anything is allocated for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest argument (`$N` of a multibulk).
    pub max_bulk: usize,
    /// Most arguments in one request (multibulk or inline).
    pub max_args: usize,
    /// Longest inline request line, CRLF excluded.
    pub max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: DEFAULT_MAX_BULK,
            max_args: DEFAULT_MAX_ARGS,
            max_inline: DEFAULT_MAX_INLINE,
        }
    }
}

/// A malformed request: the full error text Redis would send, e.g.
/// `ERR Protocol error: invalid bulk length` (without the leading `-`).
/// The connection that sent it is to be answered with [`Self::reply`] and
/// closed: after a framing error the rest of its stream means nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(what: impl fmt::Display) -> Self {
        ProtocolError(format!("ERR Protocol error: {what}"))
    }

    /// The error text (`ERR Protocol error: ...`).
    pub fn message(&self) -> &str {
        &self.0
    }

    /// The error reply to send before closing the connection.
    pub fn reply(&self) -> Reply {
        Reply::err(self.0.clone())
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// A decoded request: its arguments (the command name first). Empty for a
/// blank inline line or a `*0` / `*-1` multibulk, which Redis ignores.
pub type Args = Vec<Vec<u8>>;

/// What [`Decoder::decode`] returns: `Ok(Some((args, used)))` for a complete
/// request that took the first `used` bytes, `Ok(None)` when more bytes are
/// needed.
pub type Decoded = Result<Option<(Args, usize)>, ProtocolError>;

/// Decodes the request at the start of `buf`, statelessly. See [`Decoder`]
/// for the resumable form a connection should use.
///
/// # Errors
/// A malformed request or one over `limits`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Decoded {
    Decoder::new(*limits).decode(buf)
}

/// A multibulk whose header and first arguments were checked, but not
/// all of whose arguments are in the buffer yet. It holds offsets only, no
/// copy of the arguments: a request that declares a million arguments and
/// sends a few costs its bytes in the buffer and this, nothing per
/// declared or per received argument. The arguments are copied once the
/// last one is in (a second walk over the checked headers).
#[derive(Debug, Default)]
struct Partial {
    /// Arguments declared.
    count: usize,
    /// Offset of the first `$N` line.
    first: usize,
    /// Arguments still expected.
    remaining: usize,
    /// Offset (from the request's first byte) of the next `$N` line.
    next: usize,
}

/// The resumable request decoder of one connection.
///
/// Contract: until `decode` returns a request or an error, each call gets
/// the same buffer, possibly extended at its end (the caller drops the
/// `used` bytes of a returned request, and only then). After an error the
/// decoder is reset, but the connection should be closed anyway.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    partial: Option<Partial>,
    /// While false, Redis 7's stricter caps apply (see
    /// [`Decoder::set_authenticated`]).
    authenticated: bool,
}

/// Where the line starting at some offset ends.
enum Line {
    /// The line's content ends at this offset, CRLF follows.
    End(usize),
    NeedMore,
    /// No CRLF within the allowed length.
    TooLong,
    /// A CR not followed by LF.
    BadCr,
}

/// Finds the CRLF ending the line that starts at `from`, looking at most
/// `max` bytes ahead (the CRLF included).
fn line_end(buf: &[u8], from: usize, max: usize) -> Line {
    let window = &buf[from..buf.len().min(from.saturating_add(max))];
    match window.iter().position(|&b| b == b'\r') {
        Some(i) => match buf.get(from + i + 1) {
            None => Line::NeedMore,
            Some(b'\n') => Line::End(from + i),
            Some(_) => Line::BadCr,
        },
        None if window.len() >= max => Line::TooLong,
        None => Line::NeedMore,
    }
}

/// Redis's `string2ll`: an optional `-` then decimal digits, no leading
/// zero (but `0` itself), no `+`, no space, in range. Used for every integer
/// that comes from a client, so that `"01"` or `" 1"` are refused as Redis
/// refuses them.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    // Accumulate negatively: i64::MIN has no positive counterpart.
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(v)
    } else {
        v.checked_neg()
    }
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            partial: None,
            authenticated: true,
        }
    }

    /// Whether the connection is authenticated (the default). A server
    /// with `requirepass` should set `false` until AUTH succeeds: multibulk
    /// requests are then capped at [`UNAUTHENTICATED_MAX_ARGS`] arguments
    /// of [`UNAUTHENTICATED_MAX_BULK`] bytes, with Redis's errors
    /// (`unauthenticated multibulk length` / `bulk length`).
    pub fn set_authenticated(&mut self, yes: bool) {
        self.authenticated = yes;
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether a request was partly decoded (the buffer must be kept).
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Decodes the request at the start of `buf` (see the type's contract).
    ///
    /// # Errors
    /// A malformed request or one over the limits; the decoder is reset.
    pub fn decode(&mut self, buf: &[u8]) -> Decoded {
        let r = if self.partial.is_some() || buf.first() == Some(&b'*') {
            self.multibulk(buf)
        } else if buf.is_empty() {
            Ok(None)
        } else {
            self.inline(buf)
        };
        if r.is_err() {
            self.partial = None;
        }
        r
    }

    fn multibulk(&mut self, buf: &[u8]) -> Decoded {
        // `args` is `Some` on a request's first call only: a request whole
        // in the buffer is copied in one walk; one that is not drops what
        // it copied and keeps offsets (see `Partial`).
        let (mut p, mut args) = match self.partial.take() {
            Some(p) => (p, None),
            None => {
                let end = match line_end(buf, 1, MAX_HEADER_LINE) {
                    Line::End(e) => e,
                    Line::NeedMore => return Ok(None),
                    Line::TooLong => return Err(ProtocolError::new("too big mbulk count string")),
                    Line::BadCr => return Err(ProtocolError::new("invalid multibulk length")),
                };
                let n = parse_i64(&buf[1..end])
                    .filter(|&n| n <= i64::from(i32::MAX))
                    .ok_or_else(|| ProtocolError::new("invalid multibulk length"))?;
                if n <= 0 {
                    // `*0` and `*-1` are no-ops for Redis.
                    return Ok(Some((Vec::new(), end + 2)));
                }
                // n is in 1..=i32::MAX: it fits a usize.
                let n = n as usize;
                if !self.authenticated && n > UNAUTHENTICATED_MAX_ARGS {
                    return Err(ProtocolError::new("unauthenticated multibulk length"));
                }
                if n > self.limits.max_args {
                    return Err(ProtocolError::new(format_args!(
                        "invalid multibulk length (more than {} arguments)",
                        self.limits.max_args
                    )));
                }
                let p = Partial {
                    count: n,
                    first: end + 2,
                    remaining: n,
                    next: end + 2,
                };
                (p, Some(Vec::with_capacity(n.min(MAX_PREALLOC_ARGS))))
            }
        };
        while p.remaining > 0 {
            match self.bulk(buf, p.next)? {
                Some((span, next)) => {
                    if let Some(args) = &mut args {
                        args.push(buf[span].to_vec());
                    }
                    p.remaining -= 1;
                    p.next = next;
                }
                None => {
                    self.partial = Some(p);
                    return Ok(None);
                }
            }
        }
        let args = match args {
            Some(args) => args,
            None => {
                // Every header was checked on an earlier call; the count is
                // known, so the vector is allocated once at its size.
                let mut args = Vec::with_capacity(p.count);
                let mut at = p.first;
                while args.len() < p.count {
                    let (span, next) = self
                        .bulk(buf, at)?
                        .ok_or_else(|| ProtocolError::new("request changed while decoded"))?;
                    args.push(buf[span].to_vec());
                    at = next;
                }
                args
            }
        };
        Ok(Some((args, p.next)))
    }

    /// Checks the `$N\r\n<N bytes>\r\n` at `at`: the argument's span and
    /// the offset after it, or `None` if incomplete. Copies nothing.
    fn bulk(
        &self,
        buf: &[u8],
        at: usize,
    ) -> Result<Option<(std::ops::Range<usize>, usize)>, ProtocolError> {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&c) => {
                return Err(ProtocolError::new(format_args!(
                    "expected '$', got '{}'",
                    char::from(c)
                )))
            }
        }
        let end = match line_end(buf, at + 1, MAX_HEADER_LINE) {
            Line::End(e) => e,
            Line::NeedMore => return Ok(None),
            Line::TooLong => return Err(ProtocolError::new("too big bulk count string")),
            Line::BadCr => return Err(ProtocolError::new("invalid bulk length")),
        };
        let len = parse_i64(&buf[at + 1..end])
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| ProtocolError::new("invalid bulk length"))?;
        if !self.authenticated && len > UNAUTHENTICATED_MAX_BULK {
            return Err(ProtocolError::new("unauthenticated bulk length"));
        }
        if len > self.limits.max_bulk {
            return Err(ProtocolError::new(format_args!(
                "invalid bulk length (more than {} bytes)",
                self.limits.max_bulk
            )));
        }
        let start = end + 2;
        // len <= max_bulk, and start <= buf.len(): no overflow in practice,
        // but saturate rather than trust it.
        let stop = start.saturating_add(len);
        if buf.len() < stop.saturating_add(2) {
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError::new("expected CRLF after bulk data"));
        }
        Ok(Some((start..stop, stop + 2)))
    }

    fn inline(&mut self, buf: &[u8]) -> Decoded {
        let max = self.limits.max_inline;
        // The line may end with LF or CRLF; look one byte past the limit so
        // that a line of exactly `max` bytes plus its LF is accepted.
        let window = &buf[..buf.len().min(max.saturating_add(2))];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            return if buf.len() > max {
                Err(ProtocolError::new("too big inline request"))
            } else {
                Ok(None)
            };
        };
        let line = match &buf[..nl] {
            [rest @ .., b'\r'] => rest,
            l => l,
        };
        if line.len() > max {
            return Err(ProtocolError::new("too big inline request"));
        }
        let args =
            split_inline(line).ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
        if args.len() > self.limits.max_args {
            return Err(ProtocolError::new(format_args!(
                "invalid multibulk length (more than {} arguments)",
                self.limits.max_args
            )));
        }
        Ok(Some((args, nl + 1)))
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// C's `isspace` in the "C" locale, which Redis's `sdssplitargs` uses.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Splits an inline request line into arguments exactly as Redis's
/// `sdssplitargs` does: blanks separate arguments; `"..."` takes the
/// escapes `\n \r \t \b \a \xHH` and `\<c>` for any other `c`; `'...'`
/// takes only `\'`; a quote may open in the middle of an argument
/// (`a"b c"` is `ab c`) but a closing quote must be followed by a blank or
/// the end. A NUL byte ends the line, as it ends the C string Redis scans.
/// `None` for unbalanced quotes.
pub fn split_inline(line: &[u8]) -> Option<Args> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        // 0: bare, 1: in double quotes, 2: in single quotes.
        let mut mode = 0u8;
        loop {
            let c = line.get(i).copied();
            match mode {
                1 => match c? {
                    b'\\'
                        if line.get(i + 1) == Some(&b'x')
                            && line.get(i + 2).copied().and_then(hex).is_some()
                            && line.get(i + 3).copied().and_then(hex).is_some() =>
                    {
                        let h = hex(line[i + 2])? * 16 + hex(line[i + 3])?;
                        cur.push(h);
                        i += 3;
                    }
                    b'\\' if i + 1 < line.len() => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    b'"' => {
                        if line.get(i + 1).is_some_and(|&n| !is_space(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    other => cur.push(other),
                },
                2 => match c? {
                    b'\\' if line.get(i + 1) == Some(&b'\'') => {
                        cur.push(b'\'');
                        i += 1;
                    }
                    b'\'' => {
                        if line.get(i + 1).is_some_and(|&n| !is_space(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    other => cur.push(other),
                },
                _ => match c {
                    None => break,
                    Some(c) if is_space(c) => break,
                    Some(b'"') => mode = 1,
                    Some(b'\'') => mode = 2,
                    Some(other) => cur.push(other),
                },
            }
            i += 1;
        }
        args.push(cur);
    }
}

/// A reply, as a command produces it; [`Reply::encode`] gives its RESP2
/// bytes, [`Reply::encode_resp3`] its RESP3 ones. The RESP3-only types
/// have the RESP2 form Redis gives them (a map is a flat array of pairs, a
/// set an array, a double, big number or verbatim string a bulk string, a
/// boolean `:1`/`:0`, a push an array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`: a status line (no CR/LF).
    Simple(Cow<'static, str>),
    /// `-ERR ...`: the text starts with the error code (`ERR`, `WRONGTYPE`,
    /// `NOAUTH`...), which clients use to classify it.
    Error(Cow<'static, str>),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nfoo`: a binary-safe string.
    Bulk(Vec<u8>),
    /// `$-1`: the null bulk string (a missing key).
    Nil,
    /// `*N`: nested replies.
    Array(Vec<Reply>),
    /// `*-1`: the null array.
    NilArray,
    /// `%N`: (key, value) pairs, in order.
    Map(Vec<(Reply, Reply)>),
    /// (member, score) pairs, in order, as Redis sends WITHSCORES (and
    /// HRANDFIELD WITHVALUES): one flat array in RESP2, an array of
    /// two-element arrays in RESP3.
    Pairs(Vec<(Reply, Reply)>),
    /// `~N`: an unordered collection.
    Set(Vec<Reply>),
    /// `,1.5`: a double, already formatted as Redis does (`inf`, `-inf`).
    Double(String),
    /// `#t` / `#f`.
    Bool(bool),
    /// `=N\r\ntxt:...`: text with its 3-letter format (`txt`, `mkd`).
    Verbatim(&'static str, Vec<u8>),
    /// `(1234...`: an integer of any size, in decimal.
    BigNumber(String),
    /// `>N`: an out-of-band push (for what later needs it: MONITOR,
    /// subscriptions).
    Push(Vec<Reply>),
    /// `|N` attributes (pairs, as a map), then the reply they describe; in
    /// RESP2 the reply alone (Redis drops attributes there).
    Attributed(Vec<(Reply, Reply)>, Box<Reply>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple(Cow::Borrowed("OK"))
    }

    /// An error reply; `msg` starts with its code (`ERR syntax error`).
    pub fn err(msg: impl Into<Cow<'static, str>>) -> Reply {
        Reply::Error(msg.into())
    }

    /// A bulk string.
    pub fn bulk(b: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(b.into())
    }

    /// A bulk string, or nil for `None`.
    pub fn opt_bulk(b: Option<impl Into<Vec<u8>>>) -> Reply {
        b.map_or(Reply::Nil, |b| Reply::Bulk(b.into()))
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the RESP2 encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_in(false, out);
    }

    /// Appends the RESP3 encoding to `out` (what a connection that sent
    /// `HELLO 3` gets).
    pub fn encode_resp3(&self, out: &mut Vec<u8>) {
        self.encode_in(true, out);
    }

    /// Appends the encoding for protocol `proto` (2 or 3).
    pub fn encode_proto(&self, proto: u8, out: &mut Vec<u8>) {
        self.encode_in(proto >= 3, out);
    }

    fn encode_in(&self, resp3: bool, out: &mut Vec<u8>) {
        let header = |out: &mut Vec<u8>, prefix: u8, n: usize| {
            out.push(prefix);
            push_int(out, n as i64);
            out.extend_from_slice(b"\r\n");
        };
        let bulk = |out: &mut Vec<u8>, b: &[u8]| {
            header(out, b'$', b.len());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        };
        match self {
            Reply::Nil | Reply::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Pairs(pairs) => {
                match resp3 {
                    true => header(out, b'*', pairs.len()),
                    false => header(out, b'*', 2 * pairs.len()),
                }
                for (k, v) in pairs {
                    if resp3 {
                        header(out, b'*', 2);
                    }
                    k.encode_in(resp3, out);
                    v.encode_in(resp3, out);
                }
            }
            Reply::Map(pairs) => {
                match resp3 {
                    true => header(out, b'%', pairs.len()),
                    false => header(out, b'*', 2 * pairs.len()),
                }
                for (k, v) in pairs {
                    k.encode_in(resp3, out);
                    v.encode_in(resp3, out);
                }
            }
            Reply::Set(items) | Reply::Push(items) => {
                let prefix = match (resp3, self) {
                    (false, _) => b'*',
                    (true, Reply::Set(_)) => b'~',
                    (true, _) => b'>',
                };
                header(out, prefix, items.len());
                for item in items {
                    item.encode_in(resp3, out);
                }
            }
            Reply::Attributed(pairs, reply) => {
                if resp3 {
                    header(out, b'|', pairs.len());
                    for (k, v) in pairs {
                        k.encode_in(resp3, out);
                        v.encode_in(resp3, out);
                    }
                }
                reply.encode_in(resp3, out);
            }
            Reply::Double(d) if resp3 => line(out, b',', d.as_bytes()),
            Reply::BigNumber(n) if resp3 => line(out, b'(', n.as_bytes()),
            Reply::Double(s) | Reply::BigNumber(s) => bulk(out, s.as_bytes()),
            Reply::Bool(b) => match resp3 {
                true => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
                false => out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            },
            Reply::Verbatim(format, text) => {
                if resp3 {
                    header(out, b'=', format.len() + 1 + text.len());
                    out.extend_from_slice(format.as_bytes());
                    out.push(b':');
                    out.extend_from_slice(text);
                    out.extend_from_slice(b"\r\n");
                } else {
                    bulk(out, text);
                }
            }
            Reply::Array(items) => {
                header(out, b'*', items.len());
                for item in items {
                    item.encode_in(resp3, out);
                }
            }
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => line(out, b'-', s.as_bytes()),
            Reply::Integer(n) => {
                out.push(b':');
                push_int(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => {
                out.push(b'$');
                push_int(out, b.len() as i64);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        }
    }

    /// An upper bound on the length of the encoding in either protocol
    /// (exact for bulk payloads, up to 23 bytes over per header), cheap to
    /// compute: what the output limits are checked against before a reply
    /// is encoded.
    pub fn encoded_len_bound(&self) -> usize {
        let items = |items: &[Reply]| {
            items
                .iter()
                .fold(23usize, |n, i| n.saturating_add(i.encoded_len_bound()))
        };
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.len() + 3,
            Reply::Bulk(b) => b.len() + 25,
            // RESP2 sends them as bulk strings.
            Reply::Double(s) | Reply::BigNumber(s) => s.len() + 25,
            Reply::Verbatim(format, text) => format.len() + 1 + text.len() + 25,
            Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => items(v),
            Reply::Map(pairs) | Reply::Pairs(pairs) => pairs.iter().fold(23, |n, (k, v)| {
                n.saturating_add(23)
                    .saturating_add(k.encoded_len_bound())
                    .saturating_add(v.encoded_len_bound())
            }),
            Reply::Attributed(pairs, reply) => pairs.iter().fold(
                23usize.saturating_add(reply.encoded_len_bound()),
                |n, (k, v)| {
                    n.saturating_add(k.encoded_len_bound())
                        .saturating_add(v.encoded_len_bound())
                },
            ),
            Reply::Integer(_) | Reply::Bool(_) | Reply::Nil | Reply::NilArray => 23,
        }
    }

    /// The RESP2 encoding, in a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// A `+` or `-` line: CR and LF in the text become spaces (Redis does the
/// same), since they would end the line early and desynchronise the client.
fn line(out: &mut Vec<u8>, prefix: u8, text: &[u8]) {
    out.push(prefix);
    out.extend(
        text.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal form of `n` (no allocation, unlike `format!`).
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests;
