//! The device rules of a container's cgroup: the spec's, then runc's defaults; what they
//! mean ([`emulator`]), and, on cgroup v2, the eBPF program that enforces them
//! ([`program`], put on the cgroup by [`attach`]).
//!
//! cgroup v1 enforces the rules itself (`devices.allow`/`devices.deny`, written by
//! `v1::writes`); v2 has no such files, and without a program attached any device node
//! the container can create (CAP_MKNOD is in Docker's and containerd's default set) opens,
//! the host's disks and `/dev/kmsg` included.

mod emulator;
#[cfg(test)]
mod kernel_tests;
mod program;

use std::ffi::CStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use crate::syscall::bpf::{Bpf, Insn};
use crate::syscall::SyscallError;
use emulator::{Access, Devices, Emulator, Kind, Rule};

/// The license the device program is loaded under; it calls no GPL-only helper.
const LICENSE: &CStr = c"Apache-2.0";

/// A device rule that cannot be applied, or a device program the kernel refused.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The rule itself is malformed.
    #[error("device rule {rule}: {reason}")]
    Invalid {
        /// The rule, as given.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Denying part of what a wildcard rule allows (or the reverse), which the device
    /// controller cannot express.
    #[error(
        "device rule \"{rule}\" cannot narrow the wider rule \"{wildcard}\" before it: \
         the device controller only removes exact matches"
    )]
    Hole {
        /// The rule refused.
        rule: String,
        /// The wildcard exception it would cut into.
        wildcard: String,
    },
    /// bpf(2) or opening the cgroup failed: the container is not started unrestricted.
    #[error("cgroup {path}: cannot enforce the device rules with an eBPF program: {source}")]
    Program {
        /// The cgroup directory.
        path: PathBuf,
        /// The failed call.
        source: SyscallError,
    },
}

/// A rule of `linux.resources.devices` as the device controller takes it.
fn parse(rule: &LinuxDeviceCgroup) -> Result<Rule, DeviceError> {
    let invalid = |reason: String| DeviceError::Invalid {
        rule: describe(rule),
        reason,
    };
    let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(Kind::Block),
        // Unbuffered character devices are character devices to the device controller.
        LinuxDeviceType::C | LinuxDeviceType::U => Some(Kind::Char),
        LinuxDeviceType::P => {
            return Err(invalid("device rules cannot name FIFOs (type p)".into()))
        }
    };
    // Negative (Go's -1 for "unset") is the wildcard, as runc reads it.
    let number = |n: Option<i64>, what: &str| match n {
        Some(n) if n >= 0 => u32::try_from(n)
            .map(Some)
            .map_err(|_| invalid(format!("{what} {n} is larger than any device number"))),
        _ => Ok(None),
    };
    let major = number(rule.major(), "major")?;
    let minor = number(rule.minor(), "minor")?;
    let access = Access::parse(rule.access().as_deref().unwrap_or("rwm")).map_err(invalid)?;
    Ok(Rule {
        allow: rule.allow(),
        devices: kind.map(|kind| Devices { kind, major, minor }),
        access,
    })
}

/// A rule as the user wrote it, for errors: `allow c 1:3 rwm`.
fn describe(rule: &LinuxDeviceCgroup) -> String {
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    format!(
        "\"{} {} {}:{} {}\"",
        if rule.allow() { "allow" } else { "deny" },
        rule.typ().unwrap_or(LinuxDeviceType::A).as_str(),
        num(rule.major()),
        num(rule.minor()),
        rule.access().as_deref().unwrap_or("rwm"),
    )
}

/// What `rules`, applied in order to a cgroup that denies every device, allow.
fn emulate(rules: &[LinuxDeviceCgroup]) -> Result<Emulator, DeviceError> {
    let mut emu = Emulator::default();
    for r in rules {
        emu.apply(&parse(r)?)?;
    }
    Ok(emu)
}

/// Checks that `rules` can be applied: each well-formed, none cutting into a wildcard.
pub fn check(rules: &[LinuxDeviceCgroup]) -> Result<(), DeviceError> {
    emulate(rules).map(drop)
}

/// The cgroup v2 device program enforcing `rules`.
pub(crate) fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, DeviceError> {
    Ok(program::generate(&emulate(rules)?))
}

/// Puts the device program `insns` on the cgroup directory `dir` in place of the device
/// programs it had.
///
/// The new program is attached before the old ones are detached: while both are there
/// the kernel allows only what both allow, so no access is ever open that neither set of
/// rules allows.
pub(crate) fn attach(bpf: &dyn Bpf, dir: &Path, insns: &[Insn]) -> Result<(), DeviceError> {
    let failed = |source| DeviceError::Program {
        path: dir.to_path_buf(),
        source,
    };
    let cgroup = nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| {
        failed(SyscallError {
            call: "open",
            target: dir.display().to_string(),
            errno,
        })
    })?;
    let old = bpf
        .attached_device_programs(cgroup.as_fd())
        .map_err(failed)?;
    let prog = bpf.load_device_program(insns, LICENSE).map_err(failed)?;
    bpf.attach_device_program(cgroup.as_fd(), prog.as_fd())
        .map_err(failed)?;
    for id in old {
        let old_prog = match bpf.program_by_id(id) {
            // Detached and freed by someone else meanwhile: nothing to do.
            Err(e) if e.errno == Errno::ENOENT => continue,
            r => r.map_err(failed)?,
        };
        bpf.detach_device_program(cgroup.as_fd(), old_prog.as_fd())
            .map_err(failed)?;
    }
    Ok(())
}

/// Whether this process runs in a user namespace other than the host's (a runtime that is
/// itself in a container, or rootless): its uid map is not the identity over every uid.
/// There bpf(2) is refused, and device nodes of the host cannot be opened anyway.
pub(crate) fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().ne(["0", "0", "4294967295"]))
        .unwrap_or(false)
}

/// Devices every container may use, as runc allows them: mknod of any device (creating a
/// node grants no access), and the standard character devices of /dev.
const DEFAULT_ALLOWED: &[(LinuxDeviceType, Option<i64>, Option<i64>, &str)] = &[
    (LinuxDeviceType::C, None, None, "m"),
    (LinuxDeviceType::B, None, None, "m"),
    (LinuxDeviceType::C, Some(1), Some(3), "rwm"), // null
    (LinuxDeviceType::C, Some(1), Some(5), "rwm"), // zero
    (LinuxDeviceType::C, Some(1), Some(7), "rwm"), // full
    (LinuxDeviceType::C, Some(5), Some(0), "rwm"), // tty
    (LinuxDeviceType::C, Some(1), Some(9), "rwm"), // urandom
    (LinuxDeviceType::C, Some(1), Some(8), "rwm"), // random
    (LinuxDeviceType::C, Some(136), None, "rwm"),  // /dev/pts/*
    (LinuxDeviceType::C, Some(5), Some(2), "rwm"), // ptmx
    (LinuxDeviceType::C, Some(10), Some(200), "rwm"), // tun
];

fn rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true)
        .set_typ(Some(typ))
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_string()));
    r
}

/// `resources` with device rules complete: deny every device first (where runc's rules
/// start, so that a spec without device rules gets the defaults and nothing of the host),
/// then the spec's rules, then the default devices and every `linux.devices` node.
pub fn with_default_rules(
    resources: Option<&LinuxResources>,
    devices: &[LinuxDevice],
) -> LinuxResources {
    let mut res = resources.cloned().unwrap_or_default();
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all
        .set_allow(false)
        .set_access(Some("rwm".to_string()));
    let mut rules = vec![deny_all];
    rules.extend(res.devices().iter().flatten().cloned());
    rules.extend(
        DEFAULT_ALLOWED
            .iter()
            .map(|(t, ma, mi, acc)| rule(*t, *ma, *mi, acc)),
    );
    rules.extend(
        devices
            .iter()
            // FIFOs are no business of the device controller.
            .filter(|d| d.typ() != LinuxDeviceType::P)
            .map(|d| rule(d.typ(), Some(d.major()), Some(d.minor()), "rwm")),
    );
    res.set_devices(Some(rules));
    res
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

    use super::*;
    use crate::syscall::Result as SysResult;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).expect("LinuxResources JSON")
    }

    #[test]
    fn defaults_follow_the_spec_rules() {
        let res = resources(r#"{"devices":[{"allow":true,"type":"b","major":7,"access":"r"}]}"#);
        let dev: Vec<LinuxDevice> = serde_json::from_str(
            r#"[{"path":"/dev/fuse","type":"c","major":10,"minor":229},
                {"path":"/dev/fifo","type":"p","major":0,"minor":0}]"#,
        )
        .expect("devices JSON");
        let out = with_default_rules(Some(&res), &dev);
        let rules = out.devices().as_ref().expect("rules");
        assert!(!rules[0].allow() && rules[0].typ().is_none());
        assert_eq!(rules[1].major(), Some(7));
        assert_eq!(
            rules.len(),
            2 + DEFAULT_ALLOWED.len() + 1,
            "no rule for the FIFO"
        );
        let last = rules.last().expect("last");
        assert!(last.allow() && last.major() == Some(10) && last.minor() == Some(229));
        let emu = emulate(rules).expect("valid");
        assert!(emu.allows(Kind::Block, 7, 1, Access::READ));
        assert!(emu.allows(Kind::Char, 10, 229, Access::ALL));
        assert!(!emu.allows(Kind::Char, 1, 11, Access::WRITE));
    }

    #[test]
    fn no_rules_at_all_still_means_only_the_defaults() {
        for res in [Some(resources(r#"{"pids":{"limit":5}}"#)), None] {
            let out = with_default_rules(res.as_ref(), &[]);
            let emu = emulate(out.devices().as_ref().expect("rules")).expect("valid");
            assert!(!emu.default_allow());
            assert!(emu.allows(Kind::Char, 1, 3, Access::ALL), "/dev/null");
            assert!(!emu.allows(Kind::Block, 8, 0, Access::READ), "a disk");
        }
        assert_eq!(
            with_default_rules(Some(&resources(r#"{"pids":{"limit":5}}"#)), &[])
                .pids()
                .as_ref()
                .map(|p| p.limit()),
            Some(5)
        );
    }

    #[test]
    fn bad_rules_are_named() {
        for (json, expect) in [
            (
                r#"{"allow":true,"type":"p","access":"rwm"}"#,
                "allow p *:* rwm",
            ),
            (
                r#"{"allow":true,"type":"c","major":1,"access":"rwx"}"#,
                "'x'",
            ),
            (
                r#"{"allow":true,"type":"c","major":4294967296,"access":"r"}"#,
                "major 4294967296",
            ),
            (r#"{"allow":true,"type":"c","access":""}"#, "empty"),
        ] {
            let rule: LinuxDeviceCgroup = serde_json::from_str(json).expect("rule JSON");
            let err = check(&[rule]).expect_err(json).to_string();
            assert!(err.contains(expect), "{json}: {err}");
        }
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":true,"type":"c","major":1,"access":"rw"},
                {"allow":false,"type":"c","major":1,"minor":11,"access":"w"}]"#,
        )
        .expect("rules JSON");
        let err = check(&rules).expect_err("hole").to_string();
        assert!(
            err.contains("deny c 1:11 w") && err.contains("allow c 1:* rw"),
            "{err}"
        );
    }

    /// Records bpf(2) calls; descriptors are /dev/null opened anew, named by what they are.
    #[derive(Default)]
    struct RecordingBpf {
        calls: RefCell<Vec<String>>,
        names: RefCell<HashMap<i32, String>>,
        attached: Vec<u32>,
        fail: Option<&'static str>,
    }

    impl RecordingBpf {
        fn fd(&self, name: String) -> SysResult<OwnedFd> {
            let f = std::fs::File::open("/dev/null").expect("/dev/null");
            self.names.borrow_mut().insert(f.as_raw_fd(), name);
            Ok(f.into())
        }

        fn name(&self, fd: BorrowedFd<'_>) -> String {
            self.names
                .borrow()
                .get(&fd.as_raw_fd())
                .cloned()
                .unwrap_or_default()
        }

        fn call(&self, c: String) -> SysResult<()> {
            let failed = self.fail.is_some_and(|f| c.starts_with(f));
            self.calls.borrow_mut().push(c.clone());
            if failed {
                return Err(SyscallError {
                    call: "bpf",
                    target: c,
                    errno: Errno::EPERM,
                });
            }
            Ok(())
        }
    }

    impl Bpf for RecordingBpf {
        fn load_device_program(&self, insns: &[Insn], license: &CStr) -> SysResult<OwnedFd> {
            self.call(format!(
                "load {} {}",
                insns.len(),
                license.to_string_lossy()
            ))?;
            self.fd("new".into())
        }
        fn attached_device_programs(&self, _dir: BorrowedFd<'_>) -> SysResult<Vec<u32>> {
            self.call("query".into())?;
            Ok(self.attached.clone())
        }
        fn program_by_id(&self, id: u32) -> SysResult<OwnedFd> {
            self.call(format!("get {id}"))?;
            self.fd(format!("old{id}"))
        }
        fn attach_device_program(
            &self,
            _dir: BorrowedFd<'_>,
            prog: BorrowedFd<'_>,
        ) -> SysResult<()> {
            self.call(format!("attach {}", self.name(prog)))
        }
        fn detach_device_program(
            &self,
            _dir: BorrowedFd<'_>,
            prog: BorrowedFd<'_>,
        ) -> SysResult<()> {
            self.call(format!("detach {}", self.name(prog)))
        }
    }

    #[test]
    fn the_new_program_is_attached_before_the_old_ones_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let insns = program(&[]).expect("deny all");
        let bpf = RecordingBpf {
            attached: vec![7, 9],
            ..Default::default()
        };
        attach(&bpf, dir.path(), &insns).expect("attach");
        assert_eq!(
            *bpf.calls.borrow(),
            [
                "query".to_string(),
                format!("load {} Apache-2.0", insns.len()),
                "attach new".into(),
                "get 7".into(),
                "detach old7".into(),
                "get 9".into(),
                "detach old9".into(),
            ]
        );
    }

    #[test]
    fn a_refused_program_is_an_error_naming_the_cgroup_and_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bpf = RecordingBpf {
            attached: vec![3],
            fail: Some("attach"),
            ..Default::default()
        };
        let err = attach(&bpf, dir.path(), &program(&[]).expect("deny all")).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains(&dir.path().display().to_string()) && text.contains("attach new"),
            "{text}"
        );
        // The old program stays: the cgroup is never left with less than before.
        assert!(!bpf.calls.borrow().iter().any(|c| c.starts_with("detach")));
        let err = attach(
            &RecordingBpf::default(),
            Path::new("/nonexistent-cgroup"),
            &[],
        )
        .expect_err("no cgroup");
        assert!(err.to_string().contains("/nonexistent-cgroup"), "{err}");
    }
}
