//! File descriptors: passing them over a socket (SCM_RIGHTS, both ways), owning the ones the
//! kernel hands over (a receive, an exec's inheritance, a copy), and what a pipe holds.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{recvmsg, send, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use super::{err, Result};

/// A close-on-exec copy of `fd` numbered `min` or above: fcntl(F_DUPFD_CLOEXEC), e.g. to
/// keep it clear of the numbers a child's descriptors are moved onto.
pub fn dup_from(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd> {
    let raw =
        fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(min)).map_err(err("fcntl(F_DUPFD_CLOEXEC)", min))?;
    // SAFETY: F_DUPFD_CLOEXEC just created descriptor `raw`; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// sendmsg(2) of `bytes` on `sock` with `fds` passed along (SCM_RIGHTS), retried on EINTR;
/// the number of bytes sent (a stream socket may take only part of them, the descriptors
/// then go with the first byte). Without descriptors it is send(2): a container's last
/// message to the runtime leaves after its seccomp filter is loaded, and the filter must
/// see the call it always saw, not a sendmsg the profile may refuse.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
    flags: MsgFlags,
) -> std::result::Result<usize, Errno> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    loop {
        let sent = if raw.is_empty() {
            send(sock.as_raw_fd(), bytes, flags)
        } else {
            sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(bytes)],
                &rights,
                flags,
                None,
            )
        };
        match sent {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// One message received by [`recv_with_fds`].
#[derive(Debug)]
pub struct Received {
    /// The number of bytes of the message put into the buffer.
    pub bytes: usize,
    /// The message's flags (MSG_TRUNC: the buffer was too small for it).
    pub flags: MsgFlags,
    /// The descriptors that came with it (SCM_RIGHTS), now this process's.
    pub fds: Vec<OwnedFd>,
}

/// Why [`recv_with_fds`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// recvmsg(2) itself failed.
    #[error("recvmsg: {0}")]
    Recv(Errno),
    /// The control messages could not be read (ENOBUFS: more descriptors came than there
    /// was room for).
    #[error("control messages: {0}")]
    ControlMessages(Errno),
}

impl RecvError {
    /// The errno of either step.
    pub fn errno(self) -> Errno {
        match self {
            RecvError::Recv(e) | RecvError::ControlMessages(e) => e,
        }
    }
}

/// recvmsg(2) of one message from `sock` into `buf`, with room for `N` descriptors passed
/// with it, which are returned owned (ask for MSG_CMSG_CLOEXEC in `flags` so that no
/// child spawned meanwhile inherits them).
pub fn recv_with_fds<const N: usize>(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: MsgFlags,
) -> std::result::Result<Received, RecvError> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; N]);
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), flags)
        .map_err(RecvError::Recv)?;
    let mut fds = vec![];
    for c in msg.cmsgs().map_err(RecvError::ControlMessages)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these descriptors in our table for this
            // message, which is read once; nothing else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok(Received {
        bytes: msg.bytes,
        flags: msg.flags,
        fds,
    })
}

/// The descriptor numbers (3 to 63) already taken by [`take_inherited`].
static TAKEN: AtomicU64 = AtomicU64::new(0);

/// Takes ownership of descriptor `fd` (3 to 63), which this process inherited through
/// execve(2) from the one that started it: Some if it is open and not close-on-exec.
///
/// Each number is given out once per process; 0, 1 and 2 never (the standard library's
/// stdin, stdout and stderr use them without owning them). A descriptor this process opened itself is
/// close-on-exec (the standard library and the runtime open every one so) and is refused;
/// what remains for the caller is not to have taken the number otherwise, e.g. with
/// `OwnedFd::from_raw_fd` elsewhere: call this first thing in `main`.
pub fn take_inherited(fd: RawFd) -> Option<OwnedFd> {
    if fd < 3 {
        return None;
    }
    let bit = 1u64.checked_shl(u32::try_from(fd).ok()?)?;
    // SAFETY: F_GETFD on an integer only reads the descriptor's flags; one that is not open
    // is EBADF.
    let flags = Errno::result(unsafe { libc::fcntl(fd, libc::F_GETFD) }).ok()?;
    if FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC) {
        return None;
    }
    if TAKEN.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return None;
    }
    // SAFETY: `fd` is open, and it is not close-on-exec, so it came through the exec and
    // not from this process's own opens; it is given out once (the bit above), and the
    // caller has not taken it otherwise (the contract above).
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The number of bytes a pipe, fifo or socket holds unread: ioctl(FIONREAD).
pub fn unread(fd: BorrowedFd<'_>) -> Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD stores an int through the pointer, which points to `n`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    Errno::result(r).map_err(err("ioctl(FIONREAD)", fd.as_raw_fd()))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    use super::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair")
    }

    fn send(sock: &OwnedFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
        let n = send_with_fds(sock.as_fd(), bytes, fds, MsgFlags::empty()).expect("sendmsg");
        assert_eq!(n, bytes.len());
    }

    /// Two descriptors and the bytes arrive; the copies are close-on-exec and refer to the
    /// files sent; a message larger than the buffer says so.
    #[test]
    fn descriptors_and_bytes_arrive_owned() {
        let (a, b) = pair();
        let (r, w) = nix::unistd::pipe().expect("pipe");
        send(&a, b"hello", &[r.as_fd(), w.as_fd()]);
        let mut buf = [0u8; 16];
        let got =
            recv_with_fds::<2>(b.as_fd(), &mut buf, MsgFlags::MSG_CMSG_CLOEXEC).expect("recv");
        assert_eq!(&buf[..got.bytes], b"hello");
        assert!(!got.flags.contains(MsgFlags::MSG_TRUNC));
        assert_eq!(got.fds.len(), 2);
        for fd in &got.fds {
            let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD).expect("F_GETFD"));
            assert!(flags.contains(FdFlag::FD_CLOEXEC));
        }
        nix::unistd::write(&got.fds[1], b"x").expect("write through the copy");
        let mut one = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut one), Ok(1));

        send(&a, b"too long for the buffer", &[]);
        let mut small = [0u8; 4];
        let got = recv_with_fds::<1>(b.as_fd(), &mut small, MsgFlags::empty()).expect("recv");
        assert!(got.flags.contains(MsgFlags::MSG_TRUNC));
        assert!(got.fds.is_empty());
    }

    /// More descriptors than room: the control messages are refused, not misread. (Room
    /// for one is room for two: the kernel's control message space is 8-byte aligned.)
    #[test]
    fn too_many_descriptors_is_an_error() {
        let (a, b) = pair();
        let (r, w) = nix::unistd::pipe().expect("pipe");
        send(&a, b"x", &[r.as_fd(), w.as_fd(), r.as_fd()]);
        let mut buf = [0u8; 4];
        let e = recv_with_fds::<1>(b.as_fd(), &mut buf, MsgFlags::MSG_CMSG_CLOEXEC)
            .expect_err("three descriptors, room for one");
        assert_eq!(e, RecvError::ControlMessages(Errno::ENOBUFS));
        drop(a);
        let e = recv_with_fds::<1>(b.as_fd(), &mut buf, MsgFlags::MSG_DONTWAIT);
        assert_eq!(e.expect("end-of-file").bytes, 0);
    }

    /// A descriptor this process opened (close-on-exec) is never taken as inherited; one
    /// without the flag is taken once.
    #[test]
    fn only_a_descriptor_without_close_on_exec_is_taken_and_once() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        assert!(take_inherited(r.as_raw_fd()).is_none(), "close-on-exec");
        // Stands in for an inherited one: a copy with the flag cleared, owned by nobody
        // once its number is taken out of the OwnedFd.
        let copy = dup_from(w.as_fd(), 50).expect("dup");
        fcntl(&copy, FcntlArg::F_SETFD(FdFlag::empty())).expect("F_SETFD");
        let inherited = std::os::fd::IntoRawFd::into_raw_fd(copy);
        let taken = take_inherited(inherited).expect("taken");
        assert_eq!(taken.as_raw_fd(), inherited);
        assert!(take_inherited(inherited).is_none(), "taken twice");
        assert!(take_inherited(1000).is_none(), "out of range");
        assert!(take_inherited(0).is_none(), "stdin, std's");
    }

    #[test]
    fn unread_counts_what_a_pipe_holds() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        assert_eq!(unread(r.as_fd()).expect("FIONREAD"), 0);
        nix::unistd::write(&w, b"abc").expect("write");
        assert_eq!(unread(r.as_fd()).expect("FIONREAD"), 3);
    }
}
