//! The SLCAN link end to end: the host driver on a real pty slave (opened by path through
//! tokio-serial, as a USB adapter would be) talking to the emulated adapter on the pty master,
//! which bridges to a virtual bus. Plus garbage from either side.

// Helpers outside `#[test]` functions panic on purpose too.
#![allow(clippy::unwrap_used)]

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use telltale_can::bus::BusError;
use telltale_can::slcan::{self, host};
use telltale_can::{CanBus, Filter, LinkError, Subscription, VirtualBus};
use telltale_obd::{CanFrame, CanId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::time::timeout;

type Master = tokio::io::Join<pipe::Receiver, pipe::Sender>;

/// A pty pair: the master as an async byte stream, the slave's path, and the slave fd (kept
/// open so the master does not read EIO before the host opens the path).
fn pty() -> (Master, String, OwnedFd) {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let mut termios = tcgetattr(&pair.slave).expect("tcgetattr");
    cfmakeraw(&mut termios);
    tcsetattr(&pair.slave, SetArg::TCSANOW, &termios).expect("tcsetattr");
    let path = nix::unistd::ttyname(&pair.slave)
        .expect("ttyname")
        .to_string_lossy()
        .into_owned();
    let flags = fcntl(&pair.master, FcntlArg::F_GETFL).expect("F_GETFL");
    fcntl(
        &pair.master,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .expect("F_SETFL");
    let writer = pair.master.try_clone().expect("dup master");
    let master = tokio::io::join(
        pipe::Receiver::from_owned_fd_unchecked(pair.master).expect("master reader"),
        pipe::Sender::from_owned_fd_unchecked(writer).expect("master writer"),
    );
    (master, path, pair.slave)
}

fn std_frame(id: u16, data: &[u8]) -> CanFrame {
    CanFrame::new(CanId::Standard(id), data).unwrap()
}

fn ext_frame(id: u32, data: &[u8]) -> CanFrame {
    CanFrame::new(CanId::Extended(id), data).unwrap()
}

const ALL: [Filter; 2] = [
    Filter {
        id: 0,
        mask: 0,
        extended: false,
    },
    Filter {
        id: 0,
        mask: 0,
        extended: true,
    },
];

async fn next_frame(sub: &mut Subscription) -> CanFrame {
    loop {
        match timeout(Duration::from_secs(2), sub.recv()).await {
            Ok(Ok(frame)) => return frame,
            Ok(Err(err)) => eprintln!("(while waiting for a frame: {err})"),
            Err(_) => panic!("no frame within 2 s"),
        }
    }
}

/// A simulated ECU on a virtual bus, served as an SLCAN adapter on a pty, and the host link
/// opened on the pty's path.
async fn rig() -> (
    OwnedFd,
    CanBus,
    CanBus,
    tokio::task::JoinHandle<Result<(), LinkError>>,
) {
    let (master, path, slave) = pty();
    let bus = VirtualBus::new("slcan-pty");
    let ecu = bus.node();
    let adapter = tokio::spawn(slcan::serve_adapter(master, bus.node()));
    let link = timeout(
        Duration::from_secs(5),
        host::open(&path, 115_200, 500_000, &[]),
    )
    .await
    .expect("init finished in time")
    .expect("host opens the adapter");
    (slave, link, ecu, adapter)
}

#[tokio::test]
async fn frames_cross_a_pty_both_ways_in_both_id_formats() {
    let (slave, link, ecu, adapter) = rig().await;
    assert!(
        link.name().starts_with("slcan:/dev/pts/"),
        "{}",
        link.name()
    );
    let mut at_ecu = ecu.subscribe(&ALL);
    let mut at_host = link.subscribe(&ALL);

    let request = std_frame(0x7DF, &[0x02, 0x01, 0x0C]);
    let ext_request = ext_frame(0x18DB_33F1, &[0x02, 0x09, 0x02]);
    link.send(request).await.unwrap();
    link.send(ext_request).await.unwrap();
    assert_eq!(next_frame(&mut at_ecu).await, request);
    assert_eq!(next_frame(&mut at_ecu).await, ext_request);

    let answer = std_frame(0x7E8, &[0x04, 0x41, 0x0C, 0x1A, 0xF8, 0, 0, 0]);
    let ext_answer = ext_frame(
        0x18DA_F110,
        &[0x10, 0x14, 0x49, 0x02, 0x01, 0x31, 0x47, 0x31],
    );
    let empty = std_frame(0x123, &[]);
    ecu.send(answer).await.unwrap();
    ecu.send(ext_answer).await.unwrap();
    ecu.send(empty).await.unwrap();
    assert_eq!(next_frame(&mut at_host).await, answer);
    assert_eq!(next_frame(&mut at_host).await, ext_answer);
    assert_eq!(next_frame(&mut at_host).await, empty);

    // A burst keeps its order and loses nothing.
    let t0 = std::time::Instant::now();
    for i in 0..200u16 {
        ecu.send(std_frame(0x7E8, &i.to_be_bytes())).await.unwrap();
    }
    for i in 0..200u16 {
        assert_eq!(
            next_frame(&mut at_host).await,
            std_frame(0x7E8, &i.to_be_bytes())
        );
    }

    eprintln!(
        "200 frames adapter -> host over the pty in {:?}",
        t0.elapsed()
    );
    // Dropping every handle closes the channel (`C`) and ends the driver, which closes the
    // port. A frame on the bus then reaches nobody: nothing arrives on the slave side.
    drop(at_host);
    drop(link);
    tokio::time::sleep(Duration::from_millis(200)).await;
    ecu.send(std_frame(0x7E8, &[0xEE])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let flags = fcntl(&slave, FcntlArg::F_GETFL).unwrap();
    fcntl(
        &slave,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .unwrap();
    // Left unread on the slave: the adapter's answer to `C` (and to a last status poll,
    // `F00`), and no frame.
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(&slave, &mut buf).unwrap_or(0);
    let left = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        left.ends_with('\r') && !left.contains(['t', 'T']),
        "only answers, no frames: {left:?}"
    );
    assert_eq!(
        nix::unistd::read(&slave, &mut buf),
        Err(nix::errno::Errno::EAGAIN)
    );
    // When the last holder of the slave goes, the adapter's stream ends.
    drop(slave);
    let served = timeout(Duration::from_secs(3), adapter).await;
    assert!(served.is_ok(), "the adapter should notice the host left");
}

#[tokio::test]
async fn host_filters_are_applied_in_software() {
    let (master, path, _slave) = pty();
    let bus = VirtualBus::new("slcan-filter");
    let ecu = bus.node();
    tokio::spawn(slcan::serve_adapter(master, bus.node()));
    let link = host::open(
        &path,
        115_200,
        500_000,
        &[Filter::exact(CanId::Standard(0x7E8))],
    )
    .await
    .unwrap();
    let mut at_host = link.subscribe(&ALL);
    ecu.send(std_frame(0x7E9, &[1])).await.unwrap();
    ecu.send(ext_frame(0x7E8, &[2])).await.unwrap();
    ecu.send(std_frame(0x7E8, &[3])).await.unwrap();
    assert_eq!(next_frame(&mut at_host).await, std_frame(0x7E8, &[3]));
}

#[tokio::test]
async fn garbage_into_the_adapter_is_refused_and_the_link_keeps_working() {
    let (slave, link, ecu, _adapter) = rig().await;
    let mut at_ecu = ecu.subscribe(&ALL);
    let mut at_host = link.subscribe(&ALL);
    // Another writer on the slave side: line noise, an unknown command, an over-long line.
    nix::unistd::write(&slave, b"\x00\xFFnoise\rt7E\r").unwrap();
    nix::unistd::write(&slave, &[b'x'; 100]).unwrap();
    nix::unistd::write(&slave, b"\r").unwrap();
    // The adapter answers BEL to each; the host reports them as faults, not frames.
    let mut faults = 0;
    while let Ok(got) = timeout(Duration::from_millis(300), at_host.recv()).await {
        match got {
            Err(BusError::Fault(text)) => {
                assert!(text.contains("BEL") || text.contains("refused"), "{text}");
                faults += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(faults >= 1, "the adapter's BELs surface as faults");
    let frame = std_frame(0x7E0, &[0x02, 0x01, 0x00]);
    link.send(frame).await.unwrap();
    assert_eq!(next_frame(&mut at_ecu).await, frame);
    ecu.send(std_frame(0x7E8, &[6])).await.unwrap();
    assert_eq!(next_frame(&mut at_host).await, std_frame(0x7E8, &[6]));
}

#[tokio::test]
async fn opening_a_missing_port_names_it() {
    let err = host::open("/dev/no-such-tty", 115_200, 500_000, &[])
        .await
        .expect_err("must fail");
    assert!(
        err.to_string()
            .starts_with("cannot open serial port /dev/no-such-tty at 115200 baud: "),
        "{err}"
    );
    let err = host::open("/dev/no-such-tty", 115_200, 33_333, &[])
        .await
        .expect_err("must fail");
    assert!(
        matches!(err, LinkError::UnsupportedBitrate(33_333)),
        "{err}"
    );
}

/// A scripted adapter on an in-memory pipe: answers the init, then sends garbage between
/// good frames. The host must report the garbage and deliver the frames.
#[tokio::test]
async fn garbage_from_an_adapter_becomes_errors_not_panics_or_hangs() {
    let (host_side, mut adapter) = tokio::io::duplex(4096);
    let script = tokio::spawn(async move {
        answer_init(&mut adapter).await;
        adapter
            .write_all(b"t7E8\r\x07\xFF\xFE\x00garbage\rt7E81AA\rT1FFFFFFF0\r")
            .await
            .unwrap();
        adapter.write_all(&[b'9'; 500]).await.unwrap();
        adapter.write_all(b"\rt7E9255AA\r").await.unwrap();
        // Keep the stream open until the test is done with it.
        let mut sink = [0u8; 64];
        while adapter.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    let link = host::open_stream("scripted", host_side, 500_000, &[])
        .await
        .unwrap();
    let mut sub = link.subscribe(&ALL);
    let mut frames = Vec::new();
    let mut errors = Vec::new();
    while frames.len() < 3 {
        match timeout(Duration::from_secs(2), sub.recv()).await {
            Ok(Ok(frame)) => frames.push(frame),
            Ok(Err(err)) => errors.push(err.to_string()),
            Err(_) => panic!("hung; frames {frames:?}, errors {errors:?}"),
        }
    }
    assert_eq!(
        frames,
        [
            std_frame(0x7E8, &[0xAA]),
            ext_frame(0x1FFF_FFFF, &[]),
            std_frame(0x7E9, &[0x55, 0xAA])
        ]
    );
    let all = errors.join("\n");
    assert!(all.contains("\"t7E8\" has 4 characters"), "{all}");
    assert!(all.contains("adapter reported an error (BEL)"), "{all}");
    assert!(all.contains("unknown SLCAN message"), "{all}");
    assert!(all.contains("bytes discarded"), "{all}");
    drop(link);
    drop(sub);
    script.abort();
}

/// Reads the host's init (flush, C, S6, O) and answers OK to each command.
async fn answer_init<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while !seen.ends_with(b"O\r") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "host closed during init");
        for &b in &buf[..n] {
            seen.push(b);
            if b == b'\r' && seen.len() > 1 && seen[seen.len() - 2] != b'\r' {
                s.write_all(b"\r").await.unwrap();
            }
        }
    }
    assert!(
        String::from_utf8_lossy(&seen).contains("C\rS6\rO\r"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn the_emulated_adapter_speaks_lawicel() {
    let bus = VirtualBus::new("lawicel");
    let ecu = bus.node();
    let mut at_ecu = ecu.subscribe(&ALL);
    let (mut host_side, adapter_side) = tokio::io::duplex(4096);
    tokio::spawn(slcan::serve_adapter(adapter_side, bus.node()));
    let mut exchange = async |cmd: &[u8]| -> Vec<u8> {
        host_side.write_all(cmd).await.unwrap();
        let mut out = vec![0u8; 64];
        let n = timeout(Duration::from_secs(1), host_side.read(&mut out))
            .await
            .expect("an answer")
            .unwrap();
        out.truncate(n);
        out
    };
    assert_eq!(exchange(b"V\r").await, b"V1010\r");
    assert_eq!(exchange(b"N\r").await, b"NTT01\r");
    assert_eq!(exchange(b"t7DF10\r").await, b"\x07", "closed: refused");
    assert_eq!(exchange(b"S9\r").await, b"\x07", "no such bitrate");
    assert_eq!(exchange(b"bogus\r").await, b"\x07");
    assert_eq!(exchange(b"S6\r").await, b"\r");
    assert_eq!(exchange(b"Z1\r").await, b"\r");
    assert_eq!(exchange(b"O\r").await, b"\r");
    assert_eq!(
        exchange(b"S4\r").await,
        b"\x07",
        "no bitrate change while open"
    );
    assert_eq!(exchange(b"t7DF3020100\r").await, b"z\r");
    assert_eq!(exchange(b"T18DB33F10\r").await, b"Z\r");
    assert_eq!(next_frame(&mut at_ecu).await, std_frame(0x7DF, &[2, 1, 0]));
    assert_eq!(next_frame(&mut at_ecu).await, ext_frame(0x18DB_33F1, &[]));
    assert_eq!(exchange(b"F\r").await, b"F00\r");
    // Frames from the bus come with a 4-digit timestamp now.
    ecu.send(std_frame(0x7E8, &[0x41])).await.unwrap();
    let mut out = vec![0u8; 64];
    let n = timeout(Duration::from_secs(1), host_side.read(&mut out))
        .await
        .unwrap()
        .unwrap();
    let line = String::from_utf8_lossy(&out[..n]).into_owned();
    assert!(
        line.starts_with("t7E8141") && line.len() == "t7E8141".len() + 5,
        "{line:?}"
    );
    let mut exchange = async |cmd: &[u8]| -> Vec<u8> {
        host_side.write_all(cmd).await.unwrap();
        let mut out = vec![0u8; 64];
        let n = timeout(Duration::from_secs(1), host_side.read(&mut out))
            .await
            .unwrap()
            .unwrap();
        out.truncate(n);
        out
    };
    assert_eq!(exchange(b"C\r").await, b"\r");
    assert_eq!(exchange(b"t7DF10\r").await, b"\x07");
}
