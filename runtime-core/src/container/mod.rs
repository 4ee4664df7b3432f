//! The OCI operations on a container: create, start, state, kill, delete, list.

mod exec;
pub mod resources;

pub use exec::{exec, ExecOptions};

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::cgroups::{self, CgroupError};
use crate::hooks::{self, HookError};
use crate::process::{self, ContainerSetup, ProcessError};
use crate::rootfs::{HostBinding, RootfsError};
use crate::spec::{self, SpecError};
use crate::state::{self, Entry, State, StateError, Status, Store};
use crate::syscall::{self, SyscallError};

/// How long `start` waits for init to take the start signal.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `delete` waits for killed processes to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// In a container's state directory: the rootfs bind of a container without a mount
/// namespace of its own ([`HostBinding`]), which delete detaches.
const HOST_BINDING: &str = "host-binding.json";

/// Errors of container operations.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The bundle or its config.json is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Stored state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Creating the processes failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// cgroup management failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// A syscall failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// The mounts of a container without a mount namespace could not be undone.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// The operation is not allowed in the container's current status.
    #[error("container {id} is {status}: {what}")]
    WrongStatus {
        /// The container.
        id: String,
        /// Its status.
        status: Status,
        /// What was refused.
        what: &'static str,
    },
    /// Something the request asks for is not supported.
    #[error("{0}")]
    Unsupported(String),
    /// A file the operation writes (pid file, fifo) failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The pid file could not be written.
    #[error("pid file {}: {source}", .path.display())]
    PidFile {
        /// The pid file asked for.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The init process did not take the start signal.
    #[error("container {id}: {why}")]
    Start {
        /// The container.
        id: String,
        /// What happened.
        why: String,
    },
}

/// What `create` needs besides the store.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Where to write the init pid.
    pub pid_file: Option<PathBuf>,
    /// Connected console socket to send a terminal's master to (see [`crate::tty::connect`]).
    pub console: Option<OwnedFd>,
    /// File descriptors after stdio to pass to the process.
    pub preserve_fds: u32,
    /// Enter the rootfs without pivot_root.
    pub no_pivot: bool,
    /// The process's stdio, if not the caller's.
    pub stdio: Option<process::Stdio>,
    /// The cgroup driver.
    pub cgroup_driver: cgroups::Driver,
}

/// A container as `state` and `list` show it.
#[derive(Debug, Clone)]
pub struct Container {
    /// Stored state.
    pub state: State,
    /// Live status.
    pub status: Status,
}

/// Creates the container: processes built, init waiting for `start`.
pub fn create(store: &Store, opts: &CreateOptions) -> Result<Container, ContainerError> {
    state::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(|source| SpecError::Bundle {
        path: opts.bundle.clone(),
        source,
    })?;
    let mut spec = spec::load(&bundle)?;
    spec::bind_sources_in_bundle(&mut spec, &bundle);
    let rootfs = spec::rootfs_path(&bundle, &spec)?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    check_console(terminal, opts.console.is_some())?;
    let linux = spec.linux().as_ref();
    let cgroup_path = cgroups::cgroup_path(
        linux.and_then(|l| l.cgroups_path().as_deref()),
        &opts.id,
        opts.cgroup_driver,
    );
    let cgroup = cgroups::new_manager(&cgroup_path, opts.cgroup_driver)?;

    let entry = store.create(&opts.id)?;
    let mut st = State::creating(&opts.id, &bundle, &spec, cgroup_path);
    let result = (|| {
        // Before anything runs: a create killed from here on leaves a state that names
        // the cgroup, through which `delete` finds and kills whatever it had started.
        entry.save(&st)?;
        nix::unistd::mkfifo(&entry.fifo(), Mode::from_bits_truncate(0o622)).map_err(|e| {
            ContainerError::Io {
                path: entry.fifo(),
                source: e.into(),
            }
        })?;
        // 0622 whatever the umask (which would leave 0600), as runc makes it: init reopens
        // the fifo for writing after it became the process's user, which without
        // CAP_DAC_OVERRIDE (a non-root user with capabilities dropped) needs the write bit
        // for others. The state directory (0711) keeps it out of listings.
        std::fs::set_permissions(
            entry.fifo(),
            std::os::unix::fs::PermissionsExt::from_mode(0o622),
        )
        .map_err(|source| ContainerError::Io {
            path: entry.fifo(),
            source,
        })?;
        // In a user namespace init is the namespace's root, a host uid that must open it.
        let host_id = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
            maps.and_then(|m| m.iter().find(|m| m.container_id() == 0))
                .map(|m| m.host_id())
        };
        let (uid, gid) = (
            host_id(linux.and_then(|l| l.uid_mappings().as_ref())),
            host_id(linux.and_then(|l| l.gid_mappings().as_ref())),
        );
        if uid.is_some() || gid.is_some() {
            nix::unistd::chown(
                &entry.fifo(),
                uid.map(nix::unistd::Uid::from_raw),
                gid.map(nix::unistd::Gid::from_raw),
            )
            .map_err(|e| ContainerError::Io {
                path: entry.fifo(),
                source: e.into(),
            })?;
        }
        if !crate::namespaces::has_mount_ns(&spec) {
            // init's mounts will land in this mount namespace: noted before it makes them,
            // so that delete (or the cleanup of a failed create) detaches them.
            save_host_binding(
                &entry,
                &HostBinding::before(&syscall::LinuxSyscall, &rootfs)?,
            )?;
        }
        let setup = ContainerSetup {
            spec: &spec,
            rootfs,
            exec_fifo: entry.fifo(),
            cgroup: cgroup.as_ref(),
            preserve_fds: opts.preserve_fds,
            no_pivot: opts.no_pivot,
            stdio: opts.stdio.as_ref(),
            console: opts.console.as_ref(),
            state: st.clone(),
            state_lock: Some(entry.lock_fd().as_raw_fd()),
        };
        let hooks = spec.hooks().clone().unwrap_or_default();
        let mut runtime_hooks = |pid: Pid| {
            let mut s = st.clone();
            s.pid = pid.as_raw();
            let json = oci_state_bytes(&s, Status::Creating);
            for (phase, list) in [
                ("prestart", hooks.prestart()),
                ("createRuntime", hooks.create_runtime()),
            ] {
                hooks::run(list.as_deref().unwrap_or_default(), &json)
                    .map_err(|e| format!("{phase} hook: {e}"))?;
            }
            Ok(())
        };
        let pid = process::spawn(&setup, &mut runtime_hooks)?;
        st.pid = pid.as_raw();
        st.init_start_time = state::proc_stat(st.pid)
            .map(|s| s.start_time)
            .ok_or_else(|| ContainerError::Start {
                id: opts.id.clone(),
                why: "init exited during create".into(),
            })?;
        st.status = Status::Created;
        entry.save(&st)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(Container {
            state: st,
            status: Status::Created,
        }),
        Err(e) => {
            // Leave nothing behind: spawn kills what it started when it fails itself, but
            // a failure after it (a pid file that cannot be written) leaves init waiting.
            if let Err(ke) = kill_all(&st, cgroup.as_ref()) {
                log::warn!("cleaning up after failed create: {ke}");
            }
            if let Err(ce) = cgroup.remove() {
                log::warn!("cleaning up after failed create: {ce}");
            }
            if let Err(re) = release_host_binding(&entry) {
                log::warn!("cleaning up after failed create: {re}");
            }
            if let Err(se) = entry.remove() {
                log::warn!("cleaning up after failed create: {se}");
            }
            // runtime.md: a create that fails "continue[s] the lifecycle at step 12": the
            // container is destroyed, then the poststop hooks run (step 13), as runc runs
            // them after any failed create. A failure among them is only a warning.
            if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()) {
                hooks::run_best_effort(list, &oci_state_bytes(&st, Status::Stopped));
            }
            Err(e)
        }
    }
}

/// A terminal needs a console socket to send its master to, and a console socket is only
/// for a terminal: runc refuses both mismatches.
fn check_console(terminal: bool, console: bool) -> Result<(), ContainerError> {
    match (terminal, console) {
        (true, false) => Err(ContainerError::Unsupported(
            "process.terminal is true: a --console-socket is needed to receive the terminal".into(),
        )),
        (false, true) => Err(ContainerError::Unsupported(
            "--console-socket given but process.terminal is false".into(),
        )),
        _ => Ok(()),
    }
}

/// Writes the pid file atomically, as runc does, so readers never see it half-written.
pub(crate) fn write_pid_file(path: &Path, pid: Pid) -> Result<(), ContainerError> {
    let io = |source| ContainerError::PidFile {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.as_raw().to_string()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn oci_state_bytes(st: &State, status: Status) -> Vec<u8> {
    serde_json::to_vec(&st.oci_json(status)).unwrap_or_default()
}

/// Loads a container's state and its live status.
fn load(entry: &Entry) -> Result<Container, ContainerError> {
    let state = entry
        .load()?
        .ok_or_else(|| StateError::NotFound(entry.id().to_string()))?;
    let status = live_status(entry, &state);
    Ok(Container { state, status })
}

/// The status as the kernel sees it now: a dead init means stopped whatever was stored.
fn live_status(entry: &Entry, st: &State) -> Status {
    status_with_fifo(&entry.fifo(), st)
}

fn status_with_fifo(fifo: &Path, st: &State) -> Status {
    // Frozen before created, as runc decides: a created container can be paused.
    if !state::init_alive(st) {
        Status::Stopped
    } else if is_frozen(st) {
        Status::Paused
    } else if fifo.exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// Whether the container's cgroup is frozen (or freezing): the kernel's word, whoever froze
/// it; the stored status only when the freezer cannot be read.
fn is_frozen(st: &State) -> bool {
    match cgroups::manager(&st.cgroup_path).and_then(|m| m.freezer_state()) {
        Ok(s) => s != cgroups::FreezerState::Thawed,
        Err(e) => {
            log::debug!("container {}: freezer state: {e}", st.id);
            st.status == Status::Paused
        }
    }
}

/// The container's state, read without waiting for its lock: `creating` while a create
/// works on it, `stopped` if that create died (what is left goes with `delete`).
pub fn state(store: &Store, id: &str) -> Result<Container, ContainerError> {
    let peek = store.peek(id)?;
    let state = peek.state.unwrap_or_else(|| State::unfinished(id));
    let status = match state.status {
        Status::Creating if peek.busy => Status::Creating,
        Status::Creating => Status::Stopped,
        _ => status_with_fifo(&store.root().join(id).join(state::EXEC_FIFO), &state),
    };
    Ok(Container { state, status })
}

/// Every container in the store, half-created ones included (see [`state`]). Containers
/// whose state cannot be read are skipped.
pub fn list(store: &Store) -> Result<Vec<Container>, ContainerError> {
    let mut out = vec![];
    for id in store.ids()? {
        match state(store, &id) {
            Ok(c) => out.push(c),
            Err(e) => log::debug!("list: skipping {id}: {e}"),
        }
    }
    Ok(out)
}

/// Releases the init process of a created container to exec the user's program.
pub fn start(store: &Store, id: &str) -> Result<(), ContainerError> {
    let entry = store.open(id)?;
    let mut c = load(&entry)?;
    if c.status != Status::Created {
        return Err(ContainerError::WrongStatus {
            id: id.into(),
            status: c.status,
            what: "only a created container can be started",
        });
    }
    release_init(&entry, &c.state)?;
    c.state.status = Status::Running;
    entry.save(&c.state)?;
    if let Some(list) = c.state.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
        // The spec says a poststart failure only warrants a warning: the program runs.
        hooks::run_best_effort(list, &oci_state_bytes(&c.state, Status::Running));
    }
    Ok(())
}

/// Opens the exec fifo for reading, which unblocks init, and waits until init has run the
/// startContainer hooks and exec'd the program (end-of-file: the fifo is close-on-exec).
fn release_init(entry: &Entry, st: &State) -> Result<(), ContainerError> {
    let fifo_path = entry.fifo();
    let err = |why: String| ContainerError::Start {
        id: st.id.clone(),
        why,
    };
    // Non-blocking: if init is gone, a blocking open would wait for a writer forever.
    let fifo = nix::fcntl::open(
        &fifo_path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(format!("opening {}: {e}", fifo_path.display())))?;
    // Once opened, the path has served its purpose: the status reads `running` from now on,
    // and a second `start` finds no fifo.
    std::fs::remove_file(&fifo_path).map_err(|source| ContainerError::Io {
        path: fifo_path.clone(),
        source,
    })?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut got: Vec<u8> = vec![];
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        let ready = match poll(&mut fds, PollTimeout::from(100u16)) {
            Err(nix::errno::Errno::EINTR) => 0,
            r => r.map_err(|e| err(format!("poll exec fifo: {e}")))?,
        };
        if ready > 0 {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(&fifo, &mut buf) {
                // Until init opens its end, a non-blocking read finds no writer and returns 0:
                // only end-of-file after init wrote something is final.
                Ok(0) if !got.is_empty() => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(err(format!("reading exec fifo: {e}"))),
            }
        }
        if got.is_empty() && !state::init_alive(st) {
            return Err(err("init exited before start".into()));
        }
        if Instant::now() > deadline {
            return Err(err(format!(
                "init did not start the program in {START_TIMEOUT:?}"
            )));
        }
    }
    match got.split_first() {
        Some((b, _)) if [*b] == process::START_OK => Ok(()),
        Some((b, msg)) if [*b] == process::START_FAILED => {
            Err(err(String::from_utf8_lossy(msg).into_owned()))
        }
        _ => Err(err("init exited before start".into())),
    }
}

/// Sends `signal` to the init process, or with `all` to every process of the container.
pub fn kill(store: &Store, id: &str, signal: i32, all: bool) -> Result<(), ContainerError> {
    let entry = store.open(id)?;
    let c = load(&entry)?;
    if c.status == Status::Stopped && !all {
        return Err(ContainerError::WrongStatus {
            id: id.into(),
            status: c.status,
            what: "cannot signal a stopped container",
        });
    }
    if all {
        let cgroup = cgroups::manager(&c.state.cgroup_path)?;
        for pid in cgroup.pids()? {
            // A process may exit between listing and signalling: that is fine.
            match syscall::signals::kill(pid, signal) {
                Err(e) if e.errno == nix::errno::Errno::ESRCH => {}
                r => r?,
            }
        }
        thaw_for_sigkill(&c, signal, cgroup.as_ref());
        Ok(())
    } else {
        syscall::signals::kill(Pid::from_raw(c.state.pid), signal)?;
        if c.status == Status::Paused {
            thaw_for_sigkill(&c, signal, cgroups::manager(&c.state.cgroup_path)?.as_ref());
        }
        Ok(())
    }
}

/// As runc does: after SIGKILL to a paused container, thaw it, since on cgroup v1 a frozen
/// process cannot die. Other signals leave it paused; they are handled on resume.
fn thaw_for_sigkill(c: &Container, signal: i32, cgroup: &dyn cgroups::CgroupManager) {
    if c.status == Status::Paused && signal == nix::sys::signal::Signal::SIGKILL as i32 {
        if let Err(e) = cgroup.thaw() {
            log::warn!("container {}: thawing after SIGKILL: {e}", c.state.id);
        }
    }
}

/// Deletes a stopped or created container (any container with `force`), running poststop
/// hooks and removing its cgroup and state. With `force`, a container that does not exist
/// is not an error, as with runc: there is nothing left to remove.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<(), ContainerError> {
    let entry = match store.open(id) {
        Err(StateError::NotFound(_)) if force => return Ok(()),
        r => r?,
    };
    let Some(st) = entry.load()? else {
        // A create that died before writing state: nothing runs, only the directory is left.
        entry.remove()?;
        return Ok(());
    };
    let status = live_status(&entry, &st);
    match status {
        Status::Stopped | Status::Created => {}
        _ if force => {}
        _ => {
            return Err(ContainerError::WrongStatus {
                id: id.into(),
                status,
                what: "cannot delete a container that is not stopped without --force",
            })
        }
    }
    let cgroup = cgroups::manager(&st.cgroup_path)?;
    // Also when stopped if it has no pid namespace of its own (a shared or the host's), as
    // runc does: its processes can outlive its init; and when its create died before it
    // stored init's pid, leaving init (found through the cgroup) waiting for `start`.
    if status != Status::Stopped || st.shares_pid_ns || st.status == Status::Creating {
        kill_all(&st, cgroup.as_ref())?;
    }
    cgroup.remove()?;
    release_host_binding(&entry)?;
    if let Some(list) = st.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
        // A poststop failure is logged, and deletion goes on, as the spec says.
        hooks::run_best_effort(list, &oci_state_bytes(&st, Status::Stopped));
    }
    entry.remove()?;
    Ok(())
}

fn save_host_binding(entry: &Entry, binding: &HostBinding) -> Result<(), ContainerError> {
    let path = entry.dir().join(HOST_BINDING);
    let text = serde_json::to_vec(binding).map_err(|e| ContainerError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    std::fs::write(&path, text).map_err(|source| ContainerError::Io { path, source })
}

/// Detaches the rootfs bind (and every mount under it) that init of a container without a
/// mount namespace left in ours, if [`save_host_binding`] noted one and it is still there.
fn release_host_binding(entry: &Entry) -> Result<(), ContainerError> {
    let path = entry.dir().join(HOST_BINDING);
    let text = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        r => r.map_err(|source| ContainerError::Io {
            path: path.clone(),
            source,
        })?,
    };
    let binding: HostBinding = serde_json::from_slice(&text).map_err(|e| ContainerError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    if binding.release(&syscall::LinuxSyscall)? {
        log::debug!(
            "container {}: detached the rootfs bind {}",
            entry.id(),
            binding.rootfs.display()
        );
    }
    Ok(())
}

/// SIGKILLs init and every process in the cgroup, and waits until they are gone.
fn kill_all(st: &State, cgroup: &dyn cgroups::CgroupManager) -> Result<(), ContainerError> {
    let sigkill = nix::sys::signal::Signal::SIGKILL as i32;
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let mut pids = cgroup.pids().unwrap_or_default();
        if state::init_alive(st) {
            pids.push(Pid::from_raw(st.pid));
        }
        pids.retain(|p| state::proc_stat(p.as_raw()).is_some_and(|s| s.state != 'Z'));
        if pids.is_empty() {
            return Ok(());
        }
        for p in pids {
            let _ = syscall::signals::kill(p, sigkill);
        }
        // On cgroup v1 a frozen process cannot die: thaw a paused container once the
        // SIGKILLs are pending, so that none of its processes runs user code again.
        if matches!(
            cgroup.freezer_state(),
            Ok(cgroups::FreezerState::Frozen | cgroups::FreezerState::Freezing)
        ) {
            if let Err(e) = cgroup.thaw() {
                log::warn!("container {}: thawing to kill: {e}", st.id);
            }
        }
        if Instant::now() > deadline {
            return Err(ContainerError::Start {
                id: st.id.clone(),
                why: format!("processes still alive {KILL_TIMEOUT:?} after SIGKILL"),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
