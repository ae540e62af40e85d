//! # telltale-crm: from a trouble code to a piece of business
//!
//! The CRM turns a fault a car reported into a service lead with a repair pre-quote: advisors
//! and the ingest use its gRPC API, car owners its quote page. Where to look:
//!
//! - Where a price is computed (pure, no I/O): [`money`] (integer minor units, the one
//!   rounding rule, amounts people type), [`knowledge`] (what a code means, how urgent, which
//!   jobs it probably needs; `data/diagnostics/`), [`catalog`] (labor guide and parts in good /
//!   better / best tiers), [`vehicle`] (a VIN's make and model year), [`pricing`] (the
//!   pre-quote: range and assumptions), [`quote`] (the owner's choices with their lines, and an
//!   advisor's revision priced by the same rule), [`data`] (the files built into the binary).
//! - The shop's process (pure): [`lifecycle`] (which status moves are allowed), [`slots`]
//!   (free appointment times from opening hours and bays), [`auth`] (tokens, roles, what each
//!   role may do), [`link`] (the owner's signed, expiring link).
//! - Where a row is stored: [`db`] (PostgreSQL or SQLite behind one set of queries; every
//!   query scoped to a tenant).
//! - The operations, each checked against the caller's token: [`app`]; lead changes to
//!   every replica's watchers: [`events`].
//! - The edges: [`grpc`] (the API, health, reflection; errors to status codes in one place),
//!   [`web`] (the quote page), [`server`] (both side by side). The `telltale-crm` binary adds
//!   the command line.
//! - Where a page is rendered: an askama template in `templates/` (compiled into the binary,
//!   every value HTML-escaped unless marked otherwise), filled from a view struct in [`web`]
//!   that holds only text ready to show (amounts formatted, times in the shop's zone). Markup
//!   is never built with `format!`.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod csvrows;
pub mod data;
pub mod db;
pub mod events;
pub mod grpc;
pub mod knowledge;
pub mod lifecycle;
pub mod link;
pub mod metrics;
pub mod money;
pub mod pricing;
pub mod quote;
pub mod server;
pub mod slots;
pub mod vehicle;
pub mod web;
