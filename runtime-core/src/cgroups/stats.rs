//! Resource usage of a cgroup, in the shape of runc's `events --stats` data.
//!
//! The types serialise to the JSON that `runc events` prints under `"data"` (field names
//! and omitted zero values as runc has them), so the `youki` CLI can print them as they are
//! and the containerd shim can turn them into containerd's v1 or v2 Metrics messages.
//!
//! Reading never fails on a file that does not exist: kernels and hosts differ in which
//! files they have (no `memory.kmem.*`, no CFQ `blkio.*`, no `memory.peak`, ...), and a
//! missing file leaves its fields at zero. Files that exist but cannot be read, or hold
//! something that is not a number where a number must be, are errors naming the file.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

use super::CgroupError;

/// Nanoseconds per microsecond (v2 reports CPU times in microseconds).
const NS_PER_US: u64 = 1_000;
/// Nanoseconds per second.
const NS_PER_SEC: u64 = 1_000_000_000;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Everything known about a cgroup's resource usage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: CpuStats,
    /// cpuset configuration.
    pub cpuset: CpusetStats,
    /// Memory usage and limits.
    pub memory: MemoryStats,
    /// Number of tasks.
    pub pids: PidsStats,
    /// Block I/O.
    pub blkio: BlkioStats,
    /// Huge page usage by page size (`2MB`, `1GB`).
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

/// CPU statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuStats {
    /// CPU time used.
    pub usage: CpuUsage,
    /// CFS bandwidth throttling.
    pub throttling: Throttling,
    /// CPU pressure (v2 cpu.pressure); `None` where runc reports none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
}

/// CPU time used, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Total CPU time per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Kernel-mode time per CPU (v1 only).
    #[serde(rename = "percpu_kernel", skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// User-mode time per CPU (v1 only).
    #[serde(rename = "percpu_user", skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Kernel-mode time.
    pub kernel: u64,
    /// User-mode time.
    pub user: u64,
}

/// CFS bandwidth throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Throttling {
    /// Enforcement periods elapsed.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// cpuset configuration (what runc reports under `cpuset`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpusetStats {
    /// CPUs the cgroup may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// `cpuset.cpu_exclusive` (v1).
    pub cpu_exclusive: u64,
    /// Memory nodes the cgroup may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    /// `cpuset.mem_hardwall` (v1).
    pub mem_hardwall: u64,
    /// `cpuset.mem_exclusive` (v1).
    pub mem_exclusive: u64,
    /// `cpuset.memory_migrate` (v1).
    pub memory_migrate: u64,
    /// `cpuset.memory_spread_page` (v1).
    pub memory_spread_page: u64,
    /// `cpuset.memory_spread_slab` (v1).
    pub memory_spread_slab: u64,
    /// `cpuset.memory_pressure` (v1).
    pub memory_pressure: u64,
    /// `cpuset.sched_load_balance` (v1).
    pub sched_load_balance: u64,
    /// `cpuset.sched_relax_domain_level` (v1).
    pub sched_relax_domain_level: i64,
}

/// Usage, peak and limit of one kind of memory, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryEntry {
    /// The limit (`u64::MAX`, or v1's page-rounded huge value, when unlimited).
    pub limit: u64,
    /// Current usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// How many times the limit was hit.
    pub failcnt: u64,
}

/// Memory statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryStats {
    /// Page cache (v1 `cache`, v2 `file` of memory.stat).
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory plus swap, as v1's memsw counts it (also on v2, for comparable numbers).
    pub swap: MemoryEntry,
    /// Kernel memory (v1).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (v1).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Every counter of memory.stat.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    /// Memory pressure (v2 memory.pressure); `None` where runc reports none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
    /// Memory events (v2 memory.events; v1 only has `oom_kill`, from memory.oom_control).
    /// Not part of runc's JSON.
    #[serde(skip)]
    pub events: Option<MemoryEvents>,
}

/// Counters of v2's memory.events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    /// Reclaims below memory.low.
    pub low: u64,
    /// Throttling above memory.high.
    pub high: u64,
    /// Hits of memory.max.
    pub max: u64,
    /// Times the cgroup ran out of memory.
    pub oom: u64,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
}

/// Number of tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PidsStats {
    /// Tasks now.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// The limit; 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One block I/O counter of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioEntry {
    /// Device major number.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor number.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`, or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The counter.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Block I/O statistics, with runc's names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BlkioStats {
    /// Bytes transferred.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// I/O operations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// Queued operations (v1 CFQ).
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// Service time (v1 CFQ).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// Wait time (v1 CFQ).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// Merged operations (v1 CFQ).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// Device time (v1 CFQ).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    /// Sectors transferred (v1 CFQ).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
    /// I/O pressure (v2 io.pressure); `None` where runc reports none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<PsiStats>,
}

/// Huge page usage of one page size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HugetlbStats {
    /// Bytes in use.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak bytes in use (v1).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Allocations refused by the limit.
    pub failcnt: u64,
}

/// Pressure stall information of one resource, from v2's `cpu.pressure`,
/// `memory.pressure` or `io.pressure`, in runc's JSON shape (`{"some": {...}, "full":
/// {...}}`, runc 1.2+'s `PSIStats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsiStats {
    /// Time in which at least one task was stalled on the resource.
    pub some: PsiData,
    /// Time in which every non-idle task was stalled on it at once. `None` where the file
    /// has no `full` line (cpu.pressure before Linux 5.13), which containerd's v2 Metrics
    /// leave out too; runc's JSON still has it, as zeros (Go's `omitempty` never omits a
    /// struct).
    #[serde(serialize_with = "full_or_zeros")]
    pub full: Option<PsiData>,
}

/// One line (`some` or `full`) of a pressure file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsiData {
    /// Percentage of the last 10 seconds stalled.
    #[serde(serialize_with = "go_float")]
    pub avg10: f64,
    /// Percentage of the last 60 seconds stalled.
    #[serde(serialize_with = "go_float")]
    pub avg60: f64,
    /// Percentage of the last 300 seconds stalled.
    #[serde(serialize_with = "go_float")]
    pub avg300: f64,
    /// Total time stalled, in microseconds.
    pub total: u64,
}

fn full_or_zeros<S: Serializer>(full: &Option<PsiData>, s: S) -> Result<S::Ok, S::Error> {
    full.unwrap_or_default().serialize(s)
}

/// A float as Go's encoding/json writes it, so that our output is runc's byte for byte:
/// integral values without a fraction (`0`, where serde_json would write `0.0`); others
/// in the shortest form that reads back the same, which both sides use.
fn go_float<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    // Below 2^53 every integral f64 is an exact i64.
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

// ---------------------------------------------------------------------------
// Reading files

/// Reads `dir/file`; `None` if the kernel does not offer it.
fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(dir.join(file)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if absent(&e) => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: dir.to_path_buf(),
            file: file.to_string(),
            source,
        }),
    }
}

/// An error that means "this kernel or cgroup has no such file or feature".
fn absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(
            e.raw_os_error(),
            Some(libc::ENOTSUP | libc::ENODEV | libc::ENXIO)
        )
}

/// A pressure file of `dir`, read as runc 1.2+ reads it (`fs2/psi.go`): `None` when it
/// does not exist (kernel before 4.20, no CONFIG_PSI, `psi=0`, or PSI turned off for the
/// cgroup by `cgroup.pressure` 0) or when reading it fails with EOPNOTSUPP (kernels built
/// with CONFIG_PSI_DEFAULT_DISABLED that want `psi=1`); any other error is an error, unlike
/// [`read_opt`], which also takes ENODEV and ENXIO for "absent".
fn read_psi(dir: &Path, file: &str) -> Result<Option<PsiStats>, CgroupError> {
    let err = |source| CgroupError::Read {
        path: dir.to_path_buf(),
        file: file.to_string(),
        source,
    };
    let mut f = match std::fs::File::open(dir.join(file)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let mut text = String::new();
    match f.read_to_string(&mut text) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(None),
        Err(e) => return Err(err(e)),
    }
    parse_psi(&text)
        .map(Some)
        .map_err(|bad| parse_err(dir, file, bad))
}

fn parse_err(dir: &Path, file: &str, content: &str) -> CgroupError {
    CgroupError::Parse {
        path: dir.to_path_buf(),
        file: file.to_string(),
        content: content.trim().to_string(),
    }
}

/// A single-number file; `max` (v2's "no limit") reads as `u64::MAX`. 0 if absent.
fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    match read_opt(dir, file)? {
        None => Ok(0),
        Some(text) => parse_u64(&text).ok_or_else(|| parse_err(dir, file, &text)),
    }
}

/// A single-number file as a signed value. 0 if absent.
fn read_i64(dir: &Path, file: &str) -> Result<i64, CgroupError> {
    match read_opt(dir, file)? {
        None => Ok(0),
        Some(text) => text.trim().parse().map_err(|_| parse_err(dir, file, &text)),
    }
}

/// A flat-keyed file (`key value` lines). Empty if absent.
fn read_keyed(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>, CgroupError> {
    Ok(read_opt(dir, file)?
        .map(|t| parse_keyed(&t))
        .unwrap_or_default())
}

/// `42`, or `max`.
pub(crate) fn parse_u64(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => Some(u64::MAX),
        t => t.parse().ok(),
    }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events, cpuacct.stat, ...). Lines that
/// are not a key and one number are skipped: kernels add fields over time.
pub(crate) fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v, None) = (it.next()?, it.next()?, it.next()) else {
                return None;
            };
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Space-separated numbers (cpuacct.usage_percpu).
pub(crate) fn parse_list(text: &str) -> Option<Vec<u64>> {
    text.split_whitespace().map(|s| s.parse().ok()).collect()
}

/// cpuacct.usage_all: a `cpu user system` header, then one row per CPU.
/// Returns (per-CPU kernel, per-CPU user).
pub(crate) fn parse_usage_all(text: &str) -> Option<(Vec<u64>, Vec<u64>)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let user_col = header.iter().position(|h| *h == "user")?;
    let sys_col = header.iter().position(|h| *h == "system")?;
    let (mut kernel, mut user) = (Vec::new(), Vec::new());
    for l in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split_whitespace().collect();
        user.push(f.get(user_col)?.parse().ok()?);
        kernel.push(f.get(sys_col)?.parse().ok()?);
    }
    Some((kernel, user))
}

/// A cpuset list (`0-3,8,10-11`) as the numbers in it.
pub(crate) fn parse_cpuset_list(text: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// A `major:minor`.
fn parse_dev(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A v1 blkio statistics file: `8:0 Read 4096` lines (or `8:0 4096` for files without
/// operations), and a final `Total N` line, which is dropped.
pub(crate) fn parse_blkio_v1(text: &str) -> Option<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let entry = match f.as_slice() {
            [] | ["Total", _] => continue,
            [dev, value] => {
                let (major, minor) = parse_dev(dev)?;
                BlkioEntry {
                    major,
                    minor,
                    op: String::new(),
                    value: value.parse().ok()?,
                }
            }
            [dev, op, value] => {
                let (major, minor) = parse_dev(dev)?;
                BlkioEntry {
                    major,
                    minor,
                    op: op.to_string(),
                    value: value.parse().ok()?,
                }
            }
            _ => return None,
        };
        out.push(entry);
    }
    Some(out)
}

/// v2 io.stat (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`) as runc reports it:
/// bytes and operations, Read and Write, per device.
pub(crate) fn parse_io_stat(text: &str) -> BlkioStats {
    let mut s = BlkioStats::default();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((major, minor)) = f.next().and_then(parse_dev) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut s.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.io_service_bytes_recursive, "Write"),
                "rios" => (&mut s.io_serviced_recursive, "Read"),
                "wios" => (&mut s.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    s
}

/// A pressure file: a `some` line and (except cpu.pressure before Linux 5.13) a `full`
/// line, each `avg10=0.12 avg60=0.05 avg300=0.01 total=12345` (percentages, µs). Strict
/// where runc is lenient (it takes a missing field as 0 and any float Go parses), as a
/// wrong file must not pass for zeros; but, as runc, it skips lines and fields of other
/// names, which later kernels may add. `Err` holds the part that is wrong.
pub(crate) fn parse_psi(text: &str) -> Result<PsiStats, &str> {
    let (mut some, mut full) = (None, None);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        if slot.is_some() {
            return Err(line);
        }
        *slot = Some(parse_psi_data(line, fields)?);
    }
    Ok(PsiStats {
        some: some.ok_or(text)?,
        full,
    })
}

/// The `key=value` fields of one pressure line; every one of the four must be there once.
fn parse_psi_data<'a>(
    line: &'a str,
    fields: impl Iterator<Item = &'a str>,
) -> Result<PsiData, &'a str> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields {
        let (key, value) = field.split_once('=').ok_or(field)?;
        let avg = match key {
            "avg10" => &mut avg10,
            "avg60" => &mut avg60,
            "avg300" => &mut avg300,
            "total" => {
                let t = Some(value)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or(field)?;
                if total.replace(t).is_some() {
                    return Err(field);
                }
                continue;
            }
            _ => continue,
        };
        let a = parse_percentage(value).ok_or(field)?;
        if avg.replace(a).is_some() {
            return Err(field);
        }
    }
    Ok(PsiData {
        avg10: avg10.ok_or(line)?,
        avg60: avg60.ok_or(line)?,
        avg300: avg300.ok_or(line)?,
        total: total.ok_or(line)?,
    })
}

/// `12.34` as the kernel prints averages (`%lu.%02lu`): digits, optionally a point and
/// more digits. Not `inf`, `nan`, `-1`, `1e3` or `.5`, which `f64::from_str` would take.
fn parse_percentage(v: &str) -> Option<f64> {
    let (int, frac) = v.split_once('.').unwrap_or((v, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(int) && digits(frac)) {
        return None;
    }
    v.parse().ok()
}

/// The page sizes named by files `hugetlb.<size>.<suffix>` in `dir`, sorted.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut sizes: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
                    (!size.contains('.')).then(|| size.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes
}

// ---------------------------------------------------------------------------
// v1

/// Clock ticks per second, the unit of cpuacct.stat.
fn clock_ticks() -> u64 {
    crate::syscall::clock_ticks().unwrap_or(100)
}

/// The statistics of a v1 cgroup. `dir(controller)` is the cgroup's directory in the
/// hierarchy of that controller, if the host has it; `unified` its directory in a hybrid
/// host's cgroup2 hierarchy, if it has one (hugetlb lives there on such hosts).
pub(crate) fn v1(
    dir: impl Fn(&str) -> Option<PathBuf>,
    unified: Option<PathBuf>,
) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();

    if let Some(d) = dir("cpuacct") {
        let u = &mut s.cpu.usage;
        u.total = read_u64(&d, "cpuacct.usage")?;
        if let Some(t) = read_opt(&d, "cpuacct.usage_percpu")? {
            u.percpu = parse_list(&t).ok_or_else(|| parse_err(&d, "cpuacct.usage_percpu", &t))?;
        }
        if let Some(t) = read_opt(&d, "cpuacct.usage_all")? {
            (u.percpu_kernel, u.percpu_user) =
                parse_usage_all(&t).ok_or_else(|| parse_err(&d, "cpuacct.usage_all", &t))?;
        }
        let ticks = read_keyed(&d, "cpuacct.stat")?;
        let ns = |v: u64| v.saturating_mul(NS_PER_SEC) / clock_ticks();
        u.user = ticks.get("user").copied().map(ns).unwrap_or(0);
        u.kernel = ticks.get("system").copied().map(ns).unwrap_or(0);
    }
    if let Some(d) = dir("cpu") {
        let st = read_keyed(&d, "cpu.stat")?;
        let get = |k: &str| st.get(k).copied().unwrap_or(0);
        s.cpu.throttling = Throttling {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: get("throttled_time"),
        };
    }

    if let Some(d) = dir("cpuset") {
        let c = &mut s.cpuset;
        for (file, list) in [("cpuset.cpus", &mut c.cpus), ("cpuset.mems", &mut c.mems)] {
            if let Some(t) = read_opt(&d, file)? {
                *list = parse_cpuset_list(&t).ok_or_else(|| parse_err(&d, file, &t))?;
            }
        }
        c.cpu_exclusive = read_u64(&d, "cpuset.cpu_exclusive")?;
        c.mem_exclusive = read_u64(&d, "cpuset.mem_exclusive")?;
        c.mem_hardwall = read_u64(&d, "cpuset.mem_hardwall")?;
        c.memory_migrate = read_u64(&d, "cpuset.memory_migrate")?;
        c.memory_spread_page = read_u64(&d, "cpuset.memory_spread_page")?;
        c.memory_spread_slab = read_u64(&d, "cpuset.memory_spread_slab")?;
        c.memory_pressure = read_u64(&d, "cpuset.memory_pressure")?;
        c.sched_load_balance = read_u64(&d, "cpuset.sched_load_balance")?;
        c.sched_relax_domain_level = read_i64(&d, "cpuset.sched_relax_domain_level")?;
    }

    if let Some(d) = dir("memory") {
        let m = &mut s.memory;
        let entry = |prefix: &str| -> Result<MemoryEntry, CgroupError> {
            Ok(MemoryEntry {
                limit: read_u64(&d, &format!("{prefix}.limit_in_bytes"))?,
                usage: read_u64(&d, &format!("{prefix}.usage_in_bytes"))?,
                max: read_u64(&d, &format!("{prefix}.max_usage_in_bytes"))?,
                failcnt: read_u64(&d, &format!("{prefix}.failcnt"))?,
            })
        };
        m.usage = entry("memory")?;
        m.swap = entry("memory.memsw")?;
        m.kernel = entry("memory.kmem")?;
        m.kernel_tcp = entry("memory.kmem.tcp")?;
        m.raw = read_keyed(&d, "memory.stat")?;
        m.cache = m.raw.get("cache").copied().unwrap_or(0);
        if let Some(t) = read_opt(&d, "memory.oom_control")? {
            if let Some(n) = parse_keyed(&t).get("oom_kill") {
                m.events = Some(MemoryEvents {
                    oom_kill: *n,
                    ..Default::default()
                });
            }
        }
    }

    if let Some(d) = dir("pids") {
        pids(&d, &mut s.pids)?;
    }

    if let Some(d) = dir("blkio") {
        s.blkio = blkio_v1(&d)?;
    }

    // No PSI on v1, nor from a hybrid host's unified hierarchy, though it has pressure
    // files: runc's v1 driver reads none, and `events --stats` matches runc.
    match dir("hugetlb") {
        Some(d) => {
            for size in hugetlb_sizes(&d, ".usage_in_bytes") {
                let f = |what: &str| format!("hugetlb.{size}.{what}");
                let h = HugetlbStats {
                    usage: read_u64(&d, &f("usage_in_bytes"))?,
                    max: read_u64(&d, &f("max_usage_in_bytes"))?,
                    failcnt: read_u64(&d, &f("failcnt"))?,
                };
                s.hugetlb.insert(size, h);
            }
        }
        None => {
            if let Some(u) = unified {
                s.hugetlb = hugetlb_v2(&u)?;
            }
        }
    }
    Ok(s)
}

fn pids(d: &Path, p: &mut PidsStats) -> Result<(), CgroupError> {
    p.current = read_u64(d, "pids.current")?;
    p.limit = match read_u64(d, "pids.max")? {
        u64::MAX => 0,
        l => l,
    };
    Ok(())
}

/// v1 blkio: CFQ's files when it is the scheduler, else BFQ's, else the throttling
/// policy's, which count I/O under any scheduler.
fn blkio_v1(d: &Path) -> Result<BlkioStats, CgroupError> {
    let read = |file: &str| -> Result<Option<Vec<BlkioEntry>>, CgroupError> {
        match read_opt(d, file)? {
            None => Ok(None),
            Some(t) => parse_blkio_v1(&t)
                .map(Some)
                .ok_or_else(|| parse_err(d, file, &t)),
        }
    };
    let nonempty = |v: Option<Vec<BlkioEntry>>| v.filter(|v| !v.is_empty());
    let mut s = BlkioStats::default();
    if let Some(serviced) = nonempty(read("blkio.io_serviced_recursive")?) {
        s.io_serviced_recursive = serviced;
        s.io_service_bytes_recursive =
            read("blkio.io_service_bytes_recursive")?.unwrap_or_default();
        s.io_queued_recursive = read("blkio.io_queued_recursive")?.unwrap_or_default();
        s.io_service_time_recursive = read("blkio.io_service_time_recursive")?.unwrap_or_default();
        s.io_wait_time_recursive = read("blkio.io_wait_time_recursive")?.unwrap_or_default();
        s.io_merged_recursive = read("blkio.io_merged_recursive")?.unwrap_or_default();
        s.io_time_recursive = read("blkio.time_recursive")?.unwrap_or_default();
        s.sectors_recursive = read("blkio.sectors_recursive")?.unwrap_or_default();
        return Ok(s);
    }
    if let Some(serviced) = nonempty(read("blkio.bfq.io_serviced_recursive")?) {
        s.io_serviced_recursive = serviced;
        s.io_service_bytes_recursive =
            read("blkio.bfq.io_service_bytes_recursive")?.unwrap_or_default();
        return Ok(s);
    }
    s.io_service_bytes_recursive = match read("blkio.throttle.io_service_bytes_recursive")? {
        Some(v) => v,
        None => read("blkio.throttle.io_service_bytes")?.unwrap_or_default(),
    };
    s.io_serviced_recursive = match read("blkio.throttle.io_serviced_recursive")? {
        Some(v) => v,
        None => read("blkio.throttle.io_serviced")?.unwrap_or_default(),
    };
    Ok(s)
}

// ---------------------------------------------------------------------------
// v2

fn hugetlb_v2(d: &Path) -> Result<BTreeMap<String, HugetlbStats>, CgroupError> {
    let mut out = BTreeMap::new();
    for size in hugetlb_sizes(d, ".current") {
        let events = read_keyed(d, &format!("hugetlb.{size}.events"))?;
        let h = HugetlbStats {
            usage: read_u64(d, &format!("hugetlb.{size}.current"))?,
            max: 0,
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        out.insert(size, h);
    }
    Ok(out)
}

/// The statistics of the v2 cgroup at `d`.
pub(crate) fn v2(d: &Path) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();

    let cpu = read_keyed(d, "cpu.stat")?;
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(NS_PER_US);
    s.cpu.usage.total = us("usage_usec");
    s.cpu.usage.user = us("user_usec");
    s.cpu.usage.kernel = us("system_usec");
    s.cpu.throttling = Throttling {
        periods: cpu.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
        throttled_time: us("throttled_usec"),
    };

    for (file, list) in [
        ("cpuset.cpus.effective", &mut s.cpuset.cpus),
        ("cpuset.mems.effective", &mut s.cpuset.mems),
    ] {
        if let Some(t) = read_opt(d, file)? {
            *list = parse_cpuset_list(&t).ok_or_else(|| parse_err(d, file, &t))?;
        }
    }

    let m = &mut s.memory;
    let events = read_opt(d, "memory.events")?.map(|t| parse_keyed(&t));
    m.usage = MemoryEntry {
        limit: read_u64(d, "memory.max")?,
        usage: read_u64(d, "memory.current")?,
        max: read_u64(d, "memory.peak")?,
        failcnt: events
            .as_ref()
            .and_then(|e| e.get("max").copied())
            .unwrap_or(0),
    };
    if read_opt(d, "memory.swap.current")?.is_some() {
        // memory+swap, as v1's memsw, so that numbers compare across versions.
        m.swap = MemoryEntry {
            limit: match read_u64(d, "memory.swap.max")? {
                u64::MAX => u64::MAX,
                l => l.saturating_add(m.usage.limit),
            },
            usage: read_u64(d, "memory.swap.current")?.saturating_add(m.usage.usage),
            max: 0,
            failcnt: read_keyed(d, "memory.swap.events")?
                .get("max")
                .copied()
                .unwrap_or(0),
        };
    }
    m.raw = read_keyed(d, "memory.stat")?;
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    m.events = events.map(|e| {
        let get = |k: &str| e.get(k).copied().unwrap_or(0);
        MemoryEvents {
            low: get("low"),
            high: get("high"),
            max: get("max"),
            oom: get("oom"),
            oom_kill: get("oom_kill"),
        }
    });

    pids(d, &mut s.pids)?;
    if let Some(t) = read_opt(d, "io.stat")? {
        s.blkio = parse_io_stat(&t);
    }

    // PSI (Linux 4.20+), where runc 1.2+ puts it: cpu, memory and blkio. Present even when
    // the controllers are not enabled, as the kernel shows these files in every cgroup.
    s.cpu.psi = read_psi(d, "cpu.pressure")?;
    s.memory.psi = read_psi(d, "memory.pressure")?;
    s.blkio.psi = read_psi(d, "io.pressure")?;

    s.hugetlb = hugetlb_v2(d)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn keyed_and_numbers() {
        let m = parse_keyed("cache 4096\nrss 8192\nbogus line here\nnoval\nneg -1\n");
        assert_eq!(m.get("cache"), Some(&4096));
        assert_eq!(m.get("rss"), Some(&8192));
        assert_eq!(m.len(), 2);
        assert_eq!(parse_u64("max\n"), Some(u64::MAX));
        assert_eq!(parse_u64(" 12\n"), Some(12));
        assert_eq!(parse_u64("x"), None);
        assert_eq!(parse_list("1 2 3 \n"), Some(vec![1, 2, 3]));
        assert_eq!(parse_list("1 x"), None);
        assert_eq!(
            parse_cpuset_list("0-2,5,7-8\n"),
            Some(vec![0, 1, 2, 5, 7, 8])
        );
        assert_eq!(parse_cpuset_list("\n"), Some(vec![]));
        assert_eq!(parse_cpuset_list("3-1"), None);
    }

    #[test]
    fn usage_all() {
        let t = "cpu user system\n0 100 10\n1 200 20\n";
        assert_eq!(parse_usage_all(t), Some((vec![10, 20], vec![100, 200])));
        assert_eq!(parse_usage_all("cpu user\n0 1\n"), None);
    }

    #[test]
    fn blkio_v1_lines() {
        let t = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\n253:1 Read 1\nTotal 12289\n";
        let e = parse_blkio_v1(t).expect("valid");
        assert_eq!(e.len(), 5);
        assert_eq!(
            e[1],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 8192
            }
        );
        assert_eq!(e[4].major, 253);
        let sectors = parse_blkio_v1("8:0 42\n").expect("valid");
        assert_eq!(sectors[0].op, "");
        assert_eq!(sectors[0].value, 42);
        assert_eq!(parse_blkio_v1("Total 0\n"), Some(vec![]));
        assert_eq!(parse_blkio_v1("8-0 Read 1\n"), None);
    }

    #[test]
    fn io_stat_v2() {
        let s = parse_io_stat("8:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n");
        assert_eq!(s.io_service_bytes_recursive.len(), 2);
        assert_eq!(s.io_service_bytes_recursive[0].op, "Read");
        assert_eq!(s.io_service_bytes_recursive[1].value, 200);
        assert_eq!(s.io_serviced_recursive[1].value, 4);
        assert!(s.io_queued_recursive.is_empty());
    }

    /// io.pressure of a cgroup on this host (Linux 6.1+ format, both lines busy).
    const IO_PRESSURE: &str = "some avg10=0.03 avg60=0.91 avg300=1.27 total=8131741\n\
                               full avg10=0.02 avg60=0.27 avg300=0.38 total=3415698\n";
    /// cpu.pressure before Linux 5.13: no `full` line.
    const CPU_PRESSURE_OLD: &str = "some avg10=6.13 avg60=13.28 avg300=13.07 total=66238677\n";

    #[test]
    fn psi_both_lines() {
        let p = parse_psi(IO_PRESSURE).expect("valid");
        assert_eq!(
            p.some,
            PsiData {
                avg10: 0.03,
                avg60: 0.91,
                avg300: 1.27,
                total: 8_131_741
            }
        );
        assert_eq!(
            p.full,
            Some(PsiData {
                avg10: 0.02,
                avg60: 0.27,
                avg300: 0.38,
                total: 3_415_698
            })
        );
        // A fresh cgroup's memory.pressure.
        let idle = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        let p = parse_psi(idle).expect("valid");
        assert_eq!(
            (p.some, p.full),
            (PsiData::default(), Some(PsiData::default()))
        );
    }

    #[test]
    fn psi_cpu_without_full_line() {
        let p = parse_psi(CPU_PRESSURE_OLD).expect("valid");
        assert_eq!(p.some.avg60, 13.28);
        assert_eq!(p.some.total, 66_238_677);
        assert_eq!(p.full, None);
        // runc's JSON has `full` all the same, as zeros.
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"{"some":{"avg10":6.13,"avg60":13.28,"avg300":13.07,"total":66238677},"full":{"avg10":0,"avg60":0,"avg300":0,"total":0}}"#
        );
    }

    #[test]
    fn psi_json_is_runcs_byte_for_byte() {
        let p = parse_psi(IO_PRESSURE).expect("valid");
        assert_eq!(
            serde_json::to_string(&p).expect("json"),
            r#"{"some":{"avg10":0.03,"avg60":0.91,"avg300":1.27,"total":8131741},"full":{"avg10":0.02,"avg60":0.27,"avg300":0.38,"total":3415698}}"#
        );
        // Integral averages as Go writes them: `100`, not `100.0`.
        let busy = parse_psi("some avg10=100.00 avg60=99.50 avg300=7.00 total=1\n").expect("ok");
        let j = serde_json::to_string(&busy.some).expect("json");
        assert_eq!(j, r#"{"avg10":100,"avg60":99.5,"avg300":7,"total":1}"#);
        // And it reads back, as runc's JSON does.
        let back: PsiStats =
            serde_json::from_str(&serde_json::to_string(&busy).expect("json")).expect("round trip");
        assert_eq!(back.some, busy.some);
        assert_eq!(back.full, Some(PsiData::default()));
    }

    #[test]
    fn psi_skips_what_later_kernels_may_add() {
        let t = "some avg10=1.00 avg60=2.00 avg300=3.00 total=4 avg1800=5.00\n\
                 \n\
                 partial avg10=x\n";
        let p = parse_psi(t).expect("valid");
        assert_eq!(p.some.avg300, 3.0);
        assert_eq!(p.full, None);
    }

    #[test]
    fn psi_rejects_what_the_kernel_never_writes() {
        let line = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0";
        for (text, bad) in [
            ("", ""),
            (
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            ),
            (
                "some avg10=0.00 avg60=0.00 total=0\n",
                "some avg10=0.00 avg60=0.00 total=0",
            ),
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00\n",
                "some avg10=0.00 avg60=0.00 avg300=0.00",
            ),
            (
                "some avg10=abc avg60=0.00 avg300=0.00 total=0\n",
                "avg10=abc",
            ),
            (
                "some avg10=inf avg60=0.00 avg300=0.00 total=0\n",
                "avg10=inf",
            ),
            (
                "some avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n",
                "avg10=-1.00",
            ),
            (
                "some avg10=1e3 avg60=0.00 avg300=0.00 total=0\n",
                "avg10=1e3",
            ),
            ("some avg10=.5 avg60=0.00 avg300=0.00 total=0\n", "avg10=.5"),
            ("some avg10=1. avg60=0.00 avg300=0.00 total=0\n", "avg10=1."),
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=+5\n",
                "total=+5",
            ),
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=1.5\n",
                "total=1.5",
            ),
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551616\n",
                "total=18446744073709551616",
            ),
            ("some avg10 avg60=0.00 avg300=0.00 total=0\n", "avg10"),
            (
                "some avg10=0.00 avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
                "avg10=0.00",
            ),
            (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0 total=0\n",
                "total=0",
            ),
            (&format!("{line}\n{line}\n"), line),
        ] {
            assert_eq!(parse_psi(text).map(|_| ()), Err(bad), "{text:?}");
        }
    }

    #[test]
    fn psi_from_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = root.path();
        write_files(
            d,
            &[
                ("cpu.pressure", CPU_PRESSURE_OLD),
                ("bad.pressure", "some avg10=x\n"),
            ],
        );
        // Absent: no PSI, not an error (kernel without CONFIG_PSI, psi=0, cgroup.pressure 0).
        assert_eq!(read_psi(d, "io.pressure").expect("absent"), None);
        let cpu = read_psi(d, "cpu.pressure").expect("read").expect("present");
        assert_eq!(cpu.some.total, 66_238_677);
        let msg = read_psi(d, "bad.pressure")
            .expect_err("garbage")
            .to_string();
        assert!(
            msg.contains("bad.pressure") && msg.contains("avg10=x"),
            "{msg}"
        );
        // A directory where the file should be: an error, as for runc, not "absent".
        fs::create_dir(d.join("odd.pressure")).expect("mkdir");
        let msg = read_psi(d, "odd.pressure")
            .expect_err("a directory")
            .to_string();
        assert!(msg.contains("odd.pressure"), "{msg}");
    }

    /// The running kernel's own pressure files (system-wide, same format as a cgroup's),
    /// when it has PSI: what the parser must take.
    #[test]
    fn psi_of_the_running_kernel() {
        let d = Path::new("/proc/pressure");
        for file in ["cpu", "memory", "io"] {
            let got = read_psi(d, file).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.is_some(), d.join(file).exists(), "{file}");
            if let Some(p) = got {
                assert!(
                    p.some.avg10 >= 0.0 && p.some.avg300 <= 100.0,
                    "{file}: {p:?}"
                );
            }
        }
    }

    fn write_files(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).expect("mkdir");
        for (f, content) in files {
            fs::write(dir.join(f), content).expect("write");
        }
    }

    /// A v1 layout in a temporary directory, with the files of this host's kernel.
    #[test]
    fn v1_from_sample_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        write_files(
            &r.join("cpuacct"),
            &[
                ("cpuacct.usage", "3000000\n"),
                ("cpuacct.usage_percpu", "1000000 2000000 \n"),
                (
                    "cpuacct.usage_all",
                    "cpu user system\n0 900000 100000\n1 1500000 500000\n",
                ),
                ("cpuacct.stat", "user 2\nsystem 1\n"),
            ],
        );
        write_files(
            &r.join("cpu"),
            &[(
                "cpu.stat",
                "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n",
            )],
        );
        write_files(
            &r.join("memory"),
            &[
                ("memory.usage_in_bytes", "1048576\n"),
                ("memory.max_usage_in_bytes", "2097152\n"),
                ("memory.limit_in_bytes", "67108864\n"),
                ("memory.failcnt", "3\n"),
                ("memory.memsw.usage_in_bytes", "1048576\n"),
                ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
                ("memory.memsw.failcnt", "0\n"),
                ("memory.stat", "cache 4096\nrss 1040384\ntotal_cache 4096\n"),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
                ),
            ],
        );
        write_files(
            &r.join("pids"),
            &[("pids.current", "2\n"), ("pids.max", "max\n")],
        );
        write_files(
            &r.join("blkio"),
            &[
                ("blkio.io_serviced_recursive", "Total 0\n"),
                (
                    "blkio.throttle.io_service_bytes_recursive",
                    "8:0 Read 512\n8:0 Total 512\nTotal 512\n",
                ),
            ],
        );
        write_files(
            &r.join("cpuset"),
            &[
                ("cpuset.cpus", "0-1\n"),
                ("cpuset.mems", "0\n"),
                ("cpuset.sched_relax_domain_level", "-1\n"),
            ],
        );
        let unified = r.join("unified");
        write_files(
            &unified,
            &[
                ("hugetlb.2MB.current", "2097152\n"),
                ("hugetlb.2MB.events", "max 1\n"),
                ("hugetlb.2MB.max", "max\n"),
            ],
        );
        let s = v1(
            |c| (c != "hugetlb" && c != "freezer").then(|| r.join(c)),
            Some(unified),
        )
        .expect("stats");
        assert_eq!(s.cpu.usage.total, 3_000_000);
        assert_eq!(s.cpu.usage.percpu, vec![1_000_000, 2_000_000]);
        assert_eq!(s.cpu.usage.percpu_kernel, vec![100_000, 500_000]);
        assert_eq!(s.cpu.usage.percpu_user, vec![900_000, 1_500_000]);
        let tick = NS_PER_SEC / clock_ticks();
        assert_eq!(s.cpu.usage.user, 2 * tick);
        assert_eq!(s.cpu.usage.kernel, tick);
        assert_eq!(s.cpu.throttling.throttled_periods, 2);
        assert_eq!(s.cpu.throttling.throttled_time, 5000);
        assert_eq!(s.memory.usage.usage, 1_048_576);
        assert_eq!(s.memory.usage.max, 2_097_152);
        assert_eq!(s.memory.usage.limit, 67_108_864);
        assert_eq!(s.memory.usage.failcnt, 3);
        assert_eq!(s.memory.swap.limit, 9_223_372_036_854_771_712);
        // No kmem files: zeros, not an error.
        assert_eq!(s.memory.kernel, MemoryEntry::default());
        assert_eq!(s.memory.cache, 4096);
        assert_eq!(s.memory.raw.get("rss"), Some(&1_040_384));
        assert_eq!(s.memory.events.map(|e| e.oom_kill), Some(1));
        assert_eq!(
            s.pids,
            PidsStats {
                current: 2,
                limit: 0
            }
        );
        // No CFQ statistics: the throttling policy's counters.
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert!(s.blkio.io_serviced_recursive.is_empty());
        assert_eq!(s.cpuset.cpus, vec![0, 1]);
        assert_eq!(s.cpuset.sched_relax_domain_level, -1);
        assert_eq!(
            s.hugetlb.get("2MB"),
            Some(&HugetlbStats {
                usage: 2_097_152,
                max: 0,
                failcnt: 1
            })
        );

        // runc's JSON names.
        let j = serde_json::to_value(&s).expect("json");
        assert_eq!(j["cpu"]["usage"]["percpu_kernel"][1], 500_000);
        assert_eq!(j["cpu"]["throttling"]["throttledPeriods"], 2);
        assert_eq!(j["memory"]["usage"]["limit"], 67_108_864);
        assert_eq!(j["memory"]["kernelTCP"]["failcnt"], 0);
        assert!(j["memory"]["kernel"].get("usage").is_none(), "{j}");
        assert!(j["memory"].get("events").is_none(), "{j}");
        for section in ["cpu", "memory", "blkio"] {
            assert!(j[section].get("psi").is_none(), "v1 has no PSI: {j}");
        }
        assert_eq!(j["pids"]["current"], 2);
        assert!(j["pids"].get("limit").is_none(), "{j}");
        assert_eq!(j["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
        assert_eq!(j["hugetlb"]["2MB"]["failcnt"], 1);
        let back: Stats = serde_json::from_value(j).expect("round trip");
        assert_eq!(back.cpu, s.cpu);
    }

    #[test]
    fn v2_from_sample_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = root.path();
        write_files(
            d,
            &[
                (
                    "cpu.stat",
                    "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\nnr_bursts 0\n",
                ),
                ("cpuset.cpus.effective", "0-1\n"),
                ("memory.current", "1048576\n"),
                ("memory.max", "max\n"),
                ("memory.events", "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n"),
                ("memory.swap.current", "4096\n"),
                ("memory.swap.max", "max\n"),
                ("memory.stat", "anon 1000\nfile 2000\n"),
                ("pids.current", "3\n"),
                ("pids.max", "10\n"),
                ("io.stat", "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n"),
                ("cpu.pressure", CPU_PRESSURE_OLD),
                (
                    "memory.pressure",
                    "some avg10=0.00 avg60=0.00 avg300=0.00 total=4764\n\
                     full avg10=0.00 avg60=0.00 avg300=0.00 total=4289\n",
                ),
                ("io.pressure", IO_PRESSURE),
            ],
        );
        let s = v2(d).expect("stats");
        assert_eq!(s.cpu.usage.total, 5_000_000);
        assert_eq!(s.cpu.usage.user, 3_000_000);
        assert_eq!(s.cpu.usage.kernel, 2_000_000);
        assert!(s.cpu.usage.percpu.is_empty());
        assert_eq!(s.cpu.throttling.throttled_time, 7_000);
        assert_eq!(s.cpuset.cpus, vec![0, 1]);
        assert_eq!(s.memory.usage.limit, u64::MAX);
        assert_eq!(s.memory.usage.usage, 1_048_576);
        // No memory.peak on this kernel.
        assert_eq!(s.memory.usage.max, 0);
        assert_eq!(s.memory.usage.failcnt, 5);
        assert_eq!(s.memory.swap.usage, 1_048_576 + 4096);
        assert_eq!(s.memory.swap.limit, u64::MAX);
        assert_eq!(s.memory.cache, 2000);
        let ev = s.memory.events.expect("events");
        assert_eq!((ev.oom, ev.oom_kill, ev.max), (2, 1, 5));
        assert_eq!(
            s.pids,
            PidsStats {
                current: 3,
                limit: 10
            }
        );
        assert_eq!(s.blkio.io_serviced_recursive[0].value, 3);
        assert!(s.hugetlb.is_empty());
        let psi = |p: &Option<PsiStats>| p.clone().expect("psi");
        assert_eq!(psi(&s.cpu.psi).some.total, 66_238_677);
        assert_eq!(psi(&s.cpu.psi).full, None);
        assert_eq!(psi(&s.memory.psi).full.map(|f| f.total), Some(4289));
        assert_eq!(psi(&s.blkio.psi).some.avg300, 1.27);

        // Where runc 1.2+ puts it: `psi` under cpu, memory and blkio, after their other
        // fields (Go writes struct fields in order).
        let j = serde_json::to_value(&s).expect("json");
        assert_eq!(j["cpu"]["psi"]["some"]["total"], 66_238_677);
        assert_eq!(j["cpu"]["psi"]["full"]["total"], 0);
        assert_eq!(j["memory"]["psi"]["full"]["total"], 4289);
        assert_eq!(j["blkio"]["psi"]["full"]["avg10"], 0.02);
        let text = serde_json::to_string(&s).expect("json");
        for after in [
            r#""throttling":{"periods":4,"throttledPeriods":1,"throttledTime":7000},"psi":{"some":{"avg10":6.13,"#,
            r#""raw":{"anon":1000,"file":2000},"psi":{"some":{"avg10":0,"avg60":0,"avg300":0,"total":4764}"#,
            r#""value":4}],"psi":{"some":{"avg10":0.03,"#,
        ] {
            assert!(text.contains(after), "{after} not in {text}");
        }

        // Without pressure files (no CONFIG_PSI, psi=0, cgroup.pressure 0): no `psi` at all.
        for f in ["cpu.pressure", "memory.pressure", "io.pressure"] {
            fs::remove_file(d.join(f)).expect("rm");
        }
        let s = v2(d).expect("stats");
        assert_eq!(
            (&s.cpu.psi, &s.memory.psi, &s.blkio.psi),
            (&None, &None, &None)
        );
        let j = serde_json::to_value(&s).expect("json");
        for section in ["cpu", "memory", "blkio"] {
            assert!(j[section].get("psi").is_none(), "{section}: {j}");
        }
    }

    #[test]
    fn unparsable_pressure_names_the_file() {
        let root = tempfile::tempdir().expect("tempdir");
        write_files(
            root.path(),
            &[(
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00\n",
            )],
        );
        let msg = v2(root.path()).expect_err("no total").to_string();
        assert!(
            msg.contains("memory.pressure") && msg.contains("avg300=0.00"),
            "{msg}"
        );
    }

    #[test]
    fn unparsable_number_names_the_file() {
        let root = tempfile::tempdir().expect("tempdir");
        write_files(root.path(), &[("pids.current", "lots\n")]);
        let err = v2(root.path()).expect_err("garbage");
        let msg = err.to_string();
        assert!(
            msg.contains("pids.current") && msg.contains("lots"),
            "{msg}"
        );
    }
}
