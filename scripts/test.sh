#!/usr/bin/env bash
# Runs every unit and integration test, then prints one closing line that sums all test
# binaries ("N passed, N failed"), since cargo ends with the (empty) doc-test run.
set -uo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp /tmp/youki-test.XXXXXX)
trap 'rm -f "$log"' EXIT
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
