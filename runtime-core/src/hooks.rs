//! OCI lifecycle hooks: run each with the container state on stdin, honouring `timeout`.
//!
//! config.md: a hook's `path` MUST be absolute, `args` has `execv` argv semantics (argv[0]
//! included), `env` is the hook's whole environment, `timeout` (seconds) MUST be > 0, and the
//! state MUST be passed on stdin. runtime.md: a failing prestart/createRuntime/createContainer/
//! startContainer hook is an error ([`run`]); a failing poststart/poststop hook is only a
//! warning and the remaining hooks still run ([`run_best_effort`]).
//!
//! The hook is reaped with `std::process::Child::try_wait`, i.e. waitpid on its pid: a caller
//! that reaps every child elsewhere (a global SIGCHLD reaper) would race with it.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Hook;

use crate::deadline::Deadline;

/// How long one round of the supervision loop waits for I/O before checking the hook's exit
/// and the deadline again.
const POLL_INTERVAL_MS: u16 = 10;
/// Bytes of stdout/stderr kept per hook; the rest is read and dropped so that a chatty hook
/// never blocks on a full pipe.
const CAPTURE_LIMIT: usize = 16 * 1024;

/// A hook that failed: which one and why.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// `path` is relative; the spec requires an absolute path (no $PATH lookup).
    #[error("hook {}: path must be absolute", .path.display())]
    NotAbsolute {
        /// The hook's path.
        path: PathBuf,
    },
    /// `timeout` is zero or negative; the spec requires it to be greater than zero.
    #[error("hook {}: timeout must be greater than zero, got {timeout}", .path.display())]
    InvalidTimeout {
        /// The hook's path.
        path: PathBuf,
        /// The configured timeout.
        timeout: i64,
    },
    /// The hook could not be started (missing binary, not executable, ...).
    #[error("hook {}: cannot execute: {source}", .path.display())]
    Spawn {
        /// The hook's path.
        path: PathBuf,
        /// Why exec failed.
        #[source]
        source: io::Error,
    },
    /// Supervising the running hook failed (poll, waitpid).
    #[error("hook {}: {what}: {source}", .path.display())]
    Io {
        /// The hook's path.
        path: PathBuf,
        /// The operation that failed.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The hook exited non-zero or was killed by a signal.
    #[error("hook {} failed ({status}){}", .path.display(), stderr_suffix(.stderr))]
    Failed {
        /// The hook's path.
        path: PathBuf,
        /// How it ended.
        status: ExitStatus,
        /// Its stderr, trimmed.
        stderr: String,
    },
    /// The hook ran longer than its `timeout`; it was killed with SIGKILL and reaped.
    #[error("hook {} timed out after {secs}s", .path.display())]
    Timeout {
        /// The hook's path.
        path: PathBuf,
        /// The configured timeout in seconds.
        secs: i64,
    },
}

/// Formats captured stderr for an error message: `: <stderr>` or nothing.
fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// Runs `hooks` in order with `state_json` on stdin; stops at the first failure.
pub fn run(hooks: &[Hook], state_json: &[u8]) -> Result<(), HookError> {
    hooks.iter().try_for_each(|hook| run_hook(hook, state_json))
}

/// Runs every hook in order even when some fail (poststart, poststop); logs each failure as a
/// warning and returns them.
pub fn run_best_effort(hooks: &[Hook], state_json: &[u8]) -> Vec<HookError> {
    hooks
        .iter()
        .filter_map(|hook| run_hook(hook, state_json).err())
        .inspect(|err| log::warn!("{err}"))
        .collect()
}

/// Runs one hook to completion: state on stdin, output captured, timeout enforced.
pub fn run_hook(hook: &Hook, state_json: &[u8]) -> Result<(), HookError> {
    let path = hook.path();
    if !path.is_absolute() {
        return Err(HookError::NotAbsolute { path: path.clone() });
    }
    let timeout = match hook.timeout() {
        None => None,
        Some(secs) if secs > 0 => Some(secs),
        Some(timeout) => {
            return Err(HookError::InvalidTimeout {
                path: path.clone(),
                timeout,
            })
        }
    };

    let mut child = command(hook).spawn().map_err(|source| HookError::Spawn {
        path: path.clone(),
        source,
    })?;
    let deadline = Deadline::within(timeout.map(|secs| Duration::from_secs(secs.unsigned_abs())));

    let outcome = supervise(&mut child, state_json, deadline);
    let (status, stdout, stderr) = match outcome {
        Ok(Supervised::Exited(status, out, err)) => (status, out, err),
        Ok(Supervised::DeadlinePassed) => {
            kill_and_reap(&mut child);
            return Err(HookError::Timeout {
                path: path.clone(),
                secs: timeout.unwrap_or_default(),
            });
        }
        Err((what, source)) => {
            kill_and_reap(&mut child);
            return Err(HookError::Io {
                path: path.clone(),
                what,
                source,
            });
        }
    };

    let stdout = String::from_utf8_lossy(&stdout);
    let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
    if !stdout.trim().is_empty() {
        log::debug!("hook {} stdout: {}", path.display(), stdout.trim());
    }
    if status.success() {
        if !stderr.is_empty() {
            log::debug!("hook {} stderr: {stderr}", path.display());
        }
        Ok(())
    } else {
        Err(HookError::Failed {
            path: path.clone(),
            status,
            stderr,
        })
    }
}

/// Builds the hook's command: argv from `args` (argv[0] = path when empty), exactly `env`.
fn command(hook: &Hook) -> Command {
    let path = hook.path();
    let mut cmd = Command::new(path);
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(<[String]>::split_first) {
        cmd.arg0(argv0).args(rest);
    }
    // The spec gives the hook exactly `env`: nothing leaks from the runtime's environment.
    cmd.env_clear();
    for entry in hook.env().iter().flatten() {
        match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                cmd.env(key, value);
            }
            _ => log::warn!(
                "hook {}: ignoring env entry {entry:?}: not KEY=value",
                path.display()
            ),
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so that a timeout kills whatever the hook started as well.
        .process_group(0);
    cmd
}

/// How supervision ended.
enum Supervised {
    /// The hook exited; its status, stdout and stderr.
    Exited(ExitStatus, Vec<u8>, Vec<u8>),
    /// The timeout expired first; the hook is still running.
    DeadlinePassed,
}

/// One end of a pipe to the hook, closed (`None`) once finished.
struct Pipes<'a> {
    stdin: Option<std::process::ChildStdin>,
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    input: &'a [u8],
    written: usize,
    out: Vec<u8>,
    err: Vec<u8>,
}

/// Feeds stdin, drains stdout/stderr and watches for exit and the deadline, all from this
/// thread with non-blocking pipes and poll(2): no extra threads (callers may fork later), and
/// no deadlock whatever the hook does with its pipes.
fn supervise(
    child: &mut Child,
    input: &[u8],
    deadline: Deadline,
) -> Result<Supervised, (&'static str, io::Error)> {
    let mut pipes = Pipes {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        input,
        written: 0,
        out: Vec::new(),
        err: Vec::new(),
    };
    if let Some(fd) = pipes.stdin.as_ref() {
        set_nonblocking(fd).map_err(|e| ("setting stdin non-blocking", e))?;
    }
    if let Some(fd) = pipes.stdout.as_ref() {
        set_nonblocking(fd).map_err(|e| ("setting stdout non-blocking", e))?;
    }
    if let Some(fd) = pipes.stderr.as_ref() {
        set_nonblocking(fd).map_err(|e| ("setting stderr non-blocking", e))?;
    }
    if input.is_empty() {
        pipes.stdin = None;
    }

    loop {
        pipes.pump().map_err(|e| ("polling the hook's pipes", e))?;
        match child.try_wait() {
            Ok(Some(status)) => {
                // Output still buffered in the pipes; stop at EAGAIN rather than EOF, since a
                // background child of the hook may keep the write ends open.
                pipes.drain_after_exit();
                return Ok(Supervised::Exited(status, pipes.out, pipes.err));
            }
            Ok(None) => {}
            Err(e) => return Err(("waiting for the hook", e)),
        }
        if deadline.expired() {
            return Ok(Supervised::DeadlinePassed);
        }
    }
}

impl Pipes<'_> {
    /// One round: wait up to POLL_INTERVAL_MS for any pipe to be ready, then move data.
    fn pump(&mut self) -> io::Result<()> {
        let mut ready = [false; 3];
        {
            let want_in = PollFlags::POLLOUT;
            let want_out = PollFlags::POLLIN;
            let mut fds = Vec::with_capacity(3);
            let mut which = Vec::with_capacity(3);
            if let Some(fd) = self.stdin.as_ref() {
                fds.push(PollFd::new(fd.as_fd(), want_in));
                which.push(0);
            }
            if let Some(fd) = self.stdout.as_ref() {
                fds.push(PollFd::new(fd.as_fd(), want_out));
                which.push(1);
            }
            if let Some(fd) = self.stderr.as_ref() {
                fds.push(PollFd::new(fd.as_fd(), want_out));
                which.push(2);
            }
            if fds.is_empty() {
                std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS.into()));
                return Ok(());
            }
            match poll(&mut fds, POLL_INTERVAL_MS) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            for (fd, &i) in fds.iter().zip(&which) {
                // Any event (including POLLHUP/POLLERR) means the next read/write won't block
                // and will tell us what happened.
                ready[i] = fd.revents().is_none_or(|r| !r.is_empty());
            }
        }
        if ready[0] {
            self.feed_stdin();
        }
        if ready[1] {
            read_some(&mut self.stdout, &mut self.out);
        }
        if ready[2] {
            read_some(&mut self.stderr, &mut self.err);
        }
        Ok(())
    }

    /// Writes what the pipe accepts; closes stdin when done or when the hook closed its end
    /// (EPIPE: a hook may ignore its stdin, that is not an error).
    fn feed_stdin(&mut self) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        match stdin.write(&self.input[self.written..]) {
            Ok(n) => {
                self.written += n;
                if self.written >= self.input.len() {
                    self.stdin = None;
                }
            }
            Err(e) if is_transient(&e) => {}
            Err(_) => self.stdin = None,
        }
    }

    /// Reads whatever is left in stdout/stderr without waiting for EOF.
    fn drain_after_exit(&mut self) {
        self.stdin = None;
        while read_some(&mut self.stdout, &mut self.out) {}
        while read_some(&mut self.stderr, &mut self.err) {}
    }
}

/// Reads one chunk into `buf` (up to CAPTURE_LIMIT kept); closes the pipe on EOF or error.
/// Returns whether data was read.
fn read_some<R: Read>(pipe: &mut Option<R>, buf: &mut Vec<u8>) -> bool {
    let Some(reader) = pipe.as_mut() else {
        return false;
    };
    let mut chunk = [0u8; 4096];
    match reader.read(&mut chunk) {
        Ok(0) => {
            *pipe = None;
            false
        }
        Ok(n) => {
            let keep = n.min(CAPTURE_LIMIT.saturating_sub(buf.len()));
            buf.extend_from_slice(&chunk[..keep]);
            true
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
        Err(e) if is_transient(&e) => false,
        Err(_) => {
            *pipe = None;
            false
        }
    }
}

/// EAGAIN/EINTR: try again later.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Sets O_NONBLOCK on our end of a pipe (the hook's end is unaffected: separate descriptions).
fn set_nonblocking<F: AsFd>(fd: &F) -> io::Result<()> {
    let flags = fcntl(fd.as_fd(), FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// SIGKILLs the hook's process group and reaps the hook, so nothing is left behind.
fn kill_and_reap(child: &mut Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // The hook leads its own group (process_group(0)), so its pgid is its pid.
    if let Err(e) = killpg(Pid::from_raw(pid), Signal::SIGKILL) {
        log::debug!("killpg({pid}): {e}");
        // The group may be gone while the hook itself is a zombie; kill() covers the rest.
        let _ = child.kill();
    }
    if let Err(e) = child.wait() {
        log::warn!("reaping hook pid {pid}: {e}");
    }
}

/// The hook kinds this runtime runs, in lifecycle order and config.json's spelling:
/// prestart and createRuntime after the namespaces are set up, createContainer and
/// startContainer in the container, poststart after start, poststop on delete.
/// This is what `features` reports as `hooks`.
pub fn supported_kinds() -> Vec<&'static str> {
    vec![
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Builds a hook from config.json-style JSON.
    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).expect("valid hook JSON")
    }

    fn sh(script: &str) -> Hook {
        hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}))
    }

    #[test]
    fn state_is_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("state");
        let h = sh(&format!("cat > {}", out.display()));
        let state =
            br#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#;
        run(&[h], state).unwrap();
        assert_eq!(fs::read(&out).unwrap(), state);
    }

    #[test]
    fn large_state_does_not_deadlock() {
        // Larger than a pipe buffer, and the hook reads it only after a while.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("state");
        let h = sh(&format!("sleep 0.2; cat > {}", out.display()));
        let state = vec![b'x'; 256 * 1024];
        run(&[h], &state).unwrap();
        assert_eq!(fs::read(&out).unwrap().len(), state.len());
    }

    #[test]
    fn hook_that_ignores_stdin_is_fine() {
        let state = vec![b'x'; 256 * 1024];
        run(&[sh("exit 0")], &state).unwrap();
    }

    /// Environment lines a POSIX shell may add on its own; anything else came from `env`.
    fn from_hook_env(line: &str) -> bool {
        !(line.starts_with("PWD=") || line.starts_with("SHLVL=") || line.starts_with("_="))
    }

    #[test]
    fn env_is_exactly_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("exec /usr/bin/env > {}", out.display())],
            "env": ["FOO=bar", "EMPTY=", "WITH_EQ=a=b"],
        }));
        run(&[h], b"{}").unwrap();
        let text = fs::read_to_string(&out).unwrap();
        let mut got: Vec<&str> = text.lines().filter(|l| from_hook_env(l)).collect();
        got.sort_unstable();
        assert_eq!(got, ["EMPTY=", "FOO=bar", "WITH_EQ=a=b"]);
    }

    #[test]
    fn no_env_means_empty_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("exec /usr/bin/env > {}", out.display())],
        }));
        run(&[h], b"{}").unwrap();
        let got = fs::read_to_string(&out).unwrap();
        let leaked: Vec<&str> = got.lines().filter(|l| from_hook_env(l)).collect();
        assert!(leaked.is_empty(), "leaked env: {leaked:?}");
    }

    #[test]
    fn argv_comes_from_args_and_defaults_to_path() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cmdline");
        // The shell's own /proc cmdline shows the argv it was given, argv[0] included.
        let script = format!("cat /proc/$$/cmdline > {}", out.display());
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["myname", "-c", &script, "x", "one"],
        }));
        run(&[h], b"").unwrap();
        let argv = fs::read(&out).unwrap();
        let expected = format!("myname\0-c\0{script}\0x\0one\0");
        assert_eq!(String::from_utf8_lossy(&argv), expected);

        // No args: argv is just the path. With no arguments sh reads its script from stdin,
        // which is where the state goes.
        let h = hook(serde_json::json!({"path": "/bin/sh"}));
        run(&[h], script.as_bytes()).unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"/bin/sh\0");
    }

    #[test]
    fn hooks_run_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let hooks: Vec<Hook> = (1..=3)
            .map(|i| sh(&format!("echo {i} >> {}", log.display())))
            .collect();
        run(&hooks, b"{}").unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "1\n2\n3\n");
    }

    #[test]
    fn failure_names_path_status_and_stderr_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let hooks = vec![
            sh(&format!("echo 1 >> {}", log.display())),
            sh("echo '  no network for you  ' >&2; exit 3"),
            sh(&format!("echo 3 >> {}", log.display())),
        ];
        let err = run(&hooks, b"{}").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, HookError::Failed { ref status, .. } if status.code() == Some(3)));
        assert!(msg.contains("/bin/sh"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.ends_with(": no network for you"), "{msg}");
        assert_eq!(
            fs::read_to_string(&log).unwrap(),
            "1\n",
            "stopped at the failing hook"
        );
    }

    #[test]
    fn best_effort_runs_all_and_returns_failures() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let hooks = vec![
            sh("exit 1"),
            sh(&format!("echo 2 >> {}", log.display())),
            sh("exit 2"),
        ];
        let errs = run_best_effort(&hooks, b"{}");
        assert_eq!(errs.len(), 2);
        assert_eq!(fs::read_to_string(&log).unwrap(), "2\n");
    }

    #[test]
    fn timeout_kills_and_reaps() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // The hook records its own pid and a background child's, then sleeps.
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("sleep 10 & echo $$ $! > {}; exec sleep 10", pids.display())],
            "timeout": 1,
        }));
        let err = run(&[h], b"{}").unwrap_err();
        assert!(matches!(err, HookError::Timeout { secs: 1, .. }), "{err}");
        assert!(err.to_string().contains("timed out after 1s"), "{err}");

        // It ran until the timeout (its pids are written), and its sleeps of 10 s, which
        // would outlive the test, are gone: killed, not waited for.
        let text = fs::read_to_string(&pids).unwrap();
        for pid in text.split_whitespace() {
            let pid: i32 = pid.parse().unwrap();
            assert!(gone(pid), "pid {pid} still running");
        }
    }

    /// A pid is gone when it no longer exists or is a zombie waiting for init to reap it.
    fn gone(pid: i32) -> bool {
        for _ in 0..100 {
            match fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) => {
                    // The state follows the ")" that closes the command name.
                    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                    if state.starts_with('Z') || state.starts_with('X') {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn timeout_not_reached() {
        let h = hook(serde_json::json!({"path": "/bin/true", "timeout": 5}));
        run(&[h], b"{}").unwrap();
    }

    #[test]
    fn missing_binary_is_a_spawn_error() {
        let h = hook(serde_json::json!({"path": "/nonexistent/hook"}));
        let err = run(&[h], b"{}").unwrap_err();
        assert!(matches!(err, HookError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/hook"), "{err}");
    }

    #[test]
    fn relative_path_and_bad_timeout_are_rejected() {
        let err = run(&[hook(serde_json::json!({"path": "true"}))], b"").unwrap_err();
        assert!(matches!(err, HookError::NotAbsolute { .. }), "{err}");
        let err = run(
            &[hook(serde_json::json!({"path": "/bin/true", "timeout": 0}))],
            b"",
        )
        .unwrap_err();
        assert!(
            matches!(err, HookError::InvalidTimeout { timeout: 0, .. }),
            "{err}"
        );
    }

    #[test]
    fn chatty_hook_does_not_block() {
        // 1 MiB on stdout and stderr, far more than a pipe holds.
        let h = sh("head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2");
        let h = hook(serde_json::json!({
            "path": h.path(), "args": h.args(), "timeout": 10,
        }));
        run(&[h], b"{}").unwrap();
    }
}
