//! What CRIU must be told about a container because it comes from outside the container's
//! mount namespace: the mounts bound in from the host (bind entries, the cgroup
//! directories, /dev's device nodes, /dev/null over masked files), its namespaces joined by
//! path, and its stdio (descriptors.json). The same choices as runc's (criu_linux.go).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::CgroupMount;
use crate::syscall;

/// Name of the file in the images directory listing the init's stdio (runc's name and
/// format: a JSON array of what /proc/PID/fd/0, 1 and 2 link to).
pub const DESCRIPTORS: &str = "descriptors.json";

/// A mount from outside the container: where it is in the container, and its host source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalMount {
    /// Mount point in the container, symlinks in the image resolved.
    pub dest: String,
    /// The host path bound there (what restore binds again).
    pub source: PathBuf,
}

/// The host-bound mounts of a container: `bind` entries, the `cgroup` entry's directories
/// (`cgroups`, as the cgroup manager gives them) and the device nodes (`/dev`'s defaults
/// and `linux.devices`, bound from the host where they could not be made). A device node
/// that was made, not bound, is simply not a mount: CRIU ignores its entry.
pub fn mounts(spec: &Spec, rootfs: &Path, cgroups: &[CgroupMount]) -> Vec<ExternalMount> {
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok();
    let resolve = |dest: &Path| match &root {
        Some(r) => resolve_in(r.as_fd(), rootfs, dest),
        None => clean(dest),
    };
    let mut out = vec![];
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest = resolve(m.destination());
        if crate::rootfs::is_bind(m) {
            if let Some(source) = m.source() {
                out.push(ExternalMount {
                    dest,
                    source: source.clone(),
                });
            }
        } else if matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")) {
            // As rootfs/mounts.rs binds them: the one v2 directory at the destination, else
            // one directory per hierarchy below it (`unified` for a hybrid host's v2 one).
            let only_v2 = cgroups.iter().all(|c| c.name.is_empty());
            for c in cgroups {
                let dest = match (only_v2, c.name.as_str()) {
                    (true, _) => dest.clone(),
                    (false, "") => format!("{dest}/unified"),
                    (false, name) => format!("{dest}/{name}"),
                };
                out.push(ExternalMount {
                    dest,
                    source: c.source.clone(),
                });
            }
        }
    }
    let spec_devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let devices = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ]
    .map(PathBuf::from)
    .into_iter()
    .chain(spec_devices.iter().map(|d| d.path().clone()));
    for path in devices {
        let dest = clean(&path);
        if !out.iter().any(|m| m.dest == dest) {
            out.push(ExternalMount { dest, source: path });
        }
    }
    out
}

/// The `ext_mnt` pairs of a dump: each mount keyed by its own mount point; masked files
/// (those of `linux.maskedPaths` that are files in the running container, seen through
/// /proc/PID/root) keyed `/dev/null`, which is what is bound over them.
pub fn dump_pairs(spec: &Spec, mounts: &[ExternalMount], pid: i32) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = mounts
        .iter()
        .map(|m| (m.dest.clone(), m.dest.clone()))
        .collect();
    for p in masked_paths(spec) {
        let inside = PathBuf::from(format!("/proc/{pid}/root")).join(p.trim_start_matches('/'));
        if std::fs::metadata(&inside).is_ok_and(|m| !m.is_dir()) {
            pairs.push((clean(Path::new(p)), "/dev/null".into()));
        }
    }
    pairs
}

/// The `ext_mnt` pairs of a restore: each key (a mount point) to the host path to bind
/// there, and `/dev/null` for masked files.
pub fn restore_pairs(spec: &Spec, mounts: &[ExternalMount]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = mounts
        .iter()
        .map(|m| (m.dest.clone(), m.source.display().to_string()))
        .collect();
    if !masked_paths(spec).is_empty() {
        pairs.push(("/dev/null".into(), "/dev/null".into()));
    }
    pairs
}

fn masked_paths(spec: &Spec) -> &[String] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
}

/// `dest` as an absolute container path, `..` applied and clamped at `/`.
fn clean(dest: &Path) -> String {
    let mut parts: Vec<&std::ffi::OsStr> = vec![];
    for c in dest.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Path::new("/")
        .join(PathBuf::from_iter(parts))
        .display()
        .to_string()
}

/// `dest` with the rootfs's symlinks resolved inside it (what the mount was made on), as
/// runc resolves it with securejoin; the cleaned path when it does not exist.
fn resolve_in(root: std::os::fd::BorrowedFd<'_>, rootfs: &Path, dest: &Path) -> String {
    let found = syscall::open_in_root(root, dest, OFlag::O_PATH)
        .ok()
        .and_then(|fd| std::fs::read_link(syscall::fd_path(fd.as_fd())).ok());
    match found.as_deref().and_then(|p| p.strip_prefix(rootfs).ok()) {
        Some(rel) => Path::new("/").join(rel).display().to_string(),
        None => clean(dest),
    }
}

/// CRIU's key for a namespace joined by path, which it treats as external (runc's keys).
pub fn ns_key(kind: LinuxNamespaceType) -> Option<&'static str> {
    match kind {
        LinuxNamespaceType::Network => Some("extRootNetNS"),
        LinuxNamespaceType::Pid => Some("extRootPidNS"),
        _ => None,
    }
}

/// CRIU's name of a namespace kind (`join_ns`, `external`).
pub fn ns_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// The namespaces the spec joins by path.
pub fn joined_namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, PathBuf)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|n| n.path().clone().map(|p| (n.typ(), p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn binds_cgroups_and_devices_are_external_and_masked_files_are_dev_null() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data/../data", "type": "none", "source": "/host/data", "options": ["rbind"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
            ],
            "linux": {
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                "maskedPaths": ["/proc/kcore"]
            }
        }));
        let cgroups = [
            CgroupMount {
                name: "memory".into(),
                source: "/sys/fs/cgroup/memory/c".into(),
            },
            CgroupMount {
                name: String::new(),
                source: "/sys/fs/cgroup/unified/c".into(),
            },
        ];
        let m = mounts(&s, Path::new("/nonexistent-rootfs"), &cgroups);
        let pairs: Vec<(&str, &str)> = m
            .iter()
            .map(|m| (m.dest.as_str(), m.source.to_str().unwrap()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("/data", "/host/data"),
                ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/c"),
                ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/c"),
                ("/dev/null", "/dev/null"),
                ("/dev/zero", "/dev/zero"),
                ("/dev/full", "/dev/full"),
                ("/dev/random", "/dev/random"),
                ("/dev/urandom", "/dev/urandom"),
                ("/dev/tty", "/dev/tty"),
                ("/dev/fuse", "/dev/fuse"),
            ]
        );
        let restore = restore_pairs(&s, &m);
        assert_eq!(restore[0], ("/data".into(), "/host/data".into()));
        assert_eq!(
            restore.last().unwrap(),
            &("/dev/null".into(), "/dev/null".into())
        );
        // Dump keys are the mount points themselves.
        let dump = dump_pairs(&s, &m, i32::MAX);
        assert_eq!(dump[0], ("/data".into(), "/data".into()));
        assert_eq!(dump.len(), m.len(), "no such pid: no masked file found");
    }

    #[test]
    fn a_v2_only_cgroup_mount_is_the_destination_itself() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup"}]
        }));
        let cgroups = [CgroupMount {
            name: String::new(),
            source: "/sys/fs/cgroup/c".into(),
        }];
        let m = mounts(&s, Path::new("/nonexistent-rootfs"), &cgroups);
        assert_eq!(m[0].dest, "/sys/fs/cgroup");
        assert_eq!(m[0].source, Path::new("/sys/fs/cgroup/c"));
    }

    #[test]
    fn destinations_resolve_symlinks_inside_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(rootfs.join("run/x")).unwrap();
        std::os::unix::fs::symlink("/run", rootfs.join("var-run")).unwrap();
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [{"destination": "/var-run/x", "type": "bind", "source": "/h", "options": ["bind"]}]
        }));
        assert_eq!(mounts(&s, &rootfs, &[])[0].dest, "/run/x");
    }
}
