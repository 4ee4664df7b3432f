#!/usr/bin/env bash
# Debian's stock kernel for the pure cgroup v2 test VM (scripts/vm-test.sh):
#   scripts/vm/fetch-kernel.sh [CACHE]       CACHE defaults to /var/cache/youki-shim
# Finds the linux-image-6.x-amd64 package that the system suite's linux-image-amd64 depends
# on (through the system's own apt configuration: no private sources), downloads it with
# `apt-get download` and unpacks it with `dpkg-deb -x` into CACHE/linux-image-<version>/.
# Prints that directory. Does nothing (downloads nothing) when it is there already;
# removes older linux-image-* directories of CACHE when it fetches a newer one.
set -euo pipefail

cache=${1:-/var/cache/youki-shim}

die() {
    echo "vm/fetch-kernel: $*" >&2
    exit 1
}

command -v apt-cache >/dev/null || die "apt-cache not found (this script needs Debian's apt)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian's dpkg)"

# "linux-image-6.1.0-57-amd64" from the candidate linux-image-amd64's Depends.
image_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

pkg=$(image_package)
if [ -z "$pkg" ]; then
    echo "vm/fetch-kernel: linux-image-amd64 unknown to apt: apt-get update" >&2
    apt-get update -q >&2 || die "apt-get update failed"
    pkg=$(image_package)
fi
[ -n "$pkg" ] || die "apt-cache depends linux-image-amd64 names no linux-image-*-amd64 package (check the system's apt sources)"

dest=$cache/$pkg
if [ -f "$dest/.complete" ]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d /tmp/vm-fetch-kernel.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get download -q "$pkg" >&2); then
    # The lists may name a version the archive no longer has.
    apt-get update -q >&2 || die "apt-get update failed"
    (cd "$work" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed"
fi
deb=$(find "$work" -maxdepth 1 -name "${pkg}_*.deb" | head -n 1)
[ -n "$deb" ] || die "apt-get download $pkg left no .deb"
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x "$deb" "$dest"
ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1 || die "$deb has no boot/vmlinuz-*"
ls "$dest"/boot/config-* >/dev/null 2>&1 || die "$deb has no boot/config-*"
touch "$dest/.complete"
# Older kernels fetched by this script.
for old in "$cache"/linux-image-*-amd64; do
    if [ "$old" != "$dest" ] && [ -f "$old/.complete" ]; then
        rm -rf "$old"
    fi
done
echo "$dest"
