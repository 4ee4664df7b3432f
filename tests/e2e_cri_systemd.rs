//! Pods through containerd's CRI on a node whose kubelet uses the systemd cgroup driver
//! (issue 12): kubelet gives every pod a `.slice` as its cgroup parent, and CRI then hands
//! the runtime the cgroupsPath `<slice>:cri-containerd:<id>` for the sandbox and each
//! container. With our shim the sandbox and the containers are transient scopes
//! `cri-containerd-<id>.scope` in that slice, as with runc's systemd driver, whether the
//! handler says `SystemdCgroup = true` (runc's runtime type, `runtime_path` naming our
//! shim) or not (`io.containerd.youki.v2`: the path's form decides). containerd's runc
//! shim with `SystemdCgroup = true` is the reference.
//!
//! On a host not booted with systemd (this machine) such a pod is refused with a clear
//! error and leaves nothing. The pod tests need systemd as init: `#[ignore]`d here, run by
//! scripts/vm-test.sh in its systemd VM (`--ignored`) with containerd 2.1.9.

mod common;
// Shared with tests/e2e_cri.rs, which uses more of it.
#[allow(dead_code)]
#[path = "e2e_support/cri.rs"]
mod cri;
mod e2e_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{assert_ok, poll, systemctl_show, systemd_units};
use cri::*;
use youki_cri::api;

/// Where systemd marks a host booted with it (sd_booted(3)).
const BOOTED: &str = "/run/systemd/system";

const SLEEPER: &[&str] = &["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];

/// The handlers: ours under both registrations, and runc's systemd driver.
const HANDLERS: [&str; 3] = [RUNC_SYSTEMD, YOUKI_RUNC_TYPE_SYSTEMD, YOUKI];

/// A pod config whose cgroup parent is the slice `<m>-pod<n>.slice`, `<m>` the world's
/// marker without dashes (a dash in a slice's name nests it: systemd makes it under
/// `<m>.slice`, as kubelet's `kubepods-besteffort-pod<uid>.slice` is under
/// `kubepods-besteffort.slice`). Returns the config and the slice's cgroup directory.
fn pod_in_slice(cri: &Cri, what: &str) -> (api::PodSandboxConfig, String, PathBuf) {
    let mut pod = cri.pod_config(what, true);
    let top = top_slice(cri);
    let stem = top.trim_end_matches(".slice");
    let slice = format!("{stem}-pod{}.slice", cri.w().next());
    if let Some(linux) = pod.linux.as_mut() {
        linux.cgroup_parent = slice.clone();
    }
    let dir = Path::new("/sys/fs/cgroup").join(&top).join(&slice);
    (pod, slice, dir)
}

/// The test's top slice, `<marker without dashes>.slice`.
fn top_slice(cri: &Cri) -> String {
    format!("{}.slice", cri.w().marker.replace('-', "_"))
}

/// The cgroup (cgroup2 line of /proc/PID/cgroup) of `pid`, as the host sees it.
fn cgroup_of(pid: i32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/cgroup: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_default()
        .to_string()
}

fn read_trimmed(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Stops the test's top slice (and what is under it), as kubelet removes a pod's slice
/// once the pod is gone; its cgroup must then be gone.
fn stop_top_slice(cri: &Cri) {
    let top = top_slice(cri);
    let o = Command::new("systemctl").args(["stop", &top]).output();
    assert_ok(&o.expect("run systemctl"), &format!("systemctl stop {top}"));
    let dir = Path::new("/sys/fs/cgroup").join(&top);
    assert!(
        poll(Duration::from_secs(10), || !dir.exists()),
        "{} left",
        dir.display()
    );
}

#[test]
fn cri_slice_parent_without_systemd_is_a_clear_error() {
    if Path::new(BOOTED).is_dir() {
        eprintln!("skipped: this host was booted with systemd ({BOOTED} exists)");
        return;
    }
    let cri = Cri::start("cri-sdnone", true);
    for handler in HANDLERS {
        if handler == YOUKI_RUNC_TYPE_SYSTEMD && !honours_runtime_path(cri_version()) {
            continue;
        }
        let (config, _, _) = pod_in_slice(&cri, "sdnone");
        let e = match cri.client.run_pod_sandbox(&config, handler) {
            Ok(id) => panic!("{handler}: pod {id} ran on a host without systemd"),
            Err(e) => e.to_string(),
        };
        // runc 1.1.5: "systemd not running on this host, cannot use systemd cgroups
        // manager"; ours names the cgroupsPath and what is missing.
        assert!(
            ["systemd not running", "not booted with systemd"]
                .iter()
                .any(|w| e.contains(w)),
            "{handler}: the error should say that systemd is not running: {e}"
        );
    }
    cri.ctd.no_containers_left();
}

/// containerd's (major, minor) version.
fn cri_version() -> (u32, u32) {
    containerd_version(&e2e_support::client("containerd", "containerd"))
}

/// With systemd as init: the sandbox and a container with a memory limit are scopes in
/// the pod's slice, systemd holds the limit, UpdateContainerResources changes it in
/// systemd and in the scope's files, exec runs in the container's scope; stopping and
/// removing the pod leaves no unit and no cgroup.
#[test]
#[ignore = "needs systemd as init: scripts/vm-test.sh runs it in its systemd VM"]
fn cri_pods_in_a_slice_are_scopes() {
    assert!(Path::new(BOOTED).is_dir(), "needs systemd as init");
    let cri = Cri::start("cri-sdscope", true);
    for handler in HANDLERS {
        let (config, slice, dir) = pod_in_slice(&cri, "sdscope");
        let pod = cri.run_pod(config, handler);
        let sandbox_unit = format!("cri-containerd-{}.scope", pod.id);
        assert_eq!(
            cgroup_of(pod.pid),
            format!("/{}/{slice}/{sandbox_unit}", top_slice(&cri)),
            "{handler}: the sandbox"
        );
        assert_eq!(systemctl_show(&sandbox_unit, "Slice"), slice, "{handler}");

        let mut config = cri.container_config(&pod, "main", SLEEPER);
        if let Some(linux) = config.linux.as_mut() {
            linux.resources = Some(api::LinuxContainerResources {
                memory_limit_in_bytes: 96 << 20,
                ..Default::default()
            });
        }
        let id = cri.start_container(&pod, &config);
        let unit = format!("cri-containerd-{id}.scope");
        let scope = dir.join(&unit);
        assert_eq!(
            cgroup_of(cri.container_pid(&id)),
            format!("/{}/{slice}/{unit}", top_slice(&cri)),
            "{handler}: the container"
        );
        assert_eq!(systemctl_show(&unit, "ActiveState"), "active", "{handler}");
        assert_eq!(
            systemctl_show(&unit, "MemoryMax"),
            (96u64 << 20).to_string(),
            "{handler}"
        );
        assert_eq!(
            read_trimmed(&scope.join("memory.max")),
            (96u64 << 20).to_string()
        );

        let limit: i64 = 64 << 20;
        cri.client
            .update_container_resources(
                &id,
                api::LinuxContainerResources {
                    memory_limit_in_bytes: limit,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| {
                panic!(
                    "{handler}: UpdateContainerResources: {e}\n{}",
                    cri.ctd.log_tail()
                )
            });
        assert_eq!(
            read_trimmed(&scope.join("memory.max")),
            limit.to_string(),
            "{handler}"
        );
        assert_eq!(
            systemctl_show(&unit, "MemoryMax"),
            limit.to_string(),
            "{handler}: systemd's view"
        );

        // The container's cgroup namespace is rooted at its scope.
        assert_eq!(
            exec_ok(&cri, &id, &["cat", "/proc/self/cgroup"]).trim(),
            "0::/"
        );
        let procs = read_trimmed(&scope.join("cgroup.procs"));
        assert!(procs.lines().count() >= 2, "{handler}: {procs}");

        cri.remove_pod(&pod);
        for u in [&unit, &sandbox_unit] {
            assert!(
                poll(Duration::from_secs(10), || systemd_units(u).is_empty()),
                "{handler}: {u} left: {:?}",
                systemd_units(u)
            );
        }
        assert!(!scope.exists(), "{handler}: {} left", scope.display());
    }
    stop_top_slice(&cri);
}
