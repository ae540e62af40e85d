//! Checks a live SocketCAN interface with `telltale_can::socketcan::self_test`: 11- and 29-bit
//! frames through kernel filters, in order. Exits 0 and prints a summary on success, 1 with
//! the reason otherwise. Used by the QEMU guest test:
//!
//! ```text
//! ip link add dev vcan0 type vcan && ip link set vcan0 up
//! socketcan_selftest vcan0
//! ```

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let iface = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "vcan0".to_owned());
    match telltale_can::socketcan::self_test(&iface).await {
        Ok(report) => {
            println!(
                "socketcan self-test on {}: ok ({} frames sent, {} received through kernel filters in {:?})",
                report.iface, report.sent, report.received, report.elapsed
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("socketcan self-test failed: {err}");
            ExitCode::FAILURE
        }
    }
}
