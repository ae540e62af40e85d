#!/usr/bin/env python3
"""Checks what tests/qemu/socketcan.sh ran in the QEMU guest: the SocketCAN self-test,
firmware-sim's `hybrid` scenario read by `telltale scan` (JSON, as `telltale scan --help`
documents it) and UDS answers read through the kernel's ISO-TP.

    socketcan_check.py CONSOLE_LOG [OUT_DIR]             check; write each block to OUT_DIR
    socketcan_check.py --mutants CONSOLE_LOG [OUT_DIR]   the checks must reject broken copies

The guest prints each output between `==TELLTALE-JSON-BEGIN <name> t=<uptime>==` and
`==TELLTALE-JSON-END <name> rc=<code>==`. What is checked (engine 7E8, transmission 7E9,
hybrid controller 18DAF117; facts of the scenario from firmware-sim/scenarios/hybrid.toml
and firmware-sim/README.md):

- selftest: socketcan_selftest passed on vcan1 (11/29-bit frames through kernel filters);
- dtcs_poll (`dtcs` from the simulator's start until P0420 is stored): every poll answered
  by exactly 7E8 and 7E9; P0420 absent at first, then pending without being stored, then
  stored and permanent, never the other way round; pending and stored at least half a drive
  (240 vehicle seconds) apart, as J1979's two-trip logic wants (README: 288 s and 768 s);
- pids (0C 0D 05, read first after that): engine speed 400-7000 rpm (the engine runs at that
  point of the drive), speed 0-250 km/h, coolant 60-130 °C (second drive: warm), and the
  transmission's speed within 10 km/h of the engine's;
- freeze: frame 0 of 7E8 stored by P0420, with values that meet the catalyst monitor's
  enable conditions (coolant >= 70 °C, closed loop) and a running engine;
- dtcs: 7E8 stored and permanent P0420, 7E9 nothing stored; pids01_before: MIL on, DTC
  count = stored codes, catalyst monitor available and complete;
- info: the scenario's VIN (17 characters, valid check digit), 7E8 "ECM" and 7E9 "TCM" with
  calibration IDs, 7E8 supporting PIDs 05 0C 0D; info29/dtcs29 over 29-bit ids: only
  18DAF117 answers, named HPCM with the scenario's calibration ID, P0A80 stored;
- uds_engine / uds_hybrid (19 02 FF): P0420 / P0A80 with status confirmed and warning
  indicator on; uds_snapshot (19 04 P0420 record 01): a multi-frame answer with DIDs F4xx;
- after clear: 7E8 and 7E9 cleared; stored empty, P0420 still permanent (J1979: clearing
  does not erase permanent codes), not pending (its monitor has not run again); UDS status
  of P0420 not confirmed, MIL off, "test not completed since last clear"; PID 01: MIL off,
  0 codes, catalyst, O2 sensor, EGR and EVAP monitors incomplete; P0A80 still stored in the
  29-bit ECU, which the 11-bit clear does not reach.
"""

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "firmware-sim" / "scenarios" / "hybrid.toml"
BEGIN_RE = re.compile(r"==TELLTALE-JSON-BEGIN (\S+) t=([0-9.]+)==")
END_RE = re.compile(r"==TELLTALE-JSON-END (\S+) rc=(\d+)==")
KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\]")
ENGINE, TCM, HYBRID = "7E8", "7E9", "18DAF117"
DRIVE_S = 480.0  # firmware-sim's default drive length (vehicle seconds)
# Non-continuous monitors that complete late in a drive, with their point in the drive
# (firmware-sim/src/faults.rs): after a clear each needs that share of a drive's running time.
LATE_MONITORS = (("catalyst", 0.60), ("o2_sensor", 0.45), ("egr_system", 0.75),
                 ("evap_system", 0.972))


class Block:
    def __init__(self, name: str, t: float):
        self.name, self.t, self.lines, self.rc = name, t, [], None

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()


def extract(log_text: str) -> dict:
    blocks, current = {}, None
    for raw in log_text.splitlines():
        line = raw.rstrip("\r")
        m = END_RE.search(line)
        if m and current is not None and m.group(1) == current.name:
            before = line[: m.start()]
            if before.strip():
                current.lines.append(before)
            current.rc = int(m.group(2))
            blocks[current.name] = current
            current = None
            continue
        m = BEGIN_RE.search(line)
        if m:
            current = Block(m.group(1), float(m.group(2)))
            continue
        if current is not None and not KERNEL_LINE.match(line):
            current.lines.append(line)
    return blocks


class Checks:
    def __init__(self, blocks: dict, quiet: bool = False):
        self.blocks, self.quiet, self.failures = blocks, quiet, []
        self.docs = {}
        self.scenario = scenario_facts()

    def fail(self, msg: str):
        self.failures.append(msg)
        if not self.quiet:
            print(f"FAIL: {msg}")

    def ok(self, msg: str):
        if not self.quiet:
            print(f"ok:   {msg}")

    def note(self, msg: str):
        if not self.quiet:
            print(f"      {msg}")

    def check(self, cond: bool, good: str, bad: str) -> bool:
        (self.ok if cond else self.fail)(good if cond else bad)
        return cond

    def doc(self, name: str):
        """The block's JSON (None, with a failure, when missing, failed or not JSON)."""
        if name in self.docs:
            return self.docs[name]
        block, doc = self.blocks.get(name), None
        if block is None:
            self.fail(f"{name}: no output block (the guest script stopped before it?)")
        elif block.rc != 0:
            self.fail(f"{name}: the command exited with {block.rc}: {block.text[:300]!r}")
        else:
            try:
                doc = json.loads(block.text)
            except json.JSONDecodeError as e:
                self.fail(f"{name}: not JSON ({e}): {block.text[:300]!r}")
        self.docs[name] = doc
        return doc

    def ecus(self, name: str) -> dict:
        doc = self.doc(name)
        if not isinstance(doc, dict) or not isinstance(doc.get("ecus"), list):
            if doc is not None:
                self.fail(f"{name}: no 'ecus' list in {str(doc)[:200]}")
            return {}
        return {e.get("ecu"): e for e in doc["ecus"] if isinstance(e, dict)}

    def values(self, name: str, ecu: str) -> dict:
        entry = self.ecus(name).get(ecu)
        if entry is None:
            self.fail(f"{name}: no answer from {ecu}")
            return {}
        return {v["key"]: v["value"] for v in entry.get("values", []) if "key" in v}

    def end_time(self, name: str) -> float:
        """When block `name` ended: the start of the next block (guest uptime)."""
        later = sorted(b.t for b in self.blocks.values() if b.t > self.blocks[name].t)
        return later[0] if later else self.blocks[name].t + 5.0

    def vehicle_s(self, t: float) -> float:
        meta = self.doc("meta") or {}
        return (t - meta.get("sim_started", 0.0)) * meta.get("time_scale", 1.0)

    # --- the checks, in the order the guest ran them ------------------------------------

    def selftest(self):
        b = self.blocks.get("selftest")
        if b is None:
            return self.fail("selftest: no output block")
        self.check(b.rc == 0 and "socketcan self-test on vcan1: ok" in b.text,
                   f"selftest: {b.text.splitlines()[0] if b.text else ''}",
                   f"selftest: socketcan_selftest vcan1 exited {b.rc}: {b.text[:300]!r}")

    def poll(self):
        b = self.blocks.get("dtcs_poll")
        if b is None or self.doc("meta") is None:
            return self.fail("dtcs_poll: no output block")
        polls = []
        for line in b.lines:
            if not line.strip().startswith("{"):
                continue
            try:
                polls.append(json.loads(line))
            except json.JSONDecodeError as e:
                self.fail(f"dtcs_poll: a line is not JSON ({e}): {line[:200]!r}")
        if not polls:
            return self.fail("dtcs_poll: no polls")
        states = []  # (vehicle s, state of P0420 on the engine)
        racy = []  # polls that saw P0420 permanent but not stored
        for p in polls:
            scan = p.get("scan")
            if p.get("rc") != 0 or not isinstance(scan, dict):
                self.fail(f"dtcs_poll: the poll at {p.get('t')} failed (exit {p.get('rc')})")
                continue
            got = {e.get("ecu"): e for e in scan.get("ecus", [])}
            if set(got) != {ENGINE, TCM}:
                self.fail(f"dtcs_poll: answered by {sorted(got)}, expected {ENGINE} and {TCM}")
            e = got.get(ENGINE, {})
            has = {k: "P0420" in e.get(k, []) for k in ("pending", "stored", "permanent")}
            state = ("stored" if has["stored"] else "pending" if has["pending"] else "none")
            if has["stored"] and not (has["permanent"] and has["pending"]):
                self.fail(f"dtcs_poll: P0420 stored but not pending and permanent: {e}")
            if not has["stored"] and has["permanent"]:
                # `dtcs` reads 03, 07, 0A one after the other: confirmed in between, the code
                # shows in 0A but not yet in 03. Only the last poll before "stored" may.
                racy.append(len(states))
            states.append((self.vehicle_s(p["t"]), state))
        for i in racy:
            if i + 1 >= len(states) or states[i + 1][1] != "stored":
                self.fail(f"dtcs_poll: P0420 permanent before it is stored (poll {i + 1})")
        self.note(f"dtcs_poll: {len(polls)} polls; P0420 by vehicle time: "
                  + " ".join(f"{v:.0f}s:{s}" for v, s in states))
        order = [s for _, s in states]
        ranks = {"none": 0, "pending": 1, "stored": 2}
        if any(ranks[a] > ranks[b] for a, b in zip(order, order[1:])):
            self.fail(f"dtcs_poll: P0420 went backwards: {order}")
        if not order or order[0] != "none":
            self.fail("dtcs_poll: P0420 was there at the first poll; it must appear while watched")
        if "stored" not in order:
            return self.fail("dtcs_poll: P0420 never stored")
        first = {s: next(v for v, st in states if st == s) for s in set(order)}
        if "pending" not in first:
            return self.fail("dtcs_poll: P0420 was never seen pending before it was stored")
        gap = first["stored"] - first["pending"]
        self.check(gap >= DRIVE_S / 2,
                   f"dtcs_poll: P0420 pending at ~{first['pending']:.0f} s, stored at "
                   f"~{first['stored']:.0f} s of vehicle time (README: 288 s, 768 s)",
                   f"dtcs_poll: P0420 stored only {gap:.0f} vehicle seconds after pending; "
                   f"the two-trip logic needs a second drive ({DRIVE_S:.0f} s)")

    def live_pids(self):
        v, t = self.values("pids", ENGINE), self.values("pids", TCM)
        if not v:
            return
        phase = (self.vehicle_s(self.blocks["pids"].t) % DRIVE_S) / DRIVE_S
        rpm, speed, coolant = (v.get(k) for k in ("engine_speed", "vehicle_speed",
                                                   "coolant_temperature"))
        if not all(isinstance(x, (int, float)) for x in (rpm, speed, coolant)):
            return self.fail(f"pids: engine values missing or not numbers: {v}")
        low_rpm = 400 if phase < 0.95 else 0  # the engine stops at 97.5 % of a drive
        self.check(low_rpm <= rpm <= 7000 and 0 <= speed <= 250 and 60 <= coolant <= 130,
                   f"pids: engine {rpm:g} rpm, {speed:g} km/h, coolant {coolant:g} °C",
                   f"pids: implausible engine {rpm} rpm (>= {low_rpm} at drive phase "
                   f"{phase:.2f}), {speed} km/h, coolant {coolant} °C (warm by drive 2)")
        if speed > 0 and rpm < 400:
            self.fail(f"pids: moving at {speed} km/h with the engine at {rpm} rpm")
        ts = t.get("vehicle_speed")
        self.check(isinstance(ts, (int, float)) and abs(ts - speed) <= 10,
                   f"pids: transmission speed {ts} km/h agrees with the engine's",
                   f"pids: transmission speed {ts} km/h vs engine {speed} km/h")

    def freeze(self):
        entry = self.ecus("freeze").get(ENGINE)
        if entry is None:
            return self.fail("freeze: no freeze frame answer from the engine")
        self.check(entry.get("dtc") == "P0420" and entry.get("frame") == 0,
                   "freeze: frame 0 stored by P0420",
                   f"freeze: frame {entry.get('frame')} stored by {entry.get('dtc')}, expected P0420")
        v = {x["key"]: x["value"] for x in entry.get("values", []) if "key" in x}
        rpm, coolant, fuel = v.get("engine_speed"), v.get("coolant_temperature"), v.get(
            "fuel_system_1_status")
        good = (isinstance(rpm, (int, float)) and 400 <= rpm <= 7000
                and isinstance(coolant, (int, float)) and 70 <= coolant <= 130
                and isinstance(fuel, str) and fuel.startswith("closed loop"))
        self.check(good,
                   f"freeze: {rpm:g} rpm, coolant {coolant:g} °C, {fuel}, "
                   f"{v.get('vehicle_speed')} km/h, load {v.get('engine_load', 0):.0f} %"
                   if good else "",
                   f"freeze: values do not meet the catalyst monitor's conditions: rpm={rpm} "
                   f"coolant={coolant} fuel={fuel!r}")

    def dtcs(self):
        e = self.ecus("dtcs")
        if not e:
            return
        eng, tcm = e.get(ENGINE, {}), e.get(TCM, {})
        self.check(set(e) == {ENGINE, TCM} and "P0420" in eng.get("stored", [])
                   and "P0420" in eng.get("permanent", []) and tcm.get("stored") == [],
                   f"dtcs: engine stored {eng.get('stored')}, permanent {eng.get('permanent')}; "
                   f"transmission none",
                   f"dtcs: expected P0420 stored and permanent in {ENGINE} only, got {e}")
        self.stored_before = eng.get("stored", [])

    def readiness_before(self):
        v = self.values("pids01_before", ENGINE)
        if not v:
            return
        n = max(1, len(getattr(self, "stored_before", [])))
        self.check(v.get("mil_on") is True and v.get("dtc_count") == n
                   and v.get("catalyst_available") is True and v.get("catalyst_complete") is True,
                   f"pids01 before clear: MIL on, {n} code(s), catalyst monitor complete",
                   f"pids01 before clear: mil_on={v.get('mil_on')} dtc_count={v.get('dtc_count')} "
                   f"(expected {n}) catalyst available={v.get('catalyst_available')} "
                   f"complete={v.get('catalyst_complete')}")

    def info(self):
        doc = self.doc("info")
        if not isinstance(doc, dict):
            return
        vin = doc.get("vin")
        problem = vin_problem(vin) if isinstance(vin, str) else "missing"
        want = self.scenario.get("vin")
        self.check(problem is None and vin == want,
                   f"info: VIN {vin} (the scenario's; 17 characters, check digit valid)",
                   f"info: VIN {vin!r}: {problem or f'not the scenario VIN {want}'}")
        e = self.ecus("info")
        eng, tcm = e.get(ENGINE, {}), e.get(TCM, {})
        self.check(set(e) == {ENGINE, TCM}
                   and str(eng.get("name", "")).startswith("ECM")
                   and str(tcm.get("name", "")).startswith("TCM")
                   and eng.get("calibration_ids") and tcm.get("calibration_ids")
                   and {5, 12, 13} <= set(eng.get("supported_pids", [])),
                   f"info: {ENGINE} {eng.get('name')!r} {eng.get('calibration_ids')}, "
                   f"{TCM} {tcm.get('name')!r} {tcm.get('calibration_ids')}",
                   f"info: expected ECM on {ENGINE} and TCM on {TCM} with calibration IDs and "
                   f"PIDs 05 0C 0D, got {e}")

    def bus29(self):
        e = self.ecus("info29")
        h = e.get(HYBRID, {})
        want = self.scenario.get("hybrid_calibration_ids")
        self.check(set(e) == {HYBRID} and str(h.get("name", "")).startswith("HPCM")
                   and h.get("calibration_ids") == want,
                   f"info --29bit: only {HYBRID} answers: {h.get('name')!r} {h.get('calibration_ids')}",
                   f"info --29bit: expected only {HYBRID} (HPCM, {want}), got {e}")
        d = self.ecus("dtcs29")
        self.check(set(d) == {HYBRID} and "P0A80" in d.get(HYBRID, {}).get("stored", []),
                   f"dtcs --29bit: {HYBRID} stored {d.get(HYBRID, {}).get('stored')}",
                   f"dtcs --29bit: expected P0A80 stored in {HYBRID} only, got {d}")

    def uds_record(self, name: str, code: str):
        """Status byte of `code` in a 19 02 answer (None, with a failure, if absent)."""
        doc = self.doc(name)
        if not isinstance(doc, dict):
            return None
        data = hex_bytes(doc.get("response", ""))
        if data[:3] != [0x59, 0x02, 0xFF] or (len(data) - 3) % 4:
            self.fail(f"{name}: not a 59 02 FF answer with 4-byte records: {doc.get('response')!r}")
            return None
        records = {dtc_code(data[i], data[i + 1]): data[i + 3] for i in range(3, len(data), 4)}
        if code not in records:
            self.fail(f"{name}: {code} not among {sorted(records)}")
            return None
        self.note(f"{name}: {doc['ecu']} " + ", ".join(f"{c} status {s:02X}" for c, s in records.items()))
        return records[code]

    def uds(self):
        for name, code in (("uds_engine", "P0420"), ("uds_hybrid", "P0A80")):
            s = self.uds_record(name, code)
            if s is not None:
                self.check(s & 0x08 and s & 0x80,
                           f"{name}: {code} confirmed with the warning indicator on (status {s:02X})",
                           f"{name}: {code} status {s:02X}: expected confirmed (08) and warning "
                           f"indicator (80)")
        doc = self.doc("uds_snapshot")
        if isinstance(doc, dict):
            d = hex_bytes(doc.get("response", ""))
            good = (len(d) > 8 and d[:5] == [0x59, 0x04, 0x04, 0x20, 0x00] and d[6] == 0x01
                    and d[7] >= 1 and d[8] == 0xF4)
            self.check(good,
                       f"uds_snapshot: P0420 snapshot record 01 with {d[7] if good else 0} DIDs "
                       f"F4xx, {len(d)} bytes through the kernel's ISO-TP",
                       f"uds_snapshot: expected 59 04 04 20 00 SS 01 NN F4.., got {doc.get('response')!r}")

    def after_clear(self):
        c = self.ecus("clear")
        self.check(set(c) == {ENGINE, TCM} and all(x.get("cleared") is True for x in c.values()),
                   f"clear: {ENGINE} and {TCM} cleared",
                   f"clear: expected {ENGINE} and {TCM} cleared, got {c}")
        e = self.ecus("dtcs_after")
        eng = e.get(ENGINE, {})
        self.check(eng.get("stored") == [] and e.get(TCM, {}).get("stored") == [],
                   "dtcs after clear: nothing stored",
                   f"dtcs after clear: stored codes remain: {e}")
        self.check("P0420" in eng.get("permanent", []),
                   "dtcs after clear: P0420 still permanent (clearing does not erase it)",
                   f"dtcs after clear: P0420 not permanent any more: {eng}")
        self.check("P0420" not in eng.get("pending", []),
                   "dtcs after clear: P0420 not pending (its monitor has not run since)",
                   f"dtcs after clear: P0420 pending again while its monitor has not run: {eng}")
        s = self.uds_record("uds_engine_after", "P0420")
        if s is not None:
            self.check(not s & 0x08 and not s & 0x80 and s & 0x10,
                       f"uds after clear: P0420 status {s:02X}: not confirmed, indicator off, "
                       f"test not completed since clear",
                       f"uds after clear: P0420 status {s:02X}: expected 08 and 80 clear, 10 set")
        v = self.values("pids01_after", ENGINE)
        if v:
            self.check(v.get("mil_on") is False and v.get("dtc_count") == 0,
                       "pids01 after clear: MIL off, 0 codes",
                       f"pids01 after clear: mil_on={v.get('mil_on')} dtc_count={v.get('dtc_count')}")
            # A monitor completes only after its share of a drive's running time since the
            # clear; those that cannot have had it by the end of this read must be incomplete.
            # The catalyst one must be among them, or the checks above say nothing.
            since = self.vehicle_s(self.end_time("pids01_after")) - self.vehicle_s(
                self.blocks["clear"].t)
            due = [m for m, point in LATE_MONITORS
                   if v.get(f"{m}_available") is True and since < (point - 0.005) * DRIVE_S]
            still = [m for m in due if v.get(f"{m}_complete") is not False]
            if "catalyst" not in due:
                self.fail(f"pids01 after clear: read {since:.0f} vehicle seconds after the clear, "
                          f"too late to see the catalyst monitor reset (the guest was slow: lower "
                          f"SIM_TIME_SCALE)")
            self.check(due and not still,
                       f"pids01 after clear: readiness reset ({', '.join(due)} incomplete, "
                       f"{since:.0f} vehicle seconds after the clear)",
                       f"pids01 after clear: readiness not reset: {still} complete "
                       f"{since:.0f} vehicle seconds after the clear")
            others = sorted(k[: -len("_complete")] for k, x in v.items()
                            if k.endswith("_complete") and x is True
                            and v.get(k[: -len("_complete")] + "_available") is True)
            self.note(f"pids01 after clear: complete again already: {others or 'none'}")
        d = self.ecus("dtcs29_after")
        self.check("P0A80" in d.get(HYBRID, {}).get("stored", []),
                   f"dtcs --29bit after clear: P0A80 still stored in {HYBRID} (no 11-bit clear reaches it)",
                   f"dtcs --29bit after clear: expected P0A80 still stored, got {d}")

    def run(self) -> list:
        for step in (self.selftest, self.poll, self.live_pids, self.freeze, self.dtcs,
                     self.readiness_before, self.uds, self.bus29, self.after_clear, self.info):
            try:
                step()
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
                self.fail(f"{step.__name__}: unexpected output shape ({type(e).__name__}: {e})")
        return self.failures


# --- helpers --------------------------------------------------------------------------------

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
    return None if vin[8] == want else f"check digit is {vin[8]}, should be {want}"


def hex_bytes(text: str) -> list:
    try:
        return [int(x, 16) for x in text.split()]
    except ValueError:
        return []


def dtc_code(hi: int, lo: int) -> str:
    return "PCBU"[hi >> 6] + f"{(hi >> 4) & 3}{hi & 0xF:X}{lo:02X}"


def scenario_facts() -> dict:
    text = SCENARIO.read_text()
    vin = re.search(r'^vin\s*=\s*"([^"]+)"', text, re.M)
    hybrid = re.search(r"^\[ecus\.hybrid\](.*?)^\[", text, re.M | re.S)
    cal = re.search(r"^calibration_ids\s*=\s*\[(.*?)\]", hybrid.group(1), re.M) if hybrid else None
    return {"vin": vin.group(1) if vin else None,
            "hybrid_calibration_ids": re.findall(r'"([^"]+)"', cal.group(1)) if cal else None}


# --- mutants: the checks must reject each of these copies of a good log ---------------------

def in_block(text: str, name: str, old: str, new: str, count: int = 1) -> str:
    """Replaces `old` by `new` (regex) inside block `name` only."""
    m = re.search(rf"==TELLTALE-JSON-BEGIN {name} t=[0-9.]+==.*?==TELLTALE-JSON-END {name} ", text, re.S)
    if not m:
        return text
    inner = re.sub(old, new, m.group(0), count=count)
    return text[: m.start()] + inner + text[m.end():]


def bad_vin(text):
    return in_block(text, "info", r'("vin":"\w{8})(\w)', lambda m: m.group(1) + ("1" if m.group(2) != "1" else "2"))


MUTANTS = {  # name: (broken copy, what a failure message must mention)
    "wrong-vin": (bad_vin, "VIN"),
    "stored-after-clear": (lambda t: in_block(t, "dtcs_after", r'"stored":\[\]', '"stored":["P0420"]'),
                           "after clear"),
    "permanent-erased": (lambda t: in_block(t, "dtcs_after", r'"permanent":\["P0420"\]', '"permanent":[]'),
                         "permanent"),
    "never-pending": (lambda t: in_block(t, "dtcs_poll", r'"pending":\["P0420"\],"permanent":\[[^\]]*\],"stored":\[\]',
                                         '"pending":[],"permanent":[],"stored":[]', count=0),
                      "pending"),
    "wrong-trigger": (lambda t: in_block(t, "freeze", r'"dtc":"P0420"', '"dtc":"P0455"'), "P0420"),
    "readiness-kept": (lambda t: in_block(t, "pids01_after", r'("key":"catalyst_complete",.*?"value":)false', r"\1true"),
                       "readiness"),
    "hybrid-silent": (lambda t: in_block(t, "dtcs29", r'"ecu":"18DAF117"', '"ecu":"18DAF118"'), "29bit"),
}


def mutants(text: str, out_dir) -> int:
    bad = 0
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    for name, (mutate, must_mention) in MUTANTS.items():
        broken = mutate(text)
        if broken == text:
            print(f"FAIL: mutant {name}: could not be made (the log lacks what it changes)")
            bad += 1
            continue
        if out_dir:
            (out_dir / f"bad-{name}.log").write_text(broken)
        failures = Checks(extract(broken), quiet=True).run()
        hit = [f for f in failures if must_mention.lower() in f.lower()]
        if hit:
            print(f"ok:   mutant {name} rejected: {hit[0][:150]}")
        else:
            print(f"FAIL: mutant {name} not rejected as expected (failures: {failures[:3]})")
            bad += 1
    return bad


def main() -> int:
    args = sys.argv[1:]
    mutate = bool(args) and args[0] == "--mutants"
    if mutate:
        args = args[1:]
    if len(args) not in (1, 2):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    text = Path(args[0]).read_text(errors="replace")
    out_dir = Path(args[1]) if len(args) == 2 else None
    if mutate:
        bad = mutants(text, out_dir)
        print(f"mutants: {len(MUTANTS) - bad} of {len(MUTANTS)} rejected")
        return 1 if bad else 0
    blocks = extract(text)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, b in blocks.items():
            (out_dir / f"{name}.json").write_text(b.text + "\n")
    failures = Checks(blocks).run()
    if failures:
        print(f"socketcan checks: {len(failures)} failed")
        return 1
    print("socketcan checks: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
