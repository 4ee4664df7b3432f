//! The Task service (containerd's task API v2) over runtime-core.
//!
//! Every task is one container (exec processes come later). The server keeps the tasks
//! in memory; runtime-core keeps each container's state in `<bundle>/.youki`, so that the
//! `delete` command can clean up after a shim that died.
//!
//! Exits: the reaper calls [`Shared::on_exit`]. An exit of a known init starts a short-lived
//! thread that waits for the container's output to drain, then records the exit, wakes the
//! Wait calls and queues TaskExit, exactly once, never before the TaskStart of a Start that
//! is in progress. An exit of an unknown pid while a create is in flight is kept, so that an
//! init that dies before the zygote's reply reaches the server is still reported.

use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use containerd_shim::ExitSignal;
use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, Empty, KillRequest, PidsRequest, PidsResponse, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::events::task::{TaskCreate, TaskDelete, TaskExit, TaskIO, TaskStart};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim::shim::{
    CheckpointTaskRequest, CloseIORequest, ExecProcessRequest, PauseRequest, ResizePtyRequest,
    ResumeRequest, StatsRequest, StatsResponse, UpdateTaskRequest,
};
use containerd_shim_protos::topics::{
    TASK_CREATE_EVENT_TOPIC, TASK_DELETE_EVENT_TOPIC, TASK_EXIT_EVENT_TOPIC, TASK_START_EVENT_TOPIC,
};
use containerd_shim_protos::ttrpc::{self, TtrpcContext};
use containerd_shim_protos::types::task::{ProcessInfo, Status};
use runtime_core::state::Store;

use crate::error::{Kind, Result, ShimError};
use crate::events::Events;
use crate::io::{self, Drain, StdioPaths};
use crate::mounts::{self, Mount};
use crate::options;
use crate::zygote::{self, Reply, Request, Zygote};

/// runtime-core's state root, inside the bundle.
pub const STATE_DIR: &str = ".youki";
/// How long an exit waits for the container's output to drain before it is reported.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Delete of a created task waits for the killed init's exit.
const DELETE_EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Exits of unknown pids kept while a create is in flight, at most.
const MAX_UNCLAIMED: usize = 4096;
/// How long shutdown waits for queued events to reach containerd.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Exit status reported for a task whose exit was never seen (SIGKILL).
const KILLED: u32 = 128 + 9;

/// runtime-core's state root for a bundle.
pub fn state_root(bundle: &Path) -> PathBuf {
    bundle.join(STATE_DIR)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
}

#[derive(Debug, Clone, Copy)]
struct Exit {
    status: u32,
    at: SystemTime,
}

struct Container {
    bundle: PathBuf,
    pid: i32,
    phase: Phase,
    /// A Start is in progress: its TaskStart must go out before any TaskExit.
    starting: bool,
    /// A Delete is in progress.
    deleting: bool,
    /// The reaper has seen init exit (the exit may still wait for the output to drain).
    reaped: bool,
    /// The recorded exit: TaskExit has been queued.
    exit: Option<Exit>,
    stdio: StdioPaths,
    drain: Arc<Drain>,
    rootfs_mounted: bool,
}

#[derive(Default)]
struct Table {
    containers: HashMap<String, Container>,
    by_pid: HashMap<i32, String>,
    /// Ids whose Create is in flight.
    creating: HashSet<String>,
    /// Exits of pids not (yet) known, kept while a Create is in flight.
    unclaimed: HashMap<i32, Exit>,
}

/// State shared by the RPC threads, the reaper and the exit threads.
pub struct Shared {
    table: Mutex<Table>,
    changed: Condvar,
    zygote: std::result::Result<Zygote, String>,
    events: Events,
    exit: Arc<ExitSignal>,
    /// The server is stopping: the zygote's exit is expected.
    stopping: AtomicBool,
}

/// The ttrpc Task service.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    MessageField::some(Timestamp::from(t))
}

fn expect_done(reply: Reply) -> Result<()> {
    match reply {
        Reply::Done => Ok(()),
        Reply::Failed(e) => Err(e),
        other => Err(ShimError::other(format!(
            "zygote: unexpected reply {other:?}"
        ))),
    }
}

fn no_exec(exec_id: &str) -> Result<()> {
    if exec_id.is_empty() {
        Ok(())
    } else {
        Err(ShimError::not_found(format!(
            "exec process {exec_id}: exec processes are not supported yet"
        )))
    }
}

impl Shared {
    /// Builds the shared state; `zygote` is the zygote or why there is none.
    pub fn new(
        zygote: std::result::Result<Zygote, String>,
        events: Events,
        exit: Arc<ExitSignal>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            table: Mutex::new(Table::default()),
            changed: Condvar::new(),
            zygote,
            events,
            exit,
            stopping: AtomicBool::new(false),
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

    /// Called by the reaper for every child that exited.
    pub fn on_exit(self: &Arc<Self>, pid: i32, status: u32) {
        let at = SystemTime::now();
        let mut t = self.lock();
        if let Some(id) = t.by_pid.get(&pid).cloned() {
            if let Some(c) = t.containers.get_mut(&id) {
                if c.pid == pid && !c.reaped {
                    c.reaped = true;
                    let drain = c.drain.clone();
                    drop(t);
                    self.report_exit(id, pid, Exit { status, at }, drain);
                }
            }
            return;
        }
        if matches!(&self.zygote, Ok(z) if z.pid().as_raw() == pid) {
            // Its channel reports the closed socket to whoever calls next.
            if self.stopping.load(Ordering::SeqCst) {
                log::debug!("zygote {pid} exited with status {status}");
            } else {
                log::error!("zygote {pid} exited with status {status}");
            }
            return;
        }
        if !t.creating.is_empty() && t.unclaimed.len() < MAX_UNCLAIMED {
            t.unclaimed.insert(pid, Exit { status, at });
        } else {
            log::debug!("reaped {pid} (no task), status {status}");
        }
    }

    /// Records the exit once the output has drained, on a thread of its own so that the
    /// reaper goes on reaping.
    fn report_exit(self: &Arc<Self>, id: String, pid: i32, exit: Exit, drain: Arc<Drain>) {
        let me = self.clone();
        let run = move || me.finish_exit(&id, pid, exit, &drain);
        let spawned = thread::Builder::new()
            .name("exit".into())
            .stack_size(64 * 1024)
            .spawn(run.clone());
        if spawned.is_err() {
            run();
        }
    }

    fn finish_exit(&self, id: &str, pid: i32, exit: Exit, drain: &Drain) {
        if !drain.wait(DRAIN_TIMEOUT) {
            log::warn!("task {id}: output still open {DRAIN_TIMEOUT:?} after its exit");
        }
        let mut t = self.lock();
        while t
            .containers
            .get(id)
            .is_some_and(|c| c.pid == pid && c.starting)
        {
            t = self.changed.wait(t).unwrap_or_else(|p| p.into_inner());
        }
        let Some(c) = t.containers.get_mut(id) else {
            return;
        };
        if c.pid != pid || c.exit.is_some() {
            return;
        }
        c.exit = Some(exit);
        self.events.send(
            TASK_EXIT_EVENT_TOPIC,
            &TaskExit {
                container_id: id.to_string(),
                id: id.to_string(),
                pid: pid as u32,
                exit_status: exit.status,
                exited_at: timestamp(exit.at),
                ..Default::default()
            },
        );
        self.changed.notify_all();
    }

    /// Waits until the task's exit is recorded, at most `timeout`.
    fn wait_exit(&self, id: &str, timeout: Option<Duration>) -> Result<Exit> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut t = self.lock();
        loop {
            match t.containers.get(id) {
                None => return Err(ShimError::not_found(format!("task {id} not found"))),
                Some(c) => {
                    if let Some(e) = c.exit {
                        return Ok(e);
                    }
                }
            }
            t = match deadline {
                None => self.changed.wait(t).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ShimError::new(
                            Kind::DeadlineExceeded,
                            format!("task {id}: no exit within {timeout:?}"),
                        ));
                    }
                    self.changed
                        .wait_timeout(t, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Flushes events and lets the zygote go; called when the server stops.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.events.flush(FLUSH_TIMEOUT);
        if let Ok(z) = &self.zygote {
            z.close();
        }
    }

    fn create(&self, req: &CreateTaskRequest) -> Result<CreateTaskResponse> {
        let id = req.id.as_str();
        runtime_core::state::validate_id(id)?;
        if req.terminal {
            return Err(ShimError::unimplemented(
                "terminal: terminals are not supported by this shim yet",
            ));
        }
        if !req.checkpoint.is_empty() {
            return Err(ShimError::unimplemented(
                "checkpoint/restore is not supported",
            ));
        }
        let bundle = PathBuf::from(&req.bundle);
        if !bundle.is_absolute() {
            return Err(ShimError::invalid(format!(
                "bundle {:?} is not an absolute path",
                req.bundle
            )));
        }
        let opts = options::parse(req.options.as_ref())?;
        {
            let mut t = self.lock();
            if t.containers.contains_key(id) || t.creating.contains(id) {
                return Err(ShimError::new(
                    Kind::AlreadyExists,
                    format!("task {id} already exists"),
                ));
            }
            t.creating.insert(id.to_string());
            if t.creating.len() == 1 {
                // Nothing that exited before this create began can be its init.
                t.unclaimed.clear();
            }
        }
        let zygote = match self.zygote() {
            Ok(z) => z,
            Err(e) => {
                self.lock().creating.remove(id);
                return Err(e);
            }
        };
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
            let r = spawn_container(zygote, id, &bundle, &stdio, &opts);
            if r.is_err() && mounted {
                mounts::unmount_rootfs(&rootfs);
            }
            r.map(|(pid, drain)| (pid, drain, mounted))
        });

        let (pid, drain, rootfs_mounted) = match result {
            Ok(r) => r,
            Err(e) => {
                self.lock().creating.remove(id);
                let _ = std::fs::remove_dir(state_root(&bundle));
                return Err(e);
            }
        };
        let container = Container {
            bundle: bundle.clone(),
            pid,
            phase: Phase::Created,
            starting: false,
            deleting: false,
            reaped: false,
            exit: None,
            stdio: stdio.clone(),
            drain,
            rootfs_mounted,
        };
        let event = TaskCreate {
            container_id: id.to_string(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                terminal: false,
                ..Default::default()
            }),
            checkpoint: String::new(),
            pid: pid as u32,
            ..Default::default()
        };
        self.register(id, container, event);
        Ok(CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Makes a created container known: from here on its exits are its own. Claims an exit
    /// the reaper saw before (init died before the zygote's reply arrived).
    fn register(&self, id: &str, container: Container, event: TaskCreate) {
        let pid = container.pid;
        let drain = container.drain.clone();
        let mut t = self.lock();
        t.creating.remove(id);
        t.containers.insert(id.to_string(), container);
        t.by_pid.insert(pid, id.to_string());
        // Queued before any TaskExit of this init can be.
        self.events.send(TASK_CREATE_EVENT_TOPIC, &event);
        let early = t.unclaimed.remove(&pid);
        if let Some(c) = early.and_then(|_| t.containers.get_mut(id)) {
            c.reaped = true;
        }
        drop(t);
        if let Some(exit) = early {
            log::warn!("task {id}: init {pid} exited before create returned");
            self.finish_exit(id, pid, exit, &drain);
        }
    }

    fn start(&self, req: &StartRequest) -> Result<StartResponse> {
        no_exec(&req.exec_id)?;
        let id = req.id.as_str();
        let zygote = self.zygote()?;
        let (pid, bundle) = {
            let mut t = self.lock();
            let c = t
                .containers
                .get_mut(id)
                .ok_or_else(|| ShimError::not_found(format!("task {id} not found")))?;
            if c.reaped || c.exit.is_some() {
                return Err(ShimError::precondition(format!("task {id} has exited")));
            }
            if c.phase != Phase::Created || c.starting || c.deleting {
                return Err(ShimError::precondition(format!(
                    "task {id} is not in the created state"
                )));
            }
            c.starting = true;
            (c.pid, c.bundle.clone())
        };
        let r = zygote
            .call(
                &Request::Start {
                    id: id.to_string(),
                    state_root: state_root(&bundle),
                },
                &[],
                zygote::START_TIMEOUT,
            )
            .and_then(expect_done);
        let mut t = self.lock();
        if let Some(c) = t.containers.get_mut(id) {
            c.starting = false;
            if r.is_ok() {
                c.phase = Phase::Running;
                self.events.send(
                    TASK_START_EVENT_TOPIC,
                    &TaskStart {
                        container_id: id.to_string(),
                        pid: pid as u32,
                        ..Default::default()
                    },
                );
            }
        }
        self.changed.notify_all();
        r.map_err(|e| e.context(format!("start {id}")))?;
        Ok(StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn delete(&self, req: &DeleteRequest) -> Result<DeleteResponse> {
        no_exec(&req.exec_id)?;
        let id = req.id.as_str();
        let zygote = self.zygote()?;
        let (bundle, pid, force, mounted) = {
            let mut t = self.lock();
            let c = t
                .containers
                .get_mut(id)
                .ok_or_else(|| ShimError::not_found(format!("task {id} not found")))?;
            if c.deleting {
                return Err(ShimError::precondition(format!(
                    "task {id} is being deleted"
                )));
            }
            if !c.reaped && (c.phase == Phase::Running || c.starting) {
                return Err(ShimError::precondition(format!(
                    "task {id} is running: kill it before deleting it"
                )));
            }
            c.deleting = true;
            (c.bundle.clone(), c.pid, !c.reaped, c.rootfs_mounted)
        };
        let r = zygote
            .call(
                &Request::Delete {
                    id: id.to_string(),
                    state_root: state_root(&bundle),
                    force,
                },
                &[],
                zygote::DELETE_TIMEOUT,
            )
            .and_then(expect_done);
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
        let exit = match self.wait_exit(id, Some(DELETE_EXIT_TIMEOUT)) {
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
        t.containers.remove(id);
        if t.by_pid.get(&pid).is_some_and(|i| i == id) {
            t.by_pid.remove(&pid);
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

    fn kill(&self, req: &KillRequest) -> Result<Empty> {
        no_exec(&req.exec_id)?;
        let id = req.id.as_str();
        let finished = || ShimError::not_found(format!("task {id}: process already finished"));
        let bundle = {
            let t = self.lock();
            let c = t
                .containers
                .get(id)
                .ok_or_else(|| ShimError::not_found(format!("task {id} not found")))?;
            if c.reaped || c.exit.is_some() {
                return if req.all {
                    Ok(Empty::new())
                } else {
                    Err(finished())
                };
            }
            c.bundle.clone()
        };
        let signal = i32::try_from(req.signal)
            .ok()
            .filter(|s| (0..=64).contains(s))
            .ok_or_else(|| ShimError::invalid(format!("invalid signal {}", req.signal)))?;
        // kill(2) does not fork: it runs here, in the server.
        let store = Store::new(state_root(&bundle));
        match runtime_core::container::kill(&store, id, signal, req.all) {
            Ok(()) => Ok(Empty::new()),
            Err(e) => {
                let gone = self
                    .lock()
                    .containers
                    .get(id)
                    .is_none_or(|c| c.reaped || c.exit.is_some());
                let e = ShimError::from(e);
                if gone || e.kind == Kind::FailedPrecondition {
                    Err(finished())
                } else {
                    Err(e.context(format!("kill {id}")))
                }
            }
        }
    }

    fn state(&self, req: &StateRequest) -> Result<StateResponse> {
        no_exec(&req.exec_id)?;
        let id = req.id.as_str();
        let t = self.lock();
        let c = t
            .containers
            .get(id)
            .ok_or_else(|| ShimError::not_found(format!("task {id} not found")))?;
        let status = match (c.exit, c.phase) {
            (Some(_), _) => Status::STOPPED,
            (None, Phase::Running) => Status::RUNNING,
            (None, Phase::Created) => Status::CREATED,
        };
        Ok(StateResponse {
            id: id.to_string(),
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: c.pid as u32,
            status: status.into(),
            stdin: c.stdio.stdin.clone(),
            stdout: c.stdio.stdout.clone(),
            stderr: c.stdio.stderr.clone(),
            terminal: false,
            exit_status: c.exit.map(|e| e.status).unwrap_or(0),
            exited_at: c.exit.map(|e| timestamp(e.at)).unwrap_or_default(),
            exec_id: String::new(),
            ..Default::default()
        })
    }

    fn pids(&self, req: &PidsRequest) -> Result<PidsResponse> {
        let id = req.id.as_str();
        let bundle = {
            let t = self.lock();
            let c = t
                .containers
                .get(id)
                .ok_or_else(|| ShimError::not_found(format!("task {id} not found")))?;
            c.bundle.clone()
        };
        let store = Store::new(state_root(&bundle));
        let st = match runtime_core::container::state(&store, id) {
            Ok(c) => c.state,
            Err(e) => {
                let e = ShimError::from(e);
                return match e.kind {
                    Kind::NotFound => Ok(PidsResponse::default()),
                    _ => Err(e.context(format!("pids {id}"))),
                };
            }
        };
        let pids = runtime_core::cgroups::manager(&st.cgroup_path)
            .and_then(|m| m.pids())
            .map_err(|e| ShimError::other(format!("pids {id}: {e}")))?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|p| ProcessInfo {
                    pid: p.as_raw() as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn connect(&self, req: &ConnectRequest) -> ConnectResponse {
        let t = self.lock();
        ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: t.containers.get(&req.id).map(|c| c.pid as u32).unwrap_or(0),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }
    }

    fn shutdown_request(&self, req: &ShutdownRequest) {
        let t = self.lock();
        if req.now || (t.containers.is_empty() && t.creating.is_empty()) {
            drop(t);
            self.exit.signal();
        }
    }
}

/// Sets up stdio and has the zygote create the container; returns init's pid.
fn spawn_container(
    zygote: &Zygote,
    id: &str,
    bundle: &Path,
    stdio: &StdioPaths,
    opts: &options::TaskOptions,
) -> Result<(i32, Arc<Drain>)> {
    let (fds, drain) = io::setup(stdio, opts.io_owner)?;
    let req = Request::Create {
        id: id.to_string(),
        bundle: bundle.to_path_buf(),
        state_root: state_root(bundle),
        no_pivot: opts.no_pivot,
    };
    let reply = zygote.call(
        &req,
        &[fds.stdin.as_fd(), fds.stdout.as_fd(), fds.stderr.as_fd()],
        zygote::CREATE_TIMEOUT,
    );
    // The container holds its own copies now: the copy threads see end-of-file when it
    // (and not the shim) closes them.
    drop(fds);
    match reply? {
        Reply::Created { pid } => Ok((pid, drain)),
        Reply::Failed(e) => Err(e.context(format!("create {id}"))),
        other => Err(ShimError::other(format!(
            "zygote: unexpected reply {other:?}"
        ))),
    }
}

/// The `delete` command: cleans up after a shim that died, from the bundle alone: kills
/// what is left, removes the cgroup and state, unmounts the rootfs.
pub fn cleanup_dead_shim(bundle: &Path, id: &str) -> DeleteResponse {
    let store = Store::new(state_root(bundle));
    let pid = runtime_core::container::state(&store, id)
        .map(|c| c.state.pid)
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

impl Service {
    /// The service over `shared`.
    pub fn new(shared: Arc<Shared>) -> Service {
        Service { shared }
    }
}

fn unimplemented<T>(what: &str) -> ttrpc::Result<T> {
    Err(ShimError::unimplemented(format!("{what} is not implemented yet")).into())
}

fn answer<T>(what: &str, id: &str, r: Result<T>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        if !matches!(e.kind, Kind::NotFound | Kind::FailedPrecondition) {
            log::warn!("{what} {id}: {e}");
        }
        e.into()
    })
}

impl containerd_shim::Task for Service {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: CreateTaskRequest,
    ) -> ttrpc::Result<CreateTaskResponse> {
        log::info!("create {} (bundle {})", req.id, req.bundle);
        answer("create", &req.id, self.shared.create(&req))
    }

    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        answer("start", &req.id, self.shared.start(&req))
    }

    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        answer("delete", &req.id, self.shared.delete(&req))
    }

    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        answer("kill", &req.id, self.shared.kill(&req))
    }

    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        answer("state", &req.id, self.shared.state(&req))
    }

    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        answer("pids", &req.id, self.shared.pids(&req))
    }

    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let r = no_exec(&req.exec_id)
            .and_then(|()| self.shared.wait_exit(&req.id, None))
            .map(|e| WaitResponse {
                exit_status: e.status,
                exited_at: timestamp(e.at),
                ..Default::default()
            });
        answer("wait", &req.id, r)
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        Ok(self.shared.connect(&req))
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        self.shared.shutdown_request(&req);
        Ok(Empty::new())
    }

    fn pause(&self, _ctx: &TtrpcContext, _req: PauseRequest) -> ttrpc::Result<Empty> {
        unimplemented("Pause")
    }

    fn resume(&self, _ctx: &TtrpcContext, _req: ResumeRequest) -> ttrpc::Result<Empty> {
        unimplemented("Resume")
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, _req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        unimplemented("Checkpoint")
    }

    fn exec(&self, _ctx: &TtrpcContext, _req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        unimplemented("Exec")
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, _req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        unimplemented("ResizePty")
    }

    fn close_io(&self, _ctx: &TtrpcContext, _req: CloseIORequest) -> ttrpc::Result<Empty> {
        unimplemented("CloseIO")
    }

    fn update(&self, _ctx: &TtrpcContext, _req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        unimplemented("Update")
    }

    fn stats(&self, _ctx: &TtrpcContext, _req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        unimplemented("Stats")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Item, Publish};

    /// Records the type of every event published, in order.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Publish for Recorder {
        fn publish(&self, _ns: &str, item: &Item) -> std::result::Result<(), String> {
            let name = item.event.type_url.trim_start_matches("containerd.events.");
            self.0.lock().unwrap().push(name.to_string());
            Ok(())
        }
    }

    impl Recorder {
        fn events(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }

        /// Waits until `n` events arrived.
        fn wait_for(&self, n: usize) -> Vec<String> {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.events().len() < n && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            self.events()
        }
    }

    fn shared() -> (Arc<Shared>, Recorder) {
        let rec = Recorder::default();
        let events = Events::start(rec.clone(), "ns".into());
        let exit = Arc::new(ExitSignal::default());
        (
            Shared::new(Err("none in unit tests".into()), events, exit),
            rec,
        )
    }

    fn container(pid: i32, drain: Arc<Drain>) -> Container {
        Container {
            bundle: PathBuf::from("/nonexistent/bundle"),
            pid,
            phase: Phase::Created,
            starting: false,
            deleting: false,
            reaped: false,
            exit: None,
            stdio: StdioPaths::default(),
            drain,
            rootfs_mounted: false,
        }
    }

    fn register(s: &Shared, id: &str, pid: i32, drain: Arc<Drain>) {
        s.lock().creating.insert(id.to_string());
        s.register(id, container(pid, drain), TaskCreate::default());
    }

    fn exit_of(s: &Shared, id: &str) -> Option<u32> {
        s.lock()
            .containers
            .get(id)
            .and_then(|c| c.exit.map(|e| e.status))
    }

    #[test]
    fn an_exit_is_recorded_and_published_once() {
        let (s, rec) = shared();
        register(&s, "c1", 100, Arc::default());
        s.on_exit(100, 3);
        s.on_exit(100, 3);
        assert_eq!(
            s.wait_exit("c1", Some(Duration::from_secs(10)))
                .unwrap()
                .status,
            3
        );
        thread::sleep(Duration::from_millis(50));
        assert_eq!(rec.wait_for(2), ["TaskCreate", "TaskExit"]);
    }

    #[test]
    fn an_init_that_dies_before_create_returns_is_still_reported() {
        let (s, rec) = shared();
        s.lock().creating.insert("c2".into());
        // The reaper sees the pid before the zygote's reply made it known.
        s.on_exit(200, 137);
        assert!(s.lock().unclaimed.contains_key(&200));
        s.register("c2", container(200, Arc::default()), TaskCreate::default());
        assert_eq!(exit_of(&s, "c2"), Some(137));
        assert!(s.lock().unclaimed.is_empty());
        assert_eq!(rec.wait_for(2), ["TaskCreate", "TaskExit"]);
        // Reaped already: a second exit for the pid is not another TaskExit.
        s.on_exit(200, 137);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(rec.events().len(), 2);
    }

    #[test]
    fn unknown_exits_are_not_kept_when_nothing_is_being_created() {
        let (s, _rec) = shared();
        s.on_exit(4242, 0);
        assert!(s.lock().unclaimed.is_empty());
    }

    #[test]
    fn an_exit_during_start_comes_after_task_start() {
        let (s, rec) = shared();
        register(&s, "c3", 300, Arc::default());
        s.lock().containers.get_mut("c3").unwrap().starting = true;
        s.on_exit(300, 0);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            exit_of(&s, "c3"),
            None,
            "exit recorded while Start is in progress"
        );
        // Start finishes as Shared::start does.
        {
            let mut t = s.lock();
            let c = t.containers.get_mut("c3").unwrap();
            c.starting = false;
            c.phase = Phase::Running;
            s.events.send(TASK_START_EVENT_TOPIC, &TaskStart::default());
            s.changed.notify_all();
        }
        assert_eq!(
            s.wait_exit("c3", Some(Duration::from_secs(10)))
                .unwrap()
                .status,
            0
        );
        assert_eq!(rec.wait_for(3), ["TaskCreate", "TaskStart", "TaskExit"]);
    }

    #[test]
    fn wait_before_start_returns_at_the_exit() {
        let (s, _rec) = shared();
        register(&s, "c4", 400, Arc::default());
        let s2 = s.clone();
        let waiter = thread::spawn(move || s2.wait_exit("c4", None));
        thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished());
        s.on_exit(400, 9);
        assert_eq!(waiter.join().unwrap().unwrap().status, 9);
        let e = s.wait_exit("nope", None).unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
    }

    #[test]
    fn the_exit_waits_for_the_output_to_drain() {
        let (s, rec) = shared();
        let drain = Arc::new(Drain::default());
        drain.add();
        register(&s, "c5", 500, drain.clone());
        s.on_exit(500, 0);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            exit_of(&s, "c5"),
            None,
            "exit recorded before the output drained"
        );
        drain.finish();
        assert_eq!(
            s.wait_exit("c5", Some(Duration::from_secs(10)))
                .unwrap()
                .status,
            0
        );
        assert_eq!(rec.wait_for(2), ["TaskCreate", "TaskExit"]);
    }

    #[test]
    fn rpcs_on_unknown_tasks_are_not_found() {
        let (s, _rec) = shared();
        let state = StateRequest {
            id: "x".into(),
            ..Default::default()
        };
        assert_eq!(s.state(&state).unwrap_err().kind, Kind::NotFound);
        let kill = KillRequest {
            id: "x".into(),
            signal: 9,
            ..Default::default()
        };
        assert_eq!(s.kill(&kill).unwrap_err().kind, Kind::NotFound);
        let exec_state = StateRequest {
            id: "x".into(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        assert_eq!(s.state(&exec_state).unwrap_err().kind, Kind::NotFound);
    }

    #[test]
    fn create_refuses_bad_requests_with_their_kinds() {
        let (s, _rec) = shared();
        let bad_id = CreateTaskRequest {
            id: "../x".into(),
            bundle: "/b".into(),
            ..Default::default()
        };
        assert_eq!(s.create(&bad_id).unwrap_err().kind, Kind::InvalidArgument);
        let tty = CreateTaskRequest {
            id: "x".into(),
            bundle: "/b".into(),
            terminal: true,
            ..Default::default()
        };
        assert_eq!(s.create(&tty).unwrap_err().kind, Kind::Unimplemented);
        let relative = CreateTaskRequest {
            id: "x".into(),
            bundle: "b".into(),
            ..Default::default()
        };
        assert_eq!(s.create(&relative).unwrap_err().kind, Kind::InvalidArgument);
        // Without a zygote the shim cannot create: Unavailable, not a hang.
        let ok = CreateTaskRequest {
            id: "x".into(),
            bundle: "/b".into(),
            ..Default::default()
        };
        assert_eq!(s.create(&ok).unwrap_err().kind, Kind::Unavailable);
        assert!(s.lock().creating.is_empty());
        register(&s, "dup", 600, Arc::default());
        let dup = CreateTaskRequest {
            id: "dup".into(),
            bundle: "/b".into(),
            ..Default::default()
        };
        assert_eq!(s.create(&dup).unwrap_err().kind, Kind::AlreadyExists);
    }

    #[test]
    fn state_reports_the_recorded_exit() {
        let (s, _rec) = shared();
        register(&s, "c7", 700, Arc::default());
        let req = StateRequest {
            id: "c7".into(),
            ..Default::default()
        };
        let st = s.state(&req).unwrap();
        assert_eq!(st.status.enum_value(), Ok(Status::CREATED));
        assert_eq!(st.pid, 700);
        s.on_exit(700, 2);
        s.wait_exit("c7", Some(Duration::from_secs(10))).unwrap();
        let st = s.state(&req).unwrap();
        assert_eq!(st.status.enum_value(), Ok(Status::STOPPED));
        assert_eq!(st.exit_status, 2);
        assert!(st.exited_at.is_some());
        // A stopped task: kill without `all` is NotFound, with `all` a no-op.
        let kill = KillRequest {
            id: "c7".into(),
            signal: 9,
            ..Default::default()
        };
        assert_eq!(s.kill(&kill).unwrap_err().kind, Kind::NotFound);
        let kill_all = KillRequest { all: true, ..kill };
        assert!(s.kill(&kill_all).is_ok());
    }
}
