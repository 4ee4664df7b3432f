//! End to end with containerd and its own runc shim (containerd-shim-runc-v2), told by
//! `ctr --runc-binary` to use the runtime under test instead of runc: the shim then calls
//! it with `--root R --log F --log-format json` for create, start, exec, kill, pause,
//! resume, delete, as it calls runc.
//!
//! Each test starts a private containerd (root, state, sockets in its temp dir, no CRI,
//! no debug or metrics listener), uses a containerd namespace named after the test (so
//! the containers' cgroups are `/<marker>/<id>`), and stops the daemon by its pid at the
//! end, also when the test failed.

mod common;
mod e2e_support;
#[path = "data/support.rs"]
mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{assert_ok, describe, poll, stderr_of, stdout_of};
use e2e_support::containerd::*;
use e2e_support::*;

/// A private containerd that runs containers with its own runc shim.
fn start(kind: &str) -> Containerd {
    client("containerd-shim-runc-v2", "containerd");
    runtime();
    Containerd::start(kind, Shim::runc())
}

/// What these tests do with their containerd beyond the shared harness.
trait RuncShimTests {
    fn runc_root(&self) -> PathBuf;
    fn runtime_flags(&self) -> Vec<String>;
    fn run_cmd(&self, flags: &[&str], id: &str, args: &[&str]) -> Command;
    fn run(&self, flags: &[&str], id: &str, args: &[&str]) -> Output;
}

impl RuncShimTests for Containerd {
    /// `--runc-root`: the runtime's `--root`.
    fn runc_root(&self) -> PathBuf {
        self.w.path("runc-root")
    }

    /// The flags of `ctr run` that pick the runc shim and the runtime under test.
    fn runtime_flags(&self) -> Vec<String> {
        vec![
            "--runtime".into(),
            "io.containerd.runc.v2".into(),
            "--runc-binary".into(),
            runtime().display().to_string(),
            "--runc-root".into(),
            self.runc_root().display().to_string(),
            "--fifo-dir".into(),
            self.fifo_dir.display().to_string(),
        ]
    }

    /// `ctr run FLAGS... --rootfs ROOTFS ID ARGS...`.
    fn run_cmd(&self, flags: &[&str], id: &str, args: &[&str]) -> Command {
        self.w.must_vanish(self.runc_root().join(&self.ns).join(id));
        self.run_rootfs_cmd(&self.runtime_flags(), flags, id, args)
    }

    fn run(&self, flags: &[&str], id: &str, args: &[&str]) -> Output {
        self.w.run(&mut self.run_cmd(flags, id, args))
    }
}

#[track_caller]
fn assert_code(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: expected exit code {code}\n{}",
        describe(o)
    );
}

#[test]
fn ctr_run_rm_output_exit_code_and_terminal() {
    let c = start("ctr-run");
    let id = c.w.name("run");
    let o = c.run(
        &["--rm"],
        &id,
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_code(&o, 3, "ctr run --rm (exit 3)");
    assert_eq!(stdout_of(&o), "out\n", "{}", describe(&o));
    assert!(stderr_of(&o).contains("err"), "{}", describe(&o));
    c.no_containers_left();

    // A failed create: the shim reads the runtime's error from its --log (JSON lines).
    let id = c.w.name("enoent");
    let o = c.run(&["--rm"], &id, &["/no/such/program"]);
    assert!(!o.status.success(), "{}", describe(&o));
    let err = stderr_of(&o);
    assert!(
        err.contains("/no/such/program") && !err.contains("unable to retrieve OCI runtime error"),
        "the runtime's own message (from its JSON log) expected\n{}",
        describe(&o)
    );
    let _ = c.ctr(&["containers", "rm", &id]);
    c.no_containers_left();

    // process.terminal: the shim passes --console-socket to create.
    let id = c.w.name("tty");
    let (status, term) =
        c.w.run_on_pty(&mut c.run_cmd(&["--rm", "-t"], &id, &["sh", "-c", "tty; sleep 0.3"]));
    assert!(status.success(), "ctr run --rm -t tty: {status:?}\n{term}");
    assert!(is_pts(&term), "ctr run -t tty printed {term:?}");
    c.no_containers_left();
}

#[test]
fn ctr_detached_exec_pause_resume_kill_delete() {
    let c = start("ctr-detached");
    let id = c.w.name("d");
    let o = c.run(
        &["-d"],
        &id,
        &["sh", "-c", "trap 'exit 7' TERM; sleep 1000 & wait"],
    );
    assert_ok(&o, "ctr run -d");
    assert_eq!(c.task_status(&id), "RUNNING");
    // The shim gave the runtime --root <runc-root>/<namespace>.
    let state = c.runc_root().join(&c.ns).join(&id);
    assert!(state.is_dir(), "no runtime state at {}", state.display());

    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "--fifo-dir",
        c.fifo_dir.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "echo exec-out; exit 4",
    ]);
    assert_code(&o, 4, "ctr task exec (exit 4)");
    assert_eq!(stdout_of(&o), "exec-out\n", "{}", describe(&o));

    // The exec's own user and cwd.
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e2",
        "--user",
        "1000",
        "--cwd",
        "/tmp",
        "--fifo-dir",
        c.fifo_dir.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "echo $(id -u) $(pwd)",
    ]);
    assert_ok(&o, "ctr task exec --user --cwd");
    assert_eq!(stdout_of(&o).trim(), "1000 /tmp", "{}", describe(&o));

    // A terminal for the exec: the shim passes --tty --console-socket to exec.
    let mut cmd = c.cmd();
    cmd.args(["task", "exec", "-t", "--exec-id", "e3", "--fifo-dir"])
        .arg(&c.fifo_dir)
        // It outlives ctr's resize after start (a resize of an exited process fails).
        .args([id.as_str(), "sh", "-c", "tty; sleep 0.3"]);
    let (status, term) = c.w.run_on_pty(&mut cmd);
    assert!(status.success(), "ctr task exec -t tty: {status:?}\n{term}");
    assert!(is_pts(&term), "ctr task exec -t tty printed {term:?}");

    let o = c.ctr(&["task", "pause", &id]);
    assert_ok(&o, "ctr task pause");
    assert_eq!(c.task_status(&id), "PAUSED");
    let o = c.ctr(&["task", "resume", &id]);
    assert_ok(&o, "ctr task resume");
    assert_eq!(c.task_status(&id), "RUNNING");

    // SIGTERM (ctr's default) reaches init, whose trap exits 7.
    let o = c.ctr(&["task", "kill", &id]);
    assert_ok(&o, "ctr task kill");
    assert!(
        poll(Duration::from_secs(10), || c.task_status(&id) == "STOPPED"),
        "task not STOPPED 10 s after SIGTERM: {}",
        c.task_status(&id)
    );
    let o = c.ctr(&["task", "delete", &id]);
    assert_ok(&o, "ctr task delete");
    assert!(
        stderr_of(&o).contains("exit code 7"),
        "exit status 7 expected\n{}",
        describe(&o)
    );
    let o = c.ctr(&["containers", "rm", &id]);
    assert_ok(&o, "ctr containers rm");
    c.no_containers_left();
}

#[test]
fn ctr_image_import_and_run() {
    let c = start("ctr-image");
    let name = "localhost/youki-e2e-busybox:latest";
    let tar = build_image(&c.w, name);
    let o = c.ctr(&["image", "import", tar.to_str().unwrap()]);
    assert_ok(&o, "ctr image import");
    let o = c.ctr(&["image", "ls", "-q"]);
    assert_ok(&o, "ctr image ls");
    assert!(stdout_of(&o).lines().any(|l| l == name), "{}", describe(&o));

    // From the image: a snapshot mounted by the shim, PATH and cwd from its config.
    let id = c.w.name("img");
    c.w.must_vanish(c.runc_root().join(&c.ns).join(&id));
    let mut cmd = c.cmd();
    cmd.arg("run").args(c.runtime_flags()).args([
        "--rm",
        name,
        &id,
        "sh",
        "-c",
        "echo $PATH; head -n1 /etc/passwd",
    ]);
    let o = c.w.run(&mut cmd);
    assert_ok(&o, "ctr run --rm IMAGE");
    assert_eq!(
        stdout_of(&o),
        format!(
            "{}\nroot:x:0:0:root:/root:/bin/sh\n",
            CONTAINER_PATH.trim_start_matches("PATH=")
        ),
        "{}",
        describe(&o)
    );
    c.no_containers_left();
    let o = c.ctr(&["image", "rm", "--sync", name]);
    assert_ok(&o, "ctr image rm");
}

/// The leak check itself: it must see (and remove) a process running from the test's
/// directory, a cgroup named after the test and leftover runtime state.
#[test]
fn leak_check_sees_what_a_test_leaves_behind() {
    let w = World::new("leak");
    let mut sleeper = Command::new("sleep")
        .arg("100")
        .current_dir(&w.work)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let h = &common::cgroup_hierarchies()[0];
    let cg = h.mount_point.join(&w.marker).join("leftover");
    fs::create_dir_all(&cg).expect("mkdir a cgroup");
    w.allow_cgroup(&w.marker);
    let state = w.path("state-of-a-container");
    fs::create_dir_all(&state).unwrap();
    w.must_vanish(state);

    let leaks = w.leaks();
    let shown = leaks.join("\n");
    assert!(
        shown.contains(&format!("process {}", sleeper.id())),
        "{shown}"
    );
    assert!(shown.contains("leftover"), "{shown}");
    assert!(!shown.contains(&format!("{}\n", h.mount_point.join(&w.marker).display())));
    assert!(shown.contains("runtime state"), "{shown}");

    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(w)));
    let msg = dropped.expect_err("dropping a leaky World must fail the test");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("left behind"), "{msg}");
    let status = wait_child(&mut sleeper, Duration::from_secs(5)).expect("sleep killed");
    assert!(!status.success());
    assert!(!cg.exists(), "{} not removed", cg.display());
}

// `ctr run --cwd` naming a directory the rootfs lacks: runc 1.1.5 creates it (this passes
// with RUNTIME_BIN=/usr/sbin/runc); youki refused it before.
#[test]
fn ctr_run_creates_a_missing_cwd() {
    let c = start("ctr-cwd");
    let id = c.w.name("cwd");
    let o = c.run(
        &["--rm", "--cwd", "/newdir/sub"],
        &id,
        &["sh", "-c", "pwd; stat -c '%u:%g' /newdir/sub"],
    );
    assert_code(&o, 0, "ctr run --cwd /newdir/sub");
    assert_eq!(stdout_of(&o), "/newdir/sub\n0:0\n", "{}", describe(&o));
    c.no_containers_left();
}

// Docker's default seccomp profile as it was in 2019 (tests/data/support.rs builds it)
// through `ctr run --seccomp-profile` and containerd's runc shim: busybox starts and a
// glibc program starts a thread; close_range answers ENOSYS (runc's -ENOSYS stub, ours).
// Passes with runc 1.1.5 (RUNTIME_BIN=/usr/sbin/runc), the reference for the same case
// through our shim in tests/e2e_shim.rs.
#[test]
fn ctr_run_under_a_2019_seccomp_profile() {
    let c = start("ctr-sec2019");
    support::install_sectest(&c.rootfs, "sectest", 0o755);
    let profile = c.w.path("seccomp-2019.json");
    support::write_profile_2019(&profile);
    let id = c.w.name("sec");
    let o = c.run(
        &[
            "--rm",
            "--seccomp",
            "--seccomp-profile",
            profile.to_str().expect("UTF-8 path"),
        ],
        &id,
        &["sh", "-c", support::PROFILE_2019_SCRIPT],
    );
    assert_code(&o, 0, "ctr run --seccomp-profile (2019)");
    support::assert_profile_2019_output(&o);
    c.no_containers_left();
}

// A config without any namespace through containerd's runc shim (`ctr run --config`): the
// container's namespaces are the host's. Passes with runc 1.1.5 and 1.3.6, which leave the
// rootfs bind and /proc mounted on the host (detached here; tests/namespaces.rs asserts that
// youki leaves nothing); the same through our shim is in tests/e2e_shim.rs.
#[test]
fn ctr_run_a_config_without_namespaces() {
    let c = start("ctr-nons");
    let id = c.w.name("nons");
    let mut spec =
        common::config_without_namespaces(&c.w.marker, &format!("/{}/{id}", c.ns), &c.rootfs);
    spec["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "for n in mnt net pid; do readlink /proc/self/ns/$n; done"
    ]);
    let config = c.w.path("nons-config.json");
    fs::write(&config, spec.to_string()).expect("write the config");
    let mut cmd = c.cmd();
    cmd.arg("run")
        .args(c.runtime_flags())
        .args(["--rm", "--config", config.to_str().expect("UTF-8")])
        .arg(&id);
    let o = c.w.run(&mut cmd);
    let rootfs = c.rootfs.to_string_lossy().into_owned();
    let mut left: Vec<String> = common::mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&rootfs))
        .collect();
    left.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in &left {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    assert_code(&o, 0, "ctr run --config (no namespaces)");
    let ns = common::own_namespace;
    assert_eq!(
        stdout_of(&o),
        format!("{}\n{}\n{}\n", ns("mnt"), ns("net"), ns("pid")),
        "{}",
        describe(&o)
    );
    c.no_containers_left();
}
