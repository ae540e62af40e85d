//! # telltale-service: what every long-running Telltale program needs besides its own job
//!
//! The agent, the ingest and the CRM each read a TOML file with flags over it, speak MQTT
//! (3.1.1 or 5, optionally over mutual TLS), answer a few plain HTTP GETs for health and
//! metrics, log through `tracing` and stop cleanly on SIGTERM. This crate is that plumbing, once:
//!
//! - [`config`]: the error every setting reports (naming its key), durations (`500ms`, `30s`,
//!   `5m`, `1h`, `30d`), sizes (`64MiB`), files read at start, TOML loading and URL redaction.
//! - [`mqtt`]: the broker connection settings and their validation, and one face over
//!   rumqttc's 3.1.1 and 5 clients (publish, subscribe, manual acknowledgements, events).
//! - [`http`]: a minimal GET-only endpoint for `/metrics`, `/healthz` and the like.
//! - [`process`]: log initialisation and the shutdown signal.
//!
//! Nothing here knows about vehicles, telemetry or leads.

pub mod config;
pub mod http;
pub mod mqtt;
pub mod process;
