//! ELM327 adapter output: the byte accumulator on arbitrary chunks, and the reply parser under
//! every option combination. No input may panic or grow the buffer without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_obd::elm327::{IdWidth, ParseOptions, ReplyBuffer, parse_reply};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut buf = ReplyBuffer::new();
    // Feed in chunks whose size comes from the input, as a serial port would deliver them.
    let chunk = usize::from(flags % 17) + 1;
    let mut replies = Vec::new();
    for piece in rest.chunks(chunk) {
        replies.extend(buf.push(piece).into_iter().flatten());
    }
    let opts = ParseOptions {
        command: if flags & 0x20 != 0 { "0100".into() } else { "ATI".into() },
        echo: flags & 0x40 != 0,
        headers: flags & 0x80 != 0,
        id_width: if flags & 0x10 != 0 { IdWidth::Bits29 } else { IdWidth::Bits11 },
    };
    for reply in replies {
        let _ = parse_reply(&reply, &opts);
    }
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = parse_reply(text, &opts);
    }
});
