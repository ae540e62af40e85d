# Shared helpers for the QEMU guest tests; sourced, not run.
#
# ensure_packages installs Debian packages that are missing (apt-get update once, then install),
# or stops with a message naming them. It never skips silently: a caller that cannot get its
# packages fails.

qemu_die() { printf '%s: %s\n' "${QEMU_PROG:-tests/qemu}" "$*" >&2; exit "${QEMU_DIE_CODE:-126}"; }
qemu_say() { printf '%s: %s\n' "${QEMU_PROG:-tests/qemu}" "$*" >&2; }

# ensure_packages PKG...: each PKG must be installed (dpkg status "install ok installed").
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null \
    || qemu_die "missing Debian packages: ${missing[*]}; no apt-get here to install them (install them by hand)"
  [ "$(id -u)" = 0 ] \
    || qemu_die "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
  qemu_say "installing missing packages: ${missing[*]}"
  if [ -z "${QEMU_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
      || qemu_die "apt-get update failed; cannot install: ${missing[*]}"
    export QEMU_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || qemu_die "apt-get install failed; missing packages: ${missing[*]}"
  for p in "${missing[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
      || qemu_die "package $p still not installed after apt-get install"
  done
}
