//! The server's only reaper.
//!
//! The shim runs with the containerd-shim crate's reaper turned off (`no_reaper`): this
//! thread is the one place that waits for children, so no exit is ever taken by someone
//! who doesn't report it. Its children are the zygote and the containers' init processes,
//! reparented to the server (a child subreaper) when runtime-core's intermediate exits.
//! It blocks in waitpid(-1), so it needs no SIGCHLD handler; it only polls while the
//! server has no child at all (the zygote gone).

use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};

/// How long to wait before looking again when there is no child at all.
const NO_CHILD_PAUSE: Duration = Duration::from_millis(200);

/// The exit status containerd expects: the code, or 128 + the signal that killed it.
pub fn exit_code(status: WaitStatus) -> Option<(i32, u32)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code as u32)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as u32)),
        _ => None,
    }
}

/// Starts the reaper; `on_exit(pid, status)` runs on its thread for every exit.
pub fn start(on_exit: impl Fn(i32, u32) + Send + 'static) -> std::io::Result<()> {
    thread::Builder::new()
        .name("reaper".into())
        .stack_size(128 * 1024)
        .spawn(move || loop {
            match waitpid(None, None) {
                Ok(status) => {
                    if let Some((pid, code)) = exit_code(status) {
                        on_exit(pid, code);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => thread::sleep(NO_CHILD_PAUSE),
                Err(e) => {
                    log::error!("reaper: waitpid: {e}");
                    thread::sleep(NO_CHILD_PAUSE);
                }
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn statuses_as_containerd_wants_them() {
        let p = Pid::from_raw(7);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), Some((7, 3)));
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some((7, 137))
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
        assert_eq!(exit_code(WaitStatus::Stopped(p, Signal::SIGSTOP)), None);
    }
}
