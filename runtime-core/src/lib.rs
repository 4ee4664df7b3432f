//! runtime-core: turns an OCI bundle into running processes.
//!
//! The data path reads top to bottom: [`container`] (the operations on one
//! [`container::Container`]: create, start, kill, delete ...) -> `process` (the double fork
//! and the init sequence) -> `namespaces`, `rootfs`, [`cgroups`], `capabilities`, `hooks`
//! -> `syscall` (the kernel).
//!
//! The front ends (the youki CLI, the shim) see the operations ([`container`],
//! [`checkpoint`]), what they read and keep ([`spec`], [`state`], [`cgroups`],
//! [`features`]), a few shared helpers ([`deadline`], [`passwd`], [`signal`]) and [`os`]:
//! the few pieces of the process and kernel layers they need themselves. The layers under
//! the operations are the crate's own.

// Unsafe code only in the kernel layer, where each block says why it is sound (issue 20).
#![deny(unsafe_code)]

pub(crate) mod capabilities;
pub mod cgroups;
pub(crate) mod channel;
pub mod checkpoint;
pub mod container;
pub mod deadline;
pub mod features;
pub(crate) mod hooks;
pub(crate) mod mountinfo;
pub(crate) mod namespaces;
pub mod passwd;
pub(crate) mod process;
pub(crate) mod rootfs;
pub(crate) mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
#[allow(unsafe_code)]
pub(crate) mod syscall;
pub(crate) mod tty;

/// What the front ends need of the process and kernel layers, and nothing more: the
/// errors an operation's failure carries, a process's stdio, terminals, signals, the heap,
/// a fork for the shim's zygote and a spawn for its logger, the channel the zygote speaks,
/// inherited descriptors, the mounts of idmapped layers.
pub mod os {
    pub use crate::hooks::HookError;
    pub use crate::process::{Failure, ProcessError, Stdio, Step};
    pub use crate::rootfs::RootfsError;
    pub use crate::syscall::{
        exit_child, exit_now, fd_path, fork, new_user_namespace, Forked, LinuxSyscall, Syscall,
        SyscallError,
    };
    pub use crate::tty::{connect, open_pty, receive_master, send_master, Pty, TtyError};

    /// Signals: sending them, and what this process does on one.
    pub mod signals {
        pub use crate::syscall::signals::{kill, set_action, Action};
    }

    /// The C library's heap.
    pub mod malloc {
        pub use crate::syscall::malloc::{set_arena_max, trim};
    }

    /// A terminal's window size.
    pub mod terminal {
        pub use crate::syscall::terminal::{set_window_size, window_size, Winsize};
    }

    /// Descriptors: inherited, copied, and their unread bytes.
    pub mod fds {
        pub use crate::syscall::fds::{dup_from, take_inherited, unread};
    }

    /// A child that only execs a program (the shim's logging binary).
    pub mod spawn {
        pub use crate::syscall::spawn::{clone3_pidfd, fork, ChildFds, Program, FIRST_FD};
    }

    /// The channel the shim's zygote and its server speak (the process protocol's own).
    pub mod channel {
        pub use crate::channel::{pair, Channel, ChannelError};
    }

    /// Process descriptors.
    pub mod pidfd {
        pub use crate::syscall::pidfd::{open, send_signal};
    }
}
