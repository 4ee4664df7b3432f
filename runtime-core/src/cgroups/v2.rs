//! cgroup v2: one unified hierarchy; controllers are enabled top-down via
//! `cgroup.subtree_control`.

use crate::deadline::Deadline;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::syscall::bpf::LinuxBpf;

use super::files::{self, FileWrite, IfAbsent};
use super::{
    devices, stats, CgroupError, CgroupManager, CgroupMount, FreezerState, OomWatcher, Stats,
    FREEZE_TIMEOUT,
};

/// A container's cgroup on a pure v2 host (also used for the `unified` hierarchy of a hybrid one).
#[derive(Debug)]
pub struct V2Manager {
    /// The cgroup path as given (absolute, from the hierarchy's root).
    path: PathBuf,
    /// `path` without its leading `/`.
    rel: PathBuf,
    /// Where the cgroup2 hierarchy is mounted.
    mount_point: PathBuf,
}

/// `max` for a negative ("unlimited") OCI value.
fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), with the mapping of runc 1.3 and crun
/// 1.x: a quadratic in log2(shares) that sends the v1 default 1024 to the v2 default 100
/// (the older linear mapping gave 39, so a container with default shares got less than
/// its v2 neighbours). 2 -> 1, 512 -> 59, 1024 -> 100, 262144 -> 10000.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// blkio weight (10..1000) to io.weight (1..10000), as runc converts it.
pub(crate) fn blkio_to_io_weight(weight: u16) -> u64 {
    let w = u64::from(weight.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

/// OCI swap is memory+swap (the v1 meaning); v2's memory.swap.max is swap alone.
fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, String> {
    let limit = limit.unwrap_or(0);
    match swap.unwrap_or(0) {
        // Unlimited memory without a swap value: unlimited swap too (v1 compatibility).
        0 if limit == -1 => Ok(Some("max".into())),
        0 => Ok(None),
        s if s < 0 => Ok(Some("max".into())),
        _ if limit <= 0 => Err("a swap limit needs a memory limit".into()),
        s if s < limit => Err(format!(
            "memory+swap limit {s} is below the memory limit {limit}"
        )),
        s => Ok(Some((s - limit).to_string())),
    }
}

/// The file writes that apply `r` on v2, in order; `Err` says why `r` is invalid.
pub(crate) fn writes(r: &LinuxResources) -> Result<Vec<FileWrite>, String> {
    let mut w = Vec::new();

    if let Some(cpu) = r.cpu() {
        if let Some(cpus) = cpu.cpus() {
            w.push(FileWrite::new("cpuset", "cpuset.cpus", cpus));
        }
        if let Some(mems) = cpu.mems() {
            w.push(FileWrite::new("cpuset", "cpuset.mems", mems));
        }
    }

    // Device rules are no file on v2: `V2Manager::apply` attaches their eBPF program.

    if let Some(mem) = r.memory() {
        if let Some(swap) = swap_max(mem.limit(), mem.swap())? {
            let w_swap = FileWrite::new("memory", "memory.swap.max", swap);
            // Implied (not asked for) when swap was unset: skip if swap accounting is off.
            w.push(if mem.swap().unwrap_or(0) == 0 {
                w_swap.if_absent(IfAbsent::Skip)
            } else {
                w_swap
            });
        }
        if let Some(l) = mem.limit().filter(|v| *v != 0) {
            w.push(FileWrite::new("memory", "memory.max", max_or(l)));
        }
        if let Some(res) = mem.reservation().filter(|v| *v != 0) {
            w.push(FileWrite::new("memory", "memory.low", max_or(res)));
        }
        // v2 has no per-cgroup swappiness, kernel memory limit or OOM-killer switch.
        if mem.swappiness().is_some_and(|v| v != u64::MAX) {
            log::warn!("memory.swappiness does not exist on cgroup v2: not applied");
        }
        if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
            log::warn!("kernel memory limits do not exist on cgroup v2: not applied");
        }
        if mem.disable_oom_killer() == Some(true) {
            log::warn!("disabling the OOM killer is not possible on cgroup v2: not applied");
        }
    }

    if let Some(cpu) = r.cpu() {
        if let Some(shares) = cpu.shares().filter(|v| *v != 0) {
            w.push(FileWrite::new(
                "cpu",
                "cpu.weight",
                shares_to_weight(shares),
            ));
        }
        let quota = cpu.quota().filter(|v| *v != 0);
        let period = cpu.period().filter(|v| *v != 0);
        if quota.is_some() || period.is_some() {
            // "max" keeps no quota; without a period the kernel keeps the current one.
            let mut value = match quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".to_string(),
            };
            if let Some(p) = period {
                value.push_str(&format!(" {p}"));
            }
            w.push(FileWrite::new("cpu", "cpu.max", value));
        }
        if let Some(burst) = cpu.burst() {
            w.push(FileWrite::new("cpu", "cpu.max.burst", burst));
        }
        if let Some(idle) = cpu.idle() {
            w.push(FileWrite::new("cpu", "cpu.idle", idle));
        }
        if cpu.realtime_period().is_some_and(|v| v != 0)
            || cpu.realtime_runtime().is_some_and(|v| v != 0)
        {
            return Err("realtime CPU scheduling limits do not exist on cgroup v2".into());
        }
    }

    if let Some(pids) = r.pids() {
        match pids.limit() {
            0 => {}
            l => w.push(FileWrite::new("pids", "pids.max", max_or(l))),
        }
    }

    if let Some(bio) = r.block_io() {
        // io.weight exists with the iocost controller; with BFQ the weight goes to
        // io.bfq.weight in BFQ's own range (the blkio one, unconverted).
        if let Some(weight) = bio.weight() {
            w.push(
                FileWrite::new(
                    "io",
                    "io.weight",
                    format!("default {}", blkio_to_io_weight(weight)),
                )
                .if_absent(IfAbsent::Use("io.bfq.weight".into(), weight.to_string())),
            );
        }
        if bio.leaf_weight().is_some() {
            log::warn!("blkio leaf weights do not exist on cgroup v2: not applied");
        }
        for dev in bio.weight_device().iter().flatten() {
            if let Some(weight) = dev.weight() {
                let (maj, min) = (dev.major(), dev.minor());
                w.push(
                    FileWrite::new(
                        "io",
                        "io.weight",
                        format!("{maj}:{min} {}", blkio_to_io_weight(weight)),
                    )
                    .if_absent(IfAbsent::Use(
                        "io.bfq.weight".into(),
                        format!("{maj}:{min} {weight}"),
                    )),
                );
            }
        }
        let throttles = [
            ("rbps", bio.throttle_read_bps_device()),
            ("wbps", bio.throttle_write_bps_device()),
            ("riops", bio.throttle_read_iops_device()),
            ("wiops", bio.throttle_write_iops_device()),
        ];
        for (key, devs) in throttles {
            for dev in devs.iter().flatten() {
                w.push(FileWrite::new(
                    "io",
                    "io.max",
                    format!("{}:{} {key}={}", dev.major(), dev.minor(), dev.rate()),
                ));
            }
        }
    }

    for hp in r.hugepage_limits().iter().flatten() {
        w.push(FileWrite::new(
            "hugetlb",
            format!("hugetlb.{}.max", hp.page_size()),
            max_or(hp.limit()),
        ));
    }

    if let Some(net) = r.network() {
        if net.class_id().is_some() || net.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(
                "network classID and priorities need the v1 net_cls/net_prio controllers".into(),
            );
        }
    }

    w.extend(super::rdma_writes(r));

    // Raw v2 settings last, so that they win; sorted for a reproducible order.
    if let Some(unified) = r.unified() {
        let mut keys: Vec<&String> = unified.keys().collect();
        keys.sort();
        for key in keys {
            let valid = !key.contains('/') && !key.starts_with('.') && key.contains('.');
            if !valid {
                return Err(format!("invalid linux.resources.unified key {key:?}"));
            }
            let controller = key.split('.').next().unwrap_or_default();
            let controller = if controller == "cgroup" {
                ""
            } else {
                controller
            };
            w.push(FileWrite::new(controller, key.as_str(), &unified[key]));
        }
    }
    Ok(w)
}

impl V2Manager {
    /// The manager for cgroup `path` in the cgroup2 hierarchy mounted at `mount_point`.
    pub(crate) fn new(path: &Path, mount_point: PathBuf) -> Result<Self, CgroupError> {
        Ok(Self {
            path: path.to_path_buf(),
            rel: super::relative(path)?,
            mount_point,
        })
    }

    /// The container's cgroup directory.
    pub(crate) fn dir(&self) -> PathBuf {
        self.mount_point.join(&self.rel)
    }

    /// Where the hierarchy is mounted.
    pub(crate) fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The controllers the hierarchy offers (its root's `cgroup.controllers`).
    pub(crate) fn available(&self) -> Vec<String> {
        files::read(&self.mount_point, "cgroup.controllers")
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Creates the cgroup's directories top first, enabling controllers in each parent so
    /// that the container's cgroup gets their files.
    ///
    /// `enable`: `None` enables everything available (what runc does on v2; failures are
    /// logged, and a limit that then lacks its file fails with that file named); `Some`
    /// enables exactly those and fails if one cannot be enabled.
    pub(crate) fn create_dirs(&self, enable: Option<&[&str]>) -> Result<(), CgroupError> {
        let mut parent = self.mount_point.clone();
        for dir in files::levels(&self.mount_point, &self.rel) {
            let offered = files::read(&parent, "cgroup.controllers")?;
            let active = files::read(&parent, "cgroup.subtree_control")?;
            for c in offered.split_whitespace() {
                let wanted = enable.is_none_or(|list| list.contains(&c));
                if !wanted || active.split_whitespace().any(|a| a == c) {
                    continue;
                }
                // One at a time: one controller that cannot be enabled (cpu with
                // realtime tasks around) must not keep the others off.
                if let Err(e) = files::write(&parent, "cgroup.subtree_control", &format!("+{c}")) {
                    if enable.is_some() {
                        return Err(e);
                    }
                    log::warn!("{e}");
                }
            }
            if let Some(list) = enable {
                if let Some(missing) = list
                    .iter()
                    .find(|c| !offered.split_whitespace().any(|o| o == **c))
                {
                    return Err(CgroupError::ControllerMissing {
                        path: parent.clone(),
                        controller: missing.to_string(),
                        what: format!("creating {}", self.path.display()),
                    });
                }
            }
            files::mkdir(&dir)?;
            parent = dir;
        }
        Ok(())
    }

    fn apply(&self, r: &LinuxResources, create: bool) -> Result<(), CgroupError> {
        let writes = writes(r).map_err(|reason| CgroupError::InvalidResource {
            path: self.path.clone(),
            reason,
        })?;
        // Compiled before anything is created, so that a bad rule leaves nothing behind.
        let device_program = match r.devices() {
            Some(rules) if !rules.is_empty() => Some(devices::program(rules)?),
            _ => None,
        };
        if create {
            self.create_dirs(None)?;
        }
        let dir = self.dir();
        for w in &writes {
            w.apply(&dir)?;
        }
        if let Some(insns) = device_program {
            // Before any process joins: the container never runs unrestricted.
            match devices::attach(&LinuxBpf, &dir, &insns) {
                // As runc: a runtime in a user namespace cannot use bpf(2), and its
                // containers cannot open the host's device nodes anyway.
                Err(e) if devices::in_user_namespace() => {
                    log::warn!("{e} (ignored in a user namespace)");
                }
                r => r?,
            }
        }
        Ok(())
    }

    /// Every process in the cgroup and below.
    pub(crate) fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        files::procs_tree(&self.dir())
    }

    /// Reads `frozen` from `cgroup.events`.
    fn frozen(&self, dir: &Path) -> Result<bool, CgroupError> {
        let events = files::read(dir, "cgroup.events")?;
        Ok(events
            .lines()
            .any(|l| l.split_whitespace().eq(["frozen", "1"])))
    }

    /// Writes `cgroup.freeze` and waits for `cgroup.events` to agree.
    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let dir = self.dir();
        files::write(&dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
        // The kernel freezes asynchronously; `frozen 1` is the only proof.
        if files::poll(FREEZE_TIMEOUT, || Ok(self.frozen(&dir)? == frozen))? {
            return Ok(());
        }
        if frozen {
            // Do not leave a half-frozen container behind.
            if let Err(e) = files::write(&dir, "cgroup.freeze", "0") {
                log::warn!("thawing {} after a failed freeze: {e}", dir.display());
            }
        }
        Err(CgroupError::FreezeTimeout {
            path: dir,
            state: if frozen { "frozen 0" } else { "frozen 1" }.into(),
            expected: if frozen { "frozen 1" } else { "frozen 0" },
            waited: FREEZE_TIMEOUT,
        })
    }
}

impl CgroupManager for V2Manager {
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        let empty = LinuxResources::default();
        self.apply(resources.unwrap_or(&empty), true)
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.apply(resources, false)
    }

    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        files::write(&self.dir(), "cgroup.procs", &pid.to_string())
    }

    fn can_join_self(&self) -> bool {
        // Born in the cgroup (birth_dir), the process has nothing to join. Only when that
        // fails does it move itself, through cgroup.procs and its global lock, as its
        // parent would move it.
        true
    }

    fn birth_dir(&self) -> Option<PathBuf> {
        Some(self.dir())
    }

    fn join_self(&self, born: bool) -> Result<(), CgroupError> {
        if born {
            return Ok(());
        }
        files::write(&self.dir(), "cgroup.procs", "0")
    }

    fn pids(&self) -> Result<Vec<Pid>, CgroupError> {
        V2Manager::pids(self)
    }

    fn remove(&self) -> Result<(), CgroupError> {
        files::remove_tree(&self.dir(), Deadline::after(files::REMOVE_TIMEOUT))
    }

    fn mounts(&self) -> Vec<CgroupMount> {
        vec![CgroupMount {
            name: String::new(),
            source: self.dir(),
        }]
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        let dir = self.dir();
        let wanted = files::read(&dir, "cgroup.freeze")?.trim() == "1";
        Ok(match (wanted, self.frozen(&dir)?) {
            (_, true) => FreezerState::Frozen,
            (true, false) => FreezerState::Freezing,
            (false, false) => FreezerState::Thawed,
        })
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let dir = self.dir();
        if !dir.is_dir() {
            return Err(CgroupError::Other {
                path: self.path.clone(),
                msg: "the cgroup does not exist".into(),
            });
        }
        stats::v2(&dir)
    }

    fn oom_watcher(&self) -> Result<OomWatcher, CgroupError> {
        OomWatcher::v2(&self.dir())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

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
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 104857600, "reservation": 52428800, "swap": 209715200},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 64},
            "blockIO": {
                "weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
            "unified": {"memory.high": "90000000", "cgroup.max.depth": "3"}
        }"#,
        );
        let w = writes(&r).expect("valid");
        assert_eq!(
            pairs(&w),
            vec![
                ("cpuset.cpus", "0-1"),
                ("cpuset.mems", "0"),
                ("memory.swap.max", "104857600"),
                ("memory.max", "104857600"),
                ("memory.low", "52428800"),
                ("cpu.weight", "100"),
                ("cpu.max", "50000 100000"),
                ("pids.max", "64"),
                ("io.weight", "default 4950"),
                ("io.max", "8:0 rbps=1048576"),
                ("io.max", "8:0 wiops=100"),
                ("hugetlb.2MB.max", "2097152"),
                ("cgroup.max.depth", "3"),
                ("memory.high", "90000000"),
            ]
        );
        // Controllers to enable come from the files; cgroup core files need none.
        assert_eq!(w[12].controller, "");
        assert_eq!(w[13].controller, "memory");
        assert_eq!(
            w[8].if_absent,
            IfAbsent::Use("io.bfq.weight".into(), "500".into())
        );
    }

    #[test]
    fn unlimited_values() {
        let w = writes(&resources(
            r#"{"memory": {"limit": -1}, "cpu": {"quota": -1, "period": 50000}, "pids": {"limit": -1}}"#,
        ))
        .expect("valid");
        assert_eq!(
            pairs(&w),
            vec![
                ("memory.swap.max", "max"),
                ("memory.max", "max"),
                ("cpu.max", "max 50000"),
                ("pids.max", "max"),
            ]
        );
        // Implied, so skipped where swap accounting is off.
        assert_eq!(w[0].if_absent, IfAbsent::Skip);
        assert!(writes(&LinuxResources::default())
            .expect("empty")
            .is_empty());
    }

    #[test]
    fn conversions() {
        // runc 1.3.6's values on a v2 host.
        for (shares, weight) in [
            (2, 1),
            (3, 2),
            (512, 59),
            (1024, 100),
            (2048, 174),
            (262_143, 10_000),
            (262_144, 10_000),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(swap_max(Some(100), Some(100)), Ok(Some("0".into())));
        assert_eq!(swap_max(Some(100), None), Ok(None));
        assert!(swap_max(None, Some(100)).is_err());
        assert!(swap_max(Some(200), Some(100)).is_err());
    }

    #[test]
    fn refused_on_v2() {
        for json in [
            r#"{"cpu": {"realtimeRuntime": 950}}"#,
            r#"{"network": {"classID": 1}}"#,
            r#"{"unified": {"../memory.max": "1"}}"#,
            r#"{"memory": {"swap": 100}}"#,
        ] {
            assert!(writes(&resources(json)).is_err(), "{json}");
        }
        // Device rules are no file write (their program is attached by `apply`).
        let w = writes(&resources(
            r#"{"devices": [{"allow": false, "access": "rwm"}]}"#,
        ))
        .expect("devices");
        assert!(w.is_empty());
    }

    /// A fake cgroup2 tree in a temporary directory: creation enables controllers top-down.
    #[test]
    fn create_enables_controllers_in_parents() {
        let root = tempfile::tempdir().expect("tempdir");
        let mp = root.path().to_path_buf();
        fs::write(mp.join("cgroup.controllers"), "cpu memory pids").expect("write");
        fs::write(mp.join("cgroup.subtree_control"), "").expect("write");
        // The kernel would create these; a plain directory does not, so pre-create the level.
        fs::create_dir(mp.join("youki")).expect("mkdir");
        fs::write(mp.join("youki/cgroup.controllers"), "cpu memory pids").expect("write");
        fs::write(mp.join("youki/cgroup.subtree_control"), "").expect("write");
        let m = V2Manager::new(Path::new("/youki/c1"), mp.clone()).expect("manager");
        m.create_dirs(Some(&["memory"])).expect("create");
        assert!(mp.join("youki/c1").is_dir());
        // A plain file keeps only the last write; the kernel would accumulate them.
        assert_eq!(
            fs::read_to_string(mp.join("cgroup.subtree_control")).expect("read"),
            "+memory"
        );
        let err = m.create_dirs(Some(&["hugetlb"])).expect_err("not offered");
        assert!(err.to_string().contains("hugetlb"), "{err}");
        assert_eq!(
            m.mounts(),
            vec![CgroupMount {
                name: String::new(),
                source: mp.join("youki/c1")
            }]
        );
    }
}
