//! The vehicle task's one door to the car: every diagnostic request, scheduled or commanded,
//! goes through [`Link::request`], which waits for the rate ceiling, counts what was sent and
//! what went unanswered, and keeps the run of consecutive silences that says the car is asleep.
//!
//! The client's own helpers (`read_pids`, `discover`, ...) send several requests per call, so
//! the vehicle side builds its questions from single requests here instead: that way the
//! ceiling and the silence count see each one.

use telltale_can::client::{DiagClient, DiagError, EcuResponse, Target};
use telltale_obd::service::Request;
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
}

impl Link {
    pub(crate) fn new(client: DiagClient, rate: f64, state: watch::Sender<VehicleState>) -> Link {
        Link {
            client,
            bucket: TokenBucket::new(rate),
            state,
            silences: 0,
        }
    }

    pub(crate) fn state(&self) -> &watch::Sender<VehicleState> {
        &self.state
    }

    /// One request, after the rate ceiling allows it. Silence (nothing answered) is counted;
    /// any answer, even a refusal or a garbled one, ends a run of silences.
    pub(crate) async fn request(
        &mut self,
        target: Target,
        req: &Request,
    ) -> Result<Vec<EcuResponse>, DiagError> {
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
                tracing::warn!(%target, service = req.service(), cause = %e, "request failed");
            }
            Ok(_) => self.silences = 0,
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
