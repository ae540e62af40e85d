//! The SLCAN (Lawicel) ASCII protocol, sans-IO: commands a host sends to a serial CAN adapter
//! and what the adapter answers, as typed values, plus a line accumulator that cuts an
//! arbitrary byte stream into lines and resynchronises after garbage.
//!
//! Every message is one line ended by `\r`; the adapter answers a command with `\r` (OK) or a
//! lone BEL (`0x07`, error); a transmitted frame is acknowledged with `z\r` (11-bit) or `Z\r`
//! (29-bit). Frames are `tIIIL<data>` and `TIIIIIIIIL<data>` in hexadecimal, optionally followed
//! by a four-digit millisecond timestamp (0..60000) when timestamps are on (`Z1`).
//!
//! Both directions are here (encode and decode for commands and for adapter output) so the host
//! driver and the emulated adapter share one codec, and a round trip can be property-tested.
//! No I/O, no clock: the caller feeds bytes and writes what it gets.

use std::fmt::{self, Write as _};

use telltale_obd::{CanFrame, CanId};

/// Bytes a line may hold before the accumulator gives up on it. The longest valid line is an
/// extended remote or data frame with eight bytes and a timestamp: `T` + 8 + 1 + 16 + 4 = 30.
pub const MAX_LINE: usize = 32;

const BEL: u8 = 0x07;
const CR: u8 = b'\r';

/// The CAN bitrates an SLCAN adapter can be set to, by `S` code.
const BITRATES: [u32; 9] = [
    10_000, 20_000, 50_000, 100_000, 125_000, 250_000, 500_000, 800_000, 1_000_000,
];

/// The `S` code (`0..=8`) for a bitrate in bit/s, if the protocol has one.
pub fn bitrate_code(bitrate: u32) -> Option<u8> {
    BITRATES.iter().position(|&b| b == bitrate).map(|i| i as u8)
}

/// The bitrate in bit/s of an `S` code.
pub fn bitrate_of_code(code: u8) -> Option<u32> {
    BITRATES.get(usize::from(code)).copied()
}

/// What a host tells an adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `Sn`: one of the standard bitrates, by code (see [`bitrate_code`]).
    SetBitrate(u8),
    /// `O`: open the channel (start receiving and transmitting).
    Open,
    /// `L`: open in listen-only mode.
    ListenOnly,
    /// `C`: close the channel.
    Close,
    /// `t`/`T`: transmit a data frame.
    Transmit(CanFrame),
    /// `r`/`R`: transmit a remote frame asking for `dlc` bytes.
    TransmitRemote { id: CanId, dlc: u8 },
    /// `V`: hardware and firmware version.
    Version,
    /// `N`: serial number.
    Serial,
    /// `F`: status flags.
    Status,
    /// `Z0`/`Z1`: timestamps off or on.
    Timestamps(bool),
}

/// What an adapter says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `\r`: the last command succeeded.
    Ok,
    /// BEL: the last command failed.
    Error,
    /// A received data frame, with its timestamp in ms when timestamps are on.
    Frame {
        frame: CanFrame,
        timestamp: Option<u16>,
    },
    /// A received remote frame.
    Remote {
        id: CanId,
        dlc: u8,
        timestamp: Option<u16>,
    },
    /// `z\r` / `Z\r`: a transmit command was accepted (`extended` for `Z`).
    TransmitAck { extended: bool },
    /// `Fxx\r`: the status flags (see [`StatusFlags`]).
    Status(StatusFlags),
    /// `Vxxxx\r`: the version string (four characters on Lawicel adapters).
    Version(String),
    /// `Nxxxx\r`: the serial number.
    Serial(String),
}

/// The status byte of an `F` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusFlags(pub u8);

impl StatusFlags {
    pub const RX_FIFO_FULL: u8 = 0x01;
    pub const TX_FIFO_FULL: u8 = 0x02;
    pub const ERROR_WARNING: u8 = 0x04;
    pub const DATA_OVERRUN: u8 = 0x08;
    pub const ERROR_PASSIVE: u8 = 0x20;
    pub const ARBITRATION_LOST: u8 = 0x40;
    pub const BUS_ERROR: u8 = 0x80;

    /// Whether any flag is set.
    pub fn any(self) -> bool {
        self.0 != 0
    }
}

/// Lists the set flags in words, e.g. `error warning, data overrun`.
impl fmt::Display for StatusFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u8, &str); 8] = [
            (StatusFlags::RX_FIFO_FULL, "receive FIFO full"),
            (StatusFlags::TX_FIFO_FULL, "transmit FIFO full"),
            (StatusFlags::ERROR_WARNING, "error warning"),
            (StatusFlags::DATA_OVERRUN, "data overrun"),
            (0x10, "unused flag 0x10"),
            (StatusFlags::ERROR_PASSIVE, "error passive"),
            (StatusFlags::ARBITRATION_LOST, "arbitration lost"),
            (StatusFlags::BUS_ERROR, "bus error"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str(", ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("no flags")?;
        }
        Ok(())
    }
}

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown SLCAN message {line:?}")]
    Unknown { line: String },
    #[error("SLCAN line {line:?} has {got} characters, expected {expected}")]
    Length {
        line: String,
        got: usize,
        expected: String,
    },
    #[error("SLCAN line {line:?} has a non-hexadecimal character at position {pos}")]
    NotHex { line: String, pos: usize },
    #[error("SLCAN line {line:?}: identifier 0x{id:X} is out of range")]
    IdOutOfRange { line: String, id: u32 },
    #[error("SLCAN line {line:?}: length {dlc} is more than 8 bytes")]
    DlcTooLarge { line: String, dlc: u8 },
    #[error("SLCAN line {line:?}: timestamp {value} is beyond 59999 ms")]
    Timestamp { line: String, value: u16 },
    #[error("SLCAN line {line:?}: bitrate code {code} is not 0..8")]
    BitrateCode { line: String, code: u8 },
}

/// Why the accumulator threw bytes away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(
        "SLCAN line longer than {MAX_LINE} bytes without a terminator: {discarded} bytes discarded up to the next \\r"
    )]
    Overlong { discarded: usize },
    #[error("SLCAN line interrupted by BEL: {partial:?} discarded")]
    Interrupted { partial: String },
}

/// One unit the accumulator cut from the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A line without its `\r` (empty for a bare `\r`).
    Line(Vec<u8>),
    /// A lone BEL.
    Bell,
}

/// Cuts a byte stream into `\r`-terminated lines and BELs. `\n` is ignored (some adapters and
/// terminals add it). A line longer than [`MAX_LINE`] is dropped up to the next `\r` and
/// reported once; memory stays bounded whatever arrives.
#[derive(Debug, Default)]
pub struct LineBuffer {
    line: Vec<u8>,
    /// Bytes dropped from the current over-long line, or 0 when in sync.
    discarding: usize,
    ready: std::collections::VecDeque<Result<Token, SyncError>>,
}

impl LineBuffer {
    pub fn new() -> LineBuffer {
        LineBuffer::default()
    }

    /// Feeds bytes in; take what they completed with [`next_token`](Self::next_token).
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                CR => {
                    if self.discarding > 0 {
                        self.ready.push_back(Err(SyncError::Overlong {
                            discarded: self.discarding,
                        }));
                        self.discarding = 0;
                    } else {
                        self.ready
                            .push_back(Ok(Token::Line(std::mem::take(&mut self.line))));
                    }
                }
                BEL => {
                    if self.discarding > 0 {
                        self.ready.push_back(Err(SyncError::Overlong {
                            discarded: self.discarding,
                        }));
                        self.discarding = 0;
                    } else if !self.line.is_empty() {
                        let partial = String::from_utf8_lossy(&self.line).into_owned();
                        self.line.clear();
                        self.ready
                            .push_back(Err(SyncError::Interrupted { partial }));
                    }
                    self.ready.push_back(Ok(Token::Bell));
                }
                b'\n' => {}
                _ if self.discarding > 0 => self.discarding += 1,
                _ if self.line.len() >= MAX_LINE => {
                    self.discarding = self.line.len() + 1;
                    self.line.clear();
                }
                _ => self.line.push(b),
            }
            // Bound the queue of finished tokens too: a caller that never drains loses the
            // oldest, which cannot happen with the drivers here (they drain after every push).
            if self.ready.len() > 4096 {
                self.ready.pop_front();
            }
        }
    }

    /// The next complete token, if any.
    pub fn next_token(&mut self) -> Option<Result<Token, SyncError>> {
        self.ready.pop_front()
    }

    /// Bytes of an unfinished line held so far.
    pub fn pending(&self) -> usize {
        self.line.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn push_hex(out: &mut String, value: u32, digits: usize) {
    let _ = write!(out, "{value:0digits$X}");
}

fn push_frame(out: &mut String, remote: bool, id: CanId, dlc: u8, data: &[u8]) {
    match (id, remote) {
        (CanId::Standard(id), false) => {
            out.push('t');
            push_hex(out, u32::from(id), 3);
        }
        (CanId::Standard(id), true) => {
            out.push('r');
            push_hex(out, u32::from(id), 3);
        }
        (CanId::Extended(id), false) => {
            out.push('T');
            push_hex(out, id, 8);
        }
        (CanId::Extended(id), true) => {
            out.push('R');
            push_hex(out, id, 8);
        }
    }
    push_hex(out, u32::from(dlc.min(8)), 1);
    for &b in data {
        push_hex(out, u32::from(b), 2);
    }
}

/// The line for a command, `\r` included.
pub fn encode_command(cmd: &Command) -> Vec<u8> {
    let mut s = String::with_capacity(MAX_LINE);
    match cmd {
        Command::SetBitrate(code) => {
            s.push('S');
            push_hex(&mut s, u32::from(*code), 1);
        }
        Command::Open => s.push('O'),
        Command::ListenOnly => s.push('L'),
        Command::Close => s.push('C'),
        Command::Transmit(frame) => push_frame(
            &mut s,
            false,
            frame.id(),
            frame.data().len() as u8,
            frame.data(),
        ),
        Command::TransmitRemote { id, dlc } => push_frame(&mut s, true, *id, *dlc, &[]),
        Command::Version => s.push('V'),
        Command::Serial => s.push('N'),
        Command::Status => s.push('F'),
        Command::Timestamps(on) => s.push_str(if *on { "Z1" } else { "Z0" }),
    }
    s.push('\r');
    s.into_bytes()
}

/// The bytes for an adapter event: a line with `\r`, or a lone BEL.
pub fn encode_event(event: &Event) -> Vec<u8> {
    let mut s = String::with_capacity(MAX_LINE);
    match event {
        Event::Ok => {}
        Event::Error => return vec![BEL],
        Event::Frame { frame, timestamp } => {
            push_frame(
                &mut s,
                false,
                frame.id(),
                frame.data().len() as u8,
                frame.data(),
            );
            if let Some(ts) = timestamp {
                push_hex(&mut s, u32::from(*ts), 4);
            }
        }
        Event::Remote { id, dlc, timestamp } => {
            push_frame(&mut s, true, *id, *dlc, &[]);
            if let Some(ts) = timestamp {
                push_hex(&mut s, u32::from(*ts), 4);
            }
        }
        Event::TransmitAck { extended } => s.push(if *extended { 'Z' } else { 'z' }),
        Event::Status(flags) => {
            s.push('F');
            push_hex(&mut s, u32::from(flags.0), 2);
        }
        Event::Version(v) => {
            s.push('V');
            s.push_str(v);
        }
        Event::Serial(n) => {
            s.push('N');
            s.push_str(n);
        }
    }
    s.push('\r');
    s.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Decoding

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn hex(line: &[u8], start: usize, digits: usize) -> Result<u32, DecodeError> {
    let mut value = 0u32;
    for (i, &c) in line[start..start + digits].iter().enumerate() {
        let d = (c as char)
            .to_digit(16)
            .ok_or_else(|| DecodeError::NotHex {
                line: text(line),
                pos: start + i,
            })?;
        value = value << 4 | d;
    }
    Ok(value)
}

/// A frame line (`t`, `T`, `r`, `R`), with or without a timestamp when `allow_timestamp`.
struct FrameLine {
    id: CanId,
    dlc: u8,
    data: [u8; 8],
    remote: bool,
    timestamp: Option<u16>,
}

fn decode_frame_line(line: &[u8], allow_timestamp: bool) -> Result<FrameLine, DecodeError> {
    let (extended, remote) = match line.first() {
        Some(b't') => (false, false),
        Some(b'T') => (true, false),
        Some(b'r') => (false, true),
        Some(b'R') => (true, true),
        _ => return Err(DecodeError::Unknown { line: text(line) }),
    };
    let id_digits = if extended { 8 } else { 3 };
    let header = 1 + id_digits + 1;
    if line.len() < header {
        return Err(DecodeError::Length {
            line: text(line),
            got: line.len(),
            expected: format!("at least {header}"),
        });
    }
    let raw = hex(line, 1, id_digits)?;
    let id = if extended {
        CanId::extended(raw)
    } else {
        CanId::standard(raw)
    }
    .map_err(|_| DecodeError::IdOutOfRange {
        line: text(line),
        id: raw,
    })?;
    let dlc = hex(line, 1 + id_digits, 1)? as u8;
    if dlc > 8 {
        return Err(DecodeError::DlcTooLarge {
            line: text(line),
            dlc,
        });
    }
    let body = if remote { 0 } else { 2 * usize::from(dlc) };
    let plain = header + body;
    let timestamp = if line.len() == plain {
        None
    } else if allow_timestamp && line.len() == plain + 4 {
        let value = hex(line, plain, 4)? as u16;
        if value >= 60_000 {
            return Err(DecodeError::Timestamp {
                line: text(line),
                value,
            });
        }
        Some(value)
    } else {
        return Err(DecodeError::Length {
            line: text(line),
            got: line.len(),
            expected: if allow_timestamp {
                format!("{plain} or {} with a timestamp", plain + 4)
            } else {
                plain.to_string()
            },
        });
    };
    let mut data = [0u8; 8];
    if !remote {
        for (i, byte) in data.iter_mut().take(usize::from(dlc)).enumerate() {
            *byte = hex(line, header + 2 * i, 2)? as u8;
        }
    }
    Ok(FrameLine {
        id,
        dlc,
        data,
        remote,
        timestamp,
    })
}

fn exact(line: &[u8], len: usize) -> Result<(), DecodeError> {
    if line.len() == len {
        Ok(())
    } else {
        Err(DecodeError::Length {
            line: text(line),
            got: line.len(),
            expected: len.to_string(),
        })
    }
}

/// Decodes one command line (without its `\r`), as an adapter does.
pub fn decode_command(line: &[u8]) -> Result<Command, DecodeError> {
    match line.first() {
        Some(b'S') => {
            exact(line, 2)?;
            let code = hex(line, 1, 1)? as u8;
            if bitrate_of_code(code).is_none() {
                return Err(DecodeError::BitrateCode {
                    line: text(line),
                    code,
                });
            }
            Ok(Command::SetBitrate(code))
        }
        Some(b'O') => exact(line, 1).map(|()| Command::Open),
        Some(b'L') => exact(line, 1).map(|()| Command::ListenOnly),
        Some(b'C') => exact(line, 1).map(|()| Command::Close),
        Some(b'V') => exact(line, 1).map(|()| Command::Version),
        Some(b'N') => exact(line, 1).map(|()| Command::Serial),
        Some(b'F') => exact(line, 1).map(|()| Command::Status),
        Some(b'Z') => {
            exact(line, 2)?;
            match line[1] {
                b'0' => Ok(Command::Timestamps(false)),
                b'1' => Ok(Command::Timestamps(true)),
                _ => Err(DecodeError::Unknown { line: text(line) }),
            }
        }
        Some(b't' | b'T' | b'r' | b'R') => {
            let f = decode_frame_line(line, false)?;
            if f.remote {
                Ok(Command::TransmitRemote {
                    id: f.id,
                    dlc: f.dlc,
                })
            } else {
                frame_of(line, &f).map(Command::Transmit)
            }
        }
        _ => Err(DecodeError::Unknown { line: text(line) }),
    }
}

fn frame_of(line: &[u8], f: &FrameLine) -> Result<CanFrame, DecodeError> {
    CanFrame::new(f.id, &f.data[..usize::from(f.dlc)]).map_err(|_| DecodeError::DlcTooLarge {
        line: text(line),
        dlc: f.dlc,
    })
}

/// Decodes one token of adapter output, as a host does.
pub fn decode_event(token: &Token) -> Result<Event, DecodeError> {
    let line = match token {
        Token::Bell => return Ok(Event::Error),
        Token::Line(line) => line.as_slice(),
    };
    match line.first() {
        None => Ok(Event::Ok),
        Some(b'z') if line.len() == 1 => Ok(Event::TransmitAck { extended: false }),
        Some(b'Z') if line.len() == 1 => Ok(Event::TransmitAck { extended: true }),
        Some(b't' | b'T' | b'r' | b'R') => {
            let f = decode_frame_line(line, true)?;
            if f.remote {
                Ok(Event::Remote {
                    id: f.id,
                    dlc: f.dlc,
                    timestamp: f.timestamp,
                })
            } else {
                Ok(Event::Frame {
                    frame: frame_of(line, &f)?,
                    timestamp: f.timestamp,
                })
            }
        }
        Some(b'F') => {
            exact(line, 3)?;
            Ok(Event::Status(StatusFlags(hex(line, 1, 2)? as u8)))
        }
        Some(b'V') => printable(line).map(|s| Event::Version(s[1..].to_owned())),
        Some(b'N') => printable(line).map(|s| Event::Serial(s[1..].to_owned())),
        _ => Err(DecodeError::Unknown { line: text(line) }),
    }
}

fn printable(line: &[u8]) -> Result<&str, DecodeError> {
    match std::str::from_utf8(line) {
        Ok(s) if s.chars().all(|c| c.is_ascii_graphic()) => Ok(s),
        _ => Err(DecodeError::Unknown { line: text(line) }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn std_frame(id: u16, data: &[u8]) -> CanFrame {
        CanFrame::new(CanId::Standard(id), data).unwrap()
    }

    fn tokens(bytes: &[u8]) -> Vec<Result<Token, SyncError>> {
        let mut buf = LineBuffer::new();
        buf.push(bytes);
        std::iter::from_fn(|| buf.next_token()).collect()
    }

    #[test]
    fn commands_encode_as_lawicel_lines() {
        assert_eq!(encode_command(&Command::SetBitrate(6)), b"S6\r");
        assert_eq!(encode_command(&Command::Open), b"O\r");
        assert_eq!(encode_command(&Command::Close), b"C\r");
        assert_eq!(encode_command(&Command::Version), b"V\r");
        assert_eq!(encode_command(&Command::Serial), b"N\r");
        assert_eq!(encode_command(&Command::Status), b"F\r");
        assert_eq!(encode_command(&Command::Timestamps(true)), b"Z1\r");
        assert_eq!(
            encode_command(&Command::Transmit(std_frame(0x7DF, &[2, 1, 0x0C]))),
            b"t7DF302010C\r"
        );
        let ext = CanFrame::new(CanId::Extended(0x18DB_33F1), &[0x02, 0x09, 0x02]).unwrap();
        assert_eq!(
            encode_command(&Command::Transmit(ext)),
            b"T18DB33F13020902\r"
        );
        assert_eq!(
            encode_command(&Command::TransmitRemote {
                id: CanId::Standard(0x123),
                dlc: 4
            }),
            b"r1234\r"
        );
        assert_eq!(
            encode_command(&Command::Transmit(std_frame(0x001, &[]))),
            b"t0010\r"
        );
    }

    #[test]
    fn bitrates_map_to_s_codes() {
        assert_eq!(bitrate_code(500_000), Some(6));
        assert_eq!(bitrate_code(10_000), Some(0));
        assert_eq!(bitrate_code(1_000_000), Some(8));
        assert_eq!(bitrate_code(33_333), None);
        assert_eq!(bitrate_of_code(4), Some(125_000));
        assert_eq!(bitrate_of_code(9), None);
    }

    #[test]
    fn adapter_output_decodes_to_events() {
        let ev = |b: &[u8]| decode_event(&Token::Line(b.to_vec()));
        assert_eq!(ev(b""), Ok(Event::Ok));
        assert_eq!(decode_event(&Token::Bell), Ok(Event::Error));
        assert_eq!(ev(b"z"), Ok(Event::TransmitAck { extended: false }));
        assert_eq!(ev(b"Z"), Ok(Event::TransmitAck { extended: true }));
        assert_eq!(
            ev(b"t7E8806410C1AF8AAAAAA"),
            Ok(Event::Frame {
                frame: std_frame(0x7E8, &[6, 0x41, 0x0C, 0x1A, 0xF8, 0xAA, 0xAA, 0xAA]),
                timestamp: None
            })
        );
        // Lower-case hex is accepted too.
        assert_eq!(
            ev(b"t7e8106"),
            Ok(Event::Frame {
                frame: std_frame(0x7E8, &[6]),
                timestamp: None
            })
        );
        // 0xEA60 = 60000 ms is beyond a timestamp's range.
        assert!(matches!(
            ev(b"t7E8306410DEA60"),
            Err(DecodeError::Timestamp { value: 60000, .. })
        ));
        assert_eq!(
            ev(b"t7E8306410D1234"),
            Ok(Event::Frame {
                frame: std_frame(0x7E8, &[0x06, 0x41, 0x0D]),
                timestamp: Some(0x1234)
            })
        );
        assert_eq!(
            ev(b"T18DAF11022410"),
            Ok(Event::Frame {
                frame: CanFrame::new(CanId::Extended(0x18DA_F110), &[0x24, 0x10]).unwrap(),
                timestamp: None
            })
        );
        assert_eq!(
            ev(b"r7E02"),
            Ok(Event::Remote {
                id: CanId::Standard(0x7E0),
                dlc: 2,
                timestamp: None
            })
        );
        assert_eq!(ev(b"F0C"), Ok(Event::Status(StatusFlags(0x0C))));
        assert_eq!(ev(b"V1013"), Ok(Event::Version("1013".into())));
        assert_eq!(ev(b"NA123"), Ok(Event::Serial("A123".into())));
    }

    #[test]
    fn malformed_lines_name_what_is_wrong() {
        let ev = |b: &[u8]| decode_event(&Token::Line(b.to_vec()));
        assert!(matches!(
            ev(b"t7E"),
            Err(DecodeError::Length { got: 3, .. })
        ));
        assert!(matches!(
            ev(b"t7E83064"),
            Err(DecodeError::Length { got: 8, .. })
        ));
        assert!(matches!(
            ev(b"t7G83"),
            Err(DecodeError::NotHex { pos: 2, .. })
        ));
        assert!(matches!(
            ev(b"t8000"),
            Err(DecodeError::IdOutOfRange { id: 0x800, .. })
        ));
        assert!(matches!(
            ev(b"T2000000000"),
            Err(DecodeError::IdOutOfRange {
                id: 0x2000_0000,
                ..
            })
        ));
        assert!(matches!(
            ev(b"t7E89"),
            Err(DecodeError::DlcTooLarge { dlc: 9, .. })
        ));
        assert!(matches!(ev(b"Fxx"), Err(DecodeError::NotHex { .. })));
        assert!(matches!(ev(b"?"), Err(DecodeError::Unknown { .. })));
        let err = ev(b"t7E83064").unwrap_err().to_string();
        assert_eq!(
            err,
            "SLCAN line \"t7E83064\" has 8 characters, expected 11 or 15 with a timestamp"
        );
        // Commands do not carry timestamps.
        assert!(decode_command(b"t7E8306410D1234").is_err());
        assert!(matches!(
            decode_command(b"S9"),
            Err(DecodeError::BitrateCode { code: 9, .. })
        ));
        assert!(decode_command(b"Ox").is_err());
    }

    #[test]
    fn the_accumulator_cuts_lines_across_chunks() {
        let mut buf = LineBuffer::new();
        buf.push(b"t7E");
        assert_eq!(buf.next_token(), None);
        assert_eq!(buf.pending(), 3);
        buf.push(b"80\rz\r\x07\r\n");
        assert_eq!(buf.next_token(), Some(Ok(Token::Line(b"t7E80".to_vec()))));
        assert_eq!(buf.next_token(), Some(Ok(Token::Line(b"z".to_vec()))));
        assert_eq!(buf.next_token(), Some(Ok(Token::Bell)));
        assert_eq!(buf.next_token(), Some(Ok(Token::Line(vec![]))));
        assert_eq!(buf.next_token(), None);
    }

    #[test]
    fn the_accumulator_resynchronises_after_garbage() {
        let mut bytes = vec![b'x'; 100];
        bytes.extend_from_slice(b"\rt1230\r");
        let got = tokens(&bytes);
        assert_eq!(
            got,
            vec![
                Err(SyncError::Overlong { discarded: 100 }),
                Ok(Token::Line(b"t1230".to_vec()))
            ]
        );
        assert_eq!(
            tokens(b"t12\x07t1230\r"),
            vec![
                Err(SyncError::Interrupted {
                    partial: "t12".into()
                }),
                Ok(Token::Bell),
                Ok(Token::Line(b"t1230".to_vec()))
            ]
        );
    }

    fn arb_id() -> impl Strategy<Value = CanId> {
        prop_oneof![
            (0u16..=0x7FF).prop_map(CanId::Standard),
            (0u32..=0x1FFF_FFFF).prop_map(CanId::Extended),
        ]
    }

    fn arb_frame() -> impl Strategy<Value = CanFrame> {
        (arb_id(), proptest::collection::vec(any::<u8>(), 0..=8))
            .prop_map(|(id, data)| CanFrame::new(id, &data).unwrap())
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (0u8..=8).prop_map(Command::SetBitrate),
            Just(Command::Open),
            Just(Command::ListenOnly),
            Just(Command::Close),
            arb_frame().prop_map(Command::Transmit),
            (arb_id(), 0u8..=8).prop_map(|(id, dlc)| Command::TransmitRemote { id, dlc }),
            Just(Command::Version),
            Just(Command::Serial),
            Just(Command::Status),
            any::<bool>().prop_map(Command::Timestamps),
        ]
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let ts = proptest::option::of(0u16..60_000);
        prop_oneof![
            Just(Event::Ok),
            Just(Event::Error),
            (arb_frame(), ts.clone())
                .prop_map(|(frame, timestamp)| Event::Frame { frame, timestamp }),
            (arb_id(), 0u8..=8, ts).prop_map(|(id, dlc, timestamp)| Event::Remote {
                id,
                dlc,
                timestamp
            }),
            any::<bool>().prop_map(|extended| Event::TransmitAck { extended }),
            any::<u8>().prop_map(|f| Event::Status(StatusFlags(f))),
            "[0-9A-Z]{4}".prop_map(Event::Version),
            "[0-9A-Z]{4}".prop_map(Event::Serial),
        ]
    }

    proptest! {
        #[test]
        fn commands_round_trip(cmd in arb_command()) {
            let bytes = encode_command(&cmd);
            let got = tokens(&bytes);
            prop_assert_eq!(got.len(), 1);
            let Some(Ok(Token::Line(line))) = got.into_iter().next() else {
                return Err(TestCaseError::fail("not one line"));
            };
            prop_assert_eq!(decode_command(&line), Ok(cmd));
        }

        #[test]
        fn events_round_trip_through_arbitrary_chunking(
            events in proptest::collection::vec(arb_event(), 1..20),
            cut in 1usize..7,
        ) {
            let bytes: Vec<u8> = events.iter().flat_map(encode_event).collect();
            let mut buf = LineBuffer::new();
            let mut got = Vec::new();
            for chunk in bytes.chunks(cut) {
                buf.push(chunk);
                while let Some(token) = buf.next_token() {
                    got.push(decode_event(&token.unwrap()).unwrap());
                }
            }
            prop_assert_eq!(got, events);
        }

        #[test]
        fn garbage_never_panics_and_memory_stays_bounded(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let mut buf = LineBuffer::new();
            for chunk in bytes.chunks(37) {
                buf.push(chunk);
                prop_assert!(buf.pending() <= MAX_LINE);
                while let Some(token) = buf.next_token() {
                    if let Ok(token) = token {
                        let _ = decode_event(&token);
                        if let Token::Line(line) = &token {
                            prop_assert!(line.len() <= MAX_LINE);
                            let _ = decode_command(line);
                        }
                    }
                }
            }
        }

        #[test]
        fn a_good_line_after_garbage_is_read(
            garbage in proptest::collection::vec(any::<u8>(), 0..200),
            frame in arb_frame(),
        ) {
            let mut bytes = garbage;
            bytes.push(b'\r');
            let line = encode_event(&Event::Frame { frame, timestamp: None });
            bytes.extend_from_slice(&line);
            let got = tokens(&bytes);
            let last = got.last().cloned();
            prop_assert_eq!(
                last.map(|t| t.map_err(|e| e.to_string()).and_then(|t| decode_event(&t).map_err(|e| e.to_string()))),
                Some(Ok(Event::Frame { frame, timestamp: None }))
            );
        }
    }
}
