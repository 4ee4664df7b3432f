//! [`World`]: one end-to-end test's private world (podman, containerd + ctr, dockerd),
//! and running its clients.
//!
//! A world is a temp directory holding everything the client and the runtime write
//! (storage, state, sockets, logs), a marker string that names its cgroups (and
//! namespaces), and a leak check ([`crate::leaks`]) run when the world is dropped, also
//! when the test failed: no mounts under the directory, no live processes rooted in it,
//! run from it, naming it or in one of its cgroups, no runtime state left, no cgroup left
//! but the parents the clients create and never remove (which the check removes).
//!
//! The runtime under test is `$RUNTIME_BIN` (default: the workspace's youki), as for the
//! other integration tests: `RUNTIME_BIN=/usr/sbin/runc cargo test --test e2e_podman`
//! checks the tests themselves against runc.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::env::runtime_bin;
use crate::leaks::{self, Leaks, TestDir};
use crate::output::describe;
use crate::process::run_captured;

/// How long one client command may take before the test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// PATH inside the busybox containers.
pub const CONTAINER_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    dir: TestDir,
    counter: AtomicUsize,
    /// Cgroup paths (relative to a hierarchy's root) the client creates and never
    /// removes; removed by the check, not reported.
    allowed_cgroups: Mutex<Vec<String>>,
    /// Paths that must be gone at the end (runtime state of each container).
    must_vanish: Mutex<Vec<PathBuf>>,
}

impl World {
    /// A new world; `kind` goes into its temp dir's name. Fails the test unless root.
    pub fn new(kind: &str) -> World {
        let dir = TestDir::new("youki-e2e", kind);
        let (marker, work) = (dir.scope.marker.clone(), dir.scope.work.clone());
        fs::create_dir_all(work.join("io")).unwrap();
        World {
            marker,
            work,
            dir,
            counter: AtomicUsize::new(0),
            allowed_cgroups: Mutex::new(vec![]),
            must_vanish: Mutex::new(vec![]),
        }
    }

    /// A number unique in this world.
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

    /// A cgroup (path relative to a hierarchy's root) that a client creates and never
    /// removes: removed by the leak check, not reported.
    pub fn allow_cgroup(&self, rel: &str) {
        self.allowed_cgroups
            .lock()
            .unwrap()
            .push(rel.trim_matches('/').to_string());
    }

    /// A path that must be gone when the world is dropped (a container's runtime state).
    pub fn must_vanish(&self, p: PathBuf) {
        self.must_vanish.lock().unwrap().push(p);
    }

    /// Runs a client command with stdin from /dev/null and stdout/stderr through files
    /// (a daemon it leaves behind cannot hold a pipe open and hang the test). Fails the
    /// test after [`CLIENT_TIMEOUT`].
    pub fn run(&self, cmd: &mut Command) -> Output {
        self.run_timeout(cmd, CLIENT_TIMEOUT)
    }

    /// [`World::run`] with another timeout.
    pub fn run_timeout(&self, cmd: &mut Command, timeout: Duration) -> Output {
        let out = self.work.join("io").join(format!("{}.out", self.next()));
        run_captured(cmd, &out, timeout)
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

    /// Everything of this world still present on the host, one line each.
    pub fn leaks(&self) -> Vec<String> {
        self.check().lines()
    }

    fn check(&self) -> Leaks {
        let allowed = self.allowed_cgroups.lock().unwrap().clone();
        let state = self.must_vanish.lock().unwrap();
        Leaks {
            state_entries: state
                .iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect(),
            ..self.dir.scope.leaks(&allowed)
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let leaks = leaks::settle(|| self.check());
        // Also when nothing leaked: the allowed cgroups go.
        self.dir.scope.clean();
        for p in self.must_vanish.lock().unwrap().iter() {
            let _ = fs::remove_dir_all(p);
        }
        let what = format!("end-to-end test {}", self.marker);
        self.dir.finish(&what, &leaks);
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
    let script = crate::paths::script("mkimage.sh");
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
