//! Service 09 answers (vehicle information): the VIN, calibration ids, CVNs, the ECU name and
//! the supported-infotype bitmaps, in the CAN form (ISO 15765-4): every infotype but the
//! bitmaps (00, 20, ...) and the VIN message count (01) starts with the number of data items
//! (NODI).

use serde::Serialize;

use super::{ServiceError, length, sid};
use crate::pid::SupportedPids;
use crate::vin::Vin;

/// Service 09 information types this module decodes.
pub mod infotype {
    pub const VIN_MESSAGE_COUNT: u8 = 0x01;
    pub const VIN: u8 = 0x02;
    pub const CALIBRATION_ID: u8 = 0x04;
    pub const CVN: u8 = 0x06;
    pub const ECU_NAME: u8 = 0x0A;
}

/// A decoded service 09 answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleInfo {
    /// Infotype 00, 20, 40...: which infotypes the ECU supports.
    Supported(Vec<u8>),
    Vin(Vin),
    /// Infotype 01 on non-CAN protocols and some CAN ECUs: messages needed for the VIN.
    MessageCount(u8),
    CalibrationIds(Vec<String>),
    /// Calibration verification numbers, written as 8 hex digits each.
    Cvns(Vec<String>),
    EcuName(String),
    /// An infotype this module does not interpret (e.g. in-use performance tracking).
    Other {
        infotype: u8,
        data: Vec<u8>,
    },
}

pub(super) fn parse(rest: &[u8]) -> Result<VehicleInfo, ServiceError> {
    let (&infotype, data) = rest
        .split_first()
        .ok_or_else(|| length(sid::VEHICLE_INFO, "at least 2", 1))?;
    let bad = |reason: String| ServiceError::VehicleInfo { infotype, reason };
    if infotype % 0x20 == 0 {
        let bitmap: [u8; 4] = data.try_into().map_err(|_| {
            bad(format!(
                "supported bitmap is {} bytes, expected 4",
                data.len()
            ))
        })?;
        let mut set = SupportedPids::new();
        set.add_bitmap(infotype, bitmap)?;
        return Ok(VehicleInfo::Supported(set.iter().collect()));
    }
    if infotype == infotype::VIN_MESSAGE_COUNT {
        return match data {
            [n] => Ok(VehicleInfo::MessageCount(*n)),
            _ => Err(bad(format!(
                "message count is {} bytes, expected 1",
                data.len()
            ))),
        };
    }
    // Every other infotype on CAN starts with the number of data items.
    let Some((&nodi, items)) = data.split_first() else {
        return Err(bad("missing the number of data items".to_owned()));
    };
    let fixed = |size: usize| -> Result<Vec<&[u8]>, ServiceError> {
        if items.len() != usize::from(nodi) * size {
            return Err(bad(format!(
                "{nodi} items of {size} bytes need {} bytes, got {}",
                usize::from(nodi) * size,
                items.len()
            )));
        }
        Ok(items.chunks(size).collect())
    };
    match infotype {
        infotype::VIN => Ok(VehicleInfo::Vin(
            Vin::from_bytes(items).map_err(|e| bad(e.to_string()))?,
        )),
        infotype::CALIBRATION_ID => Ok(VehicleInfo::CalibrationIds(
            fixed(16)?
                .into_iter()
                .map(ascii_field)
                .collect::<Result<_, _>>()
                .map_err(bad)?,
        )),
        infotype::CVN => Ok(VehicleInfo::Cvns(
            fixed(4)?
                .into_iter()
                .map(|c| c.iter().map(|b| format!("{b:02X}")).collect())
                .collect(),
        )),
        infotype::ECU_NAME => {
            let name = fixed(20)?
                .into_iter()
                .map(ascii_field)
                .next()
                .unwrap_or(Ok(String::new()));
            Ok(VehicleInfo::EcuName(name.map_err(bad)?))
        }
        _ => Ok(VehicleInfo::Other {
            infotype,
            data: data.to_vec(),
        }),
    }
}

/// A fixed-width ASCII field padded with NUL (or spaces): calibration IDs, ECU names.
fn ascii_field(bytes: &[u8]) -> Result<String, String> {
    let trimmed = bytes
        .iter()
        .rposition(|&b| b != 0 && b != b' ')
        .map_or(&[][..], |end| &bytes[..=end]);
    if let Some(bad) = trimmed
        .iter()
        .find(|b| !(b.is_ascii_graphic() || **b == b' ' || **b == 0))
    {
        return Err(format!("byte 0x{bad:02X} is not printable ASCII"));
    }
    // Inner NULs are padding too: the ECU name is a 4-byte acronym field, `-`, then the name
    // (J1979 infotype 0A), so "ECM\0-EngineControl" reads "ECM-EngineControl".
    Ok(trimmed
        .iter()
        .filter(|&&b| b != 0)
        .map(|&b| char::from(b))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Response;

    #[test]
    fn vehicle_information() {
        let mut vin = vec![0x49, 0x02, 0x01];
        vin.extend_from_slice(b"1HGCM82633A004352");
        assert_eq!(
            Response::parse(&vin).unwrap(),
            Response::VehicleInfo(VehicleInfo::Vin(Vin::parse("1HGCM82633A004352").unwrap()))
        );
        // Two calibration IDs of 16 bytes, NUL padded.
        let mut cal = vec![0x49, 0x04, 0x02];
        cal.extend_from_slice(b"JMB*36761500\0\0\0\0");
        cal.extend_from_slice(b"JMB*47872611\0\0\0\0");
        assert_eq!(
            Response::parse(&cal).unwrap(),
            Response::VehicleInfo(VehicleInfo::CalibrationIds(vec![
                "JMB*36761500".into(),
                "JMB*47872611".into()
            ]))
        );
        assert_eq!(
            Response::parse(&[0x49, 0x06, 0x01, 0x17, 0x91, 0xBC, 0x82]).unwrap(),
            Response::VehicleInfo(VehicleInfo::Cvns(vec!["1791BC82".into()]))
        );
        let mut name = vec![0x49, 0x0A, 0x01];
        name.extend_from_slice(b"ECM\0-EngineControl\0\0");
        assert_eq!(
            Response::parse(&name).unwrap(),
            Response::VehicleInfo(VehicleInfo::EcuName("ECM-EngineControl".into()))
        );
        // 49 00 | 55 40 00 00: infotypes 02, 04, 06, 08, 0A supported.
        assert_eq!(
            Response::parse(&[0x49, 0x00, 0x55, 0x40, 0x00, 0x00]).unwrap(),
            Response::VehicleInfo(VehicleInfo::Supported(vec![2, 4, 6, 8, 0x0A]))
        );
        // Item count disagrees with the bytes.
        assert!(Response::parse(&[0x49, 0x06, 0x02, 0x17, 0x91, 0xBC, 0x82]).is_err());
        assert!(Response::parse(&[0x49, 0x04]).is_err());
    }
}
