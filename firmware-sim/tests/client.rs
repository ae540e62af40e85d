//! The diagnostic client (`telltale_can::DiagClient`) against the simulator on the in-process
//! bus, for every service and every shipped scenario: what an agent or `telltale scan` will see.
//! Tokio time is paused, so a scenario's drive cycles take no wall time; the expected times
//! are the scenario timelines in `firmware-sim/README.md`, in vehicle seconds.

use std::sync::{Arc, Mutex};

use firmware_sim::serve::{lock, serve_can};
use firmware_sim::{Vehicle, load_scenario};
use telltale_can::client::DtcKind;
use telltale_can::client::can::CanClient;
use telltale_can::virtual_bus::VirtualBus;
use telltale_can::{ClientOptions, DiagClient, Target};
use telltale_obd::CanId;
use telltale_obd::EcuId;
use telltale_obd::isotp::addressing::Channel;
use telltale_obd::pid::Value;
use telltale_obd::uds::DtcStatus;
use tokio::time::Instant;

struct Rig {
    client: DiagClient,
    vehicle: Arc<Mutex<Vehicle>>,
    start: Instant,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Rig {
    fn start(scenario: &str, extended_ids: bool) -> Rig {
        let bus = VirtualBus::new(scenario);
        let scenario = load_scenario(scenario).expect("scenario");
        let vehicle = Arc::new(Mutex::new(Vehicle::from_scenario(&scenario)));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_can(vehicle.clone(), bus.node(), async move {
            let _ = stopped.await;
        }));
        let opts = ClientOptions {
            extended_ids,
            ..ClientOptions::default()
        };
        let client = DiagClient::Can(CanClient::new(bus.node(), opts));
        Rig {
            client,
            vehicle,
            start: Instant::now(),
            _stop: stop,
        }
    }

    /// Lets the scenario play until `vehicle_s` vehicle seconds after start.
    async fn at(&self, vehicle_s: f64) {
        let wait = lock(&self.vehicle).serving_time_of(vehicle_s);
        tokio::time::sleep_until(self.start + wait).await;
    }

    async fn codes(&self, kind: DtcKind, ecu: CanId) -> Vec<String> {
        let all = self.client.read_dtcs(kind).await.expect("DTCs read");
        all.get(&EcuId::Can(ecu))
            .map(|c| c.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    async fn monitor(&self, ecu: Channel, key: &str) -> Value {
        let pids = self
            .client
            .read_pids(Target::Physical(ecu), &[0x01])
            .await
            .expect("PID 01");
        pids.values()
            .flatten()
            .flat_map(|p| &p.readings)
            .find(|r| r.key == key)
            .map(|r| r.value.clone())
            .unwrap_or_else(|| panic!("no {key} in {pids:?}"))
    }

    async fn freeze_trigger(&self, ecu: Channel) -> Option<String> {
        let frames = self
            .client
            .read_freeze_frame(Target::Physical(ecu), 0, &[0x02, 0x05, 0x0C])
            .await
            .expect("freeze frame read");
        frames
            .values()
            .flatten()
            .find_map(|p| p.freeze_frame_trigger())
            .map(|d| d.to_string())
    }
}

fn channel(response: CanId) -> Channel {
    Channel::for_response(response).expect("an OBD response id")
}

const ECM: CanId = CanId::Standard(0x7E8);
const TCM: CanId = CanId::Standard(0x7E9);
const HPCM: CanId = CanId::Extended(0x18DA_F117);

/// A fault's life through the client: pending, then stored with the MIL, a freeze frame and
/// a permanent code, visible through UDS too; a clear removes all but the permanent code and
/// resets readiness.
async fn fault_lifecycle(scenario: &str, ecu: CanId, code: &str, pending_s: f64, confirmed_s: f64) {
    let rig = Rig::start(scenario, ecu.is_extended());
    let ch = channel(ecu);

    rig.at(pending_s + 20.0).await;
    assert!(
        rig.codes(DtcKind::Pending, ecu)
            .await
            .contains(&code.to_owned()),
        "{scenario}: {code} pending"
    );
    assert!(
        !rig.codes(DtcKind::Stored, ecu)
            .await
            .contains(&code.to_owned()),
        "{scenario}: {code} not yet stored"
    );

    rig.at(confirmed_s + 20.0).await;
    assert!(
        rig.codes(DtcKind::Stored, ecu)
            .await
            .contains(&code.to_owned()),
        "{scenario}: {code} stored"
    );
    assert!(
        rig.codes(DtcKind::Permanent, ecu)
            .await
            .contains(&code.to_owned()),
        "{scenario}: {code} permanent"
    );
    assert_eq!(
        rig.monitor(ch, "mil_on").await,
        Value::Bool(true),
        "{scenario}: MIL on"
    );
    assert_eq!(
        rig.freeze_trigger(ch).await.as_deref(),
        Some(code),
        "{scenario}: freeze frame"
    );
    let uds = rig
        .client
        .read_uds_dtcs(ch, DtcStatus(0xFF))
        .await
        .expect("UDS 19 02");
    let record = uds
        .iter()
        .find(|r| r.dtc.code().to_string() == code)
        .unwrap_or_else(|| panic!("{scenario}: {code} not in UDS answer {uds:?}"));
    assert!(
        record.status.confirmed_dtc() && record.status.warning_indicator_requested(),
        "{record:?}"
    );

    let cleared = rig
        .client
        .clear_dtcs(Target::Physical(ch))
        .await
        .expect("clear");
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert!(
        rig.codes(DtcKind::Stored, ecu).await.is_empty(),
        "{scenario}: stored after clear"
    );
    assert_eq!(
        rig.freeze_trigger(ch).await,
        None,
        "{scenario}: freeze frame after clear"
    );
    assert!(
        rig.codes(DtcKind::Permanent, ecu)
            .await
            .contains(&code.to_owned()),
        "{scenario}: permanent survives a clear"
    );
    if ecu == ECM {
        assert_eq!(
            rig.monitor(ch, "catalyst_complete").await,
            Value::Bool(false),
            "readiness reset"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn catalyst() {
    fault_lifecycle("catalyst", ECM, "P0420", 288.0, 768.0).await;
}

#[tokio::test(start_paused = true)]
async fn thermostat() {
    fault_lifecycle("thermostat", ECM, "P0128", 336.0, 816.0).await;
}

#[tokio::test(start_paused = true)]
async fn evap_leak() {
    fault_lifecycle("evap-leak", ECM, "P0455", 467.0, 947.0).await;
}

#[tokio::test(start_paused = true)]
async fn misfire() {
    fault_lifecycle("misfire", ECM, "P0301", 132.0, 500.0).await;
}

#[tokio::test(start_paused = true)]
async fn lost_communication() {
    fault_lifecycle("lost-comm", TCM, "U0100", 38.0, 488.0).await;
}

#[tokio::test(start_paused = true)]
async fn hybrid_battery_on_29_bit_ids() {
    fault_lifecycle("hybrid", HPCM, "P0A80", 240.0, 720.0).await;
}

#[tokio::test(start_paused = true)]
async fn healthy_car_discovery_vin_and_live_data() {
    let rig = Rig::start("healthy", false);
    rig.at(400.0).await;
    let ecus = rig.client.discover().await.expect("discovery");
    let ids: Vec<CanId> = ecus.iter().filter_map(|e| e.ecu.can_id()).collect();
    assert_eq!(ids, [ECM, TCM]);
    assert!(ecus[0].supported_pids.contains(0x0C) && ecus[0].supported_pids.contains(0xA6));
    let vin = rig.client.read_vin().await.expect("VIN");
    assert!(vin.check_digit_valid(), "{vin}");
    // Six PIDs in one request, and more than six split over several.
    let pids = [0x04, 0x05, 0x0C, 0x0D, 0x10, 0x11, 0x0F, 0x42];
    let values = rig
        .client
        .read_pids(Target::Physical(channel(ECM)), &pids)
        .await
        .expect("PIDs");
    let got: Vec<u8> = values[&EcuId::Can(ECM)].iter().map(|p| p.pid).collect();
    assert_eq!(got, pids);
    for kind in [DtcKind::Stored, DtcKind::Pending, DtcKind::Permanent] {
        assert!(rig.codes(kind, ECM).await.is_empty(), "{kind:?}");
    }
    rig.at(480.0 + 30.0).await;
    assert_eq!(
        rig.monitor(channel(ECM), "catalyst_complete").await,
        Value::Bool(true)
    );
}
