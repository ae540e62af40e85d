//! What an ELM327 OBD-to-RS232 interpreter (or one of its many clones) prints, per the ELM327
//! data sheet (Elm Electronics, ELM327DS): a byte accumulator that cuts the serial stream into
//! replies, and a pure parser that turns one reply into OK, text, OBD messages or the adapter's
//! condition. Nothing here reads a port or waits; `telltale-can`'s ELM327 client does that.
//!
//! Where things are: [`ReplyBuffer`] in `buffer.rs`; [`parse_reply`] and the types of a reply
//! here; what one line is (status, condition, flagged, content) in `lines.rs`; data lines from
//! CAN in `can.rs`, from the older buses in `older.rs`; the tests on real reply texts in
//! `tests.rs`.
//!
//! # The serial dialogue
//!
//! The host sends a command line ending in `\r`: an AT command (`ATZ`, `ATH1`, `AT SP 0`,
//! spaces ignored) or OBD data as hex digits (`010C`). The adapter answers with lines ending
//! in `\r` (`\r\n` after `ATL1`), usually an empty line, then the prompt `>` meaning "ready
//! for the next command". It may emit NUL bytes, which carry nothing and are dropped. With
//! echo on (`ATE1`, the power-up default) the first line repeats the command as received.
//!
//! # OBD data lines (CAN protocols, `ATCAF1` formatting, the default)
//!
//! | settings | single frame | multi-frame (VIN, `0902`) |
//! |---|---|---|
//! | headers off (`ATH0`) | `41 0C 1A F8`: PCI removed, one line per answering ECU | a byte count `014`, then `0: 49 02 01 31 44 34`, `1: 47 50 ..`: the index is the ISO-TP sequence number, the count the message length (padding in the last line is dropped) |
//! | headers on, 11-bit | `7E8 06 41 00 BE 3F A8 13 00`: id, PCI byte, data, padding | `7E8 10 14 49 02 01 31 44 34`, `7E8 21 ..`: raw ISO-TP frames, possibly interleaved with other ECUs' (`7E9 ..`) |
//! | headers on, 29-bit | `18 DA F1 10 06 41 00 ..` | as above with 29-bit ids |
//!
//! With spaces off (`ATS0`) the same lines have no spaces (`410C1AF8`, `7E8064100BE3FA81300`).
//! Raw frames are reassembled with [`crate::isotp::reassemble`]; the headers-off multi-frame
//! form is rebuilt into the ISO-TP frames it came from and reassembled the same way.
//! Not handled: `ATCAF0` (PCI shown without headers) and `ATD1` (DLC digit after the id).
//!
//! # OBD data lines on the older buses (protocols 1–5: SAE J1850, ISO 9141-2, ISO 14230-4)
//!
//! Every line is one message on the bus ([`crate::legacy`]); there is no ISO-TP, so a long
//! answer is several lines, each starting with the response SID.
//!
//! | settings | one line |
//! |---|---|
//! | headers off | the data bytes: `41 00 BE 1F B8 11`, `49 02 01 00 00 00 31` |
//! | headers on | header, data, check byte: `48 6B 10 41 00 BE 1F B8 11 AA` |
//!
//! With headers on, each line's check byte is verified and the lines are grouped by the
//! sender's address (the third header byte), so several ECUs answering one functional
//! request come apart; each ECU's lines are then joined into the answers they make
//! ([`crate::legacy::join_answers`]: DTC lines into one list without a count byte, numbered
//! Mode 09 lines into one payload), each a [`Message`] from [`EcuId::Node`]. With headers
//! off the sender is unknown: all lines are joined by the same rules, with no header.
//!
//! # One bad line among good ones
//!
//! A line that cannot be read (a bad check byte, garbled hex, a line the adapter flagged
//! with `<DATA ERROR`, an ECU's broken multi-frame answer) does not cost the rest of the
//! reply: [`Reply::Messages`] carries what could be read and, beside it, one error per
//! unreadable line or answer, each naming its line or ECU. Only when nothing at all could be
//! read is the reply an error (the first of them).
//!
//! # Status lines and conditions
//!
//! `SEARCHING...` (automatic protocol search) and `BUS INIT: ...OK` (ISO 9141/KWP wake-up)
//! are progress reports and are skipped. `NO DATA` (nothing answered before the `ATST`
//! timeout) is a normal outcome and a [`Reply::NoData`]. Every other message of the data
//! sheet's "Error Messages and Alerts" section is a [`Condition`] returned as an error, since
//! the command did not produce its answer: `?`, `ACT ALERT`, `BUFFER FULL`, `BUS BUSY`,
//! `BUS ERROR`, `BUS INIT: ...ERROR`, `CAN ERROR`, `DATA ERROR`, `FB ERROR`, `LP ALERT`,
//! `LV RESET`, `STOPPED`, `UNABLE TO CONNECT`, `ERRxx`. A data line followed by `<DATA ERROR`
//! (bad checksum) or `<RX ERROR` (bad CAN frame) is [`Elm327Error::Flagged`], with the line,
//! one of the per-line errors above. (During an automatic search the adapter does not print
//! `BUS INIT`; only with protocol 3, 4 or 5 set by hand does it, data sheet "Bus
//! Initiation".)

use std::fmt;

use serde::Serialize;

use crate::ecu::EcuId;
use crate::frame::CanId;
use crate::isotp::IsoTpError;
use crate::legacy::{self, FrameError, JoinError};

/// The prompt that ends every reply.
pub const PROMPT: u8 = b'>';

/// Longest reply [`ReplyBuffer`] holds. The ELM327's own transmit buffer is 512 bytes and a
/// 4095-byte ISO-TP message printed with headers and spaces is about 2 KiB, so anything longer
/// is a stream that lost its prompt (garbage, or a monitor command left running).
pub const MAX_REPLY_LEN: usize = 4096;

/// The usual initialisation, in order, each answered by `OK` except `ATZ` (which prints the
/// version line, e.g. `ELM327 v1.5`, after about a second):
///
/// - `ATZ`: full reset, so no setting from a previous user survives (echo is on again after it);
/// - `ATE0`: echo off (its own reply still carries the echo `ATE0`);
/// - `ATL0`: lines end with `\r` only;
/// - `ATS0`: no spaces between bytes, halving the serial traffic (fewer `BUFFER FULL`s);
/// - `ATH1`: headers on, so answers from several ECUs can be told apart and multi-frame
///   answers are shown as ISO-TP frames;
/// - `ATSP0`: automatic protocol search on the first request (expect `SEARCHING...`).
///
/// After it, parse replies with `echo: false, headers: true`; ask `ATDPN` after the first
/// successful request and feed the answer to [`Bus::from_protocol_number`].
pub const INIT_SEQUENCE: [&str; 6] = ["ATZ\r", "ATE0\r", "ATL0\r", "ATS0\r", "ATH1\r", "ATSP0\r"];

/// An OBD request line: service and PIDs as hex, ended by `\r` (`pid_request(1, &[0x0C, 0x0D])`
/// is `"010C0D\r"`). The ELM327 sends it to the functional address (`7DF` on 11-bit CAN) unless
/// `ATSH` set another header. SAE J1979 allows up to six PIDs in one Mode 01 request.
pub fn pid_request(service: u8, pids: &[u8]) -> String {
    let mut line = format!("{service:02X}");
    for pid in pids {
        line.push_str(&format!("{pid:02X}"));
    }
    line.push('\r');
    line
}

mod buffer;
mod can;
mod lines;
mod older;
#[cfg(test)]
mod tests;

pub use buffer::ReplyBuffer;

use can::{parse_with_headers, parse_without_headers};
use lines::{LineKind, classify};
use older::parse_legacy;

/// Width of the CAN identifiers the adapter prints as headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum IdWidth {
    /// 11-bit ids, printed as three hex digits (`7E8`).
    #[default]
    Bits11,
    /// 29-bit ids, printed as four bytes (`18 DA F1 10`).
    Bits29,
}

impl IdWidth {
    /// The id width of the protocol named by an `ATDPN` answer (`6`, or `A6` when it was found
    /// by automatic search): ISO 15765-4 protocols 6 and 8 are 11-bit, 7, 9 and SAE J1939 (A)
    /// 29-bit. `None` for the non-CAN protocols 1–5 and the user-defined CAN protocols B and C,
    /// whose width depends on `ATPB`.
    pub fn from_protocol_number(answer: &str) -> Option<IdWidth> {
        match protocol_digit(answer) {
            "6" | "8" => Some(IdWidth::Bits11),
            "7" | "9" | "A" | "a" => Some(IdWidth::Bits29),
            _ => None,
        }
    }

    /// Hex digits of a header of this width.
    fn digits(self) -> usize {
        match self {
            IdWidth::Bits11 => 3,
            IdWidth::Bits29 => 8,
        }
    }
}

impl fmt::Display for IdWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdWidth::Bits11 => "11-bit",
            IdWidth::Bits29 => "29-bit",
        })
    }
}

/// The protocol digit of an `ATDPN` answer: `A6` (found by automatic search) and `6` are both
/// `6`; a lone `A` is protocol A (SAE J1939).
fn protocol_digit(answer: &str) -> &str {
    let answer = answer.trim();
    answer
        .strip_prefix(['A', 'a'])
        .filter(|n| !n.is_empty())
        .unwrap_or(answer)
}

/// The bus the adapter talks to the vehicle on: what a data line with headers looks like and
/// how the lines of one answer go together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Bus {
    /// ISO 15765-4 CAN, with ids of this width.
    Can(IdWidth),
    /// One of the older buses, ELM327 protocols 1–5.
    Legacy(legacy::Protocol),
}

impl Default for Bus {
    /// 11-bit CAN, the most common.
    fn default() -> Self {
        Bus::Can(IdWidth::Bits11)
    }
}

impl Bus {
    /// The bus of the protocol named by an `ATDPN` answer (`3`, or `A3` when it was found by
    /// automatic search): 1–5 are the older buses, 6–A CAN as
    /// [`IdWidth::from_protocol_number`] says. `None` for B and C (user-defined CAN, whose
    /// width depends on `ATPB`) and anything else.
    pub fn from_protocol_number(answer: &str) -> Option<Bus> {
        let number = protocol_digit(answer);
        match number {
            "1" | "2" | "3" | "4" | "5" => number
                .parse()
                .ok()
                .and_then(legacy::Protocol::from_elm_number)
                .map(Bus::Legacy),
            _ => IdWidth::from_protocol_number(answer).map(Bus::Can),
        }
    }
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bus::Can(width) => write!(f, "ISO 15765-4 CAN {width}"),
            Bus::Legacy(protocol) => protocol.fmt(f),
        }
    }
}

/// How the adapter was configured when `command` was sent: what [`parse_reply`] must expect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParseOptions {
    /// The command this reply answers, as sent (spaces, case and the final `\r` do not
    /// matter). A command of hex digits only (or empty: "repeat the last one") expects OBD
    /// data; anything else (`ATZ`, `STDI`) expects `OK` or text. A first line equal to the
    /// command is its echo and is dropped even when `echo` is false, since no answer to an
    /// OBD request equals the request.
    pub command: String,
    /// Echo is on (`ATE1`): the first line must be the echo of `command`.
    pub echo: bool,
    /// Headers are on (`ATH1`): each data line starts with the CAN id and shows the PCI (on
    /// CAN), or with the three header bytes and ends with the check byte (older buses).
    pub headers: bool,
    /// The bus the adapter is on: how data lines are read.
    pub bus: Bus,
}

impl ParseOptions {
    /// Options for `command` with echo and headers off on 11-bit CAN.
    pub fn new(command: impl Into<String>) -> Self {
        ParseOptions {
            command: command.into(),
            ..Self::default()
        }
    }

    /// The command without spaces and line end, upper case: what the adapter echoes.
    fn normalized_command(&self) -> String {
        normalize(&self.command)
    }

    fn expects_data(&self) -> bool {
        self.normalized_command()
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
    }
}

fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// One diagnostic message as the adapter delivered it, transport framing removed (on the older
/// buses, one ECU's lines joined into the answer they make).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The responding ECU, when headers are on: its CAN id, or its source address on the
    /// older buses.
    pub header: Option<EcuId>,
    /// The service response: `41 0C 1A F8`, `49 02 01 31 ..`, `7F 01 12`.
    pub payload: Vec<u8>,
}

/// A successful answer to one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Reply {
    /// `OK`: an AT command was accepted.
    Ok,
    /// An AT command's informational answer (`ELM327 v1.5`, `12.3V`, `A6`); several lines are
    /// joined with `\n`.
    Text(String),
    /// OBD data: with headers, grouped per ECU in the order the ECUs first answered, each
    /// ECU's messages in arrival order; without headers, one per line or multi-frame block
    /// (on the older buses, joined: see the module documentation).
    Messages {
        messages: Vec<Message>,
        /// The lines (or one ECU's answer) that could not be read, each error naming its line
        /// or ECU, in the order met; `messages` is everything else. Never the whole reply:
        /// when nothing could be read, [`parse_reply`] returns the first error instead.
        #[serde(serialize_with = "as_text")]
        errors: Vec<Elm327Error>,
    },
    /// `NO DATA`: nothing answered in time (unsupported PID, ignition off, or a filter).
    NoData,
}

impl Reply {
    /// OBD data with nothing unreadable.
    pub fn messages(messages: Vec<Message>) -> Reply {
        Reply::Messages {
            messages,
            errors: Vec::new(),
        }
    }
}

fn as_text<S: serde::Serializer>(errors: &[Elm327Error], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(errors.iter().map(ToString::to_string))
}

/// A condition the adapter reported instead of an answer (ELM327 data sheet, "Error Messages
/// and Alerts"). Displayed as the adapter prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Condition {
    /// `?`: the command was not understood or not valid now.
    UnknownCommand,
    /// `ACT ALERT`: no activity for a while, low-power mode is coming.
    ActivityAlert,
    /// `BUFFER FULL`: the adapter's transmit buffer overflowed; data was lost.
    BufferFull,
    /// `BUS BUSY`: too much activity to insert a message (usually wiring).
    BusBusy,
    /// `BUS ERROR`: an invalid signal on the bus.
    BusError,
    /// `BUS INIT: ...ERROR`: the ISO 9141/KWP wake-up failed.
    BusInitError,
    /// `CAN ERROR`: the CAN module could not send or receive (wrong baud rate, no bus).
    CanError,
    /// `DATA ERROR`: a response arrived but was unusable.
    DataError,
    /// `FB ERROR`: an output's feedback was not seen (wiring).
    FeedbackError,
    /// `LP ALERT`: entering low-power mode in two seconds.
    LowPowerAlert,
    /// `LV RESET`: the supply dipped and the adapter reset; all settings are back to defaults.
    LowVoltageReset,
    /// `<RX ERROR`: a CAN frame was received with errors (only as a flagged line).
    RxError,
    /// `STOPPED`: the command was interrupted by a byte from the host.
    Stopped,
    /// `UNABLE TO CONNECT`: no protocol found; the ignition may be off.
    UnableToConnect,
    /// `ERRxx`: an internal error; `ERR94` is a fatal CAN error that resets the adapter.
    Internal(u8),
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Condition::Internal(code) => return write!(f, "ERR{code:02}"),
            Condition::UnknownCommand => "?",
            Condition::ActivityAlert => "ACT ALERT",
            Condition::BufferFull => "BUFFER FULL",
            Condition::BusBusy => "BUS BUSY",
            Condition::BusError => "BUS ERROR",
            Condition::BusInitError => "BUS INIT: ...ERROR",
            Condition::CanError => "CAN ERROR",
            Condition::DataError => "DATA ERROR",
            Condition::FeedbackError => "FB ERROR",
            Condition::LowPowerAlert => "LP ALERT",
            Condition::LowVoltageReset => "LV RESET",
            Condition::RxError => "RX ERROR",
            Condition::Stopped => "STOPPED",
            Condition::UnableToConnect => "UNABLE TO CONNECT",
        };
        f.write_str(text)
    }
}

/// Why a reply gave no answer or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Elm327Error {
    #[error("adapter reported {0}")]
    Adapter(Condition),
    #[error("adapter flagged line {line:?} with <{condition}")]
    Flagged { condition: Condition, line: String },
    #[error("no `>` prompt within {limit} bytes; discarding up to the next prompt")]
    Overlong { limit: usize },
    #[error("byte 0x{byte:02X} at offset {offset} of the reply is not ELM327 text")]
    NotText { byte: u8, offset: usize },
    #[error("empty reply")]
    EmptyReply,
    #[error("first line {got:?} is not the echo of the command {expected:?}")]
    EchoMismatch { expected: String, got: String },
    #[error("line {0:?} contains a character that is not a hex digit")]
    NotHex(String),
    #[error("line {line:?} has an odd number of hex digits ({digits})")]
    OddDigits { line: String, digits: usize },
    #[error("line {line:?} does not start with a {width} CAN id")]
    BadHeader { line: String, width: IdWidth },
    #[error("ECU {header}: frame of {len} bytes; classic CAN carries at most 8")]
    FrameTooLong { header: CanId, len: usize },
    #[error("line {line:?} continues a multi-frame message that was never started")]
    OrphanSegment { line: String },
    #[error("segment {index}: has {len} bytes, a {what} carries at most {max}")]
    SegmentTooLong {
        index: u8,
        len: usize,
        max: usize,
        what: &'static str,
    },
    #[error("{}: {source}", ecu_label(*.header))]
    IsoTp {
        header: Option<CanId>,
        source: IsoTpError,
    },
    #[error("line {line:?}: {source}")]
    LegacyLine { line: String, source: FrameError },
    #[error("{}: {source}", node_label(*.source_address))]
    LegacyJoin {
        /// The sender, when headers are on.
        source_address: Option<u8>,
        source: JoinError,
    },
    #[error(
        "ECU {source_address:02X}: a line of its 0x{sid:02X} answer was damaged; the rest of that answer is dropped, not passed on incomplete"
    )]
    DamagedAnswer { source_address: u8, sid: u8 },
}

impl Elm327Error {
    /// The adapter's condition, whether reported alone or flagging a line.
    pub fn condition(&self) -> Option<Condition> {
        match self {
            Elm327Error::Adapter(c) | Elm327Error::Flagged { condition: c, .. } => Some(*c),
            _ => None,
        }
    }
}

fn ecu_label(header: Option<CanId>) -> String {
    header.map_or_else(|| "multi-frame answer".to_owned(), |h| format!("ECU {h}"))
}

fn node_label(address: Option<u8>) -> String {
    address.map_or_else(
        || "answer without headers".to_owned(),
        |a| format!("ECU {a:02X}"),
    )
}

/// Parses one reply (the text [`ReplyBuffer`] returned, prompt excluded) for the command and
/// configuration in `opts`. See the module documentation for the accepted forms.
pub fn parse_reply(text: &str, opts: &ParseOptions) -> Result<Reply, Elm327Error> {
    let lines: Vec<&str> = text
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let lines = strip_echo(&lines, opts)?;
    let mut content = Vec::new();
    let mut flagged = Vec::new();
    let mut no_data = false;
    for &line in lines {
        match classify(line) {
            LineKind::Status => {}
            LineKind::NoData => no_data = true,
            LineKind::Condition(c) => return Err(Elm327Error::Adapter(c)),
            LineKind::Flagged(condition, line) => flagged.push(Elm327Error::Flagged {
                condition,
                line: line.to_owned(),
            }),
            LineKind::Content => content.push(line),
        }
    }
    if content.is_empty() {
        return match flagged.into_iter().next() {
            Some(first) => Err(first),
            None if no_data => Ok(Reply::NoData),
            None => Err(Elm327Error::EmptyReply),
        };
    }
    if !opts.expects_data() {
        return Ok(text_reply(&content));
    }
    let mut read = Read {
        messages: Vec::new(),
        errors: flagged,
    };
    match (opts.bus, opts.headers) {
        (Bus::Can(_), false) => parse_without_headers(&content, &mut read),
        (Bus::Can(width), true) => parse_with_headers(&content, width, &mut read),
        (Bus::Legacy(protocol), headers) => parse_legacy(&content, protocol, headers, &mut read),
    }
    if read.messages.is_empty() && !read.errors.is_empty() {
        return Err(read.errors.swap_remove(0));
    }
    Ok(Reply::Messages {
        messages: read.messages,
        errors: read.errors,
    })
}

/// What the data lines of one reply gave so far.
#[derive(Debug, Default)]
struct Read {
    messages: Vec<Message>,
    errors: Vec<Elm327Error>,
}

impl Read {
    fn push(&mut self, result: Result<Message, Elm327Error>) {
        match result {
            Ok(m) => self.messages.push(m),
            Err(e) => self.errors.push(e),
        }
    }
}

/// Drops the echo line: required when echo is on, tolerated when it is off.
fn strip_echo<'a, 'b>(
    lines: &'a [&'b str],
    opts: &ParseOptions,
) -> Result<&'a [&'b str], Elm327Error> {
    let expected = opts.normalized_command();
    if expected.is_empty() {
        // "Repeat the last command": the echo is an empty line, already gone.
        return Ok(lines);
    }
    match lines.split_first() {
        Some((first, rest)) if normalize(first) == expected => Ok(rest),
        Some((first, _)) if opts.echo => Err(Elm327Error::EchoMismatch {
            expected,
            got: (*first).to_owned(),
        }),
        None if opts.echo => Err(Elm327Error::EmptyReply),
        _ => Ok(lines),
    }
}

fn text_reply(content: &[&str]) -> Reply {
    match content {
        [only] if only.eq_ignore_ascii_case("OK") => Reply::Ok,
        _ => Reply::Text(content.join("\n")),
    }
}
