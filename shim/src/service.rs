//! The Task service (containerd's task API v2): a thin layer that maps each ttrpc call to
//! its operation on the tasks (task/) and the operation's error to a ttrpc status.

use std::sync::Arc;

use containerd_shim_protos::api::{
    ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse, DeleteRequest,
    DeleteResponse, Empty, KillRequest, PidsRequest, PidsResponse, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::shim::shim::{
    CheckpointTaskRequest, CloseIORequest, ExecProcessRequest, PauseRequest, ResizePtyRequest,
    ResumeRequest, StatsRequest, StatsResponse, UpdateTaskRequest,
};
use containerd_shim_protos::ttrpc::{self, TtrpcContext};

use crate::error::{Kind, Result, ShimError};
use crate::task::{timestamp, Exit, Tasks};

/// The ttrpc Task service.
#[derive(Clone)]
pub struct Service {
    tasks: Arc<Tasks>,
}

impl Service {
    /// The service over `tasks`.
    pub fn new(tasks: Arc<Tasks>) -> Service {
        Service { tasks }
    }

    /// Wait, answered without a thread of its own (see [`Tasks::wait_deferred`]).
    pub fn wait_rpc(&self) -> WaitRpc {
        WaitRpc {
            tasks: self.tasks.clone(),
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
    tasks: Arc<Tasks>,
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
        self.tasks.wait_deferred(
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
        answer("create", &req.id, self.tasks.create(&req))
    }

    fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let r = if req.exec_id.is_empty() {
            self.tasks.start(&req.id)
        } else {
            self.tasks.start_exec(&req.id, &req.exec_id)
        };
        let r = answer("start", &req.id, r);
        // The shim mostly idles after a start: give back what create and start freed.
        runtime_core::os::malloc::trim();
        r
    }

    fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let r = if req.exec_id.is_empty() {
            self.tasks.delete(&req.id)
        } else {
            self.tasks.delete_exec(&req.id, &req.exec_id)
        };
        answer("delete", &req.id, r)
    }

    fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        answer("kill", &req.id, self.tasks.kill(&req))
    }

    fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        answer("state", &req.id, self.tasks.state(&req))
    }

    fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        answer("pids", &req.id, self.tasks.pids(&req))
    }

    /// The blocking Wait, for a server without deferred methods: shim::serve answers Wait
    /// through [`WaitRpc`] instead.
    fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        let r = self
            .tasks
            .wait_exit(&req.id, &req.exec_id, None)
            .map(wait_response);
        answer("wait", &req.id, r)
    }

    fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> ttrpc::Result<ConnectResponse> {
        Ok(self.tasks.connect(&req))
    }

    fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        self.tasks.shutdown_request(&req);
        Ok(Empty::new())
    }

    fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        answer("pause", &req.id, self.tasks.set_paused(&req.id, true))
    }

    fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        answer("resume", &req.id, self.tasks.set_paused(&req.id, false))
    }

    fn checkpoint(&self, _ctx: &TtrpcContext, req: CheckpointTaskRequest) -> ttrpc::Result<Empty> {
        answer("checkpoint", &req.id, self.tasks.checkpoint(&req))
    }

    fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        answer("exec", &req.id, self.tasks.exec(&req))
    }

    fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        answer("resize pty", &req.id, self.tasks.resize_pty(&req))
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        answer("close io", &req.id, self.tasks.close_io(&req))
    }

    fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        answer("update", &req.id, self.tasks.update(&req))
    }

    fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        answer("stats", &req.id, self.tasks.stats(&req))
    }
}
