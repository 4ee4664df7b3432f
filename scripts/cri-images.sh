#!/usr/bin/env bash
# Builds the two images a CRI node needs without a registry, the pod sandbox (pause)
# image and busybox (scripts/mkimage.sh), and imports them into containerd's CRI
# namespace, k8s.io, unpacked into the default snapshotter (CRI runs containers only
# from unpacked images; `ctr images import` unpacks for this machine's platform unless
# --no-unpack):
#
#   scripts/cri-images.sh [--address SOCK] [--namespace NS] [--out DIR]
#
#   --address SOCK   containerd's socket (default /run/containerd/containerd.sock)
#   --namespace NS   containerd namespace (default k8s.io, the one CRI uses)
#   --out DIR        keep the image tars in DIR (default: built in a temp dir, removed);
#                    tars already there (pause.tar, busybox.tar) are imported as they are
#   CTR=PATH         the ctr to run (default: ctr on PATH; use the one of the containerd
#                    you import into)
#   PAUSE_IMAGE, BUSYBOX_IMAGE   image names (default localhost/youki-pause:latest,
#                    localhost/youki-busybox:latest)
#
# Then point containerd's CRI sandbox image at the pause image (examples/containerd-*.toml)
# and run pods from the busybox image. Prints the imported names. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

address=/run/containerd/containerd.sock
ns=k8s.io
out=
while [ $# -gt 0 ]; do
    case "$1" in
        --address) address=${2:?--address needs a socket path}; shift 2 ;;
        --namespace) ns=${2:?--namespace needs a name}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "cri-images: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
ctr=${CTR:-$(command -v ctr || true)}
[ -n "$ctr" ] && [ -x "$ctr" ] || { echo "cri-images: ctr not found: install Debian's containerd (scripts/setup.sh) or set CTR" >&2; exit 1; }
[ -S "$address" ] || { echo "cri-images: $address is not a socket: is containerd running (--address)?" >&2; exit 1; }
pause_image=${PAUSE_IMAGE:-localhost/youki-pause:latest}
busybox_image=${BUSYBOX_IMAGE:-localhost/youki-busybox:latest}

if [ -z "$out" ]; then
    out=$(mktemp -d /tmp/youki-cri-images.XXXXXX)
    trap 'rm -rf "$out"' EXIT
fi
[ -d "$out" ] || mkdir -p "$out"

if [ ! -s "$out/pause.tar" ]; then
    "$here/mkimage.sh" --pause "$out/pause.tar" "$pause_image" >&2
fi
if [ ! -s "$out/busybox.tar" ]; then
    "$here/mkimage.sh" "$out/busybox.tar" "$busybox_image" >&2
fi
for tar in "$out/pause.tar" "$out/busybox.tar"; do
    "$ctr" --address "$address" -n "$ns" images import "$tar" >&2 || {
        echo "cri-images: importing $tar into $address ($ns) failed" >&2
        exit 1
    }
done
echo "$pause_image"
echo "$busybox_image"
