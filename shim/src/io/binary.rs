//! stdout/stderr to `binary:///path?k=v&...` (containerd's logging binaries, nerdctl's log
//! driver): the shim starts `/path k v ...` with the read end of the container's stdout
//! pipe on fd 3, of its stderr pipe on fd 4, the write end of a "ready" pipe on fd 5,
//! /dev/null on 0-2 and only `CONTAINER_ID` and `CONTAINER_NAMESPACE` in its environment,
//! and waits (bounded) until the binary closes fd 5 (or writes to it) before the container
//! is created. The binary reads the container's output itself. It is the shim's child:
//! the shim's reaper collects its exit like any other (an unknown pid there); this module
//! never waits for it, it watches a pidfd, which sees the exit without taking it. A
//! watcher thread ends when the binary has exited: when the container's output has ended
//! the binary gets a grace period to finish, then SIGTERM, then SIGKILL; if the binary
//! dies while the container still writes, the watcher drains the pipes instead.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use runtime_core::deadline::Deadline;
use runtime_core::os::spawn::{self, ChildFds, Program};
use runtime_core::os::{fds, pidfd, signals};

use super::uri::LogBinary;
use super::{null, pipe, Drain, BUF_SIZE, COPY_STACK};
use crate::error::{Kind, Result, ShimError};

/// How long a logging binary gets to exec and to close fd 5 (ready).
pub(super) const LOGGER_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Once the container's output has ended (no writer left), how long a logging binary gets
/// to exit by itself, then after SIGTERM: together below the 5 s the service waits for the
/// output to drain, so that the binary is gone before the exit is published.
const LOGGER_EXIT_GRACE: Duration = Duration::from_secs(2);

const LOGGER_TERM_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for a logging binary's end after SIGKILL.
const LOGGER_KILL_WAIT: Duration = Duration::from_secs(5);

/// Where a logging binary's descriptors start: stdout pipe, stderr pipe, ready pipe.
const LOGGER_FIRST_FD: RawFd = spawn::FIRST_FD;

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
pub(super) fn start_logger(
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

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    thread::Builder::new()
        .name(format!("io-{name}"))
        .stack_size(COPY_STACK)
        .spawn(f)
        .map(drop)
        .map_err(|e| ShimError::other(format!("starting the {name} thread: {e}")))
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
    fds::dup_from(fd, LOGGER_FIRST_FD + 3)
        .map_err(|e| ShimError::other(format!("dup: {}", e.errno)))
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
        let program = Program::new(c_path, c_args, c_env);
        let srcs = [high_dup(fds[0])?, high_dup(fds[1])?, high_dup(fds[2])?];
        let devnull = high_dup(null()?.as_fd())?;
        let (err_r, err_w) = {
            let (r, w) = pipe()?;
            (r, high_dup(w.as_fd())?)
        };
        let child = ChildFds {
            null: devnull.as_fd(),
            fds: [srcs[0].as_fd(), srcs[1].as_fd(), srcs[2].as_fd()],
            report: err_w.as_fd(),
        };
        let cloned = if clone3 {
            spawn::clone3_pidfd(&program, &child).map_err(|e| e.errno)
        } else {
            Err(Errno::ENOSYS)
        };
        let (pid, pidfd) = match cloned {
            Ok(started) => started,
            Err(Errno::ENOSYS | Errno::EPERM) => {
                // clone3 filtered (seccomp profiles answer ENOSYS): fork, then pidfd_open.
                // Until the reaper takes its exit, the pid cannot be reused.
                let p = spawn::fork(&program, &child)
                    .map_err(|e| ShimError::other(format!("fork: {}", e.errno)))?;
                match pidfd::open(p) {
                    Ok(fd) => (p, fd),
                    Err(e) => {
                        // ESRCH: already exited and reaped. Else it is alive or a
                        // zombie: its pid is still its own.
                        if e.errno != Errno::ESRCH {
                            let _ = signals::kill(p, libc::SIGKILL);
                        }
                        return Err(ShimError::other(format!("pidfd_open {p}: {}", e.errno)));
                    }
                }
            }
            Err(e) => return Err(ShimError::other(format!("clone3: {e}"))),
        };
        let pid = pid.as_raw();
        drop(err_w);
        drop(srcs);
        drop(devnull);
        let logger = Logger { pid, pidfd };
        // The exec's outcome: end-of-file (exec'd, the pipe closed on exec) or an errno.
        let mut fds = [PollFd::new(err_r.as_fd(), PollFlags::POLLIN)];
        if !matches!(Deadline::after(timeout).poll(&mut fds), Ok(n) if n > 0) {
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
        match Deadline::after(timeout).poll(&mut fds) {
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
        matches!(Deadline::after(timeout).poll(&mut fds), Ok(n) if n > 0)
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
                if let Err(e) = Deadline::never().poll(&mut fds) {
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

fn pidfd_signal(pidfd: &OwnedFd, sig: libc::c_int) {
    // A process already reaped is ESRCH, never another process: nothing to do.
    let _ = pidfd::send_signal(pidfd.as_fd(), sig);
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
            if let Err(e) = Deadline::never().poll(&mut fds) {
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
    use std::io::Write;
    use std::path::PathBuf;

    use crate::io::uri::{parse_uri, Target};
    use crate::io::{setup_for, StdioPaths};

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
