//! Daily telemetry partitions on plain PostgreSQL, and the retention cutoff.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// The name of the plain-PostgreSQL telemetry partition for a day.
pub(crate) fn partition_name(day: NaiveDate) -> String {
    format!("telemetry_p{}", day.format("%Y%m%d"))
}

/// The day a partition name stands for, if it is one of ours.
pub(crate) fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("telemetry_p")?;
    if digits.len() != 8 {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// Daily partitions to create and to drop at `now`: `ahead` days after today are made ahead,
/// and a day is dropped once all of it is older than the retention.
pub(crate) fn partition_plan(
    now: DateTime<Utc>,
    ahead: u32,
    retention_days: u32,
    existing: &[NaiveDate],
) -> (Vec<NaiveDate>, Vec<NaiveDate>) {
    let today = now.date_naive();
    let create = today
        .iter_days()
        .take(ahead as usize + 1)
        .filter(|d| !existing.contains(d))
        .collect();
    let cutoff = retention_cutoff(now, retention_days);
    let mut drop: Vec<NaiveDate> = existing
        .iter()
        .copied()
        .filter(|d| {
            d.succ_opt()
                .and_then(|n| n.and_hms_opt(0, 0, 0))
                .is_some_and(|end| end.and_utc() <= cutoff)
        })
        .collect();
    drop.sort();
    (create, drop)
}

/// The time before which telemetry is past retention.
pub(crate) fn retention_cutoff(now: DateTime<Utc>, retention_days: u32) -> DateTime<Utc> {
    now - TimeDelta::days(i64::from(retention_days))
}
