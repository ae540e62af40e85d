//! OBD-II service requests and responses (modes 01, 02, 03, 04, 07, 09, 0A and negative
//! responses), plus direct PID decoding: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_obd::{pid, service};

fuzz_target!(|data: &[u8]| {
    let _ = service::Response::parse(data);
    let _ = service::Request::parse(data);
    if let Some((&p, rest)) = data.split_first() {
        let _ = pid::decode(p, rest);
    }
});
