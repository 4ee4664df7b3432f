//! What a container's child process reports when its setup fails: the step, the errno when
//! there is one, and the text people (and clients that match phrases) read.
//!
//! The text is the one this runtime has always printed, and runc's where runc has one:
//! Docker gives exit code 127 for "executable file not found" and "no such file or
//! directory" and 126 for "permission denied", by matching them. The step and the errno are
//! data beside the text, for front ends that map failures to error kinds.

use std::error::Error;
use std::fmt::Display;

use serde::{Deserialize, Serialize};

/// The step of a container process's setup that failed, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Reading the container's config as the process got it.
    Config,
    /// Setting `process.oomScoreAdj` (the intermediate process).
    OomScoreAdj,
    /// Creating or joining namespaces, or becoming root in a new user namespace.
    Namespaces,
    /// Writing `linux.timeOffsets`.
    TimeOffsets,
    /// Forking the container's process.
    Fork,
    /// The message exchange with the runtime itself.
    Sync,
    /// Detaching from the runtime: dumpability, signals, session, stdio.
    Detach,
    /// Compiling the seccomp filter and connecting its notify listener.
    SeccompPrepare,
    /// `hostname` and `domainname`.
    Hostname,
    /// Mounts and devices of the rootfs.
    Rootfs,
    /// Joining the container's cgroup.
    CgroupJoin,
    /// prestart and createRuntime hooks (run by the runtime).
    RuntimeHooks,
    /// createContainer hooks.
    CreateContainerHooks,
    /// pivot_root, MS_MOVE or chroot into the rootfs (or, for an exec, into init's root).
    Pivot,
    /// The container's /proc, /dev/null and the exec fifo it needs to start.
    Proc,
    /// `process.cwd`: creating it, entering it.
    Cwd,
    /// `linux.sysctl`.
    Sysctl,
    /// The process's terminal.
    Terminal,
    /// maskedPaths, readonlyPaths and a read-only root.
    RootfsFinish,
    /// `process.rlimits`.
    Rlimits,
    /// `process.scheduler` and `process.ioPriority`.
    Scheduling,
    /// `process.apparmorProfile`.
    AppArmor,
    /// `linux.personality`.
    Personality,
    /// Loading the seccomp filter.
    Seccomp,
    /// Dropping capabilities from the bounding set.
    BoundingSet,
    /// `process.user`: groups, gid, uid.
    User,
    /// Setting the permitted, inheritable, effective and ambient capabilities.
    Capabilities,
    /// `process.noNewPrivileges`.
    NoNewPrivileges,
    /// Finding the program (`process.args[0]`) as the process's user.
    ExecLookup,
    /// Marking the runtime's descriptors close-on-exec.
    Cloexec,
    /// Waiting for `start` on the exec fifo.
    ExecFifo,
    /// startContainer hooks.
    StartContainerHooks,
    /// execve(2) of the program.
    Execve,
}

/// A failed step of a container process's setup; it crosses the process boundary whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{detail}")]
pub struct Failure {
    /// Which step failed.
    pub step: Step,
    /// The kernel's errno, when a syscall's refusal is the reason.
    pub errno: Option<i32>,
    /// What went wrong, as printed (the errno's text included, as before).
    pub detail: String,
}

impl Failure {
    /// A failure of `step` without an errno.
    pub fn new(step: Step, detail: impl Display) -> Self {
        Self {
            step,
            errno: None,
            detail: detail.to_string(),
        }
    }

    /// A failure of `step` that the kernel's `errno` caused.
    pub fn with_errno(step: Step, errno: nix::errno::Errno, detail: impl Display) -> Self {
        Self {
            step,
            errno: Some(errno as i32),
            detail: detail.to_string(),
        }
    }

    /// A failure of `step` from an error, with the errno found in its chain of causes.
    pub fn of(step: Step, e: &(dyn Error + 'static)) -> Self {
        Self {
            step,
            errno: errno_in(e),
            detail: e.to_string(),
        }
    }

    /// The same failure with `context: ` before its text.
    pub fn context(self, context: impl Display) -> Self {
        Self {
            detail: format!("{context}: {}", self.detail),
            ..self
        }
    }
}

/// A text-only failure, for tests of the channel that only look at the text.
#[cfg(test)]
impl From<&str> for Failure {
    fn from(detail: &str) -> Self {
        Self::new(Step::Sync, detail)
    }
}

/// The first errno in `e` or its causes: a syscall's, an I/O error's, or one the runtime's
/// own errors hold as a field.
fn errno_in(e: &(dyn Error + 'static)) -> Option<i32> {
    use crate::syscall::SyscallError;
    use nix::errno::Errno;
    let mut next = Some(e);
    while let Some(e) = next {
        let found = if let Some(s) = e.downcast_ref::<SyscallError>() {
            Some(s.errno as i32)
        } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io.raw_os_error()
        } else if let Some(errno) = e.downcast_ref::<Errno>() {
            Some(*errno as i32)
        } else if let Some(l) = e.downcast_ref::<super::lookup::LookupError>() {
            l.errno().map(|e| e as i32)
        } else if let Some(a) = e.downcast_ref::<super::attrs::AttrError>() {
            a.errno().map(|e| e as i32)
        } else if let Some(crate::namespaces::NamespaceError::Open { errno, .. }) = e.downcast_ref()
        {
            Some(*errno as i32)
        } else {
            None
        };
        if found.is_some() {
            return found;
        }
        next = e.source();
    }
    None
}

/// `.at(step)` on a result: its error becomes a [`Failure`] of that step.
pub(super) trait At<T> {
    /// The error as a failure of `step`, with its errno.
    fn at(self, step: Step) -> Result<T, Failure>;
}

impl<T, E: Error + 'static> At<T> for Result<T, E> {
    fn at(self, step: Step) -> Result<T, Failure> {
        self.map_err(|e| Failure::of(step, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::SyscallError;
    use nix::errno::Errno;

    #[test]
    fn a_failure_crosses_the_channel_whole() {
        let (main, child) = crate::channel::pair("container init", "runtime").unwrap();
        let sent = Failure {
            step: Step::Cwd,
            errno: Some(libc::ENOENT),
            detail: "process.cwd /nowhere: chdir(/nowhere): ENOENT".into(),
        };
        child
            .send(&crate::channel::Message::Error(sent.clone()))
            .unwrap();
        let got = main
            .recv("Ready", std::time::Duration::from_secs(1))
            .unwrap_err();
        // The text people read is the peer and the detail, as when it was a string.
        assert_eq!(
            got.to_string(),
            "container init: process.cwd /nowhere: chdir(/nowhere): ENOENT"
        );
        match got {
            crate::channel::ChannelError::Remote { peer, failure } => {
                assert_eq!(peer, "container init");
                assert_eq!(failure, sent);
            }
            other => panic!("not Remote: {other:?}"),
        }
    }

    #[test]
    fn a_childs_report_becomes_process_error_failed_with_the_same_text() {
        use super::super::ProcessError;
        use crate::channel::ChannelError;
        let failure = Failure::with_errno(Step::ExecLookup, Errno::ENOENT, "exec: \"x\": ...");
        let remote = ChannelError::Remote {
            peer: "exec process",
            failure: failure.clone(),
        };
        let text = remote.to_string();
        let e = ProcessError::from(remote);
        assert_eq!(e.to_string(), text);
        assert!(
            matches!(&e, ProcessError::Failed { peer: "exec process", failure: f } if *f == failure),
            "{e:?}"
        );
        // Every other channel error stays one.
        let gone = ChannelError::PeerGone {
            peer: "container init",
            waiting_for: "Ready".into(),
        };
        assert!(matches!(ProcessError::from(gone), ProcessError::Channel(_)));
    }

    #[test]
    fn the_errno_is_found_in_the_causes() {
        let sys = SyscallError {
            call: "chdir",
            target: "/x".into(),
            errno: Errno::ENOENT,
        };
        let f: Result<(), _> = Err(sys);
        let f = f.at(Step::Cwd).unwrap_err();
        assert_eq!((f.step, f.errno), (Step::Cwd, Some(libc::ENOENT)));
        assert_eq!(f.detail, "chdir(/x): ENOENT: No such file or directory");

        // One level down, as a namespace error holds the syscall's.
        let ns = crate::namespaces::NamespaceError::Enter {
            kind: "mount",
            source: SyscallError {
                call: "unshare",
                target: "CLONE_NEWNS".into(),
                errno: Errno::EPERM,
            },
        };
        assert_eq!(errno_in(&ns), Some(libc::EPERM));
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(errno_in(&io), Some(libc::EACCES));
        let text = std::fmt::Error;
        assert_eq!(errno_in(&text), None);
    }

    #[test]
    fn context_keeps_step_and_errno() {
        let f = Failure {
            step: Step::Pivot,
            errno: Some(libc::EPERM),
            detail: "chroot(.): EPERM".into(),
        }
        .context("entering the container's root");
        assert_eq!(f.step, Step::Pivot);
        assert_eq!(f.errno, Some(libc::EPERM));
        assert_eq!(
            f.to_string(),
            "entering the container's root: chroot(.): EPERM"
        );
    }
}
