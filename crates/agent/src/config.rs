//! The agent's configuration: a TOML file, then environment variables, then flags (flags win),
//! validated at start into typed [`Settings`].
//!
//! The file's shape is [`FileConfig`]; `deploy/agent/agent.toml` is a commented example of every
//! key. Unknown keys are refused (a typo must not silently fall back to a default), and every
//! validation error names the key it is about, e.g. `mqtt.url: ...`. Durations are written as
//! `500ms`, `30s`, `5m`, `1h`; sizes as `64MiB`, `512KiB` or a plain number of bytes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use telltale_can::LinkSpec;
pub use telltale_service::config::ConfigError;
use telltale_service::config::{self as values, duration, invalid};
use telltale_service::mqtt::Broker;
use telltale_wire::signing::TrustedKey;
use telltale_wire::topic::validate_device_id;

use crate::spool::FsyncPolicy;
use crate::vehicle::{SignalSpec, signals};

/// The configuration as written in the TOML file (and printed by `--print-config`). Every field
/// has a default, so an empty file plus `--device-id` and `--link` is a working agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// This dongle's id: the MQTT client id, a topic level and, with TLS, the certificate's name.
    pub device_id: String,
    /// The diagnostic link: `socketcan:can0`, `slcan:/dev/ttyACM0@500000`, `elm327:/dev/ttyUSB0`,
    /// `elm327+tcp:192.168.0.10:35000`, `sim:NAME`.
    pub link: String,
    /// Where the agent keeps its spool and replay guard.
    pub state_dir: PathBuf,
    pub mqtt: MqttSection,
    pub spool: SpoolSection,
    pub obd: ObdSection,
    pub dtc: DtcSection,
    /// Signals to sample. Empty means the default schedule.
    pub signals: Vec<SignalEntry>,
    pub commands: CommandsSection,
    pub status: StatusSection,
    pub log: LogSection,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            device_id: String::new(),
            link: String::new(),
            state_dir: PathBuf::from("/var/lib/telltale-agent"),
            mqtt: MqttSection::default(),
            spool: SpoolSection::default(),
            obd: ObdSection::default(),
            dtc: DtcSection::default(),
            signals: Vec::new(),
            commands: CommandsSection::default(),
            status: StatusSection::default(),
            log: LogSection::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSection {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub url: String,
    /// `3.1.1` or `5`.
    pub protocol: String,
    /// CA certificate (PEM) the broker's certificate must chain to; required for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub username: Option<String>,
    /// Prefer `password_file` or the `TELLTALE_AGENT_MQTT_PASSWORD` environment variable.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub keep_alive: String,
    /// Reconnect back-off: first wait, doubled up to the maximum.
    pub reconnect_min: String,
    pub reconnect_max: String,
    /// Publishes awaiting PUBACK at once.
    pub max_in_flight: u16,
    /// How often the retained status message is refreshed.
    pub status_period: String,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            url: "mqtt://127.0.0.1:1883".into(),
            protocol: "3.1.1".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
            password_file: None,
            keep_alive: "30s".into(),
            reconnect_min: "500ms".into(),
            reconnect_max: "60s".into(),
            max_in_flight: 32,
            status_period: "60s".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolSection {
    /// Default: `<state_dir>/spool`.
    pub dir: Option<PathBuf>,
    /// Bound on the spool on disk; when full, oldest telemetry goes first, DTC reports last.
    pub max_size: String,
    /// `always` (fsync before a message counts as stored), `interval`, or `never`.
    pub fsync: String,
    /// With `fsync = "interval"`: at most this much is lost on power loss.
    pub fsync_interval: String,
}

impl Default for SpoolSection {
    fn default() -> Self {
        SpoolSection {
            dir: None,
            max_size: "64MiB".into(),
            fsync: "always".into(),
            fsync_interval: "1s".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObdSection {
    /// P2: how long to wait for an ECU's answer. J1979 says 50 ms.
    pub p2: String,
    /// Use 29-bit CAN identifiers (`18DB33F1`).
    pub extended_ids: bool,
    /// Ceiling on diagnostic requests per second, whatever the schedule asks.
    pub max_requests_per_second: f64,
    /// This many unanswered requests in a row mean the ignition is off.
    pub asleep_after_silences: u32,
    /// While the car sleeps, probe this often.
    pub asleep_probe: String,
    /// A telemetry message is sent at this many samples...
    pub batch_max_samples: usize,
    /// ...or when its oldest sample is this old.
    pub batch_max_age: String,
}

impl Default for ObdSection {
    fn default() -> Self {
        ObdSection {
            p2: "50ms".into(),
            extended_ids: false,
            max_requests_per_second: 20.0,
            asleep_after_silences: 3,
            asleep_probe: "30s".into(),
            batch_max_samples: 200,
            batch_max_age: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DtcSection {
    /// How often 03/07/0A are read while the car is awake.
    pub period: String,
    /// Also read UDS 0x19 from ECUs that answer it.
    pub uds: bool,
}

impl Default for DtcSection {
    fn default() -> Self {
        DtcSection {
            period: "30s".into(),
            uds: true,
        }
    }
}

/// One `[[signals]]` entry: a name, a PID, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalEntry {
    pub name: Option<String>,
    pub pid: Option<u8>,
    pub period: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsSection {
    /// Keys whose signatures the agent accepts; no keys means every command is refused.
    pub trusted_keys: Vec<TrustedKeyEntry>,
    /// Allow the ClearDtcs command at all (it also needs a signature and a stationary car).
    pub allow_clear: bool,
    /// Refuse commands that claim to be valid for longer than this.
    pub max_ttl: String,
    /// Tolerated difference between the cloud's clock and the car's.
    pub max_clock_skew: String,
}

impl Default for CommandsSection {
    fn default() -> Self {
        CommandsSection {
            trusted_keys: Vec::new(),
            allow_clear: true,
            max_ttl: "1h".into(),
            max_clock_skew: "5m".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKeyEntry {
    pub id: String,
    /// Ed25519 public key, base64 of the 32 raw bytes.
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusSection {
    /// Where `/status` (JSON) and `/metrics` (Prometheus text) are served; empty disables.
    pub listen: String,
}

impl Default for StatusSection {
    fn default() -> Self {
        StatusSection {
            listen: "127.0.0.1:9465".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: String,
    /// An `EnvFilter` directive (`info`, `telltale_agent=debug,info`); `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

impl FileConfig {
    /// Reads and parses a TOML file; unknown keys and wrong types are errors that name the key.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        values::load_toml(path)
    }

    /// Parses TOML text; the error is toml's message (with line, column and key).
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        values::parse_toml(text)
    }

    /// The effective configuration as TOML, secrets replaced by `"<redacted>"`.
    pub fn to_toml_redacted(&self) -> String {
        let mut shown = self.clone();
        if shown.mqtt.password.is_some() {
            shown.mqtt.password = Some("<redacted>".into());
        }
        values::to_toml(&shown)
    }

    /// Checks every value and turns the text into typed settings.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        validate_device_id(&self.device_id).map_err(|e| {
            if self.device_id.is_empty() {
                invalid(
                    "device_id",
                    "missing: set it in the file, with --device-id or TELLTALE_AGENT_DEVICE_ID",
                )
            } else {
                invalid("device_id", e)
            }
        })?;
        if self.link.is_empty() {
            return Err(invalid(
                "link",
                "missing: e.g. socketcan:can0, elm327:/dev/ttyUSB0 (--link or TELLTALE_AGENT_LINK)",
            ));
        }
        let link: LinkSpec = self.link.parse().map_err(|e| invalid("link", e))?;
        if self.state_dir.as_os_str().is_empty() {
            return Err(invalid("state_dir", "must not be empty"));
        }

        let mqtt = self.validate_mqtt()?;

        let spool_dir = self
            .spool
            .dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("spool"));
        let max_bytes = values::size("spool.max_size", &self.spool.max_size)?;
        if max_bytes < 64 * 1024 {
            return Err(invalid("spool.max_size", "must be at least 64KiB"));
        }
        let fsync = match self.spool.fsync.as_str() {
            "always" => FsyncPolicy::Always,
            "never" => FsyncPolicy::Never,
            "interval" => FsyncPolicy::Interval(duration(
                "spool.fsync_interval",
                &self.spool.fsync_interval,
            )?),
            other => {
                return Err(invalid(
                    "spool.fsync",
                    format!("{other:?}: use \"always\", \"interval\" or \"never\""),
                ));
            }
        };

        let o = &self.obd;
        if !(o.max_requests_per_second.is_finite() && o.max_requests_per_second > 0.0) {
            return Err(invalid(
                "obd.max_requests_per_second",
                "must be a positive number",
            ));
        }
        if o.asleep_after_silences == 0 {
            return Err(invalid("obd.asleep_after_silences", "must be at least 1"));
        }
        if o.batch_max_samples == 0 {
            return Err(invalid("obd.batch_max_samples", "must be at least 1"));
        }
        let p2 = duration("obd.p2", &o.p2)?;
        if p2 < Duration::from_millis(10) {
            return Err(invalid("obd.p2", "below 10ms no ECU can answer in time"));
        }

        let signals = self.validate_signals()?;
        let commands = self.validate_commands()?;

        let status_listen =
            if self.status.listen.is_empty() {
                None
            } else {
                Some(self.status.listen.parse::<SocketAddr>().map_err(|e| {
                    invalid("status.listen", format!("{:?}: {e}", self.status.listen))
                })?)
            };
        let json_logs = values::json_logs("log.format", &self.log.format)?;
        values::log_filter("log.filter", &self.log.filter)?;

        Ok(Settings {
            device_id: self.device_id.clone(),
            link,
            link_text: self.link.clone(),
            state_dir: self.state_dir.clone(),
            mqtt,
            spool_dir,
            spool_max_bytes: max_bytes,
            fsync,
            p2,
            extended_ids: o.extended_ids,
            max_requests_per_second: o.max_requests_per_second,
            asleep_after_silences: o.asleep_after_silences,
            asleep_probe: duration("obd.asleep_probe", &o.asleep_probe)?,
            batch_max_samples: o.batch_max_samples,
            batch_max_age: duration("obd.batch_max_age", &o.batch_max_age)?,
            dtc_period: duration("dtc.period", &self.dtc.period)?,
            uds: self.dtc.uds,
            signals,
            trusted_keys: commands.0,
            allow_clear: self.commands.allow_clear,
            max_ttl: commands.1,
            max_clock_skew: commands.2,
            status_listen,
            json_logs,
            log_filter: self.log.filter.clone(),
        })
    }

    fn validate_mqtt(&self) -> Result<MqttSettings, ConfigError> {
        let m = &self.mqtt;
        let broker = telltale_service::broker_fields!(m).validate()?;
        let reconnect_min = duration("mqtt.reconnect_min", &m.reconnect_min)?;
        let reconnect_max = duration("mqtt.reconnect_max", &m.reconnect_max)?;
        if reconnect_max < reconnect_min {
            return Err(invalid(
                "mqtt.reconnect_max",
                "must not be below mqtt.reconnect_min",
            ));
        }
        Ok(MqttSettings {
            broker,
            reconnect_min,
            reconnect_max,
            status_period: duration("mqtt.status_period", &m.status_period)?,
        })
    }

    fn validate_signals(&self) -> Result<Vec<SignalSpec>, ConfigError> {
        if self.signals.is_empty() {
            return Ok(signals::default_schedule());
        }
        let mut out: Vec<SignalSpec> = Vec::new();
        for (i, s) in self.signals.iter().enumerate() {
            let key = format!("signals[{i}]");
            let (name, pid) = resolve_signal(s).map_err(|e| invalid(key.clone(), e))?;
            let period = duration(&format!("{key}.period"), &s.period)?;
            if period < Duration::from_millis(100) {
                return Err(invalid(
                    format!("{key}.period"),
                    "below 100ms would load the bus",
                ));
            }
            if out.iter().any(|o| o.pid == pid) {
                return Err(invalid(key, format!("PID 0x{pid:02X} is listed twice")));
            }
            out.push(SignalSpec { name, pid, period });
        }
        Ok(out)
    }

    #[allow(clippy::type_complexity)]
    fn validate_commands(&self) -> Result<(Vec<TrustedKey>, Duration, Duration), ConfigError> {
        let mut keys = Vec::new();
        for (i, k) in self.commands.trusted_keys.iter().enumerate() {
            if k.id.is_empty() {
                return Err(invalid(
                    format!("commands.trusted_keys[{i}].id"),
                    "must not be empty",
                ));
            }
            let key = TrustedKey::parse(&k.id, &k.public_key)
                .map_err(|e| invalid(format!("commands.trusted_keys[{i}].public_key"), e))?;
            keys.push(key);
        }
        Ok((
            keys,
            duration("commands.max_ttl", &self.commands.max_ttl)?,
            duration("commands.max_clock_skew", &self.commands.max_clock_skew)?,
        ))
    }
}

/// A `[[signals]]` entry to its name and PID: a name alone (VSS or `obd.<key>`), a PID alone
/// (named as the agent names it), or both (the name is then the operator's own).
fn resolve_signal(s: &SignalEntry) -> Result<(String, u8), String> {
    match (&s.name, s.pid) {
        (None, None) => Err("give a name, a pid, or both".into()),
        (Some(name), None) => signals::pid_for(name).map(|pid| (name.clone(), pid)).ok_or_else(|| {
            format!("unknown signal {name:?}: use a VSS name the agent knows (e.g. Vehicle.Speed), obd.<key>, or give `pid`")
        }),
        (name, Some(pid)) => {
            if !signals::is_sampleable(pid) {
                return Err(format!("PID 0x{pid:02X} is not a Mode 01 PID the agent can decode"));
            }
            match name {
                Some(n) if n.is_empty() => Err("name must not be empty".into()),
                Some(n) => Ok((n.clone(), pid)),
                None => signals::name_for(pid)
                    .map(|n| (n, pid))
                    .ok_or_else(|| format!("PID 0x{pid:02X} has no name")),
            }
        }
    }
}

/// Validated MQTT settings: the broker connection and the agent's own timing.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub broker: Broker,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How often the retained status message is refreshed.
    pub status_period: Duration,
}

/// The validated, typed configuration the agent runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub device_id: String,
    pub link: LinkSpec,
    /// The link as written, for reports.
    pub link_text: String,
    pub state_dir: PathBuf,
    pub mqtt: MqttSettings,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub fsync: FsyncPolicy,
    pub p2: Duration,
    pub extended_ids: bool,
    pub max_requests_per_second: f64,
    pub asleep_after_silences: u32,
    pub asleep_probe: Duration,
    pub batch_max_samples: usize,
    pub batch_max_age: Duration,
    pub dtc_period: Duration,
    pub uds: bool,
    pub signals: Vec<SignalSpec>,
    pub trusted_keys: Vec<TrustedKey>,
    pub allow_clear: bool,
    pub max_ttl: Duration,
    pub max_clock_skew: Duration,
    pub status_listen: Option<SocketAddr>,
    pub json_logs: bool,
    pub log_filter: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> FileConfig {
        FileConfig {
            device_id: "dongle-1".into(),
            link: "sim:car".into(),
            ..FileConfig::default()
        }
    }

    fn err_of(c: &FileConfig) -> String {
        match c.validate() {
            Ok(_) => panic!("config accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_config_is_valid_and_uses_defaults() {
        let s = base().validate().expect("valid");
        assert_eq!(s.mqtt.broker.port, 1883);
        assert_eq!(s.spool_max_bytes, 64 << 20);
        assert_eq!(s.fsync, FsyncPolicy::Always);
        assert_eq!(s.spool_dir, PathBuf::from("/var/lib/telltale-agent/spool"));
        assert!(!s.signals.is_empty(), "default schedule");
    }

    #[test]
    fn unknown_and_mistyped_keys_are_refused_with_their_name() {
        let e = FileConfig::parse("device_id = \"d\"\n[mqtt]\nurll = \"x\"\n").expect_err("typo");
        assert!(e.contains("urll"), "{e}");
        let e = FileConfig::parse("[obd]\nmax_requests_per_second = \"fast\"\n").expect_err("type");
        assert!(e.contains("max_requests_per_second"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = base();
        c.device_id = "bad/id".into();
        assert!(err_of(&c).starts_with("device_id:"));
        let mut c = base();
        c.device_id.clear();
        assert!(err_of(&c).contains("--device-id"));
        let mut c = base();
        c.link = "can0".into();
        assert!(err_of(&c).starts_with("link:"));
        let mut c = base();
        c.mqtt.url = "tcp://x:1".into();
        assert!(err_of(&c).starts_with("mqtt.url:"));
        let mut c = base();
        c.mqtt.url = "mqtts://broker:8883".into();
        assert!(err_of(&c).starts_with("mqtt.ca_file:"));
        let mut c = base();
        c.spool.fsync = "sometimes".into();
        assert!(err_of(&c).starts_with("spool.fsync:"));
        let mut c = base();
        c.spool.max_size = "12 parsecs".into();
        assert!(err_of(&c).starts_with("spool.max_size:"));
        let mut c = base();
        c.dtc.period = "30".into();
        assert!(err_of(&c).starts_with("dtc.period:"));
        let mut c = base();
        c.signals = vec![SignalEntry {
            name: None,
            pid: Some(0x0D),
            period: "10ms".into(),
        }];
        assert!(err_of(&c).starts_with("signals[0].period:"));
        let mut c = base();
        c.commands.trusted_keys = vec![TrustedKeyEntry {
            id: "cloud".into(),
            public_key: "not base64!".into(),
        }];
        assert!(err_of(&c).starts_with("commands.trusted_keys[0].public_key:"));
        let mut c = base();
        c.mqtt.password = Some("p".into());
        assert!(err_of(&c).starts_with("mqtt.username:"));
        let mut c = base();
        c.status.listen = "localhost".into();
        assert!(err_of(&c).starts_with("status.listen:"));
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../../deploy/agent/agent.toml");
        let c = FileConfig::parse(text).expect("deploy/agent/agent.toml parses");
        assert_eq!(c.device_id, "dongle-0001");
        assert_eq!(c.signals.len(), 3);
        // It names certificate files that exist only on a dongle; everything else validates.
        let mut c = c;
        c.mqtt.url = "mqtt://127.0.0.1:1883".into();
        c.mqtt.ca_file = None;
        c.mqtt.cert_file = None;
        c.mqtt.key_file = None;
        c.validate().expect("the example validates");
    }

    #[test]
    fn printed_config_parses_back_and_hides_the_password() {
        let mut c = base();
        c.mqtt.username = Some("u".into());
        c.mqtt.password = Some("hunter2".into());
        let text = c.to_toml_redacted();
        assert!(!text.contains("hunter2"));
        let back = FileConfig::parse(&text).expect("parses");
        assert_eq!(back.device_id, c.device_id);
        assert_eq!(back.mqtt.password.as_deref(), Some("<redacted>"));
    }
}
