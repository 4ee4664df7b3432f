//! A new process in a running container: joins its namespaces and cgroup, then execs.

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;

use super::failure::{At, Failure, Step};
use super::init::{detach, open_terminal, Program};
use super::{ExecSetup, INIT_TIMEOUT};
use crate::capabilities::CapabilitySets;
use crate::channel::{Channel, Message};
use crate::namespaces::{intermediate_flags, Namespaces};
use crate::syscall::{LinuxSyscall, Syscall};

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
) -> Result<std::convert::Infallible, Failure> {
    let sys = LinuxSyscall;
    // As for init: nothing of this process is readable through /proc by the container
    // until it runs the program.
    detach(&sys, setup.stdio)?;
    // Compiled, and its notify listener connected, while host paths still resolve.
    let seccomp = match setup.seccomp {
        Some(s) => crate::seccomp::Prepared::new(Some(&s.config), s.state.clone())
            .map_err(|e| Failure::new(Step::SeccompPrepare, e))?,
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
        .map_err(|e| {
            let detail = format!("open the container's root {path}: {e}");
            Failure::with_errno(Step::Pivot, e, detail)
        })?;
        Some(fd)
    };
    // linux.personality of the container, through its init (read while /proc is the host's).
    let personality = super::attrs::personality_of_init(setup.init_pid).at(Step::Personality)?;
    // The cgroup first: once in the container's mount namespace, the host's cgroupfs
    // paths no longer resolve.
    if super::joins_cgroup_itself(setup.cgroup, ns) {
        setup.cgroup.join_self(born).at(Step::CgroupJoin)?;
    } else {
        to_main
            .expect(&Message::CgroupJoined, INIT_TIMEOUT)
            .at(Step::CgroupJoin)?;
    }
    ns.enter(&sys, !(CloneFlags::CLONE_NEWUSER | intermediate_flags()))
        .at(Step::Namespaces)?;
    if let Some(root) = root {
        let err = |f: Failure| f.context("entering the container's root");
        sys.fchdir(root.as_fd()).at(Step::Pivot).map_err(err)?;
        sys.chroot(Path::new(".")).at(Step::Pivot).map_err(err)?;
        sys.chdir(Path::new("/")).at(Step::Pivot).map_err(err)?;
    }
    if let Some(console) = setup.console {
        let slave = open_terminal(console, None, setup.process)?;
        crate::tty::make_controlling(&slave).at(Step::Terminal)?;
    }
    let program = Program::prepare(
        &sys,
        setup.process,
        caps,
        setup.preserve_fds,
        seccomp,
        personality,
    )?;
    to_main.send(&Message::Ready).at(Step::Sync)?;
    Err(program.exec())
}
