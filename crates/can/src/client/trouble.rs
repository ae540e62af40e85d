//! Answers the client could not use, counted by kind.
//!
//! A car or an adapter that misbehaves usually misbehaves the same way on every poll: a clone
//! that drops the DTC count byte, an ECU that cuts one PID short, a bus that reports `BUFFER
//! FULL` under load. Logging each occurrence would bury everything else in the log of a dongle
//! that runs for months, and counting nothing would hide it. So every unusable answer is
//! counted by [`Trouble`] kind (the agent shows the counts on `/metrics`), and logged at WARN
//! the first time each kind is seen, with the details of that first one; later ones are logged
//! at DEBUG only.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};

use telltale_obd::elm327::Condition;

use super::DiagError;

/// The kind of an answer the client could not use; `as_ref()` is its metric label.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, strum::AsRefStr, strum::EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub enum Trouble {
    /// Part of a multi-PID or freeze-frame answer did not decode; the rest was kept.
    DamagedPid,
    /// A DTC count byte that disagrees with the codes after it.
    DtcCount,
    /// An answer that does not decode as the service it claims.
    Undecodable,
    /// An answer for another service than the one asked.
    WrongService,
    /// A multi-frame transfer that broke off or was malformed.
    Transport,
    /// "Response pending" (NRC 0x78) and then nothing.
    PendingTimeout,
    /// One line of a non-CAN answer with a wrong check byte.
    BadCheckByte,
    /// The adapter printed something it should not (garbled text, an answer of the wrong
    /// kind).
    AdapterGarbled,
    /// The adapter did not answer a command in time.
    AdapterSilent,
    /// The adapter reset itself in the middle of the dialogue (its banner appeared).
    AdapterReset,
    /// `?`: the adapter did not understand a command.
    AdapterUnknownCommand,
    /// `BUFFER FULL`.
    AdapterBufferFull,
    /// `BUS BUSY`.
    AdapterBusBusy,
    /// `BUS ERROR`.
    AdapterBusError,
    /// `BUS INIT: ...ERROR`.
    AdapterBusInitError,
    /// `CAN ERROR`.
    AdapterCanError,
    /// `DATA ERROR` or `<DATA ERROR`.
    AdapterDataError,
    /// `<RX ERROR`.
    AdapterRxError,
    /// `STOPPED`.
    AdapterStopped,
    /// `LV RESET`, `ERRxx` and the other alerts.
    AdapterOther,
}

impl Trouble {
    /// The kind of a failed request, or `None` when it is not about an answer (silence, a
    /// request we refused to send, a closed client).
    pub fn of(error: &DiagError) -> Option<Trouble> {
        use telltale_obd::service::ServiceError;
        Some(match error {
            DiagError::Decode {
                error: ServiceError::DtcCount { .. },
                ..
            } => Trouble::DtcCount,
            DiagError::Decode { .. } => Trouble::Undecodable,
            DiagError::WrongService { .. } => Trouble::WrongService,
            DiagError::Transport { .. } => Trouble::Transport,
            DiagError::PendingTimeout { .. } => Trouble::PendingTimeout,
            DiagError::AdapterCondition(c) => Trouble::of_condition(*c)?,
            DiagError::Adapter(_) => Trouble::AdapterGarbled,
            DiagError::NoResponse { .. }
            | DiagError::BadRequest(_)
            | DiagError::Link(_)
            | DiagError::Rejected { .. }
            | DiagError::NotSupported { .. }
            | DiagError::Closed => return None,
        })
    }

    /// The kind of an adapter condition; `None` for `UNABLE TO CONNECT`, which is silence.
    pub fn of_condition(condition: Condition) -> Option<Trouble> {
        Some(match condition {
            Condition::UnableToConnect => return None,
            Condition::UnknownCommand => Trouble::AdapterUnknownCommand,
            Condition::BufferFull => Trouble::AdapterBufferFull,
            Condition::BusBusy => Trouble::AdapterBusBusy,
            Condition::BusError => Trouble::AdapterBusError,
            Condition::BusInitError => Trouble::AdapterBusInitError,
            Condition::CanError => Trouble::AdapterCanError,
            Condition::DataError => Trouble::AdapterDataError,
            Condition::RxError => Trouble::AdapterRxError,
            Condition::Stopped => Trouble::AdapterStopped,
            Condition::ActivityAlert
            | Condition::FeedbackError
            | Condition::LowPowerAlert
            | Condition::LowVoltageReset
            | Condition::Internal(_) => Trouble::AdapterOther,
        })
    }
}

/// The counts, shared by every clone of a client.
#[derive(Debug, Clone, Default)]
pub struct TroubleLog {
    counts: Arc<Mutex<BTreeMap<Trouble, u64>>>,
}

impl TroubleLog {
    /// Counts one; logs it at WARN if it is the first of its kind, else at DEBUG.
    pub fn record(&self, kind: Trouble, link: &str, detail: &dyn Display) {
        let first = {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(kind).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            tracing::warn!(
                kind = kind.as_ref(),
                %link,
                detail = %detail,
                "unusable answer; further ones of this kind are counted on /metrics and logged at debug level"
            );
        } else {
            tracing::debug!(kind = kind.as_ref(), %link, detail = %detail, "unusable answer");
        }
    }

    /// Counts a failed request if it is about an answer.
    pub fn record_error(&self, error: &DiagError, link: &str) {
        if let Some(kind) = Trouble::of(error) {
            self.record(kind, link, error);
        }
    }

    /// Every kind seen so far and how often.
    pub fn counts(&self) -> BTreeMap<Trouble, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_by_kind_and_shared_by_clones() {
        let log = TroubleLog::default();
        let other = log.clone();
        log.record(Trouble::DtcCount, "test", &"43 04 20 01");
        other.record(Trouble::DtcCount, "test", &"43 04 20 01");
        other.record_error(&DiagError::AdapterCondition(Condition::BufferFull), "test");
        // Silence is not an unusable answer.
        other.record_error(
            &DiagError::AdapterCondition(Condition::UnableToConnect),
            "test",
        );
        assert_eq!(
            log.counts().into_iter().collect::<Vec<_>>(),
            vec![(Trouble::DtcCount, 2), (Trouble::AdapterBufferFull, 1)]
        );
        assert_eq!(Trouble::AdapterBufferFull.as_ref(), "adapter_buffer_full");
    }
}
