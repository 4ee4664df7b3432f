//! A [`Syscall`] that records calls instead of making them, for unit tests without root.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

use super::{Result, Syscall};

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
    Unshare(CloneFlags),
    Setns(i32, CloneFlags),
    Sethostname(String),
    Setdomainname(String),
    Mknod(PathBuf, SFlag, Mode, u64),
    Chown(PathBuf, Option<Uid>, Option<Gid>),
    Symlink(PathBuf, PathBuf),
}

/// Records every call in order; every call succeeds.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    calls: RefCell<Vec<Call>>,
}

impl RecordingSyscall {
    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    fn push(&self, c: Call) -> Result<()> {
        self.calls.borrow_mut().push(c);
        Ok(())
    }
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
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        })
    }
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        self.push(Call::Umount2(target.to_path_buf(), flags))
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        self.push(Call::PivotRoot(new_root.to_path_buf(), put_old.to_path_buf()))
    }
    fn chdir(&self, path: &Path) -> Result<()> {
        self.push(Call::Chdir(path.to_path_buf()))
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
}
