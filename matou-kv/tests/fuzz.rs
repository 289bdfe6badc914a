//! Property tests with arbitrary and mutated bytes on the two parsers that
//! see untrusted input: the request decoder (bytes from any client) and the
//! log reader (bytes from a disk after any crash). Neither may panic, and
//! what they allocate is bounded by what they were given.

use matou_kv::aof::scan::{survey, tail_is_torn};
use matou_kv::aof::{frame, read_log, Damage, Format, FILE_HEADER};
use matou_kv::record::LogRecord;
use matou_kv::resp::{parse_request, split_inline, Decoder, Limits, Reply};
use proptest::prelude::*;

fn small_limits() -> Limits {
    Limits {
        max_bulk: 64,
        max_args: 8,
        max_inline: 128,
    }
}

/// Decodes every request in `buf` with the stateless decoder: the requests,
/// and where decoding stopped (with the error, if any).
fn decode_all(buf: &[u8], limits: &Limits) -> (Vec<Vec<Vec<u8>>>, usize, Option<String>) {
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        match parse_request(&buf[at..], limits) {
            Ok(Some((args, used))) => {
                assert!(used > 0, "progress on every request");
                assert!(at + used <= buf.len());
                // What is returned was in the input: bounded allocation.
                let bytes: usize = args.iter().map(Vec::len).sum();
                assert!(bytes <= used);
                assert!(args.len() <= limits.max_args);
                assert!(args
                    .iter()
                    .all(|a| a.len() <= limits.max_bulk.max(limits.max_inline)));
                out.push(args);
                at += used;
            }
            Ok(None) => return (out, at, None),
            Err(e) => {
                assert!(e.message().starts_with("ERR Protocol error: "), "{e}");
                return (out, at, Some(e.0));
            }
        }
    }
}

/// The same with a resumable decoder fed in chunks of the given sizes.
fn decode_chunked(
    buf: &[u8],
    limits: &Limits,
    chunks: &[usize],
) -> (Vec<Vec<Vec<u8>>>, usize, Option<String>) {
    let mut d = Decoder::new(*limits);
    let mut out = Vec::new();
    let (mut start, mut avail) = (0, 0);
    let mut sizes = chunks.iter().cycle();
    loop {
        match d.decode(&buf[start..avail]) {
            Ok(Some((args, used))) => {
                out.push(args);
                start += used;
            }
            Ok(None) if avail == buf.len() => return (out, start, None),
            Ok(None) => avail = (avail + sizes.next().copied().unwrap_or(1).max(1)).min(buf.len()),
            Err(e) => return (out, start, Some(e.0)),
        }
    }
}

/// Valid requests in both forms, to mutate.
fn arb_request() -> impl Strategy<Value = Vec<u8>> {
    let arg = prop::collection::vec(any::<u8>(), 0..20);
    prop_oneof![
        prop::collection::vec(arg, 1..6).prop_map(|args| {
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(&a);
                out.extend_from_slice(b"\r\n");
            }
            out
        }),
        "[a-zA-Z \"'\\\\x0-9]{0,40}".prop_map(|s| format!("{s}\r\n").into_bytes()),
    ]
}

/// Any record: the plain ones, and the database wrapper, SWAPDB and a
/// transaction around them.
fn arb_record() -> impl Strategy<Value = LogRecord> {
    let plain = arb_plain_record;
    prop_oneof![
        4 => plain(),
        1 => (any::<u32>(), plain()).prop_map(|(db, r)| LogRecord::Db { db, record: Box::new(r) }),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(a, b)| LogRecord::SwapDb(a, b)),
        1 => prop::collection::vec(
            prop_oneof![
                3 => plain(),
                1 => (any::<u32>(), plain())
                    .prop_map(|(db, r)| LogRecord::Db { db, record: Box::new(r) }),
            ],
            0..4
        )
        .prop_map(LogRecord::Multi),
    ]
}

fn arb_plain_record() -> impl Strategy<Value = LogRecord> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..24);
    prop_oneof![
        (bytes(), bytes(), any::<Option<u64>>()).prop_map(|(key, value, expire_at_ms)| {
            LogRecord::Set {
                key,
                value,
                expire_at_ms,
            }
        }),
        prop::collection::vec((bytes(), bytes()), 0..4).prop_map(|pairs| LogRecord::MSet { pairs }),
        prop::collection::vec(bytes(), 0..4).prop_map(|keys| LogRecord::Del { keys }),
        (bytes(), bytes()).prop_map(|(key, suffix)| LogRecord::Append { key, suffix }),
        (bytes(), any::<u64>()).prop_map(|(key, at_ms)| LogRecord::PExpireAt { key, at_ms }),
        bytes().prop_map(|key| LogRecord::Persist { key }),
        (bytes(), 0u64..64, bytes()).prop_map(|(key, offset, bytes)| LogRecord::SetRange {
            key,
            offset,
            bytes
        }),
        Just(LogRecord::FlushAll),
    ]
}

/// A headed log of `records`, and each record's end.
fn framed(records: &[LogRecord]) -> (Vec<u8>, Vec<usize>) {
    let mut out = FILE_HEADER.to_vec();
    let mut ends = Vec::new();
    for r in records {
        assert!(frame(r, &mut out));
        ends.push(out.len());
    }
    (out, ends)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decoder_survives_arbitrary_bytes(buf in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&buf, &small_limits());
        decode_all(&buf, &Limits::default());
        let _ = split_inline(&buf);
    }

    #[test]
    fn decoder_survives_mutated_requests(
        reqs in prop::collection::vec(arb_request(), 1..5),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf: Vec<u8> = reqs.concat();
        for (i, b) in &flips {
            let i = i.index(buf.len());
            buf[i] = *b;
        }
        let n = cut.index(buf.len() + 1);
        decode_all(&buf[..n], &small_limits());
        decode_all(&buf[..n], &Limits::default());
    }

    #[test]
    fn valid_pipelines_decode_whole(reqs in prop::collection::vec(arb_request(), 1..5)) {
        let buf: Vec<u8> = reqs.concat();
        let (got, at, err) = decode_all(&buf, &Limits::default());
        // Inline lines made of quotes may legitimately be refused; the rest
        // decodes entirely, one request per input request.
        if err.is_none() {
            prop_assert_eq!(at, buf.len());
            prop_assert_eq!(got.len(), reqs.len());
        }
    }

    /// However the bytes arrive, the resumable decoder finds the same
    /// requests, stops at the same place, with the same error.
    #[test]
    fn chunked_decoding_agrees_with_whole_buffer_decoding(
        reqs in prop::collection::vec(arb_request(), 1..5),
        noise in prop::collection::vec(any::<u8>(), 0..8),
        chunks in prop::collection::vec(1usize..16, 1..8),
    ) {
        let mut buf: Vec<u8> = reqs.concat();
        buf.extend_from_slice(&noise);
        let whole = decode_all(&buf, &small_limits());
        let chunked = decode_chunked(&buf, &small_limits(), &chunks);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn replies_never_break_framing(text in ".*", bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let enc = Reply::Array(vec![
            Reply::err(text.clone()),
            Reply::Simple(text.into()),
            Reply::Bulk(bytes.clone()),
        ])
        .to_bytes();
        // Exactly the CRLFs of the framing: 1 array header, 2 lines, 2 for
        // the bulk (header and end), plus any inside the binary-safe bulk.
        let crlfs = enc.windows(2).filter(|w| w == b"\r\n").count();
        let inside = bytes.windows(2).filter(|w| w == b"\r\n").count();
        prop_assert!(crlfs >= 5 && crlfs <= 5 + inside + 1);
    }

    /// Arbitrary bytes, with or without our header: the reader, the
    /// torn-tail rule and the resynchronising survey never panic, and the
    /// survey finds at least the reader's valid prefix.
    #[test]
    fn log_reader_survives_arbitrary_bytes(
        headed in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut buf = if headed { FILE_HEADER.to_vec() } else { Vec::new() };
        buf.extend_from_slice(&body);
        let (records, outcome) = read_log(&buf);
        prop_assert!(outcome.valid_len as usize <= buf.len());
        prop_assert_eq!(records.len() as u64, outcome.records);
        // The valid prefix is exactly the header (if any) and the frames
        // of what was returned.
        let (mut again, _) = framed(&records);
        if outcome.format != Format::Current {
            again.drain(..FILE_HEADER.len());
        }
        prop_assert_eq!(&again[..], &buf[..outcome.valid_len as usize]);
        match outcome.cut {
            None => prop_assert_eq!(outcome.valid_len as usize, buf.len()),
            Some(c) => {
                prop_assert_eq!((c.offset + c.dropped) as usize, buf.len());
                let _ = tail_is_torn(&&buf[..], &c, outcome.format, outcome.records).unwrap();
            }
        }
        let mut found = Vec::new();
        let s = survey(&&buf[..], |r| found.push(r)).unwrap();
        if s.refused.is_none() {
            prop_assert_eq!(&found[..records.len()], &records[..]);
        }
    }

    /// The layout check a resync makes before a long CRC is a necessary
    /// condition of decoding: it never rejects a record.
    #[test]
    fn every_record_has_a_record_layout(
        record in arb_record(),
        junk in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        use matou_kv::record::has_record_layout;
        let at = |b: &[u8]| {
            let b = b.to_vec();
            move |i: u64| b.get(i as usize).copied()
        };
        let bytes = record.to_bytes();
        prop_assert!(has_record_layout(bytes.len() as u64, at(&bytes)));
        if LogRecord::decode(&junk).is_some() {
            prop_assert!(has_record_layout(junk.len() as u64, at(&junk)));
        }
    }

    /// A log cut anywhere replays exactly the records that ended before
    /// the cut, and the cut is a torn tail unless it fell on a boundary.
    #[test]
    fn a_torn_log_replays_its_whole_records_exactly(
        records in prop::collection::vec(arb_record(), 0..10),
        cut in any::<prop::sample::Index>(),
    ) {
        let (bytes, ends) = framed(&records);
        let n = cut.index(bytes.len() + 1);
        let whole = ends.iter().filter(|&&e| e <= n).count();
        let (got, outcome) = read_log(&bytes[..n]);
        prop_assert_eq!(&got[..], &records[..whole]);
        let header = FILE_HEADER.len();
        let boundary = match whole {
            0 if n >= header => header,
            0 => 0,
            w => ends[w - 1],
        };
        prop_assert_eq!(outcome.valid_len as usize, boundary);
        if n == boundary {
            prop_assert_eq!(outcome.cut, None);
        } else {
            let c = outcome.cut.expect("torn");
            prop_assert_eq!(c.damage, Damage::Truncated);
            prop_assert!(tail_is_torn(&&bytes[..n], &c, outcome.format, outcome.records).unwrap());
        }
    }

    /// A flipped byte never lets a damaged record through: replay keeps the
    /// records before the damaged frame, exactly; unless it is in the last
    /// frame, the damage refuses the start; and the survey recovers every
    /// other record, in order.
    #[test]
    fn a_flipped_byte_is_refused_and_resynchronised_past(
        records in prop::collection::vec(arb_record(), 1..10),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let (bytes, ends) = framed(&records);
        let header = FILE_HEADER.len();
        let i = header + at.index(bytes.len() - header);
        let mut bad = bytes.clone();
        bad[i] ^= mask;
        let damaged = ends.iter().filter(|&&e| e <= i).count();
        let start = if damaged == 0 { header } else { ends[damaged - 1] };
        let (got, outcome) = read_log(&bad);
        // CRC-32 catches every burst of up to 32 bits, so a flipped payload
        // or checksum byte is always detected; a flipped length byte makes
        // the frame run past the end or its CRC cover other bytes (a 2^-32
        // accident).
        prop_assert_eq!(&got[..], &records[..damaged]);
        prop_assert_eq!(outcome.valid_len as usize, start);
        let cut = outcome.cut.expect("cut");
        prop_assert_eq!(cut.offset as usize, start);
        prop_assert!(matches!(cut.damage, Damage::BadChecksum | Damage::Truncated), "{:?}", cut);
        if i - start >= 4 {
            // Checksum or payload: the length is intact, the CRC refuses.
            prop_assert_eq!(cut.damage, Damage::BadChecksum);
        }
        let torn = tail_is_torn(&&bad[..], &cut, outcome.format, outcome.records).unwrap();
        let last = damaged == records.len() - 1;
        if !last {
            prop_assert!(!torn, "damage followed by records is never a torn tail");
        } else if i - start >= 4 {
            prop_assert!(torn, "a complete last frame with a bad checksum is cut");
        }
        let mut found = Vec::new();
        let s = survey(&&bad[..], |r| found.push(r)).unwrap();
        let mut expected = records.clone();
        expected.remove(damaged);
        prop_assert_eq!(found, expected);
        prop_assert_eq!(s.blocks_start(), !torn);
    }
}

/// Argument vectors built from command names, options and odd values:
/// parsing and executing them never panics, and a write's record always
/// decodes back to itself.
fn arb_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let word = prop_oneof![
        prop::sample::select(vec![
            "SET",
            "GET",
            "INCR",
            "DECRBY",
            "APPEND",
            "MSET",
            "MSETNX",
            "EXPIRE",
            "PEXPIREAT",
            "TTL",
            "SCAN",
            "KEYS",
            "DEL",
            "GETDEL",
            "PERSIST",
            "CLIENT",
            "CONFIG",
            "COMMAND",
            "HELLO",
            "AUTH",
            "SELECT",
            "INFO",
            "EX",
            "PX",
            "EXAT",
            "PXAT",
            "NX",
            "XX",
            "GT",
            "LT",
            "KEEPTTL",
            "MATCH",
            "COUNT",
            "TYPE",
            "SETNAME",
            "GETNAME",
            "0",
            "-1",
            "1",
            "9223372036854775807",
            "-9223372036854775808",
            "*",
            "[",
            "\\",
            "",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(word, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn commands_never_panic(script in prop::collection::vec(arb_args(), 1..20), now in any::<u64>()) {
        use matou_kv::command::{execute, parse, Command, ConfigView, Session};
        let mut store = matou_kv::store::Store::new();
        let mut session = Session::new(1, Some("pw"));
        let view = ConfigView { requirepass: Some("pw".into()), params: vec![] };
        for args in &script {
            let (_, rec) = execute(&mut store, args, now);
            if let Some(rec) = rec {
                prop_assert_eq!(LogRecord::decode(&rec.to_bytes()), Some(rec));
            }
            if let Ok(Command::Conn(c)) = session.parse(args) {
                let _ = session.execute(c, &view);
            }
            let _ = parse(args, false);
        }
        let _ = store.active_expire(now, 100);
    }
}
