//! The adapter side of SLCAN: emulates a Lawicel serial CAN adapter on a byte stream (a pty
//! master, a TCP connection) and bridges it to a [`CanBus`]. The simulator uses it to offer a
//! simulated vehicle as if through a CANable plugged into the car.
//!
//! Answers `Sn`, `O`, `L`, `C`, `V`, `N`, `F`, `Z0`/`Z1` and `t`/`T` like an adapter does: `\r`
//! for OK, BEL for an error (unknown or malformed command, transmit while closed, bitrate change
//! while open), `z\r`/`Z\r` after a transmission. While the channel is open, every frame on the
//! bus is written to the stream (with a millisecond timestamp when `Z1` is set). The emulated
//! adapter has no real bitrate: `Sn` is remembered, not enforced. Remote frames are refused
//! (the bus carries data frames only); `s`, `M` and `m` are not implemented (BEL).
//!
//! When the stream cannot take output for a second, the frame is dropped and the data overrun
//! flag set (a partially written line is resynchronised by the host at the next `\r`).

use std::pin::pin;
use std::time::Duration;

use telltale_obd::CanId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::codec::{Command, Event, LineBuffer, StatusFlags, Token, decode_command, encode_event};
use crate::bus::{BusError, CanBus, Filter, Subscription};
use crate::error::LinkError;

/// The version the emulated adapter reports (`V`): hardware 1.0, firmware 1.0.
pub const VERSION: &str = "1010";
/// The serial number it reports (`N`).
pub const SERIAL: &str = "TT01";
/// How long a write to the stream, or a frame's way onto the bus, may take.
const STALL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Adapter {
    bus: CanBus,
    /// Subscribed while the channel is open.
    rx: Option<Subscription>,
    listen_only: bool,
    timestamps: bool,
    bitrate: u8,
    flags: u8,
    opened_at: Instant,
}

impl Adapter {
    fn timestamp(&self) -> Option<u16> {
        self.timestamps
            .then(|| (self.opened_at.elapsed().as_millis() % 60_000) as u16)
    }

    /// What to answer to one command.
    async fn answer(&mut self, cmd: Command) -> Event {
        match cmd {
            Command::SetBitrate(code) if self.rx.is_none() => {
                self.bitrate = code;
                Event::Ok
            }
            Command::Open | Command::ListenOnly if self.rx.is_none() => {
                self.listen_only = cmd == Command::ListenOnly;
                self.rx = Some(self.bus.subscribe(&[Filter::all(false), Filter::all(true)]));
                self.opened_at = Instant::now();
                debug!(
                    bus = self.bus.name(),
                    bitrate_code = self.bitrate,
                    "SLCAN channel open"
                );
                Event::Ok
            }
            Command::Close => {
                self.rx = None;
                Event::Ok
            }
            Command::Version => Event::Version(VERSION.into()),
            Command::Serial => Event::Serial(SERIAL.into()),
            Command::Status => Event::Status(StatusFlags(std::mem::take(&mut self.flags))),
            Command::Timestamps(on) if self.rx.is_none() => {
                self.timestamps = on;
                Event::Ok
            }
            Command::Transmit(frame) if self.rx.is_some() && !self.listen_only => {
                match tokio::time::timeout(STALL, self.bus.send(frame)).await {
                    Ok(Ok(())) => Event::TransmitAck {
                        extended: matches!(frame.id(), CanId::Extended(_)),
                    },
                    _ => {
                        self.flags |= StatusFlags::TX_FIFO_FULL;
                        Event::Error
                    }
                }
            }
            _ => Event::Error,
        }
    }
}

/// Serves `stream` as an SLCAN adapter attached to `bus` until the stream ends (`Ok`) or fails
/// (`Err`). A pty master reports an I/O error (EIO) once the last process holding the slave
/// closes it; a caller that keeps the pty can call this again for the next session.
pub async fn serve_adapter<S: AsyncRead + AsyncWrite>(
    stream: S,
    bus: CanBus,
) -> Result<(), LinkError> {
    let link = format!("SLCAN adapter for {}", bus.name());
    let io = |doing: &'static str| {
        let link = link.clone();
        move |source| LinkError::Io {
            link,
            doing,
            source,
        }
    };
    let mut stream = pin!(stream);
    let mut adapter = Adapter {
        bus,
        rx: None,
        listen_only: false,
        timestamps: false,
        bitrate: 6,
        flags: 0,
        opened_at: Instant::now(),
    };
    let mut lines = LineBuffer::new();
    let mut buf = [0u8; 256];
    loop {
        let output = tokio::select! {
            read = stream.read(&mut buf) => {
                let n = read.map_err(io("reading commands"))?;
                if n == 0 {
                    debug!(link = %link, "host closed the stream");
                    return Ok(());
                }
                lines.push(&buf[..n]);
                let mut out = Vec::new();
                while let Some(token) = lines.next_token() {
                    let answer = match token {
                        Ok(Token::Line(line)) if line.is_empty() => continue,
                        Ok(Token::Bell) => continue,
                        Ok(Token::Line(line)) => match decode_command(&line) {
                            Ok(cmd) => adapter.answer(cmd).await,
                            Err(err) => {
                                warn!(link = %link, error = %err, "bad SLCAN command");
                                Event::Error
                            }
                        },
                        Err(err) => {
                            warn!(link = %link, error = %err, "SLCAN input out of sync");
                            Event::Error
                        }
                    };
                    out.extend_from_slice(&encode_event(&answer));
                }
                out
            }
            heard = recv(&mut adapter.rx) => match heard {
                Ok(frame) => encode_event(&Event::Frame { frame, timestamp: adapter.timestamp() }),
                Err(BusError::Overrun { .. }) => {
                    adapter.flags |= StatusFlags::DATA_OVERRUN;
                    continue;
                }
                Err(BusError::Fault(_) | BusError::Io(_)) => {
                    adapter.flags |= StatusFlags::BUS_ERROR;
                    continue;
                }
                Err(BusError::Closed) => {
                    warn!(link = %link, "the CAN bus behind the adapter is gone; channel closed");
                    adapter.rx = None;
                    adapter.flags |= StatusFlags::BUS_ERROR;
                    continue;
                }
            },
        };
        if output.is_empty() {
            continue;
        }
        let written = tokio::time::timeout(STALL, async {
            stream.write_all(&output).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(result) => result.map_err(io("writing answers"))?,
            Err(_) => {
                warn!(link = %link, "host is not reading; output dropped");
                adapter.flags |= StatusFlags::DATA_OVERRUN;
            }
        }
    }
}

/// The next frame while the channel is open; never resolves while it is closed.
async fn recv(rx: &mut Option<Subscription>) -> Result<telltale_obd::CanFrame, BusError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
