//! What the unit tests of the task modules share: tasks without a zygote whose events are
//! recorded, and tasks registered as Create would.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::shim::ExitSignal;
use containerd_shim_protos::api::StateRequest;
use containerd_shim_protos::events::task::TaskCreate;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use containerd_shim_protos::shim::shim::ExecProcessRequest;
use containerd_shim_protos::types::task::Status;

use crate::error::Result;
use crate::events::{Events, Item, Publish};
use crate::io::process::ProcIo;
use crate::io::{Drain, StdioPaths};

use super::process::{Exit, Proc, ProcId};
use super::table::Container;
use super::Tasks;

/// Records the type of every event published, in order.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<String>>>);

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
    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `n` events arrived.
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.events().len() < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        self.events()
    }
}

/// Tasks without a zygote, and what they publish.
pub fn tasks() -> (Arc<Tasks>, Recorder) {
    let rec = Recorder::default();
    let events = Events::start(rec.clone(), "ns".into());
    let exit = Arc::new(ExitSignal::default());
    (
        Tasks::new(Err("none in unit tests".into()), events, exit),
        rec,
    )
}

/// A created container whose init is `pid`, its output drained by `drain`.
pub fn container(pid: i32, drain: Arc<Drain>) -> Container {
    let init = Proc::new(pid, StdioPaths::default(), false).with_io(ProcIo::none(drain));
    Container::new("/nonexistent/bundle".into(), init, false)
}

/// Registers task `id` as Create does once the zygote created it.
pub fn register(s: &Tasks, id: &str, pid: i32, drain: Arc<Drain>) {
    s.lock().begin_create(id).unwrap();
    s.register(id, container(pid, drain), TaskCreate::default());
}

/// Starts the init of `id` as Start does once the zygote answered.
pub fn start_init(s: &Tasks, id: &str) {
    let mut t = s.lock();
    let c = t.container_mut(id).unwrap();
    c.begin_start(id).unwrap();
    c.init.start_succeeded();
}

/// The recorded exit status of `exec_id` of `id`.
pub fn exit_of(s: &Tasks, id: &str, exec_id: &str) -> Option<u32> {
    s.lock()
        .proc_(id, exec_id)
        .ok()
        .and_then(|p| p.exit().map(|e| e.status))
}

/// The exit of `exec_id` of `id`, waited for at most 10 s.
pub fn wait10(s: &Tasks, id: &str, exec_id: &str) -> Result<Exit> {
    s.wait_exit(id, exec_id, Some(Duration::from_secs(10)))
}

/// An Exec of `sh` as containerd sends it.
pub fn exec_req(id: &str, exec_id: &str) -> ExecProcessRequest {
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
pub fn exec_status(s: &Tasks, id: &str, exec_id: &str) -> Result<Status> {
    let req = StateRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    };
    s.state(&req).map(|st| st.status.enum_value().unwrap())
}

/// Begins the Start of exec `exec_id` of `id` as start_exec does before it calls the
/// zygote.
pub fn begin_exec_start(s: &Tasks, id: &str, exec_id: &str) {
    let mut t = s.lock();
    let p = t.proc_mut(id, exec_id).unwrap();
    p.begin_start(ProcId::new(id, exec_id)).unwrap();
    t.begin_spawn();
}

/// What start_exec does once the zygote answered.
pub fn start_exec_as_the_zygote_would(s: &Arc<Tasks>, id: &str, exec_id: &str, pid: i32) {
    begin_exec_start(s, id, exec_id);
    let io = ProcIo::none(Arc::default());
    s.exec_started(id, exec_id, pid, io).unwrap();
}
