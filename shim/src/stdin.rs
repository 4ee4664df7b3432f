//! A process's stdin: containerd's stdin fifo copied to the process by a thread, which
//! CloseIO can end.
//!
//! - To a pipe (no terminal): ending the copy closes the pipe's only write end, so the
//!   process reads end-of-file. What the fifo holds when CloseIO comes is forwarded first:
//!   clients write their last input and call CloseIO right after.
//! - To a pty master (terminal): the master stays open (closing it would hang up the
//!   terminal); CloseIO sends the terminal's end-of-file character (^D), as containerd's
//!   runc shim does.
//!
//! The copy also ends when the fifo's writer closes it, or when nobody is left on the
//! process's side (no reader of the pipe, the pty's slave closed): it never waits on a
//! dead peer. CloseIO before the copy exists (an exec not started yet) is remembered by
//! the caller, which then gives the process an already closed stdin.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use std::thread;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Result, ShimError};

/// The terminal's default VEOF character.
const EOF_CHAR: u8 = 0x04;
const BUF_SIZE: usize = 32 * 1024;
const STACK: usize = 64 * 1024;

/// Where the copied input goes.
pub enum Sink {
    /// The write end of the process's stdin pipe (the shim's only copy of it).
    Pipe(File),
    /// The pty master, shared with the output copy.
    Console(Arc<File>),
}

#[derive(Default)]
struct State {
    /// The copy thread still runs.
    running: bool,
    /// CloseIO was called.
    closed: bool,
}

/// The handle CloseIO uses.
pub struct Stdin {
    state: Arc<Mutex<State>>,
    /// Dropped (or written) to wake the thread.
    wake: Mutex<Option<OwnedFd>>,
    console: Option<Arc<File>>,
}

/// Opens a stdin fifo for reading (non-blocking: its writer may come later); `None` for
/// no stdin.
pub fn open_fifo(path: &str) -> Result<Option<File>> {
    let path = path.strip_prefix("fifo://").unwrap_or(path);
    if path.is_empty() {
        return Ok(None);
    }
    File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map(Some)
        .map_err(|e| ShimError::other(format!("opening stdin {path}: {e}")))
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stdin {
    /// Starts copying `fifo` to `sink`.
    pub fn start(fifo: File, sink: Sink) -> Result<Stdin> {
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| ShimError::other(format!("pipe: {e}")))?;
        let state = Arc::new(Mutex::new(State {
            running: true,
            closed: false,
        }));
        let console = match &sink {
            Sink::Console(m) => Some(m.clone()),
            Sink::Pipe(_) => None,
        };
        let st = state.clone();
        thread::Builder::new()
            .name("io-stdin".into())
            .stack_size(STACK)
            .spawn(move || {
                copy(fifo, &sink, wake_r);
                // Whoever sees `closed` with the other side settled sends ^D: here, or
                // close() once `running` is false.
                let eof = {
                    let mut s = lock(&st);
                    s.running = false;
                    s.closed
                };
                if let (true, Sink::Console(m)) = (eof, &sink) {
                    send_eof(m, true);
                }
            })
            .map_err(|e| ShimError::other(format!("starting the stdin copy thread: {e}")))?;
        Ok(Stdin {
            state,
            wake: Mutex::new(Some(wake_w)),
            console,
        })
    }

    /// CloseIO: ends the copy; the process reads end-of-file (^D on a terminal). Twice is
    /// the same as once.
    pub fn close(&self) {
        let mut st = lock(&self.state);
        if st.closed {
            return;
        }
        st.closed = true;
        if st.running {
            // The thread sees the wake pipe close and finishes the job.
            drop(st);
            self.wake.lock().unwrap_or_else(|p| p.into_inner()).take();
            return;
        }
        drop(st);
        if let Some(m) = &self.console {
            send_eof(m, false);
        }
    }
}

/// Writes ^D to the master; with `block` false only if it can be written at once.
fn send_eof(master: &File, block: bool) {
    if !block {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLOUT)];
        if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1)) {
            return;
        }
    }
    let mut m = master;
    if let Err(e) = m.write_all(&[EOF_CHAR]) {
        log::debug!("stdin: sending EOF to the terminal: {e}");
    }
}

fn write_sink(sink: &Sink, data: &[u8]) -> std::io::Result<()> {
    match sink {
        Sink::Pipe(p) => {
            let mut p = p;
            p.write_all(data)
        }
        Sink::Console(m) => {
            let mut m: &File = m;
            m.write_all(data)
        }
    }
}

/// Forwards what the fifo holds now (it is non-blocking: an empty fifo ends the loop).
fn drain(fifo: &mut File, sink: &Sink, buf: &mut [u8]) {
    loop {
        match fifo.read(buf) {
            Ok(0) => return,
            Ok(n) => {
                if write_sink(sink, &buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn copy(mut fifo: File, sink: &Sink, wake: OwnedFd) {
    let mut buf = vec![0u8; BUF_SIZE];
    let sink_fd = match sink {
        Sink::Pipe(p) => p.as_fd(),
        Sink::Console(m) => m.as_fd(),
    };
    loop {
        let (fifo_ev, sink_ev, wake_ev) = {
            // No events asked on the sink: poll still reports POLLERR (pipe without
            // reader) or POLLHUP (pty whose slave is closed).
            let mut fds = [
                PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                PollFd::new(sink_fd, PollFlags::empty()),
                PollFd::new(wake.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("stdin copy: poll: {e}");
                    return;
                }
                Ok(_) => {}
            }
            let ev = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
            (ev(0), ev(1), ev(2))
        };
        if !wake_ev.is_empty() {
            // CloseIO: what the client wrote before it asked is still forwarded.
            drain(&mut fifo, sink, &mut buf);
            return;
        }
        if sink_ev.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
            return;
        }
        if fifo_ev.contains(PollFlags::POLLIN) {
            match fifo.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if write_sink(sink, &buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
                Err(e) => {
                    log::warn!("stdin copy: reading the fifo: {e}");
                    return;
                }
            }
        } else if fifo_ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
        {
            // The writer came and went and nothing is left to read.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }

    fn pipe() -> (File, File) {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        (r.into(), w.into())
    }

    fn wait_stopped(s: &Stdin) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&s.state).running {
            assert!(Instant::now() < deadline, "stdin copy did not end");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn close_gives_the_process_eof_while_the_writer_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_fifo(path.to_str().unwrap()).unwrap().unwrap();
        let mut writer = File::options().write(true).open(&path).unwrap();
        let (mut r, w) = pipe();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        writer.write_all(b"before close\n").unwrap();
        // Let the copy take it before CloseIO.
        let mut got = vec![0u8; 13];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, b"before close\n");
        s.close();
        s.close();
        // End-of-file although containerd's writer is still open.
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        wait_stopped(&s);
    }

    #[test]
    fn input_still_in_the_fifo_at_close_is_forwarded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_fifo(path.to_str().unwrap()).unwrap().unwrap();
        let mut writer = File::options().write(true).open(&path).unwrap();
        let (mut r, w) = pipe();
        // Written and closed at once, as ctr does: the copy may not have read any of it.
        writer.write_all(b"last words\n").unwrap();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        s.close();
        drop(writer);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "last words\n");
    }

    #[test]
    fn the_fifo_writer_closing_ends_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_fifo(&format!("fifo://{}", path.display()))
            .unwrap()
            .unwrap();
        let (mut r, w) = pipe();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        let mut writer = File::options().write(true).open(&path).unwrap();
        writer.write_all(b"a\nb\n").unwrap();
        drop(writer);
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "a\nb\n");
        wait_stopped(&s);
        // CloseIO after the end: nothing to do, no hang.
        s.close();
    }

    #[test]
    fn close_on_a_terminal_sends_eof_and_keeps_the_master() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_fifo(path.to_str().unwrap()).unwrap().unwrap();
        let _writer = File::options().write(true).open(&path).unwrap();
        let pty = runtime_core::tty::open_pty().unwrap();
        let master = Arc::new(File::from(pty.master));
        let s = Stdin::start(fifo, Sink::Console(master.clone())).unwrap();
        s.close();
        wait_stopped(&s);
        // In canonical mode ^D at the start of a line is a read of 0 bytes: end-of-file.
        let mut slave = File::from(pty.slave);
        let mut buf = [0u8; 16];
        assert_eq!(slave.read(&mut buf).unwrap(), 0);
        // The master still works.
        (&*master).write_all(b"x\n").unwrap();
        let n = slave.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"x\n");
    }

    #[test]
    fn a_closed_process_side_ends_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_fifo(path.to_str().unwrap()).unwrap().unwrap();
        let _writer = File::options().write(true).open(&path).unwrap();
        let (r, w) = pipe();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        drop(r);
        wait_stopped(&s);
        assert!(open_fifo("").unwrap().is_none());
    }
}
