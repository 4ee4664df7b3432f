//! Commands about the runtime itself: features, spec.

use std::path::Path;

use anyhow::{bail, Result};

/// `features`.
pub fn features() -> Result<()> {
    bail!("features: not implemented yet")
}

/// `spec`.
pub fn spec(_bundle: &Path, _rootless: bool) -> Result<()> {
    bail!("spec: not implemented yet")
}
