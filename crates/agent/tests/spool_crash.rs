//! Crash test for the spool: a child process appends with `FsyncPolicy::Always` and prints
//! each id `append` returned; the parent SIGKILLs it mid-stream, reopens the spool and checks
//! that every printed id is there with its payload intact, and that nothing corrupt comes out.
//!
//! The child is this test binary again, run with an environment variable that turns
//! [`crash_child`] from a no-op into the writer loop: cargo builds no binary for an example
//! that an integration test could find by `CARGO_BIN_EXE_*`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use telltale_agent::spool::{Class, FsyncPolicy, Spool, SpoolConfig};

const CHILD_DIR: &str = "TELLTALE_SPOOL_CRASH_DIR";
const CHILD_SEQ: &str = "TELLTALE_SPOOL_CRASH_SEQ";
const MARK: &str = "SPOOLID ";

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 256 << 20,
        fsync: FsyncPolicy::Always,
    }
}

/// A payload that carries its sequence number and a pattern derived from it, 58 to ~1.5k bytes.
fn payload(seq: u64) -> Vec<u8> {
    let len = 50 + (seq * 37 % 1500) as usize;
    let mut p = seq.to_le_bytes().to_vec();
    p.extend((0..len).map(|i| (seq as usize * 13 + i) as u8));
    p
}

fn class_of(seq: u64) -> Class {
    if seq.is_multiple_of(5) {
        Class::Dtc
    } else {
        Class::Telemetry
    }
}

/// The sequence number a payload claims, if the rest of it agrees.
fn seq_of(p: &[u8]) -> Option<u64> {
    let seq = u64::from_le_bytes(p.get(..8)?.try_into().ok()?);
    (payload(seq) == p).then_some(seq)
}

fn parse(line: &str) -> Option<(u64, u64)> {
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let mut it = rest.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Child mode only: append until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let start: u64 = std::env::var(CHILD_SEQ).unwrap().parse().unwrap();
    let mut spool = Spool::open(config(Path::new(&dir))).unwrap();
    for seq in start.. {
        let id = spool
            .append(class_of(seq), &format!("crash/{seq}"), &payload(seq))
            .unwrap();
        println!("{MARK}{} {seq}", id.0);
    }
}

#[test]
fn killed_writer_loses_nothing_it_reported() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut printed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut max_id_before = 0u64;
    let mut torn_total = 0u64;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_SEQ, next_seq.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let want = 10 + round * 23;
        let mut seen = 0;
        while seen < want {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some((id, seq)) = parse(&line) {
                printed.insert(id, seq);
                seen += 1;
            }
        }
        child.kill().unwrap();
        // What it printed before dying is still in the pipe: all of it must be on disk.
        for line in lines {
            if let Some((id, seq)) = parse(&line.unwrap()) {
                printed.insert(id, seq);
            }
        }
        child.wait().unwrap();

        let mut spool = Spool::open(config(dir.path())).unwrap();
        torn_total += spool.stats().recovered_torn_bytes;
        assert_eq!(spool.stats().recovered_corrupt_bytes, 0, "round {round}");
        let mut found: BTreeMap<u64, u64> = BTreeMap::new();
        let mut last: Option<(Class, u64)> = None;
        while let Some(r) = spool.next_to_send().unwrap() {
            let seq = seq_of(&r.payload).unwrap_or_else(|| panic!("record {} is corrupt", r.id.0));
            assert_eq!(r.topic, format!("crash/{seq}"));
            assert_eq!(r.class, class_of(seq));
            if let Some((c, id)) = last {
                assert!(
                    c > r.class || (c == r.class && id < r.id.0),
                    "order: {id} then {}",
                    r.id.0
                );
            }
            last = Some((r.class, r.id.0));
            found.insert(r.id.0, seq);
        }
        for (id, seq) in &printed {
            assert_eq!(
                found.get(id),
                Some(seq),
                "round {round}: printed id {id} (seq {seq}) missing"
            );
        }
        let new_ids: Vec<u64> = printed
            .keys()
            .copied()
            .filter(|&id| id > max_id_before)
            .collect();
        assert!(!new_ids.is_empty());
        assert!(
            found
                .iter()
                .filter(|(_, s)| **s >= next_seq)
                .all(|(id, _)| *id > max_id_before),
            "ids went backwards after a restart"
        );
        max_id_before = *found.keys().max().unwrap();
        next_seq = found.values().max().unwrap() + 1;
    }
    eprintln!(
        "{} ids printed and recovered over 6 kills; {torn_total} torn bytes cut",
        printed.len()
    );
}
