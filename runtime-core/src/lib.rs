//! runtime-core: turns an OCI bundle into running processes.
//!
//! The data path reads top to bottom: [`container`] (the operations: create, start, kill,
//! delete) -> [`process`] (the double fork and the init sequence) -> [`namespaces`],
//! [`rootfs`], [`cgroups`], [`capabilities`], [`hooks`] -> [`syscall`] (the kernel).

// Unsafe code only in the kernel layer, where each block says why it is sound (issue 20).
#![deny(unsafe_code)]

pub mod capabilities;
pub mod cgroups;
pub mod channel;
pub mod checkpoint;
pub mod container;
pub mod deadline;
pub mod features;
pub mod hooks;
pub mod mountinfo;
pub mod namespaces;
pub mod passwd;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
#[allow(unsafe_code)]
pub mod syscall;
pub mod tty;
