//! The ingest's configuration: a TOML file, then environment variables, then flags (flags win),
//! validated at start into typed [`Settings`].
//!
//! The file's shape is [`FileConfig`]; `crates/ingest/ingest.example.toml` shows every key with
//! its default. Unknown keys are refused (a typo must not fall back to a
//! default silently) and every validation error names its key, e.g. `batch.max_age: ...`.
//! Durations are written `200ms`, `30s`, `5m`, `1h`, `30d`; sizes `256KiB`, `1MiB` or bytes.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
pub use telltale_service::config::ConfigError;
use telltale_service::config::{self as values, duration, invalid, redact_url};
use telltale_service::mqtt::Broker;

/// The configuration as written in the TOML file (and printed by `--print-config`). Every
/// field has a default, so an empty file is an ingest for a local broker and a local SQLite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub mqtt: MqttSection,
    pub database: DatabaseSection,
    pub batch: BatchSection,
    pub leads: LeadsSection,
    pub validate: ValidateSection,
    pub metrics: MetricsSection,
    pub log: LogSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSection {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub url: String,
    /// `3.1.1` or `5`.
    pub protocol: String,
    /// Must be stable across restarts: the broker keeps the persistent session (and what was
    /// published while the ingest was down) under this id. One per instance.
    pub client_id: String,
    /// Shared-subscription group; instances in one group split the fleet's traffic.
    pub share_group: String,
    /// Subscribe with `$share/<group>/...`; turn off for brokers without shared subscriptions
    /// (then run one instance only, or every instance gets every message).
    pub shared: bool,
    /// CA certificate (PEM) the broker's certificate must chain to; required for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub username: Option<String>,
    /// Prefer `password_file` or the `TELLTALE_INGEST_MQTT_PASSWORD` environment variable.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub keep_alive: String,
    /// Messages received but not yet acknowledged, at most: the memory bound. Also sent as the
    /// MQTT 5 receive maximum. For MQTT 3.1.1 the broker's own limit applies (Mosquitto:
    /// `max_inflight_messages`, 20 by default; raise it to at least `batch.max_messages`).
    pub max_in_flight: u16,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            url: "mqtt://127.0.0.1:1883".into(),
            protocol: "3.1.1".into(),
            client_id: "telltale-ingest-1".into(),
            share_group: "ingest".into(),
            shared: true,
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
            password_file: None,
            keep_alive: "30s".into(),
            max_in_flight: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// `postgres://user@host/db` or `sqlite://PATH`.
    pub url: String,
    /// Apply the migrations at start (safe from several instances at once).
    pub migrate_on_start: bool,
    pub max_connections: u32,
    /// Telemetry older than this is dropped (whole daily partitions on PostgreSQL).
    pub retention: String,
    /// How often partitions are created ahead and expired ones dropped.
    pub maintenance_interval: String,
    /// PostgreSQL: keep telemetry in TimescaleDB? `auto` (when it is loaded), `on` (required;
    /// moves daily partitions into a hypertable), `off`.
    pub timescaledb: String,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: "sqlite://telltale.db".into(),
            migrate_on_start: true,
            max_connections: 8,
            retention: "90d".into(),
            maintenance_interval: "1h".into(),
            timescaledb: "auto".into(),
        }
    }
}

/// Leads: which faults raise one, and the CRM they are sent to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeadsSection {
    /// The CRM's gRPC endpoint, `http://host:port` or `https://host:port`. Empty: leads wait in
    /// the outbox table until one is configured.
    pub crm_url: String,
    /// CA certificate (PEM) the CRM's certificate must chain to, for `https://`.
    pub ca_file: Option<PathBuf>,
    /// The CRM integration token (sent as `authorization: Bearer`). Prefer `token_file` or the
    /// `TELLTALE_INGEST_CRM_TOKEN` environment variable.
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Raise leads for pending DTCs too (normally only confirmed ones and the MIL coming on).
    pub for_pending: bool,
    /// How long one CreateLead call may take.
    pub timeout: String,
    /// How often the outbox is checked when it was empty.
    pub poll_interval: String,
    /// Retries back off from 1s, doubling, up to this.
    pub retry_max: String,
}

impl Default for LeadsSection {
    fn default() -> Self {
        LeadsSection {
            crm_url: String::new(),
            ca_file: None,
            token: None,
            token_file: None,
            for_pending: false,
            timeout: "10s".into(),
            poll_interval: "1s".into(),
            retry_max: "10m".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSection {
    /// A batch is written at this many messages...
    pub max_messages: usize,
    /// ...or when its oldest message is this old.
    pub max_age: String,
    /// Batches written at once, each by its own writer on its own database connection; each
    /// device's messages always go to the same writer, so they are stored in order. More than
    /// one keeps the database busy while a batch commits (see the README's benchmarks).
    pub writers: usize,
    /// After SIGTERM, how long to keep retrying a failing store for the batch in hand before
    /// leaving it unacknowledged (the broker redelivers it).
    pub shutdown_grace: String,
}

impl Default for BatchSection {
    fn default() -> Self {
        BatchSection {
            max_messages: 500,
            max_age: "200ms".into(),
            writers: 2,
            shutdown_grace: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidateSection {
    /// Larger payloads are dead letters.
    pub max_payload: String,
    /// A device time further ahead of the receive time than this is flagged (kept, logged,
    /// counted): car clocks are wrong often enough that refusing would lose real data.
    pub max_clock_ahead: String,
    /// Likewise behind; a spool can legitimately hold messages for days.
    pub max_clock_behind: String,
}

impl Default for ValidateSection {
    fn default() -> Self {
        ValidateSection {
            max_payload: "256KiB".into(),
            max_clock_ahead: "10m".into(),
            max_clock_behind: "30d".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Where `/metrics` (Prometheus text) and `/healthz` are served; empty disables.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "127.0.0.1:9466".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: String,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
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

/// Flags and environment variables over the file (each `None` leaves the file's value).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Flags {
    /// Broker: mqtt://HOST:PORT or mqtts://HOST:PORT.
    #[arg(long, global = true, env = "TELLTALE_INGEST_MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// MQTT protocol: 3.1.1 or 5.
    #[arg(long, global = true, env = "TELLTALE_INGEST_MQTT_PROTOCOL")]
    pub mqtt_protocol: Option<String>,
    /// MQTT client id; stable per instance (the broker keeps its session under it).
    #[arg(long, global = true, env = "TELLTALE_INGEST_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Shared-subscription group.
    #[arg(long, global = true, env = "TELLTALE_INGEST_SHARE_GROUP")]
    pub share_group: Option<String>,
    /// Plain subscriptions, for brokers without shared subscriptions.
    #[arg(long, global = true, env = "TELLTALE_INGEST_NO_SHARED")]
    pub no_shared: bool,
    #[arg(long, global = true, env = "TELLTALE_INGEST_MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,
    #[arg(long, global = true, env = "TELLTALE_INGEST_MQTT_CERT_FILE")]
    pub mqtt_cert_file: Option<PathBuf>,
    #[arg(long, global = true, env = "TELLTALE_INGEST_MQTT_KEY_FILE")]
    pub mqtt_key_file: Option<PathBuf>,
    #[arg(long, global = true, env = "TELLTALE_INGEST_MQTT_USERNAME")]
    pub mqtt_username: Option<String>,
    /// Prefer the environment variable or mqtt.password_file (a flag is visible in `ps`).
    #[arg(
        long,
        global = true,
        env = "TELLTALE_INGEST_MQTT_PASSWORD",
        hide_env_values = true
    )]
    pub mqtt_password: Option<String>,
    /// Unacknowledged messages held at most.
    #[arg(long, global = true, env = "TELLTALE_INGEST_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<u16>,
    /// postgres://... or sqlite://PATH.
    #[arg(
        long,
        global = true,
        env = "TELLTALE_INGEST_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Apply migrations at start: true or false.
    #[arg(long, global = true, env = "TELLTALE_INGEST_MIGRATE_ON_START")]
    pub migrate_on_start: Option<bool>,
    /// Keep telemetry in TimescaleDB: auto (when it is loaded), on (required), off.
    #[arg(long, global = true, env = "TELLTALE_INGEST_TIMESCALEDB")]
    pub timescaledb: Option<String>,
    #[arg(long, global = true, env = "TELLTALE_INGEST_BATCH_MAX_MESSAGES")]
    pub batch_max_messages: Option<usize>,
    /// Batches written at once, each on its own database connection.
    #[arg(long, global = true, env = "TELLTALE_INGEST_BATCH_WRITERS")]
    pub batch_writers: Option<usize>,
    /// e.g. 200ms.
    #[arg(long, global = true, env = "TELLTALE_INGEST_BATCH_MAX_AGE")]
    pub batch_max_age: Option<String>,
    /// The CRM's gRPC endpoint for leads (empty keeps them in the outbox).
    #[arg(long, global = true, env = "TELLTALE_INGEST_CRM_URL")]
    pub crm_url: Option<String>,
    /// The CRM integration token; prefer the environment variable or leads.token_file.
    #[arg(
        long,
        global = true,
        env = "TELLTALE_INGEST_CRM_TOKEN",
        hide_env_values = true
    )]
    pub crm_token: Option<String>,
    /// Metrics endpoint address (empty disables).
    #[arg(long, global = true, env = "TELLTALE_INGEST_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// text or json.
    #[arg(long, global = true, env = "TELLTALE_INGEST_LOG_FORMAT")]
    pub log_format: Option<String>,
}

impl Flags {
    /// The file's configuration with these flags applied.
    pub fn apply(&self, mut c: FileConfig) -> FileConfig {
        let set = |dst: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                dst.clone_from(v);
            }
        };
        set(&mut c.mqtt.url, &self.mqtt_url);
        set(&mut c.mqtt.protocol, &self.mqtt_protocol);
        set(&mut c.mqtt.client_id, &self.client_id);
        set(&mut c.mqtt.share_group, &self.share_group);
        set(&mut c.database.url, &self.database_url);
        set(&mut c.database.timescaledb, &self.timescaledb);
        set(&mut c.batch.max_age, &self.batch_max_age);
        set(&mut c.metrics.listen, &self.metrics_listen);
        set(&mut c.leads.crm_url, &self.crm_url);
        if self.crm_token.is_some() {
            c.leads.token.clone_from(&self.crm_token);
            c.leads.token_file = None;
        }
        set(&mut c.log.format, &self.log_format);
        if self.no_shared {
            c.mqtt.shared = false;
        }
        if self.mqtt_ca_file.is_some() {
            c.mqtt.ca_file.clone_from(&self.mqtt_ca_file);
        }
        if self.mqtt_cert_file.is_some() {
            c.mqtt.cert_file.clone_from(&self.mqtt_cert_file);
        }
        if self.mqtt_key_file.is_some() {
            c.mqtt.key_file.clone_from(&self.mqtt_key_file);
        }
        if self.mqtt_username.is_some() {
            c.mqtt.username.clone_from(&self.mqtt_username);
        }
        if self.mqtt_password.is_some() {
            c.mqtt.password.clone_from(&self.mqtt_password);
            c.mqtt.password_file = None;
        }
        if let Some(v) = self.max_in_flight {
            c.mqtt.max_in_flight = v;
        }
        if let Some(v) = self.migrate_on_start {
            c.database.migrate_on_start = v;
        }
        if let Some(v) = self.batch_max_messages {
            c.batch.max_messages = v;
        }
        if let Some(v) = self.batch_writers {
            c.batch.writers = v;
        }
        c
    }
}

impl FileConfig {
    /// Reads and parses a TOML file; unknown keys and wrong types are errors naming the key.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        values::load_toml(path)
    }

    /// Parses TOML text; the error is toml's message (with line, column and key).
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        values::parse_toml(text)
    }

    /// The effective configuration as TOML, secrets (MQTT password, a password in the
    /// database url) replaced by `<redacted>`.
    pub fn to_toml_redacted(&self) -> String {
        let mut shown = self.clone();
        if shown.mqtt.password.is_some() {
            shown.mqtt.password = Some("<redacted>".into());
        }
        if shown.leads.token.is_some() {
            shown.leads.token = Some("<redacted>".into());
        }
        shown.database.url = redact_url(&shown.database.url);
        values::to_toml(&shown)
    }

    /// Checks every value and turns the text into typed settings.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let mqtt = self.validate_mqtt()?;
        let d = &self.database;
        if !(d.url.starts_with("postgres://")
            || d.url.starts_with("postgresql://")
            || d.url.starts_with("sqlite:"))
        {
            return Err(invalid(
                "database.url",
                format!(
                    "{:?}: use postgres://USER@HOST/DB or sqlite://PATH",
                    redact_url(&d.url)
                ),
            ));
        }
        if d.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        let retention = duration("database.retention", &d.retention)?;
        let retention_days = u32::try_from(retention.as_secs() / 86_400).unwrap_or(u32::MAX);
        if retention_days == 0 {
            return Err(invalid("database.retention", "must be at least 1d"));
        }
        let maintenance_interval =
            duration("database.maintenance_interval", &d.maintenance_interval)?;
        if maintenance_interval < Duration::from_secs(1) {
            return Err(invalid(
                "database.maintenance_interval",
                "must be at least 1s",
            ));
        }
        let timescaledb = d
            .timescaledb
            .parse::<telltale_store::TimescaleMode>()
            .map_err(|_| {
                invalid(
                    "database.timescaledb",
                    format!("{:?}: use auto, on or off", d.timescaledb),
                )
            })?;
        let leads = self.validate_leads()?;
        let b = &self.batch;
        if b.max_messages == 0 {
            return Err(invalid("batch.max_messages", "must be at least 1"));
        }
        if b.max_messages > usize::from(mqtt.broker.max_in_flight) {
            return Err(invalid(
                "batch.max_messages",
                format!(
                    "{} exceeds mqtt.max_in_flight ({}): a batch could never fill",
                    b.max_messages, mqtt.broker.max_in_flight
                ),
            ));
        }
        if b.writers == 0 {
            return Err(invalid("batch.writers", "must be at least 1"));
        }
        if b.writers >= d.max_connections as usize {
            return Err(invalid(
                "batch.writers",
                format!(
                    "{} leaves no connection of database.max_connections ({}) for the lead \
                     sender and maintenance: raise database.max_connections",
                    b.writers, d.max_connections
                ),
            ));
        }
        let max_age = duration("batch.max_age", &b.max_age)?;
        if max_age < Duration::from_millis(1) {
            return Err(invalid("batch.max_age", "must be at least 1ms"));
        }
        let max_payload = values::size("validate.max_payload", &self.validate.max_payload)?;
        if max_payload == 0 {
            return Err(invalid("validate.max_payload", "must be above 0"));
        }
        let metrics_listen = if self.metrics.listen.is_empty() {
            None
        } else {
            Some(self.metrics.listen.parse::<SocketAddr>().map_err(|e| {
                invalid("metrics.listen", format!("{:?}: {e}", self.metrics.listen))
            })?)
        };
        let json_logs = values::json_logs("log.format", &self.log.format)?;
        values::log_filter("log.filter", &self.log.filter)?;
        Ok(Settings {
            mqtt,
            database_url: d.url.clone(),
            migrate_on_start: d.migrate_on_start,
            store: telltale_store::StoreOptions {
                max_connections: d.max_connections,
                retention_days,
                leads_for_pending: self.leads.for_pending,
                timescaledb,
                ..telltale_store::StoreOptions::default()
            },
            maintenance_interval,
            crm: leads,
            batch_max_messages: b.max_messages,
            batch_max_age: max_age,
            batch_writers: b.writers,
            shutdown_grace: duration("batch.shutdown_grace", &b.shutdown_grace)?,
            limits: crate::validate::Limits {
                max_payload: usize::try_from(max_payload).unwrap_or(usize::MAX),
                max_clock_ahead: duration(
                    "validate.max_clock_ahead",
                    &self.validate.max_clock_ahead,
                )?,
                max_clock_behind: duration(
                    "validate.max_clock_behind",
                    &self.validate.max_clock_behind,
                )?,
            },
            metrics_listen,
            json_logs,
            log_filter: self.log.filter.clone(),
        })
    }

    fn validate_leads(&self) -> Result<Option<CrmSettings>, ConfigError> {
        let l = &self.leads;
        let timeout = duration("leads.timeout", &l.timeout)?;
        let poll_interval = duration("leads.poll_interval", &l.poll_interval)?;
        let retry_max = duration("leads.retry_max", &l.retry_max)?;
        if timeout < Duration::from_millis(100) {
            return Err(invalid("leads.timeout", "must be at least 100ms"));
        }
        if poll_interval < Duration::from_millis(10) {
            return Err(invalid("leads.poll_interval", "must be at least 10ms"));
        }
        if retry_max < Duration::from_secs(1) {
            return Err(invalid("leads.retry_max", "must be at least 1s"));
        }
        if l.crm_url.is_empty() {
            if l.ca_file.is_some() || l.token.is_some() || l.token_file.is_some() {
                return Err(invalid(
                    "leads.crm_url",
                    "a CRM token or CA is configured but no crm_url",
                ));
            }
            return Ok(None);
        }
        let tls = if l.crm_url.starts_with("https://") {
            true
        } else if l.crm_url.starts_with("http://") {
            false
        } else {
            return Err(invalid(
                "leads.crm_url",
                format!("{:?}: use http://HOST:PORT or https://HOST:PORT", l.crm_url),
            ));
        };
        let ca_pem = match (&l.ca_file, tls) {
            (Some(f), true) => Some(values::read_file("leads.ca_file", f)?),
            (Some(_), false) => {
                return Err(invalid(
                    "leads.crm_url",
                    "a CA is configured but the url is http:// (use https://)",
                ));
            }
            (None, _) => None,
        };
        let token = match (&l.token, &l.token_file) {
            (Some(t), None) => Some(t.clone()),
            (None, Some(f)) => Some(values::read_secret("leads.token_file", f)?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "leads.token",
                    "set either token or token_file, not both",
                ));
            }
        };
        if let Some(t) = &token
            && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(invalid(
                "leads.token",
                "must be non-empty printable ASCII without spaces",
            ));
        }
        Ok(Some(CrmSettings {
            url: l.crm_url.clone(),
            ca_pem,
            token,
            timeout,
            poll_interval,
            retry_max,
        }))
    }

    fn validate_mqtt(&self) -> Result<MqttSettings, ConfigError> {
        let m = &self.mqtt;
        let broker = telltale_service::broker_fields!(m).validate()?;
        // The client id names the persistent session; the broker refuses some characters and
        // a `/` or wildcard would be a trap in ACLs.
        telltale_wire::topic::validate_device_id(&m.client_id).map_err(|_| {
            invalid(
                "mqtt.client_id",
                format!(
                    "{:?}: use 1-64 characters of A-Z a-z 0-9 - _ .",
                    m.client_id
                ),
            )
        })?;
        let share_group = if m.shared {
            let g = &m.share_group;
            if g.is_empty() || g.contains(['/', '+', '#']) {
                return Err(invalid(
                    "mqtt.share_group",
                    format!("{g:?}: must be non-empty, without / + #"),
                ));
            }
            Some(g.clone())
        } else {
            None
        };
        Ok(MqttSettings {
            broker,
            client_id: m.client_id.clone(),
            share_group,
        })
    }
}

/// Validated MQTT settings: the broker connection and the ingest's session.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub broker: Broker,
    pub client_id: String,
    /// `Some(group)`: shared subscriptions; `None`: plain ones.
    pub share_group: Option<String>,
}

/// The CRM client: where and how the lead sender calls `CreateLead`.
#[derive(Clone)]
pub struct CrmSettings {
    pub url: String,
    /// For `https://`: the CA the CRM's certificate chains to (else the system's roots are not
    /// consulted: the CRM is ours, so its CA is known).
    pub ca_pem: Option<Vec<u8>>,
    pub token: Option<String>,
    pub timeout: Duration,
    pub poll_interval: Duration,
    pub retry_max: Duration,
}

impl fmt::Debug for CrmSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmSettings")
            .field("url", &self.url)
            .field("tls_ca", &self.ca_pem.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The validated, typed configuration the ingest runs with.
#[derive(Clone)]
pub struct Settings {
    pub mqtt: MqttSettings,
    pub database_url: String,
    pub migrate_on_start: bool,
    /// Connections, retention and lead rules for the store.
    pub store: telltale_store::StoreOptions,
    pub maintenance_interval: Duration,
    /// Where leads go; `None` keeps them in the outbox.
    pub crm: Option<CrmSettings>,
    pub batch_max_messages: usize,
    pub batch_max_age: Duration,
    /// Writers, each writing its own batches on its own connection.
    pub batch_writers: usize,
    pub shutdown_grace: Duration,
    pub limits: crate::validate::Limits,
    pub metrics_listen: Option<SocketAddr>,
    pub json_logs: bool,
    pub log_filter: String,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("mqtt", &self.mqtt)
            .field("database_url", &redact_url(&self.database_url))
            .field("batch_max_messages", &self.batch_max_messages)
            .field("batch_max_age", &self.batch_max_age)
            .field("batch_writers", &self.batch_writers)
            .field("limits", &self.limits)
            .field("crm", &self.crm)
            .field("metrics_listen", &self.metrics_listen)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        flags: Flags,
    }

    fn err_of(c: &FileConfig) -> String {
        match c.validate() {
            Ok(_) => panic!("config accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid_and_shared() {
        let s = FileConfig::default().validate().expect("valid");
        assert_eq!(s.mqtt.broker.port, 1883);
        assert_eq!(s.mqtt.share_group.as_deref(), Some("ingest"));
        assert_eq!(s.batch_max_messages, 500);
        assert_eq!(s.batch_max_age, Duration::from_millis(200));
        assert_eq!(s.batch_writers, 2);
        assert_eq!(s.limits.max_payload, 256 * 1024);
        assert_eq!(s.limits.max_clock_behind, Duration::from_secs(30 * 86_400));
        assert!(s.migrate_on_start);
    }

    #[test]
    fn unknown_and_mistyped_keys_are_refused_with_their_name() {
        let e = FileConfig::parse("[mqtt]\nurll = \"x\"\n").expect_err("typo");
        assert!(e.contains("urll"), "{e}");
        let e = FileConfig::parse("[batch]\nmax_messages = \"many\"\n").expect_err("type");
        assert!(e.contains("max_messages"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        type Edit = fn(&mut FileConfig);
        let cases: Vec<(Edit, &str)> = vec![
            (|c| c.mqtt.url = "tcp://x:1".into(), "mqtt.url:"),
            (|c| c.mqtt.url = "mqtts://b:8883".into(), "mqtt.ca_file:"),
            (|c| c.mqtt.protocol = "6".into(), "mqtt.protocol:"),
            (|c| c.mqtt.client_id = "a/b".into(), "mqtt.client_id:"),
            (|c| c.mqtt.share_group = "a/b".into(), "mqtt.share_group:"),
            (|c| c.mqtt.password = Some("p".into()), "mqtt.username:"),
            (|c| c.mqtt.max_in_flight = 0, "mqtt.max_in_flight:"),
            (|c| c.database.url = "mysql://x".into(), "database.url:"),
            (|c| c.batch.max_messages = 0, "batch.max_messages:"),
            (|c| c.batch.max_messages = 5000, "batch.max_messages:"),
            (|c| c.batch.writers = 0, "batch.writers:"),
            (|c| c.batch.writers = 8, "batch.writers:"),
            (|c| c.batch.max_age = "200".into(), "batch.max_age:"),
            (
                |c| c.validate.max_payload = "lots".into(),
                "validate.max_payload:",
            ),
            (
                |c| c.validate.max_clock_ahead = "1y".into(),
                "validate.max_clock_ahead:",
            ),
            (|c| c.metrics.listen = "localhost".into(), "metrics.listen:"),
            (|c| c.log.format = "xml".into(), "log.format:"),
            (
                |c| c.database.retention = "2h".into(),
                "database.retention:",
            ),
            (
                |c| c.database.timescaledb = "maybe".into(),
                "database.timescaledb:",
            ),
            (|c| c.leads.crm_url = "grpc://crm".into(), "leads.crm_url:"),
            (|c| c.leads.token = Some("t".into()), "leads.crm_url:"),
            (
                |c| {
                    c.leads.crm_url = "http://crm:50051".into();
                    c.leads.token = Some("has space".into());
                },
                "leads.token:",
            ),
            (
                |c| {
                    c.leads.crm_url = "http://crm:50051".into();
                    c.leads.ca_file = Some("/etc/ca.pem".into());
                },
                "leads.crm_url:",
            ),
            (|c| c.leads.retry_max = "10ms".into(), "leads.retry_max:"),
        ];
        for (edit, key) in cases {
            let mut c = FileConfig::default();
            edit(&mut c);
            let e = err_of(&c);
            assert!(e.starts_with(key), "expected {key} in {e}");
        }
        // A shared group that is wrong does not matter when shared subscriptions are off.
        let mut c = FileConfig::default();
        c.mqtt.share_group = "a/b".into();
        c.mqtt.shared = false;
        assert_eq!(c.validate().expect("valid").mqtt.share_group, None);
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = FileConfig::parse(
            "[mqtt]\nurl = \"mqtt://file:1\"\nclient_id = \"from-file\"\n[batch]\nmax_messages = 10\n",
        )
        .expect("parses");
        let cli = TestCli::try_parse_from([
            "x",
            "--mqtt-url",
            "mqtt://flag:2",
            "--no-shared",
            "--mqtt-protocol",
            "5",
            "--database-url",
            "postgres://u:pw@db/telltale",
            "--migrate-on-start",
            "false",
        ])
        .expect("flags parse");
        let c = cli.flags.apply(file);
        let s = c.validate().expect("valid");
        assert_eq!(
            (s.mqtt.broker.host.as_str(), s.mqtt.broker.port),
            ("flag", 2)
        );
        assert_eq!(s.mqtt.client_id, "from-file");
        assert_eq!(s.mqtt.share_group, None);
        assert_eq!(s.mqtt.broker.protocol, telltale_service::mqtt::Protocol::V5);
        assert_eq!(s.batch_max_messages, 10);
        assert!(!s.migrate_on_start);
        let printed = c.to_toml_redacted();
        assert!(!printed.contains("pw@"), "{printed}");
        assert!(
            printed.contains("postgres://u:<redacted>@db/telltale"),
            "{printed}"
        );
        let back = FileConfig::parse(&printed).expect("printed config parses back");
        assert_eq!(back.mqtt.url, "mqtt://flag:2");
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let text = include_str!("../ingest.example.toml");
        assert_eq!(FileConfig::parse(text), Ok(FileConfig::default()));
    }
}
