//! Percentiles and medians, the way every table here quotes them.

use serde::Serialize;

/// Latency percentiles of one measurement, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The nearest-rank percentile `p` (0 to 100) of sorted `v`.
fn rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let i = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[i.clamp(1, n) - 1]
}

/// Rounds to three decimals (microseconds, in milliseconds).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl Percentiles {
    /// From latencies in milliseconds, in any order.
    pub fn of(mut ms: Vec<f64>) -> Percentiles {
        ms.sort_by(f64::total_cmp);
        Percentiles {
            count: ms.len(),
            p50_ms: round3(rank(&ms, 50.0)),
            p90_ms: round3(rank(&ms, 90.0)),
            p99_ms: round3(rank(&ms, 99.0)),
            max_ms: round3(ms.last().copied().unwrap_or(0.0)),
        }
    }
}

/// The median of `v` (the mean of the middle two for an even count); `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `a / b` to two decimals, when both are there and `b` is not zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 100.0).round() / 100.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let p = Percentiles::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(
            (p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(vec![7.0]).p99_ms, 7.0);
        assert_eq!(Percentiles::of(Vec::new()).count, 0);
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
        assert_eq!(ratio(Some(1.0), Some(3.0)), Some(0.33));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }
}
