#!/usr/bin/env bash
# Fetches a newer containerd from Debian's own archive into a private directory, without
# touching the system's sources or installing anything:
#   scripts/fetch-containerd.sh SUITE DEST     e.g. sid /var/cache/youki-shim/containerd-sid
# SUITE is a Debian suite (trixie: containerd 1.7, sid: containerd 2.x). Prints the
# directory holding containerd and ctr. Does nothing if DEST already has them.
set -euo pipefail

suite=${1:?usage: fetch-containerd.sh SUITE DEST}
dest=${2:?usage: fetch-containerd.sh SUITE DEST}
bin=$dest/usr/bin
if [ -x "$bin/containerd" ] && [ -x "$bin/ctr" ]; then
    echo "$bin"
    exit 0
fi

work=$(mktemp -d /tmp/fetch-containerd.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$dest"
cat > "$work/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
SOURCES
apt_opts=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=-"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work/cache"
    -o "APT::Get::List-Cleanup=0"
    -q
)
apt-get "${apt_opts[@]}" update >&2
(cd "$work" && apt-get "${apt_opts[@]}" download containerd >&2)
deb=$(ls "$work"/containerd_*.deb)
dpkg -x "$deb" "$dest"
[ -x "$bin/containerd" ] && [ -x "$bin/ctr" ] || {
    echo "fetch-containerd: $deb has no containerd/ctr in usr/bin" >&2
    exit 1
}
echo "$bin"
