//! Property tests on the two decoders of untrusted bytes, through the
//! interface the server uses: [`parse_request`] (bytes from any client) and
//! [`LogRecord::decode`] (a record payload read back from disk). Neither
//! may panic on arbitrary or mutated input; a valid request cut anywhere
//! is "need more bytes", never an error or a different request.

use matou_kv::command::LogRecord;
use matou_kv::resp::{parse_request, Limits};
use proptest::prelude::*;

fn small() -> Limits {
    Limits {
        max_bulk: 32,
        max_args: 6,
        max_inline: 64,
    }
}

/// Runs `parse_request` over `buf` until it stops, checking progress and
/// bounds; returns the requests parsed.
fn drain(buf: &[u8], limits: &Limits) -> Vec<Vec<Vec<u8>>> {
    let (mut at, mut out) = (0, Vec::new());
    while let Ok(Some((args, used))) = parse_request(&buf[at..], limits) {
        assert!(used > 0 && at + used <= buf.len());
        assert!(args.len() <= limits.max_args);
        assert!(args.iter().map(Vec::len).sum::<usize>() <= used);
        at += used;
        out.push(args);
    }
    out
}

fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn arb_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..5)
}

fn arb_record() -> impl Strategy<Value = LogRecord> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..10);
    prop_oneof![
        (bytes(), bytes(), any::<Option<u64>>()).prop_map(|(key, value, expire_at_ms)| {
            LogRecord::Set {
                key,
                value,
                expire_at_ms,
            }
        }),
        prop::collection::vec(bytes(), 0..4).prop_map(|keys| LogRecord::Del { keys }),
        (bytes(), any::<u64>()).prop_map(|(key, at_ms)| LogRecord::PExpireAt { key, at_ms }),
        bytes().prop_map(|key| LogRecord::Persist { key }),
        Just(LogRecord::FlushAll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_request_never_panics_on_arbitrary_bytes(
        buf in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        drain(&buf, &small());
        drain(&buf, &Limits::default());
    }

    #[test]
    fn parse_request_never_panics_on_mutated_requests(
        reqs in prop::collection::vec(arb_args(), 1..4),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf: Vec<u8> = reqs.iter().flat_map(|r| multibulk(r)).collect();
        for (at, byte) in edits {
            let i = at.index(buf.len());
            buf[i] = byte;
        }
        let n = cut.index(buf.len() + 1);
        drain(&buf[..n], &small());
        drain(&buf, &Limits::default());
    }

    #[test]
    fn valid_pipelines_parse_whole_and_every_prefix_waits(
        reqs in prop::collection::vec(arb_args(), 1..4),
    ) {
        let buf: Vec<u8> = reqs.iter().flat_map(|r| multibulk(r)).collect();
        prop_assert_eq!(drain(&buf, &Limits::default()), reqs.clone());
        let first = multibulk(&reqs[0]);
        for n in 0..first.len() {
            prop_assert_eq!(parse_request(&first[..n], &Limits::default()), Ok(None));
        }
    }

    #[test]
    fn log_record_decode_never_panics_on_arbitrary_bytes(
        buf in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let _ = LogRecord::decode(&buf);
    }

    #[test]
    fn log_records_round_trip_and_survive_mutation(
        rec in arb_record(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = Vec::new();
        rec.encode(&mut bytes);
        prop_assert_eq!(LogRecord::decode(&bytes), Some(rec));
        let _ = LogRecord::decode(&bytes[..cut.index(bytes.len() + 1)]);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = LogRecord::decode(&bytes);
    }
}
