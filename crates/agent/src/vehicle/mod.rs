//! The vehicle side: the one task that talks to the car.
//!
//! It owns the [`DiagClient`] so that every request, scheduled or asked for by a command, goes
//! through one rate limit and one view of whether the car is awake:
//!
//! - [`discovery`]: VIN (09 02), responding ECUs (functional 01 00 and the bitmaps), supported
//!   PIDs, calibration ids; an info message at start and whenever that changes.
//! - [`sampler`]: per-signal periods, PIDs of one ECU batched six to a request, a ceiling on
//!   requests per second, back-off for slow or refusing ECUs, ignition-off detection with slow
//!   probing; samples batched into telemetry messages by count and by age.
//! - [`dtc_monitor`]: 03, 07, 0A (and UDS 0x19 where an ECU supports it) on a period; on any
//!   change a DTC report at once, with the freeze frame and context read at that moment.
//! - [`signals`]: signal names (COVESA VSS style) for PIDs, and the default schedule.
//!
//! Output goes to the spool writer as [`Message`]s; commands come in as [`VehicleRequest`]s.
//! Two private modules carry the machinery: `link` (every request passes one token bucket
//! and one count of consecutive silences) and `task` (the discover / awake / asleep state
//! machine and the command handlers).
//!
//! Decisions worth knowing:
//! - A ReadDtcs command's report (reason COMMAND) travels only in the command result; it
//!   becomes the monitor's baseline, so the same change is not sent again as a DTC message.
//!   A ClearDtcs answers the report read after the clear *and* sends it as a DTC message
//!   (reason CHANGED), as the monitor would have.
//! - One addressing width per link: with 29-bit ids only 29-bit ECUs answer (on the
//!   simulator's hybrid car, the hybrid controller alone, and no VIN).
//! - Each signal is sampled from one ECU, the lowest id that supports its PID; a ReadPids
//!   command asks every ECU that supports each PID.

pub mod discovery;
pub mod dtc_monitor;
mod link;
pub mod sampler;
pub mod signals;
mod task;

use std::time::Duration;

use serde::Serialize;
use telltale_can::client::DiagClient;
use telltale_wire::v1;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::uplink::Message;

/// One signal to sample: a Mode 01 PID under a name, every `period`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalSpec {
    /// VSS-style name (`Vehicle.Speed`) or telltale's own key when VSS has none.
    pub name: String,
    pub pid: u8,
    pub period: Duration,
}

/// What the vehicle task is told at start (from [`crate::config`]).
#[derive(Debug, Clone)]
pub struct VehicleConfig {
    /// The link as configured (`socketcan:can0`), reported in the info message.
    pub link: String,
    pub signals: Vec<SignalSpec>,
    /// How often 03/07/0A are polled while the car is awake.
    pub dtc_period: Duration,
    /// Also read UDS 0x19 02 from ECUs that answer it.
    pub uds: bool,
    /// Ceiling on diagnostic requests per second, whatever the schedule asks.
    pub max_requests_per_second: f64,
    /// A telemetry message is sent when it holds this many samples...
    pub batch_max_samples: usize,
    /// ...or when its oldest sample is this old.
    pub batch_max_age: Duration,
    /// While the car sleeps (nothing answers), probe this often.
    pub asleep_probe_period: Duration,
    /// This many consecutive unanswered requests mean the car is asleep.
    pub asleep_after_silences: u32,
}

/// Why a command's request to the vehicle failed; `code` goes into the command result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub code: v1::CommandError,
    pub message: String,
}

/// What a command asks of the vehicle. Each carries where to send the answer.
#[derive(Debug)]
pub enum VehicleRequest {
    /// Read every DTC list now; the report has reason COMMAND.
    ReadDtcs {
        reply: oneshot::Sender<Result<v1::DtcReport, RequestError>>,
    },
    /// Mode 02 freeze frame `frame` from the ECUs that hold one.
    ReadFreezeFrame {
        frame: u8,
        reply: oneshot::Sender<Result<v1::FreezeFrame, RequestError>>,
    },
    /// Mode 01 PIDs, once.
    ReadPids {
        pids: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<v1::Sample>, RequestError>>,
    },
    /// Replace the period of the named signals (period 0 stops one; unknown names with a
    /// valid PID are added).
    SetSchedule {
        signals: Vec<v1::SignalPeriod>,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    /// Service 04, only after reading vehicle speed (PID 0D) as 0 just before; answers the
    /// DTC report read after the clear.
    ClearDtcs {
        reply: oneshot::Sender<Result<v1::DtcReport, RequestError>>,
    },
}

/// What the vehicle task shows the status endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VehicleState {
    /// False while the ECUs do not answer (ignition off, unplugged).
    pub awake: bool,
    pub vin: Option<String>,
    /// The ECUs found: response ids on CAN (`7E8`), source addresses on the older buses (`10`).
    pub ecus: Vec<String>,
    /// The vehicle's diagnostic bus (`ISO 9141-2`, `ISO 15765-4 CAN 11-bit`).
    pub bus: Option<String>,
    /// `up`, `asleep` or the last link error in words.
    pub link_state: String,
    pub requests_sent: u64,
    pub requests_unanswered: u64,
    /// Answers that could not be used, by kind (`damaged_pid`, `dtc_count`,
    /// `adapter_buffer_full`, ...; see `telltale_can::client::Trouble`).
    pub unusable_answers: std::collections::BTreeMap<String, u64>,
    pub samples_made: u64,
    pub dtc_reports_made: u64,
}

/// Runs the vehicle side until `cancel`: discovery, then sampling and DTC monitoring, serving
/// `requests` in between. Messages go to `out` (bounded: when the spool writer lags, sampling
/// waits rather than buffering).
pub async fn run(
    client: DiagClient,
    config: VehicleConfig,
    out: mpsc::Sender<Message>,
    requests: mpsc::Receiver<VehicleRequest>,
    state: watch::Sender<VehicleState>,
    cancel: CancellationToken,
) {
    let link = link::Link::new(client, config.max_requests_per_second, state);
    let mut task = task::Task::new(link, config, out);
    let mut requests = requests;
    let mut requests_open = true;
    loop {
        let wake = task.next_wake();
        // Work and commands are awaited inside a select on `cancel`: a request in flight or a
        // send blocked on a full spool never holds up shutdown.
        let done = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            req = requests.recv(), if requests_open => match req {
                Some(req) => tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    r = task.handle(req) => r,
                },
                None => {
                    requests_open = false;
                    Ok(())
                }
            },
            () = tokio::time::sleep_until(wake) => tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                r = task.step() => r,
            },
        };
        if let Err(e) = done {
            tracing::warn!(cause = %e, "vehicle task stops");
            return;
        }
    }
    // The partial batch is not lost on shutdown; the spool writer drains its channel before
    // it stops, but a writer that is gone (or stuck) does not hold the vehicle task forever.
    match tokio::time::timeout(FLUSH_TIMEOUT, task.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(cause = %e, "partial telemetry batch lost at shutdown"),
        Err(_) => tracing::warn!(
            "partial telemetry batch lost at shutdown: the spool writer did not take it"
        ),
    }
}

/// How long the last telemetry batch may wait for room in the output channel at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// The device clock, UTC milliseconds since the Unix epoch (0 if the clock is before 1970).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
