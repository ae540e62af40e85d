//! Choosing a link with one setting, and opening a [`DiagClient`] on it.
//!
//! | form | link |
//! |---|---|
//! | `socketcan:IFACE` | a SocketCAN interface (`can0`, `vcan0`) |
//! | `slcan:PATH[@BITRATE[:SERIAL_BAUD]]` | an SLCAN/Lawicel serial adapter; `BITRATE` is the **CAN** bitrate in bit/s (default 500000), `SERIAL_BAUD` the serial line's (default 115200; USB adapters ignore it) |
//! | `elm327:PATH[@BAUD[:FAST_BAUD]]` | an ELM327 on a serial port; `BAUD` is the adapter's power-up rate (default 38400), `FAST_BAUD` a faster rate to switch to with `AT BRD` after each reset (kept only when the adapter and the line handle it) |
//! | `elm327+tcp:HOST:PORT` | an ELM327 Wi-Fi dongle (usually `192.168.0.10:35000`) |
//! | `sim:NAME` | the in-process virtual bus `NAME` (simulator and demo in one process) |

use std::fmt;
use std::str::FromStr;

use crate::client::can::{CanClient, response_filter};
use crate::client::{ClientOptions, DiagClient, DiagError};
use crate::elm327::Elm327Client;
use crate::virtual_bus::VirtualBus;

/// Default CAN bitrate of OBD-II on CAN (ISO 15765-4 allows 250 and 500 kbit/s).
pub const DEFAULT_CAN_BITRATE: u32 = 500_000;
/// Default serial speed of SLCAN adapters on a real UART.
pub const DEFAULT_SLCAN_SERIAL_BAUD: u32 = 115_200;
/// Default serial speed of ELM327 adapters.
pub const DEFAULT_ELM327_BAUD: u32 = 38_400;

/// The accepted forms, for error messages and `--help`.
pub const LINK_FORMS: &str = "socketcan:IFACE, slcan:PATH[@CAN_BITRATE[:SERIAL_BAUD]], \
                              elm327:PATH[@BAUD[:FAST_BAUD]], elm327+tcp:HOST:PORT, sim:NAME";

/// A link, as the user names it. See the module docs for the text forms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkSpec {
    SocketCan {
        iface: String,
    },
    Slcan {
        path: String,
        /// CAN bus bitrate, bit/s.
        can_bitrate: u32,
        /// Serial line speed, baud.
        serial_baud: u32,
    },
    Elm327Serial {
        path: String,
        /// The adapter's power-up rate.
        baud: u32,
        /// A faster rate to agree with `AT BRD`.
        fast_baud: Option<u32>,
    },
    Elm327Tcp {
        addr: String,
    },
    Sim {
        name: String,
    },
}

/// A link setting that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad link {given:?}: {reason}; accepted forms: {LINK_FORMS}")]
pub struct LinkSpecError {
    pub given: String,
    pub reason: String,
}

/// Why a link could not be opened.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenError {
    /// The interface or port could not be opened.
    #[error("cannot open {link}: {reason}")]
    Open { link: String, reason: String },
    /// The link opened but the adapter or vehicle did not come up (ELM327 initialisation).
    #[error("{link}: {error}")]
    Diag { link: String, error: DiagError },
}

impl OpenError {
    /// True when the link is fine but nothing on the vehicle side answered.
    pub fn is_silence(&self) -> bool {
        matches!(self, OpenError::Diag { error, .. } if error.is_silence())
    }
}

fn number(given: &str, what: &str, text: &str) -> Result<u32, LinkSpecError> {
    text.parse::<u32>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| LinkSpecError {
            given: given.to_owned(),
            reason: format!("{what} {text:?} is not a positive number"),
        })
}

impl FromStr for LinkSpec {
    type Err = LinkSpecError;

    fn from_str(s: &str) -> Result<LinkSpec, LinkSpecError> {
        let err = |reason: &str| LinkSpecError {
            given: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (kind, rest) = s.split_once(':').ok_or_else(|| err("no `kind:` prefix"))?;
        if rest.is_empty() {
            return Err(err("nothing after the colon"));
        }
        match kind {
            "socketcan" => Ok(LinkSpec::SocketCan {
                iface: rest.to_owned(),
            }),
            "slcan" => {
                let (path, speeds) = match rest.rsplit_once('@') {
                    Some((p, sp)) => (p, Some(sp)),
                    None => (rest, None),
                };
                let (can_bitrate, serial_baud) = match speeds.map(|sp| sp.split_once(':')) {
                    None => (DEFAULT_CAN_BITRATE, DEFAULT_SLCAN_SERIAL_BAUD),
                    Some(None) => (
                        number(s, "CAN bitrate", speeds.unwrap_or_default())?,
                        DEFAULT_SLCAN_SERIAL_BAUD,
                    ),
                    Some(Some((bitrate, baud))) => (
                        number(s, "CAN bitrate", bitrate)?,
                        number(s, "serial baud rate", baud)?,
                    ),
                };
                if path.is_empty() {
                    return Err(err("no serial port path"));
                }
                Ok(LinkSpec::Slcan {
                    path: path.to_owned(),
                    can_bitrate,
                    serial_baud,
                })
            }
            "elm327" => {
                let (path, speeds) = match rest.rsplit_once('@') {
                    Some((p, sp)) => (p, Some(sp)),
                    None => (rest, None),
                };
                let (baud, fast_baud) = match speeds.map(|sp| sp.split_once(':')) {
                    None => (DEFAULT_ELM327_BAUD, None),
                    Some(None) => (number(s, "baud rate", speeds.unwrap_or_default())?, None),
                    Some(Some((baud, fast))) => (
                        number(s, "baud rate", baud)?,
                        Some(number(s, "fast baud rate", fast)?),
                    ),
                };
                if path.is_empty() {
                    return Err(err("no serial port path"));
                }
                Ok(LinkSpec::Elm327Serial {
                    path: path.to_owned(),
                    baud,
                    fast_baud,
                })
            }
            "elm327+tcp" => {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| err("expected HOST:PORT"))?;
                if host.is_empty() || port.parse::<u16>().is_err() {
                    return Err(err("expected HOST:PORT with a port number"));
                }
                Ok(LinkSpec::Elm327Tcp {
                    addr: rest.to_owned(),
                })
            }
            "sim" => Ok(LinkSpec::Sim {
                name: rest.to_owned(),
            }),
            other => Err(err(&format!("unknown link kind {other:?}"))),
        }
    }
}

/// The canonical text form, which parses back to the same value.
impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSpec::SocketCan { iface } => write!(f, "socketcan:{iface}"),
            LinkSpec::Slcan {
                path,
                can_bitrate,
                serial_baud,
            } => write!(f, "slcan:{path}@{can_bitrate}:{serial_baud}"),
            LinkSpec::Elm327Serial {
                path,
                baud,
                fast_baud: None,
            } => write!(f, "elm327:{path}@{baud}"),
            LinkSpec::Elm327Serial {
                path,
                baud,
                fast_baud: Some(fast),
            } => write!(f, "elm327:{path}@{baud}:{fast}"),
            LinkSpec::Elm327Tcp { addr } => write!(f, "elm327+tcp:{addr}"),
            LinkSpec::Sim { name } => write!(f, "sim:{name}"),
        }
    }
}

fn open_failed(spec: &LinkSpec, e: crate::LinkError) -> OpenError {
    OpenError::Open {
        link: spec.to_string(),
        reason: e.to_string(),
    }
}

/// Opens a diagnostic client on `spec`. ELM327 links initialise the adapter
/// and find the vehicle's protocol, so they fail when no vehicle answers.
pub async fn open(spec: &LinkSpec, opts: &ClientOptions) -> Result<DiagClient, OpenError> {
    let diag = |error| OpenError::Diag {
        link: spec.to_string(),
        error,
    };
    match spec {
        LinkSpec::Sim { name } => {
            let bus = VirtualBus::named(name).node();
            Ok(DiagClient::Can(CanClient::named(
                bus,
                opts.clone(),
                &spec.to_string(),
            )))
        }
        LinkSpec::SocketCan { iface } => {
            let filters = [response_filter(opts.extended_ids)];
            let bus = crate::socketcan::open(iface, &filters).map_err(|e| open_failed(spec, e))?;
            Ok(DiagClient::Can(CanClient::named(
                bus,
                opts.clone(),
                &spec.to_string(),
            )))
        }
        LinkSpec::Slcan {
            path,
            can_bitrate,
            serial_baud,
        } => {
            let filters = [response_filter(opts.extended_ids)];
            let bus = crate::slcan::host::open(path, *serial_baud, *can_bitrate, &filters)
                .await
                .map_err(|e| open_failed(spec, e))?;
            Ok(DiagClient::Can(CanClient::named(
                bus,
                opts.clone(),
                &spec.to_string(),
            )))
        }
        LinkSpec::Elm327Serial {
            path,
            baud,
            fast_baud,
        } => Elm327Client::open_serial(path, *baud, *fast_baud, opts)
            .await
            .map(DiagClient::Elm327)
            .map_err(diag),
        LinkSpec::Elm327Tcp { addr } => Elm327Client::open_tcp(addr, opts)
            .await
            .map(DiagClient::Elm327)
            .map_err(diag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<LinkSpec, LinkSpecError> {
        s.parse()
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        let cases = [
            (
                "socketcan:can0",
                LinkSpec::SocketCan {
                    iface: "can0".into(),
                },
            ),
            (
                "slcan:/dev/ttyACM0@500000",
                LinkSpec::Slcan {
                    path: "/dev/ttyACM0".into(),
                    can_bitrate: 500_000,
                    serial_baud: 115_200,
                },
            ),
            (
                "slcan:/dev/ttyUSB1@250000:921600",
                LinkSpec::Slcan {
                    path: "/dev/ttyUSB1".into(),
                    can_bitrate: 250_000,
                    serial_baud: 921_600,
                },
            ),
            (
                "slcan:/dev/ttyACM0",
                LinkSpec::Slcan {
                    path: "/dev/ttyACM0".into(),
                    can_bitrate: 500_000,
                    serial_baud: 115_200,
                },
            ),
            (
                "elm327:/dev/ttyUSB0@38400",
                LinkSpec::Elm327Serial {
                    path: "/dev/ttyUSB0".into(),
                    baud: 38_400,
                    fast_baud: None,
                },
            ),
            (
                "elm327:/dev/ttyUSB0@38400:115200",
                LinkSpec::Elm327Serial {
                    path: "/dev/ttyUSB0".into(),
                    baud: 38_400,
                    fast_baud: Some(115_200),
                },
            ),
            (
                "elm327:/dev/rfcomm0",
                LinkSpec::Elm327Serial {
                    path: "/dev/rfcomm0".into(),
                    baud: 38_400,
                    fast_baud: None,
                },
            ),
            (
                "elm327+tcp:192.168.0.10:35000",
                LinkSpec::Elm327Tcp {
                    addr: "192.168.0.10:35000".into(),
                },
            ),
            (
                "elm327+tcp:[::1]:35000",
                LinkSpec::Elm327Tcp {
                    addr: "[::1]:35000".into(),
                },
            ),
            (
                "sim:garage",
                LinkSpec::Sim {
                    name: "garage".into(),
                },
            ),
        ];
        for (text, spec) in cases {
            assert_eq!(parse(text).as_ref(), Ok(&spec), "{text}");
            assert_eq!(parse(&spec.to_string()).as_ref(), Ok(&spec), "{spec}");
        }
    }

    #[test]
    fn bad_forms_say_what_is_accepted() {
        for bad in [
            "can0",
            "socketcan:",
            "pcan:usb1",
            "slcan:/dev/ttyACM0@fast",
            "slcan:/dev/ttyACM0@500000:0",
            "slcan:@500000",
            "elm327:/dev/ttyUSB0@",
            "elm327+tcp:192.168.0.10",
            "elm327+tcp:host:port",
            "sim:",
        ] {
            let e = parse(bad).expect_err(bad);
            let text = e.to_string();
            assert!(text.contains(bad), "{text}");
            assert!(text.contains("socketcan:IFACE"), "{text}");
            assert!(text.contains("elm327+tcp:HOST:PORT"), "{text}");
        }
        assert!(
            parse("pcan:usb1")
                .unwrap_err()
                .reason
                .contains("unknown link kind")
        );
    }

    #[tokio::test]
    async fn a_missing_interface_is_named_in_the_error() {
        let opts = ClientOptions::default();
        let e = open(&parse("socketcan:nosuchcan9").unwrap(), &opts)
            .await
            .unwrap_err();
        let OpenError::Open { link, reason } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(link, "socketcan:nosuchcan9");
        assert!(reason.contains("nosuchcan9"), "{reason}");
        let e = open(&parse("slcan:/dev/no-such-tty").unwrap(), &opts)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/dev/no-such-tty"), "{e}");
        assert!(open(&parse("sim:link-test").unwrap(), &opts).await.is_ok());
    }
}
