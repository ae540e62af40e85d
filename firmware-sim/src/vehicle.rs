//! The vehicle: its ECUs, the physical model and the fault timeline behind them.

use std::time::Duration;

use telltale_obd::CanId;
use telltale_obd::vin::Vin;

use crate::scenario::Scenario;

/// One ECU as the bus sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcuInfo {
    /// Short name (`engine`, `transmission`, `hybrid`), as scenarios name it.
    pub name: String,
    /// Physical request id the ECU listens on (0x7E0, 0x18DA17F1...).
    pub request_id: CanId,
    /// Id it answers on (0x7E8, 0x18DAF117...).
    pub response_id: CanId,
    /// Functional (broadcast) request id it also listens on: 0x7DF for 11-bit ECUs,
    /// 0x18DB33F1 for 29-bit ones (ISO 15765-4).
    pub functional_id: CanId,
}

/// One answer to a request: the payload to send, and when, counted from the request's arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub delay: Duration,
    pub payload: Vec<u8>,
}

/// A simulated vehicle. `Send`; the serving layers share it as `Arc<std::sync::Mutex<Vehicle>>`.
#[derive(Debug)]
pub struct Vehicle {
    ecus: Vec<EcuInfo>,
    vin: Vin,
    now: Duration,
}

impl Vehicle {
    /// Builds the vehicle a scenario describes, at time zero.
    pub fn from_scenario(s: &Scenario) -> Vehicle {
        let _ = s;
        Vehicle {
            ecus: Vec::new(),
            vin: Vin::parse("1FTFW1E50NFA00000").unwrap_or_else(|_| unreachable!()),
            now: Duration::ZERO,
        }
    }

    /// The ECUs, in the order [`Vehicle::handle`] indexes them.
    pub fn ecus(&self) -> &[EcuInfo] {
        &self.ecus
    }

    pub fn vin(&self) -> &Vin {
        &self.vin
    }

    /// Time on the serving clock since the vehicle started.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Moves the vehicle to `t` on the serving clock (elapsed time since start; the scenario's
    /// `time_scale` turns it into vehicle time): steps the physical model and the fault
    /// timeline. Earlier times are ignored.
    pub fn advance_to(&mut self, t: Duration) {
        self.now = self.now.max(t);
    }

    /// ECU number `ecu`'s answer(s) to one request payload. Empty: the ECU stays silent (as
    /// for a functional request it has nothing to say to). Several: e.g. `7F 04 78` after a
    /// few ms, then `44` later.
    pub fn handle(&mut self, ecu: usize, request: &[u8], functional: bool) -> Vec<Reply> {
        let _ = (ecu, request, functional);
        Vec::new()
    }
}
