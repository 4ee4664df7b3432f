//! containerd's CRI config for a private containerd, written once: for the CRI tests
//! ([`crate::cri`]) and, through the `youki-cri-config` binary, for scripts/bench.sh.
//!
//! Everything is in one directory (root, state, socket, CNI dirs; see [`CriConfig`]).
//! Runtime handlers: `runc` (containerd-shim-runc-v2), `runc13` (the same with runc
//! 1.3.6 as BinaryName), `runc-systemd` (`SystemdCgroup = true`) and `youki`
//! (io.containerd.youki.v2, found on containerd's PATH), and with a shim path also
//! `youki-runc-type` (runc's runtime type with `runtime_path` naming the shim: the entry
//! containerd 2.x introspects, and that gets runc's options; not on 1.6, which ignores
//! `runtime_path`) and `youki-runc-type-systemd` (the same with `SystemdCgroup = true`).
//! The config is `version = 2` for containerd 1.x and `version = 3` for 2.x.

use std::path::{Path, PathBuf};

use crate::containerd::base_config;

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
/// ([`YOUKI_RUNC_TYPE_OPTIONS`]). Present when the config names a shim, on containerd
/// 1.7 and later ([`honours_runtime_path`]).
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
/// containerd's runc shim's runtime type.
const RUNC_TYPE: &str = "io.containerd.runc.v2";
/// The sandbox image, imported by scripts/cri-images.sh.
pub const PAUSE_IMAGE: &str = "localhost/youki-pause:latest";
/// The containers' image.
pub const BUSYBOX_IMAGE: &str = "localhost/youki-busybox:latest";

/// Whether containerd `version` runs a CRI runtime entry's `runtime_path`: 1.6's client
/// never passes it on to the task service (its TaskInfo keeps it in a field the request
/// does not read), so 1.6 runs the shim of the runtime type; 1.7 sends it.
pub fn honours_runtime_path(version: (u32, u32)) -> bool {
    version >= (1, 7)
}

/// What a private containerd's CRI config names.
#[derive(Debug, Clone)]
pub struct CriConfig {
    /// The containerd it is for, (major, minor): 1.x reads `version = 2`, 2.x `version = 3`.
    pub containerd: (u32, u32),
    /// Holds everything: `root`, `state`, the gRPC socket `c.sock`, the CNI dirs
    /// `cni/bin` and `cni/net.d`.
    pub dir: PathBuf,
    /// Debug logs (shims started with `-debug`, their log lines in containerd's).
    pub debug: bool,
    /// The `runc` handler's `BinaryName` (None: `runc` on containerd's PATH).
    pub runc: Option<PathBuf>,
    /// The shim for [`YOUKI_RUNC_TYPE`] and [`YOUKI_RUNC_TYPE_SYSTEMD`] (None, or a
    /// containerd that ignores `runtime_path`: no such handlers).
    pub youki_shim: Option<PathBuf>,
}

impl CriConfig {
    /// The CNI plugins' directory: `cni/bin` in the config's directory.
    pub fn cni_bin(&self) -> PathBuf {
        self.dir.join("cni/bin")
    }

    /// The CNI config directory: `cni/net.d` in the config's directory.
    pub fn cni_conf(&self) -> PathBuf {
        self.dir.join("cni/net.d")
    }

    /// The config file's text.
    pub fn render(&self) -> String {
        let v3 = self.containerd.0 >= 2;
        // Version 3 quotes plugin names with '', version 2 with "".
        let plugin = |name: &str| match v3 {
            true => format!("plugins.'{name}'"),
            false => format!("plugins.\"{name}\""),
        };
        let cri = plugin("io.containerd.grpc.v1.cri");
        let mut out = base_config(if v3 { 3 } else { 2 }, &self.dir, "", self.debug);
        out += &format!(
            r#"
[{cri}]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"#
        );
        let cni_bin = self.cni_bin().display().to_string();
        // containerd 2.x split CRI into the images and runtime plugins (the gRPC server
        // keeps the streaming options); in 1.x it is one plugin.
        let (runtime, sandbox, snapshotter, bin_dir) = if v3 {
            let images = plugin("io.containerd.cri.v1.images");
            let runtime = plugin("io.containerd.cri.v1.runtime");
            let sandbox = format!(
                r#"
[{images}]
  snapshotter = "overlayfs"

  [{images}.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[{runtime}]
"#
            );
            (runtime, sandbox, "", format!("bin_dirs = [\"{cni_bin}\"]"))
        } else {
            let sandbox = format!("  sandbox_image = \"{PAUSE_IMAGE}\"\n");
            let snapshotter = "\n    snapshotter = \"overlayfs\"";
            (
                cri,
                sandbox,
                snapshotter,
                format!("bin_dir = \"{cni_bin}\""),
            )
        };
        out += &format!(
            r#"{sandbox}  # CAP_SYS_RESOURCE is not in the bounding set here: the sandbox's -998 would fail.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true

  [{runtime}.cni]
    {bin_dir}
    conf_dir = "{cni_conf}"
    max_conf_num = 1

  [{runtime}.containerd]{snapshotter}
    default_runtime_name = "runc"
"#,
            cni_conf = self.cni_conf().display(),
        );
        // runc's state in the test's dir, not the host's /run/containerd/runc/k8s.io.
        let runc_root = format!("Root = \"{}/runc\"", self.dir.join("state").display());
        let runc_options = match &self.runc {
            Some(bin) => format!("BinaryName = \"{}\"\n{runc_root}", bin.display()),
            None => runc_root.clone(),
        };
        let mut entries = vec![
            (RUNC, RUNC_TYPE, None, runc_options),
            (
                RUNC_1_3_HANDLER,
                RUNC_TYPE,
                None,
                format!("BinaryName = \"{RUNC_1_3_BIN}\"\n{runc_root}"),
            ),
            (YOUKI, "io.containerd.youki.v2", None, String::new()),
            (
                RUNC_SYSTEMD,
                RUNC_TYPE,
                None,
                format!("SystemdCgroup = true\n{runc_root}"),
            ),
        ];
        if let Some(shim) = self
            .youki_shim
            .as_deref()
            .filter(|_| honours_runtime_path(self.containerd))
        {
            let options = YOUKI_RUNC_TYPE_OPTIONS.to_string();
            entries.push((YOUKI_RUNC_TYPE, RUNC_TYPE, Some(shim), options));
            let systemd = "SystemdCgroup = true".to_string();
            entries.push((YOUKI_RUNC_TYPE_SYSTEMD, RUNC_TYPE, Some(shim), systemd));
        }
        let runtimes = format!("{runtime}.containerd.runtimes");
        for (name, runtime_type, runtime_path, options) in &entries {
            out += &runtime_entry(&runtimes, name, runtime_type, *runtime_path, options);
        }
        out += &format!(
            r#"
# NRI would listen on the global /var/run/nri/nri.sock (1.6 ignores this).
[{nri}]
  disable = true

# Else /opt/containerd.
[{opt}]
  path = "{path}"
"#,
            nri = plugin("io.containerd.nri.v1.nri"),
            opt = plugin("io.containerd.internal.v1.opt"),
            path = self.dir.join("root/opt").display()
        );
        out
    }
}

/// The table of runtime handler `name` under `runtimes`, with its `options` table of
/// TOML lines `options` (none when empty).
fn runtime_entry(
    runtimes: &str,
    name: &str,
    runtime_type: &str,
    runtime_path: Option<&Path>,
    options: &str,
) -> String {
    let mut out = format!("\n    [{runtimes}.{name}]\n      runtime_type = \"{runtime_type}\"\n");
    if let Some(p) = runtime_path {
        out += &format!("      runtime_path = \"{}\"\n", p.display());
    }
    if !options.is_empty() {
        out += &format!("      [{runtimes}.{name}.options]\n");
        for l in options.lines() {
            out += &format!("        {l}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(containerd: (u32, u32)) -> CriConfig {
        CriConfig {
            containerd,
            dir: PathBuf::from("/w"),
            debug: false,
            runc: Some(PathBuf::from("/usr/sbin/runc")),
            youki_shim: Some(PathBuf::from("/t/containerd-shim-youki-v2")),
        }
    }

    #[test]
    fn version_2_for_containerd_1_and_3_for_2() {
        let v2 = config((1, 7)).render();
        assert!(v2.starts_with("version = 2\n"), "{v2}");
        assert!(
            v2.contains(r#"[plugins."io.containerd.grpc.v1.cri".cni]"#),
            "{v2}"
        );
        assert!(v2.contains("  sandbox_image = \"localhost/youki-pause:latest\"\n"));
        assert!(v2.contains("bin_dir = \"/w/cni/bin\""), "{v2}");
        let v3 = config((2, 1)).render();
        assert!(v3.starts_with("version = 3\n"), "{v3}");
        assert!(
            v3.contains("[plugins.'io.containerd.cri.v1.runtime'.cni]"),
            "{v3}"
        );
        assert!(v3.contains("bin_dirs = [\"/w/cni/bin\"]"), "{v3}");
        assert!(!v3.contains("sandbox_image"), "{v3}");
    }

    #[test]
    fn runc_type_handlers_only_where_runtime_path_counts() {
        let with = config((1, 7)).render();
        assert!(with.contains("runtimes.youki-runc-type]\n      runtime_type = \"io.containerd.runc.v2\"\n      runtime_path = \"/t/containerd-shim-youki-v2\"\n"), "{with}");
        assert!(!config((1, 6)).render().contains(YOUKI_RUNC_TYPE));
        let runc = "runtimes.runc.options]\n        BinaryName = \"/usr/sbin/runc\"\n        Root = \"/w/state/runc\"\n";
        assert!(with.contains(runc), "{with}");
    }
}
