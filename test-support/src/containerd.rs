//! A private containerd for the tests with containerd and a shim (tests/e2e_shim.rs,
//! tests/e2e_shim_io.rs, tests/e2e_runc_shim.rs, ..., and through [`crate::cri`] the CRI
//! tests): root, state, sockets in the test's [`World`], no debug or metrics listener.
//! Without CRI ([`Containerd::start`]) it uses a containerd namespace named after the
//! test (the containers' cgroups are `/<marker>/<id>`); [`crate::cri`] starts it with
//! CRI ([`Containerd::start_in`]), in CRI's namespace `k8s.io`. It is stopped by its pid
//! when dropped, also when the test failed, after every task, container and image of
//! the namespace is removed; the [`World`] then checks for leaks.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::output::{assert_ok, describe, stdout_of};
use crate::paths::cargo_build;
pub use crate::process::processes_with;
use crate::process::{cmdline, poll, wait_child};
use crate::rootfs::build_rootfs;
use crate::world::{client, World, CONTAINER_PATH};

/// This project's shim binary.
pub const SHIM: &str = "containerd-shim-youki-v2";

/// The (major, minor) version of the containerd binary `containerd` (from `containerd
/// --version`: "containerd PACKAGE VERSION REVISION").
pub fn containerd_version(containerd: &Path) -> (u32, u32) {
    let o = Command::new(containerd)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{} --version: {e}", containerd.display()));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    parse_version(&text)
        .unwrap_or_else(|| panic!("cannot read a version from `containerd --version`: {text:?}"))
}

/// (major, minor) of `containerd --version`'s output.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let v = text.split_whitespace().nth(2)?;
    let mut parts = v.trim_start_matches('v').split('.');
    let mut next = || parts.next().and_then(|p| p.parse().ok());
    Some((next()?, next()?))
}

/// The major version of the containerd binary `containerd`.
pub fn containerd_major(containerd: &Path) -> u32 {
    containerd_version(containerd).0
}

/// The start of every private containerd's config (`version` 2 for containerd 1.x, 3
/// for 2.x): root, state and sockets in `dir` (`dir/c.sock` for gRPC), the top-level
/// lines `top`, no debug or metrics listener, and with `debug` debug logs (containerd
/// then starts its shims with `-debug`).
pub fn base_config(version: u32, dir: &Path, top: &str, debug: bool) -> String {
    let level = if debug { "\n  level = \"debug\"" } else { "" };
    format!(
        r#"version = {version}
root = "{root}"
state = "{state}"
{top}
[grpc]
  address = "{address}"

[ttrpc]
  address = "{address}.ttrpc"

[debug]
  address = ""{level}

[metrics]
  address = ""
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        address = dir.join("c.sock").display(),
    )
}

/// Builds the shim into this build's target directory (a no-op when `cargo test
/// --workspace` built it already) and returns that directory. `SHIM_DIR` (as for
/// scripts/bench.sh) names a directory holding an already built shim instead.
pub fn shim_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SHIM_DIR").filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            assert!(
                dir.join(SHIM).is_file(),
                "SHIM_DIR={}: no {SHIM} there",
                dir.display()
            );
            return dir.canonicalize().expect("canonical SHIM_DIR");
        }
        let shim = cargo_build("containerd-shim-youki", SHIM);
        shim.parent().expect("the target dir").to_path_buf()
    })
}

/// The shim the private containerd runs containers with, and how strictly it is checked.
#[derive(Clone, Copy, Debug)]
pub struct Shim<'a> {
    /// The shim's binary name (or a prefix of it, e.g. "containerd-shim-" for every
    /// shim): [`Containerd::shims`] lists its processes.
    pub binary: &'a str,
    /// A directory put first on containerd's PATH, where containerd finds the shim (None:
    /// containerd's own PATH).
    pub dir: Option<&'a Path>,
    /// [`Containerd::no_containers_left`] also waits until no shim serves this containerd.
    pub wait_gone: bool,
    /// [`Containerd::task_status`] fails the test when `ctr task ls` fails.
    pub strict_task_ls: bool,
}

impl Shim<'static> {
    /// This project's shim, cargo-built ([`shim_dir`]), first on containerd's PATH.
    pub fn youki() -> Shim<'static> {
        Shim {
            binary: SHIM,
            dir: Some(shim_dir()),
            wait_gone: true,
            strict_task_ls: false,
        }
    }

    /// containerd's own runc shim, the reference (found on containerd's PATH).
    pub fn runc() -> Shim<'static> {
        Shim {
            binary: "containerd-shim-runc-v2",
            dir: None,
            wait_gone: false,
            strict_task_ls: true,
        }
    }
}

/// A private containerd and the ctr that talks to it. See the module documentation.
pub struct Containerd {
    /// The ctr binary.
    pub ctr: PathBuf,
    daemon: Option<Child>,
    daemon_cmd: DaemonCmd,
    /// containerd's gRPC socket.
    pub address: PathBuf,
    /// containerd's output (its log).
    pub log: PathBuf,
    /// The containerd namespace: the marker (`k8s.io` for CRI).
    pub ns: String,
    /// A directory for `ctr --fifo-dir`.
    pub fifo_dir: PathBuf,
    /// A busybox rootfs for `--rootfs`.
    pub rootfs: PathBuf,
    shim_binary: String,
    wait_shims_gone: bool,
    strict_task_ls: bool,
    /// Last: dropped after the daemon is stopped, it checks for leaks.
    pub w: World,
}

impl Containerd {
    /// containerd without CRI, in a new world; its namespace is the world's marker.
    pub fn start(kind: &str, shim: Shim<'_>) -> Containerd {
        let w = World::new(kind);
        // Version 2 on every containerd (2.x migrates it): nothing of version 3 is needed.
        let config = base_config(
            2,
            &w.work,
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
            true,
        );
        let ns = w.marker.clone();
        Containerd::start_in(w, shim, &config, &ns)
    }

    /// Where containerd started in `w` listens (its `[grpc] address`, as [`base_config`]
    /// sets it).
    pub fn socket(w: &World) -> PathBuf {
        w.path("c.sock")
    }

    /// containerd in the world `w` with the configuration `config` (which sets root,
    /// state and sockets inside the world, [`Containerd::socket`] for gRPC); `ns` is the
    /// namespace [`Containerd::cmd`] uses.
    pub fn start_in(w: World, shim: Shim<'_>, config: &str, ns: &str) -> Containerd {
        let containerd = client("containerd", "containerd");
        let ctr = client("ctr", "containerd");
        let address = Containerd::socket(&w);
        let config_path = w.path("containerd.toml");
        fs::write(&config_path, config).unwrap();
        let log = w.path("containerd.log");
        let daemon_cmd = DaemonCmd {
            containerd,
            config: config_path,
            shim_dir: shim.dir.map(Path::to_path_buf),
            tmp: w.path("tmp"),
        };
        let daemon = daemon_cmd.spawn(&log);
        let ns = ns.to_string();
        // containerd creates /<namespace> in every hierarchy and never removes it.
        w.allow_cgroup(&ns);
        let fifo_dir = w.path("fifo");
        fs::create_dir_all(&fifo_dir).unwrap();
        let rootfs = w.path("busybox/rootfs");
        build_rootfs(&rootfs);
        let mut c = Containerd {
            ctr,
            daemon: Some(daemon),
            daemon_cmd,
            address,
            log,
            ns,
            fifo_dir,
            rootfs,
            shim_binary: shim.binary.to_string(),
            wait_shims_gone: shim.wait_gone,
            strict_task_ls: shim.strict_task_ls,
            w,
        };
        c.wait_ready();
        c
    }

    fn wait_ready(&mut self) {
        let ready = poll(Duration::from_secs(10), || {
            self.address.exists() && self.ctr(&["version"]).status.success()
        });
        assert!(ready, "containerd did not come up\n{}", self.log_tail());
    }

    /// Stops containerd (SIGTERM, by its pid; shims and tasks keep running, as in a
    /// containerd upgrade) and starts it again with the same configuration.
    pub fn restart(&mut self) {
        self.restart_after(|_| {});
    }

    /// [`Containerd::restart`], doing `meanwhile` while containerd is down.
    pub fn restart_after(&mut self, meanwhile: impl FnOnce(&Self)) {
        self.stop_daemon();
        meanwhile(self);
        self.daemon = Some(self.daemon_cmd.spawn(&self.log));
        self.wait_ready();
    }

    /// The whole containerd log.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The lines of containerd's log that the shims of `runtime` (e.g.
    /// "io.containerd.runc.v2") printed at warning level or above. containerd copies each
    /// shim's log into its own output as it is; containerd's Go shims name their runtime
    /// on every line (`runtime=io.containerd.runc.v2`), ours too (quoted, by the
    /// containerd-shim crate's format).
    pub fn shim_warnings(&self, runtime: &str) -> Vec<String> {
        warning_lines(&self.log_text(), runtime)
    }

    fn stop_daemon(&mut self) {
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

    /// The last 40 lines of containerd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- containerd log (tail) ---\n{}",
            lines[from..].join("\n")
        )
    }

    /// `ctr --address A -n NS`.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address").arg(&self.address).args(["-n", &self.ns]);
        c
    }

    /// `ctr ARGS...` through [`World::run`].
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.w.run(self.cmd().args(args))
    }

    /// [`Containerd::ctr`], failing the test (with containerd's log) unless it succeeds.
    #[track_caller]
    pub fn ctr_ok(&self, args: &[&str]) -> Output {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?} failed\n{}\n{}",
            describe(&o),
            self.log_tail()
        );
        o
    }

    /// `ctr run SHIM_FLAGS... --env PATH=... FLAGS... --rootfs ROOTFS ID ARGS...`.
    pub fn run_rootfs_cmd<S: AsRef<OsStr>>(
        &self,
        shim_flags: &[S],
        flags: &[&str],
        id: &str,
        args: &[&str],
    ) -> Command {
        let mut c = self.cmd();
        c.arg("run")
            .args(shim_flags)
            .args(["--env", CONTAINER_PATH])
            .args(flags)
            .arg("--rootfs")
            .arg(&self.rootfs)
            .arg(id)
            .args(args);
        c
    }

    /// The task's STATUS column in `ctr task ls` ("" when there is no such task).
    #[track_caller]
    pub fn task_status(&self, id: &str) -> String {
        self.task_ls_column(id, 2)
    }

    /// The task's pid as `ctr task ls` shows it (0 if not listed).
    pub fn task_pid(&self, id: &str) -> i32 {
        self.task_ls_column(id, 1).parse().unwrap_or(0)
    }

    fn task_ls_column(&self, id: &str, column: usize) -> String {
        let o = self.ctr(&["task", "ls"]);
        if self.strict_task_ls {
            assert_ok(&o, "ctr task ls");
        }
        stdout_of(&o)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(column))
            .unwrap_or("")
            .to_string()
    }

    /// Pids of the shim processes serving this test's containerd.
    pub fn shims(&self) -> Vec<i32> {
        let address = self.address.to_string_lossy().into_owned();
        processes_with(&[&self.shim_binary, &address])
    }

    /// No container is left in the namespace (and, if so set up, no shim is left).
    #[track_caller]
    pub fn no_containers_left(&self) {
        let o = self.ctr(&["containers", "ls", "-q"]);
        assert_ok(&o, "ctr containers ls");
        assert_eq!(stdout_of(&o).trim(), "", "containers left");
        if self.wait_shims_gone {
            // Generous: under a loaded CI run a shim's exit after a failed create once took
            // longer than 10 s (not reproduced since); a shim that stays is still a failure.
            let gone = poll(Duration::from_secs(30), || self.shims().is_empty());
            let left = self.shims();
            let cmdlines: Vec<String> = left.iter().map(|p| cmdline(*p)).collect();
            assert!(gone, "shims still running: {left:?} {cmdlines:?}");
        }
    }

    /// Kills and deletes every task and container of the namespace, paused ones too,
    /// and removes its images (for a failed test).
    pub fn remove_all(&self) {
        let o = self.ctr(&["containers", "ls", "-q"]);
        for id in stdout_of(&o).split_whitespace() {
            let _ = self.ctr(&["task", "resume", id]);
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
        self.stop_daemon();
    }
}

/// How the test's containerd is started, kept to start it again.
struct DaemonCmd {
    containerd: PathBuf,
    config: PathBuf,
    /// Put first on the daemon's PATH, for the shim under test.
    shim_dir: Option<PathBuf>,
    /// The daemon's temporary directory, inside the world.
    tmp: PathBuf,
}

impl DaemonCmd {
    /// Starts the daemon, appending its output to `log`.
    fn spawn(&self, log: &Path) -> Child {
        let out = || {
            fs::File::options()
                .create(true)
                .append(true)
                .open(log)
                .unwrap()
        };
        // containerd never removes the directory it unpacks a checkpoint into for a
        // restore (os.MkdirTemp in $XDG_RUNTIME_DIR, else $TMPDIR: plugins/services/tasks/
        // local.go, 1.6 to 2.1); in the world's own, it goes with the world.
        fs::create_dir_all(&self.tmp).unwrap();
        let mut daemon = Command::new(&self.containerd);
        daemon
            .env_remove("XDG_RUNTIME_DIR")
            .env("TMPDIR", &self.tmp)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(out())
            .stderr(out());
        if let Some(dir) = &self.shim_dir {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let path = std::env::join_paths(
                std::iter::once(dir.clone()).chain(std::env::split_paths(&path)),
            )
            .unwrap();
            daemon.env("PATH", path);
        }
        daemon
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.containerd.display()))
    }
}

/// `ctr events` in the background, already subscribed when [`EventWatch::start`] returns;
/// stopped when dropped.
pub struct EventWatch {
    child: std::process::Child,
    out: PathBuf,
}

impl EventWatch {
    /// Starts `ctr events` on `c` and waits until it is subscribed.
    pub fn start(c: &Containerd) -> EventWatch {
        let out = c.w.path(&format!("events-{}.txt", c.w.next()));
        let child = c
            .cmd()
            .arg("events")
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ctr events");
        let watch = EventWatch { child, out };
        // ctr events subscribes asynchronously: wait until it sees an event of ours.
        let probe = c.w.name("probe");
        let subscribed = poll(Duration::from_secs(10), || {
            let _ = c.ctr(&["namespaces", "label", &c.ns, &format!("probe={probe}")]);
            watch.text().contains(&probe)
        });
        assert!(subscribed, "ctr events saw nothing\n{}", watch.text());
        watch
    }

    /// Every event so far, one per line.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits at most `timeout` for an event on `topic` that names `id`.
    pub fn saw(&self, timeout: Duration, topic: &str, id: &str) -> bool {
        poll(timeout, || {
            self.text()
                .lines()
                .any(|l| l.contains(topic) && l.contains(id))
        })
    }

    /// Waits at most `timeout` for the TaskExit of `id`'s init with exit status `status`.
    pub fn saw_exit(&self, timeout: Duration, id: &str, status: u32) -> bool {
        let init = format!("\"id\":\"{id}\"");
        let status = format!("\"exit_status\":{status}");
        poll(timeout, || {
            self.text()
                .lines()
                .any(|l| l.contains("/tasks/exit") && l.contains(&init) && l.contains(&status))
        })
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a containerd log where a record of `runtime`'s shims is at warning level
/// or above (see [`Containerd::shim_warnings`]).
pub fn warning_lines(log: &str, runtime: &str) -> Vec<String> {
    let plain = format!("runtime={runtime}");
    let quoted = format!("runtime=\"{runtime}\"");
    // containerd copies the shim's log into its own in chunks, so a line can hold
    // the start of a record of one writer and then a whole record of the other
    // (seen: our debug line cut after `msg="`, then containerd's own warning). Each
    // record starts with `time=` and is judged alone, by its first `level=` field.
    let warns = |record: &str| {
        let words: Vec<&str> = record.split_whitespace().collect();
        words.iter().any(|w| *w == plain || *w == quoted)
            && matches!(
                words.iter().find_map(|w| w.strip_prefix("level=")),
                Some("warn" | "warning" | "error" | "fatal" | "panic")
            )
    };
    log.lines()
        .filter(|l| records(l).into_iter().any(warns))
        .map(str::to_string)
        .collect()
}

/// The log records on one line: `time=` starts one where no letter comes before it
/// (`runtime=` does not start one).
fn records(line: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = line
        .match_indices("time=")
        .map(|(i, _)| i)
        .filter(|&i| i > 0 && !line[..i].ends_with(|c: char| c.is_ascii_alphanumeric()))
        .collect();
    starts.insert(0, 0);
    starts.push(line.len());
    starts.windows(2).map(|w| &line[w[0]..w[1]]).collect()
}
