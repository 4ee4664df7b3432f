//! Rootless containers with the CLI, as runc runs them: the runtime run by an unprivileged
//! user (nobody, through setpriv) on a bundle from its own `spec --rootless`, with
//! `$XDG_RUNTIME_DIR` set and no `--root`. The state goes to `$XDG_RUNTIME_DIR/<runtime>`;
//! the container runs without a cgroup when none may be created and neither a cgroupsPath
//! nor a limit is asked for, a limit or a cgroupsPath that cannot be honoured is refused,
//! multi-range id mappings go through newuidmap/newgidmap (Debian's uidmap) with the ranges
//! /etc/subuid and /etc/subgid give, a cgroup delegated to the user is used with its
//! limits, and rootless podman drives the runtime.
//!
//! Each test passes with runc 1.1.5 and 1.3.6 as RUNTIME_BIN too. runc departs from our
//! output in one place only: its refusal of a limit names the first controller
//! (`cannot set pids limit`), ours every field asked for (`linux.resources.pids`).

mod common;

use std::cell::RefCell;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use common::*;

/// The unprivileged user (and group) the runtime runs as: nobody/nogroup.
const NOBODY: u32 = 65534;

/// First host id of the subordinate ranges the multi-range test gives nobody: far above
/// any id in use (Debian's useradd hands out ranges from 100000).
const SUB_BASE: u32 = 1_879_048_192;

/// Ids in that range.
const SUB_COUNT: u32 = 65536;

/// The runtime under test run as nobody, with its state in a private `$XDG_RUNTIME_DIR`;
/// force-deletes the containers it created when dropped (before `TestEnv` checks leaks).
struct Rootless<'a> {
    env: &'a TestEnv,
    /// `$XDG_RUNTIME_DIR`: owned by nobody, mode 0700.
    xdg: PathBuf,
    ids: RefCell<Vec<String>>,
    /// `cgroup.procs` files the runtime is moved into before it becomes nobody (see
    /// [`Delegated`]), space-separated; empty: it stays in the test's cgroups.
    cgroup_procs: RefCell<String>,
}

impl<'a> Rootless<'a> {
    fn new(env: &'a TestEnv) -> Self {
        // tempfile makes the work directory 0700: nobody must reach its bundles.
        fs::set_permissions(&env.work, fs::Permissions::from_mode(0o755)).expect("chmod work");
        let xdg = env.work.join("xdg");
        fs::create_dir(&xdg).expect("mkdir xdg");
        chown(&xdg, NOBODY, NOBODY);
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).expect("chmod xdg");
        Self {
            env,
            xdg,
            ids: RefCell::new(Vec::new()),
            cgroup_procs: RefCell::new(String::new()),
        }
    }

    /// Runs the runtime as nobody with `args`, in `dir`.
    fn run_in<S: AsRef<OsStr>>(&self, dir: &Path, args: &[S]) -> Output {
        self.as_nobody(self.env.runtime.as_os_str(), args, &[], dir)
    }

    /// Runs `program` as nobody with `args` and a clean environment (PATH, HOME,
    /// XDG_RUNTIME_DIR, then `envs`), in `dir`; stdout and stderr through files, so that a
    /// detached container holding them cannot hang the test.
    fn as_nobody<S: AsRef<OsStr>>(
        &self,
        program: &OsStr,
        args: &[S],
        envs: &[String],
        dir: &Path,
    ) -> Output {
        let io = self.env.path("io");
        let (out_path, err_path) = (io.with_extension("out"), io.with_extension("err"));
        // A shell, still root, joins the cgroups first, then becomes setpriv.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"for f in $RL_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; exec "$@""#)
            .arg("sh")
            .env("RL_CGROUP_PROCS", &*self.cgroup_procs.borrow())
            .arg("setpriv")
            .args([
                "--reuid",
                &NOBODY.to_string(),
                "--regid",
                &NOBODY.to_string(),
            ])
            .args(["--clear-groups", "env", "-i"])
            .arg(format!(
                "PATH={}",
                std::env::var("PATH").unwrap_or_default()
            ))
            .arg(format!("HOME={}", self.env.work.display()))
            .arg(format!("XDG_RUNTIME_DIR={}", self.xdg.display()))
            .args(envs)
            .arg(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).expect("stdout file"))
            .stderr(fs::File::create(&err_path).expect("stderr file"));
        let shown = format!("{cmd:?}");
        let mut child = cmd.spawn().expect("spawn sh");
        let status = wait_child(&mut child, CMD_TIMEOUT)
            .unwrap_or_else(|| panic!("{shown} did not finish within {CMD_TIMEOUT:?}"));
        Output {
            status,
            stdout: fs::read(&out_path).unwrap_or_default(),
            stderr: fs::read(&err_path).unwrap_or_default(),
        }
    }

    fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.run_in(&self.env.work, args)
    }

    /// A busybox bundle owned by nobody whose config.json is the runtime's own
    /// `spec --rootless` (as nobody), terminal off, the test's marker in the environment,
    /// then changed by `edit`.
    fn bundle(&self, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let b = self.env.bundle();
        fs::remove_file(b.config_path()).expect("remove the default config.json");
        chown(&b.dir, NOBODY, NOBODY);
        assert_ok(
            &self.run_in(&b.dir, &["spec", "--rootless"]),
            "spec --rootless",
        );
        let text = fs::read(b.config_path()).expect("read config.json");
        let mut config: Value = serde_json::from_slice(&text).expect("config.json");
        assert!(
            config["linux"]["cgroupsPath"].is_null() && config["linux"]["resources"].is_null(),
            "spec --rootless names no cgroup and no limit: {config}"
        );
        config["process"]["terminal"] = json!(false);
        config["process"]["env"]
            .as_array_mut()
            .expect("process.env")
            .push(json!(format!("{MARKER_VAR}={}", self.env.marker)));
        edit(&mut config);
        fs::write(b.config_path(), config.to_string()).expect("write config.json");
        b.dir
    }

    /// A fresh container id, force-deleted (as nobody) when `self` is dropped.
    fn id(&self) -> String {
        let id = self.env.id();
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// `$XDG_RUNTIME_DIR/<runtime>`: the one directory there named after a runtime (podman
    /// keeps its own beside it).
    fn state_root(&self) -> PathBuf {
        let roots: Vec<PathBuf> = ["youki", "runc"]
            .iter()
            .map(|n| self.xdg.join(n))
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(
            roots.len(),
            1,
            "one state root in $XDG_RUNTIME_DIR: {roots:?}"
        );
        roots[0].clone()
    }

    /// The container ids in the state root.
    fn state_entries(&self) -> Vec<String> {
        fs::read_dir(self.state_root())
            .expect("read the state root")
            .map(|e| e.expect("dir entry").file_name().to_string_lossy().into())
            .collect()
    }

    fn status(&self, id: &str) -> String {
        let o = self.run(&["state", id]);
        assert_ok(&o, "state");
        let v: Value = serde_json::from_slice(&o.stdout).expect("state JSON");
        v["status"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for Rootless<'_> {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.run(&["delete", "--force", id]);
        }
    }
}

/// The words of a command's stdout.
fn stdout_words(o: &Output) -> Vec<String> {
    stdout_of(o)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// Directories named `id` in any cgroup hierarchy, up to a few levels deep (where runc's
/// default, the caller's cgroup plus the id, or ours, /youki/<id>, would put it).
fn cgroups_named(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name() == id {
                out.push(e.path());
            } else if depth > 1 {
                walk(&e.path(), id, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    for h in cgroup_hierarchies() {
        walk(&h.mount_point, id, 4, &mut out);
    }
    out
}

/// Appends a line to a file and takes exactly that line out again when dropped.
struct AddedLine {
    path: &'static str,
    line: String,
}

impl AddedLine {
    fn add(path: &'static str, line: String) -> Self {
        let mut text = fs::read_to_string(path).unwrap_or_default();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        text.push('\n');
        fs::write(path, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
        Self { path, line }
    }
}

impl Drop for AddedLine {
    fn drop(&mut self) {
        let Ok(text) = fs::read_to_string(self.path) else {
            return;
        };
        let mut lines: Vec<&str> = text.lines().collect();
        if let Some(i) = lines.iter().position(|l| *l == self.line) {
            lines.remove(i);
        }
        let mut rest = lines.join("\n");
        if !rest.is_empty() {
            rest.push('\n');
        }
        let _ = fs::write(self.path, rest);
    }
}

/// A cgroup delegated to nobody in every hierarchy, as systemd delegates a subtree to a
/// user's session: `/<marker>-deleg` and everything in it owned by nobody, with `runner`
/// below it, where the runtime is started (so that moving the container's processes stays
/// within the subtree, which cgroup v2 requires of an unprivileged writer). Removed when
/// dropped.
struct Delegated {
    name: String,
    dirs: Vec<PathBuf>,
}

impl Delegated {
    fn new(rl: &Rootless<'_>) -> Self {
        let name = format!("{}-deleg", rl.env.marker);
        let mut dirs = Vec::new();
        let mut procs = Vec::new();
        for h in cgroup_hierarchies() {
            let dir = h.mount_point.join(&name);
            let runner = dir.join("runner");
            fs::create_dir_all(&runner)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", runner.display()));
            dirs.push(dir.clone());
            if h.controllers.iter().any(|c| c == "cpuset") {
                // A v1 cpuset cgroup takes no task until it has cpus and mems.
                for (parent, child) in [(&h.mount_point, &dir), (&dir, &runner)] {
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        let v = fs::read_to_string(parent.join(f)).expect("read cpuset");
                        fs::write(child.join(f), v.trim()).expect("write cpuset");
                    }
                }
            }
            for d in [&dir, &runner] {
                chown(d, NOBODY, NOBODY);
                for f in fs::read_dir(d).expect("read cgroup").flatten() {
                    if f.file_type().is_ok_and(|t| t.is_file()) {
                        chown(&f.path(), NOBODY, NOBODY);
                    }
                }
            }
            procs.push(runner.join("cgroup.procs").display().to_string());
        }
        *rl.cgroup_procs.borrow_mut() = procs.join(" ");
        Self { name, dirs }
    }

    /// The delegated cgroup's path, as a cgroupsPath.
    fn path(&self) -> String {
        format!("/{}", self.name)
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for dir in &self.dirs {
            for d in [dir.join("runner"), dir.clone()] {
                let _ = poll(Duration::from_secs(2), || {
                    fs::remove_dir(&d).is_ok() || !d.exists()
                });
            }
        }
    }
}

/// nobody's subordinate id range in /etc/subuid and /etc/subgid while any `SubIds` lives:
/// the tests of this file run in parallel threads, so the lines are added by the first and
/// taken out by the last.
struct SubIds;

/// How many `SubIds` live, and the lines they added.
static SUBIDS: Mutex<(usize, Vec<AddedLine>)> = Mutex::new((0, Vec::new()));

impl SubIds {
    fn add() -> Self {
        let mut held = SUBIDS.lock().unwrap_or_else(|p| p.into_inner());
        if held.0 == 0 {
            let range = format!("{NOBODY}:{SUB_BASE}:{SUB_COUNT}");
            held.1 = vec![
                AddedLine::add("/etc/subuid", range.clone()),
                AddedLine::add("/etc/subgid", range),
            ];
        }
        held.0 += 1;
        SubIds
    }
}

impl Drop for SubIds {
    fn drop(&mut self) {
        let mut held = SUBIDS.lock().unwrap_or_else(|p| p.into_inner());
        held.0 -= 1;
        if held.0 == 0 {
            held.1.clear();
        }
    }
}

/// An unprivileged user's container through its life: run detached, state (in
/// `$XDG_RUNTIME_DIR`, not /run), exec (root in the container is nobody on the host, with
/// the one-id mapping of `spec --rootless`; /dev/null usable), kill, delete; nothing left.
#[test]
fn run_exec_kill_delete_as_an_unprivileged_user() {
    let env = TestEnv::new("rl-life");
    let rl = Rootless::new(&env);
    let bundle = rl.bundle(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let id = rl.id();
    let o = rl.run(&[
        "run",
        "--detach",
        "--bundle",
        bundle.to_str().expect("utf-8"),
        &id,
    ]);
    assert_ok(&o, "run --detach as nobody");
    assert_eq!(rl.status(&id), "running");
    assert_eq!(
        rl.state_entries(),
        std::slice::from_ref(&id),
        "state under XDG_RUNTIME_DIR"
    );
    for root in ["/run/youki", "/run/runc"] {
        assert!(!Path::new(root).join(&id).exists(), "no state in {root}");
    }

    let o = rl.run(&["state", &id]);
    let pid = serde_json::from_slice::<Value>(&o.stdout).expect("state JSON")["pid"]
        .as_i64()
        .expect("pid");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("init's status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some("65534"),
        "container root is nobody on the host: {uid_line}"
    );

    let o = rl.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; echo x > /dev/null && echo null-ok",
    ]);
    assert_ok(&o, "exec as nobody");
    let words = stdout_words(&o);
    assert_eq!(
        words,
        ["0", "0", "0", "65534", "1", "0", "65534", "1", "null-ok"],
        "exec's view: {}",
        describe(&o)
    );

    assert_ok(&rl.run(&["kill", &id, "KILL"]), "kill");
    assert!(
        poll(Duration::from_secs(10), || rl.status(&id) == "stopped"),
        "stopped after SIGKILL"
    );
    assert_ok(&rl.run(&["delete", &id]), "delete");
    assert!(rl.state_entries().is_empty(), "state removed");
    assert!(cgroups_named(&id).is_empty(), "{:?}", cgroups_named(&id));
    assert!(!pid_alive(pid as i32), "init gone");
}

/// `run` in the foreground as nobody: the program's output and exit code, and nothing left
/// in the state root afterwards.
#[test]
fn foreground_run_gives_the_exit_code() {
    let env = TestEnv::new("rl-fg");
    let rl = Rootless::new(&env);
    let bundle = rl.bundle(|c| {
        c["process"]["args"] = json!(["sh", "-c", "id -u; cat /proc/self/uid_map; exit 3"])
    });
    let id = rl.id();
    let o = rl.run(&["run", "--bundle", bundle.to_str().expect("utf-8"), &id]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let words = stdout_words(&o);
    assert_eq!(words, ["0", "0", "65534", "1"], "{}", describe(&o));
    assert!(
        rl.state_entries().is_empty(),
        "nothing left in the state root"
    );
}

/// A limit asked for without a cgroup the user may create: a clear error (naming the limit
/// and the cgroup), no container, no cgroup, nothing in the state root.
#[test]
fn a_limit_that_cannot_be_honoured_is_refused() {
    let env = TestEnv::new("rl-limit");
    let rl = Rootless::new(&env);
    let bundle = rl.bundle(|c| {
        c["process"]["args"] = json!(["true"]);
        c["linux"]["resources"] = json!({ "pids": { "limit": 50 } });
    });
    let id = rl.id();
    let o = rl.run(&["run", "--bundle", bundle.to_str().expect("utf-8"), &id]);
    assert_failed_with_message(&o, "run with a pids limit as nobody");
    let err = stderr_of(&o);
    assert!(
        err.contains("pids") && err.contains("could not") && err.contains("cgroup"),
        "the error names the limit and the cgroup: {err}"
    );
    assert!(
        rl.state_entries().is_empty(),
        "nothing left in the state root"
    );
    assert!(cgroups_named(&id).is_empty(), "{:?}", cgroups_named(&id));
}

/// `--rootless false` as nobody: cgroup permission errors are not ignored (runc's
/// "ignore cgroup permission errors" flag), so the run fails on the cgroup, leaving nothing.
#[test]
fn rootless_false_keeps_cgroup_errors() {
    let env = TestEnv::new("rl-false");
    let rl = Rootless::new(&env);
    let bundle = rl.bundle(|c| c["process"]["args"] = json!(["true"]));
    let id = rl.id();
    let b = bundle.to_str().expect("utf-8");
    let o = rl.run(&["--rootless", "false", "run", "--bundle", b, &id]);
    assert_failed_with_message(&o, "--rootless false run as nobody");
    assert!(
        stderr_of(&o).contains("ermission denied"),
        "the cgroup's EACCES: {}",
        describe(&o)
    );
    assert!(
        rl.state_entries().is_empty(),
        "nothing left in the state root"
    );
    let o = rl.run(&["--rootless", "true", "run", "--bundle", b, &id]);
    assert_ok(&o, "--rootless true run as nobody");
}

/// A mapping of more than the caller's own id (its own for root, a subordinate range for
/// the rest) goes through newuidmap/newgidmap, which check /etc/subuid and /etc/subgid:
/// the container sees both ranges, and a file it gives uid/gid 1000 on a bind-mounted host
/// directory belongs to the range's id 999 on the host.
#[test]
fn multi_range_mappings_use_newuidmap() {
    let env = TestEnv::new("rl-subid");
    let rl = Rootless::new(&env);
    let _subids = SubIds::add();
    let vol = env.path("vol");
    fs::create_dir(&vol).expect("mkdir vol");
    chown(&vol, NOBODY, NOBODY);
    let maps = json!([
        { "containerID": 0, "hostID": NOBODY, "size": 1 },
        { "containerID": 1, "hostID": SUB_BASE, "size": SUB_COUNT }
    ]);
    let vol_text = vol.to_str().expect("utf-8").to_string();
    let bundle = rl.bundle(|c| {
        c["linux"]["uidMappings"] = maps.clone();
        c["linux"]["gidMappings"] = maps.clone();
        c["mounts"].as_array_mut().expect("mounts").push(json!({
            "destination": "/vol", "type": "bind", "source": vol_text,
            "options": ["rbind", "nosuid", "nodev"]
        }));
        // spec --rootless's three capabilities lack CAP_CHOWN.
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_CHOWN"]);
        }
        c["process"]["capabilities"]
            .as_object_mut()
            .expect("capabilities")
            .remove("ambient");
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; touch /vol/f && chown 1000:1000 /vol/f"
        ]);
    });
    // The rootfs is root's: the container's root (nobody) could not make the mount point.
    fs::create_dir(bundle.join("rootfs/vol")).expect("mkdir rootfs/vol");
    let id = rl.id();
    let o = rl.run(&["run", "--bundle", bundle.to_str().expect("utf-8"), &id]);
    assert_ok(&o, "run with two id ranges as nobody");
    let words = stdout_words(&o);
    let one = ["0", "65534", "1", "1", "1879048192", "65536"];
    assert_eq!(words, [one, one].concat(), "{}", describe(&o));
    let meta = fs::metadata(vol.join("f")).expect("the container's file");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (SUB_BASE + 999, SUB_BASE + 999),
        "container id 1000 is the range's 1000th id"
    );
    assert!(
        rl.state_entries().is_empty(),
        "nothing left in the state root"
    );
}

/// Rootless podman (4.3, Debian's) as nobody, with `--runtime` the runtime under test: its
/// storage and configuration in the test's directory, a locally built image, no network.
/// Dropped: removes its containers and ends podman's pause process (which holds its user
/// namespace) by the pid podman recorded.
struct Podman<'a> {
    rl: &'a Rootless<'a>,
    envs: Vec<String>,
}

/// The image scripts/mkimage.sh builds and podman loads.
const IMAGE: &str = "localhost/youki-rootless-busybox:latest";

impl<'a> Podman<'a> {
    fn new(rl: &'a Rootless<'a>) -> Self {
        let work = &rl.env.work;
        let conf = work.join("containers.conf");
        fs::write(
            &conf,
            format!(
                r#"[containers]
# CAP_SYS_RESOURCE is missing here: no limit above the current hard limits.
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
"#,
                events = work.join(".local/events.log").display()
            ),
        )
        .expect("write containers.conf");
        // podman refuses a run root longer than 50 characters: a short name in the work dir.
        let runroot = work.join("rr");
        let storage = work.join("storage.conf");
        fs::write(
            &storage,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                runroot.display(),
                work.join("graph").display()
            ),
        )
        .expect("write storage.conf");
        for d in ["rr", "graph", "ptmp", ".config", ".local"] {
            let dir = work.join(d);
            fs::create_dir(&dir).expect("mkdir for podman");
            chown(&dir, NOBODY, NOBODY);
        }
        let envs = vec![
            "USER=nobody".to_string(),
            format!("CONTAINERS_CONF={}", conf.display()),
            format!("CONTAINERS_STORAGE_CONF={}", storage.display()),
            format!("TMPDIR={}", work.join("ptmp").display()),
            format!("XDG_CONFIG_HOME={}", work.join(".config").display()),
            format!("XDG_DATA_HOME={}", work.join(".local").display()),
        ];
        let p = Self { rl, envs };
        let tar = work.join("busybox.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mkimage.sh");
        let o = Command::new(&script)
            .arg(&tar)
            .arg(IMAGE)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/mkimage.sh");
        assert_ok(&o, "scripts/mkimage.sh");
        fs::set_permissions(&tar, fs::Permissions::from_mode(0o644)).expect("chmod image");
        assert_ok(
            &p.podman(&["load", "-i", tar.to_str().expect("utf-8")]),
            "podman load",
        );
        p
    }

    fn podman(&self, args: &[&str]) -> Output {
        let mut all = vec!["--runtime", self.rl.env.runtime.to_str().expect("utf-8")];
        all.extend_from_slice(args);
        self.rl
            .as_nobody(OsStr::new("podman"), &all, &self.envs, &self.rl.env.work)
    }

    fn status(&self, name: &str) -> String {
        let o = self.podman(&["inspect", "-f", "{{.State.Status}}", name]);
        assert_ok(&o, "podman inspect");
        stdout_of(&o).trim().to_string()
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let o = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        if !o.status.success() {
            eprintln!("podman rm -af: {}", describe(&o));
        }
        // The pause process is podman's: started for this test, named by its pid file.
        let pid_file = self.rl.xdg.join("libpod/tmp/pause.pid");
        let pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|p| *p > 1) {
            // SAFETY: kill(2) of the pid podman recorded for this test's pause process.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            wait_pid_gone(pid, Duration::from_secs(5));
        }
    }
}

/// podman as an unprivileged user with subordinate ids, driving the runtime: a container
/// with podman's two-range mapping runs in the foreground and is removed, one runs
/// detached, takes an exec, stops and is removed; the runtime's state root in
/// $XDG_RUNTIME_DIR is empty afterwards.
#[test]
fn podman_as_an_unprivileged_user_runs_execs_stops_removes() {
    let env = TestEnv::new("rl-pm");
    let rl = Rootless::new(&env);
    let _subids = SubIds::add();
    let pm = Podman::new(&rl);
    let run = ["run", "--network", "none", "--pull", "never"];

    let mut args = run.to_vec();
    args.extend(["--rm", IMAGE, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let o = pm.podman(&args);
    assert_ok(&o, "podman run --rm");
    let words = stdout_words(&o);
    assert_eq!(
        words,
        ["0", "0", "65534", "1", "1", "1879048192", "65536"],
        "podman's mapping: {}",
        describe(&o)
    );

    let mut args = run.to_vec();
    args.extend(["-d", "--name", "c1", IMAGE, "sleep", "1000"]);
    assert_ok(&pm.podman(&args), "podman run -d");
    assert_eq!(pm.status("c1"), "running");
    let o = pm.podman(&["exec", "c1", "sh", "-c", "echo exec-ok; id -u"]);
    assert_ok(&o, "podman exec");
    assert_eq!(stdout_words(&o), ["exec-ok", "0"], "{}", describe(&o));
    assert_ok(&pm.podman(&["stop", "-t", "0", "c1"]), "podman stop");
    assert_eq!(pm.status("c1"), "exited");
    assert_ok(&pm.podman(&["rm", "c1"]), "podman rm");
    let o = pm.podman(&["ps", "-a", "-q"]);
    assert_ok(&o, "podman ps -a");
    assert_eq!(stdout_of(&o).trim(), "", "no container left");
    assert!(rl.state_entries().is_empty(), "runtime state removed");
}

/// A cgroup the user may create (a delegated subtree, its cgroupsPath given) is used, and
/// a limit asked for is applied there; the cgroup is gone after the run.
#[test]
fn a_delegated_cgroup_is_used_with_its_limit() {
    let env = TestEnv::new("rl-deleg");
    let rl = Rootless::new(&env);
    let deleg = Delegated::new(&rl);
    let path = format!("{}/c1", deleg.path());
    let bundle = rl.bundle(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["linux"]["resources"] = json!({ "pids": { "limit": 50 } });
        // v1: the pids hierarchy under /sys/fs/cgroup/pids; v2: the cgroup itself.
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
             cat /proc/self/cgroup"
        ]);
    });
    let id = rl.id();
    let o = rl.run(&["run", "--bundle", bundle.to_str().expect("utf-8"), &id]);
    assert_ok(&o, "run in a delegated cgroup as nobody");
    let out = stdout_of(&o);
    assert_eq!(out.lines().next(), Some("50"), "pids.max: {}", describe(&o));
    let line = out
        .lines()
        .skip(1)
        .find(|l| l.contains(":pids:") || l.starts_with("0::"))
        .unwrap_or_default();
    assert!(
        line.ends_with(&path),
        "the container is in {path}: {}",
        describe(&o)
    );
    assert!(cgroups_named("c1").is_empty(), "{:?}", cgroups_named("c1"));
    assert!(
        rl.state_entries().is_empty(),
        "nothing left in the state root"
    );
}

/// A cgroupsPath the user may not create is an error even without limits (runc skips a
/// cgroup only when the spec names none): the permission error, nothing left.
#[test]
fn an_explicit_cgroup_path_that_cannot_be_made_is_an_error() {
    let env = TestEnv::new("rl-path");
    let rl = Rootless::new(&env);
    let path = format!("/{}-x/c1", env.marker);
    let bundle = rl.bundle(|c| {
        c["linux"]["cgroupsPath"] = json!(path);
        c["process"]["args"] = json!(["true"]);
    });
    let id = rl.id();
    let o = rl.run(&["run", "--bundle", bundle.to_str().expect("utf-8"), &id]);
    assert_failed_with_message(&o, "run with a cgroupsPath nobody may not create");
    assert!(
        stderr_of(&o).contains("ermission denied"),
        "the cgroup's EACCES: {}",
        describe(&o)
    );
    assert!(
        rl.state_entries().is_empty(),
        "nothing left in the state root"
    );
}
