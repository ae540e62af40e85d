//! Cutting the adapter's byte stream into replies.

use super::{Elm327Error, MAX_REPLY_LEN, PROMPT};

/// Cuts the adapter's byte stream into replies: the text before each `>` prompt.
///
/// Bounded: at most [`MAX_REPLY_LEN`] bytes are held. When a reply grows past that, the
/// buffer yields [`Elm327Error::Overlong`] at once, then discards everything up to and
/// including the next prompt, where it resynchronises. Replies that contain bytes the ELM327
/// never prints (non-ASCII, control characters other than CR, LF and tab) yield
/// [`Elm327Error::NotText`]. NUL bytes are dropped wherever they occur.
#[derive(Debug, Clone, Default)]
pub struct ReplyBuffer {
    buf: Vec<u8>,
    discarding: bool,
}

impl ReplyBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes as they arrive, in chunks of any size, and returns every reply they
    /// completed, in order (usually none or one). The result never holds more entries than
    /// `bytes` holds prompts, plus one overflow error.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<String, Elm327Error>> {
        bytes.iter().filter_map(|&b| self.push_byte(b)).collect()
    }

    /// Bytes of an unfinished reply held so far.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets the unfinished reply, e.g. after the caller timed out and reset the adapter.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    fn push_byte(&mut self, b: u8) -> Option<Result<String, Elm327Error>> {
        match b {
            0 => None,
            PROMPT if self.discarding => {
                self.discarding = false;
                None
            }
            PROMPT => Some(reply_text(std::mem::take(&mut self.buf))),
            _ if self.discarding => None,
            _ if self.buf.len() >= MAX_REPLY_LEN => {
                self.buf.clear();
                self.discarding = true;
                Some(Err(Elm327Error::Overlong {
                    limit: MAX_REPLY_LEN,
                }))
            }
            _ => {
                self.buf.push(b);
                None
            }
        }
    }
}

/// Checks that a reply is the printable ASCII the ELM327 emits.
pub(super) fn reply_text(bytes: Vec<u8>) -> Result<String, Elm327Error> {
    let bad = bytes
        .iter()
        .enumerate()
        .find(|&(_, &b)| !(b == b'\r' || b == b'\n' || b == b'\t' || (b' '..=b'~').contains(&b)));
    if let Some((offset, &byte)) = bad {
        return Err(Elm327Error::NotText { byte, offset });
    }
    String::from_utf8(bytes).map_err(|e| Elm327Error::NotText {
        byte: 0xFF,
        offset: e.utf8_error().valid_up_to(),
    })
}
