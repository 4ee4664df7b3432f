#!/usr/bin/env bash
# Runs busybox containers through a private containerd with containerd-shim-youki-v2
# (`ctr run --runtime io.containerd.youki.v2 --rootfs DIR`), no runtime binary executed
# per operation. Needs root and Debian's containerd (scripts/setup.sh).
#
#   scripts/shim-demo.sh          run --rm (output + exit status), run -d, task ls/ps,
#                                 kill, delete, container rm
#   scripts/shim-demo.sh --rss    also: memory of one idle shim serving one container,
#                                 youki's shim (server + zygote) against
#                                 containerd-shim-runc-v2 with runc, same container
#
# SHIM_DIR (default target/x86_64-unknown-linux-gnu/release) is put first on containerd's PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

shim_dir=$(cd "${SHIM_DIR:-target/x86_64-unknown-linux-gnu/release}" && pwd)
[ -x "$shim_dir/containerd-shim-youki-v2" ] || {
    echo "shim-demo: $shim_dir/containerd-shim-youki-v2 not built (cargo build --release -p containerd-shim-youki)" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || { echo "shim-demo: run as root" >&2; exit 1; }
command -v containerd >/dev/null && command -v ctr >/dev/null || {
    echo "shim-demo: containerd/ctr not found: install Debian's containerd (scripts/setup.sh)" >&2
    exit 1
}
rss=false
[ "${1:-}" = "--rss" ] && rss=true

work=$(mktemp -d /tmp/yshim-demo.XXXXXX)
ns=youki-demo-$$
ctd_pid=
ids=()
ctr() { command ctr --address "$work/c.sock" -n "$ns" "$@"; }
cleanup() {
    set +e
    for id in "${ids[@]}"; do
        ctr task kill -s KILL "$id" >/dev/null 2>&1
        sleep 0.2
        ctr task delete --force "$id" >/dev/null 2>&1
        ctr container rm "$id" >/dev/null 2>&1
    done
    [ -n "$ctd_pid" ] && kill "$ctd_pid" 2>/dev/null && wait "$ctd_pid" 2>/dev/null
    # The runc shim (for --rss) keeps runc's state under a directory named after our
    # namespace; it is empty once its containers are deleted.
    for d in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/"$ns" /run/containerd/runc/"$ns"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/c.sock"
[ttrpc]
  address = "$work/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
PATH="$shim_dir:$PATH" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
ctd_pid=$!
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr version >/dev/null || { cat "$work/containerd.log" >&2; exit 1; }

scripts/mkbundle.sh "$work/bundle" sh >/dev/null
rootfs=$work/bundle/rootfs
env_path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

echo "+ ctr run --rm --runtime io.containerd.youki.v2 --rootfs $rootfs demo-rm sh -c 'echo hi; exit 3'"
set +e
ctr run --rm --runtime io.containerd.youki.v2 --rootfs "$rootfs" demo-rm sh -c 'echo hi; exit 3'
status=$?
set -e
echo "  exit status: $status"
[ "$status" -eq 3 ] || { echo "shim-demo: expected exit status 3" >&2; exit 1; }

ids+=(demo-d)
echo "+ ctr run -d --runtime io.containerd.youki.v2 --rootfs $rootfs demo-d sleep 1000"
ctr run -d --runtime io.containerd.youki.v2 --rootfs "$rootfs" demo-d sleep 1000
echo "+ ctr task ls"; ctr task ls
echo "+ ctr task ps demo-d"; ctr task ps demo-d

# From smaps_rollup, in kB: PSS (shared pages divided among their users) and USS (pages
# of this process alone: what one more shim costs).
pss() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }
uss() { awk '/^Private_(Clean|Dirty):/ { n += $2 } END { print n }' "/proc/$1/smaps_rollup"; }
shim_pids() { pgrep -f "$1 -namespace $ns -id $2 " || true; }
report() { # NAME SHIM-BINARY ID
    local total_rss=0 total_pss=0 total_uss=0 p r s u
    for p in $(shim_pids "$2" "$3"); do
        r=$(ps -o rss= -p "$p" | tr -d ' '); s=$(pss "$p"); u=$(uss "$p")
        printf '  %-28s pid %-7s rss %6s kB  pss %6s kB  uss %6s kB\n' "$1" "$p" "$r" "$s" "$u"
        total_rss=$((total_rss + r)); total_pss=$((total_pss + s)); total_uss=$((total_uss + u))
    done
    printf '  %-28s total       rss %6s kB  pss %6s kB  uss %6s kB\n' "$1" "$total_rss" "$total_pss" "$total_uss"
}
if $rss; then
    if command -v runc >/dev/null && command -v containerd-shim-runc-v2 >/dev/null; then
        ids+=(demo-runc)
        ctr run -d --runtime io.containerd.runc.v2 --env "$env_path" --rootfs "$rootfs" demo-runc sleep 1000
    fi
    sleep 1
    echo "memory of one idle shim serving one container:"
    report "containerd-shim-youki-v2" containerd-shim-youki-v2 demo-d
    [ -n "$(shim_pids containerd-shim-runc-v2 demo-runc)" ] &&
        report "containerd-shim-runc-v2+runc" containerd-shim-runc-v2 demo-runc
fi

echo "+ ctr task kill -s KILL demo-d"; ctr task kill -s KILL demo-d
for _ in $(seq 100); do ctr task ls | grep -q 'demo-d .*STOPPED' && break; sleep 0.05; done
echo "+ ctr task delete demo-d"; ctr task delete demo-d
echo "+ ctr container rm demo-d"; ctr container rm demo-d
echo "shim-demo: ok"
