//! TaskOOM: one thread per shim watches every container's runtime-core [`cgroups::OomWatcher`]
//! (v1: the memory.oom_control eventfd, v2: inotify on memory.events) and reports each
//! OOM kill. One thread, not one per container, so that a pod's shim does not grow by a
//! thread per container. It waits on every watcher's notifier at once and looks as soon
//! as one fires: systemd removes the scope of a container whose init was OOM-killed, and
//! a look after that finds no counter (a look once a second missed such a kill).
//!
//! On v1 the kernel signals the eventfd just before it kills and counts the kill, so the
//! watcher can wake to a count that has not moved yet; the next look sees it. So that no
//! kill goes unreported when the container's init is the victim, [`Oom::final_check`]
//! reads the absolute count once more when init's exit is recorded, before TaskExit and
//! before Delete removes the cgroup. Kills are counted from the cgroup's count when the
//! watch started, and each is reported once, whichever side sees it first.
//!
//! A watch ends at the thread's next look after [`Oom::stop`]: removing the cgroup
//! (Delete) fires its notifier.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use runtime_core::cgroups;

/// How often the thread looks at every watcher without a notification: a v1 kill is
/// counted just after its notification, and a v2 watcher without inotify only polls.
const TICK: Duration = Duration::from_secs(5);
const STACK: usize = 64 * 1024;

struct Counts {
    /// The cgroup's oom_kill count when watching started.
    base: u64,
    /// Kills reported so far (since `base`).
    reported: u64,
}

/// A container's OOM watch.
#[derive(Clone)]
pub struct Oom {
    inner: Arc<Inner>,
}

struct Inner {
    /// The cgroup's count of OOM kills (v1 memory.oom_control, v2 memory.events).
    counter: Option<cgroups::OomCounter>,
    stop: AtomicBool,
    counts: Mutex<Counts>,
    report: Box<dyn Fn() + Send + Sync>,
}

impl Inner {
    /// Reports kills up to `total` (counted from `base`) not reported yet.
    fn settle(&self, total: u64) {
        let n = {
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let n = total.saturating_sub(c.reported);
            c.reported = c.reported.max(total);
            n
        };
        for _ in 0..n {
            (self.report)();
        }
    }
}

impl Oom {
    /// Starts watching the cgroup at `cgroup`; `report` runs once per OOM kill. None if the
    /// cgroup has no memory controller to watch (logged).
    pub fn start(
        id: &str,
        cgroup: &Path,
        report: impl Fn() + Send + Sync + 'static,
    ) -> Option<Oom> {
        let watcher = match cgroups::manager(cgroup).and_then(|m| m.oom_watcher()) {
            Ok(w) => w,
            Err(e) => {
                log::info!("task {id}: no OOM events: {e}");
                return None;
            }
        };
        let counter = watcher.counter();
        let base = counter.kills().unwrap_or(0);
        let counter = Some(counter);
        let oom = Oom {
            inner: Arc::new(Inner {
                counter,
                stop: AtomicBool::new(false),
                counts: Mutex::new(Counts { base, reported: 0 }),
                report: Box::new(report),
            }),
        };
        let watchers = match watchers() {
            Ok(w) => w,
            Err(e) => {
                log::warn!("task {id}: no OOM events: starting the OOM thread: {e}");
                return None;
            }
        };
        watchers.add(Watch {
            id: id.to_string(),
            watcher,
            inner: oom.inner.clone(),
            seen: 0,
        });
        Some(oom)
    }

    /// Reads the cgroup's count now and reports the kills not reported yet. Called when the
    /// container's init exited, while the cgroup still exists.
    pub fn final_check(&self) {
        let base = self
            .inner
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .base;
        let now = self.inner.counter.as_ref().and_then(|c| c.kills());
        if let Some(now) = now {
            self.inner.settle(now.saturating_sub(base));
        }
    }

    /// Ends the watch at the thread's next look.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
    }
}

/// One container's watch, as the thread holds it.
struct Watch {
    id: String,
    watcher: cgroups::OomWatcher,
    inner: Arc<Inner>,
    /// Kills the watcher reported, counted from its start.
    seen: u64,
}

impl Watch {
    /// Takes the kills the watcher saw since the last look; false once the watch is over.
    fn look(&mut self) -> bool {
        if self.inner.stop.load(Ordering::SeqCst) {
            return false;
        }
        match self.watcher.wait(Duration::ZERO) {
            Ok(0) => true,
            Ok(n) => {
                self.seen += n;
                log::info!("task {}: {n} OOM kill(s)", self.id);
                self.inner.settle(self.seen);
                true
            }
            Err(e) => {
                log::warn!("task {}: watching for OOM kills: {e}", self.id);
                false
            }
        }
    }
}

/// Every watch of the shim, and the one thread that looks at them.
struct Watchers {
    /// Watches added since the thread last took them.
    added: Mutex<Vec<Watch>>,
    /// A byte written here wakes the thread for the added watches.
    wake: UnixStream,
}

/// The shim's watchers, their thread started on first use.
fn watchers() -> Result<&'static Watchers, String> {
    static WATCHERS: OnceLock<Result<Watchers, String>> = OnceLock::new();
    WATCHERS
        .get_or_init(|| {
            let (wake, woken) = UnixStream::pair().map_err(|e| e.to_string())?;
            for s in [&wake, &woken] {
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
            }
            thread::Builder::new()
                .name("oom".into())
                .stack_size(STACK)
                .spawn(move || run(&woken))
                .map_err(|e| e.to_string())?;
            Ok(Watchers {
                added: Mutex::new(Vec::new()),
                wake,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Watchers {
    fn add(&self, w: Watch) {
        self.added.lock().unwrap_or_else(|p| p.into_inner()).push(w);
        // A full socket has a wake-up pending already.
        let _ = (&self.wake).write(&[1]);
    }
}

/// The thread: waits on every watch's notifier at once and looks at every watch when one
/// fires (at once, while the cgroup still exists: systemd removes an OOM-killed scope's),
/// when a watch is added, and every [`TICK`].
fn run(woken: &UnixStream) {
    let mut watches: Vec<Watch> = Vec::new();
    loop {
        let mut buf = [0u8; 64];
        while matches!((&*woken).read(&mut buf), Ok(n) if n > 0) {}
        if let Ok(w) = watchers() {
            watches.append(&mut w.added.lock().unwrap_or_else(|p| p.into_inner()));
        }
        watches.retain_mut(Watch::look);
        let mut fds: Vec<PollFd<'_>> = std::iter::once(woken.as_fd())
            .chain(watches.iter().filter_map(|w| w.watcher.notifier()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let timeout = if watches.is_empty() {
            PollTimeout::NONE
        } else {
            PollTimeout::try_from(TICK).unwrap_or(PollTimeout::MAX)
        };
        if let Err(e) = poll(&mut fds, timeout) {
            if e != nix::errno::Errno::EINTR {
                log::warn!("OOM watch: poll: {e}");
                thread::sleep(TICK);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn each_kill_is_reported_once_whoever_sees_it() {
        let n = Arc::new(AtomicU32::new(0));
        let n2 = n.clone();
        let inner = Inner {
            counter: None,
            stop: AtomicBool::new(false),
            counts: Mutex::new(Counts {
                base: 0,
                reported: 0,
            }),
            report: Box::new(move || {
                n2.fetch_add(1, Ordering::SeqCst);
            }),
        };
        // The final check sees 2, then the watcher catches up with 1 and 2: nothing new.
        inner.settle(2);
        inner.settle(1);
        inner.settle(2);
        assert_eq!(n.load(Ordering::SeqCst), 2);
        inner.settle(3);
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn no_memory_cgroup_no_watch() {
        assert!(Oom::start("x", Path::new("/youki-shim-no-such-cgroup/x"), || {}).is_none());
    }
}
