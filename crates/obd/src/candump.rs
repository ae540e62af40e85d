//! CAN log files in the format `candump -L` writes (can-utils `candump`, read back by `canplayer`
//! and `log2asc`): one frame per line,
//!
//! ```text
//! (1700000000.123456) can0 7E8#04410C1AF8
//! (1700000000.123801) can0 18DAF110#0641...   29-bit id: eight hex digits
//! (1700000000.124000) can0 7DF#               no data bytes
//! (1700000000.125000) vcan0 7E8#0441 R         newer candump (-x): direction, R received / T sent
//! ```
//!
//! | field | form |
//! |---|---|
//! | timestamp | `(` seconds `.` microseconds `)`: candump prints `%010llu.%06llu`, so the seconds are zero-padded to ten digits and the fraction always has six |
//! | interface | the network interface name, no spaces (`can0`, `vcan0`, `any` never appears: candump prints the real one) |
//! | frame | identifier `#` data. The identifier's *width* gives its format: 3 hex digits for an 11-bit id, 8 for a 29-bit id. Data is 0–8 bytes as pairs of hex digits; can-utils also accepts `.` between bytes (`11.22.33`) |
//! | direction | optional ` R` / ` T` after the frame (candump `-x`), dropped here |
//!
//! Lines that are well formed but are not classic CAN data frames are reported as their own
//! errors so callers can skip them rather than mistake them for data
//! ([`CandumpError::is_not_data_frame`]):
//!
//! - error frames: candump writes the kernel's `can_id` with `CAN_ERR_FLAG` (`0x20000000`) set,
//!   so an eight-digit id whose value exceeds `0x1FFFFFFF` with that flag is an error frame
//!   (`20000080#0000000000000000`);
//! - remote frames (RTR): `123#R`, optionally with a length digit `123#R3`;
//! - CAN FD frames: `123##<flags><data>` (two `#`), outside OBD-II's classic CAN.
//!
//! Classic CAN frames with a raw DLC of 9–15 (`len8_dlc`, written `123#1122334455667788_9`) are
//! read as their 8 data bytes; the raw DLC is not kept, so [`format_line`] writes them without it.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::frame::{CanFrame, CanId, MAX_EXTENDED_ID};

/// The kernel's error-frame flag in `can_id` (`linux/can.h`), which candump prints as part of
/// an error frame's eight-digit identifier.
pub const CAN_ERR_FLAG: u32 = 0x2000_0000;

/// Microseconds per second; the timestamp fraction is always written with six digits.
const MICROS_PER_SEC: u32 = 1_000_000;

/// A log timestamp kept as the integers that were written, so that nothing is rounded: the
/// microsecond resolution of `candump` survives a parse/format round trip exactly, which an
/// `f64` does not guarantee at Unix-epoch magnitudes.
///
/// Serialized as a string `"1700000000.123456"` (the log's own spelling, seconds unpadded), so
/// JSON consumers get every digit; use [`Timestamp::as_secs_f64`] when a number is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    secs: u64,
    micros: u32,
}

impl Timestamp {
    /// A timestamp of `secs` seconds and `micros` microseconds; `None` if `micros` is
    /// 1 000 000 or more (that would be another second).
    pub fn new(secs: u64, micros: u32) -> Option<Self> {
        (micros < MICROS_PER_SEC).then_some(Timestamp { secs, micros })
    }

    /// Whole seconds, as written before the point.
    pub fn secs(self) -> u64 {
        self.secs
    }

    /// Microseconds, as written after the point (0–999 999).
    pub fn micros(self) -> u32 {
        self.micros
    }

    /// Seconds as a float, for arithmetic where microsecond exactness does not matter.
    pub fn as_secs_f64(self) -> f64 {
        self.secs as f64 + f64::from(self.micros) / f64::from(MICROS_PER_SEC)
    }

    /// Total microseconds, exact; differences of these are exact frame intervals.
    pub fn as_micros(self) -> u128 {
        u128::from(self.secs) * u128::from(MICROS_PER_SEC) + u128::from(self.micros)
    }
}

/// `1700000000.123456`: seconds unpadded, six fraction digits.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.secs, self.micros)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One line of a `candump -L` log: a classic CAN data frame seen on an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    pub ts: Timestamp,
    pub interface: String,
    #[serde(serialize_with = "serialize_frame")]
    pub frame: CanFrame,
}

/// Frames appear in JSON the way the log writes them, `"7E8#04410C1AF8"`.
fn serialize_frame<S: Serializer>(frame: &CanFrame, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{frame:?}"))
}

/// Why a line is not a classic CAN data frame in `candump -L` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandumpError {
    #[error("empty line")]
    Empty,
    #[error("line does not start with a `(seconds.micros)` timestamp: {0:?}")]
    MissingTimestamp(String),
    #[error("timestamp {text:?}: {reason}")]
    BadTimestamp { text: String, reason: &'static str },
    #[error("no interface name after the timestamp")]
    MissingInterface,
    #[error("no frame after interface {0:?}")]
    MissingFrame(String),
    #[error("unexpected field {0:?} after the frame (only a direction flag R or T may follow)")]
    UnexpectedField(String),
    #[error("frame {0:?} has no `#` between identifier and data")]
    MissingSeparator(String),
    #[error("identifier {id:?} has {digits} digits; candump writes 3 (11-bit) or 8 (29-bit)")]
    IdLength { id: String, digits: usize },
    #[error("identifier {0:?} is not hexadecimal")]
    IdNotHex(String),
    #[error("3-digit identifier 0x{0:03X} does not fit in 11 bits")]
    StandardIdTooLarge(u32),
    #[error("identifier 0x{0:08X} exceeds 29 bits and is not an error frame")]
    ExtendedIdTooLarge(u32),
    #[error("error frame (can_id 0x{0:08X}), not data")]
    ErrorFrame(u32),
    #[error("remote frame (RTR) with id {0}, not data")]
    RemoteFrame(CanId),
    #[error("malformed remote frame {0:?}: expected `R` with an optional length digit 0-8")]
    BadRemote(String),
    #[error("CAN FD frame {0:?}: CAN FD is not supported")]
    CanFd(String),
    #[error("data {data:?} has an odd number of hex digits ({digits})")]
    OddDigits { data: String, digits: usize },
    #[error("data {0:?} contains a character that is not a hex digit")]
    DataNotHex(String),
    #[error("data has {0} bytes; classic CAN carries at most 8")]
    TooManyBytes(usize),
    #[error("raw DLC suffix {suffix:?}: needs 8 data bytes (has {len}) and a hex digit 9-F")]
    BadLen8Dlc { suffix: String, len: usize },
}

impl CandumpError {
    /// True for lines that are well formed but hold something other than a classic CAN data
    /// frame (error, remote and CAN FD frames): a reader of diagnostic traffic skips these,
    /// while every other error means the line itself is damaged.
    pub fn is_not_data_frame(&self) -> bool {
        matches!(
            self,
            CandumpError::ErrorFrame(_) | CandumpError::RemoteFrame(_) | CandumpError::CanFd(_)
        )
    }
}

/// Parses one `candump -L` line. Leading and trailing whitespace (including the `\r` of a
/// CRLF file) is ignored; an optional direction flag `R`/`T` after the frame is accepted and
/// dropped.
pub fn parse_line(line: &str) -> Result<LogEntry, CandumpError> {
    let mut fields = line.split_ascii_whitespace();
    let ts_field = fields.next().ok_or(CandumpError::Empty)?;
    let ts = parse_timestamp(ts_field)?;
    let interface = fields.next().ok_or(CandumpError::MissingInterface)?;
    let frame_field = fields
        .next()
        .ok_or_else(|| CandumpError::MissingFrame(interface.into()))?;
    let frame = parse_frame(frame_field)?;
    if let Some(extra) = fields.next()
        && !matches!(extra, "R" | "T")
    {
        return Err(CandumpError::UnexpectedField(extra.into()));
    }
    if let Some(extra) = fields.next() {
        return Err(CandumpError::UnexpectedField(extra.into()));
    }
    Ok(LogEntry {
        ts,
        interface: interface.into(),
        frame,
    })
}

/// Writes an entry the way `candump -L` does: ten-digit zero-padded seconds, six-digit
/// fraction, 3- or 8-digit identifier, upper-case hex data, no direction flag.
pub fn format_line(entry: &LogEntry) -> String {
    let mut line = format!(
        "({:010}.{:06}) {} {}#",
        entry.ts.secs,
        entry.ts.micros,
        entry.interface,
        entry.frame.id()
    );
    for b in entry.frame.data() {
        line.push_str(&format!("{b:02X}"));
    }
    line
}

/// `(seconds.micros)`: seconds any number of decimal digits that fit in `u64`, fraction 1–6
/// decimal digits (candump always writes 6; fewer are read as a decimal fraction).
fn parse_timestamp(field: &str) -> Result<Timestamp, CandumpError> {
    let inner = field
        .strip_prefix('(')
        .ok_or_else(|| CandumpError::MissingTimestamp(field.into()))?;
    let bad = |reason| CandumpError::BadTimestamp {
        text: field.into(),
        reason,
    };
    let inner = inner
        .strip_suffix(')')
        .ok_or_else(|| bad("no closing `)`"))?;
    let (secs, frac) = inner
        .split_once('.')
        .ok_or_else(|| bad("no `.` before the microseconds"))?;
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("seconds are not decimal digits"));
    }
    let secs: u64 = secs
        .parse()
        .map_err(|_| bad("seconds do not fit in 64 bits"))?;
    if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("fraction is not 1 to 6 decimal digits"));
    }
    let micros = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(6)
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    Timestamp::new(secs, micros).ok_or_else(|| bad("fraction out of range"))
}

/// `<id>#<data>`, `<id>#R[len]`, `<id>##<fd>`.
fn parse_frame(field: &str) -> Result<CanFrame, CandumpError> {
    let (id_text, data) = field
        .split_once('#')
        .ok_or_else(|| CandumpError::MissingSeparator(field.into()))?;
    if data.starts_with('#') {
        return Err(CandumpError::CanFd(field.into()));
    }
    let id = parse_id(id_text)?;
    if let Some(rest) = data.strip_prefix(['R', 'r']) {
        return Err(remote_frame(id, rest, field));
    }
    let bytes = parse_data(data)?;
    CanFrame::new(id, &bytes).map_err(|_| CandumpError::TooManyBytes(bytes.len()))
}

/// A remote frame is reported as such only if what follows `R` is a valid length digit, so a
/// damaged line is not silently taken for an RTR.
fn remote_frame(id: CanId, rest: &str, field: &str) -> CandumpError {
    let len_ok = match rest.as_bytes() {
        [] => true,
        [d] => (b'0'..=b'8').contains(d),
        [d, b'_', dlc] => (b'0'..=b'8').contains(d) && dlc.is_ascii_hexdigit(),
        _ => false,
    };
    if len_ok {
        CandumpError::RemoteFrame(id)
    } else {
        CandumpError::BadRemote(field.into())
    }
}

/// The identifier's width decides its format, as in can-utils: 3 digits standard, 8 extended.
fn parse_id(text: &str) -> Result<CanId, CandumpError> {
    if text.len() != 3 && text.len() != 8 {
        return Err(CandumpError::IdLength {
            id: text.into(),
            digits: text.chars().count(),
        });
    }
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CandumpError::IdNotHex(text.into()));
    }
    let raw = u32::from_str_radix(text, 16).map_err(|_| CandumpError::IdNotHex(text.into()))?;
    if text.len() == 3 {
        return CanId::standard(raw).map_err(|_| CandumpError::StandardIdTooLarge(raw));
    }
    if raw <= MAX_EXTENDED_ID {
        Ok(CanId::Extended(raw))
    } else if raw & !(CAN_ERR_FLAG | MAX_EXTENDED_ID) == 0 {
        Err(CandumpError::ErrorFrame(raw))
    } else {
        Err(CandumpError::ExtendedIdTooLarge(raw))
    }
}

/// Hex byte pairs, `.` separators allowed, an optional `_<raw dlc>` suffix after 8 bytes.
fn parse_data(text: &str) -> Result<Vec<u8>, CandumpError> {
    let (hex, dlc_suffix) = match text.split_once('_') {
        Some((hex, suffix)) => (hex, Some(suffix)),
        None => (text, None),
    };
    let digits: Vec<u8> = hex.bytes().filter(|&b| b != b'.').collect();
    let nibbles = digits
        .iter()
        .map(|&b| hex_value(b))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| CandumpError::DataNotHex(text.into()))?;
    if nibbles.len() % 2 != 0 {
        return Err(CandumpError::OddDigits {
            data: text.into(),
            digits: nibbles.len(),
        });
    }
    let bytes: Vec<u8> = nibbles
        .chunks_exact(2)
        .map(|p| p.iter().fold(0, |a, &n| a << 4 | n))
        .collect();
    if bytes.len() > 8 {
        return Err(CandumpError::TooManyBytes(bytes.len()));
    }
    if let Some(suffix) = dlc_suffix {
        check_len8_dlc(suffix, bytes.len())?;
    }
    Ok(bytes)
}

/// The raw DLC suffix is only meaningful on an 8-byte frame and only for values 9–F.
fn check_len8_dlc(suffix: &str, len: usize) -> Result<(), CandumpError> {
    let valid =
        len == 8 && matches!(suffix.as_bytes(), [d] if hex_value(*d).is_some_and(|v| v > 8));
    if valid {
        Ok(())
    } else {
        Err(CandumpError::BadLen8Dlc {
            suffix: suffix.into(),
            len,
        })
    }
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(secs: u64, micros: u32, iface: &str, id: CanId, data: &[u8]) -> LogEntry {
        LogEntry {
            ts: Timestamp::new(secs, micros).unwrap(),
            interface: iface.into(),
            frame: CanFrame::new(id, data).unwrap(),
        }
    }

    // An OBD-II Mode 01 PID 0C answer (engine speed 0x1AF8 / 4 = 1726 rpm) as candump -L logs it.
    #[test]
    fn parses_a_standard_frame() {
        let e = parse_line("(1700000000.123456) can0 7E8#04410C1AF8").unwrap();
        assert_eq!(
            e,
            entry(
                1_700_000_000,
                123_456,
                "can0",
                CanId::Standard(0x7E8),
                &[4, 0x41, 0x0C, 0x1A, 0xF8]
            )
        );
        assert_eq!(e.ts.as_micros(), 1_700_000_000_123_456);
        assert!((e.ts.as_secs_f64() - 1_700_000_000.123_456).abs() < 1e-6);
    }

    #[test]
    fn id_width_decides_the_format() {
        let e = parse_line("(0000000001.000001) vcan0 18DAF110#0641").unwrap();
        assert_eq!(e.frame.id(), CanId::Extended(0x18DA_F110));
        // 8 digits of a small value are still a 29-bit id.
        let e = parse_line("(1.000001) vcan0 000007E8#").unwrap();
        assert_eq!(e.frame.id(), CanId::Extended(0x7E8));
        assert_eq!(e.frame.data(), &[] as &[u8]);
        assert_eq!(
            parse_line("(1.0) can0 7E#00"),
            Err(CandumpError::IdLength {
                id: "7E".into(),
                digits: 2
            })
        );
        assert_eq!(
            parse_line("(1.0) can0 FFF#00"),
            Err(CandumpError::StandardIdTooLarge(0xFFF))
        );
        assert_eq!(
            parse_line("(1.0) can0 7G8#00"),
            Err(CandumpError::IdNotHex("7G8".into()))
        );
    }

    #[test]
    fn empty_data_and_dot_separators() {
        let e = parse_line("(1700000000.000000) can0 7DF#").unwrap();
        assert!(e.frame.data().is_empty());
        let e = parse_line("(1700000000.000000) can0 7DF#02.01.0C").unwrap();
        assert_eq!(e.frame.data(), &[2, 1, 0x0C]);
        let e = parse_line("(1700000000.000000) can0 7df#02010c").unwrap();
        assert_eq!(e.frame.data(), &[2, 1, 0x0C]);
    }

    #[test]
    fn direction_flag_and_whitespace_are_tolerated() {
        let want = entry(
            1_700_000_000,
            5,
            "can0",
            CanId::Standard(0x7E0),
            &[2, 1, 0x0D],
        );
        assert_eq!(
            parse_line("(1700000000.000005) can0 7E0#02010D T"),
            Ok(want.clone())
        );
        assert_eq!(
            parse_line("(1700000000.000005) can0 7E0#02010D R\r\n"),
            Ok(want.clone())
        );
        assert_eq!(
            parse_line("  (1700000000.000005)  can0\t7E0#02010D \r"),
            Ok(want)
        );
        assert_eq!(
            parse_line("(1700000000.000005) can0 7E0#02010D X"),
            Err(CandumpError::UnexpectedField("X".into()))
        );
        assert_eq!(
            parse_line("(1700000000.000005) can0 7E0#02010D R junk"),
            Err(CandumpError::UnexpectedField("junk".into()))
        );
    }

    // Error frame as candump prints it: CAN_ERR_FLAG | CAN_ERR_BUSERROR (0x80), DLC 8.
    #[test]
    fn error_remote_and_fd_frames_are_distinct() {
        let err = parse_line("(1700000000.000000) can0 20000080#0000000000000000").unwrap_err();
        assert_eq!(err, CandumpError::ErrorFrame(0x2000_0080));
        assert!(err.is_not_data_frame());
        let err = parse_line("(1700000000.000000) can0 123#R").unwrap_err();
        assert_eq!(err, CandumpError::RemoteFrame(CanId::Standard(0x123)));
        assert!(err.is_not_data_frame());
        assert_eq!(
            parse_line("(1.000000) can0 12345678#R3"),
            Err(CandumpError::RemoteFrame(CanId::Extended(0x1234_5678)))
        );
        assert_eq!(
            parse_line("(1.0) can0 123#R9"),
            Err(CandumpError::BadRemote("123#R9".into()))
        );
        let err = parse_line("(1700000000.000000) can0 123##1112233").unwrap_err();
        assert_eq!(err, CandumpError::CanFd("123##1112233".into()));
        assert!(err.is_not_data_frame());
        // Above 29 bits without the error flag alone: damaged, not an error frame.
        assert_eq!(
            parse_line("(1.0) can0 80000123#"),
            Err(CandumpError::ExtendedIdTooLarge(0x8000_0123))
        );
        assert!(!CandumpError::ExtendedIdTooLarge(0).is_not_data_frame());
    }

    #[test]
    fn bad_data_is_named() {
        assert_eq!(
            parse_line("(1.0) can0 7E8#041"),
            Err(CandumpError::OddDigits {
                data: "041".into(),
                digits: 3
            })
        );
        assert_eq!(
            parse_line("(1.0) can0 7E8#0G"),
            Err(CandumpError::DataNotHex("0G".into()))
        );
        assert_eq!(
            parse_line("(1.0) can0 7E8#001122334455667788"),
            Err(CandumpError::TooManyBytes(9))
        );
        assert_eq!(
            parse_line("(1.0) can0 7E8"),
            Err(CandumpError::MissingSeparator("7E8".into()))
        );
    }

    #[test]
    fn len8_dlc_suffix() {
        let e = parse_line("(1.0) can0 123#1122334455667788_9").unwrap();
        assert_eq!(e.frame.data().len(), 8);
        assert_eq!(
            parse_line("(1.0) can0 123#11_9"),
            Err(CandumpError::BadLen8Dlc {
                suffix: "9".into(),
                len: 1
            })
        );
        assert!(parse_line("(1.0) can0 123#1122334455667788_8").is_err());
    }

    #[test]
    fn missing_parts_are_named() {
        assert_eq!(parse_line(" \r\n"), Err(CandumpError::Empty));
        assert_eq!(
            parse_line("can0 7E8#00"),
            Err(CandumpError::MissingTimestamp("can0".into()))
        );
        assert_eq!(parse_line("(1.0)"), Err(CandumpError::MissingInterface));
        assert_eq!(
            parse_line("(1.0) can0"),
            Err(CandumpError::MissingFrame("can0".into()))
        );
        for ts in [
            "(1.0",
            "(1)",
            "(.5)",
            "(1.)",
            "(1.1234567)",
            "(-1.0)",
            "(1.0x)",
            "(99999999999999999999.0)",
        ] {
            let err = parse_line(&format!("{ts} can0 7E8#")).unwrap_err();
            assert!(
                matches!(err, CandumpError::BadTimestamp { .. }),
                "{ts}: {err:?}"
            );
        }
    }

    #[test]
    fn short_fractions_are_decimal() {
        let e = parse_line("(12.5) can0 7E8#").unwrap();
        assert_eq!((e.ts.secs(), e.ts.micros()), (12, 500_000));
    }

    #[test]
    fn formats_like_candump() {
        let e = entry(
            1,
            42,
            "vcan0",
            CanId::Extended(0x18DB_33F1),
            &[0x02, 0x01, 0x00],
        );
        assert_eq!(format_line(&e), "(0000000001.000042) vcan0 18DB33F1#020100");
        let e = entry(1_700_000_000, 0, "can0", CanId::Standard(0x7DF), &[]);
        assert_eq!(format_line(&e), "(1700000000.000000) can0 7DF#");
    }

    #[test]
    fn serializes_exactly() {
        let e = entry(
            1_700_000_000,
            123_456,
            "can0",
            CanId::Standard(0x7E8),
            &[0x41],
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ts": "1700000000.123456", "interface": "can0", "frame": "7E8#41"})
        );
    }

    fn arb_entry() -> impl Strategy<Value = LogEntry> {
        let id = prop_oneof![
            (0u32..=0x7FF).prop_map(|i| CanId::standard(i).unwrap()),
            (0u32..=MAX_EXTENDED_ID).prop_map(|i| CanId::extended(i).unwrap()),
        ];
        (
            any::<u64>(),
            0u32..MICROS_PER_SEC,
            "[a-z][a-z0-9_-]{0,14}",
            id,
            proptest::collection::vec(any::<u8>(), 0..=8),
        )
            .prop_map(|(s, us, iface, id, data)| entry(s, us, &iface, id, &data))
    }

    proptest! {
        #[test]
        fn round_trip(e in arb_entry()) {
            prop_assert_eq!(parse_line(&format_line(&e)), Ok(e));
        }

        #[test]
        fn never_panics(line in "\\PC*") {
            let _ = parse_line(&line);
        }

        #[test]
        fn never_panics_on_near_misses(line in "\\(?[0-9.]{0,25}\\)? ?[a-z0-9]{0,5} [0-9A-Fa-frR#._]{0,30}( [RTX])?") {
            let _ = parse_line(&line);
        }
    }
}
