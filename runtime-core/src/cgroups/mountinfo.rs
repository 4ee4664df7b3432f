//! Finding cgroup hierarchies in `/proc/self/mountinfo` (proc(5)).
//!
//! The layout is discovered, never assumed: hosts differ (`cpu,cpuacct` joined or separate,
//! hybrid with `/sys/fs/cgroup/unified`, pure v2), and so do containers running us.

use std::path::{Path, PathBuf};

/// Which cgroup filesystem a mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FsKind {
    /// `cgroup`: one v1 hierarchy with its controllers.
    V1,
    /// `cgroup2`: the unified hierarchy.
    V2,
}

/// One cgroup hierarchy as mounted in this mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupFsMount {
    /// v1 or v2.
    pub kind: FsKind,
    /// `major:minor` of the superblock: identical for every mount of one hierarchy.
    pub dev: String,
    /// The directory of the hierarchy that is mounted (`/` unless bind-mounted from inside).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// v1: the controllers (and `name=...`) from the super options; empty for v2.
    pub controllers: Vec<String>,
}

/// Super options of a v1 cgroup mount that are not controllers.
fn is_controller_option(opt: &str) -> bool {
    !matches!(
        opt,
        "rw" | "ro"
            | "clone_children"
            | "noprefix"
            | "xattr"
            | "cpuset_v2_mode"
            | "none"
            | "favordynmods"
            | "nofavordynmods"
    ) && !opt.starts_with("release_agent=")
        && !opt.is_empty()
}

/// The cgroup filesystem of a mountinfo entry, if it is one.
fn cgroup_mount(m: crate::mountinfo::Mount) -> Option<CgroupFsMount> {
    let kind = match m.fstype.as_str() {
        "cgroup" => FsKind::V1,
        "cgroup2" => FsKind::V2,
        _ => return None,
    };
    let controllers = match kind {
        FsKind::V1 => m
            .super_options
            .split(',')
            .filter(|o| is_controller_option(o))
            .map(str::to_string)
            .collect(),
        FsKind::V2 => Vec::new(),
    };
    Some(CgroupFsMount {
        kind,
        dev: m.dev,
        root: m.root,
        mount_point: m.mount_point,
        controllers,
    })
}

/// A hierarchy mounted twice (bind mounts) is listed once: the mount of its root if there is
/// one, else the first, so that paths resolve from the top of the hierarchy.
pub(crate) fn parse(text: &str) -> Vec<CgroupFsMount> {
    let mut out: Vec<CgroupFsMount> = Vec::new();
    for m in crate::mountinfo::parse(text)
        .into_iter()
        .filter_map(cgroup_mount)
    {
        match out.iter_mut().find(|o| o.dev == m.dev) {
            Some(existing) => {
                if existing.root != Path::new("/") && m.root == Path::new("/") {
                    *existing = m;
                }
            }
            None => out.push(m),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// This host's layout: hybrid, with `cpu` and `cpuacct` as separate hierarchies.
    pub(crate) const HYBRID: &str = "\
22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A typical systemd host with pure cgroup v2.
    pub(crate) const PURE_V2: &str = "\
24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
25 24 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
31 25 0:27 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore rw
";

    #[test]
    fn hybrid_host_has_separate_cpu_and_cpuacct() {
        let mounts = parse(HYBRID);
        assert_eq!(mounts.len(), 10);
        let v1: Vec<_> = mounts.iter().filter(|m| m.kind == FsKind::V1).collect();
        assert_eq!(v1.len(), 9);
        assert_eq!(v1[0].mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(v1[0].controllers, vec!["cpu"]);
        assert_eq!(v1[1].controllers, vec!["cpuacct"]);
        assert_eq!(v1[8].controllers, vec!["name=systemd"]);
        let v2: Vec<_> = mounts.iter().filter(|m| m.kind == FsKind::V2).collect();
        assert_eq!(v2.len(), 1);
        assert_eq!(v2[0].mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert!(v2[0].controllers.is_empty());
        assert_eq!(v2[0].dev, "0:38");
    }

    #[test]
    fn pure_v2() {
        let mounts = parse(PURE_V2);
        assert_eq!(
            mounts,
            vec![CgroupFsMount {
                kind: FsKind::V2,
                dev: "0:26".into(),
                root: "/".into(),
                mount_point: "/sys/fs/cgroup".into(),
                controllers: vec![],
            }]
        );
    }

    #[test]
    fn joined_controllers_options_and_optional_fields() {
        let text = "29 26 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:10 master:3 - cgroup cgroup rw,cpu,cpuacct,clone_children,release_agent=/x\n";
        let mounts = parse(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(
            mounts[0].mount_point,
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
    }

    #[test]
    fn bind_mounts_of_one_hierarchy_prefer_its_root() {
        let text = "\
50 22 0:32 /docker/abc /mnt/mem rw - cgroup cgroup rw,memory
51 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let mounts = parse(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, Path::new("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn escaped_paths_and_garbage() {
        let text = "\
60 22 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw
not a mountinfo line
61 22 0:41 / /x rw
";
        let mounts = parse(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, Path::new("/mnt/with space"));
    }
}
