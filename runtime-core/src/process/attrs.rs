//! Scheduling and execution attributes of a container's process, as runc 1.3 applies them:
//! `process.scheduler` (sched_setattr(2)), `process.ioPriority` (ioprio_set(2)) and
//! `linux.personality` (personality(2)). The first two hold for init and exec'd processes
//! alike (each has its own process spec); an exec'd process takes the personality of the
//! container's init, which the container's spec gave it.

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::syscall::{SchedAttr, Syscall};
use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Process, Scheduler,
};

/// Errors applying a process attribute, naming the spec field.
#[derive(Debug, thiserror::Error)]
pub enum AttrError {
    /// sched_setattr(2) refused `process.scheduler`.
    #[error("process.scheduler {policy}: sched_setattr(2): {errno}{hint}")]
    Scheduler {
        /// The policy asked for.
        policy: LinuxSchedulerPolicy,
        /// The error.
        errno: Errno,
        /// Why, when the errno suggests it.
        hint: &'static str,
    },
    /// ioprio_set(2) refused `process.ioPriority`.
    #[error("process.ioPriority {class} {priority}: ioprio_set(2): {errno}")]
    IoPriority {
        /// The class asked for.
        class: IOPriorityClass,
        /// The level asked for.
        priority: i64,
        /// The error.
        errno: Errno,
    },
    /// personality(2) refused the personality.
    #[error("linux.personality {value:#x}: personality(2): {errno}")]
    Personality {
        /// The persona asked for.
        value: libc::c_ulong,
        /// The error.
        errno: Errno,
    },
    /// The personality of the container's init could not be read (for an exec).
    #[error("reading /proc/{pid}/personality of the container's init: {reason}")]
    InitPersonality {
        /// The init pid.
        pid: Pid,
        /// What went wrong.
        reason: String,
    },
}

impl AttrError {
    /// The kernel's errno, if a syscall refused.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            AttrError::Scheduler { errno, .. }
            | AttrError::IoPriority { errno, .. }
            | AttrError::Personality { errno, .. } => Some(*errno),
            AttrError::InitPersonality { .. } => None,
        }
    }
}

/// personality(2)'s PER_LINUX.
const PER_LINUX: libc::c_ulong = 0;
/// personality(2)'s PER_LINUX32: `uname -m` says i686 (or the like).
const PER_LINUX32: libc::c_ulong = 0x0008;
/// The bit position of the class in an I/O priority value.
const IOPRIO_CLASS_SHIFT: i64 = 13;
/// The kernel's number of a policy (include/uapi/linux/sched.h).
fn policy_number(p: LinuxSchedulerPolicy) -> u32 {
    match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        // Reserved by the kernel, never implemented: sched_setattr answers EINVAL.
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    }
}

/// The kernel's bit of a scheduling flag (include/uapi/linux/sched.h).
fn flag_bit(f: LinuxSchedulerFlag) -> u64 {
    match f {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

fn sched_attr(s: &Scheduler) -> SchedAttr {
    SchedAttr {
        sched_policy: policy_number(*s.policy()),
        sched_flags: s.flags().iter().flatten().map(|f| flag_bit(*f)).sum(),
        sched_nice: s.nice().unwrap_or(0),
        // A negative priority is refused by the spec's validation; as runc, it is cast.
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..SchedAttr::default()
    }
}

/// Applies `process.scheduler`, then `process.ioPriority`, to the calling
/// (single-threaded) process, in runc's order and as runc does it: before the user and
/// capabilities change, while CAP_SYS_NICE (which a real-time policy, a lower nice value
/// and the real-time I/O class need) is still held.
pub fn apply_scheduling(sys: &impl Syscall, process: &Process) -> Result<(), AttrError> {
    apply_scheduler(sys, process)?;
    apply_io_priority(sys, process)
}

fn apply_scheduler(sys: &impl Syscall, process: &Process) -> Result<(), AttrError> {
    let Some(s) = process.scheduler() else {
        return Ok(());
    };
    sys.sched_setattr(&sched_attr(s)).map_err(|e| {
        let errno = e.errno;
        let hint = match (errno, *s.policy()) {
            (Errno::EPERM, LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr) => {
                " (a real-time policy needs CAP_SYS_NICE and, on cgroup v1, real-time runtime \
                 in the cgroup: cpu.rt_runtime_us)"
            }
            (Errno::EINVAL, LinuxSchedulerPolicy::SchedIso) => " (Linux has no SCHED_ISO)",
            _ => "",
        };
        AttrError::Scheduler {
            policy: *s.policy(),
            errno,
            hint,
        }
    })
}

fn apply_io_priority(sys: &impl Syscall, process: &Process) -> Result<(), AttrError> {
    let Some(io) = process.io_priority() else {
        return Ok(());
    };
    let class: i64 = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let value = (class << IOPRIO_CLASS_SHIFT) | io.priority();
    sys.ioprio_set(value).map_err(|e| AttrError::IoPriority {
        class: io.class(),
        priority: io.priority(),
        errno: e.errno,
    })
}

/// The persona `linux.personality` asks for (its flags are ignored, as runc ignores them
/// with a warning: the spec defines none).
pub fn personality_of_spec(p: Option<&LinuxPersonality>) -> Option<libc::c_ulong> {
    p.map(|p| match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    })
}

/// The persona of the container's init (for an exec'd process), when it is not the
/// default: /proc/PID/personality, in hexadecimal.
pub fn personality_of_init(pid: Pid) -> Result<Option<libc::c_ulong>, AttrError> {
    let err = |reason: String| AttrError::InitPersonality { pid, reason };
    let text = std::fs::read_to_string(format!("/proc/{pid}/personality"))
        .map_err(|e| err(e.to_string()))?;
    let value = libc::c_ulong::from_str_radix(text.trim(), 16)
        .map_err(|e| err(format!("{:?}: {e}", text.trim())))?;
    Ok((value != PER_LINUX).then_some(value))
}

/// Sets the persona of the calling process (kept across execve).
pub fn apply_personality(sys: &impl Syscall, value: libc::c_ulong) -> Result<(), AttrError> {
    sys.personality(value).map_err(|e| AttrError::Personality {
        value,
        errno: e.errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: &str) -> Process {
        let mut v: serde_json::Value =
            serde_json::from_str(r#"{"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}"#)
                .unwrap();
        let extra: serde_json::Value = serde_json::from_str(json).unwrap();
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn sched_attr_as_the_kernel_lays_it_out() {
        let p = process(
            r#"{"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20,
                "period": 30, "flags": ["SCHED_FLAG_RECLAIM", "SCHED_FLAG_KEEP_PARAMS"]}}"#,
        );
        let a = sched_attr(p.scheduler().as_ref().unwrap());
        assert_eq!((a.sched_policy, a.sched_flags), (6, 0x12));
        assert_eq!(
            (a.sched_runtime, a.sched_deadline, a.sched_period),
            (10, 20, 30)
        );
        let p = process(r#"{"scheduler": {"policy": "SCHED_BATCH", "nice": 7}}"#);
        let a = sched_attr(p.scheduler().as_ref().unwrap());
        assert_eq!((a.sched_policy, a.sched_nice, a.sched_priority), (3, 7, 0));
    }

    #[test]
    fn scheduler_then_io_priority_each_once() {
        use crate::syscall::recording::{Call, RecordingSyscall};
        let p = process(
            r#"{"scheduler": {"policy": "SCHED_IDLE"},
                "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 6}}"#,
        );
        let sys = RecordingSyscall::default();
        apply_scheduling(&sys, &p).unwrap();
        let idle = SchedAttr {
            sched_policy: 5,
            ..SchedAttr::default()
        };
        assert_eq!(
            sys.calls(),
            [Call::SchedSetattr(idle), Call::IoprioSet(2 << 13 | 6)]
        );

        // Neither asked for: nothing is called.
        let sys = RecordingSyscall::default();
        apply_scheduling(&sys, &process("{}")).unwrap();
        assert_eq!(sys.calls(), []);

        // A refused policy stops before the I/O priority, naming the field.
        let sys = RecordingSyscall::default();
        sys.fail_when(|c| matches!(c, Call::SchedSetattr(_)), Errno::EPERM);
        let p = process(
            r#"{"scheduler": {"policy": "SCHED_FIFO", "priority": 10},
                "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0}}"#,
        );
        let e = apply_scheduling(&sys, &p).unwrap_err().to_string();
        assert!(
            e.starts_with("process.scheduler SCHED_FIFO: sched_setattr(2): EPERM"),
            "{e}"
        );
        assert!(e.contains("CAP_SYS_NICE"), "{e}");
        assert_eq!(sys.calls().len(), 1);
    }

    #[test]
    fn personalities() {
        let linux32: LinuxPersonality = serde_json::from_str(r#"{"domain": "LINUX32"}"#).unwrap();
        assert_eq!(personality_of_spec(Some(&linux32)), Some(PER_LINUX32));
        let linux: LinuxPersonality = serde_json::from_str(r#"{"domain": "LINUX"}"#).unwrap();
        assert_eq!(personality_of_spec(Some(&linux)), Some(PER_LINUX));
        assert_eq!(personality_of_spec(None), None);
        // This process runs with the default persona.
        assert_eq!(personality_of_init(nix::unistd::getpid()).unwrap(), None);
    }
}
