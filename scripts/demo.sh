#!/usr/bin/env bash
# `make demo`: runs a busybox container with the youki CLI (release build) and
# shows its output. Needs root. YOUKI_BIN overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

youki=${YOUKI_BIN:-target/x86_64-unknown-linux-gnu/release/youki}
[ -x "$youki" ] || { echo "demo: $youki not built (cargo build --release)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (containers need namespaces, mounts, cgroups)" >&2; exit 1; }

work=$(mktemp -d /tmp/youki-demo.XXXXXX)
id=youki-demo-$$
cleanup() {
    "$youki" --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

CGROUPS_PATH=/youki-demo-$$ HOSTNAME_IN=youki-demo \
    scripts/mkbundle.sh "$work/bundle" sh -c \
    'echo "Hello from a youki container: hostname $(hostname), pid $$, uid $(id -u), $(ls /bin | wc -l) busybox applets"'

echo "+ $youki --root $work/state run --bundle $work/bundle $id"
"$youki" --root "$work/state" run --bundle "$work/bundle" "$id"
echo "demo: the container ran and exited 0"

# The main job: the same busybox through containerd with our shim
# (ctr run --runtime io.containerd.youki.v2), no runtime binary executed per operation.
scripts/shim-demo.sh
