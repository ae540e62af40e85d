//! The simulator as an ELM327 adapter: software written for the cheap OBD-II dongles
//! (python-OBD, Torque, our own `elm327:` link) talks to a simulated [`Vehicle`] unchanged,
//! over a pseudo-terminal (as a USB serial adapter) or TCP (as a Wi-Fi dongle).
//!
//! - [`session`]: the adapter without I/O: settings, command execution, timed output
//!   (its documentation lists the behaviour emulated and what is not);
//! - [`bus`]: the vehicle's bus (CAN or an older one), its ECUs' addresses and the time a
//!   protocol takes to find and open;
//! - [`command`]: parsing a command line; [`format`](mod@format): printing received frames;
//! - this module: the async servers, which only move bytes and play the timed output.
//!
//! The servers hold the vehicle's lock only while a command executes, never across an
//! `.await`. Before each command they move the vehicle's clock to the time elapsed since the
//! server started ([`Vehicle::advance_to`]; earlier times are ignored, so several servers
//! and drivers may share a vehicle).

pub mod bus;
pub mod command;
pub mod format;
pub mod session;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

pub use bus::VehicleBus;
pub use session::{Ecus, Elm327, Output, Quirks};

use crate::pty::{Pty, PtyError};
use crate::vehicle::Vehicle;

/// Size of one read from the host; lines are short, so this bounds the queued input too.
const READ_CHUNK: usize = 512;

/// Serves one host on `stream` with `adapter` (freshly powered up: [`Elm327::with_bus`], with
/// a clone's [`Quirks`] if wanted), plugged into `vehicle`, until the host closes it.
pub async fn serve_elm327<S>(
    stream: S,
    vehicle: Arc<Mutex<Vehicle>>,
    mut adapter: Elm327,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite,
{
    run(stream, &mut adapter, &vehicle, Instant::now()).await
}

/// Serves `adapter`, plugged into `vehicle`, on TCP, as a Wi-Fi dongle does: one host at a
/// time. A host that connects while another is served is accepted and closed at once (a clear failure rather
/// than a connection that never answers). Like a real dongle, the adapter keeps its settings
/// from one connection to the next (hosts send `ATZ` first). Returns when `shutdown`
/// completes, dropping the connection in progress; an error only if accepting fails for
/// good.
pub async fn serve_elm327_tcp(
    listener: TcpListener,
    vehicle: Arc<Mutex<Vehicle>>,
    mut adapter: Elm327,
    shutdown: impl Future,
) -> io::Result<()> {
    let start = Instant::now();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(cause = %e, "ELM327 TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        tracing::info!(%peer, "ELM327 host connected");
        let session = run(stream, &mut adapter, &vehicle, start);
        tokio::pin!(session);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                result = &mut session => {
                    match result {
                        Ok(()) => tracing::info!(%peer, "ELM327 host disconnected"),
                        Err(e) => tracing::warn!(%peer, cause = %e, "ELM327 connection failed"),
                    }
                    break;
                }
                accepted = listener.accept() => {
                    if let Ok((extra, other)) = accepted {
                        tracing::warn!(peer = %other, "ELM327 adapter busy with {peer}; closing");
                        drop(extra);
                    }
                }
            }
        }
    }
}

/// Why the pty server stopped.
#[derive(Debug, thiserror::Error)]
pub enum PtyServeError {
    #[error(transparent)]
    Pty(#[from] PtyError),
    #[error("pseudo-terminal I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// Serves `adapter`, plugged into `vehicle`, on a new pseudo-terminal, reachable at the
/// symlink `link`, until
/// `shutdown` completes; the symlink is removed then. Hosts may open and close the
/// terminal any number of times; the adapter keeps its state between them, as a USB
/// adapter that stays plugged in does.
pub async fn serve_elm327_pty(
    link: &Path,
    vehicle: Arc<Mutex<Vehicle>>,
    mut adapter: Elm327,
    shutdown: impl Future,
) -> Result<(), PtyServeError> {
    let pty = Pty::open()?;
    let _link = pty.link(link)?;
    tracing::info!(link = %link.display(), device = %pty.slave_path().display(), "ELM327 adapter on pty");
    tokio::select! {
        _ = shutdown => Ok(()),
        result = run(pty, &mut adapter, &vehicle, Instant::now()) => Ok(result?),
    }
}

/// The byte pump: reads lines, executes them, plays the output back, stops an OBD request
/// when the host sends something meanwhile. Returns at end of stream.
async fn run<S, V>(
    stream: S,
    adapter: &mut Elm327,
    vehicle: &Mutex<V>,
    start: Instant,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite,
    V: Ecus,
{
    tokio::pin!(stream);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let Some(line) = adapter.next_line() else {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            adapter.feed(buf.get(..n).unwrap_or_default());
            continue;
        };
        let output = {
            let mut vehicle = vehicle
                .lock()
                .map_err(|_| io::Error::other("the vehicle's lock is poisoned"))?;
            Ecus::advance_to(&mut *vehicle, start.elapsed());
            adapter.execute(&line, &mut *vehicle)
        };
        let began = Instant::now();
        let mut stopped = false;
        for chunk in output.chunks {
            // What is printed at once (the echo, `SEARCHING...`) is out before anything can
            // interrupt.
            let interruptible = output.interruptible && chunk.at > Duration::ZERO;
            if interruptible && adapter.has_input() {
                stopped = true;
                break;
            }
            let due = began + chunk.at;
            if interruptible {
                // Listen to the host while waiting: anything it sends stops the request.
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => break,
                        read = stream.read(&mut buf) => {
                            let n = read?;
                            if n == 0 {
                                return Ok(());
                            }
                            adapter.feed(buf.get(..n).unwrap_or_default());
                            if adapter.has_input() {
                                break;
                            }
                        }
                    }
                }
                if adapter.has_input() {
                    stopped = true;
                    break;
                }
            } else {
                tokio::time::sleep_until(due).await;
            }
            stream.write_all(chunk.text.as_bytes()).await?;
            stream.flush().await?;
        }
        if stopped {
            let text = adapter.interrupt();
            stream.write_all(text.as_bytes()).await?;
            stream.flush().await?;
        }
        if let Some(window) = output.awaits_confirmation {
            let confirmed = match tokio::time::timeout(window, stream.read(&mut buf)).await {
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => buf.first() == Some(&b'\r') && n >= 1,
                Ok(Err(e)) => return Err(e),
                Err(_) => false,
            };
            let rest = adapter.confirm_baud(confirmed);
            if confirmed {
                tracing::info!(divisor = ?adapter.baud_divisor(), "AT BRD: the host confirmed the new rate");
            } else {
                tracing::info!("AT BRD: no confirmation from the host; back at the old rate");
            }
            for chunk in rest.chunks {
                stream.write_all(chunk.text.as_bytes()).await?;
            }
            stream.flush().await?;
        }
    }
}
