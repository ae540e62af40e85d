#!/usr/bin/env bash
# End-to-end test on a real kernel CAN stack: firmware-sim and telltale over vcan0 in the QEMU
# guest, checked on the host.
#
#   tests/qemu/socketcan.sh TARGET_DIR        (e.g. target/release, after cargo build --release)
#
# In the guest: `firmware-sim socketcan vcan0 --scenario catalyst &`; once the scenario has set
# its codes, `telltale scan --link socketcan:vcan0 --json` runs info, pids 0C 0D 05, pids 01,
# dtcs, freeze, clear --yes, then pids 01 and dtcs again; each output is printed between
# ==TELLTALE-JSON-BEGIN/END== markers. On the host, socketcan_check.py extracts the blocks (kept
# in $SOCKETCAN_OUT, default TARGET_DIR/qemu-socketcan/) and checks VIN, live PIDs, P0420
# stored, the freeze frame's trigger, and that clearing empties the stored codes and resets
# readiness.
#
# The CLI was being written at the same time as this script; what it assumes is in one place,
# overridable from the environment:
#   SIM_ARGS     firmware-sim's arguments      (default: socketcan vcan0 --scenario catalyst)
#   SCAN_ARGS    telltale's arguments before the query (default: scan --link socketcan:vcan0 --json)
#   SIM_SETTLE   seconds to let the scenario run before the first query (default 20)
#   SIM_WAIT     then up to this many seconds of polling `dtcs` until P0420 shows (default 120)
#   QEMU_TIMEOUT the whole guest run (default 600)
# If the repository has firmware-sim/scenarios/, it is copied to /work/scenarios in the guest
# (the working directory there is /work).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
QEMU_PROG=socketcan.sh
QEMU_DIE_CODE=1
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
self_test=0
if [ "$1" = --self-test ]; then
  # The harness and the checks against stand-ins (tests/qemu/fake/) that print the assumed JSON.
  self_test=1
  target=$here/fake
  SIM_SETTLE=${SIM_SETTLE:-1}
  SOCKETCAN_OUT=${SOCKETCAN_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/qemu-socketcan.XXXXXX")}
else
  target=$1
fi
for b in firmware-sim telltale; do
  [ -x "$target/$b" ] || qemu_die "$target/$b not found or not executable (cargo build --release first)"
done
command -v python3 >/dev/null || qemu_die "python3 is needed on the host for the checks"

SIM_ARGS=${SIM_ARGS:-socketcan vcan0 --scenario catalyst}
SCAN_ARGS=${SCAN_ARGS:-scan --link socketcan:vcan0 --json}
SIM_SETTLE=${SIM_SETTLE:-20}
SIM_WAIT=${SIM_WAIT:-120}
out=${SOCKETCAN_OUT:-$target/qemu-socketcan}
mkdir -p "$out"
t0=$EPOCHREALTIME

extra=()
[ -d "$repo/firmware-sim/scenarios" ] && extra+=(--file "$repo/firmware-sim/scenarios:/work/scenarios")

cat >"$out/guest.sh" <<EOF
export RUST_BACKTRACE=1
echo "== firmware-sim $SIM_ARGS"
firmware-sim $SIM_ARGS >/tmp/sim.log 2>&1 &
sim=\$!
sim_alive() {
  kill -0 \$sim 2>/dev/null && return 0
  echo "firmware-sim exited early; its log:"; cat /tmp/sim.log; return 1
}
scan() { timeout 60 telltale $SCAN_ARGS "\$@"; }
block() { # block NAME ARGS...: one command's output between markers, stderr after them
  name=\$1; shift
  echo "==TELLTALE-JSON-BEGIN \$name=="
  scan "\$@" 2>/tmp/err.\$name
  rc=\$?
  echo
  echo "==TELLTALE-JSON-END \$name rc=\$rc=="
  if [ -s /tmp/err.\$name ]; then echo "-- stderr of \$name:"; cat /tmp/err.\$name; fi
}

sleep $SIM_SETTLE
sim_alive || exit 1
echo "== waiting up to ${SIM_WAIT}s for P0420"
n=0
until scan dtcs 2>/dev/null | grep -q P0420; do
  n=\$((n + 2))
  [ \$n -le $SIM_WAIT ] || { echo "P0420 did not show within ${SIM_WAIT}s"; break; }
  sim_alive || exit 1
  sleep 2
done

block info info
block pids pids 0C 0D 05
block pids01_before pids 01
block dtcs dtcs
block freeze freeze
block clear clear --yes
block pids01_after pids 01
block dtcs_after_clear dtcs
sim_alive || exit 1
kill \$sim
echo "-- firmware-sim log (last 40 lines):"
tail -n 40 /tmp/sim.log
EOF

set +e
"$here/guest-run" --timeout "${QEMU_TIMEOUT:-600}" --log "$out/console.log" "${extra[@]}" \
  --bin "$target/firmware-sim" "$target/telltale" -- "$out/guest.sh"
rc=$?
set -e
[ "$rc" = 0 ] || qemu_die "FAILED: the guest run exited with $rc (console: $out/console.log)"

echo
echo "== checks (JSON kept in $out)"
python3 "$here/socketcan_check.py" "$out/console.log" "$out" \
  || qemu_die "FAILED: see the checks above and $out/console.log"
if [ "$self_test" = 1 ]; then
  # The checks must be able to fail: a wrong VIN check digit and a code left after clearing.
  sed -e 's/WVWZZZ1K30W386752/WVWZZZ1K40W386752/' "$out/console.log" >"$out/bad-vin.log"
  awk '/BEGIN dtcs_after_clear/{x=1} x&&/"stored":\[\]/{sub(/"stored":\[\]/,"\"stored\":[\"P0420\"]")} {print}' \
    "$out/console.log" >"$out/bad-clear.log"
  for bad in bad-vin bad-clear; do
    if python3 "$here/socketcan_check.py" "$out/$bad.log" >"$out/$bad.out" 2>&1; then
      qemu_die "FAILED: the checks passed on $out/$bad.log, which they must reject"
    fi
    grep FAIL: "$out/$bad.out" | sed "s/^/self-test $bad rejected as expected: /"
  done
fi
printf 'socketcan: PASS in %s s\n' "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')"
