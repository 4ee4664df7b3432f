//! The cgroup v2 device program: an [`Emulator`]'s state as eBPF instructions.
//!
//! cgroup v2 has no `devices.allow`: the kernel asks the `BPF_PROG_TYPE_CGROUP_DEVICE`
//! programs attached to the cgroup (and to its ancestors) about every mknod and every open
//! of a device node, with a `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32
//! minor; }` (the device type in the low 16 bits of `access_type`, the access bits in the
//! high 16) in register 1; the program returns 1 to allow, 0 to deny.
//!
//! The program loads the four fields into registers 2 to 5, then has one block per
//! exception of the emulator, each returning the exception's verdict when the request
//! matches it and jumping to the next block otherwise, and ends with the default verdict.
//! A block checks the access as the emulator does: with a default of deny the exception
//! must hold every access asked for; with a default of allow any shared access matches.

use super::emulator::{Access, Devices, Emulator, Kind};
use crate::syscall::bpf::Insn;

// Opcodes of the instructions used (<linux/bpf_common.h>, <linux/bpf.h>).
/// BPF_LDX | BPF_MEM | BPF_W: `dst = *(u32 *)(src + off)`.
const LDX_W: u8 = 0x61;
/// BPF_ALU | BPF_AND | BPF_K: `dst &= imm` (32 bits).
const AND32_K: u8 = 0x54;
/// BPF_ALU | BPF_RSH | BPF_K: `dst >>= imm` (32 bits).
const RSH32_K: u8 = 0x74;
/// BPF_ALU | BPF_MOV | BPF_X: `dst = src` (32 bits).
const MOV32_X: u8 = 0xbc;
/// BPF_ALU | BPF_MOV | BPF_K: `dst = imm` (32 bits).
const MOV32_K: u8 = 0xb4;
/// BPF_JMP | BPF_JNE | BPF_K: `if dst != imm goto +off`.
const JNE_K: u8 = 0x55;
/// BPF_JMP | BPF_JNE | BPF_X: `if dst != src goto +off`.
const JNE_X: u8 = 0x5d;
/// BPF_JMP | BPF_JEQ | BPF_K: `if dst == imm goto +off`.
const JEQ_K: u8 = 0x15;
/// BPF_JMP | BPF_EXIT: return r0.
const EXIT: u8 = 0x95;

/// `BPF_DEVCG_DEV_BLOCK` and `BPF_DEVCG_DEV_CHAR`.
fn dev_type(kind: Kind) -> i32 {
    match kind {
        Kind::Block => 1,
        Kind::Char => 2,
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The registers the request is loaded into.
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;
/// The context pointer on entry; free for scratch once the fields are loaded.
const R_CTX: u8 = 1;

/// The instructions of one exception's block, whose jumps go to the instruction after it.
fn block(devices: &Devices, access: Access, allow: bool) -> Vec<Insn> {
    // Each test is (opcode, register, source register, immediate) of a jump to the end of
    // the block when the request does not match.
    let mut tests: Vec<Vec<(u8, u8, u8, i32)>> =
        vec![vec![(JNE_K, R_TYPE, 0, dev_type(devices.kind))]];
    if access != Access::ALL {
        let masked = (MOV32_X, R_CTX, R_ACCESS, 0);
        let and = (AND32_K, R_CTX, 0, i32::from(access.0));
        tests.push(if allow {
            // Every access asked for must be allowed: (request & access) == request.
            vec![masked, and, (JNE_X, R_CTX, R_ACCESS, 0)]
        } else {
            // Any access denied denies: (request & access) != 0.
            vec![masked, and, (JEQ_K, R_CTX, 0, 0)]
        });
    }
    for (reg, n) in [(R_MAJOR, devices.major), (R_MINOR, devices.minor)] {
        if let Some(n) = n {
            // Device numbers are at most 32 bits; the jump compares 64-bit registers with a
            // sign-extended immediate, so only numbers below 2^31 can be compared. The
            // kernel's are far smaller (12-bit majors, 20-bit minors): a larger one never
            // names a device, and such a block can never match.
            let Ok(imm) = i32::try_from(n) else {
                return Vec::new();
            };
            tests.push(vec![(JNE_K, reg, 0, imm)]);
        }
    }
    let flat: Vec<(u8, u8, u8, i32)> = tests.into_iter().flatten().collect();
    let len = flat.len() + 2;
    let mut out: Vec<Insn> = flat
        .iter()
        .enumerate()
        .map(|(i, &(code, dst, src, imm))| {
            let off = if matches!(code, JNE_K | JNE_X | JEQ_K) {
                // Relative to the next instruction: past the rest of the block.
                (len - i - 1) as i16
            } else {
                0
            };
            insn(code, dst, src, off, imm)
        })
        .collect();
    out.push(insn(MOV32_K, 0, 0, 0, i32::from(allow)));
    out.push(insn(EXIT, 0, 0, 0, 0));
    out
}

/// The device program enforcing `emu`.
pub(crate) fn generate(emu: &Emulator) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, R_TYPE, R_CTX, 0, 0),
        insn(AND32_K, R_TYPE, 0, 0, 0xffff),
        insn(LDX_W, R_ACCESS, R_CTX, 0, 0),
        insn(RSH32_K, R_ACCESS, 0, 0, 16),
        insn(LDX_W, R_MAJOR, R_CTX, 4, 0),
        insn(LDX_W, R_MINOR, R_CTX, 8, 0),
    ];
    // Every exception has the verdict opposite to the default (the emulator keeps no
    // other), so the order of the blocks does not matter.
    let verdict = !emu.default_allow();
    for (devices, access) in emu.exceptions() {
        p.extend(block(devices, *access, verdict));
    }
    p.push(insn(MOV32_K, 0, 0, 0, i32::from(emu.default_allow())));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::emulator::Rule;
    use super::*;

    /// Runs a device program as the kernel would, for the request `(type, access, major,
    /// minor)`; knows the instructions [`generate`] emits and nothing else.
    pub(crate) fn run(prog: &[Insn], kind: Kind, access: Access, major: u32, minor: u32) -> bool {
        let ctx = [
            (u32::from(access.0) << 16) | dev_type(kind) as u32,
            major,
            minor,
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..prog.len() {
            let i = prog[pc];
            let (dst, src) = (usize::from(i.regs & 0xf), usize::from(i.regs >> 4));
            let imm64 = i64::from(i.imm) as u64;
            let jump = |taken: bool| if taken { i.off as isize } else { 0 };
            let mut next = pc as isize + 1;
            match i.code {
                LDX_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV32_X => r[dst] = r[src] as u32 as u64,
                MOV32_K => r[dst] = i.imm as u32 as u64,
                JNE_K => next += jump(r[dst] != imm64),
                JNE_X => next += jump(r[dst] != r[src]),
                JEQ_K => next += jump(r[dst] == imm64),
                EXIT => return r[0] == 1,
                c => panic!("opcode {c:#x} at {pc} is not one generate() emits"),
            }
            pc = usize::try_from(next).expect("jump before the start");
            assert!(pc < prog.len(), "ran off the end");
        }
        panic!("no exit: the program loops");
    }

    /// Every request of a grid of devices and accesses gets the emulator's verdict from
    /// the program.
    fn agrees(emu: &Emulator) {
        let prog = generate(emu);
        let accesses = (1..=7).map(Access);
        for kind in [Kind::Char, Kind::Block] {
            for major in [0, 1, 4, 5, 8, 10, 136, 254, 4095] {
                for minor in [0, 1, 3, 5, 7, 9, 11, 200, 229, (1 << 20) - 1] {
                    for access in accesses.clone() {
                        assert_eq!(
                            run(&prog, kind, access, major, minor),
                            emu.allows(kind, major, minor, access),
                            "{kind:?} {major}:{minor} {access} with {emu:?}"
                        );
                    }
                }
            }
        }
    }

    fn rule(
        allow: bool,
        kind: Option<Kind>,
        major: Option<u32>,
        minor: Option<u32>,
        access: u8,
    ) -> Rule {
        Rule {
            allow,
            devices: kind.map(|kind| Devices { kind, major, minor }),
            access: Access(access),
        }
    }

    #[test]
    fn program_agrees_with_the_emulator_on_runc_defaults() {
        let mut emu = Emulator::default();
        let c = Some(Kind::Char);
        for r in [
            rule(false, None, None, None, 7),
            rule(true, c, None, None, 1),
            rule(true, Some(Kind::Block), None, None, 1),
            rule(true, c, Some(1), Some(3), 7),
            rule(true, c, Some(1), Some(5), 7),
            rule(true, c, Some(136), None, 7),
            rule(true, c, Some(5), Some(2), 7),
            rule(true, c, Some(10), Some(200), 7),
            rule(true, c, Some(1), Some(9), 6),
            rule(true, c, None, Some(7), 2),
        ] {
            emu.apply(&r).expect("valid");
        }
        agrees(&emu);
        // The checks that matter, stated plainly.
        let prog = generate(&emu);
        assert!(run(&prog, Kind::Char, Access(6), 1, 3));
        assert!(!run(&prog, Kind::Char, Access(4), 1, 11), "kmsg");
        assert!(
            run(&prog, Kind::Char, Access::MKNOD, 1, 11),
            "mknod of anything"
        );
        assert!(
            !run(&prog, Kind::Block, Access::READ, 254, 0),
            "a host disk"
        );
        assert!(
            !run(&prog, Kind::Char, Access::ALL, 1, 9),
            "urandom without m"
        );
    }

    #[test]
    fn program_agrees_with_the_emulator_on_deny_lists_and_edge_cases() {
        let c = Some(Kind::Char);
        let b = Some(Kind::Block);
        let cases: Vec<Vec<Rule>> = vec![
            vec![],
            vec![rule(true, None, None, None, 7)],
            vec![
                rule(true, None, None, None, 7),
                rule(false, b, Some(8), None, 4),
                rule(false, c, Some(1), Some(11), 7),
                rule(false, c, None, Some(5), 3),
            ],
            vec![
                rule(true, b, None, None, 7),
                rule(true, c, Some(4095), None, 2),
            ],
            // Numbers no device has: never matched.
            vec![
                rule(true, c, Some(u32::MAX), None, 7),
                rule(true, c, Some(1), Some(1 << 31), 7),
            ],
        ];
        for rules in cases {
            let mut emu = Emulator::default();
            for r in &rules {
                emu.apply(r).expect("valid");
            }
            agrees(&emu);
        }
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        let mut emu = Emulator::default();
        for minor in 0..40 {
            emu.apply(&rule(
                true,
                Some(Kind::Char),
                Some(1),
                Some(minor),
                1 + (minor as u8 % 7),
            ))
            .expect("valid");
        }
        let prog = generate(&emu);
        for (pc, i) in prog.iter().enumerate() {
            if matches!(i.code, JNE_K | JNE_X | JEQ_K) {
                let target = pc as isize + 1 + i.off as isize;
                assert!((0..prog.len() as isize).contains(&target), "{pc}: {i:?}");
                // Every jump lands on the start of a block or on the final verdict.
                let landing = prog[target as usize].code;
                assert!(matches!(landing, JNE_K | MOV32_K), "{pc} -> {landing:#x}");
            }
        }
        agrees(&emu);
    }
}
