//! What the machine is doing, from `/proc`: load average, whole-machine CPU use, and the CPU
//! time of the processes under test (the broker, the ingester, PostgreSQL's backends, this
//! process), so each measurement says where the two cores went. Linux only; elsewhere the
//! figures are simply absent.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local address")?.port())
}

/// A process's resident memory (`VmRSS`), in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|w| w.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ): 100 on every Linux this runs on;
/// `getconf` confirms it where present.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User plus system ticks of one process.
fn process_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Ticks of every process whose name is `postgres` (the postmaster, its helpers, and every
/// backend alive now; a backend that ended in between takes its time with it).
fn postgres_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == "postgres")
        })
        .filter_map(process_ticks)
        .sum()
}

/// Busy and total ticks of the whole machine (`/proc/stat`'s first line).
fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// A labelled set of processes to watch.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    pub procs: Vec<(String, u32)>,
    pub postgres: bool,
}

/// CPU counters at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    machine: Option<(u64, u64)>,
    procs: BTreeMap<String, u64>,
}

/// CPU use between two snapshots.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CpuUse {
    /// Whole machine, percent of all cores (100 = every core busy).
    pub machine_busy_pct: Option<f64>,
    /// Per watched process: percent of one core.
    pub process_pct: BTreeMap<String, f64>,
    pub loadavg: Option<[f64; 3]>,
}

impl Watched {
    pub fn snapshot(&self) -> Snapshot {
        let mut procs = BTreeMap::new();
        for (label, pid) in &self.procs {
            if let Some(t) = process_ticks(*pid) {
                procs.insert(label.clone(), t);
            }
        }
        if self.postgres {
            procs.insert("postgres".into(), postgres_ticks());
        }
        Snapshot {
            at: Instant::now(),
            machine: machine_ticks(),
            procs,
        }
    }
}

impl Snapshot {
    /// What was used from `self` until `later`.
    pub fn until(&self, later: &Snapshot) -> CpuUse {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-6);
        let hz = ticks_per_second();
        let machine_busy_pct = match (self.machine, later.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some(100.0 * (b1.saturating_sub(b0)) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        let process_pct = later
            .procs
            .iter()
            .map(|(k, t1)| {
                let t0 = self.procs.get(k).copied().unwrap_or(0);
                let pct = 100.0 * t1.saturating_sub(t0) as f64 / hz / secs;
                (k.clone(), (pct * 10.0).round() / 10.0)
            })
            .collect();
        CpuUse {
            machine_busy_pct: machine_busy_pct.map(|p| (p * 10.0).round() / 10.0),
            process_pct,
            loadavg: loadavg(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_seen() {
        let w = Watched {
            procs: vec![("self".into(), std::process::id())],
            postgres: false,
        };
        let a = w.snapshot();
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let u = a.until(&w.snapshot());
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(u.process_pct.contains_key("self"), "{u:?}");
            assert!(u.machine_busy_pct.is_some());
        }
    }
}
