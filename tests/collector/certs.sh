#!/bin/sh
# Make test TLS material with openssl in OUTDIR (made if missing; files overwritten):
#   ca.crt ca.key                  test CA
#   server.crt server.key          server certificate for localhost, 127.0.0.1 and ::1 (SAN), by ca
#   client.crt client.key          client certificate (clientAuth), by ca
#   other-ca.crt other-ca.key      a second, unrelated CA ("wrong CA is refused")
#   other-client.crt other-client.key  client certificate by the other CA
# EC P-256 keys (fast to make), valid 10 years. For tests only: keys are world-readable.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
command -v openssl >/dev/null || { echo "$0: openssl not found (apt-get install openssl)" >&2; exit 1; }
out=$1
mkdir -p "$out"
cd "$out"
umask 077

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

ca() { # name subject
	newkey "$1.key"
	openssl req -new -x509 -key "$1.key" -out "$1.crt" -days 3650 -subj "$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash"
}

leaf() { # name ca subject extensions
	newkey "$1.key"
	openssl req -new -key "$1.key" -out "$1.csr" -subj "$3"
	printf '%s\n' "basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature,keyEncipherment" \
		"authorityKeyIdentifier=keyid" "$4" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -out "$1.crt" -days 3650 \
		-set_serial "0x$(openssl rand -hex 8)" -extfile "$1.ext" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=cln-otlp test CA"
ca other-ca "/CN=cln-otlp unrelated test CA"
leaf server ca "/CN=localhost" \
	"subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth"
leaf client ca "/CN=cln-otlp test client" "extendedKeyUsage=clientAuth"
leaf other-client other-ca "/CN=cln-otlp unrelated client" "extendedKeyUsage=clientAuth"
chmod 644 ./*.crt ./*.key # test material: readable by a daemon that dropped privileges
