//! The clones' quirks and `AT BRD`, as transcripts.

use std::time::Duration;

use super::super::session::{BRD_WINDOW, Elm327, Quirks, SLOW_RESET_TIME};
use super::{Scripted, send, text};

#[test]
fn a_genuine_chip_agrees_a_faster_rate_with_brd() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    assert_eq!(text(&mut elm, &mut car, "ATE0"), "ATE0\rOK\r\r>");
    // OK at the old rate and no prompt; the id at the new one after the window; then the
    // adapter waits for the host's carriage return.
    let brd = send(&mut elm, &mut car, "AT BRD 23");
    assert_eq!(brd.text(), "OK\rELM327 v1.5\r");
    assert_eq!(brd.chunks[1].at, BRD_WINDOW);
    assert_eq!(brd.awaits_confirmation, Some(BRD_WINDOW));
    assert_eq!(elm.baud_divisor(), None);
    assert_eq!(elm.confirm_baud(true).text(), "OK\r\r>");
    assert_eq!(elm.baud_divisor(), Some(0x23));
    // A warm start keeps the rate, a full reset drops it.
    send(&mut elm, &mut car, "ATWS");
    assert_eq!(elm.baud_divisor(), Some(0x23));
    send(&mut elm, &mut car, "ATZ");
    assert_eq!(elm.baud_divisor(), None);
    // No carriage return in time: the old rate stays, only the prompt follows.
    send(&mut elm, &mut car, "ATBRD08");
    assert_eq!(elm.confirm_baud(false).text(), "\r>");
    assert_eq!(elm.baud_divisor(), None);
    // Divisor 00 is refused.
    assert_eq!(text(&mut elm, &mut car, "ATE0"), "ATE0\rOK\r\r>");
    assert_eq!(text(&mut elm, &mut car, "ATBRD00"), "?\r\r>");
}

#[test]
fn clone_quirks() {
    let quirks = Quirks {
        stuck_echo: true,
        no_spaces: true,
        slow_reset: true,
        no_brd: true,
    };
    let (mut elm, mut car) = (Elm327::new().with_quirks(quirks), Scripted::car());
    let reset = send(&mut elm, &mut car, "ATZ");
    assert_eq!(reset.chunks.last().map(|c| c.at), Some(SLOW_RESET_TIME));
    // Echo off is acknowledged and ignored; so are spaces on.
    assert_eq!(text(&mut elm, &mut car, "ATE0"), "ATE0\rOK\r\r>");
    assert_eq!(text(&mut elm, &mut car, "ATS1"), "ATS1\rOK\r\r>");
    assert_eq!(
        text(&mut elm, &mut car, "010C"),
        "010C\rSEARCHING...\r410C1AF8\r\r>"
    );
    assert_eq!(text(&mut elm, &mut car, "ATBRD23"), "ATBRD23\r?\r\r>");
    assert!(
        send(&mut elm, &mut car, "ATBRD23")
            .awaits_confirmation
            .is_none()
    );
    assert!(SLOW_RESET_TIME > Duration::from_secs(1));
}
