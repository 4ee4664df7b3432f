//! The tasks the shim serves, over runtime-core: what the Task service's RPCs do.
//!
//! Every task is one container with its init process and its exec processes. The server
//! keeps the tasks in memory; runtime-core keeps each container's state in
//! `<bundle>/.youki`, so that the `delete` command can clean up after a shim that died.
//! Operations that fork (create, exec, start, delete, checkpoint) run in the zygote; the
//! others (kill, pause, resume, update, stats, pids) read or write the kernel's files from
//! the server.
//!
//! The modules, from the bottom: `process` (one process's life: created, starting,
//! running, exited, stopped), `table` (the tasks by id and pid), `exits` (what the reaper
//! reports, and the Waits), then one module per operation: `create` (Create and the init's
//! Start), `exec` (Exec, its Start and Delete), `delete` (Delete of a task, and of a dead
//! shim's), `control` (everything else). service.rs maps the ttrpc calls onto them.

mod control;
mod create;
mod delete;
mod exec;
mod exits;
mod process;
mod table;
#[cfg(test)]
mod testing;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use runtime_core::container::{Container as Handle, ContainerError};
use runtime_core::state::Store;

use crate::error::{Kind, Result, ShimError};
use crate::events::Events;
use crate::shim::ExitSignal;
use crate::zygote::{Reply, Zygote};

pub use delete::cleanup_dead_shim;
pub use process::Exit;

use table::Table;

/// runtime-core's state root, inside the bundle.
const STATE_DIR: &str = ".youki";
/// How long shutdown waits for queued events to reach containerd.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// runtime-core's state root for a bundle.
fn state_root(bundle: &Path) -> PathBuf {
    bundle.join(STATE_DIR)
}

/// A task's runtime-core handle, in its table entry.
type HandleSlot = Arc<Mutex<Option<Handle>>>;

/// Runs `op` on the runtime-core handle in `slot` of container `id` of `bundle`, outside
/// the table's lock. The server's first operation opens it from the container's state
/// (written by the zygote, whose create or start it may follow); it is kept without the
/// container's lock, so each operation takes the lock and re-reads the state, while the
/// handle's one cgroup manager serves the task's whole life (kubelet asks for statistics
/// every few seconds).
///
/// The handle leaves the slot while `op` runs: `op` may wait for the container's lock as
/// long as the zygote holds it (a start's hooks, a checkpoint), and another operation on
/// the task (a stop's kill behind kubelet's stats) must not queue behind that wait; it
/// opens a handle of its own meanwhile.
fn on_container<T>(
    slot: &Mutex<Option<Handle>>,
    bundle: &Path,
    id: &str,
    op: impl FnOnce(&mut Handle) -> std::result::Result<T, ContainerError>,
) -> std::result::Result<T, ContainerError> {
    let kept = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    let mut handle = match kept {
        Some(h) => h,
        None => Handle::peek(&Store::new(state_root(bundle)), id)?,
    };
    let result = op(&mut handle);
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert(handle);
    result
}

/// The tasks, shared by the RPC threads, the reaper and the exit threads.
pub struct Tasks {
    table: Mutex<Table>,
    /// Notified at every change of the table that exits or waits may wait for.
    changed: Condvar,
    zygote: std::result::Result<Zygote, String>,
    events: Events,
    exit: Arc<ExitSignal>,
    /// The host is pure cgroup v2 (v2 metrics), once known.
    unified: OnceLock<bool>,
    /// The thread that answers pending Waits has been started (or failed to start).
    waits_thread: OnceLock<std::result::Result<(), String>>,
}

impl Tasks {
    /// No tasks yet; `zygote` is the zygote or why there is none.
    pub fn new(
        zygote: std::result::Result<Zygote, String>,
        events: Events,
        exit: Arc<ExitSignal>,
    ) -> Arc<Tasks> {
        Arc::new(Tasks {
            table: Mutex::new(Table::default()),
            changed: Condvar::new(),
            waits_thread: OnceLock::new(),
            zygote,
            events,
            exit,
            unified: OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn zygote(&self) -> Result<&Zygote> {
        self.zygote
            .as_ref()
            .map_err(|why| ShimError::new(Kind::Unavailable, format!("no zygote: {why}")))
    }

    /// Flushes events and lets the zygote go; called when the server stops.
    pub fn shutdown(&self) {
        self.events.flush(FLUSH_TIMEOUT);
        if let Ok(z) = &self.zygote {
            z.close();
        }
    }
}

/// `t` as a protobuf timestamp field.
pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    MessageField::some(Timestamp::from(t))
}

/// The descriptors as the zygote's call takes them.
fn borrowed(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(|f| f.as_fd()).collect()
}

/// The zygote's reply to a request that returns nothing.
fn expect_done(reply: Reply) -> Result<()> {
    match reply {
        Reply::Done => Ok(()),
        Reply::Failed(e) => Err(e),
        other => Err(unexpected(other)),
    }
}

/// A zygote's reply that its request does not expect.
fn unexpected(reply: Reply) -> ShimError {
    ShimError::other(format!("zygote: unexpected reply {reply:?}"))
}
