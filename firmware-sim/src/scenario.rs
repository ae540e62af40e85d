//! Scenarios: a vehicle's identity, its drive cycle and the faults scripted over time, read
//! from TOML (`firmware-sim/scenarios/*.toml` are built in; any other file can be loaded by
//! path) and validated into typed values before a vehicle is built from them.
//!
//! Times in a scenario are *vehicle* seconds: a fault that starts at `start_s = 300` starts five
//! minutes into the first drive. `time_scale` (vehicle seconds per second on the serving clock,
//! 40 by default) compresses the drives so that a scenario plays out in tens of seconds; it can
//! be overridden without changing the story.
//!
//! What this module does not do: simulate anything. It only describes.

use std::path::Path;

use serde::Deserialize;
use telltale_obd::dtc::Dtc;
use telltale_obd::vin::Vin;

/// The built-in scenarios: name and file contents.
const BUILT_IN: &[(&str, &str)] = &[
    ("healthy", include_str!("../scenarios/healthy.toml")),
    ("misfire", include_str!("../scenarios/misfire.toml")),
    ("catalyst", include_str!("../scenarios/catalyst.toml")),
    ("evap-leak", include_str!("../scenarios/evap-leak.toml")),
    ("thermostat", include_str!("../scenarios/thermostat.toml")),
    ("lost-comm", include_str!("../scenarios/lost-comm.toml")),
    ("hybrid", include_str!("../scenarios/hybrid.toml")),
];

/// Why a scenario could not be loaded. Every message names the file (or built-in) it is about.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("no scenario called {name:?}: not a built-in ({known}) and no such file")]
    Unknown { name: String, known: String },
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: `{key}`: {problem}")]
    Invalid {
        origin: String,
        key: String,
        problem: String,
    },
}

/// A validated scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Seeds every pseudo-random choice, so the same scenario plays out the same way.
    pub seed: u64,
    /// Vehicle seconds per second of the serving clock.
    pub time_scale: f64,
    pub identity: Identity,
    pub drive: DriveParams,
    pub engine: EcuConfig,
    pub transmission: EcuConfig,
    /// The 29-bit hybrid/battery controller; `None` when the scenario leaves it out.
    pub hybrid: Option<EcuConfig>,
    pub faults: Vec<Fault>,
}

/// Who the vehicle is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub vin: Vin,
    pub make: String,
    pub model: String,
    pub year: u16,
    /// A hybrid: PID 0x51 reports "hybrid gasoline".
    pub hybrid: bool,
}

/// Service 09 identity of one ECU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcuConfig {
    /// Service 09 infotype 0A: acronym (up to 4 characters) and name (up to 15), e.g.
    /// `ECM` and `EngineControl`.
    pub acronym: String,
    pub long_name: String,
    /// Service 09 infotype 04, up to 16 ASCII characters each.
    pub calibration_ids: Vec<String>,
    /// Service 09 infotype 06, one per calibration ID.
    pub cvns: Vec<[u8; 4]>,
}

/// The drive cycle and the car's constants.
#[derive(Debug, Clone, PartialEq)]
pub struct DriveParams {
    /// Length of one drive (key on to key off), vehicle seconds.
    pub cycle_s: f64,
    pub ambient_c: f64,
    pub displacement_l: f64,
    pub fuel_tank_l: f64,
    pub fuel_start_percent: f64,
    pub odometer_km: f64,
    /// Engine-off time between two drives, vehicle seconds: the coolant cools meanwhile (the
    /// soak itself takes no time on the serving clock).
    pub soak_s: f64,
}

/// ECUs a fault can be set in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EcuName {
    Engine,
    Transmission,
    Hybrid,
}

impl EcuName {
    pub fn as_str(self) -> &'static str {
        match self {
            EcuName::Engine => "engine",
            EcuName::Transmission => "transmission",
            EcuName::Hybrid => "hybrid",
        }
    }
}

/// What a fault does to the car and which monitor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Misfire (continuous monitor): rough idle and rpm, lean short-term trims, hot catalyst.
    Misfire,
    /// Catalyst efficiency below threshold: the downstream O2 sensor switches like the
    /// upstream one; seen once per drive after a warm cruise.
    Catalyst,
    /// EVAP large leak: the system does not hold vacuum in the leak test (once per drive).
    EvapLeak,
    /// Thermostat stuck open: slow warm-up, coolant below the regulating temperature.
    Thermostat,
    /// Lost communication on the powertrain network (continuous): the ECU that holds the DTC
    /// stops hearing another one.
    LostComm,
    /// The ECU goes off the bus: no answers at all while the cause lasts. Sets no DTC itself.
    Silent,
    /// Hybrid battery pack deterioration: remaining life falls, voltage sags.
    HybridBattery,
}

/// A fault scripted over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub ecu: EcuName,
    pub dtcs: Vec<Dtc>,
    /// When the cause starts, vehicle seconds.
    pub start_s: f64,
    /// When the cause goes away, if it does.
    pub end_s: Option<f64>,
}

impl Fault {
    /// Whether the cause is present at vehicle time `t`.
    pub fn active_at(&self, t: f64) -> bool {
        t >= self.start_s && self.end_s.is_none_or(|end| t < end)
    }
}

// --- the file format ----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    description: String,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default = "default_time_scale")]
    time_scale: f64,
    vehicle: RawIdentity,
    #[serde(default)]
    drive: RawDrive,
    #[serde(default)]
    ecus: RawEcus,
    #[serde(default, rename = "fault")]
    faults: Vec<RawFault>,
}

fn default_seed() -> u64 {
    1
}

fn default_time_scale() -> f64 {
    40.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    vin: String,
    make: String,
    model: String,
    year: u16,
    #[serde(default)]
    hybrid: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDrive {
    cycle_s: f64,
    ambient_c: f64,
    displacement_l: f64,
    fuel_tank_l: f64,
    fuel_start_percent: f64,
    odometer_km: f64,
    soak_s: f64,
}

impl Default for RawDrive {
    fn default() -> Self {
        RawDrive {
            cycle_s: 480.0,
            ambient_c: 20.0,
            displacement_l: 2.0,
            fuel_tank_l: 50.0,
            fuel_start_percent: 68.0,
            odometer_km: 48_213.0,
            soak_s: 4.0 * 3600.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEcus {
    #[serde(default = "default_engine")]
    engine: RawEcu,
    #[serde(default = "default_transmission")]
    transmission: RawEcu,
    #[serde(default = "default_hybrid")]
    hybrid: RawEcu,
}

impl Default for RawEcus {
    fn default() -> Self {
        RawEcus {
            engine: default_engine(),
            transmission: default_transmission(),
            hybrid: default_hybrid(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEcu {
    #[serde(default = "yes")]
    present: bool,
    acronym: String,
    name: String,
    calibration_ids: Vec<String>,
    cvns: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_engine() -> RawEcu {
    RawEcu {
        present: true,
        acronym: "ECM".into(),
        name: "EngineControl".into(),
        calibration_ids: vec!["TT20E4A1C0031".into()],
        cvns: vec!["5A3C91E2".into()],
    }
}

fn default_transmission() -> RawEcu {
    RawEcu {
        present: true,
        acronym: "TCM".into(),
        name: "TransmissionCtl".into(),
        calibration_ids: vec!["TT6AT9B0102".into()],
        cvns: vec!["0B7D44A9".into()],
    }
}

fn default_hybrid() -> RawEcu {
    RawEcu {
        present: true,
        acronym: "HPCM".into(),
        name: "HybridPowertrn".into(),
        calibration_ids: vec!["TTHV3C2210".into()],
        cvns: vec!["C41F0E77".into()],
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: FaultKind,
    ecu: EcuName,
    #[serde(default)]
    dtcs: Vec<String>,
    start_s: f64,
    end_s: Option<f64>,
}

// --- loading --------------------------------------------------------------------------------

/// The built-in scenarios: name and one-line description.
pub fn scenarios() -> Vec<(String, String)> {
    BUILT_IN
        .iter()
        .filter_map(|(name, text)| {
            parse(text, &built_in_origin(name))
                .ok()
                .map(|s| ((*name).to_owned(), s.description))
        })
        .collect()
}

/// A built-in scenario by name (`misfire`), or a TOML file by path.
pub fn load_scenario(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    if let Some((name, text)) = BUILT_IN.iter().find(|(name, _)| *name == name_or_path) {
        return parse(text, &built_in_origin(name));
    }
    let path = Path::new(name_or_path);
    if !path.exists() {
        return Err(ScenarioError::Unknown {
            name: name_or_path.to_owned(),
            known: BUILT_IN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse(&text, &origin)
}

fn built_in_origin(name: &str) -> String {
    format!("built-in scenario {name} (scenarios/{name}.toml)")
}

/// Parses and validates scenario text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
        origin: origin.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let invalid = |key: &str, problem: String| ScenarioError::Invalid {
        origin: origin.to_owned(),
        key: key.to_owned(),
        problem,
    };

    if !(raw.time_scale.is_finite() && raw.time_scale > 0.0 && raw.time_scale <= 10_000.0) {
        return Err(invalid(
            "time_scale",
            format!("{} is not a speed-up between 0 and 10000", raw.time_scale),
        ));
    }
    let vin = Vin::parse(&raw.vehicle.vin).map_err(|e| invalid("vehicle.vin", e.to_string()))?;
    if !vin.check_digit_valid() {
        return Err(invalid(
            "vehicle.vin",
            format!(
                "check digit (position 9) is {:?}, the other characters give {:?}",
                vin.as_str().chars().nth(8).unwrap_or('?'),
                vin.check_digit()
            ),
        ));
    }
    if !(1980..=2100).contains(&raw.vehicle.year) {
        return Err(invalid(
            "vehicle.year",
            format!("{} is not a model year", raw.vehicle.year),
        ));
    }
    let drive = validate_drive(&raw.drive).map_err(|(key, problem)| invalid(&key, problem))?;
    let engine = validate_ecu("ecus.engine", &raw.ecus.engine)
        .map_err(|(key, problem)| invalid(&key, problem))?;
    if !raw.ecus.engine.present {
        return Err(invalid(
            "ecus.engine.present",
            "the engine ECU cannot be left out: it is the one that answers the VIN".into(),
        ));
    }
    let transmission = validate_ecu("ecus.transmission", &raw.ecus.transmission)
        .map_err(|(key, problem)| invalid(&key, problem))?;
    if !raw.ecus.transmission.present {
        return Err(invalid(
            "ecus.transmission.present",
            "the transmission ECU cannot be left out".into(),
        ));
    }
    let hybrid = if raw.ecus.hybrid.present {
        Some(
            validate_ecu("ecus.hybrid", &raw.ecus.hybrid)
                .map_err(|(key, problem)| invalid(&key, problem))?,
        )
    } else {
        None
    };

    let mut faults = Vec::new();
    for (i, f) in raw.faults.iter().enumerate() {
        let key = |field: &str| format!("fault[{i}].{field}");
        if f.ecu == EcuName::Hybrid && hybrid.is_none() {
            return Err(invalid(
                &key("ecu"),
                "the hybrid ECU is not present in this vehicle (ecus.hybrid.present = false)"
                    .into(),
            ));
        }
        let mut dtcs = Vec::new();
        for (j, text) in f.dtcs.iter().enumerate() {
            let dtc = text
                .parse::<Dtc>()
                .map_err(|e| invalid(&key(&format!("dtcs[{j}]")), format!("{text:?}: {e}")))?;
            dtcs.push(dtc);
        }
        if f.kind == FaultKind::Silent {
            if !dtcs.is_empty() {
                return Err(invalid(
                    &key("dtcs"),
                    "a silent ECU sets no DTC of its own; put the codes its peers set in a \
                     lost_comm fault"
                        .into(),
                ));
            }
        } else if dtcs.is_empty() {
            return Err(invalid(&key("dtcs"), "a fault needs at least one DTC".into()));
        }
        if !(f.start_s.is_finite() && f.start_s >= 0.0) {
            return Err(invalid(
                &key("start_s"),
                format!("{} is not a time in seconds (0 or more)", f.start_s),
            ));
        }
        if let Some(end) = f.end_s
            && !(end.is_finite() && end > f.start_s)
        {
            return Err(invalid(
                &key("end_s"),
                format!("{end} does not come after start_s = {}", f.start_s),
            ));
        }
        faults.push(Fault {
            kind: f.kind,
            ecu: f.ecu,
            dtcs,
            start_s: f.start_s,
            end_s: f.end_s,
        });
    }

    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        seed: raw.seed,
        time_scale: raw.time_scale,
        identity: Identity {
            vin,
            make: raw.vehicle.make,
            model: raw.vehicle.model,
            year: raw.vehicle.year,
            hybrid: raw.vehicle.hybrid,
        },
        drive,
        engine,
        transmission,
        hybrid,
        faults,
    })
}

fn validate_drive(d: &RawDrive) -> Result<DriveParams, (String, String)> {
    let range = |key: &str, v: f64, lo: f64, hi: f64| {
        if v.is_finite() && (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err((format!("drive.{key}"), format!("{v} is outside {lo}..={hi}")))
        }
    };
    Ok(DriveParams {
        cycle_s: range("cycle_s", d.cycle_s, 120.0, 36_000.0)?,
        ambient_c: range("ambient_c", d.ambient_c, -30.0, 50.0)?,
        displacement_l: range("displacement_l", d.displacement_l, 0.6, 8.0)?,
        fuel_tank_l: range("fuel_tank_l", d.fuel_tank_l, 10.0, 200.0)?,
        fuel_start_percent: range("fuel_start_percent", d.fuel_start_percent, 5.0, 100.0)?,
        odometer_km: range("odometer_km", d.odometer_km, 0.0, 1_000_000.0)?,
        soak_s: range("soak_s", d.soak_s, 0.0, 1_000_000.0)?,
    })
}

fn validate_ecu(prefix: &str, e: &RawEcu) -> Result<EcuConfig, (String, String)> {
    let key = |field: &str| format!("{prefix}.{field}");
    let printable = |s: &str| s.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if e.acronym.is_empty() || e.acronym.len() > 4 || !printable(&e.acronym) {
        return Err((
            key("acronym"),
            format!("{:?} must be 1 to 4 printable ASCII characters", e.acronym),
        ));
    }
    if e.name.len() > 15 || !printable(&e.name) {
        return Err((
            key("name"),
            format!("{:?} must be at most 15 printable ASCII characters", e.name),
        ));
    }
    if e.calibration_ids.is_empty() || e.calibration_ids.len() > 8 {
        return Err((
            key("calibration_ids"),
            format!("{} entries; 1 to 8 are allowed", e.calibration_ids.len()),
        ));
    }
    for (i, id) in e.calibration_ids.iter().enumerate() {
        if id.is_empty() || id.len() > 16 || !printable(id) {
            return Err((
                key(&format!("calibration_ids[{i}]")),
                format!("{id:?} must be 1 to 16 printable ASCII characters"),
            ));
        }
    }
    if e.cvns.len() != e.calibration_ids.len() {
        return Err((
            key("cvns"),
            format!(
                "{} CVNs for {} calibration IDs; J1979 pairs them one to one",
                e.cvns.len(),
                e.calibration_ids.len()
            ),
        ));
    }
    let mut cvns = Vec::new();
    for (i, text) in e.cvns.iter().enumerate() {
        let bad = || {
            (
                key(&format!("cvns[{i}]")),
                format!("{text:?} is not 8 hexadecimal digits"),
            )
        };
        if text.len() != 8 {
            return Err(bad());
        }
        let value = u32::from_str_radix(text, 16).map_err(|_| bad())?;
        cvns.push(value.to_be_bytes());
    }
    Ok(EcuConfig {
        acronym: e.acronym.clone(),
        long_name: e.name.clone(),
        calibration_ids: e.calibration_ids.clone(),
        cvns,
    })
}
