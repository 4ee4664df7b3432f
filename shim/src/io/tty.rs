//! Terminals: the pty master that runtime-core sends over the console socket when a process
//! has `terminal: true`, copied to containerd's stdout fifo by the shim's copy thread
//! (copier.rs; stdin is copied to it, see stdin.rs); ResizePty sets its window size.
//!
//! The output copy reads the master until every slave descriptor is closed (the read fails
//! with EIO), so that the exit of a process with a terminal is reported only after its
//! output went out, as for pipes. It writes into a pipe whose reader is the output copy
//! (output.rs) to the stdout fifo, which holds its own read end of the fifo: when
//! containerd's reader goes away (a daemon restart) the output waits in the fifo, then in
//! the pipe, then in the terminal (the master is read only while nothing is pending), and
//! the process's writes block until the client is back; nothing is dropped. Only when that
//! pipe's reader is gone (the task's end, the `Stop` of io/mod.rs) does this copy read and
//! drop the rest, so that it still reaches the terminal's end. The stdin copy (stdin.rs)
//! survives the client's writer closing the same way.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};
use runtime_core::os::terminal::{set_window_size, Winsize};

use super::copier::{run_job, set_nonblocking, write_some, Job};
use crate::error::{Result, ShimError};

/// How long to wait for the master once create or exec has returned (it was sent before).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A process's terminal, on the shim's side.
#[derive(Debug, Clone)]
pub struct Console {
    master: Arc<File>,
}

impl Console {
    /// Takes the master that the process sent over `socket` and starts copying its output
    /// to `out` (none: the output is read and dropped). Both are made non-blocking: the
    /// copy thread never waits on them.
    pub fn receive(socket: &UnixStream, out: Option<File>) -> Result<Console> {
        socket
            .set_read_timeout(Some(RECEIVE_TIMEOUT))
            .map_err(|e| ShimError::other(format!("console socket: {e}")))?;
        let master = runtime_core::os::receive_master(socket.as_fd())
            .map_err(|e| ShimError::other(format!("receiving the terminal: {e}")))?;
        set_nonblocking(master.as_fd())?;
        if let Some(o) = &out {
            set_nonblocking(o.as_fd())?;
        }
        let master = Arc::new(File::from(master));
        run_job(Box::new(Copy {
            master: master.clone(),
            out,
            pending: Vec::new(),
        }))?;
        Ok(Console { master })
    }

    /// The master, for the stdin copy.
    pub fn master(&self) -> Arc<File> {
        self.master.clone()
    }

    /// ResizePty.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let ws = Winsize {
            ws_row: clamp(height),
            ws_col: clamp(width),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        set_window_size(self.master.as_fd(), &ws)
            .map_err(|e| ShimError::other(format!("resizing the terminal: {e}")))
    }
}

/// The copy of the master to the output until the terminal is closed on the process's
/// side. Dropping it drops `out`: containerd's reader sees end-of-file.
struct Copy {
    master: Arc<File>,
    /// None once writing failed (the output copy ended: the task's end, or a failed sink).
    out: Option<File>,
    /// Read from the master, not yet written: the master is not read meanwhile.
    pending: Vec<u8>,
}

impl Job for Copy {
    /// The output for room while something is pending, else the master for input.
    fn interest<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> Option<Instant> {
        match &self.out {
            Some(o) if !self.pending.is_empty() => {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLOUT))
            }
            _ => fds.push(PollFd::new(self.master.as_fd(), PollFlags::POLLIN)),
        }
        None
    }

    fn step(&mut self, revents: &[PollFlags], buf: &mut [u8]) -> bool {
        if revents.first().is_none_or(|r| r.is_empty()) {
            return true;
        }
        if self.pending.is_empty() {
            match (&*self.master).read(buf) {
                Ok(0) => return false,
                Ok(n) if self.out.is_some() => self.pending.extend_from_slice(&buf[..n]),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                // EIO: no slave descriptor is left open: the normal end.
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return false,
                Err(e) => {
                    log::warn!("console copy: reading the terminal: {e}");
                    return false;
                }
            }
        }
        if let Some(o) = &self.out {
            match write_some(o, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) => {
                    log::warn!("console copy: the output ended ({e}); dropping further output");
                    self.out = None;
                    self.pending.clear();
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn output_resize_and_the_end_of_the_terminal() {
        let pty = runtime_core::os::open_pty().unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        runtime_core::os::send_master(theirs.as_fd(), pty.master.as_fd()).unwrap();
        drop(pty.master);
        let (mut r, w) = {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            (File::from(r), File::from(w))
        };
        let console = Console::receive(&ours, Some(w)).unwrap();
        console.resize(120, 40).unwrap();
        let ws = runtime_core::os::terminal::window_size(pty.slave.as_fd()).unwrap();
        assert_eq!((ws.ws_row, ws.ws_col), (40, 120));
        let mut slave = File::from(pty.slave);
        slave.write_all(b"hello").unwrap();
        // Closing the last slave descriptor ends the copy, which closes the output.
        drop(slave);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello");
        assert!(console.master().as_raw_fd() >= 0);
    }

    #[test]
    fn no_master_is_an_error_not_a_hang() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        assert!(Console::receive(&ours, None).is_err());
    }
}
