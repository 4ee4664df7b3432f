//! Exec processes: Exec adds one to a task, created; Start has the zygote spawn it in the
//! container; Delete with its exec id removes it once it exited (or never started).

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use containerd_shim_protos::api::{DeleteResponse, Empty, StartResponse};
use containerd_shim_protos::events::task::{TaskExecAdded, TaskExecStarted};
use containerd_shim_protos::shim::shim::ExecProcessRequest;
use containerd_shim_protos::topics::{TASK_EXEC_ADDED_EVENT_TOPIC, TASK_EXEC_STARTED_EVENT_TOPIC};
use oci_spec::runtime::Process;

use crate::error::{Result, ShimError};
use crate::io::process::{self as procio, ProcIo};
use crate::io::StdioPaths;
use crate::typeurl;
use crate::zygote::{self, Reply, Request, Zygote};

use super::exits::DRAIN_TIMEOUT;
use super::process::{ExecProc, Proc, ProcId};
use super::table::exec_not_found;
use super::{borrowed, state_root, timestamp, unexpected, Tasks};

impl Tasks {
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

    /// Start of exec `exec_id` of task `id`: the zygote spawns it in the container.
    pub fn start_exec(self: &Arc<Self>, id: &str, exec_id: &str) -> Result<StartResponse> {
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
    pub(super) fn exec_started(
        self: &Arc<Self>,
        id: &str,
        exec_id: &str,
        pid: i32,
        io: ProcIo,
    ) -> Result<()> {
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
    pub fn delete_exec(&self, id: &str, exec_id: &str) -> Result<DeleteResponse> {
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
        other => return Err(unexpected(other)),
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

#[cfg(test)]
mod tests {
    use containerd_shim_protos::api::KillRequest;
    use containerd_shim_protos::protobuf::MessageField;
    use containerd_shim_protos::shim::shim::CloseIORequest;
    use containerd_shim_protos::types::task::Status;

    use super::*;
    use crate::error::Kind;
    use crate::task::testing::{
        begin_exec_start, exec_req, exec_status, exit_of, register, start_exec_as_the_zygote_would,
        start_init, tasks, wait10,
    };

    #[test]
    fn an_exec_has_its_own_life_and_events() {
        let (s, rec) = tasks();
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
        let e = s.start_exec("c8", "e1").unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
        assert_eq!(exec_status(&s, "c8", "e1").unwrap(), Status::CREATED);

        start_exec_as_the_zygote_would(&s, "c8", "e1", 801);
        assert_eq!(exec_status(&s, "c8", "e1").unwrap(), Status::RUNNING);
        let del = || s.delete_exec("c8", "e1");
        assert_eq!(del().unwrap_err().kind, Kind::FailedPrecondition);
        // The exec's exit is the exec's, not the task's.
        s.on_exit(801, 4);
        assert_eq!(wait10(&s, "c8", "e1").unwrap().status, 4);
        assert_eq!(exec_status(&s, "c8", "e1").unwrap(), Status::STOPPED);
        assert_eq!(exit_of(&s, "c8", ""), None);
        assert_eq!(s.kill(&kill).unwrap_err().kind, Kind::NotFound);
        let r = del().unwrap();
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
        let (s, rec) = tasks();
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
        let (s, _rec) = tasks();
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
        let del = || s.delete_exec("c10", "e1");
        assert_eq!(del().unwrap().pid, 0);
    }

    #[test]
    fn an_exec_being_started_is_not_deleted() {
        let (s, _rec) = tasks();
        register(&s, "c13", 1300, Arc::default());
        start_init(&s, "c13");
        s.exec(&exec_req("c13", "e1")).unwrap();
        begin_exec_start(&s, "c13", "e1");
        let del = || s.delete_exec("c13", "e1");
        assert_eq!(del().unwrap_err().kind, Kind::FailedPrecondition);
        // Its start failed: created again, deletable.
        s.lock().proc_mut("c13", "e1").unwrap().start_failed();
        s.lock().end_spawn();
        assert_eq!(exec_status(&s, "c13", "e1").unwrap(), Status::CREATED);
        del().unwrap();
        assert_eq!(del().unwrap_err().kind, Kind::NotFound);
    }
}
