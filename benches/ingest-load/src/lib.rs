//! # telltale-load: the ingest load benchmark
//!
//! How many telemetry samples per second `telltale-ingest` commits from a broker full of
//! vehicles, compared in one run on the same machine with the database's own ceiling (the same
//! rows by `COPY`) and with a naive ingester (one `INSERT` per sample). Issue 5 sets the goals:
//! at least half the COPY ceiling and at least ten times the naive one.
//!
//! - [`fleet`]: the simulated vehicles and exactly what each publishes (the agent's protobuf
//!   messages, topics and headers).
//! - [`generate`]: the load generator, publishing a fleet at its rate over a few MQTT
//!   connections.
//! - [`naive`]: the naive ingester, part (c).
//! - [`copy`]: binary COPY of the same rows, part (b).
//! - [`store_batches`]: the store's write path alone, UNNEST against COPY, part (d).
//! - [`bench`](mod@bench): the harness that runs the parts in rounds, with medians and ratios;
//!   [`report`] renders them.
//! - [`footprint`]: bytes per sample on disk in plain PostgreSQL, TimescaleDB (before and
//!   after compression) and SQLite (`telltale-load footprint`).
//! - [`broker`], [`ingest`], [`db`], [`proc`]: a Mosquitto of its own, the ingest process and
//!   its metrics, scratch databases and the checks on them, CPU and load from `/proc`.
//!
//! What it does not do: measure TLS, several ingest instances, or the ingest's speed on
//! TimescaleDB (its footprint, yes).

pub mod bench;
pub mod broker;
pub mod copy;
pub mod db;
pub mod fleet;
pub mod footprint;
pub mod generate;
pub mod ingest;
pub mod naive;
pub mod proc;
pub mod report;
pub mod store_batches;
