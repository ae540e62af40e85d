//! `telltale scan`: read a vehicle from a terminal over any link (SocketCAN, SLCAN, ELM327,
//! the in-process simulator bus): VIN and ECUs, live PIDs, trouble codes, freeze frame,
//! clearing, and watching PIDs. Human-readable text by default, JSON with `--json` (the
//! shapes are documented in the subcommand's help and kept stable: scripts and the QEMU test
//! read them).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};
use telltale_can::client::{ClientOptions, DiagClient, DiagError, DtcKind, EcuInfo, Target};
use telltale_can::link::{self, LinkSpec, OpenError};
use telltale_obd::EcuId;
use telltale_obd::pid::{Reading, is_bitmap_pid};
use telltale_obd::service::{PidData, Request, Response, VehicleInfo};

const JSON_HELP: &str = "\
JSON output (--json), one object on stdout (one per line for `watch`); ids are hex strings
like \"7E8\" or \"18DAF110\", PIDs are numbers:
  info:   {\"link\", \"vin\": string|null, \"ecus\": [{\"ecu\", \"name\": string|null,
           \"calibration_ids\": [string], \"supported_pids\": [number]}]}
  pids:   {\"ecus\": [{\"ecu\", \"values\": [{\"pid\", \"key\", \"name\", \"value\", \"unit\"}]}]}
  dtcs:   {\"ecus\": [{\"ecu\", \"stored\": [\"P0301\"], \"pending\": [..], \"permanent\": [..]}]}
  freeze: {\"ecus\": [{\"ecu\", \"frame\": 0, \"dtc\": \"P0301\"|null, \"values\": [reading]}]}
  clear:  {\"ecus\": [{\"ecu\", \"cleared\": bool, \"nrc\": number|null, \"reason\": string|null}]}
  watch:  {\"t_ms\": number, \"ecu\", \"values\": [reading]} per ECU and sample
`value` is a number, bool, string or list of PIDs, as the PID table decodes it.
Errors go to stderr with a non-zero exit status; stdout then holds nothing.";

/// `telltale scan` arguments.
#[derive(Debug, Args)]
#[command(after_long_help = JSON_HELP)]
pub(crate) struct ScanArgs {
    /// The link (`socketcan:IFACE`, `slcan:PATH`, `elm327:PATH`, `elm327+tcp:HOST:PORT`, ...).
    #[arg(
        long,
        env = "TELLTALE_LINK",
        long_help = "The link: socketcan:IFACE, slcan:PATH[@CAN_BITRATE[:SERIAL_BAUD]], \
                     elm327:PATH[@BAUD], elm327+tcp:HOST:PORT or sim:NAME."
    )]
    link: String,
    /// The vehicle uses 29-bit CAN ids (18DB33F1 / 18DAxxF1). ELM327 links detect this.
    #[arg(long = "29bit")]
    extended: bool,
    /// Print JSON instead of text (see the shapes below).
    #[arg(long)]
    json: bool,
    /// P2: how long to wait for ECUs to start answering, in ms (ISO 15765-4: 50).
    #[arg(long, default_value_t = 50, env = "TELLTALE_P2_MS")]
    p2_ms: u64,
    /// ELM327 protocol (ATSP): 0 automatic search; 1 SAE J1850 PWM, 2 SAE J1850 VPW, 3 ISO
    /// 9141-2, 4 ISO 14230-4 KWP (5-baud init), 5 KWP (fast init); 6/7 CAN 11/29-bit 500k,
    /// 8/9 CAN 11/29-bit 250k.
    #[arg(long, default_value = "0")]
    elm_protocol: String,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// VIN, the ECUs that answer, their names, calibration IDs and supported PIDs.
    Info,
    /// Current values of PIDs (hex, e.g. `0C 0D 05`); without PIDs, every supported one.
    Pids {
        #[arg(value_parser = parse_pid)]
        pids: Vec<u8>,
    },
    /// Stored, pending and permanent trouble codes of every ECU.
    Dtcs,
    /// Freeze frame 0: the trouble code that stored it and the values at that moment.
    Freeze,
    /// Clear trouble codes, freeze frames and readiness monitors (service 04).
    Clear {
        /// Really clear: readiness monitors reset, and an inspection will fail until they
        /// have run again.
        #[arg(long)]
        yes: bool,
    },
    /// Read PIDs (hex) repeatedly until interrupted.
    Watch {
        #[arg(value_parser = parse_pid, required = true)]
        pids: Vec<u8>,
        /// Time between samples, ms.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many samples (0: until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
}

fn parse_pid(s: &str) -> Result<u8, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u8::from_str_radix(digits, 16)
        .map_err(|_| format!("{s:?} is not a PID: give two hex digits, like 0C"))
}

const SILENCE_HINT: &str = "is the ignition on (key at ON or engine running), the adapter \
                            plugged into the OBD port, and the link right?";

/// Runs `telltale scan`.
pub(crate) fn run(args: ScanArgs) -> anyhow::Result<()> {
    let spec: LinkSpec = args.link.parse().context("--link")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(scan(spec, args))
}

const NEED_YES: &str = "clearing erases trouble codes, freeze frames and readiness monitors \
                        (an inspection fails until they have run again); add --yes to do it";

async fn scan(spec: LinkSpec, args: ScanArgs) -> anyhow::Result<()> {
    if matches!(args.what, What::Clear { yes: false }) {
        bail!("{NEED_YES}");
    }
    let mut opts = ClientOptions {
        p2: Duration::from_millis(args.p2_ms),
        extended_ids: args.extended,
        ..ClientOptions::default()
    };
    opts.elm327.protocol = args.elm_protocol.clone();
    let client = match link::open(&spec, &opts).await {
        Ok(c) => c,
        Err(e) if e.is_silence() => bail!("no ECU answered ({e}): {SILENCE_HINT}"),
        Err(e @ OpenError::Open { .. }) => bail!("{e}"),
        Err(e) => bail!("cannot open the link: {e}"),
    };
    let out = Output { json: args.json };
    let result = match args.what {
        What::Info => info(&client, &spec, &out).await,
        What::Pids { pids } => read_pids(&client, &pids, &out).await,
        What::Dtcs => dtcs(&client, &out).await,
        What::Freeze => freeze(&client, &out).await,
        What::Clear { yes } => clear(&client, yes, &out).await,
        What::Watch {
            pids,
            interval_ms,
            count,
        } => watch(&client, &pids, interval_ms, count, &out).await,
    };
    match result {
        Err(e) if e.is_silence() => bail!("no ECU answered on {spec} ({e}): {SILENCE_HINT}"),
        Err(e) => bail!("{e} (on {spec})"),
        Ok(()) => Ok(()),
    }
}

struct Output {
    json: bool,
}

impl Output {
    fn json(&self, value: &Value) {
        println!("{value}");
    }
}

fn ecu_label(ecu: EcuId) -> String {
    ecu.to_string()
}

fn readings(data: &[PidData]) -> Vec<&Reading> {
    data.iter().flat_map(|d| d.readings.iter()).collect()
}

async fn info(client: &DiagClient, spec: &LinkSpec, out: &Output) -> Result<(), DiagError> {
    let ecus: Vec<EcuInfo> = client.discover().await?;
    let vin = match client.read_vin().await {
        Ok(v) => Some(v.to_string()),
        Err(e) => {
            tracing::debug!(cause = %e, "no VIN");
            None
        }
    };
    let mut names: BTreeMap<EcuId, String> = BTreeMap::new();
    let mut cal_ids: BTreeMap<EcuId, Vec<String>> = BTreeMap::new();
    for infotype in [0x0A, 0x04] {
        let Ok(answers) = client
            .request(Target::Functional, &Request::VehicleInfo { infotype })
            .await
        else {
            continue;
        };
        for a in answers {
            match a.response {
                Response::VehicleInfo(VehicleInfo::EcuName(n)) => {
                    names.insert(a.ecu, n);
                }
                Response::VehicleInfo(VehicleInfo::CalibrationIds(ids)) => {
                    cal_ids.insert(a.ecu, ids);
                }
                _ => {}
            }
        }
    }
    if out.json {
        let ecus: Vec<Value> = ecus
            .iter()
            .map(|e| {
                json!({
                    "ecu": ecu_label(e.ecu),
                    "name": names.get(&e.ecu),
                    "calibration_ids": cal_ids.get(&e.ecu).cloned().unwrap_or_default(),
                    "supported_pids": e.supported_pids,
                })
            })
            .collect();
        out.json(&json!({ "link": spec.to_string(), "vin": vin, "ecus": ecus }));
        return Ok(());
    }
    println!("Link: {spec}");
    println!("VIN:  {}", vin.as_deref().unwrap_or("(not reported)"));
    for e in &ecus {
        let name = names.get(&e.ecu).map_or("", String::as_str);
        println!("ECU {} {name}", ecu_label(e.ecu));
        if let Some(ids) = cal_ids.get(&e.ecu) {
            println!("  calibration: {}", ids.join(", "));
        }
        let pids: Vec<String> = e
            .supported_pids
            .iter()
            .filter(|&p| !is_bitmap_pid(p))
            .map(|p| format!("{p:02X}"))
            .collect();
        println!("  supported PIDs ({}): {}", pids.len(), pids.join(" "));
    }
    Ok(())
}

async fn read_pids(client: &DiagClient, pids: &[u8], out: &Output) -> Result<(), DiagError> {
    let values = if pids.is_empty() {
        let mut all = BTreeMap::new();
        for e in client.discover().await? {
            let wanted: Vec<u8> = e
                .supported_pids
                .iter()
                .filter(|&p| !is_bitmap_pid(p))
                .collect();
            let Some(target) = e.target else {
                continue;
            };
            if wanted.is_empty() {
                all.insert(e.ecu, Vec::new());
                continue;
            }
            all.extend(client.read_pids(target, &wanted).await?);
        }
        all
    } else {
        client.read_pids(Target::Functional, pids).await?
    };
    print_values(&values, out, None);
    Ok(())
}

fn print_values(values: &BTreeMap<EcuId, Vec<PidData>>, out: &Output, t_ms: Option<u128>) {
    if out.json {
        match t_ms {
            Some(t) => {
                for (ecu, data) in values {
                    out.json(&json!({"t_ms": t, "ecu": ecu_label(*ecu), "values": readings(data)}));
                }
            }
            None => {
                let ecus: Vec<Value> = values
                    .iter()
                    .map(|(ecu, data)| json!({"ecu": ecu_label(*ecu), "values": readings(data)}))
                    .collect();
                out.json(&json!({ "ecus": ecus }));
            }
        }
        return;
    }
    for (ecu, data) in values {
        match t_ms {
            Some(t) => println!("[{:>7.1} s] ECU {}", t as f64 / 1000.0, ecu_label(*ecu)),
            None => println!("ECU {}", ecu_label(*ecu)),
        }
        for r in readings(data) {
            println!("  {:02X} {r}", r.pid);
        }
    }
}

async fn dtcs(client: &DiagClient, out: &Output) -> Result<(), DiagError> {
    #[derive(Default, Serialize)]
    struct Lists {
        stored: Vec<String>,
        pending: Vec<String>,
        permanent: Vec<String>,
    }
    let mut by_ecu: BTreeMap<EcuId, Lists> = BTreeMap::new();
    for kind in [DtcKind::Stored, DtcKind::Pending, DtcKind::Permanent] {
        let found = match client.read_dtcs(kind).await {
            Ok(f) => f,
            // Stored codes every OBD ECU answers; the others are optional (0A is from 2010).
            Err(e) if kind != DtcKind::Stored && e.is_silence() => continue,
            Err(e) => return Err(e),
        };
        for (ecu, codes) in found {
            let lists = by_ecu.entry(ecu).or_default();
            let list = match kind {
                DtcKind::Stored => &mut lists.stored,
                DtcKind::Pending => &mut lists.pending,
                DtcKind::Permanent => &mut lists.permanent,
            };
            list.extend(codes.iter().map(ToString::to_string));
        }
    }
    if out.json {
        let ecus: Vec<Value> = by_ecu
            .iter()
            .map(|(ecu, l)| {
                json!({"ecu": ecu_label(*ecu), "stored": l.stored, "pending": l.pending, "permanent": l.permanent})
            })
            .collect();
        out.json(&json!({ "ecus": ecus }));
        return Ok(());
    }
    for (ecu, l) in &by_ecu {
        println!("ECU {}", ecu_label(*ecu));
        for (what, list) in [
            ("stored", &l.stored),
            ("pending", &l.pending),
            ("permanent", &l.permanent),
        ] {
            let shown = if list.is_empty() {
                "none".to_owned()
            } else {
                list.join(" ")
            };
            println!("  {what:<9} {shown}");
        }
    }
    Ok(())
}

/// The freeze-frame PIDs asked: the trigger DTC, then what a technician looks at first.
const FREEZE_PIDS: [u8; 12] = [
    0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0B, 0x0C, 0x0D, 0x0F, 0x10, 0x11,
];

async fn freeze(client: &DiagClient, out: &Output) -> Result<(), DiagError> {
    let frames = client
        .read_freeze_frame(Target::Functional, 0, &FREEZE_PIDS)
        .await?;
    let trigger = |data: &[PidData]| {
        data.iter()
            .find_map(PidData::freeze_frame_trigger)
            .map(|d| d.to_string())
    };
    if out.json {
        let ecus: Vec<Value> = frames
            .iter()
            .map(|(ecu, data)| {
                let values: Vec<&Reading> = data
                    .iter()
                    .filter(|d| d.pid != 0x02)
                    .flat_map(|d| d.readings.iter())
                    .collect();
                json!({"ecu": ecu_label(*ecu), "frame": 0, "dtc": trigger(data), "values": values})
            })
            .collect();
        out.json(&json!({ "ecus": ecus }));
        return Ok(());
    }
    for (ecu, data) in &frames {
        match trigger(data) {
            Some(dtc) => println!("ECU {} freeze frame 0, stored by {dtc}", ecu_label(*ecu)),
            None => {
                println!("ECU {}: no freeze frame stored", ecu_label(*ecu));
                continue;
            }
        }
        for d in data.iter().filter(|d| d.pid != 0x02) {
            for r in &d.readings {
                println!("  {:02X} {r}", r.pid);
            }
        }
    }
    Ok(())
}

async fn clear(client: &DiagClient, yes: bool, out: &Output) -> Result<(), DiagError> {
    if !yes {
        return Err(DiagError::BadRequest(NEED_YES.into()));
    }
    let answers = client.clear_dtcs(Target::Functional).await?;
    if out.json {
        let ecus: Vec<Value> = answers
            .iter()
            .map(|a| match &a.response {
                Response::Negative(n) => json!({
                    "ecu": ecu_label(a.ecu), "cleared": false,
                    "nrc": n.nrc.0, "reason": n.nrc.name(),
                }),
                _ => json!({"ecu": ecu_label(a.ecu), "cleared": true, "nrc": null, "reason": null}),
            })
            .collect();
        out.json(&json!({ "ecus": ecus }));
        return Ok(());
    }
    for a in &answers {
        match &a.response {
            Response::Negative(n) => println!(
                "ECU {}: refused ({}); engines usually must be off, ignition on",
                ecu_label(a.ecu),
                n.nrc
            ),
            _ => println!("ECU {}: cleared", ecu_label(a.ecu)),
        }
    }
    Ok(())
}

async fn watch(
    client: &DiagClient,
    pids: &[u8],
    interval_ms: u64,
    count: u64,
    out: &Output,
) -> Result<(), DiagError> {
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let values = client.read_pids(Target::Functional, pids).await?;
        print_values(&values, out, Some(start.elapsed().as_millis()));
        n += 1;
        if count != 0 && n >= count {
            return Ok(());
        }
    }
}
