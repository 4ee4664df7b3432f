//! `update`: new resource limits for the container's cgroup.

use oci_spec::runtime::LinuxResources;

use super::{Container, ContainerError};
use crate::state::Status;

impl Container {
    /// Applies new resource limits to a created, running or paused container.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<(), ContainerError> {
        self.locked(|c| {
            c.require(
                &[Status::Created, Status::Running, Status::Paused],
                "only a created, running or paused container can be updated",
            )?;
            crate::spec::check_resources(resources, "")?;
            // Device rules stay as create set them, as with runc's update: containerd's CRI
            // sends the container's whole resources, whose devices (deny all) would
            // otherwise replace the rules create completed with the defaults, cutting off
            // /dev/null and the like.
            let mut resources = resources.clone();
            if resources.devices().is_some() {
                log::debug!(
                    "update {}: device rules are not changed by an update",
                    c.state.id
                );
                resources.set_devices(None);
            }
            Ok(c.cgroup()?.update(&resources)?)
        })
    }
}
