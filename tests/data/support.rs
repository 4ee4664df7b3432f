//! Helpers shared by tests/seccomp.rs, tests/security.rs and the seccomp cases of
//! tests/e2e_shim.rs and tests/e2e_runc_shim.rs (included with `#[path]`): the `sectest`
//! syscall helper (tests/data/sectest.c, built with `gcc -static` once per test run),
//! seccomp profiles, a seccomp agent for `listenerPath`, and running the runtime with extra
//! file descriptors.

#![allow(dead_code)]

use std::fs;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// The static `sectest` binary, built once per test process under cargo's target tmpdir.
pub fn sectest_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sectest.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(dir).unwrap();
        let out = dir.join("sectest");
        let tmp = dir.join(format!("sectest.{}", std::process::id()));
        let o = Command::new("gcc")
            .args(["-static", "-O1", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("running gcc ({e}): install gcc and libc6-dev (scripts/setup.sh)")
            });
        assert!(
            o.status.success(),
            "gcc -static {} failed:\n{}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        fs::rename(&tmp, &out).unwrap();
        out
    })
    .clone()
}

/// Copies `sectest` into the rootfs as /bin/sectest (mode `mode`, owned by root).
pub fn install_sectest(rootfs: &Path, name: &str, mode: u32) -> PathBuf {
    let dest = rootfs.join("bin").join(name);
    fs::copy(sectest_binary(), &dest).unwrap();
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).unwrap();
    dest
}

/// The Docker-equivalent default profile of tests/data.
pub fn docker_profile() -> Value {
    serde_json::from_str(include_str!("docker-default-seccomp.json")).unwrap()
}

/// Syscalls of x86_64 numbered 424 and up (Linux 5.1, 2019, onwards): what a profile
/// written in 2019 cannot name.
const AFTER_2019: &[&str] = &[
    "pidfd_send_signal",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "pidfd_open",
    "clone3",
    "close_range",
    "openat2",
    "pidfd_getfd",
    "faccessat2",
    "process_madvise",
    "epoll_pwait2",
    "mount_setattr",
    "quotactl_fd",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "memfd_secret",
    "process_mrelease",
    "futex_waitv",
    "set_mempolicy_home_node",
    "cachestat",
    "fchmodat2",
    "map_shadow_stack",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "mseal",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
    "file_getattr",
    "file_setattr",
];

/// Docker's default profile as it was in 2019: none of [`AFTER_2019`] (Docker's own
/// clone3 rule included).
pub fn profile_2019() -> Value {
    let mut p = docker_profile();
    let rules = p["syscalls"].as_array_mut().expect("syscalls");
    for r in rules.iter_mut() {
        let names = r["names"].as_array_mut().expect("names");
        names.retain(|n| !AFTER_2019.contains(&n.as_str().unwrap_or_default()));
    }
    rules.retain(|r| !r["names"].as_array().is_some_and(|n| n.is_empty()));
    p
}

/// Writes [`profile_2019`] to `path`, for `ctr run --seccomp-profile`.
pub fn write_profile_2019(path: &Path) {
    fs::write(
        path,
        serde_json::to_vec(&profile_2019()).expect("profile JSON"),
    )
    .expect("write the profile");
}

/// What [`PROFILE_2019_SCRIPT`] run by busybox under [`profile_2019`] must print: it
/// started, a glibc thread started (clone3 -> clone) and close_range answered ENOSYS (the
/// -ENOSYS stub; it shows the filter is there).
#[track_caller]
pub fn assert_profile_2019_output(o: &Output) {
    let out = String::from_utf8_lossy(&o.stdout);
    let shown = || format!("{o:?}");
    assert!(out.starts_with("busybox\n"), "{}", shown());
    assert!(
        out.contains("thread ok 42\n"),
        "a thread must start (clone3 -> clone)\n{}",
        shown()
    );
    assert!(
        out.contains(&format!("close_range errno {} ", libc::ENOSYS)),
        "close_range must answer ENOSYS under the profile\n{}",
        shown()
    );
}

/// The script whose output [`assert_profile_2019_output`] checks.
pub const PROFILE_2019_SCRIPT: &str =
    "echo busybox; echo thread $(sectest thread); echo close_range $(sectest close_range); true";

// ---------------------------------------------------------------------------------------
// A seccomp agent.

/// What the runtime sent to `listenerPath`: the container process state and the notify fd.
pub struct Delivery {
    pub state: Value,
    pub fd: OwnedFd,
}

/// Listens on `path`; every connection's delivery comes out of the returned channel.
pub fn listen(path: &Path) -> mpsc::Receiver<Result<Delivery, String>> {
    let listener = UnixListener::bind(path).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let r = conn.map_err(|e| e.to_string()).and_then(receive);
            if tx.send(r).is_err() {
                return;
            }
        }
    });
    rx
}

fn receive(mut conn: UnixStream) -> Result<Delivery, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<UnixAddr>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| format!("recvmsg: {e}"))?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(|e| e.to_string())? {
            if let ControlMessageOwned::ScmRights(v) = c {
                fds.extend(v);
            }
        }
        (msg.bytes, fds)
    };
    let mut bytes = buf[..n].to_vec();
    conn.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    // SAFETY: the descriptors were just received with SCM_RIGHTS and belong to nobody else.
    let mut owned: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    if owned.len() != 1 {
        return Err(format!("expected one descriptor, got {}", owned.len()));
    }
    let state = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "state is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    Ok(Delivery {
        state,
        fd: owned.pop().unwrap(),
    })
}

/// struct seccomp_notif of <linux/seccomp.h>.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Notif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

/// struct seccomp_notif_resp of <linux/seccomp.h>.
#[repr(C)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// The next notification, or None when no process uses the filter any more or after
/// `timeout`.
pub fn next_notification(fd: &OwnedFd, timeout: Duration) -> Option<Notif> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the length of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    if n <= 0 || pfd.revents & libc::POLLIN == 0 {
        return None;
    }
    let mut req = Notif::default();
    // SAFETY: `req` is a zeroed struct seccomp_notif of the size the ioctl number encodes.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) };
    (rc == 0).then_some(req)
}

/// Answers a notification: `errno` 0 lets the syscall run, otherwise it fails with it.
pub fn respond(fd: &OwnedFd, id: u64, errno: i32) -> bool {
    let resp = NotifResp {
        id,
        val: 0,
        error: -errno,
        flags: if errno == 0 {
            SECCOMP_USER_NOTIF_FLAG_CONTINUE
        } else {
            0
        },
    };
    // SAFETY: `resp` is a struct seccomp_notif_resp of the size the ioctl number encodes.
    unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &resp) == 0 }
}

/// Answers every notification on `fd` with `errno` until no process uses the filter.
pub fn answer_all(fd: OwnedFd, errno: i32) -> std::thread::JoinHandle<Vec<Notif>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the length of the call.
            unsafe { libc::poll(&mut pfd, 1, 100) };
            if pfd.revents & libc::POLLHUP != 0 {
                break;
            }
            if let Some(n) = next_notification(&fd, Duration::from_millis(0)) {
                respond(&fd, n.id, errno);
                seen.push(n);
            }
        }
        seen
    })
}

// ---------------------------------------------------------------------------------------
// The runtime with extra descriptors.

/// Runs `runtime --root ROOT ARGS...` with `extra` open (not close-on-exec) as its fds 3,
/// 4, ..., stdin from /dev/null, output captured.
pub fn run_with_fds(runtime: &Path, root: &Path, args: &[&str], extra: &[&fs::File]) -> Output {
    let raw: Vec<RawFd> = extra.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = Command::new(runtime);
    cmd.arg("--root").arg(root).args(args).stdin(Stdio::null());
    // SAFETY: between fork and exec only dup2/fcntl, which are async-signal-safe; the
    // sources are descriptors the test owns, kept open by `extra` until the call returns.
    unsafe {
        cmd.pre_exec(move || {
            // Park the sources above the targets first, so that dup2 cannot clobber one.
            let parked: Vec<RawFd> = raw
                .iter()
                .map(|fd| libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100))
                .collect();
            for (i, fd) in parked.iter().enumerate() {
                if *fd < 0 || libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.output().expect("run the runtime")
}
