//! podman 4 `container checkpoint` and `container restore` with the runtime under test
//! (`--runtime`), as podman does them with runc: a busybox counter is checkpointed and
//! restored and counts on from where it was; `--leave-running`; a container with a
//! terminal; `--export` and `--import` under a new name.
//!
//! The private podman is tests/e2e_podman_support. podman checks CRIU's version itself
//! (`criu swrk` from PATH) and the runtime takes `criu` from PATH too (podman gives no
//! `--criu`, and runc 1.3 has none): a directory of the test's holding a link named
//! `criu` to sid's CRIU 4 (scripts/fetch-criu.sh; bookworm's 3.17 fails `criu check` here),
//! or to `$CRIU_BIN`, is put first on podman's PATH. Without a working CRIU every test
//! prints why and checks nothing.
//!
//! What podman runs, and the runtime sees:
//! - `podman container checkpoint [--leave-running] C`: `RUNTIME checkpoint --image-path
//!   USERDATA/checkpoint --work-path USERDATA [--leave-running --leave-running] ID` (podman
//!   4.3 gives `--leave-running` twice; runc takes that, youki takes it as runc does);
//! - `podman container restore C`: conmon runs `RUNTIME --log L --log-format json restore
//!   --bundle USERDATA --pid-file P --detach --image-path USERDATA/checkpoint --work-path
//!   USERDATA [--console-socket S] ID`, with the container's stdio (pipes, or the terminal
//!   CRIU hands over as an orphan pts master through the console socket) to reconnect.

mod common;
mod e2e_podman_support;
mod e2e_support;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::{assert_ok, criu_or_skip, describe, poll, stdout_of};
use e2e_podman_support::*;

/// The counter: a number a tenth of a second, to stdout and appended to /data/counts (a
/// volume), so that the file holds every number the container ever counted.
const COUNTER: &str =
    "i=0; while true; do i=$((i+1)); echo $i; echo $i >> /data/counts; sleep 0.1; done";

/// How long the counter may take to count a few numbers on a busy machine.
const COUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// A private podman whose PATH starts with a directory holding `criu`, or `None` (and
/// why, printed) when there is no working CRIU.
fn podman_with_criu(test: &str) -> Option<Podman> {
    let criu = criu_or_skip(test)?;
    let p = Podman::new(test);
    let dir = p.w.path("criu-bin");
    fs::create_dir(&dir).expect("criu-bin");
    std::os::unix::fs::symlink(&criu, dir.join("criu")).expect("link criu");
    Some(p.with_path_first(&dir))
}

/// A counter container of a test's podman.
struct Counter<'a> {
    p: &'a Podman,
    name: String,
    /// The host directory mounted at /data.
    data: PathBuf,
}

impl<'a> Counter<'a> {
    /// Starts the counter (`-t`: with a terminal) and waits until it has counted to 3.
    fn start(p: &'a Podman, tty: bool) -> Counter<'a> {
        let name = p.w.name("counter");
        let data = p.w.path(&name);
        fs::create_dir(&data).expect("data directory");
        let volume = format!("{}:/data", data.display());
        let mut args = vec!["-d", "--name", &name, "-v", &volume];
        if tty {
            args.push("-t");
        }
        args.extend([IMAGE, "sh", "-c", COUNTER]);
        let o = p.run(&args);
        assert_ok(&o, "podman run -d counter");
        p.track(&stdout_of(&o));
        let c = Counter { p, name, data };
        c.wait_for(3);
        c
    }

    /// Every number counted, in order, from /data/counts.
    fn history(&self) -> Vec<u64> {
        fs::read_to_string(self.data.join("counts"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// The last number counted (0: none yet).
    fn last(&self) -> u64 {
        self.history().last().copied().unwrap_or(0)
    }

    /// Waits until `pred` holds for the history; fails the test with it otherwise.
    fn wait_until(&self, what: &str, pred: impl Fn(&[u64]) -> bool) {
        let ok = poll(COUNT_TIMEOUT, || pred(&self.history()));
        assert!(
            ok,
            "{}: the counter did not {what} within {COUNT_TIMEOUT:?}: counted {:?}\nlogs: {}",
            self.name,
            self.history(),
            describe(&self.p.podman(&["logs", &self.name]))
        );
    }

    /// Waits until the counter has counted to `n`.
    fn wait_for(&self, n: u64) {
        self.wait_until(&format!("count to {n}"), |h| {
            h.last().is_some_and(|l| *l >= n)
        });
    }

    /// `podman container SUBCOMMAND FLAGS... NAME`, which must succeed.
    fn container(&self, subcommand: &str, flags: &[&str]) {
        let mut args = vec!["container", subcommand];
        args.extend(flags);
        args.push(&self.name);
        let o = self.p.podman(&args);
        assert_ok(&o, &format!("podman {}", args.join(" ")));
    }

    /// The numbers on the container's stdout, as podman's log has them.
    fn logged(&self) -> Vec<u64> {
        let o = self.p.podman(&["logs", &self.name]);
        assert_ok(&o, "podman logs");
        stdout_of(&o)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Waits until `pred` holds for the numbers in podman's log (the restored counter's
    /// stdout reaches conmon again); fails the test with them otherwise. Returns them.
    fn wait_logged(&self, what: &str, pred: impl Fn(&[u64]) -> bool) -> Vec<u64> {
        let ok = poll(COUNT_TIMEOUT, || pred(&self.logged()));
        let logged = self.logged();
        assert!(
            ok,
            "{}: podman's log did not {what} within {COUNT_TIMEOUT:?} (stdio not reconnected?): \
             {logged:?}",
            self.name
        );
        logged
    }
}

/// Is `h` 1, 2, ..., n?
fn counts_from_one(h: &[u64]) -> bool {
    h.iter().enumerate().all(|(i, v)| *v == i as u64 + 1)
}

/// Is `h` consecutive from its first number?
fn consecutive(h: &[u64]) -> bool {
    h.windows(2).all(|w| w[1] == w[0] + 1)
}

/// `h` split where it goes back (a restore from an earlier checkpoint): the numbers
/// before, those from there on (empty if it never goes back).
fn split_at_restart(h: &[u64]) -> (&[u64], &[u64]) {
    let at = (1..h.len()).find(|i| h[*i] <= h[i - 1]).unwrap_or(h.len());
    h.split_at(at)
}

/// Checkpoint (the container stops) and restore: it counts on from where it was, its
/// output reaches podman's log; then a checkpoint with --leave-running: it counts on, and
/// a restore after it was killed starts again from the checkpoint's number.
fn checkpoint_restore_and_leave_running(test: &str, tty: bool) {
    let Some(p) = podman_with_criu(test) else {
        return;
    };
    let c = Counter::start(&p, tty);

    c.container("checkpoint", &[]);
    assert_eq!(
        p.status(&c.name),
        "exited",
        "after podman container checkpoint"
    );
    let at_checkpoint = c.last();
    // Nothing counts while checkpointed.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.last(),
        at_checkpoint,
        "the counter ran on after the checkpoint"
    );
    let logged = c.logged().len();
    c.container("restore", &[]);
    assert_eq!(
        p.status(&c.name),
        "running",
        "after podman container restore"
    );
    c.wait_for(at_checkpoint + 3);
    let h = c.history();
    assert!(
        counts_from_one(&h),
        "the restored counter did not count on from {at_checkpoint}: {h:?}"
    );
    let logged = c.wait_logged("go on after the restore", |l| l.len() >= logged + 2);
    assert!(counts_from_one(&logged), "podman's log: {logged:?}");

    let before = c.last();
    c.container("checkpoint", &["--leave-running"]);
    let after = c.last();
    assert_eq!(
        p.status(&c.name),
        "running",
        "after checkpoint --leave-running"
    );
    c.wait_for(after + 3);
    let o = p.podman(&["kill", &c.name]);
    assert_ok(&o, "podman kill");
    let o = p.podman(&["wait", &c.name]);
    assert_ok(&o, "podman wait");
    let logged = c.logged().len();
    c.container("restore", &[]);
    // The history is 1..=m from the first run, then the restored counter from the number
    // the checkpoint saw: after `before` (counted before it started) and at most one past
    // `after` (counted when it returned).
    c.wait_until("count on after the restore", |h| {
        split_at_restart(h).1.len() >= 3
    });
    let h = c.history();
    let (first_run, restored) = split_at_restart(&h);
    assert!(counts_from_one(first_run) && consecutive(restored), "{h:?}");
    assert!(
        restored[0] > before && restored[0] <= after + 1,
        "the counter restored from the --leave-running checkpoint (taken between {before} \
         and {after}) went on with {}: {h:?}",
        restored[0]
    );
    // stdout echoes a number before the file has it: the log may be one ahead.
    let logged = c.wait_logged("go on after the restore", |l| l.len() >= logged + 2);
    let (first_run, restored_log) = split_at_restart(&logged);
    assert!(counts_from_one(first_run), "podman's log: {logged:?}");
    assert!(
        consecutive(restored_log)
            && restored_log
                .first()
                .is_some_and(|f| *f == restored[0] || *f == restored[0] + 1),
        "podman's log after the restore does not go on from {}: {logged:?}",
        restored[0]
    );

    let o = p.podman(&["rm", "-f", "-t", "0", &c.name]);
    assert_ok(&o, "podman rm -f");
    p.no_containers_left();
}

#[test]
fn podman_checkpoint_restore_and_leave_running() {
    checkpoint_restore_and_leave_running("pm-cr", false);
}

#[test]
fn podman_checkpoint_restore_and_leave_running_with_a_terminal() {
    checkpoint_restore_and_leave_running("pm-cr-tty", true);
}

/// `checkpoint --export` (the container stops) and, once it is removed, `restore --import
/// --name` as a new container: a new id, a new bundle and a new rootfs made from the image
/// and the archive's rootfs changes. The counter counts on from where it was.
///
/// The new rootfs lacks the mount points the first create made (/etc/hosts,
/// /etc/resolv.conf, /run/.containerenv: podman leaves them out of the archive), which
/// the runtime must make before CRIU restores (runc's prepareCriuRestoreMounts), else CRIU
/// fails ("mnt-v2: Can't stat mountpoint .../etc/hosts").
#[test]
fn podman_checkpoint_export_and_restore_import_as_a_new_container() {
    let Some(p) = podman_with_criu("pm-cr-import") else {
        return;
    };
    let c = Counter::start(&p, false);
    let archive = p.w.path("checkpoint.tar");
    let archive = archive.to_str().expect("path");
    c.container("checkpoint", &["--export", archive]);
    let at_checkpoint = c.last();
    let o = p.podman(&["rm", &c.name]);
    assert_ok(&o, "podman rm");

    let imported = Counter {
        p: &p,
        name: p.w.name("imported"),
        data: c.data.clone(),
    };
    let o = p.podman(&[
        "container",
        "restore",
        "--import",
        archive,
        "--name",
        &imported.name,
    ]);
    assert_ok(&o, "podman container restore --import --name");
    p.track(&stdout_of(&o));
    assert_eq!(p.status(&imported.name), "running");
    imported.wait_for(at_checkpoint + 3);
    let h = imported.history();
    assert!(
        counts_from_one(&h),
        "the imported counter did not count on from {at_checkpoint}: {h:?}"
    );
    imported.wait_logged("show the imported counter's numbers", |l| {
        l.last().is_some_and(|n| *n > at_checkpoint + 1)
    });

    let o = p.podman(&["rm", "-f", "-t", "0", &imported.name]);
    assert_ok(&o, "podman rm -f");
    p.no_containers_left();
}
