//! Commands' results, described for assertion messages.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Output};

/// A command's stdout, as text.
pub fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr, as text.
pub fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Human-readable description of a command's result, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        describe_status(&o.status),
        stdout_of(o),
        stderr_of(o)
    )
}

/// An exit status as "code N" or "killed by signal N".
pub fn describe_status(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{s:?}"),
    }
}

/// An exit status as "code N" or "signal N".
pub fn status_text(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (None, Some(sig)) => format!("signal {sig}"),
        _ => describe_status(s),
    }
}

/// Asserts the command succeeded, printing its output otherwise.
#[track_caller]
pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed\n{}", describe(o));
}

/// Asserts the command failed with a non-zero exit code and said something on stderr.
#[track_caller]
pub fn assert_failed_with_message(o: &Output, what: &str) {
    assert!(
        !o.status.success() && o.status.code().is_some(),
        "{what} should exit with a non-zero code\n{}",
        describe(o)
    );
    assert!(
        !stderr_of(o).trim().is_empty(),
        "{what} failed but printed no message on stderr\n{}",
        describe(o)
    );
}
