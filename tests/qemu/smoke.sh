#!/usr/bin/env bash
# Smoke test of the QEMU CAN guest with can-utils, before our own binaries exist.
#
#   tests/qemu/smoke.sh
#
# In the guest: candump on vcan0 sees frames that cansend puts there (11- and 29-bit IDs);
# isotpsend/isotprecv move a 20-byte PDU over the kernel's can-isotp (first frame, flow control,
# consecutive frames, all seen by candump); and mosquitto_pub reaches the host's Mosquitto at
# 10.0.2.2:1883, where a mosquitto_sub on the host must receive the message. Needs Mosquitto on
# the host at 127.0.0.1:1883; fails (never skips) when it or a package is missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QEMU_PROG=smoke.sh
# shellcheck source=lib.sh
. "$here/lib.sh"

t0=$EPOCHREALTIME
ensure_packages can-utils mosquitto-clients
QEMU_DIE_CODE=1

(exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null \
  || qemu_die "no MQTT broker on 127.0.0.1:1883 (start mosquitto: the guest's network check needs it)"

work=$(mktemp -d "${TMPDIR:-/tmp}/qemu-smoke.XXXXXX")
sub_pid=""
cleanup() { [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

topic="telltale/qemu-smoke/$$-$RANDOM"
payload="hello-from-guest-$RANDOM"
mosquitto_sub -h 127.0.0.1 -p 1883 -t "$topic" -C 1 -W 300 >"$work/sub.out" 2>&1 &
sub_pid=$!

cat >"$work/guest.sh" <<EOF
set -e
fail() { echo "SMOKE-FAIL: \$*"; exit 1; }

echo "== raw CAN frames on vcan0"
candump -L vcan0 >/tmp/dump.log 2>&1 &
dump=\$!
sleep 1
cansend vcan0 7DF#0201000000000000
cansend vcan0 18DB33F1#0201000000000000

echo "== ISO-TP through the kernel's can-isotp"
timeout 20 isotprecv -s 7E0 -d 7E8 vcan0 >/tmp/isotp.out 2>&1 &
recv=\$!
sleep 1
echo "49 02 01 57 56 57 5A 5A 5A 31 4B 5A 36 57 30 30 30 30 30 31" | timeout 20 isotpsend -s 7E8 -d 7E0 vcan0 \
  || fail "isotpsend failed"
wait \$recv || fail "isotprecv failed: \$(cat /tmp/isotp.out)"
sleep 1
kill \$dump
cat /tmp/dump.log
echo "isotprecv got: \$(cat /tmp/isotp.out)"

grep -q ' vcan0 7DF#0201000000000000\$' /tmp/dump.log || fail "7DF frame not seen by candump"
grep -q ' vcan0 18DB33F1#0201000000000000\$' /tmp/dump.log || fail "29-bit frame not seen by candump"
grep -q ' vcan0 7E8#1014490201575657\$' /tmp/dump.log || fail "ISO-TP first frame not seen"
grep -q ' vcan0 7E0#30' /tmp/dump.log || fail "ISO-TP flow control not seen"
grep -q ' vcan0 7E8#21' /tmp/dump.log || fail "ISO-TP consecutive frame not seen"
[ "\$(tr -s ' \n' ' ' </tmp/isotp.out | sed 's/ *\$//')" = "49 02 01 57 56 57 5A 5A 5A 31 4B 5A 36 57 30 30 30 30 30 31" ] \
  || fail "ISO-TP payload differs: \$(cat /tmp/isotp.out)"

echo "== network: the host's Mosquitto at \$HOST_IP:1883"
mosquitto_pub -h "\$HOST_IP" -p 1883 -t "$topic" -m "$payload" -q 1 || fail "mosquitto_pub to \$HOST_IP:1883 failed"
echo "SMOKE-GUEST-OK"
EOF

set +e
"$here/guest-run" --net --timeout 300 --log "$work/console.log" \
  --bin /usr/bin/candump /usr/bin/cansend /usr/bin/isotpsend /usr/bin/isotprecv /usr/bin/mosquitto_pub \
  -- "$work/guest.sh"
rc=$?
set -e
[ "$rc" = 0 ] || qemu_die "FAILED: the guest run exited with $rc"

wait "$sub_pid" || true
sub_pid=""
got=$(cat "$work/sub.out")
[ "$got" = "$payload" ] || qemu_die "FAILED: the host's mosquitto_sub did not get '$payload' from the guest (got: '$got')"

printf '\nsmoke: PASS (CAN frames, ISO-TP, guest->host MQTT) in %s s\n' \
  "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')"
