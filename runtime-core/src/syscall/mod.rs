//! The one layer that talks to the kernel directly.
//!
//! Every raw syscall and every `unsafe` block of the runtime and of the shim lives here,
//! behind safe functions (lib.rs denies unsafe code everywhere else in the crate; the
//! front ends forbid it). The rest of the runtime goes through the [`Syscall`] trait, so
//! that the order of operations in rootfs and namespace setup can be unit-tested with
//! [`recording::RecordingSyscall`] without root.

pub mod bpf;
pub mod fds;
pub mod malloc;
pub mod notify;
pub mod pidfd;
#[cfg(test)]
pub mod recording;
pub mod signals;
pub mod spawn;
pub mod terminal;

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Pid, Uid};

/// A failed syscall: which one, on what, and the errno.
#[derive(Debug, thiserror::Error)]
#[error("{call}({target}): {errno}")]
pub struct SyscallError {
    /// Name of the syscall.
    pub call: &'static str,
    /// What it was applied to (a path, a flag set, an id).
    pub target: String,
    /// The kernel's answer.
    pub errno: Errno,
}

/// Result of a syscall wrapper.
pub type Result<T> = std::result::Result<T, SyscallError>;

fn err(call: &'static str, target: impl std::fmt::Display) -> impl FnOnce(Errno) -> SyscallError {
    move |errno| SyscallError {
        call,
        target: target.to_string(),
        errno,
    }
}

/// The syscalls used to build a container, as a trait so that their sequence can be checked.
pub trait Syscall {
    /// mount(2).
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// umount2(2).
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()>;
    /// pivot_root(2).
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()>;
    /// chdir(2); only ever called in a forked container process.
    fn chdir(&self, path: &Path) -> Result<()>;
    /// chroot(2); only ever called in a forked container process.
    fn chroot(&self, path: &Path) -> Result<()>;
    /// unshare(2).
    fn unshare(&self, flags: CloneFlags) -> Result<()>;
    /// setns(2) into the namespace that `fd` refers to.
    fn setns(&self, fd: BorrowedFd<'_>, kind: CloneFlags) -> Result<()>;
    /// sethostname(2).
    fn sethostname(&self, name: &str) -> Result<()>;
    /// setdomainname(2).
    fn setdomainname(&self, name: &str) -> Result<()>;
    /// mknod(2).
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()>;
    /// lchown(2).
    fn chown(&self, path: &Path, uid: Option<Uid>, gid: Option<Gid>) -> Result<()>;
    /// symlink(2).
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    /// fchdir(2) into the directory that `fd` refers to; only in a forked container process.
    fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<()>;
    /// mknodat(2): creates `name` in the directory `dir` (never follows a symlink).
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        kind: SFlag,
        perm: Mode,
        dev: u64,
    ) -> Result<()>;
    /// fchownat(2) of `name` in `dir` with AT_SYMLINK_NOFOLLOW.
    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        uid: Option<Uid>,
        gid: Option<Gid>,
    ) -> Result<()>;
    /// symlinkat(2): creates `name` in `dir`, pointing to `target`.
    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &Path) -> Result<()>;
    /// unlinkat(2) of the non-directory `name` in `dir`.
    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &Path) -> Result<()>;
    /// umask(2); returns the previous mask.
    fn umask(&self, mask: Mode) -> Mode;
    /// mount_setattr(2) on the mount whose root `fd` refers to: sets the `MOUNT_ATTR_*` bits
    /// in `set`, clears those in `clear`, on every mount below it too if `recursive`.
    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> Result<()>;
    /// The per-mount flags (ro, nosuid, nodev, noexec, atime) of the mount holding `path`,
    /// from statvfs(3).
    fn mount_flags(&self, path: &Path) -> Result<MsFlags>;
    /// The text of /proc/self/mountinfo.
    fn mountinfo(&self) -> Result<String>;
    /// Whether `path` exists (following symlinks), e.g. a file the kernel may lack.
    fn exists(&self, path: &Path) -> bool;
    /// sched_setattr(2) of the calling thread.
    fn sched_setattr(&self, attr: &SchedAttr) -> Result<()>;
    /// ioprio_set(2) of the calling process (IOPRIO_WHO_PROCESS, pid 0).
    fn ioprio_set(&self, value: i64) -> Result<()>;
    /// personality(2): sets the persona of the calling process (kept across execve).
    fn personality(&self, value: libc::c_ulong) -> Result<()>;
    /// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path`, with the
    /// mounts below it if `recursive`.
    fn open_tree_clone(&self, path: &Path, recursive: bool) -> Result<OwnedFd>;
    /// mount_setattr(2) with MOUNT_ATTR_IDMAP on the detached mount `fd` (and the mounts
    /// below it if `recursive`): its ids are seen through the user namespace `userns`.
    fn mount_setattr_idmap(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        userns: BorrowedFd<'_>,
    ) -> Result<()>;
    /// move_mount(2) of the detached mount `from` onto the directory or file `to`.
    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()>;
    /// A new user namespace with these uid_map and gid_map contents, held by the returned
    /// descriptor (see [`new_user_namespace`]).
    fn new_user_namespace(&self, uid_map: &str, gid_map: &str) -> Result<OwnedFd>;
    /// setrlimit(2) of the resource `resource` (a RLIMIT_* number) of the calling process.
    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> Result<()>;
    /// setgroups(2): the supplementary groups of the calling process.
    fn setgroups(&self, groups: &[Gid]) -> Result<()>;
    /// setresgid(2) with real, effective and saved gid all `gid`.
    fn setresgid(&self, gid: Gid) -> Result<()>;
    /// setresuid(2) with real, effective and saved uid all `uid`.
    fn setresuid(&self, uid: Uid) -> Result<()>;
    /// prctl(PR_SET_KEEPCAPS): whether permitted capabilities survive a uid change.
    fn set_keepcaps(&self, keep: bool) -> Result<()>;
    /// prctl(PR_SET_NO_NEW_PRIVS, 1): execve grants no privileges from now on.
    fn set_no_new_privs(&self) -> Result<()>;
    /// dup2(2): `fd` becomes descriptor `target` (0, 1 or 2), without close-on-exec.
    fn dup2(&self, fd: BorrowedFd<'_>, target: i32) -> Result<()>;
    /// The capabilities in the calling thread's bounding set.
    fn bounding_set(&self) -> Result<caps::CapsHashSet>;
    /// prctl(PR_CAPBSET_DROP): removes `cap` from the calling thread's bounding set.
    fn drop_bounding(&self, cap: caps::Capability) -> Result<()>;
    /// capset(2) of one of the permitted, inheritable and effective sets to `value`.
    fn set_capabilities(&self, set: caps::CapSet, value: &caps::CapsHashSet) -> Result<()>;
    /// prctl(PR_CAP_AMBIENT_CLEAR_ALL).
    fn clear_ambient(&self) -> Result<()>;
    /// prctl(PR_CAP_AMBIENT_RAISE) of `cap`.
    fn raise_ambient(&self, cap: caps::Capability) -> Result<()>;
    /// Loads a seccomp filter: see `seccomp_set_mode_filter`.
    fn seccomp_load(&self, prog: &[libc::sock_filter], flags: u32) -> Result<Option<OwnedFd>>;
    /// Marks every descriptor from `first` upwards close-on-exec: see `cloexec_from`.
    fn cloexec_from(&self, first: u32) -> Result<()>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
            .map_err(err("mount", target.display()))
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        nix::mount::umount2(target, flags).map_err(err("umount2", target.display()))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        nix::unistd::pivot_root(new_root, put_old).map_err(err("pivot_root", new_root.display()))
    }

    fn chdir(&self, path: &Path) -> Result<()> {
        nix::unistd::chdir(path).map_err(err("chdir", path.display()))
    }

    fn chroot(&self, path: &Path) -> Result<()> {
        nix::unistd::chroot(path).map_err(err("chroot", path.display()))
    }

    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        nix::sched::unshare(flags).map_err(err("unshare", format!("{flags:?}")))
    }

    fn setns(&self, fd: BorrowedFd<'_>, kind: CloneFlags) -> Result<()> {
        nix::sched::setns(fd, kind).map_err(err("setns", format!("{kind:?}")))
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        nix::unistd::sethostname(name).map_err(err("sethostname", name))
    }

    fn setdomainname(&self, name: &str) -> Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call;
        // the kernel copies them and does not need a terminating NUL.
        let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        Errno::result(rc)
            .map(drop)
            .map_err(err("setdomainname", name))
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()> {
        nix::sys::stat::mknod(path, kind, perm, dev).map_err(err("mknod", path.display()))
    }

    fn chown(&self, path: &Path, uid: Option<Uid>, gid: Option<Gid>) -> Result<()> {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            uid,
            gid,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err("lchown", path.display()))
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        nix::unistd::symlinkat(target, nix::fcntl::AT_FDCWD, link)
            .map_err(err("symlink", link.display()))
    }

    fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<()> {
        nix::unistd::fchdir(fd).map_err(err("fchdir", fd.as_raw_fd()))
    }

    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        kind: SFlag,
        perm: Mode,
        dev: u64,
    ) -> Result<()> {
        nix::sys::stat::mknodat(dir, name, kind, perm, dev).map_err(err("mknodat", name.display()))
    }

    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        uid: Option<Uid>,
        gid: Option<Gid>,
    ) -> Result<()> {
        nix::unistd::fchownat(
            dir,
            name,
            uid,
            gid,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err("fchownat", name.display()))
    }

    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &Path) -> Result<()> {
        nix::unistd::symlinkat(target, dir, name).map_err(err("symlinkat", name.display()))
    }

    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &Path) -> Result<()> {
        nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(err("unlinkat", name.display()))
    }

    fn umask(&self, mask: Mode) -> Mode {
        nix::sys::stat::umask(mask)
    }

    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> Result<()> {
        let attr = MountAttr {
            attr_set: set,
            attr_clr: clear,
            propagation: 0,
            userns_fd: 0,
        };
        mount_setattr_fd(fd, recursive, &attr).map_err(err("mount_setattr", fd.as_raw_fd()))
    }

    fn mount_flags(&self, path: &Path) -> Result<MsFlags> {
        use nix::sys::statvfs::FsFlags;
        let st = nix::sys::statvfs::statvfs(path).map_err(err("statvfs", path.display()))?;
        let pairs = [
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ];
        Ok(pairs
            .iter()
            .filter(|(st_flag, _)| st.flags().contains(*st_flag))
            .fold(MsFlags::empty(), |acc, (_, ms)| acc | *ms))
    }

    fn mountinfo(&self) -> Result<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| err("read", "/proc/self/mountinfo")(io_errno(&e)))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn sched_setattr(&self, attr: &SchedAttr) -> Result<()> {
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            ..*attr
        };
        // SAFETY: sched_setattr reads `size` bytes of a properly laid out struct sched_attr
        // that lives across the call; pid 0 is the calling thread.
        let rc =
            unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
        Errno::result(rc)
            .map(drop)
            .map_err(err("sched_setattr", attr.sched_policy))
    }

    fn ioprio_set(&self, value: i64) -> Result<()> {
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        // SAFETY: ioprio_set takes integers only.
        let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
        Errno::result(rc)
            .map(drop)
            .map_err(err("ioprio_set", value))
    }

    fn personality(&self, value: libc::c_ulong) -> Result<()> {
        // SAFETY: personality takes an integer only.
        let rc = unsafe { libc::personality(value) };
        Errno::result(rc)
            .map(drop)
            .map_err(err("personality", format!("{value:#x}")))
    }

    fn open_tree_clone(&self, path: &Path, recursive: bool) -> Result<OwnedFd> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| err("open_tree", path.display())(Errno::EINVAL))?;
        let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
        if recursive {
            flags |= libc::AT_RECURSIVE as libc::c_uint;
        }
        // SAFETY: `c` is a NUL-terminated path that outlives the call; the kernel only reads
        // it.
        let rc = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
        let fd = Errno::result(rc).map_err(err("open_tree", path.display()))?;
        // SAFETY: on success open_tree returns a new descriptor that nothing else owns.
        Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
    }

    fn mount_setattr_idmap(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        userns: BorrowedFd<'_>,
    ) -> Result<()> {
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        };
        mount_setattr_fd(fd, recursive, &attr).map_err(err(
            "mount_setattr(MOUNT_ATTR_IDMAP)",
            fd_path(fd).display(),
        ))
    }

    fn move_mount(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
        const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
        const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
        // SAFETY: both paths are the same NUL-terminated empty string, which outlives the
        // call; with the *_EMPTY_PATH flags the call acts on the two descriptors themselves.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                from.as_raw_fd(),
                c"".as_ptr(),
                to.as_raw_fd(),
                c"".as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        Errno::result(rc)
            .map(drop)
            .map_err(err("move_mount", fd_path(to).display()))
    }

    fn new_user_namespace(&self, uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
        new_user_namespace(uid_map, gid_map)
    }

    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> Result<()> {
        setrlimit(resource, soft, hard)
    }

    fn setgroups(&self, groups: &[Gid]) -> Result<()> {
        nix::unistd::setgroups(groups).map_err(err("setgroups", format!("{groups:?}")))
    }

    fn setresgid(&self, gid: Gid) -> Result<()> {
        nix::unistd::setresgid(gid, gid, gid).map_err(err("setresgid", gid))
    }

    fn setresuid(&self, uid: Uid) -> Result<()> {
        nix::unistd::setresuid(uid, uid, uid).map_err(err("setresuid", uid))
    }

    fn set_keepcaps(&self, keep: bool) -> Result<()> {
        nix::sys::prctl::set_keepcaps(keep).map_err(err("prctl", "PR_SET_KEEPCAPS"))
    }

    fn set_no_new_privs(&self) -> Result<()> {
        nix::sys::prctl::set_no_new_privs().map_err(err("prctl", "PR_SET_NO_NEW_PRIVS"))
    }

    fn dup2(&self, fd: BorrowedFd<'_>, target: i32) -> Result<()> {
        let call = match target {
            0 => nix::unistd::dup2_stdin(fd),
            1 => nix::unistd::dup2_stdout(fd),
            2 => nix::unistd::dup2_stderr(fd),
            _ => Err(Errno::EBADF),
        };
        call.map_err(err("dup2", target))
    }

    fn bounding_set(&self) -> Result<caps::CapsHashSet> {
        caps::read(None, caps::CapSet::Bounding).map_err(|_| caps_err("read", "bounding"))
    }

    fn drop_bounding(&self, cap: caps::Capability) -> Result<()> {
        caps::drop(None, caps::CapSet::Bounding, cap).map_err(|_| caps_err("prctl", cap))
    }

    fn set_capabilities(&self, set: caps::CapSet, value: &caps::CapsHashSet) -> Result<()> {
        caps::set(None, set, value).map_err(|_| caps_err("capset", format!("{set:?}")))
    }

    fn clear_ambient(&self) -> Result<()> {
        caps::clear(None, caps::CapSet::Ambient).map_err(|_| caps_err("prctl", "ambient"))
    }

    fn raise_ambient(&self, cap: caps::Capability) -> Result<()> {
        caps::raise(None, caps::CapSet::Ambient, cap).map_err(|_| caps_err("prctl", cap))
    }

    fn seccomp_load(&self, prog: &[libc::sock_filter], flags: u32) -> Result<Option<OwnedFd>> {
        seccomp_set_mode_filter(prog, flags)
    }

    fn cloexec_from(&self, first: u32) -> Result<()> {
        cloexec_from(first)
    }
}

/// The error of a failed call of the caps crate: its own error is text only, so the errno
/// is read right after, before any other call can set it (the crate makes the syscall
/// last and formats its message from errno without another syscall that fails).
fn caps_err(call: &'static str, target: impl std::fmt::Display) -> SyscallError {
    err(call, target)(Errno::last())
}

/// A new user namespace with these uid_map and gid_map contents, held by the returned
/// descriptor, e.g. to id-map a mount with.
///
/// A namespace needs a process: a child is cloned straight into a new user namespace,
/// its maps are written and its namespace opened, then it exits. This also works from a
/// multi-threaded process (the shim's server, which id-maps overlay layers): the child's
/// copy of the address space may hold other threads' locks, so it only makes raw
/// async-signal-safe calls and never returns into Rust code. It delivers no exit signal,
/// so a `waitpid(-1)` reaper elsewhere in the process does not take it (only a __WCLONE
/// wait does); it exits when the parent closes its end of the pipe, or dies.
pub fn new_user_namespace(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let call = "create a user namespace";
    // Close-on-exec: a process another thread spawns meanwhile must not keep the child.
    let (hold_r, hold_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(err(call, "pipe"))?;
    let (r, w) = (hold_r.as_raw_fd(), hold_w.as_raw_fd());
    // SAFETY: clone(2) without CLONE_VM is a fork into a new user namespace, with exit
    // signal 0. The child only runs the block below: close, read and _exit on the integers
    // copied above, all async-signal-safe, then ends without unwinding.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_NEWUSER as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if rc == 0 {
        // SAFETY: in the child, as said above; `b` is a local byte the read fills.
        unsafe {
            libc::close(w);
            let mut b = 0u8;
            while libc::read(r, (&mut b as *mut u8).cast(), 1) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
            libc::_exit(0)
        }
    }
    let child = Pid::from_raw(Errno::result(rc).map_err(err("clone", "CLONE_NEWUSER"))? as i32);
    drop(hold_r);
    let result = (|| {
        for (file, text) in [("uid_map", uid_map), ("gid_map", gid_map)] {
            let path = format!("/proc/{child}/{file}");
            std::fs::write(&path, text).map_err(|e| err("write", &path)(io_errno(&e)))?;
        }
        let path = format!("/proc/{child}/ns/user");
        nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err("open", &path))
    })();
    // The namespace lives on in the descriptor; the child goes, whatever happened.
    drop(hold_w);
    let _ = nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::__WCLONE));
    result
}

/// OPEN_TREE_CLONE of <linux/mount.h>.
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// MOUNT_ATTR_IDMAP of <linux/mount.h>.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// mount_setattr(2) on the mount `fd` refers to.
fn mount_setattr_fd(
    fd: BorrowedFd<'_>,
    recursive: bool,
    attr: &MountAttr,
) -> std::result::Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the path is a NUL-terminated empty string and `attr` a fully initialised
    // struct mount_attr whose exact size is passed; both outlive the call, and the kernel
    // only reads them. AT_EMPTY_PATH makes the call act on `fd` itself.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// struct mount_attr of <linux/mount.h> (MOUNT_ATTR_SIZE_VER0), the argument of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) attribute: read-only.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// mount_setattr(2) attribute: ignore suid and sgid bits.
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
/// mount_setattr(2) attribute: no access to device files.
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
/// mount_setattr(2) attribute: no program execution.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
/// mount_setattr(2): the mask of the atime mode; must be cleared to set a mode.
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;
/// mount_setattr(2) atime mode: relatime (the value 0 inside the atime mask).
pub const MOUNT_ATTR_RELATIME: u64 = 0x0000_0000;
/// mount_setattr(2) atime mode: noatime.
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
/// mount_setattr(2) atime mode: strictatime.
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
/// mount_setattr(2) attribute: no directory atime updates.
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
/// mount_setattr(2) attribute: do not follow symlinks.
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// Opens `path` inside the directory `root` as if `root` were `/`: `..` and symlinks,
/// absolute ones included, can never leave it (openat2 with RESOLVE_IN_ROOT).
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    loop {
        match nix::fcntl::openat2(root, path, how) {
            // openat2 returns EAGAIN when a concurrent rename raced the lookup: retry.
            Err(Errno::EAGAIN) => continue,
            r => return r.map_err(err("openat2", path.display())),
        }
    }
}

/// The path through which the kernel reaches an open file descriptor, for calls such as
/// mount(2) that take a path: using it operates on exactly the file that was opened.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// What a fork returned in the calling process.
#[derive(Debug)]
pub enum Forked {
    /// We are the parent; this is the child's pid.
    Parent(Pid),
    /// We are the child.
    Child,
}

/// fork(2), refused unless the calling process has a single thread.
///
/// A child forked from a multi-threaded process inherits locks held by other threads
/// (the allocator's among them) and may deadlock on its first allocation; the runtime
/// allocates freely in its children, so it only forks from single-threaded processes.
pub fn fork() -> Result<Forked> {
    single_threaded("fork")?;
    // SAFETY: the process has exactly one thread (checked above), so the child gets a
    // consistent copy of the whole address space with no lock held by a vanished thread.
    match unsafe { nix::unistd::fork() }.map_err(err("fork", "child"))? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The size of `struct clone_args` up to `tls` (CLONE_ARGS_SIZE_VER0), for a clone3 that
/// needs none of the later fields: it then runs on the first kernels with clone3 (5.3).
const CLONE_ARGS_SIZE_VER0: usize = 64;

/// clone3's CLONE_INTO_CGROUP (Linux 5.7), which the libc crate does not name.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// clone3(2) with the first `size` bytes of `args`: the child's 0 or the parent's child
/// pid, or the errno.
///
/// # Safety
///
/// `args` must describe a fork (no CLONE_VM, no stack) and every pointer in it be valid
/// for the kernel to write; the caller's child must only run code that is sound in a copy
/// of the process taken at this instant: when other threads exist, only async-signal-safe
/// calls on data prepared before, and it must end in execve(2) or _exit(2).
unsafe fn clone3(args: &CloneArgs, size: usize) -> std::result::Result<i32, Errno> {
    debug_assert!(size <= std::mem::size_of::<CloneArgs>());
    // SAFETY: `args` is a valid clone_args of at least `size` bytes, alive for the call;
    // what the child may do is the caller's contract (above).
    let ret = unsafe { libc::syscall(libc::SYS_clone3, args as *const CloneArgs, size) };
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret as i32)
    }
}

/// fork(2) as [`fork`], but the child is created in the cgroup v2 directory `cgroup`
/// (clone3 with CLONE_INTO_CGROUP): it never moves, so the kernel takes its global
/// threadgroup lock only for reading, not for writing as a move through cgroup.procs
/// does, which costs an RCU grace period (milliseconds). Refused like [`fork`] unless the
/// process has a single thread; an error (a kernel before 5.7, clone3 filtered by seccomp,
/// a cgroup that does not take processes) creates no child.
pub fn fork_into_cgroup(cgroup: BorrowedFd<'_>) -> Result<Forked> {
    single_threaded("clone3")?;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: with no CLONE_VM and no stack, clone3 duplicates the process as fork(2)
    // does, and the process has exactly one thread (checked above), so the child's copy
    // holds no lock of a vanished thread. `args` holds no pointer. glibc's fork also
    // refreshes its cached thread id in the child; the child here runs runtime code that
    // does not use it (no raise(3), no pthread_kill) and then execs.
    match unsafe { clone3(&args, std::mem::size_of::<CloneArgs>()) } {
        Err(errno) => Err(SyscallError {
            call: "clone3",
            target: "CLONE_INTO_CGROUP".into(),
            errno,
        }),
        Ok(0) => Ok(Forked::Child),
        Ok(pid) => Ok(Forked::Parent(Pid::from_raw(pid))),
    }
}

/// Refuses `call` (a fork) unless the process has exactly one thread.
fn single_threaded(call: &'static str) -> Result<()> {
    let threads = thread_count().map_err(err(call, "count threads"))?;
    if threads != 1 {
        return Err(SyscallError {
            call,
            target: format!("process has {threads} threads, fork needs exactly one"),
            errno: Errno::EDEADLK,
        });
    }
    Ok(())
}

fn thread_count() -> std::result::Result<usize, Errno> {
    let dir = std::fs::read_dir("/proc/self/task").map_err(|e| io_errno(&e))?;
    Ok(dir.count())
}

/// Clock ticks per second (sysconf(_SC_CLK_TCK)), the unit of /proc's and cgroup v1's CPU
/// times; None if the C library does not know it.
pub fn clock_ticks() -> Option<u64> {
    // SAFETY: sysconf takes an integer only and has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0)
}

/// The errno inside an io::Error, EIO when it has none.
pub fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// `struct sched_attr` of sched_setattr(2), with the utilization clamps
/// (SCHED_ATTR_SIZE_VER1) as runc passes it; `size` is filled in by
/// [`Syscall::sched_setattr`].
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SchedAttr {
    /// The size of this struct.
    pub size: u32,
    /// SCHED_* policy.
    pub sched_policy: u32,
    /// SCHED_FLAG_* bits.
    pub sched_flags: u64,
    /// Nice value (SCHED_OTHER, SCHED_BATCH).
    pub sched_nice: i32,
    /// Static priority (SCHED_FIFO, SCHED_RR).
    pub sched_priority: u32,
    /// SCHED_DEADLINE runtime, ns.
    pub sched_runtime: u64,
    /// SCHED_DEADLINE deadline, ns.
    pub sched_deadline: u64,
    /// SCHED_DEADLINE period, ns.
    pub sched_period: u64,
    /// Utilization clamp, minimum.
    pub sched_util_min: u32,
    /// Utilization clamp, maximum.
    pub sched_util_max: u32,
}

/// SECCOMP_FILTER_FLAG_NEW_LISTENER: the load returns a notify descriptor.
pub const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;

/// seccomp(SECCOMP_SET_MODE_FILTER, `flags`, `prog`): loads a classic BPF filter into the
/// calling thread; with [`SECCOMP_FILTER_FLAG_NEW_LISTENER`] returns the notify descriptor.
pub fn seccomp_set_mode_filter(prog: &[libc::sock_filter], flags: u32) -> Result<Option<OwnedFd>> {
    let len = u16::try_from(prog.len()).map_err(|_| SyscallError {
        call: "seccomp",
        target: format!("a filter of {} instructions", prog.len()),
        errno: Errno::E2BIG,
    })?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` valid instructions that outlive the call; the kernel
    // copies the program and reads nothing else of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    let rc =
        Errno::result(rc).map_err(err("seccomp", format!("SET_MODE_FILTER, flags {flags:#x}")))?;
    if flags & SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the kernel returns a new descriptor that nothing else owns.
    Ok(Some(unsafe {
        std::os::fd::FromRawFd::from_raw_fd(rc as i32)
    }))
}

/// Closes, in a forked child, a descriptor the parent still owns (a lock the child must
/// not share); the child's copy of the owning value is never dropped (it execs or exits
/// with [`exit_child`]).
pub fn close_in_child(fd: std::os::fd::RawFd) {
    // SAFETY: close takes an integer; in this forked child nothing else uses `fd` after
    // this, and the value that owns it in the parent is never dropped here, so no other
    // code closes or reads a reused descriptor number through it.
    unsafe { libc::close(fd) };
}

/// Ends a forked child at once with `code`, without running atexit handlers or destructors
/// that belong to the parent's copy of the process state.
pub fn exit_child(code: i32) -> ! {
    exit_now(code)
}

/// Ends the process at once with `code` (_exit(2)): no atexit handler, destructor or
/// buffered output is run or flushed, and no lock of another thread is waited for.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    unsafe { libc::_exit(code) }
}

/// Marks every file descriptor from `first` upwards close-on-exec, so that nothing the
/// runtime or its caller had open reaches the container's program.
///
/// close_range(2) first; where it fails (kernels before 5.11 lack the CLOEXEC flag, and a
/// container's seccomp profile, loaded by now, may refuse a syscall it predates), each
/// descriptor listed in /proc/self/fd is marked with fcntl(2), as runc does.
pub fn cloexec_from(first: u32) -> Result<()> {
    // SAFETY: close_range takes integers only; with CLOSE_RANGE_CLOEXEC it closes nothing
    // now, so no descriptor that Rust code still owns is invalidated.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    match Errno::result(rc) {
        Ok(_) => Ok(()),
        Err(e) => {
            log::debug!("close_range({first}): {e}; marking descriptors one by one");
            cloexec_each_from(first)
        }
    }
}

/// [`cloexec_from`] through /proc/self/fd and fcntl(2).
fn cloexec_each_from(first: u32) -> Result<()> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| SyscallError {
            call: "opendir",
            target: "/proc/self/fd".into(),
            errno: io_errno(&e),
        })?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on an integer descriptor changes only its close-on-exec flag;
        // one that was closed meanwhile (the listing's own) gives EBADF, which is fine.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        match Errno::result(rc) {
            Ok(_) | Err(Errno::EBADF) => {}
            Err(e) => return Err(err("fcntl(F_SETFD, FD_CLOEXEC)", fd)(e)),
        }
    }
    Ok(())
}

/// Replaces the process image: execve(2). Returns only on failure.
pub fn execve(path: &CString, args: &[CString], env: &[CString]) -> SyscallError {
    match nix::unistd::execve(path, args, env) {
        Err(errno) => SyscallError {
            call: "execve",
            target: path.to_string_lossy().into_owned(),
            errno,
        },
        Ok(never) => match never {},
    }
}

/// Sets the resource limit `resource` (a RLIMIT_* number) of the calling process.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit that lives across the call; the kernel only reads it.
    let rc = unsafe { libc::setrlimit(resource as _, &lim) };
    Errno::result(rc)
        .map(drop)
        .map_err(err("setrlimit", resource))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn sched_attr_is_the_kernels_ver1_size() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    /// From a multi-threaded process (as the shim's server): the namespace has the maps
    /// asked for, seen through a mount id-mapped with it, and no child is left to reap.
    #[test]
    fn a_user_namespace_from_a_multi_threaded_process() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        let dir = tempfile::tempdir().expect("tempdir");
        let ns = new_user_namespace("0 100000 65536\n", "0 200000 65536\n").expect("userns");
        let link = std::fs::read_link(fd_path(ns.as_fd())).expect("readlink");
        assert!(link.to_string_lossy().starts_with("user:["), "{link:?}");
        assert_ne!(link, std::fs::read_link("/proc/self/ns/user").expect("own"));
        let sys = LinuxSyscall;
        let tree = sys.open_tree_clone(dir.path(), false).expect("open_tree");
        sys.mount_setattr_idmap(tree.as_fd(), false, ns.as_fd())
            .expect("mount_setattr");
        let st = nix::sys::stat::fstat(&tree).expect("fstat");
        assert_eq!(
            (st.st_uid, st.st_gid),
            (100000, 200000),
            "root's dir, mapped"
        );
        let left = nix::sys::wait::waitpid(
            None,
            Some(nix::sys::wait::WaitPidFlag::__WCLONE | nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        assert_eq!(left, Err(Errno::ECHILD), "the child was reaped");
        tx.send(()).expect("thread");
        other.join().expect("join").expect("recv");
    }

    #[test]
    fn descriptors_are_marked_one_by_one_where_close_range_fails() {
        let fd = nix::fcntl::open("/dev/null", OFlag::O_RDONLY, Mode::empty()).expect("open");
        let flags = |fd: &OwnedFd| nix::fcntl::fcntl(fd, nix::fcntl::F_GETFD);
        assert_eq!(flags(&fd).expect("F_GETFD") & libc::FD_CLOEXEC, 0);
        cloexec_each_from(fd.as_raw_fd() as u32).expect("fallback");
        assert_eq!(
            flags(&fd).expect("F_GETFD") & libc::FD_CLOEXEC,
            libc::FD_CLOEXEC
        );
    }
}
