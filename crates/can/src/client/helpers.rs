//! Everyday questions on top of [`DiagClient::request`]: VIN, PIDs (batched six per request),
//! DTCs, freeze frames, clearing, ECU discovery (walking the supported-PID bitmaps) and UDS
//! DTCs. Each returns typed values per ECU; the raw responses stay available through
//! `request`.

use std::collections::BTreeMap;

use serde::Serialize;
use telltale_obd::EcuId;
use telltale_obd::dtc::Dtc;
use telltale_obd::isotp::addressing::Channel;
use telltale_obd::pid::SupportedPids;
use telltale_obd::service::{MAX_FREEZE_FRAME_PAIRS, PidData, Request, Response, VehicleInfo};
use telltale_obd::uds::{self, DtcRecord, DtcStatus, ReadDtcResponse};
use telltale_obd::vin::Vin;

use super::{DiagClient, DiagError, EcuResponse, Target};

/// Which DTC list to read (J1979 services 03, 07, 0A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DtcKind {
    /// Service 03: confirmed (stored) codes, the ones that light the MIL.
    Stored,
    /// Service 07: pending codes, seen in this or the last drive cycle.
    Pending,
    /// Service 0A: permanent codes, which a clear does not remove.
    Permanent,
}

impl DtcKind {
    pub fn request(self) -> Request {
        match self {
            DtcKind::Stored => Request::StoredDtcs,
            DtcKind::Pending => Request::PendingDtcs,
            DtcKind::Permanent => Request::PermanentDtcs,
        }
    }
}

/// An ECU that answered discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EcuInfo {
    /// The id it answers on, or its source address on a non-CAN bus.
    pub ecu: EcuId,
    /// How to ask it alone ([`Target::for_ecu`]); `None` for a CAN response id that is not a
    /// standard OBD one.
    #[serde(skip)]
    pub target: Option<Target>,
    /// The Mode 01 PIDs it supports (bitmap PIDs included).
    pub supported_pids: SupportedPids,
}

impl DiagClient {
    /// The vehicle's VIN (service 09 infotype 02), from the first ECU that gives one.
    pub async fn read_vin(&self) -> Result<Vin, DiagError> {
        let answers = self
            .request(Target::Functional, &Request::VehicleInfo { infotype: 0x02 })
            .await?;
        answers
            .into_iter()
            .find_map(|a| match a.response {
                Response::VehicleInfo(VehicleInfo::Vin(vin)) => Some(vin),
                _ => None,
            })
            .ok_or(DiagError::NotSupported {
                what: "the VIN (service 09 infotype 02)",
            })
    }

    /// Current values of `pids` (service 01), asked as many at a time as the link allows
    /// ([`DiagClient::max_pids_per_request`]), per ECU. PIDs an ECU does
    /// not support are simply missing from its list (ECUs stay silent or answer NRC 0x12/0x31
    /// for those). Fails only when no batch got any answer, or on a transport or decoding
    /// failure.
    pub async fn read_pids(
        &self,
        target: Target,
        pids: &[u8],
    ) -> Result<BTreeMap<EcuId, Vec<PidData>>, DiagError> {
        let mut out: BTreeMap<EcuId, Vec<PidData>> = BTreeMap::new();
        let mut silence = None;
        for chunk in pids.chunks(self.max_pids_per_request()) {
            let req =
                Request::current_data(chunk).map_err(|e| DiagError::BadRequest(e.to_string()))?;
            match self.request(target, &req).await {
                Ok(answers) => {
                    for a in answers {
                        if let Response::CurrentData(data) = a.response {
                            out.entry(a.ecu).or_default().extend(data);
                        } else {
                            out.entry(a.ecu).or_default();
                        }
                    }
                }
                Err(e) if e.is_silence() => silence = Some(e),
                Err(e) => return Err(e),
            }
        }
        match silence {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Trouble codes of one kind, per answering ECU (ECUs with none have an empty list).
    pub async fn read_dtcs(&self, kind: DtcKind) -> Result<BTreeMap<EcuId, Vec<Dtc>>, DiagError> {
        let answers = self.request(Target::Functional, &kind.request()).await?;
        let mut out = BTreeMap::new();
        for a in answers {
            if let Response::Dtcs { dtcs, .. } = a.response {
                out.insert(a.ecu, dtcs);
            }
        }
        Ok(out)
    }

    /// Freeze frame `frame` (service 02) for `pids`, three per request, per ECU. Ask PID 02
    /// to learn which DTC stored the frame ([`PidData::freeze_frame_trigger`]).
    pub async fn read_freeze_frame(
        &self,
        target: Target,
        frame: u8,
        pids: &[u8],
    ) -> Result<BTreeMap<EcuId, Vec<PidData>>, DiagError> {
        let mut out: BTreeMap<EcuId, Vec<PidData>> = BTreeMap::new();
        let mut silence = None;
        for chunk in pids.chunks(MAX_FREEZE_FRAME_PAIRS) {
            let req = Request::FreezeFrame {
                pids: chunk.iter().map(|&p| (p, frame)).collect(),
            };
            match self.request(target, &req).await {
                Ok(answers) => {
                    for a in answers {
                        if let Response::FreezeFrame(data) = a.response {
                            out.entry(a.ecu).or_default().extend(data);
                        }
                    }
                }
                Err(e) if e.is_silence() => silence = Some(e),
                Err(e) => return Err(e),
            }
        }
        match silence {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Service 04: clears DTCs, freeze frames and readiness. Each ECU's answer is returned:
    /// `ClearDtcs` when it cleared, `Negative` (usually NRC 0x22, conditions not correct:
    /// engine running) when it refused.
    pub async fn clear_dtcs(&self, target: Target) -> Result<Vec<EcuResponse>, DiagError> {
        self.request(target, &Request::ClearDtcs).await
    }

    /// Finds the ECUs that answer OBD requests and the PIDs each supports: a functional
    /// `01 00`, then each ECU's further bitmaps (`01 20`, `01 40`, ...) physically as long as
    /// the previous bitmap flags the next.
    pub async fn discover(&self) -> Result<Vec<EcuInfo>, DiagError> {
        let answers = self
            .request(
                Target::Functional,
                &Request::CurrentData { pids: vec![0x00] },
            )
            .await?;
        let mut ecus = Vec::new();
        for a in answers {
            let mut supported = SupportedPids::new();
            add_bitmaps(&mut supported, &a.response);
            ecus.push(EcuInfo {
                ecu: a.ecu,
                target: Target::for_ecu(a.ecu),
                supported_pids: supported,
            });
        }
        for info in &mut ecus {
            let (Some(target), mut base) = (info.target, 0x00u8) else {
                continue;
            };
            while let Some(next) = info.supported_pids.next_bitmap_pid(base) {
                let req = Request::CurrentData { pids: vec![next] };
                match self.request(target, &req).await {
                    Ok(answers) => {
                        for a in answers {
                            add_bitmaps(&mut info.supported_pids, &a.response);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(ecu = %info.ecu, pid = next, cause = %e, "supported-PID bitmap unreadable");
                        break;
                    }
                }
                base = next;
            }
        }
        Ok(ecus)
    }

    /// UDS ReadDTCInformation 0x19 0x02 (reportDTCByStatusMask) from one ECU: the DTCs whose
    /// status has any bit of `mask`. A negative answer is [`DiagError::Rejected`].
    pub async fn read_uds_dtcs(
        &self,
        ecu: Channel,
        mask: DtcStatus,
    ) -> Result<Vec<DtcRecord>, DiagError> {
        let req = Request::UdsReadDtcInformation {
            sub_function: uds::REPORT_DTC_BY_STATUS_MASK,
            params: vec![mask.0],
        };
        let answers = self.request(Target::Physical(ecu), &req).await?;
        let mut records = Vec::new();
        for a in answers {
            match a.response {
                Response::UdsReadDtcInformation(ReadDtcResponse::DtcsByStatusMask(list)) => {
                    records.extend(list.dtcs)
                }
                Response::Negative(n) => {
                    return Err(DiagError::Rejected {
                        ecu: a.ecu,
                        response: n,
                    });
                }
                other => {
                    tracing::warn!(ecu = %a.ecu, answer = ?other, "unexpected answer to 19 02; ignored");
                }
            }
        }
        Ok(records)
    }
}

/// Adds every supported-PID bitmap in a service 01 answer.
fn add_bitmaps(supported: &mut SupportedPids, response: &Response) {
    let Response::CurrentData(data) = response else {
        return;
    };
    for d in data {
        if let Ok(bitmap) = <[u8; 4]>::try_from(d.data.as_slice()) {
            let _ = supported.add_bitmap(d.pid, bitmap);
        }
    }
}
