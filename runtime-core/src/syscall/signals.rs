//! Signal state that a container's process must not inherit from the runtime.

use nix::sys::signal::{
    sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};

use super::{Result, SyscallError};

/// Unblocks every signal and restores every disposition to its default.
///
/// Rust programs ignore SIGPIPE from their first instruction, and ignored signals stay
/// ignored across execve: without this, the container's programs would never die of
/// SIGPIPE. The runtime's caller may also have blocked signals.
pub fn reset() -> Result<()> {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no code of ours in signal context, so no
        // async-signal-safety requirement arises; the old action is discarded.
        unsafe { sigaction(sig, &dfl) }.map_err(|errno| SyscallError {
            call: "sigaction",
            target: sig.to_string(),
            errno,
        })?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).map_err(|errno| {
        SyscallError {
            call: "sigprocmask",
            target: "unblock all".into(),
            errno,
        }
    })
}

/// kill(2) with a raw signal number, so that realtime signals can be sent too.
pub fn kill(pid: nix::unistd::Pid, signal: i32) -> Result<()> {
    // SAFETY: kill takes integers only.
    let rc = unsafe { libc::kill(pid.as_raw(), signal) };
    nix::errno::Errno::result(rc)
        .map(drop)
        .map_err(|errno| SyscallError {
            call: "kill",
            target: format!("pid {pid} signal {signal}"),
            errno,
        })
}
