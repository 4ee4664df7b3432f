//! cgroups on the host: the hierarchies (found in mountinfo, never assumed) and their
//! files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::mounts::unescape_mountinfo;

/// A cgroup hierarchy mounted on the host.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// v1 controllers (and `name=...`), empty for cgroup2.
    pub controllers: Vec<String>,
    /// Is it cgroup2?
    pub v2: bool,
}

/// cgroup hierarchies of the host, from /proc/self/mountinfo.
pub fn cgroup_hierarchies() -> Vec<Hierarchy> {
    let mi = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let mut out = Vec::new();
    for line in mi.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mountinfo(pre[4]));
        match post[0] {
            "cgroup2" => out.push(Hierarchy {
                mount_point,
                controllers: vec![],
                v2: true,
            }),
            "cgroup" => {
                let controllers = post[2]
                    .split(',')
                    .filter(|o| {
                        !matches!(
                            *o,
                            "rw" | "ro" | "nosuid" | "nodev" | "noexec" | "relatime" | "xattr"
                        ) && !o.starts_with("release_agent")
                    })
                    .map(str::to_string)
                    .collect();
                out.push(Hierarchy {
                    mount_point,
                    controllers,
                    v2: false,
                })
            }
            _ => {}
        }
    }
    out
}

/// Is the host a pure cgroup v2 host (a single cgroup2 mount at /sys/fs/cgroup)?
pub fn is_cgroup_v2_only() -> bool {
    let h = cgroup_hierarchies();
    h.iter().all(|h| h.v2) && !h.is_empty()
}

/// Path of a cgroup's file on the host, e.g.
/// `host_cgroup_file("/youki-it-1-2-3", "memory", "memory.limit_in_bytes", "memory.max")`.
pub fn host_cgroup_file(
    cgroups_path: &str,
    controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    let hs = cgroup_hierarchies();
    if let Some(h) = hs
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller))
    {
        return h.mount_point.join(rel).join(v1_file);
    }
    let h = hs
        .iter()
        .find(|h| h.v2)
        .unwrap_or_else(|| panic!("no cgroup hierarchy with controller {controller}"));
    h.mount_point.join(rel).join(v2_file)
}

/// The child cgroups (directory names) of `dir`.
pub fn children(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The pids in a cgroup (its `cgroup.procs`).
pub fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|p| p.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Thaws a cgroup (v1 freezer and v2 alike): a frozen cgroup keeps SIGKILL pending.
pub fn thaw(dir: &Path) {
    let _ = fs::write(dir.join("freezer.state"), "THAWED");
    let _ = fs::write(dir.join("cgroup.freeze"), "0");
}
