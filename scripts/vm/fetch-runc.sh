#!/usr/bin/env bash
# A newer runc from Debian's own archive, runnable here, for checking the tests against it
# in the test VM (scripts/vm-test.sh):
#   scripts/vm/fetch-runc.sh SUITE DEST       e.g. sid /var/cache/youki-shim/runc-sid
# sid's runc (1.3.x) is linked against sid's glibc: the suite's runc, libc6 and libseccomp2
# are unpacked into DEST (scripts/fetch-deb.sh), and a copy of the binary, DEST/runc, is
# pointed at that glibc with patchelf (interpreter and rpath DEST/usr/lib/x86_64-linux-gnu).
# Prints DEST/runc. Does nothing when it is there already.
set -euo pipefail

suite=${1:?usage: fetch-runc.sh SUITE DEST}
dest=${2:?usage: fetch-runc.sh SUITE DEST}
runc=$dest/runc
if [ -x "$runc" ] && "$runc" --version >/dev/null 2>&1; then
    echo "$runc"
    exit 0
fi
command -v patchelf >/dev/null || {
    echo "vm/fetch-runc: patchelf not found: install Debian's patchelf (scripts/setup.sh)" >&2
    exit 1
}

case $dest in
/ | /usr | /var | /var/cache | "") echo "vm/fetch-runc: refusing DEST=$dest" >&2 && exit 1 ;;
esac
rm -rf "$dest"
"$(dirname "$0")/../fetch-deb.sh" "$suite" "$dest" runc libc6 libseccomp2
lib=$dest/usr/lib/x86_64-linux-gnu
for f in "$dest/usr/sbin/runc" "$lib/ld-linux-x86-64.so.2" "$lib/libc.so.6" "$lib/libseccomp.so.2"; do
    [ -e "$f" ] || {
        echo "vm/fetch-runc: $f missing after unpacking $suite's runc, libc6, libseccomp2" >&2
        exit 1
    }
done
cp "$dest/usr/sbin/runc" "$runc.tmp"
patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --set-rpath "$lib" "$runc.tmp"
mv "$runc.tmp" "$runc"
"$runc" --version >/dev/null || {
    echo "vm/fetch-runc: $runc does not run" >&2
    exit 1
}
echo "$runc"
