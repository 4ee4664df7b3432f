//! How Docker turns a runtime's error for a container (or exec) that could not start into an
//! exit code, restated from its sources so that tests can check a runtime's error text the
//! way Docker reads it. Included with `#[path]` by the tests that need it.

/// The daemon: moby v28.5.2 daemon/errors.go, setExitCodeFromError (case-insensitive;
/// the exit code `docker inspect` shows and `docker exec` returns).
pub fn daemon_exit_code(err: &str) -> i32 {
    let e = err.to_lowercase();
    if e.contains("permission denied") || e.contains("is a directory") {
        126
    } else if e.contains("not a directory")
        || [
            "executable file not found",
            "no such file or directory",
            "system cannot find the file specified",
            "failed to run runc create/exec call",
        ]
        .iter()
        .any(|m| e.contains(m))
    {
        127
    } else {
        128
    }
}

/// The client: docker/cli cli/command/container/run.go, runStartContainerErr
/// (case-sensitive; the exit code of `docker run`).
pub fn cli_exit_code(err: &str) -> i32 {
    if [
        "executable file not found",
        "no such file or directory",
        "system cannot find the file specified",
    ]
    .iter()
    .any(|m| err.contains(m))
    {
        127
    } else if err.contains("permission denied") || err.contains("is a directory") {
        126
    } else {
        125
    }
}

/// Both of Docker's readings of `err`, which must agree for the cases tests check.
#[track_caller]
pub fn assert_docker_exit_code(err: &str, want: i32, what: &str) {
    assert_eq!(
        (daemon_exit_code(err), cli_exit_code(err)),
        (want, want),
        "{what}: Docker's (daemon, client) exit codes for this error text:\n{err}"
    );
}
