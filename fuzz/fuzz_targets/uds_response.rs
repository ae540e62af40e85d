//! UDS ReadDTCInformation (0x59 ...) responses: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_obd::uds;

fuzz_target!(|data: &[u8]| {
    let _ = uds::parse_read_dtc_response(data);
});
