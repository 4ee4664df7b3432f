//! `resume`: a paused container thawed.

use super::{Container, ContainerError};
use crate::state::Status;

impl Container {
    /// Thaws a paused container; its status becomes `running`, or `created` again if it
    /// was paused before `start`.
    pub fn resume(&mut self) -> Result<(), ContainerError> {
        self.locked(|c| {
            c.require(&[Status::Paused], "only a paused container can be resumed")?;
            c.cgroup()?.thaw()?;
            // The live status reads the fifo first once thawed; the stored one only
            // matters where the freezer cannot be read, and then it should be right too.
            c.state.status = if c.fifo().exists() {
                Status::Created
            } else {
                Status::Running
            };
            c.status = c.state.status;
            c.save()
        })
    }
}
