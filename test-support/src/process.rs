//! Processes on the host: alive or not, their command lines, waiting with deadlines.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Fails the test when not running as root: these tests need real namespaces, mounts
/// and cgroups, and must never pass by doing nothing.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the integration tests must run as root (euid is {euid}); \
         run them with `sudo -E cargo test` or `make test` as root"
    );
}

/// Does a process exist and is it not a zombie? A zombie counts as gone: the VM's pid 1
/// may never reap orphaned container inits, nor a shim reparented when `start` exits.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => !s
            .lines()
            .any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X'))),
        Err(_) => false,
    }
}

/// Polls `f` every 10 ms until it returns true or the timeout passes.
pub fn poll(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until `pid` is gone (or a zombie). Returns false on timeout.
pub fn wait_pid_gone(pid: i32, timeout: Duration) -> bool {
    poll(timeout, || !pid_alive(pid))
}

/// Waits for a child with a deadline; kills and reaps it on timeout (returns None).
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("wait for a child") {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Runs `cmd` with stdin from /dev/null, stdout into the file `out` and stderr into `out`
/// with the extension `err` (files, not pipes: a daemon or detached container it leaves
/// behind cannot hold a pipe open and hang the test). Fails the test after `timeout`.
pub fn run_captured(cmd: &mut Command, out: &Path, timeout: Duration) -> Output {
    let err = out.with_extension("err");
    let create =
        |p: &Path| fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
    cmd.stdin(Stdio::null())
        .stdout(create(out))
        .stderr(create(&err));
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let status = wait_child(&mut child, timeout).unwrap_or_else(|| {
        panic!(
            "{shown} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
            fs::read_to_string(out).unwrap_or_default(),
            fs::read_to_string(&err).unwrap_or_default()
        )
    });
    Output {
        status,
        stdout: fs::read(out).unwrap_or_default(),
        stderr: fs::read(&err).unwrap_or_default(),
    }
}

/// A process's command line, its arguments joined by spaces ("" once it is gone).
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The parent of `pid`, from /proc/PID/stat (None once it is gone).
pub fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which is in parentheses and may hold spaces: state, ppid.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The pids of every process on the host.
pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Live processes whose command line contains every one of `words`.
pub fn processes_with(words: &[&str]) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|pid| {
            let cmd = cmdline(*pid);
            words.iter().all(|w| cmd.contains(w)) && pid_alive(*pid)
        })
        .collect()
}

/// SIGKILL to `pid`: only for a process the test started, directly or through the
/// runtime or shim under test (the leak check finds those by the test's marker).
pub fn kill9(pid: i32) {
    // SAFETY: kill(2) has no memory preconditions.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// The namespace link of a process, e.g. `net:[4026531992]` (`pid` may be "self").
pub fn ns_of(pid: impl std::fmt::Display, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{kind}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// The test process's own namespace of kind `n` (`mnt`, `net`, ...), as readlink shows it.
pub fn own_namespace(n: &str) -> String {
    ns_of("self", n)
}
