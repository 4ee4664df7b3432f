//! The I/O of a container's processes, as containerd gives it: fifo paths (or `fifo://`),
//! `file:///path` and `binary:///path?args` log URIs. No async runtime (a blocking FIFO
//! read inside one parks its worker threads forever). One part per kind:
//!
//! - [`setup_for`] (here): a process's stdout and stderr from containerd's paths (uri.rs):
//!   the container writes to a pipe, which an output copy (output.rs) puts into a fifo
//!   (fifo.rs: the client may go away and come back, nothing is dropped) or a file
//!   (file.rs), or which a logging binary reads itself (binary.rs).
//! - [`stdin`]: the process's stdin, from containerd's fifo; CloseIO ends it. The process
//!   gets /dev/null from [`setup_for`], which the caller replaces.
//! - [`tty`]: a process's terminal: its output and its size.
//! - [`process`]: one process's I/O put together (pipes or terminal), what create and
//!   exec hand the zygote and what the task keeps.
//! - copier.rs: the one thread that runs every copy of every process (output, stdin,
//!   terminal), a poll loop over copies that never block: a pod's shim does not grow by
//!   threads per container.
//!
//! Output is complete: the shim publishes an exit only after [`Drain::wait`], which waits
//! until the copies have put everything the container wrote into the fifos or files
//! (and for a logging binary to exit).

mod binary;
mod copier;
mod fifo;
mod file;
mod output;
pub mod process;
pub mod stdin;
pub mod tty;
mod uri;

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nix::fcntl::OFlag;

use crate::error::{Result, ShimError};
use uri::{parse_uri, Target};

/// Copy buffer size.
const BUF_SIZE: usize = 32 * 1024;

/// Stack of the copy thread (and a logging binary's watcher): buffers live on the heap.
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

/// Counts the outputs not completely forwarded yet (copies that have not put all the
/// container wrote into their fifo or file, logging binaries still running); waiting on
/// it waits for the output of the container to be completely forwarded.
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

    /// Waits until every output is forwarded, at most `timeout`; true if they are.
    pub fn wait(&self, timeout: Duration) -> bool {
        let n = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let (n, _) = self
            .done
            .wait_timeout_while(n, timeout, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *n == 0
    }
}

/// Where the container's stdio goes, as containerd gives it (paths or URIs; empty:
/// nowhere).
#[derive(Debug, Clone, Default)]
pub struct StdioPaths {
    /// stdin fifo (opened by stdin.rs; [`setup_for`] leaves stdin to it).
    pub stdin: String,
    /// stdout fifo or log URI.
    pub stdout: String,
    /// stderr fifo or log URI.
    pub stderr: String,
}

/// Ends the output copies of one process that still wait for a client when it is dropped
/// (output.rs): the process's I/O holds it until the task's end.
#[derive(Debug)]
pub struct Stop {
    /// The write end of a pipe whose read end the copies poll: closing it hangs that up.
    _guard: OwnedFd,
}

/// What the copies poll to see that their [`Stop`] was dropped.
type Stopped = Arc<OwnedFd>;

impl Stop {
    /// A new stop and what the copies poll.
    fn new() -> Result<(Stop, Stopped)> {
        let (r, w) = pipe()?;
        Ok((Stop { _guard: w }, Arc::new(r)))
    }
}

/// Opens the fifos or files, or starts the logging binary, makes the pipes and starts the
/// copies, for a process of container `id` (a logging binary's `CONTAINER_ID`).
/// `owner` (uid, gid) owns the container's pipe ends (runc's `io_uid`/`io_gid`, for user
/// namespaces). Returns when a logging binary is ready; the [`Stop`] is to be dropped at
/// the task's end.
pub fn setup_for(
    id: &str,
    paths: &StdioPaths,
    owner: Option<(u32, u32)>,
) -> Result<(ContainerStdio, Arc<Drain>, Stop)> {
    let drain = Arc::new(Drain::default());
    let (stop, stopped) = Stop::new()?;
    let stdout_to = parse_uri(&paths.stdout)?;
    let stderr_to = parse_uri(&paths.stderr)?;
    // stdin belongs to stdin.rs: `paths.stdin` is not read here.
    let stdin = null()?;
    let (stdout, stderr) = match (stdout_to, stderr_to) {
        (Some(Target::Binary(bin)), _) => {
            if !paths.stderr.is_empty() && paths.stderr != paths.stdout {
                return Err(ShimError::invalid(format!(
                    "stdout {} and stderr {}: a logging binary takes both streams, \
                     stderr must name the same binary:// URI or nothing",
                    paths.stdout, paths.stderr
                )));
            }
            if id.is_empty() {
                return Err(ShimError::invalid(format!(
                    "stdout {}: binary:// needs a container id",
                    paths.stdout
                )));
            }
            binary::start_logger(&bin, id, &drain, binary::LOGGER_READY_TIMEOUT)?
        }
        (_, Some(Target::Binary(_))) => {
            return Err(ShimError::invalid(format!(
                "stderr {}: a binary:// URI must be given as stdout too",
                paths.stderr
            )))
        }
        (stdout_to, stderr_to) => {
            let stderr_same = !paths.stderr.is_empty() && paths.stderr == paths.stdout;
            let stdout_sink = stdout_to.map(|t| output::open_sink(&t)).transpose()?;
            let stderr_sink = match stderr_to {
                Some(t) if !stderr_same => Some(output::open_sink(&t)?),
                _ => None,
            };
            let stdout = output::start(stdout_sink, "stdout", &drain, &stopped)?;
            let stderr = if stderr_same {
                stdout
                    .try_clone()
                    .map_err(|e| ShimError::other(format!("dup stdout: {e}")))?
            } else {
                output::start(stderr_sink, "stderr", &drain, &stopped)?
            };
            (stdout, stderr)
        }
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
    Ok((io, drain, stop))
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

/// Helpers for the tests of this module's parts.
#[cfg(test)]
pub(crate) mod testing {
    use std::fs::File;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    use nix::fcntl::{fcntl, FcntlArg, OFlag};

    use super::{pipe, StdioPaths};

    pub(crate) fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    }

    pub(crate) fn pipe_files() -> (File, File) {
        let (r, w) = pipe().unwrap();
        (r.into(), w.into())
    }

    /// Opens a fifo for reading as a client does: a non-blocking open (no writer needed),
    /// then blocking reads.
    pub(crate) fn client_reader(path: &Path) -> File {
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap();
        let fl = OFlag::from_bits_truncate(fcntl(&f, FcntlArg::F_GETFL).unwrap());
        fcntl(&f, FcntlArg::F_SETFL(fl & !OFlag::O_NONBLOCK)).unwrap();
        f
    }

    pub(crate) fn read_n(f: &mut File, n: usize) -> String {
        let mut buf = vec![0u8; n];
        f.read_exact(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    pub(crate) fn fifo_paths(out: &Path) -> StdioPaths {
        StdioPaths {
            stdout: out.to_str().unwrap().into(),
            ..Default::default()
        }
    }

    /// `line-<from>` .. `line-<to - 1>`, one a line.
    pub(crate) fn lines(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("line-{i}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    use testing::{client_reader, mkfifo};

    #[test]
    fn setup_without_paths_gives_null_and_nothing_to_drain() {
        let (io, drain, _stop) = setup_for("c", &StdioPaths::default(), None).unwrap();
        assert!(drain.wait(Duration::ZERO));
        let mut f = File::from(io.stdout);
        f.write_all(b"discarded").unwrap();
    }

    #[test]
    fn setup_forwards_output_and_drains() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        let mut reader = client_reader(&out);
        let paths = StdioPaths {
            stdout: out.to_str().unwrap().into(),
            stderr: out.to_str().unwrap().into(),
            ..Default::default()
        };
        let (io, drain, _stop) = setup_for("c", &paths, None).unwrap();
        assert!(!drain.wait(Duration::from_millis(10)));
        File::from(io.stdout).write_all(b"out ").unwrap();
        File::from(io.stderr).write_all(b"err").unwrap();
        drop(io.stdin);
        assert!(drain.wait(Duration::from_secs(5)));
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "out err");
    }
}
