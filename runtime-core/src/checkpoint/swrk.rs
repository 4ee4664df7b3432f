//! One `criu swrk` session: CRIU started as our child with one end of a SOCK_SEQPACKET
//! socketpair, a request sent, its notify callbacks answered until the final response,
//! then CRIU waited for. This is how runc drives CRIU (libcontainer/criu_linux.go,
//! criuSwrk), rather than through its command line and output.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{
    recv, send, shutdown, socketpair, AddressFamily, MsgFlags, Shutdown, SockFlag, SockType,
};

use super::proto::{CriuReq, CriuResp, ReqType};
use super::CheckpointError;
use crate::deadline::Deadline;

/// Largest message accepted from CRIU; its responses are a few hundred bytes.
const MAX_MESSAGE: usize = 64 * 1024;

/// How long CRIU may take to exit once its session is over (its socket shut down or
/// closed by CRIU itself): it has nothing left to do then, so a CRIU still there after
/// this is stuck, and is killed rather than waited for forever.
const EXIT_BOUND: Duration = Duration::from_secs(10);

/// The notify callback CRIU sends with a restored terminal's master attached.
pub const ORPHAN_PTS_MASTER: &str = "orphan-pts-master";

/// Clears close-on-exec on `fd`, for a descriptor CRIU gets at the same number.
pub fn keep_on_exec(fd: &OwnedFd) -> nix::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map(drop)
}

/// A notify callback from CRIU.
pub struct Notify<'a> {
    /// Which callback ("setup-namespaces", "post-restore", "network-lock", ...).
    pub script: &'a str,
    /// The tree's root pid, for the callbacks that carry it.
    pub pid: Option<i32>,
    /// The descriptor sent with [`ORPHAN_PTS_MASTER`].
    pub fd: Option<OwnedFd>,
}

/// A running `criu swrk`. Dropped without [`Swrk::finish`] (an early return, a panic), it
/// kills and reaps CRIU, so that no CRIU outlives its caller or stays a zombie.
pub struct Swrk {
    child: Child,
    socket: OwnedFd,
    criu: PathBuf,
}

impl Swrk {
    /// Starts `criu swrk FD`. Descriptors the request names (inherit_fd) must be open
    /// without close-on-exec: CRIU gets them at the same numbers.
    pub fn start(criu: &Path) -> Result<Self, CheckpointError> {
        let sock_err = |errno: nix::errno::Errno| CheckpointError::Socket {
            step: "socketpair for criu swrk",
            errno,
        };
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(sock_err)?;
        // CRIU's end must survive exec; it is closed here right after the spawn, so it
        // reaches no other child (the CLI is single-threaded).
        keep_on_exec(&theirs).map_err(sock_err)?;
        let child = Command::new(criu)
            .arg("swrk")
            .arg(theirs.as_raw_fd().to_string())
            .spawn()
            .map_err(|source| CheckpointError::CriuStart {
                criu: criu.to_path_buf(),
                source,
            })?;
        drop(theirs);
        Ok(Self {
            child,
            socket: ours,
            criu: criu.to_path_buf(),
        })
    }

    /// CRIU's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `req` and answers CRIU's notify callbacks through `on_notify` until the final
    /// response, which is returned if it says success. There is no timeout: a dump takes as
    /// long as the memory to write, and a CRIU that dies closes the socket, which ends the
    /// wait with an error.
    pub fn request(
        &mut self,
        req: &CriuReq,
        on_notify: &mut dyn FnMut(Notify<'_>) -> Result<(), CheckpointError>,
    ) -> Result<CriuResp, CheckpointError> {
        self.send(req)?;
        loop {
            let (resp, fd) = self.receive()?;
            if !resp.success {
                return Err(CheckpointError::CriuFailed {
                    what: resp.kind.unwrap_or(req.kind),
                    errno: resp.cr_errno,
                    message: resp.cr_errmsg,
                    log: None,
                });
            }
            if resp.kind != Some(ReqType::Notify) {
                return Ok(resp);
            }
            let script = resp.notify_script.unwrap_or_default();
            log::debug!("criu notify: {script}");
            on_notify(Notify {
                script: &script,
                pid: resp.notify_pid,
                fd,
            })?;
            self.send(&CriuReq::notify_ok())?;
        }
    }

    fn send(&mut self, req: &CriuReq) -> Result<(), CheckpointError> {
        match send(self.socket.as_raw_fd(), &req.encode(), MsgFlags::empty()) {
            Ok(_) => Ok(()),
            // CRIU exited before it read the request (it could not start, or it is not
            // CRIU): how it ended says more than the broken pipe.
            Err(Errno::EPIPE | Errno::ECONNRESET) => Err(self.exited()),
            Err(errno) => Err(CheckpointError::Socket {
                step: "sending a request to criu",
                errno,
            }),
        }
    }

    /// CRIU ended its session early: reaped (bounded), and how it ended as the error.
    fn exited(&mut self) -> CheckpointError {
        CheckpointError::CriuExited {
            criu: self.criu.clone(),
            status: reap_within(&mut self.child, EXIT_BOUND)
                .map_or_else(|why| why, |s| s.to_string()),
            log: None,
        }
    }

    /// The next message, and the descriptor it carries if it is an orphan-pts-master.
    /// It is first peeked at, to learn what it is; then taken either plainly or, with its
    /// descriptor, through [`crate::tty::receive_master`] (descriptors sent with any other
    /// message are closed by the kernel when it is taken without room for them).
    fn receive(&mut self) -> Result<(CriuResp, Option<OwnedFd>), CheckpointError> {
        let sock_err = |step| move |errno| CheckpointError::Socket { step, errno };
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            match recv(
                self.socket.as_raw_fd(),
                &mut buf,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
            ) {
                Err(Errno::EINTR) => continue,
                // CRIU is gone: it closed the socket, or exited with our request unread.
                Ok(0) | Err(Errno::ECONNRESET) => return Err(self.exited()),
                r => break r.map_err(sock_err("reading from criu"))?,
            }
        };
        if n > buf.len() {
            return Err(CheckpointError::Protocol(format!(
                "criu sent a {n}-byte message, more than {MAX_MESSAGE}"
            )));
        }
        let resp =
            CriuResp::decode(&buf[..n]).map_err(|e| CheckpointError::Protocol(e.to_string()))?;
        let fd = if resp.notify_script.as_deref() == Some(ORPHAN_PTS_MASTER) {
            Some(crate::tty::receive_master(self.socket.as_fd())?)
        } else {
            recv(self.socket.as_raw_fd(), &mut buf, MsgFlags::empty())
                .map_err(sock_err("reading from criu"))?;
            None
        };
        Ok((resp, fd))
    }

    /// Shuts our end down and waits (at most [`EXIT_BOUND`]) for CRIU to exit. After a
    /// pre-dump CRIU waits for the next request and ends on the shut socket, so only there
    /// a failed exit is no error.
    pub fn finish(mut self, kind: ReqType) -> Result<(), CheckpointError> {
        // Shut down rather than closed: the descriptor stays ours until `self` is dropped.
        // An error here (CRIU gone already) changes nothing for the wait.
        let _ = shutdown(self.socket.as_raw_fd(), Shutdown::Both);
        let exited = |status| CheckpointError::CriuExited {
            criu: self.criu.clone(),
            status,
            log: None,
        };
        let status = reap_within(&mut self.child, EXIT_BOUND).map_err(exited)?;
        if !status.success() && kind != ReqType::PreDump {
            return Err(exited(status.to_string()));
        }
        Ok(())
    }
}

impl Drop for Swrk {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits for `child` to exit for at most `bound`; past it, kills and reaps it and says so.
fn reap_within(child: &mut Child, bound: Duration) -> Result<ExitStatus, String> {
    let deadline = Deadline::after(bound);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if !deadline.expired() => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "still running {bound:?} after its session ended; killed"
                ));
            }
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitPidFlag};
    use nix::unistd::Pid;

    /// Whether `pid` is reaped; not waiting, so that a child still there fails at once.
    fn reaped(pid: Pid) -> bool {
        waitpid(pid, Some(WaitPidFlag::WNOHANG)) == Err(nix::errno::Errno::ECHILD)
    }

    #[test]
    fn a_criu_that_does_not_exit_is_killed_and_reaped() {
        let mut child = Command::new("sleep").arg("100").spawn().unwrap();
        let pid = child.id();
        let why = reap_within(&mut child, Duration::from_millis(50)).unwrap_err();
        assert!(why.contains("killed"), "{why}");
        assert!(reaped(Pid::from_raw(pid as i32)));
    }

    #[test]
    fn a_criu_gone_before_the_request_is_named_with_its_exit() {
        // `false` exits at once, without reading the socket.
        let mut s = Swrk::start(Path::new("false")).unwrap();
        let pid = Pid::from_raw(s.pid());
        let _ = s.child.wait();
        let e = s
            .request(&CriuReq::feature_check(Default::default()), &mut |_| Ok(()))
            .unwrap_err();
        assert!(
            matches!(&e, CheckpointError::CriuExited { status, .. } if status.contains('1')),
            "{e:?}"
        );
        assert!(e.to_string().contains("criu false exited"), "{e}");
        drop(s);
        assert!(reaped(pid));
    }

    #[test]
    fn a_dropped_session_kills_and_reaps_criu() {
        let mut s = Swrk {
            child: Command::new("sleep").arg("100").spawn().unwrap(),
            socket: socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .unwrap()
            .0,
            criu: "sleep".into(),
        };
        let pid = Pid::from_raw(s.pid());
        assert!(matches!(s.child.try_wait(), Ok(None)));
        drop(s);
        assert!(reaped(pid));
    }
}
