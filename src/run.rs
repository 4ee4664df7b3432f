//! `youki run`: create, start, wait for the container's init and delete it, forwarding
//! signals to the container as runc does.

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use runtime_core::container::{self, CreateOptions};
use runtime_core::state::Store;

/// Signals passed on to the container instead of acting on the runtime.
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Runs a container; returns its exit code (128+N if killed by signal N).
pub fn run(store: &Store, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    if detach {
        container::create(store, opts)?;
        start_or_destroy(store, &opts.id)?;
        return Ok(0);
    }
    // Block SIGCHLD and the forwarded signals before the container exists: an exit or a
    // signal that arrives early stays pending until we wait, so none is lost.
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block().context("blocking signals")?;
    // As a subreaper, the init process is reparented to us when the intermediate process
    // exits, so that we can wait for it.
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;

    let c = container::create(store, opts)?;
    start_or_destroy(store, &opts.id)?;
    let init = Pid::from_raw(c.state.pid);
    let code = wait_forwarding(init, &set)?;
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None).ok();
    if !keep {
        container::delete(store, &opts.id, true)?;
    }
    Ok(code)
}

fn start_or_destroy(store: &Store, id: &str) -> Result<()> {
    if let Err(e) = container::start(store, id) {
        if let Err(de) = container::delete(store, id, true) {
            log::warn!("deleting {id} after failed start: {de}");
        }
        return Err(e.into());
    }
    Ok(())
}

fn wait_forwarding(init: Pid, set: &SigSet) -> Result<i32> {
    loop {
        // Reap every child that has exited: as a subreaper we also inherit the container's
        // orphans, which must not stay zombies.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == init => return Ok(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(_) => continue,
                Err(e) => return Err(e).context("waitpid"),
            }
        }
        let sig = set.wait().context("sigwait")?;
        if sig != Signal::SIGCHLD {
            if let Err(e) = runtime_core::syscall::signals::kill(init, sig as i32) {
                log::warn!("forwarding {sig} to the container: {e}");
            }
        }
    }
}
