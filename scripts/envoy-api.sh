#!/usr/bin/env bash
# Builds Envoy's API as one FileDescriptorSet (.cache/envoy-api/envoy-api.binpb, which src/proto loads)
# from the go-control-plane module pinned in tools/envoy-api/go.mod: a tiny Go program imports every
# v3 package of the module and writes what those imports register. Nothing of it is committed.
#   scripts/envoy-api.sh [OUT]      (rebuilds only when tools/envoy-api is newer than OUT)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.cache/envoy-api/envoy-api.binpb}"
tool=tools/envoy-api
if [ -s "$out" ] && [ ! "$tool/go.mod" -nt "$out" ] && [ ! "$tool/main.go" -nt "$out" ]; then exit 0; fi
command -v go >/dev/null 2>&1 || { echo "envoy-api: Go is needed to build Envoy's API descriptors (see $tool/main.go)" >&2; exit 1; }
echo "envoy-api: building $out from $(grep -o 'go-control-plane/envoy v[0-9.]*' "$tool/go.mod")" >&2
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp "$tool/go.mod" "$tool/go.sum" "$tool/main.go" "$build/"
cd "$build"
# The import list is the module's own package list, so a new version's new filters come along.
{
  printf 'package main\n\nimport (\n'
  mod=github.com/envoyproxy/go-control-plane/envoy
  go mod download "$mod"
  dir="$(go list -m -f '{{.Dir}}' "$mod")"
  (cd "$dir" && find . -path '*/v3/*.pb.go' -printf '%h\n' | sort -u | sed "s|^\.|\t_ \"$mod|; s|\$|\"|")
  printf '\t_ "github.com/cncf/xds/go/xds/type/v3"\n\t_ "github.com/cncf/xds/go/udpa/type/v1"\n)\n'
} >imports.go
go build -o envoy-api .
cd - >/dev/null
mkdir -p "$(dirname "$out")"
"$build/envoy-api" >"$out.tmp"
mv "$out.tmp" "$out"
