//! The OCI operations on a container, on one handle: [`Container`].
//!
//! [`create`] makes a container and [`Container::load`] opens one; the handle holds its
//! state, its status, its lock when needed and one cgroup manager, and each operation
//! (start, kill, pause, resume, update, stats, pids, events, exec, delete) is a method in
//! a file of its own. A handle from [`Container::load`] holds the container's lock for as
//! long as it lives, as one runtime command does; one without it ([`create`]'s,
//! [`Container::peek`]'s, or after [`Container::unlock`]) takes the lock for each
//! operation and first re-reads the state another process may have written since.

mod binding;
mod create;
mod delete;
mod events;
mod exec;
mod kill;
mod pause;
mod pids;
mod resume;
mod start;
mod stats;
mod update;

pub use create::{create, CreateOptions};
pub use delete::delete;
pub use events::Event;
pub use exec::ExecOptions;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::cgroups::{self, CgroupError, CgroupManager};
use crate::hooks::HookError;
use crate::process::ProcessError;
use crate::rootfs::RootfsError;
use crate::spec::SpecError;
use crate::state::{self, Entry, State, StateError, Status, Store};
use crate::syscall::SyscallError;

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The bundle or its config.json is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Stored state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Creating the processes failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// cgroup management failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// A syscall failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// The mounts of a container without a mount namespace could not be undone.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The operation is not allowed in the container's current status.
    #[error("container {id} is {status}: {what}")]
    WrongStatus {
        /// The container.
        id: String,
        /// Its status.
        status: Status,
        /// What was refused.
        what: &'static str,
    },
    /// Something the request asks for is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// A file the operation writes (pid file, fifo) failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The pid file could not be written.
    #[error("pid file {}: {source}", .path.display())]
    PidFile {
        /// The pid file asked for.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The init process did not take the start signal.
    #[error("container {id}: {why}")]
    Start {
        /// The container.
        id: String,
        /// What happened.
        why: String,
    },
}

/// One container: its stored state, its live status, its lock while held, and its cgroup
/// manager (made once, on first use).
pub struct Container {
    store: Store,
    state: State,
    status: Status,
    /// The container's lock, while this handle holds it.
    entry: Option<Entry>,
    cgroup: OnceCell<Box<dyn CgroupManager>>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("state", &self.state)
            .field("status", &self.status)
            .field("locked", &self.entry.is_some())
            .finish()
    }
}

impl Container {
    /// Opens container `id` and takes its lock, held until the handle is dropped (or
    /// [`Container::unlock`]ed): the state read and the status as it is now.
    pub fn load(store: &Store, id: &str) -> Result<Container, ContainerError> {
        let entry = store.open(id)?;
        let state = read(&entry)?;
        let mut c = Container::new(store, state, Some(entry));
        c.refresh();
        Ok(c)
    }

    /// The container's state, read without waiting for its lock: `creating` while a create
    /// works on it, `stopped` if that create died (what is left goes with `delete`).
    pub fn peek(store: &Store, id: &str) -> Result<Container, ContainerError> {
        let peek = store.peek(id)?;
        let state = peek.state.unwrap_or_else(|| State::unfinished(id));
        let mut c = Container::new(store, state, None);
        match c.state.status {
            Status::Creating if peek.busy => c.status = Status::Creating,
            Status::Creating => c.status = Status::Stopped,
            _ => c.refresh(),
        }
        Ok(c)
    }

    /// A handle on `state` as its operation stands: `entry` the lock if held.
    fn new(store: &Store, state: State, entry: Option<Entry>) -> Container {
        Container {
            store: store.clone(),
            status: state.status,
            state,
            entry,
            cgroup: OnceCell::new(),
        }
    }

    /// A handle without the lock on a container an operation of this crate just made
    /// (restore), with the cgroup manager it used.
    pub(crate) fn made(store: &Store, state: State, cgroup: Box<dyn CgroupManager>) -> Container {
        let c = Container::new(store, state, None);
        let _ = c.cgroup.set(cgroup);
        c
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// The stored state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The status when last refreshed.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The init process (as the runtime's pid namespace sees it).
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.state.pid)
    }

    /// Re-derives the status as the kernel sees it now: a dead init means stopped whatever
    /// was stored; frozen before created, as runc decides (a created container can be
    /// paused).
    pub fn refresh(&mut self) {
        self.status = if !state::init_alive(&self.state) {
            Status::Stopped
        } else if self.is_frozen() {
            Status::Paused
        } else if self.fifo().exists() {
            Status::Created
        } else {
            Status::Running
        };
    }

    /// Lets go of the container's lock: other commands can act on it while this handle
    /// lives, and each operation of the handle takes the lock for itself.
    pub fn unlock(&mut self) {
        self.entry = None;
    }

    /// The container's cgroup manager, made on first use.
    pub(crate) fn cgroup(&self) -> Result<&dyn CgroupManager, CgroupError> {
        if let Some(m) = self.cgroup.get() {
            return Ok(m.as_ref());
        }
        let m = cgroups::manager(&self.state.cgroup_path)?;
        Ok(self.cgroup.get_or_init(|| m).as_ref())
    }

    /// The exec fifo `start` opens.
    fn fifo(&self) -> PathBuf {
        self.store
            .root()
            .join(&self.state.id)
            .join(state::EXEC_FIFO)
    }

    /// Whether the cgroup is frozen (or freezing): the kernel's word, whoever froze it; the
    /// stored status only when the freezer cannot be read.
    fn is_frozen(&self) -> bool {
        match self.cgroup().and_then(|m| m.freezer_state()) {
            Ok(s) => s != cgroups::FreezerState::Thawed,
            Err(e) => {
                log::debug!("container {}: freezer state: {e}", self.state.id);
                self.state.status == Status::Paused
            }
        }
    }

    /// Runs `op` holding the container's lock, with the status as it is now. A handle
    /// without the lock takes it for the operation and first re-reads the state, which
    /// another process may have written since.
    fn locked<T>(
        &mut self,
        op: impl FnOnce(&mut Self) -> Result<T, ContainerError>,
    ) -> Result<T, ContainerError> {
        let held = self.entry.is_some();
        if !held {
            let entry = self.store.open(&self.state.id)?;
            self.state = read(&entry)?;
            self.entry = Some(entry);
        }
        self.refresh();
        let result = op(self);
        if !held {
            self.entry = None;
        }
        result
    }

    /// The lock's entry; only inside [`Container::locked`].
    fn entry(&self) -> Result<&Entry, ContainerError> {
        self.entry
            .as_ref()
            .ok_or_else(|| ContainerError::Unsupported("internal: the lock is not held".into()))
    }

    /// Writes the state (the lock held).
    fn save(&self) -> Result<(), ContainerError> {
        Ok(self.entry()?.save(&self.state)?)
    }

    /// Refuses the operation `what` unless the status is one of `allowed`.
    pub(crate) fn require(
        &self,
        allowed: &[Status],
        what: &'static str,
    ) -> Result<(), ContainerError> {
        if allowed.contains(&self.status) {
            return Ok(());
        }
        Err(ContainerError::WrongStatus {
            id: self.state.id.clone(),
            status: self.status,
            what,
        })
    }

    /// The OCI state document in `status`, for hooks.
    fn oci_state_bytes(&self, status: Status) -> Vec<u8> {
        oci_state_bytes(&self.state, status)
    }
}

/// Every container in the store, half-created ones included (see [`Container::peek`]).
/// Containers whose state cannot be read are skipped.
pub fn list(store: &Store) -> Result<Vec<Container>, ContainerError> {
    let mut out = vec![];
    for id in store.ids()? {
        match Container::peek(store, &id) {
            Ok(c) => out.push(c),
            Err(e) => log::debug!("list: skipping {id}: {e}"),
        }
    }
    Ok(out)
}

/// The state of the locked `entry`; a container whose create stopped before it wrote one
/// does not exist for the operations (only `delete` removes it).
fn read(entry: &Entry) -> Result<State, ContainerError> {
    Ok(entry
        .load()?
        .ok_or_else(|| StateError::NotFound(entry.id().to_string()))?)
}

/// A terminal needs a console socket to send its master to, and a console socket is only
/// for a terminal: runc refuses both mismatches.
fn check_console(terminal: bool, console: bool) -> Result<(), ContainerError> {
    match (terminal, console) {
        (true, false) => Err(ContainerError::Unsupported(
            "process.terminal is true: a --console-socket is needed to receive the terminal".into(),
        )),
        (false, true) => Err(ContainerError::Unsupported(
            "--console-socket given but process.terminal is false".into(),
        )),
        _ => Ok(()),
    }
}

/// Writes the pid file atomically, as runc does, so readers never see it half-written.
pub(crate) fn write_pid_file(path: &Path, pid: Pid) -> Result<(), ContainerError> {
    let io = |source| ContainerError::PidFile {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.as_raw().to_string()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The OCI state document of `st` in `status`, as hooks read it on stdin.
fn oci_state_bytes(st: &State, status: Status) -> Vec<u8> {
    serde_json::to_vec(&st.oci_json(status)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state of container `id` whose "init" is `pid`, in a cgroup that does not exist.
    fn stored(store: &Store, id: &str, pid: i32) {
        let mut st = State::unfinished(id);
        st.pid = pid;
        st.init_start_time = state::proc_stat(pid).map_or(0, |s| s.start_time);
        st.status = Status::Running;
        st.cgroup_path = format!("/youki-core-test-no-such-cgroup/{id}").into();
        store.create(id).unwrap().save(&st).unwrap();
    }

    #[test]
    fn a_loaded_handle_holds_the_lock_until_unlocked_then_locks_per_operation() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        // This test process stands for the init: alive, so the container runs.
        stored(&store, "c1", std::process::id() as i32);
        let mut c = Container::load(&store, "c1").unwrap();
        assert_eq!(c.status(), Status::Running);
        assert!(store.peek("c1").unwrap().busy);
        c.unlock();
        assert!(!store.peek("c1").unwrap().busy);
        // Another command writes the state meanwhile: the next operation reads it anew.
        let mut other = Container::load(&store, "c1").unwrap();
        other.state.annotations.insert("k".into(), "v".into());
        other.save().unwrap();
        drop(other);
        c.kill(0, false).unwrap();
        assert_eq!(
            c.state().annotations.get("k").map(String::as_str),
            Some("v")
        );
        assert!(
            !store.peek("c1").unwrap().busy,
            "the operation let go of the lock"
        );
    }

    #[test]
    fn a_stopped_container_refuses_what_needs_it_alive_and_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        // No such process: init has exited.
        stored(&store, "c2", i32::MAX);
        let mut c = Container::load(&store, "c2").unwrap();
        assert_eq!(c.status(), Status::Stopped);
        let refused = |r: Result<(), ContainerError>| {
            assert!(
                matches!(
                    r,
                    Err(ContainerError::WrongStatus {
                        status: Status::Stopped,
                        ..
                    })
                ),
                "{r:?}"
            )
        };
        refused(c.kill(9, false));
        refused(c.start());
        refused(c.pause());
        refused(c.resume());
        refused(c.stats().map(drop));
        refused(c.update(&Default::default()));
        // Its cgroup is gone already: delete removes the state.
        c.delete(false).unwrap();
        assert!(store.ids().unwrap().is_empty());
        assert!(matches!(
            Container::load(&store, "c2"),
            Err(ContainerError::State(StateError::NotFound(_)))
        ));
    }
}
