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
    for word in ["version", "smoke", "--address"] {
        assert!(out.contains(word), "{word} missing from --help: {out}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--timeout", "0", "version"][..],
        &["smoke", "--image", "busybox"][..],
        &["no-such-command"][..],
    ] {
        let o = youki_cri(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(!o.stderr.is_empty(), "{args:?}: {}", text(&o));
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
