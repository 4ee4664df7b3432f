//! `delete`: the container's processes killed if need be, its cgroup, mounts and state
//! removed, its poststop hooks run.

use super::binding::release_host_binding;
use super::{Container, ContainerError};
use crate::hooks;
use crate::state::{StateError, Status, Store};

impl Container {
    /// Deletes a stopped or created container (any container with `force`), running
    /// poststop hooks and removing its cgroup and state.
    pub fn delete(mut self, force: bool) -> Result<(), ContainerError> {
        self.locked(|c| {
            match c.status {
                Status::Stopped | Status::Created => {}
                _ if force => {}
                _ => {
                    return Err(ContainerError::WrongStatus {
                        id: c.state.id.clone(),
                        status: c.status,
                        what: "cannot delete a container that is not stopped without --force",
                    })
                }
            }
            let cgroup = c.cgroup()?;
            // Also when stopped if it has no pid namespace of its own (a shared or the
            // host's), as runc does: its processes can outlive its init; and when its
            // create died before it stored init's pid, leaving init (found through the
            // cgroup) waiting for `start`.
            if c.status != Status::Stopped
                || c.state.shares_pid_ns
                || c.state.status == Status::Creating
            {
                c.kill_all()?;
            }
            cgroup.remove()?;
            let entry = c.entry()?;
            release_host_binding(entry)?;
            if let Some(list) = c.state.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
                // A poststop failure is logged, and deletion goes on, as the spec says.
                hooks::run_best_effort(list, &c.oci_state_bytes(Status::Stopped));
            }
            if let Some(entry) = c.entry.take() {
                entry.remove()?;
            }
            Ok(())
        })
    }
}

/// Deletes container `id` (see [`Container::delete`]). With `force`, a container that does
/// not exist is not an error, as with runc: there is nothing left to remove. A container
/// whose create died before it wrote its state is only a directory, removed.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<(), ContainerError> {
    let entry = match store.open(id) {
        Err(StateError::NotFound(_)) if force => return Ok(()),
        r => r?,
    };
    let Some(state) = entry.load()? else {
        entry.remove()?;
        return Ok(());
    };
    Container::new(store, state, Some(entry)).delete(force)
}
