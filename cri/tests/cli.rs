//! The `youki-cri` command line without a CRI server: arguments and connection errors
//! are reported clearly, with exit code 2 for usage errors and 1 for failures. (The
//! calls themselves run against containerd in the root package's tests/e2e_cri.rs.)

use std::process::{Command, Output};

fn youki_cri(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_youki-cri"))
        .args(args)
        .output()
        .expect("run youki-cri")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_names_the_commands() {
    let o = youki_cri(&["--help"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for word in [
        "version",
        "smoke",
        "pod-cycle",
        "pod-up",
        "pod-down",
        "--address",
    ] {
        assert!(out.contains(word), "{word} missing from --help: {out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--timeout", "0", "version"][..],
        &["smoke", "--image", "busybox"][..],
        &[
            "smoke",
            "--runtime-handler",
            "youki",
            "--image",
            "busybox",
            "--cgroup-parent",
            "kubepods",
        ][..],
        &["no-such-command"][..],
    ] {
        let o = youki_cri(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(!o.stderr.is_empty(), "{args:?}: {}", text(&o));
    }
}

/// The bench's pod commands: their arguments are checked before any connection (the
/// socket named here does not exist, so a connection error would exit 1).
#[test]
fn pod_command_usage_errors_exit_2() {
    let pod = ["--runtime-handler", "youki", "--image", "busybox"];
    let cases: &[(&[&str], &str)] = &[
        (&["pod-cycle", "--image", "busybox"], "--runtime-handler"),
        (&["pod-cycle", "--runtime-handler", "youki"], "--image"),
        (
            &[&["pod-cycle"][..], &pod, &["--cgroup-parent", "kubepods"]].concat(),
            "an absolute cgroup path",
        ),
        (
            &[&["pod-up"][..], &pod, &["--containers", "0"]].concat(),
            "--containers",
        ),
        (
            &[&["pod-up"][..], &pod, &["--containers", "x"]].concat(),
            "--containers",
        ),
        (&["pod-down"], "<IDS>"),
        (
            &["pod-down", "--name-prefix", ""],
            "an empty prefix would name every pod",
        ),
    ];
    for (args, what) in cases {
        let all = [&["--address", "/nonexistent/containerd.sock"][..], args].concat();
        let o = youki_cri(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(what),
            "{args:?}: {what:?} missing: {}",
            text(&o)
        );
    }
}

/// Valid pod commands get as far as connecting: exit 1 and the socket in the error.
#[test]
fn pod_commands_report_a_missing_socket() {
    let pod = ["--runtime-handler", "youki", "--image", "busybox"];
    for args in [
        [
            &["pod-cycle"][..],
            &pod,
            &["--host-network", "--cgroup-parent", "/p"],
        ]
        .concat(),
        [&["pod-up"][..], &pod, &["--containers", "3", "--name", "n"]].concat(),
        vec!["pod-down", "--name-prefix", "youki-bench-"],
        vec!["pod-down", "abc", "def"],
    ] {
        let all = [&["--address", "/nonexistent/containerd.sock"][..], &args].concat();
        let o = youki_cri(&all);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr)
                .contains("cannot connect to the CRI socket /nonexistent/containerd.sock"),
            "{args:?}: {}",
            text(&o)
        );
    }
}

#[test]
fn missing_socket_is_a_clear_error() {
    let o = youki_cri(&["--address", "/nonexistent/containerd.sock", "version"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot connect to the CRI socket /nonexistent/containerd.sock")
            && err.contains("No such file or directory"),
        "{}",
        text(&o)
    );
}
