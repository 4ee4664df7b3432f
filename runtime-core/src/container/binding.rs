//! The rootfs bind of a container without a mount namespace of its own ([`HostBinding`]):
//! noted in its state directory by create, detached by delete.

use super::ContainerError;
use crate::rootfs::HostBinding;
use crate::state::Entry;
use crate::syscall;

/// In a container's state directory: the binding, which delete detaches.
const HOST_BINDING: &str = "host-binding.json";

/// Notes `binding` in the container's state directory.
pub(super) fn save_host_binding(
    entry: &Entry,
    binding: &HostBinding,
) -> Result<(), ContainerError> {
    let path = entry.dir().join(HOST_BINDING);
    let text = serde_json::to_vec(binding).map_err(|e| ContainerError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    std::fs::write(&path, text).map_err(|source| ContainerError::Io { path, source })
}

/// Detaches the rootfs bind (and every mount under it) that init of a container without a
/// mount namespace left in ours, if [`save_host_binding`] noted one and it is still there.
pub(super) fn release_host_binding(entry: &Entry) -> Result<(), ContainerError> {
    let path = entry.dir().join(HOST_BINDING);
    let text = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        r => r.map_err(|source| ContainerError::Io {
            path: path.clone(),
            source,
        })?,
    };
    let binding: HostBinding = serde_json::from_slice(&text).map_err(|e| ContainerError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    if binding.release(&syscall::LinuxSyscall)? {
        log::debug!(
            "container {}: detached the rootfs bind {}",
            entry.id(),
            binding.rootfs.display()
        );
    }
    Ok(())
}
