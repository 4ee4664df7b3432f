//! Unit properties: those runc gives every container scope, and `linux.resources` in the
//! properties systemd has for them (systemd.resource-control(5)).
//!
//! The resource properties are derived from the cgroup v2 file writes ([`super::super::v2`]
//! computes them), as runc maps its `unified` entries: one conversion of the OCI values
//! (shares to weight, memory+swap to swap, ...), so the properties and the files the
//! manager writes afterwards cannot disagree. Files without a property (io, hugetlb, rdma,
//! other `unified` keys) are only written.

use oci_spec::runtime::LinuxResources;

use super::super::files::FileWrite;
use super::wire::Value;

/// The CPU quota period the kernel uses when none is set, in µs.
const DEFAULT_PERIOD: u64 = 100_000;

/// A `(sv)` property.
pub(crate) fn property(name: &str, value: Value) -> Value {
    Value::Struct(vec![
        Value::Str(name.into()),
        Value::Variant(Box::new(value)),
    ])
}

/// The properties of a new scope for `pid` in `slice`, before the resources: runc's set.
pub(crate) fn scope(description: &str, slice: &str, pid: u32) -> Vec<Value> {
    vec![
        property("Description", Value::Str(description.into())),
        property("Slice", Value::Str(slice.into())),
        // The container's processes and the sub-cgroups it makes are its own.
        property("Delegate", Value::Bool(true)),
        property("PIDs", Value::Array("u".into(), vec![Value::U32(pid)])),
        property("MemoryAccounting", Value::Bool(true)),
        property("CPUAccounting", Value::Bool(true)),
        property("IOAccounting", Value::Bool(true)),
        property("TasksAccounting", Value::Bool(true)),
        // No ordering after sysinit/basic and no stop at shutdown's conflicts: a container
        // is not a system service.
        property("DefaultDependencies", Value::Bool(false)),
    ]
}

/// `r` with its CPU quota rounded up to what systemd keeps: systemd stores the quota as a
/// CPU percentage (10 ms per second granularity), so runc rounds it up and writes the
/// rounded value to cpu.max too; otherwise the file and the unit would disagree.
pub(crate) fn round_quota(r: &LinuxResources) -> LinuxResources {
    let mut r = r.clone();
    let Some(mut cpu) = r.cpu().clone() else {
        return r;
    };
    if let Some(quota) = cpu.quota().filter(|q| *q > 0) {
        let period = cpu.period().filter(|p| *p != 0).unwrap_or(DEFAULT_PERIOD);
        let exact = (quota as u64).saturating_mul(1_000_000) / period;
        let per_sec = per_second(quota as u64, period);
        if per_sec != exact {
            cpu.set_quota(Some((per_sec.saturating_mul(period) / 1_000_000) as i64));
            r.set_cpu(Some(cpu));
        }
    }
    r
}

/// A quota per `period` µs as µs per second, rounded up to a multiple of 10 ms.
fn per_second(quota: u64, period: u64) -> u64 {
    let per_sec = quota.saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000).saturating_mul(10_000)
}

/// The properties for the cgroup v2 file writes `writes`; writes without one are left out.
pub(crate) fn resources(writes: &[FileWrite]) -> Result<Vec<Value>, String> {
    let mut props = Vec::new();
    for w in writes {
        let value = w.value.trim();
        let bad = |why: &str| format!("{} = {value:?}: {why}", w.file);
        // "max" is systemd's infinity (u64::MAX) in every limit below.
        let limit = || -> Result<u64, String> {
            match value {
                "max" => Ok(u64::MAX),
                v => v.parse().map_err(|_| bad("not a number or \"max\"")),
            }
        };
        match w.file.as_str() {
            "memory.max" => props.push(property("MemoryMax", Value::U64(limit()?))),
            "memory.low" => props.push(property("MemoryLow", Value::U64(limit()?))),
            "memory.high" => props.push(property("MemoryHigh", Value::U64(limit()?))),
            "memory.min" => props.push(property("MemoryMin", Value::U64(limit()?))),
            "memory.swap.max" => props.push(property("MemorySwapMax", Value::U64(limit()?))),
            // systemd refuses 0 tasks; the kernel's 0 lets none start either way but
            // one, as runc sends it.
            "pids.max" => props.push(property("TasksMax", Value::U64(limit()?.max(1)))),
            "cpu.weight" => props.push(property("CPUWeight", Value::U64(limit()?))),
            "cpu.max" => {
                let mut it = value.split_whitespace();
                let quota = it.next().ok_or_else(|| bad("empty"))?;
                let period = match it.next() {
                    Some(p) => {
                        let p: u64 = p.parse().map_err(|_| bad("period is not a number"))?;
                        props.push(property("CPUQuotaPeriodUSec", Value::U64(p)));
                        p
                    }
                    None => DEFAULT_PERIOD,
                };
                if period == 0 {
                    return Err(bad("period 0"));
                }
                let per_sec = match quota {
                    "max" => u64::MAX,
                    q => per_second(q.parse().map_err(|_| bad("quota is not a number"))?, period),
                };
                props.push(property("CPUQuotaPerSecUSec", Value::U64(per_sec)));
            }
            "cpuset.cpus" => props.push(property(
                "AllowedCPUs",
                bitmask(value).map_err(|e| bad(&e))?,
            )),
            "cpuset.mems" => props.push(property(
                "AllowedMemoryNodes",
                bitmask(value).map_err(|e| bad(&e))?,
            )),
            _ => {}
        }
    }
    Ok(props)
}

/// A cpu or node list (`0-3,8`) as systemd's `ay` bitmask: bit `n % 8` of byte `n / 8`.
fn bitmask(list: &str) -> Result<Value, String> {
    // Far above any real machine; keeps a typo from allocating gigabytes.
    const MAX: usize = 1 << 16;
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let num = |s: &str| -> Result<usize, String> {
            s.trim()
                .parse()
                .ok()
                .filter(|n| *n < MAX)
                .ok_or_else(|| format!("{part:?} is not a number or a range"))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(format!("range {part:?} is reversed"));
        }
        for n in lo..=hi {
            if bytes.len() <= n / 8 {
                bytes.resize(n / 8 + 1, 0);
            }
            bytes[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(Value::Array(
        "y".into(),
        bytes.into_iter().map(Value::Byte).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::super::v2;
    use super::*;

    fn props(json: &str) -> Vec<(String, Value)> {
        let r: LinuxResources = serde_json::from_str(json).expect("resources");
        let writes = v2::writes(&round_quota(&r)).expect("writes");
        resources(&writes)
            .expect("properties")
            .into_iter()
            .map(|p| match p {
                Value::Struct(mut f) => match (f.remove(0), f.remove(0)) {
                    (Value::Str(n), Value::Variant(v)) => (n, *v),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn u(name: &str, v: u64) -> (String, Value) {
        (name.to_string(), Value::U64(v))
    }

    #[test]
    fn limits_become_properties() {
        assert_eq!(
            props(
                r#"{"memory": {"limit": 104857600, "reservation": 52428800},
                    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3", "mems": "0"},
                    "pids": {"limit": 64},
                    "blockIO": {"weight": 500},
                    "unified": {"memory.high": "90000000", "io.max": "8:0 rbps=1"}}"#
            ),
            vec![
                (
                    "AllowedCPUs".to_string(),
                    Value::Array("y".into(), vec![Value::Byte(0b1011)])
                ),
                (
                    "AllowedMemoryNodes".to_string(),
                    Value::Array("y".into(), vec![Value::Byte(1)])
                ),
                u("MemoryMax", 104857600),
                u("MemoryLow", 52428800),
                u("CPUWeight", 100),
                u("CPUQuotaPeriodUSec", 100000),
                u("CPUQuotaPerSecUSec", 500000),
                u("TasksMax", 64),
                // io.weight and io.max have no property here: written as files only.
                u("MemoryHigh", 90000000),
            ]
        );
    }

    #[test]
    fn unlimited_is_infinity() {
        assert_eq!(
            props(r#"{"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}}"#),
            vec![
                u("MemorySwapMax", u64::MAX),
                u("MemoryMax", u64::MAX),
                u("CPUQuotaPerSecUSec", u64::MAX),
                u("TasksMax", u64::MAX),
            ]
        );
        assert!(props("{}").is_empty());
    }

    /// runc's rounding: 33333 µs per 100 ms is 33.333% of a CPU, which systemd keeps as 34%;
    /// the file gets 34000 too.
    #[test]
    fn quota_rounds_up_to_what_systemd_keeps() {
        let r: LinuxResources =
            serde_json::from_str(r#"{"cpu": {"quota": 33333, "period": 100000}}"#).expect("json");
        let rounded = round_quota(&r);
        assert_eq!(rounded.cpu().as_ref().and_then(|c| c.quota()), Some(34000));
        assert_eq!(
            props(r#"{"cpu": {"quota": 33333, "period": 100000}}"#),
            vec![
                u("CPUQuotaPeriodUSec", 100000),
                u("CPUQuotaPerSecUSec", 340000)
            ]
        );
        // Already a whole percentage: unchanged, and no period means the kernel's default.
        let r: LinuxResources = serde_json::from_str(r#"{"cpu": {"quota": 20000}}"#).expect("json");
        assert_eq!(round_quota(&r), r);
        assert_eq!(
            props(r#"{"cpu": {"quota": 20000}}"#),
            vec![u("CPUQuotaPerSecUSec", 200000)]
        );
    }

    #[test]
    fn bitmasks() {
        let bytes = |list| match bitmask(list).expect(list) {
            Value::Array(_, b) => b
                .into_iter()
                .map(|v| match v {
                    Value::Byte(b) => b,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<u8>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(bytes("0"), [1]);
        assert_eq!(bytes("0-7,9"), [0xff, 2]);
        assert_eq!(bytes(" 12 "), [0, 0x10]);
        assert!(bytes("").is_empty());
        for bad in ["3-1", "x", "1-", "99999999"] {
            assert!(bitmask(bad).is_err(), "{bad}");
        }
    }
}
