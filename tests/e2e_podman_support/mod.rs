//! A private podman 4 (Debian's podman, conmon) driving the runtime under test
//! (`--runtime`), as it would drive runc: shared by the podman end-to-end tests.
//!
//! Each test has a private podman: `--root`, `--runroot`, `--tmpdir` in its temp dir, the
//! vfs storage driver (no overlay mounts on the host), a containers.conf chosen with
//! CONTAINERS_CONF (cgroupfs, file events, no network, ulimits this host can grant, the
//! runtime declared as supporting `--log-format json`), and `--cgroup-parent /<marker>`
//! so that its cgroups are known. The busybox image is built locally
//! (scripts/mkimage.sh) and loaded with `podman load`: nothing comes from a registry.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{assert_ok, describe, stdout_of};
use crate::e2e_support::*;

/// The busybox image every test loads.
pub const IMAGE: &str = "localhost/youki-e2e-busybox:latest";

/// A private podman (see the module doc).
pub struct Podman {
    podman: PathBuf,
    /// The runtime under test.
    pub runtime: PathBuf,
    conf: PathBuf,
    storage_conf: PathBuf,
    root: PathBuf,
    runroot: PathBuf,
    tmpdir: PathBuf,
    /// `--cgroup-parent` of the containers.
    pub cgroup_parent: String,
    /// A directory put first on podman's PATH (podman and the runtime find CRIU there).
    path_first: Option<PathBuf>,
    /// Last: dropped after podman's own clean-up, it checks for leaks.
    pub w: World,
}

impl Podman {
    /// A private podman for test `kind`, with the busybox image loaded.
    pub fn new(kind: &str) -> Podman {
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
            path_first: None,
            w,
        };
        let tar = build_image(&p.w, IMAGE);
        let o = p.podman(&["load", "-i", tar.to_str().unwrap()]);
        assert_ok(&o, "podman load");
        p
    }

    /// Puts `dir` first on the PATH of podman (and so of conmon and the runtime).
    pub fn with_path_first(mut self, dir: &Path) -> Podman {
        self.path_first = Some(dir.to_path_buf());
        self
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.podman);
        if let Some(dir) = &self.path_first {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let dirs = std::iter::once(dir.clone()).chain(std::env::split_paths(&path));
            c.env("PATH", std::env::join_paths(dirs).expect("PATH"));
        }
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

    /// `podman ARGS...` (with the private flags).
    pub fn podman(&self, args: &[&str]) -> Output {
        self.w.run(self.cmd().args(args))
    }

    /// `podman run` with the test's flags, then `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(["run", "--network", "none", "--pull", "never"])
            .arg(format!("--cgroup-parent={}", self.cgroup_parent));
        self.w.run(c.args(args))
    }

    /// Remembers that the runtime's state of container `id` must be gone at the end.
    pub fn track(&self, id: &str) {
        self.w
            .must_vanish(default_state_root(&self.runtime).join(id.trim()));
    }

    /// The container's status as podman inspect gives it.
    pub fn status(&self, name: &str) -> String {
        let o = self.podman(&["inspect", "-f", "{{.State.Status}}", name]);
        assert_ok(&o, "podman inspect");
        stdout_of(&o).trim().to_string()
    }

    /// Fails the test if podman still lists a container.
    pub fn no_containers_left(&self) {
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

/// Fails the test unless the command exited with `code`.
#[track_caller]
pub fn assert_code(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: expected exit code {code}\n{}",
        describe(o)
    );
}
