#!/usr/bin/env bash
# Builds a container image as an OCI image-layout tar, locally (no registry):
#   scripts/mkimage.sh OUT.tar [NAME]            busybox
#   scripts/mkimage.sh --pause OUT.tar [NAME]    the pod sandbox (pause) image
# busybox: one uncompressed layer holding Debian's busybox-static (/bin/busybox and its
# applet links, /etc/passwd, /etc/group, the usual empty directories); config Cmd ["sh"]
# and Env PATH; default NAME localhost/youki-busybox:latest. BUSYBOX_BIN overrides
# /bin/busybox.
# pause: one layer holding only /pause, the static program of images/pause/ (built
# here with gcc); config Entrypoint ["/pause"], User 65535:65535 like Kubernetes' own
# pause image; default NAME localhost/youki-pause:latest.
# NAME is recorded in index.json both as containerd's image name and as the OCI ref
# name, so that
#   podman load -i OUT.tar          and          ctr -n NS image import OUT.tar
# both name the image NAME. The manifest carries this machine's platform, which
# containerd's import (and CRI) select.
set -euo pipefail

kind=busybox
if [ "${1:-}" = "--pause" ]; then
    kind=pause
    shift
fi
out=${1:?usage: mkimage.sh [--pause] OUT.tar [NAME]}
name=${2:-localhost/youki-$kind:latest}
busybox=${BUSYBOX_BIN:-/bin/busybox}
here=$(cd "$(dirname "$0")" && pwd)

if [ "$kind" = busybox ]; then
    [ -x "$busybox" ] || { echo "mkimage: $busybox not found: install busybox-static (scripts/setup.sh)" >&2; exit 1; }
fi
case "$name" in
    *:*) ;;
    *) name=$name:latest ;;
esac

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    armv7l) arch=arm ;;
    i?86) arch=386 ;;
    *) arch=$(uname -m) ;;
esac

work=$(mktemp -d /tmp/youki-mkimage.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [ "$kind" = busybox ]; then
    # The rootfs: the same busybox tree as the test bundles.
    BUSYBOX_BIN=$busybox "$here/mkbundle.sh" "$work/bundle" sh >/dev/null
    rootfs=$work/bundle/rootfs
    created_by=
    image_config='"Cmd":["sh"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"'
else
    rootfs=$work/rootfs
    mkdir -p "$rootfs"
    "$here/../images/pause/build.sh" "$rootfs/pause"
    chmod 0755 "$rootfs/pause"
    created_by=" --pause"
    image_config='"Entrypoint":["/pause"],"User":"65535:65535","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"WorkingDir":"/"'
fi

layout=$work/layout
blobs=$layout/blobs/sha256
mkdir -p "$blobs"

# Stores stdin as a blob; prints "DIGEST SIZE".
put_blob() {
    local tmp=$work/blob.tmp digest size
    cat > "$tmp"
    digest=$(sha256sum "$tmp" | cut -d' ' -f1)
    size=$(stat -c %s "$tmp")
    mv "$tmp" "$blobs/$digest"
    echo "$digest $size"
}

# A reproducible layer: sorted names, numeric root ownership (home/user stays 1000),
# fixed times.
read -r layer_digest layer_size < <(
    tar -C "$rootfs" --sort=name --numeric-owner --mtime=@0 --format=posix \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -cf - . | put_blob
)

config=$(cat <<JSON
{"architecture":"$arch","os":"linux","created":"1970-01-01T00:00:00Z","config":{$image_config},"rootfs":{"type":"layers","diff_ids":["sha256:$layer_digest"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"youki-shim scripts/mkimage.sh$created_by"}]}
JSON
)
read -r config_digest config_size < <(printf '%s' "$config" | put_blob)

manifest=$(cat <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer_digest","size":$layer_size}]}
JSON
)
read -r manifest_digest manifest_size < <(printf '%s' "$manifest" | put_blob)

printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
cat > "$layout/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,"platform":{"architecture":"$arch","os":"linux"},"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"$name"}}]}
JSON

mkdir -p "$(dirname "$out")"
tar -C "$layout" --sort=name --numeric-owner --owner=0 --group=0 --mtime=@0 \
    -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
echo "mkimage: $out: $name (manifest sha256:$manifest_digest)"
