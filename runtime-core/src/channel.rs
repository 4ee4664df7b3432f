//! Typed messages between the three generations of a container's processes.
//!
//! Each channel is a SOCK_SEQPACKET socketpair: a message is one datagram, so framing is
//! free, and a peer that dies closes its end, which the other side sees as end-of-file
//! instead of waiting forever.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// Largest message; error texts are the only variable-length payload.
const MAX_MESSAGE: usize = 64 * 1024;

/// A message between the runtime (main), the intermediate process and the init process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// intermediate -> main: a new user namespace exists; write its id maps.
    UserNamespaceCreated,
    /// main -> intermediate: id maps written (if any); go on.
    Proceed,
    /// intermediate -> main: the init process's pid, as the main process sees it.
    InitPid(i32),
    /// main -> init: the cgroup exists and init is in it.
    CgroupJoined,
    /// init -> main: namespaces and mounts are ready; run prestart and createRuntime hooks.
    RunRuntimeHooks,
    /// main -> init: those hooks succeeded.
    RuntimeHooksDone,
    /// init -> main: the container is created and waits for start.
    Ready,
    /// any child -> main (or main -> init): setup failed, with the step, errno and reason.
    Error(crate::process::Failure),
}

/// What went wrong on a channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Creating the socketpair failed.
    #[error("socketpair: {0}")]
    Create(Errno),
    /// Sending failed.
    #[error("sending {what:?}: {errno}")]
    Send {
        /// The message.
        what: Message,
        /// The error.
        errno: Errno,
    },
    /// Receiving failed.
    #[error("receiving while waiting for {waiting_for}: {errno}")]
    Recv {
        /// What the receiver expected.
        waiting_for: String,
        /// The error.
        errno: Errno,
    },
    /// The peer closed its end: it exited.
    #[error("{peer} exited while we waited for {waiting_for}")]
    PeerGone {
        /// Which process.
        peer: &'static str,
        /// What the receiver expected.
        waiting_for: String,
    },
    /// No message in time.
    #[error("timed out after {timeout:?} waiting for {waiting_for} from {peer}")]
    Timeout {
        /// Which process.
        peer: &'static str,
        /// What the receiver expected.
        waiting_for: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The bytes were not a message.
    #[error("malformed message from {peer}: {source}")]
    Malformed {
        /// Which process.
        peer: &'static str,
        /// The decode error.
        source: serde_json::Error,
    },
    /// The peer reported an error of its own.
    #[error("{peer}: {failure}")]
    Remote {
        /// Which process.
        peer: &'static str,
        /// Its failure: the step, the errno and the text.
        failure: crate::process::Failure,
    },
    /// A message arrived, but not the one expected.
    #[error("unexpected message {got:?} from {peer} while waiting for {waiting_for}")]
    Unexpected {
        /// Which process.
        peer: &'static str,
        /// What arrived.
        got: Message,
        /// What the receiver expected.
        waiting_for: String,
    },
}

/// One end of a channel, named after the process at the other end (for error messages).
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
    peer: &'static str,
}

/// A connected pair of channel ends: one for each process.
pub fn pair(
    a_peer: &'static str,
    b_peer: &'static str,
) -> Result<(Channel, Channel), ChannelError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(ChannelError::Create)?;
    Ok((
        Channel {
            fd: a,
            peer: a_peer,
        },
        Channel {
            fd: b,
            peer: b_peer,
        },
    ))
}

impl Channel {
    /// Sends one message.
    pub fn send(&self, msg: &Message) -> Result<(), ChannelError> {
        let bytes = serde_json::to_vec(msg).map_err(|source| ChannelError::Malformed {
            peer: self.peer,
            source,
        })?;
        loop {
            match send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return Err(ChannelError::Send {
                        what: msg.clone(),
                        errno,
                    })
                }
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Waits at most `timeout` for the next message; a peer's `Error` becomes an error.
    pub fn recv(&self, waiting_for: &str, timeout: Duration) -> Result<Message, ChannelError> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(self.recv_err(waiting_for, errno)),
                Ok(0) => {
                    return Err(ChannelError::Timeout {
                        peer: self.peer,
                        waiting_for: waiting_for.to_string(),
                        timeout,
                    })
                }
                Ok(_) => {}
            }
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_CMSG_CLOEXEC) {
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
                Err(errno) => return Err(self.recv_err(waiting_for, errno)),
                Ok(0) => {
                    return Err(ChannelError::PeerGone {
                        peer: self.peer,
                        waiting_for: waiting_for.to_string(),
                    })
                }
                Ok(n) => {
                    let msg: Message = serde_json::from_slice(&buf[..n]).map_err(|source| {
                        ChannelError::Malformed {
                            peer: self.peer,
                            source,
                        }
                    })?;
                    return match msg {
                        Message::Error(failure) => Err(ChannelError::Remote {
                            peer: self.peer,
                            failure,
                        }),
                        m => Ok(m),
                    };
                }
            }
        }
    }

    /// Waits for exactly `expected`; anything else is an error.
    pub fn expect(&self, expected: &Message, timeout: Duration) -> Result<(), ChannelError> {
        let waiting_for = format!("{expected:?}");
        let got = self.recv(&waiting_for, timeout)?;
        if &got == expected {
            Ok(())
        } else {
            Err(ChannelError::Unexpected {
                peer: self.peer,
                got,
                waiting_for,
            })
        }
    }

    fn recv_err(&self, waiting_for: &str, errno: Errno) -> ChannelError {
        ChannelError::Recv {
            waiting_for: format!("{waiting_for} from {}", self.peer),
            errno,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_order() {
        let (a, b) = pair("b", "a").unwrap();
        a.send(&Message::InitPid(42)).unwrap();
        a.send(&Message::Ready).unwrap();
        assert_eq!(
            b.recv("pid", Duration::from_secs(1)).unwrap(),
            Message::InitPid(42)
        );
        b.expect(&Message::Ready, Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn remote_error_becomes_error() {
        let (a, b) = pair("init", "main").unwrap();
        b.send(&Message::Error("mount /proc: EPERM".into()))
            .unwrap();
        let e = a.recv("Ready", Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), "init: mount /proc: EPERM");
    }

    #[test]
    fn closed_peer_is_an_error_not_a_hang() {
        let (a, b) = pair("init", "main").unwrap();
        drop(b);
        let e = a
            .expect(&Message::Ready, Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(e, ChannelError::PeerGone { .. }), "{e}");
    }

    #[test]
    fn silence_times_out() {
        let (a, _b) = pair("init", "main").unwrap();
        let e = a.recv("Ready", Duration::from_millis(20)).unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
    }

    #[test]
    fn unexpected_message_is_named() {
        let (a, b) = pair("init", "main").unwrap();
        b.send(&Message::Proceed).unwrap();
        let e = a
            .expect(&Message::Ready, Duration::from_secs(1))
            .unwrap_err();
        assert!(e.to_string().contains("Proceed"), "{e}");
    }
}
