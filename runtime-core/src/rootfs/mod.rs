//! The container's filesystem: mounts, devices, pivot_root, masked and read-only paths.
//!
//! Every mount destination is resolved inside the rootfs ([`resolve`]): a symlink in the
//! image cannot redirect a mount onto the host. The mount is then made onto
//! `/proc/self/fd/N` of the descriptor that resolution returned, so it lands on exactly the
//! directory or file that was checked.

mod devices;
mod idmap;
mod mountpoints;
mod mounts;
mod options;
mod resolve;

pub use idmap::{prepare as prepare_bind_trees, requested as idmap_requested, BindTrees};
pub(crate) use mountpoints::create_mountpoints;
pub use options::supported_options;

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod tests;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use crate::cgroups::CgroupMount;
use crate::syscall::{Syscall, SyscallError};

/// Errors while building the container's filesystem, naming the mount or path.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A syscall failed.
    #[error("{context}: {source}")]
    Syscall {
        /// Which mount, device or path.
        context: String,
        /// The failed call.
        source: SyscallError,
    },
    /// The spec asks for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// A mount's source cannot be used (a bind source that does not exist).
    #[error("{what}: source: {source}")]
    Source {
        /// The mount, as `mount TYPE SOURCE on DESTINATION`.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What the runtime made ready for the container's mounts before it forked.
#[derive(Debug, Default)]
pub struct MountSources<'a> {
    /// The host's cgroup directories of the container, for `cgroup` entries.
    pub cgroups: &'a [CgroupMount],
    /// The detached trees the runtime made for bind entries (id-mapped ones, and in a
    /// user-namespaced container plain ones: see the idmap module).
    pub bind_trees: Option<&'a BindTrees>,
}

/// Whether a `mounts` entry is a bind mount: type `bind`, or a `bind`/`rbind` option.
pub fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || options::parse(m.options().as_deref().unwrap_or_default()).is_bind()
}

/// Wraps a failed syscall with what it was done for.
fn syscall_err(context: impl Into<String>) -> impl FnOnce(SyscallError) -> RootfsError {
    let context = context.into();
    move |source| RootfsError::Syscall { context, source }
}

/// Before pivot_root, in the container's new mount namespace: propagation, the rootfs
/// bind, every `mounts` entry in order, `/dev` contents and `linux.devices`.
pub fn prepare(
    sys: &dyn Syscall,
    spec: &Spec,
    rootfs: &Path,
    sources: &MountSources<'_>,
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    // Mount points are compared with mountinfo and bound onto themselves: no symlinks.
    let rootfs = canonical(rootfs)?;
    // Default rslave, as runc: host mounts still reach the container, but nothing the
    // container mounts propagates back to the host.
    let propagation = spec_propagation(spec)?.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    sys.mount(None, Path::new("/"), None, propagation, None)
        .map_err(syscall_err("set the propagation of /"))?;
    make_parent_private(sys, &rootfs, propagation)?;
    populate(sys, spec, &rootfs, sources, in_user_ns, None)
}

/// For a container without a mount namespace of its own (none in `linux.namespaces`): what
/// runc's prepareRootfs does there too, in the caller's mount namespace: the rootfs bound
/// onto itself, every `mounts` entry under it, `/dev` populated; the caller then chroots.
///
/// Unlike runc, the propagation of the host's `/` and of the mount holding the rootfs is
/// left alone (runc makes `/` rslave and that parent private, for every process of the
/// host): `linux.rootfsPropagation`, default private, applies to the rootfs bind only, so
/// that nothing mounted under it propagates elsewhere. Everything stays below that one
/// bind, which [`HostBinding::release`] detaches when the container is deleted (runc leaves
/// it mounted).
pub fn prepare_in_host_namespace(
    sys: &dyn Syscall,
    spec: &Spec,
    rootfs: &Path,
    sources: &MountSources<'_>,
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    let rootfs = canonical(rootfs)?;
    let propagation = spec_propagation(spec)?.unwrap_or(MsFlags::MS_PRIVATE | MsFlags::MS_REC);
    populate(sys, spec, &rootfs, sources, in_user_ns, Some(propagation))
}

fn canonical(rootfs: &Path) -> Result<PathBuf, RootfsError> {
    std::fs::canonicalize(rootfs).map_err(|e| RootfsError::Io {
        path: rootfs.to_path_buf(),
        source: e,
    })
}

/// `linux.rootfsPropagation` as mount flags; `None` when unset.
fn spec_propagation(spec: &Spec) -> Result<Option<MsFlags>, RootfsError> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(None),
        Some(p) => options::propagation(p).map(Some).ok_or_else(|| {
            RootfsError::Invalid(format!("linux.rootfsPropagation: unknown value {p:?}"))
        }),
    }
}

/// The rootfs bind (with `bind_propagation` applied to it, if given), every `mounts` entry
/// in order, `/dev` contents and `linux.devices`.
fn populate(
    sys: &dyn Syscall,
    spec: &Spec,
    rootfs: &Path,
    sources: &MountSources<'_>,
    in_user_ns: bool,
    bind_propagation: Option<MsFlags>,
) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    // A mount point of its own, so that pivot_root accepts it and mounts below it move
    // with it (or, in the host's namespace, go with it when it is detached).
    sys.mount(
        Some(rootfs),
        rootfs,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(syscall_err(format!("bind the rootfs {}", rootfs.display())))?;
    if let Some(p) = bind_propagation {
        sys.mount(None, rootfs, None, p, None)
            .map_err(syscall_err(format!(
                "set the propagation of the rootfs bind {}",
                rootfs.display()
            )))?;
    }
    // Opened after the bind, so that lookups start on the new mount, not the one below.
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| RootfsError::Syscall {
        context: "open the rootfs".into(),
        source: SyscallError {
            call: "open",
            target: rootfs.display().to_string(),
            errno,
        },
    })?;

    let ctx = mounts::Ctx {
        sys,
        root: root.as_fd(),
        sources,
    };
    let entries = spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in entries.iter().enumerate() {
        ctx.mount(i, m)?;
    }

    // As runc: /dev is populated unless it is bound from elsewhere (then it is complete).
    let dev_is_bound = entries
        .iter()
        .any(|m| resolve::absolute(m.destination()) == Path::new("/dev") && is_bind(m));
    if !dev_is_bound {
        let spec_devices = linux
            .and_then(|l| l.devices().as_deref())
            .unwrap_or_default();
        devices::setup_dev(sys, root.as_fd(), spec_devices, in_user_ns)?;
    }
    Ok(())
}

/// The rootfs bind [`prepare_in_host_namespace`] stacks in the caller's mount namespace, as
/// the runtime records it before init makes it, so that delete (or a failed create) can
/// detach it with everything mounted under it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostBinding {
    /// The rootfs, canonical.
    pub rootfs: PathBuf,
    /// How many mounts were stacked on `rootfs` before create (a shim's overlay, say):
    /// those are not ours to detach.
    pub mounts_below: usize,
}

impl HostBinding {
    /// Records the mounts on `rootfs` now, before init binds it.
    pub fn before(sys: &dyn Syscall, rootfs: &Path) -> Result<Self, RootfsError> {
        let rootfs = canonical(rootfs)?;
        let text = sys
            .mountinfo()
            .map_err(syscall_err("read the mount table"))?;
        let mounts_below = crate::mountinfo::parse(&text)
            .iter()
            .filter(|m| m.mount_point == rootfs)
            .count();
        Ok(Self {
            rootfs,
            mounts_below,
        })
    }

    /// Detaches the rootfs bind, and so every mount of the container under it, if it is
    /// there: one more mount than before create is stacked on the rootfs and the top one is
    /// the rootfs bound onto itself. Returns whether it detached it.
    pub fn release(&self, sys: &dyn Syscall) -> Result<bool, RootfsError> {
        let text = sys
            .mountinfo()
            .map_err(syscall_err("read the mount table"))?;
        let all = crate::mountinfo::parse(&text);
        let stacked: Vec<&crate::mountinfo::Mount> = all
            .iter()
            .filter(|m| m.mount_point == self.rootfs)
            .collect();
        let Some((top, rest)) = stacked.split_last() else {
            return Ok(false);
        };
        if stacked.len() <= self.mounts_below {
            return Ok(false);
        }
        // What the bind was made of: the mount below it on the same point, or else the
        // mount holding the rootfs directory.
        let parent = match rest.last() {
            Some(m) => Some((*m).clone()),
            None => {
                let others: Vec<crate::mountinfo::Mount> = all
                    .iter()
                    .filter(|m| m.mount_point != self.rootfs)
                    .cloned()
                    .collect();
                crate::mountinfo::mount_of(&others, &self.rootfs).cloned()
            }
        };
        let Some(parent) = parent else {
            return Ok(false);
        };
        // A bind of a directory onto itself: the same filesystem, and its root is the
        // directory's path inside that filesystem.
        let inside = self
            .rootfs
            .strip_prefix(&parent.mount_point)
            .unwrap_or(Path::new(""));
        let self_bind = top.dev == parent.dev && top.root == parent.root.join(inside);
        if !self_bind {
            return Ok(false);
        }
        sys.umount2(&self.rootfs, MntFlags::MNT_DETACH)
            .map_err(syscall_err(format!(
                "detach the rootfs bind {}",
                self.rootfs.display()
            )))?;
        Ok(true)
    }
}
/// pivot_root(2) refuses a new root whose parent mount is shared, and a bind onto a shared
/// mount would propagate to the host: like runc, make the mount holding the rootfs private
/// when it is shared. Nothing can be shared after a recursive slave or private change.
fn make_parent_private(
    sys: &dyn Syscall,
    rootfs: &Path,
    propagation: MsFlags,
) -> Result<(), RootfsError> {
    let unshares_all = propagation.contains(MsFlags::MS_REC)
        && propagation.intersects(MsFlags::MS_SLAVE | MsFlags::MS_PRIVATE | MsFlags::MS_UNBINDABLE);
    if unshares_all {
        return Ok(());
    }
    let text = sys
        .mountinfo()
        .map_err(syscall_err("read the mount table"))?;
    let entries = crate::mountinfo::parse(&text);
    if let Some(parent) = crate::mountinfo::mount_of(&entries, rootfs).filter(|e| e.is_shared()) {
        sys.mount(None, &parent.mount_point, None, MsFlags::MS_PRIVATE, None)
            .map_err(syscall_err(format!(
                "make {} (holding the rootfs) private",
                parent.mount_point.display()
            )))?;
    }
    Ok(())
}

/// Without pivot_root (`--no-pivot`, for a rootfs on a ramfs, where pivot_root fails):
/// move the rootfs mount onto `/` and chroot into it. Weaker than pivot_root, since the
/// old root stays reachable to a process that can chroot again; runc makes the same trade.
pub fn move_root(sys: &dyn Syscall, rootfs: &Path) -> Result<(), RootfsError> {
    let ctx = || format!("moving {} to /", rootfs.display());
    sys.chdir(rootfs).map_err(syscall_err(ctx()))?;
    sys.mount(
        Some(Path::new(".")),
        Path::new("/"),
        None,
        MsFlags::MS_MOVE,
        None,
    )
    .map_err(syscall_err(ctx()))?;
    sys.chroot(Path::new(".")).map_err(syscall_err(ctx()))?;
    sys.chdir(Path::new("/")).map_err(syscall_err(ctx()))
}

/// pivot_root into `rootfs` and detach the old root.
pub fn pivot(sys: &dyn Syscall, rootfs: &Path) -> Result<(), RootfsError> {
    let open_dir = |p: &Path| {
        nix::fcntl::open(
            p,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| RootfsError::Syscall {
            context: "pivot_root".into(),
            source: SyscallError {
                call: "open",
                target: p.display().to_string(),
                errno,
            },
        })
    };
    let old_root = open_dir(Path::new("/"))?;
    let new_root = open_dir(rootfs)?;
    let ctx = || format!("pivot_root into {}", rootfs.display());
    // pivot_root(".", ".") stacks the old root on top of the new one, which spares a
    // put_old directory inside the container's rootfs.
    sys.fchdir(new_root.as_fd()).map_err(syscall_err(ctx()))?;
    sys.pivot_root(Path::new("."), Path::new("."))
        .map_err(syscall_err(ctx()))?;
    // "." must name the old root's mount for the next two calls, not the new root below it.
    sys.fchdir(old_root.as_fd()).map_err(syscall_err(ctx()))?;
    // The old root still shares propagation with the host's mounts: without this, the
    // unmount below would propagate and unmount the host's filesystems.
    sys.mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )
    .map_err(syscall_err(ctx()))?;
    sys.umount2(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(syscall_err(ctx()))?;
    sys.chdir(Path::new("/")).map_err(syscall_err(ctx()))
}

/// After pivot_root (and after sysctls): `maskedPaths`, `readonlyPaths`, `root.readonly`.
pub fn finish(sys: &dyn Syscall, spec: &Spec) -> Result<(), RootfsError> {
    finish_at(sys, spec, Path::new("/"))
}

/// [`finish`] with the container's root at `root` (`/` after pivot_root; a directory in
/// tests). After pivot_root the host's filesystem is gone from this mount namespace, so
/// plain paths, symlinks included, cannot lead out of the container.
fn finish_at(sys: &dyn Syscall, spec: &Spec, root: &Path) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    let inside = |p: &str| root.join(PathBuf::from_iter(resolve::clean(Path::new(p))));
    // The order of runc: read-only paths, masked paths, then the root.
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        readonly_path(sys, &inside(p))?;
    }
    let dev_null = root.join("dev/null");
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask_path(sys, &inside(p), &dev_null)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        mounts::remount_bind(sys, root, MsFlags::MS_RDONLY, MsFlags::empty())
            .map_err(syscall_err("make the root read-only"))?;
    }
    Ok(())
}

/// Whether `path` exists; a missing path (or a file where a directory was expected on the
/// way) is skipped for masked and read-only paths, as the spec's defaults list paths that
/// only some kernels have.
fn lookup(path: &Path) -> Result<Option<std::fs::Metadata>, RootfsError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => Ok(None),
        Err(e) => Err(RootfsError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn missing(e: &SyscallError) -> bool {
    e.errno == Errno::ENOENT
}

/// Bind `path` onto itself and remount it read-only (nosuid, nodev, noexec, like runc).
fn readonly_path(sys: &dyn Syscall, path: &Path) -> Result<(), RootfsError> {
    if lookup(path)?.is_none() {
        return Ok(());
    }
    let what = || format!("read-only path {}", path.display());
    match sys.mount(
        Some(path),
        path,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    ) {
        Err(e) if missing(&e) => return Ok(()),
        r => r.map_err(syscall_err(what()))?,
    }
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mounts::remount_bind(sys, path, flags, MsFlags::empty()).map_err(syscall_err(what()))
}

/// Hide `path`: /dev/null bound over a file, an empty read-only tmpfs over a directory.
fn mask_path(sys: &dyn Syscall, path: &Path, dev_null: &Path) -> Result<(), RootfsError> {
    let Some(meta) = lookup(path)? else {
        return Ok(());
    };
    let result = if meta.is_dir() {
        sys.mount(
            Some(Path::new("tmpfs")),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None,
        )
    } else {
        sys.mount(Some(dev_null), path, None, MsFlags::MS_BIND, None)
    };
    match result {
        Err(e) if missing(&e) => Ok(()),
        r => r.map_err(syscall_err(format!("masked path {}", path.display()))),
    }
}
