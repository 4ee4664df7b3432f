#!/usr/bin/env bash
# Runs every unit and integration test, then the shim's and the CRI end-to-end tests a
# second time against containerd 2.x (the first run uses the system's containerd 1.6),
# and prints one closing line that sums all test binaries ("N passed, N failed"), since
# cargo ends with the (empty) doc-test run.
set -uo pipefail
cd "$(dirname "$0")/.."

containerd2=/var/cache/youki-shim/containerd-sid/usr/bin
log=$(mktemp /tmp/youki-test.XXXXXX)
trap 'rm -f "$log"' EXIT

cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# The shim's tests and the CRI tests (tests/e2e_cri.rs, which write a `version = 3`
# config for containerd 2.x).
shim_tests=()
for f in tests/e2e_shim*.rs tests/e2e_cri.rs; do
    shim_tests+=(--test "$(basename "$f" .rs)")
done
if [ ! -x "$containerd2/containerd" ]; then
    echo "test: $containerd2/containerd missing: run scripts/setup.sh" | tee -a "$log"
    echo "test result: FAILED. 0 passed; 1 failed;" >> "$log"
    status=1
else
    echo "== shim end-to-end tests against $("$containerd2/containerd" --version)"
    PATH="$containerd2:$PATH" cargo test --no-fail-fast "${shim_tests[@]}" 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
fi

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
