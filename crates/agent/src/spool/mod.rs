//! The durable store-and-forward spool: every uplink message is on disk before it is published
//! and leaves only when the broker has acknowledged it.
//!
//! # Layout on disk
//!
//! One directory holds:
//!
//! - **segment files**, one sequence per [`Class`] (`dtc-00000000000000000042.seg`, named after
//!   the first record id in them), append-only, rolled at a target size (a sixteenth of
//!   `max_bytes`, between 64 KiB and 4 MiB). Each record is a checked frame: magic and version,
//!   length, CRC-32, id, class, topic and payload (layout in `frame.rs`).
//! - **`acks.log`**, the ack journal: ids of records that left (acked or dropped) while their
//!   segment still exists, and a floor for new ids (`journal.rs`).
//!
//! A segment whose records have all left is deleted. Classes get their own segments because
//! within a class records leave almost in arrival order (sent oldest first, dropped oldest
//! first), so a segment empties as a whole; in one shared log a single unsent DTC report would
//! keep a file full of acked telemetry alive. The journal is compacted (rewritten with only the
//! ids whose segments still exist) at open and whenever it holds more than twice that plus
//! 1024 entries, so a long run of append and ack keeps the directory at a few segments and a
//! small journal.
//!
//! # Memory
//!
//! Only an index lives in RAM: per record its id, segment, offset and length (24 bytes;
//! 100k records ≈ 2.4 MB), plus the ids of already-removed records in segments not yet deleted.
//! [`Spool::next_to_send`] reads the payload back from disk and checks its CRC again.
//!
//! # Recovery
//!
//! [`Spool::open`] reads every segment frame by frame. The first frame that is incomplete,
//! fails its CRC, has the wrong class or an id out of order ends that segment: the file is
//! truncated there so appends continue on a frame boundary. Damage at the very end (or a tail
//! of zeros) is a crash mid-append and counted as torn bytes; damage with data after it is
//! counted as corrupt bytes, and the records after it in that segment are lost (other
//! segments are unaffected). Nothing in a damaged file makes open fail or panic; an I/O error
//! does, naming the path. Records come back in the same order with the same ids, all waiting
//! (nothing is in flight after a restart), and ids keep increasing: the next id is above
//! every id in the segments, in the journal and its floor.
//!
//! # Durability
//!
//! - [`FsyncPolicy::Always`]: the segment is `fdatasync`ed before `append` returns, and the
//!   directory when a segment file is created or deleted. A record whose `append` returned
//!   `Ok` survives `kill -9` and power loss.
//! - [`FsyncPolicy::Interval`]: `append` syncs everything dirty (segments, journal, directory)
//!   once the interval has passed since the last sync, as does [`Spool::sync`] (the agent's
//!   timer and shutdown) and dropping the spool. `kill -9` loses nothing, since every append is
//!   one `write` into the page cache; power loss loses at most the interval.
//! - [`FsyncPolicy::Never`]: no fsync at all, [`Spool::sync`] included.
//!
//! Acks are never fsynced on their own: losing one in a power cut means the record is
//! published again, which the cloud deduplicates on the header. The ids of records lost in a
//! power cut (never synced) may be issued again after restart; nothing on disk refers to
//! them, so that is harmless. Under `Interval` and `Never` a segment deletion can likewise be
//! undone by power loss, which brings back already-acked records as duplicates.
//!
//! # Bound and drop policy
//!
//! `max_bytes` bounds the framed bytes of live records. To make room `append` drops the oldest
//! record of the lowest class present, counting the new message as the newest of its class:
//! telemetry goes oldest first, DTC reports last, and a telemetry batch arriving at a spool
//! full of DTC reports is itself the one dropped (it still gets an id, which simply never comes
//! out of `next_to_send`). A dropped record may be in flight; its later ack is ignored, and if
//! the broker never got it, it is lost like any other dropped record. Drops happen before the
//! write, so a failed write can still have made room. Open enforces the bound too (the config
//! may have shrunk, or a crash lost the journal entries of earlier drops).
//!
//! Dead records in segments not yet deleted take disk beyond `max_bytes`: at most about one
//! partly emptied segment per class in the usual arrival-order case. [`SpoolStats::disk_bytes`]
//! reports what is really used.
//!
//! The spool has one owner: two processes on one directory would corrupt each other's
//! segments, so an open spool holds an exclusive `flock` on the file `lock` in its directory
//! and a second open fails. Within the agent it lives on a thread of its own
//! ([`SpoolHandle`]), so its fsyncs never stall the runtime.
//!
//! # What fsync costs here
//!
//! `cargo bench -p telltale-agent --bench spool`: append, `next_to_send` and `ack` of 1000
//! 600-byte records, one at a time, on ext4 on the development VM's virtual disk (2 cores);
//! medians of 5 runs. Other disks differ by orders of magnitude (an SD card in a dongle will
//! be far slower per fsync); rerun there before choosing a policy.
//!
//! | policy | median per message | messages/s | vs Never |
//! |---|---|---|---|
//! | spool, `Always` | 198 µs | 4 700 | 64× |
//! | spool, `Interval(100 ms)` | 3.3 µs | 115 000 | 1.1× |
//! | spool, `Never` | 3.1 µs | 252 000 | 1× |
//! | one file per message (write, fsync file and dir, unlink) | 377 µs | 1 800 | 122× |
//!
//! `Always` is one `fdatasync` per message and costs ~60× the page-cache path; the naive
//! file-per-message spool pays two fsyncs plus create and unlink and is ~1.9× slower again.
//! `Interval`'s median is the page-cache path; its syncs every 100 ms show in the throughput,
//! not the median. Even `Always` outruns what a car produces (a few messages a second).
//!
//! Where things are: the types and [`Spool`] itself here; opening and recovery in `open.rs`;
//! storing in `append.rs`; handing out and acknowledging in `send.rs`; giving space back
//! (drops, segment deletion, journal compaction) in `space.rs`; the record framing, the
//! journal, the per-class queues and the segment files in `frame.rs`, `journal.rs`, `queue.rs`
//! and `segment.rs`; the thread the agent runs it on in `handle.rs`.

mod append;
mod frame;
mod handle;
mod journal;
mod open;
mod queue;
mod segment;
mod send;
mod space;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use handle::{HandleError, SpoolGone, SpoolHandle};

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use journal::Journal;
use queue::{Entry, Queue};
use segment::{Damage, Segment};

/// Message classes, in drop order: when the spool is full the oldest record of the lowest
/// class goes first, so DTC reports are the last thing ever dropped. Sending goes the other
/// way: the highest class with anything unsent goes first, oldest first within a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Telemetry = 0,
    Info = 1,
    CmdResult = 2,
    Dtc = 3,
}

impl Class {
    /// Every class, lowest (first dropped) to highest (first sent).
    pub const ALL: [Class; 4] = [Class::Telemetry, Class::Info, Class::CmdResult, Class::Dtc];

    pub(crate) fn from_u8(b: u8) -> Option<Class> {
        Class::ALL.get(usize::from(b)).copied()
    }

    /// The prefix of this class's segment file names.
    pub(crate) fn file_stem(self) -> &'static str {
        match self {
            Class::Telemetry => "telemetry",
            Class::Info => "info",
            Class::CmdResult => "cmd-result",
            Class::Dtc => "dtc",
        }
    }
}

/// When appended records reach the disk itself (not just the page cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before `append` returns: nothing acknowledged to the caller is lost on power loss.
    Always,
    /// fsync at most this often (and on shutdown): power loss loses at most this window;
    /// `kill -9` loses nothing, the page cache survives a process crash.
    Interval(Duration),
    /// Leave it to the kernel.
    Never,
}

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Bound on the bytes of live records on disk.
    pub max_bytes: u64,
    pub fsync: FsyncPolicy,
}

/// Identifies a record; increases with every append, across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

/// A stored message handed to the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    pub class: Class,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Counters for the status message and endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpoolStats {
    pub messages: u64,
    /// Framed bytes of the live records: what `max_bytes` bounds.
    pub bytes: u64,
    pub in_flight: u64,
    /// Dropped since this process started, per class (index = `Class as usize`).
    pub dropped: [u64; 4],
    /// Bytes of a torn record found at the end of a segment at open (a crash mid-write).
    pub recovered_torn_bytes: u64,
    /// Bytes cut off at open after a bad record that had data behind it (corruption).
    pub recovered_corrupt_bytes: u64,
    /// Records that failed their check when read back after open, and were removed.
    pub corrupt_records: u64,
    /// Segment files in the directory.
    pub segments: u64,
    /// Bytes of segment files and journal: live records, dead ones not yet deleted, framing.
    pub disk_bytes: u64,
    /// fsync calls made since open.
    pub fsyncs: u64,
}

/// What [`Spool::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recovery {
    /// Live records found (before any drop to fit `max_bytes`).
    pub records: u64,
    /// Segment files read.
    pub segments: u64,
    /// Segments that ended in a torn or corrupt record and were truncated.
    pub damaged_segments: u64,
    pub torn_bytes: u64,
    pub corrupt_bytes: u64,
    /// Journal bytes that were torn or failed their CRC (their acks are lost: duplicates).
    pub journal_bad_bytes: u64,
    /// Records dropped at open to get within `max_bytes`.
    pub dropped_to_fit: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `size` is the framed size (header and topic included).
    #[error("a {size}-byte message cannot fit in a spool of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("a {len}-byte topic is longer than the {max} bytes a record can hold")]
    TopicTooLong { len: usize, max: usize },
    /// Another process (a second agent with the same state_dir) has the spool open.
    #[error("spool {path} is in use by another process (two agents with one state_dir?)")]
    Locked { path: PathBuf },
}

impl SpoolError {
    pub(crate) fn io(path: &Path, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The file an open spool holds an exclusive `flock` on.
const LOCK_FILE: &str = "lock";

/// Segments never grow past this, whatever the tuning asks, so offsets fit in 32 bits.
const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// The spool. Single owner: the agent moves it onto its own thread ([`SpoolHandle`]).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Held with an exclusive lock for as long as the spool is open.
    _lock: fs::File,
    max_bytes: u64,
    fsync: FsyncPolicy,
    segment_target: u64,
    classes: [ClassState; 4],
    journal: Journal,
    next_id: u64,
    live_bytes: u64,
    /// Sum of `Segment::dead` lengths: what the journal must keep.
    dead_total: u64,
    dropped: [u64; 4],
    corrupt_records: u64,
    fsyncs: u64,
    recovery: Recovery,
    dir_dirty: bool,
    last_sync: Instant,
    buf: Vec<u8>,
}

#[derive(Debug, Default)]
struct ClassState {
    queue: Queue,
    /// By first id, so in append order.
    segments: BTreeMap<u64, Segment>,
    /// The segment appends go to, kept open.
    active: Option<Active>,
    /// The last other segment read from: reads go through a class in order, so one cached
    /// handle saves an `open` per message without holding a descriptor per segment.
    reader: Option<(u64, File)>,
}

#[derive(Debug)]
struct Active {
    first_id: u64,
    file: File,
    /// Written since its last fsync.
    dirty: bool,
}

impl Spool {
    /// What open found: records, damage and what was cut off.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Forces what was appended to disk (the Interval policy's timer and shutdown call this).
    /// Does nothing under [`FsyncPolicy::Never`].
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if self.fsync == FsyncPolicy::Never {
            return Ok(());
        }
        self.sync_now()
    }

    fn sync_now(&mut self) -> Result<(), SpoolError> {
        for st in &mut self.classes {
            if let Some(a) = st.active.as_mut().filter(|a| a.dirty) {
                self.fsyncs += 1;
                let path = st
                    .segments
                    .get(&a.first_id)
                    .map(|s| s.path.as_path())
                    .unwrap_or(&self.dir);
                a.file.sync_data().map_err(|e| SpoolError::io(path, e))?;
                a.dirty = false;
            }
        }
        if self.journal.sync()? {
            self.fsyncs += 1;
        }
        if self.dir_dirty {
            self.fsyncs += 1;
            journal::sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    pub fn stats(&self) -> SpoolStats {
        let segs = self.classes.iter().flat_map(|st| st.segments.values());
        SpoolStats {
            messages: self.classes.iter().map(|st| st.queue.len() as u64).sum(),
            bytes: self.live_bytes,
            in_flight: self
                .classes
                .iter()
                .map(|st| st.queue.in_flight() as u64)
                .sum(),
            dropped: self.dropped,
            recovered_torn_bytes: self.recovery.torn_bytes,
            recovered_corrupt_bytes: self.recovery.corrupt_bytes,
            corrupt_records: self.corrupt_records,
            segments: segs.clone().count() as u64,
            disk_bytes: segs.map(|s| s.len).sum::<u64>() + self.journal.len(),
            fsyncs: self.fsyncs,
        }
    }

    /// Every live entry per class, in id order (for tests).
    #[cfg(test)]
    pub(crate) fn entries(&self, class: Class) -> Vec<Entry> {
        self.classes[class as usize].queue.entries()
    }
}

impl Drop for Spool {
    /// Under `Interval`, what was appended since the last tick is synced on the way out.
    fn drop(&mut self) {
        if matches!(self.fsync, FsyncPolicy::Interval(_))
            && let Err(e) = self.sync_now()
        {
            tracing::error!(cause = %e, "spool fsync at close failed");
        }
    }
}
