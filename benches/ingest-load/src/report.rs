//! The benchmark's report as people read it: one line per part and round, the medians, the
//! ratios against the goals, and the machine's load. (`--json` writes the same
//! [`Report`] in full.)

use crate::bench::{LiveResult, Report};
use crate::proc::CpuUse;

/// The human-readable report.
pub fn render(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fleet: {} vehicles x {} samples per batch, a batch every {} s per vehicle ({:.0} samples/s offered), {} batches each = {} samples; {} MQTT connections; ingest batch {} messages, {} writers, MQTT {}; {} cores",
        r.vehicles,
        r.samples_per_batch,
        r.interval_seconds,
        r.offered_samples_per_second,
        r.batches_per_vehicle,
        r.samples,
        r.connections,
        r.ingest_batch_max_messages,
        r.ingest_writers,
        r.ingest_protocol,
        r.cores
    );
    for (i, round) in r.rounds.iter().enumerate() {
        let _ = writeln!(s, "round {}:", i + 1);
        if let Some(x) = &round.ingest {
            let _ = writeln!(s, "  (a) telltale-ingest: {}", live_line(x));
        }
        if let Some(x) = &round.copy {
            let _ = writeln!(
                s,
                "  (b) COPY ceiling:    {:>9.0} rows/s ({} rows in {:.2} s); CPU {}",
                x.rows_per_second,
                x.rows,
                x.seconds,
                cpu_line(&x.cpu)
            );
        }
        if let Some(x) = &round.timescale_ingest {
            let _ = writeln!(s, "  (a) ... TimescaleDB: {}", live_line(x));
        }
        if let Some(x) = &round.timescale_copy {
            let _ = writeln!(
                s,
                "  (b) ... TimescaleDB: {:>9.0} rows/s ({} rows in {:.2} s); CPU {}",
                x.rows_per_second,
                x.rows,
                x.seconds,
                cpu_line(&x.cpu)
            );
        }
        if let Some(x) = &round.ingest_one_writer {
            let _ = writeln!(s, "  (e) one writer:      {}", live_line(x));
        }
        if let Some(x) = &round.naive {
            let _ = writeln!(s, "  (c) naive:           {}", live_line(x));
        }
        if let Some(x) = &round.store {
            let _ = writeln!(
                s,
                "  (d) store, batches of {} messages x {} samples, one transaction each: Store::ingest {:.0} rows/s ({:.1} ms/batch), telemetry by UNNEST {:.0} rows/s ({:.1} ms), by binary COPY {:.0} rows/s ({:.1} ms)",
                x.batch_messages,
                x.samples_per_batch,
                x.store.rows_per_second,
                x.store.median_batch_ms,
                x.unnest.rows_per_second,
                x.unnest.median_batch_ms,
                x.copy.rows_per_second,
                x.copy.median_batch_ms
            );
        }
    }
    let m = &r.summary;
    let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    let _ = writeln!(s, "medians over {} rounds:", r.rounds.len());
    let _ = writeln!(
        s,
        "  (a) telltale-ingest {} samples/s (lag {} s) | (b) COPY {} rows/s | (c) naive {} samples/s",
        f(m.ingest_samples_per_second),
        m.ingest_lag_seconds
            .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
        f(m.copy_rows_per_second),
        f(m.naive_samples_per_second)
    );
    if m.timescale_ingest_samples_per_second.is_some() || m.timescale_copy_rows_per_second.is_some()
    {
        let _ = writeln!(
            s,
            "  TimescaleDB: (a) telltale-ingest {} samples/s (lag {} s) | (b) COPY {} rows/s",
            f(m.timescale_ingest_samples_per_second),
            m.timescale_ingest_lag_seconds
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            f(m.timescale_copy_rows_per_second)
        );
    }
    if m.ingest_one_writer_samples_per_second.is_some() {
        let _ = writeln!(
            s,
            "  (e) telltale-ingest with one writer {} samples/s",
            f(m.ingest_one_writer_samples_per_second)
        );
    }
    if m.store_unnest_rows_per_second.is_some() {
        let _ = writeln!(
            s,
            "  (d) store batches: Store::ingest {} rows/s, UNNEST {} rows/s, COPY {} rows/s",
            f(m.store_ingest_rows_per_second),
            f(m.store_unnest_rows_per_second),
            f(m.store_copy_rows_per_second)
        );
    }
    let goal = |v: Option<f64>, want: f64| match v {
        Some(v) if v >= want => format!("{v:.2} (goal >= {want}: met)"),
        Some(v) => format!("{v:.2} (goal >= {want}: NOT met)"),
        None => "-".into(),
    };
    let _ = writeln!(
        s,
        "  (a)/(b) = {}; (a)/(c) = {}; (a)/(e) = {}; TimescaleDB (a)/(b) = {}",
        goal(m.ingest_over_copy, 0.8),
        goal(m.ingest_over_naive, 10.0),
        m.ingest_over_one_writer
            .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
        goal(m.timescale_ingest_over_copy, 0.8)
    );
    let la = |v: Option<[f64; 3]>| {
        v.map_or_else(
            || "-".into(),
            |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]),
        )
    };
    let _ = writeln!(
        s,
        "load average before {} / after {}",
        la(r.loadavg_before),
        la(r.loadavg_after)
    );
    s
}

fn cpu_line(c: &CpuUse) -> String {
    let procs: Vec<String> = c
        .process_pct
        .iter()
        .map(|(k, v)| format!("{k} {v:.0}%"))
        .collect();
    format!(
        "machine {}% busy; {} (% of one core)",
        c.machine_busy_pct
            .map_or_else(|| "?".into(), |v| format!("{v:.0}")),
        procs.join(", ")
    )
}

fn live_line(x: &LiveResult) -> String {
    let lat = x.latency.as_ref().map_or_else(
        || "-".into(),
        |l| format!("{:.0}/{:.0}/{:.0} ms", l.p50_ms, l.p99_ms, l.max_ms),
    );
    let counters = x.ingest_metrics.as_ref().map_or_else(String::new, |m| {
        format!(
            "; {} batches of {:.0} messages on average, {:.2} s writing to the store",
            m.batches, m.mean_batch_messages, m.batch_write_seconds
        )
    });
    let active = if x.complete {
        String::new()
    } else {
        format!(
            " ({:.0} samples/s over the {:.1} s it made progress)",
            x.active_samples_per_second, x.active_seconds
        )
    };
    let minutes = if x.latency_by_minute.len() > 2 {
        let rows: Vec<String> = x
            .latency_by_minute
            .iter()
            .map(|m| {
                format!(
                    "{}: {} msgs {:.0}/{:.0}/{:.0} ms",
                    m.minute, m.messages, m.p50_ms, m.p99_ms, m.max_ms
                )
            })
            .collect();
        format!(
            "\n      receive latency p50/p99/max by minute: {}",
            rows.join("; ")
        )
    } else {
        String::new()
    };
    let memory = if x.memory_kib.len() > 2 {
        let mib: Vec<String> = x
            .memory_kib
            .iter()
            .map(|[t, k]| format!("{t} s {:.0}", *k as f64 / 1024.0))
            .collect();
        format!("\n      resident memory, MiB: {}", mib.join(", "))
    } else {
        String::new()
    };
    format!(
        "{:>9.0} samples/s, {} of {} samples in {:.2} s{}{active}, lag {}, receive latency p50/p99/max {}, published at {:.0}/s; exact: {}; CPU {}{counters}{minutes}{memory}",
        x.samples_per_second,
        x.committed_samples,
        x.published.samples,
        x.seconds,
        match (x.complete, x.stalled) {
            (true, _) => "",
            (false, true) => " (STALLED: nothing committed for the stall timeout)",
            (false, false) => " (INCOMPLETE)",
        },
        x.lag_seconds
            .map_or_else(|| "-".into(), |l| format!("{l:.2} s")),
        lat,
        x.published.achieved_samples_per_second,
        x.exact,
        cpu_line(&x.cpu)
    )
}
