//! `youki exec`: run a new process in a running container.

use anyhow::{bail, Result};
use runtime_core::state::Store;

use crate::cli::ExecArgs;

/// Runs `exec`; returns the exit code (the process's, unless detached).
pub fn exec(_store: &Store, args: &ExecArgs) -> Result<i32> {
    bail!("exec {}: not implemented yet", args.id)
}
