//! Diagnostic monitors and the trouble-code state machine of SAE J1979 / ISO 15031-5, with the
//! UDS status byte of ISO 14229-1 Annex D kept alongside.
//!
//! Each DTC an ECU knows has a *test*. A test reaches a verdict (failed or passed) when its
//! monitor runs: continuously (misfire, communication) or once per drive at a point where its
//! enable conditions hold (catalyst on a warm cruise, thermostat after the warm-up window,
//! EVAP in the final idle). Verdicts come from the physical model where the model shows the
//! fault (O2 switching, coolant temperature, EVAP vacuum, misfire rate), so a scenario whose
//! fault never shows in the data never sets its code.
//!
//! Per J1979 (the two-trip logic):
//! - the first drive in which the test fails sets the code **pending** (service 07);
//! - failing again in a later drive while pending makes it **confirmed** (service 03), turns on
//!   the MIL, stores the freeze frame if none is stored, and makes it **permanent** (0A);
//! - a drive in which the test runs and passes clears pending; three such drives in a row turn
//!   the MIL off and erase the permanent code; 40 warm-ups without failure erase the code;
//! - service 04 / UDS 0x14 erases pending and confirmed codes and test results but not
//!   permanent codes: those go when the test next runs and passes a whole drive.
//!
//! What this module does not do: encode anything, or know about time beyond the drive.

use telltale_obd::dtc::Dtc;
use telltale_obd::uds::DtcStatus;

use crate::model::{ENGINE_START, FuelSystem, Model};
use crate::scenario::FaultKind;

/// Drives in a row that must pass before the MIL goes off (J1979).
pub const PASSING_DRIVES_FOR_MIL_OFF: u8 = 3;
/// Warm-ups without failure after which a confirmed code is erased.
pub const WARMUPS_TO_ERASE: u8 = 40;
/// Misfire rate (per 1000 firings) above which the misfire monitor fails.
pub const MISFIRE_THRESHOLD: f64 = 20.0;
/// Downstream/upstream O2 switching ratio above which the catalyst monitor fails.
pub const CATALYST_RATIO_THRESHOLD: f64 = 0.6;
/// Coolant temperature the thermostat monitor expects by its check point (J1979's 71 °C).
pub const THERMOSTAT_THRESHOLD_C: f64 = 71.0;
/// EVAP vacuum the leak test must reach, Pa.
pub const EVAP_VACUUM_PA: f64 = -500.0;
/// Hybrid battery remaining life below which the pack is reported deteriorated, %.
pub const HYBRID_LIFE_THRESHOLD: f64 = 30.0;

/// How a DTC's test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKind {
    /// Continuous, on the model's misfire rate (needs the engine running).
    Misfire,
    /// Once per drive at phase 0.6, warm and in closed loop: O2 switching ratio.
    Catalyst,
    /// Once per drive at the end of the final idle: EVAP vacuum.
    Evap,
    /// Once per drive at phase 0.7: coolant reached the regulating temperature.
    Thermostat,
    /// Once per drive at phase 0.5: hybrid battery remaining life.
    HybridBattery,
    /// Continuous, on the scripted cause alone (network messages, circuits).
    Continuous,
}

impl TestKind {
    /// The test a fault kind is seen by.
    pub fn for_fault(kind: FaultKind) -> TestKind {
        match kind {
            FaultKind::Misfire => TestKind::Misfire,
            FaultKind::Catalyst => TestKind::Catalyst,
            FaultKind::EvapLeak => TestKind::Evap,
            FaultKind::Thermostat => TestKind::Thermostat,
            FaultKind::HybridBattery => TestKind::HybridBattery,
            FaultKind::LostComm | FaultKind::Silent => TestKind::Continuous,
        }
    }

    /// The test of a code no scenario fault names, guessed from the code's number.
    pub fn for_code(dtc: Dtc) -> TestKind {
        match dtc.to_string().as_str() {
            "P0300" | "P0301" | "P0302" | "P0303" | "P0304" => TestKind::Misfire,
            "P0420" => TestKind::Catalyst,
            "P0442" | "P0455" | "P0456" => TestKind::Evap,
            "P0128" => TestKind::Thermostat,
            "P0A80" | "P0A7F" => TestKind::HybridBattery,
            _ => TestKind::Continuous,
        }
    }

    /// Phase of the drive at which a once-per-drive test runs.
    fn run_point(self) -> Option<f64> {
        match self {
            TestKind::Catalyst => Some(0.60),
            TestKind::Evap => Some(0.972),
            TestKind::Thermostat => Some(0.70),
            TestKind::HybridBattery => Some(0.50),
            TestKind::Misfire | TestKind::Continuous => None,
        }
    }
}

/// A test's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Failed,
    Passed,
}

/// What a verdict did to the code, for the ECU to act on (capture a freeze frame...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// First failure since the last clear (UDS snapshot time).
    FirstFailure,
    BecamePending,
    BecameConfirmed,
}

/// One DTC the ECU knows, and its state.
#[derive(Debug, Clone)]
pub struct DtcEntry {
    pub dtc: Dtc,
    /// UDS failure type byte.
    pub ftb: u8,
    pub kind: TestKind,
    /// Indices of the scenario faults that cause this code.
    pub causes: Vec<usize>,
    pub test_failed: bool,
    pub failed_this_cycle: bool,
    pub tested_this_cycle: bool,
    pub tested_since_clear: bool,
    pub failed_since_clear: bool,
    pub pending: bool,
    /// Drive in which the code became pending.
    pub pending_cycle: u32,
    pub confirmed: bool,
    pub mil: bool,
    pub permanent: bool,
    /// Drives in a row the test ran and passed (for MIL off).
    passing_cycles: u8,
    /// Warm-ups without failure since the code stopped failing.
    warmups_without_failure: u8,
    /// Drives in which the test failed (UDS extended data record 01).
    pub occurrences: u8,
    /// Seconds of continuous failure / success this drive, for continuous tests.
    fail_s: f64,
    pass_s: f64,
    /// A service 04 happened since the permanent code was set.
    cleared_since_permanent: bool,
    /// A once-per-drive test already ran this drive (reset by a clear, so it may run again).
    ran_once_this_cycle: bool,
    /// Engine running time since the drive started or the codes were cleared: a
    /// once-per-drive test needs the same share of it as its readiness monitor.
    running_s: f64,
}

impl DtcEntry {
    pub fn new(dtc: Dtc, kind: TestKind, causes: Vec<usize>) -> DtcEntry {
        let ftb = if dtc.to_string().starts_with('U') {
            0x87 // missing message
        } else {
            0x00
        };
        DtcEntry {
            dtc,
            ftb,
            kind,
            causes,
            test_failed: false,
            failed_this_cycle: false,
            tested_this_cycle: false,
            tested_since_clear: false,
            failed_since_clear: false,
            pending: false,
            pending_cycle: 0,
            confirmed: false,
            mil: false,
            permanent: false,
            passing_cycles: 0,
            warmups_without_failure: 0,
            occurrences: 0,
            fail_s: 0.0,
            pass_s: 0.0,
            cleared_since_permanent: false,
            ran_once_this_cycle: false,
            running_s: 0.0,
        }
    }

    /// The UDS status byte (ISO 14229-1 D.2).
    pub fn uds_status(&self) -> DtcStatus {
        let mut s = 0u8;
        let mut set = |on: bool, bit: u8| {
            if on {
                s |= bit;
            }
        };
        set(self.test_failed, DtcStatus::TEST_FAILED);
        set(
            self.failed_this_cycle,
            DtcStatus::TEST_FAILED_THIS_OPERATION_CYCLE,
        );
        set(self.pending, DtcStatus::PENDING_DTC);
        set(self.confirmed, DtcStatus::CONFIRMED_DTC);
        set(
            !self.tested_since_clear,
            DtcStatus::TEST_NOT_COMPLETED_SINCE_LAST_CLEAR,
        );
        set(
            self.failed_since_clear,
            DtcStatus::TEST_FAILED_SINCE_LAST_CLEAR,
        );
        set(
            !self.tested_this_cycle,
            DtcStatus::TEST_NOT_COMPLETED_THIS_OPERATION_CYCLE,
        );
        set(self.mil, DtcStatus::WARNING_INDICATOR_REQUESTED);
        DtcStatus(s)
    }

    /// Runs this code's test over one model step (the model already stepped; `prev_phase` is
    /// where the drive was before). Returns the verdict if the test reached one.
    pub fn evaluate(
        &mut self,
        model: &Model,
        cause: bool,
        prev_phase: f64,
        dt: f64,
    ) -> Option<Verdict> {
        let phase = model.phase();
        if model.engine_running {
            self.running_s += dt;
        }
        match self.kind.run_point() {
            Some(point) => {
                let _ = prev_phase;
                // As for the readiness monitors (`Readiness::step`): after a clear the test
                // runs again only once the engine has run its share of a drive, so a code is
                // never pending again while its monitor still reads "incomplete".
                let ran_long_enough = self.running_s >= (point - ENGINE_START) * model.cycle_s();
                if self.ran_once_this_cycle || phase < point || !ran_long_enough {
                    return None;
                }
                let verdict = once_per_drive(self.kind, model, cause)?;
                self.ran_once_this_cycle = true;
                Some(verdict)
            }
            None => {
                let enabled = match self.kind {
                    TestKind::Misfire => model.engine_running && model.runtime_s >= 5.0,
                    _ => true,
                };
                if !enabled {
                    return None;
                }
                let failing = match self.kind {
                    TestKind::Misfire => cause && model.misfire_rate > MISFIRE_THRESHOLD,
                    _ => cause,
                };
                if failing {
                    self.fail_s += dt;
                    self.pass_s = 0.0;
                    if self.fail_s >= 8.0 {
                        self.fail_s = 0.0;
                        return Some(Verdict::Failed);
                    }
                } else {
                    self.pass_s += dt;
                    self.fail_s = 0.0;
                    if self.pass_s >= 30.0 {
                        self.pass_s = 0.0;
                        return Some(Verdict::Passed);
                    }
                }
                None
            }
        }
    }

    /// Applies a verdict reached in drive `cycle`; returns what changed, in order.
    pub fn apply(&mut self, verdict: Verdict, cycle: u32) -> Vec<Transition> {
        let mut out = Vec::new();
        self.tested_this_cycle = true;
        self.tested_since_clear = true;
        match verdict {
            Verdict::Passed => self.test_failed = false,
            Verdict::Failed => {
                self.test_failed = true;
                if !self.failed_since_clear {
                    out.push(Transition::FirstFailure);
                }
                self.failed_since_clear = true;
                if !self.failed_this_cycle {
                    self.failed_this_cycle = true;
                    self.occurrences = self.occurrences.saturating_add(1);
                    if self.pending && self.pending_cycle < cycle && !self.confirmed {
                        self.confirmed = true;
                        self.mil = true;
                        self.permanent = true;
                        self.cleared_since_permanent = false;
                        out.push(Transition::BecameConfirmed);
                    } else if !self.pending {
                        self.pending = true;
                        self.pending_cycle = cycle;
                        out.push(Transition::BecamePending);
                    } else if self.confirmed && !self.mil {
                        // Failing again after the MIL went off: back on.
                        self.mil = true;
                        self.permanent = true;
                    }
                }
                self.passing_cycles = 0;
                self.warmups_without_failure = 0;
            }
        }
        out
    }

    /// Ends a drive: ages the code.
    pub fn end_cycle(&mut self, warmed_up: bool) {
        let ran_and_passed = self.tested_this_cycle && !self.failed_this_cycle;
        if ran_and_passed {
            self.pending = false;
            if self.mil {
                self.passing_cycles = self.passing_cycles.saturating_add(1);
                if self.passing_cycles >= PASSING_DRIVES_FOR_MIL_OFF {
                    self.mil = false;
                    self.permanent = false;
                }
            }
            if self.permanent && self.cleared_since_permanent {
                self.permanent = false;
            }
        }
        if !self.failed_this_cycle && warmed_up && self.confirmed && !self.mil {
            self.warmups_without_failure = self.warmups_without_failure.saturating_add(1);
            if self.warmups_without_failure >= WARMUPS_TO_ERASE {
                self.confirmed = false;
            }
        }
        self.tested_this_cycle = false;
        self.failed_this_cycle = false;
        self.fail_s = 0.0;
        self.pass_s = 0.0;
        self.ran_once_this_cycle = false;
        self.running_s = 0.0;
    }

    /// Service 04 / UDS 0x14: everything but the permanent code.
    pub fn clear(&mut self) {
        self.test_failed = false;
        self.failed_this_cycle = false;
        self.tested_this_cycle = false;
        self.tested_since_clear = false;
        self.failed_since_clear = false;
        self.pending = false;
        self.confirmed = false;
        self.mil = false;
        self.passing_cycles = 0;
        self.warmups_without_failure = 0;
        self.occurrences = 0;
        self.fail_s = 0.0;
        self.pass_s = 0.0;
        self.ran_once_this_cycle = false;
        self.running_s = 0.0;
        if self.permanent {
            self.cleared_since_permanent = true;
        }
    }
}

/// A once-per-drive test: `None` when its enable conditions do not hold now. It fails when
/// the model shows the fault *and* a fault naming this code is active (the model cannot tell
/// P0442 from P0455; the scenario says which it is).
fn once_per_drive(kind: TestKind, model: &Model, cause: bool) -> Option<Verdict> {
    let verdict = |shows: bool| {
        Some(if shows && cause {
            Verdict::Failed
        } else {
            Verdict::Passed
        })
    };
    match kind {
        TestKind::Catalyst => {
            if model.coolant_c < 70.0 || model.fuel_system != FuelSystem::ClosedLoop {
                return None;
            }
            let ratio = (model.o2_downstream_var / model.o2_upstream_var.max(1e-9)).sqrt();
            verdict(ratio > CATALYST_RATIO_THRESHOLD)
        }
        TestKind::Evap => {
            if !model.engine_running {
                return None;
            }
            verdict(model.evap_pa > EVAP_VACUUM_PA)
        }
        TestKind::Thermostat => {
            if model.ambient_c < -7.0 {
                return None;
            }
            verdict(model.coolant_c < THERMOSTAT_THRESHOLD_C)
        }
        TestKind::HybridBattery => verdict(model.hybrid_battery_life < HYBRID_LIFE_THRESHOLD),
        TestKind::Misfire | TestKind::Continuous => verdict(cause),
    }
}

/// A readiness monitor (J1979 PID 01/41 bit positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    Misfire,
    FuelSystem,
    Components,
    Catalyst,
    Evap,
    O2Sensor,
    O2Heater,
    Egr,
}

impl Monitor {
    /// `(continuous, bit)`: byte B bit for continuous monitors, byte C/D bit otherwise.
    pub fn bit(self) -> (bool, u8) {
        match self {
            Monitor::Misfire => (true, 0),
            Monitor::FuelSystem => (true, 1),
            Monitor::Components => (true, 2),
            Monitor::Catalyst => (false, 0),
            Monitor::Evap => (false, 2),
            Monitor::O2Sensor => (false, 5),
            Monitor::O2Heater => (false, 6),
            Monitor::Egr => (false, 7),
        }
    }

    /// When in a drive the monitor completes, and whether it needs a warm engine.
    fn completes_at(self) -> (f64, bool) {
        match self {
            Monitor::Components => (0.03, false),
            Monitor::O2Heater => (0.08, false),
            Monitor::FuelSystem => (0.10, true),
            Monitor::Misfire => (0.15, false),
            Monitor::O2Sensor => (0.45, true),
            Monitor::Catalyst => (0.60, true),
            Monitor::Egr => (0.75, true),
            Monitor::Evap => (0.972, true),
        }
    }
}

/// The readiness monitors one ECU supports, and which have completed.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub supported: Vec<Monitor>,
    complete_since_clear: Vec<Monitor>,
    complete_this_cycle: Vec<Monitor>,
    /// Engine running time since the drive started or the codes were cleared.
    running_s: f64,
}

impl Readiness {
    pub fn new(supported: Vec<Monitor>) -> Readiness {
        Readiness {
            supported,
            complete_since_clear: Vec::new(),
            complete_this_cycle: Vec::new(),
            running_s: 0.0,
        }
    }

    /// Completes the monitors whose point in the drive has come, once their enable
    /// conditions (a warm engine for most) hold.
    pub fn step(&mut self, model: &Model, dt: f64) {
        if !model.engine_running {
            return;
        }
        self.running_s += dt;
        let phase = model.phase();
        for &m in &self.supported {
            let (point, needs_warm) = m.completes_at();
            let warm_enough = !needs_warm || model.coolant_c >= 60.0;
            // A monitor needs its share of a drive's running time since the drive started
            // or the codes were cleared, whichever is later.
            let ran_long_enough = self.running_s >= (point - ENGINE_START) * model.cycle_s();
            if phase >= point && warm_enough && ran_long_enough {
                if !self.complete_since_clear.contains(&m) {
                    self.complete_since_clear.push(m);
                }
                if !self.complete_this_cycle.contains(&m) {
                    self.complete_this_cycle.push(m);
                }
            }
        }
    }

    pub fn end_cycle(&mut self) {
        self.complete_this_cycle.clear();
        self.running_s = 0.0;
    }

    pub fn clear(&mut self) {
        self.complete_since_clear.clear();
        self.complete_this_cycle.clear();
        self.running_s = 0.0;
    }

    pub fn complete_since_clear(&self, m: Monitor) -> bool {
        self.complete_since_clear.contains(&m)
    }

    /// Bytes B, C, D of PID 01 (since clear) or PID 41 (this drive): supported/enabled bits
    /// and *incomplete* bits. Spark ignition (byte B bit 3 clear).
    pub fn bytes(&self, this_cycle: bool) -> [u8; 3] {
        let complete = if this_cycle {
            &self.complete_this_cycle
        } else {
            &self.complete_since_clear
        };
        let mut out = [0u8; 3];
        for &m in &self.supported {
            let incomplete = !complete.contains(&m);
            match m.bit() {
                (true, bit) => {
                    out[0] |= 1 << bit;
                    if incomplete {
                        out[0] |= 1 << (bit + 4);
                    }
                }
                (false, bit) => {
                    out[1] |= 1 << bit;
                    if incomplete {
                        out[2] |= 1 << bit;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> DtcEntry {
        DtcEntry::new(
            "P0420".parse().unwrap_or(Dtc::from_raw(0x0420)),
            TestKind::Catalyst,
            vec![0],
        )
    }

    #[test]
    fn two_trip_logic_pending_then_confirmed_then_healing() {
        let mut e = entry();
        assert_eq!(e.uds_status(), DtcStatus(0x50));
        assert_eq!(
            e.apply(Verdict::Failed, 0),
            vec![Transition::FirstFailure, Transition::BecamePending]
        );
        assert!(e.pending && !e.confirmed);
        assert_eq!(e.uds_status(), DtcStatus(0x01 | 0x02 | 0x04 | 0x20));
        // Failing again the same drive changes nothing.
        assert!(e.apply(Verdict::Failed, 0).is_empty());
        e.end_cycle(true);
        assert!(e.pending);
        assert_eq!(
            e.apply(Verdict::Failed, 1),
            vec![Transition::BecameConfirmed]
        );
        assert!(e.confirmed && e.mil && e.permanent && e.pending);
        assert_eq!(e.uds_status(), DtcStatus(0x8F | 0x20));
        e.end_cycle(true);
        for cycle in 2..5 {
            assert!(e.mil, "MIL still on before drive {cycle}");
            e.apply(Verdict::Passed, cycle);
            e.end_cycle(true);
        }
        assert!(!e.mil && !e.permanent && !e.pending && e.confirmed);
    }

    #[test]
    fn clear_keeps_the_permanent_code_until_a_passing_drive() {
        let mut e = entry();
        e.apply(Verdict::Failed, 0);
        e.end_cycle(true);
        e.apply(Verdict::Failed, 1);
        e.clear();
        assert!(!e.pending && !e.confirmed && !e.mil && e.permanent);
        assert_eq!(e.uds_status(), DtcStatus(0x50));
        e.end_cycle(true);
        e.apply(Verdict::Passed, 2);
        e.end_cycle(true);
        assert!(!e.permanent);
    }

    #[test]
    fn a_cause_that_persists_after_clear_comes_back_pending() {
        let mut e = entry();
        e.apply(Verdict::Failed, 0);
        e.clear();
        assert_eq!(
            e.apply(Verdict::Failed, 0),
            vec![Transition::FirstFailure, Transition::BecamePending]
        );
    }

    #[test]
    fn readiness_bytes() {
        let mut r = Readiness::new(vec![
            Monitor::Misfire,
            Monitor::Components,
            Monitor::Catalyst,
        ]);
        assert_eq!(r.bytes(false), [0b0101_0101, 0x01, 0x01]);
        r.complete_since_clear.push(Monitor::Catalyst);
        assert_eq!(r.bytes(false), [0b0101_0101, 0x01, 0x00]);
        r.clear();
        assert_eq!(r.bytes(false), [0b0101_0101, 0x01, 0x01]);
    }
}
