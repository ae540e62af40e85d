#!/usr/bin/env python3
"""Checks a tests/qemu/agent.sh run: what the host's subscriber received from the agent in the
guest (messages.txt: one `topic retain hex` line per message) and what the guest printed
(console.log: the agent's /status, its exit code, the simulator's log with the VIN).

A protobuf message is read with a small wire-format walker (top-level fields only), enough to
find the presence of a Status and the strings inside a report; the full decoding is tested on
the host by the Rust end-to-end tests.
"""
import json
import re
import sys
from pathlib import Path

DEVICE = "qemu-car"


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(buf):
    """Top-level (field number, value) pairs; value is int or bytes."""
    i, out = 0, []
    while i < len(buf):
        key, i = varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.append((num, v))
    return out


def main():
    out = Path(sys.argv[1])
    # Colour codes from the programs' logs would split `vin=...` apart.
    console = re.sub(r"\x1b\[[0-9;]*m", "", (out / "console.log").read_text(errors="replace"))
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    msgs = []
    for line in (out / "messages.txt").read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0].startswith(f"telltale/v1/{DEVICE}/"):
            msgs.append((parts[0].rsplit("/", 1)[1], parts[1] == "1", bytes.fromhex(parts[2])))
    kinds = {}
    for kind, _, payload in msgs:
        kinds.setdefault(kind, []).append(payload)
    print("received:", {k: len(v) for k, v in kinds.items()})

    m = re.search(r"vin=([A-HJ-NPR-Z0-9]{17})", console)
    vin = m.group(1) if m else None
    check(vin is not None, "the simulator's log names its VIN")
    check(re.search(r"AGENT-EXIT=0\b", console) is not None, "the agent exited 0 after SIGTERM")

    infos = kinds.get("info", [])
    check(any(vin and vin.encode() in dict(fields(p)).get(2, b"") for p in infos),
          f"a vehicle info message carries VIN {vin}")
    check(len(kinds.get("telemetry", [])) >= 3, "at least 3 telemetry messages")
    check(any(b"P0420" in p for p in kinds.get("dtc", [])), "a DTC report carries P0420")
    presences = [dict(fields(p)).get(2) for p in kinds.get("status", [])]
    check(1 in presences, "an ONLINE status")
    check(bool(presences) and presences[-1] == 2, f"the last status is OFFLINE (presences {presences[-5:]})")
    # Status goes out at connect, every status_period (5 s) and when the car wakes or sleeps.
    check(len(presences) <= 40, f"{len(presences)} status messages in one run: no status storm")

    m = re.search(r"==STATUS-BEGIN==\s*(\{.*?\})\s*==STATUS-END==", console, re.S)
    status = json.loads(m.group(1)) if m else None
    check(status is not None, "/status answered in the guest")
    if status:
        check(status["mqtt"]["connected"] is True, "/status: connected to the host's broker")
        check(status["vehicle"]["awake"] is True, "/status: vehicle awake")
        check(status["vehicle"]["vin"] == vin, f"/status: VIN {status['vehicle'].get('vin')}")
        check(status["spool"]["messages"] <= 2, f"/status: spool drained ({status['spool']['messages']} left)")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
