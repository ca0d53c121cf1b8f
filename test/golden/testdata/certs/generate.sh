#!/usr/bin/env bash
# Test-only certificates for the golden cases, generated once and committed (never used outside tests).
# A CA, a server certificate for *.example.com and a client certificate, all EC P-256, valid 100 years.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days $days -subj '/CN=Portico Test CA' -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out server.key
openssl req -new -key server.key -subj '/CN=api.example.com' -out server.csr
printf 'subjectAltName=DNS:api.example.com,DNS:*.example.com\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days $days -extfile server.ext -out server.pem
openssl ecparam -name prime256v1 -genkey -noout -out client.key
openssl req -new -key client.key -subj '/CN=portico-gateway' -out client.csr
printf 'subjectAltName=URI:spiffe://example.com/portico-gateway\nextendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days $days -extfile client.ext -out client.pem
# PKCS#8 keys, the form the model stores.
for k in server client; do openssl pkcs8 -topk8 -nocrypt -in $k.key -out $k.key.tmp && mv $k.key.tmp $k.key; done
rm -f server.csr client.csr server.ext client.ext ca.srl ca.key
