//! The older OBD buses: one message read with each protocol's check rule, one ECU's messages
//! joined (and grouped into answers), a CAN-shaped answer split into messages. No input may
//! panic; a split never yields an empty message or one longer than the bus carries, and a
//! message encoded by a protocol always decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_obd::legacy::{self, Protocol};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let protocol = Protocol::ALL[usize::from(flags) % Protocol::ALL.len()];
    let _ = protocol.decode(rest);
    if let Ok(encoded) = protocol.encode(flags, rest) {
        assert_eq!(protocol.decode(&encoded).map(|f| f.data), Ok(rest.to_vec()));
    }
    // The input cut into messages at each 0xFF byte: one ECU's lines.
    let messages: Vec<&[u8]> = rest.split(|&b| b == 0xFF).collect();
    let _ = legacy::join(&messages);
    let _ = legacy::join_answers(&messages);
    if let Ok(parts) = legacy::split(rest) {
        assert!(parts.iter().all(|m| !m.is_empty() && m.len() <= legacy::MAX_DATA_LEN));
        let _ = legacy::join(&parts);
    }
});
