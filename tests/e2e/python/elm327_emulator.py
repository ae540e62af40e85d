"""Runs the PyPI ELM327-emulator (Ircama) as a Wi-Fi OBD dongle on 127.0.0.1:PORT, in its
default `car` scenario, with trouble codes set through the lists its `obd_message` module
documents for that purpose (DTC_STORED for mode 03, DTC_PENDING for 07, DTC_PERMANENT for 0A;
two bytes of SAE J2012 each, '0420' is P0420). Prints `listening` once the port accepts
connections, then serves until killed.

    elm327_emulator.py PORT STORED PENDING PERMANENT    (comma-separated lists, may be empty)
"""

import socket
import sys
import threading
import time

from elm import obd_message
from elm.interpreter import main


def codes(arg):
    return [c for c in arg.split(",") if c]


port = sys.argv[1]
obd_message.DTC_STORED[:] = codes(sys.argv[2])
obd_message.DTC_PENDING[:] = codes(sys.argv[3])
obd_message.DTC_PERMANENT[:] = codes(sys.argv[4])

# Daemon and batch mode together run the service in the foreground, logging to stderr.
sys.argv = ["elm", "-n", port, "-s", "car", "-d", "-b", "/dev/stderr"]
threading.Thread(target=main, daemon=True).start()

deadline = time.monotonic() + 20
while True:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=0.5).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise SystemExit(f"ELM327-emulator did not listen on port {port} within 20 s")
        time.sleep(0.1)
# The emulator points sys.stdout at its batch log (stderr here); the test reads stdout.
print("listening", file=sys.__stdout__, flush=True)
while True:
    time.sleep(3600)
