//! The three generations of a container's processes.
//!
//! main (the caller) forks the intermediate process, which enters the user, pid and time
//! namespaces and forks init, which enters the rest, builds the rootfs, applies limits and
//! security, reports ready, waits for `start` and execs the user's program. Two forks are
//! needed because a pid namespace, created or joined, only applies to children.

mod init;
mod intermediate;

pub use init::{START_FAILED, START_OK};

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::capabilities::{CapabilityError, CapabilitySets};
use crate::cgroups::{CgroupError, CgroupManager};
use crate::channel::{self, ChannelError, Message};
use crate::namespaces::{NamespaceError, Namespaces};
use crate::syscall::{self, Forked, SyscallError};

/// How long the intermediate process may take to report; it does little.
const INTERMEDIATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long init may take to build the container, createContainer hooks included.
const INIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors creating a container's processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A message exchange with a child failed (the child's own error included).
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// A syscall in the main process failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// Namespaces could not be resolved.
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    /// Capabilities are invalid or not available.
    #[error(transparent)]
    Capability(#[from] CapabilityError),
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
    /// The container's state, for the hooks that init runs (its pid is filled in there).
    pub state: crate::state::State,
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
    let ns = Namespaces::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;
    let caps = CapabilitySets::from_spec(process.capabilities().as_ref())?;
    let resources = crate::cgroups::with_default_rules(
        linux.resources().as_ref(),
        linux.devices().as_deref().unwrap_or_default(),
    );

    // Created before the fork: init bind-mounts its directories into the container.
    setup.cgroup.create(resources.as_ref())?;

    let (to_inter, inter_end) = channel::pair("intermediate process", "runtime")?;
    let (to_init, init_end) = channel::pair("container init", "runtime")?;
    let inter = match syscall::fork()? {
        Forked::Child => {
            drop(to_inter);
            drop(to_init);
            let code = intermediate::run(setup, &ns, &caps, inter_end, init_end);
            syscall::exit_child(code)
        }
        Forked::Parent(pid) => pid,
    };
    drop(inter_end);
    drop(init_end);

    let mut init_pid = None;
    let result = (|| {
        if ns.creates(nix::sched::CloneFlags::CLONE_NEWUSER) {
            to_inter.expect(&Message::UserNamespaceCreated, INTERMEDIATE_TIMEOUT)?;
            write_id_map(inter, "uid_map", linux.uid_mappings().as_deref())?;
            write_id_map(inter, "gid_map", linux.gid_mappings().as_deref())?;
        }
        to_inter.send(&Message::Proceed)?;
        let pid = match to_inter.recv("init pid", INTERMEDIATE_TIMEOUT)? {
            Message::InitPid(p) => Pid::from_raw(p),
            got => {
                return Err(ChannelError::Unexpected {
                    peer: "intermediate process",
                    got,
                    waiting_for: "InitPid".into(),
                }
                .into())
            }
        };
        init_pid = Some(pid);
        if !init_joins_cgroup(setup, &ns) {
            // init builds its namespaces and mounts meanwhile, and waits for CgroupJoined
            // before anything that needs the cgroup (its namespace, hooks, the program).
            setup.cgroup.add_task(pid)?;
            to_init.send(&Message::CgroupJoined)?;
        }
        match to_init.recv("Ready", INIT_TIMEOUT)? {
            Message::RunRuntimeHooks => {
                if let Err(e) = runtime_hooks(pid) {
                    let _ = to_init.send(&Message::Error(e.clone()));
                    return Err(ProcessError::Hook(e));
                }
                to_init.send(&Message::RuntimeHooksDone)?;
                to_init.expect(&Message::Ready, INIT_TIMEOUT)?;
            }
            Message::Ready => {}
            got => {
                return Err(ChannelError::Unexpected {
                    peer: "container init",
                    got,
                    waiting_for: "Ready".into(),
                }
                .into())
            }
        }
        Ok(pid)
    })();

    if result.is_err() {
        for pid in [Some(inter), init_pid].into_iter().flatten() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
    // The intermediate exits as soon as it has reported init's pid; reap it in all cases.
    let _ = waitpid(inter, None);
    result
}

/// Whether init moves itself into the cgroup (cheap on v1) rather than being moved by main.
/// In a user namespace it lacks the host privileges to write to cgroupfs.
fn init_joins_cgroup(setup: &ContainerSetup<'_>, ns: &Namespaces) -> bool {
    setup.cgroup.can_join_self() && !ns.has(nix::sched::CloneFlags::CLONE_NEWUSER)
}

/// Writes a user namespace id map of the intermediate process (uid_map or gid_map).
fn write_id_map(pid: Pid, file: &str, maps: Option<&[LinuxIdMapping]>) -> Result<(), ProcessError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    let text = id_map_text(maps.unwrap_or_default());
    std::fs::write(&path, text).map_err(|source| ProcessError::IdMap { path, source })
}

/// The text of an id map file: one `container host size` line per mapping.
fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_map_lines() {
        let maps: Vec<LinuxIdMapping> = serde_json::from_str(
            r#"[{"containerID":0,"hostID":100000,"size":65536},{"containerID":65536,"hostID":1000,"size":1}]"#,
        )
        .unwrap();
        assert_eq!(id_map_text(&maps), "0 100000 65536\n65536 1000 1\n");
    }
}
