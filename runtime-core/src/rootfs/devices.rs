//! Device nodes and the standard symlinks of the container's `/dev`.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::resolve::{self, Kind};
use super::{syscall_err, RootfsError};
use crate::syscall::{fd_path, Syscall};

/// One device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path inside the container.
    pub path: PathBuf,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub kind: SFlag,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl Device {
    fn dev(&self) -> u64 {
        nix::sys::stat::makedev(self.major, self.minor)
    }
}

/// The devices every container gets, as runc and the spec's default device list have them.
pub fn defaults() -> Vec<Device> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| Device {
        path: PathBuf::from(path),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The symlinks of a standard `/dev`: (link name in /dev, target).
pub const SYMLINKS: [(&str, &str); 6] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    // With a devpts `newinstance` mount at /dev/pts, /dev/ptmx must lead to its own ptmx.
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

/// A `linux.devices` entry, checked.
pub fn from_spec(d: &LinuxDevice) -> Result<Device, RootfsError> {
    let path = d.path();
    let invalid = |why: &str| RootfsError::Invalid(format!("device {}: {why}", path.display()));
    if resolve::clean(path).is_empty() {
        return Err(invalid("path names no file"));
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Err(invalid("type \"a\" is not a device node type")),
    };
    let number = |n: i64, what: &str| {
        u64::try_from(n).map_err(|_| invalid(&format!("negative {what} number {n}")))
    };
    Ok(Device {
        path: resolve::absolute(path),
        kind,
        major: number(d.major(), "major")?,
        minor: number(d.minor(), "minor")?,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Creates `/dev`'s default devices and symlinks, then `spec_devices`, inside `root`.
/// A spec device replaces a default one of the same path.
pub fn setup_dev(
    sys: &dyn Syscall,
    root: BorrowedFd<'_>,
    spec_devices: &[LinuxDevice],
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    let spec: Vec<Device> = spec_devices
        .iter()
        .map(from_spec)
        .collect::<Result<_, _>>()?;
    let taken: HashSet<PathBuf> = spec.iter().map(|d| d.path.clone()).collect();
    let defaults: Vec<Device> = defaults()
        .into_iter()
        .filter(|d| !taken.contains(&d.path))
        .collect();

    // mknod applies the umask; the modes given are meant exactly.
    let old = sys.umask(Mode::empty());
    let result = (|| {
        create_all(sys, root, &defaults, in_user_ns)?;
        symlinks(sys, root, &taken)?;
        create_all(sys, root, &spec, in_user_ns)
    })();
    sys.umask(old);
    result
}

fn create_all(
    sys: &dyn Syscall,
    root: BorrowedFd<'_>,
    devices: &[Device],
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    for d in devices {
        // A user namespace may not create device nodes (FIFOs it may); the host's node is
        // bound onto an empty file instead, which is what the spec allows runtimes to do.
        if in_user_ns && d.kind != SFlag::S_IFIFO {
            bind_device(sys, root, d)?;
        } else {
            create_device(sys, root, d)?;
        }
    }
    Ok(())
}

fn create_device(sys: &dyn Syscall, root: BorrowedFd<'_>, d: &Device) -> Result<(), RootfsError> {
    let what = || format!("device {}", d.path.display());
    let (resolved, dir, name) =
        resolve::create_parent_in_root(root, &d.path).map_err(syscall_err(what()))?;
    let name = Path::new(&name);
    let perm = Mode::from_bits_truncate(d.mode);
    match sys.mknodat(dir.as_fd(), name, d.kind, perm, d.dev()) {
        Ok(()) => {}
        Err(e) if e.errno == Errno::EEXIST => {
            // The spec: a file already at the path that is not the requested device is an
            // error. The right device there already is kept as it is.
            return check_existing(dir.as_fd(), name, d, &resolved);
        }
        // No CAP_MKNOD (a nested container, say): bind the host's node, as in a user ns.
        Err(e) if e.errno == Errno::EPERM && d.kind != SFlag::S_IFIFO => {
            return bind_device(sys, root, d);
        }
        Err(e) => return Err(syscall_err(what())(e)),
    }
    sys.fchownat(
        dir.as_fd(),
        name,
        Some(Uid::from_raw(d.uid)),
        Some(Gid::from_raw(d.gid)),
    )
    .map_err(syscall_err(what()))
}

fn check_existing(
    dir: BorrowedFd<'_>,
    name: &Path,
    d: &Device,
    resolved: &Path,
) -> Result<(), RootfsError> {
    let st = nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|errno| {
        RootfsError::Syscall {
            context: format!("device {}", d.path.display()),
            source: crate::syscall::SyscallError {
                call: "fstatat",
                target: resolved.display().to_string(),
                errno,
            },
        }
    })?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let same_node = kind == d.kind && (d.kind == SFlag::S_IFIFO || st.st_rdev == d.dev());
    if same_node {
        Ok(())
    } else {
        Err(RootfsError::Invalid(format!(
            "device {}: {} already exists and is not the requested device",
            d.path.display(),
            resolved.display()
        )))
    }
}

fn bind_device(sys: &dyn Syscall, root: BorrowedFd<'_>, d: &Device) -> Result<(), RootfsError> {
    let what = || format!("device {} (bind from the host)", d.path.display());
    let (_, fd) =
        resolve::create_in_root(root, &d.path, Kind::File).map_err(syscall_err(what()))?;
    sys.mount(
        Some(&d.path),
        &fd_path(fd.as_fd()),
        None,
        MsFlags::MS_BIND,
        None,
    )
    .map_err(syscall_err(what()))
}

fn symlinks(
    sys: &dyn Syscall,
    root: BorrowedFd<'_>,
    taken: &HashSet<PathBuf>,
) -> Result<(), RootfsError> {
    let (_, dev) =
        resolve::create_in_root(root, Path::new("/dev"), Kind::Dir).map_err(syscall_err("/dev"))?;
    for (name, target) in SYMLINKS {
        if taken.contains(&Path::new("/dev").join(name)) {
            continue;
        }
        // As runc: /dev/core only where the kernel has /proc/kcore (CONFIG_PROC_KCORE), not
        // a dangling link.
        if name == "core" && !sys.exists(Path::new(target)) {
            continue;
        }
        let what = || format!("symlink /dev/{name} -> {target}");
        let (name, target) = (Path::new(name), Path::new(target));
        match sys.symlinkat(target, dev.as_fd(), name) {
            Ok(()) => {}
            Err(e) if e.errno == Errno::EEXIST => {
                let current = nix::fcntl::readlinkat(dev.as_fd(), name).ok();
                if current.as_deref() == Some(target.as_os_str()) {
                    continue;
                }
                // Only ptmx must be ours: a rootfs' own /dev/ptmx node would reach the host's
                // devpts instance, not the container's.
                if name == Path::new("ptmx") {
                    sys.unlinkat(dev.as_fd(), name)
                        .map_err(syscall_err(what()))?;
                    sys.symlinkat(target, dev.as_fd(), name)
                        .map_err(syscall_err(what()))?;
                }
            }
            Err(e) => return Err(syscall_err(what())(e)),
        }
    }
    Ok(())
}
