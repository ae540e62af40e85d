"""Reads a vehicle through an ELM327 with python-OBD and prints what it got as one JSON line.

Usage: read_vehicle.py PORT [DEBUG_LOG]

PORT is anything pyserial's serial_for_url opens: a device path (/dev/pts/N or a symlink to
it) or socket://HOST:PORT. python-OBD's debug log (its whole conversation with the adapter)
goes to DEBUG_LOG when given. The Rust test `firmware-sim/tests/python_obd.rs` runs this and
asserts on the JSON; this script only reports, it judges nothing.
"""

import json
import logging
import sys

import obd


def magnitude(response):
    """A pint quantity as a plain number, or None."""
    if response.is_null():
        return None
    value = response.value
    return getattr(value, "magnitude", value)


def main():
    port = sys.argv[1]
    if len(sys.argv) > 2:
        handler = logging.FileHandler(sys.argv[2], mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        obd.logger.addHandler(handler)
        obd.logger.setLevel(logging.DEBUG)

    connection = obd.OBD(portstr=port, fast=False, timeout=0.5)
    result = {
        "status": connection.status(),
        "protocol_id": connection.protocol_id(),
        "protocol_name": connection.protocol_name(),
        "supported": sorted(c.name for c in connection.supported_commands),
    }
    if connection.is_connected():
        # Forced: on the older buses python-OBD 0.7.3 reads the 09 00 bitmap one byte off
        # (it keeps the message-number byte `49 00 01` carries there), so it may think the
        # VIN unsupported. On CAN it is supported anyway.
        vin = connection.query(obd.commands.VIN, force=True)
        # The message as reassembled (python-OBD pads it to the 22 bytes it expects).
        result["vin_raw"] = bytes(vin.messages[0].data).hex() if vin.messages else None
        result["vin"] = None if vin.is_null() else (
            vin.value.decode("ascii", "replace") if isinstance(vin.value, (bytes, bytearray))
            else str(vin.value))
        result["rpm"] = magnitude(connection.query(obd.commands.RPM))
        result["speed_kph"] = magnitude(connection.query(obd.commands.SPEED))
        result["coolant_c"] = magnitude(connection.query(obd.commands.COOLANT_TEMP))
        result["voltage"] = magnitude(connection.query(obd.commands.ELM_VOLTAGE))
        dtcs = connection.query(obd.commands.GET_DTC)
        result["dtcs"] = None if dtcs.is_null() else [code for code, _ in dtcs.value]
        pending = connection.query(obd.commands.GET_CURRENT_DTC)
        result["pending_dtcs"] = None if pending.is_null() else [code for code, _ in pending.value]
        status = connection.query(obd.commands.STATUS)
        result["mil"] = None if status.is_null() else bool(status.value.MIL)
        result["dtc_count"] = None if status.is_null() else status.value.DTC_count
    connection.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
