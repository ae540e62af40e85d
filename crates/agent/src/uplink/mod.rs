//! The MQTT session. (Pending.)
mod message;
pub use message::Message;
