//! TEMPORARY stand-in for the sim branch's `vehicle.rs` (same public API), so the ELM327
//! emulation can be built and tried before the simulator lands. The merge takes the sim
//! branch's file instead of this one.

use std::time::Duration;

use telltale_obd::CanId;
use telltale_obd::vin::Vin;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcuInfo {
    pub name: String,
    pub request_id: CanId,
    pub response_id: CanId,
    pub functional_id: CanId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub delay: Duration,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
pub struct Vehicle {
    ecus: Vec<EcuInfo>,
    vin: Vin,
    now: Duration,
}

impl Vehicle {
    pub fn stub() -> Vehicle {
        let ecu = |name: &str, req: CanId, resp: CanId, func: CanId| EcuInfo {
            name: name.into(),
            request_id: req,
            response_id: resp,
            functional_id: func,
        };
        Vehicle {
            ecus: vec![
                ecu(
                    "engine",
                    CanId::Standard(0x7E0),
                    CanId::Standard(0x7E8),
                    CanId::Standard(0x7DF),
                ),
                ecu(
                    "transmission",
                    CanId::Standard(0x7E1),
                    CanId::Standard(0x7E9),
                    CanId::Standard(0x7DF),
                ),
                ecu(
                    "hybrid",
                    CanId::Extended(0x18DA_17F1),
                    CanId::Extended(0x18DA_F117),
                    CanId::Extended(0x18DB_33F1),
                ),
            ],
            vin: Vin::parse("1FTFW1E50NFA00000").unwrap_or_else(|_| unreachable!()),
            now: Duration::ZERO,
        }
    }

    pub fn ecus(&self) -> &[EcuInfo] {
        &self.ecus
    }

    pub fn vin(&self) -> &Vin {
        &self.vin
    }

    pub fn now(&self) -> Duration {
        self.now
    }

    pub fn advance_to(&mut self, t: Duration) {
        self.now = self.now.max(t);
    }

    pub fn handle(&mut self, ecu: usize, request: &[u8], functional: bool) -> Vec<Reply> {
        let at = |ms, payload: Vec<u8>| Reply {
            delay: Duration::from_millis(ms),
            payload,
        };
        let engine = ecu == 0;
        match request {
            [0x01, 0x00] => vec![at(
                10 + ecu as u64 * 5,
                vec![0x41, 0x00, 0x18, 0x1B, 0x00, 0x01],
            )],
            [0x01, 0x0C] if engine => vec![at(10, vec![0x41, 0x0C, 0x0C, 0x80])],
            [0x01, 0x0D] if engine => vec![at(10, vec![0x41, 0x0D, 0x2A])],
            [0x01, 0x05] if engine => vec![at(10, vec![0x41, 0x05, 0x7B])],
            [0x01, 0x20] if engine => vec![at(10, vec![0x41, 0x20, 0x00, 0x00, 0x00, 0x00])],
            [0x01, 0x42] if engine => vec![at(10, vec![0x41, 0x42, 0x37, 0x3C])],
            [0x03] if engine => vec![at(10, vec![0x43, 0x02, 0x03, 0x01, 0x04, 0x20])],
            [0x03] => vec![at(15, vec![0x43, 0x00])],
            [0x09, 0x00] if engine => vec![at(10, vec![0x49, 0x00, 0x40, 0x00, 0x00, 0x00])],
            [0x09, 0x02] if engine => {
                let mut p = vec![0x49, 0x02, 0x01];
                p.extend_from_slice(self.vin.as_str().as_bytes());
                vec![at(5, vec![0x7F, 0x09, 0x78]), at(40, p)]
            }
            [service, ..] if !functional => vec![at(10, vec![0x7F, *service, 0x11])],
            _ => Vec::new(),
        }
    }
}
