//! Signal dispositions and masks, and sending signals: the state a container's process
//! must not inherit from the runtime, and what a long-lived runtime process sets for itself.

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
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        set_action(sig, Action::Default)?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).map_err(|errno| {
        SyscallError {
            call: "sigprocmask",
            target: "unblock all".into(),
            errno,
        }
    })
}

/// What the process does with a signal, as [`set_action`] sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIG_DFL.
    Default,
    /// SIG_IGN: stays ignored across execve(2).
    Ignore,
    /// Caught by a handler that does nothing (SA_RESTART): the process goes on as if
    /// ignored, but a program it execs gets the default back, as with an ignored one it
    /// would not.
    Discard,
}

/// The handler of [`Action::Discard`].
extern "C" fn discard(_: libc::c_int) {}

/// sigaction(2): `sig` gets `action`, with no signal blocked during a handler; the old
/// action is discarded.
pub fn set_action(sig: Signal, action: Action) -> Result<()> {
    let (handler, flags) = match action {
        Action::Default => (SigHandler::SigDfl, SaFlags::empty()),
        Action::Ignore => (SigHandler::SigIgn, SaFlags::empty()),
        Action::Discard => (SigHandler::Handler(discard), SaFlags::SA_RESTART),
    };
    let act = SigAction::new(handler, flags, SigSet::empty());
    // SAFETY: SIG_DFL and SIG_IGN run no code of ours in signal context, and the one
    // handler that can be installed does nothing, which is async-signal-safe; the old
    // action, whose handler pointer could come from anywhere, is discarded unread.
    unsafe { sigaction(sig, &act) }
        .map(drop)
        .map_err(|errno| SyscallError {
            call: "sigaction",
            target: sig.to_string(),
            errno,
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
