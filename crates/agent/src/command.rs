//! Downlink commands: decode, check (device, expiry, replay, signature), execute through the
//! vehicle task, answer with a command result. (Implementation pending: see the brief.)
