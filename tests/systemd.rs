//! The systemd cgroup driver, `--systemd-cgroup`: on a host not booted with systemd (this
//! machine), a systemd-form cgroupsPath is a clear error and leaves nothing; a cgroupfs
//! path given to the systemd driver is refused as runc refuses it. The tests that need
//! systemd as init are `#[ignore]`d here and run by scripts/vm-test.sh in its systemd VM
//! (`--ignored`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use common::*;

/// Where systemd marks a host booted with it (sd_booted(3)).
const BOOTED: &str = "/run/systemd/system";

/// `--systemd-cgroup COMMAND --bundle DIR ID` (`run` or `create`).
fn with_systemd(env: &TestEnv, command: &str, b: &Bundle, id: &str) -> std::process::Output {
    env.track(id);
    let dir = b.dir.to_str().expect("utf-8");
    env.run_global(&["--systemd-cgroup"], &[command, "--bundle", dir, id])
}

/// A bundle whose cgroupsPath is `system.slice:<marker>:<id>`, with its id and its scope's
/// name (the marker as prefix: the guard finds a scope left behind).
fn scope_bundle(env: &TestEnv) -> (Bundle, String, String) {
    let mut b = env.bundle();
    let id = env.id();
    b.linux()["cgroupsPath"] = format!("system.slice:{}:{id}", env.marker).into();
    let unit = format!("{}-{id}.scope", env.marker);
    (b, id, unit)
}

/// No cgroup namespace, so that /proc/self/cgroup shows the host's path of the scope.
fn without_cgroup_namespace(b: &mut Bundle) {
    b.linux()["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "cgroup");
}

/// `--systemd-cgroup run` of a `true` container whose cgroupsPath is `path` (`None`: no
/// cgroupsPath, so the default one): it must fail before making anything.
#[track_caller]
fn run_refused(env: &TestEnv, path: Option<&str>, words: &[&str]) -> String {
    let mut b = env.bundle();
    match path {
        Some(p) => b.linux()["cgroupsPath"] = p.into(),
        None => {
            b.linux()
                .as_object_mut()
                .expect("linux is an object")
                .remove("cgroupsPath");
        }
    }
    b.args(&["true"]).save();
    let id = env.id();
    let o = with_systemd(env, "run", &b, &id);
    assert_failed_with_message(
        &o,
        &format!("--systemd-cgroup run with cgroupsPath {path:?}"),
    );
    let err = stderr_of(&o);
    assert!(
        words.iter().any(|w| err.contains(w)),
        "the message should name one of {words:?}\n{}",
        describe(&o)
    );
    assert!(
        env.state_entries().is_empty(),
        "state left: {:?}",
        env.state_entries()
    );
    id
}

/// The scope directories a unit named `<prefix>-<id>.scope` in system.slice would have.
fn scope_dirs(prefix: &str, id: &str) -> Vec<std::path::PathBuf> {
    cgroup_hierarchies()
        .into_iter()
        .map(|h| {
            h.mount_point
                .join("system.slice")
                .join(format!("{prefix}-{id}.scope"))
        })
        .filter(|d| d.exists())
        .collect()
}

#[test]
fn systemd_form_path_without_systemd_is_a_clear_error() {
    assert!(
        !Path::new(BOOTED).is_dir(),
        "this test is for a host not booted with systemd ({BOOTED} exists)"
    );
    let env = TestEnv::new("sdnone");
    // runc 1.1.5: "systemd not running on this host, can't use systemd as cgroups
    // manager"; youki names the path and what is missing.
    let words = ["systemd not running", "not booted with systemd"];
    // The prefix is the test's marker, so that the guard would find a scope left behind.
    let path = format!("system.slice:{}:x", env.marker);
    run_refused(&env, Some(&path), &words);
    assert!(scope_dirs(&env.marker, "x").is_empty());
    // No cgroupsPath: the default system.slice:<runtime>:<id>, refused the same way.
    let id = run_refused(&env, None, &words);
    for prefix in ["youki", "runc"] {
        assert!(
            scope_dirs(prefix, &id).is_empty(),
            "{:?}",
            scope_dirs(prefix, &id)
        );
    }
}

/// runc: `expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups`,
/// before it looks for systemd.
#[test]
fn cgroupfs_path_with_the_systemd_driver_is_refused() {
    let env = TestEnv::new("sdform");
    for path in ["/youki-it-not-systemd", "a.slice:b", "a.slice:b:c:d"] {
        run_refused(&env, Some(path), &["slice:prefix:name"]);
    }
}

/// With systemd as init (the VM): the container is the scope `<prefix>-<id>.scope` in
/// system.slice; systemd reports its limits, its cgroup files hold them, its processes'
/// /proc/self/cgroup names it; after delete no unit of that name is left.
#[test]
#[ignore = "needs systemd as init: scripts/vm-test.sh runs it in its systemd VM"]
fn systemd_scope_holds_the_limits_and_goes_with_delete() {
    assert!(Path::new(BOOTED).is_dir(), "needs systemd as init");
    let env = TestEnv::new("sdscope");
    let (mut b, id, unit) = scope_bundle(&env);
    without_cgroup_namespace(&mut b);
    b.resource("memory", json!({ "limit": 100 * 1024 * 1024 }));
    b.resource("pids", json!({ "limit": 42 }));
    b.resource("cpu", json!({ "quota": 50000, "period": 100000 }));
    b.args(&["sleep", "1000"]).save();
    assert_ok(
        &with_systemd(&env, "create", &b, &id),
        "--systemd-cgroup create",
    );
    env.start(&id);

    assert_eq!(systemctl_show(&unit, "ActiveState"), "active");
    assert_eq!(systemctl_show(&unit, "Delegate"), "yes");
    assert_eq!(systemctl_show(&unit, "MemoryMax"), "104857600");
    assert_eq!(systemctl_show(&unit, "TasksMax"), "42");
    assert_eq!(systemctl_show(&unit, "CPUQuotaPerSecUSec"), "500ms");
    let cgroup = systemctl_show(&unit, "ControlGroup");
    assert_eq!(cgroup, format!("/system.slice/{unit}"));

    let dir = Path::new("/sys/fs/cgroup").join(cgroup.trim_start_matches('/'));
    let file = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap_or_else(|e| panic!("{}/{f}: {e}", dir.display()))
            .trim()
            .to_string()
    };
    assert_eq!(file("memory.max"), "104857600");
    assert_eq!(file("pids.max"), "42");
    assert_eq!(file("cpu.max"), "50000 100000");

    let want = format!("0::{cgroup}");
    let pid = env.pid(&id);
    let init = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("init's cgroup");
    assert_eq!(init.trim(), want, "init");
    let o = env.run(&["exec", &id, "cat", "/proc/self/cgroup"]);
    assert_ok(&o, "exec cat /proc/self/cgroup");
    assert_eq!(stdout_of(&o).trim(), want, "an exec'd process");

    // Pause and resume: the scope's freezer.
    assert_ok(&env.run(&["pause", &id]), "pause");
    assert_eq!(env.status(&id), "paused");
    assert_eq!(file("cgroup.freeze"), "1");
    assert_ok(&env.run(&["resume", &id]), "resume");
    assert_eq!(env.status(&id), "running");
    assert_eq!(file("cgroup.freeze"), "0");

    // Update: systemd's properties and the files both change.
    let o = env.run(&["update", "--memory", "209715200", "--pids-limit", "50", &id]);
    assert_ok(&o, "update");
    assert_eq!(systemctl_show(&unit, "MemoryMax"), "209715200");
    assert_eq!(systemctl_show(&unit, "TasksMax"), "50");
    assert_eq!(file("memory.max"), "209715200");
    assert_eq!(file("pids.max"), "50");

    assert_ok(&env.kill(&id, "KILL"), "kill");
    env.wait_for_status(&id, "stopped", Duration::from_secs(10));
    assert_ok(&env.delete(&id), "delete");
    assert_no_unit(&unit);
    assert!(!dir.exists(), "{} is left", dir.display());
}

/// Asserts that systemd has no unit `unit` loaded, active or failed.
#[track_caller]
fn assert_no_unit(unit: &str) {
    let o = Command::new("systemctl")
        .args(["list-units", "--all", "--plain", "--no-legend", unit])
        .output()
        .expect("systemctl list-units");
    assert_ok(&o, "systemctl list-units");
    assert_eq!(stdout_of(&o).trim(), "", "a unit is left");
}

/// Without cgroupsPath the scope is `<runtime>-<id>.scope` in system.slice (runc: `runc`,
/// youki: `youki`), which `run`'s container sees as its cgroup and which goes with it.
#[test]
#[ignore = "needs systemd as init: scripts/vm-test.sh runs it in its systemd VM"]
fn systemd_default_path_is_a_scope_in_system_slice() {
    assert!(Path::new(BOOTED).is_dir(), "needs systemd as init");
    let env = TestEnv::new("sddefault");
    let mut b = env.bundle();
    b.linux()
        .as_object_mut()
        .expect("linux")
        .remove("cgroupsPath");
    without_cgroup_namespace(&mut b);
    b.args(&["cat", "/proc/self/cgroup"]).save();
    let id = env.id();
    let o = with_systemd(&env, "run", &b, &id);
    assert_ok(&o, "--systemd-cgroup run");
    // runc's prefix is its own name.
    let runtime = if env.runtime.ends_with("runc") {
        "runc"
    } else {
        "youki"
    };
    let unit = format!("{runtime}-{id}.scope");
    assert_eq!(stdout_of(&o).trim(), format!("0::/system.slice/{unit}"));
    assert_no_unit(&unit);
}

/// A create that fails after the scope started (a createRuntime hook fails, after init is
/// in its cgroup) stops the scope: no unit, no cgroup, no state.
#[test]
#[ignore = "needs systemd as init: scripts/vm-test.sh runs it in its systemd VM"]
fn systemd_failed_create_leaves_no_unit() {
    assert!(Path::new(BOOTED).is_dir(), "needs systemd as init");
    let env = TestEnv::new("sdfail");
    let (mut b, id, unit) = scope_bundle(&env);
    b.hook("createRuntime", json!({ "path": "/bin/false" }));
    b.save();
    let o = with_systemd(&env, "create", &b, &id);
    assert_failed_with_message(&o, "create with a failing createRuntime hook");
    assert_no_unit(&unit);
    assert!(!Path::new("/sys/fs/cgroup/system.slice")
        .join(&unit)
        .exists());
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
}
