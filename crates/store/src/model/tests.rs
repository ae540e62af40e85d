use super::*;
use crate::StoreError;
use chrono::NaiveDate;

fn t(ms: i64) -> DateTime<Utc> {
    let Some(t) = DateTime::from_timestamp_millis(ms) else {
        panic!("bad test time {ms}");
    };
    t
}

fn head(seq: u64) -> Option<v1::UplinkHeader> {
    Some(v1::UplinkHeader {
        device_id: "d1".into(),
        boot_id: vec![1; 16],
        seq,
        created_unix_ms: 1_700_000_000_000,
    })
}

fn dtc(code: &str, kind: v1::DtcKind) -> v1::Dtc {
    v1::Dtc {
        code: code.into(),
        kind: kind as i32,
        ..Default::default()
    }
}

fn report(seq: u64, mil: bool, current: Vec<v1::Dtc>) -> Envelope {
    Envelope {
        device_id: "d1".into(),
        received_at: t(1_700_000_000_000 + seq as i64 * 1000),
        message: Uplink::Dtc(v1::DtcReport {
            header: head(seq),
            vin: "VIN1".into(),
            device_unix_ms: 1_700_000_000_000 + seq as i64 * 1000,
            ecus: vec![v1::EcuDtcs {
                ecu_can_id: 0x7E8,
                mil_on: mil,
                current,
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// Runs envelopes one batch each, carrying the state like the database would.
fn run(batches: &[Envelope], options: &StoreOptions) -> Vec<Plan> {
    let mut loaded = Loaded::default();
    let mut plans = Vec::new();
    for envelope in batches {
        let Ok(s) = split(std::slice::from_ref(envelope)) else {
            panic!("split failed");
        };
        let carried = Loaded {
            dtc: loaded.dtc.clone(),
            boots: loaded.boots.clone(),
        };
        let p = plan(&s.keyed, &s.statuses, carried, options);
        for (k, st) in &p.dtc_state {
            loaded.dtc.insert(k.clone(), st.clone());
        }
        for (k, b) in &p.boots {
            loaded.boots.insert(k.clone(), b.clone());
        }
        plans.push(p);
    }
    plans
}

#[test]
fn gaps_are_recorded_shrunk_split_and_closed() {
    let now = t(0);
    let mut b = BootState::default();
    assert!(!account_seq(&mut b, 1, now));
    assert!(account_seq(&mut b, 10, now));
    assert_eq!((b.gaps[0].first, b.gaps[0].last), (2, 9));
    assert!(!account_seq(&mut b, 2, now)); // shrink from the front
    assert!(!account_seq(&mut b, 9, now)); // and the back
    assert_eq!((b.gaps[0].first, b.gaps[0].last), (3, 8));
    assert!(!account_seq(&mut b, 5, now)); // split
    let spans: Vec<(i64, i64)> = b.gaps.iter().map(|g| (g.first, g.last)).collect();
    assert_eq!(spans, vec![(3, 4), (6, 8)]);
    for s in [3, 4, 6, 7, 8] {
        account_seq(&mut b, s, now);
    }
    assert!(b.gaps.is_empty());
    assert_eq!(b.max_seq, 10);
    // A repeat below max outside any gap changes nothing.
    assert!(!account_seq(&mut b, 4, now));
    assert!(b.gaps.is_empty());
}

#[test]
fn a_drained_status_claims_the_boots_tail() {
    let now = t(0);
    let mut b = BootState::default();
    account_seq(&mut b, 1, now);
    account_seq(&mut b, 2, now);
    assert!(!account_claim(&mut b, 2, now), "nothing owed");
    assert!(account_claim(&mut b, 5, now));
    assert_eq!((b.gaps[0].first, b.gaps[0].last, b.max_seq), (3, 5, 5));
    // The owed messages were only late: they fill the gap.
    for seq in 3..=5 {
        assert!(!account_seq(&mut b, seq, now));
    }
    assert!(b.gaps.is_empty());
    assert!(
        !account_claim(&mut b, 4, now),
        "an older claim changes nothing"
    );
}

#[test]
fn only_a_status_with_an_empty_spool_claims() {
    let status = |spool_messages: u64, last_seq: u64| Envelope {
        device_id: "d1".into(),
        received_at: t(0),
        message: Uplink::Status(v1::Status {
            header: Some(v1::UplinkHeader {
                device_id: "d1".into(),
                boot_id: vec![1; 16],
                seq: 0,
                created_unix_ms: 0,
            }),
            spool_messages,
            last_seq,
            ..v1::Status::default()
        }),
    };
    assert_eq!(
        drained_claim(&status(0, 7)),
        Some((("d1".to_owned(), vec![1; 16]), 7))
    );
    assert_eq!(drained_claim(&status(3, 7)), None, "messages still spooled");
    assert_eq!(drained_claim(&status(0, 0)), None, "nothing stamped yet");
}

#[test]
fn first_message_of_a_boot_above_one_is_a_gap_from_one() {
    let mut b = BootState::default();
    assert!(account_seq(&mut b, 4, t(0)));
    assert_eq!((b.gaps[0].first, b.gaps[0].last), (1, 3));
}

#[test]
fn split_drops_in_batch_repeats_and_sets_status_aside() {
    let tele = Envelope {
        device_id: "d1".into(),
        received_at: t(5),
        message: Uplink::Telemetry(v1::TelemetryBatch {
            header: head(1),
            ..Default::default()
        }),
    };
    let status = Envelope {
        device_id: "d1".into(),
        received_at: t(6),
        message: Uplink::Status(v1::Status::default()),
    };
    let batch = [tele.clone(), status.clone(), tele, status];
    let Ok(s) = split(&batch) else {
        panic!("split failed");
    };
    assert_eq!(s.keyed.len(), 1);
    assert_eq!(s.statuses.len(), 2);
    assert_eq!(s.in_batch_duplicates, 1);
    assert_eq!(s.keyed[0].1.kind, "telemetry");
    assert_eq!(s.keyed[0].1.device_time, t(1_700_000_000_000));
}

#[test]
fn seq_beyond_i64_is_refused() {
    let e = Envelope {
        device_id: "d1".into(),
        received_at: t(5),
        message: Uplink::Telemetry(v1::TelemetryBatch {
            header: head(u64::MAX),
            ..Default::default()
        }),
    };
    assert!(matches!(
        split(&[e]),
        Err(StoreError::SeqOutOfRange { seq: u64::MAX, .. })
    ));
}

#[test]
fn confirmed_code_leads_once_per_occurrence() {
    let opts = StoreOptions::default();
    let p0420 = || dtc("P0420", v1::DtcKind::Stored);
    let plans = run(
        &[
            report(1, false, vec![p0420()]),
            report(2, false, vec![p0420()]),
            report(3, false, vec![]),
            report(4, false, vec![p0420()]),
        ],
        &opts,
    );
    let keys: Vec<Vec<String>> = plans
        .iter()
        .map(|p| p.leads.iter().map(|l| l.idempotency_key.clone()).collect())
        .collect();
    assert_eq!(keys[0], vec!["VIN1:P0420:1"]);
    assert!(keys[1].is_empty(), "a code that stays raises nothing");
    assert!(keys[2].is_empty());
    assert_eq!(keys[3], vec!["VIN1:P0420:2"]);
    let changes: Vec<Vec<&str>> = plans
        .iter()
        .map(|p| p.dtc_events.iter().map(|e| e.change).collect())
        .collect();
    assert_eq!(
        changes,
        vec![vec!["appeared"], vec![], vec!["cleared"], vec!["appeared"]]
    );
}

#[test]
fn pending_leads_only_when_configured() {
    let pending = || vec![dtc("P0171", v1::DtcKind::Pending)];
    let off = run(&[report(1, false, pending())], &StoreOptions::default());
    assert!(off[0].leads.is_empty());
    assert_eq!(off[0].dtc_events.len(), 1);
    let on = run(
        &[report(1, false, pending())],
        &StoreOptions {
            leads_for_pending: true,
            ..StoreOptions::default()
        },
    );
    assert_eq!(on[0].leads.len(), 1);
    assert_eq!(on[0].leads[0].reason, "pending");
    assert_eq!(on[0].leads[0].idempotency_key, "VIN1:P0171:1:pending");
}

#[test]
fn a_uds_code_raises_its_lead_when_it_is_confirmed_not_when_it_first_fails() {
    let uds = |status: u32| v1::Dtc {
        uds_status: status,
        ..dtc("P0135", v1::DtcKind::Uds)
    };
    // testFailed + pendingDTC, then also confirmedDTC, then still confirmed.
    let plans = run(
        &[
            report(1, false, vec![uds(0x05)]),
            report(2, false, vec![uds(0x0D)]),
            report(3, false, vec![uds(0x0D)]),
        ],
        &StoreOptions::default(),
    );
    assert!(plans[0].leads.is_empty(), "failing, not confirmed: no lead");
    let keys: Vec<&str> = plans[1]
        .leads
        .iter()
        .map(|l| l.idempotency_key.as_str())
        .collect();
    assert_eq!(keys, ["VIN1:P0135:1"], "confirmed: its lead");
    let events: Vec<(&str, &str)> = plans[1]
        .dtc_events
        .iter()
        .map(|e| (e.kind.as_str(), e.change))
        .collect();
    assert_eq!(
        events,
        [("uds_confirmed", "appeared"), ("uds", "cleared")],
        "the stage moves, as pending to stored does"
    );
    assert!(plans[2].leads.is_empty() && plans[2].dtc_events.is_empty());
}

#[test]
fn mil_turning_on_raises_a_lead_unless_new_confirmed_codes_did() {
    let plans = run(
        &[
            report(1, false, vec![]),
            report(
                2,
                true,
                vec![
                    dtc("P0301", v1::DtcKind::Stored),
                    dtc("P0300", v1::DtcKind::Stored),
                ],
            ),
            report(3, true, vec![dtc("P0301", v1::DtcKind::Stored)]),
            report(4, false, vec![]),
            report(5, true, vec![]),
        ],
        &StoreOptions::default(),
    );
    let mil: Vec<Vec<(String, String)>> = plans
        .iter()
        .map(|p| {
            p.leads
                .iter()
                .filter(|l| l.reason == "mil_on")
                .map(|l| (l.idempotency_key.clone(), l.code.clone()))
                .collect()
        })
        .collect();
    assert!(mil[0].is_empty());
    assert!(
        mil[1].is_empty(),
        "the MIL came on with new confirmed codes: their leads say it"
    );
    assert_eq!(plans[1].leads.len(), 2, "one lead per confirmed code");
    assert!(mil[2].is_empty(), "MIL staying on raises nothing");
    assert!(mil[3].is_empty());
    assert_eq!(mil[4], vec![("VIN1:MIL:2".to_owned(), "MIL".to_owned())]);
}

#[test]
fn a_lost_report_does_not_leave_stale_state_and_transients_are_kept() {
    // The report that cleared P0420 was lost; the next one only lists P0171 as appeared.
    let mut next = report(3, false, vec![dtc("P0171", v1::DtcKind::Stored)]);
    if let Uplink::Dtc(r) = &mut next.message {
        r.ecus[0].appeared = vec![
            dtc("P0171", v1::DtcKind::Stored),
            dtc("P0300", v1::DtcKind::Stored),
        ];
    }
    let plans = run(
        &[
            report(1, false, vec![dtc("P0420", v1::DtcKind::Stored)]),
            next,
        ],
        &StoreOptions::default(),
    );
    let events: Vec<(&str, &str)> = plans[1]
        .dtc_events
        .iter()
        .map(|e| (e.code.as_str(), e.change))
        .collect();
    assert_eq!(
        events,
        vec![
            ("P0171", "appeared"),
            ("P0420", "cleared"),
            ("P0300", "appeared"),
            ("P0300", "cleared")
        ]
    );
    let leads: Vec<&str> = plans[1].leads.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(leads, vec!["P0171", "P0300"]);
}

#[test]
fn an_ecu_that_did_not_answer_keeps_its_codes() {
    let mut tcm = report(2, false, vec![]);
    if let Uplink::Dtc(r) = &mut tcm.message {
        r.ecus[0].ecu_can_id = 0x7E9;
    }
    let plans = run(
        &[
            report(1, false, vec![dtc("P0420", v1::DtcKind::Stored)]),
            tcm,
        ],
        &StoreOptions::default(),
    );
    assert!(plans[1].dtc_events.is_empty());
}

#[test]
fn vin_less_reports_keep_state_per_device() {
    let mut a = report(1, false, vec![dtc("P0420", v1::DtcKind::Stored)]);
    let mut b = report(1, false, vec![]);
    b.device_id = "d2".into();
    for e in [&mut a, &mut b] {
        if let Uplink::Dtc(r) = &mut e.message {
            r.vin.clear();
        }
    }
    let plans = run(&[a, b], &StoreOptions::default());
    assert_eq!(plans[0].leads[0].idempotency_key, "device:d1:P0420:1");
    assert!(
        plans[1].dtc_events.is_empty(),
        "d2's empty report clears nothing of d1's"
    );
}

#[test]
fn uds_codes_lead_only_when_confirmed() {
    let mut unconfirmed = dtc("U0100", v1::DtcKind::Uds);
    unconfirmed.uds_status = 0x01;
    let mut confirmed = dtc("B1234", v1::DtcKind::Uds);
    confirmed.uds_status = 0x09;
    let plans = run(
        &[report(1, false, vec![unconfirmed, confirmed])],
        &StoreOptions::default(),
    );
    let leads: Vec<&str> = plans[0].leads.iter().map(|l| l.code.as_str()).collect();
    assert_eq!(leads, vec!["B1234"]);
}

#[test]
fn freeze_frame_goes_with_its_trigger_code() {
    let mut e = report(
        1,
        true,
        vec![
            dtc("P0420", v1::DtcKind::Stored),
            dtc("P0171", v1::DtcKind::Stored),
        ],
    );
    if let Uplink::Dtc(r) = &mut e.message {
        r.ecus[0].freeze_frame = Some(v1::FreezeFrame {
            trigger_code: "P0420".into(),
            values: vec![v1::FreezeFrameValue {
                signal: "Vehicle.Speed".into(),
                pid: 0x0D,
                value: 88.0,
                unit: "km/h".into(),
            }],
        });
        r.odometer_km = Some(12345.5);
    }
    let plans = run(&[e], &StoreOptions::default());
    let with_frame: Vec<&str> = plans[0]
        .dtc_events
        .iter()
        .filter(|e| e.freeze_frame.is_some())
        .map(|e| e.code.as_str())
        .collect();
    assert_eq!(with_frame, vec!["P0420"]);
    assert_eq!(
        plans[0].dtc_events[0].context["odometer_km"],
        json!(12345.5)
    );
}

#[test]
fn odd_device_clocks_fall_back_to_the_receive_time() {
    let fallback = t(1_700_000_000_000);
    assert_eq!(device_time(0, fallback), t(0));
    assert_eq!(device_time(i64::MAX, fallback), fallback);
    assert_eq!(device_time(300_000_000_000_000, fallback), fallback); // year ~11000
}

#[test]
fn partitions_made_ahead_and_dropped_past_retention() {
    let day = |d: &str| {
        let Ok(d) = NaiveDate::parse_from_str(d, "%Y-%m-%d") else {
            panic!("bad date {d}");
        };
        d
    };
    let now = day("2025-03-10").and_hms_opt(12, 0, 0).map(|t| t.and_utc());
    let Some(now) = now else { panic!("bad time") };
    let existing = [day("2025-03-01"), day("2025-03-02"), day("2025-03-10")];
    let (create, drop) = partition_plan(now, 2, 8, &existing);
    assert_eq!(create, vec![day("2025-03-11"), day("2025-03-12")]);
    // Cutoff 2025-03-02 12:00: March 1 is all older, March 2 is not yet.
    assert_eq!(drop, vec![day("2025-03-01")]);
    assert_eq!(partition_name(day("2025-03-01")), "telemetry_p20250301");
    assert_eq!(
        partition_day("telemetry_p20250301"),
        Some(day("2025-03-01"))
    );
    assert_eq!(partition_day("telemetry_default"), None);
}
