#!/usr/bin/env bash
# `make bench`: the create + start + wait + delete cycle of a busybox
# /bin/true container, youki against runc, interleaved (one youki cycle, one
# runc cycle, ...), N runs each. Prints median and p90 in ms, the ratios
# youki/runc, and the peak RSS of one runtime command.
#
#   BENCH_RUNS=50        cycles per runtime (after 3 warm-up cycles each)
#   YOUKI_BIN=target/release/youki
#   RUNC_BIN=$(command -v runc)
#
# Needs root. Each runtime gets its own --root; everything is removed at exit.
# No times are asserted anywhere: this only measures.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${BENCH_RUNS:-50}
youki=${YOUKI_BIN:-target/release/youki}
runc=${RUNC_BIN:-$(command -v runc || true)}
warmup=3

[ "$(id -u)" -eq 0 ] || { echo "bench: run as root" >&2; exit 1; }
[ -x "$youki" ] || { echo "bench: $youki not built (cargo build --release)" >&2; exit 1; }
[ -n "$runc" ] && [ -x "$runc" ] || { echo "bench: runc not found (scripts/setup.sh)" >&2; exit 1; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RUNS must be a positive integer" >&2; exit 1; }

work=$(mktemp -d /tmp/youki-bench.XXXXXX)
names=(youki runc)
bins=("$youki" "$runc")
current_ids=("" "")

cleanup() {
    for i in 0 1; do
        if [ -n "${current_ids[$i]}" ]; then
            "${bins[$i]}" --root "$work/root-${names[$i]}" delete --force "${current_ids[$i]}" >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

for i in 0 1; do
    mkdir -p "$work/root-${names[$i]}"
    CGROUPS_PATH=/youki-bench-$$-${names[$i]} scripts/mkbundle.sh "$work/bundle-${names[$i]}" /bin/true
done

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

# One cycle; prints the elapsed microseconds. $3 = a command prefix for
# measuring RSS (empty for timing runs).
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
rss=("n/a" "n/a")
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

# median / p90 in ms from a file of microseconds
stats() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        i = int(NR * 0.9 + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
        printf "%.2f %.2f\n", m / 1000, v[i] / 1000 }'
}
read -r y_med y_p90 < <(stats "$work/times-youki")
read -r r_med r_p90 < <(stats "$work/times-runc")

kib_to_mib() { [ "$1" = n/a ] && echo n/a || awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo
printf '%-8s %6s %11s %9s %16s\n' runtime runs "median ms" "p90 ms" "peak RSS MiB"
printf '%-8s %6s %11s %9s %16s\n' youki "$runs" "$y_med" "$y_p90" "$(kib_to_mib "${rss[0]}")"
printf '%-8s %6s %11s %9s %16s\n' runc "$runs" "$r_med" "$r_p90" "$(kib_to_mib "${rss[1]}")"
awk -v ym="$y_med" -v rm="$r_med" -v yp="$y_p90" -v rp="$r_p90" 'BEGIN {
    printf "ratio youki/runc: median %.2f, p90 %.2f\n", ym / rm, yp / rp }'
if [ "${rss[0]}" != n/a ]; then
    awk -v y="${rss[0]}" -v r="${rss[1]}" 'BEGIN { printf "ratio youki/runc: peak RSS %.2f\n", y / r }'
fi
