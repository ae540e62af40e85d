//! Parsing one command line the way an ELM327 reads it: spaces and case do not matter, `AT`
//! starts a configuration command, anything else must be hex digits (an OBD request, with an
//! optional trailing digit giving the number of responses to wait for). Pure: a line in, a
//! [`Command`] out; what a command does is [`super::session`]'s business.
//!
//! Only the ELM327 v1.x command set is recognised (plus a few v2 commands answered with `OK`
//! so that common init sequences pass); anything else is [`Command::Unknown`], which the
//! adapter answers with `?`, as the data sheet says.

/// The OBD protocols of the ELM327, numbered as `ATSP n` numbers them (`0` is automatic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol(pub u8);

impl Protocol {
    /// Automatic search.
    pub const AUTO: Protocol = Protocol(0);
    /// ISO 15765-4 CAN, 11-bit ids, 500 kbaud.
    pub const CAN_11_500: Protocol = Protocol(6);
    /// ISO 15765-4 CAN, 29-bit ids, 500 kbaud.
    pub const CAN_29_500: Protocol = Protocol(7);

    /// The digit `ATDPN` prints and `ATSP` takes (`0`–`9`, `A`–`C`).
    pub fn digit(self) -> char {
        char::from_digit(u32::from(self.0), 16)
            .map(|c| c.to_ascii_uppercase())
            .unwrap_or('?')
    }

    /// The name `ATDP` prints.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "AUTO",
            1 => "SAE J1850 PWM",
            2 => "SAE J1850 VPW",
            3 => "ISO 9141-2",
            4 => "ISO 14230-4 (KWP 5BAUD)",
            5 => "ISO 14230-4 (KWP FAST)",
            6 => "ISO 15765-4 (CAN 11/500)",
            7 => "ISO 15765-4 (CAN 29/500)",
            8 => "ISO 15765-4 (CAN 11/250)",
            9 => "ISO 15765-4 (CAN 29/250)",
            10 => "SAE J1939 (CAN 29/250)",
            11 => "USER1 CAN (11* /125)",
            12 => "USER2 CAN (11* /50)",
            _ => "?",
        }
    }

    fn from_digit(c: char) -> Option<Protocol> {
        let n = u8::try_from(c.to_digit(16)?).ok()?;
        (n <= 12).then_some(Protocol(n))
    }
}

/// One command, as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// An empty line: repeat the previous command.
    Repeat,
    /// `ATZ`: full reset, prints the banner.
    Reset,
    /// `ATWS`: warm start (reset without the power-up delay), prints the banner.
    WarmStart,
    /// `ATD`: all settings back to their defaults.
    Defaults,
    /// `ATI`: the version banner.
    Identify,
    /// `AT@1`: the device description.
    Description,
    /// `AT@2`: the device identifier (never set on our adapter).
    Identifier,
    /// `ATRV`: the supply voltage at the OBD connector.
    ReadVoltage,
    /// `ATIGN`: the state of the ignition input.
    Ignition,
    /// `ATCS`: CAN transmit and receive error counters.
    CanStatus,
    /// `ATE0` / `ATE1`.
    Echo(bool),
    /// `ATL0` / `ATL1`.
    Linefeeds(bool),
    /// `ATS0` / `ATS1`.
    Spaces(bool),
    /// `ATH0` / `ATH1`.
    Headers(bool),
    /// `ATD0` / `ATD1`: show the DLC after the header.
    ShowDlc(bool),
    /// `ATR0` / `ATR1`: wait for responses (R0 sends and returns at once).
    Responses(bool),
    /// `ATCAF0` / `ATCAF1`: CAN automatic formatting (PCI added and removed by the adapter).
    AutoFormat(bool),
    /// `ATAT0` / `1` / `2`: adaptive timing off, normal, aggressive.
    AdaptiveTiming(u8),
    /// `ATST hh`: response timeout in units of 4.096 ms (`00` restores the default).
    Timeout(u8),
    /// `ATSP n`, `ATSP An` (try n, then search), `ATTP n` / `ATTP An` (same, not stored).
    SetProtocol {
        protocol: Protocol,
        /// `A` prefix, or protocol 0: search when n does not answer.
        auto: bool,
        /// `SP` stores the choice as the power-up default, `TP` only tries it.
        store: bool,
    },
    /// `ATDP`: describe the protocol.
    DescribeProtocol,
    /// `ATDPN`: the protocol number (`A` prefix when found by search).
    DescribeProtocolNumber,
    /// `ATPC`: close the protocol (it is reopened by the next request).
    ProtocolClose,
    /// `ATSH xyz` (11-bit) or `ATSH xx yy zz` (the low 24 bits of a 29-bit id).
    SetHeader(HeaderArg),
    /// `ATCP hh`: the top 5 bits of 29-bit request ids.
    Priority(u8),
    /// `ATCRA` with an id: show only replies from it; without: show all (as `ATAR`).
    ReceiveAddress(Option<u32>),
    /// `ATCF hhh` / `ATCF hhhhhhhh`: the CAN receive filter.
    Filter(u32),
    /// `ATCM hhh` / `ATCM hhhhhhhh`: the CAN receive mask.
    Mask(u32),
    /// `AT BRD hh`: try the serial rate 4 000 000 / hh baud (see `session`).
    BaudRateDivisor(u8),
    /// Recognised commands that change nothing we emulate (`ATM0`, `ATCFC1`, `ATFE`, ...):
    /// answered with `OK`.
    Accepted,
    /// OBD data to send, and the optional response count (`010C1`).
    Obd {
        data: Vec<u8>,
        responses: Option<u8>,
    },
    /// Anything else: answered with `?`.
    Unknown,
}

/// The argument of `ATSH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderArg {
    /// Three hex digits: an 11-bit id.
    Short(u16),
    /// Six hex digits: bits 0..24 of a 29-bit id.
    Long(u32),
}

/// Longest line the adapter accepts; longer ones are answered with `?`. Our own limit, chosen
/// well above the longest valid command (`AT SH 18 DA 10 F1` with spaces is 17 characters,
/// an 8-byte `ATCAF0` frame 16 hex digits).
pub const MAX_LINE_LEN: usize = 128;

/// Parses one line (without its `\r`). Spaces, tabs and case are ignored, as the ELM327 does.
pub fn parse(line: &str) -> Command {
    let text: String = line
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if text.is_empty() {
        return Command::Repeat;
    }
    if text.len() > MAX_LINE_LEN {
        return Command::Unknown;
    }
    match text.strip_prefix("AT") {
        Some(at) => parse_at(at),
        None => parse_obd(&text),
    }
}

fn parse_obd(text: &str) -> Command {
    let Some(nibbles) = text
        .chars()
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<Vec<u8>>>()
    else {
        return Command::Unknown;
    };
    let (pairs, responses) = if nibbles.len() % 2 == 1 {
        let (last, pairs) = nibbles.split_last().unwrap_or((&0, &[]));
        (pairs, Some(*last))
    } else {
        (nibbles.as_slice(), None)
    };
    if pairs.is_empty() || responses == Some(0) {
        return Command::Unknown;
    }
    let data = pairs
        .chunks_exact(2)
        .map(|p| p.iter().fold(0, |acc, &n| acc << 4 | n))
        .collect();
    Command::Obd { data, responses }
}

/// `0`/`1` as a switch.
fn bit(arg: &str) -> Option<bool> {
    match arg {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// Exactly `digits` hex digits.
fn hex(arg: &str, digits: usize) -> Option<u32> {
    (arg.len() == digits && arg.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(arg, 16).ok())
        .flatten()
}

/// An 11-bit (3 digits) or 29-bit (8 digits) CAN id.
fn can_id(arg: &str) -> Option<u32> {
    hex(arg, 3)
        .filter(|id| *id <= 0x7FF)
        .or_else(|| hex(arg, 8).filter(|id| *id <= 0x1FFF_FFFF))
}

fn parse_at(at: &str) -> Command {
    // Longer names first where one is a prefix of another (`DPN` before `DP` before `D`).
    type ArgParser = fn(&str) -> Option<Command>;
    const TABLE: &[(&str, ArgParser)] = &[
        ("@1", |a| a.is_empty().then_some(Command::Description)),
        ("@2", |a| a.is_empty().then_some(Command::Identifier)),
        ("BRD", |a| {
            hex(a, 2)
                .and_then(|d| u8::try_from(d).ok())
                .map(Command::BaudRateDivisor)
        }),
        ("CAF", |a| bit(a).map(Command::AutoFormat)),
        ("CFC", |a| bit(a).map(|_| Command::Accepted)),
        ("CRA", |a| {
            if a.is_empty() {
                Some(Command::ReceiveAddress(None))
            } else {
                can_id(a).map(|id| Command::ReceiveAddress(Some(id)))
            }
        }),
        ("CEA", |a| {
            (a.is_empty() || hex(a, 2).is_some()).then_some(Command::Accepted)
        }),
        ("CF", |a| can_id(a).map(Command::Filter)),
        ("CM", |a| can_id(a).map(Command::Mask)),
        ("CP", |a| {
            hex(a, 2)
                .filter(|p| *p <= 0x1F)
                .and_then(|p| u8::try_from(p).ok())
                .map(Command::Priority)
        }),
        ("CS", |a| a.is_empty().then_some(Command::CanStatus)),
        ("CV", |a| hex(a, 4).map(|_| Command::Accepted)),
        ("DPN", |a| {
            a.is_empty().then_some(Command::DescribeProtocolNumber)
        }),
        ("DP", |a| a.is_empty().then_some(Command::DescribeProtocol)),
        ("D", |a| match a {
            "" => Some(Command::Defaults),
            _ => bit(a).map(Command::ShowDlc),
        }),
        ("AT", |a| match a {
            "0" | "1" | "2" => a.parse().ok().map(Command::AdaptiveTiming),
            _ => None,
        }),
        ("AL", |a| a.is_empty().then_some(Command::Accepted)),
        ("AR", |a| {
            a.is_empty().then_some(Command::ReceiveAddress(None))
        }),
        ("BI", |a| a.is_empty().then_some(Command::Accepted)),
        ("E", |a| bit(a).map(Command::Echo)),
        ("FE", |a| a.is_empty().then_some(Command::Accepted)),
        ("H", |a| bit(a).map(Command::Headers)),
        ("IGN", |a| a.is_empty().then_some(Command::Ignition)),
        ("I", |a| a.is_empty().then_some(Command::Identify)),
        ("L", |a| bit(a).map(Command::Linefeeds)),
        ("M", |a| bit(a).map(|_| Command::Accepted)),
        ("NL", |a| a.is_empty().then_some(Command::Accepted)),
        ("PC", |a| a.is_empty().then_some(Command::ProtocolClose)),
        ("RV", |a| a.is_empty().then_some(Command::ReadVoltage)),
        ("R", |a| bit(a).map(Command::Responses)),
        ("SH", |a| {
            hex(a, 3)
                .filter(|id| *id <= 0x7FF)
                .and_then(|id| u16::try_from(id).ok())
                .map(|id| Command::SetHeader(HeaderArg::Short(id)))
                .or_else(|| hex(a, 6).map(|id| Command::SetHeader(HeaderArg::Long(id))))
        }),
        ("SP", |a| protocol_arg(a, true)),
        ("SS", |a| a.is_empty().then_some(Command::Accepted)),
        ("ST", |a| {
            hex(a, 2)
                .and_then(|t| u8::try_from(t).ok())
                .map(Command::Timeout)
        }),
        ("S", |a| bit(a).map(Command::Spaces)),
        ("TP", |a| protocol_arg(a, false)),
        ("V", |a| bit(a).map(|_| Command::Accepted)),
        ("WS", |a| a.is_empty().then_some(Command::WarmStart)),
        ("Z", |a| a.is_empty().then_some(Command::Reset)),
    ];
    for (name, parse_arg) in TABLE {
        if let Some(command) = at.strip_prefix(name).and_then(parse_arg) {
            return command;
        }
    }
    Command::Unknown
}

/// `n` or `An` after `SP`/`TP`.
fn protocol_arg(arg: &str, store: bool) -> Option<Command> {
    let mut chars = arg.chars();
    let (first, second) = (chars.next()?, chars.next());
    let (protocol, prefixed) = match (first, second, chars.next()) {
        ('A', Some(n), None) => (Protocol::from_digit(n)?, true),
        (n, None, _) => (Protocol::from_digit(n)?, false),
        _ => return None,
    };
    Some(Command::SetProtocol {
        protocol,
        auto: prefixed || protocol == Protocol::AUTO,
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_spaces_do_not_matter() {
        assert_eq!(parse("ATZ"), Command::Reset);
        assert_eq!(parse("at z"), Command::Reset);
        assert_eq!(parse(" a T e 0 "), Command::Echo(false));
        assert_eq!(parse("AT SH 7E0"), parse("atsh7e0"));
        assert_eq!(parse(""), Command::Repeat);
        assert_eq!(parse("   "), Command::Repeat);
    }

    #[test]
    fn switches() {
        assert_eq!(parse("ATE1"), Command::Echo(true));
        assert_eq!(parse("ATL0"), Command::Linefeeds(false));
        assert_eq!(parse("ATS0"), Command::Spaces(false));
        assert_eq!(parse("ATH1"), Command::Headers(true));
        assert_eq!(parse("ATD1"), Command::ShowDlc(true));
        assert_eq!(parse("ATCAF0"), Command::AutoFormat(false));
        assert_eq!(parse("ATR0"), Command::Responses(false));
        assert_eq!(parse("ATAT2"), Command::AdaptiveTiming(2));
        assert_eq!(parse("ATM0"), Command::Accepted);
        assert_eq!(parse("ATE2"), Command::Unknown);
        assert_eq!(parse("ATE"), Command::Unknown);
        assert_eq!(parse("ATAT3"), Command::Unknown);
    }

    #[test]
    fn prefixes_do_not_shadow_each_other() {
        assert_eq!(parse("ATD"), Command::Defaults);
        assert_eq!(parse("ATDP"), Command::DescribeProtocol);
        assert_eq!(parse("ATDPN"), Command::DescribeProtocolNumber);
        assert_eq!(parse("ATI"), Command::Identify);
        assert_eq!(parse("ATIGN"), Command::Ignition);
        assert_eq!(parse("ATRV"), Command::ReadVoltage);
        assert_eq!(parse("AT RV"), Command::ReadVoltage);
        assert_eq!(parse("ATS1"), Command::Spaces(true));
        assert_eq!(parse("ATST 32"), Command::Timeout(0x32));
        assert_eq!(parse("ATWS"), Command::WarmStart);
        assert_eq!(parse("AT@1"), Command::Description);
        assert_eq!(parse("ATCS"), Command::CanStatus);
    }

    #[test]
    fn protocols() {
        assert_eq!(
            parse("ATSP0"),
            Command::SetProtocol {
                protocol: Protocol::AUTO,
                auto: true,
                store: true
            }
        );
        assert_eq!(
            parse("ATSP6"),
            Command::SetProtocol {
                protocol: Protocol::CAN_11_500,
                auto: false,
                store: true
            }
        );
        assert_eq!(
            parse("ATTPA7"),
            Command::SetProtocol {
                protocol: Protocol::CAN_29_500,
                auto: true,
                store: false
            }
        );
        assert_eq!(
            parse("atsp c"),
            Command::SetProtocol {
                protocol: Protocol(12),
                auto: false,
                store: true
            }
        );
        assert_eq!(parse("ATSPD"), Command::Unknown);
        assert_eq!(parse("ATSP"), Command::Unknown);
        assert_eq!(parse("ATSP66"), Command::Unknown);
        assert_eq!(Protocol(10).digit(), 'A');
        assert_eq!(Protocol::CAN_11_500.name(), "ISO 15765-4 (CAN 11/500)");
    }

    #[test]
    fn headers_and_filters() {
        assert_eq!(
            parse("ATSH7E0"),
            Command::SetHeader(HeaderArg::Short(0x7E0))
        );
        assert_eq!(
            parse("AT SH DA 10 F1"),
            Command::SetHeader(HeaderArg::Long(0xDA10F1))
        );
        assert_eq!(parse("ATSH 8E0"), Command::Unknown);
        assert_eq!(parse("ATSH 7E"), Command::Unknown);
        assert_eq!(parse("ATCRA 7E8"), Command::ReceiveAddress(Some(0x7E8)));
        assert_eq!(
            parse("ATCRA 18DAF110"),
            Command::ReceiveAddress(Some(0x18DA_F110))
        );
        assert_eq!(parse("ATCRA"), Command::ReceiveAddress(None));
        assert_eq!(parse("ATAR"), Command::ReceiveAddress(None));
        assert_eq!(parse("ATCF 7E8"), Command::Filter(0x7E8));
        assert_eq!(parse("ATCM 7F8"), Command::Mask(0x7F8));
        assert_eq!(parse("ATCP 18"), Command::Priority(0x18));
        assert_eq!(parse("ATCP 20"), Command::Unknown);
    }

    #[test]
    fn obd_requests() {
        assert_eq!(
            parse("010C"),
            Command::Obd {
                data: vec![0x01, 0x0C],
                responses: None
            }
        );
        assert_eq!(
            parse("01 0c 1"),
            Command::Obd {
                data: vec![0x01, 0x0C],
                responses: Some(1)
            }
        );
        assert_eq!(
            parse("03"),
            Command::Obd {
                data: vec![0x03],
                responses: None
            }
        );
        assert_eq!(parse("1"), Command::Unknown);
        assert_eq!(parse("0100 0"), Command::Unknown);
        assert_eq!(parse("01G0"), Command::Unknown);
        assert_eq!(parse("\u{7f}\u{7f}"), Command::Unknown);
        assert_eq!(parse(&"0".repeat(MAX_LINE_LEN + 2)), Command::Unknown);
        assert_eq!(parse("ATXYZ"), Command::Unknown);
        assert_eq!(parse("HELLO"), Command::Unknown);
    }
}
