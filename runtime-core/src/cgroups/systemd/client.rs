//! A synchronous connection to systemd's private D-Bus socket: authentication, method calls
//! to the Manager object, and waiting for a job's JobRemoved signal.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::wire::{self, Kind, Message, Value};
use super::SystemdError;

/// systemd's Manager object and interface.
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";

/// A connection to systemd, for one operation of the driver.
pub(crate) struct Connection {
    stream: BufReader<UnixStream>,
    socket: PathBuf,
    serial: u32,
    deadline: Instant,
    /// JobRemoved signals that arrived while waiting for a reply: (job path, result).
    removed: Vec<(String, String)>,
}

/// The answer to a method call.
pub(crate) enum Reply {
    /// The method returned; its body.
    Return(Message),
    /// The method failed: its error name and message.
    Error(String, String),
}

impl Connection {
    /// Connects and authenticates as our uid (EXTERNAL); the waits on this connection end
    /// at `now + timeout` until [`Connection::begin`] sets another deadline.
    pub(crate) fn open(socket: &Path, timeout: Duration) -> Result<Self, SystemdError> {
        let io = |what: &'static str| {
            let socket = socket.to_path_buf();
            move |source| SystemdError::Io {
                socket,
                what,
                source,
            }
        };
        let stream = UnixStream::connect(socket).map_err(io("connect"))?;
        let mut c = Connection {
            stream: BufReader::new(stream),
            socket: socket.to_path_buf(),
            serial: 0,
            deadline: Instant::now() + timeout,
            removed: Vec::new(),
        };
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        // BEGIN goes with AUTH, as sd-bus's own clients send it, so that systemd reads
        // both at once, before our first call is written. Sent after the OK instead,
        // BEGIN and the call can arrive together while systemd is busy; systemd 252 then
        // starts the connection with the call already read into its buffer, and never
        // looks at it (its event loop waits for the socket to be readable again): the
        // call stayed unanswered, the connection idle (shim deletes right after a
        // container exited, in the systemd VM).
        c.send(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())?;
        c.set_timeout(c.deadline, "the authentication answer")?;
        let mut line = String::new();
        c.stream
            .read_line(&mut line)
            .map_err(|e| c.read_error(e, "the authentication answer"))?;
        if !line.starts_with("OK ") {
            return Err(SystemdError::Auth {
                socket: c.socket.clone(),
                answer: line.trim_end().to_string(),
            });
        }
        Ok(c)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), SystemdError> {
        self.stream
            .get_mut()
            .write_all(bytes)
            .map_err(|source| SystemdError::Io {
                socket: self.socket.clone(),
                what: "write",
                source,
            })
    }

    /// Bounds the next read, for `waiting_for`, by `until` and the connection's deadline.
    fn set_timeout(&mut self, until: Instant, waiting_for: &str) -> Result<(), SystemdError> {
        let left = until
            .min(self.deadline)
            .saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SystemdError::Timeout {
                waiting_for: waiting_for.into(),
            });
        }
        self.stream
            .get_ref()
            .set_read_timeout(Some(left))
            .map_err(|source| SystemdError::Io {
                socket: self.socket.clone(),
                what: "set a read timeout on",
                source,
            })
    }

    fn read_error(&self, e: std::io::Error, waiting_for: &str) -> SystemdError {
        match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => SystemdError::Timeout {
                waiting_for: waiting_for.to_string(),
            },
            _ => SystemdError::Io {
                socket: self.socket.clone(),
                what: "read",
                source: e,
            },
        }
    }

    /// Reads the next message, waiting until `until` at most.
    fn receive(&mut self, waiting_for: &str, until: Instant) -> Result<Message, SystemdError> {
        self.set_timeout(until, waiting_for)?;
        let mut head = [0u8; 16];
        self.stream
            .read_exact(&mut head)
            .map_err(|e| self.read_error(e, waiting_for))?;
        let mut bytes = vec![0u8; wire::frame_len(&head)?];
        bytes[..16].copy_from_slice(&head);
        self.stream
            .read_exact(&mut bytes[16..])
            .map_err(|e| self.read_error(e, waiting_for))?;
        let msg = Message::parse(&bytes)?;
        log::debug!(
            "systemd: {:?} {}.{} ({}) answering {:?}",
            msg.kind,
            msg.interface.as_deref().unwrap_or("-"),
            msg.member.as_deref().unwrap_or("-"),
            msg.signature,
            msg.reply_serial
        );
        if msg.kind == Kind::Signal
            && msg.interface.as_deref() == Some(MANAGER_IFACE)
            && msg.member.as_deref() == Some("JobRemoved")
            && msg.signature == "uoss"
        {
            let mut b = msg.body();
            b.u32()?;
            let job = b.string()?;
            b.string()?;
            let result = b.string()?;
            self.removed.push((job, result));
        }
        Ok(msg)
    }

    /// Calls `member` of systemd's Manager with `args` and waits for its answer, at most
    /// `within` (and the connection's deadline); signals meanwhile are kept (JobRemoved) or
    /// skipped.
    pub(crate) fn call(
        &mut self,
        member: &str,
        args: &[Value],
        within: Duration,
    ) -> Result<Reply, SystemdError> {
        self.serial += 1;
        let serial = self.serial;
        self.send(&wire::method_call(
            serial,
            MANAGER_PATH,
            MANAGER_IFACE,
            member,
            args,
        ))?;
        let waiting_for = format!("the answer to {member}");
        let until = Instant::now() + within;
        loop {
            let msg = self.receive(&waiting_for, until)?;
            if msg.reply_serial != Some(serial) {
                continue;
            }
            return match msg.kind {
                Kind::MethodReturn => Ok(Reply::Return(msg)),
                Kind::Error => {
                    let text = if msg.signature.starts_with('s') {
                        msg.body().string()?
                    } else {
                        String::new()
                    };
                    Ok(Reply::Error(msg.error_name.unwrap_or_default(), text))
                }
                _ => continue,
            };
        }
    }

    /// Waits for the job `job` (an object path a StartUnit-like call returned) to finish;
    /// returns its result (`done`, `failed`, `canceled`, ...).
    pub(crate) fn wait_job(&mut self, job: &str) -> Result<String, SystemdError> {
        // systemd sends JobRemoved to every connection on its private socket, without a
        // subscription; it may have come before the reply was read.
        loop {
            if let Some(i) = self.removed.iter().position(|(j, _)| j == job) {
                return Ok(self.removed.swap_remove(i).1);
            }
            self.receive(&format!("systemd's job {job}"), self.deadline)?;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::os::unix::net::UnixListener;
    use std::thread;

    use super::*;

    /// The client's side of a conversation with a scripted peer on a socket in a temporary
    /// directory: authentication, a call answered by an error, a JobRemoved that comes
    /// before the reply naming its job, and a wait that times out.
    #[test]
    fn conversation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("private");
        let listener = UnixListener::bind(&sock).expect("bind");
        let peer = thread::spawn(move || {
            let mut r = accept(&listener);
            let mut calls = Vec::new();
            // Serial 1: an error.
            calls.push(next_call(&mut r));
            let error = reply(
                3,
                1,
                Some("org.freedesktop.systemd1.NoSuchUnit"),
                "s",
                &[Value::Str("Unit x.scope not loaded.".into())],
            );
            r.get_mut().write_all(&error).expect("error");
            // Serial 2: JobRemoved first, then the reply naming its job.
            calls.push(next_call(&mut r));
            let removed = reply(
                4,
                0,
                None,
                "uoss",
                &[
                    Value::U32(5),
                    Value::ObjectPath("/job/5".into()),
                    Value::Str("x.scope".into()),
                    Value::Str("done".into()),
                ],
            );
            r.get_mut().write_all(&removed).expect("signal");
            let job = reply(2, 2, None, "o", &[Value::ObjectPath("/job/5".into())]);
            r.get_mut().write_all(&job).expect("reply");
            // Held open until the client is done, so that its last wait times out.
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
            calls
        });
        let mut c = Connection::open(&sock, Duration::from_secs(10)).expect("open");
        match c
            .call(
                "ResetFailedUnit",
                &[Value::Str("x.scope".into())],
                Duration::from_secs(10),
            )
            .expect("call")
        {
            Reply::Error(name, text) => {
                assert_eq!(name, "org.freedesktop.systemd1.NoSuchUnit");
                assert_eq!(text, "Unit x.scope not loaded.");
            }
            Reply::Return(_) => panic!("expected an error"),
        }
        let args = [Value::Str("x.scope".into()), Value::Str("replace".into())];
        let Reply::Return(reply) = c
            .call("StopUnit", &args, Duration::from_secs(10))
            .expect("stop")
        else {
            panic!("expected a return");
        };
        let job = reply.body().string().expect("job");
        assert_eq!(job, "/job/5");
        assert_eq!(c.wait_job(&job).expect("job"), "done");
        // Nothing more comes: a wait for another job ends at the deadline, not never.
        c.deadline = Instant::now() + Duration::from_millis(50);
        assert!(matches!(
            c.wait_job("/job/6"),
            Err(SystemdError::Timeout { .. })
        ));
        drop(c);
        let calls = peer.join().expect("peer");
        assert_eq!(calls[0].member.as_deref(), Some("ResetFailedUnit"));
        assert_eq!(calls[1].member.as_deref(), Some("StopUnit"));
        assert_eq!(calls[1].signature, "ss");
    }

    /// Accepts a connection on `listener` and answers its authentication as systemd does,
    /// once it has read BEGIN too: a client that waits for the OK before it sends BEGIN
    /// (and then its first call right behind) waits here in vain.
    pub(in super::super) fn accept(listener: &UnixListener) -> BufReader<UnixStream> {
        let (s, _) = listener.accept().expect("accept");
        let mut r = BufReader::new(s);
        let mut auth = Vec::new();
        r.read_until(b'\n', &mut auth).expect("auth");
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        assert_eq!(auth, format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes());
        let mut begin = String::new();
        r.read_line(&mut begin).expect("begin");
        assert_eq!(begin, "BEGIN\r\n");
        r.get_mut()
            .write_all(b"OK 0123456789abcdef\r\n")
            .expect("ok");
        r
    }

    /// The next method call the client sends.
    pub(in super::super) fn next_call(r: &mut BufReader<UnixStream>) -> Message {
        let mut head = [0u8; 16];
        r.read_exact(&mut head).expect("head");
        let mut msg = vec![0u8; wire::frame_len(&head).expect("len")];
        msg[..16].copy_from_slice(&head);
        r.read_exact(&mut msg[16..]).expect("msg");
        Message::parse(&msg).expect("parse")
    }

    /// A message as systemd sends it: `kind` 2 (return), 3 (error) or 4 (signal).
    pub(in super::super) fn reply(
        kind: u8,
        reply_serial: u32,
        error: Option<&str>,
        sig: &str,
        body: &[Value],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        for v in body {
            v.write(&mut b);
        }
        let field = |code: u8, v: Value| {
            Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
        };
        let mut fields = vec![field(8, Value::Signature(sig.into()))];
        if kind == 4 {
            fields.push(field(2, Value::Str(MANAGER_IFACE.into())));
            fields.push(field(3, Value::Str("JobRemoved".into())));
        } else {
            fields.push(field(5, Value::U32(reply_serial)));
        }
        if let Some(e) = error {
            fields.push(field(4, Value::Str(e.into())));
        }
        let mut msg = vec![b'l', kind, 1, 1];
        Value::U32(b.len() as u32).write(&mut msg);
        Value::U32(100 + u32::from(kind)).write(&mut msg);
        Value::Array("(yv)".into(), fields).write(&mut msg);
        while msg.len() % 8 != 0 {
            msg.push(0);
        }
        msg.extend_from_slice(&b);
        msg
    }
}
