//! Data lines from the older buses (SAE J1850, ISO 9141-2, ISO 14230-4): one message per line,
//! check bytes verified with headers on, each ECU's messages joined ([`crate::legacy`]).

use super::lines::hex_bytes;
use super::{Elm327Error, Message, Read};
use crate::ecu::EcuId;
use crate::legacy;

/// Each line one message: with headers, checked and grouped by sender, then joined per ECU;
/// without, all joined as one sender's.
///
/// A line with a bad check byte is reported and left out. When its header still names a
/// sender and its first data bytes a DTC list or a numbered Mode 09 infotype, that ECU's
/// answer of the same kind is dropped too ([`Elm327Error::DamagedAnswer`]): joined without
/// the damaged line it would look whole, a code list silently shorter.
pub(super) fn parse_legacy(
    lines: &[&str],
    protocol: legacy::Protocol,
    headers: bool,
    read: &mut Read,
) {
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
pub(super) fn lost_a_part(damaged: &[(u8, Vec<u8>)], sender: u8, answer: &[u8]) -> bool {
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
