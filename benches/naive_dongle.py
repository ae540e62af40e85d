"""The naive way a dongle is often written, for the footprint benchmark to compare against:
python-OBD polls each PID in turn through an ELM327 and paho-mqtt publishes every reading as
JSON, QoS 1, with no spool. Run by benches/footprint.py; prints one line per second with the
number of readings so far.

    python naive_dongle.py ELM327_URL MQTT_PORT DEVICE_ID PID_HEX...
"""
import json
import sys
import time

import obd
import paho.mqtt.client as mqtt

url, port, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pids = [int(p, 16) for p in sys.argv[4:]]

obd.logger.setLevel("CRITICAL")
conn = obd.OBD(portstr=url, fast=False, timeout=0.5)
commands = [obd.commands[1][p] for p in pids]
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"naive-{device}")
client.connect("127.0.0.1", port)
client.loop_start()
readings = 0
next_tick = time.monotonic()
while True:
    for cmd in commands:
        r = conn.query(cmd)
        if r.is_null():
            continue
        v = r.value.magnitude if hasattr(r.value, "magnitude") else str(r.value)
        client.publish(f"naive/{device}/{cmd.name}", json.dumps({"t": time.time(), "v": v}), qos=1)
        readings += 1
    print(readings, flush=True)
    next_tick += 1.0
    time.sleep(max(0.0, next_tick - time.monotonic()))
