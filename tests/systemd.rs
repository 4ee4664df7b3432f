//! The systemd cgroup driver, `--systemd-cgroup`: on a host not booted with systemd (this
//! machine), a systemd-form cgroupsPath is a clear error and leaves nothing; a cgroupfs
//! path given to the systemd driver is refused as runc refuses it.

mod common;

use std::path::Path;

use common::*;

/// Where systemd marks a host booted with it (sd_booted(3)).
const BOOTED: &str = "/run/systemd/system";

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
    env.track(&id);
    let o = env.run_global(
        &["--systemd-cgroup"],
        &["run", "--bundle", b.dir.to_str().expect("utf-8"), &id],
    );
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
