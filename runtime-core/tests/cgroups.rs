//! cgroups against the real kernel: needs root; skipped (with a note) otherwise.
//!
//! Every test uses its own top-level cgroup `/youki-cgtest-<pid>-<n>` and removes it, also
//! when an assertion fails (the [`Guard`]'s Drop).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use runtime_core::cgroups::{manager, CgroupError, CgroupManager, FreezerState};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A cgroup path no other test (or test run) uses.
fn unique_path() -> PathBuf {
    PathBuf::from(format!(
        "/youki-cgtest-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ))
}

fn skip_unless_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("skipped: cgroup tests need root");
    true
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("valid LinuxResources JSON")
}

/// Kills the child and removes the cgroups (deepest first) whatever happens in the test.
struct Guard {
    managers: Vec<Box<dyn CgroupManager>>,
    child: Option<Child>,
}

impl Guard {
    fn new(path: &Path) -> Self {
        let mut g = Guard {
            managers: Vec::new(),
            child: None,
        };
        g.push(path);
        g
    }

    /// Also removes `path` (pushed later = removed earlier).
    fn push(&mut self, path: &Path) {
        self.managers
            .insert(0, manager(path).expect("cgroup manager for this host"));
    }

    fn cg(&self) -> &dyn CgroupManager {
        self.managers[0].as_ref()
    }

    fn spawn_sleep(&mut self) -> Pid {
        let child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = Pid::from_raw(child.id() as i32);
        self.child = Some(child);
        pid
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A frozen v1 task does not die from SIGKILL until thawed.
        for m in &self.managers {
            let _ = m.thaw();
        }
        self.kill_child();
        for m in &self.managers {
            if let Err(e) = m.remove() {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// The container's directory of hierarchy `name` (v1), or the unified one (v2, name "").
fn dir_of(m: &dyn CgroupManager, name: &str) -> Option<PathBuf> {
    let mounts = m.mounts();
    if mounts.len() == 1 && mounts[0].name.is_empty() {
        return Some(mounts[0].source.clone());
    }
    mounts
        .into_iter()
        .find(|x| x.name == name)
        .map(|x| x.source)
}

fn is_v2(m: &dyn CgroupManager) -> bool {
    m.mounts().iter().any(|x| x.name.is_empty())
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

fn assert_all_gone(m: &dyn CgroupManager) {
    for mount in m.mounts() {
        assert!(
            !mount.source.exists(),
            "{} still exists",
            mount.source.display()
        );
    }
}

#[test]
fn limits_task_pids_and_removal() {
    if skip_unless_root() {
        return;
    }
    let path = unique_path();
    let mut g = Guard::new(&path);
    let r = resources(r#"{"memory": {"limit": 67108864}, "pids": {"limit": 32}}"#);
    g.cg().create(Some(&r)).expect("create");

    let mem = dir_of(g.cg(), "memory").expect("memory hierarchy");
    let pids = dir_of(g.cg(), "pids").expect("pids hierarchy");
    let mem_file = if is_v2(g.cg()) {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(read(&mem, mem_file), "67108864");
    assert_eq!(read(&pids, "pids.max"), "32");
    for mount in g.cg().mounts() {
        assert!(mount.source.is_dir(), "{} missing", mount.source.display());
    }

    let pid = g.spawn_sleep();
    g.cg().add_task(pid).expect("add_task");
    let listed = g.cg().pids().expect("pids");
    assert!(listed.contains(&pid), "{pid} not in {listed:?}");
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("/proc/pid/cgroup");
    assert!(
        own.lines()
            .any(|l| l.ends_with(path.to_str().expect("utf-8"))),
        "{own}"
    );

    g.kill_child();
    g.cg().remove().expect("remove");
    assert_all_gone(g.cg());
    // Removing again is fine.
    g.cg().remove().expect("remove absent");
    assert!(g.cg().pids().expect("pids of absent").is_empty());
}

#[test]
fn nested_cpu_cpuset_and_freezer() {
    if skip_unless_root() {
        return;
    }
    let top = unique_path();
    let leaf = top.join("a/b");
    let mut g = Guard::new(&top);
    g.push(&leaf);
    let r = resources(r#"{"cpu": {"shares": 512, "quota": 50000, "period": 100000}}"#);
    g.cg().create(Some(&r)).expect("create");

    let cpu = dir_of(g.cg(), "cpu").expect("cpu hierarchy");
    if is_v2(g.cg()) {
        if cpu.join("cpu.max").exists() {
            assert_eq!(read(&cpu, "cpu.max"), "50000 100000");
        }
    } else {
        assert_eq!(read(&cpu, "cpu.shares"), "512");
        assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
        // cpuset copied down through every new level, so that tasks can join.
        let cpuset = dir_of(g.cg(), "cpuset").expect("cpuset hierarchy");
        for dir in [cpuset.clone(), cpuset.join(".."), cpuset.join("../..")] {
            assert!(!read(&dir, "cpuset.cpus").is_empty(), "{}", dir.display());
            assert!(!read(&dir, "cpuset.mems").is_empty(), "{}", dir.display());
        }
    }

    let pid = g.spawn_sleep();
    g.cg().add_task(pid).expect("add_task");
    assert_eq!(g.cg().freezer_state().expect("state"), FreezerState::Thawed);
    g.cg().freeze().expect("freeze");
    assert_eq!(g.cg().freezer_state().expect("state"), FreezerState::Frozen);
    g.cg().thaw().expect("thaw");
    assert_eq!(g.cg().freezer_state().expect("state"), FreezerState::Thawed);

    g.kill_child();
    g.cg().remove().expect("remove leaf");
    assert_all_gone(g.cg());
    // The parents stay (other containers may share them) until removed themselves.
    let top_manager = manager(&top).expect("manager");
    assert!(top_manager.mounts().iter().all(|m| m.source.is_dir()));
    top_manager.remove().expect("remove top");
    assert_all_gone(top_manager.as_ref());
}

#[test]
fn refused_value_names_path_file_and_value() {
    if skip_unless_root() {
        return;
    }
    let path = unique_path();
    let g = Guard::new(&path);
    // The kernel's minimum CFS quota is 1000 µs.
    let r = resources(r#"{"cpu": {"quota": 500, "period": 100000}}"#);
    let err = g.cg().create(Some(&r)).expect_err("quota below 1ms");
    let msg = err.to_string();
    assert!(matches!(err, CgroupError::Write { .. }), "{msg}");
    assert!(msg.contains(path.to_str().expect("utf-8")), "{msg}");
    assert!(
        msg.contains("cpu.cfs_quota_us") || msg.contains("cpu.max"),
        "{msg}"
    );
    assert!(msg.contains("500"), "{msg}");
    g.cg().remove().expect("remove after failed create");
    assert_all_gone(g.cg());
}

#[test]
fn escaping_path_is_refused() {
    let err = manager(Path::new("/youki/../../etc"))
        .err()
        .expect("'..' refused");
    assert!(err.to_string().contains(".."), "{err}");
}
