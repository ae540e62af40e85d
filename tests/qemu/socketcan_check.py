#!/usr/bin/env python3
"""Check the JSON that `telltale scan` printed inside the QEMU guest (tests/qemu/socketcan.sh).

    socketcan_check.py CONSOLE_LOG [OUT_DIR]

The guest prints each command's output between `==TELLTALE-JSON-BEGIN <name>==` and
`==TELLTALE-JSON-END <name> rc=<code>==`. This extracts every block (to OUT_DIR/<name>.json when
given), parses it as one JSON document or as JSON lines, and checks:

- info:    a `vin` of 17 characters, no I/O/Q, with a valid check digit (position 9);
- pids:    engine_speed (0C), vehicle_speed (0D), coolant_temperature (05) plausible;
- dtcs:    P0420 among the stored (service 03) codes; pending (07) is reported;
- freeze:  the freeze frame's trigger DTC is P0420;
- pids01_before / pids01_after: MIL on with a DTC count before clear; after clear MIL off,
           count 0 and every available non-continuous monitor incomplete (readiness reset);
- dtcs_after_clear: no stored codes.

The CLI's JSON shape was not settled when this was written; the lookups are deliberately
tolerant (keys found at any depth) and each one lives in a small function below, so adjusting to
the real shape is a local change. Assumed shape, matching `telltale decode`:
readings are objects {"pid": "0C", "key": "engine_speed", "value": 812.0, "unit": "rpm"};
DTC lists are strings like "P0420" (or objects with a "code") under keys named stored/confirmed,
pending, permanent; the VIN is under a key "vin"; the freeze frame's DTC is under a key
containing "trigger" (or "dtc"/"dtcs").
"""

import json
import re
import sys
from pathlib import Path

DTC_RE = re.compile(r"^[PCBU][0-3][0-9A-F]{3}$")
BEGIN_RE = re.compile(r"==TELLTALE-JSON-BEGIN (\S+)==")
END_RE = re.compile(r"==TELLTALE-JSON-END (\S+) rc=(\d+)==")
# Readings that carry a pid but no key (single-value PIDs only).
PID_KEYS = {"0C": "engine_speed", "0D": "vehicle_speed", "05": "coolant_temperature"}
CONTINUOUS = ("misfire", "fuel_system", "comprehensive_component", "comprehensive")

failures: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)
    print(f"FAIL: {msg}")


def ok(msg: str) -> None:
    print(f"ok:   {msg}")


# --- extraction ---------------------------------------------------------------------------


def extract(log_text: str) -> dict[str, tuple[str, int]]:
    """name -> (raw text, exit code) for each marked block in the console log."""
    blocks: dict[str, tuple[str, int]] = {}
    current, lines = None, []
    for line in log_text.splitlines():
        line = line.rstrip("\r")
        m = END_RE.search(line)
        if m and current == m.group(1):
            before = line[: m.start()]
            if before.strip():
                lines.append(before)
            blocks[current] = ("\n".join(lines), int(m.group(2)))
            current, lines = None, []
            continue
        m = BEGIN_RE.search(line)
        if m:
            current, lines = m.group(1), []
            continue
        if current is not None:
            lines.append(line)
    return blocks


def parse(text: str):
    """One JSON document, or JSON lines (a list of documents)."""
    text = text.strip()
    if not text:
        raise ValueError("empty output")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(l) for l in text.splitlines() if l.strip()]


# --- generic lookups ----------------------------------------------------------------------


def walk(doc, path=()):
    """Yield (path, key, value) for every dict entry at any depth."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield path, k, v
            yield from walk(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from walk(v, path + (i,))


def codes_in(value) -> set[str]:
    """DTC strings anywhere in value (plain strings or objects with a code/dtc field)."""
    out = set()
    if isinstance(value, str):
        if DTC_RE.match(value.strip().upper()[:5]):
            out.add(value.strip().upper()[:5])
    elif isinstance(value, list):
        for v in value:
            out |= codes_in(v)
    elif isinstance(value, dict):
        for v in value.values():
            out |= codes_in(v)
    return out


def pid_hex(pid) -> str:
    """"0C", "0x0c" or 12 -> "0C"."""
    if isinstance(pid, int) and not isinstance(pid, bool):
        return f"{pid:02X}"
    text = str(pid or "").upper().removeprefix("0X")
    return text.zfill(2)


def readings(doc) -> dict[str, object]:
    """key -> value for every reading-like object ({"key": ..., "value": ...}) at any depth;
    also plain top-level-ish entries named like the keys we want."""
    found: dict[str, object] = {}

    def visit(d):
        if isinstance(d, dict):
            if isinstance(d.get("key"), str) and "value" in d:
                found.setdefault(d["key"], d["value"])
            elif pid_hex(d.get("pid")) in PID_KEYS and "value" in d:
                found.setdefault(PID_KEYS[pid_hex(d["pid"])], d["value"])
            for v in d.values():
                visit(v)
        elif isinstance(d, list):
            for v in d:
                visit(v)

    visit(doc)
    for _, k, v in walk(doc):
        if isinstance(v, (int, float, bool)) and not isinstance(k, int):
            found.setdefault(k, v)
    return found


# --- the checks ---------------------------------------------------------------------------

VIN_VALUES = {**{str(d): d for d in range(10)},
              **dict(zip("ABCDEFGH", range(1, 9))), **dict(zip("JKLMN", range(1, 6))),
              "P": 7, "R": 9, **dict(zip("STUVWXYZ", range(2, 10)))}
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_problem(vin: str):
    if len(vin) != 17:
        return f"{len(vin)} characters, not 17"
    bad = [c for c in vin if c not in VIN_VALUES]
    if bad:
        return f"characters not allowed in a VIN: {''.join(bad)}"
    total = sum(VIN_VALUES[c] * w for c, w in zip(vin, VIN_WEIGHTS))
    want = "X" if total % 11 == 10 else str(total % 11)
    if vin[8] != want:
        return f"check digit is {vin[8]}, should be {want}"
    return None


def check_info(doc):
    vins = [v for _, k, v in walk(doc) if k.lower() == "vin" and isinstance(v, str)]
    if not vins:
        return fail("info: no 'vin' in the output")
    for vin in set(vins):
        problem = vin_problem(vin)
        if problem:
            fail(f"info: VIN {vin!r}: {problem}")
        else:
            ok(f"info: VIN {vin} (17 characters, check digit valid)")


PLAUSIBLE = {  # key: (low, high, unit), inclusive
    "engine_speed": (400, 7000, "rpm"),  # the scenario's engine is running
    "vehicle_speed": (0, 250, "km/h"),
    "coolant_temperature": (-40, 130, "°C"),
}


def check_pids(doc):
    r = readings(doc)
    for key, (lo, hi, unit) in PLAUSIBLE.items():
        v = r.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            fail(f"pids: no numeric {key} in the output (readings: {sorted(r)[:20]})")
        elif not lo <= v <= hi:
            fail(f"pids: {key} = {v} {unit}, outside {lo}..{hi}")
        else:
            ok(f"pids: {key} = {v} {unit}")


def dtcs_by_kind(doc) -> dict[str, set[str]]:
    """stored / pending / permanent -> codes, by the name of the key they sit under."""
    kinds = {"stored": set(), "pending": set(), "permanent": set()}
    names = {"stored": "stored", "confirmed": "stored", "mode03": "stored", "service03": "stored",
             "pending": "pending", "mode07": "pending", "service07": "pending",
             "permanent": "permanent", "mode0a": "permanent", "service0a": "permanent"}
    for _, k, v in walk(doc):
        kind = names.get(str(k).lower().replace("_", "").replace("dtcs", "").replace("codes", ""))
        if kind:
            kinds[kind] |= codes_in(v)
    return kinds


def check_dtcs(doc):
    kinds = dtcs_by_kind(doc)
    print(f"      dtcs: stored={sorted(kinds['stored'])} pending={sorted(kinds['pending'])} "
          f"permanent={sorted(kinds['permanent'])}")
    if "P0420" in kinds["stored"]:
        ok("dtcs: P0420 stored")
    else:
        fail("dtcs: P0420 not among the stored codes")
    if "P0420" in kinds["pending"]:
        ok("dtcs: P0420 pending")


def check_freeze(doc):
    triggers = set()
    for _, k, v in walk(doc):
        k = str(k).lower()
        if "trigger" in k or k in ("dtc", "dtcs", "freeze_frame_dtc"):
            triggers |= codes_in(v)
    if triggers == {"P0420"}:
        ok("freeze: trigger P0420")
    else:
        fail(f"freeze: trigger DTCs {sorted(triggers)}, expected ['P0420']")


def check_readiness(before, after):
    rb, ra = readings(before), readings(after)
    if rb.get("mil_on") is True and isinstance(rb.get("dtc_count"), (int, float)) and rb["dtc_count"] >= 1:
        ok(f"readiness before clear: MIL on, {rb['dtc_count']:g} DTC(s)")
    else:
        fail(f"readiness before clear: expected MIL on and a DTC count, got mil_on={rb.get('mil_on')} dtc_count={rb.get('dtc_count')}")
    if ra.get("mil_on") is False and ra.get("dtc_count") == 0:
        ok("readiness after clear: MIL off, 0 DTCs")
    else:
        fail(f"readiness after clear: expected MIL off and 0 DTCs, got mil_on={ra.get('mil_on')} dtc_count={ra.get('dtc_count')}")
    monitors = [k[: -len("_available")] for k, v in ra.items()
                if k.endswith("_available") and v is True and not k.startswith(CONTINUOUS)]
    if not monitors:
        return fail("readiness after clear: no available non-continuous monitor in the output")
    complete = [m for m in monitors if ra.get(f"{m}_complete") is not False]
    if complete:
        fail(f"readiness after clear: monitors still complete (or not reported): {complete}")
    else:
        ok(f"readiness after clear: {len(monitors)} monitors reset to incomplete ({', '.join(monitors)})")
    if rb.get("catalyst_complete") is not None:
        print(f"      catalyst monitor complete before clear: {rb.get('catalyst_complete')}")


def check_after_clear(doc):
    stored = dtcs_by_kind(doc)["stored"]
    if stored:
        fail(f"dtcs after clear: stored codes remain: {sorted(stored)}")
    else:
        ok("dtcs after clear: no stored codes")


CHECKS = [  # (block names, function); blocks are named by tests/qemu/socketcan.sh
    (("info",), check_info),
    (("pids",), check_pids),
    (("dtcs",), check_dtcs),
    (("freeze",), check_freeze),
    (("pids01_before", "pids01_after"), check_readiness),
    (("dtcs_after_clear",), check_after_clear),
]


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    text = Path(sys.argv[1]).read_text(errors="replace")
    out_dir = Path(sys.argv[2]) if len(sys.argv) == 3 else None
    blocks = extract(text)
    docs = {}
    for name, (raw, rc) in blocks.items():
        if out_dir:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{name}.json").write_text(raw + "\n")
        if rc != 0:
            fail(f"{name}: the command exited with {rc}")
        try:
            docs[name] = parse(raw)
        except (ValueError, json.JSONDecodeError) as e:
            fail(f"{name}: not JSON ({e}): {raw[:300]!r}")
    if "clear" in blocks:
        ok(f"clear: exit {blocks['clear'][1]}")
    else:
        fail("clear: no output block (did the guest run `clear --yes`?)")
    for names, check in CHECKS:
        missing = [n for n in names if n not in docs]
        if missing:
            fail(f"no usable output for {', '.join(missing)}")
            continue
        check(*(docs[n] for n in names))
    if failures:
        print(f"socketcan checks: {len(failures)} failed")
        return 1
    print("socketcan checks: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
