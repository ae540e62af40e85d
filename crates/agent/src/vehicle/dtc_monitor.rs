//! The DTC monitor: reads every trouble-code list on a period and reports at once when the
//! picture changes.
//!
//! Each poll asks services 03 (stored), 07 (pending) and 0A (permanent) functionally and, when
//! configured, UDS `19 02 FF` physically from each ECU not known to refuse it. An ECU that
//! refuses or ignores `19` is remembered until the next discovery, so a car without UDS costs
//! one unanswered request per discovery, not one per poll. The per-ECU sets are compared with
//! those of the previous report; any difference (or the first read after start or wake-up)
//! makes a report, read out at that moment: MIL state (PID 01 bit 7), the freeze frame of ECUs
//! holding stored codes, and the since-clear counters and odometer.
//!
//! UDS entries are compared by code and failure type, not by status byte: the status bits
//! (test failed this cycle, ...) flip with every drive and would turn each poll into a
//! report; the J1979 lists already say when a code becomes pending, stored or permanent.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use telltale_can::client::{DiagError, DtcKind, Target};
use telltale_obd::EcuId;
use telltale_obd::isotp::addressing::Channel;
use telltale_obd::pid::{SupportedPids, Value};
use telltale_obd::service::{MAX_FREEZE_FRAME_PAIRS, PidData, Request, Response};
use telltale_obd::uds::{self, DtcStatus, ReadDtcResponse};
use telltale_wire::v1;

use super::discovery::Discovery;
use super::link::Link;
use super::signals;

/// UDS status mask for `19 02`: the codes failing now, pending or confirmed. A record with
/// only the other bits (a test not completed yet, a failure before the last clear) is no
/// current fault, and ECUs that ignore the mask have those filtered out after.
const UDS_STATUS_MASK: u8 =
    DtcStatus::TEST_FAILED | DtcStatus::PENDING_DTC | DtcStatus::CONFIRMED_DTC;

/// The context PIDs a report carries, each read from the first ECU that supports it.
const CONTEXT_PIDS: [u8; 4] = [0x31, 0x30, 0x21, 0xA6];

/// Per ECU, its current codes.
pub type DtcSets = BTreeMap<EcuId, Vec<v1::Dtc>>;

/// Why a poll is made: decides the report's reason and whether it goes out as a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// The periodic poll: a report only on change (or the first read after start or wake).
    Monitor,
    /// A ReadDtcs command: always a report, reason COMMAND, carried by the command result
    /// only (the baseline moves, so the monitor does not send the same change again).
    Command,
    /// The read after a ClearDtcs: always a report for the command; a message too when the
    /// sets changed, as the monitor would have sent.
    AfterClear,
}

/// A report and whether it is news to send as a DTC message.
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    pub report: v1::DtcReport,
    pub send: bool,
}

/// The monitor's memory between polls.
#[derive(Debug)]
pub struct DtcMonitor {
    uds: bool,
    /// The sets of the previous report; `None` until the first report after start or wake-up,
    /// which is then a STARTUP report.
    previous: Option<DtcSets>,
    /// The sets reported before the car slept, kept so a STARTUP report after wake-up says
    /// what appeared and cleared meanwhile (dropped when the vehicle changed).
    before_sleep: Option<DtcSets>,
    /// ECUs that refused or ignored UDS `19` since the last discovery.
    uds_refused: HashSet<EcuId>,
}

impl DtcMonitor {
    pub fn new(uds: bool) -> DtcMonitor {
        DtcMonitor {
            uds,
            previous: None,
            before_sleep: None,
            uds_refused: HashSet::new(),
        }
    }

    /// After a discovery: the next report is a STARTUP one; ECUs may be asked UDS again.
    /// `same_vehicle` keeps the last sets as the baseline of appeared/cleared.
    pub fn restart(&mut self, same_vehicle: bool) {
        let last = self.previous.take().or(self.before_sleep.take());
        self.before_sleep = if same_vehicle { last } else { None };
        self.uds_refused.clear();
    }

    /// Reads every list now: per answering ECU, its current codes.
    ///
    /// Silence is not a clear: a list an ECU did not answer this time (its answer was damaged,
    /// or only the other ECUs answered) keeps that ECU's codes of that kind from the previous
    /// report. Services 07 and 0A may be unsupported altogether (0A came with CAN, many older
    /// cars lack it): silence to them skips the kind; silence to 03 fails the poll.
    pub(crate) async fn read_sets(
        &mut self,
        link: &mut Link,
        discovery: &Discovery,
    ) -> Result<DtcSets, DiagError> {
        let mut sets: DtcSets = BTreeMap::new();
        let mut answered: HashSet<(EcuId, i32)> = HashSet::new();
        for (kind, wire) in [
            (DtcKind::Stored, v1::DtcKind::Stored),
            (DtcKind::Pending, v1::DtcKind::Pending),
            (DtcKind::Permanent, v1::DtcKind::Permanent),
        ] {
            let answers = match link.request(Target::Functional, &kind.request()).await {
                Ok(answers) => answers,
                Err(e) if e.is_silence() && kind != DtcKind::Stored => {
                    tracing::debug!(?kind, "no ECU answers this DTC service");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for a in answers {
                if let Response::Dtcs { dtcs, .. } = a.response {
                    answered.insert((a.ecu, wire as i32));
                    let list = sets.entry(a.ecu).or_default();
                    list.extend(dtcs.iter().map(|d| v1::Dtc {
                        code: d.to_string(),
                        kind: wire as i32,
                        uds_status: 0,
                        failure_type: 0,
                    }));
                }
            }
        }
        if self.uds {
            for e in &discovery.ecus {
                // UDS is a CAN matter: ECUs on the older buses do not speak it.
                let Some(Target::Physical(channel)) = e.target else {
                    continue;
                };
                if self.uds_refused.contains(&e.ecu) {
                    continue;
                }
                match self.read_uds(link, channel).await {
                    Ok(Some(list)) => {
                        answered.insert((e.ecu, v1::DtcKind::Uds as i32));
                        sets.entry(e.ecu).or_default().extend(list);
                    }
                    Ok(None) => {
                        tracing::info!(ecu = %e.ecu, "ECU refuses UDS 19 02; not asked again until the next discovery");
                        self.uds_refused.insert(e.ecu);
                    }
                    Err(err) if err.is_silence() => {
                        tracing::info!(ecu = %e.ecu, "ECU ignores UDS 19 02; not asked again until the next discovery");
                        self.uds_refused.insert(e.ecu);
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        if let Some(previous) = &self.previous {
            for (ecu, codes) in previous {
                let unanswered: Vec<v1::Dtc> = codes
                    .iter()
                    .filter(|c| !answered.contains(&(*ecu, c.kind)))
                    .cloned()
                    .collect();
                if !unanswered.is_empty() && discovery.ecu(*ecu).is_some() {
                    tracing::debug!(%ecu, kept = unanswered.len(), "no usable answer from this ECU; its codes are kept, not cleared");
                    sets.entry(*ecu).or_default().extend(unanswered);
                }
            }
        }
        for list in sets.values_mut() {
            list.sort_by(|a, b| dtc_key(a).cmp(&dtc_key(b)));
            list.dedup_by(|a, b| dtc_key(a) == dtc_key(b));
        }
        Ok(sets)
    }

    /// `19 02 0D` from one ECU; `None` when it refused.
    async fn read_uds(
        &mut self,
        link: &mut Link,
        channel: Channel,
    ) -> Result<Option<Vec<v1::Dtc>>, DiagError> {
        let req = Request::UdsReadDtcInformation {
            sub_function: uds::REPORT_DTC_BY_STATUS_MASK,
            params: vec![UDS_STATUS_MASK],
        };
        let answers = link.request(Target::Physical(channel), &req).await?;
        let mut out = Vec::new();
        for a in answers {
            match a.response {
                Response::UdsReadDtcInformation(ReadDtcResponse::DtcsByStatusMask(list)) => out
                    .extend(
                        list.dtcs
                            .iter()
                            .filter(|r| r.status.0 & UDS_STATUS_MASK != 0)
                            .map(|r| v1::Dtc {
                                code: r.dtc.code().to_string(),
                                kind: v1::DtcKind::Uds as i32,
                                uds_status: u32::from(r.status.0),
                                failure_type: r.dtc.raw() & 0xFF,
                            }),
                    ),
                Response::Negative(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(Some(out))
    }

    /// Reads the lists and decides, per `mode`, whether there is a report and whether it is
    /// news. Whenever a report is made its sets become the new baseline.
    pub(crate) async fn poll(
        &mut self,
        link: &mut Link,
        discovery: &Discovery,
        mode: PollMode,
    ) -> Result<Option<Polled>, DiagError> {
        let sets = self.read_sets(link, discovery).await?;
        let natural = match &self.previous {
            None => Some(v1::DtcReportReason::Startup),
            Some(prev) if differs(prev, &sets) => Some(v1::DtcReportReason::Changed),
            Some(_) => None,
        };
        let (reason, send) = match (mode, natural) {
            (PollMode::Monitor, None) => return Ok(None),
            (PollMode::Monitor, Some(r)) => (r, true),
            (PollMode::Command, _) => (v1::DtcReportReason::Command, false),
            (PollMode::AfterClear, Some(r)) => (r, true),
            (PollMode::AfterClear, None) => (v1::DtcReportReason::Command, false),
        };
        let report = self.report(link, discovery, sets, reason).await?;
        Ok(Some(Polled { report, send }))
    }

    async fn report(
        &mut self,
        link: &mut Link,
        discovery: &Discovery,
        sets: DtcSets,
        reason: v1::DtcReportReason,
    ) -> Result<v1::DtcReport, DiagError> {
        let empty = DtcSets::new();
        let baseline = self
            .previous
            .as_ref()
            .or(self.before_sleep.as_ref())
            .unwrap_or(&empty);
        let mut ecus = Vec::new();
        let ids: BTreeSet<EcuId> = sets.keys().chain(baseline.keys()).copied().collect();
        let changes: Vec<EcuChange> = ids
            .into_iter()
            .map(|id| {
                let cur = sets.get(&id).cloned().unwrap_or_default();
                let prev = baseline.get(&id).cloned().unwrap_or_default();
                let appeared = minus(&cur, &prev);
                let cleared = minus(&prev, &cur);
                (id, cur, appeared, cleared)
            })
            .collect();
        for (id, current, appeared, cleared) in changes {
            let target = discovery.ecu(id).and_then(|e| e.target);
            let supports_01 = discovery.ecu(id).is_some_and(|e| e.samples(0x01));
            let mil_on = match (target, supports_01) {
                (Some(target), true) => extra(read_mil(link, target).await, "MIL", id),
                _ => false,
            };
            let has_stored = current.iter().any(|d| d.kind == v1::DtcKind::Stored as i32);
            let freeze_frame = match (target, has_stored) {
                (Some(target), true) => {
                    extra(read_freeze_frame(link, target, 0).await, "freeze frame", id)
                }
                _ => None,
            };
            ecus.push(v1::EcuDtcs {
                ecu_can_id: id.raw(),
                mil_on,
                current,
                appeared,
                cleared,
                freeze_frame,
            });
        }
        // The codes are the report; what goes with them (MIL, freeze frame, context) is read
        // when the car gives it: an ECU without freeze frames or a PID it refuses leaves that
        // field empty instead of costing the whole report.
        let context = read_context(link, discovery).await;
        self.previous = Some(sets);
        self.before_sleep = None;
        Ok(v1::DtcReport {
            header: None,
            vin: discovery.vin.clone().unwrap_or_default(),
            device_unix_ms: super::unix_ms(),
            ecus,
            distance_since_cleared_km: context.get(&0x31).copied(),
            warmups_since_cleared: context.get(&0x30).map(|v| *v as u32),
            odometer_km: context.get(&0xA6).copied(),
            distance_with_mil_km: context.get(&0x21).copied(),
            reason: reason as i32,
        })
    }
}

/// One ECU's current codes, and what appeared and cleared since the baseline.
type EcuChange = (EcuId, Vec<v1::Dtc>, Vec<v1::Dtc>, Vec<v1::Dtc>);

/// What identifies a code in a set (see the module doc on UDS status bytes).
fn dtc_key(d: &v1::Dtc) -> (i32, &str, u32) {
    (d.kind, d.code.as_str(), d.failure_type)
}

fn minus(a: &[v1::Dtc], b: &[v1::Dtc]) -> Vec<v1::Dtc> {
    a.iter()
        .filter(|x| !b.iter().any(|y| dtc_key(x) == dtc_key(y)))
        .cloned()
        .collect()
}

fn differs(a: &DtcSets, b: &DtcSets) -> bool {
    let ids: BTreeSet<&EcuId> = a.keys().chain(b.keys()).collect();
    ids.into_iter().any(|id| {
        let x = a.get(id).map(Vec::as_slice).unwrap_or_default();
        let y = b.get(id).map(Vec::as_slice).unwrap_or_default();
        !minus(x, y).is_empty() || !minus(y, x).is_empty()
    })
}

/// PID 01 byte A bit 7, from one ECU.
async fn read_mil(link: &mut Link, target: Target) -> Result<bool, DiagError> {
    let answers = link
        .request(target, &Request::CurrentData { pids: vec![0x01] })
        .await?;
    Ok(answers.iter().any(|a| match &a.response {
        Response::CurrentData(data) => data
            .iter()
            .flat_map(|d| &d.readings)
            .any(|r| r.key == "mil_on" && r.value == Value::Bool(true)),
        _ => false,
    }))
}

/// Freeze frame `frame` of one ECU: which PIDs it holds (the service 02 bitmaps), then their
/// values three to a request. `None` when the ECU holds no frame (PID 02 reads `00 00`) or
/// refuses.
pub(crate) async fn read_freeze_frame(
    link: &mut Link,
    target: Target,
    frame: u8,
) -> Result<Option<v1::FreezeFrame>, DiagError> {
    let mut supported = SupportedPids::new();
    let mut base = 0x00u8;
    loop {
        let req = Request::FreezeFrame {
            pids: vec![(base, frame)],
        };
        let answers = link.request(target, &req).await?;
        let mut got = false;
        for d in freeze_data(answers) {
            if let Ok(bitmap) = <[u8; 4]>::try_from(d.data.as_slice()) {
                got |= supported.add_bitmap(d.pid, bitmap).is_ok();
            }
        }
        match supported.next_bitmap_pid(base) {
            Some(next) if got => base = next,
            _ => break,
        }
    }
    if !supported.contains(0x02) {
        return Ok(None);
    }
    let pids: Vec<u8> = std::iter::once(0x02)
        .chain(
            supported
                .iter()
                .filter(|&p| p != 0x02 && signals::is_sampleable(p)),
        )
        .collect();
    let mut data = Vec::new();
    for chunk in pids.chunks(MAX_FREEZE_FRAME_PAIRS) {
        let req = Request::FreezeFrame {
            pids: chunk.iter().map(|&p| (p, frame)).collect(),
        };
        data.extend(freeze_data(link.request(target, &req).await?));
    }
    let Some(trigger) = data.iter().find_map(PidData::freeze_frame_trigger) else {
        return Ok(None);
    };
    let values = data
        .iter()
        .filter(|d| d.pid != 0x02)
        .flat_map(|d| {
            let signal = signals::name_for(d.pid).unwrap_or_default();
            d.readings.iter().filter_map(move |r| {
                let (value, text) = signals::wire_value(&r.value)?;
                text.is_empty().then(|| v1::FreezeFrameValue {
                    signal: signals::sample_name(&signal, r, d.readings.len()),
                    pid: u32::from(d.pid),
                    value,
                    unit: r.unit.to_owned(),
                })
            })
        })
        .collect();
    Ok(Some(v1::FreezeFrame {
        trigger_code: trigger.to_string(),
        values,
    }))
}

fn freeze_data(answers: Vec<telltale_can::EcuResponse>) -> Vec<PidData> {
    answers
        .into_iter()
        .flat_map(|a| match a.response {
            Response::FreezeFrame(data) => data,
            _ => Vec::new(),
        })
        .collect()
}

/// The value of a read that goes with the codes, or its empty value when the car did not
/// give it (logged at debug: an ECU without freeze frames does so on every poll).
fn extra<T: Default>(read: Result<T, DiagError>, what: &str, ecu: EcuId) -> T {
    read.unwrap_or_else(|e| {
        tracing::debug!(%ecu, cause = %e, "{what} not read; reported without it");
        T::default()
    })
}

/// The context PIDs, each from the first ECU that supports it, one request per ECU.
async fn read_context(link: &mut Link, discovery: &Discovery) -> BTreeMap<u8, f64> {
    let mut by_ecu: BTreeMap<EcuId, (Target, Vec<u8>)> = BTreeMap::new();
    for pid in CONTEXT_PIDS {
        if let Some(src) = discovery.source_of(pid)
            && let Some(target) = src.target
        {
            by_ecu
                .entry(src.ecu)
                .or_insert((target, Vec::new()))
                .1
                .push(pid);
        }
    }
    let mut out = BTreeMap::new();
    for (ecu, (target, pids)) in by_ecu {
        let read = link.request(target, &Request::CurrentData { pids }).await;
        for a in extra(read, "context", ecu) {
            if let Response::CurrentData(data) = a.response {
                for d in data {
                    if let Some(Value::Number(n)) = d.readings.first().map(|r| &r.value) {
                        out.insert(d.pid, *n);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtc(code: &str, kind: v1::DtcKind) -> v1::Dtc {
        v1::Dtc {
            code: code.into(),
            kind: kind as i32,
            uds_status: 0,
            failure_type: 0,
        }
    }

    #[test]
    fn differences_ignore_uds_status_but_not_kind() {
        let ecm = EcuId::Can(telltale_obd::CanId::Standard(0x7E8));
        let a: DtcSets = [(ecm, vec![dtc("P0420", v1::DtcKind::Pending)])].into();
        let mut b = a.clone();
        assert!(!differs(&a, &b));
        b.insert(ecm, vec![dtc("P0420", v1::DtcKind::Stored)]);
        assert!(differs(&a, &b));
        let mut u1 = dtc("P0420", v1::DtcKind::Uds);
        u1.uds_status = 0x2F;
        let mut u2 = u1.clone();
        u2.uds_status = 0x28;
        let x: DtcSets = [(ecm, vec![u1])].into();
        let y: DtcSets = [(ecm, vec![u2])].into();
        assert!(!differs(&x, &y));
        let empty: DtcSets = [(ecm, vec![])].into();
        assert!(
            !differs(&empty, &DtcSets::new()),
            "an ECU with no codes is no change"
        );
        assert_eq!(
            minus(&b[&ecm], &a[&ecm]),
            vec![dtc("P0420", v1::DtcKind::Stored)]
        );
    }
}
