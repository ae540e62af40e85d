"""A cloud service written by someone else reading a real telltale-agent: a paho-mqtt subscriber
on `telltale/v1/{device}/#` that decodes info, telemetry, dtc and status with the Python
classes grpc_tools compiled from proto/telltale/v1.

It prints `subscribed` once the broker has granted the subscription (the Rust test starts the
agent then), and stops when it has seen the vehicle info, a telemetry batch and a DTC report
whose stored codes, ECU by ECU, are `--until-stored`. Then a second client subscribes to the
status topic afresh and must get the agent's retained status. The last line of stdout is a
JSON summary of everything decoded, for the Rust test to compare with the scenario.
"""

import argparse
import json
import queue
import time

import paho.mqtt.client as mqtt

from checks import check, expect_equal, report
from telltale.v1 import vehicle_pb2 as v1

KINDS = {
    "info": v1.VehicleInfo,
    "telemetry": v1.TelemetryBatch,
    "dtc": v1.DtcReport,
    "status": v1.Status,
}
DTC_KINDS = {
    v1.DTC_KIND_STORED: "stored",
    v1.DTC_KIND_PENDING: "pending",
    v1.DTC_KIND_PERMANENT: "permanent",
}


def subscriber(port, client_id, topic_filter):
    """A connected client whose messages arrive on the returned queue once it is subscribed."""
    got = queue.Queue()
    granted = queue.Queue()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
    )
    client.on_connect = lambda c, _u, _f, rc, _p: (
        c.subscribe(topic_filter, qos=1) if not rc.is_failure else granted.put(rc)
    )
    client.on_subscribe = lambda _c, _u, _mid, codes, _p: granted.put(codes[0])
    client.on_message = lambda _c, _u, msg: got.put(msg)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    code = granted.get(timeout=20)
    expect_equal(code.value, 1, f"{topic_filter}: subscription granted at QoS 1")
    return client, got


def decode(msg, device):
    parts = msg.topic.split("/")
    expect_equal(parts[:3], ["telltale", "v1", device], "topic prefix and device")
    kind = parts[3]
    check(kind in KINDS, "an uplink kind the proto knows", msg.topic)
    expect_equal(msg.qos, 1, f"{msg.topic}: delivered at QoS 1")
    message = KINDS[kind].FromString(msg.payload)
    h = message.header
    expect_equal(h.device_id, device, f"{kind}: header device id")
    expect_equal(len(h.boot_id), 16, f"{kind}: boot id length")
    if kind == "status":
        expect_equal(h.seq, 0, "status is not spooled: seq 0")
    else:
        check(h.seq > 0, f"{kind}: spooled messages count from 1", h.seq)
    return kind, message


def codes(report_msg):
    """A DTC report's current picture: ECU (hex) -> kind -> sorted codes, and for UDS entries
    code -> status byte."""
    out = {}
    for ecu in report_msg.ecus:
        by_kind = out.setdefault(f"{ecu.ecu_can_id:X}", {})
        for d in ecu.current:
            if d.kind == v1.DTC_KIND_UDS:
                # UDS 0x19 entries carry their ISO 14229 status byte (confirmed = 0x08).
                by_kind.setdefault("uds", {})[d.code] = d.uds_status
            else:
                by_kind.setdefault(DTC_KINDS.get(d.kind, str(d.kind)), set()).add(d.code)
    return {e: {k: v if k == "uds" else sorted(v) for k, v in ks.items()} for e, ks in out.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--device", required=True)
    p.add_argument("--until-stored", required=True, help='JSON: {"7E8": ["P0420"], ...}')
    p.add_argument("--seconds", type=float, default=90)
    args = p.parse_args()
    want = {e: sorted(c) for e, c in json.loads(args.until_stored).items()}

    _client, got = subscriber(args.port, "py-watcher", f"telltale/v1/{args.device}/#")
    print("subscribed", flush=True)

    info, signals, reports, statuses, seqs = None, {}, [], [], set()
    deadline = time.monotonic() + args.seconds
    while True:
        stored_now = (
            {e: ks.get("stored", []) for e, ks in codes(reports[-1]).items()} if reports else {}
        )
        stored_now = {e: c for e, c in stored_now.items() if c}
        if info and signals and stored_now == want:
            break
        left = deadline - time.monotonic()
        check(
            left > 0,
            f"within {args.seconds} s: info, telemetry and stored codes {want}",
            {
                "info": info is not None,
                "signals": sorted(signals),
                "stored": stored_now,
                "reports": len(reports),
            },
        )
        try:
            msg = got.get(timeout=min(left, 1))
        except queue.Empty:
            continue
        kind, m = decode(msg, args.device)
        if kind != "status":
            key = (m.header.boot_id, m.header.seq)
            check(key not in seqs, f"{kind}: each seq once", m.header.seq)
            seqs.add(key)
        if kind == "info":
            info = m
        elif kind == "telemetry":
            for s in m.samples:
                signals.setdefault(
                    s.signal,
                    {"pid": s.pid, "ecu": f"{s.ecu_can_id:X}", "unit": s.unit, "vin": m.vin},
                )
        elif kind == "dtc":
            reports.append(m)
        else:
            statuses.append(m)

    # What a service that starts later sees first: the retained status.
    _late, late = subscriber(args.port, "py-late-watcher", f"telltale/v1/{args.device}/status")
    msg = late.get(timeout=20)
    check(msg.retain, "the status a late subscriber gets is the retained one", msg.topic)
    _, status = decode(msg, args.device)
    expect_equal(status.presence, v1.PRESENCE_ONLINE, "the retained status")

    confirmed = reports[-1]
    report(
        {
            "info": {
                "vin": info.vin,
                "link": info.link,
                "ecus": [f"{e.can_id:X}" for e in info.ecus],
                "engine_pids": sorted(
                    next((e.supported_pids for e in info.ecus if e.can_id == 0x7E8), [])
                ),
            },
            "signals": signals,
            "reports": [
                {
                    "vin": r.vin,
                    "seq": r.header.seq,
                    "reason": v1.DtcReportReason.Name(r.reason),
                    "codes": codes(r),
                }
                for r in reports
            ],
            "mil": {f"{e.ecu_can_id:X}": e.mil_on for e in confirmed.ecus},
            "freeze_frame_triggers": {
                f"{e.ecu_can_id:X}": e.freeze_frame.trigger_code
                for e in confirmed.ecus
                if e.HasField("freeze_frame")
            },
            "statuses": len(statuses),
            "retained_status_agent_version": status.agent_version,
        }
    )


if __name__ == "__main__":
    main()
