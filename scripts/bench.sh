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
#    server and its zygote together): one shim serving one `sleep` container, then 20
#    containers (20 shims) per runtime, against containerd-shim-runc-v2.
#
#   BENCH_RUNS=50        CLI cycles per runtime (after 3 warm-up cycles each)
#   BENCH_SHIM_RUNS=50   `ctr run --rm` per runtime (after 3 warm-up runs each)
#   BENCH_SHIMS=20       containers (shims) per runtime for the memory figures
#   BENCH_ONLY=cli|shim  run only one part (default: both)
#   YOUKI_BIN=target/x86_64-unknown-linux-gnu/release/youki
#   SHIM_DIR=target/x86_64-unknown-linux-gnu/release (holds containerd-shim-youki-v2; unset: built here first)
#   RUNC_BIN=$(command -v runc)
#
# Needs root. Everything is removed at exit (containers, shims, mounts, cgroups, the
# private containerd, its directories). No times are asserted anywhere: this only
# measures.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-50}
shim_runs=${BENCH_SHIM_RUNS:-50}
nshims=${BENCH_SHIMS:-20}
only=${BENCH_ONLY:-}
youki=${YOUKI_BIN:-target/x86_64-unknown-linux-gnu/release/youki}
shim_dir=${SHIM_DIR:-target/x86_64-unknown-linux-gnu/release}
runc=${RUNC_BIN:-$(command -v runc || true)}
warmup=3

[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
for v in runs shim_runs nshims; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "bench: $v (BENCH_*) must be a positive integer" >&2; exit 1; }
done
case "$only" in ""|cli|shim) ;; *) echo "bench: BENCH_ONLY must be cli or shim" >&2; exit 1 ;; esac
[ -n "$runc" ] && [ -x "$runc" ] || { echo "bench: runc not found (scripts/setup.sh)" >&2; exit 1; }
if [ "$only" != shim ]; then
    [ -x "$youki" ] || { echo "bench: $youki not built (cargo build --release)" >&2; exit 1; }
fi
if [ "$only" != cli ]; then
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

cleanup() {
    set +e
    for i in 0 1; do
        if [ -n "${current_ids[$i]}" ]; then
            "${bins[$i]}" --root "$work/root-${names[$i]}" delete --force "${current_ids[$i]}" >/dev/null 2>&1
        fi
    done
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
    local m d
    for m in $(awk -v w="$work" '$5 ~ "^" w { print $5 }' /proc/self/mountinfo | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    for d in /sys/fs/cgroup/*/"$ns" /sys/fs/cgroup/*/*/"$ns" /sys/fs/cgroup/"$ns" /run/containerd/runc/"$ns"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null
    done
    rm -rf "$work"
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

start_containerd() {
    mkdir -p "$work/ctd" "$work/fifo"
    cat > "$work/ctd/config.toml" <<EOF
version = 2
root = "$work/ctd/root"
state = "$work/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/ctd/c.sock"
[ttrpc]
  address = "$work/ctd/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
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
# (smaps_rollup, summed over every process of those shims: for ours, server and zygote).
shim_memory() {
    local bin=$1 id p rss=0 pss=0 procs=0 threads=0 r s t
    shift
    for id in "$@"; do
        for p in $(pids_with "$bin -namespace $ns -id $id "); do
            r=$(awk '/^Rss:/ { print $2 }' "/proc/$p/smaps_rollup")
            s=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup")
            t=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status")
            rss=$((rss + r)); pss=$((pss + s)); threads=$((threads + t)); procs=$((procs + 1))
        done
    done
    echo "$rss $pss $procs $threads"
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
    for i in 0 1; do
        ids=()
        for ((n = 0; n < nshims; n++)); do ids+=("mem-$i-$n"); done
        mem[$((i + 2))]=$(shim_memory "${shim_bins[$i]}" "${ids[@]}")
    done
    for i in 0 1; do
        stop_sleepers "$i" "$nshims"
    done

    echo
    echo "idle shim memory (/proc/PID/smaps_rollup; ours = server + zygote), kB"
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

if [ "$only" != shim ]; then
    cli_bench
fi
if [ "$only" != cli ]; then
    shim_bench
fi
