//! Service 01 and 02 answers, `41 PID data [PID data…]` and `42 PID FRAME data […]`, decoded
//! as far as they go.
//!
//! Nothing in the answer marks where one PID's data ends: the length of each comes from the
//! PID table ([`crate::pid::data_len`]). So one damaged part (a PID cut short, a PID the table
//! does not know, a value outside what the PID can carry) would make the naive walk lose
//! everything after it, or worse, read the next PID's bytes as this one's data. Instead the
//! answer is split the way that explains the most of it: every part that is a PID followed by
//! exactly its data and decodes is kept, and what is left over is reported as
//! [`DamagedPid`]s, each named by the PID it starts with.
//!
//! Knowing the request makes this reliable: only the PIDs (or PID/frame pairs) that were asked
//! for may start a part, so a truncated PID cannot swallow its neighbour unnoticed. Without
//! the request (decoding a recorded bus) any PID the table knows may start a part, which finds
//! the same split whenever the answer is whole.

use serde::{Serialize, Serializer};

use super::{PidData, ServiceError, length, sid};
use crate::pid;

/// A service 01 or 02 answer split into the PIDs that decoded and the parts that did not.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PidAnswer {
    pub pids: Vec<PidData>,
    pub damaged: Vec<DamagedPid>,
}

/// A part of a multi-PID answer that could not be decoded; the rest of the answer was kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DamagedPid {
    /// The PID the part starts with, when it is one that was asked for (or, with no request to
    /// go by, one the PID table knows). `None` when the part starts with something else.
    pub pid: Option<u8>,
    /// The part's bytes, its PID (and frame number) included.
    #[serde(serialize_with = "hex")]
    pub bytes: Vec<u8>,
    /// What is wrong with it.
    #[serde(serialize_with = "display")]
    pub error: ServiceError,
}

/// Which parts an answer may be made of.
#[derive(Debug, Clone, Copy)]
pub(super) enum Asked<'a> {
    /// Service 01 for these PIDs.
    Pids(&'a [u8]),
    /// Service 02 for these (PID, frame) pairs.
    Frames(&'a [(u8, u8)]),
    /// Not known: any PID in the table; `frames` when the answer is service 02.
    Any { frames: bool },
}

impl Asked<'_> {
    fn has_frame(self) -> bool {
        matches!(self, Asked::Frames(_) | Asked::Any { frames: true })
    }

    fn service(self) -> u8 {
        if self.has_frame() {
            sid::FREEZE_FRAME
        } else {
            sid::CURRENT_DATA
        }
    }

    /// Whether a part may start with `pid` (and `frame`).
    fn allows(self, pid: u8, frame: Option<u8>) -> bool {
        match (self, frame) {
            (Asked::Pids(pids), None) => pids.contains(&pid),
            (Asked::Frames(pairs), Some(frame)) => pairs.contains(&(pid, frame)),
            (Asked::Any { .. }, _) => pid::data_len(pid).is_some(),
            _ => false,
        }
    }
}

/// One candidate part at a position: a PID with exactly its data, decoded.
struct Part {
    end: usize,
    data: PidData,
}

/// Splits `rest` (the answer after its response SID). Fails only when there is nothing at all
/// to split; otherwise every byte ends up in a kept PID or a damaged part.
pub(super) fn parse(rest: &[u8], asked: Asked<'_>) -> Result<PidAnswer, ServiceError> {
    if rest.is_empty() {
        let expected = if asked.has_frame() {
            "at least 3"
        } else {
            "at least 2"
        };
        return Err(length(asked.service(), expected, 1));
    }
    let parts: Vec<Option<Part>> = (0..rest.len()).map(|i| part_at(rest, i, asked)).collect();
    let plan = best_split(rest.len(), &parts, |i| starts_with_asked(rest, i, asked));
    let mut answer = PidAnswer::default();
    let mut at = 0;
    for step in plan {
        match step {
            Step::Keep(i) => {
                if let Some(Some(part)) = parts.get(i) {
                    answer.pids.push(part.data.clone());
                    at = part.end;
                }
            }
            Step::Damaged { end } => {
                let bytes = rest.get(at..end).unwrap_or_default();
                answer.damaged.push(damage(bytes, asked));
                at = end;
            }
        }
    }
    Ok(answer)
}

fn starts_with_asked(rest: &[u8], i: usize, asked: Asked<'_>) -> bool {
    let frame = asked.has_frame().then(|| rest.get(i + 1).copied());
    match (rest.get(i), frame) {
        (Some(&pid), None) => asked.allows(pid, None),
        (Some(&pid), Some(Some(frame))) => asked.allows(pid, Some(frame)),
        // A PID whose frame byte is cut off is still recognisably the PID asked for.
        (Some(&pid), Some(None)) => match asked {
            Asked::Frames(pairs) => pairs.iter().any(|&(p, _)| p == pid),
            _ => asked.allows(pid, None) || pid::data_len(pid).is_some(),
        },
        (None, _) => false,
    }
}

/// The part starting at `i`, if one can: an allowed PID, its full data, a value that decodes.
fn part_at(rest: &[u8], i: usize, asked: Asked<'_>) -> Option<Part> {
    let &pid = rest.get(i)?;
    let (frame, data_start) = if asked.has_frame() {
        (Some(*rest.get(i + 1)?), i + 2)
    } else {
        (None, i + 1)
    };
    if !asked.allows(pid, frame) {
        return None;
    }
    let end = data_start + pid::data_len(pid)?;
    let data = rest.get(data_start..end)?;
    let readings = pid::decode(pid, data).ok()?;
    Some(Part {
        end,
        data: PidData {
            pid,
            frame,
            data: data.to_vec(),
            readings,
        },
    })
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// The part starting at this position.
    Keep(usize),
    /// Damaged bytes from where the previous step ended up to `end`.
    Damaged { end: usize },
}

/// What a split of the bytes from some position on costs, compared in this order: damaged
/// parts (fewer is better), kept PIDs (more), damaged parts that do not even start with a PID
/// that was asked for (fewer: a truncated PID is a likelier story than stray bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cost {
    damaged: usize,
    lost: std::cmp::Reverse<usize>,
    stray: usize,
}

/// The cheapest split of positions `0..n`, by dynamic programming from the end. A damaged part
/// always runs up to the next kept part (or the end), so two damaged parts never touch.
fn best_split(
    n: usize,
    parts: &[Option<Part>],
    starts_with_asked: impl Fn(usize) -> bool,
) -> Vec<Step> {
    let zero = Cost {
        damaged: 0,
        lost: std::cmp::Reverse(0),
        stray: 0,
    };
    // best[i]: the cheapest cost of positions i.., and the first step taken from i.
    let mut best: Vec<(Cost, Option<Step>)> = vec![(zero, None); n + 1];
    for i in (0..n).rev() {
        let mut choice: Option<(Cost, Step)> = None;
        if let Some(Some(part)) = parts.get(i)
            && let Some(&(after, _)) = best.get(part.end)
        {
            let cost = Cost {
                lost: std::cmp::Reverse(after.lost.0 + 1),
                ..after
            };
            choice = Some((cost, Step::Keep(i)));
        }
        let stray = usize::from(!starts_with_asked(i));
        for end in i + 1..=n {
            let next_is_kept = end == n || matches!(parts.get(end), Some(Some(_)));
            let Some(&(after, _)) = best.get(end).filter(|_| next_is_kept) else {
                continue;
            };
            let cost = Cost {
                damaged: after.damaged + 1,
                stray: after.stray + stray,
                ..after
            };
            if choice.as_ref().is_none_or(|(c, _)| cost < *c) {
                choice = Some((cost, Step::Damaged { end }));
            }
        }
        if let (Some((cost, step)), Some(slot)) = (choice, best.get_mut(i)) {
            *slot = (cost, Some(step));
        }
    }
    let mut plan = Vec::new();
    let mut i = 0;
    while i < n {
        let Some(&(_, Some(step))) = best.get(i) else {
            break;
        };
        plan.push(step);
        i = match step {
            Step::Keep(at) => parts.get(at).and_then(Option::as_ref).map_or(n, |p| p.end),
            Step::Damaged { end } => end,
        };
    }
    plan
}

/// Names what is wrong with a damaged part.
fn damage(bytes: &[u8], asked: Asked<'_>) -> DamagedPid {
    let service = asked.service();
    let header = if asked.has_frame() { 2 } else { 1 };
    let Some(&pid) = bytes.first() else {
        return DamagedPid {
            pid: None,
            bytes: Vec::new(),
            error: length(service, "a PID", 0),
        };
    };
    let named = starts_with_asked(bytes, 0, asked);
    let error = match (named, pid::data_len(pid)) {
        (false, _) => ServiceError::Unrequested { service, byte: pid },
        (true, None) => ServiceError::UnknownPid(pid),
        (true, Some(_)) if bytes.len() < header => {
            length(service, "a frame number after the PID", 0)
        }
        (true, Some(expected)) => {
            let data = bytes.get(header..).unwrap_or_default();
            if data.len() == expected {
                pid::decode(pid, data).err().map_or_else(
                    || length(service, "a PID asked for", bytes.len()),
                    ServiceError::from,
                )
            } else {
                pid::PidError::WrongLength {
                    pid,
                    expected,
                    actual: data.len(),
                }
                .into()
            }
        }
    };
    DamagedPid {
        pid: named.then_some(pid),
        bytes: bytes.to_vec(),
        error,
    }
}

fn hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::trace::hex(bytes))
}

fn display<S: Serializer>(error: &ServiceError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid::Value;

    fn numbers(answer: &PidAnswer) -> Vec<(u8, f64)> {
        answer
            .pids
            .iter()
            .map(|p| match p.readings[0].value {
                Value::Number(v) => (p.pid, v),
                ref other => panic!("{other:?}"),
            })
            .collect()
    }

    /// `01 0C 0D 05 0F 11 2F`: rpm, speed, coolant, intake air, throttle, fuel level.
    const SIX: [u8; 6] = [0x0C, 0x0D, 0x05, 0x0F, 0x11, 0x2F];

    fn six_answer() -> Vec<u8> {
        vec![
            0x0C, 0x1A, 0xF8, // 1726 rpm
            0x0D, 0x3C, // 60 km/h
            0x05, 0x7B, // 83 °C
            0x0F, 0x46, // 30 °C
            0x11, 0x33, // 20 %
            0x2F, 0x80, // 50.2 %
        ]
    }

    #[test]
    fn a_whole_answer_is_kept_whole() {
        let got = parse(&six_answer(), Asked::Pids(&SIX)).unwrap();
        assert!(got.damaged.is_empty(), "{:?}", got.damaged);
        assert_eq!(
            got.pids.iter().map(|p| p.pid).collect::<Vec<_>>(),
            SIX.to_vec()
        );
    }

    #[test]
    fn a_pid_cut_short_at_the_end_loses_only_itself() {
        let mut bytes = six_answer();
        bytes.pop(); // fuel level 2F has no data byte
        let got = parse(&bytes, Asked::Pids(&SIX)).unwrap();
        assert_eq!(got.pids.len(), 5);
        assert_eq!(got.damaged.len(), 1);
        assert_eq!(got.damaged[0].pid, Some(0x2F));
        assert_eq!(got.damaged[0].bytes, vec![0x2F]);
        assert_eq!(
            got.damaged[0].error,
            ServiceError::Pid(pid::PidError::WrongLength {
                pid: 0x2F,
                expected: 1,
                actual: 0
            })
        );
    }

    #[test]
    fn a_pid_cut_short_in_the_middle_does_not_swallow_its_neighbour() {
        // rpm has one byte instead of two; read naively it would take 0D as its second byte.
        let bytes = [0x0C, 0x1A, 0x0D, 0x3C, 0x05, 0x7B];
        let got = parse(&bytes, Asked::Pids(&[0x0C, 0x0D, 0x05])).unwrap();
        assert_eq!(numbers(&got), vec![(0x0D, 60.0), (0x05, 83.0)]);
        assert_eq!(got.damaged.len(), 1);
        assert_eq!(got.damaged[0].pid, Some(0x0C));
        assert_eq!(got.damaged[0].bytes, vec![0x0C, 0x1A]);
    }

    #[test]
    fn an_unknown_pid_in_the_middle_is_skipped_over() {
        // 0xE7 is not in the table; the request asked for it anyway (a manufacturer's PID).
        let bytes = [0x0D, 0x3C, 0xE7, 0x01, 0x02, 0x05, 0x7B];
        let got = parse(&bytes, Asked::Pids(&[0x0D, 0xE7, 0x05])).unwrap();
        assert_eq!(numbers(&got), vec![(0x0D, 60.0), (0x05, 83.0)]);
        assert_eq!(got.damaged[0].pid, Some(0xE7));
        assert_eq!(got.damaged[0].error, ServiceError::UnknownPid(0xE7));
    }

    #[test]
    fn stray_bytes_are_reported_without_a_pid() {
        let bytes = [0x0D, 0x3C, 0x99, 0x05, 0x7B];
        let got = parse(&bytes, Asked::Pids(&[0x0D, 0x05])).unwrap();
        assert_eq!(numbers(&got), vec![(0x0D, 60.0), (0x05, 83.0)]);
        assert_eq!(got.damaged[0].pid, None);
        assert_eq!(
            got.damaged[0].error,
            ServiceError::Unrequested {
                service: 0x01,
                byte: 0x99
            }
        );
    }

    #[test]
    fn freeze_frames_are_split_the_same_way() {
        // 02 0C 00 | 05 00 with 0C cut short: the coolant temperature is kept.
        let bytes = [0x0C, 0x00, 0x1A, 0x05, 0x00, 0x7B];
        let got = parse(&bytes, Asked::Frames(&[(0x0C, 0), (0x05, 0)])).unwrap();
        assert_eq!(numbers(&got), vec![(0x05, 83.0)]);
        assert_eq!(got.pids[0].frame, Some(0));
        assert_eq!(got.damaged[0].pid, Some(0x0C));
    }

    #[test]
    fn nothing_at_all_is_an_error() {
        assert!(parse(&[], Asked::Pids(&SIX)).is_err());
    }

    proptest::proptest! {
        /// Whatever the bytes, every byte lands in exactly one kept PID or damaged part, in
        /// order, and nothing panics.
        #[test]
        fn every_byte_is_accounted_for(bytes in proptest::collection::vec(proptest::num::u8::ANY, 1..40)) {
            for asked in [Asked::Pids(&SIX), Asked::Any { frames: false }, Asked::Frames(&[(0x0C, 0), (0x05, 1)])] {
                let got = parse(&bytes, asked).unwrap();
                let header = if asked.has_frame() { 2 } else { 1 };
                let kept: usize = got.pids.iter().map(|p| p.data.len() + header).sum();
                let damaged: usize = got.damaged.iter().map(|d| d.bytes.len()).sum();
                proptest::prop_assert_eq!(kept + damaged, bytes.len());
            }
        }

        /// Cutting one byte out of a whole six-PID answer loses at most two PIDs (the one cut,
        /// and a neighbour when the cut leaves it ambiguous), never the whole answer.
        #[test]
        fn one_cut_byte_costs_little(cut in 0usize..13) {
            let mut bytes = six_answer();
            bytes.remove(cut);
            let got = parse(&bytes, Asked::Pids(&SIX)).unwrap();
            proptest::prop_assert!(got.pids.len() >= 4, "{:?}", got);
            proptest::prop_assert!(!got.damaged.is_empty());
        }
    }
}
