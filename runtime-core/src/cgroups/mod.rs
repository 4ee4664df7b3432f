//! Control groups, v1 (including hybrid hosts) and v2, behind one trait.
//!
//! The cgroupfs files are written directly rather than through the `cgroups-rs` crate
//! (0.3.4 or 0.5.1), because on the hosts we must support it is not correct enough:
//! - its v2 support assumes the hierarchy is at `/sys/fs/cgroup` instead of finding it;
//! - on hybrid hosts it ignores the `unified` cgroup2 hierarchy, where this host keeps
//!   hugetlb, so the container neither joins it nor gets hugetlb limits;
//! - it swallows mkdir errors (logged, then later writes fail without the reason), has
//!   `unwrap()`s on paths, and its errors name the file and value but not the cgroup;
//! - its freezer writes FROZEN without waiting for the kernel to report it;
//! - it pulls a second `nix` (0.25) plus `regex` (0.3.4) or `zbus` (0.5.1, for the systemd
//!   driver we cannot use here), which costs build time and binary size.
//!
//! What the runtime needs is a few hundred lines of "mkdir, write this value to that file",
//! which is easier to get right, and to test, by hand.
//!
//! Layout: `mountinfo` finds the hierarchies, `v1` and `v2` turn `linux.resources`
//! into file writes and manage the directories, `devices` gives device rules their
//! meaning (and on v2 the eBPF program enforcing them), `files` does the I/O, `stats`
//! reads resource usage and `oom` watches for OOM kills.

mod devices;
mod files;
mod mountinfo;
mod oom;
mod rootless;
pub mod stats;
mod systemd;
mod v1;
mod v2;

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

pub use devices::DeviceError;
pub(crate) use devices::{check as check_device_rules, with_default_rules};
use files::FileWrite;
use mountinfo::{CgroupFsMount, FsKind};
pub use oom::{OomCounter, OomWatcher};
pub use rootless::use_rootless_cgroups;
pub use stats::Stats;
pub use systemd::SystemdError;

/// How long freeze and thaw wait for the kernel to report the new state.
pub(crate) const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the kernel lists this process's mounts.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Errors from cgroup management, naming the cgroup path or file.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Anything not covered below.
    #[error("cgroup {path}: {msg}")]
    Other {
        /// The cgroup path concerned.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// The cgroup path is not acceptable (`..`, or the root cgroup).
    #[error("invalid cgroup path {path}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The mount table could not be read.
    #[error("cannot read {path}: {source}")]
    Mountinfo {
        /// The mountinfo file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// No cgroup filesystem is mounted.
    #[error("no cgroup filesystem is mounted (according to {path})")]
    NoCgroupFs {
        /// The mountinfo file read.
        path: PathBuf,
    },
    /// mkdir of a cgroup directory failed.
    #[error("cannot create cgroup {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Writing a cgroup file failed: the kernel refused the value, or lacks the file.
    #[error("cgroup {path}: cannot write {value:?} to {file}: {source}")]
    Write {
        /// The cgroup directory.
        path: PathBuf,
        /// The file in it.
        file: String,
        /// The value written.
        value: String,
        /// The I/O error (EINVAL for a refused value, ENOENT for a missing feature).
        source: io::Error,
    },
    /// Reading a cgroup file failed.
    #[error("cgroup {path}: cannot read {file}: {source}")]
    Read {
        /// The cgroup directory.
        path: PathBuf,
        /// The file in it.
        file: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A cgroup file holds something unexpected.
    #[error("cgroup {path}: unexpected {content:?} in {file}")]
    Parse {
        /// The cgroup directory.
        path: PathBuf,
        /// The file in it.
        file: String,
        /// What was found.
        content: String,
    },
    /// rmdir of a cgroup failed.
    #[error("cannot remove cgroup {path}: {source}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A cgroup still had processes after the retries.
    #[error("cannot remove cgroup {path}: still busy after {waited:?} (processes left in it?)")]
    RemoveBusy {
        /// The directory.
        path: PathBuf,
        /// How long removal was retried.
        waited: Duration,
    },
    /// The resources ask for a controller this host does not have.
    #[error(
        "cgroup {path}: {what} needs the {controller} controller, which this host does not offer"
    )]
    ControllerMissing {
        /// The cgroup path (or the parent whose controllers were checked).
        path: PathBuf,
        /// The controller.
        controller: String,
        /// What needed it (a file, an operation).
        what: String,
    },
    /// `linux.resources` is invalid, or asks for something this cgroup version lacks.
    #[error("cgroup {path}: invalid linux.resources: {reason}")]
    InvalidResource {
        /// The cgroup path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The device rules cannot be applied or enforced.
    #[error(transparent)]
    Devices(#[from] DeviceError),
    /// The systemd driver failed.
    #[error(transparent)]
    Systemd(#[from] SystemdError),
    /// The kernel did not reach the freezer state in time.
    #[error("cgroup {path}: still {state:?} after {waited:?}, expected {expected:?}")]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// The last state read.
        state: String,
        /// The state waited for.
        expected: &'static str,
        /// How long it waited.
        waited: Duration,
    },
}

/// A cgroup directory of the host to bind into the container's `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Name under `/sys/fs/cgroup` in the container (`cpu`, `memory`, ... ; empty for v2).
    pub name: String,
    /// The container's cgroup directory on the host.
    pub source: PathBuf,
}

/// Freezer state of a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    /// Running.
    Thawed,
    /// Asked to freeze, not all tasks frozen yet.
    Freezing,
    /// Every task frozen.
    Frozen,
}

/// One container's cgroup.
///
/// If `create` fails, call `remove` to take away what it made. `Send`: a front end keeps a
/// container's handle, with its manager, for the container's life (the shim's task table,
/// shared by its threads).
pub trait CgroupManager: Send {
    /// Creates the cgroup (parents included) and applies `resources`.
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError>;
    /// Applies `resources` to the existing cgroup (`update --resources`).
    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Moves `pid` into the cgroup.
    fn add_task(&self, pid: Pid) -> Result<(), CgroupError>;
    /// Whether [`CgroupManager::join_self`] is cheaper than the parent's `add_task`.
    fn can_join_self(&self) -> bool;
    /// The cgroup v2 directory (the cgroup itself on v2, its unified one on a hybrid host)
    /// a process can be created in (clone3's CLONE_INTO_CGROUP), instead of being moved
    /// there: a move through cgroup.procs costs the kernel an RCU grace period.
    fn birth_dir(&self) -> Option<PathBuf> {
        None
    }
    /// Moves the calling process, which must have a single thread, into the cgroup;
    /// `born`: it was created in [`CgroupManager::birth_dir`], which it need not join.
    fn join_self(&self, born: bool) -> Result<(), CgroupError>;
    /// Every process in the cgroup.
    fn pids(&self) -> Result<Vec<Pid>, CgroupError>;
    /// Removes the cgroup once its processes are gone; absent is not an error.
    fn remove(&self) -> Result<(), CgroupError>;
    /// The host directories to bind into the container for a `cgroup` mount.
    fn mounts(&self) -> Vec<CgroupMount>;
    /// The cgroup path this manager was made for.
    fn path(&self) -> &Path;
    /// Freezes every process of the cgroup, waiting (bounded) until the kernel reports it.
    fn freeze(&self) -> Result<(), CgroupError>;
    /// Thaws the cgroup, waiting (bounded) until the kernel reports it.
    fn thaw(&self) -> Result<(), CgroupError>;
    /// The current freezer state.
    fn freezer_state(&self) -> Result<FreezerState, CgroupError>;
    /// Resource usage; files this host lacks leave their fields at zero.
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// Starts watching the cgroup for OOM kills.
    fn oom_watcher(&self) -> Result<OomWatcher, CgroupError>;
}

/// The cgroup driver a new container gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Driver {
    /// Directories in the cgroup filesystem (runc's default).
    #[default]
    Cgroupfs,
    /// A transient systemd scope (runc's `--systemd-cgroup`, containerd's
    /// `SystemdCgroup = true`): cgroupsPath `slice:prefix:name`, by default
    /// `system.slice:youki:<id>`.
    Systemd,
    /// systemd for a cgroupsPath in the systemd form, else cgroupfs: containerd's CRI sends
    /// that form whenever the pod's cgroup parent is a `.slice` (kubelet's systemd driver).
    ByPath,
}

impl Driver {
    /// Whether a container with cgroupsPath `spec_path` gets the systemd driver.
    fn systemd_for(self, spec_path: Option<&Path>) -> bool {
        match self {
            Driver::Cgroupfs => false,
            Driver::Systemd => true,
            Driver::ByPath => spec_path.is_some_and(systemd::is_unit_path),
        }
    }
}

/// The cgroup path of a container: `cgroupsPath` if absolute, else under `/youki`; with the
/// systemd driver, `cgroupsPath` as it is (`slice:prefix:name`), by default
/// `system.slice:youki:<id>`; rootless on pure v2, by default beside the caller's cgroup.
pub(crate) fn cgroup_path(spec_path: Option<&Path>, id: &str, driver: Driver) -> PathBuf {
    let spec_path = spec_path.filter(|p| !p.as_os_str().is_empty());
    if driver.systemd_for(spec_path) {
        return match spec_path {
            Some(p) => p.to_path_buf(),
            None => systemd::default_path(id).into(),
        };
    }
    if spec_path.is_none() && rootless::enabled() && host_is_pure_v2() {
        if let Some(p) = rootless::default_v2_path(&rootless::own_cgroups(), id) {
            return p;
        }
    }
    match spec_path {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => Path::new("/youki").join(p),
        None => Path::new("/youki").join(id),
    }
}

/// The manager of a new container's cgroup at `path` (from [`cgroup_path`] with the same
/// `driver`); with the systemd driver, a path not in the systemd form is an error.
pub(crate) fn new_manager(
    path: &Path,
    driver: Driver,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let systemd = driver.systemd_for(Some(path));
    with_mountinfo(|text| manager_from_mountinfo(path, text, systemd))
}

/// The cgroup a new container `id` of `spec` gets ([`cgroup_path`]), and its manager.
pub(crate) fn for_new_container(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    driver: Driver,
) -> Result<(PathBuf, Box<dyn CgroupManager>), CgroupError> {
    let spec_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_deref());
    let path = cgroup_path(spec_path, id, driver);
    let manager = new_manager(&path, driver)?;
    Ok((path, manager))
}

/// The manager for the cgroup at `path` (as stored for a container) on this host's cgroup
/// layout; a systemd-form path (`slice:prefix:name`) gets the systemd driver.
pub fn manager(path: &Path) -> Result<Box<dyn CgroupManager>, CgroupError> {
    with_mountinfo(|text| manager_from_mountinfo(path, text, systemd::is_unit_path(path)))
}

/// `f` of this host's mountinfo text.
fn with_mountinfo<T>(f: impl FnOnce(&str) -> Result<T, CgroupError>) -> Result<T, CgroupError> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|source| CgroupError::Mountinfo {
        path: MOUNTINFO.into(),
        source,
    })?;
    f(&text)
}

/// The manager for `path` on the layout described by a mountinfo text.
fn manager_from_mountinfo(
    path: &Path,
    mountinfo: &str,
    systemd: bool,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    if systemd {
        let layout = detect(&mountinfo::parse(mountinfo));
        return Ok(Box::new(systemd::SystemdManager::new(path, layout)?));
    }
    relative(path)?;
    let manager: Box<dyn CgroupManager> = match detect(&mountinfo::parse(mountinfo)) {
        Some(Layout::V2 { mount_point }) => Box::new(v2::V2Manager::new(path, mount_point)?),
        Some(Layout::V1 {
            hierarchies,
            unified,
        }) => Box::new(v1::V1Manager::new(path, hierarchies, unified)?),
        None => {
            return Err(CgroupError::NoCgroupFs {
                path: MOUNTINFO.into(),
            })
        }
    };
    if rootless::enabled() {
        let default = path
            .file_name()
            .and_then(|id| id.to_str())
            .is_some_and(|id| cgroup_path(None, id, Driver::Cgroupfs) == path);
        return Ok(Box::new(rootless::RootlessManager::new(manager, default)));
    }
    Ok(manager)
}

/// Whether this host's cgroups are pure v2; false if the mount table cannot be read.
fn host_is_pure_v2() -> bool {
    std::fs::read_to_string(MOUNTINFO)
        .is_ok_and(|text| matches!(detect(&mountinfo::parse(&text)), Some(Layout::V2 { .. })))
}

/// The cgroup layout of a host.
#[derive(Debug, PartialEq, Eq)]
enum Layout {
    /// Controllers on v1 hierarchies; `unified` is the cgroup2 mount of a hybrid host.
    V1 {
        hierarchies: Vec<v1::Hierarchy>,
        unified: Option<PathBuf>,
    },
    /// Pure v2.
    V2 { mount_point: PathBuf },
}

/// Decides v1/hybrid or pure v2 from the cgroup mounts.
///
/// Pure v2 when `/sys/fs/cgroup` itself is cgroup2, or when no v1 hierarchy carries a real
/// controller (only `name=` ones) and a cgroup2 mount exists; v1 otherwise.
fn detect(mounts: &[CgroupFsMount]) -> Option<Layout> {
    let v2_mounts: Vec<&CgroupFsMount> = mounts.iter().filter(|m| m.kind == FsKind::V2).collect();
    let v1_mounts: Vec<&CgroupFsMount> = mounts.iter().filter(|m| m.kind == FsKind::V1).collect();
    let standard = v2_mounts
        .iter()
        .find(|m| m.mount_point == Path::new("/sys/fs/cgroup"));
    let v1_controllers = v1_mounts
        .iter()
        .any(|m| m.controllers.iter().any(|c| !c.starts_with("name=")));
    if let Some(m) = standard.or(v2_mounts.first().filter(|_| !v1_controllers)) {
        return Some(Layout::V2 {
            mount_point: m.mount_point.clone(),
        });
    }
    if v1_mounts.is_empty() {
        return None;
    }
    Some(Layout::V1 {
        hierarchies: v1_mounts
            .iter()
            .map(|m| v1::Hierarchy {
                mount_point: m.mount_point.clone(),
                controllers: m.controllers.clone(),
            })
            .collect(),
        unified: v2_mounts.first().map(|m| m.mount_point.clone()),
    })
}

/// `path` relative to a hierarchy's root; refuses `..` and the root cgroup itself.
fn relative(path: &Path) -> Result<PathBuf, CgroupError> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: path.to_path_buf(),
        reason,
    };
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            Component::ParentDir => {
                return Err(invalid(
                    "\"..\" is not allowed: the cgroup must stay inside the hierarchy",
                ))
            }
            Component::Prefix(_) => return Err(invalid("not a Unix path")),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(invalid("the root cgroup cannot be a container's cgroup"));
    }
    Ok(rel)
}

/// The last component of a mount point: the name it gets under the container's `/sys/fs/cgroup`.
fn basename(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// rdma limits: the same `rdma.max` format on v1 and v2.
fn rdma_writes(r: &LinuxResources) -> Vec<FileWrite> {
    let Some(rdma) = r.rdma() else {
        return Vec::new();
    };
    let mut devices: Vec<&String> = rdma.keys().collect();
    devices.sort();
    devices
        .into_iter()
        .filter_map(|dev| {
            let limits = &rdma[dev];
            let mut value = dev.clone();
            if let Some(h) = limits.hca_handles() {
                value.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = limits.hca_objects() {
                value.push_str(&format!(" hca_object={o}"));
            }
            (value.len() > dev.len()).then(|| FileWrite::new("rdma", "rdma.max", value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::mountinfo::tests::{HYBRID, PURE_V2};
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(
            cgroup_path(
                Some(Path::new("/kubepods/pod1/abc")),
                "abc",
                Driver::Cgroupfs
            ),
            PathBuf::from("/kubepods/pod1/abc")
        );
        assert_eq!(
            cgroup_path(Some(Path::new("mygroup/abc")), "abc", Driver::Cgroupfs),
            PathBuf::from("/youki/mygroup/abc")
        );
        assert_eq!(
            cgroup_path(None, "abc", Driver::Cgroupfs),
            PathBuf::from("/youki/abc")
        );
    }

    /// runc's `--systemd-cgroup` takes cgroupsPath as it is, by default
    /// `system.slice:<prefix>:<id>`; the shim's choice by the path's form leaves cgroupfs
    /// paths to cgroupfs.
    #[test]
    fn systemd_path_rules() {
        let kube = Path::new("kubepods-besteffort-pod1.slice:cri-containerd:abc");
        for driver in [Driver::Systemd, Driver::ByPath] {
            assert_eq!(cgroup_path(Some(kube), "abc", driver), kube);
        }
        assert_eq!(
            cgroup_path(Some(kube), "abc", Driver::Cgroupfs),
            Path::new("/youki").join(kube)
        );
        assert_eq!(
            cgroup_path(None, "abc", Driver::Systemd),
            PathBuf::from("system.slice:youki:abc")
        );
        assert_eq!(
            cgroup_path(Some(Path::new("")), "abc", Driver::Systemd),
            PathBuf::from("system.slice:youki:abc")
        );
        assert_eq!(
            cgroup_path(None, "abc", Driver::ByPath),
            PathBuf::from("/youki/abc")
        );
        assert_eq!(
            cgroup_path(Some(Path::new("/kubepods/abc")), "abc", Driver::ByPath),
            PathBuf::from("/kubepods/abc")
        );
        // runc's error for a cgroupfs path with the systemd driver.
        let e = manager_from_mountinfo(Path::new("/kubepods/abc"), PURE_V2, true)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
    }

    #[test]
    fn manager_refuses_escaping_and_root_paths() {
        for bad in ["/youki/../../etc", "../x", "/", ""] {
            let err = manager_from_mountinfo(Path::new(bad), HYBRID, false)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(
                matches!(err, CgroupError::InvalidPath { .. }),
                "{bad:?}: {err}"
            );
        }
        assert_eq!(
            relative(Path::new("/youki/./abc")).expect("valid"),
            PathBuf::from("youki/abc")
        );
    }

    #[test]
    fn hybrid_is_v1_with_unified() {
        let Some(Layout::V1 {
            hierarchies,
            unified,
        }) = detect(&mountinfo::parse(HYBRID))
        else {
            panic!("hybrid must be v1");
        };
        assert_eq!(hierarchies.len(), 9);
        assert_eq!(unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let m = manager_from_mountinfo(Path::new("/youki/c1"), HYBRID, false).expect("manager");
        let names: Vec<String> = m.mounts().into_iter().map(|m| m.name).collect();
        // No `unified` entry: runc binds only the v1 hierarchies into the container.
        assert_eq!(
            names,
            [
                "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                "systemd"
            ]
        );
        assert_eq!(
            m.mounts()[1].source,
            PathBuf::from("/sys/fs/cgroup/cpuacct/youki/c1")
        );
        assert_eq!(m.path(), Path::new("/youki/c1"));
    }

    #[test]
    fn pure_v2_layout() {
        assert_eq!(
            detect(&mountinfo::parse(PURE_V2)),
            Some(Layout::V2 {
                mount_point: "/sys/fs/cgroup".into()
            })
        );
        let m = manager_from_mountinfo(Path::new("/youki/c1"), PURE_V2, false).expect("manager");
        assert_eq!(
            m.mounts(),
            vec![CgroupMount {
                name: String::new(),
                source: "/sys/fs/cgroup/youki/c1".into()
            }]
        );
        // cgroup2 elsewhere, with only a named v1 hierarchy beside it: still v2.
        let text = "\
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
";
        assert_eq!(
            detect(&mountinfo::parse(text)),
            Some(Layout::V2 {
                mount_point: "/sys/fs/cgroup/unified".into()
            })
        );
        assert!(matches!(
            manager_from_mountinfo(
                Path::new("/x"),
                "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
                false
            ),
            Err(CgroupError::NoCgroupFs { .. })
        ));
    }

    #[test]
    fn rdma() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"rdma": {"mlx5_1": {"hcaHandles": 3}, "mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}, "none": {}}}"#,
        )
        .expect("json");
        let values: Vec<String> = rdma_writes(&r).into_iter().map(|w| w.value).collect();
        assert_eq!(
            values,
            ["mlx4_0 hca_handle=2 hca_object=2000", "mlx5_1 hca_handle=3"]
        );
    }
}
