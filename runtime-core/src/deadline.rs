//! Bounded waits: a point in time to wait until, and poll(2) that honours it.
//!
//! Every wait of the runtime and the shim is bounded (a dead peer must become an error,
//! never a hang). The arithmetic of "time left until the deadline, as poll's milliseconds,
//! retried on EINTR" lives here once.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollTimeout};

/// When a wait ends; `None` inside: never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        // An Instant that would overflow is as good as never.
        Deadline(Instant::now().checked_add(timeout))
    }

    /// `timeout` from now, or never without one.
    pub fn within(timeout: Option<Duration>) -> Deadline {
        timeout.map_or(Deadline::never(), Deadline::after)
    }

    /// A wait without an end.
    pub fn never() -> Deadline {
        Deadline(None)
    }

    /// Time left (zero once passed); `None`: no end.
    pub fn remaining(&self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The deadline has passed.
    pub fn expired(&self) -> bool {
        self.remaining().is_some_and(|left| left.is_zero())
    }

    /// The time left as poll(2)'s timeout: whole milliseconds rounded up, so that a wait
    /// never returns early and spins on a 0 ms poll before the deadline.
    pub fn poll_timeout(&self) -> PollTimeout {
        match self.remaining() {
            None => PollTimeout::NONE,
            Some(left) => {
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128);
                PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    /// Waits on `fds` until one is ready or the deadline passes, retried on EINTR; the
    /// number of ready entries (0: the deadline passed).
    pub fn poll(&self, fds: &mut [PollFd<'_>]) -> Result<usize, Errno> {
        loop {
            match nix::poll::poll(fds, self.poll_timeout()) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
                Ok(n) => {
                    let n = usize::try_from(n).unwrap_or(0);
                    if n == 0 && !self.expired() {
                        // poll rounds to the clock's tick: not yet past the deadline.
                        continue;
                    }
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::PollFlags;
    use std::os::fd::AsFd;

    #[test]
    fn never_has_no_end_and_an_elapsed_deadline_has_none_left() {
        assert_eq!(Deadline::never().remaining(), None);
        assert!(!Deadline::never().expired());
        assert_eq!(Deadline::never().poll_timeout(), PollTimeout::NONE);
        let d = Deadline::after(Duration::ZERO);
        assert!(d.expired());
        assert_eq!(d.remaining(), Some(Duration::ZERO));
        assert_eq!(d.poll_timeout(), PollTimeout::ZERO);
        assert_eq!(Deadline::within(None), Deadline::never());
    }

    #[test]
    fn poll_timeout_rounds_up_and_saturates() {
        let d = Deadline::after(Duration::from_micros(1500));
        let ms = i32::from(d.poll_timeout());
        assert!((1..=2).contains(&ms), "{ms}");
        let far = Deadline::after(Duration::from_secs(u64::from(u32::MAX)));
        assert_eq!(far.poll_timeout(), PollTimeout::MAX);
        // Beyond what an Instant can hold: never.
        assert_eq!(Deadline::after(Duration::MAX), Deadline::never());
    }

    #[test]
    fn poll_waits_until_the_deadline_or_a_ready_descriptor() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let d = Deadline::after(Duration::from_millis(30));
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        assert_eq!(d.poll(&mut fds), Ok(0));
        assert!(d.expired(), "returned before the deadline");
        nix::unistd::write(&w, b"x").expect("write");
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        assert_eq!(Deadline::never().poll(&mut fds), Ok(1));
    }
}
