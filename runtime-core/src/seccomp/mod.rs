//! seccomp (config-linux.md, `linux.seccomp`) and the other kernel security modules a spec
//! can ask for (AppArmor, SELinux: [`lsm`]).
//!
//! # Why libseccomp, not a BPF compiler of our own
//!
//! The filter is built with libseccomp (Debian's `libseccomp-dev`, through the `libseccomp`
//! crate), the library runc, crun and Docker use, rather than by compiling BPF in Rust:
//!
//! - Syscall names must be resolved per architecture, and a profile such as Docker's names
//!   three (x86_64, x86, x32) with different numbers, multiplexed calls (`socketcall`, `ipc`
//!   on x86) and 64-bit argument comparisons split into two 32-bit halves on 32-bit ABIs.
//!   libseccomp carries the syscall tables of every architecture and does that rewriting; a
//!   Rust compiler would have to carry and maintain the same tables, with no test hardware
//!   for most of them.
//! - The same input then gives the same filter as runc's, so a profile written for runc or
//!   Docker behaves identically here (unknown names, rule ordering, argument semantics).
//! - It probes the kernel (API level) for what actions and flags the running kernel has, and
//!   hands back the user-notification fd for `SCMP_ACT_NOTIFY`.
//!
//! The cost is a C dependency (`libseccomp.so.2`, in every distribution) and an unsafe
//! boundary kept inside the crate; its API is safe, so this module has no `unsafe`.
//!
//! # Where it runs
//!
//! - [`check_raw`] and [`validate`] run in the runtime's main process while config.json is
//!   loaded (from `crate::spec`), before anything is created: every enumerated name, every
//!   argument and the whole filter (compiled and thrown away) is checked there, so a bad
//!   profile fails `create` with the field named and nothing left behind.
//! - [`Prepared::new`] runs in the container's process while host paths still resolve (it
//!   compiles the filter and connects to the notify listener), and [`Prepared::install`] as
//!   late as possible before execve: right after noNewPrivileges, or, without it, before
//!   capabilities are dropped (loading a filter without noNewPrivileges needs
//!   CAP_SYS_ADMIN), as runc does.

mod enosys;
pub mod lsm;

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::socket::MsgFlags;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator, Spec,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::syscall::fds;

/// Every action of the spec, in the order `features` lists them.
const ACTIONS: [LinuxSeccompAction; 9] = [
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActKill,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActKillThread,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActNotify,
    LinuxSeccompAction::ScmpActTrace,
    LinuxSeccompAction::ScmpActTrap,
];

/// Every comparison operator of the spec.
const OPERATORS: [LinuxSeccompOperator; 7] = [
    LinuxSeccompOperator::ScmpCmpEq,
    LinuxSeccompOperator::ScmpCmpGe,
    LinuxSeccompOperator::ScmpCmpGt,
    LinuxSeccompOperator::ScmpCmpLe,
    LinuxSeccompOperator::ScmpCmpLt,
    LinuxSeccompOperator::ScmpCmpMaskedEq,
    LinuxSeccompOperator::ScmpCmpNe,
];

/// Every architecture name the spec type knows; [`supported_archs`] keeps those the linked
/// libseccomp has tables for.
const ARCHES: [Arch; 24] = [
    Arch::ScmpArchNative,
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

/// Every filter flag of the spec; [`supported_flags`] keeps those the linked libseccomp sets.
const FLAGS: [LinuxSeccompFilterFlag; 4] = [
    LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
    LinuxSeccompFilterFlag::SeccompFilterFlagLog,
    LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
    LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
];

/// Syscall arguments are numbered 0 to 5.
const MAX_ARG_INDEX: u64 = 5;

/// The errno of ERRNO and TRACE actions without an `errnoRet` (config-linux.md: EPERM).
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// A field of config.json and what is wrong with it, as `crate::spec` reports it.
pub type FieldError = (String, String);

fn field_err(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    (field.into(), reason.into())
}

/// The config.json spelling of an enum value (`SCMP_ACT_ALLOW`).
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn names_of<T: Serialize>(values: &[T]) -> Vec<String> {
    values.iter().map(name_of).collect()
}

/// The actions `features` reports.
pub fn supported_actions() -> Vec<LinuxSeccompAction> {
    ACTIONS.to_vec()
}

/// The operators `features` reports.
pub fn supported_operators() -> Vec<String> {
    names_of(&OPERATORS)
}

/// The architectures `features` reports: the spec's names the linked libseccomp knows
/// (`SCMP_ARCH_NATIVE` is an alias, not an architecture, and is not listed).
pub fn supported_archs() -> Vec<Arch> {
    let mut v: Vec<Arch> = ARCHES
        .iter()
        .copied()
        .filter(|a| *a != Arch::ScmpArchNative && arch_supported(*a))
        .collect();
    v.sort_by_key(name_of);
    v
}

/// The filter flags `features` reports as known: every flag the spec defines is mapped.
pub fn known_flags() -> Vec<String> {
    names_of(&FLAGS)
}

/// The filter flags `features` reports: those the linked libseccomp can set.
pub fn supported_flags() -> Vec<String> {
    let v: Vec<LinuxSeccompFilterFlag> = FLAGS
        .iter()
        .copied()
        .filter(|f| {
            ScmpFilterContext::new(ScmpAction::Allow)
                .map(|mut ctx| set_flag(&mut ctx, *f).is_ok())
                .unwrap_or(false)
        })
        .collect();
    names_of(&v)
}

/// Whether the linked libseccomp has the syscall table of `arch` (a filter can still not
/// mix architectures of both byte orders: that is reported when one is compiled).
fn arch_supported(arch: Arch) -> bool {
    ScmpSyscall::from_name_by_arch("close", scmp_arch(arch)).is_ok()
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn scmp_op(op: LinuxSeccompOperator, value_two: u64) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // config-linux.md and libseccomp: (arg & value) == valueTwo.
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two),
    }
}

/// Whether the action takes an errno (ERRNO) or a message for the tracer (TRACE).
fn takes_errno(action: LinuxSeccompAction) -> bool {
    matches!(
        action,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    )
}

fn scmp_action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> ScmpAction {
    let errno = errno_ret.unwrap_or(DEFAULT_ERRNO);
    match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno as i32),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    }
}

fn set_flag(
    ctx: &mut ScmpFilterContext,
    flag: LinuxSeccompFilterFlag,
) -> Result<(), libseccomp::error::SeccompError> {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
    }
    .map(drop)
}

/// SECCOMP_FILTER_FLAG_TSYNC.
const SECCOMP_FILTER_FLAG_TSYNC: u32 = 1;
/// SECCOMP_FILTER_FLAG_TSYNC_ESRCH.
const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: u32 = 1 << 4;

/// The seccomp(2) flag of a spec flag.
fn kernel_flag(flag: LinuxSeccompFilterFlag) -> u32 {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => 1 << 1,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 1 << 2,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 1 << 5,
    }
}

/// libseccomp's version, for messages about what it cannot do.
fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("libseccomp {}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "libseccomp".into())
}

// ---------------------------------------------------------------------------------------
// Validation, in the runtime's main process.

/// Checks the enumerated names and numbers of `linux.seccomp` on the raw JSON, where an
/// unknown action or a negative value can still be reported with its field (the typed
/// spec would only say "unknown variant" with a line and column).
pub fn check_raw(raw: &Value) -> Result<(), FieldError> {
    let Some(seccomp) = raw.pointer("/linux/seccomp").and_then(Value::as_object) else {
        return Ok(());
    };
    let base = "linux.seccomp";
    if let Some(v) = seccomp.get("defaultAction") {
        check_enum::<LinuxSeccompAction, _>(
            &format!("{base}.defaultAction"),
            v,
            "action",
            &ACTIONS,
        )?;
    }
    check_errno_value(
        &format!("{base}.defaultErrnoRet"),
        seccomp.get("defaultErrnoRet"),
    )?;
    if let Some(list) = seccomp.get("architectures").and_then(Value::as_array) {
        for (i, v) in list.iter().enumerate() {
            check_enum::<Arch, _>(
                &format!("{base}.architectures[{i}]"),
                v,
                "architecture",
                &ARCHES,
            )?;
        }
    }
    if let Some(list) = seccomp.get("flags").and_then(Value::as_array) {
        for (i, v) in list.iter().enumerate() {
            check_enum::<LinuxSeccompFilterFlag, _>(
                &format!("{base}.flags[{i}]"),
                v,
                "flag",
                &FLAGS,
            )?;
        }
    }
    let Some(syscalls) = seccomp.get("syscalls").and_then(Value::as_array) else {
        return Ok(());
    };
    for (i, sc) in syscalls.iter().enumerate() {
        let at = format!("{base}.syscalls[{i}]");
        match sc.get("names") {
            None | Some(Value::Null) => return Err(field_err(format!("{at}.names"), "required")),
            Some(Value::Array(names)) => {
                if names.is_empty() {
                    return Err(field_err(
                        format!("{at}.names"),
                        "must contain at least one syscall name",
                    ));
                }
                for (j, n) in names.iter().enumerate() {
                    if n.as_str().is_none_or(str::is_empty) {
                        return Err(field_err(
                            format!("{at}.names[{j}]"),
                            format!("expected a syscall name, got {n}"),
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(field_err(
                    format!("{at}.names"),
                    format!("expected an array of syscall names, got {other}"),
                ))
            }
        }
        match sc.get("action") {
            None | Some(Value::Null) => return Err(field_err(format!("{at}.action"), "required")),
            Some(v) => {
                check_enum::<LinuxSeccompAction, _>(&format!("{at}.action"), v, "action", &ACTIONS)?
            }
        }
        check_errno_value(&format!("{at}.errnoRet"), sc.get("errnoRet"))?;
        let Some(args) = sc.get("args").and_then(Value::as_array) else {
            continue;
        };
        for (j, arg) in args.iter().enumerate() {
            let at = format!("{at}.args[{j}]");
            if !arg.is_object() {
                return Err(field_err(&at, format!("expected an object, got {arg}")));
            }
            match arg.get("index") {
                None | Some(Value::Null) => {
                    return Err(field_err(format!("{at}.index"), "required"))
                }
                Some(v) => match v.as_u64() {
                    Some(n) if n <= MAX_ARG_INDEX => {}
                    _ => {
                        return Err(field_err(
                            format!("{at}.index"),
                            format!("syscall arguments are numbered 0 to {MAX_ARG_INDEX}, got {v}"),
                        ))
                    }
                },
            }
            for key in ["value", "valueTwo"] {
                match arg.get(key) {
                    None | Some(Value::Null) if key == "valueTwo" => {}
                    None | Some(Value::Null) => {
                        return Err(field_err(format!("{at}.{key}"), "required"))
                    }
                    Some(v) if v.as_u64().is_none() => {
                        return Err(field_err(
                            format!("{at}.{key}"),
                            format!("expected an unsigned 64-bit integer, got {v}"),
                        ))
                    }
                    Some(_) => {}
                }
            }
            match arg.get("op") {
                None | Some(Value::Null) => return Err(field_err(format!("{at}.op"), "required")),
                Some(v) => check_enum::<LinuxSeccompOperator, _>(
                    &format!("{at}.op"),
                    v,
                    "operator",
                    &OPERATORS,
                )?,
            }
        }
    }
    Ok(())
}

/// An enumerated string: one of `known`, the names serde accepts for `T`.
fn check_enum<T: DeserializeOwned, K: Serialize>(
    field: &str,
    v: &Value,
    what: &str,
    known: &[K],
) -> Result<(), FieldError> {
    let Some(s) = v.as_str() else {
        return Err(field_err(field, format!("expected a string, got {v}")));
    };
    if serde_json::from_value::<T>(v.clone()).is_ok() {
        return Ok(());
    }
    let mut names = names_of(known);
    names.sort();
    Err(field_err(
        field,
        format!(
            "unknown {what} {s:?} (expected one of {})",
            names.join(", ")
        ),
    ))
}

/// errnoRet and defaultErrnoRet: an errno number (libseccomp takes 16 bits).
fn check_errno_value(field: &str, v: Option<&Value>) -> Result<(), FieldError> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(v) => match v.as_u64() {
            Some(n) if n <= u64::from(u16::MAX) => Ok(()),
            _ => Err(field_err(
                field,
                format!("expected an errno number from 0 to {}, got {v}", u16::MAX),
            )),
        },
    }
}

/// Checks the typed `linux.seccomp` and the security-module fields of `spec` on this host;
/// compiles the filter (and throws it away) so that everything libseccomp would refuse is
/// reported now, with its field. Unknown syscall names are warnings, as in runc.
pub fn validate(spec: &Spec, warnings: &mut Vec<String>) -> Result<(), FieldError> {
    lsm::check(spec)?;
    let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(());
    };
    let key = cache_key(seccomp);
    let hit = COMPILED.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, f)| f.warnings.clone())
    });
    let found = match hit {
        Some(w) => w,
        None => {
            let filter = Filter::compile(seccomp)?;
            let w = filter.warnings.clone();
            COMPILED.with(|c| *c.borrow_mut() = Some((key, filter)));
            w
        }
    };
    warnings.extend(found);
    Ok(())
}

thread_local! {
    /// The filter [`validate`] compiled last, by its profile's JSON. The container's process,
    /// forked from the validating thread, finds its copy here and loads it instead of
    /// compiling the profile again (a few milliseconds for Docker's); a `run` validating
    /// config.json twice compiles once.
    static COMPILED: std::cell::RefCell<Option<(String, Filter)>> =
        const { std::cell::RefCell::new(None) };
}

fn cache_key(seccomp: &LinuxSeccomp) -> String {
    serde_json::to_string(seccomp).unwrap_or_default()
}

/// The filter for `seccomp`: [`validate`]'s copy when this process inherited it, else
/// compiled now.
fn compiled(seccomp: &LinuxSeccomp) -> Result<Filter, FieldError> {
    let key = cache_key(seccomp);
    let cached = COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_some_and(|(k, _)| *k == key) {
            c.take().map(|(_, f)| f)
        } else {
            None
        }
    });
    match cached {
        Some(f) => Ok(f),
        None => Filter::compile(seccomp),
    }
}

// ---------------------------------------------------------------------------------------
// The filter.

/// A compiled filter, not yet loaded.
pub struct Filter {
    ctx: ScmpFilterContext,
    /// The -ENOSYS stub run before libseccomp's program (see [`enosys`]); may be empty.
    stub: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2), from `linux.seccomp.flags` and the actions.
    flags: u32,
    /// Whether any rule (or the default) notifies a listener.
    notifies: bool,
    /// Syscall names that no architecture of the filter knows (skipped).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("stub", &self.stub.len())
            .field("flags", &self.flags)
            .field("notifies", &self.notifies)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl Filter {
    /// Translates `linux.seccomp` into a libseccomp filter. Errors name the field.
    pub fn compile(seccomp: &LinuxSeccomp) -> Result<Self, FieldError> {
        let base = "linux.seccomp";
        let default = seccomp.default_action();
        let default_errno = seccomp.default_errno_ret();
        if default_errno.is_some() && !takes_errno(default) {
            return Err(field_err(
                format!("{base}.defaultErrnoRet"),
                format!(
                    "set, but defaultAction {} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
                    name_of(&default)
                ),
            ));
        }
        if default == LinuxSeccompAction::ScmpActNotify {
            // Every syscall, the runtime's own included, would wait for an agent that does
            // not have the descriptor yet.
            return Err(field_err(
                format!("{base}.defaultAction"),
                "SCMP_ACT_NOTIFY cannot be the default action",
            ));
        }
        let mut ctx = ScmpFilterContext::new(scmp_action(default, default_errno)).map_err(|e| {
            field_err(
                format!("{base}.defaultAction"),
                format!("{}: {e}", name_of(&default)),
            )
        })?;
        // libseccomp sets no_new_privs itself on load unless told not to; whether the process
        // gets it is process.noNewPrivileges' business.
        ctx.set_ctl_nnp(false)
            .map_err(|e| field_err(base, format!("disabling libseccomp's no_new_privs: {e}")))?;

        for (i, arch) in seccomp.architectures().iter().flatten().enumerate() {
            let a = scmp_arch(*arch);
            if ctx.is_arch_present(a).unwrap_or(false) {
                continue;
            }
            ctx.add_arch(a).map_err(|e| {
                let why = if arch_supported(*arch) {
                    // libseccomp has its table, but one filter holds one byte order.
                    "cannot be combined with this host's architecture in one filter"
                } else {
                    "is not supported by"
                };
                field_err(
                    format!("{base}.architectures[{i}]"),
                    format!("{} {why} {}: {e}", name_of(arch), libseccomp_version()),
                )
            })?;
        }
        // The stub bounds every architecture of the filter: the native one (which a
        // filter always has) and those the spec adds.
        let mut archs = vec![ScmpArch::native()];
        archs.extend(
            seccomp
                .architectures()
                .iter()
                .flatten()
                .map(|a| scmp_arch(*a))
                .filter(|a| *a != ScmpArch::Native && *a != ScmpArch::native()),
        );
        let mut flags = 0;
        for (i, flag) in seccomp.flags().iter().flatten().enumerate() {
            flags |= kernel_flag(*flag);
            set_flag(&mut ctx, *flag).map_err(|e| {
                field_err(
                    format!("{base}.flags[{i}]"),
                    format!(
                        "{} is not supported by {}: {e}",
                        name_of(flag),
                        libseccomp_version()
                    ),
                )
            })?;
        }

        let mut notifies = false;
        let mut warnings = Vec::new();
        for (i, sc) in seccomp.syscalls().iter().flatten().enumerate() {
            let at = format!("{base}.syscalls[{i}]");
            let action = sc.action();
            if sc.errno_ret().is_some() && !takes_errno(action) {
                return Err(field_err(
                    format!("{at}.errnoRet"),
                    format!(
                        "set, but action {} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)",
                        name_of(&action)
                    ),
                ));
            }
            if sc.names().is_empty() {
                return Err(field_err(
                    format!("{at}.names"),
                    "must contain at least one syscall name",
                ));
            }
            let conditions = conditions(&at, sc.args().as_deref().unwrap_or_default())?;
            let scmp = scmp_action(action, sc.errno_ret());
            // A rule with the default's own action changes nothing; libseccomp refuses it.
            if scmp == scmp_action(default, default_errno) {
                continue;
            }
            if action == LinuxSeccompAction::ScmpActNotify {
                notifies = true;
                if let Some(j) = sc.names().iter().position(|n| n == "sendmsg") {
                    // The runtime sends the notify descriptor with sendmsg once the filter is
                    // loaded: that call would wait for an agent that cannot answer yet.
                    return Err(field_err(
                        format!("{at}.names[{j}]"),
                        "SCMP_ACT_NOTIFY cannot be used for sendmsg: the runtime needs it to hand the notify descriptor to the listener",
                    ));
                }
            }
            for (j, name) in sc.names().iter().enumerate() {
                let Ok(nr) = ScmpSyscall::from_name(name) else {
                    // runc: a name libseccomp does not know (a syscall of a newer kernel, or a
                    // typo) is skipped with a warning, not an error.
                    warnings.push(format!(
                        "{at}.names[{j}]: unknown syscall {name:?} ignored ({} does not know it)",
                        libseccomp_version()
                    ));
                    continue;
                };
                for rule in &conditions {
                    ctx.add_rule_conditional(scmp, nr, rule).map_err(|e| {
                        field_err(
                            format!("{at}.names[{j}]"),
                            format!("adding the rule for {name:?}: {e}"),
                        )
                    })?;
                }
            }
        }
        if notifies && seccomp.listener_path().is_none() {
            return Err(field_err(
                format!("{base}.listenerPath"),
                "required when an action is SCMP_ACT_NOTIFY",
            ));
        }
        if seccomp
            .listener_metadata()
            .as_ref()
            .is_some_and(|m| !m.is_empty())
            && seccomp.listener_path().is_none()
        {
            return Err(field_err(
                format!("{base}.listenerMetadata"),
                "set, but listenerPath is not",
            ));
        }
        if let Some(p) = seccomp.listener_path() {
            if notifies && !p.is_absolute() {
                return Err(field_err(
                    format!("{base}.listenerPath"),
                    format!(
                        "must be an absolute path, got {:?}",
                        p.display().to_string()
                    ),
                ));
            }
        }
        if notifies {
            flags |= crate::syscall::SECCOMP_FILTER_FLAG_NEW_LISTENER;
            if flags & SECCOMP_FILTER_FLAG_TSYNC != 0 {
                // With a listener the kernel wants TSYNC to report failure as ESRCH.
                flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
            }
        }
        Ok(Filter {
            stub: enosys::stub(seccomp, &archs),
            ctx,
            flags,
            notifies,
            warnings,
        })
    }

    /// The whole program to load: the stub, then libseccomp's filter.
    fn program(&self) -> Result<Vec<libc::sock_filter>, String> {
        use nix::sys::memfd::{memfd_create, MFdFlags};
        use std::io::{Read, Seek};
        // seccomp_export_bpf writes to a descriptor (libseccomp 2.5 has no in-memory
        // export); a memfd needs no path and no reader thread.
        let fd = memfd_create(c"seccomp-bpf", MFdFlags::MFD_CLOEXEC)
            .map_err(|e| format!("memfd_create for the seccomp program: {e}"))?;
        let mut f = std::fs::File::from(fd);
        self.ctx
            .export_bpf(&f)
            .map_err(|e| format!("exporting the seccomp program: {e}"))?;
        let mut bytes = Vec::new();
        f.rewind()
            .and_then(|_| f.read_to_end(&mut bytes))
            .map_err(|e| format!("reading the exported seccomp program: {e}"))?;
        let mut program = self.stub.clone();
        program.extend(enosys::parse(&bytes)?);
        Ok(program)
    }

    /// Whether loading this filter gives a notify descriptor to pass on.
    #[cfg(test)]
    pub fn notifies(&self) -> bool {
        self.notifies
    }
}

/// The rules one syscall entry becomes, each a list of AND'ed comparisons. libseccomp
/// compares each argument at most once per rule, so when an entry names the same argument
/// twice its conditions become separate rules (OR'ed), as runc does; otherwise one rule.
fn conditions(
    at: &str,
    args: &[oci_spec::runtime::LinuxSeccompArg],
) -> Result<Vec<Vec<ScmpArgCompare>>, FieldError> {
    let mut per_index = [0usize; MAX_ARG_INDEX as usize + 1];
    let mut all = Vec::with_capacity(args.len());
    for (j, a) in args.iter().enumerate() {
        let index = a.index();
        if index as u64 > MAX_ARG_INDEX {
            return Err(field_err(
                format!("{at}.args[{j}].index"),
                format!("syscall arguments are numbered 0 to {MAX_ARG_INDEX}, got {index}"),
            ));
        }
        per_index[index] += 1;
        let cmp = if a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq {
            // value is the mask, valueTwo the value the masked argument must equal.
            ScmpArgCompare::new(
                index as u32,
                scmp_op(a.op(), a.value()),
                a.value_two().unwrap_or(0),
            )
        } else {
            ScmpArgCompare::new(index as u32, scmp_op(a.op(), 0), a.value())
        };
        all.push(cmp);
    }
    if all.is_empty() {
        return Ok(vec![vec![]]);
    }
    if per_index.iter().any(|n| *n > 1) {
        Ok(all.into_iter().map(|c| vec![c]).collect())
    } else {
        Ok(vec![all])
    }
}

// ---------------------------------------------------------------------------------------
// Installing it, in the container's process.

/// The container's profile and OCI state, which an exec'd process needs to install the
/// container's filter (and to tell a notify listener whose process it is).
#[derive(Debug, Clone)]
pub struct ContainerSeccomp {
    /// `linux.seccomp` as it was at create.
    pub config: LinuxSeccomp,
    /// The container's OCI state document.
    pub state: Value,
}

/// A container process's filter, compiled, with its notify listener connected: everything
/// that needs host paths or may fail, done before the process enters the container.
pub struct Prepared {
    /// The program to load: the -ENOSYS stub and libseccomp's filter.
    program: Vec<libc::sock_filter>,
    /// seccomp(2) flags.
    flags: u32,
    listener: Option<Listener>,
}

/// The connection to the seccomp agent and what to tell it.
struct Listener {
    path: PathBuf,
    socket: UnixStream,
    /// The container process state (runtime-spec state.go's ContainerProcessState),
    /// serialized before the filter is loaded.
    message: Vec<u8>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("program", &self.program.len())
            .field("flags", &self.flags)
            .field("listener", &self.listener.as_ref().map(|l| &l.path))
            .finish()
    }
}

impl Prepared {
    /// Compiles `seccomp` and, when it notifies, connects to `listenerPath`. `state` is the
    /// container's OCI state, sent to the listener with this process's pid. Call it in the
    /// container's process before it leaves the runtime's mount namespace.
    pub fn new(seccomp: Option<&LinuxSeccomp>, state: Value) -> Result<Option<Self>, String> {
        let Some(seccomp) = seccomp else {
            return Ok(None);
        };
        let filter = compiled(seccomp).map_err(|(f, r)| format!("{f}: {r}"))?;
        let listener = match (filter.notifies, seccomp.listener_path()) {
            (true, Some(path)) => {
                let socket = UnixStream::connect(path).map_err(|e| {
                    format!(
                        "linux.seccomp.listenerPath: connecting to {}: {e}",
                        path.display()
                    )
                })?;
                let pid = own_host_pid()?;
                let message = process_state(pid, seccomp.listener_metadata().clone(), state);
                Some(Listener {
                    path: path.clone(),
                    socket,
                    message,
                })
            }
            _ => None,
        };
        Ok(Some(Prepared {
            program: filter.program()?,
            flags: filter.flags,
            listener,
        }))
    }

    /// Loads the filter into this process; with a notify action, hands the notify
    /// descriptor and the process state to the listener and closes both.
    pub fn install(self, sys: &impl crate::syscall::Syscall) -> Result<(), String> {
        // Loaded by seccomp(2) here, not by libseccomp, so that the stub runs first.
        let notify = sys
            .seccomp_load(&self.program, self.flags)
            .map_err(|e| format!("loading the seccomp filter (linux.seccomp): {e}"))?;
        let (Some(listener), Some(fd)) = (self.listener, notify) else {
            return Ok(());
        };
        // The program must not hold its own notify descriptor (it could answer for
        // itself): `fd` is closed when this returns.
        send_to_listener(&listener, fd.as_fd())
    }
}

/// ContainerProcessState (runtime-spec config-linux.md, listenerPath): the notify fd is
/// the only descriptor sent, named `seccompFd`.
fn process_state(pid: i32, metadata: Option<String>, state: Value) -> Vec<u8> {
    let mut v = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "fds": [oci_spec::runtime::SECCOMP_FD_NAME],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = metadata.filter(|m| !m.is_empty()) {
        v["metadata"] = Value::String(m);
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// One message: the state as the payload, the descriptor as SCM_RIGHTS; the rest of the
/// payload, if the stream took only part of it, follows.
fn send_to_listener(listener: &Listener, notify_fd: BorrowedFd<'_>) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| {
        format!(
            "linux.seccomp.listenerPath: sending the seccomp state to {}: {e}",
            listener.path.display()
        )
    };
    let sent = fds::send_with_fds(
        listener.socket.as_fd(),
        &listener.message,
        &[notify_fd],
        MsgFlags::MSG_NOSIGNAL,
    )
    .map_err(|e| err(&e))?;
    let mut socket = &listener.socket;
    socket
        .write_all(&listener.message[sent..])
        .map_err(|e| err(&e))?;
    socket
        .shutdown(std::net::Shutdown::Both)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotConnected => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| err(&e))
}

/// This process's pid in the runtime's pid namespace (the first NSpid entry), read while
/// /proc is still the runtime's.
fn own_host_pid() -> Result<i32, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no NSpid in /proc/self/status".to_string())
}

#[cfg(test)]
mod tests;
