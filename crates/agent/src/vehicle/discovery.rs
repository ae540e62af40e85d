//! Start-up discovery: who is on the bus and what each ECU offers.
//!
//! A functional `01 00` finds the ECUs (and their first supported-PID bitmap); each ECU's
//! further bitmaps are walked physically; the VIN comes from a functional `09 02`; each ECU's
//! supported infotypes (`09 00`) decide whether to ask for calibration ids (`09 04`), CVNs
//! (`09 06`) and its name (`09 0A`). The result is compared with the previous one so that an
//! info message goes out only when something changed: another car (the dongle moved), an ECU
//! that appeared or vanished, a reflash (new calibration id).

use telltale_can::client::{DiagError, Target};
use telltale_obd::EcuId;
use telltale_obd::pid::SupportedPids;
use telltale_obd::service::{Request, Response, VehicleInfo};
use telltale_wire::v1;

use super::SignalSpec;
use super::link::Link;

/// One ECU as discovery found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredEcu {
    /// The id it answers on (`7E8`), or its source address on a non-CAN bus (`10`).
    pub ecu: EcuId,
    /// How to ask it alone; `None` for a CAN response id that is not a standard OBD one (it
    /// can then only be asked functionally).
    pub target: Option<Target>,
    /// Mode 01 PIDs it supports, bitmap PIDs included.
    pub supported: SupportedPids,
    /// `09 0A`, empty when not supported.
    pub name: String,
    pub calibration_ids: Vec<String>,
    pub cvns: Vec<String>,
}

impl DiscoveredEcu {
    /// Whether it answers Mode 01 `pid` (and can be asked physically).
    pub fn samples(&self, pid: u8) -> bool {
        self.target.is_some() && self.supported.contains(pid)
    }
}

/// What discovery found: the vehicle behind the link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// `None` when no ECU gave one (older cars, or not on this ECU's addressing).
    pub vin: Option<String>,
    /// In id order.
    pub ecus: Vec<DiscoveredEcu>,
    /// The diagnostic bus the ECUs were found on (`ISO 9141-2`, `ISO 15765-4 CAN 11-bit`).
    pub bus: String,
}

impl Discovery {
    /// The first ECU (lowest id) that answers `pid`: where a signal is sampled. One source
    /// per signal, so a speed both the engine and the gearbox report is not sent twice.
    pub fn source_of(&self, pid: u8) -> Option<&DiscoveredEcu> {
        self.ecus.iter().find(|e| e.samples(pid))
    }

    pub fn ecu(&self, id: EcuId) -> Option<&DiscoveredEcu> {
        self.ecus.iter().find(|e| e.ecu == id)
    }

    /// The info message (header left for the spool writer to stamp).
    pub fn info(&self, link: &str, schedule: &[SignalSpec]) -> v1::VehicleInfo {
        v1::VehicleInfo {
            header: None,
            vin: self.vin.clone().unwrap_or_default(),
            ecus: self
                .ecus
                .iter()
                .map(|e| v1::EcuInfo {
                    can_id: e.ecu.raw(),
                    name: e.name.clone(),
                    supported_pids: e.supported.iter().map(u32::from).collect(),
                    calibration_ids: e.calibration_ids.clone(),
                    cvns: e.cvns.clone(),
                })
                .collect(),
            link: link.to_owned(),
            bus: self.bus.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            schedule: schedule
                .iter()
                .map(|s| v1::SignalPeriod {
                    signal: s.name.clone(),
                    pid: u32::from(s.pid),
                    period_ms: u32::try_from(s.period.as_millis()).unwrap_or(u32::MAX),
                })
                .collect(),
        }
    }
}

/// Runs discovery. Fails only when the functional `01 00` gets no usable answer (the car is
/// asleep or the link is wrong); a later question an ECU does not answer leaves its field
/// empty.
pub(crate) async fn discover(link: &mut Link) -> Result<Discovery, DiagError> {
    let answers = link
        .request(
            Target::Functional,
            &Request::CurrentData { pids: vec![0x00] },
        )
        .await?;
    let mut ecus = Vec::new();
    for a in answers {
        let mut supported = SupportedPids::new();
        if !add_bitmaps(&mut supported, &a.response) {
            continue;
        }
        ecus.push(DiscoveredEcu {
            ecu: a.ecu,
            target: Target::for_ecu(a.ecu),
            supported,
            name: String::new(),
            calibration_ids: Vec::new(),
            cvns: Vec::new(),
        });
    }
    if ecus.is_empty() {
        return Err(DiagError::NotSupported {
            what: "service 01 PID 00 (supported PIDs)",
        });
    }
    for e in &mut ecus {
        walk_bitmaps(link, e).await;
    }
    let vin = read_vin(link).await;
    for e in &mut ecus {
        read_identity(link, e).await;
    }
    ecus.sort_by_key(|e| e.ecu);
    Ok(Discovery {
        vin,
        ecus,
        bus: link.bus().to_string(),
    })
}

/// Follows an ECU's chain of supported-PID bitmaps (`01 20`, `01 40`, ...).
async fn walk_bitmaps(link: &mut Link, e: &mut DiscoveredEcu) {
    let Some(target) = e.target else {
        return;
    };
    let mut base = 0x00u8;
    while let Some(next) = e.supported.next_bitmap_pid(base) {
        let req = Request::CurrentData { pids: vec![next] };
        match link.request(target, &req).await {
            Ok(answers) => {
                // Not `any`: every answer's bitmaps are added, not just the first.
                let added = answers
                    .iter()
                    .filter(|a| add_bitmaps(&mut e.supported, &a.response))
                    .count()
                    > 0;
                if !added {
                    tracing::warn!(ecu = %e.ecu, pid = next, "ECU flagged a bitmap it does not answer");
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(ecu = %e.ecu, pid = next, cause = %err, "supported-PID bitmap unreadable");
                break;
            }
        }
        base = next;
    }
}

async fn read_vin(link: &mut Link) -> Option<String> {
    match link
        .request(Target::Functional, &Request::VehicleInfo { infotype: 0x02 })
        .await
    {
        Ok(answers) => answers.into_iter().find_map(|a| match a.response {
            Response::VehicleInfo(VehicleInfo::Vin(vin)) => Some(vin.as_str().to_owned()),
            _ => None,
        }),
        Err(err) => {
            tracing::warn!(cause = %err, "VIN unreadable");
            None
        }
    }
}

/// Name, calibration ids and CVNs, each only when `09 00` says the ECU has it.
async fn read_identity(link: &mut Link, e: &mut DiscoveredEcu) {
    let Some(target) = e.target else {
        return;
    };
    let infotypes = match link
        .request(target, &Request::VehicleInfo { infotype: 0x00 })
        .await
    {
        Ok(answers) => answers
            .into_iter()
            .find_map(|a| match a.response {
                Response::VehicleInfo(VehicleInfo::Supported(list)) => Some(list),
                _ => None,
            })
            .unwrap_or_default(),
        Err(err) => {
            tracing::debug!(ecu = %e.ecu, cause = %err, "no supported infotypes (09 00)");
            Vec::new()
        }
    };
    for infotype in [0x04u8, 0x06, 0x0A] {
        if !infotypes.contains(&infotype) {
            continue;
        }
        let answers = match link
            .request(target, &Request::VehicleInfo { infotype })
            .await
        {
            Ok(a) => a,
            Err(err) => {
                tracing::warn!(ecu = %e.ecu, infotype, cause = %err, "vehicle information unreadable");
                continue;
            }
        };
        for a in answers {
            match a.response {
                Response::VehicleInfo(VehicleInfo::CalibrationIds(ids)) => e.calibration_ids = ids,
                Response::VehicleInfo(VehicleInfo::Cvns(cvns)) => e.cvns = cvns,
                Response::VehicleInfo(VehicleInfo::EcuName(name)) => e.name = name,
                Response::Negative(n) => {
                    tracing::debug!(ecu = %e.ecu, infotype, answer = %n, "refused")
                }
                _ => {}
            }
        }
    }
}

/// Adds every supported-PID bitmap in a service 01 answer; true when there was one.
fn add_bitmaps(supported: &mut SupportedPids, response: &Response) -> bool {
    let Response::CurrentData(data) = response else {
        return false;
    };
    let mut any = false;
    for d in data {
        if let Ok(bitmap) = <[u8; 4]>::try_from(d.data.as_slice())
            && supported.add_bitmap(d.pid, bitmap).is_ok()
        {
            any = true;
        }
    }
    any
}
