//! What acts on a task that exists, without changing its life: Kill, State, Pids, Pause
//! and Resume, Checkpoint, Update, Stats, ResizePty, CloseIO, Connect and Shutdown.

use std::collections::HashMap;
use std::path::PathBuf;

use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, Empty, KillRequest, PidsRequest, PidsResponse,
    ShutdownRequest, StateRequest, StateResponse,
};
use containerd_shim_protos::events::task::{TaskPaused, TaskResumed};
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::shim::shim::{
    CheckpointTaskRequest, CloseIORequest, ResizePtyRequest, StatsRequest, StatsResponse,
    UpdateTaskRequest,
};
use containerd_shim_protos::topics::{TASK_PAUSED_EVENT_TOPIC, TASK_RESUMED_EVENT_TOPIC};
use containerd_shim_protos::types::task::ProcessInfo;
use oci_spec::runtime::LinuxResources;
use runtime_core::container::Container as Handle;

use crate::checkpoint;
use crate::error::{Kind, Result, ShimError};
use crate::metrics;
use crate::typeurl;
use crate::zygote::{self, Request};

use super::process::{finished, ProcId};
use super::{expect_done, on_container, state_root, timestamp, HandleSlot, Tasks};

/// The protobuf name of the Pids info of an exec process (containerd's runc options).
const PROCESS_DETAILS: &str = "containerd.runc.v1.ProcessDetails";

impl Tasks {
    /// Kill: signals the init (through runtime-core, with `all` every process of the
    /// container) or an exec.
    pub fn kill(&self, req: &KillRequest) -> Result<Empty> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        let who = ProcId::new(id, exec_id);
        let signal = i32::try_from(req.signal)
            .ok()
            .filter(|s| (0..=64).contains(s))
            .ok_or_else(|| ShimError::invalid(format!("invalid signal {}", req.signal)));
        let (bundle, handle, pid) = {
            let t = self.lock();
            let c = t.container(id)?;
            let p = c.proc_(id, exec_id)?;
            // Nothing left to signal: as runc's shim, not an error.
            if req.all && who.is_init() && p.gone() {
                return Ok(Empty::new());
            }
            (c.bundle.clone(), c.handle.clone(), p.signal_target(who)?)
        };
        let signal = signal?;
        if !who.is_init() {
            // An exec is our own child (not reaped yet): signal it directly.
            let pid = nix::unistd::Pid::from_raw(pid);
            return match runtime_core::os::signals::kill(pid, signal) {
                Ok(()) => Ok(Empty::new()),
                Err(e) if e.errno == nix::errno::Errno::ESRCH => Err(finished(who)),
                Err(e) => Err(ShimError::other(format!("kill {who}: {e}"))),
            };
        }
        // kill(2) does not fork: it runs here, in the server.
        match on_container(&handle, &bundle, id, |c| c.kill(signal, req.all)) {
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
        let (bundle, handle, execs) = {
            let t = self.lock();
            let c = t.container(id)?;
            let execs: HashMap<i32, String> = c
                .execs
                .iter()
                .filter(|(_, e)| e.proc_.pid() != 0)
                .map(|(x, e)| (e.proc_.pid(), x.clone()))
                .collect();
            (c.bundle.clone(), c.handle.clone(), execs)
        };
        let pids = match on_container(&handle, &bundle, id, Handle::pids) {
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

    /// The bundle and handle of a task whose init has not exited (what pause, resume,
    /// update and stats act on).
    fn live_container(&self, id: &str) -> Result<(PathBuf, HandleSlot)> {
        let t = self.lock();
        let c = t.container(id)?;
        c.check_live(id)?;
        Ok((c.bundle.clone(), c.handle.clone()))
    }

    /// Pause (freeze) or Resume (thaw) the task `id`, then the event containerd expects.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<Empty> {
        let (bundle, handle) = self.live_container(id)?;
        let what = if paused { "pause" } else { "resume" };
        let op = if paused {
            Handle::pause
        } else {
            Handle::resume
        };
        on_container(&handle, &bundle, id, op)
            .map_err(|e| ShimError::from(e).context(format!("{what} {id}")))?;
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
        let (bundle, handle) = self.live_container(id)?;
        on_container(&handle, &bundle, id, |c| c.update(&resources))
            .map_err(|e| ShimError::from(e).context(format!("update {id}")))?;
        Ok(Empty::new())
    }

    /// Stats: the task's cgroup metrics, v1 or v2 as the host is.
    pub fn stats(&self, req: &StatsRequest) -> Result<StatsResponse> {
        let id = req.id.as_str();
        let (bundle, handle) = self.live_container(id)?;
        let stats = on_container(&handle, &bundle, id, Handle::stats)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::types::task::Status;

    use super::*;
    use crate::task::testing::{exec_req, exec_status, register, start_init, tasks, wait10};

    #[test]
    fn rpcs_on_unknown_tasks_are_not_found() {
        let (s, _rec) = tasks();
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
        let (s, _rec) = tasks();
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
        let (s, _rec) = tasks();
        register(&s, "c11", 1100, Arc::default());
        s.exec(&exec_req("c11", "e1")).unwrap();
        start_init(&s, "c11");
        s.lock().container_mut("c11").unwrap().paused = true;
        assert_eq!(exec_status(&s, "c11", "").unwrap(), Status::PAUSED);
        // (Unavailable first without a zygote; the zygote check comes before the table's.)
        assert!(matches!(
            s.start_exec("c11", "e1").unwrap_err().kind,
            Kind::Unavailable | Kind::FailedPrecondition
        ));
    }

    #[test]
    fn a_created_task_is_not_checkpointed() {
        let (s, _rec) = tasks();
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
        let (s, _rec) = tasks();
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
