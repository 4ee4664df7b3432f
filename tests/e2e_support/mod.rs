//! Shared pieces of the end-to-end tests with real clients (podman, containerd + ctr).
//!
//! Each test owns a [`World`]: a temp directory holding everything the client and the
//! runtime write (storage, state, sockets, logs), a marker string that names its
//! cgroups (and namespaces), and a leak check run when the world is dropped, also when
//! the test failed: no mounts under the directory, no live processes rooted in it, run
//! from it, naming it or in one of its cgroups, no runtime state left, no cgroup left
//! but the parents the clients create and never remove (which the check removes).
//!
//! The runtime under test is `$RUNTIME_BIN` (default: this package's youki), as for the
//! other integration tests: `RUNTIME_BIN=/usr/sbin/runc cargo test --test e2e_podman`
//! checks the tests themselves against runc.

#![allow(dead_code)]

pub mod containerd;
// cri.rs (containerd with CRI, CNI and local images, for tests/e2e_cri.rs) is included by
// that test alone (`#[path]`): the other end-to-end tests do not carry its harness.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::common::wait_child;
use crate::common::{
    cgroup_hierarchies, describe, mount_points, pid_alive, poll, require_root, runtime_bin,
    wait_pid_gone,
};

/// How long one client command may take before the test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// PATH inside the busybox containers.
pub const CONTAINER_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static WORLDS: AtomicUsize = AtomicUsize::new(0);

/// A client binary (podman, ctr, containerd, conmon). The test fails, never skips, when
/// it is missing: its Debian package is in scripts/debian-packages.txt.
pub fn client(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/bin".into()]);
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} not found on PATH: install Debian's {package} (scripts/setup.sh, \
         scripts/debian-packages.txt)"
    );
}

/// The runtime under test, as an absolute path (clients resolve it themselves).
pub fn runtime() -> PathBuf {
    let r = runtime_bin();
    let r = r
        .canonicalize()
        .unwrap_or_else(|e| panic!("runtime {} (RUNTIME_BIN): {e}", r.display()));
    r
}

/// The state directory the runtime uses when no `--root` is given (podman gives none).
pub fn default_state_root(runtime: &Path) -> PathBuf {
    let name = runtime.file_name().unwrap_or_default().to_string_lossy();
    PathBuf::from("/run").join(name.as_ref())
}

/// Exit code of a client command, for messages and assertions.
pub fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

/// One test's private world. See the module documentation.
pub struct World {
    /// `youki-e2e-<pid>-<n>`: names the test's cgroups, namespaces, containers.
    pub marker: String,
    /// The temp directory (canonical path).
    pub work: PathBuf,
    tmp: Option<tempfile::TempDir>,
    counter: AtomicUsize,
    /// Cgroup paths (relative to a hierarchy's root) the client creates and never
    /// removes; removed by the check, not reported.
    allowed_cgroups: Mutex<Vec<String>>,
    /// Paths that must be gone at the end (runtime state of each container).
    must_vanish: Mutex<Vec<PathBuf>>,
}

impl World {
    pub fn new(kind: &str) -> World {
        require_root();
        let n = WORLDS.fetch_add(1, Ordering::SeqCst);
        let marker = format!("youki-e2e-{}-{n}", std::process::id());
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{marker}-{kind}-"))
            .tempdir()
            .expect("create the test's temp dir");
        let work = tmp.path().canonicalize().unwrap();
        fs::create_dir_all(work.join("io")).unwrap();
        World {
            marker,
            work,
            tmp: Some(tmp),
            counter: AtomicUsize::new(0),
            allowed_cgroups: Mutex::new(vec![]),
            must_vanish: Mutex::new(vec![]),
        }
    }

    pub fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    /// A fresh name: `<marker>-<what>-<n>`.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}-{}", self.marker, self.next())
    }

    /// A path in the work directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    pub fn allow_cgroup(&self, rel: &str) {
        self.allowed_cgroups
            .lock()
            .unwrap()
            .push(rel.trim_matches('/').to_string());
    }

    pub fn must_vanish(&self, p: PathBuf) {
        self.must_vanish.lock().unwrap().push(p);
    }

    /// Runs a client command with stdin from /dev/null and stdout/stderr through files
    /// (a daemon it leaves behind cannot hold a pipe open and hang the test). Fails the
    /// test after [`CLIENT_TIMEOUT`].
    pub fn run(&self, cmd: &mut Command) -> Output {
        self.run_timeout(cmd, CLIENT_TIMEOUT)
    }

    pub fn run_timeout(&self, cmd: &mut Command, timeout: Duration) -> Output {
        let n = self.next();
        let out_path = self.work.join("io").join(format!("{n}.out"));
        let err_path = self.work.join("io").join(format!("{n}.err"));
        cmd.stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(fs::File::create(&err_path).unwrap());
        let shown = format!("{cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
        let status = wait_child(&mut child, timeout).unwrap_or_else(|| {
            panic!(
                "{shown} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            )
        });
        Output {
            status,
            stdout: fs::read(&out_path).unwrap_or_default(),
            stderr: fs::read(&err_path).unwrap_or_default(),
        }
    }

    /// Runs a client command whose stdin, stdout and stderr are a new pseudo-terminal
    /// (for `ctr ... -t`, which needs a console); returns its status and what it wrote
    /// to the terminal.
    pub fn run_on_pty(&self, cmd: &mut Command) -> (ExitStatus, String) {
        let (master, slave) = openpty();
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty slave"));
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        let shown = format!("{cmd:?}");
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
        drop(slave);
        set_nonblocking(&master);
        let mut file = fs::File::from(master);
        let mut out = Vec::new();
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let mut exited = false;
        loop {
            let mut buf = [0u8; 4096];
            match file.read(&mut buf) {
                Ok(n) if n > 0 => {
                    out.extend_from_slice(&buf[..n]);
                    continue;
                }
                // Nothing buffered (EAGAIN), or every slave end is closed (EIO).
                _ if exited => break,
                _ => {}
            }
            // After the exit, one more pass reads what it wrote last.
            exited = child.try_wait().expect("wait for the client").is_some();
            if !exited && Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = child.wait().expect("wait for the client");
        let text = String::from_utf8_lossy(&out).into_owned();
        assert!(
            exited,
            "{shown} did not finish within {CLIENT_TIMEOUT:?}; terminal so far: {text:?}"
        );
        (status, text)
    }

    /// Everything of this world still present on the host.
    pub fn leaks(&self) -> Vec<String> {
        let work = self.work.to_string_lossy().into_owned();
        let mut out = Vec::new();
        for mp in mount_points() {
            if mp.starts_with(&work) {
                out.push(format!("mount: {mp}"));
            }
        }
        for (pid, cmd) in self.processes() {
            out.push(format!("process {pid}: {cmd}"));
        }
        for p in self.must_vanish.lock().unwrap().iter() {
            if p.exists() {
                out.push(format!("runtime state: {}", p.display()));
            }
        }
        let allowed = self.allowed_cgroups.lock().unwrap().clone();
        for cg in self.cgroups() {
            let rel = cg.1.clone();
            if !allowed.contains(&rel) {
                out.push(format!("cgroup: {}", cg.0.display()));
            }
        }
        out
    }

    /// Live processes of this world: rooted in or running from the work dir, naming it
    /// or the marker on their command line, or in one of its cgroups.
    fn processes(&self) -> Vec<(i32, String)> {
        let work = self.work.to_string_lossy().into_owned();
        let me = std::process::id() as i32;
        let mut out = vec![];
        let Ok(rd) = fs::read_dir("/proc") else {
            return out;
        };
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me || !pid_alive(pid) {
                continue;
            }
            let p = e.path();
            let link_in_work = |name: &str| {
                fs::read_link(p.join(name))
                    .map(|t| t.to_string_lossy().starts_with(&work))
                    .unwrap_or(false)
            };
            let cmdline = fs::read(p.join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let in_cgroup = fs::read_to_string(p.join("cgroup"))
                .map(|c| c.contains(&self.marker))
                .unwrap_or(false);
            if (link_in_work("cwd")
                || link_in_work("root")
                || cmdline.contains(&work)
                || cmdline.contains(&self.marker)
                || in_cgroup)
                && pid_alive(pid)
            {
                out.push((pid, cmdline));
            }
        }
        out
    }

    /// Cgroups whose path contains the marker: (absolute path, path relative to its
    /// hierarchy), deepest first.
    fn cgroups(&self) -> Vec<(PathBuf, String)> {
        let mut out = vec![];
        for h in cgroup_hierarchies() {
            find_cgroups(&h.mount_point, &h.mount_point, &self.marker, 3, &mut out);
        }
        out.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
        out
    }

    /// Removes what is left: kills processes, detaches mounts, removes cgroups.
    fn clean(&self) {
        let mut pids: Vec<i32> = self.processes().into_iter().map(|(p, _)| p).collect();
        for (cg, _) in self.cgroups() {
            // A frozen cgroup would keep SIGKILL pending forever.
            let _ = fs::write(cg.join("freezer.state"), "THAWED");
            let _ = fs::write(cg.join("cgroup.freeze"), "0");
            if let Ok(procs) = fs::read_to_string(cg.join("cgroup.procs")) {
                pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        for pid in &pids {
            // SAFETY: plain kill(2).
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
        for pid in &pids {
            wait_pid_gone(*pid, Duration::from_secs(2));
        }
        let work = self.work.to_string_lossy().into_owned();
        let mut mounts: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&work))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in &mounts {
            if let Ok(c) = std::ffi::CString::new(m.as_bytes()) {
                // SAFETY: umount2 with a NUL-terminated path we own.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        for (cg, _) in self.cgroups() {
            let _ = poll(Duration::from_secs(2), || {
                fs::remove_dir(&cg).is_ok() || !cg.exists()
            });
        }
        for p in self.must_vanish.lock().unwrap().iter() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

fn find_cgroups(
    root: &Path,
    dir: &Path,
    marker: &str,
    depth: usize,
    out: &mut Vec<(PathBuf, String)>,
) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let named = rel.contains(marker);
        if named {
            out.push((p.clone(), rel));
        }
        // Below a marked cgroup everything belongs to the test; elsewhere look a few
        // levels down (e.g. /system.slice/<marker>).
        if named {
            find_cgroups(root, &p, marker, usize::MAX, out);
        } else if depth > 1 {
            find_cgroups(root, &p, marker, depth - 1, out);
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Give the kernel a moment to finish tearing down exited containers.
        let mut leaks = self.leaks();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !leaks.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            leaks = self.leaks();
        }
        self.clean();
        let work = self.work.to_string_lossy().into_owned();
        if mount_points().iter().any(|m| m.starts_with(&work)) {
            if let Some(t) = self.tmp.take() {
                eprintln!("keeping {} (mounts remain)", t.keep().display());
            }
        }
        if leaks.is_empty() {
            return;
        }
        let msg = format!(
            "end-to-end test {} left behind:\n  {}",
            self.marker,
            leaks.join("\n  ")
        );
        if std::thread::panicking() {
            eprintln!("{msg}");
        } else {
            panic!("{msg}");
        }
    }
}

/// A new pseudo-terminal: (master, slave).
pub fn openpty() -> (OwnedFd, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty writes two descriptors into the ints we pass; the optional
    // name, termios and winsize arguments are NULL.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Builds the busybox image (scripts/mkimage.sh) as `DIR/busybox.tar`, named `name`.
pub fn build_image(world: &World, name: &str) -> PathBuf {
    let tar = world.path("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mkimage.sh");
    let o = world.run(Command::new(&script).arg(&tar).arg(name));
    assert!(o.status.success(), "scripts/mkimage.sh\n{}", describe(&o));
    tar
}

/// Is `s` (trimmed) a pseudo-terminal path, /dev/pts/N?
pub fn is_pts(s: &str) -> bool {
    s.trim()
        .strip_prefix("/dev/pts/")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `args` as OsStr, for building commands from mixed strings and paths.
pub fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// Describes an exit status like the common harness.
pub fn status_text(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("code {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => format!("{s:?}"),
    }
}
