//! Simulated cars with a scripted fault timeline, each a `firmware-sim` process behind an
//! SLCAN adapter on a pty, read by its own `telltale-agent`.
//!
//! Each car's scenario (written here, loaded by the simulator from a file) sets one new
//! confirmed code per drive. J1979's two-trip logic needs a code's test to fail in two drives:
//! code `i` is made pending in drive `i + 1` (a `lost_comm`-kind cause, a continuous test that
//! fails after 8 vehicle seconds) and confirmed in drive `i + 2`, at a phase of the drive of
//! the car's own (`confirm_s`), so the cars of a run confirm at different moments. Drives are
//! 120 vehicle seconds (the shortest the simulator allows), played `time_scale` times faster.
//!
//! When a code becomes confirmed the simulator logs it (`DTC state change`, `BecameConfirmed`,
//! at debug level, as JSON with its wall-clock timestamp): from that instant the ECU answers
//! service 03 with it. That timestamp is the fault's start on the bus.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use telltale_load::proc::free_port;

use crate::process::{Process, listening};

/// Vehicle seconds of one drive.
pub const CYCLE_S: f64 = 120.0;

/// One car's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct CarPlan {
    pub index: usize,
    pub device_id: String,
    pub vin: String,
    /// Confirmed one per drive, in this order.
    pub codes: Vec<&'static str>,
    /// Phase of the drive (vehicle seconds) at which each code is confirmed.
    pub confirm_s: f64,
    pub time_scale: f64,
}

impl CarPlan {
    /// Car `index` of `cars`, confirming `per_car` codes.
    pub fn new(index: usize, cars: usize, per_car: usize, time_scale: f64) -> CarPlan {
        let codes = crate::crm::CODES;
        CarPlan {
            index,
            device_id: format!("crm-load-car-{index}"),
            vin: crate::crm::vin('F', index as u32),
            codes: (0..per_car.min(codes.len()))
                .map(|i| codes[(i + index * 3) % codes.len()])
                .collect(),
            confirm_s: 15.0 + 40.0 * index as f64 / cars.max(1) as f64,
            time_scale,
        }
    }

    /// Real seconds until the last code is confirmed.
    pub fn seconds(&self) -> f64 {
        (self.codes.len() as f64 + 1.0) * CYCLE_S / self.time_scale
            + self.confirm_s / self.time_scale
    }

    /// The scenario file's text.
    pub fn scenario(&self) -> String {
        let mut s = format!(
            "name = \"{}\"\ndescription = \"crm-load: one new confirmed code per drive\"\n\
             seed = {}\ntime_scale = {}\n\n[vehicle]\nvin = \"{}\"\nmake = \"Ford\"\n\
             model = \"Escape\"\nyear = 2019\n\n[drive]\ncycle_s = {CYCLE_S:.1}\n",
            self.device_id,
            100 + self.index,
            self.time_scale,
            self.vin
        );
        for (i, code) in self.codes.iter().enumerate() {
            let pending_drive = (i + 1) as f64 * CYCLE_S;
            let confirm_drive = (i + 2) as f64 * CYCLE_S;
            // The test fails 8 s into a cause; a cause of 10 s fails it once.
            for (start, why) in [
                (pending_drive + self.confirm_s + 41.0, "pending"),
                (confirm_drive + self.confirm_s - 9.0, "confirmed"),
            ] {
                s.push_str(&format!(
                    "\n# {code} {why}\n[[fault]]\nkind = \"lost_comm\"\necu = \"engine\"\n\
                     dtcs = [\"{code}\"]\nstart_s = {start:.1}\nend_s = {:.1}\n",
                    start + 10.0
                ));
            }
        }
        s
    }

    /// The agent's configuration.
    fn agent_config(
        &self,
        link: &str,
        dir: &Path,
        mqtt_url: &str,
        dtc_period: &str,
        status_port: u16,
    ) -> String {
        format!(
            "device_id = \"{id}\"\nlink = \"{link}\"\nstate_dir = \"{state}\"\n\n\
             [mqtt]\nurl = \"{mqtt_url}\"\nreconnect_min = \"100ms\"\nreconnect_max = \"500ms\"\n\n\
             [dtc]\nperiod = \"{dtc_period}\"\n\n[status]\nlisten = \"127.0.0.1:{status_port}\"\n\n\
             [log]\nfilter = \"warn\"\n\n\
             [[signals]]\npid = 12\nperiod = \"1s\"\n\n[[signals]]\npid = 13\nperiod = \"1s\"\n",
            id = self.device_id,
            state = dir.join(format!("state-{}", self.index)).display(),
        )
    }
}

/// The binaries a car needs.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub sim: PathBuf,
    pub agent: PathBuf,
}

/// A running car: the simulator and its agent.
#[derive(Debug)]
pub struct Car {
    pub plan: CarPlan,
    pub sim: Process,
    pub agent: Process,
}

impl Car {
    /// Starts the simulator, then the agent on its pty; returns once the agent's status
    /// endpoint answers.
    pub async fn start(
        plan: CarPlan,
        bins: &Binaries,
        dir: &Path,
        mqtt_url: &str,
        dtc_period: &str,
    ) -> anyhow::Result<Car> {
        let scenario = dir.join(format!("car-{}.toml", plan.index));
        std::fs::write(&scenario, plan.scenario()).context("writing a scenario")?;
        let pty = dir.join(format!("car-{}.pty", plan.index));
        let (scenario_s, pty_s) = (scenario.display().to_string(), pty.display().to_string());
        let mut sim = Process::start(
            &format!("firmware-sim {}", plan.device_id),
            &bins.sim,
            &[
                "--log-json",
                "slcan",
                "--pty-link",
                &pty_s,
                "--scenario",
                &scenario_s,
            ],
            &[("RUST_LOG", "warn,firmware_sim::vehicle=debug")],
            dir.join(format!("sim-{}.log", plan.index)),
        )?;
        sim.wait_until("the SLCAN pty", Duration::from_secs(20), || pty.exists())
            .await?;
        let status_port = free_port()?;
        let config = dir.join(format!("agent-{}.toml", plan.index));
        std::fs::write(
            &config,
            plan.agent_config(
                &format!("slcan:{pty_s}"),
                dir,
                mqtt_url,
                dtc_period,
                status_port,
            ),
        )
        .context("writing an agent config")?;
        let config_s = config.display().to_string();
        let mut agent = Process::start(
            &format!("telltale-agent {}", plan.device_id),
            &bins.agent,
            &["--config", &config_s],
            &[],
            dir.join(format!("agent-{}.log", plan.index)),
        )?;
        agent
            .wait_until("the status endpoint", Duration::from_secs(20), || {
                listening(status_port)
            })
            .await?;
        Ok(Car { plan, sim, agent })
    }

    /// When each code became confirmed, by the simulator's clock (Unix ms).
    pub fn confirmed(&self) -> Vec<(String, f64)> {
        confirmed_in_log(&self.sim.log())
    }
}

/// The `BecameConfirmed` transitions in a simulator's JSON log: code and Unix ms.
pub fn confirmed_in_log(log: &str) -> Vec<(String, f64)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| {
            v["fields"]["message"] == "DTC state change"
                && v["fields"]["transition"] == "BecameConfirmed"
        })
        .filter_map(|v| {
            let at = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?).ok()?;
            let code = v["fields"]["dtc"].as_str()?.to_owned();
            Some((code, at.timestamp_micros() as f64 / 1000.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_are_read_from_the_log() {
        let log = r#"{"timestamp":"2025-01-02T03:04:05.123456Z","level":"DEBUG","fields":{"message":"DTC state change","ecu":"engine","dtc":"P0420","transition":"BecamePending","vehicle_s":100.0},"target":"firmware_sim::vehicle"}
{"timestamp":"2025-01-02T03:04:06.500250Z","level":"DEBUG","fields":{"message":"DTC state change","ecu":"engine","dtc":"P0420","transition":"BecameConfirmed","vehicle_s":220.0},"target":"firmware_sim::vehicle"}
not json"#;
        let got = confirmed_in_log(log);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "P0420");
        assert_eq!(got[0].1, 1_735_787_046_500.25);
    }

    #[test]
    fn plans_spread_the_cars_and_keep_codes_distinct() {
        let a = CarPlan::new(0, 4, 13, 40.0);
        let b = CarPlan::new(1, 4, 13, 40.0);
        assert_ne!(a.vin, b.vin);
        assert!(a.confirm_s < b.confirm_s);
        let mut codes = a.codes.clone();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), 13);
        let text = a.scenario();
        assert_eq!(text.matches("[[fault]]").count(), 26);
    }
}
