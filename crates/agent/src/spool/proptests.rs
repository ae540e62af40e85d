//! Property tests: the spool against a plain in-memory model, and open against damaged files.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        class: usize,
        len: usize,
    },
    Next,
    /// Ack the n-th record ever handed out (it may be acked or dropped already).
    Ack(usize),
    AckUnknown,
    Requeue,
    Reopen,
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..300usize).prop_map(|(class, len)| Op::Append { class, len }),
        4 => Just(Op::Next),
        3 => any::<prop::sample::Index>().prop_map(|i| Op::Ack(i.index(usize::MAX))),
        1 => Just(Op::AckUnknown),
        1 => Just(Op::Requeue),
        1 => Just(Op::Reopen),
        1 => Just(Op::Sync),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Stored {
    class: Class,
    topic: String,
    payload: Vec<u8>,
    in_flight: bool,
}

/// What the spool should hold: records by id, the same drop rule, no files.
#[derive(Debug, Default)]
struct Model {
    records: BTreeMap<u64, Stored>,
    max_bytes: u64,
    dropped: [u64; 4],
}

impl Model {
    fn bytes(&self) -> u64 {
        self.records
            .values()
            .map(|r| frame::frame_len(r.topic.len(), r.payload.len()))
            .sum()
    }

    fn append(&mut self, id: u64, class: Class, topic: String, payload: Vec<u8>) {
        let len = frame::frame_len(topic.len(), payload.len());
        while self.bytes() + len > self.max_bytes {
            let lowest = self.records.values().map(|r| r.class).min();
            match lowest {
                Some(c) if c <= class => {
                    let oldest = self
                        .records
                        .iter()
                        .find(|(_, r)| r.class == c)
                        .map(|(id, _)| *id);
                    if let Some(oldest) = oldest {
                        self.records.remove(&oldest);
                        self.dropped[c as usize] += 1;
                    }
                }
                _ => {
                    self.dropped[class as usize] += 1;
                    return;
                }
            }
        }
        self.records.insert(
            id,
            Stored {
                class,
                topic,
                payload,
                in_flight: false,
            },
        );
    }

    fn next(&mut self) -> Option<Record> {
        let class = self
            .records
            .values()
            .filter(|r| !r.in_flight)
            .map(|r| r.class)
            .max()?;
        let (id, r) = self
            .records
            .iter_mut()
            .find(|(_, r)| !r.in_flight && r.class == class)?;
        r.in_flight = true;
        Some(Record {
            id: RecordId(*id),
            class,
            topic: r.topic.clone(),
            payload: r.payload.clone(),
        })
    }

    fn requeue(&mut self) {
        for r in self.records.values_mut() {
            r.in_flight = false;
        }
    }
}

fn open(dir: &Path, max_bytes: u64, segment: u64) -> Result<Spool, SpoolError> {
    let config = SpoolConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        fsync: FsyncPolicy::Never,
    };
    Spool::open_tuned(config, segment)
}

fn check_stats(s: &Spool, m: &Model) -> Result<(), TestCaseError> {
    let st = s.stats();
    prop_assert_eq!(st.messages, m.records.len() as u64);
    prop_assert_eq!(st.bytes, m.bytes());
    prop_assert_eq!(
        st.in_flight,
        m.records.values().filter(|r| r.in_flight).count() as u64
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn spool_matches_model(
        ops in prop::collection::vec(op(), 1..200),
        max_bytes in 400u64..6000,
        segment in 200u64..3000,
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut s = open(dir.path(), max_bytes, segment).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut m = Model { max_bytes, ..Model::default() };
        let mut handed: Vec<RecordId> = Vec::new();
        let mut last_id = 0;
        let mut dropped_before_reopen = [0u64; 4];
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Append { class, len } => {
                    let class = Class::ALL[class];
                    let topic = format!("telltale/v1/d/{n}");
                    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + n) as u8).collect();
                    let id = s.append(class, &topic, &payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(id.0 > last_id, "id {} after {}", id.0, last_id);
                    last_id = id.0;
                    m.append(id.0, class, topic, payload);
                }
                Op::Next => {
                    let got = s.next_to_send().map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let want = m.next();
                    prop_assert_eq!(&got, &want);
                    if let Some(r) = got {
                        handed.push(r.id);
                    }
                }
                Op::Ack(i) => {
                    if !handed.is_empty() {
                        let id = handed[i % handed.len()];
                        s.ack(id).map_err(|e| TestCaseError::fail(e.to_string()))?;
                        m.records.remove(&id.0);
                    }
                }
                Op::AckUnknown => {
                    s.ack(RecordId(last_id + 1000)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                Op::Requeue => {
                    s.requeue_in_flight();
                    m.requeue();
                }
                Op::Reopen => {
                    for (a, b) in dropped_before_reopen.iter_mut().zip(s.stats().dropped) {
                        *a += b;
                    }
                    drop(s);
                    s = open(dir.path(), max_bytes, segment).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(s.recovery().dropped_to_fit, 0);
                    prop_assert_eq!(s.recovery().damaged_segments, 0);
                    m.requeue();
                }
                Op::Sync => s.sync().map_err(|e| TestCaseError::fail(e.to_string()))?,
            }
            check_stats(&s, &m)?;
        }
        let mut dropped = dropped_before_reopen;
        for (a, b) in dropped.iter_mut().zip(s.stats().dropped) {
            *a += b;
        }
        prop_assert_eq!(dropped, m.dropped);
        s.requeue_in_flight();
        m.requeue();
        loop {
            let got = s.next_to_send().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, &m.next());
            if got.is_none() {
                break;
            }
        }
    }

    #[test]
    fn damaged_segment_keeps_every_record_before_the_damage(
        lens in prop::collection::vec((0..4usize, 0..200usize), 1..60),
        segment in 200u64..2000,
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        flip in any::<Option<u8>>(),
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let fail = |e: SpoolError| TestCaseError::fail(e.to_string());
        let mut s = open(dir.path(), 1 << 30, segment).map_err(fail)?;
        let mut written = BTreeMap::new();
        for (n, (class, len)) in lens.into_iter().enumerate() {
            let class = Class::ALL[class];
            let topic = format!("t/{n}");
            let payload: Vec<u8> = (0..len).map(|i| (i + n * 3) as u8).collect();
            let id = s.append(class, &topic, &payload).map_err(fail)?;
            written.insert(id.0, Record { id, class, topic, payload });
        }
        let entries: Vec<(Class, Entry)> = Class::ALL
            .into_iter()
            .flat_map(|c| s.entries(c).into_iter().map(move |e| (c, e)))
            .collect();
        drop(s);

        let mut segs: Vec<(Class, u64)> = entries.iter().map(|(c, e)| (*c, e.segment)).collect();
        segs.dedup();
        let (class, first) = segs[which.index(segs.len())];
        let path = dir.path().join(segment::file_name(class, first));
        let mut bytes = fs::read(&path).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let x = at.index(bytes.len());
        match flip {
            Some(v) => bytes[x] ^= v.max(1),
            None => bytes.truncate(x),
        }
        fs::write(&path, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;

        let mut s = open(dir.path(), 1 << 30, segment).map_err(fail)?;
        let mut expected: Vec<&Record> = entries
            .iter()
            .filter(|(c, e)| !(*c == class && e.segment == first && u64::from(e.offset) + u64::from(e.len) > x as u64))
            .filter_map(|(_, e)| written.get(&e.id))
            .collect();
        expected.sort_by_key(|r| (std::cmp::Reverse(r.class), r.id));
        let mut got = Vec::new();
        while let Some(r) = s.next_to_send().map_err(fail)? {
            got.push(r);
        }
        let got_refs: Vec<&Record> = got.iter().collect();
        prop_assert_eq!(got_refs, expected);
        let st = s.stats();
        prop_assert_eq!(st.corrupt_records, 0);
        // The cut starts where the record holding byte `x` starts.
        let start = entries
            .iter()
            .filter(|(c, e)| *c == class && e.segment == first)
            .map(|(_, e)| u64::from(e.offset) + u64::from(e.len))
            .filter(|end| *end <= x as u64)
            .max()
            .unwrap_or(0);
        let end = if flip.is_some() { bytes.len() as u64 } else { x as u64 };
        prop_assert_eq!(st.recovered_torn_bytes + st.recovered_corrupt_bytes, end - start);
    }

    #[test]
    fn damaged_journal_never_loses_unacked_records(
        n in 1usize..40,
        acked in prop::collection::vec(any::<bool>(), 40),
        at in any::<prop::sample::Index>(),
        flip in any::<Option<u8>>(),
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let fail = |e: SpoolError| TestCaseError::fail(e.to_string());
        let mut s = open(dir.path(), 1 << 30, 500).map_err(fail)?;
        let mut unacked = Vec::new();
        for (i, &ack) in acked.iter().enumerate().take(n) {
            let id = s.append(Class::Telemetry, "t", &[i as u8; 40]).map_err(fail)?;
            if ack {
                s.ack(id).map_err(fail)?;
            } else {
                unacked.push(id.0);
            }
        }
        drop(s);
        let path = dir.path().join(journal::FILE_NAME);
        let mut bytes = fs::read(&path).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let x = at.index(bytes.len());
        match flip {
            Some(v) => bytes[x] ^= v.max(1),
            None => bytes.truncate(x),
        }
        fs::write(&path, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut s = open(dir.path(), 1 << 30, 500).map_err(fail)?;
        let mut got = Vec::new();
        while let Some(r) = s.next_to_send().map_err(fail)? {
            got.push(r.id.0);
        }
        // Acks may come back as duplicates; unacked records may not go missing.
        for id in &unacked {
            prop_assert!(got.contains(id), "record {} lost; got {:?}", id, got);
        }
        prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
        let next = s.append(Class::Telemetry, "t", b"").map_err(fail)?;
        // The newest record's segment is still being appended to, so its id is still seen.
        prop_assert_eq!(next.0, n as u64 + 1);
    }
}
