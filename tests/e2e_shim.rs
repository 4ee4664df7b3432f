//! End to end with containerd (Debian's 1.6 here) and this project's own shim,
//! `containerd-shim-youki-v2` (`ctr run --runtime io.containerd.youki.v2`): no runtime
//! binary is executed per operation, the shim links runtime-core.
//!
//! Each test starts a private containerd (root, state, sockets in its temp dir, no CRI,
//! no debug or metrics listener) with the cargo-built shim first on its PATH, uses a
//! containerd namespace named after the test (the containers' cgroups are
//! `/<marker>/<id>`), and stops the daemon by its pid at the end, also when the test
//! failed. The [`World`] then checks that nothing is left: no shim, no container process,
//! no mount, no cgroup, no bundle.

mod common;
mod e2e_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{assert_ok, build_rootfs, describe, pid_alive, poll, stderr_of, stdout_of};
use e2e_support::*;

const SHIM: &str = "containerd-shim-youki-v2";
const RUNTIME: &str = "io.containerd.youki.v2";

/// Builds the shim into this build's target directory (a no-op when `cargo test
/// --workspace` built it already) and returns that directory.
fn shim_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let youki = PathBuf::from(env!("CARGO_BIN_EXE_youki"));
        let dir = youki.parent().expect("target dir").to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "-p",
            "containerd-shim-youki",
            "--bin",
            SHIM,
        ]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build for the shim");
        assert!(st.success(), "cargo build of {SHIM} failed");
        assert!(
            dir.join(SHIM).is_file(),
            "{SHIM} not built in {}",
            dir.display()
        );
        dir
    })
}

struct Containerd {
    ctr: PathBuf,
    daemon: Option<Child>,
    address: PathBuf,
    log: PathBuf,
    /// The containerd namespace: the marker.
    ns: String,
    fifo_dir: PathBuf,
    /// A busybox rootfs for `--rootfs`.
    rootfs: PathBuf,
    /// Last: dropped after the daemon is stopped, it checks for leaks.
    w: World,
}

impl Containerd {
    fn start(kind: &str) -> Containerd {
        let w = World::new(kind);
        let containerd = client("containerd", "containerd");
        let ctr = client("ctr", "containerd");
        let shims = shim_dir();
        let address = w.path("c.sock");
        let config = w.path("containerd.toml");
        fs::write(
            &config,
            format!(
                r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{address}"

[ttrpc]
  address = "{address}.ttrpc"

[debug]
  address = ""
  level = "debug"

[metrics]
  address = ""
"#,
                root = w.path("root").display(),
                state = w.path("state").display(),
                address = address.display(),
            ),
        )
        .unwrap();
        let log = w.path("containerd.log");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(shims.to_path_buf()).chain(std::env::split_paths(&path)),
        )
        .unwrap();
        let daemon = Command::new(&containerd)
            .arg("--config")
            .arg(&config)
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", containerd.display()));
        let ns = w.marker.clone();
        // containerd's runtime-core cgroups are /<namespace>/<id>: the parent stays.
        w.allow_cgroup(&ns);
        let fifo_dir = w.path("fifo");
        fs::create_dir_all(&fifo_dir).unwrap();
        let rootfs = w.path("busybox/rootfs");
        build_rootfs(&rootfs);
        let c = Containerd {
            ctr,
            daemon: Some(daemon),
            address,
            log,
            ns,
            fifo_dir,
            rootfs,
            w,
        };
        let ready = poll(Duration::from_secs(10), || {
            c.address.exists() && c.ctr(&["version"]).status.success()
        });
        assert!(ready, "containerd did not come up\n{}", c.log_tail());
        c
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- containerd log (tail) ---\n{}",
            lines[from..].join("\n")
        )
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address").arg(&self.address).args(["-n", &self.ns]);
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.w.run(self.cmd().args(args))
    }

    #[track_caller]
    fn ctr_ok(&self, args: &[&str]) -> Output {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?} failed\n{}\n{}",
            describe(&o),
            self.log_tail()
        );
        o
    }

    /// The bundle containerd makes for `id` (holds runtime-core's state): must vanish.
    fn bundle(&self, id: &str) -> PathBuf {
        self.w
            .path("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }

    /// `ctr run --runtime io.containerd.youki.v2 FLAGS... ID ARGS...` (FLAGS name the
    /// rootfs or the image).
    fn run(&self, flags: &[&str], id: &str, args: &[&str]) -> Output {
        self.w.must_vanish(self.bundle(id));
        self.w.must_vanish(self.socket_path(id));
        let mut c = self.cmd();
        c.arg("run")
            .args(["--runtime", RUNTIME])
            .arg("--fifo-dir")
            .arg(&self.fifo_dir)
            .args(["--env", CONTAINER_PATH])
            .args(flags)
            .arg(id)
            .args(args);
        self.w.run(&mut c)
    }

    /// `--rootfs DIR`, the busybox directory.
    fn rootfs_flags(&self) -> [&str; 2] {
        ["--rootfs", self.rootfs.to_str().unwrap()]
    }

    /// The task's STATUS column in `ctr task ls` ("" when there is no such task).
    fn task_status(&self, id: &str) -> String {
        let o = self.ctr(&["task", "ls"]);
        stdout_of(&o)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    }

    /// Pids of the shim processes serving this test's containerd.
    /// Where the shim of `id` listens: `/run/containerd/s/<sha256 of ADDRESS/NS/ID>`, as
    /// the containerd-shim crate names it.
    fn socket_path(&self, id: &str) -> PathBuf {
        let key = format!("{}/{}/{id}", self.address.display(), self.ns);
        let mut sum = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sha256sum");
        std::io::Write::write_all(&mut sum.stdin.take().unwrap(), key.as_bytes()).unwrap();
        let out = sum.wait_with_output().unwrap();
        let hex = String::from_utf8_lossy(&out.stdout);
        PathBuf::from("/run/containerd/s").join(hex.split_whitespace().next().unwrap_or(""))
    }

    /// The socket of the shim serving `id` (from the bundle's `address` file): it must be
    /// gone at the end.
    fn shim_socket(&self, id: &str) -> PathBuf {
        let address = fs::read_to_string(self.bundle(id).join("address"))
            .unwrap_or_else(|e| panic!("reading {id}'s shim address: {e}"));
        let socket = PathBuf::from(address.trim().trim_start_matches("unix://"));
        assert!(socket.exists(), "{} does not exist", socket.display());
        assert_eq!(socket, self.socket_path(id));
        self.w.must_vanish(socket.clone());
        socket
    }

    fn shims(&self) -> Vec<i32> {
        let address = self.address.to_string_lossy().into_owned();
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|pid| {
                let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                    .unwrap_or_default();
                cmd.contains(SHIM) && cmd.contains(&address) && pid_alive(*pid)
            })
            .collect()
    }

    #[track_caller]
    fn no_containers_left(&self) {
        let o = self.ctr(&["containers", "ls", "-q"]);
        assert_ok(&o, "ctr containers ls");
        assert_eq!(stdout_of(&o).trim(), "", "containers left");
        let gone = poll(Duration::from_secs(10), || self.shims().is_empty());
        assert!(gone, "shims still running: {:?}", self.shims());
    }

    /// Kills and deletes every task and container of the namespace (for a failed test).
    fn remove_all(&self) {
        let o = self.ctr(&["containers", "ls", "-q"]);
        for id in stdout_of(&o).split_whitespace() {
            let _ = self.ctr(&["task", "kill", "-a", "-s", "SIGKILL", id]);
            let _ = poll(Duration::from_secs(5), || {
                matches!(self.task_status(id).as_str(), "STOPPED" | "")
            });
            let _ = self.ctr(&["task", "delete", "-f", id]);
            let _ = self.ctr(&["containers", "rm", id]);
        }
        let o = self.ctr(&["images", "ls", "-q"]);
        for name in stdout_of(&o).split_whitespace() {
            let _ = self.ctr(&["images", "rm", "--sync", name]);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.remove_all();
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: kill(2) of the daemon this test started, by its pid.
            unsafe {
                libc::kill(d.id() as i32, libc::SIGTERM);
            }
            if wait_child(&mut d, Duration::from_secs(10)).is_none() {
                eprintln!("containerd did not stop on SIGTERM within 10 s: killed");
            }
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
fn shim_run_rm_output_and_exit_code() {
    let c = Containerd::start("shim-run");
    let id = c.w.name("run");
    let o = c.run(
        &["--rm", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sh", "-c", "echo hi; exit 3"],
    );
    assert_code(&o, 3, "ctr run --rm (exit 3)");
    assert_eq!(stdout_of(&o), "hi\n", "{}\n{}", describe(&o), c.log_tail());
    c.no_containers_left();

    // stderr too, and a failed create is an error for ctr, not a hang.
    let id = c.w.name("err");
    let o = c.run(
        &["--rm", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sh", "-c", "echo out; echo err >&2"],
    );
    assert_code(&o, 0, "ctr run --rm (stderr)");
    assert_eq!(stdout_of(&o), "out\n", "{}", describe(&o));
    assert_eq!(stderr_of(&o), "err\n", "{}", describe(&o));
    c.no_containers_left();

    let id = c.w.name("enoent");
    let o = c.run(
        &["--rm", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["/no/such/program"],
    );
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        stderr_of(&o).contains("/no/such/program"),
        "runtime-core's error expected\n{}",
        describe(&o)
    );
    let _ = c.ctr(&["containers", "rm", &id]);
    c.no_containers_left();
}

#[test]
fn shim_output_is_complete_when_the_process_exits_at_once() {
    let c = Containerd::start("shim-output");
    let id = c.w.name("out");
    // ~200 KB, more than any pipe holds, from a process that exits right after writing:
    // Wait/TaskExit must come only after all of it was copied to ctr.
    let script = "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done";
    let o = c.run(
        &["--rm", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sh", "-c", script],
    );
    assert_code(&o, 0, "ctr run --rm (20000 lines)");
    let out = stdout_of(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 20000, "stdout incomplete");
    assert_eq!(lines.first(), Some(&"line-0"));
    assert_eq!(lines.last(), Some(&"line-19999"));
    c.no_containers_left();
}

#[test]
fn shim_detached_ls_ps_kill_delete() {
    let c = Containerd::start("shim-detach");
    let id = c.w.name("d");
    let o = c.run(
        &["-d", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sh", "-c", "sleep 1000"],
    );
    assert_ok(&o, "ctr run -d");
    assert_eq!(c.task_status(&id), "RUNNING");
    let socket = c.shim_socket(&id);
    let shims = c.shims();
    // The server and its zygote.
    assert_eq!(shims.len(), 2, "shim processes: {shims:?}");

    // Pids: the processes in the container's cgroup.
    let o = c.ctr_ok(&["task", "ps", &id]);
    let pids: Vec<i32> = stdout_of(&o)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!pids.is_empty(), "task ps listed nothing\n{}", describe(&o));
    assert!(pids.iter().all(|p| pid_alive(*p)), "{}", describe(&o));

    // A running task cannot be deleted.
    let o = c.ctr(&["task", "delete", &id]);
    assert!(
        !o.status.success(),
        "deleting a running task\n{}",
        describe(&o)
    );
    assert_eq!(c.task_status(&id), "RUNNING");

    c.ctr_ok(&["task", "kill", "-s", "KILL", &id]);
    let stopped = poll(Duration::from_secs(10), || c.task_status(&id) == "STOPPED");
    assert!(
        stopped,
        "not STOPPED after SIGKILL: {:?}",
        c.task_status(&id)
    );
    // The shim answers a kill of a finished process with NotFound (containerd 1.6's ctr
    // shows the kind, 2.x only the message).
    let o = c.ctr(&["task", "kill", "-s", "KILL", &id]);
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        stderr_of(&o).contains("process already finished"),
        "{}",
        describe(&o)
    );

    let o = c.ctr_ok(&["task", "delete", &id]);
    assert!(
        stdout_of(&o).contains("137") || stderr_of(&o).contains("137"),
        "SIGKILL is exit status 137\n{}",
        describe(&o)
    );
    assert_eq!(c.task_status(&id), "");
    c.ctr_ok(&["container", "rm", &id]);
    c.no_containers_left();
    assert!(
        !socket.exists(),
        "the shim left its socket {}",
        socket.display()
    );
}

#[test]
fn shim_runs_an_image_from_an_overlay_snapshot() {
    let c = Containerd::start("shim-image");
    let name = "localhost/youki-shim-e2e-busybox:latest";
    let tar = build_image(&c.w, name);
    c.ctr_ok(&["image", "import", tar.to_str().unwrap()]);
    // containerd sends the snapshot's overlay mount with Create: the shim mounts it on
    // <bundle>/rootfs and unmounts it on Delete.
    let id = c.w.name("img");
    let o = c.run(
        &["--rm", name],
        &id,
        &[
            "sh",
            "-c",
            "head -n1 /etc/passwd; grep -c ' / overlay ' /proc/mounts",
        ],
    );
    assert_code(&o, 0, "ctr run --rm IMAGE");
    assert_eq!(
        stdout_of(&o),
        "root:x:0:0:root:/root:/bin/sh\n1\n",
        "{}\n{}",
        describe(&o),
        c.log_tail()
    );
    c.no_containers_left();
    c.ctr_ok(&["image", "rm", "--sync", name]);
}

#[test]
fn shim_version() {
    let bin = shim_dir().join(SHIM);
    for flag in ["-v", "--version"] {
        let o = Command::new(&bin).arg(flag).output().unwrap();
        assert_ok(&o, &format!("{SHIM} {flag}"));
        assert!(
            stdout_of(&o).contains(env!("CARGO_PKG_VERSION")),
            "{}",
            describe(&o)
        );
    }
}

#[test]
fn shim_delete_command_cleans_up_after_a_killed_shim() {
    let c = Containerd::start("shim-dead");
    let id = c.w.name("dead");
    let o = c.run(
        &["-d", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sleep", "1000"],
    );
    assert_ok(&o, "ctr run -d");
    let o = c.ctr_ok(&["task", "ls"]);
    let pid: i32 = stdout_of(&o)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("no pid for {id}\n{}", describe(&o)));
    let socket = c.shim_socket(&id);
    let shims = c.shims();
    assert_eq!(shims.len(), 2, "server and zygote: {shims:?}");
    // The server is the zygote's parent.
    let server = *shims
        .iter()
        .find(|p| {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1));
            !shims.iter().any(|q| Some(q.to_string().as_str()) == ppid)
        })
        .expect("the server");
    // SAFETY: kill(2) of the shim this test's containerd started.
    unsafe {
        libc::kill(server, libc::SIGKILL);
    }
    // containerd sees the connection drop and runs `containerd-shim-youki-v2 delete`,
    // which kills the container and removes its cgroup, state and bundle; the zygote
    // dies with its server.
    let cleaned = poll(Duration::from_secs(20), || {
        c.task_status(&id).is_empty() && !pid_alive(pid) && c.shims().is_empty()
    });
    assert!(
        cleaned,
        "after the shim was killed: task {:?}, container alive {}, shims {:?}\n{}",
        c.task_status(&id),
        pid_alive(pid),
        c.shims(),
        c.log_tail()
    );
    c.ctr_ok(&["container", "rm", &id]);
    c.no_containers_left();
    assert!(
        !socket.exists(),
        "the dead shim's socket {} is left",
        socket.display()
    );
}
