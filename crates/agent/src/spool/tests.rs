//! Unit tests of the spool against a real directory.

use std::path::Path;

use super::*;

fn config(dir: &Path, max_bytes: u64, fsync: FsyncPolicy) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        fsync,
    }
}

fn open(dir: &Path, max_bytes: u64, segment: u64) -> Result<Spool, SpoolError> {
    Spool::open_tuned(config(dir, max_bytes, FsyncPolicy::Never), segment)
}

/// Takes everything waiting, in the order the spool gives it.
fn drain(s: &mut Spool) -> Result<Vec<Record>, SpoolError> {
    let mut out = Vec::new();
    while let Some(r) = s.next_to_send()? {
        out.push(r);
    }
    Ok(out)
}

fn ids(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.id.0).collect()
}

fn seg_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// A payload that says which message it is.
fn payload(n: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n as usize * 31 + i) as u8).collect()
}

/// Frame size of a record with topic "t" and a `len`-byte payload.
const fn framed(len: u64) -> u64 {
    24 + 1 + len
}

#[test]
fn sends_highest_class_first_then_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    let order = [
        Class::Telemetry,
        Class::Dtc,
        Class::Telemetry,
        Class::Info,
        Class::CmdResult,
        Class::Dtc,
    ];
    for (n, c) in order.iter().enumerate() {
        let id = s
            .append(*c, &format!("topic/{n}"), &payload(n as u64, 10))
            .unwrap();
        assert_eq!(id, RecordId(n as u64 + 1));
    }
    let got = drain(&mut s).unwrap();
    assert_eq!(ids(&got), [2, 6, 5, 4, 1, 3]);
    assert_eq!(got[0].class, Class::Dtc);
    assert_eq!(got[0].topic, "topic/1");
    assert_eq!(got[0].payload, payload(1, 10));
    assert_eq!(s.stats().in_flight, 6);
}

#[test]
fn ack_removes_and_unknown_acks_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    for n in 0..3 {
        s.append(Class::Telemetry, "t", &payload(n, 50)).unwrap();
    }
    let first = s.next_to_send().unwrap().unwrap();
    s.ack(first.id).unwrap();
    s.ack(first.id).unwrap();
    s.ack(RecordId(999)).unwrap();
    let st = s.stats();
    assert_eq!(
        (st.messages, st.in_flight, st.bytes),
        (2, 0, 2 * framed(50))
    );
    drop(s);
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    assert_eq!(ids(&drain(&mut s).unwrap()), [2, 3]);
}

#[test]
fn requeue_makes_in_flight_records_next_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    for n in 0..3 {
        s.append(Class::Telemetry, "t", &payload(n, 5)).unwrap();
    }
    assert_eq!(s.next_to_send().unwrap().unwrap().id, RecordId(1));
    assert_eq!(s.next_to_send().unwrap().unwrap().id, RecordId(2));
    assert_eq!(s.stats().in_flight, 2);
    s.requeue_in_flight();
    assert_eq!(s.stats().in_flight, 0);
    // A DTC report appended meanwhile still overtakes the backlog.
    s.append(Class::Dtc, "d", b"x").unwrap();
    assert_eq!(ids(&drain(&mut s).unwrap()), [4, 1, 2, 3]);
}

#[test]
fn reopen_restores_unacked_records_in_order_with_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    {
        let mut s = open(dir.path(), 1 << 20, 600).unwrap();
        for n in 0..60u64 {
            let class = Class::ALL[(n % 7 % 4) as usize];
            let topic = format!("telltale/v1/dev/{n}");
            let p = payload(n, (n * 13 % 200) as usize);
            let id = s.append(class, &topic, &p).unwrap();
            written.push(Record {
                id,
                class,
                topic,
                payload: p,
            });
        }
        assert!(
            seg_files(dir.path()).len() > 8,
            "rollover expected: {:?}",
            seg_files(dir.path())
        );
        // Ack a scattering, leave some in flight: in flight is not persisted.
        for r in written.iter().filter(|r| r.id.0 % 3 == 0) {
            s.ack(r.id).unwrap();
        }
        for _ in 0..5 {
            s.next_to_send().unwrap();
        }
    }
    let mut expected: Vec<Record> = written.into_iter().filter(|r| r.id.0 % 3 != 0).collect();
    expected.sort_by_key(|r| (std::cmp::Reverse(r.class), r.id));
    let mut s = open(dir.path(), 1 << 20, 600).unwrap();
    assert_eq!(s.recovery().records, expected.len() as u64);
    assert_eq!(s.recovery().damaged_segments, 0);
    assert_eq!(drain(&mut s).unwrap(), expected);
    let next = s.append(Class::Info, "i", b"").unwrap();
    assert_eq!(next, RecordId(61));
}

#[test]
fn ids_keep_increasing_when_everything_was_acked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), 1 << 20, 300).unwrap();
        for n in 0..20 {
            s.append(Class::Dtc, "d", &payload(n, 40)).unwrap();
        }
        for r in drain(&mut s).unwrap() {
            s.ack(r.id).unwrap();
        }
    }
    let mut s = open(dir.path(), 1 << 20, 300).unwrap();
    assert!(
        seg_files(dir.path()).is_empty(),
        "{:?}",
        seg_files(dir.path())
    );
    assert_eq!(s.stats().messages, 0);
    assert_eq!(s.append(Class::Dtc, "d", b"again").unwrap(), RecordId(21));
}

#[test]
fn drop_policy_takes_oldest_telemetry_first_and_dtc_last() {
    let dir = tempfile::tempdir().unwrap();
    let max = 10 * framed(100);
    let mut s = open(dir.path(), max, 1 << 16).unwrap();
    for n in 1..=4 {
        s.append(Class::Dtc, "t", &payload(n, 100)).unwrap();
    }
    for n in 5..=12 {
        s.append(Class::Telemetry, "t", &payload(n, 100)).unwrap();
    }
    assert_eq!(s.stats().dropped, [2, 0, 0, 0]);
    let tel: Vec<u64> = s.entries(Class::Telemetry).iter().map(|e| e.id).collect();
    assert_eq!(tel, [7, 8, 9, 10, 11, 12]);
    assert_eq!(s.stats().bytes, max);

    // DTC reports push out all telemetry, then the oldest DTC reports.
    for n in 13..=20 {
        s.append(Class::Dtc, "t", &payload(n, 100)).unwrap();
    }
    assert_eq!(s.stats().dropped, [8, 0, 0, 2]);
    assert!(s.entries(Class::Telemetry).is_empty());
    let dtc: Vec<u64> = s.entries(Class::Dtc).iter().map(|e| e.id).collect();
    assert_eq!(dtc, [3, 4, 13, 14, 15, 16, 17, 18, 19, 20]);

    // Telemetry arriving at a spool full of DTC reports is the one dropped.
    let lost = s.append(Class::Telemetry, "t", &payload(21, 100)).unwrap();
    assert_eq!(lost, RecordId(21));
    assert_eq!(s.stats().dropped, [9, 0, 0, 2]);
    let sent = drain(&mut s).unwrap();
    assert_eq!(ids(&sent), [3, 4, 13, 14, 15, 16, 17, 18, 19, 20]);
    assert_eq!(sent[0].payload, payload(3, 100));
}

#[test]
fn dropping_an_in_flight_record_makes_its_ack_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 2 * framed(10), 1 << 16).unwrap();
    s.append(Class::Telemetry, "t", &payload(1, 10)).unwrap();
    let first = s.next_to_send().unwrap().unwrap();
    s.append(Class::Telemetry, "t", &payload(2, 10)).unwrap();
    s.append(Class::Telemetry, "t", &payload(3, 10)).unwrap();
    assert_eq!(s.stats().in_flight, 0);
    s.ack(first.id).unwrap();
    let st = s.stats();
    assert_eq!(
        (st.messages, st.bytes, st.dropped[0]),
        (2, 2 * framed(10), 1)
    );
    assert_eq!(ids(&drain(&mut s).unwrap()), [2, 3]);
}

#[test]
fn too_large_is_refused_and_exact_fit_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 100, 1 << 16).unwrap();
    let err = s.append(Class::Dtc, "t", &[0; 76]).unwrap_err();
    assert!(
        matches!(
            err,
            SpoolError::TooLarge {
                size: 101,
                max: 100
            }
        ),
        "{err:?}"
    );
    s.append(Class::Dtc, "t", &[0; 75]).unwrap();
    assert_eq!(s.stats().bytes, 100);
    let long = "x".repeat(70_000);
    assert!(matches!(
        s.append(Class::Dtc, &long, b""),
        Err(SpoolError::TopicTooLong { len: 70_000, .. })
    ));
}

#[test]
fn segments_roll_over_and_are_deleted_once_acked() {
    let dir = tempfile::tempdir().unwrap();
    // 8 records of 125 bytes per 1000-byte segment.
    let mut s = open(dir.path(), 1 << 20, 1000).unwrap();
    for n in 0..30 {
        s.append(Class::Telemetry, "t", &payload(n, 100)).unwrap();
    }
    assert_eq!(
        seg_files(dir.path()),
        [
            "telemetry-00000000000000000001.seg",
            "telemetry-00000000000000000009.seg",
            "telemetry-00000000000000000017.seg",
            "telemetry-00000000000000000025.seg",
        ]
    );
    for _ in 0..7 {
        let r = s.next_to_send().unwrap().unwrap();
        s.ack(r.id).unwrap();
    }
    assert_eq!(
        seg_files(dir.path()).len(),
        4,
        "one record still holds the first segment"
    );
    let r = s.next_to_send().unwrap().unwrap();
    s.ack(r.id).unwrap();
    assert_eq!(
        seg_files(dir.path())[0],
        "telemetry-00000000000000000009.seg"
    );
    for r in drain(&mut s).unwrap() {
        s.ack(r.id).unwrap();
    }
    // The segment being appended to stays.
    assert_eq!(
        seg_files(dir.path()),
        ["telemetry-00000000000000000025.seg"]
    );
    assert_eq!(s.stats().segments, 1);
}

#[test]
fn long_run_of_append_and_ack_keeps_the_directory_small() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 1 << 20, 4096).unwrap();
    let mut most = 0;
    for n in 0..30_000u64 {
        let class = if n % 10 == 0 {
            Class::Dtc
        } else {
            Class::Telemetry
        };
        s.append(class, "t", &payload(n, 100)).unwrap();
        // A publisher with a few messages in flight.
        if n % 4 == 3 {
            while let Some(r) = s.next_to_send().unwrap() {
                s.ack(r.id).unwrap();
            }
        }
        if n % 97 == 0 {
            let st = s.stats();
            assert_eq!(st.disk_bytes, dir_bytes(dir.path()));
            most = most.max(st.disk_bytes);
        }
    }
    // Two active segments (≤ 4 KiB each), the journal (≤ 1024 + 2 × dead entries of 12
    // bytes, dead ≤ ~33 per segment); without compaction the journal alone would be 360 KB.
    assert!(most < 32 * 1024, "directory reached {most} bytes");
    assert!(
        seg_files(dir.path()).len() <= 3,
        "{:?}",
        seg_files(dir.path())
    );
}

#[test]
fn torn_tail_is_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
        for n in 0..3 {
            s.append(Class::Dtc, "t", &payload(n, 20)).unwrap();
        }
    }
    let path = dir.path().join(segment::file_name(Class::Dtc, 1));
    let mut bytes = fs::read(&path).unwrap();
    let good = bytes.len();
    let frame = bytes[..30].to_vec();
    bytes.extend_from_slice(&frame); // a frame cut short: a crash mid-append
    fs::write(&path, &bytes).unwrap();
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    assert_eq!(s.stats().recovered_torn_bytes, 30);
    assert_eq!(s.stats().recovered_corrupt_bytes, 0);
    assert_eq!(fs::metadata(&path).unwrap().len(), good as u64);
    s.append(Class::Dtc, "t", &payload(9, 20)).unwrap();
    drop(s);
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    assert_eq!(s.stats().recovered_torn_bytes, 0);
    assert_eq!(ids(&drain(&mut s).unwrap()), [1, 2, 3, 4]);
}

#[test]
fn zero_filled_tail_counts_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
        s.append(Class::Info, "t", b"abc").unwrap();
    }
    let path = dir.path().join(segment::file_name(Class::Info, 1));
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0; 5000]);
    fs::write(&path, &bytes).unwrap();
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    assert_eq!(s.stats().recovered_torn_bytes, 5000);
    assert_eq!(ids(&drain(&mut s).unwrap()), [1]);
}

#[test]
fn corruption_mid_segment_loses_only_the_rest_of_that_segment() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
        for n in 0..5 {
            s.append(Class::Telemetry, "t", &payload(n, 100)).unwrap();
            s.append(Class::Dtc, "t", &payload(n, 100)).unwrap();
        }
    }
    let path = dir.path().join(segment::file_name(Class::Telemetry, 1));
    let mut bytes = fs::read(&path).unwrap();
    bytes[2 * 125 + 60] ^= 0x40; // inside the third telemetry record
    fs::write(&path, &bytes).unwrap();
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    let st = s.stats();
    assert_eq!(st.recovered_corrupt_bytes, 3 * 125);
    assert_eq!(s.recovery().damaged_segments, 1);
    assert_eq!(ids(&drain(&mut s).unwrap()), [2, 4, 6, 8, 10, 1, 3]);
}

#[test]
fn a_record_damaged_after_open_is_skipped_not_returned() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
    for n in 0..3 {
        s.append(Class::Telemetry, "t", &payload(n, 100)).unwrap();
    }
    let path = dir.path().join(segment::file_name(Class::Telemetry, 1));
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(b"\xff\xff", 125 + 50).unwrap();
    let got = drain(&mut s).unwrap();
    assert_eq!(ids(&got), [1, 3]);
    assert_eq!(got[1].payload, payload(2, 100));
    assert_eq!(s.stats().corrupt_records, 1);
    assert_eq!(s.stats().messages, 2);
}

#[test]
fn fsync_policies_sync_when_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let count = |fsync: FsyncPolicy, sub: &str| {
        let d = dir.path().join(sub);
        let mut s = Spool::open_tuned(config(&d, 1 << 20, fsync), 1 << 16).unwrap();
        let start = s.stats().fsyncs;
        for n in 0..5 {
            s.append(Class::Telemetry, "t", &payload(n, 10)).unwrap();
        }
        let after_appends = s.stats().fsyncs - start;
        s.sync().unwrap();
        (after_appends, s.stats().fsyncs - start)
    };
    let (always, _) = count(FsyncPolicy::Always, "always");
    assert!(always >= 5, "{always}");
    assert_eq!(count(FsyncPolicy::Never, "never"), (0, 0));
    let (appends, total) = count(FsyncPolicy::Interval(Duration::from_secs(3600)), "hour");
    assert_eq!(appends, 0);
    assert!(total >= 2, "segment and directory at sync: {total}");
    let (appends, _) = count(FsyncPolicy::Interval(Duration::ZERO), "zero");
    assert!(appends >= 5, "{appends}");
}

#[test]
fn a_vanished_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let mut s = open(&spool_dir, 1 << 20, 1 << 16).unwrap();
    fs::remove_dir_all(&spool_dir).unwrap();
    let err = s.append(Class::Dtc, "t", b"x").unwrap_err();
    let SpoolError::Io { path, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(path.starts_with(&spool_dir), "{}", path.display());
    assert!(err.to_string().contains("spool"), "{err}");

    // A file where the directory should be.
    let file = dir.path().join("plain-file");
    fs::write(&file, b"").unwrap();
    assert!(matches!(
        open(&file, 1 << 20, 1 << 16),
        Err(SpoolError::Io { .. })
    ));
}

#[test]
fn open_drops_to_fit_a_smaller_bound() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = open(dir.path(), 1 << 20, 1 << 16).unwrap();
        for n in 0..5 {
            s.append(Class::Telemetry, "t", &payload(n, 100)).unwrap();
        }
        s.append(Class::Dtc, "t", &payload(9, 100)).unwrap();
    }
    let mut s = open(dir.path(), 3 * framed(100), 1 << 16).unwrap();
    assert_eq!(s.recovery().dropped_to_fit, 3);
    assert_eq!(s.stats().dropped, [3, 0, 0, 0]);
    assert_eq!(ids(&drain(&mut s).unwrap()), [6, 4, 5]);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        dir: dir.path().to_path_buf(),
        max_bytes: 1 << 20,
        fsync: FsyncPolicy::Never,
    };
    let first = Spool::open(config.clone()).unwrap();
    match Spool::open(config.clone()) {
        Err(SpoolError::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("second open: {other:?}"),
    }
    drop(first);
    Spool::open(config).expect("open again once the first is closed");
}
