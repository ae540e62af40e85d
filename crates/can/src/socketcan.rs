//! Linux SocketCAN links (`can0`, `vcan0`, ...) through the `socketcan` crate's tokio support.
//!
//! [`open`] binds a raw CAN socket to an interface, installs the caller's [`Filter`]s as kernel
//! filters (the kernel drops everything else before it reaches us), turns on every class of
//! error frame, and spawns one driver task that owns the socket: it writes what the handles
//! queue, delivers what it reads, reports error frames to subscribers as
//! [`BusError::Fault`] with a readable description (bus-off, controller problems, no ACK...),
//! and closes the link when the last handle is dropped.
//!
//! Classic CAN only (11- and 29-bit data frames); remote frames are ignored, CAN FD is not
//! enabled. Frames a handle sends are also delivered to the other handles of the same link
//! (the kernel does not loop them back to the sending socket), never to the sender itself.
//!
//! Testing: the development and CI kernels have no CAN support, so on them [`open`] fails with
//! [`LinkError::SocketCanOpen`] naming the cause. [`self_test`] exercises a real interface
//! (both id formats, kernel filtering, delivery in order) and is what the QEMU guest test runs,
//! through `cargo run --release -p telltale-can --example socketcan_selftest -- vcan0`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use socketcan::{
    CanFilter, EmbeddedFrame, ExtendedId, Id, SocketOptions, StandardId, tokio::CanSocket,
};
use telltale_obd::{CanFrame, CanId};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::bus::{BusError, CanBus, Filter, Hub, Outgoing, SEND_CAPACITY};
use crate::error::LinkError;

/// How long a write may wait for room in the socket's buffer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a read error, so a dead interface does not spin the task.
const READ_ERROR_BACKOFF: Duration = Duration::from_millis(100);

const EFF_FLAG: u32 = 0x8000_0000;
const RTR_FLAG: u32 = 0x4000_0000;

/// Opens `iface` and returns a handle to it. The kernel passes only frames matching one of
/// `filters` (an empty slice passes every frame). Must be called within a tokio runtime.
pub fn open(iface: &str, filters: &[Filter]) -> Result<CanBus, LinkError> {
    let socket = CanSocket::open(iface).map_err(|source| LinkError::SocketCanOpen {
        iface: iface.to_owned(),
        hint: open_hint(&source),
        source,
    })?;
    let config = |what: &'static str| {
        move |source| LinkError::SocketCanConfig {
            iface: iface.to_owned(),
            what,
            source,
        }
    };
    if !filters.is_empty() {
        socket
            .set_filters(&kernel_filters(filters))
            .map_err(config("receive filters"))?;
    }
    socket
        .set_error_filter_accept_all()
        .map_err(config("error frame mask"))?;
    let (tx, rx) = mpsc::channel(SEND_CAPACITY);
    let hub = Arc::new(Hub::default());
    tokio::spawn(drive(
        iface.to_owned(),
        socket,
        rx,
        hub.clone(),
        filters.to_vec(),
    ));
    Ok(CanBus::from_parts(iface, tx, hub))
}

fn open_hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EAFNOSUPPORT) | Some(libc::EPROTONOSUPPORT) => {
            "this kernel has no CAN support: CONFIG_CAN is off or the can and can-raw modules are \
             not loaded"
        }
        Some(libc::ENODEV) if !std::path::Path::new("/proc/net/can").exists() => {
            "this kernel has no CAN support: CONFIG_CAN is off or the can module is not loaded \
             (no /proc/net/can)"
        }
        Some(libc::ENODEV) => {
            "no such interface; for a virtual one: modprobe vcan; ip link add dev vcan0 type \
             vcan; ip link set vcan0 up"
        }
        Some(libc::ENETDOWN) => "the interface is down: ip link set <iface> up",
        Some(libc::EPERM) | Some(libc::EACCES) => "permission denied",
        _ => "is the vcan/can module loaded and the interface up?",
    }
}

/// Our filters as kernel filters. The kernel compares `received_id & mask == id & mask` on the
/// whole id word, flags included: putting the EFF flag in both keeps 11- and 29-bit ids apart,
/// and the RTR flag in the mask keeps remote frames out.
fn kernel_filters(filters: &[Filter]) -> Vec<CanFilter> {
    filters
        .iter()
        .map(|f| {
            let (id_mask, eff) = if f.extended {
                (0x1FFF_FFFF, EFF_FLAG)
            } else {
                (0x7FF, 0)
            };
            CanFilter::new(
                (f.id & f.mask & id_mask) | eff,
                (f.mask & id_mask) | EFF_FLAG | RTR_FLAG,
            )
        })
        .collect()
}

fn to_socketcan(frame: &CanFrame) -> Option<socketcan::CanFrame> {
    let id: Id = match frame.id() {
        CanId::Standard(id) => StandardId::new(id)?.into(),
        CanId::Extended(id) => ExtendedId::new(id)?.into(),
    };
    socketcan::CanFrame::new(id, frame.data())
}

fn from_socketcan(frame: &socketcan::CanDataFrame) -> Option<CanFrame> {
    let id = match frame.id() {
        Id::Standard(id) => CanId::Standard(id.as_raw()),
        Id::Extended(id) => CanId::Extended(id.as_raw()),
    };
    CanFrame::new(id, frame.data()).ok()
}

async fn drive(
    iface: String,
    socket: CanSocket,
    mut rx: mpsc::Receiver<Outgoing>,
    hub: Arc<Hub>,
    filters: Vec<Filter>,
) {
    let passes = |id: CanId| filters.is_empty() || filters.iter().any(|f| f.matches(id));
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break };
                let Some(frame) = to_socketcan(&out.frame) else {
                    hub.fault(BusError::Io(format!("{iface}: cannot encode {:?}", out.frame)));
                    continue;
                };
                match tokio::time::timeout(WRITE_TIMEOUT, socket.write_frame(frame)).await {
                    Ok(Ok(())) => {
                        // The kernel does not loop a frame back to its own socket; the other
                        // handles of this link hear it from here.
                        if passes(out.frame.id()) {
                            hub.deliver(out.frame, Some(out.origin));
                        }
                    }
                    Ok(Err(err)) => {
                        warn!(iface = %iface, cause = %err, frame = ?out.frame, "CAN write failed");
                        hub.fault(write_error(&iface, &err));
                    }
                    Err(_) => hub.fault(BusError::Fault(format!(
                        "{iface}: transmit blocked for {WRITE_TIMEOUT:?}, frame {:?} dropped",
                        out.frame
                    ))),
                }
            }
            read = socket.read_frame() => match read {
                Ok(socketcan::CanFrame::Data(data)) => {
                    if let Some(frame) = from_socketcan(&data) {
                        hub.deliver(frame, None);
                    }
                }
                Ok(socketcan::CanFrame::Remote(remote)) => {
                    debug!(iface = %iface, id = ?remote.id(), "remote frame ignored");
                }
                Ok(socketcan::CanFrame::Error(err)) => {
                    let text = describe_error_frame(err.error_bits(), err.data());
                    warn!(iface = %iface, error = %text, "CAN error frame");
                    hub.fault(BusError::Fault(format!("{iface}: {text}")));
                }
                Err(err) => {
                    warn!(iface = %iface, cause = %err, "CAN read failed");
                    hub.fault(BusError::Io(format!("{iface}: read failed: {err}")));
                    if err.raw_os_error() == Some(libc::ENODEV) {
                        break;
                    }
                    tokio::time::sleep(READ_ERROR_BACKOFF).await;
                }
            },
        }
    }
    debug!(iface = %iface, "SocketCAN link closed");
    hub.close();
}

fn write_error(iface: &str, err: &io::Error) -> BusError {
    match err.raw_os_error() {
        Some(libc::ENOBUFS) => BusError::Fault(format!(
            "{iface}: transmit queue full, frame dropped (is any other node acknowledging \
             frames? is the bitrate right?)"
        )),
        Some(libc::ENETDOWN) => BusError::Fault(format!("{iface}: interface is down")),
        _ => BusError::Io(format!("{iface}: write failed: {err}")),
    }
}

/// Describes an error frame's class bits (the id word without flags) and data bytes as Linux's
/// `can/error.h` defines them, e.g. `no ACK on transmission; controller: TX error-passive`.
pub fn describe_error_frame(class: u32, data: &[u8]) -> String {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let mut parts: Vec<String> = Vec::new();
    if class & 0x001 != 0 {
        parts.push("transmit timeout".into());
    }
    if class & 0x002 != 0 {
        parts.push(match byte(0) {
            0 => "arbitration lost".into(),
            bit => format!("arbitration lost at bit {bit}"),
        });
    }
    if class & 0x004 != 0 {
        const CTRL: [(u8, &str); 7] = [
            (0x01, "RX buffer overflow"),
            (0x02, "TX buffer overflow"),
            (0x04, "RX error-warning"),
            (0x08, "TX error-warning"),
            (0x10, "RX error-passive"),
            (0x20, "TX error-passive"),
            (0x40, "back to error-active"),
        ];
        parts.push(format!("controller: {}", flags(byte(1), &CTRL)));
    }
    if class & 0x008 != 0 {
        const PROT: [(u8, &str); 8] = [
            (0x01, "single bit error"),
            (0x02, "frame format error"),
            (0x04, "bit stuffing error"),
            (0x08, "cannot send dominant bit"),
            (0x10, "cannot send recessive bit"),
            (0x20, "bus overload"),
            (0x40, "active error announcement"),
            (0x80, "error on transmission"),
        ];
        let location = match byte(3) {
            0x00 => None,
            0x03 => Some("start of frame"),
            0x02 | 0x06 | 0x07 | 0x0F | 0x0E => Some("identifier"),
            0x04 => Some("SRR bit"),
            0x05 => Some("IDE bit"),
            0x0C => Some("RTR bit"),
            0x0D | 0x09 => Some("reserved bit"),
            0x0B => Some("DLC"),
            0x0A => Some("data field"),
            0x08 => Some("CRC sequence"),
            0x18 => Some("CRC delimiter"),
            0x19 => Some("ACK slot"),
            0x1B => Some("ACK delimiter"),
            0x1A => Some("end of frame"),
            0x12 => Some("intermission"),
            _ => Some("unknown location"),
        };
        let mut text = format!("protocol violation: {}", flags(byte(2), &PROT));
        if let Some(location) = location {
            text.push_str(" at ");
            text.push_str(location);
        }
        parts.push(text);
    }
    if class & 0x010 != 0 {
        parts.push(format!("transceiver error (0x{:02X})", byte(4)));
    }
    if class & 0x020 != 0 {
        parts.push(
            "no ACK on transmission (no other node on the bus, or none at this bitrate)".into(),
        );
    }
    if class & 0x040 != 0 {
        parts.push("bus off: the controller stopped after too many errors".into());
    }
    if class & 0x080 != 0 {
        parts.push("bus error".into());
    }
    if class & 0x100 != 0 {
        parts.push("controller restarted".into());
    }
    if class & 0x200 != 0 {
        parts.push(format!("error counters TX {} RX {}", byte(6), byte(7)));
    }
    let unknown = class & !0x3FF;
    if unknown != 0 {
        parts.push(format!("unknown error class 0x{unknown:X}"));
    }
    if parts.is_empty() {
        "error frame without error class".into()
    } else {
        parts.join("; ")
    }
}

fn flags(value: u8, names: &[(u8, &str)]) -> String {
    if value == 0 {
        return "unspecified".into();
    }
    let mut out: Vec<String> = names
        .iter()
        .filter(|(bit, _)| value & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let known = names.iter().fold(0u8, |acc, (bit, _)| acc | bit);
    if value & !known != 0 {
        out.push(format!("0x{:02X}", value & !known));
    }
    out.join(", ")
}

/// What [`self_test`] observed.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfTestReport {
    pub iface: String,
    /// Frames the sending link wrote.
    pub sent: usize,
    /// Frames the filtered link received (should be exactly the matching ones).
    pub received: usize,
    /// Time from the first write to the last expected frame read.
    pub elapsed: Duration,
}

/// Checks a live interface end to end: opens it twice (once unfiltered, once with kernel
/// filters for one 11-bit and one 29-bit id), sends a mix of frames from the first link, and
/// checks that the second receives exactly the matching ones, in order, with their format
/// intact. For the QEMU guest test and for a quick check on a real bench.
pub async fn self_test(iface: &str) -> Result<SelfTestReport, LinkError> {
    let fail = |what: String| LinkError::SelfTest {
        iface: iface.to_owned(),
        what,
    };
    let std_id = CanId::Standard(0x7E8);
    let ext_id = CanId::Extended(0x18DA_F110);
    let wanted = [Filter::exact(std_id), Filter::exact(ext_id)];
    let sender = open(iface, &[])?;
    let receiver = open(iface, &wanted)?;
    let mut sub = receiver.subscribe(&[Filter::all(false), Filter::all(true)]);
    let frame = |id: CanId, data: &[u8]| CanFrame::new(id, data).map_err(|e| fail(e.to_string()));
    let traffic = [
        frame(CanId::Standard(0x7DF), &[2, 1, 0])?,
        frame(std_id, &[4, 0x41, 0x0C, 0x1A, 0xF8])?,
        frame(CanId::Extended(0x7E8), &[1])?, // same number, 29-bit: must be filtered out
        frame(ext_id, &[0x10, 0x14, 0x49, 0x02, 0x01, 0x31, 0x47, 0x31])?,
        frame(CanId::Standard(0x7E9), &[3])?,
        frame(std_id, &[])?,
    ];
    let expected: Vec<CanFrame> = traffic
        .iter()
        .filter(|f| wanted.iter().any(|w| w.matches(f.id())))
        .copied()
        .collect();
    let start = tokio::time::Instant::now();
    for f in &traffic {
        sender
            .send(*f)
            .await
            .map_err(|e| fail(format!("sending {f:?}: {e}")))?;
    }
    let mut received = 0;
    for want in &expected {
        match tokio::time::timeout(Duration::from_secs(2), sub.recv()).await {
            Ok(Ok(got)) if got == *want => received += 1,
            Ok(Ok(got)) => return Err(fail(format!("expected {want:?}, received {got:?}"))),
            Ok(Err(e)) => return Err(fail(format!("waiting for {want:?}: {e}"))),
            Err(_) => return Err(fail(format!("{want:?} did not arrive within 2 s"))),
        }
    }
    let elapsed = start.elapsed();
    // Nothing else may come through the kernel filters.
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
        return Err(fail(format!(
            "the kernel filters let through {extra:?} as well"
        )));
    }
    Ok(SelfTestReport {
        iface: iface.to_owned(),
        sent: traffic.len(),
        received,
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opening_without_kernel_support_fails_clearly() {
        // The development and CI kernels have no CAN; in a guest with vcan0 up this succeeds.
        match open("vcan0", &[]) {
            Err(err @ LinkError::SocketCanOpen { .. }) => {
                let text = err.to_string();
                assert!(
                    text.starts_with("cannot open SocketCAN interface vcan0: "),
                    "{text}"
                );
                assert!(text.contains('('), "a hint follows: {text}");
                if !std::path::Path::new("/proc/net/can").exists() {
                    assert!(text.contains("this kernel has no CAN support"), "{text}");
                }
            }
            Err(other) => panic!("unexpected error kind: {other}"),
            Ok(_) => eprintln!("vcan0 exists here: nothing to check"),
        }
        let err = open("no-such-can9", &[]).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("no-such-can9") && e.contains("(")),
            "{err:?}"
        );
    }

    #[test]
    fn error_frames_read_as_sentences() {
        assert_eq!(
            describe_error_frame(0x040, &[0; 8]),
            "bus off: the controller stopped after too many errors"
        );
        assert_eq!(
            describe_error_frame(0x004 | 0x200, &[0, 0x20 | 0x08, 0, 0, 0, 0, 130, 4]),
            "controller: TX error-warning, TX error-passive; error counters TX 130 RX 4"
        );
        assert_eq!(
            describe_error_frame(0x008 | 0x080, &[0, 0, 0x04 | 0x80, 0x0A, 0, 0, 0, 0]),
            "protocol violation: bit stuffing error, error on transmission at data field; \
             bus error"
        );
        assert!(describe_error_frame(0x020, &[]).starts_with("no ACK on transmission"));
        assert_eq!(
            describe_error_frame(0x002, &[7]),
            "arbitration lost at bit 7"
        );
        assert_eq!(
            describe_error_frame(0x800, &[]),
            "unknown error class 0x800"
        );
        assert_eq!(
            describe_error_frame(0, &[]),
            "error frame without error class"
        );
    }

    #[test]
    fn kernel_filters_keep_the_id_formats_apart() {
        let f = kernel_filters(&[
            Filter::exact(CanId::Standard(0x7E8)),
            Filter::exact(CanId::Extended(0x18DA_F110)),
            Filter::all(true),
        ]);
        let raw = |f: &CanFilter| {
            let c: &libc::can_filter = f.as_ref();
            (c.can_id, c.can_mask)
        };
        assert_eq!(raw(&f[0]), (0x7E8, 0x7FF | EFF_FLAG | RTR_FLAG));
        assert_eq!(
            raw(&f[1]),
            (0x18DA_F110 | EFF_FLAG, 0x1FFF_FFFF | EFF_FLAG | RTR_FLAG)
        );
        assert_eq!(raw(&f[2]), (EFF_FLAG, EFF_FLAG | RTR_FLAG));
    }

    #[test]
    fn frames_convert_both_ways() {
        for frame in [
            CanFrame::new(CanId::Standard(0x7DF), &[2, 1, 0]).unwrap(),
            CanFrame::new(CanId::Extended(0x18DB_33F1), &[2, 9, 2, 0, 0, 0, 0, 0]).unwrap(),
            CanFrame::new(CanId::Standard(0), &[]).unwrap(),
        ] {
            let Some(socketcan::CanFrame::Data(data)) = to_socketcan(&frame) else {
                panic!("not a data frame");
            };
            assert_eq!(from_socketcan(&data), Some(frame));
        }
    }
}
