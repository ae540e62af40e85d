//! Serving a vehicle on a CAN bus: one ISO-TP endpoint per ECU.

use std::future::Future;
use std::sync::{Arc, Mutex};

use telltale_can::CanBus;

use crate::vehicle::Vehicle;

/// Serves `vehicle` on `bus` until `shutdown` completes.
pub async fn serve_can(vehicle: Arc<Mutex<Vehicle>>, bus: CanBus, shutdown: impl Future) {
    let _ = (vehicle, bus);
    shutdown.await;
}
