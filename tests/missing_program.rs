//! A program that is not there, or is there but cannot be run: `create`, `run` and `exec`
//! fail with runc's words, which clients turn into exit codes. Docker's daemon and
//! docker/cli give 127 for "executable file not found" and "no such file or directory",
//! 126 for "permission denied" (tests/data/docker_exit_codes.rs restates their rules); the
//! error reaches them through containerd's runc shim, which reads the runtime's
//! `--log-format json` log, or through our shim. The texts are runc 1.1.5's (and 1.3.6's,
//! which puts "error during container init: " before them and says "is a directory" for a
//! directory); youki used to say `executable "x" not found` for every case, which Docker
//! turned into 125/128.
//!
//! Passes against runc 1.1.5 and 1.3.6 (`RUNTIME_BIN`).

mod common;
#[path = "data/docker_exit_codes.rs"]
mod docker;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use common::*;
use docker::assert_docker_exit_code;
use serde_json::json;

/// A script in the rootfs that may not be executed (0644), and one only root may (0744).
const DATA: &str = "/bin/data.sh";
const ROOT_ONLY: &str = "/bin/rootonly.sh";

/// A default bundle whose rootfs also holds [`DATA`] and [`ROOT_ONLY`].
fn bundle(env: &TestEnv) -> Bundle {
    let b = env.bundle();
    for (path, mode) in [(DATA, 0o644), (ROOT_ONLY, 0o744)] {
        let p = b.rootfs().join(path.trim_start_matches('/'));
        fs::write(&p, "#!/bin/sh\necho ran\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    b
}

/// One way of naming a program that cannot run.
struct Case {
    arg0: &'static str,
    /// What the error says, word for word as runc says it (None: runc versions differ).
    text: Option<&'static str>,
    /// The exit code Docker derives from the error.
    docker: i32,
}

const CASES: &[Case] = &[
    Case {
        arg0: "nosuchcmd",
        text: Some(r#"exec: "nosuchcmd": executable file not found in $PATH"#),
        docker: 127,
    },
    Case {
        arg0: "/no/such/program",
        text: Some(r#"exec: "/no/such/program": stat /no/such/program: no such file or directory"#),
        docker: 127,
    },
    Case {
        arg0: DATA,
        text: Some(r#"exec: "/bin/data.sh": permission denied"#),
        docker: 126,
    },
    // A name whose only match on PATH is not executable is not found (Go's LookPath).
    Case {
        arg0: "data.sh",
        text: Some(r#"exec: "data.sh": executable file not found in $PATH"#),
        docker: 127,
    },
    // runc 1.1.5: "permission denied"; runc 1.3.6: "is a directory" (Docker: 126 too).
    Case {
        arg0: "/bin",
        text: None,
        docker: 126,
    },
];

/// The runtime failed, and said so in words Docker reads as `case.docker`.
#[track_caller]
fn check(o: &Output, case: &Case, what: &str) {
    assert_failed_with_message(o, what);
    // runc's stderr is a logrus text line: msg="...", its quotes escaped.
    check_text(&stderr_of(o).replace(r#"\""#, "\""), case, what);
}

#[track_caller]
fn check_text(err: &str, case: &Case, what: &str) {
    assert!(
        err.contains(case.arg0),
        "{what}: names no {}: {err}",
        case.arg0
    );
    if let Some(text) = case.text {
        assert!(err.contains(text), "{what}: no {text:?} in: {err}");
    }
    assert_docker_exit_code(err, case.docker, what);
}

/// The `error` lines of a `--log-format json` log (what containerd's runc shim reports).
fn log_errors(path: &std::path::Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error")
        .map(|v| v["msg"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn create_and_run_say_what_runc_says() {
    let env = TestEnv::new("noprog");
    for case in CASES {
        let what = format!("create {}", case.arg0);
        let mut b = bundle(&env);
        b.args(&[case.arg0]);
        let id = env.id();
        let o = env.try_create(&id, &b);
        check(&o, case, &what);
        // Nothing is left of it.
        assert!(
            !env.state_entries().contains(&id),
            "{what}: state left behind"
        );

        // As containerd's runc shim calls it: the error in the JSON log.
        let log = env.path("log.json");
        let id = env.id();
        b.save();
        env.track(&id);
        let o = env.run_global(
            &["--log", log.to_str().unwrap(), "--log-format", "json"],
            &["create", "--bundle", b.dir.to_str().unwrap(), &id],
        );
        assert_failed_with_message(&o, &what);
        check_text(&log_errors(&log), case, &format!("{what} (JSON log)"));

        let o = env.run_container(&env.id(), &b);
        check(&o, case, &format!("run {}", case.arg0));
    }
}

#[test]
fn exec_says_what_runc_says() {
    let env = TestEnv::new("noprogexec");
    let mut b = bundle(&env);
    b.sh("sleep 100");
    let id = env.id();
    env.create(&id, &b);
    env.start(&id);
    for case in CASES {
        let o = env.run(&["exec", &id, case.arg0]);
        check(&o, case, &format!("exec {}", case.arg0));
        let o = env.run(&["exec", "--detach", &id, case.arg0]);
        check(&o, case, &format!("exec --detach {}", case.arg0));
    }
    // The container is unharmed.
    let o = env.run(&["exec", &id, "echo", "still here"]);
    assert_ok(&o, "exec echo");
    assert_eq!(stdout_of(&o), "still here\n");
}

/// A file with an execute bit the process's user does not have: found as that user, as
/// runc finds it, so `create` and `exec` fail with "permission denied" (runc 1.1.5:
/// `exec /bin/rootonly.sh: permission denied`, 1.3.6: `exec: "/bin/rootonly.sh":
/// permission denied`) rather than an init that dies at `start`. A user that holds
/// CAP_DAC_OVERRIDE may run it, as execve lets it: the check uses the effective
/// credentials, capabilities included.
#[test]
fn a_program_the_user_may_not_run_is_permission_denied() {
    let env = TestEnv::new("noprogusr");
    let case = Case {
        arg0: ROOT_ONLY,
        text: Some("permission denied"),
        docker: 126,
    };
    let no_caps = json!({"bounding": [], "effective": [], "permitted": []});
    let mut b = bundle(&env);
    b.args(&[ROOT_ONLY]);
    b.process()["user"] = json!({"uid": 1000, "gid": 1000});
    b.process()["capabilities"] = no_caps.clone();
    let o = env.try_create(&env.id(), &b);
    check(&o, &case, "create as uid 1000 without capabilities");

    // With CAP_DAC_OVERRIDE (the default set has it) the same user may.
    let mut b = bundle(&env);
    b.args(&[ROOT_ONLY]);
    b.process()["user"] = json!({"uid": 1000, "gid": 1000});
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run as uid 1000 with CAP_DAC_OVERRIDE");
    assert_eq!(stdout_of(&o), "ran\n");

    let mut b = bundle(&env);
    b.sh("sleep 100");
    let id = env.id();
    env.create(&id, &b);
    env.start(&id);
    let o = env.run(&["exec", &id, ROOT_ONLY]);
    assert_ok(&o, "exec as root");
    assert_eq!(stdout_of(&o), "ran\n");
    let process = env.path("process.json");
    let spec = json!({
        "user": {"uid": 1000, "gid": 1000},
        "args": [ROOT_ONLY],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "capabilities": no_caps,
    });
    fs::write(&process, spec.to_string()).unwrap();
    let o = env.run(&["exec", "--process", process.to_str().unwrap(), &id]);
    check(&o, &case, "exec as uid 1000 without capabilities");
}
