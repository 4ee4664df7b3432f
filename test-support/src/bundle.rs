//! OCI bundles for the runtime tests: a busybox rootfs and `runc spec`'s config.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cgroups::is_cgroup_v2_only;

/// The capability set containerd and Docker give a container by default.
/// As a mask: CapEff = 00000000a80425fb.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
/// [`DEFAULT_CAPS`] as the mask /proc/PID/status shows.
pub const DEFAULT_CAPS_MASK: &str = "00000000a80425fb";

/// The (smaller) set `runc spec` writes. As a mask: 0000000020000420.
pub const RUNC_SPEC_CAPS: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
/// [`RUNC_SPEC_CAPS`] as the mask /proc/PID/status shows.
pub const RUNC_SPEC_CAPS_MASK: &str = "0000000020000420";

/// Environment variable put into every container process; the leak checker
/// looks for it in /proc/PID/environ.
pub const MARKER_VAR: &str = "YOUKI_IT_MARKER";

/// An OCI bundle: `rootfs/` made of busybox and a `config.json` that starts as
/// `runc spec`'s default (terminal off) and that tests mutate through
/// [`Bundle::config`] before creating the container.
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// config.json, written by [`Bundle::save`].
    pub config: Value,
    /// `linux.cgroupsPath`, unique for this bundle: `/youki-it-<pid>-<env>-<n>`.
    pub cgroups_path: String,
}

impl Bundle {
    /// `rootfs/` in the bundle.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// `config.json` in the bundle.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Sets `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Sets `process.args` to `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Appends `KEY=VALUE` to `process.env`.
    pub fn add_env(&mut self, kv: &str) -> &mut Self {
        self.config["process"]["env"]
            .as_array_mut()
            .expect("process.env is an array")
            .push(json!(kv));
        self
    }

    /// `process`, to change.
    pub fn process(&mut self) -> &mut Value {
        &mut self.config["process"]
    }

    /// `linux`, to change.
    pub fn linux(&mut self) -> &mut Value {
        &mut self.config["linux"]
    }

    /// Sets `linux.resources.KEY = value` (e.g. "memory", {"limit": ...}).
    pub fn resource(&mut self, key: &str, value: Value) -> &mut Self {
        self.config["linux"]["resources"][key] = value;
        self
    }

    /// Replaces the namespace entry of `ns_type`, joining `path` if given.
    pub fn namespace(&mut self, ns_type: &str, path: Option<&str>) -> &mut Self {
        let nss = self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces is an array");
        nss.retain(|n| n["type"] != ns_type);
        let mut n = json!({ "type": ns_type });
        if let Some(p) = path {
            n["path"] = json!(p);
        }
        nss.push(n);
        self
    }

    /// Adds a hook: `kind` is createRuntime, createContainer, startContainer,
    /// poststart, poststop or prestart.
    pub fn hook(&mut self, kind: &str, hook: Value) -> &mut Self {
        if !self.config["hooks"].is_object() {
            self.config["hooks"] = json!({});
        }
        if !self.config["hooks"][kind].is_array() {
            self.config["hooks"][kind] = json!([]);
        }
        self.config["hooks"][kind]
            .as_array_mut()
            .unwrap()
            .push(hook);
        self
    }

    /// Adds a bind mount of a host directory.
    pub fn bind_mount(&mut self, source: &Path, destination: &str, read_only: bool) -> &mut Self {
        let mut opts = vec!["rbind", "nosuid", "nodev"];
        if read_only {
            opts.push("ro");
        }
        self.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": destination,
            "type": "bind",
            "source": source,
            "options": opts,
        }));
        self
    }

    /// Writes config.json.
    pub fn save(&self) {
        let s = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.config_path(), s).expect("write config.json");
    }
}

/// `runc spec`'s default config, with terminal off, the default capability set
/// of containerd/Docker, and the given marker in the environment. As `runc spec` on a
/// pure cgroup v2 host, the namespaces include a cgroup namespace there (containerd and
/// Docker also default to a private one on v2): the container's /sys/fs/cgroup and
/// /proc/self/cgroup are then its own cgroup.
pub fn default_config(marker: &str, cgroups_path: &str) -> Value {
    let mut config = runc_spec_config(marker, cgroups_path);
    if is_cgroup_v2_only() {
        config["linux"]["namespaces"]
            .as_array_mut()
            .expect("linux.namespaces")
            .push(json!({ "type": "cgroup" }));
    }
    config
}

fn runc_spec_config(marker: &str, cgroups_path: &str) -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
                format!("{MARKER_VAR}={marker}"),
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS,
            },
            "rlimits": [
                { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }
            ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {
                "devices": [ { "allow": false, "access": "rwm" } ]
            },
            "namespaces": [
                { "type": "pid" },
                { "type": "network" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// A config with no namespace at all (the caller's are shared), no masked or read-only
/// paths, no hostname and only /proc mounted: what runc runs in the caller's namespaces.
pub fn config_without_namespaces(marker: &str, cgroups_path: &str, rootfs: &Path) -> Value {
    let mut spec = default_config(marker, cgroups_path);
    spec["root"] = json!({"path": rootfs, "readonly": false});
    spec["linux"]["namespaces"] = json!([]);
    spec["linux"]["maskedPaths"] = json!([]);
    spec["linux"]["readonlyPaths"] = json!([]);
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }
    spec["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"}]);
    spec
}
