//! The device program against the real kernel, as root: loaded (the verifier accepts it),
//! attached to a cgroup of a cgroup2 hierarchy (the `unified` one on a hybrid host), and
//! enforced on a process in that cgroup; replaced by a second program; gone with the cgroup.
//!
//! The process is busybox's shell, started by `Command` (never a fork of the
//! multi-threaded test harness), which moves itself into the cgroup before it tries the
//! devices.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxDeviceCgroup;

use super::{attach, program};
use crate::syscall::bpf::{Bpf, LinuxBpf};

/// Removes the test's cgroup, also when a check failed.
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// Where a cgroup2 hierarchy is mounted, from this process's mount table.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        (f.get(sep + 1) == Some(&"cgroup2")).then(|| PathBuf::from(f[4]))
    })
}

fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_str(json).expect("rules JSON")
}

/// The ids of the device programs attached to `dir`.
fn attached(dir: &Path) -> Vec<u32> {
    let fd = fs::File::open(dir).expect("open cgroup");
    LinuxBpf
        .attached_device_programs(std::os::fd::AsFd::as_fd(&fd))
        .expect("query")
}

/// Runs `script` in busybox's shell inside the cgroup `dir`; returns its output.
fn in_cgroup(dir: &Path, script: &str) -> String {
    let procs = dir.join("cgroup.procs");
    let out = Command::new("/bin/busybox")
        .args(["sh", "-c"])
        .arg(format!("echo $$ > {} && {script}", procs.display()))
        .output()
        .expect("busybox sh");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

const PROBE: &str = "\
for dev in /dev/null /dev/zero \"$NODES/null\" \"$NODES/kmsg\"; do \
  if head -c 0 \"$dev\" 2>/dev/null; then echo \"open $dev ok\"; else echo \"open $dev refused\"; fi; \
done";

#[test]
fn kernel_device_program_is_enforced_replaced_and_released() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mount = cgroup2_mount().expect("no cgroup2 hierarchy is mounted");
    let cg = TestCgroup(mount.join(format!("youki-devtest-{}", std::process::id())));
    fs::create_dir(&cg.0).expect("mkdir test cgroup");
    // Nodes made on the host, outside the cgroup; the probe opens them from inside.
    let nodes = tempfile::tempdir().expect("tempdir");
    for (name, minor) in [("null", 3), ("kmsg", 11)] {
        let st = Command::new("mknod")
            .arg(nodes.path().join(name))
            .args(["c", "1", &minor.to_string()])
            .status()
            .expect("mknod");
        assert!(st.success(), "mknod {name}");
    }
    let probe = format!("NODES={}; {PROBE}", nodes.path().display());
    let n = nodes.path().display();

    // Only /dev/null (c 1:3), and mknod of anything.
    let first = program(&rules(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]"#,
    ))
    .expect("program");
    attach(&LinuxBpf, &cg.0, &first).expect("load and attach");
    let ids = attached(&cg.0);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let out = in_cgroup(&cg.0, &probe);
    for line in [
        "open /dev/null ok".to_string(),
        "open /dev/zero refused".into(),
        format!("open {n}/null ok"),
        format!("open {n}/kmsg refused"),
    ] {
        assert!(out.contains(&line), "expected {line:?} in:\n{out}");
    }
    let out = in_cgroup(&cg.0, &format!("mknod {n}/made c 1 11 && echo mknod ok"));
    assert!(out.contains("mknod ok"), "{out}");

    // An update that allows /dev/zero too replaces the program: still one attached.
    let second = program(&rules(
        r#"[{"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"}]"#,
    ))
    .expect("program");
    attach(&LinuxBpf, &cg.0, &second).expect("replace");
    let new_ids = attached(&cg.0);
    assert_eq!(new_ids.len(), 1, "{new_ids:?}");
    assert_ne!(new_ids, ids, "the old program is still attached");
    let out = in_cgroup(&cg.0, &probe);
    assert!(out.contains("open /dev/zero ok"), "{out}");
    assert!(out.contains(&format!("open {n}/kmsg refused")), "{out}");

    // With the cgroup gone the kernel frees the program (released asynchronously).
    let id = new_ids[0];
    drop(cg);
    let deadline = Instant::now() + Duration::from_secs(5);
    while LinuxBpf.program_by_id(id).is_ok() {
        assert!(
            Instant::now() < deadline,
            "program {id} outlived its cgroup"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
