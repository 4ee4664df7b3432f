//! The container's stdio, as containerd gives it: fifo paths (or `fifo://`), `file:///path`
//! and `binary:///path?args` log URIs. No async runtime (a blocking FIFO read inside one
//! parks its worker threads forever).
//!
//! - stdout/stderr to a fifo or a file: the container writes to a pipe; the shim's one
//!   copy thread copies the pipe to the fifo or appends it to the file (`file://`: parent
//!   directories are created; one file for both streams when both name it). That thread
//!   ([`Copier`]) is a poll loop over every copy of every process: these, stdin's
//!   (stdin.rs) and terminals' (console.rs), each a [`Job`] that never blocks; a pod's
//!   shim does not grow by threads per container.
//! - A fifo's reader is the client (containerd, ctr, dockerd through containerd), which
//!   may go away and come back: a containerd or dockerd restart, Docker's live-restore.
//!   As containerd's runc shim does (its process/io.go opens each output fifo `O_WRONLY`
//!   and then `O_RDONLY`, and keeps both until the copy ends), the shim holds a read end
//!   of every output fifo too, which it never reads: writes never fail with EPIPE while
//!   the client is away, and what the container writes meanwhile waits in the fifo for
//!   the client's return. When the fifo is full the copy waits, the container's pipe
//!   fills, and the container's writes block: nothing it wrote is dropped.
//! - Each copy ends at the end of its pipe (every writer gone: the process and whatever
//!   inherited its stdio). Output the fifo still holds then keeps the fifo open until a
//!   client reads it (closing both ends would throw it away). A copy that waits for a
//!   client (a full fifo, unread output) also ends at the task's end: dropping the
//!   [`Stop`] that [`setup_for`] returns (the service drops it with the process, at
//!   Delete) ends it and drops what is left, as nobody can read it any more.
//! - stdout/stderr to `binary:///path?k=v&...` (containerd's logging binaries, nerdctl's log
//!   driver): the shim starts `/path k v ...` with the read end of the container's stdout
//!   pipe on fd 3, of its stderr pipe on fd 4, the write end of a "ready" pipe on fd 5,
//!   /dev/null on 0-2 and only `CONTAINER_ID` and `CONTAINER_NAMESPACE` in its environment,
//!   and waits (bounded) until the binary closes fd 5 (or writes to it) before the container
//!   is created. The binary reads the container's output itself. It is the shim's child:
//!   the shim's reaper collects its exit like any other (an unknown pid there); this module
//!   never waits for it, it watches a pidfd, which sees the exit without taking it. A
//!   watcher thread ends when the binary has exited: when the container's output has ended
//!   the binary gets a grace period to finish, then SIGTERM, then SIGKILL; if the binary
//!   dies while the container still writes, the watcher drains the pipes instead.
//! - stdin is not handled here: stdin.rs copies it, so that CloseIO can close it. The
//!   process gets /dev/null from here, which the caller replaces.
//!
//! Output is complete: the shim publishes an exit only after [`Drain::wait`], which waits
//! until the copies have put everything the container wrote into the fifos or files
//! (and for a logging binary to exit).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Kind, Result, ShimError};

/// How long opening an output fifo waits for containerd's reader to appear.
const FIFO_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between two looks at an output fifo that still holds unread data
/// after the container's output ended (the pauses start at 1 ms and double).
const LINGER_POLL_MAX: Duration = Duration::from_millis(100);
/// Copy buffer size.
const BUF_SIZE: usize = 32 * 1024;
/// Stack of the copy thread (and a logging binary's watcher): buffers live on the heap.
const COPY_STACK: usize = 64 * 1024;
/// How long a logging binary gets to exec and to close fd 5 (ready).
const LOGGER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Once the container's output has ended (no writer left), how long a logging binary gets
/// to exit by itself, then after SIGTERM: together below the 5 s the service waits for the
/// output to drain, so that the binary is gone before the exit is published.
const LOGGER_EXIT_GRACE: Duration = Duration::from_secs(2);
const LOGGER_TERM_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for a logging binary's end after SIGKILL.
const LOGGER_KILL_WAIT: Duration = Duration::from_secs(5);
/// Where a logging binary's descriptors start: stdout pipe, stderr pipe, ready pipe.
const LOGGER_FIRST_FD: RawFd = 3;

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
/// (module doc): the process's I/O holds it until the task's end.
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
    // stdin belongs to stdin.rs (module doc): `paths.stdin` is not read here.
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
            start_logger(&bin, id, &drain, LOGGER_READY_TIMEOUT)?
        }
        (_, Some(Target::Binary(_))) => {
            return Err(ShimError::invalid(format!(
                "stderr {}: a binary:// URI must be given as stdout too",
                paths.stderr
            )))
        }
        (stdout_to, stderr_to) => {
            let stderr_same = !paths.stderr.is_empty() && paths.stderr == paths.stdout;
            let stdout_sink = stdout_to.map(|t| open_sink(&t)).transpose()?;
            let stderr_sink = match stderr_to {
                Some(t) if !stderr_same => Some(open_sink(&t)?),
                _ => None,
            };
            let stdout = output(stdout_sink, "stdout", &drain, &stopped)?;
            let stderr = if stderr_same {
                stdout
                    .try_clone()
                    .map_err(|e| ShimError::other(format!("dup stdout: {e}")))?
            } else {
                output(stderr_sink, "stderr", &drain, &stopped)?
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

fn output(
    sink: Option<Sink>,
    name: &'static str,
    drain: &Arc<Drain>,
    stopped: &Stopped,
) -> Result<OwnedFd> {
    match sink {
        None => null(),
        Some(sink) => {
            let (r, w) = pipe()?;
            drain.add();
            let added = run_job(Box::new(Copy {
                name,
                pipe: r.into(),
                sink: Some(sink),
                pending: Vec::new(),
                drain: drain.clone(),
                stopped: stopped.clone(),
                lingering: None,
            }));
            if let Err(e) = added {
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
        .map_err(|e| ShimError::other(format!("starting the {name} thread: {e}")))
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

/// A stdio destination.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A fifo: a plain path or `fifo://path`.
    Fifo(PathBuf),
    /// `file:///path`: appended to.
    File(PathBuf),
    /// `binary:///path?args`: a logging binary.
    Binary(LogBinary),
}

/// A logging binary and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogBinary {
    path: PathBuf,
    /// The URI's query, in order: each key, then its value unless that is empty.
    args: Vec<String>,
}

/// Parses a stdio path as containerd gives it: a fifo path, or a `fifo://`, `file://` or
/// `binary://` URI (percent-encoded, as Go's net/url writes them; no host).
fn parse_uri(s: &str) -> Result<Option<Target>> {
    if s.is_empty() {
        return Ok(None);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok(Some(Target::Fifo(PathBuf::from(s))));
    };
    let bad = |why: &str| ShimError::invalid(format!("stdio URI {s}: {why}"));
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "fifo" {
        return Ok(Some(Target::Fifo(PathBuf::from(rest))));
    }
    if scheme != "file" && scheme != "binary" {
        return Err(ShimError::unimplemented(format!(
            "stdio URI {s}: {scheme}:// is not supported (fifo, file:// and binary:// are)"
        )));
    }
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(bad(
            "expected an absolute path and no host (scheme:///path)",
        ));
    }
    let path = percent_decode(path, false).map_err(|e| bad(&e))?;
    if path.len() < 2 || path.contains('\0') {
        return Err(bad("no path"));
    }
    let path = PathBuf::from(path);
    if scheme == "file" {
        return Ok(Some(Target::File(path)));
    }
    let mut args = vec![];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, true).map_err(|e| bad(&e))?;
        let v = percent_decode(v, true).map_err(|e| bad(&e))?;
        if k.contains('\0') || v.contains('\0') {
            return Err(bad("NUL in an argument"));
        }
        args.push(k);
        if !v.is_empty() {
            args.push(v);
        }
    }
    Ok(Some(Target::Binary(LogBinary { path, args })))
}

/// Decodes `%XX` escapes (and `+` as a space in a query).
fn percent_decode(s: &str, plus_is_space: bool) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad escape at {:?}", &s[i..]))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_string())
}

/// Where an output copy writes.
#[derive(Debug)]
enum Sink {
    /// A fifo (module doc).
    Fifo(FifoSink),
    /// A file, appended to.
    File(File),
}

/// An output fifo: the shim's write end, non-blocking so that a copy waiting for room can
/// also wait for its [`Stop`], and the read end the shim holds so that the fifo always
/// has a reader (module doc); the shim never reads from it.
#[derive(Debug)]
struct FifoSink {
    writer: File,
    reader: File,
}

/// Opens an output: a fifo for writing, waiting (bounded) for its reader, or a file for
/// appending (`file://`: parent directories created; a plain path that names a file and
/// not a fifo, as containerd's runc shim takes it too).
fn open_sink(target: &Target) -> Result<Sink> {
    let path = match target {
        Target::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ShimError::other(format!("creating {}: {e}", dir.display())))?;
            }
            return File::options()
                .append(true)
                .create(true)
                .open(path)
                .map(Sink::File)
                .map_err(|e| ShimError::other(format!("opening {}: {e}", path.display())));
        }
        Target::Fifo(path) => path,
        Target::Binary(_) => unreachable!("logging binaries have no sink"),
    };
    let open_err = |e: std::io::Error| ShimError::other(format!("opening {}: {e}", path.display()));
    if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_fifo()) {
        return File::options()
            .append(true)
            .open(path)
            .map(Sink::File)
            .map_err(open_err);
    }
    let deadline = Instant::now() + FIFO_OPEN_TIMEOUT;
    let writer = loop {
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
            Err(e) => return Err(open_err(e)),
        }
    };
    // With our writer there, this opens at once.
    let reader = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open_err)?;
    Ok(Sink::Fifo(FifoSink { writer, reader }))
}

/// The containerd namespace of this shim (its `-namespace` flag): a logging binary's
/// `CONTAINER_NAMESPACE`.
fn namespace() -> &'static str {
    static NS: OnceLock<String> = OnceLock::new();
    NS.get_or_init(|| namespace_from_args(std::env::args()))
}

fn namespace_from_args(args: impl Iterator<Item = String>) -> String {
    let mut args = args.skip(1);
    while let Some(a) = args.next() {
        let flag = a.trim_start_matches('-');
        if a.starts_with('-') && flag == "namespace" {
            return args.next().unwrap_or_default();
        }
        if let Some(v) = flag
            .strip_prefix("namespace=")
            .filter(|_| a.starts_with('-'))
        {
            return v.to_string();
        }
    }
    String::new()
}

/// Starts the logging binary on two new pipes and waits until it is ready; returns the
/// container's ends (stdout, stderr). A thread watches the binary until it has exited.
fn start_logger(
    bin: &LogBinary,
    id: &str,
    drain: &Arc<Drain>,
    ready_timeout: Duration,
) -> Result<(OwnedFd, OwnedFd)> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let env = [
        format!("CONTAINER_ID={id}"),
        format!("CONTAINER_NAMESPACE={}", namespace()),
    ];
    let what = || format!("logging binary {}", bin.path.display());
    let logger = Logger::spawn(
        &bin.path,
        &bin.args,
        &env,
        [out_r.as_fd(), err_r.as_fd(), ready_w.as_fd()],
        ready_timeout,
        true,
    )
    .map_err(|e| e.context(what()))?;
    drop(ready_w);
    if let Err(e) = logger.wait_ready(&ready_r, ready_timeout) {
        logger.signal(libc::SIGKILL);
        return Err(e.context(what()));
    }
    let killer = logger.pidfd.try_clone().ok();
    drain.add();
    let d = drain.clone();
    let name = what();
    let started = spawn("logger", move || {
        logger.watch(out_r.into(), err_r.into(), &name);
        d.finish();
    });
    if let Err(e) = started {
        if let Some(pidfd) = killer {
            pidfd_signal(&pidfd, libc::SIGKILL);
        }
        drain.finish();
        return Err(e.context(what()));
    }
    Ok((out_w, err_w))
}

/// clone3(2)'s arguments (linux/sched.h, the first version of the struct).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// A running logging binary: the shim's child, seen through a pidfd. Its exit status
/// belongs to the shim's reaper; only the pidfd says whether it has exited.
#[derive(Debug)]
struct Logger {
    pid: i32,
    pidfd: OwnedFd,
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| ShimError::invalid(format!("NUL in {s:?}")))
}

/// A copy of `fd` numbered `LOGGER_FIRST_FD + 3` or above (close-on-exec), so that moving
/// the copies onto 3, 4 and 5 in the child never overwrites one of them.
fn high_dup(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(LOGGER_FIRST_FD + 3))
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .map_err(|e| ShimError::other(format!("dup: {e}")))
}

impl Logger {
    /// Forks and execs `path args...` with `fds` on 3, 4, 5, /dev/null on 0, 1, 2 and `env`
    /// as its whole environment. The child runs only async-signal-safe calls (the server
    /// is multi-threaded): everything it needs is prepared here. A failed exec is reported
    /// through a close-on-exec pipe. `clone3`: fork with clone3(CLONE_PIDFD), which gives
    /// the pidfd atomically, falling back to fork + pidfd_open where clone3 is filtered.
    fn spawn(
        path: &Path,
        args: &[String],
        env: &[String],
        fds: [BorrowedFd<'_>; 3],
        timeout: Duration,
        clone3: bool,
    ) -> Result<Logger> {
        let c_path = cstring(path.as_os_str())?;
        let c_args = std::iter::once(Ok(c_path.clone()))
            .chain(args.iter().map(|a| cstring(a.as_ref())))
            .collect::<Result<Vec<_>>>()?;
        let c_env = env
            .iter()
            .map(|e| cstring(e.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let argv: Vec<*const libc::c_char> = c_args
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let envp: Vec<*const libc::c_char> = c_env
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let srcs = [high_dup(fds[0])?, high_dup(fds[1])?, high_dup(fds[2])?];
        let devnull = high_dup(null()?.as_fd())?;
        let (err_r, err_w) = {
            let (r, w) = pipe()?;
            (r, high_dup(w.as_fd())?)
        };
        let child = ChildFds {
            srcs: [
                srcs[0].as_raw_fd(),
                srcs[1].as_raw_fd(),
                srcs[2].as_raw_fd(),
            ],
            devnull: devnull.as_raw_fd(),
            err: err_w.as_raw_fd(),
        };

        let exec = || -> ! {
            // SAFETY: in the forked child, which only runs `exec_child` on the data prepared
            // above: async-signal-safe calls.
            unsafe { exec_child(c_path.as_ptr(), argv.as_ptr(), envp.as_ptr(), &child) }
        };
        let mut pidfd: libc::c_int = -1;
        let cloned = if clone3 {
            let mut cl = CloneArgs {
                flags: libc::CLONE_PIDFD as u64,
                pidfd: &mut pidfd as *mut libc::c_int as u64,
                exit_signal: libc::SIGCHLD as u64,
                ..Default::default()
            };
            // SAFETY: clone3 without CLONE_VM is a fork that also returns a pidfd; the child
            // only runs `exec`.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_clone3,
                    &mut cl as *mut CloneArgs,
                    std::mem::size_of::<CloneArgs>(),
                )
            };
            if r < 0 {
                Err(Errno::last())
            } else {
                Ok(r as i32)
            }
        } else {
            Err(Errno::ENOSYS)
        };
        let (pid, pidfd) = match cloned {
            Ok(0) => exec(),
            // SAFETY: the kernel stored a new pidfd that nothing else owns.
            Ok(p) => (p, unsafe { OwnedFd::from_raw_fd(pidfd) }),
            Err(Errno::ENOSYS | Errno::EPERM) => {
                // clone3 filtered (seccomp profiles answer ENOSYS): fork, then pidfd_open.
                // Until the reaper takes its exit, the pid cannot be reused.
                // SAFETY: as above; the child only runs `exec`.
                match unsafe { libc::fork() } {
                    0 => exec(),
                    p if p > 0 => match pidfd_open(p) {
                        Ok(fd) => (p, fd),
                        Err(e) => {
                            // ESRCH: already exited and reaped. Else it is alive or a
                            // zombie: its pid is still its own.
                            if Errno::last() != Errno::ESRCH {
                                // SAFETY: kill(2) of our unreaped child.
                                unsafe { libc::kill(p, libc::SIGKILL) };
                            }
                            return Err(e);
                        }
                    },
                    _ => return Err(ShimError::other(format!("fork: {}", Errno::last()))),
                }
            }
            Err(e) => return Err(ShimError::other(format!("clone3: {e}"))),
        };
        drop(err_w);
        drop(srcs);
        drop(devnull);
        let logger = Logger { pid, pidfd };
        // The exec's outcome: end-of-file (exec'd, the pipe closed on exec) or an errno.
        let mut fds = [PollFd::new(err_r.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll_for(&mut fds, Some(timeout)), Ok(n) if n > 0) {
            logger.signal(libc::SIGKILL);
            return Err(ShimError::new(
                Kind::DeadlineExceeded,
                format!("no exec within {timeout:?}"),
            ));
        }
        let mut buf = [0u8; 4];
        let n = File::from(err_r).read(&mut buf).unwrap_or(0);
        if n == 4 {
            let e = Errno::from_raw(i32::from_ne_bytes(buf));
            return Err(ShimError::other(format!("exec: {}", e.desc())));
        }
        Ok(logger)
    }

    /// Waits until the binary closes (or writes to) its end of the ready pipe; an exit or
    /// `timeout` first is an error.
    fn wait_ready(&self, ready: &OwnedFd, timeout: Duration) -> Result<()> {
        let mut fds = [
            PollFd::new(ready.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll_for(&mut fds, Some(timeout)) {
            Ok(0) => {
                return Err(ShimError::new(
                    Kind::DeadlineExceeded,
                    format!(
                        "pid {}: not ready (fd 5 still open) after {timeout:?}",
                        self.pid
                    ),
                ))
            }
            Err(e) => return Err(ShimError::other(format!("poll: {e}"))),
            Ok(_) => {}
        }
        if fds[1].any().unwrap_or(false) || self.exiting() {
            return Err(ShimError::other(format!(
                "pid {} exited before it was ready",
                self.pid
            )));
        }
        Ok(())
    }

    /// Whether the binary has exited or is exiting. An exit closes fd 5 before the pidfd
    /// reports it; the kernel marks the process exiting (PF_EXITING in /proc/PID/stat)
    /// before it closes the descriptors. A pid read in /proc after our process was
    /// reaped (and the pid reused) would be wrong, but then the pidfd says so after it.
    fn exiting(&self) -> bool {
        const PF_EXITING: u64 = 0x4;
        if self.exited(Duration::ZERO) {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let mut fields = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .unwrap_or("")
            .split_whitespace();
        let state = fields.next().unwrap_or("X");
        let flags: u64 = fields.nth(5).and_then(|f| f.parse().ok()).unwrap_or(0);
        matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0 || self.exited(Duration::ZERO)
    }

    /// Whether the binary has exited, waiting at most `timeout` for it.
    fn exited(&self, timeout: Duration) -> bool {
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        matches!(poll_for(&mut fds, Some(timeout)), Ok(n) if n > 0)
    }

    fn signal(&self, sig: libc::c_int) {
        pidfd_signal(&self.pidfd, sig);
    }

    /// Watches the binary until it has exited. While the container's output is open, its
    /// pipes are only polled for their end (the binary reads them); if the binary exits
    /// first, the rest of the output is read and dropped here so that the container never
    /// blocks on a full pipe. Once the output has ended the binary gets
    /// [`LOGGER_EXIT_GRACE`], then SIGTERM and [`LOGGER_TERM_GRACE`], then SIGKILL.
    fn watch(self, out: File, err: File, name: &str) {
        let mut pipes = [Some(out), Some(err)];
        loop {
            let open: Vec<usize> = (0..2).filter(|i| pipes[*i].is_some()).collect();
            if open.is_empty() {
                break;
            }
            let (logger_gone, hung) = {
                let mut fds = vec![PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
                // No POLLIN: unread data is the binary's; only the end (POLLHUP) matters.
                fds.extend(
                    open.iter()
                        .filter_map(|i| pipes[*i].as_ref())
                        .map(|p| PollFd::new(p.as_fd(), PollFlags::empty())),
                );
                if let Err(e) = poll_for(&mut fds, None) {
                    log::warn!("{name}: poll: {e}");
                    return;
                }
                let ended = |f: &PollFd<'_>| {
                    f.revents()
                        .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
                };
                let hung: Vec<usize> = open
                    .iter()
                    .zip(&fds[1..])
                    .filter(|(_, f)| ended(f))
                    .map(|(i, _)| *i)
                    .collect();
                (fds[0].any().unwrap_or(false), hung)
            };
            if logger_gone {
                let rest: Vec<File> = pipes.iter_mut().filter_map(Option::take).collect();
                log::warn!(
                    "{name} (pid {}) exited while the container's output was open: \
                     dropping the rest",
                    self.pid
                );
                discard(rest);
                return;
            }
            for i in hung {
                pipes[i] = None;
            }
        }
        if self.exited(LOGGER_EXIT_GRACE) {
            return;
        }
        log::warn!(
            "{name} (pid {}) still runs {LOGGER_EXIT_GRACE:?} after the container's output \
             ended: SIGTERM",
            self.pid
        );
        self.signal(libc::SIGTERM);
        if self.exited(LOGGER_TERM_GRACE) {
            return;
        }
        log::warn!("{name} (pid {}) ignored SIGTERM: SIGKILL", self.pid);
        self.signal(libc::SIGKILL);
        if !self.exited(LOGGER_KILL_WAIT) {
            log::error!("{name} (pid {}) survived SIGKILL", self.pid);
        }
    }
}

/// The descriptors the child moves into place.
struct ChildFds {
    srcs: [RawFd; 3],
    devnull: RawFd,
    err: RawFd,
}

/// In the forked child: stdio from /dev/null, the three descriptors on 3, 4, 5, everything
/// above close-on-exec, default signal handling, exec. Only async-signal-safe calls.
unsafe fn exec_child(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    fds: &ChildFds,
) -> ! {
    let fail = |err: RawFd| -> ! {
        let e = *libc::__errno_location();
        let b = e.to_ne_bytes();
        libc::write(err, b.as_ptr().cast(), b.len());
        libc::_exit(127)
    };
    // Rust ignores SIGPIPE and exec keeps ignored signals ignored: give the default back.
    let mut dfl: libc::sigaction = std::mem::zeroed();
    dfl.sa_sigaction = libc::SIG_DFL;
    libc::sigaction(libc::SIGPIPE, &dfl, std::ptr::null_mut());
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    for target in 0..3 {
        if libc::dup2(fds.devnull, target) < 0 {
            fail(fds.err);
        }
    }
    for (i, src) in fds.srcs.iter().enumerate() {
        if libc::dup2(*src, LOGGER_FIRST_FD + i as RawFd) < 0 {
            fail(fds.err);
        }
    }
    // Whatever the shim inherited without close-on-exec (containerd's socket) stays out.
    libc::syscall(
        libc::SYS_close_range,
        (LOGGER_FIRST_FD + 3) as libc::c_uint,
        libc::c_uint::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    );
    libc::execve(path, argv, envp);
    fail(fds.err)
}

fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open(2) returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(ShimError::other(format!(
            "pidfd_open {pid}: {}",
            Errno::last()
        )));
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn pidfd_signal(pidfd: &OwnedFd, sig: libc::c_int) {
    // SAFETY: pidfd_send_signal(2) on a pidfd we own; a process already reaped is ESRCH,
    // never another process.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

/// poll(2) with a bound (none: forever), retried on EINTR; the number of ready entries.
fn poll_for(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> std::result::Result<i32, Errno> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
        };
        match poll(fds, wait) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// One output copy (module doc): from the container's pipe to its sink, then, for a
/// fifo, lingering while the fifo holds what no client has read.
struct Copy {
    /// stdout or stderr, for the log.
    name: &'static str,
    pipe: File,
    /// None once writing failed: the rest is read and dropped, so that the container never
    /// blocks on it for good.
    sink: Option<Sink>,
    /// Read from the pipe, not yet written: the fifo is full (the client is away or slow).
    /// The pipe is not read meanwhile, so the container's writes wait: nothing is dropped.
    pending: Vec<u8>,
    drain: Arc<Drain>,
    stopped: Stopped,
    /// After the pipe's end, for a fifo sink: when to look at the fifo again and the pause
    /// after that (no poll event says "empty").
    lingering: Option<(Instant, Duration)>,
}

/// What a copy waits for.
enum Want {
    Read,
    Write,
    /// Nothing but its stop and the time of its next look.
    Linger(Instant),
}

impl Copy {
    fn want(&self) -> Want {
        match self.lingering {
            Some((at, _)) => Want::Linger(at),
            None if self.pending.is_empty() => Want::Read,
            None => Want::Write,
        }
    }

    /// One step once its pipe or sink is `ready` (or its time to look came).
    fn advance(&mut self, ready: bool, buf: &mut [u8]) -> bool {
        match self.want() {
            Want::Read if ready => match self.pipe.read(buf) {
                Ok(0) => self.ended(),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.write();
                    true
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => true,
                Err(e) => {
                    log::warn!("stdio copy: reading the container's {}: {e}", self.name);
                    self.ended()
                }
            },
            Want::Write if ready => {
                self.write();
                true
            }
            Want::Linger(at) if Instant::now() >= at => self.linger(),
            _ => true,
        }
    }

    /// Writes what is pending, as much as the sink takes now.
    fn write(&mut self) {
        let result = match self.sink.as_mut() {
            None => Ok(self.pending.len()),
            Some(Sink::File(f)) => f.write_all(&self.pending).map(|()| self.pending.len()),
            Some(Sink::Fifo(f)) => write_some(&mut f.writer, &self.pending),
        };
        match result {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(e) => {
                log::warn!(
                    "stdio copy: writing the {}: {e}; dropping further output",
                    self.name
                );
                self.sink = None;
                self.pending.clear();
            }
        }
    }

    /// The pipe's end-of-file: everything is in the sink. A fifo still holding unread
    /// output lingers; anything else is over.
    fn ended(&mut self) -> bool {
        self.drain.finish();
        if !matches!(self.sink, Some(Sink::Fifo(_))) {
            return false;
        }
        self.lingering = Some((Instant::now(), Duration::from_millis(1)));
        self.linger()
    }

    /// Keeps the fifo open while it holds bytes no client has read (closing both ends
    /// would throw them away, and a client that comes back would miss the end of the
    /// output); false once they are read.
    fn linger(&mut self) -> bool {
        let (Some(Sink::Fifo(fifo)), Some((_, pause))) = (&self.sink, self.lingering) else {
            return false;
        };
        match unread(&fifo.reader) {
            Ok(0) => false,
            Ok(_) => {
                self.lingering = Some((Instant::now() + pause, (pause * 2).min(LINGER_POLL_MAX)));
                true
            }
            Err(e) => {
                log::warn!("stdio copy: FIONREAD on the fifo: {e}");
                false
            }
        }
    }

    /// Its [`Stop`] was dropped (the task's end): what is left is dropped.
    fn stop(&self) {
        if self.lingering.is_none() {
            self.drain.finish();
        }
    }
}

impl Job for Copy {
    /// Its stop, then its pipe (reading) or its fifo (writing), nothing while it lingers.
    fn interest<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> Option<Instant> {
        fds.push(PollFd::new(self.stopped.as_fd(), PollFlags::POLLIN));
        match (self.want(), &self.sink) {
            (Want::Read, _) => fds.push(PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)),
            (Want::Write, Some(Sink::Fifo(f))) => {
                fds.push(PollFd::new(f.writer.as_fd(), PollFlags::POLLOUT))
            }
            (Want::Linger(at), _) => return Some(at),
            // A file takes everything at once: nothing is ever pending for it.
            (Want::Write, _) => {}
        }
        None
    }

    fn step(&mut self, revents: &[PollFlags], buf: &mut [u8]) -> bool {
        if revents.first().is_some_and(|r| !r.is_empty()) {
            self.stop();
            return false;
        }
        let ready = revents.get(1).is_some_and(|r| !r.is_empty());
        self.advance(ready, buf)
    }
}

/// Makes `fd`'s open file non-blocking (for every descriptor of it).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let flags =
        fcntl(fd, FcntlArg::F_GETFL).map_err(|e| ShimError::other(format!("F_GETFL: {e}")))?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map(drop)
    .map_err(|e| ShimError::other(format!("F_SETFL: {e}")))
}

/// Writes what a non-blocking `w` takes of `data` now; how much.
pub(crate) fn write_some(mut w: impl Write, mut data: &[u8]) -> std::io::Result<usize> {
    let total = data.len();
    while !data.is_empty() {
        match w.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total - data.len())
}

/// A copy that the copier's thread runs (module doc): it says what it waits for and takes
/// a step when woken. It never blocks: its descriptors are non-blocking or polled first.
pub(crate) trait Job: Send {
    /// Pushes the descriptors to poll, with their events, onto `fds`; returns when to
    /// look again without an event (None: only on one).
    fn interest<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> Option<Instant>;
    /// One step after a poll: `revents` are those of the descriptors [`Job::interest`]
    /// pushed, in order (woken by its timeout: maybe none set). False once the job is
    /// over: it is dropped, closing its descriptors.
    fn step(&mut self, revents: &[PollFlags], buf: &mut [u8]) -> bool;
}

/// The shim's copier: one thread for every copy of every process (output, stdin,
/// terminal), so that the shim does not grow by threads per container.
struct Copier {
    added: Mutex<Vec<Box<dyn Job>>>,
    /// A pipe that wakes the thread when a job is added (non-blocking both ends).
    wake: (OwnedFd, OwnedFd),
}

/// The copier, its thread started on first use.
fn copier() -> Result<&'static Copier> {
    static COPIER: OnceLock<std::result::Result<&'static Copier, String>> = OnceLock::new();
    COPIER
        .get_or_init(|| {
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
                .map_err(|e| format!("pipe: {e}"))?;
            let c: &'static Copier = Box::leak(Box::new(Copier {
                added: Mutex::new(Vec::new()),
                wake: (r, w),
            }));
            thread::Builder::new()
                .name("io-copy".into())
                .stack_size(COPY_STACK)
                .spawn(move || c.run())
                .map(|_| c)
                .map_err(|e| format!("starting the stdio copy thread: {e}"))
        })
        .clone()
        .map_err(ShimError::other)
}

/// Hands `job` to the copier's thread (started on first use).
pub(crate) fn run_job(job: Box<dyn Job>) -> Result<()> {
    copier().map(|c| c.add(job))
}

impl Copier {
    fn add(&self, job: Box<dyn Job>) {
        self.added
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(job);
        // A full pipe is a wake-up already pending.
        let _ = nix::unistd::write(&self.wake.1, &[1]);
    }

    fn run(&self) {
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            jobs.append(&mut self.added.lock().unwrap_or_else(|p| p.into_inner()));
            // Every job's events, one after the other; `ends[i]`: where job i's end.
            let (revents, ends) = {
                let mut fds = vec![PollFd::new(self.wake.0.as_fd(), PollFlags::POLLIN)];
                let mut ends = Vec::with_capacity(jobs.len());
                let mut next: Option<Instant> = None;
                for j in &jobs {
                    if let Some(at) = j.interest(&mut fds) {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                    ends.push(fds.len() - 1);
                }
                let timeout = next.map(|at| at.saturating_duration_since(Instant::now()));
                if let Err(e) = poll_for(&mut fds, timeout) {
                    log::warn!("stdio copy: poll: {e}");
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let revents: Vec<PollFlags> = fds[1..]
                    .iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                    .collect();
                (revents, ends)
            };
            let mut drained = [0u8; 64];
            while matches!(nix::unistd::read(&self.wake.0, &mut drained), Ok(n) if n > 0) {}
            let mut i = 0;
            let mut from = 0;
            jobs.retain_mut(|j| {
                let to = ends[i];
                i += 1;
                let keep = j.step(&revents[from..to], &mut buf);
                from = to;
                keep
            });
        }
    }
}

/// The number of bytes a pipe or fifo holds (FIONREAD).
fn unread(pipe: &File) -> std::result::Result<usize, Errno> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores an int through the pointer, which points to `n`.
    let r = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Reads and drops what comes through `pipes`, all at once (a writer blocked on one
/// must not wait for the end of another), until each has reached end-of-file.
fn discard(mut pipes: Vec<File>) {
    let mut buf = vec![0u8; BUF_SIZE];
    while !pipes.is_empty() {
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = pipes
                .iter()
                .map(|p| PollFd::new(p.as_fd(), PollFlags::POLLIN))
                .collect();
            if let Err(e) = poll_for(&mut fds, None) {
                log::warn!("stdio drain: poll: {e}");
                return;
            }
            fds.iter().map(|f| f.any().unwrap_or(false)).collect()
        };
        let mut i = 0;
        pipes.retain_mut(|p| {
            let keep = !ready[i]
                || match p.read(&mut buf) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == ErrorKind::Interrupted,
                };
            i += 1;
            keep
        });
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

    /// A copy of `r` to `sink` by the copier; its drain, and its stop (to keep).
    fn copy(r: File, sink: Sink) -> (Arc<Drain>, Stop) {
        let (stop, stopped) = Stop::new().unwrap();
        let drain = Arc::new(Drain::default());
        drain.add();
        run_job(Box::new(Copy {
            name: "test",
            pipe: r,
            sink: Some(sink),
            pending: Vec::new(),
            drain: drain.clone(),
            stopped,
            lingering: None,
        }))
        .unwrap();
        (drain, stop)
    }

    /// Opens a fifo for reading as a client does: a non-blocking open (no writer needed),
    /// then blocking reads.
    fn client_reader(path: &Path) -> File {
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap();
        let fl = OFlag::from_bits_truncate(fcntl(&f, FcntlArg::F_GETFL).unwrap());
        fcntl(&f, FcntlArg::F_SETFL(fl & !OFlag::O_NONBLOCK)).unwrap();
        f
    }

    fn read_n(f: &mut File, n: usize) -> String {
        let mut buf = vec![0u8; n];
        f.read_exact(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn fifo_paths(out: &Path) -> StdioPaths {
        StdioPaths {
            stdout: out.to_str().unwrap().into(),
            ..Default::default()
        }
    }

    /// `line-<from>` .. `line-<to - 1>`, one a line.
    fn lines(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("line-{i}\n")).collect()
    }

    #[test]
    fn output_is_complete_after_the_writer_exits() {
        let (r, mut w) = pipe_files();
        let (sink_r, sink_w) = pipe_files();
        let (drain, _stop) = copy(r, Sink::File(sink_w));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let reader = thread::spawn(move || {
            let mut got = vec![];
            let mut sink_r = sink_r;
            sink_r.read_to_end(&mut got).unwrap();
            got
        });
        w.write_all(&data).unwrap();
        drop(w);
        assert!(drain.wait(Duration::from_secs(10)), "the copy did not end");
        assert_eq!(reader.join().unwrap(), data);
    }

    #[test]
    fn a_failing_sink_neither_blocks_nor_breaks_the_writer() {
        let (r, mut w) = pipe_files();
        let (sink_r, sink_w) = pipe_files();
        drop(sink_r);
        let (drain, _stop) = copy(r, Sink::File(sink_w));
        // Far more than a pipe holds: the copy keeps draining after the sink failed.
        for _ in 0..64 {
            w.write_all(&[b'x'; 16 * 1024]).unwrap();
        }
        drop(w);
        assert!(drain.wait(Duration::from_secs(10)), "the copy did not end");
    }

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

    #[test]
    fn a_fifo_keeps_the_output_while_its_reader_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        let mut reader = client_reader(&out);
        let (io, drain, _stop) = setup_for("c", &fifo_paths(&out), None).unwrap();
        let mut container = File::from(io.stdout);
        container.write_all(lines(0, 10).as_bytes()).unwrap();
        assert_eq!(read_n(&mut reader, lines(0, 10).len()), lines(0, 10));
        // The client goes away: writing neither fails nor loses anything.
        drop(reader);
        container.write_all(lines(10, 20).as_bytes()).unwrap();
        thread::sleep(Duration::from_millis(50));
        let mut reader = client_reader(&out);
        assert_eq!(read_n(&mut reader, lines(10, 20).len()), lines(10, 20));
        // Away again, while the container writes more than the fifo and its pipe hold:
        // the container's writes block until the client is back.
        drop(reader);
        let big = lines(20, 60_000);
        let len = big.len();
        assert!(len > 512 * 1024);
        let writer = thread::spawn(move || {
            container.write_all(big.as_bytes()).unwrap();
            container
        });
        thread::sleep(Duration::from_millis(200));
        assert!(!writer.is_finished(), "the writes did not block");
        let mut reader = client_reader(&out);
        assert_eq!(read_n(&mut reader, len), lines(20, 60_000));
        drop(writer.join().unwrap());
        drop(io.stderr);
        assert!(drain.wait(Duration::from_secs(5)));
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "", "end-of-file once the container's side closed");
    }

    #[test]
    fn output_left_in_the_fifo_waits_for_a_client() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        let reader = client_reader(&out);
        let (io, drain, stop) = setup_for("c", &fifo_paths(&out), None).unwrap();
        drop(reader);
        File::from(io.stdout).write_all(b"last words\n").unwrap();
        drop(io.stderr);
        // Everything is in the fifo: the exit may be reported.
        assert!(drain.wait(Duration::from_secs(5)));
        thread::sleep(Duration::from_millis(50));
        // The client comes back after the container's end and gets all of it.
        let mut reader = client_reader(&out);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "last words\n");
        drop(stop);
    }

    #[test]
    fn the_stop_ends_copies_that_wait_for_a_client() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        mkfifo(&out);
        mkfifo(&err);
        let readers = (client_reader(&out), client_reader(&err));
        let paths = StdioPaths {
            stdout: out.to_str().unwrap().into(),
            stderr: err.to_str().unwrap().into(),
            ..Default::default()
        };
        let (io, drain, stop) = setup_for("c", &paths, None).unwrap();
        drop(readers);
        // stdout: blocked on a full fifo; stderr: ended, its last words unread.
        let mut container = File::from(io.stdout);
        let writer = thread::spawn(move || {
            let chunk = [b'x'; 64 * 1024];
            // Until the copy is stopped and its pipe's read end closed: EPIPE.
            while container.write_all(&chunk).is_ok() {}
        });
        File::from(io.stderr).write_all(b"unread\n").unwrap();
        assert!(!drain.wait(Duration::from_millis(200)));
        drop(stop);
        assert!(
            drain.wait(Duration::from_secs(5)),
            "the stop did not end the copy"
        );
        writer.join().unwrap();
        // Both fifos were closed: a reader now sees no writer (end-of-file).
        for path in [&out, &err] {
            let closed = (0..500).any(|_| {
                let mut f = File::options()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)
                    .unwrap();
                let mut buf = [0u8; 16];
                if matches!(f.read(&mut buf), Ok(0)) {
                    return true;
                }
                thread::sleep(Duration::from_millis(10));
                false
            });
            assert!(closed, "{} still has the shim's writer", path.display());
        }
    }

    #[test]
    fn a_plain_file_as_output_is_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "before\n").unwrap();
        let (io, drain, _stop) = setup_for("c", &fifo_paths(&log), None).unwrap();
        File::from(io.stdout).write_all(b"after\n").unwrap();
        drop(io.stderr);
        assert!(drain.wait(Duration::from_secs(5)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "before\nafter\n");
    }

    #[test]
    fn stdio_uris() {
        let fifo = |p: &str| Some(Target::Fifo(p.into()));
        assert!(parse_uri("").unwrap().is_none());
        assert_eq!(parse_uri("/a/b").unwrap(), fifo("/a/b"));
        assert_eq!(parse_uri("fifo:///a").unwrap(), fifo("/a"));
        assert_eq!(
            parse_uri("file:///var/log/a%20b.log").unwrap(),
            Some(Target::File("/var/log/a b.log".into()))
        );
        assert_eq!(
            parse_uri("binary:///usr/bin/logger?_MAGIC=%2Fvar%2Flib%2Fx&--tag=a+b&flag").unwrap(),
            Some(Target::Binary(LogBinary {
                path: "/usr/bin/logger".into(),
                args: vec![
                    "_MAGIC".into(),
                    "/var/lib/x".into(),
                    "--tag".into(),
                    "a b".into(),
                    "flag".into()
                ],
            }))
        );
        assert_eq!(
            parse_uri("BINARY:///bin/l").unwrap(),
            Some(Target::Binary(LogBinary {
                path: "/bin/l".into(),
                args: vec![]
            }))
        );
        for bad in [
            "file://host/log",
            "binary://relative",
            "file:///",
            "binary:///bin/x?a=%zz",
            "file:///a%00b",
        ] {
            assert_eq!(
                parse_uri(bad).unwrap_err().kind,
                Kind::InvalidArgument,
                "{bad}"
            );
        }
        assert_eq!(
            parse_uri("tcp://x:1").unwrap_err().kind,
            Kind::Unimplemented
        );
    }

    #[test]
    fn the_namespace_comes_from_the_shim_flags() {
        let args = |a: &[&str]| {
            a.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_iter()
        };
        assert_eq!(
            namespace_from_args(args(&["shim", "-namespace", "k8s.io", "-id", "x"])),
            "k8s.io"
        );
        assert_eq!(
            namespace_from_args(args(&["shim", "--namespace=default"])),
            "default"
        );
        assert_eq!(namespace_from_args(args(&["shim", "-id", "namespace"])), "");
    }

    #[test]
    fn file_uri_appends_both_streams_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a/b/c.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(&log, "before\n").unwrap();
        std::fs::remove_dir_all(dir.path().join("a")).unwrap();
        let uri = format!("file://{}", log.display());
        let paths = StdioPaths {
            stdout: uri.clone(),
            stderr: uri,
            ..Default::default()
        };
        let (io, drain, _stop) = setup_for("c1", &paths, None).unwrap();
        File::from(io.stdout).write_all(b"out\n").unwrap();
        File::from(io.stderr).write_all(b"err\n").unwrap();
        drop(io.stdin);
        assert!(drain.wait(Duration::from_secs(10)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\nerr\n");
        // Appended, not truncated.
        let paths = StdioPaths {
            stdout: format!("file://{}", log.display()),
            ..Default::default()
        };
        let (io, drain, _stop) = setup_for("c1", &paths, None).unwrap();
        File::from(io.stdout).write_all(b"again\n").unwrap();
        drop(io.stderr);
        assert!(drain.wait(Duration::from_secs(10)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\nerr\nagain\n");
    }

    /// A logging binary (shell script) in `dir`; `body` runs after the prologue.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn binary(path: &Path, query: &str) -> StdioPaths {
        let uri = format!("binary://{}{query}", path.display());
        StdioPaths {
            stdout: uri.clone(),
            stderr: uri,
            ..Default::default()
        }
    }

    /// The live pids of `name` among this process's children. The tests have no reaper
    /// (a waitpid(-1) here would take other tests' children): exited loggers stay zombies
    /// until the test binary ends, and count as gone.
    fn children_named(name: &str) -> Vec<i32> {
        let me = std::process::id().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1));
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                ppid == Some(me.as_str())
                    && !stat.contains(") Z ")
                    && String::from_utf8_lossy(&cmd).contains(name)
            })
            .collect()
    }

    const COPY_FDS: &str = r#"out=$2
env > "$out.env"
echo "$@" > "$out.args"
cat <&3 > "$out.stdout" 5>&- &
cat <&4 > "$out.stderr" 5>&- &
exec 5>&-
wait"#;

    #[test]
    fn a_logging_binary_gets_both_streams_env_and_args_and_completes_before_drain() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(dir.path(), "logger-copy", COPY_FDS);
        let base = dir.path().join("log");
        let q = format!("?out={}&--flag", base.display());
        let (io, drain, _stop) = setup_for("ctr-1", &binary(&bin, &q), None).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let mut out = File::from(io.stdout);
        let mut err = File::from(io.stderr);
        let d = data.clone();
        let w = thread::spawn(move || out.write_all(&d).unwrap());
        err.write_all(b"to stderr\n").unwrap();
        drop(err);
        w.join().unwrap();
        drop(io.stdin);
        assert!(
            drain.wait(Duration::from_secs(30)),
            "the logger did not finish"
        );
        // Drained: the binary has exited and wrote everything.
        let read = |ext: &str| std::fs::read(format!("{}.{ext}", base.display())).unwrap();
        assert_eq!(read("stdout"), data);
        assert_eq!(read("stderr"), b"to stderr\n");
        let env = String::from_utf8(read("env")).unwrap();
        assert!(env.contains("CONTAINER_ID=ctr-1\n"), "{env}");
        assert!(
            env.lines().any(|l| l.starts_with("CONTAINER_NAMESPACE=")),
            "{env}"
        );
        assert!(
            !env.contains("RUST_"),
            "the shim's environment leaked: {env}"
        );
        assert_eq!(
            String::from_utf8(read("args")).unwrap(),
            format!("out {} --flag\n", base.display())
        );
    }

    #[test]
    fn a_logging_binary_sees_only_its_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "logger-fds",
            "ls /proc/self/fd > \"$1\"; exec 5>&-; cat <&3 >/dev/null",
        );
        let list = dir.path().join("fds");
        let (io, drain, _stop) =
            setup_for("c", &binary(&bin, &format!("?{}", list.display())), None).unwrap();
        drop(io);
        assert!(drain.wait(Duration::from_secs(30)));
        let fds = std::fs::read_to_string(&list).unwrap();
        let fds: Vec<&str> = fds.split_whitespace().collect();
        // 0-2, 3-5, and the one `ls` opened to list them.
        assert!(fds.len() <= 7, "{fds:?}");
    }

    #[test]
    fn a_logging_binary_that_never_gets_ready_is_killed_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(dir.path(), "logger-stuck", "exec sleep 1000");
        let LogBinary { path, args } = match parse_uri(&binary(&bin, "").stdout).unwrap() {
            Some(Target::Binary(b)) => b,
            other => panic!("{other:?}"),
        };
        let drain = Arc::new(Drain::default());
        let e = start_logger(
            &LogBinary { path, args },
            "c",
            &drain,
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(e.kind, Kind::DeadlineExceeded, "{e}");
        assert!(e.message.contains("logger-stuck"), "{e}");
        assert!(e.message.contains("not ready"), "{e}");
        assert!(drain.wait(Duration::ZERO));
        let gone = (0..500).any(|_| {
            thread::sleep(Duration::from_millis(10));
            children_named("logger-stuck").is_empty()
        });
        assert!(gone, "the stuck logger was not killed");
    }

    #[test]
    fn a_logging_binary_that_exits_or_cannot_run_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(dir.path(), "logger-exit", "exit 3");
        let e = setup_for("c", &binary(&bin, ""), None).unwrap_err();
        assert!(e.message.contains("exited before it was ready"), "{e}");
        let e = setup_for("c", &binary(&dir.path().join("missing"), ""), None).unwrap_err();
        assert!(e.message.contains("No such file"), "{e}");
        let paths = StdioPaths {
            stdout: format!("binary://{}", bin.display()),
            stderr: "/some/fifo".into(),
            ..Default::default()
        };
        assert_eq!(
            setup_for("c", &paths, None).unwrap_err().kind,
            Kind::InvalidArgument
        );
        assert_eq!(
            setup_for("", &binary(&bin, ""), None).unwrap_err().kind,
            Kind::InvalidArgument
        );
    }

    #[test]
    fn a_logging_binary_that_ignores_the_end_of_output_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        // Ready at once, never reads, ignores SIGTERM: only SIGKILL ends it.
        let bin = script(
            dir.path(),
            "logger-deaf",
            "trap '' TERM\nexec 5>&-\nwhile :; do sleep 1; done",
        );
        let (io, drain, _stop) = setup_for("c", &binary(&bin, ""), None).unwrap();
        File::from(io.stdout).write_all(b"unread").unwrap();
        drop(io.stderr);
        drop(io.stdin);
        assert!(
            drain.wait(Duration::from_secs(30)),
            "the watcher did not end"
        );
        let gone = (0..500).any(|_| {
            thread::sleep(Duration::from_millis(10));
            children_named("logger-deaf").is_empty()
        });
        assert!(gone, "the deaf logger still runs");
    }

    #[test]
    fn the_fork_fallback_spawns_and_watches_too() {
        let dir = tempfile::tempdir().unwrap();
        let bin = script(
            dir.path(),
            "logger-fork",
            "echo \"$CONTAINER_ID\" >&5; cat <&3 > \"$1\"",
        );
        let got = dir.path().join("got");
        let (out_r, out_w) = pipe().unwrap();
        let (err_r, err_w) = pipe().unwrap();
        let (ready_r, ready_w) = pipe().unwrap();
        let logger = Logger::spawn(
            &bin,
            &[got.to_str().unwrap().to_string()],
            &["CONTAINER_ID=forked".to_string()],
            [out_r.as_fd(), err_r.as_fd(), ready_w.as_fd()],
            Duration::from_secs(10),
            false,
        )
        .unwrap();
        drop(ready_w);
        // Writing to fd 5 counts as ready, as closing it does.
        logger
            .wait_ready(&ready_r, Duration::from_secs(10))
            .unwrap();
        // One read: the script keeps fd 5 open, end-of-file never comes.
        let mut word = [0u8; 64];
        let n = File::from(ready_r).read(&mut word).unwrap();
        assert_eq!(&word[..n], b"forked\n");
        File::from(out_w).write_all(b"through fork").unwrap();
        drop(err_w);
        let pid = logger.pid;
        logger.watch(out_r.into(), err_r.into(), "logger-fork");
        assert_eq!(std::fs::read_to_string(&got).unwrap(), "through fork");
        // Only this child: a waitpid(-1) would take other tests' children.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    }

    #[test]
    fn output_goes_on_when_the_logging_binary_dies() {
        let dir = tempfile::tempdir().unwrap();
        // Ready, then gone without reading anything.
        let bin = script(
            dir.path(),
            "logger-dies",
            "exec 5>&-\nexec 3<&- 4<&-\nsleep 0.2",
        );
        let (io, drain, _stop) = setup_for("c", &binary(&bin, ""), None).unwrap();
        // Far more than a pipe holds: neither blocks nor SIGPIPE once the shim drains.
        let mut out = File::from(io.stdout);
        for _ in 0..64 {
            out.write_all(&[b'x'; 16 * 1024]).unwrap();
        }
        drop(out);
        drop(io.stderr);
        assert!(drain.wait(Duration::from_secs(30)));
    }
}
