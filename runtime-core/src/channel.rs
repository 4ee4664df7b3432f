//! Typed messages with descriptors between two processes: one channel for the process
//! protocol ([`Message`], between the three generations of a container's processes) and
//! the shim's zygote (its requests and replies).
//!
//! A channel is one end of a SOCK_SEQPACKET socketpair: a message is one datagram of JSON,
//! so framing is free; descriptors ride along by SCM_RIGHTS; and a peer that dies closes
//! its end, which the other side sees as end-of-file instead of waiting forever. Every
//! receive has a deadline, and every error names the peer and what was awaited.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{
    shutdown, socketpair, AddressFamily, MsgFlags, Shutdown, SockFlag, SockType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::deadline::Deadline;
use crate::syscall::fds;

/// Largest message: error texts and paths are the only variable-length payload.
const MAX_MESSAGE: usize = 64 * 1024;
/// Most descriptors one message carries (an exec's process spec and three stdio).
const MAX_FDS: usize = 8;

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
    /// Sending failed (EPIPE: the peer is gone or takes no more).
    #[error("sending {what}: {errno}")]
    Send {
        /// The message, as `{:?}` shows it.
        what: String,
        /// The error.
        errno: Errno,
    },
    /// Receiving failed.
    #[error("receiving while waiting for {waiting_for}: {errno}")]
    Recv {
        /// What the receiver expected, and from whom.
        waiting_for: String,
        /// The error.
        errno: Errno,
    },
    /// The peer closed its end (it exited): end-of-file.
    #[error("{peer} exited while we waited for {waiting_for}")]
    PeerGone {
        /// Which process.
        peer: &'static str,
        /// What the receiver expected.
        waiting_for: String,
    },
    /// No message in time.
    #[error("timed out{} waiting for {waiting_for} from {peer}", after(.timeout))]
    Timeout {
        /// Which process.
        peer: &'static str,
        /// What the receiver expected.
        waiting_for: String,
        /// How long we waited, if the receiver said.
        timeout: Option<Duration>,
    },
    /// The bytes were not a message (or a message could not be encoded).
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

/// " after {timeout:?}" if there is one, for [`ChannelError::Timeout`].
fn after(timeout: &Option<Duration>) -> String {
    timeout.map(|t| format!(" after {t:?}")).unwrap_or_default()
}

/// One end of a channel: sends `S`, receives `R`. Named after the process at the other
/// end, for error messages.
#[derive(Debug)]
pub struct Channel<S = Message, R = S> {
    fd: OwnedFd,
    peer: &'static str,
    // Which messages go which way; fn() keeps the channel Send and Sync whatever they are.
    messages: PhantomData<fn(S) -> R>,
}

/// Two connected ends: the first sends `S` and receives `R`, the second the other way.
pub type Pair<S, R> = (Channel<S, R>, Channel<R, S>);

/// A connected pair of channel ends, one for each process: `a_peer` names the process at
/// the other end of the first, `b_peer` that of the second.
pub fn pair<S, R>(a_peer: &'static str, b_peer: &'static str) -> Result<Pair<S, R>, ChannelError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(ChannelError::Create)?;
    Ok((Channel::from_fd(a, a_peer), Channel::from_fd(b, b_peer)))
}

impl<S, R> Channel<S, R> {
    /// The channel over `fd`, one end of a SOCK_SEQPACKET socketpair (e.g. one this process
    /// inherited), with `peer` at the other end.
    pub fn from_fd(fd: OwnedFd, peer: &'static str) -> Self {
        Channel {
            fd,
            peer,
            messages: PhantomData,
        }
    }

    /// Shuts both directions down: a receive blocked on this end returns end-of-file, and
    /// the other end reads end-of-file even while other processes hold copies of this one.
    pub fn shutdown(&self) {
        let _ = shutdown(self.fd.as_raw_fd(), Shutdown::Both);
    }

    /// Takes no more messages: the other end's sends fail with EPIPE from now on, while
    /// those already queued can still be received (then end-of-file).
    pub fn refuse_more(&self) {
        let _ = shutdown(self.fd.as_raw_fd(), Shutdown::Read);
    }
}

impl<S: Serialize + Debug, R> Channel<S, R> {
    /// Sends one message.
    pub fn send(&self, msg: &S) -> Result<(), ChannelError> {
        self.send_with_fds(msg, &[])
    }

    /// Sends one message with `fds` attached.
    pub fn send_with_fds(&self, msg: &S, fds: &[BorrowedFd<'_>]) -> Result<(), ChannelError> {
        let bytes = serde_json::to_vec(msg).map_err(|source| ChannelError::Malformed {
            peer: self.peer,
            source,
        })?;
        let sent = if bytes.len() > MAX_MESSAGE {
            Err(Errno::EMSGSIZE)
        } else {
            fds::send_with_fds(self.fd.as_fd(), &bytes, fds, MsgFlags::MSG_NOSIGNAL)
        };
        sent.map(drop).map_err(|errno| ChannelError::Send {
            what: format!("{msg:?}"),
            errno,
        })
    }
}

impl<S, R: DeserializeOwned> Channel<S, R> {
    /// Waits until `deadline` for the next message and the descriptors that came with it.
    /// End-of-file is [`ChannelError::PeerGone`]; a message that does not decode is
    /// [`ChannelError::Malformed`], and the next receive reads the one after it.
    pub fn recv_with_fds(
        &self,
        waiting_for: &str,
        deadline: Deadline,
    ) -> Result<(R, Vec<OwnedFd>), ChannelError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            let mut ready = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match deadline.poll(&mut ready) {
                Err(errno) => return Err(self.recv_err(waiting_for, errno)),
                Ok(0) => {
                    return Err(ChannelError::Timeout {
                        peer: self.peer,
                        waiting_for: waiting_for.to_string(),
                        timeout: None,
                    })
                }
                Ok(_) => {}
            }
            let got = match fds::recv_with_fds::<MAX_FDS>(
                self.fd.as_fd(),
                &mut buf,
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
            ) {
                Err(fds::RecvError::Recv(Errno::EINTR | Errno::EAGAIN)) => continue,
                Err(e) => return Err(self.recv_err(waiting_for, e.errno())),
                Ok(got) => got,
            };
            if got.bytes == 0 && got.fds.is_empty() {
                return Err(ChannelError::PeerGone {
                    peer: self.peer,
                    waiting_for: waiting_for.to_string(),
                });
            }
            if got.flags.contains(MsgFlags::MSG_TRUNC) {
                return Err(self.recv_err(waiting_for, Errno::EMSGSIZE));
            }
            let msg = serde_json::from_slice(&buf[..got.bytes]).map_err(|source| {
                ChannelError::Malformed {
                    peer: self.peer,
                    source,
                }
            })?;
            return Ok((msg, got.fds));
        }
    }

    fn recv_err(&self, waiting_for: &str, errno: Errno) -> ChannelError {
        ChannelError::Recv {
            waiting_for: format!("{waiting_for} from {}", self.peer),
            errno,
        }
    }
}

impl<S, R> AsFd for Channel<S, R> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The process protocol's receives: one deadline per step, a peer's `Error` an error.
impl Channel<Message> {
    /// Waits at most `timeout` for the next message; a peer's `Error` becomes an error.
    pub fn recv(&self, waiting_for: &str, timeout: Duration) -> Result<Message, ChannelError> {
        match self.recv_with_fds(waiting_for, Deadline::after(timeout)) {
            Ok((Message::Error(failure), _)) => Err(ChannelError::Remote {
                peer: self.peer,
                failure,
            }),
            Ok((m, _)) => Ok(m),
            Err(ChannelError::Timeout {
                peer, waiting_for, ..
            }) => Err(ChannelError::Timeout {
                peer,
                waiting_for,
                timeout: Some(timeout),
            }),
            Err(e) => Err(e),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A bound for waits that must end long before it.
    fn five() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

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
        assert!(matches!(e, ChannelError::Timeout { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "timed out after 20ms waiting for Ready from init"
        );
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

    /// A request and its reply are different types; descriptors cross with the message.
    #[test]
    fn typed_messages_and_descriptors_cross_both_ways() {
        let (asker, answerer) = pair::<String, u32>("answerer", "asker").unwrap();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        asker.send_with_fds(&"hello".into(), &[w.as_fd()]).unwrap();
        drop(w);
        let (got, mut fds) = answerer.recv_with_fds("a question", five()).unwrap();
        assert_eq!(got, "hello");
        assert_eq!(fds.len(), 1);
        let mut f = std::fs::File::from(fds.pop().unwrap());
        f.write_all(b"through").unwrap();
        drop(f);
        let mut text = String::new();
        std::fs::File::from(r).read_to_string(&mut text).unwrap();
        assert_eq!(text, "through");
        answerer.send(&7).unwrap();
        let (n, fds) = asker.recv_with_fds("an answer", five()).unwrap();
        assert_eq!((n, fds.len()), (7, 0));
    }

    /// A message of the wrong type is malformed, and only that one: the next arrives.
    #[test]
    fn a_malformed_message_is_skipped() {
        let (a, b) = pair::<String, String>("b", "a").unwrap();
        // The same socket, seen as a channel of numbers.
        let numbers = Channel::<u32, u32>::from_fd(a.fd.try_clone().unwrap(), "b");
        numbers.send(&1).unwrap();
        a.send(&"two".into()).unwrap();
        let e = b.recv_with_fds("text", five()).unwrap_err();
        assert!(
            matches!(e, ChannelError::Malformed { peer: "a", .. }),
            "{e}"
        );
        assert_eq!(b.recv_with_fds("text", five()).unwrap().0, "two");
    }

    /// A wait ends at its deadline, or sooner with the peer.
    #[test]
    fn a_wait_is_bounded_and_sees_a_closed_peer() {
        let (a, b) = pair::<u32, u32>("b", "a").unwrap();
        let e = b
            .recv_with_fds("a number", Deadline::after(Duration::from_millis(50)))
            .unwrap_err();
        assert_eq!(e.to_string(), "timed out waiting for a number from a");
        drop(a);
        let e = b.recv_with_fds("a number", five()).unwrap_err();
        assert!(matches!(e, ChannelError::PeerGone { peer: "a", .. }), "{e}");
    }

    /// refuse_more: the other end's sends fail, what was queued before still arrives.
    #[test]
    fn a_channel_that_refuses_more_still_gives_what_was_queued() {
        let (a, b) = pair::<u32, u32>("b", "a").unwrap();
        a.send(&1).unwrap();
        b.refuse_more();
        let e = a.send(&2).unwrap_err();
        assert!(
            matches!(
                e,
                ChannelError::Send {
                    errno: Errno::EPIPE,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.to_string(), "sending 2: EPIPE: Broken pipe");
        let (n, _) = b.recv_with_fds("a number", five()).unwrap();
        assert_eq!(n, 1);
        let e = b.recv_with_fds("a number", five()).unwrap_err();
        assert!(matches!(e, ChannelError::PeerGone { .. }), "{e}");
    }

    /// shutdown: both ends read end-of-file, also while a copy of this end stays open.
    #[test]
    fn shutdown_ends_both_sides() {
        let (a, b) = pair::<u32, u32>("b", "a").unwrap();
        let copy = a.fd.try_clone().unwrap();
        a.shutdown();
        let e = b.recv_with_fds("a number", five()).unwrap_err();
        assert!(matches!(e, ChannelError::PeerGone { .. }), "{e}");
        let e = a.recv_with_fds("a number", five()).unwrap_err();
        assert!(matches!(e, ChannelError::PeerGone { .. }), "{e}");
        drop(copy);
    }

    #[test]
    fn a_message_too_large_is_refused_before_it_leaves() {
        let (a, _b) = pair::<String, String>("b", "a").unwrap();
        let e = a.send(&"x".repeat(MAX_MESSAGE)).unwrap_err();
        assert!(
            matches!(
                e,
                ChannelError::Send {
                    errno: Errno::EMSGSIZE,
                    ..
                }
            ),
            "{e}"
        );
    }
}
