#!/usr/bin/env bash
# The agent on a real kernel CAN stack: telltale-agent in the QEMU guest reads firmware-sim on
# vcan0 through SocketCAN and publishes to a Mosquitto broker on the host (10.0.2.2 from the
# guest), which a subscriber on the host records.
#
#   tests/qemu/agent.sh TARGET_DIR        (e.g. "$CARGO_TARGET_DIR/release")
#
# TARGET_DIR must hold the release builds of firmware-sim and telltale-agent:
#   cargo build --release --locked -p firmware-sim -p telltale-agent --bins
#
# The host starts its own mosquitto on a free port (so the machine's broker is not needed and
# not disturbed) and `mosquitto_sub -v -F '%t %x'` on telltale/v1/#. In the guest:
# firmware-sim socketcan vcan0 --scenario catalyst, and telltale-agent with link
# socketcan:vcan0 and mqtt://10.0.2.2:PORT for AGENT_SECONDS; then its /status, a SIGTERM
# (graceful shutdown) and its log. On the host the checks want, from device qemu-car: a
# vehicle info message carrying the VIN the simulator serves, telemetry, a DTC report carrying
# P0420, the retained status, and a last status of presence OFFLINE after the shutdown; and
# /status saying connected, awake and an empty spool.
#
# Settings: SIM_TIME_SCALE (default 60: P0420 pending after ~5 s, stored after ~13 s),
# AGENT_SECONDS (default 40), AGENT_P2 (default 150ms, see socketcan.sh on TCG timing),
# QEMU_TIMEOUT (default 240). Needs mosquitto and mosquitto-clients on the host (installed when
# missing, as root). Fails, never skips: exit 1 for a failed check, 126 for missing packages.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QEMU_PROG=agent.sh
QEMU_DIE_CODE=1
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
target=$1
bins=("$target/firmware-sim" "$target/telltale-agent")
for b in "${bins[@]}"; do
  [ -x "$b" ] || qemu_die "$b not found; build with: cargo build --release --locked -p firmware-sim -p telltale-agent --bins"
done
QEMU_DIE_CODE=126 ensure_packages mosquitto mosquitto-clients
QEMU_DIE_CODE=1
t0=$EPOCHREALTIME

SIM_TIME_SCALE=${SIM_TIME_SCALE:-60}
AGENT_SECONDS=${AGENT_SECONDS:-40}
AGENT_P2=${AGENT_P2:-150ms}
out=${AGENT_OUT:-$target/qemu-agent}
rm -rf "$out"; mkdir -p "$out"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$out/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $out/mosquitto.log
EOF
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto_bin" -c "$out/mosquitto.conf" &
broker=$!
sub=
cleanup() { kill $broker ${sub:+$sub} 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do
  mosquitto_sub -h 127.0.0.1 -p "$port" -t probe -W 1 -C 1 >/dev/null 2>&1 && break
  [ $? = 27 ] && break   # 27: timed out waiting for a message, i.e. connected fine
  sleep 0.1
done
mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -i host-watch -t 'telltale/v1/#' -v -F '%t %r %x' >"$out/messages.txt" 2>"$out/sub.err" &
sub=$!
sleep 0.5
kill -0 $sub 2>/dev/null || qemu_die "mosquitto_sub did not start: $(cat "$out/sub.err")"

cat >"$out/guest.sh" <<EOF
PORT=$port
TIME_SCALE=$SIM_TIME_SCALE
SECONDS_TO_RUN=$AGENT_SECONDS
P2=$AGENT_P2
EOF
cat >>"$out/guest.sh" <<'EOF'
firmware-sim socketcan vcan0 --scenario catalyst --time-scale "$TIME_SCALE" >/tmp/sim.log 2>&1 &
sim=$!
mkdir -p /tmp/agent
cat >/tmp/agent.toml <<CONF
device_id = "qemu-car"
link = "socketcan:vcan0"
state_dir = "/tmp/agent"
[mqtt]
url = "mqtt://$HOST_IP:$PORT"
reconnect_min = "200ms"
status_period = "5s"
[obd]
p2 = "$P2"
batch_max_age = "2s"
[dtc]
period = "2s"
[status]
listen = "127.0.0.1:9465"
CONF
telltale-agent --config /tmp/agent.toml >/tmp/agent.log 2>&1 &
agent=$!
sleep "$SECONDS_TO_RUN"
echo "==STATUS-BEGIN=="
timeout 5 wget -q -O - http://127.0.0.1:9465/status
echo
echo "==STATUS-END=="
kill -TERM $agent
wait $agent
echo "AGENT-EXIT=$?"
kill $sim
echo "-- agent log:"; cat /tmp/agent.log
echo "-- sim log:"; cat /tmp/sim.log
EOF

set +e
"$here/guest-run" --net --timeout "${QEMU_TIMEOUT:-240}" --log "$out/console.log" \
  --bin "${bins[@]}" -- "$out/guest.sh"
rc=$?
set -e
sleep 1
kill $sub 2>/dev/null || true
[ "$rc" = 0 ] || qemu_die "FAILED: the guest run exited with $rc (console: $out/console.log)"

echo "== checks (outputs in $out)"
python3 "$here/agent_check.py" "$out" || qemu_die "FAILED: see the checks above"
printf 'agent: PASS in %s s\n' "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')"
