//! The geo commands GEOADD, GEOPOS, GEODIST and GEOHASH, built as Redis
//! builds them on sorted sets: a position is the member's score, the
//! 52-bit interleaved geohash of its longitude and latitude (`geohash.c`,
//! `geohash_helper.c`, `geo.c` of Redis 7.0), so that every sorted-set
//! command works on a geo key and TYPE says `zset`.
//!
//! Invariants:
//! - GEOADD is parsed into the ZADD it stands for (same options, a score
//!   per position): it is logged, type-checked and answered as that ZADD,
//!   so there is no geo-specific record.
//! - Positions are validated before anything changes: a longitude outside
//!   [-180, 180] or a latitude outside Redis's [-85.05112878, 85.05112878]
//!   refuses the whole command.
//! - A score decodes to the centre of its geohash cell, so GEOPOS answers
//!   what Redis answers for the same score (not the exact input).
//!
//! The area searches (GEOSEARCH, GEORADIUS...) are not built.

use super::{Read, SYNTAX, WRONGTYPE};
use crate::resp::Reply;
use crate::store::zset::{parse_score, ZSet};
use crate::store::{Store, Value};

const STEP: u32 = 26;
const LONG_MIN: f64 = -180.0;
const LONG_MAX: f64 = 180.0;
const LAT_MIN: f64 = -85.051_128_78;
const LAT_MAX: f64 = 85.051_128_78;
/// Redis's `EARTH_RADIUS_IN_METERS`.
const EARTH_RADIUS: f64 = 6_372_797.560_856;
const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// A geo read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GeoRead {
    /// GEOPOS key member...
    Pos(Vec<u8>, Vec<Vec<u8>>),
    /// GEODIST key member1 member2 (the unit's meters per unit, as text
    /// so that the command stays `Eq`: m, km, ft, mi).
    Dist(Vec<u8>, Vec<u8>, Vec<u8>, Unit),
    /// GEOHASH key member...
    Hash(Vec<u8>, Vec<Vec<u8>>),
}

/// GEODIST's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Meters.
    M,
    /// Kilometers.
    Km,
    /// Feet.
    Ft,
    /// Miles.
    Mi,
}

impl Unit {
    fn meters(self) -> f64 {
        match self {
            Unit::M => 1.0,
            Unit::Km => 1000.0,
            Unit::Ft => 0.3048,
            Unit::Mi => 1609.34,
        }
    }
}

/// Whether `name` is one of this module's commands.
pub(super) fn owns(name: &str) -> bool {
    matches!(name, "geoadd" | "geopos" | "geodist" | "geohash")
}

/// Spreads the 32 bits of `x` over the even bits of the result.
fn spread(x: u32) -> u64 {
    let mut v = u64::from(x);
    v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF;
    v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | (v << 2)) & 0x3333_3333_3333_3333;
    (v | (v << 1)) & 0x5555_5555_5555_5555
}

/// The even bits of `v`, packed.
fn squash(v: u64) -> u32 {
    let mut v = v & 0x5555_5555_5555_5555;
    v = (v | (v >> 1)) & 0x3333_3333_3333_3333;
    v = (v | (v >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((v | (v >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// Redis's `geohashEncode` at 26 steps per axis, latitude on the even
/// bits, within the latitude range `lat` (Redis's own, or the standard
/// ±90 for GEOHASH's strings).
fn encode(long: f64, lat: f64, lat_range: (f64, f64)) -> u64 {
    let cells = f64::from(1u32 << STEP);
    let lat_off = (lat - lat_range.0) / (lat_range.1 - lat_range.0) * cells;
    let long_off = (long - LONG_MIN) / (LONG_MAX - LONG_MIN) * cells;
    // C's conversion to uint32_t: truncation (the offsets are >= 0).
    spread(lat_off as u32) | (spread(long_off as u32) << 1)
}

/// The centre of the cell of `bits` (Redis's `geohashDecodeToLongLatWGS84`):
/// (longitude, latitude).
fn decode(bits: u64) -> (f64, f64) {
    let cells = f64::from(1u32 << STEP);
    let (ilat, ilong) = (f64::from(squash(bits)), f64::from(squash(bits >> 1)));
    let lat_scale = LAT_MAX - LAT_MIN;
    let long_scale = LONG_MAX - LONG_MIN;
    let lat_min = LAT_MIN + (ilat / cells) * lat_scale;
    let lat_max = LAT_MIN + ((ilat + 1.0) / cells) * lat_scale;
    let long_min = LONG_MIN + (ilong / cells) * long_scale;
    let long_max = LONG_MIN + ((ilong + 1.0) / cells) * long_scale;
    let long = ((long_min + long_max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((lat_min + lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (long, lat)
}

/// Redis's `geohashGetDistance`: the haversine distance in meters.
fn distance(a: (f64, f64), b: (f64, f64)) -> f64 {
    let rad = |d: f64| d * (std::f64::consts::PI / 180.0);
    let v = ((rad(b.0) - rad(a.0)) / 2.0).sin();
    if v == 0.0 {
        return EARTH_RADIUS * (rad(b.1) - rad(a.1)).abs();
    }
    let u = ((rad(b.1) - rad(a.1)) / 2.0).sin();
    let h = u * u + rad(a.1).cos() * rad(b.1).cos() * v * v;
    2.0 * EARTH_RADIUS * h.sqrt().asin()
}

/// A coordinate as Redis's `addReplyHumanLongDouble` writes it: 17
/// decimals, trailing zeros dropped.
fn human(f: f64) -> Vec<u8> {
    let s = format!("{f:.17}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.as_bytes().to_vec()
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Parses a geo command; GEOADD becomes its ZADD.
pub(super) fn parse(name: &str, args: &[Vec<u8>]) -> Result<super::Command, Reply> {
    let key = args[1].clone();
    let read = |r: GeoRead| Ok(super::Command::Read(Read::Geo(r)));
    match name {
        "geoadd" => {
            let mut at = 2;
            let (mut nx, mut xx) = (false, false);
            while at < args.len() {
                let a = &args[at];
                if is(a, "nx") {
                    nx = true;
                } else if is(a, "xx") {
                    xx = true;
                } else if !is(a, "ch") {
                    break;
                }
                at += 1;
            }
            if (args.len() - at) % 3 != 0 || (nx && xx) {
                return Err(Reply::err(SYNTAX));
            }
            let mut zadd: Vec<Vec<u8>> = args[..at].to_vec();
            zadd[0] = b"zadd".to_vec();
            for t in args[at..].chunks(3) {
                let f =
                    |b: &[u8]| parse_score(b).ok_or_else(|| Reply::err(super::strings::NOT_FLOAT));
                let (long, lat) = (f(&t[0])?, f(&t[1])?);
                if !(LONG_MIN..=LONG_MAX).contains(&long) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
                    return Err(Reply::err(format!(
                        "ERR invalid longitude,latitude pair {long:.6},{lat:.6}"
                    )));
                }
                zadd.push(
                    encode(long, lat, (LAT_MIN, LAT_MAX))
                        .to_string()
                        .into_bytes(),
                );
                zadd.push(t[2].clone());
            }
            super::zset::parse("zadd", &zadd)
        }
        "geopos" => read(GeoRead::Pos(key, args[2..].to_vec())),
        "geohash" => read(GeoRead::Hash(key, args[2..].to_vec())),
        "geodist" => {
            let unit = match args.get(4) {
                None => Unit::M,
                Some(_) if args.len() > 5 => return Err(Reply::err(SYNTAX)),
                Some(u) if is(u, "m") => Unit::M,
                Some(u) if is(u, "km") => Unit::Km,
                Some(u) if is(u, "ft") => Unit::Ft,
                Some(u) if is(u, "mi") => Unit::Mi,
                Some(_) => {
                    return Err(Reply::err(
                        "ERR unsupported unit provided. please use M, KM, FT, MI",
                    ))
                }
            };
            read(GeoRead::Dist(key, args[2].clone(), args[3].clone(), unit))
        }
        other => unreachable!("{other} is not a geo command"),
    }
}

/// The sorted set at `key` (`None`: absent), or WRONGTYPE.
fn zset<'a>(store: &'a Store, key: &[u8], now: u64) -> Result<Option<&'a ZSet>, Reply> {
    match store.read_value(key, now) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(Reply::err(WRONGTYPE)),
    }
}

/// The position of `member`, if it has a score.
fn position(z: Option<&ZSet>, member: &[u8]) -> Option<(f64, f64)> {
    // Scores of geo members are integers below 2^52: exact in an f64.
    z?.score(member).map(|s| decode(s as u64))
}

/// Runs a geo read.
pub(super) fn read(cmd: &GeoRead, store: &Store, now: u64) -> Reply {
    let run = || -> Result<Reply, Reply> {
        Ok(match cmd {
            GeoRead::Pos(key, members) => {
                let z = zset(store, key, now)?;
                Reply::Array(
                    members
                        .iter()
                        .map(|m| match position(z, m) {
                            Some((long, lat)) => Reply::Array(vec![
                                Reply::Bulk(human(long)),
                                Reply::Bulk(human(lat)),
                            ]),
                            None => Reply::NilArray,
                        })
                        .collect(),
                )
            }
            GeoRead::Hash(key, members) => {
                let z = zset(store, key, now)?;
                Reply::Array(
                    members
                        .iter()
                        .map(|m| match position(z, m) {
                            Some((long, lat)) => Reply::Bulk(geohash_text(long, lat)),
                            None => Reply::Nil,
                        })
                        .collect(),
                )
            }
            GeoRead::Dist(key, a, b, unit) => {
                let z = zset(store, key, now)?;
                match (position(z, a), position(z, b)) {
                    (Some(pa), Some(pb)) => {
                        Reply::Bulk(format!("{:.4}", distance(pa, pb) / unit.meters()).into_bytes())
                    }
                    _ => Reply::Nil,
                }
            }
        })
    };
    match run() {
        Ok(r) | Err(r) => r,
    }
}

/// GEOHASH's 11 characters: the position re-encoded over the standard
/// latitude range ±90, 5 bits a character, the 11th 0 (52 bits only).
fn geohash_text(long: f64, lat: f64) -> Vec<u8> {
    let bits = encode(long, lat, (-90.0, 90.0));
    (0..11)
        .map(|i| {
            let idx = if i == 10 {
                0
            } else {
                ((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize
            };
            ALPHABET[idx]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_to_their_cell_and_match_redis_figures() {
        // Palermo and Catania, Redis's documentation example.
        let p = decode(encode(13.361389, 38.115556, (LAT_MIN, LAT_MAX)));
        let c = decode(encode(15.087269, 37.502669, (LAT_MIN, LAT_MAX)));
        assert!((p.0 - 13.361389).abs() < 1e-5 && (p.1 - 38.115556).abs() < 1e-5);
        assert_eq!(
            encode(13.361389, 38.115556, (LAT_MIN, LAT_MAX)),
            3_479_099_956_230_698
        );
        assert_eq!(format!("{:.4}", distance(p, c)), "166274.1516");
        assert_eq!(human(p.0), b"13.36138933897018433".to_vec());
        assert_eq!(human(p.1), b"38.11555639549629859".to_vec());
        assert_eq!(geohash_text(p.0, p.1), b"sqc8b49rny0".to_vec());
    }
}
