//! Crash test for the spool: a child process appends with `FsyncPolicy::Always` and prints
//! each id `append` returned; the parent SIGKILLs it mid-stream, reopens the spool and checks
//! that every printed id is there with its payload intact, and that nothing corrupt comes out.
//!
//! The child is the `spool_writer` example (`examples/spool_writer.rs`), which cargo builds
//! beside the tests; both share the record layout in `tests/common/crash_payload.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use telltale_agent::spool::{Class, Spool};

#[path = "common/crash_payload.rs"]
mod crash_payload;

use crash_payload::{MARK, class_of, config, payload};

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

/// The writer example, built next to this test by `cargo test`/`cargo nextest` (examples are
/// compiled with the tests).
fn writer() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let Some(dir) = exe.parent().and_then(Path::parent) else {
        panic!("{} is not in a cargo target directory", exe.display());
    };
    let path = dir.join("examples").join("spool_writer");
    assert!(
        path.exists(),
        "{} missing: build it with `cargo build -p telltale-agent --example spool_writer`",
        path.display()
    );
    path
}

#[test]
fn killed_writer_loses_nothing_it_reported() {
    let dir = tempfile::tempdir().unwrap();
    let exe = writer();
    let mut printed: BTreeMap<u64, u64> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut max_id_before = 0u64;
    let mut torn_total = 0u64;
    for round in 0..6u64 {
        let mut child = Command::new(&exe)
            .arg(dir.path())
            .arg(next_seq.to_string())
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
