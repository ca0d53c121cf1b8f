#!/usr/bin/env bash
# The test command: installs what the tests need (npm packages, Envoy, PostgreSQL, Redis, the Helm
# tools), then runs every test file with Node's runner: one progress line per file on the terminal
# and a summary of every failure at the end; the full TAP output goes to test-results.tap.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --services
# helm and kubeconform for the Helm chart's tests: built once from the Go module proxy, then cached.
if ! bash scripts/helm-check.sh --tools; then
  echo "test: could not build the Helm tools (needs Go); the Helm chart's tests will say so" >&2
fi
if [ "$#" -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
export PORTICO_TEST_FILE_COUNT=${#files[@]}
echo "test: ${#files[@]} file(s); full output (TAP) in test-results.tap"
rc=0
# Two files at a time (TEST_CONCURRENCY=1: one): every control plane, Envoy, PostgreSQL and Redis a test
# starts listens on a port reserved across test processes (test/support/components.ts freePort).
node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-timeout="${TEST_TIMEOUT_MS:-600000}" \
  --test-reporter=./test/support/reporter.mjs --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination=test-results.tap \
  "${files[@]}" || rc=$?
[ "$rc" = 0 ] || echo "test: failed (exit $rc); every test's output is in test-results.tap"
exit "$rc"
