//! Operations on a container's resources: pause, resume, processes, statistics, events,
//! limit updates. All of them go through the container's cgroup.

use std::time::{Duration, Instant};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use super::{load, ContainerError};
use crate::cgroups::{self, OomWatcher, Stats};
use crate::state::{self, State, Status, Store};

/// How often a streaming [`events`] checks whether the container is still alive.
const ALIVE_CHECK: Duration = Duration::from_millis(200);

/// Freezes every process of a running container; its status becomes `paused`. A created
/// container is refused, as containerd's runc shim refuses a created task ("cannot pause task
/// in created state"); runc's own `pause` takes it: see [`pause_created_too`].
pub fn pause(store: &Store, id: &str) -> Result<(), ContainerError> {
    freeze(store, id, false)
}

/// [`pause`] that also takes a created container, as runc 1.1.5's `pause` does: its init,
/// waiting for `start`, is frozen; `start` refuses it until it is resumed, when it is
/// `created` again.
pub fn pause_created_too(store: &Store, id: &str) -> Result<(), ContainerError> {
    freeze(store, id, true)
}

fn freeze(store: &Store, id: &str, created_too: bool) -> Result<(), ContainerError> {
    let entry = store.open(id)?;
    let mut c = load(&entry)?;
    let allowed = match c.status {
        Status::Running => true,
        Status::Created => created_too,
        _ => false,
    };
    if !allowed {
        return Err(ContainerError::WrongStatus {
            id: id.into(),
            status: c.status,
            what: if created_too {
                "only a running or created container can be paused"
            } else {
                "only a running container can be paused"
            },
        });
    }
    cgroups::manager(&c.state.cgroup_path)?.freeze()?;
    c.state.status = Status::Paused;
    entry.save(&c.state)?;
    Ok(())
}

/// Thaws a paused container; its status becomes `running`, or `created` again if it was
/// paused before `start`.
pub fn resume(store: &Store, id: &str) -> Result<(), ContainerError> {
    let entry = store.open(id)?;
    let mut c = load(&entry)?;
    if c.status != Status::Paused {
        return Err(ContainerError::WrongStatus {
            id: id.into(),
            status: c.status,
            what: "only a paused container can be resumed",
        });
    }
    cgroups::manager(&c.state.cgroup_path)?.thaw()?;
    // The live status reads the fifo first once thawed; the stored one only matters where
    // the freezer cannot be read, and then it should be right too.
    c.state.status = if entry.fifo().exists() {
        Status::Created
    } else {
        Status::Running
    };
    entry.save(&c.state)?;
    Ok(())
}

/// Every process in the container's cgroup (host pids), sorted. A stopped container whose
/// cgroup is gone has none.
pub fn pids(store: &Store, id: &str) -> Result<Vec<Pid>, ContainerError> {
    let entry = store.open(id)?;
    let c = load(&entry)?;
    Ok(cgroups::manager(&c.state.cgroup_path)?.pids()?)
}

/// Loads the state of a container that has a cgroup to look at (not stopped).
fn live_state(store: &Store, id: &str, what: &'static str) -> Result<State, ContainerError> {
    let entry = store.open(id)?;
    let c = load(&entry)?;
    if c.status == Status::Stopped {
        return Err(ContainerError::WrongStatus {
            id: id.into(),
            status: c.status,
            what,
        });
    }
    Ok(c.state)
}

/// The container's resource usage.
pub fn stats(store: &Store, id: &str) -> Result<Stats, ContainerError> {
    let st = live_state(store, id, "a stopped container has no statistics")?;
    Ok(cgroups::manager(&st.cgroup_path)?.stats()?)
}

/// Applies new resource limits to a created, running or paused container.
pub fn update(store: &Store, id: &str, resources: &LinuxResources) -> Result<(), ContainerError> {
    let entry = store.open(id)?;
    let c = load(&entry)?;
    if !matches!(c.status, Status::Created | Status::Running | Status::Paused) {
        return Err(ContainerError::WrongStatus {
            id: id.into(),
            status: c.status,
            what: "only a created, running or paused container can be updated",
        });
    }
    crate::spec::check_resources(resources, "")?;
    // Device rules stay as create set them, as with runc's update: containerd's CRI sends
    // the container's whole resources, whose devices (deny all) would otherwise replace the
    // rules create completed with the defaults, cutting off /dev/null and the like.
    let mut resources = resources.clone();
    if resources.devices().is_some() {
        log::debug!("update {id}: device rules are not changed by an update");
        resources.set_devices(None);
    }
    Ok(cgroups::manager(&c.state.cgroup_path)?.update(&resources)?)
}

/// What [`events`] reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Resource usage, every interval.
    Stats(Box<Stats>),
    /// The kernel's OOM killer killed a process of the container.
    Oom,
}

/// Streams the container's events until it stops: statistics every `interval` (the first
/// after one interval, as runc does), and an [`Event::Oom`] for each OOM kill as it happens.
/// `on_event` returns false to stop early (e.g. when its output is gone).
///
/// The container's lock is held only while reading its state at the start, so that other
/// commands (kill, delete) work while events stream.
pub fn events(
    store: &Store,
    id: &str,
    interval: Duration,
    mut on_event: impl FnMut(Event) -> bool,
) -> Result<(), ContainerError> {
    if interval.is_zero() {
        return Err(ContainerError::Unsupported(
            "the events interval must be greater than 0".into(),
        ));
    }
    let st = live_state(store, id, "a stopped container has no events")?;
    let cgroup = cgroups::manager(&st.cgroup_path)?;
    let mut oom: Option<OomWatcher> = match cgroup.oom_watcher() {
        Ok(w) => Some(w),
        Err(e) => {
            log::warn!("container {id}: no OOM notifications: {e}");
            None
        }
    };
    let mut next_stats = Instant::now() + interval;
    loop {
        if !state::init_alive(&st) {
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
                Err(_) if !state::init_alive(&st) => continue,
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
