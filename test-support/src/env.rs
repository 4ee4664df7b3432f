//! [`TestEnv`]: one runtime test's isolated world, checked for leaks when dropped.
//!
//! Every test builds a [`TestEnv`]: its own `--root` state directory, its own work
//! directory (bundles, logs, captured stdio), its own container ids and cgroup names.
//! When the `TestEnv` is dropped (also when the test panicked) it force-deletes every
//! container the test created, through the runtime, and then checks that nothing leaked
//! ([`crate::leaks`]): processes, mounts under the work directory, cgroups named after
//! the test, entries in the state directory.
//!
//! The runtime under test is `$RUNTIME_BIN`, by default the workspace's `youki` binary.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bundle::{default_config, Bundle, MARKER_VAR};
use crate::leaks::{self, Leaks, TestDir};
use crate::output::{assert_ok, describe};
use crate::paths::bin_dir;
use crate::process::run_captured;
use crate::rootfs::{build_rootfs, busybox_bin};

/// How long one runtime command may take before the test fails.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

static CG_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The runtime binary under test.
pub fn runtime_bin() -> PathBuf {
    match std::env::var_os("RUNTIME_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        // Where cargo puts it: the root package's tests depend on its binary being built.
        _ => bin_dir().join("youki"),
    }
}

/// One test's isolated world: state root, work dir, ids, cgroups; checks for
/// leaks when dropped.
pub struct TestEnv {
    /// The test's name: prefix of its container ids.
    pub name: String,
    /// Unique per TestEnv: `youki-it-<pid>-<n>`. Every cgroup name of this
    /// test starts with `<marker>-`, every container process has
    /// `YOUKI_IT_MARKER=<marker>` in its environment.
    pub marker: String,
    /// The runtime binary under test ([`runtime_bin`]).
    pub runtime: PathBuf,
    /// The `--root` given to every runtime call.
    pub state_root: PathBuf,
    /// Work directory (bundles, io capture, logs). The state root lives here
    /// too, so that a path escaping it by `..` stays inside the work dir.
    pub work: PathBuf,
    dir: TestDir,
    counter: AtomicUsize,
    containers: Mutex<Vec<String>>,
    stdout_files: Mutex<HashMap<String, PathBuf>>,
}

impl TestEnv {
    /// A new environment for the test `name`; fails the test unless run as root with the
    /// runtime and busybox present.
    pub fn new(name: &str) -> TestEnv {
        let mut dir = TestDir::new("youki-it", name);
        let runtime = runtime_bin();
        assert!(
            runtime.exists(),
            "runtime binary {} does not exist (RUNTIME_BIN)",
            runtime.display()
        );
        assert!(
            busybox_bin().exists(),
            "{} does not exist: install Debian's busybox-static (scripts/setup.sh)",
            busybox_bin().display()
        );
        // The runtime commands name the work dir: see Scope::commands_in_work.
        dir.scope.commands_in_work = false;
        let (marker, work) = (dir.scope.marker.clone(), dir.scope.work.clone());
        dir.scope.env = Some(format!("{MARKER_VAR}={marker}"));
        let state_root = work.join("state");
        fs::create_dir_all(&state_root).unwrap();
        fs::create_dir_all(work.join("io")).unwrap();
        TestEnv {
            name: name.to_string(),
            marker,
            dir,
            runtime,
            state_root,
            work,
            counter: AtomicUsize::new(0),
            containers: Mutex::new(Vec::new()),
            stdout_files: Mutex::new(HashMap::new()),
        }
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    /// A fresh container id, unique within this test (the state root is the
    /// test's own anyway).
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.next())
    }

    /// A fresh busybox bundle with a unique cgroupsPath.
    pub fn bundle(&self) -> Bundle {
        let dir = self.work.join(format!("bundle-{}", self.next()));
        fs::create_dir_all(&dir).unwrap();
        build_rootfs(&dir.join("rootfs"));
        let cg = CG_COUNTER.fetch_add(1, Ordering::SeqCst);
        let cgroups_path = format!("/{}-{}", self.marker, cg);
        let config = default_config(&self.marker, &cgroups_path);
        let b = Bundle {
            dir,
            config,
            cgroups_path,
        };
        b.save();
        b
    }

    /// A fresh path in the work directory (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.work.join(format!("{}-{}", name, self.next()))
    }

    /// Remember `id` so that the guard force-deletes it at the end.
    pub fn track(&self, id: &str) {
        let mut c = self.containers.lock().unwrap();
        if !c.iter().any(|x| x == id) {
            c.push(id.to_string());
        }
    }

    /// Runs `RUNTIME_BIN --root STATE_ROOT ARGS...` with stdin from /dev/null
    /// and stdout/stderr captured through files (so that a detached container
    /// holding them open cannot hang the test). Fails the test after
    /// [`CMD_TIMEOUT`].
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.run_global(&[] as &[&str], args)
    }

    /// Like [`TestEnv::run`] with extra global flags before the subcommand
    /// (e.g. `--log F --log-format json`).
    pub fn run_global<G: AsRef<OsStr>, S: AsRef<OsStr>>(&self, global: &[G], args: &[S]) -> Output {
        self.run_io(global, args).0
    }

    fn run_io<G: AsRef<OsStr>, S: AsRef<OsStr>>(
        &self,
        global: &[G],
        args: &[S],
    ) -> (Output, PathBuf) {
        let out_path = self.work.join("io").join(format!("{}.out", self.next()));
        let mut cmd = Command::new(&self.runtime);
        cmd.arg("--root").arg(&self.state_root);
        cmd.args(global).args(args);
        let output = run_captured(&mut cmd, &out_path, CMD_TIMEOUT);
        (output, out_path)
    }

    /// `create --bundle DIR ID` (writes config.json first). Does not assert.
    pub fn try_create(&self, id: &str, bundle: &Bundle) -> Output {
        self.try_create_with(id, bundle, &[])
    }

    /// `create --bundle DIR EXTRA... ID`. Does not assert.
    pub fn try_create_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        bundle.save();
        self.track(id);
        let mut args: Vec<&OsStr> = vec![OsStr::new("create"), OsStr::new("--bundle")];
        args.push(bundle.dir.as_os_str());
        args.extend(extra.iter().map(OsStr::new));
        args.push(OsStr::new(id));
        let (o, out_path) = self.run_io(&[] as &[&str], &args);
        self.stdout_files
            .lock()
            .unwrap()
            .insert(id.to_string(), out_path);
        o
    }

    /// `create`, asserting success.
    #[track_caller]
    pub fn create(&self, id: &str, bundle: &Bundle) {
        let o = self.try_create(id, bundle);
        assert_ok(&o, &format!("create {id}"));
    }

    /// What the container wrote to its stdout so far (the container inherits
    /// the stdout of `create`).
    pub fn container_stdout(&self, id: &str) -> String {
        let p = self.stdout_files.lock().unwrap().get(id).cloned();
        p.map(|p| fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    /// `start ID`, asserting success.
    #[track_caller]
    pub fn start(&self, id: &str) {
        let o = self.run(&["start", id]);
        assert_ok(&o, &format!("start {id}"));
    }

    /// `kill ID SIGNAL`. Does not assert.
    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.run(&["kill", id, signal])
    }

    /// `delete ID`. Does not assert.
    pub fn delete(&self, id: &str) -> Output {
        self.run(&["delete", id])
    }

    /// `delete --force ID`. Does not assert.
    pub fn delete_force(&self, id: &str) -> Output {
        self.run(&["delete", "--force", id])
    }

    /// `state ID`, parsed. Panics if the command fails or prints no JSON.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let o = self.run(&["state", id]);
        assert_ok(&o, &format!("state {id}"));
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("state {id}: stdout is not JSON ({e})\n{}", describe(&o)))
    }

    /// `state ID`'s status field.
    #[track_caller]
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The container's init pid as `state` reports it.
    #[track_caller]
    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().unwrap_or(0) as i32
    }

    /// Polls `state` until the status is `status`; fails the test on timeout.
    #[track_caller]
    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(id);
            if s == status {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "container {id}: status is still {s:?} after {timeout:?}, wanted {status:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `run --bundle DIR ID`: runs the container in the foreground and returns
    /// the runtime's output (= the container's stdio) and exit status.
    pub fn run_container(&self, id: &str, bundle: &Bundle) -> Output {
        bundle.save();
        self.track(id);
        let mut args: Vec<&OsStr> = vec![OsStr::new("run"), OsStr::new("--bundle")];
        args.push(bundle.dir.as_os_str());
        args.push(OsStr::new(id));
        self.run(&args)
    }

    /// Runs `sh -c SCRIPT` in a fresh default container and returns its output.
    pub fn sh(&self, script: &str) -> Output {
        let mut b = self.bundle();
        b.sh(script);
        let id = self.id();
        self.run_container(&id, &b)
    }

    /// Entries of the state root.
    pub fn state_entries(&self) -> Vec<String> {
        fs::read_dir(&self.state_root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything of this test still present on the host.
    pub fn leaks(&self) -> Leaks {
        Leaks {
            state_entries: self.state_entries(),
            ..self.dir.scope.leaks(&[])
        }
    }

    /// Force-deletes every container of this test, then returns what leaked
    /// (after giving the kernel a moment to tear things down).
    pub fn cleanup_and_check(&self) -> Leaks {
        let ids: Vec<String> = self.containers.lock().unwrap().clone();
        for id in &ids {
            // Also for ids already deleted: cheap, and independent of how
            // the runtime lays out its state dir.
            let _ = self.delete_force(id);
        }
        leaks::settle(|| self.leaks())
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let leaks = self.cleanup_and_check();
        if leaks.is_empty() {
            return;
        }
        self.dir.scope.clean();
        for e in &leaks.state_entries {
            let _ = fs::remove_dir_all(self.state_root.join(e));
        }
        let what = format!("test {}", self.name);
        self.dir.finish(&what, &leaks);
    }
}
