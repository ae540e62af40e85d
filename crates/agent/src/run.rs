//! Wires the agent together and shuts it down in the order that loses nothing:
//! stop reading the car (the vehicle side flushes its partial telemetry batch), let the writer
//! store what is left, give the session a few seconds to publish the backlog and say offline,
//! then sync the spool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use telltale_can::{ClientOptions, DiagClient};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::command::{self, CommandConfig};
use crate::config::Settings;
use crate::spool::{Spool, SpoolConfig, SpoolHandle};
use crate::status::{self, Board};
use crate::uplink::{self, Session, Stamp, UplinkState};
use crate::vehicle::{self, VehicleConfig, VehicleState};

/// How long the session may keep publishing the backlog after shutdown was asked.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Runs the agent until `shutdown` completes. Errors are start-up failures (spool directory,
/// status port); once running, link and broker failures are retried, never fatal.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let spool = Spool::open(SpoolConfig {
        dir: settings.spool_dir.clone(),
        max_bytes: settings.spool_max_bytes,
        fsync: settings.fsync,
    })
    .with_context(|| format!("cannot open the spool in {}", settings.spool_dir.display()))?;
    let stats = spool.stats();
    tracing::info!(
        device = %settings.device_id,
        messages = stats.messages,
        bytes = stats.bytes,
        torn_bytes = stats.recovered_torn_bytes,
        "spool opened"
    );
    let spool = SpoolHandle::spawn(spool).context("cannot start the spool's thread")?;
    let stamp = Arc::new(Stamp::new(settings.device_id.clone()));

    let (msg_tx, msg_rx) = mpsc::channel(64);
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (req_tx, req_rx) = mpsc::channel(8);
    let wake = Arc::new(Notify::new());
    let (vehicle_tx, vehicle_rx) = watch::channel(VehicleState {
        link_state: "opening".into(),
        ..VehicleState::default()
    });
    let (uplink_tx, uplink_rx) = watch::channel(UplinkState::default());
    let vehicle_stop = CancellationToken::new();
    let session_stop = CancellationToken::new();
    let status_stop = CancellationToken::new();

    let status_task = match settings.status_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("status.listen: cannot listen on {addr}"))?;
            tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "status endpoint: /status /metrics /healthz");
            let board = Board {
                stamp: stamp.clone(),
                started: Instant::now(),
                vehicle: vehicle_rx.clone(),
                uplink: uplink_rx.clone(),
                spool: spool.clone(),
                version: version.clone(),
            };
            Some(tokio::spawn(status::serve(
                listener,
                board,
                status_stop.clone(),
            )))
        }
        None => None,
    };

    let writer = tokio::spawn(uplink::writer::run(
        spool.clone(),
        stamp.clone(),
        msg_rx,
        wake.clone(),
        settings.fsync,
    ));
    let session = tokio::spawn(
        Session {
            settings: settings.mqtt.clone(),
            stamp: stamp.clone(),
            spool: spool.clone(),
            wake,
            vehicle: vehicle_rx.clone(),
            commands: cmd_tx,
            state: uplink_tx,
            agent_version: version.clone(),
            drain_grace: DRAIN_GRACE,
        }
        .run(session_stop.clone()),
    );
    let commands = tokio::spawn(command::run(
        CommandConfig {
            device_id: settings.device_id.clone(),
            trusted_keys: settings.trusted_keys.clone(),
            allow_clear: settings.allow_clear,
            max_ttl: settings.max_ttl,
            max_clock_skew: settings.max_clock_skew,
            replay_file: settings.state_dir.join("commands-seen"),
            request_timeout: command::DEFAULT_REQUEST_TIMEOUT,
        },
        cmd_rx,
        req_tx,
        msg_tx.clone(),
        vehicle_stop.clone(),
    ));
    let vehicle_task = tokio::spawn(drive_vehicle(
        settings.clone(),
        msg_tx,
        req_rx,
        vehicle_tx,
        vehicle_stop.clone(),
    ));

    shutdown.await;
    tracing::info!("shutting down");
    vehicle_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = vehicle_task.await;
        let _ = commands.await;
    })
    .await;
    if tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .is_err()
    {
        tracing::error!("the spool writer did not finish in 10 s");
    }
    session_stop.cancel();
    let _ = session.await;
    status_stop.cancel();
    if let Some(t) = status_task {
        let _ = t.await;
    }
    let stats = spool.stats();
    tracing::info!(
        left_in_spool = stats.messages,
        last_seq = stamp.last_seq.load(std::sync::atomic::Ordering::SeqCst),
        "stopped"
    );
    Ok(())
}

/// Opens the link (retrying with back-off: an adapter may be plugged in later, a CAN interface
/// may come up late at boot), then runs the vehicle side on it.
async fn drive_vehicle(
    settings: Settings,
    out: mpsc::Sender<uplink::Message>,
    requests: mpsc::Receiver<vehicle::VehicleRequest>,
    state: watch::Sender<VehicleState>,
    stop: CancellationToken,
) {
    let opts = ClientOptions {
        p2: settings.p2,
        extended_ids: settings.extended_ids,
        ..ClientOptions::default()
    };
    let mut backoff = Duration::from_secs(1);
    let client: DiagClient = loop {
        match telltale_can::open(&settings.link, &opts).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(link = %settings.link_text, cause = %e, retry_in_s = backoff.as_secs(), "cannot open the diagnostic link");
                state.send_modify(|s| s.link_state = format!("error: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    };
    tracing::info!(link = %settings.link_text, "diagnostic link open");
    let config = VehicleConfig {
        link: settings.link_text.clone(),
        signals: settings.signals.clone(),
        dtc_period: settings.dtc_period,
        uds: settings.uds,
        max_requests_per_second: settings.max_requests_per_second,
        batch_max_samples: settings.batch_max_samples,
        batch_max_age: settings.batch_max_age,
        asleep_probe_period: settings.asleep_probe,
        asleep_after_silences: settings.asleep_after_silences,
    };
    vehicle::run(client, config, out, requests, state, stop).await;
}
