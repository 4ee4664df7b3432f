//! Descriptors that the kernel makes readable to notify: eventfd(2) and inotify(7).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use super::{err, Result};

/// A new eventfd(2) counter at 0, close-on-exec and non-blocking, e.g. for the kernel to
/// signal (cgroup v1's `cgroup.event_control`).
pub fn eventfd() -> Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers.
    let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    Errno::result(raw).map_err(err("eventfd", "EFD_CLOEXEC|EFD_NONBLOCK"))?;
    // SAFETY: a non-negative result is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A new inotify(7) instance, close-on-exec and non-blocking, watching `path` for the
/// IN_* events in `mask`: it turns readable when one happens.
pub fn inotify_watch(path: &Path, mask: u32) -> Result<OwnedFd> {
    // SAFETY: inotify_init1 takes no pointers.
    let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    Errno::result(raw).map_err(err("inotify_init1", "IN_CLOEXEC|IN_NONBLOCK"))?;
    // SAFETY: a non-negative result is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| err("inotify_add_watch", path.display())(Errno::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; the kernel only
    // reads it.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
    Errno::result(wd).map_err(err("inotify_add_watch", path.display()))?;
    Ok(fd)
}
