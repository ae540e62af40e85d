//! The records the spool crash test writes and checks: shared by the writer
//! (`examples/spool_writer.rs`) and the test (`tests/spool_crash.rs`).

use telltale_agent::spool::{Class, FsyncPolicy, SpoolConfig};

pub(crate) const MARK: &str = "SPOOLID ";

pub(crate) fn config(dir: &std::path::Path) -> SpoolConfig {
    SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes: 256 << 20,
        fsync: FsyncPolicy::Always,
    }
}

/// A payload that carries its sequence number and a pattern derived from it, 58 to ~1.5k bytes.
pub(crate) fn payload(seq: u64) -> Vec<u8> {
    let len = 50 + (seq * 37 % 1500) as usize;
    let mut p = seq.to_le_bytes().to_vec();
    p.extend((0..len).map(|i| (seq as usize * 13 + i) as u8));
    p
}

pub(crate) fn class_of(seq: u64) -> Class {
    if seq.is_multiple_of(5) {
        Class::Dtc
    } else {
        Class::Telemetry
    }
}
