//! A process's stdin: containerd's stdin fifo copied to the process by a thread, which
//! CloseIO can end.
//!
//! The fifo's writer is the client (containerd, ctr, dockerd through containerd), which
//! may go away and come back (a containerd or dockerd restart, Docker's live-restore): its
//! writer closing is not the end of the input. The shim opens the fifo for reading and
//! writing, so that the fifo always has a writer and the copy never reads end-of-file;
//! input written after the client's return goes through. containerd's runc shim does the
//! same: it opens the stdin fifo `O_WRONLY` itself (process/init.go and exec.go,
//! `openStdin`) besides the reader of its copy, and only CloseIO closes that writer.
//!
//! Only CloseIO (or the task's end) ends the input:
//! - To a pipe (no terminal): ending the copy closes the pipe's only write end, so the
//!   process reads end-of-file. What the fifo holds when CloseIO comes is forwarded first:
//!   clients write their last input and call CloseIO right after.
//! - To a pty master (terminal): the master stays open; CloseIO sends the terminal's
//!   end-of-file character (^D). containerd's runc shim closes the master once its copy
//!   ends, which hangs up the terminal (SIGHUP) and loses what the process writes after;
//!   ^D ends the input and keeps the output.
//!
//! The copy also ends when nobody is left on the process's side (no reader of the pipe,
//! the pty's slave closed), and when the [`Stdin`] is dropped (the task's end): it never
//! waits on a dead peer. CloseIO before the copy exists (an exec not started yet) is
//! remembered by the caller, which then gives the process an already closed stdin.

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
    /// Dropped (or written) to wake the thread: by CloseIO, or with the [`Stdin`].
    wake: Mutex<Option<OwnedFd>>,
    console: Option<Arc<File>>,
}

/// Opens a stdin fifo for reading, and for writing, so that the fifo never reports
/// end-of-file when the client's writer closes (module doc); non-blocking: the copy polls.
/// `None` for no stdin.
pub fn open_fifo(path: &str) -> Result<Option<File>> {
    let path = path.strip_prefix("fifo://").unwrap_or(path);
    if path.is_empty() {
        return Ok(None);
    }
    File::options()
        .read(true)
        .write(true)
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

/// Forwards what the fifo holds now (it is non-blocking: an empty fifo ends the loop; it
/// never reads end-of-file, the shim being a writer).
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
            // CloseIO or the task's end: what the client wrote before is still forwarded.
            drain(&mut fifo, sink, &mut buf);
            return;
        }
        if sink_ev.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
            return;
        }
        if fifo_ev.contains(PollFlags::POLLIN) {
            match fifo.read(&mut buf) {
                // Not while the shim holds its writer; if it came, polling again would spin.
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
            // No hang-up while the shim holds its writer (a client's writer closing is
            // not one); anything else here would make the poll spin.
            log::warn!("stdin copy: the fifo reports {fifo_ev:?}");
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

    /// Reads what `r` gets within `wait`: None for end-of-file, else the bytes (maybe none).
    fn read_within(r: &File, wait: Duration) -> Option<Vec<u8>> {
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(wait.as_millis() as i32).unwrap();
        if poll(&mut fds, ms).unwrap() == 0 {
            return Some(vec![]);
        }
        let mut buf = vec![0u8; 4096];
        let n = (&*r).read(&mut buf).unwrap();
        if n == 0 {
            return None;
        }
        buf.truncate(n);
        Some(buf)
    }

    #[test]
    fn the_fifo_writer_closing_is_not_the_end_of_the_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_fifo(&format!("fifo://{}", path.display()))
            .unwrap()
            .unwrap();
        let (mut r, w) = pipe();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        // The client writes and goes away (a daemon restart)...
        let mut writer = File::options().write(true).open(&path).unwrap();
        writer.write_all(b"a\n").unwrap();
        drop(writer);
        let mut got = vec![0u8; 2];
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, b"a\n");
        // ...the process sees no end-of-file while it is away...
        assert_eq!(read_within(&r, Duration::from_millis(200)), Some(vec![]));
        assert!(lock(&s.state).running);
        // ...and gets what it writes once it is back.
        let mut writer = File::options().write(true).open(&path).unwrap();
        writer.write_all(b"b\n").unwrap();
        drop(writer);
        r.read_exact(&mut got).unwrap();
        assert_eq!(got, b"b\n");
        // CloseIO still ends it, the client's writer gone or not.
        s.close();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        wait_stopped(&s);
    }

    #[test]
    fn dropping_the_handle_ends_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_fifo(path.to_str().unwrap()).unwrap().unwrap();
        let (r, w) = pipe();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        let state = s.state.clone();
        drop(s);
        assert_eq!(read_within(&r, Duration::from_secs(5)), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&state).running {
            assert!(Instant::now() < deadline, "stdin copy did not end");
            thread::sleep(Duration::from_millis(5));
        }
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
