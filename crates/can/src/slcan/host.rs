//! The host side of an SLCAN link: drives a serial CAN adapter (CANable, USBtin, ...) or
//! anything else that speaks Lawicel over a byte stream, and offers it as a [`CanBus`].
//!
//! [`open`] opens the serial port with `tokio-serial` (a USB CDC port or a pty slave), runs the
//! init sequence (flush, `C`, `Sn`, `O`, each answer awaited with a timeout) and spawns one
//! driver task that owns the port: it writes queued frames, delivers received ones through the
//! software filters, polls the adapter's status flags (`F`) once a second when the adapter
//! knows that command, reports BEL answers and status flags as [`BusError::Fault`] and
//! unreadable lines as [`BusError::Io`] (then carries on with the next line), and closes the
//! channel (`C`) when the last handle is dropped.
//!
//! Not here: the ASCII codec (see [`codec`](super::codec)), timestamps (left off), remote
//! frames (ignored), CAN FD.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use telltale_obd::{CanFrame, CanId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_serial::SerialPortBuilderExt;
use tracing::{debug, warn};

use super::codec::{Command, Event, LineBuffer, bitrate_code, decode_event, encode_command};
use crate::bus::{BusError, CanBus, Filter, Hub, Outgoing, SEND_CAPACITY};
use crate::error::LinkError;

/// How long the adapter may take to answer an init command.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a write to the port may block before the frame is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the driver asks for the status flags.
pub const STATUS_POLL: Duration = Duration::from_secs(1);
/// Commands awaiting an answer the driver remembers; an adapter that does not acknowledge
/// transmissions makes it forget the oldest.
const MAX_IN_FLIGHT: usize = 64;

type Stream = Pin<Box<dyn AsyncReadWrite + Send>>;

trait AsyncReadWrite: AsyncRead + AsyncWrite {}
impl<T: AsyncRead + AsyncWrite> AsyncReadWrite for T {}

/// Opens the adapter on serial port `path` (`/dev/ttyACM0`, a pty slave) at `serial_baud`, sets
/// the CAN bitrate and opens the channel. Only frames matching `filters` are delivered (an
/// empty slice delivers all). Must be called within a tokio runtime.
pub async fn open(
    path: &str,
    serial_baud: u32,
    can_bitrate: u32,
    filters: &[Filter],
) -> Result<CanBus, LinkError> {
    let code = bitrate_code(can_bitrate).ok_or(LinkError::UnsupportedBitrate(can_bitrate))?;
    let port = tokio_serial::new(path, serial_baud)
        .open_native_async()
        .map_err(|e| LinkError::SerialOpen {
            path: path.to_owned(),
            baud: serial_baud,
            reason: e.to_string(),
        })?;
    start(path, Box::pin(port), code, filters).await
}

/// Like [`open`] over an already connected byte stream (a TCP connection to a serial server,
/// an in-memory pipe in tests). `name` names the link in errors and logs.
pub async fn open_stream<S>(
    name: &str,
    stream: S,
    can_bitrate: u32,
    filters: &[Filter],
) -> Result<CanBus, LinkError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let code = bitrate_code(can_bitrate).ok_or(LinkError::UnsupportedBitrate(can_bitrate))?;
    start(name, Box::pin(stream), code, filters).await
}

async fn start(
    name: &str,
    stream: Stream,
    code: u8,
    filters: &[Filter],
) -> Result<CanBus, LinkError> {
    let mut port = Port {
        name: name.to_owned(),
        stream,
        lines: LineBuffer::new(),
        buf: [0; 256],
    };
    port.init(code).await?;
    let (tx, rx) = mpsc::channel(SEND_CAPACITY);
    let hub = Arc::new(Hub::default());
    let driver = Driver {
        port,
        hub: hub.clone(),
        filters: filters.to_vec(),
        in_flight: VecDeque::new(),
        poll_status: true,
    };
    tokio::spawn(driver.run(rx));
    Ok(CanBus::from_parts(&format!("slcan:{name}"), tx, hub))
}

struct Port {
    name: String,
    stream: Stream,
    lines: LineBuffer,
    buf: [u8; 256],
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port").field("name", &self.name).finish()
    }
}

impl Port {
    fn io(&self, doing: &'static str) -> impl FnOnce(std::io::Error) -> LinkError + '_ {
        move |source| LinkError::Io {
            link: format!("slcan:{}", self.name),
            doing,
            source,
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await;
        match written {
            Ok(result) => result.map_err(self.io("writing")),
            Err(_) => Err(LinkError::Io {
                link: format!("slcan:{}", self.name),
                doing: "writing",
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("blocked for {WRITE_TIMEOUT:?}"),
                ),
            }),
        }
    }

    /// Reads once into the line buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> Result<bool, LinkError> {
        let n = self
            .stream
            .read(&mut self.buf)
            .await
            .map_err(self.io("reading"))?;
        self.lines.push(&self.buf[..n]);
        Ok(n > 0)
    }

    /// Sends `cmd` and waits for OK (or BEL, when `bell_ok`), skipping anything else.
    async fn command(&mut self, cmd: Command, bell_ok: bool) -> Result<(), LinkError> {
        let bytes = encode_command(&cmd);
        let shown = String::from_utf8_lossy(&bytes[..bytes.len() - 1]).into_owned();
        self.write(&bytes).await?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            while let Some(token) = self.lines.next_token() {
                match token.map(|t| decode_event(&t)) {
                    Ok(Ok(Event::Ok)) => return Ok(()),
                    Ok(Ok(Event::Error)) if bell_ok => return Ok(()),
                    Ok(Ok(Event::Error)) => {
                        return Err(LinkError::AdapterRefused {
                            path: self.name.clone(),
                            command: shown,
                        });
                    }
                    other => debug!(port = %self.name, answer = ?other, "skipped during init"),
                }
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    return Err(LinkError::Io {
                        link: format!("slcan:{}", self.name),
                        doing: "waiting for an answer",
                        source: std::io::ErrorKind::UnexpectedEof.into(),
                    });
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(LinkError::AdapterTimeout {
                        path: self.name.clone(),
                        command: shown,
                        timeout: ANSWER_TIMEOUT,
                    });
                }
            }
        }
    }

    async fn init(&mut self, code: u8) -> Result<(), LinkError> {
        // Whatever the adapter half-received before (a previous session, line noise) ends
        // with these; its answers are discarded.
        self.write(b"\r\r").await?;
        let settle = Instant::now() + Duration::from_millis(50);
        while let Ok(read) = tokio::time::timeout_at(settle, self.fill()).await {
            if !read? {
                break;
            }
        }
        while self.lines.next_token().is_some() {}
        // A channel left open must be closed before the bitrate can change; closing a closed
        // channel is an error on some adapters, which is fine.
        self.command(Command::Close, true).await?;
        self.command(Command::SetBitrate(code), false).await?;
        self.command(Command::Open, false).await
    }
}

/// What a command in flight was, to make sense of its answer.
#[derive(Debug)]
enum InFlight {
    Frame(CanFrame),
    Status,
}

#[derive(Debug)]
struct Driver {
    port: Port,
    hub: Arc<Hub>,
    filters: Vec<Filter>,
    in_flight: VecDeque<InFlight>,
    /// Cleared when the adapter refuses `F`.
    poll_status: bool,
}

impl Driver {
    fn passes(&self, id: CanId) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| f.matches(id))
    }

    fn expect(&mut self, what: InFlight) {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        self.in_flight.push_back(what);
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Outgoing>) {
        let name = self.port.name.clone();
        let mut status = tokio::time::interval(STATUS_POLL);
        status.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let close = loop {
            tokio::select! {
                read = self.port.fill() => match read {
                    Ok(true) => self.drain(),
                    Ok(false) => {
                        warn!(port = %name, "SLCAN adapter closed the stream");
                        self.hub.fault(BusError::Io(format!("slcan:{name}: adapter closed the stream")));
                        break false;
                    }
                    Err(err) => {
                        warn!(port = %name, cause = %err, "SLCAN read failed");
                        self.hub.fault(BusError::Io(err.to_string()));
                        break false;
                    }
                },
                out = rx.recv() => {
                    let Some(out) = out else { break true };
                    match self.port.write(&encode_command(&Command::Transmit(out.frame))).await {
                        Ok(()) => {
                            self.expect(InFlight::Frame(out.frame));
                            if self.passes(out.frame.id()) {
                                self.hub.deliver(out.frame, Some(out.origin));
                            }
                        }
                        Err(err) => {
                            warn!(port = %name, cause = %err, "SLCAN write failed");
                            self.hub.fault(BusError::Io(err.to_string()));
                            if !matches!(&err, LinkError::Io { source, .. } if source.kind() == std::io::ErrorKind::TimedOut) {
                                break false;
                            }
                        }
                    }
                }
                _ = status.tick(), if self.poll_status => {
                    if self.port.write(&encode_command(&Command::Status)).await.is_ok() {
                        self.expect(InFlight::Status);
                    }
                }
            }
        };
        if close {
            // Best effort: the port may already be gone.
            if let Err(err) = self.port.write(&encode_command(&Command::Close)).await {
                debug!(port = %name, cause = %err, "could not close the SLCAN channel");
            }
        }
        debug!(port = %name, "SLCAN link closed");
        self.hub.close();
    }

    /// Handles every complete line received so far.
    fn drain(&mut self) {
        let name = self.port.name.clone();
        while let Some(token) = self.port.lines.next_token() {
            let event = match token {
                Ok(token) => decode_event(&token).map_err(|e| e.to_string()),
                Err(sync) => Err(sync.to_string()),
            };
            match event {
                Ok(Event::Frame { frame, .. }) => {
                    if self.passes(frame.id()) {
                        self.hub.deliver(frame, None);
                    }
                }
                Ok(Event::Ok | Event::TransmitAck { .. }) => {
                    self.in_flight.pop_front();
                }
                Ok(Event::Error) => {
                    let text = match self.in_flight.pop_front() {
                        Some(InFlight::Frame(frame)) => format!(
                            "slcan:{name}: adapter refused to transmit {frame:?} (channel \
                             closed, bus off or transmit buffer full?)"
                        ),
                        Some(InFlight::Status) => {
                            debug!(port = %name, "adapter has no F command; status polling off");
                            self.poll_status = false;
                            continue;
                        }
                        None => format!("slcan:{name}: adapter reported an error (BEL)"),
                    };
                    warn!(port = %name, "{text}");
                    self.hub.fault(BusError::Fault(text));
                }
                Ok(Event::Status(flags)) => {
                    self.in_flight.pop_front();
                    if flags.any() {
                        warn!(port = %name, flags = %flags, "SLCAN adapter status");
                        self.hub.fault(BusError::Fault(format!(
                            "slcan:{name}: adapter status: {flags}"
                        )));
                    }
                }
                Ok(other) => debug!(port = %name, event = ?other, "ignored"),
                Err(text) => {
                    warn!(port = %name, error = %text, "unreadable SLCAN input skipped");
                    self.hub
                        .fault(BusError::Io(format!("slcan:{name}: {text}")));
                }
            }
        }
    }
}
