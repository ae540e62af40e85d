#!/usr/bin/env python3
"""Footprint of telltale-agent on a dongle-sized job: 20 signals at 1 Hz from the simulator,
published to a real Mosquitto. Reports resident memory and CPU of the agent process, side by
side in one run with the naive way (python-OBD + paho-mqtt, benches/naive_dongle.py, same
20 PIDs at 1 Hz through the same ELM327 emulator).

    benches/footprint.py [--seconds 60] [--warmup 10]

Builds the release binaries first (cargo, honouring CARGO_TARGET_DIR), starts its own
mosquitto on a free port. Measured per process from /proc: VmRSS sampled every second (median
and max) and CPU time (utime + stime) over the measured window as a share of one core. Rates:
samples per second the agent made (its /status) or readings the naive script published.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# 20 PIDs the simulator's engine ECU and python-OBD 0.7.3 both know (python-OBD's table stops
# before 0xA6, the odometer).
PIDS = ["04", "05", "06", "07", "0B", "0C", "0D", "0E", "0F", "10", "11", "1F", "2F", "31",
        "33", "3C", "42", "43", "46", "5C"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, pred, limit=30.0):
    end = time.monotonic() + limit
    while not pred():
        if time.monotonic() > end:
            sys.exit(f"footprint: timed out waiting for {what}")
        time.sleep(0.1)


def cpu_ticks(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(pid, seconds, rate_probe):
    rss, t0, c0, r0 = [], time.monotonic(), cpu_ticks(pid), rate_probe()
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        if not Path(f"/proc/{pid}").exists():
            sys.exit(f"footprint: process {pid} died during the measurement (see the logs)")
        rss.append(rss_kib(pid))
    wall = time.monotonic() - t0
    cpu = (cpu_ticks(pid) - c0) / CLK_TCK
    return {
        "rss_median_mib": statistics.median(rss) / 1024,
        "rss_max_mib": max(rss) / 1024,
        "cpu_pct_of_core": 100.0 * cpu / wall,
        "rate_per_s": (rate_probe() - r0) / wall,
    }


def http_status(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET /status HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=10)
    args = ap.parse_args()

    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "firmware-sim",
                    "-p", "telltale-agent", "--bins"], cwd=ROOT, check=True)
    py = subprocess.run([ROOT / "scripts/python-env"], check=True,
                        capture_output=True, text=True).stdout.strip()

    tmp = Path(tempfile.mkdtemp(prefix="telltale-footprint-"))
    procs = []

    def start(cmd, log):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE if log is None else open(tmp / log, "w"),
                             stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return p

    results = {}
    try:
        mport = free_port()
        (tmp / "m.conf").write_text(f"listener {mport} 127.0.0.1\nallow_anonymous true\n")
        start(["mosquitto", "-c", str(tmp / "m.conf")], "mosquitto.log")
        wait("mosquitto", lambda: socket.socket().connect_ex(("127.0.0.1", mport)) == 0)

        def agent_run(name, sim_args, link):
            sim = start([str(target / "firmware-sim"), *sim_args, "--scenario", "healthy"], f"sim-{name}.log")
            time.sleep(1.0)
            status = free_port()
            cfg = tmp / f"agent-{name}.toml"
            signals = "".join(f'[[signals]]\npid = 0x{p}\nperiod = "1s"\n' for p in PIDS)
            cfg.write_text(
                f'device_id = "bench-{name}"\nlink = "{link}"\nstate_dir = "{tmp}/state-{name}"\n'
                f'[mqtt]\nurl = "mqtt://127.0.0.1:{mport}"\n[obd]\nbatch_max_age = "5s"\n'
                f'[status]\nlisten = "127.0.0.1:{status}"\n{signals}'
            )
            agent = start([str(target / "telltale-agent"), "--config", str(cfg)], f"agent-{name}.log")
            wait("agent status", lambda: socket.socket().connect_ex(("127.0.0.1", status)) == 0)
            time.sleep(args.warmup)
            r = measure(agent.pid, args.seconds,
                        lambda: http_status(status)["vehicle"]["samples_made"])
            st = http_status(status)
            r["mqtt_acked"] = st["mqtt"]["acked"]
            agent.terminate(); agent.wait(10)
            sim.terminate(); sim.wait(10)
            return r

        pty = tmp / "canable"
        results["telltale-agent, SLCAN (CAN frames, ISO-TP in the agent)"] = agent_run(
            "slcan", ["slcan", "--pty-link", str(pty)], f"slcan:{pty}")
        eport = free_port()
        results["telltale-agent, ELM327 over TCP"] = agent_run(
            "elm", ["elm327", "--tcp", f"127.0.0.1:{eport}"], f"elm327+tcp:127.0.0.1:{eport}")

        sim = start([str(target / "firmware-sim"), "elm327", "--tcp", f"127.0.0.1:{eport}",
                     "--scenario", "healthy"], "sim-naive.log")
        time.sleep(1.0)
        naive = start([py, str(ROOT / "benches/naive_dongle.py"), f"socket://127.0.0.1:{eport}",
                       str(mport), "naive", *PIDS], None)
        last = {"n": 0}

        def follow():
            # The script prints its running total once a second; keep the latest.
            for line in naive.stdout:
                if line.strip().isdigit():
                    last["n"] = int(line)

        threading.Thread(target=follow, daemon=True).start()

        def naive_count():
            return last["n"]

        time.sleep(args.warmup)
        results["naive: python-OBD + paho-mqtt, ELM327 over TCP"] = measure(naive.pid, args.seconds, naive_count)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    print(f"\nfootprint: 20 signals at 1 Hz, {args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up "
          f"({os.cpu_count()} cores)\n")
    print(f"{'process':58} {'RSS median':>11} {'RSS max':>9} {'CPU % core':>11} {'rate/s':>8}")
    for name, r in results.items():
        print(f"{name:58} {r['rss_median_mib']:>8.1f} MiB {r['rss_max_mib']:>5.1f} MiB "
              f"{r['cpu_pct_of_core']:>10.2f} {r['rate_per_s']:>8.1f}")
    agent = results["telltale-agent, SLCAN (CAN frames, ISO-TP in the agent)"]
    naive_r = results["naive: python-OBD + paho-mqtt, ELM327 over TCP"]
    print(f"\nnaive / agent (SLCAN): RSS x{naive_r['rss_median_mib'] / agent['rss_median_mib']:.1f}, "
          f"CPU x{naive_r['cpu_pct_of_core'] / max(agent['cpu_pct_of_core'], 1e-9):.1f}")
    print("goal: agent under 10 MiB resident and under 2 % of one core")
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()
