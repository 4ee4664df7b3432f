//! Stats: runtime-core's cgroup statistics as the Metrics message containerd decodes, the
//! one of the host's cgroup mode, as containerd's runc shim answers:
//!
//! - `io.containerd.cgroups.v1.Metrics` on v1 and hybrid hosts (containerd/cgroups'
//!   `stats/v1/metrics.proto`): memory.stat keys by their v1 names, CPU times in ns;
//! - `io.containerd.cgroups.v2.Metrics` on pure v2 hosts (`cgroup2/stats/metrics.proto`):
//!   memory.stat keys by their v2 names, CPU times in µs, io.stat per device.
//!
//! v2 carries pressure stall information (PSI) where the host has it: containerd-shim-protos
//! 0.11's `io.containerd.cgroups.v2` has containerd/cgroups' `PSIStats` under cpu, memory
//! and io, which we fill as containerd's runc shim does (containerd/cgroups'
//! `getStatPSIFromFile`): absent when the kernel has no pressure files, `full` absent when
//! the file has no `full` line. v1 Metrics have no PSI fields, and v1 hosts no PSI.
//!
//! `ctr task metrics` prints from these (v1: memory usage and limit, `total_cache`, CPU
//! total and per-CPU usage, pids; v2: the same from the v2 fields), so the messages that
//! it dereferences (memory with its usage entry, cpu with its usage) are always present.

use std::collections::BTreeMap;
use std::path::Path;

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::MessageField;
use runtime_core::cgroups::stats::{BlkioEntry, MemoryEntry, PsiData, PsiStats};
use runtime_core::cgroups::Stats;

use crate::error::Result;
use crate::typeurl;

/// The protobuf name of containerd's cgroups v1 metrics.
pub const V1_METRICS: &str = "io.containerd.cgroups.v1.Metrics";
/// The protobuf name of containerd's cgroups v2 metrics.
pub const V2_METRICS: &str = "io.containerd.cgroups.v2.Metrics";

/// Whether this host runs pure cgroup v2 (`/sys/fs/cgroup` is a cgroup2 mount), which is
/// when containerd expects v2 metrics.
pub fn unified_host() -> bool {
    nix::sys::statfs::statfs(Path::new("/sys/fs/cgroup"))
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The Metrics Any for this host.
pub fn to_any(stats: &Stats, unified: bool) -> Result<Any> {
    if unified {
        typeurl::message(V2_METRICS, &to_v2(stats))
    } else {
        typeurl::message(V1_METRICS, &to_v1(stats))
    }
}

fn raw(m: &BTreeMap<String, u64>, key: &str) -> u64 {
    m.get(key).copied().unwrap_or(0)
}

fn v1_entry(e: &MemoryEntry) -> MessageField<v1::MemoryEntry> {
    MessageField::some(v1::MemoryEntry {
        limit: e.limit,
        usage: e.usage,
        max: e.max,
        failcnt: e.failcnt,
        ..Default::default()
    })
}

fn v1_blkio(entries: &[BlkioEntry]) -> Vec<v1::BlkIOEntry> {
    entries
        .iter()
        .map(|e| v1::BlkIOEntry {
            op: e.op.clone(),
            major: e.major,
            minor: e.minor,
            value: e.value,
            ..Default::default()
        })
        .collect()
}

/// containerd's v1 Metrics.
pub fn to_v1(s: &Stats) -> v1::Metrics {
    let r = &s.memory.raw;
    let memory = v1::MemoryStat {
        cache: raw(r, "cache"),
        rss: raw(r, "rss"),
        rss_huge: raw(r, "rss_huge"),
        mapped_file: raw(r, "mapped_file"),
        dirty: raw(r, "dirty"),
        writeback: raw(r, "writeback"),
        pg_pg_in: raw(r, "pgpgin"),
        pg_pg_out: raw(r, "pgpgout"),
        pg_fault: raw(r, "pgfault"),
        pg_maj_fault: raw(r, "pgmajfault"),
        inactive_anon: raw(r, "inactive_anon"),
        active_anon: raw(r, "active_anon"),
        inactive_file: raw(r, "inactive_file"),
        active_file: raw(r, "active_file"),
        unevictable: raw(r, "unevictable"),
        hierarchical_memory_limit: raw(r, "hierarchical_memory_limit"),
        hierarchical_swap_limit: raw(r, "hierarchical_memsw_limit"),
        total_cache: raw(r, "total_cache"),
        total_rss: raw(r, "total_rss"),
        total_rss_huge: raw(r, "total_rss_huge"),
        total_mapped_file: raw(r, "total_mapped_file"),
        total_dirty: raw(r, "total_dirty"),
        total_writeback: raw(r, "total_writeback"),
        total_pg_pg_in: raw(r, "total_pgpgin"),
        total_pg_pg_out: raw(r, "total_pgpgout"),
        total_pg_fault: raw(r, "total_pgfault"),
        total_pg_maj_fault: raw(r, "total_pgmajfault"),
        total_inactive_anon: raw(r, "total_inactive_anon"),
        total_active_anon: raw(r, "total_active_anon"),
        total_inactive_file: raw(r, "total_inactive_file"),
        total_active_file: raw(r, "total_active_file"),
        total_unevictable: raw(r, "total_unevictable"),
        usage: v1_entry(&s.memory.usage),
        swap: v1_entry(&s.memory.swap),
        kernel: v1_entry(&s.memory.kernel),
        kernel_tcp: v1_entry(&s.memory.kernel_tcp),
        ..Default::default()
    };
    let u = &s.cpu.usage;
    let t = &s.cpu.throttling;
    let b = &s.blkio;
    v1::Metrics {
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v1::HugetlbStat {
                usage: h.usage,
                max: h.max,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        pids: MessageField::some(v1::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v1::CPUStat {
            usage: MessageField::some(v1::CPUUsage {
                total: u.total,
                kernel: u.kernel,
                user: u.user,
                per_cpu: u.percpu.clone(),
                ..Default::default()
            }),
            throttling: MessageField::some(v1::Throttle {
                periods: t.periods,
                throttled_periods: t.throttled_periods,
                throttled_time: t.throttled_time,
                ..Default::default()
            }),
            ..Default::default()
        }),
        memory: MessageField::some(memory),
        blkio: MessageField::some(v1::BlkIOStat {
            io_service_bytes_recursive: v1_blkio(&b.io_service_bytes_recursive),
            io_serviced_recursive: v1_blkio(&b.io_serviced_recursive),
            io_queued_recursive: v1_blkio(&b.io_queued_recursive),
            io_service_time_recursive: v1_blkio(&b.io_service_time_recursive),
            io_wait_time_recursive: v1_blkio(&b.io_wait_time_recursive),
            io_merged_recursive: v1_blkio(&b.io_merged_recursive),
            io_time_recursive: v1_blkio(&b.io_time_recursive),
            sectors_recursive: v1_blkio(&b.sectors_recursive),
            ..Default::default()
        }),
        memory_oom_control: s
            .memory
            .events
            .map(|e| v1::MemoryOomControl {
                oom_kill: e.oom_kill,
                ..Default::default()
            })
            .into(),
        ..Default::default()
    }
}

/// v2's io.stat per device, from runtime-core's runc-shaped Read/Write entries.
fn v2_io(s: &Stats) -> Vec<v2::IOEntry> {
    let mut by_dev: BTreeMap<(u64, u64), v2::IOEntry> = BTreeMap::new();
    let lists = [
        (&s.blkio.io_service_bytes_recursive, true),
        (&s.blkio.io_serviced_recursive, false),
    ];
    for (list, bytes) in lists {
        for e in list {
            let d = by_dev
                .entry((e.major, e.minor))
                .or_insert_with(|| v2::IOEntry {
                    major: e.major,
                    minor: e.minor,
                    ..Default::default()
                });
            match (e.op.as_str(), bytes) {
                ("Read", true) => d.rbytes = e.value,
                ("Write", true) => d.wbytes = e.value,
                ("Read", false) => d.rios = e.value,
                ("Write", false) => d.wios = e.value,
                _ => {}
            }
        }
    }
    by_dev.into_values().collect()
}

fn v2_psi_data(d: &PsiData) -> v2::PSIData {
    v2::PSIData {
        avg10: d.avg10,
        avg60: d.avg60,
        avg300: d.avg300,
        total: d.total,
        ..Default::default()
    }
}

/// A pressure file's figures; unset where runtime-core found no file.
fn v2_psi(p: &Option<PsiStats>) -> MessageField<v2::PSIStats> {
    p.as_ref()
        .map(|p| v2::PSIStats {
            some: MessageField::some(v2_psi_data(&p.some)),
            full: p.full.as_ref().map(v2_psi_data).into(),
            ..Default::default()
        })
        .into()
}

/// containerd's v2 Metrics.
pub fn to_v2(s: &Stats) -> v2::Metrics {
    let r = &s.memory.raw;
    let m = &s.memory;
    // runtime-core reports v2 swap as memory+swap, like v1's memsw; containerd wants
    // memory.swap.current and memory.swap.max themselves.
    let (swap_usage, swap_limit) = if m.swap == MemoryEntry::default() {
        (0, 0)
    } else {
        let limit = match m.swap.limit {
            u64::MAX => u64::MAX,
            l => l.saturating_sub(m.usage.limit),
        };
        (m.swap.usage.saturating_sub(m.usage.usage), limit)
    };
    let memory = v2::MemoryStat {
        anon: raw(r, "anon"),
        file: raw(r, "file"),
        kernel_stack: raw(r, "kernel_stack"),
        slab: raw(r, "slab"),
        sock: raw(r, "sock"),
        shmem: raw(r, "shmem"),
        file_mapped: raw(r, "file_mapped"),
        file_dirty: raw(r, "file_dirty"),
        file_writeback: raw(r, "file_writeback"),
        anon_thp: raw(r, "anon_thp"),
        inactive_anon: raw(r, "inactive_anon"),
        active_anon: raw(r, "active_anon"),
        inactive_file: raw(r, "inactive_file"),
        active_file: raw(r, "active_file"),
        unevictable: raw(r, "unevictable"),
        slab_reclaimable: raw(r, "slab_reclaimable"),
        slab_unreclaimable: raw(r, "slab_unreclaimable"),
        pgfault: raw(r, "pgfault"),
        pgmajfault: raw(r, "pgmajfault"),
        workingset_refault: raw(r, "workingset_refault"),
        workingset_activate: raw(r, "workingset_activate"),
        workingset_nodereclaim: raw(r, "workingset_nodereclaim"),
        pgrefill: raw(r, "pgrefill"),
        pgscan: raw(r, "pgscan"),
        pgsteal: raw(r, "pgsteal"),
        pgactivate: raw(r, "pgactivate"),
        pgdeactivate: raw(r, "pgdeactivate"),
        pglazyfree: raw(r, "pglazyfree"),
        pglazyfreed: raw(r, "pglazyfreed"),
        thp_fault_alloc: raw(r, "thp_fault_alloc"),
        thp_collapse_alloc: raw(r, "thp_collapse_alloc"),
        usage: m.usage.usage,
        usage_limit: m.usage.limit,
        swap_usage,
        swap_limit,
        max_usage: m.usage.max,
        psi: v2_psi(&m.psi),
        ..Default::default()
    };
    let u = &s.cpu.usage;
    let t = &s.cpu.throttling;
    v2::Metrics {
        pids: MessageField::some(v2::PidsStat {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        }),
        cpu: MessageField::some(v2::CPUStat {
            usage_usec: u.total / 1000,
            user_usec: u.user / 1000,
            system_usec: u.kernel / 1000,
            nr_periods: t.periods,
            nr_throttled: t.throttled_periods,
            throttled_usec: t.throttled_time / 1000,
            psi: v2_psi(&s.cpu.psi),
            ..Default::default()
        }),
        memory: MessageField::some(memory),
        io: MessageField::some(v2::IOStat {
            usage: v2_io(s),
            psi: v2_psi(&s.blkio.psi),
            ..Default::default()
        }),
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| v2::HugeTlbStat {
                current: h.usage,
                max: h.max,
                pagesize: size.clone(),
                failcnt: h.failcnt,
                ..Default::default()
            })
            .collect(),
        memory_events: m
            .events
            .map(|e| v2::MemoryEvents {
                low: e.low,
                high: e.high,
                max: e.max,
                oom: e.oom,
                oom_kill: e.oom_kill,
                ..Default::default()
            })
            .into(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::{Message, MessageFull};
    use runtime_core::cgroups::stats::{HugetlbStats, MemoryEvents};

    fn sample() -> Stats {
        let mut s = Stats::default();
        s.cpu.usage.total = 5_000_000;
        s.cpu.usage.user = 3_000_000;
        s.cpu.usage.kernel = 2_000_000;
        s.cpu.usage.percpu = vec![4_000_000, 1_000_000];
        s.cpu.throttling.periods = 7;
        s.cpu.throttling.throttled_periods = 2;
        s.cpu.throttling.throttled_time = 9_000;
        s.memory.usage = MemoryEntry {
            limit: 64 << 20,
            usage: 1 << 20,
            max: 2 << 20,
            failcnt: 3,
        };
        s.pids.current = 4;
        s.pids.limit = 100;
        s.hugetlb.insert(
            "2MB".into(),
            HugetlbStats {
                usage: 2 << 20,
                max: 4 << 20,
                failcnt: 1,
            },
        );
        s.blkio.io_service_bytes_recursive = vec![
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096,
            },
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 8192,
            },
        ];
        s.blkio.io_serviced_recursive = vec![BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 1,
        }];
        s
    }

    #[test]
    fn names_are_the_protobuf_full_names() {
        assert_eq!(V1_METRICS, v1::Metrics::descriptor().full_name());
        assert_eq!(V2_METRICS, v2::Metrics::descriptor().full_name());
    }

    #[test]
    fn v1_metrics_carry_what_ctr_prints() {
        let mut s = sample();
        for (k, v) in [
            ("cache", 10),
            ("total_cache", 11),
            ("rss", 12),
            ("pgpgin", 13),
        ] {
            s.memory.raw.insert(k.into(), v);
        }
        s.memory.events = Some(MemoryEvents {
            oom_kill: 2,
            ..Default::default()
        });
        let m = to_v1(&s);
        let mem = m.memory.as_ref().unwrap();
        assert_eq!(mem.usage.usage, 1 << 20);
        assert_eq!(mem.usage.limit, 64 << 20);
        assert_eq!(mem.usage.max, 2 << 20);
        assert_eq!(mem.total_cache, 11);
        assert_eq!((mem.cache, mem.rss, mem.pg_pg_in), (10, 12, 13));
        let cpu = m.cpu.as_ref().unwrap();
        assert_eq!(cpu.usage.total, 5_000_000);
        assert_eq!(cpu.usage.per_cpu, vec![4_000_000, 1_000_000]);
        assert_eq!(cpu.usage.kernel, 2_000_000);
        assert_eq!(cpu.throttling.throttled_periods, 2);
        assert_eq!((m.pids.current, m.pids.limit), (4, 100));
        assert_eq!(m.hugetlb[0].pagesize, "2MB");
        assert_eq!(m.hugetlb[0].max, 4 << 20);
        assert_eq!(m.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(m.memory_oom_control.oom_kill, 2);
        // It survives the wire.
        let any = to_any(&s, false).unwrap();
        assert_eq!(any.type_url, V1_METRICS);
        assert_eq!(v1::Metrics::parse_from_bytes(&any.value).unwrap(), m);
    }

    #[test]
    fn v2_metrics_use_v2_units_and_names() {
        let mut s = sample();
        for (k, v) in [("anon", 20), ("file", 21), ("pgfault", 22)] {
            s.memory.raw.insert(k.into(), v);
        }
        // runtime-core's memory+swap view: 1 MiB of memory, 4 KiB of swap.
        s.memory.swap = MemoryEntry {
            limit: u64::MAX,
            usage: (1 << 20) + 4096,
            max: 0,
            failcnt: 0,
        };
        s.memory.events = Some(MemoryEvents {
            max: 5,
            oom: 2,
            oom_kill: 1,
            ..Default::default()
        });
        let m = to_v2(&s);
        let cpu = m.cpu.as_ref().unwrap();
        assert_eq!(
            (cpu.usage_usec, cpu.user_usec, cpu.system_usec),
            (5000, 3000, 2000)
        );
        assert_eq!(
            (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_usec),
            (7, 2, 9)
        );
        let mem = m.memory.as_ref().unwrap();
        assert_eq!((mem.anon, mem.file, mem.pgfault), (20, 21, 22));
        assert_eq!(
            (mem.usage, mem.usage_limit, mem.max_usage),
            (1 << 20, 64 << 20, 2 << 20)
        );
        assert_eq!((mem.swap_usage, mem.swap_limit), (4096, u64::MAX));
        assert_eq!(m.memory_events.oom_kill, 1);
        assert_eq!(m.memory_events.max, 5);
        assert_eq!(m.io.usage.len(), 1);
        let io = &m.io.usage[0];
        assert_eq!(
            (io.major, io.rbytes, io.wbytes, io.rios, io.wios),
            (8, 4096, 8192, 1, 0)
        );
        assert_eq!(m.hugetlb[0].current, 2 << 20);
        assert!(m.cpu.psi.is_none() && m.memory.psi.is_none() && m.io.psi.is_none());
        let any = to_any(&s, true).unwrap();
        assert_eq!(any.type_url, V2_METRICS);
        assert_eq!(v2::Metrics::parse_from_bytes(&any.value).unwrap(), m);
    }

    #[test]
    fn v2_metrics_carry_psi() {
        let mut s = sample();
        let data = |avg10: f64, total: u64| PsiData {
            avg10,
            avg60: 0.5,
            avg300: 0.25,
            total,
        };
        // cpu.pressure before Linux 5.13: only `some`.
        s.cpu.psi = Some(PsiStats {
            some: data(6.13, 66_238_677),
            full: None,
        });
        s.memory.psi = Some(PsiStats {
            some: data(0.0, 4764),
            full: Some(data(0.0, 4289)),
        });
        s.blkio.psi = Some(PsiStats {
            some: data(0.03, 8_131_741),
            full: Some(data(0.02, 3_415_698)),
        });
        let m = to_v2(&s);
        let cpu = m.cpu.psi.as_ref().unwrap();
        assert_eq!(
            (
                cpu.some.avg10,
                cpu.some.avg60,
                cpu.some.avg300,
                cpu.some.total
            ),
            (6.13, 0.5, 0.25, 66_238_677)
        );
        assert!(cpu.full.is_none(), "no full line, no full message");
        assert_eq!(m.memory.psi.full.total, 4289);
        assert_eq!(m.io.psi.some.avg10, 0.03);
        assert_eq!(m.io.psi.full.total, 3_415_698);
        // v1 Metrics have nowhere to put it; v2's survive the wire.
        let any = to_any(&s, true).unwrap();
        assert_eq!(v2::Metrics::parse_from_bytes(&any.value).unwrap(), m);
    }

    #[test]
    fn empty_stats_still_have_what_ctr_dereferences() {
        let m = to_v1(&Stats::default());
        assert!(m.memory.is_some() && m.memory.usage.is_some());
        assert!(m.cpu.is_some() && m.cpu.usage.is_some());
        let m = to_v2(&Stats::default());
        assert!(m.memory.is_some() && m.cpu.is_some() && m.pids.is_some());
        assert_eq!(m.memory.swap_limit, 0);
    }
}
