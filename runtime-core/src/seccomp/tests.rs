//! Unit tests of the spec -> filter translation, without root: the filter libseccomp builds
//! is exported as classic BPF and run here on made-up syscalls, so what is checked is the
//! program the kernel would run, not the calls that built it.

use std::io::{Read, Seek};

use serde_json::json;

use super::*;

/// AUDIT_ARCH_X86_64, AUDIT_ARCH_I386 (the `arch` word of struct seccomp_data).
const AUDIT_X86_64: u32 = 0xc000_003e;
const AUDIT_I386: u32 = 0x4000_0003;

/// SECCOMP_RET_* action values (the high 16 bits of the return value) and the data mask.
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

fn seccomp(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("a LinuxSeccomp")
}

fn compile(v: serde_json::Value) -> Filter {
    Filter::compile(&seccomp(v)).unwrap_or_else(|(f, r)| panic!("{f}: {r}"))
}

fn compile_err(v: serde_json::Value) -> FieldError {
    Filter::compile(&seccomp(v)).expect_err("should not compile")
}

/// One classic BPF instruction (struct sock_filter).
#[derive(Debug, Clone, Copy)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// The filter as the kernel would get it.
fn program(f: &Filter) -> Vec<Insn> {
    let mut file = tempfile::tempfile().unwrap();
    f.ctx.export_bpf(&file).expect("export_bpf");
    file.rewind().unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() % 8, 0);
    bytes
        .chunks(8)
        .map(|c| Insn {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// Runs the program on struct seccomp_data { nr, arch, ip, args[6] }: the subset of
/// classic BPF that seccomp filters use.
fn run(prog: &[Insn], arch: u32, nr: i32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for a in args {
        data.extend_from_slice(&a.to_ne_bytes());
    }
    let word = |off: u32| {
        let o = off as usize;
        u32::from_ne_bytes(data[o..o + 4].try_into().unwrap())
    };
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        let jump = |cond: bool, pc: &mut usize| *pc += if cond { i.jt } else { i.jf } as usize;
        match i.code {
            0x20 => a = word(i.k),         // ld [k]
            0x00 => a = i.k,               // ld #k
            0x01 => x = i.k,               // ldx #k
            0x60 => a = mem[i.k as usize], // ld M[k]
            0x61 => x = mem[i.k as usize], // ldx M[k]
            0x02 => mem[i.k as usize] = a, // st M[k]
            0x03 => mem[i.k as usize] = x, // stx M[k]
            0x54 => a &= i.k,              // and #k
            0x5c => a &= x,                // and x
            0x44 => a |= i.k,              // or #k
            0x07 => x = a,                 // tax
            0x87 => a = x,                 // txa
            0x05 => pc += i.k as usize,    // ja
            0x15 => jump(a == i.k, &mut pc),
            0x25 => jump(a > i.k, &mut pc),
            0x35 => jump(a >= i.k, &mut pc),
            0x45 => jump(a & i.k != 0, &mut pc),
            0x1d => jump(a == x, &mut pc),
            0x2d => jump(a > x, &mut pc),
            0x3d => jump(a >= x, &mut pc),
            0x06 => return i.k, // ret #k
            0x16 => return a,   // ret a
            other => panic!("BPF opcode {other:#x} not interpreted (insn {})", pc - 1),
        }
    }
}

fn nr(name: &str) -> i32 {
    ScmpSyscall::from_name_by_arch(name, ScmpArch::X8664)
        .unwrap()
        .as_raw_syscall()
}

fn nr_x86(name: &str) -> i32 {
    ScmpSyscall::from_name_by_arch(name, ScmpArch::X86)
        .unwrap()
        .as_raw_syscall()
}

#[test]
fn default_action_and_errno_rules() {
    let f = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getcwd"], "action": "SCMP_ACT_LOG"},
            {"names": ["unlink"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["unlinkat"], "action": "SCMP_ACT_KILL"},
            {"names": ["rename"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["renameat"], "action": "SCMP_ACT_TRAP"},
            {"names": ["link"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
        ]
    }));
    assert!(!f.notifies());
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    let p = program(&f);
    let call = |name: &str| run(&p, AUDIT_X86_64, nr(name), [0; 6]);
    assert_eq!(call("mkdir"), RET_ERRNO | 28);
    assert_eq!(call("mkdirat"), RET_ERRNO | 28);
    // errnoRet absent: EPERM (config-linux.md).
    assert_eq!(call("rmdir"), RET_ERRNO | libc::EPERM as u32);
    assert_eq!(call("getcwd"), RET_LOG);
    assert_eq!(call("unlink"), RET_KILL_PROCESS);
    assert_eq!(call("unlinkat"), RET_KILL_THREAD);
    assert_eq!(call("rename"), RET_KILL_THREAD);
    assert_eq!(call("renameat"), RET_TRAP);
    assert_eq!(call("link"), RET_TRACE | 7);
    assert_eq!(call("read"), RET_ALLOW);
}

#[test]
fn default_errno_ret() {
    let f = compile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let p = program(&f);
    assert_eq!(run(&p, AUDIT_X86_64, nr("read"), [0; 6]), RET_ALLOW);
    assert_eq!(run(&p, AUDIT_X86_64, nr("unshare"), [0; 6]), RET_ERRNO | 38);
    // Without defaultErrnoRet: EPERM.
    let f = compile(json!({"defaultAction": "SCMP_ACT_ERRNO"}));
    let p = program(&f);
    assert_eq!(run(&p, AUDIT_X86_64, nr("unshare"), [0; 6]), RET_ERRNO | 1);
}

#[test]
fn argument_conditions_compare_the_right_argument() {
    // Docker's personality rule: a few values allowed, the rest denied by default.
    let allowed = [0u64, 8, 0x20000, 0x20008, 0xffff_ffff];
    let syscalls: Vec<_> = allowed
        .iter()
        .map(|v| {
            json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
        })
        .chain([
            // Docker's clone rule: no namespace flag in arg 0.
            json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": 2_114_060_288u64, "valueTwo": 0,
                             "op": "SCMP_CMP_MASKED_EQ"}]}),
            json!({"names": ["dup3"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 2, "value": 5, "op": "SCMP_CMP_NE"}]}),
            json!({"names": ["lseek"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_LT"},
                            {"index": 2, "value": 2, "op": "SCMP_CMP_LE"}]}),
            json!({"names": ["pread64"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 3, "value": 100, "op": "SCMP_CMP_GT"}]}),
            json!({"names": ["pwrite64"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 5, "value": 100, "op": "SCMP_CMP_GE"}]}),
            // The same argument twice: either matches (runc's rule).
            json!({"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                            {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]}),
        ])
        .collect();
    let f = compile(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": syscalls}));
    let p = program(&f);
    let call = |name: &str, args: [u64; 6]| run(&p, AUDIT_X86_64, nr(name), args);
    let denied = RET_ERRNO | libc::EPERM as u32;
    for v in allowed {
        assert_eq!(call("personality", [v, 0, 0, 0, 0, 0]), RET_ALLOW, "{v:#x}");
    }
    for v in [0x40000u64, 0x8000_0000, 1, 0x1_0000_0000] {
        assert_eq!(call("personality", [v, 0, 0, 0, 0, 0]), denied, "{v:#x}");
    }
    assert_eq!(call("clone", [0x11, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call("clone", [0x1000_0000 | 0x11, 0, 0, 0, 0, 0]), denied); // CLONE_NEWUSER
    assert_eq!(call("clone", [0x2_0000, 0, 0, 0, 0, 0]), denied); // CLONE_NEWNS
    assert_eq!(call("dup3", [1, 2, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call("dup3", [1, 2, 5, 0, 0, 0]), denied);
    assert_eq!(call("lseek", [0, 9, 2, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call("lseek", [0, 10, 2, 0, 0, 0]), denied);
    assert_eq!(call("lseek", [0, 9, 3, 0, 0, 0]), denied);
    assert_eq!(call("pread64", [0, 0, 0, 101, 0, 0]), RET_ALLOW);
    assert_eq!(call("pread64", [0, 0, 0, 100, 0, 0]), denied);
    assert_eq!(call("pwrite64", [0, 0, 0, 0, 0, 100]), RET_ALLOW);
    assert_eq!(call("pwrite64", [0, 0, 0, 0, 0, 99]), denied);
    assert_eq!(call("kill", [1, 9, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call("kill", [1, 15, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call("kill", [1, 2, 0, 0, 0, 0]), denied);
}

#[test]
fn names_resolve_per_architecture() {
    let f = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["unshare", "socketcall"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let p = program(&f);
    let eperm = RET_ERRNO | libc::EPERM as u32;
    // unshare is 272 on x86_64 and 310 on i386; the filter knows both.
    assert_ne!(nr("unshare"), nr_x86("unshare"));
    assert_eq!(run(&p, AUDIT_X86_64, nr("unshare"), [0; 6]), eperm);
    assert_eq!(run(&p, AUDIT_I386, nr_x86("unshare"), [0; 6]), eperm);
    // i386's number of unshare is another syscall on x86_64, and allowed there.
    assert_eq!(run(&p, AUDIT_X86_64, nr_x86("unshare"), [0; 6]), RET_ALLOW);
    // socketcall exists only on i386.
    assert_eq!(run(&p, AUDIT_I386, nr_x86("socketcall"), [0; 6]), eperm);
    // An architecture the filter does not list is killed.
    assert_eq!(run(&p, 0xc000_00b7, 1, [0; 6]), RET_KILL_THREAD);
}

#[test]
fn unknown_syscall_names_are_warnings() {
    let f = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
    assert!(
        f.warnings[0].starts_with(
            "linux.seccomp.syscalls[0].names[1]: unknown syscall \"no_such_syscall\" ignored"
        ),
        "{}",
        f.warnings[0]
    );
    let p = program(&f);
    assert_eq!(
        run(&p, AUDIT_X86_64, nr("mkdir"), [0; 6]),
        RET_ERRNO | libc::EPERM as u32
    );
}

#[test]
fn rules_with_the_default_action_are_skipped() {
    // libseccomp refuses them; runc skips them.
    let f = compile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    let p = program(&f);
    assert_eq!(run(&p, AUDIT_X86_64, nr("write"), [0; 6]), RET_ALLOW);
    assert_eq!(run(&p, AUDIT_X86_64, nr("read"), [0; 6]), RET_ERRNO | 1);
}

#[test]
fn notify_needs_a_listener() {
    let (field, reason) = compile_err(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert_eq!(field, "linux.seccomp.listenerPath");
    assert!(reason.contains("SCMP_ACT_NOTIFY"), "{reason}");

    let f = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "listenerMetadata": "m",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(f.notifies());
    assert_eq!(
        run(&program(&f), AUDIT_X86_64, nr("mkdir"), [0; 6]),
        RET_USER_NOTIF
    );

    let (field, _) = compile_err(json!({"defaultAction": "SCMP_ACT_NOTIFY",
                                        "listenerPath": "/run/agent.sock"}));
    assert_eq!(field, "linux.seccomp.defaultAction");
    let (field, _) = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
                                        "listenerMetadata": "m"}));
    assert_eq!(field, "linux.seccomp.listenerMetadata");
    let (field, _) = compile_err(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert_eq!(field, "linux.seccomp.syscalls[0].names[1]");
}

#[test]
fn errno_only_where_the_action_takes_one() {
    let (field, reason) = compile_err(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["rmdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}
        ]
    }));
    assert_eq!(field, "linux.seccomp.syscalls[1].errnoRet");
    assert!(reason.contains("SCMP_ACT_KILL"), "{reason}");
    let (field, _) = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}));
    assert_eq!(field, "linux.seccomp.defaultErrnoRet");
}

#[test]
fn flags_set_the_filter_attributes() {
    let f = compile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_TSYNC"]
    }));
    assert!(f.ctx.get_ctl_log().unwrap());
    assert!(f.ctx.get_ctl_ssb().unwrap());
    assert!(f.ctx.get_ctl_tsync().unwrap());
    // Never set by libseccomp on our behalf: noNewPrivileges decides.
    assert!(!f.ctx.get_ctl_nnp().unwrap());
    let f = compile(json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    assert!(!f.ctx.get_ctl_log().unwrap());
}

fn raw_err(seccomp: serde_json::Value) -> FieldError {
    check_raw(&json!({"linux": {"seccomp": seccomp}})).expect_err("should be refused")
}

#[test]
fn raw_check_names_the_field() {
    let ok = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    });
    check_raw(&json!({"linux": {"seccomp": ok}})).unwrap();

    let mut v = ok.clone();
    v["syscalls"][1]["action"] = json!("SCMP_ACT_FOO");
    let (field, reason) = raw_err(v);
    assert_eq!(field, "linux.seccomp.syscalls[1].action");
    assert!(
        reason.starts_with("unknown action \"SCMP_ACT_FOO\" (expected one of SCMP_ACT_ALLOW,"),
        "{reason}"
    );

    let mut v = ok.clone();
    v["defaultAction"] = json!("SCMP_ACT_NOPE");
    assert_eq!(raw_err(v).0, "linux.seccomp.defaultAction");

    let mut v = ok.clone();
    v["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]);
    let (field, reason) = raw_err(v);
    assert_eq!(field, "linux.seccomp.architectures[1]");
    assert!(reason.contains("SCMP_ARCH_AARCH64"), "{reason}");

    let mut v = ok.clone();
    v["flags"] = json!(["SECCOMP_FILTER_FLAG_FAST"]);
    assert_eq!(raw_err(v).0, "linux.seccomp.flags[0]");

    let mut v = ok.clone();
    v["syscalls"][1]["args"][0]["op"] = json!("SCMP_CMP_ABOUT");
    let (field, reason) = raw_err(v);
    assert_eq!(field, "linux.seccomp.syscalls[1].args[0].op");
    assert!(reason.contains("SCMP_CMP_MASKED_EQ"), "{reason}");

    let mut v = ok.clone();
    v["syscalls"][1]["args"][0]["index"] = json!(6);
    assert_eq!(raw_err(v).0, "linux.seccomp.syscalls[1].args[0].index");

    let mut v = ok.clone();
    v["syscalls"][1]["args"][0]["value"] = json!(-1);
    assert_eq!(raw_err(v).0, "linux.seccomp.syscalls[1].args[0].value");

    let mut v = ok.clone();
    v["syscalls"][1]["args"][0]["valueTwo"] = json!("0");
    assert_eq!(raw_err(v).0, "linux.seccomp.syscalls[1].args[0].valueTwo");

    let mut v = ok.clone();
    v["syscalls"][1]["args"][0]
        .as_object_mut()
        .unwrap()
        .remove("op");
    assert_eq!(raw_err(v).0, "linux.seccomp.syscalls[1].args[0].op");

    let mut v = ok.clone();
    v["syscalls"][0]["names"] = json!([]);
    assert_eq!(raw_err(v).0, "linux.seccomp.syscalls[0].names");

    let mut v = ok.clone();
    v["syscalls"][0]["errnoRet"] = json!(70000);
    assert_eq!(raw_err(v).0, "linux.seccomp.syscalls[0].errnoRet");

    // No seccomp at all: nothing to check.
    check_raw(&json!({"linux": {}})).unwrap();
}

#[test]
fn feature_lists_come_from_the_mapping_tables() {
    assert_eq!(
        names_of(&supported_actions()),
        [
            "SCMP_ACT_ALLOW",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_LOG",
            "SCMP_ACT_NOTIFY",
            "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP"
        ]
    );
    assert_eq!(supported_operators().len(), 7);
    let archs = names_of(&supported_archs());
    for a in [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64",
    ] {
        assert!(archs.iter().any(|x| x == a), "{a} missing from {archs:?}");
    }
    assert!(!archs.iter().any(|x| x == "SCMP_ARCH_NATIVE"));
    assert!(archs.iter().any(|x| x == "SCMP_ARCH_S390X"), "{archs:?}");
    // Every listed architecture of this host's byte order compiles into one filter.
    let little: Vec<_> = archs
        .iter()
        .filter(|a| {
            ![
                "MIPS",
                "MIPS64",
                "MIPS64N32",
                "PPC",
                "PPC64",
                "S390",
                "S390X",
                "PARISC",
                "PARISC64",
            ]
            .iter()
            .any(|b| **a == format!("SCMP_ARCH_{b}"))
        })
        .collect();
    compile(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": little}));
    // Mixing byte orders is refused, with the field.
    let (field, reason) = compile_err(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"]}));
    assert_eq!(field, "linux.seccomp.architectures[1]", "{reason}");
    assert_eq!(known_flags().len(), 4);
    let flags = supported_flags();
    for fl in [
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_TSYNC",
    ] {
        assert!(flags.iter().any(|x| x == fl), "{fl} missing from {flags:?}");
    }
    // Every name the spec type knows is in a table (the tables are exhaustive).
    for (json_name, list) in [
        ("SCMP_ACT_KILL", names_of(&supported_actions())),
        ("SCMP_CMP_MASKED_EQ", supported_operators()),
    ] {
        assert!(list.iter().any(|x| x == json_name));
    }
    assert_eq!(ARCHES.len(), names_of(&ARCHES).len());
    let mut unique = names_of(&ARCHES);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ARCHES.len(), "an architecture listed twice");
}

#[test]
fn process_state_for_the_listener() {
    let v: serde_json::Value = serde_json::from_slice(&process_state(
        42,
        Some("meta".into()),
        json!({"id": "c1", "status": "creating"}),
    ))
    .unwrap();
    assert_eq!(v["fds"], json!(["seccompFd"]));
    assert_eq!(v["pid"], 42);
    assert_eq!(v["metadata"], "meta");
    assert_eq!(v["state"]["id"], "c1");
    // It is the spec's ContainerProcessState.
    let typed: oci_spec::runtime::ContainerProcessState = serde_json::from_value(v).unwrap();
    assert_eq!(typed.pid(), &42);
    let v: serde_json::Value = serde_json::from_slice(&process_state(1, None, json!({}))).unwrap();
    assert!(v.get("metadata").is_none());
}

#[test]
fn security_modules_absent_on_this_host_are_refused() {
    let spec = |process: serde_json::Value, linux: serde_json::Value| -> Spec {
        let mut s = Spec::default();
        let mut p: Process =
            serde_json::from_value(json!({"cwd": "/", "user": {"uid": 0, "gid": 0}})).unwrap();
        if let Some(a) = process.get("apparmorProfile").and_then(|v| v.as_str()) {
            p.set_apparmor_profile(Some(a.into()));
        }
        if let Some(l) = process.get("selinuxLabel").and_then(|v| v.as_str()) {
            p.set_selinux_label(Some(l.into()));
        }
        s.set_process(Some(p));
        let mut l = s.linux().clone().unwrap_or_default();
        if let Some(m) = linux.get("mountLabel").and_then(|v| v.as_str()) {
            l.set_mount_label(Some(m.into()));
        }
        s.set_linux(Some(l));
        s
    };
    use oci_spec::runtime::Process;
    // Empty values mean unset.
    lsm::check(&spec(
        json!({"apparmorProfile": "", "selinuxLabel": ""}),
        json!({"mountLabel": ""}),
    ))
    .unwrap();
    if !lsm::apparmor_enabled() {
        let (field, reason) = lsm::check(&spec(
            json!({"apparmorProfile": "docker-default"}),
            json!({}),
        ))
        .unwrap_err();
        assert_eq!(field, "process.apparmorProfile");
        assert!(reason.contains("AppArmor is not enabled"), "{reason}");
    }
    let (field, _) = lsm::check(&spec(
        json!({"selinuxLabel": "system_u:system_r:container_t:s0"}),
        json!({}),
    ))
    .unwrap_err();
    assert_eq!(field, "process.selinuxLabel");
    let (field, _) = lsm::check(&spec(
        json!({}),
        json!({"mountLabel": "system_u:object_r:container_file_t:s0"}),
    ))
    .unwrap_err();
    assert_eq!(field, "linux.mountLabel");
}

#[test]
fn the_validated_filter_is_handed_to_the_container_process() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "not_a_syscall"], "action": "SCMP_ACT_ERRNO"}]
    });
    let mut spec = Spec::default();
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(Some(seccomp(profile.clone())));
    spec.set_linux(Some(linux));
    // Validated twice (as `run` does): the same warning each time, compiled once.
    for _ in 0..2 {
        let mut warnings = Vec::new();
        validate(&spec, &mut warnings).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
    // The process (a fork of this thread) takes the compiled filter; after that, or for
    // another profile, it compiles its own.
    let f = compiled(&seccomp(profile.clone())).unwrap();
    assert_eq!(f.warnings.len(), 1);
    assert!(COMPILED.with(|c| c.borrow().is_none()));
    let other = compiled(&seccomp(json!({"defaultAction": "SCMP_ACT_LOG"}))).unwrap();
    assert!(other.warnings.is_empty());
}
