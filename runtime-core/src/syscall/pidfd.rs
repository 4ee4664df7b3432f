//! Process descriptors (pidfd_open(2)): a handle on one process that never names another,
//! even after its pid is reused; it turns readable when the process exits, without taking
//! its exit status from whoever waits for it.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::{err, Result};

/// A pidfd for process `pid`. Race-free only while `pid` cannot be reused: for a child of
/// the caller that has not been reaped (a zombie keeps its pid).
pub fn open(pid: Pid) -> Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes integers only.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = Errno::result(fd).map_err(err("pidfd_open", pid))?;
    // SAFETY: a non-negative result is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends `signal` to the process of `pidfd` (pidfd_send_signal(2)); a process that has
/// exited and been reaped is ESRCH, never another process.
pub fn send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> Result<()> {
    // SAFETY: the siginfo pointer is null (the kernel fills in one as kill(2) does); the
    // rest are integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(rc)
        .map(drop)
        .map_err(err("pidfd_send_signal", signal))
}
