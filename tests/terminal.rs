//! Terminals: `process.terminal` with a console socket (the master reaches the caller by
//! SCM_RIGHTS, as runc sends it), and `run`/`exec -t` driven from a real pty.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runtime_core::os::terminal::{set_window_size, Winsize};
use runtime_core::os::{open_pty, receive_master};

use common::*;

fn size(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Reads whatever the pty master has within `timeout` (at least one read if any arrives).
fn read_more(master: &OwnedFd, seen: &mut String, timeout: Duration) {
    let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
    let ms = PollTimeout::try_from(timeout.as_millis().min(1000) as i32).unwrap();
    if poll(&mut fds, ms).unwrap_or(0) > 0 {
        let mut buf = [0u8; 4096];
        if let Ok(n) = nix::unistd::read(master, &mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

/// Reads from a pty master until `want` appears in everything read so far.
fn read_until(master: &OwnedFd, seen: &mut String, want: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {want:?} in terminal output: {seen:?}");
        read_more(master, seen, left);
    }
}

fn type_line(master: &OwnedFd, line: &str) {
    let mut f = std::fs::File::from(master.try_clone().unwrap());
    f.write_all(line.as_bytes()).unwrap();
}

#[test]
fn console_socket_receives_a_working_master() {
    let env = TestEnv::new("console");
    let mut b = env.bundle();
    b.process()["terminal"] = serde_json::json!(true);
    b.sh("tty; stty size; read line; echo got:$line; sleep 100");
    let sock = env.path("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        receive_master(conn.as_fd()).unwrap()
    });
    let id = env.id();
    let o = env.try_create_with(&id, &b, &["--console-socket", sock.to_str().unwrap()]);
    assert_ok(&o, "create --console-socket");
    let master = receiver.join().unwrap();
    set_window_size(master.as_fd(), &size(33, 101)).unwrap();
    env.start(&id);
    let mut seen = String::new();
    read_until(&master, &mut seen, "33 101", Duration::from_secs(10));
    assert!(seen.contains("/dev/pts/0"), "{seen:?}");
    type_line(&master, "hello\n");
    read_until(&master, &mut seen, "got:hello", Duration::from_secs(10));
}

#[test]
fn terminal_and_console_socket_must_come_together() {
    let env = TestEnv::new("consolebad");
    let mut b = env.bundle();
    b.process()["terminal"] = serde_json::json!(true);
    let o = env.try_create(&env.id(), &b);
    assert_failed_with_message(&o, "terminal without a console socket");
    assert!(stderr_of(&o).contains("console"), "{}", describe(&o));

    let b = env.bundle();
    let sock = env.path("unused.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let o = env.try_create_with(&env.id(), &b, &["--console-socket", sock.to_str().unwrap()]);
    assert_failed_with_message(&o, "console socket without a terminal");
}

/// The runtime run with a host pty as its controlling terminal and stdio, as from a shell.
struct PtySession {
    master: OwnedFd,
    child: Child,
    seen: String,
}

impl PtySession {
    fn spawn(env: &TestEnv, args: &[&str]) -> Self {
        let pty = open_pty().unwrap();
        set_window_size(pty.master.as_fd(), &size(24, 80)).unwrap();
        let slave = || Stdio::from(pty.slave.try_clone().unwrap());
        // setsid --ctty: a new session whose controlling terminal is stdin, the pty.
        let child = Command::new("setsid")
            .arg("--ctty")
            .arg(&env.runtime)
            .arg("--root")
            .arg(&env.state_root)
            .args(args)
            .stdin(slave())
            .stdout(slave())
            .stderr(slave())
            .spawn()
            .unwrap();
        PtySession {
            master: pty.master,
            child,
            seen: String::new(),
        }
    }

    fn expect(&mut self, want: &str) {
        self.expect_after(0, want);
    }

    /// Waits for `want` in what the terminal printed after byte `from`.
    fn expect_after(&mut self, from: usize, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.seen[from..].contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {want:?} in terminal output: {:?}",
                self.seen
            );
            read_more(&self.master, &mut self.seen, left);
        }
    }

    fn exit_code(mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("runtime did not exit; terminal: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn interactive_run_relays_input_output_and_window_size() {
    let env = TestEnv::new("ttyrun");
    let mut b = env.bundle();
    b.process()["terminal"] = serde_json::json!(true);
    b.args(&["sh"]);
    b.save();
    let id = env.id();
    env.track(&id);
    let mut s = PtySession::spawn(&env, &["run", "--bundle", b.dir.to_str().unwrap(), &id]);
    type_line(&s.master, "echo $((6*7))\n");
    s.expect("42");
    type_line(&s.master, "stty size\n");
    s.expect("24 80");
    // Resizing our terminal sends the runtime SIGWINCH; the container's terminal follows.
    set_window_size(s.master.as_fd(), &size(40, 120)).unwrap();
    // The signal is asynchronous: ask again until the answer changes (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let from = s.seen.len();
        type_line(&s.master, "stty size\n");
        s.expect_after(from, "\n/ #");
        if s.seen[from..].contains("40 120") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "size never followed: {:?}",
            s.seen
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    type_line(&s.master, "exit 7\n");
    assert_eq!(s.exit_code(), Some(7));
}

#[test]
fn exec_tty_gives_the_process_a_terminal() {
    let env = TestEnv::new("ttyexec");
    let mut b = env.bundle();
    b.sh("sleep 100");
    let id = env.id();
    env.create(&id, &b);
    env.start(&id);
    let mut s = PtySession::spawn(&env, &["exec", "-t", &id, "sh", "-c", "tty; exit 3"]);
    s.expect("/dev/pts/");
    assert_eq!(s.exit_code(), Some(3));
}

/// Receives the master a create or exec sends to a console socket at `sock`.
fn console_receiver(sock: &std::path::Path) -> std::thread::JoinHandle<OwnedFd> {
    let listener = UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        receive_master(conn.as_fd()).unwrap()
    })
}

/// What `stty size` printed first in the terminal (`size ROWS COLS`, or busybox's error for
/// a terminal of size 0x0, "stty: standard input").
fn first_size(master: &OwnedFd) -> String {
    let mut seen = String::new();
    read_until(master, &mut seen, "size", Duration::from_secs(10));
    read_until(master, &mut seen, "\n", Duration::from_secs(10));
    seen
}

const SIZE_SCRIPT: &str = "echo size $(stty size 2>&1); sleep 100";

// process.consoleSize sets the terminal's first size (the receiver of the master does not
// resize it here), as runc sets it, for create, every time: a client's resize comes only
// after start, and the program may ask before it (Docker's `run -it busybox stty size`).
// It was ignored before: `stty size` said "stty: standard input". Passes against runc 1.1.5
// and 1.3.6.
#[test]
fn console_size_is_the_terminals_first_size() {
    let env = TestEnv::new("consolesize");
    for i in 0..10u64 {
        let (rows, cols) = (20 + i, 90 + i);
        let mut b = env.bundle();
        b.process()["terminal"] = serde_json::json!(true);
        b.process()["consoleSize"] = serde_json::json!({"height": rows, "width": cols});
        b.sh(SIZE_SCRIPT);
        let sock = env.path("console.sock");
        let receiver = console_receiver(&sock);
        let id = env.id();
        let o = env.try_create_with(&id, &b, &["--console-socket", sock.to_str().unwrap()]);
        assert_ok(&o, "create --console-socket");
        let master = receiver.join().unwrap();
        env.start(&id);
        let seen = first_size(&master);
        assert!(
            seen.contains(&format!("size {rows} {cols}")),
            "run {i}: {seen:?}"
        );
        assert_ok(&env.delete_force(&id), "delete --force");
    }
}

// The same for exec: the exec's process.consoleSize (`exec --process`, as containerd's
// runc shim passes Docker's `exec -it`) is the first size of its terminal, every time.
// Passes against runc 1.1.5 and 1.3.6.
#[test]
fn exec_console_size_is_the_terminals_first_size() {
    let env = TestEnv::new("execsize");
    let mut b = env.bundle();
    b.sh("sleep 100");
    let id = env.id();
    env.create(&id, &b);
    env.start(&id);
    for i in 0..10u64 {
        let (rows, cols) = (30 + i, 100 + i);
        let process = env.path("process.json");
        let spec = serde_json::json!({
            "terminal": true,
            "consoleSize": {"height": rows, "width": cols},
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", SIZE_SCRIPT],
            "env": ["PATH=/bin"],
            "cwd": "/",
        });
        std::fs::write(&process, spec.to_string()).unwrap();
        let sock = env.path("console.sock");
        let receiver = console_receiver(&sock);
        let o = env.run(&[
            "exec",
            "--detach",
            "--console-socket",
            sock.to_str().unwrap(),
            "--process",
            process.to_str().unwrap(),
            &id,
        ]);
        assert_ok(&o, "exec --detach --console-socket --process");
        let master = receiver.join().unwrap();
        let seen = first_size(&master);
        assert!(
            seen.contains(&format!("size {rows} {cols}")),
            "exec {i}: {seen:?}"
        );
    }
}
