//! One `mounts` entry of the spec onto the rootfs.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::Mount;

use super::options::{self, MountOptions};
use super::resolve::{self, Kind};
use super::{syscall_err, MountSources, RootfsError};
use crate::syscall::{fd_path, Syscall, SyscallError};

/// Flags the kernel locks on a mount that a less privileged user namespace received: a
/// bind remount must keep them or it fails with EPERM.
const LOCKABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// What the mounts of one container share.
pub struct Ctx<'a> {
    /// The kernel.
    pub sys: &'a dyn Syscall,
    /// O_PATH descriptor of the rootfs (taken after it was bind-mounted onto itself).
    pub root: BorrowedFd<'a>,
    /// What the runtime made ready: cgroup directories, bind trees.
    pub sources: &'a MountSources<'a>,
}

/// Remounts the bind mount at `target` with `flags` (MS_BIND|MS_REMOUNT added). On EPERM,
/// retries once with the flags the kernel locked on the mount, minus those in `cleared`
/// (asked off explicitly, so silently keeping them would be wrong).
pub fn remount_bind(
    sys: &dyn Syscall,
    target: &Path,
    flags: MsFlags,
    cleared: MsFlags,
) -> Result<(), SyscallError> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match sys.mount(None, target, None, base | flags, None) {
        Err(e) if e.errno == Errno::EPERM => {
            let locked = (sys.mount_flags(target)? & LOCKABLE) - cleared;
            if flags.contains(locked) {
                return Err(e);
            }
            sys.mount(None, target, None, base | flags | locked, None)
        }
        r => r,
    }
}

impl Ctx<'_> {
    /// Mounts one spec entry, `mounts[index]`.
    pub fn mount(&self, index: usize, m: &Mount) -> Result<(), RootfsError> {
        let dest = resolve::absolute(m.destination());
        let what = describe(m, &dest);
        let opts = options::parse(m.options().as_deref().unwrap_or_default());
        let tree = self.sources.bind_trees.and_then(|t| t.tree(index));
        if let Some(tree) = tree {
            return self.move_bind(tree, &dest, &opts, &what);
        }
        if let Some(idmap) = super::idmap::requested(m) {
            return Err(RootfsError::Invalid(format!(
                "{what}: id-mapped ({idmap:?}), but the runtime made no id-mapped tree for it"
            )));
        }
        if opts.tmpcopyup {
            log::warn!("{what}: option tmpcopyup is not supported; the tmpfs starts empty");
        }
        match m.typ().as_deref() {
            Some("cgroup") | Some("cgroup2") => self.mount_cgroup(&dest, &opts, &what),
            typ if opts.is_bind() || typ == Some("bind") => {
                let source = m
                    .source()
                    .as_deref()
                    .ok_or_else(|| RootfsError::Invalid(format!("{what}: bind without source")))?;
                self.mount_bind(source, &dest, &opts, &what)
            }
            Some(typ) => {
                let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
                self.mount_fs(&source, typ, &dest, &opts, &what)
            }
            None => Err(RootfsError::Invalid(format!(
                "{what}: no type and not a bind mount"
            ))),
        }
    }

    /// A filesystem (tmpfs, proc, sysfs, devpts, mqueue, overlay...) on a directory.
    fn mount_fs(
        &self,
        source: &Path,
        typ: &str,
        dest: &Path,
        opts: &MountOptions,
        what: &str,
    ) -> Result<(), RootfsError> {
        let (resolved, fd) =
            resolve::create_in_root(self.root, dest, Kind::Dir).map_err(syscall_err(what))?;
        self.sys
            .mount(
                Some(source),
                &fd_path(fd.as_fd()),
                Some(typ),
                opts.flags,
                opts.data().as_deref(),
            )
            .map_err(syscall_err(what))?;
        drop(fd);
        self.after_mount(&resolved, opts, None, what)
    }

    /// A bind mount of a host file or directory; the destination is created as the same kind.
    fn mount_bind(
        &self,
        source: &Path,
        dest: &Path,
        opts: &MountOptions,
        what: &str,
    ) -> Result<(), RootfsError> {
        let kind = source_kind(source, what)?;
        let (resolved, fd) =
            resolve::create_in_root(self.root, dest, kind).map_err(syscall_err(what))?;
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        self.sys
            .mount(Some(source), &fd_path(fd.as_fd()), None, flags, None)
            .map_err(syscall_err(what))?;
        drop(fd);
        self.after_mount(&resolved, opts, opts.remount_flags(), what)
    }

    /// A bind whose tree the runtime made (see [`super::idmap`]): moved onto the
    /// destination, created as the kind of the tree's root (init may not reach the
    /// source itself); then what follows any bind.
    fn move_bind(
        &self,
        tree: BorrowedFd<'_>,
        dest: &Path,
        opts: &MountOptions,
        what: &str,
    ) -> Result<(), RootfsError> {
        let kind = tree_kind(tree, what)?;
        let (resolved, fd) =
            resolve::create_in_root(self.root, dest, kind).map_err(syscall_err(what))?;
        self.sys
            .move_mount(tree, fd.as_fd())
            .map_err(syscall_err(what))?;
        drop(fd);
        self.after_mount(&resolved, opts, opts.remount_flags(), what)
    }

    /// What follows a mount: the bind remount with the flags a first MS_BIND call ignores,
    /// then each propagation change, then recursive attributes. Each acts on the mount's
    /// root, so the destination is looked up again: the descriptor used for the mount
    /// refers to the directory below it.
    fn after_mount(
        &self,
        resolved: &Path,
        opts: &MountOptions,
        remount: Option<MsFlags>,
        what: &str,
    ) -> Result<(), RootfsError> {
        if remount.is_none() && opts.propagation.is_empty() && opts.attr.is_none() {
            return Ok(());
        }
        let fd = resolve::open_path(self.root, resolved).map_err(syscall_err(what))?;
        let target = fd_path(fd.as_fd());
        if let Some(flags) = remount {
            remount_bind(self.sys, &target, flags, opts.cleared).map_err(syscall_err(what))?;
        }
        for p in &opts.propagation {
            self.sys
                .mount(None, &target, None, *p, None)
                .map_err(syscall_err(what))?;
        }
        if let Some(a) = opts.attr {
            self.sys
                .mount_setattr(fd.as_fd(), true, a.set, a.clear)
                .map_err(syscall_err(what))?;
        }
        Ok(())
    }

    /// `cgroup`/`cgroup2` entries: the container's own cgroup directories of the host,
    /// bound in. cgroup v1: a tmpfs at the destination with one directory per hierarchy;
    /// v2 (one entry with an empty name): the directory itself at the destination.
    fn mount_cgroup(
        &self,
        dest: &Path,
        opts: &MountOptions,
        what: &str,
    ) -> Result<(), RootfsError> {
        let cms = self.sources.cgroups;
        if cms.is_empty() {
            log::warn!("{what}: no cgroup directories were given; nothing mounted");
            return Ok(());
        }
        // Flags for each bound hierarchy: those of the entry (ro, nosuid, ...).
        let bind_flags = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        let remount = (!bind_flags.is_empty()).then_some(bind_flags);
        let bind_opts = MountOptions {
            cleared: opts.cleared,
            ..MountOptions::default()
        };
        if cms.iter().all(|c| c.name.is_empty()) {
            return self.mount_bind(
                &cms[0].source,
                dest,
                &MountOptions {
                    flags: MsFlags::MS_BIND | MsFlags::MS_REC | bind_flags,
                    ..opts.clone()
                },
                what,
            );
        }

        let tmpfs_flags = bind_flags - MsFlags::MS_RDONLY;
        let (resolved, fd) =
            resolve::create_in_root(self.root, dest, Kind::Dir).map_err(syscall_err(what))?;
        self.sys
            .mount(
                Some(Path::new("tmpfs")),
                &fd_path(fd.as_fd()),
                Some("tmpfs"),
                tmpfs_flags,
                Some("mode=755"),
            )
            .map_err(syscall_err(what))?;
        drop(fd);
        for cm in cms {
            // On a hybrid host the v2 hierarchy sits beside the v1 ones, as `unified`.
            let name = if cm.name.is_empty() {
                "unified"
            } else {
                cm.name.as_str()
            };
            if name.contains('/') || name == "." || name == ".." {
                return Err(RootfsError::Invalid(format!(
                    "{what}: bad cgroup hierarchy name {name:?}"
                )));
            }
            let sub_what = format!("{what} ({name})");
            let sub = resolved.join(name);
            let (sub_resolved, fd) = resolve::create_in_root(self.root, &sub, Kind::Dir)
                .map_err(syscall_err(&sub_what))?;
            self.sys
                .mount(
                    Some(&cm.source),
                    &fd_path(fd.as_fd()),
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .map_err(syscall_err(&sub_what))?;
            drop(fd);
            self.after_mount(&sub_resolved, &bind_opts, remount, &sub_what)?;
            // A co-mounted hierarchy (cpu,cpuacct) is reachable by each controller's name.
            if name.contains(',') {
                let dir = resolve::open_path(self.root, &resolved).map_err(syscall_err(what))?;
                for part in name
                    .split(',')
                    .filter(|p| !p.is_empty() && !p.contains('='))
                {
                    match self
                        .sys
                        .symlinkat(Path::new(name), dir.as_fd(), Path::new(part))
                    {
                        Ok(()) => {}
                        Err(e) if e.errno == Errno::EEXIST => {}
                        Err(e) => return Err(syscall_err(&sub_what)(e)),
                    }
                }
            }
        }
        if opts.flags.contains(MsFlags::MS_RDONLY) {
            // The tmpfs becomes read-only only now that its directories exist.
            let fd = resolve::open_path(self.root, &resolved).map_err(syscall_err(what))?;
            self.sys
                .mount(
                    None,
                    &fd_path(fd.as_fd()),
                    None,
                    MsFlags::MS_REMOUNT | tmpfs_flags | MsFlags::MS_RDONLY,
                    None,
                )
                .map_err(syscall_err(what))?;
        }
        let rest = MountOptions {
            propagation: opts.propagation.clone(),
            attr: opts.attr,
            ..MountOptions::default()
        };
        self.after_mount(&resolved, &rest, None, what)
    }
}

/// Whether a bind's destination is made a directory or a file: as the source is.
pub(super) fn source_kind(source: &Path, what: &str) -> Result<Kind, RootfsError> {
    let meta = std::fs::metadata(source).map_err(|e| RootfsError::Source {
        what: what.to_string(),
        source: e,
    })?;
    Ok(if meta.is_dir() { Kind::Dir } else { Kind::File })
}

/// Whether a detached tree's root is a directory or a file.
fn tree_kind(tree: BorrowedFd<'_>, what: &str) -> Result<Kind, RootfsError> {
    let st = nix::sys::stat::fstat(tree).map_err(|e| RootfsError::Source {
        what: what.to_string(),
        source: e.into(),
    })?;
    let dir = nix::sys::stat::SFlag::from_bits_truncate(st.st_mode) & nix::sys::stat::SFlag::S_IFMT
        == nix::sys::stat::SFlag::S_IFDIR;
    Ok(if dir { Kind::Dir } else { Kind::File })
}

/// "mount <type> <source> on <destination>", for messages.
pub(super) fn describe(m: &Mount, dest: &Path) -> String {
    format!(
        "mount {} {} on {}",
        m.typ().as_deref().unwrap_or("-"),
        m.source()
            .as_deref()
            .map(|s| s.display().to_string())
            .unwrap_or_else(|| "-".into()),
        dest.display()
    )
}
