//! Both benchmarks at smoke size against the real services (PostgreSQL at
//! `TELLTALE_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`; a Mosquitto
//! the harness starts) and the binaries built beside this test. They assert what must hold
//! whatever the machine's speed: every call answered correctly, every scripted fault one lead
//! on the watch stream, the stages in causal order. Never a rate or a latency.

use std::process::Command;

use telltale_e2e::binary;

fn pg_url() -> String {
    std::env::var("TELLTALE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn run(args: &[&str], json: &std::path::Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_telltale-crm-load"))
        .args(args)
        .arg("--pg-url")
        .arg(pg_url())
        .arg("--json")
        .arg(json)
        .arg("--crm-bin")
        .arg(binary("telltale-crm"))
        .output()
        .expect("run telltale-crm-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "telltale-crm-load {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("| backend |") || stdout.contains("| setting |"),
        "a table:\n{stdout}"
    );
    serde_json::from_slice(&std::fs::read(json).expect("the JSON report")).expect("JSON")
}

#[test]
fn api_smoke_every_call_answers_correctly_on_both_backends() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = run(
        &[
            "api",
            "--rounds",
            "1",
            "--seconds",
            "0.5",
            "--warmup",
            "0.2",
            "--seed",
            "120",
            "--workers",
            "4",
            "--connections",
            "2",
        ],
        &dir.path().join("api.json"),
    );
    let measurements = report["measurements"].as_array().expect("measurements");
    assert_eq!(measurements.len(), 2 * 6, "six calls on two backends");
    for m in measurements {
        let o = &m["outcome"];
        assert_eq!(o["errors"], 0, "{m}");
        assert!(o["requests"].as_u64().unwrap_or(0) > 0, "{m}");
        let p = &o["latency"];
        assert!(p["p50_ms"].as_f64() <= p["p99_ms"].as_f64(), "{m}");
        assert!(p["p99_ms"].as_f64() <= p["max_ms"].as_f64(), "{m}");
    }
    for row in report["rows"].as_array().expect("rows") {
        if row["call"] == "get-quote" {
            assert!(
                row["over_health"].as_f64().is_some() && row["over_db"].as_f64().is_some(),
                "{row}"
            );
        }
    }
}

#[test]
fn fault_smoke_every_fault_becomes_one_lead_in_causal_order() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = run(
        &[
            "fault",
            "--rounds",
            "1",
            "--vehicles",
            "2",
            "--faults",
            "3",
            "--time-scale",
            "120",
            "--variants",
            "tuned",
        ],
        &dir.path().join("fault.json"),
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "the chain and the CRM alone");
    for run in runs {
        assert_eq!(run["expected"], 6, "{run}");
        assert_eq!(run["watched"], 6, "every fault one lead: {run}");
        assert_eq!(run["unexpected"], 0, "{run}");
    }
    let chain = &runs[0];
    for f in chain["faults"].as_array().expect("faults") {
        let t = |k: &str| f[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {f}"));
        let (bus, report, received, answered, watched) = (
            t("bus_ms"),
            t("report_ms"),
            t("received_ms"),
            t("answered_ms"),
            t("watched_ms"),
        );
        // One machine, one clock: each stage happens after the one that causes it (the
        // device's time is whole milliseconds, so it may read up to 1 ms early).
        assert!(bus <= report + 1.0, "the report follows the fault: {f}");
        assert!(
            report <= received + 1.0,
            "the ingest receives the report after it: {f}"
        );
        assert!(received <= answered && received <= watched, "{f}");
    }
}
