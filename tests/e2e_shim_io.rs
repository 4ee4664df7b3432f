//! End to end: the log URIs of `containerd-shim-youki-v2` with a real containerd (Debian's
//! 1.6 here) and `ctr run --log-uri`: `file:///path` (both streams appended to one file)
//! and `binary:///path?args` (a logging binary, as nerdctl's log driver is: the container's
//! stdout on its fd 3, stderr on fd 4, a ready pipe on fd 5, CONTAINER_ID and
//! CONTAINER_NAMESPACE in its environment). The logging binary here is a shell script in
//! the test's work directory, so the leak check sees it if it outlives the test.
//!
//! Each test starts a private containerd (as tests/e2e_shim.rs does) with the cargo-built
//! shim first on its PATH and stops it by its pid; the [`World`] then checks that no
//! shim, logger, container process, mount, cgroup or bundle is left.

mod common;
mod e2e_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{assert_ok, build_rootfs, describe, pid_alive, poll, stderr_of, stdout_of};
use e2e_support::*;

const SHIM: &str = "containerd-shim-youki-v2";
const RUNTIME: &str = "io.containerd.youki.v2";

/// Builds the shim into this build's target directory (a no-op when it is built already)
/// and returns that directory.
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
        dir
    })
}

struct Containerd {
    ctr: PathBuf,
    daemon: Option<Child>,
    address: PathBuf,
    log: PathBuf,
    ns: String,
    rootfs: PathBuf,
    /// Last: dropped after the daemon is stopped, it checks for leaks.
    w: World,
}

impl Containerd {
    fn start(kind: &str) -> Containerd {
        let w = World::new(kind);
        let containerd = client("containerd", "containerd");
        let ctr = client("ctr", "containerd");
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
            std::iter::once(shim_dir().to_path_buf()).chain(std::env::split_paths(&path)),
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
        w.allow_cgroup(&ns);
        let rootfs = w.path("busybox/rootfs");
        build_rootfs(&rootfs);
        let c = Containerd {
            ctr,
            daemon: Some(daemon),
            address,
            log,
            ns,
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

    fn bundle(&self, id: &str) -> PathBuf {
        self.w
            .path("state/io.containerd.runtime.v2.task")
            .join(&self.ns)
            .join(id)
    }

    /// `ctr run --runtime io.containerd.youki.v2 --log-uri URI FLAGS... --rootfs R ID ARGS...`.
    fn run_logged(&self, uri: &str, flags: &[&str], id: &str, args: &[&str]) -> Output {
        self.w.must_vanish(self.bundle(id));
        let mut c = self.cmd();
        c.arg("run")
            .args(["--runtime", RUNTIME, "--log-uri", uri])
            .args(["--env", CONTAINER_PATH])
            .args(flags)
            .arg("--rootfs")
            .arg(&self.rootfs)
            .arg(id)
            .args(args);
        self.w.run(&mut c)
    }

    fn task_status(&self, id: &str) -> String {
        let o = self.ctr(&["task", "ls"]);
        stdout_of(&o)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    }

    fn shims(&self) -> Vec<i32> {
        let address = self.address.to_string_lossy().into_owned();
        processes_with(&[SHIM, &address])
    }

    #[track_caller]
    fn no_containers_left(&self) {
        let o = self.ctr(&["containers", "ls", "-q"]);
        assert_ok(&o, "ctr containers ls");
        assert_eq!(stdout_of(&o).trim(), "", "containers left");
        let gone = poll(Duration::from_secs(10), || self.shims().is_empty());
        assert!(gone, "shims still running: {:?}", self.shims());
    }

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

/// Live processes whose command line contains every one of `words`.
fn processes_with(words: &[&str]) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            words.iter().all(|w| cmd.contains(w)) && pid_alive(*pid)
        })
        .collect()
}

/// A logging binary: a shell script at `path` that, for `?out=BASE`, writes its
/// environment to BASE.env and copies fd 3 to BASE.stdout and fd 4 to BASE.stderr, then
/// closes fd 5 (ready) and exits once both streams have ended.
fn copying_logger(path: &Path) {
    let script = r#"#!/bin/sh
[ "$1" = out ] || { echo "usage: $0 out BASE" >&2; exit 2; }
base=$2
env > "$base.env"
cat <&3 > "$base.stdout" 5>&- &
cat <&4 > "$base.stderr" 5>&- &
exec 5>&-
wait
"#;
    fs::write(path, script).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Writes N lines to stdout (`out-<i>`) and N to stderr (`err-<i>`), then exits at once.
fn chatty(n: usize) -> String {
    format!("i=0; while [ $i -lt {n} ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done; exit 5")
}

#[track_caller]
fn assert_lines(text: &str, prefix: &str, n: usize) {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n, "{prefix}: {} lines", lines.len());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("{prefix}-{i}"), "{prefix}: line {i}");
    }
}

#[test]
fn shim_log_uri_file_appends_both_streams_completely() {
    let c = Containerd::start("shim-logfile");
    let id = c.w.name("file");
    // A directory that does not exist yet: the shim creates it.
    let log = c.w.path("logs/new/dir/container.log");
    let uri = format!("file://{}", log.display());
    let n = 5000;
    let o = c.run_logged(&uri, &["--rm"], &id, &["sh", "-c", &chatty(n)]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}\n{}",
        describe(&o),
        c.log_tail()
    );
    assert_eq!(stdout_of(&o), "", "output went to the log, not to ctr");
    let text = fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    // One file, both streams: each stream's lines in order, all of them.
    let outs: Vec<&str> = text.lines().filter(|l| l.starts_with("out-")).collect();
    let errs: Vec<&str> = text.lines().filter(|l| l.starts_with("err-")).collect();
    assert_lines(&outs.join("\n"), "out", n);
    assert_lines(&errs.join("\n"), "err", n);
    assert_eq!(text.lines().count(), 2 * n, "stray lines in the log");
    c.no_containers_left();

    // The same file again: appended, not truncated.
    let id = c.w.name("again");
    let o = c.run_logged(&uri, &["--rm"], &id, &["echo", "second run"]);
    assert_ok(&o, "ctr run --rm --log-uri file:// (second)");
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2 * n + 1);
    assert_eq!(text.lines().last(), Some("second run"));
    c.no_containers_left();
}

#[test]
fn shim_log_uri_binary_gets_everything_before_the_exit() {
    let c = Containerd::start("shim-logbin");
    let logger = c.w.path("logger.sh");
    copying_logger(&logger);
    let id = c.w.name("bin");
    let base = c.w.path("out/bin");
    fs::create_dir_all(base.parent().unwrap()).unwrap();
    let uri = format!("binary://{}?out={}", logger.display(), base.display());
    let n = 20000;
    let o = c.run_logged(&uri, &["--rm"], &id, &["sh", "-c", &chatty(n)]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}\n{}",
        describe(&o),
        c.log_tail()
    );
    // ctr got the exit only after the logging binary had exited: the files are complete.
    let read = |ext: &str| fs::read_to_string(format!("{}.{ext}", base.display())).unwrap();
    assert_lines(&read("stdout"), "out", n);
    assert_lines(&read("stderr"), "err", n);
    let env = read("env");
    assert!(env.contains(&format!("CONTAINER_ID={id}\n")), "{env}");
    assert!(
        env.contains(&format!("CONTAINER_NAMESPACE={}\n", c.ns)),
        "{env}"
    );
    assert!(
        processes_with(&[logger.to_str().unwrap()]).is_empty(),
        "the logging binary outlived its container"
    );
    c.no_containers_left();
}

#[test]
fn shim_log_uri_binary_follows_a_detached_task() {
    let c = Containerd::start("shim-logbin-d");
    let logger = c.w.path("logger.sh");
    copying_logger(&logger);
    let id = c.w.name("d");
    let base = c.w.path("d");
    let uri = format!("binary://{}?out={}", logger.display(), base.display());
    let script = "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.05; done";
    let o = c.run_logged(&uri, &["-d"], &id, &["sh", "-c", script]);
    assert_ok(&o, "ctr run -d --log-uri binary://");
    assert_eq!(c.task_status(&id), "RUNNING");
    let stdout = PathBuf::from(format!("{}.stdout", base.display()));
    let ticking = poll(Duration::from_secs(10), || {
        fs::read_to_string(&stdout)
            .unwrap_or_default()
            .lines()
            .count()
            >= 3
    });
    assert!(ticking, "no output reached the logging binary");
    let loggers = processes_with(&[logger.to_str().unwrap()]);
    assert!(!loggers.is_empty(), "no logging binary running");
    // The logging binary is the shim's child (its reaper collects it).
    let shims = c.shims();
    for l in &loggers {
        let stat = fs::read_to_string(format!("/proc/{l}/stat")).unwrap_or_default();
        let ppid: i32 = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        assert!(
            shims.contains(&ppid) || loggers.contains(&ppid),
            "logger {l}'s parent {ppid} is not the shim ({shims:?})"
        );
    }

    c.ctr_ok(&["task", "kill", "-s", "KILL", &id]);
    let stopped = poll(Duration::from_secs(10), || c.task_status(&id) == "STOPPED");
    assert!(stopped, "not STOPPED: {:?}", c.task_status(&id));
    // TaskExit came after the logger's end.
    assert!(
        processes_with(&[logger.to_str().unwrap()]).is_empty(),
        "the logging binary outlived its container"
    );
    let text = fs::read_to_string(&stdout).unwrap();
    let ticks: Vec<&str> = text.lines().collect();
    for (i, l) in ticks.iter().enumerate() {
        assert_eq!(*l, format!("tick-{i}"), "line {i} of {}", ticks.len());
    }
    c.ctr_ok(&["task", "delete", &id]);
    c.ctr_ok(&["container", "rm", &id]);
    c.no_containers_left();
}

#[test]
fn shim_log_uri_binary_failures_are_clear_errors() {
    let c = Containerd::start("shim-logbin-bad");
    // Exits before it is ready: create fails with the reason, nothing is left.
    let broken = c.w.path("broken.sh");
    fs::write(&broken, "#!/bin/sh\necho cannot log >&2\nexit 1\n").unwrap();
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).unwrap();
    let id = c.w.name("broken");
    let o = c.run_logged(
        &format!("binary://{}", broken.display()),
        &["--rm"],
        &id,
        &["true"],
    );
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        stderr_of(&o).contains("exited before it was ready"),
        "the shim's reason expected\n{}",
        describe(&o)
    );
    let _ = c.ctr(&["containers", "rm", &id]);
    c.no_containers_left();

    // No such binary.
    let id = c.w.name("missing");
    let o = c.run_logged(
        &format!("binary://{}", c.w.path("no-such-logger").display()),
        &["--rm"],
        &id,
        &["true"],
    );
    assert!(!o.status.success(), "{}", describe(&o));
    assert!(
        stderr_of(&o).contains("No such file"),
        "the exec error expected\n{}",
        describe(&o)
    );
    let _ = c.ctr(&["containers", "rm", &id]);
    c.no_containers_left();
}
