//! The code list of services 03, 07 and 0A, in both forms the vehicles send it.
//!
//! - **With a count byte** (ISO 15765-4, CAN): `43 COUNT DTC DTC…`. The count is checked
//!   against the codes that follow; `00 00` pairs beyond the count are padding some ECUs send.
//! - **Without one** (SAE J1850, ISO 9141-2, ISO 14230-4, and in practice some CAN ECUs and
//!   adapters too): `43 DTC DTC…`, where `00 00` is an empty slot (those buses send three
//!   slots per message, see `crate::legacy`).
//!
//! The form is decided by length, never by the codes: after the response SID, a count byte
//! plus two bytes per code is an odd number of bytes, and codes alone are an even number. A
//! non-CAN answer is joined into one payload of codes alone before it comes here, so it always
//! takes the second form.

use super::ServiceError;
use crate::dtc::Dtc;

/// Decodes what follows the response SID of a service 03, 07 or 0A answer.
pub(super) fn parse(rest: &[u8]) -> Result<Vec<Dtc>, ServiceError> {
    if rest.len() % 2 == 1 {
        with_count(rest)
    } else {
        Ok(codes(rest))
    }
}

/// `COUNT DTC…[00 00…]`.
fn with_count(rest: &[u8]) -> Result<Vec<Dtc>, ServiceError> {
    let (&count, listed) = rest
        .split_first()
        .ok_or(ServiceError::DtcCount { count: 0, bytes: 0 })?;
    let mismatch = ServiceError::DtcCount {
        count,
        bytes: listed.len(),
    };
    let (codes_bytes, padding) = listed
        .split_at_checked(usize::from(count) * 2)
        .ok_or(mismatch.clone())?;
    if padding.iter().any(|&b| b != 0) {
        return Err(mismatch);
    }
    let (pairs, _) = codes_bytes.as_chunks::<2>();
    Ok(pairs.iter().map(|&b| Dtc::from_bytes(b)).collect())
}

/// `DTC DTC…`, `00 00` being an empty slot.
fn codes(rest: &[u8]) -> Vec<Dtc> {
    let (pairs, _) = rest.as_chunks::<2>();
    pairs
        .iter()
        .filter(|&&pair| pair != [0, 0])
        .map(|&b| Dtc::from_bytes(b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Response;

    fn codes_of(payload: &[u8]) -> Result<Vec<String>, ServiceError> {
        match Response::parse(payload)? {
            Response::Dtcs { dtcs, .. } => Ok(dtcs.iter().map(Dtc::to_string).collect()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn with_the_count_byte_as_on_can() {
        // 43 02 | 01 33 (P0133) | 04 20 (P0420)
        assert_eq!(
            codes_of(&[0x43, 0x02, 0x01, 0x33, 0x04, 0x20]),
            Ok(vec!["P0133".into(), "P0420".into()])
        );
        // None at all, and a count with zero padding after it; U0100 is C1 00.
        assert_eq!(codes_of(&[0x47, 0x00]), Ok(vec![]));
        assert_eq!(
            codes_of(&[0x4A, 0x01, 0xC1, 0x00, 0x00, 0x00]),
            Ok(vec!["U0100".into()])
        );
    }

    #[test]
    fn the_count_byte_is_still_checked_where_it_is_present() {
        // Says two, carries one (and three bytes: odd, so a count byte is there).
        assert_eq!(
            codes_of(&[0x43, 0x02, 0x01, 0x33]),
            Err(ServiceError::DtcCount { count: 2, bytes: 2 })
        );
        // Says one, carries two: the second is not padding.
        assert_eq!(
            codes_of(&[0x43, 0x01, 0x01, 0x33, 0x04, 0x20]),
            Err(ServiceError::DtcCount { count: 1, bytes: 4 })
        );
    }

    #[test]
    fn without_the_count_byte_as_an_independent_emulator_sends_on_can() {
        // The answer that used to be thrown away whole: P0420 and P0143, no count.
        assert_eq!(
            codes_of(&[0x43, 0x04, 0x20, 0x01, 0x43]),
            Ok(vec!["P0420".into(), "P0143".into()])
        );
        // One code alone.
        assert_eq!(codes_of(&[0x47, 0x03, 0x00]), Ok(vec!["P0300".into()]));
        // A bare positive answer: nothing stored.
        assert_eq!(codes_of(&[0x43]), Ok(vec![]));
    }

    #[test]
    fn without_the_count_byte_as_a_non_can_ecu_sends_three_slots() {
        // ISO 9141-2 / J1850 message: three slots, empty ones 00 00.
        assert_eq!(
            codes_of(&[0x43, 0x01, 0x33, 0x00, 0x00, 0x00, 0x00]),
            Ok(vec!["P0133".into()])
        );
        // Two messages joined: 43 | 01 33 04 20 C1 00 | 02 17 00 00 00 00.
        assert_eq!(
            codes_of(&[
                0x43, 0x01, 0x33, 0x04, 0x20, 0xC1, 0x00, 0x02, 0x17, 0x00, 0x00, 0x00, 0x00
            ]),
            Ok(vec![
                "P0133".into(),
                "P0420".into(),
                "U0100".into(),
                "P0217".into()
            ])
        );
        assert_eq!(codes_of(&[0x43, 0, 0, 0, 0, 0, 0]), Ok(vec![]));
    }

    #[test]
    fn the_freeze_frame_trigger_code_reads_the_same_on_every_bus() {
        // 42 02 00 | 04 20: freeze frame 0 was stored by P0420 (Mode 02 PID 02, no count).
        let Response::FreezeFrame(pids) = Response::parse(&[0x42, 0x02, 0x00, 0x04, 0x20]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            pids[0].freeze_frame_trigger().map(|d| d.to_string()),
            Some("P0420".into())
        );
    }

    proptest::proptest! {
        /// Any list of codes comes back exactly, in either form.
        #[test]
        fn both_forms_round_trip(raw in proptest::collection::vec(1u16..=u16::MAX, 0..40)) {
            let mut with_count = vec![0x43, raw.len() as u8];
            let mut without = vec![0x43];
            for code in &raw {
                with_count.extend(code.to_be_bytes());
                without.extend(code.to_be_bytes());
            }
            let expected: Vec<String> =
                raw.iter().map(|c| Dtc::from_bytes(c.to_be_bytes()).to_string()).collect();
            proptest::prop_assert_eq!(codes_of(&with_count), Ok(expected.clone()));
            proptest::prop_assert_eq!(codes_of(&without), Ok(expected));
        }
    }
}
