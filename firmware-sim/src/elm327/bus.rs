//! The vehicle's side of the OBD connector, as the emulated adapter meets it: which bus the
//! vehicle has (CAN, or one of the older buses), what finding and opening each ELM327
//! protocol costs in time, the address each ECU answers from on the older buses, and what
//! such an ECU sends for a request (SAE J1979's answers in several messages, cut with
//! [`telltale_obd::legacy::split`]). Pure: times are returned, never waited for.
//!
//! # Source addresses on the older buses
//!
//! | ECU (scenario role) | address | why |
//! |---|---|---|
//! | `engine` | `10` | the engine controller's address in SAE J2178-1, and what python-OBD and most tools look for |
//! | `transmission` | `18` | the transmission's, likewise |
//! | `hybrid` | `28` | our choice (hybrids came after these buses); next in the 8-step spacing |
//! | any other name (scripted tests) | `40 + 8 × index` | clear of the three above |
//!
//! # Time to find and open a protocol
//!
//! Approximations of a real adapter, so that a client's timeouts meet what a car costs:
//!
//! - J1850 (1, 2): no wake-up; probing one the car does not use costs the answer timeout
//!   ([`J1850_PROBE`]).
//! - ISO 9141-2 and KWP 5-baud (3, 4): the 5-baud address byte takes 2 s, the key bytes and
//!   their acknowledgements a few hundred milliseconds more ([`SLOW_INIT`]), whether the car
//!   answers or not. One slow initialisation serves both: the key bytes tell which of the
//!   two the car speaks (ELM327 data sheet, "Bus Initiation"; ISO 9141-2).
//! - KWP fast (5): 25 ms low, 25 ms high, then StartCommunication and its answer
//!   ([`FAST_INIT`]); without an answer the adapter waits a little longer
//!   ([`FAST_INIT_FAILED`]).
//! - CAN (6–9) probed from an older-bus car: [`CAN_PROBE`] each.
//!
//! An automatic search (`ATSP0`) on an older-bus car tries the stored protocol first (with
//! `ATSP An`), then 1, 2, 3/4, 5, 6… in order, paying for each that fails. On a CAN car it
//! costs nothing, as before: the adapter finds CAN at once.
//!
//! # Answers on the older buses
//!
//! Every ECU listens to the functional address. An ECU answers OBD services 01–0A only, and
//! only requests for one PID (or one PID and frame): multi-PID requests exist only on CAN, so
//! a real ECU on these buses does not answer them. Each answer goes out cut into messages
//! ([`message_gap`] apart per protocol). Mode 09's message counts (infotypes 01, 03, 05, 07,
//! 09), which only these buses use, are answered from the item they count, and the
//! supported-infotype bitmap (09 00) lists them.

use std::time::Duration;

use telltale_obd::legacy::{self, Protocol as LegacyProtocol};

use super::command::Protocol;
use super::session::Ecus;
use crate::vehicle::EcuInfo;

/// The bus of the vehicle the adapter is plugged into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VehicleBus {
    /// ISO 15765-4 CAN: 11-bit ECUs on protocol 6, 29-bit ones on 7.
    #[default]
    Can,
    /// One of the older buses: every ECU is on it.
    Legacy(LegacyProtocol),
}

impl VehicleBus {
    /// Whether ELM327 protocol `p` is this older bus (never for a CAN vehicle, whose reach
    /// depends on its ECUs' ids).
    pub(super) fn is_legacy(self, p: Protocol) -> Option<LegacyProtocol> {
        match self {
            VehicleBus::Legacy(lp) if lp.elm_number() == p.0 => Some(lp),
            _ => None,
        }
    }
}

/// A 5-baud initialisation, answered or not.
pub const SLOW_INIT: Duration = Duration::from_millis(2400);
/// A fast initialisation that the car answers.
pub const FAST_INIT: Duration = Duration::from_millis(120);
/// A fast initialisation nobody answers.
pub const FAST_INIT_FAILED: Duration = Duration::from_millis(300);
/// A J1850 request nobody answers.
pub const J1850_PROBE: Duration = Duration::from_millis(200);
/// A CAN request nobody answers, during a search.
pub const CAN_PROBE: Duration = Duration::from_millis(100);

/// The time between the start of one ECU's consecutive messages: a message of 11 bytes
/// takes about 10 ms at 10.4 kbit/s (K-line, VPW) and 2.5 ms at 41.6 kbit/s (PWM); on the
/// K-line ISO 9141-2 and ISO 14230-4 also want 25–50 ms between messages (P2).
pub fn message_gap(p: LegacyProtocol) -> Duration {
    match p {
        LegacyProtocol::J1850Pwm => Duration::from_millis(4),
        LegacyProtocol::J1850Vpw => Duration::from_millis(12),
        LegacyProtocol::Iso9141 | LegacyProtocol::Kwp5Baud | LegacyProtocol::KwpFast => {
            Duration::from_millis(40)
        }
    }
}

/// The address ECU `index` answers from on an older bus (see the module documentation).
pub fn source_address(ecu: &EcuInfo, index: usize) -> u8 {
    match ecu.name.as_str() {
        "engine" => 0x10,
        "transmission" => 0x18,
        "hybrid" => 0x28,
        _ => u8::try_from(index % 24).map_or(0x40, |i| 0x40 + i * 8),
    }
}

/// What trying protocol `p` costs when the car does not answer on it.
fn probe_time(p: Protocol) -> Duration {
    match p.0 {
        1 | 2 => J1850_PROBE,
        3 | 4 => SLOW_INIT,
        5 => FAST_INIT_FAILED,
        _ => CAN_PROBE,
    }
}

/// What opening the car's own bus costs before the first request goes out.
pub fn open_time(p: LegacyProtocol) -> Duration {
    match p {
        LegacyProtocol::J1850Pwm | LegacyProtocol::J1850Vpw => Duration::ZERO,
        LegacyProtocol::Iso9141 | LegacyProtocol::Kwp5Baud => SLOW_INIT,
        LegacyProtocol::KwpFast => FAST_INIT,
    }
}

/// What a failed attempt at protocol `p`, set by hand, costs and prints: J1850 waits for an
/// answer (`NO DATA`), the K-line protocols fail their initialisation.
pub(super) fn failure(p: Protocol) -> (Duration, &'static str) {
    let text = match p.0 {
        1 | 2 => "NO DATA",
        3..=5 => "ERROR",
        _ => "CAN ERROR",
    };
    let time = match p.0 {
        1..=5 => probe_time(p),
        _ => Duration::ZERO,
    };
    (time, text)
}

/// An automatic search for a car on `car`, starting with `first` when it is not 0: the
/// protocol found and the time it took, including opening it.
pub(super) fn search(first: Protocol, car: LegacyProtocol) -> (Protocol, Duration) {
    let order = std::iter::once(first)
        .filter(|p| *p != Protocol::AUTO)
        .chain((1..=9).map(Protocol));
    let slow = |p: Protocol| matches!(p.0, 3 | 4);
    let mut spent = Duration::ZERO;
    let mut tried: Vec<Protocol> = Vec::new();
    for p in order {
        let found = p.0 == car.elm_number()
            // One slow initialisation answers for both K-line 5-baud protocols.
            || (slow(p) && slow(Protocol(car.elm_number())));
        if found {
            return (Protocol(car.elm_number()), spent + open_time(car));
        }
        if tried.contains(&p) || (slow(p) && tried.iter().any(|t| slow(*t))) {
            continue;
        }
        tried.push(p);
        spent += probe_time(p);
    }
    (Protocol(car.elm_number()), spent + open_time(car))
}

/// Whether an ECU on an older bus answers `request` at all.
pub(super) fn answered(request: &[u8]) -> bool {
    match request {
        // One PID; one PID and its frame.
        [0x01, _] | [0x02, _, _] => true,
        [0x01 | 0x02, ..] => false,
        [service, ..] => (0x03..=0x0A).contains(service),
        [] => false,
    }
}

/// ECU `ecu`'s answer to `request` on an older bus: for each reply, its delay and the
/// messages that carry it. An answer that cannot be carried is dropped with a warning.
pub(super) fn answer(
    ecus: &mut impl Ecus,
    ecu: usize,
    request: &[u8],
    functional: bool,
) -> Vec<(Duration, Vec<Vec<u8>>)> {
    let counted = match request {
        [0x09, infotype] if matches!(infotype, 0x01 | 0x03 | 0x05 | 0x07 | 0x09) => Some(*infotype),
        _ => None,
    };
    let asked = match counted {
        Some(infotype) => vec![0x09, infotype + 1],
        None => request.to_vec(),
    };
    let mut out = Vec::new();
    for reply in ecus.handle(ecu, &asked, functional) {
        let mut payload = reply.payload;
        if let [0x49, 0x00, bitmap @ ..] = payload.as_mut_slice() {
            add_message_counts(bitmap);
        }
        let messages = match legacy::split(&payload) {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(ecu, cause = %e, "answer cannot be carried on this bus; dropped");
                continue;
            }
        };
        let messages = match (counted, payload.first()) {
            (Some(infotype), Some(0x49)) => {
                let count = u8::try_from(messages.len()).unwrap_or(u8::MAX);
                vec![vec![0x49, infotype, count]]
            }
            _ => messages,
        };
        if !messages.is_empty() {
            out.push((reply.delay, messages));
        }
    }
    out
}

/// Sets, in a 09 00 bitmap, the message-count infotype before each supported item (01 for
/// 02, 03 for 04…): on these buses they go together.
fn add_message_counts(bitmap: &mut [u8]) {
    // Infotype n is bit 7 - (n - 1) % 8 of byte (n - 1) / 8.
    let is_set = |bitmap: &[u8], n: usize| {
        bitmap
            .get((n - 1) / 8)
            .is_some_and(|b| b & (0x80 >> ((n - 1) % 8)) != 0)
    };
    for item in [0x02, 0x04, 0x06, 0x08, 0x0A] {
        if is_set(bitmap, item) {
            let count = item - 1;
            if let Some(b) = bitmap.get_mut((count - 1) / 8) {
                *b |= 0x80 >> ((count - 1) % 8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_times() {
        let ms = Duration::from_millis;
        // ISO 9141-2: PWM and VPW fail, the slow init succeeds.
        assert_eq!(
            search(Protocol::AUTO, LegacyProtocol::Iso9141),
            (Protocol(3), ms(200 + 200 + 2400))
        );
        // KWP 5-baud: the same slow init finds it.
        assert_eq!(
            search(Protocol::AUTO, LegacyProtocol::Kwp5Baud),
            (Protocol(4), ms(200 + 200 + 2400))
        );
        // KWP fast: one failed slow init (for 3 and 4 together) first.
        assert_eq!(
            search(Protocol::AUTO, LegacyProtocol::KwpFast),
            (Protocol(5), ms(200 + 200 + 2400 + 120))
        );
        assert_eq!(
            search(Protocol::AUTO, LegacyProtocol::J1850Pwm),
            (Protocol(1), ms(0))
        );
        // ATSP A6 on a VPW car: CAN first, then PWM.
        assert_eq!(
            search(Protocol(6), LegacyProtocol::J1850Vpw),
            (Protocol(2), ms(100 + 200))
        );
        assert_eq!(
            search(Protocol(5), LegacyProtocol::KwpFast),
            (Protocol(5), ms(120))
        );
    }

    #[test]
    fn what_is_answered() {
        assert!(answered(&[0x01, 0x0C]));
        assert!(answered(&[0x02, 0x02, 0x00]));
        assert!(!answered(&[0x01, 0x0C, 0x0D]));
        assert!(!answered(&[0x02, 0x02, 0x00, 0x0C, 0x00]));
        assert!(answered(&[0x03]));
        assert!(answered(&[0x09, 0x02]));
        assert!(!answered(&[0x19, 0x02, 0xFF]));
        assert!(!answered(&[0x22, 0xF1, 0x90]));
        assert!(!answered(&[]));
    }

    #[test]
    fn message_counts_join_the_bitmap() {
        // 02, 04, 06, 0A supported → 01 to 06, 09, 0A.
        let mut bitmap = [0x54, 0x40, 0x00, 0x00];
        add_message_counts(&mut bitmap);
        assert_eq!(bitmap, [0xFC, 0xC0, 0x00, 0x00]);
    }

    #[test]
    fn addresses() {
        let info = |name: &str| EcuInfo {
            name: name.into(),
            request_id: telltale_obd::CanId::Standard(0x7E0),
            response_id: telltale_obd::CanId::Standard(0x7E8),
            functional_id: telltale_obd::CanId::Standard(0x7DF),
        };
        assert_eq!(source_address(&info("engine"), 5), 0x10);
        assert_eq!(source_address(&info("transmission"), 0), 0x18);
        assert_eq!(source_address(&info("hybrid"), 0), 0x28);
        assert_eq!(source_address(&info("abs"), 3), 0x58);
    }
}
