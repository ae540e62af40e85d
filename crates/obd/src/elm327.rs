//! What an ELM327 OBD-to-RS232 interpreter (or one of its many clones) prints, per the ELM327
//! data sheet (Elm Electronics, ELM327DS): a byte accumulator that cuts the serial stream into
//! replies, and a pure parser that turns one reply into OK, text, OBD messages or the adapter's
//! condition. Nothing here reads a port or waits; `telltale-can`'s ELM327 client does that.
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
use crate::isotp::{self, IsoTpError, Pci};
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

/// Cuts the adapter's byte stream into replies: the text before each `>` prompt.
///
/// Bounded: at most [`MAX_REPLY_LEN`] bytes are held. When a reply grows past that, the
/// buffer yields [`Elm327Error::Overlong`] at once, then discards everything up to and
/// including the next prompt, where it resynchronises. Replies that contain bytes the ELM327
/// never prints (non-ASCII, control characters other than CR, LF and tab) yield
/// [`Elm327Error::NotText`]. NUL bytes are dropped wherever they occur.
#[derive(Debug, Clone, Default)]
pub struct ReplyBuffer {
    buf: Vec<u8>,
    discarding: bool,
}

impl ReplyBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes as they arrive, in chunks of any size, and returns every reply they
    /// completed, in order (usually none or one). The result never holds more entries than
    /// `bytes` holds prompts, plus one overflow error.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<String, Elm327Error>> {
        bytes.iter().filter_map(|&b| self.push_byte(b)).collect()
    }

    /// Bytes of an unfinished reply held so far.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets the unfinished reply, e.g. after the caller timed out and reset the adapter.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    fn push_byte(&mut self, b: u8) -> Option<Result<String, Elm327Error>> {
        match b {
            0 => None,
            PROMPT if self.discarding => {
                self.discarding = false;
                None
            }
            PROMPT => Some(reply_text(std::mem::take(&mut self.buf))),
            _ if self.discarding => None,
            _ if self.buf.len() >= MAX_REPLY_LEN => {
                self.buf.clear();
                self.discarding = true;
                Some(Err(Elm327Error::Overlong {
                    limit: MAX_REPLY_LEN,
                }))
            }
            _ => {
                self.buf.push(b);
                None
            }
        }
    }
}

/// Checks that a reply is the printable ASCII the ELM327 emits.
fn reply_text(bytes: Vec<u8>) -> Result<String, Elm327Error> {
    let bad = bytes
        .iter()
        .enumerate()
        .find(|&(_, &b)| !(b == b'\r' || b == b'\n' || b == b'\t' || (b' '..=b'~').contains(&b)));
    if let Some((offset, &byte)) = bad {
        return Err(Elm327Error::NotText { byte, offset });
    }
    String::from_utf8(bytes).map_err(|e| Elm327Error::NotText {
        byte: 0xFF,
        offset: e.utf8_error().valid_up_to(),
    })
}

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

/// What one trimmed, non-empty line of a reply is.
#[derive(Debug, PartialEq)]
enum LineKind<'a> {
    Status,
    NoData,
    Condition(Condition),
    Flagged(Condition, &'a str),
    Content,
}

fn classify(line: &str) -> LineKind<'_> {
    let upper = line.to_ascii_uppercase();
    if let Some(kind) = flagged_line(line, &upper) {
        return kind;
    }
    let upper = upper.strip_prefix('!').unwrap_or(&upper);
    if upper.starts_with("SEARCHING") {
        return LineKind::Status;
    }
    if let Some(rest) = upper.strip_prefix("BUS INIT:") {
        return if rest.trim_start_matches(['.', ' ']) == "OK" {
            LineKind::Status
        } else {
            LineKind::Condition(Condition::BusInitError)
        };
    }
    match upper {
        "NO DATA" => LineKind::NoData,
        _ => condition_text(upper).map_or(LineKind::Content, LineKind::Condition),
    }
}

/// `41 0C 1A F8 <DATA ERROR`: the `<` points at the line before it.
fn flagged_line<'a>(line: &'a str, upper: &str) -> Option<LineKind<'a>> {
    let (condition, marker) = [
        (Condition::DataError, "<DATA ERROR"),
        (Condition::RxError, "<RX ERROR"),
    ]
    .into_iter()
    .find(|(_, marker)| upper.ends_with(marker))?;
    let flagged = line
        .get(..line.len().saturating_sub(marker.len()))
        .unwrap_or("")
        .trim();
    Some(LineKind::Flagged(condition, flagged))
}

fn condition_text(upper: &str) -> Option<Condition> {
    let condition = match upper {
        "?" => Condition::UnknownCommand,
        "ACT ALERT" => Condition::ActivityAlert,
        "BUFFER FULL" => Condition::BufferFull,
        "BUS BUSY" => Condition::BusBusy,
        "BUS ERROR" => Condition::BusError,
        "CAN ERROR" => Condition::CanError,
        "DATA ERROR" => Condition::DataError,
        "FB ERROR" => Condition::FeedbackError,
        "LP ALERT" => Condition::LowPowerAlert,
        "LV RESET" => Condition::LowVoltageReset,
        "STOPPED" => Condition::Stopped,
        "UNABLE TO CONNECT" => Condition::UnableToConnect,
        other => return internal_error(other),
    };
    Some(condition)
}

/// `ERR` and two decimal digits.
fn internal_error(upper: &str) -> Option<Condition> {
    let digits = upper.strip_prefix("ERR")?;
    if digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok().map(Condition::Internal)
    } else {
        None
    }
}

/// Hex digits to bytes, whitespace ignored.
fn hex_bytes(text: &str, line: &str) -> Result<Vec<u8>, Elm327Error> {
    let nibbles = text
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| Elm327Error::NotHex(line.to_owned()))?;
    if nibbles.len() % 2 != 0 {
        return Err(Elm327Error::OddDigits {
            line: line.to_owned(),
            digits: nibbles.len(),
        });
    }
    Ok(nibbles
        .chunks_exact(2)
        .map(|p| p.iter().fold(0, |acc, &n| acc << 4 | n))
        .collect())
}

// ---- CAN, headers off ---------------------------------------------------------------------

/// A headers-off multi-frame block being collected, rebuilt as the ISO-TP frames it came from.
#[derive(Debug)]
struct Block {
    len: usize,
    frames: Vec<Vec<u8>>,
    /// A segment of it could not be read (already reported): the block is lost.
    broken: bool,
}

impl Block {
    fn new(len: usize) -> Block {
        Block {
            len,
            frames: Vec::new(),
            broken: false,
        }
    }

    /// Adds segment `index` (`0:` is the first frame, later ones the consecutive frames whose
    /// sequence number is the index), putting back the PCI the adapter removed.
    fn push(&mut self, index: u8, bytes: Vec<u8>) -> Result<(), Elm327Error> {
        let (mut frame, max, what) = if self.frames.is_empty() && index == 0 {
            let [_, _, hi, lo] = u32::try_from(self.len).unwrap_or(u32::MAX).to_be_bytes();
            (
                vec![0x10 | (hi & 0x0F), lo],
                isotp::pci::FIRST_FRAME_PAYLOAD,
                "first frame",
            )
        } else {
            (
                vec![0x20 | index],
                isotp::pci::CONSECUTIVE_FRAME_PAYLOAD,
                "consecutive frame",
            )
        };
        if bytes.len() > max {
            return Err(Elm327Error::SegmentTooLong {
                index,
                len: bytes.len(),
                max,
                what,
            });
        }
        frame.extend(bytes);
        self.frames.push(frame);
        Ok(())
    }

    /// The message, or `None` when a segment was already reported broken.
    fn finish(self) -> Option<Result<Message, Elm327Error>> {
        if self.broken {
            return None;
        }
        let frames: Vec<&[u8]> = self.frames.iter().map(Vec::as_slice).collect();
        Some(
            isotp::reassemble(&frames)
                .map(|payload| Message {
                    header: None,
                    payload,
                })
                .map_err(|source| Elm327Error::IsoTp {
                    header: None,
                    source,
                }),
        )
    }
}

fn parse_without_headers(lines: &[&str], read: &mut Read) {
    let mut block: Option<Block> = None;
    let finish = |block: Option<Block>, read: &mut Read| {
        if let Some(result) = block.and_then(Block::finish) {
            read.push(result);
        }
    };
    for &line in lines {
        if let Some(len) = byte_count(line) {
            finish(block.take(), read);
            block = Some(Block::new(len));
        } else if let Some((index, rest)) = segment(line) {
            let Some(open) = block.as_mut() else {
                read.errors.push(Elm327Error::OrphanSegment {
                    line: line.to_owned(),
                });
                continue;
            };
            if open.broken {
                continue;
            }
            if let Err(e) = hex_bytes(rest, line).and_then(|bytes| open.push(index, bytes)) {
                open.broken = true;
                read.errors.push(e);
            }
        } else {
            finish(block.take(), read);
            read.push(hex_bytes(line, line).map(|payload| Message {
                header: None,
                payload,
            }));
        }
    }
    finish(block, read);
}

/// The `014` line before a headers-off multi-frame block: exactly three hex digits, a count
/// no data line can be confused with, since data bytes always come in pairs.
fn byte_count(line: &str) -> Option<usize> {
    (line.len() == 3 && line.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| usize::from_str_radix(line, 16).ok())
        .flatten()
}

/// `3: 42 31 ..` or `3:4231..`: one hex digit, a colon, the segment's bytes.
fn segment(line: &str) -> Option<(u8, &str)> {
    let (index, rest) = line.split_once(':')?;
    let index = index.trim();
    let digit = u8::from_str_radix(index, 16)
        .ok()
        .filter(|_| index.len() == 1)?;
    Some((digit, rest))
}

// ---- CAN, headers on ----------------------------------------------------------------------

/// One ECU's frames, split into messages: each single or first frame starts a new one.
#[derive(Debug)]
struct EcuFrames {
    header: CanId,
    messages: Vec<Vec<Vec<u8>>>,
}

fn parse_with_headers(lines: &[&str], width: IdWidth, read: &mut Read) {
    let mut ecus: Vec<EcuFrames> = Vec::new();
    for &line in lines {
        let decoded = header_line(line, width).and_then(|(header, frame)| {
            let (pci, _) = Pci::decode(&frame).map_err(|source| Elm327Error::IsoTp {
                header: Some(header),
                source,
            })?;
            Ok((header, frame, pci))
        });
        let (header, frame, pci) = match decoded {
            Ok(d) => d,
            Err(e) => {
                read.errors.push(e);
                continue;
            }
        };
        let index = match ecus.iter().position(|e| e.header == header) {
            Some(index) => index,
            None => {
                ecus.push(EcuFrames {
                    header,
                    messages: Vec::new(),
                });
                ecus.len() - 1
            }
        };
        let Some(ecu) = ecus.get_mut(index) else {
            continue;
        };
        match (pci, ecu.messages.last_mut()) {
            (Pci::Consecutive { .. }, Some(open)) => open.push(frame),
            _ => ecu.messages.push(vec![frame]),
        }
    }
    for ecu in ecus {
        for frames in ecu.messages {
            let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            read.push(
                isotp::reassemble(&frames)
                    .map(|payload| Message {
                        header: Some(EcuId::Can(ecu.header)),
                        payload,
                    })
                    .map_err(|source| Elm327Error::IsoTp {
                        header: Some(ecu.header),
                        source,
                    }),
            );
        }
    }
}

/// Splits `7E8 06 41 ..` / `18 DA F1 10 06 ..` / `7E80641..` into the id and the frame bytes.
/// With spaces on, the id must be printed the way the adapter does for `width` (one 3-digit
/// group, or four byte groups), so a line of the other width is rejected, not misread.
fn header_line(line: &str, width: IdWidth) -> Result<(CanId, Vec<u8>), Elm327Error> {
    let bad = || Elm327Error::BadHeader {
        line: line.to_owned(),
        width,
    };
    if line.contains(|c: char| c.is_ascii_whitespace()) && !spaced_header_ok(line, width) {
        return Err(bad());
    }
    let compact: String = line.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let (id_text, rest) = compact.split_at_checked(width.digits()).ok_or_else(bad)?;
    if !id_text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let raw = u32::from_str_radix(id_text, 16).map_err(|_| bad())?;
    let id = match width {
        IdWidth::Bits11 => CanId::standard(raw),
        IdWidth::Bits29 => CanId::extended(raw),
    }
    .map_err(|_| bad())?;
    let frame = hex_bytes(rest, line)?;
    if frame.len() > isotp::pci::CAN_FRAME_LEN {
        return Err(Elm327Error::FrameTooLong {
            header: id,
            len: frame.len(),
        });
    }
    Ok((id, frame))
}

fn spaced_header_ok(line: &str, width: IdWidth) -> bool {
    let mut groups = line.split_ascii_whitespace();
    match width {
        IdWidth::Bits11 => groups.next().is_some_and(|g| g.len() == 3),
        IdWidth::Bits29 => groups.take(4).filter(|g| g.len() == 2).count() == 4,
    }
}

// ---- the older buses ----------------------------------------------------------------------

/// Each line one message: with headers, checked and grouped by sender, then joined per ECU;
/// without, all joined as one sender's.
///
/// A line with a bad check byte is reported and left out. When its header still names a
/// sender and its first data bytes a DTC list or a numbered Mode 09 infotype, that ECU's
/// answer of the same kind is dropped too ([`Elm327Error::DamagedAnswer`]): joined without
/// the damaged line it would look whole, a code list silently shorter.
fn parse_legacy(lines: &[&str], protocol: legacy::Protocol, headers: bool, read: &mut Read) {
    // Senders in the order they first answered, each with its messages' data.
    let mut senders: Vec<(Option<u8>, Vec<Vec<u8>>)> = Vec::new();
    // (sender, first data bytes) of the damaged lines.
    let mut damaged: Vec<(u8, Vec<u8>)> = Vec::new();
    for &line in lines {
        let bytes = match hex_bytes(line, line) {
            Ok(bytes) => bytes,
            Err(e) => {
                read.errors.push(e);
                continue;
            }
        };
        let (sender, data) = if headers {
            match protocol.decode(&bytes) {
                Ok(frame) => (Some(frame.source()), frame.data),
                Err(source) => {
                    if let [_, _, sender, data @ ..] = bytes.as_slice()
                        && data.len() > 1
                    {
                        damaged.push((*sender, data.iter().take(2).copied().collect()));
                    }
                    read.errors.push(Elm327Error::LegacyLine {
                        line: line.to_owned(),
                        source,
                    });
                    continue;
                }
            }
        } else {
            (None, bytes)
        };
        match senders.iter_mut().find(|(s, _)| *s == sender) {
            Some((_, messages)) => messages.push(data),
            None => senders.push((sender, vec![data])),
        }
    }
    for (sender, messages) in senders {
        for answer in legacy::join_answers(&messages) {
            let answer = answer
                .map_err(|source| Elm327Error::LegacyJoin {
                    source_address: sender,
                    source,
                })
                .and_then(|payload| match sender {
                    Some(address) if lost_a_part(&damaged, address, &payload) => {
                        Err(Elm327Error::DamagedAnswer {
                            source_address: address,
                            sid: payload.first().copied().unwrap_or_default(),
                        })
                    }
                    _ => Ok(payload),
                });
            read.push(answer.map(|payload| Message {
                header: sender.map(EcuId::Node),
                payload,
            }));
        }
    }
}

/// Whether a damaged line from `sender` was probably part of `answer`: the same service and,
/// for Mode 09, the same infotype, in an answer that comes in several messages.
fn lost_a_part(damaged: &[(u8, Vec<u8>)], sender: u8, answer: &[u8]) -> bool {
    legacy::is_segmented(answer)
        && damaged.iter().any(|(s, start)| {
            *s == sender
                && match (start.as_slice(), answer) {
                    ([0x49, infotype, ..], [0x49, of, ..]) => infotype == of,
                    ([sid, ..], [of, ..]) => sid == of,
                    _ => false,
                }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(cmd: &str) -> ParseOptions {
        ParseOptions::new(cmd)
    }

    fn headers(cmd: &str, width: IdWidth) -> ParseOptions {
        ParseOptions {
            headers: true,
            bus: Bus::Can(width),
            ..ParseOptions::new(cmd)
        }
    }

    fn msg(header: Option<CanId>, payload: &[u8]) -> Message {
        Message {
            header: header.map(EcuId::Can),
            payload: payload.to_vec(),
        }
    }

    fn std_id(id: u16) -> Option<CanId> {
        Some(CanId::Standard(id))
    }

    /// "1D4GP00R55B123456": the VIN bytes of the data sheet's multi-line example layout.
    const VIN_PAYLOAD: [u8; 20] = [
        0x49, 0x02, 0x01, 0x31, 0x44, 0x34, 0x47, 0x50, 0x30, 0x30, 0x52, 0x35, 0x35, 0x42, 0x31,
        0x32, 0x33, 0x34, 0x35, 0x36,
    ];

    // ---- ReplyBuffer ----

    #[test]
    fn buffer_cuts_at_prompts_and_drops_nul() {
        let mut b = ReplyBuffer::new();
        assert!(b.push(b"41 0C").is_empty());
        assert_eq!(b.pending(), 5);
        let out = b.push(b" 1A F8 \r\r>\0ATZ\r\r\rELM327 v1.5\r\r>");
        assert_eq!(
            out,
            vec![
                Ok("41 0C 1A F8 \r\r".to_owned()),
                Ok("ATZ\r\r\rELM327 v1.5\r\r".to_owned())
            ]
        );
        assert_eq!(b.pending(), 0);
        assert_eq!(b.push(b"\0\0O\0K\r\r>"), vec![Ok("OK\r\r".to_owned())]);
    }

    #[test]
    fn buffer_rejects_non_text() {
        let mut b = ReplyBuffer::new();
        assert_eq!(
            b.push(b"4\xFF1\r>"),
            vec![Err(Elm327Error::NotText {
                byte: 0xFF,
                offset: 1
            })]
        );
        assert_eq!(b.push(b"OK\r>"), vec![Ok("OK\r".to_owned())]);
    }

    #[test]
    fn buffer_is_bounded_and_resynchronises() {
        let mut b = ReplyBuffer::new();
        let garbage = vec![b'A'; MAX_REPLY_LEN + 100];
        assert_eq!(
            b.push(&garbage),
            vec![Err(Elm327Error::Overlong {
                limit: MAX_REPLY_LEN
            })]
        );
        assert_eq!(b.pending(), 0);
        assert!(
            b.push(&garbage).is_empty(),
            "still discarding, no second error"
        );
        assert_eq!(b.pending(), 0);
        assert_eq!(
            b.push(b"tail>NO DATA\r\r>"),
            vec![Ok("NO DATA\r\r".to_owned())]
        );
        // Exactly the limit is still a reply.
        let mut full = vec![b'7'; MAX_REPLY_LEN];
        full.push(PROMPT);
        assert_eq!(b.push(&full).len(), 1);
        assert!(b.push(&full).first().is_some_and(Result::is_ok));
    }

    #[test]
    fn buffer_clear_forgets_partial_reply() {
        let mut b = ReplyBuffer::new();
        b.push(b"41 0C");
        b.clear();
        assert_eq!(b.push(b"OK\r>"), vec![Ok("OK\r".to_owned())]);
    }

    // ---- AT replies ----

    #[test]
    fn at_replies() {
        assert_eq!(parse_reply("OK\r\r", &data("ATE0")), Ok(Reply::Ok));
        // ATE0 sent while echo is still on: its reply carries the echo.
        let echo = ParseOptions {
            echo: true,
            ..data("ATE0\r")
        };
        assert_eq!(parse_reply("ATE0\rOK\r\r", &echo), Ok(Reply::Ok));
        let atz = ParseOptions {
            echo: true,
            ..data("AT Z")
        };
        assert_eq!(
            parse_reply("ATZ\r\r\rELM327 v1.5\r\r", &atz),
            Ok(Reply::Text("ELM327 v1.5".into()))
        );
        assert_eq!(
            parse_reply("12.3V\r\r", &data("ATRV")),
            Ok(Reply::Text("12.3V".into()))
        );
        assert_eq!(
            parse_reply("AUTO, ISO 15765-4 (CAN 11/500)\r\r", &data("ATDP")),
            Ok(Reply::Text("AUTO, ISO 15765-4 (CAN 11/500)".into()))
        );
        // "A6" and "6" look like hex, but an AT command's answer is text.
        assert_eq!(
            parse_reply("A6\r\r", &data("ATDPN")),
            Ok(Reply::Text("A6".into()))
        );
        assert_eq!(
            parse_reply("6\r\n\r\n", &data("atdpn")),
            Ok(Reply::Text("6".into()))
        );
        assert_eq!(
            parse_reply("?\r\r", &data("ATXYZ")),
            Err(Elm327Error::Adapter(Condition::UnknownCommand))
        );
        assert_eq!(
            parse_reply("\r\r", &data("ATI")),
            Err(Elm327Error::EmptyReply)
        );
    }

    #[test]
    fn echo_must_match_when_on() {
        let opts = ParseOptions {
            echo: true,
            ..data("010C\r")
        };
        assert_eq!(
            parse_reply("010C\r41 0C 1A F8 \r\r", &opts),
            Ok(Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]))
        );
        // Typed with a space, echoed as typed.
        let opts = ParseOptions {
            echo: true,
            ..data("01 0C")
        };
        assert_eq!(
            parse_reply("01 0C\r410C1AF8\r\r", &opts),
            Ok(Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]))
        );
        assert_eq!(
            parse_reply(
                "010D\r41 0D 00\r\r",
                &ParseOptions {
                    echo: true,
                    ..data("010C")
                }
            ),
            Err(Elm327Error::EchoMismatch {
                expected: "010C".into(),
                got: "010D".into()
            })
        );
        // Echo present although the caller thinks it is off: still dropped.
        assert_eq!(
            parse_reply("010C\r410C1AF8\r\r", &data("010C")),
            Ok(Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]))
        );
        // Repeat-last-command (empty line): no echo to drop.
        let repeat = ParseOptions {
            echo: true,
            ..data("\r")
        };
        assert_eq!(
            parse_reply("\r410C1AF8\r\r", &repeat),
            Ok(Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]))
        );
    }

    // ---- headers off ----

    #[test]
    fn headers_off_single_frames() {
        let want = Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]);
        assert_eq!(
            parse_reply("41 0C 1A F8 \r\r", &data("010C")),
            Ok(want.clone())
        );
        assert_eq!(parse_reply("410C1AF8\r\r", &data("010C")), Ok(want));
        // Two ECUs answer the functional 0100: one message per line, indistinguishable.
        let two = "41 00 BE 3F A8 13 \r41 00 98 18 80 10 \r\r";
        assert_eq!(
            parse_reply(two, &data("0100")),
            Ok(Reply::messages(vec![
                msg(None, &[0x41, 0x00, 0xBE, 0x3F, 0xA8, 0x13]),
                msg(None, &[0x41, 0x00, 0x98, 0x18, 0x80, 0x10]),
            ]))
        );
    }

    // Data sheet "Multiline Responses": VIN with CAF1 and headers off, byte count 0x014 = 20.
    #[test]
    fn headers_off_multi_frame_vin() {
        let want = Ok(Reply::messages(vec![msg(None, &VIN_PAYLOAD)]));
        let spaced =
            "014\r0: 49 02 01 31 44 34 \r1: 47 50 30 30 52 35 35 \r2: 42 31 32 33 34 35 36 \r\r";
        assert_eq!(parse_reply(spaced, &data("0902")), want);
        let compact = "014\r0:490201314434\r1:47503030523535\r2:42313233343536\r\r";
        assert_eq!(parse_reply(compact, &data("0902")), want);
        // A count of 0x013 drops the last byte as padding.
        let padded =
            "013\r0: 49 02 01 31 44 34\r1: 47 50 30 30 52 35 35\r2: 42 31 32 33 34 35 36\r";
        assert_eq!(
            parse_reply(padded, &data("0902")),
            Ok(Reply::messages(vec![msg(
                None,
                VIN_PAYLOAD.get(..19).unwrap()
            )]))
        );
    }

    #[test]
    fn headers_off_multi_frame_then_single_frame() {
        let text = "SEARCHING...\r014\r0: 49 02 01 31 44 34\r1: 47 50 30 30 52 35 35\r2: 42 31 32 33 34 35 36\r49 02 01 00 \r\r";
        assert_eq!(
            parse_reply(text, &data("0902")),
            Ok(Reply::messages(vec![
                msg(None, &VIN_PAYLOAD),
                msg(None, &[0x49, 0x02, 0x01, 0x00])
            ]))
        );
    }

    #[test]
    fn headers_off_multi_frame_errors() {
        let short = "014\r0: 49 02 01 31 44 34\r1: 47 50 30 30 52 35 35\r\r";
        assert_eq!(
            parse_reply(short, &data("0902")),
            Err(Elm327Error::IsoTp {
                header: None,
                source: IsoTpError::Incomplete {
                    got: 13,
                    expected: 20
                }
            })
        );
        let skipped = "014\r0: 49 02 01 31 44 34\r2: 42 31 32 33 34 35 36\r\r";
        assert_eq!(
            parse_reply(skipped, &data("0902")),
            Err(Elm327Error::IsoTp {
                header: None,
                source: IsoTpError::WrongSequence {
                    expected: 1,
                    got: 2
                }
            })
        );
        assert_eq!(
            parse_reply("1: 47 50\r", &data("0902")),
            Err(Elm327Error::OrphanSegment {
                line: "1: 47 50".into()
            })
        );
        assert_eq!(
            parse_reply("014\r0: 49 02 01 31 44 34 47\r", &data("0902")),
            Err(Elm327Error::SegmentTooLong {
                index: 0,
                len: 7,
                max: 6,
                what: "first frame"
            })
        );
        assert!(matches!(
            parse_reply("014\r1: 49 02 01 31 44 34\r", &data("0902")),
            Err(Elm327Error::IsoTp { header: None, .. })
        ));
    }

    #[test]
    fn bad_hex_is_named() {
        assert_eq!(
            parse_reply("41 0C 1A F\r", &data("010C")),
            Err(Elm327Error::OddDigits {
                line: "41 0C 1A F".into(),
                digits: 7
            })
        );
        assert_eq!(
            parse_reply("41 0C ZZ\r", &data("010C")),
            Err(Elm327Error::NotHex("41 0C ZZ".into()))
        );
        assert_eq!(
            parse_reply("OK\r", &data("010C")),
            Err(Elm327Error::NotHex("OK".into()))
        );
    }

    // ---- headers on ----

    // Data sheet "Setting the Headers": `01 00` with headers on, padding after the SF payload.
    #[test]
    fn headers_on_11_bit_single_frames() {
        let want = Ok(Reply::messages(vec![msg(
            std_id(0x7E8),
            &[0x41, 0x00, 0xBE, 0x3F, 0xB8, 0x13],
        )]));
        let opts = headers("0100", IdWidth::Bits11);
        assert_eq!(parse_reply("7E8 06 41 00 BE 3F B8 13 00 \r\r", &opts), want);
        assert_eq!(parse_reply("7E8064100BE3FB81300\r\r", &opts), want);
        assert_eq!(
            parse_reply(
                "7E8 03 41 05 46 00 00 00 00 \r\r",
                &headers("0105", IdWidth::Bits11)
            ),
            Ok(Reply::messages(vec![msg(
                std_id(0x7E8),
                &[0x41, 0x05, 0x46]
            )]))
        );
    }

    // Data sheet "Multiline Responses" (0904 answered by two ECUs), here interleaved on the bus
    // and with a single-frame answer from a third ECU.
    #[test]
    fn headers_on_multi_ecu_interleaved() {
        let text = "7E8 10 13 49 04 01 35 36 30 \r\
                    7E9 10 13 49 04 01 35 36 30 \r\
                    7EA 03 7F 09 11 \r\
                    7E8 21 32 38 39 34 39 41 43 \r\
                    7E9 21 32 38 39 35 34 41 43 \r\
                    7E9 22 00 00 00 00 00 00 00 \r\
                    7E8 22 00 00 00 00 00 00 31 \r\r";
        let ecu1 = [
            0x49, 0x04, 0x01, 0x35, 0x36, 0x30, 0x32, 0x38, 0x39, 0x34, 0x39, 0x41, 0x43, 0, 0, 0,
            0, 0, 0,
        ];
        let ecu2 = [
            0x49, 0x04, 0x01, 0x35, 0x36, 0x30, 0x32, 0x38, 0x39, 0x35, 0x34, 0x41, 0x43, 0, 0, 0,
            0, 0, 0,
        ];
        assert_eq!(
            parse_reply(text, &headers("0904", IdWidth::Bits11)),
            Ok(Reply::messages(vec![
                msg(std_id(0x7E8), &ecu1),
                msg(std_id(0x7E9), &ecu2),
                msg(std_id(0x7EA), &[0x7F, 0x09, 0x11]),
            ]))
        );
    }

    #[test]
    fn headers_on_vin_spaces_off() {
        let text = "7E81014490201314434\r7E82147503030523535\r7E82242313233343536\r\r";
        assert_eq!(
            parse_reply(text, &headers("0902", IdWidth::Bits11)),
            Ok(Reply::messages(vec![msg(std_id(0x7E8), &VIN_PAYLOAD)]))
        );
    }

    #[test]
    fn headers_on_29_bit() {
        let want = Ok(Reply::messages(vec![msg(
            Some(CanId::Extended(0x18DA_F110)),
            &[0x41, 0x0C, 0x1A, 0xF8],
        )]));
        let opts = headers("010C", IdWidth::Bits29);
        assert_eq!(
            parse_reply("18 DA F1 10 04 41 0C 1A F8 AA AA AA \r\r", &opts),
            want
        );
        assert_eq!(parse_reply("18DAF11004410C1AF8AAAAAA\r\r", &opts), want);
        // An 11-bit line while 29-bit is expected, and the other way round.
        assert_eq!(
            parse_reply("7E8 04 41 0C 1A F8\r", &opts),
            Err(Elm327Error::BadHeader {
                line: "7E8 04 41 0C 1A F8".into(),
                width: IdWidth::Bits29
            })
        );
        assert!(matches!(
            parse_reply(
                "18 DA F1 10 04 41 0C 1A F8\r",
                &headers("010C", IdWidth::Bits11)
            ),
            Err(Elm327Error::BadHeader { .. })
        ));
        // Compact 11-bit text misread as 29-bit overflows 29 bits.
        assert!(matches!(
            parse_reply("7E804410C1AF8\r", &opts),
            Err(Elm327Error::BadHeader { .. })
        ));
    }

    #[test]
    fn headers_on_wrong_lengths_are_errors() {
        let opts = headers("0100", IdWidth::Bits11);
        // PCI says 6 bytes, the line holds 3 after it.
        let err = parse_reply("7E8 06 41 00 BE\r", &opts).unwrap_err();
        assert_eq!(
            err,
            Elm327Error::IsoTp {
                header: std_id(0x7E8),
                source: IsoTpError::FrameTooShort {
                    kind: isotp::FrameKind::Single,
                    needed: 7,
                    got: 4
                }
            }
        );
        assert!(err.to_string().contains("7E8"), "{err}");
        assert_eq!(
            parse_reply("7E8 06 41 00 BE 3F B8 13 00 00\r", &opts),
            Err(Elm327Error::FrameTooLong {
                header: CanId::Standard(0x7E8),
                len: 9
            })
        );
        // First frame announcing 20 bytes, only one consecutive frame.
        assert_eq!(
            parse_reply(
                "7E8 10 14 49 02 01 31 44 34\r7E8 21 47 50 30 30 52 35 35\r",
                &opts
            ),
            Err(Elm327Error::IsoTp {
                header: std_id(0x7E8),
                source: IsoTpError::Incomplete {
                    got: 13,
                    expected: 20
                }
            })
        );
        assert!(matches!(
            parse_reply("7E8\r", &opts),
            Err(Elm327Error::IsoTp {
                source: IsoTpError::EmptyFrame,
                ..
            })
        ));
        assert!(matches!(
            parse_reply("7E\r", &opts),
            Err(Elm327Error::BadHeader { .. })
        ));
        assert!(matches!(
            parse_reply("7E8 21 47 50\r", &opts),
            Err(Elm327Error::IsoTp { .. })
        ));
    }

    // ---- the older buses ----

    fn legacy_opts(cmd: &str, protocol: legacy::Protocol, headers: bool) -> ParseOptions {
        ParseOptions {
            headers,
            bus: Bus::Legacy(protocol),
            ..ParseOptions::new(cmd)
        }
    }

    fn node(address: u8, payload: &str) -> Message {
        Message {
            header: Some(EcuId::Node(address)),
            payload: hexes(payload),
        }
    }

    fn hexes(text: &str) -> Vec<u8> {
        text.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn bus_from_protocol_number() {
        use legacy::Protocol as P;
        let cases = [
            ("1", Some(Bus::Legacy(P::J1850Pwm))),
            ("A2", Some(Bus::Legacy(P::J1850Vpw))),
            ("3\r", Some(Bus::Legacy(P::Iso9141))),
            ("A3", Some(Bus::Legacy(P::Iso9141))),
            ("4", Some(Bus::Legacy(P::Kwp5Baud))),
            ("A5", Some(Bus::Legacy(P::KwpFast))),
            ("6", Some(Bus::Can(IdWidth::Bits11))),
            ("A7", Some(Bus::Can(IdWidth::Bits29))),
            ("A", Some(Bus::Can(IdWidth::Bits29))),
            ("AA", Some(Bus::Can(IdWidth::Bits29))),
            ("0", None),
            ("B", None),
            ("A0", None),
            ("", None),
        ];
        for (answer, want) in cases {
            assert_eq!(Bus::from_protocol_number(answer), want, "{answer:?}");
        }
        assert_eq!(Bus::Legacy(P::Iso9141).to_string(), "ISO 9141-2");
        assert_eq!(Bus::default().to_string(), "ISO 15765-4 CAN 11-bit");
    }

    // Two ECUs answering 01 00, in each protocol (LTOBD2 on J1850, a capture on KWP).
    #[test]
    fn legacy_headers_on_two_ecus() {
        use legacy::Protocol as P;
        let cases = [
            (
                P::J1850Pwm,
                "41 6B 10 41 00 B8 7B 30 10 9E \r41 6B 17 41 00 80 00 80 03 C9 \r\r",
                [(0x10, "41 00 B8 7B 30 10"), (0x17, "41 00 80 00 80 03")],
            ),
            (
                P::J1850Vpw,
                "486B104100B87B3010F4\r486B17410080008003A3\r",
                [(0x10, "41 00 B8 7B 30 10"), (0x17, "41 00 80 00 80 03")],
            ),
            (
                P::KwpFast,
                "86 F1 10 41 00 BE 3F E8 11 BE\r86 F1 18 41 00 80 00 00 01 51\r",
                [(0x10, "41 00 BE 3F E8 11"), (0x18, "41 00 80 00 00 01")],
            ),
        ];
        for (protocol, text, want) in cases {
            let want = want.iter().map(|(a, p)| node(*a, p)).collect();
            assert_eq!(
                parse_reply(text, &legacy_opts("0100", protocol, true)),
                Ok(Reply::messages(want)),
                "{protocol}"
            );
        }
    }

    // scantool.net simulator: ECU 10 has six codes in two lines, ECU 18 one; the lines of the
    // two ECUs interleave. The same codes in every protocol.
    #[test]
    fn legacy_dtcs_from_two_ecus_are_joined_per_ecu() {
        use legacy::Protocol as P;
        let cases = [
            (
                P::J1850Pwm,
                [
                    "41 6B 10 43 01 00 02 00 03 00 43",
                    "41 6B 18 43 01 01 00 00 00 00 18",
                    "41 6B 10 43 43 00 82 00 C1 00 11",
                ],
            ),
            (
                P::J1850Vpw,
                [
                    "48 6B 10 43 01 00 02 00 03 00 05",
                    "48 6B 18 43 01 01 00 00 00 00 5E",
                    "48 6B 10 43 43 00 82 00 C1 00 57",
                ],
            ),
            (
                P::Iso9141,
                [
                    "48 6B 10 43 01 00 02 00 03 00 0C",
                    "48 6B 18 43 01 01 00 00 00 00 10",
                    "48 6B 10 43 43 00 82 00 C1 00 8C",
                ],
            ),
            (
                P::Kwp5Baud,
                [
                    "87 F1 10 43 01 00 02 00 03 00 D1",
                    "87 F1 18 43 01 01 00 00 00 00 D5",
                    "87 F1 10 43 43 00 82 00 C1 00 51",
                ],
            ),
        ];
        for (protocol, lines) in cases {
            let text = format!("BUS INIT: ...OK\r{}\r\r", lines.join("\r"));
            let reply = parse_reply(&text, &legacy_opts("03", protocol, true));
            assert_eq!(
                reply,
                Ok(Reply::messages(vec![
                    node(0x10, "43 01 00 02 00 03 00 43 00 82 00 C1 00"),
                    node(0x18, "43 01 01"),
                ])),
                "{protocol}"
            );
            let Ok(Reply::Messages { messages, .. }) = reply else {
                unreachable!()
            };
            let codes: Vec<String> = messages
                .iter()
                .flat_map(|m| match crate::service::Response::parse(&m.payload) {
                    Ok(crate::service::Response::Dtcs { dtcs, .. }) => dtcs,
                    other => panic!("{other:?}"),
                })
                .map(|d| d.to_string())
                .collect();
            assert_eq!(
                codes,
                [
                    "P0100", "P0200", "P0300", "C0300", "B0200", "U0100", "P0101"
                ]
            );
        }
    }

    // A capture: the ISO 9141-2 VIN, five lines, here out of order and spaces off.
    #[test]
    fn legacy_vin_with_and_without_headers() {
        let with = "486B1149020335343434E3\r486B114902010000003141\r486B1149020241314A4310\r\
                    486B114902045237323503\r486B1149020532333637E6\r\r";
        let mut want = vec![0x49, 0x02, 0x01];
        want.extend_from_slice(b"1A1JC5444R7252367");
        assert_eq!(
            parse_reply(with, &legacy_opts("0902", legacy::Protocol::Iso9141, true)),
            Ok(Reply::messages(vec![Message {
                header: Some(EcuId::Node(0x11)),
                payload: want.clone()
            }]))
        );
        // Data sheet "Multiline Responses": the J1850 VIN as printed with headers off.
        let without = "SEARCHING...\r49 02 01 00 00 00 31 \r49 02 02 44 34 47 50 \r\
                       49 02 03 30 30 52 35 \r49 02 04 35 42 31 32 \r49 02 05 33 34 35 36 \r\r";
        assert_eq!(
            parse_reply(
                without,
                &legacy_opts("0902", legacy::Protocol::J1850Pwm, false)
            ),
            Ok(Reply::messages(vec![msg(None, &VIN_PAYLOAD)]))
        );
    }

    #[test]
    fn legacy_headers_off_joins_what_belongs_together() {
        let opts = legacy_opts("03", legacy::Protocol::Iso9141, false);
        // Two ECUs' DTC lines: one list (the senders are unknown).
        assert_eq!(
            parse_reply("43 01 33 00 00 00 00\r43 04 20 00 00 00 00\r\r", &opts),
            Ok(Reply::messages(vec![msg(
                None,
                &[0x43, 0x01, 0x33, 0x04, 0x20]
            )]))
        );
        // Two ECUs' 01 00: two answers.
        let opts = legacy_opts("0100", legacy::Protocol::KwpFast, false);
        assert_eq!(
            parse_reply(
                "BUS INIT: OK\r41 00 BE 3F E8 11\r41 00 80 00 00 01\r",
                &opts
            ),
            Ok(Reply::messages(vec![
                msg(None, &[0x41, 0x00, 0xBE, 0x3F, 0xE8, 0x11]),
                msg(None, &[0x41, 0x00, 0x80, 0x00, 0x00, 0x01]),
            ]))
        );
    }

    #[test]
    fn one_bad_check_byte_among_good_lines() {
        let opts = legacy_opts("0100", legacy::Protocol::Iso9141, true);
        // ECU 18's line has a wrong check byte (AB for AA); ECU 10's survives.
        let text = "48 6B 10 41 00 BE 1F B8 11 AA\r48 6B 18 41 00 BE 1F B8 11 B3\r\r";
        assert_eq!(
            parse_reply(text, &opts),
            Ok(Reply::Messages {
                messages: vec![node(0x10, "41 00 BE 1F B8 11")],
                errors: vec![Elm327Error::LegacyLine {
                    line: "48 6B 18 41 00 BE 1F B8 11 B3".into(),
                    source: FrameError::CheckByte {
                        protocol: legacy::Protocol::Iso9141,
                        expected: 0xB2,
                        got: 0xB3
                    }
                }]
            })
        );
        // Alone, it is the reply's error, and says which line.
        let err = parse_reply("48 6B 18 41 00 BE 1F B8 11 B3\r", &opts).unwrap_err();
        assert!(
            err.to_string().contains("48 6B 18 41 00 BE 1F B8 11 B3"),
            "{err}"
        );
        assert!(err.to_string().contains("0xB2"), "{err}");
    }

    #[test]
    fn a_damaged_dtc_line_drops_only_that_ecus_list() {
        // scantool.net on ISO 9141-2, ECU 10's second line damaged (8D for 8C).
        let text = "48 6B 10 43 01 00 02 00 03 00 0C\r48 6B 10 43 43 00 82 00 C1 00 8D\r\
                    48 6B 18 43 01 01 00 00 00 00 10\r48 6B 10 41 0D 20 31\r";
        let Ok(Reply::Messages { messages, errors }) =
            parse_reply(text, &legacy_opts("03", legacy::Protocol::Iso9141, true))
        else {
            panic!()
        };
        // ECU 18's list and ECU 10's unrelated single message survive; ECU 10's list does not
        // come out three codes short.
        assert_eq!(
            messages,
            vec![node(0x10, "41 0D 20"), node(0x18, "43 01 01")]
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(matches!(errors[0], Elm327Error::LegacyLine { .. }));
        assert_eq!(
            errors[1],
            Elm327Error::DamagedAnswer {
                source_address: 0x10,
                sid: 0x43
            }
        );
    }

    #[test]
    fn legacy_flagged_and_garbled_lines() {
        let opts = legacy_opts("0100", legacy::Protocol::Iso9141, false);
        // The adapter checks the sum itself and flags the line; the other answer survives.
        assert_eq!(
            parse_reply("41 00 BE 1F B8 11 <DATA ERROR\r41 00 80 00 00 01\r", &opts),
            Ok(Reply::Messages {
                messages: vec![msg(None, &[0x41, 0x00, 0x80, 0x00, 0x00, 0x01])],
                errors: vec![Elm327Error::Flagged {
                    condition: Condition::DataError,
                    line: "41 00 BE 1F B8 11".into()
                }]
            })
        );
        let with = legacy_opts("0902", legacy::Protocol::J1850Vpw, true);
        // A VIN missing its third line: the ECU's answer is an error naming the part.
        let text = "48 6B 10 49 02 01 00 00 00 57 B3\r48 6B 10 49 02 02 44 58 2D 53 99\r\
                    48 6B 10 49 02 04 31 39 32 31 B6\r48 6B 10 49 02 05 32 33 34 35 A8\r";
        assert_eq!(
            parse_reply(text, &with),
            Err(Elm327Error::LegacyJoin {
                source_address: Some(0x10),
                source: JoinError::MissingPart {
                    infotype: 2,
                    number: 3,
                    count: 4
                }
            })
        );
        assert!(matches!(
            parse_reply("48 6B\r", &with),
            Err(Elm327Error::LegacyLine {
                source: FrameError::TooShort { len: 2 },
                ..
            })
        ));
        assert!(matches!(
            parse_reply("48 6B 1\r", &with),
            Err(Elm327Error::OddDigits { .. })
        ));
        // Bus init failures and other conditions are the reply's outcome, as on CAN.
        assert_eq!(
            parse_reply("BUS INIT: ...ERROR\r\r", &with),
            Err(Elm327Error::Adapter(Condition::BusInitError))
        );
        assert_eq!(
            parse_reply("BUS INIT: ERROR\r\r", &with),
            Err(Elm327Error::Adapter(Condition::BusInitError))
        );
        assert_eq!(parse_reply("NO DATA\r\r", &with), Ok(Reply::NoData));
        assert_eq!(
            parse_reply("BUS ERROR\r\r", &with),
            Err(Elm327Error::Adapter(Condition::BusError))
        );
    }

    #[test]
    fn a_broken_can_ecu_does_not_cost_the_others() {
        // 7E8's VIN stops after its first frame; 7E9 answers whole.
        let text = "7E8 10 14 49 02 01 31 44 34\r7E9 06 41 00 98 18 80 10 \r\r";
        assert_eq!(
            parse_reply(text, &headers("0100", IdWidth::Bits11)),
            Ok(Reply::Messages {
                messages: vec![msg(std_id(0x7E9), &[0x41, 0x00, 0x98, 0x18, 0x80, 0x10])],
                errors: vec![Elm327Error::IsoTp {
                    header: std_id(0x7E8),
                    source: IsoTpError::Incomplete {
                        got: 6,
                        expected: 20
                    }
                }]
            })
        );
        // A garbled line beside a good one, headers off.
        assert_eq!(
            parse_reply("41 0C 1A F8\r41 0C ZZ\r", &data("010C")),
            Ok(Reply::Messages {
                messages: vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])],
                errors: vec![Elm327Error::NotHex("41 0C ZZ".into())]
            })
        );
    }

    // ---- status lines and conditions ----

    #[test]
    fn status_lines_are_skipped() {
        let opts = headers("0100", IdWidth::Bits11);
        let want = Ok(Reply::messages(vec![msg(
            std_id(0x7E8),
            &[0x41, 0x00, 0xBE, 0x3F, 0xB8, 0x13],
        )]));
        assert_eq!(
            parse_reply("SEARCHING...\r7E8 06 41 00 BE 3F B8 13 00\r\r", &opts),
            want
        );
        assert_eq!(
            parse_reply("BUS INIT: ...OK\r41 00 BE 3F B8 13\r\r", &data("0100")),
            Ok(Reply::messages(vec![msg(
                None,
                &[0x41, 0x00, 0xBE, 0x3F, 0xB8, 0x13]
            )]))
        );
        assert_eq!(
            parse_reply("SEARCHING...\rNO DATA\r\r", &data("0100")),
            Ok(Reply::NoData)
        );
        assert_eq!(parse_reply("NO DATA\r\r", &opts), Ok(Reply::NoData));
    }

    #[test]
    fn every_condition_text() {
        let cases = [
            ("?", Condition::UnknownCommand),
            ("ACT ALERT", Condition::ActivityAlert),
            ("!ACT ALERT", Condition::ActivityAlert),
            ("BUFFER FULL", Condition::BufferFull),
            ("BUS BUSY", Condition::BusBusy),
            ("BUS ERROR", Condition::BusError),
            ("BUS INIT: ...ERROR", Condition::BusInitError),
            ("CAN ERROR", Condition::CanError),
            ("DATA ERROR", Condition::DataError),
            ("FB ERROR", Condition::FeedbackError),
            ("LP ALERT", Condition::LowPowerAlert),
            ("!LP ALERT", Condition::LowPowerAlert),
            ("LV RESET", Condition::LowVoltageReset),
            ("STOPPED", Condition::Stopped),
            ("UNABLE TO CONNECT", Condition::UnableToConnect),
            ("ERR94", Condition::Internal(94)),
            ("ERR05", Condition::Internal(5)),
        ];
        for (text, want) in cases {
            for opts in [data("0100"), headers("0100", IdWidth::Bits29), data("ATMA")] {
                let reply = format!("SEARCHING...\r{text}\r\r");
                assert_eq!(
                    parse_reply(&reply, &opts),
                    Err(Elm327Error::Adapter(want)),
                    "{text}"
                );
            }
            if !text.starts_with('!') {
                assert_eq!(want.to_string(), text);
            }
        }
    }

    #[test]
    fn condition_after_data_wins() {
        let text = "7E8 06 41 00 BE 3F B8 13 00\rBUFFER FULL\r\r";
        let err = parse_reply(text, &headers("0100", IdWidth::Bits11)).unwrap_err();
        assert_eq!(err, Elm327Error::Adapter(Condition::BufferFull));
        assert_eq!(err.condition(), Some(Condition::BufferFull));
        assert_eq!(
            parse_reply("STOPPED\r", &data("0100")),
            Err(Elm327Error::Adapter(Condition::Stopped))
        );
    }

    #[test]
    fn flagged_lines() {
        let err = parse_reply("41 0C 1A F8 <DATA ERROR\r\r", &data("010C")).unwrap_err();
        assert_eq!(
            err,
            Elm327Error::Flagged {
                condition: Condition::DataError,
                line: "41 0C 1A F8".into()
            }
        );
        assert_eq!(err.condition(), Some(Condition::DataError));
        assert_eq!(
            parse_reply(
                "7E8 04 41 0C 1A F8 <RX ERROR\r",
                &headers("010C", IdWidth::Bits11)
            ),
            Err(Elm327Error::Flagged {
                condition: Condition::RxError,
                line: "7E8 04 41 0C 1A F8".into()
            })
        );
        assert_eq!(
            parse_reply("<DATA ERROR\r", &data("010C")),
            Err(Elm327Error::Flagged {
                condition: Condition::DataError,
                line: String::new()
            })
        );
    }

    #[test]
    fn conditions_are_not_mistaken_for_text() {
        assert_eq!(
            parse_reply("ERR9\r", &data("ATI")),
            Ok(Reply::Text("ERR9".into()))
        );
        assert_eq!(
            parse_reply("ERROR 94\r", &data("ATI")),
            Ok(Reply::Text("ERROR 94".into()))
        );
    }

    // ---- helpers ----

    #[test]
    fn request_lines() {
        assert_eq!(pid_request(0x01, &[0x0C, 0x0D]), "010C0D\r");
        assert_eq!(pid_request(0x03, &[]), "03\r");
        assert_eq!(pid_request(0x09, &[0x02]), "0902\r");
        assert!(
            INIT_SEQUENCE
                .iter()
                .all(|c| c.starts_with("AT") && c.ends_with('\r'))
        );
    }

    #[test]
    fn protocol_numbers() {
        assert_eq!(IdWidth::from_protocol_number("A6"), Some(IdWidth::Bits11));
        assert_eq!(IdWidth::from_protocol_number("6\r"), Some(IdWidth::Bits11));
        assert_eq!(IdWidth::from_protocol_number("8"), Some(IdWidth::Bits11));
        assert_eq!(IdWidth::from_protocol_number("A7"), Some(IdWidth::Bits29));
        assert_eq!(IdWidth::from_protocol_number("9"), Some(IdWidth::Bits29));
        assert_eq!(IdWidth::from_protocol_number("A"), Some(IdWidth::Bits29));
        assert_eq!(IdWidth::from_protocol_number("AA"), Some(IdWidth::Bits29));
        assert_eq!(IdWidth::from_protocol_number("A3"), None);
        assert_eq!(IdWidth::from_protocol_number("B"), None);
    }

    #[test]
    fn full_transcript_through_the_buffer() {
        // Init then a request, as one serial capture with echo on for ATZ/ATE0.
        let stream: &[u8] = b"ATZ\r\r\rELM327 v1.5\r\r>ATE0\rOK\r\r>OK\r\r>OK\r\r>OK\r\r>OK\r\r>\
            SEARCHING...\r7E8064100BE3FB81300\r7E90641009818801000\r\r>";
        let commands = ["ATZ", "ATE0", "ATL0", "ATS0", "ATH1", "ATSP0", "0100"];
        let mut b = ReplyBuffer::new();
        let replies = b.push(stream);
        assert_eq!(replies.len(), commands.len());
        let parsed: Vec<Reply> = replies
            .into_iter()
            .zip(commands)
            .map(|(r, c)| {
                let opts = ParseOptions {
                    echo: c == "ATZ" || c == "ATE0",
                    headers: c == "0100",
                    ..data(c)
                };
                parse_reply(&r.unwrap(), &opts).unwrap()
            })
            .collect();
        assert_eq!(parsed.first(), Some(&Reply::Text("ELM327 v1.5".into())));
        assert!(parsed.get(1..6).unwrap().iter().all(|r| *r == Reply::Ok));
        assert_eq!(
            parsed.last(),
            Some(&Reply::messages(vec![
                msg(std_id(0x7E8), &[0x41, 0x00, 0xBE, 0x3F, 0xB8, 0x13]),
                msg(std_id(0x7E9), &[0x41, 0x00, 0x98, 0x18, 0x80, 0x10]),
            ]))
        );
    }

    // ---- properties ----

    const TRANSCRIPT: &[u8] = b"\0ATZ\r\r\rELM327 v1.5\r\r>OK\r>SEARCHING...\r014\r0: 49 02 01 31 44 34\r\
        1: 47 50 30 30 52 35 35\r2: 42 31 32 33 34 35 36\r\r>NO DATA\r\n\r\n>\0\x80>7E8 03 41 0D 32\r\r>partial";

    fn split_points(len: usize) -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(0..=len, 0..12).prop_map(|mut v| {
            v.sort_unstable();
            v
        })
    }

    fn feed_in_chunks(stream: &[u8], cuts: &[usize]) -> (Vec<Result<String, Elm327Error>>, usize) {
        let mut b = ReplyBuffer::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain([stream.len()].iter()) {
            out.extend(b.push(stream.get(start..cut).unwrap_or(&[])));
            start = start.max(cut);
        }
        (out, b.pending())
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_replies(cuts in split_points(TRANSCRIPT.len())) {
            let whole = feed_in_chunks(TRANSCRIPT, &[]);
            prop_assert_eq!(whole.0.len(), 6);
            prop_assert_eq!(feed_in_chunks(TRANSCRIPT, &cuts), whole);
        }

        #[test]
        fn chunking_arbitrary_streams(stream in proptest::collection::vec(
            prop_oneof![Just(b'>'), Just(b'\r'), Just(0u8), any::<u8>(), Just(b'4')], 0..9000),
            cut_fractions in proptest::collection::vec(0.0f64..1.0, 0..8)) {
            let mut cuts: Vec<usize> = cut_fractions.iter().map(|f| (f * stream.len() as f64) as usize).collect();
            cuts.sort_unstable();
            let (whole, pending) = feed_in_chunks(&stream, &[]);
            prop_assert!(pending <= MAX_REPLY_LEN);
            prop_assert_eq!(feed_in_chunks(&stream, &cuts), (whole, pending));
        }

        #[test]
        fn parse_reply_never_panics(text in "[0-9A-Fa-f :\r\n<>?.A-Z!]{0,200}", headers_on: bool, bus in 0u8..7, echo: bool, cmd in "(AT[A-Z]{1,3}|[0-9A-F]{0,6})") {
            let opts = ParseOptions { command: cmd, echo, headers: headers_on, bus: bus_of(bus) };
            let _ = parse_reply(&text, &opts);
        }

        #[test]
        fn parse_reply_never_panics_on_any_text(text in "\\PC{0,300}", headers_on: bool, bus in 0u8..7) {
            let opts = ParseOptions { headers: headers_on, bus: bus_of(bus), ..ParseOptions::new("0100") };
            let _ = parse_reply(&text, &opts);
        }

        #[test]
        fn headers_off_multi_frame_round_trip(payload in proptest::collection::vec(any::<u8>(), 8..200)) {
            let mut text = format!("{:03X}\r", payload.len());
            let (first, rest) = payload.split_at(6);
            text.push_str(&format!("0: {}\r", spaced(first)));
            for (i, chunk) in rest.chunks(7).enumerate() {
                text.push_str(&format!("{:X}: {}\r", (i + 1) % 16, spaced(chunk)));
            }
            prop_assert_eq!(parse_reply(&text, &data("0902")), Ok(Reply::messages(vec![msg(None, &payload)])));
        }
    }

    /// 0 and 1: CAN 11 and 29 bits; 2 to 6: the older buses.
    fn bus_of(n: u8) -> Bus {
        match n {
            0 => Bus::Can(IdWidth::Bits11),
            1 => Bus::Can(IdWidth::Bits29),
            n => legacy::Protocol::from_elm_number(n - 1).map_or(Bus::default(), Bus::Legacy),
        }
    }

    fn spaced(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
