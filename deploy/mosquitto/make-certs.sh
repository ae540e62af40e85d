#!/usr/bin/env bash
# Makes a private CA, a broker certificate and one client certificate per device, for mutual TLS
# between telltale-agent and Mosquitto. For tests and first deployments; a fleet should issue
# device certificates from its own PKI (the device id must be the certificate's common name,
# because the broker's ACL uses it as the user name).
#
#   deploy/mosquitto/make-certs.sh OUT_DIR BROKER_HOST DEVICE_ID...
#
# Writes OUT_DIR/ca.{key,crt}, OUT_DIR/broker.{key,crt} (valid for BROKER_HOST, localhost and
# 127.0.0.1) and OUT_DIR/<device>.{key,crt}. Keys are EC P-256; nothing is overwritten.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 OUT_DIR BROKER_HOST [DEVICE_ID...]" >&2
  exit 2
fi
command -v openssl >/dev/null || { echo "$0: openssl not found: apt-get install openssl" >&2; exit 1; }
out=$1; host=$2; shift 2
mkdir -p "$out"
umask 077
days=825

key() { [ -e "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -e "$out/ca.crt" ]; then
  key "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/O=Telltale/CN=Telltale test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.crt"
fi

# sign NAME SUBJECT EXTFILE_CONTENT
sign() {
  local name=$1 subj=$2 ext=$3
  [ -e "$out/$name.crt" ] && return 0
  key "$out/$name.key"
  openssl req -new -key "$out/$name.key" -subj "$subj" -out "$out/$name.csr"
  printf '%s\n' "$ext" > "$out/$name.ext"
  openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days "$days" -sha256 -extfile "$out/$name.ext" -out "$out/$name.crt" 2>/dev/null
  rm -f "$out/$name.csr" "$out/$name.ext"
}

san="DNS:$host,DNS:localhost,IP:127.0.0.1"
sign broker "/O=Telltale/CN=$host" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"

for dev in "$@"; do
  case $dev in
    *[!A-Za-z0-9._-]*|"") echo "$0: bad device id '$dev' (A-Z a-z 0-9 . _ -)" >&2; exit 2 ;;
  esac
  sign "$dev" "/O=Telltale/CN=$dev" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
done
chmod 644 "$out"/*.crt
echo "certificates in $out: ca.crt broker.crt $(printf '%s.crt ' "$@")"
