//! The harness of the shim's ttrpc tests: the test plays containerd's part.
//!
//! A [`Harness`] owns a temp directory and, in it, what containerd would provide:
//!
//! - an events server (containerd's `containerd.services.events.ttrpc.v1.Events`, method
//!   `Forward`) on a unix socket, whose path goes to the shim as `TTRPC_ADDRESS`; it
//!   records every envelope it gets, in order, as a short line ([`describe`]);
//! - bundles made by `scripts/mkbundle.sh`, whose cgroups are named after the test's
//!   marker (`/<marker>-<id>`);
//! - the shim, started as containerd starts it (`start` with `-namespace -id -address
//!   -publish-binary`, `TTRPC_ADDRESS` set, cwd = the first bundle, a `log` fifo in it that
//!   the harness reads), and a Task client on the socket address it prints.
//!
//! When the harness is dropped, also after a failed assertion, it kills the shim it started
//! (by the pid the shim reported, checked against its command line), then runs the leak
//! check the workspace's integration tests share (youki-test-support's `leaks`: processes,
//! mounts under the temp dir, cgroups named after the marker), removes the shim's socket,
//! and fails the test if anything was left after a normal end.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use containerd_shim_protos::api::{ConnectRequest, Empty, ShutdownRequest};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_sync::{create_events, Events, TaskClient};
use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc::{self, context, Client, Code, TtrpcContext};
use youki_test_support::leaks::{self, Leaks, TestDir};
use youki_test_support::process::{cmdline, kill9, run_captured};

/// The shim under test, built by cargo for this test.
pub const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-youki-v2");

/// Bound on an ordinary RPC (Create and Start fork through the zygote: a few seconds at
/// worst on a loaded 2-core machine).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on the `start` command and on the shim's exit after Shutdown.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// A context bounded by `t`: a shim that hangs fails the test instead of hanging it.
pub fn ctx_for(t: Duration) -> context::Context {
    context::with_timeout(t.as_nanos() as i64)
}

/// A context bounded by [`RPC_TIMEOUT`].
pub fn ctx() -> context::Context {
    ctx_for(RPC_TIMEOUT)
}

/// Fails the test unless `r` is the ttrpc status `want`; returns its message.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(r: ttrpc::Result<T>, want: Code, what: &str) -> String {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) if s.code() == want => s.message().to_string(),
        Err(ttrpc::Error::RpcStatus(s)) => panic!(
            "{what}: expected {want:?}, got {:?}: {:?}",
            s.code(),
            s.message()
        ),
        Err(e) => panic!("{what}: expected {want:?}, got a transport error {e:?}"),
        Ok(v) => panic!("{what}: expected {want:?}, got Ok({v:?})"),
    }
}

/// Fails the test if `r` is an error; returns the value.
#[track_caller]
pub fn ok<T>(r: ttrpc::Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(ttrpc::Error::RpcStatus(s)) => {
            panic!("{what}: {:?}: {:?}", s.code(), s.message())
        }
        Err(e) => panic!("{what}: {e:?}"),
    }
}

pub use youki_test_support::process::{pid_alive, poll};

// ---------------------------------------------------------------------------
// containerd's events service

/// The envelope as one line: `exit c1/e1 pid=42 status=3`. What does not match what
/// containerd expects (namespace, topic of the type, a TaskExit without its time) is
/// written into the line, so that a comparison of the lines shows it.
pub fn describe(env: &Envelope, namespace: &str) -> String {
    let Some(any) = env.event.as_ref() else {
        return format!("BAD: envelope on {} without an event", env.topic);
    };
    let name = any
        .type_url
        .strip_prefix("containerd.events.")
        .unwrap_or(&any.type_url);
    let (topic, line) = match name {
        "TaskCreate" => decode(&any.value, |e: TaskCreate| {
            (
                topics::TASK_CREATE_EVENT_TOPIC,
                format!("create {} pid={}", e.container_id, e.pid),
            )
        }),
        "TaskStart" => decode(&any.value, |e: TaskStart| {
            (
                topics::TASK_START_EVENT_TOPIC,
                format!("start {} pid={}", e.container_id, e.pid),
            )
        }),
        "TaskExit" => decode(&any.value, |e: TaskExit| {
            let time = if e.exited_at.is_some() {
                ""
            } else {
                " BAD: no exited_at"
            };
            (
                topics::TASK_EXIT_EVENT_TOPIC,
                format!(
                    "exit {}/{} pid={} status={}{time}",
                    e.container_id, e.id, e.pid, e.exit_status
                ),
            )
        }),
        "TaskDelete" => decode(&any.value, |e: TaskDelete| {
            let id = if e.id == e.container_id {
                String::new()
            } else {
                format!(" BAD: id {}", e.id)
            };
            (
                topics::TASK_DELETE_EVENT_TOPIC,
                format!(
                    "delete {} pid={} status={}{id}",
                    e.container_id, e.pid, e.exit_status
                ),
            )
        }),
        "TaskExecAdded" => decode(&any.value, |e: TaskExecAdded| {
            (
                topics::TASK_EXEC_ADDED_EVENT_TOPIC,
                format!("exec-added {}/{}", e.container_id, e.exec_id),
            )
        }),
        "TaskExecStarted" => decode(&any.value, |e: TaskExecStarted| {
            (
                topics::TASK_EXEC_STARTED_EVENT_TOPIC,
                format!(
                    "exec-started {}/{} pid={}",
                    e.container_id, e.exec_id, e.pid
                ),
            )
        }),
        "TaskPaused" => decode(&any.value, |e: TaskPaused| {
            (
                topics::TASK_PAUSED_EVENT_TOPIC,
                format!("paused {}", e.container_id),
            )
        }),
        "TaskResumed" => decode(&any.value, |e: TaskResumed| {
            (
                topics::TASK_RESUMED_EVENT_TOPIC,
                format!("resumed {}", e.container_id),
            )
        }),
        "TaskOOM" => decode(&any.value, |e: TaskOOM| {
            (
                topics::TASK_OOM_EVENT_TOPIC,
                format!("oom {}", e.container_id),
            )
        }),
        _ => ("", format!("BAD: unknown event type {:?}", any.type_url)),
    };
    let mut line = line;
    if !topic.is_empty() && env.topic != topic {
        line.push_str(&format!(" BAD: topic {}", env.topic));
    }
    if env.namespace != namespace {
        line.push_str(&format!(" BAD: namespace {:?}", env.namespace));
    }
    line
}

fn decode<M: Message>(
    bytes: &[u8],
    f: impl FnOnce(M) -> (&'static str, String),
) -> (&'static str, String) {
    match M::parse_from_bytes(bytes) {
        Ok(m) => f(m),
        Err(e) => ("", format!("BAD: undecodable event: {e}")),
    }
}

/// What the events server received, in order.
pub struct Recorder {
    namespace: String,
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

impl Recorder {
    /// Every event so far.
    pub fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most 10 s) until `n` events arrived; returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        self.wait_until(|lines| lines.len() >= n)
    }

    /// Waits (at most 10 s) until `line` arrived (events go out after the RPC that queued
    /// them returned); returns them all.
    pub fn wait_for_line(&self, line: &str) -> Vec<String> {
        self.wait_until(|lines| lines.iter().any(|l| l == line))
    }

    fn wait_until(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        while !done(&lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            lines = self
                .changed
                .wait_timeout(lines, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        lines.clone()
    }
}

struct EventsService(Arc<Recorder>);

impl Events for EventsService {
    fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        let line = match req.envelope.as_ref() {
            Some(env) => describe(env, &self.0.namespace),
            None => "BAD: forward without an envelope".to_string(),
        };
        self.0
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
        self.0.changed.notify_all();
        Ok(Empty::new())
    }
}

// ---------------------------------------------------------------------------
// The shim's log fifo

/// Reads the `log` fifo as containerd does, so that the shim (which opens it write-only,
/// blocking) can start, and keeps what it logs for failure messages.
struct LogReader {
    text: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LogReader {
    fn start(fifo: &Path) -> LogReader {
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("fifo path");
        // SAFETY: mkfifo with a NUL-terminated path we own.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(
            rc,
            0,
            "mkfifo {}: {}",
            fifo.display(),
            std::io::Error::last_os_error()
        );
        // Non-blocking: the open does not wait for a writer, and the thread can stop even
        // when a writer never closes.
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
            .expect("open the log fifo");
        let text = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (text.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match file.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        t.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend(&buf[..n]);
                        continue;
                    }
                    // Nothing now (EAGAIN), or no writer (yet, or any more).
                    _ if s.load(Ordering::SeqCst) => break,
                    _ => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        LogReader {
            text,
            stop,
            thread: Some(thread),
        }
    }

    fn tail(&self, lines: usize) -> String {
        let text = self.text.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let text = String::from_utf8_lossy(&text).into_owned();
        // Each record of the crate's logger ends with an empty line.
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The harness

/// The shim process this harness started.
struct ShimProc {
    /// The server's pid, as it reported it (Connect).
    pid: i32,
    /// The socket path it serves (`start` printed `unix://` + this).
    socket: PathBuf,
}

/// One test's containerd stand-in, shim and leak check. See the module documentation.
pub struct Harness {
    /// containerd namespace; also names the test's cgroups and temp dir.
    pub marker: String,
    /// The temp dir (canonical path).
    pub work: PathBuf,
    dir: TestDir,
    /// The events the shim published.
    pub events: Arc<Recorder>,
    events_server: Option<ttrpc::Server>,
    events_socket: PathBuf,
    /// Bundles by container id.
    bundles: HashMap<String, PathBuf>,
    shim: Option<ShimProc>,
    /// The `unix://` address of the shim's socket.
    address: String,
    log: Option<LogReader>,
    /// The first connection to the shim.
    client: Option<TaskClient>,
}

impl Harness {
    /// A temp dir and an events server; no shim yet.
    pub fn new(kind: &str) -> Harness {
        let dir = TestDir::new("shim-ttrpc", kind);
        let (marker, work) = (dir.scope.marker.clone(), dir.scope.work.clone());
        let recorder = Arc::new(Recorder {
            namespace: marker.clone(),
            lines: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        });
        let events_socket = work.join("events.sock");
        let mut server = ttrpc::Server::new()
            .bind(&format!("unix://{}", events_socket.display()))
            .expect("bind the events socket")
            .register_service(create_events(Arc::new(EventsService(recorder.clone()))));
        server.start().expect("start the events server");
        Harness {
            marker,
            work,
            dir,
            events: recorder,
            events_server: Some(server),
            events_socket,
            bundles: HashMap::new(),
            shim: None,
            address: String::new(),
            log: None,
            client: None,
        }
    }

    /// Makes the bundle of container `id` (scripts/mkbundle.sh: busybox rootfs, process
    /// `args`, cgroup `/<marker>-<id>`); returns its path.
    pub fn bundle(&mut self, id: &str, args: &[&str]) -> PathBuf {
        let dir = self.work.join("bundles").join(id);
        fs::create_dir_all(&dir).expect("mkdir the bundle");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/mkbundle.sh");
        let out = Command::new(&script)
            .arg(&dir)
            .args(args)
            .env("CGROUPS_PATH", format!("/{}-{id}", self.marker))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        self.bundles.insert(id.to_string(), dir.clone());
        dir
    }

    /// Starts the shim for the bundle of `id` as containerd does, and connects to it.
    pub fn start_shim(&mut self, id: &str) {
        let bundle = self.bundles.get(id).expect("make the bundle first").clone();
        self.log = Some(LogReader::start(&bundle.join("log")));
        let mut cmd = Command::new(SHIM);
        cmd.current_dir(&bundle)
            .env("TTRPC_ADDRESS", &self.events_socket)
            .args(["-namespace", &self.marker, "-id", id, "-address"])
            // containerd's gRPC address: the shim only hashes it into its socket's name.
            .arg(self.work.join("containerd.sock"))
            .args([
                "-publish-binary",
                "/nonexistent/containerd",
                "-debug",
                "start",
            ]);
        let o = run_captured(&mut cmd, &self.work.join("start.out"), PROCESS_TIMEOUT);
        let printed = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "`{SHIM} start`: {}\nstdout: {printed}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        // Task API v2: a bare address (containerd trims the output and dials it), not v3's
        // JSON or protobuf reply.
        let address = printed.trim().to_string();
        let socket = address
            .strip_prefix("unix://")
            .unwrap_or_else(|| panic!("`start` printed {printed:?}, not a unix:// address"));
        let socket = PathBuf::from(socket);
        // Known before the pid is: the guard removes the socket of a shim that failed here.
        self.shim = Some(ShimProc {
            pid: 0,
            socket: socket.clone(),
        });
        self.address = address.clone();
        let client = self.client();
        let reply = ok(
            client.connect(
                ctx(),
                &ConnectRequest {
                    id: id.to_string(),
                    ..Default::default()
                },
            ),
            "connect",
        );
        let pid = reply.shim_pid as i32;
        assert!(
            cmdline(pid).contains(&socket.to_string_lossy().into_owned()),
            "Connect says the shim is {pid}, whose command line is {:?}",
            cmdline(pid)
        );
        self.shim = Some(ShimProc { pid, socket });
        self.client = Some(client);
    }

    /// The first connection to the shim.
    pub fn task(&self) -> &TaskClient {
        self.client.as_ref().expect("start the shim first")
    }

    /// A new connection to the shim (for a call that blocks, like Wait).
    pub fn client(&self) -> TaskClient {
        let c = Client::connect(&self.address)
            .unwrap_or_else(|e| panic!("connect to the shim at {}: {e:?}", self.address));
        TaskClient::new(c)
    }

    /// The shim's pid.
    pub fn shim_pid(&self) -> i32 {
        self.shim.as_ref().expect("start the shim first").pid
    }

    /// `Shutdown` as containerd sends it after a Delete; the shim must then exit (and
    /// flush its events first). Returns every event it published.
    pub fn shutdown(&mut self, id: &str) -> Vec<String> {
        let pid = self.shim_pid();
        // The reply may be lost with the connection when the shim exits: containerd ignores
        // that too. The exit is what counts.
        let _ = self.task().shutdown(
            ctx(),
            &ShutdownRequest {
                id: id.to_string(),
                ..Default::default()
            },
        );
        assert!(
            poll(PROCESS_TIMEOUT, || !pid_alive(pid)),
            "the shim ({pid}) did not exit within {PROCESS_TIMEOUT:?} of Shutdown"
        );
        self.client = None;
        self.events.all()
    }

    /// Shim log lines, for failure messages.
    pub fn log_tail(&self) -> String {
        self.log.as_ref().map(|l| l.tail(60)).unwrap_or_default()
    }

    /// Everything of this test still on the host: the shim (process and socket), the
    /// shared check's processes, mounts and cgroups, and runtime state in the bundles.
    pub fn leaks(&self) -> Leaks {
        let mut leaks = self.dir.scope.leaks(&[]);
        if let Some(s) = &self.shim {
            if pid_alive(s.pid) {
                leaks
                    .other
                    .push(format!("shim process {}: {}", s.pid, cmdline(s.pid)));
            }
            if fs::symlink_metadata(&s.socket).is_ok() {
                leaks
                    .other
                    .push(format!("shim socket {}", s.socket.display()));
            }
        }
        leaks.state_entries = self
            .bundles
            .values()
            .map(|b| b.join(".youki"))
            .filter(|state| state.exists())
            .map(|state| state.display().to_string())
            .collect();
        leaks
    }

    /// Kills what is left (the shim by its pid first), detaches mounts, removes cgroups and
    /// the shim's socket.
    fn clean(&mut self) {
        self.client = None;
        if let Some(s) = &self.shim {
            // Only if the pid is still our shim (not reused by now).
            if pid_alive(s.pid) && cmdline(s.pid).contains(&*s.socket.to_string_lossy()) {
                kill9(s.pid);
                poll(Duration::from_secs(5), || !pid_alive(s.pid));
            }
        }
        self.dir.scope.clean();
        if let Some(s) = &self.shim {
            let _ = fs::remove_file(&s.socket);
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- events received ---\n{}\n--- shim log (tail) ---\n{}",
                self.events.all().join("\n"),
                self.log_tail()
            );
        }
        let leaks = leaks::settle(|| self.leaks());
        self.clean();
        if let Some(server) = self.events_server.take() {
            server.shutdown();
        }
        self.log = None;
        let what = format!("test {}", self.marker);
        self.dir.finish(&what, &leaks);
    }
}
