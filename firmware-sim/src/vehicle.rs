//! The vehicle: its ECUs, the physical model and the fault timeline behind them, moved
//! through time by the caller.
//!
//! Two clocks: the *serving clock* (what [`Vehicle::advance_to`] is given: time since the
//! vehicle started, as the serving layer measures it) and *vehicle time*, the serving clock
//! times the scenario's `time_scale`. Drives, faults and monitors run in vehicle time; response
//! delays ([`Reply::delay`]) are on the serving clock, so a compressed scenario still answers
//! with realistic timing.
//!
//! What this module does not do: read a clock, sleep, or frame anything for a bus.

use std::time::Duration;

use telltale_obd::CanId;
use telltale_obd::vin::Vin;

use crate::ecu::Ecu;
use crate::model::{Effects, Model, STEP_S};
use crate::scenario::{EcuName, Fault, FaultKind, Scenario};

/// ISO 15765-4 functional request ids.
pub const FUNCTIONAL_11BIT: CanId = CanId::Standard(0x7DF);
pub const FUNCTIONAL_29BIT: CanId = CanId::Extended(0x18DB_33F1);

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
    infos: Vec<EcuInfo>,
    ecus: Vec<Ecu>,
    vin: Vin,
    faults: Vec<Fault>,
    time_scale: f64,
    model: Model,
    now: Duration,
    warmed_this_drive: bool,
}

/// The bus addresses of each ECU role (ISO 15765-4: 11-bit 0x7E0+n / 0x7E8+n; 29-bit normal
/// fixed addressing 0x18DA<target><source>, the hybrid controller at address 0x17, the tester
/// at 0xF1).
fn addresses(role: EcuName) -> (CanId, CanId, CanId) {
    match role {
        EcuName::Engine => (
            CanId::Standard(0x7E0),
            CanId::Standard(0x7E8),
            FUNCTIONAL_11BIT,
        ),
        EcuName::Transmission => (
            CanId::Standard(0x7E1),
            CanId::Standard(0x7E9),
            FUNCTIONAL_11BIT,
        ),
        EcuName::Hybrid => (
            CanId::Extended(0x18DA_17F1),
            CanId::Extended(0x18DA_F117),
            FUNCTIONAL_29BIT,
        ),
    }
}

impl Vehicle {
    /// Builds the vehicle a scenario describes, at time zero.
    pub fn from_scenario(s: &Scenario) -> Vehicle {
        let indexed: Vec<(usize, Fault)> = s.faults.iter().cloned().enumerate().collect();
        let fuel_type = if s.identity.hybrid { 0x11 } else { 0x01 };
        let mut roles = vec![
            (EcuName::Engine, s.engine.clone()),
            (EcuName::Transmission, s.transmission.clone()),
        ];
        if let Some(h) = &s.hybrid {
            roles.push((EcuName::Hybrid, h.clone()));
        }
        let mut infos = Vec::new();
        let mut ecus = Vec::new();
        for (n, (role, config)) in (1u64..).zip(roles) {
            let (request_id, response_id, functional_id) = addresses(role);
            let info = EcuInfo {
                name: role.as_str().to_owned(),
                request_id,
                response_id,
                functional_id,
            };
            let vin = (role == EcuName::Engine).then(|| s.identity.vin.clone());
            ecus.push(Ecu::new(
                info.clone(),
                role,
                config,
                vin,
                fuel_type,
                &indexed,
                s.seed.wrapping_add(n.wrapping_mul(0x9E37_79B9)),
            ));
            infos.push(info);
        }
        Vehicle {
            infos,
            ecus,
            vin: s.identity.vin.clone(),
            faults: s.faults.clone(),
            time_scale: s.time_scale,
            model: Model::new(&s.drive, s.seed),
            now: Duration::ZERO,
            warmed_this_drive: false,
        }
    }

    /// The ECUs, in the order [`Vehicle::handle`] indexes them.
    pub fn ecus(&self) -> &[EcuInfo] {
        &self.infos
    }

    pub fn vin(&self) -> &Vin {
        &self.vin
    }

    /// Time on the serving clock the vehicle has been advanced to.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Vehicle seconds per second of the serving clock.
    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// The physical model, as it is now.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// An ECU's diagnostic state (codes, readiness, freeze frame), by index.
    pub fn ecu(&self, index: usize) -> Option<&Ecu> {
        self.ecus.get(index)
    }

    /// The index of the ECU called `name` (`engine`, `transmission`, `hybrid`).
    pub fn ecu_index(&self, name: &str) -> Option<usize> {
        self.infos.iter().position(|e| e.name == name)
    }

    /// Serving-clock time at which vehicle time reaches `vehicle_s`.
    pub fn serving_time_of(&self, vehicle_s: f64) -> Duration {
        Duration::from_secs_f64((vehicle_s / self.time_scale).max(0.0))
    }

    /// Moves the vehicle to `t` on the serving clock (elapsed time since start; the scenario's
    /// `time_scale` turns it into vehicle time): steps the physical model and the fault
    /// timeline. Earlier times are ignored.
    pub fn advance_to(&mut self, t: Duration) {
        if t <= self.now {
            return;
        }
        self.now = t;
        let target = t.as_secs_f64() * self.time_scale;
        while self.model.t < target - 1e-9 {
            let left_in_drive = self.model.cycle_s() - self.model.phase_s;
            let dt = STEP_S.min(target - self.model.t).min(left_in_drive);
            self.step(dt.max(0.0));
            if self.model.cycle_s() - self.model.phase_s <= 1e-9 {
                self.end_drive();
            }
        }
    }

    fn effects_at(&self, t: f64) -> Effects {
        let mut e = Effects::default();
        for f in self.faults.iter().filter(|f| f.active_at(t)) {
            match f.kind {
                FaultKind::Misfire => {
                    let random = f.dtcs.iter().any(|d| d.to_string() == "P0300");
                    e.misfiring_cylinders = e.misfiring_cylinders.max(if random { 2 } else { 1 });
                }
                FaultKind::Catalyst => e.catalyst_worn = true,
                FaultKind::EvapLeak => e.evap_leak = true,
                FaultKind::Thermostat => e.thermostat_stuck_open = true,
                FaultKind::HybridBattery => e.hybrid_battery_worn = true,
                FaultKind::LostComm | FaultKind::Silent => {}
            }
        }
        e
    }

    fn step(&mut self, dt: f64) {
        let effects = self.effects_at(self.model.t);
        let prev_phase = self.model.phase();
        let odometer = self.model.odometer_km;
        self.model.step(dt, &effects);
        let model = &self.model;
        let km = model.odometer_km - odometer;
        let new_warmup = !self.warmed_this_drive && model.warmed_up();
        self.warmed_this_drive |= new_warmup;
        for ecu in &mut self.ecus {
            let since = &mut ecu.since_clear;
            since.distance_km += km;
            if model.engine_running {
                since.time_s += dt;
            }
            if new_warmup {
                since.warmups = since.warmups.saturating_add(1);
            }
            if ecu.mil() {
                ecu.since_clear.mil_distance_km += km;
                if model.engine_running {
                    ecu.since_clear.mil_time_s += dt;
                }
            }
            ecu.readiness.step(model, prev_phase);
            for index in 0..ecu.dtcs.len() {
                let Some(entry) = ecu.dtcs.get_mut(index) else {
                    continue;
                };
                let cause = entry
                    .causes
                    .iter()
                    .any(|&f| self.faults.get(f).is_some_and(|f| f.active_at(model.t)));
                let Some(verdict) = entry.evaluate(model, cause, prev_phase, dt) else {
                    continue;
                };
                for transition in entry.apply(verdict, model.cycle) {
                    tracing::debug!(
                        ecu = %ecu.info.name,
                        dtc = %entry_dtc(ecu, index),
                        ?transition,
                        vehicle_s = model.t,
                        "DTC state change"
                    );
                    ecu.capture(index, transition, model);
                }
            }
        }
    }

    fn end_drive(&mut self) {
        let warmed = self.warmed_this_drive;
        for ecu in &mut self.ecus {
            for entry in &mut ecu.dtcs {
                entry.end_cycle(warmed);
            }
            ecu.readiness.end_cycle();
        }
        self.warmed_this_drive = false;
        self.model.start_next_drive();
        tracing::debug!(drive = self.model.cycle, vehicle_s = self.model.t, "new drive");
    }

    /// Whether ECU `index` is off the bus right now (a `silent` fault).
    pub fn is_silent(&self, index: usize) -> bool {
        let Some(ecu) = self.ecus.get(index) else {
            return true;
        };
        self.faults.iter().any(|f| {
            f.kind == FaultKind::Silent && f.ecu == ecu.role && f.active_at(self.model.t)
        })
    }

    /// ECU number `ecu`'s answer(s) to one request payload. Empty: the ECU stays silent (as
    /// for a functional request it has nothing to say to). Several: e.g. `7F 04 78` after a
    /// few ms, then `44` later.
    pub fn handle(&mut self, ecu: usize, request: &[u8], functional: bool) -> Vec<Reply> {
        if self.is_silent(ecu) {
            return Vec::new();
        }
        let model = &self.model;
        match self.ecus.get_mut(ecu) {
            Some(e) => e.handle(request, functional, model),
            None => Vec::new(),
        }
    }
}

fn entry_dtc(ecu: &Ecu, index: usize) -> String {
    ecu.dtcs
        .get(index)
        .map_or_else(String::new, |e| e.dtc.to_string())
}
