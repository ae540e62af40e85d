//! The task side of the ELM327 client: owns the byte stream, runs commands with timeouts,
//! initialises the adapter and recovers from its resets and refusals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use telltale_obd::elm327::{
    Bus, Condition, Elm327Error, INIT_SEQUENCE, IdWidth, ParseOptions, Reply, ReplyBuffer,
    parse_reply,
};
use telltale_obd::legacy::FrameError;
use telltale_obd::service::Request;
use telltale_obd::{CanId, EcuId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::line::{AdapterStream, LineSpeed};
use crate::client::{
    ClientOptions, DiagError, EcuResponse, Target, Trouble, TroubleLog, decode_answer,
    functional_outcome, hex, is_pending,
};

/// The ELM327's own answer timeout by default (`ATST 32`: 50 × 4.096 ms). `NO DATA` means
/// nothing answered within it.
const ELM_DEFAULT_TIMEOUT: Duration = Duration::from_millis(205);

/// How long to keep reading and discarding after a failure, so a late reply to the failed
/// command is not taken for the answer to the next one.
const DRAIN: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Skip replies that do not parse (a stale `STOPPED` before the answer to `ATZ`).
    SkipUnreadable,
    /// Accept data that does not parse with the current id width (before `ATDPN`).
    Probe,
}

/// What went wrong with one command, and whether re-initialising may help.
#[derive(Debug)]
enum Failure {
    /// The adapter reset, refused, stopped, garbled or went silent: re-initialise and retry.
    Recoverable(Trouble, String),
    /// Retrying cannot help.
    Final(DiagError),
}

pub(super) struct Adapter<S> {
    pub(super) io: S,
    pub(super) buf: ReplyBuffer,
    pub(super) opts: ClientOptions,
    /// The vehicle's bus, as `ATDPN` said (11-bit CAN until then).
    bus: Bus,
    /// The same, for the client handles.
    shared_bus: Arc<Mutex<Bus>>,
    /// The `ATSH` header in force (`None` after a reset: the adapter's default, functional).
    header: Option<String>,
    name: String,
    troubles: TroubleLog,
    /// The serial line's speeds; `None` on links without one (TCP).
    pub(super) line: Option<LineSpeed>,
    /// What the adapter printed at reset (`ELM327 v1.5`): its id string.
    pub(super) version: Option<String>,
}

impl<S: AdapterStream> Adapter<S> {
    pub(super) fn new(
        io: S,
        opts: ClientOptions,
        shared_bus: Arc<Mutex<Bus>>,
        name: &str,
        troubles: TroubleLog,
        line: Option<LineSpeed>,
    ) -> Adapter<S> {
        Adapter {
            io,
            buf: ReplyBuffer::new(),
            opts,
            bus: Bus::default(),
            shared_bus,
            header: None,
            name: name.to_owned(),
            troubles,
            line,
            version: None,
        }
    }

    /// Resets and configures the adapter, finds the vehicle's bus: CAN with 11- or 29-bit ids,
    /// or one of the older buses (SAE J1850, ISO 9141-2, ISO 14230-4).
    pub(super) async fn init(&mut self) -> Result<(), DiagError> {
        self.drain().await?;
        self.header = None;
        self.reset().await?;
        let protocol = format!("ATSP{}\r", self.opts.elm327.protocol);
        for cmd in INIT_SEQUENCE.iter().skip_while(|c| **c == "ATZ\r") {
            let cmd = if cmd.starts_with("ATSP") {
                protocol.as_str()
            } else {
                cmd
            };
            let reply = self
                .command(cmd, self.opts.elm327.command_timeout, Mode::Normal)
                .await
                .map_err(|f| init_error(cmd, f))?;
            if reply != Reply::Ok {
                return Err(DiagError::Adapter(format!(
                    "{} answered {reply:?} instead of OK; is this an ELM327?",
                    cmd.trim_end()
                )));
            }
            if cmd == "ATE0\r" {
                self.raise_line_speed().await?;
            }
        }
        // The first OBD request runs the protocol search (ATSP0) and proves a vehicle is there.
        match self
            .command("0100\r", self.opts.elm327.command_timeout, Mode::Probe)
            .await
        {
            Ok(_) => {}
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Recoverable(_, why)) => {
                return Err(DiagError::Adapter(format!(
                    "the first request (0100) failed: {why}"
                )));
            }
        }
        let dpn = self
            .command("ATDPN\r", self.opts.elm327.command_timeout, Mode::Normal)
            .await
            .map_err(|f| init_error("ATDPN", f))?;
        let Reply::Text(number) = dpn else {
            return Err(DiagError::Adapter(format!(
                "ATDPN answered {dpn:?}, not a protocol number"
            )));
        };
        self.bus = Bus::from_protocol_number(&number).ok_or_else(|| {
            DiagError::Adapter(format!(
                "the vehicle uses protocol {} (ATDPN), a user-defined CAN protocol (B or C) \
                 whose layout depends on the adapter's programmable parameters; set the \
                 protocol explicitly (ATSP 6 to 9) if this is an OBD-II vehicle on CAN",
                number.trim()
            ))
        })?;
        *self.shared_bus.lock().unwrap_or_else(|e| e.into_inner()) = self.bus;
        tracing::info!(
            protocol = %number.trim(),
            bus = %self.bus,
            adapter = self.version.as_deref().unwrap_or("?"),
            "ELM327 adapter ready"
        );
        Ok(())
    }

    /// `ATZ`, or `ATWS` on a raised line (which `ATZ` would drop): afterwards the adapter has
    /// its defaults and echo on. Keeps the id string it prints.
    async fn reset(&mut self) -> Result<(), DiagError> {
        if self.line.is_some_and(|l| l.is_raised()) {
            match self.reset_with("ATWS\r").await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(cause = %e, "no answer to ATWS on the raised line");
                    self.lower_line_speed().await?;
                }
            }
        }
        self.reset_with("ATZ\r").await
    }

    async fn reset_with(&mut self, cmd: &str) -> Result<(), DiagError> {
        // After a reset, a stale `STOPPED` (the reset interrupted a command) may come first:
        // skip replies until one parses.
        let reply = self
            .command(cmd, self.opts.elm327.reset_timeout, Mode::SkipUnreadable)
            .await
            .map_err(|f| init_error(cmd, f))?;
        if let Reply::Text(text) = reply
            && let Some(id) = text.lines().map(str::trim).rfind(|l| !l.is_empty())
        {
            self.version = Some(id.to_owned());
        }
        Ok(())
    }

    /// One request, with one re-initialisation and retry on a recoverable failure.
    pub(super) async fn request(
        &mut self,
        target: Target,
        req: &Request,
    ) -> Result<Vec<EcuResponse>, DiagError> {
        let first = match self.try_request(target, req).await {
            Ok(r) => return Ok(r),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Recoverable(kind, why)) => {
                self.troubles.record(kind, &self.name, &why);
                why
            }
        };
        tracing::debug!(cause = %first, "ELM327 adapter misbehaved; re-initialising and retrying");
        self.init().await.map_err(|e| {
            DiagError::Adapter(format!("{first}; then re-initialising failed: {e}"))
        })?;
        match self.try_request(target, req).await {
            Ok(r) => Ok(r),
            Err(Failure::Final(e)) => Err(e),
            Err(Failure::Recoverable(_, why)) => Err(DiagError::Adapter(format!(
                "{first}; after re-initialising, again: {why}"
            ))),
        }
    }

    async fn try_request(
        &mut self,
        target: Target,
        req: &Request,
    ) -> Result<Vec<EcuResponse>, Failure> {
        let payload = req.encode();
        if payload.len() > 7 {
            return Err(Failure::Final(DiagError::BadRequest(format!(
                "an ELM327 sends single frames only (7 bytes); this request has {}",
                payload.len()
            ))));
        }
        self.set_header(target).await?;
        let line = format!("{}\r", hex(&payload).replace(' ', ""));
        let reply = self
            .command(&line, self.opts.elm327.command_timeout, Mode::Normal)
            .await?;
        let messages = match reply {
            Reply::Messages { messages, errors } => {
                // Lines that could not be read are counted; the rest of the reply is used.
                for e in &errors {
                    self.troubles.record(line_trouble(e), &self.name, e);
                }
                messages
            }
            Reply::NoData => {
                return Err(Failure::Final(DiagError::NoResponse {
                    target,
                    after: ELM_DEFAULT_TIMEOUT,
                }));
            }
            other => {
                return Err(Failure::Recoverable(
                    Trouble::AdapterGarbled,
                    format!("answered {other:?} to an OBD request"),
                ));
            }
        };
        let fallback = EcuId::Can(match target {
            Target::Physical(ch) => ch.response,
            Target::Functional | Target::Node(_) => CanId::Standard(0x7E8),
        });
        let mut answers: Vec<EcuResponse> = Vec::new();
        let mut failures = Vec::new();
        let mut pending = Vec::new();
        for m in messages {
            let ecu = m.header.unwrap_or(fallback);
            if !target.includes(ecu) {
                tracing::debug!(%ecu, "answer from another ECU to a physical request; ignored");
                continue;
            }
            match decode_answer(ecu, &m.payload, req) {
                Ok(r) if is_pending(&r.response) => pending.push(ecu),
                Ok(answer) => {
                    // One answer per ECU: a later one replaces an earlier (after 0x78).
                    answers.retain(|a: &EcuResponse| a.ecu != ecu);
                    answers.push(answer);
                }
                Err(e) => failures.push(e),
            }
        }
        for ecu in pending {
            if answers.iter().all(|a| a.ecu != ecu) {
                failures.push(DiagError::PendingTimeout {
                    ecu,
                    after: ELM_DEFAULT_TIMEOUT,
                });
            }
        }
        match target {
            Target::Functional => functional_outcome(
                answers,
                failures,
                target,
                ELM_DEFAULT_TIMEOUT,
                (&self.troubles, &self.name),
            )
            .map_err(Failure::Final),
            Target::Physical(_) | Target::Node(_) => {
                match (answers.pop(), failures.into_iter().next()) {
                    (Some(a), _) => Ok(vec![a]),
                    (None, Some(e)) => Err(Failure::Final(e)),
                    (None, None) => Err(Failure::Final(DiagError::NoResponse {
                        target,
                        after: ELM_DEFAULT_TIMEOUT,
                    })),
                }
            }
        }
    }

    /// `ATSH` for the target, when it is not the header in force. On the older buses OBD
    /// requests always go out with the adapter's default functional header; one ECU's answer
    /// is picked from the replies by its source address.
    async fn set_header(&mut self, target: Target) -> Result<(), Failure> {
        let id = match (target, self.bus) {
            (Target::Functional | Target::Node(_), Bus::Legacy(_)) => return Ok(()),
            (Target::Physical(ch), Bus::Legacy(p)) => {
                return Err(Failure::Final(DiagError::BadRequest(format!(
                    "ECU {} is a CAN id; this vehicle's bus is {p}",
                    ch.response
                ))));
            }
            (Target::Node(address), Bus::Can(_)) => {
                return Err(Failure::Final(DiagError::BadRequest(format!(
                    "ECU {address:02X} is an address on the older buses; this vehicle's bus is CAN"
                ))));
            }
            (Target::Functional, Bus::Can(IdWidth::Bits11)) => CanId::Standard(0x7DF),
            (Target::Functional, Bus::Can(IdWidth::Bits29)) => CanId::Extended(0x18DB_33F1),
            (Target::Physical(ch), Bus::Can(_)) => ch.request,
        };
        // 11-bit: three digits. 29-bit: the low three bytes; the priority byte stays the
        // adapter's default 18 (ATCP), which is what OBD uses.
        let header = match id {
            CanId::Standard(raw) => format!("{raw:03X}"),
            CanId::Extended(raw) => format!("{:06X}", raw & 0x00FF_FFFF),
        };
        if self.header.as_deref() == Some(header.as_str()) {
            return Ok(());
        }
        let cmd = format!("ATSH{header}\r");
        match self
            .command(&cmd, self.opts.elm327.command_timeout, Mode::Normal)
            .await?
        {
            Reply::Ok => {
                self.header = Some(header);
                Ok(())
            }
            other => Err(Failure::Recoverable(
                Trouble::AdapterGarbled,
                format!("ATSH{header} answered {other:?}"),
            )),
        }
    }

    /// Sends `cmd` and parses its reply (see [`Mode`]).
    async fn command(
        &mut self,
        cmd: &str,
        timeout: Duration,
        mode: Mode,
    ) -> Result<Reply, Failure> {
        let skip_errors = mode == Mode::SkipUnreadable;
        tracing::trace!(cmd = cmd.trim_end(), "ELM327 <-");
        let deadline = Instant::now() + timeout;
        let write = async {
            self.io.write_all(cmd.as_bytes()).await?;
            self.io.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(io_failure("writing to the adapter", &e)),
            Err(_) => {
                return Err(self.recover(
                    Trouble::AdapterSilent,
                    format!("the adapter took no input for {} ms", timeout.as_millis()),
                ));
            }
        }
        let opts = ParseOptions {
            command: cmd.to_owned(),
            echo: false,
            headers: true,
            bus: self.bus,
        };
        let expects_banner =
            cmd.eq_ignore_ascii_case("ATZ\r") || cmd.eq_ignore_ascii_case("ATWS\r");
        loop {
            let text = match self.read_reply(deadline).await? {
                Some(Ok(text)) => text,
                Some(Err(e)) if skip_errors => {
                    tracing::debug!(cause = %e, "skipped unreadable reply");
                    continue;
                }
                Some(Err(e)) => {
                    return Err(self.recover(
                        Trouble::AdapterGarbled,
                        format!("unreadable reply to {}: {e}", cmd.trim()),
                    ));
                }
                None => {
                    return Err(self.recover(
                        Trouble::AdapterSilent,
                        format!(
                            "no answer to {} within {} ms",
                            cmd.trim(),
                            timeout.as_millis()
                        ),
                    ));
                }
            };
            tracing::trace!(reply = %text.trim(), "ELM327 ->");
            if !expects_banner && is_banner(&text) {
                return Err(self.recover(
                    Trouble::AdapterReset,
                    format!("the adapter reset itself (printed {:?})", text.trim()),
                ));
            }
            match parse_reply(&text, &opts) {
                Ok(reply) => return Ok(reply),
                Err(_) if skip_errors => continue,
                // The probe runs before the id width is known: any data will do.
                Err(e) if mode == Mode::Probe && e.condition().is_none() => {
                    return Ok(Reply::NoData);
                }
                Err(e) => return Err(self.classify(cmd, e)),
            }
        }
    }

    /// The next reply, `None` at the deadline.
    async fn read_reply(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Result<String, Elm327Error>>, Failure> {
        let mut chunk = [0u8; 256];
        let mut queued = Vec::new();
        loop {
            if let Some(r) = queued.pop() {
                return Ok(Some(r));
            }
            let Some(n) = self
                .read_until(&mut chunk, deadline)
                .await
                .map_err(Failure::Final)?
            else {
                return Ok(None);
            };
            let mut replies = self.buf.push(chunk.get(..n).unwrap_or(&[]));
            if replies.len() > 1 {
                // More than one prompt in one read: the earlier ones are stale (replies to a
                // command we gave up on); the last answers ours.
                tracing::debug!(stale = replies.len() - 1, "dropped stale ELM327 replies");
            }
            if let Some(last) = replies.pop() {
                queued.push(last);
            }
        }
    }

    /// Forgets what we were reading and discards whatever the adapter still sends for a
    /// short while. Done before (re-)initialising.
    pub(super) async fn drain(&mut self) -> Result<(), DiagError> {
        self.buf.clear();
        let until = Instant::now() + DRAIN;
        let mut chunk = [0u8; 256];
        while self.read_until(&mut chunk, until).await?.is_some() {}
        Ok(())
    }

    /// One read of what the adapter sent: the byte count, `None` at `until`. A closed port or
    /// a failed read is final.
    pub(super) async fn read_until(
        &mut self,
        buf: &mut [u8],
        until: Instant,
    ) -> Result<Option<usize>, DiagError> {
        match tokio::time::timeout_at(until, self.io.read(buf)).await {
            Err(_) => Ok(None),
            Ok(Ok(0)) => Err(DiagError::Adapter(
                "the adapter closed the connection".into(),
            )),
            Ok(Ok(n)) => Ok(Some(n)),
            Ok(Err(e)) => Err(DiagError::Adapter(format!("reading from the adapter: {e}"))),
        }
    }

    fn recover(&mut self, kind: Trouble, why: String) -> Failure {
        self.buf.clear();
        Failure::Recoverable(kind, why)
    }

    fn classify(&mut self, cmd: &str, e: Elm327Error) -> Failure {
        match e.condition() {
            Some(
                Condition::UnknownCommand
                | Condition::Stopped
                | Condition::LowVoltageReset
                | Condition::Internal(94),
            ) => self.recover(
                e.condition()
                    .and_then(Trouble::of_condition)
                    .unwrap_or(Trouble::AdapterOther),
                format!(
                    "the adapter answered {} to {}",
                    e.condition()
                        .map_or_else(|| e.to_string(), |c| c.to_string()),
                    cmd.trim()
                ),
            ),
            Some(c) => Failure::Final(DiagError::AdapterCondition(c)),
            None => self.recover(
                Trouble::AdapterGarbled,
                format!("unreadable reply to {}: {e}", cmd.trim()),
            ),
        }
    }
}

/// `ELM327 v1.5` (or a clone's variation) printed where no `ATZ` was sent: the adapter reset.
fn is_banner(text: &str) -> bool {
    text.to_ascii_uppercase().contains("ELM327 V")
}

fn io_failure(what: &str, e: &std::io::Error) -> Failure {
    Failure::Final(DiagError::Adapter(format!("{what}: {e}")))
}

fn init_error(cmd: &str, f: Failure) -> DiagError {
    match f {
        Failure::Final(e) => e,
        Failure::Recoverable(_, why) => DiagError::Adapter(format!(
            "initialisation failed at {}: {why}",
            cmd.trim_end()
        )),
    }
}

/// The kind of one unreadable line of an otherwise usable reply.
fn line_trouble(e: &Elm327Error) -> Trouble {
    match e {
        Elm327Error::LegacyLine {
            source: FrameError::CheckByte { .. },
            ..
        } => Trouble::BadCheckByte,
        Elm327Error::Flagged { condition, .. } => {
            Trouble::of_condition(*condition).unwrap_or(Trouble::AdapterOther)
        }
        Elm327Error::IsoTp { .. } => Trouble::Transport,
        Elm327Error::DamagedAnswer { .. } | Elm327Error::LegacyJoin { .. } => Trouble::Undecodable,
        _ => Trouble::AdapterGarbled,
    }
}
