//! `youki features` and `youki spec`, checked against the OCI runtime-spec and against
//! runc (`runc features`, `runc spec`: runc 1.1 is a test dependency of this project).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{json, Value};

/// The youki binary of this package (not RUNTIME_BIN: these are youki's own commands).
fn youki() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_youki"))
}

/// runc, which these tests compare against; the test fails if it is missing.
fn runc() -> PathBuf {
    let p = std::env::var_os("RUNC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/runc"));
    assert!(
        p.exists(),
        "{} not found: install Debian's runc (scripts/setup.sh) or set RUNC_BIN",
        p.display()
    );
    p
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"))
}

fn json_of(o: &Output, what: &str) -> Value {
    assert_ok(o, what);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e})\n{}", describe(o)))
}

fn set_of(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

fn youki_features() -> Value {
    json_of(
        &output(Command::new(youki()).arg("features")),
        "youki features",
    )
}

#[test]
fn features_has_the_required_fields_and_no_nulls() {
    let f = youki_features();
    assert_eq!(f["ociVersionMin"], "1.0.0", "{f}");
    let max = f["ociVersionMax"].as_str().expect("ociVersionMax");
    // `youki --version` names the spec version it implements: the same.
    let v = output(Command::new(youki()).arg("--version"));
    assert_ok(&v, "youki --version");
    assert!(
        stdout_of(&v).contains(&format!("spec: {max}")),
        "ociVersionMax {max} vs --version:\n{}",
        stdout_of(&v)
    );
    assert!(!f.to_string().contains("null"), "null members: {f}");
    assert_eq!(
        set_of(&f["hooks"]),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
        .map(String::from)
        .into(),
    );
    let l = &f["linux"];
    assert_eq!(
        l["cgroup"],
        json!({"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true})
    );
    for off in ["selinux", "intelRdt"] {
        assert_eq!(l[off], json!({"enabled": false}), "linux.{off}");
    }
    // seccomp's lists are checked in tests/seccomp.rs.
    assert_eq!(l["seccomp"]["enabled"], true, "linux.seccomp");
    assert_eq!(l["apparmor"], json!({"enabled": true}), "linux.apparmor");
    assert_eq!(l["mountExtensions"], json!({"idmap": {"enabled": true}}));
    assert!(f["annotations"].is_object(), "{f}");
}

#[test]
fn features_lists_match_runc_where_the_runtimes_agree() {
    let ours = youki_features();
    let theirs = json_of(
        &output(Command::new(runc()).arg("features")),
        "runc features",
    );

    // Mount options: runc's, less acl/noacl (runc maps them to MS_POSIXACL; here they
    // are filesystem data), with idmap/ridmap (runc has them since 1.2).
    let mut want = set_of(&theirs["mountOptions"]);
    want.remove("acl");
    want.remove("noacl");
    want.insert("idmap".into());
    want.insert("ridmap".into());
    assert_eq!(set_of(&ours["mountOptions"]), want, "mountOptions");

    // Namespaces: runc 1.1's, plus time.
    let mut want = set_of(&theirs["linux"]["namespaces"]);
    want.insert("time".into());
    assert_eq!(
        set_of(&ours["linux"]["namespaces"]),
        want,
        "linux.namespaces"
    );

    // Capabilities: the same kernel list.
    assert_eq!(
        set_of(&ours["linux"]["capabilities"]),
        set_of(&theirs["linux"]["capabilities"]),
        "linux.capabilities"
    );
    assert_eq!(ours["hooks"], theirs["hooks"], "hooks, in the same order");
}

/// A scratch directory, writable by everyone (for the unprivileged `spec --rootless`).
fn scratch(name: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix(&format!("youki-info-{name}-"))
        .tempdir()
        .unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// Runs `BIN spec [--rootless]` in a fresh directory (as `as_user` if given) and returns
/// the config.json it wrote.
fn spec_of(bin: &Path, rootless: bool, as_user: Option<u32>) -> Value {
    let dir = scratch("spec");
    let mut cmd = Command::new(bin);
    cmd.arg("spec").current_dir(dir.path());
    if rootless {
        cmd.arg("--rootless");
    }
    if let Some(id) = as_user {
        // std drops the supplementary groups too when root sets a uid.
        cmd.uid(id).gid(id);
    }
    let o = output(&mut cmd);
    assert_ok(&o, &format!("{} spec", bin.display()));
    let text = fs::read_to_string(dir.path().join("config.json")).expect("config.json written");
    serde_json::from_str(&text).expect("config.json is JSON")
}

/// Compares two configs member by member, except ociVersion, naming the first difference.
#[track_caller]
fn assert_same_config(ours: &Value, runc: &Value) {
    assert_eq!(
        ours["ociVersion"], "1.2.0",
        "youki writes the spec version it implements"
    );
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("ociVersion");
        v
    };
    let (a, b) = (strip(ours), strip(runc));
    for key in a
        .as_object()
        .unwrap()
        .keys()
        .chain(b.as_object().unwrap().keys())
    {
        assert_eq!(
            a.get(key),
            b.get(key),
            "member {key:?} differs from runc spec's"
        );
    }
}

#[test]
fn spec_matches_runc_spec() {
    require_root();
    let ours = spec_of(&youki(), false, None);
    let theirs = spec_of(&runc(), false, None);
    assert_same_config(&ours, &theirs);
    assert_eq!(ours["process"]["terminal"], true);
    assert_eq!(ours["process"]["args"], json!(["sh"]));
    assert_eq!(
        ours["process"]["capabilities"]["bounding"],
        json!(RUNC_SPEC_CAPS)
    );
}

#[test]
fn spec_rootless_matches_runc_spec_rootless() {
    require_root();
    // As root: root maps to root.
    assert_same_config(
        &spec_of(&youki(), true, None),
        &spec_of(&runc(), true, None),
    );
    // As an unprivileged user: root in the container maps to that user.
    let ours = spec_of(&youki(), true, Some(65534));
    assert_same_config(&ours, &spec_of(&runc(), true, Some(65534)));
    assert_eq!(
        ours["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": 65534, "size": 1}])
    );
    let ns = ours["linux"]["namespaces"].to_string();
    assert!(
        ns.contains("\"user\"") && !ns.contains("\"network\""),
        "{ns}"
    );
}

#[test]
fn spec_refuses_to_overwrite_config_json() {
    let dir = scratch("exists");
    let config = dir.path().join("config.json");
    fs::write(&config, "keep me").unwrap();
    let o = output(
        Command::new(youki())
            .args(["spec", "--bundle"])
            .arg(dir.path()),
    );
    assert_failed_with_message(&o, "spec over an existing config.json");
    assert!(
        stderr_of(&o).contains("File config.json exists. Remove it first"),
        "runc's message expected\n{}",
        describe(&o)
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), "keep me");
}

#[test]
fn spec_into_a_missing_bundle_fails() {
    let dir = scratch("missing");
    let missing = dir.path().join("nope");
    let o = output(Command::new(youki()).args(["spec", "-b"]).arg(&missing));
    assert_failed_with_message(&o, "spec --bundle MISSING");
    assert!(stderr_of(&o).contains("nope"), "{}", describe(&o));
    assert!(!missing.exists());
}

#[test]
fn spec_output_runs_a_container() {
    let env = TestEnv::new("info-spec");
    let mut b = env.bundle();
    fs::remove_file(b.config_path()).unwrap();
    let o = output(
        Command::new(youki())
            .arg("spec")
            .arg("--bundle")
            .arg(&b.dir),
    );
    assert_ok(&o, "youki spec --bundle");
    let mut config: Value =
        serde_json::from_str(&fs::read_to_string(b.config_path()).unwrap()).unwrap();
    // What a user changes to run a non-interactive command, plus the test's markers.
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", "echo spec-ok $(hostname)"]);
    config["linux"]["cgroupsPath"] = json!(b.cgroups_path);
    b.config = config;
    b.add_env(&format!("{MARKER_VAR}={}", env.marker));
    let id = env.id();
    let o = env.run_container(&id, &b);
    assert_ok(&o, "run with the config of `youki spec`");
    assert_eq!(stdout_of(&o).trim(), "spec-ok runc");
}

/// moby's parseRuntimeVersion (v28.5.2 daemon/info_unix.go), which `docker info` shows the
/// default runtime's `--version` through: (runtime, version, commit) from the line holding
/// "version" and the line starting "commit:"; an error when neither is there.
fn moby_parse_runtime_version(v: &str) -> Result<(String, String, String), String> {
    let (mut runtime, mut version, mut commit) = (String::new(), String::new(), String::new());
    for line in v.trim().split('\n') {
        if line.contains("version") {
            let parts: Vec<&str> = line.split("version").collect();
            runtime = parts[0].trim().to_string();
            version = parts[parts.len() - 1].trim().to_string();
            continue;
        }
        if let Some(c) = line.strip_prefix("commit:") {
            commit = c.trim().to_string();
        }
    }
    if version.is_empty() && commit.is_empty() {
        return Err(format!("unknown output format: {v}"));
    }
    Ok((runtime, version, commit))
}

/// `youki --version` (and `-v`) prints runc's three lines, `NAME version X`, `commit: Y`,
/// `spec: Z`, so that Docker shows our version where it shows runc's (`runc version:` in
/// `docker info` is the commit line; without it, N/A, as before this test). runc's own
/// output parses the same way (the check of the parser).
#[test]
fn version_is_runcs_three_lines_as_docker_parses_them() {
    let runc_out = output(Command::new(runc()).arg("--version"));
    assert_ok(&runc_out, "runc --version");
    let (name, version, commit) = moby_parse_runtime_version(&stdout_of(&runc_out)).unwrap();
    assert_eq!(name, "runc");
    assert!(
        !version.is_empty() && !commit.is_empty(),
        "{version} {commit}"
    );

    let max = youki_features()["ociVersionMax"]
        .as_str()
        .expect("ociVersionMax")
        .to_string();
    for flag in ["--version", "-v"] {
        let o = output(Command::new(youki()).arg(flag));
        assert_ok(&o, &format!("youki {flag}"));
        let text = stdout_of(&o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            format!("youki version {}", env!("CARGO_PKG_VERSION"))
        );
        assert!(lines[1].starts_with("commit: "), "{text}");
        assert_eq!(lines[2], format!("spec: {max}"));
        let (name, version, commit) = moby_parse_runtime_version(&text).unwrap();
        assert_eq!(
            (name.as_str(), version.as_str()),
            ("youki", env!("CARGO_PKG_VERSION"))
        );
        assert!(!commit.is_empty(), "docker info would show N/A:\n{text}");
    }
}
