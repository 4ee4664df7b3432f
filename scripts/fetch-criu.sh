#!/usr/bin/env bash
# CRIU from Debian's own archive, runnable here, for checkpoint/restore (tests/checkpoint.rs):
#   scripts/fetch-criu.sh SUITE DEST       e.g. sid /var/cache/youki-shim/criu-sid
# bookworm's criu 3.17 fails `criu check` on this kernel; sid's 4.x passes it. It is linked
# against sid's glibc: the suite's criu, libc6 and every library criu loads (directly or
# through gnutls and nftables) are unpacked into DEST (scripts/fetch-deb.sh), and a copy of
# the binary, DEST/criu, is pointed at them with patchelf (interpreter and rpath
# DEST/usr/lib/x86_64-linux-gnu; an RPATH, not a RUNPATH, since only an RPATH also serves the
# libraries' own dependencies, such as gnutls's libunistring.so.5, which bookworm lacks).
# Nothing is installed. Prints DEST/criu. Does nothing when
# it is there and runs.
set -euo pipefail

die() {
    echo "fetch-criu: $*" >&2
    exit 1
}

suite=${1:?usage: fetch-criu.sh SUITE DEST}
dest=${2:?usage: fetch-criu.sh SUITE DEST}
criu=$dest/criu
if [ -x "$criu" ] && "$criu" --version >/dev/null 2>&1; then
    echo "$criu"
    exit 0
fi
command -v patchelf >/dev/null || die "patchelf not found: install Debian's patchelf (scripts/setup.sh)"

case $dest in
/ | /usr | /var | /var/cache | "") die "refusing DEST=$dest" ;;
esac
# DEST is replaced whole below: only an empty one or an earlier fetch of criu, never a
# directory that holds something else (a mistyped DEST).
if [ -n "$(ls -A "$dest" 2>/dev/null)" ] && [ ! -e "$dest/usr/sbin/criu" ]; then
    die "$dest is not empty and holds no earlier fetch of criu: refusing to replace it"
fi
# criu's NEEDED libraries and theirs (apt-cache depends --recurse of sid's criu, less the
# packages that ship no library it loads).
libs=(
    libc6 libgcc-s1 libbsd0 libmd0 libuuid1 libnet9 libprotobuf-c1 libnl-3-200
    libgnutls30t64 libhogweed6t64 libnettle8t64 libgmp10 libidn2-0 libunistring5 libp11-kit0
    libffi8 libtasn1-6
    libnftables1 libnftnl11 libmnl0 libjansson4 libxtables12
)
rm -rf "$dest"
"$(dirname "$0")/fetch-deb.sh" "$suite" "$dest" criu "${libs[@]}"
lib=$dest/usr/lib/x86_64-linux-gnu
for f in "$dest/usr/sbin/criu" "$lib/ld-linux-x86-64.so.2" "$lib/libc.so.6"; do
    [ -e "$f" ] || die "$f missing after unpacking $suite's criu and libc6"
done
cp "$dest/usr/sbin/criu" "$criu.tmp"
patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$lib" "$criu.tmp"
# Every library must come from DEST: one found in the system's (older) directories would
# load against sid's libc by chance, or not at all.
outside=$("$lib/ld-linux-x86-64.so.2" --inhibit-cache --list "$criu.tmp" | awk -v d="$dest/" '
    /=>/ && index($3, d) != 1 { print $1 }')
[ -z "$outside" ] || die "$criu.tmp loads libraries from outside $dest (add their $suite packages here): $outside"
mv "$criu.tmp" "$criu"
"$criu" --version >/dev/null || die "$criu does not run"
echo "$criu"
