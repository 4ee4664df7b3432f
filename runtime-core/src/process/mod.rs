//! The three generations of a container's processes.
//!
//! main (the caller) forks the intermediate process, which enters the user, pid and time
//! namespaces and forks init, which enters the rest, builds the rootfs, applies limits and
//! security, reports ready, waits for `start` and execs the user's program. An exec'd
//! process takes the same path, joining the namespaces of the container's init instead of
//! creating any, and execs at once. Two forks are needed because a pid namespace, created
//! or joined, only applies to children.

mod attrs;
mod exec;
mod failure;
mod init;
mod intermediate;
mod lookup;

pub use failure::{Failure, Step};
pub use init::{START_FAILED, START_OK};

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Process, Spec};

use crate::capabilities::{CapabilityError, CapabilitySets};
use crate::cgroups::{CgroupError, CgroupManager};
use crate::channel::{self, Channel, ChannelError, Message};
use crate::namespaces::{NamespaceError, Namespaces};
use crate::syscall::{self, Forked, SyscallError};

/// How long the intermediate process may take to report; it does little.
const INTERMEDIATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long init may take to build the container, createContainer hooks included.
const INIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors creating a container's processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A message exchange with a child failed.
    #[error(transparent)]
    Channel(ChannelError),
    /// A child reported that a step of its setup failed.
    #[error("{peer}: {failure}")]
    Failed {
        /// Which process.
        peer: &'static str,
        /// The step, errno and text it reported.
        failure: Failure,
    },
    /// A syscall in the main process failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// Namespaces could not be resolved.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// Capabilities are invalid or not available.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    /// An id-mapped mount could not be made.
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    /// The cgroup could not be set up.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Writing the user namespace's id maps failed.
    #[error("writing {path}: {source}")]
    IdMap {
        /// The map file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A prestart or createRuntime hook failed.
    #[error("{0}")]
    Hook(String),
    /// The spec has no process or no linux section.
    #[error("{0}")]
    Spec(String),
    /// The kernel's OOM killer killed init before it was ready: the memory limit leaves too
    /// little for the container's setup.
    #[error("container init was killed by the OOM killer{}", memory_limit_text(*.limit))]
    InitOomKilled {
        /// `linux.resources.memory.limit`, if set (-1: unlimited).
        limit: Option<i64>,
    },
}

impl From<ChannelError> for ProcessError {
    /// A child's own report becomes [`ProcessError::Failed`], so that callers can match it
    /// without knowing the channel.
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Remote { peer, failure } => ProcessError::Failed { peer, failure },
            e => ProcessError::Channel(e),
        }
    }
}

/// ` (memory limit N bytes)` when the spec sets one.
fn memory_limit_text(limit: Option<i64>) -> String {
    match limit {
        Some(n) if n >= 0 => format!(" (memory limit {n} bytes)"),
        _ => String::new(),
    }
}

/// File descriptors to give the container's process as stdin, stdout and stderr instead of
/// the caller's own (a shim passes pipes it copies to containerd's fifos).
#[derive(Debug, Default)]
pub struct Stdio {
    /// Becomes fd 0; `None` keeps the inherited one.
    pub stdin: Option<std::os::fd::OwnedFd>,
    /// Becomes fd 1; `None` keeps the inherited one.
    pub stdout: Option<std::os::fd::OwnedFd>,
    /// Becomes fd 2; `None` keeps the inherited one.
    pub stderr: Option<std::os::fd::OwnedFd>,
}

/// Everything the children need to build the container.
pub struct ContainerSetup<'a> {
    /// The validated spec.
    pub spec: &'a Spec,
    /// Absolute host path of the rootfs.
    pub rootfs: PathBuf,
    /// The fifo init blocks on until `start`.
    pub exec_fifo: PathBuf,
    /// The container's cgroup (created by main, which moves init into it).
    pub cgroup: &'a dyn CgroupManager,
    /// How many file descriptors after stdio to pass to the process.
    pub preserve_fds: u32,
    /// Enter the rootfs with MS_MOVE and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// The process's stdio, if not the caller's.
    pub stdio: Option<&'a Stdio>,
    /// A connected console socket: the process gets a terminal, its master goes there.
    pub console: Option<&'a std::os::fd::OwnedFd>,
    /// The container's state, for the hooks that init runs (its pid is filled in there).
    pub state: crate::state::State,
    /// The state lock the caller holds: the children close their copy at once, so that it
    /// dies with the caller (see [`crate::state::Entry::lock_fd`]).
    pub state_lock: Option<std::os::fd::RawFd>,
}

/// Runs the double fork; returns the init pid once init is ready and waits for start.
///
/// `runtime_hooks` runs prestart and createRuntime hooks in the main process, at the
/// point the spec defines (namespaces and mounts ready, before pivot_root), given init's pid.
/// On error every process that was started is killed, and the intermediate reaped.
pub fn spawn(
    setup: &ContainerSetup<'_>,
    runtime_hooks: &mut dyn FnMut(Pid) -> Result<(), String>,
) -> Result<Pid, ProcessError> {
    let linux = setup
        .spec
        .linux()
        .as_ref()
        .ok_or_else(|| ProcessError::Spec("linux: missing".into()))?;
    let process = setup
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| ProcessError::Spec("process: missing".into()))?;
    let mut ns = Namespaces::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;
    ns.time_offsets = crate::namespaces::time_offsets_text(setup.spec);
    let caps = CapabilitySets::from_spec(&syscall::LinuxSyscall, process.capabilities().as_ref())?;
    // Made here, in the host's user namespace (init could not), inherited by init.
    let bind_trees = crate::rootfs::prepare_bind_trees(&crate::syscall::LinuxSyscall, setup.spec)?;
    let resources = crate::cgroups::with_default_rules(
        linux.resources().as_ref(),
        linux.devices().as_deref().unwrap_or_default(),
    );
    // Created before the fork: init bind-mounts its directories into the container.
    setup.cgroup.create(Some(&resources))?;

    let maps = IdMaps {
        uid: linux.uid_mappings().as_deref().unwrap_or_default(),
        gid: linux.gid_mappings().as_deref().unwrap_or_default(),
    };
    let init = |ch, born| -> i32 { init::run(setup, &ns, &caps, &bind_trees, ch, born) };
    let mut children = double_fork(
        &ns,
        &maps,
        process.oom_score_adj(),
        setup.cgroup,
        setup.state_lock,
        "container init",
        &init,
    )?;
    let pid = children.child;
    let ready = (|| {
        match children.to_child.recv("Ready", INIT_TIMEOUT)? {
            Message::RunRuntimeHooks => {
                if let Err(e) = runtime_hooks(pid) {
                    let failure = Failure::new(Step::RuntimeHooks, &e);
                    let _ = children.to_child.send(&Message::Error(failure));
                    return Err(ProcessError::Hook(e));
                }
                children.to_child.send(&Message::RuntimeHooksDone)?;
                children.to_child.expect(&Message::Ready, INIT_TIMEOUT)?;
            }
            Message::Ready => {}
            got => return Err(unexpected("container init", got, "Ready")),
        }
        Ok(())
    })();
    if let Err(e) = ready {
        let limit = linux
            .resources()
            .as_ref()
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit());
        return Err(explain_death(e, setup.cgroup, limit));
    }
    children.disarm();
    Ok(pid)
}

/// An init that the OOM killer took (a memory limit too small for the setup) shows only as a
/// channel that closed: the cgroup's OOM kill count, read while the cgroup still exists,
/// tells why. Errors init reported itself, and every other error, are returned as they are.
fn explain_death(e: ProcessError, cgroup: &dyn CgroupManager, limit: Option<i64>) -> ProcessError {
    let died = matches!(
        e,
        ProcessError::Channel(
            ChannelError::PeerGone { .. } | ChannelError::Send { .. } | ChannelError::Recv { .. }
        )
    );
    if !died {
        return e;
    }
    match cgroup.stats() {
        Ok(stats) if stats.memory.events.is_some_and(|ev| ev.oom_kill > 0) => {
            ProcessError::InitOomKilled { limit }
        }
        Ok(_) => e,
        Err(se) => {
            log::debug!("reading the OOM count of a dead init's cgroup: {se}");
            e
        }
    }
}

/// What an exec'd process needs.
pub struct ExecSetup<'a> {
    /// The process to run.
    pub process: &'a Process,
    /// The container's init, whose namespaces the process joins.
    pub init_pid: Pid,
    /// The container's cgroup, which the process joins.
    pub cgroup: &'a dyn CgroupManager,
    /// How many file descriptors after stdio to pass to the process.
    pub preserve_fds: u32,
    /// The process's stdio, if not the caller's.
    pub stdio: Option<&'a Stdio>,
    /// A connected console socket: the process gets a terminal, its master goes there.
    pub console: Option<&'a std::os::fd::OwnedFd>,
    /// The container's seccomp filter, installed in the process too.
    pub seccomp: Option<&'a crate::seccomp::ContainerSeccomp>,
    /// The state lock the caller holds, closed in the children (as for create).
    pub state_lock: Option<std::os::fd::RawFd>,
}

/// Starts a new process in the namespaces and cgroup of a running container; returns its
/// pid once it has exec'd the program.
pub fn spawn_exec(setup: &ExecSetup<'_>) -> Result<Pid, ProcessError> {
    let ns = Namespaces::of_process(setup.init_pid)?;
    let caps = CapabilitySets::from_spec(
        &syscall::LinuxSyscall,
        setup.process.capabilities().as_ref(),
    )?;
    let maps = IdMaps { uid: &[], gid: &[] };
    let child = |ch, born| -> i32 { exec::run(setup, &ns, &caps, ch, born) };
    let mut children = double_fork(
        &ns,
        &maps,
        setup.process.oom_score_adj(),
        setup.cgroup,
        setup.state_lock,
        "exec process",
        &child,
    )?;
    children.to_child.expect(&Message::Ready, INIT_TIMEOUT)?;
    // Ready comes right before execve, whose success closes the channel (close-on-exec):
    // end-of-file means the program runs, an Error that execve failed.
    match children.to_child.recv("exec", INIT_TIMEOUT) {
        Err(ChannelError::PeerGone { .. }) => {}
        Err(e) => return Err(e.into()),
        Ok(got) => return Err(unexpected("exec process", got, "execve")),
    }
    children.disarm();
    Ok(children.child)
}

/// A container's user namespace id maps, written by main when it creates one.
struct IdMaps<'a> {
    uid: &'a [LinuxIdMapping],
    gid: &'a [LinuxIdMapping],
}

/// The processes of a double fork in progress: killed (and the intermediate reaped) when
/// dropped before [`Children::disarm`], so that a failure leaves no process behind.
struct Children {
    child: Pid,
    to_child: Channel,
    armed: bool,
}

impl Children {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        if self.armed {
            let _ = kill(self.child, Signal::SIGKILL);
        }
    }
}

fn unexpected(peer: &'static str, got: Message, waiting_for: &str) -> ProcessError {
    ChannelError::Unexpected {
        peer,
        got,
        waiting_for: waiting_for.into(),
    }
    .into()
}

/// The main side of the double fork, up to the child's pid: forks the intermediate process
/// (which sets `oom_score_adj` for the child, see [`intermediate::run`]), writes id maps,
/// and moves the child into the cgroup unless it does so itself.
fn double_fork(
    ns: &Namespaces,
    maps: &IdMaps<'_>,
    oom_score_adj: Option<i32>,
    cgroup: &dyn CgroupManager,
    state_lock: Option<std::os::fd::RawFd>,
    child_name: &'static str,
    child: &dyn Fn(Channel, bool) -> i32,
) -> Result<Children, ProcessError> {
    let joins_itself = joins_cgroup_itself(cgroup, ns);
    // The intermediate creates the child in its cgroup v2 directory if there is one: no
    // move (see CgroupManager::birth_dir). Unopenable, the child joins it itself.
    let birth = joins_itself
        .then(|| cgroup.birth_dir())
        .flatten()
        .and_then(|dir| {
            nix::fcntl::open(
                &dir,
                nix::fcntl::OFlag::O_RDONLY
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| log::debug!("{}: {e}: the child joins it itself", dir.display()))
            .ok()
        });
    let (to_inter, inter_end) = channel::pair("intermediate process", "runtime")?;
    let (to_child, child_end) = channel::pair(child_name, "runtime")?;
    let inter = match syscall::fork()? {
        Forked::Child => {
            // First of all, before init inherits it from here.
            if let Some(fd) = state_lock {
                syscall::close_in_child(fd);
            }
            drop(to_inter);
            drop(to_child);
            syscall::exit_child(intermediate::run(
                ns,
                oom_score_adj,
                birth.as_ref().map(std::os::fd::AsFd::as_fd),
                inter_end,
                child_end,
                child,
            ))
        }
        Forked::Parent(pid) => pid,
    };
    drop(inter_end);
    drop(child_end);
    drop(birth);
    let result = (|| {
        if ns.creates(nix::sched::CloneFlags::CLONE_NEWUSER) {
            to_inter.expect(&Message::UserNamespaceCreated, INTERMEDIATE_TIMEOUT)?;
            write_id_map(inter, "uid_map", maps.uid)?;
            write_id_map(inter, "gid_map", maps.gid)?;
        }
        to_inter.send(&Message::Proceed)?;
        match to_inter.recv("child pid", INTERMEDIATE_TIMEOUT)? {
            Message::InitPid(p) => Ok(Pid::from_raw(p)),
            got => Err(unexpected("intermediate process", got, "InitPid")),
        }
    })();
    if result.is_err() {
        let _ = kill(inter, Signal::SIGKILL);
    }
    // The intermediate exits as soon as it has reported the child's pid; reap it always.
    let _ = waitpid(inter, None);
    let children = Children {
        child: result?,
        to_child,
        armed: true,
    };
    if !joins_itself {
        // The child builds its namespaces (and init its mounts) meanwhile, and waits for
        // CgroupJoined before anything that needs the cgroup.
        cgroup.add_task(children.child)?;
        if let Err(e) = children.to_child.send(&Message::CgroupJoined) {
            // The child failed before it listened: its report is what went wrong.
            return Err(
                match children.to_child.recv("CgroupJoined", INTERMEDIATE_TIMEOUT) {
                    Err(reported @ ChannelError::Remote { .. }) => reported.into(),
                    _ => e.into(),
                },
            );
        }
    }
    Ok(children)
}

/// Whether the container's process moves itself into the cgroup (cheap on v1) rather than
/// being moved by main. In a user namespace it lacks the host privileges for cgroupfs.
fn joins_cgroup_itself(cgroup: &dyn CgroupManager, ns: &Namespaces) -> bool {
    cgroup.can_join_self() && !ns.has(nix::sched::CloneFlags::CLONE_NEWUSER)
}

/// Writes a user namespace id map of the intermediate process (uid_map or gid_map), as runc
/// does: directly first (root may write any map, an unprivileged caller only its own id),
/// and if the kernel refuses (EPERM), through the setuid newuidmap/newgidmap of the uidmap
/// package, which allow the ranges /etc/subuid and /etc/subgid give the caller.
fn write_id_map(pid: Pid, file: &str, maps: &[LinuxIdMapping]) -> Result<(), ProcessError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    let err = |source| ProcessError::IdMap {
        path: path.clone(),
        source,
    };
    if file == "gid_map" && maps_only_own_gid(maps) {
        // An unprivileged writer may map its own gid only after setgroups is denied in the
        // namespace (user_namespaces(7)); runc does it for exactly this mapping.
        let setgroups = PathBuf::from(format!("/proc/{pid}/setgroups"));
        std::fs::write(&setgroups, "deny").map_err(|source| ProcessError::IdMap {
            path: setgroups,
            source,
        })?;
    }
    match std::fs::write(&path, crate::namespaces::id_map_text(maps)) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && !maps.is_empty() => {
            let tool = if file == "uid_map" {
                "newuidmap"
            } else {
                "newgidmap"
            };
            log::debug!("writing {}: {e}; trying {tool}", path.display());
            run_mapping_tool(tool, pid, maps).map_err(err)
        }
        r => r.map_err(err),
    }
}

/// Whether setgroups(2) is denied in the calling process's user namespace, as
/// [`write_id_map`] makes it for an unprivileged caller mapping its own gid.
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}

/// Whether an unprivileged caller maps only its own gid: one id, the caller's egid.
fn maps_only_own_gid(maps: &[LinuxIdMapping]) -> bool {
    let egid = nix::unistd::getegid();
    !nix::unistd::geteuid().is_root()
        && matches!(maps, [m] if m.size() == 1 && m.host_id() == egid.as_raw())
}

/// Runs newuidmap or newgidmap (found on PATH, as runc looks it up) for `pid` with the
/// mappings as its `container-id host-id count` triples, with an empty environment as runc.
fn run_mapping_tool(tool: &str, pid: Pid, maps: &[LinuxIdMapping]) -> Result<(), std::io::Error> {
    let mut cmd = std::process::Command::new(tool);
    cmd.env_clear().arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("the kernel refused the mapping and {tool} could not run (Debian package uidmap): {e}"),
        )
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "the kernel refused the mapping and {tool} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
