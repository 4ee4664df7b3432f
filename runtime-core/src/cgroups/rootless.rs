//! cgroups for a runtime without privileges over cgroupfs (rootless), as runc's
//! `--rootless` cgroup handling does.
//!
//! An unprivileged user usually may not create cgroups. runc then runs the container
//! without one when the spec names no cgroupsPath and asks for no limit (its fs manager
//! drops a hierarchy whose Apply fails with EPERM, EACCES or EROFS; fs2 returns
//! ErrRootless), refuses a limit it cannot honour ("cannot set ... limit: container could
//! not join or create cgroup"), and fails on a cgroupsPath it may not create.
//! Device rules are not enforced (runc ignores the devices controller's errors when
//! rootless): in a user namespace no device can be created anyway, only bound from the host.
//! A cgroup the user may create (a delegated v2 subtree) is used as usual.
//!
//! [`RootlessManager`] wraps the manager of the host's layout with those rules; the
//! decision stays here, so v1 and v2 need not know about it.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::{CgroupError, CgroupManager, CgroupMount, FreezerState, OomWatcher, Stats};

/// Whether cgroups are handled as rootless: one choice per process, as runc's global
/// `--rootless` flag makes it.
static ROOTLESS: AtomicBool = AtomicBool::new(false);

/// Where the kernel lists this process's cgroups.
const PROC_SELF_CGROUP: &str = "/proc/self/cgroup";

/// Makes [`super::manager`] tolerate cgroups it may not create from now on.
pub fn use_rootless_cgroups() {
    ROOTLESS.store(true, Ordering::Relaxed);
}

/// Whether [`use_rootless_cgroups`] was called.
pub(super) fn enabled() -> bool {
    ROOTLESS.load(Ordering::Relaxed)
}

/// The default cgroup of a rootless container on pure v2, as runc's fs2 driver picks it
/// when no cgroupsPath is given: `<id>` beside the caller's own cgroup (in its parent, which
/// in a systemd user session is the delegated subtree the user may write). `None` when the
/// caller's v2 cgroup is unknown or the root.
pub(super) fn default_v2_path(proc_self_cgroup: &str, id: &str) -> Option<PathBuf> {
    let own = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(Path::new)?;
    let parent = own.parent().filter(|p| *p != Path::new("/"))?;
    Some(parent.join(id))
}

/// Reads [`PROC_SELF_CGROUP`] for [`default_v2_path`]; empty if it cannot be read.
pub(super) fn own_cgroups() -> String {
    std::fs::read_to_string(PROC_SELF_CGROUP).unwrap_or_else(|e| {
        log::debug!("reading {PROC_SELF_CGROUP}: {e}");
        String::new()
    })
}

/// A manager that runs a container without its cgroup when the cgroup cannot be made and
/// nothing needs it.
pub(super) struct RootlessManager {
    inner: Box<dyn CgroupManager>,
    /// Whether the path is the runtime's default (no cgroupsPath in the spec): only then is
    /// a cgroup that cannot be made skipped, as runc skips it only without a cgroupsPath.
    default_path: bool,
    /// Set by `create` when the cgroup was skipped; init (forked after it) reads it too.
    skipped: Cell<bool>,
    /// With the cgroup skipped, the caller's own cgroups, bound into the container instead
    /// (runc binds the cgroup init is in, which is then the caller's).
    own_mounts: RefCell<Vec<CgroupMount>>,
}

impl RootlessManager {
    /// Wraps the manager of the host's layout; `default_path`: see the field.
    pub(super) fn new(inner: Box<dyn CgroupManager>, default_path: bool) -> Self {
        Self {
            inner,
            default_path,
            skipped: Cell::new(false),
            own_mounts: RefCell::new(Vec::new()),
        }
    }
}

/// Whether the error is the kernel refusing an unprivileged user (runc's isIgnorableError).
fn refused(e: &CgroupError) -> bool {
    errno(e).is_some_and(|n| matches!(n, Errno::EPERM | Errno::EACCES | Errno::EROFS))
}

/// Whether the error says the cgroup does not exist: a later command on a container whose
/// cgroup was skipped.
fn absent(e: &CgroupError) -> bool {
    errno(e) == Some(Errno::ENOENT)
}

/// The errno of a cgroupfs I/O error, if `e` is one.
fn errno(e: &CgroupError) -> Option<Errno> {
    let source = match e {
        CgroupError::CreateDir { source, .. }
        | CgroupError::Write { source, .. }
        | CgroupError::Read { source, .. }
        | CgroupError::Remove { source, .. } => source,
        _ => return None,
    };
    source.raw_os_error().map(Errno::from_raw)
}

/// `resources` without device rules, which a rootless runtime does not enforce.
fn without_devices(resources: Option<&LinuxResources>) -> LinuxResources {
    let mut r = resources.cloned().unwrap_or_default();
    r.set_devices(None);
    r
}

/// The sections of `resources` (device rules aside) that ask for a limit: those with a
/// value, not only empty lists and objects (`memory`, `pids`, ...).
fn limits_asked(resources: &LinuxResources) -> Vec<String> {
    fn has_value(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => false,
            serde_json::Value::Array(a) => a.iter().any(has_value),
            serde_json::Value::Object(o) => o.values().any(has_value),
            _ => true,
        }
    }
    match serde_json::to_value(without_devices(Some(resources))) {
        Ok(serde_json::Value::Object(o)) => o
            .iter()
            .filter(|(_, v)| has_value(v))
            .map(|(k, _)| k.clone())
            .collect(),
        // Serializing a plain data struct does not fail; if it did, assume a limit.
        _ => vec!["(unreadable)".into()],
    }
}

/// The caller's own cgroup directories matching `mounts` (the container's), read from a
/// `/proc/self/cgroup` text: the hierarchy's mount point joined with the caller's path in
/// it. `rel` is the container's cgroup path relative to each hierarchy's root.
fn own_mounts(mounts: &[CgroupMount], rel: &Path, proc_self_cgroup: &str) -> Vec<CgroupMount> {
    let depth = rel.components().count();
    mounts
        .iter()
        .filter_map(|m| {
            let mount_point = m.source.ancestors().nth(depth)?;
            let own = proc_self_cgroup.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                let matches = if m.name.is_empty() {
                    controllers.is_empty()
                } else {
                    controllers == m.name
                        || controllers
                            .split(',')
                            .any(|c| c == m.name || c.strip_prefix("name=") == Some(&m.name))
                };
                matches.then_some(path)
            })?;
            Some(CgroupMount {
                name: m.name.clone(),
                source: mount_point.join(own.trim_start_matches('/')),
            })
        })
        .collect()
}

impl CgroupManager for RootlessManager {
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let wanted = without_devices(resources);
        let e = match self.inner.create(Some(&wanted)) {
            Err(e) if refused(&e) && self.default_path => e,
            r => return r,
        };
        // Take away whatever part of it was made before the refusal.
        if let Err(re) = self.inner.remove() {
            log::debug!("rootless: removing the partly created cgroup: {re}");
        }
        let asked = limits_asked(&wanted);
        if !asked.is_empty() {
            let fields: Vec<String> = asked
                .iter()
                .map(|k| format!("linux.resources.{k}"))
                .collect();
            return Err(CgroupError::Other {
                path: self.inner.path().to_path_buf(),
                msg: format!(
                    "cannot set {}: the container could not create or join its cgroup ({e}); \
                     without privileges over cgroupfs (rootless), limits need a cgroup \
                     delegated to the user",
                    fields.join(", ")
                ),
            });
        }
        log::debug!("rootless: running the container without a cgroup of its own: {e}");
        let rel = super::relative(self.inner.path())?;
        *self.own_mounts.borrow_mut() = own_mounts(&self.inner.mounts(), &rel, &own_cgroups());
        self.skipped.set(true);
        Ok(())
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.inner.update(&without_devices(Some(resources)))
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        if self.skipped.get() {
            return Ok(());
        }
        match self.inner.add_task(pid) {
            // An exec into a container created without a cgroup: there is none to join.
            Err(e) if absent(&e) || refused(&e) => {
                log::debug!("rootless: process {pid} joins no cgroup: {e}");
                Ok(())
            }
            r => r,
        }
    }

    fn can_join_self(&self) -> bool {
        // main moves the process (add_task), where a missing cgroup is tolerated.
        false
    }

    fn join_self(&self, _born: bool) -> Result<(), CgroupError> {
        self.add_task(Pid::this())
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        if self.skipped.get() {
            return Ok(Vec::new());
        }
        match self.inner.pids() {
            Err(e) if absent(&e) => Ok(Vec::new()),
            r => r,
        }
    }

    fn remove(&self) -> Result<(), CgroupError> {
        self.inner.remove()
    }

    fn mounts(&self) -> Vec<CgroupMount> {
        if self.skipped.get() {
            return self.own_mounts.borrow().clone();
        }
        self.inner.mounts()
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        self.inner.freeze()
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        self.inner.thaw()
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        self.inner.freezer_state()
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        self.inner.stats()
    }

    fn oom_watcher(&self) -> Result<OomWatcher, CgroupError> {
        self.inner.oom_watcher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_values_not_empty_sections() {
        let r = |j: &str| -> LinuxResources { serde_json::from_str(j).expect("json") };
        assert!(limits_asked(&r("{}")).is_empty());
        assert!(limits_asked(&r(
            r#"{"devices": [{"allow": false, "access": "rwm"}], "memory": {}, "hugepageLimits": []}"#
        ))
        .is_empty());
        assert_eq!(
            limits_asked(&r(
                r#"{"pids": {"limit": 10}, "memory": {"limit": 1048576}}"#
            )),
            ["memory", "pids"]
        );
    }

    #[test]
    fn v2_default_is_beside_the_callers_cgroup() {
        let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope\n";
        assert_eq!(
            default_v2_path(own, "c1"),
            Some(PathBuf::from(
                "/user.slice/user-1000.slice/user@1000.service/app.slice/c1"
            ))
        );
        assert_eq!(default_v2_path("0::/\n", "c1"), None);
        assert_eq!(default_v2_path("0::/x.scope\n", "c1"), None);
        assert_eq!(default_v2_path("4:cpu:/a/b\n", "c1"), None);
    }

    #[test]
    fn skipped_cgroup_binds_the_callers_own() {
        let container = [
            CgroupMount {
                name: "cpu".into(),
                source: "/sys/fs/cgroup/cpu/youki/c1".into(),
            },
            CgroupMount {
                name: "systemd".into(),
                source: "/sys/fs/cgroup/systemd/youki/c1".into(),
            },
            CgroupMount {
                name: "cpu,cpuacct".into(),
                source: "/sys/fs/cgroup/cpu,cpuacct/youki/c1".into(),
            },
        ];
        let own = "3:cpu:/a\n1:name=systemd:/session-1.scope\n12:cpu,cpuacct:/user.slice\n0::/\n";
        let got = own_mounts(&container, Path::new("youki/c1"), own);
        let sources: Vec<&Path> = got.iter().map(|m| m.source.as_path()).collect();
        assert_eq!(
            sources,
            [
                Path::new("/sys/fs/cgroup/cpu/a"),
                Path::new("/sys/fs/cgroup/systemd/session-1.scope"),
                Path::new("/sys/fs/cgroup/cpu,cpuacct/user.slice"),
            ]
        );
        let v2 = [CgroupMount {
            name: String::new(),
            source: "/sys/fs/cgroup/youki/c1".into(),
        }];
        let got = own_mounts(&v2, Path::new("youki/c1"), "0::/user.slice/u.scope\n");
        assert_eq!(
            got[0].source,
            Path::new("/sys/fs/cgroup/user.slice/u.scope")
        );
    }
}
