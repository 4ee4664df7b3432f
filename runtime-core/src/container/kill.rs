//! `kill`: a signal to the container's init, or to every process in its cgroup.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use super::{Container, ContainerError};
use crate::cgroups::FreezerState;
use crate::deadline::Deadline;
use crate::state::{self, Status};
use crate::syscall;

/// How long `delete` (and a failed create) waits for killed processes to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the processes are looked at (and SIGKILLed again) meanwhile.
const KILL_RECHECK: Duration = Duration::from_millis(5);

impl Container {
    /// Sends `signal` to the init process, or with `all` to every process of the container.
    pub fn kill(&mut self, signal: i32, all: bool) -> Result<(), ContainerError> {
        self.locked(|c| {
            if c.status == Status::Stopped && !all {
                return Err(ContainerError::WrongStatus {
                    id: c.state.id.clone(),
                    status: c.status,
                    what: "cannot signal a stopped container",
                });
            }
            if all {
                for pid in c.cgroup()?.pids()? {
                    // A process may exit between listing and signalling: that is fine.
                    match syscall::signals::kill(pid, signal) {
                        Err(e) if e.errno == Errno::ESRCH => {}
                        r => r?,
                    }
                }
            } else {
                syscall::signals::kill(c.pid(), signal)?;
            }
            c.thaw_for_sigkill(signal)
        })
    }

    /// As runc does: after SIGKILL to a paused container, thaw it, since on cgroup v1 a
    /// frozen process cannot die. Other signals leave it paused; they are handled on resume.
    fn thaw_for_sigkill(&self, signal: i32) -> Result<(), ContainerError> {
        if self.status == Status::Paused && signal == Signal::SIGKILL as i32 {
            if let Err(e) = self.cgroup()?.thaw() {
                log::warn!("container {}: thawing after SIGKILL: {e}", self.state.id);
            }
        }
        Ok(())
    }

    /// SIGKILLs init and every process in the cgroup, and waits until they are gone.
    pub(super) fn kill_all(&self) -> Result<(), ContainerError> {
        let cgroup = self.cgroup()?;
        let deadline = Deadline::after(KILL_TIMEOUT);
        loop {
            let mut pids = cgroup.pids().unwrap_or_default();
            if state::init_alive(&self.state) {
                pids.push(self.pid());
            }
            pids.retain(|p| state::proc_stat(p.as_raw()).is_some_and(|s| s.state != 'Z'));
            if pids.is_empty() {
                return Ok(());
            }
            for p in pids {
                let _ = syscall::signals::kill(p, Signal::SIGKILL as i32);
            }
            // On cgroup v1 a frozen process cannot die: thaw a paused container once the
            // SIGKILLs are pending, so that none of its processes runs user code again.
            if matches!(
                cgroup.freezer_state(),
                Ok(FreezerState::Frozen | FreezerState::Freezing)
            ) {
                if let Err(e) = cgroup.thaw() {
                    log::warn!("container {}: thawing to kill: {e}", self.state.id);
                }
            }
            if deadline.expired() {
                return Err(ContainerError::Start {
                    id: self.state.id.clone(),
                    why: format!("processes still alive {KILL_TIMEOUT:?} after SIGKILL"),
                });
            }
            std::thread::sleep(KILL_RECHECK);
        }
    }
}
