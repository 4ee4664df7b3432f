//! `pause`: every process of the container frozen.

use super::{Container, ContainerError};
use crate::state::Status;

impl Container {
    /// Freezes every process of a running container; its status becomes `paused`. A
    /// created container is refused, as containerd's runc shim refuses a created task
    /// ("cannot pause task in created state"); runc's own `pause` takes it: see
    /// [`Container::pause_created_too`].
    pub fn pause(&mut self) -> Result<(), ContainerError> {
        self.freeze(&[Status::Running], "only a running container can be paused")
    }

    /// [`Container::pause`] that also takes a created container, as runc 1.1.5's `pause`
    /// does: its init, waiting for `start`, is frozen; `start` refuses it until it is
    /// resumed, when it is `created` again.
    pub fn pause_created_too(&mut self) -> Result<(), ContainerError> {
        self.freeze(
            &[Status::Running, Status::Created],
            "only a running or created container can be paused",
        )
    }

    fn freeze(&mut self, allowed: &[Status], what: &'static str) -> Result<(), ContainerError> {
        self.locked(|c| {
            c.require(allowed, what)?;
            c.cgroup()?.freeze()?;
            c.state.status = Status::Paused;
            c.status = Status::Paused;
            c.save()
        })
    }
}
