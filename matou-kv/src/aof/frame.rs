//! The log's format: file header, framing, and the reader of the valid
//! prefix.
//!
//! **File header.** A log starts with [`FILE_HEADER`]: the 8-byte magic
//! `MATOU-KV` then the format version as a `u32 LE` ([`FORMAT_VERSION`],
//! 1). A file with our magic but another version is refused as written by
//! another build; a file that does not start with the magic is either a
//! *legacy* log (written before the header existed: frames from byte 0) or a
//! foreign file, which [`scan`](super::scan) tells apart. A file that is a
//! strict prefix of the header is a log whose creation was torn.
//!
//! **Frames.** Then frames back to back: `u32 LE payload length`,
//! `u32 LE CRC-32 of the payload` (crc32fast, the IEEE polynomial), then the
//! payload: one encoded [`LogRecord`].
//!
//! [`LogReader`] returns the records of the valid prefix one at a time and
//! stops at the first frame that runs past the end of the file
//! ([`Damage::Truncated`]), whose checksum does not match, or whose payload
//! does not decode; [`LogReader::outcome`] then says where and why. Whether
//! that end may be cut (a torn tail) or must stop the start is decided by
//! [`scan::tail_is_torn`](super::scan::tail_is_torn), not here. A record is
//! returned only once its whole frame is read and checked, so a caller
//! applying them as they come never applies half a record.
//!
//! Bounded allocation: the length field is untrusted, so a payload buffer is
//! allocated only once the frame's declared end is known to lie inside the
//! file, and a payload over [`CHUNK`] bytes is checksummed in pieces before
//! it is read whole: a corrupt length never allocates more than the file
//! holds, nor more than `CHUNK` unless its checksum matches.

use crate::record::{encode_value, LogRecord};
use crate::store::Value;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes of a frame header (length + checksum).
pub const HEADER: usize = 8;
/// A payload is checksummed this much at a time; the file reader's window.
pub const CHUNK: usize = 64 * 1024;
/// The largest payload a frame can carry.
pub const MAX_PAYLOAD: usize = u32::MAX as usize;
/// The magic that starts every log.
pub const MAGIC: [u8; 8] = *b"MATOU-KV";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the file header.
pub const FILE_HEADER_LEN: usize = 12;
/// The file header: [`MAGIC`] then [`FORMAT_VERSION`] (`u32 LE`).
pub const FILE_HEADER: [u8; FILE_HEADER_LEN] = {
    let mut h = [0u8; FILE_HEADER_LEN];
    let mut i = 0;
    while i < 8 {
        h[i] = MAGIC[i];
        i += 1;
    }
    let v = FORMAT_VERSION.to_le_bytes();
    h[8] = v[0];
    h[9] = v[1];
    h[10] = v[2];
    h[11] = v[3];
    h
};

/// Appends one frame holding `record` to `out`. `false` (and `out`
/// unchanged) if the payload would not fit a frame.
#[must_use]
pub fn frame(record: &LogRecord, out: &mut Vec<u8>) -> bool {
    frame_with(out, |out| record.encode(out))
}

/// Appends a frame holding the `Set` or `Value` record (in database `db`)
/// built from borrowed parts (what a snapshot writer uses).
#[must_use]
pub fn frame_set(
    out: &mut Vec<u8>,
    db: u32,
    key: &[u8],
    value: &Value,
    expire_at_ms: Option<u64>,
) -> bool {
    frame_with(out, |out| encode_value(out, db, key, value, expire_at_ms))
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

/// What a file starts with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Nothing: a new log.
    #[default]
    Empty,
    /// [`FILE_HEADER`]: frames start after it.
    Current,
    /// No header: a log from before the header existed, or a foreign file.
    Legacy,
}

impl Format {
    /// Where the first frame starts.
    pub fn data_start(self) -> u64 {
        match self {
            Format::Current => FILE_HEADER_LEN as u64,
            Format::Empty | Format::Legacy => 0,
        }
    }
}

/// Why the valid prefix ends before the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// The frame (or the file header) runs past the end of the file.
    Truncated,
    /// A frame's checksum does not match its payload.
    BadChecksum,
    /// The checksum matches but the payload is not a record.
    Undecodable,
    /// Our magic, but a format version this build does not read.
    UnsupportedVersion(u32),
    /// No header, and not a valid legacy log either.
    Foreign,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Truncated => f.write_str("torn record (incomplete write)"),
            Damage::BadChecksum => f.write_str("corrupt record (checksum mismatch)"),
            Damage::Undecodable => f.write_str("corrupt record (undecodable payload)"),
            Damage::UnsupportedVersion(v) => write!(
                f,
                "log format version {v}, but this build reads version {FORMAT_VERSION}"
            ),
            Damage::Foreign => f.write_str(
                "not a matou-kv log (no `MATOU-KV` header, and not a header-less log of \
                 valid records either)",
            ),
        }
    }
}

/// Where the valid prefix ends and what was found there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Offset of the first byte not replayed (= the valid prefix's length).
    pub offset: u64,
    /// What is wrong at `offset`.
    pub damage: Damage,
    /// Bytes from `offset` to the end of the file.
    pub dropped: u64,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {}, {} bytes from there to the end of the file",
            self.damage, self.offset, self.dropped
        )
    }
}

/// The result of reading a log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// What the file starts with.
    pub format: Format,
    /// Records in the valid prefix.
    pub records: u64,
    /// Length of the valid prefix, file header included.
    pub valid_len: u64,
    /// Why the valid prefix ends early, if it does.
    pub cut: Option<Cut>,
}

/// Random access to a log's bytes: a slice, or a [`LogFile`].
pub trait LogBytes {
    /// Bytes in the log.
    fn size(&self) -> u64;
    /// Fills `buf` from offset `at`; the range lies inside [`size`](Self::size).
    ///
    /// # Errors
    /// The file's read errors.
    fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl LogBytes for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        let at = at as usize;
        buf.copy_from_slice(&self[at..at + buf.len()]);
        Ok(())
    }
}

/// A log file read through a [`CHUNK`]-byte window, so that reading frame
/// after frame (or scanning byte after byte) costs one `pread` per window.
/// Its size is the file's at [`LogFile::new`].
#[derive(Debug)]
pub struct LogFile<'a> {
    file: &'a File,
    size: u64,
    /// (offset, bytes) of the window.
    window: RefCell<(u64, Vec<u8>)>,
}

impl<'a> LogFile<'a> {
    /// Reads `file` as it is now.
    ///
    /// # Errors
    /// `fstat`'s.
    pub fn new(file: &'a File) -> io::Result<Self> {
        Ok(LogFile {
            file,
            size: file.metadata()?.len(),
            window: RefCell::new((0, Vec::new())),
        })
    }
}

impl LogBytes for LogFile<'_> {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() > CHUNK {
            return self.file.read_exact_at(buf, at);
        }
        let mut w = self.window.borrow_mut();
        let (start, bytes) = &mut *w;
        let end = at + buf.len() as u64;
        if at < *start || end > *start + bytes.len() as u64 {
            let n = (self.size - at).min(2 * CHUNK as u64) as usize;
            bytes.resize(n, 0);
            self.file.read_exact_at(bytes, at)?;
            *start = at;
        }
        let from = (at - *start) as usize;
        buf.copy_from_slice(&bytes[from..from + buf.len()]);
        Ok(())
    }
}

/// Classifies a file by its first bytes (fewer than [`FILE_HEADER_LEN`] if
/// the file is shorter): its format, or the damage that ends it at offset 0.
pub fn classify_header(first: &[u8]) -> (Format, Option<Damage>) {
    if first.is_empty() {
        (Format::Empty, None)
    } else if first == FILE_HEADER {
        (Format::Current, None)
    } else if first.len() < FILE_HEADER_LEN && FILE_HEADER.starts_with(first) {
        (Format::Current, Some(Damage::Truncated))
    } else if first.len() == FILE_HEADER_LEN && first[..8] == MAGIC {
        let v = u32::from_le_bytes([first[8], first[9], first[10], first[11]]);
        (Format::Current, Some(Damage::UnsupportedVersion(v)))
    } else {
        (Format::Legacy, None)
    }
}

/// Reads the first bytes of `src` and classifies them ([`classify_header`]).
///
/// # Errors
/// The source's read errors.
pub fn read_header(src: &impl LogBytes) -> io::Result<(Format, Option<Damage>)> {
    let n = src.size().min(FILE_HEADER_LEN as u64) as usize;
    let mut first = [0u8; FILE_HEADER_LEN];
    src.read_at(0, &mut first[..n])?;
    Ok(classify_header(&first[..n]))
}

/// What [`probe`] found at an offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// An intact frame ending at `end`.
    Frame {
        /// Offset just past the frame.
        end: u64,
        /// Its record.
        record: LogRecord,
    },
    /// A damaged frame; `end` is where it says it ends (`None` for
    /// [`Damage::Truncated`]).
    Damaged {
        /// What is wrong.
        damage: Damage,
        /// The declared end, inside the file.
        end: Option<u64>,
    },
}

/// The CRC-32 of `len` bytes at `at`, read [`CHUNK`] bytes at a time.
fn crc_at(src: &impl LogBytes, at: u64, len: u64, scratch: &mut Vec<u8>) -> io::Result<u32> {
    let mut h = crc32fast::Hasher::new();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        scratch.resize(n, 0);
        src.read_at(at + done, scratch)?;
        h.update(scratch);
        done += n as u64;
    }
    Ok(h.finalize())
}

/// Reads and checks the frame at `at` (an offset inside the file).
///
/// # Errors
/// The source's read errors (damage is not an error).
pub fn probe(src: &impl LogBytes, at: u64) -> io::Result<Probe> {
    let size = src.size();
    let truncated = Probe::Damaged {
        damage: Damage::Truncated,
        end: None,
    };
    if size - at < HEADER as u64 {
        return Ok(truncated);
    }
    let mut header = [0u8; HEADER];
    src.read_at(at, &mut header)?;
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let len = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    let start = at + HEADER as u64;
    if size - start < len {
        return Ok(truncated);
    }
    let end = Some(start + len);
    let mut payload = Vec::new();
    if len > CHUNK as u64 && crc_at(src, start, len, &mut payload)? != crc {
        return Ok(Probe::Damaged {
            damage: Damage::BadChecksum,
            end,
        });
    }
    // `len` fits in the file, hence in memory.
    payload.resize(len as usize, 0);
    src.read_at(start, &mut payload)?;
    if crc32fast::hash(&payload) != crc {
        return Ok(Probe::Damaged {
            damage: Damage::BadChecksum,
            end,
        });
    }
    Ok(match LogRecord::decode(&payload) {
        Some(record) => Probe::Frame {
            end: start + len,
            record,
        },
        None => Probe::Damaged {
            damage: Damage::Undecodable,
            end,
        },
    })
}

/// Streams the records of a log's valid prefix (see the module docs).
#[derive(Debug)]
pub struct LogReader<S: LogBytes> {
    src: S,
    format: Format,
    /// End of the last valid frame (or of the header).
    offset: u64,
    records: u64,
    /// Set once the end (clean or not) is reached.
    done: Option<Option<Cut>>,
}

impl<S: LogBytes> LogReader<S> {
    /// A reader of the log in `src`; reads its header.
    ///
    /// # Errors
    /// The source's read errors.
    pub fn new(src: S) -> io::Result<Self> {
        let (format, damage) = read_header(&src)?;
        let mut r = LogReader {
            offset: format.data_start(),
            format,
            records: 0,
            done: None,
            src,
        };
        if let Some(damage) = damage {
            r.offset = 0;
            r.stop(damage);
        }
        Ok(r)
    }

    fn stop(&mut self, damage: Damage) {
        self.done = Some(Some(Cut {
            offset: self.offset,
            damage,
            dropped: self.src.size() - self.offset,
        }));
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
        if self.offset == self.src.size() {
            self.done = Some(None);
            return Ok(None);
        }
        match probe(&self.src, self.offset)? {
            Probe::Frame { end, record } => {
                self.offset = end;
                self.records += 1;
                Ok(Some(record))
            }
            Probe::Damaged { damage, .. } => {
                self.stop(damage);
                Ok(None)
            }
        }
    }

    /// What was read so far: records and valid length; `cut` is set once
    /// the reader stopped at damage.
    pub fn outcome(&self) -> Replayed {
        Replayed {
            format: self.format,
            records: self.records,
            valid_len: self.offset,
            cut: self.done.flatten(),
        }
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.src
    }
}

impl<S: LogBytes> Iterator for LogReader<S> {
    type Item = io::Result<LogRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Reads a whole log held in memory: the records of its valid prefix and
/// the outcome. Pure (what the fuzz tests drive).
pub fn read_log(bytes: &[u8]) -> (Vec<LogRecord>, Replayed) {
    // Reading a slice cannot fail.
    let Ok(mut r) = LogReader::new(bytes) else {
        unreachable!("a slice read failed")
    };
    let mut records = Vec::new();
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

    /// A headed log of `records`, and each record's start.
    fn log(records: &[LogRecord]) -> (Vec<u8>, Vec<u64>) {
        let mut out = FILE_HEADER.to_vec();
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
        assert!(frame_set(
            &mut parts,
            0,
            b"k",
            &Value::Str(b"v".to_vec()),
            None
        ));
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
                format: Format::Current,
                records: 3,
                valid_len: bytes.len() as u64,
                cut: None
            }
        );
        assert_eq!(read_log(&[]), (vec![], Replayed::default()));
        let (alone, outcome) = read_log(&FILE_HEADER);
        assert!(alone.is_empty() && outcome.cut.is_none());
        assert_eq!(outcome.valid_len, FILE_HEADER_LEN as u64);
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
        for n in FILE_HEADER_LEN as u64..bytes.len() as u64 {
            let (got, outcome) = read_log(&bytes[..n as usize]);
            let whole = ends.iter().filter(|&&e| e <= n).count();
            assert_eq!(got, recs[..whole].to_vec(), "cut at {n}");
            assert_eq!(
                outcome.valid_len,
                starts.get(whole).copied().unwrap_or(n).min(n)
            );
            if n == FILE_HEADER_LEN as u64 || ends.contains(&n) {
                assert_eq!(outcome.cut, None, "cut at {n}");
            } else {
                let cut = outcome.cut.expect("torn");
                assert_eq!(cut.damage, Damage::Truncated);
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
        assert!(cut.to_string().contains(&format!(
            "{} bytes from there to the end",
            bytes.len() as u64 - starts[1]
        )));
    }

    #[test]
    fn a_valid_checksum_over_garbage_is_undecodable() {
        let mut bytes = FILE_HEADER.to_vec();
        assert!(frame(&set("a", "1"), &mut bytes));
        let junk = [0xEEu8, 1, 2];
        bytes.extend_from_slice(&(junk.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&junk).to_le_bytes());
        bytes.extend_from_slice(&junk);
        let (got, outcome) = read_log(&bytes);
        assert_eq!(got.len(), 1);
        assert_eq!(outcome.cut.unwrap().damage, Damage::Undecodable);
        // A zeroed tail (a preallocated or zero-filled block) is refused too.
        let mut zeros = FILE_HEADER.to_vec();
        assert!(frame(&set("a", "1"), &mut zeros));
        zeros.extend_from_slice(&[0; 64]);
        let (got, outcome) = read_log(&zeros);
        assert_eq!(got.len(), 1);
        assert_eq!(outcome.cut.unwrap().damage, Damage::Undecodable);
    }

    #[test]
    fn a_huge_length_field_does_not_allocate_it() {
        let mut bytes = FILE_HEADER.to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[7; 100]);
        let (got, outcome) = read_log(&bytes);
        assert!(got.is_empty());
        assert_eq!(
            outcome.cut,
            Some(Cut {
                offset: 12,
                damage: Damage::Truncated,
                dropped: 108
            })
        );
    }

    #[test]
    fn the_header_tells_ours_legacy_torn_and_other_versions_apart() {
        assert_eq!(classify_header(&[]), (Format::Empty, None));
        assert_eq!(classify_header(&FILE_HEADER), (Format::Current, None));
        assert_eq!(&FILE_HEADER[..8], b"MATOU-KV");
        assert_eq!(&FILE_HEADER[8..], &1u32.to_le_bytes());
        for n in 1..FILE_HEADER_LEN {
            assert_eq!(
                classify_header(&FILE_HEADER[..n]),
                (Format::Current, Some(Damage::Truncated))
            );
        }
        let mut v7 = FILE_HEADER;
        v7[8] = 7;
        assert_eq!(
            classify_header(&v7),
            (Format::Current, Some(Damage::UnsupportedVersion(7)))
        );
        // A legacy log starts with a frame: data from byte 0.
        let mut legacy = Vec::new();
        assert!(frame(&set("a", "1"), &mut legacy));
        assert!(frame(&set("b", "2"), &mut legacy));
        let (got, outcome) = read_log(&legacy);
        assert_eq!(got, vec![set("a", "1"), set("b", "2")]);
        assert_eq!((outcome.format, outcome.cut), (Format::Legacy, None));
    }

    #[test]
    fn the_file_reader_agrees_with_the_slice_reader() {
        // Records larger than the window, and many small ones across it.
        let mut recs: Vec<LogRecord> = (0..3000).map(|i| set(&format!("k{i}"), "v")).collect();
        recs.insert(10, set("big", &"x".repeat(3 * CHUNK)));
        let (bytes, _) = log(&recs);
        let path = std::env::temp_dir().join(format!("matou-kv-frame-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut r = LogReader::new(LogFile::new(&file).unwrap()).unwrap();
        let mut got = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            got.push(rec);
        }
        assert_eq!(got, recs);
        assert_eq!(r.outcome(), read_log(&bytes).1);
        std::fs::remove_file(&path).unwrap();
    }
}
