//! The zygote: a single-threaded child forked at server start-up, before any thread
//! exists, that performs every runtime-core operation which forks (create and exec, and
//! start and delete, whose poststart/poststop hooks run through `std::process::Command`).
//!
//! runtime-core's fork refuses a multi-threaded caller, and the ttrpc server has many
//! threads; a child forked from a thread may only run async-signal-safe code. The zygote
//! has exactly one thread for its whole life, so it can fork freely. It also keeps the
//! waitpid calls of those operations (the intermediate process, hooks) away from the
//! server, whose reaper is the only one that waits there.
//!
//! The server and the zygote talk over a SOCK_SEQPACKET socketpair: one JSON message per
//! packet, `{seq, body}`, with the process's stdio (or its console socket) and an exec's
//! process spec (in a memfd: it can be larger than a packet) passed by SCM_RIGHTS. One request is
//! in flight at a time; every wait for a reply is bounded, a reply whose `seq` is not the
//! current one (the late answer to a request that timed out) is dropped, and a zygote that
//! died is an error (Unavailable), never a hang.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::unistd::Pid;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Kind, Result, ShimError};

/// Largest message either side sends (requests are paths and ids, replies short errors).
const MAX_MESSAGE: usize = 64 * 1024;
/// Bound on one create: runtime-core's own waits (10 s intermediate, 120 s init) + hooks.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound on start: runtime-core waits 30 s for init, then poststart hooks run.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on delete: runtime-core waits 10 s for killed processes, then poststop hooks.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on exec: runtime-core's own waits (10 s intermediate, 120 s the process).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(150);
/// Error messages are cut to this length so that a reply always fits in one packet.
const MAX_ERROR_MESSAGE: usize = 16 * 1024;

/// One packet: a body and the sequence number of the request it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    seq: u64,
    body: T,
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
        /// The process has a terminal: the descriptor is a console socket.
        terminal: bool,
    },
    /// runtime_core::container::exec; descriptors: a memfd holding the process spec's
    /// JSON, then the stdio or the console socket as for create.
    Exec {
        /// Container id.
        id: String,
        /// runtime-core state root.
        state_root: PathBuf,
        /// The process has a terminal.
        terminal: bool,
    },
    /// runtime_core::container::start (poststart hooks included).
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
}

impl Request {
    fn name(&self) -> &'static str {
        match self {
            Request::Create { .. } => "create",
            Request::Exec { .. } => "exec",
            Request::Start { .. } => "start",
            Request::Delete { .. } => "delete",
        }
    }
}

/// The zygote's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The container exists; its init waits for start.
    Created {
        /// Init's pid.
        pid: i32,
    },
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

/// One received packet: its bytes and the descriptors that came with it.
pub type Packet = (Vec<u8>, Vec<OwnedFd>);

/// One end of the socketpair.
#[derive(Debug)]
pub struct Channel {
    sock: OwnedFd,
}

impl Channel {
    /// A connected pair of channels.
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| ShimError::other(format!("socketpair: {e}")))?;
        Ok((Channel { sock: a }, Channel { sock: b }))
    }

    /// Sends one packet with `fds` attached.
    pub fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), Errno> {
        if bytes.len() > MAX_MESSAGE {
            return Err(Errno::EMSGSIZE);
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let cmsgs = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
        loop {
            match sendmsg::<()>(
                self.sock.as_raw_fd(),
                &[IoSlice::new(bytes)],
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                r => return r.map(drop),
            }
        }
    }

    /// Receives one packet, waiting at most `timeout` (forever with `None`).
    /// `Ok(None)`: the other end is closed.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Option<Packet>, Errno> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Errno::ETIMEDOUT);
                    }
                    PollTimeout::try_from(left.as_millis().clamp(1, i32::MAX as u128) as i32)
                        .unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Err(Errno::EINTR) | Ok(0) => continue,
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            let mut buf = vec![0u8; MAX_MESSAGE];
            let mut cmsg = nix::cmsg_space!([RawFd; 8]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
            ) {
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
                Err(e) => return Err(e),
                Ok(m) => m,
            };
            let mut fds = vec![];
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel just installed these descriptors in our table; nothing
                    // else owns them.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
            let n = msg.bytes;
            if n == 0 && fds.is_empty() {
                return Ok(None);
            }
            if truncated {
                return Err(Errno::EMSGSIZE);
            }
            buf.truncate(n);
            return Ok(Some((buf, fds)));
        }
    }

    fn send_json<T: Serialize>(
        &self,
        seq: u64,
        body: &T,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), Errno> {
        let bytes = serde_json::to_vec(&Envelope { seq, body }).map_err(|_| Errno::EINVAL)?;
        self.send(&bytes, fds)
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<Envelope<T>> {
    serde_json::from_slice(bytes).ok()
}

/// The server's handle on its zygote.
#[derive(Debug)]
pub struct Zygote {
    pid: Pid,
    chan: Mutex<Client>,
}

#[derive(Debug)]
struct Client {
    chan: Option<Channel>,
    seq: u64,
    dead: Option<String>,
}

/// Where the zygote sends its log lines, as the server's logger would.
#[derive(Debug, Clone, Default)]
pub struct LogSetup {
    /// `-debug` was given.
    pub debug: bool,
    /// containerd namespace.
    pub namespace: String,
    /// Shim id.
    pub id: String,
}

impl Zygote {
    /// Forks the zygote. Must be called while the process has a single thread.
    pub fn spawn(log: &LogSetup) -> Result<Zygote> {
        let (parent, child) = Channel::pair()?;
        match runtime_core::syscall::fork().map_err(|e| ShimError::other(format!("zygote: {e}")))? {
            runtime_core::syscall::Forked::Child => {
                drop(parent);
                let code = child_main(child, log);
                runtime_core::syscall::exit_child(code)
            }
            runtime_core::syscall::Forked::Parent(pid) => {
                drop(child);
                Ok(Zygote {
                    pid,
                    chan: Mutex::new(Client {
                        chan: Some(parent),
                        seq: 0,
                        dead: None,
                    }),
                })
            }
        }
    }

    /// The zygote's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Sends `req` (with `fds`) and waits at most `timeout` for its reply.
    pub fn call(&self, req: &Request, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Reply> {
        let mut c = self.chan.lock().unwrap_or_else(|p| p.into_inner());
        c.call(req, fds, timeout)
    }

    /// Closes the channel: the zygote exits when it reads end-of-file.
    pub fn close(&self) {
        let mut c = self.chan.lock().unwrap_or_else(|p| p.into_inner());
        c.chan = None;
        c.dead
            .get_or_insert_with(|| "the shim is shutting down".into());
    }
}

impl Client {
    fn call(&mut self, req: &Request, fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<Reply> {
        let unavailable = |why: &str| ShimError::new(Kind::Unavailable, format!("zygote: {why}"));
        if let Some(why) = &self.dead {
            return Err(unavailable(why));
        }
        let Some(chan) = &self.chan else {
            return Err(unavailable("closed"));
        };
        self.seq += 1;
        let seq = self.seq;
        if let Err(e) = chan.send_json(seq, req, fds) {
            let why = format!("sending {}: {e}", req.name());
            if matches!(e, Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) {
                self.dead = Some(why.clone());
            }
            return Err(unavailable(&why));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match chan.recv(Some(left)) {
                Ok(Some((bytes, _fds))) => match decode::<Reply>(&bytes) {
                    Some(env) if env.seq == seq => return Ok(env.body),
                    // The late reply to a request that timed out: not ours.
                    Some(env) => log::warn!("zygote: dropping stale reply #{}", env.seq),
                    None => log::warn!("zygote: dropping an undecodable reply"),
                },
                Ok(None) => {
                    self.dead = Some("exited".into());
                    return Err(unavailable(&format!("exited during {}", req.name())));
                }
                Err(Errno::ETIMEDOUT) => {
                    return Err(ShimError::new(
                        Kind::DeadlineExceeded,
                        format!("zygote: no reply to {} within {timeout:?}", req.name()),
                    ))
                }
                Err(e) => {
                    self.dead = Some(format!("receiving: {e}"));
                    return Err(unavailable(&format!(
                        "receiving the {} reply: {e}",
                        req.name()
                    )));
                }
            }
        }
    }
}

/// The zygote's whole life: set up, then serve requests until the server closes the channel.
fn child_main(chan: Channel, log: &LogSetup) -> i32 {
    if let Err(e) = setup_child() {
        // Nothing to log to yet; the server sees the channel close.
        let _ = e;
        return 1;
    }
    // The server's logger is not set up yet (it is configured after the fork), so the
    // zygote opens the shim's log fifo itself. Without one (a manual run) it logs nowhere.
    let _ = containerd_shim::logger::init(log.debug, "info", &log.namespace, &log.id);
    serve(&chan, handle);
    0
}

/// Makes the forked child a proper zygote.
fn setup_child() -> std::result::Result<(), Errno> {
    use nix::sys::prctl;
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

    // Die with the server. The zygote was forked by the server's main thread, which lives
    // as long as the server does.
    let parent = nix::unistd::getppid();
    prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent {
        return Err(Errno::ESRCH);
    }
    // Not a subreaper: container inits orphaned by the intermediate must go to the server.
    prctl::set_child_subreaper(false)?;
    // The server disables transparent huge pages for itself; containers forked from here
    // must not inherit that.
    prctl::set_thp_disable(false)?;
    // The server's signal handlers write to its own self-pipe: restore plain behaviour.
    // SIGPIPE stays ignored as in any Rust program (writes report EPIPE instead); runtime-core
    // resets every signal for the container's process.
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGCHLD,
        Signal::SIGHUP,
    ] {
        // SAFETY: installing SIG_DFL runs none of our code in signal context.
        unsafe { sigaction(sig, &dfl) }?;
    }
    // SAFETY: as above, SIG_IGN.
    unsafe { sigaction(Signal::SIGPIPE, &ign) }?;
    // The server's stdout is the pipe `start` reads the address from until end-of-file:
    // the zygote must not hold it open.
    let null = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    nix::unistd::dup2_stderr(&null)?;
    Ok(())
}

/// Answers requests one by one until the channel closes.
fn serve(chan: &Channel, mut handler: impl FnMut(Request, Vec<OwnedFd>) -> Reply) {
    loop {
        let (bytes, fds) = match chan.recv(None) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                log::error!("zygote: receiving a request: {e}");
                return;
            }
        };
        let (seq, reply) = match decode::<Request>(&bytes) {
            Some(env) => (env.seq, handler(env.body, fds)),
            None => (
                0,
                Reply::Failed(ShimError::invalid("zygote: undecodable request")),
            ),
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
        if let Err(e) = chan.send_json(seq, &reply, &[]) {
            log::error!("zygote: sending a reply: {e}");
            return;
        }
    }
}

/// The process's stdio, or its console socket with `terminal`.
type ProcessIo = (Option<runtime_core::process::Stdio>, Option<OwnedFd>);

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
    let stdio = runtime_core::process::Stdio {
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
    use runtime_core::container::{self, CreateOptions, ExecOptions};
    use runtime_core::state::Store;

    let result = match req {
        Request::Create {
            id,
            bundle,
            state_root,
            no_pivot,
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
                ..Default::default()
            };
            // The descriptors are dropped with `opts` when this returns: only the
            // container keeps them.
            container::create(&Store::new(state_root), &opts)
                .map(|c| Reply::Created { pid: c.state.pid })
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
            container::exec(&Store::new(state_root), &id, &opts)
                .map(|pid| Reply::Spawned { pid: pid.as_raw() })
        }
        Request::Start { id, state_root } => {
            container::start(&Store::new(state_root), &id).map(|()| Reply::Done)
        }
        Request::Delete {
            id,
            state_root,
            force,
        } => container::delete(&Store::new(state_root), &id, force).map(|()| Reply::Done),
    };
    let reply = result.unwrap_or_else(|e| Reply::Failed(ShimError::from(e)));
    // The zygote idles between requests: give back what the operation allocated.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    reply
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
    use std::io::{Read, Write};

    #[test]
    fn messages_and_descriptors_cross_the_channel() {
        let (a, b) = Channel::pair().unwrap();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        a.send(b"hello", &[w.as_fd()]).unwrap();
        drop(w);
        let (bytes, mut fds) = b.recv(Some(Duration::from_secs(5))).unwrap().unwrap();
        assert_eq!(bytes, b"hello");
        assert_eq!(fds.len(), 1);
        let mut f = std::fs::File::from(fds.pop().unwrap());
        f.write_all(b"through").unwrap();
        drop(f);
        let mut got = String::new();
        std::fs::File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "through");
    }

    #[test]
    fn recv_is_bounded_and_sees_a_closed_peer() {
        let (a, b) = Channel::pair().unwrap();
        let t = Instant::now();
        assert_eq!(
            b.recv(Some(Duration::from_millis(50))).unwrap_err(),
            Errno::ETIMEDOUT
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        drop(a);
        assert!(b.recv(Some(Duration::from_secs(5))).unwrap().is_none());
    }

    #[test]
    fn client_drops_stale_replies_and_times_out() {
        let (server_end, zygote_end) = Channel::pair().unwrap();
        let mut client = Client {
            chan: Some(server_end),
            seq: 0,
            dead: None,
        };
        let req = Request::Start {
            id: "c1".into(),
            state_root: "/nonexistent".into(),
        };
        // No answer: a bounded wait, DeadlineExceeded.
        let e = client
            .call(&req, &[], Duration::from_millis(50))
            .unwrap_err();
        assert_eq!(e.kind, Kind::DeadlineExceeded);
        // The zygote answers #1 late, then #2: the client must take #2 only.
        zygote_end.send_json(1, &Reply::Done, &[]).unwrap();
        zygote_end
            .send_json(2, &Reply::Created { pid: 42 }, &[])
            .unwrap();
        let r = client.call(&req, &[], Duration::from_secs(5)).unwrap();
        assert_eq!(r, Reply::Created { pid: 42 });
        // Both requests arrived, in order.
        for want in [1, 2] {
            let (bytes, _) = zygote_end
                .recv(Some(Duration::from_secs(5)))
                .unwrap()
                .unwrap();
            let env: Envelope<Request> = decode(&bytes).unwrap();
            assert_eq!(env.seq, want);
            assert_eq!(env.body, req);
        }
    }

    #[test]
    fn a_dead_zygote_is_an_error_not_a_hang() {
        let (server_end, zygote_end) = Channel::pair().unwrap();
        let mut client = Client {
            chan: Some(server_end),
            seq: 0,
            dead: None,
        };
        drop(zygote_end);
        let req = Request::Delete {
            id: "c1".into(),
            state_root: "/x".into(),
            force: true,
        };
        let t = Instant::now();
        let e = client.call(&req, &[], Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
        assert!(t.elapsed() < Duration::from_secs(5));
        // And later calls fail at once.
        let e = client.call(&req, &[], Duration::from_secs(30)).unwrap_err();
        assert_eq!(e.kind, Kind::Unavailable);
    }

    #[test]
    fn serve_answers_each_request_with_its_seq() {
        let (server_end, zygote_end) = Channel::pair().unwrap();
        let t = std::thread::spawn(move || {
            serve(&zygote_end, |req, fds| match req {
                Request::Create { id, .. } if fds.len() == 3 => Reply::Created {
                    pid: id.len() as i32,
                },
                Request::Create { .. } => Reply::Failed(ShimError::invalid("fds")),
                _ => Reply::Failed(ShimError::not_found("x".repeat(MAX_ERROR_MESSAGE * 2))),
            })
        });
        let mut client = Client {
            chan: Some(server_end),
            seq: 0,
            dead: None,
        };
        let null = std::fs::File::open("/dev/null").unwrap();
        let create = Request::Create {
            id: "abc".into(),
            bundle: "/b".into(),
            state_root: "/s".into(),
            no_pivot: false,
            terminal: false,
        };
        let fds = [null.as_fd(), null.as_fd(), null.as_fd()];
        let r = client.call(&create, &fds, Duration::from_secs(5)).unwrap();
        assert_eq!(r, Reply::Created { pid: 3 });
        let r = client.call(&create, &[], Duration::from_secs(5)).unwrap();
        assert!(matches!(r, Reply::Failed(e) if e.kind == Kind::InvalidArgument));
        let start = Request::Start {
            id: "abc".into(),
            state_root: "/s".into(),
        };
        let r = client.call(&start, &[], Duration::from_secs(5)).unwrap();
        match r {
            Reply::Failed(e) => {
                assert_eq!(e.kind, Kind::NotFound);
                assert_eq!(e.message.len(), MAX_ERROR_MESSAGE);
            }
            other => panic!("{other:?}"),
        }
        client.chan = None;
        t.join().unwrap();
    }
}
