//! Data lines from CAN (ISO 15765-4): headers off (the adapter's own multi-frame form) and
//! headers on (raw ISO-TP frames per ECU).

use super::lines::hex_bytes;
use super::{Elm327Error, IdWidth, Message, Read};
use crate::ecu::EcuId;
use crate::frame::CanId;
use crate::isotp::{self, Pci};

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

pub(super) fn parse_without_headers(lines: &[&str], read: &mut Read) {
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
pub(super) fn byte_count(line: &str) -> Option<usize> {
    (line.len() == 3 && line.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| usize::from_str_radix(line, 16).ok())
        .flatten()
}

/// `3: 42 31 ..` or `3:4231..`: one hex digit, a colon, the segment's bytes.
pub(super) fn segment(line: &str) -> Option<(u8, &str)> {
    let (index, rest) = line.split_once(':')?;
    let index = index.trim();
    let digit = u8::from_str_radix(index, 16)
        .ok()
        .filter(|_| index.len() == 1)?;
    Some((digit, rest))
}

// Headers on.

/// One ECU's frames, split into messages: each single or first frame starts a new one.
#[derive(Debug)]
struct EcuFrames {
    header: CanId,
    messages: Vec<Vec<Vec<u8>>>,
}

pub(super) fn parse_with_headers(lines: &[&str], width: IdWidth, read: &mut Read) {
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
pub(super) fn header_line(line: &str, width: IdWidth) -> Result<(CanId, Vec<u8>), Elm327Error> {
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

pub(super) fn spaced_header_ok(line: &str, width: IdWidth) -> bool {
    let mut groups = line.split_ascii_whitespace();
    match width {
        IdWidth::Bits11 => groups.next().is_some_and(|g| g.len() == 3),
        IdWidth::Bits29 => groups.take(4).filter(|g| g.len() == 2).count() == 4,
    }
}
