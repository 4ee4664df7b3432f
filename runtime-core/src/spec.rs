//! Loading and validating a bundle's `config.json`.
//!
//! Rules come from the OCI runtime spec (config.md, config-linux.md); where the spec leaves a
//! choice, runc's validator is followed so that configs written for runc behave the same.
//! Things the spec says to warn about (relative mount destinations, unknown capabilities) are
//! warnings, not errors: they are logged and returned by the `*_with_warnings` functions.
//!
//! Errors name the offending field in config.json's own spelling, e.g.
//! `linux.namespaces[2]: duplicate namespace type "pid"`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, Hook, LinuxDeviceType, LinuxIdMapping, LinuxNamespace, LinuxNamespaceType,
    LinuxResources, Spec,
};
use serde_json::Value;

/// The configuration file's name inside a bundle.
pub const CONFIG_FILE: &str = "config.json";

/// Why a bundle's configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The bundle directory cannot be accessed (usually: it does not exist).
    #[error("bundle {}: {source}", .path.display())]
    Bundle {
        /// The bundle path as given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The bundle path exists but is not a directory.
    #[error("bundle {}: not a directory", .path.display())]
    BundleNotDirectory {
        /// The bundle path as given.
        path: PathBuf,
    },
    /// The bundle has no config.json.
    #[error("{}: not found (an OCI bundle must contain {CONFIG_FILE})", .path.display())]
    ConfigNotFound {
        /// Where config.json was expected.
        path: PathBuf,
    },
    /// config.json exists but cannot be read.
    #[error("reading {}: {source}", .path.display())]
    Read {
        /// The config.json path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// config.json is not JSON at all (the message carries line and column).
    #[error("{}: malformed JSON: {source}", .path.display())]
    Malformed {
        /// The config.json path.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// config.json is JSON but does not fit the schema (wrong type, missing required field).
    #[error("{}: {}{source}", .path.display(), field_prefix(.field))]
    Schema {
        /// The config.json path.
        path: PathBuf,
        /// The field whose value does not fit, in config.json spelling (`process.args[0]`);
        /// empty for the document itself.
        field: String,
        /// The deserializer's error, with line and column when known.
        #[source]
        source: serde_json::Error,
    },
    /// A field has a value the spec (or this runtime) does not accept.
    #[error("{}{field}: {reason}", path_prefix(.path.as_deref()))]
    Invalid {
        /// The config.json path, when the spec was loaded from a bundle.
        path: Option<PathBuf>,
        /// The field, in config.json spelling: `process.args`, `mounts[3].destination`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `root.path` does not resolve to an existing path.
    #[error("root.path: rootfs {}: {source}", .path.display())]
    Rootfs {
        /// The rootfs path (bundle-relative paths already joined).
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `root.path` resolves to something that is not a directory.
    #[error("root.path: rootfs {} is not a directory", .path.display())]
    RootfsNotDirectory {
        /// The canonical rootfs path.
        path: PathBuf,
    },
}

/// `<field>: ` before a schema error's message, nothing for the document itself.
fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// `<path>: ` before a validation message when we know which file it came from.
fn path_prefix(path: Option<&Path>) -> String {
    path.map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

impl SpecError {
    /// The offending field for validation errors (`process.args`), `None` for I/O and parse
    /// errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            SpecError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Shorthand for a validation error on `field`.
fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        path: None,
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reads `<bundle>/config.json`, checks it and returns it; warnings are logged.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let (spec, warnings) = load_with_warnings(bundle)?;
    for warning in &warnings {
        log::warn!("{}: {warning}", bundle.join(CONFIG_FILE).display());
    }
    Ok(spec)
}

/// A bundle as create, checkpoint and restore use it.
pub(crate) struct Bundle {
    /// The bundle directory, canonical.
    pub path: PathBuf,
    /// Its config, bind sources made absolute within the bundle.
    pub spec: Spec,
    /// The rootfs directory, canonical.
    pub rootfs: PathBuf,
}

/// Opens the bundle at `dir`: its config loaded and checked ([`load`]), bind sources
/// resolved in it ([`bind_sources_in_bundle`]) and its rootfs found ([`rootfs_path`]).
pub(crate) fn open_bundle(dir: &Path) -> Result<Bundle, SpecError> {
    let path = fs::canonicalize(dir).map_err(|source| SpecError::Bundle {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut spec = load(&path)?;
    bind_sources_in_bundle(&mut spec, &path);
    let rootfs = rootfs_path(&path, &spec)?;
    Ok(Bundle { path, spec, rootfs })
}

/// Like [`load`], but returns the warnings instead of logging them.
pub fn load_with_warnings(bundle: &Path) -> Result<(Spec, Vec<String>), SpecError> {
    let meta = fs::metadata(bundle).map_err(|source| SpecError::Bundle {
        path: bundle.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(SpecError::BundleNotDirectory {
            path: bundle.to_path_buf(),
        });
    }
    let path = bundle.join(CONFIG_FILE);
    let bytes = fs::read(&path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => SpecError::ConfigNotFound { path: path.clone() },
        _ => SpecError::Read {
            path: path.clone(),
            source,
        },
    })?;
    parse_config(&bytes, &path)
}

/// Parses and validates config.json's bytes; `path` is only used in messages.
fn parse_config(bytes: &[u8], path: &Path) -> Result<(Spec, Vec<String>), SpecError> {
    let with_path = |err: SpecError| match err {
        SpecError::Invalid { field, reason, .. } => SpecError::Invalid {
            path: Some(path.to_path_buf()),
            field,
            reason,
        },
        other => other,
    };

    // Syntax first, so that "not JSON" and "JSON of the wrong shape" are told apart.
    let mut raw: Value = serde_json::from_slice(bytes).map_err(|source| SpecError::Malformed {
        path: path.to_path_buf(),
        source,
    })?;
    let mut warnings = Vec::new();
    let dropped_capabilities = check_raw(&mut raw, &mut warnings)
        .map_err(|(field, reason)| with_path(invalid(field, reason)))?;

    // Deserializing from the bytes keeps line/column in schema errors; the Value is only used
    // when check_raw changed it (unknown capabilities removed, scheduler flags respelled). serde names no field, only the
    // position: the field is found from the position in the text.
    let typed = if dropped_capabilities {
        serde_json::from_value::<Spec>(raw.clone()).map_err(|source| {
            // from_value has no positions: the re-serialized document gives one to locate
            // the field by, which is not the file's (so the message keeps none).
            let text = serde_json::to_vec(&raw).unwrap_or_default();
            let field = serde_json::from_slice::<Spec>(&text)
                .err()
                .map(|e| json_field_at(&text, &e))
                .unwrap_or_default();
            (field, source)
        })
    } else {
        serde_json::from_slice::<Spec>(bytes).map_err(|e| (json_field_at(bytes, &e), e))
    };
    let spec = typed.map_err(|(field, source)| SpecError::Schema {
        path: path.to_path_buf(),
        field,
        source,
    })?;

    warnings.extend(validate_with_warnings(&spec).map_err(with_path)?);
    Ok((spec, warnings))
}

/// The field of a JSON document at which `err` (from deserializing `text`) was raised, in
/// config.json spelling: `process.args[0]`, `linux.namespaces[2].type`; empty for the
/// document itself or when the error has no position. serde_json reports only a line and
/// column, just past the offending value (or at the closing brace of an object that lacks
/// a field): the text is scanned up to there, keeping the stack of keys and indices.
pub fn json_field_at(text: &[u8], err: &serde_json::Error) -> String {
    if err.line() == 0 {
        return String::new();
    }
    // serde_json's column counts bytes from the start of the line.
    let line_start = text
        .split_inclusive(|b| *b == b'\n')
        .take(err.line() - 1)
        .map(<[u8]>::len)
        .sum::<usize>();
    let end = (line_start + err.column()).min(text.len());
    field_path(&scan_json(&text[..end]))
}

/// Where a scan of JSON text stopped: one frame per open object or array.
#[derive(Debug)]
enum Frame {
    /// An object: the key whose value is being read, once its `:` was seen.
    Object { key: Option<String>, in_value: bool },
    /// An array: the index of the element being read, once it started.
    Array { index: usize, in_value: bool },
}

/// Scans (possibly truncated) JSON text, returning the open containers at its end.
fn scan_json(text: &[u8]) -> Vec<Frame> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    // A value starts: an array element is now under way.
    let start_value = |stack: &mut Vec<Frame>| {
        if let Some(Frame::Array { in_value, .. }) = stack.last_mut() {
            *in_value = true;
        }
    };
    while i < text.len() {
        match text[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    // An escape takes the next byte with it (\" does not end the string).
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                let Some(raw) = text.get(start..=i) else {
                    break; // the text ends inside the string
                };
                match stack.last_mut() {
                    Some(Frame::Object {
                        key,
                        in_value: false,
                    }) => *key = serde_json::from_slice::<String>(raw).ok(),
                    _ => start_value(&mut stack),
                }
            }
            b'{' => {
                start_value(&mut stack);
                stack.push(Frame::Object {
                    key: None,
                    in_value: false,
                });
            }
            b'[' => {
                start_value(&mut stack);
                stack.push(Frame::Array {
                    index: 0,
                    in_value: false,
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b':' => {
                if let Some(Frame::Object { in_value, .. }) = stack.last_mut() {
                    *in_value = true;
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, in_value }) => {
                    *key = None;
                    *in_value = false;
                }
                Some(Frame::Array { index, in_value }) => {
                    *index += 1;
                    *in_value = false;
                }
                None => {}
            },
            b if b.is_ascii_whitespace() => {}
            // A number or a literal.
            _ => start_value(&mut stack),
        }
        i += 1;
    }
    stack
}

/// `a.b[2].c` from the frames of a scan: only the values under way count.
fn field_path(stack: &[Frame]) -> String {
    let mut path = String::new();
    for frame in stack {
        match frame {
            Frame::Object {
                key: Some(k),
                in_value: true,
            } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Array {
                index,
                in_value: true,
            } => path.push_str(&format!("[{index}]")),
            _ => break,
        }
    }
    path
}

/// Valid `process.rlimits[].type` values: the resources of getrlimit(2).
const RLIMITS: &[&str] = &[
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
];

/// Valid `linux.namespaces[].type` values (config-linux.md).
const NAMESPACES: &[&str] = &[
    "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time",
];

/// The capability sets under `process.capabilities`.
const CAPABILITY_SETS: &[&str] = &[
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// Checks on the raw JSON for things the typed structs cannot express or would only report as
/// "unknown variant": enumerated names (with the field named), required-unless fields, and
/// unknown capabilities, which the spec says to warn about and skip rather than fail on.
/// Returns whether capabilities were removed from `raw`.
fn check_raw(raw: &mut Value, warnings: &mut Vec<String>) -> Result<bool, (String, String)> {
    crate::seccomp::check_raw(raw)?;
    if let Some(rlimits) = raw.pointer("/process/rlimits").and_then(Value::as_array) {
        for (i, rlimit) in rlimits.iter().enumerate() {
            if let Some(typ) = rlimit.get("type").and_then(Value::as_str) {
                if !RLIMITS.contains(&typ) {
                    return Err((
                        format!("process.rlimits[{i}].type"),
                        format!("unknown rlimit {typ:?} (expected an RLIMIT_* resource of getrlimit(2))"),
                    ));
                }
            }
        }
    }

    if let Some(namespaces) = raw.pointer("/linux/namespaces").and_then(Value::as_array) {
        for (i, ns) in namespaces.iter().enumerate() {
            if let Some(typ) = ns.get("type").and_then(Value::as_str) {
                if !NAMESPACES.contains(&typ) {
                    return Err((
                        format!("linux.namespaces[{i}].type"),
                        format!(
                            "unknown namespace type {typ:?} (expected one of {})",
                            NAMESPACES.join(", ")
                        ),
                    ));
                }
            }
        }
    }

    if let Some(devices) = raw.pointer("/linux/devices").and_then(Value::as_array) {
        for (i, dev) in devices.iter().enumerate() {
            let Some(typ) = dev.get("type").and_then(Value::as_str) else {
                continue;
            };
            match typ {
                "c" | "b" | "u" => {
                    // major/minor default to 0 in the typed struct, so absence is only visible
                    // here; the spec requires them for every type but p.
                    for key in ["major", "minor"] {
                        if dev.get(key).is_none_or(Value::is_null) {
                            return Err((
                                format!("linux.devices[{i}].{key}"),
                                format!("required for device type {typ:?}"),
                            ));
                        }
                    }
                }
                // As runc: a FIFO is made with mkfifo; major/minor are ignored silently.
                "p" => {}
                other => {
                    return Err((
                        format!("linux.devices[{i}].type"),
                        format!("invalid device type {other:?} (expected c, b, u or p)"),
                    ))
                }
            }
        }
    }

    let mut dropped = scheduler_flag_names(raw.pointer_mut("/process"));
    if let Some(caps) = raw
        .pointer_mut("/process/capabilities")
        .and_then(Value::as_object_mut)
    {
        for set in CAPABILITY_SETS {
            let Some(names) = caps.get_mut(*set).and_then(Value::as_array_mut) else {
                continue;
            };
            let mut i = 0;
            names.retain(|name| {
                let index = i;
                i += 1;
                let Some(s) = name.as_str() else {
                    return true; // not a string: let the schema error report it
                };
                if serde_json::from_value::<Capability>(Value::String(s.to_string())).is_ok() {
                    return true;
                }
                // config.md: a capability that cannot be mapped MUST be logged as a warning
                // and SHOULD NOT fail the container.
                warnings.push(format!(
                    "process.capabilities.{set}[{index}]: unknown capability {s:?}, ignored"
                ));
                dropped = true;
                false
            });
        }
    }
    Ok(dropped)
}

/// The spec's names of two `process.scheduler.flags`, and how the oci-spec crate (0.10)
/// spells them (it refuses the spec's own): (spec, crate).
const SCHEDULER_FLAG_SPELLINGS: [(&str, &str); 2] = [
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
];

/// Respells, in a raw process document, the scheduler flags that the oci-spec crate knows
/// under other names (see `SCHEDULER_FLAG_SPELLINGS`), so that configs written to the
/// spec parse. Returns whether it changed anything.
pub fn scheduler_flag_names(process: Option<&mut Value>) -> bool {
    let Some(flags) = process
        .and_then(|p| p.pointer_mut("/scheduler/flags"))
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let mut changed = false;
    for flag in flags.iter_mut() {
        let crate_name = SCHEDULER_FLAG_SPELLINGS
            .iter()
            .find(|(spec, _)| flag.as_str() == Some(spec))
            .map(|(_, c)| *c);
        if let Some(name) = crate_name {
            *flag = Value::String(name.to_string());
            changed = true;
        }
    }
    changed
}

/// Checks `spec` against the rules of the OCI runtime spec; warnings are logged.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    for warning in validate_with_warnings(spec)? {
        log::warn!("config: {warning}");
    }
    Ok(())
}

/// Like [`validate`], but returns the warnings instead of logging them.
pub fn validate_with_warnings(spec: &Spec) -> Result<Vec<String>, SpecError> {
    let mut warnings = Vec::new();
    check_version(spec.version())?;
    check_root(spec)?;
    check_process(spec)?;
    check_mounts(spec, &mut warnings)?;
    check_hooks(spec)?;
    if let Some(p) = spec.process() {
        check_scheduling(p, "process")?;
    }
    check_linux(spec, &mut warnings)?;
    crate::seccomp::validate(spec, &mut warnings).map_err(|(f, r)| invalid(f, r))?;
    Ok(warnings)
}

/// `ociVersion`: SemVer, major version 1 (the spec keeps compatibility within a major).
fn check_version(version: &str) -> Result<(), SpecError> {
    const FIELD: &str = "ociVersion";
    if version.is_empty() {
        return Err(invalid(FIELD, "required"));
    }
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return Err(invalid(
            FIELD,
            format!("{version:?} is not a SemVer version (MAJOR.MINOR.PATCH)"),
        ));
    }
    if parts[0].parse::<u64>().ok() != Some(1) {
        return Err(invalid(
            FIELD,
            format!("unsupported version {version:?}: this runtime implements 1.x"),
        ));
    }
    Ok(())
}

/// `root` and `root.path` are required on Linux.
fn check_root(spec: &Spec) -> Result<(), SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "required"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "required"));
    }
    Ok(())
}

/// `process`: args, cwd, env, rlimits, oomScoreAdj.
fn check_process(spec: &Spec) -> Result<(), SpecError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "required"))?;

    let args = process.args().as_deref().unwrap_or_default();
    match args.first() {
        None => return Err(invalid("process.args", "must not be empty")),
        Some(a) if a.is_empty() => return Err(invalid("process.args[0]", "must not be empty")),
        Some(_) => {}
    }

    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!(
                "must be an absolute path, got {:?}",
                cwd.display().to_string()
            ),
        ));
    }

    // runc refuses these when building the environment; refuse them before anything starts.
    for (i, entry) in process.env().iter().flatten().enumerate() {
        let field = format!("process.env[{i}]");
        match entry.split_once('=') {
            None => return Err(invalid(field, format!("{entry:?} is not KEY=value"))),
            Some(("", _)) => return Err(invalid(field, format!("{entry:?} has an empty name"))),
            Some(_) if entry.contains('\0') => {
                return Err(invalid(field, format!("{entry:?} contains a NUL byte")))
            }
            Some(_) => {}
        }
    }

    let mut seen = HashMap::new();
    for (i, rlimit) in process.rlimits().iter().flatten().enumerate() {
        let name = rlimit.typ().to_string();
        if let Some(first) = seen.insert(name.clone(), i) {
            return Err(invalid(
                format!("process.rlimits[{i}]"),
                format!("duplicate rlimit type {name:?} (first at process.rlimits[{first}])"),
            ));
        }
        if rlimit.soft() > rlimit.hard() {
            return Err(invalid(
                format!("process.rlimits[{i}].soft"),
                format!(
                    "soft limit {} exceeds hard limit {} for {name}",
                    rlimit.soft(),
                    rlimit.hard()
                ),
            ));
        }
    }

    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                "process.oomScoreAdj",
                format!("must be between -1000 and 1000, got {adj}"),
            ));
        }
    }
    Ok(())
}

/// Makes the relative `source` of every bind mount absolute, relative to `bundle`: config.md
/// says bind sources "are either absolute or relative to the bundle" (runc joins them with
/// the bundle directory it changed into). Without this they would resolve against the
/// caller's working directory, which init inherits.
pub fn bind_sources_in_bundle(spec: &mut Spec, bundle: &Path) {
    let Some(mounts) = spec.mounts().clone() else {
        return;
    };
    let mounts = mounts
        .into_iter()
        .map(|mut m| {
            let is_bind = crate::rootfs::is_bind(&m);
            match m.source().clone() {
                Some(src) if is_bind && src.is_relative() && !src.as_os_str().is_empty() => {
                    m.set_source(Some(bundle.join(src)));
                }
                _ => {}
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
}

/// SCHED_DEADLINE's parameters as the kernel checks them (kernel/sched/deadline.c:
/// __checkparam_dl), so that a config missing them fails before anything is forked with
/// the field named, not in the container's init with a bare EINVAL. runc 1.3 leaves
/// this to the kernel.
fn check_deadline(s: &oci_spec::runtime::Scheduler, base: &str) -> Result<(), SpecError> {
    // The kernel's DL_SCALE: a runtime under 2^10 ns is too fine to account.
    const MIN_RUNTIME_NS: u64 = 1 << 10;
    let runtime = s.runtime().unwrap_or(0);
    let deadline = s.deadline().unwrap_or(0);
    // A period of 0 means the deadline.
    let period = s.period().filter(|&p| p != 0).unwrap_or(deadline);
    let field = |f: &str| format!("{base}.scheduler.{f}");
    if runtime < MIN_RUNTIME_NS {
        return Err(invalid(
            field("runtime"),
            format!(
                "SCHED_DEADLINE needs a runtime of at least {MIN_RUNTIME_NS} ns, got {runtime}"
            ),
        ));
    }
    if deadline < runtime {
        return Err(invalid(
            field("deadline"),
            format!("SCHED_DEADLINE needs a deadline of at least the runtime ({runtime} ns), got {deadline}"),
        ));
    }
    if period < deadline {
        return Err(invalid(
            field("period"),
            format!("SCHED_DEADLINE needs a period of at least the deadline ({deadline} ns), got {period}"),
        ));
    }
    Ok(())
}

/// `process.scheduler` and `process.ioPriority`, with runc 1.3's rules (sched_setattr(2)
/// would refuse most of these with a bare EINVAL). `base` names the process (`process`, or
/// an exec's process document).
pub fn check_scheduling(process: &oci_spec::runtime::Process, base: &str) -> Result<(), SpecError> {
    use oci_spec::runtime::LinuxSchedulerPolicy as P;
    if let Some(s) = process.scheduler() {
        let policy = *s.policy();
        let nice = s.nice().unwrap_or(0);
        if matches!(policy, P::SchedOther | P::SchedBatch) && !(-20..=19).contains(&nice) {
            return Err(invalid(
                format!("{base}.scheduler.nice"),
                format!("must be between -20 and 19 for {policy}, got {nice}"),
            ));
        }
        if s.priority().unwrap_or(0) != 0 && !matches!(policy, P::SchedFifo | P::SchedRr) {
            return Err(invalid(
                format!("{base}.scheduler.priority"),
                format!("only for SCHED_FIFO and SCHED_RR, not {policy}"),
            ));
        }
        let deadline_params = [s.runtime(), s.deadline(), s.period()];
        if policy != P::SchedDeadline && deadline_params.iter().any(|v| v.unwrap_or(0) != 0) {
            return Err(invalid(
                format!("{base}.scheduler"),
                format!("runtime, deadline and period are only for SCHED_DEADLINE, not {policy}"),
            ));
        }
        if policy == P::SchedDeadline {
            check_deadline(s, base)?;
        }
    }
    if let Some(io) = process.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            return Err(invalid(
                format!("{base}.ioPriority.priority"),
                format!("must be between 0 and 7, got {}", io.priority()),
            ));
        }
    }
    Ok(())
}

/// The container path a mount destination designates: relative destinations (deprecated,
/// still allowed on Linux) are relative to the container's `/`.
pub fn mount_destination(destination: &Path) -> PathBuf {
    Path::new("/").join(destination)
}

/// `mounts[]`: destinations, id-mapped mounts.
fn check_mounts(spec: &Spec, warnings: &mut Vec<String>) -> Result<(), SpecError> {
    for (i, mount) in spec.mounts().iter().flatten().enumerate() {
        let dest = mount.destination();
        if dest.as_os_str().is_empty() {
            return Err(invalid(format!("mounts[{i}].destination"), "required"));
        }
        if !dest.is_absolute() {
            // config.md (Linux): SHOULD be absolute; a relative path MAY be used and MUST be
            // interpreted relative to "/"; it is deprecated. runc warns likewise.
            warnings.push(format!(
                "mounts[{i}].destination: relative path {:?} is deprecated, using {:?}",
                dest.display().to_string(),
                mount_destination(dest).display().to_string()
            ));
        }
        // config.md: each of a mount's uidMappings/gidMappings MUST come with the other.
        match (
            mount.uid_mappings().is_some(),
            mount.gid_mappings().is_some(),
        ) {
            (true, false) => {
                return Err(invalid(
                    format!("mounts[{i}].gidMappings"),
                    "required when uidMappings is set",
                ))
            }
            (false, true) => {
                return Err(invalid(
                    format!("mounts[{i}].uidMappings"),
                    "required when gidMappings is set",
                ))
            }
            _ => {}
        }
        check_idmapped_mount(spec, mount, i)?;
    }
    Ok(())
}

/// An id-mapped mount (runc's rules): a bind mount, with mappings of its own or a user
/// namespace in `linux.namespaces` to take them from.
fn check_idmapped_mount(
    spec: &Spec,
    mount: &oci_spec::runtime::Mount,
    i: usize,
) -> Result<(), SpecError> {
    if crate::rootfs::idmap_requested(mount).is_none() {
        return Ok(());
    }
    if !crate::rootfs::is_bind(mount) {
        return Err(invalid(
            format!("mounts[{i}]"),
            "only bind mounts can be id-mapped (idmap, ridmap, uidMappings)",
        ));
    }
    let has_userns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    if mount.uid_mappings().is_none() && !has_userns {
        return Err(invalid(
            format!("mounts[{i}].uidMappings"),
            "an id-mapped mount needs uidMappings and gidMappings, or a user namespace in \
             linux.namespaces to take them from",
        ));
    }
    Ok(())
}

/// `hooks.*[]`: path MUST be absolute, timeout MUST be greater than zero.
fn check_hooks(spec: &Spec) -> Result<(), SpecError> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    #[allow(deprecated)] // prestart is deprecated but still valid and still run
    let lists: [(&str, &Option<Vec<Hook>>); 6] = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (kind, list) in lists {
        for (i, hook) in list.iter().flatten().enumerate() {
            if !hook.path().is_absolute() {
                return Err(invalid(
                    format!("hooks.{kind}[{i}].path"),
                    format!(
                        "must be an absolute path, got {:?}",
                        hook.path().display().to_string()
                    ),
                ));
            }
            if let Some(timeout) = hook.timeout() {
                if timeout <= 0 {
                    return Err(invalid(
                        format!("hooks.{kind}[{i}].timeout"),
                        format!("must be greater than zero, got {timeout}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A namespace type as config.json spells it.
fn ns_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// `linux.*` plus the top-level fields that depend on namespaces (hostname, domainname).
fn check_linux(spec: &Spec, warnings: &mut Vec<String>) -> Result<(), SpecError> {
    let linux = spec.linux().as_ref();
    let namespaces: &[LinuxNamespace] = linux
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default();

    // Duplicates and paths; afterwards each type maps to its single entry.
    let mut by_type: HashMap<LinuxNamespaceType, (usize, &LinuxNamespace)> = HashMap::new();
    for (i, ns) in namespaces.iter().enumerate() {
        let name = ns_name(ns.typ());
        if let Some((first, _)) = by_type.insert(ns.typ(), (i, ns)) {
            return Err(invalid(
                format!("linux.namespaces[{i}]"),
                format!("duplicate namespace type {name:?} (first at linux.namespaces[{first}])"),
            ));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!(
                        "must be an absolute path, got {:?}",
                        path.display().to_string()
                    ),
                ));
            }
        }
    }
    let has = |t: LinuxNamespaceType| by_type.contains_key(&t);

    // The container's UTS namespace is the host's unless one is listed (new or joined; CRI
    // containers join the pod's and still set hostname): setting it would rename the host.
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            if !has(LinuxNamespaceType::Uts) {
                return Err(invalid(
                    field,
                    format!(
                        "cannot set {field} {value:?} without a uts namespace in linux.namespaces"
                    ),
                ));
            }
        }
    }

    let Some(linux) = linux else {
        return Ok(());
    };

    check_id_mappings(
        "linux.uidMappings",
        linux.uid_mappings().as_deref(),
        by_type.get(&LinuxNamespaceType::User).copied(),
        warnings,
    )?;
    check_id_mappings(
        "linux.gidMappings",
        linux.gid_mappings().as_deref(),
        by_type.get(&LinuxNamespaceType::User).copied(),
        warnings,
    )?;

    if let Some(sysctl) = linux.sysctl() {
        check_sysctl(sysctl, &by_type)?;
    }

    for (i, dev) in linux.devices().iter().flatten().enumerate() {
        let path = dev.path();
        if !path.is_absolute() {
            return Err(invalid(
                format!("linux.devices[{i}].path"),
                format!(
                    "must be an absolute path, got {:?}",
                    path.display().to_string()
                ),
            ));
        }
        match dev.typ() {
            LinuxDeviceType::A => {
                return Err(invalid(
                    format!("linux.devices[{i}].type"),
                    "invalid device type \"a\" (expected c, b, u or p; \"a\" is only for linux.resources.devices)",
                ))
            }
            LinuxDeviceType::P => {}
            LinuxDeviceType::B | LinuxDeviceType::C | LinuxDeviceType::U => {
                for (key, value) in [("major", dev.major()), ("minor", dev.minor())] {
                    if value < 0 {
                        return Err(invalid(
                            format!("linux.devices[{i}].{key}"),
                            format!("must not be negative, got {value}"),
                        ));
                    }
                }
            }
        }
    }

    // Device rules: each well-formed, none cutting into a wildcard before it (what the
    // device controller would ignore silently), named by its index.
    if let Some(rules) = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_ref())
    {
        for i in 0..rules.len() {
            crate::cgroups::check_device_rules(&rules[..=i])
                .map_err(|e| invalid(format!("linux.resources.devices[{i}]"), e.to_string()))?;
        }
    }

    if let Some(resources) = linux.resources() {
        check_resources(resources, "linux.resources")?;
    }

    // runc: offsets only make sense for a new time namespace (a joined one has its own).
    if linux.time_offsets().as_ref().is_some_and(|o| !o.is_empty()) {
        match by_type.get(&LinuxNamespaceType::Time) {
            None => {
                return Err(invalid(
                    "linux.timeOffsets",
                    "set, but linux.namespaces has no \"time\" namespace",
                ))
            }
            Some((i, ns)) if ns.path().is_some() => {
                return Err(invalid(
                    "linux.timeOffsets",
                    format!(
                        "set, but the time namespace is joined (linux.namespaces[{i}].path): \
                         its offsets cannot be changed"
                    ),
                ))
            }
            Some(_) => {}
        }
    }

    // Intel RDT (resctrl) is not implemented: as runc on a host without RDT, refuse it
    // rather than run the container without the cache and bandwidth classes it asks for.
    if linux.intel_rdt().is_some() {
        return Err(invalid(
            "linux.intelRdt",
            "Intel RDT (resctrl) is not supported by this runtime",
        ));
    }
    // runc: personality flags are ignored with a warning (the spec defines none).
    if let Some(flags) = linux
        .personality()
        .as_ref()
        .and_then(|p| p.flags().as_ref())
        .filter(|f| !f.is_empty())
    {
        warnings.push(format!(
            "linux.personality.flags: {flags:?} ignored (no flag is supported)"
        ));
    }

    // runc: masking paths needs a private mount namespace, or it would mask the host's.
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        if paths.as_ref().is_some_and(|p| !p.is_empty()) && !has(LinuxNamespaceType::Mount) {
            return Err(invalid(
                field,
                "set, but linux.namespaces has no \"mount\" namespace",
            ));
        }
    }
    Ok(())
}

/// The cgroup cpu.shares range of the kernel (v1 clamps values outside it silently; runc
/// writes the value, reads it back and refuses the container when they differ).
const CPU_SHARES: std::ops::RangeInclusive<u64> = 2..=262_144;

/// Checks the limits the kernel would refuse (or, for cpu shares, silently clamp) before any
/// cgroup is made, naming the field under `prefix` (`linux.resources` for config.json, empty
/// for an update's resources). runc 1.1.5 refuses the same values, though only when it
/// writes them: a memory limit, reservation or swap limit below -1 (the kernel's EINVAL;
/// -1 is unlimited), cpu shares outside 2..=262144 (0 means unset).
pub fn check_resources(resources: &LinuxResources, prefix: &str) -> Result<(), SpecError> {
    let field = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    if let Some(memory) = resources.memory() {
        for (name, value) in [
            ("memory.limit", memory.limit()),
            ("memory.reservation", memory.reservation()),
            ("memory.swap", memory.swap()),
        ] {
            if let Some(v) = value.filter(|v| *v < -1) {
                return Err(invalid(
                    field(name),
                    format!("must be -1 (unlimited) or a number of bytes, got {v}"),
                ));
            }
        }
    }
    if let Some(shares) = resources.cpu().as_ref().and_then(|c| c.shares()) {
        if shares != 0 && !CPU_SHARES.contains(&shares) {
            return Err(invalid(
                field("cpu.shares"),
                format!(
                    "must be between {} and {} (or 0: unset), got {shares}",
                    CPU_SHARES.start(),
                    CPU_SHARES.end()
                ),
            ));
        }
    }
    Ok(())
}

/// uid/gid mappings exist exactly when the container creates a user namespace.
fn check_id_mappings(
    field: &str,
    mappings: Option<&[LinuxIdMapping]>,
    user_ns: Option<(usize, &LinuxNamespace)>,
    warnings: &mut Vec<String>,
) -> Result<(), SpecError> {
    let mappings = mappings.unwrap_or_default();
    match user_ns {
        None if !mappings.is_empty() => {
            return Err(invalid(
                field,
                "set, but linux.namespaces has no \"user\" namespace",
            ))
        }
        None => {}
        Some((_, ns)) if ns.path().is_none() && mappings.is_empty() => {
            return Err(invalid(
                field,
                "required when creating a new user namespace",
            ))
        }
        Some((i, ns)) if ns.path().is_some() && !mappings.is_empty() => {
            // A joined namespace already has its mappings; they cannot be written again.
            warnings.push(format!(
                "{field}: ignored, the user namespace is joined (linux.namespaces[{i}].path)"
            ));
        }
        Some(_) => {}
    }
    for (i, m) in mappings.iter().enumerate() {
        if m.size() == 0 {
            return Err(invalid(
                format!("{field}[{i}].size"),
                "must be greater than zero",
            ));
        }
    }
    Ok(())
}

/// IPC-namespaced sysctls outside `fs.mqueue.*` (the same list runc uses).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// sysctl(8) accepts `/` as the separator (`net/ipv4/ip_forward`); in that form dots are part
/// of names (`eth0.100`). Convert to the dotted form so prefixes can be compared.
fn dotted_sysctl(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'/' => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// /proc/sys is only partly namespaced: a sysctl is allowed only when the namespace that
/// scopes it is the container's own, as runc decides it. Anything else would change the host.
fn check_sysctl(
    sysctl: &HashMap<String, String>,
    by_type: &HashMap<LinuxNamespaceType, (usize, &LinuxNamespace)>,
) -> Result<(), SpecError> {
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    let mut host_net: Option<bool> = None;
    for key in keys {
        let field = format!("linux.sysctl[{key:?}]");
        let name = dotted_sysctl(key);

        if IPC_SYSCTLS.contains(&name.as_str()) || name.starts_with("fs.mqueue.") {
            if by_type.contains_key(&LinuxNamespaceType::Ipc) {
                continue;
            }
            return Err(invalid(
                field,
                "not allowed in the host's ipc namespace (linux.namespaces has no \"ipc\" entry)",
            ));
        }

        if name.starts_with("net.") {
            let is_host = match host_net {
                Some(v) => v,
                None => {
                    let v = joins_host_netns(by_type.get(&LinuxNamespaceType::Network).copied())?;
                    host_net = Some(v);
                    v
                }
            };
            if is_host {
                return Err(invalid(
                    field,
                    "not allowed in the host's network namespace",
                ));
            }
            continue;
        }

        if by_type.contains_key(&LinuxNamespaceType::Uts) {
            match name.as_str() {
                "kernel.domainname" => continue,
                "kernel.hostname" => {
                    return Err(invalid(
                        field,
                        "conflicts with the \"hostname\" field; set that instead",
                    ))
                }
                _ => {}
            }
        } else if name == "kernel.hostname" || name == "kernel.domainname" {
            return Err(invalid(
                field,
                "not allowed in the host's uts namespace (linux.namespaces has no \"uts\" entry)",
            ));
        }

        return Err(invalid(
            field,
            "not in a separate kernel namespace, refusing to change it on the host",
        ));
    }
    Ok(())
}

/// Whether the container's network namespace is the runtime's own: no entry, or a path that
/// names the same namespace as /proc/self/ns/net ("host" meaning the current one, as in runc).
fn joins_host_netns(entry: Option<(usize, &LinuxNamespace)>) -> Result<bool, SpecError> {
    let Some((i, ns)) = entry else {
        return Ok(true);
    };
    let Some(path) = ns.path() else {
        return Ok(false);
    };
    let field = || format!("linux.namespaces[{i}].path");
    let theirs =
        fs::metadata(path).map_err(|e| invalid(field(), format!("{}: {e}", path.display())))?;
    let ours = fs::metadata("/proc/self/ns/net")
        .map_err(|e| invalid(field(), format!("/proc/self/ns/net: {e}")))?;
    Ok(theirs.dev() == ours.dev() && theirs.ino() == ours.ino())
}

/// The rootfs directory: `root.path`, relative to `bundle` unless absolute, canonicalized.
pub fn rootfs_path(bundle: &Path, spec: &Spec) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "required"))?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        return Err(invalid("root.path", "required"));
    }
    let joined = if path.is_absolute() {
        path.clone()
    } else {
        bundle.join(path)
    };
    let canonical = fs::canonicalize(&joined).map_err(|source| SpecError::Rootfs {
        path: joined.clone(),
        source,
    })?;
    if !canonical.is_dir() {
        return Err(SpecError::RootfsNotDirectory { path: canonical });
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduler_flags_spelled_as_the_spec_spells_them_parse() {
        let mut c = minimal();
        c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER",
            "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]});
        let (spec, _) = check(&c).expect("parses");
        let flags = spec
            .process()
            .as_ref()
            .and_then(|p| p.scheduler().as_ref())
            .and_then(|s| s.flags().clone())
            .unwrap_or_default();
        use oci_spec::runtime::LinuxSchedulerFlag as F;
        assert_eq!(
            flags,
            [
                F::SchedResetOnFork,
                F::SchedFlagDLOverrun,
                F::SchedFlagReclaim
            ]
        );
    }

    #[test]
    fn scheduler_io_priority_and_intel_rdt() {
        let mut c = minimal();
        c["process"]["scheduler"] = json!({"policy": "SCHED_OTHER", "nice": 20});
        rejects(&c, "process.scheduler.nice");
        c["process"]["scheduler"] = json!({"policy": "SCHED_DEADLINE"});
        rejects(&c, "process.scheduler.runtime");
        c["process"]["scheduler"] = json!({"policy": "SCHED_DEADLINE", "runtime": 2000000});
        rejects(&c, "process.scheduler.deadline");
        c["process"]["scheduler"] = json!({"policy": "SCHED_DEADLINE", "runtime": 2000000, "deadline": 3000000,
                   "period": 2500000});
        rejects(&c, "process.scheduler.period");
        c["process"]["scheduler"] =
            json!({"policy": "SCHED_DEADLINE", "runtime": 2000000, "deadline": 3000000});
        accepts(&c);
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "priority": 5});
        rejects(&c, "process.scheduler.priority");
        c["process"]["scheduler"] = json!({"policy": "SCHED_RR", "runtime": 5});
        rejects(&c, "process.scheduler");
        c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 5});
        accepts(&c);
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8});
        rejects(&c, "process.ioPriority.priority");
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7});
        accepts(&c);
        c["linux"]["intelRdt"] = json!({"closID": "gold"});
        rejects(&c, "linux.intelRdt");
    }

    #[test]
    fn relative_bind_sources_are_taken_from_the_bundle() {
        let mut spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/a", "type": "bind", "source": "data"},
                {"destination": "/b", "type": "none", "source": "./x/y", "options": ["rbind", "ro"]},
                {"destination": "/c", "source": "/abs", "options": ["bind"]},
                {"destination": "/proc", "type": "proc", "source": "proc"}
            ]
        }))
        .unwrap();
        bind_sources_in_bundle(&mut spec, Path::new("/b/dl"));
        let sources: Vec<Option<PathBuf>> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.source().clone())
            .collect();
        assert_eq!(
            sources,
            [
                Some(PathBuf::from("/b/dl/data")),
                Some(PathBuf::from("/b/dl/./x/y")),
                Some(PathBuf::from("/abs")),
                // Not a bind: the source of a filesystem is not a path.
                Some(PathBuf::from("proc")),
            ]
        );
    }

    /// The smallest config.json that passes.
    fn minimal() -> Value {
        json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": ["sh"],
                "cwd": "/"
            },
            "linux": {
                "namespaces": [
                    {"type": "pid"},
                    {"type": "network"},
                    {"type": "ipc"},
                    {"type": "uts"},
                    {"type": "mount"}
                ]
            }
        })
    }

    /// Parses and validates `config` as if read from a bundle.
    fn check(config: &Value) -> Result<(Spec, Vec<String>), SpecError> {
        let bytes = serde_json::to_vec_pretty(config).unwrap();
        parse_config(&bytes, Path::new("/bundle/config.json"))
    }

    /// Asserts `config` is rejected with an error naming `field`; returns the message.
    fn rejects(config: &Value, field: &str) -> String {
        let err = check(config).expect_err("config should be rejected");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{field}: ")),
            "message {msg:?} does not name {field}"
        );
        msg
    }

    /// Asserts `config` passes and returns the warnings.
    fn accepts(config: &Value) -> Vec<String> {
        match check(config) {
            Ok((_, warnings)) => warnings,
            Err(e) => panic!("config should pass: {e}"),
        }
    }

    fn set_namespaces(config: &mut Value, types: &[&str]) {
        config["linux"]["namespaces"] = types.iter().map(|t| json!({"type": t})).collect();
    }

    #[test]
    fn minimal_spec_passes_without_warnings() {
        assert!(accepts(&minimal()).is_empty());
        let spec: Spec = serde_json::from_value(minimal()).unwrap();
        validate(&spec).unwrap();
    }

    #[test]
    fn exec_cpu_affinity_lists_are_checked() {
        // oci-spec checks the cpu list with `regex`, which this workspace serves with
        // regex-lite (third_party/regex): the pattern must still work.
        let mut config = minimal();
        config["process"]["execCPUAffinity"] = json!({"initial": "0-1,3", "final": "2"});
        accepts(&config);
        config["process"]["execCPUAffinity"] = json!({"initial": "0-1,x"});
        let err = check(&config).expect_err("a malformed cpu list");
        assert!(err.to_string().contains("0-1,x"), "{err}");
    }

    #[test]
    fn oci_spec_default_passes() {
        // What `Spec::default()` (runc spec's template) produces must be acceptable.
        validate_with_warnings(&Spec::default()).unwrap();
    }

    #[test]
    fn full_example_from_the_spec_passes() {
        let mut c = minimal();
        c["hostname"] = json!("slartibartfast");
        c["domainname"] = json!("foobarbaz.test");
        c["mounts"] = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
        ]);
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_CORE", "hard": 1024, "soft": 1024},
            {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}
        ]);
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL"]
        });
        c["process"]["oomScoreAdj"] = json!(100);
        c["process"]["env"] = json!(["PATH=/usr/bin:/bin", "TERM=xterm", "EMPTY="]);
        c["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438},
            {"path": "/dev/fifo", "type": "p"}
        ]);
        c["linux"]["sysctl"] = json!({
            "net.ipv4.ip_forward": "1",
            "net/ipv4/conf/eth0.100/rp_filter": "1",
            "kernel.shmmax": "1000",
            "fs.mqueue.msg_max": "10",
            "kernel.domainname": "example"
        });
        c["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
        c["hooks"] = json!({"poststart": [{"path": "/usr/bin/notify-start", "timeout": 5}]});
        assert!(accepts(&c).is_empty());
    }

    #[test]
    fn oci_version_major_must_be_1() {
        let mut c = minimal();
        c["ociVersion"] = json!("2.0.0");
        let msg = rejects(&c, "ociVersion");
        assert!(msg.contains("2.0.0"), "{msg}");

        c["ociVersion"] = json!("1.0");
        rejects(&c, "ociVersion");
        c["ociVersion"] = json!("");
        rejects(&c, "ociVersion");
        c.as_object_mut().unwrap().remove("ociVersion");
        rejects(&c, "ociVersion");

        for ok in ["1.0.0", "1.0.2-dev", "1.2.1+build.5", "1.3.0-rc.1"] {
            c["ociVersion"] = json!(ok);
            accepts(&c);
        }
    }

    #[test]
    fn root_path_is_required() {
        let mut c = minimal();
        c["root"] = json!({"path": ""});
        rejects(&c, "root.path");
        c.as_object_mut().unwrap().remove("root");
        rejects(&c, "root");
    }

    #[test]
    fn process_is_required() {
        let mut c = minimal();
        c.as_object_mut().unwrap().remove("process");
        rejects(&c, "process");
    }

    #[test]
    fn process_args_must_not_be_empty() {
        let mut c = minimal();
        c["process"]["args"] = json!([]);
        let msg = rejects(&c, "process.args");
        assert!(msg.ends_with("process.args: must not be empty"), "{msg}");
        c["process"].as_object_mut().unwrap().remove("args");
        rejects(&c, "process.args");
        c["process"]["args"] = json!(["", "x"]);
        rejects(&c, "process.args[0]");
    }

    #[test]
    fn process_cwd_must_be_absolute() {
        let mut c = minimal();
        c["process"]["cwd"] = json!("tmp");
        let msg = rejects(&c, "process.cwd");
        assert!(msg.contains(r#"got "tmp""#), "{msg}");
        c["process"]["cwd"] = json!("");
        rejects(&c, "process.cwd");
    }

    #[test]
    fn process_env_entries_are_key_value() {
        let mut c = minimal();
        c["process"]["env"] = json!(["A=1", "NOEQUALS"]);
        rejects(&c, "process.env[1]");
        c["process"]["env"] = json!(["=value"]);
        rejects(&c, "process.env[0]");
    }

    #[test]
    fn duplicate_namespace_types() {
        let mut c = minimal();
        set_namespaces(&mut c, &["pid", "mount", "pid"]);
        let msg = rejects(&c, "linux.namespaces[2]");
        assert!(msg.contains(r#"duplicate namespace type "pid""#), "{msg}");
    }

    #[test]
    fn unknown_namespace_type() {
        let mut c = minimal();
        set_namespaces(&mut c, &["pid", "net"]);
        let msg = rejects(&c, "linux.namespaces[1].type");
        assert!(msg.contains(r#""net""#), "{msg}");
    }

    #[test]
    fn namespace_path_must_be_absolute() {
        let mut c = minimal();
        c["linux"]["namespaces"] = json!([{"type": "network", "path": "proc/1/ns/net"}]);
        rejects(&c, "linux.namespaces[0].path");
    }

    #[test]
    fn hostname_needs_a_uts_namespace() {
        let mut c = minimal();
        c["hostname"] = json!("box");
        set_namespaces(&mut c, &["pid", "mount"]);
        let msg = rejects(&c, "hostname");
        assert!(msg.contains("uts"), "{msg}");

        // Joining an existing uts namespace (CRI containers join the pod's) is fine.
        c["linux"]["namespaces"] = json!([{"type": "uts", "path": "/proc/1/ns/uts"}]);
        accepts(&c);
        // An empty hostname asks for nothing.
        c["hostname"] = json!("");
        set_namespaces(&mut c, &["pid"]);
        accepts(&c);
    }

    #[test]
    fn domainname_needs_a_uts_namespace() {
        let mut c = minimal();
        c["domainname"] = json!("example.test");
        set_namespaces(&mut c, &["pid", "mount"]);
        rejects(&c, "domainname");
    }

    #[test]
    fn id_mappings_iff_new_user_namespace() {
        let map = json!([{"containerID": 0, "hostID": 1000, "size": 65536}]);

        // Mappings without a user namespace.
        let mut c = minimal();
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map.clone();
        rejects(&c, "linux.uidMappings");

        // A new user namespace without mappings.
        let mut c = minimal();
        set_namespaces(&mut c, &["pid", "mount", "user"]);
        rejects(&c, "linux.uidMappings");
        c["linux"]["uidMappings"] = map.clone();
        rejects(&c, "linux.gidMappings");
        c["linux"]["gidMappings"] = map.clone();
        accepts(&c);

        // Zero-sized mapping.
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 0}]);
        rejects(&c, "linux.gidMappings[0].size");

        // A joined user namespace: mappings are not needed, and ignored with a warning.
        let mut c = minimal();
        c["linux"]["namespaces"] = json!([{"type": "user", "path": "/proc/1/ns/user"}]);
        accepts(&c);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
        let warnings = accepts(&c);
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("linux.uidMappings: ignored")),
            "{warnings:?}"
        );
    }

    #[test]
    fn relative_mount_destination_is_a_warning() {
        // config.md: Linux destinations SHOULD be absolute; relative ones are deprecated and
        // taken relative to "/".
        let mut c = minimal();
        c["mounts"] = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "tmp", "type": "tmpfs", "source": "tmpfs"}
        ]);
        let warnings = accepts(&c);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("mounts[1].destination: "),
            "{warnings:?}"
        );
        assert!(warnings[0].contains(r#""/tmp""#), "{warnings:?}");
        assert_eq!(mount_destination(Path::new("tmp")), Path::new("/tmp"));
        assert_eq!(mount_destination(Path::new("/tmp")), Path::new("/tmp"));
    }

    #[test]
    fn empty_mount_destination() {
        let mut c = minimal();
        c["mounts"] = json!([{"destination": "", "type": "tmpfs", "source": "tmpfs"}]);
        rejects(&c, "mounts[0].destination");
    }

    #[test]
    fn idmapped_mount_needs_both_mappings() {
        let mut c = minimal();
        c["mounts"] = json!([{
            "destination": "/data", "type": "bind", "source": "/src", "options": ["rbind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
        }]);
        rejects(&c, "mounts[0].gidMappings");
        c["mounts"][0]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        accepts(&c);
        // No mappings of its own and no user namespace to take them from.
        c["mounts"] = json!([{
            "destination": "/data", "type": "bind", "source": "/src", "options": ["rbind", "ridmap"]
        }]);
        rejects(&c, "mounts[0].uidMappings");
        c["linux"]["namespaces"] = json!([{"type": "user"}, {"type": "mount"}]);
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        accepts(&c);
        c["mounts"] = json!([{"destination": "/t", "type": "tmpfs", "options": ["idmap"]}]);
        rejects(&c, "mounts[0]");
    }

    #[test]
    fn duplicate_rlimit() {
        let mut c = minimal();
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
            {"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 2048}
        ]);
        let msg = rejects(&c, "process.rlimits[1]");
        assert!(msg.contains("RLIMIT_NOFILE"), "{msg}");
    }

    #[test]
    fn unknown_rlimit() {
        let mut c = minimal();
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
            {"type": "RLIMIT_FOO", "hard": 1, "soft": 1}
        ]);
        let msg = rejects(&c, "process.rlimits[1].type");
        assert!(msg.contains("RLIMIT_FOO"), "{msg}");
        // Names are exact, like the spec's and runc's.
        c["process"]["rlimits"] = json!([{"type": "rlimit_core", "hard": 0, "soft": 0}]);
        rejects(&c, "process.rlimits[0].type");
    }

    #[test]
    fn rlimit_soft_above_hard() {
        let mut c = minimal();
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 2048}]);
        let msg = rejects(&c, "process.rlimits[0].soft");
        assert!(msg.contains("2048") && msg.contains("1024"), "{msg}");
    }

    #[test]
    fn unknown_capability_is_a_warning_and_dropped() {
        // config.md: capabilities that cannot be mapped MUST be logged as a warning; runtimes
        // SHOULD NOT fail.
        let mut c = minimal();
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_FOO", "CAP_KILL"],
            "effective": ["CAP_KILL"]
        });
        let (spec, warnings) = check(&c).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("process.capabilities.bounding[1]: "),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("CAP_FOO"), "{warnings:?}");
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        let bounding = caps.bounding().as_ref().unwrap();
        assert_eq!(bounding.len(), 2);
        assert!(bounding.contains(&Capability::Chown) && bounding.contains(&Capability::Kill));
    }

    #[test]
    fn capability_that_is_not_a_string_is_a_schema_error() {
        let mut c = minimal();
        c["process"]["capabilities"] = json!({"bounding": [42]});
        let err = check(&c).unwrap_err();
        assert!(matches!(err, SpecError::Schema { .. }), "{err}");
    }

    #[test]
    fn schema_errors_name_the_field() {
        type Mutation = fn(&mut Value);
        let cases: Vec<(Mutation, &str)> = vec![
            (|c| c["ociVersion"] = json!(1), "ociVersion"),
            (|c| c["hostname"] = json!(5), "hostname"),
            (|c| c["process"] = json!("sh"), "process"),
            (|c| c["process"]["args"] = json!(42), "process.args"),
            (
                |c| c["process"]["args"] = json!(["sh", 42]),
                "process.args[1]",
            ),
            (
                |c| c["process"]["terminal"] = json!("yes"),
                "process.terminal",
            ),
            (
                |c| c["process"]["user"]["uid"] = json!("root"),
                "process.user.uid",
            ),
            (|c| c["process"]["env"] = json!("A=b"), "process.env"),
            (
                |c| {
                    c["process"]["rlimits"] =
                        json!([{"type": "RLIMIT_NOFILE", "soft": "x", "hard": 1}])
                },
                "process.rlimits[0].soft",
            ),
            (
                |c| c["process"]["capabilities"] = json!({"bounding": "CAP_KILL"}),
                "process.capabilities.bounding",
            ),
            (|c| c["root"]["readonly"] = json!("true"), "root.readonly"),
            (
                |c| c["mounts"] = json!([{"destination": "/a"}, {"destination": 5}]),
                "mounts[1].destination",
            ),
            (
                |c| c["mounts"] = json!([{"destination": "/a", "options": ["ro", 1]}]),
                "mounts[0].options[1]",
            ),
            (
                |c| c["linux"]["namespaces"][3]["path"] = json!(5),
                "linux.namespaces[3].path",
            ),
            (
                |c| c["linux"]["namespaces"][1] = json!({}),
                "linux.namespaces[1]",
            ),
            (
                |c| c["linux"]["resources"] = json!({"memory": {"limit": "1G"}}),
                "linux.resources.memory.limit",
            ),
            (
                |c| c["linux"]["resources"] = json!({"cpu": {"shares": -1}}),
                "linux.resources.cpu.shares",
            ),
            (
                |c| {
                    c["linux"]["uidMappings"] =
                        json!([{"containerID": 0, "hostID": 1, "size": "x"}])
                },
                "linux.uidMappings[0].size",
            ),
            (
                |c| c["hooks"] = json!({"prestart": [{"path": "/a"}, {"path": 1}]}),
                "hooks.prestart[1].path",
            ),
            (
                |c| c["annotations"] = json!({"a\"b": 1}),
                "annotations.a\"b",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = minimal();
            mutate(&mut c);
            for bytes in [
                serde_json::to_vec_pretty(&c).unwrap(),
                serde_json::to_vec(&c).unwrap(),
            ] {
                let err = parse_config(&bytes, Path::new("/b/config.json")).unwrap_err();
                assert!(matches!(err, SpecError::Schema { .. }), "{field}: {err}");
                let msg = err.to_string();
                assert!(
                    msg.starts_with(&format!("/b/config.json: {field}: ")) && msg.contains("line"),
                    "{field}: {msg}"
                );
            }
        }
    }

    #[test]
    fn schema_error_after_dropping_an_unknown_capability_names_the_field() {
        let mut c = minimal();
        c["process"]["capabilities"] = json!({"bounding": ["CAP_NOPE"]});
        c["process"]["args"] = json!(["sh", 42]);
        let err = check(&c).unwrap_err();
        // No line and column: they would be the re-serialized document's, not the file's.
        assert_eq!(
            err.to_string(),
            "/bundle/config.json: process.args[1]: invalid type: integer `42`, expected a string"
        );
    }

    #[test]
    fn field_of_a_truncated_scan() {
        assert_eq!(field_path(&scan_json(br#"{"a": [1, {"b\""#)), "a[1]");
        assert_eq!(
            field_path(&scan_json(br#"{"a": [1, {"b\"": 2"#)),
            "a[1].b\""
        );
        assert_eq!(field_path(&scan_json(br#"{"a": "x\\", "c": [ "#)), "c");
        assert_eq!(field_path(&scan_json(br#"{"a": "unterminated"#)), "a");
        assert_eq!(field_path(&scan_json(b"")), "");
    }

    #[test]
    fn oom_score_adj_range() {
        let mut c = minimal();
        for bad in [1001, -1001, 5000] {
            c["process"]["oomScoreAdj"] = json!(bad);
            let msg = rejects(&c, "process.oomScoreAdj");
            assert!(msg.contains(&bad.to_string()), "{msg}");
        }
        for ok in [-1000, 0, 1000] {
            c["process"]["oomScoreAdj"] = json!(ok);
            accepts(&c);
        }
    }

    #[test]
    fn memory_limits_below_minus_one_are_refused() {
        for key in ["limit", "reservation", "swap"] {
            let mut c = minimal();
            for bad in [-2, -1024, i64::MIN] {
                c["linux"]["resources"] = json!({ "memory": { key: bad } });
                let msg = rejects(&c, &format!("linux.resources.memory.{key}"));
                assert!(msg.contains(&bad.to_string()), "{msg}");
            }
            for ok in [-1, 0, 1 << 20] {
                c["linux"]["resources"] = json!({ "memory": { key: ok } });
                accepts(&c);
            }
        }
    }

    #[test]
    fn cpu_shares_range() {
        let mut c = minimal();
        for bad in [1u64, 262_145, 1_000_000, u64::MAX] {
            c["linux"]["resources"] = json!({ "cpu": { "shares": bad } });
            let msg = rejects(&c, "linux.resources.cpu.shares");
            assert!(msg.contains(&bad.to_string()), "{msg}");
        }
        for ok in [0u64, 2, 1024, 262_144] {
            c["linux"]["resources"] = json!({ "cpu": { "shares": ok } });
            accepts(&c);
        }
    }

    #[test]
    fn update_resources_are_named_without_a_prefix() {
        let r: LinuxResources =
            serde_json::from_value(json!({ "memory": { "limit": -5 } })).unwrap();
        let err = check_resources(&r, "").unwrap_err();
        assert_eq!(err.field(), Some("memory.limit"));
    }

    #[test]
    fn sysctl_net_needs_own_network_namespace() {
        let mut c = minimal();
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        set_namespaces(&mut c, &["pid", "mount"]);
        let msg = rejects(&c, r#"linux.sysctl["net.ipv4.ip_forward"]"#);
        assert!(msg.contains("network"), "{msg}");

        // Joining a namespace by a path that is in fact ours is still the host's.
        c["linux"]["namespaces"] = json!([{"type": "network", "path": "/proc/self/ns/net"}]);
        rejects(&c, r#"linux.sysctl["net.ipv4.ip_forward"]"#);

        // A path that cannot be checked is reported on the namespace entry.
        c["linux"]["namespaces"] = json!([{"type": "network", "path": "/nonexistent/netns"}]);
        rejects(&c, "linux.namespaces[0].path");

        // Slash-separated keys are understood.
        let mut c = minimal();
        set_namespaces(&mut c, &["pid"]);
        c["linux"]["sysctl"] = json!({"net/core/somaxconn": "256"});
        rejects(&c, r#"linux.sysctl["net/core/somaxconn"]"#);
    }

    #[test]
    fn sysctl_ipc_needs_ipc_namespace() {
        for key in [
            "kernel.shmmax",
            "kernel.msgmax",
            "fs.mqueue.queues_max",
            "kernel/sem",
        ] {
            let mut c = minimal();
            set_namespaces(&mut c, &["pid", "network", "uts", "mount"]);
            c["linux"]["sysctl"] = json!({ key: "1" });
            let msg = rejects(&c, &format!("linux.sysctl[{key:?}]"));
            assert!(msg.contains("ipc"), "{msg}");
        }
    }

    #[test]
    fn sysctl_uts() {
        let mut c = minimal();
        c["linux"]["sysctl"] = json!({"kernel.domainname": "x"});
        accepts(&c);
        // runc: kernel.hostname conflicts with the dedicated field.
        c["linux"]["sysctl"] = json!({"kernel.hostname": "x"});
        let msg = rejects(&c, r#"linux.sysctl["kernel.hostname"]"#);
        assert!(msg.contains("hostname"), "{msg}");
        // Without a uts namespace neither is allowed.
        set_namespaces(&mut c, &["pid", "ipc", "network"]);
        c["linux"]["sysctl"] = json!({"kernel.domainname": "x"});
        rejects(&c, r#"linux.sysctl["kernel.domainname"]"#);
    }

    #[test]
    fn sysctl_not_namespaced_is_rejected() {
        let mut c = minimal();
        for key in ["vm.swappiness", "kernel.pid_max", "fs.file-max"] {
            c["linux"]["sysctl"] = json!({ key: "1" });
            let msg = rejects(&c, &format!("linux.sysctl[{key:?}]"));
            assert!(msg.contains("not in a separate kernel namespace"), "{msg}");
        }
    }

    #[test]
    fn dotted_sysctl_conversion() {
        assert_eq!(dotted_sysctl("net.ipv4.ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(dotted_sysctl("net/ipv4/ip_forward"), "net.ipv4.ip_forward");
        assert_eq!(
            dotted_sysctl("net/ipv4/conf/eno2.100/rp_filter"),
            "net.ipv4.conf.eno2/100.rp_filter"
        );
        assert_eq!(
            dotted_sysctl("net.ipv4.conf.eno2/100.rp_filter"),
            "net.ipv4.conf.eno2/100.rp_filter"
        );
    }

    #[test]
    fn device_types() {
        let mut c = minimal();
        c["linux"]["devices"] = json!([{"path": "/dev/x", "type": "x", "major": 1, "minor": 1}]);
        let msg = rejects(&c, "linux.devices[0].type");
        assert!(msg.contains(r#""x""#), "{msg}");

        // "a" exists only in the cgroup allow-list, not for device nodes.
        c["linux"]["devices"] = json!([{"path": "/dev/x", "type": "a", "major": 1, "minor": 1}]);
        rejects(&c, "linux.devices[0].type");
        let spec: Spec = serde_json::from_value(c.clone()).unwrap();
        assert_eq!(
            validate(&spec).unwrap_err().field(),
            Some("linux.devices[0].type")
        );

        // c, b, u need major and minor.
        c["linux"]["devices"] = json!([
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
            {"path": "/dev/sda", "type": "b", "major": 8}
        ]);
        rejects(&c, "linux.devices[1].minor");
        c["linux"]["devices"] = json!([{"path": "/dev/x", "type": "u", "minor": 1}]);
        rejects(&c, "linux.devices[0].major");
        c["linux"]["devices"] = json!([{"path": "/dev/x", "type": "c", "major": -1, "minor": 1}]);
        rejects(&c, "linux.devices[0].major");

        // p needs none; given ones are ignored without a word, as runc ignores them.
        c["linux"]["devices"] = json!([{"path": "/dev/fifo", "type": "p"}]);
        assert!(accepts(&c).is_empty());
        c["linux"]["devices"] = json!([{"path": "/dev/fifo", "type": "p", "major": 1, "minor": 2}]);
        assert!(accepts(&c).is_empty());

        // Device paths are full paths.
        c["linux"]["devices"] = json!([{"path": "dev/null", "type": "c", "major": 1, "minor": 3}]);
        rejects(&c, "linux.devices[0].path");
    }

    #[test]
    fn hooks_path_absolute_and_timeout_positive() {
        let mut c = minimal();
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/true"}, {"path": "true"}]});
        rejects(&c, "hooks.createRuntime[1].path");
        c["hooks"] = json!({"poststop": [{"path": "/bin/true", "timeout": 0}]});
        rejects(&c, "hooks.poststop[0].timeout");
        c["hooks"] = json!({"prestart": [{"path": "rel"}]});
        rejects(&c, "hooks.prestart[0].path");
    }

    #[test]
    fn time_offsets_need_time_namespace() {
        let mut c = minimal();
        c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 10}});
        rejects(&c, "linux.timeOffsets");
        set_namespaces(&mut c, &["pid", "mount", "time"]);
        accepts(&c);
        // A joined time namespace keeps the offsets it has.
        c["linux"]["namespaces"][2]["path"] = json!("/proc/self/ns/time");
        let msg = rejects(&c, "linux.timeOffsets");
        assert!(msg.contains("joined"), "{msg}");
    }

    #[test]
    fn device_rules_are_checked_one_by_one() {
        let mut c = minimal();
        c["linux"]["resources"] = json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "access": "rw"},
            {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "w"}
        ]});
        let msg = rejects(&c, "linux.resources.devices[2]");
        assert!(msg.contains("deny c 1:11 w"), "{msg}");
        c["linux"]["resources"]["devices"][1]["access"] = json!("rwz");
        let msg = rejects(&c, "linux.resources.devices[1]");
        assert!(msg.contains("'z'"), "{msg}");
        c["linux"]["resources"]["devices"][1]["access"] = json!("r");
        accepts(&c);
    }

    #[test]
    fn masked_paths_need_mount_namespace() {
        let mut c = minimal();
        c["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
        set_namespaces(&mut c, &["pid"]);
        rejects(&c, "linux.maskedPaths");
    }

    #[test]
    fn validation_errors_from_a_bundle_carry_the_config_path() {
        let mut c = minimal();
        c["process"]["args"] = json!([]);
        let msg = rejects(&c, "process.args");
        assert_eq!(msg, "/bundle/config.json: process.args: must not be empty");
    }

    // --- load ---

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CONFIG_FILE), config).unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        dir
    }

    #[test]
    fn load_valid_bundle_and_rootfs() {
        let dir = bundle_with(&serde_json::to_string_pretty(&minimal()).unwrap());
        let spec = load(dir.path()).unwrap();
        assert_eq!(spec.version(), "1.2.0");
        let rootfs = rootfs_path(dir.path(), &spec).unwrap();
        assert_eq!(rootfs, fs::canonicalize(dir.path().join("rootfs")).unwrap());

        // Absolute root.path is used as is.
        let mut c = minimal();
        c["root"]["path"] = json!(rootfs);
        let spec: Spec = serde_json::from_value(c).unwrap();
        assert_eq!(rootfs_path(Path::new("/elsewhere"), &spec).unwrap(), rootfs);
    }

    #[test]
    fn rootfs_missing_or_not_a_directory() {
        let dir = bundle_with(&serde_json::to_string(&minimal()).unwrap());
        let mut c = minimal();
        c["root"]["path"] = json!("nope");
        let spec: Spec = serde_json::from_value(c.clone()).unwrap();
        let err = rootfs_path(dir.path(), &spec).unwrap_err();
        assert!(matches!(err, SpecError::Rootfs { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("root.path: ") && msg.contains("nope"),
            "{msg}"
        );

        c["root"]["path"] = json!(CONFIG_FILE);
        let spec: Spec = serde_json::from_value(c).unwrap();
        let err = rootfs_path(dir.path(), &spec).unwrap_err();
        assert!(matches!(err, SpecError::RootfsNotDirectory { .. }), "{err}");
    }

    #[test]
    fn load_missing_bundle() {
        let err = load(Path::new("/nonexistent/bundle")).unwrap_err();
        assert!(matches!(err, SpecError::Bundle { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/bundle"), "{err}");
    }

    #[test]
    fn load_bundle_that_is_a_file() {
        let dir = bundle_with("{}");
        let err = load(&dir.path().join(CONFIG_FILE)).unwrap_err();
        assert!(matches!(err, SpecError::BundleNotDirectory { .. }), "{err}");
    }

    #[test]
    fn load_missing_config() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, SpecError::ConfigNotFound { .. }), "{err}");
        assert!(err
            .to_string()
            .contains(&dir.path().join(CONFIG_FILE).display().to_string()));
    }

    #[test]
    fn load_malformed_json_keeps_line_and_column() {
        let dir =
            bundle_with("{\n  \"ociVersion\": \"1.0.0\",\n  \"root\": {\"path\": \"rootfs\"\n}");
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, SpecError::Malformed { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("config.json: malformed JSON: "), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn load_schema_error_keeps_line_and_column() {
        let mut text = serde_json::to_string_pretty(&minimal()).unwrap();
        text = text.replace("\"cwd\": \"/\"", "\"cwd\": 42");
        let dir = bundle_with(&text);
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, SpecError::Schema { .. }), "{err}");
        assert!(err.to_string().contains("line "), "{err}");
    }

    #[test]
    fn load_reports_validation_errors_with_the_path() {
        let mut c = minimal();
        c["process"]["args"] = json!([]);
        let dir = bundle_with(&serde_json::to_string(&c).unwrap());
        let err = load(dir.path()).unwrap_err();
        assert_eq!(err.field(), Some("process.args"));
        assert!(
            err.to_string()
                .contains("config.json: process.args: must not be empty"),
            "{err}"
        );
    }
}
