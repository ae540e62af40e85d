//! What one line of a reply is: a status, a condition, a flagged line or content; hex digits
//! to bytes.

use super::{Condition, Elm327Error};

/// What one trimmed, non-empty line of a reply is.
#[derive(Debug, PartialEq)]
pub(super) enum LineKind<'a> {
    Status,
    NoData,
    Condition(Condition),
    Flagged(Condition, &'a str),
    Content,
}

pub(super) fn classify(line: &str) -> LineKind<'_> {
    let upper = line.to_ascii_uppercase();
    if let Some(kind) = flagged_line(line, &upper) {
        return kind;
    }
    let upper = upper.strip_prefix('!').unwrap_or(&upper);
    if upper.starts_with("SEARCHING") {
        return LineKind::Status;
    }
    if let Some(rest) = upper.strip_prefix("BUS INIT:") {
        return if rest.trim_start_matches(['.', ' ']) == "OK" {
            LineKind::Status
        } else {
            LineKind::Condition(Condition::BusInitError)
        };
    }
    match upper {
        "NO DATA" => LineKind::NoData,
        _ => condition_text(upper).map_or(LineKind::Content, LineKind::Condition),
    }
}

/// `41 0C 1A F8 <DATA ERROR`: the `<` points at the line before it.
pub(super) fn flagged_line<'a>(line: &'a str, upper: &str) -> Option<LineKind<'a>> {
    let (condition, marker) = [
        (Condition::DataError, "<DATA ERROR"),
        (Condition::RxError, "<RX ERROR"),
    ]
    .into_iter()
    .find(|(_, marker)| upper.ends_with(marker))?;
    let flagged = line
        .get(..line.len().saturating_sub(marker.len()))
        .unwrap_or("")
        .trim();
    Some(LineKind::Flagged(condition, flagged))
}

pub(super) fn condition_text(upper: &str) -> Option<Condition> {
    let condition = match upper {
        "?" => Condition::UnknownCommand,
        "ACT ALERT" => Condition::ActivityAlert,
        "BUFFER FULL" => Condition::BufferFull,
        "BUS BUSY" => Condition::BusBusy,
        "BUS ERROR" => Condition::BusError,
        "CAN ERROR" => Condition::CanError,
        "DATA ERROR" => Condition::DataError,
        "FB ERROR" => Condition::FeedbackError,
        "LP ALERT" => Condition::LowPowerAlert,
        "LV RESET" => Condition::LowVoltageReset,
        "STOPPED" => Condition::Stopped,
        "UNABLE TO CONNECT" => Condition::UnableToConnect,
        other => return internal_error(other),
    };
    Some(condition)
}

/// `ERR` and two decimal digits.
pub(super) fn internal_error(upper: &str) -> Option<Condition> {
    let digits = upper.strip_prefix("ERR")?;
    if digits.len() == 2 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok().map(Condition::Internal)
    } else {
        None
    }
}

/// Hex digits to bytes, whitespace ignored.
pub(super) fn hex_bytes(text: &str, line: &str) -> Result<Vec<u8>, Elm327Error> {
    let nibbles = text
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| Elm327Error::NotHex(line.to_owned()))?;
    if nibbles.len() % 2 != 0 {
        return Err(Elm327Error::OddDigits {
            line: line.to_owned(),
            digits: nibbles.len(),
        });
    }
    Ok(nibbles
        .chunks_exact(2)
        .map(|p| p.iter().fold(0, |acc, &n| acc << 4 | n))
        .collect())
}
