//! Checkpoint and restore with CRIU: a counter container is checkpointed and restored and
//! counts on from where it was; --leave-running; restore --detach --pid-file and in the
//! foreground; clear errors that leave nothing behind.
//!
//! CRIU is sid's 4.x unpacked by scripts/fetch-criu.sh (bookworm's 3.17 fails `criu check`
//! here), or `$CRIU_BIN`; without it every test prints why and passes without checking
//! anything. The runtime finds it on PATH, where its directory is put first: runc 1.3 has no
//! `--criu` flag any more (runc 1.1 and youki have it; it defaults to `criu` on PATH).
//!
//! The container's stdio are pipes, as containerd's runc shim gives: CRIU cannot dump a
//! descriptor of a host file (not in the container's mounts), and restore connects the
//! pipes of descriptors.json to the restoring runtime's stdio. The init of both runtimes
//! calls setsid() (CRIU cannot dump a process whose session leader is outside its pid
//! namespace) and reopens a host /dev/null stdio inside the container.

mod common;

use std::ffi::OsStr;
use std::io::{PipeReader, PipeWriter, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(10);

/// The counter: a number a tenth of a second to stdout and to /data/count (a bind mount).
const COUNTER: &str =
    "i=0; while true; do i=$((i+1)); echo $i; echo $i > /data/count; sleep 0.1; done";

/// A pipe whose read end the test keeps, non-blocking.
struct Pipe {
    reader: PipeReader,
    writer: PipeWriter,
    read: String,
}

impl Pipe {
    fn new() -> Pipe {
        let (reader, writer) = std::io::pipe().expect("pipe");
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
        }
        Pipe {
            reader,
            writer,
            read: String::new(),
        }
    }

    /// Everything read so far (what is waiting is read now).
    fn text(&mut self) -> &str {
        let mut buf = [0u8; 65536];
        while let Ok(n) = self.reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.read.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        &self.read
    }

    /// The numbers the counter wrote to this pipe.
    fn numbers(&mut self) -> Vec<u64> {
        self.text()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

/// The container's stdio: three pipes.
struct Stdio3 {
    stdin: Pipe,
    stdout: Pipe,
    stderr: Pipe,
}

impl Stdio3 {
    fn new() -> Stdio3 {
        Stdio3 {
            stdin: Pipe::new(),
            stdout: Pipe::new(),
            stderr: Pipe::new(),
        }
    }
}

/// Runs `RUNTIME_BIN --root STATE ARGS...` with `io` as its stdio (kept by what it starts)
/// and CRIU's directory first on PATH; returns when the runtime exits, with what it wrote
/// to stderr so far as the output's stderr.
fn run_with(env: &TestEnv, criu: &Path, io: &mut Stdio3, args: &[&OsStr]) -> Output {
    let dir = criu.parent().expect("criu's directory");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dup = |w: &PipeWriter| -> Stdio { w.try_clone().expect("dup a pipe").into() };
    // The container reads the stdin pipe, blocking (the flag is shared with our copy of the
    // read end, which the test never reads); the test holds the write end: it never ends.
    let stdin_fd = io.stdin.reader.try_clone().expect("dup stdin");
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        libc::fcntl(stdin_fd.as_raw_fd(), libc::F_SETFL, 0);
    }
    let mut cmd = Command::new(&env.runtime);
    cmd.env("PATH", path)
        .arg("--root")
        .arg(&env.state_root)
        .args(args)
        .stdin(Stdio::from(stdin_fd))
        .stdout(dup(&io.stdout.writer))
        .stderr(dup(&io.stderr.writer));
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let status = wait_child(&mut child, CMD_TIMEOUT)
        .unwrap_or_else(|| panic!("{shown} did not finish within {CMD_TIMEOUT:?}"));
    Output {
        status,
        stdout: vec![],
        stderr: io.stderr.text().as_bytes().to_vec(),
    }
}

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

/// A counter container started with `run -d` on fresh pipes, counting; returns its stdio
/// and the host directory of its /data.
fn start_counter(env: &TestEnv, criu: &Path, id: &str) -> (Bundle, Stdio3, PathBuf) {
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut b = env.bundle();
    b.sh(COUNTER);
    b.bind_mount(&data, "/data", false);
    b.save();
    let io = run_counter(env, criu, id, &b);
    (b, io, data)
}

/// Runs the counter of bundle `b` with `run -d` on fresh pipes and waits until it counts.
fn run_counter(env: &TestEnv, criu: &Path, id: &str, b: &Bundle) -> Stdio3 {
    env.track(id);
    let mut io = Stdio3::new();
    let bundle = b.dir.as_os_str();
    let mut args = os(&["run", "-d", "--bundle"]);
    args.push(bundle);
    args.push(OsStr::new(id));
    let o = run_with(env, criu, &mut io, &args);
    assert_ok(&o, &format!("run -d {id}"));
    assert!(
        poll(T, || io.stdout.numbers().len() >= 5),
        "the counter did not count: {:?}",
        io.stdout.text()
    );
    io
}

fn count_file(data: &Path) -> u64 {
    std::fs::read_to_string(data.join("count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `checkpoint --image-path IMAGES EXTRA... ID`.
fn checkpoint(env: &TestEnv, criu: &Path, images: &Path, extra: &[&str], id: &str) -> Output {
    let mut args = os(&["checkpoint", "--image-path"]);
    args.push(images.as_os_str());
    args.extend(os(extra));
    args.push(OsStr::new(id));
    run_with(env, criu, &mut Stdio3::new(), &args)
}

/// `restore --image-path IMAGES --bundle B EXTRA... ID` on `io`.
fn restore(
    env: &TestEnv,
    criu: &Path,
    io: &mut Stdio3,
    images: &Path,
    b: &Bundle,
    extra: &[&str],
    id: &str,
) -> Output {
    env.track(id);
    let mut args = os(&["restore", "--image-path"]);
    args.push(images.as_os_str());
    args.push(OsStr::new("--bundle"));
    args.push(b.dir.as_os_str());
    args.extend(os(extra));
    args.push(OsStr::new(id));
    run_with(env, criu, io, &args)
}

/// Checks that a restored counter is a running container of the runtime, in its cgroup,
/// counting on its new stdout.
#[track_caller]
fn assert_restored_counting(env: &TestEnv, io: &mut Stdio3, id: &str, b: &Bundle) {
    let st = env.state(id);
    assert_eq!(st["status"], "running", "state after restore: {st}");
    let pid = st["pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid_alive(pid), "restored init {pid} is not alive: {st}");
    assert!(
        poll(T, || io.stdout.numbers().len() >= 3),
        "the restored counter writes nothing to the new stdout: {:?}",
        io.stdout.text()
    );
    let got = io.stdout.numbers();
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert!(
        cgroup.contains(&b.cgroups_path),
        "restored init {pid} must be in the container's cgroup {}:\n{cgroup}",
        b.cgroups_path
    );
}

#[test]
fn checkpoint_then_restore_counts_on() {
    let Some(criu) = criu_or_skip("checkpoint_then_restore_counts_on") else {
        return;
    };
    let env = TestEnv::new("ckpt");
    let id = env.id();
    let (b, mut io, data) = start_counter(&env, &criu, &id);
    let images = env.path("images");

    let o = checkpoint(&env, &criu, &images, &[], &id);
    assert_ok(&o, "checkpoint");
    // The container is gone: its processes killed by CRIU, its state deleted.
    let o = env.run(&["state", &id]);
    assert_failed_with_message(&o, "state of a checkpointed container");
    assert!(images.join("descriptors.json").is_file());
    let last = *io
        .stdout
        .numbers()
        .last()
        .expect("numbers before the checkpoint");
    let frozen = count_file(&data);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        count_file(&data),
        frozen,
        "the counter still counts after checkpoint"
    );

    let mut io2 = Stdio3::new();
    let pid_file = env.path("pid");
    let mut extra = vec!["--detach", "--pid-file"];
    extra.push(pid_file.to_str().unwrap());
    let o = restore(&env, &criu, &mut io2, &images, &b, &extra, &id);
    assert_ok(&o, "restore --detach --pid-file");
    assert_restored_counting(&env, &mut io2, &id, &b);
    assert_eq!(
        io2.stdout.numbers()[0],
        last + 1,
        "the restored counter must go on from {last}, not start again"
    );
    assert!(
        poll(T, || count_file(&data) > frozen + 2),
        "/data/count (a bind mount) stays at {frozen} after restore"
    );
    let pid = env.pid(&id);
    assert_eq!(
        std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .trim(),
        pid.to_string(),
        "--pid-file must hold the restored init's pid"
    );
    // Nothing more reaches the old stdout.
    assert_eq!(io.stdout.numbers().last(), Some(&last));

    // A container of the runtime like any other: exec joins it (CRIU restored it into a
    // time namespace of its own too), kill and delete end it.
    let o = env.run(&["exec", &id, "cat", "/data/count"]);
    assert_ok(&o, "exec in the restored container");
    assert!(
        stdout_of(&o).trim().parse::<u64>().is_ok_and(|n| n > last),
        "{}",
        describe(&o)
    );
    assert_ok(&env.kill(&id, "KILL"), "kill of the restored container");
    env.wait_for_status(&id, "stopped", T);
    assert_ok(&env.delete(&id), "delete of the restored container");
}

/// A restore into a new bundle whose rootfs lacks the mount points the first create made,
/// as podman's `restore --import` makes it: a file bind's (/etc/token), a directory bind's
/// (/data) and a tmpfs's (/mnt/scratch); and /data's bind source is a new, empty directory,
/// so the mount point of the file bound inside it (/data/sub/token), which create made in
/// the first source, is missing too. The runtime makes them all before CRIU runs (runc's
/// prepareCriuRestoreMounts, which binds each bind for the while for the nested ones: its
/// issue 2748), else CRIU fails ("mnt-v2: Can't stat mountpoint"); the counter counts on.
#[test]
fn restore_into_a_new_rootfs_makes_the_mount_points_it_lacks() {
    let Some(criu) = criu_or_skip("restore_into_a_new_rootfs_makes_the_mount_points_it_lacks")
    else {
        return;
    };
    let env = TestEnv::new("ckptnewroot");
    let token = env.path("token");
    std::fs::write(&token, "tok").unwrap();
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut b = env.bundle();
    b.sh(COUNTER);
    b.bind_mount(&data, "/data", false);
    b.bind_mount(&token, "/data/sub/token", true);
    b.bind_mount(&token, "/etc/token", true);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "destination": "/mnt/scratch", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev"]
        }));
    b.save();
    let id = env.id();
    let mut io = run_counter(&env, &criu, &id, &b);
    assert!(
        data.join("sub/token").is_file(),
        "create made the nested mount point"
    );
    let images = env.path("images");
    assert_ok(&checkpoint(&env, &criu, &images, &[], &id), "checkpoint");
    let last = *io.stdout.numbers().last().expect("numbers");

    // The new bundle: the same config but its own cgroup and /data source, a fresh rootfs.
    let mut b2 = env.bundle();
    let cgroups_path = b2.cgroups_path.clone();
    b2.config = b.config.clone();
    b2.config["linux"]["cgroupsPath"] = serde_json::json!(cgroups_path);
    let data2 = env.path("data");
    std::fs::create_dir_all(&data2).unwrap();
    for m in b2.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/data" {
            m["source"] = serde_json::json!(data2);
        }
    }
    b2.save();
    let root2 = b2.rootfs();
    let lacking = [
        root2.join("etc/token"),
        root2.join("data"),
        root2.join("mnt"),
    ];
    assert!(lacking.iter().all(|p| !p.exists()), "{lacking:?}");

    let mut io2 = Stdio3::new();
    let id2 = env.id();
    let o = restore(&env, &criu, &mut io2, &images, &b2, &["-d"], &id2);
    assert_ok(&o, "restore -d into a rootfs without the mount points");
    assert_restored_counting(&env, &mut io2, &id2, &b2);
    assert_eq!(
        io2.stdout.numbers()[0],
        last + 1,
        "it counts on from {last}"
    );
    assert!(root2.join("etc/token").is_file() && root2.join("mnt/scratch").is_dir());
    assert!(
        data2.join("sub/token").is_file(),
        "the nested mount point, in the new source"
    );
    for path in ["/etc/token", "/data/sub/token"] {
        let o = env.run(&["exec", &id2, "cat", path]);
        assert_ok(&o, &format!("exec cat {path}"));
        assert_eq!(stdout_of(&o), "tok", "{path} is the bound file");
    }
    assert!(
        poll(T, || count_file(&data2) > last),
        "the restored counter does not write to the new /data"
    );
    assert_ok(&env.delete_force(&id2), "delete --force");
}

#[test]
fn leave_running_keeps_it_running_and_the_images_restore() {
    let Some(criu) = criu_or_skip("leave_running_keeps_it_running_and_the_images_restore") else {
        return;
    };
    let env = TestEnv::new("ckptleave");
    let id = env.id();
    let (b, mut io, _data) = start_counter(&env, &criu, &id);
    let pid = env.pid(&id);
    let images = env.path("images");
    let before = *io.stdout.numbers().last().expect("numbers");
    let o = checkpoint(&env, &criu, &images, &["--leave-running"], &id);
    assert_ok(&o, "checkpoint --leave-running");
    let after = *io.stdout.numbers().last().expect("numbers");
    assert_eq!(env.status(&id), "running");
    assert_eq!(env.pid(&id), pid, "the same init runs on");
    assert!(
        poll(T, || io.stdout.numbers().last() > Some(&(after + 2))),
        "the counter stopped after checkpoint --leave-running"
    );
    let reached = *io.stdout.numbers().last().expect("numbers");
    assert_ok(&env.delete_force(&id), "delete --force");

    // The images are the state at the checkpoint (some number from `before` to `after`):
    // a restore counts on from there, below where the original got to.
    let id2 = env.id();
    let mut io2 = Stdio3::new();
    let o = restore(&env, &criu, &mut io2, &images, &b, &["-d"], &id2);
    assert_ok(&o, "restore -d");
    assert_restored_counting(&env, &mut io2, &id2, &b);
    let first = io2.stdout.numbers()[0];
    assert!(
        before < first && first <= after + 1 && first < reached,
        "the restored counter must go on from the checkpoint's number ({before}..={after}), \
         below where the original got ({reached}): it wrote {first} first"
    );
    assert_ok(&env.delete_force(&id2), "delete --force");
}

/// A pre-dump needs the kernel's soft-dirty memory tracking, which this machine's lacks
/// (`criu check --feature mem_dirty_track` says "Dirty tracking is OFF"): youki and runc
/// (1.1.5, 1.3.6) refuse it after asking CRIU, and the container runs on. Where the kernel
/// has it the test is skipped: what a pre-dump writes is not tested here.
#[test]
fn a_pre_dump_without_dirty_memory_tracking_is_refused_and_leaves_it_running() {
    let test = "a_pre_dump_without_dirty_memory_tracking_is_refused_and_leaves_it_running";
    let Some(criu) = criu_or_skip(test) else {
        return;
    };
    let tracked = Command::new(&criu)
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .expect("criu check");
    if tracked.status.success() {
        eprintln!("{test}: skipped: this kernel tracks dirty memory");
        return;
    }
    let env = TestEnv::new("ckptpre");
    let id = env.id();
    let (_b, mut io, _data) = start_counter(&env, &criu, &id);
    let pid = env.pid(&id);
    let pre = env.path("pre");
    let o = checkpoint(&env, &criu, &pre, &["--pre-dump"], &id);
    assert_failed_with_message(&o, "checkpoint --pre-dump without dirty memory tracking");
    assert_eq!(env.status(&id), "running");
    assert_eq!(env.pid(&id), pid, "the same init runs on");
    let before = io.stdout.numbers().len();
    assert!(
        poll(T, || io.stdout.numbers().len() > before + 2),
        "the counter stopped after a refused pre-dump"
    );
    // youki names the flag, and removes the images directory it made (runc 1.1.5 says
    // "CRIU is missing features", 1.3.6 "[MemTrack]", and both leave the directory).
    if !env.runtime.ends_with("runc") {
        assert!(stderr_of(&o).contains("--pre-dump"), "{}", describe(&o));
        assert!(!pre.exists(), "{} left behind", pre.display());
    }
}

#[test]
fn a_failing_prestart_hook_fails_the_restore_midway_and_leaves_nothing() {
    let test = "a_failing_prestart_hook_fails_the_restore_midway_and_leaves_nothing";
    let Some(criu) = criu_or_skip(test) else {
        return;
    };
    let env = TestEnv::new("ckpthook");
    let id = env.id();
    let (mut b, _io, data) = start_counter(&env, &criu, &id);
    let images = env.path("images");
    assert_ok(&checkpoint(&env, &criu, &images, &[], &id), "checkpoint");
    let frozen = count_file(&data);

    // The hook runs at CRIU's setup-namespaces callback, when the restored tree exists but
    // does not run yet: its failure ends the restore inside the CRIU session.
    b.hook("prestart", serde_json::json!({"path": "/bin/false"}));
    b.save();
    let o = restore(&env, &criu, &mut Stdio3::new(), &images, &b, &["-d"], &id);
    assert_failed_with_message(&o, "restore with a failing prestart hook");
    if !env.runtime.ends_with("runc") {
        assert!(stderr_of(&o).contains("/bin/false"), "{}", describe(&o));
    }
    let o = env.run(&["state", &id]);
    assert_failed_with_message(&o, "state of a container whose restore failed");
    // No process, cgroup, mount (CRIU's root) or state is left, and the counter never ran.
    assert!(
        poll(T, || env.leaks().is_empty()),
        "a failed restore left:\n{}",
        env.leaks()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count_file(&data), frozen, "the restored counter ran");
}

#[test]
fn restore_in_the_foreground_waits_and_deletes() {
    let Some(criu) = criu_or_skip("restore_in_the_foreground_waits_and_deletes") else {
        return;
    };
    let env = TestEnv::new("ckptfg");
    let id = env.id();
    let (b, mut io, data) = start_counter(&env, &criu, &id);
    let images = env.path("images");
    assert_ok(&checkpoint(&env, &criu, &images, &[], &id), "checkpoint");
    let last = *io.stdout.numbers().last().expect("numbers");
    let frozen = count_file(&data);

    // `restore` without --detach waits for the container: in a thread, while the test
    // kills the container once it counts again. Not as soon as `state` says running: runc
    // stores that at CRIU's post-restore callback, before CRIU has let the processes go,
    // and a SIGKILL then leaves CRIU and runc waiting for each other.
    let waiter = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut io2 = Stdio3::new();
            let o = restore(&env, &criu, &mut io2, &images, &b, &[], &id);
            (o, io2)
        });
        assert!(
            poll(T, || count_file(&data) > frozen + 2),
            "the foreground restore did not bring the counter back"
        );
        assert_eq!(env.status(&id), "running");
        assert_ok(&env.kill(&id, "KILL"), "kill");
        h.join().expect("restore thread")
    });
    let (o, mut io2) = waiter;
    assert_eq!(
        o.status.code(),
        Some(137),
        "a foreground restore exits with the container's status (SIGKILL)\n{}",
        describe(&o)
    );
    assert_eq!(io2.stdout.numbers().first(), Some(&(last + 1)));
    // runc deletes the container when it exits, as after `run`.
    let o = env.run(&["state", &id]);
    assert_failed_with_message(&o, "state after the foreground restore ended");
}

#[test]
fn bad_image_paths_and_states_are_clear_errors_that_leave_nothing() {
    let Some(criu) = criu_or_skip("bad_image_paths_and_states_are_clear_errors_that_leave_nothing")
    else {
        return;
    };
    let env = TestEnv::new("ckptbad");
    let id = env.id();
    let (b, mut io, _data) = start_counter(&env, &criu, &id);

    // Restore from a directory that is not a checkpoint: an error, no container, no cgroup.
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let missing = env.path("missing");
    for images in [&missing, &empty] {
        let id2 = env.id();
        let o = restore(&env, &criu, &mut Stdio3::new(), images, &b, &["-d"], &id2);
        assert_failed_with_message(&o, &format!("restore from {}", images.display()));
        let o = env.run(&["state", &id2]);
        assert_failed_with_message(&o, "state of a container whose restore failed");
    }
    assert_eq!(
        env.state_entries(),
        std::slice::from_ref(&id),
        "only the running container is stored"
    );

    // A checkpoint that cannot write its images leaves the container running.
    let not_a_dir = env.path("file");
    std::fs::write(&not_a_dir, "").unwrap();
    let o = checkpoint(&env, &criu, &not_a_dir.join("images"), &[], &id);
    assert_failed_with_message(&o, "checkpoint into a path under a file");
    assert_eq!(env.status(&id), "running");
    // Nor can it write its work files: the container runs on, and the images directory
    // the checkpoint made goes again. runc (1.1.5 and 1.3.6) leaves that directory behind.
    let fresh = env.path("fresh-images");
    let work = not_a_dir.join("work");
    let extra = ["--work-path", work.to_str().unwrap()];
    let o = checkpoint(&env, &criu, &fresh, &extra, &id);
    assert_failed_with_message(&o, "checkpoint with a work path under a file");
    assert_eq!(env.status(&id), "running");
    if !env.runtime.ends_with("runc") {
        assert!(!fresh.exists(), "{} left behind", fresh.display());
    }
    let before = io.stdout.numbers().len();
    assert!(
        poll(T, || io.stdout.numbers().len() > before + 2),
        "counter stopped"
    );

    // Only a running (or paused) container can be checkpointed.
    let mut b2 = env.bundle();
    b2.args(&["sleep", "100"]);
    let created = env.id();
    env.create(&created, &b2);
    let o = checkpoint(&env, &criu, &env.path("images"), &[], &created);
    assert_failed_with_message(&o, "checkpoint of a created container");
    assert_eq!(env.status(&created), "created");
}

#[test]
fn a_missing_criu_is_a_clear_error() {
    // No CRIU on PATH: a directory without one first, and the system's dirs left out.
    let env = TestEnv::new("nocriu");
    let mut b = env.bundle();
    b.args(&["sleep", "100"]);
    let id = env.id();
    env.create(&id, &b);
    env.start(&id);
    let empty = env.path("bin");
    std::fs::create_dir_all(&empty).unwrap();
    let mut cmd = Command::new(&env.runtime);
    cmd.env("PATH", &empty)
        .arg("--root")
        .arg(&env.state_root)
        .args(["checkpoint", "--image-path"])
        .arg(env.path("images"))
        .arg(&id)
        .stdin(Stdio::null());
    let o = cmd.output().expect("run the runtime");
    assert_failed_with_message(&o, "checkpoint without CRIU");
    assert!(
        stderr_of(&o).contains("criu"),
        "the error must name criu\n{}",
        describe(&o)
    );
    assert_eq!(env.status(&id), "running");
}

/// Numbers read from a pty master (non-blocking reads until nothing more comes soon).
fn master_numbers(master: &std::os::fd::OwnedFd, seen: &mut String) -> Vec<u64> {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(
        master.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    while nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16)).unwrap_or(0) > 0 {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(master, &mut buf) {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    seen.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Receives the master that create or restore sends to a console socket at `sock`.
fn console_receiver(sock: &Path) -> std::thread::JoinHandle<std::os::fd::OwnedFd> {
    let listener = std::os::unix::net::UnixListener::bind(sock).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        runtime_core::os::receive_master(std::os::fd::AsFd::as_fd(&conn)).unwrap()
    })
}

#[test]
fn a_terminal_is_restored_and_its_master_sent_to_the_console_socket() {
    let Some(criu) =
        criu_or_skip("a_terminal_is_restored_and_its_master_sent_to_the_console_socket")
    else {
        return;
    };
    let env = TestEnv::new("ckpttty");
    let data = env.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut b = env.bundle();
    b.sh(COUNTER);
    b.bind_mount(&data, "/data", false);
    b.process()["terminal"] = serde_json::json!(true);
    let id = env.id();
    let sock = env.path("console.sock");
    let receiver = console_receiver(&sock);
    let o = env.try_create_with(&id, &b, &["--console-socket", sock.to_str().unwrap()]);
    assert_ok(&o, "create --console-socket");
    let master = receiver.join().expect("console receiver");
    env.start(&id);
    let mut seen = String::new();
    assert!(
        poll(T, || master_numbers(&master, &mut seen).len() >= 5),
        "the counter does not count on its terminal: {seen:?}"
    );

    // The master stays open here while CRIU dumps: it is the pty's "orphan" master.
    let images = env.path("images");
    assert_ok(&checkpoint(&env, &criu, &images, &[], &id), "checkpoint");
    let last = *master_numbers(&master, &mut seen).last().expect("numbers");

    let sock2 = env.path("console2.sock");
    let receiver = console_receiver(&sock2);
    let extra = ["-d", "--console-socket", sock2.to_str().unwrap()];
    let o = restore(&env, &criu, &mut Stdio3::new(), &images, &b, &extra, &id);
    assert_ok(&o, "restore -d --console-socket");
    let master2 = receiver.join().expect("console receiver");
    let mut seen2 = String::new();
    assert!(
        poll(T, || master_numbers(&master2, &mut seen2).len() >= 3),
        "the restored counter writes nothing to the new terminal: {seen2:?}"
    );
    assert_eq!(
        master_numbers(&master2, &mut seen2)[0],
        last + 1,
        "the restored counter must go on from {last} on its new terminal: {seen2:?}"
    );
    assert_eq!(env.status(&id), "running");
    assert_ok(&env.delete_force(&id), "delete --force");
}
