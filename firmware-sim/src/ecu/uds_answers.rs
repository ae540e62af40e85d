//! The UDS answers of a simulated ECU: ReadDTCInformation (0x19) and
//! ClearDiagnosticInformation (0x14).

use super::*;

impl Ecu {
    pub(super) fn read_dtc_information(
        &self,
        sub_function: u8,
        params: &[u8],
    ) -> Result<Answer, Nrc> {
        let mut out = vec![uds::READ_DTC_INFORMATION_RESPONSE, sub_function];
        let expect_len = |n: usize| {
            if params.len() == n {
                Ok(())
            } else {
                Err(Nrc::INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
            }
        };
        match sub_function {
            uds::REPORT_NUMBER_OF_DTC_BY_STATUS_MASK | uds::REPORT_DTC_BY_STATUS_MASK => {
                expect_len(1)?;
                let mask = params.first().copied().unwrap_or(0) & STATUS_AVAILABILITY;
                let matching = self.dtcs.iter().filter(|e| e.uds_status().0 & mask != 0);
                out.push(STATUS_AVAILABILITY);
                if sub_function == uds::REPORT_NUMBER_OF_DTC_BY_STATUS_MASK {
                    out.push(DtcFormat::Iso15031_6.to_byte());
                    let count = u16::try_from(matching.count()).unwrap_or(u16::MAX);
                    out.extend_from_slice(&count.to_be_bytes());
                } else {
                    for e in matching {
                        push_record(&mut out, e);
                    }
                }
            }
            uds::REPORT_SUPPORTED_DTC => {
                expect_len(0)?;
                out.push(STATUS_AVAILABILITY);
                for e in &self.dtcs {
                    push_record(&mut out, e);
                }
            }
            uds::REPORT_DTC_SNAPSHOT_RECORD_BY_DTC_NUMBER
            | uds::REPORT_DTC_EXT_DATA_RECORD_BY_DTC_NUMBER => {
                expect_len(4)?;
                let (dtc_bytes, record) = match params {
                    [a, b, c, r] => ([*a, *b, *c], *r),
                    _ => return Err(Nrc::INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT),
                };
                let wanted = UdsDtc::from_bytes(dtc_bytes);
                let (index, entry) = self
                    .dtcs
                    .iter()
                    .enumerate()
                    .find(|(_, e)| UdsDtc::new(e.dtc, e.ftb) == wanted)
                    .ok_or(Nrc::REQUEST_OUT_OF_RANGE)?;
                push_record(&mut out, entry);
                if sub_function == uds::REPORT_DTC_SNAPSHOT_RECORD_BY_DTC_NUMBER {
                    if record != SNAPSHOT_RECORD && record != uds::ALL_RECORDS {
                        return Err(Nrc::REQUEST_OUT_OF_RANGE);
                    }
                    if let Some(Some(snap)) = self.snapshots.get(index) {
                        out.push(SNAPSHOT_RECORD);
                        out.push(u8::try_from(snap.values.len()).unwrap_or(0));
                        for (p, data) in &snap.values {
                            out.extend_from_slice(
                                &(DID_OBD_PID_BASE | u16::from(*p)).to_be_bytes(),
                            );
                            out.extend_from_slice(data);
                        }
                    }
                } else {
                    // Record 01: occurrence counter; record 02: warm-ups since last failure.
                    let aging = entry_aging(entry);
                    match record {
                        0x01 => out.extend_from_slice(&[0x01, entry.occurrences]),
                        0x02 => out.extend_from_slice(&[0x02, aging]),
                        uds::ALL_RECORDS => {
                            out.extend_from_slice(&[0x01, entry.occurrences, 0x02, aging]);
                        }
                        _ => return Err(Nrc::REQUEST_OUT_OF_RANGE),
                    }
                }
            }
            _ => return Err(Nrc::SUB_FUNCTION_NOT_SUPPORTED),
        }
        Ok(Answer::Now(out))
    }

    pub(super) fn uds_clear(&mut self, group: u32) -> Result<Answer, Nrc> {
        let response = vec![uds::CLEAR_DIAGNOSTIC_INFORMATION_RESPONSE];
        if group == GROUP_ALL || group == GROUP_EMISSIONS {
            self.clear_all();
            return Ok(Answer::Slow(response));
        }
        let index = self
            .dtcs
            .iter()
            .position(|e| {
                UdsDtc::new(e.dtc, e.ftb).raw() == group || UdsDtc::new(e.dtc, 0).raw() == group
            })
            .ok_or(Nrc::REQUEST_OUT_OF_RANGE)?;
        if let Some(e) = self.dtcs.get_mut(index) {
            e.clear();
            if self.freeze.as_ref().is_some_and(|f| f.dtc == e.dtc) {
                self.freeze = None;
            }
        }
        if let Some(s) = self.snapshots.get_mut(index) {
            *s = None;
        }
        Ok(Answer::Slow(response))
    }
}

pub(super) fn entry_aging(e: &DtcEntry) -> u8 {
    if e.failed_this_cycle {
        0
    } else {
        e.occurrences.min(1)
    }
}

pub(super) fn push_record(out: &mut Vec<u8>, e: &DtcEntry) {
    out.extend_from_slice(&UdsDtc::new(e.dtc, e.ftb).to_bytes());
    out.push(e.uds_status().0 & STATUS_AVAILABILITY);
}

/// Whether a status matches a mask (for tests and callers).
pub fn status_matches(status: DtcStatus, mask: u8) -> bool {
    status.0 & mask & STATUS_AVAILABILITY != 0
}
