//! `events --stats`: the container's resource usage.

use super::{Container, ContainerError};
use crate::cgroups::Stats;
use crate::state::Status;

impl Container {
    /// The container's resource usage.
    pub fn stats(&mut self) -> Result<Stats, ContainerError> {
        self.locked(|c| {
            c.require_live("a stopped container has no statistics")?;
            Ok(c.cgroup()?.stats()?)
        })
    }

    /// Refuses `what` if the container has stopped (its cgroup may be gone).
    pub(super) fn require_live(&self, what: &'static str) -> Result<(), ContainerError> {
        self.require(
            &[
                Status::Creating,
                Status::Created,
                Status::Running,
                Status::Paused,
            ],
            what,
        )
    }
}
