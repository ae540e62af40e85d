//! The OBD-II buses older than CAN: SAE J1850 PWM and VPW, ISO 9141-2 and ISO 14230-4
//! (KWP2000, 5-baud or fast initialisation), as the ELM327 numbers them (protocols 1 to 5).
//! What one message on these buses looks like, how its check byte is computed, and how SAE
//! J1979 cuts an answer into such messages: [`split`] turns the one-payload answer a CAN ECU
//! sends (what [`crate::service::Response::parse`] reads) into the messages an ECU on these
//! buses sends, and [`join`] / [`join_answers`] put one ECU's messages back together.
//! Pure functions, no I/O; nothing here knows about the adapter's text (that is
//! [`crate::elm327`]).
//!
//! # One message on the bus
//!
//! Three header bytes, one to seven data bytes (for OBD requests and answers), one check
//! byte. The header's last byte is the sender's address: `F1` for the scan tool, the ECU's
//! own for an answer (`10` is usually the engine controller, `18` the transmission).
//!
//! | protocol (ELM327 number) | functional request | answer | check byte |
//! |---|---|---|---|
//! | SAE J1850 PWM (1) | `61 6A F1` | `41 6B src` | CRC-8 (below) |
//! | SAE J1850 VPW (2) | `68 6A F1` | `48 6B src` | CRC-8 |
//! | ISO 9141-2 (3) | `68 6A F1` | `48 6B src` | sum of the bytes before it, modulo 256 |
//! | ISO 14230-4 KWP (4, 5) | `C0+len 33 F1` | `80+len F1 src` | sum modulo 256 |
//!
//! ISO 14230-4 puts the number of data bytes in the low six bits of its first header byte
//! (the ELM327 data sheet, "Setting the Headers", says the adapter inserts it); it is
//! checked on the way in. The SAE J1850 CRC is CRC-8 with polynomial `1D`, initial value
//! `FF`, the result inverted (CRC-8/SAE-J1850 in the CRC catalogue: `31 32 .. 39`, the
//! digits "123456789", check to `4B`). Both rules are tested below on messages captured from
//! real buses and simulators.
//!
//! # Answers longer than one message (SAE J1979 / ISO 15031-5 on these buses)
//!
//! There is no ISO-TP: each message stands alone and starts with the response SID.
//!
//! | answer | on CAN (one payload) | on these buses (one message each) |
//! |---|---|---|
//! | stored, pending, permanent DTCs (03, 07, 0A) | `43 COUNT DTC…` | `43 D1 D1 D2 D2 D3 D3`: three 2-byte slots per message, `00 00` in the unused ones, no count; more codes, more messages |
//! | VIN (09 02) | `49 02 01` + 17 bytes | `49 02 N` + 4 bytes, N = 1 to 5; the first carries three `00` fillers before the VIN's first byte |
//! | calibration ids (09 04), CVNs (09 06), ECU name (09 0A), others with items | `49 IT NODI` + items | `49 IT N` + 4 bytes, numbered from 1: four messages per 16-byte calibration id, one per CVN |
//! | supported infotypes (09 00, 20, …) | `49 00` + 4-byte bitmap | `49 00 01` + bitmap |
//! | message counts (09 01, 03, 05, 07, 09) | — | `49 01 05`: the VIN takes five messages |
//! | Mode 01, 02, 04, negative responses | `41 PID data…` | the same, one message |
//!
//! (ELM327 data sheet, "Multiline Responses": the J1850 VIN `49 02 01 00 00 00 31`,
//! `49 02 02 44 34 47 50`…; "Interpreting Trouble Codes": `43 01 33 00 00 00 00`.)
//!
//! [`join`] rebuilds the CAN-shaped payload from one ECU's messages: DTC messages become the
//! SID and the codes alone, `00 00` slots dropped, with no count byte (an even number of
//! bytes after the SID, which is how [`crate::service`] tells that form from the counted
//! one); numbered Mode 09 messages are put in order, checked for gaps, the VIN's fillers
//! dropped, and the number of data items the CAN form carries is put back. Errors name
//! what is wrong (a message of another service, a missing part, odd DTC bytes…).

use std::fmt;

use serde::Serialize;

use crate::service::{Response, ServiceError};

/// Most data bytes one OBD message carries on these buses (SAE J1979).
pub const MAX_DATA_LEN: usize = 7;
/// Bytes of header.
pub const HEADER_LEN: usize = 3;
/// DTC slots in one message of a DTC answer.
pub const DTC_SLOTS: usize = 3;
/// Data bytes after `49 IT N` in one numbered Mode 09 message.
pub const INFO_PART_LEN: usize = 4;

const DTC_SIDS: [u8; 3] = [0x43, 0x47, 0x4A];
const VEHICLE_INFO_SID: u8 = 0x49;
const VIN_INFOTYPE: u8 = 0x02;
const VIN_LEN: usize = 17;

/// One of the five older OBD-II protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Protocol {
    /// SAE J1850 PWM, 41.6 kbit/s (ELM327 protocol 1; Ford).
    J1850Pwm,
    /// SAE J1850 VPW, 10.4 kbit/s (protocol 2; GM, Chrysler).
    J1850Vpw,
    /// ISO 9141-2, K-line with 5-baud initialisation (protocol 3).
    Iso9141,
    /// ISO 14230-4 KWP2000, K-line with 5-baud initialisation (protocol 4).
    Kwp5Baud,
    /// ISO 14230-4 KWP2000, K-line with fast initialisation (protocol 5).
    KwpFast,
}

/// How a protocol's check byte is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckRule {
    Crc8,
    Sum,
}

impl Protocol {
    /// All five, in ELM327 order.
    pub const ALL: [Protocol; 5] = [
        Protocol::J1850Pwm,
        Protocol::J1850Vpw,
        Protocol::Iso9141,
        Protocol::Kwp5Baud,
        Protocol::KwpFast,
    ];

    /// The number `ATSP` takes and `ATDPN` prints (1 to 5).
    pub fn elm_number(self) -> u8 {
        match self {
            Protocol::J1850Pwm => 1,
            Protocol::J1850Vpw => 2,
            Protocol::Iso9141 => 3,
            Protocol::Kwp5Baud => 4,
            Protocol::KwpFast => 5,
        }
    }

    /// The protocol of ELM327 number `n`, if it is one of these.
    pub fn from_elm_number(n: u8) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.elm_number() == n)
    }

    /// The name `ATDP` prints.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::J1850Pwm => "SAE J1850 PWM",
            Protocol::J1850Vpw => "SAE J1850 VPW",
            Protocol::Iso9141 => "ISO 9141-2",
            Protocol::Kwp5Baud => "ISO 14230-4 (KWP 5BAUD)",
            Protocol::KwpFast => "ISO 14230-4 (KWP FAST)",
        }
    }

    fn check_rule(self) -> CheckRule {
        match self {
            Protocol::J1850Pwm | Protocol::J1850Vpw => CheckRule::Crc8,
            Protocol::Iso9141 | Protocol::Kwp5Baud | Protocol::KwpFast => CheckRule::Sum,
        }
    }

    /// ISO 14230-4: the first header byte carries the data length.
    fn is_kwp(self) -> bool {
        matches!(self, Protocol::Kwp5Baud | Protocol::KwpFast)
    }

    /// The bus needs a wake-up before the first request: the 2–3 s 5-baud initialisation
    /// (ISO 9141-2, KWP 5-baud) or the 50 ms fast one (KWP fast). J1850 needs none.
    pub fn needs_bus_init(self) -> bool {
        !matches!(self, Protocol::J1850Pwm | Protocol::J1850Vpw)
    }

    /// The check byte of `bytes` (header and data).
    pub fn check_byte(self, bytes: &[u8]) -> u8 {
        match self.check_rule() {
            CheckRule::Sum => bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)),
            CheckRule::Crc8 => !bytes.iter().fold(0xFF, |crc, &b| crc8_step(crc, b)),
        }
    }

    /// The functional address OBD requests go to (the middle header byte): `6A` on J1850 and
    /// ISO 9141-2, `33` on ISO 14230-4.
    pub fn functional_target(self) -> u8 {
        if self.is_kwp() { 0x33 } else { 0x6A }
    }

    /// The header of a functional OBD request with `data_len` data bytes, from the scan tool.
    pub fn request_header(self, data_len: usize) -> [u8; HEADER_LEN] {
        match self {
            Protocol::J1850Pwm => [0x61, 0x6A, 0xF1],
            Protocol::J1850Vpw | Protocol::Iso9141 => [0x68, 0x6A, 0xF1],
            Protocol::Kwp5Baud | Protocol::KwpFast => [0xC0 | length_bits(data_len), 0x33, 0xF1],
        }
    }

    /// The header of an ECU's answer to an OBD request: from `source`, `data_len` data bytes.
    pub fn response_header(self, source: u8, data_len: usize) -> [u8; HEADER_LEN] {
        match self {
            Protocol::J1850Pwm => [0x41, 0x6B, source],
            Protocol::J1850Vpw | Protocol::Iso9141 => [0x48, 0x6B, source],
            Protocol::Kwp5Baud | Protocol::KwpFast => [0x80 | length_bits(data_len), 0xF1, source],
        }
    }

    /// An ECU's answer message as it goes on the bus: header, `data`, check byte.
    pub fn encode(self, source: u8, data: &[u8]) -> Result<Vec<u8>, FrameError> {
        if data.is_empty() || data.len() > MAX_DATA_LEN {
            return Err(FrameError::DataLength { len: data.len() });
        }
        let mut out = self.response_header(source, data.len()).to_vec();
        out.extend_from_slice(data);
        out.push(self.check_byte(&out));
        Ok(out)
    }

    /// Reads one message as received (header, data, check byte): verifies the check byte
    /// and, on ISO 14230-4, the length in the first header byte. The header is otherwise
    /// not interpreted, so answers to physically addressed requests read too.
    pub fn decode(self, bytes: &[u8]) -> Result<Frame, FrameError> {
        let (&check, body) = bytes
            .split_last()
            .filter(|(_, body)| body.len() > HEADER_LEN)
            .ok_or(FrameError::TooShort { len: bytes.len() })?;
        let (header, data) = body.split_at(HEADER_LEN);
        let expected = self.check_byte(body);
        if check != expected {
            return Err(FrameError::CheckByte {
                protocol: self,
                expected,
                got: check,
            });
        }
        let header: [u8; HEADER_LEN] = header
            .try_into()
            .map_err(|_| FrameError::TooShort { len: bytes.len() })?;
        if self.is_kwp() {
            let declared = usize::from(header[0] & 0x3F);
            if declared != data.len() {
                return Err(FrameError::FormatLength {
                    declared,
                    actual: data.len(),
                });
            }
        }
        Ok(Frame {
            header,
            data: data.to_vec(),
        })
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The ISO 14230-4 length field: six bits.
fn length_bits(data_len: usize) -> u8 {
    u8::try_from(data_len & 0x3F).unwrap_or(0)
}

/// One byte through the SAE J1850 CRC (polynomial x⁸+x⁴+x³+x²+1, most significant bit
/// first).
fn crc8_step(crc: u8, byte: u8) -> u8 {
    (0..8).fold(crc ^ byte, |c, _| {
        if c & 0x80 != 0 {
            (c << 1) ^ 0x1D
        } else {
            c << 1
        }
    })
}

/// One message read off the bus, check byte verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// Priority or format byte, target, source.
    pub header: [u8; HEADER_LEN],
    /// The data bytes: the service response (`41 0C 1A F8`, `43 01 33 00 00 00 00`).
    pub data: Vec<u8>,
}

impl Frame {
    /// The sender's address, the last header byte.
    pub fn source(&self) -> u8 {
        self.header[2]
    }
}

/// Why one message could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "a message is 3 header bytes, at least one data byte and a check byte; this one is {len} bytes"
    )]
    TooShort { len: usize },
    #[error("check byte is 0x{got:02X}, but {protocol} gives 0x{expected:02X} for this message")]
    CheckByte {
        protocol: Protocol,
        expected: u8,
        got: u8,
    },
    #[error("the format byte says {declared} data bytes, the message carries {actual}")]
    FormatLength { declared: usize, actual: usize },
    #[error("an OBD message carries 1 to 7 data bytes, not {len}")]
    DataLength { len: usize },
}

/// Why a CAN-shaped answer could not be cut into messages.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    #[error("empty answer")]
    Empty,
    #[error("answer 0x{sid:02X} is {len} bytes; on these buses it must fit one 7-byte message")]
    TooLong { sid: u8, len: usize },
    /// A DTC list that does not decode (its count byte disagrees with its codes).
    #[error(transparent)]
    Dtcs(#[from] ServiceError),
    #[error("service 0x09 answer without an infotype")]
    NoInfotype,
    #[error("service 0x09 infotype 0x{infotype:02X}: {len} data bytes, expected {expected}")]
    InfoLength {
        infotype: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("service 0x09 infotype 0x{infotype:02X}: more than 255 messages")]
    TooManyParts { infotype: u8 },
}

/// Why one ECU's messages could not be joined into one answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("no messages")]
    NoMessages,
    #[error("message {index} is empty")]
    EmptyMessage { index: usize },
    #[error("message {index} answers service 0x{got:02X}, the first one 0x{expected:02X}")]
    OtherService { index: usize, expected: u8, got: u8 },
    #[error("answer 0x{sid:02X} comes in one message; got {count}")]
    NotSegmented { sid: u8, count: usize },
    #[error("DTC message {index} carries {len} bytes of codes, an odd number")]
    OddDtcBytes { index: usize, len: usize },
    #[error("service 0x09 message {index} has no infotype")]
    NoInfotype { index: usize },
    #[error(
        "service 0x09 message {index} is for infotype 0x{got:02X}, the first one 0x{expected:02X}"
    )]
    OtherInfotype { index: usize, expected: u8, got: u8 },
    #[error(
        "infotype 0x{infotype:02X}: message {index} is {len} bytes, expected `49 {infotype:02X} N` and 4 data bytes"
    )]
    PartLength {
        infotype: u8,
        index: usize,
        len: usize,
    },
    #[error("infotype 0x{infotype:02X}: part {number} is missing (got {count} parts)")]
    MissingPart {
        infotype: u8,
        number: usize,
        count: usize,
    },
    #[error("infotype 0x{infotype:02X}: part {number} came twice")]
    DuplicatePart { infotype: u8, number: u8 },
    #[error("infotype 0x{infotype:02X}: {len} bytes is not a whole number of {item}-byte items")]
    ItemLength {
        infotype: u8,
        len: usize,
        item: usize,
    },
    #[error("VIN: {len} bytes, expected 17 after the fillers")]
    VinLength { len: usize },
    #[error("VIN: filler bytes {fillers:02X?} before the VIN are not zero")]
    VinFiller { fillers: Vec<u8> },
}

/// Cuts a positive answer as a CAN ECU sends it (one payload, the form
/// [`crate::service::Response::parse`] reads) into the messages an ECU on these buses sends,
/// in order (see the module documentation). A DTC answer may come with or without its count
/// byte (an odd number of bytes after the SID means it has one). An infotype whose answer
/// has no items (`49 04 00`) gives no messages: such an ECU stays silent.
pub fn split(payload: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
    let (&sid, rest) = payload.split_first().ok_or(SplitError::Empty)?;
    if DTC_SIDS.contains(&sid) {
        return split_dtcs(payload);
    }
    if sid == VEHICLE_INFO_SID {
        return split_vehicle_info(rest);
    }
    if payload.len() > MAX_DATA_LEN {
        return Err(SplitError::TooLong {
            sid,
            len: payload.len(),
        });
    }
    Ok(vec![payload.to_vec()])
}

/// A DTC list, with or without its count byte (the service parser decides, by length), as
/// messages of three slots.
fn split_dtcs(payload: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
    let (sid, dtcs) = match Response::parse(payload)? {
        Response::Dtcs { service, dtcs } => (service + 0x40, dtcs),
        // Not reached: the SID is a DTC service's.
        _ => return Err(SplitError::Empty),
    };
    let pairs: Vec<[u8; 2]> = dtcs
        .iter()
        .map(|d| d.to_bytes())
        .filter(|p| *p != [0, 0])
        .collect();
    if pairs.is_empty() {
        // No codes: one message of empty slots.
        let mut message = vec![sid];
        message.resize(1 + DTC_SLOTS * 2, 0);
        return Ok(vec![message]);
    }
    Ok(pairs
        .chunks(DTC_SLOTS)
        .map(|slots| {
            let mut message = vec![sid];
            message.extend(slots.iter().flatten());
            message.resize(1 + DTC_SLOTS * 2, 0);
            message
        })
        .collect())
}

/// The Mode 09 infotypes that answer with a message count on these buses (01: VIN, 03:
/// calibration ids, 05: CVNs, 07: in-use performance tracking, 09: ECU name).
fn is_message_count(infotype: u8) -> bool {
    matches!(infotype, 0x01 | 0x03 | 0x05 | 0x07 | 0x09)
}

fn is_bitmap(infotype: u8) -> bool {
    infotype.is_multiple_of(0x20)
}

fn split_vehicle_info(rest: &[u8]) -> Result<Vec<Vec<u8>>, SplitError> {
    let (&infotype, data) = rest.split_first().ok_or(SplitError::NoInfotype)?;
    let wrong = |expected| SplitError::InfoLength {
        infotype,
        len: data.len(),
        expected,
    };
    if is_bitmap(infotype) {
        if data.len() != INFO_PART_LEN {
            return Err(wrong("4"));
        }
        let mut message = vec![VEHICLE_INFO_SID, infotype, 0x01];
        message.extend_from_slice(data);
        return Ok(vec![message]);
    }
    if is_message_count(infotype) {
        if data.len() != 1 {
            return Err(wrong("1"));
        }
        let mut message = vec![VEHICLE_INFO_SID, infotype];
        message.extend_from_slice(data);
        return Ok(vec![message]);
    }
    // The CAN form's number of data items has no place here.
    let (_, items) = data.split_first().ok_or_else(|| wrong("at least 1"))?;
    let fillers = (INFO_PART_LEN - items.len() % INFO_PART_LEN) % INFO_PART_LEN;
    let mut padded = vec![0u8; fillers];
    padded.extend_from_slice(items);
    padded
        .chunks(INFO_PART_LEN)
        .enumerate()
        .map(|(i, part)| {
            let number = u8::try_from(i + 1).map_err(|_| SplitError::TooManyParts { infotype })?;
            let mut message = vec![VEHICLE_INFO_SID, infotype, number];
            message.extend_from_slice(part);
            Ok(message)
        })
        .collect()
}

/// Joins one ECU's messages answering one request into the payload a CAN ECU would have
/// sent (see the module documentation). The messages must all answer the same service (and
/// the same infotype); only DTC answers, numbered Mode 09 answers and Mode 01/02 answers
/// (whose PIDs are concatenated as a CAN multi-PID answer carries them) may have several.
pub fn join<M: AsRef<[u8]>>(messages: &[M]) -> Result<Vec<u8>, JoinError> {
    let first = messages.first().ok_or(JoinError::NoMessages)?.as_ref();
    let &sid = first.first().ok_or(JoinError::EmptyMessage { index: 0 })?;
    for (index, m) in messages.iter().enumerate() {
        match m.as_ref().first() {
            None => return Err(JoinError::EmptyMessage { index }),
            Some(&got) if got != sid => {
                return Err(JoinError::OtherService {
                    index,
                    expected: sid,
                    got,
                });
            }
            Some(_) => {}
        }
    }
    if DTC_SIDS.contains(&sid) {
        return join_dtcs(sid, messages);
    }
    if sid == VEHICLE_INFO_SID {
        return join_vehicle_info(messages);
    }
    match (sid, messages) {
        (_, [only]) => Ok(only.as_ref().to_vec()),
        (0x41 | 0x42, _) => {
            let mut out = vec![sid];
            for m in messages {
                out.extend_from_slice(m.as_ref().get(1..).unwrap_or_default());
            }
            Ok(out)
        }
        _ => Err(JoinError::NotSegmented {
            sid,
            count: messages.len(),
        }),
    }
}

fn join_dtcs<M: AsRef<[u8]>>(sid: u8, messages: &[M]) -> Result<Vec<u8>, JoinError> {
    let mut out = vec![sid];
    for (index, m) in messages.iter().enumerate() {
        let codes = m.as_ref().get(1..).unwrap_or_default();
        let (pairs, odd) = codes.as_chunks::<2>();
        if !odd.is_empty() {
            return Err(JoinError::OddDtcBytes {
                index,
                len: codes.len(),
            });
        }
        out.extend(pairs.iter().filter(|p| **p != [0, 0]).flatten());
    }
    Ok(out)
}

fn join_vehicle_info<M: AsRef<[u8]>>(messages: &[M]) -> Result<Vec<u8>, JoinError> {
    let infotype_of =
        |index: usize, m: &[u8]| m.get(1).copied().ok_or(JoinError::NoInfotype { index });
    let first = messages.first().ok_or(JoinError::NoMessages)?.as_ref();
    let infotype = infotype_of(0, first)?;
    for (index, m) in messages.iter().enumerate() {
        let got = infotype_of(index, m.as_ref())?;
        if got != infotype {
            return Err(JoinError::OtherInfotype {
                index,
                expected: infotype,
                got,
            });
        }
    }
    if is_message_count(infotype) {
        return match messages {
            [only] => Ok(only.as_ref().to_vec()),
            _ => Err(JoinError::NotSegmented {
                sid: VEHICLE_INFO_SID,
                count: messages.len(),
            }),
        };
    }
    let data = ordered_parts(infotype, messages)?;
    let mut out = vec![VEHICLE_INFO_SID, infotype];
    if is_bitmap(infotype) {
        // `49 00 01 bitmap` carries no number of items on CAN either.
        if messages.len() != 1 {
            return Err(JoinError::NotSegmented {
                sid: VEHICLE_INFO_SID,
                count: messages.len(),
            });
        }
        out.extend_from_slice(&data);
        return Ok(out);
    }
    let item_len = match infotype {
        VIN_INFOTYPE => {
            let fillers_len = data
                .len()
                .checked_sub(VIN_LEN)
                .ok_or(JoinError::VinLength { len: data.len() })?;
            let (fillers, vin) = data.split_at(fillers_len);
            if fillers.iter().any(|&b| b != 0) {
                return Err(JoinError::VinFiller {
                    fillers: fillers.to_vec(),
                });
            }
            out.push(1);
            out.extend_from_slice(vin);
            return Ok(out);
        }
        0x04 => Some(16),
        0x06 => Some(4),
        0x08 => Some(2),
        0x0A => Some(20),
        _ => None,
    };
    let items = match item_len {
        Some(item) if data.len() % item != 0 => {
            return Err(JoinError::ItemLength {
                infotype,
                len: data.len(),
                item,
            });
        }
        Some(item) => data.len() / item,
        // An infotype this module does not know: one item per message.
        None => messages.len(),
    };
    out.push(u8::try_from(items).unwrap_or(u8::MAX));
    out.extend_from_slice(&data);
    Ok(out)
}

/// The data of numbered messages `49 IT N d1 d2 d3 d4`, in the order of N, which must run
/// from 1 without gaps or repeats.
fn ordered_parts<M: AsRef<[u8]>>(infotype: u8, messages: &[M]) -> Result<Vec<u8>, JoinError> {
    let mut parts: Vec<(u8, &[u8])> = Vec::with_capacity(messages.len());
    for (index, m) in messages.iter().enumerate() {
        let m = m.as_ref();
        match m {
            [_, _, number, data @ ..] if data.len() == INFO_PART_LEN => parts.push((*number, data)),
            _ => {
                return Err(JoinError::PartLength {
                    infotype,
                    index,
                    len: m.len(),
                });
            }
        }
    }
    parts.sort_by_key(|(number, _)| *number);
    for pair in parts.windows(2) {
        if let [(a, _), (b, _)] = pair
            && a == b
        {
            return Err(JoinError::DuplicatePart {
                infotype,
                number: *a,
            });
        }
    }
    for (expected, (number, _)) in (1..).zip(&parts) {
        if usize::from(*number) != expected {
            return Err(JoinError::MissingPart {
                infotype,
                number: expected,
                count: parts.len(),
            });
        }
    }
    Ok(parts
        .iter()
        .flat_map(|(_, data)| data.iter().copied())
        .collect())
}

/// Whether `message` (or a joined answer) is part of an answer that may take several
/// messages: a DTC list or a numbered Mode 09 infotype. Losing one of its messages loses
/// part of the answer silently (a DTC list has no count to check against).
pub fn is_segmented(message: &[u8]) -> bool {
    answer_key(message).is_some()
}

/// Service and infotype (0 for the DTC services): what a segmented message belongs to.
type AnswerKey = (u8, u8);

/// What belongs to one answer: the segmented ones (DTC lists, numbered Mode 09 items) by
/// service and infotype; `None` for a message that is an answer by itself.
fn answer_key(message: &[u8]) -> Option<AnswerKey> {
    match *message {
        [sid, ..] if DTC_SIDS.contains(&sid) => Some((sid, 0)),
        [VEHICLE_INFO_SID, infotype, ..] if !is_bitmap(infotype) && !is_message_count(infotype) => {
            Some((VEHICLE_INFO_SID, infotype))
        }
        _ => None,
    }
}

/// One ECU's messages (or, with the sender unknown, all of a reply's), in arrival order, as
/// the answers they make: the messages of each DTC list and of each numbered Mode 09
/// infotype joined into one answer (placed where its first message was), every other
/// message (Mode 01 and 02, bitmaps, message counts, negative responses such as `7F 03 78`)
/// an answer by itself. A group that cannot be joined is an error in its place (message
/// indices in it count that group's messages); the others are unaffected.
pub fn join_answers<M: AsRef<[u8]>>(messages: &[M]) -> Vec<Result<Vec<u8>, JoinError>> {
    let mut groups: Vec<(Option<AnswerKey>, Vec<&[u8]>)> = Vec::new();
    for m in messages {
        let m = m.as_ref();
        let key = answer_key(m);
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, members)) => members.push(m),
            None => groups.push((key, vec![m])),
        }
    }
    groups
        .into_iter()
        .map(|(_, members)| join(&members))
        .collect()
}

#[cfg(test)]
mod tests;
