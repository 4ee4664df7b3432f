//! The I/O of one process (a container's init or an exec): what the process gets, and the
//! shim's side that copies to and from containerd's fifos.
//!
//! - Pipes: stdout and stderr through io::setup_for; stdin through io::stdin, so that
//!   CloseIO can close it. The process gets three descriptors.
//! - Terminal: the process gets one end of a console socket, over which runtime-core
//!   sends the pty master; [`Prepared::finish`] receives it once create or exec returned
//!   and starts copying the master to the stdout fifo (through io::setup_for, so that
//!   every kind of stdout containerd names works) and the stdin fifo to the master.
//!
//! The exit of the process is reported once [`ProcIo::drain`] says its output went out.
//! Dropping the [`ProcIo`] (the service does at Delete) is the task's end for its copies:
//! those still waiting for a client that went away end then (io/output.rs, io/stdin.rs).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use nix::fcntl::OFlag;

use crate::error::{Result, ShimError};
use crate::io::stdin::{self, Sink, Stdin};
use crate::io::tty::Console;
use crate::io::{self, Drain, StdioPaths, Stop};

/// The shim's side of a running process's I/O.
pub struct ProcIo {
    /// Done when the output is forwarded completely.
    pub drain: Arc<Drain>,
    /// The stdin copy, if the process has a stdin fifo.
    pub stdin: Option<Stdin>,
    /// The terminal, if the process has one.
    pub console: Option<Console>,
    /// Dropped with this: ends the output copies that still wait for a client.
    _stop: Option<Stop>,
}

impl ProcIo {
    /// No I/O at all (unit tests).
    #[cfg(test)]
    pub fn none(drain: Arc<Drain>) -> ProcIo {
        ProcIo {
            drain,
            stdin: None,
            console: None,
            _stop: None,
        }
    }

    /// CloseIO.
    pub fn close_stdin(&self) {
        if let Some(s) = &self.stdin {
            s.close();
        }
    }
}

/// I/O set up before the process exists.
pub struct Prepared {
    /// The descriptors the process gets: stdin, stdout, stderr, or the console socket.
    pub child: Vec<OwnedFd>,
    drain: Arc<Drain>,
    stop: Stop,
    stdin: Option<Stdin>,
    terminal: Option<TerminalSide>,
}

struct TerminalSide {
    socket: UnixStream,
    stdout: File,
    stdin_fifo: Option<File>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| ShimError::other(format!("pipe: {e}")))
}

/// Sets up the I/O of a process of container `id`. `stdin_closed`: CloseIO came before the
/// process existed, it gets an empty stdin. `owner` (uid, gid) owns the process's pipe ends.
pub fn prepare(
    id: &str,
    paths: &StdioPaths,
    terminal: bool,
    stdin_closed: bool,
    owner: Option<(u32, u32)>,
) -> Result<Prepared> {
    let stdin_path = if stdin_closed {
        ""
    } else {
        paths.stdin.as_str()
    };
    let stdin_fifo = stdin::open_fifo(stdin_path)?;
    if terminal {
        // The terminal's output is one stream: stdout.
        let out = StdioPaths {
            stdout: paths.stdout.clone(),
            ..Default::default()
        };
        let (fds, drain, stop) = io::setup_for(id, &out, None)?;
        let (ours, theirs) =
            UnixStream::pair().map_err(|e| ShimError::other(format!("console socketpair: {e}")))?;
        return Ok(Prepared {
            child: vec![theirs.into()],
            drain,
            stop,
            stdin: None,
            terminal: Some(TerminalSide {
                socket: ours,
                stdout: fds.stdout.into(),
                stdin_fifo,
            }),
        });
    }
    // stdin is ours (io::stdin): setup_for gets only the output.
    let out = StdioPaths {
        stdin: String::new(),
        ..paths.clone()
    };
    let (mut fds, drain, stop) = io::setup_for(id, &out, owner)?;
    let stdin = match stdin_fifo {
        None => None,
        Some(fifo) => {
            let (r, w) = pipe()?;
            if let Some((uid, gid)) = owner.filter(|o| *o != (0, 0)) {
                nix::unistd::fchown(&r, Some(uid.into()), Some(gid.into()))
                    .map_err(|e| ShimError::other(format!("chown stdin to {uid}:{gid}: {e}")))?;
            }
            let s = Stdin::start(fifo, Sink::Pipe(w.into()))?;
            fds.stdin = r;
            Some(s)
        }
    };
    Ok(Prepared {
        child: vec![fds.stdin, fds.stdout, fds.stderr],
        drain,
        stop,
        stdin,
        terminal: None,
    })
}

impl Prepared {
    /// Whether the process gets a terminal (one descriptor, the console socket).
    #[cfg(test)]
    pub fn terminal(&self) -> bool {
        self.terminal.is_some()
    }

    /// Called once the process exists (the process's descriptors were handed over and
    /// dropped): receives the terminal and starts its copies.
    pub fn finish(self) -> Result<ProcIo> {
        drop(self.child);
        let Some(t) = self.terminal else {
            return Ok(ProcIo {
                drain: self.drain,
                stdin: self.stdin,
                console: None,
                _stop: Some(self.stop),
            });
        };
        let console = Console::receive(&t.socket, Some(t.stdout))?;
        let stdin = t
            .stdin_fifo
            .map(|fifo| Stdin::start(fifo, Sink::Console(console.master())))
            .transpose()?;
        Ok(ProcIo {
            drain: self.drain,
            stdin,
            console: Some(console),
            _stop: Some(self.stop),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;

    use crate::io::testing::mkfifo;

    /// Opens a fifo for reading the way containerd does before the shim opens its writer.
    fn reader(path: &std::path::Path) -> File {
        File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap()
    }

    fn blocking(f: &File) {
        use nix::fcntl::{fcntl, FcntlArg};
        let fl = OFlag::from_bits_truncate(fcntl(f, FcntlArg::F_GETFL).unwrap());
        fcntl(f, FcntlArg::F_SETFL(fl & !OFlag::O_NONBLOCK)).unwrap();
    }

    #[test]
    fn pipes_with_a_closable_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let (inp, out) = (dir.path().join("in"), dir.path().join("out"));
        mkfifo(&inp);
        mkfifo(&out);
        let out_r = reader(&out);
        blocking(&out_r);
        let paths = StdioPaths {
            stdin: inp.to_str().unwrap().into(),
            stdout: out.to_str().unwrap().into(),
            stderr: String::new(),
        };
        let p = prepare("c1", &paths, false, false, None).unwrap();
        assert!(!p.terminal());
        let mut child = p.child.iter().map(|f| File::from(f.try_clone().unwrap()));
        let (mut c_in, mut c_out) = (child.next().unwrap(), child.next().unwrap());
        drop(child);
        let io = p.finish().unwrap();
        let _containerd_writer = File::options().write(true).open(&inp).unwrap();
        io.close_stdin();
        let mut got = Vec::new();
        c_in.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
        c_out.write_all(b"out").unwrap();
        drop(c_out);
        assert!(io.drain.wait(Duration::from_secs(5)));
        let mut text = String::new();
        { out_r }.read_to_string(&mut text).unwrap();
        assert_eq!(text, "out");
    }

    #[test]
    fn stdin_closed_before_the_process_exists_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let inp = dir.path().join("in");
        mkfifo(&inp);
        let paths = StdioPaths {
            stdin: inp.to_str().unwrap().into(),
            ..Default::default()
        };
        let p = prepare("c1", &paths, false, true, None).unwrap();
        let mut c_in = File::from(p.child[0].try_clone().unwrap());
        let io = p.finish().unwrap();
        assert!(io.stdin.is_none());
        let mut got = Vec::new();
        c_in.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn a_terminal_gets_the_console_socket() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        let out_r = reader(&out);
        blocking(&out_r);
        let paths = StdioPaths {
            stdout: out.to_str().unwrap().into(),
            ..Default::default()
        };
        let p = prepare("c1", &paths, true, false, None).unwrap();
        assert!(p.terminal());
        assert_eq!(p.child.len(), 1);
        // What runtime-core does in the process: a pty, its master sent over the socket.
        let pty = runtime_core::os::open_pty().unwrap();
        runtime_core::os::send_master(p.child[0].as_fd(), pty.master.as_fd()).unwrap();
        drop(pty.master);
        let io = p.finish().unwrap();
        assert!(io.console.is_some());
        let mut slave = File::from(pty.slave);
        slave.write_all(b"tty out").unwrap();
        drop(slave);
        assert!(io.drain.wait(Duration::from_secs(5)));
        let mut text = String::new();
        { out_r }.read_to_string(&mut text).unwrap();
        assert_eq!(text, "tty out");
    }
}
