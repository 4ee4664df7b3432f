//! What changes when the runtime runs without root, as runc decides it: the default state
//! root under `$XDG_RUNTIME_DIR`, and whether cgroup permission errors are tolerated.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::Rootless;

/// The state root of root in the initial user namespace.
const ROOT_STATE: &str = "/run/youki";

/// `/proc/self/uid_map` of the initial user namespace: every id mapped to itself.
const INITIAL_UID_MAP: &str = "0 0 4294967295";

/// The state root: `--root` if given; else `$XDG_RUNTIME_DIR/youki` when runc would use
/// `$XDG_RUNTIME_DIR/runc` (an unprivileged user, or root in a user namespace whose $USER is
/// not root), created 0700 with the sticky bit as runc makes it (the XDG specification:
/// the bit keeps a file there from being pruned); else /run/youki.
pub fn state_root(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(root) = given {
        return Ok(root.to_path_buf());
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    let Some(xdg) = xdg.filter(|_| honours_xdg_runtime_dir()) else {
        return Ok(ROOT_STATE.into());
    };
    let root = Path::new(&xdg).join("youki");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .with_context(|| {
            format!(
                "creating {}: the path in $XDG_RUNTIME_DIR must be writable by the user",
                root.display()
            )
        })?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1700))
        .with_context(|| format!("setting the mode of {}", root.display()))?;
    Ok(root)
}

/// runc's shouldHonorXDGRuntimeDir: not for root in the initial user namespace (backward
/// compatibility with /run), and not for root in a user namespace whose $USER is root.
fn honours_xdg_runtime_dir() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    in_user_namespace() && std::env::var("USER").map_or(true, |u| u != "root")
}

/// Whether cgroups are handled as rootless (runc's shouldUseRootlessCgroupManager with the
/// cgroupfs driver): as `--rootless` says, or in auto mode when not root, or root in a
/// user namespace (where the cgroup path's permissions are unknown).
pub fn cgroups_rootless(flag: Rootless) -> bool {
    match flag {
        Rootless::True => true,
        Rootless::False => false,
        Rootless::Auto => !nix::unistd::geteuid().is_root() || in_user_namespace(),
    }
}

/// Whether this process runs in a user namespace other than the initial one.
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>().join(" ") != INITIAL_UID_MAP)
}
