#!/usr/bin/env bash
# The kernel-facing tests on a pure cgroup v2 system: a qemu VM booting Debian's stock
# kernel with `cgroup_no_v1=all`, cgroup2 alone at /sys/fs/cgroup (this host is hybrid v1).
#   scripts/vm-test.sh            build the test binaries, boot the VM, run them, report
#   scripts/vm-test.sh --fetch    only fetch the kernel and sid's runc (scripts/setup.sh)
# Run by scripts/test.sh (make test) and by `make test-vm`. Needs root, qemu-system-x86,
# cpio, busybox-static, jq, patchelf, systemd (scripts/debian-packages.txt).
#
# Then a second VM, with systemd as pid 1 (VM_MODE=systemd, which this script runs itself
# with at its end unless VM_SYSTEMD=0): the same kernel and shares, but stage 1 switch_roots
# into the host's /lib/systemd/systemd (Debian's systemd package, shared with /usr) with
# systemd.unit=youki-vm.target, whose one service runs stage 2's plan: the systemd cgroup
# driver's tests (tests/systemd.rs, its `--ignored` tests) against youki, runc 1.1.5 and
# runc 1.3.6, and the shim's (tests/e2e_shim_systemd.rs with ctr, tests/e2e_cri_systemd.rs
# with CRI pods in a .slice; containerd 2.1.9, containerd's runc shim beside). No dbus-daemon: the driver and systemctl use systemd's
# private socket.
#
# How:
# - Kernel: the linux-image-6.x-amd64 package bookworm's linux-image-amd64 depends on,
#   downloaded through the system's apt and unpacked into /var/cache/youki-shim
#   (scripts/vm/fetch-kernel.sh; a second run downloads nothing).
# - initramfs (cpio newc, gzip): /bin/busybox (static), the modules 9p and overlay need from
#   the package (those built as modules, =m in its config), the two init stages
#   (scripts/vm/init, scripts/vm/stage2), the plan (which test binary runs how) and a few
#   files of the host's /etc (passwd, group, ld.so.cache, ...). Built per run in a temp dir.
# - Files: by virtio-9p. The host's /usr read-only as the guest's /usr (busybox, gcc for
#   the tests' helper, runc, the libraries of runc and containerd); the repository
#   read-write at the same absolute path (test binaries embed CARGO_MANIFEST_DIR and
#   CARGO_TARGET_TMPDIR: tests read tests/data and build their helper into
#   target/<triple>/tmp); /var/cache/youki-shim read-only (containerd 2.1.9 and runc 1.3.6
#   from sid); at /vm/bin a snapshot of the test executables, youki (RUNTIME_BIN) and the
#   shim (SHIM_DIR), read-only, taken when the run starts (a rebuild in the shared tree
#   meanwhile changes nothing in the VM); a results directory read-write. Containers, bundles and containerd's state live in the
#   guest's tmpfs /tmp.
# - Boot: qemu-system-x86_64 -nographic -no-reboot, serial console, 2 vCPUs, VM_MEM (3 GiB),
#   no network device, under `timeout` (VM_TIMEOUT seconds); killed by its pid at the end
#   whatever happens. Accelerator: VM_ACCEL=kvm|tcg, else TCG on a PVM host (the kvm_pvm
#   module is loaded: a stock kernel does not boot under its KVM), else a bounded KVM probe
#   boot, else TCG (`-accel tcg,thread=multi`).
# - Results: each test binary runs as cargo runs it (from its package's directory) with
#   --test-threads VM_TEST_THREADS; its output is shown live on the console (lines prefixed
#   with "vm| ") and written to the results share with its exit code. Afterwards this
#   script prints each binary's own `test result:` line (which scripts/test.sh sums) and
#   fails if any binary failed, timed out or did not run.
# - The guest's pid 1 (stage 2, busybox sh) runs the plan in a child and waits, reaping
#   orphaned container processes as an init does. The tests' default config has a cgroup
#   namespace there, as `runc spec` writes on a pure v2 host (tests/common/mod.rs).
#
# Settings (environment): VM_ONLY=ERE (only the matching labels, e.g. 'youki-' or
# 'e2e_shim|runc1.3-exec'), VM_ACCEL=kvm|tcg, VM_TIMEOUT (whole VM, 900 s), VM_BIN_TIMEOUT
# (one test binary, 300 s), VM_TEST_THREADS (2), VM_MEM (MiB, 3072), VM_RUNC_SID=0,
# VM_KEEP=1 (keep the run directory: console.log, results/LABEL.log, dmesg.log).
#
# Against runc (the check of the tests, as the README describes for the host): the same CLI
# tests with RUNTIME_BIN=/usr/sbin/runc (bookworm's 1.1.5, and sid's 1.3.6 unpacked by
# scripts/vm/fetch-runc.sh; VM_RUNC_SID=0 leaves it out). The tests runc itself fails, on
# this host as in the VM, are skipped in those runs (listed below with the reason); any
# other failure against runc fails the run, as a failure against youki does.
set -euo pipefail
# The whole script is one compound command, read before it runs: editing this file while a
# run is under way cannot change that run.
{
cd "$(dirname "$0")/.."
repo=$(pwd -P)

cache=/var/cache/youki-shim
accel=${VM_ACCEL:-}
vm_timeout=${VM_TIMEOUT:-900}
vm_mem=${VM_MEM:-3072}
threads=${VM_TEST_THREADS:-2}
# One test binary may take this long in the VM before it is killed (the slowest takes ~70 s).
bin_timeout=${VM_BIN_TIMEOUT:-300}
runc_sid=${VM_RUNC_SID:-1}
# Only the test binaries whose label (as the results table shows it, e.g. youki-resources,
# runc1.1-exec) matches this extended regular expression.
only=${VM_ONLY:-}
# cgroup2: the VM above; systemd: the VM with systemd as pid 1.
mode=${VM_MODE:-cgroup2}
case $mode in
cgroup2 | systemd) ;;
*) echo "vm-test: VM_MODE=$mode: cgroup2 or systemd" >&2; exit 1 ;;
esac

die() {
    echo "vm-test: $*" >&2
    exit 1
}

fetch() {
    scripts/vm/fetch-kernel.sh "$cache"
    scripts/fetch-containerd.sh sid "$cache/containerd-sid" >/dev/null
    if [ "$runc_sid" = 1 ]; then
        scripts/vm/fetch-runc.sh sid "$cache/runc-sid" >/dev/null
    fi
}

if [ "${1:-}" = "--fetch" ]; then
    fetch >/dev/null
    exit 0
fi
[ "$#" -eq 0 ] || die "usage: scripts/vm-test.sh [--fetch]"
[ "$(id -u)" -eq 0 ] || die "must run as root (the tests run containers in the VM; qemu shares files as root)"
for tool in qemu-system-x86_64:qemu-system-x86 cpio:cpio gzip:gzip jq:jq patchelf:patchelf timeout:coreutils cargo:rustup /lib/systemd/systemd:systemd; do
    command -v "${tool%%:*}" >/dev/null ||
        die "${tool%%:*} not found: install Debian's ${tool#*:} (scripts/setup.sh, scripts/debian-packages.txt)"
done
busybox=/bin/busybox
[ -x "$busybox" ] || die "$busybox missing: install Debian's busybox-static"
"$busybox" --list | grep -qx switch_root || die "$busybox has no switch_root applet"
case $repo in
*[[:space:]]*) die "the repository path '$repo' contains white space, which the VM's mounts do not take" ;;
esac

# --------------------------------------------------------------------------------------
# What runs in the VM.

# The CLI's tests that face the kernel's cgroups and namespaces.
cli_tests=(lifecycle resources security exec cgroups namespaces)
# containerd 2.1.9 with our shim: run/rm, ls/ps/kill, pause/resume + metrics, OOM event, exec.
# Left out: shim_runs_an_image_from_an_overlay_snapshot, whose image is made by
# scripts/mkimage.sh (a fork per busybox applet: ~45 s under TCG, over the test's 30 s
# client bound), and the shim's own ttrpc_service tests, whose bundles are made by
# scripts/mkbundle.sh (same cost, several bundles per test: over 7 minutes in all); the shim's
# cgroup v2 paths (create, pause/resume, stats, OOM) are what the tests below exercise.
shim_tests=(
    shim_run_rm_output_and_exit_code
    shim_detached_ls_ps_kill_delete
    shim_pause_resume_and_metrics
    shim_memory_limit_oom_event_and_exit_137
    shim_exec_output_exit_code_ps_and_stdin
)
# Tests runc itself fails, on this hybrid host as in the VM; skipped in the runs against runc
# only (a failure of any other test against runc fails the run, as against youki). A new
# test that runc fails (marked "NOTE: runc ... FAILS") belongs here too, with the reason:
# - exec bad_exec_requests_are_clear_errors: runc's message does not name the container
#   (NOTE in tests/exec.rs).
# - resources bad_input_gives_clear_errors: runc says "container does not exist" without
#   the id.
# - resources pause_freezes_and_resume_thaws: runc refuses to pause a paused container with
#   "container not running", not naming the paused state.
# - resources events_streams_stats_and_oom_until_the_container_stops: `runc events` does not
#   exit when the container stops.
# - security cwd_through_proc_self_fd_cannot_reach_the_host: runc (with its CVE-2024-21626
#   fix) refuses to start the container at all, where the test expects it to start with a
#   cwd inside the container.
# - security runtime_binary_cannot_be_reached_through_proc_exe: runc's exec'd runtime
#   process never reaches the test's sendto probe.
# - cgroups absent_cgroups_path_is_under_youki_named_by_id: youki's own default parent
#   (/youki/<id>); runc has another.
# - resources limits_the_kernel_refuses_are_refused (on v2 only; it passes on the host): runc
#   maps cpu shares to cpu.weight, and 262145 becomes 10000 (1.3.6 also takes shares 1, as
#   weight 1), which the kernel accepts: runc creates the container.
# - namespaces a_container_without_a_mount_namespace_leaves_no_mount_on_the_host,
#   exec_without_a_mount_namespace_runs_in_the_containers_root: runc leaves the rootfs bind
#   and the spec's mounts after delete, and refuses the exec (NOTEs in tests/namespaces.rs).
# - lifecycle delete_detaches_a_mount_left_in_the_state_directory: runc removes its state
#   directory with os.RemoveAll, which goes into the mount (NOTE in tests/lifecycle.rs).
runc_skips=(
    delete_detaches_a_mount_left_in_the_state_directory
    limits_the_kernel_refuses_are_refused
    a_container_without_a_mount_namespace_leaves_no_mount_on_the_host
    exec_without_a_mount_namespace_runs_in_the_containers_root
    bad_exec_requests_are_clear_errors
    bad_input_gives_clear_errors
    pause_freezes_and_resume_thaws
    events_streams_stats_and_oom_until_the_container_stops
    cwd_through_proc_self_fd_cannot_reach_the_host
    runtime_binary_cannot_be_reached_through_proc_exe
    absent_cgroups_path_is_under_youki_named_by_id
)
# Only against runc 1.1.5:
# - cgroups memory_pids_cpu_limits_are_visible: on v2 it maps cpu.shares 512 to cpu.weight 20
#   (the linear mapping runc used before 1.3), the test wants runc 1.3's 59.
# - resources events_stats_reports_psi_as_runc: runc reports PSI in `events` from 1.2 on.
# - lifecycle delete_kills_what_outlived_init_without_a_pid_namespace: runc 1.1.5's delete
#   SIGKILLs the leftover process and removes the v2 cgroup with one rmdir, without waiting
#   for the process to be gone: under TCG the rmdir often comes first (EBUSY) and the cgroup
#   is left behind (2 runs in 4; later runc waits; 1.3.6 passes).
# - namespaces time_offsets_shift_the_clocks_of_a_new_time_namespace: runc 1.1.5 knows no
#   time namespace (NOTE in tests/namespaces.rs).
runc11_skips=(
    time_offsets_shift_the_clocks_of_a_new_time_namespace
    memory_pids_cpu_limits_are_visible
    events_stats_reports_psi_as_runc
    delete_kills_what_outlived_init_without_a_pid_namespace
)
# Only against runc 1.3.6:
# - exec user_env_and_cwd: runc 1.3 adds the user's primary gid to the additional groups
#   ("1000 2000 2000"), where the spec lists only additionalGids.
runc13_skips=(user_env_and_cwd)

# --------------------------------------------------------------------------------------
# Build (a no-op after `cargo test --workspace`).

echo "== vm-test: building the test binaries"
build_json=$(mktemp /tmp/youki-vm-build.XXXXXX)
# The whole workspace's test targets, as `cargo test --workspace` builds them (same features,
# so this is a no-op after it): "PACKAGE-DIR TARGET EXECUTABLE" per test target.
declare -A exe
# (json-render-diagnostics: compiler messages on stderr, as usual; JSON on stdout.)
if ! cargo test --workspace --no-run --message-format=json-render-diagnostics >"$build_json"; then
    rm -f "$build_json"
    die "cargo test --workspace --no-run failed (the errors are above)"
fi
while read -r dir name path; do
    case $dir in
    "$repo") exe[$name]=$path ;;
    "$repo/runtime-core") exe[core_$name]=$path ;;
    "$repo/shim") exe[shim_$name]=$path ;;
    esac
done < <(jq -r 'select(.reason == "compiler-artifact" and .executable != null and .profile.test
                  and (.target.kind | index("test")))
           | "\(.manifest_path | rtrimstr("/Cargo.toml")) \(.target.name) \(.executable)"' "$build_json")
rm -f "$build_json"
for t in "${cli_tests[@]}" e2e_shim e2e_shim_systemd e2e_cri_systemd core_cgroups systemd; do
    [ -n "${exe[$t]:-}" ] || die "cargo built no test executable for $t"
done
# target/<triple>/debug, where cargo put youki and containerd-shim-youki-v2 for the tests.
bin_dir=$(dirname "$(dirname "${exe[lifecycle]}")")
for b in youki containerd-shim-youki-v2; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b not built"
done

fetch_out=$(fetch) || die "fetching the kernel, containerd or runc failed"
kernel_dir=$(head -n 1 <<<"$fetch_out")
vmlinuz=$(ls "$kernel_dir"/boot/vmlinuz-*)
kconfig=$(ls "$kernel_dir"/boot/config-*)
containerd_bin=$cache/containerd-sid/usr/bin
[ -x "$containerd_bin/containerd" ] || die "$containerd_bin/containerd missing (scripts/fetch-containerd.sh sid)"

# --------------------------------------------------------------------------------------
# The run directory, the VM's cleanup.

run=$(mktemp -d /tmp/youki-vm.XXXXXX)
qemu_pid=""
console_pid=""
# Kills this run's VM: qemu by the pid it wrote (if that process is still this run's qemu:
# its command line names the run directory), then `timeout` by its pid.
kill_vm() {
    local pid
    pid=$(cat "$run/qemu.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && grep -qF "$run/initrd.gz" "/proc/$pid/cmdline" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [ -n "$qemu_pid" ]; then
        kill -KILL "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
        qemu_pid=""
    fi
}
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$?
    kill_vm
    if [ -n "$console_pid" ]; then
        kill "$console_pid" 2>/dev/null || true
    fi
    if [ "${VM_KEEP:-0}" = 1 ]; then
        echo "vm-test: kept $run" >&2
    else
        rm -rf "$run"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$run/initramfs" "$run/results" "$run/bin"

# A snapshot of what runs, shared read-only at /vm/bin: the test executables, youki (the
# tests' RUNTIME_BIN) and the shim (SHIM_DIR). Other work in the same tree may rebuild
# target/ during the run; a binary replaced under the guest's 9p cache is not one to test.
for b in youki containerd-shim-youki-v2; do
    cp "$bin_dir/$b" "$run/bin/$b"
done
for t in "${cli_tests[@]}" e2e_shim e2e_shim_systemd e2e_cri_systemd core_cgroups systemd; do
    cp "${exe[$t]}" "$run/bin/test-$t"
done
vm_bin=/vm/bin
if [ "$mode" = systemd ]; then
    # The CRI test's two images (test-support/src/cri.rs, YOUKI_CRI_IMAGES): made in the
    # VM they would cost a minute of TCG (a fork per busybox applet).
    mkdir -p "$run/bin/images"
    scripts/mkimage.sh --pause "$run/bin/images/pause.tar" >/dev/null || die "scripts/mkimage.sh --pause failed"
    scripts/mkimage.sh "$run/bin/images/busybox.tar" >/dev/null || die "scripts/mkimage.sh failed"
fi

# --------------------------------------------------------------------------------------
# The plan: one `run LABEL SECONDS DIR COMMAND...` line per test binary (scripts/vm/stage2).

labels=()
plan_line() {
    local label=$1
    shift
    if [ -n "$only" ] && ! grep -qE -- "$only" <<<"$label"; then
        return 0
    fi
    labels+=("$label")
    {
        printf 'run %q %q' "$label" "$bin_timeout"
        printf ' %q' "$@"
        echo
    } >>"$run/plan"
}
skip_args() {
    local s
    for s in "$@"; do printf -- '--skip\n%s\n' "$s"; done
}
test_args=(--test-threads "$threads")
: >"$run/plan"
if [ "$mode" = systemd ]; then
    # The tests that need systemd as init; the others of tests/systemd.rs need its absence
    # (they run on the host).
    plan_line youki-systemd "$repo" env "RUNTIME_BIN=$vm_bin/youki" "$vm_bin/test-systemd" "${test_args[@]}" --ignored
    plan_line runc1.1-systemd "$repo" env RUNTIME_BIN=/usr/sbin/runc "$vm_bin/test-systemd" "${test_args[@]}" --ignored
    if [ "$runc_sid" = 1 ]; then
        plan_line runc1.3-systemd "$repo" env "RUNTIME_BIN=$cache/runc-sid/runc" "$vm_bin/test-systemd" "${test_args[@]}" --ignored
    fi
    # The shim through containerd 2.1.9 with systemd-form cgroup paths; each test also
    # runs containerd's runc shim (runc 1.1.5) as the reference.
    plan_line youki-e2e_shim_systemd-containerd2 "$repo" env "PATH=$containerd_bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "SHIM_DIR=$vm_bin" "$vm_bin/test-e2e_shim_systemd" "${test_args[@]}" --ignored
    # Pods in a .slice through containerd 2.1.9's CRI (our shim under both registrations,
    # runc's shim with SystemdCgroup beside); the images are built here, on the host.
    plan_line youki-e2e_cri_systemd-containerd2 "$repo" env "PATH=$containerd_bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "SHIM_DIR=$vm_bin" "YOUKI_CRI_IMAGES=$vm_bin/images" "$vm_bin/test-e2e_cri_systemd" "${test_args[@]}" --ignored
fi
# youki: the CLI tests, runtime-core's cgroup tests and the shim through containerd 2.1.9.
[ "$mode" = cgroup2 ] && for t in "${cli_tests[@]}"; do
    plan_line "youki-$t" "$repo" env "RUNTIME_BIN=$vm_bin/youki" "SHIM_DIR=$vm_bin" \
        "$vm_bin/test-$t" "${test_args[@]}"
done
[ "$mode" = cgroup2 ] && plan_line youki-core-cgroups "$repo/runtime-core" "$vm_bin/test-core_cgroups" "${test_args[@]}"
[ "$mode" = cgroup2 ] && plan_line youki-e2e_shim-containerd2 "$repo" env "PATH=$containerd_bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "SHIM_DIR=$vm_bin" "$vm_bin/test-e2e_shim" "${test_args[@]}" --exact "${shim_tests[@]}"
# runc: the CLI tests again.
mapfile -t skips < <(skip_args "${runc_skips[@]}" "${runc11_skips[@]}")
[ "$mode" = cgroup2 ] && for t in "${cli_tests[@]}"; do
    plan_line "runc1.1-$t" "$repo" env RUNTIME_BIN=/usr/sbin/runc "$vm_bin/test-$t" "${test_args[@]}" --exact "${skips[@]}"
done
if [ "$mode" = cgroup2 ] && [ "$runc_sid" = 1 ]; then
    mapfile -t skips < <(skip_args "${runc_skips[@]}" "${runc13_skips[@]}")
    for t in "${cli_tests[@]}"; do
        plan_line "runc1.3-$t" "$repo" env "RUNTIME_BIN=$cache/runc-sid/runc" "$vm_bin/test-$t" "${test_args[@]}" --exact "${skips[@]}"
    done
fi

if [ "${#labels[@]}" -eq 0 ]; then
    # The systemd VM's labels are few: a VM_ONLY for the other VM leaves it nothing to do.
    [ "$mode" = systemd ] && exit 0
    die "VM_ONLY=$only matches no test binary"
fi

# --------------------------------------------------------------------------------------
# The initramfs.

ird=$run/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,vm,etc,lib/modules}
cp "$busybox" "$ird/bin/busybox"
cp scripts/vm/init "$ird/init"
cp scripts/vm/stage2 "$run/plan" "$ird/vm/"
chmod 755 "$ird/init" "$ird/vm/stage2"
{
    echo "VM_REPO=$repo"
    echo "VM_CACHE=$cache"
    # What stage 1 switch_roots into: stage 2 itself, or systemd, which runs stage 2 as the
    # service of youki-vm.target.
    if [ "$mode" = systemd ]; then echo "VM_INIT=/lib/systemd/systemd"; fi
} >"$ird/vm/conf"
if [ "$mode" = systemd ]; then
    mkdir -p "$ird/etc/systemd/system"
    cp scripts/vm/youki-vm.target scripts/vm/youki-vm.service "$ird/etc/systemd/system/"
fi
for f in passwd group shadow nsswitch.conf hosts ld.so.cache ld.so.conf ld.so.conf.d; do
    if [ -e "/etc/$f" ]; then cp -a "/etc/$f" "$ird/etc/"; fi
done
echo youki-vm >"$ird/etc/hostname"
# CRI copies the node's resolv.conf into every pod; the VM has no network.
echo "# youki-vm: no network" >"$ird/etc/resolv.conf"

# Kernel modules: MODULE:CONFIG_SYMBOL; those built in (=y) need nothing, those built as
# modules (=m) are copied with their dependencies (the depends= of their .modinfo), in
# load order.
mod_root=$(ls -d "$kernel_dir"/lib/modules/*)
declare -A mod_path=() mod_seen=()
while IFS= read -r -d '' f; do
    n=$(basename "$f")
    n=${n%%.ko*}
    mod_path[${n//-/_}]=$f
done < <(find "$mod_root" -name '*.ko' -print0 -o -name '*.ko.xz' -print0 -o -name '*.ko.zst' -print0)
mod_order=()
add_module() {
    local n=${1//-/_} f deps d
    [ -z "${mod_seen[$n]:-}" ] || return 0
    mod_seen[$n]=1
    f=${mod_path[$n]:-}
    [ -n "$f" ] || die "kernel module $n not found under $mod_root"
    case $f in
    *.xz) xz -dc "$f" >"$ird/lib/modules/$n.ko" ;;
    *.zst) zstd -qdc "$f" >"$ird/lib/modules/$n.ko" ;;
    *) cp "$f" "$ird/lib/modules/$n.ko" ;;
    esac
    deps=$(tr '\0' '\n' <"$ird/lib/modules/$n.ko" | sed -n 's/^depends=//p' | head -n 1)
    for d in ${deps//,/ }; do add_module "$d"; done
    mod_order+=("$n")
}
for m in virtio_pci:CONFIG_VIRTIO_PCI 9pnet_virtio:CONFIG_NET_9P_VIRTIO 9p:CONFIG_9P_FS overlay:CONFIG_OVERLAY_FS; do
    case $(sed -n "s/^${m#*:}=//p" "$kconfig") in
    y) ;;
    m) add_module "${m%%:*}" ;;
    *) die "$kconfig: ${m#*:} is neither built in nor a module" ;;
    esac
done
printf '%s\n' "${mod_order[@]}" >"$ird/lib/modules/order"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1 >"$run/initrd.gz")

# --------------------------------------------------------------------------------------
# Boot.

ninep() { # TAG PATH [ro]
    local opt=""
    [ "${3:-}" = ro ] && opt=",readonly=on"
    echo "-virtfs" "local,path=$2,mount_tag=$1,security_model=passthrough,multidevs=remap$opt"
}
cmdline="console=ttyS0 cgroup_no_v1=all panic=-1 quiet loglevel=1"
if [ "$mode" = systemd ]; then
    cmdline+=" systemd.unit=youki-vm.target systemd.show_status=0"
fi
qemu_args() { # ACCEL
    local cpu=max
    [ "$1" = kvm ] && cpu=host
    local a="-accel $1"
    [ "$1" = tcg ] && a="-accel tcg,thread=multi"
    echo "$a" -cpu "$cpu" -smp 2 -m "$vm_mem" -nographic -no-reboot -nic none \
        -kernel "$vmlinuz" -initrd "$run/initrd.gz"
}

if [ -z "$accel" ]; then
    if [ -d /sys/module/kvm_pvm ]; then
        accel=tcg
        echo "== vm-test: PVM host (kvm_pvm loaded): a stock kernel does not boot under its KVM, using TCG"
    elif [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        # A probe boot, bounded: the guest prints VM-PROBE-OK and powers off.
        # shellcheck disable=SC2046 # qemu_args prints words
        timeout -k 5 30 qemu-system-x86_64 $(qemu_args kvm) -append "$cmdline vm.probe" \
            </dev/null >"$run/probe.log" 2>&1 || true
        if grep -q VM-PROBE-OK "$run/probe.log"; then
            accel=kvm
        else
            accel=tcg
            echo "== vm-test: the KVM probe boot failed, using TCG"
        fi
    else
        accel=tcg
    fi
fi
case $accel in
kvm | tcg) ;;
*) die "VM_ACCEL=$accel: kvm or tcg" ;;
esac

echo "== vm-test: booting $(basename "$vmlinuz") ($accel, $vm_mem MiB, 2 vCPUs), cgroup_no_v1=all, init: ${mode/cgroup2/busybox}; ${#labels[@]} test binaries, at most $vm_timeout s"
start=$(date +%s.%N)
: >"$run/console.log"
# shellcheck disable=SC2046 # qemu_args and ninep print words
timeout -k 10 "$vm_timeout" qemu-system-x86_64 $(qemu_args "$accel") -append "$cmdline" \
    -pidfile "$run/qemu.pid" \
    $(ninep usr /usr ro) $(ninep repo "$repo") $(ninep cache "$cache" ro) $(ninep bin "$run/bin" ro) \
    $(ninep results "$run/results") \
    </dev/null >"$run/console.log" 2>&1 &
qemu_pid=$!
# The console, live. tail ends when qemu (under timeout) is gone. In the background, so
# that the wait below, and with it a signal's trap, are not held up by it.
tail -n +1 -f --pid="$qemu_pid" "$run/console.log" |
    sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/^/vm| /' &
console_pid=$!
wait "$console_pid" || true
console_pid=""
vm_rc=0
wait "$qemu_pid" || vm_rc=$?
qemu_pid=""
kill_vm
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')

# --------------------------------------------------------------------------------------
# Results.

echo "== vm-test: results (VM ran ${elapsed} s, qemu exit $vm_rc)"
status=0
if [ "$vm_rc" -eq 124 ] || [ "$vm_rc" -eq 137 ]; then
    echo "vm-test: the VM did not finish within $vm_timeout s (VM_TIMEOUT): killed"
    status=1
fi
[ -f "$run/results/done" ] || {
    echo "vm-test: the VM did not finish its plan"
    status=1
}
grep -q "VM-INIT-FAILED" "$run/console.log" && status=1
printf '%-28s %6s %8s  %s\n' "test binary" "exit" "seconds" "result"
for label in "${labels[@]}"; do
    rc_file=$run/results/$label.rc
    if [ -f "$rc_file" ]; then
        read -r rc secs <"$rc_file"
        result=$(grep -E '^test result:' "$run/results/$label.log" | tail -n 1 || true)
    else
        rc=none
        secs=-
        result=""
    fi
    printf '%-28s %6s %8s  %s\n' "$label" "$rc" "$secs" "${result:-(no test result line)}"
    if [ "$rc" != 0 ]; then
        status=1
        if [ -f "$rc_file" ]; then
            grep -E '^test .* FAILED$' "$run/results/$label.log" | sed "s/^/    $label: /" || true
        fi
    fi
done
boot=$(cat "$run/results/boot-seconds" 2>/dev/null || echo "?")
echo "vm-test: guest boot to the first test: ${boot} s of guest uptime; whole VM run: ${elapsed} s ($accel)"
# Each binary's own `test result:` line, for scripts/test.sh's sum; a binary that did not
# report counts as one failed test.
for label in "${labels[@]}"; do
    if [ -f "$run/results/$label.rc" ] && grep -qE '^test result:' "$run/results/$label.log"; then
        grep -E '^test result:' "$run/results/$label.log"
    else
        echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; (vm: $label did not report)"
    fi
done
if [ "$status" -ne 0 ]; then
    echo "vm-test: FAILED (scroll up for the vm| console; VM_KEEP=1 keeps $run)"
else
    echo "vm-test: all ${#labels[@]} test binaries passed on pure cgroup v2 (init: ${mode/cgroup2/busybox})"
fi
if [ "$mode" = cgroup2 ] && [ "${VM_SYSTEMD:-1}" != 0 ]; then
    kill_vm
    echo "== vm-test: the systemd VM (systemd as pid 1)"
    VM_MODE=systemd "$repo/scripts/vm-test.sh" || status=1
fi
exit "$status"
}
