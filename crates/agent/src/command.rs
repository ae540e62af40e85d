//! Downlink commands (stub; replaced by the command branch).
use std::path::PathBuf;
use std::time::Duration;

use telltale_wire::signing::TrustedKey;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::uplink::Message;
use crate::vehicle::VehicleRequest;

#[derive(Debug, Clone)]
pub struct CommandConfig {
    pub device_id: String,
    pub trusted_keys: Vec<TrustedKey>,
    pub allow_clear: bool,
    pub max_ttl: Duration,
    pub max_clock_skew: Duration,
    pub replay_file: PathBuf,
}

pub async fn run(
    config: CommandConfig,
    incoming: mpsc::Receiver<Vec<u8>>,
    vehicle: mpsc::Sender<VehicleRequest>,
    out: mpsc::Sender<Message>,
    cancel: CancellationToken,
) {
    let _ = (config, incoming, vehicle, out);
    cancel.cancelled().await
}
