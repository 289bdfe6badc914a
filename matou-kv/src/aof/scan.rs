//! What may be cut, and what can be recovered: the torn-tail rule, the
//! resynchronising scan, and the survey behind `check-log` and
//! `--repair-log`.
//!
//! **Only a torn tail is ever cut.** When the valid prefix ends early
//! ([`LogReader`](super::LogReader) stopped at damage at offset X), the
//! bytes from X on are a *torn tail*, which start-up may cut, exactly when
//! they could be what a crash in the middle of an append leaves behind
//! ([`tail_is_torn`]):
//! - the frame at X runs past the end of the file (a partial header, or a
//!   declared length longer than what is left) **and no intact frame
//!   starts anywhere after X**: a write cut short leaves a prefix of frames,
//!   while a corrupt length field in the middle of the log is followed by
//!   the intact records it would swallow;
//! - or the frame at X is complete, ends exactly at the end of the file,
//!   its checksum does not match, **and no intact frame starts inside it**
//!   (a corrupt length can make a middle frame end at the end of the file,
//!   swallowing the records after it). This case is ambiguous (bit rot in
//!   the last record looks the same), and we cut it: page writeback is
//!   unordered, so a machine crash can leave the header and the first page
//!   of a last frame on disk and not its second page; the record cannot be
//!   recovered either way, and under `--fsync always` a crash can only tear
//!   a record that was never acknowledged. (Redis's `redis-check-aof`
//!   fixes only a truncated tail; we differ in this one case, and report it.)
//! - or every byte from X to the end is zero: the file's size reached the
//!   disk before its data did (or space was preallocated).
//!
//! Anything else stops the start, the file untouched: a checksum mismatch
//! or an undecodable payload followed by more data, an undecodable payload
//! whose checksum matches (no torn write produces that), a header with
//! another version, or a file that is not a log at all.
//!
//! **Legacy logs** (written before the header existed) start with a frame
//! at offset 0. A header-less file is taken for one only if its first frame
//! is intact, and then obeys the same rules; otherwise it is foreign
//! ([`Damage::Foreign`]). The odds that a foreign file starts with an
//! intact frame are those of a false resync (below) at one offset.
//!
//! **Resynchronising** ([`resync`]): after damage at X, the next record is
//! looked for at every offset from X + 1 on: the first offset whose 8 bytes
//! read as a frame header whose length fits in the file, whose first
//! payload byte is a record tag (8 of 256 values), whose payload matches
//! its CRC-32, and which decodes strictly as one record (exact lengths, no
//! trailing byte); a candidate longer than [`CHUNK`] must
//! first have a record's layout (its fields, walked by their lengths, end
//! exactly at the frame's end), read with a few small reads, so that
//! garbage with plausible long lengths does not cost a CRC over megabytes
//! at every offset. For bytes that are not a frame, passing both the tag
//! filter and the CRC has odds of 2^-5 x 2^-32 = 2^-37 per offset (about
//! one false record per 128 GiB of garbage scanned), before the strict
//! decode rejects most of those. The one real risk is a frame *embedded*
//! in a stored value (a client storing log bytes as a value): a resync
//! that starts inside such a damaged record can find it. The survey lists
//! every gap with its offsets, so what was skipped and where recovery
//! resumed can be checked. Cost: the scan stops at the first intact frame,
//! normally the next record; only lengths that fit in the file are
//! checksummed, in `CHUNK`-byte pieces, long ones only past the layout
//! check.

use super::frame::{probe, read_header, Cut, Damage, Format, LogBytes, Probe, CHUNK, HEADER};
use crate::record::{has_record_layout, is_tag, LogRecord};
use std::fmt;
use std::io;

/// Whether every byte from `from` to the end is zero.
fn all_zero(src: &impl LogBytes, from: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; 4096];
    let mut at = from;
    while at < src.size() {
        let n = (src.size() - at).min(buf.len() as u64) as usize;
        src.read_at(at, &mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// The first offset at or after `from` where an intact frame starts (see
/// the module docs), with that frame's end.
///
/// # Errors
/// The source's read errors.
pub fn resync(src: &impl LogBytes, from: u64) -> io::Result<Option<u64>> {
    let size = src.size();
    let mut at = from;
    let mut head = [0u8; HEADER + 1];
    while at + (HEADER as u64) < size {
        src.read_at(at, &mut head)?;
        let len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
        let fits = len >= 1 && len <= size - at - HEADER as u64;
        if fits
            && is_tag(head[HEADER])
            && (len <= CHUNK as u64 || layout_fits(src, at + HEADER as u64, len)?)
            && matches!(probe(src, at)?, Probe::Frame { .. })
        {
            return Ok(Some(at));
        }
        at += 1;
    }
    Ok(None)
}

/// Whether the `len` bytes at `start` have a record's layout
/// ([`has_record_layout`]): a few small reads, where the CRC would read them
/// all.
fn layout_fits(src: &impl LogBytes, start: u64, len: u64) -> io::Result<bool> {
    let mut error = None;
    let mut b = [0u8; 1];
    let fits = has_record_layout(len, |i| match src.read_at(start + i, &mut b) {
        Ok(()) => Some(b[0]),
        Err(e) => {
            error = Some(e);
            None
        }
    });
    match error {
        Some(e) => Err(e),
        None => Ok(fits),
    }
}

/// Whether the damage `cut` found after `records` intact records of a
/// `format` log is a torn tail that may be cut (see the module docs).
///
/// # Errors
/// The source's read errors.
pub fn tail_is_torn(
    src: &impl LogBytes,
    cut: &Cut,
    format: Format,
    records: u64,
) -> io::Result<bool> {
    if format == Format::Legacy && records == 0 {
        return Ok(false);
    }
    match cut.damage {
        Damage::UnsupportedVersion(_) | Damage::Foreign => return Ok(false),
        Damage::Truncated | Damage::BadChecksum | Damage::Undecodable => {}
    }
    if all_zero(src, cut.offset)? {
        return Ok(true);
    }
    Ok(match cut.damage {
        Damage::Truncated => resync(src, cut.offset + 1)?.is_none(),
        // A corrupt length can also make a middle frame "end" exactly at the
        // end of the file: torn only if no intact frame lies inside it.
        Damage::BadChecksum => {
            matches!(
                probe(src, cut.offset)?,
                Probe::Damaged { end: Some(end), .. } if end == src.size()
            ) && resync(src, cut.offset + 1)?.is_none()
        }
        _ => false,
    })
}

/// A damaged stretch of a log, skipped by a resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Offset of the damaged frame.
    pub start: u64,
    /// Where the next intact frame starts (or the end of the file).
    pub end: u64,
    /// What is wrong at `start`.
    pub damage: Damage,
    /// Intact records before the gap.
    pub records_before: u64,
}

/// A whole log read with resynchronisation (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Survey {
    /// What the file starts with.
    pub format: Format,
    /// Bytes in the file.
    pub size: u64,
    /// Intact records found, before and after damage.
    pub records: u64,
    /// Damaged stretches, in file order.
    pub gaps: Vec<Gap>,
    /// A torn tail at the end (what start-up cuts by itself).
    pub torn: Option<Cut>,
    /// Set if the file is not a log this build reads (nothing else is).
    pub refused: Option<Cut>,
}

impl Survey {
    /// Whether start-up would refuse the file as it is.
    pub fn blocks_start(&self) -> bool {
        self.refused.is_some() || !self.gaps.is_empty()
    }

    /// Whether nothing at all is wrong.
    pub fn is_clean(&self) -> bool {
        !self.blocks_start() && self.torn.is_none()
    }

    /// Bytes lost in gaps and the torn tail.
    pub fn lost_bytes(&self) -> u64 {
        let gaps: u64 = self.gaps.iter().map(|g| g.end - g.start).sum();
        gaps + self.torn.map_or(0, |c| c.dropped)
    }
}

/// Reads the whole log in `src`, handing every intact record to `apply` in
/// file order, resynchronising after each damaged stretch. A foreign file
/// or another version is not scanned ([`Survey::refused`]).
///
/// # Errors
/// The source's read errors.
pub fn survey(src: &impl LogBytes, mut apply: impl FnMut(LogRecord)) -> io::Result<Survey> {
    let size = src.size();
    let (format, header_damage) = read_header(src)?;
    let mut s = Survey {
        format,
        size,
        ..Survey::default()
    };
    let whole = |damage| Cut {
        offset: 0,
        damage,
        dropped: size,
    };
    match header_damage {
        Some(Damage::Truncated) => s.torn = Some(whole(Damage::Truncated)),
        Some(d) => s.refused = Some(whole(d)),
        None => {}
    }
    if header_damage.is_some() {
        return Ok(s);
    }
    let mut at = format.data_start();
    while at < size {
        match probe(src, at)? {
            Probe::Frame { end, record } => {
                apply(record);
                s.records += 1;
                at = end;
            }
            Probe::Damaged { damage, .. } => {
                if format == Format::Legacy && at == 0 {
                    s.refused = Some(whole(Damage::Foreign));
                    return Ok(s);
                }
                let cut = Cut {
                    offset: at,
                    damage,
                    dropped: size - at,
                };
                if tail_is_torn(src, &cut, format, s.records)? {
                    s.torn = Some(cut);
                    break;
                }
                let next = resync(src, at + 1)?;
                s.gaps.push(Gap {
                    start: at,
                    end: next.unwrap_or(size),
                    damage,
                    records_before: s.records,
                });
                match next {
                    Some(n) => at = n,
                    None => break,
                }
            }
        }
    }
    Ok(s)
}

impl fmt::Display for Survey {
    /// The report `check-log` prints: one line per finding, then a verdict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.format {
            Format::Empty => "empty",
            Format::Current => "format version 1 (header `MATOU-KV`)",
            Format::Legacy => "no header (a log from before the format header)",
        };
        writeln!(f, "{} bytes, {format}", self.size)?;
        if let Some(r) = &self.refused {
            writeln!(f, "refused: {}", r.damage)?;
            return writeln!(
                f,
                "verdict: not a log this build reads; the server refuses it"
            );
        }
        for (i, g) in self.gaps.iter().enumerate() {
            let next = self
                .gaps
                .get(i + 1)
                .map_or(self.records, |n| n.records_before);
            writeln!(
                f,
                "damage: {} at offset {}: bytes {}..{} ({} bytes) unreadable, {} bytes from \
                 there to the end of the file; {} intact records after it{}",
                g.damage,
                g.start,
                g.start,
                g.end,
                g.end - g.start,
                self.size - g.start,
                next - g.records_before,
                if g.end == self.size {
                    ""
                } else {
                    " (resynchronised)"
                }
            )?;
        }
        if let Some(t) = &self.torn {
            writeln!(f, "torn tail: {t} (start-up cuts it)")?;
        }
        writeln!(
            f,
            "{} intact records; {} bytes damaged or torn",
            self.records,
            self.lost_bytes()
        )?;
        let verdict = if self.blocks_start() {
            "damaged: the server refuses to start from it; --repair-log recovers the intact \
             records"
        } else if self.torn.is_some() {
            "valid but for a torn tail, which start-up cuts"
        } else {
            "valid"
        };
        writeln!(f, "verdict: {verdict}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::{frame, read_log, FILE_HEADER};
    use super::*;

    fn set(i: usize) -> LogRecord {
        LogRecord::Set {
            key: format!("key{i}").into_bytes(),
            value: format!("value{i}").into_bytes(),
            expire_at_ms: None,
        }
    }

    /// A headed log of `n` records, and each record's start.
    fn log(n: usize) -> (Vec<u8>, Vec<u64>) {
        let mut out = FILE_HEADER.to_vec();
        let mut starts = Vec::new();
        for i in 0..n {
            starts.push(out.len() as u64);
            assert!(frame(&set(i), &mut out));
        }
        (out, starts)
    }

    fn torn(bytes: &[u8]) -> bool {
        let (_, outcome) = read_log(bytes);
        let cut = outcome.cut.expect("damaged");
        tail_is_torn(&bytes, &cut, outcome.format, outcome.records).unwrap()
    }

    fn survey_of(bytes: &[u8]) -> (Survey, Vec<LogRecord>) {
        let mut got = Vec::new();
        let s = survey(&bytes, |r| got.push(r)).unwrap();
        (s, got)
    }

    #[test]
    fn a_truncated_last_frame_is_torn() {
        let (bytes, starts) = log(5);
        for n in starts[4] as usize + 1..bytes.len() {
            assert!(torn(&bytes[..n]), "cut at {n}");
        }
        // A torn creation: a strict prefix of the header.
        for n in 1..FILE_HEADER.len() {
            assert!(torn(&bytes[..n]), "header cut at {n}");
        }
    }

    #[test]
    fn a_corrupt_length_in_the_middle_is_not_torn() {
        let (mut bytes, starts) = log(50);
        // Record 10's length now runs past the end of the file.
        bytes[starts[10] as usize + 3] = 0x7f;
        let (s, got) = survey_of(&bytes);
        assert!(!torn(&bytes));
        assert_eq!(got.len(), 49, "every other record is recovered");
        assert_eq!(got[10], set(11));
        assert_eq!(s.gaps.len(), 1);
        assert_eq!((s.gaps[0].start, s.gaps[0].end), (starts[10], starts[11]));
        assert_eq!(s.gaps[0].damage, Damage::Truncated);
    }

    #[test]
    fn a_bad_checksum_followed_by_data_is_not_torn_and_is_resynchronised() {
        let (mut bytes, starts) = log(5000);
        bytes[starts[10] as usize + HEADER + 2] ^= 0x10;
        assert!(!torn(&bytes));
        let (s, got) = survey_of(&bytes);
        assert!(s.blocks_start() && s.torn.is_none());
        assert_eq!(s.records, 4999);
        assert_eq!(got[..10], (0..10).map(set).collect::<Vec<_>>()[..]);
        assert_eq!(got[10..], (11..5000).map(set).collect::<Vec<_>>()[..]);
        assert_eq!(
            s.gaps,
            vec![Gap {
                start: starts[10],
                end: starts[11],
                damage: Damage::BadChecksum,
                records_before: 10
            }]
        );
        let report = s.to_string();
        assert!(
            report.contains(&format!("at offset {}", starts[10])),
            "{report}"
        );
        assert!(report.contains("4989 intact records after it"), "{report}");
    }

    #[test]
    fn the_ambiguous_and_the_zeroed_tails() {
        let (bytes, starts) = log(5);
        // The last frame complete with a bad checksum: cut (documented).
        let mut last = bytes.clone();
        *last.last_mut().unwrap() ^= 1;
        assert!(torn(&last));
        // The same in the next-to-last frame: refused.
        let mut mid = bytes.clone();
        mid[starts[4] as usize - 1] ^= 1;
        assert!(!torn(&mid));
        // Zeros where the last records should be.
        let mut zeroed = bytes[..starts[3] as usize].to_vec();
        zeroed.extend_from_slice(&[0; 100]);
        assert!(torn(&zeroed));
        // An undecodable payload with a matching checksum: no torn write.
        let mut junk = bytes[..starts[4] as usize].to_vec();
        let payload = [0xEEu8, 1, 2];
        junk.extend_from_slice(&3u32.to_le_bytes());
        junk.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        junk.extend_from_slice(&payload);
        assert!(!torn(&junk));
    }

    #[test]
    fn foreign_files_and_other_versions_are_refused_unscanned() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let random: Vec<u8> = (0..1 << 16)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let (outcome_records, outcome) = read_log(&random);
        assert!(outcome_records.is_empty());
        assert_eq!(outcome.format, Format::Legacy);
        assert!(!torn(&random));
        let (s, got) = survey_of(&random);
        assert!(got.is_empty());
        assert_eq!(s.refused.map(|c| c.damage), Some(Damage::Foreign));
        let mut v2 = FILE_HEADER.to_vec();
        v2[8] = 2;
        let (s, _) = survey_of(&v2);
        assert_eq!(
            s.refused.map(|c| c.damage),
            Some(Damage::UnsupportedVersion(2))
        );
        assert!(!torn(&v2));
    }

    #[test]
    fn resync_finds_long_records_and_crosses_long_garbage() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 32) as u8
                })
                .collect()
        };
        let big = LogRecord::Set {
            key: b"big".to_vec(),
            value: noise(3 * super::super::CHUNK),
            expire_at_ms: None,
        };
        let (mut bytes, _) = log(3);
        // 1 MiB of garbage (long plausible lengths included), then records.
        bytes.extend_from_slice(&noise(1 << 20));
        let resume = bytes.len() as u64;
        assert!(frame(&big, &mut bytes));
        assert!(frame(&set(7), &mut bytes));
        let (s, got) = survey_of(&bytes);
        assert_eq!(got, vec![set(0), set(1), set(2), big, set(7)]);
        assert_eq!(s.gaps.len(), 1);
        assert_eq!(s.gaps[0].end, resume);
    }

    #[test]
    fn a_legacy_log_obeys_the_same_rules() {
        let (headed, _) = log(20);
        let legacy = &headed[FILE_HEADER.len()..];
        let (got, outcome) = read_log(legacy);
        assert_eq!((got.len(), outcome.format), (20, Format::Legacy));
        assert_eq!(outcome.cut, None);
        assert!(torn(&legacy[..legacy.len() - 2]));
        let (s, got) = survey_of(legacy);
        assert!(s.is_clean() && got.len() == 20);
    }
}
