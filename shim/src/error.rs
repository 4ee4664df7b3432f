//! Errors of the shim, with the gRPC code containerd turns into its own error kinds.
//!
//! containerd maps the ttrpc status code of a failed call to an errdefs error
//! (NotFound -> ErrNotFound, AlreadyExists -> ErrAlreadyExists, ...), and clients such
//! as CRI act on that kind. The containerd-shim crate's own conversion turns most
//! errors into a plain "other" error, which containerd sees as Unknown, so every
//! error of this shim carries its kind explicitly.

use containerd_shim_protos::ttrpc::{self, Code};
use runtime_core::container::ContainerError;
use runtime_core::os::ProcessError;
use runtime_core::state::StateError;
use serde::{Deserialize, Serialize};

/// What kind of failure, as containerd's errdefs understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// No such task or process.
    NotFound,
    /// A task with this id exists already.
    AlreadyExists,
    /// The task is not in a state that allows the operation.
    FailedPrecondition,
    /// The request is malformed.
    InvalidArgument,
    /// The operation is not implemented (yet).
    Unimplemented,
    /// The shim cannot serve the request now (its zygote is gone).
    Unavailable,
    /// A bounded wait ran out.
    DeadlineExceeded,
    /// Anything else.
    Unknown,
}

impl Kind {
    /// The gRPC code containerd maps back to this kind.
    pub fn code(self) -> Code {
        match self {
            Kind::NotFound => Code::NOT_FOUND,
            Kind::AlreadyExists => Code::ALREADY_EXISTS,
            Kind::FailedPrecondition => Code::FAILED_PRECONDITION,
            Kind::InvalidArgument => Code::INVALID_ARGUMENT,
            Kind::Unimplemented => Code::UNIMPLEMENTED,
            Kind::Unavailable => Code::UNAVAILABLE,
            Kind::DeadlineExceeded => Code::DEADLINE_EXCEEDED,
            Kind::Unknown => Code::UNKNOWN,
        }
    }
}

/// An error with its kind and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct ShimError {
    /// The kind containerd gets.
    pub kind: Kind,
    /// What happened.
    pub message: String,
}

impl ShimError {
    /// An error of `kind`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// NotFound.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    /// FailedPrecondition.
    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(Kind::FailedPrecondition, message)
    }

    /// InvalidArgument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::InvalidArgument, message)
    }

    /// Unimplemented.
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(Kind::Unimplemented, message)
    }

    /// Unknown.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Kind::Unknown, message)
    }

    /// The same error with `context: ` before its message.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.kind.code(), e.message))
    }
}

impl From<&ContainerError> for Kind {
    fn from(e: &ContainerError) -> Self {
        match e {
            ContainerError::State(s) => Kind::from(s),
            ContainerError::Spec(_) => Kind::InvalidArgument,
            ContainerError::WrongStatus { .. } => Kind::FailedPrecondition,
            ContainerError::Unsupported(_) => Kind::Unimplemented,
            ContainerError::Process(p) => Kind::from(p),
            _ => Kind::Unknown,
        }
    }
}

impl From<&ProcessError> for Kind {
    /// A step of the container's setup that failed inside its processes (a missing program
    /// or cwd, a refused capability, user or mount) is Unknown whatever its step and errno,
    /// as containerd's runc shim reports it: that shim wraps runc's stderr in a plain
    /// error ("OCI runtime create failed: ...", process/init.go runtimeError; "OCI runtime
    /// exec failed: ..." for an exec), which errgrpc turns into Unknown. CRI and kubelet
    /// act on the message there (Docker derives exit codes 126 and 127 from its words),
    /// so the message is kept and the kind is not made more specific than runc's.
    fn from(e: &ProcessError) -> Self {
        // Every variant named, so that a new one gets its kind decided here. The others
        // are failures runc reports the same way (on its stderr, wrapped as above).
        match e {
            ProcessError::Failed { .. }
            | ProcessError::Channel(_)
            | ProcessError::Syscall(_)
            | ProcessError::Namespace(_)
            | ProcessError::Capability(_)
            | ProcessError::Rootfs(_)
            | ProcessError::Cgroup(_)
            | ProcessError::IdMap { .. }
            | ProcessError::Hook(_)
            | ProcessError::Spec(_)
            | ProcessError::InitOomKilled { .. } => Kind::Unknown,
        }
    }
}

impl From<&StateError> for Kind {
    fn from(e: &StateError) -> Self {
        match e {
            StateError::NotFound(_) => Kind::NotFound,
            StateError::AlreadyExists(_) => Kind::AlreadyExists,
            StateError::InvalidId { .. } => Kind::InvalidArgument,
            _ => Kind::Unknown,
        }
    }
}

impl From<ContainerError> for ShimError {
    fn from(e: ContainerError) -> Self {
        ShimError::new(Kind::from(&e), e.to_string())
    }
}

impl From<StateError> for ShimError {
    fn from(e: StateError) -> Self {
        ShimError::new(Kind::from(&e), e.to_string())
    }
}

/// Result of the shim's operations.
pub type Result<T, E = ShimError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_core::state::Status;

    fn status_of(e: ShimError) -> (Code, String) {
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => (s.code(), s.message().to_string()),
            other => panic!("not an RpcStatus: {other:?}"),
        }
    }

    #[test]
    fn every_kind_has_containerds_code() {
        let cases = [
            (Kind::NotFound, Code::NOT_FOUND),
            (Kind::AlreadyExists, Code::ALREADY_EXISTS),
            (Kind::FailedPrecondition, Code::FAILED_PRECONDITION),
            (Kind::InvalidArgument, Code::INVALID_ARGUMENT),
            (Kind::Unimplemented, Code::UNIMPLEMENTED),
            (Kind::Unavailable, Code::UNAVAILABLE),
            (Kind::DeadlineExceeded, Code::DEADLINE_EXCEEDED),
            (Kind::Unknown, Code::UNKNOWN),
        ];
        for (kind, code) in cases {
            let (got, msg) = status_of(ShimError::new(kind, "boom"));
            assert_eq!(got, code, "{kind:?}");
            assert_eq!(msg, "boom");
        }
    }

    #[test]
    fn runtime_errors_keep_their_kind() {
        let cases: Vec<(ContainerError, Kind)> = vec![
            (
                ContainerError::State(StateError::NotFound("c1".into())),
                Kind::NotFound,
            ),
            (
                ContainerError::State(StateError::AlreadyExists("c1".into())),
                Kind::AlreadyExists,
            ),
            (
                ContainerError::State(StateError::InvalidId {
                    id: "a/b".into(),
                    why: "slash",
                }),
                Kind::InvalidArgument,
            ),
            (
                ContainerError::WrongStatus {
                    id: "c1".into(),
                    status: Status::Running,
                    what: "no",
                },
                Kind::FailedPrecondition,
            ),
            (
                ContainerError::Unsupported("terminal".into()),
                Kind::Unimplemented,
            ),
            (
                ContainerError::Start {
                    id: "c1".into(),
                    why: "init died".into(),
                },
                Kind::Unknown,
            ),
        ];
        for (err, kind) in cases {
            let msg = err.to_string();
            let e = ShimError::from(err);
            assert_eq!(e.kind, kind, "{msg}");
            assert_eq!(e.message, msg);
        }
    }

    /// Failures inside the container's processes reach containerd as Unknown, with the
    /// child's text as the message, as containerd's runc shim reports them (its
    /// runtimeError wraps runc's stderr in a plain error); the step and errno do not
    /// change the kind.
    #[test]
    fn process_failures_are_unknown_as_from_runcs_shim() {
        use runtime_core::os::{Failure, Step};
        let cases = [
            (
                Step::ExecLookup,
                Some(libc::ENOENT),
                r#"exec: "nosuchcmd": executable file not found in $PATH"#,
            ),
            (
                Step::Cwd,
                Some(libc::ENOTDIR),
                "process.cwd /etc/hosts/x: chdir(/etc/hosts/x): ENOTDIR: Not a directory",
            ),
            (
                Step::User,
                Some(libc::EPERM),
                "process.user.uid 1000: EPERM: Operation not permitted",
            ),
            (
                Step::Capabilities,
                Some(libc::EPERM),
                "setting capability set permitted: capset(Permitted): EPERM",
            ),
            (
                Step::StartContainerHooks,
                None,
                "startContainer hook: exit 1",
            ),
        ];
        for (step, errno, detail) in cases {
            let failure = Failure {
                step,
                errno,
                detail: detail.into(),
            };
            let e = ContainerError::Process(ProcessError::Failed {
                peer: "container init",
                failure,
            });
            let (code, message) = status_of(ShimError::from(e));
            assert_eq!(code, Code::UNKNOWN, "{step:?}");
            assert_eq!(message, format!("container init: {detail}"));
        }
    }

    #[test]
    fn context_keeps_the_kind() {
        let e = ShimError::not_found("no such task").context("delete c1");
        assert_eq!(e.kind, Kind::NotFound);
        assert_eq!(e.message, "delete c1: no such task");
    }

    #[test]
    fn errors_cross_the_zygote_channel_intact() {
        let e = ShimError::precondition("container c1 is running");
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<ShimError>(&json).unwrap(), e);
    }
}
