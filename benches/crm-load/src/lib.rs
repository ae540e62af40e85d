//! # telltale-crm-load: the CRM's benchmarks
//!
//! Issue 15's last part, "the rest of the chain, measured": two benchmarks on this machine's
//! real services, each printing a table with ratios to a ceiling measured in the same run.
//!
//! - [`api`](mod@api): the gRPC API of the real `telltale-crm` under load, on PostgreSQL and
//!   on SQLite: `GetQuote`, `CreateLead` (repeated keys and new keys) and `ListLeads` (keyset
//!   pages), requests per second and latency percentiles over several HTTP/2 connections with
//!   concurrent streams, beside two ceilings: the same server answering the gRPC health check
//!   (no database), and `GetQuote`'s own database calls made in-process without gRPC. The goal
//!   is at least 10,000 `GetQuote`/s on 2 cores.
//! - [`fault`]: a fault set on a simulated car's bus, through `firmware-sim`, `telltale-agent`,
//!   Mosquitto, `telltale-ingest` on PostgreSQL and `telltale-crm`, to the lead on an advisor's
//!   `WatchLeads` stream, per fault and in stages, beside the CRM's own part (a `CreateLead`
//!   straight to the CRM). The goal is p99 under 250 ms on loopback.
//!
//! The pieces: [`load`] (the closed-loop load driver), [`stats`] (percentiles and medians),
//! [`process`] (child processes with their logs), [`crm`] (the CRM as a process, its tokens
//! and a shop), [`cars`] (simulated cars with a scripted fault timeline and their agents),
//! and [`report`] (the tables).
//!
//! What it does not do: measure TLS, several CRM replicas, or the owner's quote page.

pub mod api;
pub mod cars;
pub mod crm;
pub mod fault;
pub mod load;
pub mod process;
pub mod report;
pub mod stats;
