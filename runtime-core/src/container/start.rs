//! `start`: the init of a created container execs the user's program.

use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags};
use nix::sys::stat::Mode;

use super::{Container, ContainerError};
use crate::deadline::Deadline;
use crate::hooks;
use crate::process;
use crate::state::{self, Status};

/// How long `start` waits for init to take the start signal.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often `start` looks whether init is still alive while it waits.
const ALIVE_CHECK: Duration = Duration::from_millis(100);

impl Container {
    /// Releases the init process of a created container to exec the user's program, then
    /// runs the poststart hooks.
    pub fn start(&mut self) -> Result<(), ContainerError> {
        self.locked(|c| {
            c.require(
                &[Status::Created],
                "only a created container can be started",
            )?;
            c.release_init()?;
            c.state.status = Status::Running;
            c.status = Status::Running;
            c.save()?;
            if let Some(list) = c.state.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
                // The spec says a poststart failure only warrants a warning: the program runs.
                hooks::run_best_effort(list, &c.oci_state_bytes(Status::Running));
            }
            Ok(())
        })
    }

    /// Opens the exec fifo for reading, which unblocks init, and waits until init has run
    /// the startContainer hooks and exec'd the program (end-of-file: the fifo is
    /// close-on-exec).
    fn release_init(&self) -> Result<(), ContainerError> {
        let fifo_path = self.entry()?.fifo();
        let err = |why: String| ContainerError::Start {
            id: self.state.id.clone(),
            why,
        };
        // Non-blocking: if init is gone, a blocking open would wait for a writer forever.
        let fifo = nix::fcntl::open(
            &fifo_path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(format!("opening {}: {e}", fifo_path.display())))?;
        // Once opened, the path has served its purpose: the status reads `running` from
        // now on, and a second `start` finds no fifo.
        std::fs::remove_file(&fifo_path).map_err(|source| ContainerError::Io {
            path: fifo_path.clone(),
            source,
        })?;
        let deadline = Deadline::after(START_TIMEOUT);
        let mut got: Vec<u8> = vec![];
        loop {
            let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
            let ready = Deadline::after(ALIVE_CHECK)
                .poll(&mut fds)
                .map_err(|e| err(format!("poll exec fifo: {e}")))?;
            if ready > 0 {
                let mut buf = [0u8; 4096];
                match nix::unistd::read(&fifo, &mut buf) {
                    // Until init opens its end, a non-blocking read finds no writer and
                    // returns 0: only end-of-file after init wrote something is final.
                    Ok(0) if !got.is_empty() => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(err(format!("reading exec fifo: {e}"))),
                }
            }
            if got.is_empty() && !state::init_alive(&self.state) {
                return Err(err("init exited before start".into()));
            }
            if deadline.expired() {
                return Err(err(format!(
                    "init did not start the program in {START_TIMEOUT:?}"
                )));
            }
        }
        match got.split_first() {
            Some((b, _)) if [*b] == process::START_OK => Ok(()),
            Some((b, msg)) if [*b] == process::START_FAILED => {
                Err(err(String::from_utf8_lossy(msg).into_owned()))
            }
            _ => Err(err("init exited before start".into())),
        }
    }
}
