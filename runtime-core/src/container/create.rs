//! `create`: the container's processes built, its init waiting for `start`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::binding::{release_host_binding, save_host_binding};
use super::{check_console, oci_state_bytes, write_pid_file, Container, ContainerError};
use crate::cgroups;
use crate::hooks;
use crate::process::{self, ContainerSetup};
use crate::rootfs::HostBinding;
use crate::spec::{self, Bundle};
use crate::state::{self, State, Status, Store};
use crate::syscall;

/// What `create` needs besides the store.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Where to write the init pid.
    pub pid_file: Option<PathBuf>,
    /// Connected console socket to send a terminal's master to (see [`crate::os::connect`]).
    pub console: Option<OwnedFd>,
    /// File descriptors after stdio to pass to the process.
    pub preserve_fds: u32,
    /// Enter the rootfs without pivot_root.
    pub no_pivot: bool,
    /// The process's stdio, if not the caller's.
    pub stdio: Option<process::Stdio>,
    /// The cgroup driver.
    pub cgroup_driver: cgroups::Driver,
}

/// Creates the container: processes built, init waiting for `start`. The handle returned
/// does not hold the container's lock.
pub fn create(store: &Store, opts: &CreateOptions) -> Result<Container, ContainerError> {
    state::validate_id(&opts.id)?;
    let bundle = check_bundle(opts)?;
    let (cgroup_path, cgroup) =
        cgroups::for_new_container(&bundle.spec, &opts.id, opts.cgroup_driver)?;
    let entry = store.create(&opts.id)?;
    let state = State::creating(&opts.id, &bundle.path, &bundle.spec, cgroup_path);
    let mut container = Container::new(store, state, Some(entry));
    let _ = container.cgroup.set(cgroup);
    let mut unfinished = Unfinished {
        container: &mut container,
        spec: &bundle.spec,
        armed: true,
    };
    build(unfinished.container, &bundle, opts)?;
    unfinished.armed = false;
    drop(unfinished);
    container.unlock();
    Ok(container)
}

/// Loads the bundle's config and checks what create can check before making anything.
fn check_bundle(opts: &CreateOptions) -> Result<Bundle, ContainerError> {
    let bundle = spec::open_bundle(&opts.bundle)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    check_console(terminal, opts.console.is_some())?;
    Ok(bundle)
}

/// A container whose create has not finished: dropped while still `armed` (a step
/// failed), it takes away whatever the create made.
struct Unfinished<'a> {
    container: &'a mut Container,
    spec: &'a Spec,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    /// Leaves nothing behind: spawn kills what it started when it fails itself, but a
    /// failure after it (a pid file that cannot be written) leaves init waiting.
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let c = &mut *self.container;
        if let Err(e) = c.kill_all() {
            log::warn!("cleaning up after failed create: {e}");
        }
        if let Err(e) = c.cgroup().and_then(|m| m.remove()) {
            log::warn!("cleaning up after failed create: {e}");
        }
        if let Some(entry) = c.entry.take() {
            if let Err(e) = release_host_binding(&entry) {
                log::warn!("cleaning up after failed create: {e}");
            }
            if let Err(e) = entry.remove() {
                log::warn!("cleaning up after failed create: {e}");
            }
        }
        // runtime.md: a create that fails "continue[s] the lifecycle at step 12": the
        // container is destroyed, then the poststop hooks run (step 13), as runc runs them
        // after any failed create. A failure among them is only a warning.
        if let Some(list) = self
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().as_ref())
        {
            hooks::run_best_effort(list, &oci_state_bytes(&c.state, Status::Stopped));
        }
    }
}

/// The steps of create once the state directory exists and is locked: the state saved,
/// the exec fifo, the processes, then the state with init's pid.
fn build(c: &mut Container, bundle: &Bundle, opts: &CreateOptions) -> Result<(), ContainerError> {
    // Before anything runs: a create killed from here on leaves a state that names the
    // cgroup, through which `delete` finds and kills whatever it had started.
    c.save()?;
    make_fifo(c, &bundle.spec)?;
    let entry = c.entry()?;
    if !crate::namespaces::has_mount_ns(&bundle.spec) {
        // init's mounts will land in this mount namespace: noted before it makes them, so
        // that delete (or the cleanup of a failed create) detaches them.
        save_host_binding(
            entry,
            &HostBinding::before(&syscall::LinuxSyscall, &bundle.rootfs)?,
        )?;
    }
    let setup = ContainerSetup {
        spec: &bundle.spec,
        rootfs: bundle.rootfs.clone(),
        exec_fifo: entry.fifo(),
        cgroup: c.cgroup()?,
        preserve_fds: opts.preserve_fds,
        no_pivot: opts.no_pivot,
        stdio: opts.stdio.as_ref(),
        console: opts.console.as_ref(),
        state: c.state.clone(),
        state_lock: Some(entry.lock_fd().as_raw_fd()),
    };
    let pid = process::spawn(&setup, &mut |pid| {
        runtime_hooks(&c.state, &bundle.spec, pid)
    })?;
    c.state.pid = pid.as_raw();
    c.state.init_start_time = state::proc_stat(c.state.pid)
        .map(|s| s.start_time)
        .ok_or_else(|| ContainerError::Start {
            id: opts.id.clone(),
            why: "init exited during create".into(),
        })?;
    c.state.status = Status::Created;
    c.status = Status::Created;
    c.save()?;
    if let Some(p) = &opts.pid_file {
        write_pid_file(p, pid)?;
    }
    Ok(())
}

/// The exec fifo init blocks on until `start`.
fn make_fifo(c: &Container, spec: &Spec) -> Result<(), ContainerError> {
    let fifo = c.entry()?.fifo();
    let io = |source: std::io::Error| ContainerError::Io {
        path: fifo.clone(),
        source,
    };
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622)).map_err(|e| io(e.into()))?;
    // 0622 whatever the umask (which would leave 0600), as runc makes it: init reopens the
    // fifo for writing after it became the process's user, which without CAP_DAC_OVERRIDE
    // (a non-root user with capabilities dropped) needs the write bit for others. The state
    // directory (0711) keeps it out of listings.
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o622)).map_err(io)?;
    // In a user namespace init is the namespace's root, a host uid that must open it.
    let linux = spec.linux().as_ref();
    let host_id = |maps: Option<&Vec<LinuxIdMapping>>| {
        maps.and_then(|m| m.iter().find(|m| m.container_id() == 0))
            .map(|m| m.host_id())
    };
    let uid = host_id(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = host_id(linux.and_then(|l| l.gid_mappings().as_ref()));
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(
            &fifo,
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
        )
        .map_err(|e| io(e.into()))?;
    }
    Ok(())
}

/// The prestart and createRuntime hooks, run in the runtime once init (`pid`) has its
/// namespaces and mounts.
fn runtime_hooks(st: &State, spec: &Spec, pid: Pid) -> Result<(), String> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    let mut s = st.clone();
    s.pid = pid.as_raw();
    let json = oci_state_bytes(&s, Status::Creating);
    for (phase, list) in [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
    ] {
        hooks::run(list.as_deref().unwrap_or_default(), &json)
            .map_err(|e| format!("{phase} hook: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_goes_with_a_terminal_only() {
        assert!(check_console(true, true).is_ok());
        assert!(check_console(false, false).is_ok());
        assert!(check_console(true, false).is_err());
        assert!(check_console(false, true).is_err());
    }

    #[test]
    fn a_terminal_without_a_console_is_refused_before_anything_is_made() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("root"));
        let bundle = tmp.path().join("bundle");
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        // A terminal without a console: refused before anything is made.
        std::fs::write(
            bundle.join("config.json"),
            r#"{"ociVersion":"1.0.2","process":{"terminal":true,"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}},"root":{"path":"rootfs"},"linux":{}}"#,
        )
        .unwrap();
        let opts = CreateOptions {
            id: "c1".into(),
            bundle,
            ..Default::default()
        };
        assert!(matches!(
            create(&store, &opts),
            Err(ContainerError::Unsupported(_))
        ));
        assert!(store.ids().unwrap().is_empty());
    }
}
