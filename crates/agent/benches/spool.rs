//! What fsync costs the spool: append, `next_to_send` and `ack` of 600-byte records (a
//! realistic telemetry batch), one message at a time, under each fsync policy and against the
//! naive way of spooling (one file per message: write, fsync the file and the directory,
//! unlink on ack).
//!
//! `cargo bench -p telltale-agent --bench spool`; `SPOOL_BENCH_N` (default 1000) sets the
//! messages per run, `SPOOL_BENCH_RUNS` (default 5) the runs, `SPOOL_BENCH_DIR` where the
//! files go (default the system temporary directory: make sure it is a real disk, not tmpfs).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use telltale_agent::spool::{Class, FsyncPolicy, Spool, SpoolConfig};

const PAYLOAD: usize = 600;
const TOPIC: &str = "telltale/v1/dongle-0001/telemetry";

#[derive(Clone, Copy)]
enum Mode {
    Spool(FsyncPolicy),
    Naive,
}

fn name(mode: Mode) -> &'static str {
    match mode {
        Mode::Spool(FsyncPolicy::Always) => "spool, Always",
        Mode::Spool(FsyncPolicy::Interval(_)) => "spool, Interval(100 ms)",
        Mode::Spool(FsyncPolicy::Never) => "spool, Never",
        Mode::Naive => "file per message",
    }
}

/// One run: per-message latencies and the wall time of the whole run.
fn run(mode: Mode, dir: &Path, n: usize) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let payload = vec![0xa5u8; PAYLOAD];
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    match mode {
        Mode::Spool(fsync) => {
            let mut spool = Spool::open(SpoolConfig {
                dir: dir.to_path_buf(),
                max_bytes: 64 << 20,
                fsync,
            })?;
            for _ in 0..n {
                let t = Instant::now();
                spool.append(Class::Telemetry, TOPIC, &payload)?;
                let Some(r) = spool.next_to_send()? else {
                    anyhow::bail!("appended record did not come back");
                };
                spool.ack(r.id)?;
                lat.push(t.elapsed());
            }
            spool.sync()?;
        }
        Mode::Naive => {
            let dir_handle = File::open(dir)?;
            for i in 0..n {
                let t = Instant::now();
                let path = dir.join(format!("{i:020}.msg"));
                let mut f = File::create(&path)?;
                f.write_all(TOPIC.as_bytes())?;
                f.write_all(&payload)?;
                f.sync_all()?;
                dir_handle.sync_all()?;
                let back = fs::read(&path)?;
                anyhow::ensure!(back.len() == TOPIC.len() + PAYLOAD, "short read");
                fs::remove_file(&path)?;
                lat.push(t.elapsed());
            }
        }
    }
    Ok((lat, start.elapsed()))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let n = env_usize("SPOOL_BENCH_N", 1000);
    let runs = env_usize("SPOOL_BENCH_RUNS", 5);
    let base = std::env::var_os("SPOOL_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let modes = [
        Mode::Spool(FsyncPolicy::Always),
        Mode::Spool(FsyncPolicy::Interval(Duration::from_millis(100))),
        Mode::Spool(FsyncPolicy::Never),
        Mode::Naive,
    ];
    println!(
        "{n} messages of {PAYLOAD} bytes per run, {runs} runs, in {}",
        base.display()
    );
    let mut rows = Vec::new();
    for mode in modes {
        let mut medians = Vec::new();
        let mut rates = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir_in(&base)?;
            let (mut lat, total) = run(mode, dir.path(), n)?;
            medians.push(median(&mut lat));
            rates.push(n as f64 / total.as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        let rate = rates.get(rates.len() / 2).copied().unwrap_or_default();
        rows.push((name(mode), median(&mut medians), rate));
    }
    let never = rows.get(2).map_or(1.0, |r| r.1.as_secs_f64());
    let always = rows.first().map_or(1.0, |r| r.1.as_secs_f64());
    println!();
    println!(
        "| {:<24} | {:>18} | {:>11} | {:>10} | {:>10} |",
        "policy", "median per message", "messages/s", "vs Never", "vs Always"
    );
    println!(
        "|{:-<26}|{:->20}|{:->13}|{:->12}|{:->12}|",
        "", "", "", "", ""
    );
    for (name, lat, rate) in rows {
        let s = lat.as_secs_f64();
        println!(
            "| {name:<24} | {:>15.1} µs | {rate:>11.0} | {:>9.1}x | {:>9.2}x |",
            s * 1e6,
            s / never,
            s / always
        );
    }
    Ok(())
}
