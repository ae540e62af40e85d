//! Serving a vehicle on a CAN bus: one ISO-TP endpoint per ECU (physical request id and the
//! functional id in, the ECU's response id out), plus a clock task that moves the vehicle
//! along with tokio time (so `tokio::time::pause` makes whole scenarios instant in tests).
//!
//! Each ECU task owns its socket: it receives a request, asks the vehicle for the replies
//! (after bringing the vehicle to the request's arrival time), then sends each reply at its
//! delay after the arrival. Requests that arrive meanwhile wait in the socket's bounded
//! subscription, as they would in a real ECU's receive buffer.
//!
//! What this module does not do: open links (the caller hands in a [`CanBus`]), or ELM327.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use telltale_can::CanBus;
use telltale_can::bus::BusError;
use telltale_can::isotp::{IsoTpAddresses, IsoTpSocket, IsoTpTransferError};
use telltale_obd::isotp::Config;
use tokio::time::Instant;

use crate::vehicle::{EcuInfo, Vehicle};

/// How often the clock task advances the vehicle.
pub const CLOCK_TICK: Duration = Duration::from_millis(50);

/// The ISO-TP parameters the simulated ECUs use: ISO 15765-4 defaults (padding 0xCC, block
/// size 0, STmin 0, N_Bs/N_Cr 1000 ms).
pub fn ecu_isotp_config() -> Config {
    Config::default()
}

/// Locks the shared vehicle; a panic elsewhere while holding it leaves a usable vehicle, so a
/// poisoned lock is taken over rather than propagated.
pub fn lock(vehicle: &Mutex<Vehicle>) -> MutexGuard<'_, Vehicle> {
    vehicle
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A clock for a vehicle: maps tokio time to the vehicle's serving clock, continuing from
/// wherever the vehicle was when the clock was made.
#[derive(Debug, Clone, Copy)]
pub struct VehicleClock {
    started: Instant,
    base: Duration,
}

impl VehicleClock {
    pub fn new(vehicle: &Mutex<Vehicle>) -> VehicleClock {
        VehicleClock {
            started: Instant::now(),
            base: lock(vehicle).now(),
        }
    }

    /// The serving-clock time of tokio instant `at`.
    pub fn at(&self, at: Instant) -> Duration {
        self.base + at.saturating_duration_since(self.started)
    }

    pub fn now(&self) -> Duration {
        self.at(Instant::now())
    }
}

/// Serves `vehicle` on `bus` until `shutdown` completes: one ISO-TP endpoint per ECU and a
/// clock task. Returns when every task has stopped (at shutdown, or if the bus closes).
pub async fn serve_can(vehicle: Arc<Mutex<Vehicle>>, bus: CanBus, shutdown: impl Future) {
    let clock = VehicleClock::new(&vehicle);
    let ecus: Vec<EcuInfo> = lock(&vehicle).ecus().to_vec();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    for (index, info) in ecus.into_iter().enumerate() {
        let socket = IsoTpSocket::new(
            &bus,
            IsoTpAddresses {
                tx: info.response_id,
                rx: info.request_id,
                functional_rx: Some(info.functional_id),
            },
            ecu_isotp_config(),
        );
        let vehicle = vehicle.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = serve_ecu(vehicle, index, info, socket, clock) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
    {
        let vehicle = vehicle.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(CLOCK_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => lock(&vehicle).advance_to(clock.now()),
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        });
    }

    tokio::select! {
        _ = shutdown => {}
        // All ECU tasks ended on their own (bus closed): nothing left to serve.
        () = wait_for_ecus(&mut tasks) => {}
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Waits until all tasks but the clock have finished.
async fn wait_for_ecus(tasks: &mut tokio::task::JoinSet<()>) {
    while tasks.len() > 1 {
        if tasks.join_next().await.is_none() {
            break;
        }
    }
    std::future::pending::<()>().await;
}

async fn serve_ecu(
    vehicle: Arc<Mutex<Vehicle>>,
    index: usize,
    info: EcuInfo,
    mut socket: IsoTpSocket,
    clock: VehicleClock,
) {
    loop {
        let request = match socket.recv().await {
            Ok(r) => r,
            Err(IsoTpTransferError::Bus {
                error: BusError::Closed,
                ..
            }) => {
                tracing::info!(ecu = %info.name, "bus closed; ECU stops");
                return;
            }
            Err(err) => {
                tracing::debug!(ecu = %info.name, cause = %err, "request lost");
                continue;
            }
        };
        let arrived = Instant::now();
        let replies = {
            let mut v = lock(&vehicle);
            v.advance_to(clock.at(arrived));
            v.handle(index, &request.payload, request.functional)
        };
        tracing::trace!(
            ecu = %info.name,
            request = ?request.payload,
            functional = request.functional,
            replies = replies.len(),
            "request"
        );
        for reply in replies {
            tokio::time::sleep_until(arrived + reply.delay).await;
            match socket.send(&reply.payload).await {
                Ok(()) => {}
                Err(IsoTpTransferError::Bus {
                    error: BusError::Closed,
                    ..
                }) => return,
                Err(err) => {
                    tracing::debug!(ecu = %info.name, cause = %err, "reply not delivered");
                    break;
                }
            }
        }
    }
}
