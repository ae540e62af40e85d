//! `telltale decode`: a `candump -L` log in, one JSON object per diagnostic message out.
//!
//! The decoding is `telltale_obd::trace`; this module reads lines, maps log time to the
//! tracer's clock, and shapes each message into a flat JSON object an engineer can `jq`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Map, Value, json};
use telltale_obd::candump::{self, LogEntry, Timestamp};
use telltale_obd::isotp::addressing::IdRole;
use telltale_obd::pid::Reading;
use telltale_obd::service::{PidData, Request, Response, VehicleInfo};
use telltale_obd::trace::{Message, Traced, Tracer};
use telltale_obd::uds::ReadDtcResponse;

/// Decodes `path` (`-` for stdin) to stdout.
pub(crate) fn run(path: &Path) -> anyhow::Result<()> {
    let input: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut out = BufWriter::new(io::stdout().lock());
    match decode(input, &mut out).and_then(|()| out.flush()) {
        // `telltale decode big.log | head` is normal use, not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.with_context(|| format!("while decoding {}", path.display())),
    }
}

/// Reads every line of `input` and writes JSON lines to `out`. Bad lines become `error`
/// objects; only an I/O error stops it.
pub(crate) fn decode(mut input: impl BufRead, out: &mut impl Write) -> io::Result<()> {
    let mut tracer = Tracer::new();
    let mut clock = LogClock::default();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    let mut last_ts = None;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let entry = match std::str::from_utf8(&buf) {
            Err(_) => Err("line is not UTF-8 text".to_owned()),
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => match candump::parse_line(text) {
                Ok(entry) => Ok(Some(entry)),
                // Error frames, remote frames, CAN FD: not diagnostic traffic.
                Err(e) if e.is_not_data_frame() => Ok(None),
                Err(e) => Err(e.to_string()),
            },
        };
        let entry: LogEntry = match entry {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(error) => {
                write_line(out, &json!({ "line": line_no, "error": error }))?;
                continue;
            }
        };
        let now = clock.instant(entry.ts);
        last_ts = Some(entry.ts);
        for traced in tracer.on_frame(&entry.frame, now) {
            write_line(out, &Value::Object(render(entry.ts, &traced)))?;
        }
    }
    if let Some(ts) = last_ts {
        for traced in tracer.finish() {
            write_line(out, &Value::Object(render(ts, &traced)))?;
        }
    }
    Ok(())
}

fn write_line(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// Maps log timestamps onto `Instant`s for the tracer's ISO-TP timers. A log that steps back in
/// time (merged files, clock changes) does not move the clock backwards.
#[derive(Default)]
struct LogClock {
    start: Option<(Timestamp, Instant)>,
    latest: Option<Instant>,
}

impl LogClock {
    fn instant(&mut self, ts: Timestamp) -> Instant {
        let (t0, i0) = *self.start.get_or_insert((ts, Instant::now()));
        let micros = ts.as_micros().saturating_sub(t0.as_micros());
        let at = i0 + Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX / 2));
        let at = self.latest.map_or(at, |l| l.max(at));
        self.latest = Some(at);
        at
    }
}

fn hex2(b: u8) -> String {
    format!("{b:02X}")
}

/// One traced message as a flat JSON object.
fn render(ts: Timestamp, traced: &Traced) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ts".into(), json!(ts));
    m.insert("can_id".into(), json!(traced.id));
    let direction = if traced.role == IdRole::Response {
        "response"
    } else {
        "request"
    };
    m.insert("direction".into(), json!(direction));
    match &traced.item {
        Err(e) => {
            m.insert("error".into(), json!(e.to_string()));
        }
        Ok(Message::Request(req)) => render_request(req, &mut m),
        Ok(Message::Response(resp)) => render_response(resp, &mut m),
    }
    m
}

fn render_request(req: &Request, m: &mut Map<String, Value>) {
    m.insert("service".into(), json!(hex2(req.service())));
    let pids: Vec<u8> = match req {
        Request::CurrentData { pids } => pids.clone(),
        Request::FreezeFrame { pids } => pids.iter().map(|&(p, _)| p).collect(),
        Request::VehicleInfo { infotype } => {
            m.insert("infotype".into(), json!(hex2(*infotype)));
            vec![]
        }
        Request::UdsReadDtcInformation {
            sub_function,
            params,
        } => {
            m.insert("sub_function".into(), json!(hex2(*sub_function)));
            m.insert(
                "params".into(),
                json!(params.iter().map(|&b| hex2(b)).collect::<String>()),
            );
            vec![]
        }
        Request::UdsClearDiagnosticInformation { group } => {
            m.insert("group".into(), json!(format!("{group:06X}")));
            vec![]
        }
        Request::StoredDtcs
        | Request::ClearDtcs
        | Request::PendingDtcs
        | Request::PermanentDtcs => {
            vec![]
        }
    };
    match pids.as_slice() {
        [] => {}
        [one] => {
            m.insert("pid".into(), json!(hex2(*one)));
            if let Some(info) = telltale_obd::pid::info(*one) {
                m.insert("name".into(), json!(info.name));
            }
        }
        many => {
            m.insert(
                "pids".into(),
                json!(many.iter().map(|&p| hex2(p)).collect::<Vec<_>>()),
            );
        }
    }
}

fn reading_json(r: &Reading, frame: Option<u8>) -> Value {
    let mut v = json!({ "pid": hex2(r.pid), "key": r.key, "name": r.name, "value": r.value, "unit": r.unit });
    if let (Some(frame), Value::Object(o)) = (frame, &mut v) {
        o.insert("frame".into(), json!(frame));
    }
    v
}

fn render_pids(pids: &[PidData], m: &mut Map<String, Value>) {
    let values: Vec<Value> = pids
        .iter()
        .flat_map(|p| p.readings.iter().map(move |r| reading_json(r, p.frame)))
        .collect();
    let triggers: Vec<String> = pids
        .iter()
        .filter_map(PidData::freeze_frame_trigger)
        .map(|d| d.to_string())
        .collect();
    if !triggers.is_empty() {
        m.insert("dtcs".into(), json!(triggers));
    }
    if let [Value::Object(one)] = values.as_slice() {
        for key in ["pid", "name", "value", "unit", "frame"] {
            if let Some(v) = one.get(key) {
                m.insert(key.into(), v.clone());
            }
        }
    }
    m.insert("values".into(), Value::Array(values));
}

fn render_response(resp: &Response, m: &mut Map<String, Value>) {
    m.insert("service".into(), json!(hex2(resp.service())));
    match resp {
        Response::CurrentData(pids) | Response::FreezeFrame(pids) => render_pids(pids, m),
        Response::Dtcs { dtcs, .. } => {
            m.insert("dtcs".into(), json!(dtcs));
        }
        Response::ClearDtcs | Response::UdsClearDiagnosticInformation => {
            m.insert("cleared".into(), json!(true));
        }
        Response::VehicleInfo(info) => {
            let (key, value) = match info {
                VehicleInfo::Vin(vin) => ("vin", json!(vin)),
                VehicleInfo::Supported(types) => (
                    "supported_infotypes",
                    json!(types.iter().map(|&t| hex2(t)).collect::<Vec<_>>()),
                ),
                VehicleInfo::MessageCount(n) => ("message_count", json!(n)),
                VehicleInfo::CalibrationIds(ids) => ("calibration_ids", json!(ids)),
                VehicleInfo::Cvns(cvns) => ("cvns", json!(cvns)),
                VehicleInfo::EcuName(name) => ("ecu_name", json!(name)),
                VehicleInfo::Other { infotype, data } => {
                    m.insert("infotype".into(), json!(hex2(*infotype)));
                    (
                        "data",
                        json!(data.iter().map(|&b| hex2(b)).collect::<String>()),
                    )
                }
            };
            m.insert(key.into(), value);
        }
        Response::UdsReadDtcInformation(uds) => {
            if let ReadDtcResponse::DtcsByStatusMask(list) | ReadDtcResponse::SupportedDtcs(list) =
                uds
            {
                let codes: Vec<String> = list.dtcs.iter().map(|r| r.dtc.to_string()).collect();
                m.insert("dtcs".into(), json!(codes));
            }
            m.insert("uds".into(), json!(uds));
        }
        Response::Negative(neg) => {
            m.insert("nrc".into(), json!(format!("0x{:02X}", neg.nrc.0)));
            m.insert("nrc_name".into(), json!(neg.nrc.name()));
        }
    }
}
