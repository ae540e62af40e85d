//! The serial line to an adapter, and making it faster with `AT BRD`.
//!
//! Most ELM327 adapters power up at 38400 baud, and at that speed a six-PID answer with
//! headers takes longer on the wire than on the CAN bus. `AT BRD hh` (ELM327 data sheet, "Using
//! Higher RS232 Baud Rates") proposes the rate 4 000 000 / hh baud: the adapter answers `OK`
//! (no prompt) at the old rate, switches, waits the `AT BRT` time (75 ms), prints its id
//! string at the new rate, and keeps the new rate only if a carriage return comes back within
//! 75 ms; otherwise it falls back to the old one. The host compares the id string with the
//! one the adapter printed at reset and answers the carriage return only when they match, so
//! a line that garbles the faster rate falls back on both ends.
//!
//! `AT Z` returns the adapter to its power-up rate while `AT WS` (warm start) keeps the
//! agreed one, so a re-initialisation on a faster line starts with `AT WS`; when that goes
//! unanswered (the adapter lost power and is back at its power-up rate) the host goes back to
//! the power-up rate too, resets with `AT Z` and proposes the faster rate again.
//!
//! Only serial ports have a line speed ([`AdapterStream::set_baud_rate`]); TCP dongles and
//! Bluetooth serial (`/dev/rfcomm0`, where the speed is the radio's business) never try.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::adapter::Adapter;
use crate::client::DiagError;

/// The clock `AT BRD` divides: the rate is 4 000 000 / divisor baud.
const BRD_CLOCK: u32 = 4_000_000;
/// How long the adapter waits before it prints its id at the new rate (`AT BRT` default).
const BRD_WAIT: Duration = Duration::from_millis(75);
/// How long the id string may take to arrive, beyond [`BRD_WAIT`].
const ID_SLACK: Duration = Duration::from_millis(500);

/// A byte stream to an adapter. Serial ports can also change their speed, which `AT BRD`
/// needs; other streams (TCP, in-memory pipes) have none and keep the default.
pub trait AdapterStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Sets the line speed in baud.
    fn set_baud_rate(&mut self, baud: u32) -> io::Result<()> {
        let _ = baud;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this link has no line speed",
        ))
    }
}

impl AdapterStream for tokio_serial::SerialStream {
    fn set_baud_rate(&mut self, baud: u32) -> io::Result<()> {
        tokio_serial::SerialPort::set_baud_rate(self, baud).map_err(io::Error::from)
    }
}

impl AdapterStream for tokio::net::TcpStream {}

impl AdapterStream for tokio::io::DuplexStream {}

/// The divisor `AT BRD` takes for the rate nearest `baud`, and that rate; `None` when no
/// divisor (1 to 255) comes within 3 % of it.
pub fn brd_divisor(baud: u32) -> Option<(u8, u32)> {
    if baud == 0 {
        return None;
    }
    let divisor = (BRD_CLOCK + baud / 2) / baud;
    let divisor = u8::try_from(divisor).ok().filter(|&d| d > 0)?;
    let actual = BRD_CLOCK / u32::from(divisor);
    (actual.abs_diff(baud) * 100 <= baud * 3).then_some((divisor, actual))
}

/// The serial line's speeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LineSpeed {
    /// The adapter's power-up rate, where the dialogue starts.
    pub(super) power_up: u32,
    /// The rate asked for with `AT BRD`, while it is still worth trying.
    pub(super) wanted: Option<u32>,
    /// The rate both ends use now.
    pub(super) now: u32,
}

impl LineSpeed {
    pub(super) fn new(power_up: u32, wanted: Option<u32>) -> LineSpeed {
        LineSpeed {
            power_up,
            wanted: wanted.filter(|&w| w != power_up),
            now: power_up,
        }
    }

    /// Whether a faster rate than the power-up one is in use.
    pub(super) fn is_raised(self) -> bool {
        self.now != self.power_up
    }
}

impl<S: AdapterStream> Adapter<S> {
    /// Proposes the wanted rate with `AT BRD`, after a reset (echo off). Any failure leaves
    /// both ends at the rate they had; only a closed port is an error.
    pub(super) async fn raise_line_speed(&mut self) -> Result<(), DiagError> {
        let Some(line) = self.line else {
            return Ok(());
        };
        let Some(wanted) = line.wanted.filter(|_| !line.is_raised()) else {
            return Ok(());
        };
        let Some((divisor, rate)) = brd_divisor(wanted) else {
            tracing::warn!(
                baud = wanted,
                "no AT BRD divisor gives this rate (4000000 / 1..255, within 3 %); staying at {} baud",
                line.power_up
            );
            self.give_up_raising();
            return Ok(());
        };
        match self.try_brd(divisor, rate).await? {
            Ok(()) => {
                tracing::info!(baud = rate, "serial line raised with AT BRD");
                if let Some(l) = self.line.as_mut() {
                    l.now = rate;
                }
            }
            Err(why) => {
                tracing::warn!(baud = rate, cause = %why, "AT BRD failed; staying at {} baud", line.now);
                self.give_up_raising();
            }
        }
        Ok(())
    }

    fn give_up_raising(&mut self) {
        if let Some(l) = self.line.as_mut() {
            l.wanted = None;
        }
    }

    /// The `AT BRD` handshake. The outer error is a closed port; the inner one says why the
    /// rate was not agreed (both ends are back at the old rate then).
    async fn try_brd(&mut self, divisor: u8, rate: u32) -> Result<Result<(), String>, DiagError> {
        let old = self.line.map_or(rate, |l| l.now);
        let cmd = format!("ATBRD{divisor:02X}\r");
        self.write_raw(cmd.as_bytes()).await?;
        let until = Instant::now() + self.opts.elm327.command_timeout;
        let mut first = self.read_line_or_prompt(until).await?;
        // A clone whose echo cannot be turned off repeats the command first.
        if first
            .as_deref()
            .is_some_and(|l| l.trim().eq_ignore_ascii_case(cmd.trim()))
        {
            first = self.read_line_or_prompt(until).await?;
        }
        match first.as_deref().map(str::trim) {
            Some("OK") => {}
            Some(other) => {
                self.drain().await?;
                return Ok(Err(format!(
                    "the adapter answered {other:?} to AT BRD (not supported)"
                )));
            }
            None => return Ok(Err("no answer to AT BRD".into())),
        }
        if let Err(e) = self.io.set_baud_rate(rate) {
            self.fall_back(old).await?;
            return Ok(Err(format!(
                "the serial port cannot run at {rate} baud: {e}"
            )));
        }
        let id = self
            .read_line_or_prompt(Instant::now() + BRD_WAIT + ID_SLACK)
            .await?;
        let expected = self.version.clone();
        let id_matches = id
            .as_deref()
            .map(str::trim)
            .is_some_and(|got| !got.is_empty() && expected.as_deref().is_none_or(|e| e == got));
        if !id_matches {
            self.fall_back(old).await?;
            return Ok(Err(format!(
                "the id string at {rate} baud was {id:?}, expected {expected:?}"
            )));
        }
        self.write_raw(b"\r").await?;
        let confirm = self
            .read_line_or_prompt(Instant::now() + BRD_WAIT + ID_SLACK)
            .await?;
        if confirm.as_deref().map(str::trim) == Some("OK") {
            // The prompt after the OK.
            self.drain().await?;
            Ok(Ok(()))
        } else {
            self.fall_back(old).await?;
            Ok(Err(format!(
                "the adapter did not confirm {rate} baud (got {confirm:?})"
            )))
        }
    }

    /// Both ends back at `rate`: the adapter reverts by itself when the handshake fails.
    async fn fall_back(&mut self, rate: u32) -> Result<(), DiagError> {
        if let Err(e) = self.io.set_baud_rate(rate) {
            return Err(DiagError::Adapter(format!(
                "cannot set the serial port back to {rate} baud: {e}"
            )));
        }
        if let Some(l) = self.line.as_mut() {
            l.now = rate;
        }
        tokio::time::sleep(BRD_WAIT * 2).await;
        self.drain().await
    }

    /// After a warm start failed on a raised line: the adapter is back at its power-up rate
    /// (it lost power, or reset itself), so the host goes back there too.
    pub(super) async fn lower_line_speed(&mut self) -> Result<(), DiagError> {
        let Some(line) = self.line.filter(|l| l.is_raised()) else {
            return Ok(());
        };
        tracing::info!(
            baud = line.power_up,
            "the adapter does not answer on the raised line; back to its power-up rate"
        );
        self.fall_back(line.power_up).await
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), DiagError> {
        self.buf.clear();
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.opts.elm327.command_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(DiagError::Adapter(format!("writing to the adapter: {e}"))),
            Err(_) => Err(DiagError::Adapter("the adapter took no input".into())),
        }
    }

    /// The next non-empty line (up to `\r`), or the text before a prompt; `None` at `until`.
    /// Bytes that are not text (a line at the wrong speed) make the line unreadable, which
    /// comes back as its lossy text.
    async fn read_line_or_prompt(&mut self, until: Instant) -> Result<Option<String>, DiagError> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            if self.read_until(&mut byte, until).await?.is_none() {
                return Ok(None);
            }
            match byte[0] {
                b'\r' | b'\n' | b'>' if line.iter().any(|b: &u8| !b.is_ascii_whitespace()) => {
                    return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
                }
                b'\r' | b'\n' | b'>' | 0 => {}
                b => line.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisors_as_the_data_sheet_gives_them() {
        // 57.6 kbaud is divisor 0x45 (69): 57 971 baud, 0.6 % off.
        assert_eq!(brd_divisor(57_600), Some((0x45, 57_971)));
        assert_eq!(brd_divisor(115_200), Some((0x23, 114_285)));
        assert_eq!(brd_divisor(500_000), Some((0x08, 500_000)));
        assert_eq!(brd_divisor(4_000_000), Some((0x01, 4_000_000)));
        // Too slow for a one-byte divisor, or between two divisors by more than 3 %.
        assert_eq!(brd_divisor(9_600), None);
        assert_eq!(brd_divisor(2_600_000), None);
        assert_eq!(brd_divisor(0), None);
    }
}
