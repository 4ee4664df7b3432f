#!/usr/bin/env bash
# `make bench`, in one run:
#
# 1. The create + start + wait + delete cycle of a busybox /bin/true container, the youki
#    CLI against runc, interleaved (one youki cycle, one runc cycle, ...), N runs each:
#    median and p90 in ms, ratios, and the peak RSS of one runtime command.
# 2. The shim: a private containerd (own root, state and sockets in a temp dir, no CRI,
#    the release containerd-shim-youki-v2 first on its PATH) runs
#    `ctr run --rm --rootfs BUSYBOX ID /bin/true` through our shim
#    (--runtime io.containerd.youki.v2) and through containerd-shim-runc-v2 with runc
#    (io.containerd.runc.v2), interleaved, N runs each: median and p90 in ms and ratios.
# 3. Memory of idle shims, from /proc/PID/smaps_rollup (RSS and PSS; our shim is its
#    server, and its zygote while it has work: idle, once the zygote left after its 5 s
#    without a request, the server alone): one shim serving one `sleep` container, then 20
#    containers (20 shims) per runtime, against containerd-shim-runc-v2.
# 4. Pods through CRI, as kubelet drives them: another private containerd, this one
#    with its CRI plugin (the tests' config, test-support/src/cri_config.rs, printed by
#    youki-cri-config) and two runtime handlers, `youki` (io.containerd.youki.v2) and `runc`
#    (io.containerd.runc.v2 with $RUNC_BIN); the local pause and busybox images
#    (scripts/cri-images.sh). Host-network pods, so no CNI is involved: the same
#    for both handlers, and nothing of the host's network to set up or tear down.
#    a. `youki-cri pod-cycle`: RunPodSandbox + CreateContainer + StartContainer of one
#       busybox `sleep`, then StopPodSandbox + RemovePodSandbox; interleaved (one youki
#       pod, one runc pod, ...), N each: median and p90 in ms and ratios.
#    b. The shim memory of one pod of 3 `sleep` containers (and the sandbox) per
#       handler (`youki-cri pod-up`), from /proc/PID/smaps_rollup summed over the pod's
#       shim processes (ours: the server, once its zygote left), with their number and
#       threads.
# 5. Docker: a private dockerd (Docker 28 from sid, scripts/fetch-docker.sh) on a private
#    containerd 2.1 (sid's, scripts/fetch-containerd.sh), with the runtime `youki`
#    (runtimeType io.containerd.youki.v2, examples/docker-daemon.json) next to Docker's
#    default runc; `docker run --rm --network none IMAGE /bin/true` (the busybox rootfs,
#    `docker import`ed) through each, interleaved, N each: median and p90 in ms and ratio.
#    Left out, with a note, when /var/cache/youki-shim/docker-sid is missing.
# 6. Checkpoint and restore with CRIU (sid's 4.x, which scripts/setup.sh, run by
#    `make bench` first, unpacks with scripts/fetch-criu.sh): one busybox counter
#    container (the same bundle for every runtime, stdio /dev/null) is started with
#    `run -d`, checkpointed (`checkpoint --image-path`: it stops) and restored
#    (`restore --detach --pid-file`: until the restored counter runs), then killed and
#    deleted (not timed); rounds interleaved over youki, $RUNC_BIN and sid's runc 1.3
#    (/var/cache/youki-shim/runc-sid/runc, left out with a note when missing), N each:
#    median and p90 of each command in ms and ratios. CRIU's directory goes first on the
#    runtimes' PATH (runc 1.3 has no --criu). Left out, with a note, without a CRIU that
#    passes `criu check`.
#
#   BENCH_RUNS=50        CLI cycles per runtime (after 3 warm-up cycles each)
#   BENCH_SHIM_RUNS=50   `ctr run --rm` per runtime (after 3 warm-up runs each)
#   BENCH_SHIMS=20       containers (shims) per runtime for the memory figures
#   BENCH_POD_RUNS=20    pod cycles per handler (after 3 warm-up cycles each)
#   BENCH_DOCKER_RUNS=20 `docker run --rm` per runtime (after 3 warm-up runs each)
#   BENCH_CKPT_RUNS=15   checkpoint + restore rounds per runtime (after 1 warm-up round each)
#   BENCH_ONLY=cli|shim|pod|docker|checkpoint  run only one part (default: all; `shim` is
#                        2 and 3, `pod` 4, `docker` 5, `checkpoint` 6)
#   YOUKI_BIN=target/x86_64-unknown-linux-gnu/release/youki
#   SHIM_DIR=target/x86_64-unknown-linux-gnu/release (holds containerd-shim-youki-v2; unset: built here first)
#   YOUKI_CRI_BIN=target/x86_64-unknown-linux-gnu/release/youki-cri (and youki-cri-config
#                        beside it; unset: both built here first)
#   RUNC_BIN=$(command -v runc)
#
# Needs root. Everything is removed at exit (pods, containers, shims, mounts, cgroups,
# the private containerds, their directories and image content), and the pod part
# checks that nothing of its pods is left, as the CRI tests do. No times are asserted
# anywhere: this only measures.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-50}
shim_runs=${BENCH_SHIM_RUNS:-50}
nshims=${BENCH_SHIMS:-20}
pod_runs=${BENCH_POD_RUNS:-20}
docker_runs=${BENCH_DOCKER_RUNS:-20}
ckpt_runs=${BENCH_CKPT_RUNS:-15}
docker_dir=/var/cache/youki-shim/docker-sid/bin
containerd_sid=/var/cache/youki-shim/containerd-sid/usr/bin
only=${BENCH_ONLY:-}
youki=${YOUKI_BIN:-target/x86_64-unknown-linux-gnu/release/youki}
shim_dir=${SHIM_DIR:-target/x86_64-unknown-linux-gnu/release}
cri_bin=${YOUKI_CRI_BIN:-target/x86_64-unknown-linux-gnu/release/youki-cri}
cri_config_bin=$(dirname "$cri_bin")/youki-cri-config
runc=${RUNC_BIN:-$(command -v runc || true)}
warmup=3

[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
for v in runs shim_runs nshims pod_runs docker_runs ckpt_runs; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "bench: $v (BENCH_*) must be a positive integer" >&2; exit 1; }
done
case "$only" in ""|cli|shim|pod|docker|checkpoint) ;; *) echo "bench: BENCH_ONLY must be cli, shim, pod, docker or checkpoint" >&2; exit 1 ;; esac
# Which parts run.
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }
[ -n "$runc" ] && [ -x "$runc" ] || { echo "bench: runc not found (scripts/setup.sh)" >&2; exit 1; }
runc=$(cd "$(dirname "$runc")" && pwd)/$(basename "$runc") # containerd's CRI config needs it absolute
if want cli || want checkpoint; then
    [ -x "$youki" ] || { echo "bench: $youki not built (cargo build --release)" >&2; exit 1; }
fi
if want pod; then
    if [ -z "${YOUKI_CRI_BIN:-}" ]; then
        # Their own packages too.
        cargo build --release -q -p youki-cri --bin youki-cri -p youki-test-support --bin youki-cri-config
    fi
    [ -x "$cri_bin" ] || { echo "bench: $cri_bin not built (cargo build --release -p youki-cri)" >&2; exit 1; }
    [ -x "$cri_config_bin" ] || { echo "bench: $cri_config_bin not built (cargo build --release -p youki-test-support)" >&2; exit 1; }
fi
if want shim || want pod || want docker; then
    if [ -z "${SHIM_DIR:-}" ]; then
        # `cargo build --release` at the root builds the CLI only: the shim is its own package.
        cargo build --release -q -p containerd-shim-youki --bin containerd-shim-youki-v2
    fi
    [ -x "$shim_dir/containerd-shim-youki-v2" ] || {
        echo "bench: $shim_dir/containerd-shim-youki-v2 not built (cargo build --release)" >&2; exit 1; }
    shim_dir=$(cd "$shim_dir" && pwd)
    for b in containerd ctr containerd-shim-runc-v2; do
        command -v "$b" >/dev/null || { echo "bench: $b not found: install Debian's containerd (scripts/setup.sh)" >&2; exit 1; }
    done
fi

work=$(mktemp -d /tmp/youki-bench.XXXXXX)
names=(youki runc)
bins=("$youki" "$runc")
current_ids=("" "")
ns=youki-bench-$$
ctd_pid=
# The pod part's containerd (with CRI), its pods' names and their cgroup parent.
cri_pid=
pod_prefix=youki-bench-$$-
pod_cgroup=youki-bench-$$-pods
# The Docker part's containerd and dockerd, and its containers' cgroup parent.
dk_ctd_pid=
dk_pid=
dk_cgroup=youki-bench-$$-docker
# The checkpoint part's container cgroup, and its container that may exist now, if any
# (the runtime's index in ck_bins and the container's id), which the cleanup deletes.
ck_cgroup=youki-bench-$$-ckpt
ck_i=
ck_id=

ctr() { command ctr --address "$work/ctd/c.sock" -n "$ns" "$@"; }

# Pids of the processes whose command line contains every argument (no pgrep: no false
# matches on ourselves, and no dependency on procps).
pids_with() {
    local d cmd w ok
    for d in /proc/[0-9]*; do
        cmd=$({ tr '\0' ' ' < "$d/cmdline"; } 2>/dev/null) || continue
        ok=1
        for w in "$@"; do
            [[ "$cmd" == *"$w"* ]] || { ok=0; break; }
        done
        [ "$ok" -eq 1 ] && echo "${d#/proc/}"
    done
    return 0
}

# Mount points under $1.
mounts_under() {
    awk -v w="$1" 'substr($5, 1, length(w)) == w { print $5 }' /proc/self/mountinfo
}

# The cgroup $1 (a path relative to each hierarchy's root) and its descendants, in every
# cgroup hierarchy (v1 and v2 mounts, from mountinfo: no layout is assumed).
cgroup_dirs() {
    local mp
    for mp in $(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo | sort -u); do
        [ -d "$mp/$1" ] && find "$mp/$1" -type d
    done
    return 0
}

# Waits up to $2 seconds until no shim serves the containerd at $1; fails if one does.
# (A deadline, not a count: one pids_with pass can take long on a busy machine.)
wait_no_shims() {
    local deadline=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$deadline" ]; do
        [ -z "$(pids_with containerd-shim- " -address $1")" ] && return 0
        sleep 0.1
    done
    return 1
}

cri() { "$cri_bin" --address "$work/cri/c.sock" "$@"; }

cleanup() {
    set +e
    # To the end, also when the run was stopped by a signal or its output was cut off
    # (`| head`): a write to a closed pipe then fails instead of killing the cleanup.
    trap '' INT TERM HUP PIPE
    for i in 0 1; do
        if [ -n "${current_ids[$i]}" ]; then
            "${bins[$i]}" --root "$work/root-${names[$i]}" delete --force "${current_ids[$i]}" >/dev/null 2>&1
        fi
    done
    [ -n "$ck_id" ] && ck_runtime "$ck_i" delete --force "$ck_id" >/dev/null 2>&1
    if [ -n "$ctd_pid" ]; then
        local id p
        for id in $(ctr containers ls -q 2>/dev/null); do
            ctr task kill -a -s SIGKILL "$id" >/dev/null 2>&1
        done
        for id in $(ctr containers ls -q 2>/dev/null); do
            for _ in $(seq 50); do
                ctr task ls 2>/dev/null | grep -q "^$id .*RUNNING" || break
                sleep 0.1
            done
            ctr task delete -f "$id" >/dev/null 2>&1
            ctr containers rm "$id" >/dev/null 2>&1
        done
        kill "$ctd_pid" 2>/dev/null
        wait "$ctd_pid" 2>/dev/null
        # Shims this run started that outlived their tasks (none expected).
        for p in $(pids_with containerd-shim- " -address $work/ctd/c.sock"); do
            echo "bench: shim $p still running: killed" >&2
            kill -KILL "$p" 2>/dev/null
        done
    fi
    if [ -n "$cri_pid" ]; then
        # After a failure: whatever pods the run left (the pod part removes its own).
        cri --timeout 30 pod-down --name-prefix "$pod_prefix" >/dev/null 2>&1
        wait_no_shims "$work/cri/c.sock" 10
        kill "$cri_pid" 2>/dev/null
        wait "$cri_pid" 2>/dev/null
        for p in $(pids_with containerd-shim- " -address $work/cri/c.sock"); do
            echo "bench: shim $p still running: killed" >&2
            kill -KILL "$p" 2>/dev/null
        done
    fi
    if [ -n "$dk_pid" ]; then
        for id in $(dk ps -aq 2>/dev/null); do
            dk rm -f "$id" >/dev/null 2>&1
        done
        kill "$dk_pid" 2>/dev/null
        wait "$dk_pid" 2>/dev/null
    fi
    if [ -n "$dk_ctd_pid" ]; then
        kill "$dk_ctd_pid" 2>/dev/null
        wait "$dk_ctd_pid" 2>/dev/null
        wait_no_shims "$work/dk/c.sock" 10
        for p in $(pids_with containerd-shim- " -address $work/dk/c.sock"); do
            echo "bench: shim $p still running: killed" >&2
            kill -KILL "$p" 2>/dev/null
        done
    fi
    local m d
    for m in $(mounts_under "$work" | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    for d in $({ cgroup_dirs "$dk_cgroup"; cgroup_dirs "$ck_cgroup"; } | sort -r); do
        rmdir "$d" 2>/dev/null
    done
    for d in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/*/*/"$ns" /sys/fs/cgroup/"$ns" /run/containerd/runc/"$ns"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null
    done
    # Pod cgroups left after a failure, then the parent: deepest first, an rmdir fails
    # while a cgroup still has children. Their processes (pause, sleep) outlive killed
    # shims: this run's pods, in cgroups under its own parent, are killed first (thawed,
    # in case a freezer holds them).
    local all_cgroups pid
    all_cgroups=$(cgroup_dirs "$pod_cgroup" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
    for d in $all_cgroups; do
        [ -w "$d/freezer.state" ] && echo THAWED > "$d/freezer.state" 2>/dev/null
        [ -w "$d/cgroup.freeze" ] && echo 0 > "$d/cgroup.freeze" 2>/dev/null
        for pid in $(cat "$d/cgroup.procs" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
    done
    for d in $all_cgroups; do
        for _ in $(seq 20); do
            rmdir "$d" 2>/dev/null && break
            sleep 0.1
        done
    done
    rm -rf "$work"
    if [ -n "$cri_pid" ]; then
        local left
        left=$(cgroup_dirs "$pod_cgroup"; mounts_under "$work"; [ -e "$work" ] && echo "$work")
        if [ -n "$left" ]; then
            echo "bench: left behind: $left" >&2
            exit 1
        fi
    fi
}
trap cleanup EXIT

# median / p90 in ms from a file of microseconds
stats() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        i = int(NR * 0.9 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
        printf "%.2f %.2f\n", m / 1000, v[i] / 1000 }'
}

kib_to_mib() { [ "$1" = n/a ] && echo n/a || awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ---------------------------------------------------------------------------------------
# 1. youki CLI against runc

# Wait until pid is gone or a zombie, without forking (bash builtins only).
wait_exit() {
    local pid=$1 line state deadline=$((${EPOCHREALTIME/./} + 10000000))
    while read -r line < "/proc/$pid/stat" 2>/dev/null; do
        state=${line##*) }
        state=${state%% *}
        [ "$state" = Z ] && return 0
        if [ "${EPOCHREALTIME/./}" -gt "$deadline" ]; then
            echo "bench: container init $pid did not exit within 10 s" >&2
            return 1
        fi
    done
    return 0
}

# One cycle; sets $elapsed (microseconds). $3 = a command prefix for measuring RSS
# (empty for timing runs).
cycle() {
    local i=$1 n=$2 wrap=$3
    local bin=${bins[$i]} root=$work/root-${names[$i]} bundle=$work/bundle-${names[$i]}
    local id=bench-${names[$i]}-$n pidfile=$work/pid-${names[$i]} pid t0 t1
    current_ids[$i]=$id
    t0=${EPOCHREALTIME/./}
    $wrap "$bin" --root "$root" create --bundle "$bundle" --pid-file "$pidfile" "$id" \
        > /dev/null 2>> "$work/stderr" || { echo "bench: ${names[$i]} create failed: $(cat "$work/stderr")" >&2; return 1; }
    pid=""
    read -r pid < "$pidfile" || true # no trailing newline in runc's pid file
    [ -n "$pid" ] || { echo "bench: ${names[$i]} wrote no pid file" >&2; return 1; }
    $wrap "$bin" --root "$root" start "$id" 2>> "$work/stderr" \
        || { echo "bench: ${names[$i]} start failed: $(cat "$work/stderr")" >&2; return 1; }
    wait_exit "$pid"
    $wrap "$bin" --root "$root" delete "$id" 2>> "$work/stderr" \
        || { echo "bench: ${names[$i]} delete failed: $(cat "$work/stderr")" >&2; return 1; }
    t1=${EPOCHREALTIME/./}
    current_ids[$i]=""
    elapsed=$((t1 - t0))
}

cli_bench() {
    local i n
    for i in 0 1; do
        mkdir -p "$work/root-${names[$i]}"
        CGROUPS_PATH=/youki-bench-$$-${names[$i]} scripts/mkbundle.sh "$work/bundle-${names[$i]}" /bin/true
    done
    echo "bench: $runs interleaved create+start+wait+delete cycles of /bin/true each"
    echo "  youki: $youki"
    echo "  runc:  $runc ($("$runc" --version | head -n1))"

    for ((n = 0; n < warmup; n++)); do
        cycle 0 "w$n" ""; cycle 1 "w$n" ""
    done
    : > "$work/times-youki"
    : > "$work/times-runc"
    for ((n = 0; n < runs; n++)); do
        for i in 0 1; do
            cycle "$i" "$n" ""
            echo "$elapsed" >> "$work/times-${names[$i]}"
        done
    done

    # Peak RSS (KiB) of any single runtime command, over a few extra cycles.
    local rss=("n/a" "n/a")
    if [ -x /usr/bin/time ]; then
        for i in 0 1; do
            : > "$work/rss-${names[$i]}"
        done
        for ((n = 0; n < 5; n++)); do
            for i in 0 1; do
                cycle "$i" "rss$n" "/usr/bin/time -a -o $work/rss-${names[$i]} -f %M"
            done
        done
        for i in 0 1; do
            rss[$i]=$(sort -n "$work/rss-${names[$i]}" | tail -n1)
        done
    fi

    local y_med y_p90 r_med r_p90
    read -r y_med y_p90 < <(stats "$work/times-youki")
    read -r r_med r_p90 < <(stats "$work/times-runc")

    echo
    printf '%-8s %6s %11s %9s %16s\n' runtime runs "median ms" "p90 ms" "peak RSS MiB"
    printf '%-8s %6s %11s %9s %16s\n' youki "$runs" "$y_med" "$y_p90" "$(kib_to_mib "${rss[0]}")"
    printf '%-8s %6s %11s %9s %16s\n' runc "$runs" "$r_med" "$r_p90" "$(kib_to_mib "${rss[1]}")"
    awk -v ym="$y_med" -v rm="$r_med" -v yp="$y_p90" -v rp="$r_p90" 'BEGIN {
        printf "ratio youki/runc: median %.2f, p90 %.2f\n", ym / rm, yp / rp }'
    if [ "${rss[0]}" != n/a ]; then
        awk -v y="${rss[0]}" -v r="${rss[1]}" 'BEGIN { printf "ratio youki/runc: peak RSS %.2f\n", y / r }'
    fi
}

# ---------------------------------------------------------------------------------------
# 2. and 3. the shim, through a private containerd

shim_runtimes=(io.containerd.youki.v2 io.containerd.runc.v2)
shim_bins=(containerd-shim-youki-v2 containerd-shim-runc-v2)
shim_names=("youki shim" "runc shim+runc")

# The config of a private containerd without CRI: root, state and sockets under $1.
containerd_config() {
    cat <<EOF
version = 2
root = "$1/root"
state = "$1/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$1/c.sock"
[ttrpc]
  address = "$1/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
}

start_containerd() {
    mkdir -p "$work/ctd" "$work/fifo"
    containerd_config "$work/ctd" > "$work/ctd/config.toml"
    PATH="$shim_dir:$PATH" containerd --config "$work/ctd/config.toml" > "$work/ctd/log" 2>&1 &
    ctd_pid=$!
    for _ in $(seq 100); do
        ctr version > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: containerd did not come up:" >&2
    tail -n 20 "$work/ctd/log" >&2
    return 1
}

# `ctr run --rm` of /bin/true through runtime $1, id $2; sets $elapsed (microseconds).
ctr_run() {
    local t0 t1
    t0=${EPOCHREALTIME/./}
    ctr run --rm --runtime "${shim_runtimes[$1]}" --fifo-dir "$work/fifo" \
        --rootfs "$work/shim-bundle/rootfs" "$2" /bin/true > /dev/null 2>> "$work/stderr" \
        || { echo "bench: ctr run --rm (${shim_names[$1]}) failed: $(tail -n 5 "$work/stderr")" >&2; return 1; }
    t1=${EPOCHREALTIME/./}
    elapsed=$((t1 - t0))
}

# Memory of the shims serving the containers ids $2..: "rss_kB pss_kB processes threads"
# (smaps_rollup, summed over every process of those shims: for ours, the server and its
# zygote if it has one).
shim_memory() {
    local bin=$1 id p rss=0 pss=0 procs=0 threads=0 r s t
    shift
    for id in "$@"; do
        for p in $(pids_with "$bin -namespace $ns -id $id "); do
            # A zygote leaving meanwhile is not counted.
            r=$(awk '/^Rss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
            s=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
            t=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
            rss=$((rss + r)); pss=$((pss + s)); threads=$((threads + t)); procs=$((procs + 1))
        done
    done
    echo "$rss $pss $procs $threads"
}

# Waits (at most 20 s) until the shims of binary $1 serving ids $2.. are idle, one process
# each: our zygote leaves after 5 s without work (YOUKI_SHIM_ZYGOTE_IDLE).
settle_shims() {
    local bin=$1 m procs
    shift
    for _ in $(seq 200); do
        m=$(shim_memory "$bin" "$@")
        read -r _ _ procs _ <<< "$m"
        [ "$procs" -le "$#" ] && return 0
        sleep 0.1
    done
    echo "bench: the shims of $* still have $procs processes after 20 s" >&2
}

# Starts $2 detached `sleep` containers through runtime $1 (ids mem-<i>-<n>).
start_sleepers() {
    local i=$1 count=$2 n
    for ((n = 0; n < count; n++)); do
        ctr run -d --runtime "${shim_runtimes[$i]}" --fifo-dir "$work/fifo" \
            --rootfs "$work/shim-bundle/rootfs" "mem-$i-$n" /bin/sleep 100000 > /dev/null 2>> "$work/stderr" \
            || { echo "bench: ctr run -d (${shim_names[$i]}) failed: $(tail -n 5 "$work/stderr")" >&2; return 1; }
    done
}

stop_sleepers() {
    local i=$1 count=$2 n
    for ((n = 0; n < count; n++)); do
        ctr task kill -s SIGKILL "mem-$i-$n" > /dev/null 2>&1 || true
    done
    for ((n = 0; n < count; n++)); do
        for _ in $(seq 100); do
            ctr task ls 2>/dev/null | grep -q "^mem-$i-$n .*RUNNING" || break
            sleep 0.05
        done
        ctr task delete "mem-$i-$n" > /dev/null 2>&1 || ctr task delete -f "mem-$i-$n" > /dev/null 2>&1 || true
        ctr container rm "mem-$i-$n" > /dev/null 2>&1 || true
    done
}

shim_bench() {
    local i n
    scripts/mkbundle.sh "$work/shim-bundle" /bin/true > /dev/null
    start_containerd
    echo
    echo "bench: $shim_runs interleaved \`ctr run --rm --rootfs BUSYBOX ID /bin/true\` each, private containerd"
    echo "  containerd: $(containerd --version | awk '{ print $3 }')"
    echo "  youki shim: $shim_dir/containerd-shim-youki-v2"
    echo "  runc shim:  $(command -v containerd-shim-runc-v2) with $runc"
    for ((n = 0; n < warmup; n++)); do
        ctr_run 0 "w0-$n"; ctr_run 1 "w1-$n"
    done
    : > "$work/ctr-0"
    : > "$work/ctr-1"
    for ((n = 0; n < shim_runs; n++)); do
        for i in 0 1; do
            ctr_run "$i" "run$i-$n"
            echo "$elapsed" >> "$work/ctr-$i"
        done
    done
    local y_med y_p90 r_med r_p90
    read -r y_med y_p90 < <(stats "$work/ctr-0")
    read -r r_med r_p90 < <(stats "$work/ctr-1")
    echo
    printf '%-16s %6s %11s %9s\n' "ctr run --rm" runs "median ms" "p90 ms"
    printf '%-16s %6s %11s %9s\n' "${shim_names[0]}" "$shim_runs" "$y_med" "$y_p90"
    printf '%-16s %6s %11s %9s\n' "${shim_names[1]}" "$shim_runs" "$r_med" "$r_p90"
    awk -v ym="$y_med" -v rm="$r_med" -v yp="$y_p90" -v rp="$r_p90" 'BEGIN {
        printf "ratio youki shim/runc shim: median %.2f, p90 %.2f\n", ym / rm, yp / rp }'

    # Memory: one container per runtime, idle; then $nshims each.
    local mem=() ids
    for i in 0 1; do
        start_sleepers "$i" 1
    done
    sleep 1
    settle_shims "${shim_bins[0]}" mem-0-0
    for i in 0 1; do
        mem[$i]=$(shim_memory "${shim_bins[$i]}" "mem-$i-0")
    done
    for i in 0 1; do
        stop_sleepers "$i" 1
    done
    for i in 0 1; do
        start_sleepers "$i" "$nshims"
    done
    sleep 1
    ids=()
    for ((n = 0; n < nshims; n++)); do ids+=("mem-0-$n"); done
    settle_shims "${shim_bins[0]}" "${ids[@]}"
    for i in 0 1; do
        ids=()
        for ((n = 0; n < nshims; n++)); do ids+=("mem-$i-$n"); done
        mem[$((i + 2))]=$(shim_memory "${shim_bins[$i]}" "${ids[@]}")
    done
    for i in 0 1; do
        stop_sleepers "$i" "$nshims"
    done

    echo
    echo "idle shim memory (/proc/PID/smaps_rollup; ours: the server, its zygote gone idle), kB"
    printf '%-16s %11s %8s %8s %7s %8s %12s %12s\n' "" containers RSS PSS procs threads "RSS/shim" "PSS/shim"
    local row k label count rss pss procs threads
    for row in 0 1 2 3; do
        i=$((row % 2))
        count=1; [ "$row" -ge 2 ] && count=$nshims
        read -r rss pss procs threads <<< "${mem[$row]}"
        printf '%-16s %11s %8s %8s %7s %8s %12s %12s\n' "${shim_names[$i]}" "$count" "$rss" "$pss" "$procs" "$threads" \
            "$((rss / count))" "$((pss / count))"
    done
    for k in 0 2; do
        label="1 container"; [ "$k" -eq 2 ] && label="$nshims containers"
        read -r y_rss y_pss _ _ <<< "${mem[$k]}"
        read -r r_rss r_pss _ _ <<< "${mem[$((k + 1))]}"
        awk -v l="$label" -v yr="$y_rss" -v yp="$y_pss" -v rr="$r_rss" -v rp="$r_pss" 'BEGIN {
            if (rr > 0 && rp > 0) printf "ratio youki shim/runc shim, %s: RSS %.2f, PSS %.2f\n", l, yr / rr, yp / rp }'
    done
}

# ---------------------------------------------------------------------------------------
# 4. Pods through CRI: the youki handler against the runc handler

pod_handlers=(youki runc)
pause_image=localhost/youki-pause:latest
busybox_image=localhost/youki-busybox:latest

# containerd with CRI, everything private to the run: the CRI tests' config, for the
# containerd on PATH, with $runc as the runc handler's binary.
start_cri_containerd() {
    local d=$work/cri
    # Empty CNI dirs: host-network pods need no CNI, and CRI watches no host directory.
    mkdir -p "$d/cni/bin" "$d/cni/net.d"
    "$cri_config_bin" "$d" --runc "$runc" > "$d/config.toml"
    PATH="$shim_dir:$PATH" containerd --config "$d/config.toml" > "$d/log" 2>&1 &
    cri_pid=$!
    # Up once CRI answers and reports the runtime ready (NetworkReady stays false: no
    # CNI config, which host-network pods do without).
    local out
    for _ in $(seq 150); do
        # Captured, not piped into `grep -q`: with pipefail, a writer cut off by grep's
        # early exit would fail the test.
        out=$(cri --timeout 2 version 2>/dev/null) || true
        [[ "$out" == *$'\nRuntimeReady: true'* ]] && return 0
        kill -0 "$cri_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: containerd with CRI did not come up:" >&2
    tail -n 20 "$d/log" >&2
    return 1
}

cri_failed() {
    echo "bench: $1 failed: $(tail -n 5 "$work/stderr")" >&2
    echo "--- containerd log (tail) ---" >&2
    { grep -v '^[[:space:]]*$' "$work/cri/log" || true; } | tail -n 20 >&2
    return 1
}

# One pod cycle through handler $1, pod name suffix $2; sets $elapsed (microseconds, as
# youki-cri measures it: from RunPodSandbox to RemovePodSandbox's answer, without the
# client's own start).
pod_cycle() {
    elapsed=$(cri pod-cycle --runtime-handler "$1" --image "$busybox_image" --host-network \
        --cgroup-parent "/$pod_cgroup" --name "$pod_prefix$1-$2" 2>> "$work/stderr") \
        || cri_failed "pod-cycle ($1)"
}

# Memory of the shims serving pod $2 through shim binary $1: "rss_kB pss_kB processes
# threads" (smaps_rollup, summed over every process: for ours, the server and its zygote
# if it has one).
pod_shim_memory() {
    local p rss=0 pss=0 procs=0 threads=0 r s t
    for p in $(pids_with "$1" " -address $work/cri/c.sock" " -id $2"); do
        # A zygote leaving meanwhile is not counted.
        r=$(awk '/^Rss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
        s=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
        t=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
        rss=$((rss + r)); pss=$((pss + s)); threads=$((threads + t)); procs=$((procs + 1))
    done
    echo "$rss $pss $procs $threads"
}

# Fails, saying what, if anything of the run's pods is left: a pod or container CRI
# created, a shim, a mount (rootfs, sandbox /dev/shm, netns), a cgroup or a process in one.
pod_leftovers() {
    local left="" c p
    # Every CRI container, sandboxes included, is a containerd container in k8s.io.
    c=$(command ctr --address "$work/cri/c.sock" -n k8s.io containers ls -q 2>&1)
    [ -z "$c" ] || left+="containers: $c; "
    # Shims exit shortly after RemovePodSandbox answered.
    wait_no_shims "$work/cri/c.sock" 30 \
        || left+="shims: $(pids_with containerd-shim- " -address $work/cri/c.sock"); "
    p=$(mounts_under "$work/cri/state" | tr '\n' ' ')
    [ -z "$p" ] || left+="mounts: $p; "
    # (grep finding nothing is the good case: `|| true` for set -e and pipefail.)
    p=$(cgroup_dirs "$pod_cgroup" | { grep -v "/$pod_cgroup\$" || true; } | tr '\n' ' ')
    [ -z "$p" ] || left+="cgroups: $p; "
    p=$({ grep -l ":/$pod_cgroup/" /proc/[0-9]*/cgroup 2>/dev/null || true; } | tr '\n' ' ')
    [ -z "$p" ] || left+="processes: $p; "
    [ -z "$left" ] || { echo "bench: the pods left $left" >&2; return 1; }
}

pod_bench() {
    local i n h
    : > "$work/stderr"
    start_cri_containerd
    # The image tars are kept in the run's dir: removed with it.
    # type -P: `ctr` is also a function here.
    CTR=$(type -P ctr) PAUSE_IMAGE=$pause_image BUSYBOX_IMAGE=$busybox_image \
        scripts/cri-images.sh --address "$work/cri/c.sock" --out "$work/cri/images" \
        > /dev/null 2>> "$work/stderr" || cri_failed "scripts/cri-images.sh"
    # Its progress is no error: a failure below shows only the pods' errors.
    : > "$work/stderr"
    echo
    echo "bench: $pod_runs interleaved pods per CRI runtime handler, private containerd with CRI"
    echo "  (RunPodSandbox + CreateContainer + StartContainer of one busybox sleep, then"
    echo "  StopPodSandbox + RemovePodSandbox; host network)"
    echo "  containerd: $(containerd --version | awk '{ print $3 }')"
    echo "  youki:      io.containerd.youki.v2, $shim_dir/containerd-shim-youki-v2"
    echo "  runc:       io.containerd.runc.v2, $(command -v containerd-shim-runc-v2) with $runc"
    for ((n = 0; n < warmup; n++)); do
        for h in "${pod_handlers[@]}"; do pod_cycle "$h" "w$n"; done
    done
    for h in "${pod_handlers[@]}"; do : > "$work/pod-$h"; done
    for ((n = 0; n < pod_runs; n++)); do
        for h in "${pod_handlers[@]}"; do
            pod_cycle "$h" "$n"
            echo "$elapsed" >> "$work/pod-$h"
        done
    done
    local y_med y_p90 r_med r_p90
    read -r y_med y_p90 < <(stats "$work/pod-youki")
    read -r r_med r_p90 < <(stats "$work/pod-runc")
    echo
    printf '%-16s %6s %11s %9s\n' "pod run+remove" runs "median ms" "p90 ms"
    printf '%-16s %6s %11s %9s\n' youki "$pod_runs" "$y_med" "$y_p90"
    printf '%-16s %6s %11s %9s\n' runc "$pod_runs" "$r_med" "$r_p90"
    awk -v ym="$y_med" -v rm="$r_med" -v yp="$y_p90" -v rp="$r_p90" 'BEGIN {
        printf "ratio youki/runc: median %.2f, p90 %.2f\n", ym / rm, yp / rp }'

    # Memory: one pod of 3 containers per handler, both up at once, idle.
    local ids=() mem=()
    for i in 0 1; do
        h=${pod_handlers[$i]}
        ids[$i]=$(cri pod-up --runtime-handler "$h" --image "$busybox_image" --host-network \
            --containers 3 --cgroup-parent "/$pod_cgroup" --name "${pod_prefix}mem-$h" 2>> "$work/stderr") \
            || cri_failed "pod-up ($h)"
    done
    # Let the shims settle after the starts (as part 3 does): ours until its zygote left.
    sleep 1
    local settled
    for _ in $(seq 200); do
        settled=$(pod_shim_memory "${shim_bins[0]}" "${ids[0]}")
        [ "$(echo "$settled" | cut -d' ' -f3)" -le 1 ] && break
        sleep 0.1
    done
    for i in 0 1; do
        mem[$i]=$(pod_shim_memory "${shim_bins[$i]}" "${ids[$i]}")
    done
    cri pod-down "${ids[@]}" 2>> "$work/stderr" || cri_failed "pod-down"
    pod_leftovers

    echo
    echo "shim memory of one pod, sandbox + 3 containers (/proc/PID/smaps_rollup, summed over"
    echo "the pod's shim processes; ours: the server, its zygote gone idle), kB"
    printf '%-16s %8s %8s %7s %8s\n' handler RSS PSS procs threads
    local rss pss procs threads yr yp yc yt
    for i in 0 1; do
        read -r rss pss procs threads <<< "${mem[$i]}"
        printf '%-16s %8s %8s %7s %8s\n' "${pod_handlers[$i]}" "$rss" "$pss" "$procs" "$threads"
    done
    read -r yr yp yc yt <<< "${mem[0]}"
    read -r rss pss procs threads <<< "${mem[1]}"
    awk -v yr="$yr" -v yp="$yp" -v yc="$yc" -v yt="$yt" -v rr="$rss" -v rp="$pss" -v rc="$procs" -v rt="$threads" 'BEGIN {
        if (rr > 0 && rp > 0 && rc > 0 && rt > 0)
            printf "%-16s %8.2f %8.2f %7.2f %8.2f\n", "ratio youki/runc", yr / rr, yp / rp, yc / rc, yt / rt }'
}

# ---------------------------------------------------------------------------------------
# 5. Docker: `docker run --rm` through our shim against runc

dk() { "$docker_dir/docker" -H "unix://$work/dk/d.sock" "$@"; }
docker_image=youki-bench-busybox:latest

# sid's containerd 2.1 and dockerd, private to the run (as tests/e2e_docker.rs starts them).
start_docker() {
    local d=$work/dk
    mkdir -p "$d"
    containerd_config "$d" > "$d/containerd.toml"
    # sid's runc shim (2.1.9) next to its containerd, not the system's (1.6).
    PATH="$shim_dir:$containerd_sid:$PATH" "$containerd_sid/containerd" --config "$d/containerd.toml" > "$d/containerd.log" 2>&1 &
    dk_ctd_pid=$!
    for _ in $(seq 100); do
        [ -S "$d/c.sock" ] && break
        sleep 0.1
    done
    # examples/docker-daemon.json's shim entry, and a cgroup parent of the run's own.
    cat > "$d/daemon.json" <<EOF
{"runtimes": {"youki": {"runtimeType": "io.containerd.youki.v2"}}, "cgroup-parent": "/$dk_cgroup"}
EOF
    PATH="$shim_dir:$PATH" "$docker_dir/dockerd" --config-file "$d/daemon.json" --containerd "$d/c.sock" \
        --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/d.pid" -H "unix://$d/d.sock" \
        --iptables=false --ip6tables=false --ip-masq=false --bridge=none --userland-proxy=false \
        > "$d/dockerd.log" 2>&1 &
    dk_pid=$!
    for _ in $(seq 300); do
        dk version > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: dockerd did not come up:" >&2
    tail -n 20 "$d/dockerd.log" >&2
    return 1
}

# `docker run --rm` of /bin/true through runtime $1; sets $elapsed (microseconds).
docker_run() {
    local t0 t1
    t0=${EPOCHREALTIME/./}
    dk run --rm --runtime "$1" --network none "$docker_image" /bin/true > /dev/null 2>> "$work/stderr" \
        || { echo "bench: docker run --rm --runtime $1 failed: $(tail -n 5 "$work/stderr")" >&2; return 1; }
    t1=${EPOCHREALTIME/./}
    elapsed=$((t1 - t0))
}

docker_bench() {
    local n rt
    if [ ! -x "$docker_dir/dockerd" ] || [ ! -x "$containerd_sid/containerd" ]; then
        echo
        echo "bench: docker left out: $docker_dir/dockerd or $containerd_sid/containerd missing (scripts/setup.sh)"
        return 0
    fi
    scripts/mkbundle.sh "$work/dk-bundle" /bin/true > /dev/null
    start_docker
    tar -C "$work/dk-bundle/rootfs" -cf "$work/dk-busybox.tar" .
    dk import "$work/dk-busybox.tar" "$docker_image" > /dev/null
    echo
    echo "bench: $docker_runs interleaved \`docker run --rm --network none IMAGE /bin/true\` each, private dockerd"
    echo "  dockerd:    $("$docker_dir/dockerd" --version), containerd $("$containerd_sid/containerd" --version | awk '{ print $3 }')"
    echo "  youki:      runtimeType io.containerd.youki.v2, $shim_dir/containerd-shim-youki-v2"
    echo "  runc:       Docker's default, $containerd_sid/containerd-shim-runc-v2 with $(command -v runc)"
    for ((n = 0; n < warmup; n++)); do
        docker_run youki; docker_run runc
    done
    : > "$work/dk-youki"
    : > "$work/dk-runc"
    for ((n = 0; n < docker_runs; n++)); do
        for rt in youki runc; do
            docker_run "$rt"
            echo "$elapsed" >> "$work/dk-$rt"
        done
    done
    local y_med y_p90 r_med r_p90
    read -r y_med y_p90 < <(stats "$work/dk-youki")
    read -r r_med r_p90 < <(stats "$work/dk-runc")
    echo
    printf '%-16s %6s %11s %9s\n' "docker run --rm" runs "median ms" "p90 ms"
    printf '%-16s %6s %11s %9s\n' "youki shim" "$docker_runs" "$y_med" "$y_p90"
    printf '%-16s %6s %11s %9s\n' "runc" "$docker_runs" "$r_med" "$r_p90"
    awk -v ym="$y_med" -v rm="$r_med" -v yp="$y_p90" -v rp="$r_p90" 'BEGIN {
        printf "ratio youki shim/runc: median %.2f, p90 %.2f\n", ym / rm, yp / rp }'
}

# ---------------------------------------------------------------------------------------
# 6. Checkpoint and restore with CRIU: youki against runc 1.1 and 1.3

ck_criu_dir=/var/cache/youki-shim/criu-sid
ck_runc13=/var/cache/youki-shim/runc-sid/runc
# Set by ckpt_bench: the runtimes' names (with their versions) and binaries, youki first.
ck_names=()
ck_bins=()

# Runtime $1 (an index in ck_bins) with its own state root and CRIU first on its PATH.
ck_runtime() {
    PATH="$ck_criu_dir:$PATH" "${ck_bins[$1]}" --root "$work/ck-root-$1" "${@:2}"
}

# Says that step $2 of runtime $1 failed, with the runtimes' last error lines, and fails.
ck_failed() {
    echo "bench: ${ck_names[$1]} $2 failed: $(tail -n 5 "$work/stderr")" >&2
    return 1
}

# Waits up to 10 s until the counter of the container whose init is $1 is above $2; sets
# $ck_count. Read through /proc/PID/root: /dev/shm is the container's own tmpfs.
ck_wait_count() {
    local deadline=$((SECONDS + 10)) c
    ck_count=
    while [ "$SECONDS" -lt "$deadline" ]; do
        c=""
        # (Braces: a redirection's own error goes to /dev/null too.)
        { read -r c < "/proc/$1/root/dev/shm/count"; } 2>/dev/null || true
        if [[ "$c" =~ ^[0-9]+$ ]] && [ "$c" -gt "$2" ]; then
            ck_count=$c
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# One round of runtime $1, id suffix $2: run -d, checkpoint, restore --detach, kill,
# delete. Sets $ck_dump and $ck_restore (microseconds, the two commands alone) and
# $ck_images (kB of the images).
ck_round() {
    local i=$1 pidfile=$work/ck-pid images=$work/ck-images pid before t0 t1
    ck_i=$i
    ck_id=bench-ck-$i-$2
    rm -f "$pidfile"
    # The container's stdio is the runtime's: /dev/null, which the container reopens as
    # its own (CRIU cannot dump a descriptor of a host file). The runtime's errors go to
    # its log.
    ck_runtime "$i" --log "$work/stderr" run -d --pid-file "$pidfile" --bundle "$work/ck-bundle" "$ck_id" \
        < /dev/null > /dev/null 2>&1 || ck_failed "$i" "run -d"
    pid=""
    read -r pid < "$pidfile" || true # no trailing newline in runc's pid file
    [ -n "$pid" ] || ck_failed "$i" "run -d (no pid file)"
    ck_wait_count "$pid" 2 || ck_failed "$i" "run -d (the counter does not count)"
    before=$ck_count
    t0=${EPOCHREALTIME/./}
    ck_runtime "$i" checkpoint --image-path "$images" "$ck_id" < /dev/null > /dev/null 2>> "$work/stderr" \
        || ck_failed "$i" checkpoint
    t1=${EPOCHREALTIME/./}
    ck_dump=$((t1 - t0))
    ck_images=$(du -sk "$images" | cut -f1)
    rm -f "$pidfile"
    t0=${EPOCHREALTIME/./}
    ck_runtime "$i" restore --detach --pid-file "$pidfile" --image-path "$images" --bundle "$work/ck-bundle" \
        "$ck_id" < /dev/null > /dev/null 2>> "$work/stderr" || ck_failed "$i" "restore --detach"
    t1=${EPOCHREALTIME/./}
    ck_restore=$((t1 - t0))
    pid=""
    read -r pid < "$pidfile" || true
    [ -n "$pid" ] || ck_failed "$i" "restore --detach (no pid file)"
    # Restored, not started again: it counts on from where it was (a new counter starts
    # at 1, and $before is 3 or more).
    ck_wait_count "$pid" 0 && [ "$ck_count" -ge "$before" ] \
        || ck_failed "$i" "restore --detach (the counter was at $before, now ${ck_count:-nothing})"
    ck_wait_count "$pid" "$ck_count" || ck_failed "$i" "restore --detach (the restored counter does not count)"
    ck_runtime "$i" kill "$ck_id" KILL 2>> "$work/stderr" || ck_failed "$i" kill
    wait_exit "$pid"
    ck_runtime "$i" delete "$ck_id" 2>> "$work/stderr" || ck_failed "$i" delete
    ck_id=
    rm -rf "$images"
}

# Fails, saying what, if anything of the part's containers is left: a state directory,
# a mount (the runtimes mount the rootfs for CRIU under their state), a cgroup.
ck_leftovers() {
    local left="" i p
    for i in "${!ck_bins[@]}"; do
        p=$(ls -A "$work/ck-root-$i")
        [ -z "$p" ] || left+="${ck_names[$i]} state: $p; "
    done
    # Its own paths only: the Docker part's daemon keeps its mounts until the cleanup.
    p=$(mounts_under "$work/ck-" | tr '\n' ' ')
    [ -z "$p" ] || left+="mounts: $p; "
    p=$(cgroup_dirs "$ck_cgroup" | tr '\n' ' ')
    [ -z "$p" ] || left+="cgroups: $p; "
    [ -z "$left" ] || { echo "bench: checkpoint part left $left" >&2; return 1; }
}

# Prints the table of one command, $1, from the files of times $2-INDEX, and the ratios.
ck_table() {
    local i meds=() p90s=()
    echo
    printf '%-16s %6s %11s %9s\n' "$1" runs "median ms" "p90 ms"
    for i in "${!ck_bins[@]}"; do
        read -r "meds[$i]" "p90s[$i]" < <(stats "$2-$i")
        printf '%-16s %6s %11s %9s\n' "${ck_names[$i]}" "$ckpt_runs" "${meds[$i]}" "${p90s[$i]}"
    done
    for ((i = 1; i < ${#ck_bins[@]}; i++)); do
        awk -v n="${ck_names[$i]}" -v ym="${meds[0]}" -v rm="${meds[$i]}" -v yp="${p90s[0]}" -v rp="${p90s[$i]}" 'BEGIN {
            printf "ratio youki/%s: median %.2f, p90 %.2f\n", n, ym / rm, yp / rp }'
    done
}

ckpt_bench() {
    local i n out v b
    echo
    if [ ! -x "$ck_criu_dir/criu" ]; then
        echo "bench: checkpoint/restore left out: $ck_criu_dir/criu missing (scripts/setup.sh)"
        return 0
    fi
    out=$("$ck_criu_dir/criu" check 2>&1) || true
    if [[ "$out" != *"Looks good"* ]]; then
        echo "bench: checkpoint/restore left out: \`$ck_criu_dir/criu check\` fails: $(tail -n 3 <<< "$out")"
        return 0
    fi
    ck_names=(youki)
    ck_bins=("$youki")
    for b in "$runc" "$ck_runc13"; do
        # (RUNC_BIN may be runc 1.3 itself.)
        [ "$b" = "${ck_bins[1]:-}" ] && continue
        v=$("$b" --version 2>/dev/null | awk 'NR == 1 { print $3 }') || true
        if [ -z "$v" ]; then
            echo "bench: checkpoint/restore: $b left out: it does not run (scripts/setup.sh)"
            continue
        fi
        ck_names+=("runc ${v%%+*}")
        ck_bins+=("$b")
    done
    CGROUPS_PATH=/$ck_cgroup scripts/mkbundle.sh "$work/ck-bundle" sh -c \
        'i=0; while :; do i=$((i+1)); echo $i > /dev/shm/count; sleep 0.1; done'
    for i in "${!ck_bins[@]}"; do
        mkdir -p "$work/ck-root-$i"
        : > "$work/ck-dump-$i"
        : > "$work/ck-restore-$i"
    done
    : > "$work/stderr"
    echo "bench: $ckpt_runs interleaved rounds each of a busybox counter container: run -d, then timed"
    echo "  \`checkpoint --image-path I\` and \`restore --detach --pid-file P --image-path I\`"
    echo "  (until the restored counter runs), then kill and delete; the same bundle for all"
    echo "  CRIU:  $ck_criu_dir/criu $("$ck_criu_dir/criu" --version | awk '/^Version/ { print $2 }'), first on PATH"
    for i in "${!ck_bins[@]}"; do
        printf '  %-12s%s\n' "${ck_names[$i]}:" "${ck_bins[$i]}"
    done
    for i in "${!ck_bins[@]}"; do
        ck_round "$i" w
    done
    local sizes=()
    for ((n = 0; n < ckpt_runs; n++)); do
        for i in "${!ck_bins[@]}"; do
            ck_round "$i" "$n"
            echo "$ck_dump" >> "$work/ck-dump-$i"
            echo "$ck_restore" >> "$work/ck-restore-$i"
            sizes[$i]=$ck_images
        done
    done
    ck_leftovers
    ck_table checkpoint "$work/ck-dump"
    ck_table "restore --detach" "$work/ck-restore"
    echo
    out=""
    for i in "${!ck_bins[@]}"; do
        out+="${out:+, }${ck_names[$i]} ${sizes[$i]}"
    done
    echo "checkpoint images (du), kB: $out"
}

if want cli; then
    cli_bench
fi
if want shim; then
    shim_bench
fi
if want pod; then
    pod_bench
fi
if want docker; then
    docker_bench
fi
if want checkpoint; then
    ckpt_bench
fi
