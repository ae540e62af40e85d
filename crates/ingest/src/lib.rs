//! # telltale-ingest: from the fleet's MQTT traffic to the telemetry store
//!
//! Subscribes to every vehicle's uplink topics (a shared subscription, `$share/<group>/...`, so
//! several instances split the fleet; a plain one when the broker has none), decodes and
//! validates each message, writes batches to the store and acknowledges each QoS 1 message to
//! the broker only after the batch holding it is committed. A crash at any point loses
//! nothing; a redelivery changes nothing (the store is idempotent on the message header).
//!
//! Beside the pipeline: the lead sender ([`leads`]) delivers the leads the store writes to its
//! outbox to the CRM over gRPC, and a maintenance task creates time partitions ahead and drops
//! expired ones.
//!
//! Modules: [`config`] (flags, environment, TOML), [`validate`] (bytes to envelopes or dead
//! letters, pure), [`batcher`] (the batch and acknowledgement state machine, pure), [`mqtt`]
//! (the session and subscriptions), [`pipeline`] (the tasks), [`leads`] (outbox to CRM),
//! [`metrics`] and [`http`] (the Prometheus endpoint).

pub mod batcher;
pub mod config;
pub mod http;
pub mod leads;
pub mod metrics;
pub mod mqtt;
pub mod pipeline;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

use telltale_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::metrics::Metrics;

/// Why the ingest could not start. The cause is the error's `source` (printed by the binary's
/// error chain), so it is not repeated in the message.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store")]
    Connect(#[source] StoreError),
    #[error("cannot migrate the store")]
    Migrate(#[source] StoreError),
    #[error("cannot listen for metrics on {addr}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Opens the store named in the settings (does not migrate).
pub async fn open_store(settings: &Settings) -> Result<Store, StartError> {
    Store::connect(&settings.database_url, settings.store.clone())
        .await
        .map_err(StartError::Connect)
}

/// Runs the ingest: opens (and, if configured, migrates) the store, serves metrics, and
/// ingests until `shutdown` completes; then finishes the batch in hand and disconnects.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartError> {
    let store = open_store(&settings).await?;
    if settings.migrate_on_start {
        store.migrate().await.map_err(StartError::Migrate)?;
    }
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let server = match settings.metrics_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Metrics { addr, source })?;
            tracing::info!(%addr, "metrics on /metrics, health on /healthz");
            Some(tokio::spawn(http::serve(
                listener,
                metrics.clone(),
                stop.clone(),
            )))
        }
        None => None,
    };
    let maintenance = tokio::spawn(maintain(
        store.clone(),
        settings.maintenance_interval,
        metrics.clone(),
        stop.clone(),
    ));
    // The writer wakes the sender when a batch it committed wrote leads, so a lead leaves at
    // once; the sender's poll is the fallback (another instance's leads, retries).
    let leads_due = Arc::new(tokio::sync::Notify::new());
    let sender = match &settings.crm {
        Some(crm) => Some(tokio::spawn(leads::run(
            store.clone(),
            crm.clone(),
            metrics.clone(),
            leads_due.clone(),
            stop.clone(),
        ))),
        None => {
            tracing::info!("no leads.crm_url: leads are kept in the outbox table");
            None
        }
    };
    let pipeline_stop = CancellationToken::new();
    let pipeline = pipeline::run(&settings, store, metrics, leads_due, pipeline_stop.clone());
    tokio::pin!(pipeline);
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut pipeline => {}
        () = &mut shutdown => {
            tracing::info!("shutting down: finishing the batch in hand");
            pipeline_stop.cancel();
            pipeline.await;
        }
    }
    stop.cancel();
    if let Some(s) = server {
        let _ = s.await;
    }
    if let Some(s) = sender {
        let _ = s.await;
    }
    let _ = maintenance.await;
    Ok(())
}

/// Runs the store's maintenance (partitions ahead, retention) now and every `every`.
async fn maintain(
    store: Store,
    every: std::time::Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = store.maintain(chrono::Utc::now()).await {
            metrics
                .maintenance_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(cause = %e, "store maintenance failed; retried at the next interval");
        }
    }
}
