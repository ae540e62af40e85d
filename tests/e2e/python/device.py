"""A dongle written by someone else: paho-mqtt publishing agent-shaped protobuf messages, built
with the Python classes grpc_tools compiled from proto/telltale/v1, on the topics of
crates/wire/src/topic.rs. It connects with its device id as the client id and a last will
(status OFFLINE, retained), says it is online, sends its vehicle info, telemetry, a pending
then a confirmed trouble code, sends one message again (as after a lost PUBACK) and one that
claims another device's name, then loses power: the socket closes without DISCONNECT, so the
broker publishes the will.

Run by tests/e2e/tests/python_peers.rs with a real Mosquitto and telltale-ingest; the test
then reads what the ingest stored. The last line of stdout is a JSON summary of what was sent.
"""

import argparse
import os
import time

import paho.mqtt.client as mqtt

from checks import check, expect_equal, report
from telltale.v1 import vehicle_pb2 as v1

ENGINE = 0x7E8
TIMEOUT = 20  # seconds, for the connection and every PUBACK


def topic(device, kind):
    return f"telltale/v1/{device}/{kind}"


class Device:
    def __init__(self, args):
        self.id = args.device
        self.vin = args.vin
        self.boot = os.urandom(16)
        self.seq = 0
        self.sent = []
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.id, protocol=mqtt.MQTTv311
        )
        will = v1.Status(header=self.header(0), presence=v1.PRESENCE_OFFLINE)
        self.client.will_set(topic(self.id, "status"), will.SerializeToString(), qos=1, retain=True)
        self.client.connect("127.0.0.1", args.port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + TIMEOUT
        while not self.client.is_connected():
            check(time.monotonic() < deadline, "connected to the broker", args.port)
            time.sleep(0.02)

    def header(self, seq, device=None):
        return v1.UplinkHeader(
            device_id=device or self.id,
            boot_id=self.boot,
            seq=seq,
            created_unix_ms=int(time.time() * 1000),
        )

    def next_header(self):
        """The header of the next spooled message: seq counts up from 1 in each boot."""
        self.seq += 1
        return self.header(self.seq)

    def publish(self, kind, message, retain=False, device=None):
        """Publishes at QoS 1 and waits for the broker's PUBACK."""
        info = self.client.publish(
            topic(device or self.id, kind), message.SerializeToString(), qos=1, retain=retain
        )
        expect_equal(info.rc, mqtt.MQTT_ERR_SUCCESS, f"{kind}: queued")
        info.wait_for_publish(timeout=TIMEOUT)
        check(info.is_published(), f"{kind}: PUBACK within {TIMEOUT} s", info.rc)
        seq = message.header.seq
        self.sent.append({"kind": kind, "seq": seq})
        return message

    def power_cut(self):
        """The socket closes under the session: no DISCONNECT, so the will goes out."""
        self.client.loop_stop()
        self.client.socket().close()


def telemetry(car, now):
    """A batch of three mode 01 samples from the engine: two numbers and one text."""
    sample = lambda signal, pid, value, unit="", text="": v1.Sample(
        signal=signal,
        value=value,
        device_unix_ms=now,
        service=1,
        pid=pid,
        ecu_can_id=ENGINE,
        unit=unit,
        text=text,
    )
    return v1.TelemetryBatch(
        header=car.next_header(),
        vin=car.vin,
        samples=[
            sample("Vehicle.Speed", 0x0D, 87.5, "km/h"),
            sample("Vehicle.Powertrain.CombustionEngine.Speed", 0x0C, 2150.25, "rpm"),
            sample("obd.fuel_system_status", 0x03, 0, text="closed loop"),
        ],
    )


def dtc_report(car, now, current, appeared, mil, frame=None):
    return v1.DtcReport(
        header=car.next_header(),
        vin=car.vin,
        device_unix_ms=now,
        ecus=[
            v1.EcuDtcs(
                ecu_can_id=ENGINE,
                mil_on=mil,
                current=current,
                appeared=appeared,
                freeze_frame=frame,
            )
        ],
        distance_since_cleared_km=1234.5,
        warmups_since_cleared=12,
        odometer_km=48210.0,
        reason=v1.DTC_REPORT_REASON_CHANGED,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", required=True, type=int, help="the broker's port on 127.0.0.1")
    p.add_argument("--device", required=True, help="the device id (MQTT client id)")
    p.add_argument("--vin", required=True, help="the car's VIN")
    args = p.parse_args()
    car = Device(args)
    now = int(time.time() * 1000)

    car.publish(
        "status",
        v1.Status(
            header=car.header(0),
            presence=v1.PRESENCE_ONLINE,
            agent_version="paho-dongle/1.0",
            link_state="up",
            vehicle_awake=True,
        ),
        retain=True,
    )
    car.publish(
        "info",
        v1.VehicleInfo(
            header=car.next_header(),
            vin=car.vin,
            ecus=[
                v1.EcuInfo(
                    can_id=ENGINE,
                    name="ECM-EngineControl",
                    supported_pids=[0x03, 0x0C, 0x0D],
                    calibration_ids=["PY-CAL-0001"],
                )
            ],
            link="elm327:/dev/rfcomm0",
            agent_version="paho-dongle/1.0",
        ),
    )
    first = car.publish("telemetry", telemetry(car, now))
    pending = v1.Dtc(code="P0420", kind=v1.DTC_KIND_PENDING)
    stored = v1.Dtc(code="P0420", kind=v1.DTC_KIND_STORED)
    car.publish("dtc", dtc_report(car, now + 1000, [pending], [pending], mil=False))
    frame = v1.FreezeFrame(
        trigger_code="P0420",
        values=[v1.FreezeFrameValue(signal="Vehicle.Speed", pid=0x0D, value=64.0, unit="km/h")],
    )
    car.publish(
        "dtc", dtc_report(car, now + 2000, [pending, stored], [stored], mil=True, frame=frame)
    )
    # The first telemetry batch again, byte for byte, as a dongle resends after a lost PUBACK.
    car.publish("telemetry", first)
    car.publish("telemetry", telemetry(car, now + 3000))
    # A message on this device's topic whose header names another device.
    stray = v1.TelemetryBatch(header=car.header(99, device="someone-else"), vin=car.vin)
    car.publish("telemetry", stray)
    car.power_cut()
    report(
        {"boot_id": car.boot.hex(), "sent": car.sent, "device_unix_ms": now, "last_seq": car.seq}
    )


if __name__ == "__main__":
    main()
