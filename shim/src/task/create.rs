//! Create, and the Start of a task's init: the rootfs is mounted, the I/O set up, the
//! zygote creates (or restores) the container, and the task enters the table; Start has
//! the zygote run the container's command.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_shim_protos::api::{CreateTaskRequest, CreateTaskResponse, StartResponse};
use containerd_shim_protos::events::task::{TaskCreate, TaskIO, TaskOOM, TaskStart};
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::topics::{
    TASK_CREATE_EVENT_TOPIC, TASK_OOM_EVENT_TOPIC, TASK_START_EVENT_TOPIC,
};

use crate::checkpoint;
use crate::error::{Result, ShimError};
use crate::io::process::{self as procio, ProcIo};
use crate::io::StdioPaths;
use crate::mounts::{self, Mount};
use crate::oom::Oom;
use crate::options;
use crate::zygote::{self, Created, Reply, Request, Zygote};

use super::process::Proc;
use super::table::Container;
use super::{borrowed, expect_done, state_root, unexpected, Tasks};

impl Tasks {
    /// Create: a container created (or restored from a checkpoint), its init waiting for
    /// Start.
    pub fn create(self: &Arc<Self>, req: &CreateTaskRequest) -> Result<CreateTaskResponse> {
        let id = req.id.as_str();
        runtime_core::state::validate_id(id)?;
        let bundle = PathBuf::from(&req.bundle);
        if !bundle.is_absolute() {
            return Err(ShimError::invalid(format!(
                "bundle {:?} is not an absolute path",
                req.bundle
            )));
        }
        if !req.checkpoint.is_empty() && !Path::new(&req.checkpoint).is_absolute() {
            return Err(ShimError::invalid(format!(
                "checkpoint {:?} is not an absolute path",
                req.checkpoint
            )));
        }
        let opts = options::parse(req.options.as_ref())?;
        let restore = (!req.checkpoint.is_empty()).then(|| checkpoint::Restore {
            image_path: PathBuf::from(&req.checkpoint),
            work_path: opts
                .criu_work_path
                .clone()
                .unwrap_or_else(|| bundle.clone()),
        });
        self.lock().begin_create(id)?;
        let fail = |e: ShimError| {
            self.lock().create_failed(id);
            e
        };
        let zygote = self.zygote().map_err(fail)?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
        };
        let rootfs = bundle.join("rootfs");
        let mounts: Vec<Mount> = req
            .rootfs
            .iter()
            .map(|m| Mount {
                kind: m.type_.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();
        let result = mounts::mount_rootfs(&mounts, &rootfs).and_then(|mounted| {
            let r = spawn_container(
                zygote,
                id,
                &bundle,
                &stdio,
                req.terminal,
                &opts,
                restore.as_ref(),
            );
            if r.is_err() && mounted {
                mounts::unmount_rootfs(&rootfs);
            }
            r.map(|(created, io)| (created, io, mounted))
        });

        let (created, io, rootfs_mounted) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir(state_root(&bundle));
                return Err(fail(e));
            }
        };
        let pid = created.pid;
        let mut container = Container::new(
            bundle.clone(),
            Proc::new(pid, stdio.clone(), req.terminal).with_io(io),
            rootfs_mounted,
        );
        container.io_owner = opts.io_owner;
        container.restored = restore.is_some();
        container.oom = self.watch_oom(id, &created.cgroup_path);
        container.shares_pid_ns = created.shares_pid_ns;
        let event = TaskCreate {
            container_id: id.to_string(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                terminal: req.terminal,
                ..Default::default()
            }),
            checkpoint: req.checkpoint.clone(),
            pid: pid as u32,
            ..Default::default()
        };
        self.register(id, container, event);
        Ok(CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Starts the OOM watch of a created container (none if it cannot be watched).
    fn watch_oom(self: &Arc<Self>, id: &str, cgroup: &Path) -> Option<Oom> {
        let weak = Arc::downgrade(self);
        let cid = id.to_string();
        Oom::start(id, cgroup, move || {
            if let Some(s) = weak.upgrade() {
                s.events.send(
                    TASK_OOM_EVENT_TOPIC,
                    &TaskOOM {
                        container_id: cid.clone(),
                        ..Default::default()
                    },
                );
            }
        })
    }

    /// Makes a created container known: from here on its exits are its own. Claims an exit
    /// the reaper saw before (init died before the zygote's reply arrived).
    pub(super) fn register(&self, id: &str, container: Container, event: TaskCreate) {
        let pid = container.init.pid();
        let drain = container.init.drain();
        let mut t = self.lock();
        let early = t.insert(id, container);
        // Queued before any TaskExit of this init can be.
        self.events.send(TASK_CREATE_EVENT_TOPIC, &event);
        drop(t);
        if let Some(exit) = early {
            log::warn!("task {id}: init {pid} exited before create returned");
            self.finish_exit(id, "", pid, exit, &drain);
        }
    }

    /// Start of the init of task `id`: the zygote runs the container's command (a
    /// restored container runs already).
    pub fn start(&self, id: &str) -> Result<StartResponse> {
        let zygote = self.zygote()?;
        let (pid, bundle, restored) = {
            let mut t = self.lock();
            let c = t.container_mut(id)?;
            c.begin_start(id)?;
            (c.init.pid(), c.bundle.clone(), c.restored)
        };
        let r = if restored {
            Ok(())
        } else {
            zygote
                .call(
                    &Request::Start {
                        id: id.to_string(),
                        state_root: state_root(&bundle),
                    },
                    &[],
                    zygote::START_TIMEOUT,
                )
                .and_then(expect_done)
        };
        let mut t = self.lock();
        if let Some(c) = t.containers.get_mut(id) {
            if r.is_ok() {
                c.init.start_succeeded();
                self.events.send(
                    TASK_START_EVENT_TOPIC,
                    &TaskStart {
                        container_id: id.to_string(),
                        pid: pid as u32,
                        ..Default::default()
                    },
                );
            } else {
                c.init.start_failed();
            }
        }
        self.changed.notify_all();
        r.map_err(|e| e.context(format!("start {id}")))?;
        Ok(StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }
}

/// Sets up the I/O and has the zygote create the container, or restore it from the
/// checkpoint `restore`; returns what the server keeps of it.
fn spawn_container(
    zygote: &Zygote,
    id: &str,
    bundle: &Path,
    stdio: &StdioPaths,
    terminal: bool,
    opts: &options::TaskOptions,
    restore: Option<&checkpoint::Restore>,
) -> Result<(Created, ProcIo)> {
    let prepared = procio::prepare(id, stdio, terminal, false, opts.io_owner)?;
    let (req, timeout) = match restore {
        None => (
            Request::Create {
                id: id.to_string(),
                bundle: bundle.to_path_buf(),
                state_root: state_root(bundle),
                no_pivot: opts.no_pivot,
                systemd_cgroup: opts.systemd_cgroup,
                terminal,
            },
            zygote::CREATE_TIMEOUT,
        ),
        Some(r) => (
            Request::Restore {
                id: id.to_string(),
                bundle: bundle.to_path_buf(),
                state_root: state_root(bundle),
                restore: r.clone(),
                systemd_cgroup: opts.systemd_cgroup,
                terminal,
            },
            zygote::CHECKPOINT_TIMEOUT,
        ),
    };
    let what = req.name();
    let reply = zygote.call(&req, &borrowed(&prepared.child), timeout);
    let created = match reply.map_err(|e| e.context(format!("{what} {id}")))? {
        Reply::Created(c) => c,
        Reply::Failed(e) => return Err(e.context(format!("{what} {id}"))),
        other => return Err(unexpected(other)),
    };
    // The container holds its own copies now: the copies see end-of-file when it (and
    // not the shim) closes them.
    match prepared.finish() {
        Ok(io) => Ok((created, io)),
        Err(e) => {
            // No way to reach its terminal: the container goes.
            let del = Request::Delete {
                id: id.to_string(),
                state_root: state_root(bundle),
                force: true,
            };
            if let Err(d) = zygote
                .call(&del, &[], zygote::DELETE_TIMEOUT)
                .and_then(expect_done)
            {
                log::warn!("create {id}: removing the container after {e}: {d}");
            }
            Err(e.context(format!("create {id}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use crate::task::testing::{register, tasks};

    #[test]
    fn create_refuses_bad_requests_with_their_kinds() {
        let (s, _rec) = tasks();
        let bad_id = CreateTaskRequest {
            id: "../x".into(),
            bundle: "/b".into(),
            ..Default::default()
        };
        assert_eq!(s.create(&bad_id).unwrap_err().kind, Kind::InvalidArgument);
        let relative = CreateTaskRequest {
            id: "x".into(),
            bundle: "b".into(),
            ..Default::default()
        };
        assert_eq!(s.create(&relative).unwrap_err().kind, Kind::InvalidArgument);
        let checkpoint = CreateTaskRequest {
            id: "x".into(),
            bundle: "/b".into(),
            checkpoint: "cp".into(),
            ..Default::default()
        };
        assert_eq!(
            s.create(&checkpoint).unwrap_err().kind,
            Kind::InvalidArgument
        );
        // Without a zygote the shim cannot create: Unavailable, not a hang.
        let ok = CreateTaskRequest {
            id: "x".into(),
            bundle: "/b".into(),
            ..Default::default()
        };
        assert_eq!(s.create(&ok).unwrap_err().kind, Kind::Unavailable);
        assert!(s.lock().creating.is_empty());
        assert_eq!(s.lock().spawning, 0);
        register(&s, "dup", 600, Arc::default());
        let dup = CreateTaskRequest {
            id: "dup".into(),
            bundle: "/b".into(),
            ..Default::default()
        };
        assert_eq!(s.create(&dup).unwrap_err().kind, Kind::AlreadyExists);
    }
}
