//! A private containerd with its CRI plugin, for tests that drive it as kubelet does
//! (tests/e2e_cri.rs, through the `youki-cri` client crate).
//!
//! Everything lives in the test's [`World`]: containerd's root, state and socket; CRI's
//! network namespaces (`netns_mounts_under_state_dir`); a CNI config dir and bin dir (the
//! `bridge`, `host-local` and `loopback` plugins of Debian's containernetworking-plugins,
//! linked in) with a bridge and a subnet of the test's own and host-local's data dir;
//! the pod logs; the two images (scripts/cri-images.sh: the local pause image, which is
//! CRI's sandbox image, and busybox), imported into `k8s.io`. Runtime handlers: `runc`
//! (containerd-shim-runc-v2), `runc13` (the same with runc 1.3.6 as BinaryName) and
//! `youki` (io.containerd.youki.v2, the cargo-built shim
//! first on containerd's PATH), and with the shim also `youki-runc-type` (runc's runtime
//! type with `runtime_path` naming the cargo-built shim: the entry containerd 2.x
//! introspects, and that gets runc's options; not on 1.6, which ignores `runtime_path`)
//! and `youki-runc-type-systemd` (the same with `SystemdCgroup = true`); `runc-systemd` is
//! containerd's runc shim with `SystemdCgroup = true` (tests/e2e_cri_systemd.rs).
//! The config is `version = 2` for containerd 1.x and
//! `version = 3` for 2.x, whichever containerd is first on PATH (scripts/test.sh runs the
//! tests again with containerd 2.x).
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

use crate::common::{cgroup_hierarchies, describe, pid_alive, poll};
pub use crate::e2e_support::containerd::containerd_major;
use crate::e2e_support::containerd::{processes_with, shim_dir, Containerd, Shim, SHIM};
use crate::e2e_support::{client, World};

/// The runc handler: containerd's own runc shim.
pub const RUNC: &str = "runc";
/// runc 1.3.6 behind containerd's runc shim (`BinaryName`): the reference for what
/// needs runc 1.2 or later (id-mapped mounts, user-namespaced pods), where Debian's
/// runc (1.1.5, the `runc` handler's on containerd's PATH) is too old.
pub const RUNC_1_3_HANDLER: &str = "runc13";
/// The runc 1.3.6 binary of [`RUNC_1_3_HANDLER`] (unpacked by scripts/setup.sh).
pub const RUNC_1_3_BIN: &str = "/var/cache/youki-shim/runc-sid/runc";
/// The youki handler: `runtime_type = "io.containerd.youki.v2"`.
pub const YOUKI: &str = "youki";
/// The youki shim registered under runc's runtime type: `runtime_type =
/// "io.containerd.runc.v2"`, `runtime_path` naming the shim, runc's options
/// ([`YOUKI_RUNC_TYPE_OPTIONS`]). Present when the Cri was started with the shim, on
/// containerd 1.7 and later ([`honours_runtime_path`]).
pub const YOUKI_RUNC_TYPE: &str = "youki-runc-type";
/// runc behind containerd's runc shim with `SystemdCgroup = true`, as a node whose kubelet
/// uses the systemd cgroup driver registers it (pods' cgroup parents are `.slice`s).
pub const RUNC_SYSTEMD: &str = "runc-systemd";
/// [`YOUKI_RUNC_TYPE`] with `SystemdCgroup = true` only.
pub const YOUKI_RUNC_TYPE_SYSTEMD: &str = "youki-runc-type-systemd";
/// The `options` table of [`YOUKI_RUNC_TYPE`] (TOML lines): what an operator copies from
/// the runc entry of a node whose kubelet uses the cgroupfs driver (the pods' cgroup
/// parents are cgroupfs paths), so that the tests see what the shim makes of it.
pub const YOUKI_RUNC_TYPE_OPTIONS: &str = "SystemdCgroup = false\nBinaryName = \"runc\"";
/// The sandbox image, imported by scripts/cri-images.sh.
pub const PAUSE_IMAGE: &str = "localhost/youki-pause:latest";
/// The containers' image.
pub const BUSYBOX_IMAGE: &str = "localhost/youki-busybox:latest";
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

/// What the CRI config names; paths are inside the world.
struct Settings<'a> {
    root: &'a Path,
    state: &'a Path,
    address: &'a Path,
    cni_bin: &'a Path,
    cni_conf: &'a Path,
    /// The shim binary, for the [`YOUKI_RUNC_TYPE`] handler (None: no such handler).
    youki_shim: Option<PathBuf>,
}

/// The (major, minor) version of the containerd binary `containerd` (from `containerd
/// --version`: "containerd PACKAGE VERSION REVISION").
pub fn containerd_version(containerd: &Path) -> (u32, u32) {
    let o = Command::new(containerd)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{} --version: {e}", containerd.display()));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let v = text.split_whitespace().nth(2).unwrap_or_default();
    let mut parts = v.trim_start_matches('v').split('.');
    let mut next = || parts.next().and_then(|p| p.parse().ok());
    match (next(), next()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => panic!("cannot read a version from `containerd --version`: {text:?}"),
    }
}

/// The lines of CRI runtime `handler`'s table in `containerd --config CONFIG config dump`
/// (what containerd makes of an example config; panics when it refuses the file or has
/// no such runtime).
// Used by tests/e2e_cri_info.rs; tests/e2e_cri.rs includes this file too.
#[allow(dead_code)]
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

/// Whether containerd `version` runs a CRI runtime entry's `runtime_path`: 1.6's client
/// never passes it on to the task service (its TaskInfo keeps it in a field the request
/// does not read), so 1.6 runs the shim of the runtime type; 1.7 sends it.
pub fn honours_runtime_path(version: (u32, u32)) -> bool {
    version >= (1, 7)
}

/// The runtime tables under `prefix` (the runtimes table of the config's version) of the
/// handlers under runc's runtime type beside `runc`: [`RUNC_SYSTEMD`], and with a shim
/// [`YOUKI_RUNC_TYPE`] and [`YOUKI_RUNC_TYPE_SYSTEMD`].
fn runc_type_entries(prefix: &str, s: &Settings) -> String {
    let entry = |name: &str, runtime_path: Option<&Path>, options: &str| {
        let path = runtime_path
            .map(|p| format!("      runtime_path = \"{}\"\n", p.display()))
            .unwrap_or_default();
        let options: String = options.lines().map(|l| format!("        {l}\n")).collect();
        format!(
            r#"
    [{prefix}.{name}]
      runtime_type = "io.containerd.runc.v2"
{path}      [{prefix}.{name}.options]
{options}"#
        )
    };
    let mut out = entry(
        RUNC_SYSTEMD,
        None,
        &format!(
            "SystemdCgroup = true\nRoot = \"{}/runc\"",
            s.state.display()
        ),
    );
    if let Some(shim) = s.youki_shim.as_deref() {
        out += &entry(YOUKI_RUNC_TYPE, Some(shim), YOUKI_RUNC_TYPE_OPTIONS);
        out += &entry(YOUKI_RUNC_TYPE_SYSTEMD, Some(shim), "SystemdCgroup = true");
    }
    out
}

/// containerd 1.6/1.7 (`version = 2`): CRI is one plugin, `io.containerd.grpc.v1.cri`.
fn config_v2(s: &Settings) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{address}"

[ttrpc]
  address = "{address}.ttrpc"

[debug]
  address = ""
  level = "debug"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # CAP_SYS_RESOURCE is not in the bounding set here: the sandbox's -998 would fail.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  sandbox_image = "{pause}"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      # runc's state in the test's dir, not the host's /run/containerd/runc/k8s.io.
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{state}/runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{runc_1_3}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{runc_1_3}.options]
        BinaryName = "{runc_1_3_bin}"
        Root = "{state}/runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.youki]
      runtime_type = "io.containerd.youki.v2"
{youki_runc_type}
# 1.7: NRI would listen on the global /var/run/nri/nri.sock (1.6 ignores this).
[plugins."io.containerd.nri.v1.nri"]
  disable = true

# Else /opt/containerd.
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
        root = s.root.display(),
        state = s.state.display(),
        address = s.address.display(),
        pause = PAUSE_IMAGE,
        runc_1_3 = RUNC_1_3_HANDLER,
        runc_1_3_bin = RUNC_1_3_BIN,
        cni_bin = s.cni_bin.display(),
        cni_conf = s.cni_conf.display(),
        opt = s.root.join("opt").display(),
        youki_runc_type = runc_type_entries(
            r#"plugins."io.containerd.grpc.v1.cri".containerd.runtimes"#,
            s
        ),
    )
}

/// containerd 2.x (`version = 3`): CRI split into the images and runtime plugins, the
/// gRPC server keeps the streaming options.
fn config_v3(s: &Settings) -> String {
    format!(
        r#"version = 3
root = "{root}"
state = "{state}"

[grpc]
  address = "{address}"

[ttrpc]
  address = "{address}.ttrpc"

[debug]
  address = ""
  level = "debug"

[metrics]
  address = ""

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"

  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{pause}"

[plugins.'io.containerd.cri.v1.runtime']
  # CAP_SYS_RESOURCE is not in the bounding set here: the sandbox's -998 would fail.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true

  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni_conf}"
    max_conf_num = 1

  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      # runc's state in the test's dir, not the host's /run/containerd/runc/k8s.io.
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        Root = "{state}/runc"

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{runc_1_3}]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.{runc_1_3}.options]
        BinaryName = "{runc_1_3_bin}"
        Root = "{state}/runc"

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.youki]
      runtime_type = "io.containerd.youki.v2"
{youki_runc_type}
# NRI would listen on the global /var/run/nri/nri.sock.
[plugins.'io.containerd.nri.v1.nri']
  disable = true

# Else /opt/containerd.
[plugins.'io.containerd.internal.v1.opt']
  path = "{opt}"
"#,
        root = s.root.display(),
        state = s.state.display(),
        address = s.address.display(),
        pause = PAUSE_IMAGE,
        runc_1_3 = RUNC_1_3_HANDLER,
        runc_1_3_bin = RUNC_1_3_BIN,
        cni_bin = s.cni_bin.display(),
        cni_conf = s.cni_conf.display(),
        opt = s.root.join("opt").display(),
        youki_runc_type = runc_type_entries(
            "plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes",
            s
        ),
    )
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

/// Writes the CNI conf and bin dirs of the world; returns the network and the dirs.
fn setup_cni(w: &World) -> (PodNetwork, PathBuf, PathBuf) {
    let bin = w.path("cni/bin");
    let conf = w.path("cni/net.d");
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
    (net, bin, conf)
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

/// The namespace link of a process, e.g. "net:[4026531992]".
pub fn ns_of(pid: impl std::fmt::Display, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{kind}: {e}"))
        .to_string_lossy()
        .into_owned()
}

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
        let containerd = client("containerd", "containerd");
        let major = containerd_major(&containerd);
        let (net, cni_bin, cni_conf) = setup_cni(&w);
        // The bridge must be gone at the end; the plugin creates it on the first pod.
        w.must_vanish(Path::new("/sys/class/net").join(&net.bridge));
        fs::create_dir_all(w.path("logs")).unwrap();
        let address = Containerd::socket(&w);
        let (root, state) = (w.path("root"), w.path("state"));
        let settings = Settings {
            root: &root,
            state: &state,
            address: &address,
            cni_bin: &cni_bin,
            cni_conf: &cni_conf,
            youki_shim: (youki_shim && honours_runtime_path(containerd_version(&containerd)))
                .then(|| shim_dir().join(SHIM)),
        };
        let config = if major >= 2 {
            config_v3(&settings)
        } else {
            config_v2(&settings)
        };
        let shim = Shim {
            // Every shim: the youki handler's and containerd-shim-runc-v2.
            binary: "containerd-shim-",
            dir: (youki_shim || !tools.is_empty()).then_some(bin.as_path()),
            wait_gone: true,
            strict_task_ls: false,
        };
        let ctd = Containerd::start_in(w, shim, &config, "k8s.io");
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
            containerd_major: major,
            pod_ids: Mutex::new(vec![]),
            ctd,
        };
        cri.wait_ready();
        cri
    }

    /// What Status says runtime handler `name` supports (`runtime_handlers[].features`,
    /// CRI 1.30's; containerd 2.x fills it from the shim's `-info`, 1.x lists no
    /// handlers): None when the handler is not listed or has no features.
    // Used by tests/e2e_cri_info.rs; tests/e2e_cri.rs includes this file too.
    #[allow(dead_code)]
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
                !crate::common::mount_points().contains(&path),
                "netns {path} still mounted"
            );
            assert!(!ns.exists(), "netns {path} still exists");
        }
        for h in cgroup_hierarchies() {
            let dir = h
                .mount_point
                .join(pod.cgroup_parent.trim_start_matches('/'));
            let children: Vec<String> = fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
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
        let youki = PathBuf::from(env!("CARGO_BIN_EXE_youki"));
        let dir = youki.parent().expect("target dir");
        let bin = dir.join("youki-cri");
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cri");
        let mut sources: Vec<PathBuf> = fs::read_dir(crate_dir.join("src"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        sources.push(crate_dir.join("Cargo.toml"));
        sources.push(crate_dir.join("../Cargo.lock"));
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
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "-p",
            "youki-cri",
            "--bin",
            "youki-cri",
        ]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build for youki-cri");
        assert!(st.success(), "cargo build of youki-cri failed");
        assert!(bin.is_file(), "youki-cri not built in {}", dir.display());
        bin
    })
}

/// The parent of `pid`, from /proc/PID/stat (None once it is gone).
fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which is in parentheses and may hold spaces: state, ppid.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cri-images.sh");
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
