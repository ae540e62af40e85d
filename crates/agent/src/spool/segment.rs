//! Segment files: their names, and reading one back at open.
//!
//! A segment holds records of one class only, appended in id order. Keeping classes apart
//! is what keeps the disk bounded: within a class records leave (acked or dropped) almost in
//! the order they came, so the oldest segment of a class empties and is deleted, while a
//! shared log would be pinned by one old DTC report sitting among thousands of acked
//! telemetry batches.
//!
//! The file is named after its class and the id of its first record
//! (`telemetry-00000000000000000042.seg`), so names sort in append order and no separate
//! counter is needed.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::Class;
use super::frame::{self, HEADER_LEN};

const SUFFIX: &str = ".seg";

/// What the spool keeps in memory about one segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    /// Bytes in the file (after any truncation at open).
    pub(crate) len: u64,
    /// Records in this file still in the spool.
    pub(crate) live: u32,
    /// Ids in this file already acked or dropped: what the ack journal must keep saying
    /// while the file exists, and nothing more (see `journal`).
    pub(crate) dead: Vec<u64>,
    /// False when the file must not be appended to (its damage could not be cut off).
    pub(crate) appendable: bool,
}

pub(crate) fn file_name(class: Class, first_id: u64) -> String {
    format!("{}-{first_id:020}{SUFFIX}", class.file_stem())
}

/// The class and first id a segment file name says, or `None` for any other file.
pub(crate) fn parse_file_name(name: &str) -> Option<(Class, u64)> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (class, id) = stem.rsplit_once('-')?;
    let class = Class::ALL.into_iter().find(|c| c.file_stem() == class)?;
    if id.len() != 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((class, id.parse().ok()?))
}

/// One valid record found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) id: u64,
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

/// How a segment ended when it did not end cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// The last record is incomplete, or the tail is zeros: a crash while appending.
    Torn,
    /// A bad record with more data after it: bit rot or an outside write.
    Corrupt,
}

#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) records: Vec<Found>,
    /// Where the valid records end; anything after is to be cut off.
    pub(crate) good_len: u64,
    pub(crate) file_len: u64,
    pub(crate) damage: Option<Damage>,
}

/// Reads a segment record by record, keeping the valid prefix. A record must have the
/// segment's class and an id above the one before it (and at least `first_id`); the first
/// one that does not, or fails its CRC, ends the segment. Reads through a small buffer
/// rather than loading the file: segments can be megabytes and the agent's budget is not.
pub(crate) fn scan(path: &Path, class: Class, first_id: u64) -> io::Result<Scanned> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(16 * 1024, file);
    let mut records = Vec::new();
    let mut offset: u64 = 0;
    let mut prev_id: Option<u64> = None;
    let mut body = Vec::new();
    let damage = loop {
        let mut head = [0u8; HEADER_LEN];
        let got = read_full(&mut r, &mut head)?;
        if got == 0 {
            break None;
        }
        if got < HEADER_LEN {
            break Some(Damage::Torn);
        }
        let header = match frame::parse_header(&head) {
            Ok(h) => h,
            Err(_) => break Some(classify(&head, &mut r)?),
        };
        if offset + u64::from(header.len) > file_len {
            break Some(Damage::Torn);
        }
        body.resize(header.len as usize - HEADER_LEN, 0);
        let got = read_full(&mut r, &mut body)?;
        if got < body.len() {
            break Some(Damage::Torn);
        }
        let in_order = header.id >= first_id && prev_id.is_none_or(|p| header.id > p);
        let Ok(offset32) = u32::try_from(offset) else {
            break Some(Damage::Corrupt);
        };
        if header.check_body(&head, &body).is_err() || header.class != class || !in_order {
            let last = offset + u64::from(header.len) == file_len;
            break Some(if last { Damage::Torn } else { Damage::Corrupt });
        }
        records.push(Found {
            id: header.id,
            offset: offset32,
            len: header.len,
        });
        prev_id = Some(header.id);
        offset += u64::from(header.len);
    };
    Ok(Scanned {
        records,
        good_len: offset,
        file_len,
        damage,
    })
}

/// A bad header is a torn append when it and everything after it are zeros (what a file
/// extended but never written holds after power loss); otherwise corruption.
fn classify(head: &[u8], r: &mut impl Read) -> io::Result<Damage> {
    if head.iter().any(|&b| b != 0) {
        return Ok(Damage::Corrupt);
    }
    let mut buf = [0u8; 4096];
    loop {
        let n = read_full(r, &mut buf)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(Damage::Corrupt);
        }
        if n < buf.len() {
            return Ok(Damage::Torn);
        }
    }
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_in_id_order() {
        let a = file_name(Class::CmdResult, 9);
        let b = file_name(Class::CmdResult, 10);
        assert_eq!(a, "cmd-result-00000000000000000009.seg");
        assert!(a < b);
        assert_eq!(parse_file_name(&a), Some((Class::CmdResult, 9)));
        assert_eq!(parse_file_name("acks.log"), None);
        assert_eq!(parse_file_name("dtc-12.seg"), None);
        assert_eq!(parse_file_name("bogus-00000000000000000009.seg"), None);
    }
}
