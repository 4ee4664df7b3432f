//! The Task service (containerd's task API v2) over runtime-core.
//!
//! Every task is one container with its init process and its exec processes. The server
//! keeps the tasks in memory; runtime-core keeps each container's state in
//! `<bundle>/.youki`, so that the `delete` command can clean up after a shim that died.
//! Operations that fork (create, exec, start, delete) run in the zygote; the others (kill,
//! pause, resume, update, stats, pids) read or write the kernel's files from the server.
//!
//! Exits: the reaper calls [`Shared::on_exit`]. An exit of a known process starts a
//! short-lived thread that waits for the process's output to drain, then records the exit,
//! wakes the Wait calls and queues TaskExit, exactly once, never before the TaskStart (or
//! TaskExecStarted) of a Start that is in progress. An exit of an unknown pid while a
//! create or an exec start is in flight is kept, so that a process that dies before the
//! zygote's reply reaches the server is still reported.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use containerd_shim::ExitSignal;
use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, Empty, KillRequest, PidsRequest, PidsResponse, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::shim::shim::{
    CheckpointTaskRequest, CloseIORequest, ExecProcessRequest, PauseRequest, ResizePtyRequest,
    ResumeRequest, StatsRequest, StatsResponse, UpdateTaskRequest,
};
use containerd_shim_protos::topics::{
    TASK_CREATE_EVENT_TOPIC, TASK_DELETE_EVENT_TOPIC, TASK_EXEC_ADDED_EVENT_TOPIC,
    TASK_EXEC_STARTED_EVENT_TOPIC, TASK_EXIT_EVENT_TOPIC, TASK_OOM_EVENT_TOPIC,
    TASK_PAUSED_EVENT_TOPIC, TASK_RESUMED_EVENT_TOPIC, TASK_START_EVENT_TOPIC,
};
use containerd_shim_protos::ttrpc::{self, TtrpcContext};
use containerd_shim_protos::types::task::ProcessInfo;
use oci_spec::runtime::{LinuxResources, Process};
use runtime_core::container::resources;
use runtime_core::state::Store;

use crate::checkpoint;
use crate::error::{Kind, Result, ShimError};
use crate::events::Events;
use crate::io::{Drain, StdioPaths};
use crate::metrics;
use crate::mounts::{self, Mount};
use crate::oom::Oom;
use crate::options;
use crate::procio::{self, ProcIo};
use crate::task::process::{finished, ExecProc, Exit, Proc, ProcId};
use crate::task::table::{exec_not_found, Container, PendingWait, Table, WaitReply};
use crate::typeurl;
use crate::zygote::{self, Reply, Request, Zygote};

/// runtime-core's state root, inside the bundle.
pub const STATE_DIR: &str = ".youki";
/// How long an exit waits for the process's output to drain before it is reported.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Delete of a created task waits for the killed init's exit.
const DELETE_EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// Exits of unknown pids kept while a create or exec is in flight, at most.
const MAX_UNCLAIMED: usize = 4096;
/// Bound on holding an init's TaskExit back for the exits of its reaped execs (they wait
/// for their output at most [`DRAIN_TIMEOUT`]).
const EXECS_FIRST_TIMEOUT: Duration = Duration::from_secs(6);
/// How long shutdown waits for queued events to reach containerd.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Exit status reported for a task whose exit was never seen (SIGKILL).
const KILLED: u32 = 128 + 9;
/// The protobuf name of the Pids info of an exec process (containerd's runc options).
const PROCESS_DETAILS: &str = "containerd.runc.v1.ProcessDetails";

/// runtime-core's state root for a bundle.
pub fn state_root(bundle: &Path) -> PathBuf {
    bundle.join(STATE_DIR)
}

/// State shared by the RPC threads, the reaper and the exit threads.
pub struct Shared {
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

/// `t` as a protobuf timestamp field.
pub fn timestamp(t: SystemTime) -> MessageField<Timestamp> {
    MessageField::some(Timestamp::from(t))
}

/// The zygote's reply to a request that returns nothing.
fn expect_done(reply: Reply) -> Result<()> {
    match reply {
        Reply::Done => Ok(()),
        Reply::Failed(e) => Err(e),
        other => Err(ShimError::other(format!(
            "zygote: unexpected reply {other:?}"
        ))),
    }
}

impl Shared {
    /// No tasks yet; `zygote` is the zygote or why there is none.
    pub fn new(
        zygote: std::result::Result<Zygote, String>,
        events: Events,
        exit: Arc<ExitSignal>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
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

    /// Called by the reaper for every child that exited.
    pub fn on_exit(self: &Arc<Self>, pid: i32, status: u32) {
        // The zygote's: logged, and a new one started (zygote.rs).
        if matches!(&self.zygote, Ok(z) if z.exited(pid, status)) {
            return;
        }
        let at = SystemTime::now();
        let mut t = self.lock();
        if let Some((id, exec_id)) = t.by_pid.get(&pid).cloned() {
            let drain = t.proc_mut(&id, &exec_id).ok().and_then(|p| p.reap(pid));
            if let Some(drain) = drain {
                drop(t);
                self.report_exit(id, exec_id, pid, Exit { status, at }, drain);
            }
            return;
        }
        if t.spawning > 0 && t.unclaimed.len() < MAX_UNCLAIMED {
            t.unclaimed.insert(pid, Exit { status, at });
        } else {
            log::debug!("reaped {pid} (no task), status {status}");
        }
    }

    /// Records the exit once the output has drained, on a thread of its own so that the
    /// reaper goes on reaping.
    fn report_exit(
        self: &Arc<Self>,
        id: String,
        exec_id: String,
        pid: i32,
        exit: Exit,
        drain: Arc<Drain>,
    ) {
        let me = self.clone();
        let run = move || me.finish_exit(&id, &exec_id, pid, exit, &drain);
        let spawned = thread::Builder::new()
            .name("exit".into())
            .stack_size(64 * 1024)
            .spawn(run.clone());
        if spawned.is_err() {
            run();
        }
    }

    /// Records the exit of `pid`, process `exec_id` of `id`, and queues its TaskExit: after
    /// its output drained, its Start's event and (for an init) its execs' exits.
    fn finish_exit(&self, id: &str, exec_id: &str, pid: i32, exit: Exit, drain: &Drain) {
        let who = ProcId::new(id, exec_id);
        if who.is_init() {
            self.kill_leftovers(id);
        }
        if !drain.wait(DRAIN_TIMEOUT) {
            log::warn!("{who}: output still open {DRAIN_TIMEOUT:?} after its exit");
        }
        if who.is_init() {
            // An OOM kill of init is counted just after the kernel's notification: look
            // once more, so that TaskOOM comes before TaskExit, and before Delete removes
            // the cgroup.
            let oom = self.lock().containers.get(id).and_then(|c| c.oom.clone());
            if let Some(oom) = oom {
                oom.final_check();
                oom.stop();
            }
        }
        let mut t = self.lock();
        let is_starting = |t: &Table| t.proc_(id, exec_id).is_ok_and(|p| p.starting_as(pid));
        while is_starting(&t) {
            t = self.changed.wait(t).unwrap_or_else(|p| p.into_inner());
        }
        if who.is_init() {
            // containerd takes the init's exit as the end of the task and may delete it at
            // once: the exits of its execs go out first (containerd#9719). Every exec is
            // dead by now (with init's pid namespace, or killed by kill_leftovers); their
            // exits are only waiting for the reaper, their output or the lock.
            let deadline = Instant::now() + EXECS_FIRST_TIMEOUT;
            let execs_pending = |t: &Table| {
                t.containers
                    .get(id)
                    .is_some_and(|c| c.execs.values().any(|e| e.proc_.exit_pending()))
            };
            while execs_pending(&t) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    log::warn!(
                        "{id}: exec exits still pending {EXECS_FIRST_TIMEOUT:?} after init's"
                    );
                    break;
                }
                t = self
                    .changed
                    .wait_timeout(t, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        if !t
            .proc_mut(id, exec_id)
            .is_ok_and(|p| p.record_exit(pid, exit))
        {
            return;
        }
        self.events.send(
            TASK_EXIT_EVENT_TOPIC,
            &TaskExit {
                container_id: id.to_string(),
                id: if who.is_init() { id } else { exec_id }.to_string(),
                pid: pid as u32,
                exit_status: exit.status,
                exited_at: timestamp(exit.at),
                ..Default::default()
            },
        );
        self.changed.notify_all();
    }

    /// After init's exit, for a container without a pid namespace of its own (a pod sharing
    /// its process namespace, or the host's): SIGKILL whatever is left in its cgroup, as
    /// runc's shim does; children of init would otherwise keep running, and keep its output
    /// open. (With its own pid namespace the kernel has killed them all already.)
    fn kill_leftovers(&self, id: &str) {
        let bundle = match self.lock().containers.get(id) {
            // A Delete in progress kills everything itself (and holds the state's lock).
            Some(c) if c.shares_pid_ns && !c.deleting => c.bundle.clone(),
            _ => return,
        };
        let sigkill = nix::sys::signal::Signal::SIGKILL as i32;
        let store = Store::new(state_root(&bundle));
        match runtime_core::container::kill(&store, id, sigkill, true) {
            Ok(()) => {}
            Err(e) if Kind::from(&e) == Kind::NotFound => {}
            Err(e) => log::warn!("{id}: killing what is left after init's exit: {e}"),
        }
    }

    /// Waits until the process's exit is recorded, at most `timeout`.
    pub fn wait_exit(&self, id: &str, exec_id: &str, timeout: Option<Duration>) -> Result<Exit> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut t = self.lock();
        loop {
            if let Some(e) = t.proc_(id, exec_id)?.exit() {
                return Ok(e);
            }
            t = match deadline {
                None => self.changed.wait(t).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ShimError::new(
                            Kind::DeadlineExceeded,
                            format!("{}: no exit within {timeout:?}", ProcId::new(id, exec_id)),
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

    /// Calls `reply` with the exit of `exec_id` of `id` once it is recorded: at once if it
    /// is (or there is no such process), else from the one thread that answers every
    /// pending Wait. containerd (CRI) keeps a Wait open on every task of a pod for the
    /// task's life: a thread each would make a pod's shim grow with its containers.
    pub fn wait_deferred(self: &Arc<Self>, id: &str, exec_id: &str, reply: WaitReply) {
        let mut t = self.lock();
        match t.exit_of(id, exec_id) {
            Some(r) => {
                drop(t);
                reply(r);
            }
            None => {
                if let Err(e) = self.start_waits_thread() {
                    drop(t);
                    reply(Err(ShimError::other(format!(
                        "{}: starting the thread that answers waits: {e}",
                        ProcId::new(id, exec_id)
                    ))));
                    return;
                }
                t.waits.push(PendingWait {
                    id: id.to_string(),
                    exec_id: exec_id.to_string(),
                    reply,
                });
                self.changed.notify_all();
            }
        }
    }

    fn start_waits_thread(self: &Arc<Self>) -> std::result::Result<(), String> {
        self.waits_thread
            .get_or_init(|| {
                let tasks = self.clone();
                thread::Builder::new()
                    .name("waits".into())
                    .stack_size(128 * 1024)
                    .spawn(move || tasks.answer_waits())
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The waits thread: answers each pending Wait when its process's exit is recorded or
    /// the process goes away, woken by every change of the table.
    fn answer_waits(&self) {
        let mut t = self.lock();
        loop {
            let mut ready = Vec::new();
            for w in std::mem::take(&mut t.waits) {
                match t.exit_of(&w.id, &w.exec_id) {
                    Some(r) => ready.push((w.reply, r)),
                    None => t.waits.push(w),
                }
            }
            if ready.is_empty() {
                t = self.changed.wait(t).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Answered without the lock: writing to containerd may block.
            drop(t);
            for (reply, r) in ready {
                reply(r);
            }
            t = self.lock();
        }
    }

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
            r.map(|(pid, io)| (pid, io, mounted))
        });

        let (pid, io, rootfs_mounted) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir(state_root(&bundle));
                return Err(fail(e));
            }
        };
        let mut container = Container::new(
            bundle.clone(),
            Proc::new(pid, stdio.clone(), req.terminal).with_io(io),
            rootfs_mounted,
        );
        container.io_owner = opts.io_owner;
        container.restored = restore.is_some();
        container.oom = self.watch_oom(id, &bundle);
        container.shares_pid_ns =
            runtime_core::container::state(&Store::new(state_root(&bundle)), id)
                .is_ok_and(|c| c.state.shares_pid_ns);
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
    fn watch_oom(self: &Arc<Self>, id: &str, bundle: &Path) -> Option<Oom> {
        let st = runtime_core::container::state(&Store::new(state_root(bundle)), id)
            .map_err(|e| log::warn!("task {id}: no OOM events: {e}"))
            .ok()?;
        let weak = Arc::downgrade(self);
        let cid = id.to_string();
        Oom::start(id, st.state.cgroup_path, move || {
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
    fn register(&self, id: &str, container: Container, event: TaskCreate) {
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

    /// Start: of the init (here), or of an exec (exec.rs).
    pub fn start(self: &Arc<Self>, req: &StartRequest) -> Result<StartResponse> {
        if !req.exec_id.is_empty() {
            return self.start_exec(&req.id, &req.exec_id);
        }
        let id = req.id.as_str();
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

    /// Exec: adds exec `exec_id` to a live task, created; Start runs it.
    pub fn exec(&self, req: &ExecProcessRequest) -> Result<Empty> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        if exec_id.is_empty() {
            return Err(ShimError::invalid(format!("exec in task {id}: no exec id")));
        }
        let mut spec: Process = typeurl::spec_json(req.spec.as_ref(), "Process")
            .map_err(|e| e.context(format!("exec {exec_id}")))?;
        spec.set_terminal(Some(req.terminal));
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
        };
        let exec = ExecProc {
            proc_: Proc::new(0, stdio, req.terminal),
            spec,
        };
        let mut t = self.lock();
        t.container_mut(id)?.add_exec(id, exec_id, exec)?;
        self.events.send(
            TASK_EXEC_ADDED_EVENT_TOPIC,
            &TaskExecAdded {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                ..Default::default()
            },
        );
        Ok(Empty::new())
    }

    /// Start of exec `exec_id`: the zygote spawns it in the container.
    fn start_exec(self: &Arc<Self>, id: &str, exec_id: &str) -> Result<StartResponse> {
        let zygote = self.zygote()?;
        let (bundle, spec, stdio, terminal, stdin_closed, owner) = {
            let mut t = self.lock();
            let c = t.container_mut(id)?;
            let (bundle, owner) = (c.bundle.clone(), c.io_owner);
            let e = c.begin_exec_start(id, exec_id)?;
            let p = &e.proc_;
            let got = (
                bundle,
                e.spec.clone(),
                p.stdio().clone(),
                p.terminal(),
                p.stdin_closed(),
                owner,
            );
            t.begin_spawn();
            got
        };
        let r = spawn_exec(
            zygote,
            id,
            &bundle,
            &spec,
            &stdio,
            terminal,
            stdin_closed,
            owner,
        );
        let (pid, io) = match r {
            Ok(x) => x,
            Err(e) => {
                let mut t = self.lock();
                t.end_spawn();
                if let Ok(p) = t.proc_mut(id, exec_id) {
                    p.start_failed();
                }
                self.changed.notify_all();
                return Err(e.context(format!("start exec {exec_id} of task {id}")));
            }
        };
        self.exec_started(id, exec_id, pid, io)?;
        Ok(StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    /// Makes a started exec's pid known, queues TaskExecStarted, and claims an exit the
    /// reaper saw before (the process died before the zygote's reply arrived).
    fn exec_started(self: &Arc<Self>, id: &str, exec_id: &str, pid: i32, io: ProcIo) -> Result<()> {
        let mut t = self.lock();
        t.end_spawn();
        let early = t.claim(pid);
        let Ok(p) = t.proc_mut(id, exec_id) else {
            // Deleted meanwhile (a forced delete of the task): the process goes with it.
            drop(t);
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(exec_not_found(id, exec_id));
        };
        p.exec_started(pid, io, early.is_some());
        let drain = p.drain();
        t.by_pid.insert(pid, (id.to_string(), exec_id.to_string()));
        // Queued before any TaskExit of this process can be.
        self.events.send(
            TASK_EXEC_STARTED_EVENT_TOPIC,
            &TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid: pid as u32,
                ..Default::default()
            },
        );
        self.changed.notify_all();
        drop(t);
        if let Some(exit) = early {
            // The expected race of a command that exits at once (an exec probe): handled.
            log::debug!("exec {exec_id} of task {id}: {pid} exited before exec returned");
            self.report_exit(id.to_string(), exec_id.to_string(), pid, exit, drain);
        }
        Ok(())
    }

    /// Deletes an exec that exited or never started (containerd publishes no TaskDelete
    /// for execs).
    fn delete_exec(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
        let (pid, reaped) = {
            let t = self.lock();
            let p = t.proc_(id, exec_id)?;
            p.check_deletable(ProcId::new(id, exec_id))?;
            (p.pid(), p.reaped())
        };
        // Reaped, its output still draining: the exit comes within the drain timeout.
        let exit = if reaped {
            Some(self.wait_exit(id, exec_id, Some(DRAIN_TIMEOUT * 2))?)
        } else {
            None
        };
        self.lock().remove_exec(id, exec_id)?;
        self.changed.notify_all();
        Ok(DeleteResponse {
            pid: pid as u32,
            exit_status: exit.map(|e| e.status).unwrap_or(0),
            exited_at: exit.map(|e| timestamp(e.at)).unwrap_or_default(),
            ..Default::default()
        })
    }

    /// Delete: of a task whose init is not running (here), or of an exec (exec.rs).
    pub fn delete(&self, req: &DeleteRequest) -> Result<DeleteResponse> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(&req.id, &req.exec_id);
        }
        let id = req.id.as_str();
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

    /// Kill: signals the init (through runtime-core, with `all` every process of the
    /// container) or an exec.
    pub fn kill(&self, req: &KillRequest) -> Result<Empty> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        let who = ProcId::new(id, exec_id);
        let signal = i32::try_from(req.signal)
            .ok()
            .filter(|s| (0..=64).contains(s))
            .ok_or_else(|| ShimError::invalid(format!("invalid signal {}", req.signal)));
        let (bundle, pid) = {
            let t = self.lock();
            let c = t.container(id)?;
            let p = c.proc_(id, exec_id)?;
            // Nothing left to signal: as runc's shim, not an error.
            if req.all && who.is_init() && p.gone() {
                return Ok(Empty::new());
            }
            (c.bundle.clone(), p.signal_target(who)?)
        };
        let signal = signal?;
        if !who.is_init() {
            // An exec is our own child (not reaped yet): signal it directly.
            let pid = nix::unistd::Pid::from_raw(pid);
            return match runtime_core::syscall::signals::kill(pid, signal) {
                Ok(()) => Ok(Empty::new()),
                Err(e) if e.errno == nix::errno::Errno::ESRCH => Err(finished(who)),
                Err(e) => Err(ShimError::other(format!("kill {who}: {e}"))),
            };
        }
        // kill(2) does not fork: it runs here, in the server.
        let store = Store::new(state_root(&bundle));
        match runtime_core::container::kill(&store, id, signal, req.all) {
            Ok(()) => Ok(Empty::new()),
            Err(e) => {
                let gone = self.lock().containers.get(id).is_none_or(|c| c.init.gone());
                let e = ShimError::from(e);
                if gone || e.kind == Kind::FailedPrecondition {
                    Err(finished(who))
                } else {
                    Err(e.context(format!("kill {id}")))
                }
            }
        }
    }

    /// State: of the init, or of an exec.
    pub fn state(&self, req: &StateRequest) -> Result<StateResponse> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        let t = self.lock();
        let c = t.container(id)?;
        let p = c.proc_(id, exec_id)?;
        let exit = p.exit();
        Ok(StateResponse {
            id: if exec_id.is_empty() { id } else { exec_id }.to_string(),
            bundle: c.bundle.to_string_lossy().into_owned(),
            pid: p.pid() as u32,
            status: p.status(c.paused).into(),
            stdin: p.stdio().stdin.clone(),
            stdout: p.stdio().stdout.clone(),
            stderr: p.stdio().stderr.clone(),
            terminal: p.terminal(),
            exit_status: exit.map(|e| e.status).unwrap_or(0),
            exited_at: exit.map(|e| timestamp(e.at)).unwrap_or_default(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        })
    }

    /// Pids: every process in the container's cgroup, execs named.
    pub fn pids(&self, req: &PidsRequest) -> Result<PidsResponse> {
        let id = req.id.as_str();
        let (bundle, execs) = {
            let t = self.lock();
            let c = t.container(id)?;
            let execs: HashMap<i32, String> = c
                .execs
                .iter()
                .filter(|(_, e)| e.proc_.pid() != 0)
                .map(|(x, e)| (e.proc_.pid(), x.clone()))
                .collect();
            (c.bundle.clone(), execs)
        };
        let store = Store::new(state_root(&bundle));
        let pids = match resources::pids(&store, id) {
            Ok(p) => p,
            Err(e) => {
                let e = ShimError::from(e);
                return match e.kind {
                    Kind::NotFound => Ok(PidsResponse::default()),
                    _ => Err(e.context(format!("pids {id}"))),
                };
            }
        };
        let mut processes = Vec::with_capacity(pids.len());
        for p in pids {
            let pid = p.as_raw();
            let info = match execs.get(&pid) {
                Some(exec_id) => MessageField::some(typeurl::message(
                    PROCESS_DETAILS,
                    &ProcessDetails {
                        exec_id: exec_id.clone(),
                        ..Default::default()
                    },
                )?),
                None => MessageField::none(),
            };
            processes.push(ProcessInfo {
                pid: pid as u32,
                info,
                ..Default::default()
            });
        }
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    /// The bundle of a task whose init has not exited (what pause, resume, update and stats
    /// act on).
    fn live_bundle(&self, id: &str) -> Result<PathBuf> {
        let t = self.lock();
        let c = t.container(id)?;
        c.check_live(id)?;
        Ok(c.bundle.clone())
    }

    /// Pause (freeze) or Resume (thaw) the task `id`, then the event containerd expects.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<Empty> {
        let bundle = self.live_bundle(id)?;
        let store = Store::new(state_root(&bundle));
        let (what, result) = if paused {
            ("pause", resources::pause(&store, id))
        } else {
            ("resume", resources::resume(&store, id))
        };
        result.map_err(|e| ShimError::from(e).context(format!("{what} {id}")))?;
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.paused = paused;
        }
        let container_id = id.to_string();
        if paused {
            let event = TaskPaused {
                container_id,
                ..Default::default()
            };
            self.events.send(TASK_PAUSED_EVENT_TOPIC, &event);
        } else {
            let event = TaskResumed {
                container_id,
                ..Default::default()
            };
            self.events.send(TASK_RESUMED_EVENT_TOPIC, &event);
        }
        Ok(Empty::new())
    }

    /// Dumps the task with CRIU (checkpoint.rs). containerd pauses it first and resumes it
    /// after; with `exit` CRIU kills it, and its exit is reported as any other.
    pub fn checkpoint(&self, req: &CheckpointTaskRequest) -> Result<Empty> {
        let id = req.id.as_str();
        let dump = checkpoint::decode(&req.path, req.options.as_ref())?;
        let bundle = {
            let t = self.lock();
            let c = t.container(id)?;
            c.check_live(id)?;
            // runc's shim refuses too: a created task has nothing CRIU could dump yet.
            if !c.init.started() {
                return Err(ShimError::precondition(format!(
                    "task {id} is not running: only a running or paused task can be checkpointed"
                )));
            }
            c.bundle.clone()
        };
        let req = Request::Checkpoint {
            id: id.to_string(),
            bundle: bundle.clone(),
            state_root: state_root(&bundle),
            dump,
        };
        self.zygote()?
            .call(&req, &[], zygote::CHECKPOINT_TIMEOUT)
            .and_then(expect_done)
            .map_err(|e| e.context(format!("checkpoint {id}")))?;
        Ok(Empty::new())
    }

    /// Update: the task's cgroup resources (runtime-spec LinuxResources only).
    pub fn update(&self, req: &UpdateTaskRequest) -> Result<Empty> {
        let id = req.id.as_str();
        let resources: LinuxResources =
            typeurl::spec_json(req.resources.as_ref(), "LinuxResources")
                .map_err(|e| e.context(format!("update {id}")))?;
        let bundle = self.live_bundle(id)?;
        resources::update(&Store::new(state_root(&bundle)), id, &resources)
            .map_err(|e| ShimError::from(e).context(format!("update {id}")))?;
        Ok(Empty::new())
    }

    /// Stats: the task's cgroup metrics, v1 or v2 as the host is.
    pub fn stats(&self, req: &StatsRequest) -> Result<StatsResponse> {
        let id = req.id.as_str();
        let bundle = self.live_bundle(id)?;
        let stats = resources::stats(&Store::new(state_root(&bundle)), id)
            .map_err(|e| ShimError::from(e).context(format!("stats {id}")))?;
        let unified = *self.unified.get_or_init(metrics::unified_host);
        Ok(StatsResponse {
            stats: MessageField::some(metrics::to_any(&stats, unified)?),
            ..Default::default()
        })
    }

    /// ResizePty: of the process's terminal, if it has one.
    pub fn resize_pty(&self, req: &ResizePtyRequest) -> Result<Empty> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        let console = self.lock().proc_(id, exec_id)?.console();
        // A process without a terminal has no size to set, as with runc's shim.
        if let Some(c) = console {
            c.resize(req.width, req.height)?;
        }
        Ok(Empty::new())
    }

    /// CloseIO: ends the process's stdin (now, or when it starts).
    pub fn close_io(&self, req: &CloseIORequest) -> Result<Empty> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        if !req.stdin {
            return Ok(Empty::new());
        }
        self.lock().proc_mut(id, exec_id)?.close_stdin();
        Ok(Empty::new())
    }

    /// Connect: the shim's pid and the task's.
    pub fn connect(&self, req: &ConnectRequest) -> ConnectResponse {
        let t = self.lock();
        ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: t
                .containers
                .get(&req.id)
                .map(|c| c.init.pid() as u32)
                .unwrap_or(0),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }
    }

    /// Shutdown: the shim exits once it serves no task (at once with `now`).
    pub fn shutdown_request(&self, req: &ShutdownRequest) {
        let t = self.lock();
        if req.now || (t.containers.is_empty() && t.creating.is_empty()) {
            drop(t);
            self.exit.signal();
        }
    }
}

/// The descriptors as the zygote's call takes them.
fn borrowed(fds: &[OwnedFd]) -> Vec<BorrowedFd<'_>> {
    fds.iter().map(|f| f.as_fd()).collect()
}

/// Sets up the I/O and has the zygote create the container, or restore it from the
/// checkpoint `restore`; returns init's pid.
fn spawn_container(
    zygote: &Zygote,
    id: &str,
    bundle: &Path,
    stdio: &StdioPaths,
    terminal: bool,
    opts: &options::TaskOptions,
    restore: Option<&checkpoint::Restore>,
) -> Result<(i32, ProcIo)> {
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
    let pid = match reply.map_err(|e| e.context(format!("{what} {id}")))? {
        Reply::Created { pid } => pid,
        Reply::Failed(e) => return Err(e.context(format!("{what} {id}"))),
        other => {
            return Err(ShimError::other(format!(
                "zygote: unexpected reply {other:?}"
            )))
        }
    };
    // The container holds its own copies now: the copies see end-of-file when it (and
    // not the shim) closes them.
    match prepared.finish() {
        Ok(io) => Ok((pid, io)),
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

/// Sets up the I/O and has the zygote start an exec; returns its pid.
#[allow(clippy::too_many_arguments)]
fn spawn_exec(
    zygote: &Zygote,
    id: &str,
    bundle: &Path,
    spec: &Process,
    stdio: &StdioPaths,
    terminal: bool,
    stdin_closed: bool,
    owner: Option<(u32, u32)>,
) -> Result<(i32, ProcIo)> {
    let prepared = procio::prepare(id, stdio, terminal, stdin_closed, owner)?;
    let memfd = zygote::process_memfd(spec)?;
    let mut fds = vec![memfd.as_fd()];
    fds.extend(borrowed(&prepared.child));
    let req = Request::Exec {
        id: id.to_string(),
        state_root: state_root(bundle),
        terminal,
    };
    let reply = zygote.call(&req, &fds, zygote::EXEC_TIMEOUT);
    drop(fds);
    let pid = match reply? {
        Reply::Spawned { pid } => pid,
        Reply::Failed(e) => return Err(e),
        other => {
            return Err(ShimError::other(format!(
                "zygote: unexpected reply {other:?}"
            )))
        }
    };
    match prepared.finish() {
        Ok(io) => Ok((pid, io)),
        Err(e) => {
            // It runs, but nothing can reach its terminal: it goes. Its exit is an unknown
            // pid's for the reaper.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            Err(e)
        }
    }
}

/// Deletes a container in the server, when the zygote cannot (`why`): all but poststop
/// hooks, which fork and wait for their process, as only the zygote may.
fn delete_without_zygote(id: &str, bundle: &Path, force: bool, why: ShimError) -> Result<()> {
    let store = Store::new(state_root(bundle));
    let hooks = runtime_core::container::state(&store, id)
        .ok()
        .and_then(|c| c.state.hooks)
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

/// The ttrpc Task service.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

impl Service {
    /// The service over `shared`.
    pub fn new(shared: Arc<Shared>) -> Service {
        Service { shared }
    }

    /// Wait, answered without a thread of its own (see [`Shared::wait_deferred`]).
    pub fn wait_rpc(&self) -> WaitRpc {
        WaitRpc {
            shared: self.shared.clone(),
        }
    }
}

fn wait_response(e: Exit) -> WaitResponse {
    WaitResponse {
        exit_status: e.status,
        exited_at: timestamp(e.at),
        ..Default::default()
    }
}

/// The Wait RPC as [`crate::ttrpc_server`] defers it.
pub struct WaitRpc {
    shared: Arc<Shared>,
}

impl crate::ttrpc_server::Deferred for WaitRpc {
    fn start(&self, req: ttrpc::Request, reply: crate::ttrpc_server::Reply) {
        use containerd_shim_protos::protobuf::Message;

        let req = match WaitRequest::parse_from_bytes(&req.payload) {
            Ok(r) => r,
            Err(e) => {
                let e = ShimError::invalid(format!("decoding a WaitRequest: {e}"));
                return reply.answer(answer::<WaitResponse>("wait", "", Err(e)));
            }
        };
        let id = req.id.clone();
        self.shared.wait_deferred(
            &req.id,
            &req.exec_id,
            Box::new(move |r| {
                reply.answer(answer("wait", &id, r.map(wait_response)));
            }),
        );
    }
}

/// The RPC's reply. A failure goes back to containerd, which reports it with the call (CRI
/// logs a failed CreateContainer or StartContainer at error level, ctr prints it): logged
/// here only at debug level, as runc's shim logs none, so that a container whose command
/// cannot run (kubelet retries it with back-off) does not log each failure twice.
fn answer<T>(what: &str, id: &str, r: Result<T>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        if !matches!(e.kind, Kind::NotFound | Kind::FailedPrecondition) {
            log::debug!("{what} {id}: {e}");
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
        let r = answer("start", &req.id, self.shared.start(&req));
        // The shim mostly idles after a start: give back what create and start freed.
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe { libc::malloc_trim(0) };
        r
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

    /// The blocking Wait, for a server without deferred methods: shim::serve answers Wait
    /// through [`WaitRpc`] instead.
    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let r = self
            .shared
            .wait_exit(&req.id, &req.exec_id, None)
            .map(wait_response);
        answer("wait", &req.id, r)
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        Ok(self.shared.connect(&req))
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        self.shared.shutdown_request(&req);
        Ok(Empty::new())
    }

    fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        answer("pause", &req.id, self.shared.set_paused(&req.id, true))
    }

    fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        answer("resume", &req.id, self.shared.set_paused(&req.id, false))
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        answer("checkpoint", &req.id, self.shared.checkpoint(&req))
    }

    fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        answer("exec", &req.id, self.shared.exec(&req))
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        answer("resize pty", &req.id, self.shared.resize_pty(&req))
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        answer("close io", &req.id, self.shared.close_io(&req))
    }

    fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        answer("update", &req.id, self.shared.update(&req))
    }

    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        answer("stats", &req.id, self.shared.stats(&req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Item, Publish};
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::types::task::Status;
    use std::sync::Mutex;

    /// Records the type of every event published, in order.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Publish for Recorder {
        fn publish(
            &self,
            _ns: &str,
            item: &Item,
        ) -> std::result::Result<(), crate::events::PublishError> {
            let name = item.event.type_url.trim_start_matches("containerd.events.");
            self.0.lock().unwrap().push(name.to_string());
            Ok(())
        }
    }

    impl Recorder {
        /// The events so far.
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

    /// Shared without a zygote, and what they publish.
    fn shared() -> (Arc<Shared>, Recorder) {
        let rec = Recorder::default();
        let events = Events::start(rec.clone(), "ns".into());
        let exit = Arc::new(ExitSignal::default());
        (
            Shared::new(Err("none in unit tests".into()), events, exit),
            rec,
        )
    }

    /// A created container whose init is `pid`, its output drained by `drain`.
    fn container(pid: i32, drain: Arc<Drain>) -> Container {
        let init = Proc::new(pid, StdioPaths::default(), false).with_io(ProcIo::none(drain));
        Container::new("/nonexistent/bundle".into(), init, false)
    }

    /// Registers task `id` as Create does once the zygote created it.
    fn register(s: &Shared, id: &str, pid: i32, drain: Arc<Drain>) {
        s.lock().begin_create(id).unwrap();
        s.register(id, container(pid, drain), TaskCreate::default());
    }

    /// Starts the init of `id` as Start does once the zygote answered.
    fn start_init(s: &Shared, id: &str) {
        let mut t = s.lock();
        let c = t.container_mut(id).unwrap();
        c.begin_start(id).unwrap();
        c.init.start_succeeded();
    }

    /// The recorded exit status of `exec_id` of `id`.
    fn exit_of(s: &Shared, id: &str, exec_id: &str) -> Option<u32> {
        s.lock()
            .proc_(id, exec_id)
            .ok()
            .and_then(|p| p.exit().map(|e| e.status))
    }

    /// The exit of `exec_id` of `id`, waited for at most 10 s.
    fn wait10(s: &Shared, id: &str, exec_id: &str) -> Result<Exit> {
        s.wait_exit(id, exec_id, Some(Duration::from_secs(10)))
    }

    /// An Exec of `sh` as containerd sends it.
    fn exec_req(id: &str, exec_id: &str) -> ExecProcessRequest {
        ExecProcessRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            spec: MessageField::some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: br#"{"user":{"uid":0,"gid":0},"args":["sh"],"cwd":"/"}"#.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// State's status of `exec_id` of `id`.
    fn exec_status(s: &Shared, id: &str, exec_id: &str) -> Result<Status> {
        let req = StateRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        };
        s.state(&req).map(|st| st.status.enum_value().unwrap())
    }

    /// Begins the Start of exec `exec_id` of `id` as start_exec does before it calls the
    /// zygote.
    fn begin_exec_start(s: &Shared, id: &str, exec_id: &str) {
        let mut t = s.lock();
        let p = t.proc_mut(id, exec_id).unwrap();
        p.begin_start(ProcId::new(id, exec_id)).unwrap();
        t.begin_spawn();
    }

    /// What start_exec does once the zygote answered.
    fn start_exec_as_the_zygote_would(s: &Arc<Shared>, id: &str, exec_id: &str, pid: i32) {
        begin_exec_start(s, id, exec_id);
        let io = ProcIo::none(Arc::default());
        s.exec_started(id, exec_id, pid, io).unwrap();
    }

    #[test]
    fn an_exit_is_recorded_and_published_once() {
        let (s, rec) = shared();
        register(&s, "c1", 100, Arc::default());
        s.on_exit(100, 3);
        s.on_exit(100, 3);
        assert_eq!(wait10(&s, "c1", "").unwrap().status, 3);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(rec.wait_for(2), ["TaskCreate", "TaskExit"]);
    }

    #[test]
    fn an_init_that_dies_before_create_returns_is_still_reported() {
        let (s, rec) = shared();
        s.lock().begin_create("c2").unwrap();
        // The reaper sees the pid before the zygote's reply made it known.
        s.on_exit(200, 137);
        assert!(s.lock().unclaimed.contains_key(&200));
        s.register("c2", container(200, Arc::default()), TaskCreate::default());
        assert_eq!(exit_of(&s, "c2", ""), Some(137));
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
        s.lock()
            .container_mut("c3")
            .unwrap()
            .begin_start("c3")
            .unwrap();
        s.on_exit(300, 0);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            exit_of(&s, "c3", ""),
            None,
            "exit recorded while Start is in progress"
        );
        // Start finishes as Shared::start does.
        {
            let mut t = s.lock();
            t.container_mut("c3").unwrap().init.start_succeeded();
            s.events.send(TASK_START_EVENT_TOPIC, &TaskStart::default());
            s.changed.notify_all();
        }
        assert_eq!(wait10(&s, "c3", "").unwrap().status, 0);
        assert_eq!(rec.wait_for(3), ["TaskCreate", "TaskStart", "TaskExit"]);
    }

    #[test]
    fn wait_before_start_returns_at_the_exit() {
        let (s, _rec) = shared();
        register(&s, "c4", 400, Arc::default());
        let s2 = s.clone();
        let waiter = thread::spawn(move || s2.wait_exit("c4", "", None));
        thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished());
        s.on_exit(400, 9);
        assert_eq!(waiter.join().unwrap().unwrap().status, 9);
        let e = s.wait_exit("nope", "", None).unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
        let e = s.wait_exit("c4", "nope", None).unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
    }

    #[test]
    fn a_deferred_wait_is_answered_at_the_exit_by_one_thread() {
        let (s, _rec) = shared();
        let (tx, rx) = std::sync::mpsc::channel();
        for (id, pid) in [("c4a", 410), ("c4b", 420)] {
            register(&s, id, pid, Arc::default());
            let tx = tx.clone();
            let key = id.to_string();
            s.wait_deferred(id, "", Box::new(move |r| tx.send((key, r)).unwrap()));
        }
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        assert_eq!(s.lock().waits.len(), 2);
        s.on_exit(420, 7);
        let (id, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((id.as_str(), r.unwrap().status), ("c4b", 7));
        s.on_exit(410, 8);
        let (id, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((id.as_str(), r.unwrap().status), ("c4a", 8));
        assert!(s.lock().waits.is_empty());
        // Known already, or never to be: answered at once, on the caller's thread.
        let answer = |id: &str, exec_id: &str| {
            let got = Arc::new(Mutex::new(None));
            let g = got.clone();
            s.wait_deferred(id, exec_id, Box::new(move |r| *g.lock().unwrap() = Some(r)));
            let r = got.lock().unwrap().take();
            r.expect("answered at once")
        };
        assert_eq!(answer("c4a", "").unwrap().status, 8);
        assert_eq!(answer("nope", "").unwrap_err().kind, Kind::NotFound);
        assert_eq!(answer("c4a", "nope").unwrap_err().kind, Kind::NotFound);
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
            exit_of(&s, "c5", ""),
            None,
            "exit recorded before the output drained"
        );
        drain.finish();
        assert_eq!(wait10(&s, "c5", "").unwrap().status, 0);
        assert_eq!(rec.wait_for(2), ["TaskCreate", "TaskExit"]);
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

    #[test]
    fn an_exec_has_its_own_life_and_events() {
        let (s, rec) = shared();
        register(&s, "c8", 800, Arc::default());
        start_init(&s, "c8");
        s.exec(&exec_req("c8", "e1")).unwrap();
        assert_eq!(
            s.exec(&exec_req("c8", "e1")).unwrap_err().kind,
            Kind::AlreadyExists
        );
        let mut bad = exec_req("c8", "e2");
        bad.spec = MessageField::none();
        assert_eq!(s.exec(&bad).unwrap_err().kind, Kind::InvalidArgument);
        assert_eq!(exec_status(&s, "c8", "e1").unwrap(), Status::CREATED);
        let kill = KillRequest {
            id: "c8".into(),
            exec_id: "e1".into(),
            signal: 9,
            ..Default::default()
        };
        assert_eq!(s.kill(&kill).unwrap_err().kind, Kind::FailedPrecondition);
        // Without a zygote, Start is Unavailable and the exec stays as it was.
        let start = StartRequest {
            id: "c8".into(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        assert_eq!(s.start(&start).unwrap_err().kind, Kind::Unavailable);
        assert_eq!(exec_status(&s, "c8", "e1").unwrap(), Status::CREATED);

        start_exec_as_the_zygote_would(&s, "c8", "e1", 801);
        assert_eq!(exec_status(&s, "c8", "e1").unwrap(), Status::RUNNING);
        let del = DeleteRequest {
            id: "c8".into(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        assert_eq!(s.delete(&del).unwrap_err().kind, Kind::FailedPrecondition);
        // The exec's exit is the exec's, not the task's.
        s.on_exit(801, 4);
        assert_eq!(wait10(&s, "c8", "e1").unwrap().status, 4);
        assert_eq!(exec_status(&s, "c8", "e1").unwrap(), Status::STOPPED);
        assert_eq!(exit_of(&s, "c8", ""), None);
        assert_eq!(s.kill(&kill).unwrap_err().kind, Kind::NotFound);
        let r = s.delete(&del).unwrap();
        assert_eq!((r.pid, r.exit_status), (801, 4));
        assert_eq!(
            exec_status(&s, "c8", "e1").unwrap_err().kind,
            Kind::NotFound
        );
        assert!(!s.lock().by_pid.contains_key(&801));
        assert_eq!(
            rec.wait_for(4),
            ["TaskCreate", "TaskExecAdded", "TaskExecStarted", "TaskExit"]
        );
        // The task itself is untouched.
        assert_eq!(exec_status(&s, "c8", "").unwrap(), Status::RUNNING);
    }

    #[test]
    fn an_exec_that_dies_before_start_returns_is_reported_after_exec_started() {
        let (s, rec) = shared();
        register(&s, "c9", 900, Arc::default());
        s.exec(&exec_req("c9", "e1")).unwrap();
        begin_exec_start(&s, "c9", "e1");
        s.on_exit(901, 1);
        assert!(s.lock().unclaimed.contains_key(&901));
        s.exec_started("c9", "e1", 901, ProcIo::none(Arc::default()))
            .unwrap();
        assert_eq!(wait10(&s, "c9", "e1").unwrap().status, 1);
        assert_eq!(
            rec.wait_for(4),
            ["TaskCreate", "TaskExecAdded", "TaskExecStarted", "TaskExit"]
        );
        assert_eq!(s.lock().spawning, 0);
    }

    #[test]
    fn close_io_before_an_exec_starts_is_remembered() {
        let (s, _rec) = shared();
        register(&s, "c10", 1000, Arc::default());
        s.exec(&exec_req("c10", "e1")).unwrap();
        let req = CloseIORequest {
            id: "c10".into(),
            exec_id: "e1".into(),
            stdin: true,
            ..Default::default()
        };
        s.close_io(&req).unwrap();
        assert!(
            s.lock().proc_("c10", "e1").unwrap().stdin_closed(),
            "CloseIO forgotten"
        );
        let other = CloseIORequest {
            exec_id: "nope".into(),
            ..req
        };
        assert_eq!(s.close_io(&other).unwrap_err().kind, Kind::NotFound);
        // A never started exec can be deleted.
        let del = DeleteRequest {
            id: "c10".into(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        assert_eq!(s.delete(&del).unwrap().pid, 0);
    }

    #[test]
    fn an_exec_being_started_is_not_deleted() {
        let (s, _rec) = shared();
        register(&s, "c13", 1300, Arc::default());
        start_init(&s, "c13");
        s.exec(&exec_req("c13", "e1")).unwrap();
        begin_exec_start(&s, "c13", "e1");
        let del = DeleteRequest {
            id: "c13".into(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        assert_eq!(s.delete(&del).unwrap_err().kind, Kind::FailedPrecondition);
        // Its start failed: created again, deletable.
        s.lock().proc_mut("c13", "e1").unwrap().start_failed();
        s.lock().end_spawn();
        assert_eq!(exec_status(&s, "c13", "e1").unwrap(), Status::CREATED);
        s.delete(&del).unwrap();
        assert_eq!(s.delete(&del).unwrap_err().kind, Kind::NotFound);
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
        assert_eq!(s.set_paused("x", true).unwrap_err().kind, Kind::NotFound);
        let stats = StatsRequest {
            id: "x".into(),
            ..Default::default()
        };
        assert_eq!(s.stats(&stats).unwrap_err().kind, Kind::NotFound);
        let resize = ResizePtyRequest {
            id: "x".into(),
            ..Default::default()
        };
        assert_eq!(s.resize_pty(&resize).unwrap_err().kind, Kind::NotFound);
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
        wait10(&s, "c7", "").unwrap();
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
        // Nothing to pause, resume, update or measure in a stopped task.
        assert_eq!(
            s.set_paused("c7", true).unwrap_err().kind,
            Kind::FailedPrecondition
        );
        let stats = StatsRequest {
            id: "c7".into(),
            ..Default::default()
        };
        assert_eq!(s.stats(&stats).unwrap_err().kind, Kind::FailedPrecondition);
        // And no exec in it.
        let e = s.exec(&exec_req("c7", "e1")).unwrap_err();
        assert_eq!(e.kind, Kind::FailedPrecondition);
    }

    #[test]
    fn a_paused_task_reports_paused_and_takes_no_exec() {
        let (s, _rec) = shared();
        register(&s, "c11", 1100, Arc::default());
        s.exec(&exec_req("c11", "e1")).unwrap();
        start_init(&s, "c11");
        s.lock().container_mut("c11").unwrap().paused = true;
        assert_eq!(exec_status(&s, "c11", "").unwrap(), Status::PAUSED);
        let start = StartRequest {
            id: "c11".into(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        // (Unavailable first without a zygote; the zygote check comes before the table's.)
        assert!(matches!(
            s.start(&start).unwrap_err().kind,
            Kind::Unavailable | Kind::FailedPrecondition
        ));
    }

    #[test]
    fn a_created_task_is_not_checkpointed() {
        let (s, _rec) = shared();
        register(&s, "c14", 1400, Arc::default());
        let req = CheckpointTaskRequest {
            id: "c14".into(),
            path: "/nonexistent/image".into(),
            ..Default::default()
        };
        assert_eq!(
            s.checkpoint(&req).unwrap_err().kind,
            Kind::FailedPrecondition
        );
    }

    #[test]
    fn update_takes_runtime_spec_resources_only() {
        let (s, _rec) = shared();
        register(&s, "c12", 1200, Arc::default());
        let req = UpdateTaskRequest {
            id: "c12".into(),
            resources: MessageField::some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/WindowsResources"
                    .into(),
                value: b"{}".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(s.update(&req).unwrap_err().kind, Kind::InvalidArgument);
    }
}
