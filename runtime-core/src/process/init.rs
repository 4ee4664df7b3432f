//! The container's init process: from fresh child to the user's program.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process, Spec};

use super::failure::{At, Failure, Step};
use super::{ContainerSetup, INIT_TIMEOUT};
use crate::capabilities::CapabilitySets;
use crate::channel::{Channel, Message};
use crate::namespaces::Namespaces;
use crate::state::Status;
use crate::syscall::{self, LinuxSyscall, Syscall};
use crate::{hooks, rootfs};

/// PATH used to find the program when the process's env has none, as runc does.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs in the init process; never returns: it execs the program or exits. `born`: the
/// process was created in its cgroup's v2 directory (see `intermediate::run`).
pub(super) fn run(
    setup: &ContainerSetup<'_>,
    ns: &Namespaces,
    caps: &CapabilitySets,
    bind_trees: &rootfs::BindTrees,
    to_main: Channel,
    born: bool,
) -> ! {
    let Err(e) = try_build(setup, ns, caps, bind_trees, &to_main, born);
    // Until Ready, main is listening and reports the error. After it main is gone, and a
    // failure shows as init exiting before `start` takes it (startContainer hook failures
    // are reported through the fifo instead).
    let _ = to_main.send(&Message::Error(e));
    syscall::exit_child(1)
}

fn try_build(
    setup: &ContainerSetup<'_>,
    ns: &Namespaces,
    caps: &CapabilitySets,
    bind_trees: &rootfs::BindTrees,
    to_main: &Channel,
    born: bool,
) -> Result<std::convert::Infallible, Failure> {
    let sys = LinuxSyscall;
    let spec = setup.spec;
    let process =
        (spec.process().as_ref()).ok_or_else(|| Failure::new(Step::Config, "process: missing"))?;

    detach(&sys, setup.stdio)?;

    // Opened now, while the host path resolves; reopened for writing at the very end.
    let fifo = open(
        &setup.exec_fifo,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        let path = setup.exec_fifo.display();
        Failure::with_errno(Step::ExecFifo, e, format!("open {path}: {e}"))
    })?;
    let host_pid = host_pid()?;
    // Compiled, and its notify listener connected, while host paths still resolve.
    let mut listener_state = setup.state.clone();
    listener_state.pid = host_pid;
    let seccomp = crate::seccomp::Prepared::new(
        spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
        listener_state.oci_json(Status::Creating),
    )
    .map_err(|e| Failure::new(Step::SeccompPrepare, e))?;

    // The cgroup namespace waits until we are in the container's cgroup: its root is the
    // cgroup of the process that creates it.
    let cgroup_ns = CloneFlags::CLONE_NEWCGROUP;
    let early = !(CloneFlags::CLONE_NEWUSER | crate::namespaces::intermediate_flags() | cgroup_ns);
    ns.enter(&sys, early).at(Step::Namespaces)?;
    if ns.has(CloneFlags::CLONE_NEWUTS) {
        if let Some(h) = spec.hostname() {
            sys.sethostname(h).at(Step::Hostname)?;
        }
        if let Some(d) = spec.domainname() {
            sys.setdomainname(d).at(Step::Hostname)?;
        }
    }

    let in_mount_ns = ns.has(CloneFlags::CLONE_NEWNS);
    let in_user_ns = ns.has(CloneFlags::CLONE_NEWUSER);
    let cgroup_mounts = setup.cgroup.mounts();
    let sources = rootfs::MountSources {
        cgroups: &cgroup_mounts,
        bind_trees: Some(bind_trees),
    };
    if in_mount_ns {
        rootfs::prepare(&sys, spec, &setup.rootfs, &sources, in_user_ns)
    } else {
        // As runc: the spec's mounts and /dev are made even without a mount namespace of
        // the container's own, in the caller's (which the spec then asks to share).
        rootfs::prepare_in_host_namespace(&sys, spec, &setup.rootfs, &sources, in_user_ns)
    }
    .at(Step::Rootfs)?;

    // Nothing above depends on our cgroup; the hooks and the user's program below do.
    if super::joins_cgroup_itself(setup.cgroup, ns) {
        setup.cgroup.join_self(born).at(Step::CgroupJoin)?;
    } else {
        // main moves us while we build namespaces and mounts above: the move costs the
        // kernel an RCU grace period (milliseconds), which this overlaps.
        to_main
            .expect(&Message::CgroupJoined, INIT_TIMEOUT)
            .at(Step::CgroupJoin)?;
    }
    ns.enter(&sys, cgroup_ns).at(Step::Namespaces)?;

    let hooks = spec.hooks().as_ref();
    let has_runtime_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if has_runtime_hooks {
        to_main.send(&Message::RunRuntimeHooks).at(Step::Sync)?;
        to_main
            .expect(&Message::RuntimeHooksDone, INIT_TIMEOUT)
            .at(Step::RuntimeHooks)?;
    }
    let state_json = |status: Status| {
        let mut st = setup.state.clone();
        st.pid = host_pid;
        serde_json::to_vec(&st.oci_json(status)).unwrap_or_default()
    };
    if let Some(list) = hooks.and_then(|h| h.create_container().as_ref()) {
        hooks::run(list, &state_json(Status::Creating))
            .at(Step::CreateContainerHooks)
            .map_err(|f| f.context("createContainer hook"))?;
    }

    if in_mount_ns && setup.no_pivot {
        rootfs::move_root(&sys, &setup.rootfs).at(Step::Pivot)?;
    } else if in_mount_ns {
        rootfs::pivot(&sys, &setup.rootfs).at(Step::Pivot)?;
    } else {
        // Without a mount namespace of its own (and with --no-pivot too: moving the rootfs
        // onto the host's / would take the host's root away) the container shares the
        // host's mounts; chroot into the rootfs, as runc does.
        sys.chroot(&setup.rootfs).map_err(|e| {
            let detail = format!("chroot {}: {}", setup.rootfs.display(), e.errno);
            Failure::with_errno(Step::Pivot, e.errno, detail)
        })?;
        sys.chdir(Path::new("/")).at(Step::Pivot)?;
    }
    check_proc()?;
    if in_mount_ns {
        reopen_dev_null(&sys)?;
    }
    create_cwd(process.cwd())?;
    write_sysctls(spec)?;
    if let Some(console) = setup.console {
        // Inside the container, so that the pty comes from its own devpts; /dev/console
        // is bound before the root may turn read-only (as runc, also without a mount
        // namespace: the bind is then under the rootfs bind, detached with it at delete).
        let slave = open_terminal(console, Some(&sys), process)?;
        crate::tty::make_controlling(&slave).at(Step::Terminal)?;
    }
    if in_mount_ns {
        // Without a mount namespace runc skips this too: maskedPaths and readonlyPaths
        // are refused then (spec validation), and root.readonly is not applied.
        rootfs::finish(&sys, spec).at(Step::RootfsFinish)?;
    }

    let personality = super::attrs::personality_of_spec(
        spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
    );
    let program = Program::prepare(
        &sys,
        process,
        caps,
        setup.preserve_fds,
        seccomp,
        personality,
    )?;
    check_fifo_writable(&fifo)?;
    to_main.send(&Message::Ready).at(Step::Sync)?;

    let mut start = wait_for_start(&fifo)?;
    // From here on `start` is listening on the fifo, not main on the channel: report there.
    let hooks_done = match hooks.and_then(|h| h.start_container().as_ref()) {
        Some(list) => hooks::run(list, &state_json(Status::Created))
            .map_err(|e| format!("startContainer hook: {e}")),
        None => Ok(()),
    };
    let status = match &hooks_done {
        Ok(()) => START_OK.to_vec(),
        Err(e) => [START_FAILED, e.as_bytes()].concat(),
    };
    start
        .write_all(&status)
        .at(Step::ExecFifo)
        .map_err(|f| f.context("writing exec fifo"))?;
    hooks_done.map_err(|e| Failure::new(Step::StartContainerHooks, e))?;
    // The fifo is close-on-exec: `start` sees end-of-file exactly when the program runs.
    Err(program.exec())
}

/// First byte init writes to the exec fifo: the program is about to run.
pub const START_OK: &[u8] = b"0";
/// First byte init writes to the exec fifo when a startContainer hook failed; the reason
/// follows.
pub const START_FAILED: &[u8] = b"1";

/// The program a container process execs, resolved with every limit and credential applied:
/// the last steps of init and of an exec'd process alike.
pub(super) struct Program {
    exe: CString,
    args: Vec<CString>,
    env: Vec<CString>,
}

impl Program {
    /// Applies rlimits, scheduler, ioPriority, cwd, personality, user,
    /// capabilities, AppArmor, noNewPrivileges and the seccomp filter, and finds the
    /// program; errors here fail `create` (or `exec`) rather than `start`.
    ///
    /// The security steps keep this order (tested below with the recording double); runc's
    /// (libcontainer/standard_init_linux.go, finalizeNamespace in init_linux.go) differs in
    /// where, not whether: it sets noNewPrivileges before the scheduler and the first
    /// filter, marks descriptors close-on-exec before the capability changes, and clears
    /// keepcaps after a second chdir. What both hold to: a filter loaded without
    /// noNewPrivileges comes before the bounding set is dropped (it needs CAP_SYS_ADMIN);
    /// the bounding set is dropped before the user changes (CAP_SETPCAP); groups, then gid,
    /// then uid, with keepcaps around them; the capability sets after the user change; the
    /// filter under noNewPrivileges last of all.
    pub(super) fn prepare(
        sys: &impl Syscall,
        process: &Process,
        caps: &CapabilitySets,
        preserve_fds: u32,
        mut seccomp: Option<impl LoadFilter>,
        personality: Option<libc::c_ulong>,
    ) -> Result<Self, Failure> {
        // oomScoreAdj was set by the intermediate process, before the namespaces.
        apply_rlimits(sys, process)?;
        // With every capability still held (a real-time policy needs CAP_SYS_NICE).
        super::attrs::apply_scheduling(sys, process).at(Step::Scheduling)?;
        let env = environment(process);
        let cwd = process.cwd();
        sys.chdir(cwd).map_err(|e| {
            let detail = format!("process.cwd {}: {e}", cwd.display());
            Failure::with_errno(Step::Cwd, e.errno, detail)
        })?;
        // CVE-2024-21626: through a descriptor this process still holds (/proc/self/fd/N)
        // the cwd can lie outside the container's root, where getcwd(2) has no path for it.
        std::env::current_dir().map_err(|e| Failure {
            step: Step::Cwd,
            errno: e.raw_os_error(),
            detail: format!(
                "process.cwd {}: not inside the container ({e})",
                cwd.display()
            ),
        })?;
        crate::seccomp::lsm::apply(process).map_err(|e| Failure::new(Step::AppArmor, e))?;
        // Before any filter: a profile may not allow personality(2) (Docker's allows only
        // some personas), and the persona is kept across execve.
        if let Some(p) = personality {
            super::attrs::apply_personality(sys, p).at(Step::Personality)?;
        }
        let nnp = process.no_new_privileges().unwrap_or(false);
        if !nnp {
            // Without noNewPrivileges, loading a filter needs CAP_SYS_ADMIN: before the drop.
            seccomp.take().map(|s| s.load(sys)).transpose()?;
        }
        caps.drop_bounding(sys).at(Step::BoundingSet)?;
        change_user(sys, process)?;
        caps.apply(sys).at(Step::Capabilities)?;
        if nnp {
            sys.set_no_new_privs().map_err(|e| {
                let detail = format!("process.noNewPrivileges: {}", e.errno);
                Failure::with_errno(Step::NoNewPrivileges, e.errno, detail)
            })?;
        }
        // As runc finds it: as the process's user, so that a file it may not execute fails
        // create (or exec) here, in words clients know, rather than execve after start.
        let path = env_value(process, "PATH").unwrap_or(DEFAULT_PATH);
        let exe = super::lookup::find_program(process.args().as_deref(), path, cwd)
            .at(Step::ExecLookup)?;
        // Only stdio and the preserved descriptors reach the program.
        sys.cloexec_from(3 + preserve_fds).at(Step::Cloexec)?;
        let args = cstrings(process.args().as_deref().unwrap_or_default())?;
        // As late as possible, so that the fewest of the runtime's own syscalls run under it.
        seccomp.map(|s| s.load(sys)).transpose()?;
        Ok(Self { exe, args, env })
    }

    /// execve; returns only the reason it failed.
    pub(super) fn exec(&self) -> Failure {
        let e = syscall::execve(&self.exe, &self.args, &self.env);
        Failure::with_errno(Step::Execve, e.errno, e)
    }
}

/// A seccomp filter ready to be loaded into the calling process.
pub(super) trait LoadFilter {
    /// Loads it, as the last step before the program or before the capability drop.
    fn load(self, sys: &impl Syscall) -> Result<(), Failure>;
}

impl LoadFilter for crate::seccomp::Prepared {
    fn load(self, sys: &impl Syscall) -> Result<(), Failure> {
        // Through Syscall::seccomp_load, then the notify descriptor to the listener.
        self.install(sys)
            .map_err(|e| Failure::new(Step::Seccomp, e))
    }
}

/// Detaches the process from the runtime: not dumpable, default signals, a session of its
/// own, and its stdio.
pub(super) fn detach(sys: &impl Syscall, stdio: Option<&super::Stdio>) -> Result<(), Failure> {
    // Nothing of this process may be read through /proc/PID (its memory, its fds, the
    // runtime binary via /proc/PID/exe) by the container until it runs the user's program;
    // execve restores dumpability.
    nix::sys::prctl::set_dumpable(false).map_err(|e| {
        Failure::with_errno(Step::Detach, e, format!("prctl(PR_SET_DUMPABLE): {e}"))
    })?;
    syscall::signals::reset().at(Step::Detach)?;
    crate::tty::new_session().at(Step::Detach)?;
    if let Some(stdio) = stdio {
        set_stdio(sys, stdio)?;
    }
    Ok(())
}

/// Creates the process's terminal inside the container and sends its master over the
/// console socket; with `mount`, binds the slave onto /dev/console as runc does. Returns the
/// slave. `process.consoleSize` sets its first window size, as runc does when both height
/// and width are non-zero (terminal is set, or this would not run: the spec says to ignore
/// the size without one).
pub(super) fn open_terminal(
    console: &OwnedFd,
    mount: Option<&dyn Syscall>,
    process: &Process,
) -> Result<OwnedFd, Failure> {
    let pty = crate::tty::open_pty().at(Step::Terminal)?;
    crate::tty::set_first_size(&pty, process.console_size().as_ref()).at(Step::Terminal)?;
    if let Some(sys) = mount {
        let console_path = Path::new("/dev/console");
        if !console_path.exists() {
            File::create(console_path)
                .at(Step::Terminal)
                .map_err(|f| f.context("creating /dev/console"))?;
        }
        sys.mount(
            Some(&pty.slave_path),
            console_path,
            None,
            nix::mount::MsFlags::MS_BIND,
            None,
        )
        .at(Step::Terminal)
        .map_err(|f| {
            f.context(format!(
                "binding {} to /dev/console",
                pty.slave_path.display()
            ))
        })?;
    }
    crate::tty::send_master(console.as_fd(), pty.master.as_fd()).at(Step::Terminal)?;
    Ok(pty.slave)
}

/// Makes the given descriptors this process's stdin, stdout and stderr (dup2 leaves the
/// copies without close-on-exec, so the program inherits them).
pub(super) fn set_stdio(sys: &impl Syscall, stdio: &super::Stdio) -> Result<(), Failure> {
    let streams = [
        ("stdin", &stdio.stdin),
        ("stdout", &stdio.stdout),
        ("stderr", &stdio.stderr),
    ];
    for (target, (which, fd)) in streams.into_iter().enumerate() {
        if let Some(fd) = fd {
            sys.dup2(fd.as_fd(), target as i32).map_err(|e| {
                let detail = format!("setting {which}: dup2: {}", e.errno);
                Failure::with_errno(Step::Detach, e.errno, detail)
            })?;
        }
    }
    Ok(())
}

/// Replaces each of stdin, stdout and stderr that is the host's /dev/null with the
/// container's, as runc does after pivot_root: the host's /dev is not the container's to
/// see, and CRIU cannot dump a descriptor on a mount outside the container.
fn reopen_dev_null(sys: &impl Syscall) -> Result<(), Failure> {
    use nix::sys::stat::{fstat, major, minor, SFlag};
    let is_null = |st: &nix::sys::stat::FileStat| {
        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
            && (major(st.st_rdev), minor(st.st_rdev)) == (1, 3)
    };
    let on_null = |fd: BorrowedFd<'_>| fstat(fd).is_ok_and(|st| is_null(&st));
    let (stdin, stdout, stderr) = (
        on_null(std::io::stdin().as_fd()),
        on_null(std::io::stdout().as_fd()),
        on_null(std::io::stderr().as_fd()),
    );
    if !(stdin || stdout || stderr) {
        return Ok(());
    }
    let context = "reopening stdio on the container's /dev/null";
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .at(Step::Proc)
        .map_err(|f| f.context(context))?;
    if !on_null(null.as_fd()) {
        return Err(Failure::new(Step::Proc, "it is not the null device").context(context));
    }
    for (target, on) in [stdin, stdout, stderr].into_iter().enumerate() {
        if on {
            sys.dup2(null.as_fd(), target as i32).map_err(|e| {
                Failure::with_errno(Step::Proc, e.errno, format!("{context}: {}", e.errno))
            })?;
        }
    }
    Ok(())
}

/// This process's pid in the runtime's pid namespace: the first NSpid entry in the host's
/// /proc (still mounted, since this runs before pivot_root).
fn host_pid() -> Result<i32, Failure> {
    let status = std::fs::read_to_string("/proc/self/status")
        .at(Step::Proc)
        .map_err(|f| f.context("reading /proc/self/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Failure::new(Step::Proc, "no NSpid in /proc/self/status"))
}

/// Whether init, now with the process's user and capabilities, may open the fifo for
/// writing: checked before Ready, so that create reports it, where after Ready the error
/// would only show as an init that exited before start. The same open(2) as
/// [`wait_for_start`]'s, so the container's seccomp filter (loaded by now) allows it too.
fn check_fifo_writable(fifo: &OwnedFd) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    // Non-blocking, with no reader before Ready: ENXIO once the permission check passed.
    match File::options()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
        Err(e) => Err(Failure {
            step: Step::ExecFifo,
            errno: e.raw_os_error(),
            detail: format!("the process's user cannot open the exec fifo {path}: {e}"),
        }),
    }
}

/// Init reopens the exec fifo through /proc/self/fd (and marks descriptors close-on-exec
/// through it when close_range(2) is refused): a container whose `mounts` give it no proc
/// at /proc cannot start. Said here plainly, where the open would only report a missing
/// /proc/self/fd/N; runc fails the same config with "open /proc/self/fd: no such file".
fn check_proc() -> Result<(), Failure> {
    if Path::new("/proc/self/fd").is_dir() {
        return Ok(());
    }
    Err(Failure::new(
        Step::Proc,
        "the container has no /proc/self/fd: mount proc at /proc (in `mounts`); the runtime \
         needs it to start the process",
    ))
}

/// Blocks until `start` opens the fifo for reading; returns the fifo open for writing.
fn wait_for_start(fifo: &OwnedFd) -> Result<File, Failure> {
    // Reopen through /proc: the O_PATH descriptor refers to the fifo on the host even though
    // its path is no longer reachable from the container's root. Opening for writing blocks
    // until a reader (`start`) opens it. std opens with O_CLOEXEC.
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    File::options()
        .write(true)
        .open(&path)
        .at(Step::ExecFifo)
        .map_err(|f| f.context(format!("opening exec fifo {path}")))
}

/// Creates a missing `process.cwd` as runc does (its prepareRootfs, right after entering the
/// root): with its parents, mode 0755 less the umask inherited from the caller, by init still
/// as the container's root, so owned by root whatever `process.user` is (runc does not chown
/// it either); before the root turns read-only. The process is inside its root by now, so
/// no path (`..`, symlinks) can lead out of it.
fn create_cwd(cwd: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::symlink_metadata(cwd) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cwd)
            .at(Step::Cwd)
            .map_err(|f| f.context(format!("process.cwd {}: creating it", cwd.display()))),
        // Present (a directory, or something chdir reports on later), or not reachable
        // (chdir, after the switch to the process's user, says why).
        _ => Ok(()),
    }
}

fn write_sysctls(spec: &Spec) -> Result<(), Failure> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctl {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).at(Step::Sysctl).map_err(|f| {
            f.context(format!(
                "linux.sysctl {key}={value}: writing {}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

fn rlimit_number(t: PosixRlimitType) -> u32 {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

fn apply_rlimits(sys: &impl Syscall, process: &Process) -> Result<(), Failure> {
    for r in process.rlimits().iter().flatten() {
        sys.setrlimit(rlimit_number(r.typ()), r.soft(), r.hard())
            .map_err(|e| {
                let hint = if e.errno == nix::errno::Errno::EPERM {
                    " (raising a hard limit needs CAP_SYS_RESOURCE)"
                } else {
                    ""
                };
                let detail = format!(
                    "process.rlimits {}: soft {} hard {}: {e}{hint}",
                    serde_json::to_string(&r.typ()).unwrap_or_default(),
                    r.soft(),
                    r.hard()
                );
                Failure::with_errno(Step::Rlimits, e.errno, detail)
            })?;
    }
    Ok(())
}

/// Sets the calling process's oom_score_adj (process.oomScoreAdj).
pub(super) fn write_oom_score_adj(adj: i32) -> Result<(), Failure> {
    std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (lowering it below the current value needs CAP_SYS_RESOURCE)"
        } else {
            ""
        };
        Failure {
            step: Step::OomScoreAdj,
            errno: e.raw_os_error(),
            detail: format!("process.oomScoreAdj {adj}: {e}{hint}"),
        }
    })
}

/// Switches to the process's user and groups, keeping capabilities across the switch so
/// that the spec's sets can be applied afterwards.
fn change_user(sys: &impl Syscall, process: &Process) -> Result<(), Failure> {
    let user = process.user();
    let uid = Uid::from_raw(user.uid());
    let gid = Gid::from_raw(user.gid());
    if let Some(mask) = user.umask() {
        sys.umask(Mode::from_bits_truncate(mask));
    }
    // The texts name the spec's field with the errno, as before the calls had a trait.
    let fail = |e: syscall::SyscallError, what: String| {
        Failure::with_errno(Step::User, e.errno, format!("{what}: {}", e.errno))
    };
    let keepcaps = |e| fail(e, "prctl(PR_SET_KEEPCAPS)".into());
    sys.set_keepcaps(true).map_err(keepcaps)?;
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if super::setgroups_denied() {
        // As runc: an unprivileged user's namespace with its own gid mapped directly
        // forbids setgroups(2); the groups are left as they are, silently.
        log::debug!("setgroups denied in this user namespace: additionalGids {groups:?} not set");
    } else {
        (sys.setgroups(&groups))
            .map_err(|e| fail(e, format!("process.user.additionalGids {groups:?}")))?;
    }
    (sys.setresgid(gid)).map_err(|e| fail(e, format!("process.user.gid {gid}")))?;
    (sys.setresuid(uid)).map_err(|e| fail(e, format!("process.user.uid {uid}")))?;
    sys.set_keepcaps(false).map_err(keepcaps)
}

fn env_value<'a>(process: &'a Process, key: &str) -> Option<&'a str> {
    process
        .env()
        .iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The environment: the spec's, plus HOME from /etc/passwd when missing, as runc does.
fn environment(process: &Process) -> Vec<CString> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if env_value(process, "HOME").is_none() {
        let home = crate::passwd::lookup(Path::new("/etc/passwd"), process.user().uid())
            .map_or_else(|| "/".into(), |e| e.home);
        env.push(format!("HOME={home}"));
    }
    env.into_iter()
        .filter_map(|e| CString::new(e).ok())
        .collect()
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, Failure> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| {
                Failure::new(
                    Step::ExecLookup,
                    format!("process.args: {s:?} contains NUL"),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::recording::{Call, RecordingSyscall};
    use caps::Capability as Cap;
    use nix::errno::Errno;

    /// A filter of `n` instructions that loads through the recording double.
    struct TestFilter(usize);

    impl LoadFilter for TestFilter {
        fn load(self, sys: &impl Syscall) -> Result<(), Failure> {
            let nop = libc::sock_filter {
                code: 0,
                jt: 0,
                jf: 0,
                k: 0,
            };
            sys.seccomp_load(&vec![nop; self.0], 0)
                .map(drop)
                .at(Step::Seccomp)
        }
    }

    fn process(nnp: bool, args0: &str) -> Process {
        serde_json::from_value(serde_json::json!({
            "cwd": "/",
            "args": [args0],
            "env": ["PATH=/usr/bin:/bin", "HOME=/root"],
            "user": {"uid": 1000, "gid": 1000, "umask": 0o27, "additionalGids": [5]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}],
            "noNewPrivileges": nnp,
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_CHOWN"],
                "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "inheritable": ["CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_NET_BIND_SERVICE"]
            }
        }))
        .expect("process")
    }

    /// Runs prepare with a 4-instruction filter and 2 preserved descriptors.
    fn prepare(sys: &RecordingSyscall, process: &Process) -> Result<Program, Failure> {
        let caps =
            CapabilitySets::from_spec(sys, process.capabilities().as_ref()).expect("capabilities");
        Program::prepare(sys, process, &caps, 2, Some(TestFilter(4)), None)
    }

    /// The calls with the bounding-set drops (one per capability) folded into one entry.
    fn folded(calls: Vec<Call>) -> Vec<Call> {
        let mut out: Vec<Call> = Vec::new();
        for c in calls {
            let drop = matches!(c, Call::DropBounding(_));
            if !(drop && matches!(out.last(), Some(Call::DropBounding(_)))) {
                out.push(if drop {
                    Call::DropBounding(Cap::CAP_CHOWN)
                } else {
                    c
                });
            }
        }
        out
    }

    /// What the user, capability and descriptor steps record, in order.
    fn user_and_caps() -> Vec<Call> {
        vec![
            Call::Umask(Mode::from_bits_truncate(0o27)),
            Call::Keepcaps(true),
            Call::Setgroups(vec![Gid::from_raw(5)]),
            Call::Setresgid(Gid::from_raw(1000)),
            Call::Setresuid(Uid::from_raw(1000)),
            Call::Keepcaps(false),
            Call::SetCapabilities("Inheritable".into(), vec![Cap::CAP_NET_BIND_SERVICE]),
            Call::SetCapabilities("Effective".into(), vec![Cap::CAP_CHOWN]),
            Call::SetCapabilities(
                "Permitted".into(),
                vec![Cap::CAP_CHOWN, Cap::CAP_NET_BIND_SERVICE],
            ),
            Call::ClearAmbient,
            Call::RaiseAmbient(Cap::CAP_NET_BIND_SERVICE),
        ]
    }

    #[test]
    fn without_no_new_privileges_the_filter_loads_before_the_capability_drop() {
        let sys = RecordingSyscall::default();
        prepare(&sys, &process(false, "/bin/sh")).expect("prepare");
        let mut want = vec![
            Call::Setrlimit(libc::RLIMIT_NOFILE, 1024, 2048),
            Call::Chdir("/".into()),
            // Loading a filter needs CAP_SYS_ADMIN without noNewPrivileges.
            Call::SeccompLoad(4),
            Call::DropBounding(Cap::CAP_CHOWN),
        ];
        want.extend(user_and_caps());
        want.push(Call::CloexecFrom(5));
        assert_eq!(folded(sys.calls()), want);
        // Every capability but the two asked for leaves the bounding set.
        let dropped: Vec<Call> = (sys.calls().into_iter())
            .filter(|c| matches!(c, Call::DropBounding(_)))
            .collect();
        assert_eq!(dropped.len(), caps::all().len() - 2);
        assert!(!dropped.contains(&Call::DropBounding(Cap::CAP_CHOWN)));
        assert!(!dropped.contains(&Call::DropBounding(Cap::CAP_NET_BIND_SERVICE)));
    }

    #[test]
    fn with_no_new_privileges_the_filter_loads_last() {
        let sys = RecordingSyscall::default();
        prepare(&sys, &process(true, "/bin/sh")).expect("prepare");
        let mut want = vec![
            Call::Setrlimit(libc::RLIMIT_NOFILE, 1024, 2048),
            Call::Chdir("/".into()),
            Call::DropBounding(Cap::CAP_CHOWN),
        ];
        want.extend(user_and_caps());
        // runc sets it earlier (before the scheduler); here it is set after the
        // capabilities, still before the filter that relies on it.
        want.extend([Call::NoNewPrivs, Call::CloexecFrom(5), Call::SeccompLoad(4)]);
        assert_eq!(folded(sys.calls()), want);
    }

    /// Fails the first call `when` matches with `errno`; returns the failure and the last
    /// call made, which must be the failed one: nothing after it ran.
    fn fail_at(nnp: bool, when: fn(&Call) -> bool, errno: Errno) -> (Failure, Call) {
        let sys = RecordingSyscall::default();
        sys.fail_when(when, errno);
        let Err(f) = prepare(&sys, &process(nnp, "/bin/sh")) else {
            panic!("prepare succeeded");
        };
        let calls = sys.calls();
        let last = calls.last().expect("a call").clone();
        assert!(when(&last), "calls after the failed one: {calls:?}");
        assert_eq!(calls.iter().filter(|c| when(c)).count(), 1, "{calls:?}");
        (f, last)
    }

    #[test]
    fn a_failed_step_stops_the_rest_and_names_itself() {
        let (f, _) = fail_at(false, |c| matches!(c, Call::Setrlimit(..)), Errno::EPERM);
        assert_eq!((f.step, f.errno), (Step::Rlimits, Some(libc::EPERM)));
        assert!(f.detail.contains("needs CAP_SYS_RESOURCE"), "{f}");

        let (f, _) = fail_at(false, |c| matches!(c, Call::Chdir(_)), Errno::ENOENT);
        assert_eq!((f.step, f.errno), (Step::Cwd, Some(libc::ENOENT)));
        assert!(f.detail.starts_with("process.cwd /: chdir("), "{f}");

        let (f, _) = fail_at(false, |c| matches!(c, Call::SeccompLoad(_)), Errno::EINVAL);
        assert_eq!((f.step, f.errno), (Step::Seccomp, Some(libc::EINVAL)));

        let (f, _) = fail_at(false, |c| matches!(c, Call::DropBounding(_)), Errno::EPERM);
        assert_eq!((f.step, f.errno), (Step::BoundingSet, Some(libc::EPERM)));
        assert!(
            f.detail.starts_with("setting capability set bounding: "),
            "{f}"
        );

        let (f, _) = fail_at(false, |c| matches!(c, Call::Setgroups(_)), Errno::EPERM);
        assert_eq!((f.step, f.errno), (Step::User, Some(libc::EPERM)));
        assert_eq!(
            f.detail,
            "process.user.additionalGids [Gid(5)]: EPERM: Operation not permitted"
        );

        let (f, _) = fail_at(false, |c| matches!(c, Call::Setresuid(_)), Errno::EAGAIN);
        assert_eq!((f.step, f.errno), (Step::User, Some(libc::EAGAIN)));
        assert!(f.detail.starts_with("process.user.uid 1000: EAGAIN"), "{f}");

        let permitted = |c: &Call| matches!(c, Call::SetCapabilities(set, _) if set == "Permitted");
        let (f, _) = fail_at(false, permitted, Errno::EPERM);
        assert_eq!((f.step, f.errno), (Step::Capabilities, Some(libc::EPERM)));
        assert!(
            f.detail.starts_with("setting capability set permitted: "),
            "{f}"
        );

        let (f, _) = fail_at(true, |c| matches!(c, Call::NoNewPrivs), Errno::EINVAL);
        assert_eq!(
            (f.step, f.errno),
            (Step::NoNewPrivileges, Some(libc::EINVAL))
        );

        let (f, _) = fail_at(false, |c| matches!(c, Call::CloexecFrom(_)), Errno::EBADF);
        assert_eq!((f.step, f.errno), (Step::Cloexec, Some(libc::EBADF)));
    }

    #[test]
    fn stdio_is_set_in_order_and_a_refused_dup2_names_the_stream() {
        let null = || Some(OwnedFd::from(File::open("/dev/null").expect("/dev/null")));
        let stdio = super::super::Stdio {
            stdin: null(),
            stdout: None,
            stderr: null(),
        };
        let sys = RecordingSyscall::default();
        set_stdio(&sys, &stdio).expect("set_stdio");
        let dev_null = PathBuf::from("/dev/null");
        assert_eq!(
            sys.calls(),
            [Call::Dup2(dev_null.clone(), 0), Call::Dup2(dev_null, 2)]
        );

        let sys = RecordingSyscall::default();
        sys.fail_when(|c| matches!(c, Call::Dup2(_, 0)), Errno::EBADF);
        let f = set_stdio(&sys, &stdio).unwrap_err();
        assert_eq!((f.step, f.errno), (Step::Detach, Some(libc::EBADF)));
        assert_eq!(f.detail, "setting stdin: dup2: EBADF: Bad file number");
        assert_eq!(sys.calls().len(), 1, "stderr was set after stdin failed");
    }

    #[test]
    fn a_missing_program_fails_after_the_user_change_and_before_the_filter() {
        let sys = RecordingSyscall::default();
        let Err(f) = prepare(&sys, &process(true, "/nonexistent-program")) else {
            panic!("prepare succeeded");
        };
        assert_eq!((f.step, f.errno), (Step::ExecLookup, Some(libc::ENOENT)));
        // runc's words, which Docker maps to exit code 127.
        assert_eq!(
            f.to_string(),
            r#"exec: "/nonexistent-program": stat /nonexistent-program: no such file or directory"#
        );
        let calls = sys.calls();
        assert_eq!(calls.last(), Some(&Call::NoNewPrivs), "{calls:?}");
    }
}
