//! The shim's one copy thread: a poll loop over every copy of every process (output,
//! stdin, terminal), each a [`Job`] that never blocks, so that the shim does not grow by
//! threads per process or per stream.

use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags};
use runtime_core::deadline::Deadline;

use super::{BUF_SIZE, COPY_STACK};
use crate::error::{Result, ShimError};

/// Makes `fd`'s open file non-blocking (for every descriptor of it).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>) -> Result<()> {
    let flags =
        fcntl(fd, FcntlArg::F_GETFL).map_err(|e| ShimError::other(format!("F_GETFL: {e}")))?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map(drop)
    .map_err(|e| ShimError::other(format!("F_SETFL: {e}")))
}

/// Writes what a non-blocking `w` takes of `data` now; how much.
pub(crate) fn write_some(mut w: impl Write, mut data: &[u8]) -> std::io::Result<usize> {
    let total = data.len();
    while !data.is_empty() {
        match w.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(total - data.len())
}

/// A copy that the copier's thread runs (module doc): it says what it waits for and takes
/// a step when woken. It never blocks: its descriptors are non-blocking or polled first.
pub(crate) trait Job: Send {
    /// Pushes the descriptors to poll, with their events, onto `fds`; returns when to
    /// look again without an event (None: only on one).
    fn interest<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> Option<Instant>;
    /// One step after a poll: `revents` are those of the descriptors [`Job::interest`]
    /// pushed, in order (woken by its timeout: maybe none set). False once the job is
    /// over: it is dropped, closing its descriptors.
    fn step(&mut self, revents: &[PollFlags], buf: &mut [u8]) -> bool;
}

/// The shim's copier: one thread for every copy of every process (output, stdin,
/// terminal), so that the shim does not grow by threads per container.
struct Copier {
    added: Mutex<Vec<Box<dyn Job>>>,
    /// A pipe that wakes the thread when a job is added (non-blocking both ends).
    wake: (OwnedFd, OwnedFd),
}

/// The copier, its thread started on first use.
fn copier() -> Result<&'static Copier> {
    static COPIER: OnceLock<std::result::Result<&'static Copier, String>> = OnceLock::new();
    COPIER
        .get_or_init(|| {
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
                .map_err(|e| format!("pipe: {e}"))?;
            let c: &'static Copier = Box::leak(Box::new(Copier {
                added: Mutex::new(Vec::new()),
                wake: (r, w),
            }));
            thread::Builder::new()
                .name("io-copy".into())
                .stack_size(COPY_STACK)
                .spawn(move || c.run())
                .map(|_| c)
                .map_err(|e| format!("starting the stdio copy thread: {e}"))
        })
        .clone()
        .map_err(ShimError::other)
}

/// Hands `job` to the copier's thread (started on first use).
pub(crate) fn run_job(job: Box<dyn Job>) -> Result<()> {
    copier().map(|c| c.add(job))
}

impl Copier {
    fn add(&self, job: Box<dyn Job>) {
        self.added
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(job);
        // A full pipe is a wake-up already pending.
        let _ = nix::unistd::write(&self.wake.1, &[1]);
    }

    fn run(&self) {
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        let mut buf = vec![0u8; BUF_SIZE];
        loop {
            jobs.append(&mut self.added.lock().unwrap_or_else(|p| p.into_inner()));
            // Every job's events, one after the other; `ends[i]`: where job i's end.
            let (revents, ends) = {
                let mut fds = vec![PollFd::new(self.wake.0.as_fd(), PollFlags::POLLIN)];
                let mut ends = Vec::with_capacity(jobs.len());
                let mut next: Option<Instant> = None;
                for j in &jobs {
                    if let Some(at) = j.interest(&mut fds) {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                    ends.push(fds.len() - 1);
                }
                let deadline =
                    Deadline::within(next.map(|at| at.saturating_duration_since(Instant::now())));
                if let Err(e) = deadline.poll(&mut fds) {
                    log::warn!("stdio copy: poll: {e}");
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let revents: Vec<PollFlags> = fds[1..]
                    .iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                    .collect();
                (revents, ends)
            };
            let mut drained = [0u8; 64];
            while matches!(nix::unistd::read(&self.wake.0, &mut drained), Ok(n) if n > 0) {}
            let mut i = 0;
            let mut from = 0;
            jobs.retain_mut(|j| {
                let to = ends[i];
                i += 1;
                let keep = j.step(&revents[from..to], &mut buf);
                from = to;
                keep
            });
        }
    }
}
