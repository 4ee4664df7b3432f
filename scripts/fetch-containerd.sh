#!/usr/bin/env bash
# Fetches a newer containerd from Debian's own archive into a private directory, without
# touching the system's sources or installing anything:
#   scripts/fetch-containerd.sh SUITE DEST     e.g. sid /var/cache/youki-shim/containerd-sid
# SUITE is a Debian suite (trixie: containerd 1.7, sid: containerd 2.x). Prints the
# directory holding containerd and ctr. Does nothing if DEST already has them.
# (scripts/fetch-deb.sh does the fetching, from the archive the system's apt sources name.)
set -euo pipefail

suite=${1:?usage: fetch-containerd.sh SUITE DEST}
dest=${2:?usage: fetch-containerd.sh SUITE DEST}
bin=$dest/usr/bin
if [ -x "$bin/containerd" ] && [ -x "$bin/ctr" ]; then
    echo "$bin"
    exit 0
fi

"$(dirname "$0")/fetch-deb.sh" "$suite" "$dest" containerd
if [ ! -x "$bin/containerd" ] || [ ! -x "$bin/ctr" ]; then
    echo "fetch-containerd: the containerd package of $suite has no containerd/ctr in usr/bin" >&2
    exit 1
fi
echo "$bin"
