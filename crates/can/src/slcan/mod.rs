//! SLCAN (Lawicel) serial CAN adapters: CANable, USBtin and the many clones that speak the
//! same ASCII protocol over a USB serial port. For machines without SocketCAN, or when the
//! adapter is not bound to the kernel's `slcan` driver.
//!
//! - [`codec`]: the pure protocol (commands, adapter answers, line accumulator).
//! - [`host`]: a [`CanBus`](crate::CanBus) over an adapter on a serial port or byte stream.
//! - [`device`]: the other side, an emulated adapter bridging a byte stream to a bus (the
//!   simulator serves vehicles through it on a pty).

pub mod codec;
pub mod device;
pub mod host;

pub use device::serve_adapter;
pub use host::open;
