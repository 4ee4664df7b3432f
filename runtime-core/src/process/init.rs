//! The container's init process: from fresh child to the user's program.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process, Spec};

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
) -> Result<std::convert::Infallible, String> {
    let sys = LinuxSyscall;
    let spec = setup.spec;
    let process = spec.process().as_ref().ok_or("process: missing")?;

    // Nothing of this process may be read through /proc/PID (its memory, its fds, the
    // runtime binary via /proc/PID/exe) by the container until it runs the user's program;
    // execve restores dumpability.
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("prctl(PR_SET_DUMPABLE): {e}"))?;
    syscall::signals::reset().map_err(|e| e.to_string())?;
    crate::tty::new_session().map_err(|e| e.to_string())?;
    if let Some(stdio) = setup.stdio {
        set_stdio(stdio)?;
    }

    // Opened now, while the host path resolves; reopened for writing at the very end.
    let fifo = open(
        &setup.exec_fifo,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open {}: {e}", setup.exec_fifo.display()))?;
    let host_pid = host_pid()?;
    // Compiled, and its notify listener connected, while host paths still resolve.
    let mut listener_state = setup.state.clone();
    listener_state.pid = host_pid;
    let seccomp = crate::seccomp::Prepared::new(
        spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
        listener_state.oci_json(Status::Creating),
    )?;

    // The cgroup namespace waits until we are in the container's cgroup: its root is the
    // cgroup of the process that creates it.
    let cgroup_ns = CloneFlags::CLONE_NEWCGROUP;
    let early = !(CloneFlags::CLONE_NEWUSER | crate::namespaces::intermediate_flags() | cgroup_ns);
    ns.enter(&sys, early).map_err(|e| e.to_string())?;
    if ns.has(CloneFlags::CLONE_NEWUTS) {
        if let Some(h) = spec.hostname() {
            sys.sethostname(h).map_err(|e| e.to_string())?;
        }
        if let Some(d) = spec.domainname() {
            sys.setdomainname(d).map_err(|e| e.to_string())?;
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
    .map_err(|e| e.to_string())?;

    // Nothing above depends on our cgroup; the hooks and the user's program below do.
    if super::joins_cgroup_itself(setup.cgroup, ns) {
        setup.cgroup.join_self(born).map_err(|e| e.to_string())?;
    } else {
        // main moves us while we build namespaces and mounts above: the move costs the
        // kernel an RCU grace period (milliseconds), which this overlaps.
        to_main
            .expect(&Message::CgroupJoined, INIT_TIMEOUT)
            .map_err(|e| e.to_string())?;
    }
    ns.enter(&sys, cgroup_ns).map_err(|e| e.to_string())?;

    let hooks = spec.hooks().as_ref();
    let has_runtime_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if has_runtime_hooks {
        to_main
            .send(&Message::RunRuntimeHooks)
            .map_err(|e| e.to_string())?;
        to_main
            .expect(&Message::RuntimeHooksDone, INIT_TIMEOUT)
            .map_err(|e| e.to_string())?;
    }
    let state_json = |status: Status| {
        let mut st = setup.state.clone();
        st.pid = host_pid;
        serde_json::to_vec(&st.oci_json(status)).unwrap_or_default()
    };
    if let Some(list) = hooks.and_then(|h| h.create_container().as_ref()) {
        hooks::run(list, &state_json(Status::Creating))
            .map_err(|e| format!("createContainer hook: {e}"))?;
    }

    if in_mount_ns && setup.no_pivot {
        rootfs::move_root(&sys, &setup.rootfs).map_err(|e| e.to_string())?;
    } else if in_mount_ns {
        rootfs::pivot(&sys, &setup.rootfs).map_err(|e| e.to_string())?;
    } else {
        // Without a mount namespace of its own (and with --no-pivot too: moving the rootfs
        // onto the host's / would take the host's root away) the container shares the
        // host's mounts; chroot into the rootfs, as runc does.
        nix::unistd::chroot(&setup.rootfs)
            .map_err(|e| format!("chroot {}: {e}", setup.rootfs.display()))?;
        sys.chdir(Path::new("/")).map_err(|e| e.to_string())?;
    }
    check_proc()?;
    if in_mount_ns {
        reopen_dev_null()?;
    }
    create_cwd(process.cwd())?;
    write_sysctls(spec)?;
    if let Some(console) = setup.console {
        // Inside the container, so that the pty comes from its own devpts; /dev/console
        // is bound before the root may turn read-only (as runc, also without a mount
        // namespace: the bind is then under the rootfs bind, detached with it at delete).
        let slave = open_terminal(console, Some(&sys), process)?;
        crate::tty::make_controlling(&slave).map_err(|e| e.to_string())?;
    }
    if in_mount_ns {
        // Without a mount namespace runc skips this too: maskedPaths and readonlyPaths
        // are refused then (spec validation), and root.readonly is not applied.
        rootfs::finish(&sys, spec).map_err(|e| e.to_string())?;
    }

    let personality = super::attrs::personality_of_spec(
        spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
    );
    let program = Program::prepare(process, caps, setup.preserve_fds, seccomp, personality)?;
    check_fifo_writable(&fifo)?;
    to_main.send(&Message::Ready).map_err(|e| e.to_string())?;

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
        .map_err(|e| format!("writing exec fifo: {e}"))?;
    hooks_done?;
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
    pub(super) fn prepare(
        process: &Process,
        caps: &CapabilitySets,
        preserve_fds: u32,
        mut seccomp: Option<crate::seccomp::Prepared>,
        personality: Option<libc::c_ulong>,
    ) -> Result<Self, String> {
        let sys = LinuxSyscall;
        // oomScoreAdj was set by the intermediate process, before the namespaces.
        apply_rlimits(process)?;
        // With every capability still held (a real-time policy needs CAP_SYS_NICE).
        super::attrs::apply_scheduling(&sys, process).map_err(|e| e.to_string())?;
        let env = environment(process);
        let cwd = process.cwd();
        sys.chdir(cwd)
            .map_err(|e| format!("process.cwd {}: {e}", cwd.display()))?;
        // CVE-2024-21626: through a descriptor this process still holds (/proc/self/fd/N)
        // the cwd can lie outside the container's root, where getcwd(2) has no path for it.
        std::env::current_dir().map_err(|e| {
            format!(
                "process.cwd {}: not inside the container ({e})",
                cwd.display()
            )
        })?;
        crate::seccomp::lsm::apply(process)?;
        // Before any filter: a profile may not allow personality(2) (Docker's allows only
        // some personas), and the persona is kept across execve.
        if let Some(p) = personality {
            super::attrs::apply_personality(&sys, p).map_err(|e| e.to_string())?;
        }
        let nnp = process.no_new_privileges().unwrap_or(false);
        if !nnp {
            // Without noNewPrivileges, loading a filter needs CAP_SYS_ADMIN: before the drop.
            seccomp.take().map(|s| s.install()).transpose()?;
        }
        caps.drop_bounding().map_err(|e| e.to_string())?;
        change_user(process)?;
        caps.apply().map_err(|e| e.to_string())?;
        if nnp {
            nix::sys::prctl::set_no_new_privs()
                .map_err(|e| format!("process.noNewPrivileges: {e}"))?;
        }
        // As runc finds it: as the process's user, so that a file it may not execute fails
        // create (or exec) here, in words clients know, rather than execve after start.
        let path = env_value(process, "PATH").unwrap_or(DEFAULT_PATH);
        let exe = super::lookup::find_program(process.args().as_deref(), path, cwd)
            .map_err(|e| e.to_string())?;
        // Only stdio and the preserved descriptors reach the program.
        syscall::cloexec_from(3 + preserve_fds).map_err(|e| e.to_string())?;
        let args = cstrings(process.args().as_deref().unwrap_or_default())?;
        // As late as possible, so that the fewest of the runtime's own syscalls run under it.
        seccomp.map(|s| s.install()).transpose()?;
        Ok(Self { exe, args, env })
    }

    /// execve; returns only the reason it failed.
    pub(super) fn exec(&self) -> String {
        syscall::execve(&self.exe, &self.args, &self.env).to_string()
    }
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
) -> Result<OwnedFd, String> {
    let pty = crate::tty::open_pty().map_err(|e| e.to_string())?;
    crate::tty::set_first_size(&pty, process.console_size().as_ref()).map_err(|e| e.to_string())?;
    if let Some(sys) = mount {
        let console_path = Path::new("/dev/console");
        if !console_path.exists() {
            File::create(console_path).map_err(|e| format!("creating /dev/console: {e}"))?;
        }
        sys.mount(
            Some(&pty.slave_path),
            console_path,
            None,
            nix::mount::MsFlags::MS_BIND,
            None,
        )
        .map_err(|e| format!("binding {} to /dev/console: {e}", pty.slave_path.display()))?;
    }
    crate::tty::send_master(console.as_fd(), pty.master.as_fd()).map_err(|e| e.to_string())?;
    Ok(pty.slave)
}

/// Makes the given descriptors this process's stdin, stdout and stderr (dup2 leaves the
/// copies without close-on-exec, so the program inherits them).
pub(super) fn set_stdio(stdio: &super::Stdio) -> Result<(), String> {
    let err = |which: &str, e: nix::errno::Errno| format!("setting {which}: dup2: {e}");
    if let Some(fd) = &stdio.stdin {
        nix::unistd::dup2_stdin(fd).map_err(|e| err("stdin", e))?;
    }
    if let Some(fd) = &stdio.stdout {
        nix::unistd::dup2_stdout(fd).map_err(|e| err("stdout", e))?;
    }
    if let Some(fd) = &stdio.stderr {
        nix::unistd::dup2_stderr(fd).map_err(|e| err("stderr", e))?;
    }
    Ok(())
}

/// Replaces each of stdin, stdout and stderr that is the host's /dev/null with the
/// container's, as runc does after pivot_root: the host's /dev is not the container's to
/// see, and CRIU cannot dump a descriptor on a mount outside the container.
fn reopen_dev_null() -> Result<(), String> {
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
    let err =
        |e: &dyn std::fmt::Display| format!("reopening stdio on the container's /dev/null: {e}");
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| err(&e))?;
    if !on_null(null.as_fd()) {
        return Err(err(&"it is not the null device"));
    }
    if stdin {
        nix::unistd::dup2_stdin(&null).map_err(|e| err(&e))?;
    }
    if stdout {
        nix::unistd::dup2_stdout(&null).map_err(|e| err(&e))?;
    }
    if stderr {
        nix::unistd::dup2_stderr(&null).map_err(|e| err(&e))?;
    }
    Ok(())
}

/// This process's pid in the runtime's pid namespace: the first NSpid entry in the host's
/// /proc (still mounted, since this runs before pivot_root).
fn host_pid() -> Result<i32, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no NSpid in /proc/self/status".to_string())
}

/// Whether init, now with the process's user and capabilities, may open the fifo for
/// writing: checked before Ready, so that create reports it, where after Ready the error
/// would only show as an init that exited before start. The same open(2) as
/// [`wait_for_start`]'s, so the container's seccomp filter (loaded by now) allows it too.
fn check_fifo_writable(fifo: &OwnedFd) -> Result<(), String> {
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
        Err(e) => Err(format!(
            "the process's user cannot open the exec fifo {path}: {e}"
        )),
    }
}

/// Init reopens the exec fifo through /proc/self/fd (and marks descriptors close-on-exec
/// through it when close_range(2) is refused): a container whose `mounts` give it no proc
/// at /proc cannot start. Said here plainly, where the open would only report a missing
/// /proc/self/fd/N; runc fails the same config with "open /proc/self/fd: no such file".
fn check_proc() -> Result<(), String> {
    if Path::new("/proc/self/fd").is_dir() {
        return Ok(());
    }
    Err(
        "the container has no /proc/self/fd: mount proc at /proc (in `mounts`); the runtime \
         needs it to start the process"
            .into(),
    )
}

/// Blocks until `start` opens the fifo for reading; returns the fifo open for writing.
fn wait_for_start(fifo: &OwnedFd) -> Result<File, String> {
    // Reopen through /proc: the O_PATH descriptor refers to the fifo on the host even though
    // its path is no longer reachable from the container's root. Opening for writing blocks
    // until a reader (`start`) opens it. std opens with O_CLOEXEC.
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    File::options()
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening exec fifo {path}: {e}"))
}

/// Creates a missing `process.cwd` as runc does (its prepareRootfs, right after entering the
/// root): with its parents, mode 0755 less the umask inherited from the caller, by init still
/// as the container's root, so owned by root whatever `process.user` is (runc does not chown
/// it either); before the root turns read-only. The process is inside its root by now, so
/// no path (`..`, symlinks) can lead out of it.
fn create_cwd(cwd: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::symlink_metadata(cwd) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cwd)
            .map_err(|e| format!("process.cwd {}: creating it: {e}", cwd.display())),
        // Present (a directory, or something chdir reports on later), or not reachable
        // (chdir, after the switch to the process's user, says why).
        _ => Ok(()),
    }
}

fn write_sysctls(spec: &Spec) -> Result<(), String> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctl {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| {
            format!(
                "linux.sysctl {key}={value}: writing {}: {e}",
                path.display()
            )
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

fn apply_rlimits(process: &Process) -> Result<(), String> {
    for r in process.rlimits().iter().flatten() {
        syscall::setrlimit(rlimit_number(r.typ()), r.soft(), r.hard()).map_err(|e| {
            let hint = if e.errno == nix::errno::Errno::EPERM {
                " (raising a hard limit needs CAP_SYS_RESOURCE)"
            } else {
                ""
            };
            format!(
                "process.rlimits {}: soft {} hard {}: {e}{hint}",
                serde_json::to_string(&r.typ()).unwrap_or_default(),
                r.soft(),
                r.hard()
            )
        })?;
    }
    Ok(())
}

/// Sets the calling process's oom_score_adj (process.oomScoreAdj).
pub(super) fn write_oom_score_adj(adj: i32) -> Result<(), String> {
    std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (lowering it below the current value needs CAP_SYS_RESOURCE)"
        } else {
            ""
        };
        format!("process.oomScoreAdj {adj}: {e}{hint}")
    })
}

/// Switches to the process's user and groups, keeping capabilities across the switch so
/// that the spec's sets can be applied afterwards.
fn change_user(process: &Process) -> Result<(), String> {
    let user = process.user();
    let uid = Uid::from_raw(user.uid());
    let gid = Gid::from_raw(user.gid());
    if let Some(mask) = user.umask() {
        umask(Mode::from_bits_truncate(mask));
    }
    nix::sys::prctl::set_keepcaps(true).map_err(|e| format!("prctl(PR_SET_KEEPCAPS): {e}"))?;
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
        setgroups(&groups).map_err(|e| format!("process.user.additionalGids {groups:?}: {e}"))?;
    }
    setresgid(gid, gid, gid).map_err(|e| format!("process.user.gid {gid}: {e}"))?;
    setresuid(uid, uid, uid).map_err(|e| format!("process.user.uid {uid}: {e}"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| format!("prctl(PR_SET_KEEPCAPS): {e}"))
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

fn cstrings(v: &[String]) -> Result<Vec<CString>, String> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| format!("process.args: {s:?} contains NUL"))
        })
        .collect()
}
