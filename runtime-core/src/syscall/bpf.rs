//! bpf(2) for cgroup device programs: load, attach, query, detach.
//!
//! Only the commands and the `union bpf_attr` members that a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program needs are defined here, each as its own `#[repr(C)]` struct laid out as in
//! <linux/bpf.h>. The kernel accepts a shorter `bpf_attr` than its own as long as the
//! size passed covers the members used, and checks that any bytes past the members it
//! knows are zero, so every struct is built zeroed from `Default`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::{err, Result, SyscallError};

/// One eBPF instruction, `struct bpf_insn`: opcode, destination and source registers (4
/// bits each, destination in the low bits), offset and immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// The opcode (class, operation, source).
    pub code: u8,
    /// `dst_reg | src_reg << 4`.
    pub regs: u8,
    /// Jump offset in instructions, or memory offset in bytes.
    pub off: i16,
    /// The immediate operand.
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
/// `enum bpf_prog_type`: BPF_PROG_TYPE_CGROUP_DEVICE.
const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `enum bpf_attach_type`: BPF_CGROUP_DEVICE.
const ATTACH_CGROUP_DEVICE: u32 = 6;
/// Several programs on one cgroup, all of which must allow an access: needed so that a new
/// program can be attached before the old one is detached, never leaving a gap.
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
/// How many programs one query can return (the kernel allows 64 per cgroup and type).
const QUERY_MAX: usize = 64;
/// Verifier log buffer for a failed load, so that the error says why.
const LOG_SIZE: usize = 16 * 1024;

/// `bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf_attr` for BPF_PROG_ATTACH and BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `bpf_attr` for BPF_PROG_QUERY.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

/// `bpf_attr` for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(2) with `attr`; returns the kernel's non-negative result.
///
/// # Safety
/// `attr` must be the `bpf_attr` layout that `cmd` expects, and every pointer in it must
/// be valid, for the sizes given next to it, for the duration of the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::result::Result<libc::c_long, Errno> {
    // SAFETY: the caller guarantees the layout and the pointers; the size passed is the
    // size of `T`, which the kernel reads (and for some commands writes) no further than.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    Errno::result(rc)
}

/// The bpf(2) calls that put a device program on a cgroup, as a trait so that their order
/// can be checked without root.
pub trait Bpf {
    /// BPF_PROG_LOAD of a BPF_PROG_TYPE_CGROUP_DEVICE program; the verifier's log is in
    /// the error's target when it refuses the program.
    fn load_device_program(&self, insns: &[Insn], license: &CStr) -> Result<OwnedFd>;
    /// BPF_PROG_QUERY: the ids of the device programs attached to the cgroup `dir`.
    fn attached_device_programs(&self, dir: BorrowedFd<'_>) -> Result<Vec<u32>>;
    /// BPF_PROG_GET_FD_BY_ID.
    fn program_by_id(&self, id: u32) -> Result<OwnedFd>;
    /// BPF_PROG_ATTACH as a device program of the cgroup `dir`, beside any others.
    fn attach_device_program(&self, dir: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<()>;
    /// BPF_PROG_DETACH of the device program `prog` from the cgroup `dir`.
    fn detach_device_program(&self, dir: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<()>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxBpf;

impl LinuxBpf {
    fn load(insns: &[Insn], license: &CStr, log: Option<&mut [u8]>) -> Result<OwnedFd> {
        let mut attr = ProgLoadAttr {
            prog_type: PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: u32::try_from(insns.len()).map_err(|_| SyscallError {
                call: "bpf(BPF_PROG_LOAD)",
                target: format!("{} instructions", insns.len()),
                errno: Errno::E2BIG,
            })?,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..Default::default()
        };
        // Shown by bpftool as the program's name.
        attr.prog_name[..10].copy_from_slice(b"youki_devs");
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        // SAFETY: ProgLoadAttr is the BPF_PROG_LOAD layout; `insns`, `license` (a C
        // string) and the log buffer outlive the call, and their lengths are the ones given.
        let fd = unsafe { bpf(BPF_PROG_LOAD, &mut attr) }.map_err(err(
            "bpf(BPF_PROG_LOAD)",
            format!("cgroup device program of {} instructions", insns.len()),
        ))?;
        // SAFETY: on success BPF_PROG_LOAD returns a new file descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    fn attach_attr(dir: BorrowedFd<'_>, prog: BorrowedFd<'_>, flags: u32) -> AttachAttr {
        AttachAttr {
            target_fd: dir.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: ATTACH_CGROUP_DEVICE,
            attach_flags: flags,
            ..Default::default()
        }
    }
}

impl Bpf for LinuxBpf {
    fn load_device_program(&self, insns: &[Insn], license: &CStr) -> Result<OwnedFd> {
        match Self::load(insns, license, None) {
            // The verifier refused it: load again with a log, for an error that says why.
            Err(e) if matches!(e.errno, Errno::EACCES | Errno::EINVAL) => {
                let mut log = vec![0u8; LOG_SIZE];
                let again = Self::load(insns, license, Some(&mut log));
                let text = CStr::from_bytes_until_nul(&log)
                    .map(|s| s.to_string_lossy().trim().to_string())
                    .unwrap_or_default();
                Err(SyscallError {
                    target: format!("{}; verifier: {text}", e.target),
                    errno: again.err().map_or(e.errno, |e| e.errno),
                    ..e
                })
            }
            r => r,
        }
    }

    fn attached_device_programs(&self, dir: BorrowedFd<'_>) -> Result<Vec<u32>> {
        let mut ids = [0u32; QUERY_MAX];
        let mut attr = QueryAttr {
            target_fd: dir.as_raw_fd() as u32,
            attach_type: ATTACH_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: QUERY_MAX as u32,
            ..Default::default()
        };
        // SAFETY: QueryAttr is the BPF_PROG_QUERY layout; `ids` has room for `prog_cnt`
        // ids and lives across the call.
        unsafe { bpf(BPF_PROG_QUERY, &mut attr) }.map_err(err(
            "bpf(BPF_PROG_QUERY)",
            format!("device programs of {}", super::fd_path(dir).display()),
        ))?;
        let n = (attr.prog_cnt as usize).min(QUERY_MAX);
        Ok(ids[..n].to_vec())
    }

    fn program_by_id(&self, id: u32) -> Result<OwnedFd> {
        let mut attr = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        // SAFETY: GetFdAttr is the BPF_PROG_GET_FD_BY_ID layout; it holds no pointers.
        let fd = unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }
            .map_err(err("bpf(BPF_PROG_GET_FD_BY_ID)", id))?;
        // SAFETY: on success the kernel returns a new file descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    fn attach_device_program(&self, dir: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<()> {
        let mut attr = Self::attach_attr(dir, prog, BPF_F_ALLOW_MULTI);
        // SAFETY: AttachAttr is the BPF_PROG_ATTACH layout; it holds descriptors, no pointers.
        unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }
            .map(drop)
            .map_err(err(
                "bpf(BPF_PROG_ATTACH)",
                format!("device program to {}", super::fd_path(dir).display()),
            ))
    }

    fn detach_device_program(&self, dir: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<()> {
        let mut attr = Self::attach_attr(dir, prog, 0);
        // SAFETY: AttachAttr is the BPF_PROG_DETACH layout; it holds descriptors, no pointers.
        unsafe { bpf(BPF_PROG_DETACH, &mut attr) }
            .map(drop)
            .map_err(err(
                "bpf(BPF_PROG_DETACH)",
                format!("device program from {}", super::fd_path(dir).display()),
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts must match <linux/bpf.h>: a wrong size would make the kernel read the
    /// wrong members.
    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::size_of::<AttachAttr>(), 20);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(QueryAttr, prog_cnt), 24);
        assert_eq!(std::mem::size_of::<GetFdAttr>(), 12);
    }
}
