//! `ps`: the processes of the container.

use nix::unistd::Pid;

use super::{Container, ContainerError};

impl Container {
    /// Every process in the container's cgroup (host pids), sorted. A stopped container
    /// whose cgroup is gone has none.
    pub fn pids(&mut self) -> Result<Vec<Pid>, ContainerError> {
        self.locked(|c| Ok(c.cgroup()?.pids()?))
    }
}
