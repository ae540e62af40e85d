//! The tables both benchmarks print (Markdown, so they paste into the README as they are).

use std::fmt::Write as _;

use crate::api::{self, Backend, Call};
use crate::fault;
use crate::stats::Percentiles;

fn la(v: Option<[f64; 3]>) -> String {
    v.map_or_else(
        || "-".into(),
        |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]),
    )
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "".into(), |v| format!("{v:.2}"))
}

/// The CRM API table, with the goal's verdict.
pub fn api(r: &api::Report) -> String {
    let mut s = String::new();
    let rounds = r.rows.first().map_or(0, |x| x.per_round.len());
    let _ = writeln!(
        s,
        "CRM gRPC API: medians of {rounds} rounds; {} connections, {} requests in flight, {:.0} s per call; server pool {} (PostgreSQL); {} seeded leads; {} cores; load average before {} / after {}\n",
        r.connections,
        r.workers,
        r.seconds,
        r.crm_connections,
        r.seed,
        r.cores,
        la(r.loadavg_before),
        la(r.loadavg_after)
    );
    let _ = writeln!(
        s,
        "| backend | call | req/s | per round | p50 / p90 / p99 / max ms | / health | / DB | CPU, % of one core |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for row in &r.rows {
        let cpu: Vec<String> = row.cpu.iter().map(|(k, v)| format!("{k} {v:.0}")).collect();
        let per_round: Vec<String> = row.per_round.iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(
            s,
            "| {:?} | {}{} | {:.0} | {} | {:.2} / {:.2} / {:.2} / {:.1} | {} | {} | {} |",
            row.backend,
            row.call.label(),
            if row.errors > 0 {
                format!(
                    " ({} ERRORS: {})",
                    row.errors,
                    row.first_error.as_deref().unwrap_or("")
                )
            } else {
                String::new()
            },
            row.per_second,
            per_round.join(" · "),
            row.p50_ms,
            row.p90_ms,
            row.p99_ms,
            row.max_ms,
            opt(row.over_health),
            opt(row.over_db),
            cpu.join(", ")
        );
    }
    s.push('\n');
    for backend in [Backend::Postgres, Backend::Sqlite] {
        if let Some(row) = r.row(backend, Call::GetQuote) {
            let verdict = if row.per_second >= 10_000.0 {
                "met"
            } else {
                "NOT met"
            };
            let _ = writeln!(
                s,
                "GetQuote on {backend:?}: {:.0}/s (goal >= 10,000/s on 2 cores: {verdict})",
                row.per_second
            );
        }
    }
    s
}

fn pct(p: &Percentiles) -> String {
    if p.count == 0 {
        return "-".into();
    }
    format!("{:.0} / {:.0}", p.p50_ms, p.p99_ms)
}

fn full(p: &Percentiles) -> String {
    if p.count == 0 {
        return "-".into();
    }
    format!(
        "{:.0} / {:.0} / {:.0} / {:.0}",
        p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
    )
}

/// The fault-to-screen table, with the goal's verdict.
pub fn fault(r: &fault::Report) -> String {
    let mut s = String::new();
    let rounds = r.runs.iter().map(|x| x.round).max().unwrap_or(0);
    let _ = writeln!(
        s,
        "Fault on the simulated bus -> lead on WatchLeads: {} cars x {} faults, {rounds} rounds, percentiles over every fault of a setting; agent DTC poll period {}; simulator at {}x; {}; load average before {} / after {}\n",
        r.vehicles,
        r.faults_per_vehicle,
        r.dtc_period,
        r.time_scale,
        r.database,
        la(r.loadavg_before),
        la(r.loadavg_after)
    );
    for v in &r.variants {
        let _ = writeln!(
            s,
            "- {}: ingest batch.max_age {}, leads.poll_interval {}",
            v.name, v.batch_max_age, v.poll_interval
        );
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "| setting | leads | bus -> report p50 / p99 | report -> ingest received | received -> CRM answered | answered -> watched | **report -> watched** p50 / p90 / p99 / max | **bus -> watched** p50 / p90 / p99 / max |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for row in &r.rows {
        let st = &row.stages;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.variant,
            row.faults,
            pct(&st.bus_to_report),
            pct(&st.report_to_received),
            pct(&st.received_to_answered),
            pct(&st.answered_to_watched),
            full(&st.report_to_watched),
            full(&st.bus_to_watched)
        );
    }
    s.push_str("\n(ms; for `direct` the bench calls CreateLead itself: report = the call, answered = its answer)\n\n");
    for row in &r.rows {
        if row.variant == "direct" {
            continue;
        }
        let p = |x: &Percentiles| {
            let v = if x.p99_ms < 250.0 { "met" } else { "NOT met" };
            format!("{:.0} ms ({v})", x.p99_ms)
        };
        let _ = writeln!(
            s,
            "{}: p99 after the car reported {}, p99 from the bus {} (goal p99 < 250 ms)",
            row.variant,
            p(&row.stages.report_to_watched),
            p(&row.stages.bus_to_watched)
        );
    }
    let bad: Vec<String> = r
        .runs
        .iter()
        .filter(|x| !x.exact())
        .map(|x| {
            format!(
                "round {} {}: {}/{} watched, {} unexpected",
                x.round, x.variant, x.watched, x.expected, x.unexpected
            )
        })
        .collect();
    if !bad.is_empty() {
        let _ = writeln!(s, "NOT EXACT: {}", bad.join("; "));
    }
    s
}
