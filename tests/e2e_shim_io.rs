//! End to end: the log URIs of `containerd-shim-youki-v2` with a real containerd (Debian's
//! 1.6 here) and `ctr run --log-uri`: `file:///path` (both streams appended to one file)
//! and `binary:///path?args` (a logging binary, as nerdctl's log driver is: the container's
//! stdout on its fd 3, stderr on fd 4, a ready pipe on fd 5, CONTAINER_ID and
//! CONTAINER_NAMESPACE in its environment). The logging binary here is a shell script in
//! the test's work directory, so the leak check sees it if it outlives the test.
//!
//! Then the fifos' client going away and coming back (a containerd or dockerd restart,
//! Docker's live-restore), with our shim and, as the reference, containerd's runc shim
//! with runc: output written meanwhile waits and arrives with no line missing, stdin gets
//! no end-of-file when the client's writer closes, CloseIO still ends it; for pipes and
//! terminals.
//!
//! Each test starts a private containerd (as tests/e2e_shim.rs does) with the cargo-built
//! shim first on its PATH and stops it by its pid; the [`World`] then checks that no
//! shim, logger, container process, mount, cgroup or bundle is left.

mod common;
mod e2e_support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_ok, describe, poll, stderr_of, stdout_of};
use e2e_support::containerd::*;
use e2e_support::{client, wait_child, CLIENT_TIMEOUT};

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

// ---------------------------------------------------------------------------------------
// The client going away and coming back (a containerd or dockerd restart, Docker's
// live-restore): the fifos' other ends close and open again. Each test runs with our shim
// and, as the reference, with containerd's runc shim and runc. The client is `ctr run -d`,
// which makes the fifos (in the test's `--fifo-dir`), starts the task and exits: from then
// on the test plays the client, opening the fifos itself.

/// The shim a stdio test runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rt {
    /// This project's shim.
    Youki,
    /// containerd's runc shim with runc: the reference.
    Runc,
}

/// A private containerd for `rt`.
fn start_for(kind: &str, rt: Rt) -> Containerd {
    match rt {
        Rt::Youki => start(kind),
        Rt::Runc => {
            client("containerd-shim-runc-v2", "containerd");
            Containerd::start(kind, Shim::runc())
        }
    }
}

/// The flags of `ctr run` that pick `rt`'s shim, and the test's fifo directory.
fn rt_flags(c: &Containerd, rt: Rt, id: &str) -> Vec<String> {
    let mut flags = vec!["--fifo-dir".to_string(), c.fifo_dir.display().to_string()];
    match rt {
        Rt::Youki => {
            c.w.must_vanish(bundle(c, id));
            flags.extend(["--runtime".into(), RUNTIME.into()]);
        }
        Rt::Runc => {
            let root = c.w.path("runc-root");
            c.w.must_vanish(root.join(&c.ns).join(id));
            flags.extend([
                "--runtime".into(),
                "io.containerd.runc.v2".into(),
                "--runc-binary".into(),
                client("runc", "runc").display().to_string(),
                "--runc-root".into(),
                root.display().to_string(),
            ]);
        }
    }
    flags
}

/// `ctr run -d [-t] ... ID sh -c SCRIPT`: ctr makes the fifos, starts the task and exits,
/// and with it its ends of the fifos: the client is gone. Its stdin is a pipe (or, for
/// `-t`, a terminal) that stays open until ctr has exited, so that ctr never reads the end
/// of its input (which would make it call CloseIO).
fn run_detached(c: &Containerd, rt: Rt, tty: bool, id: &str, script: &str) {
    let flags: &[&str] = if tty { &["-d", "-t"] } else { &["-d"] };
    let mut cmd = c.run_rootfs_cmd(&rt_flags(c, rt, id), flags, id, &["sh", "-c", script]);
    let log = c.w.path(&format!("{id}.ctr"));
    let file = || fs::File::create(&log).unwrap();
    let mut keep = Vec::new();
    if tty {
        let (master, slave) = e2e_support::openpty();
        let io = || Stdio::from(slave.try_clone().unwrap());
        cmd.stdin(io()).stdout(io()).stderr(io());
        keep.push(master);
    } else {
        cmd.stdin(Stdio::piped()).stdout(file()).stderr(file());
    }
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let stdin = child.stdin.take();
    let status = wait_child(&mut child, CLIENT_TIMEOUT)
        .unwrap_or_else(|| panic!("{shown} did not finish\n{}", c.log_tail()));
    drop((stdin, keep));
    assert!(
        status.success(),
        "{shown}: {status:?}\n{}\n{}",
        fs::read_to_string(&log).unwrap_or_default(),
        c.log_tail()
    );
}

/// The fifo `ctr` made for the stream (`stdin`, `stdout`) of process `id`.
fn fifo(c: &Containerd, id: &str, stream: &str) -> PathBuf {
    let name = format!("{id}-{stream}");
    fs::read_dir(&c.fifo_dir)
        .unwrap()
        .flatten()
        .map(|d| d.path().join(&name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no fifo {name} under {}", c.fifo_dir.display()))
}

/// The test as the client coming back to an output fifo: reads it until it is dropped
/// (the client goes away again). Opened non-blocking, so that a fifo without a writer
/// (the shim gave up on it) fails the test instead of hanging it.
struct FifoReader {
    file: fs::File,
    text: String,
}

impl FifoReader {
    fn open(path: &Path) -> FifoReader {
        let file = fs::File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        FifoReader {
            file,
            text: String::new(),
        }
    }

    /// Reads until `done` holds for all this reader got, at most `timeout`; whether it
    /// held. The shim's writer missing looks like an empty fifo: reads return 0.
    fn read_until(&mut self, timeout: Duration, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !done(&self.text) {
            if Instant::now() > deadline {
                return false;
            }
            match self.file.read(&mut buf) {
                Ok(n) if n > 0 => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("reading the fifo: {e}"),
            }
        }
        true
    }
}

/// The client's writer coming back to a stdin fifo: opens it (non-blocking: a fifo
/// without a reader, the shim's stdin gone, fails the test), writes `data`, closes it.
#[track_caller]
fn write_fifo(path: &Path, data: &str) {
    let mut f = fs::File::options()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: nobody reads the stdin fifo (the shim dropped it)",
                path.display()
            )
        });
    f.write_all(data.as_bytes()).unwrap();
}

/// The complete lines of `text` (a last partial one left out), without a terminal's `\r`.
fn complete_lines(text: &str) -> Vec<String> {
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end].lines().map(|l| l.replace('\r', "")).collect()
}

/// Checks that the complete lines of `text` are tick-0, tick-1, ... without a gap;
/// returns their number.
#[track_caller]
fn check_ticks(text: &str) -> usize {
    let lines = complete_lines(text);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            *l,
            format!("tick-{i}"),
            "line {i} of {}: {text:?}",
            lines.len()
        );
    }
    lines.len()
}

/// Kills the task, deletes it and its container (the copies that wait for a client must
/// not hold Delete up), and checks that nothing is left.
fn finish(c: &Containerd, id: &str) {
    c.ctr_ok(&["task", "kill", "-s", "SIGKILL", id]);
    let stopped = poll(Duration::from_secs(20), || c.task_status(id) == "STOPPED");
    assert!(
        stopped,
        "not STOPPED: {:?}\n{}",
        c.task_status(id),
        c.log_tail()
    );
    c.ctr_ok(&["task", "delete", id]);
    c.ctr_ok(&["container", "rm", id]);
    c.no_containers_left();
}

/// A ticker writes numbered lines while its client is away, then while the client reads,
/// is away again and comes back: every line arrives, in order, none missing.
fn ticker_output_survives_the_reader_going_away(rt: Rt, tty: bool) {
    let c = start_for(if tty { "tick-tty" } else { "tick" }, rt);
    let id = c.w.name("tick");
    // It ticks from SIGUSR1 on: after ctr is gone. /armed-ID says the trap is set: a
    // SIGUSR1 before that ends sh (seen under load, with runc's shim).
    let armed = format!("/armed-{id}");
    let script = format!(
        "go=; trap 'go=1' USR1; : > {armed}; while [ -z \"$go\" ]; do sleep 0.05; done; \
         i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.01; done"
    );
    run_detached(&c, rt, tty, &id, &script);
    let stdout = fifo(&c, &id, "stdout");
    let trap_set = poll(Duration::from_secs(20), || {
        c.rootfs.join(armed.trim_start_matches('/')).exists()
    });
    assert!(
        trap_set,
        "{rt:?}: the ticker never set its trap\n{}",
        c.log_tail()
    );
    c.ctr_ok(&["task", "kill", "-s", "SIGUSR1", &id]);
    // Nobody reads: the lines wait in the fifo.
    std::thread::sleep(Duration::from_secs(1));
    let mut r = FifoReader::open(&stdout);
    let got = r.read_until(Duration::from_secs(10), |t| complete_lines(t).len() >= 20);
    assert!(
        got,
        "{rt:?}: the ticker's output did not reach the client that came back: {:?}\n{}",
        r.text,
        c.log_tail()
    );
    let mut all = std::mem::take(&mut r.text);
    drop(r);
    let first = check_ticks(&all);
    // Away again, and back.
    std::thread::sleep(Duration::from_secs(1));
    let mut r = FifoReader::open(&stdout);
    let before = all.clone();
    let got = r.read_until(Duration::from_secs(10), |t| {
        complete_lines(&format!("{before}{t}")).len() >= first + 60
    });
    all.push_str(&r.text);
    drop(r);
    assert!(got, "{rt:?}: no new lines after the second return: {all:?}");
    let n = check_ticks(&all);
    assert!(n >= first + 60, "{rt:?}: {n} lines");
    assert_eq!(c.task_status(&id), "RUNNING");
    finish(&c, &id);
}

/// A reader of stdin keeps its input while the client's writer closes and opens again,
/// and its output while the client's reader does: no end-of-file, nothing lost.
fn stdin_survives_the_writer_going_away(rt: Rt, tty: bool) {
    let c = start_for(if tty { "stdin-tty" } else { "stdin" }, rt);
    let id = c.w.name("cat");
    let script = "while read l; do echo got-$l; done; echo eof; exit 4";
    run_detached(&c, rt, tty, &id, script);
    let (stdin, stdout) = (fifo(&c, &id, "stdin"), fifo(&c, &id, "stdout"));
    // ctr, stdin's writer, is gone.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.task_status(&id),
        "RUNNING",
        "{rt:?}: the container saw the end of its input when ctr's writer closed"
    );
    let mut out = FifoReader::open(&stdout);
    for word in ["a", "b"] {
        write_fifo(&stdin, &format!("{word}\n"));
        let want = format!("got-{word}");
        let got = out.read_until(Duration::from_secs(10), |t| t.contains(&want));
        assert!(got, "{rt:?}: no {want}: {:?}\n{}", out.text, c.log_tail());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(c.task_status(&id), "RUNNING", "{rt:?}: after {want}");
    }
    // Output written while stdout's reader is away waits for it.
    drop(out);
    write_fifo(&stdin, "c\n");
    std::thread::sleep(Duration::from_millis(300));
    let mut out = FifoReader::open(&stdout);
    let got = out.read_until(Duration::from_secs(10), |t| t.contains("got-c"));
    assert!(got, "{rt:?}: got-c lost: {:?}", out.text);
    assert!(!out.text.contains("eof"), "{rt:?}: {:?}", out.text);
    assert_eq!(c.task_status(&id), "RUNNING");
    drop(out);
    finish(&c, &id);
}

/// CloseIO still ends the input: `ctr run` calls it when its own stdin ends. Another
/// writer of the stdin fifo coming and going meanwhile is not the end.
fn close_io_still_gives_eof(rt: Rt) {
    let c = start_for("closeio", rt);
    let id = c.w.name("closeio");
    let script = "while read l; do echo got-$l; done; echo eof; exit 4";
    let mut cmd = c.run_rootfs_cmd(
        &rt_flags(&c, rt, &id),
        &["--rm"],
        &id,
        &["sh", "-c", script],
    );
    let err = c.w.path("closeio.err");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap();
    let mut ctr_in = child.stdin.take().unwrap();
    let mut ctr_out = child.stdout.take().unwrap();
    let text = Arc::new(Mutex::new(String::new()));
    let t = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = ctr_out.read(&mut buf) {
            if n == 0 {
                break;
            }
            t.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let seen = |what: &str| {
        poll(Duration::from_secs(10), || {
            text.lock().unwrap().contains(what)
        })
    };
    ctr_in.write_all(b"x\n").unwrap();
    assert!(seen("got-x"), "{rt:?}: {:?}", text.lock().unwrap());
    write_fifo(&fifo(&c, &id, "stdin"), "y\n");
    assert!(seen("got-y"), "{rt:?}: {:?}", text.lock().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!text.lock().unwrap().contains("eof"));
    // ctr reads the end of its stdin and calls CloseIO.
    drop(ctr_in);
    let status = wait_child(&mut child, CLIENT_TIMEOUT);
    reader.join().unwrap();
    let out = text.lock().unwrap().clone();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(4),
        "{rt:?}: {status:?} {out:?}\n{}\n{}",
        fs::read_to_string(&err).unwrap_or_default(),
        c.log_tail()
    );
    assert_eq!(out, "got-x\ngot-y\neof\n", "{rt:?}");
    c.no_containers_left();
}

#[test]
fn stdio_output_survives_the_reader_going_away_youki() {
    ticker_output_survives_the_reader_going_away(Rt::Youki, false);
}

#[test]
fn stdio_output_survives_the_reader_going_away_runc() {
    ticker_output_survives_the_reader_going_away(Rt::Runc, false);
}

#[test]
fn stdio_terminal_output_survives_the_reader_going_away_youki() {
    ticker_output_survives_the_reader_going_away(Rt::Youki, true);
}

#[test]
fn stdio_terminal_output_survives_the_reader_going_away_runc() {
    ticker_output_survives_the_reader_going_away(Rt::Runc, true);
}

#[test]
fn stdio_stdin_survives_the_writer_going_away_youki() {
    stdin_survives_the_writer_going_away(Rt::Youki, false);
}

#[test]
fn stdio_stdin_survives_the_writer_going_away_runc() {
    stdin_survives_the_writer_going_away(Rt::Runc, false);
}

#[test]
fn stdio_terminal_stdin_survives_the_writer_going_away_youki() {
    stdin_survives_the_writer_going_away(Rt::Youki, true);
}

#[test]
fn stdio_terminal_stdin_survives_the_writer_going_away_runc() {
    stdin_survives_the_writer_going_away(Rt::Runc, true);
}

#[test]
fn stdio_close_io_still_gives_eof_youki() {
    close_io_still_gives_eof(Rt::Youki);
}

#[test]
fn stdio_close_io_still_gives_eof_runc() {
    close_io_still_gives_eof(Rt::Runc);
}
