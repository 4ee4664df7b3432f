#!/usr/bin/env bash
# Builds the pod sandbox's pause program as one static binary:
#   images/pause/build.sh OUT
# Needs gcc and libc6-dev (scripts/debian-packages.txt). CC overrides gcc.
set -euo pipefail
out=${1:?usage: images/pause/build.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-gcc}
command -v "$cc" >/dev/null || { echo "pause: $cc not found: install gcc and libc6-dev (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
"$cc" -static -Os -s -Wall -Wextra -Werror -o "$out.tmp" "$here/pause.c"
mv "$out.tmp" "$out"
