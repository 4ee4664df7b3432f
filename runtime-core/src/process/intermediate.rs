//! The intermediate process: sets the process's oomScoreAdj, enters the user, pid and time
//! namespaces, forks the container's process (init, or an exec'd process), in its cgroup
//! when it can, reports its pid, exits.

use std::os::fd::BorrowedFd;

use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};

use super::failure::{At, Failure, Step};
use super::INTERMEDIATE_TIMEOUT;
use crate::channel::{Channel, Message};
use crate::namespaces::{flag, Namespaces};
use crate::syscall::{self, Forked, LinuxSyscall, Syscall};

/// Runs in the intermediate process; returns its exit code. `child` runs in the forked
/// process with its channel to main and whether it was born in `birth` (a cgroup v2
/// directory, see [`crate::cgroups::CgroupManager::birth_dir`]), and never returns there
/// (it execs or exits), with `oom_score_adj` (process.oomScoreAdj) inherited from here.
pub(super) fn run(
    ns: &Namespaces,
    oom_score_adj: Option<i32>,
    birth: Option<BorrowedFd<'_>>,
    to_main: Channel,
    child_end: Channel,
    child: &dyn Fn(Channel, bool) -> i32,
) -> i32 {
    // Before any namespace is entered, as runc does: once in a user namespace other than
    // the host's, /proc/self/oom_score_adj cannot be written, not even with its current
    // value (a joined pod's namespace: containerd 2.x's user-namespaced pods).
    let adjusted = match oom_score_adj {
        Some(adj) => super::init::write_oom_score_adj(adj),
        None => Ok(()),
    };
    match adjusted.and_then(|()| fork_child(ns, birth, &to_main, child_end, child)) {
        Ok(()) => 0,
        Err(e) => {
            let _ = to_main.send(&Message::Error(e));
            1
        }
    }
}

fn fork_child(
    ns: &Namespaces,
    birth: Option<BorrowedFd<'_>>,
    to_main: &Channel,
    child_end: Channel,
    child: &dyn Fn(Channel, bool) -> i32,
) -> Result<(), Failure> {
    let sys = LinuxSyscall;
    let user = CloneFlags::CLONE_NEWUSER;
    ns.enter(&sys, user).at(Step::Namespaces)?;
    if ns.creates(user) {
        to_main
            .send(&Message::UserNamespaceCreated)
            .at(Step::Sync)?;
    }
    // main answers once the id maps are written: until then the namespace has no root.
    to_main
        .expect(&Message::Proceed, INTERMEDIATE_TIMEOUT)
        .at(Step::Sync)?;
    if ns.has(user) {
        // Become the namespace's root, so that the child holds its capabilities with uid 0.
        let in_userns = |call: &str, e: syscall::SyscallError| {
            let detail = format!("{call}(0) in the user namespace: {}", e.errno);
            Failure::with_errno(Step::Namespaces, e.errno, detail)
        };
        (sys.setresgid(Gid::from_raw(0))).map_err(|e| in_userns("setresgid", e))?;
        (sys.setresuid(Uid::from_raw(0))).map_err(|e| in_userns("setresuid", e))?;
    }
    let time = flag(oci_spec::runtime::LinuxNamespaceType::Time);
    ns.enter(&sys, CloneFlags::CLONE_NEWPID | time)
        .at(Step::Namespaces)?;
    if ns.creates(time) && !ns.time_offsets.is_empty() {
        // The new time namespace is our children's: its offsets can be set until the first
        // of them enters it. As the namespace's root we hold CAP_SYS_TIME over it.
        std::fs::write("/proc/self/timens_offsets", &ns.time_offsets)
            .at(Step::TimeOffsets)
            .map_err(|f| f.context("linux.timeOffsets: writing /proc/self/timens_offsets"))?;
    }
    // Born in the cgroup if it can be; if not (a kernel before 5.7, clone3 filtered), the
    // child joins it itself.
    let born = birth.and_then(|fd| match syscall::fork_into_cgroup(fd) {
        Ok(forked) => Some(forked),
        Err(e) => {
            log::debug!("{e}: forking, the child joins its cgroup itself");
            None
        }
    });
    let (forked, in_cgroup) = match born {
        Some(forked) => (forked, true),
        None => (syscall::fork().at(Step::Fork)?, false),
    };
    match forked {
        Forked::Child => syscall::exit_child(child(child_end, in_cgroup)),
        Forked::Parent(pid) => to_main.send(&Message::InitPid(pid.as_raw())).at(Step::Sync),
    }
}
