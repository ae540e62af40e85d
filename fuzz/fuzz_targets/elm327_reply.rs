//! ELM327 adapter output: the byte accumulator on arbitrary chunks, and the reply parser under
//! every option combination. No input may panic or grow the buffer without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_obd::elm327::{Bus, IdWidth, ParseOptions, ReplyBuffer, parse_reply};
use telltale_obd::legacy::Protocol;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut buf = ReplyBuffer::new();
    // Feed in chunks whose size comes from the input (bits 3-4), as a serial port would
    // deliver them.
    let chunk = usize::from((flags >> 3) % 4) * 5 + 1;
    let mut replies = Vec::new();
    for piece in rest.chunks(chunk) {
        replies.extend(buf.push(piece).into_iter().flatten());
    }
    let opts = ParseOptions {
        command: if flags & 0x20 != 0 { "0100".into() } else { "ATI".into() },
        echo: flags & 0x40 != 0,
        headers: flags & 0x80 != 0,
        // Bits 0-2: the bus (1: CAN 29-bit; 2-6: ELM327 protocols 1-5; else CAN 11-bit).
        bus: match flags & 0x07 {
            1 => Bus::Can(IdWidth::Bits29),
            n @ 2..=6 => Protocol::from_elm_number(n - 1).map_or(Bus::default(), Bus::Legacy),
            _ => Bus::Can(IdWidth::Bits11),
        },
    };
    for reply in replies {
        let _ = parse_reply(&reply, &opts);
    }
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = parse_reply(text, &opts);
    }
});
