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
//! segments (there is no lock file).
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

mod frame;
mod handle;
mod journal;
mod queue;
mod segment;

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

/// The spool. Single owner; wrap it in a mutex to share.
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
    /// Opens (creating) the spool in `config.dir`, recovering what is there.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        let target = (config.max_bytes / 16).clamp(64 * 1024, 4 * 1024 * 1024);
        Spool::open_tuned(config, target)
    }

    /// [`Spool::open`] with a chosen segment size (tests use small ones to see rollover).
    pub(crate) fn open_tuned(
        config: SpoolConfig,
        segment_target: u64,
    ) -> Result<Spool, SpoolError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| SpoolError::io(&dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SpoolError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked { path: dir }),
            Err(fs::TryLockError::Error(e)) => return Err(SpoolError::io(&lock_path, e)),
        }
        journal::remove_leftover_tmp(&dir)?;
        let loaded = journal::load(&dir)?;
        let mut recovery = Recovery {
            journal_bad_bytes: loaded.bad_bytes,
            ..Recovery::default()
        };
        let mut next_id = loaded.floor.max(1);
        for &id in &loaded.removed {
            next_id = next_id.max(id.saturating_add(1));
        }

        let mut found = Vec::new();
        for item in fs::read_dir(&dir).map_err(|e| SpoolError::io(&dir, e))? {
            let item = item.map_err(|e| SpoolError::io(&dir, e))?;
            let name = item.file_name();
            match name.to_str().and_then(segment::parse_file_name) {
                Some((class, first_id)) => found.push((class, first_id, item.path())),
                None if name != journal::FILE_NAME && name != LOCK_FILE => {
                    tracing::debug!(file = ?name, dir = %dir.display(), "not a spool file; left alone");
                }
                None => {}
            }
        }
        found.sort_by_key(|(class, first_id, _)| (*class, *first_id));

        let mut classes: [ClassState; 4] = Default::default();
        let mut live_bytes = 0u64;
        let mut prev: Option<(Class, u64)> = None;
        for (class, first_id, path) in found {
            next_id = next_id.max(first_id.saturating_add(1));
            let min_id = match prev {
                Some((c, last)) if c == class => first_id.max(last.saturating_add(1)),
                _ => first_id,
            };
            let scanned =
                segment::scan(&path, class, min_id).map_err(|e| SpoolError::io(&path, e))?;
            recovery.segments += 1;
            let mut seg = Segment {
                path: path.clone(),
                len: scanned.good_len,
                live: 0,
                dead: Vec::new(),
                appendable: true,
            };
            if let Some(damage) = scanned.damage {
                let cut = scanned.file_len - scanned.good_len;
                recovery.damaged_segments += 1;
                match damage {
                    Damage::Torn => recovery.torn_bytes += cut,
                    Damage::Corrupt => recovery.corrupt_bytes += cut,
                }
                tracing::warn!(path = %path.display(), ?damage, at = scanned.good_len, cut, "spool segment damaged; cut off after its last good record");
                let truncated = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(scanned.good_len).and_then(|()| f.sync_all()));
                if let Err(e) = truncated {
                    tracing::warn!(path = %path.display(), cause = %e, "could not truncate; the segment is kept read-only");
                    seg.len = scanned.file_len;
                    seg.appendable = false;
                }
            }
            let st = &mut classes[class as usize];
            for r in &scanned.records {
                next_id = next_id.max(r.id.saturating_add(1));
                if loaded.removed.contains(&r.id) {
                    seg.dead.push(r.id);
                } else {
                    seg.live += 1;
                    live_bytes += u64::from(r.len);
                    st.queue.push(Entry {
                        id: r.id,
                        segment: first_id,
                        offset: r.offset,
                        len: r.len,
                    });
                }
            }
            if let Some(last) = scanned.records.last() {
                prev = Some((class, last.id));
            }
            recovery.records += u64::from(seg.live);
            st.segments.insert(first_id, seg);
        }

        // Empty segments go first, then the journal is rewritten without their ids: in that
        // order a crash in between leaves the old journal, still right.
        let durable = config.fsync != FsyncPolicy::Never;
        let mut deleted_any = false;
        for st in &mut classes {
            st.segments.retain(|_, seg| {
                if seg.live > 0 {
                    return true;
                }
                match fs::remove_file(&seg.path) {
                    Ok(()) => {
                        deleted_any = true;
                        false
                    }
                    Err(e) => {
                        tracing::warn!(path = %seg.path.display(), cause = %e, "could not delete an empty segment");
                        true
                    }
                }
            });
        }
        if deleted_any && durable {
            journal::sync_dir(&dir)?;
        }
        let dead_total = classes
            .iter()
            .flat_map(|st| st.segments.values())
            .map(|s| s.dead.len() as u64)
            .sum();
        let dead_ids = classes
            .iter()
            .flat_map(|st| st.segments.values())
            .flat_map(|s| s.dead.iter().copied());
        let journal = Journal::rewrite(&dir, next_id, dead_ids, durable)?;

        let segment_target = segment_target.clamp(1, MAX_SEGMENT_BYTES);
        for st in &mut classes {
            if let Some((&first_id, seg)) = st.segments.iter().next_back()
                && seg.appendable
                && seg.len < segment_target
            {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&seg.path)
                    .map_err(|e| SpoolError::io(&seg.path, e))?;
                st.active = Some(Active {
                    first_id,
                    file,
                    dirty: false,
                });
            }
        }

        let mut spool = Spool {
            dir,
            _lock: lock,
            max_bytes: config.max_bytes,
            fsync: config.fsync,
            segment_target,
            classes,
            journal,
            next_id,
            live_bytes,
            dead_total,
            dropped: [0; 4],
            corrupt_records: 0,
            fsyncs: 0,
            recovery,
            dir_dirty: false,
            last_sync: Instant::now(),
            buf: Vec::new(),
        };
        while spool.live_bytes > spool.max_bytes {
            let Some(class) = spool.lowest_class() else {
                break;
            };
            spool.drop_oldest(class);
            spool.recovery.dropped_to_fit += 1;
        }
        tracing::info!(
            dir = %spool.dir.display(),
            records = spool.recovery.records,
            segments = spool.recovery.segments,
            damaged = spool.recovery.damaged_segments,
            torn_bytes = spool.recovery.torn_bytes,
            corrupt_bytes = spool.recovery.corrupt_bytes,
            dropped_to_fit = spool.recovery.dropped_to_fit,
            next_id = spool.next_id,
            "spool opened"
        );
        Ok(spool)
    }

    /// What open found: records, damage and what was cut off.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Stores a message; durable according to the fsync policy when it returns. Drops older
    /// records (by class, oldest first) to stay within `max_bytes`.
    pub fn append(
        &mut self,
        class: Class,
        topic: &str,
        payload: &[u8],
    ) -> Result<RecordId, SpoolError> {
        if topic.len() > usize::from(u16::MAX) {
            return Err(SpoolError::TopicTooLong {
                len: topic.len(),
                max: usize::from(u16::MAX),
            });
        }
        let len = frame::frame_len(topic.len(), payload.len());
        let max = self.max_bytes.min(u64::from(u32::MAX));
        if len > max {
            return Err(SpoolError::TooLarge { size: len, max });
        }
        let id = self.next_id;
        self.next_id += 1;

        while self.live_bytes + len > self.max_bytes {
            match self.lowest_class() {
                Some(lowest) if lowest <= class => self.drop_oldest(lowest),
                _ => {
                    self.dropped[class as usize] += 1;
                    tracing::debug!(
                        id,
                        ?class,
                        "spool full of higher classes; the new message is dropped"
                    );
                    // Journaled like any removal, so the id is not issued again after a restart.
                    if let Err(e) = self.journal.record(id) {
                        tracing::warn!(cause = %e, "could not journal a dropped record");
                    }
                    return Ok(RecordId(id));
                }
            }
        }

        self.write_record(id, class, topic, payload)?;
        if let FsyncPolicy::Interval(every) = self.fsync
            && self.last_sync.elapsed() >= every
            && let Err(e) = self.sync_now()
        {
            tracing::error!(cause = %e, "spool interval fsync failed; will retry");
        }
        Ok(RecordId(id))
    }

    /// Frames and writes one record to its class's active segment and indexes it.
    fn write_record(
        &mut self,
        id: u64,
        class: Class,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), SpoolError> {
        frame::encode(&mut self.buf, id, class, topic, payload).map_err(|e| match e {
            frame::SizeError::TopicTooLong(len) => SpoolError::TopicTooLong {
                len,
                max: usize::from(u16::MAX),
            },
            frame::SizeError::FrameTooLarge(size) => SpoolError::TooLarge {
                size,
                max: u64::from(u32::MAX),
            },
        })?;
        let len = self.buf.len() as u64;
        let ci = class as usize;
        let need_new = match &self.classes[ci].active {
            None => true,
            Some(a) => self.classes[ci]
                .segments
                .get(&a.first_id)
                .is_none_or(|seg| {
                    seg.len > 0
                        && (seg.len + len > self.segment_target
                            || seg.len + len > u64::from(u32::MAX))
                }),
        };
        if need_new {
            self.roll(class, id)?;
        }
        let st = &mut self.classes[ci];
        let first_id = st.active.as_ref().map(|a| a.first_id);
        let (Some(active), Some(seg)) = (
            st.active.as_mut(),
            first_id.and_then(|f| st.segments.get_mut(&f)),
        ) else {
            return Err(SpoolError::io(
                &self.dir,
                io::Error::other("no active segment after roll"),
            ));
        };
        let offset = seg.len;
        let (Ok(offset32), Ok(len32)) = (u32::try_from(offset), u32::try_from(len)) else {
            return Err(SpoolError::TooLarge {
                size: len,
                max: u64::from(u32::MAX),
            });
        };
        if let Err(e) = active.file.write_all_at(&self.buf, offset) {
            // Cut off whatever part landed; if even that fails, stop appending to this file
            // (open will cut it).
            if active.file.set_len(offset).is_err() {
                seg.appendable = false;
                st.active = None;
            }
            return Err(SpoolError::io(&seg.path, e));
        }
        seg.len += len;
        if self.fsync == FsyncPolicy::Always {
            self.fsyncs += 1;
            if let Err(e) = active.file.sync_data() {
                // Whether the bytes are on disk is unknown: count the record as not stored
                // (journaled as removed), and write no more to this file.
                seg.dead.push(id);
                self.dead_total += 1;
                seg.appendable = false;
                let path = seg.path.clone();
                st.active = None;
                let _ = self.journal.record(id);
                return Err(SpoolError::io(&path, e));
            }
        } else {
            active.dirty = true;
        }
        seg.live += 1;
        st.queue.push(Entry {
            id,
            segment: active.first_id,
            offset: offset32,
            len: len32,
        });
        self.live_bytes += len;
        Ok(())
    }

    /// Retires the class's active segment and starts a new one named after `first_id`.
    fn roll(&mut self, class: Class, first_id: u64) -> Result<(), SpoolError> {
        let ci = class as usize;
        if let Some(old) = self.classes[ci].active.take() {
            if old.dirty && self.fsync != FsyncPolicy::Never {
                // Interval: the handle is going away, so its data is synced now rather than
                // tracked until the next tick.
                self.fsyncs += 1;
                if let Err(e) = old.file.sync_data() {
                    tracing::error!(cause = %e, "fsync of a retired segment failed");
                }
            }
            if self.classes[ci]
                .segments
                .get(&old.first_id)
                .is_some_and(|s| s.live == 0)
            {
                self.delete_segment(class, old.first_id);
            }
        }
        let path = self.dir.join(segment::file_name(class, first_id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| SpoolError::io(&path, e))?;
        self.classes[ci].segments.insert(
            first_id,
            Segment {
                path,
                len: 0,
                live: 0,
                dead: Vec::new(),
                appendable: true,
            },
        );
        self.classes[ci].active = Some(Active {
            first_id,
            file,
            dirty: false,
        });
        self.dir_changed()?;
        Ok(())
    }

    /// The next record to publish (highest class first, then oldest), marked in flight.
    pub fn next_to_send(&mut self) -> Result<Option<Record>, SpoolError> {
        loop {
            let Some((class, e)) = Class::ALL.into_iter().rev().find_map(|c| {
                self.classes[c as usize]
                    .queue
                    .peek_waiting()
                    .map(|e| (c, e))
            }) else {
                return Ok(None);
            };
            let mut frame = vec![0u8; e.len as usize];
            let read = self.read_at(class, e, &mut frame);
            let decoded = match read {
                Ok(()) => frame::decode(&frame).ok(),
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => None,
                Err(err) => return Err(SpoolError::io(&self.segment_path(class, e.segment), err)),
            };
            if let Some(d) = decoded.filter(|d| d.header.id == e.id && d.header.class == class) {
                let record = Record {
                    id: RecordId(e.id),
                    class,
                    topic: d.topic.to_owned(),
                    payload: d.payload.to_vec(),
                };
                self.classes[class as usize].queue.mark_in_flight(e.id);
                return Ok(Some(record));
            }
            tracing::error!(id = e.id, ?class, path = %self.segment_path(class, e.segment).display(), offset = e.offset, "spool record unreadable; removed");
            self.corrupt_records += 1;
            if self.classes[class as usize].queue.remove(e.id).is_some()
                && let Err(err) = self.removed(class, e)
            {
                tracing::warn!(cause = %err, "could not journal a corrupt record's removal");
            }
        }
    }

    fn segment_path(&self, class: Class, segment: u64) -> PathBuf {
        self.classes[class as usize]
            .segments
            .get(&segment)
            .map(|s| s.path.clone())
            .unwrap_or_else(|| self.dir.join(segment::file_name(class, segment)))
    }

    fn read_at(&mut self, class: Class, e: Entry, buf: &mut [u8]) -> io::Result<()> {
        let path = self.segment_path(class, e.segment);
        let st = &mut self.classes[class as usize];
        if let Some(a) = st.active.as_ref().filter(|a| a.first_id == e.segment) {
            return a.file.read_exact_at(buf, u64::from(e.offset));
        }
        if st.reader.as_ref().is_none_or(|(seg, _)| *seg != e.segment) {
            st.reader = Some((e.segment, File::open(&path)?));
        }
        match &st.reader {
            Some((_, f)) => f.read_exact_at(buf, u64::from(e.offset)),
            None => Err(io::Error::other("no reader")),
        }
    }

    /// The broker has it: remove it. Unknown or already-removed ids are ignored.
    pub fn ack(&mut self, id: RecordId) -> Result<(), SpoolError> {
        for class in Class::ALL.into_iter().rev() {
            if let Some(e) = self.classes[class as usize].queue.remove(id.0) {
                return self.removed(class, e);
            }
        }
        Ok(())
    }

    /// The connection dropped: everything in flight is unsent again (it will be re-published;
    /// the cloud deduplicates on the header).
    pub fn requeue_in_flight(&mut self) {
        for st in &mut self.classes {
            st.queue.requeue();
        }
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

    /// The lowest class holding any record: where drops come from.
    fn lowest_class(&self) -> Option<Class> {
        Class::ALL
            .into_iter()
            .find(|&c| self.classes[c as usize].queue.len() > 0)
    }

    /// Drops the oldest record of `class`, in flight or not. A journal failure is only
    /// logged: at worst the record comes back after a restart and open drops it again.
    fn drop_oldest(&mut self, class: Class) {
        let q = &mut self.classes[class as usize].queue;
        let Some(e) = q.oldest().and_then(|e| q.remove(e.id)) else {
            return;
        };
        self.dropped[class as usize] += 1;
        tracing::debug!(id = e.id, ?class, "spool full; dropped oldest record");
        if let Err(err) = self.removed(class, e) {
            tracing::warn!(cause = %err, "could not journal a dropped record");
        }
    }

    /// Bookkeeping for a record already taken out of its queue: bytes, its segment (deleted
    /// once empty and no longer appended to), the journal, and compaction.
    fn removed(&mut self, class: Class, e: Entry) -> Result<(), SpoolError> {
        self.live_bytes -= u64::from(e.len);
        let st = &mut self.classes[class as usize];
        let active = st.active.as_ref().map(|a| a.first_id);
        let mut empty = false;
        if let Some(seg) = st.segments.get_mut(&e.segment) {
            seg.live = seg.live.saturating_sub(1);
            seg.dead.push(e.id);
            self.dead_total += 1;
            empty = seg.live == 0 && active != Some(e.segment);
        }
        let journaled = self.journal.record(e.id);
        if empty {
            self.delete_segment(class, e.segment);
        }
        if self.journal.entries() > 1024 + 2 * self.dead_total {
            self.compact();
        }
        journaled
    }

    /// Deletes a segment with no live records. Failure is logged and the segment kept.
    fn delete_segment(&mut self, class: Class, first_id: u64) {
        let st = &mut self.classes[class as usize];
        let Some(seg) = st.segments.remove(&first_id) else {
            return;
        };
        if st.reader.as_ref().is_some_and(|(s, _)| *s == first_id) {
            st.reader = None;
        }
        match fs::remove_file(&seg.path) {
            Ok(()) => {
                self.dead_total -= seg.dead.len() as u64;
                if let Err(e) = self.dir_changed() {
                    tracing::warn!(cause = %e, "fsync of the spool directory failed");
                }
            }
            Err(e) => {
                tracing::warn!(path = %seg.path.display(), cause = %e, "could not delete an empty segment");
                st.segments.insert(first_id, seg);
            }
        }
    }

    /// A name was created or deleted: fsync the directory now (Always) or at the next sync.
    fn dir_changed(&mut self) -> Result<(), SpoolError> {
        match self.fsync {
            FsyncPolicy::Always => {
                self.fsyncs += 1;
                journal::sync_dir(&self.dir)
            }
            FsyncPolicy::Interval(_) => {
                self.dir_dirty = true;
                Ok(())
            }
            FsyncPolicy::Never => Ok(()),
        }
    }

    /// Rewrites the journal with only the ids segments still need. On failure the old
    /// journal stays in use (it is still correct, only longer).
    fn compact(&mut self) {
        let ids = self
            .classes
            .iter()
            .flat_map(|st| st.segments.values())
            .flat_map(|s| s.dead.iter().copied());
        let durable = self.fsync != FsyncPolicy::Never;
        match Journal::rewrite(&self.dir, self.next_id, ids, durable) {
            Ok(j) => {
                tracing::debug!(
                    entries = j.entries(),
                    before = self.journal.entries(),
                    "ack journal compacted"
                );
                self.journal = j;
            }
            Err(e) => tracing::warn!(cause = %e, "ack journal compaction failed"),
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
