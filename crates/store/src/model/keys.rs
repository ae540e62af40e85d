//! A batch sorted into what is deduplicated and what is not, and which messages were new.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Utc};
use telltale_wire::v1;

use crate::{Envelope, StoreError, Uplink};

/// A message's identity: what makes a redelivery recognisable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::FromRow)]
pub(crate) struct Key {
    pub(crate) device_id: String,
    pub(crate) boot_id: Vec<u8>,
    pub(crate) seq: i64,
}

/// A row of the dedupe table.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub(crate) key: Key,
    pub(crate) kind: &'static str,
    pub(crate) device_time: DateTime<Utc>,
    pub(crate) received_at: DateTime<Utc>,
}

/// A batch sorted into what is deduplicated and what is not.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    /// First occurrence in the batch of each key, in batch order.
    pub(crate) keyed: Vec<(&'a Envelope, KeyRow)>,
    /// Presence messages (seq 0), in batch order.
    pub(crate) statuses: Vec<&'a Envelope>,
    /// Messages whose key came earlier in the same batch.
    pub(crate) in_batch_duplicates: u64,
}

impl<'a> Split<'a> {
    /// Takes the keyed messages whose keys were new to the database (`stored`: what the key
    /// insert took), in batch order, and counts the batch's duplicates: in-batch repeats and
    /// messages stored before.
    pub(crate) fn take_fresh(
        &mut self,
        stored: &HashSet<Key>,
    ) -> (Vec<(&'a Envelope, KeyRow)>, u64) {
        let keyed = std::mem::take(&mut self.keyed);
        let offered = keyed.len() as u64;
        let fresh: Vec<(&'a Envelope, KeyRow)> = keyed
            .into_iter()
            .filter(|(_, row)| stored.contains(&row.key))
            .collect();
        let duplicates = self.in_batch_duplicates + offered - fresh.len() as u64;
        (fresh, duplicates)
    }
}

pub(super) fn header(message: &Uplink) -> Option<&v1::UplinkHeader> {
    match message {
        Uplink::Telemetry(m) => m.header.as_ref(),
        Uplink::Dtc(m) => m.header.as_ref(),
        Uplink::Info(m) => m.header.as_ref(),
        Uplink::CmdResult(m) => m.header.as_ref(),
        Uplink::Status(m) => m.header.as_ref(),
    }
}

fn kind_of(message: &Uplink) -> &'static str {
    match message {
        Uplink::Telemetry(_) => "telemetry",
        Uplink::Dtc(_) => "dtc",
        Uplink::Info(_) => "info",
        Uplink::CmdResult(_) => "cmd-result",
        Uplink::Status(_) => "status",
    }
}

/// A device's clock reading as a UTC time, or `fallback` when it is not a plausible date.
///
/// A car's clock can say 1970 or 2150; both are kept (the device time is evidence), but a value
/// outside years 1900..=9999 cannot be stored in both databases, so the receive time stands in.
pub(crate) fn device_time(unix_ms: i64, fallback: DateTime<Utc>) -> DateTime<Utc> {
    match DateTime::from_timestamp_millis(unix_ms) {
        Some(t) if (1900..=9999).contains(&t.year()) => t,
        _ => fallback,
    }
}

/// Sorts a batch: keys for the deduplicated messages (in-batch repeats dropped), statuses aside.
///
/// A message without a header gets the empty boot id and seq 0; the ingest rejects those before
/// they get here, so this only keeps the store total.
pub(crate) fn split(batch: &[Envelope]) -> Result<Split<'_>, StoreError> {
    let mut seen = HashSet::new();
    let mut out = Split {
        keyed: Vec::new(),
        statuses: Vec::new(),
        in_batch_duplicates: 0,
    };
    for envelope in batch {
        if matches!(envelope.message, Uplink::Status(_)) {
            out.statuses.push(envelope);
            continue;
        }
        let default = v1::UplinkHeader::default();
        let h = header(&envelope.message).unwrap_or(&default);
        let seq = i64::try_from(h.seq).map_err(|_| StoreError::SeqOutOfRange {
            device_id: envelope.device_id.clone(),
            seq: h.seq,
        })?;
        let key = Key {
            device_id: envelope.device_id.clone(),
            boot_id: h.boot_id.clone(),
            seq,
        };
        if !seen.insert(key.clone()) {
            out.in_batch_duplicates += 1;
            continue;
        }
        let row = KeyRow {
            key,
            kind: kind_of(&envelope.message),
            device_time: device_time(h.created_unix_ms, envelope.received_at),
            received_at: envelope.received_at,
        };
        out.keyed.push((envelope, row));
    }
    Ok(out)
}
