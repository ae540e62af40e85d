//! # telltale-crm: from a trouble code to a piece of business
//!
//! The CRM turns a fault a car reported into a service lead with a repair pre-quote. This
//! crate holds its core, which has no I/O and is where a price is computed:
//!
//! - [`money`]: amounts as integer minor units with a currency, and the one rounding rule.
//! - [`knowledge`]: the diagnostics knowledge base (`data/diagnostics/`): what a code means,
//!   how urgent it is, which repair jobs it probably needs.
//! - [`catalog`]: the labor guide and the parts catalog in good / better / best tiers
//!   (`data/catalog/`, or a shop's own CSV), parsed with every bad row reported by line.
//! - [`pricing`]: the pre-quote: probable jobs priced per tier, diagnostic fee, shop supplies
//!   and tax, a most-likely total and a low–high range, with the assumptions written out.
//! - [`vehicle`]: a VIN's make (by its WMI, `data/vehicles/wmi.csv`) and model year.
//!
//! The service around it (gRPC API, storage, the owner's quote page) is built on this.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod csvrows;
pub mod data;
pub mod db;
pub mod grpc;
pub mod knowledge;
pub mod lifecycle;
pub mod link;
pub mod money;
pub mod pricing;
pub mod quote;
pub mod server;
pub mod slots;
pub mod vehicle;
pub mod web;
