//! The shim and the systemd cgroup driver, through containerd and `ctr`: a cgroupsPath in
//! the systemd form (`slice:prefix:name`, what containerd's CRI sends whenever the pod's
//! cgroup parent is a `.slice`, as kubelet's systemd driver makes it) makes the container
//! a transient systemd scope, as containerd's runc shim does with `SystemdCgroup = true`
//! (`ctr run --runc-systemd-cgroup`). Each test runs with our shim and, as the reference,
//! with containerd's runc shim and Debian's runc.
//!
//! On a host not booted with systemd (this machine) such a path is a clear error and
//! leaves nothing. The tests that need systemd as init are `#[ignore]`d here and run by
//! scripts/vm-test.sh in its systemd VM (`--ignored`).

mod common;
mod e2e_support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{assert_ok, describe, poll, stderr_of, stdout_of, systemctl_show, systemd_units};
use e2e_support::containerd::*;

/// Where systemd marks a host booted with it (sd_booted(3)).
const BOOTED: &str = "/run/systemd/system";

/// The two shims, each with what makes it use systemd for a systemd-form path: ours by
/// the path's form alone, runc's shim by runc's `SystemdCgroup` option.
fn shims() -> [(&'static str, Shim<'static>, &'static [&'static str]); 2] {
    [
        (
            "youki",
            Shim::youki(),
            &["--runtime", "io.containerd.youki.v2"],
        ),
        (
            "runc",
            Shim::runc(),
            &[
                "--runtime",
                "io.containerd.runc.v2",
                "--runc-systemd-cgroup",
            ],
        ),
    ]
}

/// The scope of container `id` in system.slice, with the world's marker as its prefix
/// (the world's leak check finds its cgroup): (cgroupsPath, unit name).
fn scope_of(c: &Containerd, id: &str) -> (String, String) {
    (
        format!("system.slice:{}:{id}", c.w.marker),
        format!("{}-{id}.scope", c.w.marker),
    )
}

/// The systemd units whose name starts with the world's marker, loaded in any state.
fn units_of(c: &Containerd) -> Vec<String> {
    systemd_units(&format!("{}*", c.w.marker))
}

/// `ctr run SHIM_FLAGS... --cgroup PATH FLAGS... --rootfs ROOTFS ID ARGS...`.
fn run_in(
    c: &Containerd,
    shim_flags: &[&str],
    path: &str,
    flags: &[&str],
    id: &str,
    args: &[&str],
) -> Output {
    let mut all = vec!["--cgroup", path];
    all.extend_from_slice(flags);
    c.w.run(&mut c.run_rootfs_cmd(shim_flags, &all, id, args))
}

/// `ctr run --rm` of `true` with cgroupsPath `path` must fail before anything exists;
/// returns its stderr. `ctr run --rm` removes the container after a failed start, not
/// after a failed create: it is removed here as a client would.
#[track_caller]
fn run_refused(c: &Containerd, name: &str, flags: &[&str], path: &str, id: &str) -> String {
    let o = run_in(c, flags, path, &["--rm"], id, &["true"]);
    assert!(!o.status.success(), "{name}: {}", describe(&o));
    let _ = c.ctr(&["containers", "rm", id]);
    c.no_containers_left();
    stderr_of(&o)
}

#[test]
fn systemd_form_path_without_systemd_is_a_clear_error() {
    if Path::new(BOOTED).is_dir() {
        eprintln!("skipped: this host was booted with systemd ({BOOTED} exists)");
        return;
    }
    for (name, shim, flags) in shims() {
        let c = Containerd::start(&format!("sdnone-{name}"), shim);
        let id = c.w.name("c");
        let (path, _) = scope_of(&c, &id);
        let err = run_refused(&c, name, flags, &path, &id);
        // runc 1.1.5: "systemd not running on this host, can't use systemd as cgroups
        // manager"; ours names the path and what is missing.
        assert!(
            ["systemd not running", "not booted with systemd"]
                .iter()
                .any(|w| err.contains(w)),
            "{name}: the error should say that systemd is not running\n{err}"
        );
        if name == "youki" {
            assert!(err.contains(&path), "{err}");
        }
    }
}

/// runc's `SystemdCgroup` option (`ctr run --runc-systemd-cgroup`) is honoured by our
/// shim too: with a cgroupfs path the container is refused before anything exists, as runc
/// refuses it (`expected cgroupsPath to be of format "slice:prefix:name" for systemd
/// cgroups`). On any host: the form is checked before systemd is looked for.
///
/// ctr sends runc's options only to the runtime named io.containerd.runc.v2, so our shim
/// runs under that name here (containerd-shim-runc-v2, a link to it, first on containerd's
/// PATH), as CRI's `runtime_path` entry runs it (tests/e2e_cri_info.rs).
#[test]
fn systemd_cgroup_option_with_a_cgroupfs_path_is_refused() {
    let links = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(
        shim_dir().join(SHIM),
        links.path().join("containerd-shim-runc-v2"),
    )
    .expect("link the shim");
    let as_runc = Shim {
        binary: "containerd-shim-runc-v2",
        dir: Some(links.path()),
        ..Shim::youki()
    };
    for (name, shim) in [("youki", as_runc), ("runc", Shim::runc())] {
        let c = Containerd::start(&format!("sdopt-{name}"), shim);
        let id = c.w.name("c");
        let flags = [
            "--runtime",
            "io.containerd.runc.v2",
            "--runc-systemd-cgroup",
        ];
        let path = format!("/{}/{id}", c.w.marker);
        let err = run_refused(&c, name, &flags, &path, &id);
        assert!(
            err.contains("slice:prefix:name"),
            "{name}: the error should name the form expected\n{err}"
        );
    }
}

/// With systemd as init (the VM): a container whose cgroupsPath is `system.slice:P:ID` is
/// the scope `P-ID.scope`, with its memory limit in systemd and in the scope's cgroup,
/// init and exec'd processes in it, its device rules enforced; pause, resume and metrics
/// act on it (ctr has no update: tests/systemd.rs updates through the CLI); after delete
/// no unit or cgroup of it is left.
#[test]
#[ignore = "needs systemd as init: scripts/vm-test.sh runs it in its systemd VM"]
fn shim_container_is_a_systemd_scope() {
    assert!(Path::new(BOOTED).is_dir(), "needs systemd as init");
    for (name, shim, flags) in shims() {
        let c = Containerd::start(&format!("sdscope-{name}"), shim);
        let id = c.w.name("c");
        let (path, unit) = scope_of(&c, &id);
        let o = run_in(
            &c,
            flags,
            &path,
            &["-d", "--memory-limit", "104857600"],
            &id,
            &["sleep", "1000"],
        );
        assert_ok(&o, &format!("{name}: ctr run -d --cgroup {path}"));
        assert!(
            poll(Duration::from_secs(10), || c.task_status(&id) == "RUNNING"),
            "{name}: not running\n{}",
            c.log_tail()
        );
        assert_eq!(systemctl_show(&unit, "ActiveState"), "active", "{name}");
        assert_eq!(systemctl_show(&unit, "MemoryMax"), "104857600", "{name}");
        let cgroup = systemctl_show(&unit, "ControlGroup");
        assert_eq!(cgroup, format!("/system.slice/{unit}"), "{name}");
        let dir = Path::new("/sys/fs/cgroup").join(cgroup.trim_start_matches('/'));
        let file = |f: &str| read_trimmed(&dir.join(f));
        assert_eq!(file("memory.max"), "104857600", "{name}");

        // The host's view of init's cgroup.
        let pid = c.task_pid(&id);
        let want = format!("0::{cgroup}");
        assert_eq!(
            read_trimmed(Path::new(&format!("/proc/{pid}/cgroup"))),
            want,
            "{name}: init"
        );
        assert!(
            file("cgroup.procs").lines().any(|p| p == pid.to_string()),
            "{name}"
        );
        let exec_id = format!("{id}-x");
        let o = c.w.run(c.cmd().args([
            "task",
            "exec",
            "--exec-id",
            &exec_id,
            &id,
            "sh",
            "-c",
            "cat /proc/self/cgroup",
        ]));
        assert_ok(&o, &format!("{name}: ctr task exec"));
        let seen = stdout_of(&o).trim().to_string();
        // "0::/" with the container's cgroup namespace (whose root is the scope).
        assert!(
            seen == want || seen == "0::/",
            "{name}: an exec'd process is in {seen}"
        );

        c.ctr_ok(&["task", "pause", &id]);
        assert_eq!(c.task_status(&id), "PAUSED", "{name}");
        assert_eq!(file("cgroup.freeze"), "1", "{name}");
        c.ctr_ok(&["task", "resume", &id]);
        assert_eq!(c.task_status(&id), "RUNNING", "{name}");
        assert_eq!(file("cgroup.freeze"), "0", "{name}");

        let metrics = stdout_of(&c.ctr_ok(&["task", "metrics", &id]));
        assert!(
            metrics.contains("104857600"),
            "{name}: the limit in the metrics\n{metrics}"
        );

        // The device program is on the scope too: a node the container may make but not
        // use (c 1:1, /dev/mem) cannot be opened.
        let o = c.w.run(c.cmd().args([
            "task",
            "exec",
            "--exec-id",
            &format!("{id}-d"),
            &id,
            "sh",
            "-c",
            "mknod /tmp/mem c 1 1 && head -c 1 /tmp/mem",
        ]));
        assert!(
            !o.status.success() && stderr_of(&o).contains("Operation not permitted"),
            "{name}: /dev/mem opened\n{}",
            describe(&o)
        );

        c.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
        assert!(
            poll(Duration::from_secs(10), || c.task_status(&id) == "STOPPED"),
            "{name}: not stopped"
        );
        c.ctr_ok(&["task", "delete", &id]);
        c.ctr_ok(&["containers", "rm", &id]);
        c.no_containers_left();
        assert!(
            poll(Duration::from_secs(10), || units_of(&c).is_empty()),
            "{name}: units left: {:?}",
            units_of(&c)
        );
        assert!(!dir.exists(), "{name}: {} left", dir.display());
    }
}

fn read_trimmed(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// With systemd as init: a process of a container in a scope outgrows the scope's memory
/// limit and is OOM-killed; the shim sends /tasks/oom; the container, killed, goes with its
/// scope.
///
/// The victim is a child of init, not init: when init dies, systemd stops the emptied scope
/// and removes its cgroup at once, racing the shim's read of the kill count in
/// memory.events after the same notification (runc's shim reads it the same way). Our
/// shim lost that race in CI and missed the TaskOOM; a live container keeps its scope,
/// and the count, readable.
#[test]
#[ignore = "needs systemd as init: scripts/vm-test.sh runs it in its systemd VM"]
fn shim_oom_in_a_systemd_scope() {
    assert!(Path::new(BOOTED).is_dir(), "needs systemd as init");
    for (name, shim, flags) in shims() {
        let c = Containerd::start(&format!("sdoom-{name}"), shim);
        let events = EventWatch::start(&c);
        let id = c.w.name("oom");
        let (path, _) = scope_of(&c, &id);
        // The container allocates only when told to, by an exec after `ctr run -d` has
        // returned: runc's shim starts watching for OOM in Start, in a goroutine, and
        // missed a kill that came 1.5 s after start in CI (as tests/e2e_cri.rs notes).
        let o = run_in(
            &c,
            flags,
            &path,
            &["-d", "--memory-limit", "20971520"],
            &id,
            &[
                "sh",
                "-c",
                "until [ -e /tmp/go ]; do sleep 0.1; done; tail /dev/zero; sleep 1000",
            ],
        );
        assert_ok(&o, &format!("{name}: ctr run -d"));
        let o = c.w.run(
            c.cmd()
                .args(["task", "exec", "--exec-id", "go", &id, "touch", "/tmp/go"]),
        );
        assert_ok(&o, &format!("{name}: ctr task exec touch"));
        assert!(
            events.saw(Duration::from_secs(20), "/tasks/oom", &id),
            "{name}: no /tasks/oom\n{}",
            events.text()
        );
        c.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
        assert!(
            poll(Duration::from_secs(20), || c.task_status(&id) == "STOPPED"),
            "{name}: not stopped\n{}",
            events.text()
        );
        assert!(
            events.saw_exit(Duration::from_secs(10), &id, 137),
            "{name}: no exit 137\n{}",
            events.text()
        );
        c.ctr_ok(&["task", "delete", &id]);
        c.ctr_ok(&["containers", "rm", &id]);
        c.no_containers_left();
        assert!(
            poll(Duration::from_secs(10), || units_of(&c).is_empty()),
            "{name}: units left: {:?}",
            units_of(&c)
        );
    }
}
