//! End to end through ctr: how a task starts, as Docker sees it. With our shim, with
//! containerd's runc shim and runc (the reference), and with containerd's runc shim and
//! the runtime under test (`RUNTIME_BIN`, our CLI by default: Docker with youki as a
//! runc-compatible runtime).
//!
//! - The terminal's first size: Docker, containerd and CRI put the client's size in
//!   `process.consoleSize`; the program must see it from its first instruction, before the
//!   client's own resize (which comes after Start) arrives. `ctr run -d -t` and
//!   `ctr task exec -d -t` make no resize at all, so what the program sees first is only
//!   the spec's size: `stty size` must print it, 10 times in a row, for run and for exec.
//! - A program that is not there or cannot run: create (or exec) fails, and the error that
//!   reaches the client says so in runc's words, from which Docker derives 127 and 126
//!   (tests/data/docker_exit_codes.rs); ctr exits as it does with runc.
//!
//! Each test starts a private containerd (as tests/e2e_shim.rs does) and stops it by its
//! pid; the [`World`] then checks that nothing of it is left.

mod common;
#[path = "data/docker_exit_codes.rs"]
mod docker;
mod e2e_support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{describe, poll, stderr_of};
use docker::assert_docker_exit_code;
use e2e_support::containerd::*;
use e2e_support::{client, runtime, wait_child, CLIENT_TIMEOUT};
use serde_json::json;

/// Who runs the tasks.
#[derive(Clone, Debug)]
enum Rt {
    /// This project's shim.
    Youki,
    /// containerd's runc shim with this runtime binary (`--runc-binary`).
    RuncShim(PathBuf),
}

impl Rt {
    /// containerd's runc shim with runc: the reference.
    fn runc() -> Rt {
        Rt::RuncShim(client("runc", "runc"))
    }

    /// containerd's runc shim with the runtime under test.
    fn cli() -> Rt {
        Rt::RuncShim(runtime())
    }
}

/// A private containerd for `rt`.
fn start(kind: &str, rt: &Rt) -> Containerd {
    match rt {
        Rt::Youki => Containerd::start(kind, Shim::youki()),
        Rt::RuncShim(_) => {
            client("containerd-shim-runc-v2", "containerd");
            Containerd::start(kind, Shim::runc())
        }
    }
}

/// The flags of `ctr run` that pick `rt`, and the test's fifo directory.
fn rt_flags(c: &Containerd, rt: &Rt, id: &str) -> Vec<String> {
    let mut flags = vec!["--fifo-dir".to_string(), c.fifo_dir.display().to_string()];
    match rt {
        Rt::Youki => {
            c.w.must_vanish(
                c.w.path("state/io.containerd.runtime.v2.task")
                    .join(&c.ns)
                    .join(id),
            );
            flags.extend(["--runtime".into(), "io.containerd.youki.v2".into()]);
        }
        Rt::RuncShim(binary) => {
            let root = c.w.path("runc-root");
            c.w.must_vanish(root.join(&c.ns).join(id));
            flags.extend([
                "--runtime".into(),
                "io.containerd.runc.v2".into(),
                "--runc-binary".into(),
                binary.display().to_string(),
                "--runc-root".into(),
                root.display().to_string(),
            ]);
        }
    }
    flags
}

/// Runs a ctr command whose stdio is a terminal of ours (`-t` needs one) until it exits,
/// and asserts it succeeded; returns what ctr wrote to that terminal.
fn ctr_on_pty(c: &Containerd, mut cmd: Command) -> String {
    let pty = runtime_core::os::open_pty().expect("openpty");
    let io = || Stdio::from(pty.slave.try_clone().expect("dup pty slave"));
    cmd.stdin(io()).stdout(io()).stderr(io());
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let status = wait_child(&mut child, CLIENT_TIMEOUT)
        .unwrap_or_else(|| panic!("{shown} did not finish\n{}", c.log_tail()));
    // ctr's terminal stays open until it has exited: it never reads an end of input.
    let shown_output = terminal_output(&pty.master);
    drop(pty);
    assert!(status.success(), "{shown}: {status:?}\n{}", c.log_tail());
    shown_output
}

/// What is waiting on a terminal's master, read without blocking.
fn terminal_output(master: &std::os::fd::OwnedFd) -> String {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(master, FcntlArg::F_GETFL).expect("F_GETFL"));
    fcntl(master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).expect("F_SETFL");
    let mut f = fs::File::from(master.try_clone().expect("dup pty master"));
    let mut bytes = Vec::new();
    let mut buf = [0u8; 1024];
    // Until empty (EAGAIN) or the slave side is gone (EIO).
    while let Ok(n @ 1..) = f.read(&mut buf) {
        bytes.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The first complete line of `text` that starts with "size", without its `\r`.
fn size_line(text: &str) -> Option<String> {
    text.split('\n')
        .find(|l| l.starts_with("size") && text.contains(&format!("{l}\n")))
        .map(|l| l.trim_end_matches('\r').to_string())
}

/// The size line of a process started by `ctr -d -t` whose terminal showed `shown` and
/// whose stdout fifo is `out`: asked for through its stdin, read from the fifo.
///
/// With containerd's runc shim, the stdin copy may end with ctr's writer (see
/// [`ask_size`]): the script's `read` then returns at once and the line may come out while
/// ctr still copies it, to ctr's own terminal.
fn asked_size_line(c: &Containerd, rt: &Rt, id: &str, shown: &str) -> String {
    let out = fifo(c, id, "stdout");
    // Back on stdout before the line is asked for.
    let reader = open_output(&out);
    if !matches!(rt, Rt::Youki) {
        if let Some(line) = size_line(shown) {
            return line;
        }
    }
    ask_size(c, rt, id);
    first_size_line(c, reader, &out)
}

/// The fifo ctr made for `stream` (stdin, stdout) of process `id` (a task or an exec id).
fn fifo(c: &Containerd, id: &str, stream: &str) -> PathBuf {
    let name = format!("{id}-{stream}");
    fs::read_dir(&c.fifo_dir)
        .unwrap()
        .flatten()
        .map(|d| d.path().join(&name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no fifo {name} under {}", c.fifo_dir.display()))
}

/// Opens `fifo` for reading, as a client coming back after ctr -d left: non-blocking, so
/// that a fifo nobody writes reads as empty instead of hanging the test.
fn open_output(fifo: &Path) -> fs::File {
    fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .unwrap_or_else(|e| panic!("{}: {e}", fifo.display()))
}

/// Reads `f` (opened by [`open_output`]) until a line that starts with "size" is
/// complete; returns that line.
fn first_size_line(c: &Containerd, mut f: fs::File, fifo: &Path) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    loop {
        if let Some(line) = size_line(&text) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no size line in {text:?}\n{}",
            c.log_tail()
        );
        match f.read(&mut buf) {
            Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("reading {}: {e}", fifo.display()),
        }
    }
}

/// Asks the terminal's size first thing, and prints it once a line comes in (which the
/// test sends after ctr is gone: ctr -d copies what comes before it exits to its own
/// terminal). busybox's `stty size` says "stty: standard input" on a terminal of size 0x0.
const SIZE_SCRIPT: &str = "s=$(stty size 2>&1); read line; echo size $s; exec sleep 100";

/// Sends process `id` (a task or exec id) the line it waits for, through its stdin fifo
/// (our shim holds the fifo open after ctr left, as it must for a client that comes back).
///
/// containerd's runc shim departs from that: its stdin copy ends when it reads the end of
/// ctr's writer (if no other writer came first) and closes the fifo. The script's `read`
/// then got end-of-file and it printed its size already; opening the fifo fails with
/// ENXIO (seen under load in CI, runc's shim with youki and with runc alike).
fn ask_size(c: &Containerd, rt: &Rt, id: &str) {
    let path = fifo(c, id, "stdin");
    let opened = fs::File::options()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) && !matches!(rt, Rt::Youki) => return,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    f.write_all(b"go\n").expect("write the stdin fifo");
}

/// Kills the task and removes it and its container.
fn remove(c: &Containerd, id: &str) {
    c.ctr_ok(&["task", "kill", "-s", "SIGKILL", id]);
    let stopped = poll(Duration::from_secs(20), || c.task_status(id) == "STOPPED");
    assert!(stopped, "{id} not STOPPED\n{}", c.log_tail());
    c.ctr_ok(&["task", "delete", id]);
    c.ctr_ok(&["container", "rm", id]);
}

/// `ctr run -d -t --config` of a spec with `process.consoleSize`, 10 times, then 10
/// `ctr task exec -d -t` in the last one (ctr copies the container's process, its
/// consoleSize included, into the exec's): each program's first `stty size` is the size.
fn first_terminal_size(rt: Rt) {
    let c = start("first-size", &rt);
    let mut last = None;
    for i in 0..10u64 {
        let (rows, cols) = (20 + i, 80 + i);
        let id = c.w.name("size");
        let mut spec = common::default_config(&c.w.marker, &format!("/{}/{id}", c.ns));
        spec["root"] = json!({"path": c.rootfs, "readonly": true});
        spec["process"]["terminal"] = json!(true);
        spec["process"]["consoleSize"] = json!({"height": rows, "width": cols});
        spec["process"]["args"] = json!(["sh", "-c", SIZE_SCRIPT]);
        let config = c.w.path("config.json");
        fs::write(&config, spec.to_string()).unwrap();
        let mut cmd = c.cmd();
        cmd.arg("run")
            .args(rt_flags(&c, &rt, &id))
            .args(["-d", "-t", "--config"])
            .arg(&config)
            .arg(&id);
        let shown = ctr_on_pty(&c, cmd);
        let line = asked_size_line(&c, &rt, &id, &shown);
        assert_eq!(line, format!("size {rows} {cols}"), "run {i} ({rt:?})");
        if let Some(prev) = last.replace(id) {
            remove(&c, &prev);
        }
    }
    let id = last.expect("a container");
    for i in 0..10 {
        let exec_id = format!("exec-{i}");
        let mut cmd = c.cmd();
        cmd.args(["task", "exec", "-d", "-t", "--fifo-dir"])
            .arg(&c.fifo_dir)
            .args(["--exec-id", &exec_id, &id, "sh", "-c", SIZE_SCRIPT]);
        let shown = ctr_on_pty(&c, cmd);
        let line = asked_size_line(&c, &rt, &exec_id, &shown);
        assert_eq!(line, "size 29 89", "exec {i} ({rt:?})");
    }
    remove(&c, &id);
    c.no_containers_left();
}

#[test]
fn first_terminal_size_youki_shim() {
    first_terminal_size(Rt::Youki);
}

#[test]
fn first_terminal_size_runc_shim_runc() {
    first_terminal_size(Rt::runc());
}

#[test]
fn first_terminal_size_runc_shim_cli() {
    first_terminal_size(Rt::cli());
}

/// A file in the rootfs that exists but may not be executed.
const DATA: &str = "/bin/data.sh";

/// (program, what the error must say as runc says it, Docker's exit code for it).
const CASES: &[(&str, &str, i32)] = &[
    (
        "nosuchcmd",
        r#"exec: "nosuchcmd": executable file not found in $PATH"#,
        127,
    ),
    (
        "/no/such/program",
        r#"exec: "/no/such/program": stat /no/such/program: no such file or directory"#,
        127,
    ),
    (DATA, r#"exec: "/bin/data.sh": permission denied"#, 126),
];

/// ctr's error for a failed run or exec, checked as Docker reads it.
#[track_caller]
fn check_error(c: &Containerd, o: &Output, case: &(&str, &str, i32), what: &str) {
    let (arg0, text, code) = *case;
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what}: ctr's exit code (1 with runc)\n{}\n{}",
        describe(o),
        c.log_tail()
    );
    let err = stderr_of(o);
    assert!(err.contains(arg0), "{what}: names no {arg0}: {err}");
    assert!(err.contains(text), "{what}: no {text:?} in: {err}");
    assert_docker_exit_code(&err, code, what);
}

/// `ctr run` and `ctr task exec` of a program that is missing or not executable.
fn missing_program(rt: Rt) {
    let c = start("noprog", &rt);
    let data = c.rootfs.join(DATA.trim_start_matches('/'));
    fs::write(&data, "#!/bin/sh\necho ran\n").unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o644)).unwrap();
    for case in CASES {
        let id = c.w.name("noprog");
        let o =
            c.w.run(&mut c.run_rootfs_cmd(&rt_flags(&c, &rt, &id), &["--rm"], &id, &[case.0]));
        check_error(&c, &o, case, &format!("ctr run {} ({rt:?})", case.0));
        // ctr leaves the container record of a task that was never created.
        let _ = c.ctr(&["container", "rm", &id]);
    }

    let id = c.w.name("running");
    let o =
        c.w.run(&mut c.run_rootfs_cmd(&rt_flags(&c, &rt, &id), &["-d"], &id, &["sleep", "100"]));
    assert!(o.status.success(), "{}\n{}", describe(&o), c.log_tail());
    for (i, case) in CASES.iter().enumerate() {
        let o = c.ctr(&[
            "task",
            "exec",
            "--fifo-dir",
            c.fifo_dir.to_str().unwrap(),
            "--exec-id",
            &format!("bad-{i}"),
            &id,
            case.0,
        ]);
        check_error(&c, &o, case, &format!("ctr task exec {} ({rt:?})", case.0));
    }
    // The task is unharmed, and still takes execs.
    let o = c.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        c.fifo_dir.to_str().unwrap(),
        "--exec-id",
        "good",
        &id,
        "true",
    ]);
    assert!(o.status.success(), "{}\n{}", describe(&o), c.log_tail());
    remove(&c, &id);
    c.no_containers_left();
}

#[test]
fn missing_program_youki_shim() {
    missing_program(Rt::Youki);
}

#[test]
fn missing_program_runc_shim_runc() {
    missing_program(Rt::runc());
}

#[test]
fn missing_program_runc_shim_cli() {
    missing_program(Rt::cli());
}
