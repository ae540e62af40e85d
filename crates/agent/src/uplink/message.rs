//! The messages the agent sends up, before and after the spool stamps their header.

use prost::Message as _;
use telltale_wire::topic::{self, Kind};
use telltale_wire::v1;

use crate::spool::Class;

/// One uplink message as the vehicle side or the command handler makes it. Its header is left
/// empty: the spool writer stamps device id, boot id and `seq` at the moment it stores the
/// message, so `seq` follows the order on disk.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Telemetry(v1::TelemetryBatch),
    Dtc(v1::DtcReport),
    Info(v1::VehicleInfo),
    CmdResult(v1::CommandResult),
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self {
            Message::Telemetry(_) => Kind::Telemetry,
            Message::Dtc(_) => Kind::Dtc,
            Message::Info(_) => Kind::Info,
            Message::CmdResult(_) => Kind::CmdResult,
        }
    }

    /// The spool class: decides what is sent first and what is dropped first.
    pub fn class(&self) -> Class {
        match self {
            Message::Telemetry(_) => Class::Telemetry,
            Message::Dtc(_) => Class::Dtc,
            Message::Info(_) => Class::Info,
            Message::CmdResult(_) => Class::CmdResult,
        }
    }

    /// Sets the header and returns the topic and the encoded payload.
    pub fn stamp(mut self, header: v1::UplinkHeader) -> (String, Vec<u8>) {
        let t = topic::topic(&header.device_id, self.kind());
        let h = Some(header);
        let bytes = match &mut self {
            Message::Telemetry(m) => {
                m.header = h;
                m.encode_to_vec()
            }
            Message::Dtc(m) => {
                m.header = h;
                m.encode_to_vec()
            }
            Message::Info(m) => {
                m.header = h;
                m.encode_to_vec()
            }
            Message::CmdResult(m) => {
                m.header = h;
                m.encode_to_vec()
            }
        };
        (t, bytes)
    }
}
