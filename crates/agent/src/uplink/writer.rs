//! The spool writer: the one place uplink messages get their header and reach the disk.
//!
//! It takes [`Message`]s from the vehicle side and the command handler, stamps the header
//! (device id, boot id, the next `seq`, the device clock) in the order it stores them, appends
//! them to the spool and wakes the session. The spool runs on its own thread
//! ([`SpoolHandle`]) because an fsync on an SD card can take tens of milliseconds, which would
//! stall the CAN timers if it ran on the agent's runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use telltale_wire::v1;
use tokio::sync::{Notify, mpsc};

use super::Message;
use crate::spool::{FsyncPolicy, SpoolHandle};

/// Identity stamped on every uplink message of this process.
#[derive(Debug)]
pub struct Stamp {
    pub device_id: String,
    /// Random per agent start.
    pub boot_id: [u8; 16],
    /// The last `seq` given out (0 before the first message).
    pub last_seq: AtomicU64,
}

impl Stamp {
    pub fn new(device_id: String) -> Stamp {
        let mut boot_id = [0u8; 16];
        if getrandom::fill(&mut boot_id).is_err() {
            // No entropy source: fall back to the clock, still unique per start in practice.
            let t = now_unix_ms().to_le_bytes();
            boot_id[..8].copy_from_slice(&t);
            boot_id[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        }
        Stamp {
            device_id,
            boot_id,
            last_seq: AtomicU64::new(0),
        }
    }

    /// The header for the next stored message.
    pub fn next_header(&self) -> v1::UplinkHeader {
        v1::UplinkHeader {
            device_id: self.device_id.clone(),
            boot_id: self.boot_id.to_vec(),
            seq: self.last_seq.fetch_add(1, Ordering::SeqCst) + 1,
            created_unix_ms: now_unix_ms(),
        }
    }

    /// The header of a status message: not spooled, so it takes no `seq`.
    pub fn status_header(&self) -> v1::UplinkHeader {
        v1::UplinkHeader {
            device_id: self.device_id.clone(),
            boot_id: self.boot_id.to_vec(),
            seq: 0,
            created_unix_ms: now_unix_ms(),
        }
    }
}

/// UTC milliseconds since the Unix epoch on this device's clock.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Stores messages until every sender is gone (so what the vehicle side flushes at shutdown is
/// stored too), then syncs the spool. A message the spool refuses (too large, disk error) is
/// logged and counted; it never stops the writer.
pub async fn run(
    spool: SpoolHandle,
    stamp: Arc<Stamp>,
    mut rx: mpsc::Receiver<Message>,
    wake: Arc<Notify>,
    fsync: FsyncPolicy,
) {
    let mut sync_tick = tokio::time::interval(match fsync {
        FsyncPolicy::Interval(d) => d.max(Duration::from_millis(10)),
        _ => Duration::from_secs(3600),
    });
    sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let class = msg.class();
                let kind = msg.kind();
                let (topic, payload) = msg.stamp(stamp.next_header());
                let size = payload.len();
                match spool.append(class, topic, payload).await {
                    Ok(_) => wake.notify_one(),
                    Err(e) => tracing::error!(cause = %e, %kind, size, "message not stored"),
                }
            }
            _ = sync_tick.tick(), if matches!(fsync, FsyncPolicy::Interval(_)) => {
                if let Err(e) = spool.sync().await {
                    tracing::error!(cause = %e, "spool sync failed");
                }
            }
        }
    }
    match spool.sync().await {
        Ok(()) => tracing::debug!("spool synced at shutdown"),
        Err(e) => tracing::error!(cause = %e, "spool sync at shutdown failed"),
    }
}
