//! The way up: from a [`Message`] made in the car to a PUBACK from the broker.
//!
//! - [`writer`]: stamps each message's header (device, boot, `seq`) and appends it to the spool
//!   before anything is sent;
//! - `outbox`: the publish/acknowledge bookkeeping, without I/O;
//! - [`session`]: the MQTT connection (3.1.1 or 5, TLS with client certificates, credentials),
//!   publishing from the spool with QoS 1 and removing records on PUBACK, the retained status
//!   and its last will, and the command subscription, over the MQTT face shared with the
//!   cloud services (`telltale_service::mqtt`).

mod message;
pub(crate) mod outbox;
pub mod session;
pub mod writer;

pub use message::Message;
pub use session::{Session, UplinkState};
pub use writer::Stamp;
