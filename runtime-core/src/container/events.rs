//! `events`: the container's statistics at an interval and its OOM kills as they happen.

use std::time::{Duration, Instant};

use super::{Container, ContainerError};
use crate::cgroups::{OomWatcher, Stats};
use crate::state;

/// How often a streaming [`Container::events`] checks whether the container is still alive.
const ALIVE_CHECK: Duration = Duration::from_millis(200);

/// What [`Container::events`] reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Resource usage, every interval.
    Stats(Box<Stats>),
    /// The kernel's OOM killer killed a process of the container.
    Oom,
}

impl Container {
    /// Starts watching the container's cgroup for OOM kills.
    pub fn oom_watcher(&self) -> Result<OomWatcher, ContainerError> {
        Ok(self.cgroup()?.oom_watcher()?)
    }

    /// Streams the container's events until it stops: statistics every `interval` (the
    /// first after one interval, as runc does), and an [`Event::Oom`] for each OOM kill as
    /// it happens. `on_event` returns false to stop early (e.g. when its output is gone).
    ///
    /// The container's lock is let go after its status is checked, so that other
    /// commands (kill, delete) work while events stream.
    pub fn events(
        &mut self,
        interval: Duration,
        mut on_event: impl FnMut(Event) -> bool,
    ) -> Result<(), ContainerError> {
        if interval.is_zero() {
            return Err(ContainerError::Unsupported(
                "the events interval must be greater than 0".into(),
            ));
        }
        self.locked(|c| c.require_live("a stopped container has no events"))?;
        self.unlock();
        let cgroup = self.cgroup()?;
        let mut oom: Option<OomWatcher> = match self.oom_watcher() {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("container {}: no OOM notifications: {e}", self.state.id);
                None
            }
        };
        let mut next_stats = Instant::now() + interval;
        loop {
            if !state::init_alive(&self.state) {
                // An OOM kill of init itself is signalled before init is gone: report it.
                report_ooms(&mut oom, Duration::ZERO, &mut on_event)?;
                return Ok(());
            }
            let now = Instant::now();
            if now >= next_stats {
                match cgroup.stats() {
                    Ok(s) => {
                        if !on_event(Event::Stats(Box::new(s))) {
                            return Ok(());
                        }
                    }
                    // Deleted in between: the container is gone, not an error of ours.
                    Err(_) if !state::init_alive(&self.state) => continue,
                    Err(e) => return Err(e.into()),
                }
                // Keep the cadence, but never try to catch up on missed ticks.
                next_stats = (next_stats + interval).max(now + interval / 2);
            }
            let wait = next_stats
                .saturating_duration_since(Instant::now())
                .min(ALIVE_CHECK);
            if !report_ooms(&mut oom, wait, &mut on_event)? {
                return Ok(());
            }
        }
    }
}

/// Reports the OOM kills seen within `wait`; false if `on_event` asked to stop.
fn report_ooms(
    oom: &mut Option<OomWatcher>,
    wait: Duration,
    on_event: &mut impl FnMut(Event) -> bool,
) -> Result<bool, ContainerError> {
    let n = match oom {
        Some(w) => w.wait(wait)?,
        None => {
            std::thread::sleep(wait);
            0
        }
    };
    Ok((0..n).all(|_| on_event(Event::Oom)))
}
