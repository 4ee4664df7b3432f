//! Starting a program from a process that may have other threads (the shim's server): a
//! fork whose child makes only async-signal-safe calls, on data prepared before the fork,
//! and then execs. ([`super::fork`] refuses such a process: the runtime's children run
//! Rust code, which may allocate and so take a lock another thread held at the fork.)

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::{clone3, err, CloneArgs, Result, SyscallError, CLONE_ARGS_SIZE_VER0};

/// The number the first of a child's [`ChildFds::fds`] gets.
pub const FIRST_FD: RawFd = 3;

/// A program as execve(2) takes it: path, argument and environment vectors, built before
/// the fork because the child must not allocate.
#[derive(Debug)]
pub struct Program {
    path: CString,
    /// Owns the strings `argv` points to.
    _args: Vec<CString>,
    /// Owns the strings `envp` points to.
    _env: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Program {
    /// `path` with the arguments `args` (`args[0]` included) and `env` (`NAME=value`) as
    /// its whole environment.
    pub fn new(path: CString, args: Vec<CString>, env: Vec<CString>) -> Program {
        // The strings' bytes live on the heap and do not move when the vectors do.
        let pointers = |v: &[CString]| -> Vec<*const libc::c_char> {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Program {
            argv: pointers(&args),
            envp: pointers(&env),
            path,
            _args: args,
            _env: env,
        }
    }
}

/// The descriptors a child gets: `null` on 0, 1 and 2, `fds` on [`FIRST_FD`] and up;
/// every other one is marked close-on-exec. If a step fails (a dup2, the exec), the child
/// writes its errno (4 bytes, native endian) to `report` and exits with 127: `report`
/// should be the write end of a close-on-exec pipe, whose end-of-file then says that the
/// exec succeeded. Each must be numbered `FIRST_FD + N` or above (e.g. a copy made with
/// [`super::fds::dup_from`]), so that moving one into place never overwrites another.
#[derive(Debug, Clone, Copy)]
pub struct ChildFds<'a, const N: usize> {
    /// For stdin, stdout and stderr (/dev/null).
    pub null: BorrowedFd<'a>,
    /// For [`FIRST_FD`], `FIRST_FD + 1`, ...
    pub fds: [BorrowedFd<'a>; N],
    /// Where a failed step's errno goes.
    pub report: BorrowedFd<'a>,
}

/// [`ChildFds`] as the child uses them: plain numbers, checked.
struct RawFds<const N: usize> {
    null: RawFd,
    srcs: [RawFd; N],
    report: RawFd,
}

impl<const N: usize> ChildFds<'_, N> {
    /// The numbers, if each is clear of the ones the child moves descriptors onto.
    fn raw(&self, call: &'static str) -> Result<RawFds<N>> {
        let raw = RawFds {
            null: self.null.as_raw_fd(),
            srcs: self.fds.map(|fd| fd.as_raw_fd()),
            report: self.report.as_raw_fd(),
        };
        let min = FIRST_FD + N as RawFd;
        let all = [raw.null, raw.report].into_iter().chain(raw.srcs);
        if let Some(low) = all.filter(|fd| *fd < min).min() {
            return Err(err(call, format!("descriptor {low} below {min}"))(
                Errno::EINVAL,
            ));
        }
        Ok(raw)
    }
}

/// clone3(2) with CLONE_PIDFD, a fork that also gives a pidfd of the child, atomically;
/// the child execs `program` with `fds` (see [`ChildFds`] for what it reports). Returns
/// the child's pid and pidfd; the exit signal is SIGCHLD, the exit status the caller's to
/// reap. An error creates no child: ENOSYS or EPERM where clone3 is filtered (seccomp
/// profiles answer ENOSYS) or missing, then [`fork`] and [`super::pidfd::open`] do.
pub fn clone3_pidfd<const N: usize>(
    program: &Program,
    fds: &ChildFds<'_, N>,
) -> Result<(Pid, OwnedFd)> {
    let raw = fds.raw("clone3")?;
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: libc::CLONE_PIDFD as u64,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM and stack clone3 is a fork; the kernel writes the pidfd to
    // the live local `pidfd`. The child only runs `exec_child`: async-signal-safe calls on
    // `program` and `raw`, prepared above, then execve or _exit.
    match unsafe { clone3(&args, CLONE_ARGS_SIZE_VER0) } {
        // SAFETY: in the child, as said above.
        Ok(0) => unsafe { exec_child(program, &raw) },
        // SAFETY: the kernel stored a new pidfd that nothing else owns.
        Ok(pid) => Ok((Pid::from_raw(pid), unsafe { OwnedFd::from_raw_fd(pidfd) })),
        Err(errno) => Err(SyscallError {
            call: "clone3",
            target: "CLONE_PIDFD".into(),
            errno,
        }),
    }
}

/// fork(2), from any process; the child execs `program` with `fds` (see [`ChildFds`] for
/// what it reports). Returns the child's pid, the exit status the caller's to reap.
pub fn fork<const N: usize>(program: &Program, fds: &ChildFds<'_, N>) -> Result<Pid> {
    let raw = fds.raw("fork")?;
    // SAFETY: the child only runs `exec_child`: async-signal-safe calls on `program` and
    // `raw`, prepared above, then execve or _exit; so no lock another thread held at the
    // fork is ever needed.
    match unsafe { libc::fork() } {
        // SAFETY: in the child, as said above.
        0 => unsafe { exec_child(program, &raw) },
        pid if pid > 0 => Ok(Pid::from_raw(pid)),
        _ => Err(SyscallError {
            call: "fork",
            target: "child".into(),
            errno: Errno::last(),
        }),
    }
}

/// In the forked child: stdio from `null`, the sources on [`FIRST_FD`] and up, everything
/// above close-on-exec, default SIGPIPE and no signal blocked, exec. Only async-signal-safe
/// calls.
///
/// # Safety
///
/// Only in a child just forked, which has no other thread: it moves descriptors over
/// whatever the numbers held, and never returns.
unsafe fn exec_child<const N: usize>(program: &Program, fds: &RawFds<N>) -> ! {
    let fail = |report: RawFd| -> ! {
        let e = *libc::__errno_location();
        let b = e.to_ne_bytes();
        libc::write(report, b.as_ptr().cast(), b.len());
        libc::_exit(127)
    };
    // Rust ignores SIGPIPE and exec keeps ignored signals ignored: give the default back.
    let mut dfl: libc::sigaction = std::mem::zeroed();
    dfl.sa_sigaction = libc::SIG_DFL;
    libc::sigaction(libc::SIGPIPE, &dfl, std::ptr::null_mut());
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    for target in 0..3 {
        if libc::dup2(fds.null, target) < 0 {
            fail(fds.report);
        }
    }
    for (i, src) in fds.srcs.iter().enumerate() {
        if libc::dup2(*src, FIRST_FD + i as RawFd) < 0 {
            fail(fds.report);
        }
    }
    // Whatever the process inherited without close-on-exec (containerd's socket) stays out.
    libc::syscall(
        libc::SYS_close_range,
        (FIRST_FD + N as RawFd) as libc::c_uint,
        libc::c_uint::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    );
    libc::execve(
        program.path.as_ptr(),
        program.argv.as_ptr(),
        program.envp.as_ptr(),
    );
    fail(fds.report)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsFd;

    use nix::fcntl::OFlag;

    use super::*;
    use crate::syscall::fds::dup_from;

    fn c(s: &str) -> CString {
        CString::new(s).expect("no NUL")
    }

    /// What a child of [`clone3_pidfd`] or [`fork`] sees, from a multi-threaded process:
    /// its arguments, only its environment, the pipe on fd 3, /dev/null on 0; and a
    /// program that cannot run comes back as its errno.
    #[test]
    fn a_child_gets_its_program_and_descriptors() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        let devnull = std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .expect("/dev/null");
        for clone3 in [true, false] {
            let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
            let (rep_r, rep_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
            let high = |fd: BorrowedFd<'_>| dup_from(fd, FIRST_FD + 1).expect("dup");
            let (null, out, rep) = (
                high(devnull.as_fd()),
                high(out_w.as_fd()),
                high(rep_w.as_fd()),
            );
            drop((out_w, rep_w));
            let fds = ChildFds {
                null: null.as_fd(),
                fds: [out.as_fd()],
                report: rep.as_fd(),
            };
            let script = "echo \"$0 $1 $X\" >&3; read line; echo \"[$line]\" >&3";
            let program = Program::new(
                c("/bin/sh"),
                vec![c("/bin/sh"), c("-c"), c(script), c("zero"), c("one")],
                vec![c("X=ex")],
            );
            let pid = if clone3 {
                let (pid, pidfd) = clone3_pidfd(&program, &fds).expect("clone3");
                let mut p = [nix::poll::PollFd::new(
                    pidfd.as_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                nix::poll::poll(&mut p, nix::poll::PollTimeout::NONE).expect("poll the pidfd");
                pid
            } else {
                fork(&program, &fds).expect("fork")
            };
            drop((null, out, rep));
            let mut got = String::new();
            std::fs::File::from(out_r)
                .read_to_string(&mut got)
                .expect("read");
            assert_eq!(got, "zero one ex\n[]\n", "clone3: {clone3}");
            let mut report = vec![];
            std::fs::File::from(rep_r)
                .read_to_end(&mut report)
                .expect("read");
            assert!(report.is_empty(), "the exec succeeded: {report:?}");
            let status = nix::sys::wait::waitpid(pid, None).expect("waitpid");
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(pid, 0));
        }

        let (rep_r, rep_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let high = |fd: BorrowedFd<'_>| dup_from(fd, FIRST_FD).expect("dup");
        let (null, rep) = (high(devnull.as_fd()), high(rep_w.as_fd()));
        drop(rep_w);
        let fds = ChildFds::<0> {
            null: null.as_fd(),
            fds: [],
            report: rep.as_fd(),
        };
        let program = Program::new(c("/nonexistent"), vec![c("/nonexistent")], vec![]);
        let pid = fork(&program, &fds).expect("fork");
        drop((null, rep));
        let mut report = vec![];
        std::fs::File::from(rep_r)
            .read_to_end(&mut report)
            .expect("read");
        assert_eq!(report, libc::ENOENT.to_ne_bytes());
        let status = nix::sys::wait::waitpid(pid, None).expect("waitpid");
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(pid, 127));
        tx.send(()).expect("thread");
        other.join().expect("join").expect("recv");
    }

    /// A descriptor the child would overwrite while moving the others is refused before
    /// any child exists.
    #[test]
    fn a_descriptor_in_the_way_is_refused() {
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let high = dup_from(null.as_fd(), 10).expect("dup");
        let stdin = std::io::stdin();
        let fds = ChildFds {
            null: high.as_fd(),
            fds: [high.as_fd(), high.as_fd()],
            report: high.as_fd(),
        };
        assert!(fds.raw("fork").is_ok());
        for fds in [
            ChildFds {
                fds: [high.as_fd(), stdin.as_fd()],
                ..fds
            },
            ChildFds {
                report: stdin.as_fd(),
                ..fds
            },
        ] {
            let e = fds.raw("fork").err().expect("fd 0 is in the way");
            assert_eq!((e.call, e.errno), ("fork", Errno::EINVAL), "{e}");
        }
        let program = Program::new(c("/bin/true"), vec![c("true")], vec![]);
        let fds = ChildFds {
            null: stdin.as_fd(),
            ..fds
        };
        assert!(fork(&program, &fds).is_err(), "no child");
    }
}
