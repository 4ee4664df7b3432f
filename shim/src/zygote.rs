//! The zygote: a single-threaded process that performs every runtime-core operation which
//! forks (create and exec, and start and delete, whose poststart/poststop hooks run
//! through `std::process::Command`).
//!
//! runtime-core's fork refuses a multi-threaded caller, and the ttrpc server has many
//! threads; a child forked from a thread may only run async-signal-safe code. The zygote
//! has exactly one thread for its whole life, so it can fork freely. It also keeps the
//! waitpid calls of those operations (the intermediate process, hooks) away from the
//! server, whose reaper is the only one that waits there.
//!
//! The zygote lives only while there is work: after [`IDLE`] without a request it leaves
//! (exit status 0), and the next request starts a new one. An idle shim is then one
//! process: its server (issue 14: the zygote was 2.7 MB of an idle shim's 5.8 MB RSS). It
//! leaves without racing a request: it first refuses new ones (a send to it fails with
//! EPIPE, and the server starts a successor for that request), then answers one that was
//! already queued. The first zygote is forked by the server at start-up, while it still
//! has a single thread: it shares the server's pages and serves the first create at once.
//! The others are started on demand, by the thread of the request that needs one, without
//! forking the multi-threaded server: posix_spawn of /proc/self/exe (the file this server
//! runs, even if the binary was replaced on disk since) with the server's arguments and the
//! action `zygote`; its end of the channel is fd 3, the shim's log fd 4, stdio /dev/null.
//! A zygote that dies (the OOM killer may choose it; issue 14) is logged when the reaper
//! sees its exit and replaced the same way, at the next request. Every zygote's exit is
//! reaped by the server's reaper like any other child's, never by a `wait` here. No
//! parent-death signal: it would fire when the request thread that spawned the zygote
//! ends. A zygote whose server died reads end-of-file on its channel and exits.
//!
//! The server and the zygote talk over a runtime-core channel (a SOCK_SEQPACKET
//! socketpair, as between a container's processes): one JSON message per packet,
//! `{seq, body}`, requests one way and replies the other, with the process's stdio (or its
//! console socket) and an exec's process spec (in a memfd: it can be larger than a packet)
//! passed by SCM_RIGHTS. One request is in flight at a time; every wait for a reply is
//! bounded, a reply whose `seq` is not the current one (the late answer to a request that
//! timed out) is dropped, and a zygote that died is an error (Unavailable) that names the
//! operation, never a hang. A request that could not even be sent (the zygote had died)
//! goes to its successor.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::socket::SockType;
use nix::unistd::Pid;
use runtime_core::deadline::Deadline;
use runtime_core::os::channel::{self, Channel, ChannelError};
use runtime_core::os::fds;
use serde::{Deserialize, Serialize};

use crate::error::{Kind, Result, ShimError};

/// Bound on one create: runtime-core's own waits (10 s intermediate, 120 s init) + hooks.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound on start: runtime-core waits 30 s for init, then poststart hooks run.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on delete: runtime-core waits 10 s for killed processes, then poststop hooks.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on exec: runtime-core's own waits (10 s intermediate, 120 s the process).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(150);
/// Bound on a checkpoint or a restore: CRIU writes or reads all of the container's memory.
pub const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(600);
/// Error messages are cut to this length so that a reply always fits in one packet.
const MAX_ERROR_MESSAGE: usize = 16 * 1024;

/// One packet: a body and the sequence number of the request it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    seq: u64,
    body: T,
}

/// The server's end of a zygote's channel: requests out, replies in.
type ServerEnd = Channel<Envelope<Request>, Envelope<Reply>>;
/// The zygote's end: requests in, replies out.
type ZygoteEnd = Channel<Envelope<Reply>, Envelope<Request>>;

/// A server's channel to a new zygote: (the server's end, the zygote's).
fn zygote_channel() -> Result<(ServerEnd, ZygoteEnd)> {
    channel::pair("zygote", "shim server")
        .map_err(|e| ShimError::other(format!("zygote channel: {e}")))
}

/// What the server asks the zygote to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// runtime_core::container::create; three descriptors (stdin, stdout, stderr) ride
    /// along, or with `terminal` one: the console socket.
    Create {
        /// Container id.
        id: String,
        /// Bundle directory.
        bundle: PathBuf,
        /// runtime-core state root of this container.
        state_root: PathBuf,
        /// Enter the rootfs without pivot_root.
        no_pivot: bool,
        /// The systemd cgroup driver whatever the cgroupsPath's form (runc's
        /// `SystemdCgroup`); without it, the form decides.
        systemd_cgroup: bool,
        /// The process has a terminal: the descriptor is a console socket.
        terminal: bool,
    },
    /// runtime_core's Container::exec; descriptors: a memfd holding the process spec's
    /// JSON, then the stdio or the console socket as for create.
    Exec {
        /// Container id.
        id: String,
        /// runtime-core state root.
        state_root: PathBuf,
        /// The process has a terminal.
        terminal: bool,
    },
    /// runtime_core's Container::start (poststart hooks included).
    Start {
        /// Container id.
        id: String,
        /// runtime-core state root.
        state_root: PathBuf,
    },
    /// runtime_core::container::delete (poststop hooks included).
    Delete {
        /// Container id.
        id: String,
        /// runtime-core state root.
        state_root: PathBuf,
        /// Kill what still runs.
        force: bool,
    },
    /// runtime_core::checkpoint::checkpoint (checkpoint.rs).
    Checkpoint {
        /// Container id.
        id: String,
        /// Bundle directory.
        bundle: PathBuf,
        /// runtime-core state root.
        state_root: PathBuf,
        /// What to dump, and how.
        dump: crate::checkpoint::Dump,
    },
    /// runtime_core::checkpoint::restore as a create (checkpoint.rs); descriptors as for
    /// create.
    Restore {
        /// Container id.
        id: String,
        /// Bundle directory.
        bundle: PathBuf,
        /// runtime-core state root of this container.
        state_root: PathBuf,
        /// The images and CRIU's work directory.
        restore: crate::checkpoint::Restore,
        /// As for create.
        systemd_cgroup: bool,
        /// The process has a terminal: the descriptor is a console socket.
        terminal: bool,
    },
}

impl Request {
    /// The operation, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Create { .. } => "create",
            Request::Exec { .. } => "exec",
            Request::Start { .. } => "start",
            Request::Delete { .. } => "delete",
            Request::Checkpoint { .. } => "checkpoint",
            Request::Restore { .. } => "restore",
        }
    }
}

/// What the server keeps of a container the zygote created (or restored), so that it
/// never reads back from disk what its own zygote made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// Init's pid.
    pub pid: i32,
    /// The container's cgroup, for the OOM watch.
    pub cgroup_path: PathBuf,
    /// No pid namespace of its own: what is left in its cgroup is killed when init exits.
    pub shares_pid_ns: bool,
}

impl Created {
    /// What the server keeps of `c`.
    fn of(c: &runtime_core::container::Container) -> Created {
        let st = c.state();
        Created {
            pid: st.pid,
            cgroup_path: st.cgroup_path.clone(),
            shares_pid_ns: st.shares_pid_ns,
        }
    }
}

/// The zygote's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The container exists; its init waits for start (or, restored, runs).
    Created(Created),
    /// The exec'd process runs.
    Spawned {
        /// Its pid.
        pid: i32,
    },
    /// Start or delete succeeded.
    Done,
    /// The operation failed.
    Failed(ShimError),
}

/// The action (last argument, after the server's own) that makes the binary a zygote.
pub const ACTION: &str = "zygote";
/// The zygote's end of its channel, in the zygote.
const CHANNEL_FD: RawFd = 3;
/// The shim's log (containerd's `log` fifo, or /dev/null), in the zygote.
const LOG_FD: RawFd = 4;
/// Descriptors handed to a new zygote are first copied at or above this number, so that
/// the spawn's dup2 onto 3 and 4 never overwrites one of them or is a no-op.
const HIGH_FD: RawFd = 10;
/// How long a request whose zygote is leaving (or died) waits for the reaper to see its
/// exit before starting a successor.
const RESPAWN_WAIT: Duration = Duration::from_secs(5);
/// How long a zygote waits for a request before it leaves, unless [`IDLE_ENV`] says
/// otherwise: a container's create and start, and a pod's containers, come well within
/// it; a kubelet exec probe (every 10 s by default) starts one, a few ms.
pub const IDLE: Duration = Duration::from_secs(5);
/// Seconds a zygote waits for a request before it leaves; 0: it stays as long as the
/// server. Read from the server's environment (containerd's).
pub const IDLE_ENV: &str = "YOUKI_SHIM_ZYGOTE_IDLE";
/// A zygote that exits sooner than this after its start counts as a failed start ...
const QUICK_EXIT: Duration = Duration::from_secs(1);
/// ... and after this many in a row the server stops starting new ones (no spawn loop).
const MAX_QUICK_EXITS: u32 = 5;
/// Pauses before the attempts to start a zygote (EAGAIN, ENOMEM can be passing).
const SPAWN_RETRIES: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(10),
    Duration::from_millis(100),
];

/// Starts one zygote process: its pid and the server's end of its channel.
type SpawnFn = dyn Fn() -> Result<(Pid, ServerEnd)> + Send + Sync;

/// The server's handle on its zygote, which it replaces when it dies.
pub struct Zygote {
    spawn: Box<SpawnFn>,
    /// The sequence number of the last request; held for a whole exchange, so that one
    /// request is in flight at a time.
    calls: Mutex<u64>,
    live: Mutex<Live>,
    /// Signalled when `live` changes (a new zygote, or none).
    changed: Condvar,
}

impl std::fmt::Debug for Zygote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zygote").finish_non_exhaustive()
    }
}

/// The zygote of the moment.
#[derive(Debug)]
struct Live {
    state: State,
    /// The server is stopping: no new zygote, exits are expected.
    closed: bool,
    /// Consecutive zygotes that exited within [`QUICK_EXIT`] of their start.
    quick_exits: u32,
}

#[derive(Debug)]
enum State {
    Running(Generation),
    /// None now (it left, idle, or died): the next request starts one.
    Idle,
    /// None, and none will start: why.
    Down(String),
}

/// One zygote process.
#[derive(Debug, Clone)]
struct Generation {
    pid: Pid,
    chan: Arc<ServerEnd>,
    started: Instant,
}

impl Generation {
    /// The zygote `pid`, started now, at the other end of `chan`.
    fn new((pid, chan): (Pid, ServerEnd)) -> Generation {
        Generation {
            pid,
            chan: Arc::new(chan),
            started: Instant::now(),
        }
    }
}

/// Sends `req` as request `seq` and waits at most `timeout` for its reply on `chan`; a
/// reply to an earlier request (the late answer to one that timed out) or one that does
/// not decode is dropped.
fn exchange(
    chan: &ServerEnd,
    seq: u64,
    req: &Request,
    fds: &[BorrowedFd<'_>],
    timeout: Duration,
) -> std::result::Result<Reply, ChannelError> {
    let body = req.clone();
    chan.send_with_fds(&Envelope { seq, body }, fds)?;
    let deadline = Deadline::after(timeout);
    loop {
        match chan.recv_with_fds("the reply", deadline) {
            Ok((env, _fds)) if env.seq == seq => return Ok(env.body),
            Ok((env, _fds)) => log::warn!("zygote: dropping stale reply #{}", env.seq),
            Err(ChannelError::Malformed { .. }) => {
                log::warn!("zygote: dropping an undecodable reply")
            }
            Err(e) => return Err(e),
        }
    }
}

/// The error of request `op`, which zygote `pid` did not answer within `timeout`.
fn unanswered(op: &str, pid: Pid, timeout: Duration, e: ChannelError) -> ShimError {
    let unavailable =
        |why: String| ShimError::new(Kind::Unavailable, format!("zygote: {op}: {why}"));
    match e {
        ChannelError::Timeout { .. } => ShimError::new(
            Kind::DeadlineExceeded,
            format!("zygote: {op}: no reply from zygote {pid} within {timeout:?}"),
        ),
        ChannelError::Send { errno, .. } => {
            unavailable(format!("sending the request to zygote {pid}: {errno}"))
        }
        ChannelError::PeerGone { .. } => {
            unavailable(format!("zygote {pid} exited before answering"))
        }
        ChannelError::Recv { errno, .. } => {
            unavailable(format!("receiving the reply of zygote {pid}: {errno}"))
        }
        e => unavailable(format!("zygote {pid}: {e}")),
    }
}

impl Zygote {
    /// Starts the zygote, forked: must be called while the process has a single thread
    /// (the first thing the server does). If that fails, it is exec'd. A failure to start
    /// any is kept, and reported by every request. `debug`: the shim's `-debug`.
    pub fn start(debug: bool) -> Zygote {
        match ExecSpawner::new(debug) {
            Ok(s) => {
                let first = s.fork().or_else(|e| {
                    log::warn!("forking the zygote: {e}; exec'ing one");
                    s.spawn()
                });
                Zygote::with_spawner(first, Box::new(move || s.spawn()))
            }
            Err(e) => Zygote::with_spawner(Err(e.clone()), Box::new(move || Err(e.clone()))),
        }
    }

    /// A zygote that is `first` (or none if that failed: the first request tries again),
    /// its successors started by `spawn`.
    fn with_spawner(first: Result<(Pid, ServerEnd)>, spawn: Box<SpawnFn>) -> Zygote {
        let state = match first.map(Generation::new) {
            Ok(g) => State::Running(g),
            Err(e) => {
                log::error!("starting the zygote: {e}");
                State::Idle
            }
        };
        Zygote {
            spawn,
            calls: Mutex::new(0),
            live: Mutex::new(Live {
                state,
                closed: false,
                quick_exits: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `req` (with `fds`) and waits at most `timeout` for its reply, starting a
    /// zygote if there is none. A request that could not be sent because the zygote had
    /// left or died goes, once, to the one that replaces it. Every error names the
    /// operation.
    pub fn call(&self, req: &Request, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Reply> {
        let op = req.name();
        let unavailable =
            |why: String| ShimError::new(Kind::Unavailable, format!("zygote: {op}: {why}"));
        let mut seq = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let mut gen = self.current(None).map_err(unavailable)?;
        let mut resent = false;
        loop {
            *seq += 1;
            match exchange(&gen.chan, *seq, req, fds, timeout) {
                Err(ChannelError::Send {
                    errno: e @ (Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN),
                    ..
                }) if !resent => {
                    log::warn!(
                        "zygote {}: sending {op}: {e}; waiting for its successor",
                        gen.pid
                    );
                    resent = true;
                    gen = self.current(Some(gen.pid)).map_err(unavailable)?;
                }
                r => return r.map_err(|e| unanswered(op, gen.pid, timeout, e)),
            }
        }
    }

    /// The running zygote, started now if there is none; with `after`, one other than that
    /// (leaving or dead) one, waiting at most [`RESPAWN_WAIT`] for the reaper to see its
    /// exit. `Err`: why there is none.
    fn current(&self, after: Option<Pid>) -> std::result::Result<Generation, String> {
        let (mut live, _) = self
            .changed
            .wait_timeout_while(self.live(), RESPAWN_WAIT, |live| {
                !live.closed && matches!(&live.state, State::Running(g) if Some(g.pid) == after)
            })
            .unwrap_or_else(|p| p.into_inner());
        if live.closed {
            return Err("the shim is shutting down".into());
        }
        match &live.state {
            State::Down(why) => Err(format!("no zygote: {why}")),
            State::Idle => {
                let g = spawn_with_retries(&*self.spawn)
                    .map_err(|e| format!("starting a zygote: {e}"))?;
                log::debug!("zygote {} started", g.pid);
                live.state = State::Running(g.clone());
                Ok(g)
            }
            State::Running(g) if Some(g.pid) != after => Ok(g.clone()),
            State::Running(g) => Err(format!(
                "zygote {} refuses requests but has not exited within {RESPAWN_WAIT:?}",
                g.pid
            )),
        }
    }

    /// Called by the reaper for every exit: if `pid` is the zygote, notes that there is none
    /// (the next request starts one) and returns true. Status 0 is a zygote that left,
    /// idle; any other is logged, and after [`MAX_QUICK_EXITS`] zygotes in a row that died
    /// at once none is started again (no spawn loop).
    pub fn exited(&self, pid: i32, status: u32) -> bool {
        let mut live = self.live();
        let gen = match &live.state {
            State::Running(g) if g.pid.as_raw() == pid => g.clone(),
            _ => return false,
        };
        // A request in flight reads end-of-file now, also while a container's init (forked
        // by the zygote, waiting for start) still holds a copy of the zygote's end.
        gen.chan.shutdown();
        let lived = gen.started.elapsed();
        live.state = if live.closed {
            log::debug!("zygote {pid} exited with status {status}");
            State::Down("the shim is shutting down".into())
        } else if status == 0 {
            log::debug!("zygote {pid} left after {lived:?}, idle");
            live.quick_exits = 0;
            State::Idle
        } else {
            live.quick_exits = if lived < QUICK_EXIT {
                live.quick_exits + 1
            } else {
                0
            };
            if live.quick_exits >= MAX_QUICK_EXITS {
                log::error!(
                    "zygote {pid} exited with status {status} {lived:?} after its start, the \
                     {MAX_QUICK_EXITS}th in a row: no new zygote"
                );
                State::Down(format!(
                    "{MAX_QUICK_EXITS} zygotes in a row exited within {QUICK_EXIT:?} of their \
                     start, the last ({pid}) with status {status}"
                ))
            } else {
                log::error!(
                    "zygote {pid} exited with status {status}: the next request starts a new one"
                );
                State::Idle
            }
        };
        let idle = matches!(live.state, State::Idle) && status == 0;
        self.changed.notify_all();
        drop(live);
        if idle {
            // The server goes idle: give back the heap the work freed (malloc keeps holes).
            runtime_core::os::malloc::trim();
        }
        true
    }

    /// Closes the channel: the zygote exits when it reads end-of-file, and none replaces it.
    pub fn close(&self) {
        let mut live = self.live();
        live.closed = true;
        if let State::Running(g) = &live.state {
            g.chan.shutdown();
        }
        self.changed.notify_all();
    }
}

/// One zygote from `spawn`, trying again after a short pause if it fails.
fn spawn_with_retries(spawn: &SpawnFn) -> Result<Generation> {
    let mut last = None;
    for pause in SPAWN_RETRIES {
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        match spawn() {
            Ok(started) => return Ok(Generation::new(started)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ShimError::other("no attempt")))
}

/// Starts zygotes: the first forked, the others as the shim's own binary, exec'd with the
/// server's arguments and environment.
struct ExecSpawner {
    /// The shim's log fifo (the server's logger writes to it too), or /dev/null.
    log: OwnedFd,
    /// `-debug` was given.
    debug: bool,
}

/// Copies `fd` to a new close-on-exec descriptor numbered [`HIGH_FD`] or above.
fn dup_high(fd: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    fds::dup_from(fd, HIGH_FD).map_err(|e| e.errno)
}

/// The bytes of `s` as a C string (arguments and environment never hold a NUL).
fn c_string(s: &[u8], what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| ShimError::other(format!("zygote: {what} holds a NUL byte")))
}

impl ExecSpawner {
    /// Opens the log fifo every zygote gets (here, in the server's cwd, where containerd
    /// made it).
    fn new(debug: bool) -> Result<ExecSpawner> {
        Ok(ExecSpawner {
            log: open_log()?,
            debug,
        })
    }

    /// Forks a zygote. Must be called while the process has a single thread (runtime-core's
    /// fork refuses otherwise).
    fn fork(&self) -> Result<(Pid, ServerEnd)> {
        use runtime_core::os::{exit_child, fork, Forked};
        let (ours, theirs) = zygote_channel()?;
        match fork().map_err(|e| ShimError::other(format!("zygote: {e}")))? {
            Forked::Child => {
                drop(ours);
                let log = self.log.try_clone().ok();
                exit_child(forked_main(theirs, log, self.debug))
            }
            Forked::Parent(pid) => Ok((pid, ours)),
        }
    }

    /// posix_spawn of /proc/self/exe: safe from a multi-threaded process (the child execs
    /// at once), and the file is the one this server runs.
    fn spawn(&self) -> Result<(Pid, ServerEnd)> {
        use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
        use nix::sys::signal::SigSet;
        use nix::sys::stat::Mode;

        let err =
            |what: &'static str| move |e: Errno| ShimError::other(format!("zygote: {what}: {e}"));
        // Built here, not kept: a server whose zygote never dies does not pay for them.
        let mut argv = std::env::args_os()
            .map(|a| c_string(a.as_bytes(), "an argument"))
            .collect::<Result<Vec<_>>>()?;
        argv.push(c_string(ACTION.as_bytes(), "the action")?);
        let env = std::env::vars_os()
            .map(|(mut kv, v)| {
                kv.push("=");
                kv.push(v);
                c_string(kv.as_bytes(), "the environment")
            })
            .collect::<Result<Vec<_>>>()?;
        let (ours, theirs) = zygote_channel()?;
        let theirs = dup_high(theirs.as_fd()).map_err(err("copying its channel"))?;
        let log = dup_high(self.log.as_fd()).map_err(err("copying the log"))?;
        let mut actions = PosixSpawnFileActions::init().map_err(err("file actions"))?;
        actions
            .add_open(0, "/dev/null", OFlag::O_RDONLY, Mode::empty())
            .and_then(|()| actions.add_open(1, "/dev/null", OFlag::O_WRONLY, Mode::empty()))
            .and_then(|()| actions.add_dup2(1, 2))
            .and_then(|()| actions.add_dup2(theirs.as_raw_fd(), CHANNEL_FD))
            .and_then(|()| actions.add_dup2(log.as_raw_fd(), LOG_FD))
            .map_err(err("file actions"))?;
        // No signal blocked or ignored by the server's threads reaches the zygote (and
        // the containers it forks).
        let mut attr = PosixSpawnAttr::init().map_err(err("attributes"))?;
        attr.set_flags(
            PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
        )
        .and_then(|()| attr.set_sigmask(&SigSet::empty()))
        .and_then(|()| attr.set_sigdefault(&SigSet::all()))
        .map_err(err("attributes"))?;
        let pid = posix_spawn(c"/proc/self/exe", &actions, &attr, &argv, &env)
            .map_err(err("spawning /proc/self/exe"))?;
        Ok((pid, ours))
    }
}

/// The shim's log fifo, for the zygote to write to, or /dev/null without one (a manual
/// run). Non-blocking open: a fifo without a reader is no log rather than a hang.
fn open_log() -> Result<OwnedFd> {
    use nix::sys::stat::Mode;
    let open =
        |path: &str, flags: OFlag| nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty());
    let fd = match open("log", OFlag::O_WRONLY | OFlag::O_NONBLOCK) {
        Ok(fd) => {
            fcntl(&fd, FcntlArg::F_SETFL(OFlag::empty()))
                .map_err(|e| ShimError::other(format!("zygote: the log fifo: {e}")))?;
            fd
        }
        Err(_) => open("/dev/null", OFlag::O_WRONLY)
            .map_err(|e| ShimError::other(format!("zygote: /dev/null: {e}")))?,
    };
    Ok(fd)
}

/// `Some(debug)` if `args` (the whole command line) make this process a zygote.
pub fn is_zygote(args: &[OsString]) -> Option<bool> {
    let flags = containerd_shim::parse(args.get(1..)?).ok()?;
    (flags.action == ACTION).then_some(flags.debug)
}

/// The life of an exec'd zygote: take the descriptors the server's spawn placed, then
/// [`run`]. Returns the process's exit code.
pub fn main(debug: bool) -> i32 {
    use nix::sys::socket::{getsockopt, sockopt};

    // Taken before this process opens anything: fds::take_inherited's contract.
    let Some(sock) = fds::take_inherited(CHANNEL_FD) else {
        eprintln!("{ACTION}: no channel on fd {CHANNEL_FD}: only the shim starts zygotes");
        return 2;
    };
    if getsockopt(&sock, sockopt::SockType) != Ok(SockType::SeqPacket) {
        eprintln!("{ACTION}: fd {CHANNEL_FD} is not the shim's channel");
        return 2;
    }
    let log = fds::take_inherited(LOG_FD);
    // Neither goes to the containers and hooks the zygote forks.
    for fd in [Some(&sock), log.as_ref()].into_iter().flatten() {
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
    // The spawn reset every signal to its default: main() leaves SIGCHLD there, and SIGPIPE
    // is ignored as in any Rust program (writes report EPIPE instead).
    run(Channel::from_fd(sock, "shim server"), log, debug)
}

/// The life of the forked zygote: undo what it inherited from the server, then [`run`].
fn forked_main(chan: ZygoteEnd, log: Option<OwnedFd>, debug: bool) -> i32 {
    if let Err(e) = undo_server() {
        // Nothing to log to yet; the server sees the channel close.
        let _ = e;
        return 1;
    }
    run(chan, log, debug)
}

/// What a forked zygote must not keep of the server: its signal handlers (main.rs's
/// quiet_signals) and its stdout (the pipe `start` reads the address from until
/// end-of-file).
fn undo_server() -> std::result::Result<(), Errno> {
    use nix::sys::signal::Signal;
    use runtime_core::os::signals::{set_action, Action};

    // SIGPIPE stays ignored as in any Rust program (writes report EPIPE instead);
    // runtime-core resets every signal for the container's process.
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGCHLD,
        Signal::SIGHUP,
    ] {
        set_action(sig, Action::Default).map_err(|e| e.errno)?;
    }
    set_action(Signal::SIGPIPE, Action::Ignore).map_err(|e| e.errno)?;
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// A zygote's life once it has its channel: set up, then serve requests until the server
/// closes the channel (or dies), or none came for the idle time. Returns the process's
/// exit code: 0 tells the server it left in order.
fn run(chan: ZygoteEnd, log: Option<OwnedFd>, debug: bool) -> i32 {
    if let Some(log) = log {
        init_log(log, debug);
    }
    if let Err(e) = setup() {
        log::error!("zygote: setting up: {e}");
        return 1;
    }
    serve(
        &chan,
        idle_time(std::env::var(IDLE_ENV).ok().as_deref()),
        handle,
    );
    0
}

/// The idle time [`IDLE_ENV`]'s `value` asks for (seconds, 0: none), else [`IDLE`].
fn idle_time(value: Option<&str>) -> Option<Duration> {
    let Some(value) = value else {
        return Some(IDLE);
    };
    match value.trim().parse::<u64>() {
        Ok(0) => None,
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => {
            log::warn!("zygote: {IDLE_ENV}={value:?} is not a number of seconds; using {IDLE:?}");
            Some(IDLE)
        }
    }
}

/// Logs to `fd` as the server's logger does (format, level, the runtime's name).
fn init_log(fd: OwnedFd, debug: bool) {
    let _ = crate::shim::logger::init_on_file(
        std::fs::File::from(fd),
        debug,
        crate::RUNTIME_ID.to_string(),
    );
}

/// Makes this process a proper zygote.
fn setup() -> std::result::Result<(), Errno> {
    use nix::sys::prctl;

    // Exec'ing /proc/self/exe named the process "exe": `ps` and the OOM killer's report
    // should show the zygote as the shim it belongs to (the kernel keeps 15 bytes).
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let base = std::path::Path::new(&arg0).file_name().unwrap_or_default();
    let name = base.as_bytes();
    if let Ok(name) = CString::new(&name[..name.len().min(15)]) {
        prctl::set_name(&name)?;
    }
    // Not a subreaper: container inits orphaned by the intermediate must go to the server.
    prctl::set_child_subreaper(false)?;
    // The shim disables transparent huge pages for itself (main); containers forked from
    // here must not inherit that.
    prctl::set_thp_disable(false)?;
    Ok(())
}

/// Answers requests one by one until the channel closes, or none came for `idle`: then it
/// refuses more and answers those already sent (the server sends one at a time).
fn serve(
    chan: &ZygoteEnd,
    idle: Option<Duration>,
    mut handler: impl FnMut(Request, Vec<OwnedFd>) -> Reply,
) {
    let mut leaving = false;
    loop {
        let deadline = if leaving {
            Deadline::never()
        } else {
            Deadline::within(idle)
        };
        let (seq, reply) = match chan.recv_with_fds("a request", deadline) {
            Ok((env, fds)) => (env.seq, handler(env.body, fds)),
            Err(ChannelError::Malformed { .. }) => (
                0,
                Reply::Failed(ShimError::invalid("zygote: undecodable request")),
            ),
            Err(ChannelError::PeerGone { .. }) => return,
            Err(ChannelError::Timeout { .. }) => {
                chan.refuse_more();
                leaving = true;
                continue;
            }
            Err(e) => {
                log::error!("zygote: {e}");
                return;
            }
        };
        let reply = match reply {
            Reply::Failed(mut e) if e.message.len() > MAX_ERROR_MESSAGE => {
                let mut cut = MAX_ERROR_MESSAGE;
                while !e.message.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.message.truncate(cut);
                Reply::Failed(e)
            }
            r => r,
        };
        if let Err(e) = chan.send(&Envelope { seq, body: reply }) {
            log::error!("zygote: {e}");
            return;
        }
    }
}

/// The process's stdio, or its console socket with `terminal`.
type ProcessIo = (Option<runtime_core::os::Stdio>, Option<OwnedFd>);

fn process_io(what: &str, fds: Vec<OwnedFd>, terminal: bool) -> Result<ProcessIo> {
    if terminal {
        let [console]: [OwnedFd; 1] = fds.try_into().map_err(|v: Vec<OwnedFd>| {
            ShimError::invalid(format!(
                "{what}: 1 console descriptor expected, got {}",
                v.len()
            ))
        })?;
        return Ok((None, Some(console)));
    }
    let [stdin, stdout, stderr]: [OwnedFd; 3] = fds.try_into().map_err(|v: Vec<OwnedFd>| {
        ShimError::invalid(format!(
            "{what}: 3 stdio descriptors expected, got {}",
            v.len()
        ))
    })?;
    let stdio = runtime_core::os::Stdio {
        stdin: Some(stdin),
        stdout: Some(stdout),
        stderr: Some(stderr),
    };
    Ok((Some(stdio), None))
}

/// Reads an exec's process spec from the memfd it came in.
fn read_process(fd: OwnedFd) -> Result<oci_spec::runtime::Process> {
    use std::io::{Read, Seek};
    let mut f = std::fs::File::from(fd);
    let mut text = String::new();
    f.rewind()
        .and_then(|_| f.read_to_string(&mut text))
        .map_err(|e| ShimError::other(format!("exec: reading the process spec: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| ShimError::invalid(format!("exec: the process spec: {e}")))
}

/// Performs one request in the zygote.
fn handle(req: Request, mut fds: Vec<OwnedFd>) -> Reply {
    use runtime_core::container::{self, Container, CreateOptions, ExecOptions};
    use runtime_core::state::Store;

    let result = match req {
        Request::Create {
            id,
            bundle,
            state_root,
            no_pivot,
            systemd_cgroup,
            terminal,
        } => {
            let (stdio, console) = match process_io("create", fds, terminal) {
                Ok(io) => io,
                Err(e) => return Reply::Failed(e),
            };
            let opts = CreateOptions {
                id,
                bundle,
                no_pivot,
                stdio,
                console,
                cgroup_driver: driver(systemd_cgroup),
                ..Default::default()
            };
            // The descriptors are dropped with `opts` when this returns: only the
            // container keeps them.
            container::create(&Store::new(state_root), &opts)
                .map(|c| Reply::Created(Created::of(&c)))
        }
        Request::Exec {
            id,
            state_root,
            terminal,
        } => {
            if fds.is_empty() {
                return Reply::Failed(ShimError::invalid("exec: no process spec"));
            }
            let spec = fds.remove(0);
            let io = read_process(spec).and_then(|p| Ok((p, process_io("exec", fds, terminal)?)));
            let (process, (stdio, console)) = match io {
                Ok(x) => x,
                Err(e) => return Reply::Failed(e),
            };
            let opts = ExecOptions {
                process,
                stdio,
                console,
                ..Default::default()
            };
            Container::load(&Store::new(state_root), &id)
                .and_then(|mut c| c.exec(&opts))
                .map(|pid| Reply::Spawned { pid: pid.as_raw() })
        }
        Request::Start { id, state_root } => Container::load(&Store::new(state_root), &id)
            .and_then(|mut c| c.start())
            .map(|()| Reply::Done),
        Request::Delete {
            id,
            state_root,
            force,
        } => container::delete(&Store::new(state_root), &id, force).map(|()| Reply::Done),
        Request::Checkpoint {
            id,
            bundle,
            state_root,
            dump,
        } => {
            return done(
                crate::checkpoint::dump(&Store::new(state_root), &id, &bundle, &dump)
                    .map(|()| Reply::Done),
            )
        }
        Request::Restore {
            id,
            bundle,
            state_root,
            restore,
            systemd_cgroup,
            terminal,
        } => {
            let (stdio, console) = match process_io("restore", fds, terminal) {
                Ok(io) => io,
                Err(e) => return Reply::Failed(e),
            };
            return done(in_child(|| {
                crate::checkpoint::restore(
                    &Store::new(state_root),
                    &id,
                    &bundle,
                    &restore,
                    driver(systemd_cgroup),
                    stdio,
                    console,
                )
                .map(|c| Reply::Created(Created::of(&c)))
            }));
        }
    };
    done(result.map_err(ShimError::from))
}

/// The cgroup driver of a create or restore: systemd's with runc's `SystemdCgroup`,
/// otherwise the one the cgroupsPath's form names.
fn driver(systemd_cgroup: bool) -> runtime_core::cgroups::Driver {
    use runtime_core::cgroups::Driver;
    if systemd_cgroup {
        Driver::Systemd
    } else {
        Driver::ByPath
    }
}

/// The reply for `result`, once the zygote has given back what the operation allocated
/// (it idles between requests).
fn done(result: Result<Reply>) -> Reply {
    let reply = result.unwrap_or_else(Reply::Failed);
    // The zygote idles between requests: give back what the operation allocated.
    runtime_core::os::malloc::trim();
    reply
}

/// Runs `op` in a child of the zygote and returns its reply. For a restore: the processes
/// CRIU restores are children of the process that runs it, and the zygote's children stay
/// its own; the child's go to the server, the subreaper, when it exits.
fn in_child(op: impl FnOnce() -> Result<Reply>) -> Result<Reply> {
    use runtime_core::os::{exit_child, fork, Forked};
    let (ours, theirs) = channel::pair::<Reply, Reply>("the zygote's child", "the zygote")
        .map_err(|e| ShimError::other(format!("zygote: {e}")))?;
    match fork().map_err(|e| ShimError::other(format!("zygote: {e}")))? {
        Forked::Child => {
            drop(ours);
            let reply = op().unwrap_or_else(Reply::Failed);
            let sent = theirs.send(&reply);
            exit_child(i32::from(sent.is_err()))
        }
        Forked::Parent(pid) => {
            drop(theirs);
            // The child's end closes when it exits: a child that died answers end-of-file.
            let got = ours.recv_with_fds("its reply", Deadline::never());
            let _ = nix::sys::wait::waitpid(pid, None);
            match got {
                Ok((reply, _)) => Ok(reply),
                Err(ChannelError::Malformed { .. }) => {
                    Err(ShimError::other("zygote: undecodable reply of its child"))
                }
                Err(ChannelError::PeerGone { .. }) => Err(ShimError::other(format!(
                    "zygote: its child {pid} exited without a reply"
                ))),
                Err(e) => Err(ShimError::other(format!(
                    "zygote: the reply of its child {pid}: {e}"
                ))),
            }
        }
    }
}

/// A memfd holding `process` as JSON, for [`Request::Exec`].
pub fn process_memfd(process: &oci_spec::runtime::Process) -> Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use std::io::Write;
    let json = serde_json::to_vec(process)
        .map_err(|e| ShimError::invalid(format!("exec: encoding the process spec: {e}")))?;
    let fd = memfd_create(c"exec-process", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| ShimError::other(format!("memfd_create: {e}")))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(&json)
        .map_err(|e| ShimError::other(format!("writing the process spec: {e}")))?;
    Ok(f.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn five() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    /// A create's reply with init's `pid`.
    fn created(pid: i32) -> Reply {
        Reply::Created(Created {
            pid,
            cgroup_path: "/youki/c".into(),
            shares_pid_ns: false,
        })
    }

    #[test]
    fn exchange_drops_stale_replies_and_times_out() {
        let (server_end, zygote_end) = zygote_channel().unwrap();
        let req = Request::Start {
            id: "c1".into(),
            state_root: "/nonexistent".into(),
        };
        // No answer: a bounded wait.
        let r = exchange(&server_end, 1, &req, &[], Duration::from_millis(50));
        assert!(matches!(r, Err(ChannelError::Timeout { .. })), "{r:?}");
        // The zygote answers #1 late, then something that is no reply, then #2: the
        // client must take #2 only.
        let reply = |seq, body| Envelope { seq, body };
        zygote_end.send(&reply(1, Reply::Done)).unwrap();
        let not_a_reply: Channel<u32> =
            Channel::from_fd(zygote_end.as_fd().try_clone_to_owned().unwrap(), "");
        not_a_reply.send(&2).unwrap();
        zygote_end.send(&reply(2, created(42))).unwrap();
        let r = exchange(&server_end, 2, &req, &[], Duration::from_secs(5)).unwrap();
        assert_eq!(r, created(42));
        // Both requests arrived, in order.
        for want in [1, 2] {
            let (env, _) = zygote_end.recv_with_fds("a request", five()).unwrap();
            assert_eq!(env.seq, want);
            assert_eq!(env.body, req);
        }
        // A closed zygote end: not sent, or closed before the answer, never a hang.
        drop((zygote_end, not_a_reply));
        let t = Instant::now();
        let r = exchange(&server_end, 3, &req, &[], Duration::from_secs(30));
        let epipe = matches!(
            r,
            Err(ChannelError::Send {
                errno: Errno::EPIPE,
                ..
            })
        );
        assert!(epipe, "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn serve_answers_each_request_with_its_seq() {
        let (server_end, zygote_end) = zygote_channel().unwrap();
        let t = std::thread::spawn(move || {
            serve(&zygote_end, None, |req, fds| match req {
                Request::Create { id, .. } if fds.len() == 3 => created(id.len() as i32),
                Request::Create { .. } => Reply::Failed(ShimError::invalid("fds")),
                _ => Reply::Failed(ShimError::not_found("x".repeat(MAX_ERROR_MESSAGE * 2))),
            })
        });
        let null = std::fs::File::open("/dev/null").unwrap();
        let create = Request::Create {
            id: "abc".into(),
            bundle: "/b".into(),
            state_root: "/s".into(),
            no_pivot: false,
            systemd_cgroup: false,
            terminal: false,
        };
        let fds = [null.as_fd(), null.as_fd(), null.as_fd()];
        let five = Duration::from_secs(5);
        let r = exchange(&server_end, 1, &create, &fds, five).unwrap();
        assert_eq!(r, created(3));
        let r = exchange(&server_end, 2, &create, &[], five).unwrap();
        assert!(matches!(r, Reply::Failed(e) if e.kind == Kind::InvalidArgument));
        let start = Request::Start {
            id: "abc".into(),
            state_root: "/s".into(),
        };
        match exchange(&server_end, 3, &start, &[], five).unwrap() {
            Reply::Failed(e) => {
                assert_eq!(e.kind, Kind::NotFound);
                assert_eq!(e.message.len(), MAX_ERROR_MESSAGE);
            }
            other => panic!("{other:?}"),
        }
        drop(server_end);
        t.join().unwrap();
    }

    /// How a fake zygote (a thread on the other end of the channel) behaves.
    #[derive(Clone, Copy)]
    enum Fake {
        /// Answers every request with `Created { pid: its own pid }`.
        Serve,
        /// Reads one request, then closes its end without answering (it died).
        DieOnRequest,
        /// Reads requests and never answers, keeping its end open (as a container's
        /// init, forked by a zygote that died, keeps a copy).
        Hang,
    }

    fn fake(chan: ZygoteEnd, pid: i32, how: Fake) {
        let request = || chan.recv_with_fds("a request", Deadline::never());
        match how {
            Fake::Serve => serve(&chan, None, |_, _| created(pid)),
            Fake::DieOnRequest => drop(request()),
            Fake::Hang => while request().is_ok() {},
        }
    }

    /// Fake pids, far above any real one; `hows[i]` is how the i-th zygote behaves (the
    /// last one for the later ones). Returns the zygote and the count of starts.
    fn fake_zygote(hows: &'static [Fake]) -> (Zygote, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let starts = Arc::new(AtomicUsize::new(0));
        let counter = starts.clone();
        let spawn = move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let pid = 100_000_000 + n as i32;
            let how = hows[n.min(hows.len() - 1)];
            let (ours, theirs) = zygote_channel()?;
            std::thread::spawn(move || fake(theirs, pid, how));
            Ok((Pid::from_raw(pid), ours))
        };
        (Zygote::with_spawner(spawn(), Box::new(spawn)), starts)
    }

    fn starts(n: &std::sync::atomic::AtomicUsize) -> usize {
        n.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn delete_req() -> Request {
        Request::Delete {
            id: "c1".into(),
            state_root: "/x".into(),
            force: true,
        }
    }

    const FIRST: i32 = 100_000_000;

    #[test]
    fn a_request_to_a_dead_zygote_goes_to_its_successor() {
        let (z, n) = fake_zygote(&[Fake::DieOnRequest, Fake::Serve]);
        let z = Arc::new(z);
        let five = Duration::from_secs(5);
        // The first zygote dies during a request: that one fails, naming the operation.
        let e = z.call(&delete_req(), &[], five).unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
        assert_eq!(
            e.message,
            format!("zygote: delete: zygote {FIRST} exited before answering")
        );
        // The reaper has not seen it yet: the next request cannot be sent, and waits for
        // the reaper to see the exit, then starts a successor.
        let reaper = {
            let z = z.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                assert!(z.exited(FIRST, 137));
            })
        };
        let r = z.call(&delete_req(), &[], five).unwrap();
        assert_eq!(r, created(FIRST + 1));
        reaper.join().unwrap();
        assert_eq!(starts(&n), 2);
        // An exit that is not the zygote's is not its business.
        assert!(!z.exited(FIRST, 137));
        assert!(!z.exited(4242, 0));
    }

    #[test]
    fn a_request_in_flight_ends_when_the_reaper_sees_the_zygote_exit() {
        let (z, n) = fake_zygote(&[Fake::Hang, Fake::Serve]);
        let z = Arc::new(z);
        let reaper = {
            let z = z.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                assert!(z.exited(FIRST, 137));
            })
        };
        let t = Instant::now();
        let exec = Request::Exec {
            id: "c1".into(),
            state_root: "/x".into(),
            terminal: false,
        };
        let e = z.call(&exec, &[], Duration::from_secs(60)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert_eq!(e.kind, Kind::Unavailable);
        assert!(e.message.starts_with("zygote: exec: "), "{}", e.message);
        reaper.join().unwrap();
        // Its successor serves the next one.
        let r = z.call(&delete_req(), &[], Duration::from_secs(5)).unwrap();
        assert_eq!(r, created(FIRST + 1));
        assert_eq!(starts(&n), 2);
    }

    #[test]
    fn zygotes_that_keep_dying_at_once_are_not_restarted_forever() {
        let (z, n) = fake_zygote(&[Fake::Serve]);
        for i in 0..MAX_QUICK_EXITS as i32 {
            assert!(z.exited(FIRST + i, 137));
            if i + 1 < MAX_QUICK_EXITS as i32 {
                // Each death is noted; the next request starts a successor.
                let r = z.call(&delete_req(), &[], Duration::from_secs(5)).unwrap();
                assert_eq!(r, created(FIRST + i + 1));
            }
        }
        // The first and MAX - 1 successors; the last death leaves none to start.
        assert_eq!(starts(&n), MAX_QUICK_EXITS as usize);
        let e = z
            .call(&delete_req(), &[], Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
        assert!(
            e.message
                .starts_with("zygote: delete: no zygote: 5 zygotes in a row exited"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_zygote_that_cannot_start_is_an_error_naming_the_operation() {
        let spawn = || Err(ShimError::other("spawn: EAGAIN"));
        let z = Zygote::with_spawner(spawn(), Box::new(spawn));
        let e = z
            .call(&delete_req(), &[], Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
        assert_eq!(
            e.message,
            "zygote: delete: starting a zygote: spawn: EAGAIN"
        );
    }

    #[test]
    fn a_zygote_that_left_idle_is_started_again_by_the_next_request() {
        let (z, n) = fake_zygote(&[Fake::Serve]);
        // Left in order (status 0), as often as it likes: never a spawn loop, no error.
        for i in 0..2 * MAX_QUICK_EXITS as i32 {
            assert!(z.exited(FIRST + i, 0));
            assert_eq!(starts(&n), i as usize + 1, "started only on demand");
            let r = z.call(&delete_req(), &[], Duration::from_secs(5)).unwrap();
            assert_eq!(r, created(FIRST + i + 1));
        }
    }

    #[test]
    fn an_idle_zygote_answers_then_leaves_refusing_more() {
        let (server_end, zygote_end) = zygote_channel().unwrap();
        let zygote_end = Arc::new(zygote_end);
        let req = delete_req();
        let z = zygote_end.clone();
        let zygote = std::thread::spawn(move || {
            let mut n = 0;
            serve(&z, Some(Duration::from_millis(200)), |_, _| {
                n += 1;
                Reply::Done
            });
            n
        });
        let r = exchange(&server_end, 1, &req, &[], Duration::from_secs(5));
        assert!(matches!(r, Ok(Reply::Done)), "{r:?}");
        // No request for its idle time: it returns, its end still open (held here) but
        // refusing: a request fails to send (EPIPE: the server starts a successor).
        assert_eq!(zygote.join().unwrap(), 1);
        let r = exchange(&server_end, 2, &req, &[], Duration::from_secs(5));
        assert!(
            matches!(
                r,
                Err(ChannelError::Send {
                    errno: Errno::EPIPE,
                    ..
                })
            ),
            "{r:?}"
        );
        drop(zygote_end);
    }

    #[test]
    fn the_idle_time_comes_from_the_environment() {
        assert_eq!(idle_time(None), Some(IDLE));
        assert_eq!(idle_time(Some("30")), Some(Duration::from_secs(30)));
        assert_eq!(idle_time(Some("0")), None);
        assert_eq!(idle_time(Some("soon")), Some(IDLE));
    }

    #[test]
    fn after_close_the_zygote_is_not_replaced() {
        let (z, n) = fake_zygote(&[Fake::Serve]);
        z.close();
        let e = z
            .call(&delete_req(), &[], Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(e.message, "zygote: delete: the shim is shutting down");
        assert!(z.exited(FIRST, 0));
        assert_eq!(starts(&n), 1);
    }

    #[test]
    fn the_zygote_action_is_recognised_from_the_whole_command_line() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let server = [
            "/usr/bin/containerd-shim-youki-v2",
            "-namespace",
            "ns",
            "-id",
            "zygote",
            "-address",
            "/run/c.sock",
            "-socket",
            "/run/s",
        ];
        assert_eq!(is_zygote(&args(&server)), None);
        let mut zygote = server.to_vec();
        zygote.push(ACTION);
        assert_eq!(is_zygote(&args(&zygote)), Some(false));
        zygote.insert(1, "-debug");
        assert_eq!(is_zygote(&args(&zygote)), Some(true));
        assert_eq!(is_zygote(&args(&["shim", "start"])), None);
        assert_eq!(is_zygote(&args(&["shim"])), None);
        assert_eq!(is_zygote(&[]), None);
    }
}
