//! cgroup v1, including hybrid hosts (controllers on v1, a cgroup2 `unified` hierarchy beside).
//!
//! Each controller lives in its own hierarchy (or shares one, like `cpu,cpuacct`): the
//! container's cgroup is the same relative path created in every hierarchy.

use crate::deadline::Deadline;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::files::{self, FileWrite, IfAbsent};
use super::v2::V2Manager;
use super::{
    stats, CgroupError, CgroupManager, CgroupMount, FreezerState, OomWatcher, Stats, FREEZE_TIMEOUT,
};

/// One v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its controllers (`cpu`, `name=systemd`, ...).
    pub controllers: Vec<String>,
}

impl Hierarchy {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// A container's cgroup on a v1 or hybrid host.
#[derive(Debug)]
pub struct V1Manager {
    /// The cgroup path as given (absolute, from each hierarchy's root).
    path: PathBuf,
    /// `path` without its leading `/`, to join under mount points.
    rel: PathBuf,
    hierarchies: Vec<Hierarchy>,
    /// The cgroup2 hierarchy of a hybrid host; the container joins it too, as runc does, and
    /// it holds the controllers not bound to v1 (here: hugetlb). Not bound into the
    /// container: runc binds only the v1 hierarchies.
    unified: Option<V2Manager>,
}

/// The v1 value for "no limit" of a signed OCI value.
fn limit(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// The `devices.allow`/`devices.deny` write for one OCI device rule.
pub(crate) fn device_rule(rule: &LinuxDeviceCgroup) -> Result<FileWrite, String> {
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        // Unbuffered character devices are character devices to the device controller.
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return Err("device rules cannot name FIFOs (type p)".into()),
    };
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    let access = rule.access().as_deref().unwrap_or("rwm");
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(format!(
            "invalid device access {access:?}: expected letters of rwm"
        ));
    }
    let file = if rule.allow() {
        "devices.allow"
    } else {
        "devices.deny"
    };
    Ok(FileWrite::new(
        "devices",
        file,
        format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor())),
    ))
}

/// The file writes that apply `r` on v1, in order; `Err` says why `r` is invalid.
pub(crate) fn writes(r: &LinuxResources) -> Result<Vec<FileWrite>, String> {
    let mut w = Vec::new();

    if let Some(cpu) = r.cpu() {
        // cpuset first: the copied-down defaults are replaced before tasks arrive.
        if let Some(cpus) = cpu.cpus() {
            w.push(FileWrite::new("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = cpu.mems() {
            w.push(FileWrite::new("cpuset", "cpuset.mems", mems));
        }
    }

    // In the order given: each rule refines the ones before. Rules the controller would
    // ignore silently (a hole in a wildcard) are refused first, as on v2.
    if let Some(rules) = r.devices() {
        super::check_device_rules(rules).map_err(|e| e.to_string())?;
    }
    for rule in r.devices().iter().flatten() {
        w.push(device_rule(rule)?);
    }

    if let Some(mem) = r.memory() {
        // 0 means unset in OCI (Go's zero value), as runc reads it.
        if let Some(l) = mem.limit().filter(|v| *v != 0) {
            w.push(FileWrite::new("memory", "memory.limit_in_bytes", limit(l)));
        }
        match mem.swap().filter(|v| *v != 0) {
            Some(s) => w.push(FileWrite::new(
                "memory",
                "memory.memsw.limit_in_bytes",
                limit(s),
            )),
            // Unlimited memory without a swap value means unlimited swap too (runc), where
            // swap accounting exists.
            None if mem.limit() == Some(-1) => w.push(
                FileWrite::new("memory", "memory.memsw.limit_in_bytes", "-1")
                    .if_absent(IfAbsent::Skip),
            ),
            None => {}
        }
        if let Some(res) = mem.reservation().filter(|v| *v != 0) {
            w.push(FileWrite::new(
                "memory",
                "memory.soft_limit_in_bytes",
                limit(res),
            ));
        }
        // u64::MAX is Go's -1, "unset".
        if let Some(sw) = mem.swappiness().filter(|v| *v != u64::MAX) {
            w.push(FileWrite::new("memory", "memory.swappiness", sw));
        }
        if mem.kernel().is_some() {
            // Deprecated by the kernel (5.4) and ignored by runc since 1.0.
            log::warn!("linux.resources.memory.kernel is deprecated and not applied");
        }
        if let Some(tcp) = mem.kernel_tcp().filter(|v| *v != 0) {
            w.push(FileWrite::new(
                "memory",
                "memory.kmem.tcp.limit_in_bytes",
                limit(tcp),
            ));
        }
        if mem.disable_oom_killer() == Some(true) {
            w.push(FileWrite::new("memory", "memory.oom_control", "1"));
        }
        if let Some(h) = mem.use_hierarchy() {
            w.push(FileWrite::new(
                "memory",
                "memory.use_hierarchy",
                if h { "1" } else { "0" },
            ));
        }
    }

    if let Some(cpu) = r.cpu() {
        if let Some(shares) = cpu.shares().filter(|v| *v != 0) {
            w.push(FileWrite::new("cpu", "cpu.shares", shares));
        }
        // Period before quota: the kernel checks quota against the current period.
        if let Some(period) = cpu.period().filter(|v| *v != 0) {
            w.push(FileWrite::new("cpu", "cpu.cfs_period_us", period));
        }
        if let Some(quota) = cpu.quota().filter(|v| *v != 0) {
            w.push(FileWrite::new("cpu", "cpu.cfs_quota_us", limit(quota)));
        }
        if let Some(burst) = cpu.burst() {
            w.push(FileWrite::new("cpu", "cpu.cfs_burst_us", burst));
        }
        // Period before runtime, for the same reason.
        if let Some(period) = cpu.realtime_period().filter(|v| *v != 0) {
            w.push(FileWrite::new("cpu", "cpu.rt_period_us", period));
        }
        if let Some(runtime) = cpu.realtime_runtime().filter(|v| *v != 0) {
            w.push(FileWrite::new("cpu", "cpu.rt_runtime_us", runtime));
        }
        if let Some(idle) = cpu.idle() {
            w.push(FileWrite::new("cpu", "cpu.idle", idle));
        }
    }

    if let Some(pids) = r.pids() {
        match pids.limit() {
            0 => {}
            l if l < 0 => w.push(FileWrite::new("pids", "pids.max", "max")),
            l => w.push(FileWrite::new("pids", "pids.max", l)),
        }
    }

    if let Some(bio) = r.block_io() {
        // Kernels without CFQ have no blkio.weight; BFQ's file takes the same range.
        if let Some(weight) = bio.weight() {
            w.push(
                FileWrite::new("blkio", "blkio.weight", weight)
                    .if_absent(IfAbsent::Use("blkio.bfq.weight".into(), weight.to_string())),
            );
        }
        if let Some(leaf) = bio.leaf_weight() {
            w.push(FileWrite::new("blkio", "blkio.leaf_weight", leaf));
        }
        for dev in bio.weight_device().iter().flatten() {
            if let Some(weight) = dev.weight() {
                let value = format!("{}:{} {weight}", dev.major(), dev.minor());
                w.push(
                    FileWrite::new("blkio", "blkio.weight_device", &value)
                        .if_absent(IfAbsent::Use("blkio.bfq.weight_device".into(), value)),
                );
            }
            if let Some(leaf) = dev.leaf_weight() {
                w.push(FileWrite::new(
                    "blkio",
                    "blkio.leaf_weight_device",
                    format!("{}:{} {leaf}", dev.major(), dev.minor()),
                ));
            }
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                bio.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                bio.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                bio.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                bio.throttle_write_iops_device(),
            ),
        ];
        for (file, devs) in throttles {
            for dev in devs.iter().flatten() {
                w.push(FileWrite::new(
                    "blkio",
                    file,
                    format!("{}:{} {}", dev.major(), dev.minor(), dev.rate()),
                ));
            }
        }
    }

    for hp in r.hugepage_limits().iter().flatten() {
        w.push(FileWrite::new(
            "hugetlb",
            format!("hugetlb.{}.limit_in_bytes", hp.page_size()),
            limit(hp.limit()),
        ));
    }

    if let Some(net) = r.network() {
        if let Some(class_id) = net.class_id() {
            w.push(FileWrite::new("net_cls", "net_cls.classid", class_id));
        }
        for prio in net.priorities().iter().flatten() {
            w.push(FileWrite::new(
                "net_prio",
                "net_prio.ifpriomap",
                format!("{} {}", prio.name(), prio.priority()),
            ));
        }
    }

    w.extend(super::rdma_writes(r));

    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err("linux.resources.unified needs cgroup v2, this host runs v1".into());
    }
    Ok(w)
}

/// Puts the swap write before the memory write when the new memory+swap limit is above the
/// current memory limit (or unlimited): the kernel requires memsw >= memory at every step.
pub(crate) fn order_memory(writes: &mut [FileWrite], current_limit: Option<u64>) {
    let pos = |f: &str| writes.iter().position(|w| w.file == f);
    let (Some(mem), Some(swap)) = (
        pos("memory.limit_in_bytes"),
        pos("memory.memsw.limit_in_bytes"),
    ) else {
        return;
    };
    let new_swap = &writes[swap].value;
    let swap_first = new_swap == "-1"
        || match (current_limit, new_swap.parse::<u64>()) {
            (Some(cur), Ok(new)) => cur < new,
            _ => false,
        };
    if swap_first != (swap < mem) {
        writes.swap(mem, swap);
    }
}

/// The v2 form of a v1 hugetlb write, for hybrid hosts where hugetlb is on cgroup2.
fn hugetlb_to_v2(w: &FileWrite) -> FileWrite {
    let file = w.file.replace(".limit_in_bytes", ".max");
    let value = if w.value == "-1" {
        "max".to_string()
    } else {
        w.value.clone()
    };
    FileWrite::new("hugetlb", file, value)
}

impl V1Manager {
    /// The manager for cgroup `path` in `hierarchies`, plus the hybrid `unified` mount.
    pub(crate) fn new(
        path: &Path,
        hierarchies: Vec<Hierarchy>,
        unified: Option<PathBuf>,
    ) -> Result<Self, CgroupError> {
        let rel = super::relative(path)?;
        let unified = unified.map(|mp| V2Manager::new(path, mp)).transpose()?;
        Ok(Self {
            path: path.to_path_buf(),
            rel,
            hierarchies,
            unified,
        })
    }

    fn dir(&self, h: &Hierarchy) -> PathBuf {
        h.mount_point.join(&self.rel)
    }

    fn find(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies.iter().find(|h| h.has(controller))
    }

    fn freezer(&self) -> Result<PathBuf, CgroupError> {
        self.find("freezer")
            .map(|h| self.dir(h))
            .ok_or_else(|| CgroupError::ControllerMissing {
                path: self.path.clone(),
                controller: "freezer".into(),
                what: "pause and resume".into(),
            })
    }

    /// Where a write goes: a v1 hierarchy, or (hugetlb on a hybrid host) the unified one.
    fn target(&self, w: &FileWrite) -> Result<Target<'_>, CgroupError> {
        if let Some(h) = self.find(&w.controller) {
            return Ok(Target::V1(h));
        }
        if let Some(u) = &self.unified {
            if w.controller == "hugetlb" && u.available().iter().any(|c| c == "hugetlb") {
                return Ok(Target::Unified(u));
            }
        }
        Err(CgroupError::ControllerMissing {
            path: self.path.clone(),
            controller: w.controller.clone(),
            what: w.file.clone(),
        })
    }

    /// Creates the directories of the cgroup in hierarchy `h`, top first.
    fn create_in(&self, h: &Hierarchy) -> Result<(), CgroupError> {
        let cpuset = h.has("cpuset");
        let mut parent = h.mount_point.clone();
        for dir in files::levels(&h.mount_point, &self.rel) {
            files::mkdir(&dir)?;
            if cpuset {
                // A new v1 cpuset cgroup starts with empty cpus and mems, and tasks cannot
                // join it until both are set: inherit the parent's.
                for file in ["cpuset.cpus", "cpuset.mems"] {
                    if files::read(&dir, file)?.trim().is_empty() {
                        let value = files::read(&parent, file)?;
                        files::write(&dir, file, value.trim())?;
                    }
                }
            }
            parent = dir;
        }
        Ok(())
    }

    /// Validates `r`, checks every write has a home, then writes.
    fn apply(&self, r: &LinuxResources, create: bool) -> Result<(), CgroupError> {
        let mut writes = writes(r).map_err(|reason| CgroupError::InvalidResource {
            path: self.path.clone(),
            reason,
        })?;
        // Resolve every target before creating anything: a missing controller must not
        // leave half a cgroup behind.
        let targets = writes
            .iter()
            .map(|w| self.target(w).map(|t| t.is_unified()))
            .collect::<Result<Vec<bool>, _>>()?;
        let hugetlb_unified = targets.iter().any(|u| *u);
        if create {
            for h in &self.hierarchies {
                self.create_in(h)?;
            }
        }
        if let Some(u) = &self.unified {
            if create || hugetlb_unified {
                self.create_unified(u, hugetlb_unified)?;
            }
        }
        if let Some(mem) = self.find("memory") {
            let dir = self.dir(mem);
            let current = files::read(&dir, "memory.limit_in_bytes")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            order_memory(&mut writes, current);
        }
        for w in &writes {
            match self.target(w)? {
                Target::V1(h) => w.apply(&self.dir(h))?,
                Target::Unified(u) => hugetlb_to_v2(w).apply(&u.dir())?,
            }
        }
        Ok(())
    }

    /// Creates the container's directory in the hybrid unified hierarchy `u`. runc's v1
    /// driver (1.1.5 and 1.3) joins it on every hybrid host, as a named hierarchy without
    /// controllers, so that the container is accounted to its own cgroup there (a
    /// systemd hybrid host keeps its units in it), and ignores failures. So does this, but
    /// for `hugetlb`: the controllers v1 lacks (here hugetlb) are enabled only for a
    /// container that has such limits, which then must get them. Enabling a controller
    /// changes the hierarchy for everybody below, so only what is needed.
    fn create_unified(&self, u: &V2Manager, hugetlb: bool) -> Result<(), CgroupError> {
        let enable: &[&str] = if hugetlb { &["hugetlb"] } else { &[] };
        match u.create_dirs(Some(enable)) {
            Err(e) if !hugetlb => {
                log::warn!(
                    "not joining the unified hierarchy at {}: {e}",
                    u.mount_point().display()
                );
                Ok(())
            }
            result => result,
        }
    }

    /// Every hierarchy directory of the container, v1 then unified (if it has one there).
    fn all_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.hierarchies.iter().map(|h| self.dir(h)).collect();
        dirs.extend(self.unified_dir());
        dirs
    }

    /// The container's directory in the hybrid unified hierarchy, if it was given one.
    fn unified_dir(&self) -> Option<PathBuf> {
        self.unified
            .as_ref()
            .map(|u| u.dir())
            .filter(|d| d.is_dir())
    }
}

/// Where a v1 manager writes a file.
enum Target<'a> {
    V1(&'a Hierarchy),
    Unified(&'a V2Manager),
}

impl Target<'_> {
    fn is_unified(&self) -> bool {
        matches!(self, Target::Unified(_))
    }
}

impl CgroupManager for V1Manager {
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let empty = LinuxResources::default();
        self.apply(resources.unwrap_or(&empty), true)
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.apply(resources, false)
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        for dir in self.all_dirs() {
            files::write(&dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        // Any hierarchy holds every process; pids and freezer are never shared with
        // systemd's own bookkeeping, so they are the most faithful.
        let h = self
            .find("pids")
            .or_else(|| self.find("freezer"))
            .or_else(|| self.hierarchies.first());
        match h {
            Some(h) => files::procs_tree(&self.dir(h)),
            None => match &self.unified {
                Some(u) => u.pids(),
                None => Ok(Vec::new()),
            },
        }
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let deadline = Deadline::after(files::REMOVE_TIMEOUT);
        let mut first_err = None;
        // Go on after an error: leave as little behind as possible.
        for dir in self.all_dirs() {
            if let Err(e) = files::remove_tree(&dir, deadline) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn mounts(&self) -> Vec<CgroupMount> {
        self.hierarchies
            .iter()
            .map(|h| CgroupMount {
                name: super::basename(&h.mount_point),
                source: self.dir(h),
            })
            .collect()
    }

    fn can_join_self(&self) -> bool {
        // The v1 hierarchies cheaply (below); the hybrid unified one, which moves a
        // process only through cgroup.procs and its global threadgroup lock (an RCU grace
        // period, 7 ms per create here), by being born there (birth_dir).
        true
    }

    fn birth_dir(&self) -> Option<PathBuf> {
        self.unified_dir()
    }

    fn join_self(&self, born: bool) -> Result<(), CgroupError> {
        // "0" names the writer; moving only the calling thread through `tasks` lets the
        // kernel skip the global threadgroup lock, whose RCU grace period makes a
        // cgroup.procs write cost milliseconds. The caller has a single thread, so its
        // whole process moves.
        for h in &self.hierarchies {
            files::write(&self.dir(h), "tasks", "0")?;
        }
        match self.unified_dir() {
            Some(dir) if !born => files::write(&dir, "cgroup.procs", "0"),
            _ => Ok(()),
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        let dir = self.freezer()?;
        let mut state = String::new();
        let mut writes = 0u32;
        let frozen = files::poll(FREEZE_TIMEOUT, || {
            // Rewriting FROZEN restarts a freeze that stalled on a task in an
            // uninterruptible sleep (runc does the same).
            if writes.is_multiple_of(8) {
                files::write(&dir, "freezer.state", "FROZEN")?;
            }
            writes += 1;
            state = files::read(&dir, "freezer.state")?.trim().to_string();
            Ok(state == "FROZEN")
        })?;
        if frozen {
            return Ok(());
        }
        // Do not leave a half-frozen container: thaw it back, then report.
        if let Err(e) = files::write(&dir, "freezer.state", "THAWED") {
            log::warn!("thawing {} after a failed freeze: {e}", dir.display());
        }
        Err(CgroupError::FreezeTimeout {
            path: dir,
            state,
            expected: "FROZEN",
            waited: FREEZE_TIMEOUT,
        })
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        let dir = self.freezer()?;
        files::write(&dir, "freezer.state", "THAWED")?;
        let mut state = String::new();
        let thawed = files::poll(FREEZE_TIMEOUT, || {
            state = files::read(&dir, "freezer.state")?.trim().to_string();
            Ok(state == "THAWED")
        })?;
        if thawed {
            Ok(())
        } else {
            Err(CgroupError::FreezeTimeout {
                path: dir,
                state,
                expected: "THAWED",
                waited: FREEZE_TIMEOUT,
            })
        }
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let dirs = self.all_dirs();
        if !dirs.iter().any(|d| d.is_dir()) {
            return Err(CgroupError::Other {
                path: self.path.clone(),
                msg: "the cgroup does not exist".into(),
            });
        }
        stats::v1(
            |controller| self.find(controller).map(|h| self.dir(h)),
            self.unified_dir(),
        )
    }

    fn oom_watcher(&self) -> Result<OomWatcher, CgroupError> {
        let h = self
            .find("memory")
            .ok_or_else(|| CgroupError::ControllerMissing {
                path: self.path.clone(),
                controller: "memory".into(),
                what: "OOM notifications".into(),
            })?;
        OomWatcher::v1(&self.dir(h))
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        let dir = self.freezer()?;
        let text = files::read(&dir, "freezer.state")?;
        match text.trim() {
            "THAWED" => Ok(FreezerState::Thawed),
            "FREEZING" => Ok(FreezerState::Freezing),
            "FROZEN" => Ok(FreezerState::Frozen),
            other => Err(CgroupError::Parse {
                path: dir,
                file: "freezer.state".into(),
                content: other.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).expect("valid LinuxResources JSON")
    }

    fn pairs(w: &[FileWrite]) -> Vec<(&str, &str)> {
        w.iter()
            .map(|w| (w.file.as_str(), w.value.as_str()))
            .collect()
    }

    #[test]
    fn full_resources_to_files() {
        let r = resources(
            r#"{
            "devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rw"}
            ],
            "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200, "swappiness": 10},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "realtimeRuntime": 950, "realtimePeriod": 1000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 64},
            "blockIO": {
                "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]
        }"#,
        );
        let w = writes(&r).expect("valid");
        assert_eq!(
            pairs(&w),
            vec![
                ("cpuset.cpus", "0"),
                ("cpuset.mems", "0"),
                ("devices.deny", "a *:* rwm"),
                ("devices.allow", "c 1:3 rwm"),
                ("devices.allow", "c 136:* rw"),
                ("memory.limit_in_bytes", "104857600"),
                ("memory.memsw.limit_in_bytes", "209715200"),
                ("memory.soft_limit_in_bytes", "52428800"),
                ("memory.swappiness", "10"),
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
                ("cpu.rt_period_us", "1000"),
                ("cpu.rt_runtime_us", "950"),
                ("pids.max", "64"),
                ("blkio.weight_device", "8:0 500"),
                ("blkio.throttle.read_bps_device", "8:0 1048576"),
                ("blkio.throttle.write_iops_device", "8:0 100"),
                ("hugetlb.2MB.limit_in_bytes", "2097152"),
            ]
        );
        assert_eq!(w[5].controller, "memory");
        assert_eq!(w[2].controller, "devices");
        assert_eq!(
            w[15].if_absent,
            IfAbsent::Use("blkio.bfq.weight_device".into(), "8:0 500".into())
        );
    }

    #[test]
    fn only_what_is_asked() {
        assert!(writes(&LinuxResources::default())
            .expect("empty")
            .is_empty());
        // No blkio.weight on this host: nothing blkio is written unless asked.
        let w = writes(&resources(r#"{"memory": {"limit": 1000000}}"#)).expect("valid");
        assert_eq!(pairs(&w), vec![("memory.limit_in_bytes", "1000000")]);
        // Zero means unset, as in runc.
        let w = writes(&resources(
            r#"{"cpu": {"shares": 0, "quota": 0}, "pids": {"limit": 0}}"#,
        ))
        .expect("valid");
        assert!(w.is_empty());
    }

    #[test]
    fn unlimited_values() {
        let w = writes(&resources(
            r#"{"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}}"#,
        ))
        .expect("valid");
        assert_eq!(
            pairs(&w),
            vec![
                ("memory.limit_in_bytes", "-1"),
                ("memory.memsw.limit_in_bytes", "-1"),
                ("cpu.cfs_quota_us", "-1"),
                ("pids.max", "max"),
            ]
        );
        assert_eq!(w[1].if_absent, IfAbsent::Skip);
    }

    #[test]
    fn invalid_rules_are_refused() {
        let err = writes(&resources(
            r#"{"devices": [{"allow": true, "type": "p", "access": "rwm"}]}"#,
        ))
        .expect_err("fifo");
        assert!(err.contains("FIFO"), "{err}");
        let err = writes(&resources(
            r#"{"devices": [{"allow": true, "access": "rwx"}]}"#,
        ))
        .expect_err("access");
        assert!(err.contains("rwx"), "{err}");
        let err =
            writes(&resources(r#"{"unified": {"memory.high": "1000"}}"#)).expect_err("unified");
        assert!(err.contains("v2"), "{err}");
    }

    #[test]
    fn memory_and_swap_order() {
        let r = resources(r#"{"memory": {"limit": 100, "swap": 300}}"#);
        let fresh = writes(&r).expect("valid");
        // Fresh cgroup: limit is "unlimited", so memory first, then memsw.
        let mut w = fresh.clone();
        order_memory(&mut w, Some(9223372036854771712));
        assert_eq!(w[0].file, "memory.limit_in_bytes");
        // Raising both above the current limit: memsw first.
        let mut w = fresh.clone();
        order_memory(&mut w, Some(200));
        assert_eq!(w[0].file, "memory.memsw.limit_in_bytes");
        assert_eq!(w[1].file, "memory.limit_in_bytes");
        let mut w = writes(&resources(r#"{"memory": {"limit": 100, "swap": -1}}"#)).expect("valid");
        order_memory(&mut w, None);
        assert_eq!(w[0].file, "memory.memsw.limit_in_bytes");
    }

    #[test]
    fn hugetlb_on_unified() {
        let w = FileWrite::new("hugetlb", "hugetlb.2MB.limit_in_bytes", "-1");
        let v2 = hugetlb_to_v2(&w);
        assert_eq!(
            (v2.file.as_str(), v2.value.as_str()),
            ("hugetlb.2MB.max", "max")
        );
    }
}
