//! Control groups, v1 (including hybrid hosts) and v2, behind one trait.

use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

/// Errors from cgroup management, naming the cgroup path or file.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Placeholder until the implementation lands.
    #[error("cgroup {path}: {msg}")]
    Other {
        /// The cgroup path concerned.
        path: PathBuf,
        /// What went wrong.
        msg: String,
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

/// One container's cgroup.
pub trait CgroupManager {
    /// Creates the cgroup (parents included) and applies `resources`.
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError>;
    /// Moves `pid` into the cgroup.
    fn add_task(&self, pid: Pid) -> Result<(), CgroupError>;
    /// Every process in the cgroup.
    fn pids(&self) -> Result<Vec<Pid>, CgroupError>;
    /// Removes the cgroup once its processes are gone; absent is not an error.
    fn remove(&self) -> Result<(), CgroupError>;
    /// The host directories to bind into the container for a `cgroup` mount.
    fn mounts(&self) -> Vec<CgroupMount>;
}

/// The cgroup path of a container: `cgroupsPath` if absolute, else under `/youki`.
pub fn cgroup_path(spec_path: Option<&Path>, id: &str) -> PathBuf {
    match spec_path {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => Path::new("/youki").join(p),
        None => Path::new("/youki").join(id),
    }
}

/// The manager for the cgroup at `path` on this host's cgroup layout.
pub fn manager(path: &Path) -> Result<Box<dyn CgroupManager>, CgroupError> {
    Err(CgroupError::Other {
        path: path.to_path_buf(),
        msg: "not implemented".into(),
    })
}
