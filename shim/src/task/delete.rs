//! Delete of a task: the zygote (or, without one, the server) deletes the container, the
//! rootfs is unmounted and the task leaves the table; and the `delete` command's cleanup
//! after a shim that died.

use std::path::Path;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::events::task::TaskDelete;
use containerd_shim_protos::topics::TASK_DELETE_EVENT_TOPIC;
use runtime_core::container::Container;
use runtime_core::state::Store;

use crate::error::{Kind, Result, ShimError};
use crate::mounts;
use crate::zygote::{self, Request};

use super::process::Exit;
use super::{expect_done, state_root, timestamp, Tasks};

/// How long Delete of a created task waits for the killed init's exit.
const DELETE_EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Exit status reported for a task whose exit was never seen (SIGKILL).
const KILLED: u32 = 128 + 9;

impl Tasks {
    /// Delete of task `id`, whose init is not running: the container, its rootfs mount
    /// and its state go, then TaskDelete.
    pub fn delete(&self, id: &str) -> Result<DeleteResponse> {
        let (bundle, pid, force, mounted) = {
            let mut t = self.lock();
            let c = t.container_mut(id)?;
            c.begin_delete(id)?;
            (
                c.bundle.clone(),
                c.init.pid(),
                !c.init.reaped(),
                c.rootfs_mounted,
            )
        };
        let r = self
            .zygote()
            .and_then(|z| {
                let req = Request::Delete {
                    id: id.to_string(),
                    state_root: state_root(&bundle),
                    force,
                };
                z.call(&req, &[], zygote::DELETE_TIMEOUT)
            })
            .and_then(expect_done);
        let r = match r {
            Err(e) if e.kind == Kind::Unavailable => delete_without_zygote(id, &bundle, force, e),
            r => r,
        };
        match r {
            Ok(()) => {}
            // Its state is gone already (a create that failed half-way): nothing to remove.
            Err(e) if e.kind == Kind::NotFound => {}
            Err(e) => {
                if let Some(c) = self.lock().containers.get_mut(id) {
                    c.deleting = false;
                }
                return Err(e.context(format!("delete {id}")));
            }
        }
        // A created task's init was killed by the delete: its exit comes through the reaper.
        let exit = match self.wait_exit(id, "", Some(DELETE_EXIT_TIMEOUT)) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("task {id}: {e}");
                Exit {
                    status: KILLED,
                    at: SystemTime::now(),
                }
            }
        };
        if mounted {
            mounts::unmount_rootfs(&bundle.join("rootfs"));
        }
        let _ = std::fs::remove_dir(state_root(&bundle));
        let mut t = self.lock();
        if let Some(oom) = t.remove(id).and_then(|c| c.oom) {
            oom.stop();
        }
        self.events.send(
            TASK_DELETE_EVENT_TOPIC,
            &TaskDelete {
                container_id: id.to_string(),
                id: id.to_string(),
                pid: pid as u32,
                exit_status: exit.status,
                exited_at: timestamp(exit.at),
                ..Default::default()
            },
        );
        self.changed.notify_all();
        Ok(DeleteResponse {
            pid: pid as u32,
            exit_status: exit.status,
            exited_at: timestamp(exit.at),
            ..Default::default()
        })
    }
}

/// Deletes a container in the server, when the zygote cannot (`why`): all but poststop
/// hooks, which fork and wait for their process, as only the zygote may.
fn delete_without_zygote(id: &str, bundle: &Path, force: bool, why: ShimError) -> Result<()> {
    let store = Store::new(state_root(bundle));
    let hooks = Container::peek(&store, id)
        .ok()
        .and_then(|c| c.state().hooks.clone())
        .is_some_and(|h| h.poststop().as_ref().is_some_and(|l| !l.is_empty()));
    if hooks {
        return Err(why.context("poststop hooks to run"));
    }
    log::warn!("delete {id}: {why}; deleting it in the server");
    runtime_core::container::delete(&store, id, force).map_err(ShimError::from)
}

/// The `delete` command: cleans up after a shim that died, from the bundle alone: kills
/// what is left, removes the cgroup and state, unmounts the rootfs.
pub fn cleanup_dead_shim(bundle: &Path, id: &str) -> DeleteResponse {
    let store = Store::new(state_root(bundle));
    let pid = Container::peek(&store, id)
        .map(|c| c.state().pid)
        .unwrap_or(0);
    match runtime_core::container::delete(&store, id, true) {
        Ok(()) => {}
        Err(e) if Kind::from(&e) == Kind::NotFound => {}
        Err(e) => log::warn!("delete {id}: {e}"),
    }
    mounts::unmount_rootfs(&bundle.join("rootfs"));
    let _ = std::fs::remove_dir(state_root(bundle));
    remove_dead_socket(bundle);
    DeleteResponse {
        pid: pid.max(0) as u32,
        exit_status: KILLED,
        exited_at: timestamp(SystemTime::now()),
        ..Default::default()
    }
}

/// Removes the socket named by the bundle's `address` file if nothing listens on it any
/// more (a shim that stops normally removes its own; a killed one cannot). A grouped shim
/// still serving other containers keeps its socket.
fn remove_dead_socket(bundle: &Path) {
    use std::os::unix::fs::FileTypeExt;

    let Ok(address) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let address = address.trim();
    let path = Path::new(address.strip_prefix("unix://").unwrap_or(address));
    if !path.is_absolute() || std::os::unix::net::UnixStream::connect(path).is_ok() {
        return;
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("removing the dead shim's socket {}: {e}", path.display());
        }
    }
}
