//! The systemd cgroup driver: the container's cgroup is a transient scope unit that systemd
//! creates, as runc's `--systemd-cgroup` does (what kubelet's and Docker's systemd cgroup
//! drivers expect of a runtime).
//!
//! A cgroupsPath `<slice>:<prefix>:<name>` stands for the scope `<prefix>-<name>.scope` in
//! `<slice>` ([`unit`]). Creating the container starts that scope with StartTransientUnit
//! (the container's init as its one process, `Delegate=yes`, accounting on, and the
//! resources systemd has properties for, [`properties`]), waits for the job, then writes
//! every limit to the scope's cgroup files as the cgroupfs driver does, since systemd has
//! no property for many of them (runc writes them all too). Update is SetUnitProperties
//! plus the files; pause, resume, stats, OOM events and the device program are the
//! cgroupfs driver's, on the scope's directory; delete is StopUnit and ResetFailedUnit.
//!
//! Only pure cgroup v2 hosts are supported so far: on v1 systemd rewrites `devices.allow`
//! whenever it re-applies a unit, so device rules must also be given to it as
//! DevicePolicy/DeviceAllow, which this driver does not send yet.
//!
//! D-Bus: a small synchronous client of our own ([`client`], [`wire`]) on systemd's
//! private socket, `/run/systemd/private` (root only, EXTERNAL authentication, no bus
//! daemon; runc's D-Bus library tries the same socket first as root), rather than zbus
//! (5.19, already built for the shim through containerd-shim's cgroups-rs 0.5, but not a
//! dependency of runtime-core or the youki CLI):
//! - containers are created in the shim's zygote, which must stay single-threaded because
//!   it forks; zbus's blocking API runs its connection on an executor thread it starts;
//! - the driver needs four methods and one signal: a few hundred lines of marshalling,
//!   unit-tested byte for byte, against zbus's async runtime, macros and serde stack in a
//!   CLI whose whole peak RSS is under 3 MB;
//! - on the private socket systemd sends JobRemoved to every connection without a
//!   Subscribe or match rule, so waiting for a job is reading the socket until it comes.
//!
//! Each operation (create, update, delete) makes a connection of its own and closes it:
//! systemd sends every private connection all its signals whether read or not, so a
//! long-lived process (the shim) must not keep one idle, and no process-wide state is
//! needed for it.

mod client;
mod properties;
mod unit;
mod wire;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::v2::{self, V2Manager};
use super::{CgroupError, CgroupManager, CgroupMount, FreezerState, Layout, OomWatcher, Stats};
use client::{Connection, Reply};
use unit::Unit;
pub(crate) use unit::{default_path, is_systemd_form};
use wire::Value;

/// systemd's private D-Bus socket.
const PRIVATE_SOCKET: &str = "/run/systemd/private";
/// Exists when systemd is init (what sd_booted(3) checks).
const BOOTED: &str = "/run/systemd/system";
/// How long a D-Bus operation and its job may take (runc waits 30 s for a job).
const TIMEOUT: Duration = Duration::from_secs(30);
/// StartTransientUnit's error for a unit name in use.
const UNIT_EXISTS: &str = "org.freedesktop.systemd1.UnitExists";
/// The error for a unit systemd does not know (any more).
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// Errors of the systemd driver, naming the cgroupsPath, unit or socket concerned.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// The cgroupsPath is not in the systemd form.
    #[error("cgroupsPath {path:?} for the systemd cgroup driver: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// systemd is not init here.
    #[error(
        "cgroupsPath {path:?}: the systemd cgroup driver needs systemd as init, and this host \
         was not booted with systemd (no {BOOTED})"
    )]
    NotBooted {
        /// The path as given.
        path: String,
    },
    /// The host's cgroups are v1 or hybrid.
    #[error(
        "cgroupsPath {path:?}: the systemd cgroup driver supports only pure cgroup v2 hosts so \
         far (this one has v1 controllers)"
    )]
    CgroupV1 {
        /// The path as given.
        path: String,
    },
    /// The socket failed.
    #[error("systemd's socket {}: cannot {what} it: {source}", .socket.display())]
    Io {
        /// The socket.
        socket: PathBuf,
        /// What failed.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// systemd refused our authentication.
    #[error("systemd's socket {}: authentication refused: {answer:?}", .socket.display())]
    Auth {
        /// The socket.
        socket: PathBuf,
        /// What systemd answered.
        answer: String,
    },
    /// A message systemd sent could not be read.
    #[error("D-Bus protocol error: unexpected {0}")]
    Protocol(String),
    /// systemd did not answer in time.
    #[error("no answer from systemd in time: waited for {waiting_for}")]
    Timeout {
        /// What was awaited.
        waiting_for: String,
    },
    /// A method call failed.
    #[error("systemd {method} of {unit}: {name}: {message}")]
    Call {
        /// The method.
        method: String,
        /// The unit.
        unit: String,
        /// The D-Bus error name.
        name: String,
        /// systemd's message.
        message: String,
    },
    /// A job ended other than `done`.
    #[error("systemd job {job} for {unit} ended {result:?}, not \"done\"")]
    Job {
        /// The unit.
        unit: String,
        /// The job's object path.
        job: String,
        /// Its result.
        result: String,
    },
    /// `linux.resources` has no systemd meaning.
    #[error("{unit}: linux.resources: {reason}")]
    Resources {
        /// The unit.
        unit: String,
        /// Why.
        reason: String,
    },
}

/// Whether the cgroup path `path` (as stored for a container) is a systemd unit's: the
/// cgroupfs driver's paths are always absolute.
pub(crate) fn is_unit_path(path: &Path) -> bool {
    !path.is_absolute() && path.to_str().is_some_and(is_systemd_form)
}

/// A container's cgroup as a systemd scope, on a pure cgroup v2 host.
#[derive(Debug)]
pub(crate) struct SystemdManager {
    /// The systemd-form path, as given and stored.
    path: PathBuf,
    unit: Unit,
    /// The scope's cgroup, which this driver writes after systemd made it.
    inner: V2Manager,
    socket: PathBuf,
    /// Set by `create`, taken by the first `add_task`: the scope can only be started with
    /// a process in it.
    pending: Mutex<Option<LinuxResources>>,
}

impl SystemdManager {
    /// The manager for the systemd-form `path` on a host of `layout`.
    pub(crate) fn new(path: &Path, layout: Option<Layout>) -> Result<Self, CgroupError> {
        let text = path.to_string_lossy().into_owned();
        let unit = Unit::parse(&text)?;
        if !Path::new(BOOTED).is_dir() {
            return Err(SystemdError::NotBooted { path: text }.into());
        }
        let Some(Layout::V2 { mount_point }) = layout else {
            return Err(SystemdError::CgroupV1 { path: text }.into());
        };
        Ok(Self {
            path: path.to_path_buf(),
            inner: V2Manager::new(&unit.cgroup(), mount_point)?,
            unit,
            socket: PRIVATE_SOCKET.into(),
            pending: Mutex::new(None),
        })
    }

    /// Runs `f` on a connection to systemd of its own, closed when `f` returns.
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, CgroupError>,
    ) -> Result<T, CgroupError> {
        f(&mut Connection::open(&self.socket, TIMEOUT)?)
    }

    /// The error for systemd's error answer `name`, `message` to `method`.
    fn call_error(&self, method: &str, name: String, message: String) -> SystemdError {
        SystemdError::Call {
            method: method.into(),
            unit: self.unit.name.clone(),
            name,
            message,
        }
    }

    /// The properties for `r` (quota already rounded), or why there are none.
    fn resource_properties(&self, r: &LinuxResources) -> Result<Vec<Value>, CgroupError> {
        let invalid = |reason| SystemdError::Resources {
            unit: self.unit.name.clone(),
            reason,
        };
        let writes = v2::writes(r).map_err(invalid)?;
        Ok(properties::resources(&writes).map_err(invalid)?)
    }

    /// Starts the scope with `pid` in it and waits for systemd to finish the job.
    fn start(&self, pid: Pid, r: &LinuxResources) -> Result<(), CgroupError> {
        let mut props = properties::scope(
            &format!("youki container {}", self.unit.container),
            &self.unit.slice,
            pid.as_raw() as u32,
        );
        props.extend(self.resource_properties(r)?);
        let args = [
            Value::Str(self.unit.name.clone()),
            Value::Str("replace".into()),
            Value::Array("(sv)".into(), props),
            Value::Array("(sa(sv))".into(), Vec::new()),
        ];
        self.with_connection(|conn| {
            let mut retried = false;
            let job = loop {
                // Not made twice: a start that took effect unanswered would fail the second.
                match conn.call("StartTransientUnit", &args, TIMEOUT)? {
                    Reply::Return(m) => break m.body().string()?,
                    // As runc: a unit of that name may be a failed leftover; reset it and
                    // try once more.
                    Reply::Error(name, _) if name == UNIT_EXISTS && !retried => {
                        retried = true;
                        self.reset_failed(conn)?;
                    }
                    Reply::Error(name, message) => {
                        return Err(self.call_error("StartTransientUnit", name, message).into())
                    }
                }
            };
            let result = conn.wait_job(&job)?;
            if result != "done" {
                self.reset_failed(conn)?;
                return Err(SystemdError::Job {
                    unit: self.unit.name.clone(),
                    job,
                    result,
                }
                .into());
            }
            Ok(())
        })?;
        // systemd enables in the slices only the controllers it uses (not cpuset, hugetlb,
        // rdma, misc): enable the rest, as runc creates the path again after the start.
        self.inner.create_dirs(None)?;
        self.inner.update(r)
    }

    /// ResetFailedUnit: a failed unit stays loaded (and its name taken) until reset.
    fn reset_failed(&self, conn: &mut Connection) -> Result<(), SystemdError> {
        let unit = [Value::Str(self.unit.name.clone())];
        match conn.call("ResetFailedUnit", &unit, TIMEOUT)? {
            Reply::Error(name, message) if name != NO_SUCH_UNIT => {
                log::debug!("ResetFailedUnit {}: {name}: {message}", self.unit.name);
            }
            _ => {}
        }
        Ok(())
    }
}

impl CgroupManager for SystemdManager {
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let r = properties::round_quota(resources.unwrap_or(&LinuxResources::default()));
        // Checked now, before anything exists.
        self.resource_properties(&r)?;
        if let Some(rules) = r.devices() {
            super::check_device_rules(rules)?;
        }
        // The container's init binds the scope's directory before it is moved in
        // (`mounts`), so the directory exists before the scope: systemd adopts it.
        self.inner.create_dirs(None)?;
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        Ok(())
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let r = properties::round_quota(resources);
        let props = self.resource_properties(&r)?;
        if !props.is_empty() {
            let args = [
                Value::Str(self.unit.name.clone()),
                // runtime: not written to /etc, gone with the unit.
                Value::Bool(true),
                Value::Array("(sv)".into(), props),
            ];
            self.with_connection(
                |conn| match conn.call("SetUnitProperties", &args, TIMEOUT)? {
                    Reply::Error(name, message) => {
                        Err(self.call_error("SetUnitProperties", name, message).into())
                    }
                    Reply::Return(_) => Ok(()),
                },
            )?;
        }
        self.inner.update(&r)
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match pending {
            Some(r) => self.start(pid, &r),
            // An exec'd process joins the running scope's cgroup, as with runc.
            None => self.inner.add_task(pid),
        }
    }

    fn can_join_self(&self) -> bool {
        // The scope is started with init's pid by the parent.
        false
    }

    fn join_self(&self, born: bool) -> Result<(), CgroupError> {
        self.inner.join_self(born)
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        self.inner.pids()
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let args = [
            Value::Str(self.unit.name.clone()),
            Value::Str("replace".into()),
        ];
        self.with_connection(|conn| {
            // A scope whose processes are all gone has stopped, and systemd has collected
            // it: nothing to stop (StopUnit would load the unit again, to stop nothing).
            let unit = [Value::Str(self.unit.name.clone())];
            match conn.call("GetUnit", &unit, TIMEOUT)? {
                Reply::Error(name, _) if name == NO_SUCH_UNIT => return Ok(()),
                Reply::Error(name, message) => {
                    return Err(self.call_error("GetUnit", name, message).into())
                }
                Reply::Return(_) => {}
            }
            match conn.call("StopUnit", &args, TIMEOUT)? {
                Reply::Return(m) => {
                    let job = m.body().string()?;
                    let result = conn.wait_job(&job)?;
                    if result != "done" {
                        log::warn!("stopping {}: job {job} ended {result:?}", self.unit.name);
                    }
                }
                // Gone already: a scope stops by itself when its last process exits.
                Reply::Error(name, _) if name == NO_SUCH_UNIT => {}
                Reply::Error(name, message) => {
                    return Err(self.call_error("StopUnit", name, message).into())
                }
            }
            Ok(self.reset_failed(conn)?)
        })?;
        // The directory `create` made for a scope that never started.
        self.inner.remove()
    }

    fn mounts(&self) -> Vec<CgroupMount> {
        self.inner.mounts()
    }

    fn path(&self) -> &Path {
        &self.path
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
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    use super::client::tests::{accept, next_call, reply};
    use super::*;

    #[test]
    fn unit_paths_are_told_from_cgroupfs_paths() {
        assert!(is_unit_path(Path::new("system.slice:youki:c1")));
        assert!(is_unit_path(Path::new(":youki:c1")));
        assert!(!is_unit_path(Path::new("/youki/c1")));
        assert!(!is_unit_path(Path::new("/a:b:c")));
        assert!(!is_unit_path(Path::new("youki/c1")));
    }

    /// The checks that run before anything is made, in runc's order: the path's form,
    /// then systemd, then the cgroup layout.
    #[test]
    fn refusals_before_anything_exists() {
        let v2 = || {
            Some(Layout::V2 {
                mount_point: "/sys/fs/cgroup".into(),
            })
        };
        let e = SystemdManager::new(Path::new("/youki/c1"), v2()).expect_err("form");
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
        let booted = Path::new(BOOTED).is_dir();
        match SystemdManager::new(Path::new("system.slice:youki:c1"), v2()) {
            Err(CgroupError::Systemd(SystemdError::NotBooted { .. })) => assert!(!booted),
            Ok(m) => {
                assert!(booted);
                assert_eq!(m.path(), Path::new("system.slice:youki:c1"));
                assert_eq!(
                    m.mounts()[0].source,
                    PathBuf::from("/sys/fs/cgroup/system.slice/youki-c1.scope")
                );
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// A scope systemd has collected (its processes all gone) is not stopped: StopUnit
    /// would load it again.
    #[test]
    fn a_collected_scope_is_not_stopped() {
        let (m, listener, _dir) = manager_on_test_socket();
        let peer = std::thread::spawn(move || {
            let mut c = accept(&listener);
            let call = next_call(&mut c);
            c.get_mut().write_all(&gone(1)).expect("answer");
            vec![call]
        });
        m.remove().expect("remove");
        assert_eq!(members(peer.join().expect("peer")), ["GetUnit"]);
    }

    /// A manager of `system.slice:youki:c1` talking to a socket of the test's.
    fn manager_on_test_socket() -> (SystemdManager, UnixListener, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("private");
        let listener = UnixListener::bind(&socket).expect("bind");
        let m = SystemdManager {
            path: "system.slice:youki:c1".into(),
            unit: Unit::parse("system.slice:youki:c1").expect("unit"),
            inner: V2Manager::new(Path::new("/c1"), dir.path().join("cgroup")).expect("v2"),
            socket,
            pending: Mutex::new(None),
        };
        (m, listener, dir)
    }

    /// systemd's answer to call `serial` about a unit it does not know.
    fn gone(serial: u32) -> Vec<u8> {
        reply(
            3,
            serial,
            Some(NO_SUCH_UNIT),
            "s",
            &[Value::Str("not loaded".into())],
        )
    }

    fn members(calls: Vec<wire::Message>) -> Vec<String> {
        calls
            .into_iter()
            .map(|c| c.member.unwrap_or_default())
            .collect()
    }
}
