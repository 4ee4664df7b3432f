//! Commands on a container's resources: pause, resume, ps, events, update.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use runtime_core::cgroups::Stats;
use runtime_core::container::{Container, Event};
use runtime_core::state::Store;
use serde_json::{json, Value};

use crate::cli::{ListFormat, UpdateArgs};

/// `pause`: of a created container too, as runc's.
pub fn pause(store: &Store, id: &str) -> Result<()> {
    Ok(Container::load(store, id)?.pause_created_too()?)
}

/// `resume`.
pub fn resume(store: &Store, id: &str) -> Result<()> {
    Ok(Container::load(store, id)?.resume()?)
}

/// `ps`: the container's processes, as pids (json) or as `ps`'s own table, filtered.
pub fn ps(store: &Store, id: &str, format: ListFormat, ps_args: &[String]) -> Result<()> {
    let pids: Vec<i32> = Container::load(store, id)?
        .pids()?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let default = ["-ef".to_string()];
    let args = if ps_args.is_empty() {
        &default[..]
    } else {
        ps_args
    };
    let out = std::process::Command::new("ps")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running ps (Debian package procps)")?;
    if !out.status.success() {
        bail!("ps {} failed: {}", args.join(" "), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let wanted: HashSet<i32> = pids.into_iter().collect();
    print!("{}", filter_ps(&text, &wanted)?);
    Ok(())
}

/// ps's header, then the lines whose PID column names a process of `pids`.
fn filter_ps(text: &str, pids: &HashSet<i32>) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|f| f == "PID") else {
        bail!(
            "no PID column in the output of ps (header: {header:?}): pass ps options that show it"
        );
    };
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// One event as runc prints it, fields in runc's order.
#[derive(serde::Serialize)]
struct EventJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Stats>,
}

/// Prints one event as runc does: a JSON object on a line of its own.
fn print_event(out: &mut impl Write, id: &str, ev: &Event) -> std::io::Result<()> {
    let e = match ev {
        Event::Stats(s) => EventJson {
            kind: "stats",
            id,
            data: Some(s),
        },
        Event::Oom => EventJson {
            kind: "oom",
            id,
            data: None,
        },
    };
    // One write(2) per line, as runc writes it: through stdout's 1 KiB buffer a stats
    // event of a v2 cgroup (memory.stat and PSI: over 1 KiB) would reach a file in pieces,
    // and a reader following it would see half a line.
    let mut line = serde_json::to_vec(&e)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// `events`: the statistics once (`--stats`), or a stream of statistics and OOM events
/// until the container stops.
pub fn events(store: &Store, id: &str, stats: bool, interval: &str) -> Result<()> {
    let interval = parse_interval(interval).context("--interval")?;
    let mut stdout = std::io::stdout().lock();
    let mut c = Container::load(store, id)?;
    if stats {
        let s = c.stats()?;
        return match print_event(&mut stdout, id, &Event::Stats(Box::new(s))) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(e).context("writing the statistics")
            }
            _ => Ok(()),
        };
    }
    let mut write_error = None;
    c.events(interval, |ev| match print_event(&mut stdout, id, &ev) {
        Ok(()) => true,
        Err(e) => {
            write_error = Some(e);
            false
        }
    })?;
    match write_error {
        // Whoever read the stream went away: nothing left to do.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Some(e) => Err(e).context("writing events"),
        None => Ok(()),
    }
}

/// `update`: the limits from `--resources` (a file, or `-` for stdin), else from the flags.
pub fn update(store: &Store, args: &UpdateArgs) -> Result<()> {
    let r = match &args.resources {
        Some(path) => {
            let (what, text) = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading --resources from stdin")?;
                ("stdin".to_string(), s)
            } else {
                let s = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --resources {}", path.display()))?;
                (path.display().to_string(), s)
            };
            serde_json::from_str::<LinuxResources>(&text).map_err(|e| {
                anyhow::anyhow!(
                    "--resources: {what} is not OCI LinuxResources JSON: {}",
                    super::json_error(text.as_bytes(), &e)
                )
            })?
        }
        None => resources_from_flags(args)?,
    };
    Ok(Container::load(store, &args.id)?.update(&r)?)
}

/// The LinuxResources that runc's individual `update` flags describe.
fn resources_from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut v = json!({});
    let mut set = |path: [&str; 2], value: Value| v[path[0]][path[1]] = value;
    let mem = |flag: &str, s: &Option<String>| -> Result<Option<i64>> {
        s.as_deref()
            .map(|s| parse_memory(s).with_context(|| format!("--{flag} {s:?}")))
            .transpose()
    };
    if let Some(m) = mem("memory", &a.memory)? {
        set(["memory", "limit"], m.into());
    }
    if let Some(m) = mem("memory-reservation", &a.memory_reservation)? {
        set(["memory", "reservation"], m.into());
    }
    if let Some(m) = mem("memory-swap", &a.memory_swap)? {
        set(["memory", "swap"], m.into());
    }
    if let Some(q) = a.cpu_quota {
        set(["cpu", "quota"], q.into());
    }
    if let Some(p) = a.cpu_period {
        set(["cpu", "period"], p.into());
    }
    if let Some(s) = a.cpu_shares {
        set(["cpu", "shares"], s.into());
    }
    if let Some(p) = a.cpu_rt_period {
        set(["cpu", "realtimePeriod"], p.into());
    }
    if let Some(r) = a.cpu_rt_runtime {
        set(["cpu", "realtimeRuntime"], r.into());
    }
    if let Some(c) = &a.cpuset_cpus {
        set(["cpu", "cpus"], c.as_str().into());
    }
    if let Some(m) = &a.cpuset_mems {
        set(["cpu", "mems"], m.as_str().into());
    }
    if let Some(p) = a.pids_limit {
        set(["pids", "limit"], p.into());
    }
    if let Some(w) = a.blkio_weight {
        if !(10..=1000).contains(&w) {
            bail!("--blkio-weight {w}: the weight must be between 10 and 1000");
        }
        set(["blockIO", "weight"], w.into());
    }
    if v.as_object().is_some_and(|o| o.is_empty()) {
        bail!("nothing to update: give --resources or at least one limit flag (see --help)");
    }
    serde_json::from_value(v).context("building linux.resources from the flags")
}

/// A memory size as runc takes it: bytes, or a number with a binary suffix (`k`, `m`, `g`,
/// `t`, `p`, optionally followed by `b` or `ib`, any case: `64m`, `1.5GiB`, `512KB`); `-1`
/// means unlimited.
pub fn parse_memory(s: &str) -> Result<i64> {
    let s = s.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    // One optional space, then k/m/g/t/p, then an optional `i`, then an optional `b`.
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = match unit.strip_suffix('i') {
        Some(u) if !u.is_empty() => u,
        _ => unit,
    };
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => bail!(
            "invalid size {s:?}: expected a number of bytes with an optional k, m, g, t or p suffix"
        ),
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        bail!("invalid size {s:?}: expected a number of bytes");
    }
    let bytes = if num.contains('.') {
        let f: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
        f * (1u64 << shift) as f64
    } else {
        let n: u64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
        n.checked_mul(1u64 << shift)
            .filter(|b| *b <= i64::MAX as u64)
            .with_context(|| format!("size {s:?} is too large"))? as f64
    };
    if bytes > i64::MAX as f64 {
        bail!("size {s:?} is too large");
    }
    Ok(bytes as i64)
}

/// A duration as Go writes them, which is what runc's `--interval` takes: one or more
/// number-unit pairs (`5s`, `500ms`, `1m30s`, `1.5h`; units ns, us, µs, ms, s, m, h).
/// Must be greater than zero.
pub fn parse_interval(s: &str) -> Result<Duration> {
    let text = s.trim();
    if text.is_empty() {
        bail!("empty duration; expected e.g. 5s, 500ms or 1m");
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(n_end);
        let u_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u_end);
        let n: f64 = num
            .parse()
            .ok()
            .filter(|_| !num.is_empty())
            .with_context(|| format!("invalid duration {text:?}"))?;
        let secs_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => bail!("missing unit in duration {text:?}; expected e.g. 5s, 500ms or 1m"),
            u => bail!("unknown unit {u:?} in duration {text:?} (ns, us, ms, s, m, h)"),
        };
        total += n * secs_per_unit;
        rest = tail;
    }
    if total <= 0.0 || !total.is_finite() {
        bail!("duration {text:?} must be greater than 0");
    }
    Duration::try_from_secs_f64(total).with_context(|| format!("duration {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        for (s, want) in [
            ("0", 0),
            ("4096", 4096),
            ("64m", 64 << 20),
            ("64M", 64 << 20),
            ("64mb", 64 << 20),
            ("64MiB", 64 << 20),
            ("512k", 512 << 10),
            ("512KB", 512 << 10),
            ("1g", 1 << 30),
            ("2T", 2 << 40),
            ("1.5g", 3 << 29),
            ("10 m", 10 << 20),
            ("100b", 100),
            ("-1", -1),
        ] {
            assert_eq!(parse_memory(s).expect(s), want, "{s}");
        }
        for bad in [
            "",
            "m",
            "-2",
            "12x",
            "1.2.3m",
            "1..m",
            "64mm",
            "ib",
            "5i",
            "99999999999999g",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn intervals() {
        for (s, want) in [
            ("5s", Duration::from_secs(5)),
            ("500ms", Duration::from_millis(500)),
            ("1m", Duration::from_secs(60)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("2h", Duration::from_secs(7200)),
            ("250us", Duration::from_micros(250)),
        ] {
            assert_eq!(parse_interval(s).expect(s), want, "{s}");
        }
        for bad in ["", "5", "0s", "s", "5x", "-1s", "1.s5", "5 s"] {
            assert!(parse_interval(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ps_filtering() {
        let text = "\
UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root        4242       1  0 10:01 ?        00:00:00 sleep 100
root        4243    4242  0 10:01 ?        00:00:00 sh -c x 4242
";
        let pids: HashSet<i32> = [4242, 4243].into_iter().collect();
        let out = filter_ps(text, &pids).expect("filter");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("UID"));
        assert!(lines[1].contains("sleep 100"));
        // `ps -o pid,comm` puts PID first.
        let out = filter_ps("  PID COMMAND\n 4243 sh\n   77 bash\n", &pids).expect("filter");
        assert_eq!(out, "  PID COMMAND\n 4243 sh\n");
        assert!(filter_ps("USER COMMAND\nroot sh\n", &pids).is_err());
    }

    /// `events --stats` on a v2 host with PSI: `psi` under cpu, memory and blkio as runc
    /// 1.2+ prints it (types/events.go), `full` included even where the file has none.
    /// A writer that keeps each write call apart.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An event is one write, whatever its size: a reader following the output never sees
    /// half a line (v2 stats, with memory.stat and PSI, are over 1 KiB).
    #[test]
    fn a_large_event_is_one_write() {
        let mut s = Stats::default();
        for i in 0..100 {
            s.memory.raw.insert(format!("counter_{i}"), i);
        }
        let mut out = Writes::default();
        print_event(&mut out, "c1", &Event::Stats(Box::new(s))).expect("print");
        assert_eq!(out.0.len(), 1, "{} writes", out.0.len());
        assert!(out.0[0].len() > 1024 && out.0[0].ends_with(b"}\n"));
    }

    #[test]
    fn stats_event_carries_psi_as_runc() {
        use runtime_core::cgroups::stats::{PsiData, PsiStats};
        let psi = |avg10: f64, total: u64, full: Option<PsiData>| {
            Some(PsiStats {
                some: PsiData {
                    avg10,
                    total,
                    ..Default::default()
                },
                full,
            })
        };
        let mut s = Stats::default();
        s.cpu.psi = psi(1.5, 42, None);
        s.memory.psi = psi(0.0, 7, Some(PsiData::default()));
        s.blkio.psi = psi(
            12.25,
            9,
            Some(PsiData {
                avg300: 3.0,
                total: 8,
                ..Default::default()
            }),
        );
        let mut out = Vec::new();
        print_event(&mut out, "c1", &Event::Stats(Box::new(s))).expect("print");
        let line = String::from_utf8(out).expect("utf-8");
        let zeros = r#"{"avg10":0,"avg60":0,"avg300":0,"total":0}"#;
        for part in [
            format!(
                r#""cpu":{{"usage":{{"kernel":0,"user":0}},"throttling":{{}},"psi":{{"some":{{"avg10":1.5,"avg60":0,"avg300":0,"total":42}},"full":{zeros}}}}}"#
            ),
            format!(
                r#""kernelTCP":{{"limit":0,"failcnt":0}},"psi":{{"some":{{"avg10":0,"avg60":0,"avg300":0,"total":7}},"full":{zeros}}}}}"#
            ),
            r#""blkio":{"psi":{"some":{"avg10":12.25,"avg60":0,"avg300":0,"total":9},"full":{"avg10":0,"avg60":0,"avg300":3,"total":8}}}"#
                .to_string(),
        ] {
            assert!(line.contains(&part), "{part}\nnot in\n{line}");
        }
        assert!(
            line.starts_with(r#"{"type":"stats","id":"c1","data":{"#),
            "{line}"
        );

        // v1 and hybrid hosts: no `psi` at all, as runc's v1 driver.
        let mut out = Vec::new();
        print_event(&mut out, "c1", &Event::Stats(Box::default())).expect("print");
        let line = String::from_utf8(out).expect("utf-8");
        assert!(!line.contains("psi"), "{line}");
    }

    #[test]
    fn flags_to_resources() {
        let a = UpdateArgs {
            id: "c".into(),
            resources: None,
            memory: Some("64m".into()),
            memory_reservation: None,
            memory_swap: Some("-1".into()),
            cpu_quota: Some(50000),
            cpu_period: None,
            cpu_shares: None,
            cpu_rt_period: None,
            cpu_rt_runtime: None,
            cpuset_cpus: Some("0".into()),
            cpuset_mems: None,
            pids_limit: Some(5),
            blkio_weight: None,
        };
        let r = resources_from_flags(&a).expect("resources");
        let mem = r.memory().as_ref().expect("memory");
        assert_eq!(mem.limit(), Some(64 << 20));
        assert_eq!(mem.swap(), Some(-1));
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(5));
        let cpu = r.cpu().as_ref().expect("cpu");
        assert_eq!(cpu.quota(), Some(50000));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert!(r.block_io().is_none());

        let none = UpdateArgs {
            memory: None,
            memory_swap: None,
            cpu_quota: None,
            cpuset_cpus: None,
            pids_limit: None,
            ..a
        };
        assert!(resources_from_flags(&none).is_err());
        let bad = UpdateArgs {
            blkio_weight: Some(5),
            ..none
        };
        assert!(resources_from_flags(&bad).is_err());
    }
}
