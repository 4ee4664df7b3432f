//! End to end with podman 4 (Debian's podman, conmon): podman drives the runtime under
//! test (`--runtime`), as it would drive runc.
//!
//! Each test has a private podman: `--root`, `--runroot`, `--tmpdir` in its temp dir, the
//! vfs storage driver (no overlay mounts on the host), a containers.conf chosen with
//! CONTAINERS_CONF (cgroupfs, file events, no network, ulimits this host can grant, the
//! runtime declared as supporting `--log-format json`), and `--cgroup-parent /<marker>`
//! so that its cgroups are known. The busybox image is built locally
//! (scripts/mkimage.sh) and loaded with `podman load`: nothing comes from a registry.

mod common;
mod e2e_support;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{assert_ok, describe, stderr_of, stdout_of};
use e2e_support::*;

const IMAGE: &str = "localhost/youki-e2e-busybox:latest";

struct Podman {
    podman: PathBuf,
    runtime: PathBuf,
    conf: PathBuf,
    storage_conf: PathBuf,
    root: PathBuf,
    runroot: PathBuf,
    tmpdir: PathBuf,
    cgroup_parent: String,
    /// Last: dropped after podman's own clean-up, it checks for leaks.
    w: World,
}

impl Podman {
    fn new(kind: &str) -> Podman {
        let w = World::new(kind);
        let podman = client("podman", "podman");
        client("conmon", "conmon (a dependency of podman)");
        let runtime = runtime();
        let name = runtime.file_name().unwrap().to_string_lossy().into_owned();
        let root = w.path("root");
        // podman refuses a runroot longer than 50 characters.
        let runroot = w.path("rr");
        assert!(
            runroot.as_os_str().len() <= 50,
            "{} is too long for podman's runroot: set TMPDIR to a shorter directory",
            runroot.display()
        );
        let tmpdir = w.path("tmp");
        let conf = w.path("containers.conf");
        let storage_conf = w.path("storage.conf");
        fs::create_dir_all(w.path("networks")).unwrap();
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
runtime = "{name}"
runtime_supports_json = ["{name}"]

[engine.runtimes]
{name} = ["{runtime}"]

[network]
network_config_dir = "{networks}"
"#,
                events = w.path("events.log").display(),
                runtime = runtime.display(),
                networks = w.path("networks").display(),
            ),
        )
        .unwrap();
        fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                runroot.display(),
                root.display()
            ),
        )
        .unwrap();
        let cgroup_parent = format!("/{}", w.marker);
        // podman creates the parent and a conmon cgroup below it, and removes neither.
        w.allow_cgroup(&w.marker);
        w.allow_cgroup(&format!("{}/conmon", w.marker));
        let p = Podman {
            podman,
            runtime,
            conf,
            storage_conf,
            root,
            runroot,
            tmpdir,
            cgroup_parent,
            w,
        };
        let tar = build_image(&p.w, IMAGE);
        let o = p.podman(&["load", "-i", tar.to_str().unwrap()]);
        assert_ok(&o, "podman load");
        p
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.podman);
        c.env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--tmpdir")
            .arg(&self.tmpdir)
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .arg("--runtime")
            .arg(&self.runtime);
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.w.run(self.cmd().args(args))
    }

    /// `podman run` with the test's flags, then `args`.
    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(["run", "--network", "none", "--pull", "never"])
            .arg(format!("--cgroup-parent={}", self.cgroup_parent));
        self.w.run(c.args(args))
    }

    /// Remembers that the runtime's state of container `id` must be gone at the end.
    fn track(&self, id: &str) {
        self.w
            .must_vanish(default_state_root(&self.runtime).join(id.trim()));
    }

    fn status(&self, name: &str) -> String {
        let o = self.podman(&["inspect", "-f", "{{.State.Status}}", name]);
        assert_ok(&o, "podman inspect");
        stdout_of(&o).trim().to_string()
    }

    fn no_containers_left(&self) {
        let o = self.podman(&["ps", "-a", "-q"]);
        assert_ok(&o, "podman ps -a");
        assert_eq!(
            stdout_of(&o).trim(),
            "",
            "containers left: {}",
            describe(&o)
        );
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Remove whatever a failed test left; the World then checks for leaks.
        let o = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        if !o.status.success() {
            eprintln!("podman rm -af: {}", describe(&o));
        }
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
fn podman_run_rm_output_exit_code_and_terminal() {
    let p = Podman::new("pm-run");
    let cid = p.w.path("cid");
    let o = p.run(&[
        "--rm",
        "--cidfile",
        cid.to_str().unwrap(),
        IMAGE,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_code(&o, 3, "podman run --rm (exit 3)");
    assert_eq!(stdout_of(&o), "out\n", "{}", describe(&o));
    assert!(stderr_of(&o).contains("err"), "{}", describe(&o));
    p.track(&fs::read_to_string(&cid).expect("cid file"));

    // A program that does not exist: podman reads the runtime's error from its JSON log
    // and, like for runc, exits 127 for "not found".
    let o = p.run(&["--rm", IMAGE, "/no/such/program"]);
    assert_code(&o, 127, "podman run --rm /no/such/program");
    assert!(
        stderr_of(&o).contains("/no/such/program"),
        "{}",
        describe(&o)
    );

    // process.terminal: podman passes --console-socket to create.
    let cid = p.w.path("cid-tty");
    let o = p.run(&[
        "--rm",
        "-t",
        "--cidfile",
        cid.to_str().unwrap(),
        IMAGE,
        "tty",
    ]);
    assert_ok(&o, "podman run --rm -t tty");
    assert!(is_pts(&stdout_of(&o)), "{}", describe(&o));
    p.track(&fs::read_to_string(&cid).expect("cid file"));
    p.no_containers_left();
}

#[test]
fn podman_detached_exec_pause_stop_rm() {
    let p = Podman::new("pm-det");
    let name = p.w.name("c");
    let o = p.run(&[
        "-d",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo started; sleep 1000 & wait",
    ]);
    assert_ok(&o, "podman run -d");
    let run = o;
    p.track(&stdout_of(&run));
    assert_eq!(p.status(&name), "running");
    // podman gives no --root: the runtime's default state directory.
    let state = default_state_root(&p.runtime).join(stdout_of(&run).trim());
    assert!(state.is_dir(), "no runtime state at {}", state.display());

    let o = p.podman(&["exec", &name, "sh", "-c", "echo exec-out; exit 4"]);
    assert_code(&o, 4, "podman exec (exit 4)");
    assert_eq!(stdout_of(&o), "exec-out\n", "{}", describe(&o));

    // The exec process takes env, user and cwd from the exec, not the container.
    let o = p.podman(&[
        "exec",
        "-e",
        "FOO=bar",
        "-u",
        "1000",
        "-w",
        "/tmp",
        &name,
        "sh",
        "-c",
        "echo $FOO $(id -u) $(pwd)",
    ]);
    assert_ok(&o, "podman exec -e -u -w");
    assert_eq!(stdout_of(&o).trim(), "bar 1000 /tmp", "{}", describe(&o));

    let o = p.podman(&["exec", "-t", &name, "tty"]);
    assert_ok(&o, "podman exec -t tty");
    assert!(is_pts(&stdout_of(&o)), "{}", describe(&o));

    // podman update -> runtime update --resources FILE.
    let o = p.podman(&["update", "--memory", "64m", &name]);
    assert_ok(&o, "podman update --memory 64m");
    let limit = common::host_cgroup_file(
        &format!("{}/libpod-{}", p.cgroup_parent, stdout_of(&run).trim()),
        "memory",
        "memory.limit_in_bytes",
        "memory.max",
    );
    assert_eq!(
        fs::read_to_string(&limit)
            .unwrap_or_else(|e| panic!("{}: {e}", limit.display()))
            .trim(),
        "67108864",
        "{}",
        limit.display()
    );

    let o = p.podman(&["pause", &name]);
    assert_ok(&o, "podman pause");
    assert_eq!(p.status(&name), "paused");
    let o = p.podman(&["unpause", &name]);
    assert_ok(&o, "podman unpause");
    assert_eq!(p.status(&name), "running");
    let o = p.podman(&["exec", &name, "echo", "alive"]);
    assert_ok(&o, "podman exec after unpause");
    assert_eq!(stdout_of(&o), "alive\n");

    // SIGTERM reaches the container's init, whose trap exits 7.
    let t = Instant::now();
    let o = p.podman(&["stop", "-t", "10", &name]);
    assert_ok(&o, "podman stop");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "podman stop took {:?}: SIGTERM was not delivered\n{}",
        t.elapsed(),
        describe(&o)
    );
    let o = p.podman(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    assert_ok(&o, "podman inspect");
    assert_eq!(stdout_of(&o).trim(), "exited 7");

    let o = p.podman(&["logs", &name]);
    assert_ok(&o, "podman logs");
    assert_eq!(stdout_of(&o), "started\n", "{}", describe(&o));

    let o = p.podman(&["rm", &name]);
    assert_ok(&o, "podman rm");
    p.no_containers_left();
}
