//! The OBD-II answers of a simulated ECU: code lists, freeze frames, vehicle information and
//! live PIDs.

use super::*;

impl Ecu {
    pub(super) fn dtc_list(&self, service: u8, pick: impl Fn(&DtcEntry) -> bool) -> Vec<u8> {
        let codes: Vec<Dtc> = self
            .dtcs
            .iter()
            .filter(|e| pick(e))
            .map(|e| e.dtc)
            .collect();
        let mut out = vec![
            service + sid::POSITIVE_OFFSET,
            u8::try_from(codes.len()).unwrap_or(u8::MAX),
        ];
        for dtc in codes.iter().take(usize::from(u8::MAX)) {
            out.extend_from_slice(&dtc.to_bytes());
        }
        out
    }

    pub(super) fn freeze_frame(&self, pairs: &[(u8, u8)]) -> Result<Answer, Nrc> {
        let mut out = vec![sid::FREEZE_FRAME + sid::POSITIVE_OFFSET];
        for &(p, frame) in pairs {
            if frame != 0 || !self.freeze_supported.contains(p) {
                continue;
            }
            let data = if pid::is_bitmap_pid(p) {
                self.freeze_supported.bitmap(p).ok().map(Vec::from)
            } else if p == 0x02 {
                // No frame stored: PID 02 reads 00 00 (J1979).
                Some(
                    self.freeze
                        .as_ref()
                        .map_or(vec![0, 0], |f| f.dtc.to_bytes().to_vec()),
                )
            } else {
                self.freeze.as_ref().and_then(|f| {
                    f.values
                        .iter()
                        .find(|(q, _)| *q == p)
                        .map(|(_, d)| d.clone())
                })
            };
            if let Some(data) = data {
                out.extend_from_slice(&[p, frame]);
                out.extend_from_slice(&data);
            }
        }
        if out.len() == 1 {
            return Err(Nrc::REQUEST_OUT_OF_RANGE);
        }
        Ok(Answer::Now(out))
    }

    pub(super) fn infotypes(&self) -> SupportedPids {
        let mut set = SupportedPids::new();
        if self.vin.is_some() {
            set.insert(0x02);
        }
        set.insert(0x04);
        set.insert(0x06);
        set.insert(0x0A);
        set
    }

    pub(super) fn vehicle_info(&self, infotype: u8) -> Result<Answer, Nrc> {
        let mut out = vec![sid::VEHICLE_INFO + sid::POSITIVE_OFFSET, infotype];
        match infotype {
            0x00 => {
                let bitmap = self
                    .infotypes()
                    .bitmap(0x00)
                    .map_err(|_| Nrc::REQUEST_OUT_OF_RANGE)?;
                out.extend_from_slice(&bitmap);
            }
            0x02 => {
                let vin = self.vin.as_ref().ok_or(Nrc::REQUEST_OUT_OF_RANGE)?;
                out.push(1);
                out.extend_from_slice(vin.as_str().as_bytes());
            }
            0x04 => {
                out.push(u8::try_from(self.config.calibration_ids.len()).unwrap_or(0));
                for id in &self.config.calibration_ids {
                    out.extend_from_slice(&padded(id.as_bytes(), 16));
                }
            }
            0x06 => {
                out.push(u8::try_from(self.config.cvns.len()).unwrap_or(0));
                for cvn in &self.config.cvns {
                    out.extend_from_slice(cvn);
                }
            }
            0x0A => {
                // Acronym (4) '-' name (15), NUL padded: 20 bytes (J1979 infotype 0A).
                out.push(1);
                out.extend_from_slice(&padded(self.config.acronym.as_bytes(), 4));
                out.push(b'-');
                out.extend_from_slice(&padded(self.config.long_name.as_bytes(), 15));
            }
            _ => return Err(Nrc::REQUEST_OUT_OF_RANGE),
        }
        Ok(Answer::Now(out))
    }

    /// The data bytes of a Mode 01 PID right now, if this ECU supports it.
    pub fn live(&self, p: u8, m: &Model) -> Option<Vec<u8>> {
        if !self.supported.contains(p) {
            return None;
        }
        if pid::is_bitmap_pid(p) {
            return self.supported.bitmap(p).ok().map(Vec::from);
        }
        let confirmed = self.dtcs.iter().filter(|e| e.confirmed).count();
        let a =
            u8::try_from(confirmed.min(0x7F)).unwrap_or(0x7F) | if self.mil() { 0x80 } else { 0 };
        let values: Vec<f64> = match p {
            0x01 => {
                let [b, c, d] = self.readiness.bytes(false);
                return Some(vec![a, b, c, d]);
            }
            0x41 => {
                let [b, c, d] = self.readiness.bytes(true);
                return Some(vec![0, b, c, d]);
            }
            0x03 => return Some(vec![m.fuel_system.code(), 0]),
            0x13 => return Some(vec![0x03]),
            0x1C => return Some(vec![0x01]),
            0x51 => return Some(vec![self.fuel_type]),
            0x04 => vec![m.load],
            0x05 => vec![m.coolant_c],
            0x06 => vec![m.stft],
            0x07 => vec![m.ltft],
            0x0B => vec![m.map_kpa],
            0x0C => vec![m.rpm],
            0x0D => vec![m.speed_kmh],
            0x0E => vec![m.timing_advance],
            0x0F => vec![m.iat_c],
            0x10 => vec![m.maf_gs],
            0x11 => vec![m.throttle],
            0x14 => vec![m.o2_upstream_v, m.stft],
            0x15 => vec![m.o2_downstream_v, f64::NAN],
            0x1F => vec![m.runtime_s],
            0x21 => vec![self.since_clear.mil_distance_km],
            0x2F => vec![m.fuel_level_percent()],
            0x30 => vec![f64::from(self.since_clear.warmups)],
            0x31 => vec![self.since_clear.distance_km],
            0x32 => vec![m.evap_pa],
            0x33 => vec![m.baro_kpa],
            0x3C => vec![m.catalyst_c],
            0x42 => vec![m.voltage],
            0x43 => vec![m.load * m.map_kpa / m.baro_kpa.max(1.0) * 1.1],
            0x44 => vec![if m.engine_running { 1.0 } else { 0.0 }],
            0x45 => vec![(m.throttle - 7.0) / 0.85],
            0x46 => vec![m.ambient_c],
            0x49 => vec![if m.engine_running {
                14.0 + m.throttle * 0.7
            } else {
                14.0
            }],
            0x4C => vec![m.throttle],
            0x4D => vec![self.since_clear.mil_time_s / 60.0],
            0x4E => vec![self.since_clear.time_s / 60.0],
            0x5B => vec![m.hybrid_battery_life],
            0x5C => vec![m.oil_c],
            0x5E => vec![m.fuel_rate_lph],
            0xA6 => vec![m.odometer_km],
            _ => return None,
        };
        encode_clamped(p, &values)
    }
}

pub(super) fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().copied().take(len).collect();
    out.resize(len, 0);
    out
}

/// Encodes values into a linear PID, clamping each into what the PID can carry (a real
/// sensor saturates; the encoder refuses).
pub(super) fn encode_clamped(p: u8, values: &[f64]) -> Option<Vec<u8>> {
    let info = pid::info(p)?;
    let Formula::Linear(fields) = info.formula else {
        return None;
    };
    let clamped: Vec<f64> = fields
        .iter()
        .zip(values)
        .map(|(field, &v)| {
            if v.is_nan() {
                return v;
            }
            let (lo, hi) = field.raw_range();
            let (a, b) = (field.physical(lo), field.physical(hi));
            v.clamp(a.min(b), a.max(b))
        })
        .collect();
    pid::encode(p, &clamped).ok()
}
