//! The intermediate process: enters the user, pid and time namespaces, forks init, exits.

use nix::sched::CloneFlags;
use nix::unistd::{setresgid, setresuid, Gid, Uid};

use super::{init, ContainerSetup, INTERMEDIATE_TIMEOUT};
use crate::capabilities::CapabilitySets;
use crate::channel::{Channel, Message};
use crate::namespaces::{flag, Namespaces};
use crate::syscall::{self, Forked, LinuxSyscall};

/// Runs in the intermediate process; returns its exit code.
pub(super) fn run(
    setup: &ContainerSetup<'_>,
    ns: &Namespaces,
    caps: &CapabilitySets,
    to_main: Channel,
    init_end: Channel,
) -> i32 {
    match fork_init(setup, ns, caps, &to_main, init_end) {
        Ok(()) => 0,
        Err(e) => {
            let _ = to_main.send(&Message::Error(e));
            1
        }
    }
}

fn fork_init(
    setup: &ContainerSetup<'_>,
    ns: &Namespaces,
    caps: &CapabilitySets,
    to_main: &Channel,
    init_end: Channel,
) -> Result<(), String> {
    let sys = LinuxSyscall;
    let user = CloneFlags::CLONE_NEWUSER;
    ns.enter(&sys, user).map_err(|e| e.to_string())?;
    if ns.creates(user) {
        to_main
            .send(&Message::UserNamespaceCreated)
            .map_err(|e| e.to_string())?;
    }
    // main answers once the id maps are written: until then the namespace has no root.
    to_main
        .expect(&Message::Proceed, INTERMEDIATE_TIMEOUT)
        .map_err(|e| e.to_string())?;
    if ns.has(user) {
        // Become the namespace's root, so that init holds its capabilities with uid 0.
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .map_err(|e| format!("setresgid(0) in the user namespace: {e}"))?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .map_err(|e| format!("setresuid(0) in the user namespace: {e}"))?;
    }
    let pid_time = CloneFlags::CLONE_NEWPID | flag(oci_spec::runtime::LinuxNamespaceType::Time);
    ns.enter(&sys, pid_time).map_err(|e| e.to_string())?;
    match syscall::fork().map_err(|e| e.to_string())? {
        Forked::Child => init::run(setup, ns, caps, init_end),
        Forked::Parent(pid) => to_main
            .send(&Message::InitPid(pid.as_raw()))
            .map_err(|e| e.to_string()),
    }
}
