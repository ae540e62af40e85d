//! OBD-II service requests and responses (modes 01, 02, 03, 04, 07, 09, 0A and negative
//! responses), answers decoded against a request (the first bytes, when they parse as one),
//! plus direct PID decoding: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telltale_obd::{pid, service};

fuzz_target!(|data: &[u8]| {
    let _ = service::Response::parse(data);
    let _ = service::Request::parse(data);
    if let Some((&p, rest)) = data.split_first() {
        let _ = pid::decode(p, rest);
    }
    // The first byte says how long the request is; the rest is the answer.
    if let Some((&n, rest)) = data.split_first()
        && let Some((req, answer)) = rest.split_at_checked(usize::from(n % 8))
        && let Ok(req) = service::Request::parse(req)
    {
        let _ = service::Response::parse_answer(&req, answer);
    }
});
