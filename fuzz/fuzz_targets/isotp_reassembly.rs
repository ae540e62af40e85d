//! ISO-TP reception: arbitrary frames from a few ids into the per-id reassembler (with time
//! moving on so timeouts fire), and the one-shot `reassemble`. No input may panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use telltale_obd::isotp::{self, Config, Reassembler};
use telltale_obd::{CanFrame, CanId};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut rx = Reassembler::new(Config::default());
    let mut frames: Vec<&[u8]> = Vec::new();
    // Each record: [id selector | delay, len, bytes...].
    let mut rest = data;
    let mut ms = 0u64;
    while let Some((&head, tail)) = rest.split_first() {
        let Some((&len, tail)) = tail.split_first() else { break };
        let len = usize::from(len % 9).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        ms += u64::from(head >> 3) * 50;
        let id = CanId::Standard(0x7E8 + u16::from(head & 0x07));
        let now = t0 + Duration::from_millis(ms);
        let _ = rx.handle_timeout(now);
        if let Ok(frame) = CanFrame::new(id, bytes) {
            let _ = rx.on_frame(&frame, now);
        }
        frames.push(bytes);
    }
    let _ = isotp::reassemble(&frames);
    let _ = isotp::Pci::decode(data);
});
