//! A process's stdin: containerd's stdin fifo copied to the process by the shim's copy
//! thread (copier.rs), which CloseIO can end.
//!
//! The fifo's writer is the client (containerd, ctr, dockerd through containerd), which
//! may go away and come back (a containerd or dockerd restart, Docker's live-restore): its
//! writer closing is not the end of the input. The shim opens the fifo for reading and
//! writing, so that the fifo always has a writer and the copy never reads end-of-file;
//! input written after the client's return goes through. containerd's runc shim does the
//! same: it opens the stdin fifo `O_WRONLY` itself (process/init.go and exec.go,
//! `openStdin`) besides the reader of its copy, and only CloseIO closes that writer.
//!
//! The copy reads the fifo only while nothing it read waits for the process: a process
//! that does not read its stdin fills the pipe (or the terminal), then the fifo, and the
//! client's writes block; nothing is dropped.
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
//! the pty's slave closed), and when the [`Stdin`] is dropped (the task's end), with what
//! the process takes at once: it never waits on a dead peer. CloseIO before the copy
//! exists (an exec not started yet) is remembered by the caller, which then gives the
//! process an already closed stdin.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::copier::{run_job, set_nonblocking, write_some, Job};
use crate::error::{Result, ShimError};

/// The terminal's default VEOF character.
const EOF_CHAR: u8 = 0x04;

/// Where the copied input goes.
pub enum Sink {
    /// The write end of the process's stdin pipe (the shim's only copy of it).
    Pipe(File),
    /// The pty master, shared with the output copy.
    Console(Arc<File>),
}

impl Sink {
    fn file(&self) -> &File {
        match self {
            Sink::Pipe(p) => p,
            Sink::Console(m) => m,
        }
    }
}

#[derive(Default)]
struct State {
    /// The copy still runs.
    running: bool,
    /// CloseIO was called.
    closed: bool,
}

/// The handle CloseIO uses.
pub struct Stdin {
    state: Arc<Mutex<State>>,
    /// Written by CloseIO; dropped with the [`Stdin`] (the task's end): the copy polls
    /// the other end.
    wake: OwnedFd,
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
    /// Starts copying `fifo` to `sink` (made non-blocking: the copy thread never waits
    /// on it).
    pub fn start(fifo: File, sink: Sink) -> Result<Stdin> {
        set_nonblocking(sink.file().as_fd())?;
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| ShimError::other(format!("pipe: {e}")))?;
        let state = Arc::new(Mutex::new(State {
            running: true,
            closed: false,
        }));
        let console = match &sink {
            Sink::Console(m) => Some(m.clone()),
            Sink::Pipe(_) => None,
        };
        run_job(Box::new(Copy {
            fifo,
            sink,
            wake: wake_r,
            state: state.clone(),
            pending: Vec::new(),
            end: End::No,
        }))?;
        Ok(Stdin {
            state,
            wake: wake_w,
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
            // The copy sees the byte and finishes the job. A full pipe is a wake-up
            // already pending.
            drop(st);
            let _ = nix::unistd::write(&self.wake, &[1]);
            return;
        }
        drop(st);
        if let Some(m) = &self.console {
            send_eof(m);
        }
    }
}

/// Writes ^D to the master if it can be written at once.
fn send_eof(master: &File) {
    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLOUT)];
    if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1)) {
        return;
    }
    let mut m = master;
    if let Err(e) = m.write_all(&[EOF_CHAR]) {
        log::debug!("stdin: sending EOF to the terminal: {e}");
    }
}

/// How far a copy is from its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Copying.
    No,
    /// CloseIO: forwarding what the fifo holds (and then ^D to a terminal), waiting for
    /// room as long as the process is there.
    Closing,
    /// The ^D is pending: over once it is written.
    EofSent,
}

/// The copy of one process's stdin (module doc), run by the copy thread.
struct Copy {
    fifo: File,
    sink: Sink,
    wake: OwnedFd,
    state: Arc<Mutex<State>>,
    /// Read from the fifo, not yet taken by the process: the fifo is not read meanwhile.
    pending: Vec<u8>,
    end: End,
}

impl Copy {
    /// Moves what is pending, then (`read`) what the fifo holds, to the sink until the
    /// fifo is empty (true) or the sink is full (false); an error once the process's side
    /// is gone.
    fn pump(&mut self, read: bool, buf: &mut [u8]) -> std::io::Result<bool> {
        loop {
            if !self.pending.is_empty() {
                let n = write_some(self.sink.file(), &self.pending)?;
                self.pending.drain(..n);
                if !self.pending.is_empty() {
                    return Ok(false);
                }
            }
            if !read {
                return Ok(true);
            }
            match self.fifo.read(buf) {
                // Not while the shim holds its writer.
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the [`Stdin`] was dropped (its end of the wake pipe closed); takes
    /// CloseIO's byte.
    fn woken(&mut self, revents: PollFlags) -> bool {
        let mut b = [0u8; 8];
        while matches!(nix::unistd::read(&self.wake, &mut b), Ok(n) if n > 0) {}
        if self.end == End::No && lock(&self.state).closed {
            self.end = End::Closing;
        }
        revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)
    }

    /// The copy is over: whoever sees `closed` with the other side settled sends ^D,
    /// here or [`Stdin::close`] once `running` is false.
    fn finish(&self) -> bool {
        let eof = {
            let mut s = lock(&self.state);
            s.running = false;
            s.closed && self.end != End::EofSent
        };
        if let (true, Sink::Console(m)) = (eof, &self.sink) {
            send_eof(m);
        }
        false
    }
}

impl Job for Copy {
    /// The wake pipe, the sink (for room when something is pending, else only for its
    /// end: poll reports POLLERR for a pipe without reader, POLLHUP for a pty whose slave
    /// is closed), the fifo while nothing is pending.
    fn interest<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> Option<Instant> {
        let sink_events = if self.pending.is_empty() {
            PollFlags::empty()
        } else {
            PollFlags::POLLOUT
        };
        let fifo_events = if self.pending.is_empty() {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        let sink: BorrowedFd<'a> = self.sink.file().as_fd();
        fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
        fds.push(PollFd::new(sink, sink_events));
        fds.push(PollFd::new(self.fifo.as_fd(), fifo_events));
        None
    }

    fn step(&mut self, revents: &[PollFlags], buf: &mut [u8]) -> bool {
        let ev = |i: usize| revents.get(i).copied().unwrap_or(PollFlags::empty());
        let (wake, sink, fifo) = (ev(0), ev(1), ev(2));
        let dropped = !wake.is_empty() && self.woken(wake);
        if sink.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
            return self.finish();
        }
        if fifo.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            && !fifo.contains(PollFlags::POLLIN)
        {
            // No hang-up while the shim holds its writer (a client's writer closing is
            // not one); anything else here would make the poll spin.
            log::warn!("stdin copy: the fifo reports {fifo:?}");
            return self.finish();
        }
        // After the ^D nothing more is read.
        let emptied = match self.pump(self.end != End::EofSent, buf) {
            Ok(emptied) => emptied,
            Err(e) => {
                if e.kind() != ErrorKind::BrokenPipe {
                    log::debug!("stdin copy: {e}");
                }
                return self.finish();
            }
        };
        if dropped {
            // The task's end: what the process took at once is all it gets.
            return self.finish();
        }
        if !emptied {
            // The process has not taken it all: wait for room.
            return true;
        }
        match (self.end, &self.sink) {
            (End::No, _) => true,
            (End::Closing, Sink::Pipe(_)) | (End::EofSent, _) => self.finish(),
            (End::Closing, Sink::Console(_)) => {
                // The input is all in: ^D, once the terminal has room for it.
                self.end = End::EofSent;
                self.pending.push(EOF_CHAR);
                match self.pump(false, buf) {
                    Ok(false) => true,
                    Ok(true) | Err(_) => self.finish(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    use crate::io::testing::{mkfifo, pipe_files as pipe};
    use runtime_core::deadline::Deadline;
    use std::time::Duration;

    /// A stdin fifo `name` in `dir`, and the shim's end of it.
    fn stdin_fifo(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, File) {
        let path = dir.join(name);
        mkfifo(&path);
        let fifo = open_fifo(path.to_str().unwrap()).unwrap().unwrap();
        (path, fifo)
    }

    fn wait_stopped(s: &Stdin) {
        let deadline = Deadline::after(Duration::from_secs(5));
        while lock(&s.state).running {
            assert!(!deadline.expired(), "stdin copy did not end");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn close_gives_the_process_eof_while_the_writer_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (path, fifo) = stdin_fifo(dir.path(), "stdin");
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
        let (path, fifo) = stdin_fifo(dir.path(), "stdin");
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
        if Deadline::after(wait).poll(&mut fds).unwrap() == 0 {
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

    /// A process that does not read its stdin holds the client's writes back (its pipe,
    /// then the fifo, fill up) and then gets all of them, in order: nothing is dropped,
    /// and the copy thread goes on serving other copies meanwhile.
    #[test]
    fn a_full_pipe_holds_the_input_back_without_dropping_any() {
        let dir = tempfile::tempdir().unwrap();
        let (path, fifo) = stdin_fifo(dir.path(), "stdin");
        let (mut r, w) = pipe();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        // Far more than the pipe and the fifo hold together.
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let d = data.clone();
        let p = path.clone();
        let writer = thread::spawn(move || {
            let mut w = File::options().write(true).open(&p).unwrap();
            w.write_all(&d).unwrap();
        });
        thread::sleep(Duration::from_millis(300));
        assert!(!writer.is_finished(), "the input was not held back");
        // Another process's copy goes through meanwhile.
        let (other, other_fifo) = stdin_fifo(dir.path(), "other");
        let (mut r2, w2) = pipe();
        let s2 = Stdin::start(other_fifo, Sink::Pipe(w2)).unwrap();
        File::options()
            .write(true)
            .open(&other)
            .unwrap()
            .write_all(b"hi")
            .unwrap();
        let mut got2 = [0u8; 2];
        r2.read_exact(&mut got2).unwrap();
        assert_eq!(&got2, b"hi");
        drop(s2);
        let mut got = vec![0u8; data.len()];
        r.read_exact(&mut got).unwrap();
        writer.join().unwrap();
        assert!(got == data, "the input came through altered");
        s.close();
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn dropping_the_handle_ends_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let (_path, fifo) = stdin_fifo(dir.path(), "stdin");
        let (r, w) = pipe();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        let state = s.state.clone();
        drop(s);
        assert_eq!(read_within(&r, Duration::from_secs(5)), None);
        let deadline = Deadline::after(Duration::from_secs(5));
        while lock(&state).running {
            assert!(!deadline.expired(), "stdin copy did not end");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn close_on_a_terminal_sends_eof_and_keeps_the_master() {
        let dir = tempfile::tempdir().unwrap();
        let (path, fifo) = stdin_fifo(dir.path(), "stdin");
        let _writer = File::options().write(true).open(&path).unwrap();
        let pty = runtime_core::os::open_pty().unwrap();
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
        let (path, fifo) = stdin_fifo(dir.path(), "stdin");
        let _writer = File::options().write(true).open(&path).unwrap();
        let (r, w) = pipe();
        let s = Stdin::start(fifo, Sink::Pipe(w)).unwrap();
        drop(r);
        wait_stopped(&s);
        assert!(open_fifo("").unwrap().is_none());
    }
}
