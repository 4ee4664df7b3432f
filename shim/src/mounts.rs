//! The rootfs mounts containerd sends with Create (a bind mount of a directory, an overlay
//! of snapshot layers), mounted onto `<bundle>/rootfs` and unmounted on Delete.
//!
//! This runs in the server and never changes the process's working directory: containerd
//! relies on it (the `address` file is relative to the bundle), and long overlay options
//! are refused rather than shortened with a chdir.
//!
//! For a user-namespaced pod, containerd 2.x's overlay snapshotter (when the kernel can
//! id-map overlayfs layers: its `remap-ids` capability) adds `uidmap=` and `gidmap=`
//! options (`container:host:size` mappings, comma-separated) instead of chowning a copy
//! of the image. As containerd's own mount code, the shim then mounts each lower layer
//! through an id-mapped clone of it (a user namespace with those maps), so that the
//! image's root-owned files belong to the container's root; any other filesystem is
//! id-mapped as a whole once mounted.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use runtime_core::os::{fd_path, LinuxSyscall, Syscall};

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
    /// containerd's `uidmap=` and `gidmap=` options, as uid_map and gid_map file contents.
    pub idmap: Option<IdMaps>,
}

/// The id mapping containerd asks a mount to be seen through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    /// uid_map contents: `container host size` lines.
    pub uid_map: String,
    /// gid_map contents.
    pub gid_map: String,
}

/// containerd's `container:host:size[,...]` as uid_map/gid_map lines; None if malformed.
fn id_map_lines(option: &str) -> Option<String> {
    let mut out = String::new();
    for m in option.split(',') {
        let ids: Vec<u32> = m
            .split(':')
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        let [container, host, size] = ids[..] else {
            return None;
        };
        out.push_str(&format!("{container} {host} {size}\n"));
    }
    Some(out)
}

/// Parses options: flags are recognised, containerd's id maps taken apart, everything
/// else is filesystem data. Only a uidmap with a gidmap is a mapping, as for containerd;
/// a malformed one is an error naming it.
pub fn parse_options(options: &[String]) -> Result<Parsed> {
    let mut p = Parsed {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: String::new(),
        idmap: None,
    };
    let mut data: Vec<&str> = vec![];
    let (mut uid_map, mut gid_map) = (None, None);
    for o in options {
        for (key, map) in [("uidmap=", &mut uid_map), ("gidmap=", &mut gid_map)] {
            if let Some(v) = o.strip_prefix(key) {
                *map = Some(id_map_lines(v).ok_or_else(|| {
                    ShimError::invalid(format!(
                        "mount option {o}: mappings are container:host:size, comma-separated"
                    ))
                })?);
            }
        }
        if o.starts_with("uidmap=") || o.starts_with("gidmap=") {
            continue;
        }
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
    if let (Some(uid_map), Some(gid_map)) = (uid_map, gid_map) {
        p.idmap = Some(IdMaps { uid_map, gid_map });
    }
    Ok(p)
}

/// An overlay's `lowerdir=` option with each layer replaced by an id-mapped clone of it,
/// reached through the returned descriptors (which must stay open until the overlay is
/// mounted: it then holds the layers).
fn idmapped_lowerdirs(data: &str, userns: &OwnedFd) -> Result<(String, Vec<OwnedFd>)> {
    let sys = LinuxSyscall;
    let mut trees = vec![];
    let mut options = vec![];
    for o in data.split(',') {
        let Some(lower) = o.strip_prefix("lowerdir=") else {
            options.push(o.to_string());
            continue;
        };
        let mut layers = vec![];
        for layer in lower.split(':') {
            let tree = sys
                .open_tree_clone(Path::new(layer), false)
                .and_then(|t| {
                    sys.mount_setattr_idmap(t.as_fd(), false, userns.as_fd())
                        .map(|()| t)
                })
                .map_err(|e| ShimError::other(format!("id-mapping overlay layer {layer}: {e}")))?;
            layers.push(fd_path(tree.as_fd()).display().to_string());
            trees.push(tree);
        }
        options.push(format!("lowerdir={}", layers.join(":")));
    }
    Ok((options.join(","), trees))
}

/// Puts an id-mapped clone of the mount on `target` over it.
fn idmap_in_place(target: &Path, userns: &OwnedFd) -> std::result::Result<(), String> {
    let sys = LinuxSyscall;
    let tree = sys
        .open_tree_clone(target, true)
        .map_err(|e| e.to_string())?;
    sys.mount_setattr_idmap(tree.as_fd(), true, userns.as_fd())
        .map_err(|e| e.to_string())?;
    let to = nix::fcntl::open(
        target,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", target.display()))?;
    sys.move_mount(tree.as_fd(), to.as_fd())
        .map_err(|e| e.to_string())
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
    let mut p = parse_options(&m.options)?;
    let userns = match &p.idmap {
        Some(maps) => Some(
            runtime_core::os::new_user_namespace(&maps.uid_map, &maps.gid_map).map_err(|e| {
                ShimError::other(format!("mount {} ({}): id mapping: {e}", m.source, m.kind))
            })?,
        ),
        None => None,
    };
    // Held until the overlay is mounted.
    let mut _layers = vec![];
    if let (Some(userns), "overlay") = (&userns, m.kind.as_str()) {
        (p.data, _layers) = idmapped_lowerdirs(&p.data, userns)?;
    }
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
    if let (Some(userns), false) = (&userns, m.kind == "overlay") {
        if let Err(e) = idmap_in_place(target, userns) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(ShimError::other(format!(
                "id-mapping {} ({}) on {}: {e}",
                m.source,
                m.kind,
                target.display()
            )));
        }
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
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn opts(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bind_options() {
        let p = parse_options(&opts(&["rbind", "ro", "nosuid"])).unwrap();
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
        ]))
        .unwrap();
        assert_eq!(p.flags, MsFlags::empty());
        assert_eq!(
            p.data,
            "index=off,workdir=/s/2/work,upperdir=/s/2/fs,lowerdir=/s/1/fs"
        );
    }

    #[test]
    fn later_options_win_and_propagation_is_separate() {
        let p = parse_options(&opts(&["ro", "rw", "noexec", "exec", "rslave"])).unwrap();
        assert_eq!(p.flags, MsFlags::empty());
        assert_eq!(p.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
    }

    #[test]
    fn containerd_id_maps_are_taken_apart() {
        let p = parse_options(&opts(&[
            "index=off",
            "uidmap=0:65536:65536",
            "gidmap=0:131072:1,1:200000:10",
            "lowerdir=/s/1/fs",
        ]))
        .unwrap();
        assert_eq!(p.data, "index=off,lowerdir=/s/1/fs");
        assert_eq!(
            p.idmap,
            Some(IdMaps {
                uid_map: "0 65536 65536\n".into(),
                gid_map: "0 131072 1\n1 200000 10\n".into(),
            })
        );
        // As containerd: one without the other maps nothing.
        assert_eq!(parse_options(&opts(&["uidmap=0:1:1"])).unwrap().idmap, None);
        let e = parse_options(&opts(&["uidmap=0:1", "gidmap=0:1:1"])).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::InvalidArgument);
        assert!(e.to_string().contains("uidmap=0:1"), "{e}");
    }

    /// What containerd 2.x's overlay snapshotter sends for a user-namespaced pod: the
    /// layers' root-owned files belong to the mapped root through the overlay, and
    /// nothing of the mapping is left mounted once the overlay is unmounted.
    #[test]
    fn an_overlay_with_id_maps_shows_the_mapped_owners() {
        let dir = tempfile::tempdir().unwrap();
        let d = |n: &str| {
            let p = dir.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        };
        let (l1, l2, upper, work, target) = (d("l1"), d("l2"), d("upper"), d("work"), d("t"));
        std::fs::write(l1.join("f"), "lower").unwrap();
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("workdir={}", work.display()),
                format!("upperdir={}", upper.display()),
                format!("lowerdir={}:{}", l2.display(), l1.display()),
                "uidmap=0:100000:65536".into(),
                "gidmap=0:200000:65536".into(),
            ],
        };
        assert!(mount_rootfs(&[m], &target).unwrap());
        let meta = std::fs::metadata(target.join("f"));
        let data = std::fs::read_to_string(target.join("f"));
        unmount_rootfs(&target);
        let meta = meta.unwrap();
        assert_eq!((meta.uid(), meta.gid()), (100000, 200000));
        assert_eq!(data.unwrap(), "lower");
        let tmp = dir.path().to_string_lossy().into_owned();
        let left: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&tmp))
            .map(str::to_string)
            .collect();
        assert!(left.is_empty(), "mounts left: {left:#?}");
    }

    /// Any other filesystem (a bind here) is id-mapped as a whole once mounted; both of
    /// the stacked mounts go with unmount_rootfs.
    #[test]
    fn a_bind_with_id_maps_is_mapped_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (src, target) = (dir.path().join("src"), dir.path().join("t"));
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("f"), "x").unwrap();
        let m = Mount {
            kind: "bind".into(),
            source: src.display().to_string(),
            options: vec![
                "rbind".into(),
                "uidmap=0:300000:65536".into(),
                "gidmap=0:400000:65536".into(),
            ],
        };
        assert!(mount_rootfs(&[m], &target).unwrap());
        let meta = std::fs::metadata(target.join("f"));
        unmount_rootfs(&target);
        let meta = meta.unwrap();
        assert_eq!((meta.uid(), meta.gid()), (300000, 400000));
        let tmp = dir.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mountinfo.contains(&tmp), "mounts left under {tmp}");
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
