#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/debian-packages.txt (needs
# root). Does nothing when they are all installed already, unless --force.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' scripts/debian-packages.txt | grep -v '^$')

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${1:-}" != "--force" ] && [ "${#missing[@]}" -eq 0 ]; then
    echo "setup: all Debian packages present (${packages[*]})"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: installing ${missing[*]:-${packages[*]}} needs root: run as root (or with sudo)" >&2
        exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}"
fi

# The Rust toolchain comes with the machine (rustup); it cannot be fetched here.
for tool in cargo rustfmt cargo-clippy; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "setup: $tool not found on PATH (expected from the machine's rustup toolchain; try PATH=\$HOME/.cargo/bin:\$PATH)" >&2
        exit 1
    fi
done

# containerd 1.7 and 2.x for the shim's end-to-end tests, next to bookworm's 1.6 (which the package
# above installs): unpacked from Debian trixie and sid into private directories, nothing
# installed.
for suite in trixie sid; do
    scripts/fetch-containerd.sh "$suite" "/var/cache/youki-shim/containerd-$suite" >/dev/null
    echo "setup: containerd $("/var/cache/youki-shim/containerd-$suite/usr/bin/containerd" --version | awk '{print $3}') in /var/cache/youki-shim/containerd-$suite"
done

# The pure cgroup v2 test VM (scripts/vm-test.sh): Debian's stock kernel (bookworm's
# linux-image-amd64) and sid's runc 1.3 with its libc, unpacked into /var/cache/youki-shim.
scripts/vm-test.sh --fetch
echo "setup: VM kernel $(basename "$(scripts/vm/fetch-kernel.sh)") and runc $("/var/cache/youki-shim/runc-sid/runc" --version | awk 'NR == 1 {print $3}') in /var/cache/youki-shim"

# Docker 28 (sid's docker.io and docker-cli with sid's libc, patchelf'd) for tests/e2e_docker.rs.
echo "setup: $(scripts/fetch-docker.sh sid /var/cache/youki-shim/docker-sid)/dockerd: $(/var/cache/youki-shim/docker-sid/bin/dockerd --version)"
echo "setup: $(scripts/fetch-criu.sh sid /var/cache/youki-shim/criu-sid) (for tests/checkpoint.rs): $(/var/cache/youki-shim/criu-sid/criu --version | head -n 1)"
