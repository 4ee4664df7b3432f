//! Notification of OOM kills in a cgroup.
//!
//! - v1: an eventfd registered for `memory.oom_control` through `cgroup.event_control`;
//!   the kernel signals it each time a charge in the cgroup runs into the limit (many times
//!   for one OOM kill, and once more when the cgroup is removed, which is told apart by
//!   `cgroup.event_control` being gone). The eventfd is the wake-up; what is reported is
//!   the change of the `oom_kill` counter of memory.oom_control (kernel 4.13 and later), or
//!   one event per wake-up on kernels without it.
//! - v2: the `oom_kill` counter of `memory.events`, re-read when inotify reports the file
//!   modified (the kernel notifies on every change of it) and at every wait, so a missed
//!   notification only delays the report.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};

use super::{files, stats, CgroupError};
use crate::deadline::Deadline;
use crate::syscall::notify;

/// Watches a cgroup for OOM kills. Hold it while streaming events; drop it to stop.
#[derive(Debug)]
pub struct OomWatcher {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    V1 {
        /// The cgroup's memory directory.
        dir: PathBuf,
        eventfd: OwnedFd,
        /// memory.oom_control, kept open while registered.
        _control: File,
        /// `oom_kill` of memory.oom_control when last read; None if the kernel lacks it.
        last: Option<u64>,
    },
    V2 {
        /// The cgroup directory.
        dir: PathBuf,
        /// inotify watching memory.events; without it, [`OomWatcher::wait`] re-reads the
        /// counter each time it is called.
        inotify: Option<OwnedFd>,
        /// `oom_kill` when last read.
        last: u64,
    },
}

/// A cgroup's count of OOM kills (`oom_kill`), read on demand: for a caller that hands
/// its [`OomWatcher`] to another thread and still reads the count itself.
#[derive(Debug, Clone)]
pub struct OomCounter {
    /// The cgroup's memory directory (v1) or the cgroup directory (v2).
    dir: PathBuf,
    v1: bool,
}

impl OomCounter {
    /// The OOM kills the cgroup has counted since it was made; None if it cannot be read
    /// (the cgroup is gone, or a v1 kernel before 4.13 does not count them).
    pub fn kills(&self) -> Option<u64> {
        if self.v1 {
            oom_kills_v1(&self.dir)
        } else {
            oom_kills_v2(&self.dir).ok()
        }
    }
}

fn other(dir: &Path, msg: String) -> CgroupError {
    CgroupError::Other {
        path: dir.to_path_buf(),
        msg,
    }
}

impl OomWatcher {
    /// Registers an eventfd for OOM notifications of the v1 memory cgroup `dir`.
    pub(crate) fn v1(dir: &Path) -> Result<Self, CgroupError> {
        let control =
            File::open(dir.join("memory.oom_control")).map_err(|source| CgroupError::Read {
                path: dir.to_path_buf(),
                file: "memory.oom_control".into(),
                source,
            })?;
        let eventfd = notify::eventfd()
            .map_err(|e| other(dir, format!("eventfd: {}", std::io::Error::from(e.errno))))?;
        files::write(
            dir,
            "cgroup.event_control",
            &format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd()),
        )?;
        Ok(Self {
            inner: Inner::V1 {
                dir: dir.to_path_buf(),
                eventfd,
                _control: control,
                last: oom_kills_v1(dir),
            },
        })
    }

    /// Watches `memory.events` of the v2 cgroup `dir`.
    pub(crate) fn v2(dir: &Path) -> Result<Self, CgroupError> {
        let last = oom_kills_v2(dir)?;
        let inotify = match notify::inotify_watch(&dir.join("memory.events"), libc::IN_MODIFY) {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::debug!(
                    "{}: inotify unavailable, polling: {}",
                    dir.display(),
                    std::io::Error::from(e.errno)
                );
                None
            }
        };
        Ok(Self {
            inner: Inner::V2 {
                dir: dir.to_path_buf(),
                inotify,
                last,
            },
        })
    }

    /// The counter this watcher reads, to read apart from it.
    pub fn counter(&self) -> OomCounter {
        match &self.inner {
            Inner::V1 { dir, .. } => OomCounter {
                dir: dir.clone(),
                v1: true,
            },
            Inner::V2 { dir, .. } => OomCounter {
                dir: dir.clone(),
                v1: false,
            },
        }
    }

    /// The descriptor that turns readable when the kernel notifies (the v1 eventfd, the v2
    /// inotify), for a caller that waits on several watchers at once and then calls
    /// [`OomWatcher::wait`] with a zero timeout on those that woke; None when this watcher
    /// can only be polled (v2 without inotify).
    pub fn notifier(&self) -> Option<BorrowedFd<'_>> {
        match &self.inner {
            Inner::V1 { eventfd, .. } => Some(eventfd.as_fd()),
            Inner::V2 { inotify, .. } => inotify.as_ref().map(AsFd::as_fd),
        }
    }

    /// Waits up to `timeout` for OOM kills; returns how many happened since the last call
    /// (0 on timeout). A zero timeout only checks.
    pub fn wait(&mut self, timeout: Duration) -> Result<u64, CgroupError> {
        match &mut self.inner {
            Inner::V1 {
                dir, eventfd, last, ..
            } => {
                let mut woke = false;
                if wait_readable(eventfd.as_fd(), timeout) {
                    let mut buf = [0u8; 8];
                    woke = match nix::unistd::read(&*eventfd, &mut buf) {
                        Ok(8) => u64::from_ne_bytes(buf) > 0,
                        Ok(_) | Err(nix::errno::Errno::EAGAIN) => false,
                        Err(e) => return Err(other(dir, format!("reading the OOM eventfd: {e}"))),
                    };
                }
                // The kernel also signals when the cgroup goes away: that is no OOM.
                if !dir.join("cgroup.event_control").exists() {
                    return Ok(0);
                }
                // Read at every call, not only on a wake-up: the kill may be counted just
                // after the notification.
                let now = oom_kills_v1(dir);
                let new = match (now, *last) {
                    (Some(now), Some(prev)) => now.saturating_sub(prev),
                    _ => u64::from(woke),
                };
                *last = now;
                Ok(new)
            }
            Inner::V2 { dir, inotify, last } => {
                match inotify {
                    Some(fd) => {
                        if wait_readable(fd.as_fd(), timeout) {
                            drain(fd);
                        }
                    }
                    None => std::thread::sleep(timeout),
                }
                let now = match oom_kills_v2(dir) {
                    Ok(n) => n,
                    // The cgroup is gone with its processes: nothing more to report.
                    Err(_) if !dir.exists() => *last,
                    Err(e) => return Err(e),
                };
                let new = now.saturating_sub(*last);
                *last = now;
                Ok(new)
            }
        }
    }
}

/// The `oom_kill` count of memory.oom_control of a v1 cgroup, if the kernel has it.
fn oom_kills_v1(dir: &Path) -> Option<u64> {
    let text = files::read(dir, "memory.oom_control").ok()?;
    stats::parse_keyed(&text).get("oom_kill").copied()
}

/// The `oom_kill` count of a v2 cgroup.
fn oom_kills_v2(dir: &Path) -> Result<u64, CgroupError> {
    let text = files::read(dir, "memory.events")?;
    Ok(stats::parse_keyed(&text)
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}

/// Polls `fd` for input for up to `timeout`.
fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(Deadline::after(timeout).poll(&mut fds), Ok(n) if n > 0)
}

/// Reads and discards every pending inotify event.
fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 4096];
    while matches!(nix::unistd::read(fd, &mut buf), Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn v2_counts_oom_kills_from_memory_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        fs::write(d.join("memory.events"), "oom 3\noom_kill 1\n").expect("write");
        let mut w = OomWatcher::v2(d).expect("watcher");
        // Kills before the watcher started are not reported.
        assert_eq!(w.wait(Duration::ZERO).expect("wait"), 0);
        let notifier = w
            .notifier()
            .expect("inotify")
            .try_clone_to_owned()
            .expect("dup");
        assert!(!wait_readable(notifier.as_fd(), Duration::ZERO));
        fs::write(d.join("memory.events"), "oom 5\noom_kill 3\n").expect("write");
        // The notifier wakes a caller that waits on it.
        assert!(wait_readable(notifier.as_fd(), Duration::from_secs(5)));
        assert_eq!(w.wait(Duration::ZERO).expect("wait"), 2);
        assert_eq!(w.wait(Duration::ZERO).expect("wait"), 0);
        // The counter reads the cgroup's total, whatever the watcher reported.
        assert_eq!(w.counter().kills(), Some(3));
        // The cgroup removed: nothing more, and no error.
        drop(dir);
        assert_eq!(w.wait(Duration::ZERO).expect("gone"), 0);
    }

    #[test]
    fn v1_reports_the_oom_kill_counter() {
        // Plain files stand in for the cgroup: the registration write succeeds, the eventfd
        // never fires, and the counter is re-read at every wait.
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        fs::write(
            d.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .expect("write");
        fs::write(d.join("cgroup.event_control"), "").expect("write");
        let mut w = OomWatcher::v1(d).expect("watcher");
        let registered = fs::read_to_string(d.join("cgroup.event_control")).expect("read");
        assert_eq!(registered.split_whitespace().count(), 2, "{registered:?}");
        assert_eq!(w.wait(Duration::from_millis(10)).expect("wait"), 0);
        fs::write(
            d.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .expect("write");
        assert_eq!(w.wait(Duration::ZERO).expect("wait"), 1);
        assert_eq!(w.wait(Duration::ZERO).expect("wait"), 0);
        assert_eq!(w.counter().kills(), Some(1));
        let err = OomWatcher::v1(&d.join("absent")).expect_err("no cgroup");
        assert!(err.to_string().contains("memory.oom_control"), "{err}");
    }
}
