//! The log's framing, and the reader that finds its valid prefix.
//!
//! A frame is `u32 LE payload length`, `u32 LE CRC-32 of the payload`
//! (crc32fast, the IEEE polynomial), then the payload: one encoded
//! [`LogRecord`]. The file is frames back to back, with no header, so an
//! empty file is an empty store.
//!
//! [`LogReader`] returns the records of the valid prefix one at a time and
//! stops at the first frame that is short (a torn tail: the crash came in
//! the middle of a write), whose checksum does not match, or whose payload
//! does not decode; [`LogReader::outcome`] then says where and why. A
//! record is returned only once its whole frame is read and checked, so a
//! caller applying them as they come never applies half a record.
//!
//! Bounded allocation: the length field is untrusted, so a payload is read
//! in chunks of at most [`CHUNK`] bytes and its buffer grows only with the
//! bytes actually present: a corrupt length of 4 GiB in a 1 KiB file
//! allocates about 64 KiB, not 4 GiB.

use crate::record::{encode_set, LogRecord};
use std::fmt;
use std::io::{self, BufReader, Read};

/// Bytes of a frame header (length + checksum).
pub const HEADER: usize = 8;
/// A payload is read (and its buffer grown) this much at a time.
pub const CHUNK: usize = 64 * 1024;
/// The largest payload a frame can carry.
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

/// Appends one frame holding `record` to `out`. `false` (and `out`
/// unchanged) if the payload would not fit a frame.
#[must_use]
pub fn frame(record: &LogRecord, out: &mut Vec<u8>) -> bool {
    frame_with(out, |out| record.encode(out))
}

/// Appends a frame holding a `Set` record built from borrowed parts (what
/// a snapshot writer uses).
#[must_use]
pub fn frame_set(out: &mut Vec<u8>, key: &[u8], value: &[u8], expire_at_ms: Option<u64>) -> bool {
    frame_with(out, |out| encode_set(out, key, value, expire_at_ms))
}

fn frame_with(out: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    encode(out);
    let payload = &out[start + HEADER..];
    let Ok(len) = u32::try_from(payload.len()) else {
        out.truncate(start);
        return false;
    };
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    true
}

/// Why the valid prefix ends before the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The last frame is incomplete: a crash in the middle of a write.
    TornTail,
    /// A frame's checksum does not match its payload.
    BadChecksum,
    /// The checksum matches but the payload is not a record.
    Undecodable,
}

/// Where the valid prefix ends and what was found there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Offset of the first byte not replayed (= the valid prefix's length).
    pub offset: u64,
    /// What is wrong with the frame at `offset`.
    pub damage: Damage,
    /// Bytes from `offset` to the end of the file, all dropped.
    pub dropped: u64,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.damage {
            Damage::TornTail => "torn record (incomplete write)",
            Damage::BadChecksum => "corrupt record (checksum mismatch)",
            Damage::Undecodable => "corrupt record (undecodable payload)",
        };
        write!(
            f,
            "{what} at offset {}; {} bytes from there on dropped",
            self.offset, self.dropped
        )
    }
}

/// The result of reading a log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Records in the valid prefix.
    pub records: u64,
    /// Length of the valid prefix (what the file is cut to).
    pub valid_len: u64,
    /// Why the valid prefix ends early, if it does.
    pub cut: Option<Cut>,
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Streams the records of a log's valid prefix (see the module docs).
#[derive(Debug)]
pub struct LogReader<R: Read> {
    inner: BufReader<R>,
    /// End of the last valid frame.
    offset: u64,
    records: u64,
    /// Set once the end (clean or not) is reached.
    done: Option<Option<Cut>>,
}

impl<R: Read> LogReader<R> {
    /// A reader of the log `inner` yields, from its first byte.
    pub fn new(inner: R) -> Self {
        LogReader {
            inner: BufReader::with_capacity(CHUNK, inner),
            offset: 0,
            records: 0,
            done: None,
        }
    }

    /// Marks the end: `consumed` bytes of the damaged frame were read; the
    /// rest of the input is counted (and discarded) for the report.
    fn stop(&mut self, damage: Damage, consumed: u64) -> io::Result<Option<LogRecord>> {
        let rest = io::copy(&mut self.inner, &mut io::sink())?;
        self.done = Some(Some(Cut {
            offset: self.offset,
            damage,
            dropped: consumed + rest,
        }));
        Ok(None)
    }

    /// The next record of the valid prefix; `Ok(None)` once it ends (then
    /// see [`outcome`](Self::outcome)).
    ///
    /// # Errors
    /// The input's read errors (not damage: damage ends the prefix).
    pub fn next_record(&mut self) -> io::Result<Option<LogRecord>> {
        if self.done.is_some() {
            return Ok(None);
        }
        let mut header = [0u8; HEADER];
        let n = read_full(&mut self.inner, &mut header)?;
        if n == 0 {
            self.done = Some(None);
            return Ok(None);
        }
        if n < HEADER {
            return self.stop(Damage::TornTail, n as u64);
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        let mut payload = Vec::new();
        while payload.len() < len {
            let start = payload.len();
            let want = (len - start).min(CHUNK);
            payload.resize(start + want, 0);
            let got = read_full(&mut self.inner, &mut payload[start..])?;
            payload.truncate(start + got);
            if got < want {
                return self.stop(Damage::TornTail, (HEADER + payload.len()) as u64);
            }
        }
        let consumed = (HEADER + len) as u64;
        if crc32fast::hash(&payload) != crc {
            return self.stop(Damage::BadChecksum, consumed);
        }
        let Some(record) = LogRecord::decode(&payload) else {
            return self.stop(Damage::Undecodable, consumed);
        };
        self.offset += consumed;
        self.records += 1;
        Ok(Some(record))
    }

    /// What was read so far: records and valid length; `cut` is set once
    /// the reader stopped at damage.
    pub fn outcome(&self) -> Replayed {
        Replayed {
            records: self.records,
            valid_len: self.offset,
            cut: self.done.flatten(),
        }
    }
}

impl<R: Read> Iterator for LogReader<R> {
    type Item = io::Result<LogRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Reads a whole log held in memory: the records of its valid prefix and
/// the outcome. Pure (what the fuzz tests drive).
pub fn read_log(bytes: &[u8]) -> (Vec<LogRecord>, Replayed) {
    let mut r = LogReader::new(bytes);
    let mut records = Vec::new();
    // Reading a slice cannot fail.
    while let Ok(Some(rec)) = r.next_record() {
        records.push(rec);
    }
    (records, r.outcome())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(k: &str, v: &str) -> LogRecord {
        LogRecord::Set {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
            expire_at_ms: None,
        }
    }

    fn log(records: &[LogRecord]) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        let mut starts = Vec::new();
        for r in records {
            starts.push(out.len() as u64);
            assert!(frame(r, &mut out));
        }
        (out, starts)
    }

    #[test]
    fn frame_layout_is_length_crc_payload() {
        let r = set("k", "v");
        let mut out = Vec::new();
        assert!(frame(&r, &mut out));
        let payload = r.to_bytes();
        assert_eq!(&out[..4], &(payload.len() as u32).to_le_bytes());
        assert_eq!(&out[4..8], &crc32fast::hash(&payload).to_le_bytes());
        assert_eq!(&out[8..], &payload[..]);
        let mut parts = Vec::new();
        assert!(frame_set(&mut parts, b"k", b"v", None));
        assert_eq!(parts, out, "borrowed-parts framing is identical");
    }

    #[test]
    fn a_clean_log_reads_entirely() {
        let recs = vec![set("a", "1"), LogRecord::FlushAll, set("b", "2")];
        let (bytes, _) = log(&recs);
        let (got, outcome) = read_log(&bytes);
        assert_eq!(got, recs);
        assert_eq!(
            outcome,
            Replayed {
                records: 3,
                valid_len: bytes.len() as u64,
                cut: None
            }
        );
        assert_eq!(read_log(&[]), (vec![], Replayed::default()));
    }

    #[test]
    fn every_truncation_keeps_exactly_the_whole_records() {
        let recs = vec![set("a", "1"), set("bb", "22"), set("ccc", "333")];
        let (bytes, starts) = log(&recs);
        let ends: Vec<u64> = starts[1..]
            .iter()
            .copied()
            .chain([bytes.len() as u64])
            .collect();
        for n in 0..bytes.len() as u64 {
            let (got, outcome) = read_log(&bytes[..n as usize]);
            let whole = ends.iter().filter(|&&e| e <= n).count();
            assert_eq!(got, recs[..whole].to_vec(), "cut at {n}");
            assert_eq!(
                outcome.valid_len,
                starts.get(whole).copied().unwrap_or(n).min(n)
            );
            if n == 0 || ends.contains(&n) {
                assert_eq!(outcome.cut, None, "cut at {n}");
            } else {
                let cut = outcome.cut.expect("torn");
                assert_eq!(cut.damage, Damage::TornTail);
                assert_eq!(cut.offset, starts[whole]);
                assert_eq!(cut.offset + cut.dropped, n);
            }
        }
    }

    #[test]
    fn a_flipped_byte_cuts_at_its_record() {
        let recs = vec![set("a", "1"), set("b", "2"), set("c", "3")];
        let (bytes, starts) = log(&recs);
        let mut bad = bytes.clone();
        bad[starts[1] as usize + HEADER] ^= 0x40;
        let (got, outcome) = read_log(&bad);
        assert_eq!(got, recs[..1].to_vec());
        let cut = outcome.cut.unwrap();
        assert_eq!((cut.offset, cut.damage), (starts[1], Damage::BadChecksum));
        assert_eq!(cut.dropped, bytes.len() as u64 - starts[1]);
        assert!(cut
            .to_string()
            .contains(&format!("checksum mismatch) at offset {}", starts[1])));
    }

    #[test]
    fn a_valid_checksum_over_garbage_is_undecodable() {
        let mut bytes = Vec::new();
        assert!(frame(&set("a", "1"), &mut bytes));
        let junk = [0xEEu8, 1, 2];
        bytes.extend_from_slice(&(junk.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&junk).to_le_bytes());
        bytes.extend_from_slice(&junk);
        let (got, outcome) = read_log(&bytes);
        assert_eq!(got.len(), 1);
        assert_eq!(outcome.cut.unwrap().damage, Damage::Undecodable);
        // A zeroed tail (a preallocated or zero-filled block) is refused too.
        let mut zeros = Vec::new();
        assert!(frame(&set("a", "1"), &mut zeros));
        zeros.extend_from_slice(&[0; 64]);
        let (got, outcome) = read_log(&zeros);
        assert_eq!(got.len(), 1);
        assert_eq!(outcome.cut.unwrap().damage, Damage::Undecodable);
    }

    #[test]
    fn a_huge_length_field_does_not_allocate_it() {
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        bytes.extend_from_slice(&[7; 100]);
        let (got, outcome) = read_log(&bytes);
        assert!(got.is_empty());
        assert_eq!(
            outcome.cut,
            Some(Cut {
                offset: 0,
                damage: Damage::TornTail,
                dropped: 108
            })
        );
    }
}
