//! Id-mapped bind mounts: `idmap`/`ridmap` options and per-mount `uidMappings`/`gidMappings`.
//!
//! The kernel id-maps only a detached mount (open_tree(2) with OPEN_TREE_CLONE), and only
//! for a caller that holds CAP_SYS_ADMIN over the source's superblock, which for a host
//! filesystem means in the host's user namespace: the container's init, inside its own user
//! namespace, cannot. So the runtime makes each such mount before it forks, as runc does:
//! clones the source, gives it the mapping through a user namespace made for it (one per
//! distinct mapping), and init, which inherits the descriptors, moves them into place with
//! move_mount(2) where it would have bind-mounted the source.
//!
//! In a container with a user namespace, every other bind mount's source is cloned here
//! too (without a mapping): init, root of that namespace only, may not reach a source
//! below a directory closed to others (containerd 2.x's sandbox /dev/shm, under its
//! state directory), and runc too opens such sources from the host's side.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Spec};

use super::options::{self, Idmap};
use super::{syscall_err, RootfsError};
use crate::namespaces::id_map_text;
use crate::syscall::Syscall;

/// The detached trees of a container's bind mounts (id-mapped, or plain clones in a
/// container with a user namespace), by index in `mounts`, ready to be moved into place.
#[derive(Debug, Default)]
pub struct BindTrees {
    trees: Vec<(usize, OwnedFd)>,
}

impl BindTrees {
    /// The detached tree for `mounts[index]`, if the runtime made one.
    pub fn tree(&self, index: usize) -> Option<BorrowedFd<'_>> {
        self.trees
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, fd)| fd.as_fd())
    }
}

/// Whether a mount entry asks for an id mapping, and for which of its mounts.
pub fn requested(m: &Mount) -> Option<Idmap> {
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    match opts.idmap {
        Some(i) => Some(i),
        // Mappings alone mean `idmap` (config.md: the mappings are for an id-mapped mount).
        None if m.uid_mappings().is_some() || m.gid_mappings().is_some() => Some(Idmap::Top),
        None => None,
    }
}

/// Where a mount's id mapping comes from.
enum Mapping<'a> {
    /// The mount's own uidMappings and gidMappings, or the container's.
    Maps(&'a [LinuxIdMapping], &'a [LinuxIdMapping]),
    /// The user namespace the container joins.
    Path(&'a Path),
}

/// The mapping of an id-mapped `mounts[i]`: its own, else the container's user namespace's
/// (runc's rule). Errors name the field; spec validation reports them before any of this.
fn mapping<'a>(spec: &'a Spec, m: &'a Mount, i: usize) -> Result<Mapping<'a>, RootfsError> {
    if let (Some(uid), Some(gid)) = (m.uid_mappings(), m.gid_mappings()) {
        return Ok(Mapping::Maps(uid, gid));
    }
    let linux = spec.linux().as_ref();
    let userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::User));
    match userns {
        Some(ns) => match ns.path() {
            Some(p) if !p.as_os_str().is_empty() => Ok(Mapping::Path(p)),
            _ => Ok(Mapping::Maps(
                linux
                    .and_then(|l| l.uid_mappings().as_deref())
                    .unwrap_or_default(),
                linux
                    .and_then(|l| l.gid_mappings().as_deref())
                    .unwrap_or_default(),
            )),
        },
        None => Err(RootfsError::Invalid(format!(
            "mounts[{i}]: an id-mapped mount needs uidMappings and gidMappings, on the mount \
             or from a user namespace in linux.namespaces"
        ))),
    }
}

/// Makes the id-mapped tree of every mount that asks for one, and (a root runtime, a
/// container with a user namespace) a plain clone of every other bind's source; in the
/// runtime, before it forks (see the module's doc).
pub fn prepare(sys: &dyn Syscall, spec: &Spec) -> Result<BindTrees, RootfsError> {
    let mut out = BindTrees::default();
    // One user namespace per distinct mapping, as runc.
    let mut namespaces: HashMap<(String, String), OwnedFd> = HashMap::new();
    let in_userns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    // Not for an unprivileged runtime (rootless), as runc does not: without CAP_SYS_ADMIN
    // over the host's mount namespace OPEN_TREE_CLONE fails (EPERM), and init, then the
    // same user as the runtime, reaches every source the runtime could.
    let clone_binds = in_userns && nix::unistd::geteuid().is_root();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let Some(idmap) = requested(m) else {
            if clone_binds {
                if let Some(tree) = clone_bind_source(sys, m, i)? {
                    out.trees.push((i, tree));
                }
            }
            continue;
        };
        let what = format!(
            "mounts[{i}] (id-mapped bind of {} on {})",
            m.source()
                .as_deref()
                .map(|s| s.display().to_string())
                .unwrap_or_default(),
            m.destination().display()
        );
        let opts = options::parse(m.options().as_deref().unwrap_or_default());
        let source = match m.source().as_deref() {
            Some(s) if super::is_bind(m) => s,
            _ => {
                return Err(RootfsError::Invalid(format!(
                    "{what}: only bind mounts can be id-mapped"
                )))
            }
        };
        let joined;
        let userns = match mapping(spec, m, i)? {
            Mapping::Path(p) => {
                joined = nix::fcntl::open(
                    p,
                    nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|errno| RootfsError::Io {
                    path: p.to_path_buf(),
                    source: errno.into(),
                })?;
                joined.as_fd()
            }
            Mapping::Maps(uid, gid) => {
                let key = (id_map_text(uid), id_map_text(gid));
                if !namespaces.contains_key(&key) {
                    let fd = sys
                        .new_user_namespace(&key.0, &key.1)
                        .map_err(syscall_err(format!("{what}: the mapping's user namespace")))?;
                    namespaces.insert(key.clone(), fd);
                }
                namespaces[&key].as_fd()
            }
        };
        let tree = sys
            .open_tree_clone(source, opts.flags.contains(MsFlags::MS_REC))
            .map_err(syscall_err(what.clone()))?;
        sys.mount_setattr_idmap(tree.as_fd(), idmap == Idmap::Recursive, userns)
            .map_err(|e| {
                let why = if e.errno == Errno::EINVAL {
                    " (the source's filesystem cannot be id-mapped on this kernel)"
                } else {
                    ""
                };
                RootfsError::Invalid(format!("{what}: {e}{why}"))
            })?;
        out.trees.push((i, tree));
    }
    Ok(out)
}

/// A detached clone of a (not id-mapped) bind mount's source, recursive for `rbind`;
/// None for any other mount.
fn clone_bind_source(
    sys: &dyn Syscall,
    m: &Mount,
    i: usize,
) -> Result<Option<OwnedFd>, RootfsError> {
    let source = match m.source().as_deref() {
        Some(s) if super::is_bind(m) => s,
        _ => return Ok(None),
    };
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    let what = format!(
        "mounts[{i}] (bind of {} on {})",
        source.display(),
        m.destination().display()
    );
    sys.open_tree_clone(source, opts.flags.contains(MsFlags::MS_REC))
        .map(Some)
        .map_err(syscall_err(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::recording::{Call, RecordingSyscall};

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({
            "ociVersion": "1.2.0", "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}},
            "linux": {}
        });
        for (k, val) in v.as_object().unwrap() {
            base[k] = val.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn one_namespace_per_mapping_and_the_containers_by_default() {
        let s = spec(serde_json::json!({
            "linux": {
                "namespaces": [{"type": "user"}, {"type": "mount"}],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
            },
            "mounts": [
                {"destination": "/a", "type": "bind", "source": "/src/a", "options": ["rbind", "idmap"]},
                {"destination": "/plain", "type": "bind", "source": "/src/p", "options": ["rbind"]},
                {"destination": "/b", "type": "bind", "source": "/src/b", "options": ["bind", "ridmap"]},
                {"destination": "/c", "type": "bind", "source": "/src/c", "options": ["rbind"],
                 "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                 "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
            ]
        }));
        let sys = RecordingSyscall::default();
        let trees = prepare(&sys, &s).unwrap();
        let container = "0 100000 65536\n".to_string();
        let own = "0 1000 1\n".to_string();
        assert_eq!(
            sys.calls(),
            [
                Call::NewUserNamespace(container.clone(), container),
                Call::OpenTreeClone("/src/a".into(), true),
                Call::MountSetattrIdmap(false),
                // In a user namespace, a plain bind's source is cloned too, unmapped.
                Call::OpenTreeClone("/src/p".into(), true),
                Call::OpenTreeClone("/src/b".into(), false),
                Call::MountSetattrIdmap(true),
                Call::NewUserNamespace(own.clone(), own),
                Call::OpenTreeClone("/src/c".into(), true),
                Call::MountSetattrIdmap(false),
            ]
        );
        assert!((0..4).all(|i| trees.tree(i).is_some()));
    }

    #[test]
    fn plain_binds_are_cloned_only_in_a_user_namespace() {
        let mounts = serde_json::json!([
            {"destination": "/p", "type": "bind", "source": "/src/p", "options": ["bind"]},
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/r", "source": "/src/r", "options": ["rbind", "ro"]}
        ]);
        let sys = RecordingSyscall::default();
        let trees = prepare(&sys, &spec(serde_json::json!({"mounts": mounts.clone()}))).unwrap();
        assert_eq!(sys.calls(), [], "no user namespace: init binds the sources");
        assert!(trees.tree(0).is_none());
        let joined = spec(serde_json::json!({
            "linux": {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]},
            "mounts": mounts
        }));
        let trees = prepare(&sys, &joined).unwrap();
        assert_eq!(
            sys.calls(),
            [
                Call::OpenTreeClone("/src/p".into(), false),
                Call::OpenTreeClone("/src/r".into(), true),
            ]
        );
        assert!(trees.tree(0).is_some() && trees.tree(1).is_none() && trees.tree(2).is_some());
        sys.fail_when(|c| matches!(c, Call::OpenTreeClone(..)), Errno::EACCES);
        let e = prepare(&sys, &joined).unwrap_err().to_string();
        assert!(e.contains("mounts[0]") && e.contains("/src/p"), "{e}");
    }

    #[test]
    fn refused_without_a_mapping_or_on_a_filesystem_mount() {
        let sys = RecordingSyscall::default();
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/a", "type": "bind", "source": "/src", "options": ["rbind", "idmap"]}
        ]}));
        let e = prepare(&sys, &s).unwrap_err().to_string();
        assert!(e.contains("mounts[0]") && e.contains("uidMappings"), "{e}");
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
             "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
             "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
        ]}));
        let e = prepare(&sys, &s).unwrap_err().to_string();
        assert!(e.contains("only bind mounts"), "{e}");
        assert_eq!(sys.calls(), []);
    }

    #[test]
    fn a_filesystem_without_idmap_support_is_named() {
        let sys = RecordingSyscall::default();
        sys.fail_when(|c| matches!(c, Call::MountSetattrIdmap(_)), Errno::EINVAL);
        let s = spec(serde_json::json!({"mounts": [
            {"destination": "/a", "type": "bind", "source": "/src", "options": ["rbind"],
             "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
             "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
        ]}));
        let e = prepare(&sys, &s).unwrap_err().to_string();
        assert!(
            e.contains("/src") && e.contains("cannot be id-mapped"),
            "{e}"
        );
    }
}
