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
#[path = "data/support.rs"]
mod support;

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use runtime_core::os::terminal::{set_window_size, Winsize};

use common::{assert_ok, describe, pid_alive, poll, stderr_of, stdout_of};
use e2e_support::containerd::*;
use e2e_support::*;

const RUNTIME: &str = "io.containerd.youki.v2";

/// A private containerd with the cargo-built shim first on its PATH.
fn start(kind: &str) -> Containerd {
    Containerd::start(kind, Shim::youki())
}

/// What these tests do with their containerd beyond the shared harness.
trait ShimTests {
    fn bundle(&self, id: &str) -> PathBuf;
    fn run(&self, flags: &[&str], id: &str, args: &[&str]) -> Output;
    fn rootfs_flags(&self) -> [&str; 2];
    fn socket_path(&self, id: &str) -> PathBuf;
    fn shim_socket(&self, id: &str) -> PathBuf;
    fn exec_cmd(&self, args: &[&str]) -> Command;
    fn exec_with_stdin(&self, input: &str, args: &[&str]) -> Output;
    fn task_ps(&self, id: &str) -> Vec<(i32, String)>;
}

impl ShimTests for Containerd {
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

    /// `ctr task exec --fifo-dir DIR ARGS...`.
    fn exec_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.cmd();
        c.args(["task", "exec", "--fifo-dir"])
            .arg(&self.fifo_dir)
            .args(args);
        c
    }

    /// `ctr task exec ARGS...` with stdin from a file holding `input`.
    fn exec_with_stdin(&self, input: &str, args: &[&str]) -> Output {
        let n = self.w.next();
        let path = |what: &str| self.w.path(&format!("io/stdin-{n}.{what}"));
        fs::write(path("in"), input).unwrap();
        let mut child = self
            .exec_cmd(args)
            .stdin(fs::File::open(path("in")).unwrap())
            .stdout(fs::File::create(path("out")).unwrap())
            .stderr(fs::File::create(path("err")).unwrap())
            .spawn()
            .expect("spawn ctr task exec");
        let status = wait_child(&mut child, CLIENT_TIMEOUT)
            .unwrap_or_else(|| panic!("ctr task exec {args:?} did not finish"));
        Output {
            status,
            stdout: fs::read(path("out")).unwrap_or_default(),
            stderr: fs::read(path("err")).unwrap_or_default(),
        }
    }

    /// The (pid, INFO column) lines of `ctr task ps ID`.
    fn task_ps(&self, id: &str) -> Vec<(i32, String)> {
        let o = self.ctr_ok(&["task", "ps", id]);
        stdout_of(&o)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (pid, info) = l.trim().split_once(char::is_whitespace)?;
                Some((pid.parse().ok()?, info.trim().to_string()))
            })
            .collect()
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
    let c = start("shim-run");
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
    let c = start("shim-output");
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
    let c = start("shim-detach");
    let id = c.w.name("d");
    let o = c.run(
        &["-d", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sh", "-c", "sleep 1000"],
    );
    assert_ok(&o, "ctr run -d");
    assert_eq!(c.task_status(&id), "RUNNING");
    let socket = c.shim_socket(&id);
    // The server, and its zygote while there is work (create, start): the zygote leaves
    // after its idle time (5 s), and an idle shim is one process (issue 14).
    let server = the_server(&c);
    let idle = poll(Duration::from_secs(20), || c.shims() == [server]);
    assert!(idle, "the zygote did not leave: shims {:?}", c.shims());
    // Idle, the server has at most 4 threads (issue 14): ttrpc (the main thread), the
    // reaper, the copies of every process's stdio, the OOM watch. A request's thread
    // ends with it, the events thread 500 ms after the last event.
    let mut threads = thread_names(&[server]);
    let few = poll(Duration::from_secs(5), || {
        threads = thread_names(&[server]);
        threads.len() <= 4
    });
    assert!(few, "an idle shim's threads: {threads:?}");

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
    // An exec in the idle shim starts a zygote on demand.
    let o = c.exec_with_stdin("", &["--exec-id", "e1", &id, "sh", "-c", "echo on; exit 2"]);
    assert_code(&o, 2, "exec in an idle shim");
    assert_eq!(stdout_of(&o), "on\n", "{}\n{}", describe(&o), c.log_tail());
    assert_eq!(the_server(&c), server, "another server");

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
fn containerd_restart_keeps_the_task_and_reconnects() {
    let mut c = start("shim-restart");
    let id = c.w.name("r");
    let o = c.run(
        &["-d", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sh", "-c", "sleep 1000"],
    );
    assert_ok(&o, "ctr run -d");
    let server = the_server(&c);
    let pid_before = c.task_pid(&id);

    // containerd goes away and comes back (an upgrade): the shim and the task stay, and
    // the new containerd reconnects to the shim through the bundle's address file.
    c.restart();
    assert_eq!(
        the_server(&c),
        server,
        "the shim changed across the restart"
    );
    assert_eq!(c.task_status(&id), "RUNNING");
    assert_eq!(c.task_pid(&id), pid_before);
    assert!(pid_alive(pid_before));

    // The reconnected shim still serves: kill, the exit (also as an event to the new
    // containerd, which CRI needs to see the container end), delete, rm.
    let events = EventWatch::start(&c);
    c.ctr_ok(&["task", "kill", "-s", "KILL", &id]);
    let stopped = poll(Duration::from_secs(10), || c.task_status(&id) == "STOPPED");
    assert!(
        stopped,
        "not STOPPED after SIGKILL: {:?}",
        c.task_status(&id)
    );
    assert!(
        events.saw(Duration::from_secs(10), "/tasks/exit", &id),
        "no /tasks/exit from the shim after containerd's restart\n{}\n{}",
        events.text(),
        c.log_tail()
    );
    c.ctr_ok(&["task", "delete", &id]);
    c.ctr_ok(&["container", "rm", &id]);
    c.no_containers_left();
}

#[test]
fn an_exit_while_containerd_is_down_reaches_it_when_it_is_back() {
    let mut c = start("shim-down");
    let id = c.w.name("x");
    let o = c.run(
        &["-d", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sh", "-c", "sleep 1000"],
    );
    assert_ok(&o, "ctr run -d");
    let pid = c.task_pid(&id);
    let mut log_len = 0;
    c.restart_after(|c| {
        // The task ends while nobody listens: SIGKILL to the container this test started.
        // SAFETY: kill(2) by pid of our own container's init.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        assert!(
            poll(Duration::from_secs(10), || !pid_alive(pid)),
            "the shim did not reap {pid}"
        );
        // Down for longer than a few quick retries would cover.
        std::thread::sleep(Duration::from_secs(2));
        log_len = c.log_text().len();
    });
    // containerd 1.6 reloads the task: the shim keeps the TaskExit and retries until the
    // new containerd takes it, then says so in its log, which containerd reads again and
    // copies into its own. containerd 1.7 and 2.x instead remove a reloaded task whose
    // processes are all gone ("cleaning leaked shim process", for runc's shim too): no
    // exit event is asked for; the task must go, and its shim with it (checked by
    // no_containers_left).
    let since_restart = || c.log_text().get(log_len..).unwrap_or("").to_string();
    let delivered = |log: &str| log.contains("event /tasks/exit delivered at attempt");
    let cleaned = |log: &str| log.contains("cleaning leaked shim process");
    let settled = poll(Duration::from_secs(35), || {
        let log = since_restart();
        delivered(&log) || (cleaned(&log) && c.task_status(&id).is_empty())
    });
    assert!(
        settled,
        "the exit never reached the restarted containerd\n{}",
        c.log_tail()
    );
    if !cleaned(&since_restart()) {
        assert_eq!(c.task_status(&id), "STOPPED");
        let o = c.ctr_ok(&["task", "delete", &id]);
        assert!(
            stdout_of(&o).contains("137") || stderr_of(&o).contains("137"),
            "SIGKILL is exit status 137\n{}",
            describe(&o)
        );
    }
    c.ctr_ok(&["container", "rm", &id]);
    c.no_containers_left();
}

#[test]
fn grouped_containers_share_one_shim_until_the_last_is_gone() {
    let c = start("shim-group");
    let group = c.w.name("g");
    let annotation = format!("io.containerd.runc.v2.group={group}");
    let (a, b) = (c.w.name("a"), c.w.name("b"));
    c.w.must_vanish(c.socket_path(&group));
    for id in [&a, &b] {
        let o = c.run(
            &[
                "-d",
                "--annotation",
                &annotation,
                c.rootfs_flags()[0],
                c.rootfs_flags()[1],
            ],
            id,
            &["sh", "-c", "sleep 1000"],
        );
        assert_ok(&o, "ctr run -d");
        assert_eq!(c.task_status(id), "RUNNING");
    }
    // One server for both, listening on the group's socket.
    let server = the_server(&c);
    for id in [&a, &b] {
        let address = fs::read_to_string(c.bundle(id).join("address")).expect("address file");
        assert_eq!(
            PathBuf::from(address.trim().trim_start_matches("unix://")),
            c.socket_path(&group),
            "{id} is not served by the group's shim"
        );
    }

    // The first container goes: the shim stays for the second, which still runs and execs.
    kill_delete_rm(&c, &a);
    assert_eq!(
        the_server(&c),
        server,
        "the shim changed while a task was left"
    );
    assert!(
        c.socket_path(&group).exists(),
        "the group's socket went away"
    );
    assert_eq!(c.task_status(&b), "RUNNING");
    let o = c.exec_with_stdin(
        "",
        &["--exec-id", "e1", &b, "sh", "-c", "echo still; exit 4"],
    );
    assert_code(&o, 4, "exec in the second container");
    assert_eq!(stdout_of(&o).trim(), "still");

    // The last one goes: so does the shim (no_containers_left waits for it).
    kill_and_remove(&c, &b);
    assert!(c.shims().is_empty(), "shims left: {:?}", c.shims());
    assert!(
        !c.socket_path(&group).exists(),
        "the group's socket was left"
    );
}

/// The names of the threads of `pids` (a shim's server), sorted.
fn thread_names(pids: &[i32]) -> Vec<String> {
    let mut names: Vec<String> = pids
        .iter()
        .flat_map(|pid| {
            fs::read_dir(format!("/proc/{pid}/task"))
                .into_iter()
                .flatten()
        })
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    names.sort();
    names
}

/// A pod's containers share one shim: its threads are as many with three containers as
/// with one (one thread copies the stdio of them all; before, two or three per
/// container, issue 14). ttrpc's own server
/// kept six per container (containerd opens one connection per task), and a Wait, which
/// containerd keeps open on every task of a pod (here each attached `ctr run` holds one),
/// held a thread until its process exited. Our shim only: containerd's runc shim is a Go
/// program, whose threads are the Go runtime's business.
#[test]
fn a_group_shims_threads_do_not_grow_with_its_containers() {
    let c = start("shim-threads");
    let group = c.w.name("g");
    let annotation = format!("io.containerd.runc.v2.group={group}");
    let ids: Vec<String> = (0..3).map(|i| c.w.name(&format!("t{i}"))).collect();
    // Attached: each `ctr run` waits for its task's exit through the shim's Wait.
    let run = |id: &str| -> Child {
        c.w.must_vanish(c.bundle(id));
        let child = c
            .cmd()
            .arg("run")
            .args(["--runtime", RUNTIME, "--annotation", &annotation])
            .arg("--fifo-dir")
            .arg(&c.fifo_dir)
            .args(["--env", CONTAINER_PATH])
            .args(c.rootfs_flags())
            .args([id, "sleep", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctr run");
        let running = poll(Duration::from_secs(20), || c.task_status(id) == "RUNNING");
        assert!(running, "{id} is not running\n{}", c.log_tail());
        child
    };
    let mut attached = vec![run(&ids[0])];
    // The server's: the zygote has one thread and leaves when idle.
    let shims = vec![the_server(&c)];
    // Threads that end right after a request (its handler, the events client's) may still
    // be there just after the task started: the baseline is the smallest count seen.
    let mut one = thread_names(&shims);
    poll(Duration::from_secs(2), || {
        let now = thread_names(&shims);
        if now.len() < one.len() {
            one = now;
        }
        false
    });
    for id in &ids[1..] {
        attached.push(run(id));
    }
    assert_eq!(vec![the_server(&c)], shims, "one shim serves the group");
    let mut three = Vec::new();
    let settled = poll(Duration::from_secs(10), || {
        three = thread_names(&shims);
        three.len() <= one.len()
    });
    assert!(
        settled,
        "threads with 1 container: {one:?}\nwith 3: {three:?}"
    );
    // Each Wait is answered: `ctr run` reports the exit and deletes its task.
    for id in &ids {
        c.ctr_ok(&["task", "kill", "-s", "KILL", id]);
    }
    for (id, mut child) in ids.iter().zip(attached) {
        let st = wait_child(&mut child, Duration::from_secs(20));
        assert!(st.is_some(), "ctr run {id} did not return after SIGKILL");
        c.ctr_ok(&["container", "rm", id]);
    }
    c.no_containers_left();
}

#[test]
fn shim_runs_an_image_from_an_overlay_snapshot() {
    let c = start("shim-image");
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
    let c = start("shim-dead");
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
    let server = the_server(&c);
    // SAFETY: kill(2) of the shim this test's containerd started.
    unsafe {
        libc::kill(server, libc::SIGKILL);
    }
    // containerd sees the connection drop and runs `containerd-shim-youki-v2 delete`,
    // which kills the container and removes its cgroup, state and bundle; a zygote still
    // there reads the end of its channel and exits.
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

/// `ctr run -d` of a busybox shell loop that counts in /count (visible on the host in the
/// rootfs directory), every 50 ms.
fn run_counter(c: &Containerd, id: &str) {
    let o = c.run(
        &["-d", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        id,
        &[
            "sh",
            "-c",
            // Renamed into place: a pause between the truncation and the write of
            // `echo > /count` left it empty for as long as the task was frozen.
            "i=0; while true; do i=$((i+1)); echo $i > /count.new; mv /count.new /count; sleep 0.05; done",
        ],
    );
    assert_ok(&o, "ctr run -d (counter)");
    assert_eq!(c.task_status(id), "RUNNING");
}

fn read_count(c: &Containerd) -> u64 {
    // The loop renames a new file into place; before its first, there is none.
    let mut last = String::new();
    for _ in 0..100 {
        last = fs::read_to_string(c.rootfs.join("count")).unwrap_or_default();
        if let Ok(n) = last.trim().parse() {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no count in the container's /count: {last:?}");
}

/// Kills and deletes a task and its container, checking that nothing is left.
#[track_caller]
fn kill_and_remove(c: &Containerd, id: &str) {
    kill_delete_rm(c, id);
    c.no_containers_left();
}

/// SIGKILL, `task delete`, `container rm` of one container.
fn kill_delete_rm(c: &Containerd, id: &str) {
    c.ctr_ok(&["task", "kill", "-s", "KILL", id]);
    let stopped = poll(Duration::from_secs(10), || c.task_status(id) == "STOPPED");
    assert!(
        stopped,
        "not STOPPED after SIGKILL: {:?}",
        c.task_status(id)
    );
    c.ctr_ok(&["task", "delete", id]);
    c.ctr_ok(&["container", "rm", id]);
}

#[test]
fn shim_exec_output_exit_code_ps_and_stdin() {
    let c = start("shim-exec");
    let id = c.w.name("x");
    let o = c.run(
        &["-d", c.rootfs_flags()[0], c.rootfs_flags()[1]],
        &id,
        &["sleep", "1000"],
    );
    assert_ok(&o, "ctr run -d");

    // Output and exit code of an exec.
    let o =
        c.w.run(&mut c.exec_cmd(&["--exec-id", "e1", &id, "sh", "-c", "echo hi; exit 4"]));
    assert_code(&o, 4, "ctr task exec (exit 4)");
    assert_eq!(stdout_of(&o), "hi\n", "{}\n{}", describe(&o), c.log_tail());

    // The exec's own process spec: user, cwd, and HOME from the user's passwd entry.
    let o = c.w.run(&mut c.exec_cmd(&[
        "--exec-id",
        "e2",
        "--user",
        "1000:1000",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $HOME; echo err >&2",
    ]));
    assert_code(&o, 0, "ctr task exec --user --cwd");
    assert_eq!(
        stdout_of(&o),
        "1000\n1000\n/tmp\n/home/user\n",
        "{}",
        describe(&o)
    );
    assert_eq!(stderr_of(&o), "err\n", "{}", describe(&o));

    // stdin reaches the exec, and its end too.
    let o = c.exec_with_stdin(
        "line one\nline two\n",
        &["--exec-id", "e3", &id, "sh", "-c", "cat; echo end"],
    );
    assert_code(&o, 0, "ctr task exec with stdin");
    assert_eq!(
        stdout_of(&o),
        "line one\nline two\nend\n",
        "{}",
        describe(&o)
    );

    // A detached exec is listed by ctr task ps with its exec id.
    let o =
        c.w.run(&mut c.exec_cmd(&["-d", "--exec-id", "bg", &id, "sleep", "1000"]));
    assert_ok(&o, "ctr task exec -d");
    let ps = c.task_ps(&id);
    let exec_pid = ps
        .iter()
        .find(|(_, info)| info.contains("bg"))
        .map(|(pid, _)| *pid)
        .unwrap_or_else(|| panic!("no exec bg in ctr task ps: {ps:?}"));
    assert!(pid_alive(exec_pid), "{ps:?}");
    let cmdline = fs::read(format!("/proc/{exec_pid}/cmdline")).unwrap_or_default();
    assert_eq!(cmdline, b"sleep\x001000\x00", "{ps:?}");
    // The init process has no exec id.
    assert!(
        ps.iter().any(|(p, info)| *p != exec_pid && info == "-"),
        "{ps:?}"
    );
    // The exec is killed and deleted on its own; the task keeps running.
    c.ctr_ok(&["task", "kill", "--exec-id", "bg", "-s", "KILL", &id]);
    let gone = poll(Duration::from_secs(10), || !pid_alive(exec_pid));
    assert!(gone, "exec {exec_pid} survived SIGKILL");
    // ctr exits with the deleted process's exit status.
    let deleted = poll(Duration::from_secs(10), || {
        c.ctr(&["task", "delete", "--exec-id", "bg", &id])
            .status
            .code()
            == Some(137)
    });
    assert!(deleted, "ctr task delete --exec-id bg\n{}", c.log_tail());
    assert!(!c.task_ps(&id).iter().any(|(p, _)| *p == exec_pid));
    assert_eq!(c.task_status(&id), "RUNNING");
    // An exec id that does not exist is not found.
    let o = c.ctr(&["task", "kill", "--exec-id", "nope", &id]);
    assert!(!o.status.success(), "{}", describe(&o));

    // With a terminal: the exec's stdio is a pty, its exit code comes through.
    let (status, text) = c.w.run_on_pty(&mut c.exec_cmd(&[
        "-t",
        "--exec-id",
        "t1",
        &id,
        "sh",
        "-c",
        "tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; exit 5",
    ]));
    assert_eq!(status.code(), Some(5), "ctr task exec -t: {text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(text.contains("both-ttys"), "{text:?}");

    kill_and_remove(&c, &id);
}

fn size(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// ctr with a pty of ours as its controlling terminal and stdio, as from a shell.
struct PtySession {
    master: OwnedFd,
    child: Child,
    seen: String,
}

impl PtySession {
    fn spawn(cmd: Command, rows: u16, cols: u16) -> PtySession {
        let pty = runtime_core::os::open_pty().unwrap();
        set_window_size(pty.master.as_fd(), &size(rows, cols)).unwrap();
        let slave = || Stdio::from(pty.slave.try_clone().unwrap());
        let prog = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        // setsid --ctty: a new session whose controlling terminal is stdin, the pty.
        let child = Command::new("setsid")
            .arg("--ctty")
            .arg(prog)
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

    fn read_more(&mut self, timeout: Duration) {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout.as_millis().min(1000) as i32).unwrap();
        if nix::poll::poll(&mut fds, ms).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(n) = nix::unistd::read(&self.master, &mut buf) {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    }

    /// Waits for `want` in what the terminal showed after byte `from`.
    fn expect_after(&mut self, from: usize, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.seen[from..].contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {want:?} in terminal output: {:?}",
                self.seen
            );
            self.read_more(left);
        }
    }

    fn type_line(&self, line: &str) {
        let mut f = fs::File::from(self.master.try_clone().unwrap());
        f.write_all(line.as_bytes()).unwrap();
    }

    fn exit_code(mut self) -> Option<i32> {
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("ctr did not exit; terminal: {:?}", self.seen);
            }
            self.read_more(Duration::from_millis(20));
        }
    }
}

#[test]
fn shim_run_tty_relays_input_output_and_window_size() {
    let c = start("shim-tty");
    let id = c.w.name("t");
    let mut cmd = c.cmd();
    cmd.arg("run")
        .args(["--rm", "-t", "--runtime", RUNTIME])
        .arg("--fifo-dir")
        .arg(&c.fifo_dir)
        .args(["--env", CONTAINER_PATH])
        .args(c.rootfs_flags())
        .arg(&id)
        .arg("sh");
    c.w.must_vanish(c.bundle(&id));
    let mut s = PtySession::spawn(cmd, 33, 101);
    // ctr sets the container's terminal to its own size (ResizePty) after Start: ask until
    // the answer is the size.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let from = s.seen.len();
        s.type_line("stty size; echo size-$((40+2))\n");
        s.expect_after(from, "size-42");
        if s.seen[from..].contains("33 101") {
            break;
        }
        assert!(Instant::now() < deadline, "size never set: {:?}", s.seen);
        std::thread::sleep(Duration::from_millis(100));
    }
    let from = s.seen.len();
    s.type_line("tty; echo typed-$((6*7))\n");
    s.expect_after(from, "typed-42");
    assert!(s.seen[from..].contains("/dev/pts/"), "{:?}", s.seen);
    // A program reading the terminal: ^D (raw through ctr) is its end of input.
    let from = s.seen.len();
    s.type_line("echo cat-$((1+1)); cat; echo cat-done\n");
    // Typed once the shell runs the line (else its line editor may read it).
    s.expect_after(from, "cat-2");
    std::thread::sleep(Duration::from_millis(200));
    s.type_line("through cat\n");
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.seen[from..].matches("through cat").count() < 2 {
        assert!(Instant::now() < deadline, "cat did not echo: {:?}", s.seen);
        s.read_more(Duration::from_millis(200));
    }
    s.type_line("\x04");
    s.expect_after(from, "cat-done");
    s.type_line("exit 7\n");
    assert_eq!(s.exit_code(), Some(7));
    c.no_containers_left();
}

#[test]
fn shim_pause_resume_and_metrics() {
    let c = start("shim-pause");
    let id = c.w.name("p");
    run_counter(&c, &id);
    let started = poll(Duration::from_secs(10), || {
        c.rootfs.join("count").exists() && read_count(&c) > 2
    });
    assert!(started, "the counter does not count");

    c.ctr_ok(&["task", "pause", &id]);
    assert_eq!(c.task_status(&id), "PAUSED");
    let frozen = read_count(&c);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read_count(&c), frozen, "the counter went on while paused");
    // No exec into a frozen container (it would block there).
    let o = c.w.run(&mut c.exec_cmd(&["--exec-id", "e1", &id, "true"]));
    assert!(
        !o.status.success(),
        "exec in a paused task\n{}",
        describe(&o)
    );

    c.ctr_ok(&["task", "resume", &id]);
    assert_eq!(c.task_status(&id), "RUNNING");
    let goes_on = poll(Duration::from_secs(10), || read_count(&c) > frozen + 2);
    assert!(goes_on, "the counter did not go on after resume");

    // Metrics: containerd decodes the shim's Metrics and prints them (v1 names on cgroup
    // v1 hosts, v2 names on v2 hosts).
    let o = c.ctr_ok(&["task", "metrics", &id]);
    let text = stdout_of(&o);
    let value = |names: &[&str]| -> Option<u64> {
        text.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            let (k, v) = (f.next()?, f.next()?);
            names.contains(&k).then(|| v.parse().ok()).flatten()
        })
    };
    let memory = value(&["memory.usage_in_bytes", "memory.usage"]);
    assert!(memory.is_some_and(|m| m > 0), "memory usage\n{text}");
    let cpu = value(&["cpuacct.usage", "cpu.usage_usec"]);
    assert!(cpu.is_some_and(|v| v > 0), "cpu usage\n{text}");
    let pids = value(&["pids.current"]);
    assert!(pids.is_some_and(|v| v >= 1), "pids\n{text}");

    // Paused, SIGKILL still ends it.
    c.ctr_ok(&["task", "pause", &id]);
    kill_and_remove(&c, &id);
}

#[test]
fn shim_memory_limit_oom_event_and_exit_137() {
    let c = start("shim-oom");
    let events = EventWatch::start(&c);
    let id = c.w.name("oom");
    // tail keeps the last lines of an endless one: its memory grows past the limit.
    let o = c.run(
        &[
            "--rm",
            "--memory-limit",
            "20971520",
            c.rootfs_flags()[0],
            c.rootfs_flags()[1],
        ],
        &id,
        &["tail", "/dev/zero"],
    );
    let oom_seen = events.saw(Duration::from_secs(10), "/tasks/oom", &id);
    let text = events.text();
    assert_code(&o, 137, "ctr run --memory-limit (tail /dev/zero)");
    assert!(oom_seen, "no /tasks/oom for {id}\n{text}\n{}", c.log_tail());
    // The OOM event comes before the exit.
    let pos = |topic: &str| {
        text.lines()
            .position(|l| l.contains(topic) && l.contains(&id))
    };
    assert!(pos("/tasks/oom") < pos("/tasks/exit"), "{text}");
    c.no_containers_left();
}

// `ctr run --cwd` naming a directory the rootfs lacks: created, as runc does (the same
// through containerd's runc shim, with runc or youki, is in tests/e2e_runc_shim.rs). This
// shim refused it before ("process.cwd /newdir/sub: No such file or directory").
#[test]
fn shim_run_creates_a_missing_cwd() {
    let c = start("shim-cwd");
    let id = c.w.name("cwd");
    let o = c.run(
        &[
            "--rm",
            "--cwd",
            "/newdir/sub",
            c.rootfs_flags()[0],
            c.rootfs_flags()[1],
        ],
        &id,
        &["sh", "-c", "pwd; stat -c '%u:%g' /newdir/sub"],
    );
    assert_code(&o, 0, "ctr run --cwd /newdir/sub");
    assert_eq!(stdout_of(&o), "/newdir/sub\n0:0\n", "{}", describe(&o));
    c.no_containers_left();
}

/// The `ppid` field of /proc/PID/stat (0 if the process is gone).
fn ppid_of(pid: i32) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The one shim server of this containerd: the shim process whose parent is not one (its
/// zygote, while there is one, is its child).
#[track_caller]
fn the_server(c: &Containerd) -> i32 {
    let shims = c.shims();
    let servers: Vec<i32> = shims
        .iter()
        .copied()
        .filter(|p| !shims.contains(&ppid_of(*p)))
        .collect();
    assert_eq!(servers.len(), 1, "shim servers among {shims:?}");
    servers[0]
}

/// The (server, zygote) pids of the one shim serving this containerd, right after a
/// request to the task `id`'s zygote: an exec starts one if it had left, idle.
#[track_caller]
fn server_and_zygote(c: &Containerd, id: &str) -> (i32, i32) {
    let o = c.exec_with_stdin("", &["--exec-id", "zygote-probe", id, "true"]);
    assert_code(&o, 0, "an exec to have a zygote");
    let server = the_server(c);
    let shims = c.shims();
    let zygote = *shims
        .iter()
        .find(|p| ppid_of(**p) == server)
        .unwrap_or_else(|| panic!("no child of the server {server} among {shims:?}"));
    (server, zygote)
}

/// How many /tasks/exit events name process `id` (an init's id is its task's).
fn exit_events(events: &EventWatch, id: &str) -> usize {
    let quoted = format!("\"id\":\"{id}\"");
    events
        .text()
        .lines()
        .filter(|l| l.contains("/tasks/exit") && l.contains(&quoted))
        .count()
}

/// issue 14: the zygote of a pod-like (grouped) shim is SIGKILLed mid-life, as the OOM
/// killer may choose it. The server sees it die, the next request starts a new one, and
/// the group goes on: exec into the running container, a second container, stop and
/// delete all.
#[test]
fn a_killed_zygote_never_strands_the_group() {
    let c = start("shim-zygote");
    let events = EventWatch::start(&c);
    let group = c.w.name("g");
    let annotation = format!("io.containerd.runc.v2.group={group}");
    let (a, b) = (c.w.name("a"), c.w.name("b"));
    c.w.must_vanish(c.socket_path(&group));
    let run = |id: &str| {
        let o = c.run(
            &[
                "-d",
                "--annotation",
                &annotation,
                c.rootfs_flags()[0],
                c.rootfs_flags()[1],
            ],
            id,
            &["sh", "-c", "sleep 1000"],
        );
        assert_ok(&o, &format!("ctr run -d {id}"));
        assert_eq!(c.task_status(id), "RUNNING");
    };
    run(&a);
    let a_pid = c.task_pid(&a);
    let (server, zygote) = server_and_zygote(&c, &a);

    // SAFETY: kill(2) of the zygote of the shim this test's containerd started.
    unsafe {
        libc::kill(zygote, libc::SIGKILL);
    }
    assert!(
        poll(Duration::from_secs(10), || !pid_alive(zygote)),
        "zygote {zygote} survived SIGKILL"
    );

    // Exec into the running container (issue 14: "zygote: sending exec: EPIPE").
    let o = c.exec_with_stdin(
        "",
        &["--exec-id", "e1", &a, "sh", "-c", "echo alive; exit 3"],
    );
    assert_code(&o, 3, "exec after the zygote was killed");
    assert_eq!(
        stdout_of(&o),
        "alive\n",
        "{}\n{}",
        describe(&o),
        c.log_tail()
    );

    // The server noticed at once and logged it; the exec had a new zygote; the
    // container is untouched.
    let shims = c.shims();
    assert!(
        shims.contains(&server) && !shims.contains(&zygote),
        "shims {shims:?}\n{}",
        c.log_tail()
    );
    assert_eq!(the_server(&c), server);
    let said = poll(Duration::from_secs(10), || {
        c.log_text().contains(&format!("zygote {zygote} exited"))
    });
    assert!(said, "the zygote's death was not logged\n{}", c.log_tail());
    assert_eq!(c.task_status(&a), "RUNNING");
    assert_eq!(c.task_pid(&a), a_pid);

    // A second container of the group, through the same server.
    run(&b);
    assert_eq!(the_server(&c), server, "the group got another shim");
    let o = c.exec_with_stdin("", &["--exec-id", "e2", &b, "sh", "-c", "echo b; exit 5"]);
    assert_code(&o, 5, "exec in the second container");
    assert_eq!(stdout_of(&o), "b\n", "{}", describe(&o));

    // Once more, right before stopping everything: kill and delete do not depend on it.
    let (_, zygote) = server_and_zygote(&c, &b);
    // SAFETY: as above.
    unsafe {
        libc::kill(zygote, libc::SIGKILL);
    }
    kill_delete_rm(&c, &a);
    assert!(
        events.saw(Duration::from_secs(10), "/tasks/delete", &a),
        "{}",
        events.text()
    );
    kill_and_remove(&c, &b);
    // Every process's exit went out exactly once.
    for id in [a.as_str(), b.as_str(), "e1", "e2"] {
        assert_eq!(
            exit_events(&events, id),
            1,
            "TaskExit of {id}\n{}",
            events.text()
        );
    }
}

// Docker's default seccomp profile as it was in 2019 (without close_range, clone3,
// faccessat2, openat2, epoll_pwait2; tests/data/support.rs builds it) through `ctr run
// --seccomp-profile`: busybox starts, and a glibc program starts a thread (glibc tries
// clone3 first; the filter's -ENOSYS stub makes it fall back to clone). close_range
// answering ENOSYS shows the filter is there. The same through containerd's runc shim, with
// runc as the reference, is in tests/e2e_runc_shim.rs.
#[test]
fn shim_runs_a_container_under_a_2019_seccomp_profile() {
    let c = start("shim-sec2019");
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
            c.rootfs_flags()[0],
            c.rootfs_flags()[1],
        ],
        &id,
        &["sh", "-c", support::PROFILE_2019_SCRIPT],
    );
    assert_code(&o, 0, "ctr run --seccomp-profile (2019)");
    support::assert_profile_2019_output(&o);
    c.no_containers_left();
}

// A config without any namespace, given whole to `ctr run --config`: the shim runs it in
// its own namespaces (those of the host here), the spec's proc mount is made in the host's
// mount namespace under a bind of the rootfs, and nothing of it is left mounted once the
// task is deleted. tests/namespaces.rs checks the same through the CLI.
#[test]
fn shim_runs_a_config_without_namespaces() {
    let c = start("shim-nons");
    let id = c.w.name("nons");
    let mut spec =
        common::config_without_namespaces(&c.w.marker, &format!("/{}/{id}", c.ns), &c.rootfs);
    spec["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "for n in mnt net pid; do readlink /proc/self/ns/$n; done; [ -c /dev/null ] && echo devnull"
    ]);
    let config = c.w.path("nons-config.json");
    fs::write(&config, spec.to_string()).expect("write the config");
    let o = c.run(
        &["--rm", "--config", config.to_str().expect("UTF-8")],
        &id,
        &[],
    );
    assert_code(&o, 0, "ctr run --config (no namespaces)");
    let ns = common::own_namespace;
    assert_eq!(
        stdout_of(&o),
        format!("{}\n{}\n{}\ndevnull\n", ns("mnt"), ns("net"), ns("pid")),
        "{}",
        describe(&o)
    );
    let rootfs = c.rootfs.to_string_lossy().into_owned();
    let left: Vec<String> = common::mount_points()
        .into_iter()
        .filter(|m| m.starts_with(&rootfs))
        .collect();
    assert!(left.is_empty(), "left mounted: {left:?}");
    c.no_containers_left();
}
