//! The vehicle task's state machine: discover, then sample and poll DTCs while the car
//! answers; after `asleep_after_silences` unanswered requests in a row, sleep and probe with a
//! functional `01 00` every `asleep_probe_period`; when a probe is answered, discover again
//! (the car may be another one) and resume.
//!
//! [`Task::step`] does whatever is due at the moment; [`Task::next_wake`] says when that is.
//! Commands ([`Task::handle`]) run between steps, through the same [`Link`] and so under the
//! same rate ceiling.

use std::collections::BTreeMap;

use telltale_can::client::{DiagError, Target};
use telltale_obd::EcuId;
use telltale_obd::service::{Request, Response};
use telltale_wire::v1;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::discovery::{self, Discovery};
use super::dtc_monitor::{self, DtcMonitor, PollMode};
use super::link::Link;
use super::sampler::{Batcher, Scheduler};
use super::{RequestError, SignalSpec, VehicleConfig, VehicleRequest, signals, unix_ms};
use crate::uplink::Message;

/// The output channel is closed: nobody will store what the task makes, so it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the spool writer's channel is closed")]
pub(crate) struct OutputClosed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Discovery is due (at start, and when a probe was answered).
    Discover,
    Awake,
    Asleep {
        next_probe: Instant,
    },
}

#[derive(Debug)]
pub(crate) struct Task {
    link: Link,
    config: VehicleConfig,
    out: mpsc::Sender<Message>,
    phase: Phase,
    /// The last discovery; kept while asleep to tell, on waking, whether the car changed.
    discovery: Option<Discovery>,
    /// The last info message sent.
    info_sent: Option<v1::VehicleInfo>,
    scheduler: Scheduler,
    batcher: Batcher,
    dtc: DtcMonitor,
    next_dtc_poll: Instant,
}

impl Task {
    pub(crate) fn new(link: Link, config: VehicleConfig, out: mpsc::Sender<Message>) -> Task {
        let now = Instant::now();
        Task {
            scheduler: Scheduler::new(&config.signals, now),
            batcher: Batcher::new(config.batch_max_samples, config.batch_max_age),
            dtc: DtcMonitor::new(config.uds),
            link,
            out,
            phase: Phase::Discover,
            discovery: None,
            info_sent: None,
            next_dtc_poll: now,
            config,
        }
    }

    /// When [`Task::step`] next has something to do.
    pub(crate) fn next_wake(&self) -> Instant {
        let batch = self.batcher.deadline();
        let work = match (self.phase, &self.discovery) {
            (Phase::Discover, _) => Some(Instant::now()),
            (Phase::Asleep { next_probe }, _) => Some(next_probe),
            (Phase::Awake, Some(d)) => Some(
                self.scheduler
                    .next_due(d)
                    .map_or(self.next_dtc_poll, |t| t.min(self.next_dtc_poll)),
            ),
            (Phase::Awake, None) => Some(Instant::now()),
        };
        [batch, work]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600))
    }

    /// Does what is due now.
    pub(crate) async fn step(&mut self) -> Result<(), OutputClosed> {
        let now = Instant::now();
        if let Some(samples) = self.batcher.take_if_old(now) {
            self.send_telemetry(samples).await?;
        }
        match self.phase {
            Phase::Discover => self.discover().await,
            Phase::Asleep { next_probe } if next_probe <= now => self.probe().await,
            Phase::Asleep { .. } => Ok(()),
            Phase::Awake => self.awake_step().await,
        }
    }

    /// Sends the partial batch (at shutdown).
    pub(crate) async fn flush(&mut self) -> Result<(), OutputClosed> {
        match self.batcher.take() {
            Some(samples) => self.send_telemetry(samples).await,
            None => Ok(()),
        }
    }

    async fn send(&self, msg: Message) -> Result<(), OutputClosed> {
        self.out.send(msg).await.map_err(|_| OutputClosed)
    }

    async fn send_telemetry(&self, samples: Vec<v1::Sample>) -> Result<(), OutputClosed> {
        let vin = self
            .discovery
            .as_ref()
            .and_then(|d| d.vin.clone())
            .unwrap_or_default();
        tracing::debug!(samples = samples.len(), "telemetry batch");
        self.send(Message::Telemetry(v1::TelemetryBatch {
            header: None,
            vin,
            samples,
        }))
        .await
    }

    async fn discover(&mut self) -> Result<(), OutputClosed> {
        self.link.forget_damage();
        match discovery::discover(&mut self.link).await {
            Ok(found) => {
                let now = Instant::now();
                let same = self.discovery.as_ref().is_some_and(|d| d.vin == found.vin);
                if !same && let Some(samples) = self.batcher.take() {
                    // Samples carry one VIN per batch: the old car's go out under its VIN.
                    self.send_telemetry(samples).await?;
                }
                tracing::info!(
                    vin = found.vin.as_deref().unwrap_or("?"),
                    ecus = found.ecus.len(),
                    "vehicle discovered"
                );
                self.link.state().send_modify(|s| {
                    s.awake = true;
                    s.vin = found.vin.clone();
                    s.ecus = found.ecus.iter().map(|e| e.ecu.to_string()).collect();
                    s.bus = Some(found.bus.clone());
                    s.link_state = "up".to_owned();
                });
                self.discovery = Some(found);
                self.dtc.restart(same);
                self.scheduler.restart(now);
                self.next_dtc_poll = now;
                self.phase = Phase::Awake;
                self.send_info_if_changed().await
            }
            Err(e) => {
                tracing::info!(cause = %e, "discovery failed; treating the vehicle as asleep");
                self.fall_asleep(Some(&e));
                Ok(())
            }
        }
    }

    async fn send_info_if_changed(&mut self) -> Result<(), OutputClosed> {
        let Some(d) = &self.discovery else {
            return Ok(());
        };
        let info = d.info(&self.config.link, &self.scheduler.specs());
        if self.info_sent.as_ref() == Some(&info) {
            return Ok(());
        }
        self.info_sent = Some(info.clone());
        self.send(Message::Info(info)).await
    }

    fn fall_asleep(&mut self, cause: Option<&DiagError>) {
        let next_probe = Instant::now() + self.config.asleep_probe_period;
        if !matches!(self.phase, Phase::Asleep { .. }) {
            tracing::info!(
                silences = self.link.silences,
                "vehicle asleep; probing every {:?}",
                self.config.asleep_probe_period
            );
        }
        self.phase = Phase::Asleep { next_probe };
        let words = match cause {
            Some(e) if !e.is_silence() => e.to_string(),
            _ => "asleep".to_owned(),
        };
        self.link.state().send_modify(|s| {
            s.awake = false;
            s.link_state = words;
        });
    }

    /// True (and asleep now) when the run of silences reached the limit.
    fn check_asleep(&mut self) -> bool {
        if self.link.silences >= self.config.asleep_after_silences.max(1) {
            self.fall_asleep(None);
            true
        } else {
            false
        }
    }

    async fn probe(&mut self) -> Result<(), OutputClosed> {
        let req = Request::CurrentData { pids: vec![0x00] };
        match self.link.request(Target::Functional, &req).await {
            Ok(answers) if !answers.is_empty() => {
                tracing::info!("vehicle answered the probe: awake");
                self.discover().await
            }
            Ok(_) | Err(_) => {
                self.fall_asleep(None);
                Ok(())
            }
        }
    }

    async fn awake_step(&mut self) -> Result<(), OutputClosed> {
        let Some(discovery) = self.discovery.clone() else {
            self.phase = Phase::Discover;
            return Ok(());
        };
        if self.next_dtc_poll <= Instant::now() {
            // A failed poll is logged inside; the silences it caused are judged just below.
            let _ = self.poll_dtcs(&discovery, PollMode::Monitor).await?;
            self.next_dtc_poll = Instant::now() + self.config.dtc_period;
            if self.check_asleep() {
                return Ok(());
            }
        }
        let now = Instant::now();
        for batch in self.scheduler.take_due(now, &discovery) {
            let samples = self.sample(batch.ecu, batch.target, &batch.pids).await;
            self.link
                .state()
                .send_modify(|s| s.samples_made += samples.len() as u64);
            for full in self.batcher.push(samples, Instant::now()) {
                self.send_telemetry(full).await?;
            }
            if self.check_asleep() {
                break;
            }
        }
        Ok(())
    }

    /// Reads one batch of PIDs from one ECU; answered PIDs end their back-off, the others
    /// (silence, refusal, left out of the answer) start or continue it.
    async fn sample(&mut self, ecu: EcuId, target: Target, pids: &[u8]) -> Vec<v1::Sample> {
        let req = Request::CurrentData {
            pids: pids.to_vec(),
        };
        let result = self.link.request(target, &req).await;
        let now = Instant::now();
        let ms = unix_ms();
        let mut samples = Vec::new();
        let mut answered = Vec::new();
        match result {
            Ok(answers) => {
                for a in answers {
                    match a.response {
                        Response::CurrentData(data) => {
                            for d in data.iter().filter(|d| pids.contains(&d.pid)) {
                                let name = self
                                    .scheduler
                                    .name_of(d.pid)
                                    .map(str::to_owned)
                                    .or_else(|| signals::name_for(d.pid))
                                    .unwrap_or_default();
                                samples.extend(signals::samples(
                                    &name,
                                    d.pid,
                                    &d.readings,
                                    a.ecu.raw(),
                                    ms,
                                ));
                                answered.push(d.pid);
                            }
                        }
                        Response::Negative(n) => {
                            tracing::debug!(%ecu, ?pids, answer = %n, "PIDs refused");
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => tracing::debug!(%ecu, ?pids, cause = %e, "PIDs unanswered"),
        }
        for &pid in pids {
            if answered.contains(&pid) {
                self.scheduler.answered(pid);
            } else {
                self.scheduler.failed(pid, now);
            }
        }
        samples
    }

    /// A DTC poll; a report that is news goes out at once. Returns the report made, if any.
    async fn poll_dtcs(
        &mut self,
        discovery: &Discovery,
        mode: PollMode,
    ) -> Result<Result<Option<v1::DtcReport>, DiagError>, OutputClosed> {
        match self.dtc.poll(&mut self.link, discovery, mode).await {
            Ok(Some(polled)) => {
                self.link.state().send_modify(|s| s.dtc_reports_made += 1);
                if polled.send {
                    tracing::info!(reason = polled.report.reason, "DTC report");
                    self.send(Message::Dtc(polled.report.clone())).await?;
                }
                Ok(Ok(Some(polled.report)))
            }
            Ok(None) => Ok(Ok(None)),
            Err(e) => {
                tracing::warn!(cause = %e, "DTC poll failed");
                Ok(Err(e))
            }
        }
    }

    /// Serves one command. Output-channel closure is the only error.
    pub(crate) async fn handle(&mut self, req: VehicleRequest) -> Result<(), OutputClosed> {
        if self.phase == Phase::Discover {
            self.discover().await?;
        }
        match req {
            VehicleRequest::SetSchedule { signals, reply } => {
                let result = self.set_schedule(&signals);
                if result.is_ok() {
                    self.send_info_if_changed().await?;
                }
                let _ = reply.send(result);
            }
            VehicleRequest::ReadDtcs { reply } => {
                let result = match self.awake_discovery() {
                    Ok(d) => self
                        .poll_dtcs(&d, PollMode::Command)
                        .await?
                        .map_err(request_error)
                        .and_then(|r| r.ok_or_else(|| unreachable("no report"))),
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            VehicleRequest::ReadFreezeFrame { frame, reply } => {
                let result = match self.awake_discovery() {
                    Ok(d) => self.read_freeze_frame(&d, frame).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            VehicleRequest::ReadPids { pids, reply } => {
                let result = match self.awake_discovery() {
                    Ok(d) => self.read_pids(&d, &pids).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
            VehicleRequest::ClearDtcs { reply } => {
                let result = match self.awake_discovery() {
                    Ok(d) => self.clear_dtcs(&d).await?,
                    Err(e) => Err(e),
                };
                let _ = reply.send(result);
            }
        }
        self.check_asleep();
        Ok(())
    }

    fn awake_discovery(&self) -> Result<Discovery, RequestError> {
        match (&self.phase, &self.discovery) {
            (Phase::Awake, Some(d)) => Ok(d.clone()),
            _ => Err(unreachable("the vehicle is asleep (no ECU answers)")),
        }
    }

    /// Validates every entry first, so a bad one changes nothing.
    fn set_schedule(&mut self, entries: &[v1::SignalPeriod]) -> Result<(), RequestError> {
        let mut specs = Vec::new();
        for e in entries {
            let pid = if e.pid != 0 {
                let pid = u8::try_from(e.pid)
                    .ok()
                    .filter(|&p| signals::is_sampleable(p))
                    .ok_or_else(|| {
                        invalid(format!("PID 0x{:02X} is not a Mode 01 signal", e.pid))
                    })?;
                if !e.signal.is_empty()
                    && let Some(named) = signals::pid_for(&e.signal)
                    && named != pid
                {
                    return Err(invalid(format!(
                        "signal {} is PID 0x{named:02X}, not 0x{pid:02X}",
                        e.signal
                    )));
                }
                pid
            } else {
                signals::pid_for(&e.signal)
                    .ok_or_else(|| invalid(format!("unknown signal {:?} and no PID", e.signal)))?
            };
            let name = if e.signal.is_empty() {
                signals::name_for(pid).unwrap_or_default()
            } else {
                e.signal.clone()
            };
            specs.push(SignalSpec {
                name,
                pid,
                period: std::time::Duration::from_millis(u64::from(e.period_ms)),
            });
        }
        let now = Instant::now();
        for s in specs {
            tracing::info!(signal = %s.name, pid = s.pid, period_ms = s.period.as_millis() as u64, "schedule changed");
            self.scheduler.set(s, now);
        }
        Ok(())
    }

    async fn read_pids(
        &mut self,
        discovery: &Discovery,
        pids: &[u8],
    ) -> Result<Vec<v1::Sample>, RequestError> {
        if let Some(bad) = pids.iter().find(|&&p| !signals::is_sampleable(p)) {
            return Err(invalid(format!("PID 0x{bad:02X} is not a Mode 01 signal")));
        }
        // Every ECU that supports a PID is asked for it: a one-off read wants them all.
        let mut by_ecu: BTreeMap<EcuId, (Target, Vec<u8>)> = BTreeMap::new();
        for &pid in pids {
            for e in discovery.ecus.iter().filter(|e| e.samples(pid)) {
                if let Some(target) = e.target {
                    let list = &mut by_ecu.entry(e.ecu).or_insert((target, Vec::new())).1;
                    if !list.contains(&pid) {
                        list.push(pid);
                    }
                }
            }
        }
        if by_ecu.is_empty() {
            return Err(refused("no ECU supports these PIDs"));
        }
        let mut samples = Vec::new();
        let mut refusal = None;
        let ms = unix_ms();
        for (ecu, (target, list)) in by_ecu {
            for chunk in list.chunks(telltale_obd::pid::MAX_PIDS_PER_REQUEST) {
                let req = Request::CurrentData {
                    pids: chunk.to_vec(),
                };
                let answers = self
                    .link
                    .request(target, &req)
                    .await
                    .map_err(request_error)?;
                for a in answers {
                    match a.response {
                        Response::CurrentData(data) => {
                            for d in data {
                                let name = signals::name_for(d.pid).unwrap_or_default();
                                samples.extend(signals::samples(
                                    &name,
                                    d.pid,
                                    &d.readings,
                                    a.ecu.raw(),
                                    ms,
                                ));
                            }
                        }
                        Response::Negative(n) => {
                            tracing::debug!(%ecu, answer = %n, "ReadPids refused");
                            refusal = Some(format!("ECU {ecu}: {n}"));
                        }
                        _ => {}
                    }
                }
            }
        }
        match refusal {
            Some(words) if samples.is_empty() => Err(refused(words)),
            _ => Ok(samples),
        }
    }

    /// The first ECU (in id order) holding frame `frame`; an empty frame when none does.
    async fn read_freeze_frame(
        &mut self,
        discovery: &Discovery,
        frame: u8,
    ) -> Result<v1::FreezeFrame, RequestError> {
        for e in &discovery.ecus {
            let Some(target) = e.target else { continue };
            if let Some(ff) = dtc_monitor::read_freeze_frame(&mut self.link, target, frame)
                .await
                .map_err(request_error)?
            {
                return Ok(ff);
            }
        }
        Ok(v1::FreezeFrame::default())
    }

    /// Vehicle speed first (0 km/h read just now, or no clear), then service 04 to every ECU,
    /// then the lists again: the command's answer, and a DTC message if they changed.
    async fn clear_dtcs(
        &mut self,
        discovery: &Discovery,
    ) -> Result<Result<v1::DtcReport, RequestError>, OutputClosed> {
        let Some(target) = discovery.source_of(0x0D).and_then(|e| e.target) else {
            return Ok(Err(moving(
                "vehicle speed (PID 0D) is not supported: cannot confirm the vehicle is stopped",
            )));
        };
        let speed = self
            .link
            .request(target, &Request::CurrentData { pids: vec![0x0D] })
            .await;
        let speed = match speed {
            Err(e) if e.is_silence() => return Ok(Err(request_error(e))),
            Err(e) => {
                return Ok(Err(moving(format!(
                    "vehicle speed unreadable ({e}): not clearing"
                ))));
            }
            Ok(answers) => answers.iter().find_map(|a| match &a.response {
                Response::CurrentData(data) => data
                    .iter()
                    .find(|d| d.pid == 0x0D)
                    .and_then(|d| d.readings.first())
                    .and_then(|r| match r.value {
                        telltale_obd::pid::Value::Number(n) => Some(n),
                        _ => None,
                    }),
                _ => None,
            }),
        };
        match speed {
            Some(0.0) => {}
            Some(v) => {
                return Ok(Err(moving(format!(
                    "vehicle moving at {v} km/h: not clearing"
                ))));
            }
            None => return Ok(Err(moving("vehicle speed unreadable: not clearing"))),
        }
        let answers = match self
            .link
            .request(Target::Functional, &Request::ClearDtcs)
            .await
        {
            Ok(a) => a,
            Err(e) => return Ok(Err(request_error(e))),
        };
        let refusals: Vec<String> = answers
            .iter()
            .filter_map(|a| match &a.response {
                Response::Negative(n) => Some(format!("ECU {}: {n}", a.ecu)),
                _ => None,
            })
            .collect();
        tracing::info!(
            answers = answers.len(),
            refused = refusals.len(),
            "DTCs cleared (service 04)"
        );
        let polled = self.poll_dtcs(discovery, PollMode::AfterClear).await?;
        if !refusals.is_empty() {
            return Ok(Err(refused(format!(
                "clear refused: {}",
                refusals.join("; ")
            ))));
        }
        Ok(polled
            .map_err(request_error)
            .and_then(|r| r.ok_or_else(|| unreachable("no report"))))
    }
}

fn err(code: v1::CommandError, message: impl Into<String>) -> RequestError {
    RequestError {
        code,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> RequestError {
    err(v1::CommandError::InvalidArgument, message)
}

fn unreachable(message: impl Into<String>) -> RequestError {
    err(v1::CommandError::VehicleUnreachable, message)
}

fn moving(message: impl Into<String>) -> RequestError {
    err(v1::CommandError::VehicleMoving, message)
}

fn refused(message: impl Into<String>) -> RequestError {
    err(v1::CommandError::RefusedByEcu, message)
}

/// A failed request in command terms: a refusal is the ECU's, anything else means the
/// vehicle could not be reached.
fn request_error(e: DiagError) -> RequestError {
    match e {
        DiagError::Rejected { .. } => refused(e.to_string()),
        e => unreachable(e.to_string()),
    }
}
