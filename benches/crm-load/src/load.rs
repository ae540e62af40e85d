//! The closed-loop load driver: `workers` tasks, each sending its next request as soon as the
//! previous one answered, for a fixed time. Requests that finish in the warm-up are not
//! counted; the rate is the requests that finished in the measured window over its length.
//! Every answer is checked by the operation itself (an `Err` is counted as an error, and the
//! first one kept to say what went wrong), so a fast wrong answer never counts as a request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::stats::Percentiles;

/// How hard and how long.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Concurrent requests in flight (tasks).
    pub workers: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What one operation did under load.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Outcome {
    /// Answered and checked, in the measured window.
    pub requests: u64,
    pub errors: u64,
    /// The first error's text, if any.
    pub first_error: Option<String>,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Percentiles,
}

/// Runs `op(worker, n)` (n counts every request of this run from 0, across workers) on
/// `shape.workers` tasks; `op` checks the answer and says what was wrong with it.
pub async fn run<F, Fut>(shape: Shape, op: F) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let from = start + shape.warmup;
    let until = from + shape.measure;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..shape.workers.max(1) {
        let (op, counter) = (op.clone(), counter.clone());
        tasks.spawn(async move {
            let mut ms = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let result = op(worker, n).await;
                let t1 = Instant::now();
                if t1 < from || t1 > until {
                    continue;
                }
                match result {
                    Ok(()) => ms.push((t1 - t0).as_secs_f64() * 1e3),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (ms, errors, first_error)
        });
    }
    let mut all = Vec::new();
    let mut outcome = Outcome::default();
    while let Some(done) = tasks.join_next().await {
        let Ok((ms, errors, first)) = done else {
            outcome.errors += 1;
            outcome
                .first_error
                .get_or_insert_with(|| "a load task panicked".into());
            continue;
        };
        all.extend(ms);
        outcome.errors += errors;
        if outcome.first_error.is_none() {
            outcome.first_error = first;
        }
    }
    outcome.requests = all.len() as u64;
    outcome.seconds = shape.measure.as_secs_f64();
    outcome.per_second = (outcome.requests as f64 / outcome.seconds.max(1e-9)).round();
    outcome.latency = Percentiles::of(all);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_only_the_window_and_keeps_the_first_error() {
        let shape = Shape {
            workers: 2,
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(200),
        };
        let out = run(shape, |_, n| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if n == 20 {
                Err(format!("wrong answer to {n}"))
            } else {
                Ok(())
            }
        })
        .await;
        // Two workers at ~10 ms for 200 ms: about 40 requests, none from the warm-up.
        assert!((20..=45).contains(&out.requests), "{out:?}");
        assert!(out.latency.p50_ms >= 10.0, "{out:?}");
        assert!(out.errors <= 1);
        if out.errors == 1 {
            assert_eq!(out.first_error.as_deref(), Some("wrong answer to 20"));
        }
    }
}
