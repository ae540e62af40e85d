//! The durable store-and-forward spool: every uplink message is on disk before it is published
//! and leaves only when the broker has acknowledged it.
//!
//! (Implementation pending: see the brief. The API below is what the rest of the agent uses.)

use std::path::PathBuf;
use std::time::Duration;

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
    pub bytes: u64,
    pub in_flight: u64,
    /// Dropped since this process started, per class (index = `Class as usize`).
    pub dropped: [u64; 4],
    /// Bytes of a torn record found at the end of a segment at open (a crash mid-write).
    pub recovered_torn_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a {size}-byte message cannot fit in a spool of {max} bytes")]
    TooLarge { size: u64, max: u64 },
}

/// The spool. Single owner; wrap it in a mutex to share.
#[derive(Debug)]
pub struct Spool {}

impl Spool {
    /// Opens (creating) the spool in `config.dir`, recovering what is there.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        let _ = config;
        todo!()
    }

    /// Stores a message; durable according to the fsync policy when it returns. Drops older
    /// records (by class, oldest first) to stay within `max_bytes`.
    pub fn append(
        &mut self,
        class: Class,
        topic: &str,
        payload: &[u8],
    ) -> Result<RecordId, SpoolError> {
        let _ = (class, topic, payload);
        todo!()
    }

    /// The next record to publish (highest class first, then oldest), marked in flight.
    pub fn next_to_send(&mut self) -> Result<Option<Record>, SpoolError> {
        todo!()
    }

    /// The broker has it: remove it. Unknown or already-removed ids are ignored.
    pub fn ack(&mut self, id: RecordId) -> Result<(), SpoolError> {
        let _ = id;
        todo!()
    }

    /// The connection dropped: everything in flight is unsent again (it will be re-published;
    /// the cloud deduplicates on the header).
    pub fn requeue_in_flight(&mut self) {
        todo!()
    }

    /// Forces what was appended to disk (the Interval policy's timer and shutdown call this).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        todo!()
    }

    pub fn stats(&self) -> SpoolStats {
        todo!()
    }
}
