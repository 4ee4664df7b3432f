#!/usr/bin/env bash
# Docker (dockerd and the docker client) from Debian's own archive, runnable here, for the
# Docker end-to-end tests (tests/e2e_docker.rs) and the bench:
#   scripts/fetch-docker.sh SUITE DEST       e.g. sid /var/cache/youki-shim/docker-sid
# sid's docker.io (28.x) is linked against sid's glibc: the suite's docker.io, docker-cli,
# libc6 and libsystemd0 (dockerd's only other library) are unpacked into DEST
# (scripts/fetch-deb.sh), and copies of the binaries, DEST/bin/dockerd and DEST/bin/docker,
# are pointed at that glibc with patchelf (interpreter and rpath DEST/usr/lib/x86_64-linux-gnu).
# Nothing is installed and no service starts. Prints DEST/bin. Does nothing when the
# binaries are there and run.
set -euo pipefail

die() {
    echo "fetch-docker: $*" >&2
    exit 1
}

suite=${1:?usage: fetch-docker.sh SUITE DEST}
dest=${2:?usage: fetch-docker.sh SUITE DEST}
bin=$dest/bin
if [ -x "$bin/dockerd" ] && [ -x "$bin/docker" ] \
    && "$bin/dockerd" --version >/dev/null 2>&1 && "$bin/docker" --version >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi
command -v patchelf >/dev/null || die "patchelf not found: install Debian's patchelf (scripts/setup.sh)"

case $dest in
/ | /usr | /var | /var/cache | "") die "refusing DEST=$dest" ;;
esac
rm -rf "$dest"
"$(dirname "$0")/fetch-deb.sh" "$suite" "$dest" docker.io docker-cli libc6 libsystemd0
lib=$dest/usr/lib/x86_64-linux-gnu
for f in "$dest/usr/sbin/dockerd" "$dest/usr/bin/docker" "$lib/ld-linux-x86-64.so.2" "$lib/libc.so.6" "$lib/libsystemd.so.0"; do
    [ -e "$f" ] || die "$f missing after unpacking $suite's docker.io, docker-cli, libc6, libsystemd0"
done
mkdir -p "$bin"
for f in "$dest/usr/sbin/dockerd" "$dest/usr/bin/docker"; do
    name=$(basename "$f")
    cp "$f" "$bin/$name.tmp"
    patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --set-rpath "$lib" "$bin/$name.tmp"
    mv "$bin/$name.tmp" "$bin/$name"
    "$bin/$name" --version >/dev/null || die "$bin/$name does not run"
done
echo "$bin"
