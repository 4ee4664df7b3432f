//! End to end with podman 4 (Debian's podman, conmon): podman drives the runtime under
//! test (`--runtime`), as it would drive runc. The private podman is
//! tests/e2e_podman_support.

mod common;
mod e2e_podman_support;
mod e2e_support;

use std::fs;
use std::time::{Duration, Instant};

use common::{assert_ok, describe, stderr_of, stdout_of};
use e2e_podman_support::*;
use e2e_support::*;

#[test]
fn podman_run_rm_output_exit_code_and_terminal() {
    let p = Podman::new("pm-run");
    let cid = p.w.path("cid");
    let o = p.run(&[
        "--rm",
        "--cidfile",
        cid.to_str().unwrap(),
        IMAGE,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_code(&o, 3, "podman run --rm (exit 3)");
    assert_eq!(stdout_of(&o), "out\n", "{}", describe(&o));
    assert!(stderr_of(&o).contains("err"), "{}", describe(&o));
    p.track(&fs::read_to_string(&cid).expect("cid file"));

    // A program that does not exist: podman reads the runtime's error from its JSON log
    // and, like for runc, exits 127 for "not found".
    let o = p.run(&["--rm", IMAGE, "/no/such/program"]);
    assert_code(&o, 127, "podman run --rm /no/such/program");
    assert!(
        stderr_of(&o).contains("/no/such/program"),
        "{}",
        describe(&o)
    );

    // process.terminal: podman passes --console-socket to create.
    let cid = p.w.path("cid-tty");
    let o = p.run(&[
        "--rm",
        "-t",
        "--cidfile",
        cid.to_str().unwrap(),
        IMAGE,
        "tty",
    ]);
    assert_ok(&o, "podman run --rm -t tty");
    assert!(is_pts(&stdout_of(&o)), "{}", describe(&o));
    p.track(&fs::read_to_string(&cid).expect("cid file"));
    p.no_containers_left();
}

#[test]
fn podman_detached_exec_pause_stop_rm() {
    let p = Podman::new("pm-det");
    let name = p.w.name("c");
    let o = p.run(&[
        "-d",
        "--name",
        &name,
        IMAGE,
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo started; sleep 1000 & wait",
    ]);
    assert_ok(&o, "podman run -d");
    let run = o;
    p.track(&stdout_of(&run));
    assert_eq!(p.status(&name), "running");
    // podman gives no --root: the runtime's default state directory.
    let state = default_state_root(&p.runtime).join(stdout_of(&run).trim());
    assert!(state.is_dir(), "no runtime state at {}", state.display());

    let o = p.podman(&["exec", &name, "sh", "-c", "echo exec-out; exit 4"]);
    assert_code(&o, 4, "podman exec (exit 4)");
    assert_eq!(stdout_of(&o), "exec-out\n", "{}", describe(&o));

    // The exec process takes env, user and cwd from the exec, not the container.
    let o = p.podman(&[
        "exec",
        "-e",
        "FOO=bar",
        "-u",
        "1000",
        "-w",
        "/tmp",
        &name,
        "sh",
        "-c",
        "echo $FOO $(id -u) $(pwd)",
    ]);
    assert_ok(&o, "podman exec -e -u -w");
    assert_eq!(stdout_of(&o).trim(), "bar 1000 /tmp", "{}", describe(&o));

    let o = p.podman(&["exec", "-t", &name, "tty"]);
    assert_ok(&o, "podman exec -t tty");
    assert!(is_pts(&stdout_of(&o)), "{}", describe(&o));

    // podman update -> runtime update --resources FILE.
    let o = p.podman(&["update", "--memory", "64m", &name]);
    assert_ok(&o, "podman update --memory 64m");
    let limit = common::host_cgroup_file(
        &format!("{}/libpod-{}", p.cgroup_parent, stdout_of(&run).trim()),
        "memory",
        "memory.limit_in_bytes",
        "memory.max",
    );
    assert_eq!(
        fs::read_to_string(&limit)
            .unwrap_or_else(|e| panic!("{}: {e}", limit.display()))
            .trim(),
        "67108864",
        "{}",
        limit.display()
    );

    let o = p.podman(&["pause", &name]);
    assert_ok(&o, "podman pause");
    assert_eq!(p.status(&name), "paused");
    let o = p.podman(&["unpause", &name]);
    assert_ok(&o, "podman unpause");
    assert_eq!(p.status(&name), "running");
    let o = p.podman(&["exec", &name, "echo", "alive"]);
    assert_ok(&o, "podman exec after unpause");
    assert_eq!(stdout_of(&o), "alive\n");

    // SIGTERM reaches the container's init, whose trap exits 7.
    let t = Instant::now();
    let o = p.podman(&["stop", "-t", "10", &name]);
    assert_ok(&o, "podman stop");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "podman stop took {:?}: SIGTERM was not delivered\n{}",
        t.elapsed(),
        describe(&o)
    );
    let o = p.podman(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        &name,
    ]);
    assert_ok(&o, "podman inspect");
    assert_eq!(stdout_of(&o).trim(), "exited 7");

    let o = p.podman(&["logs", &name]);
    assert_ok(&o, "podman logs");
    assert_eq!(stdout_of(&o), "started\n", "{}", describe(&o));

    let o = p.podman(&["rm", &name]);
    assert_ok(&o, "podman rm");
    p.no_containers_left();
}
