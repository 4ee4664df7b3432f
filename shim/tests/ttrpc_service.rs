//! The shim's ttrpc Task service, tested directly: no containerd, the test plays its part
//! (tests/support: an events server that records what the shim publishes, the shim
//! started with containerd's `start` command line, a Task client on the address it prints).
//!
//! What is checked is what containerd and its clients act on:
//! - the ttrpc status codes of failed calls, which containerd maps to its errdefs kinds
//!   (NotFound, AlreadyExists, FailedPrecondition, InvalidArgument, Unimplemented);
//! - the events, compared as a whole list, so that their order, their count (one TaskExit
//!   per process) and their fields (pids, exit statuses, topics, namespace) are checked;
//! - that Wait before Start blocks until the exit, and that a process that exits at once
//!   still gets exactly one TaskExit, after its TaskStart / TaskExecStarted;
//! - that when a task is killed while execs run, the execs' TaskExits come before the
//!   init's, as containerd's runc shim guarantees.
//!
//! Every test runs as root, with its own temp dir, shim, cgroups (`/<marker>-<id>`), and
//! leaves nothing behind: the harness checks that when it is dropped.

mod support;

use std::thread::{self, JoinHandle};
use std::time::Duration;

use containerd_shim_protos::api::{
    CreateTaskRequest, DeleteRequest, DeleteResponse, Empty, KillRequest, PidsRequest,
    ShutdownRequest, StartRequest, StateRequest, StateResponse, WaitRequest, WaitResponse,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::shim::shim::{
    CheckpointTaskRequest, CloseIORequest, ExecProcessRequest, PauseRequest, ResizePtyRequest,
    ResumeRequest, StatsRequest, UpdateTaskRequest,
};
use containerd_shim_protos::shim_sync::TaskClient;
use containerd_shim_protos::ttrpc::{self, Code};
use containerd_shim_protos::types::task::Status;

use support::{ctx, ctx_for, expect_code, ok, pid_alive, poll, Harness};

/// containerd's typeurl names for the JSON-encoded runtime-spec types.
const PROCESS_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RESOURCES_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// Bound on a Wait: long enough for a loaded machine, short enough to fail, not hang.
const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

const SIGKILL: u32 = 9;
/// The status containerd expects for a process killed by SIGKILL.
const KILLED: u32 = 128 + 9;

fn any(type_url: &str, value: &str) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// An exec's process as containerd sends it (the OCI Process as JSON).
fn process(args: &[&str]) -> Any {
    let spec = serde_json::json!({
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
    });
    any(PROCESS_URL, &spec.to_string())
}

fn create_req(id: &str, bundle: &std::path::Path) -> CreateTaskRequest {
    // No rootfs mounts: the bundle has its rootfs/ already (as with `ctr run --rootfs`).
    CreateTaskRequest {
        id: id.to_string(),
        bundle: bundle.to_string_lossy().into_owned(),
        ..Default::default()
    }
}

fn create(t: &TaskClient, id: &str, bundle: &std::path::Path) -> u32 {
    let pid = ok(t.create(ctx(), &create_req(id, bundle)), "create").pid;
    assert!(pid > 0 && pid_alive(pid as i32), "create {id}: pid {pid}");
    pid
}

fn state(t: &TaskClient, id: &str, exec_id: &str) -> ttrpc::Result<StateResponse> {
    let req = StateRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    };
    t.state(ctx(), &req)
}

#[track_caller]
fn status(t: &TaskClient, id: &str, exec_id: &str) -> Status {
    let st = ok(state(t, id, exec_id), "state");
    st.status.enum_value().expect("a known status")
}

fn start(t: &TaskClient, id: &str, exec_id: &str) -> ttrpc::Result<u32> {
    let req = StartRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    };
    t.start(ctx(), &req).map(|r| r.pid)
}

fn exec(t: &TaskClient, id: &str, exec_id: &str, spec: Option<Any>) -> ttrpc::Result<Empty> {
    let req = ExecProcessRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        spec: spec.into(),
        ..Default::default()
    };
    t.exec(ctx(), &req)
}

fn kill(t: &TaskClient, id: &str, exec_id: &str, signal: u32, all: bool) -> ttrpc::Result<Empty> {
    let req = KillRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        signal,
        all,
        ..Default::default()
    };
    t.kill(ctx(), &req)
}

fn delete(t: &TaskClient, id: &str, exec_id: &str) -> ttrpc::Result<DeleteResponse> {
    let req = DeleteRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    };
    t.delete(ctx(), &req)
}

fn wait(t: &TaskClient, id: &str, exec_id: &str) -> ttrpc::Result<WaitResponse> {
    let req = WaitRequest {
        id: id.into(),
        exec_id: exec_id.into(),
        ..Default::default()
    };
    t.wait(ctx_for(WAIT_TIMEOUT), &req)
}

/// A Wait on a connection of its own, as containerd issues it while it goes on.
fn wait_in_thread(h: &Harness, id: &str) -> JoinHandle<ttrpc::Result<WaitResponse>> {
    let t = h.client();
    let id = id.to_string();
    thread::spawn(move || wait(&t, &id, ""))
}

fn pause(t: &TaskClient, id: &str) -> ttrpc::Result<Empty> {
    let req = PauseRequest {
        id: id.into(),
        ..Default::default()
    };
    t.pause(ctx(), &req)
}

fn resume(t: &TaskClient, id: &str) -> ttrpc::Result<Empty> {
    let req = ResumeRequest {
        id: id.into(),
        ..Default::default()
    };
    t.resume(ctx(), &req)
}

fn update(t: &TaskClient, id: &str, resources: Option<Any>) -> ttrpc::Result<Empty> {
    let req = UpdateTaskRequest {
        id: id.into(),
        resources: resources.into(),
        ..Default::default()
    };
    t.update(ctx(), &req)
}

/// The exit status a finished Wait reported.
#[track_caller]
fn exit_status(waiter: JoinHandle<ttrpc::Result<WaitResponse>>, what: &str) -> u32 {
    let r = waiter.join().expect("the waiting thread panicked");
    let w = ok(r, what);
    assert!(w.exited_at.is_some(), "{what}: no exited_at");
    w.exit_status
}

/// A started container: its init, an exec that exits with a code, one that is killed,
/// pause and resume with an exec refused in between, Update, Checkpoint, the init killed,
/// Delete; every wrong call on the way answers the code containerd expects, and the
/// events come out in order, one TaskExit per process, TaskDelete last.
#[test]
fn a_task_lifecycle_answers_containerds_codes_and_publishes_events_in_order() {
    let mut h = Harness::new("lifecycle");
    let bundle = h.bundle("c1", &["sleep", "1000"]);
    h.start_shim("c1");
    let t = h.client();

    let pid = create(&t, "c1", &bundle);
    assert_eq!(status(&t, "c1", ""), Status::CREATED);
    assert_eq!(ok(state(&t, "c1", ""), "state").pid, pid);
    // CRI waits before it starts: the Wait must block until the exit, then report it.
    let waiter = wait_in_thread(&h, "c1");
    thread::sleep(Duration::from_millis(300));
    assert!(!waiter.is_finished(), "Wait before Start returned at once");

    assert_eq!(ok(start(&t, "c1", ""), "start"), pid);
    assert_eq!(status(&t, "c1", ""), Status::RUNNING);
    expect_code(
        start(&t, "c1", ""),
        Code::FAILED_PRECONDITION,
        "start twice",
    );
    expect_code(
        delete(&t, "c1", ""),
        Code::FAILED_PRECONDITION,
        "delete a running task",
    );
    let pids = ok(
        t.pids(
            ctx(),
            &PidsRequest {
                id: "c1".into(),
                ..Default::default()
            },
        ),
        "pids",
    );
    assert!(
        pids.processes.iter().any(|p| p.pid == pid),
        "pids of c1 lack its init {pid}: {:?}",
        pids.processes
    );

    // Malformed execs.
    let sh = Some(process(&["sh", "-c", "exit 3"]));
    expect_code(
        exec(&t, "c1", "", sh.clone()),
        Code::INVALID_ARGUMENT,
        "exec without an id",
    );
    expect_code(
        exec(&t, "c1", "bad", None),
        Code::INVALID_ARGUMENT,
        "exec without a spec",
    );
    expect_code(
        exec(&t, "c1", "bad", Some(any(PROCESS_URL, "not json"))),
        Code::INVALID_ARGUMENT,
        "exec with an undecodable spec",
    );
    expect_code(
        start(&t, "c1", "nope"),
        Code::NOT_FOUND,
        "start an unknown exec",
    );
    expect_code(
        state(&t, "c1", "nope"),
        Code::NOT_FOUND,
        "state of an unknown exec",
    );
    expect_code(
        kill(&t, "c1", "nope", SIGKILL, false),
        Code::NOT_FOUND,
        "kill an unknown exec",
    );
    expect_code(
        wait(&t, "c1", "nope"),
        Code::NOT_FOUND,
        "wait for an unknown exec",
    );
    expect_code(
        delete(&t, "c1", "nope"),
        Code::NOT_FOUND,
        "delete an unknown exec",
    );

    // e1 exits with 3.
    ok(exec(&t, "c1", "e1", sh.clone()), "exec e1");
    expect_code(
        exec(&t, "c1", "e1", sh),
        Code::ALREADY_EXISTS,
        "exec e1 twice",
    );
    assert_eq!(status(&t, "c1", "e1"), Status::CREATED);
    expect_code(
        kill(&t, "c1", "e1", SIGKILL, false),
        Code::FAILED_PRECONDITION,
        "kill an exec not started",
    );
    let e1 = ok(start(&t, "c1", "e1"), "start e1");
    assert_eq!(ok(wait(&t, "c1", "e1"), "wait e1").exit_status, 3);
    let st = ok(state(&t, "c1", "e1"), "state e1");
    assert_eq!(
        (st.status.enum_value(), st.pid, st.exit_status),
        (Ok(Status::STOPPED), e1, 3)
    );
    expect_code(
        start(&t, "c1", "e1"),
        Code::FAILED_PRECONDITION,
        "start e1 again",
    );
    expect_code(
        kill(&t, "c1", "e1", SIGKILL, false),
        Code::NOT_FOUND,
        "kill a finished exec",
    );
    let d = ok(delete(&t, "c1", "e1"), "delete e1");
    assert_eq!((d.pid, d.exit_status), (e1, 3));
    // Finished and deleted: gone.
    expect_code(
        state(&t, "c1", "e1"),
        Code::NOT_FOUND,
        "state of a deleted exec",
    );
    expect_code(
        start(&t, "c1", "e1"),
        Code::NOT_FOUND,
        "start a deleted exec",
    );
    expect_code(
        wait(&t, "c1", "e1"),
        Code::NOT_FOUND,
        "wait for a deleted exec",
    );
    expect_code(
        delete(&t, "c1", "e1"),
        Code::NOT_FOUND,
        "delete an exec twice",
    );

    // e2 runs while the task is paused and resumed; no exec starts in a frozen task.
    ok(
        exec(&t, "c1", "e2", Some(process(&["sleep", "1000"]))),
        "exec e2",
    );
    let e2 = ok(start(&t, "c1", "e2"), "start e2");
    assert_eq!(status(&t, "c1", "e2"), Status::RUNNING);
    expect_code(
        resume(&t, "c1"),
        Code::FAILED_PRECONDITION,
        "resume a running task",
    );
    ok(pause(&t, "c1"), "pause");
    assert_eq!(status(&t, "c1", ""), Status::PAUSED);
    expect_code(
        pause(&t, "c1"),
        Code::FAILED_PRECONDITION,
        "pause a paused task",
    );
    ok(exec(&t, "c1", "e3", Some(process(&["true"]))), "exec e3");
    expect_code(
        start(&t, "c1", "e3"),
        Code::FAILED_PRECONDITION,
        "start an exec in a paused task",
    );
    ok(resume(&t, "c1"), "resume");
    assert_eq!(status(&t, "c1", ""), Status::RUNNING);
    ok(kill(&t, "c1", "e2", SIGKILL, false), "kill e2");
    assert_eq!(ok(wait(&t, "c1", "e2"), "wait e2").exit_status, KILLED);
    ok(delete(&t, "c1", "e2"), "delete e2");
    // Never started: deleted as it is, no pid.
    assert_eq!(ok(delete(&t, "c1", "e3"), "delete e3").pid, 0);

    // Bad input on a live task.
    expect_code(
        kill(&t, "c1", "", 1000, false),
        Code::INVALID_ARGUMENT,
        "kill with signal 1000",
    );
    expect_code(
        update(&t, "c1", Some(any(RESOURCES_URL, "{not json"))),
        Code::INVALID_ARGUMENT,
        "update with undecodable resources",
    );
    expect_code(
        update(&t, "c1", Some(any(PROCESS_URL, "{}"))),
        Code::INVALID_ARGUMENT,
        "update with resources of the wrong type",
    );
    expect_code(
        update(&t, "c1", None),
        Code::INVALID_ARGUMENT,
        "update without resources",
    );
    let pids_limit = Some(any(RESOURCES_URL, r#"{"pids":{"limit":100}}"#));
    ok(update(&t, "c1", pids_limit.clone()), "update pids.limit");
    // (Checkpoints themselves: tests/e2e_shim_checkpoint.rs, with CRIU.)
    let checkpoint = CheckpointTaskRequest {
        id: "c1".into(),
        path: "checkpoint".into(),
        ..Default::default()
    };
    expect_code(
        t.checkpoint(ctx(), &checkpoint),
        Code::INVALID_ARGUMENT,
        "checkpoint into a relative path",
    );

    ok(kill(&t, "c1", "", SIGKILL, false), "kill c1");
    assert_eq!(exit_status(waiter, "wait before start"), KILLED);
    assert_eq!(ok(wait(&t, "c1", ""), "wait again").exit_status, KILLED);
    let st = ok(state(&t, "c1", ""), "state c1");
    assert_eq!(
        (st.status.enum_value(), st.exit_status),
        (Ok(Status::STOPPED), KILLED)
    );

    // A stopped task.
    expect_code(
        start(&t, "c1", ""),
        Code::FAILED_PRECONDITION,
        "start a stopped task",
    );
    expect_code(
        exec(&t, "c1", "e4", Some(process(&["true"]))),
        Code::FAILED_PRECONDITION,
        "exec in a stopped task",
    );
    expect_code(
        pause(&t, "c1"),
        Code::FAILED_PRECONDITION,
        "pause a stopped task",
    );
    expect_code(
        resume(&t, "c1"),
        Code::FAILED_PRECONDITION,
        "resume a stopped task",
    );
    expect_code(
        update(&t, "c1", pids_limit),
        Code::FAILED_PRECONDITION,
        "update a stopped task",
    );
    expect_code(
        kill(&t, "c1", "", SIGKILL, false),
        Code::NOT_FOUND,
        "kill a stopped task",
    );
    // containerd kills with `all` on the way to delete: a no-op, not an error.
    ok(
        kill(&t, "c1", "", SIGKILL, true),
        "kill --all a stopped task",
    );

    let d = ok(delete(&t, "c1", ""), "delete c1");
    assert_eq!((d.pid, d.exit_status), (pid, KILLED));
    assert!(d.exited_at.is_some(), "delete c1: no exited_at");
    assert!(
        !bundle.join(".youki").exists(),
        "delete c1 left runtime-core's state in the bundle"
    );
    expect_code(
        state(&t, "c1", ""),
        Code::NOT_FOUND,
        "state of a deleted task",
    );
    expect_code(
        wait(&t, "c1", ""),
        Code::NOT_FOUND,
        "wait for a deleted task",
    );
    expect_code(delete(&t, "c1", ""), Code::NOT_FOUND, "delete a task twice");
    expect_code(
        kill(&t, "c1", "", SIGKILL, false),
        Code::NOT_FOUND,
        "kill a deleted task",
    );

    drop(t);
    let events = h.shutdown("c1");
    let want = [
        format!("create c1 pid={pid}"),
        format!("start c1 pid={pid}"),
        "exec-added c1/e1".to_string(),
        format!("exec-started c1/e1 pid={e1}"),
        format!("exit c1/e1 pid={e1} status=3"),
        "exec-added c1/e2".to_string(),
        format!("exec-started c1/e2 pid={e2}"),
        "paused c1".to_string(),
        "exec-added c1/e3".to_string(),
        "resumed c1".to_string(),
        format!("exit c1/e2 pid={e2} status={KILLED}"),
        format!("exit c1/c1 pid={pid} status={KILLED}"),
        format!("delete c1 pid={pid} status={KILLED}"),
    ];
    assert_eq!(events, want, "events");
}

/// Calls about tasks that do not exist, bad Create requests, a Create the runtime refuses,
/// and created tasks that are never started: what they refuse, Delete of one (TaskExit,
/// then TaskDelete), SIGKILL of another (TaskExit without TaskStart; no Start after it).
/// The shim keeps serving after a Shutdown while it still has a task.
#[test]
fn unknown_ids_bad_creates_and_created_tasks_answer_containerds_codes() {
    let mut h = Harness::new("created");
    let bundle = h.bundle("c2", &["sleep", "1000"]);
    let killed = h.bundle("c3", &["sleep", "1000"]);
    let missing = h.bundle("bad", &["/nonexistent"]);
    h.start_shim("c2");
    let t = h.client();

    // No task yet.
    expect_code(
        state(&t, "c2", ""),
        Code::NOT_FOUND,
        "state of an unknown task",
    );
    expect_code(
        start(&t, "c2", ""),
        Code::NOT_FOUND,
        "start an unknown task",
    );
    expect_code(
        kill(&t, "c2", "", SIGKILL, false),
        Code::NOT_FOUND,
        "kill an unknown task",
    );
    expect_code(
        wait(&t, "c2", ""),
        Code::NOT_FOUND,
        "wait for an unknown task",
    );
    expect_code(
        delete(&t, "c2", ""),
        Code::NOT_FOUND,
        "delete an unknown task",
    );
    expect_code(pause(&t, "c2"), Code::NOT_FOUND, "pause an unknown task");
    expect_code(resume(&t, "c2"), Code::NOT_FOUND, "resume an unknown task");
    expect_code(
        exec(&t, "c2", "e1", Some(process(&["true"]))),
        Code::NOT_FOUND,
        "exec in an unknown task",
    );
    let pids_limit = Some(any(RESOURCES_URL, r#"{"pids":{"limit":100}}"#));
    expect_code(
        update(&t, "c2", pids_limit),
        Code::NOT_FOUND,
        "update an unknown task",
    );
    let pids = PidsRequest {
        id: "c2".into(),
        ..Default::default()
    };
    expect_code(
        t.pids(ctx(), &pids),
        Code::NOT_FOUND,
        "pids of an unknown task",
    );
    let stats = StatsRequest {
        id: "c2".into(),
        ..Default::default()
    };
    expect_code(
        t.stats(ctx(), &stats),
        Code::NOT_FOUND,
        "stats of an unknown task",
    );
    let close_io = CloseIORequest {
        id: "c2".into(),
        stdin: true,
        ..Default::default()
    };
    expect_code(
        t.close_io(ctx(), &close_io),
        Code::NOT_FOUND,
        "close io of an unknown task",
    );
    let resize = ResizePtyRequest {
        id: "c2".into(),
        width: 80,
        height: 24,
        ..Default::default()
    };
    expect_code(
        t.resize_pty(ctx(), &resize),
        Code::NOT_FOUND,
        "resize an unknown task",
    );

    // Bad Create requests.
    expect_code(
        t.create(ctx(), &create_req("../c2", &bundle)),
        Code::INVALID_ARGUMENT,
        "create with an id that is a path",
    );
    expect_code(
        t.create(ctx(), &create_req("c2", std::path::Path::new("bundles/c2"))),
        Code::INVALID_ARGUMENT,
        "create with a relative bundle",
    );
    let mut restore = create_req("c2", &bundle);
    restore.checkpoint = h.work.join("checkpoint").to_string_lossy().into_owned();
    // No such checkpoint: NotFound, and nothing left (runc's shim fails at Start instead,
    // where it restores).
    expect_code(
        t.create(ctx(), &restore),
        Code::NOT_FOUND,
        "create from a checkpoint that does not exist",
    );

    // The runtime refuses it (runc does too: no such executable): an error, no task, no
    // event, and nothing left behind (the harness checks cgroups and state at the end).
    let r = t.create(ctx(), &create_req("bad", &missing));
    assert!(r.is_err(), "create with a missing executable: {r:?}");
    expect_code(
        state(&t, "bad", ""),
        Code::NOT_FOUND,
        "state after a failed create",
    );

    let pid = create(&t, "c2", &bundle);
    expect_code(
        t.create(ctx(), &create_req("c2", &bundle)),
        Code::ALREADY_EXISTS,
        "create c2 twice",
    );
    assert_eq!(status(&t, "c2", ""), Status::CREATED);
    expect_code(
        pause(&t, "c2"),
        Code::FAILED_PRECONDITION,
        "pause a created task",
    );
    expect_code(
        resume(&t, "c2"),
        Code::FAILED_PRECONDITION,
        "resume a created task",
    );
    expect_code(
        start(&t, "c2", "nope"),
        Code::NOT_FOUND,
        "start an unknown exec",
    );
    ok(exec(&t, "c2", "e1", Some(process(&["true"]))), "exec e1");
    expect_code(
        exec(&t, "c2", "e1", Some(process(&["true"]))),
        Code::ALREADY_EXISTS,
        "exec e1 twice",
    );
    assert_eq!(ok(delete(&t, "c2", "e1"), "delete e1 not started").pid, 0);
    expect_code(
        state(&t, "c2", "e1"),
        Code::NOT_FOUND,
        "state of a deleted exec",
    );

    // containerd sends Shutdown after every Delete; a shim with a task left keeps serving.
    let shim = h.shim_pid();
    let _ = t.shutdown(
        ctx(),
        &ShutdownRequest {
            id: "c2".into(),
            ..Default::default()
        },
    );
    thread::sleep(Duration::from_millis(500));
    assert!(pid_alive(shim), "the shim exited with a task left");
    assert_eq!(status(&t, "c2", ""), Status::CREATED);

    // Delete of a created task kills its init: one TaskExit, then TaskDelete.
    let d = ok(delete(&t, "c2", ""), "delete a created task");
    assert_eq!((d.pid, d.exit_status), (pid, KILLED));
    assert!(!pid_alive(pid as i32), "init {pid} survived the delete");
    expect_code(
        state(&t, "c2", ""),
        Code::NOT_FOUND,
        "state of a deleted task",
    );
    expect_code(start(&t, "c2", ""), Code::NOT_FOUND, "start a deleted task");
    expect_code(delete(&t, "c2", ""), Code::NOT_FOUND, "delete a task twice");

    // Killed before it was started: it exited, so it cannot start any more.
    let pid3 = create(&t, "c3", &killed);
    ok(kill(&t, "c3", "", SIGKILL, false), "kill a created task");
    assert_eq!(ok(wait(&t, "c3", ""), "wait c3").exit_status, KILLED);
    assert_eq!(status(&t, "c3", ""), Status::STOPPED);
    expect_code(
        start(&t, "c3", ""),
        Code::FAILED_PRECONDITION,
        "start an exited task",
    );
    let d = ok(delete(&t, "c3", ""), "delete c3");
    assert_eq!((d.pid, d.exit_status), (pid3, KILLED));

    drop(t);
    let events = h.shutdown("c2");
    let want = [
        format!("create c2 pid={pid}"),
        "exec-added c2/e1".to_string(),
        format!("exit c2/c2 pid={pid} status={KILLED}"),
        format!("delete c2 pid={pid} status={KILLED}"),
        format!("create c3 pid={pid3}"),
        format!("exit c3/c3 pid={pid3} status={KILLED}"),
        format!("delete c3 pid={pid3} status={KILLED}"),
    ];
    assert_eq!(events, want, "events");
}

/// Processes that exit at once (`true`): an init, several times, and execs. Each gets
/// exactly one TaskExit, after its TaskStart (TaskExecStarted), although it may exit
/// before Start returns; Wait before Start returns its status.
#[test]
fn processes_that_exit_at_once_get_exactly_one_exit_after_their_start() {
    let mut h = Harness::new("quick");
    let ids = ["q0", "q1", "q2"];
    let bundles: Vec<_> = ids.iter().map(|id| h.bundle(id, &["true"])).collect();
    let long = h.bundle("x", &["sleep", "1000"]);
    h.start_shim("q0");
    let t = h.client();
    let mut want = Vec::new();

    for (id, bundle) in ids.iter().zip(&bundles) {
        let pid = create(&t, id, bundle);
        let waiter = wait_in_thread(&h, id);
        thread::sleep(Duration::from_millis(200));
        assert!(
            !waiter.is_finished(),
            "{id}: Wait before Start returned at once"
        );
        assert_eq!(ok(start(&t, id, ""), "start"), pid);
        assert_eq!(exit_status(waiter, "wait before start"), 0, "{id}");
        let st = ok(state(&t, id, ""), "state");
        assert_eq!(
            (st.status.enum_value(), st.exit_status),
            (Ok(Status::STOPPED), 0)
        );
        let d = ok(delete(&t, id, ""), "delete");
        assert_eq!((d.pid, d.exit_status), (pid, 0), "{id}");
        want.extend([
            format!("create {id} pid={pid}"),
            format!("start {id} pid={pid}"),
            format!("exit {id}/{id} pid={pid} status=0"),
            format!("delete {id} pid={pid} status=0"),
        ]);
    }

    let pid = create(&t, "x", &long);
    ok(start(&t, "x", ""), "start x");
    want.extend([format!("create x pid={pid}"), format!("start x pid={pid}")]);
    for n in 0..6 {
        let exec_id = format!("quick{n}");
        // Alternately 0 and a code of its own: the status is the exec's.
        let (args, code): (&[&str], u32) = if n % 2 == 0 {
            (&["true"], 0)
        } else {
            (&["sh", "-c", "exit 7"], 7)
        };
        ok(exec(&t, "x", &exec_id, Some(process(args))), "exec");
        let epid = ok(start(&t, "x", &exec_id), "start exec");
        assert_eq!(ok(wait(&t, "x", &exec_id), "wait exec").exit_status, code);
        let d = ok(delete(&t, "x", &exec_id), "delete exec");
        assert_eq!((d.pid, d.exit_status), (epid, code), "{exec_id}");
        want.extend([
            format!("exec-added x/{exec_id}"),
            format!("exec-started x/{exec_id} pid={epid}"),
            format!("exit x/{exec_id} pid={epid} status={code}"),
        ]);
    }
    // The task itself is untouched by its execs' exits.
    assert_eq!(status(&t, "x", ""), Status::RUNNING);
    ok(kill(&t, "x", "", SIGKILL, false), "kill x");
    assert_eq!(ok(wait(&t, "x", ""), "wait x").exit_status, KILLED);
    ok(delete(&t, "x", ""), "delete x");
    want.extend([
        format!("exit x/x pid={pid} status={KILLED}"),
        format!("delete x pid={pid} status={KILLED}"),
    ]);

    drop(t);
    let events = h.shutdown("q0");
    assert_eq!(events, want, "events");
}

/// SIGKILL of a task whose execs still run, every other time while it is paused: the
/// kill takes effect although the cgroup is frozen, and the execs' TaskExits come before
/// the init's. containerd's own runc shim holds the init's exit back until the execs' exits
/// are out (containerd issue #9719, fixed by PR #9828 in 1.6.x and 1.7.x too): consumers
/// take the init's TaskExit as the end of the task and delete it. In a shim that gets it
/// wrong the order is a race, lost now and then: the scenario runs several times, with
/// several execs.
#[test]
fn a_task_killed_with_running_execs_reports_the_init_exit_last() {
    const ROUNDS: usize = 16;
    const EXECS: usize = 3;
    let mut h = Harness::new("kill-execs");
    let ids: Vec<String> = (0..ROUNDS).map(|n| format!("p{n}")).collect();
    let bundles: Vec<_> = ids
        .iter()
        .map(|id| h.bundle(id, &["sleep", "1000"]))
        .collect();
    h.start_shim(&ids[0]);
    let t = h.client();
    let mut problems = Vec::new();

    for (round, (id, bundle)) in ids.iter().zip(&bundles).enumerate() {
        let pid = create(&t, id, bundle);
        ok(start(&t, id, ""), "start");
        let (mut started, mut waiters) = (Vec::new(), Vec::new());
        for e in 0..EXECS {
            let exec_id = format!("e{e}");
            ok(
                exec(&t, id, &exec_id, Some(process(&["sleep", "1000"]))),
                "exec",
            );
            let epid = ok(start(&t, id, &exec_id), "start exec");
            let waiter = {
                let (t, id, exec_id) = (h.client(), id.clone(), exec_id.clone());
                thread::spawn(move || wait(&t, &id, &exec_id))
            };
            started.push((exec_id, epid));
            waiters.push(waiter);
        }
        let paused = round % 2 == 0;
        if paused {
            ok(pause(&t, id), "pause");
            assert_eq!(status(&t, id, ""), Status::PAUSED);
        }

        ok(kill(&t, id, "", SIGKILL, false), "kill");
        assert_eq!(ok(wait(&t, id, ""), "wait").exit_status, KILLED, "{id}");
        assert_eq!(status(&t, id, ""), Status::STOPPED);
        let mut exits = Vec::new();
        for ((exec_id, epid), waiter) in started.iter().zip(waiters) {
            assert_eq!(exit_status(waiter, "wait exec"), KILLED, "{id}/{exec_id}");
            assert_eq!(status(&t, id, exec_id), Status::STOPPED);
            exits.push(format!("exit {id}/{exec_id} pid={epid} status={KILLED}"));
        }
        let d = ok(delete(&t, id, ""), "delete");
        assert_eq!((d.pid, d.exit_status), (pid, KILLED), "{id}");

        // The execs die together: their exits may come in any order among themselves,
        // but all of them after the TaskExecStarted (TaskPaused) and before the init's,
        // each exactly once.
        let mut want_head = vec![
            format!("create {id} pid={pid}"),
            format!("start {id} pid={pid}"),
        ];
        for (exec_id, epid) in &started {
            want_head.push(format!("exec-added {id}/{exec_id}"));
            want_head.push(format!("exec-started {id}/{exec_id} pid={epid}"));
        }
        if paused {
            want_head.push(format!("paused {id}"));
        }
        let want_tail = [
            format!("exit {id}/{id} pid={pid} status={KILLED}"),
            format!("delete {id} pid={pid} status={KILLED}"),
        ];
        let got: Vec<String> = h
            .events
            .wait_for_line(&want_tail[1])
            .into_iter()
            .filter(|l| {
                let name = l.split_whitespace().nth(1).unwrap_or_default();
                name == id || name.starts_with(&format!("{id}/"))
            })
            .collect();
        let (head, rest) = got.split_at(want_head.len().min(got.len()));
        let (middle, tail) = rest.split_at(rest.len().saturating_sub(want_tail.len()));
        let mut middle = middle.to_vec();
        middle.sort();
        if head != want_head || middle != exits || tail != want_tail {
            problems.push(got);
        }
    }

    drop(t);
    h.shutdown(&ids[0]);
    assert!(
        problems.is_empty(),
        "{} of {ROUNDS} tasks: the events are not create, start, execs added and started, \
         (paused,) the execs' exits, the init's exit, delete:\n{problems:#?}",
        problems.len()
    );
}

// ---------------------------------------------------------------------------------------
// stdio fifos whose client goes away and comes back (containerd or dockerd restarting),
// with the test as the client.

/// Makes a fifo at `path`.
fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.to_str().expect("a UTF-8 path")).expect("no NUL");
    // SAFETY: mkfifo(3) with a valid C string.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// Opens a fifo as a client does; non-blocking, so that a missing peer fails the test
/// instead of hanging it.
fn open_fifo(path: &std::path::Path, write: bool) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads `f` into `text` until it contains `want` (or, `want` empty, until end-of-file),
/// at most 10 s; whether it did.
fn read_until(f: &mut std::fs::File, text: &mut String, want: &str) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while want.is_empty() || !text.contains(want) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        match f.read(&mut buf) {
            Ok(0) if want.is_empty() => return true,
            Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Ok(_) => thread::sleep(Duration::from_millis(10)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("reading a fifo: {e}"),
        }
    }
    true
}

fn write_all(f: &mut std::fs::File, data: &str) {
    use std::io::Write;
    f.write_all(data.as_bytes())
        .expect("write to the stdin fifo");
}

/// Whether the shim still holds its end of the stdin fifo at `path` (its copy runs): a
/// client's writer opens it only while it has a reader, else the open fails with ENXIO.
fn stdin_held(path: &std::path::Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::File::options()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => false,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// Whether the shim still holds the output fifo at `path` (its copy runs or keeps unread
/// output for a client): a client's reader opened now reads end-of-file only once no
/// writer is left. Reads at most one byte of what the fifo holds.
fn output_held(path: &std::path::Path) -> bool {
    use std::io::Read;
    match open_fifo(path, false).read(&mut [0u8; 1]) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

/// The client's stdin writer closing and opening again is no end-of-file for the
/// process, nor its stdout reader going away a loss of output; CloseIO, with the client's
/// writer still open, is the end of the input; Delete ends every copy.
#[test]
fn stdio_survives_its_client_going_away_and_close_io_ends_stdin() {
    let mut h = Harness::new("stdio");
    let script = "while read l; do echo got-$l; done; echo eof; exit 4";
    let bundle = h.bundle("c1", &["sh", "-c", script]);
    h.start_shim("c1");
    let t = h.client();
    let (stdin, stdout) = (h.work.join("c1-stdin"), h.work.join("c1-stdout"));
    mkfifo(&stdin);
    mkfifo(&stdout);
    // The shim waits for the client's reader of stdout at create.
    let mut out = open_fifo(&stdout, false);
    let mut req = create_req("c1", &bundle);
    req.stdin = stdin.to_string_lossy().into_owned();
    req.stdout = stdout.to_string_lossy().into_owned();
    ok(t.create(ctx(), &req), "create");
    ok(start(&t, "c1", ""), "start");
    let waiter = wait_in_thread(&h, "c1");
    let mut text = String::new();

    // The writer comes and goes twice; the reader goes away meanwhile and comes back.
    write_all(&mut open_fifo(&stdin, true), "a\n");
    assert!(read_until(&mut out, &mut text, "got-a"), "{text:?}");
    drop(out);
    write_all(&mut open_fifo(&stdin, true), "b\n");
    thread::sleep(Duration::from_millis(300));
    assert!(!waiter.is_finished(), "the process saw end-of-file");
    let mut out = open_fifo(&stdout, false);
    assert!(read_until(&mut out, &mut text, "got-b"), "{text:?}");

    // CloseIO while the client's writer is still open: end-of-file after "c".
    let mut w = open_fifo(&stdin, true);
    write_all(&mut w, "c\n");
    let close = CloseIORequest {
        id: "c1".into(),
        stdin: true,
        ..Default::default()
    };
    ok(t.close_io(ctx(), &close), "close io");
    assert_eq!(exit_status(waiter, "wait c1"), 4);
    // All of it, then end-of-file: the shim closed its end once the client had read.
    assert!(
        read_until(&mut out, &mut text, ""),
        "no end-of-file: {text:?}"
    );
    assert_eq!(text, "got-a\ngot-b\ngot-c\neof\n");
    drop(w);

    ok(delete(&t, "c1", ""), "delete c1");
    assert!(
        poll(Duration::from_secs(5), || !stdin_held(&stdin)
            && !output_held(&stdout)),
        "the shim still holds the stdio fifos after Delete"
    );
    h.shutdown("c1");
}

/// An exec whose client went away and whose output fills the fifo: its writes block
/// (nothing is dropped: the client gets it when it comes back) until it is killed; Delete
/// of the exec ends its copies, still waiting for the client, while the shim goes on
/// serving the task.
#[test]
fn copies_that_wait_for_a_client_end_with_the_exec() {
    let mut h = Harness::new("stdio-end");
    let bundle = h.bundle("c1", &["sleep", "1000"]);
    h.start_shim("c1");
    let t = h.client();
    create(&t, "c1", &bundle);
    ok(start(&t, "c1", ""), "start");

    let (stdin, stdout) = (h.work.join("e1-stdin"), h.work.join("e1-stdout"));
    mkfifo(&stdin);
    mkfifo(&stdout);
    let out = open_fifo(&stdout, false);
    let req = ExecProcessRequest {
        id: "c1".into(),
        exec_id: "e1".into(),
        spec: Some(process(&["sh", "-c", "while :; do echo tick; done"])).into(),
        stdin: stdin.to_string_lossy().into_owned(),
        stdout: stdout.to_string_lossy().into_owned(),
        stderr: stdout.to_string_lossy().into_owned(),
        ..Default::default()
    };
    ok(t.exec(ctx(), &req), "exec e1");
    ok(start(&t, "c1", "e1"), "start e1");
    // The client reads a little and goes away; its writer of stdin was never there.
    thread::sleep(Duration::from_millis(200));
    drop(out);
    thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&t, "c1", "e1"), Status::RUNNING);
    assert!(
        stdin_held(&stdin),
        "the stdin copy ended with its client away"
    );
    // Back for a moment: the output waited for it. Then away again: it fills up again.
    let mut out = open_fifo(&stdout, false);
    let mut text = String::new();
    assert!(read_until(&mut out, &mut text, "tick\ntick\n"), "{text:?}");
    drop(out);
    thread::sleep(Duration::from_millis(300));

    ok(kill(&t, "c1", "e1", SIGKILL, false), "kill e1");
    assert_eq!(ok(wait(&t, "c1", "e1"), "wait e1").exit_status, KILLED);
    ok(delete(&t, "c1", "e1"), "delete e1");
    // The copies let go of the fifos, though the client never took the output left
    // in the stdout fifo (which output_held reads one byte of per look, far from all).
    assert!(
        poll(Duration::from_secs(5), || !stdin_held(&stdin)
            && !output_held(&stdout)),
        "the shim still holds the exec's stdio fifos after its Delete"
    );
    assert_eq!(status(&t, "c1", ""), Status::RUNNING);

    ok(kill(&t, "c1", "", SIGKILL, false), "kill c1");
    assert_eq!(ok(wait(&t, "c1", ""), "wait c1").exit_status, KILLED);
    ok(delete(&t, "c1", ""), "delete c1");
    h.shutdown("c1");
}

/// The names of the shim's I/O threads (`io-...`).
fn io_threads(shim: i32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{shim}/task")).expect("the shim's threads");
    let mut names: Vec<String> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .filter(|c| c.starts_with("io-"))
        .collect();
    names.sort();
    names
}

/// One thread copies every stream of every process (issue 14: the shim does not grow by
/// threads per process or per stream): the init's stdin, stdout and stderr, an exec's,
/// and an exec's terminal, each of which works (what goes into a stdin fifo comes out of
/// the process's stdout fifo).
#[test]
fn one_thread_copies_every_stream_of_every_process() {
    let mut h = Harness::new("stdio-one");
    let bundle = h.bundle("c1", &["cat"]);
    h.start_shim("c1");
    let t = h.client();
    let fifos = |name: &str| {
        let (i, o) = (
            h.work.join(format!("{name}-stdin")),
            h.work.join(format!("{name}-stdout")),
        );
        mkfifo(&i);
        mkfifo(&o);
        (i, o)
    };
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let mut streams = vec![];

    let (stdin, stdout) = fifos("c1");
    // The shim waits for the client's reader of stdout at create.
    let out = open_fifo(&stdout, false);
    let mut req = create_req("c1", &bundle);
    (req.stdin, req.stdout, req.stderr) = (path(&stdin), path(&stdout), path(&stdout));
    ok(t.create(ctx(), &req), "create");
    ok(start(&t, "c1", ""), "start");
    streams.push(("c1", stdin, out));
    for (exec_id, terminal) in [("e1", false), ("e2", true)] {
        let (stdin, stdout) = fifos(exec_id);
        let out = open_fifo(&stdout, false);
        let mut spec = process(&["cat"]);
        if terminal {
            let mut json: serde_json::Value = serde_json::from_slice(&spec.value).unwrap();
            json["terminal"] = true.into();
            spec.value = json.to_string().into_bytes();
        }
        let req = ExecProcessRequest {
            id: "c1".into(),
            exec_id: exec_id.into(),
            spec: Some(spec).into(),
            terminal,
            stdin: path(&stdin),
            stdout: path(&stdout),
            stderr: if terminal {
                String::new()
            } else {
                path(&stdout)
            },
            ..Default::default()
        };
        ok(t.exec(ctx(), &req), exec_id);
        ok(start(&t, "c1", exec_id), exec_id);
        streams.push((exec_id, stdin, out));
    }
    for (name, stdin, out) in &mut streams {
        write_all(&mut open_fifo(stdin, true), &format!("hello-{name}\n"));
        let mut text = String::new();
        assert!(
            read_until(out, &mut text, &format!("hello-{name}")),
            "{name}: {text:?}"
        );
    }
    assert_eq!(io_threads(h.shim_pid()), ["io-copy"]);

    for exec_id in ["e1", "e2"] {
        ok(kill(&t, "c1", exec_id, SIGKILL, false), exec_id);
        assert_eq!(ok(wait(&t, "c1", exec_id), exec_id).exit_status, KILLED);
        ok(delete(&t, "c1", exec_id), exec_id);
    }
    ok(kill(&t, "c1", "", SIGKILL, false), "kill c1");
    assert_eq!(ok(wait(&t, "c1", ""), "wait c1").exit_status, KILLED);
    ok(delete(&t, "c1", ""), "delete c1");
    h.shutdown("c1");
}
