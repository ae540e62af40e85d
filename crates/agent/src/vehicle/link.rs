//! The vehicle task's one door to the car: every diagnostic request, scheduled or commanded,
//! goes through [`Link::request`], which waits for the rate ceiling, counts what was sent and
//! what went unanswered, and keeps the run of consecutive silences that says the car is asleep.
//!
//! It also shapes multi-PID requests (services 01 and 02) to what the link and each ECU take:
//! no more PIDs per request than the bus allows (six on CAN, one on the older buses), and a
//! PID that an ECU once answered damaged inside a multi-PID answer is asked of that ECU alone
//! from then on (until the next discovery), so its trouble cannot cost its neighbours again.
//! The answers of the pieces are merged back into one answer per ECU.
//!
//! The client's own helpers (`read_pids`, `discover`, ...) send several requests per call, so
//! the vehicle side builds its questions from single requests here instead: that way the
//! ceiling and the silence count see each one.

use std::collections::{BTreeMap, BTreeSet};

use telltale_can::client::{DiagClient, DiagError, EcuResponse, Target, Trouble};
use telltale_obd::EcuId;
use telltale_obd::service::{MAX_FREEZE_FRAME_PAIRS, Request, Response};
use tokio::sync::watch;
use tokio::time::Instant;

use super::VehicleState;

/// A token bucket holding at most one token: requests are spaced at least `1 / rate` apart,
/// so any window of `w` seconds holds at most `rate · w + 1` of them. A bigger bucket would
/// let bursts through and break "per second" over short windows.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    /// Seconds between two requests; `None` means no ceiling.
    interval: Option<f64>,
    /// When the next request may go.
    next: Option<Instant>,
}

impl TokenBucket {
    /// `rate` requests per second; zero, negative or not finite means no ceiling.
    pub(crate) fn new(rate: f64) -> TokenBucket {
        let interval = (rate.is_finite() && rate > 0.0).then(|| 1.0 / rate);
        TokenBucket {
            interval,
            next: None,
        }
    }

    /// When a request asked for at `now` may go, and books it.
    pub(crate) fn take(&mut self, now: Instant) -> Instant {
        let Some(interval) = self.interval else {
            return now;
        };
        let at = self.next.map_or(now, |n| n.max(now));
        self.next = Some(at + std::time::Duration::from_secs_f64(interval));
        at
    }
}

/// The client, the ceiling, and the counters the status endpoint shows.
#[derive(Debug)]
pub(crate) struct Link {
    client: DiagClient,
    bucket: TokenBucket,
    state: watch::Sender<VehicleState>,
    /// Requests in a row that nothing answered.
    pub(crate) silences: u32,
    /// (ECU, PID) pairs asked alone since they came back damaged in a multi-PID answer.
    alone: BTreeSet<(EcuId, u8)>,
}

impl Link {
    pub(crate) fn new(client: DiagClient, rate: f64, state: watch::Sender<VehicleState>) -> Link {
        Link {
            client,
            bucket: TokenBucket::new(rate),
            state,
            silences: 0,
            alone: BTreeSet::new(),
        }
    }

    pub(crate) fn state(&self) -> &watch::Sender<VehicleState> {
        &self.state
    }

    /// The vehicle's bus.
    pub(crate) fn bus(&self) -> telltale_obd::elm327::Bus {
        self.client.bus()
    }

    /// After a discovery (maybe another car): every PID may share a request again.
    pub(crate) fn forget_damage(&mut self) {
        self.alone.clear();
    }

    /// One question: a multi-PID request may go out as several (see the module docs), whose
    /// answers come back merged, one per ECU. Fails only when no piece got an answer.
    pub(crate) async fn request(
        &mut self,
        target: Target,
        req: &Request,
    ) -> Result<Vec<EcuResponse>, DiagError> {
        let alone: BTreeSet<u8> = self
            .alone
            .iter()
            .filter(|(ecu, _)| target.includes(*ecu) && target != Target::Functional)
            .map(|&(_, pid)| pid)
            .collect();
        let pieces = split(req, self.client.max_pids_per_request(), &alone);
        if let [only] = pieces.as_slice() {
            return self.send(target, only).await;
        }
        let mut merged: BTreeMap<EcuId, EcuResponse> = BTreeMap::new();
        let mut first_error = None;
        for piece in &pieces {
            match self.send(target, piece).await {
                Ok(answers) => {
                    for a in answers {
                        merge(&mut merged, a);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if merged.is_empty() => Err(e),
            _ => Ok(merged.into_values().collect()),
        }
    }

    /// One request on the wire, after the rate ceiling allows it. Silence (nothing answered)
    /// is counted; any answer, even a refusal or a garbled one, ends a run of silences.
    async fn send(&mut self, target: Target, req: &Request) -> Result<Vec<EcuResponse>, DiagError> {
        let at = self.bucket.take(Instant::now());
        tokio::time::sleep_until(at).await;
        self.state.send_modify(|s| s.requests_sent += 1);
        let result = self.client.request(target, req).await;
        match &result {
            Err(e) if e.is_silence() => {
                self.silences = self.silences.saturating_add(1);
                self.state.send_modify(|s| s.requests_unanswered += 1);
                tracing::debug!(%target, service = req.service(), silences = self.silences, "no answer");
            }
            Err(e) => {
                self.silences = 0;
                // Unusable answers are logged once per kind by the client's trouble log.
                if Trouble::of(e).is_none() {
                    tracing::warn!(%target, service = req.service(), cause = %e, "request failed");
                }
            }
            Ok(answers) => {
                self.silences = 0;
                self.note_damage(req, answers);
            }
        }
        let counts = self.client.troubles().counts();
        self.state.send_if_modified(|s| {
            let fresh: BTreeMap<String, u64> = counts
                .iter()
                .map(|(k, n)| (k.as_ref().to_owned(), *n))
                .collect();
            let changed = s.unusable_answers != fresh;
            s.unusable_answers = fresh;
            changed
        });
        result
    }

    /// PIDs damaged inside a multi-PID answer are asked alone from now on.
    fn note_damage(&mut self, req: &Request, answers: &[EcuResponse]) {
        if pids_of(req).len() < 2 {
            return;
        }
        for a in answers {
            for pid in a.damaged.iter().filter_map(|d| d.pid) {
                if self.alone.insert((a.ecu, pid)) {
                    tracing::info!(ecu = %a.ecu, pid, "PID answered damaged in a multi-PID request; asked alone from now on");
                }
            }
        }
    }
}

/// The PIDs a service 01 or 02 request asks for.
fn pids_of(req: &Request) -> Vec<u8> {
    match req {
        Request::CurrentData { pids } => pids.clone(),
        Request::FreezeFrame { pids } => pids.iter().map(|&(p, _)| p).collect(),
        _ => Vec::new(),
    }
}

/// The pieces a request goes out as: the `alone` PIDs each on their own, the rest at most
/// `max` to a request (three for service 02 on CAN). Other services go out as they are.
fn split(req: &Request, max: usize, alone: &BTreeSet<u8>) -> Vec<Request> {
    match req {
        Request::CurrentData { pids } => pieces(pids, |&p| p, max, alone)
            .into_iter()
            .map(|pids| Request::CurrentData { pids })
            .collect(),
        Request::FreezeFrame { pids } => {
            pieces(pids, |&(p, _)| p, max.min(MAX_FREEZE_FRAME_PAIRS), alone)
                .into_iter()
                .map(|pids| Request::FreezeFrame { pids })
                .collect()
        }
        other => vec![other.clone()],
    }
}

/// `items` in groups of at most `max`, those whose PID is `alone` each in a group of its own,
/// after the others.
fn pieces<T: Copy>(
    items: &[T],
    pid: impl Fn(&T) -> u8,
    max: usize,
    alone: &BTreeSet<u8>,
) -> Vec<Vec<T>> {
    let (single, shared): (Vec<T>, Vec<T>) = items.iter().partition(|i| alone.contains(&pid(i)));
    shared
        .chunks(max.max(1))
        .map(<[T]>::to_vec)
        .chain(single.into_iter().map(|i| vec![i]))
        .collect()
}

/// Adds one piece's answer to the ECU's merged answer: PID lists and damage add up; data
/// wins over a refusal of another piece.
fn merge(merged: &mut BTreeMap<EcuId, EcuResponse>, answer: EcuResponse) {
    let Some(kept) = merged.get_mut(&answer.ecu) else {
        merged.insert(answer.ecu, answer);
        return;
    };
    kept.damaged.extend(answer.damaged);
    match (&mut kept.response, answer.response) {
        (Response::CurrentData(a), Response::CurrentData(b))
        | (Response::FreezeFrame(a), Response::FreezeFrame(b)) => a.extend(b),
        (Response::Negative(_), data @ (Response::CurrentData(_) | Response::FreezeFrame(_))) => {
            kept.response = data;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn current(pids: &[u8]) -> Request {
        Request::CurrentData {
            pids: pids.to_vec(),
        }
    }

    #[test]
    fn requests_are_split_to_what_the_link_and_the_ecu_take() {
        let none = BTreeSet::new();
        let six = [0x0C, 0x0D, 0x05, 0x0F, 0x11, 0x2F];
        // CAN: one request of six.
        assert_eq!(split(&current(&six), 6, &none), vec![current(&six)]);
        // An older bus: one PID a request.
        assert_eq!(
            split(&current(&six), 1, &none),
            six.iter().map(|&p| current(&[p])).collect::<Vec<_>>()
        );
        // A PID once damaged goes alone, after the others.
        let alone = BTreeSet::from([0x05]);
        assert_eq!(
            split(&current(&six), 6, &alone),
            vec![current(&[0x0C, 0x0D, 0x0F, 0x11, 0x2F]), current(&[0x05])]
        );
        // Freeze frames: three pairs at most, fewer where the bus takes fewer.
        let ff = Request::FreezeFrame {
            pids: vec![(2, 0), (0x0C, 0), (0x0D, 0), (0x05, 0)],
        };
        assert_eq!(split(&ff, 6, &none).len(), 2);
        assert_eq!(split(&ff, 1, &none).len(), 4);
        // Other services as they are.
        assert_eq!(
            split(&Request::StoredDtcs, 1, &alone),
            vec![Request::StoredDtcs]
        );
    }

    #[test]
    fn pieces_merge_into_one_answer_per_ecu() {
        use telltale_obd::CanId;
        use telltale_obd::nrc::{NegativeResponse, Nrc};
        let ecm = EcuId::Can(CanId::Standard(0x7E8));
        let part = |payload: &[u8], req: &Request| {
            let a = Response::parse_answer(req, payload).unwrap();
            EcuResponse {
                ecu: ecm,
                response: a.response,
                damaged: a.damaged,
            }
        };
        let mut merged = BTreeMap::new();
        let req = current(&[0x0D]);
        merge(
            &mut merged,
            EcuResponse {
                ecu: ecm,
                response: Response::Negative(NegativeResponse {
                    service: 1,
                    nrc: Nrc(0x31),
                }),
                damaged: vec![],
            },
        );
        merge(&mut merged, part(&[0x41, 0x0D, 0x3C], &req));
        merge(&mut merged, part(&[0x41, 0x05, 0x7B], &current(&[0x05])));
        merge(&mut merged, part(&[0x41, 0x0C, 0x1A], &current(&[0x0C])));
        let answer = &merged[&ecm];
        let Response::CurrentData(data) = &answer.response else {
            panic!("{answer:?}")
        };
        assert_eq!(data.iter().map(|d| d.pid).collect::<Vec<_>>(), [0x0D, 0x05]);
        assert_eq!(answer.damaged.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_spaces_requests() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(4.0);
        assert_eq!(b.take(t0), t0);
        assert_eq!(b.take(t0), t0 + Duration::from_millis(250));
        assert_eq!(b.take(t0), t0 + Duration::from_millis(500));
        // After a pause, no saved-up burst: one now, the next a full interval later.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.take(later), later);
        assert_eq!(b.take(later), later + Duration::from_millis(250));
        let mut free = TokenBucket::new(0.0);
        assert_eq!(free.take(t0), t0);
        assert_eq!(free.take(t0), t0);
    }
}
