//! End to end with Docker 28 (sid's dockerd and docker, unpacked by scripts/fetch-docker.sh
//! into /var/cache/youki-shim/docker-sid) on a private containerd 2.1 (sid's, from
//! scripts/fetch-containerd.sh), in both ways Docker can use this project:
//! - `youki`: `{"runtimeType": "io.containerd.youki.v2"}`, our shim, which containerd finds
//!   as `containerd-shim-youki-v2` on its PATH (the cargo-built shim's directory is put
//!   first on containerd's and dockerd's PATH);
//! - `youki-cli`: `{"path": RUNTIME}`, the runtime under test (`$RUNTIME_BIN`, default our
//!   youki CLI) behind containerd's runc shim;
//!
//! and every scenario also with Docker's default runtime, `runc` (the system's runc 1.1.5
//! behind containerd's runc shim), as the reference. containerd's runc shim is sid's
//! (2.1.9): its directory is put first on this process's PATH, which containerd inherits.
//!
//! Each test starts containerd ([`Containerd::start`], in its [`World`]) and a dockerd of
//! its own: `--data-root`, `--exec-root`, `--pidfile` and the API socket in the test's temp
//! dir, `--config-file` with the two runtimes and `cgroup-parent` `/<marker>` (so the
//! World's leak check sees the containers' cgroups), and nothing that touches the host's
//! network: `--iptables=false --ip6tables=false --ip-masq=false --bridge=none`. The image
//! is the busybox rootfs, `docker import`ed. At the end the test removes its containers,
//! stops dockerd by its pid and checks that no container, shim, mount or data root is
//! left; the World then checks processes, mounts and cgroups once more.
//!
//! Without the docker-sid directory (or sid's containerd) the tests print why and skip:
//! scripts/setup.sh fetches both.

mod common;
mod e2e_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{assert_ok, describe, host_cgroup_file, mount_points, pid_alive, poll, stdout_of};
use e2e_support::containerd::*;
use e2e_support::*;

/// Where scripts/fetch-docker.sh puts dockerd and docker.
const DOCKER_DIR: &str = "/var/cache/youki-shim/docker-sid/bin";
/// sid's containerd 2.1 (scripts/fetch-containerd.sh).
const CONTAINERD_DIR: &str = "/var/cache/youki-shim/containerd-sid/usr/bin";
/// The image the busybox rootfs is imported as.
const IMAGE: &str = "youki-e2e-busybox:latest";
/// Docker's names for the runtimes: our shim, the runtime under test behind containerd's
/// runc shim, and Docker's default (runc), the reference.
const RUNTIMES: [&str; 3] = ["youki", "youki-cli", "runc"];
/// A busybox loop that prints `ready`, then `got USR1` on each SIGUSR1, and on SIGTERM
/// (`docker stop`'s signal) `got TERM` before it exits 7.
const TERM_TRAP: &str = "trap 'echo got TERM; exit 7' TERM; \
                         trap 'echo got USR1' USR1; \
                         echo ready; while true; do sleep 1; done";

/// Are Docker and containerd 2.1 fetched? Prints why not (the test then skips). Puts sid's
/// containerd first on this process's PATH, once, for [`Containerd::start`].
fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        for (dir, what) in [
            (DOCKER_DIR, "dockerd"),
            (DOCKER_DIR, "docker"),
            (CONTAINERD_DIR, "containerd"),
        ] {
            if !Path::new(dir).join(what).is_file() {
                eprintln!(
                    "skipped: {dir}/{what} missing (scripts/setup.sh fetches Docker 28 and \
                     containerd 2.1 from Debian sid)"
                );
                return false;
            }
        }
        // Every test of this binary sets the same value, before its first containerd.
        std::env::set_var("PATH", path_with(Path::new(CONTAINERD_DIR)));
        true
    })
}

/// This process's PATH with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&path)))
        .expect("PATH")
}

/// A private dockerd on a private containerd. See the module documentation.
struct Docker {
    dockerd: PathBuf,
    docker: PathBuf,
    daemon: Option<Child>,
    sock: PathBuf,
    data_root: PathBuf,
    exec_root: PathBuf,
    config: PathBuf,
    log: PathBuf,
    /// PATH for dockerd: the shim's directory first.
    path: std::ffi::OsString,
    /// dockerd keeps the bind mount of its data root on itself at its last stop (see
    /// the restart test): [`Docker::finish`] removes it instead of failing on it.
    keeps_root_mount: bool,
    /// Last: dropped after dockerd is stopped; stops containerd, then checks for leaks.
    c: Containerd,
}

impl Docker {
    /// containerd and dockerd (with `flags`), and the busybox image imported; None (the
    /// test skips) when Docker or containerd 2.1 is not fetched.
    fn start(kind: &str, flags: &[&str]) -> Option<Docker> {
        if !available() {
            return None;
        }
        let shims = Shim {
            // Both shims, ours and containerd's runc shim, must be gone at the end.
            binary: "containerd-shim-",
            dir: Some(shim_dir()),
            wait_gone: true,
            strict_task_ls: true,
        };
        let c = Containerd::start(kind, shims);
        let w = &c.w;
        let (sock, data_root, exec_root, log) = (
            w.path("d.sock"),
            w.path("docker"),
            w.path("dexec"),
            w.path("dockerd.log"),
        );
        let config = w.path("daemon.json");
        // examples/docker-daemon.json as a user installs it, with the runtime under test
        // as the `path` entry and the test's cgroup parent.
        let mut daemon_json = example_daemon_json();
        daemon_json["runtimes"]["youki-cli"]["path"] = runtime().to_string_lossy().into();
        daemon_json["cgroup-parent"] = format!("/{}", w.marker).into();
        fs::write(&config, daemon_json.to_string()).unwrap();
        let path = path_with(shim_dir());
        let mut d = Docker {
            dockerd: Path::new(DOCKER_DIR).join("dockerd"),
            docker: Path::new(DOCKER_DIR).join("docker"),
            daemon: None,
            sock,
            data_root,
            exec_root,
            config,
            log,
            path,
            keeps_root_mount: false,
            c,
        };
        d.start_daemon(flags);
        // The rootfs Containerd::start built, plus a program without the execute bit.
        let rootfs = &d.c.rootfs;
        let noexec = rootfs.join("bin/noexec");
        fs::write(&noexec, "#!/bin/sh\necho ran\n").unwrap();
        fs::set_permissions(&noexec, fs::Permissions::from_mode(0o644)).unwrap();
        let tar = d.c.w.path("busybox.tar");
        let o = d.c.w.run(
            Command::new("tar")
                .arg("-cf")
                .arg(&tar)
                .arg("-C")
                .arg(rootfs)
                .arg("."),
        );
        assert_ok(&o, "tar of the busybox rootfs");
        d.ok(&["import", tar.to_str().unwrap(), IMAGE]);
        Some(d)
    }

    fn w(&self) -> &World {
        &self.c.w
    }

    /// Starts dockerd with the test's flags plus `flags`, and waits until it answers.
    fn start_daemon(&mut self, flags: &[&str]) {
        let log = fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(&self.dockerd);
        cmd.arg("--config-file")
            .arg(&self.config)
            .arg("--containerd")
            .arg(&self.c.address)
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(self.w().path("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            // Nothing on the host's network: no firewall rules, no bridge, no proxy
            // (Debian's dockerd would look for docker-proxy).
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--userland-proxy=false",
            ])
            .args(flags)
            .env("PATH", &self.path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("spawn dockerd");
        self.daemon = Some(child);
        let up = poll(Duration::from_secs(30), || {
            self.sock.exists() && self.docker(&["version"]).status.success()
        });
        assert!(up, "dockerd did not come up\n{}", self.log_tail());
    }

    /// Stops dockerd (SIGTERM, by its pid) and waits for it to exit.
    fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: kill(2) of the daemon this test started, by its pid.
            unsafe {
                libc::kill(d.id() as i32, libc::SIGTERM);
            }
            if wait_child(&mut d, Duration::from_secs(60)).is_none() {
                eprintln!("dockerd did not stop on SIGTERM within 60 s: killed");
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("--- dockerd log (tail) ---\n{}", lines[from..].join("\n"))
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.docker);
        c.arg("-H").arg(format!("unix://{}", self.sock.display()));
        c
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.w().run(self.cmd().args(args))
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed\n{}\n{}",
            describe(&o),
            self.log_tail()
        );
        stdout_of(&o)
    }

    /// `docker run --rm --runtime R FLAGS... IMAGE ARGS...`.
    fn run_rm(&self, runtime: &str, flags: &[&str], args: &[&str]) -> Output {
        let mut all = vec!["run", "--rm", "--runtime", runtime];
        all.extend_from_slice(flags);
        all.push(IMAGE);
        all.extend_from_slice(args);
        self.docker(&all)
    }

    /// `docker run -d --runtime R --name NAME FLAGS... IMAGE sh -c SCRIPT`; waits until
    /// the script printed its first line.
    fn run_d(&self, runtime: &str, name: &str, flags: &[&str], script: &str) {
        let mut all = vec!["run", "-d", "--runtime", runtime, "--name", name];
        all.extend_from_slice(flags);
        all.extend_from_slice(&[IMAGE, "sh", "-c", script]);
        self.ok(&all);
        let started = poll(Duration::from_secs(10), || {
            !self.logs(name).trim().is_empty()
        });
        assert!(started, "{name} printed nothing");
    }

    fn logs(&self, name: &str) -> String {
        let o = self.docker(&["logs", name]);
        format!("{}{}", stdout_of(&o), common::stderr_of(&o))
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "-f", format, name]).trim().to_string()
    }

    /// `docker run --rm -i`, with `input` on its stdin.
    fn run_stdin(&self, runtime: &str, input: &str, args: &[&str]) -> Output {
        let w = self.w();
        let n = w.next();
        let in_path = w.path(&format!("io/{n}.in"));
        let out_path = w.path(&format!("io/{n}.stdout"));
        fs::write(&in_path, input).unwrap();
        let mut cmd = self.cmd();
        cmd.args(["run", "--rm", "-i", "--runtime", runtime, IMAGE])
            .args(args)
            .stdin(fs::File::open(&in_path).unwrap())
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn docker run -i");
        let status = wait_child(&mut child, CLIENT_TIMEOUT).expect("docker run -i timed out");
        Output {
            status,
            stdout: fs::read(&out_path).unwrap_or_default(),
            stderr: vec![],
        }
    }

    /// Fails unless the running container `name` is served as `rt` says: by our shim
    /// (`youki`), or known to the runtime binary containerd's runc shim was given
    /// (`youki-cli`: the runtime under test; `runc`: runc), in the state root Docker 28
    /// gives every runc-shim runtime, `<exec-root>/runtime-runc/<containerd namespace>`.
    fn assert_served_by(&self, rt: &str, name: &str) {
        let id = self.inspect(name, "{{.Id}}");
        if rt == "youki" {
            let address = self.c.address.to_string_lossy().into_owned();
            let shims = processes_with(&[SHIM, &address, &id]);
            assert!(!shims.is_empty(), "{name}: no {SHIM} serves it");
            return;
        }
        let binary = if rt == "runc" {
            client("runc", "runc")
        } else {
            runtime()
        };
        let root = self.exec_root.join("runtime-runc/moby");
        let o = self.w().run(
            Command::new(&binary)
                .arg("--root")
                .arg(&root)
                .args(["state", &id]),
        );
        assert_ok(
            &o,
            &format!("{} state {name} (docker runtime {rt})", binary.display()),
        );
        assert!(stdout_of(&o).contains("\"running\""), "{}", describe(&o));
    }

    /// The host cgroup file of a container's controller (v1 or v2 name).
    fn cgroup_file(&self, name: &str, controller: &str, v1: &str, v2: &str) -> PathBuf {
        let id = self.inspect(name, "{{.Id}}");
        host_cgroup_file(&format!("/{}/{id}", self.w().marker), controller, v1, v2)
    }

    /// Removes every container (force), stops dockerd and checks that nothing of Docker's
    /// is left: no container in containerd's `moby` namespace, no shim, no mount under the
    /// data root; then removes the data root.
    fn finish(mut self) {
        let ids = self.ok(&["ps", "-aq"]);
        assert_eq!(ids.trim(), "", "containers left in docker ps -a");
        self.stop_daemon();
        let o = self
            .c
            .w
            .run(self.c.cmd_in("moby").args(["containers", "ls", "-q"]));
        assert_ok(&o, "ctr -n moby containers ls");
        assert_eq!(stdout_of(&o).trim(), "", "containers left in containerd");
        let gone = poll(Duration::from_secs(30), || self.c.shims().is_empty());
        assert!(gone, "shims left: {:?}", self.c.shims());
        let root = self.data_root.to_string_lossy().into_owned();
        let exec_root = self.exec_root.to_string_lossy().into_owned();
        let left = || -> Vec<String> {
            mount_points()
                .into_iter()
                .filter(|m| m.starts_with(&root) || m.starts_with(&exec_root))
                .collect()
        };
        if self.keeps_root_mount && left() == [root.clone()] {
            let o = self.c.w.run(Command::new("umount").arg(&self.data_root));
            assert_ok(&o, "umount of dockerd's data root");
        }
        let mounts = left();
        assert!(mounts.is_empty(), "dockerd left mounts: {mounts:?}");
        fs::remove_dir_all(&self.data_root).expect("remove dockerd's data root");
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if self.daemon.is_none() {
            return;
        }
        // A failed test: remove what it left, so that the World reports only real leaks.
        eprintln!("{}", self.log_tail());
        let ids = stdout_of(&self.docker(&["ps", "-aq"]));
        for id in ids.split_whitespace() {
            let _ = self.docker(&["unpause", id]);
            let _ = self.docker(&["rm", "-f", id]);
        }
        self.stop_daemon();
    }
}

trait CtrIn {
    fn cmd_in(&self, ns: &str) -> Command;
}

impl CtrIn for Containerd {
    /// `ctr --address A -n NS` for another namespace than the test's (Docker's `moby`).
    fn cmd_in(&self, ns: &str) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address").arg(&self.address).args(["-n", ns]);
        c
    }
}

/// A file of examples/.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// examples/docker-daemon.json, parsed; it names the runtimes the tests use.
fn example_daemon_json() -> serde_json::Value {
    let path = example("docker-daemon.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("docker-daemon.json is JSON");
    for rt in ["youki", "youki-cli"] {
        assert!(
            v["runtimes"][rt].is_object(),
            "docker-daemon.json: no runtime {rt}"
        );
    }
    v
}

/// Now, in seconds since the epoch (for `docker events --since/--until`).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[test]
fn run_exit_codes_logs_exec_stdin() {
    let Some(d) = Docker::start("docker-run", &[]) else {
        return;
    };
    for rt in RUNTIMES {
        let o = d.run_rm(rt, &[], &["sh", "-c", "echo hello"]);
        assert_ok(&o, &format!("{rt}: docker run --rm"));
        assert_eq!(stdout_of(&o), "hello\n", "{rt}");
        for (args, want) in [
            (&["sh", "-c", "exit 3"][..], 3),
            (&["/bin/nosuch"][..], 127),
            (&["/bin/noexec"][..], 126),
        ] {
            let o = d.run_rm(rt, &[], args);
            assert_eq!(code(&o), Some(want), "{rt}: {args:?}\n{}", describe(&o));
        }

        let o = d.run_stdin(rt, "line one\nline two\n", &["sh", "-c", "cat; echo end"]);
        assert_ok(&o, &format!("{rt}: docker run -i"));
        assert_eq!(stdout_of(&o), "line one\nline two\nend\n", "{rt}: -i");

        let name = d.w().name(rt);
        d.run_d(rt, &name, &[], TERM_TRAP);
        d.assert_served_by(rt, &name);
        let out = d.ok(&[
            "exec",
            "--user",
            "1000:1001",
            "--workdir",
            "/tmp",
            "--env",
            "FOO=bar",
            &name,
            "sh",
            "-c",
            "id -u; id -g; pwd; echo $FOO",
        ]);
        assert_eq!(out, "1000\n1001\n/tmp\nbar\n", "{rt}: exec");
        let o = d.docker(&["exec", &name, "sh", "-c", "exit 5"]);
        assert_eq!(code(&o), Some(5), "{rt}: exec exit code\n{}", describe(&o));

        d.ok(&["kill", "-s", "USR1", &name]);
        let got = poll(Duration::from_secs(10), || {
            d.logs(&name).contains("got USR1")
        });
        assert!(got, "{rt}: kill -s USR1 not seen: {}", d.logs(&name));
        assert_eq!(d.inspect(&name, "{{.State.Status}}"), "running", "{rt}");

        d.ok(&["stop", &name]);
        assert_eq!(d.inspect(&name, "{{.State.ExitCode}}"), "7", "{rt}: stop");
        assert!(
            d.logs(&name).contains("got TERM"),
            "{rt}: {}",
            d.logs(&name)
        );
        let waited = d.ok(&["wait", &name]);
        assert_eq!(waited.trim(), "7", "{rt}: docker wait");
        d.ok(&["rm", &name]);
    }
    d.finish();
}

#[test]
fn pause_update_and_resources() {
    let Some(d) = Docker::start("docker-res", &[]) else {
        return;
    };
    for rt in RUNTIMES {
        let name = d.w().name(rt);
        d.run_d(
            rt,
            &name,
            &["--memory", "32m", "--pids-limit", "20"],
            TERM_TRAP,
        );
        let pid: i32 = d.inspect(&name, "{{.State.Pid}}").parse().unwrap();

        d.ok(&["pause", &name]);
        assert_eq!(d.inspect(&name, "{{.State.Status}}"), "paused", "{rt}");
        let freezer = d.cgroup_file(&name, "freezer", "freezer.state", "cgroup.freeze");
        let state = fs::read_to_string(&freezer).unwrap();
        assert!(
            matches!(state.trim(), "FROZEN" | "1"),
            "{rt}: paused but {}: {state:?}",
            freezer.display()
        );
        d.ok(&["unpause", &name]);
        assert_eq!(d.inspect(&name, "{{.State.Status}}"), "running", "{rt}");

        let limit = d.cgroup_file(&name, "memory", "memory.limit_in_bytes", "memory.max");
        assert_eq!(
            fs::read_to_string(&limit).unwrap().trim(),
            (32 << 20).to_string(),
            "{rt}: --memory"
        );
        d.ok(&["update", "--memory", "64m", "--memory-swap", "128m", &name]);
        assert_eq!(
            fs::read_to_string(&limit).unwrap().trim(),
            (64 << 20).to_string(),
            "{rt}: update --memory"
        );
        let pids = d.cgroup_file(&name, "pids", "pids.max", "pids.max");
        assert_eq!(
            fs::read_to_string(&pids).unwrap().trim(),
            "20",
            "{rt}: --pids-limit"
        );
        d.ok(&["rm", "-f", &name]);
        assert!(!pid_alive(pid), "{rt}: rm -f left pid {pid}");

        // --read-only, capabilities, bind mount, tmpfs, no network.
        let host_dir = d.w().path(&format!("bind-{rt}"));
        fs::create_dir_all(&host_dir).unwrap();
        let bind = format!("{}:/data", host_dir.display());
        let o = d.run_rm(
            rt,
            &[
                "--read-only",
                "--cap-drop",
                "ALL",
                "--cap-add",
                "NET_RAW",
                "-v",
                &bind,
                "--tmpfs",
                "/scratch",
                "--network",
                "none",
            ],
            &[
                "sh",
                "-c",
                "touch /rootfile 2>/dev/null && echo root-writable; \
                 grep CapEff /proc/self/status; \
                 echo from-container > /data/f; \
                 grep ' /scratch ' /proc/mounts | cut -d' ' -f3; \
                 touch /scratch/x && echo scratch-writable; \
                 cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '",
            ],
        );
        assert_ok(&o, &format!("{rt}: run with limits"));
        assert_eq!(
            stdout_of(&o),
            "CapEff:\t0000000000002000\ntmpfs\nscratch-writable\nlo\n",
            "{rt}: --read-only, --cap-drop ALL --cap-add NET_RAW, --tmpfs, --network none"
        );
        assert_eq!(
            fs::read_to_string(host_dir.join("f")).unwrap(),
            "from-container\n",
            "{rt}: bind mount"
        );
    }
    d.finish();
}

/// More of `docker run`'s everyday flags: --user, --hostname, no-new-privileges, Docker's
/// default seccomp profile, --shm-size, --sysctl, --ulimit, -t, a named volume shared by
/// two containers; `docker cp` into and `docker top` of a running container.
#[test]
fn more_run_flags_cp_top() {
    let Some(d) = Docker::start("docker-flags", &[]) else {
        return;
    };
    for rt in RUNTIMES {
        let o = d.run_rm(
            rt,
            &[
                "--user",
                "1000:1000",
                "--hostname",
                "h1",
                "--security-opt",
                "no-new-privileges",
                "--shm-size",
                "8m",
                "--sysctl",
                "kernel.msgmax=4096",
                "--ulimit",
                "nofile=1000:2000",
            ],
            &[
                "sh",
                "-c",
                "id -u; hostname; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; \
                 df -k /dev/shm | tail -n 1 | awk '{print $2}'; cat /proc/sys/kernel/msgmax; \
                 ulimit -n; ulimit -Hn",
            ],
        );
        assert_ok(&o, &format!("{rt}: run with flags"));
        assert_eq!(
            stdout_of(&o),
            "1000\nh1\nNoNewPrivs:\t1\nSeccomp:\t2\n8192\n4096\n1000\n2000\n",
            "{rt}: --user, --hostname, no-new-privileges, seccomp, --shm-size, --sysctl, --ulimit"
        );

        let o = d.run_rm(rt, &["-t"], &["sh", "-c", "tty"]);
        assert_ok(&o, &format!("{rt}: run -t"));
        assert!(is_pts(&stdout_of(&o)), "{rt}: -t: {:?}", stdout_of(&o));

        let volume = format!("{}-{rt}", d.w().marker);
        let mount = format!("{volume}:/vol");
        let o = d.run_rm(rt, &["-v", &mount], &["sh", "-c", "echo kept > /vol/f"]);
        assert_ok(&o, &format!("{rt}: write to a named volume"));
        let o = d.run_rm(rt, &["-v", &mount], &["cat", "/vol/f"]);
        assert_eq!(
            stdout_of(&o),
            "kept\n",
            "{rt}: named volume\n{}",
            describe(&o)
        );
        d.ok(&["volume", "rm", &volume]);

        let name = d.w().name(rt);
        d.run_d(rt, &name, &[], TERM_TRAP);
        let file = d.w().path(&format!("cp-{rt}"));
        fs::write(&file, "copied\n").unwrap();
        d.ok(&["cp", file.to_str().unwrap(), &format!("{name}:/tmp/f")]);
        assert_eq!(
            d.ok(&["exec", &name, "cat", "/tmp/f"]),
            "copied\n",
            "{rt}: cp"
        );
        let top = d.ok(&["top", &name]);
        assert!(top.contains("sh -c"), "{rt}: top: {top}");
        d.ok(&["rm", "-f", &name]);
    }
    d.finish();
}

#[test]
fn oom_killed_and_events() {
    let Some(d) = Docker::start("docker-oom", &[]) else {
        return;
    };
    for rt in RUNTIMES {
        let since = unix_now();
        let name = d.w().name(rt);
        // Doubling a shell string until the 16 MiB limit (swap included) stops it.
        let o = d.docker(&[
            "run",
            "--runtime",
            rt,
            "--name",
            &name,
            "--memory",
            "16m",
            "--memory-swap",
            "16m",
            IMAGE,
            "sh",
            "-c",
            "x=a; while true; do x=$x$x; done",
        ]);
        assert_eq!(code(&o), Some(137), "{rt}: OOM\n{}", describe(&o));
        assert_eq!(
            d.inspect(&name, "{{.State.OOMKilled}} {{.State.ExitCode}}"),
            "true 137",
            "{rt}: State.OOMKilled"
        );
        let filter = format!("container={name}");
        let mut actions = String::new();
        let all = poll(Duration::from_secs(10), || {
            let until = (unix_now() + 1).to_string();
            actions = d.ok(&[
                "events",
                "--since",
                &since.to_string(),
                "--until",
                &until,
                "--filter",
                &filter,
                "--format",
                "{{.Action}}",
            ]);
            ["start", "oom", "die"]
                .iter()
                .all(|a| actions.lines().any(|l| l == *a))
        });
        assert!(
            all,
            "{rt}: docker events lacks start, oom or die: {actions:?}"
        );
        d.ok(&["rm", &name]);
    }
    d.finish();
}

#[test]
fn dockerd_restart_with_and_without_live_restore() {
    let Some(mut d) = Docker::start("docker-restart", &["--live-restore"]) else {
        return;
    };
    let mut pids = vec![];
    for rt in RUNTIMES {
        let name = format!("{}-{rt}", d.w().marker);
        d.run_d(rt, &name, &[], TERM_TRAP);
        pids.push((rt, name.clone(), d.inspect(&name, "{{.State.Pid}}")));
    }
    // With live-restore the containers outlive dockerd and are taken back.
    d.stop_daemon();
    for (rt, _, pid) in &pids {
        assert!(
            pid_alive(pid.parse().unwrap()),
            "{rt}: live-restore, but the container's init {pid} died with dockerd"
        );
    }
    d.start_daemon(&["--live-restore"]);
    // dockerd bind-mounts its data root on itself (private) when it starts and unmounts it
    // when it stops, but a live-restore stop with running containers leaves it, and the
    // dockerd started after that finds it private, takes it as not its own and never
    // unmounts it. Docker's doing, the same with runc alone (checked by hand: one runc
    // container, live-restore stop, start, rm, stop: the mount stays).
    d.keeps_root_mount = true;
    for (rt, name, pid) in &pids {
        assert_eq!(d.inspect(name, "{{.State.Status}}"), "running", "{rt}");
        assert_eq!(&d.inspect(name, "{{.State.Pid}}"), pid, "{rt}");
        d.ok(&["exec", name, "true"]);
        d.ok(&["stop", name]);
        assert_eq!(
            d.inspect(name, "{{.State.ExitCode}}"),
            "7",
            "{rt}: stop after restore"
        );
        d.ok(&["rm", name]);
    }

    // Without live-restore dockerd stops its containers when it stops.
    d.stop_daemon();
    d.start_daemon(&[]);
    let mut pids = vec![];
    for rt in RUNTIMES {
        let name = format!("{}-{rt}-2", d.w().marker);
        d.run_d(rt, &name, &[], TERM_TRAP);
        pids.push((rt, name.clone(), d.inspect(&name, "{{.State.Pid}}")));
    }
    d.stop_daemon();
    for (rt, _, pid) in &pids {
        assert!(
            !pid_alive(pid.parse().unwrap()),
            "{rt}: dockerd stopped without live-restore, but the container's init {pid} runs"
        );
    }
    let gone = poll(Duration::from_secs(30), || d.c.shims().is_empty());
    assert!(gone, "shims left after dockerd stopped: {:?}", d.c.shims());
    d.start_daemon(&[]);
    for (rt, name, _) in &pids {
        assert_eq!(d.inspect(name, "{{.State.Status}}"), "exited", "{rt}");
        assert_eq!(
            d.inspect(name, "{{.State.ExitCode}}"),
            "7",
            "{rt}: stopped by dockerd"
        );
        d.ok(&["rm", name]);
    }
    d.finish();
}

/// `dockerd --validate` accepts examples/docker-daemon.json and refuses a copy with a
/// misspelt key (the check can fail). --validate checks JSON and top-level keys only, not
/// what a runtime entry holds: the Docker tests above run with this file itself (its `path`
/// pointed at the runtime under test), so dockerd starts with it and runs containers
/// through both entries.
#[test]
fn example_docker_daemon_json_is_valid() {
    if !available() {
        return;
    }
    let w = World::new("docker-example");
    let dockerd = Path::new(DOCKER_DIR).join("dockerd");
    let validate = |config: &Path| {
        // Debian's dockerd would look for docker-proxy, which the unpacked package has
        // off dockerd's PATH: not what is checked here.
        w.run(
            Command::new(&dockerd)
                .args(["--validate", "--userland-proxy=false", "--config-file"])
                .arg(config),
        )
    };
    let o = validate(&example("docker-daemon.json"));
    assert_ok(&o, "dockerd --validate examples/docker-daemon.json");
    assert!(
        common::stderr_of(&o).contains("configuration OK"),
        "{}",
        describe(&o)
    );
    let broken = w.path("broken.json");
    let text = fs::read_to_string(example("docker-daemon.json")).unwrap();
    fs::write(&broken, text.replace("\"runtimes\"", "\"runtime\"")).unwrap();
    let o = validate(&broken);
    assert!(
        !o.status.success(),
        "a misspelt key passed --validate\n{}",
        describe(&o)
    );
}

/// podman reads examples/podman-containers.conf (CONTAINERS_CONF) and makes youki its
/// runtime: `podman info` names it, at the runtime under test's path (put in the
/// example's first path, which may not exist here). vfs storage: no mounts.
#[test]
fn example_podman_containers_conf_is_read() {
    let w = World::new("podman-ex");
    let podman = client("podman", "podman");
    let runtime = runtime();
    let text = fs::read_to_string(example("podman-containers.conf")).unwrap();
    let first = "\"/usr/local/bin/youki\"";
    assert!(
        text.contains(first),
        "podman-containers.conf names no {first}"
    );
    let conf = w.path("containers.conf");
    fs::write(
        &conf,
        text.replace(first, &format!("\"{}\"", runtime.display())),
    )
    .unwrap();
    let out = w.run(
        Command::new(podman)
            .env("CONTAINERS_CONF", &conf)
            .args(["--storage-driver", "vfs", "--root"])
            .arg(w.path("root"))
            .arg("--runroot")
            .arg(w.path("rr"))
            .args([
                "info",
                "--format",
                "{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}",
            ]),
    );
    assert_ok(&out, "podman info with examples/podman-containers.conf");
    assert_eq!(
        stdout_of(&out).trim(),
        format!("youki {}", runtime.display()),
        "podman's runtime"
    );
}
