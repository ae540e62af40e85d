//! The physical model of the simulated car: a deterministic, seeded drive cycle and the engine
//! quantities an OBD-II tester can see, stepped by the caller in vehicle time.
//!
//! One *drive* (an OBD operation cycle) lasts `cycle_s` vehicle seconds: ignition on, engine
//! start, a warm-up idle, three urban stop-and-go blocks, a highway stretch, an urban return,
//! a final idle, then the engine stops with the ignition still on. Then the car soaks
//! (`soak_s`, cooling analytically, taking no time) and the next drive starts. Each drive picks
//! its own cruise speeds from the seed.
//!
//! The quantities follow one another the way they do in a car: speed follows the target with
//! acceleration limits; the gear follows the speed; rpm is the wheel speed times the gear and
//! final-drive ratios (above a torque-converter idle floor); load comes from the road-load
//! power at that rpm; MAP and throttle follow load; MAF is `rpm/120 · displacement · air
//! density · volumetric efficiency · MAP/baro`; coolant warms from the heat released
//! (proportional to airflow) against a thermostat-controlled radiator; fuel trims react to
//! faults and are learned into the long-term trim; the upstream O2 sensor switches in closed
//! loop and the downstream one stays steady unless the catalyst has lost its oxygen storage.
//!
//! What this module does not do: OBD encoding, DTCs or time on any clock (see
//! [`crate::faults`] and [`crate::vehicle`]).

use std::f64::consts::TAU;

use crate::scenario::DriveParams;

/// Largest step the model takes, vehicle seconds.
pub const STEP_S: f64 = 0.1;

/// Forward gear ratios of the 6-speed automatic, and the final drive.
pub const GEAR_RATIOS: [f64; 6] = [4.15, 2.37, 1.56, 1.16, 0.86, 0.69];
pub const FINAL_DRIVE: f64 = 3.2;
/// Rolling circumference of a 205/55 R16 tyre, metres.
pub const TYRE_CIRCUMFERENCE_M: f64 = 1.985;
/// Coolant temperature the thermostat regulates to (fully open above `+10`).
pub const THERMOSTAT_OPENS_C: f64 = 88.0;
/// Stoichiometric air-fuel ratio of gasoline and its density.
const STOICH_AFR: f64 = 14.7;
const FUEL_DENSITY_G_PER_L: f64 = 745.0;
/// Volumetric efficiency used for the speed-density airflow.
const VOLUMETRIC_EFFICIENCY: f64 = 0.85;
/// When the drive's phases start, as fractions of the drive.
pub const ENGINE_START: f64 = 0.005;
pub const ENGINE_STOP: f64 = 0.975;

/// Engine speed of a warm engine at idle.
const IDLE_RPM_WARM: f64 = 750.0;

/// A small deterministic generator (SplitMix64): the same seed gives the same drive.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// What the active faults do to the car at this moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Effects {
    /// Misfiring cylinders: 0 none, 1 one cylinder, 2 or more random.
    pub misfiring_cylinders: u8,
    /// The catalyst has lost its oxygen storage.
    pub catalyst_worn: bool,
    /// The EVAP system has a large leak (e.g. fuel cap off).
    pub evap_leak: bool,
    /// The thermostat is stuck open.
    pub thermostat_stuck_open: bool,
    /// The hybrid battery pack has deteriorated.
    pub hybrid_battery_worn: bool,
}

/// Fuel system status (PID 0x03 byte A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuelSystem {
    /// Engine off: the system is not reported (0).
    Off,
    /// Open loop, engine not yet warm enough / O2 sensor not ready (0x01).
    OpenLoopCold,
    /// Closed loop on the O2 sensor (0x02).
    ClosedLoop,
    /// Open loop because of driving conditions: deceleration fuel cut (0x04).
    OpenLoopDecel,
}

impl FuelSystem {
    pub fn code(self) -> u8 {
        match self {
            FuelSystem::Off => 0x00,
            FuelSystem::OpenLoopCold => 0x01,
            FuelSystem::ClosedLoop => 0x02,
            FuelSystem::OpenLoopDecel => 0x04,
        }
    }
}

/// One point of the drive's speed plan: from `at` (fraction of the drive) aim for `kmh`.
#[derive(Debug, Clone, Copy)]
struct Target {
    at: f64,
    kmh: f64,
}

/// The car's state. Fields are the current values, in physical units.
#[derive(Debug, Clone)]
pub struct Model {
    params: DriveParams,
    rng: Rng,
    plan: Vec<Target>,
    /// Vehicle seconds since the scenario started.
    pub t: f64,
    /// Drive number, from 0.
    pub cycle: u32,
    /// Seconds into the current drive.
    pub phase_s: f64,
    pub engine_running: bool,
    pub speed_kmh: f64,
    /// Longitudinal acceleration, m/s².
    pub accel: f64,
    /// Selected gear, 1–6 (the car is always in drive while the engine runs); 0 with the
    /// engine off.
    pub gear: u8,
    pub rpm: f64,
    /// Calculated load, %.
    pub load: f64,
    /// Absolute throttle position, %.
    pub throttle: f64,
    pub map_kpa: f64,
    pub baro_kpa: f64,
    pub maf_gs: f64,
    pub coolant_c: f64,
    /// Coolant temperature when the engine started this drive (for warm-up counting).
    pub coolant_at_start_c: f64,
    pub oil_c: f64,
    pub iat_c: f64,
    pub ambient_c: f64,
    pub fuel_system: FuelSystem,
    /// Short- and long-term fuel trims, bank 1, %.
    pub stft: f64,
    pub ltft: f64,
    /// Upstream and downstream O2 sensor voltages (bank 1 sensors 1 and 2), V.
    pub o2_upstream_v: f64,
    pub o2_downstream_v: f64,
    /// Running variance of the two O2 voltages over the last few tens of seconds: what the
    /// catalyst monitor compares.
    pub o2_upstream_var: f64,
    pub o2_downstream_var: f64,
    pub fuel_l: f64,
    pub fuel_rate_lph: f64,
    pub voltage: f64,
    /// Seconds since the engine started this drive (0 with the engine off).
    pub runtime_s: f64,
    pub odometer_km: f64,
    pub catalyst_c: f64,
    pub timing_advance: f64,
    /// EVAP vapour pressure, Pa (gauge).
    pub evap_pa: f64,
    /// Misfires per 1000 cylinder firings, smoothed.
    pub misfire_rate: f64,
    /// Hybrid battery pack remaining life, %.
    pub hybrid_battery_life: f64,
    o2_phase: f64,
    learned_trim: f64,
}

impl Model {
    pub fn new(params: &DriveParams, seed: u64) -> Model {
        let mut rng = Rng::new(seed);
        let learned_trim = rng.range(-1.5, 3.0);
        let plan = plan_drive(&mut rng);
        let ambient = params.ambient_c;
        Model {
            params: params.clone(),
            rng,
            plan,
            t: 0.0,
            cycle: 0,
            phase_s: 0.0,
            engine_running: false,
            speed_kmh: 0.0,
            accel: 0.0,
            gear: 0,
            rpm: 0.0,
            load: 0.0,
            throttle: 0.0,
            map_kpa: 101.0,
            baro_kpa: 101.0,
            maf_gs: 0.0,
            coolant_c: ambient,
            coolant_at_start_c: ambient,
            oil_c: ambient,
            iat_c: ambient,
            ambient_c: ambient,
            fuel_system: FuelSystem::Off,
            stft: 0.0,
            ltft: learned_trim,
            o2_upstream_v: 0.45,
            o2_downstream_v: 0.45,
            o2_upstream_var: 0.0,
            o2_downstream_var: 0.0,
            fuel_l: params.fuel_tank_l * params.fuel_start_percent / 100.0,
            fuel_rate_lph: 0.0,
            voltage: 12.6,
            runtime_s: 0.0,
            odometer_km: params.odometer_km,
            catalyst_c: ambient,
            timing_advance: 0.0,
            evap_pa: 0.0,
            misfire_rate: 0.0,
            hybrid_battery_life: 78.0,
            o2_phase: 0.0,
            learned_trim,
        }
    }

    /// Length of one drive, vehicle seconds.
    pub fn cycle_s(&self) -> f64 {
        self.params.cycle_s
    }

    /// How far into the current drive we are, 0 to 1.
    pub fn phase(&self) -> f64 {
        self.phase_s / self.params.cycle_s
    }

    pub fn fuel_level_percent(&self) -> f64 {
        (self.fuel_l / self.params.fuel_tank_l * 100.0).clamp(0.0, 100.0)
    }

    /// The phase (fraction of the drive) at which the final idle's EVAP leak test runs.
    pub const EVAP_TEST_FROM: f64 = 0.93;

    /// Advances by `dt` vehicle seconds (at most [`STEP_S`]) under `effects`, within the
    /// current drive. The caller ends drives with [`Model::start_next_drive`].
    pub fn step(&mut self, dt: f64, effects: &Effects) {
        let dt = dt.clamp(0.0, STEP_S);
        self.t += dt;
        self.phase_s += dt;
        let phase = self.phase();
        let was_running = self.engine_running;
        self.engine_running = (ENGINE_START..ENGINE_STOP).contains(&phase);
        if self.engine_running && !was_running {
            self.coolant_at_start_c = self.coolant_c;
            self.runtime_s = 0.0;
        }
        if self.engine_running {
            self.runtime_s += dt;
        } else {
            self.runtime_s = 0.0;
        }

        self.step_motion(dt, phase);
        self.step_engine(dt, effects);
        self.step_temperatures(dt, effects);
        self.step_mixture(dt, effects);
        self.step_o2(dt, effects);
        self.step_misc(dt, phase, effects);
    }

    /// Ends the current drive: the car soaks for `soak_s` (coolant and oil cool towards
    /// ambient) and the next drive starts with a fresh speed plan.
    pub fn start_next_drive(&mut self) {
        let keep = (-self.params.soak_s / 7200.0).exp();
        let ambient = self.ambient_c;
        self.coolant_c = ambient + (self.coolant_c - ambient) * keep;
        self.oil_c = ambient + (self.oil_c - ambient) * keep;
        self.catalyst_c = ambient + (self.catalyst_c - ambient) * keep * keep;
        self.iat_c = ambient + (self.iat_c - ambient) * keep;
        self.cycle += 1;
        self.phase_s = 0.0;
        self.plan = plan_drive(&mut self.rng);
    }

    /// The target speed of the plan at `phase`.
    fn target_kmh(&self, phase: f64) -> f64 {
        self.plan
            .iter()
            .take_while(|target| target.at <= phase)
            .last()
            .map_or(0.0, |target| target.kmh)
    }

    fn step_motion(&mut self, dt: f64, phase: f64) {
        let target = if self.engine_running {
            self.target_kmh(phase)
        } else {
            0.0
        };
        let v = self.speed_kmh / 3.6;
        let want = target / 3.6;
        let max_accel = 2.2 * (1.0 - self.speed_kmh / 220.0);
        let max_decel = 2.8;
        let accel = ((want - v) / 2.0).clamp(-max_decel, max_accel);
        let new_v = (v + accel * dt).max(0.0);
        self.accel = if dt > 0.0 { (new_v - v) / dt } else { 0.0 };
        self.speed_kmh = new_v * 3.6;
        self.odometer_km += new_v * dt / 1000.0;
    }

    /// Engine speed from the wheels in `gear` (1-based).
    pub fn wheel_rpm_in_gear(speed_kmh: f64, gear: u8) -> f64 {
        let ratio = GEAR_RATIOS
            .get(usize::from(gear.max(1)) - 1)
            .copied()
            .unwrap_or(1.0);
        speed_kmh / 3.6 / TYRE_CIRCUMFERENCE_M * 60.0 * ratio * FINAL_DRIVE
    }

    pub fn idle_rpm(&self) -> f64 {
        IDLE_RPM_WARM + 350.0 * ((60.0 - self.coolant_c) / 60.0).clamp(0.0, 1.0)
    }

    fn step_engine(&mut self, dt: f64, effects: &Effects) {
        let _ = dt;
        let baro = self.baro_kpa;
        if !self.engine_running {
            self.gear = 0;
            self.rpm = 0.0;
            self.load = 0.0;
            self.throttle = 0.0;
            self.map_kpa = baro;
            self.maf_gs = 0.0;
            return;
        }
        // Gear: upshift above a throttle-dependent rpm, downshift when it gets low.
        let mut gear = self.gear.clamp(1, 6);
        let pedal = (self.accel / 2.2).clamp(0.0, 1.0);
        let upshift = 2000.0 + 1400.0 * pedal;
        while gear < 6 && Model::wheel_rpm_in_gear(self.speed_kmh, gear) > upshift {
            gear += 1;
        }
        while gear > 1 && Model::wheel_rpm_in_gear(self.speed_kmh, gear) < 1150.0 {
            gear -= 1;
        }
        self.gear = gear;
        // Locked converter above the idle floor; slipping (idle floor) below it.
        let mut rpm = Model::wheel_rpm_in_gear(self.speed_kmh, gear).max(self.idle_rpm());
        let rough = match effects.misfiring_cylinders {
            0 => 8.0,
            1 => 45.0,
            _ => 90.0,
        };
        rpm += rough * (self.rng.unit() - 0.5) * 2.0;
        self.rpm = rpm.max(300.0);

        // Load: road-load power over the torque the engine can give at this rpm.
        let v = self.speed_kmh / 3.6;
        let mass = 1450.0;
        let road = 0.5 * 1.2 * 0.65 * v * v * v + mass * 9.81 * 0.011 * v + mass * self.accel * v;
        let omega = self.rpm / 60.0 * TAU;
        let max_torque = 95.0 * self.params.displacement_l;
        let demand = (road / 0.9).max(0.0) / omega.max(1.0);
        let decel_cut = self.accel < -0.8 && self.speed_kmh > 20.0;
        self.load = if decel_cut {
            8.0
        } else {
            (18.0 + 82.0 * demand / max_torque).clamp(12.0, 100.0)
        };
        self.throttle = (11.0 + 0.8 * (self.load - 18.0)).clamp(7.0, 92.0);
        self.map_kpa = baro * (0.22 + 0.76 * ((self.load - 12.0) / 88.0).clamp(0.0, 1.0));
        // Speed-density airflow: what the MAF sensor reads.
        let air_density_g_per_l = baro * 1000.0 / (287.05 * (self.iat_c + 273.15));
        self.maf_gs = self.rpm / 120.0
            * self.params.displacement_l
            * air_density_g_per_l
            * VOLUMETRIC_EFFICIENCY
            * (self.map_kpa / baro);
        self.timing_advance = (6.0 + self.rpm / 250.0 - 0.18 * (self.load - 20.0)).clamp(-10.0, 45.0);
    }

    fn step_temperatures(&mut self, dt: f64, effects: &Effects) {
        let ambient = self.ambient_c;
        let heat = if self.engine_running {
            0.04 * (self.maf_gs + 4.0)
        } else {
            0.0
        };
        let opening = if effects.thermostat_stuck_open {
            0.35
        } else {
            ((self.coolant_c - THERMOSTAT_OPENS_C) / 10.0).clamp(0.0, 1.0)
        };
        let radiator = 0.012 + 0.0004 * self.speed_kmh;
        let k = 0.0015 + opening * radiator;
        self.coolant_c += (heat - k * (self.coolant_c - ambient)) * dt;
        let oil_target = if self.engine_running {
            self.coolant_c + 8.0 * self.load / 100.0
        } else {
            ambient
        };
        self.oil_c += (oil_target - self.oil_c) * (dt / 150.0).min(1.0);
        let underhood = (self.coolant_c - ambient).max(0.0) / 70.0;
        let ram = (self.speed_kmh / 80.0).min(1.0);
        let iat_target = ambient + 3.0 + 16.0 * underhood * (1.0 - 0.7 * ram);
        self.iat_c += (iat_target - self.iat_c) * (dt / 60.0).min(1.0);
        let cat_target = if self.engine_running {
            280.0
                + 4.5 * self.load
                + 0.06 * self.rpm
                + 60.0 * f64::from(effects.misfiring_cylinders.min(2))
        } else {
            ambient
        };
        let tau = if self.engine_running { 40.0 } else { 300.0 };
        self.catalyst_c += (cat_target - self.catalyst_c) * (dt / tau).min(1.0);
    }

    fn step_mixture(&mut self, dt: f64, effects: &Effects) {
        if !self.engine_running {
            self.fuel_system = FuelSystem::Off;
            self.stft = 0.0;
            self.fuel_rate_lph = 0.0;
            return;
        }
        let warm = self.coolant_c >= 35.0 && self.runtime_s >= 20.0;
        self.fuel_system = if !warm {
            FuelSystem::OpenLoopCold
        } else if self.load <= 8.0 {
            FuelSystem::OpenLoopDecel
        } else {
            FuelSystem::ClosedLoop
        };
        // Unburnt oxygen from misfiring cylinders reads lean upstream: the trims add fuel.
        let lean_error = match effects.misfiring_cylinders {
            0 => 0.0,
            1 => 9.0,
            _ => 15.0,
        };
        if self.fuel_system == FuelSystem::ClosedLoop {
            let ltft_target = self.learned_trim + 0.8 * lean_error;
            self.ltft += (ltft_target - self.ltft) * (dt / 120.0).min(1.0);
            let residual = self.learned_trim + lean_error - self.ltft;
            let ripple = 2.5 * (self.o2_phase).sin() + 0.6 * (self.rng.unit() - 0.5);
            self.stft = (residual - ripple).clamp(-25.0, 25.0);
        } else {
            self.stft = 0.0;
        }
        let enrich = 1.0 + (self.stft + self.ltft) / 100.0;
        let fuel_gs = if self.fuel_system == FuelSystem::OpenLoopDecel {
            0.0
        } else {
            self.maf_gs / STOICH_AFR * enrich
        };
        self.fuel_rate_lph = fuel_gs / FUEL_DENSITY_G_PER_L * 3600.0;
        self.fuel_l = (self.fuel_l - fuel_gs / FUEL_DENSITY_G_PER_L * dt).max(0.0);
    }

    fn step_o2(&mut self, dt: f64, effects: &Effects) {
        // The closed-loop limit cycle: about 1.2 Hz.
        self.o2_phase = (self.o2_phase + TAU * 1.2 * dt) % TAU;
        let noise = 0.02 * (self.rng.unit() - 0.5);
        let (up, down) = match self.fuel_system {
            FuelSystem::Off => (0.45, 0.45),
            FuelSystem::OpenLoopCold => (0.45 + noise, 0.45),
            FuelSystem::OpenLoopDecel => (0.06 + noise, 0.12),
            FuelSystem::ClosedLoop => {
                let lean = if effects.misfiring_cylinders > 0 { 0.06 } else { 0.0 };
                let up = 0.45 - lean + 0.38 * self.o2_phase.sin() + noise;
                let down = if effects.catalyst_worn {
                    // No oxygen storage: the downstream sensor sees the upstream switching.
                    0.45 + 0.30 * (self.o2_phase - 0.5).sin() + noise
                } else {
                    0.68 + 0.02 * (self.t / 7.0).sin() + noise / 2.0
                };
                (up, down)
            }
        };
        self.o2_upstream_v = up.clamp(0.0, 1.275);
        self.o2_downstream_v = down.clamp(0.0, 1.275);
        // Exponentially weighted variance, ~20 s window.
        let alpha = (dt / 20.0).min(1.0);
        let track = |var: &mut f64, v: f64, centre: f64| {
            *var += alpha * ((v - centre).powi(2) - *var);
        };
        track(&mut self.o2_upstream_var, self.o2_upstream_v, 0.45);
        let down_centre = if effects.catalyst_worn { 0.45 } else { 0.68 };
        track(&mut self.o2_downstream_var, self.o2_downstream_v, down_centre);
    }

    fn step_misc(&mut self, dt: f64, phase: f64, effects: &Effects) {
        self.voltage = if self.engine_running {
            14.2 + 0.1 * (self.rng.unit() - 0.5)
        } else {
            12.5 + 0.05 * (self.rng.unit() - 0.5)
        };
        // EVAP: near atmospheric, except during the leak test in the final idle, when the
        // purge valve pulls the sealed system down to about -1.8 kPa (a leak stops that).
        let evap_target = if self.engine_running && phase >= Model::EVAP_TEST_FROM {
            if effects.evap_leak { -60.0 } else { -1800.0 }
        } else {
            -120.0
        };
        self.evap_pa += (evap_target - self.evap_pa) * (dt / 4.0).min(1.0);
        let misfire_target = if self.engine_running {
            match effects.misfiring_cylinders {
                0 => 0.5,
                1 => 40.0,
                _ => 90.0,
            }
        } else {
            0.0
        };
        self.misfire_rate += (misfire_target - self.misfire_rate) * (dt / 5.0).min(1.0);
        let life_target = if effects.hybrid_battery_worn { 22.0 } else { 78.0 };
        self.hybrid_battery_life += (life_target - self.hybrid_battery_life) * (dt / 300.0).min(1.0);
    }

    /// Warm-up per J1979: the coolant rose at least 22 °C since the engine started and reached
    /// at least 71 °C.
    pub fn warmed_up(&self) -> bool {
        self.coolant_c - self.coolant_at_start_c >= 22.0 && self.coolant_c >= 71.0
    }
}

/// One drive's speed plan: urban stop-and-go, a highway stretch, back into town.
fn plan_drive(rng: &mut Rng) -> Vec<Target> {
    let mut plan = vec![Target { at: 0.0, kmh: 0.0 }];
    let mut add = |at: f64, kmh: f64| plan.push(Target { at, kmh });
    add(0.08, rng.range(45.0, 55.0));
    add(0.17, 0.0);
    add(0.19, rng.range(35.0, 45.0));
    add(0.27, 0.0);
    add(0.29, rng.range(50.0, 60.0));
    add(0.37, 0.0);
    add(0.39, rng.range(101.0, 115.0));
    add(0.58, rng.range(90.0, 100.0));
    add(0.64, rng.range(105.0, 117.0));
    add(0.80, 50.0);
    add(0.88, 0.0);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DriveParams {
        DriveParams {
            cycle_s: 480.0,
            ambient_c: 20.0,
            displacement_l: 2.0,
            fuel_tank_l: 50.0,
            fuel_start_percent: 60.0,
            odometer_km: 1000.0,
            soak_s: 4.0 * 3600.0,
        }
    }

    /// Runs a drive, calling `check` after every step.
    fn drive(effects: Effects, mut check: impl FnMut(&Model)) -> Model {
        let mut m = Model::new(&params(), 7);
        while m.phase_s < m.cycle_s() - STEP_S / 2.0 {
            m.step(STEP_S, &effects);
            check(&m);
        }
        m
    }

    #[test]
    fn rpm_follows_speed_and_gear_when_the_converter_is_locked() {
        let mut checked = 0;
        drive(Effects::default(), |m| {
            if m.engine_running && m.speed_kmh > 40.0 {
                let wheel = Model::wheel_rpm_in_gear(m.speed_kmh, m.gear);
                if wheel > m.idle_rpm() + 20.0 {
                    assert!((m.rpm - wheel).abs() < 10.0, "rpm {} wheel {}", m.rpm, wheel);
                    checked += 1;
                }
            }
        });
        assert!(checked > 500, "only {checked} locked samples");
    }

    #[test]
    fn gear_rises_with_speed_and_rpm_stays_in_a_sane_band() {
        drive(Effects::default(), |m| {
            if m.engine_running {
                assert!((1..=6).contains(&m.gear));
                assert!((500.0..4500.0).contains(&m.rpm), "rpm {}", m.rpm);
                if m.speed_kmh > 95.0 {
                    assert!(m.gear >= 5, "gear {} at {} km/h", m.gear, m.speed_kmh);
                }
                if m.speed_kmh < 10.0 {
                    assert!(m.gear <= 2);
                }
            } else {
                assert_eq!(m.rpm, 0.0);
                assert_eq!(m.speed_kmh, 0.0);
            }
        });
    }

    #[test]
    fn maf_follows_rpm_and_load() {
        let mut samples = Vec::new();
        drive(Effects::default(), |m| {
            if m.engine_running && m.load > 12.5 {
                samples.push((m.rpm, m.map_kpa, m.load, m.maf_gs, m.iat_c));
            }
        });
        for &(rpm, map, _, maf, iat) in &samples {
            let density = 101.0 * 1000.0 / (287.05 * (iat + 273.15));
            let expected = rpm / 120.0 * 2.0 * density * VOLUMETRIC_EFFICIENCY * map / 101.0;
            assert!((maf - expected).abs() < 1e-9);
        }
        // Idle airflow of a 2-litre engine is a few g/s; the highway needs several times it.
        let idle = samples.iter().find(|s| s.0 < 1000.0).map(|s| s.3);
        let cruise = samples.iter().filter(|s| s.0 > 1800.0).map(|s| s.3).fold(0.0, f64::max);
        let idle = idle.unwrap_or(0.0);
        assert!((2.0..6.0).contains(&idle), "idle MAF {idle}");
        assert!(cruise > 3.0 * idle, "cruise {cruise} vs idle {idle}");
        // Load and MAP rise together.
        for pair in samples.windows(2) {
            if let [a, b] = pair
                && b.2 > a.2
            {
                assert!(b.1 >= a.1);
            }
        }
    }

    #[test]
    fn coolant_warms_to_the_thermostat_and_a_stuck_thermostat_keeps_it_cold() {
        let healthy = drive(Effects::default(), |_| {});
        assert!((84.0..96.0).contains(&healthy.coolant_c), "{}", healthy.coolant_c);
        let mut warm_at = None;
        drive(Effects::default(), |m| {
            if warm_at.is_none() && m.warmed_up() {
                warm_at = Some(m.phase());
            }
        });
        assert!(warm_at.is_some_and(|p| p < 0.5), "warm-up at {warm_at:?}");
        let stuck = Effects {
            thermostat_stuck_open: true,
            ..Effects::default()
        };
        let mut max = 0.0f64;
        drive(stuck, |m| max = max.max(m.coolant_c));
        assert!(max < 71.0, "stuck-open thermostat reached {max}");
        assert!(max > 40.0, "stuck-open thermostat stayed at {max}");
    }

    #[test]
    fn o2_sensors_and_trims_react_to_faults() {
        let mut healthy = Model::new(&params(), 3);
        let mut worn = Model::new(&params(), 3);
        let mut misfire = Model::new(&params(), 3);
        let cat = Effects {
            catalyst_worn: true,
            ..Effects::default()
        };
        let mis = Effects {
            misfiring_cylinders: 1,
            ..Effects::default()
        };
        while healthy.phase() < 0.6 {
            healthy.step(STEP_S, &Effects::default());
            worn.step(STEP_S, &cat);
            misfire.step(STEP_S, &mis);
        }
        assert_eq!(healthy.fuel_system, FuelSystem::ClosedLoop);
        let ratio = |m: &Model| (m.o2_downstream_var / m.o2_upstream_var).sqrt();
        assert!(ratio(&healthy) < 0.2, "healthy ratio {}", ratio(&healthy));
        assert!(ratio(&worn) > 0.6, "worn ratio {}", ratio(&worn));
        assert!(healthy.ltft.abs() < 4.0);
        assert!(misfire.ltft > healthy.ltft + 4.0, "misfire ltft {}", misfire.ltft);
        assert!(misfire.catalyst_c > healthy.catalyst_c);
    }

    #[test]
    fn fuel_falls_distance_grows_and_the_same_seed_gives_the_same_drive() {
        let a = drive(Effects::default(), |_| {});
        let b = drive(Effects::default(), |_| {});
        assert_eq!(a.odometer_km, b.odometer_km);
        assert!(a.fuel_l < 30.0 && a.fuel_l > 29.0, "fuel {}", a.fuel_l);
        let km = a.odometer_km - 1000.0;
        assert!((5.0..12.0).contains(&km), "drove {km} km");
    }

    #[test]
    fn soak_cools_the_engine_for_the_next_drive() {
        let mut m = drive(Effects::default(), |_| {});
        m.start_next_drive();
        assert_eq!(m.cycle, 1);
        assert!(m.coolant_c < 35.0, "after soak {}", m.coolant_c);
    }
}
