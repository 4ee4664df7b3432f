//! The container's filesystem: mounts, devices, pivot_root, masked and read-only paths.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::cgroups::CgroupMount;
use crate::syscall::{Syscall, SyscallError};

/// Errors while building the container's filesystem, naming the mount or path.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A syscall failed.
    #[error("{context}: {source}")]
    Syscall {
        /// Which mount, device or path.
        context: String,
        /// The failed call.
        source: SyscallError,
    },
    /// The spec asks for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Before pivot_root, in the container's new mount namespace: propagation, the rootfs
/// bind, every `mounts` entry in order, `/dev` contents and `linux.devices`.
pub fn prepare(
    _sys: &dyn Syscall,
    _spec: &Spec,
    _rootfs: &Path,
    _cgroup_mounts: &[CgroupMount],
    _in_user_ns: bool,
) -> Result<(), RootfsError> {
    Ok(())
}

/// pivot_root into `rootfs` and detach the old root.
pub fn pivot(_sys: &dyn Syscall, _rootfs: &Path) -> Result<(), RootfsError> {
    Ok(())
}

/// After pivot_root (and after sysctls): `maskedPaths`, `readonlyPaths`, `root.readonly`.
pub fn finish(_sys: &dyn Syscall, _spec: &Spec) -> Result<(), RootfsError> {
    Ok(())
}
