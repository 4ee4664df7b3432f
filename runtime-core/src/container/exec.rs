//! `exec`: a new process in a running container.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::{check_console, write_pid_file, Container, ContainerError};
use crate::process::{self, ExecSetup, Stdio};
use crate::seccomp::ContainerSeccomp;
use crate::state::Status;

/// What `exec` needs besides the container.
#[derive(Debug, Default)]
pub struct ExecOptions {
    /// The process to run: its own args, env, cwd and user, not the container's.
    pub process: Process,
    /// Where to write the process's pid.
    pub pid_file: Option<PathBuf>,
    /// Connected console socket, for a process with a terminal.
    pub console: Option<OwnedFd>,
    /// File descriptors after stdio to pass to the process.
    pub preserve_fds: u32,
    /// The process's stdio, if not the caller's.
    pub stdio: Option<Stdio>,
}

impl Container {
    /// Starts `opts.process` in the container; returns its pid once it runs the program.
    pub fn exec(&mut self, opts: &ExecOptions) -> Result<Pid, ContainerError> {
        self.locked(|c| {
            c.require(
                &[Status::Created, Status::Running],
                "can only exec in a created or running container",
            )?;
            check_console(
                opts.process.terminal().unwrap_or(false),
                opts.console.is_some(),
            )?;
            crate::spec::check_scheduling(&opts.process, "process")?;
            // The container's seccomp filter applies to every process in it.
            let seccomp = c.state.seccomp.clone().map(|config| ContainerSeccomp {
                config,
                state: c.state.oci_json(c.status),
            });
            let pid = process::spawn_exec(&ExecSetup {
                process: &opts.process,
                init_pid: c.pid(),
                cgroup: c.cgroup()?,
                preserve_fds: opts.preserve_fds,
                stdio: opts.stdio.as_ref(),
                console: opts.console.as_ref(),
                seccomp: seccomp.as_ref(),
                state_lock: Some(c.entry()?.lock_fd().as_raw_fd()),
            })?;
            if let Some(p) = &opts.pid_file {
                write_pid_file(p, pid)?;
            }
            Ok(pid)
        })
    }
}
