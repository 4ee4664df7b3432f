//! The -ENOSYS stub: syscalls newer than every syscall a profile names fail with ENOSYS,
//! not with the profile's default action.
//!
//! A profile written before a syscall existed cannot allow it, so its default action
//! (usually ERRNO(EPERM)) answers it. Programs and libc then see EPERM, which means
//! "refused", and stop, where ENOSYS ("this kernel does not have it") makes them fall
//! back to the older call: glibc from clone3 to clone, from close_range to a loop, from
//! faccessat2 to faccessat. runc prepends the same stub to the filter libseccomp builds, so
//! the profiles of 2019 that Docker, Kubernetes and images still carry keep working.
//!
//! The stub is classic BPF, run before libseccomp's filter: it loads the architecture,
//! and for each architecture of the filter loads the syscall number and returns
//! ERRNO(ENOSYS) when it is above the largest number the profile names for that
//! architecture (whatever that syscall's action); everything else falls through to the
//! filter. On x86_64 the x32 ABI shares the architecture value and marks its syscall
//! numbers with bit 30, so the two get separate bounds.

use libc::sock_filter;
use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

// Classic BPF opcodes (<linux/bpf_common.h>).
/// BPF_LD | BPF_W | BPF_ABS: `A = data[k]` (32 bits).
const LD_ABS: u16 = 0x20;
/// BPF_JMP | BPF_JEQ | BPF_K.
const JEQ: u16 = 0x15;
/// BPF_JMP | BPF_JGT | BPF_K.
const JGT: u16 = 0x25;
/// BPF_JMP | BPF_JSET | BPF_K: jump if `A & k`.
const JSET: u16 = 0x45;
/// BPF_JMP | BPF_JA: jump by `k`.
const JA: u16 = 0x05;
/// BPF_RET | BPF_K.
const RET: u16 = 0x06;

/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR: u32 = 0;
const ARCH: u32 = 4;
/// The x32 ABI's mark on its syscall numbers.
const X32_BIT: u32 = 1 << 30;
/// SECCOMP_RET_ERRNO | ENOSYS.
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

/// AUDIT_ARCH_* of <linux/audit.h>, the `arch` the kernel puts in `seccomp_data`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The largest syscall number `seccomp` names for `arch`, if it names any there.
fn last_syscall(seccomp: &LinuxSeccomp, arch: ScmpArch) -> Option<u32> {
    seccomp
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|s| s.names())
        .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
        // Negative numbers are libseccomp's pseudo-syscalls (multiplexed calls): no bound.
        .filter_map(|s| u32::try_from(i32::from(s)).ok())
        .max()
}

/// What the stub checks for one architecture value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bounds {
    audit_arch: u32,
    /// The bound for syscall numbers without the x32 bit (x86_64 itself, or any other).
    native: Option<u32>,
    /// The bound for numbers with it (x32), on x86_64 only.
    x32: Option<u32>,
}

/// Whether `seccomp` gets the stub: not when its default action lets unknown syscalls
/// through anyway (allow, log, trace: a tracer handles new syscalls itself), nor when the
/// default already is ENOSYS.
fn wanted(seccomp: &LinuxSeccomp) -> bool {
    let default = seccomp.default_action();
    let permissive = matches!(
        default,
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );
    let enosys = default == LinuxSeccompAction::ScmpActErrno
        && seccomp.default_errno_ret() == Some(libc::ENOSYS as u32);
    !permissive && !enosys
}

/// The bounds for the architectures of `archs` (the filter's, the native one included).
fn bounds(seccomp: &LinuxSeccomp, archs: &[ScmpArch]) -> Vec<Bounds> {
    let mut out: Vec<Bounds> = Vec::new();
    for &arch in archs {
        let (audit_arch, is_x32) = match arch {
            ScmpArch::X8664 => (AUDIT_ARCH_X86_64, false),
            ScmpArch::X32 => (AUDIT_ARCH_X86_64, true),
            ScmpArch::X86 => (AUDIT_ARCH_I386, false),
            ScmpArch::Aarch64 => (AUDIT_ARCH_AARCH64, false),
            // Architectures this runtime is not built for: their processes go straight to
            // the filter (and its bad-architecture action).
            _ => continue,
        };
        let Some(last) = last_syscall(seccomp, arch) else {
            continue;
        };
        let i = match out.iter().position(|b| b.audit_arch == audit_arch) {
            Some(i) => i,
            None => {
                out.push(Bounds {
                    audit_arch,
                    native: None,
                    x32: None,
                });
                out.len() - 1
            }
        };
        if is_x32 {
            out[i].x32 = Some(last);
        } else {
            out[i].native = Some(last);
        }
    }
    out
}

/// Where a jump of a section goes.
#[derive(Debug, Clone, Copy)]
enum To {
    /// The ERRNO(ENOSYS) return at the end of the stub.
    Enosys,
    /// The first instruction of libseccomp's filter.
    Filter,
    /// An instruction of the section itself.
    Here(usize),
}

/// The checks of one architecture: (opcode, k, where a true condition or `ja` goes).
fn checks(b: &Bounds) -> Vec<(u16, u32, To)> {
    let mut c = vec![(LD_ABS, NR, To::Filter)];
    if b.audit_arch == AUDIT_ARCH_X86_64 {
        // x32 numbers carry bit 30: they go to their own bound, after the native one's
        // `ja`, or straight to the filter.
        let x32_at = 2 + usize::from(b.native.is_some()) + 1;
        let to = if b.x32.is_some() {
            To::Here(x32_at)
        } else {
            To::Filter
        };
        c.push((JSET, X32_BIT, to));
    }
    if let Some(n) = b.native {
        c.push((JGT, n, To::Enosys));
    }
    c.push((JA, 0, To::Filter));
    if let Some(n) = b.x32.filter(|_| b.audit_arch == AUDIT_ARCH_X86_64) {
        c.push((JGT, n, To::Enosys));
        c.push((JA, 0, To::Filter));
    }
    c
}

/// One architecture's section, placed at `at` in a stub whose ENOSYS return is at
/// `enosys` and which is followed by the filter at `filter`.
fn section(b: &Bounds, at: usize, enosys: usize, filter: usize) -> Vec<sock_filter> {
    checks(b)
        .into_iter()
        .enumerate()
        .map(|(i, (code, k, to))| {
            let target = match to {
                To::Enosys => enosys,
                To::Filter => filter,
                To::Here(j) => at + j,
            };
            // Relative to the next instruction.
            let skip = target - (at + i) - 1;
            match code {
                JA => insn(JA, 0, 0, skip as u32),
                // A stub is a few dozen instructions: conditional jumps fit in 8 bits.
                JGT | JSET => insn(code, skip as u8, 0, k),
                _ => insn(code, 0, 0, k),
            }
        })
        .collect()
}

/// The stub for `seccomp` on a filter of the architectures `archs`; empty when none is
/// wanted. Prepended to libseccomp's program, it falls through to it.
pub(crate) fn stub(seccomp: &LinuxSeccomp, archs: &[ScmpArch]) -> Vec<sock_filter> {
    if !wanted(seccomp) {
        return Vec::new();
    }
    let bounds = bounds(seccomp, archs);
    if bounds.is_empty() {
        return Vec::new();
    }
    // Layout: ld arch; one jeq per architecture; ja filter; the sections; ret ENOSYS.
    let head = 1 + bounds.len() + 1;
    let mut starts = Vec::new();
    let mut end = head;
    for b in &bounds {
        starts.push(end);
        end += checks(b).len();
    }
    let (enosys, filter) = (end, end + 1);
    let mut out = vec![insn(LD_ABS, 0, 0, ARCH)];
    for (i, b) in bounds.iter().enumerate() {
        out.push(insn(JEQ, (starts[i] - (1 + i) - 1) as u8, 0, b.audit_arch));
    }
    out.push(insn(JA, 0, 0, (filter - head) as u32));
    for (b, at) in bounds.iter().zip(&starts) {
        out.extend(section(b, *at, enosys, filter));
    }
    out.push(insn(RET, 0, 0, RET_ENOSYS));
    out
}

/// Parses the program `seccomp_export_bpf` wrote: `struct sock_filter`s in host order.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<sock_filter>, String> {
    if !bytes.len().is_multiple_of(8) {
        return Err(format!(
            "the exported seccomp program has {} bytes, not a whole number of instructions",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs a classic BPF seccomp program on (`arch`, `nr`) with zero arguments; knows the
    /// instructions libseccomp 2.5 and [`stub`] emit.
    pub(crate) fn run(prog: &[sock_filter], arch: u32, nr: u32) -> u32 {
        let data = |off: u32| -> u32 {
            match off {
                NR => nr,
                ARCH => arch,
                // instruction pointer and arguments
                _ => 0,
            }
        };
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        for _ in 0..100_000 {
            let i = prog
                .get(pc)
                .unwrap_or_else(|| panic!("ran off the end at {pc}"));
            let mut next = pc + 1;
            let jump = |taken: bool| if taken { i.jt as usize } else { i.jf as usize };
            match i.code {
                LD_ABS => a = data(i.k),
                0x00 => a = i.k,               // ld #k
                0x01 => x = i.k,               // ldx #k
                0x60 => a = mem[i.k as usize], // ld M[k]
                0x61 => x = mem[i.k as usize], // ldx M[k]
                0x02 => mem[i.k as usize] = a, // st
                0x03 => mem[i.k as usize] = x, // stx
                0x07 => x = a,                 // tax
                0x87 => a = x,                 // txa
                0x54 => a &= i.k,              // and #k
                0x44 => a |= i.k,              // or #k
                JA => next += i.k as usize,
                JEQ => next += jump(a == i.k),
                JGT => next += jump(a > i.k),
                0x35 => next += jump(a >= i.k), // jge
                JSET => next += jump(a & i.k != 0),
                0x1d => next += jump(a == x), // jeq x
                0x2d => next += jump(a > x),  // jgt x
                0x3d => next += jump(a >= x), // jge x
                RET => return i.k,
                c => panic!("opcode {c:#x} at {pc}"),
            }
            pc = next;
        }
        panic!("the program loops");
    }

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("seccomp JSON")
    }

    fn nr(name: &str, arch: ScmpArch) -> u32 {
        i32::from(ScmpSyscall::from_name_by_arch(name, arch).expect("known")) as u32
    }

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "write", "exit_group", "rseq"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}
        ]
    }"#;

    #[test]
    fn newer_syscalls_get_enosys_older_ones_go_to_the_filter() {
        let p = profile(PROFILE);
        let archs = [ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32];
        let mut prog = stub(&p, &archs);
        // A stand-in for libseccomp's filter: answer 0x7fff0000 (allow) to everything.
        let filter = 0x7fff_0000;
        prog.push(insn(RET, 0, 0, filter));
        for (arch, scmp, x32) in [
            (AUDIT_ARCH_X86_64, ScmpArch::X8664, false),
            (AUDIT_ARCH_I386, ScmpArch::X86, false),
            (AUDIT_ARCH_X86_64, ScmpArch::X32, true),
        ] {
            let last = ["read", "write", "exit_group", "rseq", "ptrace"]
                .iter()
                .map(|n| nr(n, scmp))
                .max()
                .expect("names");
            let close_range = nr("close_range", scmp);
            // x32's own ptrace (521 | bit 30) is above close_range: there the filter decides.
            if !x32 {
                assert!(close_range > last, "{scmp:?}");
                assert_eq!(
                    run(&prog, arch, close_range),
                    RET_ENOSYS,
                    "{scmp:?} close_range"
                );
            }
            assert_eq!(run(&prog, arch, last + 1), RET_ENOSYS, "{scmp:?} last + 1");
            assert_eq!(run(&prog, arch, last), filter, "{scmp:?} last");
            assert_eq!(run(&prog, arch, nr("read", scmp)), filter, "{scmp:?} read");
            // A number the profile does not name but below its last: the filter decides.
            assert_eq!(
                run(&prog, arch, nr("mount", scmp)),
                filter,
                "{scmp:?} mount"
            );
            if x32 {
                assert_eq!(nr("read", scmp) & X32_BIT, X32_BIT);
            }
        }
        // Another architecture: straight to the filter.
        assert_eq!(run(&prog, AUDIT_ARCH_AARCH64, 999), filter);
    }

    /// The whole program as loaded: stub and libseccomp's real filter.
    #[test]
    fn the_loaded_program_answers_as_runc_s() {
        let p = profile(PROFILE);
        let filter = super::super::Filter::compile(&p).expect("compile");
        let prog = filter.program().expect("program");
        let x86_64 = |name| run(&prog, AUDIT_ARCH_X86_64, nr(name, ScmpArch::X8664));
        let eperm = 0x0005_0000 | libc::EPERM as u32;
        assert_eq!(x86_64("read"), 0x7fff_0000, "allowed");
        assert_eq!(
            x86_64("mount"),
            eperm,
            "older than the profile, not allowed"
        );
        assert_eq!(x86_64("ptrace"), eperm);
        for newer in [
            "clone3",
            "close_range",
            "faccessat2",
            "openat2",
            "epoll_pwait2",
        ] {
            assert_eq!(x86_64(newer), RET_ENOSYS, "{newer}");
        }
        // A number past any table libseccomp has (a future syscall): ENOSYS too.
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 1000), RET_ENOSYS);
    }

    #[test]
    fn x86_64_without_x32_sends_x32_numbers_to_the_filter() {
        let p = profile(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        let mut prog = stub(&p, &[ScmpArch::X8664]);
        prog.push(insn(RET, 0, 0, 1));
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 5), RET_ENOSYS);
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, X32_BIT | 5), 1);
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 0), 1);
    }

    #[test]
    fn no_stub_where_new_syscalls_pass_anyway() {
        for default in [
            r#""defaultAction": "SCMP_ACT_ALLOW""#,
            r#""defaultAction": "SCMP_ACT_LOG""#,
            r#""defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38"#,
        ] {
            let p = profile(&format!(
                r#"{{{default}, "syscalls": [{{"names": ["read"], "action": "SCMP_ACT_ERRNO"}}]}}"#
            ));
            assert!(stub(&p, &[ScmpArch::X8664]).is_empty(), "{default}");
        }
        // Nothing named: no bound to compare with.
        let p = profile(r#"{"defaultAction": "SCMP_ACT_KILL"}"#);
        assert!(stub(&p, &[ScmpArch::X8664]).is_empty());
    }

    #[test]
    fn exported_programs_parse() {
        let bytes: Vec<u8> = [insn(RET, 1, 2, 3), insn(LD_ABS, 0, 0, 4)]
            .iter()
            .flat_map(|i| {
                let mut b = i.code.to_ne_bytes().to_vec();
                b.extend([i.jt, i.jf]);
                b.extend(i.k.to_ne_bytes());
                b
            })
            .collect();
        let p = parse(&bytes).expect("parse");
        assert_eq!((p[0].code, p[0].jt, p[0].jf, p[0].k), (RET, 1, 2, 3));
        assert_eq!(p[1].k, 4);
        assert!(parse(&bytes[..7]).is_err());
    }
}
