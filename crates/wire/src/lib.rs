//! # telltale-wire: what crosses the network
//!
//! The protobuf messages a vehicle and the cloud exchange over MQTT ([`v1`], from
//! `proto/telltale/v1/*.proto`), the CRM's gRPC API ([`crm::v1`], from
//! `proto/telltale/crm/v1/*.proto`; both generated at build time with a vendored `protoc`), the
//! MQTT topic scheme in [`topic`] and command signing in [`signing`]. Every crate that puts bytes on the wire gets its types from here, so the
//! contract lives in one place. No I/O.

pub mod signing;
pub mod topic;

/// Messages of `proto/telltale/v1`.
pub mod v1 {
    #![allow(clippy::all, missing_debug_implementations, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/telltale.v1.rs"));
}

impl v1::Dtc {
    /// ISO 14229 DTC status bit 3, confirmedDTC.
    pub const UDS_CONFIRMED: u32 = 0x08;

    /// Whether the code is a confirmed fault (the kind that raises a lead): a stored code
    /// (J1979 service 03), or a UDS code with its confirmedDTC status bit set.
    pub fn is_confirmed(&self) -> bool {
        match v1::DtcKind::try_from(self.kind) {
            Ok(v1::DtcKind::Stored) => true,
            Ok(v1::DtcKind::Uds) => self.uds_status & Self::UDS_CONFIRMED != 0,
            _ => false,
        }
    }
}

/// The CRM's gRPC API.
pub mod crm {
    /// Messages and services of `proto/telltale/crm/v1`: `LeadService`, `QuoteService` and
    /// `CatalogService` (clients in `*_service_client`, server traits in `*_service_server`,
    /// with the `grpc` feature; the messages alone without it).
    pub mod v1 {
        #![allow(clippy::all, missing_debug_implementations, unreachable_pub)]
        include!(concat!(env!("OUT_DIR"), "/telltale.crm.v1.rs"));
    }
}

/// Every proto's descriptors, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/telltale_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::v1;

    #[test]
    fn generated_messages_round_trip_and_reject_garbage() {
        let batch = v1::TelemetryBatch {
            header: Some(v1::UplinkHeader {
                device_id: "dongle-1".into(),
                boot_id: vec![7; 16],
                seq: 42,
                created_unix_ms: 1_700_000_000_123,
            }),
            vin: "1HGCM82633A004352".into(),
            samples: vec![v1::Sample {
                signal: "Vehicle.Speed".into(),
                value: 60.0,
                device_unix_ms: 1_700_000_000_100,
                service: 1,
                pid: 0x0D,
                ecu_can_id: 0x7E8,
                unit: "km/h".into(),
                text: String::new(),
            }],
        };
        let bytes = batch.encode_to_vec();
        assert_eq!(v1::TelemetryBatch::decode(bytes.as_slice()), Ok(batch));
        // A length-delimited field that runs past the end of the buffer.
        assert!(v1::TelemetryBatch::decode(&[0x0A, 0x05, 0x01][..]).is_err());
    }
}
