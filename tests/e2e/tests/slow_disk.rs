//! The agent on a slow disk: every fsync takes 200 ms (an SD card under load), made so at the
//! system-call boundary by a preloaded shim (`tests/e2e/c/slow_fsync.c`) the agent knows
//! nothing of. Spool writes, acknowledgements and a scraper reading `/status` all meet that
//! disk; none of it may stall the runtime that times the CAN requests, so sampling keeps its
//! period.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use telltale_e2e::mqtt::{Broker, Collector};
use telltale_e2e::rig::{AgentRig, http_get, simulator};
use telltale_wire::v1;

const FSYNC_MS: u64 = 200;
const PERIOD_MS: i64 = 100;

/// Builds the shim with the machine's C compiler.
fn slow_fsync_library(dir: &Path) -> PathBuf {
    let source = telltale_e2e::rig::repo().join("tests/e2e/c/slow_fsync.c");
    let lib = dir.join("libslow_fsync.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&source)
        .arg("-ldl")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run cc (install a C compiler: apt-get install gcc): {e}")
        });
    assert!(
        out.status.success(),
        "cc could not build {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// How long one fsync takes with the shim preloaded, measured in another program (Python's
/// `os.fsync` calls the C library's `fsync`, as the agent's `File::sync_data` calls
/// `fdatasync`): proof that the disk the agent gets is really slow.
fn fsync_time_with(lib: &Path, dir: &Path) -> Duration {
    let probe = "import os,sys,time\nf=open(sys.argv[1],'w');f.write('x');f.flush()\nt=time.monotonic();os.fsync(f.fileno());os.fdatasync(f.fileno())\nprint(time.monotonic()-t)";
    let out = Command::new("python3")
        .args(["-c", probe])
        .arg(dir.join("probe"))
        .env("LD_PRELOAD", lib)
        .env("SLOW_FSYNC_MS", FSYNC_MS.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 for the fsync probe: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "the fsync probe printed {text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Duration::from_secs_f64(secs / 2.0)
}

#[test]
fn sampling_keeps_its_period_on_a_disk_whose_fsync_takes_200_ms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = slow_fsync_library(dir.path());
    let one = fsync_time_with(&lib, dir.path());
    assert!(
        one >= Duration::from_millis(FSYNC_MS * 9 / 10),
        "the shim does not slow fsync down: {one:?}"
    );
    let broker = Broker::start();
    let watch = Collector::start(broker.port, "watch-slow", "telltale/v1/+/telemetry");
    let (_sim, link) = simulator(dir.path(), "healthy", "40");
    let rig = AgentRig::new(
        dir.path(),
        "slow-disk",
        &link,
        &broker.url(),
        r#"
[spool]
fsync = "always"
[obd]
batch_max_samples = 100
batch_max_age = "300ms"
# DTC polls pause sampling for their own requests (a vehicle-side matter, not the disk's):
# one at the start, none during the measurement.
[dtc]
period = "60s"
[[signals]]
pid = 0x0C
period = "100ms"
"#,
    );
    let lib = lib.to_str().expect("a UTF-8 path");
    let _agent = rig.start_with_env(&[
        ("LD_PRELOAD", lib),
        ("SLOW_FSYNC_MS", &FSYNC_MS.to_string()),
    ]);

    // A scraper reads /status ten times a second meanwhile, as monitoring would.
    let until = Instant::now() + Duration::from_secs(8);
    let mut scrapes = 0;
    while Instant::now() < until {
        if http_get(rig.status_port, "/status").is_ok() {
            scrapes += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        scrapes > 40,
        "the status endpoint answered {scrapes} times in 8 s"
    );

    let times = watch.wait_for("8 s of rpm samples", Duration::from_secs(20), |msgs| {
        let mut t: Vec<i64> = msgs
            .iter()
            .filter_map(|r| v1::TelemetryBatch::decode(r.payload.as_slice()).ok())
            .flat_map(|b| b.samples)
            .filter(|s| s.pid == 0x0C)
            .map(|s| s.device_unix_ms)
            .collect();
        t.sort_unstable();
        (t.len() >= 60).then_some(t)
    });
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let p50 = gaps[gaps.len() / 2];
    let p95 = gaps[gaps.len() * 95 / 100];
    let max = gaps[gaps.len() - 1];
    println!(
        "rpm sample intervals over {} samples: p50 {p50} ms, p95 {p95} ms, max {max} ms",
        times.len()
    );
    assert!(
        p50 <= PERIOD_MS + 20,
        "p50 interval {p50} ms for a {PERIOD_MS} ms period"
    );
    let fsync = i64::try_from(FSYNC_MS).unwrap_or(i64::MAX);
    assert!(
        p95 < PERIOD_MS + fsync / 2 && max < PERIOD_MS + fsync,
        "p95 {p95} ms, max {max} ms: sampling stalls behind the disk (intervals {gaps:?})"
    );
}
