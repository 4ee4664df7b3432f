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
use std::process::Output;
use std::time::Duration;

use common::{assert_ok, describe, poll, stderr_of, stdout_of};
use e2e_support::containerd::*;

const RUNTIME: &str = "io.containerd.youki.v2";

/// A private containerd with the cargo-built shim first on its PATH.
fn start(kind: &str) -> Containerd {
    Containerd::start(kind, Shim::youki())
}

fn bundle(c: &Containerd, id: &str) -> PathBuf {
    c.w.path("state/io.containerd.runtime.v2.task")
        .join(&c.ns)
        .join(id)
}

/// `ctr run --runtime io.containerd.youki.v2 --log-uri URI FLAGS... --rootfs R ID ARGS...`.
fn run_logged(c: &Containerd, uri: &str, flags: &[&str], id: &str, args: &[&str]) -> Output {
    c.w.must_vanish(bundle(c, id));
    let mut cmd = c.run_rootfs_cmd(&["--runtime", RUNTIME, "--log-uri", uri], flags, id, args);
    c.w.run(&mut cmd)
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
    let c = start("shim-logfile");
    let id = c.w.name("file");
    // A directory that does not exist yet: the shim creates it.
    let log = c.w.path("logs/new/dir/container.log");
    let uri = format!("file://{}", log.display());
    let n = 5000;
    let o = run_logged(&c, &uri, &["--rm"], &id, &["sh", "-c", &chatty(n)]);
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
    let o = run_logged(&c, &uri, &["--rm"], &id, &["echo", "second run"]);
    assert_ok(&o, "ctr run --rm --log-uri file:// (second)");
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 2 * n + 1);
    assert_eq!(text.lines().last(), Some("second run"));
    c.no_containers_left();
}

#[test]
fn shim_log_uri_binary_gets_everything_before_the_exit() {
    let c = start("shim-logbin");
    let logger = c.w.path("logger.sh");
    copying_logger(&logger);
    let id = c.w.name("bin");
    let base = c.w.path("out/bin");
    fs::create_dir_all(base.parent().unwrap()).unwrap();
    let uri = format!("binary://{}?out={}", logger.display(), base.display());
    let n = 20000;
    let o = run_logged(&c, &uri, &["--rm"], &id, &["sh", "-c", &chatty(n)]);
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
    let c = start("shim-logbin-d");
    let logger = c.w.path("logger.sh");
    copying_logger(&logger);
    let id = c.w.name("d");
    let base = c.w.path("d");
    let uri = format!("binary://{}?out={}", logger.display(), base.display());
    let script = "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.05; done";
    let o = run_logged(&c, &uri, &["-d"], &id, &["sh", "-c", script]);
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
    let c = start("shim-logbin-bad");
    // Exits before it is ready: create fails with the reason, nothing is left.
    let broken = c.w.path("broken.sh");
    fs::write(&broken, "#!/bin/sh\necho cannot log >&2\nexit 1\n").unwrap();
    fs::set_permissions(&broken, fs::Permissions::from_mode(0o755)).unwrap();
    let id = c.w.name("broken");
    let o = run_logged(
        &c,
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
    let o = run_logged(
        &c,
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
