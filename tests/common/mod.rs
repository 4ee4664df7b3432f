//! Shared harness for the root package's integration tests.
//!
//! Every test builds a [`TestEnv`]: its own `--root` state directory, its own
//! work directory (bundles, logs, captured stdio), its own container ids and
//! cgroup names. When the `TestEnv` is dropped (also when the test panicked) it
//! force-deletes every container the test created, through the runtime, and
//! then checks that nothing leaked: mounts under the work directory, cgroups
//! named after the test, processes of the test, entries in the state directory.
//!
//! The runtime under test is `$RUNTIME_BIN`, by default the `youki` binary of
//! this package. To check the tests themselves against runc:
//! `RUNTIME_BIN=/usr/sbin/runc cargo test --test lifecycle`.
//!
//! The tests must run as root; they fail (never silently pass) otherwise.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The capability set containerd and Docker give a container by default.
/// As a mask: CapEff = 00000000a80425fb.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
pub const DEFAULT_CAPS_MASK: &str = "00000000a80425fb";

/// The (smaller) set `runc spec` writes. As a mask: 0000000020000420.
pub const RUNC_SPEC_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
pub const RUNC_SPEC_CAPS_MASK: &str = "0000000020000420";

/// Environment variable put into every container process; the leak checker
/// looks for it in /proc/PID/environ.
pub const MARKER_VAR: &str = "YOUKI_IT_MARKER";

/// How long one runtime command may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

static ENV_COUNTER: AtomicUsize = AtomicUsize::new(0);
static CG_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The runtime binary under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("RUNTIME_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_youki")),
    }
}

/// The static busybox the rootfs is made of.
pub fn busybox_bin() -> PathBuf {
    match std::env::var_os("BUSYBOX_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("/bin/busybox"),
    }
}

/// Fails the test when not running as root: these tests need real
/// namespaces, mounts and cgroups, and must never pass by doing nothing.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the integration tests must run as root (euid is {euid}); \
         run them with `sudo -E cargo test` or `make test` as root"
    );
}

fn busybox_applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let bb = busybox_bin();
        let out = Command::new(&bb)
            .arg("--list")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} --list ({e}); install Debian's busybox-static \
                     (scripts/setup.sh) or set BUSYBOX_BIN",
                    bb.display()
                )
            });
        assert!(out.status.success(), "{} --list failed", bb.display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && l != "busybox" && !l.contains('/'))
            .collect()
    })
}

/// Does a process exist and is it not a zombie? A zombie counts as gone: the
/// VM's pid 1 may never reap orphaned container inits.
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

/// Waits until `pid` is gone (or a zombie). Returns false on timeout.
pub fn wait_pid_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !pid_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    !pid_alive(pid)
}

/// Polls `f` until it returns true or the timeout passes.
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

pub fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Human-readable description of a command's result, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        describe_status(&o.status),
        stdout_of(o),
        stderr_of(o)
    )
}

pub fn describe_status(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{s:?}"),
    }
}

/// Asserts the command succeeded, printing its output otherwise.
#[track_caller]
pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed\n{}", describe(o));
}

/// Asserts the command failed with a non-zero exit code and said something on
/// stderr.
#[track_caller]
pub fn assert_failed_with_message(o: &Output, what: &str) {
    assert!(
        !o.status.success() && o.status.code().is_some(),
        "{what} should exit with a non-zero code\n{}",
        describe(o)
    );
    assert!(
        !stderr_of(o).trim().is_empty(),
        "{what} failed but printed no message on stderr\n{}",
        describe(o)
    );
}

// ---------------------------------------------------------------------------
// cgroups on the host

/// A cgroup hierarchy mounted on the host.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// v1 controllers (and `name=...`), empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// cgroup hierarchies of the host, from /proc/self/mountinfo.
pub fn cgroup_hierarchies() -> Vec<Hierarchy> {
    let mi = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let mut out = Vec::new();
    for line in mi.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mountinfo(pre[4]));
        match post[0] {
            "cgroup2" => out.push(Hierarchy {
                mount_point,
                controllers: vec![],
                v2: true,
            }),
            "cgroup" => {
                let controllers = post[2]
                    .split(',')
                    .filter(|o| {
                        !matches!(
                            *o,
                            "rw" | "ro" | "nosuid" | "nodev" | "noexec" | "relatime" | "xattr"
                        ) && !o.starts_with("release_agent")
                    })
                    .map(str::to_string)
                    .collect();
                out.push(Hierarchy {
                    mount_point,
                    controllers,
                    v2: false,
                })
            }
            _ => {}
        }
    }
    out
}

/// A config with no namespace at all (the caller's are shared), no masked or read-only
/// paths, no hostname and only /proc mounted: what runc runs in the caller's namespaces.
pub fn config_without_namespaces(marker: &str, cgroups_path: &str, rootfs: &Path) -> Value {
    let mut spec = default_config(marker, cgroups_path);
    spec["root"] = json!({"path": rootfs, "readonly": false});
    spec["linux"]["namespaces"] = json!([]);
    spec["linux"]["maskedPaths"] = json!([]);
    spec["linux"]["readonlyPaths"] = json!([]);
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }
    spec["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    spec
}

/// The test process's own namespace of kind `n` (`mnt`, `net`, ...), as readlink shows it.
pub fn own_namespace(n: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{n}"))
        .expect("own namespace")
        .to_string_lossy()
        .into_owned()
}

/// Is the host a pure cgroup v2 host (a single cgroup2 mount at /sys/fs/cgroup)?
pub fn is_cgroup_v2_only() -> bool {
    let h = cgroup_hierarchies();
    h.iter().all(|h| h.v2) && !h.is_empty()
}

/// Path of a cgroup's file on the host, e.g.
/// `host_cgroup_file("/youki-it-1-2-3", "memory", "memory.limit_in_bytes", "memory.max")`.
pub fn host_cgroup_file(
    cgroups_path: &str,
    controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    let hs = cgroup_hierarchies();
    if let Some(h) = hs
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller))
    {
        return h.mount_point.join(rel).join(v1_file);
    }
    let h = hs
        .iter()
        .find(|h| h.v2)
        .unwrap_or_else(|| panic!("no cgroup hierarchy with controller {controller}"));
    h.mount_point.join(rel).join(v2_file)
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).ok();
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points of this (the test's) mount namespace.
pub fn mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mountinfo))
        .collect()
}

// ---------------------------------------------------------------------------
// Bundles

/// An OCI bundle: `rootfs/` made of busybox and a `config.json` that starts as
/// `runc spec`'s default (terminal off) and that tests mutate through
/// [`Bundle::config`] before creating the container.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
    /// `linux.cgroupsPath`, unique for this bundle: `/youki-it-<pid>-<env>-<n>`.
    pub cgroups_path: String,
}

impl Bundle {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Sets `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Sets `process.args` to `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Appends `KEY=VALUE` to `process.env`.
    pub fn add_env(&mut self, kv: &str) -> &mut Self {
        self.config["process"]["env"]
            .as_array_mut()
            .expect("process.env is an array")
            .push(json!(kv));
        self
    }

    pub fn process(&mut self) -> &mut Value {
        &mut self.config["process"]
    }

    pub fn linux(&mut self) -> &mut Value {
        &mut self.config["linux"]
    }

    /// Sets `linux.resources.KEY = value` (e.g. "memory", {"limit": ...}).
    pub fn resource(&mut self, key: &str, value: Value) -> &mut Self {
        self.config["linux"]["resources"][key] = value;
        self
    }

    /// Replaces the namespace entry of `ns_type`, joining `path` if given.
    pub fn namespace(&mut self, ns_type: &str, path: Option<&str>) -> &mut Self {
        let nss = self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces is an array");
        nss.retain(|n| n["type"] != ns_type);
        let mut n = json!({ "type": ns_type });
        if let Some(p) = path {
            n["path"] = json!(p);
        }
        nss.push(n);
        self
    }

    /// Adds a hook: `kind` is createRuntime, createContainer, startContainer,
    /// poststart, poststop or prestart.
    pub fn hook(&mut self, kind: &str, hook: Value) -> &mut Self {
        if !self.config["hooks"].is_object() {
            self.config["hooks"] = json!({});
        }
        if !self.config["hooks"][kind].is_array() {
            self.config["hooks"][kind] = json!([]);
        }
        self.config["hooks"][kind]
            .as_array_mut()
            .unwrap()
            .push(hook);
        self
    }

    /// Adds a bind mount of a host directory.
    pub fn bind_mount(&mut self, source: &Path, destination: &str, read_only: bool) -> &mut Self {
        let mut opts = vec!["rbind", "nosuid", "nodev"];
        if read_only {
            opts.push("ro");
        }
        self.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": opts,
        }));
        self
    }

    /// Writes config.json.
    pub fn save(&self) {
        let s = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.config_path(), s).expect("write config.json");
    }
}

/// `runc spec`'s default config, with terminal off, the default capability set
/// of containerd/Docker, and the given marker in the environment. As `runc spec` on a
/// pure cgroup v2 host, the namespaces include a cgroup namespace there (containerd and
/// Docker also default to a private one on v2): the container's /sys/fs/cgroup and
/// /proc/self/cgroup are then its own cgroup.
pub fn default_config(marker: &str, cgroups_path: &str) -> Value {
    let mut config = runc_spec_config(marker, cgroups_path);
    if is_cgroup_v2_only() {
        config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces")
            .push(json!({ "type": "cgroup" }));
    }
    config
}

fn runc_spec_config(marker: &str, cgroups_path: &str) -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
                format!("{MARKER_VAR}={marker}"),
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "rlimits": [
                { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }
            ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {
                "devices": [ { "allow": false, "access": "rwm" } ]
            },
            "namespaces": [
                { "type": "pid" },
                { "type": "network" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// Builds a busybox root filesystem in `rootfs`.
pub fn build_rootfs(rootfs: &Path) {
    for d in [
        "bin",
        "etc",
        "tmp",
        "proc",
        "dev",
        "sys",
        "root",
        "home/user",
        "var",
        "run",
    ] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir in rootfs");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(rootfs.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    // SAFETY: chown of a path we just created; the CString outlives the call.
    let home =
        std::ffi::CString::new(rootfs.join("home/user").as_os_str().as_encoded_bytes()).unwrap();
    unsafe {
        libc::chown(home.as_ptr(), 1000, 1000);
    }

    let bb = busybox_bin();
    fs::copy(&bb, rootfs.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("copy {} into the rootfs: {e}", bb.display()));
    fs::set_permissions(
        rootfs.join("bin/busybox"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for applet in busybox_applets() {
        let _ = symlink("busybox", rootfs.join("bin").join(applet));
    }

    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         user:x:1000:1000:user:/home/user:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\n\
         user:x:1000:\n\
         extra:x:1001:user\n\
         nogroup:x:65534:\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/hostname"), "busybox\n").unwrap();
}

// ---------------------------------------------------------------------------
// The per-test environment

/// One test's isolated world: state root, work dir, ids, cgroups; checks for
/// leaks when dropped.
pub struct TestEnv {
    pub name: String,
    /// Unique per TestEnv: `youki-it-<pid>-<n>`. Every cgroup name of this
    /// test starts with `<marker>-`, every container process has
    /// `YOUKI_IT_MARKER=<marker>` in its environment.
    pub marker: String,
    pub runtime: PathBuf,
    /// The `--root` given to every runtime call.
    pub state_root: PathBuf,
    /// Work directory (bundles, io capture, logs). The state root lives here
    /// too, so that a path escaping it by `..` stays inside the work dir.
    pub work: PathBuf,
    tmp: Option<tempfile::TempDir>,
    counter: AtomicUsize,
    containers: Mutex<Vec<String>>,
    stdout_files: Mutex<HashMap<String, PathBuf>>,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        require_root();
        let runtime = runtime_bin();
        assert!(
            runtime.exists(),
            "runtime binary {} does not exist (RUNTIME_BIN)",
            runtime.display()
        );
        assert!(
            busybox_bin().exists(),
            "{} does not exist: install Debian's busybox-static (scripts/setup.sh)",
            busybox_bin().display()
        );
        let n = ENV_COUNTER.fetch_add(1, Ordering::SeqCst);
        let marker = format!("youki-it-{}-{}", std::process::id(), n);
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{marker}-{name}-"))
            .tempdir()
            .expect("create the test's temp dir");
        let work = tmp.path().canonicalize().unwrap();
        let state_root = work.join("state");
        fs::create_dir_all(&state_root).unwrap();
        fs::create_dir_all(work.join("io")).unwrap();
        TestEnv {
            name: name.to_string(),
            marker,
            runtime,
            state_root,
            work,
            tmp: Some(tmp),
            counter: AtomicUsize::new(0),
            containers: Mutex::new(Vec::new()),
            stdout_files: Mutex::new(HashMap::new()),
        }
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    /// A fresh container id, unique within this test (the state root is the
    /// test's own anyway).
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.next())
    }

    /// A fresh busybox bundle with a unique cgroupsPath.
    pub fn bundle(&self) -> Bundle {
        let dir = self.work.join(format!("bundle-{}", self.next()));
        fs::create_dir_all(&dir).unwrap();
        build_rootfs(&dir.join("rootfs"));
        let cg = CG_COUNTER.fetch_add(1, Ordering::SeqCst);
        let cgroups_path = format!("/{}-{}", self.marker, cg);
        let config = default_config(&self.marker, &cgroups_path);
        let b = Bundle {
            dir,
            config,
            cgroups_path,
        };
        b.save();
        b
    }

    /// A fresh path in the work directory (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.join(format!("{}-{}", name, self.next()))
    }

    /// Remember `id` so that the guard force-deletes it at the end.
    pub fn track(&self, id: &str) {
        let mut c = self.containers.lock().unwrap();
        if !c.iter().any(|x| x == id) {
            c.push(id.to_string());
        }
    }

    /// Runs `RUNTIME_BIN --root STATE_ROOT ARGS...` with stdin from /dev/null
    /// and stdout/stderr captured through files (so that a detached container
    /// holding them open cannot hang the test). Fails the test after
    /// [`CMD_TIMEOUT`].
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.run_global(&[] as &[&str], args)
    }

    /// Like [`TestEnv::run`] with extra global flags before the subcommand
    /// (e.g. `--log F --log-format json`).
    pub fn run_global<G: AsRef<OsStr>, S: AsRef<OsStr>>(&self, global: &[G], args: &[S]) -> Output {
        self.run_io(global, args).0
    }

    fn run_io<G: AsRef<OsStr>, S: AsRef<OsStr>>(
        &self,
        global: &[G],
        args: &[S],
    ) -> (Output, PathBuf) {
        let n = self.next();
        let out_path = self.work.join("io").join(format!("{n}.out"));
        let err_path = self.work.join("io").join(format!("{n}.err"));
        let out = fs::File::create(&out_path).unwrap();
        let err = fs::File::create(&err_path).unwrap();
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(&self.state_root);
        cmd.args(global).args(args);
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.runtime.display()));
        let status = wait_child(&mut child, CMD_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "{shown} did not finish within {CMD_TIMEOUT:?}\nstderr: {}",
                fs::read_to_string(&err_path).unwrap_or_default()
            )
        });
        let output = Output {
            status,
            stdout: fs::read(&out_path).unwrap_or_default(),
            stderr: fs::read(&err_path).unwrap_or_default(),
        };
        (output, out_path)
    }

    /// `create --bundle DIR ID` (writes config.json first). Does not assert.
    pub fn try_create(&self, id: &str, bundle: &Bundle) -> Output {
        self.try_create_with(id, bundle, &[])
    }

    /// `create --bundle DIR EXTRA... ID`. Does not assert.
    pub fn try_create_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        bundle.save();
        self.track(id);
        let mut args: Vec<&OsStr> = vec![OsStr::new("create"), OsStr::new("--bundle")];
        args.push(bundle.dir.as_os_str());
        args.extend(extra.iter().map(OsStr::new));
        args.push(OsStr::new(id));
        let (o, out_path) = self.run_io(&[] as &[&str], &args);
        self.stdout_files
            .lock()
            .unwrap()
            .insert(id.to_string(), out_path);
        o
    }

    /// `create`, asserting success.
    #[track_caller]
    pub fn create(&self, id: &str, bundle: &Bundle) {
        let o = self.try_create(id, bundle);
        assert_ok(&o, &format!("create {id}"));
    }

    /// What the container wrote to its stdout so far (the container inherits
    /// the stdout of `create`).
    pub fn container_stdout(&self, id: &str) -> String {
        let p = self.stdout_files.lock().unwrap().get(id).cloned();
        p.map(|p| fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    /// `start ID`, asserting success.
    #[track_caller]
    pub fn start(&self, id: &str) {
        let o = self.run(&["start", id]);
        assert_ok(&o, &format!("start {id}"));
    }

    /// `kill ID SIGNAL`. Does not assert.
    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.run(&["kill", id, signal])
    }

    /// `delete ID`. Does not assert.
    pub fn delete(&self, id: &str) -> Output {
        self.run(&["delete", id])
    }

    /// `delete --force ID`. Does not assert.
    pub fn delete_force(&self, id: &str) -> Output {
        self.run(&["delete", "--force", id])
    }

    /// `state ID`, parsed. Panics if the command fails or prints no JSON.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let o = self.run(&["state", id]);
        assert_ok(&o, &format!("state {id}"));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("state {id}: stdout is not JSON ({e})\n{}", describe(&o)))
    }

    /// `state ID`'s status field.
    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The container's init pid as `state` reports it.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().unwrap_or(0) as i32
    }

    /// Polls `state` until the status is `status`; fails the test on timeout.
    #[track_caller]
    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(id);
            if s == status {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "container {id}: status is still {s:?} after {timeout:?}, wanted {status:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `run --bundle DIR ID`: runs the container in the foreground and returns
    /// the runtime's output (= the container's stdio) and exit status.
    pub fn run_container(&self, id: &str, bundle: &Bundle) -> Output {
        bundle.save();
        self.track(id);
        let mut args: Vec<&OsStr> = vec![OsStr::new("run"), OsStr::new("--bundle")];
        args.push(bundle.dir.as_os_str());
        args.push(OsStr::new(id));
        self.run(&args)
    }

    /// Runs `sh -c SCRIPT` in a fresh default container and returns its output.
    pub fn sh(&self, script: &str) -> Output {
        let mut b = self.bundle();
        b.sh(script);
        let id = self.id();
        self.run_container(&id, &b)
    }

    /// Entries of the state root.
    pub fn state_entries(&self) -> Vec<String> {
        fs::read_dir(&self.state_root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything of this test still present on the host.
    pub fn leaks(&self) -> Leaks {
        let work = self.work.to_string_lossy().into_owned();
        let cg_prefix = format!("{}-", self.marker);
        let env_marker = format!("{MARKER_VAR}={}", self.marker);
        let mut l = Leaks::default();

        for mp in mount_points() {
            if mp.contains(&work) {
                l.mounts.push(mp);
            }
        }

        for h in cgroup_hierarchies() {
            find_cgroups(&h.mount_point, &cg_prefix, 2, &mut l.cgroups);
        }

        let me = std::process::id() as i32;
        if let Ok(rd) = fs::read_dir("/proc") {
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
                let file_has = |name: &str, needle: &str| {
                    fs::read(p.join(name))
                        .map(|b| {
                            b.split(|c| *c == 0)
                                .any(|s| String::from_utf8_lossy(s).contains(needle))
                        })
                        .unwrap_or(false)
                };
                let in_our_cgroup = fs::read_to_string(p.join("cgroup"))
                    .map(|c| c.contains(&cg_prefix))
                    .unwrap_or(false);
                if link_in_work("cwd")
                    || link_in_work("root")
                    || in_our_cgroup
                    || file_has("cmdline", &self.marker)
                    || file_has("environ", &env_marker)
                {
                    // Re-check: it may have exited in between.
                    if pid_alive(pid) {
                        let cmd = fs::read(p.join("cmdline"))
                            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                            .unwrap_or_default();
                        l.processes.push((pid, cmd));
                    }
                }
            }
        }

        l.state_entries = self.state_entries();
        l
    }

    /// Force-deletes every container of this test, then returns what leaked
    /// (after giving the kernel a moment to tear things down).
    pub fn cleanup_and_check(&self) -> Leaks {
        let ids: Vec<String> = self.containers.lock().unwrap().clone();
        for id in &ids {
            // Also for ids already deleted: cheap, and independent of how
            // the runtime lays out its state dir.
            let _ = self.delete_force(id);
        }
        let mut leaks = self.leaks();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !leaks.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            leaks = self.leaks();
        }
        leaks
    }
}

fn find_cgroups(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let p = e.path();
        if e.file_name().to_string_lossy().contains(prefix) {
            out.push(p);
        } else if depth > 1 {
            find_cgroups(&p, prefix, depth - 1, out);
        }
    }
}

/// What a test left behind.
#[derive(Debug, Default)]
pub struct Leaks {
    pub mounts: Vec<String>,
    pub cgroups: Vec<PathBuf>,
    pub processes: Vec<(i32, String)>,
    pub state_entries: Vec<String>,
}

impl Leaks {
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
            && self.cgroups.is_empty()
            && self.processes.is_empty()
            && self.state_entries.is_empty()
    }

    /// Removes what leaked, so that one broken test does not pollute the
    /// machine: kill processes, detach mounts, remove cgroups (deepest first).
    fn clean(&self, state_root: &Path) {
        let mut pids: Vec<i32> = self.processes.iter().map(|(p, _)| *p).collect();
        for cg in &self.cgroups {
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
        let mut mounts = self.mounts.clone();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in &mounts {
            if let Ok(c) = std::ffi::CString::new(m.as_bytes()) {
                // SAFETY: umount2 on a path string we own.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        for cg in &self.cgroups {
            remove_cgroup_tree(cg);
        }
        for e in &self.state_entries {
            let _ = fs::remove_dir_all(state_root.join(e));
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = poll(Duration::from_secs(2), || {
        fs::remove_dir(dir).is_ok() || !dir.exists()
    });
}

impl std::fmt::Display for Leaks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for m in &self.mounts {
            writeln!(f, "  mount: {m}")?;
        }
        for c in &self.cgroups {
            writeln!(f, "  cgroup: {}", c.display())?;
        }
        for (pid, cmd) in &self.processes {
            writeln!(f, "  process {pid}: {cmd}")?;
        }
        for s in &self.state_entries {
            writeln!(f, "  state dir entry: {s}")?;
        }
        Ok(())
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let leaks = self.cleanup_and_check();
        if leaks.is_empty() {
            return;
        }
        let msg = format!("test {} leaked:\n{leaks}", self.name);
        leaks.clean(&self.state_root);
        if !leaks.mounts.is_empty() {
            // Do not remove_dir_all through a mount we may have failed to
            // detach: keep the work dir for inspection.
            let still_mounted = mount_points()
                .iter()
                .any(|m| m.contains(&*self.work.to_string_lossy()));
            if still_mounted {
                if let Some(t) = self.tmp.take() {
                    let kept = t.keep();
                    eprintln!("keeping {} (mounts remain)", kept.display());
                }
            }
        }
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "{msg}");
        } else {
            panic!("{msg}");
        }
    }
}

/// `systemctl show UNIT -p NAME --value` (a host booted with systemd).
#[track_caller]
pub fn systemctl_show(unit: &str, property: &str) -> String {
    let o = Command::new("systemctl")
        .args(["show", unit, "-p", property, "--value"])
        .output()
        .expect("run systemctl");
    assert_ok(&o, &format!("systemctl show {unit} -p {property}"));
    stdout_of(&o).trim().to_string()
}

/// The systemd units matching `pattern`, loaded in any state.
#[track_caller]
pub fn systemd_units(pattern: &str) -> Vec<String> {
    let o = Command::new("systemctl")
        .args(["list-units", "--all", "--plain", "--no-legend", pattern])
        .output()
        .expect("run systemctl");
    assert_ok(&o, "systemctl list-units");
    stdout_of(&o)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// Waits for a child with a deadline; kills and reaps it on timeout (returns None).
pub fn wait_child(child: &mut std::process::Child, timeout: Duration) -> Option<ExitStatus> {
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

/// The CRIU binary the tests use, or why there is none.
pub fn criu() -> Result<PathBuf, String> {
    let path = std::env::var_os("CRIU_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/youki-shim/criu-sid/criu"));
    let check = Command::new(&path).arg("check").output();
    match check {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("Looks good") => Ok(path),
        Ok(o) => Err(format!(
            "{} check does not say 'Looks good': {}{}",
            path.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!(
            "{}: {e} (scripts/fetch-criu.sh, or set CRIU_BIN)",
            path.display()
        )),
    }
}

/// `Some(criu)`, or prints why the test checks nothing.
pub fn criu_or_skip(test: &str) -> Option<PathBuf> {
    match criu() {
        Ok(p) => Some(p),
        Err(why) => {
            eprintln!("{test}: skipped: no working CRIU: {why}");
            None
        }
    }
}

/// A counter for checkpoint tests: a token drawn once at start and a number that grows
/// every tenth of a second, both written to /count (atomically, by rename). A restored
/// counter keeps its token; one started afresh draws another.
pub const TOKEN_COUNTER: &str = "t=$(cat /proc/sys/kernel/random/uuid); i=0; \
    while true; do i=$((i+1)); echo \"$t $i\" > /count.new; mv /count.new /count; sleep 0.1; done";

/// (token, number) of a [`TOKEN_COUNTER`]'s /count.
pub fn token_count(text: &str) -> Option<(String, u64)> {
    let (token, n) = text.trim().split_once(' ')?;
    Some((token.to_string(), n.parse().ok()?))
}
