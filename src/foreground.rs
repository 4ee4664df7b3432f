//! Running a container process in the foreground, as `run` and `exec` without `--detach`
//! do: wait for it, forward signals to it, and relay its terminal when it has one.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use runtime_core::deadline::Deadline;
use runtime_core::os::terminal;

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

/// How long output of an exited process may still be drained from its terminal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Set up before the container process exists, so that no exit or signal is lost.
pub struct Foreground {
    signals: SigSet,
}

impl Foreground {
    /// Blocks SIGCHLD and the forwarded signals (an exit or a signal that arrives early stays
    /// pending until we wait) and makes us a subreaper, so that the process, reparented to us
    /// when runtime-core's intermediate process exits, can be waited for.
    pub fn prepare() -> Result<Self> {
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGCHLD);
        for s in FORWARDED {
            signals.add(s);
        }
        signals.thread_block().context("blocking signals")?;
        nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
        Ok(Self { signals })
    }

    /// Waits for `pid`, forwarding signals; returns its exit code (128+N if killed by
    /// signal N). With `console` (the other end of the console socket), relays the
    /// process's terminal to ours.
    pub fn wait(self, pid: Pid, console: Option<UnixStream>) -> Result<i32> {
        let relay = console.map(|c| Relay::start(&c)).transpose()?;
        let code = self.wait_forwarding(pid, relay.as_ref());
        if let Some(r) = relay {
            r.finish();
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&self.signals), None).ok();
        code
    }

    fn wait_forwarding(&self, pid: Pid, relay: Option<&Relay>) -> Result<i32> {
        loop {
            // Reap every child that has exited: as a subreaper we also inherit the
            // container's orphans, which must not stay zombies.
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                    Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(128 + sig as i32),
                    Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                    Ok(_) => continue,
                    Err(e) => return Err(e).context("waitpid"),
                }
            }
            let sig = self.signals.wait().context("sigwait")?;
            match (sig, relay) {
                (Signal::SIGCHLD, _) => {}
                // Our terminal changed size: the process's terminal follows.
                (Signal::SIGWINCH, Some(r)) => r.resize(),
                _ => {
                    if let Err(e) = runtime_core::os::signals::kill(pid, sig as i32) {
                        log::warn!("forwarding {sig} to the container: {e}");
                    }
                }
            }
        }
    }
}

/// Copies between our stdio and the process's terminal master.
struct Relay {
    master: OwnedFd,
    output: std::thread::JoinHandle<()>,
    saved: Option<Termios>,
}

impl Relay {
    fn start(console: &UnixStream) -> Result<Self> {
        let master = runtime_core::os::receive_master(console.as_fd())?;
        // Our terminal goes raw so that keys reach the process as typed; restored after.
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("setting raw mode")?;
        }
        let relay_in = std::fs::File::from(master.try_clone().context("dup pty master")?);
        let relay_out = std::fs::File::from(master.try_clone().context("dup pty master")?);
        // The input thread ends with our stdin; it is left behind if stdin stays open.
        std::thread::spawn(move || copy(std::io::stdin().lock(), relay_in));
        let output = std::thread::spawn(move || copy(relay_out, std::io::stdout().lock()));
        let relay = Self {
            master,
            output,
            saved,
        };
        relay.resize();
        Ok(relay)
    }

    /// Gives the process's terminal the size of ours.
    fn resize(&self) {
        if let Ok(ws) = terminal::window_size(std::io::stdin().as_fd()) {
            let _ = terminal::set_window_size(self.master.as_fd(), &ws);
        }
    }

    /// Drains what the process wrote (reading the master fails with EIO once every slave
    /// descriptor is closed), bounded, then restores our terminal.
    fn finish(self) {
        let deadline = Deadline::after(DRAIN_TIMEOUT);
        while !self.output.is_finished() && !deadline.expired() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, t);
        }
    }
}

/// Copies until either side ends; errors end the copy (EIO is how a pty master says its
/// slave side has gone).
fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|_| to.flush()).is_err() {
                    return;
                }
            }
        }
    }
}
