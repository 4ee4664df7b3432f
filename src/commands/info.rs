//! Commands about the runtime itself: features, spec.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use runtime_core::spec::CONFIG_FILE;
use serde_json::{json, Value};

/// `features`: the OCI Features structure of this build, generated from runtime-core.
pub fn features() -> Result<()> {
    let v = runtime_core::features::features_json();
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `spec`: writes `BUNDLE/config.json` with `runc spec`'s defaults; never overwrites.
pub fn spec(bundle: &Path, rootless: bool) -> Result<()> {
    match std::fs::metadata(bundle) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("bundle {}: not a directory", bundle.display()),
        Err(e) => return Err(e).with_context(|| format!("bundle {}", bundle.display())),
    }
    let ids = rootless.then(|| (nix::unistd::geteuid(), nix::unistd::getegid()));
    let config = default_spec(ids.map(|(u, g)| (u.as_raw(), g.as_raw())));
    let path = bundle.join(CONFIG_FILE);
    // create_new: O_EXCL, so that an existing file is never replaced, even in a race.
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("File {CONFIG_FILE} exists. Remove it first")
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    let text = serde_json::to_string_pretty(&config)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The config `runc spec` writes (runc 1.1), with this runtime's `ociVersion`. With
/// `rootless = Some((euid, egid))`, the rootless variant: a user namespace mapping root
/// in the container to the caller, no network namespace, no cgroup device rules, `/sys`
/// bind-mounted (sysfs cannot be mounted without a network namespace of one's own) and no
/// `gid=5` for devpts (that group is not mapped).
pub fn default_spec(rootless: Option<(u32, u32)>) -> Value {
    const CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
        "gid=5",
    ];
    let mut sys = json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs",
        "options": ["nosuid", "noexec", "nodev", "ro"] });
    let mut namespaces = vec!["pid", "network", "ipc", "uts", "mount"];
    if rootless.is_some() {
        devpts.retain(|o| *o != "gid=5");
        sys = json!({ "destination": "/sys", "type": "none", "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
        namespaces.retain(|n| *n != "network");
        namespaces.push("user");
    }
    let namespaces: Vec<Value> = namespaces.iter().map(|n| json!({ "type": n })).collect();

    let mut linux = json!({
        "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
        "namespaces": namespaces,
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
            "/proc/scsi"
        ],
        "readonlyPaths": [
            "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
        ]
    });
    if let Some((uid, gid)) = rootless {
        let l = linux.as_object_mut().expect("linux is an object");
        l.remove("resources");
        l.insert(
            "uidMappings".into(),
            json!([{ "containerID": 0, "hostID": uid, "size": 1 }]),
        );
        l.insert(
            "gidMappings".into(),
            json!([{ "containerID": 0, "hostID": gid, "size": 1 }]),
        );
    }

    json!({
        "ociVersion": runtime_core::features::OCI_VERSION_MAX,
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": CAPS,
                "effective": CAPS,
                "permitted": CAPS,
                "ambient": CAPS
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "runc",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": devpts },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            sys,
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": linux
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// runtime-core loads and validates it with no warnings.
    fn valid(v: &Value) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), v.to_string()).unwrap();
        let (_, warnings) = runtime_core::spec::load_with_warnings(dir.path()).expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn default_spec_is_valid() {
        valid(&default_spec(None));
        valid(&default_spec(Some((1000, 1000))));
    }

    #[test]
    fn rootless_differs_as_runc_does() {
        let v = default_spec(Some((1234, 5678)));
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1234);
        assert_eq!(v["linux"]["gidMappings"][0]["hostID"], 5678);
        assert!(v["linux"].get("resources").is_none());
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "user"]);
        assert_eq!(v["mounts"][5]["source"], "/sys");
    }
}
