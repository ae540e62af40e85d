//! The diagnostic client through an ELM327 adapter (or clone), over a serial port or TCP
//! (Wi-Fi dongles). The adapter does ISO-TP itself; we speak its line dialogue, and every
//! byte it prints is parsed by [`telltale_obd::elm327`].
//!
//! One task owns the port (`adapter`); [`Elm327Client`] handles queue requests to it over a
//! bounded channel, so requests are strictly one at a time, as the adapter requires.
//!
//! Initialisation: [`INIT_SEQUENCE`](telltale_obd::elm327::INIT_SEQUENCE) (`ATZ`, `ATE0`,
//! `ATL0`, `ATS0`, `ATH1`, `ATSP<protocol>`), a probe `0100` (which runs the protocol search
//! under `ATSP0`), then `ATDPN` to learn the bus (below). On CAN, requests set the header with
//! `ATSH` (functional `7DF`/`DB33F1`, or the ECU's physical request id) only when it changes.
//!
//! Line speed ([`line`](mod@line)): on a serial port, `elm327:PATH@BAUD:FAST_BAUD` asks the adapter to
//! switch to a faster rate with `AT BRD` after each reset; re-initialisations then warm-start
//! (`ATWS`) to keep it.
//!
//! Recovery: when the adapter answers `?`, `STOPPED`, `LV RESET`, `ERR94`, prints its reset
//! banner (`ELM327 v..`) in the middle of the dialogue, garbles a reply or goes silent past
//! the command timeout, the client re-runs the initialisation and retries the request once;
//! a second failure is a [`DiagError::Adapter`] saying what happened. A closed port is final.
//!
//! Buses: ISO 15765-4 CAN (11- and 29-bit ids) and the older ones, SAE J1850 PWM and VPW, ISO
//! 9141-2 and ISO 14230-4 KWP2000 (5-baud and fast init), as `ATDPN` reports them. On the older
//! buses requests go out functionally (as OBD requests there do), one PID at a time (J1979 has
//! no multi-PID requests there), and [`Target::Node`] picks one ECU's answer by source address.
//!
//! What it does not do: multi-frame requests (the ELM327 cannot send them), monitoring
//! (`ATMA`), SAE J1939 and the user-defined CAN protocols B and C.

mod adapter;
pub mod line;

use std::sync::{Arc, Mutex};

use telltale_obd::elm327::{Bus, IdWidth};
use telltale_obd::service::Request;
use tokio::sync::{mpsc, oneshot};

use crate::client::{ClientOptions, DiagError, EcuResponse, Target, TroubleLog};
use line::{AdapterStream, LineSpeed};

/// Requests queued for the adapter task before `request` waits.
const QUEUE: usize = 16;

struct Job {
    target: Target,
    request: Request,
    reply: oneshot::Sender<Result<Vec<EcuResponse>, DiagError>>,
}

/// A handle to an ELM327 adapter. Clones share the adapter; requests run one at a time.
#[derive(Debug, Clone)]
pub struct Elm327Client {
    jobs: mpsc::Sender<Job>,
    bus: Arc<Mutex<Bus>>,
    name: Arc<str>,
    troubles: TroubleLog,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("target", &self.target)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl Elm327Client {
    /// Initialises the adapter on `stream` (any byte stream: a serial port, a TCP socket, a
    /// test's in-memory pipe) and starts the task that owns it. Fails when the adapter does
    /// not initialise, no vehicle answers (`UNABLE TO CONNECT`), or the vehicle's protocol is
    /// not CAN.
    pub async fn connect<S: AdapterStream>(
        stream: S,
        name: &str,
        opts: &ClientOptions,
    ) -> Result<Elm327Client, DiagError> {
        Elm327Client::connect_line(stream, name, opts, None).await
    }

    /// As [`Elm327Client::connect`], on a serial line whose adapter starts at `baud` and is
    /// asked to switch to `raise_to` with `AT BRD` (see [`line`](mod@line)).
    pub async fn connect_serial<S: AdapterStream>(
        stream: S,
        name: &str,
        opts: &ClientOptions,
        baud: u32,
        raise_to: Option<u32>,
    ) -> Result<Elm327Client, DiagError> {
        let line = LineSpeed::new(baud, raise_to);
        Elm327Client::connect_line(stream, name, opts, Some(line)).await
    }

    async fn connect_line<S: AdapterStream>(
        stream: S,
        name: &str,
        opts: &ClientOptions,
        line: Option<LineSpeed>,
    ) -> Result<Elm327Client, DiagError> {
        let bus = Arc::new(Mutex::new(Bus::default()));
        let troubles = TroubleLog::default();
        let mut adapter = adapter::Adapter::new(
            stream,
            opts.clone(),
            bus.clone(),
            name,
            troubles.clone(),
            line,
        );
        adapter.init().await?;
        let (jobs, mut rx) = mpsc::channel::<Job>(QUEUE);
        let task_name = name.to_owned();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let result = adapter.request(job.target, &job.request).await;
                let _ = job.reply.send(result);
            }
            tracing::debug!(adapter = %task_name, "ELM327 client closed");
        });
        Ok(Elm327Client {
            jobs,
            bus,
            name: name.into(),
            troubles,
        })
    }

    /// An adapter on a serial port (`/dev/ttyUSB0`, `/dev/rfcomm0`, a pty) at `baud`
    /// (38400 for most adapters, 9600 for old ones, 115200 for some clones), raised to
    /// `raise_to` with `AT BRD` when the adapter and the line take it.
    pub async fn open_serial(
        path: &str,
        baud: u32,
        raise_to: Option<u32>,
        opts: &ClientOptions,
    ) -> Result<Elm327Client, DiagError> {
        use tokio_serial::SerialPortBuilderExt;
        let port = tokio_serial::new(path, baud)
            .timeout(std::time::Duration::from_millis(100))
            .open_native_async()
            .map_err(|e| DiagError::Adapter(format!("cannot open serial port {path}: {e}")))?;
        Elm327Client::connect_serial(port, &format!("elm327:{path}"), opts, baud, raise_to).await
    }

    /// An adapter listening on TCP (Wi-Fi dongles: usually `192.168.0.10:35000`).
    pub async fn open_tcp(addr: &str, opts: &ClientOptions) -> Result<Elm327Client, DiagError> {
        let connect = tokio::net::TcpStream::connect(addr);
        let stream = tokio::time::timeout(opts.elm327.reset_timeout, connect)
            .await
            .map_err(|_| DiagError::Adapter(format!("connecting to {addr} timed out")))?
            .map_err(|e| DiagError::Adapter(format!("cannot connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Elm327Client::connect(stream, &format!("elm327+tcp:{addr}"), opts).await
    }

    pub async fn request(
        &self,
        target: Target,
        req: &Request,
    ) -> Result<Vec<EcuResponse>, DiagError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            target,
            request: req.clone(),
            reply,
        };
        self.jobs.send(job).await.map_err(|_| DiagError::Closed)?;
        answer.await.map_err(|_| DiagError::Closed)?
    }

    /// The vehicle's bus, as `ATDPN` said at initialisation.
    pub fn bus(&self) -> Bus {
        *self.bus.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the vehicle talks 29-bit CAN.
    pub fn uses_extended_ids(&self) -> bool {
        self.bus() == Bus::Can(IdWidth::Bits29)
    }

    /// `elm327:/dev/ttyUSB0` or `elm327+tcp:HOST:PORT`, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the vehicle's bus is CAN (ISO 15765-4).
    pub fn is_can(&self) -> bool {
        matches!(self.bus(), Bus::Can(_))
    }

    /// The answers this client could not use, by kind.
    pub fn troubles(&self) -> &TroubleLog {
        &self.troubles
    }
}
