//! Commands on a container's resources: pause, resume, ps, events, update.

use anyhow::{bail, Result};
use runtime_core::state::Store;

use crate::cli::{ListFormat, UpdateArgs};

/// `pause`.
pub fn pause(_store: &Store, id: &str) -> Result<()> {
    bail!("pause {id}: not implemented yet")
}

/// `resume`.
pub fn resume(_store: &Store, id: &str) -> Result<()> {
    bail!("resume {id}: not implemented yet")
}

/// `ps`.
pub fn ps(_store: &Store, id: &str, _format: ListFormat, _ps_args: &[String]) -> Result<()> {
    bail!("ps {id}: not implemented yet")
}

/// `events`.
pub fn events(_store: &Store, id: &str, _stats: bool, _interval: &str) -> Result<()> {
    bail!("events {id}: not implemented yet")
}

/// `update`.
pub fn update(_store: &Store, args: &UpdateArgs) -> Result<()> {
    bail!("update {}: not implemented yet", args.id)
}
