#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test file with Node's runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --services
if [ "$#" -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-1}" --test-timeout="${TEST_TIMEOUT_MS:-600000}" "${files[@]}"
