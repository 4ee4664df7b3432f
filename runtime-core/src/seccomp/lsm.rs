//! AppArmor and SELinux: `process.apparmorProfile`, `process.selinuxLabel`,
//! `linux.mountLabel`.
//!
//! AppArmor is applied when the host has it enabled: the profile is armed for the next
//! execve through /proc/self/attr (`exec PROFILE`), the way the kernel documents it, so the
//! user's program starts confined. SELinux labels are not implemented: a spec that asks for
//! one fails with a clear error instead of running unlabeled. On a host without the module
//! (this project's machines) any request fails, since the container would otherwise run
//! without the confinement it asked for.

use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use super::{field_err, FieldError};

/// Where the AppArmor module reports whether it is enabled.
const APPARMOR_ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
/// The file that exists when SELinux is enabled (selinuxfs mounted).
const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";

/// Whether AppArmor is enabled on this host.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string(APPARMOR_ENABLED).is_ok_and(|s| s.trim_start().starts_with('Y'))
}

/// Whether SELinux is enabled on this host.
pub fn selinux_enabled() -> bool {
    Path::new(SELINUX_ENFORCE).exists()
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Refuses what this host or this runtime cannot apply; in the runtime's main process.
pub fn check(spec: &Spec) -> Result<(), FieldError> {
    if let Some(p) = spec.process() {
        check_process(p)?;
    }
    if let Some(label) = spec.linux().as_ref().and_then(|l| set(l.mount_label())) {
        return Err(selinux_refusal("linux.mountLabel", label));
    }
    Ok(())
}

fn check_process(p: &Process) -> Result<(), FieldError> {
    if let Some(profile) = set(p.apparmor_profile()) {
        if !apparmor_enabled() {
            return Err(field_err(
                "process.apparmorProfile",
                format!(
                    "AppArmor profile {profile:?} requested, but AppArmor is not enabled on this host ({APPARMOR_ENABLED})"
                ),
            ));
        }
    }
    if let Some(label) = set(p.selinux_label()) {
        return Err(selinux_refusal("process.selinuxLabel", label));
    }
    Ok(())
}

fn selinux_refusal(field: &str, label: &str) -> FieldError {
    let why = if selinux_enabled() {
        "SELinux labels are not supported by this runtime"
    } else {
        "SELinux is not enabled on this host"
    };
    field_err(field, format!("{why} (label {label:?} requested)"))
}

/// Applies the process's AppArmor profile to its next execve; refuses what cannot be
/// applied. Runs in the container's process (init or exec), with the container's /proc.
pub fn apply(p: &Process) -> Result<(), String> {
    check_process(p).map_err(|(f, r)| format!("{f}: {r}"))?;
    let Some(profile) = set(p.apparmor_profile()) else {
        return Ok(());
    };
    // The per-LSM interface (Linux 5.8+) first, the shared one of older kernels second.
    let command = format!("exec {profile}");
    let mut last = None;
    for path in ["/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"] {
        match std::fs::write(path, &command) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(format!("writing {path:?}: {e}")),
        }
    }
    Err(format!(
        "process.apparmorProfile {profile:?}: {}",
        last.unwrap_or_default()
    ))
}
