//! How an ELM327 prints the CAN frames it receives, per its data sheet: one line per frame,
//! shaped by the headers (`ATH`), spaces (`ATS`), DLC (`ATD1`) and CAN auto-formatting
//! (`ATCAF`) settings; and the one line per message of the older buses ([`legacy_line`]). Also how an ECU's answer is cut into ISO-TP frames on the bus
//! ([`segment`]), since what the adapter prints is what the bus carried. Pure functions.
//!
//! | settings | single frame | first frame | consecutive frame |
//! |---|---|---|---|
//! | `ATCAF1 ATH0` | data only: `41 0C 1A F8 ` | byte count, then `0: ` and 6 data bytes | `1: ` (the sequence number) and 7 bytes |
//! | `ATCAF1 ATH1`, `ATCAF0` | header, then all 8 bytes as on the bus | the same | the same |
//!
//! With spaces on, every byte is followed by a space (so lines end in one), as the chip
//! prints them; a 29-bit header is four bytes (`18 DA F1 10 `), an 11-bit one three digits.
//! ECUs pad their frames to 8 bytes with [`PADDING`] (ISO 15765-4 requires DLC 8), and the
//! padding is visible wherever the PCI is.

use telltale_obd::CanId;
use telltale_obd::isotp::pci::{
    CAN_FRAME_LEN, CONSECUTIVE_FRAME_PAYLOAD, FIRST_FRAME_PAYLOAD, MAX_FIRST_FRAME_LEN,
    MAX_SINGLE_FRAME_LEN,
};
use telltale_obd::legacy::Protocol as LegacyProtocol;

/// The byte our simulated ECUs pad short frames with.
pub const PADDING: u8 = 0xAA;

/// The print settings that shape a data line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineFormat {
    /// `ATS1`: a space after every byte.
    pub spaces: bool,
    /// `ATH1`: the CAN id first, and the frame as on the bus.
    pub headers: bool,
    /// `ATD1`: the data length after the id (only with headers).
    pub dlc: bool,
    /// `ATCAF1`: the adapter removes the PCI (and padding) when headers are off.
    pub auto_format: bool,
}

impl Default for LineFormat {
    /// The power-up settings: spaces on, headers off, DLC off, auto-formatting on.
    fn default() -> Self {
        LineFormat {
            spaces: true,
            headers: false,
            dlc: false,
            auto_format: true,
        }
    }
}

/// Cuts one ECU answer into the classic-CAN ISO-TP frames that carry it (each 8 bytes,
/// padded). `None` when the payload is empty or longer than ISO-TP's 4095 bytes.
pub fn segment(payload: &[u8]) -> Option<Vec<Vec<u8>>> {
    let pad = |mut frame: Vec<u8>| {
        frame.resize(CAN_FRAME_LEN, PADDING);
        frame
    };
    let len = payload.len();
    if len == 0 || len > MAX_FIRST_FRAME_LEN {
        return None;
    }
    if len <= MAX_SINGLE_FRAME_LEN {
        let mut frame = vec![u8::try_from(len).ok()?];
        frame.extend_from_slice(payload);
        return Some(vec![pad(frame)]);
    }
    let (first, rest) = payload.split_at(FIRST_FRAME_PAYLOAD);
    let [_, _, hi, lo] = u32::try_from(len).ok()?.to_be_bytes();
    let mut frame = vec![0x10 | (hi & 0x0F), lo];
    frame.extend_from_slice(first);
    let mut frames = vec![frame];
    for (i, chunk) in rest.chunks(CONSECUTIVE_FRAME_PAYLOAD).enumerate() {
        let sn = u8::try_from((i + 1) % 16).ok()?;
        let mut frame = vec![0x20 | sn];
        frame.extend_from_slice(chunk);
        frames.push(pad(frame));
    }
    Some(frames)
}

/// The line(s) the adapter prints for one received frame: usually one; a first frame with
/// headers off and auto-formatting on prints the byte count line before its `0:` segment.
pub fn frame_lines(id: CanId, data: &[u8], format: LineFormat) -> Vec<String> {
    if format.headers {
        let mut line = header(id, format.spaces);
        if format.dlc {
            line.push_str(&data.len().to_string());
            if format.spaces {
                line.push(' ');
            }
        }
        line.push_str(&hex(data, format.spaces));
        return vec![line];
    }
    if !format.auto_format {
        return vec![hex(data, format.spaces)];
    }
    let Some((&pci, rest)) = data.split_first() else {
        return Vec::new();
    };
    let separator = if format.spaces { ": " } else { ":" };
    match pci >> 4 {
        0 => {
            let len = usize::from(pci & 0x0F).min(rest.len());
            vec![hex(rest.get(..len).unwrap_or(rest), format.spaces)]
        }
        1 => {
            let Some((&low, bytes)) = rest.split_first() else {
                return Vec::new();
            };
            let len = usize::from(pci & 0x0F) << 8 | usize::from(low);
            vec![
                format!("{len:03X}"),
                format!("0{separator}{}", hex(bytes, format.spaces)),
            ]
        }
        2 => vec![format!(
            "{:X}{separator}{}",
            pci & 0x0F,
            hex(rest, format.spaces)
        )],
        // Flow control or garbage: no ECU of ours sends it; print it raw as CAF0 would.
        _ => vec![hex(data, format.spaces)],
    }
}

/// The line the adapter prints for one message on an older bus: with headers, the message as
/// on the bus (header, `data`, check byte: `48 6B 10 41 00 BE 1F B8 11 AA`), else `data`
/// alone. `data` is what [`telltale_obd::legacy::split`] made: 1 to 7 bytes.
pub fn legacy_line(
    protocol: LegacyProtocol,
    source: u8,
    data: &[u8],
    format: LineFormat,
) -> String {
    match protocol.encode(source, data) {
        Ok(message) if format.headers => hex(&message, format.spaces),
        _ => hex(data, format.spaces),
    }
}

/// The CAN id as the adapter prints it.
fn header(id: CanId, spaces: bool) -> String {
    match id {
        CanId::Standard(id) if spaces => format!("{id:03X} "),
        CanId::Standard(id) => format!("{id:03X}"),
        CanId::Extended(id) => hex(&id.to_be_bytes(), spaces),
    }
}

/// Bytes as hex pairs, each followed by a space when `spaces`.
pub fn hex(bytes: &[u8], spaces: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for b in bytes {
        out.push_str(&format!("{b:02X}"));
        if spaces {
            out.push(' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIN_ANSWER: &[u8] = b"\x49\x02\x011D4GP00R55B123456";

    fn fmt(spaces: bool, headers: bool) -> LineFormat {
        LineFormat {
            spaces,
            headers,
            ..LineFormat::default()
        }
    }

    #[test]
    fn segments() {
        assert_eq!(segment(&[]), None);
        assert_eq!(segment(&vec![0; 4096]), None);
        assert_eq!(
            segment(&[0x41, 0x0C, 0x1A, 0xF8]),
            Some(vec![vec![0x04, 0x41, 0x0C, 0x1A, 0xF8, 0xAA, 0xAA, 0xAA]])
        );
        let frames = segment(VIN_ANSWER).unwrap();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0], b"\x10\x14\x49\x02\x011D4");
        assert_eq!(frames[1], b"\x21GP00R55");
        assert_eq!(frames[2], b"\x22B123456");
        assert!(frames.iter().all(|f| f.len() == 8));
        // Sequence numbers wrap after 15.
        let long = segment(&[0x62; 200]).unwrap();
        assert_eq!(long[15][0], 0x2F);
        assert_eq!(long[16][0], 0x20);
        assert_eq!(long.last().unwrap().len(), 8);
    }

    #[test]
    fn single_frames() {
        let frame = [0x04, 0x41, 0x0C, 0x1A, 0xF8, 0xAA, 0xAA, 0xAA];
        let id = CanId::Standard(0x7E8);
        assert_eq!(
            frame_lines(id, &frame, LineFormat::default()),
            ["41 0C 1A F8 "]
        );
        assert_eq!(frame_lines(id, &frame, fmt(false, false)), ["410C1AF8"]);
        assert_eq!(
            frame_lines(id, &frame, fmt(true, true)),
            ["7E8 04 41 0C 1A F8 AA AA AA "]
        );
        assert_eq!(
            frame_lines(id, &frame, fmt(false, true)),
            ["7E804410C1AF8AAAAAA"]
        );
        let wide = CanId::Extended(0x18DA_F110);
        assert_eq!(
            frame_lines(wide, &frame, fmt(true, true)),
            ["18 DA F1 10 04 41 0C 1A F8 AA AA AA "]
        );
        assert_eq!(
            frame_lines(wide, &frame, fmt(false, true)),
            ["18DAF11004410C1AF8AAAAAA"]
        );
        let dlc = LineFormat {
            dlc: true,
            ..fmt(true, true)
        };
        assert_eq!(
            frame_lines(id, &frame, dlc),
            ["7E8 8 04 41 0C 1A F8 AA AA AA "]
        );
        let raw = LineFormat {
            auto_format: false,
            ..fmt(true, false)
        };
        assert_eq!(frame_lines(id, &frame, raw), ["04 41 0C 1A F8 AA AA AA "]);
    }

    #[test]
    fn multi_frame_without_headers() {
        let id = CanId::Standard(0x7E8);
        let frames = segment(VIN_ANSWER).unwrap();
        let lines: Vec<String> = frames
            .iter()
            .flat_map(|f| frame_lines(id, f, LineFormat::default()))
            .collect();
        assert_eq!(
            lines,
            [
                "014",
                "0: 49 02 01 31 44 34 ",
                "1: 47 50 30 30 52 35 35 ",
                "2: 42 31 32 33 34 35 36 "
            ]
        );
        let compact: Vec<String> = frames
            .iter()
            .flat_map(|f| frame_lines(id, f, fmt(false, false)))
            .collect();
        assert_eq!(compact[1], "0:490201314434");
    }
}
