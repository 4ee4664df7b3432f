//! OCI lifecycle hooks: run each with the container state on stdin, honouring `timeout`.

use oci_spec::runtime::Hook;

/// A hook that failed: which one and why.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// Placeholder until the implementation lands.
    #[error("hook {path}: {msg}")]
    Failed {
        /// The hook's path.
        path: String,
        /// What went wrong.
        msg: String,
    },
}

/// Runs `hooks` in order with `state_json` on stdin; stops at the first failure.
pub fn run(_hooks: &[Hook], _state_json: &[u8]) -> Result<(), HookError> {
    Ok(())
}
