//! A [`Syscall`] that records calls instead of making them, for unit tests without root.
//!
//! Paths of the form `/proc/self/fd/N`, and file descriptors, are recorded as the path
//! they resolve to at the time of the call, so that tests can assert on real paths.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::{Result, SchedAttr, Syscall, SyscallError};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount2(PathBuf, MntFlags),
    PivotRoot(PathBuf, PathBuf),
    Chdir(PathBuf),
    Chroot(PathBuf),
    Unshare(CloneFlags),
    Setns(i32, CloneFlags),
    Sethostname(String),
    Setdomainname(String),
    Mknod(PathBuf, SFlag, Mode, u64),
    Chown(PathBuf, Option<Uid>, Option<Gid>),
    Symlink(PathBuf, PathBuf),
    /// fchdir, with the directory the descriptor refers to.
    Fchdir(PathBuf),
    /// mknodat, with the directory joined to the name.
    Mknodat(PathBuf, SFlag, Mode, u64),
    /// fchownat, with the directory joined to the name.
    Fchownat(PathBuf, Option<Uid>, Option<Gid>),
    /// symlinkat: the link's target, then the link (directory joined to the name).
    Symlinkat(PathBuf, PathBuf),
    /// unlinkat, with the directory joined to the name.
    Unlinkat(PathBuf),
    /// umask with the new mask.
    Umask(Mode),
    /// mount_setattr on the mount the descriptor refers to.
    MountSetattr {
        target: PathBuf,
        recursive: bool,
        set: u64,
        clear: u64,
    },
    /// statvfs for the mount flags of a path.
    MountFlags(PathBuf),
    /// sched_setattr with the attributes asked for (`size` left 0).
    SchedSetattr(SchedAttr),
    /// ioprio_set of the calling process with the value.
    IoprioSet(i64),
    /// personality with the persona.
    Personality(libc::c_ulong),
    /// open_tree(OPEN_TREE_CLONE) of a path, recursive or not.
    OpenTreeClone(PathBuf, bool),
    /// mount_setattr(MOUNT_ATTR_IDMAP) on a detached tree, recursive or not.
    MountSetattrIdmap(bool),
    /// move_mount of a detached tree onto the path the target descriptor refers to.
    MoveMount(PathBuf),
    /// A new user namespace with these uid_map and gid_map texts.
    NewUserNamespace(String, String),
    /// setrlimit: the RLIMIT_* number, soft and hard.
    Setrlimit(u32, u64, u64),
    /// setgroups with the groups.
    Setgroups(Vec<Gid>),
    /// setresgid with the one gid.
    Setresgid(Gid),
    /// setresuid with the one uid.
    Setresuid(Uid),
    /// prctl(PR_SET_KEEPCAPS) on or off.
    Keepcaps(bool),
    /// prctl(PR_SET_NO_NEW_PRIVS).
    NoNewPrivs,
    /// dup2 of the file the descriptor refers to onto 0, 1 or 2.
    Dup2(PathBuf, i32),
    /// prctl(PR_CAPBSET_DROP) of a capability.
    DropBounding(caps::Capability),
    /// capset of one set (by its name, as `Inheritable`), the capabilities sorted.
    SetCapabilities(String, Vec<caps::Capability>),
    /// prctl(PR_CAP_AMBIENT_CLEAR_ALL).
    ClearAmbient,
    /// prctl(PR_CAP_AMBIENT_RAISE) of a capability.
    RaiseAmbient(caps::Capability),
    /// seccomp(SECCOMP_SET_MODE_FILTER) of a program of this many instructions.
    SeccompLoad(usize),
    /// close_range(CLOSE_RANGE_CLOEXEC) from this descriptor up.
    CloexecFrom(u32),
}

impl Call {
    fn name(&self) -> &'static str {
        match self {
            Call::Mount { .. } => "mount",
            Call::Umount2(..) => "umount2",
            Call::PivotRoot(..) => "pivot_root",
            Call::Chdir(_) => "chdir",
            Call::Chroot(_) => "chroot",
            Call::Unshare(_) => "unshare",
            Call::Setns(..) => "setns",
            Call::Sethostname(_) => "sethostname",
            Call::Setdomainname(_) => "setdomainname",
            Call::Mknod(..) => "mknod",
            Call::Chown(..) => "lchown",
            Call::Symlink(..) => "symlink",
            Call::Fchdir(_) => "fchdir",
            Call::Mknodat(..) => "mknodat",
            Call::Fchownat(..) => "fchownat",
            Call::Symlinkat(..) => "symlinkat",
            Call::Unlinkat(_) => "unlinkat",
            Call::Umask(_) => "umask",
            Call::MountSetattr { .. } => "mount_setattr",
            Call::MountFlags(_) => "statvfs",
            Call::SchedSetattr(_) => "sched_setattr",
            Call::IoprioSet(_) => "ioprio_set",
            Call::Personality(_) => "personality",
            Call::OpenTreeClone(..) => "open_tree",
            Call::MountSetattrIdmap(_) => "mount_setattr",
            Call::MoveMount(_) => "move_mount",
            Call::NewUserNamespace(..) => "unshare",
            Call::Setrlimit(..) => "setrlimit",
            Call::Setgroups(_) => "setgroups",
            Call::Setresgid(_) => "setresgid",
            Call::Setresuid(_) => "setresuid",
            Call::Keepcaps(_) | Call::NoNewPrivs | Call::DropBounding(_) => "prctl",
            Call::ClearAmbient | Call::RaiseAmbient(_) => "prctl",
            Call::Dup2(..) => "dup2",
            Call::SetCapabilities(..) => "capset",
            Call::SeccompLoad(_) => "seccomp",
            Call::CloexecFrom(_) => "close_range",
        }
    }
}

type Matcher = Box<dyn Fn(&Call) -> bool>;

/// Records every call in order; every call succeeds unless a failure was injected.
#[derive(Default)]
pub struct RecordingSyscall {
    calls: RefCell<Vec<Call>>,
    failures: RefCell<Vec<(Matcher, Errno)>>,
    mount_flags: Cell<Option<MsFlags>>,
    mountinfo: RefCell<String>,
    mask: Cell<Option<Mode>>,
    existing: RefCell<Vec<PathBuf>>,
}

impl std::fmt::Debug for RecordingSyscall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingSyscall")
            .field("calls", &self.calls.borrow())
            .field("failures", &self.failures.borrow().len())
            .finish()
    }
}

impl RecordingSyscall {
    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// Only the mount calls made so far, in order.
    pub fn mounts(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| matches!(c, Call::Mount { .. }))
            .collect()
    }

    /// Makes every later call that `when` matches fail with `errno` (it is still recorded).
    pub fn fail_when(&self, when: impl Fn(&Call) -> bool + 'static, errno: Errno) {
        self.failures.borrow_mut().push((Box::new(when), errno));
    }

    /// What [`Syscall::mount_flags`] answers (default: no flags).
    pub fn set_mount_flags(&self, flags: MsFlags) {
        self.mount_flags.set(Some(flags));
    }

    /// What [`Syscall::mountinfo`] answers (default: empty).
    pub fn set_mountinfo(&self, text: &str) {
        *self.mountinfo.borrow_mut() = text.to_string();
    }

    /// Makes [`Syscall::exists`] answer true for `path` (default: nothing exists).
    pub fn set_exists(&self, path: &Path) {
        self.existing.borrow_mut().push(path.to_path_buf());
    }

    fn push(&self, c: Call) -> Result<()> {
        let failed = self
            .failures
            .borrow()
            .iter()
            .find(|(when, _)| when(&c))
            .map(|(_, errno)| *errno);
        let name = c.name();
        let target = format!("{c:?}");
        self.calls.borrow_mut().push(c);
        match failed {
            Some(errno) => Err(SyscallError {
                call: name,
                target,
                errno,
            }),
            None => Ok(()),
        }
    }
}

/// What `path` names: a `/proc/self/fd/N` path is replaced by the file it refers to.
fn real(path: &Path) -> PathBuf {
    if path.starts_with("/proc/self/fd") {
        if let Ok(p) = std::fs::read_link(path) {
            return p;
        }
    }
    path.to_path_buf()
}

/// The path of the file that `fd` refers to.
fn fd_real(fd: BorrowedFd<'_>) -> PathBuf {
    real(&super::fd_path(fd))
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        self.push(Call::Mount {
            source: source.map(real),
            target: real(target),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        self.push(Call::Umount2(real(target), flags))
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        self.push(Call::PivotRoot(
            new_root.to_path_buf(),
            put_old.to_path_buf(),
        ))
    }
    fn chdir(&self, path: &Path) -> Result<()> {
        self.push(Call::Chdir(path.to_path_buf()))
    }
    fn chroot(&self, path: &Path) -> Result<()> {
        self.push(Call::Chroot(path.to_path_buf()))
    }
    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        self.push(Call::Unshare(flags))
    }
    fn setns(&self, fd: BorrowedFd<'_>, kind: CloneFlags) -> Result<()> {
        self.push(Call::Setns(fd.as_raw_fd(), kind))
    }
    fn sethostname(&self, name: &str) -> Result<()> {
        self.push(Call::Sethostname(name.to_string()))
    }
    fn setdomainname(&self, name: &str) -> Result<()> {
        self.push(Call::Setdomainname(name.to_string()))
    }
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()> {
        self.push(Call::Mknod(path.to_path_buf(), kind, perm, dev))
    }
    fn chown(&self, path: &Path, uid: Option<Uid>, gid: Option<Gid>) -> Result<()> {
        self.push(Call::Chown(path.to_path_buf(), uid, gid))
    }
    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.push(Call::Symlink(target.to_path_buf(), link.to_path_buf()))
    }
    fn fchdir(&self, fd: BorrowedFd<'_>) -> Result<()> {
        self.push(Call::Fchdir(fd_real(fd)))
    }
    fn mknodat(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        kind: SFlag,
        perm: Mode,
        dev: u64,
    ) -> Result<()> {
        self.push(Call::Mknodat(fd_real(dir).join(name), kind, perm, dev))
    }
    fn fchownat(
        &self,
        dir: BorrowedFd<'_>,
        name: &Path,
        uid: Option<Uid>,
        gid: Option<Gid>,
    ) -> Result<()> {
        self.push(Call::Fchownat(fd_real(dir).join(name), uid, gid))
    }
    fn symlinkat(&self, target: &Path, dir: BorrowedFd<'_>, name: &Path) -> Result<()> {
        self.push(Call::Symlinkat(
            target.to_path_buf(),
            fd_real(dir).join(name),
        ))
    }
    fn unlinkat(&self, dir: BorrowedFd<'_>, name: &Path) -> Result<()> {
        self.push(Call::Unlinkat(fd_real(dir).join(name)))
    }
    fn umask(&self, mask: Mode) -> Mode {
        // umask cannot fail, so an injected failure only shows in the record.
        let _ = self.push(Call::Umask(mask));
        let old = self.mask.get().unwrap_or(Mode::from_bits_truncate(0o022));
        self.mask.set(Some(mask));
        old
    }
    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        recursive: bool,
        set: u64,
        clear: u64,
    ) -> Result<()> {
        self.push(Call::MountSetattr {
            target: fd_real(fd),
            recursive,
            set,
            clear,
        })
    }
    fn mount_flags(&self, path: &Path) -> Result<MsFlags> {
        self.push(Call::MountFlags(real(path)))?;
        Ok(self.mount_flags.get().unwrap_or(MsFlags::empty()))
    }
    fn mountinfo(&self) -> Result<String> {
        Ok(self.mountinfo.borrow().clone())
    }
    fn exists(&self, path: &Path) -> bool {
        self.existing.borrow().iter().any(|p| p == path)
    }
    fn sched_setattr(&self, attr: &SchedAttr) -> Result<()> {
        self.push(Call::SchedSetattr(*attr))
    }
    fn ioprio_set(&self, value: i64) -> Result<()> {
        self.push(Call::IoprioSet(value))
    }
    fn personality(&self, value: libc::c_ulong) -> Result<()> {
        self.push(Call::Personality(value))
    }
    fn open_tree_clone(&self, path: &Path, recursive: bool) -> Result<OwnedFd> {
        self.push(Call::OpenTreeClone(path.to_path_buf(), recursive))?;
        // Like a clone, of the path's kind (init creates the destination from it); a path
        // that does not exist gets /dev/null.
        let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
        Ok(nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty())
            .unwrap_or_else(|_| dev_null()))
    }
    fn mount_setattr_idmap(
        &self,
        _fd: BorrowedFd<'_>,
        recursive: bool,
        _userns: BorrowedFd<'_>,
    ) -> Result<()> {
        self.push(Call::MountSetattrIdmap(recursive))
    }
    fn move_mount(&self, _from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
        self.push(Call::MoveMount(fd_real(to)))
    }
    fn new_user_namespace(&self, uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
        self.push(Call::NewUserNamespace(uid_map.into(), gid_map.into()))?;
        Ok(dev_null())
    }
    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> Result<()> {
        self.push(Call::Setrlimit(resource, soft, hard))
    }
    fn setgroups(&self, groups: &[Gid]) -> Result<()> {
        self.push(Call::Setgroups(groups.to_vec()))
    }
    fn setresgid(&self, gid: Gid) -> Result<()> {
        self.push(Call::Setresgid(gid))
    }
    fn setresuid(&self, uid: Uid) -> Result<()> {
        self.push(Call::Setresuid(uid))
    }
    fn set_keepcaps(&self, keep: bool) -> Result<()> {
        self.push(Call::Keepcaps(keep))
    }
    fn set_no_new_privs(&self) -> Result<()> {
        self.push(Call::NoNewPrivs)
    }
    fn dup2(&self, fd: BorrowedFd<'_>, target: i32) -> Result<()> {
        self.push(Call::Dup2(fd_real(fd), target))
    }
    fn bounding_set(&self) -> Result<caps::CapsHashSet> {
        // A fully privileged process: every capability the crate knows is held.
        Ok(caps::all())
    }
    fn drop_bounding(&self, cap: caps::Capability) -> Result<()> {
        self.push(Call::DropBounding(cap))
    }
    fn set_capabilities(&self, set: caps::CapSet, value: &caps::CapsHashSet) -> Result<()> {
        let mut caps: Vec<caps::Capability> = value.iter().copied().collect();
        caps.sort_by_key(|c| c.index());
        self.push(Call::SetCapabilities(format!("{set:?}"), caps))
    }
    fn clear_ambient(&self) -> Result<()> {
        self.push(Call::ClearAmbient)
    }
    fn raise_ambient(&self, cap: caps::Capability) -> Result<()> {
        self.push(Call::RaiseAmbient(cap))
    }
    fn seccomp_load(&self, prog: &[libc::sock_filter], _flags: u32) -> Result<Option<OwnedFd>> {
        self.push(Call::SeccompLoad(prog.len()))?;
        Ok(None)
    }
    fn cloexec_from(&self, first: u32) -> Result<()> {
        self.push(Call::CloexecFrom(first))
    }
}

/// A descriptor standing in for one the kernel would have made.
fn dev_null() -> OwnedFd {
    std::fs::File::open("/dev/null")
        .expect("open /dev/null")
        .into()
}
