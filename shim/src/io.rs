//! The container's stdio: pipes to the container, copied to and from containerd's fifos by
//! plain threads with blocking std I/O (no async runtime: a blocking FIFO read inside one
//! parks its worker threads forever).
//!
//! - stdout/stderr: the container writes to a pipe; a thread copies the pipe to the fifo.
//!   If the fifo's reader goes away the thread stops writing but keeps draining the pipe,
//!   so the container never gets SIGPIPE or blocks on a full pipe; it ends at the pipe's
//!   end-of-file (every writer gone). The shim publishes an exit only after these threads
//!   have drained what the process wrote ([`Drain::wait`]).
//! - stdin: a thread copies the fifo to a pipe. It ends when the fifo's writer closes it
//!   (the container then reads end-of-file) or when the container side is gone (every
//!   reader of the pipe closed): it polls both, so it never waits on a dead peer.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Result, ShimError};

/// How long opening an output fifo waits for containerd's reader to appear.
const FIFO_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Copy buffer size.
const BUF_SIZE: usize = 32 * 1024;
/// Stack of a copy thread: the buffer lives on the heap, the rest is small.
const COPY_STACK: usize = 64 * 1024;

/// The ends of the stdio pipes that the container's process gets.
#[derive(Debug)]
pub struct ContainerStdio {
    /// Becomes fd 0.
    pub stdin: OwnedFd,
    /// Becomes fd 1.
    pub stdout: OwnedFd,
    /// Becomes fd 2.
    pub stderr: OwnedFd,
}

/// Counts the output copy threads still running; waiting on it waits for the output of
/// the container to be completely forwarded.
#[derive(Debug, Default)]
pub struct Drain {
    running: Mutex<usize>,
    done: Condvar,
}

impl Drain {
    pub(crate) fn add(&self) {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    pub(crate) fn finish(&self) {
        let mut n = self.running.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.done.notify_all();
        }
    }

    /// Waits until every output copy thread has ended, at most `timeout`; true if they have.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut n = self.running.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = self
                .done
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Where the container's stdio goes, as containerd gives it (paths; empty: nowhere).
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    /// stdin fifo.
    pub stdin: String,
    /// stdout fifo.
    pub stdout: String,
    /// stderr fifo.
    pub stderr: String,
}

/// Opens the fifos, makes the pipes and starts the copy threads. `owner` (uid, gid) owns
/// the container's pipe ends (runc's `io_uid`/`io_gid`, for user namespaces).
pub fn setup(
    paths: &StdioPaths,
    owner: Option<(u32, u32)>,
) -> Result<(ContainerStdio, Arc<Drain>)> {
    let drain = Arc::new(Drain::default());
    let stdin = match open_source(&paths.stdin)? {
        None => null()?,
        Some(fifo) => {
            let (r, w) = pipe()?;
            spawn("stdin", move || copy_in(fifo, w.into()))?;
            r
        }
    };
    let stdout_sink = open_sink(&paths.stdout)?;
    let stderr_same = !paths.stderr.is_empty() && paths.stderr == paths.stdout;
    let stderr_sink = if stderr_same {
        None
    } else {
        open_sink(&paths.stderr)?
    };
    let stdout = output(stdout_sink, "stdout", &drain)?;
    let stderr = if stderr_same {
        stdout
            .try_clone()
            .map_err(|e| ShimError::other(format!("dup stdout: {e}")))?
    } else {
        output(stderr_sink, "stderr", &drain)?
    };
    let io = ContainerStdio {
        stdin,
        stdout,
        stderr,
    };
    if let Some((uid, gid)) = owner.filter(|o| *o != (0, 0)) {
        for fd in [&io.stdin, &io.stdout, &io.stderr] {
            nix::unistd::fchown(fd, Some(uid.into()), Some(gid.into()))
                .map_err(|e| ShimError::other(format!("chown stdio to {uid}:{gid}: {e}")))?;
        }
    }
    Ok((io, drain))
}

fn output(sink: Option<File>, name: &'static str, drain: &Arc<Drain>) -> Result<OwnedFd> {
    match sink {
        None => null(),
        Some(sink) => {
            let (r, w) = pipe()?;
            drain.add();
            let d = drain.clone();
            let started = spawn(name, move || {
                copy_out(r.into(), sink);
                d.finish();
            });
            if let Err(e) = started {
                drain.finish();
                return Err(e);
            }
            Ok(w)
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    thread::Builder::new()
        .name(format!("io-{name}"))
        .stack_size(COPY_STACK)
        .spawn(f)
        .map(drop)
        .map_err(|e| ShimError::other(format!("starting the {name} copy thread: {e}")))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| ShimError::other(format!("pipe: {e}")))
}

fn null() -> Result<OwnedFd> {
    File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| ShimError::other(format!("/dev/null: {e}")))
}

/// A stdio path as containerd gives it: a fifo path, or a `fifo://` / `file://` URI.
/// Other schemes (`binary://` log drivers) are not supported yet.
fn parse_uri(path: &str) -> Result<Option<(bool, &str)>> {
    if path.is_empty() {
        return Ok(None);
    }
    match path.split_once("://") {
        None => Ok(Some((false, path))),
        Some(("fifo", p)) => Ok(Some((false, p))),
        Some(("file", p)) => Ok(Some((true, p))),
        Some((scheme, _)) => Err(ShimError::unimplemented(format!(
            "stdio {path}: {scheme}:// is not supported yet"
        ))),
    }
}

/// Opens an output fifo for writing, waiting (bounded) for its reader.
fn open_sink(path: &str) -> Result<Option<File>> {
    let Some((is_file, path)) = parse_uri(path)? else {
        return Ok(None);
    };
    if is_file {
        return File::options()
            .append(true)
            .create(true)
            .open(path)
            .map(Some)
            .map_err(|e| ShimError::other(format!("opening {path}: {e}")));
    }
    let deadline = Instant::now() + FIFO_OPEN_TIMEOUT;
    let f = loop {
        // Non-blocking: a blocking open waits forever if no reader ever comes.
        match File::options()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(ShimError::other(format!("opening {path}: {e}"))),
        }
    };
    set_blocking(&f, path)?;
    Ok(Some(f))
}

/// Opens the stdin fifo for reading (non-blocking: its writer may come later).
fn open_source(path: &str) -> Result<Option<File>> {
    let Some((_, path)) = parse_uri(path)? else {
        return Ok(None);
    };
    File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map(Some)
        .map_err(|e| ShimError::other(format!("opening {path}: {e}")))
}

fn set_blocking(f: &File, path: &str) -> Result<()> {
    let flags = fcntl(f, FcntlArg::F_GETFL)
        .map_err(|e| ShimError::other(format!("{path}: F_GETFL: {e}")))?;
    let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(f, FcntlArg::F_SETFL(flags))
        .map_err(|e| ShimError::other(format!("{path}: F_SETFL: {e}")))?;
    Ok(())
}

/// Copies `pipe` to `sink` until the pipe's end-of-file. When the sink fails (its reader
/// went away) the rest is read and dropped, so that writers never block or get EPIPE.
pub fn copy_out(mut pipe: File, sink: File) {
    let mut sink = Some(sink);
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("stdio copy: reading the container's pipe: {e}");
                break;
            }
        };
        if let Some(s) = &mut sink {
            if let Err(e) = s.write_all(&buf[..n]) {
                log::warn!("stdio copy: the reader went away ({e}); dropping further output");
                sink = None;
            }
        }
    }
}

/// Copies `fifo` (opened non-blocking) to `pipe` until the fifo's writer closes it or
/// nobody reads the pipe any more.
pub fn copy_in(fifo: File, mut pipe: File) {
    let mut buf = vec![0u8; BUF_SIZE];
    let mut fifo = fifo;
    loop {
        let (fifo_ev, pipe_ev) = {
            // Events 0 on the pipe: poll still reports POLLERR once it has no reader.
            let mut fds = [
                PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
                PollFd::new(pipe.as_fd(), PollFlags::empty()),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("stdin copy: poll: {e}");
                    return;
                }
                Ok(_) => {}
            }
            (
                fds[0].revents().unwrap_or(PollFlags::empty()),
                fds[1].revents().unwrap_or(PollFlags::empty()),
            )
        };
        if pipe_ev.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL) {
            return;
        }
        if fifo_ev.contains(PollFlags::POLLIN) {
            match fifo.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if pipe.write_all(&buf[..n]).is_err() {
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
            // The writer came and went, nothing is left to read.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }

    fn pipe_files() -> (File, File) {
        let (r, w) = pipe().unwrap();
        (r.into(), w.into())
    }

    #[test]
    fn output_is_complete_after_the_writer_exits() {
        let (r, mut w) = pipe_files();
        let (sink_r, sink_w) = pipe_files();
        let t = thread::spawn(move || copy_out(r, sink_w));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let reader = thread::spawn(move || {
            let mut got = vec![];
            let mut sink_r = sink_r;
            sink_r.read_to_end(&mut got).unwrap();
            got
        });
        w.write_all(&data).unwrap();
        drop(w);
        t.join().unwrap();
        assert_eq!(reader.join().unwrap(), data);
    }

    #[test]
    fn a_vanished_reader_neither_blocks_nor_breaks_the_writer() {
        let (r, mut w) = pipe_files();
        let (sink_r, sink_w) = pipe_files();
        drop(sink_r);
        let t = thread::spawn(move || copy_out(r, sink_w));
        // Far more than a pipe holds: the copy keeps draining after the sink failed.
        for _ in 0..64 {
            w.write_all(&[b'x'; 16 * 1024]).unwrap();
        }
        drop(w);
        t.join().unwrap();
    }

    #[test]
    fn stdin_copy_ends_when_the_fifo_writer_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_source(path.to_str().unwrap()).unwrap().unwrap();
        let (mut r, w) = pipe_files();
        let t = thread::spawn(move || copy_in(fifo, w));
        let mut writer = File::options().write(true).open(&path).unwrap();
        writer.write_all(b"line one\nline two\n").unwrap();
        drop(writer);
        t.join().unwrap();
        let mut got = String::new();
        r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "line one\nline two\n");
    }

    #[test]
    fn stdin_copy_ends_when_the_container_side_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        mkfifo(&path);
        let fifo = open_source(path.to_str().unwrap()).unwrap().unwrap();
        // A writer that stays open and silent: only the closed pipe can end the copy.
        let _writer = File::options().write(true).open(&path).unwrap();
        let (r, w) = pipe_files();
        let t = thread::spawn(move || copy_in(fifo, w));
        thread::sleep(Duration::from_millis(20));
        drop(r);
        t.join().unwrap();
    }

    #[test]
    fn setup_without_paths_gives_null_and_nothing_to_drain() {
        let (io, drain) = setup(&StdioPaths::default(), None).unwrap();
        assert!(drain.wait(Duration::ZERO));
        let mut f = File::from(io.stdout);
        f.write_all(b"discarded").unwrap();
    }

    #[test]
    fn setup_forwards_output_and_drains() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        let reader = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&out)
            .unwrap();
        set_blocking(&reader, "out").unwrap();
        let paths = StdioPaths {
            stdout: out.to_str().unwrap().into(),
            stderr: out.to_str().unwrap().into(),
            ..Default::default()
        };
        let (io, drain) = setup(&paths, None).unwrap();
        assert!(!drain.wait(Duration::from_millis(10)));
        File::from(io.stdout).write_all(b"out ").unwrap();
        File::from(io.stderr).write_all(b"err").unwrap();
        drop(io.stdin);
        assert!(drain.wait(Duration::from_secs(5)));
        let mut got = String::new();
        let mut reader = reader;
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "out err");
    }

    #[test]
    fn stdio_uris() {
        assert!(parse_uri("").unwrap().is_none());
        assert_eq!(parse_uri("/a/b").unwrap(), Some((false, "/a/b")));
        assert_eq!(parse_uri("fifo:///a").unwrap(), Some((false, "/a")));
        assert_eq!(parse_uri("file:///log").unwrap(), Some((true, "/log")));
        let e = parse_uri("binary:///usr/bin/logger?x=1").unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Unimplemented);
    }
}
