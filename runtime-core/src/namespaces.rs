//! Linux namespaces of a container: which to create, which to join, and in which process.
//!
//! The user and pid namespaces (and time, which like pid only applies to children) are
//! entered by the intermediate process before it forks init; the rest by init itself.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::syscall::{Syscall, SyscallError};

/// Errors entering namespaces, naming the namespace and path.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// A namespace path could not be opened.
    #[error("linux.namespaces: open {kind} namespace {path}: {errno}")]
    Open {
        /// The namespace type.
        kind: &'static str,
        /// Its path.
        path: PathBuf,
        /// The error.
        errno: nix::errno::Errno,
    },
    /// setns or unshare failed.
    #[error("{kind} namespace: {source}")]
    Enter {
        /// The namespace type.
        kind: &'static str,
        /// The failed call.
        source: SyscallError,
    },
}

/// One namespace to join: its kind and an open file descriptor of it.
#[derive(Debug)]
pub struct Join {
    /// The CLONE_NEW* flag of its type.
    pub flag: CloneFlags,
    /// The namespace, opened before any namespace changes (paths resolve on the host).
    pub fd: OwnedFd,
}

/// The namespaces of a container, resolved from the spec.
#[derive(Debug)]
pub struct Namespaces {
    /// Namespaces to create.
    pub create: CloneFlags,
    /// Namespaces to join, opened up front.
    pub join: Vec<Join>,
    /// `linux.timeOffsets` as /proc/PID/timens_offsets takes them (`CLOCK SECS NANOS`
    /// lines), written by the process that creates the time namespace, before its child
    /// enters it; empty when there are none.
    pub time_offsets: String,
}

/// The clone flag of a namespace type.
pub fn flag(kind: LinuxNamespaceType) -> CloneFlags {
    match kind {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// Every namespace type this runtime can create or join (each has a flag in [`flag`]).
/// This is what `features` reports as `linux.namespaces`.
pub fn supported_types() -> Vec<LinuxNamespaceType> {
    vec![
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Uts,
    ]
}

/// The name of a namespace flag, for messages.
pub fn name(flag: CloneFlags) -> &'static str {
    match flag {
        f if f == CloneFlags::CLONE_NEWNS => "mount",
        f if f == CloneFlags::CLONE_NEWCGROUP => "cgroup",
        f if f == CloneFlags::CLONE_NEWUTS => "uts",
        f if f == CloneFlags::CLONE_NEWIPC => "ipc",
        f if f == CloneFlags::CLONE_NEWUSER => "user",
        f if f == CloneFlags::CLONE_NEWPID => "pid",
        f if f == CloneFlags::CLONE_NEWNET => "network",
        _ => "time",
    }
}

/// The namespaces the intermediate process enters: those that only take effect for children
/// (pid, time), plus user, which must come first so that the rest are owned by it.
pub fn intermediate_flags() -> CloneFlags {
    CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID | flag(LinuxNamespaceType::Time)
}

/// The spec creates a pid namespace for the container (one without a path), so that its
/// processes die with its init.
pub fn has_private_pid_ns(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|list| {
            list.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none())
        })
}

/// The text of /proc/PID/timens_offsets for `linux.timeOffsets`: one `CLOCK SECS NANOS`
/// line per clock (`monotonic`, `boottime`), as runc writes it; sorted, so that the result
/// does not depend on the map's order.
pub fn time_offsets_text(spec: &oci_spec::runtime::Spec) -> String {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return String::new();
    };
    let mut lines: Vec<String> = offsets
        .iter()
        .map(|(clock, o)| {
            format!(
                "{clock} {} {}\n",
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect();
    lines.sort();
    lines.concat()
}

/// The spec lists a mount namespace (new or joined): without one the container's mounts are
/// made in the caller's mount namespace.
pub fn has_mount_ns(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|list| list.iter().any(|n| n.typ() == LinuxNamespaceType::Mount))
}

impl Namespaces {
    /// Resolves the spec's namespaces, opening every `path` now, on the host.
    pub fn from_spec(list: &[LinuxNamespace]) -> Result<Self, NamespaceError> {
        let mut ns = Namespaces {
            create: CloneFlags::empty(),
            join: vec![],
            time_offsets: String::new(),
        };
        for n in list {
            let f = flag(n.typ());
            match n.path() {
                Some(path) => {
                    let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                        .map_err(|errno| NamespaceError::Open {
                            kind: name(f),
                            path: path.clone(),
                            errno,
                        })?;
                    ns.join.push(Join { flag: f, fd });
                }
                None => ns.create |= f,
            }
        }
        Ok(ns)
    }

    /// The namespaces of a running process that differ from ours, to join them all, opened
    /// now (an exec into a container joins those of its init).
    pub fn of_process(pid: nix::unistd::Pid) -> Result<Self, NamespaceError> {
        use std::os::unix::fs::MetadataExt;
        let mut ns = Namespaces {
            create: CloneFlags::empty(),
            join: vec![],
            time_offsets: String::new(),
        };
        for (file, f) in [
            ("user", CloneFlags::CLONE_NEWUSER),
            ("pid", CloneFlags::CLONE_NEWPID),
            ("time", flag(LinuxNamespaceType::Time)),
            ("mnt", CloneFlags::CLONE_NEWNS),
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("net", CloneFlags::CLONE_NEWNET),
            ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ] {
            let theirs = PathBuf::from(format!("/proc/{pid}/ns/{file}"));
            let open_err = |errno| NamespaceError::Open {
                kind: name(f),
                path: theirs.clone(),
                errno,
            };
            let ours = std::fs::metadata(format!("/proc/self/ns/{file}"));
            let same = match (std::fs::metadata(&theirs), ours) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                // A kernel without this namespace type: nothing to join.
                (Err(e), Err(_)) if e.kind() == std::io::ErrorKind::NotFound => true,
                (Err(e), _) => return Err(open_err(crate::syscall::io_errno(&e))),
                (Ok(_), Err(_)) => false,
            };
            if !same {
                let fd = open(&theirs, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                    .map_err(open_err)?;
                ns.join.push(Join { flag: f, fd });
            }
        }
        Ok(ns)
    }

    /// Whether the container gets a namespace of its own of this kind (created or joined).
    pub fn has(&self, f: CloneFlags) -> bool {
        self.create.contains(f) || self.join.iter().any(|j| j.flag == f)
    }

    /// Whether the container creates a new namespace of this kind.
    pub fn creates(&self, f: CloneFlags) -> bool {
        self.create.contains(f)
    }

    /// Joins, then creates, the namespaces among `which`: joins first, because a joined
    /// user namespace must own the namespaces created after it.
    pub fn enter(&self, sys: &dyn Syscall, which: CloneFlags) -> Result<(), NamespaceError> {
        // The user namespace is joined before the others so that we hold capabilities in
        // the namespace that owns them.
        let mut joins: Vec<&Join> = self
            .join
            .iter()
            .filter(|j| which.contains(j.flag))
            .collect();
        joins.sort_by_key(|j| j.flag != CloneFlags::CLONE_NEWUSER);
        for j in joins {
            sys.setns(j.fd.as_fd(), j.flag)
                .map_err(|source| NamespaceError::Enter {
                    kind: name(j.flag),
                    source,
                })?;
        }
        let create = self.create & which;
        // A new user namespace is created alone: the caller must have its id maps written
        // before creating anything it will own.
        for f in [
            CloneFlags::CLONE_NEWUSER,
            create - CloneFlags::CLONE_NEWUSER,
        ] {
            let f = f & create;
            if !f.is_empty() {
                sys.unshare(f).map_err(|source| NamespaceError::Enter {
                    kind: name(f),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

/// The text of a user namespace's id map file (uid_map, gid_map): one
/// `container host size` line per mapping.
pub fn id_map_text(maps: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::recording::{Call, RecordingSyscall};

    fn spec_ns(json: &str) -> Vec<LinuxNamespace> {
        serde_json::from_str(json).unwrap()
    }

    /// A default spec with `namespaces` as linux.namespaces.
    fn spec(namespaces: &str) -> oci_spec::runtime::Spec {
        let mut spec = oci_spec::runtime::Spec::default();
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_namespaces(Some(spec_ns(namespaces)));
        spec.set_linux(Some(linux));
        spec
    }

    #[test]
    fn time_offsets_are_one_line_per_clock() {
        let mut spec = spec(r#"[{"type":"time"}]"#);
        assert_eq!(time_offsets_text(&spec), "");
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_time_offsets(Some(
            serde_json::from_str(
                r#"{"monotonic":{"secs":86400},"boottime":{"secs":-5,"nanosecs":7}}"#,
            )
            .unwrap(),
        ));
        spec.set_linux(Some(linux));
        assert_eq!(
            time_offsets_text(&spec),
            "boottime -5 7\nmonotonic 86400 0\n"
        );
    }

    #[test]
    fn a_mount_namespace_is_one_listed_new_or_joined() {
        assert!(has_mount_ns(&spec(r#"[{"type":"mount"}]"#)));
        assert!(has_mount_ns(&spec(
            r#"[{"type":"mount","path":"/proc/1/ns/mnt"}]"#
        )));
        assert!(!has_mount_ns(&spec(r#"[{"type":"pid"}]"#)));
        assert!(!has_mount_ns(&spec("[]")));
    }

    #[test]
    fn a_private_pid_namespace_is_one_created_without_a_path() {
        assert!(has_private_pid_ns(&spec(
            r#"[{"type":"mount"},{"type":"pid"}]"#
        )));
        // None (the host's), or a pod's joined by path (shareProcessNamespace).
        assert!(!has_private_pid_ns(&spec(r#"[{"type":"mount"}]"#)));
        assert!(!has_private_pid_ns(&spec(
            r#"[{"type":"pid","path":"/proc/1/ns/pid"}]"#
        )));
    }

    #[test]
    fn creates_and_joins_by_path() {
        let ns = Namespaces::from_spec(&spec_ns(
            r#"[{"type":"pid"},{"type":"network","path":"/proc/self/ns/net"},{"type":"mount"}]"#,
        ))
        .unwrap();
        assert_eq!(
            ns.create,
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS
        );
        assert_eq!(ns.join.len(), 1);
        assert!(ns.has(CloneFlags::CLONE_NEWNET));
        assert!(!ns.creates(CloneFlags::CLONE_NEWNET));
    }

    #[test]
    fn own_process_has_nothing_to_join() {
        let me = nix::unistd::getpid();
        let ns = Namespaces::of_process(me).unwrap();
        assert!(ns.join.is_empty() && ns.create.is_empty());
        let e = Namespaces::of_process(nix::unistd::Pid::from_raw(i32::MAX)).unwrap_err();
        assert!(e.to_string().contains("/proc/"), "{e}");
    }

    #[test]
    fn missing_path_names_the_namespace() {
        let e = Namespaces::from_spec(&spec_ns(r#"[{"type":"network","path":"/nonexistent/ns"}]"#))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("network") && e.contains("/nonexistent/ns"),
            "{e}"
        );
    }

    #[test]
    fn joins_before_creating_and_splits_by_process() {
        let ns = Namespaces::from_spec(&spec_ns(
            r#"[{"type":"pid"},{"type":"user"},{"type":"uts"},{"type":"network","path":"/proc/self/ns/net"}]"#,
        ))
        .unwrap();
        let sys = RecordingSyscall::default();
        ns.enter(&sys, intermediate_flags()).unwrap();
        ns.enter(&sys, !intermediate_flags()).unwrap();
        let calls = sys.calls();
        assert_eq!(calls[0], Call::Unshare(CloneFlags::CLONE_NEWUSER));
        assert_eq!(calls[1], Call::Unshare(CloneFlags::CLONE_NEWPID));
        assert!(matches!(calls[2], Call::Setns(_, f) if f == CloneFlags::CLONE_NEWNET));
        assert_eq!(calls[3], Call::Unshare(CloneFlags::CLONE_NEWUTS));
        assert_eq!(calls.len(), 4);
    }

    #[test]
    fn id_map_lines() {
        let maps: Vec<oci_spec::runtime::LinuxIdMapping> = serde_json::from_str(
            r#"[{"containerID":0,"hostID":100000,"size":65536},{"containerID":65536,"hostID":1000,"size":1}]"#,
        )
        .unwrap();
        assert_eq!(id_map_text(&maps), "0 100000 65536\n65536 1000 1\n");
    }
}
