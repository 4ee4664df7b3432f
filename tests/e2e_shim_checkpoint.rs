//! Checkpoint and restore through containerd and `ctr`, with our shim and, as the
//! reference, containerd's runc shim with Debian's runc: `ctr task checkpoint` (into an
//! image path, and with `--exit`), `ctr container checkpoint --task` into a checkpoint
//! image and `ctr container restore --live` of it as a new container, which counts on from
//! where the checkpointed one was.
//!
//! CRIU is sid's 4.x (scripts/fetch-criu.sh) or `$CRIU_BIN`; without it each test prints
//! why and checks nothing. Shims find it on containerd's PATH, as runc does: a directory
//! with a link to it (and to our shim) goes first there.

mod common;
mod e2e_support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{assert_ok, criu_or_skip, describe, poll, stdout_of, token_count, TOKEN_COUNTER};
use e2e_support::containerd::*;
use e2e_support::*;

/// The image the containers run (built from busybox, imported into containerd).
const IMAGE: &str = "localhost/youki-shim-e2e-busybox:latest";

/// A shim under test: ours or containerd's runc shim, with a directory that goes first
/// on containerd's PATH and holds `criu` (and ours).
struct Variant {
    name: &'static str,
    /// The runtime name `ctr run --runtime` selects it with.
    runtime: &'static str,
    /// Its binary's name.
    binary: &'static str,
    dir: tempfile::TempDir,
}

impl Variant {
    fn shim(&self) -> Shim<'_> {
        let base = if self.name == "youki" {
            Shim::youki()
        } else {
            Shim::runc()
        };
        Shim {
            binary: self.binary,
            dir: Some(self.dir.path()),
            ..base
        }
    }
}

/// Ours and runc's, `criu` on their PATH. With `as_runc`, ours runs as io.containerd.runc.v2 (a link named
/// containerd-shim-runc-v2), as CRI's `runtime_path` entry runs it: ctr 1.6 and 1.7 send
/// checkpoint options (`--image-path`, `--exit`) only to runc's runtime names.
fn variants(criu: &Path, as_runc: bool) -> [Variant; 2] {
    let dir = || {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(criu, dir.path().join("criu")).expect("link criu");
        dir
    };
    let ours = dir();
    let binary = if as_runc { RUNC_SHIM } else { SHIM };
    std::os::unix::fs::symlink(shim_dir().join(SHIM), ours.path().join(binary))
        .expect("link the shim");
    [
        Variant {
            name: "youki",
            runtime: if as_runc {
                RUNC_RUNTIME
            } else {
                "io.containerd.youki.v2"
            },
            binary,
            dir: ours,
        },
        Variant {
            name: "runc",
            runtime: RUNC_RUNTIME,
            binary: RUNC_SHIM,
            dir: dir(),
        },
    ]
}

/// containerd's runc shim's runtime name and binary.
const RUNC_RUNTIME: &str = "io.containerd.runc.v2";
const RUNC_SHIM: &str = "containerd-shim-runc-v2";

/// containerd with `shim`, the busybox image imported.
fn start(kind: &str, shim: Shim<'_>) -> Containerd {
    let c = Containerd::start(kind, shim);
    let tar = build_image(&c.w, IMAGE);
    c.ctr_ok(&["image", "import", tar.to_str().expect("utf-8 path")]);
    c
}

/// Runs the counter detached as `id` with `runtime`.
fn run_counter(c: &Containerd, runtime: &str, id: &str) {
    c.ctr_ok(&[
        "run",
        "-d",
        "--runtime",
        runtime,
        IMAGE,
        id,
        "sh",
        "-c",
        TOKEN_COUNTER,
    ]);
}

/// (token, number) of the counter in `id`, once it has written one.
fn count(c: &Containerd, id: &str) -> Option<(String, u64)> {
    let exec_id = c.w.name("cat");
    let o = c.ctr(&["task", "exec", "--exec-id", &exec_id, id, "cat", "/count"]);
    let text = stdout_of(&o);
    token_count(&text)
}

/// Waits until the counter in `id` has counted to `n` at least; returns its reading.
#[track_caller]
fn count_to(c: &Containerd, id: &str, n: u64) -> (String, u64) {
    let mut last = None;
    let reached = poll(Duration::from_secs(30), || {
        last = count(c, id);
        last.as_ref().is_some_and(|(_, i)| *i >= n)
    });
    assert!(reached, "{id} did not count to {n}: {last:?}");
    last.expect("a reading")
}

/// SIGKILL, `task delete`, `containers rm`.
fn remove(c: &Containerd, id: &str) {
    c.ctr_ok(&["task", "kill", "-s", "SIGKILL", id]);
    assert!(
        poll(Duration::from_secs(10), || c.task_status(id) == "STOPPED"),
        "{id} not stopped"
    );
    c.ctr_ok(&["task", "delete", id]);
    c.ctr_ok(&["containers", "rm", id]);
}

/// `ctr task checkpoint FLAGS... --image-path IMAGES ID`.
fn task_checkpoint(c: &Containerd, flags: &[&str], images: &Path, id: &str) -> Output {
    let images = images.to_str().expect("utf-8 path");
    let mut args = vec!["task", "checkpoint"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--image-path", images, id]);
    c.ctr(&args)
}

/// The counter in `id` still runs: it counts on from its current reading.
#[track_caller]
fn counts_on(c: &Containerd, id: &str) {
    let (_, n) = count_to(c, id, 1);
    count_to(c, id, n + 2);
}

/// `ctr container checkpoint --task` makes a checkpoint image of a running counter, which
/// keeps running; `ctr container restore --live` makes a new container of it, whose
/// counter goes on from the checkpoint: same token, a number at least the one read before
/// the checkpoint.
#[test]
fn a_checkpoint_image_restores_as_a_new_container_that_counts_on() {
    let Some(criu) = criu_or_skip("a_checkpoint_image_restores_as_a_new_container_that_counts_on")
    else {
        return;
    };
    for v in variants(&criu, false) {
        let (name, runtime) = (v.name, v.runtime);
        let c = start(&format!("ckpt-{name}"), v.shim());
        let (a, b) = (c.w.name("a"), c.w.name("b"));
        let checkpoint = format!("localhost/{}-checkpoint:1", c.w.marker);
        run_counter(&c, runtime, &a);
        let (token, before) = count_to(&c, &a, 5);

        c.ctr_ok(&["containers", "checkpoint", "--task", &a, &checkpoint]);
        // containerd paused the task for the dump and resumed it: it counts on.
        assert_eq!(c.task_status(&a), "RUNNING", "{name}");
        count_to(&c, &a, before + 3);
        remove(&c, &a);

        let o = c.ctr(&["containers", "restore", "--live", &b, &checkpoint]);
        assert_ok(&o, &format!("{name}: ctr containers restore --live"));
        assert_eq!(c.task_status(&b), "RUNNING", "{name}");
        let (restored_token, n) = count_to(&c, &b, before + 1);
        assert_eq!(
            restored_token, token,
            "{name}: the restored counter drew a new token: it started afresh"
        );
        assert!(n > before, "{name}: {n} after restore, {before} before");
        // The restored task is a task like any other: exec, kill, delete.
        remove(&c, &b);
        c.ctr_ok(&["images", "rm", "--sync", &checkpoint]);
        c.no_containers_left();
    }
}

/// `ctr task checkpoint --image-path DIR` writes CRIU's images to DIR and leaves the task
/// running; `--exit` stops it (CRIU kills it: 137, as SIGKILL).
#[test]
fn task_checkpoint_into_an_image_path_and_with_exit() {
    let Some(criu) = criu_or_skip("task_checkpoint_into_an_image_path_and_with_exit") else {
        return;
    };
    for v in variants(&criu, true) {
        let (name, runtime) = (v.name, v.runtime);
        let c = start(&format!("ckpt-path-{name}"), v.shim());
        let events = EventWatch::start(&c);
        let id = c.w.name("c");
        run_counter(&c, runtime, &id);
        count_to(&c, &id, 2);

        for (flags, images) in [(&[][..], "images-1"), (&["--exit"][..], "images-2")] {
            let images = c.w.path(images);
            assert_ok(
                &task_checkpoint(&c, flags, &images, &id),
                &format!("{name}: ctr task checkpoint {flags:?}"),
            );
            assert!(
                images.join("inventory.img").is_file(),
                "{name}: no inventory.img in {}",
                images.display()
            );
            if flags.is_empty() {
                assert_eq!(c.task_status(&id), "RUNNING", "{name}");
                if name == "youki" {
                    // Under runc's name, it was ours that dumped (its debug line).
                    assert!(
                        c.log_text().contains("criu notify: post-dump"),
                        "not our shim"
                    );
                }
                counts_on(&c, &id);
            }
        }
        assert!(
            poll(Duration::from_secs(10), || c.task_status(&id) == "STOPPED"),
            "{name}: still {} after checkpoint --exit",
            c.task_status(&id)
        );
        assert!(
            events.saw_exit(Duration::from_secs(10), &id, 137),
            "{name}: no exit 137\n{}",
            events.text()
        );
        c.ctr_ok(&["task", "delete", &id]);
        c.ctr_ok(&["containers", "rm", &id]);
        c.no_containers_left();
    }
}

/// A checkpoint that CRIU cannot make fails with CRIU's reason, and the task runs on: a
/// counter with an established TCP connection is refused unless open TCP connections are
/// allowed (ctr has no flag for it).
#[test]
fn a_failed_checkpoint_names_the_cause_and_the_task_runs_on() {
    let Some(criu) = criu_or_skip("a_failed_checkpoint_names_the_cause_and_the_task_runs_on")
    else {
        return;
    };
    for v in variants(&criu, true) {
        let (name, runtime) = (v.name, v.runtime);
        let c = start(&format!("ckpt-fail-{name}"), v.shim());
        let id = c.w.name("c");
        // A connection to itself over loopback (up: CAP_NET_ADMIN), held open by two nc in the background
        // (their stdin a pipe from sleep: nc quits at its end).
        let script = format!(
            "ip link set lo up; sleep 1000 | nc -l -p 7777 & sleep 0.5; \
             sleep 1000 | nc 127.0.0.1 7777 & {TOKEN_COUNTER}"
        );
        c.ctr_ok(&[
            "run",
            "-d",
            "--cap-add",
            "CAP_NET_ADMIN",
            "--runtime",
            runtime,
            IMAGE,
            &id,
            "sh",
            "-c",
            &script,
        ]);
        count_to(&c, &id, 10);
        let images = c.w.path("images");
        let o = task_checkpoint(&c, &[], &images, &id);
        assert!(!o.status.success(), "{name}: {}", describe(&o));
        // runc's shim says only "criu failed: type DUMP errno 0" and where the log is.
        let err = common::stderr_of(&o);
        if name == "youki" {
            assert!(err.contains("TCP"), "{name}: the cause is not named: {err}");
        }
        assert_eq!(c.task_status(&id), "RUNNING", "{name}");
        counts_on(&c, &id);
        remove(&c, &id);
        c.no_containers_left();
    }
}

/// A CRIU that fails (here `false`: it exits at once) fails the checkpoint with an error
/// that names it, and the task runs on with nothing written.
#[test]
fn a_failing_criu_is_a_clear_error_and_the_task_runs_on() {
    for v in variants(Path::new("/bin/false"), true) {
        let (name, runtime) = (v.name, v.runtime);
        let c = start(&format!("ckpt-nocriu-{name}"), v.shim());
        let id = c.w.name("c");
        run_counter(&c, runtime, &id);
        count_to(&c, &id, 2);
        let images = c.w.path("images");
        let o = task_checkpoint(&c, &[], &images, &id);
        assert!(!o.status.success(), "{name}: {}", describe(&o));
        let err = common::stderr_of(&o);
        // runc 1.1.5: "criu failed: type NOTIFY errno 0" or its own exit status.
        if name == "youki" {
            assert!(
                err.contains("criu") && err.contains("exited"),
                "{name}: {err}"
            );
            assert!(!images.exists(), "{name}: {} was left", images.display());
        }
        assert_eq!(c.task_status(&id), "RUNNING", "{name}");
        counts_on(&c, &id);
        remove(&c, &id);
        c.no_containers_left();
    }
}
