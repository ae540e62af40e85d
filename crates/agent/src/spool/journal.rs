//! The ack journal: ids of records that left the spool (acked or dropped) while their
//! segment file still exists.
//!
//! Segment files are append-only, so a removal is written here instead: 12 bytes per id
//! (the id and its CRC), appended without fsync. Losing the newest entries in a power cut
//! only means those records are published again, which the cloud deduplicates; an entry that
//! is torn or fails its CRC is skipped the same way. A 16-byte header carries a floor for
//! record ids, so ids keep increasing across restarts even when every segment has been
//! deleted.
//!
//! The journal is rewritten (compacted) at open and whenever it holds many more entries than
//! the segments still need: the rewrite keeps only the ids of dead records in files that still
//! exist. It is written to a temporary file and renamed over the old one, so a crash leaves
//! one or the other whole.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::SpoolError;

const MAGIC: [u8; 4] = *b"TTJ1";
const HEADER_LEN: u64 = 16;
const ENTRY_LEN: u64 = 12;
pub(crate) const FILE_NAME: &str = "acks.log";
const TMP_NAME: &str = "acks.tmp";

/// What [`load`] found.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Ids below this were used before.
    pub(crate) floor: u64,
    pub(crate) removed: HashSet<u64>,
    /// Bytes of entries that were torn or failed their CRC.
    pub(crate) bad_bytes: u64,
}

/// The open journal, appended to by the spool.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    entries: u64,
    dirty: bool,
}

/// Reads the journal in `dir`; a missing file is an empty journal.
pub(crate) fn load(dir: &Path) -> Result<Loaded, SpoolError> {
    let path = dir.join(FILE_NAME);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| SpoolError::io(&path, e))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(SpoolError::io(&path, e)),
    }
    let mut loaded = Loaded::default();
    let Some((head, rest)) = bytes.split_first_chunk::<{ HEADER_LEN as usize }>() else {
        loaded.bad_bytes = bytes.len() as u64;
        return Ok(loaded);
    };
    let floor = u64_le(&head[4..12]);
    if head[0..4] == MAGIC && crc(&head[4..12]) == u32_le(&head[12..16]) {
        loaded.floor = floor;
    } else {
        tracing::warn!(path = %path.display(), "ack journal header is damaged; ids fall back to what the segments show");
        loaded.bad_bytes += HEADER_LEN;
    }
    let mut chunks = rest.chunks_exact(ENTRY_LEN as usize);
    for e in &mut chunks {
        if crc(&e[0..8]) == u32_le(&e[8..12]) {
            loaded.removed.insert(u64_le(&e[0..8]));
        } else {
            loaded.bad_bytes += ENTRY_LEN;
        }
    }
    loaded.bad_bytes += chunks.remainder().len() as u64;
    Ok(loaded)
}

impl Journal {
    /// Writes a fresh journal holding `floor` and `ids` and makes it the current one.
    /// `durable` fsyncs the new file before the rename and the directory after it.
    pub(crate) fn rewrite(
        dir: &Path,
        floor: u64,
        ids: impl Iterator<Item = u64>,
        durable: bool,
    ) -> Result<Journal, SpoolError> {
        let tmp = dir.join(TMP_NAME);
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&tmp)
            .map_err(|e| SpoolError::io(&tmp, e))?;
        let mut w = BufWriter::new(&file);
        let mut head = [0u8; HEADER_LEN as usize];
        head[0..4].copy_from_slice(&MAGIC);
        head[4..12].copy_from_slice(&floor.to_le_bytes());
        let c = crc(&head[4..12]);
        head[12..16].copy_from_slice(&c.to_le_bytes());
        let mut entries = 0u64;
        let write = |w: &mut BufWriter<&File>, entries: &mut u64| -> io::Result<()> {
            w.write_all(&head)?;
            for id in ids {
                w.write_all(&entry(id))?;
                *entries += 1;
            }
            w.flush()
        };
        write(&mut w, &mut entries).map_err(|e| SpoolError::io(&tmp, e))?;
        drop(w);
        if durable {
            file.sync_all().map_err(|e| SpoolError::io(&tmp, e))?;
        }
        fs::rename(&tmp, &path).map_err(|e| SpoolError::io(&path, e))?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(Journal {
            path,
            file,
            len: HEADER_LEN + entries * ENTRY_LEN,
            entries,
            dirty: false,
        })
    }

    /// Appends one removed id. Positional writes at the known end keep entries aligned even
    /// after a failed write left a partial entry behind: the next one overwrites it.
    pub(crate) fn record(&mut self, id: u64) -> Result<(), SpoolError> {
        self.file
            .write_all_at(&entry(id), self.len)
            .map_err(|e| SpoolError::io(&self.path, e))?;
        self.len += ENTRY_LEN;
        self.entries += 1;
        self.dirty = true;
        Ok(())
    }

    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// fsyncs when something was appended since the last time; returns whether it did.
    pub(crate) fn sync(&mut self) -> Result<bool, SpoolError> {
        if !self.dirty {
            return Ok(false);
        }
        self.file
            .sync_data()
            .map_err(|e| SpoolError::io(&self.path, e))?;
        self.dirty = false;
        Ok(true)
    }
}

/// fsyncs a directory, which is what makes a created, renamed or deleted name durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SpoolError::io(dir, e))
}

/// Removes a temporary file left by a compaction that crashed before its rename.
pub(crate) fn remove_leftover_tmp(dir: &Path) -> Result<(), SpoolError> {
    let tmp = dir.join(TMP_NAME);
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SpoolError::io(&tmp, e)),
    }
}

fn entry(id: u64) -> [u8; ENTRY_LEN as usize] {
    let mut e = [0u8; ENTRY_LEN as usize];
    e[0..8].copy_from_slice(&id.to_le_bytes());
    let c = crc(&e[0..8]);
    e[8..12].copy_from_slice(&c.to_le_bytes());
    e
}

fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

fn u64_le(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn u32_le(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_record_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::rewrite(dir.path(), 100, [3, 5].into_iter(), false).unwrap();
        j.record(7).unwrap();
        assert_eq!(j.entries(), 3);
        let l = load(dir.path()).unwrap();
        assert_eq!(l.floor, 100);
        assert_eq!(l.removed, HashSet::from([3, 5, 7]));
        assert_eq!(l.bad_bytes, 0);
    }

    #[test]
    fn torn_and_flipped_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::rewrite(dir.path(), 1, [10, 11, 12].into_iter(), false).unwrap();
        j.record(13).unwrap();
        drop(j);
        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        bytes[16 + 12] ^= 1; // entry for 11
        bytes.truncate(bytes.len() - 3); // 13 torn
        fs::write(&path, &bytes).unwrap();
        let l = load(dir.path()).unwrap();
        assert_eq!(l.removed, HashSet::from([10, 12]));
        assert_eq!(l.bad_bytes, 12 + 9);
    }
}
