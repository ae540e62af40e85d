//! The adapter itself, without I/O: settings, protocol state and the input line buffer of one
//! emulated ELM327, and what it prints for each command, with the time at which each piece
//! is printed. Bytes from the host go in ([`Elm327::feed`]); complete lines come out
//! ([`Elm327::next_line`]) and are executed against the vehicle ([`Elm327::execute`]), which
//! returns the timed output. The async server ([`super::serve_elm327`]) only plays that
//! output back and watches for the host interrupting it.
//!
//! # Behaviour (ELM327 data sheet, v1.x command set)
//!
//! - Power-up defaults: echo on, linefeeds off (lines end in `\r`), spaces on, headers off,
//!   CAN auto-formatting on, adaptive timing 1, `ATST 32` (200 ms), protocol 0 (automatic).
//!   `ATZ` and `ATD` restore them; `ATSP` also changes the stored protocol, which `ATZ` keeps.
//! - Every reply: the echo of the line (echo on), the answer lines, an empty line, then `>`.
//! - OBD requests go to the functional address (`7DF`, or `18 DB 33 F1` on 29-bit) unless
//!   `ATSH` set a physical one; every ECU of the vehicle listening on that id answers with the
//!   replies [`Ecus::handle`] returns, each printed when it arrives on the bus. The adapter
//!   stops listening when no frame came for the `ATST` time (shortened after the first frame
//!   by adaptive timing: 100 ms with `ATAT1`, 50 ms with `ATAT2`), or after the requested
//!   number of lines (`010C1`). A negative response `7F xx 78` (response pending) extends
//!   the wait to 5 s (ISO 15765-4's P2*), so the final answer is printed too.
//! - The vehicle is on CAN ([`VehicleBus::Can`], the default) or on one of the older buses
//!   ([`VehicleBus::Legacy`]: SAE J1850 PWM or VPW, ISO 9141-2, ISO 14230-4 with 5-baud or
//!   fast initialisation, ELM327 protocols 1–5).
//! - CAN: protocol 6 (CAN 11/500) reaches the vehicle's 11-bit ECUs, 7 (CAN 29/500) its
//!   29-bit ones. With `ATSP0` the first request prints `SEARCHING...` and settles on 6 if
//!   the vehicle has 11-bit ECUs, else 7, at once; `ATDPN` then prints `A6`.
//! - Older buses: only the vehicle's own protocol reaches it, and it reaches every ECU.
//!   `ATSP0` prints `SEARCHING...`, tries the protocols in order, each failure costing its
//!   time, and settles on the vehicle's (`ATDPN` `A3`, `ATDP` `AUTO, ISO 9141-2`); a bus
//!   initialisation during a search prints nothing. Set by hand (`ATSP3`), protocols 3 and
//!   4 print `BUS INIT: ...OK` as the 5-baud initialisation runs (the dots appear during
//!   it), 5 `BUS INIT: OK` (ELM327 data sheet, "Bus Initiation"). The bus stays open (the
//!   adapter's keep-alive messages are not shown) until `ATPC`, `ATZ`, `ATWS`, `ATD` or a
//!   protocol change. Times and addresses: [`super::bus`].
//! - A protocol that does not reach the vehicle: 1 and 2 answer `NO DATA`, 3 and 4
//!   `BUS INIT: ...ERROR`, 5 `BUS INIT: ERROR` (after the time the attempt takes), 8–C
//!   `CAN ERROR`.
//! - On an older bus, each message is one line: with headers on (`ATH1`) the three header
//!   bytes (`48 6B 10`), the data and the check byte, computed by
//!   [`telltale_obd::legacy`]; with headers off the data only. A long answer is several
//!   lines, as SAE J1979 cuts it on these buses ([`telltale_obd::legacy::split`]).
//!   Requests for several PIDs get `NO DATA` (they exist only on CAN); so do services the
//!   ECUs of these buses do not have (UDS). `ATSH xx yy zz` addresses the ECU whose address
//!   is `yy` (`6A` on J1850 and ISO 9141-2, `33` on KWP, is everyone). `ATCAF`, `ATD1` and
//!   the CAN filters do not apply there.
//! - An OBD request can be interrupted by any character from the host ([`Elm327::interrupt`]
//!   prints `STOPPED`; the interrupting character is discarded, as on the chip). AT commands
//!   cannot.
//! - `AT BRD hh` (a faster serial rate): `OK` with no prompt, the id string after 75 ms, then
//!   the rate is kept when the host's carriage return comes within 75 ms ([`Output`]'s
//!   `awaits_confirmation`, [`Elm327::confirm_baud`]); `ATZ` drops it, `ATWS` keeps it. The
//!   pty and TCP servers have no line speed: the handshake is what is emulated.
//! - Clones ([`Quirks`]): an echo that `ATE0` does not turn off, no spaces whatever `ATS1`
//!   says, a 1.5 s `ATZ`, no `AT BRD`.
//! - Not emulated: monitoring (`ATMA`, `ATMR`, `ATMT`), the older buses' own settings
//!   (`ATSW`, `ATWM`, `ATIIA`, `ATSR`, `ATFI`, `ATSI`, `ATKW`), programmable parameters,
//!   `AT BRT`, low power (`ATLP`) and sending multi-frame requests:
//!   all answered with `?`, as an adapter that lacks them would. On the older buses the
//!   answer header is always the functional one (`48 6B src`), physical addressing or not.

use std::collections::VecDeque;
use std::time::Duration;

use telltale_obd::isotp::addressing::{FUNCTIONAL_REQUEST_11BIT, FUNCTIONAL_REQUEST_29BIT};
use telltale_obd::isotp::pci::{CAN_FRAME_LEN, MAX_SINGLE_FRAME_LEN};
use telltale_obd::legacy::{self, Protocol as LegacyProtocol};
use telltale_obd::{CanId, EcuId};

use super::bus::{self, VehicleBus};
use super::command::{self, Command, HeaderArg, MAX_LINE_LEN, Protocol};
use super::format::{self, LineFormat};
use crate::vehicle::{EcuInfo, Reply, Vehicle};

/// What `ATI` and the reset banner print.
pub const VERSION: &str = "ELM327 v1.5";
/// What `AT@1` prints.
pub const DESCRIPTION: &str = "OBDII to RS232 Interpreter";
/// How long `ATZ` takes before the banner (the chip needs most of a second to restart).
pub const RESET_TIME: Duration = Duration::from_millis(500);
/// How long `ATZ` takes on the clones that are slow to restart ([`Quirks::slow_reset`]).
pub const SLOW_RESET_TIME: Duration = Duration::from_millis(1500);
/// How long `AT BRD` waits at the new rate before printing the id, and then for the host's
/// carriage return (`AT BRT` default, 75 ms).
pub const BRD_WINDOW: Duration = Duration::from_millis(75);
/// How long `ATWS` takes.
pub const WARM_START_TIME: Duration = Duration::from_millis(50);
/// One `ATST` unit.
const TIMEOUT_UNIT: Duration = Duration::from_micros(4096);
/// The default `ATST` value: 0x32 units, about 200 ms.
const DEFAULT_TIMEOUT: u8 = 0x32;
/// How long after a `7F xx 78` the adapter keeps listening.
const RESPONSE_PENDING_WAIT: Duration = Duration::from_secs(5);
/// Gap between an ECU's consecutive frames on the bus (the adapter's flow control asks for
/// no separation time; an ECU needs a little to queue the next frame).
const CONSECUTIVE_FRAME_GAP: Duration = Duration::from_millis(1);
/// Supply voltage printed by `ATRV` when the vehicle does not report PID 0x42.
const DEFAULT_VOLTAGE: f64 = 12.6;
/// Lines completed but not yet executed; beyond this the host is flooding and further lines
/// are dropped (a real adapter would lose them in its receive buffer too).
const MAX_QUEUED_LINES: usize = 256;

/// The vehicle as the adapter sees it: ECUs on a bus that answer requests. A trait so that
/// the emulator's tests can use scripted ECUs; [`Vehicle`] is the real implementation.
pub trait Ecus {
    /// The ECUs, indexed as [`Ecus::handle`] indexes them.
    fn ecus(&self) -> &[EcuInfo];
    /// ECU `ecu`'s replies to one request, each with its delay after the request.
    fn handle(&mut self, ecu: usize, request: &[u8], functional: bool) -> Vec<Reply>;
    /// Moves the vehicle's clock to `t` since serving started (see [`Vehicle::advance_to`]).
    fn advance_to(&mut self, t: Duration) {
        let _ = t;
    }
}

impl Ecus for Vehicle {
    fn ecus(&self) -> &[EcuInfo] {
        Vehicle::ecus(self)
    }

    fn handle(&mut self, ecu: usize, request: &[u8], functional: bool) -> Vec<Reply> {
        Vehicle::handle(self, ecu, request, functional)
    }

    fn advance_to(&mut self, t: Duration) {
        Vehicle::advance_to(self, t);
    }
}

/// A piece of the adapter's output and when it is printed, counted from the moment the
/// command line was complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub at: Duration,
    pub text: String,
}

/// Everything the adapter prints for one command; the last chunk ends with the prompt, except
/// in the middle of the `AT BRD` handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub chunks: Vec<Chunk>,
    /// A byte from the host before the last chunk stops the command (OBD requests).
    pub interruptible: bool,
    /// `AT BRD`: after the chunks, the adapter waits this long for the host's carriage return
    /// at the new rate; [`Elm327::confirm_baud`] then says what follows.
    pub awaits_confirmation: Option<Duration>,
}

/// Ways the clones people buy differ from the data sheet. None by default: a genuine chip.
/// Each can be switched on alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quirks {
    /// `ATE0` answers `OK`, but every command is still echoed.
    pub stuck_echo: bool,
    /// Bytes are printed without spaces whatever `ATS1` says.
    pub no_spaces: bool,
    /// `ATZ` takes [`SLOW_RESET_TIME`].
    pub slow_reset: bool,
    /// `AT BRD` is not implemented: answered `?`.
    pub no_brd: bool,
}

impl Output {
    /// All the text, ignoring the timing.
    pub fn text(&self) -> String {
        self.chunks.iter().map(|c| c.text.as_str()).collect()
    }
}

/// The settings `ATZ`/`ATD` reset.
#[derive(Debug, Clone)]
struct Settings {
    echo: bool,
    linefeeds: bool,
    format: LineFormat,
    responses: bool,
    adaptive: u8,
    timeout: u8,
    header: Option<HeaderArg>,
    priority: u8,
    filter: Option<(u32, u32)>,
    protocol: Protocol,
    protocol_auto: bool,
}

impl Settings {
    fn defaults(protocol: Protocol, protocol_auto: bool) -> Settings {
        Settings {
            echo: true,
            linefeeds: false,
            format: LineFormat::default(),
            responses: true,
            adaptive: 1,
            timeout: DEFAULT_TIMEOUT,
            header: None,
            priority: 0x18,
            filter: None,
            protocol,
            protocol_auto,
        }
    }
}

/// One emulated adapter. See the module documentation for its behaviour.
#[derive(Debug, Clone)]
pub struct Elm327 {
    /// The bus of the vehicle it is plugged into: no command changes it.
    bus: VehicleBus,
    quirks: Quirks,
    /// The serial rate divisor in force (`AT BRD`; `None`: the power-up rate) and one proposed
    /// and waiting for the host's confirmation.
    divisor: Option<u8>,
    proposed: Option<u8>,
    settings: Settings,
    /// `ATSP`'s choice, restored by `ATZ`.
    stored: (Protocol, bool),
    /// The protocol in use after a successful request (search or manual), if any.
    active: Option<Protocol>,
    /// `ATPC` closed the active protocol's bus: an older bus is opened again (initialised)
    /// by the next request.
    closed: bool,
    /// The last executed line, for the empty line that repeats it.
    last: Option<String>,
    lines: VecDeque<String>,
    partial: String,
    overlong: bool,
}

impl Default for Elm327 {
    fn default() -> Self {
        Self::new()
    }
}

impl Elm327 {
    /// An adapter just powered up, protocol automatic, plugged into a CAN vehicle.
    pub fn new() -> Elm327 {
        Elm327::with_bus(VehicleBus::Can)
    }

    /// The same adapter with a clone's `quirks`.
    pub fn with_quirks(mut self, quirks: Quirks) -> Elm327 {
        self.quirks = quirks;
        self.apply_quirks();
        self
    }

    /// The serial rate divisor agreed with `AT BRD`, if any (`ATZ` forgets it, `ATWS` keeps
    /// it, as on the chip). The simulator's pty has no line speed; this is what a real
    /// adapter would now run at.
    pub fn baud_divisor(&self) -> Option<u8> {
        self.divisor
    }

    /// Settings a clone keeps whatever it is told.
    fn apply_quirks(&mut self) {
        if self.quirks.stuck_echo {
            self.settings.echo = true;
        }
        if self.quirks.no_spaces {
            self.settings.format.spaces = false;
        }
    }

    /// The end of the `AT BRD` handshake: whether the host's carriage return came at the new
    /// rate in time. Confirmed, the rate is kept and `OK` printed; otherwise the old one is
    /// back and only the prompt follows.
    pub fn confirm_baud(&mut self, confirmed: bool) -> Output {
        let proposed = self.proposed.take();
        let mut out = Printer::new(String::new());
        if confirmed && proposed.is_some() {
            self.divisor = proposed;
            out.line("OK");
        }
        Output {
            chunks: out.finish(self.eol()),
            interruptible: false,
            awaits_confirmation: None,
        }
    }

    /// An adapter just powered up, protocol automatic, plugged into a vehicle on `bus`.
    pub fn with_bus(bus: VehicleBus) -> Elm327 {
        Elm327 {
            bus,
            quirks: Quirks::default(),
            divisor: None,
            proposed: None,
            settings: Settings::defaults(Protocol::AUTO, true),
            stored: (Protocol::AUTO, true),
            active: None,
            closed: false,
            last: None,
            lines: VecDeque::new(),
            partial: String::new(),
            overlong: false,
        }
    }

    /// Takes bytes from the host. `\r` ends a line; other control characters (`\n`, NUL) are
    /// ignored; bytes outside ASCII become `?` (they never form a valid command). Lines
    /// longer than [`MAX_LINE_LEN`] are kept as an invalid command.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' => {
                    let line = if self.overlong {
                        "?".to_owned()
                    } else {
                        std::mem::take(&mut self.partial)
                    };
                    self.partial.clear();
                    self.overlong = false;
                    if self.lines.len() < MAX_QUEUED_LINES {
                        self.lines.push_back(line);
                    }
                }
                0..=0x1F => {}
                _ if self.partial.len() >= MAX_LINE_LEN => self.overlong = true,
                0x20..=0x7F => self.partial.push(char::from(b)),
                _ => self.partial.push('?'),
            }
        }
    }

    /// The next complete line, as received (for the echo).
    pub fn next_line(&mut self) -> Option<String> {
        self.lines.pop_front()
    }

    /// Whether the host has sent anything not yet executed (which would interrupt an OBD
    /// request in progress).
    pub fn has_input(&self) -> bool {
        !self.lines.is_empty() || !self.partial.is_empty()
    }

    /// The host interrupted the command in progress: discards the character that did it and
    /// returns what the adapter prints.
    pub fn interrupt(&mut self) -> String {
        if let Some(first) = self.lines.front_mut() {
            if first.is_empty() {
                self.lines.pop_front();
            } else {
                first.remove(0);
            }
        } else if !self.partial.is_empty() {
            self.partial.remove(0);
        }
        let eol = self.eol();
        format!("STOPPED{eol}{eol}>")
    }

    fn eol(&self) -> &'static str {
        if self.settings.linefeeds {
            "\r\n"
        } else {
            "\r"
        }
    }

    /// Executes one line (as returned by [`Elm327::next_line`]) and returns what the adapter
    /// prints, with timing.
    pub fn execute(&mut self, line: &str, ecus: &mut impl Ecus) -> Output {
        let echo = if self.settings.echo {
            format!("{line}{}", self.eol())
        } else {
            String::new()
        };
        let mut command = command::parse(line);
        if command == Command::Repeat {
            match self.last.clone() {
                Some(last) => command = command::parse(&last),
                None => {
                    return Output {
                        chunks: vec![Chunk {
                            at: Duration::ZERO,
                            text: format!("{echo}>"),
                        }],
                        interruptible: false,
                        awaits_confirmation: None,
                    };
                }
            }
        } else if command != Command::Unknown {
            self.last = Some(line.to_owned());
        }
        if let Command::BaudRateDivisor(divisor) = command
            && divisor != 0
            && !self.quirks.no_brd
        {
            return self.propose_baud(echo, divisor);
        }
        let mut out = Printer::new(echo);
        let interruptible = matches!(command, Command::Obd { .. });
        self.run(command, ecus, &mut out);
        Output {
            chunks: out.finish(self.eol()),
            interruptible,
            awaits_confirmation: None,
        }
    }

    /// `AT BRD hh` (data sheet, "Using Higher RS232 Baud Rates"): `OK` at the old rate with no
    /// prompt, then, at the new rate after [`BRD_WINDOW`], the id string; then the adapter
    /// waits [`BRD_WINDOW`] for the host's carriage return ([`Elm327::confirm_baud`]).
    fn propose_baud(&mut self, echo: String, divisor: u8) -> Output {
        self.proposed = Some(divisor);
        let eol = self.eol();
        Output {
            chunks: vec![
                Chunk {
                    at: Duration::ZERO,
                    text: format!("{echo}OK{eol}"),
                },
                Chunk {
                    at: BRD_WINDOW,
                    text: format!("{VERSION}{eol}"),
                },
            ],
            interruptible: false,
            awaits_confirmation: Some(BRD_WINDOW),
        }
    }

    fn run(&mut self, command: Command, ecus: &mut impl Ecus, out: &mut Printer) {
        let s = &mut self.settings;
        match command {
            // AT BRD reaches here only when this adapter lacks it (or for divisor 00).
            Command::Repeat | Command::Unknown | Command::BaudRateDivisor(_) => out.line("?"),
            Command::Reset | Command::WarmStart => {
                let time = match command {
                    Command::Reset if self.quirks.slow_reset => SLOW_RESET_TIME,
                    Command::Reset => RESET_TIME,
                    _ => WARM_START_TIME,
                };
                if command == Command::Reset {
                    // A full reset drops the rate agreed with AT BRD; a warm start keeps it.
                    self.divisor = None;
                }
                let (protocol, auto) = self.stored;
                self.settings = Settings::defaults(protocol, auto);
                self.apply_quirks();
                self.active = None;
                self.last = None;
                out.at(time);
                out.line("");
                out.line("");
                out.line(VERSION);
            }
            Command::Defaults => {
                let (protocol, auto) = self.stored;
                self.settings = Settings::defaults(protocol, auto);
                self.apply_quirks();
                self.active = None;
                out.line("OK");
            }
            Command::Identify => out.line(VERSION),
            Command::Description => out.line(DESCRIPTION),
            Command::Identifier => out.line("?"),
            Command::ReadVoltage => {
                let volts = read_voltage(ecus).unwrap_or(DEFAULT_VOLTAGE);
                out.line(&format!("{volts:.1}V"));
            }
            Command::Ignition => out.line("ON"),
            Command::CanStatus => out.line("T:00 R:00"),
            Command::Echo(on) => ok(&mut s.echo, on || self.quirks.stuck_echo, out),
            Command::Linefeeds(on) => ok(&mut s.linefeeds, on, out),
            Command::Spaces(on) => ok(&mut s.format.spaces, on && !self.quirks.no_spaces, out),
            Command::Headers(on) => ok(&mut s.format.headers, on, out),
            Command::ShowDlc(on) => ok(&mut s.format.dlc, on, out),
            Command::AutoFormat(on) => ok(&mut s.format.auto_format, on, out),
            Command::Responses(on) => ok(&mut s.responses, on, out),
            Command::AdaptiveTiming(level) => ok(&mut s.adaptive, level, out),
            Command::Timeout(units) => {
                let units = if units == 0 { DEFAULT_TIMEOUT } else { units };
                ok(&mut s.timeout, units, out);
            }
            Command::Priority(p) => ok(&mut s.priority, p, out),
            Command::SetHeader(h) => ok(&mut s.header, Some(h), out),
            Command::ReceiveAddress(None) => ok(&mut s.filter, None, out),
            Command::ReceiveAddress(Some(id)) => {
                ok(&mut s.filter, Some((id, 0x1FFF_FFFF)), out);
            }
            Command::Filter(id) => {
                let mask = s.filter.map_or(0x1FFF_FFFF, |(_, m)| m);
                ok(&mut s.filter, Some((id, mask)), out);
            }
            Command::Mask(mask) => {
                let id = s.filter.map_or(0, |(f, _)| f);
                ok(&mut s.filter, Some((id, mask)), out);
            }
            Command::SetProtocol {
                protocol,
                auto,
                store,
            } => {
                s.protocol = protocol;
                s.protocol_auto = auto;
                if store {
                    self.stored = (protocol, auto);
                }
                self.active = None;
                out.line("OK");
            }
            Command::DescribeProtocol => {
                let text = match (s.protocol_auto, self.active) {
                    (true, Some(p)) => format!("AUTO, {}", p.name()),
                    (true, None) => "AUTO".to_owned(),
                    (false, _) => s.protocol.name().to_owned(),
                };
                out.line(&text);
            }
            Command::DescribeProtocolNumber => {
                let text = match (s.protocol_auto, self.active) {
                    (true, Some(p)) => format!("A{}", p.digit()),
                    (true, None) => s.protocol.digit().to_string(),
                    (false, _) => s.protocol.digit().to_string(),
                };
                out.line(&text);
            }
            Command::ProtocolClose => {
                self.closed = true;
                out.line("OK");
            }
            Command::Accepted => out.line("OK"),
            Command::Obd { data, responses } => self.request(&data, responses, ecus, out),
        }
    }

    /// An OBD request: finds the protocol if needed, sends, prints what comes back.
    fn request(
        &mut self,
        data: &[u8],
        responses: Option<u8>,
        ecus: &mut impl Ecus,
        out: &mut Printer,
    ) {
        let s = &self.settings;
        let too_long = if s.format.auto_format {
            data.len() > MAX_SINGLE_FRAME_LEN
        } else {
            data.len() > CAN_FRAME_LEN
        };
        if too_long {
            return out.line("?");
        }
        let (protocol, ready) = match self.active {
            Some(p) => (p, self.reopen(p, out)),
            None => match self.connect(ecus, out) {
                Ok(found) => found,
                Err(condition) => return out.line(condition),
            },
        };
        if !self.settings.responses {
            return;
        }
        let frames = match self.bus.is_legacy(protocol) {
            Some(_) if data.len() > legacy::MAX_DATA_LEN => return out.line("?"),
            Some(lp) => self.legacy_frames(lp, data, ecus, ready),
            None => {
                let payload = if self.settings.format.auto_format {
                    Some(data.to_vec())
                } else {
                    // CAF0: the host wrote the whole frame, PCI included.
                    single_frame_payload(data)
                };
                self.can_frames(protocol, payload, ecus)
            }
        };
        self.print_frames(&frames, responses, ready, out);
    }

    /// What the vehicle's CAN ECUs send for `payload` (none when it is not one), with their
    /// arrival times.
    fn can_frames(
        &self,
        protocol: Protocol,
        payload: Option<Vec<u8>>,
        ecus: &mut impl Ecus,
    ) -> Vec<RxFrame> {
        let s = &self.settings;
        let extended = protocol == Protocol::CAN_29_500;
        let target = request_id(s.header, s.priority, extended);
        let functional = target == FUNCTIONAL_REQUEST_11BIT || target == FUNCTIONAL_REQUEST_29BIT;
        let mut frames = Vec::new();
        let Some(payload) = payload else {
            return frames;
        };
        let listening: Vec<usize> = ecus
            .ecus()
            .iter()
            .enumerate()
            .filter(|(_, e)| e.request_id.is_extended() == extended)
            .filter(|(_, e)| e.request_id == target || (functional && e.functional_id == target))
            .map(|(i, _)| i)
            .collect();
        for ecu in listening {
            let Some(info) = ecus.ecus().get(ecu) else {
                continue;
            };
            let id = info.response_id;
            // The request reaches the ECU whatever the filter; only its answer is hidden.
            let shown = self.passes_filter(id);
            for reply in ecus.handle(ecu, &payload, functional) {
                if !shown {
                    continue;
                }
                let Some(segments) = format::segment(&reply.payload) else {
                    tracing::warn!(
                        ecu = %id,
                        len = reply.payload.len(),
                        "answer cannot be carried by ISO-TP; dropped"
                    );
                    continue;
                };
                let pending = is_response_pending(&reply.payload);
                for (k, data) in segments.into_iter().enumerate() {
                    let gap = CONSECUTIVE_FRAME_GAP * u32::try_from(k).unwrap_or(u32::MAX);
                    frames.push(RxFrame {
                        at: reply.delay.saturating_add(gap),
                        from: EcuId::Can(id),
                        lines: format::frame_lines(id, &data, s.format),
                        pending,
                    });
                }
            }
        }
        frames.sort_by_key(|f| f.at);
        frames
    }

    /// What the vehicle's ECUs on an older bus send for `data`, the bus having been ready at
    /// `ready`: every ECU the header addresses answers, each answer in its messages.
    fn legacy_frames(
        &self,
        protocol: LegacyProtocol,
        data: &[u8],
        ecus: &mut impl Ecus,
        ready: Duration,
    ) -> Vec<RxFrame> {
        let s = &self.settings;
        let mut frames = Vec::new();
        if !bus::answered(data) {
            return frames;
        }
        let everyone = protocol.functional_target();
        // The middle byte of the three-byte header is the target (`ATSH 68 6A F1`);
        // `ATSH xyz` is `00 0x yz`.
        let target = match s.header {
            None => everyone,
            Some(HeaderArg::Long(header)) => header.to_be_bytes()[2],
            Some(HeaderArg::Short(id)) => id.to_be_bytes()[0],
        };
        let functional = target == everyone;
        let addresses: Vec<u8> = ecus
            .ecus()
            .iter()
            .enumerate()
            .map(|(i, info)| bus::source_address(info, i))
            .collect();
        let gap = bus::message_gap(protocol);
        for (ecu, address) in addresses.into_iter().enumerate() {
            if !functional && address != target {
                continue;
            }
            for (delay, messages) in bus::answer(ecus, ecu, data, functional) {
                for (k, message) in messages.into_iter().enumerate() {
                    let after = gap * u32::try_from(k).unwrap_or(u32::MAX);
                    frames.push(RxFrame {
                        at: ready.saturating_add(delay).saturating_add(after),
                        from: EcuId::Node(address),
                        lines: vec![format::legacy_line(protocol, address, &message, s.format)],
                        pending: is_response_pending(&message),
                    });
                }
            }
        }
        frames.sort_by_key(|f| f.at);
        frames
    }

    /// Prints the frames that arrive before the adapter stops listening, counting its
    /// timeout from `ready` (when the request went out).
    fn print_frames(
        &self,
        frames: &[RxFrame],
        responses: Option<u8>,
        ready: Duration,
        out: &mut Printer,
    ) {
        let s = &self.settings;
        let timeout = TIMEOUT_UNIT * u32::from(s.timeout);
        let gap = match s.adaptive {
            1 => timeout.min(Duration::from_millis(100)),
            2 => timeout.min(Duration::from_millis(50)),
            _ => timeout,
        };
        // Until this time the adapter listens, whatever else arrives: an ECU said "response
        // pending" and has not answered yet.
        let mut pending: Vec<(EcuId, Duration)> = Vec::new();
        let mut deadline = ready + timeout;
        let mut printed = 0usize;
        for frame in frames {
            if frame.at > deadline {
                break;
            }
            out.at(frame.at);
            for line in &frame.lines {
                out.line(line);
            }
            printed += 1;
            if responses.is_some_and(|n| printed >= usize::from(n)) {
                return;
            }
            pending.retain(|(from, _)| *from != frame.from);
            if frame.pending {
                pending.push((frame.from, frame.at + RESPONSE_PENDING_WAIT));
            }
            let waiting = pending.iter().map(|(_, until)| *until).max();
            deadline = waiting.unwrap_or_default().max(frame.at + gap);
        }
        out.at(deadline);
        if printed == 0 {
            out.line("NO DATA");
        }
    }

    fn passes_filter(&self, id: CanId) -> bool {
        self.settings
            .filter
            .is_none_or(|(filter, mask)| id.raw() & mask == filter & mask)
    }

    /// Opens the active protocol's bus again after `ATPC`, if it is an older bus that needs
    /// it: when it is ready. Quiet in automatic mode, as during a search.
    fn reopen(&mut self, active: Protocol, out: &mut Printer) -> Duration {
        let closed = std::mem::take(&mut self.closed);
        match self.bus.is_legacy(active) {
            Some(lp) if closed && self.settings.protocol_auto => {
                let ready = bus::open_time(lp);
                out.at(ready);
                ready
            }
            Some(lp) if closed => open_by_hand(lp, out),
            _ => Duration::ZERO,
        }
    }

    /// Opens the configured protocol (a search in automatic mode): the protocol, and when
    /// the bus was ready for the request.
    fn connect(
        &mut self,
        ecus: &impl Ecus,
        out: &mut Printer,
    ) -> Result<(Protocol, Duration), &'static str> {
        let s = &self.settings;
        let has = |extended: bool| {
            ecus.ecus()
                .iter()
                .any(|e| e.request_id.is_extended() == extended)
        };
        let reaches = |p: Protocol| match (self.bus, p) {
            (VehicleBus::Can, Protocol::CAN_11_500) => has(false),
            (VehicleBus::Can, Protocol::CAN_29_500) => has(true),
            (VehicleBus::Can, _) => false,
            (VehicleBus::Legacy(lp), p) => lp.elm_number() == p.0,
        };
        let (found, ready) = match (s.protocol_auto, self.bus) {
            (true, VehicleBus::Can) => {
                out.line("SEARCHING...");
                let found = [s.protocol, Protocol::CAN_11_500, Protocol::CAN_29_500]
                    .into_iter()
                    .find(|p| reaches(*p))
                    .ok_or("UNABLE TO CONNECT")?;
                (found, Duration::ZERO)
            }
            (true, VehicleBus::Legacy(lp)) => {
                out.line("SEARCHING...");
                bus::search(s.protocol, lp)
            }
            (false, _) if reaches(s.protocol) => {
                let ready = match self.bus.is_legacy(s.protocol) {
                    Some(lp) => open_by_hand(lp, out),
                    None => Duration::ZERO,
                };
                (s.protocol, ready)
            }
            (false, _) => {
                let (time, text) = bus::failure(s.protocol);
                if matches!(s.protocol.0, 3..=5) {
                    bus_init_progress(s.protocol.0 != 5, time, out);
                }
                out.at(time);
                return Err(text);
            }
        };
        out.at(ready);
        self.active = Some(found);
        self.closed = false;
        Ok((found, ready))
    }
}

/// `BUS INIT: ` and, for a 5-baud initialisation, the three dots as it runs, over `time`;
/// the caller ends the line with `OK` or `ERROR`.
fn bus_init_progress(slow: bool, time: Duration, out: &mut Printer) {
    out.text("BUS INIT: ");
    if slow {
        for dot in 1..=3u32 {
            out.at(time * dot / 4);
            out.text(".");
        }
    }
    out.at(time);
}

/// Opens an older bus set by hand: protocols 3–5 report their initialisation.
fn open_by_hand(protocol: LegacyProtocol, out: &mut Printer) -> Duration {
    let time = bus::open_time(protocol);
    if protocol.needs_bus_init() {
        bus_init_progress(time >= bus::SLOW_INIT, time, out);
        out.line("OK");
    }
    time
}

/// A frame (a message, on the older buses) from an ECU, at its arrival time after the
/// request, as the adapter prints it.
#[derive(Debug)]
struct RxFrame {
    at: Duration,
    from: EcuId,
    lines: Vec<String>,
    /// Part of a `7F xx 78` answer.
    pending: bool,
}

fn ok<T>(setting: &mut T, value: T, out: &mut Printer) {
    *setting = value;
    out.line("OK");
}

fn is_response_pending(payload: &[u8]) -> bool {
    matches!(payload, [0x7F, _, 0x78, ..])
}

/// The payload of a host-built single frame (`ATCAF0`), or `None` when it is not one.
fn single_frame_payload(frame: &[u8]) -> Option<Vec<u8>> {
    let (&pci, rest) = frame.split_first()?;
    let len = usize::from(pci);
    (pci >> 4 == 0 && len >= 1 && len <= rest.len()).then(|| rest.get(..len).map(<[u8]>::to_vec))?
}

/// The CAN id a request goes to.
fn request_id(header: Option<HeaderArg>, priority: u8, extended: bool) -> CanId {
    match (header, extended) {
        (None, false) => FUNCTIONAL_REQUEST_11BIT,
        (None, true) => FUNCTIONAL_REQUEST_29BIT,
        (Some(HeaderArg::Short(id)), false) => CanId::Standard(id & 0x7FF),
        (Some(HeaderArg::Long(low)), false) => {
            CanId::Standard(u16::try_from(low & 0x7FF).unwrap_or(0))
        }
        (Some(HeaderArg::Long(low)), true) => {
            CanId::Extended(u32::from(priority & 0x1F) << 24 | (low & 0xFF_FFFF))
        }
        (Some(HeaderArg::Short(id)), true) => {
            CanId::Extended(u32::from(priority & 0x1F) << 24 | u32::from(id))
        }
    }
}

/// The vehicle's supply voltage from the first ECU that reports PID 0x42.
fn read_voltage(ecus: &mut impl Ecus) -> Option<f64> {
    for ecu in 0..ecus.ecus().len() {
        for reply in ecus.handle(ecu, &[0x01, 0x42], false) {
            if let [0x41, 0x42, a, b, ..] = reply.payload[..] {
                return Some(f64::from(u16::from_be_bytes([a, b])) / 1000.0);
            }
        }
    }
    None
}

/// Collects timed output. Lines get their ending when the command is done, so a command
/// that changes the line ending (`ATL1`) is answered in the new style; the echo, printed as
/// the line came in, keeps the old one.
#[derive(Debug)]
struct Printer {
    echo: String,
    /// Text, when it is printed, and whether a line ending follows it.
    pieces: Vec<(Duration, String, bool)>,
    now: Duration,
}

impl Printer {
    fn new(echo: String) -> Printer {
        Printer {
            echo,
            pieces: Vec::new(),
            now: Duration::ZERO,
        }
    }

    /// Later lines are printed at `at` (never earlier than lines already printed).
    fn at(&mut self, at: Duration) {
        self.now = self.now.max(at);
    }

    /// A whole line (or the end of one begun with [`Printer::text`]).
    fn line(&mut self, line: &str) {
        self.pieces.push((self.now, line.to_owned(), true));
    }

    /// Part of a line, its end to come.
    fn text(&mut self, text: &str) {
        self.pieces.push((self.now, text.to_owned(), false));
    }

    /// The chunks, ending with the closing empty line and the prompt.
    fn finish(self, eol: &str) -> Vec<Chunk> {
        let mut chunks = vec![Chunk {
            at: Duration::ZERO,
            text: self.echo,
        }];
        let mut push = |at: Duration, text: &str| match chunks.last_mut() {
            Some(last) if last.at == at => last.text.push_str(text),
            _ => chunks.push(Chunk {
                at,
                text: text.to_owned(),
            }),
        };
        for (at, text, ends) in &self.pieces {
            push(*at, text);
            if *ends {
                push(*at, eol);
            }
        }
        push(self.now, eol);
        push(self.now, ">");
        chunks.retain(|c| !c.text.is_empty());
        chunks
    }
}
