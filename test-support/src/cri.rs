//! A private containerd with its CRI plugin, for tests that drive it as kubelet does
//! (tests/e2e_cri*.rs, through the `youki-cri` client crate).
//!
//! Everything lives in the test's [`World`]: containerd's root, state and socket; CRI's
//! network namespaces (`netns_mounts_under_state_dir`); a CNI config dir and bin dir (the
//! `bridge`, `host-local` and `loopback` plugins of Debian's containernetworking-plugins,
//! linked in) with a bridge and a subnet of the test's own and host-local's data dir;
//! the pod logs; the two images (scripts/cri-images.sh: the local pause image, which is
//! CRI's sandbox image, and busybox), imported into `k8s.io`. The config and its runtime
//! handlers are [`crate::cri_config`]'s, for whichever containerd is first on PATH
//! (scripts/test.sh runs the tests again with containerd 2.x); with the shim, it is first
//! on containerd's PATH.
//!
//! Each pod gets the cgroup parent `/<pod name>` (the pod name holds the world's marker,
//! so the world's leak check finds its cgroups). When the [`Cri`] is dropped, also after
//! a failure, every pod left is stopped and removed through CRI, the bridge is deleted,
//! then containerd is stopped and the world checks that nothing is left: no shim, no
//! process, mount (netns included), cgroup or bridge, no CNI result file. Two host paths
//! are not configurable through containerd: libcni's cache (/var/lib/cni/results, whose
//! files of the test's pods must be gone; the dirs are removed after the last test if
//! they did not exist before) and runc's state dir /run/containerd/runc/k8s.io (removed
//! once empty).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use youki_cri::api;
pub use youki_cri::Client;

use crate::cgroups::{cgroup_hierarchies, children};
use crate::containerd::{containerd_version, shim_dir, Containerd, Shim, SHIM};
use crate::cri_config::{CriConfig, BUSYBOX_IMAGE, PAUSE_IMAGE};
use crate::mounts::mount_points;
use crate::output::describe;
use crate::paths::{bin_dir, cargo_build, script, workspace_dir};
use crate::process::{pid_alive, poll, ppid, processes_with};
use crate::world::{client, World};

/// Where libcni caches ADD results (not configurable through containerd): files named
/// `<network>-<sandbox id>-<ifname>`, which must go when the pod goes.
pub const CNI_RESULTS: &str = "/var/lib/cni/results";
/// The live [`Cri`]s of this test process, and whether libcni's cache dir existed before
/// the first: the last one removes the (empty) dirs libcni created.
static CNI_CACHE_USERS: Mutex<(usize, bool)> = Mutex::new((0, true));
/// libcni's cache dir, parent of [`CNI_RESULTS`].
const CNI_CACHE: &str = "/var/lib/cni";
/// runc's state directory for CRI's namespace (containerd-shim-runc-v2's default root).
/// CNI plugins the pod network uses (Debian's containernetworking-plugins).
const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "loopback"];
const CNI_PLUGIN_DIR: &str = "/usr/lib/cni";

/// The lines of CRI runtime `handler`'s table in `containerd --config CONFIG config dump`
/// (what containerd makes of an example config; panics when it refuses the file or has
/// no such runtime).
pub fn dumped_runtime_table(containerd: &Path, config: &Path, handler: &str) -> Vec<String> {
    let o = Command::new(containerd)
        .arg("--config")
        .arg(config)
        .args(["config", "dump"])
        .output()
        .expect("run containerd config dump");
    assert!(o.status.success(), "{}: {}", config.display(), describe(&o));
    let dump = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = dump.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_end().ends_with(&format!("runtimes.{handler}]")))
        .unwrap_or_else(|| panic!("{}: no {handler} runtime in\n{dump}", config.display()));
    lines[at + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(|l| l.to_string())
        .collect()
}

/// The test's pod network.
pub struct PodNetwork {
    /// The CNI network name (holds the marker).
    pub name: String,
    /// The Linux bridge the `bridge` plugin creates (at most 15 characters).
    pub bridge: String,
    /// The first three octets of the /24 subnet, e.g. "10.234.7".
    pub prefix: String,
}

/// Fills the CNI conf and bin dirs of `config` (in the world); returns the network.
fn setup_cni(w: &World, config: &CriConfig) -> PodNetwork {
    let (bin, conf) = (config.cni_bin(), config.cni_conf());
    let data = w.path("cni/ipam");
    for d in [&bin, &conf, &data] {
        fs::create_dir_all(d).unwrap();
    }
    for p in CNI_PLUGINS {
        let src = Path::new(CNI_PLUGIN_DIR).join(p);
        assert!(
            src.is_file(),
            "{} not found: install Debian's containernetworking-plugins \
             (scripts/setup.sh, scripts/debian-packages.txt)",
            src.display()
        );
        std::os::unix::fs::symlink(&src, bin.join(p)).unwrap();
    }
    // Unique among concurrent tests: the pid and the world's number. Without isGateway
    // the bridge has no address, so the subnet adds no host route and cannot clash with
    // the host's; ipMasq off: no iptables rule.
    let n = w.marker.rsplit('-').next().unwrap_or("0").to_string();
    let pid = std::process::id();
    let net = PodNetwork {
        name: format!("{}-net", w.marker),
        bridge: format!("yk{pid:x}x{n}").chars().take(15).collect(),
        prefix: format!(
            "10.234.{}",
            (pid as usize * 7 + n.parse::<usize>().unwrap_or(0)) % 250 + 1
        ),
    };
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": net.name,
        "plugins": [{
            "type": "bridge",
            "bridge": net.bridge,
            "isGateway": false,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": data,
                "ranges": [[{ "subnet": format!("{}.0/24", net.prefix) }]]
            }
        }]
    });
    fs::write(
        conf.join("10-youki-e2e.conflist"),
        serde_json::to_string_pretty(&conflist).unwrap(),
    )
    .unwrap();
    net
}

/// A pod this test started.
pub struct Pod {
    /// The sandbox id.
    pub id: String,
    /// What RunPodSandbox was given (CreateContainer needs it again).
    pub config: api::PodSandboxConfig,
    /// The runtime handler.
    pub handler: String,
    /// `/<pod name>`, the pod's cgroup parent.
    pub cgroup_parent: String,
    /// The sandbox (pause) process on the host.
    pub pid: i32,
    /// The pod's network namespace (None: host network).
    pub netns: Option<PathBuf>,
    /// The containers created in it.
    containers: Mutex<Vec<String>>,
}

impl Pod {
    /// The pod's name (metadata.name).
    pub fn name(&self) -> &str {
        self.config
            .metadata
            .as_ref()
            .map(|m| m.name.as_str())
            .unwrap_or("")
    }

    /// The ids of the containers created in this pod.
    pub fn containers(&self) -> Vec<String> {
        self.containers.lock().unwrap().clone()
    }

    /// The directory holding the pod's container logs.
    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(&self.config.log_directory)
    }
}

/// How long an ExecSync in the tests may run.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// ExecSync that must succeed (exit code 0); returns stdout.
#[track_caller]
pub fn exec_ok(cri: &Cri, id: &str, cmd: &[&str]) -> String {
    let r = cri
        .client
        .exec_sync(id, cmd, EXEC_TIMEOUT)
        .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}\n{}", cri.ctd.log_tail()));
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    assert_eq!(
        r.exit_code,
        0,
        "ExecSync {cmd:?}: stdout {out:?} stderr {:?}",
        String::from_utf8_lossy(&r.stderr)
    );
    out
}

/// A private containerd with CRI and a connected client. See the module docs.
pub struct Cri {
    /// The kubelet-like client.
    pub client: Client,
    /// The CNI network pods get unless they use the host's.
    pub net: PodNetwork,
    /// containerd's major version (1 or 2).
    pub containerd_major: u32,
    /// Every sandbox id this test ran, for the final check.
    pod_ids: Mutex<Vec<String>>,
    /// Last: stopped (and the world checked) after the pods are gone.
    pub ctd: Containerd,
}

impl Cri {
    /// containerd with CRI; with `youki_shim`, the cargo-built shim first on its PATH
    /// (the `youki` handler needs it; runc-only tests need not build it).
    pub fn start(kind: &str, youki_shim: bool) -> Cri {
        Cri::start_with(kind, youki_shim, &[])
    }

    /// [`Cri::start`] with `tools` (name, binary) linked into a directory first on
    /// containerd's PATH, beside the shim: `criu`, which CRI's checkpoint looks for there
    /// and the shims run.
    pub fn start_with(kind: &str, youki_shim: bool, tools: &[(&str, &Path)]) -> Cri {
        let w = World::new(kind);
        // Without tools, the shim's own directory.
        let bin = if tools.is_empty() {
            shim_dir().to_path_buf()
        } else {
            let bin = w.path("bin");
            fs::create_dir_all(&bin).unwrap();
            std::os::unix::fs::symlink(shim_dir().join(SHIM), bin.join(SHIM)).unwrap();
            for (name, path) in tools {
                std::os::unix::fs::symlink(path, bin.join(name)).unwrap();
            }
            bin
        };
        let containerd = containerd_version(&client("containerd", "containerd"));
        let config = CriConfig {
            containerd,
            dir: w.work.clone(),
            debug: true,
            runc: None,
            youki_shim: youki_shim.then(|| shim_dir().join(SHIM)),
        };
        let net = setup_cni(&w, &config);
        // The bridge must be gone at the end; the plugin creates it on the first pod.
        w.must_vanish(Path::new("/sys/class/net").join(&net.bridge));
        fs::create_dir_all(w.path("logs")).unwrap();
        let shim = Shim {
            // Every shim: the youki handler's and containerd-shim-runc-v2.
            binary: "containerd-shim-",
            dir: (youki_shim || !tools.is_empty()).then_some(bin.as_path()),
            wait_gone: true,
            strict_task_ls: false,
        };
        let ctd = Containerd::start_in(w, shim, &config.render(), "k8s.io");
        import_images(&ctd);
        let client = Client::connect_with_timeout(&ctd.address, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
        // Counted from here on: the Drop below uncounts (no pod ran before).
        {
            let mut users = CNI_CACHE_USERS.lock().unwrap_or_else(|p| p.into_inner());
            if users.0 == 0 {
                users.1 = Path::new(CNI_CACHE).exists();
            }
            users.0 += 1;
        }
        let cri = Cri {
            client,
            net,
            containerd_major: containerd.0,
            pod_ids: Mutex::new(vec![]),
            ctd,
        };
        cri.wait_ready();
        cri
    }

    /// What Status says runtime handler `name` supports (`runtime_handlers[].features`,
    /// CRI 1.30's; containerd 2.x fills it from the shim's `-info`, 1.x lists no
    /// handlers): None when the handler is not listed or has no features.
    #[track_caller]
    pub fn handler_features(&self, name: &str) -> Option<api::RuntimeHandlerFeatures> {
        let st = self
            .client
            .status(false)
            .unwrap_or_else(|e| panic!("Status: {e}\n{}", self.ctd.log_tail()));
        st.runtime_handlers
            .into_iter()
            .find(|h| h.name == name)
            .and_then(|h| h.features)
    }

    /// The test's world.
    pub fn w(&self) -> &World {
        &self.ctd.w
    }

    /// Waits until Status reports RuntimeReady and NetworkReady (CRI loads the CNI
    /// config asynchronously).
    fn wait_ready(&self) {
        let mut last = String::new();
        let ready = poll(Duration::from_secs(15), || {
            match self.client.status(false) {
                Ok(st) => {
                    let ok = |k| youki_cri::condition(&st, k).is_some_and(|c| c.status);
                    last = format!("{:?}", st.status);
                    ok("RuntimeReady") && ok("NetworkReady")
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        });
        assert!(ready, "CRI not ready: {last}\n{}", self.ctd.log_tail());
    }

    /// A pod config like kubelet's, named `<marker>-<what>-<n>`, with its own cgroup
    /// parent and log directory in the world.
    pub fn pod_config(&self, what: &str, host_network: bool) -> api::PodSandboxConfig {
        let name = self.w().name(what);
        let mut pod = youki_cri::pod_sandbox_config(&name, "default", &format!("uid-{name}"));
        youki_cri::set_host_network(&mut pod, host_network);
        let logs = self.w().path("logs").join(&name);
        fs::create_dir_all(&logs).unwrap();
        pod.log_directory = logs.to_string_lossy().into_owned();
        if let Some(linux) = pod.linux.as_mut() {
            linux.cgroup_parent = format!("/{name}");
        }
        pod
    }

    /// RunPodSandbox with `handler`, then PodSandboxStatus (verbose) for the sandbox's
    /// pid and netns; panics with containerd's log on failure.
    #[track_caller]
    pub fn run_pod(&self, config: api::PodSandboxConfig, handler: &str) -> Pod {
        let cgroup_parent = config
            .linux
            .as_ref()
            .map(|l| l.cgroup_parent.clone())
            .unwrap_or_default();
        // Like kubelet's pod cgroup, the parent outlives the containers: removed by the
        // world's check once empty.
        self.w().allow_cgroup(&cgroup_parent);
        let id = self
            .client
            .run_pod_sandbox(&config, handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}\n{}", self.ctd.log_tail()));
        self.pod_ids.lock().unwrap().push(id.clone());
        let st = self
            .client
            .pod_sandbox_status(&id, true)
            .unwrap_or_else(|e| panic!("PodSandboxStatus: {e}"));
        let pid = youki_cri::sandbox_pid(&st)
            .unwrap_or_else(|| panic!("no sandbox pid in PodSandboxStatus info: {:?}", st.info));
        let netns = youki_cri::sandbox_netns_path(&st).map(PathBuf::from);
        Pod {
            id,
            config,
            handler: handler.to_string(),
            cgroup_parent,
            pid,
            netns,
            containers: Mutex::new(vec![]),
        }
    }

    /// A container config for `pod` from the busybox image running `command`.
    pub fn container_config(
        &self,
        pod: &Pod,
        name: &str,
        command: &[&str],
    ) -> api::ContainerConfig {
        youki_cri::container_config(name, BUSYBOX_IMAGE, command, &pod.config)
    }

    /// CreateContainer + StartContainer; returns the container id.
    #[track_caller]
    pub fn start_container(&self, pod: &Pod, config: &api::ContainerConfig) -> String {
        let id = self.create_container(pod, config);
        self.client.start_container(&id).unwrap_or_else(|e| {
            panic!(
                "StartContainer ({}): {e}\n{}",
                pod.handler,
                self.ctd.log_tail()
            )
        });
        id
    }

    /// CreateContainer; returns the container id.
    #[track_caller]
    pub fn create_container(&self, pod: &Pod, config: &api::ContainerConfig) -> String {
        let id = self
            .client
            .create_container(&pod.id, config, &pod.config)
            .unwrap_or_else(|e| {
                panic!(
                    "CreateContainer ({}): {e}\n{}",
                    pod.handler,
                    self.ctd.log_tail()
                )
            });
        pod.containers.lock().unwrap().push(id.clone());
        id
    }

    /// The container's pid on the host (verbose ContainerStatus).
    #[track_caller]
    pub fn container_pid(&self, id: &str) -> i32 {
        let st = self
            .client
            .container_status(id, true)
            .unwrap_or_else(|e| panic!("ContainerStatus: {e}"));
        youki_cri::verbose_info(&st.info, "pid")
            .and_then(|p| p.as_i64())
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or_else(|| panic!("no pid in ContainerStatus info: {:?}", st.info))
    }

    /// StopPodSandbox + RemovePodSandbox, then [`Cri::assert_pod_gone`].
    #[track_caller]
    pub fn remove_pod(&self, pod: &Pod) {
        self.client.stop_pod_sandbox(&pod.id).unwrap_or_else(|e| {
            panic!(
                "StopPodSandbox ({}): {e}\n{}",
                pod.handler,
                self.ctd.log_tail()
            )
        });
        self.client.remove_pod_sandbox(&pod.id).unwrap_or_else(|e| {
            panic!(
                "RemovePodSandbox ({}): {e}\n{}",
                pod.handler,
                self.ctd.log_tail()
            )
        });
        self.assert_pod_gone(pod);
    }

    /// Shim processes serving this containerd whose command line names `id`.
    pub fn shims_of(&self, id: &str) -> Vec<i32> {
        let address = self.ctd.address.to_string_lossy().into_owned();
        processes_with(&["containerd-shim-", &address, &format!("-id {id}")])
    }

    /// Shim processes serving this containerd.
    pub fn shims(&self) -> Vec<i32> {
        self.ctd.shims()
    }

    /// Shim servers of this containerd: shim processes whose parent is not one (our
    /// shim forks a zygote at start, which has the server's command line).
    pub fn shim_servers(&self) -> Vec<i32> {
        let all = self.shims();
        all.iter()
            .copied()
            .filter(|p| !ppid(*p).is_some_and(|parent| all.contains(&parent)))
            .collect()
    }

    /// Nothing of a removed pod is left: CRI knows neither it nor its containers, no
    /// shim serves them, the sandbox process is gone, its netns is unmounted and
    /// removed, its cgroup parent is empty, libcni's result files are gone.
    #[track_caller]
    pub fn assert_pod_gone(&self, pod: &Pod) {
        let pods = self.client.list_pod_sandbox(None).expect("ListPodSandbox");
        assert!(
            pods.iter().all(|p| p.id != pod.id),
            "pod {} still listed",
            pod.id
        );
        let containers = self.client.list_containers(None).expect("ListContainers");
        for c in pod.containers() {
            assert!(
                containers.iter().all(|l| l.id != c),
                "container {c} still listed"
            );
        }
        let mut ids = pod.containers();
        ids.push(pod.id.clone());
        let gone = poll(Duration::from_secs(30), || {
            ids.iter().all(|id| self.shims_of(id).is_empty())
        });
        let left: Vec<(String, Vec<i32>)> = ids
            .iter()
            .map(|id| (id.clone(), self.shims_of(id)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        assert!(
            gone,
            "shims still serving pod {} ({}): {left:?}",
            pod.id, pod.handler
        );
        assert!(
            poll(Duration::from_secs(5), || !pid_alive(pod.pid)),
            "sandbox process {} still alive",
            pod.pid
        );
        if let Some(ns) = &pod.netns {
            let path = ns.to_string_lossy().into_owned();
            assert!(
                !mount_points().contains(&path),
                "netns {path} still mounted"
            );
            assert!(!ns.exists(), "netns {path} still exists");
        }
        for h in cgroup_hierarchies() {
            let dir = h
                .mount_point
                .join(pod.cgroup_parent.trim_start_matches('/'));
            let children = children(&dir);
            assert!(
                children.is_empty(),
                "cgroups left under {}: {children:?}",
                dir.display()
            );
        }
        let results = cni_results(std::slice::from_ref(&pod.id));
        assert!(results.is_empty(), "CNI results left: {results:?}");
    }

    /// The host-side interfaces attached to the test's bridge (veths of running pods).
    pub fn bridge_ports(&self) -> Vec<String> {
        fs::read_dir(
            Path::new("/sys/class/net")
                .join(&self.net.bridge)
                .join("brif"),
        )
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Stops and removes every pod CRI still lists (after a failed test), then deletes
    /// the bridge and any CNI result file of the test's network.
    fn remove_everything(&self) {
        if let Ok(pods) = self.client.list_pod_sandbox(None) {
            for p in pods {
                if let Err(e) = self.client.stop_pod_sandbox(&p.id) {
                    eprintln!("cleanup: StopPodSandbox {}: {e}", p.id);
                }
                if let Err(e) = self.client.remove_pod_sandbox(&p.id) {
                    eprintln!("cleanup: RemovePodSandbox {}: {e}", p.id);
                }
            }
        }
        let bridge = Path::new("/sys/class/net").join(&self.net.bridge);
        if bridge.exists() {
            let ports = self.bridge_ports();
            if !ports.is_empty() {
                eprintln!("cleanup: veths still on {}: {ports:?}", self.net.bridge);
            }
            let ip = client("ip", "iproute2");
            let o = Command::new(ip)
                .args(["link", "del", &self.net.bridge])
                .output()
                .expect("run ip link del");
            if !o.status.success() {
                eprintln!("cleanup: ip link del {}: {}", self.net.bridge, describe(&o));
            }
        }
    }
}

/// The `youki-cri` binary of this build's target directory, built unless it is newer
/// than its sources (`cargo test --workspace` built it already: building it again alone
/// would rebuild tokio and tonic with another feature set).
pub fn youki_cri_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = bin_dir().join("youki-cri");
        let crate_dir = workspace_dir().join("cri");
        let mut sources: Vec<PathBuf> = fs::read_dir(crate_dir.join("src"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        sources.push(crate_dir.join("Cargo.toml"));
        sources.push(workspace_dir().join("Cargo.lock"));
        let newest_source = sources
            .iter()
            .filter_map(|f| fs::metadata(f).and_then(|m| m.modified()).ok())
            .max();
        let built = fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if let (Some(built), Some(source)) = (built, newest_source) {
            if built > source {
                return bin;
            }
        }
        cargo_build("youki-cri", "youki-cri")
    })
}

/// libcni's cached results (file names) of the sandboxes `ids`: for the test's network
/// and for the loopback network containerd adds (`cni-loopback-<id>-lo`).
pub fn cni_results(ids: &[String]) -> Vec<String> {
    fs::read_dir(CNI_RESULTS)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| ids.iter().any(|id| f.contains(id.as_str())))
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Cri {
    fn drop(&mut self) {
        self.remove_everything();
        let left = cni_results(&self.pod_ids.lock().unwrap());
        for f in &left {
            let _ = fs::remove_file(Path::new(CNI_RESULTS).join(f));
        }
        let mut users = CNI_CACHE_USERS.lock().unwrap_or_else(|p| p.into_inner());
        users.0 -= 1;
        if users.0 == 0 && !users.1 {
            // Only when empty: remove_dir fails otherwise.
            let _ = fs::remove_dir(CNI_RESULTS);
            let _ = fs::remove_dir(CNI_CACHE);
        }
        drop(users);
        if !left.is_empty() {
            let msg = format!("CNI result files left in {CNI_RESULTS}: {left:?}");
            if std::thread::panicking() {
                eprintln!("{msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

/// Builds the pause and busybox images (unless given) and imports them into `k8s.io`
/// (scripts/cri-images.sh, with the ctr of the containerd under test).
fn import_images(ctd: &Containerd) {
    let script = script("cri-images.sh");
    // YOUKI_CRI_IMAGES: a directory holding the two tars already (scripts/vm-test.sh
    // builds them on the host: in the VM, under TCG, building them takes a minute).
    let out = std::env::var_os("YOUKI_CRI_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| ctd.w.path("images"));
    let o = ctd.w.run(
        Command::new(&script)
            .env("CTR", &ctd.ctr)
            .env("PAUSE_IMAGE", PAUSE_IMAGE)
            .env("BUSYBOX_IMAGE", BUSYBOX_IMAGE)
            .arg("--address")
            .arg(&ctd.address)
            .arg("--out")
            .arg(out),
    );
    assert!(
        o.status.success(),
        "scripts/cri-images.sh\n{}\n{}",
        describe(&o),
        ctd.log_tail()
    );
}
