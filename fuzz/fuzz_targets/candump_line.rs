//! `candump -L` lines, and every frame that parses fed on to the trace decoder (ISO-TP per id,
//! then the service layer), as `telltale decode` does. No input may panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use telltale_obd::candump;
use telltale_obd::trace::Tracer;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let t0 = Instant::now();
    let mut tracer = Tracer::new();
    for line in text.lines() {
        if let Ok(entry) = candump::parse_line(line) {
            let at = t0 + Duration::from_micros(u64::from(entry.ts.micros()) + entry.ts.secs() % 1000 * 1_000_000);
            let _ = tracer.on_frame(&entry.frame, at);
        }
    }
    let _ = tracer.finish();
});
