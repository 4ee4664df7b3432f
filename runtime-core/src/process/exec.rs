//! A new process in a running container: joins its namespaces and cgroup, then execs.

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::init::{open_terminal, set_stdio, Program};
use super::{ExecSetup, INIT_TIMEOUT};
use crate::capabilities::CapabilitySets;
use crate::channel::{Channel, Message};
use crate::namespaces::{intermediate_flags, Namespaces};
use crate::syscall::{self, LinuxSyscall, Syscall, SyscallError};

/// Runs in the forked process; returns only with an exit code after failing. `born`: as
/// for init (`init::run`).
pub(super) fn run(
    setup: &ExecSetup<'_>,
    ns: &Namespaces,
    caps: &CapabilitySets,
    to_main: Channel,
    born: bool,
) -> i32 {
    let Err(e) = try_exec(setup, ns, caps, &to_main, born);
    let _ = to_main.send(&Message::Error(e));
    1
}

fn try_exec(
    setup: &ExecSetup<'_>,
    ns: &Namespaces,
    caps: &CapabilitySets,
    to_main: &Channel,
    born: bool,
) -> Result<std::convert::Infallible, String> {
    let sys = LinuxSyscall;
    // As for init: nothing of this process is readable through /proc by the container
    // until it runs the program.
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("prctl(PR_SET_DUMPABLE): {e}"))?;
    syscall::signals::reset().map_err(|e| e.to_string())?;
    crate::tty::new_session().map_err(|e| e.to_string())?;
    if let Some(stdio) = setup.stdio {
        set_stdio(stdio)?;
    }
    // Compiled, and its notify listener connected, while host paths still resolve.
    let seccomp = match setup.seccomp {
        Some(s) => crate::seccomp::Prepared::new(Some(&s.config), s.state.clone())?,
        None => None,
    };
    // A container without a mount namespace of its own has init chrooted into its rootfs
    // (runc 1.1 and 1.3 refuse to exec there: "ns paths are empty"): the process must
    // enter that root too, or it would run in the host's. Opened while /proc is the host's.
    let root = if ns.has(CloneFlags::CLONE_NEWNS) {
        None
    } else {
        let path = format!("/proc/{}/root", setup.init_pid);
        let fd = nix::fcntl::open(
            path.as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("open the container's root {path}: {e}"))?;
        Some(fd)
    };
    // linux.personality of the container, through its init (read while /proc is the host's).
    let personality =
        super::attrs::personality_of_init(setup.init_pid).map_err(|e| e.to_string())?;
    // The cgroup first: once in the container's mount namespace, the host's cgroupfs
    // paths no longer resolve.
    if super::joins_cgroup_itself(setup.cgroup, ns) {
        setup.cgroup.join_self(born).map_err(|e| e.to_string())?;
    } else {
        to_main
            .expect(&Message::CgroupJoined, INIT_TIMEOUT)
            .map_err(|e| e.to_string())?;
    }
    ns.enter(&sys, !(CloneFlags::CLONE_NEWUSER | intermediate_flags()))
        .map_err(|e| e.to_string())?;
    if let Some(root) = root {
        let err = |e: SyscallError| format!("entering the container's root: {e}");
        sys.fchdir(root.as_fd()).map_err(err)?;
        sys.chroot(Path::new(".")).map_err(err)?;
        sys.chdir(Path::new("/")).map_err(err)?;
    }
    if let Some(console) = setup.console {
        let slave = open_terminal(console, None, setup.process)?;
        crate::tty::make_controlling(&slave).map_err(|e| e.to_string())?;
    }
    let program = Program::prepare(
        setup.process,
        caps,
        setup.preserve_fds,
        seccomp,
        personality,
    )?;
    to_main.send(&Message::Ready).map_err(|e| e.to_string())?;
    Err(program.exec())
}
