//! Terminals of container processes: a pty created inside the container, its master sent
//! to the caller over a console socket (as runc does), its slave the process's stdio.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::socket::MsgFlags;

use crate::syscall::{fds, terminal, SyscallError};

/// Name sent with the pty master, as runc sends it; receivers only use the descriptor.
const MASTER_NAME: &str = "/dev/ptmx";

/// Errors setting up a terminal, naming the step.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// Connecting to the console socket failed.
    #[error("--console-socket {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A pty call failed.
    #[error("{step}: {errno}")]
    Pty {
        /// What was being done.
        step: &'static str,
        /// The error.
        errno: nix::errno::Errno,
    },
    /// A terminal ioctl failed.
    #[error(transparent)]
    Ioctl(#[from] SyscallError),
    /// The console socket carried no descriptor.
    #[error("console socket: no file descriptor received")]
    NoDescriptor,
    /// `process.consoleSize` could not be given to the terminal.
    #[error("process.consoleSize {height}x{width}: {source}")]
    Size {
        /// The height asked for, in rows.
        height: u64,
        /// The width asked for, in columns.
        width: u64,
        /// The error.
        source: SyscallError,
    },
}

fn pty_err(step: &'static str) -> impl FnOnce(nix::errno::Errno) -> TtyError {
    move |errno| TtyError::Pty { step, errno }
}

/// A new pseudo-terminal pair.
#[derive(Debug)]
pub struct Pty {
    /// The master side, for the caller.
    pub master: OwnedFd,
    /// The slave side, for the process.
    pub slave: OwnedFd,
    /// The slave's path (`/dev/pts/N`) in the mount namespace it was made in.
    pub slave_path: PathBuf,
}

/// Connects to a console socket; done on the host, before the process enters the container.
pub fn connect(path: &Path) -> Result<OwnedFd, TtyError> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|source| TtyError::Connect {
            path: path.to_path_buf(),
            source,
        })
}

/// Opens a pty through `/dev/ptmx` of the current root: inside the container, the container's
/// own devpts instance.
pub fn open_pty() -> Result<Pty, TtyError> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(pty_err("open /dev/ptmx"))?;
    nix::pty::grantpt(&master).map_err(pty_err("grantpt"))?;
    nix::pty::unlockpt(&master).map_err(pty_err("unlockpt"))?;
    let slave_path = PathBuf::from(nix::pty::ptsname_r(&master).map_err(pty_err("ptsname"))?);
    let slave = nix::fcntl::open(
        &slave_path,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(pty_err("open pty slave"))?;
    let master = OwnedFd::from(master);
    Ok(Pty {
        master,
        slave,
        slave_path,
    })
}

/// Gives a new terminal its first window size, `process.consoleSize`, before its master
/// leaves and before the process starts: a client's own resize comes only after `start`,
/// and a program that asks for the size first (`stty size`, a shell's line editor) would
/// see 0x0. As runc does (setupConsole in libcontainer/init_linux.go), only when both
/// height and width are non-zero; a size beyond a `winsize` is clamped to it.
pub fn set_first_size(pty: &Pty, size: Option<&oci_spec::runtime::Box>) -> Result<(), TtyError> {
    let Some(size) = size else {
        return Ok(());
    };
    let (height, width) = (size.height(), size.width());
    if height == 0 || width == 0 {
        return Ok(());
    }
    let clamp = |v: u64| u16::try_from(v).unwrap_or(u16::MAX);
    let ws = terminal::Winsize {
        ws_row: clamp(height),
        ws_col: clamp(width),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    terminal::set_window_size(pty.master.as_fd(), &ws).map_err(|source| TtyError::Size {
        height,
        width,
        source,
    })
}

/// Sends the pty master over the console socket with SCM_RIGHTS.
pub fn send_master(socket: BorrowedFd<'_>, master: BorrowedFd<'_>) -> Result<(), TtyError> {
    fds::send_with_fds(socket, MASTER_NAME.as_bytes(), &[master], MsgFlags::empty())
        .map(drop)
        .map_err(pty_err("sending the pty master"))
}

/// Receives a pty master sent by [`send_master`].
pub fn receive_master(socket: BorrowedFd<'_>) -> Result<OwnedFd, TtyError> {
    let mut buf = [0u8; 4096];
    let msg = fds::recv_with_fds::<1>(socket, &mut buf, MsgFlags::MSG_CMSG_CLOEXEC).map_err(
        |e| match e {
            fds::RecvError::Recv(e) => pty_err("receiving the pty master")(e),
            fds::RecvError::ControlMessages(e) => pty_err("reading control messages")(e),
        },
    )?;
    msg.fds.into_iter().next().ok_or(TtyError::NoDescriptor)
}

/// Makes the calling process the leader of a new session (and process group), as runc
/// makes every container process (nsexec's last stage): a terminal's signals then reach
/// the runtime, which forwards them, not the container's processes as well; a terminal can
/// become its controlling one; and CRIU can dump it (it refuses a session whose leader is
/// outside the container's pid namespace).
pub fn new_session() -> Result<(), TtyError> {
    nix::unistd::setsid().map_err(pty_err("setsid"))?;
    Ok(())
}

/// Makes `slave` the controlling terminal and stdin, stdout and stderr of the calling
/// process, which leads a session without one ([`new_session`]).
pub fn make_controlling(slave: &OwnedFd) -> Result<(), TtyError> {
    terminal::set_controlling(slave.as_fd())?;
    nix::unistd::dup2_stdin(slave).map_err(pty_err("dup2 stdin"))?;
    nix::unistd::dup2_stdout(slave).map_err(pty_err("dup2 stdout"))?;
    nix::unistd::dup2_stderr(slave).map_err(pty_err("dup2 stderr"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_travels_over_a_socket_and_works() {
        let pty = open_pty().unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        send_master(a.as_fd(), pty.master.as_fd()).unwrap();
        let master = receive_master(b.as_fd()).unwrap();
        // Writing to the received master reaches the slave.
        nix::unistd::write(&master, b"ping\n").unwrap();
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(&pty.slave, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping\n");
        assert!(pty.slave_path.starts_with("/dev/pts/"));
    }

    #[test]
    fn window_size_round_trips() {
        let pty = open_pty().unwrap();
        let ws = terminal::Winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        terminal::set_window_size(pty.master.as_fd(), &ws).unwrap();
        let got = terminal::window_size(pty.slave.as_fd()).unwrap();
        assert_eq!((got.ws_row, got.ws_col), (33, 101));
    }

    fn size_of(pty: &Pty) -> (u16, u16) {
        let ws = terminal::window_size(pty.slave.as_fd()).unwrap();
        (ws.ws_row, ws.ws_col)
    }

    fn console_box(height: u64, width: u64) -> oci_spec::runtime::Box {
        oci_spec::runtime::BoxBuilder::default()
            .height(height)
            .width(width)
            .build()
            .unwrap()
    }

    #[test]
    fn console_size_is_the_first_size_and_a_zero_leaves_it() {
        let pty = open_pty().unwrap();
        assert_eq!(size_of(&pty), (0, 0), "a new pty is 0x0");
        set_first_size(&pty, None).unwrap();
        assert_eq!(size_of(&pty), (0, 0));
        // As runc: a zero height or width means no size.
        set_first_size(&pty, Some(&console_box(0, 80))).unwrap();
        set_first_size(&pty, Some(&console_box(24, 0))).unwrap();
        assert_eq!(size_of(&pty), (0, 0));
        set_first_size(&pty, Some(&console_box(27, 93))).unwrap();
        assert_eq!(size_of(&pty), (27, 93));
        set_first_size(&pty, Some(&console_box(70000, 1 << 40))).unwrap();
        assert_eq!(size_of(&pty), (u16::MAX, u16::MAX));
    }

    #[test]
    fn connect_names_the_socket() {
        let e = connect(Path::new("/nonexistent/console.sock")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/console.sock"), "{e}");
    }
}
