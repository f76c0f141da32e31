#!/usr/bin/env bash
# Makes a throwaway certificate authority and a server certificate signed by it, for TLS tests and
# local trials (never for production: the CA key sits next to the certificates).
#
# usage: scripts/make_test_certs.sh DIR [HOSTNAME]
#   DIR/ca.pem, DIR/ca.key          the test CA (give ca.pem to dbctl --ca-cert)
#   DIR/server.pem, DIR/server.key  dreamboothd --tls-cert / --tls-key; valid for localhost,
#                                   127.0.0.1, ::1 and HOSTNAME when given; 30 days
set -euo pipefail
if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  [[ $# -ge 1 ]] && exit 0 || exit 2
fi
DIR="$1"
HOST="${2:-}"
mkdir -p "$DIR"
cd "$DIR"
SAN="DNS:localhost,IP:127.0.0.1,IP:::1"
[[ -n "$HOST" ]] && SAN="$SAN,DNS:$HOST"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj "/CN=dreambooth test CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=${HOST:-localhost}" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$SAN" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 600 ca.key server.key
echo "test CA and server certificate in $DIR (SAN $SAN)"
