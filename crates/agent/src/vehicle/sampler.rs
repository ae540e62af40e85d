//! The sampling scheduler and the telemetry batcher, both driven by the caller's `now` (no
//! clock reads, no I/O) so their timing is tested directly.
//!
//! [`Scheduler`]: each signal is due every `period`; the signals due at one moment are
//! grouped by the ECU that answers their PID and asked six to a physical request. A PID that
//! no ECU supports is logged once and skipped. When an ECU stays silent or refuses a PID, that
//! (ECU, PID) backs off exponentially — period × 2, × 4, ... up to [`BACKOFF_CAP`] — so a dead
//! or picky ECU does not eat the request budget of the ones that answer; one good answer
//! ends the back-off. A signal that falls behind (a slow link, the rate ceiling) skips the
//! samples it missed rather than bursting to catch up.
//!
//! [`Batcher`]: samples wait until a batch holds `max_samples` or its oldest sample is
//! `max_age` old, whichever comes first.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use telltale_can::client::Target;
use telltale_obd::EcuId;
use telltale_obd::pid::MAX_PIDS_PER_REQUEST;
use telltale_wire::v1;
use tokio::time::Instant;

use super::SignalSpec;
use super::discovery::Discovery;

/// The longest a backed-off signal waits before it is tried again (unless its own period is
/// longer).
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// One physical request's worth of due PIDs for one ECU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidBatch {
    pub ecu: EcuId,
    pub target: Target,
    /// At most [`MAX_PIDS_PER_REQUEST`], no repeats.
    pub pids: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Entry {
    spec: SignalSpec,
    next_due: Instant,
    /// Failed attempts in a row: the back-off exponent.
    failures: u32,
}

/// Which signal is due when.
#[derive(Debug)]
pub struct Scheduler {
    entries: Vec<Entry>,
    /// PIDs already reported as unsupported since the last discovery.
    warned: HashSet<u8>,
}

impl Scheduler {
    /// A schedule whose signals are all due at `now`. A period of zero means "not sampled";
    /// later entries for a PID already listed are ignored (one name per PID).
    pub fn new(specs: &[SignalSpec], now: Instant) -> Scheduler {
        let mut s = Scheduler {
            entries: Vec::new(),
            warned: HashSet::new(),
        };
        for spec in specs {
            s.set(spec.clone(), now);
        }
        s
    }

    /// The signals as they are scheduled now.
    pub fn specs(&self) -> Vec<SignalSpec> {
        self.entries.iter().map(|e| e.spec.clone()).collect()
    }

    /// Adds a signal or changes its period (it is due at once with the new one); a zero
    /// period removes it. Signals are keyed by PID: a new name for a PID renames it.
    pub fn set(&mut self, spec: SignalSpec, now: Instant) {
        if spec.period.is_zero() {
            self.entries.retain(|e| e.spec.pid != spec.pid);
            return;
        }
        match self.entries.iter_mut().find(|e| e.spec.pid == spec.pid) {
            Some(e) => {
                e.spec = spec;
                e.next_due = now;
                e.failures = 0;
            }
            None => self.entries.push(Entry {
                spec,
                next_due: now,
                failures: 0,
            }),
        }
    }

    /// The signal name sampled from `pid`.
    pub fn name_of(&self, pid: u8) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.spec.pid == pid)
            .map(|e| e.spec.name.as_str())
    }

    /// After a (re-)discovery or a wake-up: everything is due at `now`, back-offs forgotten,
    /// unsupported PIDs reported again if they still are.
    pub fn restart(&mut self, now: Instant) {
        self.warned.clear();
        for e in &mut self.entries {
            e.next_due = now;
            e.failures = 0;
        }
    }

    /// When the next signal that some ECU answers is due.
    pub fn next_due(&self, discovery: &Discovery) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|e| discovery.source_of(e.spec.pid).is_some())
            .map(|e| e.next_due)
            .min()
    }

    /// The requests to make at `now`: due signals grouped by their source ECU, six PIDs a
    /// request. The signals taken are booked for their next period.
    pub fn take_due(&mut self, now: Instant, discovery: &Discovery) -> Vec<PidBatch> {
        let mut by_ecu: BTreeMap<EcuId, (Target, Vec<u8>)> = BTreeMap::new();
        for e in &mut self.entries {
            if e.next_due > now {
                continue;
            }
            let pid = e.spec.pid;
            let Some((ecu, Some(target))) = discovery.source_of(pid).map(|s| (s.ecu, s.target))
            else {
                if self.warned.insert(pid) {
                    tracing::warn!(
                        signal = %e.spec.name,
                        pid,
                        "no ECU supports this PID; not sampled"
                    );
                }
                continue;
            };
            // Next period, skipping any missed while the link was busy.
            e.next_due += e.spec.period;
            if e.next_due <= now {
                e.next_due = now + e.spec.period;
            }
            let (_, pids) = by_ecu.entry(ecu).or_insert((target, Vec::new()));
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        by_ecu
            .into_iter()
            .flat_map(|(ecu, (target, pids))| {
                pids.chunks(MAX_PIDS_PER_REQUEST)
                    .map(|c| PidBatch {
                        ecu,
                        target,
                        pids: c.to_vec(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// `pid` was answered: back-off over.
    pub fn answered(&mut self, pid: u8) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.spec.pid == pid) {
            e.failures = 0;
        }
    }

    /// `pid` got no answer or a refusal at `now`: try again after the back-off.
    pub fn failed(&mut self, pid: u8, now: Instant) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.spec.pid == pid) {
            e.failures = e.failures.saturating_add(1);
            let delay = backoff(e.spec.period, e.failures);
            e.next_due = now + delay;
            tracing::debug!(signal = %e.spec.name, pid, failures = e.failures, delay_ms = delay.as_millis() as u64, "backing off");
        }
    }
}

/// `period · 2^failures`, capped at [`BACKOFF_CAP`] (or the period itself when longer).
pub fn backoff(period: Duration, failures: u32) -> Duration {
    let cap = BACKOFF_CAP.max(period);
    let factor = 1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX);
    period.saturating_mul(factor).min(cap)
}

/// Collects samples into telemetry batches by count and by age.
#[derive(Debug)]
pub struct Batcher {
    max_samples: usize,
    max_age: Duration,
    samples: Vec<v1::Sample>,
    oldest: Option<Instant>,
}

impl Batcher {
    pub fn new(max_samples: usize, max_age: Duration) -> Batcher {
        Batcher {
            max_samples: max_samples.max(1),
            max_age,
            samples: Vec::new(),
            oldest: None,
        }
    }

    /// Adds samples made at `now`; returns the batches that became full.
    pub fn push(&mut self, samples: Vec<v1::Sample>, now: Instant) -> Vec<Vec<v1::Sample>> {
        let mut full = Vec::new();
        for s in samples {
            if self.samples.is_empty() {
                self.oldest = Some(now);
            }
            self.samples.push(s);
            if self.samples.len() >= self.max_samples {
                full.extend(self.take());
            }
        }
        full
    }

    /// When the partial batch must go out.
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.max_age)
    }

    /// The partial batch, if its oldest sample has reached the age limit at `now`.
    pub fn take_if_old(&mut self, now: Instant) -> Option<Vec<v1::Sample>> {
        match self.deadline() {
            Some(d) if d <= now => self.take(),
            _ => None,
        }
    }

    /// Whatever is waiting (at shutdown, or before the VIN changes).
    pub fn take(&mut self) -> Option<Vec<v1::Sample>> {
        self.oldest = None;
        (!self.samples.is_empty()).then(|| std::mem::take(&mut self.samples))
    }
}

#[cfg(test)]
mod tests {
    use telltale_obd::pid::SupportedPids;

    use super::super::discovery::DiscoveredEcu;
    use super::*;

    fn ecu(id: u16, pids: &[u8]) -> DiscoveredEcu {
        let mut supported = SupportedPids::new();
        for &p in pids {
            supported.insert(p);
        }
        let ecu = EcuId::Can(telltale_obd::CanId::Standard(id));
        DiscoveredEcu {
            ecu,
            target: Target::for_ecu(ecu),
            supported,
            name: String::new(),
            calibration_ids: Vec::new(),
            cvns: Vec::new(),
        }
    }

    fn spec(pid: u8, ms: u64) -> SignalSpec {
        SignalSpec {
            name: format!("s{pid:02X}"),
            pid,
            period: Duration::from_millis(ms),
        }
    }

    fn car() -> Discovery {
        Discovery {
            vin: None,
            ecus: vec![
                ecu(0x7E8, &[0x04, 0x05, 0x0C, 0x0D, 0x0F, 0x10, 0x11, 0x42]),
                ecu(0x7E9, &[0x0D, 0x30, 0x31]),
            ],
            bus: "ISO 15765-4 CAN 11-bit".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batches_six_per_ecu_first_source_wins_unsupported_skipped() {
        let t0 = Instant::now();
        let specs: Vec<SignalSpec> = [0x04, 0x05, 0x0C, 0x0D, 0x0F, 0x10, 0x11, 0x31, 0x5B]
            .into_iter()
            .map(|p| spec(p, 1000))
            .collect();
        let mut s = Scheduler::new(&specs, t0);
        let d = car();
        let batches = s.take_due(t0, &d);
        let shape: Vec<(u32, Vec<u8>)> = batches
            .iter()
            .map(|b| (b.ecu.raw(), b.pids.clone()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0x7E8, vec![0x04, 0x05, 0x0C, 0x0D, 0x0F, 0x10]),
                (0x7E8, vec![0x11]),
                (0x7E9, vec![0x31]),
            ]
        );
        assert!(s.take_due(t0, &d).is_empty(), "booked for the next period");
        assert_eq!(s.next_due(&d), Some(t0 + Duration::from_secs(1)));
        assert_eq!(s.take_due(t0 + Duration::from_secs(1), &d).len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn periods_differ_and_missed_samples_are_skipped() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(&[spec(0x0D, 1000), spec(0x05, 10_000)], t0);
        let d = car();
        let pids = |b: Vec<PidBatch>| {
            let mut v: Vec<u8> = b.into_iter().flat_map(|b| b.pids).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(pids(s.take_due(t0, &d)), vec![0x05, 0x0D]);
        for i in 1..10 {
            assert_eq!(
                pids(s.take_due(t0 + Duration::from_secs(i), &d)),
                vec![0x0D]
            );
        }
        assert_eq!(
            pids(s.take_due(t0 + Duration::from_secs(10), &d)),
            vec![0x05, 0x0D]
        );
        // Five seconds late: one sample, then the period again from now.
        let late = t0 + Duration::from_secs(16);
        assert_eq!(pids(s.take_due(late, &d)), vec![0x0D]);
        assert!(s.take_due(late + Duration::from_millis(999), &d).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_caps_and_resets() {
        assert_eq!(backoff(Duration::from_secs(1), 1), Duration::from_secs(2));
        assert_eq!(backoff(Duration::from_secs(1), 3), Duration::from_secs(8));
        assert_eq!(backoff(Duration::from_secs(1), 40), BACKOFF_CAP);
        assert_eq!(
            backoff(Duration::from_secs(600), 2),
            Duration::from_secs(600)
        );
        let t0 = Instant::now();
        let mut s = Scheduler::new(&[spec(0x0D, 1000)], t0);
        let d = car();
        s.take_due(t0, &d);
        s.failed(0x0D, t0);
        s.failed(0x0D, t0);
        assert_eq!(s.next_due(&d), Some(t0 + Duration::from_secs(4)));
        s.answered(0x0D);
        s.failed(0x0D, t0);
        assert_eq!(s.next_due(&d), Some(t0 + Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn set_changes_period_and_zero_removes() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(&[spec(0x0D, 1000)], t0);
        let d = car();
        s.take_due(t0, &d);
        s.set(spec(0x0D, 250), t0);
        s.set(spec(0x05, 0), t0);
        assert_eq!(s.next_due(&d), Some(t0));
        s.take_due(t0, &d);
        assert_eq!(s.next_due(&d), Some(t0 + Duration::from_millis(250)));
        s.set(spec(0x0D, 0), t0);
        assert!(s.specs().is_empty());
        assert_eq!(s.next_due(&d), None);
    }

    fn sample(n: u32) -> v1::Sample {
        v1::Sample {
            pid: n,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn batcher_by_count_and_by_age() {
        let t0 = Instant::now();
        let mut b = Batcher::new(3, Duration::from_secs(5));
        assert!(b.push(vec![sample(1), sample(2)], t0).is_empty());
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(5)));
        let full = b.push(vec![sample(3), sample(4)], t0 + Duration::from_secs(1));
        assert_eq!(full.len(), 1);
        assert_eq!(
            full[0].iter().map(|s| s.pid).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        // The leftover's age counts from when it arrived.
        assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(6)));
        assert!(b.take_if_old(t0 + Duration::from_secs(5)).is_none());
        let old = b.take_if_old(t0 + Duration::from_secs(6));
        assert_eq!(old.map(|v| v.len()), Some(1));
        assert_eq!(b.deadline(), None);
        assert!(b.take().is_none());
    }
}
