//! What a test left on the host, and its removal: one check for every harness.
//!
//! A test owns a [`TestDir`]: a temp dir and a marker (e.g. `youki-it-<pid>-<n>`) that
//! names its cgroups and appears on its processes' command lines. Its [`Scope`] finds,
//! on the whole host: processes rooted in or running from the temp dir, naming the
//! marker (or the temp dir) on their command line, in a cgroup naming the marker, or
//! carrying the test's environment entry; mounts under the temp dir; cgroups naming the
//! marker, and all below them. Each harness adds what is its own (runtime state, a
//! shim's socket) and reports through [`TestDir::finish`] when it is dropped.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cgroups::{self, cgroup_hierarchies};
use crate::mounts;
use crate::process::{all_pids, cmdline, kill9, pid_alive, poll, require_root, wait_pid_gone};

/// How deep below a hierarchy's root a test's cgroup is looked for (its own cgroups are
/// at the root, containerd's at `/<namespace>/<id>`, systemd's in a slice).
const CGROUP_DEPTH: usize = 3;

/// How long the kernel gets to tear down what exited just now before a leak counts.
const SETTLE: Duration = Duration::from_secs(5);

/// Numbers the markers of this test process.
static MARKERS: AtomicUsize = AtomicUsize::new(0);

/// Does `text` name `marker`: hold it not followed by a digit? (Marker `x-1` is a prefix
/// of marker `x-10`, another test's.)
pub fn names(text: &str, marker: &str) -> bool {
    text.match_indices(marker).any(|(i, m)| {
        !text[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// What belongs to one test on the host. See the module documentation.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The test's temp dir (canonical path).
    pub work: PathBuf,
    /// Names the test's cgroups; on its processes' command lines.
    pub marker: String,
    /// `KEY=VALUE` in the environment of every container process of the test, if the
    /// test puts one there.
    pub env: Option<String>,
    /// Whether a process naming the temp dir on its command line is the test's: true for
    /// clients and daemons given paths in it. False for the runtime tests, whose every
    /// runtime command names it (`--root`) and is waited for, so that a runtime process
    /// still exiting when a test looks (a killed `create`'s children) is judged by its
    /// cgroup and environment only.
    pub commands_in_work: bool,
}

impl Scope {
    /// Live processes of the test (other than the test itself), with their command lines.
    pub fn processes(&self) -> Vec<(i32, String)> {
        let me = std::process::id() as i32;
        let work = self.work.to_string_lossy();
        all_pids()
            .into_iter()
            .filter(|pid| *pid != me && pid_alive(*pid))
            .filter_map(|pid| {
                let p = PathBuf::from(format!("/proc/{pid}"));
                let in_work = |link: &str| {
                    fs::read_link(p.join(link)).is_ok_and(|t| t.starts_with(&self.work))
                };
                let cmd = cmdline(pid);
                let in_cgroup =
                    fs::read_to_string(p.join("cgroup")).is_ok_and(|c| names(&c, &self.marker));
                let has_env = self.env.as_deref().is_some_and(|kv| {
                    fs::read(p.join("environ")).is_ok_and(|b| {
                        b.split(|c| *c == 0)
                            .any(|s| names(&String::from_utf8_lossy(s), kv))
                    })
                });
                let ours = in_work("cwd")
                    || in_work("root")
                    || (self.commands_in_work && cmd.contains(&*work))
                    || names(&cmd, &self.marker)
                    || in_cgroup
                    || has_env;
                // Re-checked: it may have exited in between.
                (ours && pid_alive(pid)).then_some((pid, cmd))
            })
            .collect()
    }

    /// Mount points under the temp dir, deepest first.
    pub fn mounts(&self) -> Vec<String> {
        mounts::mounts_under(&self.work)
    }

    /// Cgroups naming the marker and everything below them: (absolute path, path
    /// relative to its hierarchy's root), deepest first.
    pub fn cgroups(&self) -> Vec<(PathBuf, String)> {
        let mut out = vec![];
        for h in cgroup_hierarchies() {
            find_cgroups(
                &h.mount_point,
                &h.mount_point,
                &self.marker,
                CGROUP_DEPTH,
                &mut out,
            );
        }
        out.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
        out
    }

    /// Processes, mounts and cgroups of the test; cgroups whose relative path is in
    /// `allowed` (the parents clients create and never remove) are not counted.
    pub fn leaks(&self, allowed: &[String]) -> Leaks {
        Leaks {
            mounts: self.mounts(),
            cgroups: self
                .cgroups()
                .into_iter()
                .filter(|(_, rel)| !allowed.contains(rel))
                .map(|(p, _)| p)
                .collect(),
            processes: self.processes(),
            ..Leaks::default()
        }
    }

    /// Removes what is left: kills the processes and whatever is in the test's cgroups
    /// (thawed first), detaches mounts under the temp dir, removes the cgroups.
    pub fn clean(&self) {
        let cgroups = self.cgroups();
        let mut pids: Vec<i32> = self.processes().into_iter().map(|(p, _)| p).collect();
        for (cg, _) in &cgroups {
            cgroups::thaw(cg);
            pids.extend(cgroups::procs(cg));
        }
        for pid in &pids {
            kill9(*pid);
        }
        for pid in &pids {
            wait_pid_gone(*pid, Duration::from_secs(2));
        }
        mounts::detach(&self.mounts());
        // Deepest first: a cgroup with children cannot be removed.
        for (cg, _) in self.cgroups() {
            let _ = poll(Duration::from_secs(2), || {
                fs::remove_dir(&cg).is_ok() || !cg.exists()
            });
        }
    }
}

/// `find` at most `depth` levels below `dir`: cgroups naming `marker` and everything
/// below them, as (path, path relative to `root`).
fn find_cgroups(
    root: &Path,
    dir: &Path,
    marker: &str,
    depth: usize,
    out: &mut Vec<(PathBuf, String)>,
) {
    for name in cgroups::children(dir) {
        let p = dir.join(&name);
        let rel = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        if names(&name, marker) {
            // Below a cgroup of the test everything is the test's.
            out.push((p.clone(), rel));
            find_cgroups(root, &p, "", usize::MAX, out);
        } else if depth > 1 {
            find_cgroups(root, &p, marker, depth - 1, out);
        }
    }
}

/// What a test left behind.
#[derive(Debug, Default)]
pub struct Leaks {
    /// Mount points under the temp dir.
    pub mounts: Vec<String>,
    /// Cgroups of the test.
    pub cgroups: Vec<PathBuf>,
    /// Live processes of the test: (pid, command line).
    pub processes: Vec<(i32, String)>,
    /// Runtime state left: entries of a state root, or paths.
    pub state_entries: Vec<String>,
    /// Anything else a harness checks (a shim's socket, a network bridge).
    pub other: Vec<String>,
}

impl Leaks {
    /// Nothing left?
    pub fn is_empty(&self) -> bool {
        self.lines().is_empty()
    }

    /// One line per thing left.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.mounts.iter().map(|m| format!("mount: {m}")).collect();
        out.extend(
            self.cgroups
                .iter()
                .map(|c| format!("cgroup: {}", c.display())),
        );
        out.extend(
            self.processes
                .iter()
                .map(|(pid, cmd)| format!("process {pid}: {cmd}")),
        );
        out.extend(
            self.state_entries
                .iter()
                .map(|s| format!("runtime state: {s}")),
        );
        out.extend(self.other.iter().cloned());
        out
    }
}

impl fmt::Display for Leaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

/// Looks again (every 50 ms, for at most 5 s) until `check` finds nothing: the kernel
/// takes a moment to tear down what exited just now. Returns the last look.
pub fn settle(mut check: impl FnMut() -> Leaks) -> Leaks {
    let deadline = Instant::now() + SETTLE;
    let mut leaks = check();
    while !leaks.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        leaks = check();
    }
    leaks
}

/// A test's temp dir and its [`Scope`], which a harness owns and checks when dropped.
pub struct TestDir {
    /// What belongs to the test.
    pub scope: Scope,
    /// None once kept (see [`TestDir::finish`]).
    tmp: Option<tempfile::TempDir>,
}

impl TestDir {
    /// A new temp dir, `<marker>-<kind>-XXXXXX`, for the marker `<prefix>-<pid>-<n>`;
    /// fails the test unless it runs as root. The scope's `env` is None, its
    /// `commands_in_work` true.
    pub fn new(prefix: &str, kind: &str) -> TestDir {
        require_root();
        let n = MARKERS.fetch_add(1, Ordering::SeqCst);
        let marker = format!("{prefix}-{}-{n}", std::process::id());
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{marker}-{kind}-"))
            .tempdir()
            .expect("create the test's temp dir");
        let work = tmp.path().canonicalize().expect("canonical temp dir");
        TestDir {
            scope: Scope {
                work,
                marker,
                env: None,
                commands_in_work: true,
            },
            tmp: Some(tmp),
        }
    }

    /// The end of a harness's drop, after it cleaned up: keeps the temp dir when mounts
    /// remain under it (removing it would go through them), and fails the test with
    /// `what` and the leaks, or, when the test failed already, prints them.
    pub fn finish(&mut self, what: &str, leaks: &Leaks) {
        if !self.scope.mounts().is_empty() {
            if let Some(t) = self.tmp.take() {
                eprintln!("keeping {} (mounts remain)", t.keep().display());
            }
        }
        if leaks.is_empty() {
            return;
        }
        let msg = format!("{what} left behind:\n{leaks}");
        if std::thread::panicking() {
            eprintln!("{msg}");
        } else {
            panic!("{msg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_not_named_by_a_longer_one() {
        assert!(names("/youki-it-1-1-3", "youki-it-1-1"));
        assert!(names("x youki-it-1-1", "youki-it-1-1"));
        assert!(names("Y=youki-it-1-1", "Y=youki-it-1-1"));
        assert!(!names("/youki-it-1-10-3", "youki-it-1-1"));
        assert!(names("/youki-it-1-10/youki-it-1-1.scope", "youki-it-1-1"));
        assert!(!names("/other", "youki-it-1-1"));
    }

    #[test]
    fn leaks_list_every_kind() {
        let l = Leaks {
            mounts: vec!["/m".into()],
            cgroups: vec!["/c".into()],
            processes: vec![(7, "sleep".into())],
            state_entries: vec!["s".into()],
            other: vec!["shim socket /x".into()],
        };
        assert_eq!(
            l.lines(),
            [
                "mount: /m",
                "cgroup: /c",
                "process 7: sleep",
                "runtime state: s",
                "shim socket /x"
            ]
        );
        assert!(Leaks::default().is_empty());
    }
}
