//! The on-disk record frame: encoding and checking, no I/O.
//!
//! ```text
//! offset  size  field
//!      0     4  magic and version, b"TTS1"
//!      4     4  frame length in bytes, header included (u32 LE)
//!      8     4  CRC-32 (IEEE) of bytes 4..8 and 12..end
//!     12     8  record id (u64 LE)
//!     20     1  class (0 telemetry, 1 info, 2 cmd-result, 3 dtc)
//!     21     1  flags, 0 (room for a later version without a new magic)
//!     22     2  topic length (u16 LE)
//!     24     …  topic (UTF-8), then payload
//! ```
//!
//! The length sits in front of the CRC so a reader knows how much to read before it can
//! check anything; the CRC covers the length too, so a torn or flipped length is caught
//! rather than believed. The magic is checked by equality (it is outside the CRC) and marks
//! where a frame is expected to start.

use super::Class;

pub(crate) const MAGIC: [u8; 4] = *b"TTS1";
pub(crate) const HEADER_LEN: usize = 24;

/// Why a message cannot be framed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SizeError {
    TopicTooLong(usize),
    FrameTooLarge(u64),
}

/// Why bytes on disk are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    Magic,
    Length,
    Class,
    Crc,
    Topic,
}

/// The fixed part of a frame, as parsed from its first [`HEADER_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: u32,
    crc: u32,
    pub(crate) id: u64,
    pub(crate) class: Class,
    pub(crate) topic_len: u16,
}

/// A frame checked whole.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded<'a> {
    pub(crate) header: Header,
    pub(crate) topic: &'a str,
    pub(crate) payload: &'a [u8],
}

/// Bytes a message takes on disk.
pub(crate) fn frame_len(topic_len: usize, payload_len: usize) -> u64 {
    HEADER_LEN as u64 + topic_len as u64 + payload_len as u64
}

/// Writes the frame for a message into `buf` (replacing what was there).
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    id: u64,
    class: Class,
    topic: &str,
    payload: &[u8],
) -> Result<(), SizeError> {
    let topic_len = u16::try_from(topic.len()).map_err(|_| SizeError::TopicTooLong(topic.len()))?;
    let total = frame_len(topic.len(), payload.len());
    let len = u32::try_from(total).map_err(|_| SizeError::FrameTooLarge(total))?;
    buf.clear();
    buf.reserve(total as usize);
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.push(class as u8);
    buf.push(0);
    buf.extend_from_slice(&topic_len.to_le_bytes());
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(payload);
    let crc = crc_of(&buf[..HEADER_LEN], &buf[HEADER_LEN..]);
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Parses the fixed header; the CRC can only be checked once the body is read too.
pub(crate) fn parse_header(h: &[u8; HEADER_LEN]) -> Result<Header, FrameError> {
    if h[0..4] != MAGIC {
        return Err(FrameError::Magic);
    }
    let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    let id = u64::from_le_bytes([h[12], h[13], h[14], h[15], h[16], h[17], h[18], h[19]]);
    let class = Class::from_u8(h[20]).ok_or(FrameError::Class)?;
    let topic_len = u16::from_le_bytes([h[22], h[23]]);
    if h[21] != 0 || (len as usize) < HEADER_LEN + topic_len as usize {
        return Err(FrameError::Length);
    }
    Ok(Header {
        len,
        crc,
        id,
        class,
        topic_len,
    })
}

impl Header {
    /// Checks the CRC over the header bytes and the body that followed them, and that the
    /// topic is text.
    pub(crate) fn check_body(
        &self,
        header: &[u8; HEADER_LEN],
        body: &[u8],
    ) -> Result<(), FrameError> {
        if body.len() + HEADER_LEN != self.len as usize {
            return Err(FrameError::Length);
        }
        if crc_of(header, body) != self.crc {
            return Err(FrameError::Crc);
        }
        std::str::from_utf8(&body[..self.topic_len as usize]).map_err(|_| FrameError::Topic)?;
        Ok(())
    }
}

/// Checks a whole frame read back from disk and splits it.
pub(crate) fn decode(frame: &[u8]) -> Result<Decoded<'_>, FrameError> {
    let Some((head, body)) = frame.split_first_chunk::<HEADER_LEN>() else {
        return Err(FrameError::Length);
    };
    let header = parse_header(head)?;
    header.check_body(head, body)?;
    let (topic, payload) = body.split_at(header.topic_len as usize);
    let topic = std::str::from_utf8(topic).map_err(|_| FrameError::Topic)?;
    Ok(Decoded {
        header,
        topic,
        payload,
    })
}

/// The CRC skips the magic (checked by equality) and the CRC field itself.
fn crc_of(header: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[4..8]);
    h.update(&header[12..HEADER_LEN]);
    h.update(body);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(
            &mut buf,
            42,
            Class::Dtc,
            "telltale/v1/d/dtc",
            b"\x01\x02\x03",
        )
        .unwrap();
        assert_eq!(buf.len() as u64, frame_len(17, 3));
        let d = decode(&buf).unwrap();
        assert_eq!(d.header.id, 42);
        assert_eq!(d.header.class, Class::Dtc);
        assert_eq!(d.topic, "telltale/v1/d/dtc");
        assert_eq!(d.payload, b"\x01\x02\x03");
    }

    #[test]
    fn every_single_byte_change_is_caught() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, Class::Telemetry, "t", b"payload").unwrap();
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x5a;
            assert!(decode(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn long_topic_is_refused() {
        let mut buf = Vec::new();
        let topic = "x".repeat(70_000);
        assert_eq!(
            encode(&mut buf, 1, Class::Info, &topic, b""),
            Err(SizeError::TopicTooLong(70_000))
        );
    }
}
