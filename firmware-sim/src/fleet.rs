//! Many simulated vehicles at once, for load tests: each vehicle is the base scenario with its
//! own VIN (serial number advanced, check digit recomputed), its own seed (so drives differ)
//! and, optionally, a staggered start so the fleet's drives and faults are not in lockstep.
//!
//! Each vehicle needs a bus of its own: the ECUs of two vehicles have the same CAN ids, so
//! they cannot share one. In one process that is one in-process bus per vehicle
//! (`fleet-0`, `fleet-1`...); across processes, one SocketCAN interface per vehicle (`vcan0`,
//! `vcan1`... created beforehand), each watched by its own agent.
//!
//! What this module does not do: open links (the caller hands in one [`CanBus`] per vehicle).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use telltale_can::CanBus;
use telltale_obd::vin::Vin;

use crate::scenario::Scenario;
use crate::serve::serve_can;
use crate::vehicle::Vehicle;

/// Vehicle number `index` of a fleet built from `base`.
pub fn fleet_scenario(base: &Scenario, index: u32) -> Scenario {
    let mut s = base.clone();
    s.seed = base.seed.wrapping_add(u64::from(index).wrapping_mul(7919));
    s.name = format!("{}#{index}", base.name);
    s.identity.vin = vin_with_serial(&base.identity.vin, index);
    s.drive.odometer_km = base.drive.odometer_km + f64::from(index % 1000) * 173.0;
    s
}

/// `vin` with its serial number (positions 12-17) advanced by `index` and a valid check digit.
/// Non-numeric serials keep their first characters and get the number in the digits.
pub fn vin_with_serial(vin: &Vin, index: u32) -> Vin {
    let text = vin.as_str();
    let (head, serial) = text.split_at(11.min(text.len()));
    let base: u32 = serial.parse().unwrap_or(0);
    let serial = format!("{:06}", (base + index) % 1_000_000);
    let candidate = format!("{head}{serial}");
    let Ok(parsed) = Vin::parse(&candidate) else {
        return vin.clone();
    };
    let check = parsed.check_digit();
    let fixed: String = candidate
        .chars()
        .enumerate()
        .map(|(i, c)| if i == 8 { check } else { c })
        .collect();
    Vin::parse(&fixed).unwrap_or(parsed)
}

/// Builds the fleet's vehicles. With `stagger`, vehicle `i` starts `i/n` of a drive in, so
/// drives (and fault timelines) are spread over the fleet.
pub fn build_fleet(base: &Scenario, n: u32, stagger: bool) -> Vec<Arc<Mutex<Vehicle>>> {
    (0..n)
        .map(|i| {
            let mut v = Vehicle::from_scenario(&fleet_scenario(base, i));
            if stagger && n > 1 {
                let vehicle_s = base.drive.cycle_s * f64::from(i) / f64::from(n);
                v.advance_to(Duration::from_secs_f64(vehicle_s / base.time_scale));
            }
            Arc::new(Mutex::new(v))
        })
        .collect()
}

/// Serves each vehicle on its bus until `shutdown` completes.
pub async fn serve_fleet(fleet: Vec<(Arc<Mutex<Vehicle>>, CanBus)>, shutdown: impl Future) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (vehicle, bus) in fleet {
        let mut stop = stop_rx.clone();
        tasks.spawn(serve_can(vehicle, bus, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_vins_are_distinct_and_valid() {
        let base = crate::load_scenario("healthy").expect("scenario");
        let vins: Vec<Vin> = (0..50)
            .map(|i| fleet_scenario(&base, i).identity.vin)
            .collect();
        assert_eq!(vins[0], base.identity.vin);
        for v in &vins {
            assert!(v.check_digit_valid(), "{v}");
        }
        let mut unique = vins.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), vins.len());
    }
}
