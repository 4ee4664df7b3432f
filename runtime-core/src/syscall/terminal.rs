//! Terminal ioctls: controlling terminal and window size.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use super::{Result, SyscallError};

/// A terminal's size in characters.
pub type Winsize = libc::winsize;

fn err(call: &'static str) -> impl FnOnce(Errno) -> SyscallError {
    move |errno| SyscallError {
        call,
        target: "terminal".into(),
        errno,
    }
}

/// Makes `tty` the controlling terminal of the calling process, a session leader.
pub fn set_controlling(tty: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: don't steal), no pointer.
    let rc = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(rc).map(drop).map_err(err("ioctl(TIOCSCTTY)"))
}

/// The window size of a terminal.
pub fn window_size(tty: BorrowedFd<'_>) -> Result<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which is valid and writable.
    let rc = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(rc)
        .map(|_| ws)
        .map_err(err("ioctl(TIOCGWINSZ)"))
}

/// Sets the window size of a terminal (its foreground process group gets SIGWINCH).
pub fn set_window_size(tty: BorrowedFd<'_>, ws: &Winsize) -> Result<()> {
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, which is valid for the call.
    let rc = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, ws) };
    Errno::result(rc)
        .map(drop)
        .map_err(err("ioctl(TIOCSWINSZ)"))
}
