//! The rootfs mounts containerd sends with Create (a bind mount of a directory, an overlay
//! of snapshot layers), mounted onto `<bundle>/rootfs` and unmounted on Delete.
//!
//! This runs in the server and never changes the process's working directory: containerd
//! relies on it (the `address` file is relative to the bundle), and long overlay options
//! are refused rather than shortened with a chdir.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Result, ShimError};

/// One mount as containerd describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// Filesystem type (`bind`, `overlay`, ...).
    pub kind: String,
    /// Source.
    pub source: String,
    /// Options (flags and filesystem data mixed, as in mount(8)).
    pub options: Vec<String>,
}

/// mount(2) flags, propagation and data parsed from mount(8)-style options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Flags for the mount call.
    pub flags: MsFlags,
    /// Propagation changes applied afterwards.
    pub propagation: MsFlags,
    /// Filesystem-specific options, comma-joined.
    pub data: String,
}

/// Parses options: flags are recognised, everything else is filesystem data.
pub fn parse_options(options: &[String]) -> Parsed {
    let mut p = Parsed {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: String::new(),
    };
    let mut data: Vec<&str> = vec![];
    for o in options {
        let (set, clear) = match o.as_str() {
            "defaults" | "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            other => {
                if let Some(prop) = propagation(other) {
                    p.propagation |= prop;
                } else {
                    data.push(other);
                }
                continue;
            }
        };
        p.flags = (p.flags | set) & !clear;
    }
    p.data = data.join(",");
    p
}

fn propagation(o: &str) -> Option<MsFlags> {
    Some(match o {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Mounts `mounts` onto `target` in order. Returns whether anything was mounted.
/// On failure, whatever was mounted is unmounted again.
pub fn mount_rootfs(mounts: &[Mount], target: &Path) -> Result<bool> {
    if mounts.is_empty() {
        return Ok(false);
    }
    if !target.is_dir() {
        std::fs::create_dir_all(target)
            .map_err(|e| ShimError::other(format!("creating {}: {e}", target.display())))?;
    }
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            if i > 0 {
                unmount_rootfs(target);
            }
            return Err(e);
        }
    }
    Ok(true)
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let p = parse_options(&m.options);
    let fail = |what: &str, e: Errno| {
        ShimError::other(format!(
            "{what} {} ({}) on {}: {e}",
            m.source,
            m.kind,
            target.display()
        ))
    };
    // One page is all mount(2) takes for data.
    if p.data.len() >= 4096 {
        return Err(ShimError::invalid(format!(
            "mount {} on {}: options are {} bytes, mount(2) takes less than 4096",
            m.kind,
            target.display(),
            p.data.len()
        )));
    }
    let data = (!p.data.is_empty()).then_some(p.data.as_str());
    let is_bind = m.kind == "bind" || p.flags.contains(MsFlags::MS_BIND);
    if is_bind {
        let bind = MsFlags::MS_BIND | (p.flags & MsFlags::MS_REC);
        mount(
            Some(m.source.as_str()),
            target,
            None::<&str>,
            bind,
            None::<&str>,
        )
        .map_err(|e| fail("bind-mounting", e))?;
        // A bind mount ignores other flags: they take a remount.
        let rest = p.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !rest.is_empty() {
            if let Err(e) = mount(
                None::<&str>,
                target,
                None::<&str>,
                rest | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                None::<&str>,
            ) {
                let _ = umount2(target, MntFlags::MNT_DETACH);
                return Err(fail("remounting", e));
            }
        }
    } else {
        mount(
            Some(m.source.as_str()),
            target,
            Some(m.kind.as_str()),
            p.flags,
            data,
        )
        .map_err(|e| fail("mounting", e))?;
    }
    if !p.propagation.is_empty() {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            p.propagation,
            None::<&str>,
        )
        .map_err(|e| fail("setting propagation of", e))?;
    }
    Ok(())
}

/// Unmounts everything stacked on `target` (nothing mounted is fine). Busy mounts are
/// detached.
pub fn unmount_rootfs(target: &Path) {
    for _ in 0..32 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            // Not a mount point (any more), or gone.
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return,
            Err(Errno::EBUSY) => {
                if let Err(e) = umount2(target, MntFlags::MNT_DETACH) {
                    log::warn!("detaching {}: {e}", target.display());
                    return;
                }
            }
            Err(e) => {
                log::warn!("unmounting {}: {e}", target.display());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bind_options() {
        let p = parse_options(&opts(&["rbind", "ro", "nosuid"]));
        assert_eq!(
            p.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert!(p.data.is_empty());
        assert!(p.propagation.is_empty());
    }

    #[test]
    fn overlay_options_are_data() {
        let p = parse_options(&opts(&[
            "index=off",
            "workdir=/s/2/work",
            "upperdir=/s/2/fs",
            "lowerdir=/s/1/fs",
        ]));
        assert_eq!(p.flags, MsFlags::empty());
        assert_eq!(
            p.data,
            "index=off,workdir=/s/2/work,upperdir=/s/2/fs,lowerdir=/s/1/fs"
        );
    }

    #[test]
    fn later_options_win_and_propagation_is_separate() {
        let p = parse_options(&opts(&["ro", "rw", "noexec", "exec", "rslave"]));
        assert_eq!(p.flags, MsFlags::empty());
        assert_eq!(p.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
    }

    #[test]
    fn nothing_to_mount_is_not_an_error() {
        assert!(!mount_rootfs(&[], Path::new("/nonexistent/rootfs")).unwrap());
    }

    #[test]
    fn overlong_data_is_refused() {
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![format!("lowerdir={}", "/l".repeat(3000))],
        };
        let dir = tempfile::tempdir().unwrap();
        let e = mount_rootfs(&[m], dir.path()).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::InvalidArgument);
    }
}
